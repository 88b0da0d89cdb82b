/* fuzz_prep_json.c - libFuzzer target: arbitrary bytes as a jsonl file. The reader's fast JSON
 * path and json-c alone (prep_read_opts.json_c_only) must give the same records: rejects,
 * details, texts and domains. The first byte picks the text and domain paths and the UTF-8
 * policy. */
#include "prep_read.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int same_record(const prep_record *a, const prep_record *b) {
    return a->ordinal == b->ordinal && a->offset == b->offset && a->reject == b->reject &&
           a->n_text == b->n_text && !a->text == !b->text &&
           (!a->text || memcmp(a->text, b->text, a->n_text + 1) == 0) &&
           a->n_domain == b->n_domain && !a->domain == !b->domain &&
           (!a->domain || memcmp(a->domain, b->domain, a->n_domain) == 0) &&
           !a->detail == !b->detail && (!a->detail || strcmp(a->detail, b->detail) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char *const text_paths[] = {"text", "a.text", "text", "a.b.text"};
    static const char *const domain_paths[] = {NULL, "src", "a.src", "text"};
    static char path[256];
    if (size == 0)
        return 0;
    if (!path[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(path, sizeof path, "%s/fuzz_prep_json.%ld.jsonl", t && *t ? t : "/tmp",
                 (long)getpid());
    }
    FILE *f = fopen(path, "wb");
    if (!f)
        return 0;
    fwrite(data + 1, 1, size - 1, f);
    fclose(f);

    prep_input in = {0};
    in.path = path;
    in.bytes = size - 1;
    in.format = PREP_FMT_JSONL;
    prep_unit u = {0, 0, size - 1};
    prep_read_opts o = prep_read_opts_default();
    o.text_path = text_paths[data[0] & 3];
    o.domain_path = domain_paths[data[0] >> 2 & 3];
    o.utf8 = data[0] >> 4 & 1 ? PREP_UTF8_REJECT : PREP_UTF8_REPLACE;
    o.block_bytes = data[0] >> 5 & 1 ? 7 : 0; /* tiny blocks: lines cross reads */
    prep_reader *fast = NULL, *slow = NULL;
    int sf = prep_reader_open(&in, &u, &o, &fast);
    o.json_c_only = 1;
    int ss = prep_reader_open(&in, &u, &o, &slow);
    while (sf == PREP_READ_OK && ss == PREP_READ_OK) {
        prep_record a, b;
        sf = prep_reader_next(fast, &a);
        ss = prep_reader_next(slow, &b);
        if (sf == PREP_READ_OK && ss == PREP_READ_OK && !same_record(&a, &b))
            __builtin_trap();
    }
    if (sf != ss)
        __builtin_trap();
    prep_reader_free(fast);
    prep_reader_free(slow);
    remove(path);
    return 0;
}
