/* prep_read.c - the reader of the read stage of prep: the records of one work unit (plain and
 * compressed jsonl, archives, text files) and the rules that make a record a document (UTF-8,
 * emptiness, size). Inputs and work units are in prep_inputs.c; JSON lines are parsed by the
 * tokenizer module's extractor (tok_json.c).
 *
 * Every format ends in the same two places: jsonl lines go through line_next() and
 * json_record(), whole documents through read_doc() and text_record(). Bytes come from one of
 * three sources:
 *   SRC_FILE     pread on the file (plain jsonl, text files);
 *   SRC_ARCHIVE  a libarchive stream (a compressed jsonl file through the "raw" format, or the
 *                data of an archive member);
 *   SRC_INNER    a second libarchive stream fed by the first: a compressed jsonl member of an
 *                archive. libarchive does not nest filters by itself, so the inner reader pulls
 *                the member's bytes through a read callback: the same filters as for a
 *                compressed file, in constant memory; nothing is decompressed to disk or held
 *                whole.
 */
#include "prep_read.h"
#include "tokenizer.h" /* tok_utf8_next (valid UTF-8), tok_json (jsonl lines) */

#include <archive.h>
#include <archive_entry.h>
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef unsigned long long ull;

#define READ_BLOCK_BYTES (1u << 20)          /* default bytes per read */
#define MAX_BLOCK_BYTES  (64u << 20)         /* larger reads gain nothing */
#define MAX_DOC_LIMIT    (INT32_MAX - 4096u) /* json-c string lengths are int */
#define ERRMSG_BYTES     1024
#define DETAIL_BYTES     256
#define MEMBER_BYTES     4096

typedef enum { SRC_FILE = 0, SRC_ARCHIVE = 1, SRC_INNER = 2 } src_kind;

/* The data block libarchive last returned for the current entry, not yet consumed. */
typedef struct {
    const char *p; /* (n) borrowed from libarchive until its next call */
    size_t n;
    la_int64_t off; /* entry offset of p[0] */
    la_int64_t pos; /* entry offset of the next byte delivered */
    int eof;
} la_block;

struct prep_reader {
    char path[4096];
    prep_format format;
    prep_utf8_policy utf8;
    uint64_t max_doc_bytes;
    size_t block_bytes;
    uint64_t begin, end; /* plain jsonl: the unit owns the lines starting in [begin, end) */
    /* a run of frames of a .zst file: decoding starts at the frame at file offset z_file_from
     * (stream offset z_stream_from); with z_sync, the unit's lines start after the first '\n'
     * at or after stream offset z_sync_at; none starts at or after z_limit */
    int z_range, z_sync;
    uint64_t z_file_from, z_stream_from, z_sync_at, z_limit;

    int fd;
    uint64_t file_bytes;
    uint64_t file_pos;     /* SRC_FILE: next byte to read */
    struct archive *ar;    /* compressed jsonl (raw format) or the archive */
    struct archive *inner; /* a compressed jsonl member, fed from ar */
    la_block ar_blk, inner_blk;
    char *inner_buf; /* (block_bytes) member bytes on their way to inner */
    src_kind src;
    int started;   /* the first prep_reader_next has set up the stream */
    int in_member; /* archive: inside a jsonl member */
    char member[MEMBER_BYTES];
    int has_member;

    /* The stream window: buf[lo, hi) is unread, buf[0] is at stream offset buf_off, and
     * buf[lo, scan) is known to hold no '\n'. */
    char *buf; /* (cap + 1): one more byte for a NUL after a document */
    size_t cap, lo, hi, scan;
    uint64_t buf_off;
    uint64_t limit; /* no line starting at or after this stream offset is read */
    int eof;

    tok_json *json; /* the extractor of the text (and domain) strings of a jsonl line */
    char *out;      /* (out_cap + 1) text after U+FFFD replacement */
    size_t out_cap;
    char *dom; /* (dom_cap + 1) domain after U+FFFD replacement */
    size_t dom_cap;
    uint64_t ordinal;
    int status; /* sticky: once DONE or an error, every later call returns it */
    char detail[DETAIL_BYTES];
    char errmsg[ERRMSG_BYTES];
};

void prep_read_errf(char *buf, size_t n, const char *fmt, ...) {
    if (!buf || n == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, n, fmt, ap);
    va_end(ap);
}

/* Records the detail, sets status, and leaves through the function's fail label. */
#define FAIL(r, st, ...)                                                                           \
    do {                                                                                           \
        prep_read_errf((r)->errmsg, sizeof(r)->errmsg, __VA_ARGS__);                               \
        status = (st);                                                                             \
        goto fail;                                                                                 \
    } while (0)

/* ---- names and defaults -------------------------------------------------------------------- */

const char *prep_reject_name(prep_reject r) {
    static const char *const names[PREP_REJECT_N] = {
        "none", "json", "field", "domain", "utf8", "too_long", "empty", "binary", "truncated"};
    return (unsigned)r < PREP_REJECT_N ? names[r] : "unknown";
}

const char *prep_read_strerror(int status) {
    switch (status) {
    case PREP_READ_DONE:
        return "done";
    case PREP_READ_OK:
        return "ok";
    case PREP_READ_ERR_IO:
        return "I/O error";
    case PREP_READ_ERR_NOMEM:
        return "out of memory";
    case PREP_READ_ERR_CORRUPT:
        return "damaged or truncated input";
    case PREP_READ_ERR_ARG:
        return "invalid argument";
    default:
        return "unknown status";
    }
}

prep_read_opts prep_read_opts_default(void) {
    prep_read_opts o;
    memset(&o, 0, sizeof o);
    o.text_path = "text";
    o.domain_path = NULL;
    o.utf8 = PREP_UTF8_REPLACE;
    o.max_doc_bytes = 64ull << 20;
    o.block_bytes = READ_BLOCK_BYTES;
    return o;
}

/* ---- UTF-8 --------------------------------------------------------------------------------- */

/* Counts the invalid bytes of s[0, n) (each one would become U+FFFD); *first gets the offset of
 * the first. With stop_at_first, counting ends there. */
static size_t utf8_invalid(const unsigned char *s, size_t n, int stop_at_first, size_t *first) {
    size_t i = 0, bad = 0;
    *first = n;
    while (i < n) {
        if (s[i] < 0x80) { /* ASCII runs, eight bytes at a time */
            i++;
            while (i + 8 <= n) {
                uint64_t w;
                memcpy(&w, s + i, 8);
                if (w & 0x8080808080808080ull)
                    break;
                i += 8;
            }
            continue;
        }
        uint32_t cp;
        size_t k = tok_utf8_next(s + i, n - i, &cp);
        if (cp == TOK_INVALID_CP) {
            if (bad++ == 0)
                *first = i;
            if (stop_at_first)
                break;
        }
        i += k;
    }
    return bad;
}

/* Copies s[0, n) to dst with each invalid byte replaced by EF BF BD; dst has room for
 * n + 2 * (invalid bytes) + 1. */
static void utf8_replace(const unsigned char *s, size_t n, char *dst) {
    size_t i = 0, o = 0;
    while (i < n) {
        uint32_t cp;
        size_t k = tok_utf8_next(s + i, n - i, &cp);
        if (cp == TOK_INVALID_CP) {
            memcpy(dst + o, "\xEF\xBF\xBD", 3);
            o += 3;
        } else {
            memcpy(dst + o, s + i, k);
            o += k;
        }
        i += k;
    }
    dst[o] = '\0';
}

/* ---- records ------------------------------------------------------------------------------- */

static int grow(char **buf, size_t *cap, size_t need) {
    if (*buf && need <= *cap)
        return 0;
    char *p = realloc(*buf, need + 1);
    if (!p)
        return -1;
    *buf = p;
    *cap = need;
    return 0;
}

static void record_start(prep_reader *r, prep_record *rec, uint64_t offset) {
    memset(rec, 0, sizeof *rec);
    rec->ordinal = r->ordinal++;
    rec->offset = offset;
    rec->member = r->has_member ? r->member : NULL;
}

static int reject(prep_reader *r, prep_record *rec, prep_reject why, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int reject(prep_reader *r, prep_record *rec, prep_reject why, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->detail, sizeof r->detail, fmt, ap);
    va_end(ap);
    rec->reject = why;
    rec->text = NULL;
    rec->n_text = 0;
    rec->domain = NULL;
    rec->n_domain = 0;
    rec->detail = r->detail;
    return PREP_READ_OK;
}

/* Applies the document rules to s[0, n) (s[n] is a NUL) and fills rec: NUL bytes, emptiness,
 * size, then the UTF-8 policy. */
static int text_record(prep_reader *r, const char *s, size_t n, int from_json, prep_record *rec) {
    int status = PREP_READ_OK;
    const char *nul = memchr(s, 0, n);
    if (nul)
        return reject(r, rec, PREP_REJECT_BINARY,
                      from_json ? "\\u0000 at byte %zu of the text" : "NUL byte at offset %zu",
                      (size_t)(nul - s));
    if (n == 0)
        return reject(r, rec, PREP_REJECT_EMPTY, "empty text");
    if (n > r->max_doc_bytes)
        return reject(r, rec, PREP_REJECT_TOO_LONG, "text of %zu bytes > max_doc_bytes %llu", n,
                      (ull)r->max_doc_bytes);
    size_t first;
    size_t bad = utf8_invalid((const unsigned char *)s, n, r->utf8 == PREP_UTF8_REJECT, &first);
    rec->text = s;
    rec->n_text = n;
    if (bad == 0)
        return PREP_READ_OK;
    if (r->utf8 == PREP_UTF8_REJECT)
        return reject(r, rec, PREP_REJECT_UTF8, "invalid UTF-8 at byte %zu of the text", first);
    size_t m = n + 2 * bad;
    if (m > r->max_doc_bytes)
        return reject(r, rec, PREP_REJECT_TOO_LONG,
                      "text of %zu bytes after U+FFFD replacement > max_doc_bytes %llu", m,
                      (ull)r->max_doc_bytes);
    if (grow(&r->out, &r->out_cap, m) != 0)
        FAIL(r, PREP_READ_ERR_NOMEM, "%s: out of memory for a document of %zu bytes", r->path, m);
    utf8_replace((const unsigned char *)s, n, r->out);
    rec->text = r->out;
    rec->n_text = m;
fail:
    return status;
}

/* What follows the JSON checks, for both paths: the domain's NUL check, the text's rules, the
 * domain's UTF-8 policy. dom is NULL when no domain is configured. */
static int json_fields(prep_reader *r, const char *text, size_t n_text, const char *dom,
                       size_t n_dom, prep_record *rec) {
    int status = PREP_READ_OK;
    if (dom && memchr(dom, 0, n_dom))
        return reject(r, rec, PREP_REJECT_DOMAIN, "\\u0000 in the domain");
    status = text_record(r, text, n_text, 1, rec);
    if (status != PREP_READ_OK || rec->reject || !dom)
        return status;
    size_t first, bad = utf8_invalid((const unsigned char *)dom, n_dom, 0, &first);
    if (bad > 0 && r->utf8 == PREP_UTF8_REJECT)
        return reject(r, rec, PREP_REJECT_UTF8, "invalid UTF-8 at byte %zu of the domain", first);
    if (bad > 0) {
        if (grow(&r->dom, &r->dom_cap, n_dom + 2 * bad) != 0)
            FAIL(r, PREP_READ_ERR_NOMEM, "%s: out of memory", r->path);
        utf8_replace((const unsigned char *)dom, n_dom, r->dom);
        dom = r->dom;
        n_dom += 2 * bad;
    }
    rec->domain = dom;
    rec->n_domain = n_dom;
fail:
    return status;
}

/* One jsonl line (no '\n') at stream offset off into rec (started by the caller). */
static int json_record(prep_reader *r, const char *line, size_t n, uint64_t off, prep_record *rec) {
    int status = PREP_READ_OK;
    if (off == 0 && n >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0) { /* a BOM opens the file */
        line += 3;
        n -= 3;
    }
    tok_json_fields f;
    int st = tok_json_extract(r->json, line, n, &f);
    switch (st) {
    case TOK_JSON_OK:
        return json_fields(r, f.text, f.n_text, f.domain, f.n_domain, rec);
    case TOK_JSON_ERR_NOMEM:
        FAIL(r, PREP_READ_ERR_NOMEM, "%s: %s", r->path, tok_json_errmsg(r->json));
    case TOK_JSON_ERR_NO_TEXT:
        return reject(r, rec, PREP_REJECT_FIELD, "%s", tok_json_errmsg(r->json));
    case TOK_JSON_ERR_NO_DOMAIN:
        return reject(r, rec, PREP_REJECT_DOMAIN, "%s", tok_json_errmsg(r->json));
    default: /* not JSON, not an object, not strict */
        return reject(r, rec, PREP_REJECT_JSON, "%s", tok_json_errmsg(r->json));
    }
fail:
    return status;
}

/* ---- byte sources -------------------------------------------------------------------------- */

/* An error of libarchive as a status: only failures of the file itself are I/O errors. */
static int archive_status(struct archive *a) {
    int e = archive_errno(a);
    if (e == ENOMEM)
        return PREP_READ_ERR_NOMEM;
    if (e == EIO || e == EISDIR || e == EACCES || e == EBADF || e == ENOENT)
        return PREP_READ_ERR_IO;
    return PREP_READ_ERR_CORRUPT;
}

static const char *archive_msg(struct archive *a) {
    const char *m = archive_error_string(a);
    return m && *m ? m : "unknown libarchive error";
}

/* Copies up to n bytes of the current entry of a into dst (*got == 0 at its end). Block by
 * block: archive_read_data drops the bytes it has copied when a later block of the same call
 * fails, so a damaged stream would lose everything read in that call. Holes of a sparse entry
 * read as zeros. Returns ARCHIVE_OK or the failing status. */
static int la_read(struct archive *a, la_block *b, char *dst, size_t n, size_t *got) {
    *got = 0;
    while (b->n == 0 && !b->eof) {
        const void *p;
        size_t k;
        la_int64_t off;
        int st = archive_read_data_block(a, &p, &k, &off);
        if (st == ARCHIVE_EOF)
            b->eof = 1;
        else if (st != ARCHIVE_OK && st != ARCHIVE_WARN)
            return st;
        else if (k > 0) {
            b->p = p;
            b->n = k;
            b->off = off;
        }
    }
    if (b->n == 0)
        return ARCHIVE_OK;
    if (b->off > b->pos) {
        size_t z = (uint64_t)(b->off - b->pos) < n ? (size_t)(b->off - b->pos) : n;
        memset(dst, 0, z);
        b->pos += (la_int64_t)z;
        *got = z;
        return ARCHIVE_OK;
    }
    size_t k = b->n < n ? b->n : n;
    memcpy(dst, b->p, k);
    b->p += k;
    b->n -= k;
    b->off += (la_int64_t)k;
    b->pos = b->off;
    *got = k;
    return ARCHIVE_OK;
}

static void la_block_reset(la_block *b) {
    memset(b, 0, sizeof *b);
}

/* Reads up to n bytes of the current stream into dst; *got == 0 at its end. The stream offset
 * of dst[0] is r->buf_off + r->hi (named in errors). */
static int src_read(prep_reader *r, char *dst, size_t n, size_t *got) {
    int status = PREP_READ_OK;
    uint64_t at = r->buf_off + r->hi;
    *got = 0;
    if (r->src == SRC_FILE) {
        ssize_t k;
        do
            k = pread(r->fd, dst, n, (off_t)r->file_pos);
        while (k < 0 && errno == EINTR);
        if (k < 0)
            FAIL(r, PREP_READ_ERR_IO, "%s: offset %llu: read: %s", r->path, (ull)r->file_pos,
                 strerror(errno));
        r->file_pos += (uint64_t)k;
        *got = (size_t)k;
        return PREP_READ_OK;
    }
    struct archive *a = r->src == SRC_INNER ? r->inner : r->ar;
    if (la_read(a, r->src == SRC_INNER ? &r->inner_blk : &r->ar_blk, dst, n, got) != ARCHIVE_OK) {
        if (r->format == PREP_FMT_JSONL_COMP)
            FAIL(r, archive_status(a),
                 "%s: decompressed offset %llu (%llu compressed bytes read): %s", r->path, (ull)at,
                 (ull)archive_filter_bytes(a, -1), archive_msg(a));
        FAIL(r, archive_status(a), "%s: member %s: %soffset %llu: %s", r->path, r->member,
             r->src == SRC_INNER ? "decompressed " : "", (ull)at, archive_msg(a));
    }
fail:
    return status;
}

/* The inner stream's read callback: the next bytes of the outer member. */
static la_ssize_t inner_read(struct archive *inner, void *ud, const void **buf) {
    prep_reader *r = ud;
    size_t got;
    if (la_read(r->ar, &r->ar_blk, r->inner_buf, r->block_bytes, &got) != ARCHIVE_OK) {
        archive_set_error(inner, archive_errno(r->ar), "%s", archive_msg(r->ar));
        return -1;
    }
    *buf = r->inner_buf;
    return (la_ssize_t)got;
}

/* The decompression filters libarchive may use. Not archive_read_support_filter_all: some of
 * its bidders look 128 KiB ahead into the decompressed data (uu), so a stream damaged that early
 * would give no records at all, and some run external programs (lrzip, grzip, lzop) on
 * untrusted input. These bid on a few magic bytes and work in-process. */
static int support_filters(struct archive *a) {
    return archive_read_support_filter_gzip(a) == ARCHIVE_OK &&
           archive_read_support_filter_bzip2(a) == ARCHIVE_OK &&
           archive_read_support_filter_xz(a) == ARCHIVE_OK &&
           archive_read_support_filter_lzma(a) == ARCHIVE_OK &&
           archive_read_support_filter_zstd(a) == ARCHIVE_OK;
}

/* A libarchive reader of one compressed stream: "raw" format (or empty input). */
static struct archive *raw_reader_new(void) {
    struct archive *a = archive_read_new();
    if (a && (!support_filters(a) || archive_read_support_format_raw(a) != ARCHIVE_OK ||
              archive_read_support_format_empty(a) != ARCHIVE_OK)) {
        archive_read_free(a);
        return NULL;
    }
    return a;
}

/* After archive_read_open on a raw reader: positions it at its one entry. Returns OK, DONE for
 * an empty stream, or an error (what names the stream in messages). */
static int raw_reader_start(prep_reader *r, struct archive *a, const char *what) {
    int status = PREP_READ_OK;
    struct archive_entry *e;
    int st = archive_read_next_header(a, &e);
    if (st == ARCHIVE_EOF)
        return PREP_READ_DONE;
    if (st != ARCHIVE_OK && st != ARCHIVE_WARN)
        FAIL(r, archive_status(a), "%s: decompressed offset 0: %s", what, archive_msg(a));
    if (archive_filter_count(a) < 2) /* only the client pseudo-filter: nothing decompresses */
        FAIL(r, PREP_READ_ERR_CORRUPT,
             "%s: offset 0: not a compressed stream (the name says zst, gz, xz or bz2)", what);
fail:
    return status;
}

/* ---- the line window ----------------------------------------------------------------------- */

static void window_reset(prep_reader *r, uint64_t offset) {
    r->lo = r->hi = r->scan = 0;
    r->buf_off = offset;
    r->eof = 0;
}

/* Drops the consumed bytes, grows the window if a partial line fills it, reads one block. */
static int window_fill(prep_reader *r) {
    int status = PREP_READ_OK;
    if (r->lo > 0) {
        memmove(r->buf, r->buf + r->lo, r->hi - r->lo);
        r->buf_off += r->lo;
        r->hi -= r->lo;
        r->scan -= r->lo;
        r->lo = 0;
    }
    if (r->hi == r->cap) {
        /* a partial line of at most max_doc_bytes: room for max_doc_bytes + 1 decides it */
        size_t limit =
            r->max_doc_bytes + 1 > r->block_bytes ? (size_t)r->max_doc_bytes + 1 : r->block_bytes;
        size_t cap = r->cap < limit / 2 ? 2 * r->cap : limit;
        assert(r->cap < limit);
        if (grow(&r->buf, &r->cap, cap) != 0)
            FAIL(r, PREP_READ_ERR_NOMEM, "%s: out of memory for a line of %zu bytes", r->path, cap);
    }
    size_t want = r->cap - r->hi < r->block_bytes ? r->cap - r->hi : r->block_bytes, got;
    if ((status = src_read(r, r->buf + r->hi, want, &got)) != PREP_READ_OK)
        goto fail;
    r->hi += got;
    r->eof = got == 0;
fail:
    return status;
}

/* Reads past the rest of a line without keeping it (the window stays one block). *n_bytes gets
 * the whole line's length, *off its start. */
static int window_skip_line(prep_reader *r, uint64_t *off, uint64_t *n_bytes) {
    int status = PREP_READ_OK;
    *off = r->buf_off + r->lo;
    uint64_t n = r->hi - r->lo;
    for (;;) {
        r->buf_off += r->hi;
        r->lo = r->hi = r->scan = 0;
        size_t got;
        if ((status = src_read(r, r->buf, r->block_bytes, &got)) != PREP_READ_OK)
            goto fail;
        if (got == 0) {
            r->eof = 1;
            break;
        }
        r->hi = got;
        const char *nl = memchr(r->buf, '\n', got);
        if (nl) {
            n += (uint64_t)(nl - r->buf);
            r->lo = r->scan = (size_t)(nl - r->buf) + 1;
            break;
        }
        n += got;
    }
    *n_bytes = n;
fail:
    return status;
}

/* Skips to just after the first '\n' of the stream (a range's first line belongs to the range
 * before). Memory stays one block however long that line is. */
static int window_sync(prep_reader *r) {
    int status = PREP_READ_OK;
    for (;;) {
        const char *nl = r->hi > r->lo ? memchr(r->buf + r->lo, '\n', r->hi - r->lo) : NULL;
        if (nl) {
            r->lo = r->scan = (size_t)(nl - r->buf) + 1;
            return PREP_READ_OK;
        }
        r->buf_off += r->hi;
        r->lo = r->hi = r->scan = 0;
        size_t got;
        if ((status = src_read(r, r->buf, r->block_bytes, &got)) != PREP_READ_OK)
            goto fail;
        r->hi = got;
        if (got == 0) {
            r->eof = 1;
            return PREP_READ_OK;
        }
    }
fail:
    return status;
}

/* The next line of the stream: line[0, *n) without its '\n', at stream offset *off. A line
 * longer than max_doc_bytes is read past in blocks: *line is NULL and *too_long its length.
 * @return OK, DONE at the end of the stream (or of the range), or an error. */
static int line_next(prep_reader *r, const char **line, size_t *n, uint64_t *off,
                     uint64_t *too_long) {
    int status = PREP_READ_OK;
    *line = NULL;
    *n = 0;
    *too_long = 0;
    if (r->buf_off + r->lo >= r->limit) /* the next line starts outside the range */
        return PREP_READ_DONE;
    for (;;) {
        const char *nl = r->scan < r->hi ? memchr(r->buf + r->scan, '\n', r->hi - r->scan) : NULL;
        if (nl || (r->eof && r->lo < r->hi)) {
            size_t end = nl ? (size_t)(nl - r->buf) : r->hi;
            *off = r->buf_off + r->lo;
            if (end - r->lo > r->max_doc_bytes)
                *too_long = end - r->lo;
            else
                *line = r->buf + r->lo;
            *n = end - r->lo;
            r->lo = r->scan = nl ? end + 1 : end;
            return PREP_READ_OK;
        }
        r->scan = r->hi;
        if (r->eof)
            return PREP_READ_DONE;
        if (r->hi - r->lo > r->max_doc_bytes)
            return window_skip_line(r, off, too_long);
        if ((status = window_fill(r)) != PREP_READ_OK)
            goto fail;
    }
fail:
    return status;
}

/* The next jsonl record of the current stream; blank lines are not records. */
static int next_json_line(prep_reader *r, prep_record *rec) {
    for (;;) {
        const char *line;
        size_t n;
        uint64_t off = 0, too_long;
        int st = line_next(r, &line, &n, &off, &too_long);
        if (st != PREP_READ_OK)
            return st;
        if (too_long) {
            record_start(r, rec, off);
            return reject(r, rec, PREP_REJECT_TOO_LONG, "line of %llu bytes > max_doc_bytes %llu",
                          (ull)too_long, (ull)r->max_doc_bytes);
        }
        if (tok_json_is_blank(line, n))
            continue;
        record_start(r, rec, off);
        return json_record(r, line, n, off, rec);
    }
}

/* Reads the rest of the current stream as one document into buf[0, *n) (NUL after it). Past
 * max_doc_bytes it stops and sets *too_long; the rest stays unread. */
static int read_doc(prep_reader *r, uint64_t size_hint, size_t *n, int *too_long) {
    int status = PREP_READ_OK;
    window_reset(r, 0);
    *n = 0;
    *too_long = 0;
    if (size_hint >= r->cap && size_hint <= r->max_doc_bytes && /* + 1: room to see the end */
        grow(&r->buf, &r->cap, (size_t)size_hint + 1) != 0)
        FAIL(r, PREP_READ_ERR_NOMEM, "%s: out of memory for a document of %llu bytes", r->path,
             (ull)size_hint);
    for (;;) {
        if (r->hi > r->max_doc_bytes) {
            *too_long = 1;
            return PREP_READ_OK;
        }
        if (r->hi == r->cap) {
            size_t cap =
                r->cap < (size_t)r->max_doc_bytes / 2 ? 2 * r->cap : (size_t)r->max_doc_bytes + 1;
            if (grow(&r->buf, &r->cap, cap) != 0)
                FAIL(r, PREP_READ_ERR_NOMEM, "%s: out of memory for a document of %zu bytes",
                     r->path, cap);
        }
        size_t want = r->cap - r->hi < r->block_bytes ? r->cap - r->hi : r->block_bytes, got;
        if ((status = src_read(r, r->buf + r->hi, want, &got)) != PREP_READ_OK)
            goto fail;
        if (got == 0)
            break;
        r->hi += got;
    }
    r->buf[r->hi] = '\0';
    *n = r->hi;
fail:
    return status;
}

/* One whole document (a text file or an archive member) into rec. */
static int next_doc(prep_reader *r, uint64_t size_hint, int size_known, prep_record *rec) {
    record_start(r, rec, 0);
    if (size_known && size_hint > r->max_doc_bytes)
        return reject(r, rec, PREP_REJECT_TOO_LONG, "document of %llu bytes > max_doc_bytes %llu",
                      (ull)size_hint, (ull)r->max_doc_bytes);
    size_t n;
    int too_long;
    int st = read_doc(r, size_known ? size_hint : 0, &n, &too_long);
    if (st != PREP_READ_OK)
        return st;
    if (too_long)
        return reject(r, rec, PREP_REJECT_TOO_LONG, "document of more than %llu bytes",
                      (ull)r->max_doc_bytes);
    return text_record(r, r->buf, n, 0, rec);
}

/* ---- formats ------------------------------------------------------------------------------- */

static int next_jsonl(prep_reader *r, prep_record *rec) {
    if (!r->started) {
        r->started = 1;
        r->src = SRC_FILE;
        r->limit = r->end;
        r->file_pos = r->begin > 0 ? r->begin - 1 : 0;
        window_reset(r, r->file_pos);
        if (r->begin > 0) {
            int st = window_sync(r);
            if (st != PREP_READ_OK)
                return st;
        }
    }
    return next_json_line(r, rec);
}

/* The file's bytes from r->file_pos, for a run of frames (libarchive's fd reader starts at 0). */
static la_ssize_t file_read(struct archive *a, void *ud, const void **buf) {
    prep_reader *r = ud;
    ssize_t k;
    do
        k = pread(r->fd, r->inner_buf, r->block_bytes, (off_t)r->file_pos);
    while (k < 0 && errno == EINTR);
    if (k < 0) {
        archive_set_error(a, errno, "read at offset %llu: %s", (ull)r->file_pos, strerror(errno));
        return -1;
    }
    r->file_pos += (uint64_t)k;
    *buf = r->inner_buf;
    return (la_ssize_t)k;
}

/* Reads and drops the stream up to stream offset target. */
static int window_skip_to(prep_reader *r, uint64_t target) {
    int status = PREP_READ_OK;
    while (r->buf_off < target) {
        uint64_t left = target - r->buf_off;
        size_t want = left < r->block_bytes ? (size_t)left : r->block_bytes, got;
        r->lo = r->hi = r->scan = 0;
        if ((status = src_read(r, r->buf, want, &got)) != PREP_READ_OK)
            goto fail;
        if (got == 0)
            FAIL(r, PREP_READ_ERR_CORRUPT,
                 "%s: the stream ends at decompressed offset %llu, before %llu where the frame "
                 "headers say this unit starts",
                 r->path, (ull)r->buf_off, (ull)target + 1);
        r->buf_off += got;
    }
fail:
    return status;
}

static int next_jsonl_comp(prep_reader *r, prep_record *rec) {
    int status = PREP_READ_OK;
    if (!r->started) {
        r->started = 1;
        r->src = SRC_ARCHIVE;
        r->limit = r->z_range ? r->z_limit : UINT64_MAX;
        window_reset(r, r->z_stream_from);
        if (r->file_bytes == 0) /* zstd -t, gzip -t, xz -t, bzip2 -t: not an empty stream */
            FAIL(r, PREP_READ_ERR_CORRUPT,
                 "%s: offset 0: 0 bytes, truncated (a compressed "
                 "stream holds at least a header)",
                 r->path);
        if (!(r->ar = raw_reader_new()) ||
            (r->z_range && !r->inner_buf && !(r->inner_buf = malloc(r->block_bytes))))
            FAIL(r, PREP_READ_ERR_NOMEM, "%s: out of memory", r->path);
        r->file_pos = r->z_file_from;
        if ((r->z_range ? archive_read_open(r->ar, r, NULL, file_read, NULL)
                        : archive_read_open_fd(r->ar, r->fd, r->block_bytes)) != ARCHIVE_OK)
            FAIL(r, archive_status(r->ar), "%s: decompressed offset %llu: %s", r->path,
                 (ull)r->z_stream_from, archive_msg(r->ar));
        if ((status = raw_reader_start(r, r->ar, r->path)) != PREP_READ_OK)
            goto fail;
        if (r->z_sync && ((status = window_skip_to(r, r->z_sync_at)) != PREP_READ_OK ||
                          (status = window_sync(r)) != PREP_READ_OK))
            goto fail;
    }
    return next_json_line(r, rec);
fail:
    return status;
}

/* Opens the inner reader on the current member (a compressed jsonl). DONE: it is empty. */
static int member_open_inner(prep_reader *r) {
    int status = PREP_READ_OK;
    char what[MEMBER_BYTES + 4200];
    snprintf(what, sizeof what, "%s: member %s", r->path, r->member);
    if (!r->inner_buf && !(r->inner_buf = malloc(r->block_bytes)))
        FAIL(r, PREP_READ_ERR_NOMEM, "%s: out of memory", r->path);
    la_block_reset(&r->inner_blk);
    if (!(r->inner = raw_reader_new()))
        FAIL(r, PREP_READ_ERR_NOMEM, "%s: out of memory", r->path);
    if (archive_read_open(r->inner, r, NULL, inner_read, NULL) != ARCHIVE_OK)
        FAIL(r, archive_status(r->inner), "%s: decompressed offset 0: %s", what,
             archive_msg(r->inner));
    status = raw_reader_start(r, r->inner, what);
fail:
    return status;
}

static void member_close_inner(prep_reader *r) {
    if (r->inner)
        archive_read_free(r->inner);
    r->inner = NULL;
}

static int next_archive(prep_reader *r, prep_record *rec) {
    int status = PREP_READ_OK;
    if (!r->started) {
        r->started = 1;
        r->limit = UINT64_MAX;
        if (r->file_bytes == 0 && prep_name_is_compressed(r->path)) /* tar -tzf rejects it */
            FAIL(r, PREP_READ_ERR_CORRUPT,
                 "%s: offset 0: 0 bytes, truncated (a compressed "
                 "stream holds at least a header)",
                 r->path);
        if (!(r->ar = archive_read_new()) || !support_filters(r->ar) ||
            archive_read_support_format_all(r->ar) != ARCHIVE_OK)
            FAIL(r, PREP_READ_ERR_NOMEM, "%s: out of memory", r->path);
        if (archive_read_open_fd(r->ar, r->fd, r->block_bytes) != ARCHIVE_OK)
            FAIL(r, archive_status(r->ar), "%s: first member: archive offset 0: %s", r->path,
                 archive_msg(r->ar));
    }
    for (;;) {
        if (r->in_member) {
            status = next_json_line(r, rec);
            if (status != PREP_READ_DONE)
                return status;
            member_close_inner(r);
            r->in_member = 0;
            status = PREP_READ_OK;
        }
        struct archive_entry *e;
        int st = archive_read_next_header(r->ar, &e);
        if (st == ARCHIVE_EOF)
            return PREP_READ_DONE;
        if (st != ARCHIVE_OK && st != ARCHIVE_WARN) {
            if (r->has_member)
                FAIL(r, archive_status(r->ar),
                     "%s: member after %s: archive offset %llu (%llu file bytes read): %s", r->path,
                     r->member, (ull)archive_filter_bytes(r->ar, 0),
                     (ull)archive_filter_bytes(r->ar, -1), archive_msg(r->ar));
            FAIL(r, archive_status(r->ar), "%s: first member: archive offset %llu: %s", r->path,
                 (ull)archive_filter_bytes(r->ar, 0), archive_msg(r->ar));
        }
        if (archive_entry_filetype(e) != AE_IFREG || archive_entry_hardlink(e))
            continue; /* a hard link repeats a member read before */
        const char *name = archive_entry_pathname_utf8(e);
        if (!name)
            name = archive_entry_pathname(e);
        snprintf(r->member, sizeof r->member, "%s", name ? name : "?");
        la_block_reset(&r->ar_blk);
        r->has_member = 1;
        r->src = SRC_ARCHIVE;
        window_reset(r, 0);
        prep_format f = prep_format_from_name(r->member);
        if (f == PREP_FMT_JSONL) {
            r->in_member = 1;
        } else if (f == PREP_FMT_JSONL_COMP) {
            status = member_open_inner(r);
            if (status == PREP_READ_DONE) { /* an empty compressed member */
                member_close_inner(r);
                status = PREP_READ_OK;
                continue;
            }
            if (status != PREP_READ_OK)
                goto fail;
            r->src = SRC_INNER;
            r->in_member = 1;
        } else {
            int known = archive_entry_size_is_set(e) && archive_entry_size(e) >= 0;
            return next_doc(r, known ? (uint64_t)archive_entry_size(e) : 0, known, rec);
        }
    }
fail:
    return status;
}

static int next_text(prep_reader *r, prep_record *rec) {
    if (r->started)
        return PREP_READ_DONE;
    r->started = 1;
    r->src = SRC_FILE;
    r->file_pos = 0;
    return next_doc(r, r->file_bytes, 1, rec);
}

/* ---- the reader ---------------------------------------------------------------------------- */

/* A unit of frames: where to start decoding, and the stream offsets its lines start in. The
 * byte before the unit's first frame may sit in any earlier frame (frames may be empty). */
static int frame_range(prep_reader *r, const prep_input *in, const prep_unit *u) {
    const uint64_t *f = in->frames; /* (n_frames, 2) */
    size_t n = in->n_frames, a = n, b = n;
    for (size_t i = 0; i < n; i++) {
        if (f[2 * i] == u->begin)
            a = i;
        if (f[2 * i] == u->end)
            b = i;
    }
    if (u->begin == 0)
        a = 0;
    if (!f || a == n || (b == n && u->end != in->bytes) || a >= b)
        return -1;
    r->z_range = 1;
    r->z_limit = b < n ? f[2 * b + 1] : UINT64_MAX;
    if (a == 0 || f[2 * a + 1] == 0)
        return 0; /* from the start of the stream */
    size_t k = a - 1;
    while (f[2 * k + 1] >= f[2 * a + 1]) /* an empty frame holds no byte */
        k--;
    r->z_file_from = f[2 * k];
    r->z_stream_from = f[2 * k + 1];
    r->z_sync = 1;
    r->z_sync_at = f[2 * a + 1] - 1;
    return 0;
}

int prep_reader_open(const prep_input *in, const prep_unit *u, const prep_read_opts *opts,
                     prep_reader **out) {
    int status = PREP_READ_OK;
    if (!out)
        return PREP_READ_ERR_ARG;
    prep_reader *r = calloc(1, sizeof *r);
    *out = r;
    if (!r)
        return PREP_READ_ERR_NOMEM;
    r->fd = -1;
    if (!in || !in->path || !u || !opts)
        FAIL(r, PREP_READ_ERR_ARG, "prep_reader_open: missing argument");
    snprintf(r->path, sizeof r->path, "%s", in->path);
    r->format = in->format;
    r->utf8 = opts->utf8;
    r->max_doc_bytes = opts->max_doc_bytes;
    r->block_bytes = opts->block_bytes ? (size_t)opts->block_bytes : READ_BLOCK_BYTES;
    if (r->max_doc_bytes == 0 || r->max_doc_bytes > MAX_DOC_LIMIT ||
        opts->block_bytes > MAX_BLOCK_BYTES ||
        (opts->utf8 != PREP_UTF8_REPLACE && opts->utf8 != PREP_UTF8_REJECT))
        FAIL(r, PREP_READ_ERR_ARG,
             "%s: max_doc_bytes %llu (1..%u), block_bytes %llu or utf8 "
             "policy %d invalid",
             r->path, (ull)opts->max_doc_bytes, (unsigned)MAX_DOC_LIMIT, (ull)opts->block_bytes,
             (int)opts->utf8);
    if (in->format < PREP_FMT_JSONL || in->format > PREP_FMT_TEXT)
        FAIL(r, PREP_READ_ERR_ARG, "%s: unknown format %d", r->path, (int)in->format);
    int frames = in->format == PREP_FMT_JSONL_COMP && (u->begin != 0 || u->end != in->bytes);
    if (u->begin > u->end || (in->format != PREP_FMT_JSONL && u->begin != 0 && !frames) ||
        (frames && frame_range(r, in, u) != 0))
        FAIL(r, PREP_READ_ERR_ARG, "%s: unit [%llu, %llu) is not a range of this file", r->path,
             (ull)u->begin, (ull)u->end);
    r->begin = u->begin;
    r->end = u->end;

    unsigned jflags = opts->json_c_only ? TOK_JSON_JSONC_ONLY : 0;
    int jst = tok_json_create(opts->text_path, opts->domain_path, jflags, &r->json);
    if (jst == TOK_JSON_ERR_NOMEM)
        FAIL(r, PREP_READ_ERR_NOMEM, "%s: out of memory", r->path);
    if (jst != TOK_JSON_OK)
        FAIL(r, PREP_READ_ERR_ARG,
             "text path '%s' or domain path '%s' is not a dot path of 1..%d "
             "keys",
             opts->text_path ? opts->text_path : "", opts->domain_path ? opts->domain_path : "",
             TOK_JSON_MAX_KEYS);

    r->cap = r->block_bytes;
    if (!(r->buf = malloc(r->cap + 1)))
        FAIL(r, PREP_READ_ERR_NOMEM, "%s: out of memory", r->path);
    r->fd = open(r->path, O_RDONLY | O_CLOEXEC);
    if (r->fd < 0)
        FAIL(r, PREP_READ_ERR_IO, "%s: cannot open: %s", r->path, strerror(errno));
    struct stat sb;
    if (fstat(r->fd, &sb) != 0)
        FAIL(r, PREP_READ_ERR_IO, "%s: stat: %s", r->path, strerror(errno));
    if (!S_ISREG(sb.st_mode))
        FAIL(r, PREP_READ_ERR_IO, "%s: not a regular file", r->path);
    r->file_bytes = (uint64_t)sb.st_size;
    (void)posix_fadvise(r->fd, (off_t)r->begin, 0, POSIX_FADV_SEQUENTIAL);
    return PREP_READ_OK;
fail:
    r->status = status;
    return status;
}

int prep_reader_next(prep_reader *r, prep_record *rec) {
    if (!r || !rec)
        return PREP_READ_ERR_ARG;
    if (r->status != PREP_READ_OK)
        return r->status;
    memset(rec, 0, sizeof *rec);
    int st;
    switch (r->format) {
    case PREP_FMT_JSONL:
        st = next_jsonl(r, rec);
        break;
    case PREP_FMT_JSONL_COMP:
        st = next_jsonl_comp(r, rec);
        break;
    case PREP_FMT_ARCHIVE:
        st = next_archive(r, rec);
        break;
    default:
        st = next_text(r, rec);
        break;
    }
    if (st != PREP_READ_OK) {
        r->status = st;
        memset(rec, 0, sizeof *rec);
    }
    return st;
}

const char *prep_reader_errmsg(const prep_reader *r) {
    return r ? r->errmsg : "out of memory";
}

void prep_reader_free(prep_reader *r) {
    if (!r)
        return;
    tok_json_free(r->json);
    if (r->inner)
        archive_read_free(r->inner);
    if (r->ar)
        archive_read_free(r->ar);
    if (r->fd >= 0)
        close(r->fd);
    free(r->inner_buf);
    free(r->buf);
    free(r->out);
    free(r->dom);
    free(r);
}
