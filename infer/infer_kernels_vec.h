/* infer_kernels_vec.h - the F32_VEC_* layer over one x86 vector width (ggml's GGML_F32_VEC_*),
 * so that a kernel written once in these macros builds for AVX2 and for AVX-512.
 *
 * Include it from a file compiled with that ISA's -m flags (infer/CMakeLists.txt), after
 * defining IK_VEC_AVX2 (8 lanes, __m256, masks as all-ones lanes) or IK_VEC_AVX512 (16 lanes,
 * __m512, masks as __mmask16). Each macro is the one instruction (or the short fixed sequence)
 * the hand-written kernels used, so a kernel's bits do not change by going through them.
 * F32_MASK_* values are lane predicates; only the operations below may combine them.
 *
 * Then, as inline functions: ik_vec_reduce (the ISA's horizontal sum), ik_vec_load_part /
 * ik_vec_store_part (the first n < F32_EPR floats; the other lanes read as +0 and are not
 * written), ik_vec_load_w / _w_part (F32_EPR weights of an INFER_DT_* at any byte address,
 * widened exactly; a constant dtype wherever they are inlined). */
#ifndef LONGCTX_INFER_KERNELS_VEC_H
#define LONGCTX_INFER_KERNELS_VEC_H

#include "infer.h"

#include <assert.h>
#include <immintrin.h>
#include <stddef.h>
#include <string.h>

#if defined(IK_VEC_AVX2) == defined(IK_VEC_AVX512)
#error "define exactly one of IK_VEC_AVX2, IK_VEC_AVX512 before including infer_kernels_vec.h"
#endif

#define IK_VEC_AI static inline __attribute__((always_inline))

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

IK_VEC_AI float ik_vec_reduce(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

IK_VEC_AI __m256i ik_vec_part_mask(size_t n) {
    assert(n < 8);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

IK_VEC_AI __m256 ik_vec_load_part(const float *p, size_t n) {
    return _mm256_maskload_ps(p, ik_vec_part_mask(n));
}

IK_VEC_AI void ik_vec_store_part(float *p, size_t n, __m256 v) {
    _mm256_maskstore_ps(p, ik_vec_part_mask(n), v);
}

IK_VEC_AI __m256 ik_vec_load_w(const unsigned char *p, int dtype) {
    if (dtype == INFER_DT_F32)
        return _mm256_loadu_ps((const float *)p);
    const __m128i h = _mm_loadu_si128((const __m128i *)p);
    if (dtype == INFER_DT_BF16)
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    return _mm256_cvtph_ps(h);
}

/* AVX2 has no 16-bit masked load: a zero-padded copy, then the same conversion */
IK_VEC_AI __m256 ik_vec_load_w_part(const unsigned char *p, size_t n, int dtype) {
    assert(n < 8);
    unsigned char t[32] = {0};
    memcpy(t, p, n * (dtype == INFER_DT_F32 ? 4 : 2));
    return ik_vec_load_w(t, dtype);
}

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

IK_VEC_AI float ik_vec_reduce(__m512 v) {
    return _mm512_reduce_add_ps(v);
}

IK_VEC_AI __mmask16 ik_vec_part_mask(size_t n) {
    assert(n < 16);
    return (__mmask16)((1u << n) - 1);
}

IK_VEC_AI __m512 ik_vec_load_part(const float *p, size_t n) {
    return _mm512_maskz_loadu_ps(ik_vec_part_mask(n), p);
}

IK_VEC_AI void ik_vec_store_part(float *p, size_t n, __m512 v) {
    _mm512_mask_storeu_ps(p, ik_vec_part_mask(n), v);
}

IK_VEC_AI __m512 ik_vec_widen_bf16(__m256i h) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

IK_VEC_AI __m512 ik_vec_load_w(const unsigned char *p, int dtype) {
    if (dtype == INFER_DT_F32)
        return _mm512_loadu_ps(p);
    const __m256i h = _mm256_loadu_si256((const __m256i *)p);
    return dtype == INFER_DT_BF16 ? ik_vec_widen_bf16(h) : _mm512_cvtph_ps(h);
}

IK_VEC_AI __m512 ik_vec_load_w_part(const unsigned char *p, size_t n, int dtype) {
    const __mmask16 m = ik_vec_part_mask(n);
    if (dtype == INFER_DT_F32)
        return _mm512_maskz_loadu_ps(m, p);
    const __m256i h = _mm256_maskz_loadu_epi16(m, p);
    return dtype == INFER_DT_BF16 ? ik_vec_widen_bf16(h) : _mm512_cvtph_ps(h);
}

#endif

#endif
