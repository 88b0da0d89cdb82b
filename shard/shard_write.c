/* shard_write.c - the streaming shard writer (see shard.h for the file layout). */
#include "shard_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>
#include <xxhash.h>
#include <zstd.h>

/* One block on its way through the compression threads (opts.threads > 1). Only the
 * caller's thread fills a slot (and grows its buffers) and writes it; a worker only compresses. */
typedef struct {
    uint8_t *raw; /* (raw_cap) */
    uint64_t raw_cap;
    uint64_t raw_bytes;
    uint8_t *comp; /* (comp_cap) SHARD_BLOCK_HDR_BYTES + compressed payload */
    uint64_t comp_cap;
    size_t comp_bytes; /* or a zstd error code */
    uint64_t first_seq;
    uint64_t n_seqs;
    int done;
    int nomem; /* the worker had no compression context */
} wslot;

struct shard_writer {
    char path[4096];
    char tmp_path[4100];
    int fd;
    int status; /* first error, sticky */
    int closed;
    uint32_t vocab_size;
    uint32_t token_bytes;
    int level;
    uint64_t block_bytes;
    uint64_t file_offset; /* bytes written so far */

    /* the open block */
    uint8_t *tok; /* (blk_tokens, token_bytes) */
    uint64_t blk_tokens;
    uint64_t tok_cap; /* in tokens */
    shard_doc *docs;  /* (blk_docs) */
    uint64_t blk_docs;
    uint64_t docs_cap;
    uint64_t blk_first_seq;

    /* the open sequence */
    uint64_t seq_tokens;
    uint64_t seq_docs;
    uint32_t next_doc_starts;

    /* index */
    shard_block_entry *blocks; /* (n_blocks) */
    uint64_t n_blocks;
    uint64_t blocks_cap;
    shard_seq_entry *seqs; /* (n_seqs) */
    uint64_t n_seqs;
    uint64_t seqs_cap;
    uint64_t n_tokens;
    uint64_t n_docs;
    uint64_t n_trailing_doc_starts;

    ZSTD_CCtx *cctx;
    uint8_t *raw; /* (raw_cap) the assembled raw block */
    uint64_t raw_cap;
    uint8_t *comp; /* (comp_cap) SHARD_BLOCK_HDR_BYTES + compressed payload */
    uint64_t comp_cap;

    /* compression threads (n_thr > 0): blocks [head, tail) are in slots[i % n_slots], those
     * below next_job are taken by a worker; written in order by the caller's thread */
    int n_thr;
    int n_slots;
    int stop;
    pthread_t *thr;
    wslot *slots;
    uint64_t head, tail, next_job;
    pthread_mutex_t mu;
    pthread_cond_t cv_job, cv_done;
    int pool_up;

    char errmsg[SHARD_ERRMSG_BYTES];
};

#define FAIL(w, st, ...)                                                                           \
    do {                                                                                           \
        shard_set_err((w)->errmsg, __VA_ARGS__);                                                   \
        (w)->status = (st);                                                                        \
        return (st);                                                                               \
    } while (0)

shard_writer_opts shard_writer_opts_default(void) {
    shard_writer_opts o;
    o.vocab_size = 0;
    o.level = 3;
    o.block_bytes = 1u << 20;
    o.meta_json = NULL;
    o.threads = 1;
    return o;
}

static ZSTD_CCtx *new_cctx(int level);
static int pool_start(shard_writer *w, int threads);

/* Grows *buf to hold at least `need` elements of `size` bytes. */
static int grow(void **buf, uint64_t *cap, uint64_t need, size_t size) {
    if (need <= *cap)
        return 0;
    uint64_t n = *cap ? *cap : 64;
    while (n < need)
        n *= 2;
    if (n > SIZE_MAX / size)
        return -1;
    void *p = realloc(*buf, (size_t)(n * size));
    if (!p)
        return -1;
    *buf = p;
    *cap = n;
    return 0;
}

static int write_bytes(shard_writer *w, const void *buf, size_t n) {
    if (shard_write_full(w->fd, buf, n) != 0)
        FAIL(w, SHARD_ERR_IO, "%s: write at offset %llu: %s", w->tmp_path,
             (unsigned long long)w->file_offset, strerror(errno));
    w->file_offset += n;
    return SHARD_OK;
}

/* Parses the caller's metadata, adds longctx_version, and returns a serialised copy. */
static int build_meta(shard_writer *w, const char *meta_json, char **out) {
    const char *text = meta_json ? meta_json : "{}";
    enum json_tokener_error jerr;
    json_object *obj = json_tokener_parse_verbose(text, &jerr);
    if (!obj || !json_object_is_type(obj, json_type_object)) {
        json_object_put(obj);
        FAIL(w, SHARD_ERR_ARG, "%s: metadata is not a JSON object (%s)", w->path,
             obj ? "not an object" : json_tokener_error_desc(jerr));
    }
    if (!json_object_object_get_ex(obj, "longctx_version", NULL))
        json_object_object_add(obj, "longctx_version", json_object_new_string(LONGCTX_VERSION));
    const char *s = json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN);
    size_t n = strlen(s);
    if (n > SHARD_MAX_META_BYTES) {
        json_object_put(obj);
        FAIL(w, SHARD_ERR_ARG, "%s: metadata of %zu bytes exceeds %u", w->path, n,
             SHARD_MAX_META_BYTES);
    }
    *out = strdup(s);
    json_object_put(obj);
    if (!*out)
        FAIL(w, SHARD_ERR_NOMEM, "%s: out of memory", w->path);
    return SHARD_OK;
}

int shard_writer_create(const char *path, const shard_writer_opts *opts, shard_writer **out) {
    *out = NULL;
    shard_writer *w = calloc(1, sizeof *w);
    if (!w)
        return SHARD_ERR_NOMEM;
    *out = w;
    w->fd = -1;
    w->next_doc_starts = 1;
    if (!path || strlen(path) >= sizeof w->path - 1)
        FAIL(w, SHARD_ERR_ARG, "shard path missing or too long");
    snprintf(w->path, sizeof w->path, "%s", path);
    snprintf(w->tmp_path, sizeof w->tmp_path, "%s.tmp", path);
    if (!opts || opts->vocab_size == 0)
        FAIL(w, SHARD_ERR_ARG, "%s: vocab_size must be set", path);
    if (opts->level < ZSTD_minCLevel() || opts->level > ZSTD_maxCLevel())
        FAIL(w, SHARD_ERR_ARG, "%s: zstd level %d out of range [%d, %d]", path, opts->level,
             ZSTD_minCLevel(), ZSTD_maxCLevel());
    w->vocab_size = opts->vocab_size;
    w->token_bytes = shard_token_bytes_for_vocab(opts->vocab_size);
    w->level = opts->level;
    w->block_bytes = opts->block_bytes ? opts->block_bytes : 1;

    char *meta = NULL;
    int st = build_meta(w, opts->meta_json, &meta);
    if (st != SHARD_OK)
        return st;

    w->cctx = new_cctx(w->level);
    if (!w->cctx) {
        free(meta);
        FAIL(w, SHARD_ERR_NOMEM, "%s: out of memory", path);
    }
    if (opts->threads > 1 && (st = pool_start(w, opts->threads)) != SHARD_OK) {
        free(meta);
        return st;
    }

    w->fd = open(w->tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (w->fd < 0) {
        free(meta);
        FAIL(w, SHARD_ERR_IO, "%s: cannot create: %s", w->tmp_path, strerror(errno));
    }

    size_t meta_bytes = strlen(meta);
    size_t hdr_bytes = SHARD_HEADER_FIXED_BYTES + meta_bytes + 8;
    uint8_t *hdr = malloc(hdr_bytes);
    if (!hdr) {
        free(meta);
        FAIL(w, SHARD_ERR_NOMEM, "%s: out of memory", path);
    }
    memcpy(hdr, SHARD_HEADER_MAGIC, 8);
    shard_put_u32(hdr + 8, SHARD_VERSION);
    shard_put_u32(hdr + 12, w->token_bytes);
    shard_put_u32(hdr + 16, w->vocab_size);
    shard_put_u32(hdr + 20, SHARD_CODEC_ZSTD);
    shard_put_u64(hdr + 24, meta_bytes);
    memcpy(hdr + SHARD_HEADER_FIXED_BYTES, meta, meta_bytes);
    shard_put_u64(hdr + hdr_bytes - 8, XXH3_64bits(hdr, hdr_bytes - 8));
    free(meta);
    st = write_bytes(w, hdr, hdr_bytes);
    free(hdr);
    return st;
}

/* The open block's raw form (tokens, zero padding to 8 bytes, pieces) into dst. */
static void assemble_raw(const shard_writer *w, uint8_t *dst) {
    uint64_t tok_bytes = w->blk_tokens * w->token_bytes;
    if (tok_bytes)
        memcpy(dst, w->tok, tok_bytes);
    memset(dst + tok_bytes, 0, shard_pad8(tok_bytes) - tok_bytes);
    uint8_t *d = dst + shard_pad8(tok_bytes);
    for (uint64_t i = 0; i < w->blk_docs; i++, d += SHARD_DOC_BYTES) {
        shard_put_u64(d, w->docs[i].start);
        shard_put_u64(d + 8, w->docs[i].doc_id);
        shard_put_u64(d + 16, w->docs[i].doc_offset);
    }
}

static ZSTD_CCtx *new_cctx(int level) {
    ZSTD_CCtx *c = ZSTD_createCCtx();
    if (c) {
        ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, level);
        ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 1);
    }
    return c;
}

/* One block compressed on its own: the same bytes on any thread, with any context. */
static size_t compress_block(ZSTD_CCtx *c, uint8_t *comp, size_t bound, const uint8_t *raw,
                             uint64_t raw_bytes) {
    ZSTD_CCtx_reset(c, ZSTD_reset_session_only);
    ZSTD_CCtx_setPledgedSrcSize(c, raw_bytes);
    return ZSTD_compress2(c, comp + SHARD_BLOCK_HDR_BYTES, bound, raw, raw_bytes);
}

/* Heads, records and writes a compressed block (comp: SHARD_BLOCK_HDR_BYTES + payload). */
static int emit_block(shard_writer *w, uint8_t *comp, size_t comp_bytes, uint64_t raw_bytes,
                      uint64_t first_seq, uint64_t n_seqs) {
    if (ZSTD_isError(comp_bytes))
        FAIL(w, SHARD_ERR_NOMEM, "%s: zstd: %s", w->path, ZSTD_getErrorName(comp_bytes));
    shard_block_entry e;
    e.offset = w->file_offset;
    e.comp_bytes = comp_bytes;
    e.raw_bytes = raw_bytes;
    e.first_seq = first_seq;
    e.n_seqs = n_seqs;
    e.checksum = XXH3_64bits(comp + SHARD_BLOCK_HDR_BYTES, comp_bytes);
    shard_put_u32(comp, SHARD_BLOCK_MAGIC);
    shard_put_u32(comp + 4, (uint32_t)n_seqs);
    shard_put_u64(comp + 8, e.comp_bytes);
    shard_put_u64(comp + 16, e.raw_bytes);
    shard_put_u64(comp + 24, e.checksum);
    if (grow((void **)&w->blocks, &w->blocks_cap, w->n_blocks + 1, sizeof *w->blocks) != 0)
        FAIL(w, SHARD_ERR_NOMEM, "%s: out of memory", w->path);
    w->blocks[w->n_blocks++] = e;
    return write_bytes(w, comp, SHARD_BLOCK_HDR_BYTES + comp_bytes);
}

/* ---- compression threads ------------------------------------------------------------------ */

static void *compress_worker(void *arg) {
    shard_writer *w = arg;
    ZSTD_CCtx *c = new_cctx(w->level);
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->stop && w->next_job == w->tail)
            pthread_cond_wait(&w->cv_job, &w->mu);
        if (w->next_job == w->tail)
            break; /* stopped, and nothing left queued */
        wslot *sl = &w->slots[w->next_job++ % (uint64_t)w->n_slots];
        pthread_mutex_unlock(&w->mu);
        size_t bound = ZSTD_compressBound(sl->raw_bytes);
        sl->nomem = !c;
        sl->comp_bytes = c ? compress_block(c, sl->comp, bound, sl->raw, sl->raw_bytes) : 0;
        pthread_mutex_lock(&w->mu);
        sl->done = 1;
        pthread_cond_broadcast(&w->cv_done);
    }
    pthread_mutex_unlock(&w->mu);
    ZSTD_freeCCtx(c);
    return NULL;
}

static int pool_start(shard_writer *w, int threads) {
    w->n_slots = 2 * threads;
    w->slots = calloc((size_t)w->n_slots, sizeof *w->slots);
    w->thr = calloc((size_t)threads, sizeof *w->thr);
    if (!w->slots || !w->thr)
        FAIL(w, SHARD_ERR_NOMEM, "%s: out of memory", w->path);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv_job, NULL);
    pthread_cond_init(&w->cv_done, NULL);
    w->pool_up = 1;
    for (int t = 0; t < threads; t++) {
        if (pthread_create(&w->thr[t], NULL, compress_worker, w) != 0)
            FAIL(w, SHARD_ERR_NOMEM, "%s: cannot start compression thread %d of %d", w->path, t + 1,
                 threads);
        w->n_thr++;
    }
    return SHARD_OK;
}

/* Lets the workers finish what is queued, and joins them. */
static void pool_stop(shard_writer *w) {
    if (!w->pool_up)
        return;
    pthread_mutex_lock(&w->mu);
    w->stop = 1;
    pthread_cond_broadcast(&w->cv_job);
    pthread_mutex_unlock(&w->mu);
    for (int t = 0; t < w->n_thr; t++)
        pthread_join(w->thr[t], NULL);
    w->n_thr = 0;
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv_job);
    pthread_cond_destroy(&w->cv_done);
    w->pool_up = 0;
}

/* Writes the compressed blocks at the head, in order, until at most `keep` are still pending
 * (waiting for the workers only while more than `keep` are). */
static int write_ready(shard_writer *w, uint64_t keep) {
    for (;;) {
        pthread_mutex_lock(&w->mu);
        if (w->head == w->tail) {
            pthread_mutex_unlock(&w->mu);
            return SHARD_OK;
        }
        wslot *sl = &w->slots[w->head % (uint64_t)w->n_slots];
        if (!sl->done && w->tail - w->head <= keep) {
            pthread_mutex_unlock(&w->mu);
            return SHARD_OK;
        }
        while (!sl->done)
            pthread_cond_wait(&w->cv_done, &w->mu);
        pthread_mutex_unlock(&w->mu);
        if (sl->nomem)
            FAIL(w, SHARD_ERR_NOMEM, "%s: out of memory for a compression context", w->path);
        int st = emit_block(w, sl->comp, sl->comp_bytes, sl->raw_bytes, sl->first_seq, sl->n_seqs);
        pthread_mutex_lock(&w->mu);
        sl->done = 0;
        w->head++;
        pthread_mutex_unlock(&w->mu);
        if (st != SHARD_OK)
            return st;
    }
}

/* ---- blocks -------------------------------------------------------------------------------- */

static int flush_block(shard_writer *w) {
    uint64_t n_seqs = w->n_seqs - w->blk_first_seq;
    if (n_seqs == 0)
        return SHARD_OK;
    uint64_t raw_bytes = shard_raw_bytes(w->blk_tokens, w->blk_docs, w->token_bytes);
    uint64_t bound = ZSTD_compressBound(raw_bytes);
    uint64_t first_seq = w->blk_first_seq;
    w->blk_first_seq = w->n_seqs;
    if (w->n_thr > 0) {
        int st = write_ready(w, (uint64_t)w->n_slots - 1); /* a free slot */
        if (st != SHARD_OK)
            return st;
        wslot *sl = &w->slots[w->tail % (uint64_t)w->n_slots];
        if (grow((void **)&sl->raw, &sl->raw_cap, raw_bytes ? raw_bytes : 1, 1) != 0 ||
            grow((void **)&sl->comp, &sl->comp_cap, SHARD_BLOCK_HDR_BYTES + bound, 1) != 0)
            FAIL(w, SHARD_ERR_NOMEM, "%s: out of memory for a block of %llu bytes", w->path,
                 (unsigned long long)raw_bytes);
        assemble_raw(w, sl->raw);
        sl->raw_bytes = raw_bytes;
        sl->first_seq = first_seq;
        sl->n_seqs = n_seqs;
        w->blk_tokens = 0;
        w->blk_docs = 0;
        pthread_mutex_lock(&w->mu);
        w->tail++;
        pthread_cond_signal(&w->cv_job);
        pthread_mutex_unlock(&w->mu);
        return write_ready(w, (uint64_t)w->n_slots); /* what is done, without waiting */
    }
    if (grow((void **)&w->raw, &w->raw_cap, raw_bytes ? raw_bytes : 1, 1) != 0 ||
        grow((void **)&w->comp, &w->comp_cap, SHARD_BLOCK_HDR_BYTES + bound, 1) != 0)
        FAIL(w, SHARD_ERR_NOMEM, "%s: out of memory for a block of %llu bytes", w->path,
             (unsigned long long)raw_bytes);
    assemble_raw(w, w->raw);
    w->blk_tokens = 0;
    w->blk_docs = 0;
    size_t comp_bytes = compress_block(w->cctx, w->comp, bound, w->raw, raw_bytes);
    return emit_block(w, w->comp, comp_bytes, raw_bytes, first_seq, n_seqs);
}

/* ---- sequences ----------------------------------------------------------------------------- */

static int check_open(shard_writer *w) {
    if (!w)
        return SHARD_ERR_ARG;
    if (w->status != SHARD_OK)
        return w->status;
    if (w->closed)
        FAIL(w, SHARD_ERR_ARG, "%s: writer already closed", w->path);
    return SHARD_OK;
}

int shard_writer_seq_tokens(shard_writer *w, const uint32_t *tokens, uint64_t n_tokens) {
    int st = check_open(w);
    if (st != SHARD_OK || n_tokens == 0)
        return st;
    if (grow((void **)&w->tok, &w->tok_cap, w->blk_tokens + n_tokens, w->token_bytes) != 0)
        FAIL(w, SHARD_ERR_NOMEM, "%s: out of memory for %llu tokens", w->path,
             (unsigned long long)(w->blk_tokens + n_tokens));
    uint32_t max = shard_max_u32(tokens, n_tokens); /* the bad id is looked for after */
    for (uint64_t i = 0; max >= w->vocab_size && i < n_tokens; i++)
        if (tokens[i] >= w->vocab_size)
            FAIL(w, SHARD_ERR_ARG, "%s: sequence %llu token %llu: id %u >= vocab_size %u", w->path,
                 (unsigned long long)w->n_seqs, (unsigned long long)(w->seq_tokens + i), tokens[i],
                 w->vocab_size);
    if (w->token_bytes == 4) {
        memcpy(w->tok + w->blk_tokens * 4, tokens, n_tokens * 4);
    } else {
        uint16_t *dst = (uint16_t *)(void *)w->tok + w->blk_tokens;
        uint64_t i = 0;
        for (; i + 8 <= n_tokens; i += 8) /* eight at a time: gcc -O2 vectorises this */
            for (int k = 0; k < 8; k++)
                dst[i + k] = (uint16_t)tokens[i + k];
        for (; i < n_tokens; i++)
            dst[i] = (uint16_t)tokens[i];
    }
    w->blk_tokens += n_tokens;
    w->seq_tokens += n_tokens;
    return SHARD_OK;
}

int shard_writer_seq_tokens16(shard_writer *w, const uint16_t *tokens, uint64_t n_tokens) {
    int st = check_open(w);
    if (st != SHARD_OK || n_tokens == 0)
        return st;
    if (grow((void **)&w->tok, &w->tok_cap, w->blk_tokens + n_tokens, w->token_bytes) != 0)
        FAIL(w, SHARD_ERR_NOMEM, "%s: out of memory for %llu tokens", w->path,
             (unsigned long long)(w->blk_tokens + n_tokens));
    uint16_t m[8] = {0}; /* the largest id, eight lanes (see shard_max_u32) */
    uint64_t i = 0;
    for (; i + 8 <= n_tokens; i += 8)
        for (int k = 0; k < 8; k++)
            m[k] = tokens[i + k] > m[k] ? tokens[i + k] : m[k];
    uint32_t max = 0;
    for (int k = 0; k < 8; k++)
        max = m[k] > max ? m[k] : max;
    for (; i < n_tokens; i++)
        max = tokens[i] > max ? tokens[i] : max;
    for (i = 0; max >= w->vocab_size && i < n_tokens; i++)
        if (tokens[i] >= w->vocab_size)
            FAIL(w, SHARD_ERR_ARG, "%s: sequence %llu token %llu: id %u >= vocab_size %u", w->path,
                 (unsigned long long)w->n_seqs, (unsigned long long)(w->seq_tokens + i),
                 (unsigned)tokens[i], w->vocab_size);
    if (w->token_bytes == 2) {
        memcpy(w->tok + w->blk_tokens * 2, tokens, n_tokens * 2);
    } else {
        uint32_t *dst = (uint32_t *)(void *)w->tok + w->blk_tokens;
        for (i = 0; i < n_tokens; i++)
            dst[i] = tokens[i];
    }
    w->blk_tokens += n_tokens;
    w->seq_tokens += n_tokens;
    return SHARD_OK;
}

int shard_writer_seq_doc(shard_writer *w, const shard_doc *doc) {
    int st = check_open(w);
    if (st != SHARD_OK)
        return st;
    if (w->seq_docs > 0 && doc->start < w->docs[w->blk_docs - 1].start)
        FAIL(w, SHARD_ERR_ARG,
             "%s: sequence %llu: document piece %llu starts at %llu, before "
             "the previous piece",
             w->path, (unsigned long long)w->n_seqs, (unsigned long long)w->seq_docs,
             (unsigned long long)doc->start);
    if (w->seq_docs >= UINT32_MAX)
        FAIL(w, SHARD_ERR_ARG, "%s: sequence %llu has too many document pieces", w->path,
             (unsigned long long)w->n_seqs);
    if (grow((void **)&w->docs, &w->docs_cap, w->blk_docs + 1, sizeof *w->docs) != 0)
        FAIL(w, SHARD_ERR_NOMEM, "%s: out of memory", w->path);
    w->docs[w->blk_docs++] = *doc;
    w->seq_docs++;
    return SHARD_OK;
}

int shard_writer_seq_end(shard_writer *w) {
    int st = check_open(w);
    if (st != SHARD_OK)
        return st;
    if (w->seq_docs > 0 && w->docs[w->blk_docs - 1].start > w->seq_tokens)
        FAIL(w, SHARD_ERR_ARG,
             "%s: sequence %llu: a document piece starts at %llu, past its "
             "%llu tokens",
             w->path, (unsigned long long)w->n_seqs,
             (unsigned long long)w->docs[w->blk_docs - 1].start, (unsigned long long)w->seq_tokens);
    if (grow((void **)&w->seqs, &w->seqs_cap, w->n_seqs + 1, sizeof *w->seqs) != 0)
        FAIL(w, SHARD_ERR_NOMEM, "%s: out of memory", w->path);
    shard_seq_entry *e = &w->seqs[w->n_seqs++];
    e->n_tokens = w->seq_tokens;
    e->n_docs = (uint32_t)w->seq_docs;
    e->n_doc_starts = w->next_doc_starts;
    w->n_tokens += w->seq_tokens;
    w->n_docs += w->seq_docs;
    w->seq_tokens = 0;
    w->seq_docs = 0;
    w->next_doc_starts = 1;
    if (shard_raw_bytes(w->blk_tokens, w->blk_docs, w->token_bytes) >= w->block_bytes)
        return flush_block(w);
    return SHARD_OK;
}

int shard_writer_append(shard_writer *w, const uint32_t *tokens, uint64_t n_tokens,
                        const shard_doc *docs, uint64_t n_docs) {
    int st = shard_writer_seq_tokens(w, tokens, n_tokens);
    for (uint64_t i = 0; st == SHARD_OK && i < n_docs; i++)
        st = shard_writer_seq_doc(w, &docs[i]);
    return st == SHARD_OK ? shard_writer_seq_end(w) : st;
}

int shard_writer_set_doc_starts(shard_writer *w, uint32_t n_doc_starts) {
    int st = check_open(w);
    if (st == SHARD_OK)
        w->next_doc_starts = n_doc_starts;
    return st;
}

int shard_writer_add_trailing_doc_starts(shard_writer *w, uint64_t n) {
    int st = check_open(w);
    if (st == SHARD_OK)
        w->n_trailing_doc_starts += n;
    return st;
}

/* ---- close --------------------------------------------------------------------------------- */

int shard_writer_close(shard_writer *w) {
    int st = check_open(w);
    if (st != SHARD_OK)
        return st;
    if (w->seq_tokens || w->seq_docs)
        FAIL(w, SHARD_ERR_ARG, "%s: close with an unfinished sequence (call seq_end)", w->path);
    if ((st = flush_block(w)) != SHARD_OK)
        return st;
    if (w->n_thr > 0 && (st = write_ready(w, 0)) != SHARD_OK)
        return st;
    pool_stop(w);

    uint64_t index_offset = w->file_offset;
    uint64_t index_bytes = w->n_blocks * SHARD_BLOCK_ENTRY_BYTES +
                           w->n_seqs * SHARD_SEQ_ENTRY_BYTES + 8 + SHARD_TRAILER_BYTES;
    uint8_t *buf = malloc(index_bytes);
    if (!buf)
        FAIL(w, SHARD_ERR_NOMEM, "%s: out of memory for the index", w->path);
    uint8_t *p = buf;
    for (uint64_t b = 0; b < w->n_blocks; b++, p += SHARD_BLOCK_ENTRY_BYTES) {
        const shard_block_entry *e = &w->blocks[b];
        shard_put_u64(p, e->offset);
        shard_put_u64(p + 8, e->comp_bytes);
        shard_put_u64(p + 16, e->raw_bytes);
        shard_put_u64(p + 24, e->first_seq);
        shard_put_u64(p + 32, e->n_seqs);
        shard_put_u64(p + 40, e->checksum);
    }
    for (uint64_t i = 0; i < w->n_seqs; i++, p += SHARD_SEQ_ENTRY_BYTES) {
        shard_put_u64(p, w->seqs[i].n_tokens);
        shard_put_u32(p + 8, w->seqs[i].n_docs);
        shard_put_u32(p + 12, w->seqs[i].n_doc_starts);
    }
    shard_put_u64(p, w->n_trailing_doc_starts);
    p += 8;
    uint64_t idx_bytes = (uint64_t)(p - buf);
    memcpy(p, SHARD_TRAILER_MAGIC, 8);
    shard_put_u64(p + 8, index_offset);
    shard_put_u64(p + 16, idx_bytes);
    shard_put_u64(p + 24, w->n_blocks);
    shard_put_u64(p + 32, w->n_seqs);
    shard_put_u64(p + 40, w->n_tokens);
    shard_put_u64(p + 48, w->n_docs);
    shard_put_u64(p + 56, XXH3_64bits(buf, idx_bytes));
    shard_put_u64(p + 64, XXH3_64bits(p, 64));
    st = write_bytes(w, buf, index_bytes);
    free(buf);
    if (st != SHARD_OK)
        return st;
    if (fsync(w->fd) != 0)
        FAIL(w, SHARD_ERR_IO, "%s: fsync: %s", w->tmp_path, strerror(errno));
    if (close(w->fd) != 0) {
        w->fd = -1;
        FAIL(w, SHARD_ERR_IO, "%s: close: %s", w->tmp_path, strerror(errno));
    }
    w->fd = -1;
    if (rename(w->tmp_path, w->path) != 0)
        FAIL(w, SHARD_ERR_IO, "%s: rename to %s: %s", w->tmp_path, w->path, strerror(errno));
    w->closed = 1;
    return SHARD_OK;
}

void shard_writer_free(shard_writer *w) {
    if (!w)
        return;
    pool_stop(w);
    for (int i = 0; w->slots && i < w->n_slots; i++) {
        free(w->slots[i].raw);
        free(w->slots[i].comp);
    }
    free(w->slots);
    free(w->thr);
    if (w->fd >= 0) {
        close(w->fd);
        unlink(w->tmp_path);
    } else if (!w->closed && w->tmp_path[0]) {
        unlink(w->tmp_path);
    }
    ZSTD_freeCCtx(w->cctx);
    free(w->tok);
    free(w->docs);
    free(w->blocks);
    free(w->seqs);
    free(w->raw);
    free(w->comp);
    free(w);
}

const char *shard_writer_errmsg(const shard_writer *w) {
    return w ? w->errmsg : "out of memory";
}
