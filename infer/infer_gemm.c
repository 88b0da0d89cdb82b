/* infer_gemm.c - prefill's matrix products on AVX-512: Y (n, m) = X (n, K) W^T, W in its stored
 * dtype (f32, bf16 or f16 rows of K), read in place: no packing, no widened copy.
 *
 *  - ik_gemm: X in f32. Weights are widened in registers (bf16: a shift; f16: vcvtph2ps) and
 *    multiplied with FMA: exact f32 products, the same arithmetic as sgemm.
 *  - ik_gemm_bf16: X already rounded to bf16 and W in bf16, by AVX512_BF16's vdpbf16ps (two
 *    bf16 products per f32 lane and instruction: twice the multiply rate). Rounding the
 *    activations costs accuracy (about 1e-3 per product, several 1e-3 in logits), so infer runs
 *    it only on request (--act-dtype bf16). llama.cpp computes BF16 weights this way.
 *
 * Each output element is one dot product: 16 lane sums over steps of 16 columns (32 for
 * vdpbf16ps; the last step's missing columns loaded as zeros), then one fixed horizontal sum.
 * Every element therefore goes through the same operations whatever n, m, the tile it falls in
 * or the thread that runs it: prefill stays bit-identical across chunk sizes and thread counts
 * and needs no row padding (the sgemm path pads to fixed 64-row calls for that).
 *
 * Why hand-written: one thread, 512 x 1024 x 2816 (bench_sgemm, BENCHMARKS.md), OpenBLAS
 * sgemm in the fixed 64-row calls the sgemm path needs runs 68 GFLOP/s, and 99 in one 512-row
 * call (it packs both operands every call). ik_gemm runs 86 with f32 weights and 106 with bf16
 * weights; the vdpbf16ps kernel runs 189.
 *
 * Blocking: TM rows of X by TN rows of W in registers (TM * TN accumulators + TM X vectors; the
 * W vector is loaded once per step and used TM times), over XB rows of X at a time so that the
 * X block stays in L2 while the TN-row W tiles sweep past it.
 *
 * vdpbf16ps treats subnormal inputs as zero and flushes subnormal results (Intel SDM) and does
 * not look at MXCSR; its products are exact in f32 (8-bit significands).
 *
 * Compiled with -mavx512f -mavx512bw -mavx512vl -mfma -mf16c (infer/CMakeLists.txt); the
 * vdpbf16ps functions carry target("avx512bf16"). Reached only through ik_gemm and
 * ik_gemm_bf16 once ik_init() has seen the CPU report these features. */
#include "infer_kernels_internal.h"

#include "infer.h"

#include <immintrin.h>

#define AI   static inline __attribute__((always_inline))
#define BF16 __attribute__((target("avx512bf16")))

enum { TM = 4, TN = 6, XB = 64 };

/* the tile's accumulators, and their fixed horizontal sums into y (rows ldy apart) */
AI void zero_acc(__m512 acc[TM][TN], int tm, int tn) {
#pragma GCC unroll 8
    for (int i = 0; i < tm; i++)
#pragma GCC unroll 8
        for (int j = 0; j < tn; j++)
            acc[i][j] = _mm512_setzero_ps();
}

AI void store_acc(float *y, size_t ldy, __m512 acc[TM][TN], int tm, int tn) {
#pragma GCC unroll 8
    for (int i = 0; i < tm; i++)
#pragma GCC unroll 8
        for (int j = 0; j < tn; j++)
            y[(size_t)i * ldy + (size_t)j] = _mm512_reduce_add_ps(acc[i][j]);
}

/* ---- f32 X ------------------------------------------------------------------------------- */

/* 16 weights at p (any byte alignment) as f32; the last step loads only the lanes of m */
AI __m512 ld_w(const char *p, int dtype, int full, __mmask16 m) {
    if (dtype == INFER_DT_F32)
        return full ? _mm512_loadu_ps(p) : _mm512_maskz_loadu_ps(m, p);
    const __m256i h = full ? _mm256_loadu_si256((const __m256i *)(const void *)p)
                           : _mm256_maskz_loadu_epi16(m, p);
    if (dtype == INFER_DT_BF16)
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    return _mm512_cvtph_ps(h);
}

AI void step_f32(__m512 acc[TM][TN], const float *x, size_t ldx, const char *w, size_t wrow,
                 size_t k, int tm, int tn, int dtype, int full, __mmask16 m) {
    __m512 xv[TM];
    const size_t wk = k * (dtype == INFER_DT_F32 ? 4 : 2);
#pragma GCC unroll 8
    for (int i = 0; i < tm; i++)
        xv[i] = full ? _mm512_loadu_ps(x + (size_t)i * ldx + k)
                     : _mm512_maskz_loadu_ps(m, x + (size_t)i * ldx + k);
#pragma GCC unroll 8
    for (int j = 0; j < tn; j++) {
        const __m512 wv = ld_w(w + (size_t)j * wrow + wk, dtype, full, m);
#pragma GCC unroll 8
        for (int i = 0; i < tm; i++)
            acc[i][j] = _mm512_fmadd_ps(xv[i], wv, acc[i][j]);
    }
}

/* y[i * ldy + j] = x_i . w_j for i < tm, j < tn (constants after inlining) */
AI void tile_f32(float *y, size_t ldy, const float *x, size_t ldx, const char *w, size_t K, int tm,
                 int tn, int dtype) {
    const size_t wrow = K * (dtype == INFER_DT_F32 ? 4 : 2);
    __m512 acc[TM][TN];
    zero_acc(acc, tm, tn);
    size_t k = 0;
    for (; k + 16 <= K; k += 16)
        step_f32(acc, x, ldx, w, wrow, k, tm, tn, dtype, 1, 0);
    if (k < K)
        step_f32(acc, x, ldx, w, wrow, k, tm, tn, dtype, 0, (__mmask16)((1u << (K - k)) - 1));
    store_acc(y, ldy, acc, tm, tn);
}

/* ---- bf16 X (vdpbf16ps) ------------------------------------------------------------------ */

AI BF16 __m512bh ld_bh(const void *p, int full, __mmask32 m) {
    return (__m512bh)(full ? _mm512_loadu_si512(p) : _mm512_maskz_loadu_epi16(m, p));
}

AI BF16 void step_bh(__m512 acc[TM][TN], const uint16_t *x, size_t ldx, const char *w, size_t K,
                     size_t k, int tm, int tn, int full, __mmask32 m) {
    __m512bh xv[TM];
#pragma GCC unroll 8
    for (int i = 0; i < tm; i++)
        xv[i] = ld_bh(x + (size_t)i * ldx + k, full, m);
#pragma GCC unroll 8
    for (int j = 0; j < tn; j++) {
        const __m512bh wv = ld_bh(w + 2 * ((size_t)j * K + k), full, m);
#pragma GCC unroll 8
        for (int i = 0; i < tm; i++)
            acc[i][j] = _mm512_dpbf16_ps(acc[i][j], xv[i], wv);
    }
}

AI BF16 void tile_bh(float *y, size_t ldy, const uint16_t *x, size_t ldx, const char *w, size_t K,
                     int tm, int tn) {
    __m512 acc[TM][TN];
    zero_acc(acc, tm, tn);
    size_t k = 0;
    for (; k + 32 <= K; k += 32)
        step_bh(acc, x, ldx, w, K, k, tm, tn, 1, 0);
    if (k < K)
        step_bh(acc, x, ldx, w, K, k, tm, tn, 0, (__mmask32)((1ull << (K - k)) - 1));
    store_acc(y, ldy, acc, tm, tn);
}

/* ---- one instance per tile shape: the constants unroll the loops, acc stays in registers -- */

typedef void (*tile_fn)(float *y, size_t ldy, const void *x, size_t ldx, const char *w, size_t K);

#define TILE(a, b)                                                                                 \
    static void f32_##a##_##b(float *y, size_t ldy, const void *x, size_t ldx, const char *w,      \
                              size_t K) {                                                          \
        tile_f32(y, ldy, x, ldx, w, K, a, b, INFER_DT_F32);                                        \
    }                                                                                              \
    static void bf16w_##a##_##b(float *y, size_t ldy, const void *x, size_t ldx, const char *w,    \
                                size_t K) {                                                        \
        tile_f32(y, ldy, x, ldx, w, K, a, b, INFER_DT_BF16);                                       \
    }                                                                                              \
    static void f16w_##a##_##b(float *y, size_t ldy, const void *x, size_t ldx, const char *w,     \
                               size_t K) {                                                         \
        tile_f32(y, ldy, x, ldx, w, K, a, b, INFER_DT_F16);                                        \
    }                                                                                              \
    static BF16 void bh_##a##_##b(float *y, size_t ldy, const void *x, size_t ldx, const char *w,  \
                                  size_t K) {                                                      \
        tile_bh(y, ldy, x, ldx, w, K, a, b);                                                       \
    }
#define TILES(a) TILE(a, 1) TILE(a, 2) TILE(a, 3) TILE(a, 4) TILE(a, 5) TILE(a, 6)
TILES(1)
TILES(2)
TILES(3)
TILES(4)
#undef TILES
#undef TILE

#define ROW(k, a)                                                                                  \
    { k##_##a##_1, k##_##a##_2, k##_##a##_3, k##_##a##_4, k##_##a##_5, k##_##a##_6 }
#define KIND(k)                                                                                    \
    { ROW(k, 1), ROW(k, 2), ROW(k, 3), ROW(k, 4) }
/* by INFER_DT_* of the weights (f32 X), then bf16 X */
static const tile_fn tiles[4][TM][TN] = {KIND(f32), KIND(bf16w), KIND(f16w), KIND(bh)};
#undef KIND
#undef ROW

/* kind: 0..2 the weight dtype with f32 x (x_elt 4), 3 bf16 x and weights (x_elt 2) */
static void gemm(float *y, size_t ldy, const char *x, size_t x_elt, size_t ldx, const char *w,
                 size_t w_elt, size_t K, size_t n, size_t m, int kind) {
    /* Weight rows a multiple of 4 KiB apart fall in one L1 set with the tile's X rows: 10
     * streams for 8 ways. Four weight rows instead of six (bench_sgemm 256 x 4096 x 1024, f32
     * weights: 72 -> 83 GFLOP/s; bf16 x: 148 -> 179; 256 x 1024 x 2816, f32: 84 -> 93). */
    const size_t tn_max = (K * w_elt) % 4096 == 0 ? 4 : TN;
    for (size_t t0 = 0; t0 < n; t0 += XB) {
        const size_t t1 = t0 + XB < n ? t0 + XB : n;
        for (size_t r = 0; r < m; r += tn_max) {
            const size_t tn = r + tn_max < m ? tn_max : m - r;
            for (size_t t = t0; t < t1; t += TM) {
                const size_t tm = t + TM < t1 ? TM : t1 - t;
                tiles[kind][tm - 1][tn - 1](y + t * ldy + r, ldy, x + t * ldx * x_elt, ldx,
                                            w + r * K * w_elt, K);
            }
        }
    }
}

void ik_gemm_avx512(float *y, size_t ldy, const float *x, size_t ldx, const void *w, int dtype,
                    size_t cols, size_t n, size_t m) {
    gemm(y, ldy, (const char *)x, 4, ldx, w, dtype == INFER_DT_F32 ? 4 : 2, cols, n, m, dtype);
}

void ik_gemm_bf16_avx512bf16(float *y, size_t ldy, const uint16_t *x, size_t ldx, const void *w,
                             size_t cols, size_t n, size_t m) {
    gemm(y, ldy, (const char *)x, 2, ldx, w, 2, cols, n, m, 3);
}
