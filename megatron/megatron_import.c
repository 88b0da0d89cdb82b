/* megatron_import.c - a Megatron dataset (PREFIX.bin/.idx) into one shard. No MPI: the .idx is
 * checked whole (header, sizes, document_indices, every sequence inside .bin), then every
 * sequence is appended with its Megatron document starts, so that export is its inverse. */
#include "megatron.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

typedef unsigned long long ull;

megatron_import_opts megatron_import_opts_default(void) {
    megatron_import_opts o = {0, 3, 1u << 20};
    return o;
}

typedef struct {
    const uint8_t *p;
    size_t n;
} mapping;

static int map_file(const char *path, mapping *m, char *err, size_t err_bytes) {
    m->p = NULL;
    m->n = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, err_bytes, "%s: cannot open: %s", path, strerror(errno));
        return SHARD_ERR_IO;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        snprintf(err, err_bytes, "%s: stat: %s", path, strerror(errno));
        close(fd);
        return SHARD_ERR_IO;
    }
    m->n = (size_t)sb.st_size;
    if (m->n > 0) {
        void *p = mmap(NULL, m->n, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            snprintf(err, err_bytes, "%s: mmap: %s", path, strerror(errno));
            close(fd);
            return SHARD_ERR_IO;
        }
        m->p = p;
    }
    close(fd);
    return SHARD_OK;
}

static void unmap_file(mapping *m) {
    if (m->p)
        munmap((void *)m->p, m->n);
}

static uint64_t rd64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* The dataset as mapped, with its header fields and array views. */
typedef struct {
    char path_bin[4200], path_idx[4200];
    mapping mi, mb;
    int dtype;
    uint64_t item; /* bytes per token in .bin */
    uint64_t N, D; /* sequences, document_indices entries */
    const uint8_t *len_p, *ptr_p, *doc_p;
} dataset;

/* Header, sizes and document_indices (non-decreasing values in [0, N], the last equal to N). */
static int check_idx(dataset *s, char *err, size_t err_bytes) {
    const mapping *mi = &s->mi;
    if (mi->n < MEGATRON_HEADER_BYTES || memcmp(mi->p, MEGATRON_MAGIC, 9) != 0 ||
        rd64(mi->p + 9) != 1) {
        snprintf(err, err_bytes, "%s: offset 0: not a Megatron MMIDIDX version 1 index",
                 s->path_idx);
        return SHARD_ERR_CORRUPT;
    }
    s->dtype = mi->p[17];
    s->N = rd64(mi->p + 18);
    s->D = rd64(mi->p + 26);
    if (s->dtype != MEGATRON_DTYPE_UINT16 && s->dtype != MEGATRON_DTYPE_INT32) {
        snprintf(err, err_bytes,
                 "%s: offset 17: dtype code %d is not a token dtype longctx imports (8 uint16, "
                 "4 int32)",
                 s->path_idx, s->dtype);
        return SHARD_ERR_CORRUPT;
    }
    const uint64_t N = s->N, D = s->D;
    if (N > mi->n / 12 || D == 0 || D > mi->n / 8 ||
        mi->n != MEGATRON_HEADER_BYTES + 12 * N + 8 * D) {
        snprintf(err, err_bytes,
                 "%s: offset 18: %llu sequences and %llu document indices do not match the "
                 "file size %zu",
                 s->path_idx, (ull)N, (ull)D, mi->n);
        return SHARD_ERR_CORRUPT;
    }
    s->item = s->dtype == MEGATRON_DTYPE_UINT16 ? 2 : 4;
    s->len_p = mi->p + MEGATRON_HEADER_BYTES;
    s->ptr_p = s->len_p + 4 * N;
    s->doc_p = s->ptr_p + 8 * N;
    uint64_t prev = 0;
    for (uint64_t k = 0; k < D; k++) {
        uint64_t v = rd64(s->doc_p + 8 * k);
        if (v > N || v < prev || (k == D - 1 && v != N)) {
            snprintf(err, err_bytes,
                     "%s: offset %llu: document_indices[%llu] = %lld breaks the layout "
                     "(non-decreasing, within [0, %llu], last = %llu)",
                     s->path_idx, (ull)(s->doc_p - mi->p + 8 * k), (ull)k, (long long)v, (ull)N,
                     (ull)N);
            return SHARD_ERR_CORRUPT;
        }
        prev = v;
    }
    return SHARD_OK;
}

/* Every sequence lies inside .bin and holds no negative id; *max_id is the largest id. */
static int check_bin(const dataset *s, uint32_t *max_id, char *err, size_t err_bytes) {
    const uint64_t item = s->item;
    *max_id = 0;
    for (uint64_t i = 0; i < s->N; i++) {
        int32_t len;
        int64_t ptr;
        memcpy(&len, s->len_p + 4 * i, 4);
        memcpy(&ptr, s->ptr_p + 8 * i, 8);
        if (len < 0 || ptr < 0 || (uint64_t)ptr % item || (uint64_t)ptr > s->mb.n ||
            (uint64_t)len > (s->mb.n - (uint64_t)ptr) / item) {
            snprintf(err, err_bytes,
                     "%s: sequence %llu (length at offset %llu): length %d at byte %lld lies "
                     "outside %s (%zu bytes)",
                     s->path_idx, (ull)i, (ull)(4 * i + 34), len, (long long)ptr, s->path_bin,
                     s->mb.n);
            return SHARD_ERR_CORRUPT;
        }
        if (len == 0)
            continue; /* an empty .bin is not mapped: no pointer arithmetic on NULL (UBSan,
                         found by fuzz_megatron_idx) */
        const uint8_t *t = s->mb.p + ptr;
        for (int32_t k = 0; k < len; k++) {
            uint32_t v;
            if (item == 2) {
                uint16_t h;
                memcpy(&h, t + 2 * (uint64_t)k, 2);
                v = h;
            } else {
                int32_t x;
                memcpy(&x, t + 4 * (uint64_t)k, 4);
                if (x < 0) {
                    snprintf(err, err_bytes, "%s: offset %llu: negative token id %d", s->path_bin,
                             (ull)(ptr + 4 * (int64_t)k), x);
                    return SHARD_ERR_CORRUPT;
                }
                v = (uint32_t)x;
            }
            if (v > *max_id)
                *max_id = v;
        }
    }
    return SHARD_OK;
}

/* Appends every sequence to w, with its document starts and its piece. */
static int write_seqs(const dataset *s, shard_writer *w) {
    const uint64_t N = s->N, D = s->D;
    uint64_t k = 0, doc_off = 0, ids_cap = 0;
    uint32_t *ids = NULL; /* (ids_cap) one sequence as uint32 */
    int st = SHARD_OK;
    for (uint64_t i = 0; i < N && st == SHARD_OK; i++) {
        uint32_t starts = 0;
        while (k < D - 1 && rd64(s->doc_p + 8 * k) == i) {
            starts++;
            k++;
        }
        if (starts)
            doc_off = 0;
        uint64_t doc = k ? k - 1 : 0; /* the Megatron document holding sequence i */
        int32_t len;
        int64_t ptr;
        memcpy(&len, s->len_p + 4 * i, 4);
        memcpy(&ptr, s->ptr_p + 8 * i, 8);
        if ((uint64_t)len > ids_cap) {
            free(ids);
            ids_cap = (uint64_t)len;
            ids = malloc(ids_cap * 4);
            if (!ids) {
                st = SHARD_ERR_NOMEM;
                break;
            }
        }
        for (int32_t t = 0; t < len; t++) {
            if (s->item == 2) {
                uint16_t h;
                memcpy(&h, s->mb.p + ptr + 2 * (int64_t)t, 2);
                ids[t] = h;
            } else {
                memcpy(&ids[t], s->mb.p + ptr + 4 * (int64_t)t, 4);
            }
        }
        shard_doc piece = {0, doc, doc_off};
        doc_off += (uint64_t)len;
        st = shard_writer_set_doc_starts(w, starts);
        if (st == SHARD_OK)
            st = shard_writer_append(w, ids, (uint64_t)len, &piece, 1);
    }
    if (st == SHARD_OK)
        st = shard_writer_add_trailing_doc_starts(w, (D - 1) - k);
    free(ids);
    return st;
}

int megatron_import(const char *prefix, const char *out, const megatron_import_opts *o,
                    megatron_import_report *rep, char *err, size_t err_bytes) {
    dataset *s = calloc(1, sizeof *s);
    shard_writer *w = NULL;
    if (!s) {
        snprintf(err, err_bytes, "out of memory");
        return SHARD_ERR_NOMEM;
    }
    snprintf(s->path_bin, sizeof s->path_bin, "%s.bin", prefix);
    snprintf(s->path_idx, sizeof s->path_idx, "%s.idx", prefix);
    int st = map_file(s->path_idx, &s->mi, err, err_bytes);
    if (st == SHARD_OK)
        st = map_file(s->path_bin, &s->mb, err, err_bytes);
    if (st == SHARD_OK)
        st = check_idx(s, err, err_bytes);
    uint32_t max_id = 0;
    if (st == SHARD_OK)
        st = check_bin(s, &max_id, err, err_bytes);
    if (st != SHARD_OK)
        goto done;
    uint32_t vocab = o->vocab_size ? o->vocab_size : max_id + 1;
    if (s->N > 0 && max_id >= vocab) {
        snprintf(err, err_bytes, "%s: token id %u >= --vocab-size %u", s->path_bin, max_id, vocab);
        st = SHARD_ERR_ARG;
        goto done;
    }
    char meta[4400];
    json_object *mo = json_object_new_object();
    json_object_object_add(mo, "source", json_object_new_string("megatron import"));
    json_object_object_add(mo, "megatron_prefix", json_object_new_string(prefix));
    json_object_object_add(mo, "megatron_dtype", json_object_new_int(s->dtype));
    snprintf(meta, sizeof meta, "%s", json_object_to_json_string_ext(mo, JSON_C_TO_STRING_PLAIN));
    json_object_put(mo);

    shard_writer_opts wo = shard_writer_opts_default();
    wo.vocab_size = vocab;
    wo.level = o->level;
    wo.block_bytes = o->block_bytes;
    wo.meta_json = meta;
    st = shard_writer_create(out, &wo, &w);
    if (st == SHARD_OK)
        st = write_seqs(s, w);
    if (st == SHARD_OK)
        st = shard_writer_close(w);
    if (st != SHARD_OK) {
        snprintf(err, err_bytes, "%s",
                 w && shard_writer_errmsg(w)[0] ? shard_writer_errmsg(w) : "out of memory");
        goto done;
    }
    rep->n_seqs = s->N;
    rep->n_docs = s->D - 1;
done:
    shard_writer_free(w);
    unmap_file(&s->mi);
    unmap_file(&s->mb);
    free(s);
    return st;
}
