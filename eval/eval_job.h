/* eval_job.h - what the eval commands' job files (eval_main.c, eval_ruler_main.c,
 * eval_ppl_main.c) share; not part of the eval library's interface (eval.h). */
#ifndef LONGCTX_EVAL_JOB_H
#define LONGCTX_EVAL_JOB_H

#include "infer.h"

#include <getopt.h>

struct json_object;

/* the getopt entries of infer's run options that eval takes, each with val code (the option's
 * name tells which: eval_run_opt) */
#define EVAL_RUN_OPTS(code)                                                                        \
    {"kv-dtype", required_argument, 0, (code)}, {"act-dtype", required_argument, 0, (code)},       \
        {"prefill-chunk", required_argument, 0, (code)}, {                                         \
        "mem-topk", required_argument, 0, (code)                                                   \
    }
/* their --help lines */
#define EVAL_RUN_OPTS_HELP                                                                         \
    "  --kv-dtype D         f32 (default) or bf16 KV cache (a 7B at 128K: 64 or 32 GiB)\n"         \
    "  --act-dtype D        f32 (default) or bf16 prefill products (see longctx infer)\n"          \
    "  --prefill-chunk N    prompt tokens per step (default 512)\n"                                \
    "  --mem-topk K         LongLLaMA: the K best memory entries per query (0: all)\n"

/* After a prompt's prefill (status prefill_st, the last row's logits at row, V wide): up to
 * n_new greedy tokens into gen (*n_gen), stopping at cfg's EOS, the prompt n_prompt long.
 * Non-finite logits end the item, not the job: *numeric names where (and *n_gen is 0), logged
 * as recorded with score 0. @return 0, or EXIT_RUNTIME (logged) for any other failure. */
int eval_generate(infer_state *s, const infer_config *cfg, int prefill_st, const float *row, int V,
                  void *work, int n_prompt, int n_new, uint32_t *gen, int *n_gen,
                  const char **numeric, unsigned long long item);
/* text[0, n) with every invalid UTF-8 sequence (a cut byte token) as U+FFFD, so that a JSON
 * line holds UTF-8 (malloc'd, NUL-terminated, *out_n bytes); NULL when out of memory */
char *eval_utf8_clean(const char *text, size_t n, size_t *out_n);

/* option name's value into r (infer_opts_parse); 0, or prints why and returns 2 (usage) */
int eval_run_opt(const char *name, const char *value, infer_opts *r);
/* the run options into a run's config.json: what changes the answers (a rerun with others is
 * refused) */
void eval_run_opts_json(struct json_object *o, const infer_opts *r);

#endif
