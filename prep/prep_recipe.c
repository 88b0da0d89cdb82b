/* prep_recipe.c - mixture recipes: the shipped ones and the JSON file format. */
#include "prep.h"

#include <errno.h>
#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- shipped recipes ----------------------------------------------------------------------- */

/* Each says where its numbers come from ("comment" is kept in the manifest's metadata). */
static const char *const BUILTIN[][2] = {
    {"fu2024-per-source",
     "{\"name\": \"fu2024-per-source\",\n"
     " \"comment\": \"Fu et al. 2024, per-source length upsampling, as their "
     "slimpajama_packing.py ran it (REFERENCE.md 1.1): SlimPajama domain shares from the code, "
     "documents under 4096 tokens kept with probability 0.1 (the script's flag), 131072-token "
     "sequences, BOS per document, no EOS, documents concatenated across sequence boundaries. "
     "Differences, on purpose: exact token counts instead of characters/3.68, exact budgets, "
     "seeded order. target_tokens 5e9 is the paper's largest run.\",\n"
     " \"domain\": {\"json\": \"meta.redpajama_set_name\"},\n"
     " \"text\": \"text\",\n"
     " \"target_tokens\": 5000000000,\n"
     " \"shares\": {\"RedPajamaCommonCrawl\": 0.53374772, \"RedPajamaC4\": 0.26609933,\n"
     "            \"RedPajamaGithub\": 0.05004782, \"RedPajamaArXiv\": 0.04290379,\n"
     "            \"RedPajamaBook\": 0.0414836, \"RedPajamaWikipedia\": 0.03402128,\n"
     "            \"RedPajamaStackExchange\": 0.03169647},\n"
     " \"bucket_edges\": [0, 4096, 8192, 16384, 32768, 65536, 131072],\n"
     " \"bucket_weights\": [0.1, 1, 1, 1, 1, 1, 1],\n"
     " \"max_copies\": 1,\n"
     " \"seq_len\": [131072], \"packing\": \"concat\", \"bos\": true, \"eos\": false,\n"
     " \"dedup\": true, \"seed\": 0}\n"},
    {"llama2-long",
     "{\"name\": \"llama2-long\",\n"
     " \"comment\": \"Xiong et al. 2023 (Llama 2 Long, REFERENCE.md 1.2): 32768-token "
     "sequences, long texts upsampled in the input's own mixture. The paper publishes no "
     "weights: documents of 4K tokens or more at weight 2 (two copies at most) are ours. It "
     "found data quality matters more than many long texts, hence a mild factor.\",\n"
     " \"domain\": {\"json\": \"meta.redpajama_set_name\"},\n"
     " \"text\": \"text\",\n"
     " \"target_tokens\": 0,\n"
     " \"shares\": \"as_input\",\n"
     " \"bucket_edges\": [0, 4096, 8192, 16384, 32768, 65536, 131072],\n"
     " \"bucket_weights\": [1, 2, 2, 2, 2, 2, 2],\n"
     " \"max_copies\": 2,\n"
     " \"seq_len\": [32768], \"packing\": \"concat\", \"bos\": true, \"eos\": false,\n"
     " \"dedup\": true, \"seed\": 0}\n"},
    {"prolong-64k",
     "{\"name\": \"prolong-64k\",\n"
     " \"comment\": \"ProLong-style 64K mixture: 60% of tokens from long documents, 40% from "
     "short ones, 65536-token sequences, documents kept whole where they fit (bestfit). Long "
     "means 64K tokens or more here (our choice: ProLong picks long sources, not lengths). "
     "Long documents may repeat up to 4 times to reach their share.\",\n"
     " \"domain\": {\"json\": \"meta.redpajama_set_name\"},\n"
     " \"text\": \"text\",\n"
     " \"target_tokens\": 1000000000,\n"
     " \"shares\": \"as_input\",\n"
     " \"bucket_edges\": [0, 65536],\n"
     " \"bucket_shares\": [0.4, 0.6],\n"
     " \"max_copies\": 4,\n"
     " \"seq_len\": [65536], \"packing\": \"bestfit\", \"bos\": true, \"eos\": true,\n"
     " \"dedup\": true, \"seed\": 0}\n"},
    {"keep", "{\"name\": \"keep\",\n"
             " \"comment\": \"No reweighting: every document once (after dedup), in the input's "
             "mixture, packed into 131072-token sequences.\",\n"
             " \"domain\": {\"fixed\": \"all\"},\n"
             " \"text\": \"text\",\n"
             " \"target_tokens\": 0,\n"
             " \"shares\": \"as_input\",\n"
             " \"bucket_edges\": [0, 4096, 8192, 16384, 32768, 65536, 131072],\n"
             " \"bucket_weights\": [1, 1, 1, 1, 1, 1, 1],\n"
             " \"max_copies\": 1,\n"
             " \"seq_len\": [131072], \"packing\": \"concat\", \"bos\": true, \"eos\": false,\n"
             " \"dedup\": true, \"seed\": 0}\n"},
};

static const char *const NAMES[] = {"fu2024-per-source", "llama2-long", "prolong-64k", "keep",
                                    NULL};

const char *const *prep_recipe_names(void) {
    return NAMES;
}

const char *prep_recipe_builtin(const char *name) {
    for (size_t i = 0; i < sizeof BUILTIN / sizeof BUILTIN[0]; i++)
        if (!strcmp(BUILTIN[i][0], name))
            return BUILTIN[i][1];
    return NULL;
}

/* ---- parsing ------------------------------------------------------------------------------- */

#define BAD(...)                                                                                   \
    do {                                                                                           \
        snprintf(err, err_bytes, __VA_ARGS__);                                                     \
        st = PREP_ERR_RECIPE;                                                                      \
        goto done;                                                                                 \
    } while (0)

static int get_u64(json_object *v, uint64_t *out) {
    if (json_object_is_type(v, json_type_int) && json_object_get_int64(v) >= 0) {
        *out = (uint64_t)json_object_get_int64(v);
        return 0;
    }
    if (json_object_is_type(v, json_type_double) && json_object_get_double(v) >= 0 &&
        json_object_get_double(v) < 1.8e19) {
        double d = json_object_get_double(v);
        *out = (uint64_t)d;
        return (double)*out == d ? 0 : -1;
    }
    return -1;
}

/* A finite number: json-c reads 1e999 as infinity (found by fuzz_recipe: a share of inf made
 * every share NaN after the normalisation) */
static int get_num(json_object *v, double *out) {
    if (!json_object_is_type(v, json_type_int) && !json_object_is_type(v, json_type_double))
        return -1;
    *out = json_object_get_double(v);
    return isfinite(*out) ? 0 : -1;
}

static int copy_str(char *dst, size_t n, json_object *v) {
    if (!json_object_is_type(v, json_type_string) || (size_t)json_object_get_string_len(v) >= n ||
        json_object_get_string_len(v) == 0)
        return -1;
    memcpy(dst, json_object_get_string(v), (size_t)json_object_get_string_len(v) + 1);
    return 0;
}

static int find_domain(prep_recipe *r, const char *name) {
    for (int i = 0; i < r->n_domains; i++)
        if (!strcmp(r->domains[i].name, name))
            return i;
    if (r->n_domains == PREP_MAX_DOMAINS || strlen(name) >= sizeof r->domains[0].name)
        return -1;
    prep_domain_rule *d = &r->domains[r->n_domains];
    memset(d, 0, sizeof *d);
    snprintf(d->name, sizeof d->name, "%s", name);
    return r->n_domains++;
}

/* What a key sets that the other keys check once all are read. */
typedef struct {
    int has_weights, has_bshares; /* how many bucket_weights / bucket_shares were given */
    double bshares[PREP_MAX_BUCKETS];
} recipe_pending;

/* The defaults: the keep recipe's. */
static void recipe_defaults(prep_recipe *r) {
    memset(r, 0, sizeof *r);
    snprintf(r->name, sizeof r->name, "custom");
    r->domain_src = PREP_DOMAIN_FIXED;
    snprintf(r->domain_fixed, sizeof r->domain_fixed, "all");
    snprintf(r->text_path, sizeof r->text_path, "text");
    r->shares_as_input = 1;
    static const uint64_t edges[] = {0, 4096, 8192, 16384, 32768, 65536, 131072};
    r->n_edges = 7;
    for (int b = 0; b < 7; b++) {
        r->edges[b] = edges[b];
        r->weights[b] = 1;
    }
    r->max_copies = 1;
    r->n_seq_lens = 1;
    r->seq_lens[0] = 131072;
    r->packing = PREP_PACK_CONCAT;
    r->bestfit_window = 1024;
    r->bos = 1;
    r->dedup = 1;
}

/* "domain": {"json": PATH} | {"fixed": NAME} | {"glob": [[PATTERN, NAME], ...]} */
static int parse_domain(json_object *val, const char *origin, prep_recipe *r, char *err,
                        size_t err_bytes) {
    int st = PREP_OK;
    json_object *x;
    if (json_object_object_get_ex(val, "json", &x)) {
        r->domain_src = PREP_DOMAIN_JSON;
        if (copy_str(r->domain_path, sizeof r->domain_path, x))
            BAD("%s: domain.json must be a JSON path string", origin);
    } else if (json_object_object_get_ex(val, "fixed", &x)) {
        r->domain_src = PREP_DOMAIN_FIXED;
        if (copy_str(r->domain_fixed, sizeof r->domain_fixed, x))
            BAD("%s: domain.fixed must be a string", origin);
    } else if (json_object_object_get_ex(val, "glob", &x) &&
               json_object_is_type(x, json_type_array)) {
        r->domain_src = PREP_DOMAIN_GLOB;
        size_t n = json_object_array_length(x);
        if (n == 0 || n > 32)
            BAD("%s: domain.glob needs 1 to 32 [pattern, domain] pairs", origin);
        for (size_t i = 0; i < n; i++) {
            json_object *p = json_object_array_get_idx(x, i);
            if (!json_object_is_type(p, json_type_array) || json_object_array_length(p) != 2 ||
                copy_str(r->glob_pattern[i], sizeof r->glob_pattern[i],
                         json_object_array_get_idx(p, 0)) ||
                copy_str(r->glob_domain[i], sizeof r->glob_domain[i],
                         json_object_array_get_idx(p, 1)))
                BAD("%s: domain.glob[%zu] must be [\"pattern\", \"domain\"]", origin, i);
        }
        r->n_globs = (int)n;
    } else {
        BAD("%s: \"domain\" must be {\"json\": PATH}, {\"fixed\": NAME} or {\"glob\": "
            "[[PATTERN, NAME], ...]}",
            origin);
    }
done:
    return st;
}

/* "shares": "as_input" | {domain: share} (normalised) */
static int parse_shares(json_object *val, const char *origin, prep_recipe *r, char *err,
                        size_t err_bytes) {
    int st = PREP_OK;
    if (json_object_is_type(val, json_type_string) &&
        !strcmp(json_object_get_string(val), "as_input")) {
        r->shares_as_input = 1;
    } else if (json_object_is_type(val, json_type_object)) {
        r->shares_as_input = 0;
        double sum = 0;
        json_object_object_foreach(val, dname, dv) {
            int d = find_domain(r, dname);
            double s;
            if (d < 0 || get_num(dv, &s) || s < 0)
                BAD("%s: shares.%s must be a number >= 0", origin, dname);
            r->domains[d].share = s;
            sum += s;
        }
        if (!(sum > 0) || !isfinite(sum))
            BAD("%s: shares must not all be 0, and their sum must be finite", origin);
        for (int d = 0; d < r->n_domains; d++)
            r->domains[d].share /= sum;
    } else {
        BAD("%s: shares must be \"as_input\" or {domain: share}", origin);
    }
done:
    return st;
}

static int parse_bucket_edges(json_object *val, const char *origin, prep_recipe *r, char *err,
                              size_t err_bytes) {
    int st = PREP_OK;
    size_t n = json_object_is_type(val, json_type_array) ? json_object_array_length(val) : 0;
    if (n == 0 || n > PREP_MAX_BUCKETS)
        BAD("%s: bucket_edges must list 1 to %d edges", origin, PREP_MAX_BUCKETS);
    for (size_t i = 0; i < n; i++)
        if (get_u64(json_object_array_get_idx(val, i), &r->edges[i]) ||
            (i == 0 && r->edges[0] != 0) || (i > 0 && r->edges[i] <= r->edges[i - 1]))
            BAD("%s: bucket_edges must start at 0 and increase", origin);
    r->n_edges = (int)n;
done:
    return st;
}

/* "bucket_weights" or "bucket_shares": checked against the edges once all keys are read */
static int parse_bucket_weights(const char *key, json_object *val, const char *origin,
                                prep_recipe *r, recipe_pending *pend, char *err, size_t err_bytes) {
    int st = PREP_OK;
    int is_w = !strcmp(key, "bucket_weights");
    size_t n = json_object_is_type(val, json_type_array) ? json_object_array_length(val) : 0;
    if (n == 0 || n > PREP_MAX_BUCKETS)
        BAD("%s: %s must be a list of numbers", origin, key);
    for (size_t i = 0; i < n; i++) {
        double w;
        if (get_num(json_object_array_get_idx(val, i), &w) || w < 0)
            BAD("%s: %s[%zu] must be a number >= 0", origin, key, i);
        if (is_w)
            r->weights[i] = w;
        else
            pend->bshares[i] = w;
    }
    if (is_w)
        pend->has_weights = (int)n;
    else
        pend->has_bshares = (int)n;
done:
    return st;
}

static int parse_domain_weights(json_object *val, const char *origin, prep_recipe *r, char *err,
                                size_t err_bytes) {
    int st = PREP_OK;
    if (!json_object_is_type(val, json_type_object))
        BAD("%s: domain_bucket_weights must be {domain: [weights]}", origin);
    json_object_object_foreach(val, dname, dv) {
        int d = find_domain(r, dname);
        size_t n = json_object_is_type(dv, json_type_array) ? json_object_array_length(dv) : 0;
        if (d < 0 || n == 0 || n > PREP_MAX_BUCKETS)
            BAD("%s: domain_bucket_weights.%s must be a list of numbers", origin, dname);
        for (size_t i = 0; i < n; i++)
            if (get_num(json_object_array_get_idx(dv, i), &r->domains[d].weights[i]) ||
                r->domains[d].weights[i] < 0)
                BAD("%s: domain_bucket_weights.%s[%zu] must be >= 0", origin, dname, i);
        r->domains[d].has_weights = (int)n;
    }
done:
    return st;
}

/* One key of the recipe object. */
static int parse_key(const char *key, json_object *val, const char *origin, prep_recipe *r,
                     recipe_pending *pend, char *err, size_t err_bytes) {
    int st = PREP_OK;
    if (!strcmp(key, "comment")) {
        /* for the reader only */
    } else if (!strcmp(key, "name")) {
        if (copy_str(r->name, sizeof r->name, val))
            BAD("%s: \"name\" must be a short string", origin);
    } else if (!strcmp(key, "text")) {
        if (copy_str(r->text_path, sizeof r->text_path, val))
            BAD("%s: \"text\" must be a JSON path string", origin);
    } else if (!strcmp(key, "domain")) {
        st = parse_domain(val, origin, r, err, err_bytes);
    } else if (!strcmp(key, "target_tokens")) {
        if (get_u64(val, &r->target_tokens))
            BAD("%s: target_tokens must be a non-negative integer", origin);
    } else if (!strcmp(key, "shares")) {
        st = parse_shares(val, origin, r, err, err_bytes);
    } else if (!strcmp(key, "bucket_edges")) {
        st = parse_bucket_edges(val, origin, r, err, err_bytes);
    } else if (!strcmp(key, "bucket_weights") || !strcmp(key, "bucket_shares")) {
        st = parse_bucket_weights(key, val, origin, r, pend, err, err_bytes);
    } else if (!strcmp(key, "domain_bucket_weights")) {
        st = parse_domain_weights(val, origin, r, err, err_bytes);
    } else if (!strcmp(key, "max_copies")) {
        uint64_t m;
        if (get_u64(val, &m) || m < 1 || m > 1000)
            BAD("%s: max_copies must be 1..1000", origin);
        r->max_copies = (uint32_t)m;
    } else if (!strcmp(key, "seq_len")) {
        size_t n = json_object_is_type(val, json_type_array) ? json_object_array_length(val) : 0;
        if (n == 0 || n > PREP_MAX_SEQ_LENS)
            BAD("%s: seq_len must list 1 to %d lengths", origin, PREP_MAX_SEQ_LENS);
        for (size_t i = 0; i < n; i++)
            if (get_u64(json_object_array_get_idx(val, i), &r->seq_lens[i]) ||
                r->seq_lens[i] == 0 || r->seq_lens[i] > (1u << 30))
                BAD("%s: seq_len[%zu] must be 1..2^30", origin, i);
        r->n_seq_lens = (int)n;
    } else if (!strcmp(key, "packing")) {
        const char *p = json_object_get_string(val);
        if (p && !strcmp(p, "concat"))
            r->packing = PREP_PACK_CONCAT;
        else if (p && !strcmp(p, "bestfit"))
            r->packing = PREP_PACK_BESTFIT;
        else
            BAD("%s: packing must be \"concat\" or \"bestfit\"", origin);
    } else if (!strcmp(key, "bestfit_window")) {
        if (get_u64(val, &r->bestfit_window) || r->bestfit_window == 0 ||
            r->bestfit_window > (1u << 24))
            BAD("%s: bestfit_window must be 1..2^24 sequences", origin);
    } else if (!strcmp(key, "bos") || !strcmp(key, "eos") || !strcmp(key, "dedup")) {
        if (!json_object_is_type(val, json_type_boolean))
            BAD("%s: %s must be true or false", origin, key);
        int b = json_object_get_boolean(val);
        if (!strcmp(key, "bos"))
            r->bos = b;
        else if (!strcmp(key, "eos"))
            r->eos = b;
        else
            r->dedup = b;
    } else if (!strcmp(key, "seed")) {
        if (get_u64(val, &r->seed))
            BAD("%s: seed must be a non-negative integer", origin);
    } else if (!strcmp(key, "utf8")) {
        const char *p = json_object_get_string(val);
        if (p && !strcmp(p, "replace"))
            r->utf8_reject = 0;
        else if (p && !strcmp(p, "reject"))
            r->utf8_reject = 1;
        else
            BAD("%s: utf8 must be \"replace\" or \"reject\"", origin);
    } else {
        BAD("%s: unknown key \"%s\"", origin, key);
    }
done:
    return st;
}

/* The checks across keys, after all are read. */
static int recipe_finish(const char *origin, prep_recipe *r, const recipe_pending *pend, char *err,
                         size_t err_bytes) {
    int st = PREP_OK;
    if (pend->has_weights && pend->has_bshares)
        BAD("%s: give bucket_weights or bucket_shares, not both", origin);
    if (pend->has_weights && pend->has_weights != r->n_edges)
        BAD("%s: %d bucket_weights for %d buckets", origin, pend->has_weights, r->n_edges);
    if (pend->has_bshares) {
        if (pend->has_bshares != r->n_edges)
            BAD("%s: %d bucket_shares for %d buckets", origin, pend->has_bshares, r->n_edges);
        double sum = 0;
        for (int b = 0; b < r->n_edges; b++)
            sum += pend->bshares[b];
        if (!(sum > 0) || !isfinite(sum))
            BAD("%s: bucket_shares must not all be 0, and their sum must be finite", origin);
        r->use_bucket_shares = 1;
        for (int b = 0; b < r->n_edges; b++)
            r->bucket_shares[b] = pend->bshares[b] / sum;
    }
    for (int d = 0; d < r->n_domains; d++)
        if (r->domains[d].has_weights && r->domains[d].has_weights != r->n_edges)
            BAD("%s: domain_bucket_weights.%s has %d weights for %d buckets", origin,
                r->domains[d].name, r->domains[d].has_weights, r->n_edges);
done:
    return st;
}

static int parse(const char *text, const char *origin, prep_recipe *r, char *err,
                 size_t err_bytes) {
    int st = PREP_OK;
    recipe_defaults(r);
    /* strict: json-c's default takes [4096,] as [4096] (and --seq-len refuses "4096,") */
    json_tokener *tk = json_tokener_new();
    if (!tk) {
        snprintf(err, err_bytes, "out of memory");
        return PREP_ERR_NOMEM;
    }
    json_tokener_set_flags(tk, JSON_TOKENER_STRICT);
    json_object *o = json_tokener_parse_ex(tk, text, -1);
    enum json_tokener_error jerr = json_tokener_get_error(tk);
    size_t jend = json_tokener_get_parse_end(tk); /* where it stopped: finds the stray comma */
    json_tokener_free(tk);
    recipe_pending pend;
    memset(&pend, 0, sizeof pend);
    if (!o)
        BAD("%s: not a JSON object (%s at byte %zu)", origin, json_tokener_error_desc(jerr), jend);
    if (!json_object_is_type(o, json_type_object))
        BAD("%s: not a JSON object (wrong type)", origin);
    json_object_object_foreach(o, key, val) {
        if ((st = parse_key(key, val, origin, r, &pend, err, err_bytes)) != PREP_OK)
            goto done;
    }
    st = recipe_finish(origin, r, &pend, err, err_bytes);
done:
    json_object_put(o);
    return st;
}

int prep_recipe_load(const char *name_or_path, prep_recipe *out, char *err, size_t err_bytes) {
    const char *text = prep_recipe_builtin(name_or_path);
    if (text)
        return parse(text, name_or_path, out, err, err_bytes);
    FILE *f = fopen(name_or_path, "rb");
    if (!f) {
        snprintf(err, err_bytes, "%s: not a shipped recipe (%s, %s, %s, %s) and cannot open: %s",
                 name_or_path, NAMES[0], NAMES[1], NAMES[2], NAMES[3], strerror(errno));
        return PREP_ERR_IO;
    }
    char *buf = malloc(1 << 20);
    size_t n = buf ? fread(buf, 1, (1 << 20) - 1, f) : 0;
    fclose(f);
    if (!buf) {
        snprintf(err, err_bytes, "out of memory");
        return PREP_ERR_NOMEM;
    }
    buf[n] = '\0';
    int st = parse(buf, name_or_path, out, err, err_bytes);
    free(buf);
    return st;
}
