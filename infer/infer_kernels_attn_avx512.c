/* infer_kernels_attn_avx512.c - the AVX-512 prefill attention kernels (ik_attn_qk, ik_attn_pv of
 * infer_kernels.h). Compiled with the flags of infer_kernels_avx512.c (infer/CMakeLists.txt);
 * reached only through ik_ops_avx512 / ik_ops_avx512bf16 once ik_init() has checked the CPU.
 *
 * They replace two OpenBLAS sgemm calls per 128-key tile, which packed both operands on every
 * call; sgemm also had to run in calls of a fixed row count, with padded rows and full tiles,
 * for its bits not to depend on the call. Here every element is its own chain of FMAs in a fixed
 * order, so any grouping of rows gives the same bits, and a row stops at its last causal key.
 *
 * Register tiles: every accumulator of a tile stays in a zmm register for the whole reduction
 * (24 of the 32), and each loaded vector or broadcast value feeds 4 to 6 FMAs. The tiles are
 * sized for 32 registers, so this file and infer_kernels_attn_avx2.c (16) stay separate.
 *
 * bench_attn 32768 keys, hd 64, group 2, f32 cache, 1 thread, three runs (BENCHMARKS.md): a
 * whole tile (qk, softmax, pv) 90.9-92.2 GFLOP/s against 58.8-59.9 for main's sgemm path; qk
 * alone 101.7-106.2, pv alone 107.4-109.6 (one core's FMA peak: 117). hd 128, group 4: 97.5-97.8
 * against 73.8-76.3. Tiles of 4 keys x 4 vectors and of 4 rows measured the same as 6 x 4 and 6
 * rows (bench_attn 8192 keys, qk 115.2-115.4 against 114.2-114.7; a scratch A/B). */
#include "infer_kernels.h"
#include "infer_kernels_internal.h"

#include <assert.h>
#include <immintrin.h>

#define AI static inline __attribute__((always_inline))

/* ---- scores: st[t][r] = sum_d q[r][d] k[t][d] ---------------------------------------------- */

/* MT keys x NR vectors of 16 rows; MT and NR are constants wherever this is inlined. */
AI void qk_tile(float *st, const float *qt, size_t ld, const float *k, size_t ldk, int hd, int MT,
                int NR) {
    __m512 acc[24];
#pragma GCC unroll 24
    for (int i = 0; i < MT * NR; i++)
        acc[i] = _mm512_setzero_ps();
    for (int d = 0; d < hd; d++) {
        const float *q = qt + (size_t)d * ld;
        __m512 qv[4];
#pragma GCC unroll 4
        for (int j = 0; j < NR; j++)
            qv[j] = _mm512_loadu_ps(q + 16 * j);
#pragma GCC unroll 24
        for (int i = 0; i < MT; i++) {
            const __m512 kb = _mm512_set1_ps(k[(size_t)i * ldk + (size_t)d]);
#pragma GCC unroll 4
            for (int j = 0; j < NR; j++)
                acc[i * NR + j] = _mm512_fmadd_ps(qv[j], kb, acc[i * NR + j]);
        }
    }
#pragma GCC unroll 24
    for (int i = 0; i < MT; i++)
#pragma GCC unroll 4
        for (int j = 0; j < NR; j++)
            _mm512_storeu_ps(st + (size_t)i * ld + 16 * j, acc[i * NR + j]);
}

/* all n_keys keys for NR vectors of rows: tiles of MT keys, then one key at a time */
AI void qk_rows(float *st, const float *qt, size_t ld, const float *k, size_t ldk, int n_keys,
                int hd, int MT, int NR) {
    int t = 0;
    for (; t + MT <= n_keys; t += MT)
        qk_tile(st + (size_t)t * ld, qt, ld, k + (size_t)t * ldk, ldk, hd, MT, NR);
    for (; t < n_keys; t++)
        qk_tile(st + (size_t)t * ld, qt, ld, k + (size_t)t * ldk, ldk, hd, 1, NR);
}

void ik_attn_qk_avx512(float *st, const float *qt, size_t ld, const float *k, size_t ldk,
                       int n_keys, int n_rows, int hd) {
    const int nv = (n_rows + 15) / 16;
    for (int j = 0; j < nv; j += 4) {
        float *s = st + 16 * j;
        const float *q = qt + 16 * j;
        switch (nv - j) {
        case 1:
            qk_rows(s, q, ld, k, ldk, n_keys, hd, 24, 1);
            break;
        case 2:
            qk_rows(s, q, ld, k, ldk, n_keys, hd, 12, 2);
            break;
        case 3:
            qk_rows(s, q, ld, k, ldk, n_keys, hd, 8, 3);
            break;
        default:
            qk_rows(s, q, ld, k, ldk, n_keys, hd, 6, 4);
        }
    }
}

/* ---- weighted sums: acc[r][d] = acc[r][d] c[r] + sum_t p[r][t] v[t][d] --------------------- */

/* MR rows x NV vectors of 16 columns (the last one masked by ml); MR, NV constants. Keys below
 * every row's count go through the plain loop; the rest use a per-row mask, so that a row never
 * adds a key past its own count. */
AI void pv_tile(float *acc, size_t ldacc, const float *c, const float *st, size_t ld,
                const float *v, size_t ldv, const int *n, __mmask16 ml, int MR, int NV) {
    __m512 a[24];
    int t_all = n[0], t_any = n[0];
#pragma GCC unroll 6
    for (int i = 0; i < MR; i++) {
        t_all = n[i] < t_all ? n[i] : t_all;
        t_any = n[i] > t_any ? n[i] : t_any;
        const __m512 ci = _mm512_set1_ps(c[i]);
#pragma GCC unroll 4
        for (int j = 0; j < NV; j++) {
            const __mmask16 m = j == NV - 1 ? ml : (__mmask16)0xffff;
            a[i * NV + j] = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, acc + i * ldacc + 16 * j), ci);
        }
    }
    for (int t = 0; t < t_all; t++) {
        const float *vt = v + (size_t)t * ldv, *p = st + (size_t)t * ld;
        __m512 vv[4];
#pragma GCC unroll 4
        for (int j = 0; j < NV; j++)
            vv[j] = _mm512_maskz_loadu_ps(j == NV - 1 ? ml : (__mmask16)0xffff, vt + 16 * j);
#pragma GCC unroll 6
        for (int i = 0; i < MR; i++) {
            const __m512 pb = _mm512_set1_ps(p[i]);
#pragma GCC unroll 4
            for (int j = 0; j < NV; j++)
                a[i * NV + j] = _mm512_fmadd_ps(pb, vv[j], a[i * NV + j]);
        }
    }
    for (int t = t_all; t < t_any; t++) {
        const float *vt = v + (size_t)t * ldv, *p = st + (size_t)t * ld;
        __m512 vv[4];
#pragma GCC unroll 4
        for (int j = 0; j < NV; j++)
            vv[j] = _mm512_maskz_loadu_ps(j == NV - 1 ? ml : (__mmask16)0xffff, vt + 16 * j);
#pragma GCC unroll 6
        for (int i = 0; i < MR; i++) {
            const __mmask16 on = t < n[i] ? (__mmask16)0xffff : 0;
            const __m512 pb = _mm512_set1_ps(p[i]);
#pragma GCC unroll 4
            for (int j = 0; j < NV; j++)
                a[i * NV + j] = _mm512_mask3_fmadd_ps(pb, vv[j], a[i * NV + j], on);
        }
    }
#pragma GCC unroll 6
    for (int i = 0; i < MR; i++)
#pragma GCC unroll 4
        for (int j = 0; j < NV; j++)
            _mm512_mask_storeu_ps(acc + i * ldacc + 16 * j, j == NV - 1 ? ml : (__mmask16)0xffff,
                                  a[i * NV + j]);
}

/* MR rows, all hd columns: blocks of 64, then the last 1 to 4 vectors */
AI void pv_rows(float *acc, size_t ldacc, const float *c, const float *st, size_t ld,
                const float *v, size_t ldv, const int *n, int hd, int MR) {
    int d = 0;
    for (; d + 64 <= hd; d += 64)
        pv_tile(acc + d, ldacc, c, st, ld, v + d, ldv, n, 0xffff, MR, 4);
    if (d == hd)
        return;
    const int rest = hd - d, nv = (rest + 15) / 16;
    const __mmask16 ml = (__mmask16)(0xffffu >> (16 * nv - rest));
    switch (nv) {
    case 1:
        pv_tile(acc + d, ldacc, c, st, ld, v + d, ldv, n, ml, MR, 1);
        break;
    case 2:
        pv_tile(acc + d, ldacc, c, st, ld, v + d, ldv, n, ml, MR, 2);
        break;
    case 3:
        pv_tile(acc + d, ldacc, c, st, ld, v + d, ldv, n, ml, MR, 3);
        break;
    default:
        pv_tile(acc + d, ldacc, c, st, ld, v + d, ldv, n, ml, MR, 4);
    }
}

void ik_attn_pv_avx512(float *acc, size_t ldacc, const float *c, const float *st, size_t ld,
                       const float *v, size_t ldv, const int *n, int n_rows, int hd) {
    int r = 0;
    for (; r + 6 <= n_rows; r += 6)
        pv_rows(acc + (size_t)r * ldacc, ldacc, c + r, st + r, ld, v, ldv, n + r, hd, 6);
    for (; r + 4 <= n_rows; r += 4)
        pv_rows(acc + (size_t)r * ldacc, ldacc, c + r, st + r, ld, v, ldv, n + r, hd, 4);
    for (; r + 2 <= n_rows; r += 2)
        pv_rows(acc + (size_t)r * ldacc, ldacc, c + r, st + r, ld, v, ldv, n + r, hd, 2);
    for (; r < n_rows; r++)
        pv_rows(acc + (size_t)r * ldacc, ldacc, c + r, st + r, ld, v, ldv, n + r, hd, 1);
}
