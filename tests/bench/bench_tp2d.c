/* bench_tp2d.c - one prefill chunk through a model split over the mpirun ranks, 1D (Megatron:
 * two all-reduces per layer) or 2D (--tp-grid: the linear layers as PSGEMM on a BLACS grid, the
 * activations redistributed by heads for attention), per layer: the time (best of REPS, the
 * slowest rank) and the bytes every rank handed to MPI to send, counted by wrapping MPI's
 * sending calls here (the profiling interface: BLACS inside PSGEMM calls the same MPI_Send and
 * MPI_Isend, and resolves them to these). Point-to-point: the message bytes; collectives: the
 * buffer each rank gives (an all-reduce of n bytes moves about 2 n (P - 1) / P per rank on the
 * wire with a ring, printed beside it).
 * usage: mpirun -np P bench_tp2d MODEL_DIR [CHUNK=128] [REPS=2] [GRID_ROWS=0 (1D)] [NB=64]
 *                                 [THREADS=1]
 * Prints one line: mode, ms/layer, bytes sent per rank per layer (mean and max over ranks), and
 * for 2D the PSGEMM and redistribution seconds per layer. */
#include "infer.h"

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- bytes handed to MPI, by kind -------------------------------------------------------- */

static unsigned long long p2p_bytes, coll_bytes, allreduce_bytes;

static unsigned long long tbytes(int count, MPI_Datatype t) {
    int sz = 0;
    PMPI_Type_size(t, &sz);
    return (unsigned long long)count * (unsigned long long)sz;
}

int MPI_Send(const void *b, int n, MPI_Datatype t, int dst, int tag, MPI_Comm c) {
    p2p_bytes += tbytes(n, t);
    return PMPI_Send(b, n, t, dst, tag, c);
}
int MPI_Ssend(const void *b, int n, MPI_Datatype t, int dst, int tag, MPI_Comm c) {
    p2p_bytes += tbytes(n, t);
    return PMPI_Ssend(b, n, t, dst, tag, c);
}
int MPI_Rsend(const void *b, int n, MPI_Datatype t, int dst, int tag, MPI_Comm c) {
    p2p_bytes += tbytes(n, t);
    return PMPI_Rsend(b, n, t, dst, tag, c);
}
int MPI_Isend(const void *b, int n, MPI_Datatype t, int dst, int tag, MPI_Comm c, MPI_Request *r) {
    p2p_bytes += tbytes(n, t);
    return PMPI_Isend(b, n, t, dst, tag, c, r);
}
int MPI_Irsend(const void *b, int n, MPI_Datatype t, int dst, int tag, MPI_Comm c, MPI_Request *r) {
    p2p_bytes += tbytes(n, t);
    return PMPI_Irsend(b, n, t, dst, tag, c, r);
}
int MPI_Sendrecv(const void *sb, int sn, MPI_Datatype st, int dst, int stag, void *rb, int rn,
                 MPI_Datatype rt, int src, int rtag, MPI_Comm c, MPI_Status *s) {
    p2p_bytes += tbytes(sn, st);
    return PMPI_Sendrecv(sb, sn, st, dst, stag, rb, rn, rt, src, rtag, c, s);
}
int MPI_Bcast(void *b, int n, MPI_Datatype t, int root, MPI_Comm c) {
    int me;
    PMPI_Comm_rank(c, &me);
    if (me == root)
        coll_bytes += tbytes(n, t);
    return PMPI_Bcast(b, n, t, root, c);
}
int MPI_Reduce(const void *sb, void *rb, int n, MPI_Datatype t, MPI_Op op, int root, MPI_Comm c) {
    coll_bytes += tbytes(n, t);
    return PMPI_Reduce(sb, rb, n, t, op, root, c);
}
int MPI_Allreduce(const void *sb, void *rb, int n, MPI_Datatype t, MPI_Op op, MPI_Comm c) {
    allreduce_bytes += tbytes(n, t);
    return PMPI_Allreduce(sb, rb, n, t, op, c);
}
int MPI_Alltoallv(const void *sb, const int *sc, const int *sd, MPI_Datatype st, void *rb,
                  const int *rc, const int *rd, MPI_Datatype rt, MPI_Comm c) {
    int me, P;
    PMPI_Comm_rank(c, &me);
    PMPI_Comm_size(c, &P);
    for (int r = 0; r < P; r++)
        if (r != me)
            coll_bytes += tbytes(sc[r], st);
    return PMPI_Alltoallv(sb, sc, sd, st, rb, rc, rd, rt, c);
}
int MPI_Allgatherv(const void *sb, int sn, MPI_Datatype st, void *rb, const int *rc, const int *rd,
                   MPI_Datatype rt, MPI_Comm c) {
    int P;
    PMPI_Comm_size(c, &P);
    coll_bytes += tbytes(sn, st) * (unsigned long long)(P - 1);
    return PMPI_Allgatherv(sb, sn, st, rb, rc, rd, rt, c);
}

/* ---- the run -------------------------------------------------------------------------------- */

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
            fprintf(stderr, "usage: mpirun -np P bench_tp2d MODEL_DIR [CHUNK] [REPS] [GRID_ROWS] "
                            "[NB] [THREADS]\n");
        MPI_Finalize();
        return 2;
    }
    const int chunk = argc > 2 ? atoi(argv[2]) : 128, reps = argc > 3 ? atoi(argv[3]) : 2;
    const int rows = argc > 4 ? atoi(argv[4]) : 0, nb = argc > 5 ? atoi(argv[5]) : 64;
    const int threads = argc > 6 ? atoi(argv[6]) : 1;
    infer_model *m = NULL;
    int st = infer_model_load(argv[1], MPI_COMM_WORLD, &m);
    if (st != INFER_OK) {
        if (rank == 0)
            fprintf(stderr, "bench_tp2d: %s\n", infer_model_errmsg(m));
        infer_model_free(m);
        MPI_Finalize();
        return 1;
    }
    const infer_config *c = infer_model_config(m);
    const int L = c->n_layers;
    infer_opts o = infer_opts_default();
    o.max_ctx = chunk;
    o.prefill_chunk = chunk;
    o.threads = threads;
    o.kv_dtype = INFER_DT_BF16;
    o.grid_rows = rows;
    o.grid_block = nb;
    infer_state *s = NULL;
    if ((st = infer_state_create(m, &o, MPI_COMM_WORLD, &s)) != INFER_OK) {
        if (rank == 0)
            fprintf(stderr, "bench_tp2d: state: %s\n", infer_strerror(st));
        infer_model_free(m);
        MPI_Finalize();
        return 1;
    }
    uint32_t *ids = malloc((size_t)chunk * sizeof *ids);
    for (int i = 0; i < chunk; i++)
        ids[i] = (uint32_t)(i * 7 + 3) % (uint32_t)c->vocab_size;
    double best = 1e30, gemm = 0, redist = 0;
    unsigned long long rbytes = 0;
    unsigned long long sent[3] = {0, 0, 0};
    for (int r = 0; r < reps; r++) {
        infer_comm_stats a, b;
        infer_state_comm_stats(s, &a);
        const unsigned long long p0 = p2p_bytes, c0 = coll_bytes, r0 = allreduce_bytes;
        MPI_Barrier(MPI_COMM_WORLD);
        double t = now();
        st |= infer_prefill(s, ids, chunk, 0, NULL, none, NULL);
        t = now() - t;
        PMPI_Allreduce(MPI_IN_PLACE, &t, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        infer_state_comm_stats(s, &b);
        if (t < best) {
            best = t;
            gemm = b.grid_gemm_seconds - a.grid_gemm_seconds;
            redist = b.grid_redist_seconds - a.grid_redist_seconds;
            rbytes = b.grid_redist_bytes - a.grid_redist_bytes;
            sent[0] = p2p_bytes - p0;
            sent[1] = coll_bytes - c0;
            sent[2] = allreduce_bytes - r0;
        }
    }
    /* per rank and layer: the mean and the max over the ranks of everything sent */
    unsigned long long tot = sent[0] + sent[1] + sent[2], sum = 0, mx = 0, parts[3];
    PMPI_Allreduce(&tot, &sum, 1, MPI_UNSIGNED_LONG_LONG, MPI_SUM, MPI_COMM_WORLD);
    PMPI_Allreduce(&tot, &mx, 1, MPI_UNSIGNED_LONG_LONG, MPI_MAX, MPI_COMM_WORLD);
    PMPI_Allreduce(sent, parts, 3, MPI_UNSIGNED_LONG_LONG, MPI_SUM, MPI_COMM_WORLD);
    PMPI_Allreduce(MPI_IN_PLACE, &rbytes, 1, MPI_UNSIGNED_LONG_LONG, MPI_SUM, MPI_COMM_WORLD);
    if (rank == 0) {
        char mode[64];
        if (rows)
            snprintf(mode, sizeof mode, "2D %dx%d nb %d", rows, P / rows, nb);
        else
            snprintf(mode, sizeof mode, "1D tp %d", P);
        const double per = (double)L * P, ring = P > 1 ? 2.0 * (P - 1) / P : 0;
        printf("%-16s chunk %4d: %9.1f ms/layer  sent/rank/layer %8.2f MB (max %8.2f; "
               "point-to-point %.2f, alltoallv+bcast %.2f, all-reduce %.2f = %.2f on a ring)",
               mode, chunk, 1e3 * best / L, sum / per / 1e6, (double)mx / L / 1e6,
               parts[0] / per / 1e6, parts[1] / per / 1e6, parts[2] / per / 1e6,
               ring * parts[2] / per / 1e6);
        if (rows)
            printf("  psgemm %.1f ms/layer; redistribution %.1f ms/layer, %.2f MB/rank/layer of "
                   "the alltoallv",
                   1e3 * gemm / L, 1e3 * redist / L, rbytes / per / 1e6);
        printf("%s\n", st == INFER_OK ? "" : " FAILED");
    }
    free(ids);
    infer_state_free(s);
    infer_model_free(m);
    MPI_Finalize();
    return 0;
}
