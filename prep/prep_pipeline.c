/* prep_pipeline.c - prep_run(): the stages in the order the data moves through them. */
#define _XOPEN_SOURCE 700 /* realpath */
#include "prep_internal.h"
#include "shard.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

typedef unsigned long long ull;

const char *prep_strerror(int status) {
    switch (status) {
    case PREP_OK:
        return "ok";
    case PREP_ERR_IO:
        return "I/O error";
    case PREP_ERR_NOMEM:
        return "out of memory";
    case PREP_ERR_INPUT:
        return "bad input";
    case PREP_ERR_RECIPE:
        return "recipe error";
    case PREP_ERR_ARG:
        return "invalid argument";
    case PREP_ERR_MPI:
        return "MPI error";
    case PREP_ERR_SHORT:
        return "budget not reached";
    case PREP_ERR_REMOTE:
        return "another rank failed";
    case PREP_ERR_BUSY:
        return "output folder in use";
    case PREP_ERR_STOPPED:
        return "stopped by a signal";
    default:
        return "unknown status";
    }
}

prep_opts prep_opts_default(void) {
    prep_opts o;
    memset(&o, 0, sizeof o);
    o.threads = 1;
    o.unit_bytes = 256u << 20;
    o.shard_tokens = 1u << 25; /* 64 MiB of uint16 tokens a file: many files keep ranks busy */
    o.max_doc_bytes = 64u << 20;
    o.pack_bytes = 256u << 20;
    o.zstd_level = shard_writer_opts_default().level;
    o.progress_seconds = 5;
    char err[8];
    prep_recipe_load("keep", &o.recipe, err, sizeof err);
    return o;
}

/* ---- what a DIR was made with --------------------------------------------------------------
 * DIR/work holds tokenized units: valid only for the same inputs, tokenizer and read options.
 * The shards depend on the recipe too. Both are written down as text; a rerun with another
 * scan setup is refused, and a rerun with another recipe rewrites the shards. */

static int append(char **s, size_t *n, size_t *cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int append(char **s, size_t *n, size_t *cap, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int m = vsnprintf(*s ? *s + *n : NULL, *s ? *cap - *n : 0, fmt, ap);
        va_end(ap);
        if (m < 0)
            return -1;
        if (*s && *n + (size_t)m < *cap) {
            *n += (size_t)m;
            return 0;
        }
        size_t nc = *cap ? 2 * *cap : 4096;
        while (nc < *n + (size_t)m + 1)
            nc *= 2;
        char *p = realloc(*s, nc);
        if (!p)
            return -1;
        *s = p;
        *cap = nc;
    }
}

static char *scan_key(const prep_opts *o, const tokenizer *tok, const prep_input *in, size_t n_in) {
    const prep_recipe *R = &o->recipe;
    char *s = NULL;
    size_t n = 0, cap = 0;
    int bad = append(&s, &n, &cap,
                     "longctx prep work v1\ntokenizer_xxh3 %016llx\nunit_bytes %llu\n"
                     "max_doc_bytes %llu\ntext %s\nutf8 %s\ndomain_src %d\ndomain %s|%s\n",
                     (ull)tokenizer_checksum(tok), (ull)o->unit_bytes, (ull)o->max_doc_bytes,
                     R->text_path, R->utf8_reject ? "reject" : "replace", (int)R->domain_src,
                     R->domain_path, R->domain_fixed);
    for (int g = 0; !bad && g < R->n_globs; g++)
        bad = append(&s, &n, &cap, "glob %s %s\n", R->glob_pattern[g], R->glob_domain[g]);
    for (size_t i = 0; !bad && i < n_in; i++) /* a file cut at its zstd frames says so */
        bad = in[i].n_frames
                  ? append(&s, &n, &cap, "input %llu %s zstd_frames %zu\n", (ull)in[i].bytes,
                           in[i].path, in[i].n_frames)
                  : append(&s, &n, &cap, "input %llu %s\n", (ull)in[i].bytes, in[i].path);
    if (bad) {
        free(s);
        return NULL;
    }
    return s;
}

static char *pack_key(const prep_opts *o) {
    const prep_recipe *R = &o->recipe;
    char *s = NULL;
    size_t n = 0, cap = 0;
    int bad =
        append(&s, &n, &cap,
               "recipe %s\ntarget %llu\nas_input %d\nmax_copies %u\npacking %d\nbos %d eos "
               "%d dedup %d\nseed %llu\nshard_tokens %llu\nbucket_shares %d\nbestfit_window %llu\n",
               R->name, (ull)R->target_tokens, R->shares_as_input, R->max_copies, (int)R->packing,
               R->bos, R->eos, R->dedup, (ull)R->seed, (ull)o->shard_tokens, R->use_bucket_shares,
               (ull)R->bestfit_window);
    for (int b = 0; !bad && b < R->n_edges; b++)
        bad = append(&s, &n, &cap, "bucket %llu %.17g %.17g\n", (ull)R->edges[b], R->weights[b],
                     R->bucket_shares[b]);
    for (int d = 0; !bad && d < R->n_domains; d++) {
        bad = append(&s, &n, &cap, "domain %s %.17g", R->domains[d].name, R->domains[d].share);
        for (int b = 0; !bad && b < R->domains[d].has_weights; b++)
            bad = append(&s, &n, &cap, " %.17g", R->domains[d].weights[b]);
        if (!bad)
            bad = append(&s, &n, &cap, "\n");
    }
    for (int l = 0; !bad && l < R->n_seq_lens; l++)
        bad = append(&s, &n, &cap, "seq_len %llu\n", (ull)R->seq_lens[l]);
    if (bad) {
        free(s);
        return NULL;
    }
    return s;
}

/* Compares key with the file (absent: writes it). 1 = same, 0 = different, -1 = I/O error. */
static int key_matches(const char *path, const char *key) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        f = fopen(path, "wb");
        if (!f)
            return -1;
        int ok = fputs(key, f) >= 0;
        return fclose(f) == 0 && ok ? 1 : -1;
    }
    size_t n = strlen(key);
    char *buf = malloc(n + 2);
    size_t got = buf ? fread(buf, 1, n + 1, f) : 0;
    fclose(f);
    int same = buf && got == n && memcmp(buf, key, n) == 0;
    free(buf);
    return same;
}

static int write_key(const char *path, const char *key) {
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    int ok = fputs(key, f) >= 0;
    return fclose(f) == 0 && ok ? 0 : -1;
}

/* A rerun with another recipe: the old shards are not this recipe's output. */
static int remove_shards(const prep_opts *o) {
    char cmd[4400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'/L[0-9]*", o->output);
    return strchr(o->output, '\'') ? -1 : system(cmd);
}

static int make_dir(const char *path, char *err, size_t err_bytes) {
    if (mkdir(path, 0755) == 0 || errno == EEXIST)
        return PREP_OK;
    snprintf(err, err_bytes, "%s: %s", path, strerror(errno));
    return PREP_ERR_IO;
}

/* ---- success on nothing ---------------------------------------------------------------------
 * A typo in --domain-json or --text-field rejects every record, and an empty output looked
 * like success. Fewer than 1 in KEPT_MIN_RATIO records kept (rejects removed), or no document
 * selected, is worth a warning (fatal with --strict). */

#define KEPT_MIN_RATIO 100

/* 1 with msg set when (almost) nothing is kept, else 0. */
static int kept_too_little(const prep_stats *S, uint64_t n_sel, char *msg, size_t msg_bytes) {
    uint64_t n_rejected = 0;
    int top = 0;
    for (int r = 1; r < PREP_REJECT_N; r++) {
        n_rejected += S->rejects[r];
        if (S->rejects[r] > S->rejects[top])
            top = r;
    }
    uint64_t n_kept = S->n_records - n_rejected;
    if (S->n_records == 0) {
        snprintf(msg, msg_bytes, "the inputs hold no records: nothing to pack");
        return 1;
    }
    if (n_kept * KEPT_MIN_RATIO >= S->n_records && n_sel > 0)
        return 0;
    static const char *const hint[PREP_REJECT_N] = {
        [PREP_REJECT_JSON] = " (are these JSON lines?)",
        [PREP_REJECT_FIELD] = " (is --text-field or the recipe's \"text\" right?)",
        [PREP_REJECT_DOMAIN] = " (is --domain-json or the recipe's \"domain\" right?)",
        [PREP_REJECT_UTF8] = " (--utf8 replace keeps them)",
        [PREP_REJECT_TOO_LONG] = " (see --max-doc-bytes)",
    };
    if (n_kept * KEPT_MIN_RATIO < S->n_records)
        snprintf(msg, msg_bytes,
                 "%s: %llu of %llu records kept (under 1 in %d); most rejected as %s: %llu "
                 "records%s",
                 n_kept ? "almost nothing kept" : "nothing kept", (ull)n_kept, (ull)S->n_records,
                 KEPT_MIN_RATIO, prep_reject_name((prep_reject)top), (ull)S->rejects[top],
                 hint[top] ? hint[top] : "");
    else
        snprintf(
            msg, msg_bytes,
            "no document selected from the %llu records kept (see the recipe's weights and target)",
            (ull)n_kept);
    return 1;
}

/* ---- the output folder's lock ---------------------------------------------------------------
 * Two runs into one DIR would rename each other's files away. Rank 0 holds an flock on
 * DIR/prep.lock for the run; the file says who holds it. It is removed at the end so that DIR
 * holds only the output (a SIGKILL leaves it behind, unlocked: the next run takes it over). A
 * run that opened the file just before the holder removed it would lock a file no longer in
 * DIR, so a lock only counts while the path still names the locked file. */

#define LOCK_FILE "prep.lock"

static int output_lock(const char *dir, int *fd_out, char *msg, size_t msg_bytes) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, LOCK_FILE);
    for (int attempt = 0; attempt < 100; attempt++) {
        int fd = open(path, O_RDWR | O_CREAT, 0644);
        if (fd < 0) {
            snprintf(msg, msg_bytes, "%s: %s", path, strerror(errno));
            return PREP_ERR_IO;
        }
        int locked = flock(fd, LOCK_EX | LOCK_NB) == 0, e = errno;
        if (!locked &&
            (e == ENOLCK || e == EOPNOTSUPP)) { /* e.g. NFS without lockd: run, unguarded */
            LOG_WARN("%s: the file system takes no flock (%s): running without the lock", path,
                     strerror(e));
            *fd_out = fd;
            return PREP_OK;
        }
        if (!locked) {
            int busy = e == EWOULDBLOCK;
            char text[256], who[512]; /* "pid P\nhost H\nstarted T\n" -> "pid P, host H, ..." */
            ssize_t n = busy ? pread(fd, text, sizeof text - 1, 0) : 0;
            size_t k = 0;
            for (ssize_t i = 0; i < n && text[i] && k + 3 < sizeof who; i++)
                if (text[i] != '\n')
                    who[k++] = text[i];
                else if (i + 1 < n)
                    k += (size_t)snprintf(who + k, sizeof who - k, ", ");
            who[k] = '\0';
            if (busy)
                snprintf(msg, msg_bytes,
                         "%s is in use by another prep run (%s); wait for it, stop it, or use "
                         "another --output",
                         dir, who[0] ? who : "holder unknown");
            else
                snprintf(msg, msg_bytes, "%s: flock: %s", path, strerror(e));
            close(fd);
            return busy ? PREP_ERR_BUSY : PREP_ERR_IO;
        }
        struct stat a, b;
        if (fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_ino == b.st_ino &&
            a.st_dev == b.st_dev) {
            char host[256] = "?", when[32] = "?", text[512];
            gethostname(host, sizeof host);
            host[sizeof host - 1] = '\0';
            time_t now = time(NULL);
            struct tm tm;
            if (gmtime_r(&now, &tm))
                strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
            int n = snprintf(text, sizeof text, "pid %ld\nhost %s\nstarted %s\n", (long)getpid(),
                             host, when);
            if (ftruncate(fd, 0) != 0 || pwrite(fd, text, (size_t)n, 0) != n) {
                snprintf(msg, msg_bytes, "%s: write: %s", path, strerror(errno));
                close(fd);
                return PREP_ERR_IO;
            }
            *fd_out = fd;
            return PREP_OK;
        }
        close(fd); /* removed or replaced by the run that just ended: again */
    }
    snprintf(msg, msg_bytes, "%s: the lock file keeps changing", path);
    return PREP_ERR_BUSY;
}

static void output_unlock(const char *dir, int fd) {
    if (fd < 0)
        return;
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, LOCK_FILE);
    unlink(path); /* while still locked: a waiting run then finds the path gone and retries */
    close(fd);
}

/* ---- the stages ------------------------------------------------------------------------------
 * prep_run() below calls these in order. Each returns a status agreed over the ranks (except
 * where it says "rank 0"), so every rank leaves at the same step. */

/* Everything prep_run holds, freed at its end. */
typedef struct {
    tokenizer *tok;
    prep_input *in; /* (n_in) */
    size_t n_in;
    prep_unit *units; /* (n_units) */
    size_t n_units;
    prep_sel *sel; /* (n_sel) this rank's selected documents */
    size_t n_sel;
    uint64_t n_sel_all; /* on every rank */
    prep_stats S;
    uint64_t n_seqs[PREP_MAX_SEQ_LENS], n_shards[PREP_MAX_SEQ_LENS];
    int lock_fd; /* rank 0: DIR/prep.lock, held until the end */
} run_state;

/* 0a. DIR and DIR/work exist, and rank 0 holds DIR's lock. */
static int stage_output(MPI_Comm comm, const prep_opts *o, run_state *R, char *err,
                        size_t err_bytes) {
    int rank;
    MPI_Comm_rank(comm, &rank);
    char msg[PREP_ERRMSG_BYTES] = "";
    int st = PREP_OK;
    if (rank == 0) {
        char work[4200];
        snprintf(work, sizeof work, "%s/work", o->output);
        st = make_dir(o->output, msg, sizeof msg);
        if (st == PREP_OK)
            st = output_lock(o->output, &R->lock_fd, msg, sizeof msg);
        if (st == PREP_OK)
            st = make_dir(work, msg, sizeof msg);
    }
    return cluster_agree_msg(comm, st, msg, err, err_bytes, NULL);
}

/* Drops the inputs under DIR: never read our own output (an output folder inside an input
 * one). Local. */
static void drop_own_output(int rank, const prep_opts *o, run_state *R) {
    char out_real[PATH_MAX], in_real[PATH_MAX];
    size_t k = 0;
    if (!realpath(o->output, out_real))
        return;
    size_t n_out = strlen(out_real);
    for (size_t i = 0; i < R->n_in; i++) {
        int inside = realpath(R->in[i].path, in_real) && !strncmp(in_real, out_real, n_out) &&
                     in_real[n_out] == '/';
        if (inside)
            free(R->in[i].path);
        else
            R->in[k++] = R->in[i];
    }
    if (k < R->n_in && rank == 0)
        LOG_INFO("%zu files under the output folder %s are not inputs", R->n_in - k, o->output);
    R->n_in = k;
}

/* 0b. The tokenizer, the inputs and their units (every rank the same). Local; the caller
 * agrees. */
static int stage_inputs(int rank, const prep_opts *o, run_state *R, char *msg, size_t msg_bytes) {
    if (tokenizer_load(o->tokenizer, &R->tok) != TOK_OK) {
        snprintf(msg, msg_bytes, "%s", tokenizer_errmsg(R->tok));
        return PREP_ERR_INPUT;
    }
    const tokenizer *tok = R->tok;
    if ((o->recipe.bos && tokenizer_bos_id(tok) < 0) ||
        (o->recipe.eos && tokenizer_eos_id(tok) < 0)) {
        snprintf(msg, msg_bytes,
                 "%s has no %s token, but recipe %s adds one to every document "
                 "(set \"%s\": false)",
                 o->tokenizer, tokenizer_bos_id(tok) < 0 ? "BOS" : "EOS", o->recipe.name,
                 tokenizer_bos_id(tok) < 0 ? "bos" : "eos");
        return PREP_ERR_RECIPE;
    }
    if (prep_inputs_scan(o->inputs, o->n_inputs, &R->in, &R->n_in, msg, msg_bytes) != PREP_READ_OK)
        return PREP_ERR_INPUT;
    drop_own_output(rank, o, R);
    if (R->n_in == 0) {
        snprintf(msg, msg_bytes, "no input files");
        return PREP_ERR_INPUT;
    }
    if (prep_inputs_find_frames(R->in, R->n_in, o->unit_bytes, msg, msg_bytes) != PREP_READ_OK)
        return PREP_ERR_NOMEM;
    if (prep_units_make(R->in, R->n_in, o->unit_bytes, &R->units, &R->n_units) != PREP_READ_OK) {
        snprintf(msg, msg_bytes, "out of memory for the work units");
        return PREP_ERR_NOMEM;
    }
    return PREP_OK;
}

/* 0c. Rank 0: the same setup as the work already in DIR? Another scan setup is refused;
 * another recipe removes the old shards. */
static int stage_setup_keys(const prep_opts *o, const run_state *R, char *msg, size_t msg_bytes) {
    int st = PREP_OK;
    char *sk = scan_key(o, R->tok, R->in, R->n_in), *pk = pack_key(o), path[4200];
    if (!sk || !pk) {
        snprintf(msg, msg_bytes, "out of memory");
        st = PREP_ERR_NOMEM;
    }
    snprintf(path, sizeof path, "%s/work/setup.txt", o->output);
    int m = st == PREP_OK ? key_matches(path, sk) : 1;
    if (m == 0) {
        snprintf(msg, msg_bytes,
                 "%s holds work from another setup (inputs, tokenizer or read "
                 "options differ from %s); use another --output or remove %s/work",
                 o->output, path, o->output);
        st = PREP_ERR_ARG;
    } else if (m < 0) {
        snprintf(msg, msg_bytes, "%s: cannot write: %s", path, strerror(errno));
        st = PREP_ERR_IO;
    }
    snprintf(path, sizeof path, "%s/recipe.txt", o->output);
    m = st == PREP_OK ? key_matches(path, pk) : 1;
    if (m == 0) {
        LOG_WARN("%s: another recipe than last time: the shards are made again", o->output);
        if (remove_shards(o) != 0 || write_key(path, pk) != 0) {
            snprintf(msg, msg_bytes, "%s: cannot replace the old shards", o->output);
            st = PREP_ERR_IO;
        }
    } else if (m < 0 && st == PREP_OK) {
        snprintf(msg, msg_bytes, "%s: cannot write: %s", path, strerror(errno));
        st = PREP_ERR_IO;
    }
    free(sk);
    free(pk);
    return st;
}

/* 1b. Rank 0: units were redone (prep_scan left DIR/work/stale-shards), so the shards of the
 * old inputs must not be resumed. */
static int stage_drop_stale_shards(const prep_opts *o, char *msg, size_t msg_bytes) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", o->output, PREP_STALE_SHARDS);
    if (access(path, F_OK) != 0)
        return PREP_OK;
    LOG_INFO("%s: units were tokenized again since the shards were made: the shards are made again",
             o->output);
    if (remove_shards(o) != 0 || unlink(path) != 0) {
        snprintf(msg, msg_bytes, "%s: cannot remove the old shards", o->output);
        return PREP_ERR_IO;
    }
    return PREP_OK;
}

/* 4b. Budget shortfalls and (almost) empty selections: warnings, fatal with --strict. The
 * stats are global, so every rank decides the same without communicating. */
static int stage_check_selection(int rank, const prep_opts *o, const run_state *R, char *err,
                                 size_t err_bytes) {
    const prep_stats *S = &R->S;
    uint64_t short_total = 0;
    for (int d = 0; d < S->n_domains; d++)
        if (S->budget[d] != UINT64_MAX && S->sel_tokens[d] < S->budget[d]) {
            short_total += S->budget[d] - S->sel_tokens[d];
            if (rank == 0)
                LOG_WARN("domain %s: %llu of %llu budget tokens available (short by %llu)",
                         S->domain[d], (ull)S->sel_tokens[d], (ull)S->budget[d],
                         (ull)(S->budget[d] - S->sel_tokens[d]));
        }
    if (short_total && o->strict) {
        snprintf(err, err_bytes, "%llu tokens short of the budget (--strict)", (ull)short_total);
        return PREP_ERR_SHORT;
    }
    uint64_t n_rejected = 0;
    for (int r = 1; r < PREP_REJECT_N; r++)
        n_rejected += S->rejects[r];
    if (rank == 0)
        LOG_INFO("%llu records, %llu rejected; %llu documents selected", (ull)S->n_records,
                 (ull)n_rejected, (ull)R->n_sel_all);
    char msg[PREP_ERRMSG_BYTES];
    if (kept_too_little(S, R->n_sel_all, msg, sizeof msg)) {
        if (o->strict) {
            snprintf(err, err_bytes, "%s (--strict)", msg);
            return PREP_ERR_INPUT;
        }
        if (rank == 0)
            LOG_WARN("%s", msg);
    }
    return PREP_OK;
}

/* 7. Rank 0: stats, report. */
static int stage_write_outputs(const prep_opts *o, const run_state *R, char *msg,
                               size_t msg_bytes) {
    int st = prep_stats_write(o, R->in, R->n_in, &R->S, R->n_seqs, R->n_shards, msg, msg_bytes);
    if (st == PREP_OK)
        st = prep_report_write(o, &R->S, R->n_seqs, R->n_shards, msg, msg_bytes);
    return st;
}

int prep_run(MPI_Comm comm, const prep_opts *o, char *err, size_t err_bytes) {
    int rank, n_ranks;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &n_ranks);
    char msg[PREP_ERRMSG_BYTES] = "";
    run_state R;
    memset(&R, 0, sizeof R);
    R.lock_fd = -1;
    double t0 = cluster_now();

    /* 0. the output folder, the tokenizer, the inputs and their units, the setup */
    int st = stage_output(comm, o, &R, err, err_bytes);
    if (st != PREP_OK)
        goto done;
    st = stage_inputs(rank, o, &R, msg, sizeof msg);
    if (st == PREP_OK && rank == 0)
        st = stage_setup_keys(o, &R, msg, sizeof msg);
    if ((st = cluster_agree_msg(comm, st, msg, err, err_bytes, NULL)) != PREP_OK)
        goto done;
    if (rank == 0)
        LOG_INFO("%zu input files in %zu work units; recipe %s, seed %llu, %d rank%s x %d "
                 "thread%s",
                 R.n_in, R.n_units, o->recipe.name, (ull)o->recipe.seed, n_ranks,
                 n_ranks > 1 ? "s" : "", o->threads, o->threads > 1 ? "s" : "");
    cluster_warn_threads(comm, o->threads);

    /* 1. read + tokenize (resumable per unit) */
    if ((st = prep_scan(comm, o, R.tok, R.in, R.units, R.n_units, err, err_bytes)) != PREP_OK)
        goto done;
    if (rank == 0)
        st = stage_drop_stale_shards(o, msg, sizeof msg);
    if ((st = cluster_agree_msg(comm, st, msg, err, err_bytes, NULL)) != PREP_OK)
        goto done;
    if (rank == 0)
        LOG_INFO("read and tokenized in %.1f s", cluster_now() - t0);

    /* 2-4. numbering, domains, dedup, buckets, selection */
    if ((st = prep_select(comm, o, R.n_in, R.units, R.n_units, &R.sel, &R.n_sel, &R.S, err,
                          err_bytes)) != PREP_OK)
        goto done;
    for (int d = 0; d < R.S.n_domains; d++)
        R.n_sel_all += R.S.sel_docs[d];
    if (rank == 0)
        LOG_INFO("selected in %.1f s", cluster_now() - t0);
    if ((st = stage_check_selection(rank, o, &R, err, err_bytes)) != PREP_OK)
        goto done;

    /* 5. the manifest of the selection (every rank: its documents) */
    if ((st = prep_manifest_write(comm, o, R.in, R.units, R.sel, R.n_sel, &R.S, err, err_bytes)) !=
        PREP_OK)
        goto done;
    if (rank == 0)
        LOG_INFO("manifest written in %.1f s", cluster_now() - t0);

    /* 6. packing and shards (resumable per shard; prep_pack frees R.sel) */
    if ((st = prep_pack(comm, o, R.tok, &R.sel, R.n_sel, R.n_units, R.n_seqs, R.n_shards, err,
                        err_bytes)) != PREP_OK)
        goto done;
    if (rank == 0)
        LOG_INFO("packed and written in %.1f s", cluster_now() - t0);

    /* 7. stats, report */
    if (rank == 0)
        st = stage_write_outputs(o, &R, msg, sizeof msg);
    if ((st = cluster_agree_msg(comm, st, msg, err, err_bytes, NULL)) != PREP_OK)
        goto done;
    if (rank == 0) {
        uint64_t tokens = 0;
        for (int d = 0; d < R.S.n_domains; d++)
            tokens += R.S.sel_tokens[d];
        LOG_INFO("done in %.1f s: %llu tokens of %llu documents in %s", cluster_now() - t0,
                 (ull)tokens, (ull)R.n_sel_all, o->output);
    }
done:
    output_unlock(o->output, R.lock_fd);
    prep_stats_free(&R.S);
    free(R.sel);
    free(R.units);
    prep_inputs_free(R.in, R.n_in);
    tokenizer_free(R.tok);
    return st;
}
