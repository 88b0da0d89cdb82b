/* test_megatron_import.c - megatron_import (no MPI) on a dataset written here by hand from the
 * MMIDIDX layout: sequences, document starts and pieces as Megatron defines them; malformed
 * indexes are SHARD_ERR_CORRUPT with nothing written; megatron_prefix_check and the dtype rule.
 * No MPI_Init: import must not need it. */
#include "check.h"
#include "megatron.h"
#include "test_util.h"

#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* 3 sequences [5 6] [] [7 8 9] (uint16); document_indices {0, 2, 3}: document 0 is sequences
 * 0 and 1, document 1 is sequence 2. */
static void write_dataset(const char *prefix, uint64_t last_doc_index, size_t cut_idx) {
    char path[4200];
    const uint16_t tokens[5] = {5, 6, 7, 8, 9};
    snprintf(path, sizeof path, "%s.bin", prefix);
    CHECK_EQ_INT(test_write_file(path, tokens, sizeof tokens), 0);
    uint8_t idx[MEGATRON_HEADER_BYTES + 12 * 3 + 8 * 3];
    megatron_header_write(idx, MEGATRON_DTYPE_UINT16, 3, 3);
    const int32_t lengths[3] = {2, 0, 3};
    const int64_t pointers[3] = {0, 4, 4};
    const int64_t docs[3] = {0, 2, (int64_t)last_doc_index};
    memcpy(idx + MEGATRON_HEADER_BYTES, lengths, sizeof lengths);
    memcpy(idx + MEGATRON_HEADER_BYTES + 12, pointers, sizeof pointers);
    memcpy(idx + MEGATRON_HEADER_BYTES + 36, docs, sizeof docs);
    snprintf(path, sizeof path, "%s.idx", prefix);
    CHECK_EQ_INT(test_write_file(path, idx, sizeof idx - cut_idx), 0);
}

static void check_import(const char *dir) {
    char prefix[4200], out[4200], err[1024];
    snprintf(prefix, sizeof prefix, "%s/ds", dir);
    snprintf(out, sizeof out, "%s/ds.shard", dir);
    write_dataset(prefix, 3, 0);
    megatron_import_opts o = megatron_import_opts_default();
    megatron_import_report rep;
    CHECK_EQ_INT(megatron_import(prefix, out, &o, &rep, err, sizeof err), SHARD_OK);
    CHECK_EQ_U64(rep.n_seqs, 3);
    CHECK_EQ_U64(rep.n_docs, 2);
    shard_reader *r;
    CHECK_EQ_INT(shard_reader_open(out, &r), SHARD_OK);
    const shard_info *in = shard_reader_info(r);
    CHECK_EQ_U64(in->n_seqs, 3);
    CHECK_EQ_U64(in->n_tokens, 5);
    CHECK_EQ_INT(in->vocab_size, 10); /* largest id + 1 */
    CHECK_EQ_U64(in->n_doc_starts, 2);
    CHECK(strstr(shard_reader_meta(r), "\"megatron_dtype\":8") != NULL);
    const uint64_t want_len[3] = {2, 0, 3}, want_doc[3] = {0, 0, 1}, want_off[3] = {0, 2, 0};
    const uint32_t want_starts[3] = {1, 0, 1};
    const uint16_t want_tok[5] = {5, 6, 7, 8, 9};
    uint64_t t = 0;
    for (uint64_t i = 0; i < 3; i++) {
        shard_seq s;
        CHECK_EQ_INT(shard_reader_read(r, i, &s), SHARD_OK);
        CHECK_EQ_U64(s.n_tokens, want_len[i]);
        CHECK_EQ_U64(s.n_docs, 1);
        CHECK_EQ_INT(s.n_doc_starts, want_starts[i]);
        CHECK_EQ_U64(s.docs[0].doc_id, want_doc[i]);
        CHECK_EQ_U64(s.docs[0].doc_offset, want_off[i]);
        for (uint64_t k = 0; k < s.n_tokens; k++)
            CHECK_EQ_INT(((const uint16_t *)s.tokens)[k], want_tok[t++]);
    }
    shard_reader_free(r);

    o.vocab_size = 9; /* id 9 does not fit */
    unlink(out);
    CHECK_EQ_INT(megatron_import(prefix, out, &o, &rep, err, sizeof err), SHARD_ERR_ARG);
    CHECK(strstr(err, "token id 9 >= --vocab-size 9") != NULL);
    CHECK(access(out, F_OK) != 0);
    o = megatron_import_opts_default();

    write_dataset(prefix, 2, 0); /* the last document index must be n_seqs */
    CHECK_EQ_INT(megatron_import(prefix, out, &o, &rep, err, sizeof err), SHARD_ERR_CORRUPT);
    CHECK(strstr(err, "ds.idx: offset 86: document_indices[2]") != NULL);
    CHECK(access(out, F_OK) != 0);
    write_dataset(prefix, 3, 1); /* truncated */
    CHECK_EQ_INT(megatron_import(prefix, out, &o, &rep, err, sizeof err), SHARD_ERR_CORRUPT);
    CHECK(strstr(err, "do not match the file size") != NULL);
    snprintf(prefix, sizeof prefix, "%s/absent", dir);
    CHECK_EQ_INT(megatron_import(prefix, out, &o, &rep, err, sizeof err), SHARD_ERR_IO);
    CHECK(strstr(err, "absent.idx: cannot open") != NULL);
    CHECK(access(out, F_OK) != 0);
}

static void check_prefix(const char *dir) {
    char p[4200], err[1024];
    CHECK_EQ_INT(megatron_prefix_check("", err, sizeof err), SHARD_ERR_ARG);
    snprintf(p, sizeof p, "%s/", dir);
    CHECK_EQ_INT(megatron_prefix_check(p, err, sizeof err), SHARD_ERR_ARG);
    CHECK(strstr(err, "ends in '/'") != NULL);
    CHECK_EQ_INT(megatron_prefix_check(dir, err, sizeof err), SHARD_ERR_ARG);
    CHECK(strstr(err, "is a directory") != NULL);
    snprintf(p, sizeof p, "%s/.", dir);
    CHECK_EQ_INT(megatron_prefix_check(p, err, sizeof err), SHARD_ERR_ARG);
    snprintf(p, sizeof p, "%s/data", dir);
    CHECK_EQ_INT(megatron_prefix_check(p, err, sizeof err), SHARD_OK);
}

int main(void) {
    char dir[4200];
    test_tmpdir(dir, sizeof dir);
    check_import(dir);
    check_prefix(dir);
    CHECK_EQ_INT(megatron_dtype_for_vocab(65499), MEGATRON_DTYPE_UINT16);
    CHECK_EQ_INT(megatron_dtype_for_vocab(65500), MEGATRON_DTYPE_INT32);
    uint8_t h[MEGATRON_HEADER_BYTES];
    megatron_header_write(h, MEGATRON_DTYPE_INT32, 7, 9);
    CHECK(memcmp(h, "MMIDIDX\0\0\1\0\0\0\0\0\0\0\4\7\0\0\0\0\0\0\0\11\0\0\0\0\0\0\0", 34) == 0);
    test_rmdir(dir);
    return check_exit("test_megatron_import");
}
