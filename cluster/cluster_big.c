/*
 * cluster_big.c - collectives with 64-bit counts on an MPI that has only int counts.
 *
 * Open MPI 4.1 implements MPI 3.1: counts and displacements are ints, so a gather of 3 GB of
 * selected documents, or an Alltoallv whose receive buffer passes 2 GiB, cannot be said in one
 * call. Each helper hands MPI pieces of at most the chunk size (a process-wide setting, INT_MAX
 * rounded down by default, lowered by tests to a few bytes to force every path).
 *
 * Two paths for the v-variants:
 *   - every count and every end of a displaced block fits the chunk: the one native call, as
 *     the code did before (nothing changes at ordinary sizes);
 *   - otherwise, nonblocking point-to-point messages of at most a chunk, on a duplicate of comm
 *     (so they can never match anybody else's messages), in rounds: in round k every pair
 *     exchanges its k-th chunk, then the rank waits for its own requests.
 * Why point-to-point rather than rounds of MPI_Alltoallv whose counts fit: the displacements of
 * MPI_Alltoallv are ints too, and in a receive buffer over 2 GiB they do not fit even when every
 * count does (rounds would need a staging buffer and a copy, or derived datatypes per peer and
 * round); and a round of MPI_Alltoallv costs every rank a full exchange of P-long count arrays
 * even when only one pair has data left, so one skewed rank makes everybody pay. Pointers with
 * 64-bit offsets have no such limit, and each pair sends only its own chunks. Messages of one
 * pair match in the order they were posted (MPI's non-overtaking rule), so one tag is enough.
 * Rounds are deadlock-free: the lowest round any rank waits in has been posted by all its peers.
 *
 * Which path a call takes must be the same on every rank; for gatherv and alltoallv no rank
 * knows every count, so the ranks agree on it (and on local failures: a bad argument or no
 * memory for the count arrays) with one small allreduce before anything else is sent.
 */
#include "cluster.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* The one other process-wide setting besides the log sink: set from main before threads, only
 * read afterwards. */
static size_t chunk_bytes = CLUSTER_CHUNK_BYTES_DEFAULT;

enum { BIG_TAG = 0x4c43 };

int cluster_set_chunk_bytes(size_t bytes) {
    if (bytes > CLUSTER_CHUNK_BYTES_DEFAULT)
        return CLUSTER_ERR_ARG;
    chunk_bytes = bytes ? bytes : CLUSTER_CHUNK_BYTES_DEFAULT;
    return CLUSTER_OK;
}

size_t cluster_chunk_bytes(void) {
    return chunk_bytes;
}

int cluster_chunk_bytes_setup(MPI_Comm comm, size_t *bytes_out) {
    int rank = 0;
    if (MPI_Comm_rank(comm, &rank) != MPI_SUCCESS)
        return CLUSTER_ERR_MPI;
    uint64_t v[2] = {0, 0}; /* {ok, bytes}: 0 bytes = the default */
    if (rank == 0) {
        const char *s = getenv(CLUSTER_CHUNK_ENV);
        v[0] = 1;
        if (s && *s) {
            char *end;
            errno = 0;
            unsigned long long n = strtoull(s, &end, 10);
            v[0] =
                !errno && *end == '\0' && s[0] != '-' && n >= 1 && n <= CLUSTER_CHUNK_BYTES_DEFAULT;
            v[1] = v[0] ? n : 0;
        }
    }
    if (MPI_Bcast(v, 2, MPI_UINT64_T, 0, comm) != MPI_SUCCESS)
        return CLUSTER_ERR_MPI;
    if (!v[0])
        return CLUSTER_ERR_ARG;
    cluster_set_chunk_bytes((size_t)v[1]);
    if (bytes_out)
        *bytes_out = chunk_bytes;
    return CLUSTER_OK;
}

/* ---- broadcast and reductions: no local failures, so nothing to agree on ------------------ */

int cluster_bcast_big(void *buf, uint64_t bytes, int root, MPI_Comm comm) {
    assert(buf || bytes == 0);
    const size_t chunk = chunk_bytes;
    for (uint64_t off = 0; off < bytes; off += chunk) {
        uint64_t n = bytes - off < chunk ? bytes - off : chunk;
        if (MPI_Bcast((char *)buf + off, (int)n, MPI_BYTE, root, comm) != MPI_SUCCESS)
            return CLUSTER_ERR_MPI;
    }
    return CLUSTER_OK;
}

int cluster_allreduce_big(void *buf, uint64_t count, MPI_Datatype type, MPI_Op op, MPI_Comm comm) {
    assert(buf || count == 0);
    int size = 0;
    if (MPI_Type_size(type, &size) != MPI_SUCCESS || size <= 0)
        return CLUSTER_ERR_ARG;
    uint64_t per = chunk_bytes / (size_t)size;
    if (per == 0)
        per = 1; /* a chunk smaller than one element: one element at a time */
    for (uint64_t off = 0; off < count; off += per) {
        uint64_t n = count - off < per ? count - off : per;
        if (MPI_Allreduce(MPI_IN_PLACE, (char *)buf + off * (uint64_t)size, (int)n, type, op,
                          comm) != MPI_SUCCESS)
            return CLUSTER_ERR_MPI;
    }
    return CLUSTER_OK;
}

int cluster_allreduce_u64_big(uint64_t *buf, uint64_t n, MPI_Comm comm) {
    return cluster_allreduce_big(buf, n, MPI_UINT64_T, MPI_SUM, comm);
}

/* ---- the pairwise exchange behind alltoallv, allgatherv and gatherv ----------------------- */

/* One rank's side of an exchange, in units of `unit` bytes; arrays of n_ranks entries. A NULL
 * send_displs means 0 for every peer (allgatherv sends the same block to all). */
typedef struct {
    const char *send;
    const uint64_t *scnt, *sdsp;
    char *recv;
    const uint64_t *rcnt, *rdsp;
    size_t unit;
} exchange;

/* Work arrays, allocated before the ranks agree so that no rank fails after it. */
typedef struct {
    int *sc, *sd, *rc, *rd; /* (n_ranks) byte counts and displacements for the native call */
    MPI_Request *req;       /* (2 * n_ranks) */
} exchange_work;

static void work_free(exchange_work *w) {
    free(w->sc);
    free(w->sd);
    free(w->rc);
    free(w->rd);
    free(w->req);
}

static int work_alloc(exchange_work *w, int n_ranks) {
    size_t n = (size_t)n_ranks;
    w->sc = malloc(n * sizeof(int));
    w->sd = malloc(n * sizeof(int));
    w->rc = malloc(n * sizeof(int));
    w->rd = malloc(n * sizeof(int));
    w->req = malloc(2 * n * sizeof(MPI_Request));
    return w->sc && w->sd && w->rc && w->rd && w->req ? CLUSTER_OK : CLUSTER_ERR_NOMEM;
}

/* units * unit into *bytes; 0 on overflow. */
static int to_bytes(uint64_t units, size_t unit, uint64_t *bytes) {
    if (unit && units > UINT64_MAX / unit)
        return 0;
    *bytes = units * unit;
    return 1;
}

/* Checks the local side and whether it fits the native call (*fits; int arrays in w, in bytes).
 * @return CLUSTER_OK or CLUSTER_ERR_ARG. */
static int exchange_check(const exchange *x, int rank, int n_ranks, size_t chunk, exchange_work *w,
                          int *fits) {
    *fits = 1;
    for (int r = 0; r < n_ranks; r++) {
        uint64_t sb, sd = 0, rb, rd, se, re;
        if (!to_bytes(x->scnt[r], x->unit, &sb) ||
            (x->sdsp && !to_bytes(x->sdsp[r], x->unit, &sd)) ||
            !to_bytes(x->rcnt[r], x->unit, &rb) || !to_bytes(x->rdsp[r], x->unit, &rd))
            return CLUSTER_ERR_ARG;
        if (sd > UINT64_MAX - sb || rd > UINT64_MAX - rb)
            return CLUSTER_ERR_ARG;
        if ((sb && !x->send) || (rb && !x->recv))
            return CLUSTER_ERR_ARG;
        if (r == rank && sb != rb)
            return CLUSTER_ERR_ARG; /* what a rank sends itself it must receive */
        se = sd + sb;
        re = rd + rb;
        if (se > chunk || re > chunk)
            *fits = 0;
        w->sc[r] = (int)(sb <= INT_MAX ? sb : 0);
        w->sd[r] = (int)(sd <= INT_MAX ? sd : 0);
        w->rc[r] = (int)(rb <= INT_MAX ? rb : 0);
        w->rd[r] = (int)(rd <= INT_MAX ? rd : 0);
    }
    return CLUSTER_OK;
}

/* Every rank learns the worst status and whether all ranks fit the native call. */
static int exchange_agree(MPI_Comm comm, int st, int *fits) {
    int mine[2] = {st, *fits}, all[2];
    if (MPI_Allreduce(mine, all, 2, MPI_INT, MPI_MIN, comm) != MPI_SUCCESS)
        return CLUSTER_ERR_MPI;
    *fits = all[1];
    return all[0];
}

/* The point-to-point path (see the top of the file). */
static int exchange_p2p(MPI_Comm comm, const exchange *x, int rank, int n_ranks, size_t chunk,
                        MPI_Request *req) {
    const uint64_t u = x->unit;
    uint64_t rounds = 0;
    for (int r = 0; r < n_ranks; r++) {
        if (r == rank)
            continue;
        uint64_t ks = (x->scnt[r] * u + chunk - 1) / chunk,
                 kr = (x->rcnt[r] * u + chunk - 1) / chunk;
        if (ks > rounds)
            rounds = ks;
        if (kr > rounds)
            rounds = kr;
    }
    if (x->scnt[rank]) /* to itself: a copy */
        memcpy(x->recv + x->rdsp[rank] * u, x->send + (x->sdsp ? x->sdsp[rank] * u : 0),
               x->scnt[rank] * u);
    MPI_Comm dup; /* collective: also on a rank with nothing to send or receive */
    if (MPI_Comm_dup(comm, &dup) != MPI_SUCCESS)
        return CLUSTER_ERR_MPI;
    int st = CLUSTER_OK;
    for (uint64_t k = 0; k < rounds && st == CLUSTER_OK; k++) {
        const uint64_t off = k * chunk;
        int n_req = 0;
        /* peers in the order rank+1, rank+2, ...: not everybody at rank 0 first */
        for (int i = 1; i < n_ranks && st == CLUSTER_OK; i++) {
            int r = (rank + n_ranks - i) % n_ranks;
            uint64_t b = x->rcnt[r] * u;
            if (b > off &&
                MPI_Irecv(x->recv + x->rdsp[r] * u + off, (int)(b - off < chunk ? b - off : chunk),
                          MPI_BYTE, r, BIG_TAG, dup, &req[n_req++]) != MPI_SUCCESS)
                st = CLUSTER_ERR_MPI;
        }
        for (int i = 1; i < n_ranks && st == CLUSTER_OK; i++) {
            int r = (rank + i) % n_ranks;
            uint64_t b = x->scnt[r] * u;
            if (b > off && MPI_Isend(x->send + (x->sdsp ? x->sdsp[r] * u : 0) + off,
                                     (int)(b - off < chunk ? b - off : chunk), MPI_BYTE, r, BIG_TAG,
                                     dup, &req[n_req++]) != MPI_SUCCESS)
                st = CLUSTER_ERR_MPI;
        }
        if (MPI_Waitall(n_req, req, MPI_STATUSES_IGNORE) != MPI_SUCCESS)
            st = CLUSTER_ERR_MPI;
    }
    MPI_Comm_free(&dup);
    return st;
}

/* The v-variants: kind 0 alltoallv, 1 allgatherv, 2 gatherv (root). `local` is the status of
 * the caller's own preparation (the count arrays it built). */
enum { KIND_ALLTOALLV, KIND_ALLGATHERV, KIND_GATHERV };

static int exchange_run(MPI_Comm comm, int kind, int root, const exchange *x, int rank, int n_ranks,
                        int local) {
    const size_t chunk = chunk_bytes;
    exchange_work w = {0};
    int fits = 1, st = local;
    if (st == CLUSTER_OK)
        st = work_alloc(&w, n_ranks);
    if (st == CLUSTER_OK)
        st = exchange_check(x, rank, n_ranks, chunk, &w, &fits);
    st = exchange_agree(comm, st, &fits);
    if (st == CLUSTER_OK && fits) {
        int rc = MPI_SUCCESS;
        if (kind == KIND_ALLTOALLV)
            rc = MPI_Alltoallv(x->send, w.sc, w.sd, MPI_BYTE, x->recv, w.rc, w.rd, MPI_BYTE, comm);
        else if (kind == KIND_ALLGATHERV)
            rc = MPI_Allgatherv(x->send, w.sc[rank], MPI_BYTE, x->recv, w.rc, w.rd, MPI_BYTE, comm);
        else
            rc = MPI_Gatherv(x->send, w.sc[root], MPI_BYTE, x->recv, w.rc, w.rd, MPI_BYTE, root,
                             comm);
        st = rc == MPI_SUCCESS ? CLUSTER_OK : CLUSTER_ERR_MPI;
    } else if (st == CLUSTER_OK) {
        st = exchange_p2p(comm, x, rank, n_ranks, chunk, w.req);
    }
    work_free(&w);
    return st;
}

static int comm_info(MPI_Comm comm, int *rank, int *n_ranks) {
    if (MPI_Comm_rank(comm, rank) != MPI_SUCCESS || MPI_Comm_size(comm, n_ranks) != MPI_SUCCESS)
        return CLUSTER_ERR_MPI;
    return CLUSTER_OK;
}

int cluster_alltoallv_big(const void *send, const uint64_t *send_counts,
                          const uint64_t *send_displs, void *recv, const uint64_t *recv_counts,
                          const uint64_t *recv_displs, size_t unit_bytes, MPI_Comm comm) {
    int rank, n_ranks;
    if (comm_info(comm, &rank, &n_ranks) != CLUSTER_OK)
        return CLUSTER_ERR_MPI;
    int local = send_counts && send_displs && recv_counts && recv_displs && unit_bytes > 0
                    ? CLUSTER_OK
                    : CLUSTER_ERR_ARG;
    exchange x = {send, send_counts, send_displs, recv, recv_counts, recv_displs, unit_bytes};
    if (local != CLUSTER_OK) /* nothing to look at: only agree */
        return exchange_agree(comm, local, &(int){1});
    return exchange_run(comm, KIND_ALLTOALLV, 0, &x, rank, n_ranks, local);
}

/* Gathers as exchanges: the counts this rank sends to each peer and, off the receiving ranks,
 * zero receive counts. */
static int gather_common(MPI_Comm comm, int kind, int root, const void *send, uint64_t send_count,
                         void *recv, const uint64_t *recv_counts, const uint64_t *displs,
                         size_t unit_bytes) {
    int rank, n_ranks;
    if (comm_info(comm, &rank, &n_ranks) != CLUSTER_OK)
        return CLUSTER_ERR_MPI;
    const int receives = kind == KIND_ALLGATHERV || rank == root;
    int local =
        unit_bytes > 0 && root >= 0 && root < n_ranks && (!receives || (recv_counts && displs))
            ? CLUSTER_OK
            : CLUSTER_ERR_ARG;
    uint64_t *scnt = calloc((size_t)n_ranks, sizeof *scnt);
    uint64_t *zero = calloc((size_t)n_ranks, sizeof *zero);
    if (!scnt || !zero)
        local = local == CLUSTER_OK ? CLUSTER_ERR_NOMEM : local;
    int st;
    if (local != CLUSTER_OK) {
        st = exchange_agree(comm, local, &(int){1});
    } else {
        for (int r = 0; r < n_ranks; r++)
            scnt[r] = kind == KIND_ALLGATHERV || r == root ? send_count : 0;
        exchange x = {send,
                      scnt,
                      NULL,
                      receives ? recv : NULL,
                      receives ? recv_counts : zero,
                      receives ? displs : zero,
                      unit_bytes};
        st = exchange_run(comm, kind, root, &x, rank, n_ranks, local);
    }
    free(scnt);
    free(zero);
    return st;
}

int cluster_allgatherv_big(const void *send, uint64_t send_count, void *recv,
                           const uint64_t *recv_counts, const uint64_t *displs, size_t unit_bytes,
                           MPI_Comm comm) {
    return gather_common(comm, KIND_ALLGATHERV, 0, send, send_count, recv, recv_counts, displs,
                         unit_bytes);
}

int cluster_gatherv_big(const void *send, uint64_t send_count, void *recv,
                        const uint64_t *recv_counts, const uint64_t *displs, size_t unit_bytes,
                        int root, MPI_Comm comm) {
    return gather_common(comm, KIND_GATHERV, root, send, send_count, recv, recv_counts, displs,
                         unit_bytes);
}
