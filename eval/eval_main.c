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
#include <fcntl.h>
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

int eval_ppl_main(int argc, char **argv); /* eval_ppl_main.c: ppl-vs-length */
enum { MAX_HAYSTACKS = 4096, MAX_GRID = 100000 };

#define PASSKEY_LENGTHS "1024,2048,4096,8192"
#define NEEDLE_DEPTHS   "0,11,22,33,44,56,67,78,89,100" /* round(linspace(0, 100, 10)) */

typedef struct {
    int task; /* eval_task */
    const char *model, *output, *tokenizer, *lengths_arg, *depths_arg;
    const char *haystack[MAX_HAYSTACKS];
    int n_haystack;
    long tp, trials, threads, training_length;
    unsigned long long seed;
    int verbose;
    int no_reuse;   /* --no-prefix-reuse */
    infer_opts run; /* --kv-dtype, --act-dtype, --prefill-chunk, --mem-topk (infer_opts_parse) */
} eval_args;

int eval_generate(infer_state *s, const infer_config *cfg, int prefill_st, const float *row, int V,
                  void *work, int n_prompt, int n_new, uint32_t *gen, int *n_gen,
                  const char **numeric, unsigned long long item) {
    /* non-finite logits end the item, not the job: it is recorded with the error and score 0
     * (a model that overflows at long lengths is what these grids measure), and a rerun does not
     * stop on it again */
    *n_gen = 0;
    *numeric = prefill_st == INFER_ERR_NUMERIC ? "non-finite logits in the prefill" : NULL;
    uint64_t rng = 0; /* greedy: unused */
    uint32_t next = *numeric ? 0 : (uint32_t)infer_sample(row, V, 0.0f, 0, 1.0f, &rng, work);
    while (!*numeric && *n_gen < n_new && (int64_t)next != cfg->eos_id) {
        gen[(*n_gen)++] = next;
        if (*n_gen == n_new)
            break;
        const int st =
            infer_forward_sample(s, next, n_prompt + *n_gen - 1, 0.0f, 0, 1.0f, &rng, &next);
        if (st == INFER_ERR_NUMERIC) {
            *numeric = "non-finite logits in the decode";
        } else if (st != INFER_OK) {
            LOG_ERROR("item %llu: decode: %s", item, infer_strerror(st));
            return EXIT_RUNTIME;
        }
    }
    if (*numeric) {
        LOG_WARN("item %llu: %s: recorded with score 0", item, *numeric);
        *n_gen = 0;
    }
    return 0;
}

char *eval_utf8_clean(const char *text, size_t n, size_t *out_n) {
    char *clean = malloc(3 * n + 1);
    if (!clean)
        return NULL;
    size_t k = 0;
    for (size_t at = 0; at < n;) {
        uint32_t cp;
        const size_t len = tok_utf8_next((const unsigned char *)text + at, n - at, &cp);
        if (cp == TOK_INVALID_CP) {
            memcpy(clean + k, "\xef\xbf\xbd", 3);
            k += 3;
        } else {
            memcpy(clean + k, text + at, len);
            k += len;
        }
        at += len;
    }
    clean[k] = '\0';
    *out_n = k;
    return clean;
}

int eval_run_opt(const char *name, const char *value, infer_opts *r) {
    char err[256];
    if (infer_opts_parse(r, name, value, err, sizeof err) == INFER_OK)
        return 0;
    fprintf(stderr, "longctx eval: %s\n", err);
    return EXIT_USAGE;
}

void eval_run_opts_json(json_object *o, const infer_opts *r) {
    json_object_object_add(o, "kv_dtype",
                           json_object_new_string(r->kv_dtype == INFER_DT_F32 ? "f32" : "bf16"));
    json_object_object_add(o, "act_dtype", json_object_new_string(infer_act_name(r->act_dtype)));
    json_object_object_add(o, "prefill_chunk", json_object_new_int(r->prefill_chunk));
    json_object_object_add(o, "mem_topk", json_object_new_int(r->mem_topk));
}

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
            "  --tp P               tensor-parallel size of each replica (default 0: all ranks)\n"
            "  --seed S             passkey keys and depths (default 0)\n"
            "  --trials N           passkey: trials per length (default 10)\n"
            "  --haystack FILE      needle: a text file of the haystack (repeatable, required)\n"
            "  --depths D,...       needle: depths in percent (default %s)\n"
            "  --training-length N  the plots' line (default: the model's max positions)\n"
            "  --threads N          threads per rank (default 1)\n" EVAL_RUN_OPTS_HELP
            "  --no-prefix-reuse    prefill every prompt from position 0 (by default a\n"
            "                       replica runs a length's items in order and reuses the\n"
            "                       KV cache of the prefix shared with the prompt before:\n"
            "                       the same results, less prefill)\n"
            "  -v, --verbose        debug logging\n"
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

static int parse_long(const char *s, const char *opt, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    const long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < lo || v > hi) {
        fprintf(stderr, "longctx eval: %s '%s' is not an integer in [%ld, %ld]\n", opt, s, lo, hi);
        return EXIT_USAGE;
    }
    *out = v;
    return 0;
}

/* options into a; -1 to go on, else an exit code */
static int eval_parse(int argc, char **argv, eval_args *a) {
    enum {
        O_TOK = 256,
        O_LEN,
        O_TP,
        O_SEED,
        O_TRIALS,
        O_HAY,
        O_DEPTHS,
        O_TRAIN,
        O_THREADS,
        O_VER,
        O_NOREUSE,
        O_RUN /* a run option of infer's: infer_opts_parse by its name */
    };
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},
        {"output", required_argument, 0, 'o'},
        {"tokenizer", required_argument, 0, O_TOK},
        {"lengths", required_argument, 0, O_LEN},
        {"tp", required_argument, 0, O_TP},
        {"seed", required_argument, 0, O_SEED},
        {"trials", required_argument, 0, O_TRIALS},
        {"haystack", required_argument, 0, O_HAY},
        {"depths", required_argument, 0, O_DEPTHS},
        {"training-length", required_argument, 0, O_TRAIN},
        {"threads", required_argument, 0, O_THREADS},
        {"verbose", no_argument, 0, 'v'},
        {"help", no_argument, 0, 'h'},
        {"version", no_argument, 0, O_VER},
        {"no-prefix-reuse", no_argument, 0, O_NOREUSE},
        EVAL_RUN_OPTS(O_RUN),
        {0, 0, 0, 0},
    };
    a->run = infer_opts_default();
    a->trials = 10;
    a->threads = 1;
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
    argc--;
    argv++;
    optind = 1;
    int c, rc;
    long v;
    int idx = 0;
    while ((c = getopt_long(argc, argv, "m:o:vh", opts, &idx)) != -1) {
        rc = 0;
        switch (c) {
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
        case O_HAY:
            if (a->n_haystack == MAX_HAYSTACKS) {
                fprintf(stderr, "longctx eval: more than %d --haystack files\n", MAX_HAYSTACKS);
                return EXIT_USAGE;
            }
            a->haystack[a->n_haystack++] = optarg;
            break;
        case O_DEPTHS:
            a->depths_arg = optarg;
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
        case O_NOREUSE:
            a->no_reuse = 1;
            break;
        case O_RUN:
            if ((rc = eval_run_opt(opts[idx].name, optarg, &a->run)) != 0)
                return rc;
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
        fprintf(stderr, "longctx eval: unexpected argument '%s'\n", argv[optind]);
        return EXIT_USAGE;
    }
    if (!a->model || !a->output) {
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
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)tokenizer_checksum(tok));
    json_object_object_add(o, "tokenizer_xxh3", json_object_new_string(hex));
    for (size_t i = 0; i < g->n_lengths; i++)
        json_object_array_add(ls, json_object_new_int64((int64_t)g->lengths[i]));
    json_object_object_add(o, "lengths", ls);
    eval_run_opts_json(o, &a->run);
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
            if (!q) {
                free(b);
                b = NULL;
            }
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
static int line_matches(const char *line, size_t n, const grid *g, const eval_args *a,
                        uint64_t *item) {
    json_object *o = json_tokener_parse(line);
    (void)n;
    json_object *v;
    int ok = o && json_object_object_get_ex(o, "item", &v);
    if (ok) {
        const int64_t i = json_object_get_int64(v);
        ok = i >= 0 && (uint64_t)i < g->n;
        if (ok) {
            const eval_item *it = &g->items[i];
            *item = (uint64_t)i;
            ok = json_object_object_get_ex(o, "length", &v) &&
                 (size_t)json_object_get_int64(v) == it->length &&
                 json_object_object_get_ex(o, "task", &v) &&
                 !strcmp(json_object_get_string(v), task_name(a->task));
            if (ok && a->task == EVAL_TASK_PASSKEY)
                ok = json_object_object_get_ex(o, "trial", &v) &&
                     json_object_get_int64(v) == it->trial;
            if (ok && a->task == EVAL_TASK_NEEDLE)
                ok = json_object_object_get_ex(o, "depth", &v) &&
                     json_object_get_double(v) == it->depth;
        }
    }
    json_object_put(o);
    return ok;
}

/* Rank 0: the directory, its config (a rerun must match it), and the lines of items finished
 * before (lines[i], malloc'd; a last line cut by a kill is dropped and cut from the file). An
 * exit code. */
static int output_open(const eval_args *a, const grid *g, const char *config, char **lines,
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
        LOG_ERROR("%s holds another run's configuration (task, model, tokenizer, lengths, seed, "
                  "trials, depths or haystack differ): give another --output, or remove the "
                  "directory to start over",
                  cpath);
        rc = EXIT_USAGE;
    }
    struct stat sb;
    if (rc == 0 && !old && stat(rpath, &sb) == 0) { /* a journal of unknown origin: not ours */
        LOG_ERROR("%s exists but %s does not: results of another run; give another --output, or "
                  "remove them to start over",
                  rpath, cpath);
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
        if (!line_matches(res + at, (size_t)(nl - res - at), g, a, &item)) {
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
    const eval_args *a;
    eval_ctx *ec;
    const eval_haystack *h;
    infer_state *s;
    const infer_config *cfg;
    last_sink sink;
    void *work; /* infer_sample_work_bytes(V) */
    /* prefix reuse: the prompt that ran last on s (prev, n_prev; NULL: none or reuse off) and
     * this group's counts of prompt tokens and of those prefilled */
    uint32_t *prev;
    size_t n_prev;
    uint64_t prompt_tokens, prefilled;
} runner;

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
    st = infer_prefill(r->s, p.ids + pos0, (int)p.n_ids - pos0, pos0, NULL, keep_row, &r->sink);
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

/* ==== summary =================================================================================*/

static double line_number(const char *line, const char *key) {
    json_object *o = json_tokener_parse(line), *v;
    double x = NAN;
    if (o && json_object_object_get_ex(o, key, &v))
        x = json_object_get_double(v);
    json_object_put(o);
    return x;
}

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
        score[i] = line_number(lines[i], "score");
        sub[i] = a->task == EVAL_TASK_NEEDLE ? line_number(lines[i], "substring") : 0;
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
    char *path = dir_path(a->output, "summary.json");
    FILE *f = path ? fopen(path, "wb") : NULL;
    int rc = 0;
    if (!f || fprintf(f, "%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY)) < 0 ||
        fclose(f) != 0) {
        LOG_ERROR("%s: %s", path ? path : a->output, strerror(errno));
        rc = EXIT_RUNTIME;
    }
    free(path);
    json_object_put(o);
    if (rc == 0 && means) {
        char base[64];
        snprintf(base, sizeof base, "%s", task_name(a->task));
        char *stem = dir_path(a->output, base);
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

/* results.jsonl in item order (a new file renamed over the journal); rank 0, an exit code */
static int write_sorted(const eval_args *a, const grid *g, char *const *lines) {
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

enum { NO_ITEM = -1 };

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

/* Who runs what: sched[round * R + replica] is an item or NO_ITEM, n_rounds rounds. Reuse off:
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
            (*sched)[j] = j < n_pending ? (int64_t)pending[j] : NO_ITEM;
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
        (*sched)[j] = NO_ITEM;
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

static tokenizer *load_tokenizer(const eval_args *a) {
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

static int eval_job(const eval_args *a, const cluster_groups *cg) {
    grid g;
    int rc = grid_make(a, &g);
    if (rc) {
        grid_free(&g);
        return rc;
    }
    tokenizer *tok = load_tokenizer(a);
    eval_ctx *ec = NULL;
    eval_haystack *h = NULL;
    rc = tok ? 0 : EXIT_USAGE;
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
        max_len = (size_t)g.lengths[l] > max_len ? (size_t)g.lengths[l] : max_len;
    infer_opts o = a->run;
    o.max_ctx = (int)max_len + EVAL_NEEDLE_NEW;
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
    char *config = rc == 0 ? config_json(a, &g, tok, h) : NULL;
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
    LOG_INFO("%s: %zu items (%zu lengths x %zu), %zu done before, %zu to run on %d replica%s of "
             "tensor-parallel size %d",
             task_name(a->task), g.n, g.n_lengths, g.n_lengths ? g.n / g.n_lengths : 0,
             g.n - n_pending, n_pending, cg->n_replicas, cg->n_replicas > 1 ? "s" : "",
             cg->tp_size);

    FILE *journal = NULL;
    char *rpath = dir_path(a->output, "results.jsonl");
    if (rc == 0 && cg->rank == 0 && !(journal = fopen(rpath, "ab"))) {
        LOG_ERROR("%s: %s", rpath, strerror(errno));
        rc = EXIT_RUNTIME;
    }
    rc = cluster_agree_first(MPI_COMM_WORLD, rc);
    runner r = {a, ec, h, s, cfg, {NULL, cfg ? (size_t)cfg->vocab_size : 0}, NULL, NULL, 0, 0, 0};
    if (rc == 0) {
        r.sink.row = malloc(r.sink.V * sizeof *r.sink.row);
        r.work = malloc(infer_sample_work_bytes((int)r.sink.V));
        rc = cluster_agree_first(MPI_COMM_WORLD, !r.sink.row || !r.work ? EXIT_RUNTIME : 0);
    }
    const double t0 = cluster_now();
    const size_t R = (size_t)cg->n_replicas;
    int64_t *sched = NULL;
    size_t n_rounds = 0, n_ran = 0;
    if (rc == 0)
        rc = cluster_agree_first(MPI_COMM_WORLD,
                                 schedule_make(a, &g, pending, n_pending, R, &sched, &n_rounds));
    for (size_t round = 0; rc == 0 && round < n_rounds; round++) {
        const int64_t k = sched[round * R + (size_t)cg->replica];
        char *line = NULL;
        cluster_records mine = {0};
        if (k != NO_ITEM) {
            rc = run_item(&r, (uint64_t)k, &g.items[k], &line);
            rc = cluster_agree_first(cg->tp, rc);
            if (rc == 0 && cg->tp_rank == 0 &&
                cluster_records_add(&mine, (uint64_t)k, line, strlen(line)) != CLUSTER_OK)
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
        for (size_t j = round * R; rc == 0 && j < (round + 1) * R; j++) {
            if (sched[j] == NO_ITEM)
                continue;
            n_ran++;
            if (cg->rank != 0)
                continue;
            const uint64_t i = (uint64_t)sched[j];
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
                     g.n - n_pending + n_ran, g.n);
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
    /* prompt tokens and those prefilled, summed over the replicas (one rank of each group) */
    uint64_t counts[2] = {cg->tp_rank == 0 ? r.prompt_tokens : 0,
                          cg->tp_rank == 0 ? r.prefilled : 0},
             sum[2] = {0, 0};
    MPI_Allreduce(counts, sum, 2, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD);
    const double secs = cluster_now() - t0;
    if (rc == 0)
        LOG_INFO("%zu items in %.2f s (%.3f items/s); prefilled %llu of %llu prompt tokens (%s); "
                 "%s/results.jsonl, summary.json, %s.svg, %s.png",
                 n_pending, secs, secs > 0 ? (double)n_pending / secs : 0.0,
                 (unsigned long long)sum[1], (unsigned long long)sum[0],
                 a->no_reuse ? "prefix reuse off" : "the rest reused from the prompt before",
                 a->output, task_name(a->task), task_name(a->task));
    free(sched);
    free(r.prev);
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
    eval_haystack_free(h);
    eval_ctx_free(ec);
    tokenizer_free(tok);
    grid_free(&g);
    return rc;
}

/* Every rank parses; rank 0 alone prints (the others' stdout and stderr go to /dev/null unless
 * LONGCTX_LOG_RANKS=all: failures reach rank 0 by agreement). */
int eval_main(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "ruler")) /* its own job: eval_ruler_main.c */
        return eval_ruler_main(argc, argv);
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
        MPI_Finalize();
        return rc;
    }
    eval_args a = {0};
    rc = eval_parse(argc, argv, &a);
    cluster_groups cg;
    if (rc < 0 && cluster_groups_make(MPI_COMM_WORLD, (int)a.tp, &cg) != CLUSTER_OK) {
        fprintf(stderr,
                "longctx eval: --tp %ld must divide the %d MPI ranks (world size = replicas x "
                "tensor-parallel size)\n",
                a.tp, cg.size);
        rc = EXIT_USAGE;
    }
    if (rc < 0) {
        cluster_log_setup("eval", cg.rank, cg.size,
                          a.verbose ? CLUSTER_LOG_DEBUG : CLUSTER_LOG_INFO);
        cluster_signals_install();
        rc = eval_job(&a, &cg);
        cluster_groups_free(&cg);
    }
    MPI_Finalize();
    return rc;
}
