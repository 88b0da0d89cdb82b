#!/usr/bin/python3
"""Writes a HF tokenizer.json for a GPT-2-style byte-level BPE vocabulary stored in a GGUF file
(tokenizer.ggml.tokens / .merges / .token_type), read with the GGUF v3 layout of REFERENCE.md
section 3. Used to run llama.cpp's gpt-2 test vectors through longctx's tokenizer.json loader.
usage: gguf_to_tokenizer_json.py VOCAB.gguf OUT.json"""
import json
import struct
import sys

SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q",
          11: "<q", 12: "<d"}


def read_gguf_kv(path):
    data = open(path, "rb").read()
    assert data[:4] == b"GGUF", "not a GGUF file"
    version, n_tensors, n_kv = struct.unpack_from("<IQQ", data, 4)
    assert version == 3, version
    off = 24

    def string():
        nonlocal off
        (n,) = struct.unpack_from("<Q", data, off)
        s = data[off + 8:off + 8 + n].decode("utf-8", errors="surrogateescape")
        off += 8 + n
        return s

    def value(t):
        nonlocal off
        if t == 8:
            return string()
        if t == 9:
            et, n = struct.unpack_from("<IQ", data, off)
            off += 12
            return [value(et) for _ in range(n)]
        fmt = SCALAR[t]
        (v,) = struct.unpack_from(fmt, data, off)
        off += struct.calcsize(fmt)
        return v

    kv = {}
    for _ in range(n_kv):
        key = string()
        (t,) = struct.unpack_from("<I", data, off)
        off += 4
        kv[key] = value(t)
    return kv


def main(src, dst):
    kv = read_gguf_kv(src)
    assert kv["tokenizer.ggml.model"] == "gpt2", kv["tokenizer.ggml.model"]
    tokens = kv["tokenizer.ggml.tokens"]
    types = kv.get("tokenizer.ggml.token_type", [1] * len(tokens))
    vocab, added = {}, []
    for i, (tok, ty) in enumerate(zip(tokens, types)):
        if ty == 1:  # normal
            vocab[tok] = i
        else:  # control / user-defined: an added token
            added.append({"id": i, "content": tok, "single_word": False, "lstrip": False,
                          "rstrip": False, "normalized": False, "special": ty == 3})
    out = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                          "use_regex": True},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                    "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None,
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": False, "byte_fallback": False, "vocab": vocab,
                  "merges": kv["tokenizer.ggml.merges"]},
    }
    with open(dst, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
