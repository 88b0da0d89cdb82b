#!/usr/bin/python3
"""gen_hf_model.py OUTDIR [options] - write a HF Llama-layout model directory with random weights.

config.json as HF writes it for LlamaForCausalLM (or, with --mem-layers, a LongLLaMA
config.json: model_type "longllama" and its memory-layer keys, the same tensors), weights in model.safetensors (or, with
--shards N > 1, model-0000k-of-0000N.safetensors + model.safetensors.index.json). Tensor names
and shapes as REFERENCE.md section 3 (linear weights [out, in]). BF16 is round-to-nearest-even
of the float32 values, F16 is numpy's (also RNE) float16 conversion.

Scales are chosen so the tests are sensitive: the residual stream stays O(1), attention scores
q.k/sqrt(hd) have a standard deviation of about 1.5 (so softmax is neither uniform nor one-hot
and RoPE matters), norm weights are 1 + 0.2 N(0,1), logits have a spread of a few units.

The safetensors writer here is also used by llama2c_to_hf.py; the reader in ref_forward.py is
written separately.
"""
import argparse
import json
import os
import shutil
import sys

import numpy as np

DTYPE_TORCH = {"F32": "float32", "BF16": "bfloat16", "F16": "float16"}


def f32_to_bf16_bits(a):
    """float32 array -> uint16 bfloat16 bits, round to nearest, ties to even (no NaNs here)."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return u.astype(np.uint16)


def encode(a, dtype):
    """float32 array -> raw little-endian bytes of the safetensors dtype."""
    a = np.asarray(a, dtype=np.float32)
    if dtype == "F32":
        return a.astype("<f4").tobytes()
    if dtype == "F16":
        return a.astype("<f2").tobytes()
    if dtype == "BF16":
        return f32_to_bf16_bits(a).astype("<u2").tobytes()
    raise ValueError("dtype " + dtype)


def write_safetensors(path, tensors, dtype):
    """tensors: {name: float32 ndarray}. Writes the file; returns its data byte count."""
    names = sorted(tensors)  # the safetensors library orders by name within one dtype
    header, blobs, off = {}, [], 0
    for n in names:
        b = encode(tensors[n], dtype)
        header[n] = {"dtype": dtype, "shape": list(tensors[n].shape),
                     "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)  # the library pads the header to a multiple of 8 with spaces
    with open(path, "wb") as f:
        f.write(np.uint64(len(h)).astype("<u8").tobytes())
        f.write(h)
        for b in blobs:
            f.write(b)
    return off


def write_model_dir(outdir, config, tensors, dtype, shards=1):
    """Write config.json and the weights (one file, or `shards` files + index)."""
    os.makedirs(outdir, exist_ok=True)
    with open(os.path.join(outdir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    if shards <= 1:
        write_safetensors(os.path.join(outdir, "model.safetensors"), tensors, dtype)
        return
    # split in model order (embedding, layer 0, 1, ..., norm, lm_head) into shards of about
    # equal bytes, like HF's save_pretrained(max_shard_size=...) does
    def order(n):
        if n.startswith("model.embed_tokens"):
            return (0, 0, n)
        if n.startswith("model.layers."):
            return (1, int(n.split(".")[2]), n)
        return (2, 0, n)
    names = sorted(tensors, key=order)
    total = sum(tensors[n].size for n in names)
    groups, cur, acc = [[] for _ in range(shards)], 0, 0
    for n in names:
        groups[cur].append(n)
        acc += tensors[n].size
        while cur < shards - 1 and acc >= total * (cur + 1) / shards:
            cur += 1
    groups = [g for g in groups if g]
    if len(groups) != shards:
        sys.exit("gen_hf_model: cannot split %d tensors into %d shards" % (len(names), shards))
    weight_map, size = {}, 0
    for i, g in enumerate(groups):
        fn = "model-%05d-of-%05d.safetensors" % (i + 1, shards)
        size += write_safetensors(os.path.join(outdir, fn), {n: tensors[n] for n in g}, dtype)
        for n in g:
            weight_map[n] = fn
    with open(os.path.join(outdir, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": size},
                   "weight_map": dict(sorted(weight_map.items()))}, f, indent=2)
        f.write("\n")


def llama_config(hidden, intermediate, layers, heads, kv_heads, vocab, head_dim=None,
                 rope_theta=10000.0, rope_scaling=None, max_pos=2048, rms_eps=1e-5,
                 tied=False, dtype="F32"):
    c = {
        "architectures": ["LlamaForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "hidden_act": "silu",
        "hidden_size": hidden,
        "initializer_range": 0.02,
        "intermediate_size": intermediate,
        "max_position_embeddings": max_pos,
        "mlp_bias": False,
        "model_type": "llama",
        "num_attention_heads": heads,
        "num_hidden_layers": layers,
        "num_key_value_heads": kv_heads,
        "pretraining_tp": 1,
        "rms_norm_eps": rms_eps,
        "rope_scaling": rope_scaling,
        "rope_theta": rope_theta,
        "tie_word_embeddings": tied,
        "torch_dtype": DTYPE_TORCH[dtype],
        "transformers_version": "4.44.0",
        "use_cache": True,
        "vocab_size": vocab,
    }
    if head_dim is not None and head_dim != hidden // heads:
        c["head_dim"] = head_dim
    return c


def longllama_config(c, mem_layers, last_context_length, grouping=None):
    """c (llama_config) turned into a LongLLaMA config.json as the released checkpoints have it
    (REFERENCE.md 1.3): model_type "longllama", the memory-layer keys, MHA, rope_scaling null.
    The tensors are Llama's."""
    c = dict(c)
    for k in ("attention_bias", "attention_dropout", "mlp_bias", "pretraining_tp", "rope_scaling"):
        c.pop(k, None)
    c.update({
        "architectures": ["LongLlamaForCausalLM"],
        "model_type": "longllama",
        "mem_layers": list(mem_layers),
        "mem_dtype": "bfloat16",
        "mem_positionals": True,
        "mem_attention_grouping": grouping,
        "last_context_length": last_context_length,
        "torch_attention": False,
        "gradient_checkpoint_every_ith": 1,
        "pad_token_id": 0,
    })
    return dict(sorted(c.items()))


def random_weights(rng, hidden, intermediate, layers, heads, kv_heads, head_dim, vocab, tied):
    H, I, hd = hidden, intermediate, head_dim

    def lin(out, inp, std):
        return (rng.standard_normal((out, inp)) * std).astype(np.float32)

    def norm(n):
        return (1.0 + 0.2 * rng.standard_normal(n)).astype(np.float32)

    t = {}
    # Embedding rows O(1). When tied it is also the classifier: logits std ~ sqrt(H) * 0.3.
    t["model.embed_tokens.weight"] = (rng.standard_normal((vocab, H)) *
                                      (0.3 if tied else 1.0)).astype(np.float32)
    # q, k entries of the normed input have variance s^2 * H each; score std = s^2 * H.
    sqk = np.sqrt(1.5 / H)
    for i in range(layers):
        p = "model.layers.%d." % i
        t[p + "input_layernorm.weight"] = norm(H)
        t[p + "self_attn.q_proj.weight"] = lin(heads * hd, H, sqk)
        t[p + "self_attn.k_proj.weight"] = lin(kv_heads * hd, H, sqk)
        t[p + "self_attn.v_proj.weight"] = lin(kv_heads * hd, H, 1 / np.sqrt(H))
        t[p + "self_attn.o_proj.weight"] = lin(H, heads * hd, 1 / np.sqrt(heads * hd))
        t[p + "post_attention_layernorm.weight"] = norm(H)
        t[p + "mlp.gate_proj.weight"] = lin(I, H, 1 / np.sqrt(H))
        t[p + "mlp.up_proj.weight"] = lin(I, H, 1 / np.sqrt(H))
        t[p + "mlp.down_proj.weight"] = lin(H, I, 1.5 / np.sqrt(I))
    t["model.norm.weight"] = norm(H)
    if not tied:
        t["lm_head.weight"] = lin(vocab, H, 2 / np.sqrt(H))
    return t


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--intermediate", type=int, default=688)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=None, help="default: --heads (MHA)")
    ap.add_argument("--head-dim", type=int, default=None, help="default hidden/heads")
    ap.add_argument("--vocab", type=int, default=1024)
    ap.add_argument("--dtype", choices=["F32", "BF16", "F16"], default="F32")
    ap.add_argument("--tied", action="store_true")
    ap.add_argument("--shards", type=int, default=1)
    ap.add_argument("--rope-theta", type=float, default=10000.0)
    ap.add_argument("--rope-scaling", default=None, help="JSON object, e.g. "
                    "'{\"rope_type\":\"linear\",\"factor\":4}'")
    ap.add_argument("--max-pos", type=int, default=2048)
    ap.add_argument("--rms-eps", type=float, default=1e-5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--mem-layers", default=None,
                    help="LongLLaMA layout: the memory layers, e.g. 0,2 (with --last-context)")
    ap.add_argument("--last-context", type=int, default=None,
                    help="LongLLaMA last_context_length (default max_pos / 2)")
    ap.add_argument("--mem-grouping", default=None, help="mem_attention_grouping, e.g. 2,64")
    ap.add_argument("--tokenizer", default=None, help="tokenizer.json or tokenizer.model to copy")
    a = ap.parse_args(argv)
    kv = a.kv_heads or a.heads
    if a.heads % kv:
        sys.exit("gen_hf_model: --heads must be a multiple of --kv-heads")
    hd = a.head_dim or a.hidden // a.heads
    if hd % 2:
        sys.exit("gen_hf_model: head_dim must be even")
    rs = json.loads(a.rope_scaling) if a.rope_scaling else None
    rng = np.random.default_rng(a.seed)
    t = random_weights(rng, a.hidden, a.intermediate, a.layers, a.heads, kv, hd, a.vocab, a.tied)
    cfg = llama_config(a.hidden, a.intermediate, a.layers, a.heads, kv, a.vocab, head_dim=hd,
                       rope_theta=a.rope_theta, rope_scaling=rs, max_pos=a.max_pos,
                       rms_eps=a.rms_eps, tied=a.tied, dtype=a.dtype)
    if a.mem_layers is not None:
        if kv != a.heads or rs is not None:
            sys.exit("gen_hf_model: LongLLaMA is MHA with rope_scaling null")
        ml = [int(x) for x in a.mem_layers.split(",") if x != ""]
        grouping = [int(x) for x in a.mem_grouping.split(",")] if a.mem_grouping else None
        last = a.last_context if a.last_context is not None else a.max_pos // 2
        cfg = longllama_config(cfg, ml, last, grouping)
    write_model_dir(a.outdir, cfg, t, a.dtype, a.shards)
    if a.tokenizer:
        shutil.copy(a.tokenizer, os.path.join(a.outdir, os.path.basename(a.tokenizer)))


if __name__ == "__main__":
    main()
