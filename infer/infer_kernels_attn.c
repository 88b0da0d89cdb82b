/* infer_kernels_attn.c - the scalar prefill attention kernels (ik_attn_qk, ik_attn_pv of
 * infer_kernels.h): the reference for infer_kernels_attn_avx2.c / _avx512.c and the fallback
 * for CPUs without AVX2.
 *
 * Each element is one chain of multiply-adds in a fixed order (d for a score, t for an
 * accumulator), as in the SIMD kernels; here each step rounds twice (a product, then a sum:
 * without -mfma there is no fused instruction, and glibc's fmaf is emulated in software). The
 * inner loops run over independent elements, so a compiler may vectorise them without changing
 * a bit.
 *
 * Slower than what they replace under LONGCTX_ISA=scalar: main's path used OpenBLAS's sgemm,
 * SIMD inside, for the products (bench_attn 32768 keys, hd 64, group 2: a whole tile 5.1-5.5
 * GFLOP/s against 7.7-8.1; qk alone 12.7-13.2, pv 11.2-12.3; the scalar softmax is most of
 * the rest). Kept plain: it is the reference and the fallback for CPUs without AVX2. */
#include "infer_kernels.h"
#include "infer_kernels_internal.h"

void ik_attn_qk_scalar(float *st, const float *qt, size_t ld, const float *k, size_t ldk,
                       int n_keys, int n_rows, int hd) {
    for (int t = 0; t < n_keys; t++) {
        float *s = st + (size_t)t * ld;
        const float *kt = k + (size_t)t * ldk;
        for (int r = 0; r < n_rows; r++)
            s[r] = 0.0f;
        for (int d = 0; d < hd; d++) {
            const float kd = kt[d], *q = qt + (size_t)d * ld;
            for (int r = 0; r < n_rows; r++)
                s[r] += q[r] * kd;
        }
    }
}

void ik_attn_pv_scalar(float *acc, size_t ldacc, const float *c, const float *st, size_t ld,
                       const float *v, size_t ldv, const int *n, int n_rows, int hd) {
    for (int r = 0; r < n_rows; r++) {
        float *a = acc + (size_t)r * ldacc;
        for (int d = 0; d < hd; d++)
            a[d] *= c[r];
        for (int t = 0; t < n[r]; t++) {
            const float p = st[(size_t)t * ld + (size_t)r], *vt = v + (size_t)t * ldv;
            for (int d = 0; d < hd; d++)
                a[d] += p * vt[d];
        }
    }
}
