/*
 * cluster_slurm.c - Slurm job facts from the environment, and stop signals for requeue.
 *
 * Slurm sends SIGTERM at a time limit or preemption (and the signal chosen with --signal a
 * little before). The handler only sets a flag; ranks agree on it with cluster_stop_agreed()
 * between units of work, so all of them save state and stop at the same point.
 */
#include "cluster.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum {
    SLURM_NODE_BYTES = 64, /* sizeof(cluster_slurm_info.node_name) */
    SLURM_NODE_LIST_BYTES = 2048,
};

/* ---- environment -------------------------------------------------------------------------- */

/* Copies what fits, always NUL-terminated: long names are cut, not refused. */
static void copy_text(char *dst, size_t dst_bytes, const char *src) {
    size_t len = strnlen(src, dst_bytes - 1);
    memcpy(dst, src, len);
    dst[len] = '\0';
}

static void copy_env(char *dst, size_t dst_bytes, const char *name) {
    const char *value = getenv(name);
    copy_text(dst, dst_bytes, value ? value : "");
}

void cluster_slurm_info_get(cluster_slurm_info *info) {
    if (!info)
        return;
    memset(info, 0, sizeof(*info));
    copy_env(info->job_id, sizeof(info->job_id), "SLURM_JOB_ID");
    copy_env(info->step_id, sizeof(info->step_id), "SLURM_STEP_ID");
    copy_env(info->array_id, sizeof(info->array_id), "SLURM_ARRAY_TASK_ID");
    copy_env(info->node_name, sizeof(info->node_name), "SLURMD_NODENAME");

    const char *restarts = getenv("SLURM_RESTART_COUNT");
    if (restarts && *restarts) {
        char *end = NULL;
        long n = strtol(restarts, &end, 10);
        if (*end == '\0' && n >= 0 && n <= 1000000)
            info->restart_count = (int)n;
    }

    if (info->node_name[0])
        return;
    int initialized = 0, finalized = 0;
    MPI_Initialized(&initialized);
    MPI_Finalized(&finalized);
    if (initialized && !finalized) {
        char name[MPI_MAX_PROCESSOR_NAME];
        int len = 0;
        if (MPI_Get_processor_name(name, &len) == MPI_SUCCESS && len > 0) {
            copy_text(info->node_name, sizeof(info->node_name), name);
            return;
        }
    }
    /* Outside MPI (unit tests, tools): the host name is what MPI would report. */
    char host[256];
    if (gethostname(host, sizeof(host)) != 0)
        snprintf(host, sizeof(host), "unknown");
    host[sizeof(host) - 1] = '\0';
    copy_text(info->node_name, sizeof(info->node_name), host);
}

/* ---- job summary -------------------------------------------------------------------------- */

/* Distinct names in order of first appearance, comma-separated; cut with "..." if too long.
 * Returns the number of distinct names. */
static int list_nodes(const char *names, int n_ranks, char *list, size_t list_bytes) {
    size_t len = 0;
    int n_nodes = 0, cut = 0;
    list[0] = '\0';
    for (int r = 0; r < n_ranks; r++) {
        const char *name = names + (size_t)r * SLURM_NODE_BYTES;
        int seen = 0;
        for (int s = 0; s < r && !seen; s++)
            seen = strncmp(name, names + (size_t)s * SLURM_NODE_BYTES, SLURM_NODE_BYTES) == 0;
        if (seen)
            continue;
        n_nodes++;
        size_t name_len = strnlen(name, SLURM_NODE_BYTES);
        if (cut || len + name_len + 5 >= list_bytes) {
            cut = 1;
            continue;
        }
        if (len > 0)
            list[len++] = ',';
        memcpy(list + len, name, name_len);
        len += name_len;
        list[len] = '\0';
    }
    if (cut)
        snprintf(list + len, list_bytes - len, ",...");
    return n_nodes;
}

int cluster_log_job(MPI_Comm comm) {
    if (comm == MPI_COMM_NULL)
        return CLUSTER_ERR_ARG;
    int rank = 0, n_ranks = 1;
    if (MPI_Comm_rank(comm, &rank) != MPI_SUCCESS || MPI_Comm_size(comm, &n_ranks) != MPI_SUCCESS)
        return CLUSTER_ERR_MPI;

    cluster_slurm_info info;
    cluster_slurm_info_get(&info);
    _Static_assert(sizeof(info.node_name) == SLURM_NODE_BYTES, "node name size");

    int status = CLUSTER_OK;
    char *names = NULL; /* (n_ranks, SLURM_NODE_BYTES), rank 0 only */
    char *list = NULL;  /* (SLURM_NODE_LIST_BYTES), rank 0 only */
    if (rank == 0) {
        names = malloc((size_t)n_ranks * SLURM_NODE_BYTES);
        list = malloc(SLURM_NODE_LIST_BYTES);
        if (!names || !list)
            status = CLUSTER_ERR_NOMEM;
    }
    int agreed = cluster_agree(comm, status);
    if (agreed < 0) {
        status = status < 0 ? status : agreed == CLUSTER_ERR_MPI ? agreed : CLUSTER_ERR_REMOTE;
        goto done;
    }
    if (MPI_Gather(info.node_name, SLURM_NODE_BYTES, MPI_CHAR, names, SLURM_NODE_BYTES, MPI_CHAR, 0,
                   comm) != MPI_SUCCESS) {
        status = CLUSTER_ERR_MPI;
        goto done;
    }
    if (rank == 0) {
        int n_nodes = list_nodes(names, n_ranks, list, SLURM_NODE_LIST_BYTES);
        /* The job summary is what this function is for, so it logs at INFO (from main's point
         * of view it is main's own summary line). */
        LOG_INFO("job %s%s%s step %s restart %d on %d node%s: %s",
                 info.job_id[0] ? info.job_id : "-", info.array_id[0] ? " array task " : "",
                 info.array_id, info.step_id[0] ? info.step_id : "-", info.restart_count, n_nodes,
                 n_nodes == 1 ? "" : "s", list);
    }

done:
    free(names);
    free(list);
    return status;
}

/* ---- signals ------------------------------------------------------------------------------ */

/* The one static besides the log sink: a signal handler can only talk through such a flag. */
static volatile sig_atomic_t stop_signal;

static void on_stop_signal(int sig) {
    stop_signal = sig;
}

void cluster_signals_install(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART; /* reads and writes in progress carry on; we stop between units */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
}

int cluster_stop_signal(void) {
    return stop_signal;
}

int cluster_stop_agreed(MPI_Comm comm) {
    int mine = stop_signal != 0, any = mine;
    if (MPI_Allreduce(&mine, &any, 1, MPI_INT, MPI_MAX, comm) != MPI_SUCCESS)
        return mine;
    return any;
}
