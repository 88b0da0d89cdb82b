/*
 * cluster_shared.c - does every rank see the folder rank 0 writes to?
 *
 * Commands that write one output folder from all ranks (prep's DIR, an MPI-IO export) fail late
 * and strangely when the folder is on a node-local disk: each node then holds a part of the
 * output, and the part written by other nodes is missing when rank 0 looks for it. A marker file
 * with a random name and content, written by rank 0 and read back by every rank, finds that out
 * in a second, before any work starts. The random name means no rank can see a leftover marker
 * of an earlier run or another job, and no directory cache can hold a stale "no such file" for
 * it.
 */
#include "cluster.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum {
    TOKEN_HEX = 32,         /* 128 random bits */
    HOST_BYTES = 64,        /* as cluster_slurm_info.node_name */
    TEXT_BYTES = 1024,      /* the message, NUL included */
    PATH_BYTES = 4200,      /* dir + marker name */
    N_TRIES = 10,           /* reads of the marker before a rank says it does not see it */
    LIST_MAX = 8,           /* ranks named in the message; the rest are counted */
    TRY_WAIT_NS = 100000000 /* 0.1 s between reads: a slow file system gets about a second */
};

#define MARKER_PREFIX ".longctx-shared-"

/* What one rank reports: whether it saw the marker, and its host. */
typedef struct {
    int seen;
    char host[HOST_BYTES];
} seen_rec;

/* 32 hex digits from /dev/urandom, else from the clock and pid (unique enough for one folder). */
static void make_token(char *out) {
    unsigned char b[TOKEN_HEX / 2];
    FILE *f = fopen("/dev/urandom", "rb");
    size_t got = f ? fread(b, 1, sizeof b, f) : 0;
    if (f)
        fclose(f);
    if (got != sizeof b) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t z =
            (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^ ((uint64_t)getpid() << 17);
        for (size_t i = 0; i < sizeof b; i++) {
            z = z * 6364136223846793005ull + 1442695040888963407ull;
            b[i] = (unsigned char)(z >> 56);
        }
    }
    for (size_t i = 0; i < sizeof b; i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
}

/* Rank 0: the marker holding token. @return CLUSTER_OK or CLUSTER_ERR_IO with msg. */
static int write_marker(const char *path, const char *token, char *msg, size_t msg_bytes) {
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd < 0) {
        snprintf(msg, msg_bytes, "cannot write the shared-folder marker %s: %s", path,
                 strerror(errno));
        return CLUSTER_ERR_IO;
    }
    size_t n = strlen(token);
    int ok = write(fd, token, n) == (ssize_t)n;
    int e = errno;
    ok = close(fd) == 0 && ok;
    if (!ok) {
        snprintf(msg, msg_bytes, "cannot write the shared-folder marker %s: %s", path,
                 strerror(e ? e : EIO));
        unlink(path);
        return CLUSTER_ERR_IO;
    }
    return CLUSTER_OK;
}

/* 1 if path holds exactly token. */
static int marker_matches(const char *path, const char *token) {
    char buf[TOKEN_HEX + 2];
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    return n == strlen(token) && memcmp(buf, token, n) == 0;
}

static int sees_marker(const char *path, const char *token) {
    for (int t = 0; t < N_TRIES; t++) {
        if (marker_matches(path, token))
            return 1;
        struct timespec ts = {0, TRY_WAIT_NS};
        if (t + 1 < N_TRIES)
            nanosleep(&ts, NULL);
    }
    return 0;
}

/* Rank 0: the refusal, naming the ranks that do not see the marker. */
static void not_shared_text(const char *dir, const char *path, const seen_rec *all, int n_ranks,
                            char *text, size_t text_bytes) {
    size_t len = 0;
    int n_blind = 0;
    for (int r = 0; r < n_ranks; r++)
        n_blind += !all[r].seen;
#define ADD(...)                                                                                   \
    do {                                                                                           \
        int k_ = snprintf(text + len, text_bytes - len, __VA_ARGS__);                              \
        if (k_ > 0)                                                                                \
            len = len + (size_t)k_ < text_bytes ? len + (size_t)k_ : text_bytes - 1;               \
    } while (0)
    ADD("%s is not on a file system every rank sees: %d of %d rank%s (", dir, n_blind, n_ranks,
        n_ranks > 1 ? "s" : "");
    int listed = 0;
    for (int r = 0; r < n_ranks && listed < LIST_MAX; r++)
        if (!all[r].seen)
            ADD("%srank %d on %s", listed++ ? ", " : "", r, all[r].host);
    if (n_blind > listed)
        ADD(", and %d more", n_blind - listed);
    ADD(") do%s not see the file %s that rank 0 on %s wrote. It must be on a "
        "shared file system (NFS, Lustre, GPFS, ...) under the same path on every node",
        n_blind == 1 ? "es" : "", path, all[0].host);
#undef ADD
}

int cluster_check_shared_dir(MPI_Comm comm, const char *dir, char *err, size_t err_bytes) {
    int rank, n_ranks;
    if (err && err_bytes)
        err[0] = '\0';
    if (MPI_Comm_rank(comm, &rank) != MPI_SUCCESS || MPI_Comm_size(comm, &n_ranks) != MPI_SUCCESS)
        return CLUSTER_ERR_MPI;
    char token[TOKEN_HEX + 1] = "", path[PATH_BYTES] = "", msg[TEXT_BYTES] = "";
    seen_rec *all = malloc((size_t)n_ranks * sizeof *all);
    int st = all ? CLUSTER_OK : CLUSTER_ERR_NOMEM;
    if (st != CLUSTER_OK)
        snprintf(msg, sizeof msg, "out of memory checking that %s is shared", dir);
    if (st == CLUSTER_OK && (!dir || !dir[0])) {
        snprintf(msg, sizeof msg, "no folder given to check");
        st = CLUSTER_ERR_ARG;
    }
    if (rank == 0 && st == CLUSTER_OK) {
        make_token(token);
        snprintf(path, sizeof path, "%s/%s%s", dir, MARKER_PREFIX, token);
        st = write_marker(path, token, msg, sizeof msg);
    }
    /* after this every rank knows the marker is written (or why not) */
    if ((st = cluster_agree_msg(comm, st, msg, err, err_bytes, NULL)) != CLUSTER_OK) {
        free(all);
        return st;
    }
    if (MPI_Bcast(token, (int)sizeof token, MPI_CHAR, 0, comm) != MPI_SUCCESS) {
        st = CLUSTER_ERR_MPI;
        goto done;
    }
    token[TOKEN_HEX] = '\0';
    if (rank != 0)
        snprintf(path, sizeof path, "%s/%s%s", dir, MARKER_PREFIX, token);
    seen_rec mine;
    memset(&mine, 0, sizeof mine);
    mine.seen = sees_marker(path, token);
    cluster_slurm_info info;
    cluster_slurm_info_get(&info);
    snprintf(mine.host, sizeof mine.host, "%s", info.node_name[0] ? info.node_name : "?");
    /* complete on rank 0 only once every rank has looked */
    if (MPI_Allgather(&mine, (int)sizeof mine, MPI_BYTE, all, (int)sizeof mine, MPI_BYTE, comm) !=
        MPI_SUCCESS) {
        st = CLUSTER_ERR_MPI;
        goto done;
    }
    int n_blind = 0;
    for (int r = 0; r < n_ranks; r++) {
        all[r].host[HOST_BYTES - 1] = '\0';
        n_blind += !all[r].seen;
    }
    if (n_blind) {
        char text[TEXT_BYTES] = "";
        if (rank == 0)
            not_shared_text(dir, path, all, n_ranks, text, sizeof text);
        if (MPI_Bcast(text, (int)sizeof text, MPI_CHAR, 0, comm) != MPI_SUCCESS) {
            st = CLUSTER_ERR_MPI;
            goto done;
        }
        text[sizeof text - 1] = '\0';
        if (err && err_bytes)
            snprintf(err, err_bytes, "%s", text);
        st = CLUSTER_ERR_NOT_SHARED;
    }
done:
    if (rank == 0)
        unlink(path);
    free(all);
    return st;
}
