/* bench_sgemm.c - OpenBLAS sgemm (one thread) on the shapes of infer's prefill: a linear layer
 * Y (M x R) = X (M x K) W^T done in calls of RL rows of X over blocks of WB weight rows, for
 * several RL and WB, against one call of all M rows (the ceiling). infer runs linear layers in
 * calls of a fixed row count so that a position's bits do not depend on the chunk it is in
 * (infer_forward.c); this picks that count.
 * usage: bench_sgemm [M] [K] [R]   defaults 512 1024 2816 (the MLP of the 246M bench model) */
#include <cblas.h>
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
    free(X);
    free(W);
    free(Y);
    return 0;
}
