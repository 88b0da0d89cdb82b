/* test_log.c - log line format, level filter, one line per call; strerror; the clock. */
#include "check.h"
#include "cluster.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { CAPTURE_BYTES = 16384 };

/* Runs fn with stderr redirected to a temporary file; returns what it wrote. */
static size_t capture_stderr(void (*fn)(void), char *out, size_t out_bytes) {
    FILE *tmp = tmpfile();
    CHECK(tmp != NULL);
    if (!tmp)
        return 0;
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    dup2(fileno(tmp), STDERR_FILENO);
    fn();
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    rewind(tmp);
    size_t n = fread(out, 1, out_bytes - 1, tmp);
    out[n] = '\0';
    fclose(tmp);
    return n;
}

static void log_some(void) {
    cluster_log_setup("prep", 3, 16, CLUSTER_LOG_INFO);
    LOG_INFO("bucketed %zu docs into %d buckets", (size_t)1200, 8);
    LOG_DEBUG("dropped: above the level");
    LOG_WARN("trailing newline is not doubled\n");
    LOG_ERROR("%s", "");
}

static void log_long(void) {
    static char big[10000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    cluster_log_setup("shard", 0, 1, CLUSTER_LOG_DEBUG);
    LOG_DEBUG("%s", big);
    LOG_DEBUG("after");
}

/* "HH:MM:SS L " with digits where digits belong. */
static int has_clock_prefix(const char *line, char letter) {
    for (int i = 0; i < 8; i++) {
        int want_colon = i == 2 || i == 5;
        if (want_colon ? line[i] != ':' : !isdigit((unsigned char)line[i]))
            return 0;
    }
    return line[8] == ' ' && line[9] == letter && line[10] == ' ';
}

static int starts_with(const char *s, const char *prefix) {
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static int count_lines(const char *text) {
    int n = 0;
    for (const char *c = text; *c; c++)
        n += *c == '\n';
    return n;
}

int main(void) {
    char out[CAPTURE_BYTES];

    capture_stderr(log_some, out, sizeof(out));
    CHECK_EQ_INT(count_lines(out), 3);
    char *l1 = out, *l2 = strchr(l1, '\n') + 1, *l3 = strchr(l2, '\n') + 1;
    CHECK(has_clock_prefix(l1, 'I'));
    CHECK(starts_with(l1 + 11, "prep[3/16] bucketed 1200 docs into 8 buckets\n"));
    CHECK(has_clock_prefix(l2, 'W'));
    CHECK(starts_with(l2 + 11, "prep[3/16] trailing newline is not doubled\n"));
    CHECK(has_clock_prefix(l3, 'E'));
    CHECK(strcmp(l3 + 11, "prep[3/16] \n") == 0);
    CHECK(strstr(out, "dropped") == NULL);
    CHECK_EQ_INT(cluster_log_get_level(), CLUSTER_LOG_INFO);

    size_t n = capture_stderr(log_long, out, sizeof(out));
    CHECK_EQ_INT(count_lines(out), 2);
    char *first_end = strchr(out, '\n');
    CHECK(first_end != NULL && first_end - out < 4096);
    CHECK(first_end && strncmp(first_end - 3, "...", 3) == 0);
    CHECK(has_clock_prefix(out, 'D'));
    CHECK(n > 6 && strcmp(out + n - 6, "after\n") == 0);

    const int statuses[] = {CLUSTER_OK,
                            CLUSTER_ERR_MPI,
                            CLUSTER_ERR_NOMEM,
                            CLUSTER_ERR_ARG,
                            CLUSTER_ERR_REMOTE,
                            CLUSTER_ERR_STOPPED,
                            1,
                            -99};
    for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
        const char *s = cluster_strerror(statuses[i]);
        CHECK(s != NULL && s[0] != '\0');
    }
    CHECK(strcmp(cluster_strerror(CLUSTER_ERR_ARG), cluster_strerror(CLUSTER_ERR_MPI)) != 0);

    double t0 = cluster_now();
    struct timespec ts = {0, 20000000};
    nanosleep(&ts, NULL);
    double t1 = cluster_now();
    CHECK(t1 - t0 >= 0.019 && t1 - t0 < 1.0);

    cluster_log_setup("test_log", 0, 1, CLUSTER_LOG_INFO);
    return check_exit("test_log");
}
