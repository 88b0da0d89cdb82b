/* infer_main.c - `longctx infer`: run a prompt of ids through a model, then generate. */
#include "cluster.h"
#include "infer.h"
#include "longctx_cli.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { EXIT_RUNTIME = 1, EXIT_USAGE = 2 };

static void usage(FILE *f) {
    fprintf(f,
            "usage: longctx infer --model PATH --prompt-ids 1,2,3 [options]\n\n"
            "Runs the prompt through the model (teacher-forced), then generates. Single rank;\n"
            "llama2.c checkpoints (.bin) for now: HF safetensors, tokenizers, RoPE variants,\n"
            "tensor parallelism and the long-context jobs come with the next issues.\n"
            "  --model PATH        llama2.c legacy checkpoint (float32)\n"
            "  --prompt-ids LIST   comma-separated token ids (required)\n"
            "  --generate N        tokens to generate after the prompt (default 0)\n"
            "  --temperature T     0 = greedy (default 0)\n"
            "  --top-k K           sample among the K most likely (default 0 = all)\n"
            "  --top-p P           nucleus sampling (default 1.0 = off)\n"
            "  --seed S            sampling seed (default 0)\n"
            "  --ctx N             context positions (default: the model's seq_len)\n"
            "  --logits-out FILE   float32 little-endian logits of every prompt position, then\n"
            "                      after each generated token but the last (rows of vocab_size;\n"
            "                      generated token k is drawn from row n_prompt - 1 + k)\n"
            "Prints the generated ids on one line (stdout).\n");
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

int infer_main(int argc, char **argv) {
    static const struct option opts[] = {{"model", required_argument, NULL, 'm'},
                                         {"prompt-ids", required_argument, NULL, 'i'},
                                         {"generate", required_argument, NULL, 'n'},
                                         {"temperature", required_argument, NULL, 't'},
                                         {"top-k", required_argument, NULL, 'k'},
                                         {"top-p", required_argument, NULL, 'p'},
                                         {"seed", required_argument, NULL, 's'},
                                         {"ctx", required_argument, NULL, 'c'},
                                         {"logits-out", required_argument, NULL, 'o'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    cluster_log_setup("infer", 0, 1, CLUSTER_LOG_INFO);
    const char *model = NULL, *ids_arg = NULL, *logits_out = NULL;
    long n_gen = 0, top_k = 0, ctx = 0;
    double temp = 0, top_p = 1.0;
    unsigned long long seed = 0;
    int c;
    char *end;
    optind = 0;
    while ((c = getopt_long(argc, argv, "m:h", opts, NULL)) != -1) {
        errno = 0;
        end = NULL;
        switch (c) {
        case 'm':
            model = optarg;
            break;
        case 'i':
            ids_arg = optarg;
            break;
        case 'o':
            logits_out = optarg;
            break;
        case 'n':
            n_gen = strtol(optarg, &end, 10);
            break;
        case 'k':
            top_k = strtol(optarg, &end, 10);
            break;
        case 'c':
            ctx = strtol(optarg, &end, 10);
            break;
        case 't':
            temp = strtod(optarg, &end);
            break;
        case 'p':
            top_p = strtod(optarg, &end);
            break;
        case 's':
            seed = strtoull(optarg, &end, 10);
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
    if (!model || !ids_arg || n_gen < 0 || top_k < 0 || ctx < 0 || temp < 0 || top_p <= 0 ||
        top_p > 1 || optind != argc) {
        fprintf(stderr, "longctx infer: need --model and --prompt-ids; numbers in range\n\n");
        usage(stderr);
        return EXIT_USAGE;
    }
    /* the prompt */
    size_t n_prompt = 0, cap = 16;
    uint32_t *ids = malloc(cap * sizeof *ids);
    for (const char *p = ids_arg; ids && *p;) {
        unsigned long v = strtoul(p, &end, 10);
        if (end == p || (*end && *end != ',') || v > UINT32_MAX) {
            fprintf(stderr, "longctx infer: --prompt-ids wants ids like 1,2,3\n");
            free(ids);
            return EXIT_USAGE;
        }
        if (n_prompt == cap) {
            uint32_t *q = realloc(ids, (cap *= 2) * sizeof *ids);
            if (!q)
                break;
            ids = q;
        }
        ids[n_prompt++] = (uint32_t)v;
        p = *end ? end + 1 : end;
    }
    infer_model *m;
    int st = infer_model_load(model, &m);
    if (st != INFER_OK) {
        LOG_ERROR("%s: %s", infer_strerror(st), infer_model_errmsg(m));
        infer_model_free(m);
        free(ids);
        return EXIT_RUNTIME;
    }
    const infer_config *cfg = infer_model_config(m);
    int max_ctx = ctx ? (int)ctx : cfg->seq_len;
    if ((long)n_prompt + n_gen > max_ctx || n_prompt == 0) {
        LOG_ERROR("a prompt of %zu ids plus %ld generated needs more than --ctx %d positions (or "
                  "the prompt is empty)",
                  n_prompt, n_gen, max_ctx);
        infer_model_free(m);
        free(ids);
        return EXIT_USAGE;
    }
    infer_state *s = NULL;
    FILE *lo = logits_out ? fopen(logits_out, "wb") : NULL;
    prob_t *work = malloc((size_t)cfg->vocab_size * sizeof *work);
    int rc = 0;
    if (infer_state_create(m, max_ctx, &s) != INFER_OK || !work || (logits_out && !lo)) {
        LOG_ERROR("%s", logits_out && !lo ? strerror(errno) : "out of memory");
        rc = EXIT_RUNTIME;
    }
    uint64_t rng = seed;
    const float *lg = NULL;
    for (size_t p = 0; rc == 0 && p < n_prompt; p++) {
        if (infer_forward(s, ids[p], (int)p, &lg) != INFER_OK) {
            LOG_ERROR("prompt id %u at position %zu is outside the vocabulary of %d", ids[p], p,
                      cfg->vocab_size);
            rc = EXIT_RUNTIME;
        } else if (lo) {
            fwrite(lg, sizeof(float), (size_t)cfg->vocab_size, lo);
        }
    }
    for (long g = 0; rc == 0 && g < n_gen; g++) {
        int next = sample(lg, cfg->vocab_size, (float)temp, (int)top_k, (float)top_p, &rng, work);
        printf(g ? " %d" : "%d", next);
        if (g + 1 < n_gen) {
            infer_forward(s, (uint32_t)next, (int)(n_prompt + (size_t)g), &lg);
            if (lo)
                fwrite(lg, sizeof(float), (size_t)cfg->vocab_size, lo);
        }
    }
    if (n_gen > 0)
        putchar('\n');
    if (lo && fclose(lo) != 0 && rc == 0) {
        LOG_ERROR("%s: %s", logits_out, strerror(errno));
        rc = EXIT_RUNTIME;
    }
    free(work);
    free(ids);
    infer_state_free(s);
    infer_model_free(m);
    return rc;
}

/* ==== plan ====================================================================================*/

static void plan_usage(FILE *f) {
    fprintf(f,
            "usage: longctx plan (--config config.json | --model DIR|model.bin) --ctx N [--tp P]\n"
            "                    [--kv-dtype f32|bf16] [--prefill-chunk C]\n\n"
            "Bytes per rank for weights, KV cache and activations, before anything is\n"
            "loaded (JSON on stdout). Megatron-style tensor parallelism over P ranks:\n"
            "matrices and vocabulary split, norms replicated, KV heads split (one per rank\n"
            "when P exceeds them). Weights in the config's torch_dtype.\n"
            "  --tp P             tensor-parallel ranks (default 1)\n"
            "  --kv-dtype D       f32 or bf16 (default bf16)\n"
            "  --prefill-chunk C  tokens per prefill chunk (default 512)\n");
}

int plan_main(int argc, char **argv) {
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},   {"model", required_argument, NULL, 'm'},
        {"ctx", required_argument, NULL, 'n'},      {"tp", required_argument, NULL, 't'},
        {"kv-dtype", required_argument, NULL, 'k'}, {"prefill-chunk", required_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0}};
    cluster_log_setup("plan", 0, 1, CLUSTER_LOG_INFO);
    const char *config = NULL, *model = NULL, *kvd = "bf16";
    long long ctx = 0, tp = 1, chunk = 512;
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
        case 'n':
            ctx = strtoll(optarg, &end, 10);
            break;
        case 't':
            tp = strtoll(optarg, &end, 10);
            break;
        case 'p':
            chunk = strtoll(optarg, &end, 10);
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
    if ((!config == !model) || ctx <= 0 || tp <= 0 || tp > 65536 || chunk <= 0 ||
        (strcmp(kvd, "f32") && strcmp(kvd, "bf16")) || optind != argc) {
        fprintf(stderr, "longctx plan: need one of --config/--model, --ctx > 0, --tp > 0, "
                        "--kv-dtype f32|bf16\n\n");
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
    infer_plan_make(&cfg, (uint64_t)ctx, (int)tp, wbytes, strcmp(kvd, "f32") ? 2 : 4,
                    (uint64_t)chunk, &p);
    printf("{\"params\": %llu, \"tp\": %lld, \"ctx\": %lld, \"weight_bytes_per_param\": %d, "
           "\"kv_dtype\": \"%s\", \"per_rank\": {\"weights_bytes\": %llu, \"kv_cache_bytes\": "
           "%llu, \"activation_bytes\": %llu, \"total_bytes\": %llu}}\n",
           (unsigned long long)p.n_params, tp, ctx, wbytes, kvd,
           (unsigned long long)p.weights_bytes, (unsigned long long)p.kv_bytes,
           (unsigned long long)p.act_bytes, (unsigned long long)p.total_bytes);
    return 0;
}
