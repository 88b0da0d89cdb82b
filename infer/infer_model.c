/* infer_model.c - loading HF model directories and llama2.c legacy checkpoints. */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS, madvise */
#include "infer_internal.h"
#include "infer_kernels.h"
#include "cluster.h"

#include <fcntl.h>
#include <json-c/json.h>
#include <sys/mman.h>
#include <unistd.h>

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

const char *infer_strerror(int status) {
    switch (status) {
    case INFER_OK:
        return "ok";
    case INFER_ERR_IO:
        return "I/O error";
    case INFER_ERR_NOMEM:
        return "out of memory";
    case INFER_ERR_FORMAT:
        return "malformed model file";
    case INFER_ERR_ARG:
        return "invalid argument";
    case INFER_ERR_UNSUPPORTED:
        return "not supported by this CPU or model";
    default:
        return "unknown status";
    }
}

static int fail(infer_model *m, int st, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(infer_model *m, int st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->errmsg, sizeof m->errmsg, fmt, ap);
    va_end(ap);
    return st;
}

/* ---- where the bytes are ------------------------------------------------------------------- */

/* Each rank reads only its slices: the rows of q/k/v, gate/up and the vocabulary that are its
 * heads, MLP rows and vocabulary, the columns of o and down that are its heads and MLP rows,
 * and the norms whole. The format readers below (llama2.c, HF) only say where each tensor is
 * (a src); load_slices reads or maps the slices, the same way for both. */

typedef struct {
    int file;           /* index into the loader's files; -1: absent (a tied lm_head) */
    uint64_t offset;    /* of element (0, 0) in the file */
    int dtype;          /* INFER_DT_* */
    int64_t rows, cols; /* stored shape; a norm is (n, 1) */
    const char *name;   /* for messages: HF's tensor name, llama2.c's field */
    int layer;          /* llama2.c: the layer of name (-1: none or in the name) */
} src;

typedef struct {
    src rms_att, rms_ffn, wq, wk, wv, wo, w1, w2, w3;
} layer_src;

/* one slice this rank keeps: rows [r0, r0 + nr) x columns [c0, c0 + nc) of s */
typedef struct {
    src s;
    int64_t r0, nr, c0, nc;
    infer_mat *dst;
    size_t at; /* offset of its copy in m->slices (RAM: every slice; MMAP: column slices) */
} wanted;

typedef struct {
    infer_model *m;
    int mode; /* INFER_LOAD_* */
    int n;    /* files */
    char *path[INFER_MAX_MAPS];
    int fd[INFER_MAX_MAPS];           /* RAM */
    const char *base[INFER_MAX_MAPS]; /* MMAP: the file's mapping */
    infer_st *st[INFER_MAX_MAPS];     /* HF: the file's header */
    char *file[INFER_MAX_MAPS];       /* HF: its name in the directory */
    const char *dir;                  /* HF */
} loader;

static size_t dt_size(int dtype) {
    return dtype == INFER_DT_F32 ? 4 : 2;
}

static void loader_close(loader *ld) {
    for (int i = 0; i < ld->n; i++) {
        if (ld->fd[i] >= 0)
            close(ld->fd[i]);
        infer_st_free(ld->st[i]);
        free(ld->path[i]);
        free(ld->file[i]);
    }
    ld->n = 0;
}

/* opens path as file ld->n: a descriptor (RAM) or a read-only mapping (MMAP, recorded in m) */
static int loader_open(loader *ld, const char *path) {
    infer_model *m = ld->m;
    if (ld->n == INFER_MAX_MAPS)
        return fail(m, INFER_ERR_FORMAT, "%s: more than %d weight files", path, INFER_MAX_MAPS);
    const int i = ld->n++; /* the slot is taken, whatever follows: loader_close frees it */
    ld->fd[i] = -1;
    ld->base[i] = NULL;
    ld->st[i] = NULL;
    ld->file[i] = NULL;
    ld->path[i] = strdup(path);
    if (!ld->path[i])
        return fail(m, INFER_ERR_NOMEM, "out of memory");
    int fd = open(path, O_RDONLY);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return fail(m, INFER_ERR_IO, "%s: cannot open: %s", path, strerror(e));
    }
    if (ld->mode == INFER_LOAD_RAM) {
        ld->fd[i] = fd;
        return INFER_OK;
    }
    void *addr =
        sb.st_size > 0 ? mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0) : MAP_FAILED;
    int e = sb.st_size > 0 ? errno : EINVAL;
    close(fd);
    if (addr == MAP_FAILED)
        return fail(m, INFER_ERR_IO, "%s: cannot map: %s", path, strerror(e));
    m->maps[m->n_maps].addr = addr;
    m->maps[m->n_maps].len = (size_t)sb.st_size;
    m->n_maps++;
    ld->base[i] = addr;
    return INFER_OK;
}

static const char *src_name(const src *s, char *buf, size_t n) {
    if (s->layer < 0)
        return s->name;
    snprintf(buf, n, "layer %d's %s", s->layer, s->name);
    return buf;
}

/* len bytes at file offset off into buf (RAM), counted in bytes_read */
static int read_at(loader *ld, const src *s, uint64_t off, void *buf, size_t len) {
    size_t done = 0;
    while (done < len) {
        const size_t chunk = len - done < (1u << 30) ? len - done : (1u << 30);
        ssize_t got = pread(ld->fd[s->file], (char *)buf + done, chunk, (off_t)(off + done));
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            char nm[300];
            return fail(ld->m, INFER_ERR_IO,
                        "%s: offset %llu: %s (read %zu of the %zu bytes of %s)", ld->path[s->file],
                        (unsigned long long)(off + done), got < 0 ? strerror(errno) : "end of file",
                        done, len, src_name(s, nm, sizeof nm));
        }
        done += (size_t)got;
    }
    ld->m->bytes_read += len;
    return INFER_OK;
}

/* the n values of norm s widened to float32 at dst */
static int read_norm(loader *ld, const src *s, float *dst, void *scratch) {
    const size_t len = (size_t)s->rows * dt_size(s->dtype);
    const void *p = scratch;
    if (ld->mode == INFER_LOAD_RAM) {
        int rc = read_at(ld, s, s->offset, scratch, len);
        if (rc != INFER_OK)
            return rc;
    } else {
        p = ld->base[s->file] + s->offset;
        ld->m->bytes_read += len;
    }
    ik_to_f32(dst, p, s->dtype, (size_t)s->rows);
    return INFER_OK;
}

static uint64_t want_first_byte(const wanted *w) {
    return w->s.offset +
           ((uint64_t)w->r0 * (uint64_t)w->s.cols + (uint64_t)w->c0) * dt_size(w->s.dtype);
}

/* file order: reads move forward through each file */
static int cmp_want(const void *a, const void *b) {
    const wanted *x = a, *y = b;
    if (x->s.file != y->s.file)
        return x->s.file < y->s.file ? -1 : 1;
    uint64_t u = want_first_byte(x), v = want_first_byte(y);
    return u < v ? -1 : u > v;
}

/* this rank's slice w: read into m->slices (RAM), or pointed to in the mapping (MMAP; columns
 * copied, see infer_internal.h) */
static int load_want(loader *ld, const wanted *w) {
    infer_model *m = ld->m;
    const size_t e = dt_size(w->s.dtype), row = (size_t)w->nc * e;
    const size_t stride = (size_t)w->s.cols * e;
    const uint64_t first = want_first_byte(w);
    const int whole_rows = w->nc == w->s.cols;
    char *q = m->slices ? (char *)m->slices + w->at : NULL; /* NULL: nothing is copied */
    w->dst->dtype = w->s.dtype;
    if (ld->mode == INFER_LOAD_MMAP) {
        const char *p = ld->base[w->s.file] + first;
        if (whole_rows) {
            w->dst->p = p; /* pages of other ranks' rows are never touched */
        } else {
            for (int64_t r = 0; r < w->nr; r++)
                memcpy(q + (size_t)r * row, p + (size_t)r * stride, row);
            w->dst->p = q;
        }
        m->bytes_read += (uint64_t)w->nr * row;
        return INFER_OK;
    }
    w->dst->p = q;
    if (whole_rows) /* contiguous: one read */
        return read_at(ld, &w->s, first, q, (size_t)w->nr * row);
    /* a column range: one pread per row. The alternative, preadv over the rows' whole span
     * with the other ranks' columns into a scratch buffer, reads P times these matrices' bytes
     * (+25% in all at TP 2 on the 246M F32 model) and was no faster: load at TP 2 from a
     * just-evicted file, median of 5, 0.50 s per row vs 0.95 s preadv; from the page cache
     * 0.20-0.23 s vs 0.17-0.19 s (busy machine) */
    int rc = INFER_OK;
    for (int64_t r = 0; rc == INFER_OK && r < w->nr; r++)
        rc = read_at(ld, &w->s, first + (uint64_t)r * stride, q + (size_t)r * row, row);
    return rc;
}

/* ggml's slice of n over n_ranks: [i0, i0 + len) */
static void slice(int n, int rank, int n_ranks, int *i0, int *len) {
    const int share = (n + n_ranks - 1) / n_ranks;
    const int a = rank * share < n ? rank * share : n;
    *i0 = a;
    *len = (a + share < n ? a + share : n) - a;
}

void infer_split_make(const infer_config *c, int rank, int n_ranks, infer_split *sp) {
    assert(n_ranks >= 1 && rank >= 0 && rank < n_ranks);
    sp->rank = rank;
    sp->n_ranks = n_ranks;
    slice(c->n_heads, rank, n_ranks, &sp->head0, &sp->n_heads);
    if (c->n_kv_heads >= n_ranks) {
        slice(c->n_kv_heads, rank, n_ranks, &sp->kv_head0, &sp->n_kv_heads);
    } else { /* replicated: the KV head of this rank's query heads */
        sp->kv_head0 = rank / (n_ranks / c->n_kv_heads);
        sp->n_kv_heads = 1;
    }
    slice(c->hidden_dim, rank, n_ranks, &sp->hidden0, &sp->hidden_dim);
    slice(c->vocab_size, rank, n_ranks, &sp->vocab0, &sp->vocab);
}

/* the split of m->cfg over the ranks, once the config is known and before a byte of weights */
static int model_split(infer_model *m, int rank, int n_ranks) {
    char why[256];
    infer_opts o = infer_opts_default();
    o.max_ctx = 1;
    if (infer_opts_check(&m->cfg, &o, n_ranks, why, sizeof why) != INFER_OK)
        return fail(m, INFER_ERR_ARG, "%s", why);
    infer_split_make(&m->cfg, rank, n_ranks, &m->tp);
    return INFER_OK;
}

/* Reads (RAM) or maps (MMAP) this rank's slices of the tensors at emb, wcls (file -1: tied),
 * norm and ls[n_layers], sets every matrix and norm of m, counts bytes_read and weight_bytes. */
static int load_slices(loader *ld, const src *emb, const src *wcls, const src *norm,
                       const layer_src *ls) {
    infer_model *m = ld->m;
    const infer_split *t = &m->tp;
    const int64_t D = m->cfg.dim, L = m->cfg.n_layers, hd = m->head_dim;
    m->data = malloc((size_t)(2 * L + 1) * (size_t)D * sizeof(float));
    m->layers = calloc((size_t)L, sizeof *m->layers);
    wanted *w = malloc((size_t)(7 * L + 2) * sizeof *w);
    void *scratch = malloc((size_t)D * sizeof(float));
    int n = 0, rc = INFER_OK;
    if (!m->data || !m->layers || !w || !scratch) {
        rc = fail(m, INFER_ERR_NOMEM, "out of memory");
        goto done;
    }
#define WANT(source, row0, n_rows, col0, n_cols, target)                                           \
    w[n++] = (wanted){.s = (source),                                                               \
                      .r0 = (row0),                                                                \
                      .nr = (n_rows),                                                              \
                      .c0 = (col0),                                                                \
                      .nc = (n_cols),                                                              \
                      .dst = (target)}
    WANT(*emb, t->vocab0, t->vocab, 0, D, &m->emb);
    if (wcls->file >= 0)
        WANT(*wcls, t->vocab0, t->vocab, 0, D, &m->wcls);
    for (int64_t l = 0; l < L; l++) {
        const layer_src *a = &ls[l];
        infer_layer *y = &m->layers[l];
        WANT(a->wq, t->head0 * hd, t->n_heads * hd, 0, D, &y->wq);
        WANT(a->wk, t->kv_head0 * hd, t->n_kv_heads * hd, 0, D, &y->wk);
        WANT(a->wv, t->kv_head0 * hd, t->n_kv_heads * hd, 0, D, &y->wv);
        WANT(a->wo, 0, D, t->head0 * hd, t->n_heads * hd, &y->wo);
        WANT(a->w1, t->hidden0, t->hidden_dim, 0, D, &y->w1);
        WANT(a->w3, t->hidden0, t->hidden_dim, 0, D, &y->w3);
        WANT(a->w2, 0, D, t->hidden0, t->hidden_dim, &y->w2);
    }
#undef WANT
    /* what must be in anonymous memory: every slice (RAM), the column slices (MMAP); each at a
     * 64-byte boundary (a cache line) */
    size_t bytes = 0;
    for (int i = 0; i < n; i++) {
        const size_t b = (size_t)w[i].nr * (size_t)w[i].nc * dt_size(w[i].s.dtype);
        m->weight_bytes += b;
        w[i].at = bytes;
        if (ld->mode == INFER_LOAD_RAM || w[i].nc != w[i].s.cols)
            bytes += (b + 63) & ~(size_t)63;
    }
    m->weight_bytes += (uint64_t)(2 * L + 1) * (uint64_t)D * sizeof(float);
    if (bytes > 0) {
        /* anonymous memory on transparent huge pages, read with pread: decode of a 246M F32
         * model ran 12% faster than from the file mapping's 4 KiB pages (3.04 vs 3.44 s for
         * 99 tokens, BENCHMARKS.md) */
        void *addr = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (addr == MAP_FAILED) {
            rc = fail(m, INFER_ERR_NOMEM,
                      "%s: out of memory for this rank's %zu bytes of weights: %s",
                      ld->dir ? ld->dir : ld->path[0], bytes, strerror(errno));
            goto done;
        }
        madvise(addr, bytes, MADV_HUGEPAGE);
        m->slices = addr;
        m->slices_bytes = bytes;
    }
    qsort(w, (size_t)n, sizeof *w, cmp_want);
    for (int i = 0; rc == INFER_OK && i < n; i++)
        rc = load_want(ld, &w[i]);
    if (rc == INFER_OK)
        rc = read_norm(ld, norm, m->data + 2 * L * D, scratch);
    for (int64_t l = 0; rc == INFER_OK && l < L; l++) {
        infer_layer *y = &m->layers[l];
        y->rms_att = m->data + 2 * l * D;
        y->rms_ffn = y->rms_att + D;
        rc = read_norm(ld, &ls[l].rms_att, y->rms_att, scratch);
        if (rc == INFER_OK)
            rc = read_norm(ld, &ls[l].rms_ffn, y->rms_ffn, scratch);
    }
    m->rms_final = m->data + 2 * L * D;
    if (wcls->file < 0)
        m->wcls = m->emb; /* tied: the same rows, one copy */
    m->dtype = m->layers[0].wq.dtype;
done:
    free(w);
    free(scratch);
    return rc;
}

/* ---- llama2.c legacy checkpoints ----------------------------------------------------------- */

static int load_llama2c(infer_model *m, const char *path, int mode, int rank, int n_ranks) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return fail(m, INFER_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    int32_t h[7];
    if (fstat(fileno(f), &sb) != 0 || fread(h, 4, 7, f) != 7) {
        fclose(f);
        return fail(m, INFER_ERR_FORMAT, "%s: offset 0: shorter than the 28-byte header", path);
    }
    fclose(f);
    infer_config *c = &m->cfg;
    c->dim = h[0];
    c->hidden_dim = h[1];
    c->n_layers = h[2];
    c->n_heads = h[3];
    c->n_kv_heads = h[4];
    c->shared_classifier = h[5] > 0;
    c->vocab_size = h[5] > 0 ? h[5] : -h[5];
    c->seq_len = h[6];
    c->rope_theta = 10000.0f;
    c->rms_eps = 1e-5f;
    c->rope_pairing = INFER_PAIR_ADJACENT;
    c->bos_id = 1; /* llama2.c: the Llama 2 convention */
    c->eos_id = 2;
    if (c->dim <= 0 || c->hidden_dim <= 0 || c->n_layers <= 0 || c->n_heads <= 0 ||
        c->n_kv_heads <= 0 || c->vocab_size <= 0 || c->seq_len <= 0 || c->dim % c->n_heads ||
        c->n_heads % c->n_kv_heads || (c->dim / c->n_heads) % 2 || c->dim > (1 << 16) ||
        c->hidden_dim > (1 << 18) || c->n_layers > 1024 || c->vocab_size > (1 << 22) ||
        c->seq_len > (1 << 24))
        return fail(m, INFER_ERR_FORMAT,
                    "%s: offset 0: header dim %d hidden %d layers %d heads %d kv heads %d vocab "
                    "%d seq_len %d is not a valid llama2.c model",
                    path, h[0], h[1], h[2], h[3], h[4], h[5], h[6]);
    const int64_t dim = c->dim, hid = c->hidden_dim, L = c->n_layers;
    const int64_t hs = dim / c->n_heads, kv = hs * c->n_kv_heads, V = c->vocab_size;
    const uint64_t want = 28 + 4 * (uint64_t)(V * dim + L * dim + L * dim * dim + 2 * L * dim * kv +
                                              L * dim * dim + L * dim + 3 * L * dim * hid + dim +
                                              (int64_t)c->seq_len * hs + /* freq_cis (unused) */
                                              (c->shared_classifier ? 0 : V * dim));
    if ((uint64_t)sb.st_size != want)
        return fail(m, INFER_ERR_FORMAT,
                    "%s: %llu bytes, but the header's shapes need exactly %llu (truncated or "
                    "not a llama2.c checkpoint)",
                    path, (unsigned long long)sb.st_size, (unsigned long long)want);
    m->head_dim = (int)hs;
    int rc = model_split(m, rank, n_ranks);
    if (rc != INFER_OK)
        return rc;
    layer_src *ls = calloc((size_t)L, sizeof *ls);
    if (!ls)
        return fail(m, INFER_ERR_NOMEM, "out of memory");
    loader ld = {.m = m, .mode = mode};
    rc = loader_open(&ld, path);
    if (rc == INFER_OK) {
        /* the file: the header, then float32 arrays, the per-layer ones stacked [layer][...]:
         * emb (V, dim), rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3, rms_final, freq_cis
         * (seq_len, hs) unused, wcls (V, dim) unless shared */
        uint64_t at = 28;
#define NEXT(n_rows, n_cols, nm, lay)                                                              \
    (src){.file = 0,                                                                               \
          .offset = at,                                                                            \
          .dtype = INFER_DT_F32,                                                                   \
          .rows = (n_rows),                                                                        \
          .cols = (n_cols),                                                                        \
          .name = (nm),                                                                            \
          .layer = (lay)}
#define STACK(field, n_rows, n_cols)                                                               \
    for (int64_t l = 0; l < L; l++, at += 4 * (uint64_t)(n_rows) * (uint64_t)(n_cols))             \
        ls[l].field = NEXT(n_rows, n_cols, #field, (int)l);
        src emb = NEXT(V, dim, "token embedding", -1), wcls = {.file = -1};
        at += 4 * (uint64_t)(V * dim);
        STACK(rms_att, dim, 1)
        STACK(wq, dim, dim)
        STACK(wk, kv, dim)
        STACK(wv, kv, dim)
        STACK(wo, dim, dim)
        STACK(rms_ffn, dim, 1)
        STACK(w1, hid, dim)
        STACK(w2, dim, hid)
        STACK(w3, hid, dim)
        src norm = NEXT(dim, 1, "rms_final", -1);
        at += 4 * (uint64_t)dim + 4 * (uint64_t)c->seq_len * (uint64_t)hs;
        if (!c->shared_classifier)
            wcls = NEXT(V, dim, "classifier", -1);
#undef STACK
#undef NEXT
        rc = load_slices(&ld, &emb, &wcls, &norm, ls);
    }
    loader_close(&ld);
    free(ls);
    return rc;
}

/* ---- HF model directories ------------------------------------------------------------------ */

/* opens the safetensors file name of the directory (once), checking its header */
static int hf_open(loader *ld, const char *name) {
    infer_model *m = ld->m;
    for (int i = 0; i < ld->n; i++)
        if (ld->file[i] && !strcmp(ld->file[i], name))
            return INFER_OK;
    if (strchr(name, '/') || !strcmp(name, "..") || !*name)
        return fail(m, INFER_ERR_FORMAT,
                    "%s/model.safetensors.index.json: file name \"%s\" is not in the directory",
                    ld->dir, name);
    if (ld->n == INFER_MAX_MAPS)
        return fail(m, INFER_ERR_FORMAT, "%s: more than %d safetensors files", ld->dir,
                    INFER_MAX_MAPS);
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", ld->dir, name);
    infer_st *st;
    int rc = infer_st_open(path, &st);
    if (rc != INFER_OK) {
        fail(m, rc, "%s", infer_st_errmsg(st));
        infer_st_free(st);
        return rc;
    }
    rc = loader_open(ld, path);
    ld->st[ld->n - 1] = st;
    if (rc == INFER_OK && !(ld->file[ld->n - 1] = strdup(name)))
        rc = fail(m, INFER_ERR_NOMEM, "out of memory");
    return rc;
}

/* where the tensor called name with shape (rows, cols), or (rows) when cols is 0, is */
static int hf_find(loader *ld, const char *name, int64_t rows, int64_t cols, src *out) {
    infer_model *m = ld->m;
    for (int i = 0; i < ld->n; i++) {
        const infer_tensor_info *t = infer_st_find(ld->st[i], name);
        if (!t)
            continue;
        int dims = cols ? 2 : 1;
        if (t->n_dims != dims || t->shape[0] != rows || (cols && t->shape[1] != cols)) {
            char got[8 * 24] = "";
            for (int k = 0, at = 0; k < t->n_dims && at < (int)sizeof got; k++)
                at += snprintf(got + at, sizeof got - (size_t)at, "%s%lld", k ? ", " : "",
                               (long long)t->shape[k]);
            char want[48];
            if (cols)
                snprintf(want, sizeof want, "%lld, %lld", (long long)rows, (long long)cols);
            else
                snprintf(want, sizeof want, "%lld", (long long)rows);
            return fail(m, INFER_ERR_FORMAT,
                        "%s/%s: tensor %s has shape [%s], the config wants [%s]", ld->dir,
                        ld->file[i], name, got, want);
        }
        *out = (src){.file = i,
                     .offset = t->offset,
                     .dtype = t->dtype,
                     .rows = rows,
                     .cols = cols ? cols : 1,
                     .name = t->name,
                     .layer = -1};
        return INFER_OK;
    }
    return fail(m, INFER_ERR_FORMAT, "%s: tensor %s is in none of the %d safetensors file%s",
                ld->dir, name, ld->n, ld->n == 1 ? "" : "s");
}

static int hf_open_files(loader *ld) {
    infer_model *m = ld->m;
    char path[4200];
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", ld->dir);
    json_object *idx = json_object_from_file(path);
    if (!idx) {
        snprintf(path, sizeof path, "%s/model.safetensors", ld->dir);
        if (access(path, R_OK) != 0)
            return fail(m, INFER_ERR_IO,
                        "%s: neither model.safetensors nor model.safetensors.index.json (%s)",
                        ld->dir, strerror(errno));
        return hf_open(ld, "model.safetensors");
    }
    json_object *wm;
    int rc = INFER_OK;
    if (!json_object_object_get_ex(idx, "weight_map", &wm) ||
        !json_object_is_type(wm, json_type_object)) {
        rc = fail(m, INFER_ERR_FORMAT, "%s: no object \"weight_map\"", path);
    } else {
        json_object_object_foreach(wm, key, val) {
            if (!json_object_is_type(val, json_type_string)) {
                rc = fail(m, INFER_ERR_FORMAT, "%s: weight_map[\"%s\"] is not a file name", path,
                          key);
                break;
            }
            if ((rc = hf_open(ld, json_object_get_string(val))) != INFER_OK)
                break;
        }
    }
    json_object_put(idx);
    return rc;
}

static int load_hf(infer_model *m, const char *dir, int mode, int rank, int n_ranks) {
    char path[4200], err[512] = "";
    snprintf(path, sizeof path, "%s/config.json", dir);
    int wbytes, rc = infer_config_from_json(path, &m->cfg, &wbytes, err, sizeof err);
    if (rc != INFER_OK)
        return fail(m, rc, "%s", err);
    const infer_config *c = &m->cfg;
    const int64_t D = c->dim, H = c->hidden_dim, V = c->vocab_size, L = c->n_layers;
    const int64_t hd = c->head_dim, qd = c->n_heads * hd, kvd = c->n_kv_heads * hd;
    m->head_dim = (int)hd;
    if ((rc = model_split(m, rank, n_ranks)) != INFER_OK)
        return rc;
    loader ld = {.m = m, .mode = mode, .dir = dir};
    layer_src *ls = calloc((size_t)L, sizeof *ls);
    src emb, wcls = {.file = -1}, norm;
    rc = ls ? hf_open_files(&ld) : fail(m, INFER_ERR_NOMEM, "out of memory");
    /* found in the order the tensors are used, so that a broken file names the first */
    if (rc == INFER_OK)
        rc = hf_find(&ld, "model.embed_tokens.weight", V, D, &emb);
    if (rc == INFER_OK)
        rc = hf_find(&ld, "model.norm.weight", D, 0, &norm);
    if (rc == INFER_OK && !c->shared_classifier)
        rc = hf_find(&ld, "lm_head.weight", V, D, &wcls);
    char name[256];
#define T(field, what, r, cc)                                                                      \
    if (rc == INFER_OK) {                                                                          \
        snprintf(name, sizeof name, "model.layers.%d." what ".weight", (int)l);                    \
        rc = hf_find(&ld, name, r, cc, &ls[l].field);                                              \
    }
    for (int64_t l = 0; rc == INFER_OK && l < L; l++) {
        T(rms_att, "input_layernorm", D, 0)
        T(rms_ffn, "post_attention_layernorm", D, 0)
        T(wq, "self_attn.q_proj", qd, D)
        T(wk, "self_attn.k_proj", kvd, D)
        T(wv, "self_attn.v_proj", kvd, D)
        T(wo, "self_attn.o_proj", D, qd)
        T(w1, "mlp.gate_proj", H, D)
        T(w3, "mlp.up_proj", H, D)
        T(w2, "mlp.down_proj", D, H)
    }
#undef T
    if (rc == INFER_OK)
        rc = load_slices(&ld, &emb, &wcls, &norm, ls);
    loader_close(&ld);
    free(ls);
    return rc;
}

/* ---- loading ------------------------------------------------------------------------------- */

int infer_model_load(const char *path, MPI_Comm comm, infer_model **out) {
    return infer_model_load_mode(path, INFER_LOAD_RAM, comm, out);
}

static int load_any(infer_model *m, const char *path, int mode, int rank, int n_ranks) {
    struct stat sb;
    if (stat(path, &sb) != 0)
        return fail(m, INFER_ERR_IO, "%s: %s", path, strerror(errno));
    if (S_ISDIR(sb.st_mode))
        return load_hf(m, path, mode, rank, n_ranks);
    size_t n = strlen(path);
    if (n >= 11 && !strcmp(path + n - 11, "config.json")) { /* the directory of a config.json */
        char dir[4200];
        snprintf(dir, sizeof dir, "%.*s", (int)(n > 12 ? n - 12 : 1), n > 12 ? path : ".");
        return load_hf(m, dir, mode, rank, n_ranks);
    }
    return load_llama2c(m, path, mode, rank, n_ranks);
}

int infer_model_load_mode(const char *path, int mode, MPI_Comm comm, infer_model **out) {
    *out = NULL;
    int rank = 0, n_ranks = 1;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &n_ranks);
    infer_model *m = calloc(1, sizeof *m);
    /* every rank reaches the agreement below, even without memory for m */
    int rc = m ? INFER_OK : INFER_ERR_NOMEM;
    if (m) {
        *out = m;
        ik_init(NULL);
        rc = load_any(m, path, mode, rank, n_ranks);
    }
    if (rc == INFER_OK)
        LOG_DEBUG("%s: read %llu bytes of tensors, holding %llu bytes of weights (%s, rank %d of "
                  "%d)",
                  path, (unsigned long long)m->bytes_read, (unsigned long long)m->weight_bytes,
                  mode == INFER_LOAD_MMAP ? "mmap" : "ram", rank, n_ranks);
    if (n_ranks == 1)
        return rc;
    /* one rank's failure is every rank's, before the next collective, with one message: the
     * lowest failing rank's cause, on every rank */
    char why[sizeof m->errmsg];
    int bad = -1;
    const int all =
        cluster_agree_msg(comm, rc, m ? m->errmsg : "out of memory", why, sizeof why, &bad);
    if (all == INFER_OK)
        return INFER_OK;
    if (rc == INFER_OK)
        rc = all < INFER_ERR_NUMERIC ? INFER_ERR_IO : all;
    if (m && bad >= 0)
        fail(m, rc, "rank %d of %d: %s", bad, n_ranks, why);
    else if (m) /* the agreement itself failed */
        fail(m, rc, "%s: the ranks could not agree on the load: %s", path, cluster_strerror(all));
    return rc;
}

void infer_model_free(infer_model *m) {
    if (!m)
        return;
    for (int i = 0; i < m->n_maps; i++)
        munmap(m->maps[i].addr, m->maps[i].len);
    if (m->slices)
        munmap(m->slices, m->slices_bytes);
    free(m->layers);
    free(m->data);
    free(m);
}

uint64_t infer_model_bytes_read(const infer_model *m) {
    return m->bytes_read;
}

uint64_t infer_model_weight_bytes(const infer_model *m) {
    return m->weight_bytes;
}

const char *infer_model_errmsg(const infer_model *m) {
    return m ? m->errmsg : "out of memory";
}

const infer_config *infer_model_config(const infer_model *m) {
    return &m->cfg;
}

int infer_model_weight_dtype(const infer_model *m) {
    return m->dtype;
}
