/*
 * cluster_progress.c - counters on every rank, one progress line on rank 0.
 *
 * Protocol, on a private duplicate of the caller's communicator and one tag:
 *
 *   worker _add()     at most once per interval, if its previous MPI_Isend has completed
 *                     (MPI_Test), Isend its cumulative counters with flag PROGRESS_UPDATE;
 *                     otherwise skip. It never waits.
 *   rank 0 _add/_poll at most once per interval, drain every pending message (MPI_Iprobe then
 *                     MPI_Recv), keep the latest totals of each rank, print one line.
 *   _finish()         MPI_Allreduce of the local counters gives the exact totals. Then each
 *                     worker waits for its last Isend and sends PROGRESS_FINAL; rank 0
 *                     receives (blocking) until it has seen PROGRESS_FINAL from every worker,
 *                     counting those an earlier drain picked up (a worker can get through
 *                     _finish before rank 0 enters it when there are no counters to reduce).
 *
 * _finish() cannot deadlock: the only thing a worker waits for is a send to rank 0, and rank 0
 * keeps posting receives that match every message a worker can have sent. Messages between
 * two ranks on one communicator and tag do not overtake each other, so once PROGRESS_FINAL
 * from a rank has arrived, nothing from that rank is left in flight.
 */
#include "cluster.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum {
    PROGRESS_TAG = 4242,
    PROGRESS_NAME_BYTES = 32,
    PROGRESS_LINE_BYTES = 512,
    PROGRESS_MSG_COUNT = CLUSTER_PROGRESS_MAX_COUNTERS + 1, /* counters, then the flag */
    PROGRESS_UPDATE = 0,
    PROGRESS_FINAL = 1,
    PROGRESS_MAX_COUNTER = CLUSTER_PROGRESS_MAX_COUNTERS,
};

struct cluster_progress {
    MPI_Comm comm; /* private duplicate */
    int rank;
    int n_ranks;
    int n_counters;
    int live;
    int finished;
    double interval_seconds;
    char label[PROGRESS_NAME_BYTES];
    char names[PROGRESS_MAX_COUNTER][PROGRESS_NAME_BYTES];
    uint64_t expected[PROGRESS_MAX_COUNTER]; /* (n_counters) global totals, 0 = unknown */
    uint64_t local[PROGRESS_MAX_COUNTER];    /* (n_counters) this rank's cumulative counts */

    /* worker side */
    uint64_t send_msg[PROGRESS_MSG_COUNT]; /* owned by send_req until it completes */
    MPI_Request send_req;
    double t_last_send;

    /* rank 0 side */
    uint64_t *latest;                      /* (n_ranks, PROGRESS_MAX_COUNTER); row 0 unused */
    uint64_t recv_msg[PROGRESS_MSG_COUNT]; /* scratch for MPI_Recv */
    int n_final;                           /* workers whose PROGRESS_FINAL has arrived */
    double t_start;
    double t_last_print;
    uint64_t sum_last_print[PROGRESS_MAX_COUNTER]; /* for the rate over the last interval */
    int n_live_chars;                              /* length of the line to overwrite */
};

cluster_progress_opts cluster_progress_opts_default(void) {
    cluster_progress_opts o;
    memset(&o, 0, sizeof(o));
    o.label = "progress";
    o.n_counters = 0;
    o.interval_seconds = 5.0;
    o.live = -1;
    return o;
}

/* ---- create ------------------------------------------------------------------------------- */

int cluster_progress_create(MPI_Comm comm, const cluster_progress_opts *opts,
                            cluster_progress **out) {
    int status = CLUSTER_OK;
    cluster_progress *p = NULL;
    if (out)
        *out = NULL;
    if (!out || comm == MPI_COMM_NULL)
        return CLUSTER_ERR_ARG; /* the same on every rank: nobody reaches a collective */

    int rank = 0, n_ranks = 1;
    if (MPI_Comm_rank(comm, &rank) != MPI_SUCCESS || MPI_Comm_size(comm, &n_ranks) != MPI_SUCCESS)
        return CLUSTER_ERR_MPI;

    /* Local checks and allocations first, then agree, so that a rank that failed here does not
     * leave the others stuck in MPI_Comm_dup. */
    if (!opts || opts->n_counters < 0 || opts->n_counters > PROGRESS_MAX_COUNTER ||
        !(opts->interval_seconds >= 0)) {
        status = CLUSTER_ERR_ARG;
    } else {
        p = calloc(1, sizeof(*p));
        if (p && rank == 0)
            p->latest = calloc((size_t)n_ranks * PROGRESS_MAX_COUNTER, sizeof(*p->latest));
        if (!p || (rank == 0 && !p->latest))
            status = CLUSTER_ERR_NOMEM;
    }
    int agreed = cluster_agree(comm, status);
    if (agreed < 0) {
        status = status < 0 ? status : agreed == CLUSTER_ERR_MPI ? agreed : CLUSTER_ERR_REMOTE;
        goto fail;
    }

    p->rank = rank;
    p->n_ranks = n_ranks;
    p->n_counters = opts->n_counters;
    p->interval_seconds = opts->interval_seconds;
    p->live = opts->live < 0 ? isatty(STDERR_FILENO) : opts->live != 0;
    snprintf(p->label, sizeof(p->label), "%s", opts->label ? opts->label : "progress");
    for (int i = 0; i < p->n_counters; i++) {
        snprintf(p->names[i], sizeof(p->names[i]), "%s", opts->names[i] ? opts->names[i] : "n");
        p->expected[i] = opts->totals[i];
    }
    p->send_req = MPI_REQUEST_NULL;
    p->t_start = cluster_now();
    p->t_last_send = p->t_start;
    p->t_last_print = p->t_start;
    if (MPI_Comm_dup(comm, &p->comm) != MPI_SUCCESS) {
        p->comm = MPI_COMM_NULL;
        status = CLUSTER_ERR_MPI;
        goto fail;
    }
    *out = p;
    return CLUSTER_OK;

fail:
    if (p)
        free(p->latest);
    free(p);
    return status;
}

/* ---- formatting (rank 0) ------------------------------------------------------------------ */

static void format_count(char *buf, size_t n, double v) {
    if (v < 1e3)
        snprintf(buf, n, "%.0f", v);
    else if (v < 1e6)
        snprintf(buf, n, "%.1fk", v / 1e3);
    else if (v < 1e9)
        snprintf(buf, n, "%.1fM", v / 1e6);
    else if (v < 1e12)
        snprintf(buf, n, "%.1fG", v / 1e9);
    else
        snprintf(buf, n, "%.1fT", v / 1e12);
}

static void format_bytes(char *buf, size_t n, double v) {
    if (v < 1e3)
        snprintf(buf, n, "%.0f B", v);
    else if (v < 1e6)
        snprintf(buf, n, "%.1f kB", v / 1e3);
    else if (v < 1e9)
        snprintf(buf, n, "%.1f MB", v / 1e6);
    else if (v < 1e12)
        snprintf(buf, n, "%.1f GB", v / 1e9);
    else
        snprintf(buf, n, "%.1f TB", v / 1e12);
}

static void format_duration(char *buf, size_t n, double seconds) {
    if (!(seconds >= 0) || seconds > 1e8) {
        snprintf(buf, n, "?");
        return;
    }
    long s = (long)(seconds + 0.5);
    snprintf(buf, n, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
}

/* Appends to buf at *len, never past n; the line is cut rather than overflowed. */
static void append(char *buf, size_t n, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void append(char *buf, size_t n, size_t *len, const char *fmt, ...) {
    if (*len >= n - 1)
        return;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(buf + *len, n - *len, fmt, ap);
    va_end(ap);
    if (k > 0)
        *len += (size_t)k < n - *len ? (size_t)k : n - *len - 1;
}

/* One progress line: counters with their rates (over `seconds`), then percent and ETA from the
 * first counter whose total is known (ETA from the average rate since create). */
static void format_line(const cluster_progress *p, char *buf, size_t n, const uint64_t *sum,
                        const uint64_t *sum_before, double seconds, int final) {
    size_t len = 0;
    double elapsed = cluster_now() - p->t_start;
    append(buf, n, &len, "%s%s", p->label, final ? " done" : "");
    for (int i = 0; i < p->n_counters; i++) {
        double value = (double)sum[i];
        double rate = seconds > 0 ? (double)(sum[i] - sum_before[i]) / seconds : 0;
        char v_text[32], r_text[32];
        if (strcmp(p->names[i], "bytes") == 0) {
            format_bytes(v_text, sizeof(v_text), value);
            append(buf, n, &len, "%s %s %s (%.1f MB/s)", i ? "," : ":", p->names[i], v_text,
                   rate / 1e6);
        } else {
            format_count(v_text, sizeof(v_text), value);
            format_count(r_text, sizeof(r_text), rate);
            append(buf, n, &len, "%s %s %s (%s/s)", i ? "," : ":", p->names[i], v_text, r_text);
        }
    }
    char t_text[32];
    if (final) {
        format_duration(t_text, sizeof(t_text), elapsed);
        append(buf, n, &len, " in %s", t_text);
        return;
    }
    for (int i = 0; i < p->n_counters; i++) {
        if (p->expected[i] == 0)
            continue;
        double done = (double)sum[i], total = (double)p->expected[i];
        double eta = done >= total ? 0 : done > 0 ? (total - done) * elapsed / done : -1;
        format_duration(t_text, sizeof(t_text), eta);
        append(buf, n, &len, ", %.1f%%, ETA %s", 100.0 * done / total, t_text);
        break;
    }
}

/* Live mode rewrites one line: '\r', the text, spaces over the rest of the previous line. */
static void print_line(cluster_progress *p, const char *line, int final) {
    if (cluster_log_get_level() < CLUSTER_LOG_INFO)
        return;
    if (!p->live) {
        /* Progress is this reporter's purpose, so it logs at INFO, unlike the rest of the
         * library; a level below INFO silences it. */
        cluster_log(CLUSTER_LOG_INFO, "%s", line);
        return;
    }
    int n_chars = (int)strlen(line);
    int n_pad = p->n_live_chars > n_chars ? p->n_live_chars - n_chars : 0;
    fprintf(stderr, "\r%s%*s%s", line, n_pad, "", final ? "\n" : "");
    p->n_live_chars = final ? 0 : n_chars;
}

/* ---- messages ----------------------------------------------------------------------------- */

/* Worker: Isend the cumulative counters if the interval has passed and the last send is done. */
static void send_update(cluster_progress *p) {
    double now = cluster_now();
    if (now - p->t_last_send < p->interval_seconds)
        return;
    if (p->send_req != MPI_REQUEST_NULL) {
        int done = 0;
        if (MPI_Test(&p->send_req, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS || !done)
            return; /* rank 0 is behind: skip this update, never wait */
    }
    memcpy(p->send_msg, p->local, sizeof(p->local));
    p->send_msg[PROGRESS_MAX_COUNTER] = PROGRESS_UPDATE;
    if (MPI_Isend(p->send_msg, PROGRESS_MSG_COUNT, MPI_UINT64_T, 0, PROGRESS_TAG, p->comm,
                  &p->send_req) != MPI_SUCCESS)
        p->send_req = MPI_REQUEST_NULL;
    p->t_last_send = now;
}

/* Rank 0: stores one received message and counts final ones. */
static void store_message(cluster_progress *p, int source) {
    assert(source > 0 && source < p->n_ranks);
    memcpy(&p->latest[(size_t)source * PROGRESS_MAX_COUNTER], p->recv_msg,
           PROGRESS_MAX_COUNTER * sizeof(uint64_t));
    p->n_final += p->recv_msg[PROGRESS_MAX_COUNTER] == PROGRESS_FINAL;
}

/* Rank 0: receives whatever has arrived, without waiting for anything that has not. */
static void drain(cluster_progress *p) {
    for (;;) {
        int flag = 0;
        MPI_Status st;
        if (MPI_Iprobe(MPI_ANY_SOURCE, PROGRESS_TAG, p->comm, &flag, &st) != MPI_SUCCESS || !flag)
            return;
        if (MPI_Recv(p->recv_msg, PROGRESS_MSG_COUNT, MPI_UINT64_T, st.MPI_SOURCE, PROGRESS_TAG,
                     p->comm, MPI_STATUS_IGNORE) != MPI_SUCCESS)
            return;
        /* This can be a PROGRESS_FINAL: a worker may be through _finish before rank 0 enters it
         * (with no counters there is no reduction to hold it back). It is counted here. */
        store_message(p, st.MPI_SOURCE);
    }
}

/* Rank 0: sum of its own counters and the latest totals of every worker. */
static void sum_latest(const cluster_progress *p, uint64_t *sum) {
    for (int i = 0; i < p->n_counters; i++) {
        sum[i] = p->local[i];
        for (int r = 1; r < p->n_ranks; r++)
            sum[i] += p->latest[(size_t)r * PROGRESS_MAX_COUNTER + i];
    }
}

static void report(cluster_progress *p) {
    double now = cluster_now();
    if (now - p->t_last_print < p->interval_seconds)
        return;
    drain(p);
    uint64_t sum[PROGRESS_MAX_COUNTER] = {0};
    sum_latest(p, sum);
    char line[PROGRESS_LINE_BYTES];
    format_line(p, line, sizeof(line), sum, p->sum_last_print, now - p->t_last_print, 0);
    print_line(p, line, 0);
    memcpy(p->sum_last_print, sum, sizeof(sum));
    p->t_last_print = now;
}

/* ---- add, poll, finish, free -------------------------------------------------------------- */

void cluster_progress_add(cluster_progress *p, const uint64_t *deltas) {
    if (!p || !deltas)
        return;
    for (int i = 0; i < p->n_counters; i++)
        p->local[i] += deltas[i];
    if (p->finished)
        return;
    if (p->rank == 0)
        report(p);
    else
        send_update(p);
}

void cluster_progress_poll(cluster_progress *p) {
    if (p && p->rank == 0 && !p->finished)
        report(p);
}

int cluster_progress_finish(cluster_progress *p, uint64_t *totals) {
    if (!p || p->finished)
        return CLUSTER_ERR_ARG;
    p->finished = 1;

    /* Exact totals come from the local counters, not from the possibly stale messages. */
    uint64_t sum[PROGRESS_MAX_COUNTER] = {0};
    if (p->n_counters > 0 &&
        MPI_Allreduce(p->local, sum, p->n_counters, MPI_UINT64_T, MPI_SUM, p->comm) != MPI_SUCCESS)
        return CLUSTER_ERR_MPI;
    if (totals)
        memcpy(totals, sum, (size_t)p->n_counters * sizeof(uint64_t));

    if (p->rank != 0) {
        if (MPI_Wait(&p->send_req, MPI_STATUS_IGNORE) != MPI_SUCCESS)
            return CLUSTER_ERR_MPI;
        memcpy(p->send_msg, p->local, sizeof(p->local));
        p->send_msg[PROGRESS_MAX_COUNTER] = PROGRESS_FINAL;
        if (MPI_Send(p->send_msg, PROGRESS_MSG_COUNT, MPI_UINT64_T, 0, PROGRESS_TAG, p->comm) !=
            MPI_SUCCESS)
            return CLUSTER_ERR_MPI;
        return CLUSTER_OK;
    }

    while (p->n_final < p->n_ranks - 1) {
        MPI_Status st;
        if (MPI_Recv(p->recv_msg, PROGRESS_MSG_COUNT, MPI_UINT64_T, MPI_ANY_SOURCE, PROGRESS_TAG,
                     p->comm, &st) != MPI_SUCCESS)
            return CLUSTER_ERR_MPI;
        store_message(p, st.MPI_SOURCE);
    }
#ifndef NDEBUG
    int flag = 0;
    MPI_Iprobe(MPI_ANY_SOURCE, PROGRESS_TAG, p->comm, &flag, MPI_STATUS_IGNORE);
    assert(!flag); /* every worker's PROGRESS_FINAL was its last message */
#endif

    uint64_t zero[PROGRESS_MAX_COUNTER] = {0};
    char line[PROGRESS_LINE_BYTES];
    format_line(p, line, sizeof(line), sum, zero, cluster_now() - p->t_start, 1);
    print_line(p, line, 1);
    return CLUSTER_OK;
}

void cluster_progress_free(cluster_progress *p) {
    if (!p)
        return;
    if (p->send_req != MPI_REQUEST_NULL) {
        /* Only reached when _finish was skipped (an error path). The message is a few dozen
         * bytes, below every eager limit, so it has already left and the wait returns. */
        MPI_Cancel(&p->send_req);
        MPI_Wait(&p->send_req, MPI_STATUS_IGNORE);
    }
    if (p->comm != MPI_COMM_NULL)
        MPI_Comm_free(&p->comm);
    free(p->latest);
    free(p);
}
