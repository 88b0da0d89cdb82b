/* test_slurm.c - cluster_slurm_info_get reads the Slurm environment (no MPI needed). */
#include "check.h"
#include "cluster.h"

#include <stdlib.h>
#include <string.h>

int main(void) {
    cluster_slurm_info info;

    setenv("SLURM_JOB_ID", "123456", 1);
    setenv("SLURM_STEP_ID", "2", 1);
    setenv("SLURM_ARRAY_TASK_ID", "7", 1);
    setenv("SLURMD_NODENAME", "gpu-node-042", 1);
    setenv("SLURM_RESTART_COUNT", "3", 1);
    cluster_slurm_info_get(&info);
    CHECK(strcmp(info.job_id, "123456") == 0);
    CHECK(strcmp(info.step_id, "2") == 0);
    CHECK(strcmp(info.array_id, "7") == 0);
    CHECK(strcmp(info.node_name, "gpu-node-042") == 0);
    CHECK_EQ_INT(info.restart_count, 3);

    /* Too long values are cut, always NUL-terminated. */
    char long_name[200];
    memset(long_name, 'n', sizeof(long_name) - 1);
    long_name[sizeof(long_name) - 1] = '\0';
    setenv("SLURMD_NODENAME", long_name, 1);
    setenv("SLURM_RESTART_COUNT", "not-a-number", 1);
    cluster_slurm_info_get(&info);
    CHECK_EQ_INT(strlen(info.node_name), sizeof(info.node_name) - 1);
    CHECK_EQ_INT(info.restart_count, 0);

    /* Outside Slurm: empty fields, and the node name falls back to the host name. */
    unsetenv("SLURM_JOB_ID");
    unsetenv("SLURM_STEP_ID");
    unsetenv("SLURM_ARRAY_TASK_ID");
    unsetenv("SLURMD_NODENAME");
    unsetenv("SLURM_RESTART_COUNT");
    cluster_slurm_info_get(&info);
    CHECK(info.job_id[0] == '\0');
    CHECK(info.step_id[0] == '\0');
    CHECK(info.array_id[0] == '\0');
    CHECK(info.node_name[0] != '\0');
    CHECK_EQ_INT(info.restart_count, 0);

    return check_exit("test_slurm");
}
