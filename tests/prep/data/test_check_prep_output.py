#!/usr/bin/python3
"""Tests of check_prep_output.py: real shards made with `longctx shard pack` from a hand-made
manifest, and hand-written `shard cat --docs` streams (through a stand-in for longctx) for the
copy logic that pack cannot produce (copies > 1, interleaved copies).

usage: /usr/bin/python3 test_check_prep_output.py [-v]   (env LONGCTX, TOKENIZER override)
"""
import gzip
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
CHECKER = os.path.join(HERE, "check_prep_output.py")
LONGCTX = os.environ.get("LONGCTX", os.path.join(HERE, "..", "..", "..", "build", "longctx"))
TOKENIZER = os.environ.get("TOKENIZER", os.path.join(os.environ.get("LONGCTX_ASSETS") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "..", "shared", "assets"), "tokenizers", "llama2", "tokenizer.model"))
PY = "/usr/bin/python3"
HEADER = "doc_id\tinput_path\tmember\trecord\tdomain\ttokens\tcopies\n"


def sp():
    import sentencepiece as spm
    return spm.SentencePieceProcessor(model_file=TOKENIZER)


def rec(text, domain):
    return json.dumps({"text": text, "meta": {"redpajama_set_name": domain}}).encode()


class Corpus:
    """a tiny corpus: plain jsonl (with a reject line, an empty line and invalid UTF-8),
    jsonl.zst, jsonl.gz, a tar.gz member and a text file"""

    def __init__(self, root):
        self.root = root
        self.docs = []  # (input_path, member, record, domain, text)
        words = ("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho "
                 "sigma tau upsilon phi chi psi omega").split()

        def text(i, n):
            return " ".join(words[(i * 7 + j * 3) % len(words)] for j in range(n)) + " number %d." % i

        a = [rec(text(0, 40), "RedPajamaC4"), b"{not json", b"", rec(text(1, 90), "RedPajamaBook"),
             b'{"text": "caf\xe9 invalid \xff bytes", "meta": {"redpajama_set_name": "RedPajamaC4"}}',
             rec(text(2, 7), "RedPajamaArXiv"), rec("\u6771\u4eac \U0001F600 unicode", "RedPajamaGithub")]
        self.put("a.jsonl", b"\n".join(a) + b"\n")
        # records of a.jsonl: 0 text0, 1 json reject, (empty line), 2 text1, 3 invalid utf8, 4 text2, 5 unicode
        self.docs += [("a.jsonl", "-", 0, "RedPajamaC4", text(0, 40)),
                      ("a.jsonl", "-", 2, "RedPajamaBook", text(1, 90)),
                      ("a.jsonl", "-", 3, "RedPajamaC4", "caf\ufffd invalid \ufffd bytes"),
                      ("a.jsonl", "-", 4, "RedPajamaArXiv", text(2, 7)),
                      ("a.jsonl", "-", 5, "RedPajamaGithub", "\u6771\u4eac \U0001F600 unicode")]
        b = b"".join(rec(text(10 + i, 20 + 30 * i), "RedPajamaWikipedia") + b"\n" for i in range(4))
        self.put("sub/b.jsonl.zst", subprocess.run(["zstd", "-q", "-c"], input=b, stdout=subprocess.PIPE, check=True).stdout)
        self.docs += [("sub/b.jsonl.zst", "-", i, "RedPajamaWikipedia", text(10 + i, 20 + 30 * i)) for i in (1, 3)]
        c = b"".join(rec(text(20 + i, 15), "RedPajamaStackExchange") + b"\n" for i in range(3))
        self.put("c.jsonl.gz", gzip.compress(c, mtime=0))
        self.docs += [("c.jsonl.gz", "-", 2, "RedPajamaStackExchange", text(22, 15))]
        e = b"".join(rec(text(30 + i, 25), "RedPajamaCommonCrawl") + b"\n" for i in range(3))
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as t:
            ti = tarfile.TarInfo("x/e.jsonl")
            ti.size = len(e)
            t.addfile(ti, io.BytesIO(e))
        self.put("d.tar.gz", buf.getvalue())
        self.docs += [("d.tar.gz", "x/e.jsonl", 1, "RedPajamaCommonCrawl", text(31, 25))]
        self.put("t.txt", ("plain text document\n" + text(40, 33) + "\n").encode())
        self.docs += [("t.txt", "-", 0, "RedPajamaCommonCrawl", "plain text document\n" + text(40, 33) + "\n")]

    def put(self, name, data):
        p = os.path.join(self.root, name)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data)


def run_checker(corpus, out, *extra, longctx=LONGCTX):
    p = subprocess.run([PY, CHECKER, "--corpus-dir", corpus, "--out", out, "--tokenizer", TOKENIZER,
                        "--longctx", longctx] + list(extra), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return p.returncode, p.stdout.decode()


@unittest.skipUnless(os.path.exists(LONGCTX), "no longctx binary at " + LONGCTX)
class PackedShards(unittest.TestCase):
    """real shards: one document per line of ids.txt, doc_id = line number, copies 1"""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="check_prep_")
        cls.corpus = os.path.join(cls.tmp, "corpus")
        cls.c = Corpus(cls.corpus)
        cls.sp = sp()
        # selection order: a permutation, and one record selected twice (two doc_ids)
        order = [5, 0, 7, 2, 1, 8, 3, 6, 4, 0]
        cls.sel = [cls.c.docs[i] for i in order]
        cls.ids = [cls.sp.encode(d[4]) for d in cls.sel]

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)

    def make_out(self, name, seq_lens=(64, 100), ids=None, bos=1):
        """L<seq_len>/part-00000.shard for each seq_len, packed from ids (default self.ids)"""
        out = os.path.join(self.tmp, name)
        ids = ids or self.ids
        txt = os.path.join(self.tmp, name + ".ids.txt")
        with open(txt, "w") as f:
            for x in ids:
                f.write(" ".join(map(str, x)) + "\n")
        for L in seq_lens:
            os.makedirs(os.path.join(out, "L%d" % L))
            cmd = [LONGCTX, "shard", "pack", "--output", os.path.join(out, "L%d" % L, "part-00000.shard"),
                   "--vocab-size", "32000", "--seq-len", str(L), txt]
            if bos >= 0:
                cmd[5:5] = ["--bos", str(bos)]
            subprocess.run(cmd, check=True, stderr=subprocess.DEVNULL)
        os.remove(txt)
        return out

    def manifest(self, out, rows=None, edit=None):
        rows = rows or [[i, d[0], d[1], d[2], d[3], len(self.ids[i]) + 1, 1] for i, d in enumerate(self.sel)]
        if edit:
            rows = edit([list(r) for r in rows])
        with open(os.path.join(out, "manifest.tsv"), "w") as f:
            f.write(HEADER)
            for r in rows:
                f.write("\t".join(map(str, r)) + "\n")

    def test_ok(self):
        out = self.make_out("ok")
        self.manifest(out)
        rc, log = run_checker(self.corpus, out)
        self.assertEqual(rc, 0, log)
        self.assertIn("OK", log)
        self.assertIn("L64:", log)
        self.assertIn("L100:", log)

    def test_input_paths_absolute_and_columns_by_name(self):
        out = self.make_out("abs", seq_lens=(64,))
        with open(os.path.join(out, "manifest.tsv"), "w") as f:
            f.write("copies\ttokens\tdomain\trecord\tmember\tinput_path\tdoc_id\n")
            for i, d in enumerate(self.sel):
                f.write("1\t%d\t%s\t%d\t%s\t%s\t%d\n" % (len(self.ids[i]) + 1, d[3], d[2], d[1],
                                                       os.path.join(self.corpus, d[0]), i))
        rc, log = run_checker(self.corpus, out)
        self.assertEqual(rc, 0, log)

    def test_wrong_copies(self):
        out = self.make_out("copies", seq_lens=(64,))

        def edit(rows):
            rows[3][6] = 2
            return rows
        self.manifest(out, edit=edit)
        rc, log = run_checker(self.corpus, out)
        self.assertEqual(rc, 1)
        self.assertIn("FAIL copies", log)
        self.assertIn("FAIL domain_tokens", log)

    def test_doc_missing_from_manifest(self):
        out = self.make_out("unknown", seq_lens=(64,))
        self.manifest(out, edit=lambda rows: rows[:-1])
        rc, log = run_checker(self.corpus, out)
        self.assertEqual(rc, 1)
        self.assertIn("FAIL unknown_doc", log)

    def test_manifest_doc_not_in_shards(self):
        out = self.make_out("extra", seq_lens=(64,))
        self.manifest(out, edit=lambda rows: rows + [[99, "c.jsonl.gz", "-", 0, "RedPajamaStackExchange",
                                                      len(self.sp.encode(self.c.docs[7][4])) + 1, 1]])
        rc, log = run_checker(self.corpus, out)
        self.assertEqual(rc, 1)
        self.assertIn("FAIL missing_doc", log)

    def test_wrong_record(self):
        out = self.make_out("record", seq_lens=(64,))

        def edit(rows):
            rows[2][3] = 0  # sub/b.jsonl.zst record 3 -> record 0
            return rows
        self.manifest(out, edit=edit)
        rc, log = run_checker(self.corpus, out)
        self.assertEqual(rc, 1)
        self.assertIn("FAIL mismatch", log)
        self.assertIn("FAIL tokens", log)

    def test_record_past_the_end(self):
        out = self.make_out("pastend", seq_lens=(64,))

        def edit(rows):
            rows[5][3] = 9  # c.jsonl.gz has 3 records
            return rows
        self.manifest(out, edit=edit)
        rc, log = run_checker(self.corpus, out)
        self.assertEqual(rc, 1)
        self.assertIn("not found (the input has 3 records)", log)

    def test_wrong_domain(self):
        out = self.make_out("domain", seq_lens=(64,))

        def edit(rows):
            rows[1][4] = "RedPajamaBook"
            return rows
        self.manifest(out, edit=edit)
        rc, log = run_checker(self.corpus, out)
        self.assertEqual(rc, 1)
        self.assertIn("FAIL domain:", log)
        rc, log = run_checker(self.corpus, out, "--domain-path", "")
        self.assertEqual(rc, 0, log)

    def test_altered_token(self):
        ids = [list(x) for x in self.ids]
        ids[4][5] = (ids[4][5] + 1) % 32000
        out = self.make_out("altered", seq_lens=(64,), ids=ids)
        self.manifest(out)
        rc, log = run_checker(self.corpus, out)
        self.assertEqual(rc, 1)
        self.assertIn("FAIL mismatch", log)
        self.assertIn("token 6 of the copy", log)

    def test_no_bos(self):
        out = self.make_out("nobos", seq_lens=(64,), bos=-1)
        self.manifest(out, edit=lambda rows: [r[:5] + [r[5] - 1, r[6]] for r in rows])
        rc, log = run_checker(self.corpus, out)
        self.assertEqual(rc, 1)
        rc, log = run_checker(self.corpus, out, "--bos", "-1")
        self.assertEqual(rc, 0, log)

    def test_short_sequences_per_file(self):
        # two files: pack numbers documents from 0 in each file, so give the second file's
        # documents the same ids as the first file's (the selection of file 2 = that of file 1)
        half = self.ids[:4]
        out = os.path.join(self.tmp, "twofiles")
        os.makedirs(os.path.join(out, "L64"))
        for k in range(2):
            txt = os.path.join(out, "ids.txt")
            with open(txt, "w") as f:
                for x in half:
                    f.write(" ".join(map(str, x)) + "\n")
            subprocess.run([LONGCTX, "shard", "pack", "--output", os.path.join(out, "L64", "part-%05d.shard" % k),
                            "--vocab-size", "32000", "--seq-len", "64", "--bos", "1", txt], check=True,
                           stderr=subprocess.DEVNULL)
        rows = [[i, d[0], d[1], d[2], d[3], len(self.ids[i]) + 1, 2] for i, d in enumerate(self.sel[:4])]
        self.manifest(out, rows=rows)
        rc, log = run_checker(self.corpus, out)
        self.assertEqual(rc, 1)
        self.assertIn("FAIL seq_len", log)
        rc, log = run_checker(self.corpus, out, "--short", "per-file")
        self.assertEqual(rc, 0, log)

    def test_truncated_docs(self):
        out = self.make_out("trunc", seq_lens=(64,), ids=[x[:10] for x in self.ids])
        self.manifest(out, edit=lambda rows: [r[:5] + [min(r[5], 11), r[6]] for r in rows])
        rc, log = run_checker(self.corpus, out)
        self.assertEqual(rc, 1)
        rc, log = run_checker(self.corpus, out, "--allow-truncated-docs")
        self.assertEqual(rc, 0, log)


class FakeCat(unittest.TestCase):
    """hand-written cat streams: the stand-in longctx prints the .shard file itself"""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="check_prep_fake_")
        cls.corpus = os.path.join(cls.tmp, "corpus")
        os.makedirs(cls.corpus)
        s = sp()
        cls.texts = ["one two three four five six seven", "eight nine ten", "eleven twelve thirteen fourteen"]
        with open(os.path.join(cls.corpus, "x.jsonl"), "wb") as f:
            for t in cls.texts:
                f.write(rec(t, "RedPajamaC4") + b"\n")
        cls.tok = [[1] + s.encode(t) for t in cls.texts]
        cls.fake = os.path.join(cls.tmp, "fake_longctx")
        with open(cls.fake, "w") as f:
            f.write('#!/bin/sh\n[ "$1 $2 $3" = "shard cat --docs" ] || exit 9\n'
                    'case "$4" in *fail*) echo damaged >&2; exit 1;; esac\nexec cat "$4"\n')
        os.chmod(cls.fake, 0o755)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)

    def out(self, name, seq_len, sequences, copies, files=None):
        """sequences: [[(doc, offset, n), ...]] pieces in order, all in L<seq_len>/part-00000.shard;
        or files: [sequences of file 0, sequences of file 1, ...] (part-00000, part-00001, ...)"""
        out = os.path.join(self.tmp, name)
        os.makedirs(os.path.join(out, "L%d" % seq_len))
        for k, seqs in enumerate(files or [sequences]):
            lines = []
            for seq in seqs:
                ids, pieces = [], []
                for doc, off, n in seq:
                    pieces.append("%d:%d:%d" % (len(ids), doc, off))
                    ids += self.tok[doc][off:off + n] if doc < len(self.tok) else [5] * n
                lines.append(" ".join(map(str, ids)))
                lines.append("# docs " + " ".join(pieces))
            with open(os.path.join(out, "L%d" % seq_len, "part-%05d.shard" % k), "w") as f:
                f.write("\n".join(lines) + "\n")
        with open(os.path.join(out, "manifest.tsv"), "w") as f:
            f.write(HEADER)
            for d, c in copies.items():
                f.write("%d\tx.jsonl\t-\t%d\tRedPajamaC4\t%d\t%d\n" % (d, d, len(self.tok[d]), c))
        return out

    def check(self, out, *extra):
        return run_checker(self.corpus, out, *extra, longctx=self.fake)

    def lens(self):
        return [len(t) for t in self.tok]

    def test_copies_whole_and_split(self):
        a, b, c = self.lens()
        L = 8
        # doc 0 twice (once split across sequences), doc 1 once, doc 2 three times
        stream = [(0, 0, a), (1, 0, b), (2, 0, c), (0, 0, a), (2, 0, c), (2, 0, c)]
        seqs, cur, room = [], [], L
        for doc, _, n in stream:
            off = 0
            while n > 0:
                k = min(n, room)
                cur.append((doc, off, k))
                off, n, room = off + k, n - k, room - k
                if room == 0:
                    seqs.append(cur)
                    cur, room = [], L
        if cur:
            seqs.append(cur)
        out = self.out("copies", L, seqs, {0: 2, 1: 1, 2: 3})
        rc, log = self.check(out)
        self.assertEqual(rc, 0, log)
        out = self.out("copies_wrong", L, seqs, {0: 2, 1: 1, 2: 2})
        rc, log = self.check(out)
        self.assertEqual(rc, 1)
        self.assertIn("3 complete copies in the shards, manifest says 2", log)

    def test_interleaved_copies(self):
        # two copies of doc 0 cut at h, interleaved A1 B1 A2 B2 (as bestfit may place them);
        # one sequence per file so that every sequence may be short (--short per-file)
        a = len(self.tok[0])
        h = a // 2
        files = [[[(0, 0, h)]], [[(0, 0, h)]], [[(0, h, a - h)]], [[(0, h, a - h), (1, 0, 2)]]]
        out = self.out("interleaved", 64, None, {0: 2}, files=files)
        rc, log = self.check(out, "--short", "per-file")
        self.assertEqual(rc, 1)
        self.assertIn("FAIL unknown_doc", log)  # doc 1 is not in this manifest
        files[3] = [[(0, h, a - h)]]
        out = self.out("interleaved_ok", 64, None, {0: 2}, files=files)
        rc, log = self.check(out, "--short", "per-file")
        self.assertEqual(rc, 0, log)
        self.assertIn("2 complete copies", log)
        rc, log = self.check(out)  # only the folder's last sequence may be short
        self.assertEqual(rc, 1)
        self.assertIn("FAIL seq_len", log)

    def test_gap_in_offsets(self):
        a = len(self.tok[0])
        seqs = [[(0, 0, 2), (0, 3, a - 3)]]
        out = self.out("gap", a - 1, seqs, {0: 1})
        rc, log = self.check(out)
        self.assertEqual(rc, 1)
        self.assertIn("FAIL contiguity", log)

    def test_incomplete_copy(self):
        a = len(self.tok[0])
        seqs = [[(0, 0, a - 1)]]
        out = self.out("incomplete", a - 1, seqs, {0: 1})
        rc, log = self.check(out)
        self.assertEqual(rc, 1)
        self.assertIn("FAIL incomplete", log)

    def test_uncovered_start(self):
        out = os.path.join(self.tmp, "uncovered")
        os.makedirs(os.path.join(out, "L4"))
        with open(os.path.join(out, "L4", "part-00000.shard"), "w") as f:
            t = self.tok[1]
            f.write("7 %s\n# docs 1:1:0\n" % " ".join(map(str, t[:3])))
        with open(os.path.join(out, "manifest.tsv"), "w") as f:
            f.write(HEADER + "1\tx.jsonl\t-\t1\tRedPajamaC4\t%d\t1\n" % len(self.tok[1]))
        rc, log = self.check(out)
        self.assertEqual(rc, 1)
        self.assertIn("FAIL pieces", log)

    def test_short_sequence_in_the_middle(self):
        a, b, c = self.lens()
        seqs = [[(0, 0, a)], [(1, 0, b)], [(2, 0, c)]]
        L = max(a, b, c)
        out = self.out("short", L, seqs, {0: 1, 1: 1, 2: 1})
        rc, log = self.check(out)
        shorts = [n for n in (a, b) if n != L]
        if shorts:
            self.assertEqual(rc, 1)
            self.assertIn("FAIL seq_len", log)

    def test_cat_failure(self):
        a = len(self.tok[0])
        out = self.out("catfail", a, [[(0, 0, a)]], {0: 1})
        os.rename(os.path.join(out, "L%d" % a, "part-00000.shard"), os.path.join(out, "L%d" % a, "part-fail.shard"))
        rc, log = self.check(out)
        self.assertEqual(rc, 1)
        self.assertIn("FAIL cat", log)

    def test_unknown_doc_and_missing(self):
        a = len(self.tok[0])
        out = self.out("unknown", a, [[(0, 0, a)], [(7, 0, 3)]], {0: 1, 1: 1})
        rc, log = self.check(out)
        self.assertEqual(rc, 1)
        self.assertIn("FAIL unknown_doc", log)
        self.assertIn("FAIL missing_doc", log)


@unittest.skipUnless(os.path.exists(LONGCTX), "no longctx binary at " + LONGCTX)
class BadInputCorpus(unittest.TestCase):
    """the accepted records (REPLACE policy) of gen_bad_inputs.py's corpus, including records
    before the damage of truncated files and archive members, checked end to end; the texts are
    extracted here with the zstd/gzip/tar command-line tools"""

    FILES = ["invalid_utf8.jsonl", "truncated.jsonl.zst", "truncated.jsonl.gz", "multiframe.jsonl.zst",
             "multimember.jsonl.gz", "crlf.jsonl", "blank_lines.jsonl", "mixed.jsonl.zst", "binary_text.jsonl",
             ("truncated.tar.gz", "a.jsonl"), ("truncated.tar.gz", "c.jsonl"), ("truncated.tar", "sub/b.jsonl"),
             ("archive.tar.gz", "docs/b.jsonl"), "txt/good.txt"]

    @staticmethod
    def decoded(root, f):
        if isinstance(f, tuple):
            return subprocess.run(["tar", "-xOf", os.path.join(root, f[0]), f[1]], stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL).stdout
        cmd = {"zst": ["zstd", "-dc"], "gz": ["gzip", "-dc"]}.get(f.rsplit(".", 1)[1], ["cat"])
        return subprocess.run(cmd + [os.path.join(root, f)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL).stdout

    def test_accepted_records(self):
        tmp = tempfile.mkdtemp(prefix="check_prep_bad_")
        try:
            corpus = os.path.join(tmp, "bad")
            subprocess.run([PY, os.path.join(HERE, "gen_bad_inputs.py"), corpus], check=True, stdout=subprocess.DEVNULL)
            s = sp()
            rows = []
            for f in self.FILES:
                data = self.decoded(corpus, f)
                name, member = (f, "-") if isinstance(f, str) else f
                if name.endswith(".txt"):
                    rows.append([name, member, 0, "RedPajamaC4", data.decode()])
                    continue
                lines = data.split(b"\n")
                if data and not data.endswith(b"\n") and "truncated" in name:
                    lines = lines[:-1]  # the damaged tail is not a record
                recs = [ln for ln in lines if ln]
                for r, ln in enumerate(recs):
                    try:
                        obj = json.loads(ln.decode("utf-8", "surrogateescape"))
                    except ValueError:
                        continue
                    if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
                        continue
                    dom = (obj.get("meta") or {}).get("redpajama_set_name") if isinstance(obj.get("meta"), dict) else None
                    t = "".join("\ufffd" if 0xDC80 <= ord(c) <= 0xDCFF else c for c in obj["text"])
                    if isinstance(dom, str) and t and "\x00" not in t:
                        rows.append([name, member, r, dom, t])
            self.assertGreater(len(rows), 300)
            out = os.path.join(tmp, "out")
            os.makedirs(os.path.join(out, "L4096"))
            txt = os.path.join(tmp, "ids.txt")
            with open(txt, "w") as f, open(os.path.join(out, "manifest.tsv"), "w") as m:
                m.write(HEADER)
                for i, (name, member, r, dom, t) in enumerate(rows):
                    e = s.encode(t)
                    f.write(" ".join(map(str, e)) + "\n")
                    m.write("%d\t%s\t%s\t%d\t%s\t%d\t1\n" % (i, name, member, r, dom, len(e) + 1))
            subprocess.run([LONGCTX, "shard", "pack", "--output", os.path.join(out, "L4096", "part-00000.shard"),
                            "--vocab-size", "32000", "--seq-len", "4096", "--bos", "1", txt], check=True,
                           stderr=subprocess.DEVNULL)
            rc, log = run_checker(corpus, out)
            self.assertEqual(rc, 0, log)
            # a record past the damage of a truncated file is reported as not found
            with open(os.path.join(out, "manifest.tsv"), "a") as m:
                m.write("%d\ttruncated.jsonl.zst\t-\t60\tRedPajamaC4\t5\t1\n" % len(rows))
            rc, log = run_checker(corpus, out)
            self.assertEqual(rc, 1)
            self.assertIn("record 60 (doc %d) not found" % len(rows), log)
            self.assertIn("before its damage", log)
        finally:
            shutil.rmtree(tmp)


if __name__ == "__main__":
    unittest.main()
