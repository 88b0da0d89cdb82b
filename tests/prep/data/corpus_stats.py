#!/usr/bin/python3
"""Token statistics of a jsonl / jsonl.zst / jsonl.gz corpus, per domain, with SentencePiece.

usage: corpus_stats.py [--tokenizer MODEL] [--domain-path meta.redpajama_set_name]
                       [--long 4096] [--max-docs N] [--json OUT] FILE_OR_DIR...

Prints per domain: documents, tokens, token share (vs the SlimPajama share of REFERENCE.md 1.1),
median tokens per document (vs REFERENCE.md), share of tokens in documents longer than --long
tokens, tokens per word (words = white-space separated) and characters per token. Tokens are
SentencePiece ids without BOS/EOS. Exit 0 always (it measures; gen tests judge the numbers).
"""
import argparse
import gzip
import json
import os
import subprocess

import numpy as np
import sentencepiece as spm

REF = {  # REFERENCE.md 1.1: share (Fu et al.'s code), median tokens
    "RedPajamaCommonCrawl": (0.53374772, 1066), "RedPajamaC4": (0.26609933, 315),
    "RedPajamaGithub": (0.05004782, 520), "RedPajamaArXiv": (0.04290379, 14565),
    "RedPajamaBook": (0.0414836, 121602), "RedPajamaWikipedia": (0.03402128, 409),
    "RedPajamaStackExchange": (0.03169647, 507),
}
DEFAULT_TOKENIZER = os.path.join(os.environ.get("LONGCTX_ASSETS") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "..", "shared", "assets"), "tokenizers", "llama2", "tokenizer.model")


def open_lines(path):
    if path.endswith(".zst"):
        p = subprocess.Popen(["zstd", "-dc", "-q", path], stdout=subprocess.PIPE, bufsize=1 << 20)
        yield from p.stdout
        p.wait()
    elif path.endswith(".gz"):
        with gzip.open(path, "rb") as f:
            yield from f
    else:
        with open(path, "rb") as f:
            yield from f


def files_of(paths):
    for p in paths:
        if os.path.isdir(p):
            for root, _, names in sorted(os.walk(p)):
                for n in sorted(names):
                    if n.endswith((".jsonl", ".jsonl.zst", ".jsonl.gz")):
                        yield os.path.join(root, n)
        else:
            yield p


def get_path(obj, path):
    for k in path.split("."):
        if not isinstance(obj, dict) or k not in obj:
            return None
        obj = obj[k]
    return obj


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("inputs", nargs="+")
    ap.add_argument("--tokenizer", default=DEFAULT_TOKENIZER)
    ap.add_argument("--domain-path", default="meta.redpajama_set_name")
    ap.add_argument("--long", type=int, default=4096)
    ap.add_argument("--max-docs", type=int, default=0, help="stop after N documents (0: all)")
    ap.add_argument("--json", help="also write the numbers to this file")
    a = ap.parse_args()
    sp = spm.SentencePieceProcessor(model_file=a.tokenizer)
    per = {}  # domain -> lists
    batch, bdom = [], []

    def flush():
        if not batch:
            return
        ids = sp.encode(batch, num_threads=os.cpu_count() or 1)
        for t, d, x in zip(batch, bdom, ids):
            s = per.setdefault(d, {"tokens": [], "words": 0, "chars": 0})
            s["tokens"].append(len(x))
            s["words"] += len(t.split())
            s["chars"] += len(t)
        batch.clear()
        bdom.clear()

    n = 0
    for f in files_of(a.inputs):
        for line in open_lines(f):
            if not line.strip():
                continue
            obj = json.loads(line)
            batch.append(obj["text"])
            bdom.append(str(get_path(obj, a.domain_path)))
            n += 1
            if sum(map(len, batch)) > 8 << 20 or len(batch) >= 4096:
                flush()
            if a.max_docs and n >= a.max_docs:
                break
        if a.max_docs and n >= a.max_docs:
            break
    flush()
    total = sum(sum(s["tokens"]) for s in per.values())
    out = {"documents": n, "tokens": total, "domains": {}}
    print("%-24s %8s %12s %8s %8s %9s %8s %7s %6s %6s" % (
        "domain", "docs", "tokens", "share", "ref", "median", "ref", ">long", "tok/w", "ch/tok"))
    long_all = 0
    words_all = chars_all = 0
    for d in sorted(per, key=lambda d: -sum(per[d]["tokens"])):
        t = np.array(per[d]["tokens"], dtype=np.int64)
        tok = int(t.sum())
        lt = int(t[t > a.long].sum())
        long_all += lt
        words_all += per[d]["words"]
        chars_all += per[d]["chars"]
        ref = REF.get(d, (float("nan"), float("nan")))
        r = {"docs": len(t), "tokens": tok, "share": tok / total, "ref_share": ref[0],
             "median": float(np.median(t)), "ref_median": ref[1], "long_share": lt / max(tok, 1),
             "tokens_per_word": tok / max(per[d]["words"], 1), "chars_per_token": per[d]["chars"] / max(tok, 1)}
        out["domains"][d] = r
        print("%-24s %8d %12d %8.4f %8.4f %9.0f %8s %7.3f %6.3f %6.3f" % (
            d, r["docs"], tok, r["share"], ref[0], r["median"], ref[1], r["long_share"],
            r["tokens_per_word"], r["chars_per_token"]))
    out["long_share"] = long_all / max(total, 1)
    out["tokens_per_word"] = total / max(words_all, 1)
    out["chars_per_token"] = chars_all / max(total, 1)
    print("all: %d docs, %d tokens, share of tokens in docs > %d tokens: %.3f, tokens/word %.3f, chars/token %.3f" % (
        n, total, a.long, out["long_share"], out["tokens_per_word"], out["chars_per_token"]))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
