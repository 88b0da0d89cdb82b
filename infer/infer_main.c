/* infer_main.c - the `longctx infer`, `plan` and `perplexity` commands: options, one call into
 * the infer library per step, printing. The run options (KV and activation dtypes, prefill
 * chunk, threads) and their defaults are infer_opts_default()'s, shared by all three, so the
 * plan a job is sized with is what infer allocates. */
#include "cluster.h"
#include "infer.h"
#include "longctx_cli.h"
#include "tokenizer.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum { EXIT_RUNTIME = 1, EXIT_USAGE = 2 };

/* ==== shared by the three commands ============================================================*/

static const char *dtype_name(int kv_dtype) {
    return kv_dtype == INFER_DT_F32 ? "f32" : "bf16";
}

/* the run options of every command, with the defaults of infer_opts_default() */
static void opts_usage(FILE *f, int mem_limit) {
    const infer_opts d = infer_opts_default();
    fprintf(f,
            "  --kv-dtype D        f32 or bf16 KV cache (default %s)\n"
            "  --act-dtype D       f32 (default %s: exact products) or bf16: prefill rounds\n"
            "                      the activations that meet BF16 weights to bf16 (AVX512_BF16\n"
            "                      vdpbf16ps, as llama.cpp does): ~1.9x faster products,\n"
            "                      several 1e-3 relative error in the logits\n"
            "  --prefill-chunk N   prompt tokens per step; activations are O(N) (default %d)\n"
            "  --threads N         threads (default %d)\n"
            "  --tp-grid PrxPc     2D prefill: the linear layers of the prompt run as\n"
            "                      ScaLAPACK PSGEMM on a Pr x Pc BLACS grid of the --tp ranks\n"
            "                      (Pr x Pc = P), over f32 block-cyclic copies of the weights\n"
            "                      (plan: grid_weight_bytes); decode stays 1D (default: 1D)\n"
            "  --grid-block NB     the grid's block size (default %d)\n"
            "  --mem-topk K        LongLLaMA: each query attends to its K best memory entries\n"
            "                      (the paper's kNN memory; default %d: all, as the release)\n",
            dtype_name(d.kv_dtype), infer_act_name(d.act_dtype), d.prefill_chunk, d.threads,
            INFER_GRID_BLOCK, d.mem_topk);
    if (mem_limit)
        fprintf(
            f, "  --mem-limit BYTES   refuse a run whose plan (longctx plan) exceeds it; suffixes\n"
               "                      K, M, G (default: the machine's memory)\n");
}

static void usage(FILE *f) {
    fprintf(
        f,
        "usage: longctx infer --model PATH (--prompt TEXT | --prompt-file FILE |\n"
        "                     --prompt-ids 1,2,3 | --input prompts.jsonl --output results.jsonl)\n"
        "                     [options]\n\n"
        "Runs the prompt through the model (teacher-forced, in chunks), then generates.\n"
        "Prints the generated ids on one line (stdout), then their text when the model\n"
        "directory has a tokenizer. Under mpirun/srun the ranks split the model (tensor\n"
        "parallelism, --tp); rank 0 prints and writes every file.\n"
        "  --model PATH        HF model directory (config.json, safetensors F32/BF16/F16,\n"
        "                      tokenizer.json or tokenizer.model) or llama2.c .bin\n"
        "  --prompt TEXT       text, encoded with the model's tokenizer (BOS added if it\n"
        "                      has one; --no-bos to leave it out)\n"
        "  --prompt-file FILE  the same, read from FILE\n"
        "  --prompt-ids LIST   comma-separated token ids, no empty ones (@FILE: read them\n"
        "                      from FILE, separated by commas or white space)\n"
        "  --generate N        tokens to generate after the prompt (default 0); stops at\n"
        "                      the model's EOS unless --ignore-eos\n"
        "  --temperature T     0 = greedy (default 0)\n"
        "  --top-k K           sample among the K most likely (default 0 = all)\n"
        "  --top-p P           nucleus sampling (default 1.0 = off)\n"
        "  --seed S            sampling seed (default 0)\n"
        "  --ctx N             KV cache positions (default: prompt + generated)\n");
    opts_usage(f, 1);
    fprintf(
        f,
        "  --load ram|mmap     safetensors into memory (default ram) or mapped\n"
        "  --tp P              tensor-parallel group size (default: every rank); the world\n"
        "                      size must be a multiple of P: with --input the groups\n"
        "                      (replicas) take prompts as they free up, and the results\n"
        "                      keep the input order\n"
        "  --logits-out FILE   float32 little-endian logits of every prompt position, then\n"
        "                      after each generated token but the last (rows of vocab_size;\n"
        "                      generated token k is drawn from row n_prompt - 1 + k)\n"
        "  --logits-positions LIST  only these prompt positions in --logits-out\n"
        "  --timings           print prefill and decode times, and the bytes the KV cache\n"
        "                      and activations took, on stderr\n"
        "  --input FILE --output FILE   batch mode: one JSON object per line of FILE,\n"
        "                      {\"prompt\": TEXT} or {\"ids\": [...]}, optional \"max_tokens\",\n"
        "                      \"temperature\", \"top_k\", \"top_p\", \"seed\"; writes per line\n"
        "                      {\"index\", \"prompt_tokens\", \"ids\", \"logprobs\" (natural log\n"
        "                      of each generated id under the model, temperature 1), \"text\",\n"
        "                      \"finish_reason\": \"eos\" | \"length\"}; FILE is never\n"
        "                      overwritten; the results go to OUT.tmp, renamed to OUT once\n"
        "                      all are in (a failed or killed run leaves no partial OUT)\n"
        "Non-finite logits (NaN or infinite weights) stop the run with exit 1.\n");
}

/* Unsigned integers separated by commas, none empty (a trailing comma makes an empty one);
 * white space may precede each; space_too: white space alone separates too (a file of ids).
 * 0 on success. */
static int parse_list(const char *arg, int space_too, uint32_t **out, size_t *n_out) {
    size_t n = 0, cap = 16;
    uint32_t *ids = malloc(cap * sizeof *ids);
    const char *p = arg;
    int ok = ids != NULL, after_comma = 0;
    while (ok) {
        while (isspace((unsigned char)*p))
            p++;
        if (*p == 0) { /* the end: fine after an id, not after a comma or before any */
            ok = n > 0 && !after_comma;
            break;
        }
        char *end;
        errno = 0;
        const unsigned long v = isdigit((unsigned char)*p) ? strtoul(p, &end, 10) : ULONG_MAX;
        if (v > UINT32_MAX || errno) { /* an empty element, or not an id */
            ok = 0;
            break;
        }
        if (n == cap) {
            uint32_t *q = realloc(ids, (cap *= 2) * sizeof *ids);
            if (!q) {
                ok = 0;
                break;
            }
            ids = q;
        }
        ids[n++] = (uint32_t)v;
        p = end;
        const char *after = p;
        while (space_too && isspace((unsigned char)*p))
            p++;
        after_comma = *p == ',';
        if (after_comma)
            p++;
        else if (*p != 0 && p == after) /* "1x", or "1 2" on the command line */
            ok = 0;
    }
    if (!ok) {
        free(ids);
        return -1;
    }
    *out = ids;
    *n_out = n;
    return 0;
}

static char *read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    for (size_t got; buf && (got = fread(buf + len, 1, cap - 1 - len, f)) > 0;) {
        len += got;
        if (len == cap - 1) {
            char *q = realloc(buf, cap *= 2);
            if (!q)
                free(buf);
            buf = q;
        }
    }
    if (buf && ferror(f)) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf)
        buf[len] = 0;
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
    if (end == s || *end || errno || !(v > 0) || !(v * mul < 1.8e19))
        return -1;
    *out = (uint64_t)(v * mul);
    return 0;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* getopt codes of the long-only run options */
enum { OPT_TP_GRID = 256, OPT_GRID_BLOCK, OPT_NO_OVERLAP, OPT_MEM_TOPK };

/* The run options every command has (getopt codes K A C T M and the OPT_ ones): 1 if c was one of
 * them, 0 if not, -1 after printing why optarg is bad. */
static int parse_run_opt(int c, const char *cmd, infer_opts *o, uint64_t *mem_limit) {
    const char *name = c == 'K'              ? "kv-dtype"
                       : c == 'A'            ? "act-dtype"
                       : c == 'C'            ? "prefill-chunk"
                       : c == 'T'            ? "threads"
                       : c == OPT_TP_GRID    ? "tp-grid"
                       : c == OPT_GRID_BLOCK ? "grid-block"
                       : c == OPT_NO_OVERLAP ? "no-overlap"
                       : c == OPT_MEM_TOPK   ? "mem-topk"
                                             : NULL;
    char err[256];
    if (c == 'M') {
        if (!mem_limit || parse_bytes(optarg, mem_limit) != 0) {
            fprintf(stderr, "longctx %s: bad --mem-limit '%s'\n", cmd, optarg);
            return -1;
        }
        return 1;
    }
    if (!name)
        return 0;
    if (infer_opts_parse(o, name, optarg, err, sizeof err) != INFER_OK) {
        fprintf(stderr, "longctx %s: %s\n", cmd, err);
        return -1;
    }
    return 1;
}

/* the getopt entries of parse_run_opt (--mem-limit is 'M', where a command has it) */
#define RUN_OPTS                                                                                   \
    {"kv-dtype", required_argument, NULL, 'K'}, {"act-dtype", required_argument, NULL, 'A'},       \
        {"prefill-chunk", required_argument, NULL, 'C'},                                           \
        {"threads", required_argument, NULL, 'T'},                                                 \
        {"tp-grid", required_argument, NULL, OPT_TP_GRID},                                         \
        {"grid-block", required_argument, NULL, OPT_GRID_BLOCK},                                   \
        {"no-overlap", no_argument, NULL, OPT_NO_OVERLAP}, {                                       \
        "mem-topk", required_argument, NULL, OPT_MEM_TOPK                                          \
    }

/* the peak resident memory of this process (VmHWM) */
static uint64_t peak_rss(void) {
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? (uint64_t)ru.ru_maxrss * 1024 : 0;
}

/* the 2D prefill's part of a --timings line (rank 0's), or "" */
static void grid_timings(const infer_state *s, const infer_opts *o, char *buf, size_t n) {
    buf[0] = 0;
    if (o->grid_rows <= 0)
        return;
    uint64_t wb, ab;
    infer_comm_stats cs;
    infer_state_grid_bytes(s, &wb, &ab);
    infer_state_comm_stats(s, &cs);
    snprintf(buf, n,
             " grid=%dx%d grid_block=%d grid_weight_bytes=%llu grid_act_bytes=%llu "
             "grid_gemm_calls=%llu grid_gemm_s=%.6f grid_redist_calls=%llu grid_redist_s=%.6f "
             "grid_redist_bytes=%llu",
             o->grid_rows, o->grid_cols, o->grid_block ? o->grid_block : INFER_GRID_BLOCK,
             (unsigned long long)wb, (unsigned long long)ab, (unsigned long long)cs.grid_gemm_calls,
             cs.grid_gemm_seconds, (unsigned long long)cs.grid_redist_calls, cs.grid_redist_seconds,
             (unsigned long long)cs.grid_redist_bytes);
}

/* the largest and smallest peak resident memory over the world's ranks (collective) */
static void peak_rss_world(unsigned long long *hi, unsigned long long *lo) {
    unsigned long long mine = peak_rss();
    MPI_Allreduce(&mine, hi, 1, MPI_UNSIGNED_LONG_LONG, MPI_MAX, MPI_COMM_WORLD);
    MPI_Allreduce(&mine, lo, 1, MPI_UNSIGNED_LONG_LONG, MPI_MIN, MPI_COMM_WORLD);
}

static uint64_t machine_memory(void) {
    return (uint64_t)sysconf(_SC_PHYS_PAGES) * (uint64_t)sysconf(_SC_PAGESIZE);
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

/* What each rank read of the model and holds: rank 0 logs the smallest and largest over the
 * world's ranks and the sum (collective) */
static void log_load(const infer_model *m, const char *path) {
    unsigned long long mine[2] = {infer_model_bytes_read(m), infer_model_weight_bytes(m)};
    unsigned long long lo[2], hi[2], sum[2];
    MPI_Allreduce(mine, lo, 2, MPI_UNSIGNED_LONG_LONG, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(mine, hi, 2, MPI_UNSIGNED_LONG_LONG, MPI_MAX, MPI_COMM_WORLD);
    MPI_Allreduce(mine, sum, 2, MPI_UNSIGNED_LONG_LONG, MPI_SUM, MPI_COMM_WORLD);
    const double Mi = 1048576.0;
    LOG_INFO("%s: read %.1f-%.1f MiB per rank (%.1f MiB in all), weights held %.1f-%.1f MiB per "
             "rank",
             path, lo[0] / Mi, hi[0] / Mi, sum[0] / Mi, lo[1] / Mi, hi[1] / Mi);
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

/* 1 if the run's plan fits mem_limit; else logs the plan and returns 0 */
static int plan_fits(const infer_opts *o, uint64_t mem_limit, const infer_model *m, int tp) {
    infer_plan plan;
    const int wbytes = infer_model_weight_dtype(m) == INFER_DT_F32 ? 4 : 2;
    infer_plan_make(infer_model_config(m), wbytes, o, tp, &plan);
    /* 2D: while the state is made, the weights' redistribution buffers are held in place of the
     * grid's activation buffers (allocated after them) */
    const uint64_t peak = plan.total_bytes + (plan.grid_setup_bytes > plan.grid_act_bytes
                                                  ? plan.grid_setup_bytes - plan.grid_act_bytes
                                                  : 0);
    if (peak <= mem_limit)
        return 1;
    LOG_ERROR("the run needs %.2f GiB per rank at its peak (weights %.2f, KV cache %.2f for %d "
              "positions in %s, "
              "activations %.2f, 2D prefill's f32 copies and buffers %.2f), more than --mem-limit "
              "%.2f GiB; try --kv-dtype bf16, a smaller --ctx or --prefill-chunk%s",
              peak / 1073741824.0, plan.weights_bytes / 1073741824.0, plan.kv_bytes / 1073741824.0,
              o->max_ctx, dtype_name(o->kv_dtype), plan.act_bytes / 1073741824.0,
              (plan.grid_weight_bytes + plan.grid_act_bytes) / 1073741824.0,
              mem_limit / 1073741824.0, o->grid_rows ? ", or 1D prefill (no --tp-grid)" : "");
    return 0;
}

/* the state for o after the checks infer_state_create makes, with their reason; an exit code */
static int state_create(const infer_model *m, const infer_opts *o, MPI_Comm tp, infer_state **s) {
    char why[256];
    int n_tp;
    *s = NULL;
    MPI_Comm_size(tp, &n_tp);
    if (infer_opts_check(infer_model_config(m), o, n_tp, why, sizeof why) != INFER_OK) {
        LOG_ERROR("%s", why);
        return EXIT_USAGE;
    }
    int st = infer_state_create(m, o, tp, s);
    if (st != INFER_OK) {
        LOG_ERROR("cannot create the state for %d positions: %s", o->max_ctx, infer_strerror(st));
        return EXIT_RUNTIME;
    }
    return 0;
}

/* where the values first went non-finite, when a re-run of ids[0..n) can tell ("" if not); the
 * re-run overwrites the KV cache: the run ends there anyway */
static void nonfinite_where(infer_state *s, const uint32_t *ids, size_t n, char *where,
                            size_t where_bytes) {
    int layer, at;
    const int n_layers = infer_model_config(infer_state_model(s))->n_layers;
    where[0] = 0;
    if (n == 0 || n > INT32_MAX / 2 || infer_state_find_nonfinite(s, ids, (int)n, &layer, &at) != 0)
        return;
    if (layer < 0)
        snprintf(where, where_bytes, "; the first non-finite value: the embedding of position %d",
                 at);
    else if (layer < n_layers)
        snprintf(where, where_bytes,
                 "; the first non-finite value: the output of layer %d at position %d", layer, at);
    else
        snprintf(where, where_bytes,
                 "; the hidden states are finite: the final norm or the classifier");
}

/* non-finite logits at pos (lg: the row, a copy; bad: its first non-finite logit; ids[0..n):
 * the sequence up to pos) */
static void log_nonfinite(infer_state *s, const uint32_t *ids, size_t n, int pos, const float *lg,
                          int64_t bad) {
    char where[128];
    nonfinite_where(s, ids, n, where, sizeof where);
    LOG_ERROR("non-finite logits at position %d (logit %lld is %g): the model's weights or "
              "activations hold NaN or infinity%s",
              pos, (long long)bad, (double)lg[bad], where);
}

/* Results on stdout are only results once they reach it: a failed write or flush (a full
 * disk, a closed pipe) is a runtime failure. */
static int stdout_done(int rc) {
    if ((fflush(stdout) != 0 || ferror(stdout)) && rc == 0) {
        LOG_ERROR("stdout: %s", errno ? strerror(errno) : "write error");
        return EXIT_RUNTIME;
    }
    return rc;
}

/* ==== ranks ===================================================================================*/

/* The world's ranks as tensor-parallel groups (cluster_groups, cluster.h). */
typedef cluster_groups ranks;

/* the groups of --tp (0: every rank in one group); an exit code, or -1 to go on */
static int ranks_make(const char *cmd, long tp, ranks *r) {
    const int st = cluster_groups_make(MPI_COMM_WORLD, tp > INT32_MAX ? -1 : (int)tp, r);
    if (st == CLUSTER_ERR_ARG) {
        fprintf(stderr,
                "longctx %s: --tp %ld must divide the %d MPI ranks (world size = replicas x "
                "tensor-parallel size)\n",
                cmd, tp, r->size);
        return EXIT_USAGE;
    }
    if (st != CLUSTER_OK) {
        fprintf(stderr, "longctx %s: cannot make the tensor-parallel groups: %s\n", cmd,
                cluster_strerror(st));
        return EXIT_RUNTIME;
    }
    return -1;
}

static void ranks_free(ranks *r) {
    cluster_groups_free(r);
}

/* rc as every rank of the world sees it: the lowest rank's nonzero rc, else 0 (a file rank 0
 * could not open stops every rank before the next collective) */
static int world_rc(int rc) {
    return cluster_agree_first(MPI_COMM_WORLD, rc);
}

/* infer and perplexity on any number of ranks: every rank runs body; rank 0 alone prints
 * (stdout and stderr of the others go to /dev/null, unless LONGCTX_LOG_RANKS=all: every failure
 * reaches rank 0 by agreement, naming the rank it happened on). MPI_Init first (the commands own
 * MPI, longctx_cli.h). */
static int all_ranks(int argc, char **argv, int (*body)(int, char **)) {
    int rank = 0, rc, level;
    /* FUNNELED: the compute threads never call MPI; the calling thread does, between and
     * during their tasks (the overlapped prefill's MPI_Testall, infer_pool_set_progress) */
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &level);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    const char *all = getenv("LONGCTX_LOG_RANKS");
    if (rank != 0) {
        if (!freopen("/dev/null", "w", stdout))
            return EXIT_RUNTIME;
        if (!(all && !strcmp(all, "all")) && !freopen("/dev/null", "w", stderr))
            return EXIT_RUNTIME;
    }
    rc = body(argc, argv);
    MPI_Finalize();
    return rc;
}

/* plan runs on one rank: more would print identical copies. rank 0 says why. */
static int one_rank(const char *cmd, int argc, char **argv, int (*body)(int, char **)) {
    int rank = 0, n_ranks = 1, rc;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &n_ranks);
    if (n_ranks > 1) {
        if (rank == 0)
            fprintf(stderr,
                    "longctx %s: runs on one MPI rank until tensor parallelism lands; started "
                    "on %d ranks, it would run %d identical copies (use -np 1 or no mpirun)\n",
                    cmd, n_ranks, n_ranks);
        rc = EXIT_USAGE;
    } else {
        rc = body(argc, argv);
    }
    MPI_Finalize();
    return rc;
}

/* ==== infer ===================================================================================*/

typedef struct {
    const char *model, *prompt, *prompt_file, *ids_arg, *logits_out, *positions;
    const char *batch_in, *batch_out;
    long n_gen, top_k, ctx;
    double temp, top_p;
    unsigned long long seed;
    int no_bos, ignore_eos, timings, load;
    infer_opts o; /* max_ctx set per run */
    uint64_t mem_limit;
    long tp; /* --tp (0: all ranks) */
    ranks rr;
} infer_args;

typedef struct {
    FILE *f;
    size_t vocab;
    int failed;
} logits_sink;

static void write_row(logits_sink *k, const float *logits) {
    if (k->f && fwrite(logits, sizeof(float), k->vocab, k->f) != k->vocab)
        k->failed = 1;
}

typedef struct {
    logits_sink *k;
    float *last;
    int last_pos, last_wanted;
    size_t V;
    int bad_pos;
    int64_t bad;
} prefill_sink;

/* a prompt row: checked, to the file if wanted, and the last one kept to sample from */
static int prefill_row(void *ctx, int pos, const float *logits) {
    prefill_sink *p = ctx;
    if ((p->bad = infer_logits_find_nonfinite(logits, p->V)) >= 0) {
        p->bad_pos = pos;
        memcpy(p->last, logits, p->V * sizeof(float));
        return INFER_ERR_NUMERIC;
    }
    if (pos == p->last_pos) {
        memcpy(p->last, logits, p->V * sizeof(float));
        if (!p->last_wanted)
            return 0;
    }
    if (p->k)
        write_row(p->k, logits);
    return 0;
}

/* the prefill of n ids with its errors logged; an exit code */
static int prefill(infer_state *s, const uint32_t *ids, size_t n, const uint8_t *want,
                   prefill_sink *pf) {
    int st = infer_prefill(s, ids, (int)n, 0, want, prefill_row, pf);
    if (st == INFER_ERR_NUMERIC) {
        log_nonfinite(s, ids, (size_t)pf->bad_pos + 1, pf->bad_pos, pf->last, pf->bad);
        return EXIT_RUNTIME;
    }
    if (st != INFER_OK) {
        LOG_ERROR("prefill: %s", infer_strerror(st));
        return EXIT_RUNTIME;
    }
    return 0;
}

/* one decode step of token at position pos (after prompt[0..n_prompt) and gen[0..pos -
 * n_prompt), gen holding token last) with its logits checked; an exit code */
static int decode(infer_state *s, const uint32_t *prompt, size_t n_prompt, const uint32_t *gen,
                  int pos, const float **lg, size_t V) {
    const uint32_t token = gen[(size_t)pos - n_prompt];
    int st = infer_forward(s, token, pos, lg);
    if (st != INFER_OK) {
        LOG_ERROR("decode at position %d: %s", pos, infer_strerror(st));
        return EXIT_RUNTIME;
    }
    const int64_t bad = infer_logits_find_nonfinite(*lg, V);
    if (bad < 0)
        return 0;
    const size_t n = (size_t)pos + 1;
    uint32_t *seq = malloc(n * sizeof *seq);
    float *row = malloc(V * sizeof *row); /* the re-run overwrites *lg */
    if (seq && row) {
        memcpy(seq, prompt, n_prompt * sizeof *seq);
        memcpy(seq + n_prompt, gen, (n - n_prompt) * sizeof *seq);
        memcpy(row, *lg, V * sizeof *row);
        log_nonfinite(s, seq, n, pos, row, bad);
    } else {
        log_nonfinite(s, NULL, 0, pos, *lg, bad);
    }
    free(seq);
    free(row);
    return EXIT_RUNTIME;
}

/* want[i] for the prompt positions of --logits-positions (all without it); an exit code */
static int wanted_positions(const infer_args *a, uint8_t *want, size_t n_prompt) {
    uint32_t *pos = NULL;
    size_t np = 0;
    if (a->positions && parse_list(a->positions, 0, &pos, &np) != 0) {
        LOG_ERROR("--logits-positions wants positions like 0,100,4095");
        return EXIT_USAGE;
    }
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < (a->positions ? np : n_prompt); i++) {
        size_t p = a->positions ? pos[i] : i;
        if (p >= n_prompt) {
            LOG_ERROR("--logits-positions: %zu is past the prompt's %zu positions", p, n_prompt);
            rc = EXIT_USAGE;
        } else {
            want[p] = 1;
        }
    }
    free(pos);
    return rc;
}

static void print_text(tokenizer *tok, const uint32_t *gen, size_t n) {
    tok_ctx *tc;
    const char *text;
    size_t nt;
    if (tok_ctx_create(tok, &tc) == TOK_OK && tokenizer_decode(tc, gen, n, &text, &nt) == TOK_OK)
        printf("%s\n", text);
    tok_ctx_free(tc);
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
    infer_opts o = a->o;
    o.max_ctx = (int)max_ctx;
    if (!plan_fits(&o, a->mem_limit, m, a->rr.tp_size))
        return EXIT_RUNTIME;
    infer_state *s = NULL;
    int rc = state_create(m, &o, a->rr.tp, &s);
    if (rc)
        return rc;
    logits_sink sink = {NULL, V, 0};
    uint8_t *want = calloc(n_prompt, 1);
    void *work = malloc(infer_sample_work_bytes((int)V));
    float *last = malloc(V * sizeof(float));
    uint32_t *gen = malloc(((size_t)a->n_gen + 1) * sizeof *gen);
    /* every rank computes every row (gathered); rank 0 writes them */
    if (a->logits_out && a->rr.rank == 0 && !(sink.f = fopen(a->logits_out, "wb"))) {
        LOG_ERROR("%s: %s", a->logits_out, strerror(errno));
        rc = EXIT_RUNTIME;
    }
    if (rc == 0 && (!want || !work || !last || !gen)) {
        LOG_ERROR("out of memory");
        rc = EXIT_RUNTIME;
    }
    if (rc == 0 && a->logits_out)
        rc = wanted_positions(a, want, n_prompt);
    rc = world_rc(rc);
    double t0 = now(), t1 = t0, t2 = t0;
    long n_decode = 0, n_out = 0;
    if (rc == 0) {
        /* the last prompt row is needed to sample from; write it only if wanted */
        const int last_wanted = want[n_prompt - 1];
        want[n_prompt - 1] = 1;
        prefill_sink pf = {&sink, last, (int)n_prompt - 1, last_wanted, V, 0, -1};
        rc = prefill(s, ids, n_prompt, want, &pf);
        t1 = now();
    }
    infer_comm_stats c_pre, c_all;
    infer_state_comm_stats(s, &c_pre);
    uint64_t rng = a->seed;
    const int64_t eos = a->ignore_eos ? -1 : cfg->eos_id;
    const float temp = (float)a->temp, top_p = (float)a->top_p;
    uint32_t next = 0;
    if (rc == 0 && a->n_gen > 0)
        next = (uint32_t)infer_sample(last, (int)V, temp, (int)a->top_k, top_p, &rng, work);
    for (long g = 0; rc == 0 && g < a->n_gen; g++) {
        printf(g ? " %u" : "%u", next);
        gen[n_out++] = next;
        if ((int64_t)next == eos || g + 1 == a->n_gen)
            break;
        const int pos = (int)(n_prompt + (size_t)g);
        n_decode++;
        if (a->logits_out) { /* the whole row, for the file */
            const float *lg;
            rc = decode(s, ids, n_prompt, gen, pos, &lg, V);
            if (rc == 0) {
                write_row(&sink, lg);
                next = (uint32_t)infer_sample(lg, (int)V, temp, (int)a->top_k, top_p, &rng, work);
            }
            continue;
        }
        /* no row gathered where the sampler does not need it (tensor parallelism) */
        int st = infer_forward_sample(s, next, pos, temp, (int)a->top_k, top_p, &rng, &next);
        if (st == INFER_ERR_NUMERIC) { /* again, with the row, to say where */
            const float *lg;
            rc = decode(s, ids, n_prompt, gen, pos, &lg, V);
            rc = rc ? rc : EXIT_RUNTIME;
        } else if (st != INFER_OK) {
            LOG_ERROR("decode at position %d: %s", pos, infer_strerror(st));
            rc = EXIT_RUNTIME;
        }
    }
    t2 = now();
    infer_state_comm_stats(s, &c_all);
    if (n_out > 0)
        putchar('\n');
    if (rc == 0 && tok && n_out > 0)
        print_text(tok, gen, (size_t)n_out);
    rc = stdout_done(rc);
    if (a->timings) {
        uint64_t kv_bytes, act_bytes;
        unsigned long long rss_hi, rss_lo;
        infer_state_bytes(s, &kv_bytes, &act_bytes);
        peak_rss_world(&rss_hi, &rss_lo);
        char grid[512];
        grid_timings(s, &o, grid, sizeof grid);
        fprintf(stderr,
                "timings: prefill_tokens=%zu prefill_s=%.6f decode_tokens=%ld decode_s=%.6f "
                "threads=%d kv=%s act=%s isa=%s kv_bytes=%llu act_bytes=%llu tp=%d "
                "comm_prefill_s=%.6f comm_decode_s=%.6f comm_calls=%llu comm_bytes=%llu "
                "peak_rss_max=%llu peak_rss_min=%llu%s\n",
                n_prompt, t1 - t0, n_decode, t2 - t1, o.threads ? o.threads : 1,
                dtype_name(o.kv_dtype), infer_act_name(o.act_dtype), infer_isa(),
                (unsigned long long)kv_bytes, (unsigned long long)act_bytes, a->rr.tp_size,
                c_pre.seconds, c_all.seconds - c_pre.seconds, (unsigned long long)c_all.calls,
                (unsigned long long)c_all.bytes, rss_hi, rss_lo, grid);
    }
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

static int last_row(void *ctx, int pos, const float *logits) {
    prefill_sink *p = ctx;
    memcpy(p->last, logits, p->V * sizeof(float));
    if ((p->bad = infer_logits_find_nonfinite(logits, p->V)) >= 0) {
        p->bad_pos = pos;
        return INFER_ERR_NUMERIC;
    }
    return 0;
}

/* the lines of --input, parsed; *need: the positions the longest takes; an exit code */
static int batch_read(const infer_args *a, const infer_model *m, tok_ctx *tc, int add_bos,
                      infer_batch_item **items_out, size_t *n_out, long *need) {
    const size_t V = (size_t)infer_model_config(m)->vocab_size;
    FILE *in = fopen(a->batch_in, "rb");
    infer_batch_item *items = NULL;
    size_t n_items = 0, cap = 0, lcap = 0;
    char *line = NULL, err[512];
    uint64_t lineno = 0;
    int rc = 0;
    tok_json *json = NULL;
    if (!in) {
        LOG_ERROR("%s: %s", a->batch_in, strerror(errno));
        return EXIT_RUNTIME;
    }
    if (tok_json_create("prompt", NULL, 0, &json) != TOK_JSON_OK)
        rc = EXIT_RUNTIME;
    *need = 1;
    ssize_t got;
    while (rc == 0 && (got = getline(&line, &lcap, in)) >= 0) {
        lineno++;
        const size_t n_line = (size_t)got - (got > 0 && line[got - 1] == '\n');
        if (tok_json_is_blank(line, n_line)) /* no record, as prep and tokenize skip it */
            continue;
        if (n_items == cap) {
            infer_batch_item *q = realloc(items, (cap = cap ? 2 * cap : 16) * sizeof *q);
            if (!q) {
                rc = EXIT_RUNTIME;
                break;
            }
            items = q;
        }
        infer_batch_item *it = &items[n_items];
        memset(it, 0, sizeof *it);
        it->max_tokens = a->n_gen; /* the command line's, unless the line says */
        it->temperature = a->temp;
        it->top_k = a->top_k;
        it->top_p = a->top_p;
        it->seed = a->seed;
        if (infer_batch_parse(line, n_line, json, tc, add_bos, V, it, err, sizeof err) !=
            INFER_OK) {
            LOG_ERROR("%s: line %llu: %s", a->batch_in, (unsigned long long)lineno, err);
            infer_batch_item_free(it);
            rc = EXIT_RUNTIME;
            break;
        }
        long nn = (long)it->n + it->max_tokens;
        *need = nn > *need ? nn : *need;
        n_items++;
    }
    free(line);
    fclose(in);
    tok_json_free(json);
    *items_out = items;
    *n_out = n_items;
    return rc;
}

/* every rank's results to rank 0 (collective over the world); an exit code */
static int records_gather(const cluster_records *mine, char **all, size_t *n_all) {
    const int st = cluster_records_gather(MPI_COMM_WORLD, mine, all, n_all);
    if (st != CLUSTER_OK) {
        LOG_ERROR("cannot gather the results on rank 0: %s", cluster_strerror(st));
        return EXIT_RUNTIME;
    }
    return 0;
}

/* rc as every rank of the tensor-parallel group sees it */
static int group_rc(const ranks *rr, int rc) {
    return cluster_agree_first(rr->tp, rc);
}

/* A failure on any rank of the world, with its message, for rank 0 to print (the others' stderr
 * goes nowhere): rc and the lowest failing rank's last error reach every rank; rank 0 logs it
 * when it is not its own. Collective over the world. */
static int world_failure(int rc) {
    int size;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (size == 1)
        return rc;
    char msg[1024] = "", got[1024];
    if (rc)
        cluster_log_last_error(msg, sizeof msg);
    int failed = -1, rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    const int st = cluster_agree_msg(MPI_COMM_WORLD, rc ? -rc : 0, msg, got, sizeof got, &failed);
    if (st < 0 && rank == 0 && failed != 0)
        LOG_ERROR("rank %d failed: %s", failed, got[0] ? got : "(no message)");
    return st < 0 ? -st : 0;
}

/* one item's result line, {"index", "prompt_tokens", "ids", "logprobs", "text",
 * "finish_reason"}, to out, or to b (replicas); an exit code */
static int batch_write(FILE *out, cluster_records *b, tok_ctx *tc, size_t i,
                       const infer_batch_item *it, const uint32_t *gen, const double *lp, long k,
                       const char *finish) {
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
    size_t n;
    const char *line = json_object_to_json_string_length(r, JSON_C_TO_STRING_PLAIN, &n);
    int rc = out ? fprintf(out, "%s\n", line) < 0
             : b ? cluster_records_add(b, (uint64_t)i, line, n) != 0
                 : 0;
    json_object_put(r);
    return rc ? EXIT_RUNTIME : 0;
}

/* prefill and generate one item into gen, lp (k of them); an exit code */
static int batch_generate(const infer_args *a, infer_state *s, const infer_batch_item *it, size_t V,
                          int64_t eos_id, float *last, void *work, uint32_t *gen, double *lp,
                          long *k_out, const char **finish) {
    prefill_sink ps = {NULL, last, 0, 0, V, 0, -1};
    int rc = 0, st = infer_prefill(s, it->ids, (int)it->n, 0, NULL, last_row, &ps);
    if (st == INFER_ERR_NUMERIC) {
        log_nonfinite(s, it->ids, (size_t)ps.bad_pos + 1, ps.bad_pos, last, ps.bad);
        return EXIT_RUNTIME;
    }
    if (st != INFER_OK) {
        LOG_ERROR("prefill: %s", infer_strerror(st));
        return EXIT_RUNTIME;
    }
    uint64_t rng = it->seed;
    const float *lg = last;
    const int64_t eos = a->ignore_eos ? -1 : eos_id;
    long k = 0;
    *finish = "length";
    for (; rc == 0 && k < it->max_tokens; k++) {
        int next = infer_sample(lg, (int)V, (float)it->temperature, (int)it->top_k,
                                (float)it->top_p, &rng, work);
        gen[k] = (uint32_t)next;
        lp[k] = infer_log_prob(lg, V, (uint32_t)next);
        if (next == eos) {
            k++;
            *finish = "eos";
            break;
        }
        if (k + 1 < it->max_tokens)
            rc = decode(s, it->ids, it->n, gen, (int)(it->n + (size_t)k), &lg, V);
    }
    *k_out = k;
    return rc;
}

static int run_batch(const infer_args *a, infer_model *m, tokenizer *tok) {
    const infer_config *cfg = infer_model_config(m);
    const size_t V = (size_t)cfg->vocab_size;
    FILE *out = NULL;
    tok_ctx *tc = NULL;
    infer_batch_item *items = NULL;
    size_t n_items = 0;
    long need = 1;
    int rc = 0;
    if (tok && tok_ctx_create(tok, &tc) != TOK_OK)
        rc = EXIT_RUNTIME;
    if (rc == 0)
        rc = batch_read(a, m, tc, !a->no_bos && tok && tokenizer_bos_id(tok) >= 0, &items, &n_items,
                        &need);
    long max_ctx = a->ctx ? a->ctx : need;
    if (rc == 0 && (need > max_ctx || max_ctx > INT32_MAX / 2)) {
        LOG_ERROR("%s: a prompt plus its max_tokens needs %ld positions, more than --ctx %ld",
                  a->batch_in, need, max_ctx);
        rc = EXIT_USAGE;
    }
    infer_opts o = a->o;
    o.max_ctx = (int)max_ctx;
    if (rc == 0 && !plan_fits(&o, a->mem_limit, m, a->rr.tp_size))
        rc = EXIT_RUNTIME;
    infer_state *s = NULL;
    float *last = malloc(V * sizeof(float));
    void *work = malloc(infer_sample_work_bytes((int)V));
    if (rc == 0 && (!last || !work)) {
        LOG_ERROR("out of memory for %ld positions", max_ctx);
        rc = EXIT_RUNTIME;
    }
    rc = world_rc(rc); /* every rank read the same lines: this is for memory */
    if (rc == 0)
        rc = state_create(m, &o, a->rr.tp, &s);
    const ranks *rr = &a->rr;
    /* written as OUT.tmp and renamed when every result is in: a killed or failed run leaves
     * no partial OUT (nor replaces an earlier one) */
    char tmp_out[4200];
    snprintf(tmp_out, sizeof tmp_out, "%s.tmp", a->batch_out);
    if (rc == 0 && rr->rank == 0 && !(out = fopen(tmp_out, "wb"))) {
        LOG_ERROR("%s: %s", tmp_out, strerror(errno));
        rc = EXIT_RUNTIME;
    }
    rc = world_rc(rc);
    /* One replica: rank 0 writes each result as it comes. More: each group's rank 0 keeps its
     * results, and rank 0 writes them all in input order at the end. */
    cluster_queue *q = NULL;
    cluster_records mine = {0};
    if (rc == 0 && rr->n_replicas > 1 && cluster_queue_create(MPI_COMM_WORLD, n_items, &q) != 0) {
        LOG_ERROR("cannot create the work queue of the replicas");
        rc = EXIT_RUNTIME;
    }
    uint32_t *gen = NULL;
    double *lp = NULL;
    for (uint64_t step = 0; rc == 0; step++) {
        const uint64_t i = rr->n_replicas > 1 ? cluster_groups_next(rr, q, 0) : step;
        if (i >= n_items)
            break;
        const infer_batch_item *it = &items[i];
        free(gen);
        free(lp);
        gen = malloc(((size_t)it->max_tokens + 1) * sizeof *gen);
        lp = malloc(((size_t)it->max_tokens + 1) * sizeof *lp);
        long k = 0;
        const char *finish = "length";
        rc = group_rc(rr, !gen || !lp ? EXIT_RUNTIME : 0);
        if (rc == 0)
            rc = batch_generate(a, s, it, V, cfg->eos_id, last, work, gen, lp, &k, &finish);
        if (rc == 0 && rr->tp_rank == 0)
            rc = rr->n_replicas > 1 ? batch_write(NULL, &mine, tc, i, it, gen, lp, k, finish)
                                    : batch_write(out, NULL, tc, i, it, gen, lp, k, finish);
        rc = group_rc(rr, rc); /* a write that failed on the group's rank 0 stops the group */
    }
    cluster_queue_free(q);
    rc = world_failure(rc);
    if (rr->n_replicas > 1 && rc == 0) { /* the results to rank 0, in input order */
        char *all = NULL;
        size_t n_all = 0;
        const char **rec = NULL;
        rc = records_gather(&mine, &all, &n_all);
        errno = 0;
        if (rc == 0 && rr->rank == 0 &&
            (rc = cluster_records_index(all, n_all, n_items, &rec) ? EXIT_RUNTIME : 0) == 0)
            for (uint64_t i = 0; rc == 0 && i < n_items; i++) {
                uint64_t n = 0;
                const char *line = rec[i] ? cluster_record_bytes(rec[i], &n) : NULL;
                if (!line || fwrite(line, 1, (size_t)n, out) != n || fputc('\n', out) < 0)
                    rc = EXIT_RUNTIME;
            }
        if (rc && rr->rank == 0)
            LOG_ERROR("%s: %s", a->batch_out, errno ? strerror(errno) : "a result is missing");
        free(rec);
        free(all);
    }
    cluster_records_free(&mine);
    if (out && (fflush(out) != 0 || fsync(fileno(out)) != 0) && rc == 0) {
        LOG_ERROR("%s: %s", tmp_out, strerror(errno));
        rc = EXIT_RUNTIME;
    }
    if (out && fclose(out) != 0 && rc == 0) {
        LOG_ERROR("%s: %s", tmp_out, strerror(errno));
        rc = EXIT_RUNTIME;
    }
    if (out && rc == 0 && rename(tmp_out, a->batch_out) != 0) {
        LOG_ERROR("%s: rename to %s: %s", tmp_out, a->batch_out, strerror(errno));
        rc = EXIT_RUNTIME;
    }
    if (out && rc != 0)
        unlink(tmp_out);
    rc = world_rc(rc);
    if (rc == 0)
        LOG_INFO("%zu prompts from %s, results in %s (%d replica%s of tensor-parallel size %d)",
                 n_items, a->batch_in, a->batch_out, rr->n_replicas, rr->n_replicas > 1 ? "s" : "",
                 rr->tp_size);
    for (size_t i = 0; i < n_items; i++)
        infer_batch_item_free(&items[i]);
    free(items);
    free(gen);
    free(lp);
    free(last);
    free(work);
    tok_ctx_free(tc);
    infer_state_free(s);
    return rc;
}

/* 1 if --output names the file --input is (the same inode, by any path or link) */
static int same_file(const char *a, const char *b) {
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

/* the options of infer into *a; an exit code, or -1 to go on */
static int infer_parse(int argc, char **argv, infer_args *a) {
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
                                         RUN_OPTS,
                                         {"mem-limit", required_argument, NULL, 'M'},
                                         {"no-bos", no_argument, NULL, 'B'},
                                         {"ignore-eos", no_argument, NULL, 'E'},
                                         {"timings", no_argument, NULL, 'S'},
                                         {"input", required_argument, NULL, 'I'},
                                         {"output", required_argument, NULL, 'O'},
                                         {"load", required_argument, NULL, 'W'},
                                         {"tp", required_argument, NULL, 'X'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int c, r;
    char *end;
    optind = 0;
    while ((c = getopt_long(argc, argv, "m:h", opts, NULL)) != -1) {
        errno = 0;
        end = NULL;
        if ((r = parse_run_opt(c, "infer", &a->o, &a->mem_limit)) != 0) {
            if (r < 0)
                return EXIT_USAGE;
            continue;
        }
        switch (c) {
        case 'm':
            a->model = optarg;
            break;
        case 'P':
            a->prompt = optarg;
            break;
        case 'F':
            a->prompt_file = optarg;
            break;
        case 'i':
            a->ids_arg = optarg;
            break;
        case 'o':
            a->logits_out = optarg;
            break;
        case 'L':
            a->positions = optarg;
            break;
        case 'n':
            a->n_gen = strtol(optarg, &end, 10);
            break;
        case 'k':
            a->top_k = strtol(optarg, &end, 10);
            break;
        case 'c':
            a->ctx = strtol(optarg, &end, 10);
            break;
        case 't':
            a->temp = strtod(optarg, &end);
            break;
        case 'p':
            a->top_p = strtod(optarg, &end);
            break;
        case 's':
            a->seed = strtoull(optarg, &end, 10);
            break;
        case 'B':
            a->no_bos = 1;
            break;
        case 'E':
            a->ignore_eos = 1;
            break;
        case 'S':
            a->timings = 1;
            break;
        case 'I':
            a->batch_in = optarg;
            break;
        case 'W':
            if (strcmp(optarg, "ram") && strcmp(optarg, "mmap")) {
                fprintf(stderr, "longctx infer: --load is ram or mmap, not '%s'\n", optarg);
                return EXIT_USAGE;
            }
            a->load = strcmp(optarg, "ram") ? INFER_LOAD_MMAP : INFER_LOAD_RAM;
            break;
        case 'O':
            a->batch_out = optarg;
            break;
        case 'X':
            a->tp = strtol(optarg, &end, 10);
            if (!*end && a->tp < 1) {
                fprintf(stderr, "longctx infer: --tp wants a size >= 1\n");
                return EXIT_USAGE;
            }
            break;
        case 'h':
            usage(stdout);
            return stdout_done(0);
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
        if (end && (end == optarg || *end || errno)) {
            fprintf(stderr, "longctx infer: bad number '%s'\n", optarg);
            return EXIT_USAGE;
        }
    }
    const char *bad;
    if (infer_sample_check(a->temp, a->top_k, a->top_p, &bad) != INFER_OK) {
        fprintf(stderr, "longctx infer: --%s: %s\n",
                !strcmp(bad, "temperature") ? "temperature"
                : !strcmp(bad, "top_k")     ? "top-k"
                                            : "top-p",
                !strcmp(bad, "temperature") ? "want a finite number >= 0 (0: greedy)"
                : !strcmp(bad, "top_k")     ? "want an integer >= 0 (0: all)"
                                            : "want a number in (0, 1]");
        return EXIT_USAGE;
    }
    int n_prompts = !!a->prompt + !!a->prompt_file + !!a->ids_arg + !!a->batch_in;
    if (!a->model || n_prompts != 1 || !a->batch_in != !a->batch_out || a->n_gen < 0 ||
        a->ctx < 0 || optind != argc) {
        fprintf(stderr, "longctx infer: need --model and one of --prompt, --prompt-file, "
                        "--prompt-ids; numbers in range\n\n");
        usage(stderr);
        return EXIT_USAGE;
    }
    if (a->batch_in && same_file(a->batch_in, a->batch_out)) {
        fprintf(stderr, "longctx infer: --output %s is the same file as --input %s\n", a->batch_out,
                a->batch_in);
        return EXIT_USAGE;
    }
    return -1;
}

/* --prompt-ids LIST or @FILE into ids; an exit code, or -1 to go on */
static int prompt_ids(const char *arg, uint32_t **ids, size_t *n_prompt) {
    if (arg[0] != '@') {
        if (parse_list(arg, 0, ids, n_prompt) == 0)
            return -1;
        fprintf(stderr, "longctx infer: --prompt-ids wants ids like 1,2,3\n");
        return EXIT_USAGE;
    }
    size_t n;
    char *text = read_file(arg + 1, &n);
    if (!text) { /* a file that is not there is a runtime failure, as for --prompt-file */
        fprintf(stderr, "longctx infer: %s: %s\n", arg + 1, strerror(errno));
        return EXIT_RUNTIME;
    }
    int bad = strlen(text) != n || parse_list(text, 1, ids, n_prompt) != 0;
    free(text);
    if (!bad)
        return -1;
    fprintf(stderr, "longctx infer: %s: wants ids separated by commas or spaces\n", arg + 1);
    return EXIT_USAGE;
}

/* --prompt or --prompt-file through the model's tokenizer into ids; an exit code */
static int prompt_text(const infer_args *a, tokenizer *tok, uint32_t **ids, size_t *n_prompt) {
    size_t n = 0;
    char *text = a->prompt ? strdup(a->prompt) : read_file(a->prompt_file, &n);
    if (a->prompt && text)
        n = strlen(text);
    tok_ctx *tc = NULL;
    const uint32_t *enc;
    int rc = 0;
    if (!text) {
        LOG_ERROR("%s: %s", a->prompt_file ? a->prompt_file : "--prompt", strerror(errno));
        rc = EXIT_RUNTIME;
    } else if (!tok) {
        LOG_ERROR("%s: no tokenizer.json or tokenizer.model beside the model; use "
                  "--prompt-ids",
                  a->model);
        rc = EXIT_USAGE;
    } else {
        tok_encode_opts eo = tok_encode_opts_default();
        eo.add_bos = !a->no_bos && tokenizer_bos_id(tok) >= 0;
        if (tok_ctx_create(tok, &tc) != TOK_OK ||
            tokenizer_encode(tc, text, n, &eo, &enc, n_prompt) != TOK_OK ||
            !(*ids = malloc((*n_prompt ? *n_prompt : 1) * sizeof **ids))) {
            LOG_ERROR("out of memory encoding the prompt");
            rc = EXIT_RUNTIME;
        } else if (*n_prompt == 0) {
            LOG_ERROR("the prompt encodes to no tokens");
            rc = EXIT_USAGE;
        } else {
            memcpy(*ids, enc, *n_prompt * sizeof **ids);
        }
    }
    tok_ctx_free(tc);
    free(text);
    return rc;
}

static int infer_body(infer_args *a_in);

static int infer_cmd(int argc, char **argv) {
    infer_args a = {0};
    a.top_p = 1.0;
    a.o = infer_opts_default();
    a.mem_limit = machine_memory();
    int rc = infer_parse(argc, argv, &a);
    if (rc >= 0)
        return rc;
    if ((rc = ranks_make("infer", a.tp, &a.rr)) >= 0)
        return rc;
    cluster_log_setup("infer", a.rr.rank, a.rr.size, CLUSTER_LOG_INFO);
    if (a.rr.n_replicas > 1 && !a.batch_in) {
        fprintf(stderr,
                "longctx infer: %d ranks with --tp %d make %d replicas; one prompt runs on one "
                "tensor-parallel group: start %d ranks, or give --input prompts.jsonl\n",
                a.rr.size, a.rr.tp_size, a.rr.n_replicas, a.rr.tp_size);
        ranks_free(&a.rr);
        return EXIT_USAGE;
    }
    rc = infer_body(&a);
    ranks_free(&a.rr);
    return rc;
}

static int infer_body(infer_args *a_in) {
    infer_args a = *a_in;
    int rc;
    uint32_t *ids = NULL;
    size_t n_prompt = 0;
    if (a.ids_arg && (rc = prompt_ids(a.ids_arg, &ids, &n_prompt)) >= 0)
        return rc;
    infer_model *m;
    int st = infer_model_load_mode(a.model, a.load, a.rr.tp, &m);
    if (st != INFER_OK || !act_dtype_ok(a.o.act_dtype, m, a.model)) {
        if (st != INFER_OK)
            LOG_ERROR("%s: %s", infer_strerror(st), infer_model_errmsg(m));
        infer_model_free(m);
        free(ids);
        return st == INFER_ERR_ARG || st == INFER_OK ? EXIT_USAGE : EXIT_RUNTIME;
    }
    log_load(m, a.model);
    tokenizer *tok = dir_tokenizer(a.model);
    rc = 0;
    if (!ids && !a.batch_in) /* text: through the model's tokenizer */
        rc = prompt_text(&a, tok, &ids, &n_prompt);
    if (rc == 0)
        rc = a.batch_in ? run_batch(&a, m, tok) : run(&a, m, tok, ids, n_prompt);
    tokenizer_free(tok);
    free(ids);
    infer_model_free(m);
    return stdout_done(rc);
}

int infer_main(int argc, char **argv) {
    return all_ranks(argc, argv, infer_cmd);
}

/* ==== plan ====================================================================================*/

static void plan_usage(FILE *f) {
    fprintf(f,
            "usage: longctx plan (--config config.json | --model DIR|model.bin) --ctx N\n"
            "                    [--tp P[,P...]] [--ranks N] [--table] [--kv-dtype f32|bf16]\n"
            "                    [--act-dtype D] [--prefill-chunk C] [--threads N]\n"
            "                    [--tp-grid PrxPc [--grid-block NB]]\n\n"
            "Bytes per rank for weights, KV cache and activations, before anything is\n"
            "loaded: one JSON object per line on stdout (per --tp size), or a table. Megatron\n"
            "tensor parallelism over P ranks, as infer and perplexity run it: matrices, the\n"
            "embedding and the classifier split, norms replicated, KV heads split (when P\n"
            "exceeds them each rank keeps one: they are replicated P / kv_heads times). Weights\n"
            "in the config's torch_dtype. The options and their defaults are infer's and\n"
            "perplexity's, so the plan is what they allocate.\n"
            "  --ctx N             KV cache positions (infer's --ctx; perplexity's window)\n"
            "  --tp P[,P...]       tensor-parallel group sizes (default 1); each must divide\n"
            "                      the attention heads, as infer requires\n"
            "  --ranks N           world size (default: P): N / P replicas, each with the\n"
            "                      whole model split over its P ranks; N must be a multiple\n"
            "  --table             a table for people instead of JSON\n"
            "The model files of Llama-3.1-70B and Llama-2-70B sizes are in infer/configs/.\n");
    opts_usage(f, 0);
    fprintf(f, "Activations are what infer allocates; the process's code, libraries and OpenBLAS\n"
               "buffers (about 30 MiB, see BENCHMARKS.md) come on top.\n");
}

static int plan_cmd(int argc, char **argv) {
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"model", required_argument, NULL, 'm'},
                                         {"ctx", required_argument, NULL, 'n'},
                                         {"tp", required_argument, NULL, 't'},
                                         {"ranks", required_argument, NULL, 'r'},
                                         {"table", no_argument, NULL, 'b'},
                                         RUN_OPTS,
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    cluster_log_setup("plan", 0, 1, CLUSTER_LOG_INFO);
    const char *config = NULL, *model = NULL, *tp_arg = NULL;
    long long ctx = 0, n_world = 0;
    int table = 0;
    infer_opts o = infer_opts_default();
    int c, r;
    char *end = NULL;
    optind = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        end = NULL;
        if ((r = parse_run_opt(c, "plan", &o, NULL)) != 0) {
            if (r < 0)
                return EXIT_USAGE;
            continue;
        }
        switch (c) {
        case 'c':
            config = optarg;
            break;
        case 'm':
            model = optarg;
            break;
        case 'n':
            ctx = strtoll(optarg, &end, 10);
            break;
        case 't':
            tp_arg = optarg;
            break;
        case 'r':
            n_world = strtoll(optarg, &end, 10);
            break;
        case 'b':
            table = 1;
            break;
        case 'h':
            plan_usage(stdout);
            return stdout_done(0);
        default:
            plan_usage(stderr);
            return EXIT_USAGE;
        }
        if (end && (end == optarg || *end)) {
            fprintf(stderr, "longctx plan: bad number '%s'\n", optarg);
            return EXIT_USAGE;
        }
    }
    uint32_t *tps = NULL;
    size_t n_tp = 0;
    char grid_tp[32] = "1"; /* --tp's default: 1, or the grid's size */
    if (o.grid_rows > 0)
        snprintf(grid_tp, sizeof grid_tp, "%d", o.grid_rows * o.grid_cols);
    if (parse_list(tp_arg ? tp_arg : grid_tp, 0, &tps, &n_tp) != 0 || n_tp == 0) {
        fprintf(stderr, "longctx plan: --tp wants sizes like 8 or 4,8,16\n");
        return EXIT_USAGE;
    }
    int bad = (!config == !model) || ctx <= 0 || ctx > INT32_MAX / 2 || n_world < 0 ||
              n_world > 1 << 20 || optind != argc;
    for (size_t i = 0; i < n_tp; i++)
        bad |= tps[i] == 0 || tps[i] > 65536;
    if (bad) {
        fprintf(stderr,
                "longctx plan: need one of --config/--model, --ctx in [1, %d], --tp sizes in "
                "[1, 65536]\n\n",
                INT32_MAX / 2);
        plan_usage(stderr);
        free(tps);
        return EXIT_USAGE;
    }
    infer_config cfg;
    int wbytes = 4;
    char err[512] = "";
    int st = infer_config_load(model ? model : config, &cfg, &wbytes, err, sizeof err);
    if (st != INFER_OK) {
        LOG_ERROR("%s: %s", infer_strerror(st), err);
        free(tps);
        return EXIT_RUNTIME;
    }
    o.max_ctx = (int)ctx;
    for (size_t i = 0; i < n_tp; i++) {
        const long long tp = tps[i], world = n_world ? n_world : tp;
        if (world % tp) {
            fprintf(stderr, "longctx plan: --ranks %lld is not a multiple of --tp %lld\n", world,
                    tp);
            free(tps);
            return EXIT_USAGE;
        }
        if (infer_opts_check(&cfg, &o, (int)tp, err, sizeof err) != INFER_OK) {
            fprintf(stderr, "longctx plan: %s: %s\n", model ? model : config, err);
            free(tps);
            return EXIT_USAGE;
        }
    }
    if (table && o.grid_rows > 0)
        printf("2D prefill on a %dx%d grid, blocks of %d: f32 copies of the layer matrices and "
               "grid buffers in \"2D GiB\" (in the total)\n",
               o.grid_rows, o.grid_cols, o.grid_block ? o.grid_block : INFER_GRID_BLOCK);
    const int g2 = o.grid_rows > 0;
    if (table)
        printf("%-6s %-8s %12s %12s %12s%s %12s  %-22s %s\n", "tp", "replicas", "weights GiB",
               "KV GiB", "act GiB", g2 ? "       2D GiB" : "", "total GiB", "KV heads/rank",
               "all-reduce per token");
    for (size_t i = 0; i < n_tp; i++) {
        const long long tp = tps[i], world = n_world ? n_world : tp;
        infer_plan p;
        infer_plan_make(&cfg, wbytes, &o, (int)tp, &p);
        const double G = 1073741824.0;
        if (table) {
            char kvs[32], ar[64];
            if (p.kv_replicas > 1)
                snprintf(kvs, sizeof kvs, "%d (each on %d ranks)", p.kv_heads_per_rank,
                         p.kv_replicas);
            else
                snprintf(kvs, sizeof kvs, "%d", p.kv_heads_per_rank);
            snprintf(ar, sizeof ar, "%llu x %d KiB", (unsigned long long)p.allreduce_calls_token,
                     cfg.dim * 4 / 1024);
            char g2s[24] = "";
            if (g2)
                snprintf(g2s, sizeof g2s, " %12.2f", (p.grid_weight_bytes + p.grid_act_bytes) / G);
            printf("%-6lld %-8lld %12.2f %12.2f %12.2f%s %12.2f  %-22s %s\n", tp, world / tp,
                   p.weights_bytes / G, p.kv_bytes / G, p.act_bytes / G, g2s, p.total_bytes / G,
                   kvs, tp > 1 ? ar : "-");
            continue;
        }
        printf("{\"params\": %llu, \"tp\": %lld, \"ranks\": %lld, \"replicas\": %lld, \"ctx\": "
               "%lld, \"weight_bytes_per_param\": %d, \"kv_dtype\": \"%s\", \"per_rank\": "
               "{\"weights_bytes\": %llu, \"kv_cache_bytes\": %llu, \"activation_bytes\": %llu, "
               "\"total_bytes\": %llu, \"kv_heads\": %d, \"kv_heads_replicated\": %d, "
               "\"longllama_memory_bytes\": %llu}, "
               "\"allreduce\": {\"calls_per_token\": %llu, \"bytes_per_token\": %llu, "
               "\"bytes_per_chunk\": %llu}, \"grid\": {\"rows\": %d, \"cols\": %d, \"block\": %d, "
               "\"f32_weight_bytes\": %llu, \"act_bytes\": %llu, \"setup_bytes\": %llu}}\n",
               (unsigned long long)p.n_params, tp, world, world / tp, ctx, wbytes,
               dtype_name(o.kv_dtype), (unsigned long long)p.weights_bytes,
               (unsigned long long)p.kv_bytes, (unsigned long long)p.act_bytes,
               (unsigned long long)p.total_bytes, p.kv_heads_per_rank, p.kv_replicas,
               (unsigned long long)p.mem_bytes, (unsigned long long)p.allreduce_calls_token,
               (unsigned long long)p.allreduce_bytes_token,
               (unsigned long long)p.allreduce_bytes_chunk, o.grid_rows, o.grid_cols,
               o.grid_rows ? (o.grid_block ? o.grid_block : INFER_GRID_BLOCK) : 0,
               (unsigned long long)p.grid_weight_bytes, (unsigned long long)p.grid_act_bytes,
               (unsigned long long)p.grid_setup_bytes);
    }
    free(tps);
    return stdout_done(0);
}

int plan_main(int argc, char **argv) {
    return one_rank("plan", argc, argv, plan_cmd);
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
            "window (buckets 0-127, 128-255, 256-511, ... up to --ctx). An input with no token\n"
            "to score (every document shorter than 2 tokens) fails (exit 1), as do non-finite\n"
            "logits.\n"
            "  --input FILE        .u32 (longctx token ids: per document a uint32 count, then\n"
            "                      the ids), .jsonl (one document per line: \"ids\" array or\n"
            "                      \"text\" through the model's tokenizer, BOS added), or a text\n"
            "                      file (one document)\n"
            "  --ctx N             window length (default: the model's max_position_embeddings)\n"
            "  --stride S          window step, 1..N (default N: disjoint windows)\n"
            "  --per-token FILE    float64 little-endian NLL of every scored token, in order\n"
            "  --tp P              tensor-parallel group size under mpirun (default: every\n"
            "                      rank); more ranks make replicas that take documents as they\n"
            "                      free up; documents are summed in input order, so the result\n"
            "                      does not depend on the rank count\n"
            "  --timings           the bytes the KV cache and activations took, on stderr\n");
    opts_usage(f, 1);
}

typedef struct {
    FILE *f;
    int failed;
} nll_sink;

typedef struct {
    const char *model, *input, *per_token;
    long ctx, stride;
    int timings;
    infer_opts o;
    uint64_t mem_limit;
    long tp; /* --tp (0: all ranks) */
    ranks rr;
} ppl_args;

/* the options of perplexity into *a; an exit code, or -1 to go on */
static int ppl_parse(int argc, char **argv, ppl_args *a) {
    static const struct option opts[] = {{"model", required_argument, NULL, 'm'},
                                         {"input", required_argument, NULL, 'i'},
                                         {"ctx", required_argument, NULL, 'c'},
                                         {"stride", required_argument, NULL, 's'},
                                         {"per-token", required_argument, NULL, 'o'},
                                         {"timings", no_argument, NULL, 'S'},
                                         RUN_OPTS,
                                         {"mem-limit", required_argument, NULL, 'M'},
                                         {"tp", required_argument, NULL, 'X'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int c, r;
    char *end;
    optind = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        errno = 0;
        end = NULL;
        if ((r = parse_run_opt(c, "perplexity", &a->o, &a->mem_limit)) != 0) {
            if (r < 0)
                return EXIT_USAGE;
            continue;
        }
        switch (c) {
        case 'm':
            a->model = optarg;
            break;
        case 'i':
            a->input = optarg;
            break;
        case 'o':
            a->per_token = optarg;
            break;
        case 'S':
            a->timings = 1;
            break;
        case 'c':
            a->ctx = strtol(optarg, &end, 10);
            break;
        case 's':
            a->stride = strtol(optarg, &end, 10);
            break;
        case 'X':
            a->tp = strtol(optarg, &end, 10);
            if (!*end && a->tp < 1) {
                fprintf(stderr, "longctx perplexity: --tp wants a size >= 1\n");
                return EXIT_USAGE;
            }
            break;
        case 'h':
            ppl_usage(stdout);
            return stdout_done(0);
        default:
            ppl_usage(stderr);
            return EXIT_USAGE;
        }
        if (end && (end == optarg || *end || errno)) {
            fprintf(stderr, "longctx perplexity: bad number '%s'\n", optarg);
            return EXIT_USAGE;
        }
    }
    if (!a->model || !a->input || a->ctx < 0 || a->ctx > (1L << 26) || a->stride < 0 ||
        optind != argc) {
        fprintf(stderr, "longctx perplexity: need --model and --input; numbers in range\n\n");
        ppl_usage(stderr);
        return EXIT_USAGE;
    }
    return -1;
}

static void ppl_print(const ppl_args *a, const infer_ppl *acc, uint64_t docs, uint64_t short_docs,
                      uint64_t doc_tokens, double seconds) {
    const double mean = acc->total / (double)acc->n;
    printf("{\"model\": \"%s\", \"input\": \"%s\", \"ctx\": %ld, \"stride\": %ld, "
           "\"documents\": %llu, \"documents_too_short\": %llu, \"document_tokens\": %llu, "
           "\"windows\": %llu, \"tokens_scored\": %llu, \"nll\": %.9g, \"ppl\": %.9g, "
           "\"seconds\": %.3f, \"by_position\": [",
           a->model, a->input, a->ctx, a->stride, (unsigned long long)docs,
           (unsigned long long)short_docs, (unsigned long long)doc_tokens,
           (unsigned long long)acc->windows, (unsigned long long)acc->n, mean, exp(mean), seconds);
    int first = 1;
    for (int b = 0; b < INFER_PPL_BUCKETS; b++) {
        if (!acc->count[b])
            continue;
        long from, to;
        infer_ppl_bucket_range(b, &from, &to);
        double bm = acc->sum[b] / (double)acc->count[b];
        printf("%s{\"from\": %ld, \"to\": %ld, \"tokens\": %llu, \"nll\": %.9g, \"ppl\": %.9g}",
               first ? "" : ", ", from, to, (unsigned long long)acc->count[b], bm, exp(bm));
        first = 0;
    }
    printf("]}\n");
}

/* the NLLs of one document (--per-token) */
typedef struct {
    double *v;
    size_t n, cap;
    int failed;
} nll_buf;

static int keep_nll(void *ctx, double nll) {
    nll_buf *b = ctx;
    if (b->n == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 4096;
        double *q = realloc(b->v, cap * sizeof *q);
        if (!q) {
            b->failed = 1;
            return 1;
        }
        b->v = q;
        b->cap = cap;
    }
    b->v[b->n++] = nll;
    return 0;
}

/* one document's result, as a replica hands it to rank 0 (then its NLLs) */
typedef struct {
    infer_ppl acc;
    uint64_t tokens, n_nll;
} ppl_doc;

/* *t += one document's sums. Documents are summed one by one, in input order, whatever the
 * replicas: the totals do not depend on the rank count. */
static void ppl_add(infer_ppl *t, const infer_ppl *d) {
    for (int b = 0; b < INFER_PPL_BUCKETS; b++) {
        t->sum[b] += d->sum[b];
        t->count[b] += d->count[b];
    }
    t->total += d->total;
    t->n += d->n;
    t->windows += d->windows;
}

/* A document into the totals (rank 0), its NLLs to the file; an exit code */
static int ppl_take(const ppl_args *a, const ppl_doc *d, const double *nll, infer_ppl *acc,
                    uint64_t *short_docs, uint64_t *doc_tokens, nll_sink *pt) {
    ppl_add(acc, &d->acc);
    *short_docs += d->tokens < 2;
    *doc_tokens += d->tokens;
    if (pt->f && d->n_nll && fwrite(nll, sizeof *nll, (size_t)d->n_nll, pt->f) != d->n_nll) {
        LOG_ERROR("%s: %s", a->per_token, strerror(errno));
        return EXIT_RUNTIME;
    }
    return 0;
}

/* every document of r through the windows, documents handed to the replicas as they free up;
 * an exit code */
static int ppl_run(const ppl_args *a, infer_state *s, infer_doc_reader *r, int vocab, uint8_t *want,
                   nll_sink *pt) {
    const ranks *rr = &a->rr;
    const int replicas = rr->n_replicas > 1;
    infer_ppl acc = {0};
    uint64_t read = 0, short_docs = 0, doc_tokens = 0;
    const uint32_t *ids = NULL;
    uint64_t n = 0;
    int rc = 0, st, eof = 0;
    nll_buf nb = {0};
    cluster_records mine = {0};
    cluster_queue *q = NULL;
    double t0 = now();
    /* the count of documents is known at the end only: the queue hands out ids until every
     * group has read past the last */
    if (replicas && cluster_queue_create(MPI_COMM_WORLD, UINT64_MAX, &q) != 0) {
        LOG_ERROR("cannot create the work queue of the replicas");
        rc = EXIT_RUNTIME;
    }
    for (uint64_t step = 0; rc == 0 && !eof; step++) {
        const uint64_t i = replicas ? cluster_groups_next(rr, q, 0) : step;
        if (i == UINT64_MAX)
            break;
        while (rc == 0 && read <= i) { /* every rank of the group reads the same file */
            st = infer_doc_reader_next(r, &ids, &n);
            if (st == INFER_DONE) {
                eof = 1;
                break;
            }
            if (st != INFER_OK) {
                LOG_ERROR("%s", infer_doc_reader_errmsg(r));
                rc = EXIT_RUNTIME;
            }
            read++;
        }
        if (rc || eof)
            break;
        for (uint64_t k = 0; k < n; k++)
            if (ids[k] >= (uint32_t)vocab) {
                LOG_ERROR("%s: document %llu: id %u at %llu is outside the vocabulary of %d",
                          a->input, (unsigned long long)i, ids[k], (unsigned long long)k, vocab);
                rc = EXIT_RUNTIME;
                break;
            }
        if (rc)
            break;
        ppl_doc d = {.tokens = n};
        uint64_t bad_pos = 0;
        nb.n = 0;
        st = infer_ppl_document(s, ids, n, (int)a->ctx, (int)a->stride, want, &d.acc,
                                a->per_token ? keep_nll : NULL, &nb, &bad_pos);
        if (st == INFER_ERR_NUMERIC) {
            char where[128] = ""; /* the first window's positions are the document's */
            if (bad_pos < (uint64_t)a->ctx)
                nonfinite_where(s, ids, bad_pos + 1, where, sizeof where);
            LOG_ERROR("%s: document %llu: non-finite logits at position %llu: the model's weights "
                      "or activations hold NaN or infinity%s",
                      a->input, (unsigned long long)i, (unsigned long long)bad_pos, where);
            rc = EXIT_RUNTIME;
        } else if (st != INFER_OK || nb.failed) {
            LOG_ERROR("prefill: %s", nb.failed ? "out of memory" : infer_strerror(st));
            rc = EXIT_RUNTIME;
        }
        d.n_nll = nb.n;
        if (rc == 0 && !replicas && rr->rank == 0)
            rc = ppl_take(a, &d, nb.v, &acc, &short_docs, &doc_tokens, pt);
        else if (rc == 0 && replicas && rr->tp_rank == 0) {
            ppl_doc *rec = malloc(sizeof d + nb.n * sizeof *nb.v);
            if (rec) {
                memcpy(rec, &d, sizeof d);
                if (nb.n)
                    memcpy(rec + 1, nb.v, nb.n * sizeof *nb.v);
            }
            rc = !rec || cluster_records_add(&mine, i, rec, sizeof d + nb.n * sizeof *nb.v)
                     ? EXIT_RUNTIME
                     : 0;
            free(rec);
        }
        rc = group_rc(rr, rc);
    }
    cluster_queue_free(q);
    free(nb.v);
    rc = world_failure(rc);
    uint64_t docs = read; /* the group that reached the end read them all */
    if (rr->size > 1)
        MPI_Allreduce(&read, &docs, 1, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD);
    if (replicas && rc == 0) { /* the documents to rank 0, summed in input order */
        char *all = NULL;
        size_t n_all = 0;
        const char **rec = NULL;
        rc = records_gather(&mine, &all, &n_all);
        if (rc == 0 && rr->rank == 0 &&
            (rc = cluster_records_index(all, n_all, docs, &rec) ? EXIT_RUNTIME : 0) == 0)
            for (uint64_t i = 0; rc == 0 && i < docs; i++) {
                ppl_doc d;
                if (!rec[i]) {
                    LOG_ERROR("%s: document %llu: no replica scored it", a->input,
                              (unsigned long long)i);
                    rc = EXIT_RUNTIME;
                    break;
                }
                uint64_t n_rec;
                const char *bytes = cluster_record_bytes(rec[i], &n_rec);
                memcpy(&d, bytes, sizeof d);
                rc = ppl_take(a, &d, (const double *)(const void *)(bytes + sizeof d), &acc,
                              &short_docs, &doc_tokens, pt);
            }
        free(rec);
        free(all);
        rc = world_rc(rc);
    }
    cluster_records_free(&mine);
    if (rc)
        return rc;
    double t1 = now();
    if (rr->rank != 0)
        return 0;
    if (pt->f && fflush(pt->f) != 0) {
        LOG_ERROR("%s: %s", a->per_token, strerror(errno));
        return EXIT_RUNTIME;
    }
    if (acc.n == 0) { /* no mean of nothing: "ppl": 1 would look like a perfect model */
        LOG_ERROR("%s: no token was scored: %llu document%s, each shorter than 2 tokens", a->input,
                  (unsigned long long)docs, docs == 1 ? "" : "s");
        return EXIT_RUNTIME;
    }
    ppl_print(a, &acc, docs, short_docs, doc_tokens, t1 - t0);
    return 0;
}

static int ppl_body(ppl_args *a_in);

static int ppl_cmd(int argc, char **argv) {
    ppl_args a = {0};
    a.o = infer_opts_default();
    a.mem_limit = machine_memory();
    int rc = ppl_parse(argc, argv, &a);
    if (rc >= 0)
        return rc;
    if ((rc = ranks_make("perplexity", a.tp, &a.rr)) >= 0)
        return rc;
    cluster_log_setup("perplexity", a.rr.rank, a.rr.size, CLUSTER_LOG_INFO);
    rc = ppl_body(&a);
    ranks_free(&a.rr);
    return rc;
}

static int ppl_body(ppl_args *a_in) {
    ppl_args a = *a_in;
    int rc = 0;
    infer_model *m;
    int st = infer_model_load(a.model, a.rr.tp, &m);
    if (st != INFER_OK || !act_dtype_ok(a.o.act_dtype, m, a.model)) {
        if (st != INFER_OK)
            LOG_ERROR("%s: %s", infer_strerror(st), infer_model_errmsg(m));
        infer_model_free(m);
        return st == INFER_ERR_ARG || st == INFER_OK ? EXIT_USAGE : EXIT_RUNTIME;
    }
    log_load(m, a.model);
    const infer_config *cfg = infer_model_config(m);
    if (!a.ctx)
        a.ctx = cfg->seq_len;
    if (!a.stride)
        a.stride = a.ctx;
    if (a.ctx < 2 || a.stride > a.ctx) {
        LOG_ERROR("--ctx %ld must be at least 2 and --stride %ld at most --ctx", a.ctx, a.stride);
        infer_model_free(m);
        return EXIT_USAGE;
    }
    tokenizer *tok = dir_tokenizer(a.model);
    infer_doc_reader *r = NULL;
    infer_state *s = NULL;
    a.o.max_ctx = (int)a.ctx;
    uint8_t *want = calloc((size_t)a.ctx, 1);
    nll_sink pt = {a.per_token && a.rr.rank == 0 ? fopen(a.per_token, "wb") : NULL, 0};
    if ((st = infer_doc_reader_create(a.input, tok, &r)) != INFER_OK) {
        LOG_ERROR("%s", infer_doc_reader_errmsg(r));
        rc = EXIT_RUNTIME;
    } else if (a.per_token && a.rr.rank == 0 && !pt.f) {
        LOG_ERROR("%s: %s", a.per_token, strerror(errno));
        rc = EXIT_RUNTIME;
    } else if (!plan_fits(&a.o, a.mem_limit, m, a.rr.tp_size)) {
        rc = EXIT_RUNTIME;
    } else if (!want) {
        LOG_ERROR("out of memory for a window of %ld positions", a.ctx);
        rc = EXIT_RUNTIME;
    }
    rc = world_failure(rc); /* an input one rank cannot read stops them all */
    if (rc == 0)
        rc = state_create(m, &a.o, a.rr.tp, &s);
    if (rc == 0)
        rc = ppl_run(&a, s, r, cfg->vocab_size, want, &pt);
    if (pt.f && fclose(pt.f) != 0 && rc == 0) {
        LOG_ERROR("%s: %s", a.per_token, strerror(errno));
        rc = EXIT_RUNTIME;
    }
    if (s && a.timings) {
        uint64_t kv_bytes, act_bytes;
        unsigned long long rss_hi, rss_lo;
        infer_state_bytes(s, &kv_bytes, &act_bytes);
        infer_comm_stats cs;
        infer_state_comm_stats(s, &cs);
        peak_rss_world(&rss_hi, &rss_lo);
        char grid[512];
        grid_timings(s, &a.o, grid, sizeof grid);
        fprintf(stderr,
                "timings: threads=%d kv=%s act=%s isa=%s kv_bytes=%llu act_bytes=%llu tp=%d "
                "replicas=%d comm_s=%.6f comm_calls=%llu comm_bytes=%llu peak_rss_max=%llu "
                "peak_rss_min=%llu%s\n",
                a.o.threads, dtype_name(a.o.kv_dtype), infer_act_name(a.o.act_dtype), infer_isa(),
                (unsigned long long)kv_bytes, (unsigned long long)act_bytes, a.rr.tp_size,
                a.rr.n_replicas, cs.seconds, (unsigned long long)cs.calls,
                (unsigned long long)cs.bytes, rss_hi, rss_lo, grid);
    }
    infer_doc_reader_free(r);
    free(want);
    tokenizer_free(tok);
    infer_state_free(s);
    infer_model_free(m);
    return stdout_done(rc);
}

int perplexity_main(int argc, char **argv) {
    return all_ranks(argc, argv, ppl_cmd);
}
