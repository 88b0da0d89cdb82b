/* test_prep_read.c - the read stage of prep (prep_read.h): input scans, work units, and the
 * records of every format, good and bad.
 *
 * Every input is generated into a temporary folder: jsonl compressed with libzstd, with
 * libarchive's writers (gzip, xz, bzip2) and, when installed, the zstd and gzip programs;
 * archives written with libarchive (tar, tar.gz, tar.zst, tar.xz, tar.bz2, zip, 7z). The
 * expected records come from a naive reference split of the same bytes (expect_jsonl) or are
 * spelled out, never from the reader itself. Seeds are fixed. */
#include "check.h"
#include "prep_read.h"

#include <archive.h>
#include <archive_entry.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

typedef unsigned long long ull;

#define MiB (1024ull * 1024ull)

/* ---- helpers ------------------------------------------------------------------------------- */

static uint64_t rnd(uint64_t *s) { /* splitmix64 */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void path_in(char *out, size_t n, const char *dir, const char *name) {
    snprintf(out, n, "%s/%s", dir, name);
}

static int write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t put = n ? fwrite(data, 1, n, f) : 0;
    return fclose(f) == 0 && put == n ? 0 : -1;
}

static char *read_whole(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc(sz > 0 ? (size_t)sz : 1);
    if (buf && fread(buf, 1, (size_t)sz, f) != (size_t)sz) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *n = (size_t)sz;
    return buf;
}

static char *dup_n(const char *s, size_t n) {
    char *p = malloc(n + 1);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

static int have_program(const char *name) {
    char cmd[256];
    snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", name);
    return system(cmd) == 0;
}

/* Peak resident memory so far, in bytes. */
static uint64_t peak_rss(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (uint64_t)ru.ru_maxrss * 1024;
}

/* ---- records as the tests keep them -------------------------------------------------------- */

typedef struct {
    uint64_t offset;
    int reject;
    char *text; /* NULL for a reject */
    size_t n_text;
    char *domain;
    char *member;
} trec;

typedef struct {
    trec *v; /* (cap) */
    size_t n, cap;
    int status;   /* how reading ended: PREP_READ_DONE or an error */
    int shape_ok; /* ordinals count from 0 in each unit; text/detail set as the header says */
    char errmsg[1024];
} tresult;

static void res_init(tresult *r) {
    memset(r, 0, sizeof *r);
    r->status = PREP_READ_DONE;
    r->shape_ok = 1;
}

static void res_free(tresult *r) {
    for (size_t i = 0; i < r->n; i++) {
        free(r->v[i].text);
        free(r->v[i].domain);
        free(r->v[i].member);
    }
    free(r->v);
    res_init(r);
}

static trec *res_add(tresult *r) {
    if (r->n == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 64;
        r->v = realloc(r->v, r->cap * sizeof *r->v);
        if (!r->v) {
            fprintf(stderr, "out of memory\n");
            exit(1);
        }
    }
    trec *t = &r->v[r->n++];
    memset(t, 0, sizeof *t);
    return t;
}

static size_t res_count(const tresult *r, int reject) {
    size_t n = 0;
    for (size_t i = 0; i < r->n; i++)
        n += r->v[i].reject == reject;
    return n;
}

/* Reads unit u to its end, appending its records to res. */
static void read_unit(const prep_input *in, const prep_unit *u, const prep_read_opts *o,
                      tresult *res) {
    prep_reader *rd = NULL;
    int st = prep_reader_open(in, u, o, &rd);
    uint64_t k = 0;
    while (st == PREP_READ_OK) {
        prep_record rec;
        st = prep_reader_next(rd, &rec);
        if (st != PREP_READ_OK)
            break;
        if (rec.ordinal != k++)
            res->shape_ok = 0;
        if (rec.reject ? rec.text || !rec.detail
                       : !rec.text || rec.text[rec.n_text] != '\0' || rec.detail)
            res->shape_ok = 0;
        trec *t = res_add(res);
        t->offset = rec.offset;
        t->reject = rec.reject;
        if (rec.text) {
            t->text = dup_n(rec.text, rec.n_text);
            t->n_text = rec.n_text;
        }
        if (rec.domain)
            t->domain = dup_n(rec.domain, rec.n_domain);
        if (rec.member)
            t->member = dup_n(rec.member, strlen(rec.member));
    }
    if (st != PREP_READ_OK && prep_reader_next(rd, &(prep_record){0}) != st)
        res->shape_ok = 0; /* DONE and errors are sticky */
    res->status = st;
    snprintf(res->errmsg, sizeof res->errmsg, "%s", st < 0 ? prep_reader_errmsg(rd) : "");
    prep_reader_free(rd);
}

/* The one input a path names (classified by prep_inputs_scan). */
static int input_of(const char *path, prep_input *in) {
    char *p[1] = {(char *)path};
    prep_input *v;
    size_t n;
    char err[512];
    if (prep_inputs_scan(p, 1, &v, &n, err, sizeof err) != PREP_READ_OK || n != 1) {
        fprintf(stderr, "input_of(%s): %s\n", path, err);
        return -1;
    }
    *in = v[0];
    free(v); /* in->path now belongs to the caller */
    return 0;
}

/* Reads a whole file (one unit) into res. */
static void read_path(const char *path, const prep_read_opts *o, tresult *res) {
    prep_input in;
    if (input_of(path, &in) != 0) {
        res->status = -100;
        return;
    }
    prep_unit u = {0, 0, in.bytes};
    read_unit(&in, &u, o, res);
    free(in.path);
}

/* The reference reading of jsonl bytes, for the simple lines the tests write: split at '\n';
 * longer than max: TOO_LONG; only space/tab/CR: no record; a raw NUL: JSON; {"text":"..."}
 * (no escapes, optional trailing CR): the text (EMPTY if none); anything else: JSON. */
static void expect_jsonl(const char *d, size_t n, uint64_t max, const char *member, tresult *exp) {
    static const char open[] = "{\"text\":\"";
    size_t s = 0;
    while (s < n) {
        const char *nl = memchr(d + s, '\n', n - s);
        size_t e = nl ? (size_t)(nl - d) : n, len = e - s;
        const char *l = d + s;
        int blank = 1;
        for (size_t i = 0; i < len; i++)
            blank &= l[i] == ' ' || l[i] == '\t' || l[i] == '\r';
        if (len > max || !blank) {
            trec *t = res_add(exp);
            t->offset = s;
            t->member = member ? dup_n(member, strlen(member)) : NULL;
            size_t m = len;
            while (m > 0 && l[m - 1] == '\r')
                m--;
            if (len > max) {
                t->reject = PREP_REJECT_TOO_LONG;
            } else if (memchr(l, 0, len)) {
                t->reject = PREP_REJECT_JSON; /* a raw NUL is never JSON */
            } else if (m >= sizeof open + 1 && memcmp(l, open, sizeof open - 1) == 0 &&
                       memcmp(l + m - 2, "\"}", 2) == 0 &&
                       !memchr(l + sizeof open - 1, '"', m - 2 - (sizeof open - 1)) &&
                       !memchr(l + sizeof open - 1, '\\', m - 2 - (sizeof open - 1))) {
                size_t k = m - 2 - (sizeof open - 1);
                if (k == 0) {
                    t->reject = PREP_REJECT_EMPTY;
                } else {
                    t->text = dup_n(l + sizeof open - 1, k);
                    t->n_text = k;
                }
            } else {
                t->reject = PREP_REJECT_JSON;
            }
        }
        s = nl ? e + 1 : n;
    }
}

static void expect_doc(tresult *exp, const char *member, int reject, const char *text) {
    trec *t = res_add(exp);
    t->member = member ? dup_n(member, strlen(member)) : NULL;
    t->reject = reject;
    if (text) {
        t->text = dup_n(text, strlen(text));
        t->n_text = strlen(text);
    }
}

static int same_str(const char *a, const char *b) {
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* 1 if got holds the records of exp (all of them, or with prefix_only its first got->n). */
static int same_records(const tresult *got, const tresult *exp, int prefix_only, const char *what) {
    if (prefix_only ? got->n > exp->n : got->n != exp->n) {
        fprintf(stderr, "%s: %zu records, want %s%zu\n", what, got->n, prefix_only ? "<= " : "",
                exp->n);
        return 0;
    }
    for (size_t i = 0; i < got->n; i++) {
        const trec *a = &got->v[i], *b = &exp->v[i];
        if (a->offset != b->offset || a->reject != b->reject || a->n_text != b->n_text ||
            (a->text && memcmp(a->text, b->text, a->n_text) != 0) || !!a->text != !!b->text ||
            !same_str(a->member, b->member)) {
            fprintf(stderr,
                    "%s: record %zu: offset %llu reject %s member %s text '%.40s'; want offset "
                    "%llu reject %s member %s text '%.40s'\n",
                    what, i, (ull)a->offset, prep_reject_name((prep_reject)a->reject),
                    a->member ? a->member : "-", a->text ? a->text : "-", (ull)b->offset,
                    prep_reject_name((prep_reject)b->reject), b->member ? b->member : "-",
                    b->text ? b->text : "-");
            return 0;
        }
    }
    return 1;
}

/* ---- writers: compressed streams and archives ---------------------------------------------- */

/* Compresses data with a libarchive filter ("gzip", "xz", "bzip2", "zstd") into a malloc'd
 * buffer. */
static char *compress_la(const char *filter, const char *data, size_t n, size_t *n_out) {
    size_t cap = n + n / 2 + 65536, used = 0;
    char *out = malloc(cap);
    struct archive *a = archive_write_new();
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, "data");
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_size(e, (la_int64_t)n);
    int ok = out && archive_write_set_format_raw(a) == ARCHIVE_OK &&
             archive_write_add_filter_by_name(a, filter) == ARCHIVE_OK &&
             archive_write_set_bytes_in_last_block(a, 1) == ARCHIVE_OK &&
             archive_write_open_memory(a, out, cap, &used) == ARCHIVE_OK &&
             archive_write_header(a, e) == ARCHIVE_OK &&
             (n == 0 || archive_write_data(a, data, n) == (la_ssize_t)n) &&
             archive_write_close(a) == ARCHIVE_OK;
    if (!ok)
        fprintf(stderr, "compress_la(%s): %s\n", filter, archive_error_string(a));
    archive_entry_free(e);
    archive_write_free(a);
    if (!ok) {
        free(out);
        return NULL;
    }
    *n_out = used;
    return out;
}

/* One zstd frame with a checksum, as the zstd program writes. */
static char *compress_zstd(const char *data, size_t n, size_t *n_out) {
    size_t cap = ZSTD_compressBound(n);
    char *out = malloc(cap);
    ZSTD_CCtx *cc = ZSTD_createCCtx();
    size_t k = 0;
    if (out && cc) {
        ZSTD_CCtx_setParameter(cc, ZSTD_c_checksumFlag, 1);
        k = ZSTD_compress2(cc, out, cap, data, n);
    }
    ZSTD_freeCCtx(cc);
    if (!out || !cc || ZSTD_isError(k)) {
        free(out);
        return NULL;
    }
    *n_out = k;
    return out;
}

/* Writes data compressed by filter ("zstd" through libzstd, others through libarchive). */
static int write_compressed(const char *path, const char *filter, const char *data, size_t n) {
    size_t k = 0;
    char *c =
        strcmp(filter, "zstd") == 0 ? compress_zstd(data, n, &k) : compress_la(filter, data, n, &k);
    int rc = c ? write_file(path, c, k) : -1;
    free(c);
    return rc;
}

typedef struct {
    const char *name;
    const char *data; /* NULL: data_n bytes of 'x' */
    size_t n;
    int type; /* 0 regular file, 1 directory, 2 symlink to data, 3 hard link to data */
} tmember;

/* Writes an archive: format "tar", "zip" or "7z", filter NULL or a libarchive filter name. */
static int write_archive(const char *path, const char *format, const char *filter, const tmember *m,
                         int n_members) {
    struct archive *a = archive_write_new();
    int ok = strcmp(format, "zip") == 0  ? archive_write_set_format_zip(a) == ARCHIVE_OK
             : strcmp(format, "7z") == 0 ? archive_write_set_format_7zip(a) == ARCHIVE_OK
                                         : archive_write_set_format_pax_restricted(a) == ARCHIVE_OK;
    if (ok && filter)
        ok = archive_write_add_filter_by_name(a, filter) == ARCHIVE_OK;
    ok = ok && archive_write_open_filename(a, path) == ARCHIVE_OK;
    for (int i = 0; ok && i < n_members; i++) {
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, m[i].name);
        archive_entry_set_perm(e, 0644);
        archive_entry_set_mtime(e, 1700000000, 0);
        if (m[i].type == 1) {
            archive_entry_set_filetype(e, AE_IFDIR);
            archive_entry_set_perm(e, 0755);
        } else if (m[i].type == 2) {
            archive_entry_set_filetype(e, AE_IFLNK);
            archive_entry_set_symlink(e, m[i].data);
        } else if (m[i].type == 3) {
            archive_entry_set_filetype(e, AE_IFREG);
            archive_entry_set_hardlink(e, m[i].data);
        } else {
            archive_entry_set_filetype(e, AE_IFREG);
            archive_entry_set_size(e, (la_int64_t)m[i].n);
        }
        ok = archive_write_header(a, e) == ARCHIVE_OK;
        if (ok && m[i].type == 0 && m[i].n > 0)
            ok = archive_write_data(a, m[i].data, m[i].n) == (la_ssize_t)m[i].n;
        archive_entry_free(e);
    }
    ok = ok && archive_write_close(a) == ARCHIVE_OK;
    if (!ok)
        fprintf(stderr, "write_archive(%s): %s\n", path, archive_error_string(a));
    archive_write_free(a);
    return ok ? 0 : -1;
}

/* ---- generated jsonl ----------------------------------------------------------------------- */

typedef struct {
    char *d; /* (cap) */
    size_t n, cap;
} tbuf;

static void buf_put(tbuf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        b->cap = 2 * (b->n + n + 1);
        b->d = realloc(b->d, b->cap);
        if (!b->d) {
            fprintf(stderr, "out of memory\n");
            exit(1);
        }
    }
    memcpy(b->d + b->n, s, n);
    b->n += n;
    b->d[b->n] = '\0';
}

static void buf_str(tbuf *b, const char *s) {
    buf_put(b, s, strlen(s));
}

/* Random simple jsonl: documents of random length, blank lines, junk, CRLF endings. */
static void gen_jsonl(tbuf *b, uint64_t seed, int n_lines, int max_pad, int trailing_newline) {
    uint64_t s = seed;
    char line[4096];
    for (int i = 0; i < n_lines; i++) {
        uint64_t kind = rnd(&s) % 10;
        if (kind < 6) {
            int pad = (int)(rnd(&s) % (uint64_t)(max_pad + 1));
            int k = snprintf(line, sizeof line, "{\"text\":\"d%d-", i);
            for (int j = 0; j < pad && k < (int)sizeof line - 8; j++)
                line[k++] = (char)('a' + (i + j) % 26);
            k += snprintf(line + k, sizeof line - (size_t)k, "\"}%s", kind == 5 ? "\r" : "");
            buf_put(b, line, (size_t)k);
        } else if (kind == 6) {
            buf_str(b, (const char *[]){"", " ", "\t", "  \r"}[rnd(&s) % 4]);
        } else if (kind == 7) {
            snprintf(line, sizeof line, "garbage %d", i);
            buf_str(b, line);
        } else if (kind == 8) {
            buf_str(b, "{\"text\":\"open");
        } else {
            buf_str(b, "{\"text\":\"\"}");
        }
        if (i < n_lines - 1 || trailing_newline)
            buf_str(b, "\n");
    }
}

/* Documents of random letters (compress to about 60%). */
static void gen_random_jsonl(tbuf *b, uint64_t seed, int n_lines) {
    uint64_t s = seed;
    char line[300];
    for (int i = 0; i < n_lines; i++) {
        int k = snprintf(line, sizeof line, "{\"text\":\"");
        for (int j = 0; j < 200; j++)
            line[k++] = (char)('a' + rnd(&s) % 26);
        memcpy(line + k, "\"}\n", 3);
        buf_put(b, line, (size_t)k + 3);
    }
}

/* ---- tests: units and the byte-range property ---------------------------------------------- */

static void test_units_make(void) {
    prep_input in[3] = {{"a.jsonl", 10, PREP_FMT_JSONL, NULL, 0},
                        {"b.txt", 100, PREP_FMT_TEXT, NULL, 0},
                        {"c.jsonl", 0, PREP_FMT_JSONL, NULL, 0}};
    prep_unit *u;
    size_t n;
    CHECK_EQ_INT(prep_units_make(in, 3, 3, &u, &n), PREP_READ_OK);
    CHECK_EQ_INT(n, 6);
    const uint64_t want[6][3] = {{0, 0, 3},  {0, 3, 6},   {0, 6, 9},
                                 {0, 9, 10}, {1, 0, 100}, {2, 0, 0}};
    for (size_t i = 0; i < n && i < 6; i++) {
        CHECK_EQ_U64(u[i].input, want[i][0]);
        CHECK_EQ_U64(u[i].begin, want[i][1]);
        CHECK_EQ_U64(u[i].end, want[i][2]);
    }
    free(u);
    CHECK_EQ_INT(prep_units_make(in, 3, 10, &u, &n), PREP_READ_OK);
    CHECK_EQ_INT(n, 3); /* a file of exactly unit_bytes is not cut */
    free(u);
    CHECK_EQ_INT(prep_units_make(in, 0, 10, &u, &n), PREP_READ_OK);
    CHECK(u != NULL && n == 0);
    free(u);
    CHECK_EQ_INT(prep_units_make(in, 3, 0, &u, &n), PREP_READ_ERR_ARG);
    CHECK(u == NULL);
}

/* Reads a file cut at every unit size with several read sizes: the records of all units, in
 * order, must be those of the reference split, each line exactly once. */
static void check_ranges(const char *path, const tbuf *b, uint64_t max_doc_bytes, int *n_bad) {
    tresult exp;
    res_init(&exp);
    expect_jsonl(b->d, b->n, max_doc_bytes, NULL, &exp);
    prep_input in;
    if (input_of(path, &in) != 0) {
        (*n_bad)++;
        return;
    }
    static const uint64_t blocks[] = {1, 2, 5, 16, 1 << 20};
    for (size_t bi = 0; bi < sizeof blocks / sizeof *blocks; bi++) {
        if (blocks[bi] < 4 && b->n > 520)
            continue; /* a read per byte: enough on the smaller files */
        prep_read_opts o = prep_read_opts_default();
        o.max_doc_bytes = max_doc_bytes;
        o.block_bytes = blocks[bi];
        for (uint64_t ub = 1; ub <= b->n + 2; ub++) {
            prep_unit *u;
            size_t n_units;
            if (prep_units_make(&in, 1, ub, &u, &n_units) != PREP_READ_OK) {
                (*n_bad)++;
                continue;
            }
            tresult got;
            res_init(&got);
            for (size_t i = 0; i < n_units && got.status == PREP_READ_DONE; i++)
                read_unit(&in, &u[i], &o, &got);
            char what[4400];
            snprintf(what, sizeof what, "%s unit_bytes %llu block %llu", path, (ull)ub,
                     (ull)blocks[bi]);
            if (got.status != PREP_READ_DONE || !got.shape_ok ||
                !same_records(&got, &exp, 0, what)) {
                if (*n_bad < 5)
                    fprintf(stderr, "%s: status %d %s\n", what, got.status, got.errmsg);
                (*n_bad)++;
            }
            res_free(&got);
            free(u);
        }
    }
    free(in.path);
    res_free(&exp);
}

static void test_ranges(const char *dir) {
    int n_bad = 0, n_files = 0;
    char path[4200];
    for (int f = 0; f < 12; f++) {
        tbuf b = {0};
        uint64_t max = 48;
        switch (f) {
        case 0: /* empty file */
            buf_str(&b, "");
            break;
        case 1: /* only blank lines */
            buf_str(&b, "\n\n  \n\t\n");
            break;
        case 2: /* one line spanning every range, no newline */
            gen_jsonl(&b, 7, 1, 40, 0);
            break;
        case 3: /* one line longer than max_doc_bytes, then a short one */
            gen_jsonl(&b, 8, 1, 200, 1);
            buf_str(&b, "{\"text\":\"after\"}");
            break;
        case 4: /* newlines only at the ends */
            buf_str(&b, "\n{\"text\":\"mid\"}\n");
            break;
        default:
            gen_jsonl(&b, 100 + (uint64_t)f, 8 + f * 2, f % 2 ? 70 : 20, f % 3 != 0);
            max = f % 4 == 0 ? 1000 : 48;
            break;
        }
        char name[64];
        snprintf(name, sizeof name, "ranges-%02d.jsonl", f);
        path_in(path, sizeof path, dir, name);
        CHECK_EQ_INT(write_file(path, b.d, b.n), 0);
        check_ranges(path, &b, max, &n_bad);
        n_files++;
        free(b.d);
    }
    CHECK_EQ_INT(n_bad, 0);
    CHECK_EQ_INT(n_files, 12);
}

/* ---- tests: formats ------------------------------------------------------------------------ */

/* Writes data to path as how says: "plain"; "zstd" (libzstd); "zstd2" (two zstd frames);
 * "la:FILTER" (libarchive's writer); "gzip2" (two gzip members); "cli:zstd", "cli:gzip" (the
 * programs). Returns 0, 1 if the program is not installed, -1 on failure. */
static int make_file(const char *path, const char *how, const char *data, size_t n) {
    if (strcmp(how, "plain") == 0)
        return write_file(path, data, n);
    if (strcmp(how, "zstd") == 0)
        return write_compressed(path, "zstd", data, n);
    if (strncmp(how, "la:", 3) == 0)
        return write_compressed(path, how + 3, data, n);
    if (strcmp(how, "zstd2") == 0 || strcmp(how, "gzip2") == 0) {
        size_t h = n / 2, k1 = 0, k2 = 0;
        int z = how[0] == 'z';
        char *c1 = z ? compress_zstd(data, h, &k1) : compress_la("gzip", data, h, &k1);
        char *c2 =
            z ? compress_zstd(data + h, n - h, &k2) : compress_la("gzip", data + h, n - h, &k2);
        char *both = c1 && c2 ? malloc(k1 + k2) : NULL;
        int rc = -1;
        if (both) {
            memcpy(both, c1, k1);
            memcpy(both + k1, c2, k2);
            rc = write_file(path, both, k1 + k2);
        }
        free(c1);
        free(c2);
        free(both);
        return rc;
    }
    const char *prog = how + 4; /* cli:PROGRAM */
    if (!have_program(prog))
        return 1;
    char src[4300], cmd[9000];
    snprintf(src, sizeof src, "%s.src", path);
    if (write_file(src, data, n) != 0)
        return -1;
    if (strcmp(prog, "zstd") == 0)
        snprintf(cmd, sizeof cmd, "zstd -q -f -o '%s' '%s'", path, src);
    else
        snprintf(cmd, sizeof cmd, "%s -c '%s' > '%s'", prog, src, path);
    int rc = system(cmd) == 0 ? 0 : -1;
    unlink(src);
    return rc;
}

/* The same jsonl, plain and compressed every way: the same records at the same offsets. */
static void test_compressed(const char *dir) {
    tbuf b = {0};
    gen_jsonl(&b, 2024, 8000, 300, 1); /* about 1 MB */
    tresult exp;
    res_init(&exp);
    expect_jsonl(b.d, b.n, 64 * MiB, NULL, &exp);
    CHECK(exp.n > 2000);
    static const char *const files[][2] = {
        {"fmt.jsonl", "plain"},          {"fmt.jsonl.zst", "zstd"},
        {"fmt-la.jsonl.zst", "la:zstd"}, {"fmt-2.jsonl.zst", "zstd2"},
        {"fmt.jsonl.gz", "la:gzip"},     {"fmt-2.jsonl.gz", "gzip2"},
        {"fmt.jsonl.xz", "la:xz"},       {"fmt.jsonl.bz2", "la:bzip2"},
        {"fmt.JSON.GZ", "la:gzip"},      {"fmt-cli.jsonl.zst", "cli:zstd"},
        {"fmt-cli.jsonl.gz", "cli:gzip"}};
    int n_read = 0;
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char path[4200];
        path_in(path, sizeof path, dir, files[i][0]);
        int rc = make_file(path, files[i][1], b.d, b.n);
        CHECK(rc >= 0);
        if (rc != 0) {
            if (rc == 1)
                fprintf(stderr, "note: %s not installed, %s not tested\n", files[i][1] + 4,
                        files[i][0]);
            continue;
        }
        for (int bl = 0; bl < 2; bl++) {
            prep_read_opts o = prep_read_opts_default();
            o.block_bytes = bl ? 4096 : 0;
            tresult got;
            res_init(&got);
            read_path(path, &o, &got);
            CHECK_EQ_INT(got.status, PREP_READ_DONE);
            if (got.status != PREP_READ_DONE)
                fprintf(stderr, "%s: %s\n", path, got.errmsg);
            CHECK(got.shape_ok);
            CHECK(same_records(&got, &exp, 0, path));
            res_free(&got);
        }
        n_read++;
    }
    CHECK(n_read >= 9);

    /* truncated in the middle: CORRUPT, after the records before the damage */
    static const char *const cut[] = {"fmt.jsonl.zst", "fmt.jsonl.gz", "fmt.jsonl.xz",
                                      "fmt.jsonl.bz2", "fmt-2.jsonl.zst"};
    for (size_t i = 0; i < sizeof cut / sizeof *cut; i++) {
        char path[4200], tpath[4300];
        path_in(path, sizeof path, dir, cut[i]);
        snprintf(tpath, sizeof tpath, "%s/trunc-%s", dir, cut[i]);
        size_t n;
        char *c = read_whole(path, &n);
        CHECK(c != NULL && n > 100);
        CHECK_EQ_INT(write_file(tpath, c, n * 6 / 10), 0);
        free(c);
        prep_read_opts o = prep_read_opts_default();
        tresult got;
        res_init(&got);
        read_path(tpath, &o, &got);
        CHECK_EQ_INT(got.status, PREP_READ_ERR_CORRUPT);
        /* the records before the damage come first, but for the last partial output block of
         * the decoder (bzip2 works in blocks of 900 kB: this whole stream is one) */
        CHECK(got.n < exp.n && (got.n > exp.n / 3 || strstr(cut[i], ".bz2")));
        CHECK(same_records(&got, &exp, 1, tpath));
        CHECK(strstr(got.errmsg, tpath) != NULL && strstr(got.errmsg, "offset") != NULL);
        res_free(&got);
    }

    /* a bit flipped inside a zstd frame: decoding or the frame checksum fails (libarchive does
     * not check gzip's CRC, so no such test for gzip) */
    {
        char path[4200], tpath[4300];
        path_in(path, sizeof path, dir, "fmt.jsonl.zst");
        snprintf(tpath, sizeof tpath, "%s/flip-fmt.jsonl.zst", dir);
        size_t n;
        char *c = read_whole(path, &n);
        CHECK(c != NULL && n > 100);
        c[n / 2] ^= 0x10;
        CHECK_EQ_INT(write_file(tpath, c, n), 0);
        free(c);
        prep_read_opts o = prep_read_opts_default();
        tresult got;
        res_init(&got);
        read_path(tpath, &o, &got);
        CHECK_EQ_INT(got.status, PREP_READ_ERR_CORRUPT);
        CHECK(strstr(got.errmsg, tpath) != NULL);
        res_free(&got);
    }

    /* named compressed, but plain inside: CORRUPT, not read as jsonl */
    {
        char path[4200];
        path_in(path, sizeof path, dir, "plain-inside.jsonl.gz");
        CHECK_EQ_INT(write_file(path, b.d, b.n), 0);
        prep_read_opts o = prep_read_opts_default();
        tresult got;
        res_init(&got);
        read_path(path, &o, &got);
        CHECK_EQ_INT(got.status, PREP_READ_ERR_CORRUPT);
        CHECK_EQ_INT(got.n, 0);
        CHECK(strstr(got.errmsg, "not a compressed stream") != NULL);
        res_free(&got);
    }

    /* 0 bytes named compressed: truncated (zstd -t, gzip -t, xz -t and bzip2 -t reject it), not
     * an empty file; likewise a compressed tar. A plain .tar or .jsonl of 0 bytes is empty. */
    static const char *const empty[] = {"e.jsonl.zst", "e.jsonl.gz", "e.jsonl.xz", "e.jsonl.bz2",
                                        "e.tar.gz",    "e.tgz",      "e.tar.zst",  "e.tzst",
                                        "e.tar.xz",    "e.txz",      "e.tar.bz2",  "e.tbz2",
                                        "e.tbz",       "e.jsonl",    "e.tar"};
    for (size_t i = 0; i < sizeof empty / sizeof *empty; i++) {
        char path[4200];
        path_in(path, sizeof path, dir, empty[i]);
        CHECK_EQ_INT(write_file(path, "", 0), 0);
        int plain = strstr(empty[i], ".jsonl") == empty[i] + 1 && !strchr(empty[i] + 3, '.');
        plain |= strcmp(empty[i], "e.tar") == 0;
        prep_read_opts o = prep_read_opts_default();
        tresult got;
        res_init(&got);
        read_path(path, &o, &got);
        CHECK_EQ_INT(got.status, plain ? PREP_READ_DONE : PREP_READ_ERR_CORRUPT);
        if (got.status != (plain ? PREP_READ_DONE : PREP_READ_ERR_CORRUPT))
            fprintf(stderr, "%s: status %d\n", empty[i], got.status);
        CHECK_EQ_INT(got.n, 0);
        CHECK(plain || strstr(got.errmsg, path) != NULL);
        res_free(&got);
    }
    res_free(&exp);
    free(b.d);
}

/* Archives of every kind holding jsonl members (plain and compressed) and text members. */
static void test_archives(const char *dir) {
    tbuf a = {0}, c = {0}, d = {0}, h = {0};
    gen_jsonl(&a, 11, 20000, 120, 0); /* 1.6 MB: a truncation keeps some decoded blocks */
    gen_jsonl(&c, 12, 30, 30, 1);
    gen_jsonl(&d, 13, 20, 30, 1);
    gen_jsonl(&h, 14, 10, 30, 1);
    size_t nc = 0, nd = 0, nh = 0, ne = 0;
    char *cz = compress_zstd(c.d, c.n, &nc), *dz = compress_la("gzip", d.d, d.n, &nd);
    char *hz = compress_la("xz", h.d, h.n, &nh), *ez = compress_zstd("", 0, &ne);
    CHECK(cz && dz && hz && ez);
    static char big[10000];
    memset(big, 'x', sizeof big);
    const uint64_t max = 4096;
    const tmember m[] = {
        {"dir", NULL, 0, 1},
        {"dir/a.jsonl", a.d, a.n, 0},
        {"dir/b.txt", "hello, text\n", 12, 0},
        {"dir/c.jsonl.zst", cz, nc, 0},
        {"d.jsonl.gz", dz, nd, 0},
        {"e/empty.txt", "", 0, 0},
        {"f.bin", "ab\0cd", 5, 0},
        {"g.json", "{\"text\":\"g\"}", 12, 0},
        {"link", "dir/b.txt", 0, 2},
        {"h.JSONL.XZ", hz, nh, 0},
        {"big.txt", big, sizeof big, 0},
        {"empty.jsonl.zst", ez, ne, 0},
        {"z.txt", "last", 4, 0},
    };
    const int n_m = (int)(sizeof m / sizeof *m);
    /* 7z stores empty files after the others: there, the archive has no e/empty.txt */
    tmember m7[sizeof m / sizeof *m];
    int n_m7 = 0;
    for (int i = 0; i < n_m; i++)
        if (strcmp(m[i].name, "e/empty.txt") != 0)
            m7[n_m7++] = m[i];
    tresult exp, exp7;
    for (int with_empty = 0; with_empty < 2; with_empty++) {
        tresult *e = with_empty ? &exp : &exp7;
        res_init(e);
        expect_jsonl(a.d, a.n, max, "dir/a.jsonl", e);
        expect_doc(e, "dir/b.txt", 0, "hello, text\n");
        expect_jsonl(c.d, c.n, max, "dir/c.jsonl.zst", e);
        expect_jsonl(d.d, d.n, max, "d.jsonl.gz", e);
        if (with_empty)
            expect_doc(e, "e/empty.txt", PREP_REJECT_EMPTY, NULL);
        expect_doc(e, "f.bin", PREP_REJECT_BINARY, NULL);
        expect_jsonl("{\"text\":\"g\"}", 12, max, "g.json", e);
        expect_jsonl(h.d, h.n, max, "h.JSONL.XZ", e);
        expect_doc(e, "big.txt", PREP_REJECT_TOO_LONG, NULL);
        expect_doc(e, "z.txt", 0, "last");
    }

    static const char *const kinds[][3] = {{"t.tar", "tar", NULL},   {"t.tar.gz", "tar", "gzip"},
                                           {"t.tgz", "tar", "gzip"}, {"t.tar.zst", "tar", "zstd"},
                                           {"t.txz", "tar", "xz"},   {"t.tar.bz2", "tar", "bzip2"},
                                           {"t.zip", "zip", NULL},   {"t.7z", "7z", NULL}};
    for (size_t k = 0; k < sizeof kinds / sizeof *kinds; k++) {
        char path[4200];
        path_in(path, sizeof path, dir, kinds[k][0]);
        const int is7 = strcmp(kinds[k][1], "7z") == 0;
        CHECK_EQ_INT(write_archive(path, kinds[k][1], kinds[k][2], is7 ? m7 : m, is7 ? n_m7 : n_m),
                     0);
        prep_read_opts o = prep_read_opts_default();
        o.max_doc_bytes = max;
        o.block_bytes = k % 2 ? 1000 : 0;
        tresult got;
        res_init(&got);
        read_path(path, &o, &got);
        CHECK_EQ_INT(got.status, PREP_READ_DONE);
        if (got.status != PREP_READ_DONE)
            fprintf(stderr, "%s: %s\n", path, got.errmsg);
        CHECK(got.shape_ok);
        CHECK(same_records(&got, is7 ? &exp7 : &exp, 0, path));
        res_free(&got);
    }

    /* truncated archives: CORRUPT naming the file, after the records before the damage */
    static const char *const cut[] = {"t.tar", "t.tar.gz", "t.tar.zst"};
    for (size_t i = 0; i < sizeof cut / sizeof *cut; i++) {
        char path[4200], tpath[4300];
        path_in(path, sizeof path, dir, cut[i]);
        snprintf(tpath, sizeof tpath, "%s/trunc-%s", dir, cut[i]);
        size_t n;
        char *bytes = read_whole(path, &n);
        CHECK(bytes != NULL);
        CHECK_EQ_INT(write_file(tpath, bytes, bytes ? n / 2 : 0), 0);
        free(bytes);
        prep_read_opts o = prep_read_opts_default();
        o.max_doc_bytes = max;
        tresult got;
        res_init(&got);
        read_path(tpath, &o, &got);
        CHECK_EQ_INT(got.status, PREP_READ_ERR_CORRUPT);
        CHECK(got.n > exp.n / 4 && got.n < exp.n);
        CHECK(same_records(&got, &exp, 1, tpath));
        CHECK(strstr(got.errmsg, tpath) != NULL && strstr(got.errmsg, "member") != NULL &&
              strstr(got.errmsg, "offset") != NULL);
        res_free(&got);
    }

    /* a truncated compressed member: CORRUPT naming the member and its decompressed offset */
    {
        tmember m2[3] = {m[1], m[3], m[12]};
        m2[1].n = nc / 2;
        char path[4200];
        path_in(path, sizeof path, dir, "member-cut.tar");
        CHECK_EQ_INT(write_archive(path, "tar", NULL, m2, 3), 0);
        tresult e2, got;
        res_init(&e2);
        res_init(&got);
        expect_jsonl(a.d, a.n, max, "dir/a.jsonl", &e2);
        size_t n_a = e2.n;
        expect_jsonl(c.d, c.n, max, "dir/c.jsonl.zst", &e2);
        prep_read_opts o = prep_read_opts_default();
        o.max_doc_bytes = max;
        read_path(path, &o, &got);
        CHECK_EQ_INT(got.status, PREP_READ_ERR_CORRUPT);
        CHECK(got.n >= n_a && got.n < e2.n);
        CHECK(same_records(&got, &e2, 1, path));
        CHECK(strstr(got.errmsg, "member dir/c.jsonl.zst") != NULL &&
              strstr(got.errmsg, "decompressed offset") != NULL);
        res_free(&e2);
        res_free(&got);
    }

    /* an archive truncated inside a compressed member: the outer error, through the inner
     * reader, names the member */
    {
        tbuf big_c = {0};
        gen_random_jsonl(&big_c, 5, 5000);
        size_t nbz = 0;
        char *bz = compress_zstd(big_c.d, big_c.n, &nbz);
        CHECK(bz != NULL);
        tmember m4[3] = {{"small.jsonl", "{\"text\":\"s\"}\n", 13, 0},
                         {"dir/c.jsonl.zst", bz, nbz, 0},
                         {"z.txt", "last", 4, 0}};
        char path[4200], tpath[4300];
        path_in(path, sizeof path, dir, "inner.tar.gz");
        snprintf(tpath, sizeof tpath, "%s/trunc-inner.tar.gz", dir);
        CHECK_EQ_INT(write_archive(path, "tar", "gzip", m4, 3), 0);
        size_t n;
        char *bytes = read_whole(path, &n);
        CHECK(bytes != NULL && n > nbz / 2);
        CHECK_EQ_INT(write_file(tpath, bytes, bytes ? n * 7 / 10 : 0), 0);
        free(bytes);
        tresult e4, got;
        res_init(&e4);
        expect_jsonl("{\"text\":\"s\"}\n", 13, max, "small.jsonl", &e4);
        expect_jsonl(big_c.d, big_c.n, max, "dir/c.jsonl.zst", &e4);
        prep_read_opts o = prep_read_opts_default();
        o.max_doc_bytes = max;
        for (int cut_it = 0; cut_it < 2; cut_it++) {
            res_init(&got);
            read_path(cut_it ? tpath : path, &o, &got);
            if (!cut_it) {
                expect_doc(&e4, "z.txt", 0, "last");
                CHECK_EQ_INT(got.status, PREP_READ_DONE);
                CHECK(same_records(&got, &e4, 0, path));
                e4.n--;
                free(e4.v[e4.n].text);
                free(e4.v[e4.n].member);
            } else {
                CHECK_EQ_INT(got.status, PREP_READ_ERR_CORRUPT);
                CHECK(got.n > e4.n / 3 && got.n < e4.n);
                CHECK(same_records(&got, &e4, 1, tpath));
                CHECK(strstr(got.errmsg, "member dir/c.jsonl.zst") != NULL &&
                      strstr(got.errmsg, "gzip") != NULL);
                fprintf(stderr, "truncated inside a member: %s\n", got.errmsg);
            }
            res_free(&got);
        }
        res_free(&e4);
        free(big_c.d);
        free(bz);
    }

    /* a hard link repeats a member: skipped */
    {
        tmember m5[3] = {{"b.txt", "bee", 3, 0}, {"hard", "b.txt", 0, 3}, {"z.txt", "zed", 3, 0}};
        char path[4200];
        path_in(path, sizeof path, dir, "hardlink.tar");
        CHECK_EQ_INT(write_archive(path, "tar", NULL, m5, 3), 0);
        tresult e5, got;
        res_init(&e5);
        res_init(&got);
        expect_doc(&e5, "b.txt", 0, "bee");
        expect_doc(&e5, "z.txt", 0, "zed");
        prep_read_opts o = prep_read_opts_default();
        read_path(path, &o, &got);
        CHECK_EQ_INT(got.status, PREP_READ_DONE);
        CHECK(same_records(&got, &e5, 0, path));
        res_free(&e5);
        res_free(&got);
    }

    /* a member named compressed that is not: CORRUPT */
    {
        tmember m3[2] = {{"p.jsonl.gz", "{\"text\":\"x\"}\n", 13, 0}, {"q.txt", "q", 1, 0}};
        char path[4200];
        path_in(path, sizeof path, dir, "mislabel.tar");
        CHECK_EQ_INT(write_archive(path, "tar", NULL, m3, 2), 0);
        prep_read_opts o = prep_read_opts_default();
        tresult got;
        res_init(&got);
        read_path(path, &o, &got);
        CHECK_EQ_INT(got.status, PREP_READ_ERR_CORRUPT);
        CHECK(strstr(got.errmsg, "p.jsonl.gz") && strstr(got.errmsg, "not a compressed stream"));
        res_free(&got);
    }

    /* not an archive at all */
    {
        char path[4200];
        path_in(path, sizeof path, dir, "junk.tar");
        CHECK_EQ_INT(write_file(path, "this is not a tar file\n", 23), 0);
        prep_read_opts o = prep_read_opts_default();
        tresult got;
        res_init(&got);
        read_path(path, &o, &got);
        CHECK_EQ_INT(got.status, PREP_READ_ERR_CORRUPT);
        CHECK_EQ_INT(got.n, 0);
        CHECK(strstr(got.errmsg, path) != NULL);
        res_free(&got);
    }
    res_free(&exp);
    res_free(&exp7);
    free(a.d);
    free(c.d);
    free(d.d);
    free(h.d);
    free(cz);
    free(dz);
    free(hz);
    free(ez);
}

/* ---- tests: .zst files cut at their frames ------------------------------------------------ */

/* data[0, n) as zstd frames cut at random places (lines cross frames; some frames are empty),
 * with skippable frames at the start, in the middle and at the end. fcs: content sizes in the
 * frame headers. Returns the number of data frames. */
static int frames_zstd(const char *data, size_t n, uint64_t seed, size_t max_chunk, int fcs,
                       tbuf *out) {
    static const char skip[12] = {0x50, 0x2A, 0x4D, 0x18, 4, 0, 0, 0, 'p', 'a', 'd', '!'};
    ZSTD_CCtx *cc = ZSTD_createCCtx();
    uint64_t s = seed;
    int n_frames = 0;
    buf_put(out, skip, sizeof skip);
    for (size_t at = 0; at < n || n_frames == 0;) {
        size_t k = rnd(&s) % 7 == 0 ? 0 : 1 + rnd(&s) % max_chunk;
        if (k > n - at)
            k = n - at;
        size_t cap = ZSTD_compressBound(k);
        char *c = malloc(cap);
        ZSTD_CCtx_reset(cc, ZSTD_reset_session_and_parameters);
        ZSTD_CCtx_setParameter(cc, ZSTD_c_checksumFlag, (int)(rnd(&s) % 2));
        ZSTD_CCtx_setParameter(cc, ZSTD_c_contentSizeFlag, fcs);
        size_t m = c ? ZSTD_compress2(cc, c, cap, data + at, k) : 0;
        CHECK(c && !ZSTD_isError(m));
        if (c && !ZSTD_isError(m))
            buf_put(out, c, m);
        free(c);
        n_frames++;
        at += k;
        if (n_frames == 3)
            buf_put(out, skip, sizeof skip);
    }
    buf_put(out, skip, sizeof skip);
    ZSTD_freeCCtx(cc);
    return n_frames;
}

static void test_zstd_frames(const char *dir) {
    tbuf plain = {0};
    gen_jsonl(&plain, 77, 3000, 300, 1);
    buf_str(&plain, "{\"text\":\"");
    for (int i = 0; i < 20000; i++) /* a line longer than many frames */
        buf_str(&plain, "long ");
    buf_str(&plain, "\"}\n");
    gen_jsonl(&plain, 78, 500, 40, 0);
    tresult exp;
    res_init(&exp);
    expect_jsonl(plain.d, plain.n, 64 * MiB, NULL, &exp);
    int n_bad = 0;
    for (int f = 0; f < 3; f++) {
        tbuf z = {0};
        size_t max_chunk = f == 0 ? 3000 : f == 1 ? 40000 : 5000;
        int n_frames = frames_zstd(plain.d, plain.n, 100 + (uint64_t)f, max_chunk, f != 2, &z);
        char path[4200], name[64];
        snprintf(name, sizeof name, "frames-%d.jsonl.zst", f);
        path_in(path, sizeof path, dir, name);
        CHECK_EQ_INT(write_file(path, z.d, z.n), 0);
        prep_input in;
        if (input_of(path, &in) != 0) {
            CHECK(0);
            free(z.d);
            continue;
        }
        char err[256];
        CHECK_EQ_INT(prep_inputs_find_frames(&in, 1, 0, err, sizeof err), PREP_READ_OK);
        /* without content sizes the file cannot be cut */
        CHECK_EQ_INT(in.n_frames, f == 2 ? 0 : n_frames);
        static const uint64_t unit_bytes[] = {1, 700, 5000, 60000, 1u << 30};
        static const uint64_t blocks[] = {0, 3, 4096};
        size_t most_units = 0;
        for (size_t ui = 0; ui < sizeof unit_bytes / sizeof *unit_bytes; ui++)
            for (size_t bi = 0; bi < sizeof blocks / sizeof *blocks; bi++) {
                if (blocks[bi] == 3 && unit_bytes[ui] != 700)
                    continue; /* a read per 3 bytes: once is enough */
                prep_unit *u;
                size_t n_units;
                CHECK_EQ_INT(prep_units_make(&in, 1, unit_bytes[ui], &u, &n_units), PREP_READ_OK);
                most_units = n_units > most_units ? n_units : most_units;
                prep_read_opts o = prep_read_opts_default();
                o.block_bytes = blocks[bi];
                tresult got;
                res_init(&got);
                for (size_t i = 0; i < n_units && got.status == PREP_READ_DONE; i++) {
                    CHECK(i == 0 || u[i].begin == u[i - 1].end);
                    read_unit(&in, &u[i], &o, &got);
                }
                char what[4400];
                snprintf(what, sizeof what, "%s unit_bytes %llu block %llu (%zu units)", path,
                         (ull)unit_bytes[ui], (ull)blocks[bi], n_units);
                if (got.status != PREP_READ_DONE || !got.shape_ok ||
                    !same_records(&got, &exp, 0, what)) {
                    fprintf(stderr, "%s: status %d %s\n", what, got.status, got.errmsg);
                    n_bad++;
                }
                res_free(&got);
                free(u);
            }
        printf("%s: %d frames, up to %zu units, the same records\n", name, n_frames, most_units);
        CHECK(f == 2 ? most_units == 1 : most_units == (size_t)n_frames);
        /* a unit that does not start at a frame is refused */
        prep_unit bad = {0, 5, in.bytes};
        prep_read_opts o = prep_read_opts_default();
        prep_reader *r = NULL;
        CHECK_EQ_INT(prep_reader_open(&in, &bad, &o, &r), PREP_READ_ERR_ARG);
        prep_reader_free(r);
        free(in.path);
        free(in.frames);
        free(z.d);
    }
    CHECK_EQ_INT(n_bad, 0);
    res_free(&exp);
    free(plain.d);
}

/* ---- tests: the JSON fast path against json-c -------------------------------------------- */

/* Random JSON-like values: mostly valid, with everything the fast path must hand to json-c
 * (escapes of every kind, surrogates, \u0000, raw control bytes, odd numbers and literals,
 * odd whitespace, repeated and escaped keys, deep nesting) at small rates. */
static void gen_ws(tbuf *b, uint64_t *s) {
    static const char *const ws[] = {"", "", "", " ", "\t", "\r", "  ", " \t "};
    uint64_t k = rnd(s) % 64;
    buf_str(b, k == 0 ? "\v" : k == 1 ? "\f" : k == 2 ? "\n" : ws[k % 8]);
}

static void gen_jstring(tbuf *b, uint64_t *s) {
    static const char *const plain[] = {"a", "hello", " ", "0123456789abcdef", "{", "}", ",",
                                        ":", "[",     "'"};
    static const char *const fine[] = {
        "\\n",           "\\t",          "\\\"",    "\\\\",
        "\\/",           "\\b",          "\\f",     "\\r",
        "\\u00e9",       "\\u0041",      "\\u20AC", "\\uffff",
        "\xc3\xa9",      "\xe2\x82\xac", "\x7f",    "\xf0\x9f\x98\x80",
        "\\ud83d\\ude00"};
    static const char *const odd[] = {"\\u0000", "\\ud83d", "\\ude00",     "\xff",
                                      "\x01",    "\x1f",    "\\x",         "\\u12",
                                      "\\uzzzz", "\\",      "\xed\xa0\x80"};
    int n = (int)(rnd(s) % 12);
    buf_str(b, "\"");
    for (int i = 0; i < n; i++) {
        uint64_t k = rnd(s) % 200;
        if (k < 150)
            buf_str(b, plain[k % 10]);
        else if (k < 196)
            buf_str(b, fine[k % 17]);
        else
            buf_str(b, odd[rnd(s) % 11]);
    }
    buf_str(b, "\"");
}

static void gen_jvalue(tbuf *b, uint64_t *s, int depth, int want_obj);

static void gen_jobject(tbuf *b, uint64_t *s, int depth) {
    static const char *const keys[] = {"text",       "meta", "src",  "set",
                                       "te\\u0078t", "",     "Text", "m\\u0065ta"};
    int n = (int)(rnd(s) % 5);
    buf_str(b, "{");
    gen_ws(b, s);
    for (int i = 0; i < n; i++) {
        if (i > 0) {
            buf_str(b, ",");
            gen_ws(b, s);
        }
        uint64_t k = rnd(s) % 20;
        buf_str(b, "\"");
        buf_str(b, keys[k < 12 ? k % 4 : k % 8]);
        buf_str(b, "\"");
        gen_ws(b, s);
        buf_str(b, rnd(s) % 50 ? ":" : "=");
        gen_ws(b, s);
        gen_jvalue(b, s, depth + 1, k % 4 == 1 && rnd(s) % 2);
        gen_ws(b, s);
    }
    if (rnd(s) % 40 == 0)
        buf_str(b, ",");
    buf_str(b, "}");
}

static void gen_jvalue(tbuf *b, uint64_t *s, int depth, int want_obj) {
    static const char *const atoms[] = {"true",
                                        "false",
                                        "null",
                                        "0",
                                        "-0",
                                        "12",
                                        "-3.25",
                                        "0.5",
                                        "1e5",
                                        "2E-3",
                                        "1.",
                                        "01",
                                        "-",
                                        "1.5e+",
                                        "NaN",
                                        "Infinity",
                                        "-Infinity",
                                        "True",
                                        "nul",
                                        "123456789012345678",
                                        "1234567890123456789012",
                                        "-9223372036854775809",
                                        "0.00000000000000000000000000001",
                                        "1e400"};
    uint64_t k = depth > 36 ? 3 : rnd(s) % 10;
    if (want_obj || k < 2) {
        if (depth < 40)
            gen_jobject(b, s, depth);
        else
            buf_str(b, "{}");
    } else if (k < 3 && depth < 40) {
        int n = (int)(rnd(s) % 4);
        buf_str(b, "[");
        for (int i = 0; i < n; i++) {
            if (i > 0)
                buf_str(b, ",");
            gen_ws(b, s);
            gen_jvalue(b, s, depth + 1, 0);
        }
        buf_str(b, rnd(s) % 40 ? "]" : ",]");
    } else if (k < 7) {
        gen_jstring(b, s);
    } else {
        uint64_t a = rnd(s) % 60;
        buf_str(b, atoms[a < 36 ? a % 8 : a % 24]);
    }
}

/* Reads path with the fast path and with json-c only: every record must be the same, the
 * details included. Returns the number of records (accepted ones in *n_ok). */
static size_t compare_json_paths(const char *path, prep_read_opts o, size_t *n_ok) {
    prep_input in;
    *n_ok = 0;
    if (input_of(path, &in) != 0) {
        CHECK(0);
        return 0;
    }
    prep_unit u = {0, 0, in.bytes};
    prep_reader *fast = NULL, *slow = NULL;
    o.json_c_only = 0;
    int sf = prep_reader_open(&in, &u, &o, &fast);
    o.json_c_only = 1;
    int ss = prep_reader_open(&in, &u, &o, &slow);
    size_t n = 0;
    while (sf == PREP_READ_OK && ss == PREP_READ_OK) {
        prep_record a, b;
        sf = prep_reader_next(fast, &a);
        ss = prep_reader_next(slow, &b);
        if (sf != PREP_READ_OK || ss != PREP_READ_OK)
            break;
        n++;
        int same = a.ordinal == b.ordinal && a.offset == b.offset && a.reject == b.reject &&
                   a.n_text == b.n_text && !a.text == !b.text &&
                   (!a.text || memcmp(a.text, b.text, a.n_text + 1) == 0) &&
                   a.n_domain == b.n_domain && !a.domain == !b.domain &&
                   (!a.domain || memcmp(a.domain, b.domain, a.n_domain) == 0) &&
                   !a.detail == !b.detail && (!a.detail || strcmp(a.detail, b.detail) == 0);
        *n_ok += !a.reject;
        if (!same) {
            fprintf(stderr,
                    "%s: record %llu at offset %llu: fast path reject %d (%s), json-c %d "
                    "(%s)\n",
                    path, (ull)a.ordinal, (ull)a.offset, a.reject, a.detail ? a.detail : "",
                    b.reject, b.detail ? b.detail : "");
            fprintf(stderr, "  text %zu bytes '%.*s' vs %zu bytes '%.*s'\n", a.n_text,
                    (int)a.n_text, a.text ? a.text : "", b.n_text, (int)b.n_text,
                    b.text ? b.text : "");
            fprintf(stderr, "  domain '%.*s' vs '%.*s'\n", (int)a.n_domain,
                    a.domain ? a.domain : "", (int)b.n_domain, b.domain ? b.domain : "");
            CHECK(0);
            break;
        }
    }
    CHECK_EQ_INT(sf, ss);
    prep_reader_free(fast);
    prep_reader_free(slow);
    free(in.path);
    return n;
}

/* Up to two dot paths, split into keys. */
typedef struct {
    char keys[2][4][16];
    int n_keys[2];
    int n_paths;
} tpaths;

static void paths_set(tpaths *P, const char *text_path, const char *domain_path) {
    memset(P, 0, sizeof *P);
    const char *path[2] = {text_path, domain_path};
    for (int p = 0; p < 2 && path[p]; p++, P->n_paths++)
        for (const char *c = path[p]; *c; c++) {
            if (*c == '.') {
                P->n_keys[p]++;
                continue;
            }
            char *k = P->keys[p][P->n_keys[p]];
            size_t n = strlen(k);
            k[n] = *c;
        }
    for (int p = 0; p < P->n_paths; p++)
        P->n_keys[p]++;
}

/* An object with a random string at each path of mask (paths sharing keys share objects), and
 * random fields around them. */
static void gen_at_paths(tbuf *b, uint64_t *s, const tpaths *P, unsigned mask, int depth) {
    buf_str(b, "{");
    int first = 1;
    if (rnd(s) % 4 == 0) {
        buf_str(b, "\"id\":");
        gen_jvalue(b, s, depth + 1, 0);
        first = 0;
    }
    unsigned done = 0;
    for (int p = 0; p < 2; p++) {
        if (!(mask >> p & 1u) || (done >> p & 1u))
            continue;
        const char *key = P->keys[p][depth];
        unsigned sub = 0, leaf = 0;
        for (int q = 0; q < 2; q++)
            if ((mask >> q & 1u) && strcmp(P->keys[q][depth], key) == 0) {
                sub |= 1u << q;
                leaf |= P->n_keys[q] == depth + 1;
            }
        done |= sub;
        buf_str(b, first ? "\"" : ",\"");
        buf_str(b, key);
        buf_str(b, "\":");
        gen_ws(b, s);
        if (leaf)
            gen_jstring(b, s);
        else
            gen_at_paths(b, s, P, sub, depth + 1);
        first = 0;
    }
    if (rnd(s) % 4 == 0) {
        buf_str(b, first ? "\"x\":" : ",\"x\":");
        gen_jvalue(b, s, depth + 1, 0);
    }
    buf_str(b, "}");
}

static void test_json_fast_path(const char *dir) {
    static const char *const text_paths[] = {"text", "meta.text", "text", "meta.set.text"};
    static const char *const domain_paths[] = {NULL, "src", "meta.src", "text"};
    tbuf b = {0};
    uint64_t s = 4242;
    size_t n_total = 0, n_ok_total = 0;
    for (int f = 0; f < 16; f++) {
        tpaths P;
        paths_set(&P, text_paths[f % 4], domain_paths[(f / 4) % 4]);
        b.n = 0;
        for (int i = 0; i < 3000; i++) {
            size_t start = b.n;
            gen_ws(&b, &s);
            if (rnd(&s) % 30 == 0)
                gen_jvalue(&b, &s, 0, 0); /* not always an object */
            else if (rnd(&s) % 3 != 0)    /* the common shape: strings at the paths read */
                gen_at_paths(&b, &s, &P, P.n_paths == 2 ? 3u : 1u, 0);
            else
                gen_jobject(&b, &s, 0);
            gen_ws(&b, &s);
            if (rnd(&s) % 8 == 0) { /* a mutation: one byte changed, dropped or doubled */
                size_t at = start + rnd(&s) % (b.n - start + 1);
                uint64_t m = rnd(&s) % 3;
                if (at < b.n && m == 0)
                    b.d[at] = (char)(rnd(&s) % 256);
                else if (at < b.n && m == 1)
                    memmove(b.d + at, b.d + at + 1, b.n-- - at - 1);
                else if (at < b.n)
                    buf_put(&b, b.d + b.n - 1, 1);
            }
            buf_str(&b, "\n");
        }
        char path[4200], name[64];
        snprintf(name, sizeof name, "fast-%02d.jsonl", f);
        path_in(path, sizeof path, dir, name);
        CHECK_EQ_INT(write_file(path, b.d, b.n), 0);
        prep_read_opts o = prep_read_opts_default();
        o.text_path = text_paths[f % 4];
        o.domain_path = domain_paths[(f / 4) % 4];
        o.utf8 = f % 2 ? PREP_UTF8_REJECT : PREP_UTF8_REPLACE;
        size_t n_ok;
        n_total += compare_json_paths(path, o, &n_ok);
        n_ok_total += n_ok;
    }
    /* the deepest nesting both accept, and one more level */
    for (int depth = 30; depth <= 34; depth++) {
        b.n = 0;
        for (int i = 0; i < depth; i++)
            buf_str(&b, "{\"a\":");
        buf_str(&b, "1");
        for (int i = 0; i < depth; i++)
            buf_str(&b, "}");
        buf_str(&b, "\n{\"text\":\"x\",\"a\":");
        for (int i = 0; i < depth; i++)
            buf_str(&b, "[");
        for (int i = 0; i < depth; i++)
            buf_str(&b, "]");
        buf_str(&b, "}\n");
        char path[4200];
        path_in(path, sizeof path, dir, "fast-deep.jsonl");
        CHECK_EQ_INT(write_file(path, b.d, b.n), 0);
        size_t n_ok;
        n_total += compare_json_paths(path, prep_read_opts_default(), &n_ok);
        n_ok_total += n_ok;
    }
    free(b.d);
    CHECK(n_total > 40000);
    CHECK(n_ok_total > 12000); /* enough accepted records to have gone through the fast path */
    printf("json fast path: %zu records (%zu accepted) the same as json-c's\n", n_total,
           n_ok_total);
}

/* ---- tests: the bad-input corpus ----------------------------------------------------------- */

typedef struct {
    const char *line; /* written with its length: may hold NUL */
    size_t n;         /* 0: strlen(line) */
    int reject;       /* -1: a blank line, no record */
    const char *text; /* the expected text of an accepted record */
    size_t n_text;    /* 0: strlen(text) */
} tline;

#define L(s, rej, txt)                                                                             \
    { s, sizeof(s) - 1, rej, txt, 0 }

/* Writes lines to name and checks each record against its line: reject, text, offset. Returns
 * the result for more checks (free it). */
static void check_lines(const char *dir, const char *name, const tline *lines, int n_lines,
                        const prep_read_opts *o, tresult *got) {
    tbuf b = {0};
    tresult exp;
    res_init(&exp);
    for (int i = 0; i < n_lines; i++) {
        if (lines[i].reject >= 0) {
            trec *t = res_add(&exp);
            t->offset = b.n;
            t->reject = lines[i].reject;
            if (lines[i].text) {
                size_t k = lines[i].n_text ? lines[i].n_text : strlen(lines[i].text);
                t->text = dup_n(lines[i].text, k);
                t->n_text = k;
            }
        }
        buf_put(&b, lines[i].line, lines[i].n ? lines[i].n : strlen(lines[i].line));
        buf_str(&b, "\n");
    }
    char path[4200];
    path_in(path, sizeof path, dir, name);
    CHECK_EQ_INT(write_file(path, b.d, b.n), 0);
    res_init(got);
    read_path(path, o, got);
    CHECK_EQ_INT(got->status, PREP_READ_DONE);
    CHECK(got->shape_ok);
    CHECK(same_records(got, &exp, 0, path));
    res_free(&exp);
    free(b.d);
}

static void test_bad_json(const char *dir) {
    char deep[200];
    int k = snprintf(deep, sizeof deep, "{\"text\":\"deep\",\"a\":");
    for (int i = 0; i < 70; i++)
        deep[k++] = '[';
    for (int i = 0; i < 70; i++)
        deep[k++] = ']';
    deep[k++] = '}';
    deep[k] = '\0';
    const tline lines[] = {
        L("{\"text\":\"ok0\"}", 0, "ok0"),
        L("{\"text\":\"a\",}", PREP_REJECT_JSON, NULL),
        L("{\"text\":\"a\"", PREP_REJECT_JSON, NULL),
        L("[1,2]", PREP_REJECT_JSON, NULL),
        L("{\"txt\":\"a\"}", PREP_REJECT_FIELD, NULL),
        L("{\"text\":5}", PREP_REJECT_FIELD, NULL),
        L("{\"text\":null}", PREP_REJECT_FIELD, NULL),
        L("{\"text\":\"\"}", PREP_REJECT_EMPTY, NULL),
        L("{\"text\":\"a\\u0000b\"}", PREP_REJECT_BINARY, NULL),
        L("   ", -1, NULL),
        L("", -1, NULL),
        L("{\"text\":\"x\"} junk", PREP_REJECT_JSON, NULL),
        L("{\"text\":\"x\"}{\"text\":\"y\"}", PREP_REJECT_JSON, NULL),
        L("{\"text\":\"raw \0 NUL\"}", PREP_REJECT_JSON, NULL),
        L("{'text':'single'}", PREP_REJECT_JSON, NULL),
        L("{\"text\":\"esc \\\"q\\\" \\\\ \\/ \\n \\u00e9 \\ud83d\\ude00\"}", 0,
          "esc \"q\" \\ / \n \xc3\xa9 \xf0\x9f\x98\x80"),
        L("{\"text\":\"lone \\ud800 surrogate\"}", 0, "lone \xEF\xBF\xBD surrogate"),
        L("{\"text\":\"  \"}", 0, "  "),
        {deep, 0, PREP_REJECT_JSON, NULL, 0},
        L("{\"text\":\"crlf\"}\r", 0, "crlf"),
        L("  {\"text\":\"spaced\"}  \t", 0, "spaced"),
        L("12345", PREP_REJECT_JSON, NULL),
        L("\"just a string\"", PREP_REJECT_JSON, NULL),
        L("{\"text\":\"last\", \"meta\":{\"x\":[1,2,{\"y\":null}]}}", 0, "last"),
    };
    prep_read_opts o = prep_read_opts_default();
    tresult got;
    check_lines(dir, "bad.jsonl", lines, (int)(sizeof lines / sizeof *lines), &o, &got);
    CHECK_EQ_INT(got.n, 22);
    CHECK_EQ_INT(res_count(&got, 0), 7);
    CHECK_EQ_INT(res_count(&got, PREP_REJECT_JSON), 10);
    CHECK_EQ_INT(res_count(&got, PREP_REJECT_FIELD), 3);
    CHECK_EQ_INT(res_count(&got, PREP_REJECT_EMPTY), 1);
    CHECK_EQ_INT(res_count(&got, PREP_REJECT_BINARY), 1);
    res_free(&got);

    /* a BOM opens the file */
    const tline bom[] = {L("\xEF\xBB\xBF{\"text\":\"bom\"}", 0, "bom"),
                         L("\xEF\xBB\xBF{\"text\":\"bom2\"}", PREP_REJECT_JSON, NULL)};
    check_lines(dir, "bom.jsonl", bom, 2, &o, &got);
    res_free(&got);

    /* nested text and domain paths */
    o.text_path = "doc.body";
    o.domain_path = "meta.redpajama_set_name";
    const tline dom[] = {
        L("{\"doc\":{\"body\":\"d0\"},\"meta\":{\"redpajama_set_name\":\"arxiv\"}}", 0, "d0"),
        L("{\"doc\":{\"body\":\"d1\"}}", PREP_REJECT_DOMAIN, NULL),
        L("{\"doc\":{\"body\":\"d2\"},\"meta\":{\"redpajama_set_name\":7}}", PREP_REJECT_DOMAIN,
          NULL),
        L("{\"doc\":{\"body\":\"d3\"},\"meta\":\"x\"}", PREP_REJECT_DOMAIN, NULL),
        L("{\"doc\":{\"body\":\"d4\"},\"meta\":{\"redpajama_set_name\":\"a\\u0000\"}}",
          PREP_REJECT_DOMAIN, NULL),
        L("{\"doc\":\"d5\",\"meta\":{\"redpajama_set_name\":\"x\"}}", PREP_REJECT_FIELD, NULL),
        L("{\"text\":\"d6\",\"meta\":{\"redpajama_set_name\":\"x\"}}", PREP_REJECT_FIELD, NULL),
        L("{\"doc\":{\"body\":\"\"},\"meta\":{}}", PREP_REJECT_DOMAIN, NULL),
        L("{\"doc\":{\"body\":\"d8\"},\"meta\":{\"redpajama_set_name\":\"bad\xff\"}}", 0, "d8"),
    };
    check_lines(dir, "domain.jsonl", dom, (int)(sizeof dom / sizeof *dom), &o, &got);
    if (got.n == 9) {
        CHECK(got.v[0].domain && strcmp(got.v[0].domain, "arxiv") == 0);
        CHECK(got.v[8].domain && strcmp(got.v[8].domain, "bad\xEF\xBF\xBD") == 0);
    }
    CHECK_EQ_INT(res_count(&got, PREP_REJECT_DOMAIN), 5);
    res_free(&got);
    o.utf8 = PREP_UTF8_REJECT;
    tline dom_rej[sizeof dom / sizeof *dom];
    memcpy(dom_rej, dom, sizeof dom);
    dom_rej[8].reject = PREP_REJECT_UTF8;
    dom_rej[8].text = NULL;
    check_lines(dir, "domain-rej.jsonl", dom_rej, (int)(sizeof dom / sizeof *dom), &o, &got);
    res_free(&got);

    /* a line ending in a high surrogate does not change the next line (json-c kept it) */
    const tline sur[] = {L("{\"text\":\"\\ud83d", PREP_REJECT_JSON, NULL),
                         L("{\"text\":\"\\u0041\"}", 0, "A")};
    o = prep_read_opts_default();
    for (int slow = 0; slow < 2; slow++) {
        o.json_c_only = slow;
        check_lines(dir, "surrogate-eol.jsonl", sur, 2, &o, &got);
        res_free(&got);
    }

    /* without a domain path, no domain */
    o = prep_read_opts_default();
    const tline nodom[] = {L("{\"text\":\"t\",\"meta\":{\"redpajama_set_name\":\"x\"}}", 0, "t")};
    check_lines(dir, "nodomain.jsonl", nodom, 1, &o, &got);
    CHECK(got.n == 1 && got.v[0].domain == NULL);
    res_free(&got);
}

static void test_utf8(const char *dir) {
    /* jsonl: json-c passes raw bytes through; the policy applies to the decoded text */
    const tline rep[] = {
        L("{\"text\":\"a\xff"
          "b\"}",
          0,
          "a\xEF\xBF\xBD"
          "b"),
        L("{\"text\":\"\xc0\xaf\"}", 0, "\xEF\xBF\xBD\xEF\xBF\xBD"),                 /* overlong */
        L("{\"text\":\"\xed\xa0\x80\"}", 0, "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"), /* surrogate */
        L("{\"text\":\"\xf4\x90\x80\x80\"}", 0,
          "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"), /* above U+10FFFF */
        L("{\"text\":\"cut \xe2\x82\"}", 0, "cut \xEF\xBF\xBD\xEF\xBF\xBD"),
        L("{\"text\":\"ok \xc3\xa9 \xf0\x9f\x98\x80 \xef\xbf\xbf\"}", 0,
          "ok \xc3\xa9 \xf0\x9f\x98\x80 \xef\xbf\xbf"),
    };
    const int n = (int)(sizeof rep / sizeof *rep);
    prep_read_opts o = prep_read_opts_default();
    tresult got;
    check_lines(dir, "utf8.jsonl", rep, n, &o, &got);
    res_free(&got);
    tline rej[sizeof rep / sizeof *rep];
    memcpy(rej, rep, sizeof rep);
    for (int i = 0; i < n - 1; i++) {
        rej[i].reject = PREP_REJECT_UTF8;
        rej[i].text = NULL;
    }
    o.utf8 = PREP_UTF8_REJECT;
    check_lines(dir, "utf8-rej.jsonl", rej, n, &o, &got);
    CHECK_EQ_INT(res_count(&got, PREP_REJECT_UTF8), 5);
    res_free(&got);

    /* text files */
    char path[4200];
    path_in(path, sizeof path, dir, "utf8.txt");
    CHECK_EQ_INT(write_file(path, "x\xffy\xc3", 4), 0);
    for (int pol = 0; pol < 2; pol++) {
        o = prep_read_opts_default();
        o.utf8 = pol ? PREP_UTF8_REJECT : PREP_UTF8_REPLACE;
        res_init(&got);
        read_path(path, &o, &got);
        CHECK(got.status == PREP_READ_DONE && got.n == 1 && got.shape_ok);
        if (got.n == 1 && pol == 0)
            CHECK(got.v[0].reject == 0 && got.v[0].n_text == 8 &&
                  memcmp(got.v[0].text, "x\xEF\xBF\xBDy\xEF\xBF\xBD", 8) == 0);
        if (got.n == 1 && pol == 1)
            CHECK_EQ_INT(got.v[0].reject, PREP_REJECT_UTF8);
        res_free(&got);
    }
    /* replacement can make a document too long */
    path_in(path, sizeof path, dir, "grows.txt");
    CHECK_EQ_INT(write_file(path, "\xff\xff", 2), 0);
    o = prep_read_opts_default();
    o.max_doc_bytes = 5;
    res_init(&got);
    read_path(path, &o, &got);
    CHECK(got.n == 1 && got.v[0].reject == PREP_REJECT_TOO_LONG);
    res_free(&got);
}

/* Lines of exactly max_doc_bytes are documents; one byte more is TOO_LONG. */
static void test_max_exact(const char *dir) {
    const tline lines[] = {
        L("{\"text\":\"abcdefghi\"}", 0, "abcdefghi"),               /* 20 bytes */
        L("{\"text\":\"abcdefghij\"}", PREP_REJECT_TOO_LONG, NULL),  /* 21 */
        L("{\"text\":\"abcdefghi\"}\r", PREP_REJECT_TOO_LONG, NULL), /* the CR counts */
        L("{\"text\":\"x\"}", 0, "x"),
        L("                          ", PREP_REJECT_TOO_LONG, NULL), /* long blank: rejected */
        L("{\"text\":\"y\"}", 0, "y"),
    };
    static const uint64_t blocks[] = {1, 7, 20, 21, 0};
    for (size_t i = 0; i < sizeof blocks / sizeof *blocks; i++) {
        prep_read_opts o = prep_read_opts_default();
        o.max_doc_bytes = 20;
        o.block_bytes = blocks[i];
        tresult got;
        check_lines(dir, "max.jsonl", lines, (int)(sizeof lines / sizeof *lines), &o, &got);
        res_free(&got);
    }
    /* text files: the same limit */
    char path[4200];
    path_in(path, sizeof path, dir, "max.txt");
    for (int extra = 0; extra < 2; extra++) {
        CHECK_EQ_INT(write_file(path, "01234567890123456789x", 20 + (size_t)extra), 0);
        prep_read_opts o = prep_read_opts_default();
        o.max_doc_bytes = 20;
        o.block_bytes = 3;
        tresult got;
        res_init(&got);
        read_path(path, &o, &got);
        CHECK(got.n == 1 && got.v[0].reject == (extra ? PREP_REJECT_TOO_LONG : 0));
        res_free(&got);
    }
}

static void test_empty_inputs(const char *dir) {
    size_t nz = 0, ng = 0;
    char *ez = compress_zstd("", 0, &nz), *eg = compress_la("gzip", "", 0, &ng);
    CHECK(ez && eg);
    struct {
        const char *name;
        const char *data;
        size_t n;
        size_t n_records;
        int reject;
    } cases[] = {
        {"empty.jsonl", "", 0, 0, 0},
        {"empty.txt", "", 0, 1, PREP_REJECT_EMPTY},
        {"empty1.jsonl.zst", ez, nz, 0, 0}, /* a zstd frame of nothing */
        {"empty2.jsonl.gz", eg, ng, 0, 0},  /* a gzip stream of nothing */
        {"empty.tar", "", 0, 0, 0},
        {"empty.tar.gz", eg, ng, 0, 0},
        {"blank.jsonl", "\n\n \r\n\t", 5, 0, 0},
        {"nl.txt", "\n", 1, 1, 0}, /* whitespace is a document */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char path[4200];
        path_in(path, sizeof path, dir, cases[i].name);
        CHECK_EQ_INT(write_file(path, cases[i].data ? cases[i].data : "", cases[i].n), 0);
        prep_read_opts o = prep_read_opts_default();
        tresult got;
        res_init(&got);
        read_path(path, &o, &got);
        CHECK_EQ_INT(got.status, PREP_READ_DONE);
        CHECK_EQ_INT(got.n, cases[i].n_records);
        if (got.n == 1)
            CHECK_EQ_INT(got.v[0].reject, cases[i].reject);
        if (got.status != PREP_READ_DONE || got.n != cases[i].n_records)
            fprintf(stderr, "%s: status %d, %zu records: %s\n", path, got.status, got.n,
                    got.errmsg);
        res_free(&got);
    }
    free(ez);
    free(eg);
}

/* Random bytes as jsonl (the reference split says what each line is) and as text. */
static void test_binary_junk(const char *dir) {
    const size_t n = 256 * 1024;
    char *junk = malloc(n);
    uint64_t s = 77;
    for (size_t i = 0; i < n; i++)
        junk[i] = (char)(rnd(&s) >> 56);
    char path[4200];
    path_in(path, sizeof path, dir, "junk.jsonl");
    CHECK_EQ_INT(write_file(path, junk, n), 0);
    prep_read_opts o = prep_read_opts_default();
    o.max_doc_bytes = 1000;
    tresult exp, got;
    res_init(&exp);
    res_init(&got);
    expect_jsonl(junk, n, o.max_doc_bytes, NULL, &exp);
    read_path(path, &o, &got);
    CHECK_EQ_INT(got.status, PREP_READ_DONE);
    CHECK(same_records(&got, &exp, 0, path));
    size_t n_bin = res_count(&exp, PREP_REJECT_BINARY), n_json = res_count(&exp, PREP_REJECT_JSON);
    size_t n_long = res_count(&exp, PREP_REJECT_TOO_LONG);
    CHECK(n_json > 0);
    CHECK_EQ_INT(n_bin + n_json + n_long, exp.n); /* nothing accepted */
    CHECK_EQ_INT(res_count(&got, PREP_REJECT_BINARY), n_bin);
    CHECK_EQ_INT(res_count(&got, PREP_REJECT_JSON), n_json);
    fprintf(stderr, "junk.jsonl: %zu lines: %zu binary, %zu json, %zu too long\n", exp.n, n_bin,
            n_json, n_long);
    res_free(&exp);
    res_free(&got);

    path_in(path, sizeof path, dir, "junk.txt");
    CHECK_EQ_INT(write_file(path, junk, n), 0);
    o = prep_read_opts_default();
    res_init(&got);
    read_path(path, &o, &got);
    CHECK(got.status == PREP_READ_DONE && got.n == 1 && got.v[0].reject == PREP_REJECT_BINARY);
    res_free(&got);
    free(junk);
}

/* A 200 MB line in plain jsonl and a 64 MB line in zstd jsonl, with max_doc_bytes 1 MiB: read
 * past, not held (peak memory grows by far less than the line). Runs first, so that the peak
 * before it is small. */
static void test_huge_line(const char *dir) {
    char path[4200];
    path_in(path, sizeof path, dir, "huge.jsonl");
    const char *first = "{\"text\":\"before\"}\n", *last = "{\"text\":\"after\"}\n";
    const uint64_t n_huge = 200 * MiB;
    static char chunk[1 << 20];
    memset(chunk, 'a', sizeof chunk);
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f)
        return;
    fputs(first, f);
    fputs("{\"text\":\"", f);
    for (uint64_t w = 0; w < n_huge; w += sizeof chunk)
        fwrite(chunk, 1, sizeof chunk, f);
    fputs("\"}\n", f);
    fputs(last, f);
    CHECK_EQ_INT(fclose(f), 0);
    uint64_t line_bytes = 9 + n_huge + 2;

    uint64_t rss0 = peak_rss();
    prep_read_opts o = prep_read_opts_default();
    o.max_doc_bytes = MiB;
    tresult got;
    res_init(&got);
    read_path(path, &o, &got);
    CHECK_EQ_INT(got.status, PREP_READ_DONE);
    CHECK_EQ_INT(got.n, 3);
    if (got.n == 3) {
        CHECK(got.v[0].reject == 0 && strcmp(got.v[0].text, "before") == 0);
        CHECK_EQ_INT(got.v[1].reject, PREP_REJECT_TOO_LONG);
        CHECK_EQ_U64(got.v[1].offset, strlen(first));
        CHECK(got.v[2].reject == 0 && strcmp(got.v[2].text, "after") == 0);
        CHECK_EQ_U64(got.v[2].offset, strlen(first) + line_bytes + 1);
    }
    res_free(&got);
    /* the same file cut into 64 MiB units: the huge line belongs to the first */
    prep_input in;
    CHECK_EQ_INT(input_of(path, &in), 0);
    prep_unit *u;
    size_t n_units;
    CHECK_EQ_INT(prep_units_make(&in, 1, 64 * MiB, &u, &n_units), PREP_READ_OK);
    CHECK_EQ_INT(n_units, 4);
    res_init(&got);
    for (size_t i = 0; i < n_units; i++)
        read_unit(&in, &u[i], &o, &got);
    CHECK(got.status == PREP_READ_DONE && got.n == 3);
    res_free(&got);
    free(u);
    free(in.path);
    uint64_t rss1 = peak_rss();
    fprintf(stderr, "huge line: peak RSS %llu -> %llu KiB\n", (ull)(rss0 >> 10), (ull)(rss1 >> 10));
    CHECK(rss1 - rss0 < 64 * MiB);
    unlink(path);

    /* zstd: compressed by streaming, so the test itself stays small */
    path_in(path, sizeof path, dir, "huge.jsonl.zst");
    f = fopen(path, "wb");
    ZSTD_CCtx *cc = ZSTD_createCCtx();
    static char zout[1 << 17];
    const uint64_t n_zhuge = 64 * MiB;
    int ok = f && cc;
    for (int part = 0; ok && part < 4; part++) {
        /* parts: first line + opening, the 'a's (in chunks), closing + last line, end */
        uint64_t reps = part == 1 ? n_zhuge / sizeof chunk : 1;
        for (uint64_t r = 0; ok && r < reps; r++) {
            const char *src = part == 0   ? "{\"text\":\"before\"}\n{\"text\":\""
                              : part == 1 ? chunk
                              : part == 2 ? "\"}\n{\"text\":\"after\"}\n"
                                          : "";
            size_t n_src = part == 1 ? sizeof chunk : strlen(src);
            ZSTD_inBuffer ib = {src, n_src, 0};
            ZSTD_EndDirective mode = part == 3 ? ZSTD_e_end : ZSTD_e_continue;
            for (;;) {
                ZSTD_outBuffer ob = {zout, sizeof zout, 0};
                size_t left = ZSTD_compressStream2(cc, &ob, &ib, mode);
                ok = !ZSTD_isError(left) && fwrite(zout, 1, ob.pos, f) == ob.pos;
                if (!ok || (mode == ZSTD_e_end ? left == 0 : ib.pos == ib.size))
                    break;
            }
        }
    }
    ZSTD_freeCCtx(cc);
    CHECK(ok);
    if (f)
        CHECK_EQ_INT(fclose(f), 0);
    res_init(&got);
    read_path(path, &o, &got);
    CHECK_EQ_INT(got.status, PREP_READ_DONE);
    CHECK(got.n == 3 && got.v[1].reject == PREP_REJECT_TOO_LONG && got.v[2].reject == 0 &&
          got.v[2].offset == strlen(first) + 9 + n_zhuge + 2 + 1);
    res_free(&got);
    uint64_t rss2 = peak_rss();
    CHECK(rss2 - rss0 < 64 * MiB);
    unlink(path);

    /* a 200 MB text file (sparse) is rejected without being read */
    path_in(path, sizeof path, dir, "huge.txt");
    f = fopen(path, "wb");
    CHECK(f != NULL && ftruncate(fileno(f), (off_t)n_huge) == 0);
    if (f)
        fclose(f);
    res_init(&got);
    read_path(path, &o, &got);
    CHECK(got.n == 1 && got.v[0].reject == PREP_REJECT_TOO_LONG);
    res_free(&got);
    CHECK(peak_rss() - rss0 < 64 * MiB);
    unlink(path);
}

/* ---- tests: errors, scans ------------------------------------------------------------------ */

static void test_errors(const char *dir) {
    char path[4200];
    path_in(path, sizeof path, dir, "does-not-exist.jsonl");
    prep_input in = {path, 10, PREP_FMT_JSONL, NULL, 0};
    prep_unit u = {0, 0, 10};
    prep_read_opts o = prep_read_opts_default();
    prep_reader *r = NULL;
    CHECK_EQ_INT(prep_reader_open(&in, &u, &o, &r), PREP_READ_ERR_IO);
    CHECK(r != NULL && strstr(prep_reader_errmsg(r), path) != NULL);
    prep_record rec;
    CHECK_EQ_INT(prep_reader_next(r, &rec), PREP_READ_ERR_IO);
    prep_reader_free(r);

    path_in(path, sizeof path, dir, "args.txt");
    CHECK_EQ_INT(write_file(path, "text", 4), 0);
    in = (prep_input){path, 4, PREP_FMT_TEXT, NULL, 0};
    u = (prep_unit){0, 1, 4}; /* a range of a text file */
    CHECK_EQ_INT(prep_reader_open(&in, &u, &o, &r), PREP_READ_ERR_ARG);
    prep_reader_free(r);
    u = (prep_unit){0, 0, 4};
    static const char *const bad_paths[] = {"", "a..b", ".a", "a."};
    for (size_t i = 0; i < sizeof bad_paths / sizeof *bad_paths; i++) {
        o = prep_read_opts_default();
        o.text_path = bad_paths[i];
        CHECK_EQ_INT(prep_reader_open(&in, &u, &o, &r), PREP_READ_ERR_ARG);
        prep_reader_free(r);
    }
    o = prep_read_opts_default();
    o.max_doc_bytes = 0;
    CHECK_EQ_INT(prep_reader_open(&in, &u, &o, &r), PREP_READ_ERR_ARG);
    prep_reader_free(r);
    o = prep_read_opts_default();
    CHECK_EQ_INT(prep_reader_open(&in, &u, &o, &r), PREP_READ_OK);
    CHECK_EQ_INT(prep_reader_next(r, &rec), PREP_READ_OK);
    CHECK(rec.text && strcmp(rec.text, "text") == 0 && rec.member == NULL && rec.domain == NULL);
    CHECK_EQ_INT(prep_reader_next(r, &rec), PREP_READ_DONE);
    CHECK_EQ_INT(prep_reader_next(r, &rec), PREP_READ_DONE);
    prep_reader_free(r);
    prep_reader_free(NULL);
    prep_inputs_free(NULL, 0);
    CHECK(strcmp(prep_reject_name(PREP_REJECT_TOO_LONG), "too_long") == 0);
    CHECK(strcmp(prep_reject_name(PREP_REJECT_TRUNCATED), "truncated") == 0);
    CHECK(strcmp(prep_reject_name((prep_reject)99), "unknown") == 0);
    CHECK(strcmp(prep_read_strerror(PREP_READ_ERR_CORRUPT), "damaged or truncated input") == 0);
}

static void test_scan(const char *dir) {
    char root[4200], p[4400];
    path_in(root, sizeof root, dir, "tree");
    static const char *const dirs[] = {"", "/sub", "/sub/deeper", "/empty_dir", "/B"};
    for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) {
        snprintf(p, sizeof p, "%s%s", root, dirs[i]);
        CHECK_EQ_INT(mkdir(p, 0755), 0);
    }
    static const char *const files[] = {"/b.jsonl",
                                        "/a.txt",
                                        "/.hidden.jsonl",
                                        "/sub/x.jsonl.zst",
                                        "/sub/deeper/y.tar.gz",
                                        "/sub/deeper/z.ZIP",
                                        "/B/c.json",
                                        "/sub-file.jsonl.xz",
                                        "/a.7z",
                                        "/d.json.bz2"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(p, sizeof p, "%s%s", root, files[i]);
        CHECK_EQ_INT(write_file(p, "0123456789", i + 1), 0);
    }
    snprintf(p, sizeof p, "%s/link_to_file", root);
    CHECK_EQ_INT(symlink("a.txt", p), 0);
    snprintf(p, sizeof p, "%s/link_to_dir", root);
    CHECK_EQ_INT(symlink("sub", p), 0);
    snprintf(p, sizeof p, "%s/dangling", root);
    CHECK_EQ_INT(symlink("nowhere", p), 0);

    struct {
        const char *rel;
        prep_format f;
        uint64_t bytes;
    } want[] = {
        {"/.hidden.jsonl", PREP_FMT_JSONL, 3},
        {"/B/c.json", PREP_FMT_JSONL, 7},
        {"/a.7z", PREP_FMT_ARCHIVE, 9},
        {"/a.txt", PREP_FMT_TEXT, 2},
        {"/b.jsonl", PREP_FMT_JSONL, 1},
        {"/d.json.bz2", PREP_FMT_JSONL_COMP, 10},
        {"/link_to_file", PREP_FMT_TEXT, 2},
        {"/sub-file.jsonl.xz", PREP_FMT_JSONL_COMP, 8},
        {"/sub/deeper/y.tar.gz", PREP_FMT_ARCHIVE, 5},
        {"/sub/deeper/z.ZIP", PREP_FMT_ARCHIVE, 6},
        {"/sub/x.jsonl.zst", PREP_FMT_JSONL_COMP, 4},
    };
    const size_t n_want = sizeof want / sizeof *want;
    char sub[4300], afile[4300], root_slash[4300];
    snprintf(sub, sizeof sub, "%s/sub", root);
    snprintf(afile, sizeof afile, "%s/a.txt", root);
    snprintf(root_slash, sizeof root_slash, "%s/", root);
    for (int variant = 0; variant < 2; variant++) {
        /* variant 1 names some files twice and the root with a trailing slash */
        char *paths[3] = {variant ? sub : root, root_slash, afile};
        int n_paths = variant ? 3 : 1;
        if (variant)
            paths[1] = root;
        prep_input *in = NULL;
        size_t n = 0;
        char err[512];
        CHECK_EQ_INT(prep_inputs_scan(paths, n_paths, &in, &n, err, sizeof err), PREP_READ_OK);
        CHECK_EQ_INT(n, n_want);
        for (size_t i = 0; i < n && i < n_want; i++) {
            snprintf(p, sizeof p, "%s%s", root, want[i].rel);
            CHECK(strcmp(in[i].path, p) == 0);
            if (strcmp(in[i].path, p) != 0)
                fprintf(stderr, "scan[%zu] = %s, want %s\n", i, in[i].path, p);
            CHECK_EQ_INT(in[i].format, want[i].f);
            CHECK_EQ_U64(in[i].bytes, want[i].bytes);
        }
        for (size_t i = 1; i < n; i++)
            CHECK(strcmp(in[i - 1].path, in[i].path) < 0);
        prep_inputs_free(in, n);
    }
    /* a trailing slash gives the same paths, without "//" */
    {
        char *paths[1] = {root_slash};
        prep_input *in = NULL;
        size_t n = 0;
        char err[512];
        CHECK_EQ_INT(prep_inputs_scan(paths, 1, &in, &n, err, sizeof err), PREP_READ_OK);
        CHECK_EQ_INT(n, n_want);
        for (size_t i = 0; i < n; i++)
            CHECK(strstr(in[i].path, "//") == NULL);
        prep_inputs_free(in, n);
    }
    /* an empty folder: no inputs, still an array */
    {
        snprintf(p, sizeof p, "%s/empty_dir", root);
        char *paths[1] = {p};
        prep_input *in = NULL;
        size_t n = 99;
        char err[512];
        CHECK_EQ_INT(prep_inputs_scan(paths, 1, &in, &n, err, sizeof err), PREP_READ_OK);
        CHECK(in != NULL && n == 0);
        prep_inputs_free(in, n);
    }
    /* a path that does not exist: IO, named */
    {
        snprintf(p, sizeof p, "%s/no-such-thing", root);
        char *paths[2] = {root, p};
        prep_input *in = NULL;
        size_t n = 99;
        char err[512];
        CHECK_EQ_INT(prep_inputs_scan(paths, 2, &in, &n, err, sizeof err), PREP_READ_ERR_IO);
        CHECK(in == NULL && n == 0);
        CHECK(strstr(err, p) != NULL);
    }
}

int main(void) {
    char dir[4096];
    const char *t = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/longctx-prep-read-XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_huge_line(dir); /* first: the peak memory before it is small */
    test_units_make();
    test_ranges(dir);
    test_compressed(dir);
    test_zstd_frames(dir);
    test_archives(dir);
    test_bad_json(dir);
    test_json_fast_path(dir);
    test_utf8(dir);
    test_max_exact(dir);
    test_empty_inputs(dir);
    test_binary_junk(dir);
    test_errors(dir);
    test_scan(dir);
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return check_exit("test_prep_read");
}
