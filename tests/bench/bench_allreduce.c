/* bench_allreduce.c - MPI_Allreduce (float sum, in place) latency over message sizes, as the
 * tensor-parallel forward pass calls it: 32 KiB is a decode step of a 70B model (8192 floats),
 * 2 MiB a 512-token prefill chunk of the 246M bench model (512 x 1024), 64 MiB a 2048-token
 * chunk at 70B width. Median and minimum of REPS calls after WARM warmup calls, each preceded by
 * a barrier. Run under mpirun with Open MPI's algorithm choices:
 *   mpirun -np 2 bench_allreduce
 *   mpirun -np 2 --mca coll_tuned_use_dynamic_rules 1 --mca coll_tuned_allreduce_algorithm N ...
 * Also: MPI_Iallreduce of a prefill-sized buffer started before a compute loop (a dot product
 * sweep over a 64 MiB array, COMPUTE_MS long) and waited for after it, with and without
 * MPI_Test calls from the loop: the time the wait still takes says how much of the all-reduce
 * hid behind the compute.
 * usage: bench_allreduce [REPS=200] [MAX_BYTES=67108864] */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* a compute loop of about ms milliseconds over buf, calling MPI_Test on req every step if
 * test; returns a value so that the loop is not optimised away */
static double compute(float *buf, size_t n, double ms, MPI_Request *req, int test) {
    double t0 = MPI_Wtime(), acc = 0;
    int done = 0;
    while ((MPI_Wtime() - t0) * 1e3 < ms) {
        for (size_t i = 0; i < n; i += 4096) {
            float s = 0;
            for (size_t j = i; j < i + 4096 && j < n; j++)
                s += buf[j] * 1.0001f;
            acc += s;
            if (test && !done)
                MPI_Test(req, &done, MPI_STATUS_IGNORE);
        }
    }
    return acc;
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, P;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &P);
    const int reps = argc > 1 ? atoi(argv[1]) : 200;
    const size_t max_bytes = argc > 2 ? (size_t)atoll(argv[2]) : (size_t)64 << 20;
    float *x = calloc(max_bytes / 4 + 1, sizeof *x);
    double *t = malloc((size_t)reps * sizeof *t);
    if (rank == 0)
        printf("# ranks %d; bytes  median_us  min_us  (MPI_Allreduce float sum, in place)\n", P);
    for (size_t bytes = 4096; bytes <= max_bytes; bytes *= 2) {
        const int n = (int)(bytes / 4);
        const int r = bytes >= ((size_t)8 << 20) ? (reps / 10 > 5 ? reps / 10 : 5) : reps;
        for (int w = 0; w < 5; w++)
            MPI_Allreduce(MPI_IN_PLACE, x, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        for (int i = 0; i < r; i++) {
            MPI_Barrier(MPI_COMM_WORLD);
            double t0 = MPI_Wtime();
            MPI_Allreduce(MPI_IN_PLACE, x, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
            t[i] = MPI_Wtime() - t0;
        }
        MPI_Allreduce(MPI_IN_PLACE, t, r, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        qsort(t, (size_t)r, sizeof *t, cmp);
        if (rank == 0)
            printf("%10zu %10.1f %8.1f\n", bytes, 1e6 * t[r / 2], 1e6 * t[0]);
    }
    /* overlap: an all-reduce of a prefill chunk behind a compute loop */
    const size_t sizes[] = {(size_t)512 * 1024 * 4, (size_t)2048 * 8192 * 4};
    const size_t nb = (size_t)16 << 20;
    float *buf = malloc(nb * sizeof *buf);
    for (size_t i = 0; i < nb; i++)
        buf[i] = (float)(i % 7);
    double sink = 0;
    for (int k = 0; k < 2; k++) {
        const size_t bytes = sizes[k] < max_bytes ? sizes[k] : max_bytes;
        const int n = (int)(bytes / 4);
        double alone = 1e30;
        for (int i = 0; i < 5; i++) {
            MPI_Barrier(MPI_COMM_WORLD);
            double t0 = MPI_Wtime();
            MPI_Allreduce(MPI_IN_PLACE, x, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
            t0 = MPI_Wtime() - t0;
            alone = t0 < alone ? t0 : alone;
        }
        const double ms = 3 * alone * 1e3 + 1; /* compute longer than the all-reduce */
        for (int test = 0; test < 2; test++) {
            double wait = 1e30;
            for (int i = 0; i < 5; i++) {
                MPI_Request req;
                MPI_Barrier(MPI_COMM_WORLD);
                MPI_Iallreduce(MPI_IN_PLACE, x, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &req);
                sink += compute(buf, nb, ms, &req, test);
                double t0 = MPI_Wtime();
                MPI_Wait(&req, MPI_STATUS_IGNORE);
                t0 = MPI_Wtime() - t0;
                MPI_Allreduce(MPI_IN_PLACE, &t0, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
                wait = t0 < wait ? t0 : wait;
            }
            if (rank == 0)
                printf("# overlap %zu bytes: all-reduce alone %.2f ms; Iallreduce behind %.1f ms "
                       "of compute%s: wait after it %.2f ms (%.0f%% hidden)\n",
                       bytes, 1e3 * alone, ms, test ? " calling MPI_Test" : "", 1e3 * wait,
                       100.0 * (1 - wait / alone));
        }
    }
    if (rank == 0 && sink == 1.2345)
        printf("#\n");
    free(buf);
    free(x);
    free(t);
    MPI_Finalize();
    return 0;
}
