/* tok_load_hf.c - HF tokenizer.json (BPE model) through json-c. */
#include "tok_internal.h"

#include <json-c/json.h>
#include <stdlib.h>

/* The split regexes we implement by hand (tok_encode.c); any other is refused. */
static const char LLAMA3_PATTERN[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

static const char SPACE_MARK[] = "\xe2\x96\x81"; /* U+2581 "▁" */

/* GPT-2's bytes_to_unicode: printable bytes map to themselves, the other 68 to U+0100.. */
static void byte_level_alphabet(uint32_t cp_of_byte[256]) {
    int n = 0;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || (b >= 0xae);
        cp_of_byte[b] = printable ? (uint32_t)b : 256u + (uint32_t)n++;
    }
}

static const char *jstr(json_object *o, const char *key) {
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

static int jbool(json_object *o, const char *key, int dflt) {
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null))
        return dflt;
    return json_object_get_boolean(v);
}

static int jnull_or_absent(json_object *o, const char *key) {
    json_object *v;
    return !json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null);
}

static json_object *jget(json_object *o, const char *key) {
    json_object *v;
    return json_object_object_get_ex(o, key, &v) ? v : NULL;
}

static int type_is(json_object *o, const char *type) {
    const char *s = o ? jstr(o, "type") : NULL;
    return s && !strcmp(s, type);
}

/* Decodes a byte-level token string (mapped alphabet) to raw bytes; -1 if a character is
 * outside the alphabet. */
static int byte_level_decode(const int16_t byte_of_cp[324], const char *s, size_t n, char *out,
                             size_t *out_n) {
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        i += tok_utf8_next((const unsigned char *)s + i, n - i, &cp);
        if (cp >= 324 || byte_of_cp[cp] < 0)
            return -1;
        out[k++] = (char)byte_of_cp[cp];
    }
    *out_n = k;
    return 0;
}

/* ---- the pipeline: which of our two kinds this file describes ---------------------------- */

static int classify(tokenizer *t, const char *path, json_object *root, json_object *model) {
    json_object *norm = jget(root, "normalizer"), *pre = jget(root, "pre_tokenizer");
    if (norm && json_object_is_type(norm, json_type_null))
        norm = NULL;
    if (pre && json_object_is_type(pre, json_type_null))
        pre = NULL;

    /* byte-level: GPT-2 style ByteLevel with its regex, or Llama 3's Split + ByteLevel */
    if (!norm && type_is(pre, "ByteLevel")) {
        if (jbool(pre, "add_prefix_space", 0))
            TOK_FAIL(t, TOK_ERR_UNSUPP, "%s: ByteLevel add_prefix_space=true is not supported",
                     path);
        if (!jbool(pre, "use_regex", 1))
            TOK_FAIL(t, TOK_ERR_UNSUPP, "%s: ByteLevel without a split regex is not supported",
                     path);
        t->kind = TOK_KIND_BYTE_LEVEL;
        t->split = TOK_SPLIT_GPT2;
        return TOK_OK;
    }
    if (!norm && type_is(pre, "Sequence")) {
        json_object *list = jget(pre, "pretokenizers");
        if (list && json_object_array_length(list) == 2) {
            json_object *sp = json_object_array_get_idx(list, 0);
            json_object *bl = json_object_array_get_idx(list, 1);
            json_object *pat = sp ? jget(sp, "pattern") : NULL;
            const char *re = pat ? jstr(pat, "Regex") : NULL;
            const char *beh = sp ? jstr(sp, "behavior") : NULL;
            if (type_is(sp, "Split") && type_is(bl, "ByteLevel") && re && beh &&
                !strcmp(beh, "Isolated") && !jbool(sp, "invert", 0) &&
                !jbool(bl, "add_prefix_space", 0) && !jbool(bl, "use_regex", 1)) {
                if (strcmp(re, LLAMA3_PATTERN) != 0)
                    TOK_FAIL(t, TOK_ERR_UNSUPP,
                             "%s: split regex %.200s is not one longctx "
                             "implements (Llama 3's and GPT-2's are)",
                             path, re);
                t->kind = TOK_KIND_BYTE_LEVEL;
                t->split = TOK_SPLIT_LLAMA3;
                return TOK_OK;
            }
        }
        TOK_FAIL(t, TOK_ERR_UNSUPP,
                 "%s: pre_tokenizer sequence is not Split(regex, Isolated) + "
                 "ByteLevel(use_regex=false)",
                 path);
    }
    /* SentencePiece-style: Prepend("▁") + Replace(" ", "▁"), or Metaspace */
    if (!pre && type_is(norm, "Sequence")) {
        json_object *list = jget(norm, "normalizers");
        size_t n = list ? json_object_array_length(list) : 0;
        int prepend = 0, replace = 0, ok = n > 0;
        for (size_t i = 0; i < n && ok; i++) {
            json_object *x = json_object_array_get_idx(list, i);
            if (type_is(x, "Prepend") && jstr(x, "prepend") &&
                !strcmp(jstr(x, "prepend"), SPACE_MARK) && i == 0) {
                prepend = 1;
            } else if (type_is(x, "Replace") && jstr(x, "content") &&
                       !strcmp(jstr(x, "content"), SPACE_MARK) && jget(x, "pattern") &&
                       jstr(jget(x, "pattern"), "String") &&
                       !strcmp(jstr(jget(x, "pattern"), "String"), " ")) {
                replace = 1;
            } else {
                ok = 0;
            }
        }
        if (!ok || !replace)
            TOK_FAIL(t, TOK_ERR_UNSUPP,
                     "%s: normalizer is not Prepend(\"▁\") + Replace(\" \", "
                     "\"▁\")",
                     path);
        t->kind = TOK_KIND_SPM;
        t->add_dummy_prefix = prepend;
        t->prefix_every_segment = 1; /* HF normalises each segment between added tokens */
        t->escape_spaces = 1;
        return TOK_OK;
    }
    if (!norm && type_is(pre, "Metaspace")) {
        const char *rep = jstr(pre, "replacement"), *scheme = jstr(pre, "prepend_scheme");
        if (!rep || strcmp(rep, SPACE_MARK) != 0 || jbool(pre, "split", 1))
            TOK_FAIL(t, TOK_ERR_UNSUPP, "%s: Metaspace must use \"▁\" and split=false", path);
        int prepend = scheme ? strcmp(scheme, "never") != 0 : jbool(pre, "add_prefix_space", 1);
        if (scheme && strcmp(scheme, "first") && strcmp(scheme, "always") &&
            strcmp(scheme, "never"))
            TOK_FAIL(t, TOK_ERR_UNSUPP, "%s: Metaspace prepend_scheme '%s'", path, scheme);
        t->kind = TOK_KIND_SPM;
        t->add_dummy_prefix = prepend;
        t->prefix_every_segment = scheme && !strcmp(scheme, "always");
        t->escape_spaces = 1;
        return TOK_OK;
    }
    (void)model;
    TOK_FAIL(t, TOK_ERR_UNSUPP,
             "%s: normalizer %s with pre_tokenizer %s is neither byte-level "
             "nor SentencePiece-style",
             path, norm ? jstr(norm, "type") : "null", pre ? jstr(pre, "type") : "null");
}

/* ---- BOS and EOS ---------------------------------------------------------------------------- */

static int64_t id_of_text(const tokenizer *t, const char *s) {
    size_t n = strlen(s);
    for (uint32_t id = 0; id < t->n_tokens; id++) {
        size_t m;
        const char *k = tok_vocab_key(t, id, &m);
        if (m == n && !memcmp(k, s, n) && t->tok_type[id] != TOK_TYPE_NORMAL)
            return id;
    }
    return -1;
}

/* A token named in tokenizer_config.json: a string or {"content": ...}. */
static const char *config_token(json_object *cfg, const char *key) {
    json_object *v = jget(cfg, key);
    if (v && json_object_is_type(v, json_type_object))
        return jstr(v, "content");
    return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

/* BOS/EOS: from tokenizer_config.json in the same folder when it names them (as HF does),
 * else the usual names of Llama 2 and Llama 3 base models. */
static void find_bos_eos(tokenizer *t, const char *path) {
    char cfg_path[4200];
    const char *slash = strrchr(path, '/');
    snprintf(cfg_path, sizeof cfg_path, "%.*stokenizer_config.json",
             slash ? (int)(slash - path + 1) : 0, path);
    json_object *cfg = json_object_from_file(cfg_path);
    const char *bos = cfg ? config_token(cfg, "bos_token") : NULL;
    const char *eos = cfg ? config_token(cfg, "eos_token") : NULL;
    t->bos_id = bos ? id_of_text(t, bos) : -1;
    t->eos_id = eos ? id_of_text(t, eos) : -1;
    if (t->bos_id < 0)
        t->bos_id =
            id_of_text(t, "<s>") >= 0 ? id_of_text(t, "<s>") : id_of_text(t, "<|begin_of_text|>");
    if (t->eos_id < 0)
        t->eos_id =
            id_of_text(t, "</s>") >= 0 ? id_of_text(t, "</s>") : id_of_text(t, "<|end_of_text|>");
    json_object_put(cfg);
}

/* ---- load ---------------------------------------------------------------------------------- */

/* A BPE model with a vocab object and a merges list, and none of the BPE options longctx does
 * not implement. */
static int hf_check_model(tokenizer *t, const char *path, json_object *model, json_object *vocab,
                          json_object *merges) {
    if (!model || !type_is(model, "BPE") || !vocab ||
        !json_object_is_type(vocab, json_type_object) || !merges ||
        !json_object_is_type(merges, json_type_array)) {
        tok_set_err(t, "%s: model is not BPE with a vocab object and a merges list (%s)", path,
                    model && jstr(model, "type") ? jstr(model, "type") : "no model type");
        return model && jstr(model, "type") ? TOK_ERR_UNSUPP : TOK_ERR_FORMAT;
    }
    if (!jnull_or_absent(model, "dropout") ||
        !jnull_or_absent(model, "continuing_subword_prefix") ||
        !jnull_or_absent(model, "end_of_word_suffix"))
        TOK_FAIL(t, TOK_ERR_UNSUPP,
                 "%s: BPE dropout, continuing_subword_prefix and end_of_word_suffix are "
                 "not supported",
                 path);
    return TOK_OK;
}

/* The largest id and the bytes of token text, over the vocab and the added tokens. */
static int hf_vocab_sizes(tokenizer *t, const char *path, json_object *vocab, json_object *added,
                          size_t n_added, uint32_t *max_id, uint64_t *blob) {
    *max_id = 0;
    *blob = 0;
    json_object_object_foreach(vocab, k0, v0) {
        int64_t id = json_object_get_int64(v0);
        if (!json_object_is_type(v0, json_type_int) || id < 0 || id >= (1 << 24))
            TOK_FAIL(t, TOK_ERR_FORMAT, "%s: vocab entry '%.60s' has id %lld", path, k0,
                     (long long)id);
        if ((uint32_t)id > *max_id)
            *max_id = (uint32_t)id;
        *blob += strlen(k0);
    }
    for (size_t i = 0; i < n_added; i++) {
        json_object *a = json_object_array_get_idx(added, i), *idv = jget(a, "id");
        const char *content = jstr(a, "content");
        int64_t id = idv ? json_object_get_int64(idv) : -1;
        if (!content || id < 0 || id >= (1 << 24))
            TOK_FAIL(t, TOK_ERR_FORMAT, "%s: added_tokens[%zu] lacks content or a valid id", path,
                     i);
        if (jbool(a, "lstrip", 0) || jbool(a, "rstrip", 0) || jbool(a, "single_word", 0))
            TOK_FAIL(t, TOK_ERR_UNSUPP,
                     "%s: added token '%s' uses lstrip/rstrip/single_word, not supported", path,
                     content);
        if ((uint32_t)id > *max_id)
            *max_id = (uint32_t)id;
        *blob += strlen(content);
    }
    return TOK_OK;
}

/* Token bytes (t's arrays allocated for max_id + 1 tokens): the vocab, byte-level strings
 * decoded to raw bytes, then the added tokens; the byte tokens found on the way. */
static int hf_vocab_fill(tokenizer *t, const char *path, json_object *vocab, json_object *added,
                         size_t n_added, uint32_t max_id, const int16_t byte_of_cp[324]) {
    const int bytelevel = t->kind == TOK_KIND_BYTE_LEVEL;
    int st = TOK_OK;
    const char **str = calloc((size_t)max_id + 1, sizeof *str);
    size_t *len = calloc((size_t)max_id + 1, sizeof *len);
    char *tmp = malloc(4096);
    if (!str || !len || !tmp) {
        tok_set_err(t, "out of memory");
        st = TOK_ERR_NOMEM;
        goto done;
    }
    json_object_object_foreach(vocab, k, v) {
        uint32_t id = (uint32_t)json_object_get_int64(v);
        if (str[id]) {
            tok_set_err(t, "%s: id %u appears twice in the vocab", path, id);
            st = TOK_ERR_FORMAT;
            goto done;
        }
        str[id] = k;
        len[id] = strlen(k);
        t->tok_type[id] = TOK_TYPE_NORMAL;
    }
    for (size_t i = 0; i < n_added; i++) {
        json_object *a = json_object_array_get_idx(added, i);
        uint32_t id = (uint32_t)json_object_get_int64(jget(a, "id"));
        const char *content = jstr(a, "content");
        if (str[id] && strcmp(str[id], content) != 0 && !bytelevel) {
            tok_set_err(t, "%s: added token %u '%s' differs from the vocab's '%s'", path, id,
                        content, str[id]);
            st = TOK_ERR_FORMAT;
            goto done;
        }
        str[id] = content;
        len[id] = strlen(content);
        t->tok_type[id] = jbool(a, "special", 0) ? TOK_TYPE_CONTROL : TOK_TYPE_USER;
    }
    uint64_t off = 0;
    for (uint32_t id = 0; id <= max_id; id++) {
        t->tok_off[id] = (uint32_t)off;
        if (!str[id]) { /* a hole in the ids: an unused token of no text */
            t->tok_type[id] = TOK_TYPE_UNUSED;
            continue;
        }
        size_t m = len[id];
        if (bytelevel && t->tok_type[id] == TOK_TYPE_NORMAL) {
            if (m > 4096 || byte_level_decode(byte_of_cp, str[id], m, tmp, &m) != 0) {
                tok_set_err(t, "%s: vocab token %u '%.60s' is not in the byte-level alphabet", path,
                            id, str[id]);
                st = TOK_ERR_FORMAT;
                goto done;
            }
            memcpy(t->tok_blob + off, tmp, m);
            if (m == 1)
                t->byte_id[(unsigned char)tmp[0]] = id;
        } else {
            memcpy(t->tok_blob + off, str[id], m);
            int byte = tok_byte_piece(str[id], m);
            if (!bytelevel && t->tok_type[id] == TOK_TYPE_NORMAL && byte >= 0) {
                t->tok_type[id] = TOK_TYPE_BYTE;
                t->byte_id[byte] = (uint32_t)id;
            }
        }
        off += m;
    }
    t->tok_off[max_id + 1] = (uint32_t)off;
done:
    free(str);
    free(len);
    free(tmp);
    return st;
}

/* unk by the model's unk_token; every byte has a token (byte-level) or a <0xNN> piece
 * (byte_fallback). */
static int hf_unk_and_bytes(tokenizer *t, const char *path, json_object *model, uint32_t max_id) {
    const char *unk = jstr(model, "unk_token");
    if (unk) {
        for (uint32_t id = 0; id <= max_id; id++) {
            size_t m;
            const char *s = tok_vocab_key(t, id, &m);
            if (m == strlen(unk) && !memcmp(s, unk, m)) {
                t->unk_id = id;
                t->tok_type[id] = TOK_TYPE_UNKNOWN;
                break;
            }
        }
        if (t->unk_id < 0)
            TOK_FAIL(t, TOK_ERR_FORMAT, "%s: unk_token '%s' is not in the vocab", path, unk);
    }
    for (int b = 0; b < 256; b++) {
        if (t->byte_id[b] != TOK_NONE)
            continue;
        if (t->kind == TOK_KIND_BYTE_LEVEL)
            TOK_FAIL(t, TOK_ERR_FORMAT, "%s: byte-level vocab lacks a token for byte 0x%02x", path,
                     b);
        if (t->byte_fallback)
            TOK_FAIL(t, TOK_ERR_FORMAT, "%s: byte_fallback without a <0x%02X> token", path, b);
    }
    return TOK_OK;
}

/* One merge, "a b" or [a, b], as the raw bytes of its two parts: a at buf[0, *na), b at
 * buf[*na, *na + *nb) (buf holds 8192 bytes). */
static int hf_merge_parts(tokenizer *t, const char *path, json_object *m, size_t i,
                          const int16_t byte_of_cp[324], char *buf, size_t *ra, size_t *rb) {
    const char *a, *b;
    size_t na, nb;
    if (json_object_is_type(m, json_type_string)) {
        a = json_object_get_string(m);
        const char *sp = strchr(a, ' ');
        if (!sp || strchr(sp + 1, ' '))
            TOK_FAIL(t, TOK_ERR_FORMAT, "%s: merges[%zu] '%.60s' is not 'left right'", path, i, a);
        na = (size_t)(sp - a);
        b = sp + 1;
        nb = strlen(b);
    } else if (json_object_is_type(m, json_type_array) && json_object_array_length(m) == 2) {
        a = json_object_get_string(json_object_array_get_idx(m, 0));
        b = json_object_get_string(json_object_array_get_idx(m, 1));
        na = a ? strlen(a) : 0;
        nb = b ? strlen(b) : 0;
    } else {
        TOK_FAIL(t, TOK_ERR_FORMAT, "%s: merges[%zu] is neither a string nor a pair", path, i);
    }
    if (na + nb >= 4096 || !a || !b)
        TOK_FAIL(t, TOK_ERR_FORMAT, "%s: merges[%zu] too long", path, i);
    *ra = na;
    *rb = nb;
    if (t->kind == TOK_KIND_BYTE_LEVEL) {
        if (byte_level_decode(byte_of_cp, a, na, buf, ra) != 0 ||
            byte_level_decode(byte_of_cp, b, nb, buf + *ra, rb) != 0)
            TOK_FAIL(t, TOK_ERR_FORMAT, "%s: merges[%zu] is not in the byte-level alphabet", path,
                     i);
    } else {
        memcpy(buf, a, na);
        memcpy(buf + na, b, nb);
    }
    if (tok_strmap_get(&t->vocab, buf, *ra, tok_vocab_key, t) == TOK_NONE ||
        tok_strmap_get(&t->vocab, buf + *ra, *rb, tok_vocab_key, t) == TOK_NONE ||
        tok_strmap_get(&t->vocab, buf, *ra + *rb, tok_vocab_key, t) == TOK_NONE)
        TOK_FAIL(t, TOK_ERR_FORMAT,
                 "%s: merges[%zu] '%.40s' + '%.40s': a part or the result is not in the vocab",
                 path, i, a, b);
    return TOK_OK;
}

/* The merges, rank = position in the list. */
static int hf_merges(tokenizer *t, const char *path, json_object *merges,
                     const int16_t byte_of_cp[324]) {
    size_t n_merges = json_object_array_length(merges);
    int st = tok_merges_alloc(t, n_merges);
    char *buf = st == TOK_OK ? malloc(8192) : NULL;
    if (st == TOK_OK && !buf) {
        tok_set_err(t, "out of memory");
        st = TOK_ERR_NOMEM;
    }
    for (size_t i = 0; st == TOK_OK && i < n_merges; i++) {
        size_t ra, rb;
        st = hf_merge_parts(t, path, json_object_array_get_idx(merges, i), i, byte_of_cp, buf, &ra,
                            &rb);
        if (st == TOK_OK)
            tok_merges_put(t, tok_strmap_get(&t->vocab, buf, ra, tok_vocab_key, t),
                           tok_strmap_get(&t->vocab, buf + ra, rb, tok_vocab_key, t), (uint32_t)i,
                           tok_strmap_get(&t->vocab, buf, ra + rb, tok_vocab_key, t));
    }
    free(buf);
    return st;
}

int tok_load_hf(tokenizer *t, const char *path, const char *text, size_t n) {
    json_tokener *tk = json_tokener_new_ex(64);
    if (!tk)
        TOK_FAIL(t, TOK_ERR_NOMEM, "out of memory");
    json_object *root = json_tokener_parse_ex(tk, text, (int)n);
    enum json_tokener_error jerr = json_tokener_get_error(tk);
    size_t at = json_tokener_get_parse_end(tk);
    json_tokener_free(tk);
    if (!root || jerr != json_tokener_success) {
        json_object_put(root);
        TOK_FAIL(t, TOK_ERR_FORMAT, "%s: offset %zu: invalid JSON: %s", path, at,
                 json_tokener_error_desc(jerr));
    }
    json_object *model = jget(root, "model"), *vocab = model ? jget(model, "vocab") : NULL;
    json_object *merges = model ? jget(model, "merges") : NULL;
    json_object *added = jget(root, "added_tokens");
    size_t n_added =
        added && json_object_is_type(added, json_type_array) ? json_object_array_length(added) : 0;
    uint32_t cp_of_byte[256], max_id;
    int16_t byte_of_cp[324];
    uint64_t blob;
    int st = hf_check_model(t, path, model, vocab, merges);
    if (st == TOK_OK)
        st = classify(t, path, root, model);
    if (st != TOK_OK)
        goto done;
    t->ignore_merges = jbool(model, "ignore_merges", 0);
    t->byte_fallback = jbool(model, "byte_fallback", 0);
    t->fuse_unk = jbool(model, "fuse_unk", 0);
    byte_level_alphabet(cp_of_byte);
    for (int i = 0; i < 324; i++)
        byte_of_cp[i] = -1;
    for (int b = 0; b < 256; b++)
        byte_of_cp[cp_of_byte[b]] = (int16_t)b;
    if ((st = hf_vocab_sizes(t, path, vocab, added, n_added, &max_id, &blob)) != TOK_OK ||
        (st = tok_vocab_alloc(t, max_id + 1, blob)) != TOK_OK ||
        (st = hf_vocab_fill(t, path, vocab, added, n_added, max_id, byte_of_cp)) != TOK_OK ||
        (st = tok_vocab_index(t, 1u << TOK_TYPE_NORMAL)) != TOK_OK ||
        (st = hf_unk_and_bytes(t, path, model, max_id)) != TOK_OK)
        goto done;
    find_bos_eos(t, path); /* tokenizer_config.json beside the file decides */
    st = hf_merges(t, path, merges, byte_of_cp);
done:
    json_object_put(root);
    return st;
}
