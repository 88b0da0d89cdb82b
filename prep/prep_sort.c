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

typedef prep_kv kv_t;

/* Digits of 11 bits: 2048 buckets stay in L1, and six passes cover 64-bit keys (eight of 8
 * bits took 1.3x as long on 4M random keys). */
#define DIGIT_BITS 11
#define N_BUCKETS  (1u << DIGIT_BITS)
/* Below this many items one LSD sort of (key, index) pairs and one gather; above, the items
 * are first dealt by their top digit (MSD) and each bucket, a cache's worth, is sorted on its
 * own: 16M items of 48 bytes with random keys took 1.77 s the first way (half of it the
 * gather's cache misses over the whole array), 1.05 s this way; 4M, 0.42 and 0.24 s. */
#define MSD_MIN_ITEMS 65536
/* Buckets of the MSD pass up to this many items may be sorted by counting and insertion. */
#define SMALL_MAX 4096

static inline void copy_item(void *dst, const void *src, size_t sz) {
    switch (sz) { /* constant sizes: inlined moves, not a call per item */
    case 8:
        memcpy(dst, src, 8);
        break;
    case 16:
        memcpy(dst, src, 16);
        break;
    case 24:
        memcpy(dst, src, 24);
        break;
    case 32:
        memcpy(dst, src, 32);
        break;
    case 40:
        memcpy(dst, src, 40);
        break;
    case 48:
        memcpy(dst, src, 48);
        break;
    default:
        memcpy(dst, src, sz);
    }
}

/* One counting pass: a[0, n) into b stably by the digit (key >> shift) & mask (mask + 1 <=
 * N_BUCKETS). 0 if every key has the same digit (nothing moved), 1 if b holds the pass. */
static int deal_pairs(const kv_t *a, kv_t *b, size_t n, int shift, uint64_t mask) {
    size_t count[N_BUCKETS + 1];
    memset(count, 0, (mask + 2) * sizeof *count);
    for (size_t i = 0; i < n; i++)
        count[((a[i].key >> shift) & mask) + 1]++;
    if (count[((a[0].key >> shift) & mask) + 1] == n)
        return 0;
    for (uint64_t d = 0; d < mask + 1; d++)
        count[d + 1] += count[d];
    for (size_t i = 0; i < n; i++)
        b[count[(a[i].key >> shift) & mask]++] = a[i];
    return 1;
}

/* Sorts a[0, n) stably by the key bits set in `bits` (the others equal in all of a), with b
 * as room; returns the sorted array (a or b). */
static kv_t *lsd_pairs(kv_t *a, kv_t *b, size_t n, uint64_t bits) {
    for (int shift = 0; shift < 64; shift += DIGIT_BITS) {
        const uint64_t mask = N_BUCKETS - 1;
        if (((bits >> shift) & mask) == 0)
            continue; /* every key has the same digit here */
        if (!deal_pairs(a, b, n, shift, mask))
            continue;
        kv_t *t = a;
        a = b;
        b = t;
    }
    return a;
}

/* Sorts a[0, m) stably by key, as lsd_pairs does, for the buckets of the MSD pass. When the
 * keys' top differing bits are dense (random keys: the copies', dedup's hashes) and the bucket
 * small: one counting pass on a top digit of about log2(m) bits, then insertion by the whole
 * key, which has little left to do (random keys: about m / 4 moves). Should the insertion do
 * more than 8 moves an item (keys crowded), lsd_pairs finishes: both are stable, so that is
 * too. Otherwise lsd_pairs, whose passes skip the digits that do not differ. 2M items of 48
 * bytes with random keys (bench_sort): 80 ms by lsd_pairs alone, 70 this way; a bucket of 1000
 * keys took five 11-bit passes, most of each spent on its 2048 counters. */
static kv_t *bucket_pairs(kv_t *a, kv_t *b, size_t m, uint64_t bits) {
    if (m > SMALL_MAX)
        return lsd_pairs(a, b, m, bits);
    if (m > 32) {
        int d = 1;
        while (d < DIGIT_BITS && ((size_t)1 << d) < m)
            d++;
        const int hi = 63 - __builtin_clzll(bits);
        const int lo = hi + 1 > d ? hi + 1 - d : 0;
        const uint64_t mask = ((uint64_t)1 << d) - 1;
        if (__builtin_popcountll((bits >> lo) & mask) < d - 1)
            return lsd_pairs(a, b, m, bits); /* sparse: the digit would not spread them */
        if (deal_pairs(a, b, m, lo, mask)) {
            kv_t *t = a;
            a = b;
            b = t;
        }
    }
    size_t moves = 0, budget = 8 * m;
    for (size_t i = 1; i < m; i++) {
        kv_t x = a[i];
        size_t j = i;
        for (; j > 0 && a[j - 1].key > x.key; j--)
            a[j] = a[j - 1];
        a[j] = x;
        if ((moves += i - j) > budget)
            return lsd_pairs(a, b, m, bits);
    }
    return a;
}

int prep_sort_by_key(void *items, size_t n, size_t sz, const uint64_t *keys) {
    if (n < 2)
        return 0;
    uint64_t all_or = 0, all_and = UINT64_MAX;
    for (size_t i = 0; i < n; i++) {
        all_or |= keys[i];
        all_and &= keys[i];
    }
    const uint64_t bits = all_or ^ all_and; /* the bits that differ somewhere */
    if (bits == 0)
        return 0; /* all keys equal: stable is as they are */
    char *it = items, *tmp = malloc(n * sz);
    if (!tmp)
        return -1;
    if (n < MSD_MIN_ITEMS) {
        kv_t *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
        if (!a || !b) {
            free(a);
            free(b);
            free(tmp);
            return -1;
        }
        for (size_t i = 0; i < n; i++) {
            a[i].key = keys[i];
            a[i].idx = i;
        }
        kv_t *s = lsd_pairs(a, b, n, bits);
        for (size_t i = 0; i < n; i++)
            copy_item(tmp + i * sz, it + s[i].idx * sz, sz);
        memcpy(items, tmp, n * sz);
        free(a);
        free(b);
        free(tmp);
        return 0;
    }
    /* MSD: the items dealt into tmp by the top digit of the bits that differ */
    const int hi = 63 - __builtin_clzll(bits);
    const int lo = hi + 1 > DIGIT_BITS ? hi + 1 - DIGIT_BITS : 0;
    const uint64_t mask = N_BUCKETS - 1;
    size_t *start = calloc(N_BUCKETS + 1, sizeof *start);
    size_t *fill = malloc(N_BUCKETS * sizeof *fill);
    uint64_t *tkeys = malloc(n * sizeof *tkeys);
    if (!start || !fill || !tkeys) {
        free(start);
        free(fill);
        free(tkeys);
        free(tmp);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        start[((keys[i] >> lo) & mask) + 1]++;
    size_t most = 0;
    for (unsigned d = 0; d < N_BUCKETS; d++) {
        most = start[d + 1] > most ? start[d + 1] : most;
        start[d + 1] += start[d];
        fill[d] = start[d];
    }
    for (size_t i = 0; i < n; i++) {
        size_t at = fill[(keys[i] >> lo) & mask]++;
        copy_item(tmp + at * sz, it + i * sz, sz);
        tkeys[at] = keys[i];
    }
    free(fill);
    /* each bucket by the bits below the digit, back into items */
    const uint64_t low = lo > 0 ? bits & ((UINT64_C(1) << lo) - 1) : 0;
    kv_t *a = low ? malloc(most * sizeof *a) : NULL, *b = low ? malloc(most * sizeof *b) : NULL;
    if (low && (!a || !b)) {
        free(a);
        free(b);
        free(start);
        free(tkeys);
        free(tmp);
        return -1;
    }
    for (unsigned d = 0; d < N_BUCKETS; d++) {
        const size_t s0 = start[d], m = start[d + 1] - s0;
        if (m < 2 || low == 0) {
            memcpy(it + s0 * sz, tmp + s0 * sz, m * sz);
            continue;
        }
        for (size_t i = 0; i < m; i++) {
            a[i].key = tkeys[s0 + i];
            a[i].idx = s0 + i;
        }
        kv_t *s = bucket_pairs(a, b, m, low);
        for (size_t i = 0; i < m; i++)
            copy_item(it + (s0 + i) * sz, tmp + s[i].idx * sz, sz);
    }
    free(a);
    free(b);
    free(start);
    free(tkeys);
    free(tmp);
    return 0;
}

prep_kv *prep_sort_pairs(prep_kv *a, prep_kv *b, size_t n) {
    if (n < 2)
        return a;
    uint64_t all_or = 0, all_and = UINT64_MAX;
    for (size_t i = 0; i < n; i++) {
        all_or |= a[i].key;
        all_and &= a[i].key;
    }
    return (all_or ^ all_and) ? bucket_pairs(a, b, n, all_or ^ all_and) : a;
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
    if (sz % 8 == 0) { /* whole words, as in prep_sort_by_key */
        const size_t w = sz / 8;
        uint64_t *dst = (uint64_t *)(void *)o;
        const uint64_t *src = items;
        for (size_t i = 0; i < n; i++) {
            uint64_t *d = dst + fill[dest[i]]++ * w;
            for (size_t k = 0; k < w; k++)
                d[k] = src[i * w + k];
        }
    } else {
        for (size_t i = 0; i < n; i++)
            memcpy(o + fill[dest[i]]++ * sz, (const char *)items + i * sz, sz);
    }
    free(fill);
    *out = o;
    return 0;
}

int prep_group_take(void **items, size_t n, size_t sz, const int *dest, int n_ranks, void **out,
                    uint64_t *count) {
    int one = *items != NULL && n > 0;
    for (size_t i = 1; one && i < n; i++)
        one = dest[i] == dest[0];
    if (one) { /* all to one rank (every time at one rank): the buffer as it is */
        memset(count, 0, (size_t)n_ranks * sizeof *count);
        count[dest[0]] = n;
        *out = *items;
        *items = NULL;
        return 0;
    }
    if (prep_group_by_dest(*items, n, sz, dest, n_ranks, out, count) != 0)
        return -1;
    free(*items);
    *items = NULL;
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
