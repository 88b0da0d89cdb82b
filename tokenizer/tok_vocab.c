/* tok_vocab.c - vocabulary and merge tables, character classes, free and accessors. */
#include "tok_internal.h"

#include <stdlib.h>
#include <utf8proc.h>
#include <xxhash.h>

/* ---- errors -------------------------------------------------------------------------------- */

const char *tok_strerror(int status) {
    switch (status) {
    case TOK_OK:
        return "ok";
    case TOK_ERR_IO:
        return "I/O error";
    case TOK_ERR_NOMEM:
        return "out of memory";
    case TOK_ERR_FORMAT:
        return "malformed tokenizer file";
    case TOK_ERR_UNSUPP:
        return "unsupported tokenizer feature";
    case TOK_ERR_ARG:
        return "invalid argument";
    default:
        return "unknown status";
    }
}

void tok_set_err(tokenizer *t, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->errmsg, sizeof t->errmsg, fmt, ap);
    va_end(ap);
}

/* ---- string map ---------------------------------------------------------------------------- */

uint32_t tok_hash32(const char *key, size_t n) {
    uint32_t h = (uint32_t)XXH3_64bits(key, n);
    return h ? h : 1;
}

int tok_strmap_init(tok_strmap *m, uint64_t n_expected) {
    uint64_t cap = 16;
    while (cap < 2 * n_expected + 16)
        cap *= 2;
    m->slots = calloc(cap, sizeof *m->slots);
    m->cap = m->slots ? cap : 0;
    m->n = 0;
    return m->slots ? 0 : -1;
}

void tok_strmap_free(tok_strmap *m) {
    free(m->slots);
    m->slots = NULL;
    m->cap = m->n = 0;
}

static int strmap_grow(tok_strmap *m) {
    tok_strmap bigger;
    bigger.cap = m->cap * 2;
    bigger.slots = calloc(bigger.cap, sizeof *bigger.slots);
    if (!bigger.slots)
        return -1;
    for (uint64_t i = 0; i < m->cap; i++) {
        uint64_t s = m->slots[i];
        if (!s)
            continue;
        uint64_t j = (s >> 32) & (bigger.cap - 1);
        while (bigger.slots[j])
            j = (j + 1) & (bigger.cap - 1);
        bigger.slots[j] = s;
    }
    free(m->slots);
    m->slots = bigger.slots;
    m->cap = bigger.cap;
    return 0;
}

int tok_strmap_put(tok_strmap *m, const char *key, size_t n, uint32_t index, tok_key_fn get,
                   const void *ctx) {
    if (2 * (m->n + 1) > m->cap && strmap_grow(m) != 0)
        return -1;
    uint64_t h = tok_hash32(key, n);
    uint64_t j = h & (m->cap - 1);
    for (;; j = (j + 1) & (m->cap - 1)) {
        uint64_t s = m->slots[j];
        if (!s)
            break;
        if ((s >> 32) == h) {
            size_t kn;
            const char *k = get(ctx, (uint32_t)(s & 0xffffffffu) - 1, &kn);
            if (kn == n && memcmp(k, key, n) == 0)
                return 1;
        }
    }
    m->slots[j] = (h << 32) | ((uint64_t)index + 1);
    m->n++;
    return 0;
}

uint32_t tok_strmap_get(const tok_strmap *m, const char *key, size_t n, tok_key_fn get,
                        const void *ctx) {
    uint64_t h = tok_hash32(key, n);
    for (uint64_t j = h & (m->cap - 1);; j = (j + 1) & (m->cap - 1)) {
        uint64_t s = m->slots[j];
        if (!s)
            return TOK_NONE;
        if ((s >> 32) == h) {
            size_t kn;
            uint32_t idx = (uint32_t)(s & 0xffffffffu) - 1;
            const char *k = get(ctx, idx, &kn);
            if (kn == n && memcmp(k, key, n) == 0)
                return idx;
        }
    }
}

/* ---- vocabulary ---------------------------------------------------------------------------- */

int tok_vocab_alloc(tokenizer *t, uint32_t n_tokens, uint64_t blob_bytes) {
    t->n_tokens = n_tokens;
    t->tok_off = calloc((size_t)n_tokens + 1, sizeof *t->tok_off);
    t->tok_blob = malloc(blob_bytes ? blob_bytes : 1);
    t->tok_type = calloc(n_tokens ? n_tokens : 1, 1);
    if (!t->tok_off || !t->tok_blob || !t->tok_type)
        TOK_FAIL(t, TOK_ERR_NOMEM, "out of memory for %u tokens", n_tokens);
    return TOK_OK;
}

const char *tok_vocab_key(const void *ctx, uint32_t id, size_t *n) {
    const tokenizer *t = ctx;
    *n = t->tok_off[id + 1] - t->tok_off[id];
    return t->tok_blob + t->tok_off[id];
}

int tok_vocab_index(tokenizer *t, unsigned type_mask) {
    if (tok_strmap_init(&t->vocab, t->n_tokens) != 0)
        TOK_FAIL(t, TOK_ERR_NOMEM, "out of memory");
    for (uint32_t id = 0; id < t->n_tokens; id++) {
        if (!(type_mask & (1u << t->tok_type[id])))
            continue;
        size_t n;
        const char *k = tok_vocab_key(t, id, &n);
        int r = tok_strmap_put(&t->vocab, k, n, id, tok_vocab_key, t);
        if (r < 0)
            TOK_FAIL(t, TOK_ERR_NOMEM, "out of memory");
        /* a duplicate keeps the first (lowest) id, as the reference implementations do */
    }
    return TOK_OK;
}

int tok_special_index(tokenizer *t) {
    if (tok_strmap_init(&t->special, 64) != 0)
        TOK_FAIL(t, TOK_ERR_NOMEM, "out of memory");
    memset(t->special_first, 0, sizeof t->special_first);
    for (uint32_t id = 0; id < t->n_tokens; id++) {
        if (t->tok_type[id] != TOK_TYPE_CONTROL && t->tok_type[id] != TOK_TYPE_USER &&
            t->tok_type[id] != TOK_TYPE_UNKNOWN)
            continue;
        size_t n;
        const char *k = tok_vocab_key(t, id, &n);
        if (n == 0)
            continue;
        if (tok_strmap_put(&t->special, k, n, id, tok_vocab_key, t) < 0)
            TOK_FAIL(t, TOK_ERR_NOMEM, "out of memory");
        t->special_first[(unsigned char)k[0]] = 1;
        if (n > t->special_max)
            t->special_max = n;
    }
    return TOK_OK;
}

/* ---- merges -------------------------------------------------------------------------------- */

static uint64_t merge_slot(uint64_t key, uint64_t cap) {
    key ^= key >> 33;
    key *= 0xff51afd7ed558ccdull;
    key ^= key >> 33;
    return key & (cap - 1);
}

int tok_merges_alloc(tokenizer *t, uint64_t n_merges) {
    uint64_t cap = 16;
    while (cap < 2 * n_merges + 16)
        cap *= 2;
    t->merges = malloc(cap * sizeof *t->merges);
    if (!t->merges)
        TOK_FAIL(t, TOK_ERR_NOMEM, "out of memory for %llu merges", (unsigned long long)n_merges);
    for (uint64_t i = 0; i < cap; i++)
        t->merges[i].key = UINT64_MAX;
    t->merges_cap = cap;
    return TOK_OK;
}

int tok_merges_put(tokenizer *t, uint32_t left, uint32_t right, uint32_t rank, uint32_t id) {
    uint64_t key = (uint64_t)left << 32 | right;
    for (uint64_t j = merge_slot(key, t->merges_cap);; j = (j + 1) & (t->merges_cap - 1)) {
        if (t->merges[j].key == key)
            return 1;
        if (t->merges[j].key == UINT64_MAX) {
            t->merges[j].key = key;
            t->merges[j].rank = rank;
            t->merges[j].id = id;
            return 0;
        }
    }
}

const tok_merge *tok_merges_get(const tokenizer *t, uint32_t left, uint32_t right) {
    uint64_t key = (uint64_t)left << 32 | right;
    for (uint64_t j = merge_slot(key, t->merges_cap);; j = (j + 1) & (t->merges_cap - 1)) {
        if (t->merges[j].key == key)
            return &t->merges[j];
        if (t->merges[j].key == UINT64_MAX)
            return NULL;
    }
}

/* ---- character classes --------------------------------------------------------------------- */

/* \s of the split regexes: Unicode White_Space (the same in Rust regex and Oniguruma). */
static int is_white_space(uint32_t cp) {
    return (cp >= 0x09 && cp <= 0x0d) || cp == 0x20 || cp == 0x85 || cp == 0xa0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 || cp == 0x2029 || cp == 0x202f ||
           cp == 0x205f || cp == 0x3000;
}

static uint8_t class_of(uint32_t cp) {
    if (cp == '\r' || cp == '\n')
        return TOK_CLASS_CRLF;
    if (is_white_space(cp))
        return TOK_CLASS_SPACE;
    switch (utf8proc_category((utf8proc_int32_t)cp)) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
        return TOK_CLASS_LETTER;
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
        return TOK_CLASS_NUMBER;
    default:
        return TOK_CLASS_OTHER;
    }
}

/* A two-level table built from utf8proc's Unicode data at load (about 10 ms): identical
 * 256-code-point pages are stored once. */
int tok_classes_build(tokenizer *t) {
    enum { N_PAGES = 0x110000 >> 8 };
    uint8_t *pages = malloc((size_t)N_PAGES * 256);
    if (!pages)
        TOK_FAIL(t, TOK_ERR_NOMEM, "out of memory");
    uint64_t page_hash[N_PAGES];
    uint32_t n_unique = 0;
    uint8_t page[256];
    for (uint32_t p = 0; p < N_PAGES; p++) {
        for (uint32_t k = 0; k < 256; k++)
            page[k] = class_of((p << 8) | k);
        uint64_t h = XXH3_64bits(page, 256);
        uint32_t u;
        for (u = 0; u < n_unique; u++)
            if (page_hash[u] == h && memcmp(pages + (size_t)u * 256, page, 256) == 0)
                break;
        page_hash[u] = h;
        if (u == n_unique)
            memcpy(pages + (size_t)n_unique++ * 256, page, 256);
        t->class_index[p] = (uint16_t)u;
    }
    t->class_blocks = realloc(pages, (size_t)n_unique * 256);
    if (!t->class_blocks)
        t->class_blocks = pages;
    return TOK_OK;
}

/* ---- free and accessors ---------------------------------------------------------------- */

void tokenizer_free(tokenizer *t) {
    if (!t)
        return;
    free(t->tok_off);
    free(t->tok_blob);
    free(t->tok_type);
    tok_strmap_free(&t->vocab);
    tok_strmap_free(&t->special);
    free(t->merges);
    free(t->charsmap);
    free(t->class_blocks);
    free(t);
}

const char *tokenizer_errmsg(const tokenizer *t) {
    return t ? t->errmsg : "out of memory";
}

tok_kind tokenizer_kind(const tokenizer *t) {
    return t->kind;
}

uint32_t tokenizer_vocab_size(const tokenizer *t) {
    return t->n_tokens;
}

int64_t tokenizer_bos_id(const tokenizer *t) {
    return t->bos_id;
}

int64_t tokenizer_eos_id(const tokenizer *t) {
    return t->eos_id;
}

uint64_t tokenizer_checksum(const tokenizer *t) {
    return t->checksum;
}

const char *tokenizer_token(const tokenizer *t, uint32_t id, size_t *n_bytes) {
    if (id >= t->n_tokens)
        return NULL;
    return tok_vocab_key(t, id, n_bytes);
}
