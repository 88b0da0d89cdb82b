/* bench_tp_slice.c - a "70B slice": per-layer times of a model with a few layers of
 * Llama-3.1-70B's shapes (8192 / 28672 / 64 heads / 8 KV heads / head_dim 128, random bf16
 * weights, small vocabulary), tensor-parallel over the mpirun ranks: a prefill chunk of C
 * tokens at context 0, 8K and 32K, and decode steps at 8K, 16K and 32K, with the all-reduce
 * bytes and seconds of each (infer_state_comm_stats). The KV cache before a position is not
 * computed (zeros): the step reads all of it, so the time is that of a real step at that
 * context; the logits are meaningless. Per layer = (step - the embedding and classifier) /
 * layers, the classifier being that of a 1024-token vocabulary (negligible).
 * usage: mpirun -np P bench_tp_slice MODEL_DIR [CHUNK=512] [REPS=3] [THREADS=1] [NO_OVERLAP=0]
 * Prints one line per measurement: what, context, seconds per layer (best of REPS), all-reduce
 * bytes and seconds per layer. */
#include "infer.h"

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int none(void *ctx, int pos, const float *lg) {
    (void)ctx, (void)pos, (void)lg;
    return 0;
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, P;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &P);
    if (argc < 2) {
        if (rank == 0)
            fprintf(stderr,
                    "usage: mpirun -np P bench_tp_slice MODEL_DIR [CHUNK] [REPS] [THREADS]\n");
        MPI_Finalize();
        return 2;
    }
    const int chunk = argc > 2 ? atoi(argv[2]) : 512, reps = argc > 3 ? atoi(argv[3]) : 3;
    const int threads = argc > 4 ? atoi(argv[4]) : 1, no_overlap = argc > 5 ? atoi(argv[5]) : 0;
    infer_model *m = NULL;
    double t0 = now();
    int st = infer_model_load(argv[1], MPI_COMM_WORLD, &m);
    if (st != INFER_OK) {
        if (rank == 0)
            fprintf(stderr, "bench_tp_slice: %s\n", infer_model_errmsg(m));
        infer_model_free(m);
        MPI_Finalize();
        return 1;
    }
    const infer_config *c = infer_model_config(m);
    const int L = c->n_layers, ctx = 32768;
    infer_opts o = infer_opts_default();
    o.max_ctx = ctx + chunk;
    o.prefill_chunk = chunk;
    o.threads = threads;
    o.kv_dtype = INFER_DT_BF16;
    o.no_overlap = no_overlap;
    infer_state *s = NULL;
    if ((st = infer_state_create(m, &o, MPI_COMM_WORLD, &s)) != INFER_OK) {
        if (rank == 0)
            fprintf(stderr, "bench_tp_slice: state: %s\n", infer_strerror(st));
        infer_model_free(m);
        MPI_Finalize();
        return 1;
    }
    if (rank == 0)
        printf("# tp %d, threads %d, overlap %s, %d layers of dim %d, mlp %d, %d heads, %d kv "
               "heads, chunk %d, "
               "kv bf16; load %.1f s\n",
               P, threads, no_overlap ? "off" : "on", L, c->dim, c->hidden_dim, c->n_heads,
               c->n_kv_heads, chunk, now() - t0);
    uint32_t *ids = malloc((size_t)chunk * sizeof *ids);
    for (int i = 0; i < chunk; i++)
        ids[i] = (uint32_t)(i * 7 + 3) % (uint32_t)c->vocab_size;
    const int pre_ctx[] = {0, 8192, ctx - chunk}, dec_ctx[] = {8192, 16384, ctx - 1};
    for (int kind = 0; kind < 2; kind++)
        for (int k = 0; k < 3; k++) {
            double best = 1e30, cs_best = 0;
            uint64_t bytes = 0;
            for (int r = 0; r < reps; r++) {
                infer_comm_stats a, b;
                infer_state_comm_stats(s, &a);
                MPI_Barrier(MPI_COMM_WORLD);
                double t = now();
                if (kind == 0) {
                    st = infer_prefill(s, ids, chunk, pre_ctx[k], NULL, none, NULL);
                } else {
                    const float *lg;
                    st = infer_forward(s, ids[0], dec_ctx[k], &lg);
                }
                t = now() - t;
                MPI_Allreduce(MPI_IN_PLACE, &t, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
                infer_state_comm_stats(s, &b);
                if (t < best) {
                    best = t;
                    cs_best = b.seconds - a.seconds;
                    bytes = b.bytes - a.bytes;
                }
            }
            if (rank == 0)
                printf("%-7s ctx %6d: %9.3f ms/layer  all-reduce %10.0f bytes/layer %8.3f "
                       "ms/layer (%4.1f%%)%s\n",
                       kind ? "decode" : "prefill", kind ? dec_ctx[k] : pre_ctx[k], 1e3 * best / L,
                       (double)bytes / L, 1e3 * cs_best / L, 100.0 * cs_best / best,
                       st == INFER_OK ? "" : " FAILED");
            fflush(stdout);
        }
    free(ids);
    infer_state_free(s);
    infer_model_free(m);
    MPI_Finalize();
    return 0;
}
