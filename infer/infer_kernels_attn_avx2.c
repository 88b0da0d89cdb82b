/* infer_kernels_attn_avx2.c - the AVX2 + FMA prefill attention kernels (ik_attn_qk, ik_attn_pv of
 * infer_kernels.h). Compiled with the flags of infer_kernels_avx2.c (infer/CMakeLists.txt);
 * reached only through ik_ops_avx2 once ik_init() has checked the CPU.
 *
 * The same operations per element as the AVX-512 kernels (one FMA chain in a fixed order), so
 * the two sets give the same bits; the register tiles are smaller (16 ymm registers: 12
 * accumulators). infer_kernels_attn_avx512.c says why these kernels exist.
 *
 * Not written once over F32_VEC_* (infer_kernels_vec.h) as matvec is: the register tiles are
 * the speed, and they differ by width (qk 6 keys x 2 vectors or 12 x 1 here, 6 x 4 down to
 * 24 x 1 there; the tail columns are vmaskmovps lanes here and mask registers there, and the
 * per-row key mask a blend here and a masked FMA there).
 *
 * bench_attn 32768 keys, hd 64, group 2, f32 cache, 1 thread, three runs (BENCHMARKS.md): a
 * whole tile 69.8-71.7 GFLOP/s against 50.8-52.3 for main's sgemm path under this set; qk alone
 * 89.3-92.3, pv alone 80.2-83.7. */
#include "infer_kernels.h"
#include "infer_kernels_internal.h"

#include <immintrin.h>

#define AI static inline __attribute__((always_inline))

/* ---- scores: st[t][r] = sum_d q[r][d] k[t][d] ---------------------------------------------- */

/* MT keys x NR vectors of 8 rows; MT and NR are constants wherever this is inlined. */
AI void qk_tile(float *st, const float *qt, size_t ld, const float *k, size_t ldk, int hd, int MT,
                int NR) {
    __m256 acc[12];
#pragma GCC unroll 12
    for (int i = 0; i < MT * NR; i++)
        acc[i] = _mm256_setzero_ps();
    for (int d = 0; d < hd; d++) {
        const float *q = qt + (size_t)d * ld;
        __m256 qv[2];
#pragma GCC unroll 2
        for (int j = 0; j < NR; j++)
            qv[j] = _mm256_loadu_ps(q + 8 * j);
#pragma GCC unroll 12
        for (int i = 0; i < MT; i++) {
            const __m256 kb = _mm256_broadcast_ss(k + (size_t)i * ldk + (size_t)d);
#pragma GCC unroll 2
            for (int j = 0; j < NR; j++)
                acc[i * NR + j] = _mm256_fmadd_ps(qv[j], kb, acc[i * NR + j]);
        }
    }
#pragma GCC unroll 12
    for (int i = 0; i < MT; i++)
#pragma GCC unroll 2
        for (int j = 0; j < NR; j++)
            _mm256_storeu_ps(st + (size_t)i * ld + 8 * j, acc[i * NR + j]);
}

AI void qk_rows(float *st, const float *qt, size_t ld, const float *k, size_t ldk, int n_keys,
                int hd, int MT, int NR) {
    int t = 0;
    for (; t + MT <= n_keys; t += MT)
        qk_tile(st + (size_t)t * ld, qt, ld, k + (size_t)t * ldk, ldk, hd, MT, NR);
    for (; t < n_keys; t++)
        qk_tile(st + (size_t)t * ld, qt, ld, k + (size_t)t * ldk, ldk, hd, 1, NR);
}

void ik_attn_qk_avx2(float *st, const float *qt, size_t ld, const float *k, size_t ldk, int n_keys,
                     int n_rows, int hd) {
    const int nv = (n_rows + 7) / 8;
    int j = 0;
    for (; j + 2 <= nv; j += 2)
        qk_rows(st + 8 * j, qt + 8 * j, ld, k, ldk, n_keys, hd, 6, 2);
    if (j < nv)
        qk_rows(st + 8 * j, qt + 8 * j, ld, k, ldk, n_keys, hd, 12, 1);
}

/* ---- weighted sums: acc[r][d] = acc[r][d] c[r] + sum_t p[r][t] v[t][d] --------------------- */

AI __m256 ld8m(const float *p, __m256i m, int full) {
    return full ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, m);
}

/* MR rows x NV vectors of 8 columns (the last one masked by ml unless full); MR, NV, full
 * constants. As the AVX-512 pv_tile: a row never adds a key past its own count. */
AI void pv_tile(float *acc, size_t ldacc, const float *c, const float *st, size_t ld,
                const float *v, size_t ldv, const int *n, __m256i ml, int full, int MR, int NV) {
    __m256 a[12];
    int t_all = n[0], t_any = n[0];
#pragma GCC unroll 6
    for (int i = 0; i < MR; i++) {
        t_all = n[i] < t_all ? n[i] : t_all;
        t_any = n[i] > t_any ? n[i] : t_any;
        const __m256 ci = _mm256_set1_ps(c[i]);
#pragma GCC unroll 2
        for (int j = 0; j < NV; j++)
            a[i * NV + j] =
                _mm256_mul_ps(ld8m(acc + i * ldacc + 8 * j, ml, full || j < NV - 1), ci);
    }
    for (int t = 0; t < t_all; t++) {
        const float *vt = v + (size_t)t * ldv, *p = st + (size_t)t * ld;
        __m256 vv[2];
#pragma GCC unroll 2
        for (int j = 0; j < NV; j++)
            vv[j] = ld8m(vt + 8 * j, ml, full || j < NV - 1);
#pragma GCC unroll 6
        for (int i = 0; i < MR; i++) {
            const __m256 pb = _mm256_broadcast_ss(p + i);
#pragma GCC unroll 2
            for (int j = 0; j < NV; j++)
                a[i * NV + j] = _mm256_fmadd_ps(pb, vv[j], a[i * NV + j]);
        }
    }
    for (int t = t_all; t < t_any; t++) {
        const float *vt = v + (size_t)t * ldv, *p = st + (size_t)t * ld;
        __m256 vv[2];
#pragma GCC unroll 2
        for (int j = 0; j < NV; j++)
            vv[j] = ld8m(vt + 8 * j, ml, full || j < NV - 1);
#pragma GCC unroll 6
        for (int i = 0; i < MR; i++) {
            const __m256 on = _mm256_castsi256_ps(_mm256_set1_epi32(t < n[i] ? -1 : 0));
            const __m256 pb = _mm256_broadcast_ss(p + i);
#pragma GCC unroll 2
            for (int j = 0; j < NV; j++)
                a[i * NV + j] =
                    _mm256_blendv_ps(a[i * NV + j], _mm256_fmadd_ps(pb, vv[j], a[i * NV + j]), on);
        }
    }
#pragma GCC unroll 6
    for (int i = 0; i < MR; i++)
#pragma GCC unroll 2
        for (int j = 0; j < NV; j++) {
            float *dst = acc + i * ldacc + 8 * j;
            if (full || j < NV - 1)
                _mm256_storeu_ps(dst, a[i * NV + j]);
            else
                _mm256_maskstore_ps(dst, ml, a[i * NV + j]);
        }
}

/* MR rows, all hd columns: blocks of 16, then the last 1 to 15 (masked) */
AI void pv_rows(float *acc, size_t ldacc, const float *c, const float *st, size_t ld,
                const float *v, size_t ldv, const int *n, int hd, int MR) {
    const __m256i none = _mm256_setzero_si256();
    int d = 0;
    for (; d + 16 <= hd; d += 16)
        pv_tile(acc + d, ldacc, c, st, ld, v + d, ldv, n, none, 1, MR, 2);
    if (d == hd)
        return;
    const int rest = hd - d, nv = (rest + 7) / 8, last = rest - 8 * (nv - 1);
    const __m256i ml =
        _mm256_cmpgt_epi32(_mm256_set1_epi32(last), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    if (nv == 1)
        pv_tile(acc + d, ldacc, c, st, ld, v + d, ldv, n, ml, 0, MR, 1);
    else
        pv_tile(acc + d, ldacc, c, st, ld, v + d, ldv, n, ml, 0, MR, 2);
}

void ik_attn_pv_avx2(float *acc, size_t ldacc, const float *c, const float *st, size_t ld,
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
