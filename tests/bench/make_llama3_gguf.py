#!/usr/bin/python3
"""Writes a vocabulary-only GGUF v3 file (no tensors) for the Llama 3 tokenizer, from its
tokenizer.json, so that llama.cpp can be measured on Llama 3 (the assets hold only the
Llama 2 and GPT-2 vocab GGUFs). Keys follow what llama.cpp's converter writes for Llama 3:
tokenizer.ggml.model "gpt2", tokenizer.ggml.pre "llama-bpe", tokens in the byte-level alphabet,
token_type (1 normal, 3 control), merges "a b".
usage: make_llama3_gguf.py tokenizer.json OUT.gguf"""
import json
import struct
import sys


def s(x):
    b = x.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def kv(key, typ, payload):
    return s(key) + struct.pack("<I", typ) + payload


def arr_str(items):
    return struct.pack("<IQ", 8, len(items)) + b"".join(s(x) for x in items)


def arr_i32(items):
    return struct.pack("<IQ", 5, len(items)) + struct.pack("<%di" % len(items), *items)


def main(src, dst):
    j = json.load(open(src, encoding="utf-8"))
    vocab = j["model"]["vocab"]
    n = max(max(vocab.values()), max(a["id"] for a in j["added_tokens"])) + 1
    tokens = [""] * n
    types = [1] * n
    for t, i in vocab.items():
        tokens[i] = t
    for a in j["added_tokens"]:
        tokens[a["id"]] = a["content"]
        types[a["id"]] = 3 if a["special"] else 4
    merges = [m if isinstance(m, str) else " ".join(m) for m in j["model"]["merges"]]
    u32 = lambda v: struct.pack("<I", v)
    items = [
        kv("general.architecture", 8, s("llama")),
        kv("general.name", 8, s("llama-bpe")),
        kv("llama.block_count", 4, u32(32)),
        kv("llama.context_length", 4, u32(8192)),
        kv("llama.embedding_length", 4, u32(4096)),
        kv("llama.feed_forward_length", 4, u32(14336)),
        kv("llama.attention.head_count", 4, u32(32)),
        kv("llama.attention.head_count_kv", 4, u32(8)),
        kv("llama.attention.layer_norm_rms_epsilon", 6, struct.pack("<f", 1e-5)),
        kv("llama.rope.freq_base", 6, struct.pack("<f", 500000.0)),
        kv("general.file_type", 4, u32(1)),
        kv("llama.vocab_size", 4, u32(n)),
        kv("llama.rope.dimension_count", 4, u32(128)),
        kv("tokenizer.ggml.model", 8, s("gpt2")),
        kv("tokenizer.ggml.pre", 8, s("llama-bpe")),
        kv("tokenizer.ggml.tokens", 9, arr_str(tokens)),
        kv("tokenizer.ggml.token_type", 9, arr_i32(types)),
        kv("tokenizer.ggml.merges", 9, arr_str(merges)),
        kv("tokenizer.ggml.bos_token_id", 4, u32(128000)),
        kv("tokenizer.ggml.eos_token_id", 4, u32(128001)),
        kv("tokenizer.ggml.add_bos_token", 7, struct.pack("<?", False)),
    ]
    with open(dst, "wb") as f:
        f.write(b"GGUF" + struct.pack("<IQQ", 3, 0, len(items)))
        for it in items:
            f.write(it)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
