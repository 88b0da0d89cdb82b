/* test_kernels.c - every kernel set this CPU can run, against float64 references written here
 * (independent of infer_kernels*.c): matvec for each weight dtype over many shapes, row ranges
 * and misaligned pointers; every bf16 and f16 bit pattern widened; f32 -> bf16 on special
 * values and millions of random ones; dot, axpy, scale; the prefill products (ik_gemm for each
 * weight dtype, ik_gemm_bf16); the exponentials and decode attention of infer_exp.c (the
 * scalar set's bits on every set where infer_internal.h promises them); and the dispatch rules.
 *
 * LONGCTX_TEST_EXHAUSTIVE=1 also compares f32 -> bf16 of every SIMD set with the scalar one over
 * all 2^32 inputs (seconds per set in a release build; not run by ctest). */
#include "check.h"
#include "infer.h"
#include "infer_internal.h"
#include "infer_kernels.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

static const char *const isa_names[] = {"scalar", "avx2", "avx512", "avx512bf16"};

/* ---- helpers ----------------------------------------------------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint64_t rng(void) { /* splitmix64 */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static float frand(void) { /* uniform in [-1, 1) */
    return (float)((double)(rng() >> 40) / (double)(1u << 23) - 1.0);
}

static uint32_t f2u(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float u2f(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* What this test believes the CPU can run, asked independently of ik_init(); a build without
 * the SIMD sets (-DLONGCTX_SIMD=OFF, or not x86-64) runs scalar only. */
static int cpu_can(int isa) {
    if (isa == IK_SCALAR)
        return 1;
#if defined(__x86_64__) && defined(LONGCTX_IK_X86)
    unsigned a, b, c, d;
    int f16c = __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
    int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c;
    int avx512 = avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                 __builtin_cpu_supports("avx512vl");
    if (isa == IK_AVX2)
        return avx2;
    if (isa == IK_AVX512)
        return avx512;
    if (isa == IK_AVX512BF16)
        return avx512 && __builtin_cpu_supports("avx512bf16");
#endif
    return 0;
}

/* ---- independent decoders and encoder (float64 arithmetic, no bit tricks) ---------------- */

/* bf16: 1 sign, 8 exponent (bias 127), 7 mantissa bits. */
static double bf16_value(uint16_t h) {
    int sign = h >> 15, exp = (h >> 7) & 255, man = h & 127;
    double v;
    if (exp == 0)
        v = ldexp(man, -126 - 7);
    else if (exp == 255)
        v = man ? NAN : INFINITY;
    else
        v = ldexp(128 + man, exp - 127 - 7);
    return sign ? -v : v;
}

/* f16: 1 sign, 5 exponent (bias 15), 10 mantissa bits. */
static double f16_value(uint16_t h) {
    int sign = h >> 15, exp = (h >> 10) & 31, man = h & 1023;
    double v;
    if (exp == 0)
        v = ldexp(man, -14 - 10);
    else if (exp == 31)
        v = man ? NAN : INFINITY;
    else
        v = ldexp(1024 + man, exp - 15 - 10);
    return sign ? -v : v;
}

/* The bits ik_to_f32 must give. bf16 widens by a shift, so a NaN keeps all its bits. An f16
 * NaN keeps sign and payload and comes out quiet, as vcvtph2ps makes it (the documented
 * contract of infer_kernels.h). Everything else is the exact value. */
static uint32_t want_f32_bits(int dtype, uint16_t h) {
    if (dtype == INFER_DT_BF16) {
        double v = bf16_value(h);
        return isnan(v) ? (uint32_t)h << 16 : f2u((float)v);
    }
    double v = f16_value(h);
    if (isnan(v))
        return ((uint32_t)(h >> 15) << 31) | 0x7fc00000u | ((uint32_t)(h & 1023) << 13);
    return f2u((float)v);
}

/* f32 -> bf16 by the definition: the nearer of the two neighbouring bf16 values, the even one
 * on a tie, overflow past the midpoint of max finite and 2^128 to infinity; a NaN truncated
 * with the quiet bit set. */
static uint16_t want_bf16(float f) {
    uint32_t u = f2u(f);
    uint16_t t = (uint16_t)(u >> 16); /* toward zero */
    if (isnan(f))
        return (uint16_t)(t | 0x40);
    if (isinf(f))
        return t;
    double x = fabs((double)f), lo = fabs(bf16_value(t));
    double hi = (t & 0x7fff) == 0x7f7f ? ldexp(1, 128) : fabs(bf16_value((uint16_t)(t + 1)));
    double d_lo = x - lo, d_hi = hi - x;
    if (d_lo < d_hi)
        return t;
    if (d_hi < d_lo)
        return (uint16_t)(t + 1);
    return (t & 1) ? (uint16_t)(t + 1) : t;
}

/* ---- matvec ------------------------------------------------------------------------------ */

/* A random weight of the dtype, stored little-endian at p (any alignment); returns its value.
 * bf16 and f16 draw sign, exponent and mantissa bits, so every mantissa bit is exercised. */
static double put_weight(unsigned char *p, int dtype) {
    if (dtype == INFER_DT_F32) {
        float f = frand();
        memcpy(p, &f, 4);
        return f;
    }
    uint16_t h;
    if (dtype == INFER_DT_BF16)
        h = (uint16_t)(((rng() & 1) << 15) | ((120 + rng() % 11) << 7) | (rng() & 127));
    else
        h = (uint16_t)(((rng() & 1) << 15) | ((10 + rng() % 11) << 10) | (rng() & 1023));
    if (rng() % 16 == 0)
        h &= 0x8000; /* some zeros */
    memcpy(p, &h, 2);
    return dtype == INFER_DT_BF16 ? bf16_value(h) : f16_value(h);
}

/* |got - want| <= 2 n 2^-24 sum |w x|: the bound for any summation order of n products. */
static int sum_ok(double got, double want, double abs_sum, size_t n) {
    return fabs(got - want) <= 2.0 * (double)(n ? n : 1) * ldexp(abs_sum, -24);
}

static void test_matvec(const char *isa) {
    static const size_t cols_list[] = {0,  1,  2,  7,  8,  9,  15,  16,  17,
                                       31, 32, 33, 63, 64, 65, 100, 4097};
    /* kernels take rows in blocks (8 on the SIMD sets): whole blocks, remainders of every size,
     * several blocks plus a remainder, empty ranges */
    static const size_t ranges[][2] = {{0, 21}, {2, 19}, {1, 2}, {2, 5},
                                       {3, 10}, {4, 12}, {6, 6}, {0, 16}};
    const size_t n_rows_total = 21;
    const float canary = -12345.0f;
    int n_bad = 0;
    for (int dtype = 0; dtype < 3; dtype++) {
        const size_t esz = dtype == INFER_DT_F32 ? 4 : 2;
        for (size_t ci = 0; ci < sizeof cols_list / sizeof cols_list[0]; ci++) {
            const size_t cols = cols_list[ci];
            /* byte offsets of w: aligned, one element, one byte (w is a void *) */
            for (int oi = 0; oi < 3; oi++) {
                const size_t w_off = oi == 0 ? 0 : oi == 1 ? esz : 1;
                unsigned char *wbuf = malloc(n_rows_total * cols * esz + 8);
                double *wv = malloc((n_rows_total * cols + 1) * sizeof *wv);
                float *xbuf = malloc((cols + 2) * sizeof *xbuf);
                float *ybuf = malloc((n_rows_total + 3) * sizeof *ybuf);
                for (size_t i = 0; i < n_rows_total * cols; i++)
                    wv[i] = put_weight(wbuf + w_off + i * esz, dtype);
                float *x = xbuf + 1; /* not vector-aligned */
                for (size_t c = 0; c < cols; c++)
                    x[c] = frand();
                for (size_t ri = 0; ri < sizeof ranges / sizeof ranges[0]; ri++) {
                    const size_t row0 = ranges[ri][0], row1 = ranges[ri][1];
                    for (size_t i = 0; i < n_rows_total + 3; i++)
                        ybuf[i] = canary;
                    float *y = ybuf + 1;
                    ik_matvec(y, x, wbuf + w_off, dtype, cols, row0, row1);
                    int ok = ybuf[0] == canary;
                    for (size_t i = row1 - row0 + 1; i < n_rows_total + 3; i++)
                        ok &= ybuf[i] == canary;
                    for (size_t r = row0; r < row1; r++) {
                        double want = 0, abs_sum = 0;
                        for (size_t c = 0; c < cols; c++) {
                            want += wv[r * cols + c] * (double)x[c];
                            abs_sum += fabs(wv[r * cols + c] * (double)x[c]);
                        }
                        ok &= sum_ok(y[r - row0], want, abs_sum, cols);
                    }
                    CHECK(ok);
                    if (!ok && n_bad++ < 5)
                        fprintf(stderr, "  matvec %s dtype %d cols %zu rows [%zu,%zu) w_off %zu\n",
                                isa, dtype, cols, row0, row1, w_off);
                }
                free(wbuf);
                free(wv);
                free(xbuf);
                free(ybuf);
            }
        }
    }
}

/* ---- conversions ------------------------------------------------------------------------- */

static void test_to_f32(const char *isa) {
    const size_t n = 65536;
    unsigned char *src = malloc(2 * n + 4);
    float *dst = malloc((n + 2) * sizeof *dst);
    for (int dtype = INFER_DT_BF16; dtype <= INFER_DT_F16; dtype++) {
        /* all patterns, src at 2-byte and 1-byte offsets, dst off vector alignment */
        for (size_t s_off = 1; s_off <= 2; s_off++) {
            for (size_t i = 0; i < n; i++) {
                uint16_t h = (uint16_t)i;
                memcpy(src + s_off + 2 * i, &h, 2);
            }
            ik_to_f32(dst + 1, src + s_off, dtype, n);
            long n_wrong = 0;
            for (size_t i = 0; i < n; i++)
                if (f2u(dst[1 + i]) != want_f32_bits(dtype, (uint16_t)i) && n_wrong++ < 3)
                    fprintf(stderr, "  to_f32 %s dtype %d %04zx: got %08x want %08x\n", isa, dtype,
                            i, f2u(dst[1 + i]), want_f32_bits(dtype, (uint16_t)i));
            CHECK_EQ_INT(n_wrong, 0);
        }
        /* every short length and a tail past a vector, with the last patterns (NaNs, infs) in
         * the tail; nothing written past n */
        for (size_t len = 0; len <= 70; len++) {
            for (size_t i = 0; i < len; i++) {
                uint16_t h = (uint16_t)(0xffff - i);
                memcpy(src + 2 + 2 * i, &h, 2);
            }
            for (size_t i = 0; i < len + 2; i++)
                dst[i] = -7.0f;
            ik_to_f32(dst + 1, src + 2, dtype, len);
            int ok = dst[0] == -7.0f && dst[len + 1] == -7.0f;
            for (size_t i = 0; i < len; i++)
                ok &= f2u(dst[1 + i]) == want_f32_bits(dtype, (uint16_t)(0xffff - i));
            CHECK(ok);
        }
    }
    /* f32 "conversion" is a copy of the bits */
    float in[37];
    for (size_t i = 0; i < 37; i++)
        in[i] = u2f((uint32_t)rng());
    ik_to_f32(dst, in, INFER_DT_F32, 37);
    CHECK(memcmp(dst, in, sizeof in) == 0);
    free(src);
    free(dst);
}

static void check_bf16_batch(const char *isa, const float *src, size_t n, uint16_t *dst,
                             const char *what) {
    ik_f32_to_bf16(dst, src, n);
    long n_wrong = 0;
    for (size_t i = 0; i < n; i++)
        if (dst[i] != want_bf16(src[i]) && n_wrong++ < 3)
            fprintf(stderr, "  f32_to_bf16 %s %s: %08x -> %04x, want %04x\n", isa, what,
                    f2u(src[i]), dst[i], want_bf16(src[i]));
    CHECK_EQ_INT(n_wrong, 0);
}

static void test_f32_to_bf16(const char *isa) {
    /* input bits, wanted bf16, worked out by hand */
    static const uint32_t special[][2] = {
        {0x00000000u, 0x0000}, {0x80000000u, 0x8000}, /* ±0 */
        {0x3f800000u, 0x3f80},                        /* 1.0 */
        {0x3f808000u, 0x3f80}, {0x3f818000u, 0x3f82}, /* ties: to even, down and up */
        {0xbf808000u, 0xbf80}, {0xbf818000u, 0xbf82}, /* the same, negative */
        {0x3f807fffu, 0x3f80}, {0x3f808001u, 0x3f81}, /* just below, just above a tie */
        {0x3f7fffffu, 0x3f80},                        /* rounds up across an exponent */
        {0x7f800000u, 0x7f80}, {0xff800000u, 0xff80}, /* ±inf */
        {0x7f7fffffu, 0x7f80}, {0xff7fffffu, 0xff80}, /* max finite rounds to inf */
        {0x7f7f7fffu, 0x7f7f}, {0x7f7f8000u, 0x7f80}, /* below / at the overflow midpoint */
        {0x7fc00000u, 0x7fc0}, {0xffc00000u, 0xffc0}, /* quiet NaN */
        {0x7f800001u, 0x7fc0}, {0xff800001u, 0xffc0}, /* signalling NaN, payload only low */
        {0x7fa00000u, 0x7fe0}, {0x7fffffffu, 0x7fff}, /* NaN payloads kept above bit 16 */
        {0x00000001u, 0x0000}, {0x80000001u, 0x8000}, /* smallest subnormal -> ±0 */
        {0x00008000u, 0x0000}, {0x00018000u, 0x0002}, /* subnormal ties to even */
        {0x00010000u, 0x0001}, {0x80400000u, 0x8040}, /* subnormals exact in bf16 */
        {0x007fffffu, 0x0080}, {0x807fffffu, 0x8080}, /* largest subnormal -> min normal */
        {0x00800000u, 0x0080},                        /* min normal */
    };
    const size_t n_special = sizeof special / sizeof special[0];
    float src[64];
    uint16_t dst[64];
    for (size_t i = 0; i < n_special; i++)
        src[i] = u2f(special[i][0]);
    ik_f32_to_bf16(dst, src, n_special);
    for (size_t i = 0; i < n_special; i++) {
        CHECK_EQ_INT(dst[i], special[i][1]);
        CHECK_EQ_INT(want_bf16(src[i]), special[i][1]); /* the reference agrees with the hand */
    }

    /* random bit patterns (NaNs and subnormals included), then ties, then subnormals, each at
     * float and u16 offsets of one */
    const size_t n = 1u << 22;
    float *sbuf = malloc((n + 1) * sizeof *sbuf);
    uint16_t *dbuf = malloc((n + 1) * sizeof *dbuf);
    for (size_t i = 0; i < n; i++)
        sbuf[1 + i] = u2f((uint32_t)rng());
    check_bf16_batch(isa, sbuf + 1, n, dbuf + 1, "random bits");
    for (size_t i = 0; i < n / 4; i++)
        sbuf[1 + i] = u2f(((uint32_t)rng() & 0xffff0000u) | 0x8000u);
    check_bf16_batch(isa, sbuf + 1, n / 4, dbuf + 1, "ties");
    for (size_t i = 0; i < n / 4; i++)
        sbuf[1 + i] = u2f((uint32_t)rng() & 0x807fffffu);
    check_bf16_batch(isa, sbuf + 1, n / 4, dbuf + 1, "subnormals");

    /* every short length: nothing written past n */
    for (size_t len = 0; len <= 70; len++) {
        for (size_t i = 0; i < len; i++)
            sbuf[1 + i] = i % 3 ? frand() : u2f(special[i % n_special][0]);
        for (size_t i = 0; i < len + 2; i++)
            dbuf[i] = 0xabcd;
        ik_f32_to_bf16(dbuf + 1, sbuf + 1, len);
        int ok = dbuf[0] == 0xabcd && dbuf[len + 1] == 0xabcd;
        for (size_t i = 0; i < len; i++)
            ok &= dbuf[1 + i] == want_bf16(sbuf[1 + i]);
        CHECK(ok);
    }
    free(sbuf);
    free(dbuf);
}

/* Every SIMD set against the scalar one over all 2^32 inputs. */
static void test_f32_to_bf16_exhaustive(int isa) {
    const size_t chunk = 1u << 20;
    float *src = malloc(chunk * sizeof *src);
    uint16_t *got = malloc(chunk * sizeof *got), *want = malloc(chunk * sizeof *want);
    long n_wrong = 0;
    for (uint64_t base = 0; base < (1ull << 32); base += chunk) {
        for (size_t i = 0; i < chunk; i++)
            src[i] = u2f((uint32_t)(base + i));
        ik_init("scalar");
        ik_f32_to_bf16(want, src, chunk);
        ik_init(isa_names[isa]);
        ik_f32_to_bf16(got, src, chunk);
        for (size_t i = 0; i < chunk; i++)
            if (got[i] != want[i] && n_wrong++ < 3)
                fprintf(stderr, "  exhaustive %s: %08x -> %04x, scalar %04x\n", isa_names[isa],
                        f2u(src[i]), got[i], want[i]);
    }
    CHECK_EQ_INT(n_wrong, 0);
    printf("exhaustive f32_to_bf16 %s: %ld of 2^32 differ from scalar\n", isa_names[isa], n_wrong);
    free(src);
    free(got);
    free(want);
}

/* ---- level-1 ----------------------------------------------------------------------------- */

static void test_blas1(const char *isa) {
    static const size_t lens[] = {0,  1,  2,  3,  7,  8,  9,   15,  16,  17,   31,  32,
                                  33, 47, 63, 64, 65, 66, 127, 128, 129, 1000, 4097};
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
        const size_t n = lens[li];
        float *abuf = malloc((n + 2) * sizeof(float)), *bbuf = malloc((n + 2) * sizeof(float));
        float *ybuf = malloc((n + 2) * sizeof(float)), *y0 = malloc((n + 1) * sizeof(float));
        float *a = abuf + 1, *b = bbuf + 1, *y = ybuf + 1;
        for (size_t i = 0; i < n; i++) {
            a[i] = frand();
            b[i] = frand() * 8;
        }
        double want = 0, abs_sum = 0;
        for (size_t i = 0; i < n; i++) {
            want += (double)a[i] * b[i];
            abs_sum += fabs((double)a[i] * b[i]);
        }
        float got = ik_dot(a, b, n);
        CHECK(sum_ok(got, want, abs_sum, n));
        if (!sum_ok(got, want, abs_sum, n))
            fprintf(stderr, "  dot %s n %zu: %.9g want %.9g\n", isa, n, got, want);

        const float alpha = -0.7f;
        for (size_t i = 0; i < n; i++)
            y0[i] = y[i] = frand();
        ybuf[0] = ybuf[n + 1] = 99.0f;
        ik_axpy(y, alpha, a, n);
        int ok = ybuf[0] == 99.0f && ybuf[n + 1] == 99.0f;
        for (size_t i = 0; i < n; i++) {
            if (strcmp(isa, "scalar") != 0) { /* the SIMD sets fuse, tails included */
                ok &= y[i] == fmaf(alpha, a[i], y0[i]);
                continue;
            }
            double w = (double)y0[i] + (double)alpha * a[i]; /* one or two roundings */
            ok &= fabs(y[i] - w) <= ldexp(fabs((double)y0[i]) + fabs((double)alpha * a[i]), -23);
        }
        CHECK(ok);

        for (size_t i = 0; i < n; i++)
            y0[i] = y[i];
        ik_scale(y, alpha, n);
        ok = ybuf[0] == 99.0f && ybuf[n + 1] == 99.0f;
        for (size_t i = 0; i < n; i++) /* one correctly rounded product: exact */
            ok &= y[i] == (float)((double)y0[i] * alpha);
        CHECK(ok);
        free(abuf);
        free(bbuf);
        free(ybuf);
        free(y0);
    }
}

/* ---- prefill attention ------------------------------------------------------------------- */

/* One step of the attention kernels' chains: fused on the SIMD sets, two roundings on scalar
 * (separate statements, so that no compiler contracts them). */
static float chain_step(float a, float b, float acc, int fused) {
    if (fused)
        return fmaf(a, b, acc);
    const float prod = a * b;
    return acc + prod;
}

static int same_bits(float a, float b) {
    return f2u(a) == f2u(b);
}

static size_t lanes_of(int n) {
    return (size_t)(n + IK_LANES - 1) / IK_LANES * IK_LANES;
}

/* ik_attn_qk: every score is the chain over d in order (exact bits), within the float64 bound,
 * whatever the row count and the lane a row sits in; nothing written past the rows' lanes or
 * the keys. */
static void test_attn_qk(const char *isa, int hd, int n_rows, int n_keys) {
    const int fused = strcmp(isa, "scalar") != 0;
    const size_t ld = lanes_of(n_rows) + IK_LANES, ldk = (size_t)hd + 3;
    const float canary = -777.0f;
    float *qt = calloc((size_t)hd * ld, sizeof(float));
    float *k = malloc(((size_t)n_keys * ldk + 1) * sizeof(float));
    float *st = malloc(((size_t)n_keys + 1) * ld * sizeof(float));
    for (int d = 0; d < hd; d++)
        for (int r = 0; r < n_rows; r++)
            qt[(size_t)d * ld + (size_t)r] = frand();
    for (size_t i = 0; i < (size_t)n_keys * ldk + 1; i++)
        k[i] = frand() * 4;
    for (size_t i = 0; i < ((size_t)n_keys + 1) * ld; i++)
        st[i] = canary;
    ik_attn_qk(st, qt, ld, k, ldk, n_keys, n_rows, hd);
    int ok = 1;
    for (int t = 0; t <= n_keys; t++)
        for (size_t r = 0; r < ld; r++) {
            const float got = st[(size_t)t * ld + r];
            if (t == n_keys || r >= lanes_of(n_rows)) {
                ok &= got == canary;
                continue;
            }
            if (r >= (size_t)n_rows)
                continue; /* padding lanes: anything */
            float chain = 0.0f;
            double want = 0, abs_sum = 0;
            for (int d = 0; d < hd; d++) {
                const float q = qt[(size_t)d * ld + r], kd = k[(size_t)t * ldk + (size_t)d];
                chain = chain_step(q, kd, chain, fused);
                want += (double)q * kd;
                abs_sum += fabs((double)q * kd);
            }
            ok &= same_bits(got, chain) && sum_ok(got, want, abs_sum, (size_t)hd);
        }
    CHECK(ok);
    if (!ok)
        fprintf(stderr, "  attn_qk %s hd %d rows %d keys %d\n", isa, hd, n_rows, n_keys);
    free(qt);
    free(k);
    free(st);
}

/* ik_attn_pv: acc * c, then the chain over the row's own keys in order (exact bits); a row
 * never reads a probability past its count (NaN there), a -0 accumulator of a row without keys
 * stays -0, columns past hd are not written. */
static void test_attn_pv(const char *isa, int hd, int n_rows, int n_keys) {
    const int fused = strcmp(isa, "scalar") != 0;
    const size_t ld = lanes_of(n_rows), ldacc = (size_t)hd + 5, ldv = (size_t)hd + 2;
    const float canary = -777.0f;
    float *acc = malloc((size_t)n_rows * ldacc * sizeof(float));
    float *acc0 = malloc((size_t)n_rows * ldacc * sizeof(float));
    float *c = malloc(ld * sizeof(float)), *st = malloc((size_t)n_keys * ld * sizeof(float));
    float *v = malloc((size_t)n_keys * ldv * sizeof(float));
    int *n = calloc(ld, sizeof(int));
    for (int r = 0; r < n_rows; r++) {
        n[r] = r % 5 == 1 ? 0 : r % 3 == 0 ? n_keys : (int)(rng() % (uint64_t)(n_keys + 1));
        c[r] = r % 4 == 0 ? 1.0f : 0.5f + 0.5f * fabsf(frand());
        for (size_t d = 0; d < ldacc; d++)
            acc0[(size_t)r * ldacc + d] = d < (size_t)hd ? frand() : canary;
        if (n[r] == 0)
            acc0[(size_t)r * ldacc] = -0.0f;
    }
    memcpy(acc, acc0, (size_t)n_rows * ldacc * sizeof(float));
    for (int t = 0; t < n_keys; t++) {
        for (size_t r = 0; r < ld; r++)
            st[(size_t)t * ld + r] = (int)r < n_rows && t < n[r] ? fabsf(frand()) : NAN;
        for (size_t d = 0; d < ldv; d++)
            v[(size_t)t * ldv + d] = frand() * 3;
    }
    ik_attn_pv(acc, ldacc, c, st, ld, v, ldv, n, n_rows, hd);
    int ok = 1;
    for (int r = 0; r < n_rows; r++)
        for (size_t d = 0; d < ldacc; d++) {
            const float got = acc[(size_t)r * ldacc + d];
            if (d >= (size_t)hd) {
                ok &= got == canary;
                continue;
            }
            float chain = acc0[(size_t)r * ldacc + d] * c[r];
            double want = chain, abs_sum = fabs(chain);
            for (int t = 0; t < n[r]; t++) {
                const float p = st[(size_t)t * ld + (size_t)r], vd = v[(size_t)t * ldv + d];
                chain = chain_step(p, vd, chain, fused);
                want += (double)p * vd;
                abs_sum += fabs((double)p * vd);
            }
            ok &= same_bits(got, chain) && sum_ok(got, want, abs_sum, (size_t)n[r] + 1);
        }
    CHECK(ok);
    if (!ok)
        fprintf(stderr, "  attn_pv %s hd %d rows %d keys %d\n", isa, hd, n_rows, n_keys);
    free(acc);
    free(acc0);
    free(c);
    free(st);
    free(v);
    free(n);
}

/* infer_attn_softmax: against float64, and the scalar set's bits on every set. */
static int close_rel(double got, double want, double tol) {
    return fabs(got - want) <= tol * fabs(want);
}

static void test_attn_softmax(const char *isa, int n_rows, int n_keys) {
    const size_t ld = lanes_of(n_rows), nst = (size_t)n_keys * ld;
    float *s0 = malloc(nst * sizeof(float)), *st = malloc(nst * sizeof(float));
    float *st1 = malloc(nst * sizeof(float));
    float *m0 = malloc(ld * sizeof(float)), *l0 = malloc(ld * sizeof(float));
    float *m = malloc(ld * sizeof(float)), *l = malloc(ld * sizeof(float));
    float *c = malloc(ld * sizeof(float)), *m1 = malloc(ld * sizeof(float));
    float *l1 = malloc(ld * sizeof(float)), *c1 = malloc(ld * sizeof(float));
    int *n = calloc(ld, sizeof(int));
    for (size_t r = 0; r < ld; r++) {
        const int row = (int)r < n_rows;
        n[r] = !row         ? 0
               : r % 5 == 1 ? 0
               : r % 3 == 0 ? n_keys
                            : (int)(rng() % (uint64_t)(n_keys + 1));
        /* a fresh row, a row whose max will not move, rows whose max may */
        m0[r] = !row || r % 4 == 0 ? -INFINITY : r % 4 == 1 ? 30.0f : frand() * 5;
        l0[r] = m0[r] == -INFINITY ? 0.0f : 1.0f + fabsf(frand()) * 10;
    }
    for (size_t i = 0; i < nst; i++)
        s0[i] = frand() * 20;
    memcpy(st, s0, nst * sizeof(float));
    memcpy(st1, s0, nst * sizeof(float));
    memcpy(m, m0, ld * sizeof(float));
    memcpy(l, l0, ld * sizeof(float));
    memcpy(m1, m0, ld * sizeof(float));
    memcpy(l1, l0, ld * sizeof(float));
    infer_attn_softmax(st, ld, n_keys, n, m, l, c, n_rows);
    const int isa_now = ik_isa_current();
    ik_init("scalar");
    infer_attn_softmax(st1, ld, n_keys, n, m1, l1, c1, n_rows);
    ik_init(isa_names[isa_now]);
    int ok = 1;
    for (int r = 0; r < n_rows; r++) {
        ok &= same_bits(m[r], m1[r]) && same_bits(l[r], l1[r]) && same_bits(c[r], c1[r]);
        float mx = m0[r];
        for (int t = 0; t < n[r]; t++) {
            const float x = s0[(size_t)t * ld + (size_t)r];
            mx = x > mx ? x : mx;
            ok &= same_bits(st[(size_t)t * ld + (size_t)r], st1[(size_t)t * ld + (size_t)r]);
        }
        ok &= same_bits(m[r], mx);
        const double cw = mx != m0[r] && m0[r] != -INFINITY ? exp((double)m0[r] - mx) : 1.0;
        double sum = 0;
        for (int t = 0; t < n[r]; t++) {
            const double p = exp((double)s0[(size_t)t * ld + (size_t)r] - mx);
            ok &= close_rel(st[(size_t)t * ld + (size_t)r], p, 1e-5);
            sum += p;
        }
        ok &= close_rel(c[r], cw, 1e-5);
        ok &= n[r] || m0[r] != -INFINITY ? close_rel(l[r], l0[r] * cw + sum, 1e-5) : l[r] == 0;
    }
    CHECK(ok);
    if (!ok)
        fprintf(stderr, "  attn_softmax %s rows %d keys %d\n", isa, n_rows, n_keys);
    free(s0);
    free(st);
    free(st1);
    free(m0);
    free(l0);
    free(m);
    free(l);
    free(c);
    free(m1);
    free(l1);
    free(c1);
    free(n);
}

static void test_attn(const char *isa) {
    static const int hds[] = {1, 7, 8, 16, 17, 48, 64, 80, 128};
    static const int rows[] = {1, 2, 5, 6, 15, 16, 17, 31, 33, 64, 70};
    static const int keys[] = {1, 5, 6, 7, 13, 24, 25, 128};
    const int n_hd = sizeof hds / sizeof hds[0], n_rows = sizeof rows / sizeof rows[0];
    for (int hi = 0; hi < n_hd; hi++)
        for (int ri = 0; ri < n_rows; ri++) {
            const int nk = keys[(hi + ri) % (int)(sizeof keys / sizeof keys[0])];
            test_attn_qk(isa, hds[hi], rows[ri], nk);
            test_attn_pv(isa, hds[hi], rows[ri], nk);
        }
    for (int ri = 0; ri < n_rows; ri++)
        for (int ki = 0; ki < (int)(sizeof keys / sizeof keys[0]); ki++)
            test_attn_softmax(isa, rows[ri], keys[ki]);
}

/* ---- exponentials and decode attention (infer_exp.c) -------------------------------------- */

/* infer_exp_sum, infer_silu_mul, infer_max: the scalar set's bits on every set, and float64;
 * infer_attn_scores / _wsum: float64, and on the sets without an AVX-512 version (scalar,
 * avx2) the exact fmaf chain over d (scores) or t (sums) that infer_exp.c computes. */
static void test_exp(const char *isa) {
    static const int lens[] = {0, 1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 100, 1000};
    const int isa_now = ik_isa_current(), chain = isa_now < IK_AVX512;
    enum { MAXN = 1000 };
    float *x = malloc(MAXN * sizeof(float)), *x0 = malloc(MAXN * sizeof(float));
    float *x1 = malloc(MAXN * sizeof(float)), *u = malloc(MAXN * sizeof(float));
    int ok = 1;
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
        const int n = lens[li];
        for (int i = 0; i < n; i++) {
            x0[i] = frand() * (i % 7 == 0 ? 120.0f : 12.0f); /* some past the clamp */
            u[i] = frand();
        }
        double mx = -INFINITY;
        for (int i = 0; i < n; i++)
            mx = x0[i] > mx ? x0[i] : mx;
        const float got_max = infer_max(x0, n);
        ok &= n ? got_max == (float)mx : got_max == -INFINITY;
        const float m = n ? (float)mx : 0.0f;
        memcpy(x, x0, (size_t)n * sizeof(float));
        memcpy(x1, x0, (size_t)n * sizeof(float));
        const float sum = infer_exp_sum(x, n, m);
        ik_init("scalar");
        const float sum1 = infer_exp_sum(x1, n, m);
        ik_init(isa_names[isa_now]);
        ok &= same_bits(sum, sum1);
        double want_sum = 0;
        for (int i = 0; i < n; i++) {
            const double d = x0[i] - m, e = exp(d < -87 ? -87 : d); /* the float difference */
            ok &= same_bits(x[i], x1[i]) && close_rel(x[i], e, 2e-6);
            want_sum += x[i];
        }
        ok &= close_rel(sum, want_sum, 1e-5) || (n == 0 && sum == 0);
        memcpy(x, x0, (size_t)n * sizeof(float));
        memcpy(x1, x0, (size_t)n * sizeof(float));
        infer_silu_mul(x, u, (size_t)n);
        ik_init("scalar");
        infer_silu_mul(x1, u, (size_t)n);
        ik_init(isa_names[isa_now]);
        for (int i = 0; i < n; i++) {
            const double g = x0[i], want = g / (1 + exp(-g)) * u[i];
            ok &= same_bits(x[i], x1[i]) && fabs(x[i] - want) <= 2e-6 * fabs(want) + 1e-30;
        }
        if (!ok) {
            fprintf(stderr, "  exp %s n %d\n", isa, n);
            break;
        }
    }
    CHECK(ok);
    ok &= infer_exp(0.0f) == 1.0f && close_rel(infer_exp(-3.5f), exp(-3.5), 1e-6);
    CHECK(ok);
    /* scores and weighted sums over a tile of n keys, rows ldk / ldv apart */
    static const int hds[] = {1, 8, 15, 16, 17, 64, 80, 128};
    for (size_t hi = 0; hi < sizeof hds / sizeof hds[0]; hi++) {
        const int hd = hds[hi], nk = 1 + (int)(hi * 5) % 13;
        ok = 1;
        const size_t ldk = (size_t)hd + 3;
        float *q = malloc((size_t)hd * sizeof(float)), *k = malloc(nk * ldk * sizeof(float));
        float *s = malloc((size_t)nk * sizeof(float)), *p = malloc((size_t)nk * sizeof(float));
        float *acc = malloc((size_t)hd * sizeof(float)), *acc0 = malloc((size_t)hd * sizeof(float));
        for (int d = 0; d < hd; d++)
            q[d] = frand(), acc0[d] = frand();
        for (size_t i = 0; i < nk * ldk; i++)
            k[i] = frand();
        for (int t = 0; t < nk; t++)
            p[t] = fabsf(frand());
        infer_attn_scores(s, q, k, ldk, nk, hd);
        for (int t = 0; t < nk; t++) {
            double want = 0, mag = 0;
            float f = 0;
            for (int d = 0; d < hd; d++) {
                want += (double)q[d] * k[(size_t)t * ldk + (size_t)d];
                mag += fabs((double)q[d] * k[(size_t)t * ldk + (size_t)d]);
                f = fmaf(q[d], k[(size_t)t * ldk + (size_t)d], f);
            }
            ok &= fabs(s[t] - want) <= hd * 0x1p-24 * mag && (!chain || same_bits(s[t], f));
        }
        memcpy(acc, acc0, (size_t)hd * sizeof(float));
        infer_attn_wsum(acc, p, k, ldk, nk, hd);
        for (int d = 0; d < hd; d++) {
            double want = acc0[d], mag = fabs(acc0[d]);
            float f = acc0[d];
            for (int t = 0; t < nk; t++) {
                want += (double)p[t] * k[(size_t)t * ldk + (size_t)d];
                mag += fabs((double)p[t] * k[(size_t)t * ldk + (size_t)d]);
                f = fmaf(p[t], k[(size_t)t * ldk + (size_t)d], f);
            }
            ok &=
                fabs(acc[d] - want) <= (nk + 1) * 0x1p-24 * mag && (!chain || same_bits(acc[d], f));
        }
        if (!ok)
            fprintf(stderr, "  attn scores/wsum %s hd %d keys %d\n", isa, hd, nk);
        CHECK(ok);
        free(q);
        free(k);
        free(s);
        free(p);
        free(acc);
        free(acc0);
    }
    free(x);
    free(x0);
    free(x1);
    free(u);
}

/* ---- dispatch ---------------------------------------------------------------------------- */

/* ik_gemm (f32 x; f32, bf16, f16 weights) and ik_gemm_bf16 (bf16 x and weights) against
 * float64 sums of the same values, misaligned weights, tails of every length, and each
 * element's bits equal to those of a 1 x 1 call on it alone */
static void test_gemm(int isa) {
    enum { MAXK = 2048, MAXN = 70, MAXM = 13, LDY = MAXM + 3 };
    static float x[MAXN * MAXK], y[MAXN * LDY], y1;
    static uint16_t xh[MAXN * MAXK];
    static unsigned char wbuf[MAXM * MAXK * 4 + 1];
    static double wv[MAXM * MAXK];
    /* 1024 and 2048: weight rows 4 KiB apart (f32, bf16), where infer_gemm.c tiles 4 rows */
    static const size_t ks[] = {1, 7, 15, 16, 17, 31, 32, 33, 64, 100, 1000, 1024, 2048};
    static const size_t ns[] = {1, 3, 4, 5, 13, 70};
    static const size_t ms[] = {1, 5, 6, 7, 13};
    const unsigned char *w = wbuf + 1; /* odd address: a tensor anywhere in a file */
    /* kind 0..2: ik_gemm with weights of that INFER_DT_*; 3: ik_gemm_bf16 */
    for (int kind = 0; kind < 4; kind++) {
        const int dtype = kind < 3 ? kind : INFER_DT_BF16,
                  can = kind < 3 ? isa >= IK_AVX2 : isa == IK_AVX512BF16;
        const size_t wel = dtype == INFER_DT_F32 ? 4 : 2;
        if (!can) { /* refused, nothing written */
            y[0] = 42.0f;
            CHECK_EQ_INT(kind < 3 ? ik_gemm(y, LDY, x, MAXK, wbuf, dtype, 4, 1, 1)
                                  : ik_gemm_bf16(y, LDY, xh, MAXK, wbuf, 4, 1, 1),
                         -1);
            CHECK(y[0] == 42.0f);
            continue;
        }
        for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++) {
            const size_t K = ks[ki], ldx = K + (K & 1); /* rows ldx apart, ldx >= K */
            for (size_t i = 0; i < MAXN * ldx; i++)
                x[i] = frand() * 4.0f;
            ik_f32_to_bf16(xh, x, MAXN * ldx);
            for (size_t i = 0; i < MAXM * K; i++)
                wv[i] = put_weight(wbuf + 1 + wel * i, dtype);
            for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++)
                for (size_t mi = 0; mi < sizeof ms / sizeof ms[0]; mi++) {
                    const size_t n = ns[ni], m = ms[mi];
                    for (size_t i = 0; i < MAXN * LDY; i++)
                        y[i] = -7.0f; /* the cells past m must stay */
                    CHECK_EQ_INT(kind < 3 ? ik_gemm(y, LDY, x, ldx, w, dtype, K, n, m)
                                          : ik_gemm_bf16(y, LDY, xh, ldx, w, K, n, m),
                                 0);
                    int ok = 1;
                    for (size_t t = 0; t < n; t++) {
                        for (size_t r = 0; r < m; r++) {
                            double want = 0, abs_sum = 0;
                            for (size_t c = 0; c < K; c++) {
                                double xv = kind < 3 ? x[t * ldx + c] : bf16_value(xh[t * ldx + c]);
                                want += xv * wv[r * K + c];
                                abs_sum += fabs(xv * wv[r * K + c]);
                            }
                            const float got = y[t * LDY + r];
                            ok &= sum_ok(got, want, abs_sum, K);
                            /* the same bits alone (1 x 1) as inside any tile */
                            const unsigned char *wr = w + wel * r * K;
                            if (kind < 3)
                                ik_gemm(&y1, 1, x + t * ldx, ldx, wr, dtype, K, 1, 1);
                            else
                                ik_gemm_bf16(&y1, 1, xh + t * ldx, ldx, wr, K, 1, 1);
                            ok &= f2u(y1) == f2u(got);
                        }
                        for (size_t r = m; r < LDY; r++)
                            ok &= y[t * LDY + r] == -7.0f;
                    }
                    if (!ok)
                        printf("gemm kind %d K=%zu n=%zu m=%zu: wrong\n", kind, K, n, m);
                    CHECK(ok);
                }
        }
    }
}

static void test_dispatch(void) {
    int best = IK_SCALAR;
    for (int isa = 0; isa < 4; isa++)
        if (cpu_can(isa))
            best = isa;
    unsetenv("LONGCTX_ISA");
    CHECK_EQ_INT(ik_init(NULL), best);
    CHECK_EQ_INT(ik_init(""), best);
    CHECK_EQ_INT(ik_init("scalar"), IK_SCALAR);
    CHECK_EQ_INT(ik_init("bogus"), -1);
    CHECK_EQ_INT(ik_init("AVX2"), -1); /* names are exact */
    CHECK_EQ_INT(ik_isa_current(), IK_SCALAR);
    setenv("LONGCTX_ISA", "nope", 1);
    CHECK_EQ_INT(ik_init(NULL), -1);
    CHECK_EQ_INT(ik_isa_current(), IK_SCALAR);
    setenv("LONGCTX_ISA", isa_names[best], 1);
    CHECK_EQ_INT(ik_init(NULL), best);
    CHECK_EQ_INT(ik_init("scalar"), IK_SCALAR); /* the argument wins over the variable */
    unsetenv("LONGCTX_ISA");
    for (int isa = 0; isa < 4; isa++)
        CHECK(strcmp(ik_isa_name(isa), isa_names[isa]) == 0);
    CHECK(strcmp(ik_isa_name(4), "unknown") == 0);
    CHECK(strcmp(ik_isa_name(-1), "unknown") == 0);
}

int main(void) {
    test_dispatch();
    const char *ex = getenv("LONGCTX_TEST_EXHAUSTIVE");
    for (int isa = 0; isa < 4; isa++) {
        ik_init("scalar");
        int got = ik_init(isa_names[isa]);
        if (!cpu_can(isa)) {
            CHECK_EQ_INT(got, -1); /* refused, never run */
            CHECK_EQ_INT(ik_isa_current(), IK_SCALAR);
            printf("SKIP isa %s: not supported by this CPU or not built\n", isa_names[isa]);
            continue;
        }
        CHECK_EQ_INT(got, isa);
        CHECK_EQ_INT(ik_isa_current(), isa);
        printf("isa %s\n", isa_names[isa]);
        test_matvec(isa_names[isa]);
        test_to_f32(isa_names[isa]);
        test_f32_to_bf16(isa_names[isa]);
        test_blas1(isa_names[isa]);
        test_gemm(isa);
        test_attn(isa_names[isa]);
        test_exp(isa_names[isa]);
        if (ex && *ex && strcmp(ex, "0") != 0 && isa != IK_SCALAR)
            test_f32_to_bf16_exhaustive(isa);
    }
    return check_exit("test_kernels");
}
