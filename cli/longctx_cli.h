/* longctx_cli.h - entry points of the `longctx <command>` subcommands, one per module.
 * Each takes argv starting at the command name and returns the process exit code
 * (0 success, 1 runtime failure, 2 usage error, LONGCTX_EXIT_STOPPED after a clean stop on
 * SIGTERM or SIGUSR1: finished work kept, the same command resumes; jobs/ requeue on it).
 * Commands that use MPI initialise and finalise it themselves. */
#ifndef LONGCTX_CLI_H
#define LONGCTX_CLI_H

#define LONGCTX_EXIT_STOPPED 75 /* sysexits.h's EX_TEMPFAIL: try again */

int shard_main(int argc, char **argv);
int tokenize_main(int argc, char **argv);
int detokenize_main(int argc, char **argv);
int prep_main(int argc, char **argv);
int infer_main(int argc, char **argv);
int plan_main(int argc, char **argv);
int perplexity_main(int argc, char **argv);
int eval_main(int argc, char **argv);
int eval_ruler_main(int argc, char **argv); /* `longctx eval ruler` (eval_main dispatches) */

#endif
