#!/usr/bin/python3
"""hf_to_gguf.py MODELDIR OUT.gguf [--dtype F32|BF16|F16] [--name NAME]

Converts a HF Llama-layout model directory (config.json; model.safetensors, or shards named by
model.safetensors.index.json; F32/BF16/F16 tensors) to a GGUF v3 file that llama.cpp loads, so
that llama.cpp can be run on exactly the weights our engine reads. numpy only; written from
REFERENCE.md section 3 and the key/tensor names of llama.cpp's gguf-py (constants.py), not
from its converter.

What it writes
- general.architecture "llama", general.name, general.alignment 32, general.file_type
  (0 all F32, 1 mostly F16, 32 mostly BF16).
- llama.{vocab_size, context_length (max_position_embeddings), embedding_length, block_count,
  feed_forward_length, attention.head_count, attention.head_count_kv,
  attention.layer_norm_rms_epsilon, rope.freq_base, rope.dimension_count (= head_dim)};
  attention.key_length/value_length when head_dim != hidden/heads.
- rope_scaling: linear -> rope.scaling.type "linear" + factor; yarn -> type "yarn", factor,
  original_context_length (+ attn_factor if given); llama3 -> a "rope_freqs.weight" F32 tensor
  of per-frequency divisors (llama.cpp divides each frequency by it), computed from the
  rope_scaling block (including its original_max_position_embeddings); dynamic -> nothing
  (llama.cpp has no dynamic NTK; identical below max_position_embeddings) with a warning.
- Tensors: token_embd, output_norm, output (absent when tied: llama.cpp then reuses
  token_embd), blk.N.{attn_norm, attn_q, attn_k, attn_v, attn_output, ffn_norm, ffn_gate,
  ffn_up, ffn_down}. Dims innermost first (a HF [out, in] matrix is ne = [in, out], same bytes).
  Matrices in --dtype (default: the checkpoint's dtype); 1-D norms always F32.
- q and k rows are un-permuted from HF's rotate_half order (pairs j, j+d/2 within a head) back
  to adjacent pairs (2j, 2j+1), which is what GGUF's (normal-mode) RoPE rotates:
  per head, new row 2j = old row j, new row 2j+1 = old row j + d/2.
- Vocabulary (llama.cpp refuses a model without one):
  tokenizer.model (SentencePiece protobuf) -> "llama" (SPM) vocab with its scores and types;
  tokenizer.json byte-level BPE -> "gpt2" vocab + merges (pre "llama-bpe" for Llama 3);
  tokenizer.json with byte_fallback (Llama 2 style) -> "llama" vocab, scores = -merge rank;
  otherwise, or when the tokenizer holds more tokens than vocab_size (a random test model),
  a synthetic SPM vocab of vocab_size pieces: <unk>, <s>, </s>, the 256 <0xNN> byte pieces
  (as many as fit, <0x0A> first), then dummy pieces. A tokenizer with fewer tokens than
  vocab_size is padded with "[PAD<i>]" pieces of type unused.
"""
import argparse
import json
import math
import os
import struct
import sys

import numpy as np

ALIGN = 32
# ggml types
GGML_F32, GGML_F16, GGML_BF16 = 0, 1, 30
GGML_OF = {"F32": GGML_F32, "F16": GGML_F16, "BF16": GGML_BF16}
ITEMSIZE = {GGML_F32: 4, GGML_F16: 2, GGML_BF16: 2}
FILE_TYPE = {"F32": 0, "F16": 1, "BF16": 32}
# GGUF metadata value types
T_U8, T_I8, T_U16, T_I16, T_U32, T_I32, T_F32, T_BOOL, T_STR, T_ARR, T_U64, T_I64, T_F64 = range(13)
# SentencePiece / llama.cpp token types
TOK_NORMAL, TOK_UNKNOWN, TOK_CONTROL, TOK_USER, TOK_UNUSED, TOK_BYTE = 1, 2, 3, 4, 5, 6


def die(msg):
    sys.exit("hf_to_gguf: " + msg)


# ------------------------------------------------------------------ safetensors --------------

ST_NP = {"F32": "<f4", "F16": "<f2", "BF16": "<u2"}


class Checkpoint:
    def __init__(self, d):
        idx = os.path.join(d, "model.safetensors.index.json")
        if os.path.exists(idx):
            with open(idx) as f:
                files = sorted(set(json.load(f)["weight_map"].values()))
        elif os.path.exists(os.path.join(d, "model.safetensors")):
            files = ["model.safetensors"]
        else:
            die("%s: no model.safetensors nor model.safetensors.index.json" % d)
        self.t = {}
        for fn in files:
            p = os.path.join(d, fn)
            size = os.path.getsize(p)
            with open(p, "rb") as f:
                n = struct.unpack("<Q", f.read(8))[0]
                if n > size - 8:
                    die("%s: header length %d past end of file" % (p, n))
                h = json.loads(f.read(n).decode("utf-8"))
            h.pop("__metadata__", None)
            for name, info in h.items():
                dt = info["dtype"]
                if dt not in ST_NP:
                    die("%s: %s has dtype %s (only F32, BF16, F16)" % (p, name, dt))
                b, e = info["data_offsets"]
                shape = tuple(info["shape"])
                count = int(np.prod(shape)) if shape else 1
                if e - b != count * np.dtype(ST_NP[dt]).itemsize or 8 + n + e > size:
                    die("%s: %s byte range [%d, %d) does not fit shape %s" % (p, name, b, e, shape))
                if name in self.t:
                    die("tensor %s appears twice" % name)
                self.t[name] = (p, 8 + n + b, dt, shape)

    def shape(self, name):
        return self.t[name][3]

    def dtype(self, name):
        return self.t[name][2]

    def f32(self, name):
        p, off, dt, shape = self.t[name]
        count = int(np.prod(shape)) if shape else 1
        raw = np.fromfile(p, dtype=ST_NP[dt], count=count, offset=off)
        if raw.size != count:
            die("%s: %s truncated" % (p, name))
        if dt == "BF16":
            raw = (raw.astype(np.uint32) << 16).view(np.float32)
        return raw.astype(np.float32, copy=False).reshape(shape)


def to_bf16_bits(a):
    """float32 -> bf16 bits, round to nearest even; NaN stays NaN."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    r = ((u.astype(np.uint64) + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    nan = np.isnan(a)
    if nan.any():
        r[nan] = ((u[nan] >> 16) | 0x40).astype(np.uint16)
    return r


def encode(a, ggml_type):
    if ggml_type == GGML_F32:
        return np.ascontiguousarray(a, dtype="<f4").tobytes()
    if ggml_type == GGML_F16:
        if np.isfinite(a).all() and not np.isfinite(a.astype(np.float16)).all():
            die("a value overflows float16; use --dtype F32 or BF16")
        return np.ascontiguousarray(a.astype("<f2")).tobytes()
    if ggml_type == GGML_BF16:
        return to_bf16_bits(a).astype("<u2").tobytes()
    raise ValueError(ggml_type)


def unpermute_rotate_half(w, n_head):
    """HF rows of one head: [x_0..x_{d/2-1}, y_0..y_{d/2-1}] (pairs j, j+d/2)
    -> GGUF rows [x_0, y_0, x_1, y_1, ...] (adjacent pairs)."""
    rows = w.shape[0]
    if rows % (2 * n_head):
        die("q/k rows %d not a multiple of 2 * heads %d" % (rows, n_head))
    d = rows // n_head
    return w.reshape(n_head, 2, d // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


# ------------------------------------------------------------------ GGUF writing -------------


def g_str(s):
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


class KV:
    def __init__(self):
        self.items = []

    def add(self, key, typ, val):
        if typ == T_STR:
            payload = g_str(val)
        elif typ == T_ARR:
            et, vals = val
            payload = struct.pack("<IQ", et, len(vals))
            if et == T_STR:
                payload += b"".join(g_str(v) for v in vals)
            else:
                fmt = {T_I32: "<i4", T_F32: "<f4", T_U32: "<u4"}[et]
                payload += np.asarray(vals, dtype=fmt).tobytes()
        else:
            fmt = {T_U32: "<I", T_I32: "<i", T_F32: "<f", T_BOOL: "<?", T_U64: "<Q"}[typ]
            payload = struct.pack(fmt, val)
        self.items.append(g_str(key) + struct.pack("<I", typ) + payload)

    def u32(self, k, v):
        self.add(k, T_U32, int(v))

    def f32(self, k, v):
        self.add(k, T_F32, float(v))

    def s(self, k, v):
        self.add(k, T_STR, v)

    def b(self, k, v):
        self.add(k, T_BOOL, bool(v))


def write_gguf(path, kv, tensors):
    """tensors: list of (name, ne list innermost first, ggml type, producer() -> bytes)."""
    infos, off = [], 0
    for name, ne, typ, _ in tensors:
        nbytes = int(np.prod(ne)) * ITEMSIZE[typ]
        infos.append(g_str(name) + struct.pack("<I", len(ne)) +
                     struct.pack("<%dQ" % len(ne), *ne) + struct.pack("<IQ", typ, off))
        off += nbytes + (-nbytes % ALIGN)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kv.items)))
        for it in kv.items:
            f.write(it)
        for it in infos:
            f.write(it)
        f.write(b"\0" * (-f.tell() % ALIGN))
        base = f.tell()
        for name, ne, typ, produce in tensors:
            data = produce()
            if len(data) != int(np.prod(ne)) * ITEMSIZE[typ]:
                die("internal: %s produced %d bytes" % (name, len(data)))
            f.write(data)
            f.write(b"\0" * (-(f.tell() - base) % ALIGN))
    os.replace(tmp, path)
    return base + off


# ------------------------------------------------------------------ vocabularies -------------


def pb_fields(buf):
    """Minimal protobuf wire-format reader: yields (field number, wire type, value)."""
    i, n = 0, len(buf)

    def varint():
        nonlocal i
        r = s = 0
        while True:
            if i >= n:
                raise ValueError("truncated varint")
            c = buf[i]
            i += 1
            r |= (c & 0x7F) << s
            s += 7
            if c < 0x80:
                return r

    while i < n:
        key = varint()
        fn, wt = key >> 3, key & 7
        if wt == 0:
            yield fn, wt, varint()
        elif wt == 1:
            yield fn, wt, buf[i:i + 8]
            i += 8
        elif wt == 2:
            ln = varint()
            yield fn, wt, buf[i:i + ln]
            i += ln
        elif wt == 5:
            yield fn, wt, buf[i:i + 4]
            i += 4
        else:
            raise ValueError("wire type %d" % wt)
    if i != n:
        raise ValueError("truncated message")


def read_spm(path):
    """SentencePiece ModelProto -> dict(tokens, scores, types, unk, bos, eos, add_prefix).
    Returns None if the file is not a SentencePiece protobuf (e.g. tiktoken ranks)."""
    buf = open(path, "rb").read()
    tokens, scores, types = [], [], []
    trainer, add_prefix = {}, True
    try:
        for fn, wt, v in pb_fields(buf):
            if fn == 1 and wt == 2:
                piece, score, typ = None, 0.0, TOK_NORMAL
                for f2, w2, v2 in pb_fields(v):
                    if f2 == 1 and w2 == 2:
                        piece = bytes(v2).decode("utf-8")
                    elif f2 == 2 and w2 == 5:
                        score = struct.unpack("<f", v2)[0]
                    elif f2 == 3 and w2 == 0:
                        typ = v2
                if piece is None:
                    return None
                tokens.append(piece)
                scores.append(score)
                types.append(typ)
            elif fn == 2 and wt == 2:
                for f2, w2, v2 in pb_fields(v):
                    if w2 == 0:
                        trainer[f2] = v2 - (1 << 64) if v2 >= 1 << 63 else v2
            elif fn == 3 and wt == 2:
                for f2, w2, v2 in pb_fields(v):
                    if f2 == 3 and w2 == 0:
                        add_prefix = bool(v2)
    except (ValueError, UnicodeDecodeError, struct.error):
        return None
    if not tokens:
        return None
    # trainer_spec: unk_id 40, bos_id 41, eos_id 42 (defaults 0, 1, 2)
    return dict(model="llama", tokens=tokens, scores=scores, types=types,
                unk=trainer.get(40, 0), bos=trainer.get(41, 1), eos=trainer.get(42, 2),
                add_prefix=add_prefix, source=os.path.basename(path))


BYTE_LEVEL = None


def byte_level_alphabet():
    """GPT-2's byte -> printable unicode character map."""
    global BYTE_LEVEL
    if BYTE_LEVEL is None:
        bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
        cs = bs[:]
        k = 0
        for b in range(256):
            if b not in bs:
                bs.append(b)
                cs.append(256 + k)
                k += 1
        BYTE_LEVEL = {b: chr(c) for b, c in zip(bs, cs)}
    return BYTE_LEVEL


def read_tokenizer_json(path):
    j = json.load(open(path, encoding="utf-8"))
    m = j.get("model") or {}
    if m.get("type") != "BPE":
        print("hf_to_gguf: %s: model type %r not supported; synthetic vocab" % (path, m.get("type")),
              file=sys.stderr)
        return None
    vocab = m["vocab"]
    added = j.get("added_tokens") or []
    n = max([max(vocab.values())] + [a["id"] for a in added]) + 1
    tokens = [None] * n
    types = [TOK_NORMAL] * n
    for t, i in vocab.items():
        tokens[i] = t
    special = {}
    for a in added:
        tokens[a["id"]] = a["content"]
        types[a["id"]] = TOK_CONTROL if a.get("special") else TOK_USER
        special[a["content"]] = a["id"]
    for i in range(n):
        if tokens[i] is None:
            tokens[i] = "[PAD%d]" % i
            types[i] = TOK_UNUSED
    merges = [mm if isinstance(mm, str) else " ".join(mm) for mm in m.get("merges", [])]
    blob = json.dumps(j.get("pre_tokenizer")) + json.dumps(j.get("decoder"))
    byte_level = "ByteLevel" in blob
    cfg_path = os.path.join(os.path.dirname(path), "tokenizer_config.json")
    tcfg = json.load(open(cfg_path)) if os.path.exists(cfg_path) else {}

    def tok_id(key, *fallback):
        v = tcfg.get(key)
        if isinstance(v, dict):
            v = v.get("content")
        for name in ([v] if v else []) + list(fallback):
            if name in special:
                return special[name]
            if name in vocab:
                return vocab[name]
        return None

    # BOS added by the tokenizer: tokenizer_config.json's add_bos_token, else whether the
    # post-processor template holds a special token (HF's Llama 2 and Llama 3 files do)
    add_bos = tcfg.get("add_bos_token")
    if add_bos is None:
        add_bos = "SpecialToken" in json.dumps(j.get("post_processor"))
    if byte_level:
        llama3 = "<|begin_of_text|>" in special
        bos = tok_id("bos_token", "<|begin_of_text|>", "<s>", "<|endoftext|>")
        eos = tok_id("eos_token", "<|end_of_text|>", "</s>", "<|endoftext|>")
        return dict(model="gpt2", pre="llama-bpe" if llama3 else "default", tokens=tokens,
                    types=types, merges=merges, bos=bos, eos=eos, unk=None,
                    add_bos=bool(add_bos) and bos is not None, source=os.path.basename(path))
    if m.get("byte_fallback"):
        # SPM-style BPE (Llama 2): llama.cpp's SPM tokenizer merges the pair with the highest
        # score, so give the result of merge r the score -r (merge order preserved).
        scores = [0.0] * n
        for r, mm in enumerate(merges):
            a, b = mm.split(" ", 1)
            t = vocab.get(a + b)
            if t is not None and scores[t] == 0.0:
                scores[t] = -float(r + 1)
        for i, t in enumerate(tokens):
            if len(t) == 6 and t.startswith("<0x") and t.endswith(">"):
                types[i] = TOK_BYTE
        unk = vocab.get(m.get("unk_token") or "<unk>")
        if unk is not None:
            types[unk] = TOK_UNKNOWN
        norm = json.dumps(j.get("normalizer"))
        return dict(model="llama", tokens=tokens, scores=scores, types=types,
                    unk=unk, bos=tok_id("bos_token", "<s>"), eos=tok_id("eos_token", "</s>"),
                    add_bos=bool(add_bos),
                    add_prefix="Prepend" in norm or "Metaspace" in json.dumps(j.get("pre_tokenizer")),
                    source=os.path.basename(path))
    print("hf_to_gguf: %s: BPE that is neither byte-level nor byte-fallback; synthetic vocab"
          % path, file=sys.stderr)
    return None


def synthetic_vocab(n):
    """SPM vocab of n pieces: only there so that llama.cpp loads a random model."""
    if n < 4:
        die("vocab_size %d too small for a vocabulary llama.cpp accepts" % n)
    tokens = ["<unk>", "<s>", "</s>"]
    types = [TOK_UNKNOWN, TOK_CONTROL, TOK_CONTROL]
    order = [0x0A] + [b for b in range(256) if b != 0x0A]
    for b in order[:min(256, n - 3)]:
        tokens.append("<0x%02X>" % b)
        types.append(TOK_BYTE)
    i = 0
    while len(tokens) < n:
        tokens.append("\u2581tok%d" % i)
        types.append(TOK_NORMAL)
        i += 1
    return dict(model="llama", tokens=tokens, scores=[-float(k) for k in range(n)], types=types,
                unk=0, bos=1, eos=2, add_prefix=True, source="synthetic")


def load_vocab(d, vocab_size, want_synthetic):
    v = None
    if not want_synthetic:
        spm = os.path.join(d, "tokenizer.model")
        tj = os.path.join(d, "tokenizer.json")
        if os.path.exists(spm):
            v = read_spm(spm)
            if v is None:
                print("hf_to_gguf: tokenizer.model is not a SentencePiece model (tiktoken?)",
                      file=sys.stderr)
        if v is None and os.path.exists(tj):
            v = read_tokenizer_json(tj)
    if v is not None and len(v["tokens"]) > vocab_size:
        print("hf_to_gguf: %s holds %d tokens but vocab_size is %d; synthetic vocab"
              % (v["source"], len(v["tokens"]), vocab_size), file=sys.stderr)
        v = None
    if v is None:
        return synthetic_vocab(vocab_size)
    while len(v["tokens"]) < vocab_size:  # embedding padded past the tokenizer
        v["tokens"].append("[PAD%d]" % len(v["tokens"]))
        v["types"].append(TOK_UNUSED)
        if "scores" in v:
            v["scores"].append(-1e9)
    return v


def add_vocab_kv(kv, v):
    kv.s("tokenizer.ggml.model", v["model"])
    kv.s("tokenizer.ggml.pre", v.get("pre", "default"))
    kv.add("tokenizer.ggml.tokens", T_ARR, (T_STR, v["tokens"]))
    if "scores" in v:
        kv.add("tokenizer.ggml.scores", T_ARR, (T_F32, v["scores"]))
    kv.add("tokenizer.ggml.token_type", T_ARR, (T_I32, v["types"]))
    if v.get("merges"):
        kv.add("tokenizer.ggml.merges", T_ARR, (T_STR, v["merges"]))
    for key, name in (("bos", "bos_token_id"), ("eos", "eos_token_id"),
                      ("unk", "unknown_token_id")):
        if v.get(key) is not None and v[key] >= 0:
            kv.u32("tokenizer.ggml." + name, v[key])
    kv.b("tokenizer.ggml.add_bos_token", v.get("add_bos", v["model"] == "llama"))
    kv.b("tokenizer.ggml.add_eos_token", False)
    if v["model"] == "llama":
        kv.b("tokenizer.ggml.add_space_prefix", v.get("add_prefix", True))


# ------------------------------------------------------------------ conversion ---------------


def llama3_rope_factors(cfg, rs, head_dim):
    theta = float(cfg.get("rope_theta", 10000.0))
    factor = float(rs.get("factor", 8.0))
    lo = float(rs.get("low_freq_factor", 1.0))
    hi = float(rs.get("high_freq_factor", 4.0))
    Lo = float(rs.get("original_max_position_embeddings", 8192))
    if hi <= lo:
        die("llama3 rope_scaling needs high_freq_factor > low_freq_factor")
    out = []
    for j in range(head_dim // 2):
        w = theta ** (-2.0 * j / head_dim)
        lam = 2 * math.pi / w
        if lam < Lo / hi:
            out.append(1.0)
        elif lam > Lo / lo:
            out.append(factor)
        else:
            s = (Lo / lam - lo) / (hi - lo)
            out.append(1.0 / ((1 - s) / factor + s))
    return np.array(out, dtype=np.float32)


def convert(model_dir, out, dtype=None, name=None, synthetic_vocab_only=False, unpermute=True):
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    arch = (cfg.get("architectures") or ["LlamaForCausalLM"])[0]
    if cfg.get("model_type", "llama") != "llama" and arch != "LlamaForCausalLM":
        print("hf_to_gguf: warning: model_type %r, converting as llama" % cfg.get("model_type"),
              file=sys.stderr)
    if cfg.get("attention_bias") or cfg.get("mlp_bias"):
        die("attention_bias / mlp_bias not supported")
    ck = Checkpoint(model_dir)
    H = cfg["hidden_size"]
    nh = cfg["num_attention_heads"]
    nkv = cfg.get("num_key_value_heads") or nh
    hd = cfg.get("head_dim") or H // nh
    L = cfg["num_hidden_layers"]
    V = cfg["vocab_size"]
    I = cfg["intermediate_size"]
    emb = "model.embed_tokens.weight"
    if emb not in ck.t:
        die("no %s" % emb)
    if dtype is None:
        dtype = ck.dtype("model.layers.0.self_attn.q_proj.weight") if L else ck.dtype(emb)
    mtype = GGML_OF[dtype]

    expect = {emb: (V, H), "model.norm.weight": (H,)}
    for i in range(L):
        p = "model.layers.%d." % i
        expect.update({p + "input_layernorm.weight": (H,),
                       p + "self_attn.q_proj.weight": (nh * hd, H),
                       p + "self_attn.k_proj.weight": (nkv * hd, H),
                       p + "self_attn.v_proj.weight": (nkv * hd, H),
                       p + "self_attn.o_proj.weight": (H, nh * hd),
                       p + "post_attention_layernorm.weight": (H,),
                       p + "mlp.gate_proj.weight": (I, H),
                       p + "mlp.up_proj.weight": (I, H),
                       p + "mlp.down_proj.weight": (H, I)})
    tied = "lm_head.weight" not in ck.t
    if not tied:
        expect["lm_head.weight"] = (V, H)
    for n, shp in expect.items():
        if n not in ck.t:
            die("missing tensor %s" % n)
        if tuple(ck.shape(n)) != shp:
            die("%s has shape %s, config says %s" % (n, list(ck.shape(n)), list(shp)))
    extra = [n for n in ck.t if n not in expect and not n.endswith("rotary_emb.inv_freq")]
    if extra:
        die("unexpected tensors: %s" % ", ".join(sorted(extra)[:5]))

    tensors = []

    def add(gname, src, matrix, perm_heads=None):
        shp = ck.shape(src)
        typ = mtype if matrix else GGML_F32

        def produce():
            a = ck.f32(src)
            if perm_heads and unpermute:
                a = unpermute_rotate_half(a, perm_heads)
            return encode(a, typ)
        tensors.append((gname, list(reversed(shp)), typ, produce))

    add("token_embd.weight", emb, True)
    add("output_norm.weight", "model.norm.weight", False)
    if not tied:
        add("output.weight", "lm_head.weight", True)

    kv = KV()
    kv.s("general.architecture", "llama")
    kv.s("general.name", name or os.path.basename(os.path.normpath(model_dir)))
    kv.u32("general.alignment", ALIGN)
    kv.u32("general.file_type", FILE_TYPE[dtype])
    kv.u32("llama.vocab_size", V)
    kv.u32("llama.context_length", cfg.get("max_position_embeddings", 2048))
    kv.u32("llama.embedding_length", H)
    kv.u32("llama.block_count", L)
    kv.u32("llama.feed_forward_length", I)
    kv.u32("llama.attention.head_count", nh)
    kv.u32("llama.attention.head_count_kv", nkv)
    kv.f32("llama.attention.layer_norm_rms_epsilon", cfg.get("rms_norm_eps", 1e-6))
    kv.f32("llama.rope.freq_base", cfg.get("rope_theta", 10000.0))
    kv.u32("llama.rope.dimension_count", hd)
    if hd != H // nh:
        kv.u32("llama.attention.key_length", hd)
        kv.u32("llama.attention.value_length", hd)
    rs = cfg.get("rope_scaling") or {}
    kind = rs.get("rope_type", rs.get("type", "default")) if rs else "default"
    if kind == "linear":
        kv.s("llama.rope.scaling.type", "linear")
        kv.f32("llama.rope.scaling.factor", rs["factor"])
    elif kind == "yarn":
        kv.s("llama.rope.scaling.type", "yarn")
        kv.f32("llama.rope.scaling.factor", rs["factor"])
        kv.u32("llama.rope.scaling.original_context_length",
               rs.get("original_max_position_embeddings") or cfg.get("max_position_embeddings"))
        if rs.get("attention_factor") is not None:
            kv.f32("llama.rope.scaling.attn_factor", rs["attention_factor"])
    elif kind == "llama3":
        f = llama3_rope_factors(cfg, rs, hd)
        tensors.append(("rope_freqs.weight", [hd // 2], GGML_F32, lambda f=f: encode(f, GGML_F32)))
    elif kind == "dynamic":
        print("hf_to_gguf: warning: dynamic NTK rope scaling has no GGUF form; llama.cpp will "
              "use plain RoPE (same result up to max_position_embeddings)", file=sys.stderr)
    elif kind != "default":
        die("rope_scaling type %r not supported" % kind)

    for i in range(L):
        p, g = "model.layers.%d." % i, "blk.%d." % i
        add(g + "attn_norm.weight", p + "input_layernorm.weight", False)
        add(g + "attn_q.weight", p + "self_attn.q_proj.weight", True, perm_heads=nh)
        add(g + "attn_k.weight", p + "self_attn.k_proj.weight", True, perm_heads=nkv)
        add(g + "attn_v.weight", p + "self_attn.v_proj.weight", True)
        add(g + "attn_output.weight", p + "self_attn.o_proj.weight", True)
        add(g + "ffn_norm.weight", p + "post_attention_layernorm.weight", False)
        add(g + "ffn_gate.weight", p + "mlp.gate_proj.weight", True)
        add(g + "ffn_up.weight", p + "mlp.up_proj.weight", True)
        add(g + "ffn_down.weight", p + "mlp.down_proj.weight", True)

    v = load_vocab(model_dir, V, synthetic_vocab_only)
    add_vocab_kv(kv, v)
    size = write_gguf(out, kv, tensors)
    print("hf_to_gguf: %s: %d tensors, %s, vocab %s (%s, %d tokens), %d bytes"
          % (out, len(tensors), dtype, v["model"], v["source"], len(v["tokens"]), size),
          file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model_dir")
    ap.add_argument("out")
    ap.add_argument("--dtype", choices=["F32", "BF16", "F16"], default=None,
                    help="matrix type (default: the checkpoint's); norms are always F32")
    ap.add_argument("--name", default=None)
    ap.add_argument("--synthetic-vocab", action="store_true",
                    help="ignore any tokenizer in MODELDIR")
    ap.add_argument("--no-unpermute", action="store_true",
                    help="negative control for check_gguf.sh: keep HF's q/k row order (wrong)")
    a = ap.parse_args()
    convert(a.model_dir, a.out, a.dtype, a.name, a.synthetic_vocab, not a.no_unpermute)


if __name__ == "__main__":
    main()
