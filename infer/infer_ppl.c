/* infer_ppl.c - perplexity: the documents of an input file (.u32, .jsonl, text), the one
 * JSON-lines-to-ids function (shared with infer's batch prompts), and the sliding windows that
 * score a document with the loss bucketed by position. Moved from infer_main.c. */
#include "infer_internal.h"
#include "shard.h"
#include "tokenizer.h"

#include <json-c/json.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

/* ---- JSON lines to ids -------------------------------------------------------------------- */

static int grow(uint32_t **ids, uint64_t *cap, uint64_t k) {
    if (k <= *cap)
        return INFER_OK;
    uint32_t *q = realloc(*ids, (size_t)k * sizeof *q);
    if (!q)
        return INFER_ERR_NOMEM;
    *ids = q;
    *cap = k;
    return INFER_OK;
}

int infer_json_ids(json_object *o, const char *line, size_t n_line, tok_json *j,
                   const char *text_field, tok_ctx *tc, int add_bos, uint64_t vocab, uint32_t **ids,
                   uint64_t *cap, uint64_t *n, char *err, size_t err_bytes) {
    json_object *x;
    if (json_object_object_get_ex(o, "ids", &x) && json_object_is_type(x, json_type_array)) {
        const size_t k = json_object_array_length(x);
        if (grow(ids, cap, k ? k : 1) != INFER_OK)
            return INFER_ERR_NOMEM;
        const int64_t top = vocab ? (int64_t)vocab - 1 : (int64_t)UINT32_MAX;
        for (size_t i = 0; i < k; i++) {
            json_object *e = json_object_array_get_idx(x, i);
            int64_t v = json_object_get_int64(e);
            if (!json_object_is_type(e, json_type_int) || v < 0 || v > top) {
                if (vocab)
                    snprintf(err, err_bytes,
                             "\"ids\"[%zu] is not an id below the vocabulary size %llu", i,
                             (unsigned long long)vocab);
                else
                    snprintf(err, err_bytes, "\"ids\"[%zu] is not a token id", i);
                return INFER_ERR_FORMAT;
            }
            (*ids)[i] = (uint32_t)v;
        }
        *n = k;
        return INFER_OK;
    }
    tok_json_fields f;
    const int js = tok_json_extract(j, line, n_line, &f);
    if (js == TOK_JSON_ERR_NOMEM)
        return INFER_ERR_NOMEM;
    if (js == TOK_JSON_ERR_NO_TEXT) {
        snprintf(err, err_bytes, "needs \"%s\" (text) or \"ids\" (array)", text_field);
        return INFER_ERR_FORMAT;
    }
    if (js != TOK_JSON_OK) {
        snprintf(err, err_bytes, "%s", tok_json_errmsg(j));
        return INFER_ERR_FORMAT;
    }
    if (!tc) {
        snprintf(err, err_bytes,
                 "\"%s\" is text and needs the model's tokenizer (tokenizer.json or "
                 "tokenizer.model in the model directory); give \"ids\"",
                 text_field);
        return INFER_ERR_FORMAT;
    }
    tok_encode_opts eo = tok_encode_opts_default();
    eo.add_bos = add_bos;
    const uint32_t *enc;
    size_t k;
    if (tokenizer_encode(tc, f.text, f.n_text, &eo, &enc, &k) != TOK_OK ||
        grow(ids, cap, k ? k : 1) != INFER_OK) {
        snprintf(err, err_bytes, "out of memory encoding \"%s\"", text_field);
        return INFER_ERR_NOMEM;
    }
    memcpy(*ids, enc, k * sizeof *enc);
    *n = k;
    return INFER_OK;
}

/* ---- documents ---------------------------------------------------------------------------- */

enum { DOC_U32, DOC_JSONL, DOC_TEXT, DOC_SHARD };

struct infer_doc_reader {
    FILE *f;
    char path[4096];
    int kind; /* DOC_* */
    uint64_t offset, line;
    int done;
    const tokenizer *tok;
    tok_ctx *tc;
    tok_json *json; /* the "text" field of a jsonl line */
    char *buf;      /* (buf_cap) a line, or the whole text file */
    size_t buf_cap;
    uint32_t *ids; /* (cap) the current document */
    uint64_t cap;
    char errmsg[512];
    /* DOC_SHARD: the sequence read and the next piece of it to take */
    shard_reader *shard;
    shard_seq seq;
    uint64_t next_seq, piece;
    int have_seq;
};

static int doc_fail(infer_doc_reader *r, int st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int doc_fail(infer_doc_reader *r, int st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->errmsg, sizeof r->errmsg, fmt, ap);
    va_end(ap);
    return st;
}

int infer_doc_reader_create(const char *path, const tokenizer *tok, infer_doc_reader **out) {
    infer_doc_reader *r = calloc(1, sizeof *r);
    *out = r;
    if (!r)
        return INFER_ERR_NOMEM;
    snprintf(r->path, sizeof r->path, "%s", path);
    const size_t il = strlen(path);
    r->kind = il > 4 && !strcmp(path + il - 4, ".u32")     ? DOC_U32
              : il > 6 && !strcmp(path + il - 6, ".jsonl") ? DOC_JSONL
              : il > 6 && !strcmp(path + il - 6, ".shard") ? DOC_SHARD
                                                           : DOC_TEXT;
    r->tok = tok;
    r->buf_cap = 1 << 16;
    if (!(r->buf = malloc(r->buf_cap)) || (tok && tok_ctx_create(tok, &r->tc) != TOK_OK) ||
        tok_json_create("text", NULL, 0, &r->json) != TOK_JSON_OK)
        return doc_fail(r, INFER_ERR_NOMEM, "%s: out of memory", path);
    if (r->kind == DOC_SHARD) {
        const int st = shard_reader_open(path, &r->shard);
        if (st != SHARD_OK)
            return doc_fail(r,
                            st == SHARD_ERR_NOMEM ? INFER_ERR_NOMEM
                            : st == SHARD_ERR_IO  ? INFER_ERR_IO
                                                  : INFER_ERR_FORMAT,
                            "%s", shard_reader_errmsg(r->shard));
        return INFER_OK;
    }
    if (!(r->f = fopen(path, "rb")))
        return doc_fail(r, INFER_ERR_IO, "%s: %s", path, strerror(errno));
    return INFER_OK;
}

void infer_doc_reader_free(infer_doc_reader *r) {
    if (!r)
        return;
    if (r->f)
        fclose(r->f);
    shard_reader_free(r->shard);
    free(r->buf);
    free(r->ids);
    tok_ctx_free(r->tc);
    tok_json_free(r->json);
    free(r);
}

const char *infer_doc_reader_errmsg(const infer_doc_reader *r) {
    return r ? r->errmsg : "out of memory";
}

static int doc_text(infer_doc_reader *r, const uint32_t **ids, uint64_t *n) {
    size_t len = 0, got;
    r->done = 1;
    while ((got = fread(r->buf + len, 1, r->buf_cap - len, r->f)) > 0) {
        len += got;
        if (len == r->buf_cap) {
            char *q = realloc(r->buf, r->buf_cap *= 2);
            if (!q)
                return doc_fail(r, INFER_ERR_NOMEM, "%s: out of memory", r->path);
            r->buf = q;
        }
    }
    if (ferror(r->f))
        return doc_fail(r, INFER_ERR_IO, "%s: read error", r->path);
    if (!r->tc)
        return doc_fail(r, INFER_ERR_FORMAT,
                        "%s: text input needs the model's tokenizer (tokenizer.json or "
                        "tokenizer.model in the model directory); give ids (.u32) instead",
                        r->path);
    tok_encode_opts eo = tok_encode_opts_default();
    eo.add_bos = tokenizer_bos_id(r->tok) >= 0;
    const uint32_t *enc;
    size_t k;
    if (tokenizer_encode(r->tc, r->buf, len, &eo, &enc, &k) != TOK_OK ||
        grow(&r->ids, &r->cap, k ? k : 1) != INFER_OK)
        return doc_fail(r, INFER_ERR_NOMEM, "%s: out of memory", r->path);
    memcpy(r->ids, enc, k * sizeof *enc);
    *ids = r->ids;
    *n = k;
    return INFER_OK;
}

/* A shard's documents: pieces joined across sequences while the document id stays and its
 * offset continues where the document stands; a piece at another id or offset (an upsampled
 * copy starts again at 0) begins the next document. */
static int doc_shard(infer_doc_reader *r, const uint32_t **ids, uint64_t *n) {
    const shard_info *info = shard_reader_info(r->shard);
    uint64_t len = 0, id = 0;
    int started = 0;
    for (;;) {
        if (!r->have_seq || r->piece == r->seq.n_docs) {
            if (r->next_seq == info->n_seqs) {
                r->done = 1;
                break;
            }
            const int st = shard_reader_read(r->shard, r->next_seq, &r->seq);
            if (st != SHARD_OK)
                return doc_fail(r, st == SHARD_ERR_NOMEM ? INFER_ERR_NOMEM : INFER_ERR_FORMAT, "%s",
                                shard_reader_errmsg(r->shard));
            r->next_seq++;
            r->have_seq = 1;
            r->piece = 0;
            continue;
        }
        const shard_doc *d = &r->seq.docs[r->piece];
        if (started && (d->doc_id != id || d->doc_offset != len))
            break; /* the next call takes this piece */
        const uint64_t end =
            r->piece + 1 < r->seq.n_docs ? r->seq.docs[r->piece + 1].start : r->seq.n_tokens;
        const uint64_t k = end - d->start;
        if (grow(&r->ids, &r->cap, len + k ? len + k : 1) != INFER_OK)
            return doc_fail(r, INFER_ERR_NOMEM, "%s: out of memory", r->path);
        const uint8_t *tok = (const uint8_t *)r->seq.tokens + d->start * info->token_bytes;
        shard_tokens_to_u32(tok, info->token_bytes, k, r->ids + len);
        len += k;
        id = d->doc_id;
        started = 1;
        r->piece++;
    }
    if (!started)
        return INFER_DONE;
    *ids = r->ids;
    *n = len;
    return INFER_OK;
}

int infer_doc_reader_next(infer_doc_reader *r, const uint32_t **ids, uint64_t *n) {
    if (r->done)
        return INFER_DONE;
    if (r->kind == DOC_SHARD)
        return doc_shard(r, ids, n);
    if (r->kind == DOC_U32) {
        const char *why = NULL;
        int st = shard_ids_read(r->f, 1, &r->ids, &r->cap, n, &r->offset, &why);
        if (st == SHARD_DONE)
            return INFER_DONE;
        if (st != SHARD_OK)
            return doc_fail(r, why ? INFER_ERR_FORMAT : INFER_ERR_NOMEM, "%s: offset %llu: %s",
                            r->path, (unsigned long long)r->offset, why ? why : "out of memory");
        *ids = r->ids;
        return INFER_OK;
    }
    if (r->kind == DOC_TEXT)
        return doc_text(r, ids, n);
    ssize_t got = getline(&r->buf, &r->buf_cap, r->f);
    if (got < 0)
        return INFER_DONE;
    r->line++;
    const size_t len = (size_t)got - (got > 0 && r->buf[got - 1] == '\n');
    json_object *o = json_tokener_parse(r->buf);
    char err[384];
    int st = INFER_ERR_FORMAT;
    if (!o || !json_object_is_type(o, json_type_object))
        snprintf(err, sizeof err, "not a JSON object with \"text\" or \"ids\"");
    else
        st = infer_json_ids(o, r->buf, len, r->json, "text", r->tc,
                            r->tok && tokenizer_bos_id(r->tok) >= 0, 0, &r->ids, &r->cap, n, err,
                            sizeof err);
    json_object_put(o);
    if (st != INFER_OK)
        return doc_fail(r, st, "%s: line %llu: %s", r->path, (unsigned long long)r->line, err);
    *ids = r->ids;
    return INFER_OK;
}

/* ---- windows and buckets ------------------------------------------------------------------ */

int infer_ppl_bucket(int pos) { /* 0: 0..127, 1: 128..255, 2: 256..511, ... */
    int b = 0;
    for (int edge = 128; pos >= edge && b < INFER_PPL_BUCKETS - 1; edge *= 2)
        b++;
    return b;
}

void infer_ppl_bucket_range(int b, long *from, long *to) {
    *from = b ? 128L << (b - 1) : 0;
    *to = (128L << b) - 1;
}

typedef struct {
    const uint32_t *ids; /* the window */
    uint64_t begin;      /* its first position in the document */
    size_t vocab;
    infer_ppl *acc;
    infer_nll_fn fn;
    void *fn_ctx;
    uint64_t bad_pos;
} ppl_window;

static int ppl_row(void *ctx, int pos, const float *lg) {
    ppl_window *w = ctx;
    if (infer_logits_find_nonfinite(lg, w->vocab) >= 0) {
        w->bad_pos = w->begin + (uint64_t)pos;
        return INFER_ERR_NUMERIC;
    }
    const double nll = -infer_log_prob(lg, w->vocab, w->ids[pos + 1]);
    const int b = infer_ppl_bucket(pos + 1);
    w->acc->sum[b] += nll;
    w->acc->count[b]++;
    w->acc->total += nll;
    w->acc->n++;
    return w->fn ? w->fn(w->fn_ctx, nll) : 0;
}

int infer_ppl_document(infer_state *s, const uint32_t *ids, uint64_t n, int ctx, int stride,
                       uint8_t *want, infer_ppl *acc, infer_nll_fn fn, void *fn_ctx,
                       uint64_t *bad_pos) {
    if (ctx < 2 || stride < 1 || stride > ctx)
        return INFER_ERR_ARG;
    ppl_window w = {
        NULL, 0, (size_t)infer_model_config(infer_state_model(s))->vocab_size, acc, fn, fn_ctx, 0};
    if (n < 2)
        return INFER_OK;
    uint64_t prev_end = 0;
    for (uint64_t begin = 0;; begin += (uint64_t)stride) {
        const uint64_t e = begin + (uint64_t)ctx < n ? begin + (uint64_t)ctx : n;
        const int len = (int)(e - begin);
        /* targets t in [max(prev_end, begin + 1), e): row t - 1 - begin */
        const uint64_t first = prev_end > begin + 1 ? prev_end : begin + 1;
        memset(want, 0, (size_t)len);
        for (uint64_t t = first; t < e; t++)
            want[t - 1 - begin] = 1;
        w.ids = ids + begin;
        w.begin = begin;
        if (len > 1 && first < e) { /* the window's last row predicts nothing */
            int st = infer_prefill(s, ids + begin, len - 1, 0, want, ppl_row, &w);
            if (st == INFER_ERR_NUMERIC)
                *bad_pos = w.bad_pos;
            if (st != INFER_OK)
                return st;
            acc->windows++;
        }
        prev_end = e;
        if (e == n)
            return INFER_OK;
    }
}
