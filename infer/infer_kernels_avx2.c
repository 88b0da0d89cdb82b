/* infer_kernels_avx2.c - the AVX2 + FMA + F16C kernel set. Compiled with -mavx2 -mfma -mf16c
 * (infer/CMakeLists.txt); reached only through ik_ops_avx2 once ik_init() has checked the CPU.
 *
 * Tails shorter than a vector go through a zero-padded copy and the same vector code, so every
 * element is converted by the same instruction whatever its position. */
#include "infer_kernels.h"
#include "infer_kernels_internal.h"

#include "infer.h"

#include <immintrin.h>
#include <math.h>

#define IK_VEC_AVX2
#include "infer_kernels_exp_body.h" /* exp_sum_vec, silu_mul_vec, attn_softmax_vec */

/* ---- 8 weights -> 8 floats --------------------------------------------------------------- */

#define AI static inline __attribute__((always_inline))

/* dtype is a constant wherever this is inlined: one branch-free loop per dtype */
AI __m256 ld8(const unsigned char *p, int dtype) {
    if (dtype == INFER_DT_F32)
        return _mm256_loadu_ps((const float *)p);
    const __m128i h = _mm_loadu_si128((const __m128i *)p);
    if (dtype == INFER_DT_BF16)
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    return _mm256_cvtph_ps(h);
}

static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Each row's stream is also prefetched into L2 this far ahead (bench_kernels, 1 thread, without
 * -> with: avx512 f32 25-26 -> 29-31 GB/s, avx2 bf16 20-22 -> 22-24). 2 KiB beat 0.5, 1 and
 * 4 KiB; prefetcht0 lost 4-6 GB/s at any distance (scratch runs). A prefetch past the end of w
 * is harmless: it never faults. */
#define PREFETCH_BYTES 2048

/* ---- matvec ------------------------------------------------------------------------------ */

/* Eight rows per pass, 8 columns per step: x is loaded once for eight rows, eight independent
 * FMA chains, eight concurrent read streams (1 thread, f32: 4 rows x 16 columns 22-24 GB/s,
 * 8 x 8 25-27; bf16 17-19 / 21-22; no prefetch; a scratch harness timed like bench_kernels,
 * not kept).
 * avx2 matvec, 8192x4096, 1 thread (bench_kernels): f32 29.7 GB/s, bf16 23.7, f16 25.7
 * (scalar 18.7 / 6.2 / 1.8; OpenBLAS sgemv 23.4; read ceiling 32.6). */
AI void matvec_avx2(float *y, const float *x, const void *wv, size_t cols, size_t n_rows,
                    int dtype) {
    const unsigned char *w = wv;
    const size_t esz = dtype == INFER_DT_F32 ? 4 : 2, row_bytes = cols * esz;
    /* rows shorter than 4 KiB: prefetch the same place in the next pass's rows (2 KiB ahead
     * would land in rows this pass already streams: 1024-column bf16 rows read 11.6 GB/s) */
    const size_t ahead = row_bytes > 4096 ? PREFETCH_BYTES : 8 * row_bytes;
    const size_t n8 = cols & ~(size_t)7, n16 = cols & ~(size_t)15, n_tail = cols - n8;
    float x_tail[8] = {0};
    memcpy(x_tail, x + n8, n_tail * sizeof *x);
    const __m256 xt = _mm256_loadu_ps(x_tail);
    unsigned char w_tail[32] = {0}; /* one row's last n_tail weights, zero-padded */
    size_t r = 0;
    for (; r + 8 <= n_rows; r += 8) {
        const unsigned char *w0 = w + r * row_bytes;
        __m256 acc[8];
        for (int i = 0; i < 8; i++)
            acc[i] = _mm256_setzero_ps();
        for (size_t c = 0; c < n8; c += 8) {
            const __m256 xc = _mm256_loadu_ps(x + c);
#pragma GCC unroll 8
            for (int i = 0; i < 8; i++) {
                const unsigned char *p = w0 + i * row_bytes + c * esz;
                _mm_prefetch((const char *)p + ahead, _MM_HINT_T1);
                acc[i] = _mm256_fmadd_ps(ld8(p, dtype), xc, acc[i]);
            }
        }
        if (n_tail)
            for (int i = 0; i < 8; i++) {
                memcpy(w_tail, w0 + i * row_bytes + n8 * esz, n_tail * esz);
                acc[i] = _mm256_fmadd_ps(ld8(w_tail, dtype), xt, acc[i]);
            }
        for (int i = 0; i < 8; i++)
            y[r + i] = hsum8(acc[i]);
    }
    for (; r < n_rows; r++) { /* the last n_rows % 8 */
        const unsigned char *w0 = w + r * row_bytes;
        __m256 a = _mm256_setzero_ps(), b = a;
        for (size_t c = 0; c < n16; c += 16) {
            a = _mm256_fmadd_ps(ld8(w0 + c * esz, dtype), _mm256_loadu_ps(x + c), a);
            b = _mm256_fmadd_ps(ld8(w0 + (c + 8) * esz, dtype), _mm256_loadu_ps(x + c + 8), b);
        }
        if (n8 > n16)
            a = _mm256_fmadd_ps(ld8(w0 + n16 * esz, dtype), _mm256_loadu_ps(x + n16), a);
        if (n_tail) {
            memcpy(w_tail, w0 + n8 * esz, n_tail * esz);
            b = _mm256_fmadd_ps(ld8(w_tail, dtype), xt, b);
        }
        y[r] = hsum8(_mm256_add_ps(a, b));
    }
}

static void matvec_f32_avx2(float *y, const float *x, const void *w, size_t cols, size_t n_rows) {
    matvec_avx2(y, x, w, cols, n_rows, INFER_DT_F32);
}

void ik_matvec_bf16_avx2(float *y, const float *x, const void *w, size_t cols, size_t n_rows) {
    matvec_avx2(y, x, w, cols, n_rows, INFER_DT_BF16);
}

void ik_matvec_f16_avx2(float *y, const float *x, const void *w, size_t cols, size_t n_rows) {
    matvec_avx2(y, x, w, cols, n_rows, INFER_DT_F16);
}

/* ---- conversions ------------------------------------------------------------------------- */

/* avx2 to_f32 (bench_kernels, 64 Ki elements in L2): bf16 14.6-19.1 G elements/s (it moves with
 * where the buffers land), f16 19.2 (scalar 3.6 / 0.9). */
static void bf16_to_f32_avx2(float *dst, const void *src, size_t n) {
    const unsigned char *s = src;
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, ld8(s + 2 * i, INFER_DT_BF16));
    for (; i < n; i++) {
        uint16_t h;
        memcpy(&h, s + 2 * i, 2);
        dst[i] = ik_bf16_to_f32_1(h);
    }
}

static void f16_to_f32_avx2(float *dst, const void *src, size_t n) {
    const unsigned char *s = src;
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, ld8(s + 2 * i, INFER_DT_F16));
    if (i < n) { /* through F16C too, so a NaN's quiet bit is the instruction's */
        unsigned char t[16] = {0};
        float f[8];
        memcpy(t, s + 2 * i, 2 * (n - i));
        _mm256_storeu_ps(f, ld8(t, INFER_DT_F16));
        memcpy(dst + i, f, (n - i) * sizeof *dst);
    }
}

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

/* ---- level-1 ----------------------------------------------------------------------------- */

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
    float s = hsum8(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    for (; i < n; i++)
        s += a[i] * b[i];
    return s;
}

/* avx2 axpy (bench_kernels, 2 x 2 Ki floats in L1): 24.5 G elements/s (scalar 1.8). */
static void axpy_avx2(float *y, float a, const float *x, size_t n) {
    const __m256 va = _mm256_set1_ps(a);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        _mm256_storeu_ps(y + i,
                         _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
        _mm256_storeu_ps(
            y + i + 8, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(y + i + 8)));
    }
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i,
                         _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) /* fused like the vector part: one rounding whatever n is */
        y[i] = fmaf(a, x[i], y[i]);
}

/* avx2 scale (bench_kernels, 2 Ki floats in L1): 29.0 G elements/s (scalar 3.6). */
static void scale_avx2(float *y, float a, size_t n) {
    const __m256 va = _mm256_set1_ps(a);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        _mm256_storeu_ps(y + i, _mm256_mul_ps(va, _mm256_loadu_ps(y + i)));
        _mm256_storeu_ps(y + i + 8, _mm256_mul_ps(va, _mm256_loadu_ps(y + i + 8)));
    }
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_mul_ps(va, _mm256_loadu_ps(y + i)));
    for (; i < n; i++)
        y[i] *= a;
}

const ik_ops ik_ops_avx2 = {
    .isa = IK_AVX2,
    .matvec = {matvec_f32_avx2, ik_matvec_bf16_avx2, ik_matvec_f16_avx2},
    .bf16_to_f32 = bf16_to_f32_avx2,
    .f16_to_f32 = f16_to_f32_avx2,
    .f32_to_bf16 = f32_to_bf16_avx2,
    .dot = dot_avx2,
    .axpy = axpy_avx2,
    .scale = scale_avx2,
    .attn_qk = ik_attn_qk_avx2,
    .attn_pv = ik_attn_pv_avx2,
    .exp_sum = exp_sum_vec,
    .max = ik_max_scalar, /* these three have no AVX2 versions (infer_exp.c) */
    .silu_mul = silu_mul_vec,
    .attn_scores = ik_attn_scores_scalar,
    .attn_wsum = ik_attn_wsum_scalar,
    .attn_softmax = attn_softmax_vec,
};
