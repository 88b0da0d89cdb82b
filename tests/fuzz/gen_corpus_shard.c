/* gen_corpus_shard.c - writes the seed corpus of fuzz_shard_read (small valid shards of both
 * token widths, several blocks, empty sequences, an empty shard).
 * usage: gen_corpus_shard OUTDIR */
#include "shard.h"

#include <stdio.h>

static int write_seed(const char *dir, const char *name, uint32_t vocab, uint64_t block_bytes,
                      int n_seqs, int len_mod) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    shard_writer_opts o = shard_writer_opts_default();
    o.vocab_size = vocab;
    o.block_bytes = block_bytes;
    o.meta_json = "{\"seed\":1}";
    shard_writer *w;
    int st = shard_writer_create(path, &o, &w);
    uint32_t ids[64];
    uint64_t x = 1;
    for (int i = 0; st == SHARD_OK && i < n_seqs; i++) {
        int n = len_mod ? i * 7 % len_mod : 0;
        for (int k = 0; k < n; k++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            ids[k] = (uint32_t)(x >> 33) % vocab;
        }
        shard_doc d[2] = {{0, (uint64_t)i, 0}, {(uint64_t)n / 2, (uint64_t)i + 1, 3}};
        st = shard_writer_append(w, ids, (uint64_t)n, d, i % 3 == 0 ? 1 : 2);
    }
    if (st == SHARD_OK)
        st = shard_writer_close(w);
    if (st != SHARD_OK)
        fprintf(stderr, "%s\n", shard_writer_errmsg(w));
    shard_writer_free(w);
    return st;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: gen_corpus_shard OUTDIR\n");
        return 2;
    }
    int st = write_seed(argv[1], "u16_blocks.shard", 32000, 100, 8, 40);
    st |= write_seed(argv[1], "u32_one_block.shard", 128256, 1u << 20, 5, 60);
    st |= write_seed(argv[1], "empty_seqs.shard", 1000, 1, 3, 0);
    st |= write_seed(argv[1], "empty.shard", 32000, 1u << 20, 0, 0);
    return st ? 1 : 0;
}
