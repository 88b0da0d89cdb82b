#!/usr/bin/python3
"""Tests of gen_slimpajama.py and gen_bad_inputs.py.

usage: /usr/bin/python3 test_generators.py [-v]   (about 40 s; env TOKENIZER overrides the model)
"""
import collections
import glob
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
PY = "/usr/bin/python3"
TOKENIZER = os.environ.get("TOKENIZER", os.path.join(os.environ.get("LONGCTX_ASSETS") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "..", "shared", "assets"), "tokenizers", "llama2", "tokenizer.model"))
sys.path.insert(0, HERE)
import corpus_stats  # noqa: E402


def gen(*args):
    subprocess.run([PY, os.path.join(HERE, "gen_slimpajama.py")] + list(map(str, args)), check=True,
                   stdout=subprocess.DEVNULL)


def sha_tree(root, pattern="**/*"):
    out = {}
    for p in sorted(glob.glob(os.path.join(root, pattern), recursive=True)):
        if os.path.isfile(p) and not p.endswith("corpus.json"):  # corpus.json has timings
            with open(p, "rb") as f:
                out[os.path.relpath(p, root)] = hashlib.sha256(f.read()).hexdigest()
    return out


def read_corpus(root):
    """{(file, record): (text, domain)} from the .jsonl.zst files"""
    recs = {}
    for p in sorted(glob.glob(os.path.join(root, "train", "**", "*.jsonl.zst"), recursive=True)):
        rel = os.path.relpath(p, root)
        data = subprocess.run(["zstd", "-dc", p], stdout=subprocess.PIPE, check=True).stdout
        for r, line in enumerate(data.split(b"\n")[:-1]):
            obj = json.loads(line)
            recs[(rel, r)] = (obj["text"], obj["meta"]["redpajama_set_name"])
    return recs


def read_tsv(path):
    with open(path) as f:
        rows = [ln.rstrip("\n").split("\t") for ln in f]
    return rows[0], rows[1:]


class SlimPajama(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="gen_sp_")
        cls.a = os.path.join(cls.tmp, "a")
        gen(cls.a, "--docs", 2000, "--seed", 11, "--dup-fraction", 0.02, "--near-dup-fraction", 0.01, "--jobs", 2)
        cls.recs = read_corpus(cls.a)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)

    def test_deterministic_and_independent_of_jobs(self):
        b = os.path.join(self.tmp, "b")
        gen(b, "--docs", 2000, "--seed", 11, "--dup-fraction", 0.02, "--near-dup-fraction", 0.01, "--jobs", 1)
        self.assertEqual(sha_tree(self.a), sha_tree(b))
        c = os.path.join(self.tmp, "c")
        gen(c, "--docs", 2000, "--seed", 12, "--dup-fraction", 0.02, "--near-dup-fraction", 0.01)
        self.assertNotEqual(sha_tree(self.a, "train/**/*.zst"), sha_tree(c, "train/**/*.zst"))

    def test_layout_and_docs_tsv(self):
        with open(os.path.join(self.a, "corpus.json")) as f:
            info = json.load(f)
        self.assertEqual(len(info["files"]), 14)
        self.assertEqual(info["records"], 2000 + 40 + 20)
        self.assertEqual(len(self.recs), info["records"])
        hdr, rows = read_tsv(os.path.join(self.a, "docs.tsv"))
        self.assertEqual(hdr, ["file", "record", "domain", "words", "kind", "source"])
        self.assertEqual(len(rows), len(self.recs))
        kinds = collections.Counter(r[4] for r in rows)
        self.assertEqual(kinds, {"orig": 2000, "dup": 40, "near": 20})
        for f, r, dom, words, kind, src in rows:
            text, d = self.recs[(f, int(r))]
            self.assertEqual(d, dom)
            self.assertEqual(len(text.split()), int(words))
        # every domain present; records of several domains in every file
        self.assertEqual(len({d for _, d in self.recs.values()}), 7)
        per_file = collections.defaultdict(set)
        for (f, _), (_, d) in self.recs.items():
            per_file[f].add(d)
        self.assertTrue(all(len(s) >= 3 for s in per_file.values()))

    def test_planted_duplicates_are_the_only_duplicates(self):
        groups = collections.defaultdict(list)
        for key, (text, _) in self.recs.items():
            groups[text].append(key)
        found = set()
        for keys in groups.values():
            keys.sort()
            for k in keys[1:]:
                found.add((keys[0], k))
        hdr, rows = read_tsv(os.path.join(self.a, "planted_duplicates.tsv"))
        self.assertEqual(hdr, ["orig_file", "orig_record", "orig_domain", "copy_file", "copy_record", "copy_domain"])
        self.assertEqual(len(rows), 40)
        planted = collections.defaultdict(set)
        for of, orr, od, cf, cr, cd in rows:
            self.assertEqual(self.recs[(of, int(orr))][0], self.recs[(cf, int(cr))][0])
            self.assertEqual(self.recs[(of, int(orr))][1], od)
            self.assertEqual(self.recs[(cf, int(cr))][1], cd)
            planted[(of, int(orr))].add((cf, int(cr)))
        # the same groups: original + its copies
        want = set()
        for o, copies in planted.items():
            keys = sorted([o] + list(copies))
            for k in keys[1:]:
                want.add((keys[0], k))
        self.assertEqual(found, want)
        removed = sum(len(k) - 1 for k in groups.values())
        self.assertEqual(removed, 40)  # exact dedup must remove exactly the 40 copies
        self.assertTrue(any(od != cd for _, _, od, _, _, cd in rows))  # some change domain
        # near duplicates differ from their original in the last character only
        _, rows = read_tsv(os.path.join(self.a, "planted_near_duplicates.tsv"))
        self.assertEqual(len(rows), 20)
        for of, orr, od, cf, cr, cd in rows:
            t1, t2 = self.recs[(of, int(orr))][0], self.recs[(cf, int(cr))][0]
            self.assertNotEqual(t1, t2)
            self.assertEqual(t1[:-1], t2[:-1])

    def test_text_shape(self):
        texts = [t for t, _ in self.recs.values()]
        self.assertTrue(all(t[:1].isupper() and t.endswith((".", "!")) for t in texts))
        self.assertTrue(any("\n\n" in t for t in texts))
        self.assertTrue(any(any(ord(c) > 127 for c in t) for t in texts))
        self.assertGreaterEqual(min(len(t.split()) for t in texts), 8)

    def test_multi_frame(self):
        f = os.path.join(self.tmp, "frames")
        gen(f, "--docs", 2000, "--seed", 11, "--dup-fraction", 0.02, "--near-dup-fraction", 0.01, "--frame-mb", 0.1)
        for p in sorted(glob.glob(os.path.join(self.a, "train", "*", "*.zst"))):
            q = os.path.join(f, os.path.relpath(p, self.a))
            d1 = subprocess.run(["zstd", "-dc", p], stdout=subprocess.PIPE, check=True).stdout
            d2 = subprocess.run(["zstd", "-dc", q], stdout=subprocess.PIPE, check=True).stdout
            self.assertEqual(d1, d2)
            lst = subprocess.run(["zstd", "-l", q], stdout=subprocess.PIPE, check=True).stdout.decode().split("\n")
            frames = int(lst[1].split()[0])
            frame_bytes = int(0.1 * (1 << 20))
            self.assertEqual(frames, (len(d2) + frame_bytes - 1) // frame_bytes)
            self.assertGreater(frames, 1)


@unittest.skipUnless(os.path.exists(TOKENIZER), "no tokenizer " + TOKENIZER)
class SlimPajamaStatistics(unittest.TestCase):
    """10,000 documents, tokenized with SentencePiece: shares, medians, long share, tokens/word"""

    def test_statistics(self):
        tmp = tempfile.mkdtemp(prefix="gen_sp_stats_")
        try:
            gen(tmp, "--docs", 10000, "--seed", 1)
            js = os.path.join(tmp, "stats.json")
            subprocess.run([PY, os.path.join(HERE, "corpus_stats.py"), "--tokenizer", TOKENIZER, "--json", js,
                            os.path.join(tmp, "train")], check=True, stdout=subprocess.DEVNULL)
            with open(js) as f:
                s = json.load(f)
        finally:
            shutil.rmtree(tmp)
        self.assertEqual(set(s["domains"]), set(corpus_stats.REF))
        for d, r in s["domains"].items():
            few = r["docs"] < 100  # Book (3 documents) and ArXiv (21) at this size
            self.assertLess(abs(r["share"] / r["ref_share"] - 1), 0.2 if few else 0.03, (d, r))
            self.assertLess(abs(r["median"] / r["ref_median"] - 1), 0.15 if few else 0.03, (d, r))
        self.assertGreater(s["long_share"], 0.27)
        self.assertLess(s["long_share"], 0.35)
        self.assertGreater(s["tokens_per_word"], 1.28)
        self.assertLess(s["tokens_per_word"], 1.34)


class BadInputs(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="gen_bad_")
        cls.d = os.path.join(cls.tmp, "a")
        subprocess.run([PY, os.path.join(HERE, "gen_bad_inputs.py"), cls.d], check=True, stdout=subprocess.DEVNULL)
        with open(os.path.join(cls.d, "expected.json")) as f:
            cls.e = json.load(f)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)

    def test_deterministic(self):
        b = os.path.join(self.tmp, "b")
        subprocess.run([PY, os.path.join(HERE, "gen_bad_inputs.py"), b], check=True, stdout=subprocess.DEVNULL)
        self.assertEqual(sha_tree(self.d), sha_tree(b))

    def test_files_and_invariants(self):
        on_disk = {os.path.relpath(p, self.d) for p in glob.glob(os.path.join(self.d, "**", "*"), recursive=True)
                   if os.path.isfile(p)} - {"expected.json"}
        self.assertEqual(on_disk, set(self.e["files"]))
        size = sum(os.path.getsize(os.path.join(self.d, f)) for f in on_disk)
        self.assertLess(size, 20 << 20)
        reasons = self.e["contract"]["reasons"]
        seen = collections.Counter()
        for name, f in self.e["files"].items():
            for pol in ("reject_policy", "replace_policy"):
                c = f[pol]
                self.assertEqual(sorted(c["rejects"]), sorted(reasons))
                self.assertEqual(c["records"], c["accepted"] + sum(c["rejects"].values()), name)
                for r, n in c["rejects"].items():
                    seen[r] += n
            self.assertLessEqual(f["replace_policy"]["rejects"]["utf8"], 0)
        self.assertTrue(all(seen[r] > 0 for r in reasons if r != "utf8"))
        self.assertGreater(self.e["files"]["invalid_utf8.jsonl"]["reject_policy"]["rejects"]["utf8"], 0)
        for name in ("empty.jsonl", "only_newlines.jsonl", "empty_content.jsonl.zst", "empty_content.jsonl.gz"):
            self.assertEqual(self.e["files"][name]["reject_policy"]["records"], 0)

    def test_counts_with_other_decoders(self):
        """line counts of the damaged and plain files, from the zstd / gzip / tar command-line tools"""
        def lines(data):
            return sum(1 for ln in data.split(b"\n") if ln)

        def complete_lines(data):
            return sum(1 for ln in data.split(b"\n")[:-1] if ln)
        for name, cmd in (("truncated.jsonl.zst", ["zstd", "-dc"]), ("truncated.jsonl.gz", ["gzip", "-dc"])):
            out = subprocess.run(cmd + [os.path.join(self.d, name)], stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL).stdout
            e = self.e["files"][name]
            self.assertEqual(complete_lines(out), e["records_before_damage"], name)
            self.assertEqual(e["reject_policy"]["records"], e["records_before_damage"] + 1)
            self.assertEqual(e["reject_policy"]["rejects"]["truncated"], 1)
        for name in ("truncated.tar.gz", "truncated.tar"):
            n = 0
            for member in ("a.jsonl", "sub/b.jsonl", "c.jsonl"):
                out = subprocess.run(["tar", "-xOf", os.path.join(self.d, name), member], stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL).stdout
                n += complete_lines(out) if member == "c.jsonl" else lines(out)
            self.assertEqual(n, self.e["files"][name]["records_before_damage"], name)
        with open(os.path.join(self.d, "junk.jsonl"), "rb") as f:
            self.assertEqual(lines(f.read()), self.e["files"]["junk.jsonl"]["reject_policy"]["rejects"]["json"])
        with open(os.path.join(self.d, "multimember.jsonl.gz"), "rb") as f:
            out = gzip.decompress(f.read())
        self.assertEqual(lines(out), 40)
        with open(os.path.join(self.d, "too_long_boundary.jsonl"), "rb") as f:
            lens = [len(ln) for ln in f.read().split(b"\n") if ln]
        self.assertIn(1 << 20, lens)
        self.assertIn((1 << 20) + 1, lens)

    def test_replace_texts(self):
        f = self.e["files"]["invalid_utf8.jsonl"]
        with open(os.path.join(self.d, "invalid_utf8.jsonl"), "rb") as fh:
            lines = [ln for ln in fh.read().split(b"\n") if ln]
        for k, text in f["replace_texts"].items():
            raw = lines[int(k)]
            body = raw[raw.index(b'"text": "') + 9:raw.index(b'", "meta"')]
            n_ff = text.count("\ufffd")
            self.assertGreater(n_ff, 0)
            self.assertEqual(len(text.encode("utf-8")), len(body) + 2 * n_ff)  # one U+FFFD per bad byte
            self.assertEqual(f["records_detail"][int(k)], [int(k), "utf8"])


if __name__ == "__main__":
    unittest.main()
