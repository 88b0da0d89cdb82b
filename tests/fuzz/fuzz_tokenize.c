/* fuzz_tokenize.c - libFuzzer target: arbitrary bytes through both tokenizers (Llama 3
 * byte-level, Llama 2 SentencePiece), encode then decode. Traps on a crash-free violation of
 * the contract: byte-level must give the bytes back; SentencePiece must give valid UTF-8 input
 * back unless it holds U+2581 "▁", which SentencePiece itself cannot tell from a space. The first
 * byte picks options (parse_special, BOS/EOS). Tokenizers come from $LONGCTX_ASSETS (default:
 * ../shared/assets beside the repository); without them, nothing. */
#include "tokenizer.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static tokenizer *tok[2];
static tok_ctx *ctx[2];
static int loaded;

static void load(void) {
    loaded = 1;
    const char *dir = getenv("LONGCTX_ASSETS");
    if (!dir || !*dir)
        dir = LONGCTX_ASSETS_DEFAULT;
    const char *names[2] = {"tokenizers/llama3/tokenizer.json",
                            "tokenizers/llama2/tokenizer.model"};
    for (int k = 0; k < 2; k++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, names[k]);
        if (tokenizer_load(path, &tok[k]) != TOK_OK || tok_ctx_create(tok[k], &ctx[k]) != TOK_OK) {
            fprintf(stderr, "fuzz_tokenize: SKIP: cannot load %s\n", path);
            tokenizer_free(tok[k]);
            tok[k] = NULL;
        }
    }
}

static int valid_utf8(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (!len || i + len > n)
            return 0;
        uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1fu) : len == 3 ? (c & 0x0fu) : (c & 7u);
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3fu);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
            cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += len;
    }
    return 1;
}

static int has_space_mark(const char *s, size_t n) {
    for (size_t i = 0; i + 3 <= n; i++)
        if (!memcmp(s + i, "\xe2\x96\x81", 3))
            return 1;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!loaded)
        load();
    if (size == 0)
        return 0;
    tok_encode_opts o = tok_encode_opts_default();
    o.parse_special = data[0] & 1;
    o.add_bos = (data[0] >> 1) & 1;
    o.add_eos = (data[0] >> 2) & 1;
    const char *text = (const char *)data + 1;
    size_t n = size - 1;
    for (int k = 0; k < 2; k++) {
        if (!tok[k])
            continue;
        const uint32_t *ids;
        size_t n_ids;
        if (tokenizer_encode(ctx[k], text, n, &o, &ids, &n_ids) != TOK_OK)
            __builtin_trap();
        uint32_t *copy = malloc(n_ids * 4 + 4);
        if (n_ids)
            memcpy(copy, ids, n_ids * 4);
        for (size_t i = 0; i < n_ids; i++)
            if (copy[i] >= tokenizer_vocab_size(tok[k]))
                __builtin_trap();
        const char *back;
        size_t m;
        if (tokenizer_decode(ctx[k], copy, n_ids, &back, &m) != TOK_OK)
            __builtin_trap();
        int plain = !o.parse_special && !o.add_bos && !o.add_eos;
        int lossless = tokenizer_kind(tok[k]) == TOK_KIND_BYTE_LEVEL ||
                       (valid_utf8((const uint8_t *)text, n) && !has_space_mark(text, n));
        if (plain && lossless && (m != n || memcmp(back, text, n) != 0))
            __builtin_trap();
        free(copy);
    }
    return 0;
}
