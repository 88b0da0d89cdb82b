/* shard_pack.c - concat packing (Fu et al.): documents run back to back across sequences of
 * seq_len tokens, each piece recorded (start, document, offset in the document). The cutting
 * rule (shard_concat_next) is the one implementation: prep's concat plan uses it on document
 * lengths, shard_concat_append on tokens into a writer, and shard_pack on an id list. */
#include "shard_internal.h"

#include <assert.h>
#include <stdlib.h>

typedef unsigned long long ull;

shard_concat shard_concat_init(uint64_t seq_len) {
    assert(seq_len > 0);
    shard_concat c = {seq_len, 0, 0};
    return c;
}

uint64_t shard_concat_next(shard_concat *c, uint64_t n_left, int *opened, uint64_t *start) {
    /* a sequence opens for a piece with tokens when the open one is full, and for the very
     * first piece; an empty document stays in the open sequence, even a full one */
    *opened = c->n_seqs == 0 || (n_left > 0 && c->fill == c->seq_len);
    if (*opened) {
        c->n_seqs++;
        c->fill = 0;
    }
    uint64_t take = n_left < c->seq_len - c->fill ? n_left : c->seq_len - c->fill;
    *start = c->fill;
    c->fill += take;
    return take;
}

int shard_concat_append(shard_concat *c, shard_writer *w, const uint32_t *tokens, uint64_t n_tokens,
                        uint64_t doc_id) {
    uint64_t k = 0;
    int st = SHARD_OK;
    do { /* one piece per sequence the document touches; an empty document gets one too */
        int opened;
        uint64_t start, take = shard_concat_next(c, n_tokens - k, &opened, &start);
        if (opened && c->n_seqs > 1)
            st = shard_writer_seq_end(w);
        shard_doc d = {start, doc_id, k};
        if (st == SHARD_OK)
            st = shard_writer_seq_doc(w, &d);
        if (st == SHARD_OK)
            st = shard_writer_seq_tokens(w, tokens + k, take);
        k += take;
    } while (st == SHARD_OK && k < n_tokens);
    return st;
}

int shard_concat_finish(shard_concat *c, shard_writer *w) {
    return c->n_seqs > 0 ? shard_writer_seq_end(w) : SHARD_OK;
}

/* ---- shard_pack: an id list into one shard -------------------------------------------------- */

shard_pack_opts shard_pack_opts_default(void) {
    shard_pack_opts o = {0, 131072, 0, SHARD_PACK_NONE, SHARD_PACK_NONE, 3};
    return o;
}

int shard_pack(FILE *in, const char *in_name, const char *out, const shard_pack_opts *o,
               shard_pack_report *rep, char *err, size_t err_bytes) {
    if (o->vocab_size == 0 || o->seq_len == 0 ||
        (o->bos != SHARD_PACK_NONE && o->bos >= o->vocab_size) ||
        (o->eos != SHARD_PACK_NONE && o->eos >= o->vocab_size)) {
        snprintf(err, err_bytes, "need vocab_size > 0 (above bos and eos) and seq_len > 0");
        return SHARD_ERR_ARG;
    }
    char meta[256];
    snprintf(meta, sizeof meta,
             "{\"source\":\"shard pack\",\"seq_len\":%llu,\"packing\":\"concat\"}",
             (ull)o->seq_len);
    shard_writer_opts wo = shard_writer_opts_default();
    wo.vocab_size = o->vocab_size;
    wo.level = o->level;
    wo.meta_json = meta;
    shard_writer *w;
    shard_concat c = shard_concat_init(o->seq_len);
    int st = shard_writer_create(out, &wo, &w), more = SHARD_OK;
    uint32_t *ids = NULL;  /* (cap) the document as read */
    uint32_t *dbuf = NULL; /* (dcap) the document as packed: [bos] ids [eos] */
    uint64_t cap = 0, dcap = 0, n, byte_off = 0, n_docs = 0, n_tokens = 0;
    const char *why = "";
    while (st == SHARD_OK &&
           (more = shard_ids_read(in, o->u32, &ids, &cap, &n, &byte_off, &why)) == SHARD_OK) {
        uint64_t m = n + (o->bos != SHARD_PACK_NONE) + (o->eos != SHARD_PACK_NONE), k = 0;
        if (m > dcap && !(dbuf = realloc(dbuf, (size_t)((dcap = m) * 4)))) {
            st = SHARD_ERR_NOMEM;
            break;
        }
        if (o->bos != SHARD_PACK_NONE)
            dbuf[k++] = (uint32_t)o->bos;
        memcpy(dbuf + k, ids, n * 4);
        if (o->eos != SHARD_PACK_NONE)
            dbuf[k + n] = (uint32_t)o->eos;
        st = shard_concat_append(&c, w, dbuf, m, n_docs);
        n_tokens += m;
        n_docs++;
    }
    if (st == SHARD_OK && more < 0) {
        st = more;
        if (more == SHARD_ERR_CORRUPT)
            snprintf(err, err_bytes, "%s: offset %llu: %s", in_name, (ull)byte_off, why);
        else
            snprintf(err, err_bytes, "out of memory");
    } else {
        if (st == SHARD_OK)
            st = shard_concat_finish(&c, w);
        if (st == SHARD_OK)
            st = shard_writer_close(w);
        if (st != SHARD_OK)
            snprintf(err, err_bytes, "%s",
                     w && shard_writer_errmsg(w)[0] ? shard_writer_errmsg(w) : "out of memory");
    }
    if (st == SHARD_OK) {
        rep->n_docs = n_docs;
        rep->n_tokens = n_tokens;
        rep->n_seqs = c.n_seqs;
    }
    shard_writer_free(w);
    free(ids);
    free(dbuf);
    return st;
}
