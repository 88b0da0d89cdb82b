/* bench_sgemm.c - OpenBLAS sgemm (one thread) on the shapes of infer's prefill: a linear layer
 * Y (M x R) = X (M x K) W^T done in calls of RL rows of X over blocks of WB weight rows, for
 * several RL and WB, against one call of all M rows (the ceiling). infer runs linear layers in
 * calls of a fixed row count so that a position's bits do not depend on the chunk it is in
 * (infer_forward.c); this picks that count.
 * Then the opt-in bf16 product (ik_gemm_bf16, vdpbf16ps) on the same shape, bf16 weights, over
 * blocks of WB weight rows as infer runs it, rounding X to bf16 inside the timing, and its
 * largest difference from the f32 product (relative to the row's largest |y|).
 * usage: bench_sgemm [M] [K] [R]   defaults 512 1024 2816 (the MLP of the 246M bench model) */
#include "infer_kernels.h"

#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv) {
    const int M = argc > 1 ? atoi(argv[1]) : 512, K = argc > 2 ? atoi(argv[2]) : 1024;
    const int R = argc > 3 ? atoi(argv[3]) : 2816;
    if (M <= 0 || K <= 0 || R <= 0 || M % 128) {
        fprintf(stderr, "usage: bench_sgemm [M (multiple of 128)] [K] [R]\n");
        return 2;
    }
    openblas_set_num_threads(1);
    float *X = malloc((size_t)M * (size_t)K * sizeof *X);
    float *W = malloc((size_t)R * (size_t)K * sizeof *W);
    float *Y = malloc((size_t)M * (size_t)R * sizeof *Y);
    if (!X || !W || !Y)
        return 1;
    for (size_t i = 0; i < (size_t)M * (size_t)K; i++)
        X[i] = (float)(i % 7) - 3;
    for (size_t i = 0; i < (size_t)R * (size_t)K; i++)
        W[i] = (float)(i % 5) - 2;
    static const int rls[] = {32, 64, 128}, wbs[] = {128, 256, 512};
    printf("# sgemm %d x %d x %d, 1 thread, GFLOP/s (best of 5)\n| rows per call | weight "
           "rows per block | GFLOP/s |\n|---|---|---|\n",
           M, K, R);
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < (a < 3 ? 3 : 1); b++) {
            const int rl = a < 3 ? rls[a] : M, wb = a < 3 ? wbs[b] : R;
            double best = 1e30;
            for (int rep = 0; rep < 5; rep++) {
                double t0 = now();
                for (int r0 = 0; r0 < R; r0 += wb) {
                    int nr = r0 + wb < R ? wb : R - r0;
                    for (int m = 0; m < M; m += rl)
                        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rl, nr, K, 1.0f,
                                    X + (size_t)m * (size_t)K, K, W + (size_t)r0 * (size_t)K, K,
                                    0.0f, Y + (size_t)m * (size_t)R + r0, R);
                }
                double t = now() - t0;
                best = t < best ? t : best;
            }
            printf("| %d | %d | %.1f |\n", rl, wb, 2.0 * M * (double)R * K / best / 1e9);
        }
    /* the bf16 product */
    uint16_t *Xh = malloc((size_t)M * (size_t)K * sizeof *Xh);
    uint16_t *Wh = malloc((size_t)R * (size_t)K * sizeof *Wh);
    float *Yh = malloc((size_t)M * (size_t)R * sizeof *Yh);
    if (!Xh || !Wh || !Yh)
        return 1;
    for (size_t i = 0; i < (size_t)M * (size_t)K; i++) /* values bf16 does not hold exactly */
        X[i] = (float)((i * 2654435761u) % 1000) / 997.0f - 0.5f;
    for (size_t i = 0; i < (size_t)R * (size_t)K; i++)
        W[i] = (float)((i * 40503u) % 1000) / 1009.0f - 0.5f;
    ik_f32_to_bf16(Wh, W, (size_t)R * (size_t)K);
    ik_to_f32(W, Wh, 1 /* INFER_DT_BF16 */, (size_t)R * (size_t)K); /* the same weights in f32 */
    ik_init(NULL);
    uint16_t *Xl = malloc((size_t)M * (size_t)K * sizeof *Xl);
    if (!Xl)
        return 1;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, R, K, 1.0f, X, K, W, K, 0.0f, Y, R);
    if (ik_gemm_bf16(Yh, (size_t)R, Xh, NULL, (size_t)K, Wh, (size_t)K, 0, 0) != 0) {
        printf("\n# bf16 product: SKIP (the CPU has no AVX512_BF16; isa %s)\n",
               ik_isa_name(ik_isa_current()));
    } else {
        printf("\n# bf16 products (ik_gemm_bf16; X rounded, or split into two bf16, inside the "
               "timing), 1 thread\n| X in | weight rows per block | GFLOP/s (f32-equivalent) | "
               "max |diff| / row max |y| vs f32 sgemm |\n|---|---|---|---|\n");
        for (int split = 0; split < 2; split++)
            for (int b = 0; b < 3; b++) {
                const int wb = wbs[b];
                double best = 1e30;
                for (int rep = 0; rep < 5; rep++) {
                    double t0 = now();
                    if (split)
                        ik_split_bf16(Xh, Xl, X, (size_t)M * (size_t)K);
                    else
                        ik_f32_to_bf16(Xh, X, (size_t)M * (size_t)K);
                    for (int r0 = 0; r0 < R; r0 += wb) {
                        int nr = r0 + wb < R ? wb : R - r0;
                        ik_gemm_bf16(Yh + r0, (size_t)R, Xh, split ? Xl : NULL, (size_t)K,
                                     Wh + (size_t)r0 * (size_t)K, (size_t)K, (size_t)M, (size_t)nr);
                    }
                    double t = now() - t0;
                    best = t < best ? t : best;
                }
                double worst = 0;
                for (int m = 0; m < M; m++) {
                    double big = 0, diff = 0;
                    for (int r = 0; r < R; r++) {
                        size_t i = (size_t)m * (size_t)R + (size_t)r;
                        big = fmax(big, fabs(Y[i]));
                        diff = fmax(diff, fabs((double)Y[i] - Yh[i]));
                    }
                    worst = fmax(worst, diff / big);
                }
                printf("| %s | %d | %.1f | %.2e |\n", split ? "hi + lo" : "bf16", wb,
                       2.0 * M * (double)R * K / best / 1e9, worst);
            }
    }
    free(Xl);
    free(Xh);
    free(Wh);
    free(Yh);
    free(X);
    free(W);
    free(Y);
    return 0;
}
