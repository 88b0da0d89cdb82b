/*
 * cluster_queue.c - a shared counter of handed-out items, one uint64 in an RMA window on rank 0.
 *
 * Every rank holds a shared lock on the whole window (MPI_Win_lock_all) from create to free, and
 * takes an item with an atomic MPI_Fetch_and_op(+1) completed by MPI_Win_flush.
 *
 * Target progress (does rank 0 have to enter MPI for the others to get items?), measured with
 * Open MPI 4.1.4 by tests/cluster/test_queue.c, where rank 0 sleeps 200 ms outside MPI:
 *   - osc/sm, the default on one node: no. The counter is in shared memory and the
 *     fetch-and-add is a processor atomic; the workers empty the queue in under 1 ms.
 *   - osc/rdma (forced, over btl/vader): no, same timing.
 *   - osc/pt2pt (forced): yes. The workers wait until rank 0 calls MPI again.
 *   - osc/ucx (forced, no RDMA hardware here, so atomics are emulated): yes, and the workers
 *     starved until rank 0 had taken every item.
 * Across nodes (not measured here), osc/ucx or osc/rdma on InfiniBand should do the atomics in
 * the adapter, without target progress. Where they are emulated (TCP), a rank 0 that computes
 * for long stretches without MPI calls delays the others: still correct, but slower.
 *
 * The window is the handle's private communication context, so no MPI_Comm_dup is needed.
 */
#include "cluster.h"

#include <stdlib.h>

struct cluster_queue {
    MPI_Win win;
    uint64_t n_items;
    uint64_t *counter; /* (1) on rank 0, (0) elsewhere: next item to hand out */
    int done;          /* this rank has seen the counter pass n_items: no more RMA */
};

int cluster_queue_create(MPI_Comm comm, uint64_t n_items, cluster_queue **out) {
    if (out)
        *out = NULL;
    if (!out || comm == MPI_COMM_NULL)
        return CLUSTER_ERR_ARG; /* the same on every rank: nobody reaches a collective */
    int rank = 0;
    if (MPI_Comm_rank(comm, &rank) != MPI_SUCCESS)
        return CLUSTER_ERR_MPI;

    int status = CLUSTER_OK;
    cluster_queue *q = calloc(1, sizeof(*q));
    if (!q)
        status = CLUSTER_ERR_NOMEM;
    int agreed = cluster_agree(comm, status);
    if (agreed < 0) {
        free(q);
        return status < 0 ? status : agreed == CLUSTER_ERR_MPI ? agreed : CLUSTER_ERR_REMOTE;
    }

    q->n_items = n_items;
    q->win = MPI_WIN_NULL;
    MPI_Aint size_bytes = rank == 0 ? (MPI_Aint)sizeof(uint64_t) : 0;
    if (MPI_Win_allocate(size_bytes, (int)sizeof(uint64_t), MPI_INFO_NULL, comm, &q->counter,
                         &q->win) != MPI_SUCCESS)
        goto fail_mpi;
    if (rank == 0)
        *q->counter = 0;
    if (MPI_Win_lock_all(0, q->win) != MPI_SUCCESS)
        goto fail_mpi;
    /* The store above must reach the window's public copy before anybody fetches from it:
     * MPI_Win_sync orders it (for the separate memory model), the barrier orders the ranks. */
    if (rank == 0 && MPI_Win_sync(q->win) != MPI_SUCCESS)
        goto fail_mpi;
    if (MPI_Barrier(comm) != MPI_SUCCESS)
        goto fail_mpi;
    *out = q;
    return CLUSTER_OK;

fail_mpi:
    /* Reached only with an error handler that returns; the window is then of no use. */
    free(q);
    return CLUSTER_ERR_MPI;
}

int cluster_queue_next(cluster_queue *q, uint64_t *item) {
    if (!q || !item)
        return CLUSTER_ERR_ARG;
    if (q->done)
        return 1;
    const uint64_t one = 1;
    uint64_t taken = 0;
    if (MPI_Fetch_and_op(&one, &taken, MPI_UINT64_T, 0, 0, MPI_SUM, q->win) != MPI_SUCCESS ||
        MPI_Win_flush(0, q->win) != MPI_SUCCESS)
        return CLUSTER_ERR_MPI;
    if (taken >= q->n_items) {
        q->done = 1;
        return 1;
    }
    *item = taken;
    return CLUSTER_OK;
}

void cluster_queue_free(cluster_queue *q) {
    if (!q)
        return;
    MPI_Win_unlock_all(q->win);
    MPI_Win_free(&q->win);
    free(q);
}
