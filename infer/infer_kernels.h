/* infer_kernels.h - the forward pass's hand-written SIMD kernels, internal to infer/.
 *
 * One implementation per instruction set (scalar, AVX2+FMA+F16C, AVX-512F/BW/VL, AVX-512 with
 * AVX512_BF16), each compiled for its ISA (per-file -m flags, infer/CMakeLists.txt) into the
 * portable binary and picked at run time from what the CPU reports (__builtin_cpu_supports).
 * LONGCTX_ISA=scalar|avx2|avx512| avx512bf16 forces one (a request the CPU cannot run is refused,
 * never executed). avx512bf16 differs from avx512 only in ik_f32_to_bf16 (vcvtneps2bf16); no kernel
 * rounds x to bf16. A build with -DLONGCTX_SIMD=OFF, and any non-x86-64 build, holds the scalar
 * set only: there every other name is refused as a set this CPU lacks.
 *
 * Weights stay in their stored dtype (INFER_DT_F32, _BF16, _F16 of infer.h); activations are
 * float32. Every kernel accepts unaligned pointers (weights, `const void *`, at any byte
 * address; float and uint16_t pointers at least element-aligned) and any length, 0 included.
 * Conversions and ik_scale give the same bits on every ISA; ik_axpy and the attention kernels
 * round once per step (FMA) on the SIMD sets and twice on scalar; matvec and dot differ between
 * ISAs in summation order, within n * 2^-24 * sum |a_i b_i|.
 *
 * ik_init() may run while other threads call kernels: each call runs wholly on one set. */
#ifndef LONGCTX_INFER_KERNELS_H
#define LONGCTX_INFER_KERNELS_H

#include <stddef.h>
#include <stdint.h>

typedef enum { IK_SCALAR = 0, IK_AVX2 = 1, IK_AVX512 = 2, IK_AVX512BF16 = 3 } ik_isa;

/*! ik_init() :
 *  Picks the best instruction set this CPU supports, or `force` (a name as above; NULL: the
 *  LONGCTX_ISA environment variable, if set; "" or an empty variable: the best). Call once
 *  before the other kernels (later calls re-pick; until the first, the kernels run scalar).
 *  @return the chosen ik_isa, or -1 if `force` names an unknown set or one this CPU lacks (the
 *  previous choice is kept). */
int ik_init(const char *force);
const char *ik_isa_name(int isa); /* "scalar", "avx2", "avx512", "avx512bf16" */
int ik_isa_current(void);

/* y[r - row0] = sum_c w[r][c] * x[c] for rows r in [row0, row1) of the row-major matrix w
 * (cols elements per row, dtype INFER_DT_*). Decode's matrix-vector product; callers split the
 * row range over threads. */
void ik_matvec(float *y, const float *x, const void *w, int dtype, size_t cols, size_t row0,
               size_t row1);

/* dst[i] = (float)src[i]: exact for every dtype (bf16 and f16 widen without rounding). A bf16
 * NaN keeps all its bits (a shift); an f16 NaN keeps sign and payload and comes out quiet, as
 * vcvtph2ps makes it. */
void ik_to_f32(float *dst, const void *src, int dtype, size_t n);

/* dst[i] = bf16(src[i]) rounded to nearest, ties to even (overflow to ±inf, f32 subnormals
 * rounded like any other value, not flushed); NaN stays NaN (truncated, quiet bit 0x40 set,
 * sign kept), infinities stay. */
void ik_f32_to_bf16(uint16_t *dst, const float *src, size_t n);

/*! ik_gemm() :
 *  y[t * ldy + r] = sum_c x[t][c] w[r][c] for t < n, r < m: x f32 (rows ldx elements apart),
 *  w row-major in dtype INFER_DT_* (cols per row, any byte alignment), widened exactly and
 *  multiplied in f32. AVX2 and AVX-512 sets (infer_gemm_avx2.c, infer_gemm.c). An element's
 *  bits do not depend on n, m, its place or the thread (one dot product in a fixed order); they
 *  differ between the avx2 set (8 lane sums) and the avx512 sets (16). @return 0, or -1 on the
 *  scalar set (nothing written; callers use sgemm). */
int ik_gemm(float *y, size_t ldy, const float *x, size_t ldx, const void *w, int dtype, size_t cols,
            size_t n, size_t m);

/*! ik_gemm_bf16() :
 *  The same with x in bf16 and w bf16: AVX512_BF16's vdpbf16ps (exact products summed in f32,
 *  subnormals flushed). @return 0, or -1 when the current set is not avx512bf16. */
int ik_gemm_bf16(float *y, size_t ldy, const uint16_t *x, size_t ldx, const void *w, size_t cols,
                 size_t n, size_t m);

float ik_dot(const float *a, const float *b, size_t n);    /* sum a[i] b[i] */
void ik_axpy(float *y, float a, const float *x, size_t n); /* y += a x */
void ik_scale(float *y, float a, size_t n);                /* y *= a */

/* ---- prefill attention over one tile of keys (infer_forward.c, attn_segment) ---------------
 * The query rows are the lanes of transposed arrays whose row stride ld is a multiple of
 * IK_LANES: qt (hd, ld) holds the scaled queries, q[r][d] at qt[d * ld + r], and st
 * (n_keys, ld) the scores, then the probabilities, p[r][t] at st[t * ld + r]. A kernel may read
 * and write every lane below round_up(n_rows, IK_LANES): the caller zeroes those padding lanes
 * of qt and ignores them in st.
 *
 * Every element is computed by one fixed sequence of operations, whatever n_rows, the lane a
 * row sits in, n_keys and the other rows' key counts. So a query's result does not depend on
 * how queries are grouped into calls (--prefill-chunk, --threads). The SIMD sets fuse each
 * multiply-add and give the same bits as each other; scalar rounds twice. */
#define IK_LANES 16

/* st[t][r] = sum over d = 0, 1, ..., hd - 1, in that order, of q[r][d] * k[t][d], from 0, for
 * t < n_keys and r < n_rows; k is (n_keys, ldk). */
void ik_attn_qk(float *st, const float *qt, size_t ld, const float *k, size_t ldk, int n_keys,
                int n_rows, int hd);

/* For r < n_rows: acc[r][d] *= c[r], then acc[r][d] += p[r][t] * v[t][d] for t = 0, 1, ...,
 * n[r] - 1 in that order (keys at t >= n[r] are not touched, not even as 0 * v); acc is
 * (n_rows, ldacc), v is (max n, ldv), d < hd. */
void ik_attn_pv(float *acc, size_t ldacc, const float *c, const float *st, size_t ld,
                const float *v, size_t ldv, const int *n, int n_rows, int hd);

#endif
