/* infer_grid.c - 2D tensor parallelism: a BLACS process grid over the state's communicator,
 * matrices in ScaLAPACK's 2D block-cyclic layout, products by PBLAS's PSGEMM, and the
 * redistributions between that layout and the 1D (Megatron) slices the rest of the forward pass
 * uses (heads for attention, whole rows for the residual).
 *
 * Everything here is column-major, as ScaLAPACK is: a row-major (rows, cols) array of the forward
 * pass is the column-major (cols, rows) matrix, so a linear layer Y = X W^T over n tokens is
 * Y' (out, n) = W' (in, out)^T X' (in, n) with W' the stored (out, in) weights read column-major.
 * Blocks are square (nb x nb) and start on process (0, 0), so every operand of a product is
 * aligned as PSGEMM requires. A matrix's local part has lld = max(1, local rows) and its local
 * columns after it, so the local elements are one dense run of lld * local-cols floats.
 *
 * Redistribution is one MPI_Alltoallv over the state's communicator: the sender and the receiver
 * each walk the same spans (a column, and a run of rows inside one nb-block) in the same order,
 * so nothing but the values travels. */
#include "infer_internal.h"
#include "infer_kernels.h"

#include <assert.h>
#include <cblas.h>
#include <stdlib.h>
#include <string.h>

/* BLACS and PBLAS (Debian's libscalapack-openmpi ships no header) */
int Csys2blacs_handle(MPI_Comm comm);
void Cfree_blacs_system_handle(int handle);
void Cblacs_gridinit(int *ctxt, const char *order, int nprow, int npcol);
void Cblacs_gridinfo(int ctxt, int *nprow, int *npcol, int *myrow, int *mycol);
void Cblacs_gridexit(int ctxt);
void psgemm_(const char *transa, const char *transb, const int *m, const int *n, const int *k,
             const float *alpha, const float *a, const int *ia, const int *ja, const int *desca,
             const float *b, const int *ib, const int *jb, const int *descb, const float *beta,
             float *c, const int *ic, const int *jc, const int *descc);

struct infer_grid {
    MPI_Comm comm; /* not owned */
    int rank, size, handle, ctxt;
    int pr, pc, myr, myc, nb;
    int *cnt, *dsp, *rcnt, *rdsp; /* (size) each, for Alltoallv */
    float *sbuf, *rbuf;
    size_t scap, rcap; /* elements */
    infer_grid_stats st;
};

/* the local count of n indices in blocks of nb dealt round-robin over np processes, at p */
static int local_count(int n, int nb, int p, int np) {
    const int blocks = n / nb, extra = n % nb;
    int c = blocks / np * nb;
    const int rest = blocks % np;
    if (p < rest)
        c += nb;
    else if (p == rest)
        c += extra;
    return c;
}

/* the local index of global index i (on its owner) */
static int local_index(int i, int nb, int np) {
    return i / (nb * np) * nb + i % nb;
}

int infer_grid_create(MPI_Comm comm, int pr, int nb, infer_grid **out) {
    *out = NULL;
    infer_grid *g = calloc(1, sizeof *g);
    if (!g)
        return INFER_ERR_NOMEM;
    g->comm = comm;
    MPI_Comm_rank(comm, &g->rank);
    MPI_Comm_size(comm, &g->size);
    if (pr < 1 || g->size % pr || nb < 1) {
        free(g);
        return INFER_ERR_ARG;
    }
    g->pr = pr;
    g->pc = g->size / pr;
    g->nb = nb;
    g->cnt = calloc(4 * (size_t)g->size, sizeof(int));
    /* every rank enters the BLACS collectives below, or none does */
    int bad = !g->cnt, any = 0;
    MPI_Allreduce(&bad, &any, 1, MPI_INT, MPI_MAX, comm);
    if (any) {
        free(g->cnt);
        free(g);
        return INFER_ERR_NOMEM;
    }
    g->dsp = g->cnt + g->size;
    g->rcnt = g->dsp + g->size;
    g->rdsp = g->rcnt + g->size;
    /* row-major grid: rank = myr * pc + myc, the order of the rectangles' ranks below */
    g->handle = Csys2blacs_handle(comm);
    g->ctxt = g->handle;
    Cblacs_gridinit(&g->ctxt, "Row", g->pr, g->pc);
    int npr, npc;
    Cblacs_gridinfo(g->ctxt, &npr, &npc, &g->myr, &g->myc);
    if (npr != g->pr || npc != g->pc || g->myr * g->pc + g->myc != g->rank) {
        infer_grid_free(g);
        return INFER_ERR_ARG;
    }
    *out = g;
    return INFER_OK;
}

void infer_grid_free(infer_grid *g) {
    if (!g)
        return;
    Cblacs_gridexit(g->ctxt);
    Cfree_blacs_system_handle(g->handle);
    free(g->cnt);
    free(g->sbuf);
    free(g->rbuf);
    free(g);
}

void infer_grid_shape(const infer_grid *g, int *pr, int *pc, int *nb) {
    *pr = g->pr;
    *pc = g->pc;
    *nb = g->nb;
}

void infer_grid_get_stats(const infer_grid *g, infer_grid_stats *out) {
    *out = g->st;
}

/* the local part of an (M, N) matrix on rank r of the grid: rows (the lld) and columns */
static void local_dims(const infer_grid *g, int r, int M, int N, int *lr, int *lc) {
    *lr = local_count(M, g->nb, r / g->pc, g->pr);
    *lc = local_count(N, g->nb, r % g->pc, g->pc);
}

size_t infer_grid_local_elems(const infer_grid *g, int M, int N) {
    int lr, lc;
    local_dims(g, g->rank, M, N, &lr, &lc);
    return (size_t)(lr > 1 ? lr : 1) * (size_t)lc;
}

void infer_dmat_set(const infer_grid *g, infer_dmat *d, int M, int N, float *a) {
    d->M = M;
    d->N = N;
    d->a = a;
    local_dims(g, g->rank, M, N, &d->lr, &d->lc);
    d->lld = d->lr > 1 ? d->lr : 1;
    /* the ScaLAPACK descriptor: dense, (M, N), nb x nb blocks from process (0, 0) */
    const int desc[9] = {1, g->ctxt, M, N, g->nb, g->nb, 0, 0, d->lld};
    memcpy(d->desc, desc, sizeof desc);
}

/* ---- the spans: the rows of a rectangle that one process of the grid owns -------------------- */

typedef struct {
    const infer_grid *g;
    const infer_rect *rc; /* the rectangle */
    int pr, pc;           /* the grid process (row, column) that owns the spans */
} spans;

typedef struct {
    int i, j, len; /* rows i..i+len-1 of column j (global) */
} span;

/* the spans of rectangle rc owned by process (pr, pc), in column order then row order, through
 * fn; returns the number of elements */
typedef void (*span_fn)(void *ctx, span sp);

static size_t walk(const spans *w, span_fn fn, void *ctx) {
    const infer_grid *g = w->g;
    const int nb = g->nb, r0 = w->rc->r0, r1 = w->rc->r0 + w->rc->nr;
    const int c0 = w->rc->c0, c1 = w->rc->c0 + w->rc->nc;
    size_t n = 0;
    if (r1 <= r0 || c1 <= c0)
        return 0;
    /* the first block of each dimension that process owns at or after the rectangle's start */
    int bj = c0 / nb;
    bj += ((w->pc - bj % g->pc) + g->pc) % g->pc;
    for (; bj * nb < c1; bj += g->pc) {
        const int ja = bj * nb > c0 ? bj * nb : c0, jb = (bj + 1) * nb < c1 ? (bj + 1) * nb : c1;
        for (int j = ja; j < jb; j++) {
            int bi = r0 / nb;
            bi += ((w->pr - bi % g->pr) + g->pr) % g->pr;
            for (; bi * nb < r1; bi += g->pr) {
                const int ia = bi * nb > r0 ? bi * nb : r0;
                const int ib = (bi + 1) * nb < r1 ? (bi + 1) * nb : r1;
                if (fn)
                    fn(ctx, (span){ia, j, ib - ia});
                n += (size_t)(ib - ia);
            }
        }
    }
    return n;
}

/* the rectangle rank r sends in a scatter: its own, unless a lower rank holds the same one */
static int sends(const infer_rect *rects, int r) {
    for (int q = 0; q < r; q++)
        if (!memcmp(&rects[q], &rects[r], sizeof *rects))
            return 0;
    return 1;
}

static infer_rect clip(const infer_rect *a, int M, int N) {
    infer_rect r = *a;
    if (r.r0 + r.nr > M)
        r.nr = M - r.r0;
    if (r.c0 + r.nc > N)
        r.nc = N - r.c0;
    return r;
}

/* the Alltoallv counts of a scatter (to_grid) or a gather of an (M, N) matrix, per rank, and
 * their totals. Scatter: to r go the spans of my rectangle that r owns (if I send it), from r
 * come the spans of r's rectangle that I own (if r sends it). Gather: the other way round. */
static int counts(const infer_grid *g, const infer_rect *rects, int M, int N, int to_grid,
                  size_t *send, size_t *recv) {
    *send = *recv = 0;
    int fits = 1; /* every count and both totals in an int (MPI_Alltoallv's counts) */
    const infer_rect mine = clip(&rects[g->rank], M, N);
    const int i_send = !to_grid || sends(rects, g->rank);
    for (int r = 0; r < g->size; r++) {
        const infer_rect theirs = clip(&rects[r], M, N);
        const spans in_theirs_mine = {g, &theirs, g->myr, g->myc}; /* r's rectangle, my blocks */
        const spans in_mine_theirs = {g, &mine, r / g->pc, r % g->pc}; /* mine, r's blocks */
        size_t s, v;
        if (to_grid) {
            s = i_send ? walk(&in_mine_theirs, NULL, NULL) : 0;
            v = sends(rects, r) ? walk(&in_theirs_mine, NULL, NULL) : 0;
        } else {
            s = walk(&in_theirs_mine, NULL, NULL);
            v = walk(&in_mine_theirs, NULL, NULL);
        }
        g->cnt[r] = (int)s;
        g->rcnt[r] = (int)v;
        *send += s;
        *recv += v;
        fits &= s <= INT32_MAX && v <= INT32_MAX && *send <= INT32_MAX && *recv <= INT32_MAX;
    }
    return fits;
}

int infer_grid_reserve(infer_grid *g, const infer_rect *rects, int M, int N) {
    size_t s, r, s2, r2;
    if (!counts(g, rects, M, N, 1, &s, &r) || !counts(g, rects, M, N, 0, &s2, &r2))
        return INFER_ERR_NOMEM; /* more than MPI's int counts: a larger grid or smaller chunk */
    s = s > s2 ? s : s2;
    r = r > r2 ? r : r2;
    if (s > g->scap) {
        float *p = realloc(g->sbuf, s * sizeof(float));
        if (!p)
            return INFER_ERR_NOMEM;
        g->sbuf = p;
        g->scap = s;
    }
    if (r > g->rcap) {
        float *p = realloc(g->rbuf, r * sizeof(float));
        if (!p)
            return INFER_ERR_NOMEM;
        g->rbuf = p;
        g->rcap = r;
    }
    return INFER_OK;
}

void infer_grid_release(infer_grid *g) {
    free(g->sbuf);
    free(g->rbuf);
    g->sbuf = g->rbuf = NULL;
    g->scap = g->rcap = 0;
}

size_t infer_grid_work_bytes(const infer_grid *g) {
    return (g->scap + g->rcap) * sizeof(float);
}

/* packing and unpacking: a rectangle's array (column-major, ld, dtype) or a matrix's local part */
typedef struct {
    const infer_grid *g;
    const infer_rect *rc;
    const void *src; /* the rectangle's elements (pack) */
    float *dst;      /* or (unpack) */
    int dtype;
    size_t ld;
    infer_dmat *d; /* the local part */
    float *buf;
    size_t at;
} pack;

/* a span of the rectangle's elements (column-major, widened) as f32 at dst */
static void rect_span(const pack *k, span sp, float *dst) {
    const size_t es = k->dtype == INFER_DT_F32 ? 4 : 2;
    const size_t i = (size_t)(sp.i - k->rc->r0), j = (size_t)(sp.j - k->rc->c0);
    ik_to_f32(dst, (const char *)k->src + (j * k->ld + i) * es, k->dtype, (size_t)sp.len);
}

static void rect_to_buf(void *ctx, span sp) {
    pack *k = ctx;
    rect_span(k, sp, k->buf + k->at);
    k->at += (size_t)sp.len;
}

static void buf_to_rect(void *ctx, span sp) {
    pack *k = ctx;
    const size_t off = (size_t)(sp.j - k->rc->c0) * k->ld + (size_t)(sp.i - k->rc->r0);
    memcpy(k->dst + off, k->buf + k->at, (size_t)sp.len * sizeof(float));
    k->at += (size_t)sp.len;
}

static float *local_at(const pack *k, span sp) {
    const int li = local_index(sp.i, k->g->nb, k->g->pr),
              lj = local_index(sp.j, k->g->nb, k->g->pc);
    return k->d->a + (size_t)lj * (size_t)k->d->lld + (size_t)li;
}

static void local_to_buf(void *ctx, span sp) {
    pack *k = ctx;
    memcpy(k->buf + k->at, local_at(k, sp), (size_t)sp.len * sizeof(float));
    k->at += (size_t)sp.len;
}

static void buf_to_local(void *ctx, span sp) {
    pack *k = ctx;
    memcpy(local_at(k, sp), k->buf + k->at, (size_t)sp.len * sizeof(float));
    k->at += (size_t)sp.len;
}

static void rect_to_local(void *ctx, span sp) {
    pack *k = ctx;
    rect_span(k, sp, local_at(k, sp));
}

static void offsets(infer_grid *g) {
    int a = 0, b = 0;
    for (int r = 0; r < g->size; r++) {
        g->dsp[r] = a;
        g->rdsp[r] = b;
        a += g->cnt[r];
        b += g->rcnt[r];
    }
}

static int exchange(infer_grid *g, size_t send, size_t recv) {
    (void)send, (void)recv;
    const double t0 = MPI_Wtime();
    MPI_Alltoallv(g->sbuf, g->cnt, g->dsp, MPI_FLOAT, g->rbuf, g->rcnt, g->rdsp, MPI_FLOAT,
                  g->comm);
    g->st.redist_seconds += MPI_Wtime() - t0;
    g->st.redist_calls++;
    /* bytes that left this rank for another one */
    for (int r = 0; r < g->size; r++)
        if (r != g->rank)
            g->st.redist_bytes += (uint64_t)g->cnt[r] * sizeof(float);
    return INFER_OK;
}

int infer_grid_scatter(infer_grid *g, const infer_rect *rects, const void *src, int dtype,
                       size_t ld, infer_dmat *d) {
    size_t send, recv;
    counts(g, rects, d->M, d->N, 1, &send, &recv);
    /* infer_grid_reserve made room for this shape (a precondition, not a runtime outcome: a
     * rank returning here would leave the others in the collective) */
    assert(send <= g->scap && recv <= g->rcap);
    offsets(g);
    const infer_rect mine = clip(&rects[g->rank], d->M, d->N);
    if (sends(rects, g->rank))
        for (int r = 0; r < g->size; r++) {
            pack k = {g, &mine, src, NULL, dtype, ld, d, g->sbuf, (size_t)g->dsp[r]};
            spans w = {g, &mine, r / g->pc, r % g->pc};
            walk(&w, rect_to_buf, &k);
        }
    int st = exchange(g, send, recv);
    for (int r = 0; st == INFER_OK && r < g->size; r++) {
        if (!sends(rects, r))
            continue;
        const infer_rect theirs = clip(&rects[r], d->M, d->N);
        pack k = {g, &theirs, NULL, NULL, 0, 0, d, g->rbuf, (size_t)g->rdsp[r]};
        spans w = {g, &theirs, g->myr, g->myc};
        walk(&w, buf_to_local, &k);
    }
    return st;
}

int infer_grid_gather(infer_grid *g, const infer_dmat *d, const infer_rect *rects, float *dst,
                      size_t ld) {
    size_t send, recv;
    counts(g, rects, d->M, d->N, 0, &send, &recv);
    assert(send <= g->scap && recv <= g->rcap); /* as in infer_grid_scatter */
    offsets(g);
    for (int r = 0; r < g->size; r++) {
        const infer_rect theirs = clip(&rects[r], d->M, d->N);
        pack k = {g, &theirs, NULL, NULL, 0, 0, (infer_dmat *)d, g->sbuf, (size_t)g->dsp[r]};
        spans w = {g, &theirs, g->myr, g->myc};
        walk(&w, local_to_buf, &k);
    }
    int st = exchange(g, send, recv);
    const infer_rect mine = clip(&rects[g->rank], d->M, d->N);
    for (int r = 0; st == INFER_OK && r < g->size; r++) {
        pack k = {g, &mine, NULL, dst, 0, ld, (infer_dmat *)d, g->rbuf, (size_t)g->rdsp[r]};
        spans w = {g, &mine, r / g->pc, r % g->pc};
        walk(&w, buf_to_rect, &k);
    }
    return st;
}

void infer_grid_local_copy(const infer_grid *g, const void *src, int dtype, size_t ld,
                           infer_dmat *d) {
    const infer_rect whole = {0, d->M, 0, d->N};
    pack k = {g, &whole, src, NULL, dtype, ld, d, NULL, 0};
    spans w = {g, &whole, g->myr, g->myc};
    walk(&w, rect_to_local, &k);
}

void infer_grid_gemm(infer_grid *g, int trans_w, const infer_dmat *w, const infer_dmat *x,
                     infer_dmat *y, int threads) {
    const int one = 1;
    const float alpha = 1.0f, beta = 0.0f;
    const double t0 = MPI_Wtime();
    if (threads > 1)
        openblas_set_num_threads(threads);
    const int *k = trans_w ? &w->M : &w->N;
    psgemm_(trans_w ? "T" : "N", "N", &y->M, &y->N, k, &alpha, w->a, &one, &one, w->desc, x->a,
            &one, &one, x->desc, &beta, y->a, &one, &one, y->desc);
    if (threads > 1)
        openblas_set_num_threads(1);
    g->st.gemm_seconds += MPI_Wtime() - t0;
    g->st.gemm_calls++;
}

/* ---- the layout of a model on a grid: shared by the state and the plan ---------------------- */

static int head_dim(const infer_config *c) {
    return c->head_dim ? c->head_dim : c->dim / c->n_heads;
}

void infer_grid_layer_shape(const infer_config *c, int n_ranks, int k, int *M, int *N,
                            infer_rect *rc) {
    const int D = c->dim, hd = head_dim(c), Q = c->n_heads * hd, KV = c->n_kv_heads * hd;
    const int H = c->hidden_dim;
    for (int r = 0; rc && r < n_ranks; r++) {
        infer_split sp;
        infer_split_make(c, r, n_ranks, &sp);
        const infer_rect q = {0, D, sp.head0 * hd, sp.n_heads * hd};
        const infer_rect kv = {0, D, sp.kv_head0 * hd, sp.n_kv_heads * hd};
        const infer_rect h = {0, D, sp.hidden0, sp.hidden_dim};
        const infer_rect o = {sp.head0 * hd, sp.n_heads * hd, 0, D};
        const infer_rect d = {sp.hidden0, sp.hidden_dim, 0, D};
        rc[r] = k == INFER_G_Q                     ? q
                : k == INFER_G_K || k == INFER_G_V ? kv
                : k == INFER_G_O                   ? o
                : k == INFER_G_2                   ? d
                                                   : h;
    }
    *M = k == INFER_G_O ? Q : k == INFER_G_2 ? H : D;
    *N = k == INFER_G_Q                     ? Q
         : k == INFER_G_K || k == INFER_G_V ? KV
         : k == INFER_G_O || k == INFER_G_2 ? D
                                            : H;
}

void infer_grid_act_rects(const infer_config *c, int n_ranks, int chunk, infer_rect *rq,
                          infer_rect *rk, infer_rect *rall) {
    const int hd = head_dim(c);
    for (int r = 0; r < n_ranks; r++) {
        infer_split sp;
        infer_split_make(c, r, n_ranks, &sp);
        rq[r] = (infer_rect){sp.head0 * hd, sp.n_heads * hd, 0, chunk};
        rk[r] = (infer_rect){sp.kv_head0 * hd, sp.n_kv_heads * hd, 0, chunk};
        rall[r] = (infer_rect){0, c->dim, 0, chunk};
    }
}

/* the activations' local parts of one chunk: x, q, k, v, h1, h3 */
static size_t act_elems(const infer_grid *g, const infer_config *c, int C) {
    const int hd = head_dim(c), Q = c->n_heads * hd, KV = c->n_kv_heads * hd;
    return infer_grid_local_elems(g, c->dim, C) + infer_grid_local_elems(g, Q, C) +
           2 * infer_grid_local_elems(g, KV, C) + 2 * infer_grid_local_elems(g, c->hidden_dim, C);
}

size_t infer_grid_act_elems(const infer_grid *g, const infer_config *c, int chunk) {
    return act_elems(g, c, chunk);
}

int infer_grid_plan_bytes(const infer_config *c, int n_ranks, int pr, int nb, int chunk, int rank,
                          uint64_t *weight_bytes, uint64_t *act_bytes, uint64_t *setup_bytes) {
    *weight_bytes = *act_bytes = *setup_bytes = 0;
    if (n_ranks < 1 || pr < 1 || n_ranks % pr || nb < 1 || rank < 0 || rank >= n_ranks)
        return INFER_ERR_ARG;
    infer_grid g = {0};
    g.rank = rank;
    g.size = n_ranks;
    g.pr = pr;
    g.pc = n_ranks / pr;
    g.nb = nb;
    g.myr = rank / g.pc;
    g.myc = rank % g.pc;
    g.cnt = calloc(4 * (size_t)n_ranks, sizeof(int));
    infer_rect *rc = calloc(3 * (size_t)n_ranks, sizeof *rc);
    if (!g.cnt || !rc) {
        free(g.cnt);
        free(rc);
        return INFER_ERR_NOMEM;
    }
    g.dsp = g.cnt + n_ranks;
    g.rcnt = g.dsp + n_ranks;
    g.rdsp = g.rcnt + n_ranks;
    size_t per_layer = 0, ws = 0, wr = 0;
    for (int k = 0; k < INFER_G_N; k++) {
        int M, N;
        infer_grid_layer_shape(c, n_ranks, k, &M, &N, rc);
        per_layer += infer_grid_local_elems(&g, M, N);
        for (int dir = 0; dir < 2; dir++) { /* as infer_grid_reserve */
            size_t sn, rn;
            counts(&g, rc, M, N, dir, &sn, &rn);
            ws = sn > ws ? sn : ws;
            wr = rn > wr ? rn : wr;
        }
    }
    *setup_bytes = (uint64_t)(ws + wr) * sizeof(float);
    *weight_bytes = (uint64_t)per_layer * (uint64_t)c->n_layers * sizeof(float);
    const int hd = head_dim(c), M[3] = {c->n_heads * hd, c->n_kv_heads * hd, c->dim};
    infer_grid_act_rects(c, n_ranks, chunk, rc, rc + n_ranks, rc + 2 * n_ranks);
    size_t sm = 0, rm = 0;
    for (int i = 0; i < 3; i++)
        for (int dir = 0; dir < 2; dir++) {
            size_t sn, rn;
            counts(&g, rc + (size_t)i * (size_t)n_ranks, M[i], chunk, dir, &sn, &rn);
            sm = sn > sm ? sn : sm;
            rm = rn > rm ? rn : rm;
        }
    *act_bytes = (uint64_t)(act_elems(&g, c, chunk) + sm + rm) * sizeof(float);
    free(g.cnt);
    free(rc);
    return INFER_OK;
}

/* PBLAS's logical block size: the width of the panels PSGEMM multiplies and sends at a time.
 * ScaLAPACK's own PILAENV returns 32 and asks users to tune it for their machine; ours takes its
 * place (the dynamic linker binds PBLAS's calls to this definition). On the 70B slice
 * (bench_tp2d, BENCHMARKS.md, 128-token chunk, OpenBLAS SkylakeX kernels) 32 / 256 / 2048 gave
 * 2642 / 2076 / 1847 ms per layer on a 1x1 grid, 1643 / 1252 / 1263 on 1x2, 1862 / 1256 / 1748 on
 * 2x1. */
int pilaenv_(const int *ictxt, const char *prec);
int pilaenv_(const int *ictxt, const char *prec) {
    (void)ictxt, (void)prec;
    return 256;
}
