/* fuzz_tokenizer_file.c - libFuzzer target: arbitrary bytes as a tokenizer file (tokenizer.json
 * or SentencePiece .model, told apart by content, as tokenizer_load does). The loader must
 * return a status with a message; a tokenizer it accepts must encode and decode a short text
 * without crashing, and give only ids below its vocabulary size. */
#include "fuzz_file.h"
#include "tokenizer.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[256];
    if (fuzz_file_write("tok", ".bin", data, size, path, sizeof path) != 0)
        return 0;
    tokenizer *t = NULL;
    int st = tokenizer_load(path, &t);
    unlink(path);
    if (st != TOK_OK) {
        if (t && !tokenizer_errmsg(t)[0])
            __builtin_trap();
        tokenizer_free(t);
        return 0;
    }
    static const char text[] = "Hello, world! 12345 \xc3\xa9t\xc3\xa9 <s> \t\n  x";
    tok_ctx *c = NULL;
    tok_encode_opts eo = tok_encode_opts_default();
    eo.parse_special = 1;
    eo.add_bos = 1;
    const uint32_t *ids = NULL;
    size_t n = 0;
    if (tok_ctx_create(t, &c) == TOK_OK &&
        tokenizer_encode(c, text, sizeof text - 1, &eo, &ids, &n) == TOK_OK) {
        uint32_t copy[256];
        size_t m = n < 256 ? n : 256;
        for (size_t i = 0; i < m; i++) {
            if (ids[i] >= tokenizer_vocab_size(t))
                __builtin_trap();
            copy[i] = ids[i];
        }
        const char *back = NULL;
        size_t nb = 0;
        (void)tokenizer_decode(c, copy, m, &back, &nb);
    }
    tok_ctx_free(c);
    tokenizer_free(t);
    return 0;
}
