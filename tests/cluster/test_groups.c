/* test_groups.c - tensor-parallel groups (replicas), their items and their results gathered on
 * rank 0 by item: every tp that divides the ranks (and 0: one group), a tp that does not, each
 * queued item done by exactly one group (all of its ranks agreeing on it), every result found
 * under its item whichever group made it. Run at 1, 2 and 4 ranks. */
#include "check.h"
#include "cluster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void one_tp(int tp, int rank, int size) {
    cluster_groups g;
    CHECK_EQ_INT(cluster_groups_make(MPI_COMM_WORLD, tp, &g), CLUSTER_OK);
    const int want = tp ? tp : size;
    CHECK_EQ_INT(g.tp_size, want);
    CHECK_EQ_INT(g.n_replicas, size / want);
    CHECK_EQ_INT(g.replica, rank / want);
    CHECK_EQ_INT(g.tp_rank, rank % want);
    int n_tp, r_tp;
    MPI_Comm_size(g.tp, &n_tp);
    MPI_Comm_rank(g.tp, &r_tp);
    CHECK_EQ_INT(n_tp, want);
    CHECK_EQ_INT(r_tp, g.tp_rank);

    /* items from the queue: every rank of a group gets the same ones; the group's rank 0 keeps
     * a result naming the replica */
    enum { N_ITEMS = 23 };
    cluster_queue *q = NULL;
    CHECK_EQ_INT(cluster_queue_create(MPI_COMM_WORLD, N_ITEMS, &q), CLUSTER_OK);
    cluster_records mine = {0};
    uint64_t sum = 0, n_got = 0;
    for (;;) {
        const uint64_t item = cluster_groups_next(&g, q, 0);
        if (item == UINT64_MAX)
            break;
        CHECK(item < N_ITEMS);
        uint64_t root = item; /* the group's rank 0 drew it: the others must agree */
        MPI_Bcast(&root, 1, MPI_UINT64_T, 0, g.tp);
        CHECK_EQ_U64(root, item);
        if (g.tp_rank == 0) {
            char text[64];
            const int n = snprintf(text, sizeof text, "item %llu by replica %d",
                                   (unsigned long long)item, g.replica);
            CHECK_EQ_INT(cluster_records_add(&mine, item, text, (uint64_t)n), CLUSTER_OK);
            sum += item;
            n_got++;
        }
    }
    cluster_queue_free(q);
    uint64_t tot[2] = {0, 0}, loc[2] = {sum, n_got};
    MPI_Allreduce(loc, tot, 2, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD);
    CHECK_EQ_U64(tot[1], N_ITEMS); /* each item once: by count and by sum */
    CHECK_EQ_U64(tot[0], (uint64_t)N_ITEMS * (N_ITEMS - 1) / 2);

    char *all = NULL;
    size_t n_all = 0;
    CHECK_EQ_INT(cluster_records_gather(MPI_COMM_WORLD, &mine, &all, &n_all), CLUSTER_OK);
    if (rank == 0) {
        const char **rec = NULL;
        CHECK_EQ_INT(cluster_records_index(all, n_all, N_ITEMS, &rec), CLUSTER_OK);
        for (uint64_t i = 0; rec && i < N_ITEMS; i++) {
            CHECK(rec[i] != NULL);
            if (!rec[i])
                continue;
            uint64_t n;
            const char *b = cluster_record_bytes(rec[i], &n);
            char want_prefix[32];
            const int np = snprintf(want_prefix, sizeof want_prefix, "item %llu by replica ",
                                    (unsigned long long)i);
            CHECK(n > (uint64_t)np && !memcmp(b, want_prefix, (size_t)np));
            const int rep = atoi(b + np);
            CHECK(rep >= 0 && rep < g.n_replicas);
        }
        free(rec);
    } else {
        CHECK(all == NULL);
    }
    free(all);
    cluster_records_free(&mine);
    cluster_groups_free(&g);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    for (int tp = 0; tp <= size; tp++)
        if (tp == 0 || size % tp == 0)
            one_tp(tp, rank, size);
    cluster_groups g;
    CHECK_EQ_INT(cluster_groups_make(MPI_COMM_WORLD, size + 1, &g), CLUSTER_ERR_ARG);
    CHECK_EQ_INT(g.size, size);
    CHECK(g.tp == MPI_COMM_SELF);
    if (size == 4)
        CHECK_EQ_INT(cluster_groups_make(MPI_COMM_WORLD, 3, &g), CLUSTER_ERR_ARG);
    CHECK_EQ_INT(cluster_groups_make(MPI_COMM_WORLD, -1, &g), CLUSTER_ERR_ARG);
    /* an empty gather */
    cluster_records none = {0};
    char *all = NULL;
    size_t n_all = 7;
    CHECK_EQ_INT(cluster_records_gather(MPI_COMM_WORLD, &none, &all, &n_all), CLUSTER_OK);
    CHECK_EQ_U64(n_all, 0);
    free(all);
    const int rc = check_exit("test_groups");
    MPI_Finalize();
    return rc;
}
