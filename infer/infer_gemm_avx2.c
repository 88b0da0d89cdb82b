/* infer_gemm_avx2.c - prefill's matrix products on AVX2 + FMA (+ F16C): Y (n, m) = X (n, K) W^T,
 * X in f32, W in its stored dtype (f32, bf16 or f16 rows of K) read in place: no packing, no
 * widened copy. The AVX2 counterpart of infer_gemm.c's ik_gemm (same contract, 8 lanes).
 *
 * Each output element is one dot product: 8 lane sums over steps of 8 columns (column c goes
 * into lane c mod 8; the last step's missing columns are loaded as zeros), then one fixed
 * horizontal sum (hsum8). Weights are widened exactly in registers (bf16: a shift; f16:
 * vcvtph2ps) and multiplied with FMA. Every element therefore goes through the same operations
 * whatever n, m, the tile it falls in or the thread that runs it: prefill stays bit-identical
 * across chunk sizes and thread counts without row padding. OpenBLAS's sgemm cannot promise
 * that on these CPUs: with its Haswell/Zen kernels a row's bits depend on its position within
 * the call (34 of 63 positions of a 64-row call differ from position 0), so even fixed 64-row
 * calls change a token's bits with the chunking.
 *
 * The bits differ from the AVX-512 ik_gemm (16 lanes there) and from the scalar set's sgemm:
 * the same model gives the same bits run to run and chunk to chunk on this set, not across sets.
 *
 * Speed (bench_sgemm, one thread, AMD EPYC Zen 3 under KVM, BENCHMARKS.md): 512 x 1024 x 2816,
 * f32 / bf16 / f16 weights 66 / 71 / 75 GFLOP/s against 59 for OpenBLAS in 64-row calls and 77
 * in one call; at K = 2816 (the MLP's down projection) f32 weights run 56-59 against 63, bf16
 * and f16 55-71 (a 3-row f32 tile no longer fits L1; K blocking did not help).
 *
 * Blocking: TM rows of X by TN rows of W in registers: the TN widened W vectors of a step are
 * held (TN registers) and each X vector is loaded once and used TN times, TM * TN accumulators:
 * 3 + 1 + 12 = the 16 ymm registers. Over XB rows of X at a time, so that the X block stays in
 * L2 while the TN-row W tiles sweep past it.
 *
 * Compiled with -mavx2 -mfma -mf16c (infer/CMakeLists.txt); reached only through ik_ops_avx2's
 * gemm once ik_init() has seen the CPU report these features. */
#include "infer_kernels_internal.h"

#include "infer.h"

#include <immintrin.h>

#define AI static inline __attribute__((always_inline))

enum { TM = 4, TN = 3, XB = 64 };

/* the fixed reduction of an element's 8 lane sums: (l0+l4)+(l2+l6) + (l1+l5)+(l3+l7) */
AI float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* 8 weights at p (any byte alignment) as f32 */
AI __m256 ld_w(const char *p, int dtype) {
    if (dtype == INFER_DT_F32)
        return _mm256_loadu_ps((const float *)(const void *)p);
    const __m128i h = _mm_loadu_si128((const __m128i *)(const void *)p);
    if (dtype == INFER_DT_BF16)
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    return _mm256_cvtph_ps(h);
}

/* one step of 8 columns: acc[i][j] += x_i[k..k+8) * w_j[k..k+8) lane by lane. x rows ldx
 * floats apart, w rows wrow bytes apart, both already at column k. */
AI void step(__m256 acc[TM][TN], const float *x, size_t ldx, const char *w, size_t wrow, int tm,
             int tn, int dtype) {
    __m256 wv[TN];
#pragma GCC unroll 8
    for (int j = 0; j < tn; j++)
        wv[j] = ld_w(w + (size_t)j * wrow, dtype);
#pragma GCC unroll 8
    for (int i = 0; i < tm; i++) {
        const __m256 xv = _mm256_loadu_ps(x + (size_t)i * ldx);
#pragma GCC unroll 8
        for (int j = 0; j < tn; j++)
            acc[i][j] = _mm256_fmadd_ps(xv, wv[j], acc[i][j]);
    }
}

/* y[i * ldy + j] = x_i . w_j for i < tm, j < tn (constants after inlining) */
AI void tile(float *y, size_t ldy, const float *x, size_t ldx, const char *w, size_t K, int tm,
             int tn, int dtype) {
    const size_t el = dtype == INFER_DT_F32 ? 4 : 2, wrow = K * el;
    __m256 acc[TM][TN];
#pragma GCC unroll 8
    for (int i = 0; i < tm; i++)
#pragma GCC unroll 8
        for (int j = 0; j < tn; j++)
            acc[i][j] = _mm256_setzero_ps();
    size_t k = 0;
    for (; k + 8 <= K; k += 8)
        step(acc, x + k, ldx, w + k * el, wrow, tm, tn, dtype);
    if (k < K) {
        /* the last K - k < 8 columns, copied into zeroed rows (AVX2 has no masked 16-bit load;
         * vmaskmovps would do for f32, one copy path keeps it simple): the missing columns add
         * x * w = 0 * 0 to each lane, as in the full steps' order */
        const size_t r = K - k;
        float xt[TM][8] = {{0}};
        char wt[TN][32] = {{0}};
        for (int i = 0; i < tm; i++)
            memcpy(xt[i], x + (size_t)i * ldx + k, r * sizeof(float));
        for (int j = 0; j < tn; j++)
            memcpy(wt[j], w + (size_t)j * wrow + k * el, r * el);
        step(acc, xt[0], 8, wt[0], 32, tm, tn, dtype);
    }
#pragma GCC unroll 8
    for (int i = 0; i < tm; i++)
#pragma GCC unroll 8
        for (int j = 0; j < tn; j++)
            y[(size_t)i * ldy + (size_t)j] = hsum8(acc[i][j]);
}

/* ---- one instance per tile shape: the constants unroll the loops, acc stays in registers -- */

typedef void (*tile_fn)(float *y, size_t ldy, const float *x, size_t ldx, const char *w, size_t K);

#define TILE(a, b)                                                                                 \
    static void f32_##a##_##b(float *y, size_t ldy, const float *x, size_t ldx, const char *w,     \
                              size_t K) {                                                          \
        tile(y, ldy, x, ldx, w, K, a, b, INFER_DT_F32);                                            \
    }                                                                                              \
    static void bf16w_##a##_##b(float *y, size_t ldy, const float *x, size_t ldx, const char *w,   \
                                size_t K) {                                                        \
        tile(y, ldy, x, ldx, w, K, a, b, INFER_DT_BF16);                                           \
    }                                                                                              \
    static void f16w_##a##_##b(float *y, size_t ldy, const float *x, size_t ldx, const char *w,    \
                               size_t K) {                                                         \
        tile(y, ldy, x, ldx, w, K, a, b, INFER_DT_F16);                                            \
    }
#define TILES(a) TILE(a, 1) TILE(a, 2) TILE(a, 3)
TILES(1)
TILES(2)
TILES(3)
TILES(4)
#undef TILES
#undef TILE

#define ROW(k, a)                                                                                  \
    { k##_##a##_1, k##_##a##_2, k##_##a##_3 }
#define KIND(k)                                                                                    \
    { ROW(k, 1), ROW(k, 2), ROW(k, 3), ROW(k, 4) }
/* by INFER_DT_* of the weights */
static const tile_fn tiles[3][TM][TN] = {KIND(f32), KIND(bf16w), KIND(f16w)};
#undef KIND
#undef ROW

void ik_gemm_avx2(float *y, size_t ldy, const float *x, size_t ldx, const void *w, int dtype,
                  size_t cols, size_t n, size_t m) {
    const size_t w_elt = dtype == INFER_DT_F32 ? 4 : 2;
    for (size_t t0 = 0; t0 < n; t0 += XB) {
        const size_t t1 = t0 + XB < n ? t0 + XB : n;
        for (size_t r = 0; r < m; r += TN) {
            const size_t tn = r + TN < m ? TN : m - r;
            for (size_t t = t0; t < t1; t += TM) {
                const size_t tm = t + TM < t1 ? TM : t1 - t;
                tiles[dtype][tm - 1][tn - 1](y + t * ldy + r, ldy, x + t * ldx, ldx,
                                             (const char *)w + r * cols * w_elt, cols);
            }
        }
    }
}
