/* infer_exp.c - the exponentials of the forward pass: softmax numerators (with their sum and
 * the row max) and SiLU, vectorised with AVX2 / AVX-512 by the ISA that infer_kernels picked.
 *
 * Why hand-written: perf of an 8192-token prefill (hidden 256, 4 layers) put 43% of the time in
 * the scalar softmax loop and libm's expf (attn_segment 32%, __expf_fma 11%); BENCHMARKS.md has
 * the before/after.
 *
 * Every ISA computes the same bits: exp is one fixed sequence of fused multiply-adds (Cephes'
 * expf polynomial, about 1 ulp), and sums run over 16 lanes (element i into lane i mod 16, the
 * lanes added in a fixed tree), which the scalar code and AVX2 (two 8-lane halves) mirror. */
#include "infer_internal.h"
#include "infer_kernels.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

#define EXP_LO (-87.0f) /* inputs are clamped: 2^n stays normal */
#define EXP_HI 88.0f
#define LOG2E  1.44269504088896341f
#define LN2_HI 0.693359375f
#define LN2_LO (-2.12194440e-4f)
#define P0     1.9875691500e-4f
#define P1     1.3981999507e-3f
#define P2     8.3334519073e-3f
#define P3     4.1665795894e-2f
#define P4     1.6666665459e-1f
#define P5     5.0000001201e-1f

static float exp_scalar(float x) {
    x = x < EXP_LO ? EXP_LO : x > EXP_HI ? EXP_HI : x;
    float n = nearbyintf(x * LOG2E);
    float r = fmaf(n, -LN2_HI, x);
    r = fmaf(n, -LN2_LO, r);
    float p = fmaf(P0, r, P1);
    p = fmaf(p, r, P2);
    p = fmaf(p, r, P3);
    p = fmaf(p, r, P4);
    p = fmaf(p, r, P5);
    float y = fmaf(p, r * r, r) + 1.0f;
    return ldexpf(y, (int)n);
}

/* the fixed reduction of 16 lane sums */
static float lanes16(const float *l) {
    float a[8], b[4];
    for (int i = 0; i < 8; i++)
        a[i] = l[i] + l[i + 8];
    for (int i = 0; i < 4; i++)
        b[i] = a[i] + a[i + 4];
    return (b[0] + b[2]) + (b[1] + b[3]);
}

static float exp_sum_scalar(float *x, int n, float m) {
    float lane[16] = {0};
    for (int i = 0; i < n; i++) {
        x[i] = exp_scalar(x[i] - m);
        lane[i & 15] += x[i];
    }
    return lanes16(lane);
}

static void silu_mul_scalar(float *g, const float *u, size_t n) {
    for (size_t i = 0; i < n; i++)
        g[i] = g[i] / (1.0f + exp_scalar(-g[i])) * u[i];
}

/* ---- AVX2 + FMA --------------------------------------------------------------------------- */

#define T_AVX2 __attribute__((target("avx2,fma")))

T_AVX2 static __m256 exp8(__m256 x) {
    x = _mm256_max_ps(_mm256_min_ps(x, _mm256_set1_ps(EXP_HI)), _mm256_set1_ps(EXP_LO));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(LOG2E)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fmadd_ps(n, _mm256_set1_ps(-LN2_HI), x);
    r = _mm256_fmadd_ps(n, _mm256_set1_ps(-LN2_LO), r);
    __m256 p = _mm256_fmadd_ps(_mm256_set1_ps(P0), r, _mm256_set1_ps(P1));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(P2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(P3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(P4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(P5));
    __m256 y = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), _mm256_set1_ps(1.0f));
    /* 2^n: n in [-126, 127] after the clamp, so the exponent field is n + 127 */
    __m256i e =
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}

T_AVX2 static float exp_sum_avx2(float *x, int n, float m) {
    const __m256 vm = _mm256_set1_ps(m);
    __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 a = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm));
        __m256 b = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i + 8), vm));
        _mm256_storeu_ps(x + i, a);
        _mm256_storeu_ps(x + i + 8, b);
        lo = _mm256_add_ps(lo, a);
        hi = _mm256_add_ps(hi, b);
    }
    float lane[16];
    _mm256_storeu_ps(lane, lo);
    _mm256_storeu_ps(lane + 8, hi);
    for (; i < n; i++) {
        x[i] = exp_scalar(x[i] - m);
        lane[i & 15] += x[i];
    }
    return lanes16(lane);
}

T_AVX2 static void silu_mul_avx2(float *g, const float *u, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(g + i);
        __m256 e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), v));
        __m256 s = _mm256_div_ps(v, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
        _mm256_storeu_ps(g + i, _mm256_mul_ps(s, _mm256_loadu_ps(u + i)));
    }
    silu_mul_scalar(g + i, u + i, n - i);
}

/* ---- AVX-512 ------------------------------------------------------------------------------ */

#define T_AVX512 __attribute__((target("avx512f")))

T_AVX512 static __m512 exp16(__m512 x) {
    x = _mm512_max_ps(_mm512_min_ps(x, _mm512_set1_ps(EXP_HI)), _mm512_set1_ps(EXP_LO));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(LOG2E)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fmadd_ps(n, _mm512_set1_ps(-LN2_HI), x);
    r = _mm512_fmadd_ps(n, _mm512_set1_ps(-LN2_LO), r);
    __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(P0), r, _mm512_set1_ps(P1));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(P2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(P3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(P4));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(P5));
    __m512 y = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(y, n);
}

T_AVX512 static float exp_sum_avx512(float *x, int n, float m) {
    const __m512 vm = _mm512_set1_ps(m);
    __m512 acc = _mm512_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 a = exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i), vm));
        _mm512_storeu_ps(x + i, a);
        acc = _mm512_add_ps(acc, a);
    }
    float lane[16];
    _mm512_storeu_ps(lane, acc);
    for (; i < n; i++) {
        x[i] = exp_scalar(x[i] - m);
        lane[i & 15] += x[i];
    }
    return lanes16(lane);
}

T_AVX512 static float max_avx512(const float *x, int n) {
    __m512 m = _mm512_set1_ps(-INFINITY);
    int i = 0;
    for (; i + 16 <= n; i += 16)
        m = _mm512_max_ps(m, _mm512_loadu_ps(x + i));
    float r = _mm512_reduce_max_ps(m);
    for (; i < n; i++)
        r = x[i] > r ? x[i] : r;
    return r;
}

T_AVX512 static void silu_mul_avx512(float *g, const float *u, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 v = _mm512_loadu_ps(g + i);
        __m512 e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), v));
        __m512 s = _mm512_div_ps(v, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
        _mm512_storeu_ps(g + i, _mm512_mul_ps(s, _mm512_loadu_ps(u + i)));
    }
    silu_mul_scalar(g + i, u + i, n - i);
}

/* ---- decode attention: scores and weighted sums over a tile of keys ------------------------ */
/* One call per tile instead of one ik_dot / ik_axpy per key: decode of the 246M bench model at
 * 512-800 positions spent 17% of its time in the per-key calls (perf), now ~2%. */

static void scores_scalar(float *s, const float *q, const float *k, size_t ldk, int n, int hd) {
    for (int t = 0; t < n; t++) {
        const float *kt = k + (size_t)t * ldk;
        float v = 0;
        for (int d = 0; d < hd; d++)
            v = fmaf(q[d], kt[d], v);
        s[t] = v;
    }
}

static void wsum_scalar(float *acc, const float *p, const float *v, size_t ldv, int n, int hd) {
    for (int t = 0; t < n; t++)
        for (int d = 0; d < hd; d++)
            acc[d] = fmaf(p[t], v[(size_t)t * ldv + (size_t)d], acc[d]);
}

T_AVX512 static void scores_avx512(float *s, const float *q, const float *k, size_t ldk, int n,
                                   int hd) {
    for (int t = 0; t < n; t++) {
        const float *kt = k + (size_t)t * ldk;
        __m512 a = _mm512_setzero_ps();
        int d = 0;
        for (; d + 16 <= hd; d += 16)
            a = _mm512_fmadd_ps(_mm512_loadu_ps(q + d), _mm512_loadu_ps(kt + d), a);
        if (d < hd) {
            __mmask16 m = (__mmask16)((1u << (hd - d)) - 1);
            a = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, q + d), _mm512_maskz_loadu_ps(m, kt + d),
                                a);
        }
        s[t] = _mm512_reduce_add_ps(a);
    }
}

T_AVX512 static void wsum_avx512(float *acc, const float *p, const float *v, size_t ldv, int n,
                                 int hd) {
    int d = 0;
    for (; d + 64 <= hd; d += 64) { /* four vectors of the accumulator stay in registers */
        __m512 a0 = _mm512_loadu_ps(acc + d), a1 = _mm512_loadu_ps(acc + d + 16);
        __m512 a2 = _mm512_loadu_ps(acc + d + 32), a3 = _mm512_loadu_ps(acc + d + 48);
        for (int t = 0; t < n; t++) {
            const float *vt = v + (size_t)t * ldv + d;
            const __m512 pt = _mm512_set1_ps(p[t]);
            a0 = _mm512_fmadd_ps(pt, _mm512_loadu_ps(vt), a0);
            a1 = _mm512_fmadd_ps(pt, _mm512_loadu_ps(vt + 16), a1);
            a2 = _mm512_fmadd_ps(pt, _mm512_loadu_ps(vt + 32), a2);
            a3 = _mm512_fmadd_ps(pt, _mm512_loadu_ps(vt + 48), a3);
        }
        _mm512_storeu_ps(acc + d, a0);
        _mm512_storeu_ps(acc + d + 16, a1);
        _mm512_storeu_ps(acc + d + 32, a2);
        _mm512_storeu_ps(acc + d + 48, a3);
    }
    for (; d < hd; d += 16) {
        __mmask16 m = hd - d >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (hd - d)) - 1);
        __m512 a = _mm512_maskz_loadu_ps(m, acc + d);
        for (int t = 0; t < n; t++)
            a = _mm512_fmadd_ps(_mm512_set1_ps(p[t]),
                                _mm512_maskz_loadu_ps(m, v + (size_t)t * ldv + d), a);
        _mm512_mask_storeu_ps(acc + d, m, a);
    }
}

void infer_attn_scores(float *s, const float *q, const float *k, size_t ldk, int n, int hd) {
    int isa = ik_isa_current();
    if (isa == IK_AVX512 || isa == IK_AVX512BF16)
        scores_avx512(s, q, k, ldk, n, hd);
    else
        scores_scalar(s, q, k, ldk, n, hd);
}

void infer_attn_wsum(float *acc, const float *p, const float *v, size_t ldv, int n, int hd) {
    int isa = ik_isa_current();
    if (isa == IK_AVX512 || isa == IK_AVX512BF16)
        wsum_avx512(acc, p, v, ldv, n, hd);
    else
        wsum_scalar(acc, p, v, ldv, n, hd);
}

/* ---- prefill attention: the online softmax of one tile, rows in lanes --------------------- */
/* Each row (lane) r: its max over its first n[r] scores as four running maxima over t mod 4,
 * then (m0 max m1) max (m2 max m3), with vmaxps's rule (a > b ? a : b); p = exp(s - m) for those
 * keys; their sum as four partial sums over t mod 4, each in order of t, then (s0 + s1) +
 * (s2 + s3). A key past n[r] adds +0 to a partial sum in the vector code (a sum of positive
 * numbers: no change). exp is the same on every ISA: the same bits everywhere.
 *
 * Four chains in registers, and no masks on rows that see every key of the tile: with one
 * running max and the partial sum picked by t & 3 the sums lived on the stack. That gained only
 * 1-3% (bench_attn 16384 keys, avx512 f32, three A/B pairs: 89.9 / 91.6 / 95.6 -> 90.0 / 92.8 /
 * 98.8 GFLOP/s); the softmax is still 8% of a 16384-token prefill (perf), mostly waiting on
 * loads of the 32 KiB score tile. */

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
        const float e = exp_scalar(st[(size_t)t * ld] - m_new);
        st[(size_t)t * ld] = e;
        part[t & 3] += e;
    }
    const float sum = (part[0] + part[1]) + (part[2] + part[3]);
    const float f = m_new != m_old && m_old != -INFINITY ? exp_scalar(m_old - m_new) : 1.0f;
    const float kept = *l * f;
    *l = kept + sum;
    *m = m_new;
    *c = f;
}

static void softmax_scalar(float *st, size_t ld, int n_keys, const int *n, float *m, float *l,
                           float *c, int n_rows) {
    (void)n_keys;
    for (int r = 0; r < n_rows; r++)
        softmax_lane(st + r, ld, n[r], m + r, l + r, c + r);
}

#define AI_AVX2 T_AVX2 static inline __attribute__((always_inline))

/* one key for 8 lanes: the running max, or exp and the partial sum; `full`: every lane sees
 * every key (no mask), a constant wherever these are inlined */
AI_AVX2 __m256 max_step8(const float *p, __m256i nv, int t, int full, __m256 pm) {
    const __m256 x = _mm256_loadu_ps(p), mx = _mm256_max_ps(x, pm);
    if (full)
        return mx;
    return _mm256_blendv_ps(pm, mx,
                            _mm256_castsi256_ps(_mm256_cmpgt_epi32(nv, _mm256_set1_epi32(t))));
}

AI_AVX2 __m256 exp_step8(float *p, __m256i nv, int t, int full, __m256 m, __m256 part) {
    __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(p), m));
    if (!full)
        e = _mm256_and_ps(e, _mm256_castsi256_ps(_mm256_cmpgt_epi32(nv, _mm256_set1_epi32(t))));
    _mm256_storeu_ps(p, e);
    return _mm256_add_ps(part, e);
}

/* 8 lanes of one tile: returns the new max, the probabilities in s, the sum in *sum */
AI_AVX2 __m256 softmax8(float *s, size_t ld, int n_keys, __m256i nv, __m256 m_old, __m256 *sum,
                        int full) {
    const __m256 ninf = _mm256_set1_ps(-INFINITY);
    __m256 p0 = ninf, p1 = ninf, p2 = ninf, p3 = ninf;
    int t = 0;
    for (; t + 4 <= n_keys; t += 4) {
        p0 = max_step8(s + (size_t)t * ld, nv, t, full, p0);
        p1 = max_step8(s + (size_t)(t + 1) * ld, nv, t + 1, full, p1);
        p2 = max_step8(s + (size_t)(t + 2) * ld, nv, t + 2, full, p2);
        p3 = max_step8(s + (size_t)(t + 3) * ld, nv, t + 3, full, p3);
    }
    if (t < n_keys)
        p0 = max_step8(s + (size_t)t * ld, nv, t, full, p0);
    if (t + 1 < n_keys)
        p1 = max_step8(s + (size_t)(t + 1) * ld, nv, t + 1, full, p1);
    if (t + 2 < n_keys)
        p2 = max_step8(s + (size_t)(t + 2) * ld, nv, t + 2, full, p2);
    const __m256 mx = _mm256_max_ps(_mm256_max_ps(p0, p1), _mm256_max_ps(p2, p3));
    const __m256 m = _mm256_max_ps(mx, m_old);
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    for (t = 0; t + 4 <= n_keys; t += 4) {
        s0 = exp_step8(s + (size_t)t * ld, nv, t, full, m, s0);
        s1 = exp_step8(s + (size_t)(t + 1) * ld, nv, t + 1, full, m, s1);
        s2 = exp_step8(s + (size_t)(t + 2) * ld, nv, t + 2, full, m, s2);
        s3 = exp_step8(s + (size_t)(t + 3) * ld, nv, t + 3, full, m, s3);
    }
    if (t < n_keys)
        s0 = exp_step8(s + (size_t)t * ld, nv, t, full, m, s0);
    if (t + 1 < n_keys)
        s1 = exp_step8(s + (size_t)(t + 1) * ld, nv, t + 1, full, m, s1);
    if (t + 2 < n_keys)
        s2 = exp_step8(s + (size_t)(t + 2) * ld, nv, t + 2, full, m, s2);
    *sum = _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3));
    return m;
}

T_AVX2 static void softmax_avx2(float *st, size_t ld, int n_keys, const int *n, float *m, float *l,
                                float *c, int n_rows) {
    const __m256 ninf = _mm256_set1_ps(-INFINITY), one = _mm256_set1_ps(1.0f);
    for (int r = 0; r < n_rows; r += 8) {
        const __m256i nv = _mm256_loadu_si256((const __m256i *)(n + r));
        const __m256 m_old = _mm256_loadu_ps(m + r);
        const int full = !_mm256_movemask_ps(
            _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(n_keys), nv)));
        __m256 sum, m_new;
        if (full)
            m_new = softmax8(st + r, ld, n_keys, nv, m_old, &sum, 1);
        else
            m_new = softmax8(st + r, ld, n_keys, nv, m_old, &sum, 0);
        const __m256 need = _mm256_and_ps(_mm256_cmp_ps(m_new, m_old, _CMP_NEQ_UQ),
                                          _mm256_cmp_ps(m_old, ninf, _CMP_NEQ_UQ));
        const __m256 f = _mm256_blendv_ps(one, exp8(_mm256_sub_ps(m_old, m_new)), need);
        const __m256 kept = _mm256_mul_ps(_mm256_loadu_ps(l + r), f);
        _mm256_storeu_ps(l + r, _mm256_add_ps(kept, sum));
        _mm256_storeu_ps(m + r, m_new);
        _mm256_storeu_ps(c + r, f);
    }
}

#define AI_AVX512 T_AVX512 static inline __attribute__((always_inline))

AI_AVX512 __m512 max_step16(const float *p, __m512i nv, int t, int full, __m512 pm) {
    const __m512 x = _mm512_loadu_ps(p);
    if (full)
        return _mm512_max_ps(x, pm);
    return _mm512_mask_max_ps(pm, _mm512_cmpgt_epi32_mask(nv, _mm512_set1_epi32(t)), x, pm);
}

AI_AVX512 __m512 exp_step16(float *p, __m512i nv, int t, int full, __m512 m, __m512 part) {
    __m512 e = exp16(_mm512_sub_ps(_mm512_loadu_ps(p), m));
    if (!full)
        e = _mm512_maskz_mov_ps(_mm512_cmpgt_epi32_mask(nv, _mm512_set1_epi32(t)), e);
    _mm512_storeu_ps(p, e);
    return _mm512_add_ps(part, e);
}

AI_AVX512 __m512 softmax16(float *s, size_t ld, int n_keys, __m512i nv, __m512 m_old, __m512 *sum,
                           int full) {
    const __m512 ninf = _mm512_set1_ps(-INFINITY);
    __m512 p0 = ninf, p1 = ninf, p2 = ninf, p3 = ninf;
    int t = 0;
    for (; t + 4 <= n_keys; t += 4) {
        p0 = max_step16(s + (size_t)t * ld, nv, t, full, p0);
        p1 = max_step16(s + (size_t)(t + 1) * ld, nv, t + 1, full, p1);
        p2 = max_step16(s + (size_t)(t + 2) * ld, nv, t + 2, full, p2);
        p3 = max_step16(s + (size_t)(t + 3) * ld, nv, t + 3, full, p3);
    }
    if (t < n_keys)
        p0 = max_step16(s + (size_t)t * ld, nv, t, full, p0);
    if (t + 1 < n_keys)
        p1 = max_step16(s + (size_t)(t + 1) * ld, nv, t + 1, full, p1);
    if (t + 2 < n_keys)
        p2 = max_step16(s + (size_t)(t + 2) * ld, nv, t + 2, full, p2);
    const __m512 mx = _mm512_max_ps(_mm512_max_ps(p0, p1), _mm512_max_ps(p2, p3));
    const __m512 m = _mm512_max_ps(mx, m_old);
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    for (t = 0; t + 4 <= n_keys; t += 4) {
        s0 = exp_step16(s + (size_t)t * ld, nv, t, full, m, s0);
        s1 = exp_step16(s + (size_t)(t + 1) * ld, nv, t + 1, full, m, s1);
        s2 = exp_step16(s + (size_t)(t + 2) * ld, nv, t + 2, full, m, s2);
        s3 = exp_step16(s + (size_t)(t + 3) * ld, nv, t + 3, full, m, s3);
    }
    if (t < n_keys)
        s0 = exp_step16(s + (size_t)t * ld, nv, t, full, m, s0);
    if (t + 1 < n_keys)
        s1 = exp_step16(s + (size_t)(t + 1) * ld, nv, t + 1, full, m, s1);
    if (t + 2 < n_keys)
        s2 = exp_step16(s + (size_t)(t + 2) * ld, nv, t + 2, full, m, s2);
    *sum = _mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3));
    return m;
}

T_AVX512 static void softmax_avx512(float *st, size_t ld, int n_keys, const int *n, float *m,
                                    float *l, float *c, int n_rows) {
    const __m512 ninf = _mm512_set1_ps(-INFINITY), one = _mm512_set1_ps(1.0f);
    for (int r = 0; r < n_rows; r += 16) {
        const __m512i nv = _mm512_loadu_si512(n + r);
        const __m512 m_old = _mm512_loadu_ps(m + r);
        const int full = _mm512_cmplt_epi32_mask(nv, _mm512_set1_epi32(n_keys)) == 0;
        __m512 sum, m_new;
        if (full)
            m_new = softmax16(st + r, ld, n_keys, nv, m_old, &sum, 1);
        else
            m_new = softmax16(st + r, ld, n_keys, nv, m_old, &sum, 0);
        const __mmask16 need = _mm512_cmp_ps_mask(m_new, m_old, _CMP_NEQ_UQ) &
                               _mm512_cmp_ps_mask(m_old, ninf, _CMP_NEQ_UQ);
        const __m512 f = _mm512_mask_blend_ps(need, one, exp16(_mm512_sub_ps(m_old, m_new)));
        const __m512 kept = _mm512_mul_ps(_mm512_loadu_ps(l + r), f);
        _mm512_storeu_ps(l + r, _mm512_add_ps(kept, sum));
        _mm512_storeu_ps(m + r, m_new);
        _mm512_storeu_ps(c + r, f);
    }
}

/* ---- dispatch ----------------------------------------------------------------------------- */

void infer_attn_softmax(float *st, size_t ld, int n_keys, const int *n, float *m, float *l,
                        float *c, int n_rows) {
    switch (ik_isa_current()) {
    case IK_AVX512:
    case IK_AVX512BF16:
        softmax_avx512(st, ld, n_keys, n, m, l, c, n_rows);
        break;
    case IK_AVX2:
        softmax_avx2(st, ld, n_keys, n, m, l, c, n_rows);
        break;
    default:
        softmax_scalar(st, ld, n_keys, n, m, l, c, n_rows);
    }
}

float infer_exp_sum(float *x, int n, float m) {
    switch (ik_isa_current()) {
    case IK_AVX512:
    case IK_AVX512BF16:
        return exp_sum_avx512(x, n, m);
    case IK_AVX2:
        return exp_sum_avx2(x, n, m);
    default:
        return exp_sum_scalar(x, n, m);
    }
}

float infer_max(const float *x, int n) {
    int isa = ik_isa_current();
    if (isa == IK_AVX512 || isa == IK_AVX512BF16)
        return max_avx512(x, n);
    float r = -INFINITY;
    for (int i = 0; i < n; i++)
        r = x[i] > r ? x[i] : r;
    return r;
}

void infer_silu_mul(float *g, const float *u, size_t n) {
    switch (ik_isa_current()) {
    case IK_AVX512:
    case IK_AVX512BF16:
        silu_mul_avx512(g, u, n);
        break;
    case IK_AVX2:
        silu_mul_avx2(g, u, n);
        break;
    default:
        silu_mul_scalar(g, u, n);
    }
}

float infer_exp(float x) {
    return exp_scalar(x);
}
