/* test_safetensors.c - the safetensors header parser on files written here from the format of
 * REFERENCE.md section 3: a valid file is read with every tensor where it is; each malformed
 * variant (header size, JSON, dtype, shape/size mismatch, offsets outside or overlapping,
 * truncation) is refused as INFER_ERR_FORMAT with a message naming the problem. */
#include "check.h"
#include "infer.h"

#include <stdlib.h>
#include <string.h>

static char dir[256];

/* Writes u64 len + header + data_bytes zero bytes; returns the path. */
static const char *write_st(const char *name, const char *header, size_t data_bytes,
                            long long len_override) {
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    uint64_t n = len_override >= 0 ? (uint64_t)len_override : strlen(header);
    fwrite(&n, 8, 1, f);
    fwrite(header, 1, strlen(header), f);
    for (size_t i = 0; i < data_bytes; i++)
        fputc((int)(i & 0xff), f);
    fclose(f);
    return path;
}

static int open_err(const char *path, const char *want) {
    infer_st *s;
    int st = infer_st_open(path, &s);
    int ok = st == INFER_ERR_FORMAT && strstr(infer_st_errmsg(s), want) != NULL;
    if (!ok)
        fprintf(stderr, "%s: status %d, message '%s', want '%s'\n", path, st, infer_st_errmsg(s),
                want);
    infer_st_free(s);
    return ok;
}

int main(void) {
    snprintf(dir, sizeof dir, "%s/longctx-st-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir))
        return 1;
    /* valid: two tensors, F32 [2,3] at 0..24 and BF16 [4] at 24..32, metadata ignored */
    const char *good = "{\"__metadata__\":{\"format\":\"pt\"},"
                       "\"b\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[24,32]},"
                       "\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}}";
    const char *p = write_st("good.safetensors", good, 32, -1);
    infer_st *s;
    CHECK_EQ_INT(infer_st_open(p, &s), INFER_OK);
    CHECK_EQ_INT(infer_st_count(s), 2);
    const infer_tensor_info *a = infer_st_find(s, "a"), *b = infer_st_find(s, "b");
    CHECK(a && b);
    if (a && b) {
        uint64_t base = 8 + strlen(good);
        CHECK_EQ_U64(a->offset, base);
        CHECK_EQ_U64(a->bytes, 24);
        CHECK_EQ_INT(a->n_dims, 2);
        CHECK_EQ_INT(a->shape[1], 3);
        CHECK_EQ_INT(b->dtype, INFER_DT_BF16);
        CHECK_EQ_U64(b->offset, base + 24);
        CHECK(infer_st_tensor(s, 0) == a); /* offset order */
    }
    infer_st_free(s);

    CHECK(open_err(write_st("huge_len.safetensors", good, 32, 1ll << 40), "header size"));
    CHECK(open_err(write_st("json.safetensors", "{\"a\": [", 0, -1), "not a JSON object"));
    CHECK(open_err(write_st("dtype.safetensors",
                            "{\"a\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8,
                            -1),
                   "dtype I64"));
    CHECK(open_err(write_st("size.safetensors",
                            "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8,
                            -1),
                   "8 bytes for 3 elements"));
    CHECK(open_err(write_st("outside.safetensors",
                            "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8,
                            -1),
                   "outside the 8 data bytes"));
    CHECK(open_err(write_st("overlap.safetensors",
                            "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                            "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                            12, -1),
                   "overlap"));
    CHECK(open_err(write_st("shape.safetensors",
                            "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4,
                            -1),
                   "bad shape"));
    CHECK(open_err(write_st("fields.safetensors", "{\"a\":{\"dtype\":\"F32\"}}", 0, -1),
                   "needs dtype, shape and data_offsets"));
    /* truncated: the good file without its last 4 data bytes */
    CHECK(open_err(write_st("cut.safetensors", good, 28, -1), "outside the 28 data bytes"));
    CHECK(open_err(write_st("tiny.safetensors", "", 0, 0), "header size"));
    infer_st *none;
    char missing[300];
    snprintf(missing, sizeof missing, "%s/missing.safetensors", dir);
    CHECK_EQ_INT(infer_st_open(missing, &none), INFER_ERR_IO);
    infer_st_free(none);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        return 1;
    return check_exit("test_safetensors");
}
