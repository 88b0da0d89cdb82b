/* infer_kernels_avx2.c - the AVX2 + FMA + F16C kernel set. Compiled with -mavx2 -mfma -mf16c
 * (infer/CMakeLists.txt); reached only through ik_ops_avx2 once ik_init() has checked the CPU.
 *
 * The kernels written once over the vector width come from infer_kernels_body.h and
 * infer_kernels_exp_body.h at 8 lanes; this file keeps what is AVX2's own: f32 -> bf16 and dot
 * (their comments say why), and the table. */
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
    .max = ik_max_scalar, /* these three have no AVX2 versions (infer_exp.c) */
    .silu_mul = silu_mul_vec,
    .attn_scores = ik_attn_scores_scalar,
    .attn_wsum = ik_attn_wsum_scalar,
    .attn_softmax = attn_softmax_vec,
};
