/* test_concat.c - the concat packing rule (shard_concat_next) and shard_concat_append against a
 * direct model: documents back to back, a new sequence every seq_len tokens, one piece per
 * sequence a document touches, an empty document one empty piece in the open sequence. Random
 * lengths (many empty ones and exact multiples of seq_len) with a fixed seed. */
#include "check.h"
#include "shard.h"
#include "test_util.h"

#include <string.h>

typedef struct {
    uint64_t seq, start, doc, doc_offset, n_tokens;
} piece;

/* The model: the position of a token in the stream of all tokens gives its sequence and its
 * offset there. Returns the number of pieces; *n_seqs the sequences. */
static int model(const uint64_t *len, int n_docs, uint64_t L, piece *out, uint64_t *n_seqs) {
    int n = 0;
    uint64_t pos = 0;
    for (int d = 0; d < n_docs; d++) {
        if (len[d] == 0) { /* at the end of the open sequence (the first one if none) */
            uint64_t seq = pos ? (pos - 1) / L : 0;
            out[n++] = (piece){seq, pos - seq * L, (uint64_t)d, 0, 0};
        }
        for (uint64_t off = 0; off < len[d];) {
            uint64_t room = L - pos % L, take = len[d] - off < room ? len[d] - off : room;
            out[n++] = (piece){pos / L, pos % L, (uint64_t)d, off, take};
            off += take;
            pos += take;
        }
    }
    *n_seqs = pos ? (pos + L - 1) / L : n_docs > 0;
    return n;
}

static void check_cut(const uint64_t *len, int n_docs, uint64_t L, const piece *want, int n_want,
                      uint64_t n_seqs) {
    shard_concat c = shard_concat_init(L);
    int n = 0;
    for (int d = 0; d < n_docs; d++) {
        uint64_t off = 0;
        do {
            int opened;
            uint64_t start, take = shard_concat_next(&c, len[d] - off, &opened, &start);
            CHECK(n < n_want);
            if (n >= n_want)
                return;
            CHECK_EQ_INT(opened, n == 0 || want[n].seq != want[n - 1].seq);
            CHECK_EQ_U64(c.n_seqs - 1, want[n].seq);
            CHECK_EQ_U64(start, want[n].start);
            CHECK_EQ_U64(off, want[n].doc_offset);
            CHECK_EQ_U64(take, want[n].n_tokens);
            off += take;
            n++;
        } while (off < len[d]);
    }
    CHECK_EQ_INT(n, n_want);
    CHECK_EQ_U64(c.n_seqs, n_seqs);
}

/* shard_concat_append into a writer, read back: the model's sequences, pieces and tokens. */
static void check_append(const char *dir, const uint64_t *len, int n_docs, uint64_t L,
                         const piece *want, int n_want, uint64_t n_seqs) {
    char path[4200];
    snprintf(path, sizeof path, "%s/c.shard", dir);
    shard_writer_opts o = shard_writer_opts_default();
    o.vocab_size = 1000;
    o.block_bytes = 4096;
    shard_writer *w;
    CHECK_EQ_INT(shard_writer_create(path, &o, &w), SHARD_OK);
    shard_concat c = shard_concat_init(L);
    uint64_t max_len = 1;
    for (int d = 0; d < n_docs; d++)
        max_len = len[d] > max_len ? len[d] : max_len;
    uint32_t *t = malloc(max_len * sizeof *t); /* (max_len) document d: ids (d + k) % 1000 */
    for (int d = 0; d < n_docs; d++) {
        for (uint64_t k = 0; k < len[d]; k++)
            t[k] = (uint32_t)((uint64_t)d + k) % 1000;
        CHECK_EQ_INT(shard_concat_append(&c, w, t, len[d], (uint64_t)d), SHARD_OK);
    }
    CHECK_EQ_INT(shard_concat_finish(&c, w), SHARD_OK);
    CHECK_EQ_INT(shard_writer_close(w), SHARD_OK);
    shard_writer_free(w);
    free(t);
    shard_reader *r;
    CHECK_EQ_INT(shard_reader_open(path, &r), SHARD_OK);
    CHECK_EQ_U64(shard_reader_info(r)->n_seqs, n_seqs);
    int n = 0;
    for (uint64_t i = 0; i < shard_reader_info(r)->n_seqs; i++) {
        shard_seq s;
        CHECK_EQ_INT(shard_reader_read(r, i, &s), SHARD_OK);
        for (uint64_t p = 0; p < s.n_docs && n < n_want; p++, n++) {
            const piece *x = &want[n];
            uint64_t end = p + 1 < s.n_docs ? s.docs[p + 1].start : s.n_tokens;
            CHECK_EQ_U64(i, x->seq);
            CHECK_EQ_U64(s.docs[p].start, x->start);
            CHECK_EQ_U64(s.docs[p].doc_id, x->doc);
            CHECK_EQ_U64(s.docs[p].doc_offset, x->doc_offset);
            CHECK_EQ_U64(end - s.docs[p].start, x->n_tokens);
            for (uint64_t k = 0; k < x->n_tokens && s.docs[p].start + k < s.n_tokens; k++)
                CHECK_EQ_U64(((const uint16_t *)s.tokens)[s.docs[p].start + k],
                             (x->doc + x->doc_offset + k) % 1000);
        }
    }
    CHECK_EQ_INT(n, n_want);
    shard_reader_free(r);
}

int main(void) {
    char dir[4200];
    test_tmpdir(dir, sizeof dir);
    uint64_t rng = 7;
    const uint64_t Ls[] = {1, 2, 7, 64, 1000};
    enum { MAX_DOCS = 60 };
    static piece want[MAX_DOCS * 3010];
    for (int round = 0; round < 60; round++) {
        uint64_t L = Ls[round % 5], n_seqs;
        int n_docs = 1 + (int)(test_rand(&rng) % MAX_DOCS);
        uint64_t len[MAX_DOCS];
        for (int d = 0; d < n_docs; d++) {
            uint64_t kind = test_rand(&rng) % 4;
            len[d] = kind == 0   ? 0
                     : kind == 1 ? L * (1 + test_rand(&rng) % 3)
                                 : test_rand(&rng) % (3 * L + 5);
        }
        int n = model(len, n_docs, L, want, &n_seqs);
        check_cut(len, n_docs, L, want, n, n_seqs);
        check_append(dir, len, n_docs, L, want, n, n_seqs);
    }
    const uint64_t edge[][4] = {{0, 0, 0, 0}, {4, 0, 4, 0}, {0, 3, 1, 0}, {8, 0, 0, 1}};
    for (int e = 0; e < 4; e++) { /* empty documents first, after a full sequence, at the end */
        uint64_t n_seqs;
        int n = model(edge[e], 4, 4, want, &n_seqs);
        check_cut(edge[e], 4, 4, want, n, n_seqs);
        check_append(dir, edge[e], 4, 4, want, n, n_seqs);
    }
    test_rmdir(dir);
    return check_exit("test_shard_concat");
}
