/* prep_pack.c - stages 5-6: the packing plan (concat, bestfit) and the output shards, both
 * spread over the ranks: no rank holds more than its share of the copies and pieces.
 *
 * The plan. Every copy of a selected document gets a seeded key from (doc_id, copy); the
 * copies in key order make one token stream. The keys are uniform, so the copies are dealt to
 * the ranks by key range, sorted there, and an exclusive scan of their tokens gives each copy
 * its start in the stream: no rank sees the whole order, and the order is the rank count's
 * business only as far as who holds which part of it.
 *  - concat: sequence s is tokens [sL, (s + 1)L) of the stream, the last one shorter (the
 *    shard library's concat rule, shard_concat_next).
 *  - bestfit: the stream is cut into windows of W = bestfit_window x L tokens (a copy belongs
 *    to the window its first token falls in; an empty copy to the window of the token before
 *    it). Inside a window, as best fit always did over the whole selection: copies longer
 *    than L give full L-token sequences of their own, what is left of them and the shorter
 *    copies are placed longest first into the fullest sequence that still has room, and the
 *    window's sequences are put in a seeded order. The windows' sequences follow one another
 *    in window order. Window j is planned by the first rank holding a copy of it. A
 *    selection under W tokens is one window: the same bytes as the global best fit of earlier
 *    versions.
 * The shards. Sequence s is in shard s / per (per = shard_tokens / L), written by rank
 * (shard mod ranks). Every piece goes once to the rank that owns its work unit (the select
 * stage's unit ranges), which reads its units once, in order (serve_all). The tokens move to
 * the writers in rounds: in round t every rank writes its next spr sequences (spr x L tokens
 * of tw bytes, the shards' width: --pack-memory). The owner sends round 0 as it reads and
 * spills the later rounds' messages to one file in DIR/work, a segment per round, read back
 * when their round comes (spill_round): the work files are read once whatever the number of
 * rounds (before, every round read them all: 93 passes at Llama 2 Long's scale). A shard that
 * already exists and verifies is kept (resume).
 * The bytes depend on the selection, the seed, L, bestfit_window and shard_tokens, never on
 * the rank count or --pack-memory. */
#include "prep_internal.h"
#include "shard.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef unsigned long long ull;

/* Where a length's pack time goes, per rank (logged at -v): seconds by step. */
enum { TM_KEYS, TM_WIN_SEND, TM_BESTFIT, TM_PIECES, TM_SERVE, TM_SEND, TM_WRITE, TM_N };

/* A copy of a selected document in the key-ordered stream. On its way to its key range (in
 * copies_by_key) start holds the copy's number instead. */
typedef struct {
    uint64_t doc_id, n_tokens; /* n_tokens: packed (BOS/EOS included) */
    uint64_t start;            /* its first token in the key-ordered stream */
    uint32_t unit, useq;       /* useq: the document's sequence in the unit's work shard */
} copy_t;

/* A piece of a copy in a sequence. */
typedef struct {
    uint64_t seq; /* global sequence number */
    uint64_t doc_id, doc_offset;
    uint32_t start, len; /* in the sequence: L <= 2^30 (the recipe's limit) */
    uint32_t unit, useq;
} piece_t;

/* What a unit's owner sends a writer before a piece's len tokens (the layout's tw bytes
 * each: the shards' width). */
typedef struct {
    uint64_t seq, doc_id, doc_offset;
    uint32_t start, len;
} piece_hdr;

/* A growable array of pieces. */
typedef struct {
    piece_t *v;
    size_t n, cap;
} pieces_t;

static int piece_add(pieces_t *p, const piece_t *x) {
    if (p->n == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 1024;
        piece_t *q = realloc(p->v, cap * sizeof *q);
        if (!q)
            return -1;
        p->v = q;
        p->cap = cap;
    }
    p->v[p->n++] = *x;
    return 0;
}

/* Room for n more pieces: one allocation instead of doublings (16M short documents: 0.7 s of
 * reallocating and faulting in the copies). */
static int pieces_reserve(pieces_t *p, size_t n) {
    if (p->cap - p->n >= n)
        return 0;
    piece_t *q = realloc(p->v, (p->n + n) * sizeof *q);
    if (!q)
        return -1;
    p->v = q;
    p->cap = p->n + n;
    return 0;
}

/* ---- the plan: copies by key ------------------------------------------------------------- */

/* The part of [0, 2^64) key falls in when cut into p equal parts (p < 2^32): floor(key x p /
 * 2^64), exactly, in 64-bit arithmetic. */
static uint64_t key_owner(uint64_t key, uint64_t p) {
    uint64_t hi = (key >> 32) * p, lo = (key & 0xffffffffu) * p;
    return (hi + (lo >> 32)) >> 32;
}

/* Each rank's key range is cut into M equal buckets of about this many copies, each sorted
 * in cache: the copies are put in bucket order as they are made, which is also the order they
 * are sent in, and the receiver sorts one bucket at a time, from the senders' runs of it
 * straight into place. Before, 48-byte copies were made, grouped by rank, sent, dealt by a
 * top digit and sorted back: written five times, not three, and 112 bytes a copy at the sort
 * (now 64). 64M short documents at -np 2, the two ways in turn, twice: 3.89-5.73 s a rank
 * that way, 2.32-2.95 s this way. 3072: the buckets stay under prep_sort_pairs' insertion
 * limit of 4096 (the Poisson spread of 3072 is 55). */
#define COPY_BUCKET      3072
#define COPY_BUCKETS_MAX 16384 /* a rank's buckets: P x M counters per rank */

static uint64_t copy_key(uint64_t salt, uint64_t doc_id, uint64_t copy) {
    return prep_mix64(prep_mix64(doc_id ^ salt) + copy);
}

/* Collective. The copies of the local selected documents dealt by key range, sorted by key
 * here, with their start in the stream; *total: the stream's tokens. Equal keys (never seen)
 * stay in (doc_id, copy) order: each rank's run of a bucket is in doc_id order and the runs
 * are taken in rank order. */
static int copies_by_key(MPI_Comm comm, const prep_sel *sel, size_t n_sel, uint64_t seed,
                         copy_t **out, size_t *n_out, uint64_t *total) {
    int rank, n_ranks;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &n_ranks);
    const uint64_t P = (uint64_t)n_ranks, salt = prep_mix64(seed + 0x7061636bull);
    uint64_t n = 0, n_all = 0;
    for (size_t i = 0; i < n_sel; i++)
        n += sel[i].copies;
    MPI_Allreduce(&n, &n_all, 1, MPI_UINT64_T, MPI_SUM, comm);
    uint64_t M = n_all / (P * COPY_BUCKET) + 1;
    M = M < COPY_BUCKETS_MAX ? M : COPY_BUCKETS_MAX;
    const uint64_t PM = P * M; /* bucket f = floor(key x PM / 2^64) is rank f / M's */
    uint64_t *cnt = calloc(PM, sizeof *cnt), *fill = malloc(PM * sizeof *fill);
    uint64_t *rcnt = malloc(PM * sizeof *rcnt), *count = calloc(P, sizeof *count);
    uint64_t *tok = calloc(P, sizeof *tok), *cur = malloc(P * sizeof *cur);
    copy_t *send = malloc((n ? n : 1) * sizeof *send), *got = NULL, *c = NULL;
    prep_kv *a = NULL, *b = NULL;
    int st = cnt && fill && rcnt && count && tok && cur && send ? PREP_OK : PREP_ERR_NOMEM;
    for (size_t i = 0; st == PREP_OK && i < n_sel; i++)
        for (uint32_t j = 0; j < sel[i].copies; j++) {
            const uint64_t key = copy_key(salt, sel[i].doc_id, j);
            cnt[key_owner(key, PM)]++;
            tok[key_owner(key, P)] += sel[i].n_tokens;
        }
    for (uint64_t f = 0, at = 0; st == PREP_OK && f < PM; f++) {
        fill[f] = at;
        at += cnt[f];
        count[f / M] += cnt[f];
    }
    for (size_t i = 0; st == PREP_OK && i < n_sel; i++)
        for (uint32_t j = 0; j < sel[i].copies; j++) {
            const uint64_t key = copy_key(salt, sel[i].doc_id, j);
            send[fill[key_owner(key, PM)]++] = (copy_t){.doc_id = sel[i].doc_id,
                                                        .n_tokens = sel[i].n_tokens,
                                                        .start = j,
                                                        .unit = sel[i].unit,
                                                        .useq = sel[i].seq};
        }
    if ((st = cluster_agree(comm, st)) != PREP_OK) {
        free(send);
        goto done;
    }
    /* rcnt[s M + k]: the copies rank s sends for bucket k here; mine: their tokens */
    MPI_Alltoall(cnt, (int)M, MPI_UINT64_T, rcnt, (int)M, MPI_UINT64_T, comm);
    uint64_t mine = 0, base = 0;
    MPI_Reduce_scatter_block(tok, &mine, 1, MPI_UINT64_T, MPI_SUM, comm);
    MPI_Exscan(&mine, &base, 1, MPI_UINT64_T, MPI_SUM, comm);
    if (rank == 0)
        base = 0; /* Exscan leaves rank 0's undefined */
    MPI_Allreduce(&mine, total, 1, MPI_UINT64_T, MPI_SUM, comm);
    size_t n_got = 0;
    if ((st = prep_exchange(comm, send, count, sizeof *send, (void **)&got, &n_got)) != PREP_OK)
        goto done;
    uint64_t most = 0; /* the largest bucket */
    for (uint64_t k = 0; k < M; k++) {
        uint64_t m = 0;
        for (uint64_t s = 0; s < P; s++)
            m += rcnt[s * M + k];
        most = m > most ? m : most;
    }
    c = malloc((n_got ? n_got : 1) * sizeof *c);
    a = malloc((most ? most : 1) * sizeof *a);
    b = malloc((most ? most : 1) * sizeof *b);
    if ((st = cluster_agree(comm, c && a && b ? PREP_OK : PREP_ERR_NOMEM)) != PREP_OK)
        goto done;
    for (uint64_t s = 0, at = 0; s < P; s++) { /* rank s's runs, in bucket order */
        cur[s] = at;
        for (uint64_t k = 0; k < M; k++)
            at += rcnt[s * M + k];
    }
    size_t o = 0;
    for (uint64_t k = 0; k < M; k++) {
        size_t m = 0;
        for (uint64_t s = 0; s < P; s++)
            for (uint64_t e = cur[s] + rcnt[s * M + k]; cur[s] < e; cur[s]++, m++) {
                a[m].key = copy_key(salt, got[cur[s]].doc_id, got[cur[s]].start);
                a[m].idx = cur[s];
            }
        const prep_kv *v = prep_sort_pairs(a, b, m);
        for (size_t i = 0; i < m; i++, o++) {
            c[o] = got[v[i].idx];
            c[o].start = base;
            base += c[o].n_tokens;
        }
    }
    *out = c;
    *n_out = n_got;
    c = NULL;
done:
    free(cnt);
    free(fill);
    free(rcnt);
    free(count);
    free(tok);
    free(cur);
    free(got);
    free(c);
    free(a);
    free(b);
    return st;
}

/* Concat: the pieces of each copy, sequence s being tokens [sL, (s + 1)L) of the stream. An
 * empty copy has no piece: it holds no tokens. */
static int plan_concat(const copy_t *c, size_t n, uint64_t L, pieces_t *p) {
    size_t n_pieces = 0; /* exactly: the sequences each copy's tokens fall in */
    for (size_t i = 0; i < n; i++)
        if (c[i].n_tokens > 0)
            n_pieces += (size_t)((c[i].start + c[i].n_tokens - 1) / L - c[i].start / L + 1);
    if (pieces_reserve(p, n_pieces))
        return -1;
    for (size_t i = 0; i < n; i++)
        for (uint64_t off = 0; off < c[i].n_tokens;) {
            uint64_t at = c[i].start + off, in_seq = at % L;
            uint64_t take = c[i].n_tokens - off < L - in_seq ? c[i].n_tokens - off : L - in_seq;
            piece_t x = {.seq = at / L,
                         .doc_id = c[i].doc_id,
                         .doc_offset = off,
                         .start = (uint32_t)in_seq,
                         .len = (uint32_t)take,
                         .unit = c[i].unit,
                         .useq = c[i].useq};
            if (piece_add(p, &x))
                return -1;
            off += take;
        }
    return 0;
}

/* ---- bestfit inside a window: the fullest bin with room, by a bitmap of rooms ------------- */

/* A set of rooms 0..L as bits, each level's word w set where word w of the level below is
 * not empty: the smallest room >= x is a few word reads away (ctz) whatever L. A segment tree
 * of counts did this before, a walk of 14 levels up and down for L = 8192, an eighth of the
 * bestfit plan's time. */
enum { ROOM_LEVELS = 6 }; /* 64^6 rooms: over the recipe's limit of 2^30 */
typedef struct {
    uint64_t *w[ROOM_LEVELS];
    size_t n[ROOM_LEVELS]; /* words per level */
    int levels;
} roomset_t;

static int roomset_init(roomset_t *b, uint64_t n_bits) {
    memset(b, 0, sizeof *b);
    for (uint64_t n = n_bits; b->levels < ROOM_LEVELS; b->levels++) {
        const size_t words = (size_t)((n + 63) / 64);
        b->n[b->levels] = words;
        b->w[b->levels] = calloc(words, sizeof(uint64_t));
        if (!b->w[b->levels])
            return -1;
        if (words == 1) {
            b->levels++;
            return 0;
        }
        n = words;
    }
    return -1;
}

static void roomset_free(roomset_t *b) {
    for (int l = 0; l < ROOM_LEVELS; l++)
        free(b->w[l]);
}

static void roomset_add(roomset_t *b, uint64_t x) {
    for (int l = 0; l < b->levels; l++, x >>= 6) {
        uint64_t *w = &b->w[l][x >> 6];
        const int was = *w != 0;
        *w |= 1ull << (x & 63);
        if (was)
            return; /* the levels above know already */
    }
}

static void roomset_remove(roomset_t *b, uint64_t x) {
    for (int l = 0; l < b->levels; l++, x >>= 6) {
        uint64_t *w = &b->w[l][x >> 6];
        *w &= ~(1ull << (x & 63));
        if (*w)
            return;
    }
}

/* The smallest member >= x, or UINT64_MAX. */
static uint64_t roomset_next(const roomset_t *b, uint64_t x) {
    int l = 0;
    for (;; l++) { /* up until a word holds a member at or after x */
        if (l == b->levels || (x >> 6) >= b->n[l])
            return UINT64_MAX;
        const uint64_t word = b->w[l][x >> 6] & (~0ull << (x & 63));
        if (word) {
            x = (x & ~63ull) + (uint64_t)__builtin_ctzll(word);
            break;
        }
        x = (x >> 6) + 1; /* the next word of this level, as a member of the one above */
    }
    for (; l > 0; l--) /* down to the first member under it */
        x = x * 64 + (uint64_t)__builtin_ctzll(b->w[l - 1][x]);
    return x;
}

typedef struct {
    uint64_t len, off; /* what is left of the copy after its full sequences: [off, off + len) */
    uint32_t idx;      /* into the window's copies (key order) */
} fit_t;

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
    uint32_t idx;
    uint64_t off, len;
    int64_t next;
} bin_piece;

typedef struct {
    uint64_t *room;       /* (n) */
    int64_t *head, *tail; /* (n) first and last piece */
    size_t n, cap;
    bin_piece *pcs; /* (n_pcs) */
    size_t n_pcs, cap_pcs;
    /* bins with room r > 0, by room, and the rooms that have some */
    int64_t **by_room; /* (L + 1) */
    size_t *n_room, *cap_room;
    roomset_t rooms;
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

static int bin_put(bins_t *B, int64_t b, uint32_t idx, uint64_t off, uint64_t len) {
    if (B->n_pcs == B->cap_pcs) {
        size_t cap = B->cap_pcs ? 2 * B->cap_pcs : 256;
        bin_piece *p = realloc(B->pcs, cap * sizeof *p);
        if (!p)
            return -1;
        B->pcs = p;
        B->cap_pcs = cap;
    }
    B->pcs[B->n_pcs] = (bin_piece){idx, off, len, -1};
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
    if (B->n_room[r]++ == 0)
        roomset_add(&B->rooms, r);
    B->by_room[r][B->n_room[r] - 1] = b;
    return 0;
}

/* Takes the bin with the smallest room >= need (the last filed of that room); -1 if none. */
static int64_t room_take(bins_t *B, uint64_t need) {
    const uint64_t r = roomset_next(&B->rooms, need);
    if (r == UINT64_MAX)
        return -1;
    int64_t b = B->by_room[r][--B->n_room[r]];
    if (B->n_room[r] == 0)
        roomset_remove(&B->rooms, r);
    return b;
}

/* Best fit of window j's copies c[0, n) (key order) into sequences numbered 0.. in the
 * window's seeded order (*n_bins), appended to p. */
static int plan_bestfit(const copy_t *c, size_t n, uint64_t L, uint64_t seed, uint64_t j,
                        pieces_t *p, uint64_t *n_bins) {
    bins_t B;
    memset(&B, 0, sizeof B);
    const int rooms_ok = roomset_init(&B.rooms, L + 1) == 0;
    B.by_room = calloc(L + 1, sizeof *B.by_room);
    B.n_room = calloc(L + 1, sizeof *B.n_room);
    B.cap_room = calloc(L + 1, sizeof *B.cap_room);
    fit_t *f = malloc((n ? n : 1) * sizeof *f);
    binkey_t *order = NULL;
    size_t n_f = 0;
    int st = f && rooms_ok && B.by_room && B.n_room && B.cap_room ? 0 : -1;

    /* copies longer than L give full L-token sequences of their own; what is left (or the
     * whole copy) is placed below, longest first */
    for (size_t i = 0; st == 0 && i < n; i++) {
        uint64_t len = c[i].n_tokens, off = 0;
        for (; st == 0 && len - off > L; off += L) {
            int64_t b = bin_new(&B, L);
            st = b < 0 || bin_put(&B, b, (uint32_t)i, off, L) ? -1 : 0;
        }
        if (st == 0 && (len - off > 0 || len == 0)) { /* an empty copy still gets a place */
            f[n_f].len = len - off;
            f[n_f].off = off;
            f[n_f].idx = (uint32_t)i;
            n_f++;
        }
    }
    /* longest first, then by key (f is in key order already: c is), then by copy */
    uint64_t *keys = st == 0 ? malloc((n_f ? n_f : 1) * sizeof *keys) : NULL;
    for (size_t i = 0; keys && i < n_f; i++)
        keys[i] = L - f[i].len;
    if (!keys || prep_sort_by_key(f, n_f, sizeof *f, keys) != 0)
        st = -1;
    free(keys);
    for (size_t i = 0; st == 0 && i < n_f; i++) {
        int64_t b = room_take(&B, f[i].len);
        if (b < 0)
            b = bin_new(&B, L);
        if (b < 0 || bin_put(&B, b, f[i].idx, f[i].off, f[i].len) || room_add(&B, b))
            st = -1;
    }

    /* the window's sequences in seeded order (window 0's keys are those of earlier versions'
     * single global window) */
    order = st == 0 ? malloc((B.n ? B.n : 1) * sizeof *order) : NULL;
    const uint64_t salt = prep_mix64(seed + 0x62657374ull);
    for (size_t b = 0; order && b < B.n; b++) {
        order[b].key = prep_mix64(((uint64_t)b ^ salt) + j * 0x9e3779b97f4a7c15ull);
        order[b].bin = (uint32_t)b;
    }
    if (order)
        qsort(order, B.n, sizeof *order, cmp_binkey);
    else
        st = -1;
    for (size_t k = 0; st == 0 && k < B.n; k++) {
        uint64_t at = 0;
        for (int64_t x = B.head[order[k].bin]; st == 0 && x >= 0; x = B.pcs[x].next) {
            const copy_t *y = &c[B.pcs[x].idx];
            piece_t q = {.seq = k,
                         .doc_id = y->doc_id,
                         .doc_offset = B.pcs[x].off,
                         .start = (uint32_t)at,
                         .len = (uint32_t)B.pcs[x].len,
                         .unit = y->unit,
                         .useq = y->useq};
            if (piece_add(p, &q))
                st = -1;
            at += B.pcs[x].len;
        }
    }
    *n_bins = B.n;
    for (size_t r = 0; B.by_room && r <= L; r++)
        free(B.by_room[r]);
    free(B.by_room);
    free(B.n_room);
    free(B.cap_room);
    roomset_free(&B.rooms);
    free(B.room);
    free(B.head);
    free(B.tail);
    free(B.pcs);
    free(order);
    free(f);
    return st;
}

static uint64_t window_of(const copy_t *c, uint64_t W) {
    return c->n_tokens == 0 && c->start > 0 ? (c->start - 1) / W : c->start / W;
}

/* Collective. Bestfit: each window packed by the first rank (in key order) holding a copy of
 * it, numbered after the windows before it. The ranks hold consecutive parts of the stream
 * (copies_by_key), so a rank's windows are consecutive too and only the copies of its first
 * window may belong to a lower rank: those move, nothing else does. *n_seqs: the sequences
 * of all windows. */
static int plan_windows(MPI_Comm comm, copy_t *c, size_t n, uint64_t total, uint64_t L,
                        uint64_t window_seqs, uint64_t seed, pieces_t *p, uint64_t *n_seqs,
                        double *tm, char *msg, size_t msg_bytes) {
    double t0 = cluster_now();
    int rank, n_ranks;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &n_ranks);
    const uint64_t W = window_seqs * L;
    const uint64_t n_win = total ? (total - 1) / W + 1 : 1;
    /* every rank's first and last window, UINT64_MAX for a rank without copies */
    uint64_t span[2] = {n ? window_of(&c[0], W) : UINT64_MAX,
                        n ? window_of(&c[n - 1], W) : UINT64_MAX};
    uint64_t *spans = malloc(2 * (size_t)n_ranks * sizeof *spans);
    uint64_t *count = calloc((size_t)n_ranks, sizeof *count);
    uint64_t *bins = calloc(n_win, sizeof *bins);
    /* this rank's windows: j, and its pieces [p0, p1) */
    typedef struct {
        uint64_t j;
        size_t p0, p1;
    } win_t;
    win_t *mine = NULL;
    size_t n_mine = 0;
    copy_t *got = NULL, *w = NULL;
    size_t n_got = 0, n_w = 0, n_out = 0;
    int st = spans && count && bins ? PREP_OK : PREP_ERR_NOMEM;
    if ((st = cluster_agree(comm, st)) != PREP_OK)
        goto done;
    MPI_Allgather(span, 2, MPI_UINT64_T, spans, 2, MPI_UINT64_T, comm);
    int owner = rank; /* of this rank's first window */
    for (int r = 0; n && r < rank; r++)
        if (spans[2 * r + 1] == span[0]) {
            owner = r;
            break;
        }
    if (owner != rank)
        while (n_out < n && window_of(&c[n_out], W) == span[0])
            n_out++;
    count[owner] = n_out; /* the first window's copies, if another rank packs it */
    copy_t *out = n_out ? malloc(n_out * sizeof *out) : NULL;
    if (n_out && !out)
        st = PREP_ERR_NOMEM;
    if ((st = cluster_agree(comm, st)) != PREP_OK)
        goto done;
    if (n_out)
        memcpy(out, c, n_out * sizeof *out);
    /* from the higher ranks, in rank order: more copies of this rank's last window */
    if ((st = prep_exchange(comm, out, count, sizeof *out, (void **)&got, &n_got)) != PREP_OK)
        goto done;
    /* the windows in c[n_out, n) and, if copies came, the last one with them in w */
    size_t n_own = n - n_out, n_last = 0;
    if (n_got)
        while (n_last < n_own && window_of(&c[n - 1 - n_last], W) == span[1])
            n_last++;
    n_w = n_last + n_got;
    w = n_got ? malloc(n_w * sizeof *w) : NULL;
    if ((st = cluster_agree(comm, !n_got || w ? PREP_OK : PREP_ERR_NOMEM)) != PREP_OK)
        goto done;
    if (n_got) {
        memcpy(w, c + n - n_last, n_last * sizeof *w);
        memcpy(w + n_last, got, n_got * sizeof *w);
        free(got);
        got = NULL;
    }
    tm[TM_WIN_SEND] += cluster_now() - t0;
    t0 = cluster_now();
    size_t n_pieces = 0; /* exactly: a copy is cut into ceil(tokens / L) pieces, at least one */
    for (size_t i = n_out; i < n - n_last; i++)
        n_pieces += c[i].n_tokens > L ? (size_t)((c[i].n_tokens + L - 1) / L) : 1;
    for (size_t i = 0; i < n_w; i++)
        n_pieces += w[i].n_tokens > L ? (size_t)((w[i].n_tokens + L - 1) / L) : 1;
    const size_t max_win = n_own + n_got; /* at most one a copy */
    mine = malloc((max_win ? max_win : 1) * sizeof *mine);
    if (!mine || pieces_reserve(p, n_pieces))
        st = PREP_ERR_NOMEM;
    /* each window's copies are contiguous in key order: c[n_out, n - n_last), then w */
    for (int part = 0; part < 2; part++) {
        const copy_t *v = part == 0 ? c + n_out : w;
        const size_t nv = part == 0 ? n_own - n_last : n_w;
        for (size_t a = 0, b; st == PREP_OK && a < nv; a = b) {
            uint64_t j = window_of(&v[a], W);
            for (b = a + 1; b < nv && window_of(&v[b], W) == j; b++)
                ;
            win_t *x = &mine[n_mine++];
            x->j = j;
            x->p0 = p->n;
            if (plan_bestfit(v + a, b - a, L, seed, j, p, &bins[j])) {
                snprintf(msg, msg_bytes,
                         "out of memory planning the %llu-token sequences of window %llu", (ull)L,
                         (ull)j);
                st = PREP_ERR_NOMEM;
            }
            x->p1 = p->n;
        }
    }
    tm[TM_BESTFIT] += cluster_now() - t0;
    if ((st = cluster_agree(comm, st)) != PREP_OK)
        goto done;
    cluster_allreduce_u64_big(bins, n_win, comm);
    uint64_t base = 0;
    for (uint64_t j = 0; j < n_win; j++) { /* bins[j]: the sequences before window j */
        uint64_t b = bins[j];
        bins[j] = base;
        base += b;
    }
    for (size_t k = 0; k < n_mine; k++)
        for (size_t i = mine[k].p0; i < mine[k].p1; i++)
            p->v[i].seq += bins[mine[k].j];
    *n_seqs = base;
done:
    free(spans);
    free(count);
    free(bins);
    free(mine);
    free(got);
    free(w);
    return st;
}

/* ---- shards: who writes what, in which round ---------------------------------------------- */

typedef struct {
    uint64_t L, n_seqs, per, n_shards, spr, n_rounds;
    uint32_t tw; /* bytes per token in the messages: the shards' width */
    int n_ranks;
} layout_t;

static int writer_of(const layout_t *y, uint64_t s) {
    return (int)((s / y->per) % (uint64_t)y->n_ranks);
}
/* the position of sequence s among its writer's sequences */
static uint64_t local_index(const layout_t *y, uint64_t s) {
    uint64_t k = s / y->per;
    return k / (uint64_t)y->n_ranks * y->per + s % y->per;
}
/* rank r's sequences */
static uint64_t local_count(const layout_t *y, int r) {
    uint64_t n = 0;
    for (uint64_t k = (uint64_t)r; k < y->n_shards; k += (uint64_t)y->n_ranks)
        n += y->n_seqs - k * y->per < y->per ? y->n_seqs - k * y->per : y->per;
    return n;
}
/* the global sequence of rank r's local index j */
static uint64_t global_seq(const layout_t *y, int r, uint64_t j) {
    return ((j / y->per) * (uint64_t)y->n_ranks + (uint64_t)r) * y->per + j % y->per;
}

static int file_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

static void shard_path(char *out, size_t n, const prep_opts *o, uint64_t L, uint64_t k) {
    snprintf(out, n, "%s/L%llu/part-%05llu.shard", o->output, (ull)L, (ull)k);
}

/* The writer side of a rank: the shard it is writing. */
typedef struct {
    shard_writer *w;
    uint64_t k; /* its shard, UINT64_MAX: none open */
} out_t;

static int out_open(out_t *x, const prep_opts *o, const tokenizer *tok, const layout_t *y,
                    uint64_t k, char *err, size_t err_bytes) {
    const prep_recipe *R = &o->recipe;
    char path[4200], meta[1024], window[64] = "";
    shard_path(path, sizeof path, o, y->L, k);
    if (R->packing == PREP_PACK_BESTFIT)
        snprintf(window, sizeof window, ",\"bestfit_window\":%llu", (ull)R->bestfit_window);
    snprintf(meta, sizeof meta,
             "{\"recipe\":\"%s\",\"seed\":%llu,\"seq_len\":%llu,\"packing\":\"%s\"%s,"
             "\"shard\":%llu,\"n_shards\":%llu,\"tokenizer_xxh3\":\"%016llx\",\"bos\":%s,"
             "\"eos\":%s}",
             R->name, (ull)R->seed, (ull)y->L,
             R->packing == PREP_PACK_CONCAT ? "concat" : "bestfit", window, (ull)k,
             (ull)y->n_shards, (ull)tokenizer_checksum(tok), R->bos ? "true" : "false",
             R->eos ? "true" : "false");
    shard_writer_opts wo = shard_writer_opts_default();
    wo.vocab_size = tokenizer_vocab_size(tok);
    wo.level = o->zstd_level;
    /* the blocks compressed on --threads threads: 4M short documents, -np 1 --bind-to none,
     * shards written in 2.8 s at --threads 1, 2.1 s at 2 (zstd 3, the same bytes) */
    wo.threads = o->threads;
    wo.meta_json = meta;
    if (shard_writer_create(path, &wo, &x->w) != SHARD_OK) {
        snprintf(err, err_bytes, "%s", shard_writer_errmsg(x->w));
        shard_writer_free(x->w);
        x->w = NULL;
        return PREP_ERR_IO;
    }
    x->k = k;
    return PREP_OK;
}

static int out_close(out_t *x, char *err, size_t err_bytes) {
    int st = PREP_OK;
    if (x->w && shard_writer_close(x->w) != SHARD_OK) {
        snprintf(err, err_bytes, "%s", shard_writer_errmsg(x->w));
        st = PREP_ERR_IO;
    }
    shard_writer_free(x->w);
    x->w = NULL;
    x->k = UINT64_MAX;
    return st;
}

/* ---- the unit owners: each work unit read once, the later rounds spilled ------------------ */

/* The size of a piece's message: its header and its tokens, tw bytes each. */
static uint64_t msg_size(const layout_t *y, uint64_t len) {
    return sizeof(piece_hdr) + len * y->tw;
}

static uint64_t round_of(const layout_t *y, uint64_t s) {
    return local_index(y, s) / y->spr;
}

/* Each writer's part of a round comes dealt into up to SLOT_BINS ranges of its sequences, in
 * order, so that the writer's gather in place order stays in one range at a time (its cache
 * and TLB misses: 16M short documents at -np 1, shards written in 15.3 s with one range,
 * 14.8 s with 64). */
#define SLOT_BINS 64

static uint64_t n_bins(const layout_t *y) {
    return y->spr < SLOT_BINS ? y->spr : SLOT_BINS;
}

/* The index of sequence s's (round, writer, range) in a rounds x ranks x n_bins array (the
 * divisions written out once each: a piece's bin took a tenth of the unit owners' pass). */
static uint64_t bin_index(const layout_t *y, uint64_t s) {
    const uint64_t P = (uint64_t)y->n_ranks, nb = n_bins(y);
    const uint64_t k = s / y->per, kw = k / P, w = k - kw * P;
    const uint64_t j = kw * y->per + (s - k * y->per);
    const uint64_t t = j / y->spr, slot = j - t * y->spr;
    return (t * P + w) * nb + slot * nb / y->spr;
}

static int pwrite_all(int fd, const void *p, size_t n, uint64_t at) {
    for (const uint8_t *b = p; n > 0;) {
        ssize_t k = pwrite(fd, b, n, (off_t)at);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        b += k;
        n -= (size_t)k;
        at += (uint64_t)k;
    }
    return 0;
}

static int pread_all(int fd, void *p, size_t n, uint64_t at) {
    for (uint8_t *b = p; n > 0;) {
        ssize_t k = pread(fd, b, n, (off_t)at);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            if (k == 0)
                errno = EIO; /* shorter than written: truncated under us */
            return -1;
        }
        b += k;
        n -= (size_t)k;
        at += (uint64_t)k;
    }
    return 0;
}

/* The spill of a unit owner: the messages of rounds 1.. (round 0 is sent as the units are
 * read), round t in segment [seg[t], seg[t + 1]) of one file in DIR/work, each round appended
 * through a buffer of its own. */
typedef struct {
    int fd; /* -1: no file (one round, or nothing to spill) */
    char path[4200];
    uint64_t n_rounds;
    uint64_t *seg; /* (n_rounds + 1) */
    uint64_t *at;  /* (n_rounds) the next byte of round t's segment */
    uint8_t *buf;  /* (n_rounds x cap) */
    size_t *used;  /* (n_rounds) */
    size_t cap;
} spill_t;

/* The spill buffers take about this much in all, each between 4 KiB and 1 MiB. */
#define SPILL_BUFFERS_BYTES (64u << 20)

static int spill_flush(spill_t *s, uint64_t t) {
    size_t u = s->used[t];
    if (u > 0 && pwrite_all(s->fd, s->buf + t * s->cap, u, s->at[t]) != 0)
        return -1;
    s->at[t] += u;
    s->used[t] = 0;
    return 0;
}

static int spill_put(spill_t *s, uint64_t t, const void *p, size_t n) {
    if (s->used[t] + n > s->cap && spill_flush(s, t) != 0)
        return -1;
    if (n > s->cap) {
        if (pwrite_all(s->fd, p, n, s->at[t]) != 0)
            return -1;
        s->at[t] += n;
        return 0;
    }
    memcpy(s->buf + t * s->cap + s->used[t], p, n);
    s->used[t] += n;
    return 0;
}

static void spill_free(spill_t *s) {
    if (s->fd >= 0) {
        close(s->fd);
        unlink(s->path);
    }
    s->fd = -1;
    free(s->seg);
    free(s->at);
    free(s->buf);
    free(s->used);
    s->seg = s->at = NULL;
    s->buf = NULL;
    s->used = NULL;
}

/* The spill for rounds whose bytes (all writers) are round_bytes[t]; no file if only round 0
 * has any. */
static int spill_open(spill_t *s, const prep_opts *o, const layout_t *y, int rank,
                      const uint64_t *round_bytes, char *err, size_t err_bytes) {
    memset(s, 0, sizeof *s);
    s->fd = -1;
    s->n_rounds = y->n_rounds;
    s->seg = calloc(y->n_rounds + 1, sizeof *s->seg);
    if (!s->seg)
        return PREP_ERR_NOMEM;
    for (uint64_t t = 1; t < y->n_rounds; t++)
        s->seg[t + 1] = s->seg[t] + round_bytes[t];
    s->seg[0] = 0;
    if (y->n_rounds < 2 || s->seg[y->n_rounds] == 0)
        return PREP_OK;
    size_t cap = SPILL_BUFFERS_BYTES / y->n_rounds;
    s->cap = cap < 4096 ? 4096 : cap > (1u << 20) ? 1u << 20 : cap;
    s->at = malloc(y->n_rounds * sizeof *s->at);
    s->used = calloc(y->n_rounds, sizeof *s->used);
    s->buf = malloc(y->n_rounds * s->cap);
    if (!s->at || !s->used || !s->buf)
        return PREP_ERR_NOMEM;
    for (uint64_t t = 0; t < y->n_rounds; t++)
        s->at[t] = s->seg[t];
    snprintf(s->path, sizeof s->path, "%s/work/spill-L%llu-rank%d.tmp", o->output, (ull)y->L, rank);
    s->fd = open(s->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (s->fd < 0) {
        snprintf(err, err_bytes, "%s: %s", s->path, strerror(errno));
        return PREP_ERR_IO;
    }
    return PREP_OK;
}

/* A document of a work unit as the sequences hold it: [bos] text [eos], tw bytes a token. */
typedef struct {
    uint8_t *v;
    size_t cap;
    uint64_t n;
    uint32_t unit, seq;
} doc_t;

static void put_token(uint8_t *p, uint32_t tw, uint32_t id) {
    if (tw == 2) {
        uint16_t v = (uint16_t)id;
        memcpy(p, &v, 2);
    } else {
        memcpy(p, &id, 4);
    }
}

static int doc_load(doc_t *d, shard_reader *rd, const prep_recipe *R, const tokenizer *tok,
                    uint32_t tw, uint32_t useq) {
    shard_seq s;
    if (shard_reader_read(rd, useq, &s) != SHARD_OK)
        return PREP_ERR_IO;
    const uint64_t need = (s.n_tokens + 2) * tw;
    if (need > d->cap) {
        uint8_t *v = realloc(d->v, need);
        if (!v)
            return PREP_ERR_NOMEM;
        d->v = v;
        d->cap = need;
    }
    const uint32_t tb = shard_reader_info(rd)->token_bytes;
    uint64_t n = 0;
    if (R->bos)
        put_token(d->v, tw, (uint32_t)tokenizer_bos_id(tok)), n++;
    if (tb == tw) {
        memcpy(d->v + n * tw, s.tokens, s.n_tokens * tw);
    } else { /* a unit of another width (never written so: both follow the vocabulary) */
        for (uint64_t i = 0; i < s.n_tokens; i++) {
            uint32_t id;
            if (tb == 2) {
                uint16_t v;
                memcpy(&v, (const uint8_t *)s.tokens + 2 * i, 2);
                id = v;
            } else {
                memcpy(&id, (const uint8_t *)s.tokens + 4 * i, 4);
            }
            put_token(d->v + (n + i) * tw, tw, id);
        }
    }
    n += s.n_tokens;
    if (R->eos)
        put_token(d->v + n * tw, tw, (uint32_t)tokenizer_eos_id(tok)), n++;
    d->n = n;
    return PREP_OK;
}

/* The unit owner's pass over q[0, n), every piece asked of this rank's units: sorted here by
 * unit and sequence (the order inside a document does not matter, the writers order by
 * place), each unit's work shard read once, in order. bytes[bin_index]: the message bytes of
 * each round, writer and range (filled here). Round 0's messages go into *first, grouped by
 * writer and range; the later rounds' into the spill (opened here). */
static int serve_all(const prep_opts *o, const tokenizer *tok, const layout_t *y, int rank,
                     piece_t *q, size_t n, uint64_t *bytes, uint8_t **first, spill_t *sp, char *err,
                     size_t err_bytes) {
    const prep_recipe *R = &o->recipe;
    const int P = y->n_ranks;
    *first = NULL;
    sp->fd = -1;
    uint64_t *keys = malloc((n ? n : 1) * sizeof *keys);
    for (size_t i = 0; keys && i < n; i++)
        keys[i] = (uint64_t)q[i].unit << 32 | q[i].useq;
    int sorted = keys && prep_sort_by_key(q, n, sizeof *q, keys) == 0;
    const uint64_t nb = n_bins(y), per_round = (uint64_t)P * nb;
    uint64_t *round_bytes = calloc(y->n_rounds ? y->n_rounds : 1, sizeof *round_bytes);
    uint64_t *fill = calloc(per_round, sizeof *fill);
    uint64_t *bin = keys; /* the sort's keys are done with: each piece's bin_index */
    if (!sorted || !round_bytes || !fill) {
        free(keys);
        free(round_bytes);
        free(fill);
        memset(sp, 0, sizeof *sp);
        sp->fd = -1;
        return PREP_ERR_NOMEM;
    }
    memset(bytes, 0, y->n_rounds * per_round * sizeof *bytes);
    for (size_t i = 0; i < n; i++) {
        uint64_t m = msg_size(y, q[i].len);
        bin[i] = bin_index(y, q[i].seq);
        bytes[bin[i]] += m;
        round_bytes[bin[i] / per_round] += m;
    }
    for (uint64_t k = 1; k < per_round; k++) /* round 0's places */
        fill[k] = fill[k - 1] + bytes[k - 1];
    int st = spill_open(sp, o, y, rank, round_bytes, err, err_bytes);
    uint8_t *buf = st == PREP_OK ? malloc(round_bytes[0] ? round_bytes[0] : 1) : NULL;
    if (st == PREP_OK && !buf)
        st = PREP_ERR_NOMEM;
    free(round_bytes);
    doc_t d = {NULL, 0, 0, UINT32_MAX, UINT32_MAX};
    shard_reader *rd = NULL;
    uint32_t rd_unit = UINT32_MAX;
    for (size_t i = 0; st == PREP_OK && i < n; i++) {
        const piece_t *x = &q[i];
        if (x->unit != d.unit || x->useq != d.seq) {
            if (x->unit != rd_unit) {
                shard_reader_free(rd);
                rd = NULL;
                char path[4200];
                prep_unit_path(path, sizeof path, o->output, x->unit, "shard");
                if (shard_reader_open_mapped(path, &rd) != SHARD_OK) {
                    snprintf(err, err_bytes, "%s", shard_reader_errmsg(rd));
                    st = PREP_ERR_IO;
                    break;
                }
                rd_unit = x->unit;
            }
            if ((st = doc_load(&d, rd, R, tok, y->tw, x->useq)) != PREP_OK) {
                if (st == PREP_ERR_IO)
                    snprintf(err, err_bytes, "%s", shard_reader_errmsg(rd));
                break;
            }
            d.unit = x->unit;
            d.seq = x->useq;
        }
        if (x->doc_offset + x->len > d.n) {
            snprintf(err, err_bytes,
                     "unit %u sequence %u: %llu tokens, the plan asks for [%llu, %llu) of "
                     "document %llu",
                     x->unit, x->useq, (ull)d.n, (ull)x->doc_offset, (ull)(x->doc_offset + x->len),
                     (ull)x->doc_id);
            st = PREP_ERR_INPUT;
            break;
        }
        const piece_hdr h = {x->seq, x->doc_id, x->doc_offset, x->start, x->len};
        const uint8_t *tokens = d.v + x->doc_offset * y->tw;
        const uint64_t t = bin[i] / per_round;
        if (t == 0) {
            uint64_t *f = &fill[bin[i]];
            memcpy(buf + *f, &h, sizeof h);
            memcpy(buf + *f + sizeof h, tokens, (size_t)x->len * y->tw);
            *f += msg_size(y, x->len);
        } else if (spill_put(sp, t, &h, sizeof h) != 0 ||
                   spill_put(sp, t, tokens, (size_t)x->len * y->tw) != 0) {
            snprintf(err, err_bytes, "%s: %s", sp->path, strerror(errno));
            st = PREP_ERR_IO;
        }
    }
    for (uint64_t t = 1; st == PREP_OK && sp->fd >= 0 && t < y->n_rounds; t++)
        if (spill_flush(sp, t) != 0) {
            snprintf(err, err_bytes, "%s: %s", sp->path, strerror(errno));
            st = PREP_ERR_IO;
        }
    free(sp->buf); /* the appends are over */
    sp->buf = NULL;
    shard_reader_free(rd);
    free(d.v);
    free(fill);
    free(bin);
    if (st != PREP_OK) {
        free(buf);
        buf = NULL;
    }
    *first = buf;
    return st;
}

/* Round t (>= 1) from the spill, grouped by writer and range as round 0 was: bytes[r x n_bins
 * + b] for writer r's range b. */
static int spill_round(spill_t *s, const layout_t *y, uint64_t t, const uint64_t *bytes,
                       uint8_t **out, char *err, size_t err_bytes) {
    const int P = y->n_ranks;
    const uint64_t total = s->seg[t + 1] - s->seg[t];
    *out = NULL;
    const uint64_t nb = n_bins(y), per_round = (uint64_t)P * nb;
    uint64_t *fill = calloc(2 * per_round, sizeof *fill), *end = fill ? fill + per_round : NULL;
    uint8_t *buf = malloc(total ? total : 1);
    /* read in chunks of at least one message */
    size_t cap = (size_t)msg_size(y, y->L);
    if (cap < (4u << 20))
        cap = 4u << 20;
    uint8_t *chunk = total ? malloc(cap) : NULL;
    if (!fill || !buf || (total && !chunk)) {
        free(fill);
        free(buf);
        free(chunk);
        return PREP_ERR_NOMEM;
    }
    for (uint64_t k = 0; k < per_round; k++) {
        fill[k] = k ? end[k - 1] : 0;
        end[k] = fill[k] + bytes[k];
    }
    int st = PREP_OK;
    size_t have = 0;
    for (uint64_t at = s->seg[t]; st == PREP_OK && (at < s->seg[t + 1] || have > 0);) {
        size_t take = cap - have;
        if (take > s->seg[t + 1] - at)
            take = (size_t)(s->seg[t + 1] - at);
        if (take > 0 && pread_all(s->fd, chunk + have, take, at) != 0) {
            snprintf(err, err_bytes, "%s: %s", s->path, strerror(errno));
            st = PREP_ERR_IO;
            break;
        }
        at += take;
        have += take;
        size_t used = 0;
        while (have - used >= sizeof(piece_hdr)) {
            piece_hdr h;
            memcpy(&h, chunk + used, sizeof h);
            const uint64_t m = msg_size(y, h.len);
            if (have - used < m)
                break;
            const uint64_t r = bin_index(y, h.seq) - t * per_round;
            if (round_of(y, h.seq) != t || fill[r] + m > end[r]) {
                snprintf(err, err_bytes, "%s: round %llu: a message of another place (damaged)",
                         s->path, (ull)t);
                st = PREP_ERR_IO;
                break;
            }
            memcpy(buf + fill[r], chunk + used, m);
            fill[r] += m;
            used += m;
        }
        if (st == PREP_OK && used == 0 && at == s->seg[t + 1]) {
            snprintf(err, err_bytes, "%s: round %llu ends inside a message (damaged)", s->path,
                     (ull)t);
            st = PREP_ERR_IO;
        }
        memmove(chunk, chunk + used, have - used);
        have -= used;
    }
    free(chunk);
    free(fill);
    if (st != PREP_OK) {
        free(buf);
        return st;
    }
    *out = buf;
    return PREP_OK;
}

/* How many pieces ahead write_round prefetches. */
#define PREFETCH_AHEAD 16

typedef struct {
    uint64_t at;         /* byte offset of its header in the received buffer */
    uint64_t slot;       /* its sequence among the round's of this rank */
    uint32_t start, len; /* in its sequence */
} got_t;

/* The writer's part of round t: the received pieces (msg, bytes) into this rank's sequences
 * of the round, in order, into their shards.
 * The pieces come grouped by owner, then by range of sequences, then in the owners' reading
 * order. They are dealt by sequence (a counting pass), and each sequence's put in place order
 * by their starts: pos[start] names the piece that starts there (L entries, reused from one
 * sequence to the next: an entry left by another sequence does not name one of this
 * sequence's pieces, which the walk checks). Pieces of no tokens (a document of no tokens:
 * none from the shipped tokenizers, where non-empty text gives a token and empty text is
 * rejected) go before the piece that starts where they do, in the order they came: the
 * (unit, sequence) order of their documents, whatever the rank count. This replaced a radix
 * sort of all the pieces by (sequence, start): 4M short documents, -np 1, the shards step
 * 2.0 -> 1.8 s. */
static int write_round(const prep_opts *o, const tokenizer *tok, const layout_t *y, int rank,
                       uint64_t t, const uint8_t *done, const uint8_t *msg, size_t bytes,
                       out_t *out, char *err, size_t err_bytes) {
    const uint64_t j0 = t * y->spr, n_local = local_count(y, rank);
    const uint64_t j1 = j0 + y->spr < n_local ? j0 + y->spr : n_local;
    const uint64_t n_slots = j1 > j0 ? j1 - j0 : 0;
    size_t n = 0;
    for (size_t at = 0; at + sizeof(piece_hdr) <= bytes; n++) {
        piece_hdr h;
        memcpy(&h, msg + at, sizeof h);
        at += msg_size(y, h.len);
    }
    got_t *g = malloc((n ? n : 1) * sizeof *g);
    uint64_t *first = calloc(n_slots + 1, sizeof *first); /* slot s: g[first[s], first[s + 1]) */
    uint64_t *fill = malloc((n_slots ? n_slots : 1) * sizeof *fill);
    uint32_t *pos = calloc((size_t)y->L, sizeof *pos);
    uint32_t *ord = NULL;  /* a slot's pieces in place order */
    uint32_t *zero = NULL; /* its pieces of no tokens */
    size_t cap_zero = 0;
    int st = g && first && fill && pos ? PREP_OK : PREP_ERR_NOMEM;
    /* 1. the pieces dealt by slot (stable: in the order they came) */
    for (size_t at = 0, k = 0; st == PREP_OK && k < n; k++) {
        piece_hdr h;
        memcpy(&h, msg + at, sizeof h);
        const uint64_t j = writer_of(y, h.seq) == rank ? local_index(y, h.seq) : UINT64_MAX;
        if (j < j0 || j >= j1 || (uint64_t)h.start + h.len > y->L) {
            snprintf(err, err_bytes,
                     "L%llu round %llu: a piece of sequence %llu at %llu of %llu tokens, not "
                     "of this rank's sequences (plan error)",
                     (ull)y->L, (ull)t, (ull)h.seq, (ull)h.start, (ull)h.len);
            st = PREP_ERR_INPUT;
            break;
        }
        first[j - j0 + 1]++;
        g[k].at = at;
        g[k].slot = j - j0;
        g[k].start = h.start;
        g[k].len = h.len;
        at += msg_size(y, h.len);
    }
    uint64_t most = 0; /* pieces in a slot */
    for (uint64_t s = 0; st == PREP_OK && s < n_slots; s++) {
        most = first[s + 1] > most ? first[s + 1] : most;
        first[s + 1] += first[s];
        fill[s] = first[s];
    }
    if (st == PREP_OK && most >= UINT32_MAX) {
        snprintf(err, err_bytes, "L%llu round %llu: %llu pieces in one sequence (plan error)",
                 (ull)y->L, (ull)t, (ull)most);
        st = PREP_ERR_INPUT;
    }
    got_t *d = st == PREP_OK ? malloc((n ? n : 1) * sizeof *d) : NULL;
    ord = st == PREP_OK ? malloc((size_t)(most ? most : 1) * sizeof *ord) : NULL;
    if (st == PREP_OK && (!d || !ord))
        st = PREP_ERR_NOMEM;
    for (size_t k = 0; st == PREP_OK && k < n; k++)
        d[fill[g[k].slot]++] = g[k];
    free(g);
    /* 2. each slot in place order, into its shard */
    for (uint64_t j = j0; st == PREP_OK && j < j1; j++) {
        const uint64_t s = global_seq(y, rank, j), kk = s / y->per;
        const size_t a = (size_t)first[j - j0], m = (size_t)(first[j - j0 + 1] - a);
        const got_t *v = d + a;
        if (done[kk])
            continue;
        if (m == 0) {
            snprintf(err, err_bytes, "sequence %llu of L%llu: no piece arrived (plan error)",
                     (ull)s, (ull)y->L);
            st = PREP_ERR_INPUT;
            break;
        }
        size_t n_zero = 0, n_ord = 0;
        for (size_t i = 0; st == PREP_OK && i < m; i++) {
            if (v[i].len > 0) {
                pos[v[i].start] = (uint32_t)i;
                continue;
            }
            if (n_zero == cap_zero) {
                size_t cap = cap_zero ? 2 * cap_zero : 64;
                uint32_t *z = realloc(zero, cap * sizeof *z);
                if (!z) {
                    st = PREP_ERR_NOMEM;
                    break;
                }
                zero = z;
                cap_zero = cap;
            }
            size_t at = n_zero++; /* by start, stable: few, if any */
            for (; at > 0 && v[zero[at - 1]].start > v[i].start; at--)
                zero[at] = zero[at - 1];
            zero[at] = (uint32_t)i;
        }
        if (st != PREP_OK)
            break;
        uint64_t at = 0;
        size_t z = 0;
        for (;;) {
            while (z < n_zero && v[zero[z]].start == at)
                ord[n_ord++] = zero[z++];
            if (at == y->L || n_ord == m)
                break;
            const uint32_t i = pos[at];
            if (i >= m || v[i].start != at || v[i].len == 0)
                break; /* nothing starts here: checked below */
            ord[n_ord++] = i;
            at += v[i].len;
        }
        if (n_ord != m) {
            snprintf(err, err_bytes,
                     "sequence %llu of L%llu: %zu of its %zu pieces follow one another from "
                     "token 0, up to token %llu (plan error)",
                     (ull)s, (ull)y->L, n_ord, m, (ull)at);
            st = PREP_ERR_INPUT;
            break;
        }
        if (out->k != kk) {
            if ((st = out_close(out, err, err_bytes)) != PREP_OK ||
                (st = out_open(out, o, tok, y, kk, err, err_bytes)) != PREP_OK)
                break;
        }
        for (size_t i = 0; st == PREP_OK && i < m; i++) {
            if (i + PREFETCH_AHEAD < m) { /* the pieces are scattered over msg */
                const uint8_t *ahead = msg + v[ord[i + PREFETCH_AHEAD]].at;
                __builtin_prefetch(ahead);
                __builtin_prefetch(ahead + 64);
                __builtin_prefetch(ahead + 128);
            }
            piece_hdr h;
            memcpy(&h, msg + v[ord[i]].at, sizeof h);
            shard_doc sd = {h.start, h.doc_id, h.doc_offset};
            const void *tokens = msg + v[ord[i]].at + sizeof h; /* aligned: messages are */
            if (shard_writer_seq_doc(out->w, &sd) != SHARD_OK ||
                (y->tw == 2 ? shard_writer_seq_tokens16(out->w, tokens, h.len)
                            : shard_writer_seq_tokens(out->w, tokens, h.len)) != SHARD_OK)
                st = PREP_ERR_IO;
        }
        if (st == PREP_OK && shard_writer_seq_end(out->w) != SHARD_OK)
            st = PREP_ERR_IO;
        if (st == PREP_ERR_IO && out->w && shard_writer_errmsg(out->w)[0])
            snprintf(err, err_bytes, "%s", shard_writer_errmsg(out->w));
    }
    free(d);
    free(first);
    free(fill);
    free(pos);
    free(ord);
    free(zero);
    return st;
}

/* ---- the stage ----------------------------------------------------------------------------- */

/* Collective. Which shards of the layout are complete from an earlier run (done[k] = 1), each
 * checked by its writer. */
static int find_done(MPI_Comm comm, const prep_opts *o, const layout_t *y, uint8_t *done) {
    int rank;
    MPI_Comm_rank(comm, &rank);
    for (uint64_t k = 0; k < y->n_shards; k++) {
        done[k] = 0;
        if ((int)(k % (uint64_t)y->n_ranks) != rank)
            continue;
        char path[4200];
        shard_path(path, sizeof path, o, y->L, k);
        done[k] = file_exists(path) && shard_verify(path, NULL, NULL, 0) == SHARD_OK;
    }
    return cluster_allreduce_big(done, y->n_shards, MPI_UINT8_T, MPI_MAX, comm) == CLUSTER_OK
               ? PREP_OK
               : PREP_ERR_MPI;
}

/* Collective. The pieces p (freed here) written: each sent once to the owner of its unit,
 * which reads its units once (serve_all), and round by round to the writers. */
static int write_shards(MPI_Comm comm, const prep_opts *o, const tokenizer *tok, const layout_t *y,
                        pieces_t *p, const uint8_t *done, size_t n_units, double *tm, char *err,
                        size_t err_bytes) {
    double t0 = cluster_now();
    int rank;
    MPI_Comm_rank(comm, &rank);
    const int P = y->n_ranks;
    char msg[PREP_ERRMSG_BYTES] = "";
    out_t out = {NULL, UINT64_MAX};
    /* 1. the pieces of shards not done to their units' owners */
    size_t n = 0;
    for (size_t i = 0; i < p->n; i++)
        if (!done[p->v[i].seq / y->per])
            p->v[n++] = p->v[i];
    int *dest = malloc((n ? n : 1) * sizeof *dest);
    uint64_t *count = malloc((size_t)P * sizeof *count);
    const uint64_t per_round = (uint64_t)P * n_bins(y);
    uint64_t *bytes =
        calloc(y->n_rounds ? y->n_rounds * per_round : 1, sizeof *bytes); /* by bin_index */
    piece_t *grouped = NULL, *asked = NULL;
    size_t n_asked = 0;
    int st = dest && count && bytes ? PREP_OK : PREP_ERR_NOMEM;
    for (size_t i = 0; st == PREP_OK && i < n; i++)
        dest[i] = prep_unit_owner(p->v[i].unit, n_units, P);
    if (st == PREP_OK &&
        prep_group_take((void **)&p->v, n, sizeof *p->v, dest, P, (void **)&grouped, count))
        st = PREP_ERR_NOMEM;
    free(dest);
    free(p->v);
    p->v = NULL;
    p->n = p->cap = 0;
    if (st == PREP_ERR_NOMEM)
        snprintf(msg, sizeof msg, "out of memory for the %llu-token pieces", (ull)y->L);
    if ((st = cluster_agree_msg(comm, st, msg, err, err_bytes, NULL)) == PREP_OK)
        st = prep_exchange(comm, grouped, count, sizeof *grouped, (void **)&asked, &n_asked);
    else
        free(grouped);
    /* 2. every unit read once: round 0 at hand, the others spilled */
    uint8_t *send = NULL;
    spill_t sp = {.fd = -1};
    tm[TM_PIECES] += cluster_now() - t0;
    t0 = cluster_now();
    if (st == PREP_OK) {
        st = serve_all(o, tok, y, rank, asked, n_asked, bytes, &send, &sp, msg, sizeof msg);
        if (st == PREP_ERR_NOMEM)
            snprintf(msg, sizeof msg, "out of memory serving the %llu-token pieces", (ull)y->L);
        st = cluster_agree_msg(comm, st, msg, err, err_bytes, NULL);
    }
    free(asked);
    tm[TM_SERVE] += cluster_now() - t0;
    /* 3. round by round, the tokens to the writers, and their sequences into the shards */
    for (uint64_t t = 0; st == PREP_OK && t < y->n_rounds; t++) {
        if (t > 0) {
            st = spill_round(&sp, y, t, bytes + t * per_round, &send, msg, sizeof msg);
            if (st == PREP_ERR_NOMEM)
                snprintf(msg, sizeof msg, "out of memory for round %llu of L%llu", (ull)t,
                         (ull)y->L);
            if ((st = cluster_agree_msg(comm, st, msg, err, err_bytes, NULL)) != PREP_OK)
                break;
        }
        uint8_t *got = NULL;
        size_t n_got = 0;
        for (int r = 0; r < P; r++) { /* writer r's bytes: its ranges */
            count[r] = 0;
            for (uint64_t b = 0; b < n_bins(y); b++)
                count[r] += bytes[t * per_round + (uint64_t)r * n_bins(y) + b];
        }
        t0 = cluster_now();
        st = prep_exchange(comm, send, count, 1, (void **)&got, &n_got);
        send = NULL;
        tm[TM_SEND] += cluster_now() - t0;
        t0 = cluster_now();
        if (st == PREP_OK)
            st = write_round(o, tok, y, rank, t, done, got, n_got, &out, msg, sizeof msg);
        free(got);
        tm[TM_WRITE] += cluster_now() - t0;
        st = cluster_agree_msg(comm, st, msg, err, err_bytes, NULL);
    }
    free(send);
    spill_free(&sp);
    free(count);
    free(bytes);
    if (st != PREP_OK) {          /* agreed: every rank left at the same step */
        shard_writer_free(out.w); /* leaves FILE.tmp, never a shard under its final name */
        return st;
    }
    t0 = cluster_now();
    st = out_close(&out, msg, sizeof msg);
    tm[TM_WRITE] += cluster_now() - t0;
    return cluster_agree_msg(comm, st, msg, err, err_bytes, NULL);
}

int prep_pack(MPI_Comm comm, const prep_opts *o, const tokenizer *tok, prep_sel **sel, size_t n_sel,
              size_t n_units, uint64_t *n_seqs_out, uint64_t *n_shards_out, char *err,
              size_t err_bytes) {
    int rank, n_ranks;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &n_ranks);
    const prep_recipe *R = &o->recipe;
    char msg[PREP_ERRMSG_BYTES] = "";
    /* the copies and their order are the same at every length: dealt once, and the selected
     * documents are not needed after that */
    copy_t *c = NULL;
    size_t n_c = 0;
    uint64_t total = 0;
    double t0 = cluster_now(), tm[TM_N] = {0};
    int st = copies_by_key(comm, *sel, n_sel, R->seed, &c, &n_c, &total);
    tm[TM_KEYS] = cluster_now() - t0;
    free(*sel);
    *sel = NULL;
    if (st != PREP_OK)
        snprintf(err, err_bytes, "out of memory dealing the copies by key");
    for (int li = 0; li < R->n_seq_lens && st == PREP_OK; li++) {
        const uint64_t L = R->seq_lens[li];
        pieces_t p = {0};
        layout_t y = {.L = L, .n_ranks = n_ranks};
        uint8_t *done = NULL;
        if (li > 0)
            t0 = cluster_now();
        if (R->packing == PREP_PACK_CONCAT) {
            if (plan_concat(c, n_c, L, &p)) {
                snprintf(msg, sizeof msg, "out of memory planning %llu-token sequences", (ull)L);
                st = PREP_ERR_NOMEM;
            }
            y.n_seqs = (total + L - 1) / L;
            st = cluster_agree_msg(comm, st, msg, err, err_bytes, NULL);
        } else {
            st = plan_windows(comm, c, n_c, total, L, R->bestfit_window, R->seed, &p, &y.n_seqs, tm,
                              msg, sizeof msg);
            if (st != PREP_OK)
                st = cluster_agree_msg(comm, st, msg, err, err_bytes, NULL);
        }
        if (li == R->n_seq_lens - 1) { /* the plan of the last length: the copies are done */
            free(c);
            c = NULL;
        }
        if (st != PREP_OK) {
            free(p.v);
            break;
        }
        if (p.n > 0 && p.n < p.cap) { /* the plan is kept through the rounds: exactly */
            piece_t *q = realloc(p.v, p.n * sizeof *q);
            if (q)
                p.v = q;
        }

        /* the layout: shards, writers, rounds */
        y.per = o->shard_tokens / L ? o->shard_tokens / L : 1;
        y.n_shards = (y.n_seqs + y.per - 1) / y.per;
        y.tw = shard_token_bytes(tokenizer_vocab_size(tok));
        y.spr = o->pack_bytes / (L * y.tw);
        if (y.spr == 0)
            y.spr = 1;
        const uint64_t most = local_count(&y, 0);           /* rank 0 writes the most sequences */
        y.n_rounds = most ? (most + y.spr - 1) / y.spr : 1; /* one round, if empty */
        done = calloc(y.n_shards ? y.n_shards : 1, 1);
        if (!done)
            st = PREP_ERR_NOMEM;
        char dir[4200];
        snprintf(dir, sizeof dir, "%s/L%llu", o->output, (ull)L);
        if (st == PREP_OK && rank == 0 && mkdir(dir, 0755) != 0 && errno != EEXIST) {
            snprintf(msg, sizeof msg, "%s: %s", dir, strerror(errno));
            st = PREP_ERR_IO;
        } else if (st == PREP_ERR_NOMEM) {
            snprintf(msg, sizeof msg, "out of memory for the %llu-token packing plan", (ull)L);
        }
        if ((st = cluster_agree_msg(comm, st, msg, err, err_bytes, NULL)) == PREP_OK)
            st = find_done(comm, o, &y, done);
        if (st == PREP_OK) {
            uint64_t n_done = 0;
            for (uint64_t k = 0; k < y.n_shards; k++)
                n_done += done[k];
            if (rank == 0)
                LOG_INFO("L%llu: %llu sequences in %llu shards (%llu from an earlier run), "
                         "planned in %.1f s; %llu round%s of %llu sequences per rank",
                         (ull)L, (ull)y.n_seqs, (ull)y.n_shards, (ull)n_done, cluster_now() - t0,
                         (ull)y.n_rounds, y.n_rounds == 1 ? "" : "s", (ull)y.spr);
            const double t1 = cluster_now();
            st = write_shards(comm, o, tok, &y, &p, done, n_units, tm, err, err_bytes);
            if (st == PREP_OK && rank == 0)
                LOG_INFO("L%llu: shards written in %.1f s", (ull)L, cluster_now() - t1);
            LOG_DEBUG("L%llu pack steps (s): copies by key %.2f, to windows %.2f, bestfit %.2f, "
                      "pieces to owners %.2f, units read %.2f, tokens to writers %.2f, shards "
                      "%.2f",
                      (ull)L, tm[TM_KEYS], tm[TM_WIN_SEND], tm[TM_BESTFIT], tm[TM_PIECES],
                      tm[TM_SERVE], tm[TM_SEND], tm[TM_WRITE]);
            memset(tm, 0, sizeof tm);
        }
        n_seqs_out[li] = y.n_seqs;
        n_shards_out[li] = y.n_shards;
        free(p.v);
        free(done);
    }
    free(c);
    return st;
}
