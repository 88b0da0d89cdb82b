/* infer_batch.c - one line of `longctx infer --input` (a JSON object) to a prompt and its
 * sampling options. Moved from infer_main.c; the ids come from infer_json_ids, as
 * perplexity's documents do. */
#include "infer_internal.h"
#include "tokenizer.h"

#include <json-c/json.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* a number field: 0 if absent or a finite number in [lo, hi] (then *v is set), else the
 * message names it */
static int num_field(json_object *o, const char *k, double lo, double hi, double *v, char *err,
                     size_t err_bytes) {
    json_object *x;
    if (!json_object_object_get_ex(o, k, &x))
        return 0;
    const double d = json_object_get_double(x);
    if (!(json_object_is_type(x, json_type_int) || json_object_is_type(x, json_type_double)) ||
        !(d >= lo && d <= hi)) {
        snprintf(err, err_bytes, "\"%s\": %s is not a number in [%g, %g]", k,
                 json_object_to_json_string_ext(x, JSON_C_TO_STRING_PLAIN), lo, hi);
        return -1;
    }
    *v = d;
    return 0;
}

int infer_batch_parse(const char *line, size_t n_line, tok_json *j, tok_ctx *tc, int add_bos,
                      uint64_t vocab, infer_batch_item *it, char *err, size_t err_bytes) {
    json_object *o = json_tokener_parse(line), *x;
    int st = INFER_ERR_FORMAT;
    double mt = (double)it->max_tokens, tk = (double)it->top_k;
    if (!o || !json_object_is_type(o, json_type_object)) {
        snprintf(err, err_bytes, "not a JSON object");
        goto done;
    }
    if (num_field(o, "max_tokens", 0, 1 << 24, &mt, err, err_bytes) ||
        num_field(o, "temperature", 0, 1e30, &it->temperature, err, err_bytes) ||
        num_field(o, "top_k", 0, 1e9, &tk, err, err_bytes) ||
        num_field(o, "top_p", 0, 1, &it->top_p, err, err_bytes))
        goto done;
    const char *bad;
    if (infer_sample_check(it->temperature, (long)tk, it->top_p, &bad) != INFER_OK) {
        snprintf(err, err_bytes, "\"%s\" is out of range", bad);
        goto done;
    }
    it->max_tokens = (long)mt;
    it->top_k = (long)tk;
    if (json_object_object_get_ex(o, "seed", &x))
        it->seed = (unsigned long long)json_object_get_int64(x);
    st = infer_json_ids(o, line, n_line, j, "prompt", tc, add_bos, vocab, &it->ids, &it->cap,
                        &it->n, err, err_bytes);
    if (st == INFER_OK && it->n == 0) {
        snprintf(err, err_bytes, "empty prompt");
        st = INFER_ERR_FORMAT;
    }
done:
    json_object_put(o);
    return st;
}

void infer_batch_item_free(infer_batch_item *it) {
    if (!it)
        return;
    free(it->ids);
    it->ids = NULL;
    it->n = it->cap = 0;
}
