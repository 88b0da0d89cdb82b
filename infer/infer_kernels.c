/* infer_kernels.c - scalar placeholders; the SIMD versions and dispatch are being written
 * (issue 5). */
#include "infer_kernels.h"

#include "infer.h"

#include <string.h>

static int g_isa = IK_SCALAR;

int ik_init(const char *force) {
    (void)force;
    g_isa = IK_SCALAR;
    return g_isa;
}

const char *ik_isa_name(int isa) {
    static const char *names[] = {"scalar", "avx2", "avx512", "avx512bf16"};
    return isa >= 0 && isa < 4 ? names[isa] : "unknown";
}

int ik_isa_current(void) {
    return g_isa;
}

static float bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static float f16_to_f32(uint16_t h) {
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
        u = sign | 0x7f800000u | (man << 13);
    } else {
        u = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static float load(const void *w, int dtype, size_t i) {
    if (dtype == INFER_DT_F32) {
        float f;
        memcpy(&f, (const char *)w + 4 * i, 4);
        return f;
    }
    uint16_t h;
    memcpy(&h, (const char *)w + 2 * i, 2);
    return dtype == INFER_DT_BF16 ? bf16_to_f32(h) : f16_to_f32(h);
}

void ik_matvec(float *y, const float *x, const void *w, int dtype, size_t cols, size_t row0,
               size_t row1) {
    for (size_t r = row0; r < row1; r++) {
        float v = 0;
        for (size_t c = 0; c < cols; c++)
            v += load(w, dtype, r * cols + c) * x[c];
        y[r - row0] = v;
    }
}

void ik_to_f32(float *dst, const void *src, int dtype, size_t n) {
    for (size_t i = 0; i < n; i++)
        dst[i] = load(src, dtype, i);
}

void ik_f32_to_bf16(uint16_t *dst, const float *src, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &src[i], 4);
        if ((u & 0x7fffffffu) > 0x7f800000u)
            dst[i] = (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
        else
            dst[i] = (uint16_t)((u + 0x7fffu + ((u >> 16) & 1)) >> 16);
    }
}

float ik_dot(const float *a, const float *b, size_t n) {
    float s = 0;
    for (size_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

void ik_axpy(float *y, float a, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        y[i] += a * x[i];
}

void ik_scale(float *y, float a, size_t n) {
    for (size_t i = 0; i < n; i++)
        y[i] *= a;
}
