/*
 * cluster_agree.c - every rank learns the worst status before the next collective.
 *
 * A rank that failed still calls these functions (that is the point): they never return early
 * before their collectives, whatever the arguments, so one bad rank cannot hang the others.
 */
#include "cluster.h"

#include <string.h>

enum { AGREE_MSG_BYTES = 1024 }; /* the broadcast message, NUL included */

int cluster_agree(MPI_Comm comm, int status) {
    int agreed = status;
    if (MPI_Allreduce(&status, &agreed, 1, MPI_INT, MPI_MIN, comm) != MPI_SUCCESS)
        return CLUSTER_ERR_MPI;
    return agreed;
}

int cluster_agree_first(MPI_Comm comm, int rc) {
    int rank = 0, n_ranks = 1;
    if (MPI_Comm_size(comm, &n_ranks) != MPI_SUCCESS || n_ranks == 1)
        return rc;
    MPI_Comm_rank(comm, &rank);
    int mine[2] = {rc != 0 ? rank : n_ranks, rc}, lowest[2];
    if (MPI_Allreduce(mine, lowest, 1, MPI_2INT, MPI_MINLOC, comm) != MPI_SUCCESS)
        return rc ? rc : CLUSTER_ERR_MPI;
    return lowest[0] < n_ranks ? lowest[1] : 0;
}

int cluster_agree_msg(MPI_Comm comm, int status, const char *msg, char *out, size_t out_bytes,
                      int *failed_rank) {
    int rank = 0, n_ranks = 1;
    if (failed_rank)
        *failed_rank = -1;
    if (out && out_bytes > 0)
        out[0] = '\0';
    if (MPI_Comm_rank(comm, &rank) != MPI_SUCCESS || MPI_Comm_size(comm, &n_ranks) != MPI_SUCCESS)
        return CLUSTER_ERR_MPI;

    /* One reduction finds both the worst status and the lowest failing rank (n_ranks when
     * nobody failed). */
    int mine[2] = {status, status < 0 ? rank : n_ranks};
    int agreed[2];
    if (MPI_Allreduce(mine, agreed, 2, MPI_INT, MPI_MIN, comm) != MPI_SUCCESS)
        return CLUSTER_ERR_MPI;
    if (agreed[1] == n_ranks)
        return agreed[0];

    /* A fixed-size buffer: every rank knows the count without a second round trip. */
    char text[AGREE_MSG_BYTES] = "";
    if (rank == agreed[1] && msg) {
        strncpy(text, msg, sizeof(text) - 1);
        text[sizeof(text) - 1] = '\0';
    }
    if (MPI_Bcast(text, (int)sizeof(text), MPI_CHAR, agreed[1], comm) != MPI_SUCCESS)
        return CLUSTER_ERR_MPI;
    text[sizeof(text) - 1] = '\0';
    if (out && out_bytes > 0) {
        size_t len = strlen(text);
        if (len > out_bytes - 1)
            len = out_bytes - 1;
        memcpy(out, text, len);
        out[len] = '\0';
    }
    if (failed_rank)
        *failed_rank = agreed[1];
    return agreed[0];
}
