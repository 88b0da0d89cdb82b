/* infer_kernels_internal.h - the per-ISA kernel tables behind infer_kernels.h, and the scalar
 * element conversions every implementation shares for its definition of a result.
 *
 * infer_kernels.c holds the scalar kernels and the dispatch; infer_kernels_avx2.c and
 * infer_kernels_avx512.c are compiled with their own -m flags (infer/CMakeLists.txt) and only
 * called after ik_init() has seen the CPU report those features. */
#ifndef LONGCTX_INFER_KERNELS_INTERNAL_H
#define LONGCTX_INFER_KERNELS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* One matvec per weight dtype, w already offset to the first row: y[r] = sum_c w[r][c] x[c]
 * for r in [0, n_rows). */
typedef void (*ik_matvec_fn)(float *y, const float *x, const void *w, size_t cols, size_t n_rows);

/* Weight pointers are `const void *` and may have any byte alignment (a tensor in a mapped
 * file); float pointers are float-aligned. n, cols and n_rows are > 0: the public wrappers
 * return early on empty calls. */
typedef struct {
    int isa;                /* ik_isa */
    ik_matvec_fn matvec[3]; /* by INFER_DT_* */
    void (*bf16_to_f32)(float *dst, const void *src, size_t n);
    void (*f16_to_f32)(float *dst, const void *src, size_t n);
    void (*f32_to_bf16)(uint16_t *dst, const float *src, size_t n);
    float (*dot)(const float *a, const float *b, size_t n);
    void (*axpy)(float *y, float a, const float *x, size_t n);
    void (*scale)(float *y, float a, size_t n);
    /* prefill attention (infer_kernels_attn*.c); n_keys, n_rows, hd > 0 */
    void (*attn_qk)(float *st, const float *qt, size_t ld, const float *k, size_t ldk, int n_keys,
                    int n_rows, int hd);
    void (*attn_pv)(float *acc, size_t ldacc, const float *c, const float *st, size_t ld,
                    const float *v, size_t ldv, const int *n, int n_rows, int hd);
} ik_ops;

void ik_attn_qk_scalar(float *st, const float *qt, size_t ld, const float *k, size_t ldk,
                       int n_keys, int n_rows, int hd);
void ik_attn_pv_scalar(float *acc, size_t ldacc, const float *c, const float *st, size_t ld,
                       const float *v, size_t ldv, const int *n, int n_rows, int hd);

extern const ik_ops ik_ops_scalar;
#ifdef LONGCTX_IK_X86
extern const ik_ops ik_ops_avx2;       /* AVX2 + FMA + F16C */
extern const ik_ops ik_ops_avx512;     /* AVX-512 F + BW + VL (+ FMA, F16C) */
extern const ik_ops ik_ops_avx512bf16; /* the above + AVX512_BF16 */
/* the avx2 16-bit matvecs, which the avx512 sets use too (infer_kernels_avx512.c says why) */
void ik_matvec_bf16_avx2(float *y, const float *x, const void *w, size_t cols, size_t n_rows);
void ik_matvec_f16_avx2(float *y, const float *x, const void *w, size_t cols, size_t n_rows);
void ik_attn_qk_avx2(float *st, const float *qt, size_t ld, const float *k, size_t ldk, int n_keys,
                     int n_rows, int hd);
void ik_attn_pv_avx2(float *acc, size_t ldacc, const float *c, const float *st, size_t ld,
                     const float *v, size_t ldv, const int *n, int n_rows, int hd);
void ik_attn_qk_avx512(float *st, const float *qt, size_t ld, const float *k, size_t ldk,
                       int n_keys, int n_rows, int hd);
void ik_attn_pv_avx512(float *acc, size_t ldacc, const float *c, const float *st, size_t ld,
                       const float *v, size_t ldv, const int *n, int n_rows, int hd);
/* infer_gemm.c, behind ik_gemm and ik_gemm_bf16 */
void ik_gemm_avx512(float *y, size_t ldy, const float *x, size_t ldx, const void *w, int dtype,
                    size_t cols, size_t n, size_t m);
void ik_gemm_bf16_avx512bf16(float *y, size_t ldy, const uint16_t *x, size_t ldx, const void *w,
                             size_t cols, size_t n, size_t m);
#endif

/* ---- the element conversions that define every implementation's results ---------------- */

static inline float ik_bf16_to_f32_1(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* f16 -> f32, exact. A NaN keeps its sign and payload and comes out quiet (bit 22 set), as
 * F16C's vcvtph2ps produces it, so that every ISA gives the same bits. */
static inline float ik_f16_to_f32_1(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 31, man = h & 1023, u;
    if (exp == 0) {
        if (man == 0) {
            u = sign;
        } else { /* subnormal: normalise */
            exp = 127 - 15 + 1;
            while (!(man & 1024)) {
                man <<= 1;
                exp--;
            }
            u = sign | (exp << 23) | ((man & 1023) << 13);
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000u | (man << 13) | (man ? 0x00400000u : 0);
    } else {
        u = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* f32 -> bf16, round to nearest, ties to even, by integer arithmetic on the bits. A NaN is
 * truncated and made quiet (bit 6 set), so it cannot turn into an infinity; this is
 * vcvtneps2bf16's definition too, except that the instruction flushes f32 subnormals to ±0 -
 * the avx512bf16 kernel corrects those lanes so that all ISAs agree bit for bit. */
static inline uint16_t ik_f32_to_bf16_1(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1)) >> 16);
}

#endif
