/* check.h - the small test harness: CHECK(cond), CHECK_EQ_INT(a, b), CHECK_EQ_U64(a, b).
 * A failed check prints file and line to stderr and counts; check_exit() returns the exit code.
 * SKIP(reason) prints a visible SKIP line and exits 0 when an asset or peer is absent. */
#ifndef LONGCTX_CHECK_H
#define LONGCTX_CHECK_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

static int check_n_failed;
static int check_n_passed;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (cond) {                                                                                \
            check_n_passed++;                                                                      \
        } else {                                                                                   \
            check_n_failed++;                                                                      \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);               \
        }                                                                                          \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                                         \
    do {                                                                                           \
        long long check_a_ = (long long)(a), check_b_ = (long long)(b);                            \
        if (check_a_ == check_b_) {                                                                \
            check_n_passed++;                                                                      \
        } else {                                                                                   \
            check_n_failed++;                                                                      \
            fprintf(stderr, "%s:%d: CHECK_EQ_INT failed: %s = %lld, %s = %lld\n", __FILE__,        \
                    __LINE__, #a, check_a_, #b, check_b_);                                         \
        }                                                                                          \
    } while (0)

#define CHECK_EQ_U64(a, b)                                                                         \
    do {                                                                                           \
        uint64_t check_a_ = (uint64_t)(a), check_b_ = (uint64_t)(b);                               \
        if (check_a_ == check_b_) {                                                                \
            check_n_passed++;                                                                      \
        } else {                                                                                   \
            check_n_failed++;                                                                      \
            fprintf(stderr, "%s:%d: CHECK_EQ_U64 failed: %s = %" PRIu64 ", %s = %" PRIu64 "\n",    \
                    __FILE__, __LINE__, #a, check_a_, #b, check_b_);                               \
        }                                                                                          \
    } while (0)

#define SKIP(...)                                                                                  \
    do {                                                                                           \
        printf("SKIP: ");                                                                          \
        printf(__VA_ARGS__);                                                                       \
        printf("\n");                                                                              \
        exit(0);                                                                                   \
    } while (0)

/* Prints the summary and returns the process exit code. */
static inline int check_exit(const char *name) {
    fprintf(stderr, "%s: %d checks passed, %d failed\n", name, check_n_passed, check_n_failed);
    if (check_n_passed == 0 && check_n_failed == 0) {
        fprintf(stderr, "%s: no checks ran\n", name);
        return 1;
    }
    return check_n_failed ? 1 : 0;
}

/* The assets folder: $LONGCTX_ASSETS, else the compile-time default (../shared/assets). */
static inline const char *check_assets_dir(void) {
    const char *env = getenv("LONGCTX_ASSETS");
#ifdef LONGCTX_ASSETS_DEFAULT
    return env && *env ? env : LONGCTX_ASSETS_DEFAULT;
#else
    return env && *env ? env : "../shared/assets";
#endif
}

#endif
