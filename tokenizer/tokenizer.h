/*
 * tokenizer.h - Llama 2 (SentencePiece BPE) and Llama 3 (byte-level BPE) tokenizers, bit-exact
 * with sentencepiece and HF tokenizers. Its own library: no MPI, used by prep and infer.
 *
 * Loads HF tokenizer.json (BPE model: byte-level with the Llama 3 or GPT-2 split regex, or
 * SentencePiece-style with Metaspace/Prepend+Replace and byte fallback) and SentencePiece
 * .model files (BPE type; identity or precompiled (NFKC) normalisation). Anything else in the
 * file that changes the output is refused with a message, never approximated.
 *
 * Invalid UTF-8 in the input (documented policy, tested):
 *   - byte-level tokenizers: every byte of the input is encoded as bytes; an invalid byte is
 *     a character of its own in the split regex, of no class (not a letter, number or space);
 *   - SentencePiece-style: each invalid byte becomes U+FFFD before encoding, as the
 *     sentencepiece normaliser does; decoding gives U+FFFD back.
 *
 * Also here, as every module that reads text links the tokenizer: the one definition of valid
 * UTF-8 (tok_utf8_next) and the one extractor of text fields from JSON lines (tok_json_*).
 *
 * Thread safety: a tokenizer is read-only after load and may be shared; each thread encodes
 * with its own tok_ctx (scratch buffers and the word cache).
 */
#ifndef LONGCTX_TOKENIZER_H
#define LONGCTX_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    TOK_OK = 0,
    TOK_ERR_IO = -1,
    TOK_ERR_NOMEM = -2,
    TOK_ERR_FORMAT = -3, /* the file is malformed */
    TOK_ERR_UNSUPP = -4, /* well-formed, but asks for something longctx does not do */
    TOK_ERR_ARG = -5,
} tok_status;

const char *tok_strerror(int status); /* static string, never NULL */

typedef struct tokenizer tokenizer;
typedef struct tok_ctx tok_ctx;

typedef enum {
    TOK_KIND_BYTE_LEVEL = 1, /* Llama 3, GPT-2 */
    TOK_KIND_SPM = 2,        /* Llama 2, Mistral: SentencePiece BPE */
} tok_kind;

/*! tokenizer_load() :
 *  Loads a tokenizer.json or a SentencePiece .model (recognised by content).
 *  @return TOK_OK, TOK_ERR_IO, TOK_ERR_NOMEM, TOK_ERR_FORMAT, TOK_ERR_UNSUPP. On failure *out
 *  holds only the message (tokenizer_errmsg) or is NULL; free it either way. */
int tokenizer_load(const char *path, tokenizer **out);
void tokenizer_free(tokenizer *t);                /* NULL ok */
const char *tokenizer_errmsg(const tokenizer *t); /* "" if none; valid until _free */

tok_kind tokenizer_kind(const tokenizer *t);
uint32_t tokenizer_vocab_size(const tokenizer *t); /* largest id + 1, specials included */
int64_t tokenizer_bos_id(const tokenizer *t);      /* -1 if the tokenizer has none */
int64_t tokenizer_eos_id(const tokenizer *t);
uint64_t tokenizer_checksum(const tokenizer *t); /* xxh3-64 of the file's bytes */
/* The bytes of token id (decoded: raw bytes, "▁" as in the piece for SPM); NULL if out of
 * range. Borrowed from t. */
const char *tokenizer_token(const tokenizer *t, uint32_t id, size_t *n_bytes);

typedef struct {
    int parse_special; /* 1: special/added tokens written in the text become their ids */
    int add_bos;
    int add_eos;
} tok_encode_opts;

tok_encode_opts tok_encode_opts_default(void); /* all 0: text is only text */

/*! tok_ctx_create() : per-thread scratch and word cache for t (which must outlive it). */
int tok_ctx_create(const tokenizer *t, tok_ctx **out);
void tok_ctx_free(tok_ctx *c); /* NULL ok */

/*! tokenizer_encode() :
 *  Encodes n bytes of text. *ids (n_ids entries) is borrowed from c: valid until the next call
 *  on c. Linear in n for any input (no quadratic case).
 *  @return TOK_OK or TOK_ERR_NOMEM. */
int tokenizer_encode(tok_ctx *c, const char *text, size_t n, const tok_encode_opts *opts,
                     const uint32_t **ids, size_t *n_ids);

/*! tokenizer_decode() :
 *  Decodes ids to bytes: byte-level tokens to their bytes, SPM pieces with "▁" as space and
 *  <0xNN> as byte NN, the leading space of the dummy prefix removed, specials as their text.
 *  *out (n_out bytes, NUL-terminated) is borrowed from c. @return TOK_OK, TOK_ERR_ARG (id out
 *  of range), TOK_ERR_NOMEM. */
int tokenizer_decode(tok_ctx *c, const uint32_t *ids, size_t n_ids, const char **out,
                     size_t *n_out);

/* ---- encoding batches on threads (tok_pool.c) --------------------------------------------- */
typedef struct tok_pool tok_pool;

typedef struct {
    const char *text; /* (n_bytes) borrowed for the tok_pool_encode call */
    size_t n_bytes;
} tok_text;

/*! tok_pool_create() :
 *  A pool of n_threads encoders of t (which must outlive it), each with its own tok_ctx:
 *  n_threads - 1 threads started here, and the caller's thread inside tok_pool_encode.
 *  @return TOK_OK, TOK_ERR_ARG (n_threads < 1), TOK_ERR_NOMEM (also: no thread could be
 *  started); on failure *out is NULL. */
int tok_pool_create(const tokenizer *t, int n_threads, tok_pool **out);

/*! tok_pool_encode() :
 *  Encodes docs[0, n_docs) with opts (NULL: defaults), cut into contiguous ranges of about
 *  equal bytes, one per thread; returns when all are done. Not reentrant: one caller at a time.
 *  The ids of each document are the same as tokenizer_encode's, for any n_threads.
 *  @return TOK_OK, TOK_ERR_NOMEM (no ids are then available), TOK_ERR_ARG. */
int tok_pool_encode(tok_pool *p, const tok_text *docs, size_t n_docs, const tok_encode_opts *opts);

/*! tok_pool_ids() : the ids of document doc of the last batch (*n_ids of them; may be NULL if
 *  *n_ids is 0). Borrowed from p: valid until the next tok_pool_encode or tok_pool_free. */
const uint32_t *tok_pool_ids(const tok_pool *p, size_t doc, size_t *n_ids);

void tok_pool_free(tok_pool *p); /* NULL ok; stops and joins the threads */

/* ---- JSON lines (tok_json.c) ------------------------------------------------------------ */
/* The one extractor of text fields from JSON lines, for prep, tokenize and infer. A line is
 * parsed as strict RFC 8259 JSON (json-c JSON_TOKENER_STRICT, and checked here: no raw control
 * characters in strings, no NaN/Infinity, no leading zeros, no raw NUL byte) and must be an
 * object with a string at the text path (and at the domain path, if one is set). Paths are
 * dot-separated keys ("text", "meta.source"). A fast single-pass parser decides the lines it is
 * sure of; the others go through json-c, so results and messages are json-c's. */

#define TOK_JSON_MAX_KEYS     16  /* keys of a dot path */
#define TOK_JSON_ERRMSG_BYTES 256 /* tok_json_errmsg, NUL included */
#define TOK_JSON_JSONC_ONLY   1u  /* flag: every line through json-c (the tests' reference) */

typedef enum {
    TOK_JSON_OK = 0,
    TOK_JSON_ERR_NOMEM = -1,
    TOK_JSON_ERR_ARG = -2,        /* create: a path that is not 1..TOK_JSON_MAX_KEYS keys */
    TOK_JSON_ERR_SYNTAX = -3,     /* not JSON (detail: what and the column) */
    TOK_JSON_ERR_NOT_OBJECT = -4, /* JSON, but not an object (detail: its type) */
    TOK_JSON_ERR_NOT_STRICT = -5, /* json-c accepts it, RFC 8259 does not (detail: column) */
    TOK_JSON_ERR_NO_TEXT = -6,    /* no string at the text path (detail: what is there) */
    TOK_JSON_ERR_NO_DOMAIN = -7,  /* no string at the domain path (detail: what is there) */
} tok_json_status;

const char *tok_json_strerror(int status); /* static string, never NULL */

typedef struct tok_json tok_json;

/* The strings of one line, unescaped (they may hold NUL bytes, written \u0000; text[n_text] ==
 * '\0'). Borrowed from the handle: valid until the next tok_json_extract or tok_json_free. */
typedef struct {
    const char *text;
    size_t n_text;
    const char *domain; /* NULL if no domain path is set */
    size_t n_domain;
} tok_json_fields;

/*! tok_json_create() :
 *  An extractor of the string at text_path (and at domain_path; NULL or "" for none). flags: 0
 *  or TOK_JSON_JSONC_ONLY. Not thread-safe: one handle per thread.
 *  @return TOK_JSON_OK, TOK_JSON_ERR_ARG (a path of no key, an empty key or more than
 *  TOK_JSON_MAX_KEYS keys), TOK_JSON_ERR_NOMEM; on failure *out is NULL. */
int tok_json_create(const char *text_path, const char *domain_path, unsigned flags, tok_json **out);

/*! tok_json_extract() :
 *  The fields of line[0, n) (no '\n'; a trailing '\r' is whitespace) into *out.
 *  @return TOK_JSON_OK, or a status above with its detail in tok_json_errmsg (out zeroed):
 *  TOK_JSON_ERR_SYNTAX, _NOT_OBJECT, _NOT_STRICT, _NO_TEXT, _NO_DOMAIN, _NOMEM, or _ARG for a
 *  line longer than INT_MAX bytes (json-c's limit). */
int tok_json_extract(tok_json *j, const char *line, size_t n, tok_json_fields *out);

/*! tok_json_errmsg() : the detail of the last failed extract ("expected ':' at column 14"),
 *  "" after a success; valid until the next call on j. */
const char *tok_json_errmsg(const tok_json *j);

/*! tok_json_is_blank() : 1 if s[0, n) holds only JSON whitespace (space, tab, CR, LF): a blank
 *  line, which is no record. */
int tok_json_is_blank(const char *s, size_t n);

void tok_json_free(tok_json *j); /* NULL ok */

/* ---- UTF-8 -------------------------------------------------------------------------------- */
/* The one definition of valid UTF-8 (RFC 3629) for the tokenizer and all of prep: no overlong
 * forms, no surrogates, nothing above U+10FFFF. */
#define TOK_INVALID_CP 0x110000u /* *cp of an invalid byte */

/*! tok_utf8_next() :
 *  Decodes one code point at s[0..n), n >= 1.
 *  @return its length (1..4); an invalid or truncated sequence yields 1 and *cp = TOK_INVALID_CP.
 */
static inline size_t tok_utf8_next(const unsigned char *s, size_t n, uint32_t *cp) {
    unsigned c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xc2 && c <= 0xdf && n >= 2 && (s[1] & 0xc0) == 0x80) {
        *cp = ((c & 0x1fu) << 6) | (s[1] & 0x3fu);
        return 2;
    }
    if (c >= 0xe0 && c <= 0xef && n >= 3 && (s[1] & 0xc0) == 0x80 && (s[2] & 0xc0) == 0x80) {
        uint32_t v = ((c & 0x0fu) << 12) | ((s[1] & 0x3fu) << 6) | (s[2] & 0x3fu);
        if (v >= 0x800 && (v < 0xd800 || v > 0xdfff)) {
            *cp = v;
            return 3;
        }
    }
    if (c >= 0xf0 && c <= 0xf4 && n >= 4 && (s[1] & 0xc0) == 0x80 && (s[2] & 0xc0) == 0x80 &&
        (s[3] & 0xc0) == 0x80) {
        uint32_t v =
            ((c & 0x07u) << 18) | ((s[1] & 0x3fu) << 12) | ((s[2] & 0x3fu) << 6) | (s[3] & 0x3fu);
        if (v >= 0x10000 && v <= 0x10ffff) {
            *cp = v;
            return 4;
        }
    }
    *cp = TOK_INVALID_CP;
    return 1;
}

#endif
