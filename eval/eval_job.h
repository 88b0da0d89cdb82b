/* eval_job.h - the job machinery that the eval commands (eval_main.c: passkey and needle,
 * eval_ruler_main.c, eval_ppl_main.c) share, in eval_job.c: the common options, the output
 * DIR (config.json written once and compared on a rerun, the results.jsonl journal, resume),
 * the model and state of a tensor-parallel group (after the memory plan's check), rounds of
 * items over the replicas, summary.json. Internal to the eval commands; not part of the eval
 * library's interface (eval.h). Functions that take a cluster_groups are collective over its
 * world and return an exit code, the same on every rank. */
#ifndef LONGCTX_EVAL_JOB_H
#define LONGCTX_EVAL_JOB_H

#include "cluster.h"
#include "infer.h"
#include "tokenizer.h"

#include <getopt.h>
#include <stdint.h>
#include <stdio.h>

struct json_object;

enum { EXIT_RUNTIME = 1, EXIT_USAGE = 2, EXIT_STOPPED = 75 /* = LONGCTX_EXIT_STOPPED */ };

/* ---- options --------------------------------------------------------------------------------*/

/* The options every eval task takes (the model is each task's: ppl-vs-length takes several). */
typedef struct {
    const char *cmd; /* "longctx eval ruler": the messages' prefix */
    const char *output, *tokenizer;
    long tp, threads, training_length;
    uint64_t mem_limit; /* --mem-limit, bytes; 0: none */
    int verbose;
    infer_opts run; /* --kv-dtype, --act-dtype, --prefill-chunk, --mem-topk (infer_opts_parse) */
} eval_job_opts;

eval_job_opts eval_job_opts_default(const char *cmd);

/* getopt codes of the common options (a task's own start at 256) */
enum {
    EVAL_O_TOK = 200,
    EVAL_O_TP,
    EVAL_O_THREADS,
    EVAL_O_TRAIN,
    EVAL_O_MEMLIMIT,
    EVAL_O_RUN,
    EVAL_O_VERSION
};

/* the getopt entries of the common options */
#define EVAL_JOB_OPTIONS                                                                           \
    {"output", required_argument, 0, 'o'}, {"tokenizer", required_argument, 0, EVAL_O_TOK},        \
        {"tp", required_argument, 0, EVAL_O_TP},                                                   \
        {"threads", required_argument, 0, EVAL_O_THREADS},                                         \
        {"training-length", required_argument, 0, EVAL_O_TRAIN},                                   \
        {"mem-limit", required_argument, 0, EVAL_O_MEMLIMIT}, {"verbose", no_argument, 0, 'v'},    \
        {"kv-dtype", required_argument, 0, EVAL_O_RUN},                                            \
        {"act-dtype", required_argument, 0, EVAL_O_RUN},                                           \
        {"prefill-chunk", required_argument, 0, EVAL_O_RUN}, {                                     \
        "mem-topk", required_argument, 0, EVAL_O_RUN                                               \
    }
/* their --help lines (but --output, --tokenizer and --training-length, which each task words) */
#define EVAL_JOB_OPTIONS_HELP                                                                      \
    "  --tp P               tensor-parallel size of each replica (default 0: all ranks)\n"         \
    "  --threads N          threads per rank (default 1)\n"                                        \
    "  --kv-dtype D         f32 (default) or bf16 KV cache (a 7B at 128K: 64 or 32 GiB)\n"         \
    "  --act-dtype D        f32 (default) or bf16 prefill products (see longctx infer)\n"          \
    "  --prefill-chunk N    prompt tokens per step (default 512)\n"                                \
    "  --mem-topk K         LongLLaMA: the K best memory entries per query (0: all)\n"             \
    "  --mem-limit SIZE     refuse to start when the memory plan of a rank (longctx plan) for\n"   \
    "                       the longest prompt exceeds SIZE bytes (suffixes K, M, G, T)\n"         \
    "  -v, --verbose        debug logging\n"

/* Option c (getopt's code; name: the long option's name) into j. @return 0 (taken),
 * EXIT_USAGE (printed why), or -1: not a common option. */
int eval_job_opt(eval_job_opts *j, int c, const char *name, const char *arg);
/* argv (argv[0]: the task) parsed with the common options (into j; and --help: usage(stdout),
 * --version) and the task's (task_opts, ending in a zero entry; each to task_opt(ctx, code,
 * optarg): 0 or an exit code). --output is required. @return -1 to go on, else an exit code. */
int eval_job_parse(int argc, char **argv, const struct option *task_opts, eval_job_opts *j,
                   int (*task_opt)(void *ctx, int c, const char *arg), void *ctx,
                   void (*usage)(FILE *f));
/* an integer in [lo, hi] into *out; 0, or prints why (prefixed cmd) and returns EXIT_USAGE */
int eval_parse_long(const char *cmd, const char *s, const char *opt, long lo, long hi, long *out);

/* ---- the job --------------------------------------------------------------------------------*/

/* After a task's parse (rc: -1 to go on, else its exit code): the groups of j->tp over world,
 * the log and the signals, then job(ctx, groups). Collective over world. An exit code. */
int eval_job_run(MPI_Comm world, int rc, const eval_job_opts *j,
                 int (*job)(void *ctx, const cluster_groups *cg), void *ctx);

/* a failure on any rank of cg's world, with the lowest failing rank's message logged by rank 0 */
int eval_world_failure(const cluster_groups *cg, int rc);

/* j->tokenizer, else model_dir's tokenizer.json or tokenizer.model, into *out; none there: NULL
 * when !required, else an error. Local. 0 or EXIT_USAGE (logged). */
int eval_tokenizer_load(const eval_job_opts *j, const char *model_dir, int required,
                        tokenizer **out);

/* Before anything is loaded or written: o (o->max_ctx the longest prompt plus its answer;
 * threads from j) against the model's config, and the memory plan of a rank (infer_plan_make,
 * what `longctx plan` prints for the run's --tp and options) against j->mem_limit: above it,
 * EXIT_USAGE with the numbers; the plan is logged either way. Collective over cg->world. */
int eval_plan_check(const eval_job_opts *j, const cluster_groups *cg, const char *path,
                    infer_opts o);
/* The model at path loaded over cg->tp and its state for o (after eval_plan_check). Collective
 * over cg->world. On failure *m and *s are NULL. */
int eval_model_open(const eval_job_opts *j, const cluster_groups *cg, const char *path,
                    infer_opts o, infer_model **m, infer_state **s);

/* A prefill sink keeping the last position's logits (INFER_ERR_NUMERIC if not finite). */
typedef struct {
    float *row; /* (V) */
    size_t V;
} eval_last_sink;
int eval_keep_row(void *sink, int pos, const float *logits);

/* ---- the output directory -------------------------------------------------------------------*/

/* dir/name (malloc'd; NULL when out of memory) */
char *eval_path(const char *dir, const char *name);

/* path's infer_model_hash as 16 hex digits into hex[17], logged with the path (the identity a
 * rerun is compared by). Local. 0 or EXIT_RUNTIME (logged). */
int eval_model_hash_hex(const char *path, char hex[17]);

/* 1 if line is the result of an item of this run (its number in *item), else 0 */
typedef int (*eval_line_item_fn)(const char *line, void *ctx, uint64_t *item);

typedef struct {
    const char *dir;
    size_t n_items;
    char **lines;  /* (n_items) rank 0: each finished item's line (malloc'd) */
    uint8_t *done; /* (n_items) every rank: lines[i] != NULL */
    size_t n_done; /* finished before this run */
    FILE *journal; /* rank 0: results.jsonl, appended */
} eval_out;

/*! eval_out_open() :
 *  Collective over cg->world (rc: the callers' agreed status so far; nothing is done unless 0).
 *  Rank 0 makes the directory and compares config (its config.json, NULL on other ranks) with
 *  the one there: written when there is none (a results.jsonl without it is refused); another
 *  run's (a key differs, or a "model_hash") is refused, EXIT_USAGE, naming the keys (the model
 *  and both hashes); the "model" / "models" paths may differ (logged). Then it reads back the
 *  lines of the items done before (line_item: which; a last line cut by a kill is dropped and
 *  cut from the file) and opens the journal; every rank learns o->done. */
int eval_out_open(eval_out *o, const cluster_groups *cg, int rc, const char *dir,
                  const char *config, size_t n_items, eval_line_item_fn line_item, void *ctx);
/* the pending items of [from, to) into pending (its room), their number */
size_t eval_out_pending(const eval_out *o, size_t from, size_t to, uint64_t *pending);

/* Who runs what: sched[round * R + replica] is an item or EVAL_NO_ITEM, *n_rounds rounds. */
enum { EVAL_NO_ITEM = -1 };
/* pending item round * R + k to replica k. 0 or EXIT_RUNTIME. */
int eval_schedule_rr(const uint64_t *pending, size_t n_pending, size_t R, int64_t **sched,
                     size_t *n_rounds);

/* One item's result line into *line (malloc'd; what the group's rank 0 makes is recorded). An
 * exit code (the group agrees on it). */
typedef int (*eval_run_fn)(void *ctx, uint64_t item, char **line);

/*! eval_out_rounds() :
 *  Collective over cg->world. Runs sched over the replicas; after each round rank 0 gathers its
 *  lines (cluster_records), keeps them in o->lines and appends them to the journal, synced: a
 *  kill loses at most a round. A signal stops the job after a round (EXIT_RUNTIME: rerun to
 *  resume). *n_ran: items run. */
int eval_out_rounds(eval_out *o, const cluster_groups *cg, const int64_t *sched, size_t n_rounds,
                    eval_run_fn run, void *ctx, size_t *n_ran);

/* Collective over cg->world: closes the journal; if rc is 0, rank 0 writes results.jsonl in
 * item order (a new file renamed over the journal). The agreed exit code. */
int eval_out_close(eval_out *o, const cluster_groups *cg, int rc);
void eval_out_free(eval_out *o); /* local */

/* o as pretty JSON into dir/name; rank 0. 0 or EXIT_RUNTIME (logged). */
int eval_write_json(const char *dir, const char *name, struct json_object *o);
/* the number at key of a result line (NAN if it has none) */
double eval_line_number(const char *line, const char *key);
/* 1 if a result line has key */
int eval_line_has(const char *line, const char *key);

/* ---- one item -------------------------------------------------------------------------------*/

/* After a prompt's prefill (status prefill_st, the last row's logits at row, V wide): up to
 * n_new greedy tokens into gen (*n_gen), stopping at cfg's EOS, the prompt n_prompt long.
 * Non-finite logits end the item, not the job: *numeric names where (and *n_gen is 0), logged
 * as recorded with score 0. @return 0, or EXIT_RUNTIME (logged) for any other failure. */
int eval_generate(infer_state *s, const infer_config *cfg, int prefill_st, const float *row, int V,
                  void *work, int n_prompt, int n_new, uint32_t *gen, int *n_gen,
                  const char **numeric, unsigned long long item);
/* text[0, n) with every invalid UTF-8 sequence (a cut byte token) as U+FFFD, so that a JSON
 * line holds UTF-8 (malloc'd, NUL-terminated, *out_n bytes); NULL when out of memory */
char *eval_utf8_clean(const char *text, size_t n, size_t *out_n);

/* the run options into a run's config.json: what changes the answers (a rerun with others is
 * refused) */
void eval_run_opts_json(struct json_object *o, const infer_opts *r);

#endif
