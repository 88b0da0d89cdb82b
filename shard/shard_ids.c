/* shard_ids.c - the id-list formats the command-line tools exchange (tokenize output, shard
 * pack and detokenize input): text (a line of decimal ids per document) and u32 (per document a
 * uint32 count, then the uint32 ids, little-endian). */
#include "shard_internal.h"

#include <stdlib.h>

static int push(uint32_t **ids, uint64_t *cap, uint64_t *n, uint32_t v) {
    if (*n == *cap) {
        uint64_t nc = *cap ? 2 * *cap : 4096;
        uint32_t *p = realloc(*ids, (size_t)nc * 4);
        if (!p)
            return -1;
        *ids = p;
        *cap = nc;
    }
    (*ids)[(*n)++] = v;
    return 0;
}

int shard_ids_read(FILE *in, int u32, uint32_t **ids, uint64_t *cap, uint64_t *n, uint64_t *offset,
                   const char **why) {
    *n = 0;
    *why = NULL;
    if (u32) {
        uint32_t cnt;
        size_t got = fread(&cnt, 1, 4, in);
        if (got == 0)
            return SHARD_DONE;
        if (got != 4) {
            *why = "truncated u32 count";
            return SHARD_ERR_CORRUPT;
        }
        if (cnt > *cap) {
            uint32_t *p = realloc(*ids, (size_t)cnt * 4);
            if (!p)
                return SHARD_ERR_NOMEM;
            *ids = p;
            *cap = cnt;
        }
        if (fread(*ids, 4, cnt, in) != cnt) {
            *why = "truncated u32 document";
            return SHARD_ERR_CORRUPT;
        }
        *offset += 4 + 4 * (uint64_t)cnt;
        *n = cnt;
        return SHARD_OK;
    }
    int c, any = 0, in_num = 0;
    uint64_t v = 0;
    while ((c = getc(in)) != EOF) {
        any = 1;
        if (c >= '0' && c <= '9') {
            v = v * 10 + (uint64_t)(c - '0');
            in_num = 1;
            if (v > UINT32_MAX) {
                *why = "id larger than 2^32-1";
                return SHARD_ERR_CORRUPT;
            }
            (*offset)++;
            continue;
        }
        if (in_num && push(ids, cap, n, (uint32_t)v) != 0)
            return SHARD_ERR_NOMEM;
        v = 0;
        in_num = 0;
        if (c == '\n') {
            (*offset)++;
            return SHARD_OK;
        }
        if (c != ' ' && c != '\t' && c != '\r') {
            *why = "unexpected byte in a text id list";
            return SHARD_ERR_CORRUPT;
        }
        (*offset)++;
    }
    if (in_num && push(ids, cap, n, (uint32_t)v) != 0)
        return SHARD_ERR_NOMEM;
    return any ? SHARD_OK : SHARD_DONE;
}
