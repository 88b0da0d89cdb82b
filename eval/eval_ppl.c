/* eval_ppl.c - ppl-vs-length: the documents of a run, and the loss of one window (the window
 * is perplexity's, infer_ppl_document; this file only picks it and sums its last targets). */
#include "eval.h"
#include "infer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

_Static_assert((int)EVAL_PPL_BUCKETS == (int)INFER_PPL_BUCKETS, "the buckets are perplexity's");

typedef struct {
    uint64_t k, from; /* targets seen; the first of the last N */
    double sum;
} last_acc;

static int take_nll(void *ctx, double nll) {
    last_acc *a = ctx;
    if (a->k++ >= a->from)
        a->sum += nll;
    return 0;
}

int eval_ppl_window(infer_state *s, const uint32_t *ids, uint64_t end, int length, int last,
                    uint8_t *want, eval_ppl_result *out, uint64_t *bad_pos) {
    memset(out, 0, sizeof *out);
    if (length < 1 || (uint64_t)length > end || last < 1 || last > length)
        return EVAL_ERR_ARG;
    const uint64_t begin = end - (uint64_t)length;
    infer_ppl acc;
    memset(&acc, 0, sizeof acc);
    last_acc la = {0, (uint64_t)(length - last), 0.0};
    uint64_t bad = 0;
    const int st = infer_ppl_document(s, ids + begin, (uint64_t)length + 1, length + 1, length + 1,
                                      want, &acc, take_nll, &la, &bad);
    if (st == INFER_ERR_NUMERIC) {
        *bad_pos = begin + bad;
        return EVAL_ERR_FORMAT;
    }
    if (st != INFER_OK)
        return st == INFER_ERR_ARG ? EVAL_ERR_ARG : EVAL_ERR_IO;
    if (acc.n != (uint64_t)length || la.k != (uint64_t)length)
        return EVAL_ERR_ARG;
    out->last_sum = la.sum;
    out->last_n = (uint64_t)last;
    out->total = acc.total;
    out->n = acc.n;
    memcpy(out->sum, acc.sum, sizeof out->sum);
    memcpy(out->count, acc.count, sizeof out->count);
    return EVAL_OK;
}

void eval_ppl_docs_free(eval_ppl_docs *d) {
    if (!d)
        return;
    for (size_t i = 0; i < d->n; i++)
        free(d->docs[i].ids);
    free(d->docs);
    memset(d, 0, sizeof *d);
}

int eval_ppl_docs_load(const char *const *paths, size_t n_paths, const struct tokenizer *tok,
                       uint64_t need, size_t max_docs, uint64_t vocab, eval_ppl_docs *d) {
    memset(d, 0, sizeof *d);
    d->need = need;
    XXH3_state_t *h = XXH3_createState();
    size_t cap = 0;
    int rc = h ? EVAL_OK : EVAL_ERR_NOMEM;
    if (h)
        XXH3_64bits_reset(h);
    for (size_t f = 0; rc == EVAL_OK && f < n_paths && (!max_docs || d->n < max_docs); f++) {
        infer_doc_reader *r = NULL;
        int st = infer_doc_reader_create(paths[f], tok, &r);
        for (uint64_t index = 0; st == INFER_OK && (!max_docs || d->n < max_docs); index++) {
            const uint32_t *ids;
            uint64_t n;
            if ((st = infer_doc_reader_next(r, &ids, &n)) != INFER_OK)
                break;
            if (n < need) {
                d->n_short++;
                continue;
            }
            for (uint64_t k = 0; k < need; k++)
                if (ids[k] >= vocab) {
                    snprintf(d->errmsg, sizeof d->errmsg,
                             "%s: document %llu: id %u at position %llu is not below the "
                             "model's vocabulary size %llu",
                             paths[f], (unsigned long long)index, ids[k], (unsigned long long)k,
                             (unsigned long long)vocab);
                    st = INFER_ERR_FORMAT;
                    break;
                }
            if (st != INFER_OK)
                break;
            if (d->n == cap) {
                eval_ppl_doc *q = realloc(d->docs, (cap = cap ? 2 * cap : 16) * sizeof *q);
                if (!q) {
                    st = INFER_ERR_NOMEM;
                    break;
                }
                d->docs = q;
            }
            eval_ppl_doc *e = &d->docs[d->n];
            if (!(e->ids = malloc(need * sizeof *e->ids))) {
                st = INFER_ERR_NOMEM;
                break;
            }
            memcpy(e->ids, ids, need * sizeof *e->ids);
            e->tokens = n;
            e->file = f;
            e->index = index;
            d->n++;
            const uint64_t origin[2] = {(uint64_t)f, index};
            XXH3_64bits_update(h, origin, sizeof origin);
            XXH3_64bits_update(h, e->ids, need * sizeof *e->ids);
        }
        if (st == INFER_DONE)
            st = INFER_OK;
        if (st != INFER_OK) {
            if (!d->errmsg[0])
                snprintf(d->errmsg, sizeof d->errmsg, "%s",
                         st == INFER_ERR_NOMEM && !r ? "out of memory"
                                                     : infer_doc_reader_errmsg(r));
            if (!d->errmsg[0])
                snprintf(d->errmsg, sizeof d->errmsg, "%s: %s", paths[f], infer_strerror(st));
            rc = st == INFER_ERR_NOMEM ? EVAL_ERR_NOMEM
                 : st == INFER_ERR_IO  ? EVAL_ERR_IO
                                       : EVAL_ERR_FORMAT;
        }
        infer_doc_reader_free(r);
    }
    if (h) {
        d->hash = XXH3_64bits_digest(h);
        XXH3_freeState(h);
    }
    if (rc == EVAL_ERR_NOMEM && !d->errmsg[0])
        snprintf(d->errmsg, sizeof d->errmsg, "out of memory");
    return rc;
}
