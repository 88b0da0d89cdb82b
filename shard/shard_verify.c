/* shard_verify.c - check every checksum and structural rule of a shard. */
#include "shard_internal.h"

#include <json-c/json.h>

typedef unsigned long long ull;

static void put_msg(char *errmsg, size_t errmsg_bytes, const char *msg) {
    if (errmsg && errmsg_bytes)
        snprintf(errmsg, errmsg_bytes, "%s", msg);
}

int shard_verify(const char *path, shard_verify_report *report, char *errmsg, size_t errmsg_bytes) {
    shard_verify_report rep = {0, 0, UINT64_MAX, UINT64_MAX};
    char first[SHARD_ERRMSG_BYTES] = "";
    shard_reader *r = NULL;
    int st = shard_reader_open(path, &r);
    if (st != SHARD_OK) {
        put_msg(errmsg, errmsg_bytes, shard_reader_errmsg(r));
        /* The offset of damage outside the blocks is in the message; the whole file is
         * unusable, so no block is named. */
        shard_reader_free(r);
        if (report)
            *report = rep;
        return st;
    }
    const shard_info *info = shard_reader_info(r);

    /* The metadata passed its checksum; it must also be the JSON object a writer stores. */
    json_object *meta = json_tokener_parse(shard_reader_meta(r));
    if (!meta || !json_object_is_type(meta, json_type_object)) {
        snprintf(first, sizeof first, "%s: header at offset 32: metadata is not a JSON object",
                 path);
        st = SHARD_ERR_CORRUPT;
        rep.first_bad_offset = 32;
    }
    json_object_put(meta);

    for (uint64_t b = 0; b < info->n_blocks; b++) {
        int bst = shard_reader_load_block(r, b);
        rep.n_blocks_checked++;
        if (bst == SHARD_OK)
            continue;
        if (bst != SHARD_ERR_CORRUPT) { /* I/O or memory: stop, the answer is unknown */
            put_msg(errmsg, errmsg_bytes, shard_reader_errmsg(r));
            shard_reader_free(r);
            if (report)
                *report = rep;
            return bst;
        }
        if (rep.n_blocks_bad++ == 0 && st == SHARD_OK) {
            snprintf(first, sizeof first, "%s", shard_reader_errmsg(r));
            rep.first_bad_block = b;
            rep.first_bad_offset = shard_reader_block_entry(r, b)->offset;
        }
        st = SHARD_ERR_CORRUPT;
    }
    shard_reader_free(r);
    put_msg(errmsg, errmsg_bytes, first);
    if (report)
        *report = rep;
    return st;
}
