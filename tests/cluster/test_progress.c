/* test_progress.c - the progress reporter: exact totals from finish() on every rank, whatever
 * the timing; a readable line on rank 0; no hang. Run at 1, 2 and 4 ranks. */
#include "check.h"
#include "cluster.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { CAPTURE_BYTES = 1 << 16 };

static void sleep_seconds(double s) {
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

/* Rank 0's stderr goes to a temporary file between capture_begin and capture_end. */
static FILE *capture_file;
static int capture_saved_fd = -1;

static void capture_begin(void) {
    fflush(stderr);
    capture_file = tmpfile();
    if (!capture_file)
        return;
    capture_saved_fd = dup(STDERR_FILENO);
    dup2(fileno(capture_file), STDERR_FILENO);
}

static void capture_end(char *out, size_t out_bytes) {
    out[0] = '\0';
    if (!capture_file)
        return;
    fflush(stderr);
    dup2(capture_saved_fd, STDERR_FILENO);
    close(capture_saved_fd);
    rewind(capture_file);
    size_t n = fread(out, 1, out_bytes - 1, capture_file);
    out[n] = '\0';
    fclose(capture_file);
    capture_file = NULL;
    fputs(out, stderr); /* keep it in the test log */
}

/* Every rank adds known counts in many small steps with short sleeps, so that the 10 ms
 * interval passes many times: updates are sent, skipped and drained along the way. */
static void test_exact_totals(int rank, int n_ranks) {
    cluster_progress_opts o = cluster_progress_opts_default();
    o.label = "pack";
    o.n_counters = 2;
    o.names[0] = "docs";
    o.names[1] = "bytes";
    uint64_t want_docs = 0, want_bytes = 0;
    for (int r = 0; r < n_ranks; r++) {
        want_docs += 3000 + 100 * (uint64_t)r;
        want_bytes += (3000 + 100 * (uint64_t)r) * 4096 * (uint64_t)(r + 1);
    }
    o.totals[0] = want_docs;
    o.totals[1] = 0; /* unknown */
    o.interval_seconds = 0.01;
    o.live = 0;

    if (rank == 0)
        capture_begin();
    cluster_progress *p = NULL;
    int st = cluster_progress_create(MPI_COMM_WORLD, &o, &p);
    CHECK_EQ_INT(st, CLUSTER_OK);
    if (st != CLUSTER_OK)
        return;
    int n_steps = 3000 + 100 * rank;
    for (int i = 0; i < n_steps; i++) {
        uint64_t deltas[2] = {1, 4096 * (uint64_t)(rank + 1)};
        cluster_progress_add(p, deltas);
        if (i % 100 == 0)
            sleep_seconds(0.003);
    }
    uint64_t totals[2] = {0, 0};
    st = cluster_progress_finish(p, totals);
    cluster_progress_free(p);
    CHECK_EQ_INT(st, CLUSTER_OK);
    CHECK_EQ_U64(totals[0], want_docs);
    CHECK_EQ_U64(totals[1], want_bytes);

    if (rank == 0) {
        static char out[CAPTURE_BYTES];
        capture_end(out, sizeof(out));
        CHECK(strstr(out, " I test_progress[0/") != NULL);
        CHECK(strstr(out, "pack: docs ") != NULL);
        CHECK(strstr(out, "/s), bytes ") != NULL);
        CHECK(strstr(out, " MB/s)") != NULL);
        CHECK(strstr(out, "%, ETA ") != NULL);
        CHECK(strstr(out, "pack done: docs ") != NULL);
        CHECK(strchr(out, '\r') == NULL);
    }
}

/* Rank 0 only polls; the workers reach finish() at different times, the last one late. */
static void test_poll_and_skew(int rank, int n_ranks) {
    cluster_progress_opts o = cluster_progress_opts_default();
    o.label = "tokenize";
    o.n_counters = 1;
    o.names[0] = "tokens";
    o.interval_seconds = 0.01;
    o.live = 1;
    cluster_progress *p = NULL;
    int st = cluster_progress_create(MPI_COMM_WORLD, &o, &p);
    CHECK_EQ_INT(st, CLUSTER_OK);
    if (st != CLUSTER_OK)
        return;
    if (rank == 0) {
        double t0 = cluster_now();
        while (cluster_now() - t0 < 0.1) {
            cluster_progress_poll(p);
            sleep_seconds(0.001);
        }
    } else {
        for (int i = 0; i < 500; i++) {
            uint64_t d = 1000;
            cluster_progress_add(p, &d);
            cluster_progress_poll(p); /* no-op on workers */
            if (i % 50 == 0)
                sleep_seconds(0.002);
        }
        if (rank == n_ranks - 1)
            sleep_seconds(0.15);
    }
    uint64_t total = 0;
    st = cluster_progress_finish(p, &total);
    CHECK_EQ_INT(st, CLUSTER_OK);
    CHECK_EQ_U64(total, (uint64_t)(n_ranks - 1) * 500 * 1000);
    /* Adding after finish counts locally but sends nothing. */
    uint64_t d = 1;
    cluster_progress_add(p, &d);
    cluster_progress_poll(p);
    CHECK_EQ_INT(cluster_progress_finish(p, NULL), CLUSTER_ERR_ARG);
    cluster_progress_free(p);
}

/* Interval 0: a worker tries to send on every add, so it often finds its previous Isend still
 * in flight and must skip; no counters at all; totals NULL. */
static void test_interval_zero(int rank, int n_ranks) {
    cluster_progress_opts o = cluster_progress_opts_default();
    o.n_counters = 1;
    o.names[0] = "items";
    o.totals[0] = 1; /* deliberately wrong: percent may pass 100 */
    o.interval_seconds = 0;
    o.live = 0;
    cluster_progress *p = NULL;
    /* Rank 0 would print on each of its adds: silence it (level WARN drops progress lines). */
    cluster_log_setup("test_progress", rank, n_ranks, CLUSTER_LOG_WARN);
    CHECK_EQ_INT(cluster_progress_create(MPI_COMM_WORLD, &o, &p), CLUSTER_OK);
    for (int i = 0; i < 2000 && p; i++) {
        uint64_t d = (uint64_t)rank + 1;
        cluster_progress_add(p, &d);
    }
    CHECK_EQ_INT(cluster_progress_finish(p, NULL), CLUSTER_OK);
    cluster_progress_free(p);
    cluster_log_setup("test_progress", rank, n_ranks, CLUSTER_LOG_INFO);

    o.n_counters = 0;
    o.label = NULL;
    p = NULL;
    CHECK_EQ_INT(cluster_progress_create(MPI_COMM_WORLD, &o, &p), CLUSTER_OK);
    cluster_progress_add(p, NULL);
    /* No counters means no reduction in finish: the workers get through it at once and rank 0,
     * still polling, drains their final messages before its own finish, which must count them
     * rather than wait for them again. */
    double t0 = cluster_now();
    while (rank == 0 && cluster_now() - t0 < 0.05)
        cluster_progress_poll(p);
    CHECK_EQ_INT(cluster_progress_finish(p, NULL), CLUSTER_OK);
    cluster_progress_free(p);
    cluster_progress_free(NULL);
}

/* Bad options on one rank: that rank gets CLUSTER_ERR_ARG, the others CLUSTER_ERR_REMOTE. */
static void test_bad_opts(int rank, int n_ranks) {
    cluster_progress_opts o = cluster_progress_opts_default();
    o.n_counters = rank == n_ranks - 1 ? CLUSTER_PROGRESS_MAX_COUNTERS + 1 : 1;
    o.names[0] = "docs";
    cluster_progress *p = (cluster_progress *)&o; /* must be reset to NULL */
    int st = cluster_progress_create(MPI_COMM_WORLD, &o, &p);
    CHECK_EQ_INT(st, rank == n_ranks - 1 ? CLUSTER_ERR_ARG : CLUSTER_ERR_REMOTE);
    CHECK(p == NULL);
    CHECK_EQ_INT(cluster_progress_create(MPI_COMM_WORLD, NULL, &p), CLUSTER_ERR_ARG);
    o.n_counters = 1;
    o.interval_seconds = -1;
    CHECK_EQ_INT(cluster_progress_create(MPI_COMM_WORLD, &o, &p), CLUSTER_ERR_ARG);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, n_ranks;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &n_ranks);
    cluster_log_setup("test_progress", rank, n_ranks, CLUSTER_LOG_INFO);

    double t0 = cluster_now();
    test_exact_totals(rank, n_ranks);
    test_poll_and_skew(rank, n_ranks);
    test_interval_zero(rank, n_ranks);
    test_bad_opts(rank, n_ranks);
    CHECK(cluster_now() - t0 < 10);

    int n_failed_all = 0;
    MPI_Allreduce(&check_n_failed, &n_failed_all, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    char name[64];
    snprintf(name, sizeof(name), "test_progress[%d/%d]", rank, n_ranks);
    int rc = check_exit(name);
    MPI_Finalize();
    return n_failed_all ? 1 : rc;
}
