/* shard_read.c - open a shard, check its header, trailer and index, read sequences. */
#include "shard_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>
#include <zstd.h>

struct shard_reader {
    char path[4096];
    int fd;
    shard_info info;
    char *meta;                /* (meta_bytes + 1) NUL-terminated */
    uint64_t header_bytes;     /* fixed part + meta + checksum */
    shard_block_entry *blocks; /* (n_blocks) */
    shard_seq_entry *seqs;     /* (n_seqs) */
    uint64_t *seq_tok_off;     /* (n_seqs) token offset of each sequence inside its block */
    uint64_t *seq_doc_off;     /* (n_seqs) piece offset of each sequence inside its block */
    uint64_t *seq_block;       /* (n_seqs) */

    const uint8_t *map; /* the file mapped read-only (shard_reader_open_mapped), or NULL */
    uint64_t cur_block; /* cached block, UINT64_MAX if none */
    uint8_t *comp;      /* (comp_cap) block header + payload, read with pread */
    uint64_t comp_cap;
    uint8_t *raw; /* (raw_cap) decompressed block */
    uint64_t raw_cap;
    shard_doc *docs; /* (docs_cap) pieces of the cached block, decoded */
    uint64_t docs_cap;
    ZSTD_DCtx *dctx;
    char errmsg[SHARD_ERRMSG_BYTES];
};

#define FAIL(r, st, ...)                                                                           \
    do {                                                                                           \
        shard_set_err((r)->errmsg, __VA_ARGS__);                                                   \
        return (st);                                                                               \
    } while (0)

typedef unsigned long long ull;

/* ---- shared helpers ------------------------------------------------------------------------ */

const char *shard_strerror(int status) {
    switch (status) {
    case SHARD_DONE:
        return "done";
    case SHARD_OK:
        return "ok";
    case SHARD_ERR_IO:
        return "I/O error";
    case SHARD_ERR_NOMEM:
        return "out of memory";
    case SHARD_ERR_CORRUPT:
        return "corrupt shard";
    case SHARD_ERR_ARG:
        return "invalid argument";
    default:
        return "unknown status";
    }
}

void shard_set_err(char *buf, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, SHARD_ERRMSG_BYTES, fmt, ap);
    va_end(ap);
}

int shard_pread_full(int fd, void *buf, size_t n, uint64_t offset) {
    uint8_t *p = buf;
    while (n > 0) {
        size_t chunk = n < (1u << 30) ? n : (1u << 30);
        ssize_t got = pread(fd, p, chunk, (off_t)offset);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            if (got == 0)
                errno = 0;
            return -1;
        }
        p += got;
        n -= (size_t)got;
        offset += (uint64_t)got;
    }
    return 0;
}

int shard_write_full(int fd, const void *buf, size_t n) {
    const uint8_t *p = buf;
    while (n > 0) {
        size_t chunk = n < (1u << 30) ? n : (1u << 30);
        ssize_t put = write(fd, p, chunk);
        if (put < 0 && errno == EINTR)
            continue;
        if (put <= 0)
            return -1;
        p += put;
        n -= (size_t)put;
    }
    return 0;
}

uint32_t shard_token_bytes(uint32_t vocab_size) {
    return shard_token_bytes_for_vocab(vocab_size);
}

void shard_tokens_to_u32(const void *tokens, uint32_t token_bytes, uint64_t n, uint32_t *out) {
    if (token_bytes == 4) {
        memcpy(out, tokens, n * 4);
        return;
    }
    const uint16_t *t = tokens;
    for (uint64_t i = 0; i < n; i++)
        out[i] = t[i];
}

/* ---- open ---------------------------------------------------------------------------------- */

static int read_at(shard_reader *r, void *buf, uint64_t n, uint64_t off, const char *what) {
    if (shard_pread_full(r->fd, buf, n, off) == 0)
        return SHARD_OK;
    if (errno == 0)
        FAIL(r, SHARD_ERR_CORRUPT, "%s: %s at offset %llu: file ends early (size %llu)", r->path,
             what, (ull)off, (ull)r->info.file_bytes);
    FAIL(r, SHARD_ERR_IO, "%s: %s at offset %llu: read: %s", r->path, what, (ull)off,
         strerror(errno));
}

static int read_header(shard_reader *r) {
    uint8_t h[SHARD_HEADER_FIXED_BYTES];
    if (r->info.file_bytes < SHARD_HEADER_FIXED_BYTES + 8 + SHARD_TRAILER_BYTES)
        FAIL(r, SHARD_ERR_CORRUPT,
             "%s: header at offset 0: file of %llu bytes is too short to "
             "be a shard",
             r->path, (ull)r->info.file_bytes);
    int st = read_at(r, h, sizeof h, 0, "header");
    if (st != SHARD_OK)
        return st;
    if (memcmp(h, SHARD_HEADER_MAGIC, 8) != 0)
        FAIL(r, SHARD_ERR_CORRUPT, "%s: header at offset 0: bad magic (not a longctx shard)",
             r->path);
    r->info.version = shard_get_u32(h + 8);
    r->info.token_bytes = shard_get_u32(h + 12);
    r->info.vocab_size = shard_get_u32(h + 16);
    r->info.codec = shard_get_u32(h + 20);
    uint64_t meta_bytes = shard_get_u64(h + 24);
    if (meta_bytes > SHARD_MAX_META_BYTES ||
        SHARD_HEADER_FIXED_BYTES + meta_bytes + 8 + SHARD_TRAILER_BYTES > r->info.file_bytes)
        FAIL(r, SHARD_ERR_CORRUPT, "%s: header at offset 24: metadata size %llu impossible",
             r->path, (ull)meta_bytes);
    r->header_bytes = SHARD_HEADER_FIXED_BYTES + meta_bytes + 8;
    uint8_t *buf = malloc(r->header_bytes);
    if (!buf)
        FAIL(r, SHARD_ERR_NOMEM, "%s: out of memory", r->path);
    st = read_at(r, buf, r->header_bytes, 0, "header");
    if (st == SHARD_OK && SHARD_SUM_BAD(XXH3_64bits(buf, r->header_bytes - 8),
                                        shard_get_u64(buf + r->header_bytes - 8))) {
        shard_set_err(r->errmsg, "%s: header at offset 0 (%llu bytes): checksum mismatch", r->path,
                      (ull)r->header_bytes);
        st = SHARD_ERR_CORRUPT;
    }
    if (st == SHARD_OK) {
        r->meta = malloc(meta_bytes + 1);
        if (!r->meta) {
            shard_set_err(r->errmsg, "%s: out of memory", r->path);
            st = SHARD_ERR_NOMEM;
        } else {
            memcpy(r->meta, buf + SHARD_HEADER_FIXED_BYTES, meta_bytes);
            r->meta[meta_bytes] = '\0';
        }
    }
    free(buf);
    if (st != SHARD_OK)
        return st;
    /* The checksum holds, so these are what a writer wrote: a newer or foreign one. */
    if (r->info.version != SHARD_VERSION)
        FAIL(r, SHARD_ERR_CORRUPT, "%s: header: format version %u, this longctx reads %u", r->path,
             r->info.version, SHARD_VERSION);
    if (r->info.vocab_size == 0 ||
        r->info.token_bytes != shard_token_bytes_for_vocab(r->info.vocab_size) ||
        r->info.codec != SHARD_CODEC_ZSTD)
        FAIL(r, SHARD_ERR_CORRUPT,
             "%s: header: vocab_size %u, token_bytes %u, codec %u are "
             "inconsistent",
             r->path, r->info.vocab_size, r->info.token_bytes, r->info.codec);
    return SHARD_OK;
}

static int read_index(shard_reader *r) {
    uint8_t t[SHARD_TRAILER_BYTES];
    uint64_t toff = r->info.file_bytes - SHARD_TRAILER_BYTES;
    int st = read_at(r, t, sizeof t, toff, "trailer");
    if (st != SHARD_OK)
        return st;
    if (memcmp(t, SHARD_TRAILER_MAGIC, 8) != 0 ||
        SHARD_SUM_BAD(XXH3_64bits(t, 64), shard_get_u64(t + 64)))
        FAIL(r, SHARD_ERR_CORRUPT, "%s: trailer at offset %llu: %s (file truncated or damaged)",
             r->path, (ull)toff,
             memcmp(t, SHARD_TRAILER_MAGIC, 8) != 0 ? "no trailer magic" : "checksum mismatch");
    uint64_t index_offset = shard_get_u64(t + 8);
    uint64_t index_bytes = shard_get_u64(t + 16);
    uint64_t n_blocks = shard_get_u64(t + 24);
    uint64_t n_seqs = shard_get_u64(t + 32);
    r->info.n_blocks = n_blocks;
    r->info.n_seqs = n_seqs;
    r->info.n_tokens = shard_get_u64(t + 40);
    r->info.n_docs = shard_get_u64(t + 48);
    if (index_offset < r->header_bytes || index_offset > toff ||
        index_bytes != toff - index_offset || n_blocks > index_bytes / SHARD_BLOCK_ENTRY_BYTES ||
        n_seqs > index_bytes / SHARD_SEQ_ENTRY_BYTES ||
        index_bytes != n_blocks * SHARD_BLOCK_ENTRY_BYTES + n_seqs * SHARD_SEQ_ENTRY_BYTES + 8)
        FAIL(r, SHARD_ERR_CORRUPT,
             "%s: trailer at offset %llu: index of %llu bytes at %llu does "
             "not fit %llu blocks and %llu sequences",
             r->path, (ull)toff, (ull)index_bytes, (ull)index_offset, (ull)n_blocks, (ull)n_seqs);

    uint8_t *buf = malloc(index_bytes);
    r->blocks = malloc((n_blocks ? n_blocks : 1) * sizeof *r->blocks);
    r->seqs = malloc((n_seqs ? n_seqs : 1) * sizeof *r->seqs);
    r->seq_tok_off = malloc((n_seqs ? n_seqs : 1) * sizeof(uint64_t));
    r->seq_doc_off = malloc((n_seqs ? n_seqs : 1) * sizeof(uint64_t));
    r->seq_block = malloc((n_seqs ? n_seqs : 1) * sizeof(uint64_t));
    if (!buf || !r->blocks || !r->seqs || !r->seq_tok_off || !r->seq_doc_off || !r->seq_block) {
        free(buf);
        FAIL(r, SHARD_ERR_NOMEM, "%s: out of memory for an index of %llu bytes", r->path,
             (ull)index_bytes);
    }
    st = read_at(r, buf, index_bytes, index_offset, "index");
    if (st == SHARD_OK && SHARD_SUM_BAD(XXH3_64bits(buf, index_bytes), shard_get_u64(t + 56))) {
        shard_set_err(r->errmsg, "%s: index at offset %llu (%llu bytes): checksum mismatch",
                      r->path, (ull)index_offset, (ull)index_bytes);
        st = SHARD_ERR_CORRUPT;
    }
    if (st != SHARD_OK) {
        free(buf);
        return st;
    }
    const uint8_t *p = buf;
    for (uint64_t b = 0; b < n_blocks; b++, p += SHARD_BLOCK_ENTRY_BYTES) {
        shard_block_entry *e = &r->blocks[b];
        e->offset = shard_get_u64(p);
        e->comp_bytes = shard_get_u64(p + 8);
        e->raw_bytes = shard_get_u64(p + 16);
        e->first_seq = shard_get_u64(p + 24);
        e->n_seqs = shard_get_u64(p + 32);
        e->checksum = shard_get_u64(p + 40);
    }
    for (uint64_t i = 0; i < n_seqs; i++, p += SHARD_SEQ_ENTRY_BYTES) {
        r->seqs[i].n_tokens = shard_get_u64(p);
        r->seqs[i].n_docs = shard_get_u32(p + 8);
        r->seqs[i].n_doc_starts = shard_get_u32(p + 12);
    }
    r->info.n_trailing_doc_starts = shard_get_u64(p);
    free(buf);

    /* The checksum holds; still, check that the index describes this file exactly, so that no
     * later arithmetic can run out of bounds whatever a writer put there. */
    uint64_t next_offset = r->header_bytes, next_seq = 0, n_tokens = 0, n_docs = 0;
    uint64_t n_doc_starts = r->info.n_trailing_doc_starts;
    for (uint64_t b = 0; b < n_blocks; b++) {
        shard_block_entry *e = &r->blocks[b];
        if (e->offset != next_offset || e->n_seqs == 0 || e->first_seq != next_seq ||
            e->n_seqs > n_seqs - next_seq || e->comp_bytes > index_offset - e->offset ||
            SHARD_BLOCK_HDR_BYTES > index_offset - e->offset - e->comp_bytes)
            FAIL(r, SHARD_ERR_CORRUPT,
                 "%s: index entry of block %llu (at offset %llu) is "
                 "inconsistent",
                 r->path, (ull)b, (ull)(index_offset + b * SHARD_BLOCK_ENTRY_BYTES));
        uint64_t bt = 0, bd = 0;
        for (uint64_t i = e->first_seq; i < e->first_seq + e->n_seqs; i++) {
            if (r->seqs[i].n_tokens > (UINT64_MAX >> 3) - bt)
                FAIL(r, SHARD_ERR_CORRUPT, "%s: index: sequence %llu size overflows", r->path,
                     (ull)i);
            r->seq_tok_off[i] = bt;
            r->seq_doc_off[i] = bd;
            r->seq_block[i] = b;
            bt += r->seqs[i].n_tokens;
            bd += r->seqs[i].n_docs;
            n_doc_starts += r->seqs[i].n_doc_starts;
        }
        if (bd > (UINT64_MAX >> 6) || shard_raw_bytes(bt, bd, r->info.token_bytes) != e->raw_bytes)
            FAIL(r, SHARD_ERR_CORRUPT,
                 "%s: index entry of block %llu: raw size %llu does not "
                 "match its sequences",
                 r->path, (ull)b, (ull)e->raw_bytes);
        n_tokens += bt;
        n_docs += bd;
        next_seq += e->n_seqs;
        next_offset = e->offset + SHARD_BLOCK_HDR_BYTES + e->comp_bytes;
        r->info.raw_bytes += e->raw_bytes;
        r->info.comp_bytes += e->comp_bytes;
    }
    if (next_offset != index_offset || next_seq != n_seqs || n_tokens != r->info.n_tokens ||
        n_docs != r->info.n_docs)
        FAIL(r, SHARD_ERR_CORRUPT,
             "%s: index at offset %llu: blocks, sequences and totals "
             "disagree",
             r->path, (ull)index_offset);
    r->info.n_doc_starts = n_doc_starts;
    return SHARD_OK;
}

int shard_reader_open(const char *path, shard_reader **out) {
    *out = NULL;
    shard_reader *r = calloc(1, sizeof *r);
    if (!r)
        return SHARD_ERR_NOMEM;
    *out = r;
    r->fd = -1;
    r->cur_block = UINT64_MAX;
    snprintf(r->path, sizeof r->path, "%s", path ? path : "");
    r->fd = open(r->path, O_RDONLY | O_CLOEXEC);
    if (r->fd < 0)
        FAIL(r, SHARD_ERR_IO, "%s: cannot open: %s", r->path, strerror(errno));
    struct stat sb;
    if (fstat(r->fd, &sb) != 0)
        FAIL(r, SHARD_ERR_IO, "%s: stat: %s", r->path, strerror(errno));
    if (!S_ISREG(sb.st_mode))
        FAIL(r, SHARD_ERR_IO, "%s: not a regular file", r->path);
    r->info.file_bytes = (uint64_t)sb.st_size;
    int st = read_header(r);
    if (st == SHARD_OK)
        st = read_index(r);
    if (st == SHARD_OK && !(r->dctx = ZSTD_createDCtx()))
        FAIL(r, SHARD_ERR_NOMEM, "%s: out of memory", r->path);
    return st;
}

int shard_reader_open_mapped(const char *path, shard_reader **out) {
    int st = shard_reader_open(path, out);
    shard_reader *r = *out;
    if (st != SHARD_OK || r->info.file_bytes == 0 || r->info.file_bytes > SIZE_MAX)
        return st;
    void *m = mmap(NULL, (size_t)r->info.file_bytes, PROT_READ, MAP_PRIVATE, r->fd, 0);
    if (m == MAP_FAILED)
        return SHARD_OK; /* pread, as shard_reader_open: the same bytes */
    (void)posix_madvise(m, (size_t)r->info.file_bytes, POSIX_MADV_SEQUENTIAL);
    r->map = m;
    return SHARD_OK;
}

void shard_reader_free(shard_reader *r) {
    if (!r)
        return;
    if (r->map)
        munmap((void *)(uintptr_t)r->map, (size_t)r->info.file_bytes);
    if (r->fd >= 0)
        close(r->fd);
    ZSTD_freeDCtx(r->dctx);
    free(r->meta);
    free(r->blocks);
    free(r->seqs);
    free(r->seq_tok_off);
    free(r->seq_doc_off);
    free(r->seq_block);
    free(r->comp);
    free(r->raw);
    free(r->docs);
    free(r);
}

const char *shard_reader_errmsg(const shard_reader *r) {
    return r ? r->errmsg : "out of memory";
}

const shard_info *shard_reader_info(const shard_reader *r) {
    return &r->info;
}

const char *shard_reader_meta(const shard_reader *r) {
    return r->meta ? r->meta : "{}";
}

const shard_block_entry *shard_reader_block_entry(const shard_reader *r, uint64_t b) {
    return b < r->info.n_blocks ? &r->blocks[b] : NULL;
}

int shard_reader_seq_size(const shard_reader *r, uint64_t i, uint64_t *n_tokens, uint64_t *n_docs,
                          uint32_t *n_doc_starts) {
    if (i >= r->info.n_seqs)
        return SHARD_ERR_ARG;
    if (n_tokens)
        *n_tokens = r->seqs[i].n_tokens;
    if (n_docs)
        *n_docs = r->seqs[i].n_docs;
    if (n_doc_starts)
        *n_doc_starts = r->seqs[i].n_doc_starts;
    return SHARD_OK;
}

/* ---- blocks -------------------------------------------------------------------------------- */

static int grow_bytes(uint8_t **buf, uint64_t *cap, uint64_t need) {
    if (*buf && need <= *cap)
        return 0;
    if (need > SIZE_MAX)
        return -1;
    void *p = realloc(*buf, need ? need : 1);
    if (!p)
        return -1;
    *buf = p;
    *cap = need;
    return 0;
}

/* Reads, checks and decompresses block b into the cache; checks its contents. */
int shard_reader_load_block(shard_reader *r, uint64_t b) {
    if (b == r->cur_block)
        return SHARD_OK;
    r->cur_block = UINT64_MAX;
    const shard_block_entry *e = &r->blocks[b];
    uint64_t n = SHARD_BLOCK_HDR_BYTES + e->comp_bytes;
    if ((!r->map && grow_bytes(&r->comp, &r->comp_cap, n) != 0) ||
        grow_bytes(&r->raw, &r->raw_cap, e->raw_bytes) != 0)
        FAIL(r, SHARD_ERR_NOMEM, "%s: block %llu: out of memory for %llu bytes", r->path, (ull)b,
             (ull)(n + e->raw_bytes));
    const uint8_t *h = r->map ? r->map + e->offset : r->comp;
    if (r->map && (e->offset > r->info.file_bytes || n > r->info.file_bytes - e->offset))
        FAIL(r, SHARD_ERR_CORRUPT, "%s: block at offset %llu: file ends early (size %llu)", r->path,
             (ull)e->offset, (ull)r->info.file_bytes);
    int st = r->map ? SHARD_OK : read_at(r, r->comp, n, e->offset, "block");
    if (st != SHARD_OK)
        return st;
    if (shard_get_u32(h) != SHARD_BLOCK_MAGIC || shard_get_u32(h + 4) != e->n_seqs ||
        shard_get_u64(h + 8) != e->comp_bytes || shard_get_u64(h + 16) != e->raw_bytes ||
        shard_get_u64(h + 24) != e->checksum)
        FAIL(r, SHARD_ERR_CORRUPT,
             "%s: block %llu at offset %llu: block header disagrees with "
             "the index",
             r->path, (ull)b, (ull)e->offset);
    if (SHARD_SUM_BAD(XXH3_64bits(h + SHARD_BLOCK_HDR_BYTES, e->comp_bytes), e->checksum))
        FAIL(r, SHARD_ERR_CORRUPT,
             "%s: block %llu at offset %llu: checksum mismatch over %llu "
             "bytes",
             r->path, (ull)b, (ull)(e->offset + SHARD_BLOCK_HDR_BYTES), (ull)e->comp_bytes);
    size_t got = ZSTD_decompressDCtx(r->dctx, r->raw, e->raw_bytes, h + SHARD_BLOCK_HDR_BYTES,
                                     e->comp_bytes);
    if (ZSTD_isError(got) || got != e->raw_bytes)
        FAIL(r, SHARD_ERR_CORRUPT, "%s: block %llu at offset %llu: decompression %s", r->path,
             (ull)b, (ull)e->offset, ZSTD_isError(got) ? ZSTD_getErrorName(got) : "size mismatch");

    /* Contents: ids below vocab_size, pieces in order inside their sequence. */
    uint64_t n_tok = r->seq_tok_off[e->first_seq + e->n_seqs - 1] +
                     r->seqs[e->first_seq + e->n_seqs - 1].n_tokens;
    uint64_t n_docs =
        r->seq_doc_off[e->first_seq + e->n_seqs - 1] + r->seqs[e->first_seq + e->n_seqs - 1].n_docs;
    const uint32_t vocab = r->info.vocab_size;
    uint32_t max = r->info.token_bytes == 2
                       ? shard_max_u16((const uint16_t *)(const void *)r->raw, n_tok)
                       : shard_max_u32((const uint32_t *)(const void *)r->raw, n_tok);
    for (uint64_t i = 0; max >= vocab && i < n_tok; i++) {
        uint32_t id = r->info.token_bytes == 2 ? ((const uint16_t *)(const void *)r->raw)[i]
                                               : ((const uint32_t *)(const void *)r->raw)[i];
        if (id >= vocab)
            FAIL(r, SHARD_ERR_CORRUPT, "%s: block %llu: token %llu is %u >= vocab_size %u", r->path,
                 (ull)b, (ull)i, id, vocab);
    }
    if (!r->docs || n_docs > r->docs_cap) { /* never NULL: callers get docs + offset */
        free(r->docs);
        r->docs_cap = 0;
        r->docs = malloc((n_docs ? n_docs : 1) * sizeof *r->docs);
        if (!r->docs)
            FAIL(r, SHARD_ERR_NOMEM, "%s: out of memory", r->path);
        r->docs_cap = n_docs;
    }
    const uint8_t *d = r->raw + shard_pad8(n_tok * r->info.token_bytes);
    for (uint64_t i = 0; i < n_docs; i++, d += SHARD_DOC_BYTES) {
        r->docs[i].start = shard_get_u64(d);
        r->docs[i].doc_id = shard_get_u64(d + 8);
        r->docs[i].doc_offset = shard_get_u64(d + 16);
    }
    for (uint64_t s = e->first_seq; s < e->first_seq + e->n_seqs; s++) {
        const shard_doc *sd = r->docs + r->seq_doc_off[s];
        for (uint64_t k = 0; k < r->seqs[s].n_docs; k++)
            if (sd[k].start > r->seqs[s].n_tokens || (k > 0 && sd[k].start < sd[k - 1].start))
                FAIL(r, SHARD_ERR_CORRUPT,
                     "%s: block %llu: sequence %llu: document piece %llu "
                     "out of order or past the end",
                     r->path, (ull)b, (ull)s, (ull)k);
    }
    r->cur_block = b;
    return SHARD_OK;
}

int shard_reader_read(shard_reader *r, uint64_t i, shard_seq *out) {
    if (i >= r->info.n_seqs)
        FAIL(r, SHARD_ERR_ARG, "%s: sequence %llu out of range (%llu sequences)", r->path, (ull)i,
             (ull)r->info.n_seqs);
    int st = shard_reader_load_block(r, r->seq_block[i]);
    if (st != SHARD_OK)
        return st;
    out->index = i;
    out->n_tokens = r->seqs[i].n_tokens;
    out->n_docs = r->seqs[i].n_docs;
    out->n_doc_starts = r->seqs[i].n_doc_starts;
    out->tokens = r->raw + r->seq_tok_off[i] * r->info.token_bytes;
    out->docs = r->docs + r->seq_doc_off[i];
    return SHARD_OK;
}
