#!/usr/bin/python3
"""Independent model of concat packing, to check `longctx shard pack`:
documents ([bos] ids [eos]) run back to back and are cut every L tokens; each sequence lists
start:document:offset for every document piece it holds (an empty document included).

  pack_check.py gen DOCS.txt SEED      random documents, one line of ids each
  pack_check.py check DOCS.txt L BOS CAT.txt   compare with `shard cat --docs` output
"""
import random
import sys


def gen(path, seed):
    r = random.Random(seed)
    with open(path, "w") as f:
        for _ in range(400):
            n = r.choice([0, 0, 1, 5, 37, 100, 1000])
            f.write(" ".join(str(r.randrange(32000)) for _ in range(n)) + "\n")


def expected(docs, L, bos):
    seqs, pieces = [[]], [[]]
    for d, ids in enumerate(docs):
        toks = ([bos] if bos >= 0 else []) + ids
        k = 0
        while True:
            if len(seqs[-1]) == L and k < len(toks):
                seqs.append([])
                pieces.append([])
            pieces[-1].append((len(seqs[-1]), d, k))
            take = min(len(toks) - k, L - len(seqs[-1]))
            seqs[-1].extend(toks[k:k + take])
            k += take
            if k >= len(toks):
                break
    return seqs, pieces


def check(docs_path, L, bos, cat_path):
    docs = [[int(x) for x in line.split()] for line in open(docs_path)]
    seqs, pieces = expected(docs, L, bos)
    lines = open(cat_path).read().split("\n")[:-1]
    assert len(lines) == 2 * len(seqs), f"{len(lines) // 2} sequences, want {len(seqs)}"
    for i in range(len(seqs)):
        got = [int(x) for x in lines[2 * i].split()]
        assert got == seqs[i], f"sequence {i} differs"
        got_p = [tuple(int(v) for v in p.split(":")) for p in lines[2 * i + 1].split()[2:]]
        assert got_p == pieces[i], f"sequence {i} pieces {got_p[:4]} want {pieces[i][:4]}"
    print(f"pack_check: {len(docs)} documents, {len(seqs)} sequences of {L}: OK")


if __name__ == "__main__":
    if sys.argv[1] == "gen":
        gen(sys.argv[2], int(sys.argv[3]))
    else:
        check(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
