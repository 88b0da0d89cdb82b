/* tok_pool.c - the one tokenize thread pool (tokenizer.h, "encoding batches on threads"): a
 * fixed set of threads, each with its own tok_ctx, that encode a batch of documents cut into
 * contiguous ranges of about equal bytes; the ids of each document come back in input order. */
#include "tokenizer.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    tok_ctx *ctx;
    size_t d0, d1; /* the documents of this thread in the batch */
    uint32_t *ids; /* (ids_cap) the ids of documents d0..d1, back to back */
    size_t n_ids, ids_cap;
    size_t *end; /* (end_cap) end of each document (d - d0) in ids */
    size_t end_cap;
    int status;
} pool_worker;

struct tok_pool {
    int n_threads;
    pool_worker *w; /* (n_threads) worker 0 runs on the caller's thread */
    pthread_t *th;  /* (n_threads) th[0] unused */
    int n_started;  /* threads 1..n_started are running */
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    uint64_t generation; /* one more per batch: the threads wake to it */
    int n_busy;          /* threads still encoding the batch */
    int quit;
    /* the batch */
    const tok_text *docs;
    size_t n_docs;
    const tok_encode_opts *opts;
    const uint32_t **doc_ids; /* (doc_cap) ids of each document, borrowed from the workers */
    size_t *doc_n_ids;        /* (doc_cap) */
    size_t doc_cap;
};

static void encode_range(tok_pool *p, pool_worker *w) {
    w->n_ids = 0;
    w->status = TOK_OK;
    size_t nd = w->d1 - w->d0;
    if (nd > w->end_cap) {
        size_t *e = realloc(w->end, nd * sizeof *e);
        if (!e) {
            w->status = TOK_ERR_NOMEM;
            return;
        }
        w->end = e;
        w->end_cap = nd;
    }
    for (size_t i = w->d0; i < w->d1; i++) {
        const uint32_t *ids;
        size_t n;
        int st = tokenizer_encode(w->ctx, p->docs[i].text, p->docs[i].n_bytes, p->opts, &ids, &n);
        if (st != TOK_OK) {
            w->status = st;
            return;
        }
        if (w->n_ids + n > w->ids_cap) {
            size_t cap = w->ids_cap ? w->ids_cap : 1 << 16;
            while (cap < w->n_ids + n)
                cap *= 2;
            uint32_t *q = realloc(w->ids, cap * sizeof *q);
            if (!q) {
                w->status = TOK_ERR_NOMEM;
                return;
            }
            w->ids = q;
            w->ids_cap = cap;
        }
        if (n) /* w->ids may still be NULL */
            memcpy(w->ids + w->n_ids, ids, n * sizeof *ids);
        w->n_ids += n;
        w->end[i - w->d0] = w->n_ids;
    }
}

typedef struct {
    tok_pool *p;
    int k;
} thread_arg;

static void *pool_thread(void *arg) {
    tok_pool *p = ((thread_arg *)arg)->p;
    pool_worker *w = &p->w[((thread_arg *)arg)->k];
    free(arg);
    uint64_t seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->quit && p->generation == seen)
            pthread_cond_wait(&p->go, &p->mu);
        if (p->quit)
            break;
        seen = p->generation;
        pthread_mutex_unlock(&p->mu);
        encode_range(p, w);
        pthread_mutex_lock(&p->mu);
        if (--p->n_busy == 0)
            pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

int tok_pool_create(const tokenizer *t, int n_threads, tok_pool **out) {
    if (!out)
        return TOK_ERR_ARG;
    *out = NULL;
    if (!t || n_threads < 1)
        return TOK_ERR_ARG;
    tok_pool *p = calloc(1, sizeof *p);
    if (!p)
        return TOK_ERR_NOMEM;
    p->n_threads = n_threads;
    p->w = calloc((size_t)n_threads, sizeof *p->w);
    p->th = calloc((size_t)n_threads, sizeof *p->th);
    if (!p->w || !p->th) {
        free(p->w);
        free(p->th);
        free(p);
        return TOK_ERR_NOMEM;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->go, NULL);
    pthread_cond_init(&p->done, NULL);
    int st = TOK_OK;
    for (int k = 0; k < n_threads && st == TOK_OK; k++)
        st = tok_ctx_create(t, &p->w[k].ctx);
    for (int k = 1; k < n_threads && st == TOK_OK; k++) {
        thread_arg *a = malloc(sizeof *a);
        if (!a) {
            st = TOK_ERR_NOMEM;
            break;
        }
        a->p = p;
        a->k = k;
        if (pthread_create(&p->th[k], NULL, pool_thread, a) != 0) {
            free(a);
            st = TOK_ERR_NOMEM; /* EAGAIN: out of threads */
            break;
        }
        p->n_started = k;
    }
    if (st != TOK_OK) {
        tok_pool_free(p);
        return st;
    }
    *out = p;
    return TOK_OK;
}

int tok_pool_encode(tok_pool *p, const tok_text *docs, size_t n_docs, const tok_encode_opts *opts) {
    if (!p || (n_docs > 0 && !docs))
        return TOK_ERR_ARG;
    if (n_docs > p->doc_cap) {
        const uint32_t **di = realloc(p->doc_ids, n_docs * sizeof *di);
        if (di)
            p->doc_ids = di;
        size_t *dn = di ? realloc(p->doc_n_ids, n_docs * sizeof *dn) : NULL;
        if (!dn)
            return TOK_ERR_NOMEM;
        p->doc_n_ids = dn;
        p->doc_cap = n_docs;
    }
    /* contiguous ranges of about equal bytes, so the output order is the thread order */
    int nt = p->n_threads;
    uint64_t total = 0, acc = 0;
    for (size_t i = 0; i < n_docs; i++)
        total += docs[i].n_bytes;
    size_t d = 0;
    for (int k = 0; k < nt; k++) {
        p->w[k].d0 = d;
        uint64_t goal = total * (uint64_t)(k + 1) / (uint64_t)nt;
        while (d < n_docs && (acc < goal || k == nt - 1))
            acc += docs[d++].n_bytes;
        p->w[k].d1 = d;
    }
    p->docs = docs;
    p->n_docs = n_docs;
    p->opts = opts;
    pthread_mutex_lock(&p->mu);
    p->n_busy = nt - 1;
    p->generation++;
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    encode_range(p, &p->w[0]);
    pthread_mutex_lock(&p->mu);
    while (p->n_busy > 0)
        pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
    int st = TOK_OK;
    for (int k = 0; k < nt; k++) {
        const pool_worker *w = &p->w[k];
        if (w->status != TOK_OK) {
            st = w->status;
            break;
        }
        size_t prev = 0;
        for (size_t i = w->d0; i < w->d1; i++) {
            p->doc_ids[i] = w->ids ? w->ids + prev : NULL;
            p->doc_n_ids[i] = w->end[i - w->d0] - prev;
            prev = w->end[i - w->d0];
        }
    }
    p->n_docs = st == TOK_OK ? n_docs : 0;
    return st;
}

const uint32_t *tok_pool_ids(const tok_pool *p, size_t doc, size_t *n_ids) {
    if (doc >= p->n_docs) {
        *n_ids = 0;
        return NULL;
    }
    *n_ids = p->doc_n_ids[doc];
    return p->doc_ids[doc];
}

void tok_pool_free(tok_pool *p) {
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->quit = 1;
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    for (int k = 1; k <= p->n_started; k++)
        pthread_join(p->th[k], NULL);
    for (int k = 0; k < p->n_threads; k++) {
        tok_ctx_free(p->w[k].ctx);
        free(p->w[k].ids);
        free(p->w[k].end);
    }
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->go);
    pthread_cond_destroy(&p->done);
    free(p->doc_ids);
    free(p->doc_n_ids);
    free(p->w);
    free(p->th);
    free(p);
}
