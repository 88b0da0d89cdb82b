/* infer_plan.c - memory per rank before anything is loaded: weights, KV cache, activations,
 * from a HF config.json (or a loaded model's config). */
#include "infer_internal.h"

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

static int get_int(json_object *o, const char *k, int64_t *v) {
    json_object *x;
    if (!json_object_object_get_ex(o, k, &x) || !json_object_is_type(x, json_type_int))
        return -1;
    *v = json_object_get_int64(x);
    return 0;
}

int infer_config_from_json(const char *path, infer_config *c, int *weight_bytes, char *err,
                           size_t err_bytes) {
    json_object *o = json_object_from_file(path);
    if (!o || !json_object_is_type(o, json_type_object)) {
        snprintf(err, err_bytes, "%s: not a readable JSON object", path);
        json_object_put(o);
        return INFER_ERR_FORMAT;
    }
    int64_t d, i, L, h, kv = -1, V, hd = -1;
    const char *missing = get_int(o, "hidden_size", &d)           ? "hidden_size"
                          : get_int(o, "intermediate_size", &i)   ? "intermediate_size"
                          : get_int(o, "num_hidden_layers", &L)   ? "num_hidden_layers"
                          : get_int(o, "num_attention_heads", &h) ? "num_attention_heads"
                          : get_int(o, "vocab_size", &V)          ? "vocab_size"
                                                                  : NULL;
    if (missing) {
        snprintf(err, err_bytes, "%s: no integer \"%s\"", path, missing);
        json_object_put(o);
        return INFER_ERR_FORMAT;
    }
    get_int(o, "num_key_value_heads", &kv);
    get_int(o, "head_dim", &hd);
    if (kv < 0)
        kv = h;
    if (d <= 0 || i <= 0 || L <= 0 || h <= 0 || kv <= 0 || V <= 0 || h % kv || (hd < 0 && d % h) ||
        d > (1 << 20) || i > (1 << 22) || L > 4096 || V > (1 << 24)) {
        snprintf(err, err_bytes, "%s: inconsistent sizes (hidden %lld, heads %lld, kv heads %lld)",
                 path, (long long)d, (long long)h, (long long)kv);
        json_object_put(o);
        return INFER_ERR_FORMAT;
    }
    json_object *x;
    memset(c, 0, sizeof *c);
    c->dim = (int)d;
    c->hidden_dim = (int)i;
    c->n_layers = (int)L;
    c->n_heads = (int)h;
    c->n_kv_heads = (int)kv;
    c->vocab_size = (int)V;
    c->head_dim = hd > 0 ? (int)hd : (int)(d / h);
    c->seq_len = get_int(o, "max_position_embeddings", &d) ? 0 : (int)d;
    c->shared_classifier =
        json_object_object_get_ex(o, "tie_word_embeddings", &x) && json_object_get_boolean(x);
    c->rope_theta = json_object_object_get_ex(o, "rope_theta", &x)
                        ? (float)json_object_get_double(x)
                        : 10000.0f;
    c->rms_eps =
        json_object_object_get_ex(o, "rms_norm_eps", &x) ? (float)json_object_get_double(x) : 1e-6f;
    const char *dt =
        json_object_object_get_ex(o, "torch_dtype", &x) ? json_object_get_string(x) : "float32";
    *weight_bytes = dt && !strcmp(dt, "float32") ? 4 : 2;
    json_object_put(o);
    return INFER_OK;
}

/* ceil(n / p): the largest share of n split over p ranks (ggml's slices). */
static uint64_t share(uint64_t n, uint64_t p) {
    return (n + p - 1) / p;
}

void infer_plan_make(const infer_config *c, uint64_t ctx, int tp, int weight_bytes, int kv_bytes,
                     uint64_t chunk, infer_plan *p) {
    const uint64_t d = (uint64_t)c->dim, I = (uint64_t)c->hidden_dim, L = (uint64_t)c->n_layers;
    const uint64_t hd = (uint64_t)(c->head_dim ? c->head_dim : c->dim / c->n_heads);
    const uint64_t P = tp > 0 ? (uint64_t)tp : 1, V = (uint64_t)c->vocab_size;
    const uint64_t q = (uint64_t)c->n_heads * hd;
    /* KV heads: split over ranks; with more ranks than KV heads each rank keeps one (vLLM) */
    const uint64_t kvh = share((uint64_t)c->n_kv_heads, P);
    memset(p, 0, sizeof *p);
    p->n_params = V * d * (c->shared_classifier ? 1 : 2) + d +
                  L * (d * q + 2 * d * (uint64_t)c->n_kv_heads * hd + q * d + 3 * d * I + 2 * d);
    /* per rank: attention and MLP matrices and the vocabulary split P ways, norms whole */
    const uint64_t per_layer =
        d * share(q, P) + 2 * d * kvh * hd + share(q, P) * d + 3 * d * share(I, P) + 2 * d;
    const uint64_t params_rank =
        share(V, P) * d * (c->shared_classifier ? 1 : 2) + d + L * per_layer;
    p->weights_bytes = params_rank * (uint64_t)weight_bytes;
    p->kv_bytes = 2 * L * kvh * hd * ctx * (uint64_t)kv_bytes;
    /* float32 activations of one prefill chunk: residual and norms (3 d), q/k/v and attention
     * output, MLP (2 I / P), one row of scores per query over the context (tiles: 128 keys),
     * and the logits of the chunk's last position */
    p->act_bytes = 4 * (chunk * (3 * d + share(q, P) * 2 + 2 * kvh * hd + 2 * share(I, P)) +
                        chunk * share((uint64_t)c->n_heads, P) * 128 + share(V, P));
    p->total_bytes = p->weights_bytes + p->kv_bytes + p->act_bytes;
}
