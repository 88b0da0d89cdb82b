/* cluster_groups.c - the world's ranks as tensor-parallel groups (replicas), items handed to
 * them, and their results gathered on rank 0 by item (moved from infer_main.c so that infer's
 * batch mode, perplexity and eval share them). */
#include "cluster.h"

#include <stdlib.h>
#include <string.h>

int cluster_groups_make(MPI_Comm world, int tp, cluster_groups *g) {
    memset(g, 0, sizeof *g);
    g->tp = MPI_COMM_SELF;
    g->world = world;
    if (MPI_Comm_rank(world, &g->rank) != MPI_SUCCESS ||
        MPI_Comm_size(world, &g->size) != MPI_SUCCESS)
        return CLUSTER_ERR_MPI;
    g->tp_size = tp > 0 ? tp : g->size;
    if (tp < 0 || g->tp_size > g->size || g->size % g->tp_size)
        return CLUSTER_ERR_ARG;
    g->replica = g->rank / g->tp_size;
    g->tp_rank = g->rank % g->tp_size;
    g->n_replicas = g->size / g->tp_size;
    if (g->tp_size > 1 && MPI_Comm_split(world, g->replica, g->tp_rank, &g->tp) != MPI_SUCCESS) {
        g->tp = MPI_COMM_SELF;
        return CLUSTER_ERR_MPI;
    }
    return CLUSTER_OK;
}

void cluster_groups_free(cluster_groups *g) {
    if (g->tp != MPI_COMM_SELF && g->tp != MPI_COMM_NULL)
        MPI_Comm_free(&g->tp);
    g->tp = MPI_COMM_SELF;
}

uint64_t cluster_groups_next(const cluster_groups *g, cluster_queue *q, int stop) {
    uint64_t item = UINT64_MAX;
    if (g->tp_rank == 0 && !stop && cluster_queue_next(q, &item) != CLUSTER_OK)
        item = UINT64_MAX;
    if (g->tp_size > 1)
        MPI_Bcast(&item, 1, MPI_UINT64_T, 0, g->tp);
    return item;
}

/* ---- records --------------------------------------------------------------------------------*/

int cluster_records_add(cluster_records *b, uint64_t item, const void *bytes, uint64_t n) {
    const size_t need = b->n + 16 + (size_t)n;
    if (need > b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 4096;
        cap = cap < need ? need : cap;
        char *q = realloc(b->p, cap);
        if (!q)
            return CLUSTER_ERR_NOMEM;
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->n, &item, 8);
    memcpy(b->p + b->n + 8, &n, 8);
    if (n)
        memcpy(b->p + b->n + 16, bytes, (size_t)n);
    b->n = need;
    return CLUSTER_OK;
}

void cluster_records_free(cluster_records *b) {
    free(b->p);
    memset(b, 0, sizeof *b);
}

int cluster_records_gather(MPI_Comm comm, const cluster_records *mine, char **all, size_t *n_all) {
    int size, rank;
    MPI_Comm_size(comm, &size);
    MPI_Comm_rank(comm, &rank);
    *all = NULL;
    *n_all = 0;
    long long n = (long long)mine->n, *ns = rank == 0 ? malloc((size_t)size * sizeof *ns) : NULL;
    int *cnt = rank == 0 ? malloc((size_t)size * sizeof *cnt) : NULL;
    int *off = rank == 0 ? malloc((size_t)size * sizeof *off) : NULL;
    int st = rank == 0 && (!ns || !cnt || !off) ? CLUSTER_ERR_NOMEM : CLUSTER_OK;
    st = cluster_agree(comm, st);
    if (st == CLUSTER_OK &&
        MPI_Gather(&n, 1, MPI_LONG_LONG, ns, 1, MPI_LONG_LONG, 0, comm) != MPI_SUCCESS)
        st = CLUSTER_ERR_MPI;
    long long total = 0;
    if (st == CLUSTER_OK && rank == 0) {
        for (int r = 0; r < size; r++)
            total += ns[r];
        *all = total < INT32_MAX ? malloc((size_t)total + 1) : NULL;
        for (int r = 0, at = 0; *all && r < size; at += cnt[r], r++) {
            cnt[r] = (int)ns[r];
            off[r] = at;
        }
        if (!*all)
            st = CLUSTER_ERR_NOMEM;
    }
    st = cluster_agree(comm, st);
    if (st == CLUSTER_OK && MPI_Gatherv(mine->p, (int)mine->n, MPI_BYTE, rank == 0 ? *all : NULL,
                                        cnt, off, MPI_BYTE, 0, comm) != MPI_SUCCESS)
        st = CLUSTER_ERR_MPI;
    if (st == CLUSTER_OK && rank == 0)
        *n_all = (size_t)total;
    if (st != CLUSTER_OK) {
        free(*all);
        *all = NULL;
    }
    free(ns);
    free(cnt);
    free(off);
    return st;
}

int cluster_records_index(const char *all, size_t n_all, uint64_t n_items, const char ***rec) {
    *rec = calloc(n_items ? n_items : 1, sizeof **rec);
    if (!*rec)
        return CLUSTER_ERR_NOMEM;
    for (size_t at = 0; at + 16 <= n_all;) {
        uint64_t item, n;
        memcpy(&item, all + at, 8);
        memcpy(&n, all + at + 8, 8);
        if (item < n_items)
            (*rec)[item] = all + at;
        at += 16 + (size_t)n;
    }
    return CLUSTER_OK;
}

const char *cluster_record_bytes(const char *rec, uint64_t *n) {
    memcpy(n, rec + 8, 8);
    return rec + 16;
}
