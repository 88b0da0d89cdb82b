/* test_roundtrip.c - random sequences written, read back and compared; one-shot, streaming and
 * token-at-a-time writers give identical files; writer argument errors. */
#include "check.h"
#include "shard.h"
#include "test_util.h"

#include <string.h>

typedef struct {
    uint32_t *tokens; /* (n_tokens) */
    uint64_t n_tokens;
    shard_doc *docs; /* (n_docs) */
    uint64_t n_docs;
} seq_t;

/* Random corpus: empty sequences, 1-token documents, long sequences, ids over the whole vocab.*/
static seq_t *make_seqs(uint64_t seed, uint32_t vocab, int n, uint64_t long_len, uint64_t *rng) {
    *rng = seed;
    seq_t *s = calloc((size_t)n, sizeof *s);
    uint64_t doc_id = 1000;
    for (int i = 0; i < n; i++) {
        uint64_t kind = test_rand(rng) % 8, len;
        if (kind == 0)
            len = 0;
        else if (kind == 1)
            len = 1;
        else if (kind == 2 && long_len)
            len = long_len;
        else
            len = 1 + test_rand(rng) % 3000;
        s[i].n_tokens = len;
        s[i].tokens = malloc((len ? len : 1) * sizeof(uint32_t));
        for (uint64_t k = 0; k < len; k++) {
            uint64_t r = test_rand(rng);
            /* mostly small ids (compressible), some at the top of the vocabulary */
            s[i].tokens[k] = (uint32_t)(r % 8 == 0 ? vocab - 1 - (r >> 32) % 16 : (r >> 8) % vocab);
        }
        uint64_t n_docs = len == 0 ? test_rand(rng) % 2 : 1 + test_rand(rng) % 20;
        if (kind == 1)
            n_docs = 1;
        s[i].docs = malloc((n_docs ? n_docs : 1) * sizeof(shard_doc));
        uint64_t start = 0;
        for (uint64_t d = 0; d < n_docs; d++) {
            if (d > 0 && len > 0)
                start += test_rand(rng) % (len - start + 1);
            s[i].docs[d].start = d == 0 ? 0 : start;
            s[i].docs[d].doc_id = doc_id++;
            s[i].docs[d].doc_offset = test_rand(rng) % 1000000;
        }
        s[i].n_docs = n_docs;
    }
    return s;
}

static void free_seqs(seq_t *s, int n) {
    for (int i = 0; i < n; i++) {
        free(s[i].tokens);
        free(s[i].docs);
    }
    free(s);
}

enum { ONE_SHOT, STREAMING, TOKEN_AT_A_TIME, STREAMING16 };

static int g_threads = 1; /* shard_writer_opts.threads of write_shard */

static int write_shard(const char *path, uint32_t vocab, uint64_t block_bytes, int mode,
                       const seq_t *s, int n) {
    shard_writer_opts o = shard_writer_opts_default();
    o.vocab_size = vocab;
    o.block_bytes = block_bytes;
    o.threads = g_threads;
    o.meta_json = "{\"recipe\":\"test\",\"seed\":7}";
    shard_writer *w;
    int st = shard_writer_create(path, &o, &w);
    for (int i = 0; st == SHARD_OK && i < n; i++) {
        if (mode == ONE_SHOT) {
            st = shard_writer_append(w, s[i].tokens, s[i].n_tokens, s[i].docs, s[i].n_docs);
            continue;
        }
        /* streaming: docs first, then tokens in pieces (or one by one) */
        for (uint64_t d = 0; st == SHARD_OK && d < s[i].n_docs; d++)
            st = shard_writer_seq_doc(w, &s[i].docs[d]);
        uint64_t step = mode == TOKEN_AT_A_TIME ? 1 : 977;
        for (uint64_t k = 0; st == SHARD_OK && k < s[i].n_tokens; k += step) {
            uint64_t m = s[i].n_tokens - k < step ? s[i].n_tokens - k : step;
            if (mode != STREAMING16) {
                st = shard_writer_seq_tokens(w, s[i].tokens + k, m);
                continue;
            }
            uint16_t t16[977]; /* the 16-bit form (ids below 65536 only) */
            for (uint64_t j = 0; j < m; j++)
                t16[j] = (uint16_t)s[i].tokens[k + j];
            st = shard_writer_seq_tokens16(w, t16, m);
        }
        if (st == SHARD_OK)
            st = shard_writer_seq_end(w);
    }
    if (st == SHARD_OK)
        st = shard_writer_close(w);
    if (st != SHARD_OK)
        fprintf(stderr, "write_shard: %s\n", shard_writer_errmsg(w));
    shard_writer_free(w);
    return st;
}

/* mapped: through shard_reader_open_mapped (blocks from an mmap of the file), else pread */
static void check_read_back(const char *path, uint32_t vocab, const seq_t *s, int n, uint64_t *rng,
                            int mapped) {
    shard_reader *r;
    int st = mapped ? shard_reader_open_mapped(path, &r) : shard_reader_open(path, &r);
    CHECK_EQ_INT(st, SHARD_OK);
    if (st != SHARD_OK) {
        fprintf(stderr, "%s\n", shard_reader_errmsg(r));
        shard_reader_free(r);
        return;
    }
    const shard_info *in = shard_reader_info(r);
    uint64_t n_tokens = 0, n_docs = 0;
    for (int i = 0; i < n; i++) {
        n_tokens += s[i].n_tokens;
        n_docs += s[i].n_docs;
    }
    CHECK_EQ_U64(in->n_seqs, (uint64_t)n);
    CHECK_EQ_U64(in->n_tokens, n_tokens);
    CHECK_EQ_U64(in->n_docs, n_docs);
    CHECK_EQ_U64(in->n_doc_starts, (uint64_t)n);
    CHECK_EQ_INT(in->vocab_size, vocab);
    CHECK_EQ_INT(in->token_bytes, vocab <= 65535 ? 2 : 4);
    CHECK(strstr(shard_reader_meta(r), "\"recipe\":\"test\"") != NULL);
    CHECK(strstr(shard_reader_meta(r), "\"longctx_version\"") != NULL);

    /* in order, then in random order (crossing the block cache) */
    uint32_t *ids = malloc(200000 * sizeof *ids);
    int bad = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (int j = 0; j < n; j++) {
            int i = pass == 0 ? j : (int)(test_rand(rng) % (uint64_t)n);
            shard_seq q;
            if (shard_reader_read(r, (uint64_t)i, &q) != SHARD_OK) {
                bad++;
                continue;
            }
            shard_tokens_to_u32(q.tokens, in->token_bytes, q.n_tokens, ids);
            if (q.n_tokens != s[i].n_tokens || q.n_docs != s[i].n_docs || q.n_doc_starts != 1 ||
                (q.n_tokens && memcmp(ids, s[i].tokens, q.n_tokens * 4) != 0) ||
                (q.n_docs && memcmp(q.docs, s[i].docs, q.n_docs * sizeof(shard_doc)) != 0))
                bad++;
            uint64_t nt, nd;
            uint32_t ns;
            if (shard_reader_seq_size(r, (uint64_t)i, &nt, &nd, &ns) != SHARD_OK ||
                nt != s[i].n_tokens || nd != s[i].n_docs || ns != 1)
                bad++;
        }
    }
    CHECK_EQ_INT(bad, 0);
    shard_seq q;
    CHECK_EQ_INT(shard_reader_read(r, (uint64_t)n, &q), SHARD_ERR_ARG);
    free(ids);
    shard_reader_free(r);

    shard_verify_report rep;
    char msg[512];
    st = shard_verify(path, &rep, msg, sizeof msg);
    CHECK_EQ_INT(st, SHARD_OK);
    if (st != SHARD_OK)
        fprintf(stderr, "verify: %s\n", msg);
    CHECK_EQ_U64(rep.n_blocks_bad, 0);
}

static int same_file(const char *a, const char *b) {
    size_t na = 0, nb = 0;
    unsigned char *pa = test_read_file(a, &na), *pb = test_read_file(b, &nb);
    int same = pa && pb && na == nb && memcmp(pa, pb, na) == 0;
    free(pa);
    free(pb);
    return same;
}

static void test_corpus(const char *dir, uint32_t vocab, int n, uint64_t long_len) {
    uint64_t rng;
    seq_t *s = make_seqs(42 + vocab, vocab, n, long_len, &rng);
    const uint64_t blocks[] = {1, 4096, 1u << 20};
    for (size_t b = 0; b < 3; b++) {
        char p1[4200], p2[4200], p3[4200];
        snprintf(p1, sizeof p1, "%s/one_%u_%zu.shard", dir, vocab, b);
        snprintf(p2, sizeof p2, "%s/stream_%u_%zu.shard", dir, vocab, b);
        snprintf(p3, sizeof p3, "%s/tok_%u_%zu.shard", dir, vocab, b);
        CHECK_EQ_INT(write_shard(p1, vocab, blocks[b], ONE_SHOT, s, n), SHARD_OK);
        CHECK_EQ_INT(write_shard(p2, vocab, blocks[b], STREAMING, s, n), SHARD_OK);
        check_read_back(p1, vocab, s, n, &rng, 0);
        check_read_back(p1, vocab, s, n, &rng, 1);
        CHECK(same_file(p1, p2));
        if (vocab <= SHARD_U16_MAX_VOCAB) { /* 16-bit input: the same bytes */
            CHECK_EQ_INT(write_shard(p2, vocab, blocks[b], STREAMING16, s, n), SHARD_OK);
            CHECK(same_file(p1, p2));
        }
        /* compressed on 2 and 5 threads (one block per sequence at block_bytes 1, many
           sequences per block at 4096): the same bytes */
        for (int t = 2; t <= 5; t += 3) {
            g_threads = t;
            CHECK_EQ_INT(write_shard(p2, vocab, blocks[b], STREAMING, s, n), SHARD_OK);
            CHECK(same_file(p1, p2));
            g_threads = 1;
        }
        if (long_len == 0) { /* token-at-a-time is slow on 131072-token sequences */
            CHECK_EQ_INT(write_shard(p3, vocab, blocks[b], TOKEN_AT_A_TIME, s, n), SHARD_OK);
            CHECK(same_file(p1, p3));
        }
    }
    free_seqs(s, n);
}

static void test_empty_shard(const char *dir) {
    char p[4200];
    snprintf(p, sizeof p, "%s/empty.shard", dir);
    CHECK_EQ_INT(write_shard(p, 32000, 1u << 20, ONE_SHOT, NULL, 0), SHARD_OK);
    check_read_back(p, 32000, NULL, 0, &(uint64_t){1}, 0);
    /* a shard of empty sequences only */
    seq_t e[3] = {{NULL, 0, NULL, 0}, {NULL, 0, NULL, 0}, {NULL, 0, NULL, 0}};
    snprintf(p, sizeof p, "%s/empty_seqs.shard", dir);
    CHECK_EQ_INT(write_shard(p, 128256, 1, ONE_SHOT, e, 3), SHARD_OK);
    check_read_back(p, 128256, e, 3, &(uint64_t){1}, 1);
    g_threads = 3;
    CHECK_EQ_INT(write_shard(p, 128256, 1, ONE_SHOT, e, 3), SHARD_OK);
    check_read_back(p, 128256, e, 3, &(uint64_t){1}, 0);
    snprintf(p, sizeof p, "%s/empty_t.shard", dir);
    CHECK_EQ_INT(write_shard(p, 32000, 1u << 20, ONE_SHOT, NULL, 0), SHARD_OK);
    check_read_back(p, 32000, NULL, 0, &(uint64_t){1}, 1);
    g_threads = 1;
}

static void test_writer_errors(const char *dir) {
    char p[4200];
    snprintf(p, sizeof p, "%s/err.shard", dir);
    shard_writer_opts o = shard_writer_opts_default();
    shard_writer *w;

    o.vocab_size = 0;
    CHECK_EQ_INT(shard_writer_create(p, &o, &w), SHARD_ERR_ARG);
    CHECK(strstr(shard_writer_errmsg(w), "vocab_size") != NULL);
    shard_writer_free(w);

    o.vocab_size = 100;
    o.meta_json = "[1,2]";
    CHECK_EQ_INT(shard_writer_create(p, &o, &w), SHARD_ERR_ARG);
    shard_writer_free(w);
    o.meta_json = "{not json";
    CHECK_EQ_INT(shard_writer_create(p, &o, &w), SHARD_ERR_ARG);
    shard_writer_free(w);

    o.meta_json = NULL;
    uint32_t ids[3] = {1, 100, 2};
    CHECK_EQ_INT(shard_writer_create(p, &o, &w), SHARD_OK);
    CHECK_EQ_INT(shard_writer_append(w, ids, 3, NULL, 0), SHARD_ERR_ARG);
    CHECK(strstr(shard_writer_errmsg(w), "id 100 >= vocab_size 100") != NULL);
    CHECK_EQ_INT(shard_writer_close(w), SHARD_ERR_ARG); /* sticky */
    shard_writer_free(w);
    CHECK(access(p, F_OK) != 0); /* nothing half-written at the final path */
    CHECK(access("err.shard.tmp", F_OK) != 0);

    shard_doc d[2] = {{5, 1, 0}, {2, 2, 0}};
    CHECK_EQ_INT(shard_writer_create(p, &o, &w), SHARD_OK);
    CHECK_EQ_INT(shard_writer_append(w, ids, 1, d, 2), SHARD_ERR_ARG); /* out of order */
    shard_writer_free(w);
    CHECK_EQ_INT(shard_writer_create(p, &o, &w), SHARD_OK);
    CHECK_EQ_INT(shard_writer_append(w, ids, 1, d, 1), SHARD_ERR_ARG); /* start past end */
    shard_writer_free(w);

    /* 16-bit ids: checked against the vocabulary too, into a 4-byte shard widened */
    uint16_t ids16[3] = {1, 99, 100};
    CHECK_EQ_INT(shard_writer_create(p, &o, &w), SHARD_OK);
    CHECK_EQ_INT(shard_writer_seq_tokens16(w, ids16, 2), SHARD_OK);
    CHECK_EQ_INT(shard_writer_seq_tokens16(w, ids16, 3), SHARD_ERR_ARG);
    CHECK(strstr(shard_writer_errmsg(w), "token 4: id 100 >= vocab_size 100") != NULL);
    shard_writer_free(w);
    o.vocab_size = 128256;
    CHECK_EQ_INT(shard_writer_create(p, &o, &w), SHARD_OK);
    uint32_t wide[3] = {1, 99, 100};
    CHECK_EQ_INT(shard_writer_seq_tokens16(w, ids16, 3), SHARD_OK);
    CHECK_EQ_INT(shard_writer_seq_end(w), SHARD_OK);
    CHECK_EQ_INT(shard_writer_close(w), SHARD_OK);
    shard_writer_free(w);
    shard_reader *rw;
    shard_seq sq;
    CHECK_EQ_INT(shard_reader_open(p, &rw), SHARD_OK);
    CHECK_EQ_INT(shard_reader_read(rw, 0, &sq), SHARD_OK);
    CHECK_EQ_U64(sq.n_tokens, 3);
    CHECK(shard_reader_info(rw)->token_bytes == 4 && memcmp(sq.tokens, wide, sizeof wide) == 0);
    shard_reader_free(rw);
    CHECK_EQ_INT(shard_token_bytes(SHARD_U16_MAX_VOCAB), 2);
    CHECK_EQ_INT(shard_token_bytes(SHARD_U16_MAX_VOCAB + 1), 4);
    o.vocab_size = 100;

    /* close with an unfinished streamed sequence */
    CHECK_EQ_INT(shard_writer_create(p, &o, &w), SHARD_OK);
    CHECK_EQ_INT(shard_writer_seq_tokens(w, ids, 1), SHARD_OK);
    CHECK_EQ_INT(shard_writer_close(w), SHARD_ERR_ARG);
    shard_writer_free(w);

    /* reader errors */
    shard_reader *r;
    CHECK_EQ_INT(shard_reader_open("/nonexistent/x.shard", &r), SHARD_ERR_IO);
    CHECK(strstr(shard_reader_errmsg(r), "/nonexistent/x.shard") != NULL);
    shard_reader_free(r);
    CHECK_EQ_INT(test_write_file(p, "hello", 5), 0);
    CHECK_EQ_INT(shard_reader_open(p, &r), SHARD_ERR_CORRUPT);
    shard_reader_free(r);
}

int main(void) {
    char dir[4096];
    test_tmpdir(dir, sizeof dir);
    test_corpus(dir, 32000, 60, 0);
    test_corpus(dir, 128256, 60, 0);
    test_corpus(dir, 32000, 12, 131072);
    test_corpus(dir, 128256, 12, 131072);
    test_corpus(dir, 65535, 20, 0); /* the largest uint16 vocabulary */
    test_corpus(dir, 65536, 20, 0); /* the smallest uint32 one */
    test_empty_shard(dir);
    test_writer_errors(dir);
    test_rmdir(dir);
    return check_exit("test_shard_roundtrip");
}
