#!/usr/bin/python3
"""Synthetic corpus of short unique documents for prep's scale benchmark (issue 13's corpus):
N jsonl lines {"text": six random words and a counter, "meta": {"redpajama_set_name": one of
four domains}}, about 19 Llama 2 tokens each, cut into files of at most --per-file lines.

usage: gen_short_docs.py OUTDIR N [--seed S] [--per-file K]"""
import argparse
import json
import os
import random

ap = argparse.ArgumentParser()
ap.add_argument("out")
ap.add_argument("n", type=int)
ap.add_argument("--seed", type=int, default=1)
ap.add_argument("--per-file", type=int, default=4_000_000)
a = ap.parse_args()
rng = random.Random(a.seed)
syll = ["ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "pa", "do", "gu", "hi", "ja", "be"]
words = sorted({"".join(rng.choice(syll) for _ in range(rng.randint(1, 3))) for _ in range(5000)})
domains = ["RedPajamaC4", "RedPajamaCommonCrawl", "RedPajamaGithub", "RedPajamaWikipedia"]
os.makedirs(a.out, exist_ok=True)
i = 0
f_no = 0
while i < a.n:
    m = min(a.per_file, a.n - i)
    path = os.path.join(a.out, "part-%04d.jsonl" % f_no)
    with open(path, "w") as f:
        lines = []
        for k in range(i, i + m):
            text = " ".join(rng.choices(words, k=6)) + " %d" % k
            lines.append('{"text": "%s", "meta": {"redpajama_set_name": "%s"}}\n'
                         % (text, domains[k & 3]))
            if len(lines) == 65536:
                f.writelines(lines)
                lines = []
        f.writelines(lines)
    i += m
    f_no += 1
