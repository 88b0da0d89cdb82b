/* bench_sgemm.c - OpenBLAS sgemm (one thread) on the shapes of infer's prefill: a linear layer
 * Y (M x R) = X (M x K) W^T done in calls of RL rows of X over blocks of WB weight rows, for
 * several RL and WB, against one call of all M rows (the ceiling). infer runs linear layers in
 * calls of a fixed row count so that a position's bits do not depend on the chunk it is in
 * (infer_forward.c); this picks that count.
 * Then our own products on the same shape over blocks of weight rows, as infer runs them (60 =
 * BB, infer's block; 128, 256, 512): ik_gemm (f32 x; f32, bf16 and f16 weights) on each SIMD set
 * this CPU has (avx2: infer_gemm_avx2.c; avx512: infer_gemm.c), and the opt-in ik_gemm_bf16 (x
 * rounded to bf16 inside the timing, vdpbf16ps), with their largest difference from the f32
 * sgemm (relative to the row's largest |y|), and whether every element's bits equal those of a
 * one-row call on its row alone (the property that keeps prefill chunk-independent).
 * usage: bench_sgemm [M] [K] [R]   defaults 512 1024 2816 (the MLP of the 246M bench model) */
#include "infer_kernels.h"

#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
    /* our products on the same shape: ik_gemm (f32 x; f32, bf16 and f16 weights) per set and
     * ik_gemm_bf16 (x rounded to bf16 inside the timing) */
    uint16_t *Xh = malloc((size_t)M * (size_t)K * sizeof *Xh);
    uint16_t *Wh = malloc((size_t)R * (size_t)K * sizeof *Wh);
    uint16_t *Wf = malloc((size_t)R * (size_t)K * sizeof *Wf);
    float *Yh = malloc((size_t)M * (size_t)R * sizeof *Yh);
    float *Y1 = malloc((size_t)R * sizeof *Y1);
    if (!Xh || !Wh || !Wf || !Yh || !Y1)
        return 1;
    for (size_t i = 0; i < (size_t)M * (size_t)K; i++) /* values bf16 does not hold exactly */
        X[i] = (float)((i * 2654435761u) % 1000) / 997.0f - 0.5f;
    for (size_t i = 0; i < (size_t)R * (size_t)K; i++)
        W[i] = (float)((i * 40503u) % 1000) / 1009.0f - 0.5f;
    ik_f32_to_bf16(Wh, W, (size_t)R * (size_t)K);
    ik_to_f32(W, Wh, 1 /* INFER_DT_BF16 */, (size_t)R * (size_t)K); /* the same weights in f32 */
    for (size_t i = 0; i < (size_t)R * (size_t)K; i++) /* and in f16: exact (|w| in [2^-11, 1)) */
        Wf[i] = Wh[i] & 0x7fff
                    ? (uint16_t)((Wh[i] & 0x8000) | ((((Wh[i] >> 7) & 0xff) - 112) << 10) |
                                 ((Wh[i] & 0x7f) << 3))
                    : (uint16_t)(Wh[i] & 0x8000);
    /* infer's sgemm path (the scalar set) on bf16 weights: each 256-row block widened into
     * scratch, then 64-row calls */
    {
        float *blk = malloc((size_t)256 * (size_t)K * sizeof *blk);
        if (!blk)
            return 1;
        double best = 1e30;
        for (int rep = 0; rep < 5; rep++) {
            double t0 = now();
            for (int r0 = 0; r0 < R; r0 += 256) {
                int nr = r0 + 256 < R ? 256 : R - r0;
                ik_to_f32(blk, Wh + (size_t)r0 * (size_t)K, 1 /* INFER_DT_BF16 */,
                          (size_t)nr * (size_t)K);
                for (int m = 0; m < M; m += 64)
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, 64, nr, K, 1.0f,
                                X + (size_t)m * (size_t)K, K, blk, K, 0.0f,
                                Y + (size_t)m * (size_t)R + r0, R);
            }
            double t = now() - t0;
            best = t < best ? t : best;
        }
        free(blk);
        printf("\n# infer's sgemm path on bf16 weights (256-row blocks widened, then 64-row "
               "calls), scalar-set widening: %.1f GFLOP/s\n",
               2.0 * M * (double)R * K / best / 1e9);
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, R, K, 1.0f, X, K, W, K, 0.0f, Y, R);
    static const char *const sets[] = {"avx2", "avx512", "avx512bf16"};
    static const char *const wname[] = {"f32", "bf16", "f16"};
    static const int obs[] = {60, 128, 256, 512};
    printf("\n# our products (ik_gemm, ik_gemm_bf16), 1 thread, GFLOP/s (best of 5); error: max "
           "|diff| / row max |y| against the f32 sgemm of the same weights; 1-row bits: every "
           "element equals a 1 x %d call on its row alone\n| set | product | weights | GFLOP/s "
           "(60 / 128 / 256 / 512 weight rows per block) | error | 1-row bits |\n"
           "|---|---|---|---|---|---|\n",
           R);
    for (int set = 0; set < 3; set++) {
        const int isa = ik_init(sets[set]);
        for (int kind = set < 2 ? 0 : 3; kind < (set < 2 ? 3 : 4); kind++) {
            /* kind 0..2: ik_gemm with weights of that INFER_DT_*; 3: ik_gemm_bf16 */
            const void *w = kind == 0 ? (const void *)W : kind == 2 ? (const void *)Wf : Wh;
            const size_t wel = kind == 0 ? 4 : 2;
            const char *prod = kind < 3 ? "ik_gemm (f32 x)" : "ik_gemm_bf16 (bf16 x)";
            const char *wn = wname[kind < 3 ? kind : 1];
            if (isa < 0 ||
                (kind < 3 ? ik_gemm(Yh, (size_t)R, X, (size_t)K, w, kind, (size_t)K, 0, 0)
                          : ik_gemm_bf16(Yh, (size_t)R, Xh, (size_t)K, w, (size_t)K, 0, 0)) != 0) {
                printf("| %s | %s | %s | SKIP: not on this CPU or build | | |\n", sets[set], prod,
                       wn);
                continue;
            }
            printf("| %s | %s | %s | ", sets[set], prod, wn);
            for (int b = 0; b < 4; b++) {
                const int wb = obs[b];
                double best = 1e30;
                for (int rep = 0; rep < 5; rep++) {
                    double t0 = now();
                    if (kind == 3)
                        ik_f32_to_bf16(Xh, X, (size_t)M * (size_t)K);
                    for (int r0 = 0; r0 < R; r0 += wb) {
                        const int nr = r0 + wb < R ? wb : R - r0;
                        const char *wr = (const char *)w + (size_t)r0 * (size_t)K * wel;
                        if (kind < 3)
                            ik_gemm(Yh + r0, (size_t)R, X, (size_t)K, wr, kind, (size_t)K,
                                    (size_t)M, (size_t)nr);
                        else
                            ik_gemm_bf16(Yh + r0, (size_t)R, Xh, (size_t)K, wr, (size_t)K,
                                         (size_t)M, (size_t)nr);
                    }
                    double t = now() - t0;
                    best = t < best ? t : best;
                }
                printf("%.1f%s", 2.0 * M * (double)R * K / best / 1e9, b < 3 ? " / " : " | ");
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
            /* every 7th row alone, all weight rows in one call: its bits as in the M-row call */
            size_t differ = 0, checked = 0;
            for (int m = 0; m < M; m += 7) {
                if (kind < 3)
                    ik_gemm(Y1, (size_t)R, X + (size_t)m * (size_t)K, (size_t)K, w, kind, (size_t)K,
                            1, (size_t)R);
                else
                    ik_gemm_bf16(Y1, (size_t)R, Xh + (size_t)m * (size_t)K, (size_t)K, w, (size_t)K,
                                 1, (size_t)R);
                differ += (size_t)(memcmp(Y1, Yh + (size_t)m * (size_t)R, (size_t)R * 4) != 0);
                checked++;
            }
            printf("%.2e | %s (%zu of %zu rows differ) |\n", worst, differ ? "NO" : "yes", differ,
                   checked);
        }
    }
    free(Wf);
    free(Y1);
    free(Xh);
    free(Wh);
    free(Yh);
    free(X);
    free(W);
    free(Y);
    return 0;
}
