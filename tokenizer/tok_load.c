/* tok_load.c - tokenizer_load(): reads the file, recognises its format and dispatches to
 * tok_load_hf() or tok_load_spm(), then builds the tables every format shares. */
#include "tok_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

/* SPM words may be cut before a "▁" that follows another character only if no piece holds
 * such a point: then no merge can cross it, and BPE per word equals BPE on the whole text. */
static void find_split_at_space(tokenizer *t) {
    t->split_at_space = t->kind == TOK_KIND_SPM && t->escape_spaces;
    for (uint32_t id = 0; t->split_at_space && id < t->n_tokens; id++) {
        if (t->tok_type[id] != TOK_TYPE_NORMAL)
            continue;
        size_t n;
        const char *p = tok_vocab_key(t, id, &n);
        for (size_t i = 3; i + 3 <= n; i++)
            if (!memcmp(p + i, "\xe2\x96\x81", 3) && memcmp(p + i - 3, "\xe2\x96\x81", 3) != 0) {
                t->split_at_space = 0;
                break;
            }
    }
}

int tokenizer_load(const char *path, tokenizer **out) {
    *out = NULL;
    tokenizer *t = calloc(1, sizeof *t);
    if (!t)
        return TOK_ERR_NOMEM;
    *out = t;
    t->bos_id = t->eos_id = t->unk_id = -1;
    for (int b = 0; b < 256; b++)
        t->byte_id[b] = TOK_NONE;

    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        TOK_FAIL(t, TOK_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        TOK_FAIL(t, TOK_ERR_IO, "%s: not a regular file", path);
    }
    size_t n = (size_t)sb.st_size;
    char *data = malloc(n + 1);
    if (!data) {
        close(fd);
        TOK_FAIL(t, TOK_ERR_NOMEM, "%s: out of memory for %zu bytes", path, n);
    }
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, data + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (got != n) {
        free(data);
        TOK_FAIL(t, TOK_ERR_IO, "%s: read %zu of %zu bytes", path, got, n);
    }
    data[n] = '\0';
    t->checksum = XXH3_64bits(data, n);

    size_t i = 0;
    while (i < n && (data[i] == ' ' || data[i] == '\n' || data[i] == '\r' || data[i] == '\t'))
        i++;
    int st = tok_classes_build(t);
    if (st == TOK_OK)
        st = i < n && data[i] == '{' ? tok_load_hf(t, path, data, n)
                                     : tok_load_spm(t, path, (const uint8_t *)data, n);
    free(data);
    if (st == TOK_OK)
        st = tok_special_index(t);
    if (st == TOK_OK)
        find_split_at_space(t);
    return st;
}
