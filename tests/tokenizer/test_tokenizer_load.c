/* test_tokenizer_load.c - what the loaders refuse, and how: every unsupported feature is an
 * error naming it (TOK_ERR_UNSUPP), malformed files are TOK_ERR_FORMAT with a place, and a
 * missing file is TOK_ERR_IO. Also the facts of the real tokenizers (vocab sizes, BOS/EOS). */
#include "check.h"
#include "tokenizer.h"

#include <stdlib.h>
#include <string.h>

static char dir[256];

static int load_text(const char *name, const char *text, char *msg, size_t msg_n) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    fwrite(text, 1, strlen(text), f);
    fclose(f);
    tokenizer *t;
    int st = tokenizer_load(path, &t);
    snprintf(msg, msg_n, "%s", tokenizer_errmsg(t));
    tokenizer_free(t);
    return st;
}

#define BPE_HEAD                                                                                   \
    "{\"added_tokens\":[],\"normalizer\":null,"                                                    \
    "\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":true},"

int main(void) {
    snprintf(dir, sizeof dir, "%s/longctx-tokload-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir))
        return 1;
    char msg[512];
    tokenizer *t;

    CHECK_EQ_INT(tokenizer_load("/nonexistent/tokenizer.json", &t), TOK_ERR_IO);
    CHECK(strstr(tokenizer_errmsg(t), "/nonexistent/tokenizer.json") != NULL);
    tokenizer_free(t);

    CHECK_EQ_INT(load_text("bad.json", "{\"model\": {\"type\": \"BPE\",", msg, sizeof msg),
                 TOK_ERR_FORMAT);
    CHECK(strstr(msg, "offset") != NULL);
    CHECK_EQ_INT(load_text("unigram.json", "{\"model\":{\"type\":\"Unigram\",\"vocab\":[]}}", msg,
                           sizeof msg),
                 TOK_ERR_UNSUPP);
    CHECK(strstr(msg, "Unigram") != NULL);
    CHECK_EQ_INT(load_text("dropout.json",
                           BPE_HEAD "\"model\":{\"type\":\"BPE\",\"dropout\":0.1,\"vocab\":{},"
                                    "\"merges\":[]}}",
                           msg, sizeof msg),
                 TOK_ERR_UNSUPP);
    CHECK(strstr(msg, "dropout") != NULL);
    CHECK_EQ_INT(
        load_text("regex.json",
                  "{\"normalizer\":null,\"pre_tokenizer\":{\"type\":\"Sequence\","
                  "\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":\"\\\\w+\"},"
                  "\"behavior\":\"Isolated\",\"invert\":false},{\"type\":\"ByteLevel\","
                  "\"add_prefix_space\":false,\"use_regex\":false}]},"
                  "\"model\":{\"type\":\"BPE\",\"vocab\":{},\"merges\":[]}}",
                  msg, sizeof msg),
        TOK_ERR_UNSUPP);
    CHECK(strstr(msg, "\\w+") != NULL);
    CHECK_EQ_INT(load_text("nfc.json",
                           "{\"normalizer\":{\"type\":\"NFC\"},\"pre_tokenizer\":null,"
                           "\"model\":{\"type\":\"BPE\",\"vocab\":{},\"merges\":[]}}",
                           msg, sizeof msg),
                 TOK_ERR_UNSUPP);
    CHECK_EQ_INT(load_text("prefix.json",
                           "{\"normalizer\":null,\"pre_tokenizer\":{\"type\":\"ByteLevel\","
                           "\"add_prefix_space\":true},\"model\":{\"type\":\"BPE\",\"vocab\":{},"
                           "\"merges\":[]}}",
                           msg, sizeof msg),
                 TOK_ERR_UNSUPP);
    CHECK(strstr(msg, "add_prefix_space") != NULL);
    /* a byte-level vocabulary must cover all 256 bytes */
    CHECK_EQ_INT(load_text("bytes.json",
                           BPE_HEAD
                           "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}}",
                           msg, sizeof msg),
                 TOK_ERR_FORMAT);
    CHECK(strstr(msg, "byte 0x00") != NULL);
    /* a merge whose parts are not in the vocab */
    CHECK_EQ_INT(
        load_text("merge.json",
                  "{\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":"
                  "\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"\xe2\x96\x81\"}]},"
                  "\"pre_tokenizer\":null,\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},"
                  "\"merges\":[\"a b\"]}}",
                  msg, sizeof msg),
        TOK_ERR_FORMAT);
    CHECK(strstr(msg, "merges[0]") != NULL);
    /* not protobuf either */
    CHECK_EQ_INT(load_text("junk.model", "\xff\xff\xff\xff garbage", msg, sizeof msg),
                 TOK_ERR_FORMAT);

    /* the real tokenizers */
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizers/llama3/tokenizer.json", check_assets_dir());
    FILE *probe = fopen(path, "rb");
    if (!probe)
        SKIP("asset missing: %s", path);
    fclose(probe);
    CHECK_EQ_INT(tokenizer_load(path, &t), TOK_OK);
    CHECK_EQ_INT(tokenizer_vocab_size(t), 128256);
    CHECK_EQ_INT(tokenizer_kind(t), TOK_KIND_BYTE_LEVEL);
    CHECK_EQ_INT(tokenizer_bos_id(t), 128000);
    CHECK_EQ_INT(tokenizer_eos_id(t), 128009); /* <|eot_id|> from tokenizer_config.json */
    tokenizer_free(t);
    snprintf(path, sizeof path, "%s/tokenizers/llama2/tokenizer.model", check_assets_dir());
    CHECK_EQ_INT(tokenizer_load(path, &t), TOK_OK);
    CHECK_EQ_INT(tokenizer_vocab_size(t), 32000);
    CHECK_EQ_INT(tokenizer_kind(t), TOK_KIND_SPM);
    CHECK_EQ_INT(tokenizer_bos_id(t), 1);
    CHECK_EQ_INT(tokenizer_eos_id(t), 2);
    size_t n;
    const char *p = tokenizer_token(t, 259, &n);
    CHECK(n == 6 && !memcmp(p, "\xe2\x96\x81\xe2\x96\x81", 6));
    /* a truncated .model */
    FILE *f = fopen(path, "rb");
    char *buf = malloc(1 << 20);
    size_t got = fread(buf, 1, 1 << 20, f);
    fclose(f);
    char cut[512];
    snprintf(cut, sizeof cut, "%s/cut.model", dir);
    f = fopen(cut, "wb");
    fwrite(buf, 1, got / 2, f);
    fclose(f);
    tokenizer_free(t);
    CHECK_EQ_INT(tokenizer_load(cut, &t), TOK_ERR_FORMAT);
    CHECK(strstr(tokenizer_errmsg(t), "offset") != NULL);
    tokenizer_free(t);
    free(buf);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        return 1;
    return check_exit("test_tokenizer_load");
}
