/* infer_gemm_bf16.c - prefill's opt-in bf16 product: Y (n, m) = X (n, K) W^T with X already
 * rounded to bf16 and W stored in bf16, by AVX512_BF16's vdpbf16ps (two bf16 products per f32
 * lane per instruction, twice the multiply rate of an f32 FMA). infer uses it only when asked
 * (infer_opts.act_dtype = INFER_DT_BF16; `--act-dtype bf16`), since rounding the activations
 * costs accuracy: about 5e-3 relative in the logits against 1e-6 with f32 activations
 * (BENCHMARKS.md). llama.cpp computes BF16 weights the same way.
 *
 * Each output element is one dot product: 16 lane sums, each the vdpbf16ps chain over the
 * columns in steps of 32 (the last step's missing columns loaded as zeros), then one fixed
 * horizontal sum. Every element therefore goes through the same operations whatever n, m, the
 * tile it falls in or the thread that runs it: prefill stays bit-identical across chunk sizes
 * and thread counts, and no row padding is needed.
 *
 * vdpbf16ps treats subnormal inputs as zero and flushes subnormal results (Intel SDM), and
 * does not look at MXCSR. Its two products per lane are exact in f32 (8-bit significands).
 *
 * Blocking: TM rows of X by TN rows of W in registers (TM * TN accumulators + TM X vectors;
 * W is a memory operand), over XB rows of X at a time so that the X block stays in L2 while
 * the TN-row W tiles sweep past. bench_sgemm (BENCHMARKS.md) picked TM, TN and XB.
 *
 * Compiled with -mavx512f -mavx512bw -mavx512vl -mavx512bf16 (infer/CMakeLists.txt); called
 * only through ik_gemm_bf16 once ik_init() has seen the CPU report AVX512_BF16. */
#include "infer_kernels_internal.h"

#include <immintrin.h>

#define AI static inline __attribute__((always_inline))

enum { TM = 4, TN = 6, TN_SPLIT = 5, XB = 64 };

AI __m512bh ld_bh(const void *p) {
    return (__m512bh)_mm512_loadu_si512(p);
}

AI __m512bh ld_bh_tail(const void *p, __mmask32 k) {
    return (__m512bh)_mm512_maskz_loadu_epi16(k, p);
}

/* one step of 32 columns at x + k, w + k: full, or the last with mask m (missing columns zero) */
AI void step(__m512 acc[TM][TN], const uint16_t *xh, const uint16_t *xl, size_t ldx, const char *w,
             size_t K, size_t k, int tm, int tn, int split, int full, __mmask32 m) {
    __m512bh hv[TM], lv[TM];
#pragma GCC unroll 8
    for (int i = 0; i < tm; i++) {
        hv[i] = full ? ld_bh(xh + (size_t)i * ldx + k) : ld_bh_tail(xh + (size_t)i * ldx + k, m);
        if (split)
            lv[i] =
                full ? ld_bh(xl + (size_t)i * ldx + k) : ld_bh_tail(xl + (size_t)i * ldx + k, m);
    }
#pragma GCC unroll 8
    for (int j = 0; j < tn; j++) {
        const char *wj = w + 2 * ((size_t)j * K + k);
        const __m512bh wv = full ? ld_bh(wj) : ld_bh_tail(wj, m);
#pragma GCC unroll 8
        for (int i = 0; i < tm; i++) {
            acc[i][j] = _mm512_dpbf16_ps(acc[i][j], hv[i], wv);
            if (split)
                acc[i][j] = _mm512_dpbf16_ps(acc[i][j], lv[i], wv);
        }
    }
}

/* y[i * ldy + j] = x_i . w_j for i < tm, j < tn (tm <= TM, tn <= TN constants after inlining),
 * x_i the bf16 row xh_i, or with split the sum xh_i + xl_i */
AI void tile(float *y, size_t ldy, const uint16_t *xh, const uint16_t *xl, size_t ldx,
             const char *w, size_t K, int tm, int tn, int split) {
    __m512 acc[TM][TN];
#pragma GCC unroll 8
    for (int i = 0; i < tm; i++)
#pragma GCC unroll 8
        for (int j = 0; j < tn; j++)
            acc[i][j] = _mm512_setzero_ps();
    size_t k = 0;
    for (; k + 32 <= K; k += 32)
        step(acc, xh, xl, ldx, w, K, k, tm, tn, split, 1, 0);
    if (k < K)
        step(acc, xh, xl, ldx, w, K, k, tm, tn, split, 0, (__mmask32)((1ull << (K - k)) - 1));
#pragma GCC unroll 8
    for (int i = 0; i < tm; i++)
#pragma GCC unroll 8
        for (int j = 0; j < tn; j++)
            y[(size_t)i * ldy + (size_t)j] = _mm512_reduce_add_ps(acc[i][j]);
}

/* one instance per (tm, tn, split): the constants unroll the loops and keep acc in registers */
#define TILE(a, b, sp)                                                                             \
    static void tile_##a##_##b##_##sp(float *y, size_t ldy, const uint16_t *xh,                    \
                                      const uint16_t *xl, size_t ldx, const char *w, size_t K) {   \
        tile(y, ldy, xh, xl, ldx, w, K, a, b, sp);                                                 \
    }
#define TILES(a, sp)                                                                               \
    TILE(a, 1, sp) TILE(a, 2, sp) TILE(a, 3, sp) TILE(a, 4, sp) TILE(a, 5, sp) TILE(a, 6, sp)
TILES(1, 0)
TILES(2, 0)
TILES(3, 0)
TILES(4, 0)
TILES(1, 1)
TILES(2, 1)
TILES(3, 1)
TILES(4, 1)
#undef TILES
#undef TILE

typedef void (*tile_fn)(float *, size_t, const uint16_t *, const uint16_t *, size_t, const char *,
                        size_t);
#define ROW(a, sp)                                                                                 \
    {                                                                                              \
        tile_##a##_1_##sp, tile_##a##_2_##sp, tile_##a##_3_##sp, tile_##a##_4_##sp,                \
            tile_##a##_5_##sp, tile_##a##_6_##sp                                                   \
    }
static const tile_fn tiles[2][TM][TN] = {{ROW(1, 0), ROW(2, 0), ROW(3, 0), ROW(4, 0)},
                                         {ROW(1, 1), ROW(2, 1), ROW(3, 1), ROW(4, 1)}};
#undef ROW

void ik_gemm_bf16_avx512bf16(float *y, size_t ldy, const uint16_t *xh, const uint16_t *xl,
                             size_t ldx, const void *wv, size_t K, size_t n, size_t m) {
    const char *w = wv; /* any byte alignment (a tensor in a file) */
    const int split = xl != NULL, tn_max = split ? TN_SPLIT : TN;
    for (size_t t0 = 0; t0 < n; t0 += XB) {
        const size_t t1 = t0 + XB < n ? t0 + XB : n;
        for (size_t r = 0; r < m; r += (size_t)tn_max) {
            const size_t tn = r + (size_t)tn_max < m ? (size_t)tn_max : m - r;
            for (size_t t = t0; t < t1; t += TM) {
                const size_t tm = t + TM < t1 ? TM : t1 - t, o = t * ldx;
                tiles[split][tm - 1][tn - 1](y + t * ldy + r, ldy, xh + o, split ? xl + o : NULL,
                                             ldx, w + 2 * r * K, K);
            }
        }
    }
}
