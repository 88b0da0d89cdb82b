#!/usr/bin/python3
"""Generate the bad-input corpus for prep, one file per case, with exact expected counts.

usage: gen_bad_inputs.py OUTDIR [--huge] [--huge-mb 300] [--seed S]

Writes OUTDIR/<case files>, OUTDIR/txt/<plain text files> and OUTDIR/expected.json.
Every count in expected.json is computed twice: from the design of the case, and by the
reference classifier below run on the bytes actually written (for damaged compressed files: on
what the zstd CLI / zlib / tarfile decode from the damaged file); the script fails if the two
disagree. Total size is about 10 MB; --huge adds huge_line.jsonl, a single 300 MB line written
streaming (never held in memory).

The contract (also in expected.json "contract"):
  - jsonl inputs: records are the lines split at '\\n' bytes; a line of zero bytes is skipped
    and is not a record; the last line needs no '\\n'. A '\\r' before '\\n' is JSON white space.
  - Each record gets exactly one outcome, the first that applies in this order:
      too_long  the line is longer than max_doc_bytes (1 MiB = 1,048,576 bytes, not counting
                the '\\n'); a line of exactly 1 MiB is not too long
      json      not a JSON object under strict RFC 8259 (no NaN, comments, trailing commas,
                single quotes, raw control characters in strings, trailing data); invalid
                UTF-8 bytes inside a string do not make it a json reject
      field     no string at "text"
      domain    no string at meta.redpajama_set_name
      utf8      the text has invalid UTF-8 (REJECT policy). Under the REPLACE policy the record
                is accepted with one U+FFFD per invalid byte (the texts are in expected.json)
      empty     the text is ""
      binary    the text contains U+0000
    (The designed records each have exactly one problem, so the order only matters for junk.)
  - truncated: a damaged compressed file or archive counts one 'truncated' reject, which is
    also counted as one record (the damaged tail), so that for every file
    records == accepted + sum(rejects). The records before the damage are counted as usual;
    "records_before_damage" gives their number. The damage is placed >= 64 KiB (decoded) away
    from any line end, so every decoder's block granularity gives the same counts.
  - Archives (.tar, .tar.gz): each member is read as its own jsonl input; records are
    numbered per member; counts are per archive file (and per member in "members").
  - txt/*.txt: plain text inputs, one document per file (the whole file is the text); the
    domain must come from a rule or a per-input domain, not from JSON.
"""
import argparse
import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import zlib

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_slimpajama as G  # noqa: E402

MAX_DOC_BYTES = 1 << 20
REASONS = ["json", "field", "domain", "utf8", "too_long", "empty", "binary", "truncated"]
DOMAINS = [d[0] for d in G.DOMAINS]
MARGIN = 64 << 10


# ----------------------------------------------------------------------------------------
# the reference classifier
def _strict_constant(name):
    raise ValueError("non-standard JSON constant " + name)


_DECODER = json.JSONDecoder(parse_constant=_strict_constant, strict=True)


def parse_line(line):
    """-> (dict or None). Invalid UTF-8 bytes become lone surrogates (surrogateescape), which
    the JSON scanner accepts inside strings and rejects elsewhere."""
    try:
        s = line.decode("utf-8", "surrogateescape")
        obj, end = _DECODER.raw_decode(s.lstrip(" \t\r\n"))
        if s.lstrip(" \t\r\n")[end:].strip(" \t\r\n"):
            return None
    except (ValueError, RecursionError):
        return None
    return obj if isinstance(obj, dict) else None


def get_path(obj, path):
    for k in path.split("."):
        if not isinstance(obj, dict) or k not in obj:
            return None
        obj = obj[k]
    return obj


def _has_bad_bytes(s):
    return any(0xDC80 <= ord(c) <= 0xDCFF for c in s)


def replace_bad_bytes(s):
    """surrogateescape'd invalid bytes -> one U+FFFD each"""
    return "".join("\ufffd" if 0xDC80 <= ord(c) <= 0xDCFF else c for c in s)


def classify(line, policy):
    """Outcome of one record (a non-empty line): 'ok' or a reason."""
    if len(line) > MAX_DOC_BYTES:
        return "too_long"
    obj = parse_line(line)
    if obj is None:
        return "json"
    text = obj.get("text")
    if not isinstance(text, str):
        return "field"
    # a surrogate-escaped byte in a key or the domain would be a 'json' reject in a parser that
    # validates UTF-8 outside the text; the designed records never have one
    if not isinstance(get_path(obj, "meta.redpajama_set_name"), str):
        return "domain"
    if _has_bad_bytes(text):
        if policy == "reject":
            return "utf8"
        text = replace_bad_bytes(text)
    if text == "":
        return "empty"
    if "\x00" in text:
        return "binary"
    return "ok"


def split_records(data):
    """complete records of a jsonl byte string: [(bytes)], skipping empty lines"""
    return [ln for ln in data.split(b"\n") if ln]


def counts_of(outcomes):
    c = {"records": len(outcomes), "accepted": sum(o == "ok" for o in outcomes),
         "rejects": {r: 0 for r in REASONS}}
    for o in outcomes:
        if o != "ok":
            c["rejects"][o] += 1
    return c


# ----------------------------------------------------------------------------------------
# building blocks
class Maker:
    def __init__(self, seed):
        self.vocab = G.Vocab(seed)
        self.seed = seed
        self.number = 10_000_000  # far from gen_slimpajama's numbers: unique texts
        self.n_domain = 0

    def text(self, n_words):
        self.number += 1
        return self.vocab.text(self.seed, self.number, n_words).decode("utf-8")

    def domain(self):
        self.n_domain += 1
        return DOMAINS[self.n_domain % len(DOMAINS)]

    def good(self, n_words=60):
        return rec(self.text(n_words), self.domain())


def rec(text, domain, **extra):
    obj = {"text": text, "meta": {"redpajama_set_name": domain}}
    obj.update(extra)
    return json.dumps(obj, ensure_ascii=False).encode("utf-8")


class Case:
    """A jsonl byte stream built from (line, designed outcome) pairs."""

    def __init__(self):
        self.lines = []  # (bytes, outcome under reject, outcome under replace)

    def add(self, line, outcome, replace_outcome=None):
        self.lines.append((line, outcome, replace_outcome or outcome))

    def data(self, sep=b"\n", final=True):
        out = sep.join(ln for ln, _, _ in self.lines)
        return out + sep if final and self.lines else out


class Writer:
    def __init__(self, outdir):
        self.outdir = outdir
        self.expected = {}
        self.total_bytes = 0

    def path(self, name):
        p = os.path.join(self.outdir, name)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        return p

    def read(self, name):
        with open(self.path(name), "rb") as f:
            return f.read()

    def put(self, name, data):
        with open(self.path(name), "wb") as f:
            f.write(data)
        self.total_bytes += len(data)

    def expect(self, name, reject, replace, designed, **more):
        """reject/replace: outcome lists from the classifier run on the decoded bytes;
        designed: (reject outcomes, replace outcomes) from the case design."""
        if designed is not None:
            if list(designed[0]) != list(reject) or list(designed[1]) != list(replace):
                diff = [(i, a, b) for i, (a, b) in enumerate(zip(designed[0], reject)) if a != b]
                raise SystemExit("%s: design and classifier disagree: %s (lengths %d/%d)" % (
                    name, diff[:5], len(designed[0]), len(reject)))
        e = {"reject_policy": counts_of(reject), "replace_policy": counts_of(replace)}
        if len(reject) <= 200:
            e["records_detail"] = [[i, o] for i, o in enumerate(reject)]
        e.update(more)
        self.expected[name] = e


def outcomes_of(data, policy):
    return [classify(ln, policy) for ln in split_records(data)]


def designed_of(case):
    return [o for _, o, _ in case.lines], [o for _, _, o in case.lines]


def zstd_bytes(data, level=3):
    return subprocess.run(["zstd", "-q", "-c", "-%d" % level], input=data, stdout=subprocess.PIPE,
                          check=True).stdout


def zstd_decode_prefix(data):
    """what the zstd CLI decodes from (possibly damaged) data; returns (bytes, ok)"""
    p = subprocess.run(["zstd", "-q", "-d", "-c"], input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return p.stdout, p.returncode == 0


def gzip_bytes(data):
    return gzip.compress(data, compresslevel=6, mtime=0)


def gzip_decode_prefix(data):
    d = zlib.decompressobj(wbits=31)
    out = d.decompress(data)
    return out, d.eof


# ----------------------------------------------------------------------------------------
# the cases
def case_good(m, w):
    c = Case()
    for _ in range(20):
        c.add(m.good(), "ok")
    data = c.data()
    w.put("good.jsonl", data)
    w.expect("good.jsonl", outcomes_of(data, "reject"), outcomes_of(data, "replace"), designed_of(c))


def case_malformed(m, w):
    c = Case()
    g = lambda: c.add(m.good(), "ok")  # noqa: E731
    dom = '"meta": {"redpajama_set_name": "RedPajamaC4"}'
    bad = [
        b'{"text": "unterminated object", ' + dom.encode(),
        b"not json at all",
        b"[1, 2, 3]",
        b'"just a string"',
        b"42",
        b"null",
        b"true",
        b'{"text": "trailing data", ' + dom.encode() + b"} x",
        b'{"text": "two", ' + dom.encode() + b'}{"text": "objects", ' + dom.encode() + b"}",
        b'{"text": "trailing comma", ' + dom.encode() + b",}",
        b"{'text': 'single quotes', 'meta': {'redpajama_set_name': 'RedPajamaC4'}}",
        b'{"text": NaN, ' + dom.encode() + b"}",
        b'{"text": Infinity, ' + dom.encode() + b"}",
        b'{"text": "comment" /* here */, ' + dom.encode() + b"}",
        b'{"text": "unterminated string, ' + dom.encode() + b"}",
        b'{"text": "raw\ttab", ' + dom.encode() + b"}",
        b'{"text": "raw\x01control", ' + dom.encode() + b"}",
        b'{"text": "bad escape \\q", ' + dom.encode() + b"}",
        b'{"text": "short unicode escape \\u12", ' + dom.encode() + b"}",
        b'{text: "unquoted key", ' + dom.encode() + b"}",
        b'{"text" "missing colon", ' + dom.encode() + b"}",
        b"[" * 100000,
        b"{" * 50000,
        b"}",
        b'{"text": "x", "meta": {"redpajama_set_name": "RedPajamaC4"}, "n": 01}',
    ]
    g()
    for b in bad:
        c.add(b, "json")
        g()
    data = c.data()
    w.put("malformed_json.jsonl", data)
    w.expect("malformed_json.jsonl", outcomes_of(data, "reject"), outcomes_of(data, "replace"), designed_of(c))


def case_field(m, w):
    c = Case()
    meta = {"redpajama_set_name": "RedPajamaWikipedia"}
    objs = [
        {},
        {"meta": meta},
        {"text": None, "meta": meta},
        {"text": 5, "meta": meta},
        {"text": 1.5, "meta": meta},
        {"text": True, "meta": meta},
        {"text": ["a list"], "meta": meta},
        {"text": {"nested": "object"}, "meta": meta},
        {"Text": "wrong case key", "meta": meta},
        {"content": "other key", "meta": meta},
        {"meta": {"redpajama_set_name": "RedPajamaWikipedia", "text": "text inside meta"}},
    ]
    c.add(m.good(), "ok")
    for o in objs:
        c.add(json.dumps(o).encode(), "field")
        c.add(m.good(), "ok")
    data = c.data()
    w.put("missing_field.jsonl", data)
    w.expect("missing_field.jsonl", outcomes_of(data, "reject"), outcomes_of(data, "replace"), designed_of(c))


def case_domain(m, w):
    c = Case()
    objs = [
        {},
        {"meta": None},
        {"meta": "RedPajamaC4"},
        {"meta": {}},
        {"meta": {"redpajama_set_name": None}},
        {"meta": {"redpajama_set_name": 5}},
        {"meta": {"redpajama_set_name": ["RedPajamaC4"]}},
        {"meta": {"redpajama_set_name": {"name": "RedPajamaC4"}}},
        {"meta": {"RedPajama_Set_Name": "RedPajamaC4"}},
        {"redpajama_set_name": "RedPajamaC4"},
        {"meta": [{"redpajama_set_name": "RedPajamaC4"}]},
    ]
    c.add(m.good(), "ok")
    for o in objs:
        o = dict(o)
        o["text"] = m.text(30)
        c.add(json.dumps(o).encode(), "domain")
        c.add(m.good(), "ok")
    data = c.data()
    w.put("missing_domain.jsonl", data)
    w.expect("missing_domain.jsonl", outcomes_of(data, "reject"), outcomes_of(data, "replace"), designed_of(c))


def case_utf8(m, w):
    c = Case()
    pre = b'{"text": "'
    post = b'", "meta": {"redpajama_set_name": "RedPajamaArXiv"}}'
    # (raw bytes of the text between the quotes, number of invalid bytes)
    bad = [
        (b"lone continuation \x80 byte", 1),
        (b"byte ff \xff here", 1),
        (b"byte fe \xfe and c0 \xc0 here", 2),
        (b"truncated 3-byte \xe2\x82 then ascii", 2),
        (b"truncated 4-byte at end \xf0\x9f\x98", 3),
        (b"overlong slash \xc0\xaf", 2),
        (b"overlong nul \xc0\x80 in text", 2),
        (b"utf-16 surrogate \xed\xa0\x80 encoded", 3),
        (b"beyond U+10FFFF \xf4\x90\x80\x80", 4),
        (b"latin-1 caf\xe9 text", 1),
        (b"\xff", 1),
    ]
    replaced = {}
    c.add(m.good(), "ok")
    # valid multi-byte text (must not be a utf8 reject)
    for t in ["caf\u00e9 \u6771\u4eac \U0001F600 \u0394", "escaped pair \\ud83d\\ude00 and \\u00e9"]:
        line = pre + t.encode("utf-8") + post
        c.add(line, "ok")
    for raw, n_bad in bad:
        c.add(m.good(), "ok")
        line = pre + raw + post
        c.add(line, "utf8", "ok")
        r = replace_bad_bytes(raw.decode("utf-8", "surrogateescape"))
        assert r.count("\ufffd") == n_bad, raw
        replaced[len(c.lines) - 1] = r
    c.add(m.good(), "ok")
    data = c.data()
    w.put("invalid_utf8.jsonl", data)
    w.expect("invalid_utf8.jsonl", outcomes_of(data, "reject"), outcomes_of(data, "replace"), designed_of(c),
             replace_texts={str(k): v for k, v in replaced.items()})


def case_empty(m, w):
    c = Case()
    c.add(m.good(), "ok")
    for d in DOMAINS[:3]:
        c.add(rec("", d), "empty")
        c.add(m.good(), "ok")
    c.add(b'{"meta": {"redpajama_set_name": "RedPajamaC4"}, "text": ""}', "empty")
    data = c.data()
    w.put("empty_text.jsonl", data)
    w.expect("empty_text.jsonl", outcomes_of(data, "reject"), outcomes_of(data, "replace"), designed_of(c))


def case_binary(m, w):
    c = Case()
    c.add(m.good(), "ok")
    c.add(rec("\x00", "RedPajamaGithub"), "binary")
    c.add(m.good(), "ok")
    c.add(rec("before nul\x00after nul", "RedPajamaGithub"), "binary")
    c.add(m.good(), "ok")
    c.add(rec(m.text(500) + "\x00", "RedPajamaGithub"), "binary")
    c.add(rec("\x00" + m.text(50), "RedPajamaGithub"), "binary")
    c.add(rec("control chars \x01\x02\x1f are not binary", "RedPajamaGithub"), "ok")
    c.add(m.good(), "ok")
    data = c.data()
    assert b"\\u0000" in data and b"\x00" not in data
    w.put("binary_text.jsonl", data)
    w.expect("binary_text.jsonl", outcomes_of(data, "reject"), outcomes_of(data, "replace"), designed_of(c))


def case_txt(m, w):
    good = (m.text(200) + "\n").encode()
    w.put("txt/good.txt", good)
    w.expected["txt/good.txt"] = {p: counts_of(["ok"]) for p in ("reject_policy", "replace_policy")}
    binary = ("ELF-like header".encode() + b"\x00\x00\x00\x01\x00" + m.text(100).encode() + b"\x00\n")
    w.put("txt/binary.txt", binary)
    w.expected["txt/binary.txt"] = {p: counts_of(["binary"]) for p in ("reject_policy", "replace_policy")}


def long_record(m, n_bytes, domain="RedPajamaBook"):
    """a valid record whose line is about n_bytes long (random words)"""
    words = max(8, int(n_bytes / 6.2))
    line = rec(m.text(words), domain)
    while len(line) < n_bytes:
        words = int(words * n_bytes / len(line)) + 10
        line = rec(m.text(words), domain)
    return line


def exact_record(m, n_bytes):
    """a valid record line of exactly n_bytes: words, padded with 'x' at the end of the text"""
    words = int(n_bytes / 6.2)
    line = rec(m.text(words), "RedPajamaBook")
    while len(line) > n_bytes - 64:
        words = int(words * 0.98)
        line = rec(m.text(words), "RedPajamaBook")
    pad = n_bytes - len(line)
    assert line.endswith(b'", "meta": {"redpajama_set_name": "RedPajamaBook"}}') and pad > 0
    i = line.rindex(b'", "meta"')
    line = line[:i] + b"x" * pad + line[i:]
    assert len(line) == n_bytes
    return line


def case_too_long(m, w):
    c = Case()
    c.add(m.good(), "ok")
    c.add(long_record(m, 1_500_000), "too_long")
    c.add(m.good(), "ok")
    c.add(b"{" + b'"no json" ' * 130_000, "too_long")  # 1.3 MB, not JSON either: length first
    c.add(m.good(), "ok")
    data = c.data()
    w.put("too_long.jsonl", data)
    w.expect("too_long.jsonl", outcomes_of(data, "reject"), outcomes_of(data, "replace"), designed_of(c))
    c = Case()
    c.add(m.good(), "ok")
    c.add(exact_record(m, MAX_DOC_BYTES), "ok")
    c.add(m.good(), "ok")
    c.add(exact_record(m, MAX_DOC_BYTES + 1), "too_long")
    c.add(m.good(), "ok")
    data = c.data()
    w.put("too_long_boundary.jsonl", data)
    w.expect("too_long_boundary.jsonl", outcomes_of(data, "reject"), outcomes_of(data, "replace"), designed_of(c),
             note="line lengths without the newline: %d (accepted), %d (too_long)" % (MAX_DOC_BYTES, MAX_DOC_BYTES + 1))


def case_huge(m, w, mb):
    """good, one line of `mb` MB (a valid record), good; written streaming"""
    name = "huge_line.jsonl"
    first, last = m.good(), m.good()
    block = json.dumps(m.text(20000) + " ", ensure_ascii=False)[1:-1].encode()  # JSON-escaped
    head = b'{"meta": {"redpajama_set_name": "RedPajamaBook"}, "text": "'
    target = mb * 1_000_000
    n = 0
    with open(w.path(name), "wb") as f:
        f.write(first + b"\n")
        f.write(head)
        n += len(head)
        while n + len(block) + 2 < target:
            f.write(block)
            n += len(block)
        f.write(b'x"}')
        n += 3
        f.write(b"\n" + last + b"\n")
    # verify streaming: exactly three lines, the middle one n bytes
    lens, cur = [], 0
    with open(w.path(name), "rb") as f:
        while True:
            b = f.read(1 << 24)
            if not b:
                break
            parts = b.split(b"\n")
            for p in parts[:-1]:
                lens.append(cur + len(p))
                cur = 0
            cur += len(parts[-1])
    assert lens == [len(first), n, len(last)] and cur == 0, (lens[:5], len(lens))
    w.expected[name] = {p: counts_of(["ok", "too_long", "ok"]) for p in ("reject_policy", "replace_policy")}
    w.expected[name]["records_detail"] = [[0, "ok"], [1, "too_long"], [2, "ok"]]
    w.expected[name]["huge_line_bytes"] = n


def case_empty_files(m, w):
    for name, data in [("empty.jsonl", b""), ("only_newlines.jsonl", b"\n\n\n\n\n"),
                       ("empty_content.jsonl.zst", zstd_bytes(b"")), ("empty_content.jsonl.gz", gzip_bytes(b""))]:
        w.put(name, data)
        w.expected[name] = {p: counts_of([]) for p in ("reject_policy", "replace_policy")}
    # blank lines between records, no newline at the end
    c = Case()
    for _ in range(5):
        c.add(m.good(), "ok")
    data = b"\n\n" + b"\n\n\n".join(ln for ln, _, _ in c.lines)  # no final newline
    w.put("blank_lines.jsonl", data)
    w.expect("blank_lines.jsonl", outcomes_of(data, "reject"), outcomes_of(data, "replace"), designed_of(c))
    # CRLF line ends
    c = Case()
    for _ in range(5):
        c.add(m.good(), "ok")
    data = c.data(sep=b"\r\n")
    w.put("crlf.jsonl", data)
    w.expect("crlf.jsonl", outcomes_of(data, "reject"), outcomes_of(data, "replace"), designed_of(c))


def case_junk(m, w, rng):
    data = bytearray(rng.integers(0, 256, 1 << 20, dtype=np.uint8).tobytes())
    # a line of only JSON white space would be an ambiguous case: make such lines 'x'
    lines = bytes(data).split(b"\n")
    fixed = [b"x" * len(ln) if ln and not ln.strip(b" \t\r") else ln for ln in lines]
    data = b"\n".join(fixed)
    n = len(split_records(data))
    w.put("junk.jsonl", data)
    w.expect("junk.jsonl", outcomes_of(data, "reject"), outcomes_of(data, "replace"), (["json"] * n, ["json"] * n))


def mixed_case(m):
    c = Case()
    for i in range(60):
        c.add(m.good(), "ok")
        if i % 10 == 3:
            c.add(b"{broken", "json")
        if i % 10 == 5:
            c.add(json.dumps({"meta": {"redpajama_set_name": "RedPajamaC4"}}).encode(), "field")
        if i % 10 == 7:
            c.add(json.dumps({"text": "no domain"}).encode(), "domain")
        if i % 20 == 9:
            c.add(rec("", "RedPajamaC4"), "empty")
        if i % 30 == 11:
            c.add(b'{"text": "bad \xff byte", "meta": {"redpajama_set_name": "RedPajamaC4"}}', "utf8", "ok")
    return c


def case_compressed(m, w):
    c = mixed_case(m)
    data = c.data()
    w.put("mixed.jsonl.zst", zstd_bytes(data))
    dec, ok = zstd_decode_prefix(w.read("mixed.jsonl.zst"))
    assert ok and dec == data
    w.expect("mixed.jsonl.zst", outcomes_of(dec, "reject"), outcomes_of(dec, "replace"), designed_of(c))
    c = mixed_case(m)
    data = c.data()
    w.put("mixed.jsonl.gz", gzip_bytes(data))
    dec, ok = gzip_decode_prefix(w.read("mixed.jsonl.gz"))
    assert ok and dec == data
    w.expect("mixed.jsonl.gz", outcomes_of(dec, "reject"), outcomes_of(dec, "replace"), designed_of(c))
    # multi-frame zst, frames cut every 7,777 bytes: lines straddle frames
    c = Case()
    for _ in range(200):
        c.add(m.good(100), "ok")
    data = c.data()
    frames = [zstd_bytes(data[i:i + 7777]) for i in range(0, len(data), 7777)]
    w.put("multiframe.jsonl.zst", b"".join(frames))
    dec, ok = zstd_decode_prefix(b"".join(frames))
    assert ok and dec == data
    w.expect("multiframe.jsonl.zst", outcomes_of(dec, "reject"), outcomes_of(dec, "replace"), designed_of(c),
             frames=len(frames), note="frames cut every 7,777 bytes of jsonl, mid-line")
    # multi-member gzip (as pigz/bgzip write): a line straddles the two members
    c = Case()
    for _ in range(40):
        c.add(m.good(), "ok")
    data = c.data()
    half = len(data) // 2 + 17
    gz = gzip_bytes(data[:half]) + gzip_bytes(data[half:])
    w.put("multimember.jsonl.gz", gz)
    assert gzip.decompress(gz) == data
    w.expect("multimember.jsonl.gz", outcomes_of(data, "reject"), outcomes_of(data, "replace"), designed_of(c),
             note="two gzip members, the cut is mid-line")


def truncation_case(m):
    """records before the damage (a few rejects among them), then a long valid record (~800 KB)
    in whose middle the damage falls, then more records that are lost"""
    c = Case()
    for i in range(40):
        c.add(m.good(), "ok")
        if i % 13 == 4:
            c.add(b"{broken", "json")
        if i % 17 == 8:
            c.add(rec("", "RedPajamaC4"), "empty")
    n_before = len(c.lines)
    c.add(long_record(m, 800_000), "lost")
    for _ in range(20):
        c.add(m.good(), "lost")
    return c, n_before


def check_prefix(dec, data, n_before, what):
    """the decoded prefix must end >= MARGIN after the last line end before the long record and
    >= MARGIN before its end; returns the complete records' bytes"""
    assert data.startswith(dec), what + ": decoded prefix differs from the data"
    lines = data.split(b"\n")
    start = sum(len(ln) + 1 for ln in lines[:n_before])  # offset of the long record
    end = start + len(lines[n_before])
    if not (start + MARGIN <= len(dec) <= end - MARGIN):
        raise SystemExit("%s: decoded %d bytes, long record at [%d, %d): move the cut" % (what, len(dec), start, end))
    return dec[:start]


def expect_truncated(w, name, complete, c, n_before, **more):
    rej = outcomes_of(complete, "reject")
    rep = outcomes_of(complete, "replace")
    d_rej, d_rep = designed_of(c)
    w.expect(name, rej + ["truncated"], rep + ["truncated"],
             (d_rej[:n_before] + ["truncated"], d_rep[:n_before] + ["truncated"]),
             records_before_damage=len(rej), **more)


def cut_search(comp, decode, data, n_before, what):
    """a cut (compressed length) that puts the decoded end in the middle of the long record"""
    lines = data.split(b"\n")
    start = sum(len(ln) + 1 for ln in lines[:n_before])
    mid = start + len(lines[n_before]) // 2
    lo, hi = 0, len(comp) - 1
    while lo < hi:  # smallest cut decoding >= mid bytes
        cut = (lo + hi) // 2
        if len(decode(comp[:cut])[0]) >= mid:
            hi = cut
        else:
            lo = cut + 1
    return lo


def case_truncated(m, w):
    # .jsonl.zst
    c, n_before = truncation_case(m)
    data = c.data()
    comp = zstd_bytes(data)
    cut = cut_search(comp, zstd_decode_prefix, data, n_before, "zst")
    damaged = comp[:cut]
    dec, ok = zstd_decode_prefix(damaged)
    assert not ok
    complete = check_prefix(dec, data, n_before, "truncated.jsonl.zst")
    w.put("truncated.jsonl.zst", damaged)
    expect_truncated(w, "truncated.jsonl.zst", complete, c, n_before,
                     cut_at=cut, full_size=len(comp), decoded_prefix_bytes=len(dec))
    # .jsonl.gz
    c, n_before = truncation_case(m)
    data = c.data()
    comp = gzip_bytes(data)
    cut = cut_search(comp, gzip_decode_prefix, data, n_before, "gz")
    damaged = comp[:cut]
    dec, ok = gzip_decode_prefix(damaged)
    assert not ok
    complete = check_prefix(dec, data, n_before, "truncated.jsonl.gz")
    w.put("truncated.jsonl.gz", damaged)
    expect_truncated(w, "truncated.jsonl.gz", complete, c, n_before,
                     cut_at=cut, full_size=len(comp), decoded_prefix_bytes=len(dec))
    # .tar.gz and .tar: a.jsonl and sub/b.jsonl complete, c.jsonl damaged in its long record
    a, b = mixed_case(m), mixed_case(m)
    cc, n_before_c = truncation_case(m)
    members = [("a.jsonl", a.data()), ("sub/b.jsonl", b.data()), ("c.jsonl", cc.data())]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as t:
        for nm, d in members:
            ti = tarfile.TarInfo(nm)
            ti.size, ti.mtime, ti.mode = len(d), 0, 0o644
            t.addfile(ti, io.BytesIO(d))
    tar = buf.getvalue()
    c_start = tar.index(members[2][1][:200])  # offset of c.jsonl's data in the tar
    c_lines = members[2][1].split(b"\n")
    long_start = c_start + sum(len(ln) + 1 for ln in c_lines[:n_before_c])
    long_mid = long_start + len(c_lines[n_before_c]) // 2
    for name in ("truncated.tar.gz", "truncated.tar"):
        if name.endswith(".gz"):
            comp = gzip_bytes(tar)
            lo, hi = 0, len(comp)
            while lo < hi:
                cut = (lo + hi) // 2
                if len(gzip_decode_prefix(comp[:cut])[0]) >= long_mid:
                    hi = cut
                else:
                    lo = cut + 1
            damaged = comp[:lo]
            dec, ok = gzip_decode_prefix(damaged)
            assert not ok
        else:
            damaged = tar[:long_mid]
            dec = damaged
        if not (long_start + MARGIN <= len(dec) <= long_start + len(c_lines[n_before_c]) - MARGIN):
            raise SystemExit(name + ": cut not inside the long record")
        # read the damaged archive with tarfile: members fully read, then the damaged one
        got = {}
        try:
            with tarfile.open(fileobj=io.BytesIO(dec), mode="r|") as t:
                for ti in t:
                    f = t.extractfile(ti)
                    got[ti.name] = f.read() if f else b""
        except tarfile.ReadError:
            pass
        except (OSError, EOFError):
            pass
        assert got.get("a.jsonl") == members[0][1] and got.get("sub/b.jsonl") == members[1][1], name
        partial = dec[c_start:]  # what the damaged member delivers before the damage
        complete_c = check_prefix(partial, members[2][1], n_before_c, name + ":c.jsonl")
        w.put(name, damaged)
        rej, rep, drej, drep = [], [], [], []
        per_member = {}
        for (nm, d), case, n_b in ((members[0], a, None), (members[1], b, None), (members[2], cc, n_before_c)):
            body = d if n_b is None else complete_c
            r1, r2 = outcomes_of(body, "reject"), outcomes_of(body, "replace")
            x1, x2 = designed_of(case)
            if n_b is not None:
                r1, r2, x1, x2 = r1 + ["truncated"], r2 + ["truncated"], x1[:n_b] + ["truncated"], x2[:n_b] + ["truncated"]
            rej += r1
            rep += r2
            drej += x1
            drep += x2
            per_member[nm] = {"reject_policy": counts_of(r1), "replace_policy": counts_of(r2)}
        w.expect(name, rej, rep, (drej, drep), members=per_member,
                 records_before_damage=len(rej) - 1, decoded_prefix_bytes=len(dec),
                 note="records_detail counts records across members in order a.jsonl, sub/b.jsonl, c.jsonl")


def case_tar_good(m, w):
    a, b = mixed_case(m), mixed_case(m)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as t:
        ti = tarfile.TarInfo("docs")
        ti.type, ti.mtime, ti.mode = tarfile.DIRTYPE, 0, 0o755
        t.addfile(ti)
        for nm, case in (("docs/a.jsonl", a), ("docs/b.jsonl", b)):
            d = case.data()
            ti = tarfile.TarInfo(nm)
            ti.size, ti.mtime, ti.mode = len(d), 0, 0o644
            t.addfile(ti, io.BytesIO(d))
    w.put("archive.tar.gz", gzip_bytes(buf.getvalue()))  # gzip_bytes: mtime 0, reproducible
    rej, rep, per = [], [], {}
    for nm, case in (("docs/a.jsonl", a), ("docs/b.jsonl", b)):
        r1, r2 = outcomes_of(case.data(), "reject"), outcomes_of(case.data(), "replace")
        assert (r1, r2) == tuple(designed_of(case))
        per[nm] = {"reject_policy": counts_of(r1), "replace_policy": counts_of(r2)}
        rej += r1
        rep += r2
    w.expect("archive.tar.gz", rej, rep, None, members=per, note="a directory entry and two jsonl members")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("outdir")
    ap.add_argument("--huge", action="store_true", help="also write huge_line.jsonl (a 300 MB line)")
    ap.add_argument("--huge-mb", type=int, default=300)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    os.makedirs(a.outdir, exist_ok=True)
    m = Maker(a.seed)
    w = Writer(a.outdir)
    rng = np.random.default_rng([a.seed, 99])
    case_good(m, w)
    case_malformed(m, w)
    case_field(m, w)
    case_domain(m, w)
    case_utf8(m, w)
    case_empty(m, w)
    case_binary(m, w)
    case_txt(m, w)
    case_too_long(m, w)
    case_empty_files(m, w)
    case_junk(m, w, rng)
    case_compressed(m, w)
    case_truncated(m, w)
    case_tar_good(m, w)
    if a.huge:
        case_huge(m, w, a.huge_mb)
    totals = {}
    for pol in ("reject_policy", "replace_policy"):
        t = {"records": 0, "accepted": 0, "rejects": {r: 0 for r in REASONS}}
        for e in w.expected.values():
            t["records"] += e[pol]["records"]
            t["accepted"] += e[pol]["accepted"]
            for r in REASONS:
                t["rejects"][r] += e[pol]["rejects"][r]
        assert t["records"] == t["accepted"] + sum(t["rejects"].values())
        totals[pol] = t
    out = {
        "generator": "gen_bad_inputs.py --seed %d%s" % (a.seed, " --huge" if a.huge else ""),
        "contract": {
            "max_doc_bytes": MAX_DOC_BYTES,
            "text_field": "text",
            "domain_path": "meta.redpajama_set_name",
            "reasons": REASONS,
            "order": ["too_long", "json", "field", "domain", "utf8", "empty", "binary"],
            "records": "lines split at \\n; zero-byte lines skipped and not counted; the last line "
                       "needs no \\n; \\r before \\n is JSON white space",
            "truncated": "one 'truncated' reject per damaged file, also counted as one record; "
                         "records before the damage counted as usual (records_before_damage)",
            "replace_policy": "invalid UTF-8 in the text -> one U+FFFD per invalid byte, accepted",
            "archives": "each member is a jsonl input; records numbered per member",
            "txt": "txt/*.txt: one document per file, domain from a rule; not JSON",
            "invariant": "records == accepted + sum(rejects) for every file and policy",
        },
        "files": dict(sorted(w.expected.items())),
        "totals": totals,
    }
    with open(os.path.join(a.outdir, "expected.json"), "w") as f:
        json.dump(out, f, indent=1, ensure_ascii=False)
        f.write("\n")
    sha = hashlib.sha256(json.dumps(out, sort_keys=True).encode()).hexdigest()[:16]
    print("%s: %d files, %.1f MB (without huge_line.jsonl), totals (reject policy): %s; expected.json %s" % (
        a.outdir, len(w.expected), w.total_bytes / 1e6, json.dumps(totals["reject_policy"]), sha))


if __name__ == "__main__":
    main()
