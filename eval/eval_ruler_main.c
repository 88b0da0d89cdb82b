/* eval_ruler_main.c - `longctx eval ruler`: RULER's synthetic probes (eval.h) as one job over
 * replicas of tensor-parallel groups, the same machinery as eval_main.c's passkey and needle:
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
#include <sys/stat.h>
#include <unistd.h>

enum { EXIT_RUNTIME = 1, EXIT_USAGE = 2 };
enum { MAX_GRID = 100000, MAX_NEW = EVAL_RULER_NIAH_NEW };

#define RULER_LENGTHS "4096,8192,16384,32768,65536,131072" /* RULER's 4K..128K */

typedef struct {
    const char *model, *output, *tokenizer, *lengths_arg, *tasks_arg;
    long tp, trials, threads, training_length;
    unsigned long long seed;
    int verbose;
    infer_opts run; /* infer's run options (eval_job.h) */
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
            "  --tp P               tensor-parallel size of each replica (default 0: all ranks)\n"
            "  --training-length N  the plot's note (default: the model's max positions)\n"
            "  --threads N          threads per rank (default 1)\n" EVAL_RUN_OPTS_HELP
            "  -v, --verbose        debug logging\n"
            "  --help, --version\n",
            EVAL_RULER_NIAH_NEW, EVAL_RULER_VT_NEW, EVAL_RULER_FWE_NEW, RULER_LENGTHS);
}

static int parse_long(const char *s, const char *opt, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    const long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < lo || v > hi) {
        fprintf(stderr, "longctx eval ruler: %s '%s' is not an integer in [%ld, %ld]\n", opt, s, lo,
                hi);
        return EXIT_USAGE;
    }
    *out = v;
    return 0;
}

/* options into a; -1 to go on, else an exit code. argv[0] is "ruler". */
static int ruler_parse(int argc, char **argv, ruler_args *a) {
    enum { O_TOK = 256, O_LEN, O_TASKS, O_TP, O_SEED, O_TRIALS, O_TRAIN, O_THREADS, O_VER, O_RUN };
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},
        {"output", required_argument, 0, 'o'},
        {"tokenizer", required_argument, 0, O_TOK},
        {"lengths", required_argument, 0, O_LEN},
        {"tasks", required_argument, 0, O_TASKS},
        {"tp", required_argument, 0, O_TP},
        {"seed", required_argument, 0, O_SEED},
        {"trials", required_argument, 0, O_TRIALS},
        {"training-length", required_argument, 0, O_TRAIN},
        {"threads", required_argument, 0, O_THREADS},
        {"verbose", no_argument, 0, 'v'},
        {"help", no_argument, 0, 'h'},
        {"version", no_argument, 0, O_VER},
        EVAL_RUN_OPTS(O_RUN),
        {0, 0, 0, 0},
    };
    a->run = infer_opts_default();
    a->trials = 10;
    a->threads = 1;
    optind = 1;
    int c, rc;
    long v;
    int idx = 0;
    while ((c = getopt_long(argc, argv, "m:o:vh", opts, &idx)) != -1) {
        rc = 0;
        switch (c) {
        case O_RUN:
            if ((rc = eval_run_opt(opts[idx].name, optarg, &a->run)) != 0)
                return rc;
            break;
        case 'm':
            a->model = optarg;
            break;
        case 'o':
            a->output = optarg;
            break;
        case O_TOK:
            a->tokenizer = optarg;
            break;
        case O_LEN:
            a->lengths_arg = optarg;
            break;
        case O_TASKS:
            a->tasks_arg = optarg;
            break;
        case O_TP:
            rc = parse_long(optarg, "--tp", 0, 1 << 20, &a->tp);
            break;
        case O_SEED:
            rc = parse_long(optarg, "--seed", 0, LONG_MAX, &v);
            a->seed = (unsigned long long)v;
            break;
        case O_TRIALS:
            rc = parse_long(optarg, "--trials", 1, MAX_GRID, &a->trials);
            break;
        case O_TRAIN:
            rc = parse_long(optarg, "--training-length", 1, INT32_MAX, &a->training_length);
            break;
        case O_THREADS:
            rc = parse_long(optarg, "--threads", 1, 1024, &a->threads);
            break;
        case 'v':
            a->verbose = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case O_VER:
            printf("longctx %s\n", LONGCTX_VERSION);
            return 0;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
        if (rc)
            return rc;
    }
    if (optind < argc) {
        fprintf(stderr, "longctx eval ruler: unexpected argument '%s'\n", argv[optind]);
        return EXIT_USAGE;
    }
    if (!a->model || !a->output) {
        fprintf(stderr, "longctx eval ruler: --model and --output are required\n");
        return EXIT_USAGE;
    }
    return -1;
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
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)tokenizer_checksum(tok));
    json_object_object_add(o, "tokenizer_xxh3", json_object_new_string(hex));
    for (size_t i = 0; i < g->n_lengths; i++)
        json_object_array_add(ls, json_object_new_int64((int64_t)g->lengths[i]));
    json_object_object_add(o, "lengths", ls);
    for (size_t i = 0; i < g->n_tasks; i++)
        json_object_array_add(ts, json_object_new_string(eval_ruler_task_name(g->tasks[i])));
    json_object_object_add(o, "tasks", ts);
    eval_run_opts_json(o, &a->run);
    json_object_object_add(o, "seed", json_object_new_uint64(a->seed));
    json_object_object_add(o, "trials", json_object_new_int64(a->trials));
    char *s = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY));
    json_object_put(o);
    return s;
}

static char *dir_path(const char *dir, const char *name) {
    const size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* the whole file, NUL-terminated (malloc'd); NULL with errno (ENOENT: there is none) */
static char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, len = 0;
    char *b = malloc(cap);
    for (size_t got; b && (got = fread(b + len, 1, cap - len - 1, f)) > 0;) {
        len += got;
        if (cap - len < 2) {
            char *q = realloc(b, cap *= 2);
            if (!q)
                free(b);
            b = q;
        }
    }
    const int bad = ferror(f);
    fclose(f);
    if (!b || bad) {
        free(b);
        errno = b ? EIO : ENOMEM;
        return NULL;
    }
    b[len] = '\0';
    *n = len;
    return b;
}

/* 1 if line is the result of an item of this grid (its number in *item), else 0 */
static int line_matches(const char *line, const grid *g, uint64_t *item) {
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

/* Rank 0: the directory, its config (a rerun must match it), and the lines of items finished
 * before (lines[i], malloc'd; a last line cut by a kill is dropped and cut from the file). An
 * exit code. */
static int output_open(const ruler_args *a, const grid *g, const char *config, char **lines,
                       size_t *n_done) {
    *n_done = 0;
    if (mkdir(a->output, 0777) != 0 && errno != EEXIST) {
        LOG_ERROR("%s: %s", a->output, strerror(errno));
        return EXIT_RUNTIME;
    }
    char *cpath = dir_path(a->output, "config.json"), *rpath = dir_path(a->output, "results.jsonl");
    int rc = cpath && rpath ? 0 : EXIT_RUNTIME;
    size_t n;
    errno = 0;
    char *old = rc ? NULL : slurp(cpath, &n);
    if (rc == 0 && !old && errno != ENOENT) {
        LOG_ERROR("%s: %s", cpath, strerror(errno));
        rc = EXIT_RUNTIME;
    }
    if (rc == 0 && old && strcmp(old, config)) {
        LOG_ERROR("%s holds another run's configuration (task, model, tokenizer, lengths, tasks, "
                  "seed or trials differ): give another --output, or remove the directory to "
                  "start over",
                  cpath);
        rc = EXIT_USAGE;
    }
    if (rc == 0 && !old) {
        FILE *f = fopen(cpath, "wb");
        if (!f || fputs(config, f) < 0 || fclose(f) != 0) {
            LOG_ERROR("%s: %s", cpath, strerror(errno));
            rc = EXIT_RUNTIME;
        }
    }
    errno = 0;
    char *res = rc == 0 && old ? slurp(rpath, &n) : NULL;
    if (rc == 0 && old && !res && errno != ENOENT) {
        LOG_ERROR("%s: %s", rpath, strerror(errno));
        rc = EXIT_RUNTIME;
    }
    size_t keep = 0; /* bytes of whole lines */
    for (size_t at = 0, lineno = 1; res && at < n; lineno++) {
        char *nl = memchr(res + at, '\n', n - at);
        if (!nl)
            break; /* cut by a kill: dropped */
        *nl = '\0';
        uint64_t item;
        if (!line_matches(res + at, g, &item)) {
            LOG_ERROR("%s: line %zu is not an item of this run's grid", rpath, lineno);
            rc = EXIT_RUNTIME;
            break;
        }
        if (!lines[item]) {
            lines[item] = strdup(res + at);
            ++*n_done;
        }
        at = (size_t)(nl - res) + 1;
        keep = at;
    }
    if (rc == 0 && res && keep < n && truncate(rpath, (off_t)keep) != 0) {
        LOG_ERROR("%s: %s", rpath, strerror(errno));
        rc = EXIT_RUNTIME;
    }
    free(res);
    free(old);
    free(cpath);
    free(rpath);
    return rc;
}

/* ==== one item ================================================================================*/

typedef struct {
    float *row; /* (V) the last position's logits */
    size_t V;
} last_sink;

static int keep_row(void *ctx, int pos, const float *logits) {
    last_sink *k = ctx;
    (void)pos;
    memcpy(k->row, logits, k->V * sizeof *k->row);
    return infer_logits_find_nonfinite(logits, k->V) >= 0 ? INFER_ERR_NUMERIC : 0;
}

typedef struct {
    const ruler_args *a;
    eval_ruler *er;
    infer_state *s;
    const infer_config *cfg;
    last_sink sink;
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
    st = infer_prefill(r->s, p.ids, (int)p.n_ids, 0, NULL, keep_row, &r->sink);
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

/* ==== summary =================================================================================*/

static double line_number(const char *line, const char *key) {
    json_object *o = json_tokener_parse(line), *v;
    double x = NAN;
    if (o && json_object_object_get_ex(o, key, &v))
        x = json_object_get_double(v);
    json_object_put(o);
    return x;
}

/* summary.json, the table on stdout, ruler.svg/.png; rank 0. An exit code. */
static int write_summary(const ruler_args *a, const grid *g, char *const *lines, int train) {
    const size_t T = g->n_tasks, L = g->n_lengths, K = (size_t)a->trials;
    double *all = calloc(T * L, sizeof *all), *part = calloc(T * L, sizeof *part);
    double *avg = calloc(L, sizeof *avg);
    double *xs = calloc(L, sizeof *xs);
    const char *series[EVAL_RULER_N_TASKS];
    int rc = all && part && avg && xs ? 0 : EXIT_RUNTIME;
    for (size_t i = 0; rc == 0 && i < g->n; i++) { /* items: task, length, trial */
        all[i / K] += line_number(lines[i], "score") * 100.0 / (double)K;
        part[i / K] += line_number(lines[i], "score_part") * 100.0 / (double)K;
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
    char *path = dir_path(a->output, "summary.json");
    FILE *f = rc == 0 && path ? fopen(path, "wb") : NULL;
    if (rc == 0 &&
        (!f || fprintf(f, "%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY)) < 0 ||
         fclose(f) != 0)) {
        LOG_ERROR("%s: %s", path ? path : a->output, strerror(errno));
        rc = EXIT_RUNTIME;
    }
    free(path);
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
        char *stem = dir_path(a->output, "ruler");
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

/* results.jsonl in item order (a new file renamed over the journal); rank 0, an exit code */
static int write_sorted(const ruler_args *a, const grid *g, char *const *lines) {
    char *path = dir_path(a->output, "results.jsonl"), *tmp = dir_path(a->output, ".results.tmp");
    FILE *f = tmp ? fopen(tmp, "wb") : NULL;
    int rc = f ? 0 : EXIT_RUNTIME;
    for (size_t i = 0; rc == 0 && i < g->n; i++)
        if (fprintf(f, "%s\n", lines[i]) < 0)
            rc = EXIT_RUNTIME;
    if (f && (fflush(f) != 0 || fsync(fileno(f)) != 0 || fclose(f) != 0))
        rc = EXIT_RUNTIME;
    if (rc == 0 && rename(tmp, path) != 0)
        rc = EXIT_RUNTIME;
    if (rc)
        LOG_ERROR("%s: %s", path ? path : a->output, strerror(errno));
    free(path);
    free(tmp);
    return rc;
}

/* ==== the job =================================================================================*/

/* a failure on any rank, with the lowest failing rank's message logged by rank 0 */
static int world_failure(int rc) {
    int size, rank, failed = -1;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (size == 1)
        return rc;
    char msg[1024] = "", got[1024];
    if (rc)
        cluster_log_last_error(msg, sizeof msg);
    const int st = cluster_agree_msg(MPI_COMM_WORLD, rc ? -rc : 0, msg, got, sizeof got, &failed);
    if (st < 0 && rank == 0 && failed != 0)
        LOG_ERROR("rank %d failed: %s", failed, got[0] ? got : "(no message)");
    return st < 0 ? -st : 0;
}

static tokenizer *load_tokenizer(const ruler_args *a) {
    static const char *names[] = {"tokenizer.json", "tokenizer.model"};
    char path[4200];
    for (int i = 0; i < 2 || a->tokenizer; i++) {
        if (a->tokenizer)
            snprintf(path, sizeof path, "%s", a->tokenizer);
        else
            snprintf(path, sizeof path, "%s/%s", a->model, names[i]);
        if (!a->tokenizer && access(path, R_OK) != 0)
            continue;
        tokenizer *t;
        if (tokenizer_load(path, &t) == TOK_OK)
            return t;
        LOG_ERROR("%s: %s", path, tokenizer_errmsg(t));
        tokenizer_free(t);
        return NULL;
    }
    LOG_ERROR("%s has no tokenizer.json or tokenizer.model: give --tokenizer FILE", a->model);
    return NULL;
}

static int ruler_job(const ruler_args *a, const cluster_groups *cg) {
    grid g;
    int rc = grid_make(a, &g);
    if (rc) {
        grid_free(&g);
        return rc;
    }
    tokenizer *tok = load_tokenizer(a);
    eval_ruler *er = NULL;
    rc = tok ? 0 : EXIT_USAGE;
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
    rc = cluster_agree_first(MPI_COMM_WORLD, rc);
    infer_model *m = NULL;
    if (rc == 0 && (st = infer_model_load(a->model, cg->tp, &m)) != INFER_OK) {
        LOG_ERROR("%s: %s", infer_strerror(st), infer_model_errmsg(m));
        rc = st == INFER_ERR_ARG ? EXIT_USAGE : EXIT_RUNTIME;
    }
    rc = cluster_agree_first(MPI_COMM_WORLD, rc);
    const infer_config *cfg = rc == 0 ? infer_model_config(m) : NULL;
    const int train = a->training_length ? (int)a->training_length : cfg ? cfg->seq_len : 0;
    size_t max_len = 0;
    for (size_t l = 0; l < g.n_lengths; l++)
        max_len = g.lengths[l] > max_len ? g.lengths[l] : max_len;
    infer_opts o = a->run;
    o.max_ctx = (int)max_len + MAX_NEW;
    o.threads = (int)a->threads;
    infer_state *s = NULL;
    if (rc == 0) {
        char why[256];
        if (infer_opts_check(cfg, &o, cg->tp_size, why, sizeof why) != INFER_OK) {
            LOG_ERROR("%s", why);
            rc = EXIT_USAGE;
        } else if ((st = infer_state_create(m, &o, cg->tp, &s)) != INFER_OK) {
            LOG_ERROR("cannot create the state for %d positions: %s", o.max_ctx,
                      infer_strerror(st));
            rc = EXIT_RUNTIME;
        }
    }
    rc = cluster_agree_first(MPI_COMM_WORLD, rc);

    /* rank 0: the directory and the items done before; every rank learns which */
    char **lines = calloc(g.n ? g.n : 1, sizeof *lines);
    uint8_t *done = calloc(g.n ? g.n : 1, 1);
    char *config = rc == 0 ? config_json(a, &g, tok) : NULL;
    size_t n_done = 0;
    if (rc == 0 && (!lines || !done || !config))
        rc = EXIT_RUNTIME;
    if (rc == 0 && cg->rank == 0)
        rc = output_open(a, &g, config, lines, &n_done);
    rc = cluster_agree_first(MPI_COMM_WORLD, rc);
    if (rc == 0 && cg->rank == 0)
        for (size_t i = 0; i < g.n; i++)
            done[i] = lines[i] != NULL;
    if (rc == 0)
        MPI_Bcast(done, (int)g.n, MPI_UINT8_T, 0, MPI_COMM_WORLD);
    uint64_t *pending = malloc((g.n ? g.n : 1) * sizeof *pending);
    size_t n_pending = 0;
    for (size_t i = 0; pending && i < g.n; i++)
        if (!done[i])
            pending[n_pending++] = i;
    if (rc == 0 && !pending)
        rc = EXIT_RUNTIME;
    LOG_INFO("ruler: %zu items (%zu tasks x %zu lengths x %ld trials), %zu done before, %zu to "
             "run on %d replica%s of tensor-parallel size %d",
             g.n, g.n_tasks, g.n_lengths, a->trials, g.n - n_pending, n_pending, cg->n_replicas,
             cg->n_replicas > 1 ? "s" : "", cg->tp_size);

    FILE *journal = NULL;
    char *rpath = dir_path(a->output, "results.jsonl");
    if (rc == 0 && cg->rank == 0 && !(journal = fopen(rpath, "ab"))) {
        LOG_ERROR("%s: %s", rpath, strerror(errno));
        rc = EXIT_RUNTIME;
    }
    rc = cluster_agree_first(MPI_COMM_WORLD, rc);
    runner r = {a, er, s, cfg, {NULL, cfg ? (size_t)cfg->vocab_size : 0}, NULL};
    if (rc == 0) {
        r.sink.row = malloc(r.sink.V * sizeof *r.sink.row);
        r.work = malloc(infer_sample_work_bytes((int)r.sink.V));
        rc = cluster_agree_first(MPI_COMM_WORLD, !r.sink.row || !r.work ? EXIT_RUNTIME : 0);
    }
    const double t0 = cluster_now();
    const size_t R = (size_t)cg->n_replicas;
    for (size_t round = 0; rc == 0 && round * R < n_pending; round++) {
        const size_t k = round * R + (size_t)cg->replica;
        char *line = NULL;
        cluster_records mine = {0};
        if (k < n_pending) {
            rc = run_item(&r, pending[k], &g.items[pending[k]], &line);
            rc = cluster_agree_first(cg->tp, rc);
            if (rc == 0 && cg->tp_rank == 0 &&
                cluster_records_add(&mine, pending[k], line, strlen(line)) != CLUSTER_OK)
                rc = EXIT_RUNTIME;
        }
        free(line);
        rc = world_failure(rc);
        char *all = NULL;
        size_t n_all = 0;
        if (rc == 0 && (st = cluster_records_gather(MPI_COMM_WORLD, &mine, &all, &n_all))) {
            LOG_ERROR("cannot gather the results on rank 0: %s", cluster_strerror(st));
            rc = EXIT_RUNTIME;
        }
        cluster_records_free(&mine);
        const char **rec = NULL;
        if (rc == 0 && cg->rank == 0 && cluster_records_index(all, n_all, g.n, &rec) != 0)
            rc = EXIT_RUNTIME;
        for (size_t j = round * R; rc == 0 && cg->rank == 0 && j < (round + 1) * R && j < n_pending;
             j++) {
            const uint64_t i = pending[j];
            uint64_t n;
            const char *b = rec[i] ? cluster_record_bytes(rec[i], &n) : NULL;
            if (!b || !(lines[i] = strndup(b, (size_t)n)) || fprintf(journal, "%s\n", lines[i]) < 0)
                rc = EXIT_RUNTIME;
        }
        /* the round's lines reach the disk before the next round: a kill loses at most one */
        if (rc == 0 && cg->rank == 0 && (fflush(journal) != 0 || fsync(fileno(journal)) != 0))
            rc = EXIT_RUNTIME;
        if (rc && cg->rank == 0 && all)
            LOG_ERROR("%s: %s", rpath, errno ? strerror(errno) : "a result is missing");
        free(rec);
        free(all);
        rc = cluster_agree_first(MPI_COMM_WORLD, rc);
        if (rc == 0 && cluster_stop_agreed(MPI_COMM_WORLD)) {
            LOG_WARN("stopped by a signal after %zu of %zu items; rerun to resume",
                     g.n - n_pending + (round + 1) * R, g.n);
            rc = EXIT_RUNTIME;
        }
    }
    if (journal && fclose(journal) != 0 && rc == 0) {
        LOG_ERROR("%s: %s", rpath, strerror(errno));
        rc = EXIT_RUNTIME;
    }
    if (rc == 0 && cg->rank == 0) {
        rc = write_sorted(a, &g, lines);
        if (rc == 0)
            rc = write_summary(a, &g, lines, train);
    }
    rc = cluster_agree_first(MPI_COMM_WORLD, rc);
    if (rc == 0)
        LOG_INFO("%zu items in %.2f s; %s/results.jsonl, summary.json, ruler.svg, ruler.png",
                 n_pending, cluster_now() - t0, a->output);
    for (size_t i = 0; lines && i < g.n; i++)
        free(lines[i]);
    free(lines);
    free(done);
    free(pending);
    free(config);
    free(rpath);
    free(r.sink.row);
    free(r.work);
    infer_state_free(s);
    infer_model_free(m);
    eval_ruler_free(er);
    tokenizer_free(tok);
    grid_free(&g);
    return rc;
}

/* argv[0] is "eval", argv[1] "ruler". Every rank parses; rank 0 alone prints (as eval_main). */
int eval_ruler_main(int argc, char **argv) {
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
    ruler_args a = {0};
    rc = ruler_parse(argc - 1, argv + 1, &a);
    cluster_groups cg;
    if (rc < 0 && cluster_groups_make(MPI_COMM_WORLD, (int)a.tp, &cg) != CLUSTER_OK) {
        fprintf(stderr,
                "longctx eval ruler: --tp %ld must divide the %d MPI ranks (world size = "
                "replicas x tensor-parallel size)\n",
                a.tp, cg.size);
        rc = EXIT_USAGE;
    }
    if (rc < 0) {
        cluster_log_setup("eval", cg.rank, cg.size,
                          a.verbose ? CLUSTER_LOG_DEBUG : CLUSTER_LOG_INFO);
        cluster_signals_install();
        rc = ruler_job(&a, &cg);
        cluster_groups_free(&cg);
    }
    MPI_Finalize();
    return rc;
}
