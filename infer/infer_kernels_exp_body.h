/* infer_kernels_exp_body.h - the vector exponentials (exp, softmax numerators with their sum,
 * SiLU, the online softmax of a prefill tile), written once in the F32_VEC_* layer and
 * included by infer_kernels_avx2.c and infer_kernels_avx512.c, which put these static
 * functions into their ik_ops tables.
 *
 * Why hand-written: perf of an 8192-token prefill (hidden 256, 4 layers) put 43% of the time in
 * the scalar softmax loop and libm's expf (attn_segment 32%, __expf_fma 11%); BENCHMARKS.md has
 * the before/after.
 *
 * Every ISA computes the same bits as the scalar kernels of infer_exp.c: exp is one fixed
 * sequence of fused multiply-adds (ik_exp_1 of infer_kernels_internal.h), and sums run over 16
 * lanes (element i into lane i mod 16, the lanes added by ik_sum16), which AVX2 holds as two
 * 8-lane registers. */
#ifndef LONGCTX_INFER_KERNELS_EXP_BODY_H
#define LONGCTX_INFER_KERNELS_EXP_BODY_H

#include "infer_kernels_internal.h"
#include "infer_kernels_vec.h"

#include <math.h>

enum { EXP_NV = 16 / F32_EPR }; /* registers per 16 sum lanes */

IK_VEC_AI F32_VEC ik_vec_exp(F32_VEC x) {
    x = F32_VEC_MAX(F32_VEC_MIN(x, F32_VEC_SET1(IK_EXP_HI)), F32_VEC_SET1(IK_EXP_LO));
    F32_VEC n = F32_VEC_ROUND(F32_VEC_MUL(x, F32_VEC_SET1(IK_LOG2E)));
    F32_VEC r = F32_VEC_FMA(n, F32_VEC_SET1(-IK_LN2_HI), x);
    r = F32_VEC_FMA(n, F32_VEC_SET1(-IK_LN2_LO), r);
    F32_VEC p = F32_VEC_FMA(F32_VEC_SET1(IK_EXP_P0), r, F32_VEC_SET1(IK_EXP_P1));
    p = F32_VEC_FMA(p, r, F32_VEC_SET1(IK_EXP_P2));
    p = F32_VEC_FMA(p, r, F32_VEC_SET1(IK_EXP_P3));
    p = F32_VEC_FMA(p, r, F32_VEC_SET1(IK_EXP_P4));
    p = F32_VEC_FMA(p, r, F32_VEC_SET1(IK_EXP_P5));
    F32_VEC y = F32_VEC_ADD(F32_VEC_FMA(p, F32_VEC_MUL(r, r), r), F32_VEC_SET1(1.0f));
    return F32_VEC_SCALE2N(y, n); /* n in [-126, 127] after the clamp */
}

/* x[i] = exp(x[i] - m); returns their sum (infer_exp_sum) */
static float exp_sum_vec(float *x, int n, float m) {
    const F32_VEC vm = F32_VEC_SET1(m);
    F32_VEC acc[EXP_NV];
    for (int j = 0; j < EXP_NV; j++)
        acc[j] = F32_VEC_ZERO();
    int i = 0;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < EXP_NV; j++) {
            const F32_VEC a = ik_vec_exp(F32_VEC_SUB(F32_VEC_LOAD(x + i + F32_EPR * j), vm));
            F32_VEC_STORE(x + i + F32_EPR * j, a);
            acc[j] = F32_VEC_ADD(acc[j], a);
        }
    float lane[16];
    for (int j = 0; j < EXP_NV; j++)
        F32_VEC_STORE(lane + F32_EPR * j, acc[j]);
    for (; i < n; i++) {
        x[i] = ik_exp_1(x[i] - m);
        lane[i & 15] += x[i];
    }
    return ik_sum16(lane);
}

/* g = silu(g) * u (infer_silu_mul) */
static void silu_mul_vec(float *g, const float *u, size_t n) {
    size_t i = 0;
    for (; i + F32_EPR <= n; i += F32_EPR) {
        const F32_VEC v = F32_VEC_LOAD(g + i);
        const F32_VEC e = ik_vec_exp(F32_VEC_SUB(F32_VEC_ZERO(), v));
        const F32_VEC s = F32_VEC_DIV(v, F32_VEC_ADD(F32_VEC_SET1(1.0f), e));
        F32_VEC_STORE(g + i, F32_VEC_MUL(s, F32_VEC_LOAD(u + i)));
    }
    for (; i < n; i++)
        g[i] = g[i] / (1.0f + ik_exp_1(-g[i])) * u[i];
}

/* ---- prefill attention: the online softmax of one tile, rows in lanes --------------------- */
/* Each row (lane) r: its max over its first n[r] scores as four running maxima over t mod 4,
 * then (m0 max m1) max (m2 max m3), with vmaxps's rule (a > b ? a : b); p = exp(s - m) for those
 * keys; their sum as four partial sums over t mod 4, each in order of t, then (s0 + s1) +
 * (s2 + s3). A key past n[r] adds +0 to a partial sum (a sum of positive numbers: no change).
 * ik_attn_softmax_scalar (infer_exp.c) is the same per lane.
 *
 * Four chains in registers, and no masks on rows that see every key of the tile: with one
 * running max and the partial sum picked by t & 3 the sums lived on the stack. That gained only
 * 1-3% (bench_attn 16384 keys, avx512 f32, three A/B pairs: 89.9 / 91.6 / 95.6 -> 90.0 / 92.8 /
 * 98.8 GFLOP/s); the softmax is still 8% of a 16384-token prefill (perf), mostly waiting on
 * loads of the 32 KiB score tile. */

/* one key for F32_EPR lanes: the running max, or exp and the partial sum; `full`: every lane
 * sees every key (no mask), a constant wherever these are inlined */
IK_VEC_AI F32_VEC max_step(const float *p, I32_VEC nv, int t, int full, F32_VEC pm) {
    const F32_VEC x = F32_VEC_LOAD(p);
    if (full)
        return F32_VEC_MAX(x, pm);
    return F32_VEC_MAX_MASK(pm, x, F32_MASK_GT_I32(nv, I32_VEC_SET1(t)));
}

IK_VEC_AI F32_VEC exp_step(float *p, I32_VEC nv, int t, int full, F32_VEC m, F32_VEC part) {
    F32_VEC e = ik_vec_exp(F32_VEC_SUB(F32_VEC_LOAD(p), m));
    if (!full)
        e = F32_VEC_ZERO_MASK(e, F32_MASK_GT_I32(nv, I32_VEC_SET1(t)));
    F32_VEC_STORE(p, e);
    return F32_VEC_ADD(part, e);
}

/* F32_EPR lanes of one tile: returns the new max, the probabilities in s, the sum in *sum */
IK_VEC_AI F32_VEC softmax_lanes(float *s, size_t ld, int n_keys, I32_VEC nv, F32_VEC m_old,
                                F32_VEC *sum, int full) {
    const F32_VEC ninf = F32_VEC_SET1(-INFINITY);
    F32_VEC p0 = ninf, p1 = ninf, p2 = ninf, p3 = ninf;
    int t = 0;
    for (; t + 4 <= n_keys; t += 4) {
        p0 = max_step(s + (size_t)t * ld, nv, t, full, p0);
        p1 = max_step(s + (size_t)(t + 1) * ld, nv, t + 1, full, p1);
        p2 = max_step(s + (size_t)(t + 2) * ld, nv, t + 2, full, p2);
        p3 = max_step(s + (size_t)(t + 3) * ld, nv, t + 3, full, p3);
    }
    if (t < n_keys)
        p0 = max_step(s + (size_t)t * ld, nv, t, full, p0);
    if (t + 1 < n_keys)
        p1 = max_step(s + (size_t)(t + 1) * ld, nv, t + 1, full, p1);
    if (t + 2 < n_keys)
        p2 = max_step(s + (size_t)(t + 2) * ld, nv, t + 2, full, p2);
    const F32_VEC mx = F32_VEC_MAX(F32_VEC_MAX(p0, p1), F32_VEC_MAX(p2, p3));
    const F32_VEC m = F32_VEC_MAX(mx, m_old);
    F32_VEC s0 = F32_VEC_ZERO(), s1 = s0, s2 = s0, s3 = s0;
    for (t = 0; t + 4 <= n_keys; t += 4) {
        s0 = exp_step(s + (size_t)t * ld, nv, t, full, m, s0);
        s1 = exp_step(s + (size_t)(t + 1) * ld, nv, t + 1, full, m, s1);
        s2 = exp_step(s + (size_t)(t + 2) * ld, nv, t + 2, full, m, s2);
        s3 = exp_step(s + (size_t)(t + 3) * ld, nv, t + 3, full, m, s3);
    }
    if (t < n_keys)
        s0 = exp_step(s + (size_t)t * ld, nv, t, full, m, s0);
    if (t + 1 < n_keys)
        s1 = exp_step(s + (size_t)(t + 1) * ld, nv, t + 1, full, m, s1);
    if (t + 2 < n_keys)
        s2 = exp_step(s + (size_t)(t + 2) * ld, nv, t + 2, full, m, s2);
    *sum = F32_VEC_ADD(F32_VEC_ADD(s0, s1), F32_VEC_ADD(s2, s3));
    return m;
}

/* infer_attn_softmax; n_rows lanes rounded up to F32_EPR are read and written (IK_LANES) */
static void attn_softmax_vec(float *st, size_t ld, int n_keys, const int *n, float *m, float *l,
                             float *c, int n_rows) {
    const F32_VEC ninf = F32_VEC_SET1(-INFINITY), one = F32_VEC_SET1(1.0f);
    for (int r = 0; r < n_rows; r += F32_EPR) {
        const I32_VEC nv = I32_VEC_LOAD(n + r);
        const F32_VEC m_old = F32_VEC_LOAD(m + r);
        const int full = F32_MASK_NONE(F32_MASK_GT_I32(I32_VEC_SET1(n_keys), nv));
        F32_VEC sum, m_new;
        if (full)
            m_new = softmax_lanes(st + r, ld, n_keys, nv, m_old, &sum, 1);
        else
            m_new = softmax_lanes(st + r, ld, n_keys, nv, m_old, &sum, 0);
        const F32_MASK need = F32_MASK_AND(F32_MASK_NEQ(m_new, m_old), F32_MASK_NEQ(m_old, ninf));
        const F32_VEC f = F32_VEC_BLEND(one, ik_vec_exp(F32_VEC_SUB(m_old, m_new)), need);
        const F32_VEC kept = F32_VEC_MUL(F32_VEC_LOAD(l + r), f);
        F32_VEC_STORE(l + r, F32_VEC_ADD(kept, sum));
        F32_VEC_STORE(m + r, m_new);
        F32_VEC_STORE(c + r, f);
    }
}

#endif
