/* longctx_main.c - the `longctx` executable: dispatches to the module commands. */
#include "longctx_cli.h"

#include <stdio.h>
#include <string.h>

typedef struct {
    const char *name;
    int (*main)(int argc, char **argv);
    const char *help;
} command;

static const command commands[] = {
    {"prep", prep_main, "raw corpora to a length-upsampled, domain-balanced set of shards (MPI)"},
    {"tokenize", tokenize_main, "text to token ids (Llama 2 / Llama 3 tokenizers, bit-exact)"},
    {"detokenize", detokenize_main, "token ids back to text"},
    {"infer", infer_main, "run a Llama-family model: prompt, generate, logits (HF or llama2.c)"},
    {"perplexity", perplexity_main, "exact per-token NLL of long documents, loss by position"},
    {"eval", eval_main, "long-context evaluations: passkey, needle, ruler (MPI, resumable)"},
    {"plan", plan_main, "memory per rank (weights, KV cache, activations) before loading"},
    {"shard", shard_main, "inspect, verify, print, pack, export and import shard files"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: longctx <command> [options]   (longctx <command> --help)\n\n"
               "Long-context data preparation and inference for MPI clusters.\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "\n  --version    print the version\n  --help       this text\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
        printf("longctx %s\n", LONGCTX_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].main(argc - 1, argv + 1);
    fprintf(stderr, "longctx: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
