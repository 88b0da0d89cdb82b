/* infer_kernels_attn.c - the scalar prefill attention kernels (ik_attn_qk, ik_attn_pv of
 * infer_kernels.h): the reference for infer_kernels_attn_avx2.c / _avx512.c and the fallback
 * for CPUs without AVX2 and for other architectures.
 *
 * Each element is one chain of multiply-adds in a fixed order (d for a score, t for an
 * accumulator), as in the SIMD kernels; here each step rounds twice, a product and then a sum,
 * written as two statements so that no compiler fuses them (glibc's fmaf is software without
 * FMA hardware). Blocks of 16 rows (scores) or 16 columns (sums) in fixed-size loops over
 * independent elements, which compilers vectorise even at -O2 without changing a bit, and two
 * keys or two rows per pass, so that each load feeds two chains.
 *
 * bench_attn 32768 keys, hd 64, group 2, f32 cache, 1 thread, Release build, three runs: qk
 * alone 12.7-13.2 -> 34.3-38.4 GFLOP/s, pv 11.2-12.3 -> 24.4-26.1 (one key or row per pass,
 * loops over all rows or columns); a whole tile 5.1-5.5 -> 6.9-7.4, still under main's path
 * under the scalar set (7.7-7.9: OpenBLAS's sgemm, SIMD inside, did the products). The scalar
 * softmax is most of the rest: its exp calls fmaf, nearbyintf and ldexpf to stay bit-identical
 * to the SIMD sets. In a RelWithDebInfo (-O2) build: qk 16.6-17.5, pv 14.9-16.1. */
#include "infer_kernels.h"
#include "infer_kernels_internal.h"

#include <string.h>

enum { BLK = 16 };

/* keys t and t + 1 (two = 1) or t alone, lanes [r0, r0 + BLK) */
static void qk_block(float *st, const float *qt, size_t ld, const float *k, size_t ldk, int hd,
                     int two) {
    float a0[BLK], a1[BLK];
    memset(a0, 0, sizeof a0);
    memset(a1, 0, sizeof a1);
    for (int d = 0; d < hd; d++) {
        const float *q = qt + (size_t)d * ld, k0 = k[d], k1 = two ? k[ldk + (size_t)d] : 0.0f;
        for (int j = 0; j < BLK; j++) {
            const float p0 = q[j] * k0, p1 = q[j] * k1;
            a0[j] += p0;
            a1[j] += p1;
        }
    }
    memcpy(st, a0, sizeof a0);
    if (two)
        memcpy(st + ld, a1, sizeof a1);
}

void ik_attn_qk_scalar(float *st, const float *qt, size_t ld, const float *k, size_t ldk,
                       int n_keys, int n_rows, int hd) {
    for (int t = 0; t < n_keys; t += 2) /* lanes up to round_up(n_rows, IK_LANES): allowed */
        for (int r0 = 0; r0 < n_rows; r0 += BLK)
            qk_block(st + (size_t)t * ld + (size_t)r0, qt + r0, ld, k + (size_t)t * ldk, ldk, hd,
                     t + 1 < n_keys);
}

/* rows r and r + 1 (two = 1) or r alone, columns [d0, d0 + BLK) */
static void pv_block(float *acc, size_t ldacc, const float *c, const float *st, size_t ld,
                     const float *v, size_t ldv, const int *n, int two) {
    float a0[BLK], a1[BLK];
    const int n0 = n[0], n1 = two ? n[1] : 0, both = n0 < n1 ? n0 : n1;
    for (int j = 0; j < BLK; j++) {
        a0[j] = acc[j] * c[0];
        a1[j] = two ? acc[ldacc + (size_t)j] * c[1] : 0.0f;
    }
    int t = 0;
    for (; t < both; t++) {
        const float p0 = st[(size_t)t * ld], p1 = st[(size_t)t * ld + 1], *vt = v + (size_t)t * ldv;
        for (int j = 0; j < BLK; j++) {
            const float m0 = p0 * vt[j], m1 = p1 * vt[j];
            a0[j] += m0;
            a1[j] += m1;
        }
    }
    for (int t0 = t; t0 < n0; t0++) {
        const float p0 = st[(size_t)t0 * ld], *vt = v + (size_t)t0 * ldv;
        for (int j = 0; j < BLK; j++) {
            const float m0 = p0 * vt[j];
            a0[j] += m0;
        }
    }
    for (int t1 = t; t1 < n1; t1++) {
        const float p1 = st[(size_t)t1 * ld + 1], *vt = v + (size_t)t1 * ldv;
        for (int j = 0; j < BLK; j++) {
            const float m1 = p1 * vt[j];
            a1[j] += m1;
        }
    }
    memcpy(acc, a0, sizeof a0);
    if (two)
        memcpy(acc + ldacc, a1, sizeof a1);
}

/* one row, columns [d0, d1): the columns past the last whole block */
static void pv_tail(float *a, float c, const float *st, size_t ld, const float *v, size_t ldv,
                    int n, int d0, int d1) {
    for (int d = d0; d < d1; d++)
        a[d] *= c;
    for (int t = 0; t < n; t++) {
        const float p = st[(size_t)t * ld], *vt = v + (size_t)t * ldv;
        for (int d = d0; d < d1; d++) {
            const float m = p * vt[d];
            a[d] += m;
        }
    }
}

void ik_attn_pv_scalar(float *acc, size_t ldacc, const float *c, const float *st, size_t ld,
                       const float *v, size_t ldv, const int *n, int n_rows, int hd) {
    const int whole = hd / BLK * BLK;
    for (int r = 0; r < n_rows; r += 2) {
        const int two = r + 1 < n_rows;
        float *a = acc + (size_t)r * ldacc;
        for (int d = 0; d < whole; d += BLK)
            pv_block(a + d, ldacc, c + r, st + r, ld, v + d, ldv, n + r, two);
        for (int i = 0; i <= two && whole < hd; i++)
            pv_tail(a + (size_t)i * ldacc, c[r + i], st + r + i, ld, v, ldv, n[r + i], whole, hd);
    }
}
