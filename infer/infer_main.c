/* infer_main.c - `longctx infer`: run a prompt of ids through a model, then generate. */
#include "cluster.h"
#include "infer.h"
#include "longctx_cli.h"
#include "shard.h"
#include "tokenizer.h"

#include <json-c/json.h>

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum { EXIT_RUNTIME = 1, EXIT_USAGE = 2 };

static void usage(FILE *f) {
    fprintf(
        f,
        "usage: longctx infer --model PATH (--prompt TEXT | --prompt-file FILE |\n"
        "                     --prompt-ids 1,2,3 | --input prompts.jsonl --output results.jsonl)\n"
        "                     [options]\n\n"
        "Runs the prompt through the model (teacher-forced, in chunks), then generates.\n"
        "Single rank. Prints the generated ids on one line (stdout), then their text when\n"
        "the model directory has a tokenizer.\n"
        "  --model PATH        HF model directory (config.json, safetensors F32/BF16/F16,\n"
        "                      tokenizer.json or tokenizer.model) or llama2.c .bin\n"
        "  --prompt TEXT       text, encoded with the model's tokenizer (BOS added if it\n"
        "                      has one; --no-bos to leave it out)\n"
        "  --prompt-file FILE  the same, read from FILE\n"
        "  --prompt-ids LIST   comma-separated token ids (@FILE: read them from FILE)\n"
        "  --generate N        tokens to generate after the prompt (default 0); stops at\n"
        "                      the model's EOS unless --ignore-eos\n"
        "  --temperature T     0 = greedy (default 0)\n"
        "  --top-k K           sample among the K most likely (default 0 = all)\n"
        "  --top-p P           nucleus sampling (default 1.0 = off)\n"
        "  --seed S            sampling seed (default 0)\n"
        "  --ctx N             KV cache positions (default: prompt + generated)\n"
        "  --kv-dtype D        f32 or bf16 KV cache (default f32)\n"
        "  --act-dtype D       f32 (default: exact products) or bf16: prefill rounds the\n"
        "                      activations that meet BF16 weights to bf16 (AVX512_BF16\n"
        "                      vdpbf16ps, as llama.cpp does): ~1.9x faster products,\n"
        "                      several 1e-3 relative error in the logits\n"
        "  --prefill-chunk N   prompt tokens per step; activations are O(N) (default 512)\n"
        "  --threads N         threads (default 1)\n"
        "  --mem-limit BYTES   refuse a run whose plan (longctx plan) exceeds it; suffixes\n"
        "                      K, M, G (default: the machine's memory)\n"
        "  --logits-out FILE   float32 little-endian logits of every prompt position, then\n"
        "                      after each generated token but the last (rows of vocab_size;\n"
        "                      generated token k is drawn from row n_prompt - 1 + k)\n"
        "  --logits-positions LIST  only these prompt positions in --logits-out\n"
        "  --timings           print prefill and decode times on stderr\n"
        "  --input FILE --output FILE   batch mode: one JSON object per line of FILE,\n"
        "                      {\"prompt\": TEXT} or {\"ids\": [...]}, optional \"max_tokens\",\n"
        "                      \"temperature\", \"top_k\", \"top_p\", \"seed\"; writes per line\n"
        "                      {\"index\", \"prompt_tokens\", \"ids\", \"logprobs\" (natural log\n"
        "                      of each generated id under the model, temperature 1), \"text\",\n"
        "                      \"finish_reason\": \"eos\" | \"length\"}\n");
}

static uint64_t rng_next(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

typedef struct {
    float p;
    int id;
} prob_t;

static int cmp_prob(const void *a, const void *b) {
    const prob_t *x = a, *y = b;
    return x->p > y->p ? -1 : x->p < y->p ? 1 : x->id - y->id;
}

/* Greedy at temperature 0; else softmax(logits / T) restricted by top-k and top-p. */
static int sample(const float *logits, int n, float temp, int top_k, float top_p, uint64_t *rng,
                  prob_t *work) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (logits[i] > logits[best])
            best = i;
    if (temp <= 0)
        return best;
    double sum = 0;
    for (int i = 0; i < n; i++) {
        work[i].p = (float)exp((logits[i] - logits[best]) / temp);
        work[i].id = i;
        sum += work[i].p;
    }
    qsort(work, (size_t)n, sizeof *work, cmp_prob);
    int keep = top_k > 0 && top_k < n ? top_k : n;
    double kept = 0;
    for (int i = 0; i < keep; i++) {
        kept += work[i].p / sum;
        if (kept >= top_p) {
            keep = i + 1;
            break;
        }
    }
    double total = 0;
    for (int i = 0; i < keep; i++)
        total += work[i].p;
    double r = (double)(rng_next(rng) >> 11) * 0x1.0p-53 * total;
    for (int i = 0; i < keep; i++) {
        r -= work[i].p;
        if (r <= 0)
            return work[i].id;
    }
    return work[keep - 1].id;
}

/* comma-separated unsigned integers into a growing array; 0 on success */
static int parse_ids(const char *arg, uint32_t **out, size_t *n_out) {
    size_t n = 0, cap = 16;
    uint32_t *ids = malloc(cap * sizeof *ids);
    char *end;
    for (const char *p = arg; ids && *p;) {
        errno = 0;
        unsigned long v = strtoul(p, &end, 10);
        if (end == p || (*end && *end != ',') || v > UINT32_MAX || errno) {
            free(ids);
            return -1;
        }
        if (n == cap) {
            uint32_t *q = realloc(ids, (cap *= 2) * sizeof *ids);
            if (!q) {
                free(ids);
                return -1;
            }
            ids = q;
        }
        ids[n++] = (uint32_t)v;
        p = *end ? end + 1 : end;
    }
    *out = ids;
    *n_out = n;
    return ids && n ? 0 : -1;
}

static char *read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    for (size_t got; buf && (got = fread(buf + len, 1, cap - len, f)) > 0;) {
        len += got;
        if (len == cap) {
            char *q = realloc(buf, cap *= 2);
            if (!q) {
                free(buf);
                buf = NULL;
            }
            buf = q;
        }
    }
    if (ferror(f)) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *n = len;
    return buf;
}

static int parse_bytes(const char *s, uint64_t *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    double mul = *end == 'K' || *end == 'k'   ? 1024.0
                 : *end == 'M' || *end == 'm' ? 1048576.0
                 : *end == 'G' || *end == 'g' ? 1073741824.0
                 : *end == 'T' || *end == 't' ? 1099511627776.0
                                              : 1.0;
    if (mul > 1)
        end++;
    if (end == s || *end || errno || !(v > 0))
        return -1;
    *out = (uint64_t)(v * mul);
    return 0;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct {
    FILE *f;
    size_t vocab;
    int failed;
} logits_sink;

static int write_row(void *ctx, int pos, const float *logits) {
    logits_sink *k = ctx;
    (void)pos;
    if (k->f && fwrite(logits, sizeof(float), k->vocab, k->f) != k->vocab)
        k->failed = 1;
    return 0;
}

typedef struct {
    const char *model, *prompt, *prompt_file, *ids_arg, *logits_out, *positions;
    const char *batch_in, *batch_out;
    long n_gen, top_k, ctx, chunk, threads;
    double temp, top_p;
    unsigned long long seed;
    int kv_dtype, act_dtype, no_bos, ignore_eos, timings, load;
    uint64_t mem_limit;
} infer_args;

/* --act-dtype: a name to INFER_ACT_*, or -1 */
static int parse_act_dtype(const char *s) {
    for (int a = INFER_ACT_F32; a <= INFER_ACT_BF16; a++)
        if (!strcmp(s, infer_act_name(a)))
            return a;
    return -1;
}

/* 1 if the model and CPU can run act; else says why and returns 0 */
static int act_dtype_ok(int act, const infer_model *m, const char *model) {
    const int wd = infer_model_weight_dtype(m);
    if (infer_act_check(wd, act) == INFER_OK)
        return 1;
    static const char *names[] = {"f32", "bf16", "f16"};
    if (wd != INFER_DT_BF16)
        LOG_ERROR("--act-dtype %s needs BF16 weights; %s has %s", infer_act_name(act), model,
                  wd >= 0 && wd < 3 ? names[wd] : "other");
    else
        LOG_ERROR("--act-dtype %s needs a CPU with AVX512_BF16; the kernels run %s here",
                  infer_act_name(act), infer_isa());
    return 0;
}

/* the model directory's tokenizer (tokenizer.json, then tokenizer.model), or NULL */
static tokenizer *dir_tokenizer(const char *model) {
    struct stat sb;
    if (stat(model, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return NULL;
    static const char *names[] = {"tokenizer.json", "tokenizer.model"};
    char path[4200];
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s", model, names[i]);
        if (access(path, R_OK) != 0)
            continue;
        tokenizer *t;
        if (tokenizer_load(path, &t) == TOK_OK)
            return t;
        LOG_WARN("%s: %s; continuing without a tokenizer", path, tokenizer_errmsg(t));
        tokenizer_free(t);
    }
    return NULL;
}

typedef struct {
    logits_sink *k;
    float *last;
    int last_pos, last_wanted;
    size_t V;
} prefill_sink;

/* a prompt row: to the file if wanted, and the last one kept to sample from */
static int prefill_row(void *ctx, int pos, const float *logits) {
    prefill_sink *p = ctx;
    if (pos == p->last_pos) {
        memcpy(p->last, logits, p->V * sizeof(float));
        if (!p->last_wanted)
            return 0;
    }
    return write_row(p->k, pos, logits);
}

/* 1 if the run's plan fits --mem-limit; else logs the plan and returns 0 */
static int plan_fits(const infer_args *a, const infer_model *m, long max_ctx) {
    const infer_config *cfg = infer_model_config(m);
    infer_plan plan;
    infer_plan_args pa = {(uint64_t)max_ctx,
                          1,
                          infer_model_weight_dtype(m) == INFER_DT_F32 ? 4 : 2,
                          a->kv_dtype == INFER_DT_F32 ? 4 : 2,
                          (uint64_t)(a->chunk ? a->chunk : 512),
                          (int)a->threads,
                          a->act_dtype == INFER_ACT_BF16};
    infer_plan_make(cfg, &pa, &plan);
    if (plan.total_bytes <= a->mem_limit)
        return 1;
    LOG_ERROR("the run needs %.2f GiB (weights %.2f, KV cache %.2f for %ld positions in %s, "
              "activations %.2f), more than --mem-limit %.2f GiB; try --kv-dtype bf16, a "
              "smaller --ctx or --prefill-chunk",
              plan.total_bytes / 1073741824.0, plan.weights_bytes / 1073741824.0,
              plan.kv_bytes / 1073741824.0, max_ctx, a->kv_dtype == INFER_DT_F32 ? "f32" : "bf16",
              plan.act_bytes / 1073741824.0, a->mem_limit / 1073741824.0);
    return 0;
}

static int run(const infer_args *a, infer_model *m, tokenizer *tok, uint32_t *ids,
               size_t n_prompt) {
    const infer_config *cfg = infer_model_config(m);
    const size_t V = (size_t)cfg->vocab_size;
    long max_ctx = a->ctx ? a->ctx : (long)n_prompt + a->n_gen;
    if ((long)n_prompt + a->n_gen > max_ctx || max_ctx > INT32_MAX / 2) {
        LOG_ERROR("a prompt of %zu ids plus %ld generated needs more than --ctx %ld positions",
                  n_prompt, a->n_gen, max_ctx);
        return EXIT_USAGE;
    }
    for (size_t i = 0; i < n_prompt; i++)
        if (ids[i] >= V) {
            LOG_ERROR("prompt id %u at position %zu is outside the vocabulary of %zu", ids[i], i,
                      V);
            return EXIT_USAGE;
        }
    /* the plan before allocating anything big */
    infer_opts o = {(int)max_ctx, a->kv_dtype, (int)a->chunk, (int)a->threads, a->act_dtype};
    if (!plan_fits(a, m, max_ctx))
        return EXIT_RUNTIME;
    infer_state *s = NULL;
    int st = infer_state_create(m, &o, &s);
    if (st != INFER_OK) {
        LOG_ERROR("cannot create the state for %ld positions: %s", max_ctx, infer_strerror(st));
        return EXIT_RUNTIME;
    }
    logits_sink sink = {NULL, V, 0};
    uint8_t *want = NULL;
    prob_t *work = malloc(V * sizeof *work);
    int rc = 0;
    if (a->logits_out && !(sink.f = fopen(a->logits_out, "wb"))) {
        LOG_ERROR("%s: %s", a->logits_out, strerror(errno));
        rc = EXIT_RUNTIME;
    }
    if (rc == 0 && !(want = calloc(n_prompt, 1)))
        rc = EXIT_RUNTIME;
    if (rc == 0 && !work)
        rc = EXIT_RUNTIME;
    if (rc == 0 && a->logits_out) {
        uint32_t *pos = NULL;
        size_t np = 0;
        if (a->positions && parse_ids(a->positions, &pos, &np) != 0) {
            LOG_ERROR("--logits-positions wants positions like 0,100,4095");
            rc = EXIT_USAGE;
        }
        for (size_t i = 0; rc == 0 && i < (a->positions ? np : n_prompt); i++) {
            size_t p = a->positions ? pos[i] : i;
            if (p >= n_prompt) {
                LOG_ERROR("--logits-positions: %zu is past the prompt's %zu positions", p,
                          n_prompt);
                rc = EXIT_USAGE;
            } else {
                want[p] = 1;
            }
        }
        free(pos);
    }
    /* the last prompt row is needed to sample from; write it only if wanted */
    const int last_wanted = want && want[n_prompt - 1];
    if (want)
        want[n_prompt - 1] = 1;
    float *last = malloc(V * sizeof(float));
    double t0 = now(), t1 = t0, t2 = t0;
    long n_decode = 0;
    if (rc == 0 && !last)
        rc = EXIT_RUNTIME;
    if (rc == 0) {
        prefill_sink pf = {&sink, last, (int)n_prompt - 1, last_wanted, V};
        st = infer_prefill(s, ids, (int)n_prompt, 0, want, prefill_row, &pf);
        if (st != INFER_OK) {
            LOG_ERROR("prefill: %s", infer_strerror(st));
            rc = EXIT_RUNTIME;
        }
        t1 = now();
    }
    uint64_t rng = a->seed;
    const float *lg = last;
    const int64_t eos = a->ignore_eos ? -1 : cfg->eos_id;
    uint32_t *gen = rc == 0 ? malloc(((size_t)a->n_gen + 1) * sizeof *gen) : NULL;
    long n_out = 0;
    for (long g = 0; rc == 0 && gen && g < a->n_gen; g++) {
        int next = sample(lg, (int)V, (float)a->temp, (int)a->top_k, (float)a->top_p, &rng, work);
        printf(g ? " %d" : "%d", next);
        gen[n_out++] = (uint32_t)next;
        if (next == eos || g + 1 == a->n_gen)
            break;
        infer_forward(s, (uint32_t)next, (int)(n_prompt + (size_t)g), &lg);
        n_decode++;
        write_row(&sink, 0, lg);
    }
    t2 = now();
    if (n_out > 0)
        putchar('\n');
    if (rc == 0 && tok && n_out > 0) {
        tok_ctx *tc;
        const char *text;
        size_t nt;
        if (tok_ctx_create(tok, &tc) == TOK_OK &&
            tokenizer_decode(tc, gen, (size_t)n_out, &text, &nt) == TOK_OK)
            printf("%s\n", text);
        tok_ctx_free(tc);
    }
    fflush(stdout);
    if (a->timings)
        fprintf(stderr,
                "timings: prefill_tokens=%zu prefill_s=%.6f decode_tokens=%ld decode_s=%.6f "
                "threads=%ld kv=%s act=%s isa=%s\n",
                n_prompt, t1 - t0, n_decode, t2 - t1, a->threads ? a->threads : 1,
                a->kv_dtype == INFER_DT_F32 ? "f32" : "bf16", infer_act_name(a->act_dtype),
                infer_isa());
    if (sink.f && (fclose(sink.f) != 0 || sink.failed) && rc == 0) {
        LOG_ERROR("%s: %s", a->logits_out, strerror(errno));
        rc = EXIT_RUNTIME;
    }
    free(gen);
    free(last);
    free(want);
    free(work);
    infer_state_free(s);
    return rc;
}

/* ---- batch mode: prompts.jsonl -> results.jsonl --------------------------------------------- */

typedef struct {
    uint32_t *ids;
    size_t n;
    long max_tokens, top_k;
    double temperature, top_p;
    unsigned long long seed;
} batch_item;

static double log_prob(const float *lg, size_t V, uint32_t id) {
    double mx = lg[0], se = 0;
    for (size_t i = 1; i < V; i++)
        mx = lg[i] > mx ? lg[i] : mx;
    for (size_t i = 0; i < V; i++)
        se += exp((double)lg[i] - mx);
    return (double)lg[id] - mx - log(se);
}

static int last_row(void *ctx, int pos, const float *logits) {
    prefill_sink *p = ctx;
    (void)pos;
    memcpy(p->last, logits, p->V * sizeof(float));
    return 0;
}

/* one line of the input: {"prompt": TEXT} or {"ids": [...]}, optional "max_tokens",
 * "temperature", "top_k", "top_p", "seed" (defaults: the command line's) */
static int batch_parse(const infer_args *a, tokenizer *tok, tok_ctx *tc, const char *line,
                       uint64_t lineno, size_t vocab, batch_item *it) {
    json_object *o = json_tokener_parse(line), *x;
    const char *in = a->batch_in;
    memset(it, 0, sizeof *it);
    it->max_tokens = a->n_gen;
    it->temperature = a->temp;
    it->top_k = a->top_k;
    it->top_p = a->top_p;
    it->seed = a->seed;
    if (!o || !json_object_is_type(o, json_type_object)) {
        LOG_ERROR("%s: line %llu: not a JSON object", in, (unsigned long long)lineno);
        json_object_put(o);
        return -1;
    }
    if (json_object_object_get_ex(o, "max_tokens", &x))
        it->max_tokens = json_object_get_int64(x);
    if (json_object_object_get_ex(o, "temperature", &x))
        it->temperature = json_object_get_double(x);
    if (json_object_object_get_ex(o, "top_k", &x))
        it->top_k = json_object_get_int64(x);
    if (json_object_object_get_ex(o, "top_p", &x))
        it->top_p = json_object_get_double(x);
    if (json_object_object_get_ex(o, "seed", &x))
        it->seed = (unsigned long long)json_object_get_int64(x);
    int rc = 0;
    if (it->max_tokens < 0 || it->max_tokens > (1 << 24) || it->temperature < 0 || it->top_k < 0 ||
        !(it->top_p > 0 && it->top_p <= 1)) {
        LOG_ERROR("%s: line %llu: max_tokens, temperature, top_k or top_p out of range", in,
                  (unsigned long long)lineno);
        rc = -1;
    } else if (json_object_object_get_ex(o, "ids", &x) && json_object_is_type(x, json_type_array)) {
        it->n = json_object_array_length(x);
        it->ids = malloc((it->n ? it->n : 1) * sizeof *it->ids);
        for (size_t i = 0; it->ids && i < it->n; i++) {
            json_object *e = json_object_array_get_idx(x, i);
            int64_t v = json_object_get_int64(e);
            if (!json_object_is_type(e, json_type_int) || v < 0 || (uint64_t)v >= vocab) {
                LOG_ERROR("%s: line %llu: \"ids\"[%zu] is not an id below the vocabulary size "
                          "%zu",
                          in, (unsigned long long)lineno, i, vocab);
                rc = -1;
                break;
            }
            it->ids[i] = (uint32_t)v;
        }
    } else if (json_object_object_get_ex(o, "prompt", &x) &&
               json_object_is_type(x, json_type_string)) {
        if (!tok) {
            LOG_ERROR("%s: line %llu: a text prompt needs the model's tokenizer; give \"ids\"", in,
                      (unsigned long long)lineno);
            rc = -1;
        } else {
            tok_encode_opts eo = tok_encode_opts_default();
            eo.add_bos = !a->no_bos && tokenizer_bos_id(tok) >= 0;
            const uint32_t *enc;
            if (tokenizer_encode(tc, json_object_get_string(x),
                                 (size_t)json_object_get_string_len(x), &eo, &enc,
                                 &it->n) != TOK_OK ||
                !(it->ids = malloc((it->n ? it->n : 1) * sizeof *it->ids)))
                rc = -1;
            else
                memcpy(it->ids, enc, it->n * sizeof *enc);
        }
    } else {
        LOG_ERROR("%s: line %llu: needs \"prompt\" (text) or \"ids\" (array)", in,
                  (unsigned long long)lineno);
        rc = -1;
    }
    if (rc == 0 && (!it->ids || it->n == 0)) {
        LOG_ERROR("%s: line %llu: empty prompt", in, (unsigned long long)lineno);
        rc = -1;
    }
    json_object_put(o);
    return rc;
}

static int run_batch(const infer_args *a, infer_model *m, tokenizer *tok) {
    const infer_config *cfg = infer_model_config(m);
    const size_t V = (size_t)cfg->vocab_size;
    FILE *in = fopen(a->batch_in, "rb"), *out = NULL;
    tok_ctx *tc = NULL;
    batch_item *items = NULL;
    size_t n_items = 0, cap = 0, lcap = 0;
    char *line = NULL;
    uint64_t lineno = 0;
    long need = 1;
    int rc = 0;
    if (!in) {
        LOG_ERROR("%s: %s", a->batch_in, strerror(errno));
        return EXIT_RUNTIME;
    }
    if (tok && tok_ctx_create(tok, &tc) != TOK_OK)
        rc = EXIT_RUNTIME;
    while (rc == 0 && getline(&line, &lcap, in) >= 0) {
        lineno++;
        if (strspn(line, " \t\r\n") == strlen(line))
            continue;
        if (n_items == cap) {
            batch_item *q = realloc(items, (cap = cap ? 2 * cap : 16) * sizeof *q);
            if (!q) {
                rc = EXIT_RUNTIME;
                break;
            }
            items = q;
        }
        if (batch_parse(a, tok, tc, line, lineno, V, &items[n_items]) != 0) {
            free(items[n_items].ids);
            rc = EXIT_RUNTIME;
            break;
        }
        long nn = (long)items[n_items].n + items[n_items].max_tokens;
        need = nn > need ? nn : need;
        n_items++;
    }
    free(line);
    fclose(in);
    long max_ctx = a->ctx ? a->ctx : need;
    if (rc == 0 && need > max_ctx) {
        LOG_ERROR("%s: a prompt plus its max_tokens needs %ld positions, more than --ctx %ld",
                  a->batch_in, need, max_ctx);
        rc = EXIT_USAGE;
    }
    if (rc == 0 && !plan_fits(a, m, max_ctx))
        rc = EXIT_RUNTIME;
    infer_state *s = NULL;
    infer_opts o = {(int)max_ctx, a->kv_dtype, (int)a->chunk, (int)a->threads, a->act_dtype};
    float *last = malloc(V * sizeof(float));
    prob_t *work = malloc(V * sizeof *work);
    if (rc == 0 && (!last || !work || infer_state_create(m, &o, &s) != INFER_OK)) {
        LOG_ERROR("out of memory for %ld positions", max_ctx);
        rc = EXIT_RUNTIME;
    }
    if (rc == 0 && !(out = fopen(a->batch_out, "wb"))) {
        LOG_ERROR("%s: %s", a->batch_out, strerror(errno));
        rc = EXIT_RUNTIME;
    }
    prefill_sink ps = {NULL, last, 0, 0, V};
    uint32_t *gen = NULL;
    double *lp = NULL;
    for (size_t i = 0; rc == 0 && i < n_items; i++) {
        batch_item *it = &items[i];
        free(gen);
        free(lp);
        gen = malloc(((size_t)it->max_tokens + 1) * sizeof *gen);
        lp = malloc(((size_t)it->max_tokens + 1) * sizeof *lp);
        if (!gen || !lp || infer_prefill(s, it->ids, (int)it->n, 0, NULL, last_row, &ps) != 0) {
            rc = EXIT_RUNTIME;
            break;
        }
        uint64_t rng = it->seed;
        const float *lg = last;
        const int64_t eos = a->ignore_eos ? -1 : cfg->eos_id;
        long k = 0;
        const char *finish = "length";
        for (; k < it->max_tokens; k++) {
            int next = sample(lg, (int)V, (float)it->temperature, (int)it->top_k, (float)it->top_p,
                              &rng, work);
            gen[k] = (uint32_t)next;
            lp[k] = log_prob(lg, V, (uint32_t)next);
            if (next == eos) {
                k++;
                finish = "eos";
                break;
            }
            if (k + 1 < it->max_tokens)
                infer_forward(s, (uint32_t)next, (int)(it->n + (size_t)k), &lg);
        }
        json_object *r = json_object_new_object(), *ids = json_object_new_array(),
                    *lps = json_object_new_array();
        for (long j = 0; j < k; j++) {
            json_object_array_add(ids, json_object_new_int64(gen[j]));
            json_object_array_add(lps, json_object_new_double(lp[j]));
        }
        json_object_object_add(r, "index", json_object_new_int64((int64_t)i));
        json_object_object_add(r, "prompt_tokens", json_object_new_int64((int64_t)it->n));
        json_object_object_add(r, "ids", ids);
        json_object_object_add(r, "logprobs", lps);
        if (tc && k > 0) {
            const char *text;
            size_t nt;
            if (tokenizer_decode(tc, gen, (size_t)k, &text, &nt) == TOK_OK)
                json_object_object_add(r, "text", json_object_new_string_len(text, (int)nt));
        }
        json_object_object_add(r, "finish_reason", json_object_new_string(finish));
        if (fprintf(out, "%s\n", json_object_to_json_string_ext(r, JSON_C_TO_STRING_PLAIN)) < 0)
            rc = EXIT_RUNTIME;
        json_object_put(r);
    }
    if (out && fclose(out) != 0 && rc == 0) {
        LOG_ERROR("%s: %s", a->batch_out, strerror(errno));
        rc = EXIT_RUNTIME;
    }
    if (rc == 0)
        LOG_INFO("%zu prompts from %s, results in %s", n_items, a->batch_in, a->batch_out);
    for (size_t i = 0; i < n_items; i++)
        free(items[i].ids);
    free(items);
    free(gen);
    free(lp);
    free(last);
    free(work);
    tok_ctx_free(tc);
    infer_state_free(s);
    return rc;
}

int infer_main(int argc, char **argv) {
    static const struct option opts[] = {{"model", required_argument, NULL, 'm'},
                                         {"prompt", required_argument, NULL, 'P'},
                                         {"prompt-file", required_argument, NULL, 'F'},
                                         {"prompt-ids", required_argument, NULL, 'i'},
                                         {"generate", required_argument, NULL, 'n'},
                                         {"temperature", required_argument, NULL, 't'},
                                         {"top-k", required_argument, NULL, 'k'},
                                         {"top-p", required_argument, NULL, 'p'},
                                         {"seed", required_argument, NULL, 's'},
                                         {"ctx", required_argument, NULL, 'c'},
                                         {"logits-out", required_argument, NULL, 'o'},
                                         {"logits-positions", required_argument, NULL, 'L'},
                                         {"kv-dtype", required_argument, NULL, 'K'},
                                         {"act-dtype", required_argument, NULL, 'A'},
                                         {"prefill-chunk", required_argument, NULL, 'C'},
                                         {"threads", required_argument, NULL, 'T'},
                                         {"mem-limit", required_argument, NULL, 'M'},
                                         {"no-bos", no_argument, NULL, 'B'},
                                         {"ignore-eos", no_argument, NULL, 'E'},
                                         {"timings", no_argument, NULL, 'S'},
                                         {"input", required_argument, NULL, 'I'},
                                         {"output", required_argument, NULL, 'O'},
                                         {"load", required_argument, NULL, 'W'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    cluster_log_setup("infer", 0, 1, CLUSTER_LOG_INFO);
    infer_args a = {0};
    a.top_p = 1.0;
    a.kv_dtype = INFER_DT_F32;
    a.mem_limit = (uint64_t)sysconf(_SC_PHYS_PAGES) * (uint64_t)sysconf(_SC_PAGESIZE);
    int c;
    char *end;
    optind = 0;
    while ((c = getopt_long(argc, argv, "m:h", opts, NULL)) != -1) {
        errno = 0;
        end = NULL;
        switch (c) {
        case 'm':
            a.model = optarg;
            break;
        case 'P':
            a.prompt = optarg;
            break;
        case 'F':
            a.prompt_file = optarg;
            break;
        case 'i':
            a.ids_arg = optarg;
            break;
        case 'o':
            a.logits_out = optarg;
            break;
        case 'L':
            a.positions = optarg;
            break;
        case 'n':
            a.n_gen = strtol(optarg, &end, 10);
            break;
        case 'k':
            a.top_k = strtol(optarg, &end, 10);
            break;
        case 'c':
            a.ctx = strtol(optarg, &end, 10);
            break;
        case 'C':
            a.chunk = strtol(optarg, &end, 10);
            break;
        case 'T':
            a.threads = strtol(optarg, &end, 10);
            break;
        case 't':
            a.temp = strtod(optarg, &end);
            break;
        case 'p':
            a.top_p = strtod(optarg, &end);
            break;
        case 's':
            a.seed = strtoull(optarg, &end, 10);
            break;
        case 'K':
            if (strcmp(optarg, "f32") && strcmp(optarg, "bf16")) {
                fprintf(stderr, "longctx infer: --kv-dtype is f32 or bf16, not '%s'\n", optarg);
                return EXIT_USAGE;
            }
            a.kv_dtype = strcmp(optarg, "f32") ? INFER_DT_BF16 : INFER_DT_F32;
            break;
        case 'A':
            if ((a.act_dtype = parse_act_dtype(optarg)) < 0) {
                fprintf(stderr, "longctx infer: --act-dtype is f32 or bf16, not '%s'\n", optarg);
                return EXIT_USAGE;
            }
            break;
        case 'M':
            if (parse_bytes(optarg, &a.mem_limit) != 0) {
                fprintf(stderr, "longctx infer: bad --mem-limit '%s'\n", optarg);
                return EXIT_USAGE;
            }
            break;
        case 'B':
            a.no_bos = 1;
            break;
        case 'E':
            a.ignore_eos = 1;
            break;
        case 'S':
            a.timings = 1;
            break;
        case 'I':
            a.batch_in = optarg;
            break;
        case 'W':
            if (strcmp(optarg, "ram") && strcmp(optarg, "mmap")) {
                fprintf(stderr, "longctx infer: --load is ram or mmap, not '%s'\n", optarg);
                return EXIT_USAGE;
            }
            a.load = strcmp(optarg, "ram") ? INFER_LOAD_MMAP : INFER_LOAD_RAM;
            break;
        case 'O':
            a.batch_out = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
        if (end && (*end || errno)) {
            fprintf(stderr, "longctx infer: bad number '%s'\n", optarg);
            return EXIT_USAGE;
        }
    }
    int n_prompts = !!a.prompt + !!a.prompt_file + !!a.ids_arg + !!a.batch_in;
    if (!a.model || n_prompts != 1 || !a.batch_in != !a.batch_out || a.n_gen < 0 || a.top_k < 0 ||
        a.ctx < 0 || a.temp < 0 || a.top_p <= 0 || a.top_p > 1 || a.chunk < 0 ||
        a.chunk > (1 << 20) || a.threads < 0 || a.threads > 1024 || optind != argc) {
        fprintf(stderr, "longctx infer: need --model and one of --prompt, --prompt-file, "
                        "--prompt-ids; numbers in range\n\n");
        usage(stderr);
        return EXIT_USAGE;
    }
    uint32_t *ids = NULL;
    size_t n_prompt = 0;
    if (a.ids_arg && a.ids_arg[0] == '@') { /* ids in a file: separated by commas or spaces */
        size_t n;
        char *text = read_file(a.ids_arg + 1, &n);
        for (size_t i = 0; text && i < n; i++)
            if (text[i] == ' ' || text[i] == '\n' || text[i] == '\t' || text[i] == '\r')
                text[i] = ',';
        while (text && n > 0 && text[n - 1] == ',')
            n--;
        if (text)
            text[n] = 0;
        int bad = !text || parse_ids(text, &ids, &n_prompt) != 0;
        if (!text)
            fprintf(stderr, "longctx infer: %s: %s\n", a.ids_arg + 1, strerror(errno));
        else if (bad)
            fprintf(stderr, "longctx infer: %s: wants ids separated by commas or spaces\n",
                    a.ids_arg + 1);
        free(text);
        if (bad)
            return EXIT_USAGE;
    } else if (a.ids_arg && parse_ids(a.ids_arg, &ids, &n_prompt) != 0) {
        fprintf(stderr, "longctx infer: --prompt-ids wants ids like 1,2,3\n");
        return EXIT_USAGE;
    }
    infer_model *m;
    int st = infer_model_load_mode(a.model, a.load, &m);
    if (st != INFER_OK || !act_dtype_ok(a.act_dtype, m, a.model)) {
        if (st != INFER_OK)
            LOG_ERROR("%s: %s", infer_strerror(st), infer_model_errmsg(m));
        infer_model_free(m);
        free(ids);
        return st != INFER_OK ? EXIT_RUNTIME : EXIT_USAGE;
    }
    tokenizer *tok = dir_tokenizer(a.model);
    int rc = 0;
    if (!ids && !a.batch_in) { /* text: through the model's tokenizer */
        size_t n = 0;
        char *text = a.prompt ? strdup(a.prompt) : read_file(a.prompt_file, &n);
        if (a.prompt && text)
            n = strlen(text);
        tok_ctx *tc = NULL;
        const uint32_t *enc;
        tok_encode_opts eo = tok_encode_opts_default();
        eo.add_bos = !a.no_bos && tokenizer_bos_id(tok ? tok : NULL) >= 0;
        if (!text) {
            LOG_ERROR("%s: %s", a.prompt_file ? a.prompt_file : "--prompt", strerror(errno));
            rc = EXIT_RUNTIME;
        } else if (!tok) {
            LOG_ERROR("%s: no tokenizer.json or tokenizer.model beside the model; use "
                      "--prompt-ids",
                      a.model);
            rc = EXIT_USAGE;
        } else if (tok_ctx_create(tok, &tc) != TOK_OK ||
                   tokenizer_encode(tc, text, n, &eo, &enc, &n_prompt) != TOK_OK ||
                   !(ids = malloc((n_prompt ? n_prompt : 1) * sizeof *ids))) {
            LOG_ERROR("out of memory encoding the prompt");
            rc = EXIT_RUNTIME;
        } else if (n_prompt == 0) {
            LOG_ERROR("the prompt encodes to no tokens");
            rc = EXIT_USAGE;
        } else {
            memcpy(ids, enc, n_prompt * sizeof *ids);
        }
        tok_ctx_free(tc);
        free(text);
    }
    if (rc == 0)
        rc = a.batch_in ? run_batch(&a, m, tok) : run(&a, m, tok, ids, n_prompt);
    tokenizer_free(tok);
    free(ids);
    infer_model_free(m);
    return rc;
}

/* ==== plan ====================================================================================*/

static void plan_usage(FILE *f) {
    fprintf(f,
            "usage: longctx plan (--config config.json | --model DIR|model.bin) --ctx N [--tp P]\n"
            "                    [--kv-dtype f32|bf16] [--act-dtype D] [--prefill-chunk C]\n\n"
            "Bytes per rank for weights, KV cache and activations, before anything is\n"
            "loaded (JSON on stdout). Megatron-style tensor parallelism over P ranks:\n"
            "matrices and vocabulary split, norms replicated, KV heads split (one per rank\n"
            "when P exceeds them). Weights in the config's torch_dtype.\n"
            "  --tp P             tensor-parallel ranks (default 1)\n"
            "  --kv-dtype D       f32 or bf16 (default bf16)\n"
            "  --act-dtype D      f32 or bf16 (infer's; bf16 adds a bf16 copy of a product's\n"
            "                     input)\n"
            "  --prefill-chunk C  tokens per prefill chunk (default 512)\n"
            "  --threads N        threads of infer (per-thread scratch; default 1)\n"
            "Activations are what infer allocates; the process's code, libraries and OpenBLAS\n"
            "buffers (about 30 MiB, see BENCHMARKS.md) come on top.\n");
}

int plan_main(int argc, char **argv) {
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"model", required_argument, NULL, 'm'},
                                         {"ctx", required_argument, NULL, 'n'},
                                         {"tp", required_argument, NULL, 't'},
                                         {"kv-dtype", required_argument, NULL, 'k'},
                                         {"act-dtype", required_argument, NULL, 'a'},
                                         {"prefill-chunk", required_argument, NULL, 'p'},
                                         {"threads", required_argument, NULL, 'T'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    cluster_log_setup("plan", 0, 1, CLUSTER_LOG_INFO);
    const char *config = NULL, *model = NULL, *kvd = "bf16", *actd = "f32";
    long long ctx = 0, tp = 1, chunk = 512, threads = 1;
    int c;
    char *end = NULL;
    optind = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        end = NULL;
        switch (c) {
        case 'c':
            config = optarg;
            break;
        case 'm':
            model = optarg;
            break;
        case 'k':
            kvd = optarg;
            break;
        case 'a':
            actd = optarg;
            break;
        case 'n':
            ctx = strtoll(optarg, &end, 10);
            break;
        case 't':
            tp = strtoll(optarg, &end, 10);
            break;
        case 'p':
            chunk = strtoll(optarg, &end, 10);
            break;
        case 'T':
            threads = strtoll(optarg, &end, 10);
            break;
        case 'h':
            plan_usage(stdout);
            return 0;
        default:
            plan_usage(stderr);
            return EXIT_USAGE;
        }
        if (end && *end) {
            fprintf(stderr, "longctx plan: bad number '%s'\n", optarg);
            return EXIT_USAGE;
        }
    }
    if ((!config == !model) || ctx <= 0 || tp <= 0 || tp > 65536 || chunk <= 0 || threads <= 0 ||
        threads > 1024 || (strcmp(kvd, "f32") && strcmp(kvd, "bf16")) ||
        parse_act_dtype(actd) < 0 || optind != argc) {
        fprintf(stderr, "longctx plan: need one of --config/--model, --ctx > 0, --tp > 0, "
                        "--kv-dtype f32|bf16, --act-dtype f32|bf16\n\n");
        plan_usage(stderr);
        return EXIT_USAGE;
    }
    infer_config cfg;
    int wbytes = 4, st;
    char err[512] = "", path[4200];
    size_t ml = model ? strlen(model) : 0;
    if (model && ml > 4 && !strcmp(model + ml - 4, ".bin")) { /* llama2.c: its header */
        infer_model *m;
        st = infer_model_load(model, &m);
        if (st == INFER_OK)
            cfg = *infer_model_config(m);
        else
            snprintf(err, sizeof err, "%s", infer_model_errmsg(m));
        infer_model_free(m);
    } else {
        if (model)
            snprintf(path, sizeof path, "%s/config.json", model);
        else
            snprintf(path, sizeof path, "%s", config);
        st = infer_config_from_json(path, &cfg, &wbytes, err, sizeof err);
    }
    if (st != INFER_OK) {
        LOG_ERROR("%s: %s", infer_strerror(st), err);
        return EXIT_RUNTIME;
    }
    infer_plan p;
    infer_plan_args pa = {(uint64_t)ctx,   (int)tp,      wbytes, strcmp(kvd, "f32") ? 2 : 4,
                          (uint64_t)chunk, (int)threads, 0};
    pa.act_bf16 = parse_act_dtype(actd) == INFER_ACT_BF16;
    infer_plan_make(&cfg, &pa, &p);
    printf("{\"params\": %llu, \"tp\": %lld, \"ctx\": %lld, \"weight_bytes_per_param\": %d, "
           "\"kv_dtype\": \"%s\", \"per_rank\": {\"weights_bytes\": %llu, \"kv_cache_bytes\": "
           "%llu, \"activation_bytes\": %llu, \"total_bytes\": %llu}}\n",
           (unsigned long long)p.n_params, tp, ctx, wbytes, kvd,
           (unsigned long long)p.weights_bytes, (unsigned long long)p.kv_bytes,
           (unsigned long long)p.act_bytes, (unsigned long long)p.total_bytes);
    return 0;
}

/* ==== perplexity ==============================================================================*/

static void ppl_usage(FILE *f) {
    fprintf(f,
            "usage: longctx perplexity --model PATH --input FILE [--ctx N] [--stride S]\n"
            "                          [--per-token FILE] [options]\n\n"
            "Exact per-token negative log-likelihood of long documents (log-sum-exp of the\n"
            "float32 logits in double). Each document is cut into windows of --ctx tokens\n"
            "starting every --stride tokens (HF's sliding-window perplexity): a window scores\n"
            "only the tokens after the previous window's end, each with all the context the\n"
            "window holds before it. JSON on stdout: totals and the loss by position in the\n"
            "window (buckets 0-127, 128-255, 256-511, ... up to --ctx).\n"
            "  --input FILE        .u32 (longctx token ids: per document a uint32 count, then\n"
            "                      the ids), .jsonl (one document per line: \"ids\" array or\n"
            "                      \"text\" through the model's tokenizer, BOS added), or a text\n"
            "                      file (one document)\n"
            "  --ctx N             window length (default: the model's max_position_embeddings)\n"
            "  --stride S          window step, 1..N (default N: disjoint windows)\n"
            "  --per-token FILE    float64 little-endian NLL of every scored token, in order\n"
            "  --kv-dtype, --act-dtype, --prefill-chunk, --threads, --mem-limit   as for infer\n");
}

typedef struct {
    const uint32_t *ids; /* the window */
    const uint8_t *want;
    double sum[64];
    uint64_t count[64];
    double total;
    uint64_t n;
    FILE *per_token;
    int failed;
    size_t vocab;
} ppl_acc;

static int ppl_bucket(int pos) { /* 0: 0..127, 1: 128..255, 2: 256..511, ... */
    int b = 0;
    for (int edge = 128; pos >= edge && b < 63; edge *= 2)
        b++;
    return b;
}

static int ppl_row(void *ctx, int pos, const float *lg) {
    ppl_acc *a = ctx;
    const double nll = -log_prob(lg, a->vocab, a->ids[pos + 1]);
    int b = ppl_bucket(pos + 1);
    a->sum[b] += nll;
    a->count[b]++;
    a->total += nll;
    a->n++;
    if (a->per_token && fwrite(&nll, sizeof nll, 1, a->per_token) != 1)
        a->failed = 1;
    return 0;
}

/* the next document of the input: ids in *ids (n), or SHARD_DONE; errors logged */
typedef struct {
    FILE *f;
    const char *path;
    int kind; /* 0 u32, 1 jsonl, 2 text */
    uint64_t offset, line;
    int done;
    tokenizer *tok;
    tok_ctx *tc;
    char *buf;
    size_t buf_cap;
} doc_reader;

static int next_doc(doc_reader *r, uint32_t **ids, uint64_t *cap, uint64_t *n) {
    if (r->done)
        return 1;
    if (r->kind == 0) {
        const char *why = NULL;
        int st = shard_ids_read(r->f, 1, ids, cap, n, &r->offset, &why);
        if (st == SHARD_DONE)
            return 1;
        if (st != SHARD_OK) {
            LOG_ERROR("%s: offset %llu: %s", r->path, (unsigned long long)r->offset,
                      why ? why : "out of memory");
            return -1;
        }
        return 0;
    }
    const char *text = NULL;
    size_t len = 0;
    json_object *o = NULL;
    if (r->kind == 2) { /* the whole file */
        r->done = 1;
        size_t got;
        while ((got = fread(r->buf + len, 1, r->buf_cap - len, r->f)) > 0) {
            len += got;
            if (len == r->buf_cap) {
                char *q = realloc(r->buf, r->buf_cap *= 2);
                if (!q)
                    return -1;
                r->buf = q;
            }
        }
        text = r->buf;
    } else {
        ssize_t got = getline(&r->buf, &r->buf_cap, r->f);
        if (got < 0)
            return 1;
        r->line++;
        o = json_tokener_parse(r->buf);
        json_object *x;
        if (o && json_object_object_get_ex(o, "ids", &x) &&
            json_object_is_type(x, json_type_array)) {
            size_t k = json_object_array_length(x);
            if (k > *cap) {
                uint32_t *q = realloc(*ids, k * sizeof *q);
                if (!q) {
                    json_object_put(o);
                    return -1;
                }
                *ids = q;
                *cap = k;
            }
            for (size_t i = 0; i < k; i++) {
                json_object *e = json_object_array_get_idx(x, i);
                int64_t v = json_object_get_int64(e);
                if (!json_object_is_type(e, json_type_int) || v < 0 || v > UINT32_MAX) {
                    LOG_ERROR("%s: line %llu: \"ids\"[%zu] is not a token id", r->path,
                              (unsigned long long)r->line, i);
                    json_object_put(o);
                    return -1;
                }
                (*ids)[i] = (uint32_t)v;
            }
            *n = k;
            json_object_put(o);
            return 0;
        }
        if (!o || !json_object_object_get_ex(o, "text", &x) ||
            !json_object_is_type(x, json_type_string)) {
            LOG_ERROR("%s: line %llu: not a JSON object with \"text\" or \"ids\"", r->path,
                      (unsigned long long)r->line);
            json_object_put(o);
            return -1;
        }
        text = json_object_get_string(x);
        len = (size_t)json_object_get_string_len(x);
    }
    if (!r->tok) {
        LOG_ERROR("%s: text input needs the model's tokenizer (tokenizer.json or tokenizer.model "
                  "in the model directory); give ids (.u32) instead",
                  r->path);
        json_object_put(o);
        return -1;
    }
    tok_encode_opts eo = tok_encode_opts_default();
    eo.add_bos = tokenizer_bos_id(r->tok) >= 0;
    const uint32_t *enc;
    size_t k;
    int rc = 0;
    if (tokenizer_encode(r->tc, text, len, &eo, &enc, &k) != TOK_OK) {
        rc = -1;
    } else {
        if (k > *cap) {
            uint32_t *q = realloc(*ids, k * sizeof *q);
            if (!q)
                rc = -1;
            else
                *ids = q, *cap = k;
        }
        if (rc == 0) {
            memcpy(*ids, enc, k * sizeof *enc);
            *n = k;
        }
    }
    json_object_put(o);
    return rc;
}

int perplexity_main(int argc, char **argv) {
    static const struct option opts[] = {{"model", required_argument, NULL, 'm'},
                                         {"input", required_argument, NULL, 'i'},
                                         {"ctx", required_argument, NULL, 'c'},
                                         {"stride", required_argument, NULL, 's'},
                                         {"per-token", required_argument, NULL, 'o'},
                                         {"kv-dtype", required_argument, NULL, 'K'},
                                         {"act-dtype", required_argument, NULL, 'A'},
                                         {"prefill-chunk", required_argument, NULL, 'C'},
                                         {"threads", required_argument, NULL, 'T'},
                                         {"mem-limit", required_argument, NULL, 'M'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    cluster_log_setup("perplexity", 0, 1, CLUSTER_LOG_INFO);
    const char *model = NULL, *input = NULL, *per_token = NULL;
    long ctx = 0, stride = 0, chunk = 0, threads = 0;
    int kv_dtype = INFER_DT_F32, act_dtype = INFER_ACT_F32;
    uint64_t mem_limit = (uint64_t)sysconf(_SC_PHYS_PAGES) * (uint64_t)sysconf(_SC_PAGESIZE);
    int c;
    char *end;
    optind = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        errno = 0;
        end = NULL;
        switch (c) {
        case 'm':
            model = optarg;
            break;
        case 'i':
            input = optarg;
            break;
        case 'o':
            per_token = optarg;
            break;
        case 'c':
            ctx = strtol(optarg, &end, 10);
            break;
        case 's':
            stride = strtol(optarg, &end, 10);
            break;
        case 'C':
            chunk = strtol(optarg, &end, 10);
            break;
        case 'T':
            threads = strtol(optarg, &end, 10);
            break;
        case 'K':
            if (strcmp(optarg, "f32") && strcmp(optarg, "bf16")) {
                fprintf(stderr, "longctx perplexity: --kv-dtype is f32 or bf16\n");
                return EXIT_USAGE;
            }
            kv_dtype = strcmp(optarg, "f32") ? INFER_DT_BF16 : INFER_DT_F32;
            break;
        case 'A':
            if ((act_dtype = parse_act_dtype(optarg)) < 0) {
                fprintf(stderr, "longctx perplexity: --act-dtype is f32 or bf16\n");
                return EXIT_USAGE;
            }
            break;
        case 'M':
            if (parse_bytes(optarg, &mem_limit) != 0) {
                fprintf(stderr, "longctx perplexity: bad --mem-limit '%s'\n", optarg);
                return EXIT_USAGE;
            }
            break;
        case 'h':
            ppl_usage(stdout);
            return 0;
        default:
            ppl_usage(stderr);
            return EXIT_USAGE;
        }
        if (end && (*end || errno)) {
            fprintf(stderr, "longctx perplexity: bad number '%s'\n", optarg);
            return EXIT_USAGE;
        }
    }
    if (!model || !input || ctx < 0 || ctx > (1L << 26) || stride < 0 || chunk < 0 ||
        chunk > (1 << 20) || threads < 0 || threads > 1024 || optind != argc) {
        fprintf(stderr, "longctx perplexity: need --model and --input; numbers in range\n\n");
        ppl_usage(stderr);
        return EXIT_USAGE;
    }
    infer_model *m;
    int st = infer_model_load(model, &m);
    if (st != INFER_OK || !act_dtype_ok(act_dtype, m, model)) {
        if (st != INFER_OK)
            LOG_ERROR("%s: %s", infer_strerror(st), infer_model_errmsg(m));
        infer_model_free(m);
        return st != INFER_OK ? EXIT_RUNTIME : EXIT_USAGE;
    }
    const infer_config *cfg = infer_model_config(m);
    if (!ctx)
        ctx = cfg->seq_len;
    if (!stride)
        stride = ctx;
    if (ctx < 2 || stride > ctx) {
        LOG_ERROR("--ctx %ld must be at least 2 and --stride %ld at most --ctx", ctx, stride);
        infer_model_free(m);
        return EXIT_USAGE;
    }
    doc_reader r = {0};
    r.path = input;
    size_t il = strlen(input);
    r.kind = il > 4 && !strcmp(input + il - 4, ".u32")     ? 0
             : il > 6 && !strcmp(input + il - 6, ".jsonl") ? 1
                                                           : 2;
    r.tok = dir_tokenizer(model);
    r.buf_cap = 1 << 16;
    r.buf = malloc(r.buf_cap);
    r.f = fopen(input, "rb");
    infer_args pa = {0}; /* what plan_fits reads */
    pa.kv_dtype = kv_dtype;
    pa.act_dtype = act_dtype;
    pa.chunk = chunk;
    pa.threads = threads;
    pa.mem_limit = mem_limit;
    infer_state *s = NULL;
    infer_opts o = {(int)ctx, kv_dtype, (int)chunk, (int)threads, act_dtype};
    ppl_acc acc = {0};
    uint8_t *want = calloc((size_t)ctx, 1);
    FILE *pt = per_token ? fopen(per_token, "wb") : NULL;
    int rc = 0;
    if (!r.f || (per_token && !pt)) {
        LOG_ERROR("%s: %s", !r.f ? input : per_token, strerror(errno));
        rc = EXIT_RUNTIME;
    } else if (!plan_fits(&pa, m, ctx)) {
        rc = EXIT_RUNTIME;
    } else if (!r.buf || !want || (r.tok && tok_ctx_create(r.tok, &r.tc) != TOK_OK) ||
               infer_state_create(m, &o, &s) != INFER_OK) {
        LOG_ERROR("out of memory for a window of %ld positions", ctx);
        rc = EXIT_RUNTIME;
    }
    acc.per_token = pt;
    acc.vocab = (size_t)cfg->vocab_size;
    uint32_t *ids = NULL;
    uint64_t cap = 0, n = 0, docs = 0, windows = 0, short_docs = 0, doc_tokens = 0;
    double t0 = now();
    while (rc == 0) {
        int got = next_doc(&r, &ids, &cap, &n);
        if (got != 0) {
            rc = got < 0 ? EXIT_RUNTIME : 0;
            break;
        }
        docs++;
        doc_tokens += n;
        for (uint64_t i = 0; i < n; i++)
            if (ids[i] >= (uint32_t)cfg->vocab_size) {
                LOG_ERROR("%s: document %llu: id %u at %llu is outside the vocabulary of %d", input,
                          (unsigned long long)docs - 1, ids[i], (unsigned long long)i,
                          cfg->vocab_size);
                rc = EXIT_RUNTIME;
                break;
            }
        if (rc || n < 2) {
            short_docs += n < 2;
            continue;
        }
        uint64_t prev_end = 0;
        for (uint64_t begin = 0; rc == 0; begin += (uint64_t)stride) {
            uint64_t e = begin + (uint64_t)ctx < n ? begin + (uint64_t)ctx : n;
            int len = (int)(e - begin);
            /* targets t in [max(prev_end, begin + 1), e): row t - 1 - begin */
            uint64_t first = prev_end > begin + 1 ? prev_end : begin + 1;
            memset(want, 0, (size_t)len);
            for (uint64_t t = first; t < e; t++)
                want[t - 1 - begin] = 1;
            acc.ids = ids + begin;
            if (len > 1 && first < e) { /* the window's last row predicts nothing */
                st = infer_prefill(s, ids + begin, len - 1, 0, want, ppl_row, &acc);
                if (st != INFER_OK) {
                    LOG_ERROR("prefill: %s", infer_strerror(st));
                    rc = EXIT_RUNTIME;
                }
                windows++;
            }
            prev_end = e;
            if (e == n)
                break;
        }
    }
    double t1 = now();
    if (rc == 0 && (acc.failed || (pt && fflush(pt) != 0))) {
        LOG_ERROR("%s: %s", per_token, strerror(errno));
        rc = EXIT_RUNTIME;
    }
    if (rc == 0) {
        double mean = acc.n ? acc.total / (double)acc.n : 0;
        printf("{\"model\": \"%s\", \"input\": \"%s\", \"ctx\": %ld, \"stride\": %ld, "
               "\"documents\": %llu, \"documents_too_short\": %llu, \"document_tokens\": %llu, "
               "\"windows\": %llu, \"tokens_scored\": %llu, \"nll\": %.9g, \"ppl\": %.9g, "
               "\"seconds\": %.3f, \"by_position\": [",
               model, input, ctx, stride, (unsigned long long)docs, (unsigned long long)short_docs,
               (unsigned long long)doc_tokens, (unsigned long long)windows,
               (unsigned long long)acc.n, mean, exp(mean), t1 - t0);
        int first = 1;
        for (int b = 0; b < 64; b++) {
            if (!acc.count[b])
                continue;
            long from = b ? 128L << (b - 1) : 0, to = (128L << b) - 1;
            double bm = acc.sum[b] / (double)acc.count[b];
            printf("%s{\"from\": %ld, \"to\": %ld, \"tokens\": %llu, \"nll\": %.9g, \"ppl\": %.9g}",
                   first ? "" : ", ", from, to, (unsigned long long)acc.count[b], bm, exp(bm));
            first = 0;
        }
        printf("]}\n");
    }
    if (pt && fclose(pt) != 0 && rc == 0)
        rc = EXIT_RUNTIME;
    if (r.f)
        fclose(r.f);
    free(r.buf);
    free(ids);
    free(want);
    tok_ctx_free(r.tc);
    tokenizer_free(r.tok);
    infer_state_free(s);
    infer_model_free(m);
    return rc;
}
