/* infer_forward.c - one token through the model, reading like llama2.c's run.c: RMSNorm,
 * attention (GQA, adjacent-pair RoPE, KV cache), SwiGLU MLP, classifier. Plain float32 loops:
 * the reference path that the fast kernels of issue 5 will be checked against. */
#include "infer_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct infer_state {
    const infer_model *m;
    int max_ctx;
    float *x;      /* (dim) the residual stream */
    float *xb;     /* (dim) */
    float *xb2;    /* (dim) */
    float *hb;     /* (hidden) */
    float *hb2;    /* (hidden) */
    float *q;      /* (dim) */
    float *att;    /* (n_heads, max_ctx) scores */
    float *logits; /* (vocab) */
    float *kcache; /* (layers, max_ctx, kv_dim) */
    float *vcache; /* (layers, max_ctx, kv_dim) */
};

int infer_state_create(const infer_model *m, int max_ctx, infer_state **out) {
    *out = NULL;
    const infer_config *c = &m->cfg;
    if (max_ctx <= 0)
        return INFER_ERR_ARG;
    infer_state *s = calloc(1, sizeof *s);
    if (!s)
        return INFER_ERR_NOMEM;
    size_t dim = (size_t)c->dim, kv = dim * (size_t)c->n_kv_heads / (size_t)c->n_heads;
    size_t cache = (size_t)c->n_layers * (size_t)max_ctx * kv;
    s->m = m;
    s->max_ctx = max_ctx;
    s->x = calloc(dim, sizeof(float));
    s->xb = calloc(dim, sizeof(float));
    s->xb2 = calloc(dim, sizeof(float));
    s->hb = calloc((size_t)c->hidden_dim, sizeof(float));
    s->hb2 = calloc((size_t)c->hidden_dim, sizeof(float));
    s->q = calloc(dim, sizeof(float));
    s->att = calloc((size_t)c->n_heads * (size_t)max_ctx, sizeof(float));
    s->logits = calloc((size_t)c->vocab_size, sizeof(float));
    s->kcache = calloc(cache, sizeof(float));
    s->vcache = calloc(cache, sizeof(float));
    if (!s->x || !s->xb || !s->xb2 || !s->hb || !s->hb2 || !s->q || !s->att || !s->logits ||
        !s->kcache || !s->vcache) {
        infer_state_free(s);
        return INFER_ERR_NOMEM;
    }
    *out = s;
    return INFER_OK;
}

void infer_state_free(infer_state *s) {
    if (!s)
        return;
    free(s->x);
    free(s->xb);
    free(s->xb2);
    free(s->hb);
    free(s->hb2);
    free(s->q);
    free(s->att);
    free(s->logits);
    free(s->kcache);
    free(s->vcache);
    free(s);
}

/* ---- the pieces ---------------------------------------------------------------------------- */

static void rmsnorm(float *o, const float *x, const float *w, int n, float eps) {
    double ss = 0; /* double: the sum of squares of a long vector loses bits in float */
    for (int i = 0; i < n; i++)
        ss += (double)x[i] * x[i];
    float scale = (float)(1.0 / sqrt(ss / n + eps));
    for (int i = 0; i < n; i++)
        o[i] = w[i] * (scale * x[i]);
}

/* xout (d) = W (d, n) @ x (n), W row-major [out][in] */
static void matmul(float *xout, const float *x, const float *w, int n, int d) {
    for (int i = 0; i < d; i++) {
        const float *row = w + (size_t)i * (size_t)n;
        float v = 0;
        for (int j = 0; j < n; j++)
            v += row[j] * x[j];
        xout[i] = v;
    }
}

static void softmax(float *x, int n) {
    float mx = x[0];
    for (int i = 1; i < n; i++)
        mx = x[i] > mx ? x[i] : mx;
    float sum = 0;
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - mx);
        sum += x[i];
    }
    for (int i = 0; i < n; i++)
        x[i] /= sum;
}

/* adjacent pairs (2j, 2j+1) of every head, as llama2.c and Meta's originals rotate */
static void rope(float *v, int n, int head_size, int pos, float theta) {
    for (int i = 0; i < n; i += 2) {
        int j = i % head_size;
        double freq = 1.0 / pow((double)theta, (double)j / head_size);
        double a = pos * freq;
        float fc = (float)cos(a), fs = (float)sin(a);
        float v0 = v[i], v1 = v[i + 1];
        v[i] = v0 * fc - v1 * fs;
        v[i + 1] = v0 * fs + v1 * fc;
    }
}

/* ---- one token ----------------------------------------------------------------------------- */

int infer_forward(infer_state *s, uint32_t token, int pos, const float **logits) {
    const infer_model *m = s->m;
    const infer_config *c = &m->cfg;
    if (token >= (uint32_t)c->vocab_size || pos < 0 || pos >= s->max_ctx)
        return INFER_ERR_ARG;
    const int dim = c->dim, hid = c->hidden_dim, hs = dim / c->n_heads;
    const int kv_dim = hs * c->n_kv_heads, group = c->n_heads / c->n_kv_heads;
    const size_t D = (size_t)dim, KV = (size_t)kv_dim, H = (size_t)hid;
    memcpy(s->x, m->emb + (size_t)token * D, D * sizeof(float));

    for (int l = 0; l < c->n_layers; l++) {
        const size_t L = (size_t)l;
        /* attention */
        rmsnorm(s->xb, s->x, m->rms_att + L * D, dim, c->rms_eps);
        float *k = s->kcache + (L * (size_t)s->max_ctx + (size_t)pos) * KV;
        float *v = s->vcache + (L * (size_t)s->max_ctx + (size_t)pos) * KV;
        matmul(s->q, s->xb, m->wq + L * D * D, dim, dim);
        matmul(k, s->xb, m->wk + L * D * KV, dim, kv_dim);
        matmul(v, s->xb, m->wv + L * D * KV, dim, kv_dim);
        rope(s->q, dim, hs, pos, c->rope_theta);
        rope(k, kv_dim, hs, pos, c->rope_theta);
        const float scale = 1.0f / sqrtf((float)hs);
        for (int h = 0; h < c->n_heads; h++) {
            const float *qh = s->q + (size_t)h * (size_t)hs;
            float *att = s->att + (size_t)h * (size_t)s->max_ctx;
            const size_t kvh = (size_t)(h / group) * (size_t)hs;
            for (int t = 0; t <= pos; t++) {
                const float *kt = s->kcache + (L * (size_t)s->max_ctx + (size_t)t) * KV + kvh;
                float score = 0;
                for (int i = 0; i < hs; i++)
                    score += qh[i] * kt[i];
                att[t] = score * scale;
            }
            softmax(att, pos + 1);
            float *out = s->xb + (size_t)h * (size_t)hs;
            memset(out, 0, (size_t)hs * sizeof(float));
            for (int t = 0; t <= pos; t++) {
                const float *vt = s->vcache + (L * (size_t)s->max_ctx + (size_t)t) * KV + kvh;
                for (int i = 0; i < hs; i++)
                    out[i] += att[t] * vt[i];
            }
        }
        matmul(s->xb2, s->xb, m->wo + L * D * D, dim, dim);
        for (int i = 0; i < dim; i++)
            s->x[i] += s->xb2[i];

        /* SwiGLU MLP */
        rmsnorm(s->xb, s->x, m->rms_ffn + L * D, dim, c->rms_eps);
        matmul(s->hb, s->xb, m->w1 + L * D * H, dim, hid);
        matmul(s->hb2, s->xb, m->w3 + L * D * H, dim, hid);
        for (int i = 0; i < hid; i++) {
            float g = s->hb[i];
            s->hb[i] = g / (1.0f + expf(-g)) * s->hb2[i];
        }
        matmul(s->xb, s->hb, m->w2 + L * D * H, hid, dim);
        for (int i = 0; i < dim; i++)
            s->x[i] += s->xb[i];
    }
    rmsnorm(s->x, s->x, m->rms_final, dim, c->rms_eps);
    matmul(s->logits, s->x, m->wcls, dim, c->vocab_size);
    *logits = s->logits;
    return INFER_OK;
}
