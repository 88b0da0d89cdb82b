#!/usr/bin/python3
"""Compare two token files in longctx's u32 format (per document: uint32 count, then the
uint32 ids, little-endian) document by document.

usage: /usr/bin/python3 compare_u32.py A.u32 B.u32 CORPUS.jsonl [--tokenizer tokenizer.json]
                                       [--field text] [--show 5]

Prints the number of documents and how many differ, then for the first --show differing
documents: the index, the first differing token position, a window of ids (and their pieces)
from both sides, and the text around the corresponding position. The text position is exact
up to the first difference when the vocabulary is known: pass --tokenizer, or let the script
pick ../shared/assets/tokenizers/llama{2,3}/tokenizer.json from "llama2"/"llama3" in the file
names ($LONGCTX_ASSETS overrides the assets folder). Without one it is estimated.
Exit status: 0 identical, 1 some document differs, 2 usage or format error.
"""
import argparse, json, os, re, sys
import numpy as np


def load_u32(path):
    a = np.fromfile(path, dtype='<u4')
    offs = []                     # offset of each document's count word
    pos, n = 0, len(a)
    while pos < n:                # one step per document; numpy slices do the rest
        offs.append(pos)
        pos += int(a[pos]) + 1
    if pos != n:
        sys.exit('%s: truncated: last document wants %d words past the end' % (path, pos - n))
    return a, np.asarray(offs, dtype=np.int64)


def load_texts(path, field):
    with open(path, encoding='utf-8') as f:
        return [json.loads(l)[field] for l in f if l.strip()]


def bytes_to_unicode():
    """GPT-2's byte <-> printable character table (byte-level BPE pieces)."""
    bs = list(range(ord('!'), ord('~') + 1)) + list(range(ord('¡'), ord('¬') + 1)) + \
         list(range(ord('®'), ord('ÿ') + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b); cs.append(256 + n); n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


class Vocab:
    """id -> (piece for display, its length in bytes of the original text)."""

    def __init__(self, path):
        j = json.load(open(path, encoding='utf-8'))
        vocab = j['model']['vocab']
        if isinstance(vocab, list):                   # Unigram: [[piece, score], ...]
            vocab = {p: i for i, (p, _) in enumerate(vocab)}
        self.byte_level = 'ByteLevel' in json.dumps(j.get('pre_tokenizer')) or \
                          'ByteLevel' in json.dumps(j.get('decoder'))
        self.metaspace = not self.byte_level
        self.piece, self.nbytes = {}, {}
        u2b = bytes_to_unicode()
        for p, i in vocab.items():
            self.piece[i] = p
            if self.byte_level:
                self.nbytes[i] = len(p)
            elif re.fullmatch(r'<0x[0-9A-Fa-f]{2}>', p):
                self.nbytes[i] = 1
            else:
                self.nbytes[i] = len(p.replace('\u2581', ' ').encode('utf-8'))
        for t in j.get('added_tokens', []):
            self.piece[t['id']] = t['content']
            self.nbytes[t['id']] = len(t['content'].encode('utf-8'))
        self.u2b = u2b

    def show(self, i):
        p = self.piece.get(int(i))
        if p is None:
            return '?'
        if self.byte_level and all(c in self.u2b for c in p):
            p = bytes(self.u2b[c] for c in p).decode('utf-8', errors='backslashreplace')
        return p

    def offset(self, ids, raw):
        """Byte offset in raw (the document's UTF-8) where the token after ids starts."""
        if not self.metaspace:
            return sum(self.nbytes.get(int(i), 0) for i in ids)
        # "▁" in a piece is a space of the text, a literal U+2581 of the text (SentencePiece
        # does not tell them apart) or, first of all, the dummy prefix: look at the text.
        pos, meta = 0, '\u2581'.encode('utf-8')
        for k, i in enumerate(ids):
            p = self.piece.get(int(i), '')
            if self.nbytes.get(int(i), 0) == 1 and re.fullmatch(r'<0x[0-9A-Fa-f]{2}>', p):
                pos += 1
                continue
            for j, ch in enumerate(p):
                if ch != '\u2581':
                    pos += len(ch.encode('utf-8'))
                elif k == 0 and j == 0:
                    pass                                              # dummy prefix
                elif raw[pos:pos + 3] == meta:
                    pos += 3
                else:
                    pos += 1
        return pos


def guess_tokenizer(*names):
    assets = os.environ.get('LONGCTX_ASSETS') or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), '..', '..', '..', 'shared', 'assets')
    for name in names:
        for m in ('llama3', 'llama2'):
            if m in os.path.basename(name):
                p = os.path.join(assets, 'tokenizers', m, 'tokenizer.json')
                if os.path.exists(p):
                    return p
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('a'); ap.add_argument('b'); ap.add_argument('corpus')
    ap.add_argument('--tokenizer'); ap.add_argument('--field', default='text')
    ap.add_argument('--show', type=int, default=5)
    ap.add_argument('--window', type=int, default=6, help='ids shown either side')
    args = ap.parse_args()

    a, oa = load_u32(args.a)
    b, ob = load_u32(args.b)
    texts = load_texts(args.corpus, args.field)
    print('documents: %s %d, %s %d, corpus %d' % (args.a, len(oa), args.b, len(ob), len(texts)))
    print('tokens: %s %d, %s %d' % (args.a, len(a) - len(oa), args.b, len(b) - len(ob)))
    if not (len(oa) == len(ob) == len(texts)):
        print('DIFFER: document counts do not match')
        return 1

    if len(a) == len(b) and np.array_equal(a, b):
        differ = []
    else:
        na, nb = a[oa], b[ob]
        ea, eb = oa + 1 + na, ob + 1 + nb
        differ = [d for d in range(len(oa))
                  if na[d] != nb[d] or not np.array_equal(a[oa[d] + 1:ea[d]], b[ob[d] + 1:eb[d]])]
    print('differing documents: %d of %d' % (len(differ), len(oa)))
    if not differ:
        return 0

    tok = args.tokenizer or guess_tokenizer(args.a, args.b)
    vocab = Vocab(tok) if tok else None
    if vocab:
        print('pieces and text offsets from %s' % tok)
    W = args.window
    for d in differ[:args.show]:
        x = a[oa[d] + 1:oa[d] + 1 + a[oa[d]]]
        y = b[ob[d] + 1:ob[d] + 1 + b[ob[d]]]
        m = min(len(x), len(y))
        neq = np.nonzero(x[:m] != y[:m])[0]
        p = int(neq[0]) if len(neq) else m
        text = texts[d]
        raw = text.encode('utf-8')
        if vocab:
            off, how = vocab.offset(x[:p], raw), 'byte'
        else:
            off, how = int(len(raw) * p / max(1, len(x))), 'estimated byte'
        c = len(raw[:off].decode('utf-8', errors='ignore'))
        print('\n--- document %d: %d vs %d tokens, %d bytes; first difference at token %d (%s offset %d, char %d)'
              % (d, len(x), len(y), len(raw), p, how, off, c))
        for name, z in ((args.a, x), (args.b, y)):
            lo, hi = max(0, p - W), min(len(z), p + W)
            ids = ' '.join(('[%d]' if k == p else '%d') % z[k] for k in range(lo, hi))
            print('  %-6s ids[%d:%d]: %s' % ('A' if z is x else 'B', lo, hi, ids))
            if vocab:
                print('         pieces: %s' % ' '.join(
                    ('[%r]' if k == p else '%r') % vocab.show(z[k]) for k in range(lo, hi)))
        print('  text: %r <HERE> %r' % (text[max(0, c - 40):c], text[c:c + 40]))
    return 1


if __name__ == '__main__':
    sys.exit(main())
