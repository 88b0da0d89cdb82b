/* infer_model.c - loading llama2.c legacy checkpoints. */
#include "infer_internal.h"

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

int infer_model_load(const char *path, infer_model **out) {
    *out = NULL;
    infer_model *m = calloc(1, sizeof *m);
    if (!m)
        return INFER_ERR_NOMEM;
    *out = m;
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
    if (!m->data) {
        fclose(f);
        return fail(m, INFER_ERR_NOMEM, "%s: out of memory for %llu weights", path,
                    (unsigned long long)n);
    }
    size_t got = fread(m->data, 4, n, f);
    fclose(f);
    if (got != n)
        return fail(m, INFER_ERR_IO, "%s: read %zu of %llu weights", path, got,
                    (unsigned long long)n);
    float *p = m->data;
    m->emb = p;
    p += V * dim;
    m->rms_att = p;
    p += L * dim;
    m->wq = p;
    p += L * dim * dim;
    m->wk = p;
    p += L * dim * kv;
    m->wv = p;
    p += L * dim * kv;
    m->wo = p;
    p += L * dim * dim;
    m->rms_ffn = p;
    p += L * dim;
    m->w1 = p;
    p += L * dim * hid;
    m->w2 = p;
    p += L * dim * hid;
    m->w3 = p;
    p += L * dim * hid;
    m->rms_final = p;
    p += dim;
    p += (uint64_t)c->seq_len * hs; /* freq_cis_real and _imag: recomputed instead */
    m->wcls = c->shared_classifier ? m->emb : p;
    return INFER_OK;
}

void infer_model_free(infer_model *m) {
    if (!m)
        return;
    free(m->data);
    free(m);
}

const char *infer_model_errmsg(const infer_model *m) {
    return m ? m->errmsg : "out of memory";
}

const infer_config *infer_model_config(const infer_model *m) {
    return &m->cfg;
}
