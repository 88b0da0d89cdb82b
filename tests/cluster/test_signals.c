/* test_signals.c - stop signals agreed across ranks, and the job summary line of
 * cluster_log_job. Run at 1, 2 and 4 ranks. */
#include "check.h"
#include "cluster.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { CAPTURE_BYTES = 8192 };

static void test_stop(int rank, int n_ranks) {
    cluster_signals_install();
    CHECK_EQ_INT(cluster_stop_signal(), 0);
    CHECK_EQ_INT(cluster_stop_agreed(MPI_COMM_WORLD), 0);

    if (rank == n_ranks - 1)
        raise(SIGUSR1); /* the handler only sets a flag: the process carries on */
    CHECK_EQ_INT(cluster_stop_signal(), rank == n_ranks - 1 ? SIGUSR1 : 0);
    CHECK_EQ_INT(cluster_stop_agreed(MPI_COMM_WORLD), 1);
    CHECK_EQ_INT(cluster_stop_agreed(MPI_COMM_WORLD), 1); /* and it stays set */

    if (rank == 0)
        raise(SIGTERM);
    CHECK_EQ_INT(cluster_stop_signal(), rank == 0 ? SIGTERM : rank == n_ranks - 1 ? SIGUSR1 : 0);
    CHECK_EQ_INT(cluster_stop_agreed(MPI_COMM_WORLD), 1);
}

/* Two fake nodes (even and odd ranks); rank 0's stderr is captured and compared. */
static void test_log_job(int rank, int n_ranks) {
    setenv("SLURM_JOB_ID", "4242", 1);
    setenv("SLURM_STEP_ID", "0", 1);
    unsetenv("SLURM_ARRAY_TASK_ID");
    setenv("SLURM_RESTART_COUNT", "2", 1);
    setenv("SLURMD_NODENAME", rank % 2 ? "node-b" : "node-a", 1);

    FILE *tmp = NULL;
    int saved = -1;
    if (rank == 0) {
        fflush(stderr);
        tmp = tmpfile();
        CHECK(tmp != NULL);
        if (tmp) {
            saved = dup(STDERR_FILENO);
            dup2(fileno(tmp), STDERR_FILENO);
        }
    }
    int st = cluster_log_job(MPI_COMM_WORLD);
    CHECK_EQ_INT(st, CLUSTER_OK);
    if (!tmp)
        return;
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    rewind(tmp);
    char out[CAPTURE_BYTES];
    size_t n = fread(out, 1, sizeof(out) - 1, tmp);
    out[n] = '\0';
    fclose(tmp);
    fputs(out, stderr);
    const char *want = n_ranks == 1 ? "job 4242 step 0 restart 2 on 1 node: node-a\n"
                                    : "job 4242 step 0 restart 2 on 2 nodes: node-a,node-b\n";
    CHECK(strstr(out, want) != NULL);
    CHECK(strstr(out, " I test_signals[0/") != NULL);

    /* Outside Slurm the node name comes from MPI_Get_processor_name. */
    unsetenv("SLURMD_NODENAME");
    cluster_slurm_info info;
    cluster_slurm_info_get(&info);
    char name[MPI_MAX_PROCESSOR_NAME];
    int len = 0;
    MPI_Get_processor_name(name, &len);
    CHECK(strncmp(info.node_name, name, sizeof(info.node_name) - 1) == 0);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, n_ranks;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &n_ranks);
    cluster_log_setup("test_signals", rank, n_ranks, CLUSTER_LOG_INFO);

    test_stop(rank, n_ranks);
    test_log_job(rank, n_ranks);
    CHECK_EQ_INT(cluster_log_job(MPI_COMM_NULL), CLUSTER_ERR_ARG);

    int n_failed_all = 0;
    MPI_Allreduce(&check_n_failed, &n_failed_all, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    char name[64];
    snprintf(name, sizeof(name), "test_signals[%d/%d]", rank, n_ranks);
    int rc = check_exit(name);
    MPI_Finalize();
    return n_failed_all ? 1 : rc;
}
