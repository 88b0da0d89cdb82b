#!/usr/bin/env python3
"""The crossover of 2D against 1D tensor-parallel prefill, modelled (issue 11).

Per layer of a Llama (hidden D, MLP H, query width Q, KV width KV), a prefill chunk of n tokens,
P ranks, f32 activations (4 bytes), bytes each rank sends:

  1D (Megatron, what `longctx` runs without --tp-grid): two ring all-reduces of n x D
      B_1d = 2 * 2 (P - 1) / P * 4 n D                              messages: 2 * 2 (P - 1)
  2D on a Pr x Pc grid, weights stationary (each rank keeps its block of every matrix; the
      activation panels move): for each of the 7 products (K in, N out) the input is broadcast
      along the grid's rows and the partial outputs reduced along its columns,
      B_gemm = sum_k 4 n (K_k / Pr * (Pc - 1) / Pc + N_k / Pc * (Pr - 1) / Pr)
      messages: sum_k ceil(K_k / 256) * (log2 Pc + log2 Pr)   (PBLAS's panels of 256, trees)
  plus the redistributions of `longctx --tp-grid` (infer_grid.c), which keeps the residual whole
      on every rank and the attention by heads as 1D does:
      q and the attention output between the grid and the heads: 2 * 4 n Q / P * (P - 1) / P
      k and v to the heads: 2 * 4 n KV / P * (P - 1) / P
      the outputs of wo and w2 to every rank: 2 * 4 n D (P - 1) / P
  and a "2D, residual on the grid" variant (not built): the residual stays block-distributed,
      RMSNorm sums n squares per grid row (an all-reduce of 4 n bytes), no output gathers.

Network: per message alpha, per byte 1 / beta; node: F flop/s on 2 * n * params_per_layer / P
flops. Communication not overlapped (the same for both, so the crossover is where the bytes and
messages cross). The measured part (the runs of bench_tp2d.sh at P = 2 and 4, given with
--measured) checks the redistribution bytes exactly and reports PBLAS's bytes against B_gemm.

usage: tp2d_model.py [--n 512] [--measured FILE]   (70B shapes; prints the tables)
"""
import argparse
import math
import re

D, H, NH, NKV, HD = 8192, 28672, 64, 8, 128
Q, KV = NH * HD, NKV * HD
MATS = [(D, Q), (D, KV), (D, KV), (Q, D), (D, H), (D, H), (H, D)]  # (K in, N out)
PARAMS = sum(k * n for k, n in MATS)


def grid(P):
    """the most square Pr x Pc = P, Pr <= Pc"""
    r = int(math.isqrt(P))
    while P % r:
        r -= 1
    return r, P // r


def bytes_1d(P, n):
    return 2 * 2 * (P - 1) / P * 4 * n * D if P > 1 else 0.0


def msgs_1d(P):
    return 2 * 2 * (P - 1)


def bytes_gemm(pr, pc, n):
    return sum(4 * n * (k / pr * (pc - 1) / pc + nn / pc * (pr - 1) / pr) for k, nn in MATS)


def msgs_gemm(pr, pc, panel=256):
    """PBLAS sends panels of 256 (our pilaenv_); panel=None: one broadcast and one reduction per
    product (a kernel of our own, not built)"""
    lg = (math.log2(pc) if pc > 1 else 0) + (math.log2(pr) if pr > 1 else 0)
    return sum(math.ceil(k / panel) if panel else 1 for k, _ in MATS) * lg


def bytes_redist(P, n):
    """infer_grid.c's alltoallv, per rank (heads <-> grid, outputs to every rank)"""
    f = (P - 1) / P
    return 4 * n * (2 * Q / P * f + 2 * KV / P * f + 2 * D * f)


def bytes_2d(P, n, residual_on_grid=False):
    pr, pc = grid(P)
    b = bytes_gemm(pr, pc, n)
    if residual_on_grid:
        f = (P - 1) / P
        return b + 4 * n * (2 * Q / P * f + 2 * KV / P * f) + 2 * 4 * n
    return b + bytes_redist(P, n)


def msgs_2d(P, panel=256, residual_on_grid=False):
    pr, pc = grid(P)
    return msgs_gemm(pr, pc, panel) + (4 if residual_on_grid else 6) * (P - 1)


def ms(P, n, b, m, net, F):
    alpha, beta = net
    return 1e3 * (2 * n * PARAMS / P / F + m * alpha + b / beta)


def check_measured(path, n):
    """lines of bench_tp2d: compare the alltoallv bytes with bytes_redist, PBLAS's with B_gemm"""
    print("measured (bench_tp2d, chunk %d) against the model, MB per rank per layer:" % n)
    print("| run | sent, all | model 1D or 2D (ideal gemm + ours) | our alltoallv | model | PBLAS's (sent - alltoallv - embedding) | ideal gemm |")
    print("|---|---|---|---|---|---|---|")
    emb = None
    for line in open(path):
        m = re.match(r"(1D tp (\d+)|2D (\d+)x(\d+) nb \d+)\s+chunk\s+(\d+): .*sent/rank/layer\s+([\d.]+) MB", line)
        if not m or int(m.group(5)) != n:
            continue
        sent = float(m.group(6))
        if m.group(2):
            P = int(m.group(2))
            # the embedding's all-reduce (n x D, once per chunk) over the 2 layers of the slice
            emb = 4 * n * D / 2 / 1e6 if P > 1 else 0.0
            print("| %s | %.2f | %.2f (+ %.2f embedding) | - | - | - | - |"
                  % (m.group(1), sent, bytes_1d(P, n) / 1e6, emb))
            continue
        pr, pc = int(m.group(3)), int(m.group(4))
        P = pr * pc
        a2a = float(re.search(r"([\d.]+) MB/rank/layer of the alltoallv", line).group(1))
        e = 4 * n * D / 2 / 1e6 if P > 1 else 0.0
        pb = sent - a2a - e
        print("| %s | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f |"
              % (m.group(1), sent, (bytes_gemm(pr, pc, n) + bytes_redist(P, n)) / 1e6, a2a,
                 bytes_redist(P, n) / 1e6, pb, bytes_gemm(pr, pc, n) / 1e6))
    print()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=512)
    ap.add_argument("--measured")
    ap.add_argument("--flops", type=float, default=2e12, help="node f32 flop/s (default 2e12)")
    a = ap.parse_args()
    if a.measured:
        check_measured(a.measured, a.n if a.n != 512 else 128)
    nets = {"25 GbE (alpha 20 us, beta 3 GB/s)": (20e-6, 3e9),
            "100 Gb/s IB (alpha 2 us, beta 12 GB/s)": (2e-6, 12e9)}
    n = a.n
    print("70B shapes, a prefill chunk of %d tokens, per layer; node %.1f Tflop/s f32" % (n, a.flops / 1e12))
    print("2D ours: `--tp-grid` as built (PBLAS panels of 256, residual whole on every rank); "
          "2D best: the residual on the grid and one collective per product (not built)")
    print("| P | grid | MB sent/rank: 1D | 2D ours | 2D best | "
          + " | ".join("ms/layer %s: 1D / 2D ours / 2D best" % k for k in nets) + " |")
    print("|---|---|---|---|---|" + "---|" * len(nets))
    cross = {}
    for P in [2, 4, 8, 16, 24, 32, 64, 96, 128, 256]:
        pr, pc = grid(P)
        b1, b2, b3 = bytes_1d(P, n), bytes_2d(P, n), bytes_2d(P, n, True)
        cells = []
        for k, net in nets.items():
            t1 = ms(P, n, b1, msgs_1d(P), net, a.flops)
            t2 = ms(P, n, b2, msgs_2d(P), net, a.flops)
            t3 = ms(P, n, b3, msgs_2d(P, None, True), net, a.flops)
            cells.append("%.1f / %.1f / %.1f" % (t1, t2, t3))
            for name, t in (("2D ours", t2), ("2D best", t3)):
                if t < t1 and (k, name) not in cross:
                    cross[(k, name)] = P
        print("| %d | %dx%d | %.1f | %.1f | %.1f | %s |" % (P, pr, pc, b1 / 1e6, b2 / 1e6, b3 / 1e6,
                                                          " | ".join(cells)))
    print()
    # the crossover in bytes alone, over every P with a square-ish grid
    for name, res in (("2D ours", False), ("2D best", True)):
        first = next((P for P in range(2, 4097) if bytes_2d(P, n, res) < bytes_1d(P, n)), None)
        print("bytes: %s sends less than 1D from P = %s" % (name, first))
    for k in nets:
        for name in ("2D ours", "2D best"):
            P = cross.get((k, name))
            print("time: %s %s 1D on %s" % (name, "beats from P = %d (of the P above)" % P if P
                                              else "never beats (P <= 256)", k))


if __name__ == "__main__":
    main()
