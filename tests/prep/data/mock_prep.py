#!/usr/bin/python3
"""A stand-in for `longctx prep` that writes the same output contract, for testing
check_prep_output.py on real corpora before prep exists (and for timing it).

usage: mock_prep.py CORPUS_DIR OUT [--seq-len 4096 ...] [--keep 1.0] [--seed 1]
                    [--tokenizer MODEL] [--bos 1] [--longctx PATH] [--input-root DIR]

Reads every *.jsonl.zst / *.jsonl.gz / *.jsonl under CORPUS_DIR (sorted), keeps each accepted
record with probability --keep (a seeded hash of path and record), tokenizes it with Python
SentencePiece, shuffles the selection, packs it with `longctx shard pack --bos B` into
OUT/L<seq_len>/part-00000.shard for each --seq-len and writes OUT/manifest.tsv (doc_id = position
in the packed order, copies 1: pack gives every document its own doc_id). input_path is relative
to --input-root (default CORPUS_DIR).
"""
import argparse
import hashlib
import json
import os
import random
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import corpus_stats  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus")
    ap.add_argument("out")
    ap.add_argument("--seq-len", type=int, action="append")
    ap.add_argument("--keep", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--tokenizer", default=corpus_stats.DEFAULT_TOKENIZER)
    ap.add_argument("--bos", type=int, default=1)
    ap.add_argument("--longctx", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "build", "longctx"))
    ap.add_argument("--input-root")
    a = ap.parse_args()
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=a.tokenizer)
    root = a.input_root or a.corpus
    sel = []  # (input_path, record, domain, text)
    for path in corpus_stats.files_of([a.corpus]):
        rel = os.path.relpath(path, root)
        rec = -1
        for line in corpus_stats.open_lines(path):
            line = line.rstrip(b"\n")
            if not line:
                continue
            rec += 1
            try:
                obj = json.loads(line)
                text, dom = obj["text"], obj["meta"]["redpajama_set_name"]
            except (ValueError, KeyError, TypeError):
                continue
            if not isinstance(text, str) or not text or not isinstance(dom, str):
                continue
            h = int.from_bytes(hashlib.blake2b(("%d %s %d" % (a.seed, rel, rec)).encode(), digest_size=8).digest(), "little")
            if h / 2 ** 64 < a.keep:
                sel.append((rel, rec, dom, text))
    random.Random(a.seed).shuffle(sel)
    os.makedirs(a.out, exist_ok=True)
    ids_txt = os.path.join(a.out, "ids.txt.tmp")
    with open(ids_txt, "w") as f, open(os.path.join(a.out, "manifest.tsv"), "w") as m:
        m.write("doc_id\tinput_path\tmember\trecord\tdomain\ttokens\tcopies\n")
        for i in range(0, len(sel), 2048):
            chunk = sel[i:i + 2048]
            enc = sp.encode([s[3] for s in chunk], num_threads=os.cpu_count() or 1)
            for k, (s, e) in enumerate(zip(chunk, enc)):
                f.write(" ".join(map(str, e)) + "\n")
                m.write("%d\t%s\t-\t%d\t%s\t%d\t1\n" % (i + k, s[0], s[1], s[2], len(e) + (a.bos >= 0)))
    for L in a.seq_len or [4096]:
        os.makedirs(os.path.join(a.out, "L%d" % L), exist_ok=True)
        cmd = [a.longctx, "shard", "pack", "--output", os.path.join(a.out, "L%d" % L, "part-00000.shard"),
               "--vocab-size", "32000", "--seq-len", str(L)] + (["--bos", str(a.bos)] if a.bos >= 0 else []) + [ids_txt]
        subprocess.run(cmd, check=True)
    os.remove(ids_txt)
    print("%s: %d documents selected" % (a.out, len(sel)))


if __name__ == "__main__":
    main()
