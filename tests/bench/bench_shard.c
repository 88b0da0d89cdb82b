/* bench_shard.c - shard write and read throughput (tokens/s) and compression ratio on real token
 * data at several zstd levels, beside a plain copy of the same bytes (the limit).
 *
 * usage: [BENCH_SHARD_THREADS=T] bench_shard IDS.txt OUTDIR [vocab_size] [seq_len] [levels...]
 *   BENCH_SHARD_THREADS: shard_writer_opts.threads (default 1)
 *   IDS.txt: one document per line, token ids separated by spaces (spm_encode
 *   --output_format=id writes this; see tests/bench/make_tokens.sh).
 * Prints one markdown table row per configuration. */
#include "shard.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Reads all ids into one array, documents back to back (packing ignores boundaries here). */
static uint32_t *read_ids(const char *path, uint64_t *n_out, uint64_t *n_docs) {
    FILE *f = fopen(path, "r");
    if (!f) {
        perror(path);
        exit(1);
    }
    uint64_t cap = 1 << 20, n = 0;
    uint32_t *ids = malloc(cap * 4);
    int c;
    uint32_t v = 0;
    int in_num = 0;
    *n_docs = 0;
    while ((c = getc_unlocked(f)) != EOF) {
        if (c >= '0' && c <= '9') {
            v = v * 10 + (uint32_t)(c - '0');
            in_num = 1;
            continue;
        }
        if (in_num) {
            if (n == cap)
                ids = realloc(ids, (cap *= 2) * 4);
            ids[n++] = v;
            v = 0;
            in_num = 0;
        }
        if (c == '\n')
            (*n_docs)++;
    }
    if (in_num)
        ids[n++] = v;
    fclose(f);
    *n_out = n;
    return ids;
}

static void drop_page_cache_hint(const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd >= 0) {
        fdatasync(fd);
        close(fd);
    }
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: bench_shard IDS.txt OUTDIR [vocab_size] [seq_len] [levels...]\n");
        return 2;
    }
    uint32_t vocab = argc > 3 ? (uint32_t)strtoul(argv[3], NULL, 10) : 32000;
    uint64_t seq_len = argc > 4 ? strtoull(argv[4], NULL, 10) : 131072;
    int levels[16] = {1, 3, 9, 19}, n_levels = 4;
    if (argc > 5) {
        n_levels = 0;
        for (int i = 5; i < argc && n_levels < 16; i++)
            levels[n_levels++] = atoi(argv[i]);
    }
    uint64_t n, n_docs;
    uint32_t *ids = read_ids(argv[1], &n, &n_docs);
    for (uint64_t i = 0; i < n; i++)
        if (ids[i] >= vocab) {
            fprintf(stderr, "id %u >= vocab %u\n", ids[i], vocab);
            return 1;
        }
    uint64_t n_seqs = (n + seq_len - 1) / seq_len;
    uint32_t tb = vocab <= SHARD_U16_MAX_VOCAB ? 2 : 4;
    printf("# %llu tokens (%llu documents) in %llu sequences of %llu, vocab %u, %u bytes/token\n",
           (unsigned long long)n, (unsigned long long)n_docs, (unsigned long long)n_seqs,
           (unsigned long long)seq_len, vocab, tb);
    printf("| what | level | write Mtok/s | read Mtok/s | ratio | bytes/token |\n");
    printf("|---|---|---|---|---|---|\n");

    /* the limit: write the raw token bytes with write(2), read them back with read(2) */
    char path[4096];
    snprintf(path, sizeof path, "%s/plain.bin", argv[2]);
    uint8_t *raw = malloc(n * tb);
    for (uint64_t i = 0; i < n; i++) {
        if (tb == 2) {
            uint16_t v = (uint16_t)ids[i];
            memcpy(raw + 2 * i, &v, 2);
        } else {
            memcpy(raw + 4 * i, &ids[i], 4);
        }
    }
    double t0 = now();
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || write(fd, raw, n * tb) != (ssize_t)(n * tb) || fsync(fd) != 0) {
        perror(path);
        return 1;
    }
    close(fd);
    double t_write = now() - t0;
    t0 = now();
    fd = open(path, O_RDONLY);
    uint8_t *back = malloc(n * tb);
    if (read(fd, back, n * tb) != (ssize_t)(n * tb)) {
        perror(path);
        return 1;
    }
    close(fd);
    uint32_t *out32 = malloc(seq_len * 4);
    for (uint64_t s = 0; s < n_seqs; s++) { /* the same widening the shard reader's users do */
        uint64_t k0 = s * seq_len, m = n - k0 < seq_len ? n - k0 : seq_len;
        shard_tokens_to_u32(back + k0 * tb, tb, m, out32);
    }
    double t_read = now() - t0;
    printf("| plain copy (write+fsync, read) | - | %.1f | %.1f | 1.000 | %.3f |\n",
           (double)n / t_write / 1e6, (double)n / t_read / 1e6, (double)tb);
    free(back);
    unlink(path);

    for (int li = 0; li < n_levels; li++) {
        snprintf(path, sizeof path, "%s/bench_l%d.shard", argv[2], levels[li]);
        shard_writer_opts o = shard_writer_opts_default();
        o.vocab_size = vocab;
        o.level = levels[li];
        o.threads = getenv("BENCH_SHARD_THREADS") ? atoi(getenv("BENCH_SHARD_THREADS")) : 1;
        shard_writer *w;
        t0 = now();
        int st = shard_writer_create(path, &o, &w);
        for (uint64_t s = 0; st == SHARD_OK && s < n_seqs; s++) {
            uint64_t k0 = s * seq_len, m = n - k0 < seq_len ? n - k0 : seq_len;
            shard_doc d = {0, s, 0};
            st = shard_writer_append(w, ids + k0, m, &d, 1);
        }
        if (st == SHARD_OK)
            st = shard_writer_close(w);
        t_write = now() - t0;
        if (st != SHARD_OK) {
            fprintf(stderr, "%s\n", shard_writer_errmsg(w));
            return 1;
        }
        shard_writer_free(w);
        drop_page_cache_hint(path);

        shard_reader *r;
        t0 = now();
        st = shard_reader_open(path, &r);
        uint64_t got = 0;
        for (uint64_t s = 0; st == SHARD_OK && s < n_seqs; s++) {
            shard_seq q;
            st = shard_reader_read(r, s, &q);
            if (st == SHARD_OK) {
                shard_tokens_to_u32(q.tokens, tb, q.n_tokens, out32);
                if (memcmp(out32, ids + got, q.n_tokens * 4) != 0) {
                    fprintf(stderr, "sequence %llu differs\n", (unsigned long long)s);
                    return 1;
                }
                got += q.n_tokens;
            }
        }
        t_read = now() - t0;
        if (st != SHARD_OK || got != n) {
            fprintf(stderr, "%s\n", shard_reader_errmsg(r));
            return 1;
        }
        const shard_info *in = shard_reader_info(r);
        printf("| shard | %d | %.1f | %.1f | %.3f | %.3f |\n", levels[li],
               (double)n / t_write / 1e6, (double)n / t_read / 1e6,
               (double)(n * tb) / (double)in->file_bytes, (double)in->file_bytes / (double)n);
        shard_reader_free(r);
        unlink(path);
    }
    free(raw);
    free(out32);
    free(ids);
    return 0;
}
