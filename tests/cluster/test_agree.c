/* test_agree.c - cluster_agree, cluster_agree_first and cluster_agree_msg: every rank gets the same
 * status and the message of the lowest failing rank; nobody hangs. Run at 1, 2 and 4 ranks. */
#include "check.h"
#include "cluster.h"

#include <stdio.h>
#include <string.h>

static const char *const shard_msg = "shard_000042.bin: offset 1048576: bad magic";

static void test_last_rank_fails(int rank, int n_ranks) {
    char out[256] = "garbage";
    int failed_rank = 12345;
    int st = rank == n_ranks - 1 ? CLUSTER_ERR_ARG : CLUSTER_OK;
    st = cluster_agree_msg(MPI_COMM_WORLD, st, rank == n_ranks - 1 ? shard_msg : NULL, out,
                           sizeof(out), &failed_rank);
    CHECK_EQ_INT(st, CLUSTER_ERR_ARG);
    CHECK_EQ_INT(failed_rank, n_ranks - 1);
    CHECK(strcmp(out, shard_msg) == 0);
    CHECK(strstr(out, "shard_000042.bin") != NULL && strstr(out, "1048576") != NULL);
}

/* The message comes from the lowest failing rank; the status is the worst one. */
static void test_two_fail(int rank, int n_ranks) {
    int low = n_ranks >= 2 ? n_ranks - 2 : 0, high = n_ranks - 1;
    char msg[64];
    snprintf(msg, sizeof(msg), "rank %d: read error", rank);
    int st = CLUSTER_OK;
    if (rank == low)
        st = CLUSTER_ERR_MPI;
    if (rank == high && high != low)
        st = CLUSTER_ERR_REMOTE;
    char out[64];
    int failed_rank = -7;
    int agreed = cluster_agree_msg(MPI_COMM_WORLD, st, msg, out, sizeof(out), &failed_rank);
    char want[64];
    snprintf(want, sizeof(want), "rank %d: read error", low);
    CHECK_EQ_INT(failed_rank, low);
    CHECK(strcmp(out, want) == 0);
    CHECK_EQ_INT(agreed, n_ranks >= 2 ? CLUSTER_ERR_REMOTE : CLUSTER_ERR_MPI);
}

static void test_nobody_fails(int rank) {
    char out[32] = "garbage";
    int failed_rank = 3;
    /* A positive "done" on some ranks is not a failure: the minimum wins. */
    int st = cluster_agree_msg(MPI_COMM_WORLD, rank % 2 ? 1 : CLUSTER_OK, "ignored", out,
                               sizeof(out), &failed_rank);
    CHECK_EQ_INT(st, CLUSTER_OK);
    CHECK_EQ_INT(failed_rank, -1);
    CHECK(out[0] == '\0');

    st = cluster_agree_msg(MPI_COMM_WORLD, 1, NULL, out, sizeof(out), NULL);
    CHECK_EQ_INT(st, 1);
    CHECK(out[0] == '\0');
}

/* Small and absent output buffers, a NULL message, an over-long message. */
static void test_edges(int rank, int n_ranks) {
    char small[8];
    int st = cluster_agree_msg(MPI_COMM_WORLD, rank == 0 ? CLUSTER_ERR_NOMEM : CLUSTER_OK,
                               shard_msg, small, sizeof(small), NULL);
    CHECK_EQ_INT(st, CLUSTER_ERR_NOMEM);
    CHECK(strcmp(small, "shard_0") == 0);

    int failed_rank = -1;
    st = cluster_agree_msg(MPI_COMM_WORLD, rank == n_ranks - 1 ? CLUSTER_ERR_STOPPED : 0, NULL,
                           rank == 0 ? NULL : small, sizeof(small), &failed_rank);
    CHECK_EQ_INT(st, CLUSTER_ERR_STOPPED);
    CHECK_EQ_INT(failed_rank, n_ranks - 1);
    if (rank != 0)
        CHECK(small[0] == '\0');

    static char huge[3000];
    memset(huge, 'm', sizeof(huge) - 1);
    huge[sizeof(huge) - 1] = '\0';
    static char big_out[4096];
    st =
        cluster_agree_msg(MPI_COMM_WORLD, rank == 0 ? -1 : 0, huge, big_out, sizeof(big_out), NULL);
    CHECK_EQ_INT(st, -1);
    CHECK(strlen(big_out) >= 512 && strlen(big_out) < 1024);
    CHECK(strncmp(big_out, huge, strlen(big_out)) == 0);
}

/* cluster_agree_first: the lowest rank's nonzero value, of either sign; 0 when all are 0 */
static void test_first(int rank, int n_ranks) {
    CHECK_EQ_INT(cluster_agree_first(MPI_COMM_WORLD, 0), 0);
    CHECK_EQ_INT(cluster_agree_first(MPI_COMM_WORLD, rank == n_ranks - 1 ? 2 : 0), 2);
    CHECK_EQ_INT(cluster_agree_first(MPI_COMM_WORLD, rank + 1), 1);
    CHECK_EQ_INT(cluster_agree_first(MPI_COMM_WORLD, rank ? -5 : 7), 7);
    CHECK_EQ_INT(cluster_agree_first(MPI_COMM_WORLD, rank ? 3 : 0), n_ranks > 1 ? 3 : 0);
}

static void test_agree(int rank, int n_ranks) {
    CHECK_EQ_INT(cluster_agree(MPI_COMM_WORLD, CLUSTER_OK), CLUSTER_OK);
    CHECK_EQ_INT(cluster_agree(MPI_COMM_WORLD, rank == n_ranks - 1 ? CLUSTER_ERR_NOMEM : 1),
                 CLUSTER_ERR_NOMEM);
    CHECK_EQ_INT(cluster_agree(MPI_COMM_WORLD, -rank), -(n_ranks - 1));
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, n_ranks;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &n_ranks);
    cluster_log_setup("test_agree", rank, n_ranks, CLUSTER_LOG_INFO);

    test_agree(rank, n_ranks);
    test_first(rank, n_ranks);
    test_last_rank_fails(rank, n_ranks);
    test_two_fail(rank, n_ranks);
    test_nobody_fails(rank);
    test_edges(rank, n_ranks);

    int n_failed_all = 0;
    MPI_Allreduce(&check_n_failed, &n_failed_all, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    char name[64];
    snprintf(name, sizeof(name), "test_agree[%d/%d]", rank, n_ranks);
    int rc = check_exit(name);
    MPI_Finalize();
    return n_failed_all ? 1 : rc;
}
