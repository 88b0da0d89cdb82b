#!/usr/bin/python3
"""Independent checker of a `longctx prep` output directory.

usage: check_prep_output.py --corpus-dir DIR --out PREPDIR --tokenizer MODEL
                            [--bos 1] [--eos -1] [--longctx /work/main/build/longctx]
                            [--text-field text] [--domain-path meta.redpajama_set_name]
                            [--short per-file|last|any] [--allow-truncated-docs] [--threads N]

It reads only: the input corpus files, PREPDIR/manifest.tsv, and the token stream printed by
`longctx shard cat --docs FILE` for each PREPDIR/L<seq_len>/part-*.shard (files in sorted order).
It re-tokenizes the ORIGINAL text of every manifest document with Python SentencePiece and
checks, for every sequence-length folder:
  - every copy of a document in the shards is exactly [bos] + encode(text) + [eos];
  - the number of copies of each document equals the manifest's `copies`;
  - no doc_id outside the manifest appears, every manifest document appears;
  - tokens per domain in the shards == sum over the manifest of tokens * copies;
  - every sequence is exactly seq_len tokens, except the last one of the folder (--short last,
    the default) or the last one of each file (--short per-file); short ones are reported;
  - every sequence's pieces cover it from token 0, with strictly increasing starts;
  - the manifest's domain equals the record's value at --domain-path (JSON inputs; "" skips).
Exit 0 when everything holds, 1 on any failure (with a summary and the first failures).

Formats (the contract with prep):
  manifest.tsv   a header line, then per selected document:
                 doc_id  input_path  member  record  domain  tokens  copies
                 member "-" if none; record = record number in the input file (or member)
                 from 0, counting every non-empty line (JSON rejects too; empty lines not);
                 tokens = tokens of ONE copy as packed (BOS/EOS included). If the header names
                 these columns they are found by name, else by position.
  input_path     absolute, or relative to the current directory, or to --corpus-dir.
  inputs         *.jsonl, *.json, *.ndjson (optionally .zst/.gz): one record per non-empty line,
                 text at --text-field; *.tar, *.tar.gz, *.tgz, *.tar.zst, *.zip: members read
                 the same way (member = path inside the archive); anything else: one document
                 per file, record 0, the whole file is the text.
                 Invalid UTF-8 -> one U+FFFD per invalid byte.
  cat --docs     per sequence two lines: the ids separated by spaces, then '# docs' followed by
                 start:doc_id:doc_offset for each piece (a piece runs to the next piece's start
                 or to the end of the sequence).
A piece with doc_offset 0 starts a new copy; a piece with doc_offset o > 0 continues an open
copy of that document that has exactly o tokens so far (copies may interleave).
"""
import argparse
import collections
import gzip
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import time
import zipfile
import zlib

import numpy as np

COLUMNS = ["doc_id", "input_path", "member", "record", "domain", "tokens", "copies"]
JSONL_EXT = (".jsonl", ".json", ".ndjson")
ARCHIVE_EXT = (".tar", ".tar.gz", ".tgz", ".tar.zst", ".tzst", ".zip")


class Failures:
    def __init__(self, max_shown):
        self.counts = collections.Counter()
        self.shown = collections.Counter()
        self.max_shown = max_shown

    def add(self, kind, msg):
        self.counts[kind] += 1
        if self.shown[kind] < self.max_shown:
            self.shown[kind] += 1
            print("FAIL %s: %s" % (kind, msg), flush=True)

    def __bool__(self):
        return bool(self.counts)


# ------------------------------------------------------------------------------ manifest
Doc = collections.namedtuple("Doc", "doc_id input_path member record domain tokens copies")


def read_manifest(path, fail):
    docs = {}
    with open(path, "r", encoding="utf-8", newline="\n") as f:
        header = f.readline().rstrip("\n").split("\t")
        if all(c in header for c in COLUMNS):
            cols = [header.index(c) for c in COLUMNS]
        else:
            print("warning: manifest header %r does not name the columns %s; using positions" % (
                header, COLUMNS))
            cols = list(range(len(COLUMNS)))
        for n, line in enumerate(f, 2):
            line = line.rstrip("\n")
            if not line:
                continue
            x = line.split("\t")
            try:
                v = [x[c] for c in cols]
                d = Doc(int(v[0]), v[1], v[2], int(v[3]), v[4], int(v[5]), int(v[6]))
            except (IndexError, ValueError):
                fail.add("manifest", "%s:%d: bad line %r" % (path, n, line[:200]))
                continue
            if d.doc_id in docs:
                fail.add("manifest", "%s:%d: doc_id %d listed twice" % (path, n, d.doc_id))
                continue
            if d.copies < 1 or d.tokens < 1 or d.record < 0:
                fail.add("manifest", "%s:%d: copies/tokens/record out of range: %r" % (path, n, line[:200]))
            docs[d.doc_id] = d
    return docs


# ------------------------------------------------------------------------------ corpus
def decode_replace(b):
    """UTF-8 with one U+FFFD per invalid byte"""
    s = b.decode("utf-8", "surrogateescape")
    if any(0xDC80 <= ord(c) <= 0xDCFF for c in s):
        s = "".join("\ufffd" if 0xDC80 <= ord(c) <= 0xDCFF else c for c in s)
    return s


def strip_compression(name):
    for ext in (".zst", ".gz"):
        if name.endswith(ext):
            return name[:-len(ext)]
    return name


def is_jsonl(name):
    return strip_compression(name).endswith(JSONL_EXT)


def open_stream(path):
    """a binary file object of the decompressed content (the zstd CLI for .zst)"""
    if path.endswith(".zst") or path.endswith(".tzst"):
        p = subprocess.Popen(["zstd", "-dc", "-q", path], stdout=subprocess.PIPE, bufsize=1 << 20)
        return p.stdout, p
    if path.endswith(".gz") or path.endswith(".tgz"):
        return gzip.open(path, "rb"), None
    return open(path, "rb"), None


def get_path(obj, path):
    for k in path.split("."):
        if not isinstance(obj, dict) or k not in obj:
            return None
        obj = obj[k]
    return obj


def parse_record(line):
    s = line.decode("utf-8", "surrogateescape")
    return json.loads(s)


DAMAGE = (EOFError, OSError, zlib.error, tarfile.ReadError)


def complete_lines(f, p=None, damaged=None):
    """the lines of a decompressed stream; on damage (a decoder error, or the zstd CLI failing)
    the unterminated last line is not a line. damaged: a list that gets the error."""
    pending = None
    try:
        for line in f:
            if pending is not None:
                yield pending
            pending = line
        clean = p is None or p.wait() == 0
        if not clean and damaged is not None:
            damaged.append("zstd exited %d" % p.returncode)
    except DAMAGE as e:
        clean = False
        if damaged is not None:
            damaged.append(str(e))
    if pending is not None and (clean or pending.endswith(b"\n")):
        yield pending


def texts_from_lines(lines, wanted, where, a, out, fail, damaged=()):
    """lines: iterable of bytes lines; wanted: {record: [Doc]}; fills out[doc_id] = text"""
    rec = -1
    found = set()
    for line in lines:
        if line.endswith(b"\n"):
            line = line[:-1]
        if not line:
            continue
        rec += 1
        if rec not in wanted:
            continue
        found.add(rec)
        docs = wanted[rec]
        try:
            obj = parse_record(line)
            text = obj.get(a.text_field) if isinstance(obj, dict) else None
            if not isinstance(text, str):
                raise ValueError("no string at '%s'" % a.text_field)
        except (ValueError, RecursionError) as e:
            for d in docs:
                fail.add("corpus", "%s record %d (doc %d): not a usable JSON record: %s" % (where, rec, d.doc_id, e))
            continue
        if any(0xDC80 <= ord(c) <= 0xDCFF for c in text):  # invalid UTF-8 bytes (surrogateescape)
            text = "".join("\ufffd" if 0xDC80 <= ord(c) <= 0xDCFF else c for c in text)
        if a.domain_path:
            dom = get_path(obj, a.domain_path)
            for d in docs:
                if dom != d.domain:
                    fail.add("domain", "%s record %d (doc %d): manifest domain %r, the record has %r" % (
                        where, rec, d.doc_id, d.domain, dom))
        for d in docs:
            out[d.doc_id] = text
        if len(found) == len(wanted):
            break
    for r in sorted(set(wanted) - found):
        for d in wanted[r]:
            fail.add("corpus", "%s: record %d (doc %d) not found (the input has %d records%s)" % (
                where, r, d.doc_id, rec + 1, (" before its damage: " + damaged[0]) if damaged else ""))


def text_document(data, wanted, where, out, fail):
    for r, docs in wanted.items():
        if r != 0:
            for d in docs:
                fail.add("corpus", "%s: a text document has only record 0, manifest says %d (doc %d)" % (
                    where, r, d.doc_id))
            continue
        for d in docs:
            out[d.doc_id] = decode_replace(data)


def read_member_streams(path):
    """yields (member name, file object) of an archive"""
    if path.endswith(".zip"):
        with zipfile.ZipFile(path) as z:
            for info in z.infolist():
                if not info.is_dir():
                    with z.open(info) as f:
                        yield info.filename, f
        return
    f, p = open_stream(path) if path.endswith((".zst", ".tzst")) else (open(path, "rb"), None)
    mode = "r|*" if p is None else "r|"
    try:
        with tarfile.open(fileobj=f, mode=mode) as t:
            for ti in t:
                if ti.isfile():
                    yield ti.name, t.extractfile(ti)
    except DAMAGE:
        pass  # a damaged archive: the members before the damage have been read
    finally:
        f.close()
        if p:
            p.kill()
            p.wait()


def resolve(path, corpus_dir):
    for c in (path, os.path.join(corpus_dir, path)):
        if os.path.exists(c):
            return c
    return None


def load_texts(docs, a, fail):
    """{doc_id: original text} for every manifest document"""
    by_file = collections.defaultdict(lambda: collections.defaultdict(lambda: collections.defaultdict(list)))
    for d in docs.values():
        by_file[d.input_path][d.member][d.record].append(d)
    out = {}
    for input_path in sorted(by_file):
        members = by_file[input_path]
        real = resolve(input_path, a.corpus_dir)
        if real is None:
            for m in members.values():
                for ds in m.values():
                    for d in ds:
                        fail.add("corpus", "input %r of doc %d not found (cwd or %s)" % (input_path, d.doc_id, a.corpus_dir))
            continue
        if "-" in members:
            wanted = members["-"]
            if is_jsonl(real):
                f, p = open_stream(real)
                damaged = []
                with f:
                    texts_from_lines(complete_lines(f, p, damaged), wanted, input_path, a, out, fail, damaged)
                if p:
                    p.kill()
                    p.wait()
            else:
                with open(real, "rb") as f:
                    text_document(f.read(), wanted, input_path, out, fail)
        arch = {m: w for m, w in members.items() if m != "-"}
        if arch:
            seen = set()
            for name, f in read_member_streams(real):
                if name not in arch:
                    continue
                seen.add(name)
                where = "%s:%s" % (input_path, name)
                if is_jsonl(name):
                    damaged = []
                    if name.endswith((".zst", ".gz")):
                        data = f.read()
                        data = gzip.decompress(data) if name.endswith(".gz") else subprocess.run(
                            ["zstd", "-dc", "-q"], input=data, stdout=subprocess.PIPE, check=True).stdout
                        f = io.BytesIO(data)
                    texts_from_lines(complete_lines(f, None, damaged), arch[name], where, a, out, fail, damaged)
                else:
                    try:
                        data = f.read()
                    except DAMAGE as e:
                        for ds in arch[name].values():
                            for d in ds:
                                fail.add("corpus", "%s: damaged member (doc %d): %s" % (where, d.doc_id, e))
                        continue
                    text_document(data, arch[name], where, out, fail)
            for name in set(arch) - seen:
                for ds in arch[name].values():
                    for d in ds:
                        fail.add("corpus", "%s: member %r of doc %d not found" % (input_path, name, d.doc_id))
    return out


def tokenize(docs, texts, a, fail):
    """{doc_id: np.int32 array of one copy as packed}"""
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=a.tokenizer)
    ids = sorted(d for d in docs if d in texts)
    expected = {}
    batch, size = [], 0
    n_trunc = 0

    def flush():
        nonlocal n_trunc
        enc = sp.encode([texts[i] for i in batch], num_threads=a.threads)
        for i, e in zip(batch, enc):
            t = ([a.bos] if a.bos >= 0 else []) + e + ([a.eos] if a.eos >= 0 else [])
            t = np.array(t, dtype=np.int32)
            want = docs[i].tokens
            if want != len(t):
                if a.allow_truncated_docs and want < len(t):
                    n_trunc += 1
                    t = t[:want]
                else:
                    fail.add("tokens", "doc %d (%s record %d): manifest tokens %d, the text tokenizes to %d" % (
                        i, docs[i].input_path, docs[i].record, want, len(t)))
            expected[i] = t
        batch.clear()

    for i in ids:
        batch.append(i)
        size += len(texts[i])
        if size > (16 << 20) or len(batch) >= 8192:
            flush()
            size = 0
    if batch:
        flush()
    return expected, n_trunc


# ------------------------------------------------------------------------------ shards
def cat_sequences(longctx, path, fail):
    """yields (ids np.int64 array, [(start, doc_id, doc_offset)]) per sequence"""
    p = subprocess.Popen([longctx, "shard", "cat", "--docs", path], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, bufsize=1 << 22)
    n = 0
    try:
        while True:
            ids_line = p.stdout.readline()
            if not ids_line:
                break
            docs_line = p.stdout.readline()
            n += 1
            if not docs_line.startswith(b"# docs"):
                fail.add("format", "%s: sequence %d: the line after the ids is not '# docs ...': %r" % (
                    path, n - 1, docs_line[:80]))
                break
            body = ids_line.strip()
            ids = np.fromstring(body, dtype=np.int64, sep=" ") if body else np.zeros(0, dtype=np.int64)
            if len(ids) and (ids.min() < -(1 << 31) or ids.max() >= (1 << 31)):
                fail.add("format", "%s: sequence %d: id out of range" % (path, n - 1))
            if body and len(ids) != body.count(b" ") + 1:
                fail.add("format", "%s: sequence %d: unparsable ids line" % (path, n - 1))
            pieces = []
            for tok in docs_line.split()[2:]:
                try:
                    s, d, o = tok.split(b":")
                    pieces.append((int(s), int(d), int(o)))
                except ValueError:
                    fail.add("format", "%s: sequence %d: bad piece %r" % (path, n - 1, tok))
            yield ids, pieces
    finally:
        p.stdout.close()
        err = p.stderr.read()
        rc = p.wait()
        if rc != 0:
            fail.add("cat", "%s: longctx shard cat exited %d: %s" % (path, rc, err.decode(errors="replace")[-500:]))


def check_folder(folder, seq_len, docs, expected, a, fail, report):
    files = sorted(f for f in os.listdir(folder) if f.endswith(".shard"))
    if not files:
        fail.add("shards", "%s: no .shard files" % folder)
        return
    open_copies = collections.defaultdict(collections.Counter)  # doc -> {next offset: n}
    done = collections.Counter()  # doc -> complete copies
    cover = collections.defaultdict(list)  # doc -> [(offset, n)] (--unordered)
    dom_tokens = collections.Counter()
    n_seq = n_tok = n_pieces = 0
    short = []  # (file, sequence index, length)
    unknown = set()
    last_seq_of_file = []
    for fname in files:
        path = os.path.join(folder, fname)
        k_in_file = -1
        for ids, pieces in cat_sequences(a.longctx, path, fail):
            k_in_file += 1
            where = "L%d/%s seq %d" % (seq_len, fname, k_in_file)
            L = len(ids)
            if L != seq_len:
                short.append((fname, k_in_file, L))
            n_seq += 1
            n_tok += L
            if not pieces:
                fail.add("pieces", "%s: no document pieces" % where)
                continue
            if pieces[0][0] != 0:
                fail.add("pieces", "%s: first piece starts at %d, tokens 0..%d belong to no document" % (
                    where, pieces[0][0], pieces[0][0] - 1))
            for j, (start, doc, off) in enumerate(pieces):
                end = pieces[j + 1][0] if j + 1 < len(pieces) else L
                n = end - start
                n_pieces += 1
                if n <= 0 or end > L:
                    fail.add("pieces", "%s: piece %d (start %d, doc %d) has %d tokens" % (where, j, start, doc, n))
                    continue
                if doc not in docs:
                    if doc not in unknown:
                        fail.add("unknown_doc", "%s: doc_id %d is not in the manifest" % (where, doc))
                    unknown.add(doc)
                    continue
                exp = expected.get(doc)
                dom_tokens[docs[doc].domain] += n
                if exp is None:
                    continue  # its text could not be read: already reported
                if off + n > len(exp):
                    fail.add("overrun", "%s: doc %d piece [%d, %d) beyond its %d tokens" % (where, doc, off, off + n, len(exp)))
                    continue
                got = ids[start:end]
                want = exp[off:off + n]
                if not np.array_equal(got, want):
                    k = int(np.argmax(got != want))
                    fail.add("mismatch", "%s: doc %d (%s record %d) token %d of the copy: shard %d, expected %d" % (
                        where, doc, docs[doc].input_path, docs[doc].record, off + k, int(got[k]), int(want[k])))
                if a.unordered:  # bestfit: a copy's pieces may come in any order
                    cover[doc].append((off, n))
                    continue
                oc = open_copies[doc]
                if off != 0:
                    if oc[off] > 0:
                        oc[off] -= 1
                        if oc[off] == 0:
                            del oc[off]
                    else:
                        fail.add("contiguity", "%s: doc %d piece at doc_offset %d continues no open copy (open at %s)" % (
                            where, doc, off, sorted(oc) or "none"))
                        continue
                if off + n == len(exp):
                    done[doc] += 1
                else:
                    oc[off + n] += 1
        last_seq_of_file.append((fname, k_in_file))
    # --unordered: every token of a document covered exactly the same number of times
    for doc, lst in cover.items():
        exp_len = len(expected[doc])
        diff = np.zeros(exp_len + 1, dtype=np.int64)
        for off, n in lst:
            diff[off] += 1
            diff[off + n] -= 1
        c = np.cumsum(diff)[:exp_len]
        if exp_len and c.min() == c.max() and c[0] > 0:
            done[doc] += int(c[0])
        else:
            fail.add("incomplete", "L%d: doc %d: its tokens are covered %d to %d times" % (
                seq_len, doc, int(c.min()) if exp_len else 0, int(c.max()) if exp_len else 0))
    # short sequences
    allowed = set(last_seq_of_file) if a.short == "per-file" else {last_seq_of_file[-1]}
    if a.short == "any":  # bestfit: a sequence is as full as its documents make it
        short = []
    for fname, k, L in short:
        if (fname, k) not in allowed:
            fail.add("seq_len", "%s/%s seq %d has %d tokens, not %d" % (os.path.basename(folder), fname, k, L, seq_len))
    # copies
    for doc, oc in open_copies.items():
        for off, c in oc.items():
            fail.add("incomplete", "L%d: doc %d: %d copy(ies) end at token %d of %d" % (
                seq_len, doc, c, off, len(expected[doc])))
    n_copies = 0
    for doc, d in docs.items():
        if doc not in expected:
            continue
        n_copies += done[doc]
        if done[doc] != d.copies:
            kind = "missing_doc" if done[doc] == 0 else "copies"
            fail.add(kind, "L%d: doc %d (%s record %d): %d complete copies in the shards, manifest says %d" % (
                seq_len, doc, d.input_path, d.record, done[doc], d.copies))
    man_tokens = collections.Counter()
    for d in docs.values():
        man_tokens[d.domain] += d.tokens * d.copies
    for dom in sorted(set(man_tokens) | set(dom_tokens)):
        if man_tokens[dom] != dom_tokens[dom]:
            fail.add("domain_tokens", "L%d: domain %s: %d tokens in the shards, manifest says %d" % (
                seq_len, dom, dom_tokens[dom], man_tokens[dom]))
    report.append({"seq_len": seq_len, "files": len(files), "sequences": n_seq, "tokens": n_tok,
                   "pieces": n_pieces, "complete_copies": n_copies, "short": short,
                   "domain_tokens": dict(dom_tokens), "manifest_domain_tokens": dict(man_tokens)})


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus-dir", required=True)
    ap.add_argument("--out", required=True, help="the prep output directory")
    ap.add_argument("--tokenizer", required=True, help="SentencePiece .model")
    ap.add_argument("--bos", type=int, default=1, help="BOS id per copy, -1 for none (default 1)")
    ap.add_argument("--eos", type=int, default=-1, help="EOS id per copy, -1 for none (default -1)")
    ap.add_argument("--longctx", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "build", "longctx"))
    ap.add_argument("--text-field", default="text")
    ap.add_argument("--domain-path", default="meta.redpajama_set_name", help='"" to skip the domain check')
    ap.add_argument("--unordered", action="store_true",
                    help="the pieces of a copy may appear in any order (bestfit shuffles whole "
                         "sequences): check that each token of a document is covered `copies` times")
    ap.add_argument("--short", choices=["last", "per-file", "any"], default="last",
                    help="which sequences may be shorter than seq_len: the last of the folder, "
                         "of each file, or any (bestfit packing)")
    ap.add_argument("--allow-truncated-docs", action="store_true",
                    help="accept manifest tokens < the tokenized length (copies cut at seq_len)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--max-shown", type=int, default=10, help="failures printed per kind")
    a = ap.parse_args()
    t0 = time.time()
    fail = Failures(a.max_shown)
    manifest = os.path.join(a.out, "manifest.tsv")
    if not os.path.exists(manifest):
        print("FAIL: %s does not exist" % manifest)
        return 1
    docs = read_manifest(manifest, fail)
    texts = load_texts(docs, a, fail)
    t1 = time.time()
    expected, n_trunc = tokenize(docs, texts, a, fail)
    n_texts = len(texts)
    del texts
    t2 = time.time()
    folders = []
    for name in sorted(os.listdir(a.out)):
        m = re.fullmatch(r"L(\d+)", name)
        if m and os.path.isdir(os.path.join(a.out, name)):
            folders.append((int(m.group(1)), os.path.join(a.out, name)))
    if not folders:
        fail.add("shards", "no L<seq_len> folder in %s" % a.out)
    report = []
    for seq_len, folder in sorted(folders):
        check_folder(folder, seq_len, docs, expected, a, fail, report)
    t3 = time.time()

    # summary
    print("manifest: %d documents, %d copies, %d tokens (with copies); %d texts read in %.1f s, tokenized in %.1f s" % (
        len(docs), sum(d.copies for d in docs.values()), sum(d.tokens * d.copies for d in docs.values()),
        n_texts, t1 - t0, t2 - t1))
    if n_trunc:
        print("note: %d documents are truncated copies (--allow-truncated-docs)" % n_trunc)
    for r in report:
        total = max(1, sum(r["domain_tokens"].values()))
        print("L%d: %d files, %d sequences, %d tokens, %d pieces, %d complete copies; short sequences: %s" % (
            r["seq_len"], r["files"], r["sequences"], r["tokens"], r["pieces"], r["complete_copies"],
            ", ".join("%s seq %d = %d tokens" % s for s in r["short"]) or "none"))
        for dom in sorted(r["domain_tokens"], key=lambda x: -r["domain_tokens"][x]):
            print("   %-26s %12d tokens  %.4f" % (dom, r["domain_tokens"][dom], r["domain_tokens"][dom] / total))
    print("checked in %.1f s" % (t3 - t0))
    if fail:
        print("FAILED: " + ", ".join("%s %d" % kv for kv in sorted(fail.counts.items())))
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
