/* infer_internal.h - the model's weights as the forward pass sees them, the thread pool, the
 * RoPE frequencies. */
#ifndef LONGCTX_INFER_INTERNAL_H
#define LONGCTX_INFER_INTERNAL_H

#include "infer.h"

/* A matrix [rows = out][cols = in], row-major, in its stored dtype; p may be unaligned. Under
 * tensor parallelism a matrix is this rank's slice, and is still contiguous: each rank reads
 * only its slice from the file (infer_model.c, load_slices). Rows [r0, r1) of a row-split
 * matrix are one contiguous read (INFER_LOAD_RAM) or a pointer into the file's mapping
 * (INFER_LOAD_MMAP); columns [c0, c1) of a column-split one (wo, w2) are read row by row
 * into a contiguous block (RAM) or copied out of the mapping (MMAP). Contiguous rather than a
 * row stride because every kernel (infer_kernels*.c, infer_gemm.c, the widened weight blocks
 * of linear) streams rows of exactly cols values and prefetches along them: a stride would
 * change all of them, and a column slice read with the whole row's stride would pull the other
 * ranks' columns through the cache. At one rank every slice is the whole matrix. */
typedef struct {
    const void *p;
    int dtype; /* INFER_DT_* */
} infer_mat;

typedef struct {
    float *rms_att, *rms_ffn; /* (dim) widened to float32 */
    infer_mat wq;             /* (tp.n_heads * head_dim, dim) */
    infer_mat wk, wv;         /* (tp.n_kv_heads * head_dim, dim) */
    infer_mat wo;             /* (dim, tp.n_heads * head_dim): a copy when split */
    infer_mat w1, w3;         /* (tp.hidden_dim, dim): gate, up */
    infer_mat w2;             /* (dim, tp.hidden_dim): down, a copy when split */
} infer_layer;

#define INFER_MAX_MAPS 256

/* This rank's share of the model (Megatron-style tensor parallelism): attention heads, KV
 * heads, MLP rows and vocabulary rows, each the ggml slice i0 = rank * ceil(n / n_ranks),
 * i1 = min(i0 + ceil(n / n_ranks), n) (STYLE.md); with more ranks than KV heads each rank
 * keeps the one its query heads use (vLLM). Norms stay whole; the embedding is split by
 * vocabulary like the classifier. Every count
 * the forward pass uses is a local one; infer_config keeps the global ones. */
typedef struct {
    int rank, n_ranks;
    int n_heads, n_kv_heads, hidden_dim, vocab; /* local counts */
    int head0, kv_head0, hidden0, vocab0;       /* the global index each slice starts at */
} infer_split;

/* the split of c over n_ranks ranks for rank (infer_opts_check must accept n_ranks) */
void infer_split_make(const infer_config *c, int rank, int n_ranks, infer_split *sp);

struct infer_model {
    infer_config cfg; /* global sizes */
    infer_split tp;   /* this rank's share: the sizes the forward pass uses */
    int head_dim;     /* resolved */
    int dtype;        /* of the matrices */
    infer_mat emb;    /* (tp.vocab, dim): vocabulary rows [tp.vocab0, tp.vocab0 + tp.vocab) */
    infer_mat wcls;   /* (tp.vocab, dim): the same rows of lm_head; == emb when tied */
    float *rms_final; /* (dim) */
    infer_layer *layers;
    float *data; /* the norms widened to float32: (2 n_layers + 1, dim) */
    struct {
        void *addr;
        size_t len;
    } maps[INFER_MAX_MAPS]; /* INFER_LOAD_MMAP: the weight files, mapped whole (read-only) */
    int n_maps;
    void *slices; /* (slices_bytes) anonymous memory: every matrix slice (RAM), the
                   * column slices of wo and w2 when split (MMAP); NULL when empty */
    size_t slices_bytes;
    uint64_t bytes_read;   /* tensor bytes this rank read from the files (MMAP: that its
                            * slices span in the mappings) */
    uint64_t weight_bytes; /* this rank's slices in their stored dtype + the float32 norms */
    char errmsg[512];
};

/* Blocking of the forward pass (infer_forward.c), shared with the memory plan. */
enum {
    WB = 256,   /* weight rows per task (prefill, sgemm) */
    MB = 64,    /* weight rows per task (decode) */
    BB = 60,    /* weight rows per task (prefill, ik_gemm / ik_gemm_bf16: any split gives the
                 * same bits; 6% faster than 240 at 2 threads, BENCHMARKS.md) */
    QB = 32,    /* queries per attention task */
    BK = 128,   /* keys per attention tile */
    SEG = 2048, /* keys per segment (a multiple of BK) */
    LR = 64,    /* logit rows per classifier product (= RL) */
    RM = 32,    /* attention scratch rows are allocated to a multiple of this */
    RL = 64,    /* rows per linear-layer sgemm call: 68 GFLOP/s vs 51 at 32 rows, 82 at 128,
                 * 98 in one 512-row call (bench_sgemm, BENCHMARKS.md); small enough that a
                 * short last chunk wastes little */
};

/* ---- thread pool (infer_pool.c) ----------------------------------------------------------- */

typedef struct infer_pool infer_pool;
/* fn(ctx, task, thread) for task in [0, n): tasks are taken in any order by any thread; thread
 * is in [0, threads) and indexes per-thread scratch. */
typedef void (*infer_task_fn)(void *ctx, int task, int thread);
int infer_pool_create(int threads, infer_pool **out);
void infer_pool_free(infer_pool *p); /* NULL ok */
int infer_pool_threads(const infer_pool *p);
void infer_pool_run(infer_pool *p, int n, infer_task_fn fn, void *ctx);
/* fn(ctx) called by the calling thread (thread 0) after each task it runs, until reset with
 * NULL: how nonblocking MPI collectives progress while the pool computes (MPI_Test from the
 * thread that owns MPI) */
void infer_pool_set_progress(infer_pool *p, void (*fn)(void *ctx), void *ctx);

/* ---- exponentials (infer_exp.c): the same bits on every ISA ------------------------------ */

float infer_exp_sum(float *x, int n, float m); /* x[i] = exp(x[i] - m); returns their sum */
float infer_max(const float *x, int n);        /* -inf when n == 0 */
void infer_silu_mul(float *g, const float *u, size_t n); /* g = silu(g) * u */
float infer_exp(float x);
/* decode attention over n keys (rows of k / v, strides ldk / ldv): s[t] = q . k_t, and
 * acc += sum_t p[t] v_t */
void infer_attn_scores(float *s, const float *q, const float *k, size_t ldk, int n, int hd);
void infer_attn_wsum(float *acc, const float *p, const float *v, size_t ldv, int n, int hd);
/* prefill attention, one tile's online softmax for the rows (lanes) of st (n_keys, ld), laid out
 * as for ik_attn_qk (infer_kernels.h), row r seeing its first n[r] keys: m[r] becomes the max
 * of m[r] and those scores; st[t][r] = exp(s - m[r]) for t < n[r] (lanes past n[r] are left
 * undefined); c[r] = exp(old m - new m), or 1 when the max did not move or was -inf; l[r] =
 * l[r] c[r] + the row's sum of p. n, m, l, c hold round_up(n_rows, IK_LANES) lanes, any of
 * which may be touched. The same bits on every ISA. */
void infer_attn_softmax(float *st, size_t ld, int n_keys, const int *n, float *m, float *l,
                        float *c, int n_rows);

/* ---- RoPE (infer_rope.c) ------------------------------------------------------------------ */

/* The inverse frequencies omega_j, j < rot_dim / 2, for a sequence of seq_len positions (used
 * by dynamic NTK only), and the factor by which attention scores are multiplied on top of
 * 1/sqrt(head_dim) (YaRN's attention factor squared; 1 otherwise). */
void infer_rope_freqs(const infer_config *c, int rot_dim, int64_t seq_len, double *inv_freq,
                      double *score_mult);

/* ---- JSON lines to ids (infer_ppl.c) ------------------------------------------------------- */

struct json_object;
struct tok_json;

/* The one place where a .jsonl object becomes token ids, for perplexity's documents and infer's
 * batch prompts: its "ids" (integers below vocab; vocab 0: any uint32) from o (the line parsed
 * by json-c), or else the string at j's text path, text_field (j: the tokenizer module's JSON
 * text-field extractor, the one prep and tokenize use, run on line[0, n_line)), encoded with tc
 * (BOS first when add_bos; tc NULL: refused, naming the tokenizer files). *ids (capacity *cap)
 * grows; *n ids. Returns INFER_OK, INFER_ERR_FORMAT (err: what, without file or line) or
 * INFER_ERR_NOMEM. */
int infer_json_ids(struct json_object *o, const char *line, size_t n_line, struct tok_json *j,
                   const char *text_field, struct tok_ctx *tc, int add_bos, uint64_t vocab,
                   uint32_t **ids, uint64_t *cap, uint64_t *n, char *err, size_t err_bytes);

/* ---- 2D tensor parallelism (infer_grid.c) --------------------------------------------------- */

/* A BLACS process grid pr x (size / pr) over a communicator, row-major (rank = row * pc + col),
 * with square nb x nb blocks, and the buffers of its redistributions. */
typedef struct infer_grid infer_grid;
typedef struct {
    uint64_t redist_calls, redist_bytes, gemm_calls; /* bytes this rank sent to other ranks */
    double redist_seconds, gemm_seconds;
} infer_grid_stats;
/* a rectangle of a column-major matrix: rows r0.., columns c0.. */
typedef struct {
    int r0, nr, c0, nc;
} infer_rect;
/* a column-major (M, N) matrix's local part in ScaLAPACK's block-cyclic layout: (lr, lc) of it,
 * in lld * lc floats at a, and its descriptor */
typedef struct {
    int M, N, lr, lc, lld;
    float *a;
    int desc[9];
} infer_dmat;

/* collective over comm (which must outlive the grid); INFER_ERR_ARG if pr does not divide it */
int infer_grid_create(MPI_Comm comm, int pr, int nb, infer_grid **out);
void infer_grid_free(infer_grid *g); /* NULL ok */
void infer_grid_shape(const infer_grid *g, int *pr, int *pc, int *nb);
void infer_grid_get_stats(const infer_grid *g, infer_grid_stats *out);
/* the floats of this rank's local part of an (M, N) matrix */
size_t infer_grid_local_elems(const infer_grid *g, int M, int N);
/* d describes an (M, N) matrix whose local part is at a (infer_grid_local_elems floats) */
void infer_dmat_set(const infer_grid *g, infer_dmat *d, int M, int N, float *a);
/* grows the redistribution buffers for a scatter and a gather of an (M, N) matrix over rects
 * (one per rank); INFER_ERR_NOMEM. Call it for every shape before the collectives. */
int infer_grid_reserve(infer_grid *g, const infer_rect *rects, int M, int N);
size_t infer_grid_work_bytes(const infer_grid *g); /* what the reserves hold */
void infer_grid_release(infer_grid *g);            /* frees them */
/* d (local) <- each rank's rectangle rects[rank] of d's matrix, at src (column-major, leading
 * dimension ld, INFER_DT_* dtype, widened to f32). The rectangles cover the matrix and are
 * disjoint or identical (the lowest of identical ones is sent). Collective. */
int infer_grid_scatter(infer_grid *g, const infer_rect *rects, const void *src, int dtype,
                       size_t ld, infer_dmat *d);
/* every rank's rectangle rects[rank] of d's matrix (they may overlap) into dst (column-major,
 * ld). Collective. */
int infer_grid_gather(infer_grid *g, const infer_dmat *d, const infer_rect *rects, float *dst,
                      size_t ld);
/* d (local) <- its blocks of the whole matrix at src (column-major, ld, dtype), held by every
 * rank: no communication */
void infer_grid_local_copy(const infer_grid *g, const void *src, int dtype, size_t ld,
                           infer_dmat *d);
/* The layer matrices on the grid, column-major (in, out) (a linear layer y = W x is
 * y' = W'^T x' with W' the stored (out, in) rows read column-major): */
enum { INFER_G_Q, INFER_G_K, INFER_G_V, INFER_G_O, INFER_G_1, INFER_G_3, INFER_G_2, INFER_G_N };
/* the (M, N) of layer matrix k and, when rc (n_ranks) is not NULL, every rank's rectangle of it:
 * its 1D slice (output columns; input rows for wo and w2) */
void infer_grid_layer_shape(const infer_config *c, int n_ranks, int k, int *M, int *N,
                            infer_rect *rc);
/* every rank's rectangle of a chunk's (features, chunk) activations: its query rows, its KV
 * rows, and the whole (n_ranks each) */
void infer_grid_act_rects(const infer_config *c, int n_ranks, int chunk, infer_rect *rq,
                          infer_rect *rk, infer_rect *rall);
/* the floats of one chunk's activations on the grid (x, q, k, v, h1, h3) on this rank */
size_t infer_grid_act_elems(const infer_grid *g, const infer_config *c, int chunk);
/* what rank of a pr x (n_ranks / pr) grid with blocks nb holds for 2D prefill of chunk tokens
 * (infer_state_grid_bytes), without a grid: the weights' f32 copies, the activations and the
 * redistribution buffers; and the weights' redistribution buffers, held while the state is made.
 * INFER_ERR_NOMEM. */
int infer_grid_plan_bytes(const infer_config *c, int n_ranks, int pr, int nb, int chunk, int rank,
                          uint64_t *weight_bytes, uint64_t *act_bytes, uint64_t *setup_bytes);
/* y (M, N) = op(w) x (K, N) by PSGEMM, op(w) = w (M, K) or (trans_w) w (K, M)^T; OpenBLAS on
 * threads threads inside. Collective. */
void infer_grid_gemm(infer_grid *g, int trans_w, const infer_dmat *w, const infer_dmat *x,
                     infer_dmat *y, int threads);

#endif
