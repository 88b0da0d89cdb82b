/* test_prep_sort.c - prep_sort_by_key (the stable radix sort under dedup, selection and
 * packing) and prep_sort_pairs (the bucket sort of copies_by_key) against qsort of (key,
 * original position), and prep_group_by_dest against a
 * plain stable grouping, over key distributions that skip digits, item sizes that are and
 * are not whole words, and sizes from 0 up. */
#include "check.h"
#include "prep_internal.h"

#include <string.h>

static uint64_t rng_next(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

typedef struct {
    uint64_t key, pos;
} ref_t;

static int cmp_ref(const void *a, const void *b) {
    const ref_t *x = a, *y = b;
    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

enum {
    KEYS_RANDOM,
    KEYS_FEW,
    KEYS_EQUAL,
    KEYS_HIGH,
    KEYS_TOP_DIGIT,
    KEYS_SORTED,
    KEYS_REVERSED,
    KEYS_CROWDED
};

static uint64_t make_key(int kind, uint64_t i, uint64_t n, uint64_t *s) {
    switch (kind) {
    case KEYS_RANDOM:
        return rng_next(s);
    case KEYS_FEW: /* many equal keys: stability shows */
        return rng_next(s) % 5;
    case KEYS_EQUAL:
        return 0x1234567890abcdefull;
    case KEYS_HIGH: /* only bits 40..63 vary */
        return rng_next(s) << 40 | 0xabcdeull;
    case KEYS_TOP_DIGIT: /* only the last, short digit (bits 55..63) */
        return (rng_next(s) >> 55) << 55;
    case KEYS_SORTED:
        return i * 3;
    case KEYS_CROWDED: { /* dense-looking digit below the top one, two values of it: the
                          * bucket sort's insertion gives up and LSD finishes */
        uint64_t r = rng_next(s);
        return (r >> 53) << 53 | (r & 1 ? 0x7full << 46 : 0) | (rng_next(s) & 0xffffffffull);
    }
    default:
        return (n - i) << 20;
    }
}

/* Items of sz bytes: the first 8 their position, the rest a pattern of it. */
static void fill_item(unsigned char *it, size_t sz, uint64_t pos) {
    for (size_t b = 0; b < sz; b++)
        it[b] = (unsigned char)(pos * 31 + b);
    memcpy(it, &pos, sz < 8 ? sz : 8);
}

static void test_sort(size_t n, size_t sz, int kind, uint64_t seed) {
    uint64_t s = seed;
    unsigned char *items = malloc(n * sz + 1), *want = malloc(n * sz + 1);
    uint64_t *keys = malloc((n + 1) * sizeof *keys);
    ref_t *ref = malloc((n + 1) * sizeof *ref);
    for (size_t i = 0; i < n; i++) {
        keys[i] = make_key(kind, i, n, &s);
        fill_item(items + i * sz, sz, i);
        ref[i].key = keys[i];
        ref[i].pos = i;
    }
    qsort(ref, n, sizeof *ref, cmp_ref);
    for (size_t i = 0; i < n; i++)
        fill_item(want + i * sz, sz, ref[i].pos);
    CHECK_EQ_INT(prep_sort_by_key(items, n, sz, keys), 0);
    int same = n == 0 || memcmp(items, want, n * sz) == 0;
    if (!same)
        fprintf(stderr, "sort n=%zu sz=%zu kind=%d differs from qsort\n", n, sz, kind);
    CHECK(same);
    free(items);
    free(want);
    free(keys);
    free(ref);
}

static void test_group(size_t n, size_t sz, int n_ranks, uint64_t seed) {
    uint64_t s = seed;
    unsigned char *items = malloc(n * sz + 1), *want = malloc(n * sz + 1), *got = NULL;
    int *dest = malloc((n + 1) * sizeof *dest);
    uint64_t *count = calloc((size_t)n_ranks, sizeof *count);
    for (size_t i = 0; i < n; i++) {
        dest[i] = (int)(rng_next(&s) % (uint64_t)n_ranks);
        fill_item(items + i * sz, sz, i);
    }
    size_t k = 0;
    uint64_t want_count[8] = {0};
    for (int r = 0; r < n_ranks; r++)
        for (size_t i = 0; i < n; i++)
            if (dest[i] == r) {
                fill_item(want + k++ * sz, sz, i);
                want_count[r]++;
            }
    CHECK_EQ_INT(prep_group_by_dest(items, n, sz, dest, n_ranks, (void **)&got, count), 0);
    CHECK(n == 0 || memcmp(got, want, n * sz) == 0);
    for (int r = 0; r < n_ranks; r++)
        CHECK_EQ_U64(count[r], want_count[r]);
    free(got);
    free(items);
    free(want);
    free(dest);
    free(count);
}

/* prep_group_take: one destination passes the buffer on, several group a copy as
 * prep_group_by_dest does and free the input. */
static void test_group_take(void) {
    enum { N = 1000 };
    uint64_t *v = malloc(N * sizeof *v), *keep = v, *out = NULL, count[4];
    int dest[N];
    for (int i = 0; i < N; i++) {
        v[i] = (uint64_t)i;
        dest[i] = 2;
    }
    CHECK_EQ_INT(prep_group_take((void **)&v, N, sizeof *v, dest, 4, (void **)&out, count), 0);
    CHECK(v == NULL && out == keep);
    CHECK(count[0] == 0 && count[1] == 0 && count[2] == N && count[3] == 0);
    for (int i = 0; i < N; i++)
        dest[i] = i % 4 == 1 ? 0 : 3;
    v = out;
    out = NULL;
    CHECK_EQ_INT(prep_group_take((void **)&v, N, sizeof *v, dest, 4, (void **)&out, count), 0);
    CHECK(v == NULL && out != NULL);
    CHECK_EQ_U64(count[0], N / 4);
    CHECK_EQ_U64(count[3], N - N / 4);
    CHECK(out[0] == 1 && out[1] == 5 && out[N / 4] == 0 && out[N / 4 + 1] == 2);
    free(out);
}

/* prep_sort_pairs: the same order as qsort of (key, position), in whichever buffer it says */
static void test_pairs(size_t n, int kind, uint64_t seed) {
    uint64_t s = seed;
    prep_kv *a = malloc((n + 1) * sizeof *a), *b = malloc((n + 1) * sizeof *b);
    ref_t *ref = malloc((n + 1) * sizeof *ref);
    for (size_t i = 0; i < n; i++) {
        a[i].key = ref[i].key = make_key(kind, i, n, &s);
        a[i].idx = ref[i].pos = i;
    }
    qsort(ref, n, sizeof *ref, cmp_ref);
    const prep_kv *v = prep_sort_pairs(a, b, n);
    CHECK(v == a || v == b);
    int same = 1;
    for (size_t i = 0; i < n && same; i++)
        same = v[i].key == ref[i].key && v[i].idx == ref[i].pos;
    if (!same)
        fprintf(stderr, "pairs n=%zu kind=%d differ from qsort\n", n, kind);
    CHECK(same);
    free(a);
    free(b);
    free(ref);
}

int main(void) {
    test_group_take();
    const size_t np[] = {0, 1, 2, 33, 1000, 3072, 4096, 4097, 20000};
    for (size_t a = 0; a < sizeof np / sizeof *np; a++)
        for (int kind = KEYS_RANDOM; kind <= KEYS_CROWDED; kind++)
            test_pairs(np[a], kind, 77 * a + (uint64_t)kind);
    const size_t ns[] = {0, 1, 2, 3, 100, 5000, 200000};
    const size_t szs[] = {8, 12, 24, 48, 5};
    for (size_t a = 0; a < sizeof ns / sizeof *ns; a++)
        for (size_t b = 0; b < sizeof szs / sizeof *szs; b++)
            for (int kind = KEYS_RANDOM; kind <= KEYS_CROWDED; kind++)
                test_sort(ns[a], szs[b], kind, 1000 * a + 10 * b + (uint64_t)kind);
    for (size_t a = 0; a < sizeof ns / sizeof *ns; a++)
        for (size_t b = 0; b < sizeof szs / sizeof *szs; b++)
            for (int r = 1; r <= 8; r *= 2)
                test_group(ns[a], szs[b], r, 7 * a + b);
    return check_exit("test_prep_sort");
}
