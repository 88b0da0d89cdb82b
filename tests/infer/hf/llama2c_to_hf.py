#!/usr/bin/python3
"""llama2c_to_hf.py MODEL.bin OUTDIR [--dtype F32|BF16|F16] [--shards N]

Converts a llama2.c legacy checkpoint (REFERENCE.md section 3: 7 int32 dim, hidden_dim,
n_layers, n_heads, n_kv_heads, vocab_size (negative = separate classifier), seq_len; then
float32 token_embedding, rms_att[L], wq[L], wk[L], wv[L], wo[L], rms_ffn[L], w1[L], w2[L],
w3[L], rms_final, freq_cis_real, freq_cis_imag, [wcls]) to a HF Llama-layout directory.

llama2.c rotates adjacent pairs (2j, 2j+1); HF rotates (j, j+d/2). As HF's
convert_llama_weights_to_hf.py does, the rows of q_proj and k_proj are permuted per head so
that row 2j goes to j and row 2j+1 to j+d/2: view (heads, d/2, 2, dim) -> transpose to
(heads, 2, d/2, dim). w1 = gate_proj, w3 = up_proj, w2 = down_proj. theta 10000, eps 1e-5.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_hf_model import llama_config, write_model_dir  # noqa: E402


def permute_rows(w, heads):
    out, inp = w.shape
    hd = out // heads
    return w.reshape(heads, hd // 2, 2, inp).transpose(0, 2, 1, 3).reshape(out, inp)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bin")
    ap.add_argument("outdir")
    ap.add_argument("--dtype", choices=["F32", "BF16", "F16"], default="F32")
    ap.add_argument("--shards", type=int, default=1)
    a = ap.parse_args()
    raw = open(a.bin, "rb").read()
    dim, hid, L, nh, nkv, vocab, seq = np.frombuffer(raw[:28], "<i4").tolist()
    shared = vocab > 0
    vocab = abs(vocab)
    hd = dim // nh
    kvd = nkv * hd
    f = np.frombuffer(raw[28:], "<f4")
    pos = 0

    def take(*shape):
        nonlocal pos
        n = int(np.prod(shape))
        if pos + n > f.size:
            sys.exit("llama2c_to_hf: %s is truncated" % a.bin)
        t = f[pos:pos + n].reshape(shape).copy()
        pos += n
        return t

    emb = take(vocab, dim)
    rms_att = take(L, dim)
    wq = take(L, dim, dim)
    wk = take(L, kvd, dim)
    wv = take(L, kvd, dim)
    wo = take(L, dim, dim)
    rms_ffn = take(L, dim)
    w1 = take(L, hid, dim)
    w2 = take(L, dim, hid)
    w3 = take(L, hid, dim)
    rms_final = take(dim)
    take(seq, hd // 2)
    take(seq, hd // 2)
    wcls = None if shared else take(vocab, dim)
    if pos != f.size:
        sys.exit("llama2c_to_hf: %d trailing floats in %s" % (f.size - pos, a.bin))
    t = {"model.embed_tokens.weight": emb, "model.norm.weight": rms_final}
    for i in range(L):
        p = "model.layers.%d." % i
        t[p + "input_layernorm.weight"] = rms_att[i]
        t[p + "self_attn.q_proj.weight"] = permute_rows(wq[i], nh)
        t[p + "self_attn.k_proj.weight"] = permute_rows(wk[i], nkv)
        t[p + "self_attn.v_proj.weight"] = wv[i]
        t[p + "self_attn.o_proj.weight"] = wo[i]
        t[p + "post_attention_layernorm.weight"] = rms_ffn[i]
        t[p + "mlp.gate_proj.weight"] = w1[i]
        t[p + "mlp.up_proj.weight"] = w3[i]
        t[p + "mlp.down_proj.weight"] = w2[i]
    if wcls is not None:
        t["lm_head.weight"] = wcls
    cfg = llama_config(dim, hid, L, nh, nkv, vocab, rope_theta=10000.0, max_pos=seq,
                       rms_eps=1e-5, tied=shared, dtype=a.dtype)
    write_model_dir(a.outdir, cfg, t, a.dtype, a.shards)


if __name__ == "__main__":
    main()
