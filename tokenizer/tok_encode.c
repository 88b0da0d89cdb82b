/* tok_encode.c - encode and decode: special tokens, normalisation, the split regexes, BPE.
 *
 * Stages, in the order text moves through them:
 *   1. special tokens (only with parse_special): the text is cut around them;
 *   2. byte-level: the split regex cuts words (hand-written matchers of the two regexes);
 *      SPM: the normaliser ("▁" for spaces, dummy prefix, U+FFFD for invalid bytes, the
 *      precompiled charsmap), then words cut before a "▁" that follows another character
 *      (only when no piece spans such a point, checked at load);
 *   3. each word: the whole word if it is a token (ignore_merges), else the word cache,
 *      else BPE with a heap (O(n log n) for any word length), then cached.
 */
#include "tok_internal.h"

#include <stdlib.h>
#include <xxhash.h>

/* ==== context ================================================================================*/

typedef struct {
    uint32_t id;    /* token, TOK_NONE for an unknown character */
    int32_t prev;   /* -1 at the start */
    int32_t next;   /* -1 at the end */
    uint32_t start; /* byte offset in the word */
    uint32_t len;   /* bytes; 0 once merged into its left neighbour */
} bpe_sym;

/* A queued merge: rank << 32 | left symbol. Smaller first = lowest rank, then leftmost. It is
 * checked again when popped: the pair now at (left, left.next) must merge with this rank. If a
 * side changed and the new pair happens to have the same rank, merging it now is what its own
 * queued entry would do at the same place in the order, so the result is the same. */
typedef uint64_t bpe_cand;

/* Word cache: open addressing over (hash, key, ids) in one arena. Cleared when full; it never
 * changes results, only speed. */
typedef struct {
    uint64_t hash; /* 0 = empty */
    uint32_t key_off, key_len, ids_off, n_ids;
} cache_slot;

#define CACHE_SLOTS       (1u << 16)
#define CACHE_ARENA_BYTES (8u << 20)

struct tok_ctx {
    const tokenizer *t;
    uint32_t *ids; /* (ids_cap) the output */
    size_t n_ids, ids_cap;
    char *norm; /* (norm_cap) SPM normalised text */
    size_t norm_cap;
    bpe_sym *sym; /* (sym_cap) */
    size_t sym_cap;
    bpe_cand *heap; /* (heap_cap) */
    size_t heap_n, heap_cap;
    uint32_t *word; /* (word_cap) ids of one word */
    size_t word_n, word_cap;
    cache_slot *cache; /* (CACHE_SLOTS) */
    uint32_t cache_n;
    uint8_t *arena; /* (CACHE_ARENA_BYTES) */
    uint32_t arena_n;
    char *dec; /* (dec_cap) decoded text */
    size_t dec_cap;
};

tok_encode_opts tok_encode_opts_default(void) {
    tok_encode_opts o = {0, 0, 0};
    return o;
}

int tok_ctx_create(const tokenizer *t, tok_ctx **out) {
    tok_ctx *c = calloc(1, sizeof *c);
    *out = c;
    if (!c)
        return TOK_ERR_NOMEM;
    c->t = t;
    c->cache = calloc(CACHE_SLOTS, sizeof *c->cache);
    c->arena = malloc(CACHE_ARENA_BYTES);
    c->ids = malloc(256 * sizeof *c->ids); /* never NULL: callers may memcpy 0 ids from it */
    c->ids_cap = c->ids ? 256 : 0;
    if (!c->cache || !c->arena || !c->ids) {
        tok_ctx_free(c);
        *out = NULL;
        return TOK_ERR_NOMEM;
    }
    return TOK_OK;
}

void tok_ctx_free(tok_ctx *c) {
    if (!c)
        return;
    free(c->ids);
    free(c->norm);
    free(c->sym);
    free(c->heap);
    free(c->word);
    free(c->cache);
    free(c->arena);
    free(c->dec);
    free(c);
}

static int grow(void **p, size_t *cap, size_t need, size_t size) {
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : 256;
    while (n < need)
        n *= 2;
    void *q = realloc(*p, n * size);
    if (!q)
        return -1;
    *p = q;
    *cap = n;
    return 0;
}

static inline int push_id(tok_ctx *c, uint32_t id) {
    if (c->n_ids == c->ids_cap && grow((void **)&c->ids, &c->ids_cap, c->n_ids + 1, 4) != 0)
        return TOK_ERR_NOMEM;
    c->ids[c->n_ids++] = id;
    return TOK_OK;
}

static int push_ids(tok_ctx *c, const uint32_t *ids, size_t n) {
    if (grow((void **)&c->ids, &c->ids_cap, c->n_ids + n, 4) != 0)
        return TOK_ERR_NOMEM;
    memcpy(c->ids + c->n_ids, ids, n * 4);
    c->n_ids += n;
    return TOK_OK;
}

/* ==== word cache =============================================================================*/

static const cache_slot *cache_get(const tok_ctx *c, const char *w, size_t n, uint64_t h) {
    for (uint32_t j = (uint32_t)h & (CACHE_SLOTS - 1);; j = (j + 1) & (CACHE_SLOTS - 1)) {
        const cache_slot *s = &c->cache[j];
        if (!s->hash)
            return NULL;
        if (s->hash == h && s->key_len == n && !memcmp(c->arena + s->key_off, w, n))
            return s;
    }
}

static void cache_put(tok_ctx *c, const char *w, size_t n, uint64_t h, const uint32_t *ids,
                      size_t n_ids) {
    size_t need = ((n + 3) & ~(size_t)3) + 4 * n_ids;
    if (need > CACHE_ARENA_BYTES / 64)
        return; /* long words are not worth keeping */
    if (c->cache_n >= CACHE_SLOTS / 2 || c->arena_n + need > CACHE_ARENA_BYTES) {
        memset(c->cache, 0, CACHE_SLOTS * sizeof *c->cache);
        c->cache_n = 0;
        c->arena_n = 0;
    }
    uint32_t j = (uint32_t)h & (CACHE_SLOTS - 1);
    while (c->cache[j].hash)
        j = (j + 1) & (CACHE_SLOTS - 1);
    cache_slot *s = &c->cache[j];
    s->hash = h;
    s->key_off = c->arena_n;
    s->key_len = (uint32_t)n;
    memcpy(c->arena + c->arena_n, w, n);
    c->arena_n += (uint32_t)((n + 3) & ~(size_t)3);
    s->ids_off = c->arena_n;
    s->n_ids = (uint32_t)n_ids;
    memcpy(c->arena + c->arena_n, ids, 4 * n_ids);
    c->arena_n += (uint32_t)(4 * n_ids);
    c->cache_n++;
}

/* ==== BPE ====================================================================================*/

static int heap_push(tok_ctx *c, bpe_cand x) {
    if (c->heap_n == c->heap_cap &&
        grow((void **)&c->heap, &c->heap_cap, c->heap_n + 1, sizeof *c->heap) != 0)
        return -1;
    size_t i = c->heap_n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (x >= c->heap[p])
            break;
        c->heap[i] = c->heap[p];
        i = p;
    }
    c->heap[i] = x;
    return 0;
}

static bpe_cand heap_pop(tok_ctx *c) {
    bpe_cand top = c->heap[0], last = c->heap[--c->heap_n];
    size_t i = 0, n = c->heap_n;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        bpe_cand best = last;
        if (l < n && c->heap[l] < best) {
            m = l;
            best = c->heap[l];
        }
        if (r < n && c->heap[r] < best)
            m = r;
        if (m == i)
            break;
        c->heap[i] = c->heap[m];
        i = m;
    }
    if (n > 0)
        c->heap[i] = last;
    return top;
}

static int try_pair(tok_ctx *c, int32_t left, int32_t right) {
    if (left < 0 || right < 0)
        return 0;
    const bpe_sym *a = &c->sym[left], *b = &c->sym[right];
    if (a->id == TOK_NONE || b->id == TOK_NONE)
        return 0;
    const tok_merge *m = tok_merges_get(c->t, a->id, b->id);
    if (!m)
        return 0;
    return heap_push(c, (uint64_t)m->rank << 32 | (uint32_t)left);
}

/* Merges c->sym[0..n) in place: lowest rank first, leftmost among equals. */
static int bpe_run(tok_ctx *c, size_t n) {
    c->heap_n = 0;
    for (size_t i = 0; i + 1 < n; i++)
        if (try_pair(c, (int32_t)i, (int32_t)i + 1) != 0)
            return TOK_ERR_NOMEM;
    while (c->heap_n > 0) {
        bpe_cand x = heap_pop(c);
        uint32_t rank = (uint32_t)(x >> 32), left = (uint32_t)x;
        bpe_sym *a = &c->sym[left];
        if (a->len == 0 || a->next < 0)
            continue; /* stale: merged away, or now last */
        bpe_sym *b = &c->sym[a->next];
        const tok_merge *m =
            a->id != TOK_NONE && b->id != TOK_NONE ? tok_merges_get(c->t, a->id, b->id) : NULL;
        if (!m || m->rank != rank)
            continue; /* stale: a side has changed since it was queued */
        a->id = m->id;
        a->len += b->len;
        a->next = b->next;
        if (b->next >= 0)
            c->sym[b->next].prev = (int32_t)left;
        b->len = 0;
        if (try_pair(c, a->prev, (int32_t)left) != 0 || try_pair(c, (int32_t)left, a->next))
            return TOK_ERR_NOMEM;
    }
    return TOK_OK;
}

/* Appends the ids of the merged symbols to c->word; unknowns by byte fallback or <unk>. */
static int bpe_collect(tok_ctx *c, const char *w) {
    const tokenizer *t = c->t;
    int prev_unk = 0;
    for (int32_t i = 0; i >= 0; i = c->sym[i].next) {
        const bpe_sym *s = &c->sym[i];
        if (grow((void **)&c->word, &c->word_cap, c->word_n + s->len + 1, 4) != 0)
            return TOK_ERR_NOMEM;
        if (s->id != TOK_NONE) {
            c->word[c->word_n++] = s->id;
            prev_unk = 0;
        } else if (t->byte_fallback) {
            for (uint32_t k = 0; k < s->len; k++)
                c->word[c->word_n++] = t->byte_id[(unsigned char)w[s->start + k]];
        } else if (t->unk_id >= 0) {
            if (!(prev_unk && t->fuse_unk))
                c->word[c->word_n++] = (uint32_t)t->unk_id;
            prev_unk = 1;
        }
    }
    return TOK_OK;
}

/* ==== words ==================================================================================*/

/* Encodes one word (a regex match, or an SPM segment) and appends its ids. */
static int encode_word(tok_ctx *c, const char *w, size_t n) {
    const tokenizer *t = c->t;
    if (n == 0)
        return TOK_OK;
    if (t->ignore_merges) {
        uint32_t id = tok_strmap_get(&t->vocab, w, n, tok_vocab_key, t);
        if (id != TOK_NONE)
            return push_id(c, id);
    }
    uint64_t h = XXH3_64bits(w, n) | 1;
    const cache_slot *hit = cache_get(c, w, n, h);
    if (hit)
        return push_ids(c, (const uint32_t *)(const void *)(c->arena + hit->ids_off), hit->n_ids);

    /* initial symbols: bytes (byte-level) or characters (SPM) */
    if (grow((void **)&c->sym, &c->sym_cap, n, sizeof *c->sym) != 0 || n > INT32_MAX)
        return TOK_ERR_NOMEM;
    size_t m = 0;
    for (size_t i = 0; i < n; m++) {
        bpe_sym *s = &c->sym[m];
        size_t len = 1;
        if (t->kind == TOK_KIND_BYTE_LEVEL) {
            s->id = t->byte_id[(unsigned char)w[i]];
        } else {
            uint32_t cp;
            len = tok_utf8_next((const unsigned char *)w + i, n - i, &cp);
            s->id = tok_strmap_get(&t->vocab, w + i, len, tok_vocab_key, t);
        }
        s->start = (uint32_t)i;
        s->len = (uint32_t)len;
        s->prev = (int32_t)m - 1;
        s->next = (int32_t)m + 1;
        i += len;
    }
    c->sym[m - 1].next = -1;
    int st = bpe_run(c, m);
    c->word_n = 0;
    if (st == TOK_OK)
        st = bpe_collect(c, w);
    if (st != TOK_OK)
        return st;
    cache_put(c, w, n, h, c->word, c->word_n);
    return push_ids(c, c->word, c->word_n);
}

/* ==== the split regexes ======================================================================*/

/* Class and length of the character at s[i]; invalid UTF-8 is one byte of class OTHER. */
static inline uint8_t cls_at(const tokenizer *t, const unsigned char *s, size_t n, size_t i,
                             size_t *len) {
    if (s[i] < 0x80) {
        *len = 1;
        return t->class_blocks[((uint32_t)t->class_index[0] << 8) | s[i]];
    }
    uint32_t cp;
    *len = tok_utf8_next(s + i, n - i, &cp);
    return cp == TOK_INVALID_CP ? TOK_CLASS_OTHER : tok_class(t, cp);
}

static inline int is_space_class(uint8_t k) {
    return k == TOK_CLASS_SPACE || k == TOK_CLASS_CRLF;
}

/* (?i:'s|'t|'re|'ve|'m|'ll|'d) (ci = 1) or the case-sensitive GPT-2 form: match length or 0.
 * Case-insensitive 's also matches U+017F (long s), which folds to s. */
static size_t contraction(const unsigned char *s, size_t n, size_t i, int ci) {
    if (s[i] != '\'' || i + 1 >= n)
        return 0;
    unsigned a = s[i + 1], b = i + 2 < n ? s[i + 2] : 0;
    if (ci) {
        if (a == 0xc5 && b == 0xbf) /* ſ */
            return 3;
        a = (a >= 'A' && a <= 'Z') ? a + 32 : a;
        b = (b >= 'A' && b <= 'Z') ? b + 32 : b;
    }
    if (a == 's' || a == 't' || a == 'm' || a == 'd')
        return 2;
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l'))
        return 3;
    return 0;
}

/* End of the whitespace run at i; *last = start of its last character, *last_crlf = end of
 * its last \r or \n (0 if none). */
static size_t space_run(const tokenizer *t, const unsigned char *s, size_t n, size_t i,
                        size_t *last, size_t *last_crlf, size_t *n_chars) {
    size_t j = i, len;
    *last_crlf = 0;
    *n_chars = 0;
    while (j < n) {
        uint8_t k = cls_at(t, s, n, j, &len);
        if (!is_space_class(k))
            break;
        *last = j;
        if (k == TOK_CLASS_CRLF)
            *last_crlf = j + 1;
        j += len;
        ++*n_chars;
    }
    return j;
}

/* Llama 3: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
 *          ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 * Returns the end of the match at i (leftmost-first alternation, as Oniguruma does). */
static size_t match_llama3(const tokenizer *t, const unsigned char *s, size_t n, size_t i) {
    size_t l0, len, j;
    uint8_t c0 = cls_at(t, s, n, i, &l0);
    size_t k = contraction(s, n, i, 1);
    if (k)
        return i + k;
    if (c0 == TOK_CLASS_LETTER || ((c0 == TOK_CLASS_OTHER || c0 == TOK_CLASS_SPACE) && i + l0 < n &&
                                   cls_at(t, s, n, i + l0, &len) == TOK_CLASS_LETTER)) {
        for (j = i + l0; j < n && cls_at(t, s, n, j, &len) == TOK_CLASS_LETTER; j += len)
            ;
        return j;
    }
    if (c0 == TOK_CLASS_NUMBER) {
        j = i + l0;
        for (int d = 1; d < 3 && j < n && cls_at(t, s, n, j, &len) == TOK_CLASS_NUMBER; d++)
            j += len;
        return j;
    }
    j = i;
    if (s[i] == ' ' && i + 1 < n && cls_at(t, s, n, i + 1, &len) == TOK_CLASS_OTHER)
        j = i + 1;
    if (cls_at(t, s, n, j, &len) == TOK_CLASS_OTHER) {
        for (j += len; j < n && cls_at(t, s, n, j, &len) == TOK_CLASS_OTHER; j += len)
            ;
        while (j < n && (s[j] == '\r' || s[j] == '\n'))
            j++;
        return j;
    }
    /* c0 is whitespace */
    size_t last = i, last_crlf, n_chars;
    j = space_run(t, s, n, i, &last, &last_crlf, &n_chars);
    if (last_crlf)
        return last_crlf; /* \s*[\r\n]+ */
    if (j == n || n_chars == 1)
        return j; /* \s+(?!\S) at the end, or \s+ of one character */
    return last;  /* \s+(?!\S): all but the last whitespace character */
}

/* GPT-2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
static size_t match_gpt2(const tokenizer *t, const unsigned char *s, size_t n, size_t i) {
    size_t len, j;
    size_t k = contraction(s, n, i, 0);
    if (k)
        return i + k;
    j = i;
    if (s[i] == ' ' && i + 1 < n) {
        uint8_t c1 = cls_at(t, s, n, i + 1, &len);
        if (c1 == TOK_CLASS_LETTER || c1 == TOK_CLASS_NUMBER || c1 == TOK_CLASS_OTHER)
            j = i + 1;
    }
    uint8_t c = cls_at(t, s, n, j, &len);
    if (c == TOK_CLASS_LETTER || c == TOK_CLASS_NUMBER || c == TOK_CLASS_OTHER) {
        for (j += len; j < n && cls_at(t, s, n, j, &len) == c; j += len)
            ;
        return j;
    }
    size_t last = i, last_crlf, n_chars;
    j = space_run(t, s, n, i, &last, &last_crlf, &n_chars);
    if (j == n || n_chars == 1)
        return j;
    return last;
}

static int encode_byte_level(tok_ctx *c, const char *text, size_t n) {
    const tokenizer *t = c->t;
    const unsigned char *s = (const unsigned char *)text;
    for (size_t i = 0; i < n;) {
        size_t j = t->split == TOK_SPLIT_LLAMA3 ? match_llama3(t, s, n, i) : match_gpt2(t, s, n, i);
        int st = encode_word(c, text + i, j - i);
        if (st != TOK_OK)
            return st;
        i = j;
    }
    return TOK_OK;
}

/* ==== SentencePiece normaliser ===============================================================*/

static const char SPACE_MARK[] = "\xe2\x96\x81"; /* "▁" */

/* Longest precompiled rule at s[0..n): darts-clone commonPrefixSearch. Returns the matched
 * length (0 = none) and the replacement. */
static size_t charsmap_match(const tokenizer *t, const unsigned char *s, size_t n,
                             const char **repl) {
    const uint32_t *a = t->trie;
    uint32_t units = t->trie_units, pos = 0, unit = a[0];
    size_t best = 0;
    pos ^= (unit >> 10) << ((unit & (1u << 9)) >> 6);
    for (size_t i = 0; i < n; i++) {
        pos ^= s[i];
        if (pos >= units)
            break;
        unit = a[pos];
        if ((unit & ((1u << 31) | 0xffu)) != s[i])
            break;
        pos ^= (unit >> 10) << ((unit & (1u << 9)) >> 6);
        if (pos >= units)
            break;
        if ((unit >> 8) & 1) {
            uint32_t v = a[pos] & ((1u << 31) - 1);
            if (v < t->norm_bytes) {
                best = i + 1;
                *repl = t->norm_blob + v;
            }
        }
    }
    return best;
}

/* One normalised piece of input at s[0..n): replacement text and bytes consumed. */
static size_t normalize_prefix(const tokenizer *t, const unsigned char *s, size_t n,
                               const char **out, size_t *out_n) {
    if (t->trie) {
        const char *r;
        size_t m = charsmap_match(t, s, n, &r);
        if (m) {
            *out = r;
            *out_n = strlen(r);
            return m;
        }
    }
    uint32_t cp;
    size_t m = tok_utf8_next(s, n, &cp);
    if (cp == TOK_INVALID_CP) {
        *out = "\xef\xbf\xbd";
        *out_n = 3;
        return 1;
    }
    *out = (const char *)s;
    *out_n = m;
    return m;
}

static int norm_put(tok_ctx *c, size_t *k, const char *p, size_t m, int escape) {
    if (grow((void **)&c->norm, &c->norm_cap, *k + 3 * m + 4, 1) != 0)
        return TOK_ERR_NOMEM;
    for (size_t i = 0; i < m; i++) {
        if (escape && p[i] == ' ') {
            memcpy(c->norm + *k, SPACE_MARK, 3);
            *k += 3;
        } else {
            c->norm[(*k)++] = p[i];
        }
    }
    return TOK_OK;
}

/* sentencepiece's Normalizer::Normalize, into c->norm; returns its length via *out_n. */
static int spm_normalize(tok_ctx *c, const char *text, size_t n, int dummy_prefix, size_t *out_n) {
    const tokenizer *t = c->t;
    const unsigned char *s = (const unsigned char *)text;
    size_t k = 0, i = 0;
    *out_n = 0;
    const char *p;
    size_t m;
    if (t->remove_extra_ws)
        while (i < n) {
            size_t used = normalize_prefix(t, s + i, n - i, &p, &m);
            if (m != 1 || p[0] != ' ')
                break;
            i += used;
        }
    if (i == n)
        return TOK_OK;
    if (grow((void **)&c->norm, &c->norm_cap, 3 * (n - i) + 8, 1) != 0)
        return TOK_ERR_NOMEM;
    if (dummy_prefix && norm_put(c, &k, " ", 1, t->escape_spaces) != TOK_OK)
        return TOK_ERR_NOMEM;
    if (!t->trie && !t->remove_extra_ws) {
        /* identity (Llama 2): copy, spaces escaped, invalid bytes as U+FFFD */
        while (i < n) {
            unsigned char b = s[i];
            if (b == ' ' && t->escape_spaces) {
                memcpy(c->norm + k, SPACE_MARK, 3);
                k += 3;
                i++;
            } else if (b < 0x80) {
                c->norm[k++] = (char)b;
                i++;
            } else {
                uint32_t cp;
                size_t len = tok_utf8_next(s + i, n - i, &cp);
                if (cp == TOK_INVALID_CP) {
                    memcpy(c->norm + k, "\xef\xbf\xbd", 3);
                    k += 3;
                } else {
                    memcpy(c->norm + k, s + i, len);
                    k += len;
                }
                i += len;
            }
        }
        *out_n = k;
        return TOK_OK;
    }
    int prev_space = t->remove_extra_ws;
    while (i < n) {
        i += normalize_prefix(t, s + i, n - i, &p, &m);
        while (prev_space && m > 0 && p[0] == ' ') {
            p++;
            m--;
        }
        if (m > 0) {
            if (norm_put(c, &k, p, m, t->escape_spaces) != TOK_OK)
                return TOK_ERR_NOMEM;
            prev_space = p[m - 1] == ' ';
        }
        if (!t->remove_extra_ws)
            prev_space = 0;
    }
    if (t->remove_extra_ws) {
        const char *sp = t->escape_spaces ? SPACE_MARK : " ";
        size_t sl = t->escape_spaces ? 3 : 1;
        while (k >= sl && !memcmp(c->norm + k - sl, sp, sl))
            k -= sl;
    }
    *out_n = k;
    return TOK_OK;
}

static int encode_spm(tok_ctx *c, const char *text, size_t n, int dummy_prefix) {
    size_t m;
    int st = spm_normalize(c, text, n, dummy_prefix, &m);
    if (st != TOK_OK || m == 0)
        return st;
    const char *s = c->norm;
    if (!c->t->split_at_space)
        return encode_word(c, s, m);
    /* words: cut before each "▁" that follows a character other than "▁" */
    size_t start = 0;
    for (size_t i = 3; i + 3 <= m; i++) {
        if (s[i] == SPACE_MARK[0] && s[i + 1] == SPACE_MARK[1] && s[i + 2] == SPACE_MARK[2] &&
            memcmp(s + i - 3, SPACE_MARK, 3) != 0) {
            if ((st = encode_word(c, s + start, i - start)) != TOK_OK)
                return st;
            start = i;
            i += 2;
        }
    }
    return encode_word(c, s + start, m - start);
}

/* ==== encode =================================================================================*/

static int encode_text(tok_ctx *c, const char *text, size_t n, int first) {
    const tokenizer *t = c->t;
    if (t->kind == TOK_KIND_BYTE_LEVEL)
        return encode_byte_level(c, text, n);
    return encode_spm(c, text, n, t->add_dummy_prefix && (first || t->prefix_every_segment));
}

/* Leftmost-longest special token at text[i..n); returns its length, 0 if none. */
static size_t special_at(const tokenizer *t, const char *text, size_t n, size_t i, uint32_t *id) {
    if (!t->special_first[(unsigned char)text[i]])
        return 0;
    size_t best = 0;
    for (size_t len = 1; len <= t->special_max && i + len <= n; len++) {
        uint32_t x = tok_strmap_get(&t->special, text + i, len, tok_vocab_key, t);
        if (x != TOK_NONE) {
            best = len;
            *id = x;
        }
    }
    return best;
}

int tokenizer_encode(tok_ctx *c, const char *text, size_t n, const tok_encode_opts *opts,
                     const uint32_t **ids, size_t *n_ids) {
    const tokenizer *t = c->t;
    tok_encode_opts o = opts ? *opts : tok_encode_opts_default();
    int st = TOK_OK;
    c->n_ids = 0;
    if (o.add_bos && t->bos_id >= 0)
        st = push_id(c, (uint32_t)t->bos_id);
    if (st == TOK_OK && !o.parse_special) {
        st = encode_text(c, text, n, 1);
    } else if (st == TOK_OK) {
        size_t start = 0;
        int first = 1;
        for (size_t i = 0; i < n && st == TOK_OK;) {
            uint32_t id;
            size_t len = special_at(t, text, n, i, &id);
            if (!len) {
                i++;
                continue;
            }
            if (i > start)
                st = encode_text(c, text + start, i - start, first);
            first = 0;
            if (st == TOK_OK)
                st = push_id(c, id);
            i += len;
            start = i;
        }
        if (st == TOK_OK && start < n)
            st = encode_text(c, text + start, n - start, first);
    }
    if (st == TOK_OK && o.add_eos && t->eos_id >= 0)
        st = push_id(c, (uint32_t)t->eos_id);
    *ids = c->ids;
    *n_ids = c->n_ids;
    return st;
}

/* ==== decode =================================================================================*/

int tokenizer_decode(tok_ctx *c, const uint32_t *ids, size_t n_ids, const char **out,
                     size_t *n_out) {
    const tokenizer *t = c->t;
    size_t k = 0;
    int strip = t->kind == TOK_KIND_SPM && t->add_dummy_prefix;
    for (size_t i = 0; i < n_ids; i++) {
        if (ids[i] >= t->n_tokens)
            return TOK_ERR_ARG;
        size_t m;
        const char *p = tok_vocab_key(t, ids[i], &m);
        if (grow((void **)&c->dec, &c->dec_cap, k + m + 2, 1) != 0)
            return TOK_ERR_NOMEM;
        uint8_t type = t->tok_type[ids[i]];
        if (t->kind == TOK_KIND_BYTE_LEVEL || type == TOK_TYPE_CONTROL || type == TOK_TYPE_USER ||
            type == TOK_TYPE_UNKNOWN) {
            memcpy(c->dec + k, p, m);
            k += m;
            continue;
        }
        if (type == TOK_TYPE_BYTE) {
            c->dec[k++] = (char)tok_byte_piece(p, m);
            strip = 0;
            continue;
        }
        for (size_t j = 0; j < m; j++) {
            if (j + 3 <= m && !memcmp(p + j, SPACE_MARK, 3)) {
                if (!strip)
                    c->dec[k++] = ' ';
                j += 2;
            } else {
                c->dec[k++] = p[j];
            }
            strip = 0;
        }
    }
    if (grow((void **)&c->dec, &c->dec_cap, k + 1, 1) != 0)
        return TOK_ERR_NOMEM;
    c->dec[k] = '\0';
    *out = c->dec;
    *n_out = k;
    return TOK_OK;
}
