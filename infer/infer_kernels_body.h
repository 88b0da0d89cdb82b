/* infer_kernels_body.h - matvec, the widening conversions, axpy and scale, written once in the
 * F32_VEC_* layer (infer_kernels_vec.h) and included by infer_kernels_avx2.c and
 * infer_kernels_avx512.c, which put these static functions into their ik_ops tables.
 *
 * Tails shorter than a vector go through ik_vec_load_part / _w_part (zero lanes) and the same
 * vector code, so every element is converted by the same instruction whatever its position and
 * a tail adds the same +0 products on both widths. dot and f32 -> bf16 stay written per ISA
 * (infer_kernels_avx2.c, _avx512.c say why). */
#ifndef LONGCTX_INFER_KERNELS_BODY_H
#define LONGCTX_INFER_KERNELS_BODY_H

#include "infer_kernels_internal.h"
#include "infer_kernels_vec.h"

#include "infer.h"

/* Each row's stream is also prefetched into L2 this far ahead (bench_kernels, 1 thread, without
 * -> with: avx512 f32 25-26 -> 29-31 GB/s, avx2 bf16 20-22 -> 22-24). 2 KiB beat 0.5, 1 and
 * 4 KiB; prefetcht0 lost 4-6 GB/s at any distance (scratch runs). A prefetch past the end of w
 * is harmless: it never faults. */
#define PREFETCH_BYTES 2048

/* ---- matvec ------------------------------------------------------------------------------ */

/* Eight rows per pass, F32_EPR columns per step: x is loaded once for eight rows, eight
 * independent FMA chains, and eight concurrent read streams - more streams is what lifts one
 * core's read rate here (1 thread, no prefetch, a scratch harness timed like bench_kernels, not
 * kept: avx512 f32 4 rows x 32 columns 23-24 GB/s, 8 x 16 26-27, 16 x 16 23-24; avx2 f32 4 x 16
 * 22-24, 8 x 8 25-27, bf16 17-19 / 21-22).
 * matvec, 8192x4096, 1 thread (bench_kernels): avx512 f32 30.8 GB/s; avx2 f32 29.7, bf16 23.7,
 * f16 25.7 (scalar 18.7 / 6.2 / 1.8; OpenBLAS sgemv 23.4; read ceiling 32.6). */
IK_VEC_AI void matvec_vec(float *y, const float *x, const void *wv, size_t cols, size_t n_rows,
                          int dtype) {
    const unsigned char *w = wv;
    const size_t esz = dtype == INFER_DT_F32 ? 4 : 2, row_bytes = cols * esz;
    /* rows shorter than 4 KiB: prefetch the same place in the next pass's rows (2 KiB ahead
     * would land in rows this pass already streams: 1024-column bf16 rows read 11.6 GB/s) */
    const size_t ahead = row_bytes > 4096 ? PREFETCH_BYTES : 8 * row_bytes;
    const size_t n1 = cols & ~(size_t)(F32_EPR - 1), n2 = cols & ~(size_t)(2 * F32_EPR - 1);
    const size_t n_tail = cols - n1;
    const F32_VEC xt = ik_vec_load_part(x + n1, n_tail);
    size_t r = 0;
    for (; r + 8 <= n_rows; r += 8) {
        const unsigned char *w0 = w + r * row_bytes;
        F32_VEC acc[8];
        for (int i = 0; i < 8; i++)
            acc[i] = F32_VEC_ZERO();
        for (size_t c = 0; c < n1; c += F32_EPR) {
            const F32_VEC xc = F32_VEC_LOAD(x + c);
#pragma GCC unroll 8
            for (int i = 0; i < 8; i++) {
                const unsigned char *p = w0 + i * row_bytes + c * esz;
                _mm_prefetch((const char *)p + ahead, _MM_HINT_T1);
                acc[i] = F32_VEC_FMA(ik_vec_load_w(p, dtype), xc, acc[i]);
            }
        }
        if (n_tail)
            for (int i = 0; i < 8; i++)
                acc[i] = F32_VEC_FMA(
                    ik_vec_load_w_part(w0 + i * row_bytes + n1 * esz, n_tail, dtype), xt, acc[i]);
        for (int i = 0; i < 8; i++)
            y[r + i] = ik_vec_reduce(acc[i]);
    }
    for (; r < n_rows; r++) { /* the last n_rows % 8 */
        const unsigned char *w0 = w + r * row_bytes;
        F32_VEC a = F32_VEC_ZERO(), b = a;
        for (size_t c = 0; c < n2; c += 2 * F32_EPR) {
            a = F32_VEC_FMA(ik_vec_load_w(w0 + c * esz, dtype), F32_VEC_LOAD(x + c), a);
            b = F32_VEC_FMA(ik_vec_load_w(w0 + (c + F32_EPR) * esz, dtype),
                            F32_VEC_LOAD(x + c + F32_EPR), b);
        }
        if (n1 > n2)
            a = F32_VEC_FMA(ik_vec_load_w(w0 + n2 * esz, dtype), F32_VEC_LOAD(x + n2), a);
        if (n_tail)
            b = F32_VEC_FMA(ik_vec_load_w_part(w0 + n1 * esz, n_tail, dtype), xt, b);
        y[r] = ik_vec_reduce(F32_VEC_ADD(a, b));
    }
}

/* ---- conversions ------------------------------------------------------------------------- */

/* to_f32 (bench_kernels, 64 Ki elements in L2): avx2 bf16 14.6-19.1 G elements/s (it moves with
 * where the buffers land), f16 19.2; avx512 bf16 19.0, f16 19.3 - the same as avx2 on Zen 4,
 * which splits 512-bit operations in two (scalar 3.6 / 0.9). The tail goes through the vector
 * conversion too, so an f16 NaN's quiet bit is the instruction's. */
IK_VEC_AI void to_f32_vec(float *dst, const void *src, size_t n, int dtype) {
    const unsigned char *s = src;
    size_t i = 0;
    for (; i + F32_EPR <= n; i += F32_EPR)
        F32_VEC_STORE(dst + i, ik_vec_load_w(s + 2 * i, dtype));
    if (i < n)
        ik_vec_store_part(dst + i, n - i, ik_vec_load_w_part(s + 2 * i, n - i, dtype));
}

static void bf16_to_f32_vec(float *dst, const void *src, size_t n) {
    to_f32_vec(dst, src, n, INFER_DT_BF16);
}

static void f16_to_f32_vec(float *dst, const void *src, size_t n) {
    to_f32_vec(dst, src, n, INFER_DT_F16);
}

/* ---- level-1 ----------------------------------------------------------------------------- */

/* axpy (bench_kernels, 2 x 2 Ki floats in L1): avx2 24.5 G elements/s, avx512 23.3 (no faster
 * on Zen 4's split 512-bit units), scalar 1.8. Fused everywhere, tail included. */
static void axpy_vec(float *y, float a, const float *x, size_t n) {
    const F32_VEC va = F32_VEC_SET1(a);
    size_t i = 0;
    for (; i + 2 * F32_EPR <= n; i += 2 * F32_EPR) {
        F32_VEC_STORE(y + i, F32_VEC_FMA(va, F32_VEC_LOAD(x + i), F32_VEC_LOAD(y + i)));
        F32_VEC_STORE(y + i + F32_EPR, F32_VEC_FMA(va, F32_VEC_LOAD(x + i + F32_EPR),
                                                   F32_VEC_LOAD(y + i + F32_EPR)));
    }
    for (; i + F32_EPR <= n; i += F32_EPR)
        F32_VEC_STORE(y + i, F32_VEC_FMA(va, F32_VEC_LOAD(x + i), F32_VEC_LOAD(y + i)));
    if (i < n)
        ik_vec_store_part(
            y + i, n - i,
            F32_VEC_FMA(va, ik_vec_load_part(x + i, n - i), ik_vec_load_part(y + i, n - i)));
}

/* scale (bench_kernels, 2 Ki floats in L1): avx2 29.0 G elements/s, avx512 29.1, scalar 3.6 */
static void scale_vec(float *y, float a, size_t n) {
    const F32_VEC va = F32_VEC_SET1(a);
    size_t i = 0;
    for (; i + 2 * F32_EPR <= n; i += 2 * F32_EPR) {
        F32_VEC_STORE(y + i, F32_VEC_MUL(va, F32_VEC_LOAD(y + i)));
        F32_VEC_STORE(y + i + F32_EPR, F32_VEC_MUL(va, F32_VEC_LOAD(y + i + F32_EPR)));
    }
    for (; i + F32_EPR <= n; i += F32_EPR)
        F32_VEC_STORE(y + i, F32_VEC_MUL(va, F32_VEC_LOAD(y + i)));
    if (i < n)
        ik_vec_store_part(y + i, n - i, F32_VEC_MUL(va, ik_vec_load_part(y + i, n - i)));
}

#endif
