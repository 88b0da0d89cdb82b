/* prep_internal.h - shared pieces of the prep stages (prep_scan.c, prep_select.c, prep_pack.c,
 * prep_report.c, prep_pipeline.c). */
#ifndef LONGCTX_PREP_INTERNAL_H
#define LONGCTX_PREP_INTERNAL_H

#include "cluster.h"
#include "prep.h"
#include "prep_read.h"
#include "tokenizer.h"

#include <stdio.h>

#define PREP_ERRMSG_BYTES 1024
#define PREP_NO_SEQ       UINT32_MAX

/* One record of a unit as the scan stage saw it (the unit's .meta file holds these). */
typedef struct {
    uint64_t offset;   /* byte offset of the record (see prep_record) */
    uint64_t n_tokens; /* text tokens (no BOS/EOS) */
    uint64_t hash[2];  /* xxh3-128 of the text (after the UTF-8 policy) */
    uint32_t domain;   /* index into the unit's string table */
    uint32_t member;   /* index into the unit's string table, PREP_NO_SEQ if none */
    uint32_t seq;      /* sequence in the unit's shard, PREP_NO_SEQ if rejected */
    uint8_t reject;    /* prep_reject */
} prep_unit_rec;

/* A unit's scan result, loaded from DIR/work/unit-NNNNNN.meta. */
typedef struct {
    uint64_t n_records;
    prep_unit_rec *recs; /* (n_records) */
    uint32_t n_strings;
    char **strings; /* (n_strings) domains and member names */
    char *blob;
    int truncated; /* the stream was damaged: records after the damage are lost */
    uint64_t truncated_offset;
    /* the fingerprint of what the records were read from: a rerun redoes the unit when the
     * range, the file's size or the content hash differ (the mtime is kept for the log) */
    uint64_t unit_begin, unit_end; /* the unit (prep_unit) */
    uint64_t input_bytes, input_mtime_ns;
    uint64_t raw_begin, raw_end; /* the file bytes its records depend on */
    uint64_t raw_xxh3;           /* XXH3-64 of those bytes */
} prep_unit_meta;

/* Paths of a unit's files. */
void prep_unit_path(char *out, size_t n, const char *dir, size_t unit, const char *ext);

/* Writes a unit's meta atomically (tmp + rename). */
int prep_unit_meta_write(const char *path, const prep_unit_meta *m, char *err, size_t err_bytes);
/* Reads and checks a unit's meta; PREP_ERR_IO if absent, PREP_ERR_INPUT if damaged. */
int prep_unit_meta_read(const char *path, prep_unit_meta *m, char *err, size_t err_bytes);
void prep_unit_meta_free(prep_unit_meta *m);

/* The domain of a record: from the JSON path, the path glob rules, or the fixed name. NULL
 * when the record has none (a reject). */
const char *prep_recipe_domain(const prep_recipe *r, const prep_input *in, const prep_record *rec,
                               char *buf, size_t buf_bytes);

/* Written before the metas of changed units are removed, removed once the old shards are:
 * while it exists, the shards in DIR/L* are not the inputs' (prep_pipeline.c). */
#define PREP_STALE_SHARDS "work/stale-shards"

/*! prep_scan() :
 *  Collective. Units done by an earlier run whose input changed since (fingerprint: range,
 *  size, XXH3-64 of the raw bytes) are redone, and DIR/work/stale-shards is left for the
 *  caller. Then reads and tokenizes every unit not already done (dynamic queue over ranks),
 *  writing DIR/work/unit-NNNNNN.{shard,meta}. */
int prep_scan(MPI_Comm comm, const prep_opts *o, const tokenizer *tok, const prep_input *in,
              const prep_unit *units, size_t n_units, char *err, size_t err_bytes);

/* The work units [prep_unit_begin(r), prep_unit_begin(r + 1)) belong to rank r after the
 * scan: select loads their metas, pack reads their documents. Contiguous, so that the
 * documents of rank r all precede those of rank r + 1. */
static inline size_t prep_unit_begin(int r, size_t n_units, int n_ranks) {
    return (size_t)((uint64_t)n_units * (uint64_t)r / (uint64_t)n_ranks);
}
static inline int prep_unit_owner(size_t u, size_t n_units, int n_ranks) {
    return (int)(((uint64_t)(u + 1) * (uint64_t)n_ranks + n_units - 1) / n_units) - 1;
}

/* A selected document (each rank holds those of its units, sorted by doc_id). */
typedef struct {
    uint64_t doc_id;    /* global record number in input order */
    uint64_t record;    /* record number inside its input file */
    uint64_t n_tokens;  /* tokens of one copy as packed (BOS/EOS included) */
    uint32_t unit, seq; /* where its tokens are: DIR/work/unit-NNNNNN.shard, sequence seq */
    uint32_t domain;    /* global domain index */
    uint32_t copies;
    uint32_t member; /* the unit's string index, PREP_NO_SEQ if none */
    uint32_t pad;
} prep_sel;

/* Global statistics, identical on every rank after the reductions. */
typedef struct {
    int n_domains, n_buckets;
    char **domain;      /* (n_domains) sorted names */
    uint64_t n_records; /* records read, rejects included */
    uint64_t rejects[PREP_REJECT_N];
    uint64_t *file_records; /* (n_inputs) */
    uint64_t *file_rejects; /* (n_inputs, PREP_REJECT_N) */
    /* per domain (n_domains) */
    uint64_t *docs;   /* valid documents (not rejected) */
    uint64_t *dups;   /* of which exact duplicates */
    uint64_t *supply; /* tokens of the unique documents (packed size) */
    uint64_t *budget; /* UINT64_MAX: no budget (take what the weights give) */
    uint64_t *sel_docs, *sel_copies, *sel_tokens; /* tokens with copies */
    double *share_target;
    /* (n_domains, n_buckets) histograms of unique documents, before and after selection
     * (after: copies counted) */
    uint64_t *hist_docs_before, *hist_tokens_before, *hist_docs_after, *hist_tokens_after;
} prep_stats;

void prep_stats_free(prep_stats *s);

/*! prep_select() :
 *  Collective. Loads the unit metas, numbers the documents, agrees on the domains, removes
 *  exact duplicates (hash partitioned), buckets, and selects by the recipe. On each rank,
 *  *sel (n_sel) holds the selected documents of its units (prep_unit_begin) sorted by doc_id;
 *  stats are global on every rank. */
int prep_select(MPI_Comm comm, const prep_opts *o, size_t n_inputs, const prep_unit *units,
                size_t n_units, prep_sel **sel, size_t *n_sel, prep_stats *stats, char *err,
                size_t err_bytes);

/*! prep_pack() :
 *  Collective. Plans the sequences of every length over the ranks from each rank's selected
 *  documents (*sel, n_sel: taken, freed early and set to NULL, for the memory; prep_pack.c
 *  says how) and writes their shards; n_seqs / n_shards (per length) are set on every rank. */
int prep_pack(MPI_Comm comm, const prep_opts *o, const tokenizer *tok, prep_sel **sel, size_t n_sel,
              size_t n_units, uint64_t *n_seqs, uint64_t *n_shards, char *err, size_t err_bytes);

/*! prep_manifest_write() :
 *  Collective. DIR/manifest.tsv: a header, then every rank's selected documents at its prefix
 *  offset (MPI-IO), written as .tmp and renamed into place by rank 0. */
int prep_manifest_write(MPI_Comm comm, const prep_opts *o, const prep_input *in,
                        const prep_unit *units, const prep_sel *sel, size_t n_sel,
                        const prep_stats *S, char *err, size_t err_bytes);
/* Rank 0: DIR/stats.json, DIR/report.md + DIR/report/ (tmp + rename). */
int prep_stats_write(const prep_opts *o, const prep_input *in, size_t n_inputs, const prep_stats *S,
                     const uint64_t *n_seqs, const uint64_t *n_shards, char *err, size_t err_bytes);
int prep_report_write(const prep_opts *o, const prep_stats *S, const uint64_t *n_seqs,
                      const uint64_t *n_shards, char *err, size_t err_bytes);

/* Sorts items (n of sz bytes) by keys[i] (the key of items[i]), stably: equal keys keep their
 * order. 0, or -1 when out of memory (items unchanged). */
int prep_sort_by_key(void *items, size_t n, size_t sz, const uint64_t *keys);

/* A key and the index of its item. */
typedef struct {
    uint64_t key, idx;
} prep_kv;
/* Sorts a[0, n) stably by key, b (n pairs) as room, without allocating: for a cache's worth of
 * pairs (random keys: a counting pass and insertion); returns a or b, whichever holds them. */
prep_kv *prep_sort_pairs(prep_kv *a, prep_kv *b, size_t n);

/* The items (n of sz bytes) grouped by destination rank dest[i], keeping their order inside
 * each group, into *out (malloc'd); count[r] (n_ranks entries) items for rank r. 0, or -1 when
 * out of memory. Local. */
int prep_group_by_dest(const void *items, size_t n, size_t sz, const int *dest, int n_ranks,
                       void **out, uint64_t *count);
/* The same from a malloc'd *items that is taken (freed, or passed on: *items = NULL): when
 * every item goes to one rank, as always at one rank, *out is *items itself, no copy. */
int prep_group_take(void **items, size_t n, size_t sz, const int *dest, int n_ranks, void **out,
                    uint64_t *count);
/* Collective: sbuf (malloc'd, taken: freed here) holds count[r] items of sz bytes for each rank
 * r, in rank order; *rbuf (malloc'd) gets what every rank sent here, in rank order, *n_recv
 * items. Counts of any size (cluster_alltoallv_big); one rank keeps its buffer, no copy.
 * @return the status agreed over comm. */
int prep_exchange(MPI_Comm comm, void *sbuf, const uint64_t *count, size_t sz, void **rbuf,
                  size_t *n_recv);

/* splitmix64's finaliser: a bijection of 64-bit values (so keys of distinct ids differ). */
static inline uint64_t prep_mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

#endif
