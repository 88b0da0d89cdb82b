/* test_tokenizer_worst.c - the inputs that make other tokenizers quadratic: 10 MB without
 * whitespace, a 10 MB run of one letter, 1 MB of digits, 1 MB of random bytes (invalid UTF-8),
 * for both tokenizer kinds. Each must finish (ctest's timeout is the guard; speed is measured
 * in tests/bench) and decode back to the input where the tokenizer is lossless. Also the
 * invalid-UTF-8 policy: byte-level keeps the bytes, SentencePiece sees U+FFFD per bad byte.
 * usage: test_tokenizer_worst LLAMA3.json LLAMA2.model */
#include "check.h"
#include "tokenizer.h"

#include <stdlib.h>
#include <string.h>

static uint64_t rng = 7;
static uint32_t next_rand(void) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rng >> 33);
}

static void run(tokenizer *t, tok_ctx *c, const char *name, const char *s, size_t n, int lossless) {
    const uint32_t *ids;
    size_t n_ids;
    int st = tokenizer_encode(c, s, n, NULL, &ids, &n_ids);
    CHECK_EQ_INT(st, TOK_OK);
    CHECK(n_ids > 0 && n_ids <= n + 1);
    uint32_t *copy = malloc(n_ids * 4);
    memcpy(copy, ids, n_ids * 4);
    const char *back;
    size_t m;
    CHECK_EQ_INT(tokenizer_decode(c, copy, n_ids, &back, &m), TOK_OK);
    if (lossless) {
        CHECK(m == n && memcmp(back, s, n) == 0);
    }
    fprintf(stderr, "%s/%s: %zu bytes -> %zu tokens\n",
            tokenizer_kind(t) == TOK_KIND_SPM ? "spm" : "byte-level", name, n, n_ids);
    free(copy);
}

int main(int argc, char **argv) {
    if (argc != 3)
        return 2;
    size_t big = 10u << 20, small = 1u << 20;
    char *buf = malloc(big);
    for (int k = 1; k <= 2; k++) {
        FILE *probe = fopen(argv[k], "rb");
        if (!probe)
            SKIP("asset missing: %s", argv[k]);
        fclose(probe);
        tokenizer *t;
        tok_ctx *c;
        CHECK_EQ_INT(tokenizer_load(argv[k], &t), TOK_OK);
        CHECK_EQ_INT(tok_ctx_create(t, &c), TOK_OK);
        int spm = tokenizer_kind(t) == TOK_KIND_SPM;

        /* 10 MB of letters and punctuation, no whitespace */
        static const char alpha[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ.,;:-_/()";
        for (size_t i = 0; i < big; i++)
            buf[i] = alpha[next_rand() % (sizeof alpha - 1)];
        run(t, c, "no-whitespace-10MB", buf, big, 1);
        memset(buf, 'a', big);
        run(t, c, "one-letter-10MB", buf, big, 1);
        for (size_t i = 0; i < small; i++)
            buf[i] = (char)('0' + next_rand() % 10);
        run(t, c, "digits-1MB", buf, small, 1);
        for (size_t i = 0; i < small; i++)
            buf[i] = (char)(next_rand() & 0xff);
        run(t, c, "random-bytes-1MB", buf, small, !spm);

        /* invalid UTF-8 policy */
        const uint32_t *ids;
        size_t n_ids;
        const char *back;
        size_t m;
        const char bad[] = "a\xff"
                           "b\xc3"; /* a lone 0xff, a truncated sequence at the end */
        CHECK_EQ_INT(tokenizer_encode(c, bad, 4, NULL, &ids, &n_ids), TOK_OK);
        uint32_t keep[64];
        memcpy(keep, ids, n_ids * 4);
        CHECK_EQ_INT(tokenizer_decode(c, keep, n_ids, &back, &m), TOK_OK);
        if (spm) {
            CHECK(m == 8 && !memcmp(back,
                                    "a\xef\xbf\xbd"
                                    "b\xef\xbf\xbd",
                                    8));
        } else {
            CHECK(m == 4 && !memcmp(back, bad, 4));
        }
        /* empty input gives no ids; BOS/EOS only when asked */
        tok_encode_opts o = tok_encode_opts_default();
        CHECK_EQ_INT(tokenizer_encode(c, "", 0, &o, &ids, &n_ids), TOK_OK);
        CHECK_EQ_INT(n_ids, 0);
        o.add_bos = o.add_eos = 1;
        CHECK_EQ_INT(tokenizer_encode(c, "", 0, &o, &ids, &n_ids), TOK_OK);
        CHECK_EQ_INT(n_ids, 2);
        CHECK_EQ_INT(ids[0], tokenizer_bos_id(t));
        CHECK_EQ_INT(ids[1], tokenizer_eos_id(t));
        tok_ctx_free(c);
        tokenizer_free(t);
    }
    free(buf);
    return check_exit("test_tokenizer_worst");
}
