/* prep_sort.c - a stable sort of records by a 64-bit key (prep_internal.h: prep_sort_by_key).
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
