/* infer_pool.c - a fixed set of worker threads that run one parallel loop at a time. Tasks
 * are taken from a shared counter; each task's arithmetic does not depend on the thread that
 * runs it, so results do not depend on the thread count. */
#include "infer_internal.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

struct infer_pool {
    int threads;
    pthread_t *tid;
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    uint64_t generation; /* bumped for each loop */
    int busy;            /* workers still in the current loop */
    int quit;
    infer_task_fn fn;
    void *ctx;
    int n;
    atomic_int next;
    void (*progress)(void *ctx); /* thread 0 only */
    void *progress_ctx;
};

static void run_tasks(infer_pool *p, int thread) {
    for (;;) {
        int t = atomic_fetch_add_explicit(&p->next, 1, memory_order_relaxed);
        if (t >= p->n)
            return;
        p->fn(p->ctx, t, thread);
        if (thread == 0 && p->progress)
            p->progress(p->progress_ctx);
    }
}

typedef struct {
    infer_pool *p;
    int thread;
} worker_arg;

static void *worker(void *arg) {
    worker_arg *w = arg;
    infer_pool *p = w->p;
    const int thread = w->thread;
    free(w);
    uint64_t seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->quit && p->generation == seen)
            pthread_cond_wait(&p->go, &p->mu);
        if (p->quit)
            break;
        seen = p->generation;
        pthread_mutex_unlock(&p->mu);
        run_tasks(p, thread);
        pthread_mutex_lock(&p->mu);
        if (--p->busy == 0)
            pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

int infer_pool_create(int threads, infer_pool **out) {
    *out = NULL;
    if (threads < 1)
        threads = 1;
    infer_pool *p = calloc(1, sizeof *p);
    if (!p)
        return INFER_ERR_NOMEM;
    p->threads = threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->go, NULL);
    pthread_cond_init(&p->done, NULL);
    p->tid = calloc((size_t)threads, sizeof *p->tid);
    if (!p->tid) {
        infer_pool_free(p);
        return INFER_ERR_NOMEM;
    }
    for (int i = 1; i < threads; i++) { /* thread 0 is the caller */
        worker_arg *w = malloc(sizeof *w);
        if (!w || (w->p = p, w->thread = i, pthread_create(&p->tid[i], NULL, worker, w) != 0)) {
            free(w);
            p->threads = i;
            infer_pool_free(p);
            return INFER_ERR_NOMEM;
        }
    }
    *out = p;
    return INFER_OK;
}

void infer_pool_free(infer_pool *p) {
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->quit = 1;
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->threads; i++)
        pthread_join(p->tid[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->go);
    pthread_cond_destroy(&p->done);
    free(p->tid);
    free(p);
}

void infer_pool_set_progress(infer_pool *p, void (*fn)(void *ctx), void *ctx) {
    p->progress = fn;
    p->progress_ctx = ctx;
}

int infer_pool_threads(const infer_pool *p) {
    return p->threads;
}

void infer_pool_run(infer_pool *p, int n, infer_task_fn fn, void *ctx) {
    if (p->threads == 1 || n <= 1) {
        for (int t = 0; t < n; t++) {
            fn(ctx, t, 0);
            if (p->progress)
                p->progress(p->progress_ctx);
        }
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->ctx = ctx;
    p->n = n;
    atomic_store(&p->next, 0);
    p->busy = p->threads - 1;
    p->generation++;
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    run_tasks(p, 0);
    pthread_mutex_lock(&p->mu);
    while (p->busy > 0)
        pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}
