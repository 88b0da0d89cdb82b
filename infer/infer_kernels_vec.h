/* infer_kernels_vec.h - the F32_VEC_* layer over one x86 vector width (ggml's GGML_F32_VEC_*),
 * so that a kernel written once in these macros builds for AVX2 and for AVX-512.
 *
 * Include it from a file compiled with that ISA's -m flags (infer/CMakeLists.txt), after
 * defining IK_VEC_AVX2 (8 lanes, __m256, masks as all-ones lanes) or IK_VEC_AVX512 (16 lanes,
 * __m512, masks as __mmask16). Each macro is the one instruction (or the short fixed sequence)
 * the hand-written kernels used, so a kernel's bits do not change by going through them.
 * F32_MASK_* values are lane predicates; only the operations below may combine them. */
#ifndef LONGCTX_INFER_KERNELS_VEC_H
#define LONGCTX_INFER_KERNELS_VEC_H

#include <immintrin.h>

#if defined(IK_VEC_AVX2) == defined(IK_VEC_AVX512)
#error "define exactly one of IK_VEC_AVX2, IK_VEC_AVX512 before including infer_kernels_vec.h"
#endif

#ifdef IK_VEC_AVX2

#define F32_EPR              8 /* floats per register */
#define F32_VEC              __m256
#define I32_VEC              __m256i
#define F32_MASK             __m256
#define F32_VEC_ZERO()       _mm256_setzero_ps()
#define F32_VEC_SET1(x)      _mm256_set1_ps(x)
#define F32_VEC_LOAD(p)      _mm256_loadu_ps(p)
#define F32_VEC_STORE(p, v)  _mm256_storeu_ps(p, v)
#define F32_VEC_ADD(a, b)    _mm256_add_ps(a, b)
#define F32_VEC_SUB(a, b)    _mm256_sub_ps(a, b)
#define F32_VEC_MUL(a, b)    _mm256_mul_ps(a, b)
#define F32_VEC_DIV(a, b)    _mm256_div_ps(a, b)
#define F32_VEC_MIN(a, b)    _mm256_min_ps(a, b)
#define F32_VEC_MAX(a, b)    _mm256_max_ps(a, b)
#define F32_VEC_FMA(a, b, c) _mm256_fmadd_ps(a, b, c) /* a b + c, one rounding */
#define F32_VEC_ROUND(x)     _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
/* y 2^n for integral n in [-126, 127]: the exponent field n + 127, then one multiply */
#define F32_VEC_SCALE2N(y, n)                                                                      \
    _mm256_mul_ps(y, _mm256_castsi256_ps(_mm256_slli_epi32(                                        \
                         _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23)))
#define I32_VEC_LOAD(p)       _mm256_loadu_si256((const __m256i *)(p))
#define I32_VEC_SET1(x)       _mm256_set1_epi32(x)
#define F32_MASK_GT_I32(a, b) _mm256_castsi256_ps(_mm256_cmpgt_epi32(a, b)) /* a > b */
#define F32_MASK_NEQ(a, b)    _mm256_cmp_ps(a, b, _CMP_NEQ_UQ)
#define F32_MASK_AND(a, b)    _mm256_and_ps(a, b)
#define F32_MASK_NONE(k)      (!_mm256_movemask_ps(k)) /* no lane set */
/* lanes in k: max(x, m), the others m */
#define F32_VEC_MAX_MASK(m, x, k) _mm256_blendv_ps(m, _mm256_max_ps(x, m), k)
#define F32_VEC_ZERO_MASK(v, k)   _mm256_and_ps(v, k)       /* lanes not in k: +0 */
#define F32_VEC_BLEND(a, b, k)    _mm256_blendv_ps(a, b, k) /* lanes in k: b, the others a */

#else /* IK_VEC_AVX512 */

#define F32_EPR                   16
#define F32_VEC                   __m512
#define I32_VEC                   __m512i
#define F32_MASK                  __mmask16
#define F32_VEC_ZERO()            _mm512_setzero_ps()
#define F32_VEC_SET1(x)           _mm512_set1_ps(x)
#define F32_VEC_LOAD(p)           _mm512_loadu_ps(p)
#define F32_VEC_STORE(p, v)       _mm512_storeu_ps(p, v)
#define F32_VEC_ADD(a, b)         _mm512_add_ps(a, b)
#define F32_VEC_SUB(a, b)         _mm512_sub_ps(a, b)
#define F32_VEC_MUL(a, b)         _mm512_mul_ps(a, b)
#define F32_VEC_DIV(a, b)         _mm512_div_ps(a, b)
#define F32_VEC_MIN(a, b)         _mm512_min_ps(a, b)
#define F32_VEC_MAX(a, b)         _mm512_max_ps(a, b)
#define F32_VEC_FMA(a, b, c)      _mm512_fmadd_ps(a, b, c)
#define F32_VEC_ROUND(x)          _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define F32_VEC_SCALE2N(y, n)     _mm512_scalef_ps(y, n)
#define I32_VEC_LOAD(p)           _mm512_loadu_si512(p)
#define I32_VEC_SET1(x)           _mm512_set1_epi32(x)
#define F32_MASK_GT_I32(a, b)     _mm512_cmpgt_epi32_mask(a, b)
#define F32_MASK_NEQ(a, b)        _mm512_cmp_ps_mask(a, b, _CMP_NEQ_UQ)
#define F32_MASK_AND(a, b)        ((__mmask16)((a) & (b)))
#define F32_MASK_NONE(k)          ((k) == 0)
#define F32_VEC_MAX_MASK(m, x, k) _mm512_mask_max_ps(m, k, x, m)
#define F32_VEC_ZERO_MASK(v, k)   _mm512_maskz_mov_ps(k, v)
#define F32_VEC_BLEND(a, b, k)    _mm512_mask_blend_ps(k, a, b)

#endif

#endif
