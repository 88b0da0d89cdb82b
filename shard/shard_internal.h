/* shard_internal.h - private pieces shared by shard_write.c, shard_read.c and shard_verify.c. */
#ifndef LONGCTX_SHARD_INTERNAL_H
#define LONGCTX_SHARD_INTERNAL_H

#include "shard.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "longctx shards are written with memcpy of native integers: little-endian hosts only"
#endif

#define SHARD_HEADER_FIXED_BYTES 32u /* magic 8, version, token_bytes, vocab, codec, meta_bytes */
#define SHARD_BLOCK_ENTRY_BYTES  48u
#define SHARD_SEQ_ENTRY_BYTES    16u
#define SHARD_DOC_BYTES          24u
#define SHARD_ERRMSG_BYTES       512u

/* Index entry of one block (48 bytes on disk, this order). */
typedef struct {
    uint64_t offset;     /* file offset of the block header */
    uint64_t comp_bytes; /* payload bytes after the 32-byte block header */
    uint64_t raw_bytes;  /* decompressed size */
    uint64_t first_seq;
    uint64_t n_seqs;
    uint64_t checksum; /* xxh3-64 of the payload */
} shard_block_entry;

/* Index entry of one sequence (16 bytes on disk: u64 n_tokens, u32 n_docs, u32 n_doc_starts). */
typedef struct {
    uint64_t n_tokens;
    uint32_t n_docs;
    uint32_t n_doc_starts;
} shard_seq_entry;

static inline void shard_put_u32(uint8_t *p, uint32_t v) {
    memcpy(p, &v, 4);
}
static inline void shard_put_u64(uint8_t *p, uint64_t v) {
    memcpy(p, &v, 8);
}
static inline uint32_t shard_get_u32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}
static inline uint64_t shard_get_u64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline uint64_t shard_pad8(uint64_t n) {
    return (n + 7u) & ~(uint64_t)7u;
}

/* Raw block size of sequences holding n_tokens tokens and n_docs pieces. */
static inline uint64_t shard_raw_bytes(uint64_t n_tokens, uint64_t n_docs, uint32_t token_bytes) {
    return shard_pad8(n_tokens * token_bytes) + n_docs * SHARD_DOC_BYTES;
}

static inline uint32_t shard_token_bytes_for_vocab(uint32_t vocab_size) {
    return vocab_size <= SHARD_U16_MAX_VOCAB ? 2u : 4u;
}

/* The largest of n ids, to check them against vocab_size without a branch per token. Eight
 * lanes, so that gcc -O2 vectorises the loop (a loop that leaves early, or one accumulator, it
 * does not). */
static inline uint32_t shard_max_u32(const uint32_t *t, uint64_t n) {
    uint32_t m[8] = {0};
    uint64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++)
            m[k] = t[i + k] > m[k] ? t[i + k] : m[k];
    for (; i < n; i++)
        m[0] = t[i] > m[0] ? t[i] : m[0];
    for (int k = 1; k < 8; k++)
        m[0] = m[k] > m[0] ? m[k] : m[0];
    return m[0];
}

static inline uint32_t shard_max_u16(const uint16_t *t, uint64_t n) {
    uint16_t m[8] = {0};
    uint64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++)
            m[k] = t[i + k] > m[k] ? t[i + k] : m[k];
    for (; i < n; i++)
        m[0] = t[i] > m[0] ? t[i] : m[0];
    for (int k = 1; k < 8; k++)
        m[0] = m[k] > m[0] ? m[k] : m[0];
    return m[0];
}

/* Checksums compare through this, so that fuzzing builds (as in zstd) can skip them and reach
 * the structural checks behind them. Never defined in a normal build. */
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
#define SHARD_SUM_BAD(computed, stored) ((void)(computed), (void)(stored), 0)
#else
#define SHARD_SUM_BAD(computed, stored) ((computed) != (stored))
#endif

/* Formats into an error buffer of SHARD_ERRMSG_BYTES. */
void shard_set_err(char *buf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Full-length pread/write; return 0 or -1 (errno set; pread sets errno 0 at end of file). */
int shard_pread_full(int fd, void *buf, size_t n, uint64_t offset);
int shard_write_full(int fd, const void *buf, size_t n);

/* Reader internals used by shard_verify.c. */
int shard_reader_load_block(shard_reader *r, uint64_t b);
const shard_block_entry *shard_reader_block_entry(const shard_reader *r, uint64_t b);

#endif
