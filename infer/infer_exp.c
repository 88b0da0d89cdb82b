/* infer_exp.c - the exponentials of the forward pass (softmax numerators with their sum and
 * the row max, SiLU, the online softmax of a prefill tile) and decode attention's scores and
 * weighted sums: the scalar kernels, and the entry points of infer_internal.h, which call the
 * set ik_init() chose through ik_ops_now() like every other kernel.
 *
 * The vector versions are written once in infer_kernels_exp_body.h (exp, exp_sum, silu_mul,
 * softmax; the same bits as these) and in infer_kernels_avx512.c (max, scores, wsum); the avx2
 * set uses this file's max, scores and wsum. */
#include "infer_internal.h"
#include "infer_kernels.h"
#include "infer_kernels_internal.h"

#include <math.h>
#include <string.h>

/* ---- exponentials ------------------------------------------------------------------------- */

float ik_exp_sum_scalar(float *x, int n, float m) {
    float lane[16] = {0};
    for (int i = 0; i < n; i++) {
        x[i] = ik_exp_1(x[i] - m);
        lane[i & 15] += x[i];
    }
    return ik_sum16(lane);
}

float ik_max_scalar(const float *x, int n) {
    float r = -INFINITY;
    for (int i = 0; i < n; i++)
        r = x[i] > r ? x[i] : r;
    return r;
}

void ik_silu_mul_scalar(float *g, const float *u, size_t n) {
    for (size_t i = 0; i < n; i++)
        g[i] = g[i] / (1.0f + ik_exp_1(-g[i])) * u[i];
}

/* ---- decode attention: scores and weighted sums over a tile of keys ------------------------ */
/* One call per tile instead of one ik_dot / ik_axpy per key: decode of the 246M bench model at
 * 512-800 positions spent 17% of its time in the per-key calls (perf), now ~2%. */

void ik_attn_scores_scalar(float *s, const float *q, const float *k, size_t ldk, int n, int hd) {
    for (int t = 0; t < n; t++) {
        const float *kt = k + (size_t)t * ldk;
        float v = 0;
        for (int d = 0; d < hd; d++)
            v = fmaf(q[d], kt[d], v);
        s[t] = v;
    }
}

void ik_attn_wsum_scalar(float *acc, const float *p, const float *v, size_t ldv, int n, int hd) {
    for (int t = 0; t < n; t++)
        for (int d = 0; d < hd; d++)
            acc[d] = fmaf(p[t], v[(size_t)t * ldv + (size_t)d], acc[d]);
}

/* ---- prefill attention: the online softmax of one tile, rows in lanes --------------------- */
/* Per lane the operations of attn_softmax_vec (infer_kernels_exp_body.h, which says how): four
 * running maxima and four partial sums over t mod 4. */

static float maxf(float a, float b) {
    return a > b ? a : b;
}

static void softmax_lane(float *st, size_t ld, int nr, float *m, float *l, float *c) {
    float pm[4] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY}, part[4] = {0, 0, 0, 0};
    for (int t = 0; t < nr; t++)
        pm[t & 3] = maxf(st[(size_t)t * ld], pm[t & 3]);
    const float mx = maxf(maxf(pm[0], pm[1]), maxf(pm[2], pm[3]));
    const float m_old = *m, m_new = maxf(mx, m_old);
    for (int t = 0; t < nr; t++) {
        const float e = ik_exp_1(st[(size_t)t * ld] - m_new);
        st[(size_t)t * ld] = e;
        part[t & 3] += e;
    }
    const float sum = (part[0] + part[1]) + (part[2] + part[3]);
    const float f = m_new != m_old && m_old != -INFINITY ? ik_exp_1(m_old - m_new) : 1.0f;
    const float kept = *l * f;
    *l = kept + sum;
    *m = m_new;
    *c = f;
}

void ik_attn_softmax_scalar(float *st, size_t ld, int n_keys, const int *n, float *m, float *l,
                            float *c, int n_rows) {
    (void)n_keys;
    for (int r = 0; r < n_rows; r++)
        softmax_lane(st + r, ld, n[r], m + r, l + r, c + r);
}

/* ---- entry points (infer_internal.h) ------------------------------------------------------ */

void infer_attn_scores(float *s, const float *q, const float *k, size_t ldk, int n, int hd) {
    ik_ops_now()->attn_scores(s, q, k, ldk, n, hd);
}

void infer_attn_wsum(float *acc, const float *p, const float *v, size_t ldv, int n, int hd) {
    ik_ops_now()->attn_wsum(acc, p, v, ldv, n, hd);
}

void infer_attn_softmax(float *st, size_t ld, int n_keys, const int *n, float *m, float *l,
                        float *c, int n_rows) {
    ik_ops_now()->attn_softmax(st, ld, n_keys, n, m, l, c, n_rows);
}

float infer_exp_sum(float *x, int n, float m) {
    return ik_ops_now()->exp_sum(x, n, m);
}

float infer_max(const float *x, int n) {
    return ik_ops_now()->max(x, n);
}

void infer_silu_mul(float *g, const float *u, size_t n) {
    ik_ops_now()->silu_mul(g, u, n);
}

float infer_exp(float x) {
    return ik_exp_1(x);
}
