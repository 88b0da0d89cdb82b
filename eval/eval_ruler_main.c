/* eval_ruler_main.c - `longctx eval ruler`: RULER's synthetic probes (eval.h) as one job over
 * replicas of tensor-parallel groups, the machinery of eval_job.c that passkey and needle use:
 * items (tasks x lengths x trials) in rounds, round r handing pending item r * R + k to replica
 * k; rank 0 journals results.jsonl as rounds finish (a killed run resumes), then writes it in
 * item order, summary.json with the table task x length (RULER's string_match_all x 100,
 * printed too) and ruler.svg/.png. An item's prompt depends only on (seed, task, length,
 * trial) and greedy decoding only on the prompt, so the files do not depend on R or the TP
 * size. */
#include "cluster.h"
#include "eval.h"
#include "eval_job.h"
#include "infer.h"
#include "longctx_cli.h"
#include "plot.h"
#include "tokenizer.h"

#include <assert.h>
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_GRID = 100000, MAX_NEW = EVAL_RULER_NIAH_NEW };

#define RULER_LENGTHS "4096,8192,16384,32768,65536,131072" /* RULER's 4K..128K */

typedef struct {
    const char *model, *lengths_arg, *tasks_arg;
    long trials;
    unsigned long long seed;
    eval_job_opts j; /* the common options (eval_job.h) */
} ruler_args;

static void usage(FILE *f) {
    fprintf(f,
            "usage: longctx eval ruler --model PATH --output DIR [options]\n"
            "       (under mpirun/srun: ranks = replicas x --tp)\n\n"
            "RULER's synthetic probes (NVIDIA/RULER, REFERENCE.md 1.4), prompts of exactly the\n"
            "length in tokens (answer prefix included), greedy answers scored by RULER's\n"
            "string_match_all (the fraction of the expected answers found in the answer, any\n"
            "case; string_match_part too); the table shows the mean x 100 per task and length.\n"
            "  niah_single         a needle \"One of the special magic numbers for {key} is:\n"
            "                      {value}.\" (7 digits) among noise lines; %d new tokens\n"
            "  niah_single_uuid    the same with a uuid value\n"
            "  niah_multikey       4 needles of distinct keys, one queried (numbers)\n"
            "  niah_multikey_uuid  4 needles, uuid keys and values\n"
            "  vt                  variable tracking: a chain VAR A = 12345, VAR B = VAR A, ...\n"
            "                      (4 hops) among noise lines; all 5 names; %d new tokens\n"
            "  fwe                 frequent words: Zipf(2) counts of random 6-letter words;\n"
            "                      the top 3; %d new tokens\n\n"
            "  --model PATH         HF model directory or llama2.c .bin (required)\n"
            "  --output DIR         results.jsonl, summary.json, ruler.svg/.png (required); a\n"
            "                       rerun with the same options resumes\n"
            "  --tokenizer FILE     tokenizer.json or .model (default: the model directory's)\n"
            "  --lengths L,...      prompt lengths in tokens (default %s)\n"
            "  --tasks T,...        the tasks above (default: all six)\n"
            "  --trials N           trials per task and length (default 10; RULER: 500)\n"
            "  --seed S             the items' random choices (default 0)\n"
            "  --training-length N  the plot's note (default: the model's max "
            "positions)\n" EVAL_JOB_OPTIONS_HELP "  --help, --version\n",
            EVAL_RULER_NIAH_NEW, EVAL_RULER_VT_NEW, EVAL_RULER_FWE_NEW, RULER_LENGTHS);
}

/* the task's own options (eval_job_parse takes the common ones) */
enum { O_LEN = 256, O_TASKS, O_SEED, O_TRIALS };

static int task_opt(void *ctx, int c, const char *arg) {
    ruler_args *a = ctx;
    long v;
    int rc = 0;
    switch (c) {
    case 'm':
        a->model = arg;
        break;
    case O_LEN:
        a->lengths_arg = arg;
        break;
    case O_TASKS:
        a->tasks_arg = arg;
        break;
    case O_SEED:
        rc = eval_parse_long(a->j.cmd, arg, "--seed", 0, LONG_MAX, &v);
        a->seed = (unsigned long long)v;
        break;
    case O_TRIALS:
        rc = eval_parse_long(a->j.cmd, arg, "--trials", 1, MAX_GRID, &a->trials);
        break;
    }
    return rc;
}

/* options into a; -1 to go on, else an exit code. argv[0] is "ruler". */
static int ruler_parse(int argc, char **argv, ruler_args *a) {
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},       {"lengths", required_argument, 0, O_LEN},
        {"tasks", required_argument, 0, O_TASKS},   {"seed", required_argument, 0, O_SEED},
        {"trials", required_argument, 0, O_TRIALS}, {0, 0, 0, 0},
    };
    a->j = eval_job_opts_default("longctx eval ruler");
    a->trials = 10;
    const int rc = eval_job_parse(argc, argv, opts, &a->j, task_opt, a, usage);
    if (rc < 0 && !a->model) {
        fprintf(stderr, "longctx eval ruler: --model and --output are required\n");
        return EXIT_USAGE;
    }
    return rc;
}

/* ==== the grid ================================================================================*/

typedef struct {
    int task;
    size_t length;
    int trial;
} ruler_item;

typedef struct {
    ruler_item *items; /* (n) tasks outer, then lengths, then trials */
    size_t n;
    size_t *lengths; /* (n_lengths) */
    int tasks[EVAL_RULER_N_TASKS];
    size_t n_lengths, n_tasks;
} grid;

static int grid_make(const ruler_args *a, grid *g) {
    memset(g, 0, sizeof *g);
    const char *arg = a->lengths_arg ? a->lengths_arg : RULER_LENGTHS;
    for (const char *p = arg;;) { /* lengths: integers in [1, INT32_MAX / 2] */
        char *end;
        errno = 0;
        const long long v = strtoll(p, &end, 10);
        if (end == p || errno || v < 1 || v > INT32_MAX / 2 || (*end && *end != ',')) {
            fprintf(stderr,
                    "longctx eval ruler: --lengths '%s': '%.*s' is not an integer in "
                    "[1, %d]\n",
                    arg, (int)strcspn(p, ","), p, INT32_MAX / 2);
            return EXIT_USAGE;
        }
        size_t *q = realloc(g->lengths, (g->n_lengths + 1) * sizeof *q);
        if (!q)
            return EXIT_RUNTIME;
        g->lengths = q;
        g->lengths[g->n_lengths++] = (size_t)v;
        if (!*end)
            break;
        p = end + 1;
    }
    if (!a->tasks_arg) {
        for (int t = 0; t < EVAL_RULER_N_TASKS; t++)
            g->tasks[g->n_tasks++] = t;
    } else {
        for (const char *p = a->tasks_arg;;) {
            const size_t n = strcspn(p, ",");
            char name[64];
            snprintf(name, sizeof name, "%.*s", (int)(n < 63 ? n : 63), p);
            const int t = n < 63 ? eval_ruler_task_parse(name) : -1;
            int dup = 0;
            for (size_t i = 0; i < g->n_tasks; i++)
                dup |= g->tasks[i] == t;
            if (t < 0 || dup || g->n_tasks == EVAL_RULER_N_TASKS) {
                fprintf(stderr,
                        "longctx eval ruler: --tasks '%s': '%.*s' is %s (the tasks: "
                        "niah_single, niah_single_uuid, niah_multikey, niah_multikey_uuid, vt, "
                        "fwe)\n",
                        a->tasks_arg, (int)n, p, t < 0 ? "not a task" : "given twice");
                return EXIT_USAGE;
            }
            g->tasks[g->n_tasks++] = t;
            if (!p[n])
                break;
            p += n + 1;
        }
    }
    const size_t inner = (size_t)a->trials;
    if (g->n_tasks * g->n_lengths * inner > MAX_GRID) {
        fprintf(stderr, "longctx eval ruler: %zu items, more than %d\n",
                g->n_tasks * g->n_lengths * inner, MAX_GRID);
        return EXIT_USAGE;
    }
    g->n = g->n_tasks * g->n_lengths * inner;
    if (!(g->items = calloc(g->n ? g->n : 1, sizeof *g->items)))
        return EXIT_RUNTIME;
    size_t i = 0;
    for (size_t t = 0; t < g->n_tasks; t++)
        for (size_t l = 0; l < g->n_lengths; l++)
            for (size_t k = 0; k < inner; k++, i++)
                g->items[i] = (ruler_item){g->tasks[t], g->lengths[l], (int)k};
    return 0;
}

static void grid_free(grid *g) {
    free(g->items);
    free(g->lengths);
}

/* ==== the output directory ====================================================================*/

/* What makes two runs' items the same: a rerun resumes only with these equal. */
static char *config_json(const ruler_args *a, const grid *g, const tokenizer *tok) {
    json_object *o = json_object_new_object(), *ls = json_object_new_array(),
                *ts = json_object_new_array();
    json_object_object_add(o, "task", json_object_new_string("ruler"));
    json_object_object_add(o, "model", json_object_new_string(a->model));
    char hex[32];
    if (eval_model_hash_hex(a->model, hex) != 0) {
        json_object_put(o);
        json_object_put(ls);
        json_object_put(ts);
        return NULL;
    }
    json_object_object_add(o, "model_hash", json_object_new_string(hex));
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)tokenizer_checksum(tok));
    json_object_object_add(o, "tokenizer_xxh3", json_object_new_string(hex));
    for (size_t i = 0; i < g->n_lengths; i++)
        json_object_array_add(ls, json_object_new_int64((int64_t)g->lengths[i]));
    json_object_object_add(o, "lengths", ls);
    for (size_t i = 0; i < g->n_tasks; i++)
        json_object_array_add(ts, json_object_new_string(eval_ruler_task_name(g->tasks[i])));
    json_object_object_add(o, "tasks", ts);
    eval_run_opts_json(o, &a->j.run);
    json_object_object_add(o, "seed", json_object_new_uint64(a->seed));
    json_object_object_add(o, "trials", json_object_new_int64(a->trials));
    char *s = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY));
    json_object_put(o);
    return s;
}

/* 1 if line is the result of an item of this grid (its number in *item), else 0 */
static int line_matches(const char *line, void *ctx, uint64_t *item) {
    const grid *g = ctx;
    json_object *o = json_tokener_parse(line), *v;
    int ok = o && json_object_object_get_ex(o, "item", &v);
    if (ok) {
        const int64_t i = json_object_get_int64(v);
        ok = i >= 0 && (uint64_t)i < g->n;
        if (ok) {
            const ruler_item *it = &g->items[i];
            *item = (uint64_t)i;
            ok = json_object_object_get_ex(o, "length", &v) &&
                 (size_t)json_object_get_int64(v) == it->length &&
                 json_object_object_get_ex(o, "task", &v) &&
                 !strcmp(json_object_get_string(v), eval_ruler_task_name(it->task)) &&
                 json_object_object_get_ex(o, "trial", &v) && json_object_get_int64(v) == it->trial;
        }
    }
    json_object_put(o);
    return ok;
}

/* ==== one item ================================================================================*/

typedef struct {
    const ruler_args *a;
    const grid *g;
    eval_ruler *er;
    infer_state *s;
    const infer_config *cfg;
    eval_last_sink sink;
    void *work; /* infer_sample_work_bytes(V) */
} runner;

/* item i's result line into *line (malloc'd on every rank of the group); an exit code */
static int run_item(runner *r, uint64_t i, const ruler_item *it, char **line) {
    eval_ruler_prompt p;
    int st = eval_ruler_make(r->er, it->task, it->length, r->a->seed, (uint64_t)it->trial, &p);
    if (st != EVAL_OK) {
        LOG_ERROR("item %llu (%s, length %zu): %s: %s", (unsigned long long)i,
                  eval_ruler_task_name(it->task), it->length, eval_strerror(st),
                  eval_ruler_errmsg(r->er));
        return st == EVAL_ERR_ARG ? EXIT_USAGE : EXIT_RUNTIME;
    }
    for (size_t k = 0; k < p.n_ids; k++)
        if (p.ids[k] >= (uint32_t)r->cfg->vocab_size) {
            LOG_ERROR("the tokenizer's id %u is outside the model's vocabulary of %d: the "
                      "tokenizer is not the model's (--tokenizer)",
                      p.ids[k], r->cfg->vocab_size);
            eval_ruler_prompt_free(&p);
            return EXIT_USAGE;
        }
    uint32_t gen[MAX_NEW];
    int n_gen = 0, rc = 0;
    assert(p.n_new <= MAX_NEW);
    st = infer_prefill(r->s, p.ids, (int)p.n_ids, 0, NULL, eval_keep_row, &r->sink);
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
    if (rc == 0 && n_gen && eval_ruler_decode(r->er, gen, (size_t)n_gen, &ans, &n_ans) != EVAL_OK) {
        LOG_ERROR("item %llu: cannot decode the answer", (unsigned long long)i);
        rc = EXIT_RUNTIME;
    }
    /* a cut UTF-8 sequence (byte tokens) becomes U+FFFD (the scores see the same text; the ids
     * are in the line too) */
    char *clean = rc == 0 ? eval_utf8_clean(ans, n_ans, &n_ans) : NULL;
    if (rc == 0 && !clean)
        rc = EXIT_RUNTIME;
    if (clean)
        ans = clean;
    if (rc == 0) {
        const char *refs[EVAL_RULER_MAX_REFS];
        json_object *o = json_object_new_object(), *ids = json_object_new_array(),
                    *exp = json_object_new_array();
        for (int k = 0; k < p.n_refs; k++) {
            refs[k] = p.refs[k];
            json_object_array_add(exp, json_object_new_string(p.refs[k]));
        }
        json_object_object_add(o, "item", json_object_new_uint64(i));
        json_object_object_add(o, "task", json_object_new_string(eval_ruler_task_name(it->task)));
        json_object_object_add(o, "length", json_object_new_int64((int64_t)it->length));
        json_object_object_add(o, "trial", json_object_new_int(it->trial));
        json_object_object_add(o, "prompt_tokens", json_object_new_int64((int64_t)p.n_ids));
        if (p.needle_pos >= 0) {
            json_object_object_add(o, "needle_pos", json_object_new_int64(p.needle_pos));
            json_object_object_add(o, "needle_tokens",
                                   json_object_new_int64((int64_t)p.needle_tokens));
            json_object_object_add(o, "depth", json_object_new_double(p.depth));
        }
        if (p.query[0])
            json_object_object_add(o, "query", json_object_new_string(p.query));
        json_object_object_add(o, "expected", exp);
        json_object_object_add(o, "answer", json_object_new_string_len(ans, (int)n_ans));
        for (int k = 0; k < n_gen; k++)
            json_object_array_add(ids, json_object_new_int64(gen[k]));
        json_object_object_add(o, "answer_ids", ids);
        if (numeric)
            json_object_object_add(o, "error", json_object_new_string(numeric));
        json_object_object_add(
            o, "score",
            json_object_new_double(numeric ? 0 : eval_ruler_match_all(ans, n_ans, refs, p.n_refs)));
        json_object_object_add(
            o, "score_part",
            json_object_new_int(numeric ? 0 : eval_ruler_match_part(ans, n_ans, refs, p.n_refs)));
        *line = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
        json_object_put(o);
        if (!*line)
            rc = EXIT_RUNTIME;
    }
    free(clean);
    eval_ruler_prompt_free(&p);
    return rc;
}

static int run_one(void *ctx, uint64_t i, char **line) {
    runner *r = ctx;
    return run_item(r, i, &r->g->items[i], line);
}

/* ==== summary =================================================================================*/

/* summary.json, the table on stdout, ruler.svg/.png; rank 0. An exit code. */
static int write_summary(const ruler_args *a, const grid *g, char *const *lines, int train) {
    const size_t T = g->n_tasks, L = g->n_lengths, K = (size_t)a->trials;
    double *all = calloc(T * L, sizeof *all), *part = calloc(T * L, sizeof *part);
    double *avg = calloc(L, sizeof *avg);
    double *xs = calloc(L, sizeof *xs);
    const char *series[EVAL_RULER_N_TASKS];
    int rc = all && part && avg && xs ? 0 : EXIT_RUNTIME;
    for (size_t i = 0; rc == 0 && i < g->n; i++) { /* items: task, length, trial */
        all[i / K] += eval_line_number(lines[i], "score") * 100.0 / (double)K;
        part[i / K] += eval_line_number(lines[i], "score_part") * 100.0 / (double)K;
    }
    json_object *o = json_object_new_object(), *ls = json_object_new_array(),
                *tab = json_object_new_object(), *tab_p = json_object_new_object(),
                *av = json_object_new_array();
    json_object_object_add(o, "task", json_object_new_string("ruler"));
    json_object_object_add(o, "model", json_object_new_string(a->model));
    json_object_object_add(o, "items", json_object_new_int64((int64_t)g->n));
    json_object_object_add(o, "trials", json_object_new_int64(a->trials));
    json_object_object_add(o, "seed", json_object_new_uint64(a->seed));
    json_object_object_add(o, "training_length", json_object_new_int(train));
    for (size_t l = 0; l < L; l++)
        json_object_array_add(ls, json_object_new_int64((int64_t)g->lengths[l]));
    json_object_object_add(o, "lengths", ls);
    for (size_t t = 0; rc == 0 && t < T; t++) {
        json_object *ra = json_object_new_array(), *rp = json_object_new_array();
        for (size_t l = 0; l < L; l++) {
            json_object_array_add(ra, json_object_new_double(all[t * L + l]));
            json_object_array_add(rp, json_object_new_double(part[t * L + l]));
            avg[l] += all[t * L + l] / (double)T;
        }
        json_object_object_add(tab, eval_ruler_task_name(g->tasks[t]), ra);
        json_object_object_add(tab_p, eval_ruler_task_name(g->tasks[t]), rp);
    }
    for (size_t l = 0; rc == 0 && l < L; l++)
        json_object_array_add(av, json_object_new_double(avg[l]));
    json_object_object_add(o, "score", tab);
    json_object_object_add(o, "score_part", tab_p);
    json_object_object_add(o, "average", av);
    json_object_object_add(
        o, "score_note",
        json_object_new_string("RULER's string_match_all: per item the fraction of the expected "
                               "answers found in the answer (case-insensitive substrings), the "
                               "mean over trials x 100 per task and length; score_part is "
                               "string_match_part (any found) x 100; average is over the tasks"));
    if (rc == 0)
        rc = eval_write_json(a->j.output, "summary.json", o);
    json_object_put(o);
    if (rc == 0) { /* the table: RULER's, tasks down, lengths across */
        printf("%-20s", "string_match_all %");
        for (size_t l = 0; l < L; l++)
            printf(" %8zu", g->lengths[l]);
        printf("\n");
        for (size_t t = 0; t < T; t++) {
            printf("%-20s", eval_ruler_task_name(g->tasks[t]));
            for (size_t l = 0; l < L; l++)
                printf(" %8.1f", all[t * L + l]);
            printf("\n");
        }
        printf("%-20s", "average");
        for (size_t l = 0; l < L; l++)
            printf(" %8.1f", avg[l]);
        printf("\n");
        fflush(stdout);
    }
    /* the plot: a curve per task, the score against length */
    for (size_t l = 0; rc == 0 && l < L; l++)
        xs[l] = (double)g->lengths[l];
    for (size_t t = 0; t < T; t++)
        series[t] = eval_ruler_task_name(g->tasks[t]);
    if (rc == 0) {
        const plot_series pd = {
            .n_x = L, .x = xs, .n_series = T, .names = series, .v = all, .train = train};
        char err[512] = "";
        char *stem = eval_path(a->j.output, "ruler");
        const int st =
            stem ? plot_lines(&pd, PLOT_X_COLUMNS, PLOT_Y_RANGE, 100, "%", "RULER",
                              "prompt length (tokens)", "string_match_all", stem, err, sizeof err)
                 : PLOT_ERR_NOMEM;
        if (st != PLOT_OK) {
            LOG_ERROR("plot: %s: %s", plot_strerror(st), err);
            rc = EXIT_RUNTIME;
        }
        free(stem);
    }
    free(xs);
    free(all);
    free(part);
    free(avg);
    return rc;
}

/* ==== the job =================================================================================*/

static int ruler_job(void *ctx, const cluster_groups *cg) {
    const ruler_args *a = ctx;
    grid g;
    int rc = grid_make(a, &g);
    if (rc) {
        grid_free(&g);
        return rc;
    }
    tokenizer *tok = NULL;
    eval_ruler *er = NULL;
    rc = eval_tokenizer_load(&a->j, a->model, 1, &tok);
    int st;
    if (rc == 0 && (st = eval_ruler_create(tok, &er)) != EVAL_OK) {
        LOG_ERROR("%s: %s", eval_strerror(st), eval_ruler_errmsg(er));
        rc = EXIT_RUNTIME;
    }
    /* every item's prompt must be possible before any runs: a length too short for a task's
     * template is a usage error now, not after hours (trial 0 of each cell; the others differ
     * by a few tokens of keys at most, and fail the same way if they do) */
    for (size_t t = 0; rc == 0 && t < g.n_tasks; t++)
        for (size_t l = 0; rc == 0 && l < g.n_lengths; l++) {
            eval_ruler_prompt p;
            if ((st = eval_ruler_make(er, g.tasks[t], g.lengths[l], a->seed, 0, &p)) != EVAL_OK) {
                LOG_ERROR("--lengths %zu, task %s: %s", g.lengths[l],
                          eval_ruler_task_name(g.tasks[t]), eval_ruler_errmsg(er));
                rc = st == EVAL_ERR_ARG ? EXIT_USAGE : EXIT_RUNTIME;
            }
            eval_ruler_prompt_free(&p);
        }
    rc = cluster_agree_first(cg->world, rc);
    size_t max_len = 0;
    for (size_t l = 0; l < g.n_lengths; l++)
        max_len = g.lengths[l] > max_len ? g.lengths[l] : max_len;
    infer_opts o = a->j.run;
    o.max_ctx = (int)max_len + MAX_NEW;
    infer_model *m = NULL;
    infer_state *s = NULL;
    if (rc == 0)
        rc = eval_plan_check(&a->j, cg, a->model, o);
    if (rc == 0)
        rc = eval_model_open(&a->j, cg, a->model, o, &m, &s);
    const infer_config *cfg = rc == 0 ? infer_model_config(m) : NULL;
    const int train = a->j.training_length ? (int)a->j.training_length : cfg ? cfg->seq_len : 0;

    /* rank 0: the directory and the items done before; every rank learns which */
    char *config = rc == 0 && cg->rank == 0 ? config_json(a, &g, tok) : NULL;
    eval_out out;
    rc = eval_out_open(&out, cg, rc, a->j.output, config, g.n, line_matches, &g);
    uint64_t *pending = malloc((g.n ? g.n : 1) * sizeof *pending);
    const size_t n_pending = pending ? eval_out_pending(&out, 0, g.n, pending) : 0;
    if (rc == 0 && !pending)
        rc = EXIT_RUNTIME;
    LOG_INFO("ruler: %zu items (%zu tasks x %zu lengths x %ld trials), %zu done before, %zu to "
             "run on %d replica%s of tensor-parallel size %d",
             g.n, g.n_tasks, g.n_lengths, a->trials, g.n - n_pending, n_pending, cg->n_replicas,
             cg->n_replicas > 1 ? "s" : "", cg->tp_size);
    runner r = {a, &g, er, s, cfg, {NULL, cfg ? (size_t)cfg->vocab_size : 0}, NULL};
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
            eval_schedule_rr(pending, n_pending, (size_t)cg->n_replicas, &sched, &n_rounds));
    if (rc == 0)
        rc = eval_out_rounds(&out, cg, sched, n_rounds, run_one, &r, &n_ran);
    rc = eval_out_close(&out, cg, rc);
    if (rc == 0 && cg->rank == 0)
        rc = write_summary(a, &g, out.lines, train);
    rc = cluster_agree_first(cg->world, rc);
    if (rc == 0)
        LOG_INFO("%zu items in %.2f s; %s/results.jsonl, summary.json, ruler.svg, ruler.png",
                 n_pending, cluster_now() - t0, a->j.output);
    free(sched);
    eval_out_free(&out);
    free(pending);
    free(config);
    free(r.sink.row);
    free(r.work);
    infer_state_free(s);
    infer_model_free(m);
    eval_ruler_free(er);
    tokenizer_free(tok);
    grid_free(&g);
    return rc;
}

/* argv[0] is "ruler" (eval_main dispatches after MPI_Init); an exit code */
int eval_ruler_main(int argc, char **argv) {
    ruler_args a;
    memset(&a, 0, sizeof a);
    return eval_job_run(MPI_COMM_WORLD, ruler_parse(argc, argv, &a), &a.j, ruler_job, &a);
}
