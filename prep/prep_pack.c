/* prep_pack.c - stages 5-6: packing plans (concat, bestfit) and the output shards.
 *
 * Rank 0 makes the plan from the selected documents: every copy gets a seeded key; concat
 * runs the copies in key order and cuts every L tokens; bestfit places copies longest first
 * into the fullest sequence that still has room (cutting a copy longer than L into L-token
 * pieces) and then orders the sequences by a seeded key. The plan is broadcast; shard files of
 * shard_tokens / L sequences are written by rank (index mod n_ranks). A shard that already
 * exists and verifies is kept (resume). */
#include "prep_internal.h"
#include "shard.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef unsigned long long ull;

/* A piece of a document copy inside a sequence. */
typedef struct {
    uint64_t doc_offset; /* offset in the copy (packed tokens) */
    uint64_t len;
    uint32_t sel; /* index into the selected documents */
    uint32_t pad;
} piece_t;

typedef struct {
    piece_t *pieces; /* (n_pieces) in sequence order */
    size_t n_pieces, cap;
    uint64_t *seq_begin; /* (n_seqs + 1) first piece of each sequence */
    size_t n_seqs, seq_cap;
} plan_t;

typedef struct {
    uint64_t key;
    uint32_t sel, copy;
} copy_t;

static int cmp_copy(const void *a, const void *b) {
    const copy_t *x = a, *y = b;
    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    if (x->sel != y->sel)
        return x->sel < y->sel ? -1 : 1;
    return x->copy < y->copy ? -1 : x->copy > y->copy;
}

static int plan_piece(plan_t *p, uint32_t sel, uint64_t off, uint64_t len) {
    if (p->n_pieces == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 1024;
        piece_t *q = realloc(p->pieces, cap * sizeof *q);
        if (!q)
            return -1;
        p->pieces = q;
        p->cap = cap;
    }
    piece_t *x = &p->pieces[p->n_pieces++];
    x->doc_offset = off;
    x->len = len;
    x->sel = sel;
    x->pad = 0;
    return 0;
}

static int plan_seq(plan_t *p) {
    if (p->n_seqs + 1 >= p->seq_cap) {
        size_t cap = p->seq_cap ? 2 * p->seq_cap : 1024;
        uint64_t *q = realloc(p->seq_begin, cap * sizeof *q);
        if (!q)
            return -1;
        p->seq_begin = q;
        p->seq_cap = cap;
    }
    p->seq_begin[p->n_seqs++] = p->n_pieces;
    p->seq_begin[p->n_seqs] = p->n_pieces;
    return 0;
}

static copy_t *make_copies(const prep_sel *sel, size_t n_sel, uint64_t seed, size_t *n_out) {
    size_t n = 0;
    for (size_t i = 0; i < n_sel; i++)
        n += sel[i].copies;
    copy_t *c = malloc((n ? n : 1) * sizeof *c);
    if (!c)
        return NULL;
    const uint64_t salt = prep_mix64(seed + 0x7061636bull);
    size_t k = 0;
    for (size_t i = 0; i < n_sel; i++)
        for (uint32_t j = 0; j < sel[i].copies; j++) {
            c[k].key = prep_mix64(prep_mix64(sel[i].doc_id ^ salt) + j);
            c[k].sel = (uint32_t)i;
            c[k].copy = j;
            k++;
        }
    qsort(c, n, sizeof *c, cmp_copy);
    *n_out = n;
    return c;
}

/* Concat: the copies in key order, cut by the shard library's concat rule (the one `shard
 * pack` uses). An empty copy has no piece here: it holds no tokens. */
static int plan_concat(const prep_sel *sel, const copy_t *c, size_t n_copies, uint64_t L,
                       plan_t *p) {
    shard_concat cut = shard_concat_init(L);
    for (size_t i = 0; i < n_copies; i++) {
        uint64_t len = sel[c[i].sel].n_tokens, off = 0;
        while (off < len) {
            int opened;
            uint64_t start, take = shard_concat_next(&cut, len - off, &opened, &start);
            if (opened && plan_seq(p))
                return -1;
            if (plan_piece(p, c[i].sel, off, take))
                return -1;
            off += take;
        }
    }
    return 0;
}

/* ---- bestfit: the fullest bin with room, found in a segment tree over rooms 0..L ----------- */

typedef struct {
    uint64_t len, key;
    uint32_t sel;
} fit_t;

static int cmp_fit(const void *a, const void *b) {
    const fit_t *x = a, *y = b;
    if (x->len != y->len)
        return x->len > y->len ? -1 : 1;
    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    return x->sel < y->sel ? -1 : x->sel > y->sel;
}

typedef struct {
    uint64_t key;
    uint32_t bin;
} binkey_t;

static int cmp_binkey(const void *a, const void *b) {
    const binkey_t *x = a, *y = b;
    return x->key < y->key ? -1 : x->key > y->key ? 1 : (x->bin > y->bin) - (x->bin < y->bin);
}

/* Bins (future sequences): their room and their pieces as linked lists. */
typedef struct {
    uint32_t sel;
    uint64_t off, len;
    int64_t next;
} bin_piece;

typedef struct {
    uint64_t *room;       /* (n) */
    int64_t *head, *tail; /* (n) first and last piece */
    size_t n, cap;
    bin_piece *pcs; /* (n_pcs) */
    size_t n_pcs, cap_pcs;
    /* bins with room r > 0, by room, and their count summed up a segment tree */
    int64_t **by_room; /* (L + 1) */
    size_t *n_room, *cap_room;
    uint32_t *tree; /* (2 * tree_n) */
    size_t tree_n;
} bins_t;

static int64_t bin_new(bins_t *B, uint64_t room) {
    if (B->n == B->cap) {
        size_t cap = B->cap ? 2 * B->cap : 256;
        uint64_t *r = realloc(B->room, cap * sizeof *r);
        if (r)
            B->room = r;
        int64_t *h = r ? realloc(B->head, cap * sizeof *h) : NULL;
        if (h)
            B->head = h;
        int64_t *t = h ? realloc(B->tail, cap * sizeof *t) : NULL;
        if (!t)
            return -1;
        B->tail = t;
        B->cap = cap;
    }
    B->room[B->n] = room;
    B->head[B->n] = B->tail[B->n] = -1;
    return (int64_t)B->n++;
}

static int bin_put(bins_t *B, int64_t b, uint32_t sel, uint64_t off, uint64_t len) {
    if (B->n_pcs == B->cap_pcs) {
        size_t cap = B->cap_pcs ? 2 * B->cap_pcs : 256;
        bin_piece *p = realloc(B->pcs, cap * sizeof *p);
        if (!p)
            return -1;
        B->pcs = p;
        B->cap_pcs = cap;
    }
    B->pcs[B->n_pcs] = (bin_piece){sel, off, len, -1};
    if (B->tail[b] >= 0)
        B->pcs[B->tail[b]].next = (int64_t)B->n_pcs;
    else
        B->head[b] = (int64_t)B->n_pcs;
    B->tail[b] = (int64_t)B->n_pcs++;
    B->room[b] -= len;
    return 0;
}

/* Files bin b under its room (if any room is left). */
static int room_add(bins_t *B, int64_t b) {
    size_t r = B->room[b];
    if (r == 0)
        return 0;
    if (B->n_room[r] == B->cap_room[r]) {
        size_t cap = B->cap_room[r] ? 2 * B->cap_room[r] : 8;
        int64_t *p = realloc(B->by_room[r], cap * sizeof *p);
        if (!p)
            return -1;
        B->by_room[r] = p;
        B->cap_room[r] = cap;
    }
    B->by_room[r][B->n_room[r]++] = b;
    for (size_t x = r + B->tree_n; x >= 1; x >>= 1)
        B->tree[x]++;
    return 0;
}

/* Takes the bin with the smallest room >= need; -1 if none. */
static int64_t room_take(bins_t *B, uint64_t need) {
    size_t idx = need + B->tree_n, node = 0;
    if (B->tree[idx] > 0) {
        node = idx;
    } else { /* climb until a right sibling holds a bin, then descend to its leftmost */
        for (; idx > 1; idx >>= 1)
            if ((idx & 1) == 0 && B->tree[idx + 1] > 0) {
                node = idx + 1;
                break;
            }
        if (!node)
            return -1;
        while (node < B->tree_n)
            node = B->tree[2 * node] > 0 ? 2 * node : 2 * node + 1;
    }
    size_t r = node - B->tree_n;
    int64_t b = B->by_room[r][--B->n_room[r]];
    for (size_t x = node; x >= 1; x >>= 1)
        B->tree[x]--;
    return b;
}

static int plan_bestfit(const prep_sel *sel, const copy_t *c, size_t n_copies, uint64_t L,
                        uint64_t seed, plan_t *p) {
    bins_t B;
    memset(&B, 0, sizeof B);
    B.tree_n = 1;
    while (B.tree_n < L + 1)
        B.tree_n *= 2;
    B.tree = calloc(2 * B.tree_n, sizeof *B.tree);
    B.by_room = calloc(L + 1, sizeof *B.by_room);
    B.n_room = calloc(L + 1, sizeof *B.n_room);
    B.cap_room = calloc(L + 1, sizeof *B.cap_room);
    fit_t *f = malloc((n_copies ? n_copies : 1) * sizeof *f);
    binkey_t *order = NULL;
    size_t n_f = 0;
    int st = f && B.tree && B.by_room && B.n_room && B.cap_room ? 0 : -1;

    /* copies longer than L give full L-token sequences of their own; what is left (or the
     * whole copy) is placed below, longest first */
    for (size_t i = 0; st == 0 && i < n_copies; i++) {
        uint64_t len = sel[c[i].sel].n_tokens, off = 0;
        for (; st == 0 && len - off > L; off += L) {
            int64_t b = bin_new(&B, L);
            st = b < 0 || bin_put(&B, b, c[i].sel, off, L) ? -1 : 0;
        }
        if (st == 0 && (len - off > 0 || len == 0)) { /* an empty copy still gets a place */
            f[n_f].len = len - off;
            f[n_f].key = c[i].key;
            f[n_f].sel = c[i].sel;
            n_f++;
        }
    }
    qsort(f, n_f, sizeof *f, cmp_fit);
    for (size_t i = 0; st == 0 && i < n_f; i++) {
        int64_t b = room_take(&B, f[i].len);
        if (b < 0)
            b = bin_new(&B, L);
        uint64_t full = sel[f[i].sel].n_tokens; /* the remainder sits at the copy's end */
        if (b < 0 || bin_put(&B, b, f[i].sel, full - f[i].len, f[i].len) || room_add(&B, b))
            st = -1;
    }

    /* sequences in seeded order */
    order = st == 0 ? malloc((B.n ? B.n : 1) * sizeof *order) : NULL;
    const uint64_t salt = prep_mix64(seed + 0x62657374ull);
    for (size_t b = 0; order && b < B.n; b++) {
        order[b].key = prep_mix64((uint64_t)b ^ salt);
        order[b].bin = (uint32_t)b;
    }
    if (order)
        qsort(order, B.n, sizeof *order, cmp_binkey);
    else
        st = -1;
    for (size_t k = 0; st == 0 && k < B.n; k++) {
        if (plan_seq(p)) {
            st = -1;
            break;
        }
        for (int64_t x = B.head[order[k].bin]; st == 0 && x >= 0; x = B.pcs[x].next)
            if (plan_piece(p, B.pcs[x].sel, B.pcs[x].off, B.pcs[x].len))
                st = -1;
    }
    for (size_t r = 0; B.by_room && r <= L; r++)
        free(B.by_room[r]);
    free(B.by_room);
    free(B.n_room);
    free(B.cap_room);
    free(B.tree);
    free(B.room);
    free(B.head);
    free(B.tail);
    free(B.pcs);
    free(order);
    free(f);
    return st;
}

/* ---- shards -------------------------------------------------------------------------------- */

/* Open unit shards: a cache, so that a rank does not hold one file per unit. Documents come
 * in random unit order: with 16 readers, reopening units cost 3 of the 5 s of packing on 1 GB
 * (56 units, tests/bench/bench_prep.sh). */
#define READER_CACHE 256
typedef struct {
    shard_reader *r[READER_CACHE];
    uint32_t unit[READER_CACHE];
    uint64_t used[READER_CACHE];
    uint64_t tick;
} reader_cache;

static shard_reader *get_reader(reader_cache *rc, const char *dir, uint32_t unit, char *err,
                                size_t err_bytes) {
    int free_slot = -1, oldest = 0;
    for (int k = 0; k < READER_CACHE; k++) {
        if (rc->r[k] && rc->unit[k] == unit) {
            rc->used[k] = ++rc->tick;
            return rc->r[k];
        }
        if (!rc->r[k] && free_slot < 0)
            free_slot = k;
        if (rc->used[k] < rc->used[oldest])
            oldest = k;
    }
    int k = free_slot >= 0 ? free_slot : oldest;
    shard_reader_free(rc->r[k]);
    rc->r[k] = NULL;
    char path[4200];
    prep_unit_path(path, sizeof path, dir, unit, "shard");
    if (shard_reader_open(path, &rc->r[k]) != SHARD_OK) {
        snprintf(err, err_bytes, "%s", shard_reader_errmsg(rc->r[k]));
        shard_reader_free(rc->r[k]);
        rc->r[k] = NULL;
        return NULL;
    }
    rc->unit[k] = unit;
    rc->used[k] = ++rc->tick;
    return rc->r[k];
}

static int file_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* [bos] text [eos] of selected document d into *buf. */
static int load_copy(const prep_opts *o, const tokenizer *tok, const prep_sel *d, reader_cache *rc,
                     uint32_t **buf, size_t *buf_cap, char *err, size_t err_bytes) {
    const prep_recipe *R = &o->recipe;
    shard_reader *r = get_reader(rc, o->output, d->unit, err, err_bytes);
    shard_seq q;
    if (!r || shard_reader_read(r, d->seq, &q) != SHARD_OK) {
        if (r)
            snprintf(err, err_bytes, "%s", shard_reader_errmsg(r));
        return PREP_ERR_IO;
    }
    if (d->n_tokens > *buf_cap) {
        uint32_t *nb = realloc(*buf, d->n_tokens * sizeof *nb);
        if (!nb)
            return PREP_ERR_NOMEM;
        *buf = nb;
        *buf_cap = d->n_tokens;
    }
    uint64_t k0 = 0;
    if (R->bos)
        (*buf)[k0++] = (uint32_t)tokenizer_bos_id(tok);
    shard_tokens_to_u32(q.tokens, shard_reader_info(r)->token_bytes, q.n_tokens, *buf + k0);
    k0 += q.n_tokens;
    if (R->eos)
        (*buf)[k0++] = (uint32_t)tokenizer_eos_id(tok);
    if (k0 != d->n_tokens) {
        snprintf(err, err_bytes, "unit %u sequence %u: %llu tokens, the meta says %llu", d->unit,
                 d->seq, (ull)k0, (ull)d->n_tokens);
        return PREP_ERR_INPUT;
    }
    return PREP_OK;
}

static int write_shard(const prep_opts *o, const tokenizer *tok, const prep_sel *sel,
                       const plan_t *p, uint64_t L, size_t shard, size_t n_shards, size_t s0,
                       size_t s1, reader_cache *rc, uint32_t **buf, size_t *buf_cap,
                       uint32_t *buf_sel, char *err, size_t err_bytes) {
    char path[4200];
    snprintf(path, sizeof path, "%s/L%llu/part-%05zu.shard", o->output, (ull)L, shard);
    if (file_exists(path) && shard_verify(path, NULL, NULL, 0) == SHARD_OK)
        return PREP_OK; /* written by an earlier run */
    const prep_recipe *R = &o->recipe;
    char meta[1024];
    snprintf(meta, sizeof meta,
             "{\"recipe\":\"%s\",\"seed\":%llu,\"seq_len\":%llu,\"packing\":\"%s\",\"shard\":%zu,"
             "\"n_shards\":%zu,\"tokenizer_xxh3\":\"%016llx\",\"bos\":%s,\"eos\":%s}",
             R->name, (ull)R->seed, (ull)L, R->packing == PREP_PACK_CONCAT ? "concat" : "bestfit",
             shard, n_shards, (ull)tokenizer_checksum(tok), R->bos ? "true" : "false",
             R->eos ? "true" : "false");
    shard_writer_opts wo = shard_writer_opts_default();
    wo.vocab_size = tokenizer_vocab_size(tok);
    wo.meta_json = meta;
    shard_writer *w;
    if (shard_writer_create(path, &wo, &w) != SHARD_OK) {
        snprintf(err, err_bytes, "%s", shard_writer_errmsg(w));
        shard_writer_free(w);
        return PREP_ERR_IO;
    }
    int st = PREP_OK;
    for (size_t s = s0; st == PREP_OK && s < s1; s++) {
        uint64_t fill = 0;
        for (uint64_t k = p->seq_begin[s]; st == PREP_OK && k < p->seq_begin[s + 1]; k++) {
            const piece_t *x = &p->pieces[k];
            const prep_sel *d = &sel[x->sel];
            shard_doc piece = {fill, d->doc_id, x->doc_offset};
            if (shard_writer_seq_doc(w, &piece) != SHARD_OK) {
                st = PREP_ERR_IO;
                break;
            }
            /* the copy's packed tokens, built once for all its consecutive pieces (a long
             * document cut over many sequences is read and decoded once, not per piece) */
            if (*buf_sel != x->sel &&
                (st = load_copy(o, tok, d, rc, buf, buf_cap, err, err_bytes)) != PREP_OK)
                break;
            *buf_sel = x->sel;
            if (shard_writer_seq_tokens(w, *buf + x->doc_offset, x->len) != SHARD_OK)
                st = PREP_ERR_IO;
            fill += x->len;
        }
        if (st == PREP_OK && shard_writer_seq_end(w) != SHARD_OK)
            st = PREP_ERR_IO;
    }
    if (st == PREP_OK && shard_writer_close(w) != SHARD_OK)
        st = PREP_ERR_IO;
    if (st == PREP_ERR_IO && shard_writer_errmsg(w)[0])
        snprintf(err, err_bytes, "%s", shard_writer_errmsg(w));
    shard_writer_free(w);
    return st;
}

int prep_pack(MPI_Comm comm, const prep_opts *o, const tokenizer *tok, prep_sel *sel_root,
              size_t n_sel_root, uint64_t *n_seqs_out, uint64_t *n_shards_out, char *err,
              size_t err_bytes) {
    int rank, n_ranks;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &n_ranks);
    const prep_recipe *R = &o->recipe;
    char msg[PREP_ERRMSG_BYTES] = "";
    int st = PREP_OK;
    /* everyone needs the selected documents (where each copy's tokens are) */
    uint64_t n_sel = n_sel_root;
    MPI_Bcast(&n_sel, 1, MPI_UINT64_T, 0, comm);
    prep_sel *sel = rank == 0 ? sel_root : malloc((n_sel ? n_sel : 1) * sizeof *sel);
    if (!sel)
        st = PREP_ERR_NOMEM;
    if ((st = cluster_agree(comm, st)) != PREP_OK) {
        snprintf(err, err_bytes, "out of memory for %llu selected documents", (ull)n_sel);
        return st;
    }
    cluster_bcast_big(sel, n_sel * sizeof *sel, 0, comm);
    reader_cache rc;
    memset(&rc, 0, sizeof rc);
    uint32_t *buf = NULL, buf_sel = UINT32_MAX; /* buf holds the copy of sel[buf_sel] */
    size_t buf_cap = 0;
    for (int li = 0; li < R->n_seq_lens && st == PREP_OK; li++) {
        uint64_t L = R->seq_lens[li];
        plan_t p;
        memset(&p, 0, sizeof p);
        if (rank == 0) {
            size_t n_copies;
            copy_t *c = make_copies(sel, n_sel, R->seed, &n_copies);
            if (!c ||
                (R->packing == PREP_PACK_CONCAT ? plan_concat(sel, c, n_copies, L, &p)
                                                : plan_bestfit(sel, c, n_copies, L, R->seed, &p))) {
                snprintf(msg, sizeof msg, "out of memory planning %llu-token sequences", (ull)L);
                st = PREP_ERR_NOMEM;
            }
            free(c);
            if (p.seq_begin)
                p.seq_begin[p.n_seqs] = p.n_pieces; /* the end of the last sequence */
        }
        if ((st = cluster_agree_msg(comm, st, msg, err, err_bytes, NULL)) != PREP_OK)
            break;
        uint64_t sizes[2] = {p.n_pieces, p.n_seqs};
        MPI_Bcast(sizes, 2, MPI_UINT64_T, 0, comm);
        if (rank != 0) {
            p.n_pieces = sizes[0];
            p.n_seqs = sizes[1];
            p.pieces = malloc((p.n_pieces ? p.n_pieces : 1) * sizeof *p.pieces);
            p.seq_begin = malloc((p.n_seqs + 1) * sizeof *p.seq_begin);
            if (!p.pieces || !p.seq_begin)
                st = PREP_ERR_NOMEM;
        } else if (!p.seq_begin) {
            p.seq_begin = calloc(1, sizeof *p.seq_begin);
        }
        if ((st = cluster_agree(comm, st)) != PREP_OK) {
            snprintf(err, err_bytes, "out of memory for the packing plan");
            free(p.pieces);
            free(p.seq_begin);
            break;
        }
        cluster_bcast_big(p.pieces, p.n_pieces * sizeof *p.pieces, 0, comm);
        cluster_bcast_big(p.seq_begin, (p.n_seqs + 1) * sizeof *p.seq_begin, 0, comm);
        char dir[4200];
        snprintf(dir, sizeof dir, "%s/L%llu", o->output, (ull)L);
        if (rank == 0 && mkdir(dir, 0755) != 0 && errno != EEXIST) {
            snprintf(msg, sizeof msg, "%s: %s", dir, strerror(errno));
            st = PREP_ERR_IO;
        }
        if ((st = cluster_agree_msg(comm, st, msg, err, err_bytes, NULL)) != PREP_OK) {
            free(p.pieces);
            free(p.seq_begin);
            break;
        }
        uint64_t per = o->shard_tokens / L ? o->shard_tokens / L : 1;
        size_t n_shards = (size_t)((p.n_seqs + per - 1) / per);
        for (size_t k = (size_t)rank; st == PREP_OK && k < n_shards; k += (size_t)n_ranks) {
            size_t s0 = k * per, s1 = (k + 1) * per < p.n_seqs ? (k + 1) * per : p.n_seqs;
            st = write_shard(o, tok, sel, &p, L, k, n_shards, s0, s1, &rc, &buf, &buf_cap, &buf_sel,
                             msg, sizeof msg);
        }
        st = cluster_agree_msg(comm, st, msg, err, err_bytes, NULL);
        if (rank == 0) {
            n_seqs_out[li] = p.n_seqs;
            n_shards_out[li] = n_shards;
        }
        free(p.pieces);
        free(p.seq_begin);
    }
    for (int k = 0; k < READER_CACHE; k++)
        shard_reader_free(rc.r[k]);
    free(buf);
    if (rank != 0)
        free(sel);
    return st;
}
