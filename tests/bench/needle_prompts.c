/* needle_prompts.c - the prompts of a needle grid, as `longctx eval needle` builds them (the
 * eval library: eval_needle_make), one file of ids per item for `longctx infer --prompt-ids
 * @FILE`: DIR/item<i>.ids (ids separated by spaces), items numbered as the job numbers them
 * (lengths outer, depths inner), and DIR/items.tsv (item, length, depth, prompt tokens,
 * needle_pos). For bench_needle.sh, which runs the cells as separate processes.
 * usage: needle_prompts TOKENIZER DIR LENGTHS DEPTHS HAYSTACK... (LENGTHS, DEPTHS: a,b,c) */
#include "eval.h"
#include "tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t split(const char *arg, double *out, size_t cap) {
    size_t n = 0;
    for (const char *p = arg; n < cap && *p;) {
        char *end;
        out[n++] = strtod(p, &end);
        if (end == p)
            return 0;
        p = *end == ',' ? end + 1 : end;
    }
    return n;
}

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: needle_prompts TOKENIZER DIR LENGTHS DEPTHS HAYSTACK...\n");
        return 2;
    }
    double lengths[256], depths[256];
    const size_t nl = split(argv[3], lengths, 256), nd = split(argv[4], depths, 256);
    tokenizer *t = NULL;
    eval_ctx *c = NULL;
    eval_haystack *h = NULL;
    if (!nl || !nd) {
        fprintf(stderr, "needle_prompts: bad LENGTHS or DEPTHS\n");
        return 2;
    }
    if (tokenizer_load(argv[1], &t) != TOK_OK) {
        fprintf(stderr, "needle_prompts: %s: %s\n", argv[1], t ? tokenizer_errmsg(t) : "");
        tokenizer_free(t);
        return 1;
    }
    int rc =
        eval_ctx_create(t, &c) != EVAL_OK ||
        eval_haystack_load(c, (const char *const *)argv + 5, (size_t)(argc - 5), &h) != EVAL_OK;
    char path[4096];
    snprintf(path, sizeof path, "%s/items.tsv", argv[2]);
    FILE *tsv = rc ? NULL : fopen(path, "w");
    if (!rc && !tsv) {
        perror(path);
        rc = 1;
    }
    for (size_t l = 0, i = 0; !rc && l < nl; l++)
        for (size_t d = 0; !rc && d < nd; d++, i++) {
            eval_prompt p;
            if (eval_needle_make(c, h, (size_t)lengths[l], depths[d], &p) != EVAL_OK) {
                rc = 1;
                break;
            }
            snprintf(path, sizeof path, "%s/item%zu.ids", argv[2], i);
            FILE *f = fopen(path, "w");
            for (size_t k = 0; f && k < p.n_ids; k++)
                fprintf(f, k ? " %u" : "%u", p.ids[k]);
            if (!f || fclose(f) != 0) {
                perror(path);
                rc = 1;
            }
            fprintf(tsv, "%zu\t%zu\t%g\t%zu\t%zu\n", i, (size_t)lengths[l], depths[d], p.n_ids,
                    p.needle_pos);
            eval_prompt_free(&p);
        }
    if (rc && c)
        fprintf(stderr, "needle_prompts: %s\n", eval_ctx_errmsg(c));
    if (tsv && fclose(tsv) != 0)
        rc = 1;
    eval_haystack_free(h);
    eval_ctx_free(c);
    tokenizer_free(t);
    return rc;
}
