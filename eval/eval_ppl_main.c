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

/* called by eval_main after MPI_Init with argv[0] = "ppl-vs-length"; an exit code */
int eval_ppl_main(int argc, char **argv);

enum { MAX_MODELS = 16, MAX_INPUTS = 4096, MAX_LENGTHS = 64, MAX_ITEMS = 1000000 };
#define TASK "ppl-vs-length"

typedef struct {
    const char *model[MAX_MODELS], *input[MAX_INPUTS];
    int n_model, n_input;
    long lengths[MAX_LENGTHS];
    int n_lengths;
    long last, docs;
    eval_job_opts j; /* the common options (eval_job.h) */
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
            "  --training-length N  the plot's line (default: the first model's max "
            "positions)\n" EVAL_JOB_OPTIONS_HELP "  --help, --version\n");
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

/* the task's own options (eval_job_parse takes the common ones) */
enum { O_IN = 256, O_LEN, O_LAST, O_DOCS };

static int task_opt(void *ctx, int c, const char *arg) {
    ppl_args *a = ctx;
    switch (c) {
    case 'm':
        if (a->n_model == MAX_MODELS) {
            fprintf(stderr, "longctx eval " TASK ": more than %d --model\n", MAX_MODELS);
            return EXIT_USAGE;
        }
        for (int k = 0; k < a->n_model; k++)
            if (!strcmp(a->model[k], arg)) {
                fprintf(stderr, "longctx eval " TASK ": --model %s given twice\n", arg);
                return EXIT_USAGE;
            }
        a->model[a->n_model++] = arg;
        return 0;
    case O_IN:
        if (a->n_input == MAX_INPUTS) {
            fprintf(stderr, "longctx eval " TASK ": more than %d --input\n", MAX_INPUTS);
            return EXIT_USAGE;
        }
        a->input[a->n_input++] = arg;
        return 0;
    case O_LEN:
        return parse_lengths(arg, a);
    case O_LAST:
        return eval_parse_long(a->j.cmd, arg, "--last", 1, 1L << 30, &a->last);
    case O_DOCS:
        return eval_parse_long(a->j.cmd, arg, "--docs", 1, MAX_ITEMS, &a->docs);
    }
    return 0;
}

/* options into a (argv[0] is the task); -1 to go on, else an exit code */
static int parse(int argc, char **argv, ppl_args *a) {
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},     {"input", required_argument, 0, O_IN},
        {"lengths", required_argument, 0, O_LEN}, {"last", required_argument, 0, O_LAST},
        {"docs", required_argument, 0, O_DOCS},   {0, 0, 0, 0},
    };
    memset(a, 0, sizeof *a);
    a->j = eval_job_opts_default("longctx eval " TASK);
    a->last = 1024;
    int rc = parse_lengths("4096,8192,16384,32768,65536,131072", a);
    if (rc == 0)
        rc = eval_job_parse(argc, argv, opts, &a->j, task_opt, a, usage);
    if (rc >= 0)
        return rc;
    if (!a->n_model || !a->n_input) {
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

/* What makes two runs' items the same: a rerun resumes only with this equal. */
static char *config_json(const ppl_args *a, const eval_ppl_docs *d) {
    json_object *o = json_object_new_object(), *ms = json_object_new_array(),
                *ins = json_object_new_array(), *ls = json_object_new_array();
    json_object_object_add(o, "task", json_object_new_string(TASK));
    json_object *hs = json_object_new_array();
    char hex[32];
    for (int k = 0; k < a->n_model; k++) {
        json_object_array_add(ms, json_object_new_string(a->model[k]));
        if (eval_model_hash_hex(a->model[k], hex) != 0) {
            json_object_put(o);
            json_object_put(ms);
            json_object_put(hs);
            json_object_put(ins);
            json_object_put(ls);
            return NULL;
        }
        json_object_array_add(hs, json_object_new_string(hex));
    }
    json_object_object_add(o, "models", ms);
    json_object_object_add(o, "model_hash", hs);
    for (int k = 0; k < a->n_input; k++)
        json_object_array_add(ins, json_object_new_string(a->input[k]));
    json_object_object_add(o, "inputs", ins);
    for (int k = 0; k < a->n_lengths; k++)
        json_object_array_add(ls, json_object_new_int64(a->lengths[k]));
    json_object_object_add(o, "lengths", ls);
    json_object_object_add(o, "last", json_object_new_int64(a->last));
    eval_run_opts_json(o, &a->j.run);
    json_object_object_add(o, "documents", json_object_new_int64((int64_t)d->n));
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

/* the job's state: the items, and the model whose items run (run_model) */
typedef struct {
    const ppl_args *a;
    const eval_ppl_docs *d;
    item_space sp;
    size_t m;       /* the model */
    infer_state *s; /* its state */
    uint8_t *want;  /* (d->need + 1) eval_ppl_window's buffer */
} ppl_job;

static int line_item(const char *line, void *ctx, uint64_t *item) {
    const ppl_job *pj = ctx;
    const ppl_args *a = pj->a;
    const item_space *sp = &pj->sp;
    json_object *o = json_tokener_parse(line), *v;
    int ok = o && json_object_object_get_ex(o, "item", &v);
    if (ok) {
        const int64_t i = json_object_get_int64(v);
        const size_t L = (size_t)a->n_lengths;
        ok = i >= 0 && (uint64_t)i < sp->n_items;
        if (ok) {
            *item = (uint64_t)i;
            /* the model by its place: config.json's hashes say it is the same, its path in
             * the line may be another's (the path is informational) */
            ok = json_object_object_get_ex(o, "model", &v) &&
                 json_object_object_get_ex(o, "document", &v) &&
                 (size_t)json_object_get_int64(v) == ((size_t)i / L) % sp->n_docs &&
                 json_object_object_get_ex(o, "length", &v) &&
                 json_object_get_int64(v) == a->lengths[(size_t)i % L];
        }
    }
    json_object_put(o);
    return ok;
}

/* ==== one item ================================================================================*/

/* item i's line: its window's losses (r), or its error (r NULL: non-finite logits predicting
 * at document position bad) */
static char *item_line(const ppl_args *a, const eval_ppl_docs *d, uint64_t i, size_t m, size_t doc,
                       long length, const eval_ppl_result *r, uint64_t bad) {
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
    if (!r) { /* recorded, out of the means: a model that overflows at some length is data */
        char why[96];
        snprintf(why, sizeof why, "non-finite logits at document position %llu",
                 (unsigned long long)bad);
        json_object_object_add(o, "last", json_object_new_int64(a->last));
        json_object_object_add(o, "error", json_object_new_string(why));
        json_object_put(bs);
        char *line = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
        json_object_put(o);
        return line;
    }
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
    int rc = 0;
    double *mean = calloc(M * L, sizeof *mean), *x = calloc(L, sizeof *x);
    size_t *n_err = calloc(M * L, sizeof *n_err), items_error = 0;
    if (rc == 0 && (!mean || !x || !n_err))
        rc = EXIT_RUNTIME;
    /* the mean over documents of each item's loss of the last N, in item order (the same
     * additions whatever ran where); items with an error (non-finite logits) are counted, not
     * added */
    for (size_t i = 0; rc == 0 && i < sp->n_items; i++) {
        json_object *o = json_tokener_parse(lines[i]), *v;
        const size_t ml = (i / (sp->n_docs * L)) * L + i % L;
        if (o && json_object_object_get_ex(o, "error", NULL)) {
            n_err[ml]++;
            items_error++;
        } else if (!o || !json_object_object_get_ex(o, "loss_last", &v)) {
            rc = EXIT_RUNTIME;
        } else {
            mean[ml] += json_object_get_double(v);
        }
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
    json_object_object_add(o, "items_error", json_object_new_uint64(items_error));
    json_object_object_add(o, "training_length", json_object_new_int(train));
    json_object_object_add(o, "lengths", ls);
    for (size_t m = 0; rc == 0 && m < M; m++) {
        json_object *e = json_object_new_object(), *lo = json_object_new_array(),
                    *pp = json_object_new_array(), *er = json_object_new_array();
        for (size_t l = 0; l < L; l++) {
            const size_t n_ok = sp->n_docs - n_err[m * L + l];
            mean[m * L + l] = n_ok ? mean[m * L + l] / (double)n_ok : NAN; /* NAN: no point */
            json_object_array_add(lo, n_ok ? json_object_new_double(mean[m * L + l]) : NULL);
            json_object_array_add(pp, n_ok ? json_object_new_double(exp(mean[m * L + l])) : NULL);
            json_object_array_add(er, json_object_new_uint64(n_err[m * L + l]));
        }
        json_object_object_add(e, "model", json_object_new_string(a->model[m]));
        json_object_object_add(e, "loss_last", lo);
        json_object_object_add(e, "ppl_last", pp);
        json_object_object_add(e, "errors", er);
        json_object_array_add(ms, e);
    }
    json_object_object_add(o, "models", ms);
    json_object_object_add(
        o, "note",
        json_object_new_string("loss_last: the mean over the documents of the mean NLL (nats) of "
                               "the same last N targets of each document, with L tokens of "
                               "context, over the documents whose window gave finite logits "
                               "(errors: the others, per length; null: none did); ppl_last = "
                               "exp(loss_last)"));
    if (rc == 0)
        rc = eval_write_json(a->j.output, "summary.json", o);
    json_object_put(o);
    if (rc == 0) {
        char *stem = eval_path(a->j.output, TASK), err[512] = "";
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
    free(n_err);
    free(mean);
    free(x);
    return rc;
}

/* ==== the job =================================================================================*/

/* item i of the model that runs: its line; an exit code */
static int run_one(void *ctx, uint64_t i, char **line) {
    const ppl_job *pj = ctx;
    const ppl_args *a = pj->a;
    const size_t L = (size_t)a->n_lengths, doc = (size_t)(i / L) % pj->sp.n_docs;
    const long length = a->lengths[i % L];
    eval_ppl_result r;
    uint64_t bad = 0;
    const int st = eval_ppl_window(pj->s, pj->d->docs[doc].ids, pj->d->need - 1, (int)length,
                                   (int)a->last, pj->want, &r, &bad);
    if (st == EVAL_ERR_FORMAT) /* the item, not the job: recorded with its error */
        LOG_WARN("%s: document %zu, length %ld: non-finite logits at document position %llu: "
                 "recorded with the error, out of the means",
                 a->model[pj->m], doc, length, (unsigned long long)bad);
    else if (st != EVAL_OK) {
        LOG_ERROR("%s: document %zu, length %ld: %s", a->model[pj->m], doc, length,
                  eval_strerror(st));
        return EXIT_RUNTIME;
    }
    *line = item_line(a, pj->d, i, pj->m, doc, length, st == EVAL_OK ? &r : NULL, bad);
    return *line ? 0 : EXIT_RUNTIME;
}

/* One model: loaded on the group, its pending items run in rounds over the replicas, the
 * lines journaled by rank 0. An exit code, the same on every rank. */
static int run_model(ppl_job *pj, const cluster_groups *cg, eval_out *out, uint64_t *pending,
                     size_t *n_ran) {
    const ppl_args *a = pj->a;
    const eval_ppl_docs *d = pj->d;
    const size_t per_model = d->n * (size_t)a->n_lengths, m = pj->m;
    const size_t n_pending = eval_out_pending(out, m * per_model, (m + 1) * per_model, pending);
    if (n_pending == 0)
        return 0; /* done before: not loaded */
    infer_opts o = a->j.run;
    o.max_ctx = (int)d->need;
    infer_model *model = NULL;
    int rc = eval_model_open(&a->j, cg, a->model[m], o, &model, &pj->s);
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
    rc = cluster_agree_first(cg->world, rc);
    pj->want = rc == 0 ? malloc(d->need + 1) : NULL;
    rc = cluster_agree_first(cg->world, rc == 0 && !pj->want ? EXIT_RUNTIME : rc);
    LOG_INFO("%s: %zu items to run on %d replica%s of tensor-parallel size %d", a->model[m],
             n_pending, cg->n_replicas, cg->n_replicas > 1 ? "s" : "", cg->tp_size);
    int64_t *sched = NULL;
    size_t n_rounds = 0;
    if (rc == 0)
        rc = cluster_agree_first(
            cg->world,
            eval_schedule_rr(pending, n_pending, (size_t)cg->n_replicas, &sched, &n_rounds));
    if (rc == 0)
        rc = eval_out_rounds(out, cg, sched, n_rounds, run_one, pj, n_ran);
    free(sched);
    free(pj->want);
    pj->want = NULL;
    infer_state_free(pj->s);
    pj->s = NULL;
    infer_model_free(model);
    return rc;
}

static int job(void *ctx, const cluster_groups *cg) {
    const ppl_args *a = ctx;
    tokenizer *tok = NULL;
    int rc = eval_tokenizer_load(&a->j, a->model[0], 0, &tok);
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
    rc = cluster_agree_first(cg->world, rc);
    ppl_job pj = {a, &d, {d.n, d.n * (size_t)a->n_lengths * (size_t)a->n_model}, 0, NULL, NULL};
    const size_t n_items = pj.sp.n_items;
    if (rc == 0 && n_items > MAX_ITEMS) {
        LOG_ERROR("%zu items, more than %d: give --docs", n_items, MAX_ITEMS);
        rc = EXIT_USAGE;
    }
    LOG_INFO("%zu documents of >= %llu tokens (%llu shorter), %d lengths, %d models: %zu items",
             d.n, (unsigned long long)need, (unsigned long long)d.n_short, a->n_lengths, a->n_model,
             n_items);
    infer_opts o = a->j.run; /* every model's plan before the directory: --mem-limit */
    o.max_ctx = (int)need;
    for (int m = 0; rc == 0 && m < a->n_model; m++)
        rc = eval_plan_check(&a->j, cg, a->model[m], o);
    uint64_t *pending = malloc((n_items ? n_items : 1) * sizeof *pending);
    char *config = rc == 0 && cg->rank == 0 ? config_json(a, &d) : NULL;
    if (rc == 0 && !pending)
        rc = EXIT_RUNTIME;
    eval_out out;
    rc = eval_out_open(&out, cg, rc, a->j.output, config, n_items, line_item, &pj);
    int train = (int)a->j.training_length;
    if (rc == 0 && !train) {
        infer_config c;
        int wb;
        char err[512];
        if (infer_config_load(a->model[0], &c, &wb, err, sizeof err) == INFER_OK)
            train = c.seq_len;
    }
    const double t0 = cluster_now();
    size_t ran = 0;
    for (pj.m = 0; rc == 0 && pj.m < (size_t)a->n_model; pj.m++)
        rc = run_model(&pj, cg, &out, pending, &ran);
    rc = eval_out_close(&out, cg, rc);
    if (rc == 0 && cg->rank == 0)
        rc = write_outputs(a, &pj.sp, out.lines, &d, train);
    rc = cluster_agree_first(cg->world, rc);
    if (rc == 0)
        LOG_INFO("%zu items (%zu done before) in %.2f s; %s/results.jsonl, summary.json, " TASK
                 ".svg, " TASK ".png",
                 ran, out.n_done, cluster_now() - t0, a->j.output);
    eval_out_free(&out);
    free(pending);
    free(config);
    eval_ppl_docs_free(&d);
    tokenizer_free(tok);
    return rc;
}

int eval_ppl_main(int argc, char **argv) {
    ppl_args a;
    return eval_job_run(MPI_COMM_WORLD, parse(argc, argv, &a), &a.j, job, &a);
}
