/* test_model_hash.c - infer_model_hash: against xxh3-64 computed here in one shot over the bytes
 * it must cover (config.json, then each safetensors file's 8-byte length and JSON header in
 * sorted name order; a llama2.c header and the file size), and its properties: one header byte
 * or the config changes the hash, a tensor's data bytes do not. */
#include "check.h"
#include "infer.h"

#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

static const char CONFIG[] = "{\"hidden_size\": 8, \"num_hidden_layers\": 1}";
static const char HEAD_A[] = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
static const char HEAD_B[] = "{\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";

static void write_file(const char *path, const void *b, size_t n) {
    FILE *f = fopen(path, "wb");
    CHECK(f && fwrite(b, 1, n, f) == n);
    if (f)
        fclose(f);
}

/* a safetensors file: u64 LE header length, header, data (the header's buffer + length + data) */
static size_t st_bytes(uint8_t *out, const char *head, const uint8_t *data, size_t n_data) {
    const uint64_t n = strlen(head);
    for (int i = 0; i < 8; i++)
        out[i] = (uint8_t)(n >> (8 * i));
    memcpy(out + 8, head, n);
    memcpy(out + 8 + n, data, n_data);
    return 8 + n + n_data;
}

static uint64_t hash_of(const char *path) {
    uint64_t h = 0;
    char err[256] = "";
    const int st = infer_model_hash(path, &h, err, sizeof err);
    if (st != INFER_OK)
        fprintf(stderr, "infer_model_hash(%s): %s\n", path, err);
    CHECK_EQ_INT(st, INFER_OK);
    return h;
}

int main(void) {
    char dir[] = "/tmp/longctx-hash-XXXXXX", p[256], q[256], c[256];
    CHECK(mkdtemp(dir) != NULL);
    uint8_t a[256], b[256], data_a[8] = {1, 2, 3, 4, 5, 6, 7, 8}, data_b[4] = {9, 9, 9, 9};
    const size_t na = st_bytes(a, HEAD_A, data_a, 8), nb = st_bytes(b, HEAD_B, data_b, 4);
    snprintf(c, sizeof c, "%s/config.json", dir);
    snprintf(p, sizeof p, "%s/model-00001-of-00002.safetensors", dir);
    snprintf(q, sizeof q, "%s/model-00002-of-00002.safetensors", dir);
    write_file(c, CONFIG, strlen(CONFIG));
    write_file(q, b, nb); /* the second file first: the order is by name, not by creation */
    write_file(p, a, na);

    /* the reference: one buffer, one call */
    uint8_t all[1024];
    size_t n = 0;
    memcpy(all + n, CONFIG, strlen(CONFIG)), n += strlen(CONFIG);
    memcpy(all + n, a, na - 8), n += na - 8; /* length + header of a, without its data */
    memcpy(all + n, b, nb - 4), n += nb - 4;
    const uint64_t want = XXH3_64bits(all, n), got = hash_of(dir);
    CHECK_EQ_U64(got, want);
    CHECK_EQ_U64(hash_of(c), want); /* the config.json path names the same model */

    /* a tensor's data bytes: the same hash (headers, not weights) */
    data_a[3] ^= 0x40;
    st_bytes(a, HEAD_A, data_a, 8);
    write_file(p, a, na);
    CHECK_EQ_U64(hash_of(dir), want);
    /* one header byte: another hash ("shape":[2] -> [3]) */
    uint8_t *s = memchr(a + 8, '2', na - 8);
    CHECK(s != NULL);
    *s = '3';
    write_file(p, a, na);
    const uint64_t h_head = hash_of(dir);
    CHECK(h_head != want);
    *s = '2';
    write_file(p, a, na);
    CHECK_EQ_U64(hash_of(dir), want);
    /* the config: another hash */
    write_file(c, "{\"hidden_size\": 9, \"num_hidden_layers\": 1}", strlen(CONFIG));
    CHECK(hash_of(dir) != want);
    /* a cut header is an error, not a hash */
    write_file(p, a, 20);
    uint64_t h;
    char err[256];
    CHECK_EQ_INT(infer_model_hash(dir, &h, err, sizeof err), INFER_ERR_FORMAT);

    /* llama2.c: the 28-byte header and the size, little-endian */
    char bin[256];
    snprintf(bin, sizeof bin, "%s/model.bin", dir);
    uint8_t m[28 + 40];
    for (size_t i = 0; i < sizeof m; i++)
        m[i] = (uint8_t)(i * 7 + 1);
    write_file(bin, m, sizeof m);
    uint8_t ref[36];
    memcpy(ref, m, 28);
    memset(ref + 28, 0, 8);
    ref[28] = sizeof m;
    CHECK_EQ_U64(hash_of(bin), XXH3_64bits(ref, sizeof ref));
    m[40] ^= 1; /* a weight */
    write_file(bin, m, sizeof m);
    CHECK_EQ_U64(hash_of(bin), XXH3_64bits(ref, sizeof ref));
    m[4] ^= 1; /* the header */
    write_file(bin, m, sizeof m);
    CHECK(hash_of(bin) != XXH3_64bits(ref, sizeof ref));
    write_file(bin, m, sizeof m - 4); /* the size */
    CHECK(hash_of(bin) != XXH3_64bits(ref, sizeof ref));

    unlink(bin);
    unlink(p);
    unlink(q);
    unlink(c);
    rmdir(dir);
    return check_exit("test_model_hash");
}
