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
