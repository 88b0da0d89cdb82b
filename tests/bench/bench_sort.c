/* bench_sort.c - prep_sort_by_key (prep/prep_sort.c) on the key shapes prep sorts: random
 * 64-bit keys (dedup's hashes, the copies' keys), keys of one rank's range of them (the copies
 * after the deal, top bits equal), (unit << 32 | sequence) of pieces in random order (the unit
 * owner's pass) and (slot << 31 | start) of a writer's pieces as two owners send them (each
 * owner's part in 64 ranges of slots, in its own order inside a range).
 *   bench_sort [N=2000000] [SIZE=48] [REPS=5]
 * Prints the best of REPS in ms and ns per item for each shape; results in BENCHMARKS.md. */
#include "cluster.h"
#include "prep_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng_next(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

enum { SHAPE_RANDOM, SHAPE_RANGE, SHAPE_UNITS, SHAPE_RUNS, SHAPE_N };
static const char *shape_name[SHAPE_N] = {"random 64-bit", "one rank's range of 4",
                                          "unit << 32 + seq, random order",
                                          "slot << 31 + start, from 2 owners"};

typedef struct {
    uint64_t order, key;
} gen_t;

static int cmp_gen(const void *a, const void *b) {
    const gen_t *x = a, *y = b;
    return (x->order > y->order) - (x->order < y->order);
}

/* A writer's pieces: 170 of 24 tokens a slot, piece i from owner (hash & 1), in the order
 * (owner, range of slots, the owner's own order). */
static void writer_keys(uint64_t *keys, size_t n, uint64_t *s) {
    gen_t *g = malloc(n * sizeof *g);
    const uint64_t n_slots = n / 170 + 1;
    for (size_t i = 0; i < n; i++) {
        uint64_t slot = i / 170, h = rng_next(s);
        g[i].key = slot << 31 | (uint64_t)(i % 170) * 24;
        g[i].order = (h & 1) << 62 | (slot * 64 / n_slots) << 48 | (h >> 16);
    }
    qsort(g, n, sizeof *g, cmp_gen);
    for (size_t i = 0; i < n; i++)
        keys[i] = g[i].key;
    free(g);
}

static uint64_t make_key(int shape, uint64_t *s) {
    switch (shape) {
    case SHAPE_RANDOM:
        return rng_next(s);
    case SHAPE_RANGE:
        return (rng_next(s) >> 2) | (1ull << 62); /* rank 1 of 4 */
    case SHAPE_UNITS:
        return (rng_next(s) % 64) << 32 | (rng_next(s) % 65536);
    default:
        return 0; /* writer_keys */
    }
}

int main(int argc, char **argv) {
    cluster_malloc_reuse(); /* as prep does: the sort's room is not faulted in on every call */
    const size_t n = argc > 1 ? (size_t)strtoull(argv[1], NULL, 10) : 2000000;
    const size_t sz = argc > 2 ? (size_t)strtoull(argv[2], NULL, 10) : 48;
    const int reps = argc > 3 ? atoi(argv[3]) : 5;
    if (n < 2 || sz < 8 || reps < 1) {
        fprintf(stderr, "usage: bench_sort [N >= 2] [SIZE >= 8] [REPS >= 1]\n");
        return 2;
    }
    unsigned char *items = malloc(n * sz), *orig = malloc(n * sz);
    uint64_t *keys = malloc(n * sizeof *keys), *okeys = malloc(n * sizeof *okeys);
    if (!items || !orig || !keys || !okeys) {
        fprintf(stderr, "bench_sort: out of memory\n");
        return 1;
    }
    printf("| keys | items | bytes | best ms | ns per item |\n|---|---|---|---|---|\n");
    for (int shape = 0; shape < SHAPE_N; shape++) {
        uint64_t s = 42;
        if (shape == SHAPE_RUNS)
            writer_keys(okeys, n, &s);
        for (size_t i = 0; i < n; i++) {
            if (shape != SHAPE_RUNS)
                okeys[i] = make_key(shape, &s);
            memset(orig + i * sz, (int)(i & 0xff), sz);
            memcpy(orig + i * sz, &okeys[i], 8);
        }
        double best = 1e30;
        for (int r = 0; r < reps; r++) {
            memcpy(items, orig, n * sz);
            memcpy(keys, okeys, n * sizeof *keys);
            double t0 = cluster_now();
            if (prep_sort_by_key(items, n, sz, keys) != 0) {
                fprintf(stderr, "bench_sort: out of memory sorting\n");
                return 1;
            }
            double t = cluster_now() - t0;
            best = t < best ? t : best;
        }
        for (size_t i = 1; i < n; i++) { /* sorted, or the number means nothing */
            uint64_t a, b;
            memcpy(&a, items + (i - 1) * sz, 8);
            memcpy(&b, items + i * sz, 8);
            if (a > b) {
                fprintf(stderr, "bench_sort: %s: not sorted at %zu\n", shape_name[shape], i);
                return 1;
            }
        }
        printf("| %s | %zu | %zu | %.1f | %.1f |\n", shape_name[shape], n, sz, best * 1e3,
               best * 1e9 / (double)n);
    }
    free(items);
    free(orig);
    free(keys);
    free(okeys);
    return 0;
}
