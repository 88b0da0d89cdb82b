/* eval_main.c - `longctx eval passkey|needle`: the grid of items (lengths x trials or depths)
 * handed to replicas (tensor-parallel groups, cluster_groups), each item's prompt from the eval
 * library, a greedy answer, its score; rank 0 writes results.jsonl as rounds finish (a killed
 * run resumes: finished items are read back, not redone), then the file in item order,
 * summary.json and the plots.
 *
 * Rounds: round r hands pending item r * R + k to replica k (R replicas) and gathers the round's
 * results on rank 0, which appends them and syncs the file. Which replica ran an item never
 * shows in the results: an item's prompt depends only on (seed, length, trial or depth), and
 * greedy decoding only on the prompt.
 *
 * Prefix reuse (off with --no-prefix-reuse): the cells of a needle grid at one length share the
 * haystack before the needle, so a replica runs a length's cells by increasing depth and keeps
 * the KV cache of the prompt before: each prompt is prefilled from infer_prefill_resume(its
 * common prefix with the previous one), which gives the bits of a prefill from 0, so the
 * results are the same files. The items then go to replicas as chains (schedule_make) rather
 * than round-robin; the model is loaded once per job either way. */
#include "cluster.h"
#include "eval.h"
#include "eval_job.h"
#include "infer.h"
#include "longctx_cli.h"
#include "plot.h"
#include "tokenizer.h"

#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int eval_ppl_main(int argc, char **argv); /* eval_ppl_main.c: ppl-vs-length */
enum { MAX_HAYSTACKS = 4096, MAX_GRID = 100000 };

#define PASSKEY_LENGTHS "1024,2048,4096,8192"
#define NEEDLE_DEPTHS   "0,11,22,33,44,56,67,78,89,100" /* round(linspace(0, 100, 10)) */

typedef struct {
    int task; /* eval_task */
    const char *model, *lengths_arg, *depths_arg;
    const char *haystack[MAX_HAYSTACKS];
    int n_haystack;
    long trials;
    unsigned long long seed;
    int no_reuse;    /* --no-prefix-reuse */
    eval_job_opts j; /* --output, --tp, infer's run options, ... (eval_job.h) */
} eval_args;

static const char *task_name(int task) {
    return task == EVAL_TASK_PASSKEY ? "passkey" : "needle";
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: longctx eval passkey|needle --model PATH --output DIR [options]\n"
            "       longctx eval ppl-vs-length --help   (loss against context length)\n"
            "       (under mpirun/srun: ranks = replicas x --tp)\n\n"
            "Long-context evaluations (REFERENCE.md 1.4), each item a greedy answer scored:\n"
            "  passkey  Landmark/LongLLaMA: task line, filler, the key line at a seeded depth,\n"
            "           the question; exact lengths in tokens; score: the first integer of the\n"
            "           answer is the key (1/0). %d new tokens.\n"
            "  needle   Fu et al.: the needle in a haystack of --haystack files (sorted) at\n"
            "           depth d%% moved back to a sentence end; scores: Fu's word recall (a\n"
            "           perfect answer scores 11/12) and substring (1/0). %d new tokens.\n"
            "  ruler    RULER's synthetic probes: longctx eval ruler --help\n\n"
            "  --model PATH         HF model directory or llama2.c .bin (required)\n"
            "  --output DIR         results.jsonl, summary.json, <task>.svg/.png (required);\n"
            "                       a rerun with the same options resumes\n"
            "  --tokenizer FILE     tokenizer.json or .model (default: the model directory's)\n"
            "  --lengths L,...      prompt lengths in tokens (default passkey %s; needle\n"
            "                       Fu's 40: round(linspace(1000, 128000, 40)))\n"
            "  --seed S             passkey keys and depths (default 0)\n"
            "  --trials N           passkey: trials per length (default 10)\n"
            "  --haystack FILE      needle: a text file of the haystack (repeatable, required)\n"
            "  --depths D,...       needle: depths in percent (default %s)\n"
            "  --training-length N  the plots' line (default: the model's max positions)\n"
            "  --no-prefix-reuse    prefill every prompt from position 0 (by default a\n"
            "                       replica runs a length's items in order and reuses the\n"
            "                       KV cache of the prefix shared with the prompt before:\n"
            "                       the same results, less prefill)\n" EVAL_JOB_OPTIONS_HELP
            "  --help, --version\n",
            EVAL_PASSKEY_NEW, EVAL_NEEDLE_NEW, PASSKEY_LENGTHS, NEEDLE_DEPTHS);
}

/* a comma-separated list of numbers in [lo, hi]; 0 or an exit code */
static int parse_numbers(const char *arg, const char *opt, double lo, double hi, int integer,
                         double **out, size_t *n_out) {
    *out = NULL;
    *n_out = 0;
    size_t cap = 0;
    const char *p = arg;
    for (;;) {
        char *end;
        errno = 0;
        const double v = strtod(p, &end);
        if (end == p || errno || !(v >= lo && v <= hi) || (integer && v != floor(v)) ||
            (*end && *end != ',')) {
            fprintf(stderr, "longctx eval: %s '%s': '%.*s' is not a number in [%g, %g]\n", opt, arg,
                    (int)strcspn(p, ","), p, lo, hi);
            free(*out);
            *out = NULL;
            return EXIT_USAGE;
        }
        if (*n_out == cap) {
            double *q = realloc(*out, (cap = cap ? 2 * cap : 16) * sizeof *q);
            if (!q) {
                free(*out);
                *out = NULL;
                return EXIT_RUNTIME;
            }
            *out = q;
        }
        (*out)[(*n_out)++] = v;
        if (!*end)
            return 0;
        p = end + 1;
    }
}

/* the task's own options (eval_job_parse takes the common ones) */
enum { O_LEN = 256, O_SEED, O_TRIALS, O_HAY, O_DEPTHS, O_NOREUSE };

static int task_opt(void *ctx, int c, const char *arg) {
    eval_args *a = ctx;
    long v;
    int rc = 0;
    switch (c) {
    case 'm':
        a->model = arg;
        break;
    case O_LEN:
        a->lengths_arg = arg;
        break;
    case O_SEED:
        rc = eval_parse_long(a->j.cmd, arg, "--seed", 0, LONG_MAX, &v);
        a->seed = (unsigned long long)v;
        break;
    case O_TRIALS:
        rc = eval_parse_long(a->j.cmd, arg, "--trials", 1, MAX_GRID, &a->trials);
        break;
    case O_HAY:
        if (a->n_haystack == MAX_HAYSTACKS) {
            fprintf(stderr, "longctx eval: more than %d --haystack files\n", MAX_HAYSTACKS);
            return EXIT_USAGE;
        }
        a->haystack[a->n_haystack++] = arg;
        break;
    case O_DEPTHS:
        a->depths_arg = arg;
        break;
    case O_NOREUSE:
        a->no_reuse = 1;
        break;
    }
    return rc;
}

static int eval_parse(int argc, char **argv, eval_args *a) {
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},           {"lengths", required_argument, 0, O_LEN},
        {"seed", required_argument, 0, O_SEED},         {"trials", required_argument, 0, O_TRIALS},
        {"haystack", required_argument, 0, O_HAY},      {"depths", required_argument, 0, O_DEPTHS},
        {"no-prefix-reuse", no_argument, 0, O_NOREUSE}, {0, 0, 0, 0},
    };
    a->j = eval_job_opts_default("longctx eval");
    a->trials = 10;
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        usage(stdout);
        return 0;
    }
    if (argc >= 2 && !strcmp(argv[1], "--version")) {
        printf("longctx %s\n", LONGCTX_VERSION);
        return 0;
    }
    if (argc < 2 || (strcmp(argv[1], "passkey") && strcmp(argv[1], "needle"))) {
        fprintf(stderr,
                "longctx eval: the first argument is the task: passkey, needle, ruler or "
                "ppl-vs-length%s%s%s\n",
                argc >= 2 ? " (not '" : "", argc >= 2 ? argv[1] : "", argc >= 2 ? "')" : "");
        usage(stderr);
        return EXIT_USAGE;
    }
    a->task = !strcmp(argv[1], "passkey") ? EVAL_TASK_PASSKEY : EVAL_TASK_NEEDLE;
    int rc = eval_job_parse(argc - 1, argv + 1, opts, &a->j, task_opt, a, usage);
    if (rc >= 0)
        return rc;
    if (!a->model) {
        fprintf(stderr, "longctx eval: --model and --output are required\n");
        return EXIT_USAGE;
    }
    if (a->task == EVAL_TASK_NEEDLE && a->n_haystack == 0) {
        fprintf(stderr, "longctx eval needle: give the haystack's text with --haystack FILE "
                        "(repeatable; Fu et al. use Paul Graham's essays)\n");
        return EXIT_USAGE;
    }
    if (a->task == EVAL_TASK_PASSKEY && (a->n_haystack || a->depths_arg)) {
        fprintf(stderr, "longctx eval passkey: --haystack and --depths are needle's options\n");
        return EXIT_USAGE;
    }
    return -1;
}

/* ==== the grid ================================================================================*/

typedef struct {
    eval_item *items; /* (n) lengths outer */
    size_t n;
    double *lengths, *depths; /* (n_lengths), (n_depths) */
    size_t n_lengths, n_depths;
} grid;

static int grid_make(const eval_args *a, grid *g) {
    memset(g, 0, sizeof *g);
    int rc;
    if (a->lengths_arg) {
        if ((rc = parse_numbers(a->lengths_arg, "--lengths", 1, INT32_MAX / 2, 1, &g->lengths,
                                &g->n_lengths)))
            return rc;
    } else if (a->task == EVAL_TASK_PASSKEY) {
        if ((rc = parse_numbers(PASSKEY_LENGTHS, "--lengths", 1, INT32_MAX / 2, 1, &g->lengths,
                                &g->n_lengths)))
            return rc;
    } else { /* Fu's round(linspace(1000, 128000, 40)), numpy's round half to even */
        if (!(g->lengths = malloc(40 * sizeof *g->lengths)))
            return EXIT_RUNTIME;
        for (int i = 0; i < 40; i++)
            g->lengths[i] = nearbyint(1000.0 + (128000.0 - 1000.0) * i / 39.0);
        g->n_lengths = 40;
    }
    if (a->task == EVAL_TASK_NEEDLE &&
        (rc = parse_numbers(a->depths_arg ? a->depths_arg : NEEDLE_DEPTHS, "--depths", 0, 100, 0,
                            &g->depths, &g->n_depths)))
        return rc;
    const size_t inner = a->task == EVAL_TASK_PASSKEY ? (size_t)a->trials : g->n_depths;
    if (g->n_lengths * inner > MAX_GRID) {
        fprintf(stderr, "longctx eval: %zu items, more than %d\n", g->n_lengths * inner, MAX_GRID);
        return EXIT_USAGE;
    }
    g->n = g->n_lengths * inner;
    if (!(g->items = calloc(g->n ? g->n : 1, sizeof *g->items)))
        return EXIT_RUNTIME;
    for (size_t l = 0, i = 0; l < g->n_lengths; l++)
        for (size_t k = 0; k < inner; k++, i++) {
            g->items[i].length = (size_t)g->lengths[l];
            g->items[i].trial = a->task == EVAL_TASK_PASSKEY ? (int)k : -1;
            g->items[i].depth = a->task == EVAL_TASK_NEEDLE ? g->depths[k] : -1.0;
        }
    return 0;
}

static void grid_free(grid *g) {
    free(g->items);
    free(g->lengths);
    free(g->depths);
}

/* ==== the output directory ====================================================================*/

/* What makes two runs' items the same: a rerun resumes only with these equal. */
static char *config_json(const eval_args *a, const grid *g, const tokenizer *tok,
                         const eval_haystack *h) {
    json_object *o = json_object_new_object(), *ls = json_object_new_array();
    json_object_object_add(o, "task", json_object_new_string(task_name(a->task)));
    json_object_object_add(o, "model", json_object_new_string(a->model));
    char hex[32];
    if (eval_model_hash_hex(a->model, hex) != 0) {
        json_object_put(o);
        json_object_put(ls);
        return NULL;
    }
    json_object_object_add(o, "model_hash", json_object_new_string(hex));
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)tokenizer_checksum(tok));
    json_object_object_add(o, "tokenizer_xxh3", json_object_new_string(hex));
    for (size_t i = 0; i < g->n_lengths; i++)
        json_object_array_add(ls, json_object_new_int64((int64_t)g->lengths[i]));
    json_object_object_add(o, "lengths", ls);
    eval_run_opts_json(o, &a->j.run);
    if (a->task == EVAL_TASK_PASSKEY) {
        json_object_object_add(o, "seed", json_object_new_uint64(a->seed));
        json_object_object_add(o, "trials", json_object_new_int64(a->trials));
    } else {
        json_object *ds = json_object_new_array();
        for (size_t i = 0; i < g->n_depths; i++)
            json_object_array_add(ds, json_object_new_double(g->depths[i]));
        json_object_object_add(o, "depths", ds);
        snprintf(hex, sizeof hex, "%016llx", (unsigned long long)eval_haystack_hash(h));
        json_object_object_add(o, "haystack_xxh3", json_object_new_string(hex));
    }
    char *s = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY));
    json_object_put(o);
    return s;
}

/* ==== one item ================================================================================*/

typedef struct {
    const eval_args *a;
    const grid *g;
    eval_ctx *ec;
    const eval_haystack *h;
    infer_state *s;
    const infer_config *cfg;
    eval_last_sink sink;
    void *work; /* infer_sample_work_bytes(V) */
    /* prefix reuse: the prompt that ran last on s (prev, n_prev; NULL: none or reuse off) and
     * this group's counts of prompt tokens and of those prefilled */
    uint32_t *prev;
    size_t n_prev;
    uint64_t prompt_tokens, prefilled;
} runner;

/* 1 if line is the result of an item of this grid (its number in *item), else 0 */
static int line_matches(const char *line, void *ctx, uint64_t *item) {
    const runner *r = ctx;
    json_object *o = json_tokener_parse(line), *v;
    int ok = o && json_object_object_get_ex(o, "item", &v);
    if (ok) {
        const int64_t i = json_object_get_int64(v);
        ok = i >= 0 && (uint64_t)i < r->g->n;
        if (ok) {
            const eval_item *it = &r->g->items[i];
            *item = (uint64_t)i;
            ok = json_object_object_get_ex(o, "length", &v) &&
                 (size_t)json_object_get_int64(v) == it->length &&
                 json_object_object_get_ex(o, "task", &v) &&
                 !strcmp(json_object_get_string(v), task_name(r->a->task));
            if (ok && r->a->task == EVAL_TASK_PASSKEY)
                ok = json_object_object_get_ex(o, "trial", &v) &&
                     json_object_get_int64(v) == it->trial;
            if (ok && r->a->task == EVAL_TASK_NEEDLE)
                ok = json_object_object_get_ex(o, "depth", &v) &&
                     json_object_get_double(v) == it->depth;
        }
    }
    json_object_put(o);
    return ok;
}

/* item i's result line into *line (malloc'd on every rank of the group); an exit code */
static int run_item(runner *r, uint64_t i, const eval_item *it, char **line) {
    eval_prompt p;
    int st = r->a->task == EVAL_TASK_PASSKEY
                 ? eval_passkey_make(r->ec, it->length, r->a->seed, (uint64_t)it->trial, &p)
                 : eval_needle_make(r->ec, r->h, it->length, it->depth, &p);
    if (st != EVAL_OK) {
        LOG_ERROR("item %llu: %s: %s", (unsigned long long)i, eval_strerror(st),
                  eval_ctx_errmsg(r->ec));
        return st == EVAL_ERR_ARG ? EXIT_USAGE : EXIT_RUNTIME;
    }
    for (size_t k = 0; k < p.n_ids; k++)
        if (p.ids[k] >= (uint32_t)r->cfg->vocab_size) {
            LOG_ERROR("the tokenizer's id %u is outside the model's vocabulary of %d: the "
                      "tokenizer is not the model's (--tokenizer)",
                      p.ids[k], r->cfg->vocab_size);
            eval_prompt_free(&p);
            return EXIT_USAGE;
        }
    uint32_t gen[EVAL_NEEDLE_NEW > EVAL_PASSKEY_NEW ? EVAL_NEEDLE_NEW : EVAL_PASSKEY_NEW];
    int n_gen = 0, rc = 0;
    size_t common = 0;
    while (r->prev && common < r->n_prev && common < p.n_ids && r->prev[common] == p.ids[common])
        common++;
    const int pos0 = r->a->no_reuse ? 0 : infer_prefill_resume(r->s, (int)common, (int)p.n_ids);
    free(r->prev); /* positions [pos0, ...) are rewritten: the cache is p's prompt or nothing */
    r->prev = NULL;
    st =
        infer_prefill(r->s, p.ids + pos0, (int)p.n_ids - pos0, pos0, NULL, eval_keep_row, &r->sink);
    r->prompt_tokens += p.n_ids;
    r->prefilled += p.n_ids - (size_t)pos0;
    if (st == INFER_OK && !r->a->no_reuse) { /* decode writes only past the prompt */
        r->prev = p.ids;
        r->n_prev = p.n_ids;
        p.ids = NULL;
    }
    const char *numeric = NULL;
    if (st != INFER_OK && st != INFER_ERR_NUMERIC)
        LOG_ERROR("item %llu: prefill of %zu tokens: %s", (unsigned long long)i, p.n_ids,
                  infer_strerror(st));
    rc = st != INFER_OK && st != INFER_ERR_NUMERIC
             ? EXIT_RUNTIME
             : eval_generate(r->s, r->cfg, st, r->sink.row, (int)r->sink.V, r->work, (int)p.n_ids,
                             p.n_new, gen, &n_gen, &numeric, i);
    const char *ans = "";
    size_t n_ans = 0;
    if (rc == 0 && n_gen && eval_ctx_decode(r->ec, gen, (size_t)n_gen, &ans, &n_ans) != EVAL_OK) {
        LOG_ERROR("item %llu: cannot decode the answer", (unsigned long long)i);
        rc = EXIT_RUNTIME;
    }
    /* a cut UTF-8 sequence (byte tokens) becomes U+FFFD; the ids are in the line too */
    char *clean = rc == 0 ? eval_utf8_clean(ans, n_ans, &n_ans) : NULL;
    if (rc == 0 && !clean)
        rc = EXIT_RUNTIME;
    if (clean)
        ans = clean;
    if (rc == 0) {
        json_object *o = json_object_new_object(), *ids = json_object_new_array();
        json_object_object_add(o, "item", json_object_new_uint64(i));
        json_object_object_add(o, "task", json_object_new_string(task_name(r->a->task)));
        json_object_object_add(o, "length", json_object_new_int64((int64_t)it->length));
        if (r->a->task == EVAL_TASK_PASSKEY) {
            json_object_object_add(o, "trial", json_object_new_int(it->trial));
            json_object_object_add(o, "depth", json_object_new_double(p.depth));
        } else {
            json_object_object_add(o, "depth", json_object_new_double(it->depth));
            json_object_object_add(o, "depth_actual", json_object_new_double(p.depth));
        }
        json_object_object_add(o, "prompt_tokens", json_object_new_int64((int64_t)p.n_ids));
        json_object_object_add(o, "needle_pos", json_object_new_int64((int64_t)p.needle_pos));
        json_object_object_add(o, "needle_tokens", json_object_new_int64((int64_t)p.needle_tokens));
        json_object_object_add(o, "expected", json_object_new_string(p.expected));
        json_object_object_add(o, "answer", json_object_new_string_len(ans, (int)n_ans));
        for (int k = 0; k < n_gen; k++)
            json_object_array_add(ids, json_object_new_int64(gen[k]));
        json_object_object_add(o, "answer_ids", ids);
        if (numeric) {
            json_object_object_add(o, "error", json_object_new_string(numeric));
            json_object_object_add(o, "score", json_object_new_int(0));
            if (r->a->task == EVAL_TASK_NEEDLE)
                json_object_object_add(o, "substring", json_object_new_int(0));
        } else if (r->a->task == EVAL_TASK_PASSKEY) {
            json_object_object_add(o, "score",
                                   json_object_new_int(eval_passkey_score(ans, n_ans, p.expected)));
        } else {
            json_object_object_add(o, "score",
                                   json_object_new_double(eval_needle_recall(ans, n_ans)));
            json_object_object_add(o, "substring",
                                   json_object_new_int(eval_needle_substring(ans, n_ans)));
        }
        *line = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
        json_object_put(o);
        if (!*line)
            rc = EXIT_RUNTIME;
    }
    free(clean);
    eval_prompt_free(&p);
    return rc;
}

static int run_one(void *ctx, uint64_t i, char **line) {
    runner *r = ctx;
    return run_item(r, i, &r->g->items[i], line);
}

/* ==== summary =================================================================================*/

/* summary.json and the plot's numbers: mean scores per length (passkey) or per (depth, length)
 * cell (needle); rank 0. An exit code. */
static int write_summary(const eval_args *a, const grid *g, char *const *lines, int train) {
    const size_t inner = a->task == EVAL_TASK_PASSKEY ? (size_t)a->trials : g->n_depths;
    double *score = calloc(g->n, sizeof *score), *sub = calloc(g->n, sizeof *sub);
    if (!score || !sub) {
        free(score);
        free(sub);
        return EXIT_RUNTIME;
    }
    for (size_t i = 0; i < g->n; i++) {
        score[i] = eval_line_number(lines[i], "score");
        sub[i] = a->task == EVAL_TASK_NEEDLE ? eval_line_number(lines[i], "substring") : 0;
    }
    json_object *o = json_object_new_object(), *ls = json_object_new_array();
    json_object_object_add(o, "task", json_object_new_string(task_name(a->task)));
    json_object_object_add(o, "model", json_object_new_string(a->model));
    json_object_object_add(o, "items", json_object_new_int64((int64_t)g->n));
    json_object_object_add(o, "training_length", json_object_new_int(train));
    for (size_t l = 0; l < g->n_lengths; l++)
        json_object_array_add(ls, json_object_new_int64((int64_t)g->lengths[l]));
    json_object_object_add(o, "lengths", ls);
    double total = 0, total_sub = 0;
    for (size_t i = 0; i < g->n; i++) {
        total += score[i];
        total_sub += sub[i];
    }
    plot_data pd = {.n_x = g->n_lengths, .x = g->lengths, .train = train};
    double *means = calloc(g->n_lengths * (inner ? inner : 1), sizeof *means);
    if (a->task == EVAL_TASK_PASSKEY) {
        json_object *acc = json_object_new_array();
        for (size_t l = 0; l < g->n_lengths; l++) {
            double s = 0;
            for (size_t k = 0; k < inner; k++)
                s += score[l * inner + k];
            if (means)
                means[l] = s / (double)inner;
            json_object_array_add(acc, json_object_new_double(s / (double)inner));
        }
        json_object_object_add(o, "trials", json_object_new_int64(a->trials));
        json_object_object_add(o, "seed", json_object_new_uint64(a->seed));
        json_object_object_add(o, "accuracy", acc);
        json_object_object_add(o, "accuracy_mean", json_object_new_double(total / (double)g->n));
        pd.n_y = 1;
    } else {
        json_object *ds = json_object_new_array(), *rec = json_object_new_array(),
                    *sb = json_object_new_array();
        for (size_t d = 0; d < g->n_depths; d++) {
            json_object *rr = json_object_new_array(), *sr = json_object_new_array();
            json_object_array_add(ds, json_object_new_double(g->depths[d]));
            for (size_t l = 0; l < g->n_lengths; l++) {
                json_object_array_add(rr, json_object_new_double(score[l * inner + d]));
                json_object_array_add(sr, json_object_new_int((int)sub[l * inner + d]));
                if (means)
                    means[d * g->n_lengths + l] = score[l * inner + d] / (11.0 / 12.0);
            }
            json_object_array_add(rec, rr);
            json_object_array_add(sb, sr);
        }
        json_object_object_add(o, "depths", ds);
        json_object_object_add(o, "recall", rec);
        json_object_object_add(o, "substring", sb);
        json_object_object_add(o, "recall_mean", json_object_new_double(total / (double)g->n));
        json_object_object_add(o, "substring_mean",
                               json_object_new_double(total_sub / (double)g->n));
        json_object_object_add(o, "recall_ceiling", json_object_new_double(11.0 / 12.0));
        json_object_object_add(
            o, "recall_note",
            json_object_new_string("Fu et al.'s word recall: |set(answer.lower().split()) & "
                                   "set(expected)| / 12; the expected answer has 12 words, 11 "
                                   "distinct, so a perfect answer scores 11/12 = 0.9167 (the "
                                   "heatmap shows recall / (11/12))"));
        pd.n_y = g->n_depths;
        pd.y = g->depths;
    }
    pd.v = means;
    int rc = eval_write_json(a->j.output, "summary.json", o);
    json_object_put(o);
    if (rc == 0 && means) {
        char base[64];
        snprintf(base, sizeof base, "%s", task_name(a->task));
        char *stem = eval_path(a->j.output, base);
        char err[512] = "";
        const int st = stem ? (a->task == EVAL_TASK_PASSKEY
                                   ? plot_curve(&pd, "Passkey accuracy", "prompt length (tokens)",
                                                "accuracy", stem, err, sizeof err)
                                   : plot_heatmap(&pd, "Needle in a haystack", "Token Limit",
                                                  "Depth Percent", stem, err, sizeof err))
                            : PLOT_ERR_NOMEM;
        if (st != PLOT_OK) {
            LOG_ERROR("plot: %s: %s", plot_strerror(st), err);
            rc = EXIT_RUNTIME;
        }
        free(stem);
    }
    free(means);
    free(score);
    free(sub);
    return rc;
}

/* ==== the job =================================================================================*/

typedef struct {
    size_t first, n; /* a run of the sorted pending items */
    double cost;
} chain;

/* an item's place in a replica's order: by length (its index), then depth (passkey: -1), then
 * item */
typedef struct {
    size_t length;
    double depth;
    uint64_t item;
} sort_key;

static int by_length_depth(const void *x, const void *y) {
    const sort_key *a = x, *b = y;
    if (a->length != b->length)
        return a->length < b->length ? -1 : 1;
    if (a->depth != b->depth)
        return a->depth < b->depth ? -1 : 1;
    return a->item < b->item ? -1 : a->item > b->item;
}

/* prefill tokens of a chain, about: the first prompt whole, each next one after the needle of
 * the one before */
static double chain_cost(const eval_args *a, const grid *g, const uint64_t *it, size_t n) {
    double c = 0;
    for (size_t k = 0; k < n; k++) {
        const eval_item *e = &g->items[it[k]];
        const double shared = k && a->task == EVAL_TASK_NEEDLE ? g->items[it[k - 1]].depth : 0;
        c += (double)e->length * (1.0 - shared / 100.0) + EVAL_NEEDLE_NEW;
    }
    return c;
}

/* Who runs what: sched[round * R + replica] is an item or EVAL_NO_ITEM, n_rounds rounds. Reuse off:
 * pending item round * R + k to replica k. Reuse on: the pending items of each length, by
 * depth, are a chain (split in halves, the longest first, while there are fewer chains than
 * replicas); chains go to the least loaded replica by estimated prefill tokens, the costliest
 * first; a replica runs its chains' items one per round. The same on every rank. 0 or
 * EXIT_RUNTIME. */
static int schedule_make(const eval_args *a, const grid *g, const uint64_t *pending,
                         size_t n_pending, size_t R, int64_t **sched, size_t *n_rounds) {
    *sched = NULL;
    *n_rounds = 0;
    if (a->no_reuse || R == 0) {
        *n_rounds = (n_pending + R - 1) / R;
        if (!(*sched = malloc((*n_rounds * R + 1) * sizeof **sched)))
            return EXIT_RUNTIME;
        for (size_t j = 0; j < *n_rounds * R; j++)
            (*sched)[j] = j < n_pending ? (int64_t)pending[j] : EVAL_NO_ITEM;
        return 0;
    }
    uint64_t *it = malloc((n_pending + 1) * sizeof *it);
    sort_key *keys = malloc((n_pending + 1) * sizeof *keys);
    chain *ch = malloc((n_pending + R + 1) * sizeof *ch);
    double *load = calloc(R, sizeof *load);
    size_t *count = calloc(R, sizeof *count), *owner = malloc((n_pending + R + 1) * sizeof *owner);
    int rc = it && keys && ch && load && count && owner ? 0 : EXIT_RUNTIME;
    size_t n_ch = 0;
    if (rc == 0) {
        const size_t inner = g->n / (g->n_lengths ? g->n_lengths : 1);
        for (size_t k = 0; k < n_pending; k++)
            keys[k] = (sort_key){pending[k] / inner,
                                 a->task == EVAL_TASK_NEEDLE ? g->items[pending[k]].depth : -1.0,
                                 pending[k]};
        qsort(keys, n_pending, sizeof *keys, by_length_depth);
        for (size_t k = 0; k < n_pending; k++)
            it[k] = keys[k].item;
        for (size_t k = 0; k < n_pending; k++)
            if (k == 0 || it[k] / inner != it[k - 1] / inner)
                ch[n_ch++] = (chain){k, 0, 0};
        for (size_t c = 0; c < n_ch; c++)
            ch[c].n = (c + 1 < n_ch ? ch[c + 1].first : n_pending) - ch[c].first;
        while (n_ch < R) { /* split the longest chain */
            size_t best = 0;
            for (size_t c = 1; c < n_ch; c++)
                best = ch[c].n > ch[best].n ? c : best;
            if (n_ch == 0 || ch[best].n < 2)
                break;
            const size_t h = ch[best].n / 2;
            memmove(ch + best + 2, ch + best + 1, (n_ch - best - 1) * sizeof *ch);
            ch[best + 1] = (chain){ch[best].first + h, ch[best].n - h, 0};
            ch[best].n = h;
            n_ch++;
        }
        for (size_t c = 0; c < n_ch; c++)
            ch[c].cost = chain_cost(a, g, it + ch[c].first, ch[c].n);
        /* costliest first (ties: the earlier chain), each to the least loaded replica */
        uint8_t *placed = calloc(n_ch + 1, 1);
        rc = placed ? 0 : EXIT_RUNTIME;
        for (size_t done = 0; rc == 0 && done < n_ch; done++) {
            size_t c = n_ch;
            for (size_t d = 0; d < n_ch; d++)
                if (!placed[d] && (c == n_ch || ch[d].cost > ch[c].cost))
                    c = d;
            size_t k = 0;
            for (size_t q = 1; q < R; q++)
                k = load[q] < load[k] ? q : k;
            placed[c] = 1;
            owner[c] = k;
            load[k] += ch[c].cost;
            count[k] += ch[c].n;
        }
        free(placed);
    }
    for (size_t k = 0; rc == 0 && k < R; k++)
        *n_rounds = count[k] > *n_rounds ? count[k] : *n_rounds;
    if (rc == 0 && !(*sched = malloc((*n_rounds * R + 1) * sizeof **sched)))
        rc = EXIT_RUNTIME;
    for (size_t j = 0; rc == 0 && j < *n_rounds * R; j++)
        (*sched)[j] = EVAL_NO_ITEM;
    for (size_t k = 0; rc == 0 && k < R; k++) { /* replica k's chains in their sorted order */
        size_t round = 0;
        for (size_t c = 0; c < n_ch; c++)
            for (size_t q = 0; owner[c] == k && q < ch[c].n; q++)
                (*sched)[round++ * R + k] = (int64_t)it[ch[c].first + q];
    }
    free(it);
    free(keys);
    free(ch);
    free(load);
    free(count);
    free(owner);
    return rc;
}

/* the job over the groups (eval_job_run) */
static int eval_job(void *ctx, const cluster_groups *cg) {
    const eval_args *a = ctx;
    grid g;
    int rc = grid_make(a, &g);
    if (rc) {
        grid_free(&g);
        return rc;
    }
    tokenizer *tok = NULL;
    eval_ctx *ec = NULL;
    eval_haystack *h = NULL;
    rc = eval_tokenizer_load(&a->j, a->model, 1, &tok);
    int st;
    if (rc == 0 && (st = eval_ctx_create(tok, &ec)) != EVAL_OK) {
        LOG_ERROR("%s: %s", eval_strerror(st), eval_ctx_errmsg(ec));
        rc = EXIT_RUNTIME;
    }
    if (rc == 0 && a->task == EVAL_TASK_NEEDLE &&
        (st = eval_haystack_load(ec, a->haystack, (size_t)a->n_haystack, &h)) != EVAL_OK) {
        LOG_ERROR("%s", eval_ctx_errmsg(ec));
        rc = st == EVAL_ERR_NOMEM ? EXIT_RUNTIME : EXIT_USAGE;
    }
    rc = cluster_agree_first(cg->world, rc);
    size_t max_len = 0;
    for (size_t l = 0; l < g.n_lengths; l++)
        max_len = (size_t)g.lengths[l] > max_len ? (size_t)g.lengths[l] : max_len;
    infer_opts o = a->j.run;
    o.max_ctx = (int)max_len + EVAL_NEEDLE_NEW;
    infer_model *m = NULL;
    infer_state *s = NULL;
    if (rc == 0)
        rc = eval_plan_check(&a->j, cg, a->model, o);
    if (rc == 0)
        rc = eval_model_open(&a->j, cg, a->model, o, &m, &s);
    const infer_config *cfg = rc == 0 ? infer_model_config(m) : NULL;
    const int train = a->j.training_length ? (int)a->j.training_length : cfg ? cfg->seq_len : 0;
    runner r = {a,    &g,   ec, h, s, cfg, {NULL, cfg ? (size_t)cfg->vocab_size : 0},
                NULL, NULL, 0,  0, 0};

    /* rank 0: the directory and the items done before; every rank learns which */
    char *config = rc == 0 && cg->rank == 0 ? config_json(a, &g, tok, h) : NULL;
    eval_out out;
    rc = eval_out_open(&out, cg, rc, a->j.output, config, g.n, line_matches, &r);
    uint64_t *pending = malloc((g.n ? g.n : 1) * sizeof *pending);
    const size_t n_pending = pending ? eval_out_pending(&out, 0, g.n, pending) : 0;
    if (rc == 0 && !pending)
        rc = EXIT_RUNTIME;
    LOG_INFO("%s: %zu items (%zu lengths x %zu), %zu done before, %zu to run on %d replica%s of "
             "tensor-parallel size %d",
             task_name(a->task), g.n, g.n_lengths, g.n_lengths ? g.n / g.n_lengths : 0,
             g.n - n_pending, n_pending, cg->n_replicas, cg->n_replicas > 1 ? "s" : "",
             cg->tp_size);
    if (rc == 0) {
        r.sink.row = malloc(r.sink.V * sizeof *r.sink.row);
        r.work = malloc(infer_sample_work_bytes((int)r.sink.V));
        rc = cluster_agree_first(cg->world, !r.sink.row || !r.work ? EXIT_RUNTIME : 0);
    }
    const double t0 = cluster_now();
    int64_t *sched = NULL;
    size_t n_rounds = 0, n_ran = 0;
    if (rc == 0)
        rc = cluster_agree_first(
            cg->world,
            schedule_make(a, &g, pending, n_pending, (size_t)cg->n_replicas, &sched, &n_rounds));
    if (rc == 0)
        rc = eval_out_rounds(&out, cg, sched, n_rounds, run_one, &r, &n_ran);
    rc = eval_out_close(&out, cg, rc);
    if (rc == 0 && cg->rank == 0)
        rc = write_summary(a, &g, out.lines, train);
    rc = cluster_agree_first(cg->world, rc);
    /* prompt tokens and those prefilled, summed over the replicas (one rank of each group) */
    uint64_t counts[2] = {cg->tp_rank == 0 ? r.prompt_tokens : 0,
                          cg->tp_rank == 0 ? r.prefilled : 0},
             sum[2] = {0, 0};
    MPI_Allreduce(counts, sum, 2, MPI_UINT64_T, MPI_SUM, cg->world);
    const double secs = cluster_now() - t0;
    if (rc == 0)
        LOG_INFO("%zu items in %.2f s (%.3f items/s); prefilled %llu of %llu prompt tokens (%s); "
                 "%s/results.jsonl, summary.json, %s.svg, %s.png",
                 n_pending, secs, secs > 0 ? (double)n_pending / secs : 0.0,
                 (unsigned long long)sum[1], (unsigned long long)sum[0],
                 a->no_reuse ? "prefix reuse off" : "the rest reused from the prompt before",
                 a->j.output, task_name(a->task), task_name(a->task));
    free(sched);
    free(r.prev);
    eval_out_free(&out);
    free(pending);
    free(config);
    free(r.sink.row);
    free(r.work);
    infer_state_free(s);
    infer_model_free(m);
    eval_haystack_free(h);
    eval_ctx_free(ec);
    tokenizer_free(tok);
    grid_free(&g);
    return rc;
}

/* Every rank parses; rank 0 alone prints (the others' stdout and stderr go to /dev/null unless
 * LONGCTX_LOG_RANKS=all: failures reach rank 0 by agreement). ruler and ppl-vs-length are
 * dispatched after MPI_Init, with argv[0] their task. */
int eval_main(int argc, char **argv) {
    int rank = 0, rc;
    int level; /* FUNNELED: as infer's all_ranks (infer_main.c) */
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &level);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    const char *all = getenv("LONGCTX_LOG_RANKS");
    if (rank != 0 && (!freopen("/dev/null", "w", stdout) ||
                      (!(all && !strcmp(all, "all")) && !freopen("/dev/null", "w", stderr)))) {
        MPI_Finalize();
        return EXIT_RUNTIME;
    }
    if (argc >= 2 && !strcmp(argv[1], "ppl-vs-length")) {
        rc = eval_ppl_main(argc - 1, argv + 1);
    } else if (argc >= 2 && !strcmp(argv[1], "ruler")) {
        rc = eval_ruler_main(argc - 1, argv + 1);
    } else {
        eval_args a;
        memset(&a, 0, sizeof a);
        rc = eval_job_run(MPI_COMM_WORLD, eval_parse(argc, argv, &a), &a.j, eval_job, &a);
    }
    MPI_Finalize();
    return rc;
}
