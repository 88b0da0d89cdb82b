/* bench_load.c - the time to load a model split over the mpirun ranks (infer_model_load_mode),
 * with each rank's bytes read and held (infer_model_bytes_read, infer_model_weight_bytes) and
 * its peak resident memory. REPS loads in a row: the first from wherever the file is (evict it
 * from the page cache beforehand for a cold load, e.g. python3 -c "import os; fd =
 * os.open(PATH, os.O_RDONLY); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)"), the others
 * from the page cache.
 * usage: mpirun -np P bench_load MODEL [ram|mmap] [REPS=3]
 * Prints per load and rank: seconds until this rank returned, until every rank had, MiB read and
 * held; then each rank's peak RSS. */
#include "infer.h"

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, P;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &P);
    if (argc < 2) {
        if (rank == 0)
            fprintf(stderr, "usage: mpirun -np P bench_load MODEL [ram|mmap] [REPS]\n");
        MPI_Finalize();
        return 2;
    }
    const int mode = argc > 2 && !strcmp(argv[2], "mmap") ? INFER_LOAD_MMAP : INFER_LOAD_RAM;
    const int reps = argc > 3 ? atoi(argv[3]) : 3;
    int rc = 0;
    for (int i = 0; i < reps && !rc; i++) {
        MPI_Barrier(MPI_COMM_WORLD);
        const double t0 = now();
        infer_model *m;
        int st = infer_model_load_mode(argv[1], mode, MPI_COMM_WORLD, &m);
        const double t1 = now();
        MPI_Barrier(MPI_COMM_WORLD);
        const double t2 = now();
        if (st != INFER_OK) {
            fprintf(stderr, "rank %d: %s: %s\n", rank, infer_strerror(st), infer_model_errmsg(m));
            rc = 1;
        } else {
            printf("load %d rank %d/%d %s: %.3f s (all ranks %.3f s) read %.1f MiB holds %.1f "
                   "MiB\n",
                   i, rank, P, mode == INFER_LOAD_MMAP ? "mmap" : "ram", t1 - t0, t2 - t0,
                   (double)infer_model_bytes_read(m) / 1048576.0,
                   (double)infer_model_weight_bytes(m) / 1048576.0);
        }
        infer_model_free(m);
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("rank %d/%d peak rss %.1f MiB\n", rank, P, (double)ru.ru_maxrss / 1024.0);
    MPI_Finalize();
    return rc;
}
