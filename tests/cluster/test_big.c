/* test_big.c - the 64-bit-count collectives (cluster_big.c) at chunk sizes of 1, 3 and 7 bytes
 * and the default: uneven and zero counts, gaps and out-of-order displacements, units of 1 and 3
 * bytes. Every rank fills its buffers by a formula, so each rank computes what it must receive
 * by itself (the reference) and compares whole buffers, gaps included. Run at 1, 2 and 4 ranks. */
#include "check.h"
#include "cluster.h"

#include <stdlib.h>
#include <string.h>

#define SENTINEL 0xEE

static int rank, n_ranks;

/* ---- formulas: what each rank sends ---------------------------------------------------------- */

static uint8_t gather_byte(int r, uint64_t i) {
    return (uint8_t)(r * 37 + i * 11 + 1);
}

static uint8_t a2a_byte(int s, int d, uint64_t i) {
    return (uint8_t)(s * 17 + d * 29 + i * 7 + 3);
}

/* Units rank r contributes to a gather in trial t; rank 1 always none. */
static uint64_t gather_count(int r, int t) {
    return r == 1 ? 0 : (uint64_t)(r * 5 + 3 + t * 4) % 11;
}

/* Units rank s sends rank d in trial t; some pairs none. */
static uint64_t a2a_count(int s, int d, int t) {
    return (s + d + t) % 3 == 0 ? 0 : (uint64_t)(s * 3 + d * 5 + t) % 10 + 1;
}

/* Gather layout: ranks from the last to the first, rank r followed by a gap of r % 3 units.
 * @return the total units. */
static uint64_t gather_layout(int t, uint64_t *counts, uint64_t *displs) {
    uint64_t off = 2;
    for (int r = n_ranks - 1; r >= 0; r--) {
        counts[r] = gather_count(r, t);
        displs[r] = off;
        off += counts[r] + (uint64_t)(r % 3);
    }
    return off + 1;
}

/* ---- bcast ---------------------------------------------------------------------------------- */

static void test_bcast(void) {
    const uint64_t sizes[] = {0, 1, 5, 100, 4099};
    int roots[2] = {0, n_ranks - 1};
    for (int k = 0; k < 2; k++)
        for (size_t z = 0; z < sizeof sizes / sizeof *sizes; z++) {
            uint64_t n = sizes[z];
            uint8_t *b = malloc(n + 1);
            for (uint64_t i = 0; i < n; i++)
                b[i] = rank == roots[k] ? (uint8_t)(i * 31 + (uint64_t)roots[k] * 7 + 5) : 0;
            b[n] = SENTINEL;
            CHECK_EQ_INT(cluster_bcast_big(b, n, roots[k], MPI_COMM_WORLD), CLUSTER_OK);
            int ok = b[n] == SENTINEL;
            for (uint64_t i = 0; i < n; i++)
                ok &= b[i] == (uint8_t)(i * 31 + (uint64_t)roots[k] * 7 + 5);
            CHECK(ok);
            free(b);
        }
}

/* ---- gathers -------------------------------------------------------------------------------- */

/* What the gathered buffer must hold (total units of `unit` bytes). */
static uint8_t *gather_expected(const uint64_t *counts, const uint64_t *displs, uint64_t total,
                                size_t unit) {
    uint8_t *e = malloc(total * unit);
    memset(e, SENTINEL, total * unit);
    for (int r = 0; r < n_ranks; r++)
        for (uint64_t i = 0; i < counts[r] * unit; i++)
            e[displs[r] * unit + i] = gather_byte(r, i);
    return e;
}

static void test_gathers(void) {
    const size_t units[] = {1, 3};
    uint64_t *counts = calloc((size_t)n_ranks, sizeof *counts);
    uint64_t *displs = calloc((size_t)n_ranks, sizeof *displs);
    for (size_t ui = 0; ui < 2; ui++)
        for (int t = 0; t < 3; t++) {
            const size_t unit = units[ui];
            uint64_t total = gather_layout(t, counts, displs);
            uint64_t mine = counts[rank];
            uint8_t *send = malloc(mine * unit + 1);
            for (uint64_t i = 0; i < mine * unit; i++)
                send[i] = gather_byte(rank, i);
            uint8_t *want = gather_expected(counts, displs, total, unit);
            uint8_t *got = malloc(total * unit);

            memset(got, SENTINEL, total * unit);
            CHECK_EQ_INT(
                cluster_allgatherv_big(send, mine, got, counts, displs, unit, MPI_COMM_WORLD),
                CLUSTER_OK);
            CHECK(memcmp(got, want, total * unit) == 0);

            for (int root = 0; root<n_ranks; root += n_ranks> 1 ? n_ranks - 1 : 1) {
                memset(got, SENTINEL, total * unit);
                /* off the root: no receive buffer and no arrays, as MPI allows */
                int st = cluster_gatherv_big(
                    send, mine, rank == root ? got : NULL, rank == root ? counts : NULL,
                    rank == root ? displs : NULL, unit, root, MPI_COMM_WORLD);
                CHECK_EQ_INT(st, CLUSTER_OK);
                if (rank == root)
                    CHECK(memcmp(got, want, total * unit) == 0);
                else
                    CHECK(got[0] == SENTINEL && got[total * unit - 1] == SENTINEL);
            }
            free(send);
            free(want);
            free(got);
        }
    free(counts);
    free(displs);
}

/* ---- alltoallv ------------------------------------------------------------------------------ */

static void test_alltoallv(void) {
    const size_t units[] = {1, 3};
    size_t P = (size_t)n_ranks;
    uint64_t *sc = calloc(P, 8), *sd = calloc(P, 8), *rc = calloc(P, 8), *rd = calloc(P, 8);
    for (size_t ui = 0; ui < 2; ui++)
        for (int t = 0; t < 3; t++) {
            const size_t unit = units[ui];
            /* send layout: peers from the last to the first, a gap of one unit after each */
            uint64_t off = 0;
            for (int d = n_ranks - 1; d >= 0; d--) {
                sc[d] = a2a_count(rank, d, t);
                sd[d] = off;
                off += sc[d] + 1;
            }
            uint64_t s_total = off;
            /* receive layout: peers in order from offset 5, gaps of two units */
            off = 5;
            for (int s = 0; s < n_ranks; s++) {
                rc[s] = a2a_count(s, rank, t);
                rd[s] = off;
                off += rc[s] + 2;
            }
            uint64_t r_total = off;
            uint8_t *send = malloc(s_total * unit), *got = malloc(r_total * unit),
                    *want = malloc(r_total * unit);
            memset(send, 0x11, s_total * unit);
            for (int d = 0; d < n_ranks; d++)
                for (uint64_t i = 0; i < sc[d] * unit; i++)
                    send[sd[d] * unit + i] = a2a_byte(rank, d, i);
            memset(want, SENTINEL, r_total * unit);
            for (int s = 0; s < n_ranks; s++)
                for (uint64_t i = 0; i < rc[s] * unit; i++)
                    want[rd[s] * unit + i] = a2a_byte(s, rank, i);
            memset(got, SENTINEL, r_total * unit);
            CHECK_EQ_INT(cluster_alltoallv_big(send, sc, sd, got, rc, rd, unit, MPI_COMM_WORLD),
                         CLUSTER_OK);
            CHECK(memcmp(got, want, r_total * unit) == 0);
            free(send);
            free(got);
            free(want);
        }
    free(sc);
    free(sd);
    free(rc);
    free(rd);
}

/* ---- reductions ----------------------------------------------------------------------------- */

static uint64_t u64_value(int r, uint64_t i) {
    return (i + 1) * (uint64_t)(r + 1) * 0x9E3779B97F4A7C15ull + (uint64_t)r;
}

static void test_allreduce(void) {
    const uint64_t sizes[] = {0, 1, 3, 17, 1000};
    for (size_t z = 0; z < sizeof sizes / sizeof *sizes; z++) {
        uint64_t n = sizes[z];
        uint64_t *v = malloc((n + 1) * sizeof *v);
        uint8_t *m = malloc(n + 1);
        for (uint64_t i = 0; i < n; i++) {
            v[i] = u64_value(rank, i);
            m[i] = (uint8_t)((i * 13 + (uint64_t)rank * 71) % 256);
        }
        v[n] = 42;
        m[n] = SENTINEL;
        CHECK_EQ_INT(cluster_allreduce_u64_big(v, n, MPI_COMM_WORLD), CLUSTER_OK);
        CHECK_EQ_INT(cluster_allreduce_big(m, n, MPI_UNSIGNED_CHAR, MPI_MAX, MPI_COMM_WORLD),
                     CLUSTER_OK);
        int ok = v[n] == 42 && m[n] == SENTINEL;
        for (uint64_t i = 0; i < n; i++) {
            uint64_t sum = 0;
            uint8_t max = 0;
            for (int r = 0; r < n_ranks; r++) {
                sum += u64_value(r, i); /* mod 2^64, as MPI_SUM on uint64_t */
                uint8_t x = (uint8_t)((i * 13 + (uint64_t)r * 71) % 256);
                max = x > max ? x : max;
            }
            ok &= v[i] == sum && m[i] == max;
        }
        CHECK(ok);
        free(v);
        free(m);
    }
}

/* ---- a larger exchange, and failures that every rank must learn of ------------------------- */

static void test_larger(void) {
    /* 100 kB per rank at the current chunk: many rounds at 1000 bytes */
    size_t P = (size_t)n_ranks;
    uint64_t *counts = calloc(P, 8), *displs = calloc(P, 8), total = 0;
    for (int r = 0; r < n_ranks; r++) {
        counts[r] = 100000 + (uint64_t)r * 333;
        displs[r] = total;
        total += counts[r];
    }
    uint8_t *send = malloc(counts[rank]), *got = malloc(total);
    for (uint64_t i = 0; i < counts[rank]; i++)
        send[i] = gather_byte(rank, i);
    CHECK_EQ_INT(cluster_allgatherv_big(send, counts[rank], got, counts, displs, 1, MPI_COMM_WORLD),
                 CLUSTER_OK);
    int ok = 1;
    for (int r = 0; r < n_ranks; r++)
        for (uint64_t i = 0; i < counts[r]; i++)
            ok &= got[displs[r] + i] == gather_byte(r, i);
    CHECK(ok);
    free(send);
    free(got);
    free(counts);
    free(displs);
}

static void test_failures(void) {
    size_t P = (size_t)n_ranks;
    uint64_t *c = calloc(P, 8), *d = calloc(P, 8);
    uint8_t byte = 0, out[64];
    for (int r = 0; r < n_ranks; r++) {
        c[r] = 1;
        d[r] = (uint64_t)r;
    }
    /* the last rank says it sends 1 byte from NULL: everybody gets CLUSTER_ERR_ARG, nobody hangs */
    int last = rank == n_ranks - 1;
    CHECK_EQ_INT(cluster_gatherv_big(last ? NULL : &byte, 1, out, c, d, 1, 0, MPI_COMM_WORLD),
                 CLUSTER_ERR_ARG);
    CHECK_EQ_INT(cluster_allgatherv_big(&byte, 1, out, c, d, last ? 0 : 1, MPI_COMM_WORLD),
                 CLUSTER_ERR_ARG);
    CHECK_EQ_INT(cluster_alltoallv_big(out, c, d, out + 32, last ? NULL : c, d, 1, MPI_COMM_WORLD),
                 CLUSTER_ERR_ARG);
    /* a count whose bytes overflow 64 bits */
    uint64_t huge = last ? UINT64_MAX / 2 : 1;
    CHECK_EQ_INT(cluster_gatherv_big(&byte, huge, out, c, d, 3, 0, MPI_COMM_WORLD),
                 CLUSTER_ERR_ARG);
    free(c);
    free(d);
}

static void test_settings(void) {
    CHECK_EQ_INT(cluster_set_chunk_bytes(CLUSTER_CHUNK_BYTES_DEFAULT + 1), CLUSTER_ERR_ARG);
    CHECK_EQ_INT(cluster_set_chunk_bytes(0), CLUSTER_OK);
    CHECK_EQ_U64(cluster_chunk_bytes(), CLUSTER_CHUNK_BYTES_DEFAULT);
    CHECK(CLUSTER_CHUNK_BYTES_DEFAULT <= 2147483647u);

    /* rank 0's environment wins */
    setenv(CLUSTER_CHUNK_ENV, rank == 0 ? "13" : "999", 1);
    size_t got = 0;
    CHECK_EQ_INT(cluster_chunk_bytes_setup(MPI_COMM_WORLD, &got), CLUSTER_OK);
    CHECK_EQ_U64(got, 13);
    CHECK_EQ_U64(cluster_chunk_bytes(), 13);
    const char *bad[] = {"abc", "0", "-5", "7x", "99999999999"};
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        setenv(CLUSTER_CHUNK_ENV, rank == 0 ? bad[k] : "7", 1);
        CHECK_EQ_INT(cluster_chunk_bytes_setup(MPI_COMM_WORLD, NULL), CLUSTER_ERR_ARG);
        CHECK_EQ_U64(cluster_chunk_bytes(), 13); /* unchanged */
    }
    unsetenv(CLUSTER_CHUNK_ENV);
    CHECK_EQ_INT(cluster_chunk_bytes_setup(MPI_COMM_WORLD, &got), CLUSTER_OK);
    CHECK_EQ_U64(got, CLUSTER_CHUNK_BYTES_DEFAULT);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &n_ranks);
    cluster_log_setup("test_big", rank, n_ranks, CLUSTER_LOG_INFO);

    test_settings();
    const size_t chunks[] = {1, 3, 7, 0}; /* 0: the default */
    for (size_t k = 0; k < sizeof chunks / sizeof *chunks; k++) {
        CHECK_EQ_INT(cluster_set_chunk_bytes(chunks[k]), CLUSTER_OK);
        test_bcast();
        test_gathers();
        test_alltoallv();
        test_allreduce();
        test_failures();
    }
    cluster_set_chunk_bytes(1000);
    test_larger();
    cluster_set_chunk_bytes(0);
    test_larger();

    int n_failed_all = 0;
    MPI_Allreduce(&check_n_failed, &n_failed_all, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    char name[64];
    snprintf(name, sizeof(name), "test_big[%d/%d]", rank, n_ranks);
    int rc = check_exit(name);
    MPI_Finalize();
    return n_failed_all ? 1 : rc;
}
