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

/* ---- llama2.c legacy checkpoints ----------------------------------------------------------- */

static infer_mat f32mat(const float *p) {
    infer_mat w = {p, INFER_DT_F32};
    return w;
}

static int load_llama2c(infer_model *m, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return fail(m, INFER_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    int32_t h[7];
    if (fstat(fileno(f), &sb) != 0 || fread(h, 4, 7, f) != 7) {
        fclose(f);
        return fail(m, INFER_ERR_FORMAT, "%s: offset 0: shorter than the 28-byte header", path);
    }
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
        c->seq_len > (1 << 24)) {
        fclose(f);
        return fail(m, INFER_ERR_FORMAT,
                    "%s: offset 0: header dim %d hidden %d layers %d heads %d kv heads %d vocab "
                    "%d seq_len %d is not a valid llama2.c model",
                    path, h[0], h[1], h[2], h[3], h[4], h[5], h[6]);
    }
    const uint64_t dim = (uint64_t)c->dim, hid = (uint64_t)c->hidden_dim, L = (uint64_t)c->n_layers;
    const uint64_t hs = dim / (uint64_t)c->n_heads, kv = hs * (uint64_t)c->n_kv_heads;
    const uint64_t V = (uint64_t)c->vocab_size;
    uint64_t n = V * dim + L * dim + L * dim * dim + 2 * L * dim * kv + L * dim * dim + L * dim +
                 3 * L * dim * hid + dim + (uint64_t)c->seq_len * hs; /* + freq_cis (unused) */
    if (!c->shared_classifier)
        n += V * dim;
    uint64_t want = 28 + 4 * n;
    if ((uint64_t)sb.st_size != want) {
        fclose(f);
        return fail(m, INFER_ERR_FORMAT,
                    "%s: %llu bytes, but the header's shapes need exactly %llu (truncated or "
                    "not a llama2.c checkpoint)",
                    path, (unsigned long long)sb.st_size, (unsigned long long)want);
    }
    m->data = malloc(4 * n);
    m->layers = calloc(L, sizeof *m->layers);
    if (!m->data || !m->layers) {
        fclose(f);
        return fail(m, INFER_ERR_NOMEM, "%s: out of memory for %llu weights", path,
                    (unsigned long long)n);
    }
    size_t got = fread(m->data, 4, n, f);
    fclose(f);
    if (got != n)
        return fail(m, INFER_ERR_IO, "%s: read %zu of %llu weights", path, got,
                    (unsigned long long)n);
    m->head_dim = (int)hs;
    m->dtype = INFER_DT_F32;
    float *p = m->data;
    m->emb = f32mat(p);
    p += V * dim;
    /* per-layer arrays are stacked [layer][...] */
    const float *rms_att = p, *wq = (p += L * dim), *wk = (p += L * dim * dim),
                *wv = (p += L * dim * kv), *wo = (p += L * dim * kv),
                *rms_ffn = (p += L * dim * dim), *w1 = (p += L * dim), *w2 = (p += L * dim * hid),
                *w3 = (p += L * dim * hid);
    p += L * dim * hid;
    m->rms_final = p;
    p += dim;
    p += (uint64_t)c->seq_len * hs; /* freq_cis_real and _imag: recomputed instead */
    m->wcls = c->shared_classifier ? m->emb : f32mat(p);
    for (uint64_t l = 0; l < L; l++) {
        infer_layer *y = &m->layers[l];
        y->rms_att = (float *)rms_att + l * dim;
        y->rms_ffn = (float *)rms_ffn + l * dim;
        y->wq = f32mat(wq + l * dim * dim);
        y->wk = f32mat(wk + l * dim * kv);
        y->wv = f32mat(wv + l * dim * kv);
        y->wo = f32mat(wo + l * dim * dim);
        y->w1 = f32mat(w1 + l * dim * hid);
        y->w2 = f32mat(w2 + l * dim * hid);
        y->w3 = f32mat(w3 + l * dim * hid);
    }
    return INFER_OK;
}

/* ---- HF model directories ------------------------------------------------------------------ */

typedef struct {
    infer_st *st[INFER_MAX_MAPS];
    char *file[INFER_MAX_MAPS];
    int n;
    const char *dir;
    int mode; /* INFER_LOAD_* */
} hf_files;

static int hf_map(infer_model *m, hf_files *hf, const char *name) {
    for (int i = 0; i < hf->n; i++)
        if (!strcmp(hf->file[i], name))
            return INFER_OK;
    if (hf->n == INFER_MAX_MAPS)
        return fail(m, INFER_ERR_FORMAT, "%s: more than %d safetensors files", hf->dir,
                    INFER_MAX_MAPS);
    if (strchr(name, '/') || !strcmp(name, "..") || !*name)
        return fail(m, INFER_ERR_FORMAT,
                    "%s/model.safetensors.index.json: file name \"%s\" is not in the directory",
                    hf->dir, name);
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", hf->dir, name);
    infer_st *st;
    int rc = infer_st_open(path, &st);
    if (rc != INFER_OK) {
        fail(m, rc, "%s", infer_st_errmsg(st));
        infer_st_free(st);
        return rc;
    }
    int fd = open(path, O_RDONLY);
    struct stat sb;
    void *addr = MAP_FAILED;
    size_t done = 0;
    if (fd >= 0 && fstat(fd, &sb) == 0 && sb.st_size > 0) {
        if (hf->mode == INFER_LOAD_RAM) {
            /* anonymous memory on transparent huge pages, read with pread: decode of a 246M
             * F32 model ran 12% faster than from the file mapping's 4 KiB pages (3.04 vs 3.44 s
             * for 99 tokens, BENCHMARKS.md) */
            addr = mmap(NULL, (size_t)sb.st_size, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (addr != MAP_FAILED) {
                madvise(addr, (size_t)sb.st_size, MADV_HUGEPAGE);
                while (done < (size_t)sb.st_size) {
                    ssize_t got =
                        pread(fd, (char *)addr + done, (size_t)sb.st_size - done, (off_t)done);
                    if (got <= 0)
                        break;
                    done += (size_t)got;
                }
                if (done < (size_t)sb.st_size) {
                    int e = errno;
                    munmap(addr, (size_t)sb.st_size);
                    close(fd);
                    infer_st_free(st);
                    return fail(m, INFER_ERR_IO, "%s: read %zu of %lld bytes: %s", path, done,
                                (long long)sb.st_size, done ? strerror(e) : "end of file");
                }
            }
        } else {
            addr = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        }
    }
    if (fd >= 0)
        close(fd);
    if (addr == MAP_FAILED) {
        infer_st_free(st);
        return fail(m, INFER_ERR_IO, "%s: cannot map: %s", path, strerror(errno));
    }
    m->maps[m->n_maps].addr = addr;
    m->maps[m->n_maps].len = (size_t)sb.st_size;
    hf->st[hf->n] = st;
    hf->file[hf->n] = strdup(name);
    if (!hf->file[hf->n]) {
        infer_st_free(st);
        munmap(addr, (size_t)sb.st_size);
        return fail(m, INFER_ERR_NOMEM, "out of memory");
    }
    m->n_maps++;
    hf->n++;
    return INFER_OK;
}

/* the tensor called name with shape (rows, cols), or (rows) when cols is 0 */
static int hf_tensor(infer_model *m, hf_files *hf, const char *name, int64_t rows, int64_t cols,
                     infer_mat *out) {
    for (int i = 0; i < hf->n; i++) {
        const infer_tensor_info *t = infer_st_find(hf->st[i], name);
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
                        "%s/%s: tensor %s has shape [%s], the config wants [%s]", hf->dir,
                        hf->file[i], name, got, want);
        }
        out->p = (const char *)m->maps[i].addr + t->offset;
        out->dtype = t->dtype;
        return INFER_OK;
    }
    return fail(m, INFER_ERR_FORMAT, "%s: tensor %s is in none of the %d safetensors file%s",
                hf->dir, name, hf->n, hf->n == 1 ? "" : "s");
}

/* a norm's weights widened to float32 at dst */
static int hf_norm(infer_model *m, hf_files *hf, const char *name, int64_t n, float *dst) {
    infer_mat w;
    int rc = hf_tensor(m, hf, name, n, 0, &w);
    if (rc == INFER_OK)
        ik_to_f32(dst, w.p, w.dtype, (size_t)n);
    return rc;
}

static int hf_load_files(infer_model *m, hf_files *hf) {
    char path[4200];
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", hf->dir);
    json_object *idx = json_object_from_file(path);
    if (!idx) {
        snprintf(path, sizeof path, "%s/model.safetensors", hf->dir);
        if (access(path, R_OK) != 0)
            return fail(m, INFER_ERR_IO,
                        "%s: neither model.safetensors nor model.safetensors.index.json (%s)",
                        hf->dir, strerror(errno));
        return hf_map(m, hf, "model.safetensors");
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
            if ((rc = hf_map(m, hf, json_object_get_string(val))) != INFER_OK)
                break;
        }
    }
    json_object_put(idx);
    return rc;
}

static int load_hf(infer_model *m, const char *dir, int mode) {
    char path[4200], err[512] = "";
    snprintf(path, sizeof path, "%s/config.json", dir);
    int wbytes, rc = infer_config_from_json(path, &m->cfg, &wbytes, err, sizeof err);
    if (rc != INFER_OK)
        return fail(m, rc, "%s", err);
    const infer_config *c = &m->cfg;
    hf_files hf = {.dir = dir, .mode = mode};
    rc = hf_load_files(m, &hf);
    const int64_t D = c->dim, H = c->hidden_dim, V = c->vocab_size, L = c->n_layers;
    const int64_t hd = c->head_dim, qd = c->n_heads * hd, kvd = c->n_kv_heads * hd;
    m->head_dim = (int)hd;
    if (rc == INFER_OK) {
        m->data = malloc((size_t)(2 * L + 1) * (size_t)D * sizeof(float));
        m->layers = calloc((size_t)L, sizeof *m->layers);
        if (!m->data || !m->layers)
            rc = fail(m, INFER_ERR_NOMEM, "out of memory");
    }
    if (rc == INFER_OK)
        rc = hf_tensor(m, &hf, "model.embed_tokens.weight", V, D, &m->emb);
    if (rc == INFER_OK) {
        m->rms_final = m->data + 2 * L * D;
        rc = hf_norm(m, &hf, "model.norm.weight", D, m->rms_final);
    }
    if (rc == INFER_OK) {
        if (c->shared_classifier)
            m->wcls = m->emb;
        else
            rc = hf_tensor(m, &hf, "lm_head.weight", V, D, &m->wcls);
    }
    char name[256];
#define T(field, what, r, cc)                                                                      \
    if (rc == INFER_OK) {                                                                          \
        snprintf(name, sizeof name, "model.layers.%d." what ".weight", (int)l);                    \
        rc = hf_tensor(m, &hf, name, r, cc, &y->field);                                            \
    }
    for (int64_t l = 0; rc == INFER_OK && l < L; l++) {
        infer_layer *y = &m->layers[l];
        y->rms_att = m->data + 2 * l * D;
        y->rms_ffn = y->rms_att + D;
        snprintf(name, sizeof name, "model.layers.%d.input_layernorm.weight", (int)l);
        rc = hf_norm(m, &hf, name, D, y->rms_att);
        if (rc == INFER_OK) {
            snprintf(name, sizeof name, "model.layers.%d.post_attention_layernorm.weight", (int)l);
            rc = hf_norm(m, &hf, name, D, y->rms_ffn);
        }
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
        m->dtype = m->layers[0].wq.dtype;
    for (int i = 0; i < hf.n; i++) {
        infer_st_free(hf.st[i]);
        free(hf.file[i]);
    }
    return rc;
}

/* ---- tensor-parallel slices --------------------------------------------------------------- */

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

static size_t dt_size(int dtype) {
    return dtype == INFER_DT_F32 ? 4 : 2;
}

/* rows [r0, ..) of a matrix of cols columns: a pointer into it */
static infer_mat rows_from(infer_mat w, int64_t r0, int64_t cols) {
    w.p = (const char *)w.p + (size_t)r0 * (size_t)cols * dt_size(w.dtype);
    return w;
}

/* columns [c0, c0 + n) of a (rows, cols) matrix: a contiguous copy that m owns */
static int cols_copy(infer_model *m, infer_mat *w, int64_t rows, int64_t cols, int64_t c0,
                     int64_t n) {
    const size_t e = dt_size(w->dtype), row = (size_t)n * e;
    char *q = malloc(row * (size_t)rows + 1);
    void **cp = realloc(m->copies, (size_t)(m->n_copies + 1) * sizeof *cp);
    if (cp)
        m->copies = cp;
    if (!q || !cp) {
        free(q);
        return fail(m, INFER_ERR_NOMEM, "out of memory for a %lld x %lld slice", (long long)rows,
                    (long long)n);
    }
    m->copies[m->n_copies++] = q;
    for (int64_t r = 0; r < rows; r++)
        memcpy(q + (size_t)r * row,
               (const char *)w->p + ((size_t)r * (size_t)cols + (size_t)c0) * e, row);
    w->p = q;
    return INFER_OK;
}

/* this rank's share of the loaded model: the local counts, and the matrices cut to them */
static int model_slice(infer_model *m, int rank, int n_ranks) {
    char why[256];
    infer_opts o = infer_opts_default();
    o.max_ctx = 1;
    if (infer_opts_check(&m->cfg, &o, n_ranks, why, sizeof why) != INFER_OK)
        return fail(m, INFER_ERR_ARG, "%s", why);
    infer_split_make(&m->cfg, rank, n_ranks, &m->tp);
    if (n_ranks == 1)
        return INFER_OK;
    const infer_split *t = &m->tp;
    const int64_t D = m->cfg.dim, hd = m->head_dim, H = m->cfg.hidden_dim;
    const int64_t q = (int64_t)m->cfg.n_heads * hd;
    int rc = INFER_OK;
    for (int l = 0; rc == INFER_OK && l < m->cfg.n_layers; l++) {
        infer_layer *y = &m->layers[l];
        y->wq = rows_from(y->wq, t->head0 * hd, D);
        y->wk = rows_from(y->wk, t->kv_head0 * hd, D);
        y->wv = rows_from(y->wv, t->kv_head0 * hd, D);
        y->w1 = rows_from(y->w1, t->hidden0, D);
        y->w3 = rows_from(y->w3, t->hidden0, D);
        rc = cols_copy(m, &y->wo, D, q, t->head0 * hd, t->n_heads * hd);
        if (rc == INFER_OK)
            rc = cols_copy(m, &y->w2, D, H, t->hidden0, t->hidden_dim);
    }
    /* the embedding is split by vocabulary too (the forward pass sums the rows each rank
     * holds); tied, it is the classifier's slice */
    m->emb = rows_from(m->emb, t->vocab0, D);
    m->wcls = m->cfg.shared_classifier ? m->emb : rows_from(m->wcls, t->vocab0, D);
    return rc;
}

/* ---- loading ------------------------------------------------------------------------------- */

int infer_model_load(const char *path, MPI_Comm comm, infer_model **out) {
    return infer_model_load_mode(path, INFER_LOAD_RAM, comm, out);
}

static int load_any(infer_model *m, const char *path, int mode) {
    struct stat sb;
    if (stat(path, &sb) != 0)
        return fail(m, INFER_ERR_IO, "%s: %s", path, strerror(errno));
    if (S_ISDIR(sb.st_mode))
        return load_hf(m, path, mode);
    size_t n = strlen(path);
    if (n >= 11 && !strcmp(path + n - 11, "config.json")) { /* the directory of a config.json */
        char dir[4200];
        snprintf(dir, sizeof dir, "%.*s", (int)(n > 12 ? n - 12 : 1), n > 12 ? path : ".");
        return load_hf(m, dir, mode);
    }
    return load_llama2c(m, path);
}

int infer_model_load_mode(const char *path, int mode, MPI_Comm comm, infer_model **out) {
    *out = NULL;
    int rank = 0, n_ranks = 1;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &n_ranks);
    infer_model *m = calloc(1, sizeof *m);
    if (!m)
        return INFER_ERR_NOMEM;
    *out = m;
    ik_init(NULL);
    int rc = load_any(m, path, mode);
    if (rc == INFER_OK)
        rc = model_slice(m, rank, n_ranks);
    /* one rank's failure is every rank's, before the next collective */
    const int all = n_ranks > 1 ? cluster_agree(comm, rc) : rc;
    if (all != INFER_OK && rc == INFER_OK)
        rc = fail(m, all < INFER_ERR_NUMERIC ? INFER_ERR_IO : all,
                  "%s: another rank failed to load it", path);
    return rc;
}

void infer_model_free(infer_model *m) {
    if (!m)
        return;
    for (int i = 0; i < m->n_maps; i++)
        munmap(m->maps[i].addr, m->maps[i].len);
    for (int i = 0; i < m->n_copies; i++)
        free(m->copies[i]);
    free(m->copies);
    free(m->layers);
    free(m->data);
    free(m);
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
