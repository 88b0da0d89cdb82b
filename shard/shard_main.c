/* shard_main.c - `longctx shard info|verify|cat|export|import|pack`: options, one library
 * call (shard, megatron), printing. */
#include "cluster.h"
#include "longctx_cli.h"
#include "megatron.h"
#include "shard.h"

#include <errno.h>
#include <getopt.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef unsigned long long ull;

enum { EXIT_RUNTIME = 1, EXIT_USAGE = 2, EXIT_HELP = -1 /* parsers: --help printed */ };

/* ==== common ==================================================================================*/

static const struct option help_only[] = {{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};

static int open_or_log(const char *path, shard_reader **r) {
    int st = shard_reader_open(path, r);
    if (st != SHARD_OK) {
        LOG_ERROR("%s: %s", shard_strerror(st), shard_reader_errmsg(*r));
        shard_reader_free(*r);
        *r = NULL;
    }
    return st;
}

/* ==== info ====================================================================================*/

static void info_usage(FILE *f) {
    fprintf(f, "usage: longctx shard info FILE...\n\n"
               "Prints, per shard: sequences, tokens, document pieces, Megatron documents,\n"
               "blocks, token width, vocabulary, compressed and raw bytes, compression ratio and\n"
               "the metadata JSON. Reads header and index only (use verify to check blocks).\n");
}

static int cmd_info(int argc, char **argv) {
    int c;
    while ((c = getopt_long(argc, argv, "h", help_only, NULL)) != -1) {
        if (c == 'h') {
            info_usage(stdout);
            return 0;
        }
        info_usage(stderr);
        return EXIT_USAGE;
    }
    if (optind >= argc) {
        info_usage(stderr);
        return EXIT_USAGE;
    }
    int rc = 0;
    for (int i = optind; i < argc; i++) {
        shard_reader *r;
        if (open_or_log(argv[i], &r) != SHARD_OK) {
            rc = EXIT_RUNTIME;
            continue;
        }
        const shard_info *in = shard_reader_info(r);
        printf("file: %s\n", argv[i]);
        printf("  format_version: %u\n", in->version);
        printf("  sequences: %llu\n", (ull)in->n_seqs);
        printf("  tokens: %llu\n", (ull)in->n_tokens);
        printf("  document_pieces: %llu\n", (ull)in->n_docs);
        printf("  megatron_documents: %llu\n", (ull)in->n_doc_starts);
        printf("  blocks: %llu\n", (ull)in->n_blocks);
        printf("  vocab_size: %u\n", in->vocab_size);
        printf("  token_bytes: %u\n", in->token_bytes);
        printf("  file_bytes: %llu\n", (ull)in->file_bytes);
        printf("  raw_bytes: %llu\n", (ull)in->raw_bytes);
        printf("  compressed_bytes: %llu\n", (ull)in->comp_bytes);
        printf("  ratio: %.3f\n",
               in->comp_bytes ? (double)in->raw_bytes / (double)in->comp_bytes : 0.0);
        printf("  bytes_per_token: %.3f\n",
               in->n_tokens ? (double)in->file_bytes / (double)in->n_tokens : 0.0);
        printf("  metadata: %s\n", shard_reader_meta(r));
        shard_reader_free(r);
    }
    return rc;
}

/* ==== verify ==================================================================================*/

static void verify_usage(FILE *f) {
    fprintf(f, "usage: longctx shard verify FILE...\n\n"
               "Checks every checksum and structural rule of each shard (header, index, trailer,\n"
               "every block, token ids below the vocabulary, document pieces in order).\n"
               "Prints 'FILE: OK' or 'FILE: CORRUPT: <what, block, byte offset>' on stdout.\n"
               "Exit status: 0 when every file is intact, 1 otherwise.\n");
}

static int cmd_verify(int argc, char **argv) {
    int c;
    while ((c = getopt_long(argc, argv, "h", help_only, NULL)) != -1) {
        if (c == 'h') {
            verify_usage(stdout);
            return 0;
        }
        verify_usage(stderr);
        return EXIT_USAGE;
    }
    if (optind >= argc) {
        verify_usage(stderr);
        return EXIT_USAGE;
    }
    int rc = 0;
    for (int i = optind; i < argc; i++) {
        shard_verify_report rep;
        char msg[1024];
        int st = shard_verify(argv[i], &rep, msg, sizeof msg);
        if (st == SHARD_OK) {
            printf("%s: OK (%llu blocks)\n", argv[i], (ull)rep.n_blocks_checked);
        } else if (st == SHARD_ERR_CORRUPT) {
            printf("%s: CORRUPT: %s", argv[i], msg);
            if (rep.n_blocks_bad > 0)
                printf(" [%llu of %llu blocks bad; first bad block %llu at byte %llu]",
                       (ull)rep.n_blocks_bad, (ull)rep.n_blocks_checked, (ull)rep.first_bad_block,
                       (ull)rep.first_bad_offset);
            printf("\n");
            rc = EXIT_RUNTIME;
        } else {
            printf("%s: ERROR: %s: %s\n", argv[i], shard_strerror(st), msg);
            rc = EXIT_RUNTIME;
        }
    }
    return rc;
}

/* ==== cat =====================================================================================*/

static void cat_usage(FILE *f) {
    fprintf(f, "usage: longctx shard cat [--format text|u32] [--docs] FILE...\n\n"
               "Prints every sequence of the shards, in order, on stdout.\n"
               "  --format text  one line per sequence, ids separated by spaces (default)\n"
               "  --format u32   per sequence a uint32 count then the uint32 ids, little-endian\n"
               "  --docs         (text only) after each sequence a line '# docs' followed by\n"
               "                 start:doc_id:doc_offset for each document piece\n");
}

static int cmd_cat(int argc, char **argv) {
    static const struct option opts[] = {{"format", required_argument, NULL, 'f'},
                                         {"docs", no_argument, NULL, 'd'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int u32 = 0, docs = 0, c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'f':
            if (!strcmp(optarg, "u32")) {
                u32 = 1;
            } else if (strcmp(optarg, "text") != 0) {
                fprintf(stderr, "longctx shard cat: unknown format '%s'\n", optarg);
                return EXIT_USAGE;
            }
            break;
        case 'd':
            docs = 1;
            break;
        case 'h':
            cat_usage(stdout);
            return 0;
        default:
            cat_usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        cat_usage(stderr);
        return EXIT_USAGE;
    }
    static char outbuf[1 << 20];
    setvbuf(stdout, outbuf, _IOFBF, sizeof outbuf);
    uint32_t *ids = NULL;
    uint64_t ids_cap = 0;
    int rc = 0;
    for (int f = optind; f < argc && rc == 0; f++) {
        shard_reader *r;
        if (open_or_log(argv[f], &r) != SHARD_OK) {
            rc = EXIT_RUNTIME;
            break;
        }
        const shard_info *in = shard_reader_info(r);
        for (uint64_t i = 0; i < in->n_seqs; i++) {
            shard_seq s;
            int st = shard_reader_read(r, i, &s);
            if (st != SHARD_OK) {
                LOG_ERROR("%s: %s", shard_strerror(st), shard_reader_errmsg(r));
                rc = EXIT_RUNTIME;
                break;
            }
            if (s.n_tokens > ids_cap) {
                free(ids);
                ids_cap = s.n_tokens;
                ids = malloc(ids_cap * sizeof *ids);
                if (!ids) {
                    LOG_ERROR("out of memory");
                    rc = EXIT_RUNTIME;
                    break;
                }
            }
            shard_tokens_to_u32(s.tokens, in->token_bytes, s.n_tokens, ids);
            if (u32) {
                uint32_t n = (uint32_t)s.n_tokens;
                if (s.n_tokens > UINT32_MAX) {
                    LOG_ERROR("%s: sequence %llu has more than 2^32-1 tokens", argv[f], (ull)i);
                    rc = EXIT_RUNTIME;
                    break;
                }
                fwrite(&n, 4, 1, stdout);
                fwrite(ids, 4, s.n_tokens, stdout);
            } else {
                for (uint64_t k = 0; k < s.n_tokens; k++)
                    printf(k ? " %u" : "%u", ids[k]);
                putchar('\n');
                if (docs) {
                    printf("# docs");
                    for (uint64_t k = 0; k < s.n_docs; k++)
                        printf(" %llu:%llu:%llu", (ull)s.docs[k].start, (ull)s.docs[k].doc_id,
                               (ull)s.docs[k].doc_offset);
                    putchar('\n');
                }
            }
        }
        shard_reader_free(r);
    }
    free(ids);
    if (fflush(stdout) != 0 && rc == 0) {
        LOG_ERROR("writing stdout: %s", strerror(errno));
        rc = EXIT_RUNTIME;
    }
    return rc;
}

/* ==== export (MPI) ============================================================================*/

static void export_usage(FILE *f) {
    fprintf(f,
            "usage: [mpirun -np N] longctx shard export --format megatron --output PREFIX\n"
            "                      [--dtype auto|uint16|int32] FILE...\n\n"
            "Writes PREFIX.bin and PREFIX.idx in Megatron's indexed-dataset layout: one Megatron\n"
            "sequence per packed sequence, in the order of FILE... Under MPI each rank converts\n"
            "a contiguous share of the files and writes at its prefix-sum offset (MPI-IO); the\n"
            "bytes are identical for any number of ranks. The files appear only when the export\n"
            "succeeded (written as PREFIX.bin.tmp and PREFIX.idx.tmp, then renamed).\n"
            "  --dtype auto   (default) the dtype recorded by 'shard import' if every file has\n"
            "                 one, else uint16 (code 8) for vocab_size < 65500, else int32 (4)\n");
}

/* The reason the arguments are unusable, or NULL. */
static const char *export_why(const char *format, const char *dtype, const char *prefix,
                              int n_files, char *buf, size_t buf_bytes) {
    if (!format || strcmp(format, "megatron") != 0)
        return "--format megatron is required (the only export format)";
    if (!prefix)
        return "--output PREFIX is required";
    if (strcmp(dtype, "auto") && strcmp(dtype, "uint16") && strcmp(dtype, "int32"))
        return "--dtype must be auto, uint16 or int32";
    if (n_files <= 0)
        return "no input shards";
    if (megatron_prefix_check(prefix, buf, buf_bytes) != SHARD_OK)
        return buf;
    return NULL;
}

/* The folder of PREFIX must be the same on every rank. Collective. @return -1 to go on,
 * EXIT_USAGE when some rank does not see it, EXIT_RUNTIME when rank 0 cannot write there. */
static int export_dir_shared(int rank, const char *prefix) {
    char dir[4096], err[1024];
    const char *slash = strrchr(prefix, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else
        snprintf(dir, sizeof dir, "%.*s", slash == prefix ? 1 : (int)(slash - prefix), prefix);
    int st = cluster_check_shared_dir(MPI_COMM_WORLD, dir, err, sizeof err);
    if (st != CLUSTER_OK && rank == 0)
        LOG_ERROR("export refused: %s", err[0] ? err : cluster_strerror(st));
    return st == CLUSTER_OK ? -1 : st == CLUSTER_ERR_NOT_SHARED ? EXIT_USAGE : EXIT_RUNTIME;
}

static int cmd_export(int argc, char **argv) {
    static const struct option opts[] = {
        {"format", required_argument, NULL, 'f'}, {"output", required_argument, NULL, 'o'},
        {"dtype", required_argument, NULL, 't'},  {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0}};
    MPI_Init(&argc, &argv);
    int rank, n_ranks;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &n_ranks);
    cluster_log_setup("shard", rank, n_ranks, CLUSTER_LOG_INFO);

    megatron_export_opts o = megatron_export_opts_default();
    const char *format = NULL, *dtype = "auto";
    int c, rc = -1;
    while ((c = getopt_long(argc, argv, "o:vh", opts, NULL)) != -1) {
        switch (c) {
        case 'f':
            format = optarg;
            break;
        case 'o':
            o.prefix = optarg;
            break;
        case 't':
            dtype = optarg;
            break;
        case 'v':
            cluster_log_setup("shard", rank, n_ranks, CLUSTER_LOG_DEBUG);
            break;
        case 'h':
            if (rank == 0)
                export_usage(stdout);
            rc = 0;
            break;
        default:
            rc = EXIT_USAGE;
        }
    }
    char err[1024];
    if (rc < 0) {
        const char *why = export_why(format, dtype, o.prefix, argc - optind, err, sizeof err);
        if (why) {
            if (rank == 0) {
                fprintf(stderr, "longctx shard export: %s\n\n", why);
                export_usage(stderr);
            }
            rc = EXIT_USAGE;
        }
    }
    if (rc < 0) /* every rank writes the files (MPI-IO): their folder must be one all ranks see */
        rc = export_dir_shared(rank, o.prefix);
    if (rc < 0) {
        o.dtype = !strcmp(dtype, "uint16")  ? MEGATRON_DTYPE_UINT16
                  : !strcmp(dtype, "int32") ? MEGATRON_DTYPE_INT32
                                            : 0;
        megatron_export_report rep;
        int st = megatron_export(MPI_COMM_WORLD, &o, argv + optind, argc - optind, &rep, err,
                                 sizeof err);
        if (st != SHARD_OK && rank == 0)
            LOG_ERROR("export failed: %s: %s", shard_strerror(st), err);
        if (st == SHARD_OK && rank == 0)
            LOG_INFO("wrote %s.{bin,idx}: %llu sequences, %llu tokens, %llu documents, dtype %d",
                     o.prefix, (ull)rep.n_seqs, (ull)rep.n_tokens, (ull)rep.n_docs, rep.dtype);
        rc = st == SHARD_OK ? 0 : EXIT_RUNTIME;
    }
    MPI_Finalize();
    return rc;
}

/* ==== import ==================================================================================*/

static void import_usage(FILE *f) {
    megatron_import_opts d = megatron_import_opts_default();
    fprintf(
        f,
        "usage: longctx shard import --format megatron --output FILE [--vocab-size N]\n"
        "                            [--level L] [--block-bytes B] PREFIX\n\n"
        "Compresses the Megatron dataset PREFIX.bin/PREFIX.idx into one shard: one packed\n"
        "sequence per Megatron sequence, with one document piece naming its Megatron\n"
        "document. The dtype and document_indices are kept, so export gives back the same\n"
        "bytes. Supports dtype 8 (uint16) and 4 (int32). One process: not under mpirun -np N>1.\n"
        "  --vocab-size N   (default: largest id + 1)\n"
        "  --level L        zstd level (default %d)\n"
        "  --block-bytes B  raw bytes per compressed block (default %llu)\n",
        d.level, (ull)d.block_bytes);
}

/* Parses the options into *o, *out, *prefix; 0, or the exit code (help, usage error). */
static int import_parse(int argc, char **argv, megatron_import_opts *o, const char **out,
                        const char **prefix) {
    static const struct option opts[] = {{"format", required_argument, NULL, 'f'},
                                         {"output", required_argument, NULL, 'o'},
                                         {"vocab-size", required_argument, NULL, 'V'},
                                         {"level", required_argument, NULL, 'l'},
                                         {"block-bytes", required_argument, NULL, 'b'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *format = NULL;
    unsigned long vocab;
    unsigned long long block;
    int c;
    char *end;
    while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'f':
            format = optarg;
            break;
        case 'o':
            *out = optarg;
            break;
        case 'V':
            vocab = strtoul(optarg, &end, 10);
            if (*end || vocab == 0 || vocab > UINT32_MAX) {
                fprintf(stderr, "longctx shard import: bad --vocab-size '%s'\n", optarg);
                return EXIT_USAGE;
            }
            o->vocab_size = (uint32_t)vocab;
            break;
        case 'l':
            o->level = (int)strtol(optarg, &end, 10);
            if (*end) {
                fprintf(stderr, "longctx shard import: bad --level '%s'\n", optarg);
                return EXIT_USAGE;
            }
            break;
        case 'b':
            block = strtoull(optarg, &end, 10);
            if (*end || block == 0) {
                fprintf(stderr, "longctx shard import: bad --block-bytes '%s'\n", optarg);
                return EXIT_USAGE;
            }
            o->block_bytes = block;
            break;
        case 'h':
            import_usage(stdout);
            return EXIT_HELP;
        default:
            import_usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (!format || strcmp(format, "megatron") != 0 || !*out || optind != argc - 1) {
        fprintf(stderr, "longctx shard import: need --format megatron, --output FILE and one "
                        "PREFIX\n\n");
        import_usage(stderr);
        return EXIT_USAGE;
    }
    *prefix = argv[optind];
    return 0;
}

static int cmd_import(int argc, char **argv) {
    /* import is not collective: under mpirun every rank would write the same shard at once */
    MPI_Init(&argc, &argv);
    int rank, n_ranks, rc;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &n_ranks);
    if (n_ranks > 1) {
        if (rank == 0)
            fprintf(stderr,
                    "longctx shard import: runs as one process, not %d MPI ranks (it is not "
                    "collective); run it without mpirun or with -np 1\n",
                    n_ranks);
        MPI_Finalize();
        return EXIT_USAGE;
    }
    megatron_import_opts o = megatron_import_opts_default();
    const char *out = NULL, *prefix = NULL;
    rc = import_parse(argc, argv, &o, &out, &prefix);
    if (rc == 0) {
        megatron_import_report rep;
        char err[1024];
        int st = megatron_import(prefix, out, &o, &rep, err, sizeof err);
        if (st != SHARD_OK) {
            LOG_ERROR("%s: %s", shard_strerror(st), err);
            rc = EXIT_RUNTIME;
        } else {
            LOG_INFO("imported %s: %llu sequences, %llu documents into %s", prefix, (ull)rep.n_seqs,
                     (ull)rep.n_docs, out);
        }
    }
    MPI_Finalize();
    return rc == EXIT_HELP ? 0 : rc;
}

/* ==== pack ====================================================================================*/

static void pack_usage(FILE *f) {
    shard_pack_opts d = shard_pack_opts_default();
    fprintf(f,
            "usage: longctx shard pack --output FILE --vocab-size N [--seq-len L] [--format "
            "text|u32]\n"
            "                          [--bos ID] [--eos ID] [--level L] [INPUT|-]\n\n"
            "Packs tokenized documents (the output of 'longctx tokenize') into sequences of L\n"
            "tokens: documents run across sequence boundaries (Fu et al.'s concat packing) and\n"
            "every piece is recorded (start, document number, offset in the document). The last\n"
            "sequence may be shorter; no token is dropped.\n"
            "  --format text  one document per line, ids separated by spaces (default)\n"
            "  --format u32   per document a uint32 count then the ids, little-endian\n"
            "  --seq-len L    tokens per sequence (default %llu)\n"
            "  --bos ID       prepend ID to every document (default: none)\n"
            "  --eos ID       append ID to every document (default: none)\n"
            "  --level L      zstd level (default %d)\n",
            (ull)d.seq_len, d.level);
}

/* Parses the options into *o, *out; 0, or the exit code (help, usage error). */
static int pack_parse(int argc, char **argv, shard_pack_opts *o, const char **out) {
    static const struct option opts[] = {{"output", required_argument, NULL, 'o'},
                                         {"vocab-size", required_argument, NULL, 'V'},
                                         {"seq-len", required_argument, NULL, 'L'},
                                         {"format", required_argument, NULL, 'f'},
                                         {"bos", required_argument, NULL, 'B'},
                                         {"eos", required_argument, NULL, 'E'},
                                         {"level", required_argument, NULL, 'l'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    unsigned long long vocab = 0;
    int c;
    char *end = NULL;
    while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        errno = 0;
        switch (c) {
        case 'o':
            *out = optarg;
            break;
        case 'V':
            vocab = strtoull(optarg, &end, 10);
            break;
        case 'L':
            o->seq_len = strtoull(optarg, &end, 10);
            break;
        case 'B':
            o->bos = strtoull(optarg, &end, 10);
            break;
        case 'E':
            o->eos = strtoull(optarg, &end, 10);
            break;
        case 'l':
            o->level = (int)strtol(optarg, &end, 10);
            break;
        case 'f':
            if (!strcmp(optarg, "u32")) {
                o->u32 = 1;
            } else if (strcmp(optarg, "text") != 0) {
                fprintf(stderr, "longctx shard pack: unknown format '%s'\n", optarg);
                return EXIT_USAGE;
            }
            break;
        case 'h':
            pack_usage(stdout);
            return EXIT_HELP;
        default:
            pack_usage(stderr);
            return EXIT_USAGE;
        }
        if (end && (*end || errno)) {
            fprintf(stderr, "longctx shard pack: bad number '%s'\n", optarg);
            return EXIT_USAGE;
        }
        end = NULL;
    }
    if (!*out || vocab == 0 || vocab > UINT32_MAX || o->seq_len == 0 || optind < argc - 1 ||
        (o->bos != SHARD_PACK_NONE && o->bos >= vocab) ||
        (o->eos != SHARD_PACK_NONE && o->eos >= vocab)) {
        fprintf(stderr, "longctx shard pack: need --output, --vocab-size (ids, --bos and --eos "
                        "below it), --seq-len > 0 and at most one INPUT\n\n");
        pack_usage(stderr);
        return EXIT_USAGE;
    }
    o->vocab_size = (uint32_t)vocab;
    return 0;
}

static int cmd_pack(int argc, char **argv) {
    shard_pack_opts o = shard_pack_opts_default();
    const char *out = NULL;
    int rc = pack_parse(argc, argv, &o, &out);
    if (rc != 0)
        return rc == EXIT_HELP ? 0 : rc;
    const char *name = optind < argc ? argv[optind] : "-";
    FILE *in = strcmp(name, "-") ? fopen(name, "rb") : stdin;
    if (!in) {
        LOG_ERROR("%s: cannot open: %s", name, strerror(errno));
        return EXIT_RUNTIME;
    }
    shard_pack_report rep;
    char err[1024];
    int st = shard_pack(in, name, out, &o, &rep, err, sizeof err);
    if (st != SHARD_OK)
        LOG_ERROR("%s", err);
    else
        LOG_INFO("packed %llu documents, %llu tokens into %s", (ull)rep.n_docs, (ull)rep.n_tokens,
                 out);
    if (in != stdin)
        fclose(in);
    return st == SHARD_OK ? 0 : EXIT_RUNTIME;
}

/* ==== dispatch ================================================================================*/

static void usage(FILE *f) {
    fprintf(f, "usage: longctx shard <info|verify|cat|export|import|pack> [options] ...\n\n"
               "  info     sequences, tokens, documents, blocks, ratio, metadata\n"
               "  verify   check every checksum; exit 1 naming file, block and offset on damage\n"
               "  cat      print sequences as ids (text or u32)\n"
               "  export   write Megatron .bin/.idx (MPI-parallel: mpirun -np N ...)\n"
               "  import   compress a Megatron .bin/.idx into a shard\n"
               "  pack     pack tokenized documents (text or u32 ids) into sequences\n\n"
               "longctx shard <command> --help for each command's options.\n");
}

static int run(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    optind = 0; /* glibc: full re-initialisation of getopt */
    if (!strcmp(cmd, "info"))
        return cmd_info(argc - 1, argv + 1);
    if (!strcmp(cmd, "verify"))
        return cmd_verify(argc - 1, argv + 1);
    if (!strcmp(cmd, "cat"))
        return cmd_cat(argc - 1, argv + 1);
    if (!strcmp(cmd, "export"))
        return cmd_export(argc - 1, argv + 1);
    if (!strcmp(cmd, "import"))
        return cmd_import(argc - 1, argv + 1);
    if (!strcmp(cmd, "pack"))
        return cmd_pack(argc - 1, argv + 1);
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "longctx shard: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return EXIT_USAGE;
}

int shard_main(int argc, char **argv) {
    cluster_log_setup("shard", 0, 1, CLUSTER_LOG_INFO);
    int rc = run(argc, argv);
    /* stdout carries the results: a write that failed (a full disk, /dev/full) is a failure,
     * also when the last buffer is flushed only here */
    errno = 0;
    if ((fflush(stdout) != 0 || ferror(stdout)) && rc == 0) {
        LOG_ERROR("writing stdout: %s", errno ? strerror(errno) : "write error");
        rc = EXIT_RUNTIME;
    }
    return rc;
}
