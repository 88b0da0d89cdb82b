/* bench_kernels.c - the inference kernels of infer_kernels.h per instruction set: matvec
 * throughput in GB/s of weights read on a matrix larger than the caches (F32, BF16, F16; one
 * and two threads splitting the rows), beside OpenBLAS cblas_sgemv on the F32 matrix and a
 * STREAM-like read of a 1 GiB float array (the ceiling); then the small kernels on data in L1/L2.
 *
 * usage: bench_kernels [rows] [cols] [reps]     defaults 8192 4096 5
 * Each number is the best of `reps` runs; the median follows in brackets. Prints markdown. */
#include "infer.h"
#include "infer_kernels.h"

#include <cblas.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#define MAX_REPS 64

static volatile float g_sink; /* keeps results the compiler would otherwise drop */

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t rng_state = 42;

static uint32_t rng32(void) { /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545f4914f6cdd1dull) >> 32);
}

static float frand(void) { /* [-1, 1) */
    return (float)rng32() / 2147483648.0f - 1.0f;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* best (smallest) and median of n times */
static void stats(double *t, int n, double *best, double *median) {
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    *best = t[0];
    *median = t[n / 2];
}

static void *xalloc(size_t bytes) {
    void *p = aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (!p) {
        fprintf(stderr, "out of memory (%zu bytes)\n", bytes);
        exit(1);
    }
    return p;
}

/* ---- the parallel part: each thread gets rows [i0, i1) by ggml's split ------------------- */

typedef enum { JOB_MATVEC, JOB_SUM } job_kind;

typedef struct {
    job_kind kind;
    float *y;
    const float *x;
    const void *w;
    int dtype;
    size_t cols, row0, row1;
    double sum; /* JOB_SUM: the partial sum of w[row0, row1) as floats */
} job;

#if defined(__x86_64__)
__attribute__((target("avx2"))) static double sum_avx2(const float *a, size_t n) {
    __m256 s[8];
    for (int k = 0; k < 8; k++)
        s[k] = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 64 <= n; i += 64)
        for (int k = 0; k < 8; k++)
            s[k] = _mm256_add_ps(s[k], _mm256_loadu_ps(a + i + 8 * k));
    float lanes[8];
    double t = 0;
    for (int k = 0; k < 8; k++) {
        _mm256_storeu_ps(lanes, s[k]);
        for (int l = 0; l < 8; l++)
            t += lanes[l];
    }
    for (; i < n; i++)
        t += a[i];
    return t;
}
#endif

/* The read-bandwidth ceiling: AVX2 loads with eight independent sums, nothing else. */
static double sum_floats(const float *a, size_t n) {
#if defined(__x86_64__)
    if (__builtin_cpu_supports("avx2"))
        return sum_avx2(a, n);
#endif
    float s[8] = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++)
            s[k] += a[i + k];
    double t = 0;
    for (int k = 0; k < 8; k++)
        t += s[k];
    for (; i < n; i++)
        t += a[i];
    return t;
}

static void *run_job(void *p) {
    job *j = p;
    if (j->kind == JOB_MATVEC)
        ik_matvec(j->y + j->row0, j->x, j->w, j->dtype, j->cols, j->row0, j->row1);
    else
        j->sum = sum_floats((const float *)j->w + j->row0, j->row1 - j->row0);
    return NULL;
}

/* Seconds for one run of `proto` split over n_threads (threads created per run: ~50 us, under
 * 2% of the shortest run here). */
static double run_split(const job *proto, size_t n, int n_threads) {
    job jobs[8];
    pthread_t tid[8];
    size_t per = (n + (size_t)n_threads - 1) / (size_t)n_threads;
    for (int t = 0; t < n_threads; t++) {
        jobs[t] = *proto;
        jobs[t].row0 = (size_t)t * per < n ? (size_t)t * per : n;
        jobs[t].row1 = jobs[t].row0 + per < n ? jobs[t].row0 + per : n;
    }
    double t0 = now();
    for (int t = 1; t < n_threads; t++)
        if (pthread_create(&tid[t], NULL, run_job, &jobs[t]) != 0) {
            fprintf(stderr, "pthread_create failed\n");
            exit(1);
        }
    run_job(&jobs[0]);
    for (int t = 1; t < n_threads; t++)
        pthread_join(tid[t], NULL);
    return now() - t0;
}

/* ---- small kernels: loop until 50 ms have passed, best rate of reps ---------------------- */

typedef enum { K_BF16_TO_F32, K_F16_TO_F32, K_F32_TO_BF16, K_DOT, K_AXPY, K_SCALE } small_kind;

static double small_rate(small_kind k, size_t n, int reps, float *fa, float *fb, uint16_t *h) {
    double best = 0;
    for (int r = 0; r < reps; r++) {
        size_t iters = 0;
        double t0 = now(), t;
        do {
            for (int i = 0; i < 64; i++) {
                switch (k) {
                case K_BF16_TO_F32:
                    ik_to_f32(fa, h, INFER_DT_BF16, n);
                    break;
                case K_F16_TO_F32:
                    ik_to_f32(fa, h, INFER_DT_F16, n);
                    break;
                case K_F32_TO_BF16:
                    ik_f32_to_bf16(h, fb, n);
                    break;
                case K_DOT:
                    g_sink = ik_dot(fa, fb, n);
                    break;
                case K_AXPY:
                    ik_axpy(fa, 1e-9f, fb, n);
                    break;
                case K_SCALE:
                    ik_scale(fa, 1.0f, n);
                    break;
                }
            }
            iters += 64;
            t = now() - t0;
        } while (t < 0.05);
        double rate = (double)iters * (double)n / t / 1e9;
        if (rate > best)
            best = rate;
    }
    return best;
}

int main(int argc, char **argv) {
    size_t rows = argc > 1 ? strtoull(argv[1], NULL, 10) : 8192;
    size_t cols = argc > 2 ? strtoull(argv[2], NULL, 10) : 4096;
    int reps = argc > 3 ? atoi(argv[3]) : 5;
    if (rows == 0 || cols == 0 || reps < 1 || reps > MAX_REPS) {
        fprintf(stderr, "usage: bench_kernels [rows] [cols] [reps <= %d]\n", MAX_REPS);
        return 2;
    }
    const size_t n = rows * cols;
    float *w32 = xalloc(n * 4), *x = xalloc(cols * 4), *y = xalloc(rows * 4),
          *y_ref = xalloc(rows * 4);
    uint16_t *w16[3] = {NULL, xalloc(n * 2), xalloc(n * 2)};
    for (size_t i = 0; i < n; i++)
        w32[i] = frand();
    ik_init("scalar");
    ik_f32_to_bf16(w16[INFER_DT_BF16], w32, n);
    for (size_t i = 0; i < n; i++) { /* f16 in +-[2^-10, 2): weights' range, no subnormals */
        uint32_t r = rng32();
        w16[INFER_DT_F16][i] =
            (uint16_t)((r & 0x8000u) | ((5 + (r >> 16) % 10) << 10) | (r & 1023));
    }
    for (size_t c = 0; c < cols; c++)
        x[c] = frand();
    const void *w_of[3] = {w32, w16[1], w16[2]};
    /* read before every timed matvec, so no part of a 64 MiB matrix is still in the 32 MiB L3
     * from the run before (it was: bf16 "beat" the read ceiling at 2 threads without this) */
    const size_t n_flush = (size_t)32 << 20;
    float *flush = xalloc(n_flush * 4);
    for (size_t i = 0; i < n_flush; i++)
        flush[i] = 0.0f;
    static const char *dt_name[3] = {"f32", "bf16", "f16"};

    printf("# matvec %zu x %zu (f32 %.0f MiB, bf16/f16 %.0f MiB), best of %d [median]\n\n", rows,
           cols, (double)n * 4 / 1048576, (double)n * 2 / 1048576, reps);
    printf("| kernel | dtype | GB/s 1 thread | GB/s 2 threads |\n|---|---|---|---|\n");

    /* the ceiling: read 1 GiB of floats */
    {
        const size_t n_big = (size_t)1 << 28;
        float *big = xalloc(n_big * 4);
        for (size_t i = 0; i < n_big; i++)
            big[i] = 1.0f;
        job p = {.kind = JOB_SUM, .w = big};
        printf("| read 1 GiB (sum, AVX2) | f32 |");
        for (int n_threads = 1; n_threads <= 2; n_threads++) {
            double t[MAX_REPS], best, med;
            for (int r = 0; r < reps; r++)
                t[r] = run_split(&p, n_big, n_threads);
            stats(t, reps, &best, &med);
            printf(" %.1f [%.1f] |", (double)n_big * 4 / best / 1e9, (double)n_big * 4 / med / 1e9);
        }
        printf("\n");
        free(big);
    }

    /* OpenBLAS on the f32 matrix */
    printf("| OpenBLAS cblas_sgemv | f32 |");
    for (int n_threads = 1; n_threads <= 2; n_threads++) {
        openblas_set_num_threads(n_threads);
        double t[MAX_REPS], best, med;
        for (int r = 0; r < reps; r++) {
            g_sink = (float)sum_floats(flush, n_flush);
            double t0 = now();
            cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)rows, (int)cols, 1.0f, w32, (int)cols, x,
                        1, 0.0f, y_ref, 1);
            t[r] = now() - t0;
        }
        stats(t, reps, &best, &med);
        printf(" %.1f [%.1f] |", (double)n * 4 / best / 1e9, (double)n * 4 / med / 1e9);
    }
    printf("\n");

    int n_isa = 0, isas[4];
    for (int isa = 0; isa < 4; isa++)
        if (ik_init(ik_isa_name(isa)) == isa)
            isas[n_isa++] = isa;
        else
            printf("| %s | - | not supported by this CPU | |\n", ik_isa_name(isa));
    for (int k = 0; k < n_isa; k++) {
        ik_init(ik_isa_name(isas[k]));
        for (int dtype = 0; dtype < 3; dtype++) {
            const size_t bytes = n * (dtype == INFER_DT_F32 ? 4 : 2);
            job p = {
                .kind = JOB_MATVEC, .y = y, .x = x, .w = w_of[dtype], .dtype = dtype, .cols = cols};
            printf("| ik_matvec %s | %s |", ik_isa_name(isas[k]), dt_name[dtype]);
            for (int n_threads = 1; n_threads <= 2; n_threads++) {
                double t[MAX_REPS], best, med;
                for (int r = 0; r < reps; r++) {
                    g_sink = (float)sum_floats(flush, n_flush);
                    t[r] = run_split(&p, rows, n_threads);
                }
                stats(t, reps, &best, &med);
                printf(" %.1f [%.1f] |", (double)bytes / best / 1e9, (double)bytes / med / 1e9);
            }
            printf("\n");
            if (dtype == INFER_DT_F32) { /* sanity: the same product as OpenBLAS */
                double err = 0, mag = 0;
                for (size_t r = 0; r < rows; r++) {
                    double d = (double)y[r] - y_ref[r];
                    err += d * d;
                    mag += (double)y_ref[r] * y_ref[r];
                }
                if (err > 1e-10 * mag) {
                    fprintf(stderr, "%s: f32 matvec differs from sgemv (nmse %g)\n",
                            ik_isa_name(isas[k]), err / mag);
                    return 1;
                }
            }
        }
    }

    /* small kernels, data in L1/L2 */
    const size_t n_conv = 65536, n_l1 = 2048;
    float *fa = xalloc(n_conv * 4), *fb = xalloc(n_conv * 4);
    uint16_t *h = xalloc(n_conv * 2);
    for (size_t i = 0; i < n_conv; i++) {
        fa[i] = frand();
        fb[i] = frand();
        h[i] = w16[INFER_DT_F16][i];
    }
    printf("\n# small kernels: conversions on %zu elements (in L2), dot/axpy/scale on %zu floats "
           "(in L1); G elements/s, best of %d\n\n",
           n_conv, n_l1, reps);
    printf("| isa | bf16->f32 | f16->f32 | f32->bf16 | dot | axpy | scale |\n");
    printf("|---|---|---|---|---|---|---|\n");
    for (int k = 0; k < n_isa; k++) {
        ik_init(ik_isa_name(isas[k]));
        printf("| %s | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f |\n", ik_isa_name(isas[k]),
               small_rate(K_BF16_TO_F32, n_conv, reps, fa, fb, h),
               small_rate(K_F16_TO_F32, n_conv, reps, fa, fb, h),
               small_rate(K_F32_TO_BF16, n_conv, reps, fa, fb, h),
               small_rate(K_DOT, n_l1, reps, fa, fb, h), small_rate(K_AXPY, n_l1, reps, fa, fb, h),
               small_rate(K_SCALE, n_l1, reps, fa, fb, h));
    }
    free(fa);
    free(fb);
    free(h);
    free(flush);
    free(w32);
    free(w16[1]);
    free(w16[2]);
    free(x);
    free(y);
    free(y_ref);
    return 0;
}
