#!/usr/bin/python3
"""Deterministic tokenizer test corpus from text Debian ships (see make_corpus.sh).

usage: /usr/bin/python3 corpus_gen.py OUT.jsonl MBYTES SEED

Writes one JSON object per line, {"text": ...}, until the UTF-8 text totals at least
MBYTES MiB. Document sizes are log-uniform from 1 byte to min(1 MiB, total/16), plus empty
and whitespace-only documents and a set of deliberately nasty synthetic documents.

UTF-8 policy: a source file containing a NUL byte is dropped (binary). Otherwise it is decoded
strictly; if that fails it is decoded with errors='replace' when at most 0.5% of its
characters become U+FFFD (legacy Latin-1 changelogs and the like: the U+FFFD stays in the
corpus, which is itself a useful test), and dropped when more would. U+0000 never appears in
the corpus (special_cases.jsonl has one case with it); lone surrogates cannot appear.
Output is identical for the same SEED, MBYTES and the same installed Debian packages: every
file list is sorted and all choices come from random.Random(SEED).
"""
import bisect, collections, gzip, hashlib, json, math, os, random, sys, time, zlib

OUT, MBYTES, SEED = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
TARGET = int(MBYTES * (1 << 20))
MAX_DOC = min(1 << 20, max(4096, TARGET // 16))
rng = random.Random(SEED)
UNI = '/usr/share/unicode'

SPECIALS = ['<s>', '</s>', '<unk>', '<|begin_of_text|>', '<|end_of_text|>', '<|eot_id|>',
            '<|start_header_id|>', '<|end_header_id|>', '<|reserved_special_token_5|>',
            '<|reserved_special_token_250|>', '<|finetune_right_pad_id|>', '<|python_tag|>',
            '<0x41>', '<0x0A>', '▁', '▁▁', '<|begin_of_text', '<s', 's>', '< s>', '<|eot_id|>\n']

# ---------------------------------------------------------------- reading sources

def decode(raw):
    """bytes -> str or None, by the policy in the module docstring."""
    if b'\0' in raw:
        return None
    try:
        return raw.decode('utf-8')
    except UnicodeDecodeError:
        s = raw.decode('utf-8', errors='replace')
        return s if s.count('\ufffd') <= 0.005 * max(1, len(s)) else None

def read_file(path, limit=8 << 20):
    try:
        if path.endswith('.gz'):
            with gzip.open(path, 'rb') as f:
                raw = f.read(limit)
        else:
            with open(path, 'rb') as f:
                raw = f.read(limit)
    except (OSError, EOFError, ValueError, zlib.error):
        return None
    return decode(raw)

def read_mo(path):
    """Translated strings of a gettext .mo file (format: magic, revision, N, orig table offset,
    translation table offset; each table N (length, offset) pairs)."""
    try:
        with open(path, 'rb') as f:
            b = f.read(32 << 20)
        import struct
        magic = struct.unpack('<I', b[:4])[0]
        e = '<' if magic == 0x950412de else '>'
        n, _, toff = struct.unpack(e + 'III', b[8:20])
        out = []
        for i in range(n):
            ln, off = struct.unpack(e + 'II', b[toff + 8 * i: toff + 8 * i + 8])
            s = b[off:off + ln]
            if i == 0 and s.startswith(b'Project-Id') or not s:
                continue
            out.extend(s.split(b'\0'))                       # plural forms are NUL-separated
        return decode(b'\n'.join(out))
    except Exception:
        return None

def walk(roots, keep):
    out = []
    for root in roots:
        for d, dirs, files in os.walk(root):
            dirs.sort()
            for f in sorted(files):
                p = os.path.join(d, f)
                if os.path.isfile(p) and not os.path.islink(p) and keep(p):
                    out.append(p)
    return out

BINEXT = ('.png', '.jpg', '.jpeg', '.gif', '.ico', '.pdf', '.woff', '.woff2', '.ttf', '.otf',
          '.so', '.a', '.o', '.pyc', '.mo', '.gmo', '.bz2', '.xz', '.zst', '.zip', '.jar',
          '.db', '.svgz', '.bin', '.dat', '.wasm', '.node')

def is_script(p):
    try:
        with open(p, 'rb') as f:
            h = f.read(32)
        return h.startswith(b'#!') and (b'sh' in h.split(b'\n')[0])
    except OSError:
        return False

def man_pools():
    """One pool per man page language (directory under /usr/share/man), English as 'en'."""
    pools = collections.OrderedDict()
    base = '/usr/share/man'
    for lang in sorted(os.listdir(base)):
        p = os.path.join(base, lang)
        if not os.path.isdir(p):
            continue
        key = 'en' if lang.startswith('man') else lang
        pools.setdefault(key, []).extend(walk([p], lambda q: True))
    return pools

t0 = time.time()
POOLS = collections.OrderedDict()         # category -> list of sub-pools (lists of paths)
POOLS['doc'] = [walk(['/usr/share/doc'], lambda p: not p.lower().endswith(BINEXT))]
mp = man_pools()
POOLS['man_en'] = [mp.pop('en', [])]
POOLS['man_i18n'] = [v for k, v in mp.items() if v]  # languages sampled evenly
POOLS['code'] = [
    walk(['/usr/include'], lambda p: p.endswith(('.h', '.hpp', '.hh', '.tcc', '.inc', '.def'))
         or '.' not in os.path.basename(p)),
    walk(['/usr/share/perl', '/usr/share/perl5', '/usr/lib/x86_64-linux-gnu/perl-base'],
         lambda p: p.endswith(('.pm', '.pl', '.pod', '.t'))),
    walk(['/usr/lib/python3'], lambda p: p.endswith('.py')),
    walk(['/usr/bin', '/usr/sbin', '/etc', '/usr/lib/dpkg', '/usr/share/debconf'], is_script),
]
def mo_pools():
    """One pool of gettext catalogues per language, so that rare languages are drawn as
    often as common ones."""
    base = '/usr/share/locale'
    try:
        langs = sorted(os.listdir(base))
    except OSError:
        return []
    return [walk([os.path.join(base, l)], lambda p: p.endswith('.mo')) for l in langs]

POOLS['i18n'] = mo_pools() * 2 + [
    walk(['/usr/share/i18n/locales'], lambda p: True),
    walk(['/usr/share/games/fortunes'], lambda p: not p.endswith('.dat')),
]
POOLS['unicode'] = [[os.path.join(UNI, 'emoji', f) for f in
                     ('emoji-test.txt', 'emoji-sequences.txt', 'emoji-zwj-sequences.txt',
                      'emoji-variation-sequences.txt')],
                    [os.path.join(UNI, f) for f in ('UnicodeData.txt', 'NamesList.txt',
                     'StandardizedVariants.txt', 'NamedSequences.txt', 'BidiCharacterTest.txt')]]
for k in POOLS:
    POOLS[k] = [sorted(set(v)) for v in POOLS[k] if v]
sys.stderr.write('sources: %s (%.1fs)\n' % (', '.join(
    '%s %d files' % (k, sum(map(len, v))) for k, v in POOLS.items()), time.time() - t0))

CACHE = collections.OrderedDict()
def text_of(path):
    if path in CACHE:
        CACHE.move_to_end(path)
        return CACHE[path]
    s = read_mo(path) if path.endswith('.mo') else read_file(path)
    CACHE[path] = s
    if len(CACHE) > 256:
        CACHE.popitem(last=False)
    return s

def random_text(cat):
    for _ in range(50):
        pool = rng.choice(POOLS[cat])
        s = text_of(rng.choice(pool))
        if s:
            return s
    return 'fallback text\n'

def take(cat, n):
    """About n characters of real text from category cat: sometimes one whole file, else a
    window starting at a random offset, continued with further random files."""
    s = random_text(cat)
    if rng.random() < 0.25 and len(s) <= 4 * n + 64:
        return s
    if len(s) > n:
        i = rng.randrange(len(s) - n + 1)
        return s[i:i + n]
    parts, got = [s], len(s)
    while got < n:
        t = random_text(cat)
        parts.append(t)
        got += len(t) + 2
    return '\n\n'.join(parts)[:n]

# ---------------------------------------------------------------- Unicode tables

def load_scripts():
    starts, ends, names = [], [], []
    try:
        rows = []
        for line in open(os.path.join(UNI, 'Scripts.txt'), encoding='utf-8'):
            line = line.split('#')[0].strip()
            if not line:
                continue
            r, name = [x.strip() for x in line.split(';')]
            a, _, b = r.partition('..')
            rows.append((int(a, 16), int(b or a, 16), name))
        for a, b, name in sorted(rows):
            starts.append(a); ends.append(b); names.append(name)
    except OSError:
        pass
    return starts, ends, names

SC_START, SC_END, SC_NAME = load_scripts()
def script_of(cp):
    i = bisect.bisect_right(SC_START, cp) - 1
    return SC_NAME[i] if i >= 0 and cp <= SC_END[i] else 'Unknown'

def load_chars():
    """Assigned code points of UnicodeData.txt by script: letters, marks, numbers, symbols,
    punctuation (no controls, surrogates, private use, unassigned)."""
    by = collections.defaultdict(list)
    first = None
    try:
        for line in open(os.path.join(UNI, 'UnicodeData.txt'), encoding='ascii'):
            f = line.split(';')
            cp, name, cat = int(f[0], 16), f[1], f[2]
            if name.endswith('First>'):
                first = cp
                continue
            rng_ = range(first, cp + 1, max(1, (cp - first) // 4000)) if name.endswith('Last>') else (cp,)
            first = None
            if cat[0] in 'LMNPS':
                for c in rng_:
                    by[script_of(c)].append(c)
    except OSError:
        by['Latin'] = list(range(0x41, 0x5b))
    return collections.OrderedDict(sorted(by.items()))

CHARS = load_chars()
SCRIPT_NAMES = [k for k in CHARS if k not in ('Common', 'Inherited', 'Unknown')]

# ---------------------------------------------------------------- synthetic documents

WS = [' ', ' ', ' ', '\t', '\n', '\n', '\r', '\r\n', '\x0b', '\x0c', '\xa0', '\u3000',
      '\u2028', '\u2029', '\x85', '\u2000', '\u200a', '\u202f', '\u205f', '\u1680']
WORDS = ['I', 'you', 'we', 'they', 'he', 'she', 'it', 'don', 'can', 'won', 'Bob', 'y', 'o',
         'rock', 'n', 'ma', 'ain', 'shouldn', 'ol', 'dog', 'the', 'The', 'THE', 'what']
CONTR = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d"]

def rcase(s):
    return ''.join(c.upper() if rng.random() < 0.5 else c.lower() for c in s)

def logint(a, b):
    return int(math.exp(rng.uniform(math.log(a), math.log(b + 1))))

def gen_whitespace(n):
    out, got = [], 0
    while got < n:
        r = rng.random()
        if r < 0.6:
            k = logint(1, 2000)
            pal = rng.sample(WS, rng.randint(1, 4))
            t = ''.join(rng.choice(pal) for _ in range(k))
        elif r < 0.8:
            t = rng.choice(WORDS) + rng.choice(['', '.', '!', ',', '?', ':'])
        else:
            t = rng.choice([' \n \n', '\r\n\r\n', ' \t \t', '\n\n\n   ', '   x   ', ' \n', '\t\n\r'])
        out.append(t); got += len(t)
    return ''.join(out)[:n]

def gen_ws_only(n):
    pal = rng.sample(WS, rng.randint(1, 5))
    return ''.join(rng.choice(pal) for _ in range(max(1, n)))

def gen_digits(n):
    digsets = ['0123456789'] * 6 + ['٠١٢٣٤٥٦٧٨٩', '०१२३४५६७८९', '０１２３４５６７８９', '๐๑๒๓๔๕๖๗๘๙']
    out, got = [], 0
    while got < n:
        r = rng.random()
        ds = rng.choice(digsets)
        if r < 0.5:
            t = ''.join(rng.choice(ds) for _ in range(logint(1, 64)))
        elif r < 0.7:
            t = '{:,}'.format(rng.randrange(10 ** rng.randint(1, 15))) + (
                '.%02d' % rng.randrange(100) if rng.random() < 0.5 else '')
        elif r < 0.8:
            t = '%s%d%s' % (rng.choice(['v', 'x', 'abc', '$', '-', '+', '#', '']), rng.randrange(10 ** 9),
                            rng.choice(['th', 'px', 'kB', '%', '', 'e-5', '.0']))
        else:
            t = '%d.%d.%d.%d' % tuple(rng.randrange(256) for _ in range(4))
        t += rng.choice([' ', ' ', '\n', ',', '', '-', '/', ':'])
        out.append(t); got += len(t)
    return ''.join(out)[:n]

def gen_contractions(n):
    out, got = [], 0
    while got < n:
        w = rcase(rng.choice(WORDS)) if rng.random() < 0.5 else rng.choice(WORDS)
        c = rng.choice(CONTR)
        c = rcase(c) if rng.random() < 0.6 else c
        if rng.random() < 0.2:
            c = c.replace("'", rng.choice(['\u2019', '\u2018', '`', '\u02bc', "''"]))
        t = w + c + rng.choice([' ', ' ', ' ', '', '.', ',', '\n', "'", 'x ', "'s "])
        out.append(t); got += len(t)
    return ''.join(out)[:n]

def gen_mixed_case(n):
    return rcase(take(rng.choice(['doc', 'man_en', 'man_i18n']), n))

def gen_specials(n):
    s = take(rng.choice(['doc', 'man_en', 'code', 'man_i18n']), n)
    for _ in range(rng.randint(1, 1 + n // 200)):
        i = rng.randrange(len(s) + 1)
        sp = rng.choice(SPECIALS)
        if rng.random() < 0.3:
            sp = sp * rng.randint(2, 5)
        if rng.random() < 0.3:
            sp = rng.choice([' ', '\n', '']) + sp + rng.choice([' ', '\n', ''])
        s = s[:i] + sp + s[i:]
    return s

def gen_long_word(n):
    k = rng.random()
    if k < 0.2:
        return rng.choice('aZ.-_=#!▁ 0\t\n') * n
    if k < 0.4:
        return ''.join(rng.choice('abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ') for _ in range(n))
    if k < 0.55:
        import base64
        return base64.b64encode(rng.randbytes(n * 3 // 4 + 1)).decode()[:n]
    if k < 0.7:
        return (rng.choice(['汉', '字', '한', 'ก', 'я', 'é', '😀', '👩\u200d👩\u200d👧', '🇯🇵', '\u0301']) * n)[:n]
    if k < 0.85:
        sc = rng.choice(SCRIPT_NAMES)
        return ''.join(chr(rng.choice(CHARS[sc])) for _ in range(n))
    return ''.join(rng.choice(['<0x41>', '▁', '<s>', 'ab', "'s", '12']) for _ in range(n // 3 + 1))[:n]

def gen_combining(n):
    marks = CHARS.get('Inherited', [0x301])
    out, got = [], 0
    while got < n:
        t = rng.choice('aeiouxAEIOUαяक ') + ''.join(chr(rng.choice(marks)) for _ in range(logint(1, 40)))
        out.append(t); got += len(t)
    return ''.join(out)[:n]

def gen_controls(n):
    pal = [chr(c) for c in list(range(1, 32)) + [0x7f] + list(range(0x80, 0xa0))] + \
          ['\ufeff', '\u200d', '\u200c', '\u200b', '\u200e', '\u200f', '\u202e', '\u2066',
           '\u2069', '\ufffd', '\ufe0f', '\U000e0041', '\U000f0000', '\ue000']
    out, got = [], 0
    while got < n:
        t = rng.choice(pal) * logint(1, 8) + rng.choice(['', 'a', ' b', '字', '1', "'s"])
        out.append(t); got += len(t)
    return ''.join(out)[:n]

def gen_random_scripts(n):
    scripts = rng.sample(SCRIPT_NAMES, min(len(SCRIPT_NAMES), rng.randint(1, 6)))
    out, got = [], 0
    while got < n:
        sc = rng.choice(scripts)
        t = ''.join(chr(rng.choice(CHARS[sc])) for _ in range(logint(1, 15)))
        t += rng.choice([' ', ' ', ' ', '\n', '. ', ', ', '', '\u3000', '\t'])
        out.append(t); got += len(t)
    return ''.join(out)[:n]

def gen_crlf(n):
    return take(rng.choice(['doc', 'man_en', 'code', 'man_i18n']), n).replace('\n', '\r\n')

def load_emoji():
    """Every sequence of emoji-test.txt (ZWJ sequences, flags, skin tones, keycaps)."""
    s = read_file(os.path.join(UNI, 'emoji', 'emoji-test.txt')) or ''
    em = [''.join(chr(int(x, 16)) for x in l.split(';')[0].split())
          for l in s.splitlines() if l.strip() and not l.startswith('#') and ';' in l]
    return em or ['\U0001f600']

EMOJI = load_emoji()
def gen_emoji(n):
    em = EMOJI
    out, got = [], 0
    while got < n:
        t = ''.join(rng.choice(em) for _ in range(logint(1, 10))) + rng.choice([' ', '', '\n', 'a', '字 '])
        out.append(t); got += len(t)
    return ''.join(out)[:n]

NASTY = [gen_whitespace, gen_digits, gen_contractions, gen_mixed_case, gen_specials,
         gen_long_word, gen_combining, gen_controls, gen_random_scripts, gen_crlf, gen_emoji]

# ---------------------------------------------------------------- corpus

CATS = [('doc', 22), ('man_en', 10), ('man_i18n', 22), ('code', 18), ('i18n', 10),
        ('unicode', 3), ('nasty', 15), ('empty', 1.5), ('ws_only', 1.5)]

def make_doc():
    cat = rng.choices([c for c, _ in CATS], [w for _, w in CATS])[0]
    n = logint(1, MAX_DOC if rng.random() < 0.2 else min(MAX_DOC, 64 << 10))
    if cat == 'empty':
        return cat, ''
    if cat == 'ws_only':
        return cat, gen_ws_only(logint(1, 5000))
    if cat == 'nasty':
        g = rng.choice(NASTY)
        return g.__name__[4:], g(n)
    s = take(cat, n)
    return cat, s

def main():
    total, docs, sizes = 0, 0, []
    by_cat = collections.Counter()
    n_cat = collections.Counter()
    chars = collections.Counter()
    h = hashlib.sha256()
    # Documents that always appear, at random places: every emoji sequence, words of every
    # script, every special-token literal, and (for big corpora) two documents of ~1 MiB.
    forced = [('all_emoji', lambda: ' '.join(EMOJI)),
              ('all_scripts', lambda: '\n'.join(
                  sc + ': ' + ' '.join(''.join(chr(rng.choice(CHARS[sc])) for _ in range(rng.randint(1, 8)))
                                       for _ in range(8)) for sc in CHARS)),
              ('all_specials', lambda: ' '.join(SPECIALS) + '\n' + ''.join(SPECIALS))]
    if TARGET >= (16 << 20):
        forced += [('doc', lambda: take('doc', MAX_DOC)), ('man_i18n', lambda: take('man_i18n', MAX_DOC))]
    with open(OUT, 'w', encoding='utf-8', newline='\n') as f:
        while total < TARGET or forced:
            if forced and (rng.random() < 0.02 or total >= TARGET):
                cat, g = forced.pop(0)
                s = g()
            else:
                cat, s = make_doc()
            s = s.replace('\0', '')
            if len(s) * 4 > MAX_DOC and len(s.encode('utf-8')) > MAX_DOC:   # cap at MAX_DOC bytes
                s = s.encode('utf-8')[:MAX_DOC].decode('utf-8', errors='ignore')
            line = json.dumps({'text': s}, ensure_ascii=False) + '\n'
            f.write(line)
            h.update(line.encode())
            b = len(s.encode('utf-8'))
            total += b; docs += 1; sizes.append(b); by_cat[cat] += b; n_cat[cat] += 1
            chars.update(s)
    scripts = collections.Counter()
    for c, k in chars.items():
        scripts[script_of(ord(c))] += k
    sizes.sort()
    e = sys.stderr.write
    e('wrote %s: %d docs, %d bytes (%.2f MiB), sha256 %s, %.1fs\n' % (
        OUT, docs, total, total / 2 ** 20, h.hexdigest(), time.time() - t0))
    e('doc bytes: min %d, median %d, mean %d, max %d; empty %d, whitespace-only %d\n' % (
        sizes[0], sizes[len(sizes) // 2], total // docs, sizes[-1], sizes.count(0),
        n_cat['ws_only']))
    edges = [0, 1, 10, 100, 1000, 10 ** 4, 10 ** 5, 10 ** 6, 10 ** 9]
    hist = ['[%s,%s): %d' % (a, b, bisect.bisect_left(sizes, b) - bisect.bisect_left(sizes, a))
            for a, b in zip(edges, edges[1:])]
    e('size histogram: ' + ', '.join(hist) + '\n')
    e('by source: ' + ', '.join('%s %d docs %.2f MiB' % (k, n_cat[k], v / 2 ** 20) for k, v in by_cat.most_common()) + '\n')
    e('distinct code points: %d; non-ASCII chars %d\n' % (len(chars), sum(k for c, k in chars.items() if ord(c) > 127)))
    e('scripts (%d): %s\n' % (len(scripts), ', '.join('%s %d' % kv for kv in scripts.most_common())))

main()
