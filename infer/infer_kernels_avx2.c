/* infer_kernels_avx2.c - the AVX2 + FMA + F16C kernel set. Compiled with -mavx2 -mfma -mf16c
 * (infer/CMakeLists.txt); reached only through ik_ops_avx2 once ik_init() has checked the CPU.
 *
 * The kernels written once over the vector width come from infer_kernels_body.h and
 * infer_kernels_exp_body.h at 8 lanes; this file keeps what is AVX2's own: f32 -> bf16, dot,
 * the row max and decode attention (their comments say why), and the table. */
#include "infer_kernels.h"
#include "infer_kernels_internal.h"

#include "infer.h"

#include <immintrin.h>
#include <math.h>

#define IK_VEC_AVX2
#include "infer_kernels_body.h"     /* matvec_vec, *_to_f32_vec, axpy_vec, scale_vec */
#include "infer_kernels_exp_body.h" /* exp_sum_vec, silu_mul_vec, attn_softmax_vec */

/* ---- matvec and widening: infer_kernels_body.h ------------------------------------------ */

static void matvec_f32_avx2(float *y, const float *x, const void *w, size_t cols, size_t n_rows) {
    matvec_vec(y, x, w, cols, n_rows, INFER_DT_F32);
}

void ik_matvec_bf16_avx2(float *y, const float *x, const void *w, size_t cols, size_t n_rows) {
    matvec_vec(y, x, w, cols, n_rows, INFER_DT_BF16);
}

void ik_matvec_f16_avx2(float *y, const float *x, const void *w, size_t cols, size_t n_rows) {
    matvec_vec(y, x, w, cols, n_rows, INFER_DT_F16);
}

/* ---- f32 -> bf16 ------------------------------------------------------------------------- */
/* Per ISA: two 8-lane roundings packed into 16 bf16 here, one 16-lane rounding narrowed by
 * vpmovdw there (no AVX2 equivalent). */

/* ik_f32_to_bf16_1 on 8 lanes: integer round to nearest even, NaN truncated and made quiet. */
static inline __m256i round8_bf16(__m256 f) {
    const __m256i u = _mm256_castps_si256(f);
    const __m256i hi = _mm256_srli_epi32(u, 16);
    const __m256i lsb = _mm256_and_si256(hi, _mm256_set1_epi32(1));
    const __m256i r = _mm256_srli_epi32(
        _mm256_add_epi32(_mm256_add_epi32(u, _mm256_set1_epi32(0x7fff)), lsb), 16);
    const __m256i nan = _mm256_or_si256(hi, _mm256_set1_epi32(0x40));
    const __m256i is_nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff)),
                                              _mm256_set1_epi32(0x7f800000));
    return _mm256_blendv_epi8(r, nan, is_nan);
}

/* avx2 f32_to_bf16 (bench_kernels, 64 Ki elements in L2): 10.8 G elements/s (scalar 1.3). */
static void f32_to_bf16_avx2(uint16_t *dst, const float *src, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        /* every lane is <= 0xffff, so the signed-to-unsigned saturating pack is exact */
        __m256i p = _mm256_packus_epi32(round8_bf16(_mm256_loadu_ps(src + i)),
                                        round8_bf16(_mm256_loadu_ps(src + i + 8)));
        _mm256_storeu_si256((__m256i *)(dst + i), _mm256_permute4x64_epi64(p, 0xd8));
    }
    for (; i < n; i++)
        dst[i] = ik_f32_to_bf16_1(src[i]);
}

/* ---- dot ----------------------------------------------------------------------------------- */
/* Per ISA for its bits: the tail is added after the horizontal sum here, as a masked FMA into a
 * lane before it in the AVX-512 set. */

/* avx2 dot (bench_kernels, 2 x 2 Ki floats in L1): 27.7 G elements/s (scalar 5.0). */
static float dot_avx2(const float *a, const float *b, size_t n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
    }
    for (; i + 8 <= n; i += 8)
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    float s = ik_vec_reduce(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    for (; i < n; i++)
        s += a[i] * b[i];
    return s;
}

/* ---- the row max and decode attention ---------------------------------------------------- */
/* The scalar set's bits (infer_exp.c): attn_scores is one fmaf chain over d per key, so 8 keys
 * go in the 8 lanes (an 8 x 8 block of keys transposed in registers) and each lane runs its
 * key's chain in d order; attn_wsum is one fmaf chain over t per column d, so the columns go in
 * the lanes. Both compile to vfmadd here (-mfma), where the scalar set's fmaf is a libm call
 * per element: decode at 8K-32K keys ran 0.35 GFLOP/s in attention that way (perf:
 * __fmaf_fma3 27% of the run; BENCHMARKS.md, "AVX2 decode attention"). */

static float max_avx2(const float *x, int n) {
    __m256 m = _mm256_set1_ps(-INFINITY);
    int i = 0;
    for (; i + 8 <= n; i += 8)
        m = _mm256_max_ps(_mm256_loadu_ps(x + i), m);
    float lane[8], r = -INFINITY;
    _mm256_storeu_ps(lane, m);
    for (int j = 0; j < 8; j++)
        r = lane[j] > r ? lane[j] : r;
    for (; i < n; i++)
        r = x[i] > r ? x[i] : r;
    return r;
}

/* rows r0..r7 (8 floats each) transposed: out[j] holds element j of every row */
static inline void transpose8(__m256 r[8]) {
    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    r[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
    r[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
    r[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
    r[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
    r[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
    r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
    r[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
    r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

static void attn_scores_avx2(float *s, const float *q, const float *k, size_t ldk, int n, int hd) {
    int t = 0;
    for (; t + 8 <= n; t += 8) {
        const float *kt = k + (size_t)t * ldk;
        __m256 a = _mm256_setzero_ps();
        int d = 0;
        for (; d + 8 <= hd; d += 8) {
            __m256 r[8];
            for (int j = 0; j < 8; j++)
                r[j] = _mm256_loadu_ps(kt + (size_t)j * ldk + (size_t)d);
            transpose8(r); /* r[j]: dimension d + j of the 8 keys */
            for (int j = 0; j < 8; j++)
                a = _mm256_fmadd_ps(_mm256_set1_ps(q[d + j]), r[j], a);
        }
        for (; d < hd; d++) { /* the chain's last steps, the same order */
            const __m256 kd = _mm256_set_ps(kt[7 * ldk + (size_t)d], kt[6 * ldk + (size_t)d],
                                            kt[5 * ldk + (size_t)d], kt[4 * ldk + (size_t)d],
                                            kt[3 * ldk + (size_t)d], kt[2 * ldk + (size_t)d],
                                            kt[ldk + (size_t)d], kt[d]);
            a = _mm256_fmadd_ps(_mm256_set1_ps(q[d]), kd, a);
        }
        _mm256_storeu_ps(s + t, a);
    }
    for (; t < n; t++) {
        const float *kt = k + (size_t)t * ldk;
        float v = 0;
        for (int d = 0; d < hd; d++)
            v = fmaf(q[d], kt[d], v); /* vfmadd: -mfma */
        s[t] = v;
    }
}

static void attn_wsum_avx2(float *acc, const float *p, const float *v, size_t ldv, int n, int hd) {
    int d = 0;
    for (; d + 32 <= hd; d += 32) { /* four vectors of the accumulator stay in registers */
        __m256 a0 = _mm256_loadu_ps(acc + d), a1 = _mm256_loadu_ps(acc + d + 8);
        __m256 a2 = _mm256_loadu_ps(acc + d + 16), a3 = _mm256_loadu_ps(acc + d + 24);
        for (int t = 0; t < n; t++) {
            const float *vt = v + (size_t)t * ldv + d;
            const __m256 pt = _mm256_set1_ps(p[t]);
            a0 = _mm256_fmadd_ps(pt, _mm256_loadu_ps(vt), a0);
            a1 = _mm256_fmadd_ps(pt, _mm256_loadu_ps(vt + 8), a1);
            a2 = _mm256_fmadd_ps(pt, _mm256_loadu_ps(vt + 16), a2);
            a3 = _mm256_fmadd_ps(pt, _mm256_loadu_ps(vt + 24), a3);
        }
        _mm256_storeu_ps(acc + d, a0);
        _mm256_storeu_ps(acc + d + 8, a1);
        _mm256_storeu_ps(acc + d + 16, a2);
        _mm256_storeu_ps(acc + d + 24, a3);
    }
    for (; d + 8 <= hd; d += 8) {
        __m256 a = _mm256_loadu_ps(acc + d);
        for (int t = 0; t < n; t++)
            a = _mm256_fmadd_ps(_mm256_set1_ps(p[t]), _mm256_loadu_ps(v + (size_t)t * ldv + d), a);
        _mm256_storeu_ps(acc + d, a);
    }
    for (; d < hd; d++)
        for (int t = 0; t < n; t++)
            acc[d] = fmaf(p[t], v[(size_t)t * ldv + (size_t)d], acc[d]);
}

const ik_ops ik_ops_avx2 = {
    .isa = IK_AVX2,
    .matvec = {matvec_f32_avx2, ik_matvec_bf16_avx2, ik_matvec_f16_avx2},
    .gemm = ik_gemm_avx2, /* infer_gemm_avx2.c */
    .bf16_to_f32 = bf16_to_f32_vec,
    .f16_to_f32 = f16_to_f32_vec,
    .f32_to_bf16 = f32_to_bf16_avx2,
    .dot = dot_avx2,
    .axpy = axpy_vec,
    .scale = scale_vec,
    .attn_qk = ik_attn_qk_avx2,
    .attn_pv = ik_attn_pv_avx2,
    .exp_sum = exp_sum_vec,
    .max = max_avx2,
    .silu_mul = silu_mul_vec,
    .attn_scores = attn_scores_avx2,
    .attn_wsum = attn_wsum_avx2,
    .attn_softmax = attn_softmax_vec,
};
