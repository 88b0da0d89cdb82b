/* infer_kernels.c - run-time choice of the kernel set (the one SIMD dispatch of infer/, for
 * infer_exp.c's kernels too), the public entry points, and the scalar kernels (the reference
 * for the SIMD ones and the fallback for CPUs without AVX2 and for non-x86 builds).
 *
 * The SIMD sets live in infer_kernels_avx2.c and infer_kernels_avx512.c, each compiled with
 * its own -m flags rather than __attribute__((target)) on every function: gcc and clang then
 * agree on what the static helpers inside may use, and nothing in those files runs before
 * ik_init() has asked the CPU. */
#include "infer_kernels.h"
#include "infer_kernels_internal.h"

#include "infer.h"

#include <assert.h>
#ifdef LONGCTX_IK_X86
#include <cpuid.h>
#endif
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* ---- scalar kernels ---------------------------------------------------------------------- */

static inline float ld_f32(const unsigned char *p, size_t i) {
    float f;
    memcpy(&f, p + 4 * i, 4);
    return f;
}

static inline float ld_bf16(const unsigned char *p, size_t i) {
    uint16_t h;
    memcpy(&h, p + 2 * i, 2);
    return ik_bf16_to_f32_1(h);
}

static inline float ld_f16(const unsigned char *p, size_t i) {
    uint16_t h;
    memcpy(&h, p + 2 * i, 2);
    return ik_f16_to_f32_1(h);
}

static inline __attribute__((always_inline)) float ld(const unsigned char *p, size_t i, int dtype) {
    return dtype == INFER_DT_F32    ? ld_f32(p, i)
           : dtype == INFER_DT_BF16 ? ld_bf16(p, i)
                                    : ld_f16(p, i);
}

/* Eight rows per pass: each x[c] is loaded once for eight independent sums (one sum is a
 * chain of dependent adds).
 * scalar matvec, 8192x4096, 1 thread (bench_kernels): f32 18.7 GB/s, bf16 6.2, f16 1.8 (4 rows
 * per pass: 13.5 / 4.1 / 1.0). */
static inline __attribute__((always_inline)) void
matvec_scalar(float *y, const float *x, const void *wv, size_t cols, size_t n_rows, int dtype) {
    const unsigned char *w = wv;
    const size_t row_bytes = cols * (dtype == INFER_DT_F32 ? 4 : 2);
    size_t r = 0;
    for (; r + 8 <= n_rows; r += 8) {
        const unsigned char *w0 = w + r * row_bytes;
        float s[8] = {0};
        for (size_t c = 0; c < cols; c++) {
            const float xc = x[c];
#pragma GCC unroll 8
            for (int i = 0; i < 8; i++)
                s[i] += ld(w0 + i * row_bytes, c, dtype) * xc;
        }
        for (int i = 0; i < 8; i++)
            y[r + i] = s[i];
    }
    for (; r < n_rows; r++) {
        const unsigned char *w0 = w + r * row_bytes;
        float s = 0;
        for (size_t c = 0; c < cols; c++)
            s += ld(w0, c, dtype) * x[c];
        y[r] = s;
    }
}

static void matvec_f32_scalar(float *y, const float *x, const void *w, size_t cols, size_t n_rows) {
    matvec_scalar(y, x, w, cols, n_rows, INFER_DT_F32);
}

static void matvec_bf16_scalar(float *y, const float *x, const void *w, size_t cols,
                               size_t n_rows) {
    matvec_scalar(y, x, w, cols, n_rows, INFER_DT_BF16);
}

static void matvec_f16_scalar(float *y, const float *x, const void *w, size_t cols, size_t n_rows) {
    matvec_scalar(y, x, w, cols, n_rows, INFER_DT_F16);
}

static void bf16_to_f32_scalar(float *dst, const void *src, size_t n) {
    for (size_t i = 0; i < n; i++)
        dst[i] = ld_bf16(src, i);
}

static void f16_to_f32_scalar(float *dst, const void *src, size_t n) {
    for (size_t i = 0; i < n; i++)
        dst[i] = ld_f16(src, i);
}

static void f32_to_bf16_scalar(uint16_t *dst, const float *src, size_t n) {
    for (size_t i = 0; i < n; i++)
        dst[i] = ik_f32_to_bf16_1(src[i]);
}

/* Four partial sums: the same order the SIMD kernels' lanes use is not needed (tests compare
 * against float64 with a tolerance), but one long dependency chain is needlessly slow. */
static float dot_scalar(const float *a, const float *b, size_t n) {
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += a[i] * b[i];
        s1 += a[i + 1] * b[i + 1];
        s2 += a[i + 2] * b[i + 2];
        s3 += a[i + 3] * b[i + 3];
    }
    for (; i < n; i++)
        s0 += a[i] * b[i];
    return (s0 + s1) + (s2 + s3);
}

static void axpy_scalar(float *y, float a, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        y[i] += a * x[i];
}

static void scale_scalar(float *y, float a, size_t n) {
    for (size_t i = 0; i < n; i++)
        y[i] *= a;
}

const ik_ops ik_ops_scalar = {
    .isa = IK_SCALAR,
    .matvec = {matvec_f32_scalar, matvec_bf16_scalar, matvec_f16_scalar},
    .bf16_to_f32 = bf16_to_f32_scalar,
    .f16_to_f32 = f16_to_f32_scalar,
    .f32_to_bf16 = f32_to_bf16_scalar,
    .dot = dot_scalar,
    .axpy = axpy_scalar,
    .scale = scale_scalar,
    .attn_qk = ik_attn_qk_scalar,
    .attn_pv = ik_attn_pv_scalar,
    .exp_sum = ik_exp_sum_scalar,
    .max = ik_max_scalar,
    .silu_mul = ik_silu_mul_scalar,
    .attn_scores = ik_attn_scores_scalar,
    .attn_wsum = ik_attn_wsum_scalar,
    .attn_softmax = ik_attn_softmax_scalar,
};

/* ---- dispatch ---------------------------------------------------------------------------- */

/* The chosen set. Atomic (relaxed: the tables are constant) so that a re-pick while other
 * threads run kernels is not a data race; every kernel loads it once. */
static _Atomic(const ik_ops *) g_ops = &ik_ops_scalar;

static const char *const isa_names[] = {"scalar", "avx2", "avx512", "avx512bf16"};
enum { N_ISA = sizeof isa_names / sizeof isa_names[0] };

#ifdef LONGCTX_IK_X86
/* clang 14's __builtin_cpu_supports has no "f16c": ask CPUID leaf 1 (ECX bit 29). The OS side
 * (YMM state enabled in XCR0) is covered by the "avx2" answer. */
static int cpu_has_f16c(void) {
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
}
#endif

static const ik_ops *isa_ops(int isa) {
#ifdef LONGCTX_IK_X86
    __builtin_cpu_init();
    int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && cpu_has_f16c();
    int avx512 = avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                 __builtin_cpu_supports("avx512vl");
    switch (isa) {
    case IK_AVX2:
        return avx2 ? &ik_ops_avx2 : NULL;
    case IK_AVX512:
        return avx512 ? &ik_ops_avx512 : NULL;
    case IK_AVX512BF16:
        return avx512 && __builtin_cpu_supports("avx512bf16") ? &ik_ops_avx512bf16 : NULL;
    default:
        break;
    }
#endif
    return isa == IK_SCALAR ? &ik_ops_scalar : NULL;
}

int ik_init(const char *force) {
    if (!force)
        force = getenv("LONGCTX_ISA");
    const ik_ops *ops = NULL;
    if (force && *force) {
        for (int i = 0; i < N_ISA; i++)
            if (strcmp(force, isa_names[i]) == 0)
                ops = isa_ops(i);
        if (!ops)
            return -1; /* unknown, or the CPU lacks it: keep the previous choice */
    } else {
        for (int i = N_ISA - 1; !ops; i--)
            ops = isa_ops(i);
    }
    atomic_store_explicit(&g_ops, ops, memory_order_relaxed);
    return ops->isa;
}

const char *ik_isa_name(int isa) {
    return isa >= 0 && isa < N_ISA ? isa_names[isa] : "unknown";
}

int ik_isa_current(void) {
    return atomic_load_explicit(&g_ops, memory_order_relaxed)->isa;
}

const ik_ops *ik_ops_now(void) {
    return atomic_load_explicit(&g_ops, memory_order_relaxed);
}

/* ---- public entry points: argument checks and empty calls, then the chosen kernel -------- */

void ik_matvec(float *y, const float *x, const void *w, int dtype, size_t cols, size_t row0,
               size_t row1) {
    assert(dtype == INFER_DT_F32 || dtype == INFER_DT_BF16 || dtype == INFER_DT_F16);
    assert(row0 <= row1);
    if (row1 <= row0)
        return;
    if (cols == 0) {
        memset(y, 0, (row1 - row0) * sizeof *y);
        return;
    }
    size_t elem_bytes = dtype == INFER_DT_F32 ? 4 : 2;
    ik_ops_now()->matvec[dtype](y, x, (const unsigned char *)w + row0 * cols * elem_bytes, cols,
                                row1 - row0);
}

void ik_to_f32(float *dst, const void *src, int dtype, size_t n) {
    assert(dtype == INFER_DT_F32 || dtype == INFER_DT_BF16 || dtype == INFER_DT_F16);
    if (n == 0)
        return;
    if (dtype == INFER_DT_F32)
        memcpy(dst, src, n * sizeof *dst);
    else if (dtype == INFER_DT_BF16)
        ik_ops_now()->bf16_to_f32(dst, src, n);
    else
        ik_ops_now()->f16_to_f32(dst, src, n);
}

void ik_f32_to_bf16(uint16_t *dst, const float *src, size_t n) {
    if (n)
        ik_ops_now()->f32_to_bf16(dst, src, n);
}

int ik_gemm(float *y, size_t ldy, const float *x, size_t ldx, const void *w, int dtype, size_t cols,
            size_t n, size_t m) {
    assert(dtype == INFER_DT_F32 || dtype == INFER_DT_BF16 || dtype == INFER_DT_F16);
    const ik_ops *ops = ik_ops_now();
    if (!ops->gemm)
        return -1;
    if (n && m)
        ops->gemm(y, ldy, x, ldx, w, dtype, cols, n, m);
    return 0;
}

int ik_gemm_bf16(float *y, size_t ldy, const uint16_t *x, size_t ldx, const void *w, size_t cols,
                 size_t n, size_t m) {
#ifdef LONGCTX_IK_X86
    if (ik_ops_now()->isa == IK_AVX512BF16) {
        if (n && m)
            ik_gemm_bf16_avx512bf16(y, ldy, x, ldx, w, cols, n, m);
        return 0;
    }
#endif
    (void)y, (void)ldy, (void)x, (void)ldx, (void)w, (void)cols, (void)n, (void)m;
    return -1;
}

float ik_dot(const float *a, const float *b, size_t n) {
    return n ? ik_ops_now()->dot(a, b, n) : 0.0f;
}

void ik_axpy(float *y, float a, const float *x, size_t n) {
    if (n)
        ik_ops_now()->axpy(y, a, x, n);
}

void ik_scale(float *y, float a, size_t n) {
    if (n)
        ik_ops_now()->scale(y, a, n);
}

void ik_attn_qk(float *st, const float *qt, size_t ld, const float *k, size_t ldk, int n_keys,
                int n_rows, int hd) {
    assert(ld % IK_LANES == 0 && (size_t)n_rows <= ld);
    if (n_keys > 0 && n_rows > 0 && hd > 0)
        ik_ops_now()->attn_qk(st, qt, ld, k, ldk, n_keys, n_rows, hd);
}

void ik_attn_pv(float *acc, size_t ldacc, const float *c, const float *st, size_t ld,
                const float *v, size_t ldv, const int *n, int n_rows, int hd) {
    assert(ld % IK_LANES == 0 && (size_t)n_rows <= ld);
    if (n_rows > 0 && hd > 0)
        ik_ops_now()->attn_pv(acc, ldacc, c, st, ld, v, ldv, n, n_rows, hd);
}
