/* tok_internal.h - the tokenizer's private structures, shared by tok_*.c. */
#ifndef LONGCTX_TOK_INTERNAL_H
#define LONGCTX_TOK_INTERNAL_H

#include "tokenizer.h" /* tok_utf8_next: the one definition of valid UTF-8 */

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define TOK_ERRMSG_BYTES 512
#define TOK_NONE         UINT32_MAX /* no token: an unknown symbol */

typedef enum {
    TOK_TYPE_NORMAL = 1,
    TOK_TYPE_UNKNOWN = 2,
    TOK_TYPE_CONTROL = 3, /* <s>, </s>, <|eot_id|>: never produced from text by default */
    TOK_TYPE_USER = 4,
    TOK_TYPE_UNUSED = 5,
    TOK_TYPE_BYTE = 6, /* <0xNN> */
} tok_type;

/* The split regex of a byte-level tokenizer. */
typedef enum {
    TOK_SPLIT_LLAMA3 = 1, /* (?i:'s|...)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|... */
    TOK_SPLIT_GPT2 = 2,   /* 's|'t|...| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
} tok_split;

/* Character classes of the split regexes, one byte per code point (two-level table). */
enum {
    TOK_CLASS_OTHER = 0,
    TOK_CLASS_LETTER = 1, /* \p{L} */
    TOK_CLASS_NUMBER = 2, /* \p{N} */
    TOK_CLASS_SPACE = 3,  /* \s other than \r \n */
    TOK_CLASS_CRLF = 4,   /* \r or \n (also \s) */
};

/* A hash table from byte strings to 32-bit values; keys live in an external blob. */
typedef struct {
    uint64_t *slots; /* (cap) 0 = empty; else hash32 << 32 | (index + 1) */
    uint64_t cap;    /* power of two */
    uint64_t n;
} tok_strmap;

/* Pair (left id, right id) -> merge. Open addressing on the 64-bit key. */
typedef struct {
    uint64_t key;  /* left << 32 | right; UINT64_MAX = empty */
    uint32_t rank; /* lower merges first; SPM: equal scores share a rank */
    uint32_t id;   /* the merged token */
} tok_merge;

struct tokenizer {
    tok_kind kind;
    tok_split split;          /* byte-level only */
    int ignore_merges;        /* a whole word that is a token is that token */
    int byte_fallback;        /* unknown characters as <0xNN> tokens */
    int fuse_unk;             /* consecutive unknowns become one <unk> */
    int add_dummy_prefix;     /* SPM: "▁" before the text */
    int escape_spaces;        /* SPM: " " -> "▁" */
    int remove_extra_ws;      /* SPM: collapse and trim spaces */
    int split_at_space;       /* SPM words can be cut before a "▁" that follows another byte */
    int prefix_every_segment; /* parse_special: dummy prefix on every text segment (HF
                                 Prepend normaliser), not only the first */

    uint32_t n_tokens; /* vocab size including specials */
    uint32_t *tok_off; /* (n_tokens + 1) offsets into tok_blob */
    char *tok_blob;    /* token bytes, back to back */
    uint8_t *tok_type; /* (n_tokens) tok_type */
    int64_t bos_id, eos_id, unk_id;
    uint32_t byte_id[256]; /* byte-level: token of each byte; SPM: <0xNN>; TOK_NONE if absent */

    tok_strmap vocab;           /* token bytes -> id (normal and byte-level tokens) */
    tok_strmap special;         /* text of added/special tokens -> id (parse_special) */
    uint8_t special_first[256]; /* 1 if some special starts with this byte */
    size_t special_max;         /* longest special token, bytes */
    tok_merge *merges;          /* (merges_cap) */
    uint64_t merges_cap;

    /* SentencePiece precompiled normaliser (NFKC etc.); NULL for identity */
    uint8_t *charsmap; /* (charsmap_bytes) a copy of the model's precompiled_charsmap */
    uint64_t charsmap_bytes;
    const uint32_t *trie; /* darts-clone double array (charsmap + 4) */
    uint32_t trie_units;
    const char *norm_blob; /* normalised strings, NUL-terminated */
    uint32_t norm_bytes;

    uint8_t *class_blocks;               /* (n_blocks, 256) classes of code points */
    uint16_t class_index[0x110000 >> 8]; /* block of each 256-code-point page */

    uint64_t checksum;
    char errmsg[TOK_ERRMSG_BYTES];
};

/* ---- errors ------------------------------------------------------------------------------ */
void tok_set_err(tokenizer *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define TOK_FAIL(t, st, ...)                                                                       \
    do {                                                                                           \
        tok_set_err((t), __VA_ARGS__);                                                             \
        return (st);                                                                               \
    } while (0)

/* ---- vocabulary (tok_vocab.c) ------------------------------------------------------------- */
int tok_strmap_init(tok_strmap *m, uint64_t n_expected);
void tok_strmap_free(tok_strmap *m);
/* Inserts key -> index (keys compared through get_key). Returns 0, 1 if present, -1 no mem. */
typedef const char *(*tok_key_fn)(const void *ctx, uint32_t index, size_t *n);
int tok_strmap_put(tok_strmap *m, const char *key, size_t n, uint32_t index, tok_key_fn get,
                   const void *ctx);
/* Looks up a key; returns the index or TOK_NONE. */
uint32_t tok_strmap_get(const tok_strmap *m, const char *key, size_t n, tok_key_fn get,
                        const void *ctx);
uint32_t tok_hash32(const char *key, size_t n);

/* Sets up the vocabulary arrays for n_tokens tokens with blob_bytes of token text. */
int tok_vocab_alloc(tokenizer *t, uint32_t n_tokens, uint64_t blob_bytes);
const char *tok_vocab_key(const void *t, uint32_t id, size_t *n); /* tok_key_fn over tokens */
/* Builds t->vocab from tokens of the given types (bitmask of 1 << tok_type). */
int tok_vocab_index(tokenizer *t, unsigned type_mask);
int tok_merges_alloc(tokenizer *t, uint64_t n_merges);
/* Adds a merge; a pair seen before keeps its first (lowest) rank. */
int tok_merges_put(tokenizer *t, uint32_t left, uint32_t right, uint32_t rank, uint32_t id);
const tok_merge *tok_merges_get(const tokenizer *t, uint32_t left, uint32_t right);
int tok_classes_build(tokenizer *t);
int tok_special_index(tokenizer *t); /* special map from CONTROL/USER tokens */

static inline uint8_t tok_class(const tokenizer *t, uint32_t cp) {
    return t->class_blocks[((uint32_t)t->class_index[cp >> 8] << 8) | (cp & 0xff)];
}

/* ---- loaders (tok_load_hf.c, tok_load_spm.c; called only by tokenizer_load in tok_load.c) */
int tok_load_hf(tokenizer *t, const char *path, const char *text, size_t n);
int tok_load_spm(tokenizer *t, const char *path, const uint8_t *data, size_t n);

/* "<0xNN>" with two upper-case hex digits: a byte-fallback piece. Returns the byte or -1. */
static inline int tok_byte_piece(const char *s, size_t n) {
    static const char hex[] = "0123456789ABCDEF";
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>')
        return -1;
    const char *hi = memchr(hex, s[3], 16), *lo = memchr(hex, s[4], 16);
    if (!hi || !lo || !s[3] || !s[4])
        return -1;
    return (int)((hi - hex) * 16 + (lo - hex));
}

#endif
