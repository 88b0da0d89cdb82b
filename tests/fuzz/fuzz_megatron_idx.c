/* fuzz_megatron_idx.c - libFuzzer target: a Megatron .idx from arbitrary bytes, beside a .bin
 * of n uint16 tokens (ids 0..n-1; n from the input's first two bytes, at most 4096; the rest
 * of the input is the .idx), imported into a shard (megatron_import). The
 * import must return a status; a malformed index must be refused with a message naming the
 * file; an import that succeeds must leave a shard that verifies, and a failed one no shard. */
#include "fuzz_file.h"
#include "megatron.h"
#include "shard.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static uint16_t bin[4096];
    if (size < 2)
        return 0;
    size_t n_bin = ((size_t)data[0] | (size_t)data[1] << 8) % 4097;
    for (size_t i = 0; i < n_bin; i++)
        bin[i] = (uint16_t)i;
    char idx[256], binp[256], out[256], err[1024];
    if (fuzz_file_write("mg", ".idx", data + 2, size - 2, idx, sizeof idx) != 0 ||
        fuzz_file_write("mg", ".bin", (const uint8_t *)bin, n_bin * 2, binp, sizeof binp) != 0)
        return 0;
    char prefix[256];
    snprintf(prefix, sizeof prefix, "%.*s", (int)(strlen(idx) - 4), idx);
    snprintf(out, sizeof out, "%s.shard", prefix);
    unlink(out);
    megatron_import_opts o = megatron_import_opts_default();
    o.vocab_size = 4096;
    megatron_import_report rep;
    err[0] = '\0';
    int st = megatron_import(prefix, out, &o, &rep, err, sizeof err);
    int present = access(out, F_OK) == 0;
    if (st != SHARD_OK) {
        if (!err[0] || present)
            __builtin_trap(); /* a refusal says why and leaves no shard */
    } else {
        shard_verify_report vr;
        if (!present || shard_verify(out, &vr, err, sizeof err) != SHARD_OK)
            __builtin_trap();
    }
    unlink(out);
    unlink(idx);
    unlink(binp);
    return 0;
}
