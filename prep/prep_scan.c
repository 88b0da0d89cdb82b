/* prep_scan.c - stage 1: read and tokenize every work unit into DIR/work.
 *
 * A unit's results are two files, written to .tmp and renamed, the meta last:
 *   unit-NNNNNN.shard  its accepted documents, one sequence each (text tokens only)
 *   unit-NNNNNN.meta   every record: offset, tokens, xxh3-128, domain, member, reject
 *                      reason; and the unit's fingerprint (range, file size, mtime, XXH3-64)
 * A unit whose .meta exists, checks out and whose fingerprint still matches the input is
 * done: a rerun skips it (resume). */
#include "prep_internal.h"
#include "shard.h"

#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

typedef unsigned long long ull;

#define META_MAGIC      "LCTXUMET"
#define META_VERSION    2u /* 2: the fingerprint (a version 1 meta is redone) */
#define META_HEADER     96u
#define META_REC        48u
#define BATCH_BYTES     (8u << 20)
#define BATCH_DOCS      4096u
#define WORK_ZSTD_LEVEL (-100) /* zstd --fast=100 */

void prep_unit_path(char *out, size_t n, const char *dir, size_t unit, const char *ext) {
    snprintf(out, n, "%s/work/unit-%06zu.%s", dir, unit, ext);
}

/* ==== unit meta files ========================================================================*/

static void put32(uint8_t *p, uint32_t v) {
    memcpy(p, &v, 4);
}
static void put64(uint8_t *p, uint64_t v) {
    memcpy(p, &v, 8);
}
static uint32_t get32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}
static uint64_t get64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

int prep_unit_meta_write(const char *path, const prep_unit_meta *m, char *err, size_t err_bytes) {
    uint64_t n = META_HEADER + m->n_records * META_REC + 8;
    for (uint32_t s = 0; s < m->n_strings; s++)
        n += 4 + strlen(m->strings[s]);
    uint8_t *buf = malloc(n), *p = buf;
    if (!buf) {
        snprintf(err, err_bytes, "out of memory for %s", path);
        return PREP_ERR_NOMEM;
    }
    memcpy(p, META_MAGIC, 8);
    put32(p + 8, META_VERSION);
    put32(p + 12, m->truncated ? 1u : 0u);
    put64(p + 16, m->truncated_offset);
    put64(p + 24, m->n_records);
    put32(p + 32, m->n_strings);
    put32(p + 36, 0);
    put64(p + 40, m->unit_begin);
    put64(p + 48, m->unit_end);
    put64(p + 56, m->input_bytes);
    put64(p + 64, m->input_mtime_ns);
    put64(p + 72, m->raw_begin);
    put64(p + 80, m->raw_end);
    put64(p + 88, m->raw_xxh3);
    p += META_HEADER;
    for (uint64_t i = 0; i < m->n_records; i++, p += META_REC) {
        const prep_unit_rec *r = &m->recs[i];
        put64(p, r->offset);
        put64(p + 8, r->n_tokens);
        put64(p + 16, r->hash[0]);
        put64(p + 24, r->hash[1]);
        put32(p + 32, r->domain);
        put32(p + 36, r->member);
        put32(p + 40, r->seq);
        put32(p + 44, r->reject);
    }
    for (uint32_t s = 0; s < m->n_strings; s++) {
        uint32_t len = (uint32_t)strlen(m->strings[s]);
        put32(p, len);
        memcpy(p + 4, m->strings[s], len);
        p += 4 + len;
    }
    put64(p, XXH3_64bits(buf, (size_t)(p - buf)));
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    int ok = f && fwrite(buf, 1, n, f) == n;
    ok = f && fflush(f) == 0 && fsync(fileno(f)) == 0 && ok;
    if (f && fclose(f) != 0)
        ok = 0;
    free(buf);
    if (!ok || rename(tmp, path) != 0) {
        snprintf(err, err_bytes, "%s: write: %s", tmp, strerror(errno));
        unlink(tmp);
        return PREP_ERR_IO;
    }
    return PREP_OK;
}

void prep_unit_meta_free(prep_unit_meta *m) {
    free(m->recs);
    free(m->strings);
    free(m->blob);
    memset(m, 0, sizeof *m);
}

int prep_unit_meta_read(const char *path, prep_unit_meta *m, char *err, size_t err_bytes) {
    memset(m, 0, sizeof *m);
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, err_bytes, "%s: %s", path, strerror(errno));
        return PREP_ERR_IO;
    }
    struct stat sb;
    uint8_t *buf = NULL;
    int st = PREP_ERR_INPUT;
    if (fstat(fileno(f), &sb) != 0 || sb.st_size < META_HEADER + 8)
        goto bad;
    size_t n = (size_t)sb.st_size;
    buf = malloc(n);
    if (!buf || fread(buf, 1, n, f) != n)
        goto bad;
    if (memcmp(buf, META_MAGIC, 8) || get32(buf + 8) != META_VERSION ||
        XXH3_64bits(buf, n - 8) != get64(buf + n - 8))
        goto bad;
    m->truncated = (get32(buf + 12) & 1) != 0;
    m->truncated_offset = get64(buf + 16);
    m->n_records = get64(buf + 24);
    m->n_strings = get32(buf + 32);
    m->unit_begin = get64(buf + 40);
    m->unit_end = get64(buf + 48);
    m->input_bytes = get64(buf + 56);
    m->input_mtime_ns = get64(buf + 64);
    m->raw_begin = get64(buf + 72);
    m->raw_end = get64(buf + 80);
    m->raw_xxh3 = get64(buf + 88);
    if (m->n_records > (n - META_HEADER - 8) / META_REC || m->n_strings > n)
        goto bad;
    m->recs = malloc((m->n_records ? m->n_records : 1) * sizeof *m->recs);
    m->strings = malloc((m->n_strings ? m->n_strings : 1) * sizeof *m->strings);
    m->blob = malloc(n);
    if (!m->recs || !m->strings || !m->blob)
        goto bad;
    const uint8_t *p = buf + META_HEADER, *end = buf + n - 8;
    for (uint64_t i = 0; i < m->n_records; i++, p += META_REC) {
        prep_unit_rec *r = &m->recs[i];
        r->offset = get64(p);
        r->n_tokens = get64(p + 8);
        r->hash[0] = get64(p + 16);
        r->hash[1] = get64(p + 24);
        r->domain = get32(p + 32);
        r->member = get32(p + 36);
        r->seq = get32(p + 40);
        r->reject = (uint8_t)get32(p + 44);
    }
    char *b = m->blob;
    for (uint32_t s = 0; s < m->n_strings; s++) {
        if (end - p < 4)
            goto bad;
        uint32_t len = get32(p);
        if ((uint64_t)(end - p - 4) < len)
            goto bad;
        memcpy(b, p + 4, len);
        b[len] = '\0';
        m->strings[s] = b;
        b += len + 1;
        p += 4 + len;
    }
    if (p != end)
        goto bad;
    for (uint64_t i = 0; i < m->n_records; i++)
        if ((m->recs[i].domain >= m->n_strings && m->recs[i].domain != PREP_NO_SEQ) ||
            (m->recs[i].member >= m->n_strings && m->recs[i].member != PREP_NO_SEQ) ||
            m->recs[i].reject >= PREP_REJECT_N)
            goto bad;
    st = PREP_OK;
bad:
    if (st != PREP_OK) {
        snprintf(err, err_bytes, "%s: damaged unit meta", path);
        prep_unit_meta_free(m);
    }
    free(buf);
    fclose(f);
    return st;
}

/* ==== unit fingerprints ======================================================================*/

/* The bytes a unit's records depend on. A plain jsonl range owns the lines starting in
 * [begin, end): they depend on byte begin - 1 (does a line start at begin?) and run to the
 * first '\n' at or after end - 1, so those bytes are hashed, and an edit anywhere redoes
 * exactly the units whose records it can change. Other units are hashed as they are cut,
 * [begin, end) of the file; lines cross the frames of a multi-frame .zst, so there a change
 * redoes every unit of the file (scan_check_done). Hashed before the records are read: a file
 * edited during the scan leaves a hash that no longer matches, never tokens that look fresh. */
static int unit_fingerprint(const prep_input *in, const prep_unit *u, prep_unit_meta *fp, char *err,
                            size_t err_bytes) {
    enum { BUF_BYTES = 1 << 20 };
    int fd = open(in->path, O_RDONLY);
    struct stat sb;
    uint8_t *buf = malloc(BUF_BYTES); /* (BUF_BYTES) */
    XXH3_state_t *h = XXH3_createState();
    int st = PREP_OK;
    if (fd < 0 || fstat(fd, &sb) != 0) {
        snprintf(err, err_bytes, "%s: %s", in->path, strerror(errno));
        st = PREP_ERR_IO;
        goto done;
    }
    if (!buf || !h) {
        snprintf(err, err_bytes, "out of memory for the fingerprint of %s", in->path);
        st = PREP_ERR_NOMEM;
        goto done;
    }
    int lines = in->format == PREP_FMT_JSONL;
    fp->unit_begin = u->begin;
    fp->unit_end = u->end;
    fp->input_bytes = (uint64_t)sb.st_size;
    fp->input_mtime_ns = (uint64_t)sb.st_mtim.tv_sec * 1000000000u + (uint64_t)sb.st_mtim.tv_nsec;
    fp->raw_begin = lines && u->begin > 0 ? u->begin - 1 : u->begin;
    uint64_t pos = fp->raw_begin, stop = lines ? in->bytes : u->end;
    uint64_t last = u->end > 0 ? u->end - 1 : 0; /* lines: the first '\n' from here ends it */
    XXH3_64bits_reset(h);
    while (pos < stop) {
        size_t want = stop - pos < BUF_BYTES ? (size_t)(stop - pos) : BUF_BYTES;
        ssize_t got = pread(fd, buf, want, (off_t)pos);
        if (got <= 0) {
            snprintf(err, err_bytes, "%s: offset %llu: %s", in->path, (ull)pos,
                     got < 0 ? strerror(errno) : "shorter than when listed");
            st = PREP_ERR_IO;
            goto done;
        }
        size_t take = (size_t)got;
        int found = 0;
        if (lines && pos + take > last) {
            size_t from = last > pos ? (size_t)(last - pos) : 0;
            const uint8_t *nl = memchr(buf + from, '\n', take - from);
            if (nl) {
                take = (size_t)(nl - buf) + 1;
                found = 1;
            }
        }
        XXH3_64bits_update(h, buf, take);
        pos += take;
        if (found)
            break;
    }
    fp->raw_end = pos;
    fp->raw_xxh3 = XXH3_64bits_digest(h);
done:
    XXH3_freeState(h);
    free(buf);
    if (fd >= 0)
        close(fd);
    return st;
}

/* Why the unit done as old no longer stands for the input as it is now, NULL if it does. */
static const char *fingerprint_differs(const prep_unit_meta *old, const prep_unit_meta *now) {
    if (old->unit_begin != now->unit_begin || old->unit_end != now->unit_end)
        return "its byte range moved";
    if (old->input_bytes != now->input_bytes)
        return "the file's size changed";
    if (old->raw_begin != now->raw_begin || old->raw_end != now->raw_end)
        return "its last line ends elsewhere";
    if (old->raw_xxh3 != now->raw_xxh3)
        return "its content changed";
    return NULL;
}

/* Checks every unit an earlier run finished against its input now (units round-robin over
 * the ranks). The metas of changed units are removed so the queue redoes them, after
 * DIR/work/stale-shards is written: killed in between, the next run still makes the shards
 * again. Collective. */
static int scan_check_done(MPI_Comm comm, const prep_opts *o, const prep_input *in,
                           const prep_unit *units, size_t n_units, char *err, size_t err_bytes) {
    int rank, n_ranks;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &n_ranks);
    uint8_t *changed = calloc(n_units ? n_units : 1, 1); /* (n_units) 1: redo, 2: its file's */
    char msg[PREP_ERRMSG_BYTES] = "";
    int st = changed ? PREP_OK : PREP_ERR_NOMEM;
    if (!changed)
        snprintf(msg, sizeof msg, "out of memory for %zu units", n_units);
    double t0 = cluster_now();
    uint64_t sums[3] = {0, 0, 0}; /* units checked, bytes hashed, units changed */
    for (size_t u = (size_t)rank; st == PREP_OK && u < n_units; u += (size_t)n_ranks) {
        char path[4200], e2[256];
        prep_unit_path(path, sizeof path, o->output, u, "meta");
        prep_unit_meta old, now;
        int rst = prep_unit_meta_read(path, &old, e2, sizeof e2);
        if (rst == PREP_ERR_INPUT) { /* unknown state: as if changed, the shards too */
            changed[u] = 1;
            sums[2]++;
            LOG_INFO("unit %zu is tokenized again: %s (or from an older version)", u, e2);
            continue;
        }
        if (rst != PREP_OK)
            continue; /* not done yet */
        memset(&now, 0, sizeof now);
        const prep_input *f = &in[units[u].input];
        st = unit_fingerprint(f, &units[u], &now, msg, sizeof msg);
        const char *why = st == PREP_OK ? fingerprint_differs(&old, &now) : NULL;
        if (why) {
            changed[u] = 1;
            sums[2]++;
            LOG_INFO("unit %zu (%s bytes %llu..%llu) is tokenized again: %s since it was done "
                     "(xxh3 %016llx, was %016llx%s)",
                     u, f->path, (ull)units[u].begin, (ull)units[u].end, why, (ull)now.raw_xxh3,
                     (ull)old.raw_xxh3,
                     old.input_mtime_ns != now.input_mtime_ns ? "; mtime changed" : "");
        } else if (st == PREP_OK) {
            if (old.input_mtime_ns != now.input_mtime_ns)
                LOG_DEBUG("unit %zu: %s has another mtime, the same bytes: kept", u, f->path);
            /* the work file itself: damaged since (a disk, a copy cut short) means redone */
            char sp[4200], vmsg[512];
            prep_unit_path(sp, sizeof sp, o->output, u, "shard");
            shard_verify_report vr;
            int vst = shard_verify(sp, &vr, vmsg, sizeof vmsg);
            if (vst == SHARD_ERR_NOMEM) {
                snprintf(msg, sizeof msg, "out of memory verifying %s", sp);
                st = PREP_ERR_NOMEM;
            } else if (vst != SHARD_OK) {
                changed[u] = 1;
                sums[2]++;
                LOG_WARN("unit %zu is tokenized again: its work file is damaged: %s", u, vmsg);
            }
        }
        sums[0]++;
        sums[1] += now.raw_end - now.raw_begin;
        prep_unit_meta_free(&old);
    }
    if ((st = cluster_agree_msg(comm, st, msg, err, err_bytes, NULL)) != PREP_OK)
        goto done;
    if (cluster_allreduce_big(changed, n_units, MPI_UNSIGNED_CHAR, MPI_MAX, comm) != CLUSTER_OK ||
        MPI_Allreduce(MPI_IN_PLACE, sums, 3, MPI_UINT64_T, MPI_SUM, comm) != MPI_SUCCESS) {
        snprintf(err, err_bytes, "fingerprint check: MPI_Allreduce failed");
        st = PREP_ERR_MPI;
        goto done;
    }
    double dt = cluster_now() - t0;
    if (rank == 0 && sums[0])
        LOG_INFO("resume: %llu done units checked, %.1f MB hashed in %.2f s (%.0f MB/s), %llu "
                 "changed",
                 (ull)sums[0], sums[1] / 1e6, dt, dt > 0 ? sums[1] / 1e6 / dt : 0.0, (ull)sums[2]);
    if (!sums[2])
        goto done;
    for (size_t u = 0; u < n_units; u++) /* the same on every rank */
        if (changed[u] == 1 && in[units[u].input].n_frames)
            for (size_t v = 0; v < n_units; v++)
                if (units[v].input == units[u].input && !changed[v])
                    changed[v] = 2;
    if (rank == 0) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", o->output, PREP_STALE_SHARDS);
        FILE *f = fopen(path, "wb");
        int ok = f && fputs("the inputs changed since these shards were made\n", f) >= 0 &&
                 fflush(f) == 0 && fsync(fileno(f)) == 0;
        if ((f && fclose(f) != 0) || !ok) {
            snprintf(msg, sizeof msg, "%s: %s", path, strerror(errno));
            st = PREP_ERR_IO;
        }
        for (size_t u = 0; st == PREP_OK && u < n_units; u++) {
            prep_unit_path(path, sizeof path, o->output, u, "meta");
            int first = changed[u] == 2 &&
                        (u == 0 || changed[u - 1] != 2 || units[u - 1].input != units[u].input);
            size_t last = u; /* one line per run of units of one file */
            while (first && last + 1 < n_units && changed[last + 1] == 2 &&
                   units[last + 1].input == units[u].input)
                last++;
            if (first)
                LOG_INFO("units %zu..%zu (%s) are tokenized again: another unit of this "
                         "multi-frame file changed",
                         u, last, in[units[u].input].path);
            if (changed[u] && unlink(path) != 0 && errno != ENOENT) {
                snprintf(msg, sizeof msg, "%s: %s", path, strerror(errno));
                st = PREP_ERR_IO;
            }
        }
    }
    st = cluster_agree_msg(comm, st, msg, err, err_bytes, NULL);
done:
    free(changed);
    return st;
}

/* ==== domains ================================================================================*/

const char *prep_recipe_domain(const prep_recipe *r, const prep_input *in, const prep_record *rec,
                               char *buf, size_t buf_bytes) {
    switch (r->domain_src) {
    case PREP_DOMAIN_JSON:
        if (!rec->domain)
            return NULL;
        snprintf(buf, buf_bytes, "%.*s", (int)rec->n_domain, rec->domain);
        return buf;
    case PREP_DOMAIN_GLOB: {
        char path[4400];
        snprintf(path, sizeof path, "%s%s%s", in->path, rec->member ? "/" : "",
                 rec->member ? rec->member : "");
        for (int g = 0; g < r->n_globs; g++)
            if (fnmatch(r->glob_pattern[g], path, 0) == 0)
                return r->glob_domain[g];
        return NULL;
    }
    default:
        return r->domain_fixed;
    }
}

/* ==== one unit ===============================================================================*/

/* A finished unit made durable by a helper thread while the next unit is read and tokenized:
 * its shard is closed (last block, index, fsync, rename), then its meta written (fsync,
 * rename), in that order, so a meta still means a complete unit. The fsyncs were about 0.8 s
 * of waiting per GB of text on the benchmark (tests/bench/bench_prep.sh), more on slow disks. */
typedef struct {
    shard_writer *sw;
    prep_unit_meta meta;
    char meta_path[4200];
    int running, joinable;
    pthread_t th;
    int st;
    char err[PREP_ERRMSG_BYTES];
} unit_closer;

static void *close_unit(void *arg) {
    unit_closer *c = arg;
    c->st = PREP_OK;
    if (shard_writer_close(c->sw) != SHARD_OK) {
        snprintf(c->err, sizeof c->err, "%s", shard_writer_errmsg(c->sw));
        c->st = PREP_ERR_IO;
    } else {
        c->st = prep_unit_meta_write(c->meta_path, &c->meta, c->err, sizeof c->err);
    }
    return NULL;
}

/* Waits for the unit being closed (if any) and frees it. Its status; err is set on failure. */
static int closer_wait(unit_closer *c, char *err, size_t err_bytes) {
    if (!c->running)
        return PREP_OK;
    if (c->joinable)
        pthread_join(c->th, NULL);
    c->running = c->joinable = 0;
    shard_writer_free(c->sw);
    c->sw = NULL;
    for (uint32_t i = 0; i < c->meta.n_strings; i++)
        free(c->meta.strings[i]);
    free(c->meta.strings);
    free(c->meta.recs);
    memset(&c->meta, 0, sizeof c->meta);
    if (c->st != PREP_OK)
        snprintf(err, err_bytes, "%s", c->err);
    return c->st;
}

typedef struct {
    const prep_opts *o;
    const tokenizer *tok;
    tok_pool *pool; /* the tokenize threads */
    /* the batch: batch_bytes of texts in arena (one copy of each, no allocation per document) */
    char *arena; /* (arena_cap) */
    size_t arena_cap;
    uint64_t *text_off; /* (BATCH_DOCS) */
    size_t *n_text;
    uint64_t *rec_of; /* (BATCH_DOCS) record index of each batch document */
    tok_text *docs;   /* (BATCH_DOCS) the batch's texts for the pool */
    size_t n_batch, batch_bytes;
    /* the unit */
    prep_unit_meta meta;
    uint64_t recs_cap;
    uint32_t strings_cap;
    shard_writer *sw;
    uint64_t n_seqs;
    cluster_progress *progress;
    unit_closer closer; /* the previous unit, being made durable */
} scan_state;

static uint32_t intern(scan_state *s, const char *str) {
    for (uint32_t i = 0; i < s->meta.n_strings; i++)
        if (!strcmp(s->meta.strings[i], str))
            return i;
    if (s->meta.n_strings == s->strings_cap) {
        uint32_t cap = s->strings_cap ? 2 * s->strings_cap : 16;
        char **p = realloc(s->meta.strings, cap * sizeof *p);
        if (!p)
            return PREP_NO_SEQ;
        s->meta.strings = p;
        s->strings_cap = cap;
    }
    s->meta.strings[s->meta.n_strings] = strdup(str);
    return s->meta.strings[s->meta.n_strings] ? s->meta.n_strings++ : PREP_NO_SEQ;
}

/* Tokenizes the batch over the threads and appends it to the unit's shard, in order. */
static int flush_batch(scan_state *s, char *err, size_t err_bytes) {
    if (s->n_batch == 0)
        return PREP_OK;
    for (size_t i = 0; i < s->n_batch; i++) {
        s->docs[i].text = s->arena + s->text_off[i];
        s->docs[i].n_bytes = s->n_text[i];
    }
    if (tok_pool_encode(s->pool, s->docs, s->n_batch, NULL) != TOK_OK) {
        snprintf(err, err_bytes, "tokenizer: out of memory");
        return PREP_ERR_NOMEM;
    }
    uint64_t n_tokens = 0;
    for (size_t i = 0; i < s->n_batch; i++) {
        prep_unit_rec *r = &s->meta.recs[s->rec_of[i]];
        size_t m;
        const uint32_t *ids = tok_pool_ids(s->pool, i, &m);
        shard_doc piece = {0, s->rec_of[i], 0};
        if (shard_writer_append(s->sw, ids, m, &piece, 1) != SHARD_OK) {
            snprintf(err, err_bytes, "%s", shard_writer_errmsg(s->sw));
            return PREP_ERR_IO;
        }
        r->n_tokens = m;
        r->seq = (uint32_t)s->n_seqs++;
        n_tokens += m;
    }
    uint64_t delta[3] = {s->n_batch, s->batch_bytes, n_tokens};
    cluster_progress_add(s->progress, delta);
    s->n_batch = 0;
    s->batch_bytes = 0;
    return PREP_OK;
}

static int add_record(scan_state *s, prep_unit_rec **out) {
    if (s->meta.n_records == s->recs_cap) {
        uint64_t cap = s->recs_cap ? 2 * s->recs_cap : 1024;
        prep_unit_rec *p = realloc(s->meta.recs, cap * sizeof *p);
        if (!p)
            return PREP_ERR_NOMEM;
        s->meta.recs = p;
        s->recs_cap = cap;
    }
    *out = &s->meta.recs[s->meta.n_records++];
    memset(*out, 0, sizeof **out);
    (*out)->seq = PREP_NO_SEQ;
    (*out)->member = PREP_NO_SEQ;
    (*out)->domain = PREP_NO_SEQ;
    return PREP_OK;
}

/* How the records of a unit are read: the recipe's text and domain paths, its UTF-8 policy. */
static prep_read_opts unit_read_opts(const prep_opts *o) {
    prep_read_opts ro = prep_read_opts_default();
    ro.text_path = o->recipe.text_path;
    ro.domain_path = o->recipe.domain_src == PREP_DOMAIN_JSON ? o->recipe.domain_path : NULL;
    ro.utf8 = o->recipe.utf8_reject ? PREP_UTF8_REJECT : PREP_UTF8_REPLACE;
    if (o->max_doc_bytes)
        ro.max_doc_bytes = o->max_doc_bytes;
    return ro;
}

/* s->sw: the unit's work shard (text tokens, one sequence per accepted document). */
static int unit_shard_create(scan_state *s, const prep_unit *u, size_t unit_index,
                             const char *shard_path, char *err, size_t err_bytes) {
    char meta_json[512];
    snprintf(meta_json, sizeof meta_json,
             "{\"stage\":\"prep scan\",\"input\":%u,\"unit\":%zu,\"tokenizer_xxh3\":\"%016llx\"}",
             u->input, unit_index, (ull)tokenizer_checksum(s->tok));
    shard_writer_opts wo = shard_writer_opts_default();
    wo.vocab_size = tokenizer_vocab_size(s->tok);
    /* Work files are read once, by the packing: token ids barely compress (1.29x at level 1,
     * from Huffman-coded literals), and level 1 on 16 KiB blocks ran at 190 MB/s, about 2.7 s
     * of one core per GB of text. A level this fast stores the blocks raw (5 GB/s) at 1.27x
     * the size, and the packing decompresses at memory speed. */
    wo.level = WORK_ZSTD_LEVEL;
    wo.block_bytes = 1u << 14; /* packing reads single documents: small blocks (34 s -> 3 s
                                  of packing on 1 GB, tests/bench/bench_prep.sh) */
    wo.meta_json = meta_json;
    if (shard_writer_create(shard_path, &wo, &s->sw) != SHARD_OK) {
        snprintf(err, err_bytes, "%s", shard_writer_errmsg(s->sw));
        return PREP_ERR_IO;
    }
    return PREP_OK;
}

/* The finished unit goes to the closer (one at a time): its shard and meta move to it. */
static int closer_start(scan_state *s, const char *meta_path, char *err, size_t err_bytes) {
    int st = closer_wait(&s->closer, err, err_bytes);
    if (st != PREP_OK)
        return st;
    unit_closer *c = &s->closer;
    c->sw = s->sw;
    c->meta = s->meta;
    snprintf(c->meta_path, sizeof c->meta_path, "%s", meta_path);
    s->sw = NULL;
    memset(&s->meta, 0, sizeof s->meta);
    c->running = 1;
    c->joinable = pthread_create(&c->th, NULL, close_unit, c) == 0;
    if (!c->joinable)
        close_unit(c); /* no thread: closed here */
    return PREP_OK;
}

static int scan_unit(scan_state *s, const prep_input *in, const prep_unit *u, size_t unit_index,
                     char *err, size_t err_bytes) {
    const prep_opts *o = s->o;
    char shard_path[4200], meta_path[4200];
    prep_unit_path(shard_path, sizeof shard_path, o->output, unit_index, "shard");
    prep_unit_path(meta_path, sizeof meta_path, o->output, unit_index, "meta");
    memset(&s->meta, 0, sizeof s->meta);
    s->recs_cap = 0;
    s->strings_cap = 0;
    s->n_seqs = 0;

    prep_read_opts ro = unit_read_opts(o);
    prep_reader *rd = NULL;
    int st = unit_shard_create(s, u, unit_index, shard_path, err, err_bytes);
    if (st != PREP_OK)
        goto done;
    if ((st = unit_fingerprint(in, u, &s->meta, err, err_bytes)) != PREP_OK)
        goto done;
    int rst = prep_reader_open(in, u, &ro, &rd);
    while (rst == PREP_READ_OK) {
        prep_record rec;
        rst = prep_reader_next(rd, &rec);
        if (rst != PREP_READ_OK)
            break;
        prep_unit_rec *r;
        if ((st = add_record(s, &r)) != PREP_OK)
            goto done;
        r->offset = rec.offset;
        r->reject = (uint8_t)rec.reject;
        if (rec.member)
            r->member = intern(s, rec.member);
        char dbuf[256];
        const char *dom =
            rec.reject ? NULL : prep_recipe_domain(&o->recipe, in, &rec, dbuf, sizeof dbuf);
        if (!rec.reject && !dom)
            r->reject = PREP_REJECT_DOMAIN;
        if (r->reject) {
            if (o->strict) {
                snprintf(err, err_bytes, "%s%s%s: offset %llu: rejected (%s): %s (--strict)",
                         in->path, rec.member ? ":" : "", rec.member ? rec.member : "",
                         (ull)rec.offset, prep_reject_name((prep_reject)r->reject),
                         rec.detail ? rec.detail : "no domain");
                st = PREP_ERR_INPUT;
                goto done;
            }
            continue;
        }
        r->domain = intern(s, dom);
        XXH128_hash_t h = XXH3_128bits(rec.text, rec.n_text);
        r->hash[0] = h.low64;
        r->hash[1] = h.high64;
        if (r->domain == PREP_NO_SEQ) {
            st = PREP_ERR_NOMEM;
            goto done;
        }
        if (s->batch_bytes + rec.n_text > s->arena_cap) {
            size_t cap = 2 * s->arena_cap > s->batch_bytes + rec.n_text
                             ? 2 * s->arena_cap
                             : s->batch_bytes + rec.n_text;
            char *p = realloc(s->arena, cap);
            if (!p) {
                snprintf(err, err_bytes, "out of memory for a batch of %zu bytes", cap);
                st = PREP_ERR_NOMEM;
                goto done;
            }
            s->arena = p;
            s->arena_cap = cap;
        }
        memcpy(s->arena + s->batch_bytes, rec.text, rec.n_text);
        s->text_off[s->n_batch] = s->batch_bytes;
        s->n_text[s->n_batch] = rec.n_text;
        s->rec_of[s->n_batch] = s->meta.n_records - 1;
        s->n_batch++;
        s->batch_bytes += rec.n_text;
        if (s->n_batch == BATCH_DOCS || s->batch_bytes >= BATCH_BYTES)
            if ((st = flush_batch(s, err, err_bytes)) != PREP_OK)
                goto done;
    }
    if (rst == PREP_READ_ERR_CORRUPT) {
        /* counted as one truncated record; what was read before it stays */
        if (o->strict) {
            snprintf(err, err_bytes, "%s (--strict)", prep_reader_errmsg(rd));
            st = PREP_ERR_INPUT;
            goto done;
        }
        LOG_WARN("%s", prep_reader_errmsg(rd));
        s->meta.truncated = 1;
        prep_unit_rec *r;
        if ((st = add_record(s, &r)) != PREP_OK)
            goto done;
        r->reject = PREP_REJECT_TRUNCATED;
    } else if (rst != PREP_READ_DONE) {
        snprintf(err, err_bytes, "%s", prep_reader_errmsg(rd));
        st = rst == PREP_READ_ERR_NOMEM ? PREP_ERR_NOMEM : PREP_ERR_IO;
        goto done;
    }
    if ((st = flush_batch(s, err, err_bytes)) != PREP_OK)
        goto done;
    st = closer_start(s, meta_path, err, err_bytes);
done:
    s->n_batch = 0;
    s->batch_bytes = 0;
    prep_reader_free(rd);
    shard_writer_free(s->sw);
    s->sw = NULL;
    for (uint32_t i = 0; i < s->meta.n_strings; i++)
        free(s->meta.strings[i]);
    free(s->meta.strings);
    free(s->meta.recs);
    memset(&s->meta, 0, sizeof s->meta);
    return st;
}

/* ==== the stage ==============================================================================*/

int prep_scan(MPI_Comm comm, const prep_opts *o, const tokenizer *tok, const prep_input *in,
              const prep_unit *units, size_t n_units, char *err, size_t err_bytes) {
    int rank, stopped = 0;
    MPI_Comm_rank(comm, &rank);
    scan_state s;
    memset(&s, 0, sizeof s);
    s.o = o;
    s.tok = tok;
    s.text_off = calloc(BATCH_DOCS, sizeof *s.text_off);
    s.n_text = calloc(BATCH_DOCS, sizeof *s.n_text);
    s.rec_of = calloc(BATCH_DOCS, sizeof *s.rec_of);
    s.docs = calloc(BATCH_DOCS, sizeof *s.docs);
    int st = s.text_off && s.n_text && s.rec_of && s.docs ? PREP_OK : PREP_ERR_NOMEM;
    if (st == PREP_OK && tok_pool_create(tok, o->threads > 0 ? o->threads : 1, &s.pool) != TOK_OK)
        st = PREP_ERR_NOMEM;
    uint64_t total_bytes = 0;
    for (size_t u = 0; u < n_units; u++)
        total_bytes += units[u].end - units[u].begin;
    cluster_progress_opts po = cluster_progress_opts_default();
    po.label = "prep scan";
    po.n_counters = 3;
    po.names[0] = "docs";
    po.names[1] = "bytes";
    po.names[2] = "tokens";
    po.totals[1] = total_bytes;
    po.interval_seconds = o->progress_seconds;
    int pst = cluster_progress_create(comm, &po, &s.progress);
    if (pst != CLUSTER_OK && st == PREP_OK)
        st = PREP_ERR_MPI;
    cluster_queue *q = NULL;
    if (cluster_agree(comm, st) != PREP_OK) {
        snprintf(err, err_bytes, "scan setup failed");
        st = st ? st : PREP_ERR_REMOTE;
        goto done;
    }
    if ((st = scan_check_done(comm, o, in, units, n_units, err, err_bytes)) != PREP_OK)
        goto done;
    if (cluster_queue_create(comm, n_units, &q) != CLUSTER_OK) {
        st = PREP_ERR_MPI;
        snprintf(err, err_bytes, "work queue setup failed");
        goto done;
    }
    uint64_t item, n_done = 0, n_skipped = 0;
    while (st == PREP_OK && cluster_queue_next(q, &item) == CLUSTER_OK) {
        char meta_path[4200];
        prep_unit_path(meta_path, sizeof meta_path, o->output, item, "meta");
        prep_unit_meta m;
        char e2[256];
        if (prep_unit_meta_read(meta_path, &m, e2, sizeof e2) == PREP_OK) {
            prep_unit_meta_free(&m); /* done by an earlier run */
            n_skipped++;
            continue;
        }
        st = scan_unit(&s, &in[units[item].input], &units[item], item, err, err_bytes);
        n_done++;
        if (cluster_stop_signal())
            break;
    }
    char cerr[PREP_ERRMSG_BYTES];
    int cst = closer_wait(&s.closer, cerr, sizeof cerr); /* the last unit */
    if (cst != PREP_OK && st == PREP_OK) {
        snprintf(err, err_bytes, "%s", cerr);
        st = cst;
    }
    /* a stop anywhere stops every rank here (the others finished the queue meanwhile); a
     * failure elsewhere is reported over it */
    stopped = cluster_stop_agreed(comm);
    LOG_DEBUG("scan: %llu units tokenized, %llu already done", (ull)n_done, (ull)n_skipped);
    uint64_t totals[3];
    cluster_progress_finish(s.progress, totals);
done:
    cluster_queue_free(q);
    cluster_progress_free(s.progress);
    tok_pool_free(s.pool);
    free(s.arena);
    free(s.text_off);
    free(s.n_text);
    free(s.rec_of);
    free(s.docs);
    char msg[PREP_ERRMSG_BYTES];
    snprintf(msg, sizeof msg, "%s", err);
    st = cluster_agree_msg(comm, st, msg, err, err_bytes, NULL);
    if (st == PREP_OK && stopped) {
        snprintf(err, err_bytes,
                 "stopped by SIGTERM or SIGUSR1 during the scan; the finished work units are "
                 "kept in %s/work: run the same command again to resume",
                 o->output);
        st = PREP_ERR_STOPPED;
    }
    return st;
}
