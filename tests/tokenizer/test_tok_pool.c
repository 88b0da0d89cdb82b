/* test_tok_pool.c - the tokenize thread pool: for 1 to 5 threads and batches of 0, 1 and many
 * documents (empty ones among them), each document's ids equal tokenizer_encode's on one
 * tok_ctx, in input order, and a pool encodes batch after batch. */
#include "check.h"
#include "tokenizer.h"

#include <stdlib.h>
#include <string.h>

#define N_DOCS 300

int main(void) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizers/llama3/tokenizer.json", check_assets_dir());
    FILE *probe = fopen(path, "rb");
    if (!probe)
        SKIP("asset missing: %s", path);
    fclose(probe);
    tokenizer *t;
    CHECK_EQ_INT(tokenizer_load(path, &t), TOK_OK);
    tok_ctx *ref;
    CHECK_EQ_INT(tok_ctx_create(t, &ref), TOK_OK);

    /* documents of varied sizes (fixed seed), every 7th one empty */
    static const char *words[] = {"the ", "Zürich ", "42 ", "don't ", "  ",
                                  "\n",   "日本語 ", "<s>", "αβγ ",   "tokenizer "};
    char *text[N_DOCS];
    tok_text docs[N_DOCS];
    uint32_t seed = 12345;
    for (int i = 0; i < N_DOCS; i++) {
        seed = seed * 1103515245u + 12345u;
        int n_words = i % 7 == 0 ? 0 : (int)(seed >> 16) % 200;
        text[i] = malloc(16 * (size_t)n_words + 1);
        size_t n = 0;
        for (int k = 0; k < n_words; k++) {
            seed = seed * 1103515245u + 12345u;
            const char *w = words[(seed >> 16) % 10];
            memcpy(text[i] + n, w, strlen(w));
            n += strlen(w);
        }
        text[i][n] = '\0';
        docs[i].text = text[i];
        docs[i].n_bytes = n;
    }
    tok_encode_opts eo = tok_encode_opts_default();
    eo.add_bos = 1;

    tok_pool *p = (tok_pool *)(void *)&seed; /* create must set it to NULL on failure */
    CHECK_EQ_INT(tok_pool_create(t, 0, &p), TOK_ERR_ARG);
    CHECK(p == NULL);
    for (int nt = 1; nt <= 5; nt++) {
        CHECK_EQ_INT(tok_pool_create(t, nt, &p), TOK_OK);
        /* batches of 0, 1, all but two and 17 documents, starting at different documents */
        static const size_t first[] = {0, 1, 2, 3}, count[] = {0, 1, N_DOCS - 2, 17};
        for (size_t s = 0; s < sizeof first / sizeof *first; s++) {
            const tok_text *batch = docs + first[s];
            CHECK_EQ_INT(tok_pool_encode(p, batch, count[s], &eo), TOK_OK);
            for (size_t i = 0; i < count[s]; i++) {
                const uint32_t *want;
                size_t n_want, n_got;
                CHECK_EQ_INT(
                    tokenizer_encode(ref, batch[i].text, batch[i].n_bytes, &eo, &want, &n_want),
                    TOK_OK);
                const uint32_t *got = tok_pool_ids(p, i, &n_got);
                CHECK_EQ_INT(n_got, n_want);
                CHECK(n_got == n_want && (n_got == 0 || memcmp(got, want, 4 * n_got) == 0));
            }
        }
        size_t n_none;
        CHECK(tok_pool_ids(p, 17, &n_none) == NULL && n_none == 0); /* past the last batch */
        tok_pool_free(p);
    }
    tok_pool_free(NULL);
    for (int i = 0; i < N_DOCS; i++)
        free(text[i]);
    tok_ctx_free(ref);
    tokenizer_free(t);
    return check_exit("test_tok_pool");
}
