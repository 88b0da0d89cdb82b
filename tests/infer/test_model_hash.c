/* test_model_hash.c - infer_model_hash: against xxh3-64 computed here in one shot over the bytes
 * it must cover (config.json, then each safetensors file's 8-byte length, JSON header and data
 * sample in sorted name order; a llama2.c header, the file size and its data sample), and its
 * properties: one header byte, the config or a sampled weight changes the hash, a weight
 * outside the sample of a large file does not. */
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
    memcpy(all + n, a, na), n += na; /* length + header + data (under 64 KiB: all of it) */
    memcpy(all + n, b, nb), n += nb;
    const uint64_t want = XXH3_64bits(all, n), got = hash_of(dir);
    CHECK_EQ_U64(got, want);
    CHECK_EQ_U64(hash_of(c), want); /* the config.json path names the same model */

    /* a weight of a small file: another hash */
    data_a[3] ^= 0x40;
    st_bytes(a, HEAD_A, data_a, 8);
    write_file(p, a, na);
    CHECK(hash_of(dir) != want);
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
    /* the reference: header, size, then the 40 bytes of weights (all: under 64 KiB) */
    uint8_t ref_w[36 + 40];
    memcpy(ref_w, ref, 36);
    memcpy(ref_w + 36, m + 28, 40);
    CHECK_EQ_U64(hash_of(bin), XXH3_64bits(ref_w, sizeof ref_w));
    m[40] ^= 1; /* a weight */
    write_file(bin, m, sizeof m);
    CHECK(hash_of(bin) != XXH3_64bits(ref_w, sizeof ref_w));
    m[40] ^= 1;
    m[4] ^= 1; /* the header */
    write_file(bin, m, sizeof m);
    CHECK(hash_of(bin) != XXH3_64bits(ref_w, sizeof ref_w));
    m[4] ^= 1;
    write_file(bin, m, sizeof m - 4); /* the size */
    CHECK(hash_of(bin) != XXH3_64bits(ref_w, sizeof ref_w));

    /* a large file (200000 bytes of weights): 16 pieces of 4096 at i (D - 4096) / 15 */
    enum { D = 200000 };
    static uint8_t big[28 + D], want_big[36 + 16 * 4096];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)(i * 13 + 5);
    write_file(bin, big, sizeof big);
    memcpy(want_big, big, 28);
    memset(want_big + 28, 0, 8);
    for (int i = 0; i < 8; i++)
        want_big[28 + i] = (uint8_t)((uint64_t)sizeof big >> (8 * i));
    for (int i = 0; i < 16; i++)
        memcpy(want_big + 36 + 4096 * i, big + 28 + (size_t)i * (D - 4096) / 15, 4096);
    CHECK_EQ_U64(hash_of(bin), XXH3_64bits(want_big, sizeof want_big));
    big[28 + 4096 + 100] ^= 1; /* between piece 0 (0..4096) and piece 1 (13060..): the same */
    write_file(bin, big, sizeof big);
    CHECK_EQ_U64(hash_of(bin), XXH3_64bits(want_big, sizeof want_big));
    big[28 + D - 1] ^= 1; /* the last byte is in piece 15: another hash */
    write_file(bin, big, sizeof big);
    CHECK(hash_of(bin) != XXH3_64bits(want_big, sizeof want_big));

    unlink(bin);
    unlink(p);
    unlink(q);
    unlink(c);
    rmdir(dir);
    return check_exit("test_model_hash");
}
