/*
 * prep.h - the distributed pipeline from raw corpora to a length-upsampled, domain-balanced,
 * packed corpus of shards.
 *
 *   read (prep_read.h) -> tokenize (tokenizer.h, threads) -> exact dedup (xxh3-128, hash
 *   partitioned over ranks) -> length buckets (exact token counts) -> mixture selection
 *   (recipe) -> packing (concat | bestfit, one or more sequence lengths) -> shards, manifest,
 *   stats.json, report.md
 *
 * The output does not depend on the number of ranks or threads: every decision is a function
 * of the inputs, the recipe and the seed (documents are identified by their global record
 * number in input order). Work units that finished are kept in DIR/work and not redone when the
 * same command runs again, unless the bytes they were read from changed (each unit's meta keeps
 * their XXH3-64): then the unit and the shards are made again.
 */
#ifndef LONGCTX_PREP_H
#define LONGCTX_PREP_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    PREP_OK = 0,
    PREP_ERR_IO = -1,
    PREP_ERR_NOMEM = -2,
    PREP_ERR_INPUT = -3,  /* bad input under --strict, or no usable input */
    PREP_ERR_RECIPE = -4, /* the recipe is invalid or names a domain the data lacks */
    PREP_ERR_ARG = -5,
    PREP_ERR_MPI = -6,
    PREP_ERR_SHORT = -7,    /* a domain could not reach its budget (--strict) */
    PREP_ERR_REMOTE = -8,   /* another rank failed */
    PREP_ERR_BUSY = -9,     /* another prep run holds the output folder's lock */
    PREP_ERR_STOPPED = -10, /* SIGTERM or SIGUSR1: stopped between work units, the finished ones
                               kept; the same command resumes */
} prep_status;

const char *prep_strerror(int status);

#define PREP_MAX_BUCKETS  32
#define PREP_MAX_SEQ_LENS 8
#define PREP_MAX_DOMAINS  256

typedef enum { PREP_DOMAIN_JSON = 1, PREP_DOMAIN_GLOB = 2, PREP_DOMAIN_FIXED = 3 } prep_domain_src;
typedef enum { PREP_PACK_CONCAT = 1, PREP_PACK_BESTFIT = 2 } prep_packing;

/* A domain's share or bucket weights as the recipe gives them. */
typedef struct {
    char name[96];
    double share; /* explicit share (normalised over the recipe) */
    int has_weights;
    double weights[PREP_MAX_BUCKETS]; /* per-bucket weights for this domain */
} prep_domain_rule;

/* A mixture recipe (see `longctx prep --help` for the file format). */
typedef struct {
    char name[64];
    prep_domain_src domain_src;
    char domain_path[128]; /* PREP_DOMAIN_JSON: dot path */
    char domain_fixed[96]; /* PREP_DOMAIN_FIXED: one domain for everything */
    int n_globs;
    char glob_pattern[32][256]; /* PREP_DOMAIN_GLOB: first matching pattern wins */
    char glob_domain[32][96];
    char text_path[128];
    uint64_t target_tokens; /* 0: take everything the weights allow */
    int shares_as_input;    /* 1: domain shares of the input; else the explicit shares */
    int n_domains;
    prep_domain_rule domains[PREP_MAX_DOMAINS];
    int n_edges;
    uint64_t edges[PREP_MAX_BUCKETS]; /* bucket b = [edges[b], edges[b+1]) tokens, last open */
    double weights[PREP_MAX_BUCKETS]; /* global per-bucket weights (expected copies) */
    int use_bucket_shares;            /* 1: each domain's budget is split over the buckets by
                                         bucket_shares instead of weighting documents */
    double bucket_shares[PREP_MAX_BUCKETS];
    uint32_t max_copies;
    int n_seq_lens;
    uint64_t seq_lens[PREP_MAX_SEQ_LENS];
    prep_packing packing;
    uint64_t bestfit_window; /* bestfit packs windows of this many sequences' tokens (1024) */
    int bos, eos;            /* add BOS / EOS to every document */
    int dedup;
    uint64_t seed;
    int utf8_reject; /* 0: replace invalid bytes with U+FFFD; 1: reject the record */
} prep_recipe;

/*! prep_recipe_load() :
 *  name_or_path is a shipped recipe (fu2024-per-source, llama2-long, prolong-64k, keep) or a
 *  recipe file (JSON). @return PREP_OK or PREP_ERR_RECIPE / PREP_ERR_IO with err filled. */
int prep_recipe_load(const char *name_or_path, prep_recipe *out, char *err, size_t err_bytes);
/* The text of a shipped recipe, NULL if unknown. */
const char *prep_recipe_builtin(const char *name);
const char *const *prep_recipe_names(void); /* NULL-terminated */

typedef struct {
    const char *tokenizer;
    const char *output;
    char *const *inputs;
    int n_inputs;
    prep_recipe recipe;
    int threads;
    int strict;
    uint64_t unit_bytes;   /* plain jsonl files are cut into units of this size, multi-frame
                              .zst files at frames about this far apart (256 MiB) */
    uint64_t shard_tokens; /* tokens per output shard file (default 1 << 28) */
    uint64_t max_doc_bytes;
    uint64_t pack_bytes; /* token buffer per rank while writing shards (default 256 MiB); the
                            output does not depend on it */
    int zstd_level;      /* of the output shards (default 3, shard_writer_opts_default's) */
    double progress_seconds;
} prep_opts;

prep_opts prep_opts_default(void);

/*! prep_run() :
 *  Collective over comm. Runs the whole pipeline into opts->output. Rank 0 holds an flock on
 *  opts->output/prep.lock for the run (pid, host and start time written in it; removed at the
 *  end): a second run into the same folder gets PREP_ERR_BUSY, its err naming the holder. When
 *  nothing or under 1 in 100 records is kept, or nothing is selected, it warns (PREP_ERR_INPUT
 *  with opts->strict). Logs through cluster's sink; errors are agreed over all ranks, and err
 *  (on every rank) holds the first failing rank's message. @return PREP_OK or an error status. */
int prep_run(MPI_Comm comm, const prep_opts *opts, char *err, size_t err_bytes);

#endif
