/* bench_sgemm.c - OpenBLAS sgemm (one thread) on the shapes of infer's prefill: a linear layer
 * Y (M x R) = X (M x K) W^T done in calls of RL rows of X over blocks of WB weight rows, for
 * several RL and WB, against one call of all M rows (the ceiling). infer runs linear layers in
 * calls of a fixed row count so that a position's bits do not depend on the chunk it is in
 * (infer_forward.c); this picks that count.
 * Then our own products on the same shape over blocks of weight rows, as infer runs them:
 * ik_gemm (f32 x; f32 and bf16 weights) and the opt-in ik_gemm_bf16 (x rounded to bf16 inside
 * the timing, vdpbf16ps), with their largest difference from the f32 sgemm (relative to the
 * row's largest |y|).
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
    /* our products on the same shape: ik_gemm (f32 x; f32, bf16 and f16 weights) and
     * ik_gemm_bf16 (x rounded to bf16 inside the timing) */
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
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, R, K, 1.0f, X, K, W, K, 0.0f, Y, R);
    ik_init(NULL);
    printf("\n# our products (ik_gemm, ik_gemm_bf16), 1 thread, isa %s; error: max |diff| / row "
           "max |y| against the f32 sgemm of the same weights\n| product | weights | GFLOP/s "
           "(128 / 256 / 512 weight rows per block) | error |\n|---|---|---|---|\n",
           ik_isa_name(ik_isa_current()));
    for (int kind = 0; kind < 3; kind++) { /* ik_gemm f32 w, ik_gemm bf16 w, ik_gemm_bf16 */
        const void *w = kind == 0 ? (const void *)W : (const void *)Wh;
        const size_t wel = kind == 0 ? 4 : 2;
        if ((kind < 2 ? ik_gemm(Yh, (size_t)R, X, (size_t)K, w, kind, (size_t)K, 0, 0)
                      : ik_gemm_bf16(Yh, (size_t)R, Xh, (size_t)K, w, (size_t)K, 0, 0)) != 0) {
            printf("| %s | %s | SKIP: not on this CPU | |\n", kind < 2 ? "ik_gemm" : "ik_gemm_bf16",
                   kind == 0 ? "f32" : "bf16");
            continue;
        }
        printf("| %s | %s | ", kind < 2 ? "ik_gemm (f32 x)" : "ik_gemm_bf16 (bf16 x)",
               kind == 0 ? "f32" : "bf16");
        for (int b = 0; b < 3; b++) {
            const int wb = wbs[b];
            double best = 1e30;
            for (int rep = 0; rep < 5; rep++) {
                double t0 = now();
                if (kind == 2)
                    ik_f32_to_bf16(Xh, X, (size_t)M * (size_t)K);
                for (int r0 = 0; r0 < R; r0 += wb) {
                    const int nr = r0 + wb < R ? wb : R - r0;
                    const char *wr = (const char *)w + (size_t)r0 * (size_t)K * wel;
                    if (kind < 2)
                        ik_gemm(Yh + r0, (size_t)R, X, (size_t)K, wr, kind, (size_t)K, (size_t)M,
                                (size_t)nr);
                    else
                        ik_gemm_bf16(Yh + r0, (size_t)R, Xh, (size_t)K, wr, (size_t)K, (size_t)M,
                                     (size_t)nr);
                }
                double t = now() - t0;
                best = t < best ? t : best;
            }
            printf("%.1f%s", 2.0 * M * (double)R * K / best / 1e9, b < 2 ? " / " : " | ");
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
        printf("%.2e |\n", worst);
    }
    free(Xh);
    free(Wh);
    free(Yh);
    free(X);
    free(W);
    free(Y);
    return 0;
}
