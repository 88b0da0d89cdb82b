/* fuzz_shard_read.c - libFuzzer target: arbitrary bytes as a shard file must give a status,
 * never a crash, a hang or a read out of bounds. Verify, then read every sequence. */
#include "shard.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char path[256];
    if (!path[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(path, sizeof path, "%s/fuzz_shard_read.%ld", t && *t ? t : "/tmp", (long)getpid());
    }
    FILE *f = fopen(path, "wb");
    if (!f)
        return 0;
    fwrite(data, 1, size, f);
    fclose(f);

    shard_verify_report rep;
    char msg[256];
    int vst = shard_verify(path, &rep, msg, sizeof msg);
    shard_reader *r;
    if (shard_reader_open(path, &r) == SHARD_OK) {
        const shard_info *in = shard_reader_info(r);
        uint64_t sum = 0;
        for (uint64_t i = 0; i < in->n_seqs; i++) {
            shard_seq s;
            if (shard_reader_read(r, i, &s) != SHARD_OK)
                continue;
            for (uint64_t k = 0; k < s.n_tokens; k++)
                sum += in->token_bytes == 2 ? ((const uint16_t *)s.tokens)[k]
                                            : ((const uint32_t *)s.tokens)[k];
            for (uint64_t k = 0; k < s.n_docs; k++)
                sum += s.docs[k].start;
        }
        (void)sum;
        (void)vst;
    }
    shard_reader_free(r);
    unlink(path);
    return 0;
}
