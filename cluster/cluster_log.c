/*
 * cluster_log.c - the log sink, status strings and the monotonic clock.
 *
 * The sink is the one piece of mutable global state the style allows: main sets it once with
 * cluster_log_setup() before any thread starts, and afterwards it is only read.
 */
#include "cluster.h"

#include <assert.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* ---- status strings ----------------------------------------------------------------------- */

const char *cluster_strerror(int status) {
    switch (status) {
    case CLUSTER_OK:
        return "ok";
    case CLUSTER_ERR_MPI:
        return "MPI call failed";
    case CLUSTER_ERR_NOMEM:
        return "out of memory";
    case CLUSTER_ERR_ARG:
        return "invalid argument";
    case CLUSTER_ERR_REMOTE:
        return "another rank failed";
    case CLUSTER_ERR_STOPPED:
        return "stop requested by signal";
    case CLUSTER_ERR_IO:
        return "I/O error";
    case CLUSTER_ERR_NOT_SHARED:
        return "folder not shared by all ranks";
    default:
        return status > 0 ? "done" : "unknown cluster status";
    }
}

/* ---- clock -------------------------------------------------------------------------------- */

double cluster_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- log sink ----------------------------------------------------------------------------- */

enum {
    LOG_TAG_BYTES = 32,
    LOG_LINE_BYTES = 4096, /* below glibc's 8 KiB helper buffer: one write(2) per line */
};

static struct {
    char tag[LOG_TAG_BYTES];
    int rank;
    int n_ranks;
    cluster_log_level level;
} log_sink = {"longctx", 0, 1, CLUSTER_LOG_INFO};

/* the last error's message, for a rank whose stderr nobody reads to hand to rank 0
 * (cluster_log_last_error); written by whichever thread logs */
static struct {
    pthread_mutex_t lock;
    char text[LOG_LINE_BYTES];
} last_error = {PTHREAD_MUTEX_INITIALIZER, ""};

void cluster_log_setup(const char *tag, int rank, int n_ranks, cluster_log_level level) {
    snprintf(log_sink.tag, sizeof(log_sink.tag), "%s", tag && *tag ? tag : "longctx");
    log_sink.rank = rank;
    log_sink.n_ranks = n_ranks;
    log_sink.level = level;
}

cluster_log_level cluster_log_get_level(void) {
    return log_sink.level;
}

void cluster_vlog(cluster_log_level level, const char *fmt, va_list ap) {
    static const char letters[] = "EWID";
    if ((int)level > (int)log_sink.level)
        return;
    int i_letter = (int)level < 0 ? 0 : (int)level > 3 ? 3 : (int)level;

    char clock_text[16] = "??:??:??";
    time_t t = time(NULL);
    struct tm tm;
    if (localtime_r(&t, &tm))
        strftime(clock_text, sizeof(clock_text), "%H:%M:%S", &tm);

    /* The whole line is formatted first and written with one fprintf, so that lines from
     * threads and ranks sharing a terminal or file never interleave mid-line. */
    char line[LOG_LINE_BYTES];
    int n_prefix = snprintf(line, sizeof(line), "%s %c %s[%d/%d] ", clock_text, letters[i_letter],
                            log_sink.tag, log_sink.rank, log_sink.n_ranks);
    assert(n_prefix > 0 && (size_t)n_prefix < sizeof(line) / 2);
    size_t len = (size_t)n_prefix;
    size_t msg_bytes = sizeof(line) - len - 1; /* one byte stays free for the newline */
    int n_msg = vsnprintf(line + len, msg_bytes, fmt ? fmt : "", ap);
    if (n_msg > 0 && (size_t)n_msg < msg_bytes) {
        len += (size_t)n_msg;
    } else if (n_msg > 0) {
        len += msg_bytes - 1;
        memcpy(line + len - 3, "...", 3); /* truncated: say so */
    }
    while (len > (size_t)n_prefix && line[len - 1] == '\n')
        len--; /* the sink adds the newline; a caller's own would leave an empty line */
    line[len] = '\n';
    line[len + 1] = '\0';
    fprintf(stderr, "%s", line);
    if (level == CLUSTER_LOG_ERROR) {
        pthread_mutex_lock(&last_error.lock);
        snprintf(last_error.text, sizeof last_error.text, "%.*s", (int)(len - (size_t)n_prefix),
                 line + n_prefix);
        pthread_mutex_unlock(&last_error.lock);
    }
}

void cluster_log_last_error(char *out, size_t out_bytes) {
    if (!out_bytes)
        return;
    pthread_mutex_lock(&last_error.lock);
    snprintf(out, out_bytes, "%s", last_error.text);
    pthread_mutex_unlock(&last_error.lock);
}

void cluster_log(cluster_log_level level, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    cluster_vlog(level, fmt, ap);
    va_end(ap);
}
