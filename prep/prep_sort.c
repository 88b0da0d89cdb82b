/* prep_sort.c - records sorted and moved: a stable sort by a 64-bit key (prep_sort_by_key) and
 * the all-to-all of records grouped by destination (prep_group_by_dest, prep_exchange), used
 * by select's dedup and by pack; prep_internal.h says what each does.
 *
 * The sort:
 * qsort was the top of the pack stage's profile (14% of it on 1M short documents, glibc's merge
 * sort calling a comparator per step); a radix sort of (key, index) pairs and one permutation
 * of the records does the same in a few linear passes. */
#include "prep_internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    uint64_t key;
    uint64_t idx;
} kv_t;

int prep_sort_by_key(void *items, size_t n, size_t sz, const uint64_t *keys) {
    if (n < 2)
        return 0;
    kv_t *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    char *tmp = malloc(n * sz);
    if (!a || !b || !tmp) {
        free(a);
        free(b);
        free(tmp);
        return -1;
    }
    uint64_t all_or = 0, all_and = UINT64_MAX;
    for (size_t i = 0; i < n; i++) {
        a[i].key = keys[i];
        a[i].idx = i;
        all_or |= keys[i];
        all_and &= keys[i];
    }
    for (int shift = 0; shift < 64; shift += 8) {
        if ((((all_or ^ all_and) >> shift) & 0xff) == 0)
            continue; /* every key has the same byte here */
        size_t count[257] = {0};
        for (size_t i = 0; i < n; i++)
            count[((a[i].key >> shift) & 0xff) + 1]++;
        for (int d = 0; d < 256; d++)
            count[d + 1] += count[d];
        for (size_t i = 0; i < n; i++)
            b[count[(a[i].key >> shift) & 0xff]++] = a[i];
        kv_t *t = a;
        a = b;
        b = t;
    }
    for (size_t i = 0; i < n; i++)
        memcpy(tmp + i * sz, (const char *)items + a[i].idx * sz, sz);
    memcpy(items, tmp, n * sz);
    free(a);
    free(b);
    free(tmp);
    return 0;
}

/* ---- moving records between ranks --------------------------------------------------------- */

int prep_group_by_dest(const void *items, size_t n, size_t sz, const int *dest, int n_ranks,
                       void **out, uint64_t *count) {
    uint64_t *fill = calloc((size_t)n_ranks, sizeof *fill);
    char *o = malloc((n ? n : 1) * sz);
    if (!fill || !o) {
        free(fill);
        free(o);
        return -1;
    }
    memset(count, 0, (size_t)n_ranks * sizeof *count);
    for (size_t i = 0; i < n; i++)
        count[dest[i]]++;
    for (int r = 1; r < n_ranks; r++)
        fill[r] = fill[r - 1] + count[r - 1];
    for (size_t i = 0; i < n; i++)
        memcpy(o + fill[dest[i]]++ * sz, (const char *)items + i * sz, sz);
    free(fill);
    *out = o;
    return 0;
}

int prep_exchange(MPI_Comm comm, void *sbuf, const uint64_t *count, size_t sz, void **rbuf,
                  size_t *n_recv) {
    int n_ranks;
    MPI_Comm_size(comm, &n_ranks);
    *rbuf = NULL;
    *n_recv = 0;
    if (n_ranks == 1) {
        *rbuf = sbuf;
        *n_recv = (size_t)count[0];
        return PREP_OK;
    }
    uint64_t *sdisp = malloc((size_t)n_ranks * sizeof *sdisp);
    uint64_t *rcount = malloc((size_t)n_ranks * sizeof *rcount);
    uint64_t *rdisp = malloc((size_t)n_ranks * sizeof *rdisp);
    uint8_t *in = NULL;
    int st = sdisp && rcount && rdisp ? PREP_OK : PREP_ERR_NOMEM;
    if ((st = cluster_agree(comm, st)) != PREP_OK)
        goto done;
    MPI_Alltoall(count, 1, MPI_UINT64_T, rcount, 1, MPI_UINT64_T, comm);
    uint64_t so = 0, ro = 0;
    for (int r = 0; r < n_ranks; r++) {
        sdisp[r] = so;
        rdisp[r] = ro;
        so += count[r];
        ro += rcount[r];
    }
    in = malloc(ro ? ro * sz : 1);
    if ((st = cluster_agree(comm, in ? PREP_OK : PREP_ERR_NOMEM)) != PREP_OK)
        goto done;
    if (cluster_alltoallv_big(sbuf, count, sdisp, in, rcount, rdisp, sz, comm) != CLUSTER_OK)
        st = PREP_ERR_MPI;
    if ((st = cluster_agree(comm, st)) == PREP_OK) {
        *rbuf = in;
        *n_recv = (size_t)ro;
        in = NULL;
    }
done:
    free(sbuf);
    free(sdisp);
    free(rcount);
    free(rdisp);
    free(in);
    return st;
}
