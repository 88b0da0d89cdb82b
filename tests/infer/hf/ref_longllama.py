#!/usr/bin/python3
"""ref_longllama.py - float64 numpy reference of LongLLaMA (Focused Transformer) inference.

usage: ref_longllama.py MODELDIR (--prompt-ids 1,2,3 | --ids-file F.u32) --out LOGITS.f32
                        [--decode-from P] [--topk K] [--kv-dtype f32|bf16]
                        [--positions all|last|i,j,k]
       ref_longllama.py --selftest

Written from REFERENCE.md section 1.3 (the algorithm of CStanKonrad/long_llama's
modeling_longllama.py), sharing no code with the C engine; the Llama pieces (safetensors
reading, rmsnorm, silu, rotate_half RoPE) are ref_forward.py's. W = max_position_embeddings,
C = last_context_length, d = head_dim, L_mem = mem_layers:

  State per layer: a local context of un-rotated keys and values (float64 here); in memory
  layers also a memory of un-rotated keys and values rounded to mem_dtype (bfloat16: round to
  nearest even; float32: rounded to float32).
  Attention call over T new tokens with n keys in the local context after appending them: keys
  rotated at positions 0 .. n-1 (the local minimum subtracted), the T queries at n-T .. n-1;
  scores q.k/sqrt(d) causal. Memory layers with a non-empty memory add q_rot.K_mem/sqrt(d) for
  every memory entry (no mask: every query sees all of them) and take ONE softmax over
  [local ; memory]: out = P_local V_local + P_mem V_mem.
  --topk K (the paper's kNN variant, not in the release): each query keeps only its K largest
  memory scores (all of them when the memory holds <= K; entries tied with the K-th all kept,
  ties within 1e-9 relative: equal keys), in the same one softmax.
  Prompt of N tokens: M = max(N - C, 0); tokens [0, M) cut from the start into windows of W
  (the last may be short), each a forward over its own tokens alone (local context = the
  window, positions 0 .. T-1); in memory layers, after the window's attention, its keys and
  values go to memory (rounded). Non-memory layers keep nothing. Then tokens [M, N) run as one
  forward that becomes the local context (memory layers see all memory).
  Generation step (--decode-from P: tokens P.. one at a time after the prompt ids[0, P)):
  local = [local ; new]; if its length exceeds W, the whole old local context goes to memory
  (rounded) in memory layers, before this step's attention, and is dropped in the others; the
  local context becomes just the new token.
  --kv-dtype bf16 (the engine's --kv-dtype bf16, a KV cache of bf16): the local context's keys,
  rotated at their positions 0 .. n-1, and its values are rounded to bfloat16 where attention
  reads them (the memory is unchanged: it takes the un-rotated keys and values, rounded once).

Output: float32 little-endian, one row of vocab_size logits per selected position, in order.
"""
import argparse
import json
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ref_forward import Weights, rmsnorm, silu, rope_tables, rotate_half, parse_positions  # noqa


def round_bf16(a):
    """float64 -> nearest bfloat16 (ties to even) as float64: via float32 exactly as the
    released code does (x.to(bfloat16) of a float32 tensor), i.e. float64 -> float32 -> bf16."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    u = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16
    return u.astype(np.uint32).view(np.float32).astype(np.float64)


def rope(x, inv_freq, pos):
    cos, sin = rope_tables(inv_freq, 1.0, pos)
    return x * cos[:, None, :] + rotate_half(x) * sin[:, None, :]


class Model:
    def __init__(self, d):
        with open(os.path.join(d, "config.json")) as f:
            self.cfg = c = json.load(f)
        if c.get("model_type") != "longllama":
            raise ValueError("%s: model_type is not longllama" % d)
        if c.get("rope_scaling"):
            raise ValueError("LongLLaMA has rope_scaling null")
        self.W = Weights(d)
        self.H, self.nh = c["hidden_size"], c["num_attention_heads"]
        if (c.get("num_key_value_heads") or self.nh) != self.nh:
            raise ValueError("LongLLaMA is MHA")
        self.hd = c.get("head_dim") or self.H // self.nh
        self.eps = float(c["rms_norm_eps"])
        self.V = c["vocab_size"]
        self.L = c["num_hidden_layers"]
        self.win = c["max_position_embeddings"]
        self.last = c["last_context_length"]
        self.mem_layers = set(c["mem_layers"])
        self.kv_bf16 = False  # --kv-dtype bf16
        dt = c.get("mem_dtype", "bfloat16")
        self.round = round_bf16 if dt == "bfloat16" else (
            lambda a: np.asarray(a, np.float32).astype(np.float64))
        theta = float(c.get("rope_theta", 10000.0))
        # inv_freq in float32 (REFERENCE 1.3: "inv_freq in fp32"), then used in float64
        j = np.arange(0, self.hd, 2, dtype=np.float32)
        self.inv_freq = (1.0 / (np.float32(theta) ** (j / np.float32(self.hd)))).astype(
            np.float32).astype(np.float64)
        self.tied = c.get("tie_word_embeddings", False) or "lm_head.weight" not in self.W
        self.emb = self.W.get("model.embed_tokens.weight")
        self.lm = self.emb if self.tied else self.W.get("lm_head.weight")
        self.norm = self.W.get("model.norm.weight")
        self.layers = []
        for li in range(self.L):
            p = "model.layers.%d." % li
            self.layers.append({k: self.W.get(p + n) for k, n in (
                ("an", "input_layernorm.weight"), ("q", "self_attn.q_proj.weight"),
                ("k", "self_attn.k_proj.weight"), ("v", "self_attn.v_proj.weight"),
                ("o", "self_attn.o_proj.weight"), ("fn", "post_attention_layernorm.weight"),
                ("g", "mlp.gate_proj.weight"), ("u", "mlp.up_proj.weight"),
                ("d", "mlp.down_proj.weight"))})


class State:
    def __init__(self, m):
        self.m = m
        e = np.zeros((0, m.nh, m.hd))
        self.lk = [e] * m.L  # local context, un-rotated (n, heads, d)
        self.lv = [e] * m.L
        self.mk = [e] * m.L  # memory, rounded (n_mem, heads, d)
        self.mv = [e] * m.L

    def to_memory(self, li, k, v):
        self.mk[li] = np.concatenate([self.mk[li], self.m.round(k)])
        self.mv[li] = np.concatenate([self.mv[li], self.m.round(v)])


def attention(m, st, li, q, k, v, topk):
    """q, k, v (T, heads, d) un-rotated, k/v already the last T of the local context st.lk[li];
    returns (T, heads, d)."""
    lk, lv = st.lk[li], st.lv[li]
    n, T = lk.shape[0], q.shape[0]
    qr = rope(q, m.inv_freq, np.arange(n - T, n))
    kr = rope(lk, m.inv_freq, np.arange(n))
    if m.kv_bf16:  # a bf16 KV cache holds the rotated keys
        kr, lv = round_bf16(kr), round_bf16(lv)
    scale = 1.0 / math.sqrt(m.hd)
    mem = li in m.mem_layers and st.mk[li].shape[0] > 0
    out = np.empty_like(q)
    qpos = np.arange(n - T, n)[:, None]
    causal = np.arange(n)[None, :] > qpos  # (T, n) True where masked
    for h in range(m.nh):
        s = (qr[:, h] @ kr[:, h].T) * scale
        s[causal] = -np.inf
        if mem:
            sm = (qr[:, h] @ st.mk[li][:, h].T) * scale  # (T, n_mem)
            if topk and topk < sm.shape[1]:
                kth = -np.partition(-sm, topk - 1, axis=1)[:, topk - 1:topk]
                # ties with the k-th are all kept: equal keys (a repeated token's, in layer 0)
                # score equally in float32 but a few ulps apart in float64
                sm = np.where(sm >= kth - 1e-9 * np.maximum(1.0, np.abs(kth)), sm, -np.inf)
            s = np.concatenate([s, sm], axis=1)
        s = s - s.max(axis=1, keepdims=True)
        p = np.exp(s)
        p /= p.sum(axis=1, keepdims=True)
        vals = np.concatenate([lv[:, h], st.mv[li][:, h]]) if mem else lv[:, h]
        out[:, h] = p @ vals
    return out


def run(m, st, ids, topk, reset, evict=False):
    """A forward over ids (T tokens). reset: the local context is only these tokens (a prompt
    window, or the last segment). evict: before attention, the old local context is moved to
    memory (memory layers) or dropped. Returns (T, vocab) logits."""
    x = m.emb[ids].copy()
    T = len(ids)
    for li, w in enumerate(m.layers):
        h = rmsnorm(x, w["an"], m.eps)
        q = (h @ w["q"].T).reshape(T, m.nh, m.hd)
        k = (h @ w["k"].T).reshape(T, m.nh, m.hd)
        v = (h @ w["v"].T).reshape(T, m.nh, m.hd)
        if evict and li in m.mem_layers:
            st.to_memory(li, st.lk[li], st.lv[li])
        if reset or evict:
            st.lk[li], st.lv[li] = k, v
        else:
            st.lk[li] = np.concatenate([st.lk[li], k])
            st.lv[li] = np.concatenate([st.lv[li], v])
        a = attention(m, st, li, q, k, v, topk).reshape(T, m.nh * m.hd)
        x += a @ w["o"].T
        h = rmsnorm(x, w["fn"], m.eps)
        x += (silu(h @ w["g"].T) * (h @ w["u"].T)) @ w["d"].T
    return rmsnorm(x, m.norm, m.eps) @ m.lm.T


def forward(m, ids, decode_from=None, topk=0):
    ids = np.asarray(ids, dtype=np.int64)
    if len(ids) == 0 or ids.min() < 0 or ids.max() >= m.V:
        raise ValueError("ids out of range for vocab %d" % m.V)
    P = len(ids) if decode_from is None else decode_from
    st = State(m)
    out = []
    Mw = max(P - m.last, 0)
    for s in range(0, Mw, m.win):  # windows of the prompt's head
        e = min(s + m.win, Mw)
        out.append(run(m, st, ids[s:e], topk, reset=True))
        for li in m.mem_layers:  # after the window's attention (each layer's memory is its own)
            st.to_memory(li, st.lk[li], st.lv[li])
        e0 = np.zeros((0, m.nh, m.hd))
        st.lk, st.lv = [e0] * m.L, [e0] * m.L  # a window leaves no local context
    if P > Mw:
        out.append(run(m, st, ids[Mw:P], topk, reset=True))
    for i in range(P, len(ids)):  # generation steps
        evict = st.lk[0].shape[0] + 1 > m.win
        out.append(run(m, st, ids[i:i + 1], topk, reset=False, evict=evict))
    return np.concatenate(out)


def selftest():
    fails = []

    def check(name, ok, detail=""):
        print("%s %s %s" % ("ok  " if ok else "FAIL", name, detail))
        if not ok:
            fails.append(name)

    # bf16 rounding by hand: 1 + 2^-8 is a tie -> 1 (even); 1 + 3*2^-8 -> 1 + 2^-6 (tie, odd up);
    # 1 + 2^-8 + 2^-20 -> 1 + 2^-7
    r = round_bf16(np.array([1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -8 + 2 ** -20, -2.5]))
    check("bf16 round to nearest even",
          r.tolist() == [1.0, 1 + 2 ** -6, 1 + 2 ** -7, -2.5], str(r.tolist()))

    class M:  # a bare model for the attention: 1 head, d 4, one memory layer
        nh, hd, mem_layers, kv_bf16 = 1, 4, {0}, False
        inv_freq = np.array([1.0, 0.1])
    rng = np.random.default_rng(3)
    st = State.__new__(State)
    st.lk, st.lv = [rng.standard_normal((3, 1, 4))], [rng.standard_normal((3, 1, 4))]
    st.mk, st.mv = [rng.standard_normal((5, 1, 4))], [rng.standard_normal((5, 1, 4))]
    q = rng.standard_normal((2, 1, 4))
    got = attention(M, st, 0, q, None, None, 0)
    # by hand for the last query (position 2): scores against keys 0..2 rotated, memory unrotated
    kr = rope(st.lk[0], M.inv_freq, np.arange(3))[:, 0]
    qr = rope(q[1:], M.inv_freq, np.array([2]))[0, 0]
    s = np.concatenate([kr @ qr, st.mk[0][:, 0] @ qr]) / 2.0
    p = np.exp(s - s.max())
    p /= p.sum()
    want = p @ np.concatenate([st.lv[0][:, 0], st.mv[0][:, 0]])
    check("one softmax over [local ; memory]", np.allclose(got[1, 0], want))
    # first query (position 1) must not see local key 2
    kr1 = kr[:2]
    qr1 = rope(q[:1], M.inv_freq, np.array([1]))[0, 0]
    s = np.concatenate([kr1 @ qr1, st.mk[0][:, 0] @ qr1]) / 2.0
    p = np.exp(s - s.max())
    p /= p.sum()
    want = p @ np.concatenate([st.lv[0][:2, 0], st.mv[0][:, 0]])
    check("causal local, all memory", np.allclose(got[0, 0], want))
    # top-k with k >= memory is dense; k = 2 keeps the two largest memory scores
    check("top-k 5 of 5 = dense", np.allclose(attention(M, st, 0, q, None, None, 5), got))
    g2 = attention(M, st, 0, q, None, None, 2)
    sm = st.mk[0][:, 0] @ qr / 2.0
    keep = np.argsort(-sm)[:2]
    s = np.concatenate([kr @ qr / 2.0, sm[keep]])
    p = np.exp(s - s.max())
    p /= p.sum()
    want = p @ np.concatenate([st.lv[0][:, 0], st.mv[0][keep, 0]])
    check("top-k 2", np.allclose(g2[1, 0], want) and not np.allclose(g2[1, 0], got[1, 0]))
    # a bf16 KV cache: the rotated local keys and the local values rounded, the memory not
    M.kv_bf16 = True
    g3 = attention(M, st, 0, q, None, None, 0)
    M.kv_bf16 = False
    krb = round_bf16(kr)
    s = np.concatenate([krb @ qr, st.mk[0][:, 0] @ qr]) / 2.0
    p = np.exp(s - s.max())
    p /= p.sum()
    want = p @ np.concatenate([round_bf16(st.lv[0][:, 0]), st.mv[0][:, 0]])
    check("bf16 KV cache", np.allclose(g3[1, 0], want) and not np.allclose(g3[1, 0], got[1, 0]))
    print("selftest: %d failed" % len(fails))
    return 1 if fails else 0


def main():
    ap = argparse.ArgumentParser(description="float64 reference of LongLLaMA inference")
    ap.add_argument("model", nargs="?")
    ap.add_argument("--prompt-ids")
    ap.add_argument("--ids-file", help="u32 little-endian ids")
    ap.add_argument("--out")
    ap.add_argument("--positions", default="all", help="all | last | i,j,k (negative from end)")
    ap.add_argument("--decode-from", type=int, help="ids from this index on are generation "
                    "steps, one token each, after the prompt ids[0, P)")
    ap.add_argument("--topk", type=int, default=0, help="kNN memory: the K best memory keys "
                    "per query (0: dense, all memory)")
    ap.add_argument("--kv-dtype", choices=("f32", "bf16"), default="f32",
                    help="the engine's KV cache: bf16 rounds the local keys and values")
    ap.add_argument("--selftest", action="store_true")
    a = ap.parse_args()
    if a.selftest:
        sys.exit(selftest())
    if not a.model or not a.out or (a.prompt_ids is None) == (a.ids_file is None):
        ap.error("need MODELDIR, --out and one of --prompt-ids / --ids-file")
    if a.ids_file:
        ids = np.fromfile(a.ids_file, dtype="<u4").astype(np.int64)
    else:
        ids = [int(s) for s in a.prompt_ids.split(",") if s.strip()]
    m = Model(a.model)
    m.kv_bf16 = a.kv_dtype == "bf16"
    logits = forward(m, ids, a.decode_from, a.topk)
    logits[parse_positions(a.positions, len(ids))].astype("<f4").tofile(a.out)


if __name__ == "__main__":
    main()
