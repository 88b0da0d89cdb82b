/* prep_inputs.c - the inputs of the read stage of prep: files found below the given paths and
 * classified by name, the zstd frames of large .zst files, and the work units they are cut
 * into (prep_read.h). No record is read here. */
#include "prep_read.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SCAN_MAX_DEPTH 128 /* directory levels prep_inputs_scan descends */

/* ---- formats by name ----------------------------------------------------------------------- */

static int ends_with(const char *s, size_t n, const char *suffix) {
    size_t k = strlen(suffix);
    if (k > n)
        return 0;
    for (size_t i = 0; i < k; i++) {
        unsigned char c = (unsigned char)s[n - k + i];
        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c - 'A' + 'a');
        if (c != (unsigned char)suffix[i])
            return 0;
    }
    return 1;
}

static int is_jsonl_name(const char *s, size_t n) {
    return ends_with(s, n, ".jsonl") || ends_with(s, n, ".json");
}

int prep_name_is_compressed(const char *name) {
    static const char *const compressed[] = {".gz",  ".tgz", ".zst",  ".tzst", ".xz",
                                             ".txz", ".bz2", ".tbz2", ".tbz"};
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof compressed / sizeof *compressed; i++)
        if (ends_with(name, n, compressed[i]))
            return 1;
    return 0;
}

prep_format prep_format_from_name(const char *name) {
    static const char *const archives[] = {".tar",  ".tar.gz", ".tgz", ".tar.zst",
                                           ".tzst", ".tar.xz", ".txz", ".tar.bz2",
                                           ".tbz2", ".tbz",    ".zip", ".7z"};
    static const char *const filters[] = {".zst", ".gz", ".xz", ".bz2"};
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof archives / sizeof *archives; i++)
        if (ends_with(name, n, archives[i]))
            return PREP_FMT_ARCHIVE;
    if (is_jsonl_name(name, n))
        return PREP_FMT_JSONL;
    for (size_t i = 0; i < sizeof filters / sizeof *filters; i++)
        if (ends_with(name, n, filters[i]) && is_jsonl_name(name, n - strlen(filters[i])))
            return PREP_FMT_JSONL_COMP;
    return PREP_FMT_TEXT;
}

/* ---- inputs -------------------------------------------------------------------------------- */

typedef struct {
    prep_input *v; /* (cap) */
    size_t n, cap;
    char *err;
    size_t err_bytes;
} input_list;

#define SCAN_FAIL(l, st, ...)                                                                      \
    do {                                                                                           \
        prep_read_errf((l)->err, (l)->err_bytes, __VA_ARGS__);                                     \
        status = (st);                                                                             \
        goto fail;                                                                                 \
    } while (0)

static int list_add(input_list *l, const char *path, uint64_t bytes) {
    int status = PREP_READ_OK;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        prep_input *v = realloc(l->v, cap * sizeof *v);
        if (!v)
            SCAN_FAIL(l, PREP_READ_ERR_NOMEM, "out of memory for %zu inputs", cap);
        l->v = v;
        l->cap = cap;
    }
    char *copy = malloc(strlen(path) + 1);
    if (!copy)
        SCAN_FAIL(l, PREP_READ_ERR_NOMEM, "out of memory");
    strcpy(copy, path);
    l->v[l->n].path = copy;
    l->v[l->n].bytes = bytes;
    l->v[l->n].format = prep_format_from_name(path);
    l->v[l->n].frames = NULL;
    l->v[l->n].n_frames = 0;
    l->n++;
fail:
    return status;
}

static int scan_dir(input_list *l, const char *dir, int depth) {
    int status = PREP_READ_OK;
    char *child = NULL;
    DIR *d = NULL;
    if (depth > SCAN_MAX_DEPTH)
        SCAN_FAIL(l, PREP_READ_ERR_IO, "%s: more than %d directory levels", dir, SCAN_MAX_DEPTH);
    d = opendir(dir);
    if (!d)
        SCAN_FAIL(l, PREP_READ_ERR_IO, "%s: cannot open directory: %s", dir, strerror(errno));
    size_t n_dir = strlen(dir);
    while (n_dir > 1 && dir[n_dir - 1] == '/')
        n_dir--;
    for (;;) {
        errno = 0;
        struct dirent *e = readdir(d);
        if (!e) {
            if (errno != 0)
                SCAN_FAIL(l, PREP_READ_ERR_IO, "%s: readdir: %s", dir, strerror(errno));
            break;
        }
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        free(child);
        size_t n_child = n_dir + 1 + strlen(e->d_name) + 1;
        child = malloc(n_child);
        if (!child)
            SCAN_FAIL(l, PREP_READ_ERR_NOMEM, "out of memory");
        snprintf(child, n_child, "%.*s%s%s", (int)n_dir, dir,
                 n_dir > 0 && dir[n_dir - 1] == '/' ? "" : "/", e->d_name);
        struct stat sb;
        if (lstat(child, &sb) != 0)
            SCAN_FAIL(l, PREP_READ_ERR_IO, "%s: %s", child, strerror(errno));
        if (S_ISDIR(sb.st_mode)) {
            if ((status = scan_dir(l, child, depth + 1)) != PREP_READ_OK)
                goto fail;
        } else if (S_ISLNK(sb.st_mode)) {
            /* a link to a file counts; links to directories are not followed (no cycles) and
             * dangling links are ignored */
            if (stat(child, &sb) == 0 && S_ISREG(sb.st_mode) &&
                (status = list_add(l, child, (uint64_t)sb.st_size)) != PREP_READ_OK)
                goto fail;
        } else if (S_ISREG(sb.st_mode)) {
            if ((status = list_add(l, child, (uint64_t)sb.st_size)) != PREP_READ_OK)
                goto fail;
        }
    }
fail:
    free(child);
    if (d)
        closedir(d);
    return status;
}

static int cmp_input(const void *a, const void *b) {
    return strcmp(((const prep_input *)a)->path, ((const prep_input *)b)->path);
}

int prep_inputs_scan(char *const *paths, int n_paths, prep_input **out, size_t *n_out, char *err,
                     size_t err_bytes) {
    int status = PREP_READ_OK;
    input_list l = {NULL, 0, 0, err, err_bytes};
    prep_read_errf(err, err_bytes, "%s", "");
    if (out)
        *out = NULL;
    if (n_out)
        *n_out = 0;
    if (!out || !n_out || n_paths < 0 || (n_paths > 0 && !paths))
        SCAN_FAIL(&l, PREP_READ_ERR_ARG, "prep_inputs_scan: invalid arguments");
    for (int i = 0; i < n_paths; i++) {
        struct stat sb;
        if (!paths[i] || stat(paths[i], &sb) != 0)
            SCAN_FAIL(&l, PREP_READ_ERR_IO, "%s: %s", paths[i] ? paths[i] : "(null)",
                      strerror(paths[i] ? errno : EINVAL));
        if (S_ISDIR(sb.st_mode))
            status = scan_dir(&l, paths[i], 0);
        else if (S_ISREG(sb.st_mode))
            status = list_add(&l, paths[i], (uint64_t)sb.st_size);
        else
            SCAN_FAIL(&l, PREP_READ_ERR_IO, "%s: not a regular file or a directory", paths[i]);
        if (status != PREP_READ_OK)
            goto fail;
    }
    if (l.n > 1)
        qsort(l.v, l.n, sizeof *l.v, cmp_input);
    size_t k = 0; /* a file named twice (a folder and a file in it) is read once */
    for (size_t i = 0; i < l.n; i++) {
        if (k > 0 && strcmp(l.v[k - 1].path, l.v[i].path) == 0)
            free(l.v[i].path);
        else
            l.v[k++] = l.v[i];
    }
    l.n = k;
    if (!l.v && !(l.v = malloc(sizeof *l.v))) /* never NULL on success */
        SCAN_FAIL(&l, PREP_READ_ERR_NOMEM, "out of memory");
    *out = l.v;
    *n_out = l.n;
    return PREP_READ_OK;
fail:
    prep_inputs_free(l.v, l.n);
    return status;
}

void prep_inputs_free(prep_input *in, size_t n) {
    if (!in)
        return;
    for (size_t i = 0; i < n; i++) {
        free(in[i].path);
        free(in[i].frames);
    }
    free(in);
}

/* ---- zstd frames --------------------------------------------------------------------------- */

#define ZSTD_FRAME_MAGIC     0xFD2FB528u
#define ZSTD_SKIPPABLE_MAGIC 0x184D2A50u /* the low 4 bits are free */

static int pread_exact(int fd, void *buf, size_t n, uint64_t off) {
    size_t got = 0;
    while (got < n) {
        ssize_t k = pread(fd, (char *)buf + got, n - got, (off_t)(off + got));
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        got += (size_t)k;
    }
    return 0;
}

static uint64_t get_le(const unsigned char *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* Walks the frames of a zstd file of `bytes` bytes (RFC 8878: frame header, 3-byte block
 * headers, optional checksum; skippable frames). Returns the number of data frames with their
 * offsets in *out (malloc'd, (n, 2)), 0 if the file cannot be cut (see prep_read.h), -1 out of
 * memory. */
static long zstd_frames(int fd, uint64_t bytes, uint64_t **out) {
    uint64_t *v = NULL, off = 0, dec = 0;
    size_t n = 0, cap = 0;
    *out = NULL;
    while (off < bytes) {
        unsigned char h[18];
        if (bytes - off < 8 || pread_exact(fd, h, 8, off) != 0)
            goto whole;
        uint32_t magic = (uint32_t)get_le(h, 4);
        if ((magic & 0xFFFFFFF0u) == ZSTD_SKIPPABLE_MAGIC) {
            off += 8 + get_le(h + 4, 4);
            continue;
        }
        if (magic != ZSTD_FRAME_MAGIC)
            goto whole;
        unsigned fhd = h[4], fcs_flag = fhd >> 6, single = fhd >> 5 & 1u;
        static const unsigned did_bytes[4] = {0, 1, 2, 4};
        unsigned fcs_bytes = fcs_flag ? 1u << fcs_flag : single;
        unsigned at = 5 + !single + did_bytes[fhd & 3u], hdr = at + fcs_bytes;
        if ((fhd & 0x08u) || fcs_bytes == 0 || bytes - off < hdr + 3 ||
            pread_exact(fd, h, hdr, off) != 0)
            goto whole; /* a reserved bit, or no content size: where lines fall is unknown */
        uint64_t size = get_le(h + at, (int)fcs_bytes) + (fcs_bytes == 2 ? 256 : 0);
        if (size > UINT64_MAX - dec)
            goto whole;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            uint64_t *p = realloc(v, cap * 2 * sizeof *v);
            if (!p) {
                free(v);
                return -1;
            }
            v = p;
        }
        v[2 * n] = off;
        v[2 * n + 1] = dec;
        n++;
        dec += size;
        uint64_t b = off + hdr;
        for (;;) {
            unsigned char bh[3];
            if (bytes - b < 3 || pread_exact(fd, bh, 3, b) != 0)
                goto whole;
            uint32_t x = (uint32_t)get_le(bh, 3), type = x >> 1 & 3u;
            if (type == 3)
                goto whole;
            uint64_t skip = type == 1 ? 1 : x >> 3; /* an RLE block holds one byte */
            if (bytes - b - 3 < skip)
                goto whole;
            b += 3 + skip;
            if (x & 1u)
                break;
        }
        off = b + (fhd & 0x04u ? 4 : 0); /* content checksum */
    }
    if (off != bytes || n < 2)
        goto whole;
    *out = v;
    return (long)n;
whole:
    free(v);
    return 0;
}

int prep_inputs_find_frames(prep_input *in, size_t n_in, uint64_t min_bytes, char *err,
                            size_t err_bytes) {
    for (size_t i = 0; i < n_in; i++) {
        if (in[i].format != PREP_FMT_JSONL_COMP || in[i].bytes <= min_bytes || in[i].frames)
            continue;
        int fd = open(in[i].path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue; /* the read stage names the error */
        uint64_t *f;
        long n = zstd_frames(fd, in[i].bytes, &f);
        close(fd);
        if (n < 0) {
            prep_read_errf(err, err_bytes, "%s: out of memory for its zstd frames", in[i].path);
            return PREP_READ_ERR_NOMEM;
        }
        in[i].frames = f;
        in[i].n_frames = (size_t)n;
    }
    return PREP_READ_OK;
}

/* ---- units --------------------------------------------------------------------------------- */

int prep_units_make(const prep_input *in, size_t n_in, uint64_t unit_bytes, prep_unit **out,
                    size_t *n_out) {
    if (!out || !n_out)
        return PREP_READ_ERR_ARG;
    *out = NULL;
    *n_out = 0;
    if (unit_bytes == 0 || (n_in > 0 && !in) || n_in > UINT32_MAX)
        return PREP_READ_ERR_ARG;
    uint64_t n = 0;
    for (size_t i = 0; i < n_in; i++) {
        uint64_t k = 1;
        if (in[i].format == PREP_FMT_JSONL && in[i].bytes > unit_bytes)
            k = in[i].bytes / unit_bytes + (in[i].bytes % unit_bytes != 0);
        else if (in[i].n_frames > 1 && in[i].bytes > unit_bytes)
            k = in[i].n_frames; /* at most */
        if (k > SIZE_MAX / sizeof(prep_unit) - n)
            return PREP_READ_ERR_NOMEM;
        n += k;
    }
    prep_unit *u = malloc((n ? n : 1) * sizeof *u);
    if (!u)
        return PREP_READ_ERR_NOMEM;
    size_t j = 0;
    for (size_t i = 0; i < n_in; i++) {
        if (in[i].format == PREP_FMT_JSONL && in[i].bytes > unit_bytes) {
            for (uint64_t b = 0; b < in[i].bytes; b += unit_bytes) {
                u[j].input = (uint32_t)i;
                u[j].begin = b;
                u[j].end = in[i].bytes - b > unit_bytes ? b + unit_bytes : in[i].bytes;
                j++;
            }
        } else if (in[i].n_frames > 1 && in[i].bytes > unit_bytes) {
            u[j].input = (uint32_t)i;
            u[j].begin = 0;
            for (size_t f = 1; f < in[i].n_frames; f++)
                if (in[i].frames[2 * f] - u[j].begin >= unit_bytes) {
                    u[j].end = in[i].frames[2 * f];
                    u[++j].input = (uint32_t)i;
                    u[j].begin = in[i].frames[2 * f];
                }
            u[j++].end = in[i].bytes;
        } else {
            u[j].input = (uint32_t)i;
            u[j].begin = 0;
            u[j].end = in[i].bytes;
            j++;
        }
    }
    assert(j <= n);
    *out = u;
    *n_out = j;
    return PREP_READ_OK;
}
