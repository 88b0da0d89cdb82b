/* infer_plan.c - memory per rank before anything is loaded: weights, KV cache, activations,
 * from a HF config.json (or a loaded model's config). */
#include "infer_internal.h"
#include "tokenizer.h"

#include <assert.h>
#include <sys/stat.h>

#include <errno.h>
#include <json-c/json.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
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
    /* LongLLaMA keys outside a longllama config are refused: their meaning is that model's */
    const char *mt =
        json_object_object_get_ex(o, "model_type", &x) ? json_object_get_string(x) : NULL;
    static const char *mem_keys[] = {
        "mem_layers",      "last_context_length", "mem_attention_grouping",       "mem_dtype",
        "mem_positionals", "torch_attention",     "gradient_checkpoint_every_ith"};
    for (size_t k = 0; !(mt && !strcmp(mt, "longllama")) && k < sizeof mem_keys / sizeof *mem_keys;
         k++)
        if (json_object_object_get_ex(o, mem_keys[k], &x)) {
            snprintf(err, err_bytes,
                     "%s: \"%s\" (a LongLLaMA memory-layer key) outside model_type "
                     "\"longllama\" is not supported",
                     path, mem_keys[k]);
            return INFER_ERR_UNSUPPORTED;
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

/* model_type "longllama" (REFERENCE.md 1.3): mem_layers, last_context_length, and the keys the
 * engine computes as the release does; any value it does not compute is refused by name.
 * torch_attention and gradient_checkpoint_every_ith choose kernels and training memory only,
 * mem_attention_grouping (null or [heads, queries]) only splits the work. */
static int longllama(json_object *o, const char *path, infer_config *c, char *err,
                     size_t err_bytes) {
    json_object *x;
    int64_t v;
#define LL_FAIL(...)                                                                               \
    do {                                                                                           \
        snprintf(err, err_bytes, __VA_ARGS__);                                                     \
        return INFER_ERR_UNSUPPORTED;                                                              \
    } while (0)
    if (!json_object_object_get_ex(o, "mem_layers", &x) || !json_object_is_type(x, json_type_array))
        LL_FAIL("%s: longllama: no \"mem_layers\" list", path);
    const size_t n = json_object_array_length(x);
    if (n > INFER_MAX_MEM_LAYERS)
        LL_FAIL("%s: longllama: %zu mem_layers, at most %d", path, n, INFER_MAX_MEM_LAYERS);
    if (n == 0) /* the windows and the eviction are the memory layers' (the engine keys on them) */
        LL_FAIL("%s: longllama: \"mem_layers\" is empty (a plain Llama: use model_type llama)",
                path);
    for (size_t i = 0; i < n; i++) {
        json_object *e = json_object_array_get_idx(x, i);
        v = json_object_is_type(e, json_type_int) ? json_object_get_int64(e) : -1;
        if (v < 0 || v >= c->n_layers || (i > 0 && v <= c->mem_layers[i - 1]))
            LL_FAIL("%s: longllama: mem_layers[%zu] is not a layer index in [0, %d) above the "
                    "previous one",
                    path, i, c->n_layers);
        c->mem_layers[i] = (int)v;
    }
    c->n_mem_layers = (int)n;
    if (c->seq_len <= 0)
        LL_FAIL("%s: longllama: no max_position_embeddings (the window)", path);
    if (get_int(o, "last_context_length", &v) || v < 0 || v > c->seq_len)
        LL_FAIL("%s: longllama: last_context_length is not an integer in [0, "
                "max_position_embeddings %d]",
                path, c->seq_len);
    c->last_ctx = (int)v;
    const char *dt =
        json_object_object_get_ex(o, "mem_dtype", &x) ? json_object_get_string(x) : "bfloat16";
    if (!dt || strcmp(dt, "bfloat16"))
        LL_FAIL("%s: longllama: mem_dtype \"%s\" is not supported (bfloat16)", path, dt ? dt : "?");
    if (json_object_object_get_ex(o, "mem_positionals", &x) && !json_object_get_boolean(x))
        LL_FAIL("%s: longllama: mem_positionals false is not supported (true)", path);
    if (json_object_object_get_ex(o, "mem_attention_grouping", &x) && x &&
        !(json_object_is_type(x, json_type_array) && json_object_array_length(x) == 2))
        LL_FAIL("%s: longllama: mem_attention_grouping is not null or [heads, queries]", path);
    if (c->rope_type != INFER_ROPE_DEFAULT || c->rope_factor != 1)
        LL_FAIL("%s: longllama: rope_scaling is not null", path);
    if (c->n_kv_heads != c->n_heads)
        LL_FAIL("%s: longllama: num_key_value_heads %d != num_attention_heads %d (the release "
                "is MHA)",
                path, c->n_kv_heads, c->n_heads);
#undef LL_FAIL
    return INFER_OK;
}

int infer_config_from_json(const char *path, infer_config *c, int *weight_bytes, char *err,
                           size_t err_bytes) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, err_bytes, "%s: cannot read: %s", path, strerror(errno));
        return INFER_ERR_IO;
    }
    size_t cap = 1 << 14, len = 0, got;
    char *text = malloc(cap);
    while (text && (got = fread(text + len, 1, cap - len, f)) > 0)
        if ((len += got) == cap) {
            char *q = cap < (1u << 26) ? realloc(text, cap *= 2) : NULL;
            if (!q)
                free(text);
            text = q;
        }
    const int read_err = ferror(f);
    fclose(f);
    if (!text || read_err) {
        snprintf(err, err_bytes, "%s: %s", path,
                 !text ? "out of memory (or over 64 MiB)" : "read error");
        free(text);
        return !text ? INFER_ERR_NOMEM : INFER_ERR_IO;
    }
    int rc = infer_config_parse(text, len, path, c, weight_bytes, err, err_bytes);
    free(text);
    return rc;
}

int infer_config_parse(const char *text, size_t n, const char *name, infer_config *c,
                       int *weight_bytes, char *err, size_t err_bytes) {
    if (n == 0 || tok_json_is_blank(text, n)) { /* text is not NUL-terminated: no strspn */
        snprintf(err, err_bytes, "%s: empty file, want a JSON object", name);
        return INFER_ERR_FORMAT;
    }
    json_tokener *tk = json_tokener_new();
    if (!tk || n > INT32_MAX) {
        snprintf(err, err_bytes, "%s: %s", name, !tk ? "out of memory" : "over 2 GiB");
        json_tokener_free(tk);
        return !tk ? INFER_ERR_NOMEM : INFER_ERR_FORMAT;
    }
    json_object *o = json_tokener_parse_ex(tk, text, (int)n);
    const enum json_tokener_error je = json_tokener_get_error(tk);
    const size_t end = json_tokener_get_parse_end(tk);
    json_tokener_free(tk);
    if (!o) {
        snprintf(err, err_bytes, "%s: not JSON: %s at byte %zu", name,
                 je == json_tokener_continue ? "the text ends inside a value"
                                             : json_tokener_error_desc(je),
                 end);
        return INFER_ERR_FORMAT;
    }
    if (end != n && !tok_json_is_blank(text + end, n - end)) {
        snprintf(err, err_bytes, "%s: bytes after the JSON object at byte %zu", name, end);
        json_object_put(o);
        return INFER_ERR_FORMAT;
    }
    if (!json_object_is_type(o, json_type_object)) {
        snprintf(err, err_bytes, "%s: not a JSON object", name);
        json_object_put(o);
        return INFER_ERR_FORMAT;
    }
    return config_from_object(o, name, c, weight_bytes, err, err_bytes);
}

/* 0 if lo <= v <= hi; else the message names the field and value */
static int out_of_range(const char *path, const char *field, int64_t v, int64_t lo, int64_t hi,
                        char *err, size_t err_bytes) {
    if (v >= lo && v <= hi)
        return 0;
    snprintf(err, err_bytes, "%s: %s %lld is out of range [%lld, %lld]", path, field, (long long)v,
             (long long)lo, (long long)hi);
    return 1;
}

/* the sizes one by one, then how they relate; the first failure names field and value */
static int check_sizes(const char *path, int64_t d, int64_t i, int64_t L, int64_t h, int64_t kv,
                       int64_t V, int64_t hd, char *err, size_t err_bytes) {
    if (out_of_range(path, "hidden_size", d, 1, 1 << 20, err, err_bytes) ||
        out_of_range(path, "intermediate_size", i, 1, 1 << 22, err, err_bytes) ||
        out_of_range(path, "num_hidden_layers", L, 1, 4096, err, err_bytes) ||
        out_of_range(path, "num_attention_heads", h, 1, 65536, err, err_bytes) ||
        out_of_range(path, "num_key_value_heads", kv, 1, h, err, err_bytes) ||
        out_of_range(path, "vocab_size", V, 1, 1 << 24, err, err_bytes) ||
        (hd >= 0 && out_of_range(path, "head_dim", hd, 2, 8192, err, err_bytes)))
        return INFER_ERR_FORMAT;
    if (h % kv)
        snprintf(err, err_bytes,
                 "%s: num_key_value_heads %lld does not divide num_attention_heads %lld", path,
                 (long long)kv, (long long)h);
    else if (hd < 0 && d % h)
        snprintf(err, err_bytes,
                 "%s: hidden_size %lld is not a multiple of num_attention_heads %lld (and there "
                 "is no head_dim)",
                 path, (long long)d, (long long)h);
    else if ((hd > 0 ? hd : d / h) % 2)
        snprintf(err, err_bytes, "%s: head_dim %lld is odd (RoPE rotates pairs)", path,
                 (long long)(hd > 0 ? hd : d / h));
    else
        return INFER_OK;
    return INFER_ERR_FORMAT;
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
    if (check_sizes(path, d, i, L, h, kv, V, hd, err, err_bytes) != INFER_OK) {
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
    const char *mt =
        json_object_object_get_ex(o, "model_type", &x) ? json_object_get_string(x) : NULL;
    if (rc == INFER_OK && mt && !strcmp(mt, "longllama"))
        rc = longllama(o, path, c, err, err_bytes);
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

/* ---- options, shared by infer, perplexity and plan ---------------------------------------- */

infer_opts infer_opts_default(void) {
    infer_opts o = {.kv_dtype = INFER_DT_F32,
                    .prefill_chunk = INFER_PREFILL_CHUNK,
                    .threads = 1,
                    .act_dtype = INFER_ACT_F32};
    return o;
}

int infer_opts_check(const infer_config *c, const infer_opts *o, int n_ranks, char *err,
                     size_t err_bytes) {
    if (o->kv_dtype != INFER_DT_F32 && o->kv_dtype != INFER_DT_BF16)
        snprintf(err, err_bytes, "kv_dtype %d is not f32 or bf16", o->kv_dtype);
    else if (o->act_dtype != INFER_ACT_F32 && o->act_dtype != INFER_ACT_BF16)
        snprintf(err, err_bytes, "act_dtype %d is not f32 or bf16", o->act_dtype);
    else if (o->max_ctx < 1 || o->max_ctx > INT32_MAX / 2)
        snprintf(err, err_bytes, "ctx %d is out of range [1, %d]", o->max_ctx, INT32_MAX / 2);
    else if (o->prefill_chunk < 0 || o->prefill_chunk > (1 << 20))
        snprintf(err, err_bytes, "prefill chunk %d is out of range [1, %d]", o->prefill_chunk,
                 1 << 20);
    else if (o->threads < 0 || o->threads > 1024)
        snprintf(err, err_bytes, "threads %d is out of range [1, 1024]", o->threads);
    else if (o->grid_rows < 0 || (n_ranks >= 1 && o->grid_rows > 0 && n_ranks % o->grid_rows))
        snprintf(err, err_bytes, "a grid of %d process rows does not divide %d ranks", o->grid_rows,
                 n_ranks);
    else if (o->grid_cols < 0 || (o->grid_cols > 0 && o->grid_rows * o->grid_cols != n_ranks))
        snprintf(err, err_bytes,
                 "the grid %dx%d (--tp-grid) is %d ranks, not the %d tensor-parallel ranks",
                 o->grid_rows, o->grid_cols, o->grid_rows * o->grid_cols, n_ranks);
    else if (o->grid_block < 0 || o->grid_block > 4096)
        snprintf(err, err_bytes, "grid block %d is out of range [1, 4096]", o->grid_block);
    else if (o->mem_topk < 0 || o->mem_topk > INT32_MAX / 2)
        snprintf(err, err_bytes, "mem_topk %d is out of range [0, %d]", o->mem_topk, INT32_MAX / 2);
    else if (o->mem_topk > 0 && c->n_mem_layers == 0)
        snprintf(err, err_bytes, "mem_topk %d: the model has no LongLLaMA memory layers",
                 o->mem_topk);
    else if (c->n_mem_layers > 0 && o->grid_rows > 0)
        snprintf(err, err_bytes,
                 "2D prefill (--tp-grid) of LongLLaMA memory layers is not "
                 "implemented (use 1D tensor parallelism)");
    else if (n_ranks < 1 || c->n_heads % n_ranks)
        snprintf(err, err_bytes,
                 "%d tensor-parallel ranks do not divide the model's %d attention heads", n_ranks,
                 c->n_heads);
    else if (c->n_kv_heads % n_ranks && n_ranks % c->n_kv_heads)
        snprintf(err, err_bytes,
                 "%d tensor-parallel ranks and the model's %d KV heads: neither divides the other",
                 n_ranks, c->n_kv_heads);
    else
        return INFER_OK;
    return INFER_ERR_ARG;
}

/* a whole integer in [lo, hi], or -1 */
static long opt_long(const char *s, long lo, long hi) {
    char *end = NULL;
    errno = 0;
    const long v = strtol(s, &end, 10);
    return end == s || *end || errno || v < lo || v > hi ? -1 : v;
}

int infer_opts_parse(infer_opts *o, const char *name, const char *value, char *err,
                     size_t err_bytes) {
    long v;
    if (!strcmp(name, "no-overlap")) {
        o->no_overlap = 1;
        return INFER_OK;
    }
    if (!value) {
        snprintf(err, err_bytes, "--%s wants a value", name);
        return INFER_ERR_ARG;
    }
    if (!strcmp(name, "kv-dtype") || !strcmp(name, "act-dtype")) {
        const int f32 = !strcmp(value, "f32"), bf16 = !strcmp(value, "bf16");
        if (!f32 && !bf16) {
            snprintf(err, err_bytes, "--%s is f32 or bf16, not '%s'", name, value);
            return INFER_ERR_ARG;
        }
        if (name[0] == 'k')
            o->kv_dtype = f32 ? INFER_DT_F32 : INFER_DT_BF16;
        else
            o->act_dtype = f32 ? INFER_ACT_F32 : INFER_ACT_BF16;
        return INFER_OK;
    }
    if (!strcmp(name, "prefill-chunk") || !strcmp(name, "threads")) {
        const long hi = name[0] == 'p' ? 1 << 20 : 1024;
        if ((v = opt_long(value, 0, hi)) < 0) {
            snprintf(err, err_bytes, "--%s %s: want an integer in [0, %ld] (0: default)", name,
                     value, hi);
            return INFER_ERR_ARG;
        }
        if (name[0] == 'p')
            o->prefill_chunk = v ? (int)v : INFER_PREFILL_CHUNK;
        else
            o->threads = v ? (int)v : 1;
        return INFER_OK;
    }
    if (!strcmp(name, "tp-grid")) {
        const char *x = strpbrk(value, "xX");
        char rows[16];
        long r = -1, c = -1;
        if (x && (size_t)(x - value) < sizeof rows) {
            memcpy(rows, value, (size_t)(x - value));
            rows[x - value] = '\0';
            r = opt_long(rows, 1, 65536);
            c = opt_long(x + 1, 1, 65536);
        }
        if (r < 1 || c < 1) {
            snprintf(err, err_bytes, "--tp-grid wants rows x columns like 2x4, not '%s'", value);
            return INFER_ERR_ARG;
        }
        o->grid_rows = (int)r;
        o->grid_cols = (int)c;
        return INFER_OK;
    }
    if (!strcmp(name, "grid-block")) {
        if ((v = opt_long(value, 1, 4096)) < 0) {
            snprintf(err, err_bytes, "--grid-block %s: want an integer in [1, 4096]", value);
            return INFER_ERR_ARG;
        }
        o->grid_block = (int)v;
        return INFER_OK;
    }
    if (!strcmp(name, "mem-topk")) {
        if ((v = opt_long(value, 0, INT32_MAX / 2)) < 0) {
            snprintf(err, err_bytes, "--mem-topk %s: want an integer >= 0 (0: dense)", value);
            return INFER_ERR_ARG;
        }
        o->mem_topk = (int)v;
        return INFER_OK;
    }
    snprintf(err, err_bytes, "--%s is not a run option", name);
    return INFER_ERR_ARG;
}

int infer_config_load(const char *path, infer_config *c, int *weight_bytes, char *err,
                      size_t err_bytes) {
    const size_t n = strlen(path);
    struct stat sb;
    *weight_bytes = 4;
    if (n > 4 && !strcmp(path + n - 4, ".bin") && stat(path, &sb) == 0 && !S_ISDIR(sb.st_mode)) {
        infer_model *m; /* llama2.c: the header, and the file's size checked against it */
        int st = infer_model_load(path, MPI_COMM_SELF, &m);
        if (st == INFER_OK)
            *c = *infer_model_config(m);
        else
            snprintf(err, err_bytes, "%s", infer_model_errmsg(m));
        infer_model_free(m);
        return st;
    }
    char cfg[4200];
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
        snprintf(cfg, sizeof cfg, "%s/config.json", path);
    else
        snprintf(cfg, sizeof cfg, "%s", path);
    return infer_config_from_json(cfg, c, weight_bytes, err, err_bytes);
}

/* ---- the memory plan ---------------------------------------------------------------------- */

void infer_plan_make(const infer_config *c, int weight_bytes, const infer_opts *o, int n_ranks,
                     infer_plan *p) {
    assert(o->max_ctx > 0);
    const uint64_t d = (uint64_t)c->dim, I = (uint64_t)c->hidden_dim, L = (uint64_t)c->n_layers;
    const uint64_t hd = (uint64_t)(c->head_dim ? c->head_dim : c->dim / c->n_heads);
    const uint64_t P = n_ranks > 0 ? (uint64_t)n_ranks : 1, V = (uint64_t)c->vocab_size;
    const uint64_t q = (uint64_t)c->n_heads * hd;
    const uint64_t T = o->threads > 0 ? (uint64_t)o->threads : 1;
    const uint64_t max_ctx = (uint64_t)o->max_ctx;
    const uint64_t chunk = o->prefill_chunk > 0 ? (uint64_t)o->prefill_chunk : INFER_PREFILL_CHUNK;
    const uint64_t kv_elt = o->kv_dtype == INFER_DT_F32 ? 4 : 2;
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
    p->weights_bytes = params_rank * (uint64_t)weight_bytes + 4 * (2 * L + 1) * d;
    /* LongLLaMA's local context stays within max_position_embeddings (infer_state_create) */
    const uint64_t local =
        c->n_mem_layers > 0 && (uint64_t)c->seq_len < max_ctx ? (uint64_t)c->seq_len : max_ctx;
    const uint64_t ctx = round_up(local, BK);
    p->kv_bytes = 2 * L * kvr * ctx * kv_elt;
    /* LongLLaMA: each memory layer's bf16 keys and values of this rank's heads for max_ctx
     * positions (memory, and the local context's un-rotated copies staged after it) */
    p->mem_bytes = 2 * (uint64_t)c->n_mem_layers * kvr * max_ctx * 2;
    p->kv_bytes += p->mem_bytes;
    /* float32 activations as infer_state_create allocates them: the chunk's rows (padded to
     * RL) of the residual, norm output, q, k, v, attention output, the MLP's two products, the
     * RoPE tables; LR rows of logits; the hd / 2 inverse frequencies (double); decode's per-segment
     * partials; per thread the widened weight block and the attention scratch; with bf16
     * activations a bf16 copy of the widest product input */
    const uint64_t C = round_up(chunk < max_ctx ? chunk : max_ctx, RL);
    /* the local group: query heads per KV head on this rank (1 when KV heads are replicated) */
    const uint64_t G = share((uint64_t)c->n_heads, P) / kvh, R = round_up(QB * G, RM);
    const uint64_t segs = (local + SEG - 1) / SEG;
    uint64_t win = d > Ir ? d : Ir;
    win = win > qr ? win : qr;
    const uint64_t floats = C * (2 * d + 2 * qr + 2 * kvr + 2 * Ir + hd) + LR * Vr + hd +
                            kvh * segs * round_up(G, RM) * (hd + 2) +
                            T * (WB * win + 3 * R * hd + R * BK + 2 * BK * hd + 8 * R) +
                            (c->n_mem_layers > 0 ? T * 2 * max_ctx : 0); /* memory scores */
    /* tensor parallelism: LR whole rows of logits gathered from the vocabulary slices, and
     * their staging buffer */
    const uint64_t gather = P > 1 ? 2 * LR * V : 0;
    p->act_bytes = 4 * (floats + gather) + (o->act_dtype == INFER_ACT_BF16 ? 2 * C * win : 0);
    p->total_bytes = p->weights_bytes + p->kv_bytes + p->act_bytes;
    p->kv_heads_per_rank = (int)kvh;
    p->kv_replicas = P > (uint64_t)c->n_kv_heads ? (int)(P / (uint64_t)c->n_kv_heads) : 1;
    /* all-reduces of dim floats: after attention and after the MLP of every layer, and the
     * embedding's; one decode token, or one prefill chunk of C tokens */
    p->allreduce_calls_token = P > 1 ? 2 * L + 1 : 0;
    p->allreduce_bytes_token = p->allreduce_calls_token * d * 4;
    p->allreduce_bytes_chunk = p->allreduce_bytes_token * (chunk < max_ctx ? chunk : max_ctx);
    if (o->grid_rows > 0) {
        const int nb = o->grid_block ? o->grid_block : INFER_GRID_BLOCK;
        const int ch = (int)(chunk < max_ctx ? chunk : max_ctx);
        if (infer_grid_plan_bytes(c, (int)P, o->grid_rows, nb, ch, 0, &p->grid_weight_bytes,
                                  &p->grid_act_bytes, &p->grid_setup_bytes) == INFER_OK)
            p->total_bytes += p->grid_weight_bytes + p->grid_act_bytes;
    }
}
