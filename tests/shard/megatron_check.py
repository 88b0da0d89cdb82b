#!/usr/bin/python3
"""An independent reader/writer of Megatron's indexed dataset (.idx/.bin), written with numpy
from the layout in REFERENCE.md section 3 (not from longctx's code):

  9-byte magic MMIDIDX\\x00\\x00, u64 version 1, u8 dtype code (8 uint16, 4 int32),
  u64 N sequences, u64 D = documents + 1, int32 lengths[N], int64 byte pointers[N],
  int64 document_indices[D]; .bin holds the tokens. Little-endian, unaligned.

  megatron_check.py check PREFIX EXPECTED.u32 DTYPE     compare with the ground truth
  megatron_check.py write PREFIX DTYPE SEED             write an edge-case dataset
"""
import sys
import numpy as np

DTYPES = {8: np.uint16, 4: np.int32}


def read_idx(prefix):
    raw = open(prefix + ".idx", "rb").read()
    assert raw[:9] == b"MMIDIDX\x00\x00", "bad magic"
    version = int(np.frombuffer(raw, "<u8", 1, 9)[0])
    dtype = raw[17]
    n = int(np.frombuffer(raw, "<u8", 1, 18)[0])
    d = int(np.frombuffer(raw, "<u8", 1, 26)[0])
    off = 34
    lengths = np.frombuffer(raw, "<i4", n, off)
    off += 4 * n
    pointers = np.frombuffer(raw, "<i8", n, off)
    off += 8 * n
    docs = np.frombuffer(raw, "<i8", d, off)
    off += 8 * d
    assert off == len(raw), f"idx has {len(raw) - off} trailing bytes"
    return version, dtype, lengths, pointers, docs


def read_u32_seqs(path):
    a = np.fromfile(path, "<u4")
    seqs, i = [], 0
    while i < len(a):
        n = int(a[i])
        seqs.append(a[i + 1:i + 1 + n])
        i += 1 + n
    return seqs


def check(prefix, expected, want_dtype):
    version, dtype, lengths, pointers, docs = read_idx(prefix)
    assert version == 1, version
    assert dtype == want_dtype, f"dtype {dtype}, want {want_dtype}"
    item = np.dtype(DTYPES[dtype]).itemsize
    binary = np.fromfile(prefix + ".bin", "<" + np.dtype(DTYPES[dtype]).str[1:])
    seqs = read_u32_seqs(expected)
    assert len(seqs) == len(lengths), f"{len(lengths)} sequences, want {len(seqs)}"
    pos = 0
    for i, s in enumerate(seqs):
        assert lengths[i] == len(s), f"seq {i}: length {lengths[i]} want {len(s)}"
        assert pointers[i] == pos * item, f"seq {i}: pointer {pointers[i]} want {pos * item}"
        got = binary[pos:pos + len(s)].astype(np.int64)
        assert np.array_equal(got, s.astype(np.int64)), f"seq {i}: tokens differ"
        pos += len(s)
    assert pos == len(binary), f".bin has {len(binary) - pos} extra tokens"
    # prep-style shards: one Megatron document per packed sequence
    assert np.array_equal(docs, np.arange(len(seqs) + 1)), "document_indices != 0..N"
    print(f"megatron_check: {prefix}: {len(seqs)} sequences, {pos} tokens, dtype {dtype}: OK")


def write(prefix, dtype, seed):
    """A dataset with the awkward cases: empty sequences, empty documents (repeated
    document_indices), trailing empty documents, ids near the dtype's range."""
    rng = np.random.default_rng(seed)
    t = DTYPES[dtype]
    top = 65535 if dtype == 8 else 200000
    lengths, chunks = [], []
    for i in range(300):
        n = int(rng.choice([0, 1, 7, 1000, 4096]))
        chunks.append(rng.integers(0, top + 1, n).astype(t))
        lengths.append(n)
    starts = sorted(set(rng.integers(1, 300, 40).tolist()))
    docs = [0, 0] + starts + [starts[5]] + [300, 300]  # empty docs at 0, inside and trailing
    docs = sorted(docs)
    lengths = np.array(lengths, "<i4")
    item = np.dtype(t).itemsize
    pointers = np.concatenate([[0], np.cumsum(lengths[:-1].astype(np.int64) * item)])
    with open(prefix + ".bin", "wb") as f:
        for c in chunks:
            f.write(c.astype("<" + np.dtype(t).str[1:]).tobytes())
    with open(prefix + ".idx", "wb") as f:
        f.write(b"MMIDIDX\x00\x00")
        f.write(np.array([1], "<u8").tobytes())
        f.write(bytes([dtype]))
        f.write(np.array([len(lengths), len(docs)], "<u8").tobytes())
        f.write(lengths.tobytes())
        f.write(pointers.astype("<i8").tobytes())
        f.write(np.array(docs, "<i8").tobytes())


if __name__ == "__main__":
    if sys.argv[1] == "check":
        check(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif sys.argv[1] == "write":
        write(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        sys.exit(__doc__)
