/* test_corrupt.c - golden failures: every truncation point of a small shard and a sampled set of
 * single-bit flips must be reported as SHARD_ERR_CORRUPT, naming the damaged block when the
 * damage is inside one (by the pread reader and the mapped one); nothing may crash (run under
 * ASan in CI). */
#include "check.h"
#include "shard.h"
#include "test_util.h"

#include <string.h>

/* Block boundaries of the intact shard, from the header fields we rely on. */
typedef struct {
    uint64_t begin, end;
} range;

static int make_shard(const char *path, range *blocks, int *n_blocks) {
    shard_writer_opts o = shard_writer_opts_default();
    o.vocab_size = 32000;
    o.block_bytes = 600; /* several small blocks */
    o.meta_json = "{\"recipe\":\"golden\"}";
    shard_writer *w;
    int st = shard_writer_create(path, &o, &w);
    uint64_t rng = 99;
    uint32_t ids[400];
    for (int i = 0; st == SHARD_OK && i < 12; i++) {
        uint64_t n = (uint64_t)(i * 37 % 300);
        for (uint64_t k = 0; k < n; k++)
            ids[k] = (uint32_t)(test_rand(&rng) % 32000);
        shard_doc d[2] = {{0, (uint64_t)i, 0}, {n / 2, (uint64_t)i + 100, 5}};
        st = shard_writer_append(w, ids, n, d, 2);
    }
    if (st == SHARD_OK)
        st = shard_writer_close(w);
    shard_writer_free(w);
    if (st != SHARD_OK)
        return st;

    shard_reader *r;
    st = shard_reader_open(path, &r);
    if (st != SHARD_OK) {
        shard_reader_free(r);
        return st;
    }
    /* Block ranges: the first starts after the header; each is 32 + compressed bytes. We find
     * them independently of the reader's index by scanning for the block magic in order. */
    shard_reader_free(r);
    size_t n;
    unsigned char *buf = test_read_file(path, &n);
    uint64_t meta_bytes;
    memcpy(&meta_bytes, buf + 24, 8);
    uint64_t off = 32 + meta_bytes + 8;
    *n_blocks = 0;
    while (off + 32 <= n && memcmp(buf + off, "BLK1", 4) == 0) {
        uint64_t comp;
        memcpy(&comp, buf + off + 8, 8);
        blocks[*n_blocks].begin = off;
        blocks[*n_blocks].end = off + 32 + comp;
        (*n_blocks)++;
        off += 32 + comp;
    }
    free(buf);
    return SHARD_OK;
}

int main(void) {
    char dir[4096], path[4200], bad[4200];
    test_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/golden.shard", dir);
    snprintf(bad, sizeof bad, "%s/damaged.shard", dir);
    range blocks[64];
    int n_blocks = 0;
    CHECK_EQ_INT(make_shard(path, blocks, &n_blocks), SHARD_OK);
    CHECK(n_blocks >= 4);
    size_t n;
    unsigned char *orig = test_read_file(path, &n);
    CHECK(orig != NULL && n > 500);
    CHECK_EQ_INT(shard_verify(path, NULL, NULL, 0), SHARD_OK);

    /* every truncation point */
    int n_trunc_missed = 0;
    for (size_t len = 0; len < n; len++) {
        test_write_file(bad, orig, len);
        shard_verify_report rep;
        char msg[512];
        int st = shard_verify(bad, &rep, msg, sizeof msg);
        if (st != SHARD_ERR_CORRUPT || !strstr(msg, bad)) {
            n_trunc_missed++;
            fprintf(stderr, "truncation at %zu: status %d '%s'\n", len, st, msg);
        }
    }
    CHECK_EQ_INT(n_trunc_missed, 0);

    /* single-bit flips: every byte once (random bit), plus random extra samples */
    uint64_t rng = 12345;
    int n_flip_missed = 0, n_wrong_block = 0, n_flips = 0;
    for (size_t s = 0; s < n + 2000; s++) {
        size_t at = s < n ? s : (size_t)(test_rand(&rng) % n);
        int bit = (int)(test_rand(&rng) % 8);
        orig[at] ^= (unsigned char)(1u << bit);
        test_write_file(bad, orig, n);
        orig[at] ^= (unsigned char)(1u << bit);
        n_flips++;
        shard_verify_report rep;
        char msg[512];
        int st = shard_verify(bad, &rep, msg, sizeof msg);
        if (st != SHARD_ERR_CORRUPT) {
            n_flip_missed++;
            fprintf(stderr, "flip at byte %zu bit %d: status %d\n", at, bit, st);
            continue;
        }
        uint64_t want = UINT64_MAX;
        for (int b = 0; b < n_blocks; b++)
            if (at >= blocks[b].begin && at < blocks[b].end)
                want = (uint64_t)b;
        if (rep.first_bad_block != want || (want != UINT64_MAX && rep.n_blocks_bad != 1)) {
            n_wrong_block++;
            fprintf(stderr, "flip at byte %zu: reported block %llu, want %llu: %s\n", at,
                    (unsigned long long)rep.first_bad_block, (unsigned long long)want, msg);
        }
        if (want != UINT64_MAX) {
            char name[64];
            snprintf(name, sizeof name, "block %llu", (unsigned long long)want);
            if (!strstr(msg, name))
                n_wrong_block++;
        }
    }
    fprintf(stderr, "%zu truncations, %d bit flips over %d blocks\n", n, n_flips, n_blocks);
    CHECK_EQ_INT(n_flip_missed, 0);
    CHECK_EQ_INT(n_wrong_block, 0);

    /* the reader, too, refuses a damaged block when asked for one of its sequences */
    orig[blocks[1].begin + 40] ^= 1;
    test_write_file(bad, orig, n);
    shard_reader *r;
    CHECK_EQ_INT(shard_reader_open(bad, &r), SHARD_OK);
    shard_seq q;
    int n_corrupt = 0;
    for (uint64_t i = 0; i < shard_reader_info(r)->n_seqs; i++)
        n_corrupt += shard_reader_read(r, i, &q) == SHARD_ERR_CORRUPT;
    CHECK(n_corrupt >= 1);
    CHECK(strstr(shard_reader_errmsg(r), "block 1") != NULL);
    shard_reader_free(r);
    /* and so does the one reading a mapping of the file */
    CHECK_EQ_INT(shard_reader_open_mapped(bad, &r), SHARD_OK);
    n_corrupt = 0;
    for (uint64_t i = 0; i < shard_reader_info(r)->n_seqs; i++)
        n_corrupt += shard_reader_read(r, i, &q) == SHARD_ERR_CORRUPT;
    CHECK(n_corrupt >= 1);
    CHECK(strstr(shard_reader_errmsg(r), "block 1") != NULL);
    shard_reader_free(r);

    free(orig);
    test_rmdir(dir);
    return check_exit("test_shard_corrupt");
}
