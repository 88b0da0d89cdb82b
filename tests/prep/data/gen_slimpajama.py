#!/usr/bin/python3
"""Generate a SlimPajama-like corpus (7 domains, jsonl.zst) for testing and benchmarking prep.

usage: gen_slimpajama.py OUTDIR --docs N [--seed S] [--files-per-domain K] [--text-kind words]
                         [--dup-fraction F] [--near-dup-fraction F] [--jobs J]
                         [--zstd-level L] [--frame-mb X] [--chunks C]

Output (paths in the .tsv files are relative to OUTDIR):
  OUTDIR/train/chunk<c>/example_train_<k>.jsonl.zst   the corpus: give OUTDIR/train to prep
      one record per line: {"text": "...", "meta": {"redpajama_set_name": "RedPajamaC4"}}
      7*K files; the records of all domains are shuffled together across the files.
  OUTDIR/docs.tsv                 one line per record: file, record, domain, words, kind, source
      (kind: orig | dup | near; source: the generated document's number, the same for a
      document and its verbatim copies)
  OUTDIR/planted_duplicates.tsv   one line per planted verbatim copy:
      orig_file orig_record orig_domain copy_file copy_record copy_domain
      (a copy of a copy's source can appear twice: groups of three identical texts)
  OUTDIR/planted_near_duplicates.tsv  same columns; texts that differ from the original in the
      last character ('.' -> '!'): exact dedup must keep both
  OUTDIR/corpus.json              parameters, per-domain plan (docs, words), files, sizes, MB/s

Document lengths: per domain a log-normal in *tokens* with the median of REFERENCE.md 1.1
(C4 315, CC 1066, SE 507, Wiki 409, Github 520, ArXiv 14565, Book 121602) and the sigma of
DOMAINS below, sampled by stratified quantiles (clipped to [0.0005, 0.9995]) so that even small
corpora hit the medians; words = tokens / TOKENS_PER_WORD (measured with the Llama 2
tokenizer). Document counts per domain are proportional to share / mean length, so that the
token shares come out at the SlimPajama shares of REFERENCE.md 1.1.

Every generated text is unique by construction: its first three words encode the document's
number (base 2048 over the 2048 most frequent words), so the only identical texts are the
planted copies. The output depends only on the arguments (not on --jobs).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import slimpajama_vocab as V  # noqa: E402

# name, SlimPajama token share (the shares in Fu et al.'s code), median tokens, sigma (log-normal)
DOMAINS = [
    ("RedPajamaCommonCrawl", 0.53374772, 1066, 1.0),
    ("RedPajamaC4", 0.26609933, 315, 0.9),
    ("RedPajamaGithub", 0.05004782, 520, 1.3),
    ("RedPajamaArXiv", 0.04290379, 14565, 0.8),
    ("RedPajamaBook", 0.0414836, 121602, 0.7),
    ("RedPajamaWikipedia", 0.03402128, 409, 1.0),
    ("RedPajamaStackExchange", 0.03169647, 507, 0.9),
]
# Llama 2 tokens per word of the generated text (1.309-1.310 measured on 3 x 33 MB of it, seeds 1-3,
# SentencePiece and shared/assets/tokenizers/llama2/tokenizer.model; see README.md)
TOKENS_PER_WORD = 1.31
Q_LO, Q_HI = 0.0005, 0.9995  # quantile clip: lengths within median * exp(+-3.29 sigma)
MIN_WORDS = 8
N_ID_WORDS = 2048  # the first 3 words encode the document number in base 2048
ZIPF_S, ZIPF_Q = 1.12, 2.7  # Zipf-Mandelbrot word frequencies: p(rank k) ~ (k + q)^-s
N_MID, N_TAIL = 4500, 5000  # seed-dependent pseudo-words: 2 morphemes (of 6,327 possible), 3-4 morphemes
TABLE_BITS = 22
# punctuation after a word, out of 1024: comma, period, period + paragraph break
P_COMMA, P_PERIOD, P_PARA = 62, 58, 10


def build_vocab(seed):
    """The word list in frequency-rank order (deterministic from the seed)."""
    rng = np.random.default_rng([seed, 1])
    words = list(V.HEAD)
    base = list(V.BASE)
    order = rng.permutation(len(base))
    # keep the tokenizer's rough frequency order but shuffle it within blocks of 300
    order = sorted(range(len(base)), key=lambda i: (i // 300, order[i]))
    words += [base[i] for i in order]
    seen = set(words)

    def pick(lst):
        return lst[int(rng.integers(len(lst)))]

    mid, tail = [], []
    while len(mid) < N_MID:
        if rng.random() < 0.7:
            w = pick(V.ROOT) + pick(V.SUF)
        else:
            w = pick(V.PRE) + pick(V.ROOT)
        if w not in seen:
            seen.add(w)
            mid.append(w)
    while len(tail) < N_TAIL:
        w = pick(V.PRE) + pick(V.ROOT) + pick(V.SUF)
        if rng.random() < 0.3:
            w += pick(V.SUF)
        if w not in seen:
            seen.add(w)
            tail.append(w)
    # non-ASCII words at seed-dependent places in the rare tail
    for w in V.NONASCII:
        if w not in seen:
            seen.add(w)
            tail.insert(int(rng.integers(len(tail) // 4, len(tail))), w)
    return words + mid + tail


class Vocab:
    def __init__(self, seed):
        words = build_vocab(seed)
        self.words = words
        n = len(words)
        self.n = n
        ranks = np.arange(n, dtype=np.float64)
        p = (ranks + ZIPF_Q) ** -ZIPF_S
        cdf = np.cumsum(p / p.sum())
        size = 1 << TABLE_BITS
        self.table = np.minimum(np.searchsorted(cdf, (np.arange(size) + 0.5) / size), n - 1).astype(np.int32)
        # 8 variants per word: (none, ',', '.', '.\n\n') x (lower, Capitalised); each carries
        # the separator that follows it
        variants = []
        for cap in (False, True):
            for suffix in (" ", ", ", ". ", ".\n\n"):
                for w in words:
                    ww = w[:1].upper() + w[1:] if cap else w
                    variants.append((ww + suffix).encode("utf-8"))
        self.variants = np.array(variants, dtype=object)
        # the punctuation code for each value of a 10-bit draw
        codes = np.zeros(1024, dtype=np.int32)
        codes[:P_COMMA] = 1
        codes[P_COMMA:P_COMMA + P_PERIOD] = 2
        codes[P_COMMA + P_PERIOD:P_COMMA + P_PERIOD + P_PARA] = 3
        self.punct_codes = codes

    def text(self, seed, number, n_words):
        """The UTF-8 text of generated document `number` (n_words >= 3 words)."""
        rng = np.random.Generator(np.random.PCG64([seed, 7, number]))
        w = self.table[rng.integers(0, 1 << TABLE_BITS, n_words, dtype=np.int32)]
        # unique prefix: the document number in base 2048 over the most frequent words
        k = number
        for j in range(3):
            w[j] = k % N_ID_WORDS
            k //= N_ID_WORDS
        punct = self.punct_codes[rng.integers(0, 1024, n_words, dtype=np.int16)]
        punct[-1] = 2
        cap = np.empty(n_words, dtype=np.int32)
        cap[0] = 1
        cap[1:] = punct[:-1] >= 2
        idx = w + self.n * (punct + 4 * cap)
        return b"".join(self.variants[idx].tolist()).rstrip()


def json_line(text, domain):
    # the vocabulary has no quote, backslash or control character except the '\n' we add
    return b'{"text": "' + text.replace(b"\n", b"\\n") + b'", "meta": {"redpajama_set_name": "' + \
        domain.encode() + b'"}}\n'


def lengths_tokens(n, median, sigma, rng):
    """n log-normal lengths (tokens) by stratified quantiles, clipped; in random order."""
    if n == 0:
        return np.zeros(0)
    u = 0.5 + 0.5 * (rng.random(n) - 0.5)  # jitter within the middle half of each stratum
    q = np.clip((np.arange(n) + u) / n, Q_LO, Q_HI)
    nd = statistics.NormalDist()
    z = np.array([nd.inv_cdf(float(x)) for x in q])
    t = median * np.exp(sigma * z)
    return t[rng.permutation(n)]


def mean_tokens(median, sigma):
    """Mean of the clipped log-normal (numerically, over 20,000 quantiles)."""
    nd = statistics.NormalDist()
    q = np.clip((np.arange(20000) + 0.5) / 20000, Q_LO, Q_HI)
    z = np.array([nd.inv_cdf(float(x)) for x in q])
    return float(np.mean(median * np.exp(sigma * z)))


def domain_counts(n_docs):
    w = np.array([s / mean_tokens(m, sg) for _, s, m, sg in DOMAINS])
    exact = n_docs * w / w.sum()
    counts = np.floor(exact).astype(np.int64)
    if n_docs >= len(DOMAINS):
        counts = np.maximum(counts, 1)
    rest = n_docs - counts.sum()
    if rest > 0:  # largest remainder
        for i in np.argsort(-(exact - np.floor(exact)), kind="stable")[:rest]:
            counts[i] += 1
    while counts.sum() > n_docs:
        counts[int(np.argmax(counts))] -= 1
    return counts


class ZstdWriter:
    """Writes bytes into a .zst file through the zstd CLI: one frame, or frames of frame_bytes."""

    def __init__(self, path, level, frame_bytes=None):
        self.path, self.level, self.frame_bytes = path, level, frame_bytes
        self.raw_bytes = 0
        if frame_bytes:
            self.f = open(path, "wb")
            self.buf = bytearray()
        else:
            self.p = subprocess.Popen(["zstd", "-q", "-f", "-%d" % level, "-o", path],
                                      stdin=subprocess.PIPE, bufsize=1 << 20)

    def _frame(self, data):
        # --stream-size: the frame header records its content size
        subprocess.run(["zstd", "-q", "-c", "-%d" % self.level, "--stream-size=%d" % len(data)],
                       input=bytes(data), stdout=self.f, check=True)

    def write(self, data):
        self.raw_bytes += len(data)
        if not self.frame_bytes:
            self.p.stdin.write(data)
            return
        self.buf += data
        while len(self.buf) >= self.frame_bytes:
            self._frame(self.buf[:self.frame_bytes])
            del self.buf[:self.frame_bytes]

    def close(self):
        if self.frame_bytes:
            if self.buf:
                self._frame(self.buf)
            self.f.close()
        else:
            self.p.stdin.close()
            if self.p.wait() != 0:
                raise RuntimeError("zstd failed on " + self.path)


_VOCAB = None


def write_file(job):
    """Worker: write one corpus file. job = (path, seed, level, frame_bytes, records) where
    records = [(number, n_words, domain, near)]."""
    global _VOCAB
    path, seed, level, frame_bytes, records = job
    if _VOCAB is None:
        _VOCAB = Vocab(seed)
    w = ZstdWriter(path, level, frame_bytes)
    out = []
    size = 0
    for number, n_words, domain, near in records:
        text = _VOCAB.text(seed, number, n_words)
        if near:
            text = text[:-1] + b"!"
        line = json_line(text, domain)
        out.append(line)
        size += len(line)
        if size >= 1 << 20:
            w.write(b"".join(out))
            out, size = [], 0
    if out:
        w.write(b"".join(out))
    w.close()
    return path, w.raw_bytes, os.path.getsize(path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("outdir")
    ap.add_argument("--docs", type=int, required=True, help="generated documents (copies come on top)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--files-per-domain", type=int, default=2, help="7*K files in all (default 2)")
    ap.add_argument("--text-kind", choices=["words"], default="words")
    ap.add_argument("--dup-fraction", type=float, default=0.0, help="verbatim copies, a fraction of --docs")
    ap.add_argument("--near-dup-fraction", type=float, default=0.0, help="near copies (last char changed)")
    ap.add_argument("--chunks", type=int, default=2, help="train/chunk1..C folders (default 2)")
    ap.add_argument("--zstd-level", type=int, default=3)
    ap.add_argument("--frame-mb", type=float, default=0.0,
                    help="write multi-frame .zst: a new frame every X MiB of jsonl, cut at that byte "
                         "(lines straddle frames), each frame with its content size; default one "
                         "frame per file (no content size, as when compressing a stream)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    a = ap.parse_args()
    t0 = time.time()
    n = a.docs
    if n < 1:
        sys.exit("--docs must be >= 1")
    if n > N_ID_WORDS ** 3:
        sys.exit("--docs too large for the unique prefix")
    rng = np.random.default_rng([a.seed, 2])

    # 1. the plan: domain and length of every generated document
    counts = domain_counts(n)
    dom = np.concatenate([np.full(c, i, dtype=np.int32) for i, c in enumerate(counts)])
    tok = np.concatenate([lengths_tokens(int(c), m, sg, rng) for (c, (_, _, m, sg)) in zip(counts, DOMAINS)])
    words = np.maximum(MIN_WORDS, np.rint(tok / TOKENS_PER_WORD)).astype(np.int64)
    perm = rng.permutation(n)  # the document number is its position after this shuffle
    dom, tok, words = dom[perm], tok[perm], words[perm]

    # 2. files: contiguous runs of the shuffled documents
    n_files = 7 * a.files_per_domain
    bounds = np.linspace(0, n, n_files + 1).round().astype(np.int64)
    names = ["train/chunk%d/example_train_%d.jsonl.zst" % (k % a.chunks + 1, k) for k in range(n_files)]
    # entries per file: (sort key, number, domain index, near)
    entries = [[] for _ in range(n_files)]
    for k in range(n_files):
        lo, hi = bounds[k], bounds[k + 1]
        for j, i in enumerate(range(lo, hi)):
            entries[k].append(((j + 0.5) / max(1, hi - lo), int(i), int(dom[i]), 0))

    # 3. planted copies: verbatim (kind 1) and near (kind 2), at random files and positions
    def plant(fraction, kind):
        m = int(round(fraction * n))
        if m == 0:
            return
        if kind == 2 and m > n:
            sys.exit("--near-dup-fraction must be <= 1")
        src = rng.choice(n, size=m, replace=m > n)
        regroup = rng.random(m) < 0.1  # a tenth copy an already-copied source (groups of 3)
        if kind == 1:  # (two near copies of one source would be identical to each other)
            src[regroup] = src[rng.integers(0, m, int(regroup.sum()))]
        same = rng.random(m) < 0.5
        other = rng.integers(0, len(DOMAINS), m)
        f = rng.integers(0, n_files, m)
        key = rng.random(m)
        for j in range(m):
            d = int(dom[src[j]]) if same[j] else int(other[j])
            entries[int(f[j])].append((float(key[j]), int(src[j]), d, kind))

    plant(a.dup_fraction, 1)
    plant(a.near_dup_fraction, 2)

    # record positions
    where = {}  # number -> (file, record) of the original
    records = []  # per file: [(number, n_words, domain, kind)]
    for k in range(n_files):
        entries[k].sort(key=lambda e: (e[0], e[3], e[1]))
        rec = []
        for r, (_, i, d, kind) in enumerate(entries[k]):
            rec.append((i, int(words[i]), d, kind))
            if kind == 0:
                where[i] = (k, r)
        records.append(rec)

    os.makedirs(a.outdir, exist_ok=True)
    for c in range(a.chunks):
        os.makedirs(os.path.join(a.outdir, "train", "chunk%d" % (c + 1)), exist_ok=True)
    dn = [d[0] for d in DOMAINS]
    with open(os.path.join(a.outdir, "docs.tsv"), "w") as fd, \
            open(os.path.join(a.outdir, "planted_duplicates.tsv"), "w") as fdup, \
            open(os.path.join(a.outdir, "planted_near_duplicates.tsv"), "w") as fnear:
        fd.write("file\trecord\tdomain\twords\tkind\tsource\n")
        hdr = "orig_file\torig_record\torig_domain\tcopy_file\tcopy_record\tcopy_domain\n"
        fdup.write(hdr)
        fnear.write(hdr)
        for k in range(n_files):
            for r, (i, nw, d, kind) in enumerate(records[k]):
                fd.write("%s\t%d\t%s\t%d\t%s\t%d\n" % (names[k], r, dn[d], nw, ("orig", "dup", "near")[kind], i))
                if kind:
                    ok, orr = where[i]
                    (fdup if kind == 1 else fnear).write("%s\t%d\t%s\t%s\t%d\t%s\n" % (
                        names[ok], orr, dn[int(dom[i])], names[k], r, dn[d]))

    # 4. write the files (in parallel; each file's bytes depend only on the plan)
    frame_bytes = int(a.frame_mb * (1 << 20)) if a.frame_mb > 0 else None
    jobs = [(os.path.join(a.outdir, names[k]), a.seed, a.zstd_level, frame_bytes,
             [(i, nw, dn[d], kind == 2) for (i, nw, d, kind) in records[k]]) for k in range(n_files)]
    # biggest files first, for load balance
    jobs.sort(key=lambda j: -sum(r[1] for r in j[4]))
    t1 = time.time()
    results = []
    if a.jobs > 1:
        import multiprocessing as mp
        with mp.get_context("fork").Pool(a.jobs) as pool:
            for res in pool.imap_unordered(write_file, jobs):
                results.append(res)
    else:
        for j in jobs:
            results.append(write_file(j))
    t2 = time.time()
    raw = sum(r[1] for r in results)
    comp = sum(r[2] for r in results)
    info = {
        "generator": "gen_slimpajama.py",
        "args": vars(a),
        "tokens_per_word": TOKENS_PER_WORD,
        "domains": {
            dn[i]: {"share": DOMAINS[i][1], "median_tokens": DOMAINS[i][2], "sigma": DOMAINS[i][3],
                    "docs": int(counts[i]), "words": int(words[dom == i].sum()),
                    "planned_tokens": float(tok[dom == i].sum())}
            for i in range(len(DOMAINS))},
        "records": int(sum(len(r) for r in records)),
        "files": {names[k]: len(records[k]) for k in range(n_files)},
        "jsonl_bytes": raw,
        "zst_bytes": comp,
        "seconds": round(t2 - t0, 2),
        "jsonl_mb_per_s": round(raw / 1e6 / max(t2 - t1, 1e-9), 1),
        "zst_mb_per_s": round(comp / 1e6 / max(t2 - t1, 1e-9), 1),
    }
    with open(os.path.join(a.outdir, "corpus.json"), "w") as f:
        json.dump(info, f, indent=1)
        f.write("\n")
    print("%s: %d records in %d files, %.1f MB jsonl, %.1f MB zst, %.1f s (%.1f MB/s jsonl, %.1f MB/s zst)" % (
        a.outdir, info["records"], n_files, raw / 1e6, comp / 1e6, t2 - t0,
        info["jsonl_mb_per_s"], info["zst_mb_per_s"]))


if __name__ == "__main__":
    main()
