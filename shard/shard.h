/*
 * shard.h - the longctx shard file: packed token sequences with document boundaries,
 * zstd-compressed in checksummed blocks, with a footer index for random access.
 *
 * No MPI here. Little-endian hosts only (checked at compile time).
 *
 * File layout (all integers little-endian, all offsets 64-bit):
 *
 *   header   "LCTXSHRD" u32 version, u32 token_bytes (2|4), u32 vocab_size, u32 codec,
 *            u64 meta_bytes, meta JSON (meta_bytes), u64 xxh3-64 of everything before it
 *   block*   u32 "BLK1", u32 n_seqs, u64 comp_bytes, u64 raw_bytes, u64 xxh3-64(payload),
 *            payload = one zstd frame of the raw block:
 *              tokens of every sequence of the block, back to back (token_bytes each),
 *              zero padding to a multiple of 8,
 *              the document pieces (shard_doc) of every sequence, back to back
 *   index    n_blocks x shard_block_entry (48 bytes), n_seqs x shard_seq_entry (16 bytes),
 *            u64 n_trailing_doc_starts
 *   trailer  "LCTXINDX" u64 index_offset, u64 index_bytes, u64 n_blocks, u64 n_seqs,
 *            u64 n_tokens, u64 n_docs, u64 xxh3-64(index), u64 xxh3-64(trailer so far)
 *
 * Every byte of the file is covered by a checksum or cross-checked against the index, so any
 * truncation or bit flip is reported as SHARD_ERR_CORRUPT with the block and byte offset.
 */
#ifndef LONGCTX_SHARD_H
#define LONGCTX_SHARD_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define SHARD_VERSION         1u
#define SHARD_HEADER_MAGIC    "LCTXSHRD"
#define SHARD_TRAILER_MAGIC   "LCTXINDX"
#define SHARD_BLOCK_MAGIC     0x314b4c42u /* "BLK1" */
#define SHARD_TRAILER_BYTES   72u
#define SHARD_BLOCK_HDR_BYTES 32u
#define SHARD_U16_MAX_VOCAB   65535u /* vocab_size <= this: tokens stored as uint16 */
#define SHARD_MAX_META_BYTES  (16u << 20)
#define SHARD_CODEC_ZSTD      0u /* the only codec of version 1 */

typedef enum {
    SHARD_DONE = 1, /* not an error: no more records */
    SHARD_OK = 0,
    SHARD_ERR_IO = -1,
    SHARD_ERR_NOMEM = -2,
    SHARD_ERR_CORRUPT = -3,
    SHARD_ERR_ARG = -4,
} shard_status;

const char *shard_strerror(int status); /* static string, never NULL */

/* One document piece inside a sequence. Its length runs to the next piece's start or to the
 * end of the sequence. Pieces are ordered: start is non-decreasing and <= n_tokens. */
typedef struct {
    uint64_t start;      /* token offset of the piece in the sequence */
    uint64_t doc_id;     /* the document's identity (prep: its global document number) */
    uint64_t doc_offset; /* token offset of the piece inside its document */
} shard_doc;

/* Summary of a shard, from its header and index. */
typedef struct {
    uint32_t version;
    uint32_t token_bytes; /* 2 or 4 */
    uint32_t vocab_size;
    uint32_t codec;
    uint64_t n_seqs;
    uint64_t n_tokens;
    uint64_t n_docs; /* document pieces */
    uint64_t n_blocks;
    uint64_t n_doc_starts;          /* Megatron document starts, including trailing ones */
    uint64_t n_trailing_doc_starts; /* Megatron documents starting after the last sequence */
    uint64_t raw_bytes;             /* sum of uncompressed block sizes */
    uint64_t comp_bytes;            /* sum of compressed payloads */
    uint64_t file_bytes;
} shard_info;

/* ---- writer ------------------------------------------------------------------------------- */

typedef struct shard_writer shard_writer;

typedef struct {
    uint32_t vocab_size;   /* required: every token id must be < vocab_size */
    int level;             /* zstd level (default 3) */
    uint64_t block_bytes;  /* a block is closed once its raw size reaches this (default 1 MiB);
                              a sequence is never split across blocks */
    const char *meta_json; /* a JSON object (NULL = {}); "longctx_version" is added if absent */
    int threads;           /* > 1: blocks are compressed on this many threads while the caller
                              fills the next ones (default 1: compressed in the caller's
                              thread). Every block is compressed on its own, so the file's bytes
                              do not depend on it. */
} shard_writer_opts;

shard_writer_opts shard_writer_opts_default(void);

/*! shard_writer_create() :
 *  Creates a writer that streams to `path`.tmp and renames it to `path` on close, so a file at
 *  `path` is always complete. @return SHARD_OK, SHARD_ERR_ARG (bad options, meta not a JSON
 *  object), SHARD_ERR_IO, SHARD_ERR_NOMEM. On failure *out is a writer holding only the error
 *  message (read it with shard_writer_errmsg, then free it), or NULL if out of memory. */
int shard_writer_create(const char *path, const shard_writer_opts *opts, shard_writer **out);

/*! shard_writer_append() :
 *  Appends one sequence: n_tokens ids and its n_docs document pieces (copied). The sequence
 *  starts one Megatron document (see shard_writer_set_doc_starts).
 *  @return SHARD_OK, SHARD_ERR_ARG (token id >= vocab_size, pieces out of order),
 *  SHARD_ERR_IO, SHARD_ERR_NOMEM. After an error the writer only accepts _free(). */
int shard_writer_append(shard_writer *w, const uint32_t *tokens, uint64_t n_tokens,
                        const shard_doc *docs, uint64_t n_docs);

/* Streaming form of _append(): a sequence built in parts gives the same bytes. */
int shard_writer_seq_tokens(shard_writer *w, const uint32_t *tokens, uint64_t n_tokens);
/* The same from 16-bit ids (any vocabulary: they are widened for a 4-byte shard). */
int shard_writer_seq_tokens16(shard_writer *w, const uint16_t *tokens, uint64_t n_tokens);
int shard_writer_seq_doc(shard_writer *w, const shard_doc *doc); /* start is absolute */
int shard_writer_seq_end(shard_writer *w);

/*! shard_writer_set_doc_starts() :
 *  How many Megatron documents begin at the next sequence (default 1, reset after each
 *  sequence). Import uses it to keep document_indices exact, including empty documents. */
int shard_writer_set_doc_starts(shard_writer *w, uint32_t n_doc_starts);
/* Megatron documents that begin after the last sequence of this shard (empty documents). */
int shard_writer_add_trailing_doc_starts(shard_writer *w, uint64_t n);

/*! shard_writer_close() :
 *  Flushes the last block, writes index and trailer, fsyncs and renames into place.
 *  @return SHARD_OK or an error; either way only _free() remains. */
int shard_writer_close(shard_writer *w);

/* Frees the writer; an unclosed writer's temporary file is removed. NULL ok. */
void shard_writer_free(shard_writer *w);
const char *shard_writer_errmsg(const shard_writer *w); /* "" if none; valid until _free */

/* ---- reader ------------------------------------------------------------------------------- */

typedef struct shard_reader shard_reader;

/* One sequence as read. Pointers are borrowed: valid until the next read on the reader. */
typedef struct {
    uint64_t index; /* sequence number within the shard */
    uint64_t n_tokens;
    uint64_t n_docs;
    uint32_t n_doc_starts; /* Megatron documents that begin at this sequence */
    const void *tokens;    /* n_tokens ids of token_bytes each (uint16_t or uint32_t) */
    const shard_doc *docs; /* n_docs pieces */
} shard_seq;

/*! shard_reader_open() :
 *  Opens `path`, checks header, trailer and index checksums and the index's consistency.
 *  Blocks are checked when read. @return SHARD_OK, SHARD_ERR_IO, SHARD_ERR_CORRUPT,
 *  SHARD_ERR_NOMEM. On failure *out is a reader holding only the error message (or NULL). */
int shard_reader_open(const char *path, shard_reader **out);
/*! shard_reader_open_mapped() :
 *  The same, reading blocks from a read-only mapping of the file (mmap) instead of pread: no
 *  copy of the compressed bytes through a buffer (prep's pack reads its work files so). Where
 *  the file cannot be mapped, pread as shard_reader_open. The file must not shrink while the
 *  reader is open (reading a page past its new end is SIGBUS): for files this process owns. */
int shard_reader_open_mapped(const char *path, shard_reader **out);
void shard_reader_free(shard_reader *r);                /* NULL ok */
const char *shard_reader_errmsg(const shard_reader *r); /* "" if none; valid until _free */

const shard_info *shard_reader_info(const shard_reader *r);
const char *shard_reader_meta(const shard_reader *r); /* the metadata JSON, NUL-terminated */

/* From the index alone, no decompression. @return SHARD_OK or SHARD_ERR_ARG (i out of range) */
int shard_reader_seq_size(const shard_reader *r, uint64_t i, uint64_t *n_tokens, uint64_t *n_docs,
                          uint32_t *n_doc_starts);

/*! shard_reader_read() :
 *  Reads sequence i (decompressing and checking its block unless it is the cached one).
 *  @return SHARD_OK, SHARD_ERR_ARG (i >= n_seqs), SHARD_ERR_CORRUPT (errmsg names file, block
 *  and byte offset), SHARD_ERR_IO, SHARD_ERR_NOMEM. */
int shard_reader_read(shard_reader *r, uint64_t i, shard_seq *out);

/* The bytes per token of a shard of this vocabulary: 2 up to SHARD_U16_MAX_VOCAB, else 4. */
uint32_t shard_token_bytes(uint32_t vocab_size);

/* Copies sequence tokens to uint32 (works for both widths). */
void shard_tokens_to_u32(const void *tokens, uint32_t token_bytes, uint64_t n, uint32_t *out);

/* ---- verify ------------------------------------------------------------------------------- */

typedef struct {
    uint64_t n_blocks_checked;
    uint64_t n_blocks_bad;
    uint64_t first_bad_block;  /* UINT64_MAX if the damage is outside the blocks */
    uint64_t first_bad_offset; /* byte offset in the file of the first damage found */
} shard_verify_report;

/*! shard_verify() :
 *  Checks every checksum and every structural rule (header, index, trailer, each block: its
 *  header, checksum, size, token ids < vocab_size, document pieces in order). Goes on past a
 *  bad block so that all of them are counted. @return SHARD_OK when the file is intact,
 *  SHARD_ERR_CORRUPT (errmsg: the first damage with file, block and offset), SHARD_ERR_IO,
 *  SHARD_ERR_NOMEM. `errmsg` (may be NULL) receives the message, size errmsg_bytes. */
int shard_verify(const char *path, shard_verify_report *report, char *errmsg, size_t errmsg_bytes);

/* ---- id lists (the tools' exchange format) ------------------------------------------------ */

/*! shard_ids_read() :
 *  Reads one document's ids from in: text (decimal ids separated by spaces, one line per
 *  document) or u32 (uint32 count then uint32 ids, little-endian). *ids grows as needed (caller
 *  frees). *offset advances by the bytes consumed; on SHARD_ERR_CORRUPT it is the offset of the
 *  bad byte and *why says what was wrong. @return SHARD_OK, SHARD_DONE at the end,
 *  SHARD_ERR_CORRUPT, SHARD_ERR_NOMEM. */
int shard_ids_read(FILE *in, int u32, uint32_t **ids, uint64_t *cap, uint64_t *n, uint64_t *offset,
                   const char **why);

/* ---- concat packing ----------------------------------------------------------------------- */

/* Concat packing (Fu et al.): documents run back to back across sequences of seq_len tokens,
 * one document piece per sequence a document touches. The one implementation of the policy:
 * prep plans with shard_concat_next on document lengths, `shard pack` writes with
 * shard_pack. Plain data: start from shard_concat_init. */
typedef struct {
    uint64_t seq_len; /* tokens per sequence (the last one may be shorter) */
    uint64_t fill;    /* tokens in the open sequence */
    uint64_t n_seqs;  /* sequences opened so far */
} shard_concat;

shard_concat shard_concat_init(uint64_t seq_len); /* seq_len > 0 */

/*! shard_concat_next() :
 *  Places the next piece of a document that has n_left tokens still to place: a new sequence
 *  opens for the first piece ever and when the open sequence is full. An empty document
 *  (n_left 0) gets one empty piece in the open sequence. @return the piece's tokens (call
 *  again while tokens are left); *opened is 1 when the piece begins a new sequence, *start is
 *  its token offset in its sequence. */
uint64_t shard_concat_next(shard_concat *c, uint64_t n_left, int *opened, uint64_t *start);

/*! shard_concat_append() :
 *  Packs one document (n_tokens ids; its pieces get doc_id and their offset in it) into w,
 *  ending each sequence that it fills. @return as shard_writer_append. */
int shard_concat_append(shard_concat *c, shard_writer *w, const uint32_t *tokens, uint64_t n_tokens,
                        uint64_t doc_id);
/* Ends the last sequence, if any. Then close w. */
int shard_concat_finish(shard_concat *c, shard_writer *w);

#define SHARD_PACK_NONE UINT64_MAX /* no BOS / EOS */

typedef struct {
    uint32_t vocab_size; /* required: ids, bos and eos below it */
    uint64_t seq_len;    /* tokens per sequence (default 131072) */
    int u32;             /* input format: 0 text (default), 1 u32 (see shard_ids_read) */
    uint64_t bos;        /* prepended to every document (default SHARD_PACK_NONE) */
    uint64_t eos;        /* appended to every document (default SHARD_PACK_NONE) */
    int level;           /* zstd level (default 3) */
} shard_pack_opts;

shard_pack_opts shard_pack_opts_default(void);

typedef struct {
    uint64_t n_docs;
    uint64_t n_tokens; /* as packed, BOS/EOS included */
    uint64_t n_seqs;
} shard_pack_report;

/*! shard_pack() :
 *  Reads documents from `in` (shard_ids_read; `in_name` names it in messages), numbers them
 *  from 0 and concat-packs them into the shard `out` (complete or absent). No token is
 *  dropped. @return SHARD_OK, SHARD_ERR_CORRUPT (bad input: err has name and offset),
 *  SHARD_ERR_ARG (bad options, an id >= vocab_size), SHARD_ERR_IO, SHARD_ERR_NOMEM. */
int shard_pack(FILE *in, const char *in_name, const char *out, const shard_pack_opts *opts,
               shard_pack_report *report, char *err, size_t err_bytes);

#endif
