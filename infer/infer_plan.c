/* infer_plan.c - memory per rank before anything is loaded: weights, KV cache, activations,
 * from a HF config.json (or a loaded model's config). */
#include "infer_internal.h"

#include <errno.h>
#include <json-c/json.h>
#include <unistd.h>
#include <stdio.h>
#include <string.h>

static int get_int(json_object *o, const char *k, int64_t *v) {
    json_object *x;
    if (!json_object_object_get_ex(o, k, &x) || !json_object_is_type(x, json_type_int))
        return -1;
    *v = json_object_get_int64(x);
    return 0;
}

static double get_num(json_object *o, const char *k, double dflt) {
    json_object *x;
    if (!json_object_object_get_ex(o, k, &x) ||
        !(json_object_is_type(x, json_type_int) || json_object_is_type(x, json_type_double)))
        return dflt;
    return json_object_get_double(x);
}

/* bos/eos ids: an integer, or the first of a list (Llama 3.1 instruct lists three eos) */
static int64_t get_id(json_object *o, const char *k) {
    json_object *x;
    if (!json_object_object_get_ex(o, k, &x))
        return -1;
    if (json_object_is_type(x, json_type_array) && json_object_array_length(x) > 0)
        x = json_object_array_get_idx(x, 0);
    return json_object_is_type(x, json_type_int) ? json_object_get_int64(x) : -1;
}

/* "rope_scaling": null or {rope_type (or type): default|linear|dynamic|yarn|llama3, factor,
 * ...}; anything else is refused by name rather than computed wrongly */
static int rope_scaling(json_object *o, infer_config *c, const char *path, char *err,
                        size_t err_bytes) {
    json_object *rs, *x;
    c->rope_type = INFER_ROPE_DEFAULT;
    c->rope_factor = 1;
    c->rope_low_freq = 1;
    c->rope_high_freq = 4;
    c->rope_beta_fast = 32;
    c->rope_beta_slow = 1;
    if (!json_object_object_get_ex(o, "rope_scaling", &rs) || !rs)
        return INFER_OK;
    if (!json_object_is_type(rs, json_type_object)) {
        snprintf(err, err_bytes, "%s: \"rope_scaling\" is not an object", path);
        return INFER_ERR_FORMAT;
    }
    const char *t =
        json_object_object_get_ex(rs, "rope_type", &x) || json_object_object_get_ex(rs, "type", &x)
            ? json_object_get_string(x)
            : "default";
    static const char *names[] = {"default", "linear", "dynamic", "yarn", "llama3"};
    int type = -1;
    for (int i = 0; i < 5; i++)
        if (t && !strcmp(t, names[i]))
            type = i;
    if (type < 0) {
        snprintf(err, err_bytes,
                 "%s: rope_scaling type \"%s\" is not supported (default, linear, dynamic, yarn, "
                 "llama3)",
                 path, t ? t : "?");
        return INFER_ERR_FORMAT;
    }
    c->rope_type = type;
    c->rope_factor = get_num(rs, "factor", 1);
    const double orig = get_num(rs, "original_max_position_embeddings", 0);
    if (!(orig >= 0 && orig <= (1 << 30))) { /* also NaN; (int) of a larger double is UB */
        snprintf(err, err_bytes,
                 "%s: rope_scaling original_max_position_embeddings %g is out of "
                 "range",
                 path, orig);
        return INFER_ERR_FORMAT;
    }
    c->rope_orig_max = (int)orig;
    c->rope_low_freq = get_num(rs, "low_freq_factor", 1);
    c->rope_high_freq = get_num(rs, "high_freq_factor", 4);
    c->rope_beta_fast = get_num(rs, "beta_fast", 32);
    c->rope_beta_slow = get_num(rs, "beta_slow", 1);
    c->rope_attn_factor = get_num(rs, "attention_factor", 0);
    if (type != INFER_ROPE_DEFAULT && !(c->rope_factor >= 1 && c->rope_factor < 1e6)) {
        snprintf(err, err_bytes, "%s: rope_scaling factor %g is not >= 1", path, c->rope_factor);
        return INFER_ERR_FORMAT;
    }
    if (type == INFER_ROPE_LLAMA3 &&
        (c->rope_orig_max <= 0 || !(c->rope_high_freq > c->rope_low_freq) ||
         !(c->rope_low_freq > 0))) {
        snprintf(err, err_bytes,
                 "%s: llama3 rope_scaling needs original_max_position_embeddings > 0 and "
                 "high_freq_factor > low_freq_factor > 0",
                 path);
        return INFER_ERR_FORMAT;
    }
    if ((type == INFER_ROPE_DYNAMIC || type == INFER_ROPE_YARN) && c->seq_len <= 0 &&
        c->rope_orig_max <= 0) {
        snprintf(err, err_bytes, "%s: %s rope_scaling needs max_position_embeddings", path,
                 names[type]);
        return INFER_ERR_FORMAT;
    }
    return INFER_OK;
}

/* fields of Llama-like configs whose meaning this engine does not compute */
static int unsupported(json_object *o, const char *path, char *err, size_t err_bytes) {
    json_object *x;
    const char *act =
        json_object_object_get_ex(o, "hidden_act", &x) ? json_object_get_string(x) : "silu";
    if (act && strcmp(act, "silu")) {
        snprintf(err, err_bytes, "%s: hidden_act \"%s\" is not supported (silu)", path, act);
        return INFER_ERR_FORMAT;
    }
    static const char *flags[] = {"attention_bias", "mlp_bias"};
    for (int i = 0; i < 2; i++)
        if (json_object_object_get_ex(o, flags[i], &x) && json_object_get_boolean(x)) {
            snprintf(err, err_bytes, "%s: %s true is not supported", path, flags[i]);
            return INFER_ERR_FORMAT;
        }
    int64_t sw;
    if (!get_int(o, "sliding_window", &sw)) {
        int64_t mp = 0;
        if (get_int(o, "max_position_embeddings", &mp) || sw < mp) {
            snprintf(err, err_bytes,
                     "%s: sliding_window %lld (Mistral v0.1 style) is not supported yet", path,
                     (long long)sw);
            return INFER_ERR_FORMAT;
        }
    }
    return INFER_OK;
}

static int config_from_object(json_object *o, const char *path, infer_config *c, int *weight_bytes,
                              char *err, size_t err_bytes);

int infer_config_from_json(const char *path, infer_config *c, int *weight_bytes, char *err,
                           size_t err_bytes) {
    if (access(path, R_OK) != 0) {
        snprintf(err, err_bytes, "%s: cannot read: %s", path, strerror(errno));
        return INFER_ERR_IO;
    }
    json_object *o = json_object_from_file(path);
    if (!o || !json_object_is_type(o, json_type_object)) {
        snprintf(err, err_bytes, "%s: not a JSON object (%s)", path, json_util_get_last_err());
        json_object_put(o);
        return INFER_ERR_FORMAT;
    }
    return config_from_object(o, path, c, weight_bytes, err, err_bytes);
}

int infer_config_parse(const char *text, size_t n, const char *name, infer_config *c,
                       int *weight_bytes, char *err, size_t err_bytes) {
    json_tokener *tk = json_tokener_new();
    json_object *o = tk && n <= INT32_MAX ? json_tokener_parse_ex(tk, text, (int)n) : NULL;
    if (o && tk && json_tokener_get_parse_end(tk) != n) { /* trailing bytes */
        json_object_put(o);
        o = NULL;
    }
    json_tokener_free(tk);
    if (!o || !json_object_is_type(o, json_type_object)) {
        snprintf(err, err_bytes, "%s: not a JSON object", name);
        json_object_put(o);
        return INFER_ERR_FORMAT;
    }
    return config_from_object(o, name, c, weight_bytes, err, err_bytes);
}

/* takes o */
static int config_from_object(json_object *o, const char *path, infer_config *c, int *weight_bytes,
                              char *err, size_t err_bytes) {
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
    if (d <= 0 || i <= 0 || L <= 0 || h <= 0 || kv <= 0 || V <= 0 || h > 65536 ||
        (hd < 0 && h > d) || h % kv || (hd < 0 && d % h) || hd == 0 || hd > 8192 ||
        (hd > 0 ? hd : d / h) % 2 || d > (1 << 20) || i > (1 << 22) || L > 4096 || V > (1 << 24)) {
        snprintf(err, err_bytes,
                 "%s: inconsistent sizes (hidden %lld, heads %lld, kv heads %lld, head_dim %lld: "
                 "kv heads must divide heads, head_dim be even)",
                 path, (long long)d, (long long)h, (long long)kv, (long long)hd);
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
    int64_t mp = 0;
    const double theta = get_num(o, "rope_theta", 10000.0), eps = get_num(o, "rms_norm_eps", 1e-6);
    if (!get_int(o, "max_position_embeddings", &mp) && (mp < 0 || mp > (1 << 30))) {
        snprintf(err, err_bytes, "%s: max_position_embeddings %lld is out of range", path,
                 (long long)mp);
        json_object_put(o);
        return INFER_ERR_FORMAT;
    }
    if (!(theta > 1 && theta < 1e30) || !(eps >= 0 && eps < 1)) { /* (float) of more is UB */
        snprintf(err, err_bytes, "%s: rope_theta %g or rms_norm_eps %g is out of range", path,
                 theta, eps);
        json_object_put(o);
        return INFER_ERR_FORMAT;
    }
    c->seq_len = (int)mp;
    c->shared_classifier =
        json_object_object_get_ex(o, "tie_word_embeddings", &x) && json_object_get_boolean(x);
    c->rope_theta = (float)theta;
    c->rms_eps = (float)eps;
    c->rope_pairing = INFER_PAIR_HALF;
    c->bos_id = get_id(o, "bos_token_id");
    c->eos_id = get_id(o, "eos_token_id");
    int rc = rope_scaling(o, c, path, err, err_bytes);
    if (rc == INFER_OK)
        rc = unsupported(o, path, err, err_bytes);
    if (rc != INFER_OK) {
        json_object_put(o);
        return rc;
    }
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

static uint64_t round_up(uint64_t n, uint64_t m) {
    return (n + m - 1) / m * m;
}

void infer_plan_make(const infer_config *c, const infer_plan_args *a, infer_plan *p) {
    const uint64_t d = (uint64_t)c->dim, I = (uint64_t)c->hidden_dim, L = (uint64_t)c->n_layers;
    const uint64_t hd = (uint64_t)(c->head_dim ? c->head_dim : c->dim / c->n_heads);
    const uint64_t P = a->tp > 0 ? (uint64_t)a->tp : 1, V = (uint64_t)c->vocab_size;
    const uint64_t q = (uint64_t)c->n_heads * hd;
    const uint64_t T = a->threads > 0 ? (uint64_t)a->threads : 1;
    /* KV heads: split over ranks; with more ranks than KV heads each rank keeps one (vLLM) */
    const uint64_t kvh = share((uint64_t)c->n_kv_heads, P);
    const uint64_t qr = share(q, P), Ir = share(I, P), Vr = share(V, P), kvr = kvh * hd;
    memset(p, 0, sizeof *p);
    p->n_params = V * d * (c->shared_classifier ? 1 : 2) + d +
                  L * (d * q + 2 * d * (uint64_t)c->n_kv_heads * hd + q * d + 3 * d * I + 2 * d);
    /* per rank: attention and MLP matrices and the vocabulary split P ways, norms whole (and
     * widened to float32 in memory) */
    const uint64_t per_layer = d * qr + 2 * d * kvr + qr * d + 3 * d * Ir;
    const uint64_t params_rank = Vr * d * (c->shared_classifier ? 1 : 2) + L * per_layer;
    p->weights_bytes = params_rank * (uint64_t)a->weight_bytes + 4 * (2 * L + 1) * d;
    const uint64_t ctx = round_up(a->ctx, BK);
    p->kv_bytes = 2 * L * kvr * ctx * (uint64_t)a->kv_bytes;
    /* float32 activations as infer_state_create allocates them: the chunk's rows (padded to
     * RL) of the residual, norm output, q, k, v, attention output, the MLP's two products, the
     * RoPE tables; LR rows of logits; decode's per-segment partials; per thread the widened
     * weight block and the attention scratch; with bf16 activations a bf16 copy of the widest
     * product input */
    const uint64_t C = round_up(a->chunk < a->ctx ? a->chunk : a->ctx, RL);
    const uint64_t G = (uint64_t)(c->n_heads / c->n_kv_heads), R = round_up(QB * G, RM);
    const uint64_t segs = (a->ctx + SEG - 1) / SEG;
    uint64_t win = d > Ir ? d : Ir;
    win = win > qr ? win : qr;
    const uint64_t floats = C * (2 * d + 2 * qr + 2 * kvr + 2 * Ir + hd) + LR * Vr + hd / 2 +
                            kvh * segs * round_up(G, RM) * (hd + 2) +
                            T * (WB * win + 3 * R * hd + R * BK + 2 * BK * hd + 8 * R);
    p->act_bytes = 4 * floats + (a->act_bf16 ? 2 * C * win : 0);
    p->total_bytes = p->weights_bytes + p->kv_bytes + p->act_bytes;
}
