/* infer_kernels_avx512.c - the AVX-512 F/BW/VL kernel set, and the AVX512_BF16 variant that
 * differs only in f32 -> bf16. Compiled with -mavx512f -mavx512bw -mavx512vl -mfma -mf16c
 * (infer/CMakeLists.txt); the one AVX512_BF16 function carries its own target attribute.
 * Reached only through ik_ops_avx512 / ik_ops_avx512bf16 once ik_init() has checked the CPU.
 *
 * The kernels written once over the vector width come from infer_kernels_body.h and
 * infer_kernels_exp_body.h at 16 lanes; this file keeps what is AVX-512's own: f32 -> bf16,
 * dot, the row max and decode attention, and the tables. Tails use masked loads and stores (a
 * masked-off lane is never touched, so no read past the end). */
#include "infer_kernels.h"
#include "infer_kernels_internal.h"

#include "infer.h"

#include <assert.h>
#include <immintrin.h>

#define IK_VEC_AVX512
#include "infer_kernels_body.h"     /* matvec_vec, *_to_f32_vec, axpy_vec, scale_vec */
#include "infer_kernels_exp_body.h" /* exp_sum_vec, silu_mul_vec, attn_softmax_vec */

/* ---- matvec: infer_kernels_body.h at 16 lanes --------------------------------------------- */

static void matvec_f32_avx512(float *y, const float *x, const void *w, size_t cols, size_t n_rows) {
    matvec_vec(y, x, w, cols, n_rows, INFER_DT_F32);
}

/* bf16 and f16 weights go through the avx2 kernel (ik_matvec_bf16_avx2, _f16_avx2): with the
 * 512-bit widening (vpmovzxwd / vcvtph2ps zmm) matvec_vec streamed 23-24 GB/s on one Zen 4 core,
 * the 256-bit one 25-27 (A/B of the two in one scratch binary, 8192x4096, best of 7, twice).
 * A CPU with full-width 512-bit units may prefer matvec_vec(..., INFER_DT_BF16) here: measure. */

/* ---- f32 -> bf16 (per ISA: infer_kernels_avx2.c says why) ------------------------------- */

/* ik_f32_to_bf16_1 on 16 lanes, widened: integer round to nearest even, NaN made quiet. */
static inline __m512i round16_bf16(__m512 f) {
    const __m512i u = _mm512_castps_si512(f);
    const __m512i hi = _mm512_srli_epi32(u, 16);
    const __m512i lsb = _mm512_and_si512(hi, _mm512_set1_epi32(1));
    const __m512i r = _mm512_srli_epi32(
        _mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7fff)), lsb), 16);
    const __mmask16 is_nan = _mm512_cmpgt_epu32_mask(
        _mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)), _mm512_set1_epi32(0x7f800000));
    return _mm512_mask_or_epi32(r, is_nan, hi, _mm512_set1_epi32(0x40));
}

/* avx512 f32_to_bf16 (bench_kernels, 64 Ki elements in L2): 11.2 G elements/s (avx2 10.8,
 * scalar 1.3). */
static void f32_to_bf16_avx512(uint16_t *dst, const float *src, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i *)(dst + i),
                            _mm512_cvtepi32_epi16(round16_bf16(_mm512_loadu_ps(src + i))));
    if (i < n) {
        const __mmask16 m = ik_vec_part_mask(n - i);
        _mm512_mask_cvtepi32_storeu_epi16(dst + i, m,
                                          round16_bf16(_mm512_maskz_loadu_ps(m, src + i)));
    }
}

/* vcvtneps2bf16 rounds and quiets NaNs exactly as ik_f32_to_bf16_1 (checked over all 2^32
 * inputs on Zen 4) but flushes f32 subnormals to ±0; those lanes, rare in practice, are
 * redone by the integer path so that every ISA gives the same bits.
 * avx512bf16 f32_to_bf16 (bench_kernels, 64 Ki elements in L2): 16.2-17.2 G elements/s (avx512
 * 11.2, scalar 1.3). */
static inline __m256i cvt16_bf16(__m512 f) __attribute__((target("avx512bf16")));
static inline __m256i cvt16_bf16(__m512 f) {
    const __m512i u = _mm512_castps_si512(f);
    __m256i h = (__m256i)_mm512_cvtneps_pbh(f);
    const __mmask16 sub = _mm512_testn_epi32_mask(u, _mm512_set1_epi32(0x7f800000)) &
                          _mm512_test_epi32_mask(u, _mm512_set1_epi32(0x007fffff));
    if (sub)
        h = _mm256_mask_mov_epi16(h, sub, _mm512_cvtepi32_epi16(round16_bf16(f)));
    return h;
}

static void f32_to_bf16_avx512bf16(uint16_t *dst, const float *src, size_t n)
    __attribute__((target("avx512bf16")));
static void f32_to_bf16_avx512bf16(uint16_t *dst, const float *src, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i *)(dst + i), cvt16_bf16(_mm512_loadu_ps(src + i)));
    if (i < n) {
        const __mmask16 m = ik_vec_part_mask(n - i);
        _mm256_mask_storeu_epi16(dst + i, m, cvt16_bf16(_mm512_maskz_loadu_ps(m, src + i)));
    }
}

/* ---- dot (per ISA: infer_kernels_avx2.c says why) ---------------------------------------- */

/* avx512 dot (bench_kernels, 2 x 2 Ki floats in L1): 26.4 G elements/s, no faster than avx2's
 * 27.7 on Zen 4 (split 512-bit ops); kept for CPUs with full-width units and for the masked
 * tail (scalar 5.0). */
static float dot_avx512(const float *a, const float *b, size_t n) {
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
        s2 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 32), _mm512_loadu_ps(b + i + 32), s2);
        s3 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 48), _mm512_loadu_ps(b + i + 48), s3);
    }
    for (; i + 16 <= n; i += 16)
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
    if (i < n) {
        const __mmask16 m = ik_vec_part_mask(n - i);
        s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), s1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

/* ---- the row max and decode attention (infer_exp.c's entry points) ----------------------- */
/* No avx2 versions: that set uses the scalar ones (infer_exp.c), so these are AVX-512 only.
 * scores and wsum: one call per tile instead of one ik_dot / ik_axpy per key: decode of the
 * 246M bench model at 512-800 positions spent 17% of its time in the per-key calls (perf), now
 * ~2%. */

static float max_avx512(const float *x, int n) {
    __m512 m = _mm512_set1_ps(-INFINITY);
    int i = 0;
    for (; i + 16 <= n; i += 16)
        m = _mm512_max_ps(m, _mm512_loadu_ps(x + i));
    float r = _mm512_reduce_max_ps(m);
    for (; i < n; i++)
        r = x[i] > r ? x[i] : r;
    return r;
}

static void attn_scores_avx512(float *s, const float *q, const float *k, size_t ldk, int n,
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

static void attn_wsum_avx512(float *acc, const float *p, const float *v, size_t ldv, int n,
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

const ik_ops ik_ops_avx512 = {
    .isa = IK_AVX512,
    .matvec = {matvec_f32_avx512, ik_matvec_bf16_avx2, ik_matvec_f16_avx2},
    .gemm = ik_gemm_avx512, /* infer_gemm.c */
    .bf16_to_f32 = bf16_to_f32_vec,
    .f16_to_f32 = f16_to_f32_vec,
    .f32_to_bf16 = f32_to_bf16_avx512,
    .dot = dot_avx512,
    .axpy = axpy_vec,
    .scale = scale_vec,
    .attn_qk = ik_attn_qk_avx512,
    .attn_pv = ik_attn_pv_avx512,
    .exp_sum = exp_sum_vec,
    .max = max_avx512,
    .silu_mul = silu_mul_vec,
    .attn_scores = attn_scores_avx512,
    .attn_wsum = attn_wsum_avx512,
    .attn_softmax = attn_softmax_vec,
};

const ik_ops ik_ops_avx512bf16 = {
    .isa = IK_AVX512BF16,
    .matvec = {matvec_f32_avx512, ik_matvec_bf16_avx2, ik_matvec_f16_avx2},
    .gemm = ik_gemm_avx512, /* infer_gemm.c */
    .bf16_to_f32 = bf16_to_f32_vec,
    .f16_to_f32 = f16_to_f32_vec,
    .f32_to_bf16 = f32_to_bf16_avx512bf16,
    .dot = dot_avx512,
    .axpy = axpy_vec,
    .scale = scale_vec,
    .attn_qk = ik_attn_qk_avx512,
    .attn_pv = ik_attn_pv_avx512,
    .exp_sum = exp_sum_vec,
    .max = max_avx512,
    .silu_mul = silu_mul_vec,
    .attn_scores = attn_scores_avx512,
    .attn_wsum = attn_wsum_avx512,
    .attn_softmax = attn_softmax_vec,
};
