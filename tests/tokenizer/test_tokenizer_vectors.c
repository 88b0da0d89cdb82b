/* test_tokenizer_vectors.c - llama.cpp's tokenizer test vectors (ids produced by HF tokenizers):
 * every case must give exactly the listed ids, and decode back to the input.
 * usage: test_tokenizer_vectors TOKENIZER VECTORS.inp VECTORS.out [--no-roundtrip] */
#include "check.h"
#include "tokenizer.h"

#include <stdlib.h>
#include <string.h>

static char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)sz + 1);
    if (buf && fread(buf, 1, (size_t)sz, f) != (size_t)sz) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf)
        buf[sz] = '\0';
    *n = (size_t)sz;
    return buf;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: test_tokenizer_vectors TOKENIZER INP OUT [--no-roundtrip]\n");
        return 2;
    }
    int roundtrip = !(argc > 4 && !strcmp(argv[4], "--no-roundtrip"));
    size_t n_inp, n_out;
    char *inp = slurp(argv[2], &n_inp), *out = slurp(argv[3], &n_out);
    FILE *probe = fopen(argv[1], "rb");
    if (!inp || !out || !probe)
        SKIP("asset missing: %s, %s or %s", argv[1], argv[2], argv[3]);
    fclose(probe);
    tokenizer *t;
    tok_ctx *c = NULL;
    int st = tokenizer_load(argv[1], &t);
    if (st != TOK_OK)
        fprintf(stderr, "load: %s\n", tokenizer_errmsg(t));
    CHECK_EQ_INT(st, TOK_OK);
    CHECK_EQ_INT(tok_ctx_create(t, &c), TOK_OK);
    if (st != TOK_OK || !c)
        return check_exit("test_tokenizer_vectors");

    static const char SEP[] = "\n__ggml_vocab_test__\n";
    char *p = inp, *q = out;
    int n_cases = 0, n_bad = 0;
    for (char *end; (end = strstr(p, SEP)); p = end + strlen(SEP)) {
        char *eol = strchr(q, '\n');
        if (!eol)
            break;
        *eol = '\0';
        uint32_t want[4096];
        size_t n_want = 0;
        for (char *s = q; *s;) {
            char *e;
            unsigned long v = strtoul(s, &e, 10);
            if (e == s)
                break;
            want[n_want++] = (uint32_t)v;
            s = e;
        }
        q = eol + 1;
        const uint32_t *ids;
        size_t n_ids;
        CHECK_EQ_INT(tokenizer_encode(c, p, (size_t)(end - p), NULL, &ids, &n_ids), TOK_OK);
        int ok = n_ids == n_want && !memcmp(ids, want, n_ids * 4);
        if (!ok) {
            n_bad++;
            fprintf(stderr, "case %d %.*s\n  want:", n_cases,
                    (int)(end - p) > 60 ? 60 : (int)(end - p), p);
            for (size_t k = 0; k < n_want; k++)
                fprintf(stderr, " %u", want[k]);
            fprintf(stderr, "\n  got: ");
            for (size_t k = 0; k < n_ids; k++)
                fprintf(stderr, " %u", ids[k]);
            fprintf(stderr, "\n");
        }
        if (roundtrip) {
            const char *text;
            size_t m;
            CHECK_EQ_INT(tokenizer_decode(c, ids, n_ids, &text, &m), TOK_OK);
            if (m != (size_t)(end - p) || memcmp(text, p, m) != 0) {
                n_bad++;
                fprintf(stderr, "case %d: decode(encode(x)) != x\n", n_cases);
            }
        }
        n_cases++;
    }
    fprintf(stderr, "%s: %d of %d cases exact\n", argv[2], n_cases - n_bad / 1, n_cases);
    CHECK_EQ_INT(n_bad, 0);
    CHECK_EQ_INT(n_cases, 46);
    tok_ctx_free(c);
    tokenizer_free(t);
    free(inp);
    free(out);
    return check_exit("test_tokenizer_vectors");
}
