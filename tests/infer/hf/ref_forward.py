#!/usr/bin/python3
"""ref_forward.py - float64 numpy reference forward pass of a HF Llama-layout model.

usage: ref_forward.py MODELDIR (--prompt-ids 1,2,3 | --ids-file F.u32) --out LOGITS.f32
                      [--positions all|last|i,j,k]
       ref_forward.py --selftest

Written from HF transformers' Llama semantics (REFERENCE.md sections 2 and 3), sharing no code
with the C engine nor with gen_hf_model.py:
  x = embed[ids]; per layer: h = rmsnorm(x) ; q,k,v = h W^T ; RoPE on q,k with rotate_half
  pairing (j, j + d/2) ; GQA (kv head = q head // (heads/kv_heads)) ; causal softmax attention,
  scale 1/sqrt(head_dim) ; x += o_proj ; h = rmsnorm(x) ; x += down(silu(gate h) * up h) ;
  logits = rmsnorm(x) lm_head^T (embed^T when tied).
  rmsnorm(x) = x / sqrt(mean(x^2) + eps) * w.

RoPE inverse frequencies (d = rotary dim = head_dim, w_j = theta^(-2j/d)) by rope_scaling type
("rope_type", or the older key "type"):
  default / none: w_j.               linear: w_j / factor.
  dynamic (NTK): for a forward over T tokens, if T > max_position_embeddings (L) then
      theta' = theta * (factor*T/L - (factor-1))^(d/(d-2)) for ALL positions of the prompt,
      else theta. (HF's semantics; the project's documented choice.)
  yarn: HF's _compute_yarn_parameters: L_o = rope_scaling.original_max_position_embeddings if
      given, else max_position_embeddings; correction dim c(r) = d ln(L_o/(2 pi r)) / (2 ln theta);
      low = max(floor(c(beta_fast=32)), 0), high = min(ceil(c(beta_slow=1)), d-1);
      ramp_j = clamp((j - low)/(high - low), 0, 1) (high += 0.001 if equal); extrapolation
      mask m_j = 1 - ramp_j; w'_j = (w_j/factor)(1 - m_j) + w_j m_j; attention factor
      a = rope_scaling.attention_factor or 0.1 ln(factor) + 1 multiplies cos and sin (scores
      scale by a^2). Note: some HF versions replace factor by max_position_embeddings/L_o when
      original_max_position_embeddings is given; the tests keep the two equal.
  llama3: wavelength l_j = 2 pi / w_j, L_o = original_max_position_embeddings;
      l_j < L_o/high -> w_j; l_j > L_o/low -> w_j/factor;
      else s = (L_o/l_j - low)/(high - low), w'_j = (1-s) w_j/factor + s w_j.

Output: float32 little-endian, one row of vocab_size logits per selected position, in order.
Attention is computed over query blocks (never a T x T x heads array), so a 16K-token prompt
fits in a few hundred MB.
"""
import argparse
import json
import math
import os
import sys

import numpy as np

# ---------------------------------------------------------------- safetensors reading --------

ST_DTYPES = {"F32": ("<f4", 4), "F16": ("<f2", 2), "BF16": ("<u2", 2), "F64": ("<f8", 8)}


def st_header(path):
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        h = json.loads(f.read(n).decode("utf-8"))
    h.pop("__metadata__", None)
    return 8 + n, h


class Weights:
    """Tensors of a model directory (single model.safetensors or index + shards)."""

    def __init__(self, d):
        idx = os.path.join(d, "model.safetensors.index.json")
        if os.path.exists(idx):
            with open(idx) as f:
                files = sorted(set(json.load(f)["weight_map"].values()))
        else:
            files = ["model.safetensors"]
        self.where = {}
        for fn in files:
            p = os.path.join(d, fn)
            base, h = st_header(p)
            for name, info in h.items():
                self.where[name] = (p, base, info)

    def __contains__(self, name):
        return name in self.where

    def get(self, name):
        p, base, info = self.where[name]
        dt, size = ST_DTYPES[info["dtype"]]
        b, e = info["data_offsets"]
        shape = tuple(info["shape"])
        count = int(np.prod(shape)) if shape else 1
        if e - b != count * size:
            raise ValueError("%s: %s byte range %d does not match shape %s" % (p, name, e - b, shape))
        raw = np.fromfile(p, dtype=dt, count=count, offset=base + b)
        if raw.size != count:
            raise ValueError("%s: %s truncated" % (p, name))
        if info["dtype"] == "BF16":
            raw = (raw.astype(np.uint32) << 16).view(np.float32)
        return raw.astype(np.float64).reshape(shape)


# ---------------------------------------------------------------- RoPE -----------------------


def rope_params(cfg, T):
    """(inv_freq[d/2] float64, attention_factor) for a forward over T tokens."""
    H, nh = cfg["hidden_size"], cfg["num_attention_heads"]
    d = cfg.get("head_dim") or H // nh
    theta = float(cfg.get("rope_theta", 10000.0))
    L = cfg.get("max_position_embeddings", 2048)
    rs = cfg.get("rope_scaling") or {}
    kind = rs.get("rope_type", rs.get("type", "default")) if rs else "default"
    j = np.arange(d // 2, dtype=np.float64)
    w = theta ** (-2.0 * j / d)
    af = 1.0
    if kind == "default":
        pass
    elif kind == "linear":
        w = w / rs["factor"]
    elif kind == "dynamic":
        s = rs["factor"]
        if T > L:
            th = theta * ((s * T / L) - (s - 1)) ** (d / (d - 2))
            w = th ** (-2.0 * j / d)
    elif kind == "yarn":
        s = rs["factor"]
        Lo = rs.get("original_max_position_embeddings") or L
        bf = rs.get("beta_fast") or 32
        bs = rs.get("beta_slow") or 1

        def cdim(r):
            return d * math.log(Lo / (r * 2 * math.pi)) / (2 * math.log(theta))

        low = max(math.floor(cdim(bf)), 0)
        high = min(math.ceil(cdim(bs)), d - 1)
        if low == high:
            high += 0.001
        ramp = np.clip((j - low) / (high - low), 0.0, 1.0)
        m = 1.0 - ramp
        w = (w / s) * (1 - m) + w * m
        af = rs.get("attention_factor")
        if af is None:
            af = 0.1 * math.log(s) + 1.0 if s > 1 else 1.0
    elif kind == "llama3":
        s, lo, hi = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
        Lo = rs["original_max_position_embeddings"]
        lam = 2 * math.pi / w
        smooth = (Lo / lam - lo) / (hi - lo)
        mid = (1 - smooth) * w / s + smooth * w
        w = np.where(lam < Lo / hi, w, np.where(lam > Lo / lo, w / s, mid))
    else:
        raise ValueError("rope type %r not supported by the reference" % kind)
    return w, float(af)


def rope_tables(inv_freq, af, pos):
    ang = np.outer(pos.astype(np.float64), inv_freq)  # (T, d/2)
    emb = np.concatenate([ang, ang], axis=1)  # HF: cat(freqs, freqs)
    return np.cos(emb) * af, np.sin(emb) * af


def rotate_half(x):
    h = x.shape[-1] // 2
    return np.concatenate([-x[..., h:], x[..., :h]], axis=-1)


def apply_rope(x, cos, sin):
    """x (T, heads, d); cos/sin (T, d)."""
    return x * cos[:, None, :] + rotate_half(x) * sin[:, None, :]


# ---------------------------------------------------------------- forward --------------------


def rmsnorm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def silu(x):
    return x / (1.0 + np.exp(-x))


def causal_attention(q, k, v, scale, budget=1 << 22):
    """q (T, nh, d), k/v (T, nkv, d) -> (T, nh, d). Query blocks of at most `budget` scores."""
    T, nh, d = q.shape
    rep = nh // k.shape[1]
    out = np.empty_like(q)
    s = 0
    while s < T:
        # largest B with B * (s + B) <= budget scores (keys 0 .. s+B-1)
        B = int((math.sqrt(s * s + 4.0 * budget) - s) / 2)
        e = min(T, s + max(16, B))
        B = e - s
        # mask for the keys of this block that lie after the query (only in [s, e))
        tri = np.triu(np.full((B, B), -np.inf), k=1)
        for h in range(nh):
            g = h // rep
            S = q[s:e, h] @ k[:e, g].T
            S *= scale
            S[:, s:e] += tri
            S -= S.max(axis=1, keepdims=True)
            np.exp(S, out=S)
            S /= S.sum(axis=1, keepdims=True)
            out[s:e, h] = S @ v[:e, g]
        s = e
    return out


def forward(model_dir, ids, positions, decode_from=None):
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    W = Weights(model_dir)
    H = cfg["hidden_size"]
    nh = cfg["num_attention_heads"]
    nkv = cfg.get("num_key_value_heads") or nh
    d = cfg.get("head_dim") or H // nh
    eps = float(cfg["rms_norm_eps"])
    V = cfg["vocab_size"]
    tied = cfg.get("tie_word_embeddings", False) or "lm_head.weight" not in W
    ids = np.asarray(ids, dtype=np.int64)
    T = len(ids)
    if T == 0 or ids.min() < 0 or ids.max() >= V:
        raise ValueError("ids out of range for vocab %d" % V)
    emb = W.get("model.embed_tokens.weight")
    x = emb[ids].copy()
    if decode_from is None or decode_from >= T:
        inv_freq, af = rope_params(cfg, T)
        cos, sin = rope_tables(inv_freq, af, np.arange(T))
    else:
        # HF generation with a KV cache: the prompt (decode_from tokens) in one forward, then
        # one token per forward; each forward's RoPE is made for its length (dynamic NTK grows
        # theta), and cached keys keep the rotation they were made with.
        T0 = decode_from
        inv_freq, af = rope_params(cfg, T0)
        cos, sin = rope_tables(inv_freq, af, np.arange(T0))
        cs, sn = [cos], [sin]
        for i in range(T0, T):
            w_i, af_i = rope_params(cfg, i + 1)
            c_i, s_i = rope_tables(w_i, af_i, np.array([i]))
            cs.append(c_i)
            sn.append(s_i)
        cos, sin = np.concatenate(cs), np.concatenate(sn)
    scale = 1.0 / math.sqrt(d)
    rows = 2048  # row blocks for the projections and the MLP (bounded memory)
    for li in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % li
        wn = W.get(p + "input_layernorm.weight")
        wq = W.get(p + "self_attn.q_proj.weight")
        wk = W.get(p + "self_attn.k_proj.weight")
        wv = W.get(p + "self_attn.v_proj.weight")
        wo = W.get(p + "self_attn.o_proj.weight")
        q = np.empty((T, nh, d))
        k = np.empty((T, nkv, d))
        v = np.empty((T, nkv, d))
        for r in range(0, T, rows):
            h = rmsnorm(x[r:r + rows], wn, eps)
            q[r:r + rows] = (h @ wq.T).reshape(-1, nh, d)
            k[r:r + rows] = (h @ wk.T).reshape(-1, nkv, d)
            v[r:r + rows] = (h @ wv.T).reshape(-1, nkv, d)
        q = apply_rope(q, cos, sin)
        k = apply_rope(k, cos, sin)
        a = causal_attention(q, k, v, scale).reshape(T, nh * d)
        x += a @ wo.T
        del q, k, v, a
        wn = W.get(p + "post_attention_layernorm.weight")
        wg = W.get(p + "mlp.gate_proj.weight")
        wu = W.get(p + "mlp.up_proj.weight")
        wd = W.get(p + "mlp.down_proj.weight")
        for r in range(0, T, rows):
            h = rmsnorm(x[r:r + rows], wn, eps)
            x[r:r + rows] += (silu(h @ wg.T) * (h @ wu.T)) @ wd.T
    h = rmsnorm(x[positions], W.get("model.norm.weight"), eps)
    lm = emb if tied else W.get("lm_head.weight")
    return h @ lm.T


def parse_positions(spec, T):
    if spec == "all":
        return list(range(T))
    if spec == "last":
        return [T - 1]
    out = []
    for s in spec.split(","):
        i = int(s)
        if i < 0:
            i += T
        if not 0 <= i < T:
            raise ValueError("position %s out of range for %d tokens" % (s, T))
        out.append(i)
    return out


# ---------------------------------------------------------------- self-test ------------------


def selftest():
    import tempfile
    fails = []

    def check(name, ok, detail=""):
        print("%s %s %s" % ("ok  " if ok else "FAIL", name, detail))
        if not ok:
            fails.append(name)

    def close(a, b, tol=1e-12):
        return abs(a - b) <= tol * max(1.0, abs(b))

    def cfg(d=64, theta=10000.0, rs=None, L=2048):
        return {"hidden_size": d * 4, "num_attention_heads": 4, "rope_theta": theta,
                "max_position_embeddings": L, "rope_scaling": rs}

    # default: w_1 = 10000^(-2/64), w_31 = 10000^(-62/64)
    w, af = rope_params(cfg(), 10)
    check("default w_1", close(w[1], 10000 ** (-2 / 64)) and af == 1.0, "%.15g" % w[1])
    check("default w_31", close(w[31], 10000 ** (-62 / 64)))
    # head_dim given explicitly overrides hidden/heads
    c = cfg()
    c["head_dim"] = 32
    check("head_dim field", len(rope_params(c, 1)[0]) == 16)
    # linear
    w, _ = rope_params(cfg(rs={"type": "linear", "factor": 4}), 10)
    check("linear w_5", close(w[5], 10000 ** (-10 / 64) / 4))
    # dynamic: T = 2L, s = 4 -> theta' = theta * (8 - 3)^(64/62); T <= L -> unchanged
    rs = {"rope_type": "dynamic", "factor": 4.0}
    w, _ = rope_params(cfg(rs=rs, L=100), 200)
    th = 10000 * 5 ** (64 / 62)
    check("dynamic T=2L w_7", close(w[7], th ** (-14 / 64)), "theta'=%.6g" % th)
    w, _ = rope_params(cfg(rs=rs, L=100), 100)
    check("dynamic T=L w_7", close(w[7], 10000 ** (-14 / 64)))
    w, _ = rope_params(cfg(rs=rs, L=100), 101)
    th = 10000 * (4 * 101 / 100 - 3) ** (64 / 62)
    check("dynamic T=L+1 w_3", close(w[3], th ** (-6 / 64)))
    # yarn, d 128, theta 10000, L_o 4096 (Llama 2): c(32) = 20.94 -> 20, c(1) = 45.03 -> 46
    # (the correction range quoted for Llama 2 yarn models); factor 4 -> a = 1 + 0.1 ln 4
    rs = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 4096}
    w, af = rope_params(cfg(d=128, rs=rs, L=16384), 10)
    w0 = 10000 ** (-np.arange(64) * 2 / 128)
    c32 = 128 * math.log(4096 / (32 * 2 * math.pi)) / (2 * math.log(10000))
    c1 = 128 * math.log(4096 / (1 * 2 * math.pi)) / (2 * math.log(10000))
    check("yarn correction dims", math.floor(c32) == 20 and math.ceil(c1) == 46,
          "c(32)=%.3f c(1)=%.3f" % (c32, c1))
    check("yarn j<=20 extrapolated", all(close(w[i], w0[i]) for i in (0, 10, 20)))
    check("yarn j>=46 interpolated", all(close(w[i], w0[i] / 4) for i in (46, 50, 63)))
    r = (33 - 20) / (46 - 20)  # ramp at j = 33; weight of the interpolated frequency
    check("yarn j=33 blend", close(w[33], (w0[33] / 4) * r + w0[33] * (1 - r)))
    check("yarn attention factor", close(af, 1 + 0.1 * math.log(4)), "%.12g" % af)
    # yarn without original: uses max_position_embeddings
    rs2 = {"rope_type": "yarn", "factor": 4.0}
    check("yarn L_o default", np.allclose(rope_params(cfg(d=128, rs=rs2, L=4096), 10)[0], w))
    # llama3, Llama 3.1 config: d 128, theta 500000, s 8, low 1, high 4, L_o 8192. By hand:
    # l_j = 2 pi 500000^(j/64) < 2048 iff j < 64 ln(2048/2pi)/ln(500000) = 28.2 -> j 0..28 kept;
    # l_j > 8192 iff j > 64 ln(8192/2pi)/ln(500000) = 34.99 -> j 35..63 divided by 8; 29..34 mixed
    rs = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
          "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
    w, af = rope_params(cfg(d=128, theta=500000.0, rs=rs, L=131072), 10)
    w0 = 500000.0 ** (-np.arange(64) * 2 / 128)
    n_hi = n_lo = n_mid = 0
    for i in range(64):
        lam = 2 * math.pi / w0[i]
        if lam < 8192 / 4:
            want, n_hi = w0[i], n_hi + 1
        elif lam > 8192 / 1:
            want, n_lo = w0[i] / 8, n_lo + 1
        else:
            sm = (8192 / lam - 1) / (4 - 1)
            want, n_mid = (1 - sm) * w0[i] / 8 + sm * w0[i], n_mid + 1
        if not close(w[i], want):
            check("llama3 j=%d" % i, False, "%g vs %g" % (w[i], want))
    check("llama3 regions", (n_hi, n_mid, n_lo) == (29, 6, 29) and af == 1.0,
          "high/mid/low = %d/%d/%d" % (n_hi, n_mid, n_lo))
    # the test matrix's small llama3 case: d 64, theta 500000, L_o 64 -> all three regions
    rs = dict(rs, original_max_position_embeddings=64)
    w, _ = rope_params(cfg(d=64, theta=500000.0, rs=rs, L=512), 10)
    w0 = 500000.0 ** (-np.arange(32) * 2 / 64)
    lam = 2 * math.pi / w0
    check("llama3 small: 3 regions",
          w[0] == w0[0] and close(w[31], w0[31] / 8) and
          ((lam >= 16) & (lam <= 64)).sum() >= 2 and
          all(w0[i] / 8 < w[i] < w0[i] for i in range(32) if 16 < lam[i] < 64),
          "wavelengths %s" % np.round(lam[:8], 1).tolist())
    # rotate_half RoPE == complex rotation of pairs (j, j+d/2); dot products relative-only
    rng = np.random.default_rng(1)
    d = 16
    wq = 10000 ** (-np.arange(d // 2) * 2 / d)
    x = rng.standard_normal((1, 1, d))
    cos, sin = rope_tables(wq, 1.0, np.array([7]))
    y = apply_rope(x, cos, sin)[0, 0]
    z = (x[0, 0, :d // 2] + 1j * x[0, 0, d // 2:]) * np.exp(1j * 7 * wq)
    check("rotate_half pairing", np.allclose(y, np.concatenate([z.real, z.imag])))
    qv, kv = rng.standard_normal((1, 1, d)), rng.standard_normal((1, 1, d))

    def dot(m, n):
        c1, s1 = rope_tables(wq, 1.0, np.array([m]))
        c2, s2 = rope_tables(wq, 1.0, np.array([n]))
        return float((apply_rope(qv, c1, s1) * apply_rope(kv, c2, s2)).sum())

    check("RoPE relative", close(dot(10, 3), dot(107, 100), 1e-10))
    # blocked attention == naive attention, including blocks smaller than T
    q = rng.standard_normal((50, 4, 8))
    k = rng.standard_normal((50, 2, 8))
    v = rng.standard_normal((50, 2, 8))
    S = np.einsum("thd,shd->hts", q, np.repeat(k, 2, axis=1)) * 0.3
    S += np.triu(np.full((50, 50), -np.inf), k=1)
    P = np.exp(S - S.max(-1, keepdims=True))
    P /= P.sum(-1, keepdims=True)
    naive = np.einsum("hts,shd->thd", P, np.repeat(v, 2, axis=1))
    check("blocked attention", np.allclose(causal_attention(q, k, v, 0.3, budget=300), naive))
    # safetensors dtypes: hand-written bits (bf16 0x3F80 = 1, 0xC020 = -2.5, 0x3DCD = 0.10009765625;
    # f16 0x3C00 = 1, 0xC100 = -2.5)
    with tempfile.TemporaryDirectory() as td:
        data = bytes.fromhex("803f20c0cd3d") + bytes.fromhex("003c00c1") + \
            np.array([1.5, -0.25], "<f4").tobytes()
        hdr = json.dumps({"a": {"dtype": "BF16", "shape": [3], "data_offsets": [0, 6]},
                          "b": {"dtype": "F16", "shape": [2], "data_offsets": [6, 10]},
                          "c": {"dtype": "F32", "shape": [1, 2], "data_offsets": [10, 18]},
                          "__metadata__": {"format": "pt"}}).encode()
        with open(os.path.join(td, "model.safetensors"), "wb") as f:
            f.write(len(hdr).to_bytes(8, "little") + hdr + data)
        Wt = Weights(td)
        check("safetensors BF16", Wt.get("a").tolist() == [1.0, -2.5, 0.10009765625])
        check("safetensors F16", Wt.get("b").tolist() == [1.0, -2.5])
        check("safetensors F32", Wt.get("c").tolist() == [[1.5, -0.25]])
    print("selftest: %d failed" % len(fails))
    return 1 if fails else 0


def main():
    ap = argparse.ArgumentParser(description="float64 reference forward of a HF Llama model")
    ap.add_argument("model", nargs="?")
    ap.add_argument("--prompt-ids")
    ap.add_argument("--ids-file", help="u32 little-endian ids")
    ap.add_argument("--out")
    ap.add_argument("--positions", default="all", help="all | last | i,j,k (negative from end)")
    ap.add_argument("--selftest", action="store_true")
    ap.add_argument("--decode-from", type=int, help="positions from this one on are generated "
                    "one at a time with a KV cache (HF's dynamic-NTK semantics for them)")
    a = ap.parse_args()
    if a.selftest:
        sys.exit(selftest())
    if not a.model or not a.out or (a.prompt_ids is None) == (a.ids_file is None):
        ap.error("need MODELDIR, --out and one of --prompt-ids / --ids-file")
    if a.ids_file:
        ids = np.fromfile(a.ids_file, dtype="<u4").astype(np.int64)
    else:
        ids = [int(s) for s in a.prompt_ids.split(",") if s.strip()]
    pos = parse_positions(a.positions, len(ids))
    logits = forward(a.model, ids, pos, a.decode_from)
    logits.astype("<f4").tofile(a.out)


if __name__ == "__main__":
    main()
