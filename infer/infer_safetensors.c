/* infer_safetensors.c - the safetensors header: u64 little-endian N, N bytes of JSON
 * {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}, then the data
 * (offsets relative to the byte after the header). Everything is checked before a byte of data
 * is trusted: sizes against shapes and dtypes, offsets inside the file, no overlaps. */
#include "infer_internal.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_HEADER_BYTES (100u << 20) /* the format's own limit */

struct infer_st {
    infer_tensor_info *t; /* (n) sorted by data offset */
    size_t n;
    char errmsg[512];
};

static int st_fail(infer_st *s, int st, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int st_fail(infer_st *s, int st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->errmsg, sizeof s->errmsg, fmt, ap);
    va_end(ap);
    return st;
}

static int dtype_of(const char *s, int *bytes) {
    static const struct {
        const char *name;
        int dtype, bytes;
    } T[] = {{"F32", INFER_DT_F32, 4}, {"BF16", INFER_DT_BF16, 2}, {"F16", INFER_DT_F16, 2}};
    for (size_t i = 0; i < sizeof T / sizeof T[0]; i++)
        if (!strcmp(s, T[i].name)) {
            *bytes = T[i].bytes;
            return T[i].dtype;
        }
    return -1;
}

static int cmp_offset(const void *a, const void *b) {
    const infer_tensor_info *x = a, *y = b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

int infer_st_parse(const uint8_t *head, size_t n_head, uint64_t file_bytes, const char *path,
                   infer_st **out) {
    *out = NULL;
    infer_st *s = calloc(1, sizeof *s);
    if (!s)
        return INFER_ERR_NOMEM;
    *out = s;
    uint64_t n;
    if (n_head < 8)
        return st_fail(s, INFER_ERR_FORMAT, "%s: offset 0: shorter than the 8-byte header size",
                       path);
    memcpy(&n, head, 8);
    if (n < 2 || n > MAX_HEADER_BYTES || n > file_bytes - 8 || n > n_head - 8)
        return st_fail(s, INFER_ERR_FORMAT,
                       "%s: offset 0: header size %llu impossible in a file of %llu bytes", path,
                       (unsigned long long)n, (unsigned long long)file_bytes);
    const uint64_t data0 = 8 + n, data_bytes = file_bytes - data0;
    json_tokener *tk = json_tokener_new();
    if (!tk)
        return st_fail(s, INFER_ERR_NOMEM, "out of memory");
    json_object *root = json_tokener_parse_ex(tk, (const char *)head + 8, (int)n);
    enum json_tokener_error e = json_tokener_get_error(tk);
    size_t at = json_tokener_get_parse_end(tk);
    json_tokener_free(tk);
    int st = INFER_OK;
    if (!root || e != json_tokener_success || !json_object_is_type(root, json_type_object)) {
        st = st_fail(s, INFER_ERR_FORMAT, "%s: offset %zu: header is not a JSON object (%s)", path,
                     8 + at, root ? "not an object" : json_tokener_error_desc(e));
        goto done;
    }
    size_t cap = (size_t)json_object_object_length(root);
    s->t = calloc(cap ? cap : 1, sizeof *s->t);
    if (!s->t) {
        st = st_fail(s, INFER_ERR_NOMEM, "out of memory");
        goto done;
    }
    json_object_object_foreach(root, name, v) {
        if (!strcmp(name, "__metadata__"))
            continue;
        json_object *dt, *shape, *offs;
        int bytes = 0, dtype = -1;
        if (!json_object_is_type(v, json_type_object) ||
            !json_object_object_get_ex(v, "dtype", &dt) ||
            !json_object_object_get_ex(v, "shape", &shape) ||
            !json_object_object_get_ex(v, "data_offsets", &offs) ||
            !json_object_is_type(dt, json_type_string) ||
            !json_object_is_type(shape, json_type_array) ||
            !json_object_is_type(offs, json_type_array) || json_object_array_length(offs) != 2) {
            st = st_fail(s, INFER_ERR_FORMAT,
                         "%s: tensor \"%.100s\": needs dtype, shape and data_offsets [begin, end]",
                         path, name);
            goto done;
        }
        dtype = dtype_of(json_object_get_string(dt), &bytes);
        if (dtype < 0) {
            st = st_fail(s, INFER_ERR_FORMAT,
                         "%s: tensor \"%.100s\": dtype %s is not supported "
                         "(F32, BF16, F16)",
                         path, name, json_object_get_string(dt));
            goto done;
        }
        infer_tensor_info *t = &s->t[s->n];
        memset(t, 0, sizeof *t);
        if (strlen(name) >= sizeof t->name) {
            st = st_fail(s, INFER_ERR_FORMAT, "%s: tensor name of %zu bytes is too long", path,
                         strlen(name));
            goto done;
        }
        snprintf(t->name, sizeof t->name, "%s", name);
        t->dtype = dtype;
        size_t nd = json_object_array_length(shape);
        if (nd > INFER_MAX_DIMS) {
            st = st_fail(s, INFER_ERR_FORMAT, "%s: tensor \"%s\": %zu dimensions", path, name, nd);
            goto done;
        }
        t->n_dims = (int)nd;
        uint64_t numel = 1;
        for (size_t k = 0; k < nd; k++) {
            json_object *d = json_object_array_get_idx(shape, k);
            int64_t x = json_object_get_int64(d);
            if (!json_object_is_type(d, json_type_int) || x < 0 ||
                (x > 0 && numel > (UINT64_MAX / 8) / (uint64_t)x)) {
                st = st_fail(s, INFER_ERR_FORMAT, "%s: tensor \"%s\": bad shape", path, name);
                goto done;
            }
            t->shape[k] = x;
            numel *= (uint64_t)x;
        }
        json_object *b0 = json_object_array_get_idx(offs, 0),
                    *b1 = json_object_array_get_idx(offs, 1);
        int64_t begin = json_object_get_int64(b0), end = json_object_get_int64(b1);
        if (!json_object_is_type(b0, json_type_int) || !json_object_is_type(b1, json_type_int) ||
            begin < 0 || end < begin || (uint64_t)end > data_bytes) {
            st = st_fail(s, INFER_ERR_FORMAT,
                         "%s: tensor \"%s\": data_offsets [%lld, %lld] "
                         "outside the %llu data bytes",
                         path, name, (long long)begin, (long long)end,
                         (unsigned long long)data_bytes);
            goto done;
        }
        if ((uint64_t)(end - begin) != numel * (uint64_t)bytes) {
            st = st_fail(s, INFER_ERR_FORMAT,
                         "%s: tensor \"%s\": %lld bytes for %llu elements of "
                         "%d bytes",
                         path, name, (long long)(end - begin), (unsigned long long)numel, bytes);
            goto done;
        }
        t->offset = data0 + (uint64_t)begin;
        t->bytes = (uint64_t)(end - begin);
        s->n++;
    }
    qsort(s->t, s->n, sizeof *s->t, cmp_offset);
    for (size_t i = 1; i < s->n; i++)
        if (s->t[i].offset < s->t[i - 1].offset + s->t[i - 1].bytes) {
            st = st_fail(s, INFER_ERR_FORMAT, "%s: tensors \"%s\" and \"%s\" overlap", path,
                         s->t[i - 1].name, s->t[i].name);
            goto done;
        }
done:
    json_object_put(root);
    return st;
}

int infer_st_open(const char *path, infer_st **out) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        infer_st *s = calloc(1, sizeof *s);
        *out = s;
        return s ? st_fail(s, INFER_ERR_IO, "%s: cannot open: %s", path, strerror(errno))
                 : INFER_ERR_NOMEM;
    }
    struct stat sb;
    uint8_t first[8];
    uint64_t n = 0;
    int ok = fstat(fileno(f), &sb) == 0 && fread(first, 1, 8, f) == 8;
    if (ok)
        memcpy(&n, first, 8);
    uint64_t want = ok && n <= MAX_HEADER_BYTES ? 8 + n : 8;
    uint8_t *head = malloc(want);
    size_t got = 0;
    if (head) {
        memcpy(head, first, ok ? 8 : 0);
        got = ok ? 8 + fread(head + 8, 1, want - 8, f) : 0;
    }
    fclose(f);
    int st = head ? infer_st_parse(head, got, ok ? (uint64_t)sb.st_size : 0, path, out)
                  : INFER_ERR_NOMEM;
    free(head);
    return st;
}

void infer_st_free(infer_st *s) {
    if (!s)
        return;
    free(s->t);
    free(s);
}

const char *infer_st_errmsg(const infer_st *s) {
    return s ? s->errmsg : "out of memory";
}

size_t infer_st_count(const infer_st *s) {
    return s->n;
}

const infer_tensor_info *infer_st_tensor(const infer_st *s, size_t i) {
    return i < s->n ? &s->t[i] : NULL;
}

const infer_tensor_info *infer_st_find(const infer_st *s, const char *name) {
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->t[i].name, name))
            return &s->t[i];
    return NULL;
}
