/* eval_ppl_main.c - `longctx eval ppl-vs-length`: items (model x document x length, lengths
 * innermost) handed to replicas (tensor-parallel groups) in rounds as eval_main.c hands its
 * grid; a replica loads each model once and scores that model's pending items; rank 0 journals
 * each round's lines (a killed run resumes from results.jsonl), then writes the file in item
 * order, summary.json (mean loss of the last N and perplexity per model per length) and
 * ppl-vs-length.svg/.png (one curve per model). An item's line depends on the model, the
 * document and the length only, so the files do not depend on the number of replicas; with
 * another TP size the sums of the split matrices round differently (1e-5 relative in the
 * logits, tests/infer/test_tp_forward.c), so the losses agree to that, not bit for bit. */
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
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* called by eval_main after MPI_Init with argv[0] = "ppl-vs-length"; an exit code */
int eval_ppl_main(int argc, char **argv);

enum { EXIT_RUNTIME = 1, EXIT_USAGE = 2 };
enum { MAX_MODELS = 16, MAX_INPUTS = 4096, MAX_LENGTHS = 64, MAX_ITEMS = 1000000 };
#define TASK "ppl-vs-length"

typedef struct {
    const char *model[MAX_MODELS], *input[MAX_INPUTS];
    int n_model, n_input;
    const char *output, *tokenizer;
    long lengths[MAX_LENGTHS];
    int n_lengths;
    long last, tp, threads, docs, training_length;
    int verbose;
    infer_opts run; /* infer's run options (eval_job.h) */
} ppl_args;

static void usage(FILE *f) {
    fprintf(f,
            "usage: longctx eval ppl-vs-length --model PATH [--model PATH2 ...] --input FILE...\n"
            "                                  --output DIR [options]\n"
            "       (under mpirun/srun: ranks = replicas x --tp)\n\n"
            "Per-token loss of long documents against context length: for every document of at\n"
            "least max(L) + 1 tokens and every length L, the window of the L tokens before\n"
            "position max(L) is fed to the model and each next token scored; the loss of the\n"
            "last N targets (the same tokens at every L: what more context buys them) and the\n"
            "loss by position in the window (buckets 0-127, 128-255, 256-511, ...). Each window\n"
            "is `longctx perplexity --ctx L+1` on those L+1 tokens.\n\n"
            "  --model PATH         HF model directory or llama2.c .bin (required; repeat it to\n"
            "                       compare models, e.g. base and continually pretrained: one\n"
            "                       curve each; they share the tokenizer)\n"
            "  --input FILE         documents (repeatable): .jsonl (\"text\" or \"ids\"), .u32,\n"
            "                       a longctx .shard (prep's output: documents rebuilt from\n"
            "                       their pieces), or any other file as one text document\n"
            "  --output DIR         results.jsonl, summary.json, ppl-vs-length.svg/.png\n"
            "                       (required); a rerun with the same options resumes\n"
            "  --lengths L,...      context lengths in tokens (default 4096,8192,...,131072)\n"
            "  --last N             targets scored at every length (default 1024; <= min L)\n"
            "  --docs N             at most N documents (the first long enough; default all)\n"
            "  --tokenizer FILE     for text inputs (default: the first model directory's)\n"
            "  --tp P               tensor-parallel size of each replica (default 0: all ranks)\n"
            "  --training-length N  the plot's line (default: the first model's max positions)\n"
            "  --threads N          threads per rank (default 1)\n" EVAL_RUN_OPTS_HELP
            "  -v, --verbose        debug logging\n"
            "  --help\n");
}

static int parse_long(const char *s, const char *opt, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    const long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < lo || v > hi) {
        fprintf(stderr, "longctx eval " TASK ": %s '%s' is not an integer in [%ld, %ld]\n", opt, s,
                lo, hi);
        return EXIT_USAGE;
    }
    *out = v;
    return 0;
}

static int parse_lengths(const char *arg, ppl_args *a) {
    a->n_lengths = 0;
    const char *p = arg;
    for (;;) {
        char *end;
        errno = 0;
        const long v = strtol(p, &end, 10);
        if (end == p || errno || v < 2 || v > (1L << 30) || (*end && *end != ',') ||
            (a->n_lengths && v <= a->lengths[a->n_lengths - 1]) || a->n_lengths == MAX_LENGTHS) {
            fprintf(stderr,
                    "longctx eval " TASK ": --lengths '%s': '%.*s' is not an increasing length "
                    "in [2, 2^30] (at most %d lengths)\n",
                    arg, (int)strcspn(p, ","), p, MAX_LENGTHS);
            return EXIT_USAGE;
        }
        a->lengths[a->n_lengths++] = v;
        if (!*end)
            return 0;
        p = end + 1;
    }
}

/* options into a (argv[0] is the task); -1 to go on, else an exit code */
static int parse(int argc, char **argv, ppl_args *a) {
    enum { O_IN = 256, O_TOK, O_LEN, O_LAST, O_DOCS, O_TP, O_TRAIN, O_THREADS, O_RUN };
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},
        {"input", required_argument, 0, O_IN},
        {"output", required_argument, 0, 'o'},
        {"tokenizer", required_argument, 0, O_TOK},
        {"lengths", required_argument, 0, O_LEN},
        {"last", required_argument, 0, O_LAST},
        {"docs", required_argument, 0, O_DOCS},
        {"tp", required_argument, 0, O_TP},
        {"training-length", required_argument, 0, O_TRAIN},
        {"threads", required_argument, 0, O_THREADS},
        {"verbose", no_argument, 0, 'v'},
        {"help", no_argument, 0, 'h'},
        EVAL_RUN_OPTS(O_RUN),
        {0, 0, 0, 0},
    };
    memset(a, 0, sizeof *a);
    a->run = infer_opts_default();
    a->last = 1024;
    a->threads = 1;
    int rc = parse_lengths("4096,8192,16384,32768,65536,131072", a), c;
    optind = 1;
    int idx = 0;
    while (rc == 0 && (c = getopt_long(argc, argv, "m:o:vh", opts, &idx)) != -1) {
        switch (c) {
        case O_RUN:
            rc = eval_run_opt(opts[idx].name, optarg, &a->run);
            break;
        case 'm':
            if (a->n_model == MAX_MODELS) {
                fprintf(stderr, "longctx eval " TASK ": more than %d --model\n", MAX_MODELS);
                return EXIT_USAGE;
            }
            for (int k = 0; k < a->n_model; k++)
                if (!strcmp(a->model[k], optarg)) {
                    fprintf(stderr, "longctx eval " TASK ": --model %s given twice\n", optarg);
                    return EXIT_USAGE;
                }
            a->model[a->n_model++] = optarg;
            break;
        case O_IN:
            if (a->n_input == MAX_INPUTS) {
                fprintf(stderr, "longctx eval " TASK ": more than %d --input\n", MAX_INPUTS);
                return EXIT_USAGE;
            }
            a->input[a->n_input++] = optarg;
            break;
        case 'o':
            a->output = optarg;
            break;
        case O_TOK:
            a->tokenizer = optarg;
            break;
        case O_LEN:
            rc = parse_lengths(optarg, a);
            break;
        case O_LAST:
            rc = parse_long(optarg, "--last", 1, 1L << 30, &a->last);
            break;
        case O_DOCS:
            rc = parse_long(optarg, "--docs", 1, MAX_ITEMS, &a->docs);
            break;
        case O_TP:
            rc = parse_long(optarg, "--tp", 0, 1 << 20, &a->tp);
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
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (rc)
        return rc;
    if (optind < argc) {
        fprintf(stderr, "longctx eval " TASK ": unexpected argument '%s'\n", argv[optind]);
        return EXIT_USAGE;
    }
    if (!a->n_model || !a->n_input || !a->output) {
        fprintf(stderr, "longctx eval " TASK ": --model, --input and --output are required\n");
        return EXIT_USAGE;
    }
    if (a->last > a->lengths[0]) {
        fprintf(stderr,
                "longctx eval " TASK ": --last %ld is more than the shortest length %ld: the "
                "same targets must be scored at every length\n",
                a->last, a->lengths[0]);
        return EXIT_USAGE;
    }
    return -1;
}

/* ==== the output directory ====================================================================*/

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
    size_t cap = 1 << 16, len = 0, got;
    char *b = malloc(cap);
    while (b && (got = fread(b + len, 1, cap - len - 1, f)) > 0)
        if ((len += got) + 1 == cap) {
            char *q = realloc(b, cap *= 2);
            if (!q)
                free(b);
            b = q;
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

/* What makes two runs' items the same: a rerun resumes only with this equal. */
static char *config_json(const ppl_args *a, const eval_ppl_docs *d) {
    json_object *o = json_object_new_object(), *ms = json_object_new_array(),
                *ins = json_object_new_array(), *ls = json_object_new_array();
    json_object_object_add(o, "task", json_object_new_string(TASK));
    for (int k = 0; k < a->n_model; k++)
        json_object_array_add(ms, json_object_new_string(a->model[k]));
    json_object_object_add(o, "models", ms);
    for (int k = 0; k < a->n_input; k++)
        json_object_array_add(ins, json_object_new_string(a->input[k]));
    json_object_object_add(o, "inputs", ins);
    for (int k = 0; k < a->n_lengths; k++)
        json_object_array_add(ls, json_object_new_int64(a->lengths[k]));
    json_object_object_add(o, "lengths", ls);
    json_object_object_add(o, "last", json_object_new_int64(a->last));
    eval_run_opts_json(o, &a->run);
    json_object_object_add(o, "documents", json_object_new_int64((int64_t)d->n));
    char hex[32];
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)d->hash);
    json_object_object_add(o, "documents_xxh3", json_object_new_string(hex));
    char *s = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY));
    json_object_put(o);
    return s;
}

/* Item i: model i / (D L), document (i / L) % D, length i % L. */
typedef struct {
    size_t n_docs, n_items;
} item_space;

static int line_item(const char *line, const ppl_args *a, const item_space *sp, uint64_t *item) {
    json_object *o = json_tokener_parse(line), *v;
    int ok = o && json_object_object_get_ex(o, "item", &v);
    if (ok) {
        const int64_t i = json_object_get_int64(v);
        const size_t L = (size_t)a->n_lengths;
        ok = i >= 0 && (uint64_t)i < sp->n_items;
        if (ok) {
            *item = (uint64_t)i;
            ok = json_object_object_get_ex(o, "model", &v) &&
                 !strcmp(json_object_get_string(v), a->model[(size_t)i / (sp->n_docs * L)]) &&
                 json_object_object_get_ex(o, "document", &v) &&
                 (size_t)json_object_get_int64(v) == ((size_t)i / L) % sp->n_docs &&
                 json_object_object_get_ex(o, "length", &v) &&
                 json_object_get_int64(v) == a->lengths[(size_t)i % L];
        }
    }
    json_object_put(o);
    return ok;
}

/* Rank 0: the directory, its config, the lines of the items done before (a last line cut by a
 * kill is dropped and cut from the file). An exit code. */
static int output_open(const ppl_args *a, const item_space *sp, const char *config, char **lines,
                       size_t *n_done) {
    *n_done = 0;
    if (mkdir(a->output, 0777) != 0 && errno != EEXIST) {
        LOG_ERROR("%s: %s", a->output, strerror(errno));
        return EXIT_RUNTIME;
    }
    char *cpath = dir_path(a->output, "config.json"), *rpath = dir_path(a->output, "results.jsonl");
    int rc = cpath && rpath ? 0 : EXIT_RUNTIME;
    size_t n = 0;
    errno = 0;
    char *old = rc ? NULL : slurp(cpath, &n);
    if (rc == 0 && !old && errno != ENOENT) {
        LOG_ERROR("%s: %s", cpath, strerror(errno));
        rc = EXIT_RUNTIME;
    }
    if (rc == 0 && old && strcmp(old, config)) {
        LOG_ERROR("%s holds another run's configuration (task, models, inputs, lengths, --last "
                  "or the documents differ): give another --output, or remove the directory to "
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
    size_t keep = 0;
    for (size_t at = 0, lineno = 1; res && at < n; lineno++) {
        char *nl = memchr(res + at, '\n', n - at);
        if (!nl)
            break; /* cut by a kill: dropped */
        *nl = '\0';
        uint64_t item;
        if (!line_item(res + at, a, sp, &item)) {
            LOG_ERROR("%s: line %zu is not an item of this run", rpath, lineno);
            rc = EXIT_RUNTIME;
            break;
        }
        if (!lines[item]) {
            if (!(lines[item] = strdup(res + at))) {
                rc = EXIT_RUNTIME;
                break;
            }
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

static char *item_line(const ppl_args *a, const eval_ppl_docs *d, uint64_t i, size_t m, size_t doc,
                       long length, const eval_ppl_result *r) {
    json_object *o = json_object_new_object(), *bs = json_object_new_array();
    const eval_ppl_doc *e = &d->docs[doc];
    json_object_object_add(o, "item", json_object_new_uint64(i));
    json_object_object_add(o, "task", json_object_new_string(TASK));
    json_object_object_add(o, "model", json_object_new_string(a->model[m]));
    json_object_object_add(o, "document", json_object_new_uint64(doc));
    json_object_object_add(o, "input", json_object_new_string(a->input[e->file]));
    json_object_object_add(o, "input_document", json_object_new_uint64(e->index));
    json_object_object_add(o, "document_tokens", json_object_new_uint64(e->tokens));
    json_object_object_add(o, "length", json_object_new_int64(length));
    json_object_object_add(o, "prompt_tokens", json_object_new_int64(length));
    json_object_object_add(o, "window_start",
                           json_object_new_uint64(d->need - 1 - (uint64_t)length));
    json_object_object_add(o, "last", json_object_new_uint64(r->last_n));
    const double ll = r->last_sum / (double)r->last_n;
    json_object_object_add(o, "loss_last", json_object_new_double(ll));
    json_object_object_add(o, "ppl_last", json_object_new_double(exp(ll)));
    json_object_object_add(o, "loss_window", json_object_new_double(r->total / (double)r->n));
    for (int b = 0; b < EVAL_PPL_BUCKETS; b++) {
        if (!r->count[b])
            continue;
        long from, to;
        infer_ppl_bucket_range(b, &from, &to);
        json_object *x = json_object_new_object();
        json_object_object_add(x, "from", json_object_new_int64(from));
        json_object_object_add(x, "to", json_object_new_int64(to));
        json_object_object_add(x, "tokens", json_object_new_uint64(r->count[b]));
        json_object_object_add(x, "loss", json_object_new_double(r->sum[b] / (double)r->count[b]));
        json_object_array_add(bs, x);
    }
    json_object_object_add(o, "buckets", bs);
    char *s = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
    json_object_put(o);
    return s;
}

/* ==== summary and plot ========================================================================*/

static int write_outputs(const ppl_args *a, const item_space *sp, char *const *lines,
                         const eval_ppl_docs *d, int train) {
    const size_t M = (size_t)a->n_model, L = (size_t)a->n_lengths;
    char *rpath = dir_path(a->output, "results.jsonl"), *tmp = dir_path(a->output, ".results.tmp");
    FILE *f = tmp ? fopen(tmp, "wb") : NULL;
    int rc = f ? 0 : EXIT_RUNTIME;
    for (size_t i = 0; rc == 0 && i < sp->n_items; i++)
        if (fprintf(f, "%s\n", lines[i]) < 0)
            rc = EXIT_RUNTIME;
    if (f && (fflush(f) != 0 || fsync(fileno(f)) != 0 || fclose(f) != 0))
        rc = EXIT_RUNTIME;
    if (rc == 0 && rename(tmp, rpath) != 0)
        rc = EXIT_RUNTIME;
    if (rc)
        LOG_ERROR("%s: %s", rpath ? rpath : a->output, strerror(errno));
    free(rpath);
    free(tmp);
    double *mean = calloc(M * L, sizeof *mean), *x = calloc(L, sizeof *x);
    if (rc == 0 && (!mean || !x))
        rc = EXIT_RUNTIME;
    /* the mean over documents of each item's loss of the last N, in item order (the same
     * additions whatever ran where) */
    for (size_t i = 0; rc == 0 && i < sp->n_items; i++) {
        json_object *o = json_tokener_parse(lines[i]), *v;
        if (!o || !json_object_object_get_ex(o, "loss_last", &v))
            rc = EXIT_RUNTIME;
        else
            mean[(i / (sp->n_docs * L)) * L + i % L] += json_object_get_double(v);
        json_object_put(o);
    }
    json_object *o = json_object_new_object(), *ls = json_object_new_array(),
                *ms = json_object_new_array();
    for (size_t l = 0; l < L; l++) {
        x[l] = x ? (double)a->lengths[l] : 0;
        json_object_array_add(ls, json_object_new_int64(a->lengths[l]));
    }
    json_object_object_add(o, "task", json_object_new_string(TASK));
    json_object_object_add(o, "documents", json_object_new_uint64(sp->n_docs));
    json_object_object_add(o, "documents_too_short", json_object_new_uint64(d->n_short));
    json_object_object_add(o, "last", json_object_new_int64(a->last));
    json_object_object_add(o, "items", json_object_new_uint64(sp->n_items));
    json_object_object_add(o, "training_length", json_object_new_int(train));
    json_object_object_add(o, "lengths", ls);
    for (size_t m = 0; rc == 0 && m < M; m++) {
        json_object *e = json_object_new_object(), *lo = json_object_new_array(),
                    *pp = json_object_new_array();
        for (size_t l = 0; l < L; l++) {
            mean[m * L + l] /= (double)sp->n_docs;
            json_object_array_add(lo, json_object_new_double(mean[m * L + l]));
            json_object_array_add(pp, json_object_new_double(exp(mean[m * L + l])));
        }
        json_object_object_add(e, "model", json_object_new_string(a->model[m]));
        json_object_object_add(e, "loss_last", lo);
        json_object_object_add(e, "ppl_last", pp);
        json_object_array_add(ms, e);
    }
    json_object_object_add(o, "models", ms);
    json_object_object_add(
        o, "note",
        json_object_new_string("loss_last: the mean over the documents of the mean NLL (nats) of "
                               "the same last N targets of each document, with L tokens of "
                               "context; ppl_last = exp(loss_last)"));
    char *path = dir_path(a->output, "summary.json");
    FILE *sf = rc == 0 && path ? fopen(path, "wb") : NULL;
    if (rc == 0 &&
        (!sf ||
         fprintf(sf, "%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY)) < 0 ||
         fclose(sf) != 0)) {
        LOG_ERROR("%s: %s", path ? path : a->output, strerror(errno));
        rc = EXIT_RUNTIME;
    }
    free(path);
    json_object_put(o);
    if (rc == 0) {
        char *stem = dir_path(a->output, TASK), err[512] = "";
        plot_series ps = {
            .n_x = L, .x = x, .n_series = M, .names = a->model, .v = mean, .train = train};
        const int st = stem ? plot_lines(&ps, PLOT_X_LOG2, PLOT_Y_FIT, 0, NULL,
                                         "Loss of the last tokens against context length",
                                         "context length (tokens, log2 scale)",
                                         "loss of the last N tokens (nats)", stem, err, sizeof err)
                            : PLOT_ERR_NOMEM;
        if (st != PLOT_OK) {
            LOG_ERROR("plot: %s: %s", plot_strerror(st), err);
            rc = EXIT_RUNTIME;
        }
        free(stem);
    }
    free(mean);
    free(x);
    return rc;
}

/* ==== the job =================================================================================*/

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

/* --tokenizer, else the first model directory's, else none (inputs of ids only) */
static int load_tokenizer(const ppl_args *a, tokenizer **out) {
    static const char *names[] = {"tokenizer.json", "tokenizer.model"};
    char path[4200];
    *out = NULL;
    for (int i = 0; i < 2 || a->tokenizer; i++) {
        if (a->tokenizer)
            snprintf(path, sizeof path, "%s", a->tokenizer);
        else
            snprintf(path, sizeof path, "%s/%s", a->model[0], names[i]);
        if (!a->tokenizer && access(path, R_OK) != 0)
            continue;
        if (tokenizer_load(path, out) == TOK_OK)
            return 0;
        LOG_ERROR("%s: %s", path, tokenizer_errmsg(*out));
        tokenizer_free(*out);
        *out = NULL;
        return EXIT_USAGE;
    }
    return 0;
}

/* One model: loaded on the group, its pending items run in rounds over the replicas, the
 * lines journaled by rank 0. An exit code, the same on every rank. */
static int run_model(const ppl_args *a, const cluster_groups *cg, const eval_ppl_docs *d,
                     const item_space *sp, size_t m, const uint64_t *pending, size_t n_pending,
                     char **lines, FILE *journal) {
    const size_t L = (size_t)a->n_lengths;
    infer_model *model = NULL;
    int st, rc = 0;
    if ((st = infer_model_load(a->model[m], cg->tp, &model)) != INFER_OK) {
        LOG_ERROR("%s: %s", infer_strerror(st), infer_model_errmsg(model));
        rc = st == INFER_ERR_ARG ? EXIT_USAGE : EXIT_RUNTIME;
    }
    rc = cluster_agree_first(MPI_COMM_WORLD, rc);
    const infer_config *cfg = rc == 0 ? infer_model_config(model) : NULL;
    for (size_t k = 0; rc == 0 && k < d->n; k++)
        for (uint64_t t = 0; rc == 0 && t < d->need; t++)
            if (d->docs[k].ids[t] >= (uint32_t)cfg->vocab_size) {
                LOG_ERROR("%s: document %llu of %s: id %u is outside the model's vocabulary of "
                          "%d (the models must share the tokenizer)",
                          a->model[m], (unsigned long long)d->docs[k].index,
                          a->input[d->docs[k].file], d->docs[k].ids[t], cfg->vocab_size);
                rc = EXIT_USAGE;
            }
    infer_opts o = a->run;
    o.max_ctx = (int)d->need;
    o.threads = (int)a->threads;
    infer_state *s = NULL;
    if (rc == 0) {
        char why[256];
        if (infer_opts_check(cfg, &o, cg->tp_size, why, sizeof why) != INFER_OK) {
            LOG_ERROR("%s: %s", a->model[m], why);
            rc = EXIT_USAGE;
        } else if ((st = infer_state_create(model, &o, cg->tp, &s)) != INFER_OK) {
            LOG_ERROR("cannot create the state for %d positions: %s", o.max_ctx,
                      infer_strerror(st));
            rc = EXIT_RUNTIME;
        }
    }
    rc = cluster_agree_first(MPI_COMM_WORLD, rc);
    uint8_t *want = rc == 0 ? malloc(d->need + 1) : NULL;
    rc = cluster_agree_first(MPI_COMM_WORLD, rc == 0 && !want ? EXIT_RUNTIME : rc);
    LOG_INFO("%s: %zu items to run on %d replica%s of tensor-parallel size %d", a->model[m],
             n_pending, cg->n_replicas, cg->n_replicas > 1 ? "s" : "", cg->tp_size);
    const size_t R = (size_t)cg->n_replicas;
    for (size_t round = 0; rc == 0 && round * R < n_pending; round++) {
        const size_t k = round * R + (size_t)cg->replica;
        cluster_records mine = {0};
        if (k < n_pending) {
            const uint64_t i = pending[k];
            const size_t doc = (size_t)(i / L) % sp->n_docs;
            const long length = a->lengths[i % L];
            eval_ppl_result r;
            uint64_t bad = 0;
            st = eval_ppl_window(s, d->docs[doc].ids, d->need - 1, (int)length, (int)a->last, want,
                                 &r, &bad);
            char *line = NULL;
            if (st == EVAL_ERR_FORMAT)
                LOG_ERROR("%s: document %zu, length %ld: non-finite logits predicting position "
                          "%llu",
                          a->model[m], doc, length, (unsigned long long)bad);
            else if (st != EVAL_OK)
                LOG_ERROR("%s: document %zu, length %ld: %s", a->model[m], doc, length,
                          eval_strerror(st));
            else if (!(line = item_line(a, d, i, m, doc, length, &r)))
                st = EVAL_ERR_NOMEM;
            rc = cluster_agree_first(cg->tp, st == EVAL_OK ? 0 : EXIT_RUNTIME);
            if (rc == 0 && cg->tp_rank == 0 &&
                cluster_records_add(&mine, i, line, strlen(line)) != CLUSTER_OK)
                rc = EXIT_RUNTIME;
            free(line);
        }
        rc = world_failure(rc);
        char *all = NULL;
        size_t n_all = 0;
        if (rc == 0 && (st = cluster_records_gather(MPI_COMM_WORLD, &mine, &all, &n_all))) {
            LOG_ERROR("cannot gather the results on rank 0: %s", cluster_strerror(st));
            rc = EXIT_RUNTIME;
        }
        cluster_records_free(&mine);
        const char **rec = NULL;
        if (rc == 0 && cg->rank == 0 && cluster_records_index(all, n_all, sp->n_items, &rec))
            rc = EXIT_RUNTIME;
        for (size_t j = round * R; rc == 0 && cg->rank == 0 && j < (round + 1) * R && j < n_pending;
             j++) {
            uint64_t n;
            const char *b = rec[pending[j]] ? cluster_record_bytes(rec[pending[j]], &n) : NULL;
            if (!b || !(lines[pending[j]] = strndup(b, (size_t)n)) ||
                fprintf(journal, "%s\n", lines[pending[j]]) < 0)
                rc = EXIT_RUNTIME;
        }
        if (rc == 0 && cg->rank == 0 && (fflush(journal) != 0 || fsync(fileno(journal)) != 0))
            rc = EXIT_RUNTIME;
        if (rc && cg->rank == 0 && all)
            LOG_ERROR("%s/results.jsonl: %s", a->output,
                      errno ? strerror(errno) : "a result is missing");
        free(rec);
        free(all);
        rc = cluster_agree_first(MPI_COMM_WORLD, rc);
        if (rc == 0 && cluster_stop_agreed(MPI_COMM_WORLD)) {
            LOG_WARN("stopped by a signal; rerun to resume");
            rc = EXIT_RUNTIME;
        }
    }
    free(want);
    infer_state_free(s);
    infer_model_free(model);
    return rc;
}

static int job(const ppl_args *a, const cluster_groups *cg) {
    tokenizer *tok = NULL;
    int rc = load_tokenizer(a, &tok);
    eval_ppl_docs d;
    memset(&d, 0, sizeof d);
    const uint64_t need = (uint64_t)a->lengths[a->n_lengths - 1] + 1;
    int st;
    if (rc == 0 && (st = eval_ppl_docs_load(a->input, (size_t)a->n_input, tok, need,
                                            (size_t)a->docs, UINT32_MAX, &d)) != EVAL_OK) {
        LOG_ERROR("%s", d.errmsg);
        rc = st == EVAL_ERR_NOMEM ? EXIT_RUNTIME : EXIT_USAGE;
    }
    if (rc == 0 && d.n == 0) {
        LOG_ERROR("no document of the inputs has %llu tokens (the longest length + 1; %llu "
                  "shorter ones): give shorter --lengths or longer documents",
                  (unsigned long long)need, (unsigned long long)d.n_short);
        rc = EXIT_USAGE;
    }
    rc = cluster_agree_first(MPI_COMM_WORLD, rc);
    const item_space sp = {d.n, d.n * (size_t)a->n_lengths * (size_t)a->n_model};
    if (rc == 0 && sp.n_items > MAX_ITEMS) {
        LOG_ERROR("%zu items, more than %d: give --docs", sp.n_items, MAX_ITEMS);
        rc = EXIT_USAGE;
    }
    LOG_INFO("%zu documents of >= %llu tokens (%llu shorter), %d lengths, %d models: %zu items",
             d.n, (unsigned long long)need, (unsigned long long)d.n_short, a->n_lengths, a->n_model,
             sp.n_items);
    char **lines = calloc(sp.n_items ? sp.n_items : 1, sizeof *lines);
    uint8_t *done = calloc(sp.n_items ? sp.n_items : 1, 1);
    uint64_t *pending = malloc((sp.n_items ? sp.n_items : 1) * sizeof *pending);
    char *config = rc == 0 ? config_json(a, &d) : NULL;
    if (rc == 0 && (!lines || !done || !pending || !config))
        rc = EXIT_RUNTIME;
    size_t n_done = 0;
    if (rc == 0 && cg->rank == 0)
        rc = output_open(a, &sp, config, lines, &n_done);
    rc = cluster_agree_first(MPI_COMM_WORLD, rc);
    for (size_t i = 0; rc == 0 && cg->rank == 0 && i < sp.n_items; i++)
        done[i] = lines[i] != NULL;
    if (rc == 0)
        MPI_Bcast(done, (int)sp.n_items, MPI_UINT8_T, 0, MPI_COMM_WORLD);
    FILE *journal = NULL;
    char *rpath = dir_path(a->output, "results.jsonl");
    if (rc == 0 && cg->rank == 0 && !(journal = rpath ? fopen(rpath, "ab") : NULL)) {
        LOG_ERROR("%s: %s", rpath ? rpath : a->output, strerror(errno));
        rc = EXIT_RUNTIME;
    }
    rc = cluster_agree_first(MPI_COMM_WORLD, rc);
    const size_t per_model = d.n * (size_t)a->n_lengths;
    int train = (int)a->training_length;
    if (rc == 0 && !train) {
        infer_config c;
        int wb;
        char err[512];
        if (infer_config_load(a->model[0], &c, &wb, err, sizeof err) == INFER_OK)
            train = c.seq_len;
    }
    const double t0 = cluster_now();
    size_t ran = 0;
    for (size_t m = 0; rc == 0 && m < (size_t)a->n_model; m++) {
        size_t n_pending = 0;
        for (size_t i = m * per_model; i < (m + 1) * per_model; i++)
            if (!done[i])
                pending[n_pending++] = i;
        if (n_pending == 0)
            continue; /* done before: not loaded */
        rc = run_model(a, cg, &d, &sp, m, pending, n_pending, lines, journal);
        ran += n_pending;
    }
    if (journal && fclose(journal) != 0 && rc == 0) {
        LOG_ERROR("%s: %s", rpath, strerror(errno));
        rc = EXIT_RUNTIME;
    }
    if (rc == 0 && cg->rank == 0)
        rc = write_outputs(a, &sp, lines, &d, train);
    rc = cluster_agree_first(MPI_COMM_WORLD, rc);
    if (rc == 0)
        LOG_INFO("%zu items (%zu done before) in %.2f s; %s/results.jsonl, summary.json, " TASK
                 ".svg, " TASK ".png",
                 ran, n_done, cluster_now() - t0, a->output);
    for (size_t i = 0; lines && i < sp.n_items; i++)
        free(lines[i]);
    free(lines);
    free(done);
    free(pending);
    free(config);
    free(rpath);
    eval_ppl_docs_free(&d);
    tokenizer_free(tok);
    return rc;
}

int eval_ppl_main(int argc, char **argv) {
    ppl_args a;
    int rc = parse(argc, argv, &a);
    cluster_groups cg;
    if (rc < 0 && cluster_groups_make(MPI_COMM_WORLD, (int)a.tp, &cg) != CLUSTER_OK) {
        fprintf(stderr,
                "longctx eval " TASK ": --tp %ld must divide the %d MPI ranks (world size = "
                "replicas x tensor-parallel size)\n",
                a.tp, cg.size);
        rc = EXIT_USAGE;
    }
    if (rc < 0) {
        cluster_log_setup("eval", cg.rank, cg.size,
                          a.verbose ? CLUSTER_LOG_DEBUG : CLUSTER_LOG_INFO);
        cluster_signals_install();
        rc = job(&a, &cg);
        cluster_groups_free(&cg);
    }
    return rc;
}
