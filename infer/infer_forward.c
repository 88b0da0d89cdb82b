/* infer_forward.c - tokens through the model, reading like llama2.c's run.c: embedding, then per
 * layer RMSNorm, q/k/v, RoPE, KV cache, tiled causal attention with an online softmax, output
 * projection, RMSNorm, SwiGLU MLP; final norm and classifier.
 *
 * A prefill chunk of n tokens is a set of matrix products (OpenBLAS sgemm, one thread per call,
 * our threads over blocks of weight rows; weights that are not float32 are widened block by block
 * into per-thread scratch) and attention tiles through the kernels ik_attn_qk / ik_attn_pv.
 * Decode (one token) uses the matrix-vector kernels of infer_kernels.
 *
 * Bit-for-bit independence of chunk size and thread count: every output element is computed by
 * the same sequence of operations whatever the partition. Weight blocks have a fixed size; the
 * attention of a query runs over key segments of SEG positions at absolute boundaries, each
 * segment's (max, sum, accumulator) computed on its own and merged in segment order, whether the
 * segments run one after the other (prefill) or on several threads (decode); keys are always
 * read back from the cache (so a bf16 cache rounds the current chunk's keys too). */
#include "infer_internal.h"
#include "infer_kernels.h"
#include "cluster.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* OpenBLAS's sgemm gives a row bits that depend on the product's row count (its small-matrix
 * and tail kernels sum in other orders: for 128 (N, K) shapes at row counts 16..512, 132 of the
 * 4096 (shape, row count) pairs gave bits unlike the 512-row call). So the sgemm path (the
 * scalar set only: the SIMD sets use ik_gemm, see linear()) runs every linear-layer product in
 * calls of exactly RL rows, the last padded with zero rows. That makes a position's result
 * independent of the chunk it is in only if a row's bits do not depend on its place within a
 * call: it held with the kernels OpenBLAS 0.3.21 picked on the AVX-512 machine this was first
 * measured on, and holds with OPENBLAS_CORETYPE=Sandybridge, but NOT with its Haswell/Zen
 * kernels (in a 64-row call 34 of 63 row positions give bits unlike position 0): there the
 * scalar set's prefill bits change with --prefill-chunk (values within rounding). Attention needs
 * no padding: its kernels compute each element in a fixed order (infer_kernels.h); its scratch rows
 * are allocated to a multiple of RM. */
static int pad_rows(int n) {
    return (n + RM - 1) / RM * RM;
}

/* the fewest rows in each half of an overlapped prefill chunk (out_mlp_overlap) */
enum { OVERLAP_MIN = 16 };

static int pad_lin(int n) {
    return (n + RL - 1) / RL * RL;
}

/* C (m, n) = A (m, k) op(B) + beta C, m a multiple of rm, in calls of exactly rm rows */
static void gemm(int rm, int trans_b, int m, int n, int k, const float *a, int lda, const float *b,
                 int ldb, float beta, float *c, int ldc) {
    for (int r = 0; r < m; r += rm)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, rm, n, k,
                    1.0f, a + (size_t)r * (size_t)lda, lda, b, ldb, beta,
                    c + (size_t)r * (size_t)ldc, ldc);
}

typedef struct {
    float *w;   /* (WB, max in) widened weights */
    float *q;   /* (QB * group, hd); prefill: (hd, lanes(QB * group)) transposed */
    float *s;   /* (QB * group, BK); prefill: (BK, lanes) transposed. Scores, then probabilities */
    float *kt;  /* (BK, hd) a widened key tile */
    float *vt;  /* (BK, hd) */
    float *acc; /* (QB * group, hd) the segment's accumulator */
    float *ml;  /* (QB * group, 2) the segment's max and sum */
    float *tot; /* (QB * group, hd) the running total */
    float *tml; /* (QB * group, 2) */
    float *mlc; /* prefill: (3, lanes) the segment's max, sum, and a tile's rescale factor */
    int *nk;    /* prefill: (lanes) keys of the tile each row sees */
} scratch;

struct infer_state {
    const infer_model *m;
    infer_opts o;
    infer_pool *pool;
    int hd, q_dim, kv_dim, group, chunk;
    double *inv_freq; /* (hd / 2) */
    int64_t rope_len; /* the length inv_freq was made for (dynamic NTK) */
    double score_mult;
    void *kcache, *vcache; /* (layers, n_kv_heads, ctx_alloc, hd), kv_dtype: see kv_row */
    size_t kv_elt;
    int ctx_alloc; /* cache positions: max_ctx rounded up to BK */
    /* activations of one chunk of C = chunk rows */
    float *x;     /* (C, dim) the residual stream */
    float *xb;    /* (C, dim) */
    float *q;     /* (C, q_dim) */
    float *k;     /* (C, kv_dim) */
    float *v;     /* (C, kv_dim) */
    float *ao;    /* (C, q_dim) attention output */
    float *h1;    /* (C, hidden) */
    float *h3;    /* (C, hidden) */
    float *cs;    /* (C, hd / 2) cos, then sin */
    float *sn;    /* (C, hd / 2) */
    float *lg;    /* (LR, vocab) logits */
    uint16_t *xh; /* INFER_ACT_BF16: (C, max(dim, hidden, q_dim)) a product's input in bf16 */
    float *part;  /* decode: (n_kv, segments, group, hd + 2) partial attention */
    scratch *th;  /* per thread */
    uint64_t alloc_bytes; /* the sum of the buffers above (zalloc) */
    MPI_Comm comm;        /* a duplicate of the creator's (valid when has_comm) */
    int has_comm;
    int rank, n_ranks;
    /* tensor parallelism (n_ranks > 1): the whole rows of logits, gathered from the vocabulary
     * slices (LR, vocab), the slices as they arrive (ranks, LR, slice), and each rank's slice
     * length and start */
    float *lg_full, *lg_stage;
    int *v_len, *v_off, *g_cnt, *g_off;
    void *swork; /* sampling scratch, grown on first use (not in the plan: see infer.h) */
    size_t swork_cap;
    infer_comm_stats cs_stats;
    /* 2D prefill (o.grid_rows > 0, infer_grid.c): the grid; per layer the f32 block-cyclic
     * weights (wq wk wv wo w1 w3 w2, column-major (in, out)) in one block gw; the local parts of
     * one chunk's activations (column-major (features, tokens)); every rank's rectangle of the
     * 1D slices: query rows, KV rows, and the whole (for the residual, held by every rank) */
    MPI_Request req[2]; /* the overlapped prefill's all-reduces in flight (MPI_REQUEST_NULL) */
    infer_grid *grid;
    float *gw;
    infer_dmat (*gl)[7];
    float *gx, *gq, *gk, *gv, *gh1, *gh3;
    infer_rect *rq, *rk, *rall;
    uint64_t grid_w_bytes, grid_a_bytes;
    int grid_err;
    /* infer_state_find_nonfinite: check the residual after the embedding and every layer */
    int probe, probe_layer, probe_pos;
    /* LongLLaMA (cfg.n_mem_layers > 0; REFERENCE.md 1.3). Per layer, NULL or, in memory layers,
     * this rank's heads' un-rotated keys and values in bf16 (n_kv_heads, mem_cap, hd): positions
     * [0, mem_len) are the memory; the local context's mem_local tokens (local positions 0..,
     * the KV cache's) are staged after it at mem_len + position, so that evicting the local
     * context into memory is mem_len += mem_local. mem_seq: tokens of the sequence so far;
     * mem_pos_off: added to the positions infer_prefill reports (a window's first token). */
    uint16_t **mem_k, **mem_v;
    uint16_t *mem_block;
    float *mem_sc; /* (threads, 2 mem_cap) memory scores and a copy for the top-k selection */
    int mem_cap, mem_len, mem_local, mem_seq, mem_pos_off;
    uint64_t mem_bytes;
};

/* ---- state --------------------------------------------------------------------------------- */

/* a zeroed buffer, counted in s->alloc_bytes (infer_state_bytes) */
static void *zalloc(infer_state *s, size_t n, size_t size) {
    s->alloc_bytes += (uint64_t)n * size;
    return calloc(n ? n : 1, size);
}

/* One rank out of memory is every rank's, before any collective: rank 0 of the group logs the
 * lowest failing rank and what it could not allocate (the others' logs may go nowhere). */
static int agree_alloc(infer_state *s, int st) {
    char msg[192] = "", got[256];
    int failed = -1;
    if (st != INFER_OK)
        snprintf(msg, sizeof msg, "out of memory for the KV cache and activations (%.3f GiB asked)",
                 (double)s->alloc_bytes / 1073741824.0);
    const int all = cluster_agree_msg(s->comm, st, msg, got, sizeof got, &failed);
    if (all != INFER_OK && s->rank == 0)
        LOG_ERROR("tensor-parallel rank %d of %d: %s", failed, s->n_ranks, got);
    return all;
}

/* ---- 2D prefill: the grid, its copies of the weights and its buffers ----------------------- */

enum {
    GQ = INFER_G_Q,
    GK = INFER_G_K,
    GV = INFER_G_V,
    GO = INFER_G_O,
    G1 = INFER_G_1,
    G3 = INFER_G_3,
    G2 = INFER_G_2
};

static float *galloc(size_t n, uint64_t *counter) {
    *counter += (uint64_t)n * sizeof(float);
    return calloc(n ? n : 1, sizeof(float));
}

/* the leading dimension of this rank's slice of matrix k as a column-major array */
static size_t grid_ld(const infer_state *s, int k) {
    const infer_split *t = &s->m->tp;
    return k == GO   ? (size_t)t->n_heads * (size_t)s->hd
           : k == G2 ? (size_t)t->hidden_dim
                     : (size_t)s->m->cfg.dim;
}

static const infer_mat *layer_mat(const infer_layer *L, int k) {
    const infer_mat *m[7] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w1, &L->w3, &L->w2};
    return m[k];
}

static int grid_setup(infer_state *s) {
    const infer_config *c = &s->m->cfg;
    const int P = s->n_ranks, C = s->chunk, hd = s->hd, D = c->dim;
    const int nb = s->o.grid_block ? s->o.grid_block : INFER_GRID_BLOCK;
    int st = infer_grid_create(s->comm, s->o.grid_rows, nb, &s->grid);
    if (P > 1)
        st = cluster_agree(s->comm, st);
    if (st != INFER_OK)
        return st;
    infer_grid *g = s->grid;
    /* the weights */
    infer_rect *rc = calloc((size_t)P * 3, sizeof *rc);
    s->gl = calloc((size_t)c->n_layers, sizeof *s->gl);
    size_t per_layer = 0, at[7];
    for (int k = 0; k < 7; k++) {
        int M, N;
        infer_grid_layer_shape(c, P, k, &M, &N, NULL);
        at[k] = per_layer;
        per_layer += infer_grid_local_elems(g, M, N);
    }
    st = rc && s->gl ? INFER_OK : INFER_ERR_NOMEM;
    if (st == INFER_OK)
        s->gw = galloc(per_layer * (size_t)c->n_layers, &s->grid_w_bytes);
    for (int k = 0; st == INFER_OK && k < 7; k++) {
        int M, N;
        infer_grid_layer_shape(c, P, k, &M, &N, rc);
        st = s->gw ? infer_grid_reserve(g, rc, M, N) : INFER_ERR_NOMEM;
    }
    if (P > 1)
        st = cluster_agree(s->comm, st);
    for (int l = 0; st == INFER_OK && l < c->n_layers; l++)
        for (int k = 0; st == INFER_OK && k < 7; k++) {
            int M, N;
            infer_grid_layer_shape(c, P, k, &M, &N, rc);
            infer_dmat *d = &s->gl[l][k];
            const infer_mat *w = layer_mat(&s->m->layers[l], k);
            infer_dmat_set(g, d, M, N, s->gw + (size_t)l * per_layer + at[k]);
            st = infer_grid_scatter(g, rc, w->p, w->dtype, grid_ld(s, k), d);
        }
    infer_grid_release(g);
    /* one chunk's activations, and the rectangles of their 1D slices */
    if (st == INFER_OK) {
        const int Q = c->n_heads * hd, KV = c->n_kv_heads * hd, H = c->hidden_dim;
        s->rq = rc; /* rq, rk, rall: n_ranks each */
        s->rk = rc + P;
        s->rall = rc + 2 * P;
        rc = NULL;
        infer_grid_act_rects(c, P, C, s->rq, s->rk, s->rall);
        s->gx = galloc(infer_grid_local_elems(g, D, C), &s->grid_a_bytes);
        s->gq = galloc(infer_grid_local_elems(g, Q, C), &s->grid_a_bytes);
        s->gk = galloc(infer_grid_local_elems(g, KV, C), &s->grid_a_bytes);
        s->gv = galloc(infer_grid_local_elems(g, KV, C), &s->grid_a_bytes);
        s->gh1 = galloc(infer_grid_local_elems(g, H, C), &s->grid_a_bytes);
        s->gh3 = galloc(infer_grid_local_elems(g, H, C), &s->grid_a_bytes);
        st = s->gx && s->gq && s->gk && s->gv && s->gh1 && s->gh3 ? INFER_OK : INFER_ERR_NOMEM;
        if (st == INFER_OK)
            st = infer_grid_reserve(g, s->rq, Q, C);
        if (st == INFER_OK)
            st = infer_grid_reserve(g, s->rk, KV, C);
        if (st == INFER_OK)
            st = infer_grid_reserve(g, s->rall, D, C);
        s->grid_a_bytes += infer_grid_work_bytes(g);
    }
    free(rc);
    return P > 1 ? cluster_agree(s->comm, st) : st;
}

void infer_state_grid_bytes(const infer_state *s, uint64_t *weight_bytes, uint64_t *act_bytes) {
    *weight_bytes = s->grid_w_bytes;
    *act_bytes = s->grid_a_bytes;
}

int infer_state_create(const infer_model *m, const infer_opts *o, MPI_Comm comm,
                       infer_state **out) {
    *out = NULL;
    const infer_config *c = &m->cfg;
    const infer_split *tp = &m->tp; /* the local counts */
    char why[256];
    int n_ranks = 1;
    MPI_Comm_size(comm, &n_ranks);
    if (n_ranks != tp->n_ranks || infer_opts_check(c, o, n_ranks, why, sizeof why) != INFER_OK)
        return INFER_ERR_ARG;
    const int act_st = infer_act_check(m->dtype, o->act_dtype); /* and ik_init */
    if (act_st != INFER_OK)
        return act_st;
    infer_state *s = calloc(1, sizeof *s);
    int st = s ? INFER_OK : INFER_ERR_NOMEM;
    if (st == INFER_OK) {
        if (MPI_Comm_dup(comm, &s->comm) == MPI_SUCCESS)
            s->has_comm = 1;
        else
            st = INFER_ERR_ARG;
    }
    if (n_ranks > 1) /* one rank out of memory fails them all, before any collective */
        st = cluster_agree(comm, st);
    if (st != INFER_OK) {
        infer_state_free(s);
        return st;
    }
    s->n_ranks = n_ranks;
    s->req[0] = s->req[1] = MPI_REQUEST_NULL;
    MPI_Comm_rank(comm, &s->rank);
    s->m = m;
    s->o = *o;
    s->hd = m->head_dim;
    s->q_dim = tp->n_heads * s->hd;
    s->kv_dim = tp->n_kv_heads * s->hd;
    s->group = tp->n_heads / tp->n_kv_heads;
    s->chunk = o->prefill_chunk ? o->prefill_chunk : INFER_PREFILL_CHUNK;
    if (s->chunk > o->max_ctx)
        s->chunk = o->max_ctx;
    s->kv_elt = o->kv_dtype == INFER_DT_F32 ? 4 : 2;
    openblas_set_num_threads(1); /* our threads split the products */
    const size_t C = (size_t)pad_lin(s->chunk), D = (size_t)c->dim, H = (size_t)tp->hidden_dim;
    /* LongLLaMA: the local context never passes max_position_embeddings (windows, then the
     * last tokens, evicted into the memory before they would): the cache holds that many */
    const int local = c->n_mem_layers > 0 && c->seq_len < o->max_ctx ? c->seq_len : o->max_ctx;
    s->ctx_alloc = (local + BK - 1) / BK * BK;
    const size_t cache = (size_t)c->n_layers * (size_t)s->ctx_alloc * (size_t)s->kv_dim;
    const size_t segs = ((size_t)local + SEG - 1) / SEG;
    const size_t G = (size_t)s->group, HD = (size_t)s->hd, half = HD / 2;
    int nt = o->threads ? o->threads : 1;
    cluster_warn_threads(comm, nt); /* mpirun binds a rank to one core by default */
    s->inv_freq = zalloc(s, half, sizeof(double));
    s->kcache = zalloc(s, cache, s->kv_elt);
    s->vcache = zalloc(s, cache, s->kv_elt);
    s->x = zalloc(s, C * D, sizeof(float));
    s->xb = zalloc(s, C * D, sizeof(float));
    s->q = zalloc(s, C * (size_t)s->q_dim, sizeof(float));
    s->k = zalloc(s, C * (size_t)s->kv_dim, sizeof(float));
    s->v = zalloc(s, C * (size_t)s->kv_dim, sizeof(float));
    s->ao = zalloc(s, C * (size_t)s->q_dim, sizeof(float));
    s->h1 = zalloc(s, C * H, sizeof(float));
    s->h3 = zalloc(s, C * H, sizeof(float));
    s->cs = zalloc(s, C * half, sizeof(float));
    s->sn = zalloc(s, C * half, sizeof(float));
    s->lg = zalloc(s, (size_t)LR * (size_t)tp->vocab, sizeof(float));
    s->part = zalloc(s, (size_t)tp->n_kv_heads * segs * (size_t)pad_rows((int)G) * (HD + 2),
                     sizeof(float));
    s->th = calloc((size_t)nt, sizeof *s->th); /* not a buffer: not counted */
    size_t win = D > H ? D : H;
    win = win > (size_t)s->q_dim ? win : (size_t)s->q_dim;
    const int bf16 = o->act_dtype == INFER_ACT_BF16;
    if (bf16)
        s->xh = zalloc(s, C * win, sizeof(uint16_t));
    if (n_ranks > 1) {
        const size_t V = (size_t)c->vocab_size, P = (size_t)n_ranks;
        s->lg_full = zalloc(s, (size_t)LR * V, sizeof(float));
        s->lg_stage = zalloc(s, (size_t)LR * V, sizeof(float));
        s->v_len = calloc(4 * P, sizeof(int)); /* not buffers of the run: not counted */
        if (s->v_len) {
            s->v_off = s->v_len + P;
            s->g_cnt = s->v_off + P;
            s->g_off = s->g_cnt + P;
            for (int r = 0; r < n_ranks; r++) {
                infer_split sp;
                infer_split_make(c, r, n_ranks, &sp);
                s->v_len[r] = sp.vocab;
                s->v_off[r] = sp.vocab0;
            }
        }
    }
    const int tp_ok = n_ranks == 1 || (s->lg_full && s->lg_stage && s->v_len);
    st = tp_ok && s->inv_freq && s->kcache && s->vcache && s->x && s->xb && s->q && s->k && s->v &&
                 s->ao && s->h1 && s->h3 && s->cs && s->sn && s->lg && s->part && s->th &&
                 (s->xh || !bf16)
             ? infer_pool_create(nt, &s->pool)
             : INFER_ERR_NOMEM;
    const size_t R = (size_t)pad_rows(QB * (int)G);
    for (int t = 0; st == INFER_OK && t < nt; t++) {
        scratch *w = &s->th[t];
        w->w = zalloc(s, (size_t)WB * win, sizeof(float));
        w->q = zalloc(s, R * HD, sizeof(float));
        w->s = zalloc(s, R * BK, sizeof(float));
        w->kt = zalloc(s, (size_t)BK * HD, sizeof(float));
        w->vt = zalloc(s, (size_t)BK * HD, sizeof(float));
        w->acc = zalloc(s, R * HD, sizeof(float));
        w->ml = zalloc(s, R * 2, sizeof(float));
        w->tot = zalloc(s, R * HD, sizeof(float));
        w->tml = zalloc(s, R * 2, sizeof(float));
        w->mlc = zalloc(s, R * 3, sizeof(float));
        w->nk = zalloc(s, R, sizeof(int));
        if (!w->w || !w->q || !w->s || !w->kt || !w->vt || !w->acc || !w->ml || !w->tot ||
            !w->tml || !w->mlc || !w->nk)
            st = INFER_ERR_NOMEM;
    }
    if (n_ranks > 1)
        st = agree_alloc(s, st);
    if (st != INFER_OK) {
        infer_state_free(s);
        return st;
    }
    if (c->n_mem_layers > 0) {
        s->mem_cap = o->max_ctx;
        const size_t per = (size_t)s->kv_dim * (size_t)s->mem_cap; /* one layer's keys */
        s->mem_bytes = 2 * (uint64_t)c->n_mem_layers * per * sizeof(uint16_t);
        s->mem_block = zalloc(s, 2 * (size_t)c->n_mem_layers * per, sizeof(uint16_t));
        s->mem_sc = zalloc(s, (size_t)nt * 2 * (size_t)s->mem_cap, sizeof(float));
        s->mem_k = calloc(2 * (size_t)c->n_layers, sizeof *s->mem_k); /* not counted */
        if (s->mem_block && s->mem_sc && s->mem_k) {
            s->mem_v = s->mem_k + c->n_layers;
            for (int i = 0; i < c->n_mem_layers; i++) {
                s->mem_k[c->mem_layers[i]] = s->mem_block + 2 * (size_t)i * per;
                s->mem_v[c->mem_layers[i]] = s->mem_block + (2 * (size_t)i + 1) * per;
            }
        } else {
            st = INFER_ERR_NOMEM;
        }
        if (n_ranks > 1)
            st = agree_alloc(s, st);
        if (st != INFER_OK) {
            infer_state_free(s);
            return st;
        }
    }
    if (o->grid_rows > 0 && (st = grid_setup(s)) != INFER_OK) {
        infer_state_free(s);
        return st;
    }
    infer_rope_freqs(c, s->hd, 0, s->inv_freq, &s->score_mult);
    if (c->n_mem_layers > 0) /* the release computes inv_freq in float32 */
        for (int i = 0; i < s->hd / 2; i++)
            s->inv_freq[i] = (double)(1.0f / powf(c->rope_theta, (float)(2 * i) / (float)s->hd));
    *out = s;
    return INFER_OK;
}

void infer_state_bytes(const infer_state *s, uint64_t *kv_bytes, uint64_t *act_bytes) {
    const uint64_t kv =
        2 * (uint64_t)s->m->cfg.n_layers * (uint64_t)s->ctx_alloc * (uint64_t)s->kv_dim * s->kv_elt;
    *kv_bytes = kv + s->mem_bytes;
    *act_bytes = s->alloc_bytes - kv - s->mem_bytes;
}

const infer_model *infer_state_model(const infer_state *s) {
    return s->m;
}

void infer_state_free(infer_state *s) {
    if (!s)
        return;
    infer_pool_free(s->pool);
    int nt = s->o.threads ? s->o.threads : 1;
    for (int t = 0; s->th && t < nt; t++) {
        scratch *w = &s->th[t];
        free(w->w);
        free(w->q);
        free(w->s);
        free(w->kt);
        free(w->vt);
        free(w->acc);
        free(w->ml);
        free(w->tot);
        free(w->tml);
        free(w->mlc);
        free(w->nk);
    }
    free(s->th);
    free(s->inv_freq);
    free(s->kcache);
    free(s->vcache);
    free(s->x);
    free(s->xb);
    free(s->q);
    free(s->k);
    free(s->v);
    free(s->ao);
    free(s->h1);
    free(s->h3);
    free(s->cs);
    free(s->sn);
    free(s->lg);
    free(s->xh);
    free(s->part);
    free(s->lg_full);
    free(s->lg_stage);
    free(s->v_len);
    free(s->swork);
    infer_grid_free(s->grid);
    free(s->gw);
    free(s->gl);
    free(s->gx);
    free(s->gq);
    free(s->gk);
    free(s->gv);
    free(s->gh1);
    free(s->gh3);
    free(s->rq);
    free(s->mem_k);
    free(s->mem_block);
    free(s->mem_sc);
    if (s->has_comm)
        MPI_Comm_free(&s->comm);
    free(s);
}

/* ---- linear layers: Y (n, rows) = X (n, cols) W^T ------------------------------------------ */

typedef struct {
    infer_state *s;
    float *y;
    const float *x;
    infer_mat w;
    int n, rows, cols;
    int mode; /* LIN_* */
} linear_job;

/* How a product runs: decode's matrix-vector kernel; ik_gemm (the AVX2 and AVX-512 sets, f32
 * x, any weight dtype, no padding; chunk- and thread-independent bits, infer_gemm*.c);
 * ik_gemm_bf16 (--act-dtype bf16, x in s->xh); or, on the scalar set only (-DLONGCTX_SIMD=OFF,
 * LONGCTX_ISA=scalar, a CPU without AVX2), OpenBLAS sgemm in fixed RL-row calls on widened
 * weight blocks, whose bits are chunk-independent only where OpenBLAS's kernels are (see
 * above: not its Haswell/Zen kernels). */
enum { LIN_DECODE, LIN_OWN, LIN_BF16, LIN_SGEMM };

static size_t dt_bytes(int dtype) {
    return dtype == INFER_DT_F32 ? 4 : 2;
}

static void linear_task(void *arg, int task, int thread) {
    const linear_job *j = arg;
    const size_t cols = (size_t)j->cols, rows = (size_t)j->rows;
    if (j->mode == LIN_DECODE) { /* one row of X: the matrix-vector kernel, MB rows per task */
        size_t r0 = (size_t)task * MB, r1 = r0 + MB < rows ? r0 + MB : rows;
        ik_matvec(j->y + r0, j->x, j->w.p, j->w.dtype, cols, r0, r1);
        return;
    }
    const size_t per = j->mode == LIN_SGEMM ? WB : BB;
    size_t r0 = (size_t)task * per, nr = r0 + per < rows ? per : rows - r0;
    const char *wp = (const char *)j->w.p + r0 * cols * dt_bytes(j->w.dtype);
    if (j->mode == LIN_OWN) {
        ik_gemm(j->y + r0, rows, j->x, cols, wp, j->w.dtype, cols, (size_t)j->n, nr);
        return;
    }
    if (j->mode == LIN_BF16) {
        ik_gemm_bf16(j->y + r0, rows, j->s->xh, cols, wp, cols, (size_t)j->n, nr);
        return;
    }
    const float *b = (const float *)(const void *)wp;
    if (j->w.dtype != INFER_DT_F32 || ((uintptr_t)wp & 3)) {
        float *buf = j->s->th[thread].w;
        ik_to_f32(buf, wp, j->w.dtype, nr * cols);
        b = buf;
    }
    gemm(RL, 1, pad_lin(j->n), (int)nr, j->cols, j->x, j->cols, b, j->cols, 0.0f, j->y + r0,
         j->rows);
}

/* same_x: x is the previous call's input, unchanged (its bf16 form in xh is reused) */
static void linear(infer_state *s, float *y, const float *x, infer_mat w, int n, int rows, int cols,
                   int decode, int same_x) {
    const int mode = decode                              ? LIN_DECODE
                     : s->xh && w.dtype == INFER_DT_BF16 ? LIN_BF16
                     : ik_isa_current() >= IK_AVX2       ? LIN_OWN
                                                         : LIN_SGEMM;
    if (mode == LIN_BF16 && !same_x)
        ik_f32_to_bf16(s->xh, x, (size_t)n * (size_t)cols);
    if (mode == LIN_SGEMM) /* zero the padding rows of x (state buffers, sized for it) */
        memset((float *)x + (size_t)n * (size_t)cols, 0,
               (size_t)(pad_lin(n) - n) * (size_t)cols * sizeof(float));
    linear_job j = {s, y, x, w, n, rows, cols, mode};
    const int per = mode == LIN_DECODE ? MB : mode == LIN_SGEMM ? WB : BB;
    infer_pool_run(s->pool, (rows + per - 1) / per, linear_task, &j);
}

/* ---- pieces -------------------------------------------------------------------------------- */

static void rmsnorm(float *o, const float *x, const float *w, int n, float eps) {
    double ss = 0; /* double: the sum of squares of a long vector loses bits in float */
    for (int i = 0; i < n; i++)
        ss += (double)x[i] * x[i];
    float scale = (float)(1.0 / sqrt(ss / n + eps));
    for (int i = 0; i < n; i++)
        o[i] = w[i] * (scale * x[i]);
}

/* the rotation of every head of v (n_heads * hd values) at one position */
static void rope(float *v, int n_heads, int hd, int pairing, const float *cs, const float *sn) {
    const int half = hd / 2;
    for (int h = 0; h < n_heads; h++) {
        float *x = v + (size_t)h * (size_t)hd;
        for (int j = 0; j < half; j++) {
            int a = pairing == INFER_PAIR_HALF ? j : 2 * j;
            int b = pairing == INFER_PAIR_HALF ? j + half : 2 * j + 1;
            float x0 = x[a], x1 = x[b];
            x[a] = x0 * cs[j] - x1 * sn[j];
            x[b] = x1 * cs[j] + x0 * sn[j];
        }
    }
}

/* ---- attention ----------------------------------------------------------------------------- */

typedef struct {
    infer_state *s;
    int layer, n, pos0;
    int n_qb;  /* query blocks */
    int n_seg; /* segments of the last query (split mode) */
    int split; /* 1: tasks are (kv head, segment), partials merged after */
    int vec;   /* decode: dot products instead of padded products */
    float scale;
} attn_job;

/* The key (or value) of kv head g at position pos. A head's positions are contiguous, so an
 * attention tile reads one dense block: interleaving the heads per position, (layers, ctx,
 * kv_dim), ran prefill attention at 32768 keys 15-25% slower, from the half-used cache lines
 * (bench_attn, BENCHMARKS.md). */
static const void *kv_row(const infer_state *s, const void *cache, int layer, int g, int pos) {
    const size_t head = (size_t)layer * (size_t)s->m->tp.n_kv_heads + (size_t)g;
    const size_t idx = (head * (size_t)s->ctx_alloc + (size_t)pos) * (size_t)s->hd;
    return (const char *)cache + idx * s->kv_elt;
}

/* the n keys and values of kv head g from position t0 as f32: the cache itself (f32), or widened
 * into the thread's tile scratch (bf16) */
static void kv_tile(const infer_state *s, scratch *w, int layer, int g, int t0, int n,
                    const float **kt, const float **vt) {
    if (s->o.kv_dtype == INFER_DT_F32) {
        *kt = kv_row(s, s->kcache, layer, g, t0);
        *vt = kv_row(s, s->vcache, layer, g, t0);
        return;
    }
    const size_t len = (size_t)n * (size_t)s->hd;
    ik_to_f32(w->kt, kv_row(s, s->kcache, layer, g, t0), INFER_DT_BF16, len);
    ik_to_f32(w->vt, kv_row(s, s->vcache, layer, g, t0), INFER_DT_BF16, len);
    *kt = w->kt;
    *vt = w->vt;
}

/* keys of the tile at t0 that a decode query at position p sees (segment end k1) */
static int decode_keys(int p, int t0, int k1) {
    int n = p - t0 + 1;
    n = n < k1 - t0 ? n : k1 - t0;
    return n < BK ? n : BK;
}

/* the row stride of prefill's transposed scratch (qt, st) for R rows */
static size_t lanes(int R) {
    return (size_t)(R + IK_LANES - 1) / IK_LANES * IK_LANES;
}

/* Decode: one segment [k0, k1) of keys for the R = group rows of one query (q: (R, hd),
 * scaled) at position qpos[0]: the segment's row max and sum in ml (R, 2) and its accumulator
 * in acc (R, hd). Dot products and weighted sums per key (infer_exp.c). */
static void attn_segment_decode(const infer_state *s, scratch *w, int layer, int g, const float *q,
                                int R, const int *qpos, int k0, int k1, float *acc, float *ml) {
    const int hd = s->hd;
    const size_t HD = (size_t)hd;
    for (int r = 0; r < R; r++) {
        ml[2 * r] = -INFINITY;
        ml[2 * r + 1] = 0;
    }
    memset(acc, 0, (size_t)R * HD * sizeof(float));
    for (int t0 = k0; t0 < k1; t0 += BK) {
        const int nv = decode_keys(qpos[0], t0, k1);
        const float *kt, *vt;
        kv_tile(s, w, layer, g, t0, nv, &kt, &vt);
        for (int r = 0; r < R; r++) {
            float *sr = w->s + (size_t)r * BK;
            infer_attn_scores(sr, q + (size_t)r * HD, kt, HD, nv, hd);
            float mx = infer_max(sr, nv);
            float m_old = ml[2 * r], m_new = mx > m_old ? mx : m_old;
            float sum = infer_exp_sum(sr, nv, m_new);
            if (m_new != m_old && m_old != -INFINITY) {
                float c = infer_exp(m_old - m_new);
                ik_scale(acc + (size_t)r * HD, c, HD);
                ml[2 * r + 1] *= c;
            }
            ml[2 * r] = m_new;
            ml[2 * r + 1] += sum;
            infer_attn_wsum(acc + (size_t)r * HD, sr, vt, HD, nv, hd);
        }
    }
}

/* Prefill: one segment [k0, k1) of keys for R = nq * group query rows, the lanes of qt
 * (hd, lanes(R), scaled), row r at position qpos[r / group]: the same outputs as decode's.
 *
 * Row r takes exactly the keys t <= its position of each tile, through kernels that compute
 * every element in a fixed order (infer_kernels.h), so its bits depend on its position alone,
 * not on the other rows of the block (the block's extent depends on the chunk). Skipping the
 * masked keys rather than adding 0 * v also keeps a -0 accumulator and an infinite v of a later
 * position from changing a row. Only the diagonal tile's upper triangle is still computed (as
 * scores nobody reads), because a vector of rows shares its keys. */
static void attn_segment_prefill(const infer_state *s, scratch *w, int layer, int g,
                                 const float *qt, int R, const int *qpos, int k0, int k1,
                                 float *acc, float *ml) {
    const int hd = s->hd, G = s->group;
    const size_t HD = (size_t)hd, RS = lanes(R);
    float *m = w->mlc, *l = m + RS, *c = l + RS;
    int *nk = w->nk;
    for (size_t r = 0; r < RS; r++) {
        m[r] = -INFINITY;
        l[r] = 0;
        nk[r] = 0; /* padding lanes see no key */
    }
    memset(acc, 0, (size_t)R * HD * sizeof(float));
    for (int t0 = k0; t0 < k1; t0 += BK) {
        const int in_tile = k1 - t0 < BK ? k1 - t0 : BK;
        int nt = 0;
        for (int r = 0; r < R; r++) {
            int valid = qpos[r / G] - t0 + 1; /* causal: keys t <= p (and t < k1) */
            valid = valid < 0 ? 0 : valid > in_tile ? in_tile : valid;
            nk[r] = valid;
            nt = valid > nt ? valid : nt;
        }
        const float *kt, *vt;
        kv_tile(s, w, layer, g, t0, nt, &kt, &vt);
        ik_attn_qk(w->s, qt, RS, kt, HD, nt, R, hd);
        infer_attn_softmax(w->s, RS, nt, nk, m, l, c, R);
        ik_attn_pv(acc, HD, c, w->s, RS, vt, HD, nk, R, hd);
    }
    for (int r = 0; r < R; r++) {
        ml[2 * r] = m[r];
        ml[2 * r + 1] = l[r];
    }
}

static void attn_segment(const infer_state *s, scratch *w, int layer, int g, const float *q, int R,
                         const int *qpos, int k0, int k1, float *acc, float *ml, int vec) {
    if (vec)
        attn_segment_decode(s, w, layer, g, q, R, qpos, k0, k1, acc, ml);
    else
        attn_segment_prefill(s, w, layer, g, q, R, qpos, k0, k1, acc, ml);
}

/* total (tml, tot) <- total merged with a segment (ml, acc), for R rows */
static void attn_merge(float *tot, float *tml, const float *acc, const float *ml, int R, int hd,
                       int first) {
    const size_t HD = (size_t)hd;
    for (int r = 0; r < R; r++) {
        float *t = tot + (size_t)r * HD;
        const float *a = acc + (size_t)r * HD;
        if (first) {
            memcpy(t, a, HD * sizeof(float));
            tml[2 * r] = ml[2 * r];
            tml[2 * r + 1] = ml[2 * r + 1];
            continue;
        }
        float m1 = tml[2 * r], m2 = ml[2 * r];
        if (m2 == -INFINITY)
            continue;
        float m = m1 > m2 ? m1 : m2;
        float c1 = m1 == -INFINITY ? 0.0f : infer_exp(m1 - m), c2 = infer_exp(m2 - m);
        for (size_t i = 0; i < HD; i++)
            t[i] = t[i] * c1 + a[i] * c2;
        tml[2 * r] = m;
        tml[2 * r + 1] = tml[2 * r + 1] * c1 + ml[2 * r + 1] * c2;
    }
}

/* the queries of kv head g, block qb, and their positions: R = nq * group rows, scaled, as
 * rows (R, hd) for decode and transposed (hd, lanes(R)) with zero padding lanes for prefill */
static int attn_gather(const attn_job *j, int g, int qb, float *q, int *qpos) {
    const infer_state *s = j->s;
    const int G = s->group, hd = s->hd, i0 = qb * QB;
    const int nq = i0 + QB < j->n ? QB : j->n - i0;
    const size_t R = (size_t)nq * (size_t)G, RS = lanes((int)R);
    for (int i = 0; i < nq; i++) {
        qpos[i] = j->pos0 + i0 + i;
        for (int hh = 0; hh < G; hh++) {
            const float *src =
                s->q + (size_t)(i0 + i) * (size_t)s->q_dim + (size_t)(g * G + hh) * (size_t)hd;
            const size_t r = (size_t)i * (size_t)G + (size_t)hh;
            for (int d = 0; d < hd; d++)
                if (j->vec)
                    q[r * (size_t)hd + (size_t)d] = src[d] * j->scale;
                else
                    q[(size_t)d * RS + r] = src[d] * j->scale;
        }
    }
    if (!j->vec)
        for (int d = 0; d < hd; d++)
            memset(q + (size_t)d * RS + R, 0, (RS - R) * sizeof(float));
    return nq;
}

static void attn_store(const attn_job *j, int g, int qb, int nq, const float *tot,
                       const float *tml) {
    const infer_state *s = j->s;
    const int G = s->group, hd = s->hd, i0 = qb * QB;
    for (int i = 0; i < nq; i++)
        for (int hh = 0; hh < G; hh++) {
            int r = i * G + hh;
            float *dst =
                s->ao + (size_t)(i0 + i) * (size_t)s->q_dim + (size_t)(g * G + hh) * (size_t)hd;
            float inv = 1.0f / tml[2 * r + 1];
            for (int d = 0; d < hd; d++)
                dst[d] = tot[(size_t)r * (size_t)hd + (size_t)d] * inv;
        }
}

/* ---- LongLLaMA memory attention ------------------------------------------------------------ */

/* the k-th largest of x[0, n) (1 <= k <= n); reorders x (Hoare's selection) */
static float kth_largest(float *x, int n, int k) {
    int lo = 0, hi = n - 1;
    const int want = k - 1;
    while (lo < hi) {
        const float piv = x[lo + (hi - lo) / 2];
        int i = lo, j = hi;
        while (i <= j) {
            while (x[i] > piv)
                i++;
            while (x[j] < piv)
                j--;
            if (i <= j) {
                const float t = x[i];
                x[i++] = x[j];
                x[j--] = t;
            }
        }
        if (want <= j)
            hi = j;
        else if (want >= i)
            lo = i;
        else
            return x[want];
    }
    return x[want];
}

/* Memory layers: the memory [0, mem_len) of kv head g merged into the running softmax (tot, tml)
 * of the nq queries of block qb: scores q_rot . k_mem * scale for every entry (no causal
 * structure; keys stored un-rotated, i.e. "at position 0"), clamped at -1e6, or only the
 * mem_topk largest per row; the same softmax as the local keys (attn_merge's rescaling). */
/* Dense memory attention of a prefill block: its R rows (w->q, transposed and scaled by
 * attn_gather) against every memory entry, in tiles of BK through the prefill attention kernels
 * (ik_attn_qk, infer_attn_softmax, ik_attn_pv: every row sees the whole tile), merged into the
 * block's total. On an 8192-token prompt of a 2-layer LongLLaMA (hidden 512, 8 heads) the
 * prefill took 75.7 s with a scalar loop per row and entry, 41.1 s with the decode kernels per
 * row, and 3.67 s with these tiles (BENCHMARKS.md, "Issue 12: LongLLaMA memory attention"). */
static void mem_tiles(const attn_job *j, scratch *w, const uint16_t *K, const uint16_t *V, int R,
                      float *tot, float *tml) {
    const infer_state *s = j->s;
    const int hd = s->hd, n = s->mem_len;
    const size_t HD = (size_t)hd, RS = lanes(R);
    float *m = w->mlc, *l = m + RS, *c = l + RS;
    int *nk = w->nk;
    for (size_t r = 0; r < RS; r++) {
        m[r] = -INFINITY;
        l[r] = 0;
        nk[r] = 0;
    }
    memset(w->acc, 0, (size_t)R * HD * sizeof(float));
    for (int t0 = 0; t0 < n; t0 += BK) {
        const int nt = n - t0 < BK ? n - t0 : BK;
        for (int r = 0; r < R; r++)
            nk[r] = nt;
        ik_to_f32(w->kt, K + (size_t)t0 * HD, INFER_DT_BF16, (size_t)nt * HD);
        ik_to_f32(w->vt, V + (size_t)t0 * HD, INFER_DT_BF16, (size_t)nt * HD);
        ik_attn_qk(w->s, w->q, RS, w->kt, HD, nt, R, hd);
        infer_attn_softmax(w->s, RS, nt, nk, m, l, c, R);
        ik_attn_pv(w->acc, HD, c, w->s, RS, w->vt, HD, nk, R, hd);
    }
    for (int r = 0; r < R; r++) {
        w->ml[2 * r] = m[r];
        w->ml[2 * r + 1] = l[r];
    }
    attn_merge(tot, tml, w->acc, w->ml, R, hd, 0);
}

static void mem_attend(const attn_job *j, scratch *w, float *sc, int g, int qb, int nq, float *tot,
                       float *tml) {
    const infer_state *s = j->s;
    if (!s->mem_k || !s->mem_k[j->layer] || s->mem_len == 0)
        return;
    const int G = s->group, hd = s->hd, n = s->mem_len, i0 = qb * QB, topk = s->o.mem_topk;
    const size_t HD = (size_t)hd, head = (size_t)g * (size_t)s->mem_cap * HD;
    const uint16_t *K = s->mem_k[j->layer] + head, *V = s->mem_v[j->layer] + head;
    if (!j->vec && topk <= 0) { /* dense prefill: the block's rows at once, as the cache's keys */
        mem_tiles(j, w, K, V, nq * G, tot, tml);
        return;
    }
    float *tmp = sc + s->mem_cap, *acc = w->acc, *qs = w->s;
    /* the memory in tiles of BK entries widened to f32 (w->kt, w->vt), through the decode
     * kernels (infer_attn_scores, infer_attn_wsum: vectorised per ISA); a scalar loop over bf16
     * ran the 3B's 256K-token memory at ~1 GFMA/s (review) */
    for (int i = 0; i < nq; i++)
        for (int hh = 0; hh < G; hh++) {
            const float *q = s->q + (size_t)(i0 + i) * (size_t)s->q_dim + (size_t)(g * G + hh) * HD;
            for (int d = 0; d < hd; d++)
                qs[d] = q[d] * j->scale;
            float mx = -INFINITY;
            for (int t0 = 0; t0 < n; t0 += BK) {
                const int nv = n - t0 < BK ? n - t0 : BK;
                ik_to_f32(w->kt, K + (size_t)t0 * HD, INFER_DT_BF16, (size_t)nv * HD);
                infer_attn_scores(sc + t0, qs, w->kt, HD, nv, hd);
            }
            for (int t = 0; t < n; t++)
                sc[t] = sc[t] < -1e6f ? -1e6f : sc[t];
            float thr = -INFINITY;
            if (topk > 0 && topk < n) {
                memcpy(tmp, sc, (size_t)n * sizeof(float));
                thr = kth_largest(tmp, n, topk);
            }
            for (int t = 0; t < n; t++)
                mx = sc[t] >= thr && sc[t] > mx ? sc[t] : mx;
            float sum = 0;
            for (int t = 0; t < n; t++) { /* probabilities in place; 0 outside the top k */
                sc[t] = sc[t] >= thr ? infer_exp(sc[t] - mx) : 0.0f;
                sum += sc[t];
            }
            memset(acc, 0, HD * sizeof(float));
            for (int t0 = 0; t0 < n; t0 += BK) {
                const int nv = n - t0 < BK ? n - t0 : BK;
                ik_to_f32(w->vt, V + (size_t)t0 * HD, INFER_DT_BF16, (size_t)nv * HD);
                infer_attn_wsum(acc, sc + t0, w->vt, HD, nv, hd);
            }
            const float ml[2] = {mx, sum};
            const int r = i * G + hh;
            attn_merge(tot + (size_t)r * HD, tml + 2 * (size_t)r, acc, ml, 1, hd, 0);
        }
}

static void attn_task(void *arg, int task, int thread) {
    const attn_job *j = arg;
    infer_state *s = j->s;
    scratch *w = &s->th[thread];
    int qpos[QB];
    if (j->split) { /* one query block (decode): task = (kv head, segment) into s->part */
        const int g = task / j->n_seg, seg = task % j->n_seg, G = s->group;
        const int nq = attn_gather(j, g, 0, w->q, qpos);
        const int last = qpos[nq - 1] + 1, k0 = seg * SEG;
        const int k1 = k0 + SEG < last ? k0 + SEG : last;
        const size_t R = (size_t)nq * (size_t)G, RP = (size_t)pad_rows((int)R);
        float *part = s->part + (size_t)task * RP * ((size_t)s->hd + 2);
        attn_segment(s, w, j->layer, g, w->q, (int)R, qpos, k0, k1, part, part + RP * (size_t)s->hd,
                     j->vec);
        return;
    }
    const int g = task / j->n_qb, qb = task % j->n_qb;
    const int nq = attn_gather(j, g, qb, w->q, qpos);
    const int R = nq * s->group, last = qpos[nq - 1] + 1;
    for (int seg = 0, k0 = 0; k0 < last; seg++, k0 += SEG) {
        int k1 = k0 + SEG < last ? k0 + SEG : last;
        attn_segment(s, w, j->layer, g, w->q, R, qpos, k0, k1, w->acc, w->ml, j->vec);
        attn_merge(w->tot, w->tml, w->acc, w->ml, R, s->hd, seg == 0);
    }
    mem_attend(j, w, s->mem_sc ? s->mem_sc + (size_t)thread * 2 * (size_t)s->mem_cap : NULL, g, qb,
               nq, w->tot, w->tml);
    attn_store(j, g, qb, nq, w->tot, w->tml);
}

static void attention(infer_state *s, int layer, int n, int pos0, int decode) {
    const int n_kv = s->m->tp.n_kv_heads; /* this rank's */
    attn_job j = {s, layer, n, pos0, (n + QB - 1) / QB, 0, 0, decode, 0};
    j.scale = (float)(s->score_mult / sqrt((double)s->hd));
    const int tasks = n_kv * j.n_qb, threads = infer_pool_threads(s->pool);
    j.n_seg = (pos0 + n + SEG - 1) / SEG;
    if (n == 1 && tasks < threads && j.n_seg > 1) { /* decode: split the keys */
        j.split = 1;
        infer_pool_run(s->pool, n_kv * j.n_seg, attn_task, &j);
        /* merge the segments of each kv head in order, as attn_task does */
        scratch *w = &s->th[0];
        int qpos[QB];
        const int nq = attn_gather(&j, 0, 0, w->q, qpos), R = nq * s->group;
        const size_t HD = (size_t)s->hd;
        for (int g = 0; g < n_kv; g++) {
            for (int seg = 0; seg < j.n_seg; seg++) {
                const size_t RP = (size_t)pad_rows(R);
                const float *part = s->part + (size_t)(g * j.n_seg + seg) * RP * (HD + 2);
                attn_merge(w->tot, w->tml, part, part + RP * HD, R, s->hd, seg == 0);
            }
            mem_attend(&j, w, s->mem_sc, g, 0, nq, w->tot, w->tml);
            attn_store(&j, g, 0, nq, w->tot, w->tml);
        }
        return;
    }
    infer_pool_run(s->pool, tasks, attn_task, &j);
}

/* ---- a chunk of tokens --------------------------------------------------------------------- */

static void store_kv(infer_state *s, int layer, int n, int pos0) {
    const size_t KV = (size_t)s->kv_dim, HD = (size_t)s->hd;
    for (int g = 0; g < s->m->tp.n_kv_heads; g++)
        for (int i = 0; i < n; i++) {
            void *kd = (void *)kv_row(s, s->kcache, layer, g, pos0 + i);
            void *vd = (void *)kv_row(s, s->vcache, layer, g, pos0 + i);
            const float *ks = s->k + (size_t)i * KV + (size_t)g * HD;
            const float *vs = s->v + (size_t)i * KV + (size_t)g * HD;
            if (s->o.kv_dtype == INFER_DT_F32) {
                memcpy(kd, ks, HD * sizeof(float));
                memcpy(vd, vs, HD * sizeof(float));
            } else {
                ik_f32_to_bf16(kd, ks, HD);
                ik_f32_to_bf16(vd, vs, HD);
            }
        }
}

/* LongLLaMA memory layer l: the un-rotated keys and values of n tokens at local positions
 * pos0.. in bf16 (round to nearest even, as the release's .to(bfloat16)) at mem_len + pos */
static void mem_stage(infer_state *s, int layer, int n, int pos0) {
    const size_t KV = (size_t)s->kv_dim, HD = (size_t)s->hd;
    for (int g = 0; g < s->m->tp.n_kv_heads; g++)
        for (int i = 0; i < n; i++) {
            const size_t at =
                ((size_t)g * (size_t)s->mem_cap + (size_t)(s->mem_len + pos0 + i)) * HD;
            ik_f32_to_bf16(s->mem_k[layer] + at, s->k + (size_t)i * KV + (size_t)g * HD, HD);
            ik_f32_to_bf16(s->mem_v[layer] + at, s->v + (size_t)i * KV + (size_t)g * HD, HD);
        }
}

static void rope_tables(infer_state *s, int n, int pos0) {
    const int half = s->hd / 2;
    for (int i = 0; i < n; i++)
        for (int jj = 0; jj < half; jj++) {
            double a = (double)(pos0 + i) * s->inv_freq[jj];
            s->cs[(size_t)i * (size_t)half + (size_t)jj] = (float)cos(a);
            s->sn[(size_t)i * (size_t)half + (size_t)jj] = (float)sin(a);
        }
}

/* ---- tensor parallelism: the reductions ---------------------------------------------------- */

static void comm_count(infer_state *s, double t0, size_t bytes) {
    s->cs_stats.calls++;
    s->cs_stats.bytes += bytes;
    s->cs_stats.seconds += cluster_now() - t0;
}

/* x[0, n) summed over the ranks in place: the partial products of a column-split matrix (wo,
 * w2), the embedding rows each rank holds. MPI_Allreduce gives every rank the same bits (Open
 * MPI's algorithms reduce each element once and broadcast it, or combine pairs commutatively),
 * so the ranks never drift apart; the sum's order, and so its last bits, depend on the rank
 * count and the algorithm, never on the run. */
static void tp_sum(infer_state *s, float *x, size_t n) {
    if (s->n_ranks == 1)
        return;
    const double t0 = cluster_now();
    const size_t most = (size_t)1 << 30; /* MPI counts are int */
    for (size_t i = 0; i < n; i += most)
        MPI_Allreduce(MPI_IN_PLACE, x + i, (int)(n - i < most ? n - i : most), MPI_FLOAT, MPI_SUM,
                      s->comm);
    comm_count(s, t0, n * sizeof(float));
}

/* the overlapped prefill (layers()): x[0, n) summed over the ranks in place, started into
 * request slot i; tp_wait completes it. The pool's progress hook tests the requests in flight
 * between tasks: Open MPI moves a nonblocking collective along only inside MPI calls. */
static void tp_isum(infer_state *s, int i, float *x, size_t n) {
    const double t0 = cluster_now();
    MPI_Iallreduce(MPI_IN_PLACE, x, (int)n, MPI_FLOAT, MPI_SUM, s->comm, &s->req[i]);
    comm_count(s, t0, n * sizeof(float));
}

static void tp_wait(infer_state *s, int i) {
    const double t0 = cluster_now();
    MPI_Wait(&s->req[i], MPI_STATUS_IGNORE);
    s->cs_stats.seconds += cluster_now() - t0;
}

static void tp_progress(void *ctx) {
    infer_state *s = ctx;
    int done;
    MPI_Testall(2, s->req, &done, MPI_STATUSES_IGNORE);
}

/* nr rows of this rank's logits (nr, tp.vocab) at lg as whole rows (nr, vocab): lg itself on
 * one rank, else gathered into lg_full */
static const float *tp_gather(infer_state *s, const float *lg, int nr) {
    if (s->n_ranks == 1)
        return lg;
    const double t0 = cluster_now();
    int at = 0;
    for (int r = 0; r < s->n_ranks; r++) {
        s->g_cnt[r] = nr * s->v_len[r];
        s->g_off[r] = at;
        at += s->g_cnt[r];
    }
    MPI_Allgatherv(lg, nr * s->m->tp.vocab, MPI_FLOAT, s->lg_stage, s->g_cnt, s->g_off, MPI_FLOAT,
                   s->comm);
    const size_t V = (size_t)s->m->cfg.vocab_size;
    for (int r = 0; r < s->n_ranks; r++)
        for (int i = 0; i < nr; i++)
            memcpy(s->lg_full + (size_t)i * V + (size_t)s->v_off[r],
                   s->lg_stage + (size_t)s->g_off[r] + (size_t)i * (size_t)s->v_len[r],
                   (size_t)s->v_len[r] * sizeof(float));
    comm_count(s, t0, (size_t)at * sizeof(float));
    return s->lg_full;
}

/* a status every rank agrees on: the lowest rank's nonzero rc, else 0 (a callback that stops
 * the run on one rank, say a full disk under rank 0's logits file, stops every rank) */
static int tp_agree_rc(infer_state *s, int rc) {
    return s->n_ranks == 1 ? rc : cluster_agree_first(s->comm, rc);
}

void infer_state_comm_stats(const infer_state *s, infer_comm_stats *out) {
    *out = s->cs_stats;
    if (s->grid) {
        infer_grid_stats g;
        infer_grid_get_stats(s->grid, &g);
        out->grid_gemm_calls = g.gemm_calls;
        out->grid_gemm_seconds = g.gemm_seconds;
        out->grid_redist_calls = g.redist_calls;
        out->grid_redist_bytes = g.redist_bytes;
        out->grid_redist_seconds = g.redist_seconds;
    }
}

/* the embeddings of n ids into s->x: each rank holds the rows of its vocabulary slice (the
 * others stay 0) and the sum over the ranks is the whole row, exactly (x + 0 = x) */
static void embed(infer_state *s, const uint32_t *ids, int n) {
    const infer_model *m = s->m;
    const size_t D = (size_t)m->cfg.dim, eb = dt_bytes(m->emb.dtype);
    const uint32_t v0 = (uint32_t)m->tp.vocab0, nv = (uint32_t)m->tp.vocab;
    for (int i = 0; i < n; i++) {
        float *x = s->x + (size_t)i * D;
        if (ids[i] - v0 < nv)
            ik_to_f32(x, (const char *)m->emb.p + (size_t)(ids[i] - v0) * D * eb, m->emb.dtype, D);
        else
            memset(x, 0, D * sizeof(float));
    }
    tp_sum(s, s->x, (size_t)n * D);
}

/* infer_state_find_nonfinite's check of the residual stream of n rows at pos0.. after layer l (-1:
 * the embedding); the first non-finite one is kept */
static void probe(infer_state *s, int l, int n, int pos0) {
    const size_t D = (size_t)s->m->cfg.dim;
    for (int i = 0; s->probe_layer == INT32_MIN && i < n; i++)
        for (size_t k = 0; k < D; k++)
            if (!isfinite(s->x[(size_t)i * D + k])) {
                s->probe_layer = l;
                s->probe_pos = pos0 + i;
                break;
            }
}

/* ---- 2D prefill: the linear layers on the grid ------------------------------------------- */

static void grid_check(infer_state *s, int st) {
    if (st != INFER_OK && s->grid_err == INFER_OK)
        s->grid_err = st;
}

/* y (out, n) on the grid = layer matrix k^T x, x (in, n) on the grid */
static void grid_product(infer_state *s, int l, int k, const infer_dmat *x, float *ya,
                         infer_dmat *y, int n) {
    const infer_dmat *w = &s->gl[l][k];
    infer_dmat_set(s->grid, y, w->N, n, ya);
    infer_grid_gemm(s->grid, 1, w, x, y, infer_pool_threads(s->pool));
}

/* q, k, v of n tokens from xb (held whole by every rank): this rank's heads into s->q, s->k,
 * s->v, as the 1D path leaves them */
static void grid_qkv(infer_state *s, int l, int n) {
    const int D = s->m->cfg.dim;
    infer_dmat x, y;
    infer_dmat_set(s->grid, &x, D, n, s->gx);
    infer_grid_local_copy(s->grid, s->xb, INFER_DT_F32, (size_t)D, &x);
    grid_product(s, l, GQ, &x, s->gq, &y, n);
    grid_check(s, infer_grid_gather(s->grid, &y, s->rq, s->q, (size_t)s->q_dim));
    grid_product(s, l, GK, &x, s->gk, &y, n);
    grid_check(s, infer_grid_gather(s->grid, &y, s->rk, s->k, (size_t)s->kv_dim));
    grid_product(s, l, GV, &x, s->gv, &y, n);
    grid_check(s, infer_grid_gather(s->grid, &y, s->rk, s->v, (size_t)s->kv_dim));
}

/* xb (whole, on every rank) = the attention output (this rank's heads in s->ao) through wo */
static void grid_out(infer_state *s, int l, int n) {
    const infer_config *c = &s->m->cfg;
    infer_dmat a, y;
    infer_dmat_set(s->grid, &a, c->n_heads * s->hd, n, s->gq);
    grid_check(s, infer_grid_scatter(s->grid, s->rq, s->ao, INFER_DT_F32, (size_t)s->q_dim, &a));
    grid_product(s, l, GO, &a, s->gx, &y, n);
    grid_check(s, infer_grid_gather(s->grid, &y, s->rall, s->xb, (size_t)c->dim));
}

/* xb (whole) = the MLP of xb (whole): gate and up on the grid, SiLU on the local parts (the two
 * products are laid out alike), down, gathered */
static void grid_mlp(infer_state *s, int l, int n) {
    const int D = s->m->cfg.dim;
    infer_dmat x, h1, h3, y;
    infer_dmat_set(s->grid, &x, D, n, s->gx);
    infer_grid_local_copy(s->grid, s->xb, INFER_DT_F32, (size_t)D, &x);
    grid_product(s, l, G1, &x, s->gh1, &h1, n);
    grid_product(s, l, G3, &x, s->gh3, &h3, n);
    infer_silu_mul(s->gh1, s->gh3, (size_t)h1.lld * (size_t)h1.lc);
    grid_product(s, l, G2, &h1, s->gx, &y, n);
    grid_check(s, infer_grid_gather(s->grid, &y, s->rall, s->xb, (size_t)D));
}

/* The second half of a 1D tensor-parallel prefill layer, from the output projection on, in two
 * halves of rows [0, h) and [h, n), so that each all-reduce runs while the other half computes:
 *   wo(A), start sum(A); wo(B), start sum(B); wait A; MLP(A), start sum(A');
 *   wait B; MLP(B), start sum(B'); wait A'; wait B'
 * Every product and norm computes a row on its own (ik_gemm), so the values are those of the
 * whole chunk; the all-reduces' order of summation can differ from one of the whole chunk
 * (Open MPI picks its algorithm by size), within rounding, and is the same on every rank. */
static void out_mlp_overlap(infer_state *s, const infer_layer *L, int n) {
    const infer_config *c = &s->m->cfg;
    const int D = c->dim, H = s->m->tp.hidden_dim, h = n / 2;
    const size_t SD = (size_t)D, SH = (size_t)H, Q = (size_t)s->q_dim;
    const int r0[2] = {0, h}, nr[2] = {h, n - h};
    infer_pool_set_progress(s->pool, tp_progress, s);
    for (int p = 0; p < 2; p++) { /* attention output -> xb, summed */
        float *y = s->xb + (size_t)r0[p] * SD;
        linear(s, y, s->ao + (size_t)r0[p] * Q, L->wo, nr[p], D, s->q_dim, 0, 0);
        tp_isum(s, p, y, (size_t)nr[p] * SD);
    }
    for (int p = 0; p < 2; p++) { /* residual, norm, MLP -> xb, summed */
        const size_t a = (size_t)r0[p] * SD, cnt = (size_t)nr[p] * SD;
        tp_wait(s, p);
        for (size_t i = 0; i < cnt; i++)
            s->x[a + i] += s->xb[a + i];
        for (int i = 0; i < nr[p]; i++)
            rmsnorm(s->xb + a + (size_t)i * SD, s->x + a + (size_t)i * SD, L->rms_ffn, D,
                    c->rms_eps);
        float *h1 = s->h1 + (size_t)r0[p] * SH, *h3 = s->h3 + (size_t)r0[p] * SH;
        linear(s, h1, s->xb + a, L->w1, nr[p], H, D, 0, 0);
        linear(s, h3, s->xb + a, L->w3, nr[p], H, D, 0, 1);
        infer_silu_mul(h1, h3, (size_t)nr[p] * SH);
        linear(s, s->xb + a, h1, L->w2, nr[p], D, H, 0, 0);
        tp_isum(s, p, s->xb + a, cnt);
    }
    for (int p = 0; p < 2; p++) {
        tp_wait(s, p);
        const size_t a = (size_t)r0[p] * SD, cnt = (size_t)nr[p] * SD;
        for (size_t i = 0; i < cnt; i++)
            s->x[a + i] += s->xb[a + i];
    }
    infer_pool_set_progress(s->pool, NULL, NULL);
}

/* whether a prefill chunk of n rows runs out_mlp_overlap: 1D tensor parallelism, the SIMD
 * products (row by row, no padded calls), halves whose sums fit an int count */
static int overlaps(const infer_state *s, int n, int decode) {
    return !decode && s->n_ranks > 1 && !s->grid && !s->o.no_overlap && n >= 2 * OVERLAP_MIN &&
           ik_isa_current() >= IK_AVX2 && (size_t)n * (size_t)s->m->cfg.dim < INT32_MAX;
}

/* the layers over n tokens at pos0..; s->x holds their embeddings and ends as the residual */
static void layers(infer_state *s, int n, int pos0, int decode) {
    const infer_model *m = s->m;
    const infer_config *c = &m->cfg;
    const int D = c->dim, H = m->tp.hidden_dim, half = s->hd / 2;
    const size_t SD = (size_t)D, SH = (size_t)H;
    const int g2 = s->grid && !decode; /* 2D prefill */
    rope_tables(s, n, pos0);
    for (int l = 0; l < c->n_layers; l++) {
        const infer_layer *L = &m->layers[l];
        /* attention */
        for (int i = 0; i < n; i++)
            rmsnorm(s->xb + (size_t)i * SD, s->x + (size_t)i * SD, L->rms_att, D, c->rms_eps);
        if (g2) {
            grid_qkv(s, l, n);
        } else {
            linear(s, s->q, s->xb, L->wq, n, s->q_dim, D, decode, 0);
            linear(s, s->k, s->xb, L->wk, n, s->kv_dim, D, decode, 1);
            linear(s, s->v, s->xb, L->wv, n, s->kv_dim, D, decode, 1);
        }
        if (s->mem_k && s->mem_k[l]) /* un-rotated, after the memory (mem_attend) */
            mem_stage(s, l, n, pos0);
        for (int i = 0; i < n; i++) {
            const float *cs = s->cs + (size_t)i * (size_t)half,
                        *sn = s->sn + (size_t)i * (size_t)half;
            rope(s->q + (size_t)i * (size_t)s->q_dim, m->tp.n_heads, s->hd, c->rope_pairing, cs,
                 sn);
            rope(s->k + (size_t)i * (size_t)s->kv_dim, m->tp.n_kv_heads, s->hd, c->rope_pairing, cs,
                 sn);
        }
        store_kv(s, l, n, pos0);
        attention(s, l, n, pos0, decode);
        if (overlaps(s, n, decode)) {
            out_mlp_overlap(s, L, n);
            if (s->probe)
                probe(s, l, n, pos0);
            continue;
        }
        if (g2) {
            grid_out(s, l, n);
        } else {
            linear(s, s->xb, s->ao, L->wo, n, D, s->q_dim, decode, 0);
            tp_sum(s, s->xb, (size_t)n * SD);
        }
        for (size_t i = 0; i < (size_t)n * SD; i++)
            s->x[i] += s->xb[i];
        /* SwiGLU MLP */
        for (int i = 0; i < n; i++)
            rmsnorm(s->xb + (size_t)i * SD, s->x + (size_t)i * SD, L->rms_ffn, D, c->rms_eps);
        if (g2) {
            grid_mlp(s, l, n);
        } else {
            linear(s, s->h1, s->xb, L->w1, n, H, D, decode, 0);
            linear(s, s->h3, s->xb, L->w3, n, H, D, decode, 1);
            infer_silu_mul(s->h1, s->h3, (size_t)n * SH);
            linear(s, s->xb, s->h1, L->w2, n, D, H, decode, 0);
            tp_sum(s, s->xb, (size_t)n * SD);
        }
        for (size_t i = 0; i < (size_t)n * SD; i++)
            s->x[i] += s->xb[i];
        if (s->probe)
            probe(s, l, n, pos0);
    }
}

static void rope_update(infer_state *s, int64_t len) {
    const infer_config *c = &s->m->cfg;
    if (c->rope_type != INFER_ROPE_DYNAMIC)
        return;
    /* HF: grow theta when the sequence outgrows the cached length; back to the original when a
     * new sequence fits */
    int64_t eff = len > c->seq_len ? len : 0;
    if (eff != s->rope_len && (eff > s->rope_len || len <= c->seq_len)) {
        infer_rope_freqs(c, s->hd, eff, s->inv_freq, &s->score_mult);
        s->rope_len = eff;
    }
}

/* infer_prefill's pass over ids[0, n) at pos0..: want NULL and want_last: the last position */
static int prefill_run(infer_state *s, const uint32_t *ids, int n, int pos0, const uint8_t *want,
                       int want_last, infer_logits_fn fn, void *ctx) {
    const infer_model *m = s->m;
    const infer_config *c = &m->cfg;
    if (pos0 == 0)
        s->rope_len = -1; /* a new sequence */
    rope_update(s, (int64_t)pos0 + n);
    const size_t D = (size_t)c->dim, V = (size_t)c->vocab_size; /* gathered rows */
    for (int c0 = 0; c0 < n; c0 += s->chunk) {
        const int cn = c0 + s->chunk < n ? s->chunk : n - c0;
        embed(s, ids + c0, cn);
        if (s->probe)
            probe(s, -1, cn, pos0 + c0);
        layers(s, cn, pos0 + c0, 0);
        if (s->grid_err != INFER_OK)
            return s->grid_err;
        /* the wanted rows: final norm into xb, then LR rows at a time through the classifier */
        int rows[LR], nr = 0;
        for (int i = 0; i <= cn; i++) {
            if (i < cn && (want ? want[c0 + i] != 0 : want_last && c0 + i == n - 1)) {
                rmsnorm(s->xb + (size_t)nr * D, s->x + (size_t)i * D, m->rms_final, c->dim,
                        c->rms_eps);
                rows[nr++] = i;
            }
            if (nr == LR || (i == cn && nr > 0)) {
                linear(s, s->lg, s->xb, m->wcls, nr, m->tp.vocab, c->dim, 0, 0);
                const float *lg = tp_gather(s, s->lg, nr);
                int rc = 0;
                for (int r = 0; rc == 0 && r < nr; r++)
                    rc = fn(ctx, s->mem_pos_off + pos0 + c0 + rows[r], lg + (size_t)r * V);
                if ((rc = tp_agree_rc(s, rc)) != 0)
                    return rc;
                nr = 0;
            }
        }
    }
    return INFER_OK;
}

/* LongLLaMA's prompt (REFERENCE.md 1.3): tokens [0, M), M = max(n - last_ctx, 0), in windows
 * of seq_len, each alone at local positions 0.. (the KV cache past a window's length is never
 * read); a window's memory-layer keys and values, staged as it runs, join the memory after it.
 * Then the last n - M tokens become the local context. */
static int mem_prefill(infer_state *s, const uint32_t *ids, int n, const uint8_t *want,
                       infer_logits_fn fn, void *ctx) {
    const infer_config *c = &s->m->cfg;
    const int W = c->seq_len, M = n - c->last_ctx > 0 ? n - c->last_ctx : 0;
    s->mem_len = s->mem_local = s->mem_seq = 0;
    int rc = INFER_OK;
    for (int w0 = 0; rc == INFER_OK && w0 < M; w0 += W) {
        const int wn = M - w0 < W ? M - w0 : W;
        s->mem_pos_off = w0;
        rc = prefill_run(s, ids + w0, wn, 0, want ? want + w0 : NULL, w0 + wn == n, fn, ctx);
        s->mem_len += wn;
    }
    if (rc == INFER_OK && M < n) {
        s->mem_pos_off = M;
        rc = prefill_run(s, ids + M, n - M, 0, want ? want + M : NULL, 1, fn, ctx);
        s->mem_local = n - M;
    }
    s->mem_pos_off = 0;
    s->mem_seq = rc == INFER_OK ? n : 0;
    return rc;
}

int infer_prefill(infer_state *s, const uint32_t *ids, int n, int pos0, const uint8_t *want,
                  infer_logits_fn fn, void *ctx) {
    const infer_config *c = &s->m->cfg;
    if (n <= 0 || pos0 < 0 || pos0 > s->o.max_ctx - n)
        return INFER_ERR_ARG;
    for (int i = 0; i < n; i++)
        if (ids[i] >= (uint32_t)c->vocab_size)
            return INFER_ERR_ARG;
    if (c->n_mem_layers > 0) /* LongLLaMA: a whole prompt from position 0 */
        return pos0 == 0 ? mem_prefill(s, ids, n, want, fn, ctx) : INFER_ERR_UNSUPPORTED;
    return prefill_run(s, ids, n, pos0, want, 1, fn, ctx);
}

int infer_prefill_resume(const infer_state *s, int common, int n) {
    const infer_config *c = &s->m->cfg;
    if (common > n - 1)
        common = n - 1;
    if (common <= 0 || c->n_mem_layers > 0 || c->rope_type == INFER_ROPE_DYNAMIC)
        return 0;
    const int simd = ik_isa_current() >= IK_AVX2; /* ik_gemm row by row, no padded sgemm */
    if (simd && s->n_ranks <= 2 && !s->grid)
        return common;
    return common / s->chunk * s->chunk;
}

/* one token through the model: this rank's slice of its logits in s->lg */
static int forward_local(infer_state *s, uint32_t token, int pos) {
    const infer_model *m = s->m;
    const infer_config *c = &m->cfg;
    if (token >= (uint32_t)c->vocab_size || pos < 0 || pos >= s->o.max_ctx)
        return INFER_ERR_ARG;
    if (pos == 0)
        s->rope_len = -1;
    rope_update(s, (int64_t)pos + 1);
    int lpos = pos; /* the position in the local context */
    if (c->n_mem_layers > 0) {
        /* LongLLaMA: generation continues the sequence; a local context that would pass
         * seq_len goes whole into memory (staged already) before this step's attention */
        if (pos == 0)
            s->mem_len = s->mem_local = s->mem_seq = 0;
        if (pos != s->mem_seq)
            return INFER_ERR_UNSUPPORTED;
        if (s->mem_local + 1 > c->seq_len) {
            s->mem_len += s->mem_local;
            s->mem_local = 0;
        }
        lpos = s->mem_local;
    }
    embed(s, &token, 1);
    layers(s, 1, lpos, 1);
    if (c->n_mem_layers > 0) {
        s->mem_local++;
        s->mem_seq++;
    }
    rmsnorm(s->xb, s->x, m->rms_final, c->dim, c->rms_eps);
    linear(s, s->lg, s->xb, m->wcls, 1, m->tp.vocab, c->dim, 1, 0);
    return INFER_OK;
}

int infer_forward(infer_state *s, uint32_t token, int pos, const float **logits) {
    const int st = forward_local(s, token, pos);
    if (st == INFER_OK)
        *logits = tp_gather(s, s->lg, 1);
    return st;
}

/* s->swork of at least n bytes. The size depends only on global quantities, so every rank
 * grows it at the same call, and agrees on the outcome. */
static int swork_reserve(infer_state *s, size_t n) {
    if (n <= s->swork_cap)
        return INFER_OK;
    void *p = realloc(s->swork, n);
    int st = p ? INFER_OK : INFER_ERR_NOMEM;
    if (p) {
        s->swork = p;
        s->swork_cap = n;
    }
    return s->n_ranks > 1 ? cluster_agree(s->comm, st) : st;
}

int infer_forward_sample(infer_state *s, uint32_t token, int pos, float temperature, int top_k,
                         float top_p, uint64_t *rng, uint32_t *next) {
    int st = forward_local(s, token, pos);
    if (st != INFER_OK)
        return st;
    const infer_config *c = &s->m->cfg;
    const int P = s->n_ranks, V = c->vocab_size;
    if (P == 1 || (temperature > 0 && top_k <= 0)) { /* the whole row */
        const float *lg = tp_gather(s, s->lg, 1);
        if (infer_logits_find_nonfinite(lg, (size_t)V) >= 0)
            return INFER_ERR_NUMERIC;
        if ((st = swork_reserve(s, infer_sample_work_bytes(V))) != INFER_OK)
            return st;
        *next = (uint32_t)infer_sample(lg, V, temperature, top_k, top_p, rng, s->swork);
        return INFER_OK;
    }
    const int most = (V + P - 1) / P; /* the longest slice: the same size on every rank */
    if ((st = swork_reserve(s, infer_sample_split_work_bytes(most, top_k, P))) != INFER_OK)
        return st;
    const double t0 = cluster_now();
    st = infer_sample_split(s->lg, s->m->tp.vocab, s->m->tp.vocab0, s->comm, temperature, top_k,
                            top_p, rng, s->swork, next);
    comm_count(s, t0, temperature > 0 ? (size_t)top_k * 8 * (size_t)P : 16);
    return st;
}

static int probe_none(void *ctx, int pos, const float *logits) {
    (void)ctx, (void)pos, (void)logits;
    return 0;
}

int infer_state_find_nonfinite(infer_state *s, const uint32_t *ids, int n, int *layer, int *pos) {
    s->probe = 1;
    s->probe_layer = INT32_MIN;
    const int st = infer_prefill(s, ids, n, 0, NULL, probe_none, NULL);
    s->probe = 0;
    *layer = s->probe_layer == INT32_MIN ? s->m->cfg.n_layers : s->probe_layer;
    *pos = s->probe_layer == INT32_MIN ? n - 1 : s->probe_pos;
    return st;
}

int infer_act_check(int weight_dtype, int act) {
    if (act != INFER_ACT_F32 && act != INFER_ACT_BF16)
        return INFER_ERR_ARG;
    ik_init(NULL);
    if (act == INFER_ACT_BF16 &&
        (weight_dtype != INFER_DT_BF16 || ik_isa_current() != IK_AVX512BF16))
        return INFER_ERR_UNSUPPORTED;
    return INFER_OK;
}

const char *infer_act_name(int act) {
    return act == INFER_ACT_F32 ? "f32" : act == INFER_ACT_BF16 ? "bf16" : "unknown";
}

const char *infer_isa(void) {
    return ik_isa_name(ik_isa_current());
}
