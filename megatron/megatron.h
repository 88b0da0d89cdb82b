/*
 * megatron.h - Megatron-LM's indexed dataset (PREFIX.bin + PREFIX.idx, "MMIDIDX" version 1):
 * export from longctx shards (MPI-IO, collective) and import into one shard (one process).
 *
 * .idx layout (little-endian): "MMIDIDX\0\0", u64 version 1, u8 dtype, u64 n_seqs,
 * u64 n_doc_indices, int32 lengths[n_seqs], int64 pointers[n_seqs] (byte offsets in .bin),
 * int64 document_indices[n_doc_indices] (first sequence of each document, then n_seqs).
 * .bin: the tokens of every sequence back to back, uint16 (dtype 8) or int32 (dtype 4).
 *
 * Statuses are shard_status values (shard_strerror names them); detail goes to `err`.
 */
#ifndef LONGCTX_MEGATRON_H
#define LONGCTX_MEGATRON_H

#include "shard.h"

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#define MEGATRON_MAGIC        "MMIDIDX\x00\x00"
#define MEGATRON_HEADER_BYTES 34u
#define MEGATRON_DTYPE_INT32  4
#define MEGATRON_DTYPE_UINT16 8

/* ---- the .idx format ---------------------------------------------------------------------- */

/* Megatron's dtype for a vocabulary: uint16 (8) when vocab_size < 65500, else int32 (4). */
int megatron_dtype_for_vocab(uint32_t vocab_size);

/* Writes the 34-byte .idx header. */
void megatron_header_write(uint8_t out[MEGATRON_HEADER_BYTES], int dtype, uint64_t n_seqs,
                           uint64_t n_doc_indices);

/*! megatron_prefix_check() :
 *  Checks an output PREFIX: it must not be empty, end in '/' or name a directory (each would
 *  write hidden or misplaced files such as "dir/.bin"). Local, no MPI.
 *  @return SHARD_OK or SHARD_ERR_ARG (err says why). */
int megatron_prefix_check(const char *prefix, char *err, size_t err_bytes);

/* ---- export (MPI) ------------------------------------------------------------------------- */

typedef struct {
    const char *prefix; /* required: writes prefix.bin and prefix.idx */
    int dtype;          /* 0 (default): the dtype recorded by import if every file has one,
                           else megatron_dtype_for_vocab; or MEGATRON_DTYPE_UINT16 / _INT32 */
} megatron_export_opts;

megatron_export_opts megatron_export_opts_default(void);

typedef struct {
    uint64_t n_seqs;
    uint64_t n_tokens;
    uint64_t n_docs; /* Megatron documents */
    int dtype;
} megatron_export_report;

/*! megatron_export() :
 *  Collective over comm. Global: opts, files, n_files (the same on every rank); the status and
 *  err are agreed, so every rank returns the same. Local: report (valid on success).
 *  Writes the Megatron dataset of the shards `files` (in order, one Megatron sequence per
 *  packed sequence): each rank converts a contiguous share of the files and writes at its
 *  prefix-sum offset, so the bytes do not depend on the number of ranks. The files are
 *  written under temporary names (prefix.bin.tmp, prefix.idx.tmp) and renamed into place
 *  only when every rank succeeded; on failure they are removed and an earlier export at
 *  prefix is left as it was. Refuses (SHARD_ERR_ARG) a bad prefix (megatron_prefix_check) and
 *  an output that is the same file (st_dev, st_ino) as one of the inputs.
 *  @return SHARD_OK, SHARD_ERR_ARG, SHARD_ERR_CORRUPT (a damaged input, named in err),
 *  SHARD_ERR_IO, SHARD_ERR_NOMEM. */
int megatron_export(MPI_Comm comm, const megatron_export_opts *opts, char *const *files,
                    int n_files, megatron_export_report *report, char *err, size_t err_bytes);

/* ---- import (no MPI) ---------------------------------------------------------------------- */

typedef struct {
    uint32_t vocab_size;  /* 0 (default): largest id + 1 */
    int level;            /* zstd level (default 3) */
    uint64_t block_bytes; /* raw bytes per compressed block (default 1 MiB) */
} megatron_import_opts;

megatron_import_opts megatron_import_opts_default(void);

typedef struct {
    uint64_t n_seqs;
    uint64_t n_docs; /* Megatron documents */
} megatron_import_report;

/*! megatron_import() :
 *  Compresses prefix.bin/prefix.idx into the shard `out`: one packed sequence per Megatron
 *  sequence, with one document piece naming its Megatron document. The dtype (in the
 *  metadata) and document_indices (as document starts) are kept, so megatron_export gives
 *  back the same bytes. Not collective: one process only. `out` is complete or absent.
 *  @return SHARD_OK, SHARD_ERR_IO, SHARD_ERR_CORRUPT (a malformed dataset: err names the
 *  file and offset), SHARD_ERR_ARG (an id >= vocab_size), SHARD_ERR_NOMEM. */
int megatron_import(const char *prefix, const char *out, const megatron_import_opts *opts,
                    megatron_import_report *report, char *err, size_t err_bytes);

#endif
