/* infer_kernels_internal.h - the per-ISA kernel tables behind infer_kernels.h and the
 * exponentials of infer_internal.h, and the scalar element operations every implementation
 * shares for its definition of a result.
 *
 * This table is the one SIMD dispatch of infer/: ik_init() picks a set once (CPU features or
 * LONGCTX_ISA) and every kernel entry point calls through ik_ops_now(). infer_kernels.c and
 * infer_exp.c hold the scalar kernels; infer_kernels_avx2.c and infer_kernels_avx512.c (with
 * their _attn_ companions, and infer_gemm_avx2.c and infer_gemm.c) are compiled with their own -m
 * flags (infer/CMakeLists.txt), only on x86-64 and only with -DLONGCTX_SIMD=ON, and only called
 * after ik_init() has seen the CPU report those features. Nothing outside those files includes
 * <immintrin.h>. */
#ifndef LONGCTX_INFER_KERNELS_INTERNAL_H
#define LONGCTX_INFER_KERNELS_INTERNAL_H

#include <math.h>
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
    /* prefill's product behind ik_gemm (infer_gemm*.c); NULL on the scalar set, whose callers
     * use sgemm. n, m > 0 */
    void (*gemm)(float *y, size_t ldy, const float *x, size_t ldx, const void *w, int dtype,
                 size_t cols, size_t n, size_t m);
    /* prefill attention (infer_kernels_attn*.c); n_keys, n_rows, hd > 0 */
    void (*attn_qk)(float *st, const float *qt, size_t ld, const float *k, size_t ldk, int n_keys,
                    int n_rows, int hd);
    void (*attn_pv)(float *acc, size_t ldacc, const float *c, const float *st, size_t ld,
                    const float *v, size_t ldv, const int *n, int n_rows, int hd);
    /* the exponentials and decode attention of infer_internal.h (infer_exp.c); n >= 0 */
    float (*exp_sum)(float *x, int n, float m);
    float (*max)(const float *x, int n);
    void (*silu_mul)(float *g, const float *u, size_t n);
    void (*attn_scores)(float *s, const float *q, const float *k, size_t ldk, int n, int hd);
    void (*attn_wsum)(float *acc, const float *p, const float *v, size_t ldv, int n, int hd);
    void (*attn_softmax)(float *st, size_t ld, int n_keys, const int *n, float *m, float *l,
                         float *c, int n_rows);
} ik_ops;

/*! ik_ops_now() : the set ik_init() chose (scalar until the first call); never NULL. */
const ik_ops *ik_ops_now(void);

void ik_attn_qk_scalar(float *st, const float *qt, size_t ld, const float *k, size_t ldk,
                       int n_keys, int n_rows, int hd);
void ik_attn_pv_scalar(float *acc, size_t ldacc, const float *c, const float *st, size_t ld,
                       const float *v, size_t ldv, const int *n, int n_rows, int hd);
/* infer_exp.c: the scalar exponentials, also the avx2 set's max and decode attention */
float ik_exp_sum_scalar(float *x, int n, float m);
float ik_max_scalar(const float *x, int n);
void ik_silu_mul_scalar(float *g, const float *u, size_t n);
void ik_attn_scores_scalar(float *s, const float *q, const float *k, size_t ldk, int n, int hd);
void ik_attn_wsum_scalar(float *acc, const float *p, const float *v, size_t ldv, int n, int hd);
void ik_attn_softmax_scalar(float *st, size_t ld, int n_keys, const int *n, float *m, float *l,
                            float *c, int n_rows);

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
/* infer_gemm_avx2.c and infer_gemm.c, behind ik_gemm and ik_gemm_bf16 */
void ik_gemm_avx2(float *y, size_t ldy, const float *x, size_t ldx, const void *w, int dtype,
                  size_t cols, size_t n, size_t m);
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

/* ---- exp: one fixed sequence of operations on every ISA ---------------------------------- */
/* Cephes' expf polynomial (about 1 ulp), fused multiply-adds in a fixed order; the vector
 * version is ik_vec_exp in infer_kernels_exp_body.h. */

#define IK_EXP_LO (-87.0f) /* inputs are clamped: 2^n stays normal */
#define IK_EXP_HI 88.0f
#define IK_LOG2E  1.44269504088896341f
#define IK_LN2_HI 0.693359375f
#define IK_LN2_LO (-2.12194440e-4f)
#define IK_EXP_P0 1.9875691500e-4f
#define IK_EXP_P1 1.3981999507e-3f
#define IK_EXP_P2 8.3334519073e-3f
#define IK_EXP_P3 4.1665795894e-2f
#define IK_EXP_P4 1.6666665459e-1f
#define IK_EXP_P5 5.0000001201e-1f

static inline float ik_exp_1(float x) {
    if (x != x) /* NaN stays NaN: (int)n below would be undefined */
        return x;
    x = x < IK_EXP_LO ? IK_EXP_LO : x > IK_EXP_HI ? IK_EXP_HI : x;
    float n = nearbyintf(x * IK_LOG2E);
    float r = fmaf(n, -IK_LN2_HI, x);
    r = fmaf(n, -IK_LN2_LO, r);
    float p = fmaf(IK_EXP_P0, r, IK_EXP_P1);
    p = fmaf(p, r, IK_EXP_P2);
    p = fmaf(p, r, IK_EXP_P3);
    p = fmaf(p, r, IK_EXP_P4);
    p = fmaf(p, r, IK_EXP_P5);
    float y = fmaf(p, r * r, r) + 1.0f;
    return ldexpf(y, (int)n);
}

/* the fixed reduction of 16 lane sums (element i of a sum goes into lane i mod 16) */
static inline float ik_sum16(const float *l) {
    float a[8], b[4];
    for (int i = 0; i < 8; i++)
        a[i] = l[i] + l[i + 8];
    for (int i = 0; i < 4; i++)
        b[i] = a[i] + a[i + 4];
    return (b[0] + b[2]) + (b[1] + b[3]);
}

#endif
