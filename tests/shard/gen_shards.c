/* gen_shards.c - writes N_FILES shards of random sequences and, independently of the reader,
 * the ground truth: OUTDIR/expected.u32 (every sequence in file order: uint32 count, ids).
 * File 1 is always empty (an empty shard must export as nothing).
 * usage: gen_shards OUTDIR VOCAB N_FILES SEED */
#include "shard.h"
#include "test_util.h"

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: gen_shards OUTDIR VOCAB N_FILES SEED\n");
        return 2;
    }
    const char *dir = argv[1];
    uint32_t vocab = (uint32_t)strtoul(argv[2], NULL, 10);
    int n_files = atoi(argv[3]);
    uint64_t rng = strtoull(argv[4], NULL, 10);
    char path[4096];
    snprintf(path, sizeof path, "%s/expected.u32", dir);
    FILE *exp = fopen(path, "wb");
    if (!exp) {
        perror(path);
        return 1;
    }
    uint32_t *ids = malloc(140000 * sizeof *ids);
    uint64_t doc_id = 0;
    for (int f = 0; f < n_files; f++) {
        snprintf(path, sizeof path, "%s/part-%03d.shard", dir, f);
        shard_writer_opts o = shard_writer_opts_default();
        o.vocab_size = vocab;
        o.block_bytes = 1u << 16;
        shard_writer *w;
        int st = shard_writer_create(path, &o, &w);
        int n_seqs = f == 1 ? 0 : 1 + (int)(test_rand(&rng) % 40);
        for (int s = 0; st == SHARD_OK && s < n_seqs; s++) {
            uint64_t kind = test_rand(&rng) % 10;
            uint32_t n = kind == 0   ? 0
                         : kind == 1 ? 1
                         : kind == 2 ? 131072
                                     : (uint32_t)(test_rand(&rng) % 5000);
            for (uint32_t k = 0; k < n; k++)
                ids[k] = (uint32_t)(test_rand(&rng) % vocab);
            shard_doc d = {0, doc_id++, 0};
            st = shard_writer_append(w, ids, n, &d, 1);
            fwrite(&n, 4, 1, exp);
            fwrite(ids, 4, n, exp);
        }
        if (st == SHARD_OK)
            st = shard_writer_close(w);
        if (st != SHARD_OK) {
            fprintf(stderr, "%s\n", shard_writer_errmsg(w));
            return 1;
        }
        shard_writer_free(w);
    }
    free(ids);
    return fclose(exp) == 0 ? 0 : 1;
}
