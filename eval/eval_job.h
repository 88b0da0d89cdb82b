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

/* option name's value into r (infer_opts_parse); 0, or prints why and returns 2 (usage) */
int eval_run_opt(const char *name, const char *value, infer_opts *r);
/* the run options into a run's config.json: what changes the answers (a rerun with others is
 * refused) */
void eval_run_opts_json(struct json_object *o, const infer_opts *r);

#endif
