/* megatron_idx.c - pieces of Megatron's .idx format shared by export and import: the dtype of
 * a vocabulary, the header, and the check of an output prefix. */
#include "megatron.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

int megatron_dtype_for_vocab(uint32_t vocab_size) {
    return vocab_size < 65500u ? MEGATRON_DTYPE_UINT16 : MEGATRON_DTYPE_INT32;
}

static void put_u64(uint8_t *p, uint64_t v) {
    memcpy(p, &v, 8);
}

void megatron_header_write(uint8_t out[MEGATRON_HEADER_BYTES], int dtype, uint64_t n_seqs,
                           uint64_t n_doc_indices) {
    memcpy(out, MEGATRON_MAGIC, 9);
    put_u64(out + 9, 1);
    out[17] = (uint8_t)dtype;
    put_u64(out + 18, n_seqs);
    put_u64(out + 26, n_doc_indices);
}

int megatron_prefix_check(const char *prefix, char *err, size_t err_bytes) {
    struct stat sb;
    size_t n = prefix ? strlen(prefix) : 0;
    if (n == 0) {
        snprintf(err, err_bytes, "--output PREFIX is empty");
        return SHARD_ERR_ARG;
    }
    if (prefix[n - 1] == '/') {
        snprintf(err, err_bytes,
                 "--output PREFIX '%s' ends in '/' (it would write '%s.bin'); name the files, "
                 "e.g. '%sdata'",
                 prefix, prefix, prefix);
        return SHARD_ERR_ARG;
    }
    if (stat(prefix, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        snprintf(err, err_bytes,
                 "--output PREFIX '%s' is a directory; name the files, e.g. '%s/data'", prefix,
                 prefix);
        return SHARD_ERR_ARG;
    }
    return SHARD_OK;
}
