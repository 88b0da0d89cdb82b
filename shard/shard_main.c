/* shard_main.c - `longctx shard info|verify|cat|export|import`. */
#include "cluster.h"
#include "longctx_cli.h"
#include "shard.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

typedef unsigned long long ull;

enum { EXIT_RUNTIME = 1, EXIT_USAGE = 2 };

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
            "bytes are identical for any number of ranks.\n"
            "  --dtype auto   (default) the dtype recorded by 'shard import' if every file has\n"
            "                 one, else uint16 (code 8) for vocab_size < 65500, else int32 (4)\n");
}

/* Per-rank totals for the layout: sequences, tokens, document_indices entries. */
typedef struct {
    uint64_t n_seqs;
    uint64_t n_tokens;
    uint64_t n_doc_entries;
} export_counts;

/* MPI_File_write_at for any size (count is an int). */
static int write_at_all(MPI_File fh, uint64_t off, const void *buf, uint64_t n) {
    const uint8_t *p = buf;
    while (n > 0) {
        int chunk = n > (1u << 30) ? (1 << 30) : (int)n;
        MPI_Status ms;
        if (MPI_File_write_at(fh, (MPI_Offset)off, p, chunk, MPI_BYTE, &ms) != MPI_SUCCESS)
            return -1;
        int done = 0;
        MPI_Get_count(&ms, MPI_BYTE, &done);
        if (done != chunk)
            return -1;
        p += chunk;
        off += (uint64_t)chunk;
        n -= (uint64_t)chunk;
    }
    return 0;
}

/* The dtype a shard's metadata asks for (from import), or 0. */
static int meta_dtype(const char *meta) {
    json_object *o = json_tokener_parse(meta), *v;
    int d = 0;
    if (o && json_object_object_get_ex(o, "megatron_dtype", &v))
        d = json_object_get_int(v);
    json_object_put(o);
    return d == MEGATRON_DTYPE_UINT16 || d == MEGATRON_DTYPE_INT32 ? d : 0;
}

typedef struct {
    const char *prefix;
    const char *dtype_opt;
    char **files;
    int n_files;
} export_args;

/* Converts this rank's files; all ranks call it. Returns a status agreed by all ranks. */
static int export_run(MPI_Comm comm, const export_args *a, char *err, size_t err_bytes) {
    int rank, n_ranks;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &n_ranks);
    int f0 = (int)((int64_t)a->n_files * rank / n_ranks);
    int f1 = (int)((int64_t)a->n_files * (rank + 1) / n_ranks);
    int n_local = f1 - f0;
    shard_reader **readers = calloc((size_t)(n_local ? n_local : 1), sizeof *readers);
    int st = readers ? 0 : SHARD_ERR_NOMEM;
    char msg[1024] = "";
    if (!readers)
        snprintf(msg, sizeof msg, "out of memory");

    /* 1. open this rank's files; local counts, vocabulary, dtype wishes */
    export_counts local = {0, 0, 0};
    uint32_t max_vocab = 0;
    int want[2] = {0, 0}; /* files asking for uint16, int32 */
    int n_files_meta = 0;
    for (int i = 0; st == SHARD_OK && i < n_local; i++) {
        st = shard_reader_open(a->files[f0 + i], &readers[i]);
        if (st != SHARD_OK) {
            snprintf(msg, sizeof msg, "%s", shard_reader_errmsg(readers[i]));
            break;
        }
        const shard_info *in = shard_reader_info(readers[i]);
        local.n_seqs += in->n_seqs;
        local.n_tokens += in->n_tokens;
        local.n_doc_entries += in->n_doc_starts;
        if (in->vocab_size > max_vocab)
            max_vocab = in->vocab_size;
        int d = meta_dtype(shard_reader_meta(readers[i]));
        if (d) {
            n_files_meta++;
            want[d == MEGATRON_DTYPE_INT32]++;
        }
    }
    st = cluster_agree_msg(comm, st, msg, err, err_bytes, NULL);
    if (st != SHARD_OK)
        goto done;

    /* 2. global layout: dtype, totals, this rank's offsets */
    uint32_t g_vocab;
    int g_meta[3], l_meta[3] = {n_files_meta, want[0], want[1]};
    MPI_Allreduce(&max_vocab, &g_vocab, 1, MPI_UINT32_T, MPI_MAX, comm);
    MPI_Allreduce(l_meta, g_meta, 3, MPI_INT, MPI_SUM, comm);
    int dtype;
    if (!strcmp(a->dtype_opt, "uint16"))
        dtype = MEGATRON_DTYPE_UINT16;
    else if (!strcmp(a->dtype_opt, "int32"))
        dtype = MEGATRON_DTYPE_INT32;
    else if (g_meta[0] == a->n_files && (g_meta[1] == 0 || g_meta[2] == 0))
        dtype = g_meta[1] ? MEGATRON_DTYPE_UINT16 : MEGATRON_DTYPE_INT32;
    else
        dtype = shard_megatron_dtype_for_vocab(g_vocab);
    if (dtype == MEGATRON_DTYPE_UINT16 && g_vocab > 65536u) {
        snprintf(err, err_bytes, "--dtype uint16 cannot hold a vocabulary of %u", g_vocab);
        st = SHARD_ERR_ARG;
        goto done;
    }
    uint64_t item = dtype == MEGATRON_DTYPE_UINT16 ? 2 : 4;
    export_counts off = {0, 0, 0}, tot;
    MPI_Exscan(&local, &off, 3, MPI_UINT64_T, MPI_SUM, comm);
    if (rank == 0)
        memset(&off, 0, sizeof off); /* MPI_Exscan leaves rank 0's result undefined */
    MPI_Allreduce(&local, &tot, 3, MPI_UINT64_T, MPI_SUM, comm);
    const uint64_t N = tot.n_seqs, D = tot.n_doc_entries + 1;
    const uint64_t lengths_at = MEGATRON_HEADER_BYTES, pointers_at = lengths_at + 4 * N;
    const uint64_t docs_at = pointers_at + 8 * N;

    /* 3. open both files collectively and size them exactly */
    char path_bin[4200], path_idx[4200];
    snprintf(path_bin, sizeof path_bin, "%s.bin", a->prefix);
    snprintf(path_idx, sizeof path_idx, "%s.idx", a->prefix);
    MPI_File fb = MPI_FILE_NULL, fi = MPI_FILE_NULL;
    int amode = MPI_MODE_CREATE | MPI_MODE_WRONLY;
    int e1 = MPI_File_open(comm, path_bin, amode, MPI_INFO_NULL, &fb);
    int e2 = MPI_File_open(comm, path_idx, amode, MPI_INFO_NULL, &fi);
    if (e1 != MPI_SUCCESS || e2 != MPI_SUCCESS) {
        snprintf(err, err_bytes, "cannot create %s", e1 != MPI_SUCCESS ? path_bin : path_idx);
        st = SHARD_ERR_IO;
        if (fb != MPI_FILE_NULL)
            MPI_File_close(&fb);
        if (fi != MPI_FILE_NULL)
            MPI_File_close(&fi);
        goto done;
    }
    MPI_File_set_size(fb, (MPI_Offset)(tot.n_tokens * item));
    MPI_File_set_size(fi, (MPI_Offset)(docs_at + 8 * D));

    /* 4. this rank's bytes */
    int32_t *lengths = malloc((local.n_seqs ? local.n_seqs : 1) * sizeof *lengths);
    int64_t *pointers = malloc((local.n_seqs ? local.n_seqs : 1) * sizeof *pointers);
    int64_t *doc_idx = malloc((local.n_doc_entries + 1) * sizeof *doc_idx);
    uint64_t buf_cap = 1u << 22; /* tokens per .bin write */
    uint8_t *buf = malloc(buf_cap * item);
    if (!lengths || !pointers || !doc_idx || !buf) {
        snprintf(msg, sizeof msg, "out of memory");
        st = SHARD_ERR_NOMEM;
    }
    uint64_t seq = 0, n_dx = 0, buf_n = 0, buf_at = off.n_tokens * item;
    for (int i = 0; st == SHARD_OK && i < n_local; i++) {
        shard_reader *r = readers[i];
        const shard_info *in = shard_reader_info(r);
        for (uint64_t s = 0; st == SHARD_OK && s < in->n_seqs; s++) {
            shard_seq sq;
            st = shard_reader_read(r, s, &sq);
            if (st != SHARD_OK) {
                snprintf(msg, sizeof msg, "%s", shard_reader_errmsg(r));
                break;
            }
            if (sq.n_tokens > INT32_MAX) {
                snprintf(msg, sizeof msg,
                         "%s: sequence %llu has %llu tokens; Megatron lengths "
                         "are int32",
                         a->files[f0 + i], (ull)s, (ull)sq.n_tokens);
                st = SHARD_ERR_ARG;
                break;
            }
            uint64_t gseq = off.n_seqs + seq;
            for (uint32_t k = 0; k < sq.n_doc_starts; k++)
                doc_idx[n_dx++] = (int64_t)gseq;
            lengths[seq] = (int32_t)sq.n_tokens;
            pointers[seq] = (int64_t)(buf_at + buf_n * item);
            seq++;
            for (uint64_t t = 0; t < sq.n_tokens;) {
                uint64_t take =
                    sq.n_tokens - t < buf_cap - buf_n ? sq.n_tokens - t : buf_cap - buf_n;
                if (item == in->token_bytes) {
                    memcpy(buf + buf_n * item, (const uint8_t *)sq.tokens + t * item, take * item);
                } else if (item == 4) { /* uint16 shard into int32 */
                    const uint16_t *src = (const uint16_t *)sq.tokens + t;
                    int32_t *dst = (int32_t *)(void *)buf + buf_n;
                    for (uint64_t k = 0; k < take; k++)
                        dst[k] = src[k];
                } else { /* uint32 shard (vocab <= 65536 forced to uint16) */
                    const uint32_t *src = (const uint32_t *)sq.tokens + t;
                    uint16_t *dst = (uint16_t *)(void *)buf + buf_n;
                    for (uint64_t k = 0; k < take; k++)
                        dst[k] = (uint16_t)src[k];
                }
                buf_n += take;
                t += take;
                if (buf_n == buf_cap) {
                    if (write_at_all(fb, buf_at, buf, buf_n * item) != 0) {
                        snprintf(msg, sizeof msg, "%s: write at offset %llu failed", path_bin,
                                 (ull)buf_at);
                        st = SHARD_ERR_IO;
                        break;
                    }
                    buf_at += buf_n * item;
                    buf_n = 0;
                }
            }
        }
        if (st == SHARD_OK)
            for (uint64_t k = 0; k < in->n_trailing_doc_starts; k++)
                doc_idx[n_dx++] = (int64_t)(off.n_seqs + seq);
    }
    if (st == SHARD_OK && buf_n && write_at_all(fb, buf_at, buf, buf_n * item) != 0) {
        snprintf(msg, sizeof msg, "%s: write at offset %llu failed", path_bin, (ull)buf_at);
        st = SHARD_ERR_IO;
    }
    if (st == SHARD_OK) {
        int bad = write_at_all(fi, lengths_at + 4 * off.n_seqs, lengths, 4 * seq) ||
                  write_at_all(fi, pointers_at + 8 * off.n_seqs, pointers, 8 * seq) ||
                  write_at_all(fi, docs_at + 8 * off.n_doc_entries, doc_idx, 8 * n_dx);
        if (rank == 0) {
            uint8_t hdr[MEGATRON_HEADER_BYTES];
            int64_t last = (int64_t)N;
            shard_megatron_header(hdr, dtype, N, D);
            bad = bad || write_at_all(fi, 0, hdr, sizeof hdr) ||
                  write_at_all(fi, docs_at + 8 * (D - 1), &last, 8);
        }
        if (bad) {
            snprintf(msg, sizeof msg, "%s: write failed", path_idx);
            st = SHARD_ERR_IO;
        }
    }
    free(lengths);
    free(pointers);
    free(doc_idx);
    free(buf);
    st = cluster_agree_msg(comm, st, msg, err, err_bytes, NULL);
    MPI_File_close(&fb);
    MPI_File_close(&fi);
    if (st == SHARD_OK && rank == 0)
        LOG_INFO("wrote %s.{bin,idx}: %llu sequences, %llu tokens, %llu documents, dtype %d",
                 a->prefix, (ull)N, (ull)tot.n_tokens, (ull)(D - 1), dtype);
done:
    for (int i = 0; i < n_local && readers; i++)
        shard_reader_free(readers[i]);
    free(readers);
    return st;
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

    export_args a = {NULL, "auto", NULL, 0};
    const char *format = NULL;
    int c, rc = -1;
    while ((c = getopt_long(argc, argv, "o:vh", opts, NULL)) != -1) {
        switch (c) {
        case 'f':
            format = optarg;
            break;
        case 'o':
            a.prefix = optarg;
            break;
        case 't':
            a.dtype_opt = optarg;
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
    if (rc < 0) {
        const char *why = NULL;
        if (!format || strcmp(format, "megatron") != 0)
            why = "--format megatron is required (the only export format)";
        else if (!a.prefix)
            why = "--output PREFIX is required";
        else if (strcmp(a.dtype_opt, "auto") && strcmp(a.dtype_opt, "uint16") &&
                 strcmp(a.dtype_opt, "int32"))
            why = "--dtype must be auto, uint16 or int32";
        else if (optind >= argc)
            why = "no input shards";
        if (why) {
            if (rank == 0) {
                fprintf(stderr, "longctx shard export: %s\n\n", why);
                export_usage(stderr);
            }
            rc = EXIT_USAGE;
        }
    }
    if (rc < 0) {
        a.files = argv + optind;
        a.n_files = argc - optind;
        char err[1024];
        int st = export_run(MPI_COMM_WORLD, &a, err, sizeof err);
        if (st != SHARD_OK && rank == 0)
            LOG_ERROR("export failed: %s: %s", shard_strerror(st), err);
        rc = st == SHARD_OK ? 0 : EXIT_RUNTIME;
    }
    MPI_Finalize();
    return rc;
}

/* ==== import ==================================================================================*/

static void import_usage(FILE *f) {
    fprintf(f, "usage: longctx shard import --format megatron --output FILE [--vocab-size N]\n"
               "                            [--level L] [--block-bytes B] PREFIX\n\n"
               "Compresses the Megatron dataset PREFIX.bin/PREFIX.idx into one shard: one packed\n"
               "sequence per Megatron sequence, with one document piece naming its Megatron\n"
               "document. The dtype and document_indices are kept, so export gives back the same\n"
               "bytes. Supports dtype 8 (uint16) and 4 (int32).\n"
               "  --vocab-size N   (default: largest id + 1)\n"
               "  --level L        zstd level (default 3)\n"
               "  --block-bytes B  raw bytes per compressed block (default 1048576)\n");
}

typedef struct {
    const uint8_t *p;
    size_t n;
} mapping;

static int map_file(const char *path, mapping *m) {
    m->p = NULL;
    m->n = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        LOG_ERROR("%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        LOG_ERROR("%s: stat: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    m->n = (size_t)sb.st_size;
    if (m->n > 0) {
        void *p = mmap(NULL, m->n, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            LOG_ERROR("%s: mmap: %s", path, strerror(errno));
            close(fd);
            return -1;
        }
        m->p = p;
    }
    close(fd);
    return 0;
}

static void unmap_file(mapping *m) {
    if (m->p)
        munmap((void *)m->p, m->n);
}

static uint64_t rd64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static int import_run(const char *prefix, const char *out, uint32_t vocab_opt, int level,
                      uint64_t block_bytes) {
    char path_bin[4200], path_idx[4200];
    snprintf(path_bin, sizeof path_bin, "%s.bin", prefix);
    snprintf(path_idx, sizeof path_idx, "%s.idx", prefix);
    mapping mi, mb;
    if (map_file(path_idx, &mi) != 0)
        return EXIT_RUNTIME;
    if (map_file(path_bin, &mb) != 0) {
        unmap_file(&mi);
        return EXIT_RUNTIME;
    }
    int rc = EXIT_RUNTIME;
    uint32_t *ids = NULL;
    shard_writer *w = NULL;
    if (mi.n < MEGATRON_HEADER_BYTES || memcmp(mi.p, MEGATRON_MAGIC, 9) != 0 ||
        rd64(mi.p + 9) != 1) {
        LOG_ERROR("%s: offset 0: not a Megatron MMIDIDX version 1 index", path_idx);
        goto done;
    }
    int dtype = mi.p[17];
    uint64_t N = rd64(mi.p + 18), D = rd64(mi.p + 26);
    if (dtype != MEGATRON_DTYPE_UINT16 && dtype != MEGATRON_DTYPE_INT32) {
        LOG_ERROR("%s: offset 17: dtype code %d is not a token dtype longctx imports (8 uint16, "
                  "4 int32)",
                  path_idx, dtype);
        goto done;
    }
    if (N > mi.n / 12 || D == 0 || D > mi.n / 8 || mi.n != MEGATRON_HEADER_BYTES + 12 * N + 8 * D) {
        LOG_ERROR("%s: offset 18: %llu sequences and %llu document indices do not match the "
                  "file size %zu",
                  path_idx, (ull)N, (ull)D, mi.n);
        goto done;
    }
    const uint64_t item = dtype == MEGATRON_DTYPE_UINT16 ? 2 : 4;
    const uint8_t *len_p = mi.p + MEGATRON_HEADER_BYTES, *ptr_p = len_p + 4 * N;
    const uint8_t *doc_p = ptr_p + 8 * N;

    /* document_indices: non-decreasing values in [0, N], the last equal to N */
    uint64_t prev = 0;
    for (uint64_t k = 0; k < D; k++) {
        uint64_t v = rd64(doc_p + 8 * k);
        if (v > N || v < prev || (k == D - 1 && v != N)) {
            LOG_ERROR("%s: offset %llu: document_indices[%llu] = %lld breaks the layout "
                      "(non-decreasing, within [0, %llu], last = %llu)",
                      path_idx, (ull)(doc_p - mi.p + 8 * k), (ull)k, (long long)v, (ull)N, (ull)N);
            goto done;
        }
        prev = v;
    }
    /* sequences lie inside .bin; find the largest id */
    uint32_t max_id = 0;
    for (uint64_t i = 0; i < N; i++) {
        int32_t len;
        memcpy(&len, len_p + 4 * i, 4);
        int64_t ptr;
        memcpy(&ptr, ptr_p + 8 * i, 8);
        if (len < 0 || ptr < 0 || (uint64_t)ptr % item || (uint64_t)ptr > mb.n ||
            (uint64_t)len > (mb.n - (uint64_t)ptr) / item) {
            LOG_ERROR("%s: sequence %llu (length at offset %llu): length %d at byte %lld lies "
                      "outside %s (%zu bytes)",
                      path_idx, (ull)i, (ull)(4 * i + 34), len, (long long)ptr, path_bin, mb.n);
            goto done;
        }
        const uint8_t *t = mb.p + ptr;
        for (int32_t k = 0; k < len; k++) {
            uint32_t v;
            if (item == 2) {
                uint16_t h;
                memcpy(&h, t + 2 * (uint64_t)k, 2);
                v = h;
            } else {
                int32_t s;
                memcpy(&s, t + 4 * (uint64_t)k, 4);
                if (s < 0) {
                    LOG_ERROR("%s: offset %llu: negative token id %d", path_bin,
                              (ull)(ptr + 4 * (int64_t)k), s);
                    goto done;
                }
                v = (uint32_t)s;
            }
            if (v > max_id)
                max_id = v;
        }
    }
    uint32_t vocab = vocab_opt ? vocab_opt : max_id + 1;
    if (N > 0 && max_id >= vocab) {
        LOG_ERROR("%s: token id %u >= --vocab-size %u", path_bin, max_id, vocab);
        goto done;
    }
    char meta[4400];
    json_object *mo = json_object_new_object();
    json_object_object_add(mo, "source", json_object_new_string("megatron import"));
    json_object_object_add(mo, "megatron_prefix", json_object_new_string(prefix));
    json_object_object_add(mo, "megatron_dtype", json_object_new_int(dtype));
    snprintf(meta, sizeof meta, "%s", json_object_to_json_string_ext(mo, JSON_C_TO_STRING_PLAIN));
    json_object_put(mo);

    shard_writer_opts o = shard_writer_opts_default();
    o.vocab_size = vocab;
    o.level = level;
    o.block_bytes = block_bytes;
    o.meta_json = meta;
    if (shard_writer_create(out, &o, &w) != SHARD_OK) {
        LOG_ERROR("%s", shard_writer_errmsg(w));
        goto done;
    }
    uint64_t k = 0, doc_off = 0, ids_cap = 0;
    int st = SHARD_OK;
    for (uint64_t i = 0; i < N && st == SHARD_OK; i++) {
        uint32_t starts = 0;
        while (k < D - 1 && rd64(doc_p + 8 * k) == i) {
            starts++;
            k++;
        }
        if (starts)
            doc_off = 0;
        uint64_t doc = k ? k - 1 : 0; /* the Megatron document holding sequence i */
        int32_t len;
        int64_t ptr;
        memcpy(&len, len_p + 4 * i, 4);
        memcpy(&ptr, ptr_p + 8 * i, 8);
        if ((uint64_t)len > ids_cap) {
            free(ids);
            ids_cap = (uint64_t)len;
            ids = malloc(ids_cap * 4);
            if (!ids) {
                LOG_ERROR("out of memory");
                goto done;
            }
        }
        for (int32_t t = 0; t < len; t++) {
            if (item == 2) {
                uint16_t h;
                memcpy(&h, mb.p + ptr + 2 * (int64_t)t, 2);
                ids[t] = h;
            } else {
                memcpy(&ids[t], mb.p + ptr + 4 * (int64_t)t, 4);
            }
        }
        shard_doc piece = {0, doc, doc_off};
        doc_off += (uint64_t)len;
        st = shard_writer_set_doc_starts(w, starts);
        if (st == SHARD_OK)
            st = shard_writer_append(w, ids, (uint64_t)len, &piece, 1);
    }
    if (st == SHARD_OK)
        st = shard_writer_add_trailing_doc_starts(w, (D - 1) - k);
    if (st == SHARD_OK)
        st = shard_writer_close(w);
    if (st != SHARD_OK) {
        LOG_ERROR("%s", shard_writer_errmsg(w));
        goto done;
    }
    LOG_INFO("imported %s: %llu sequences, %llu documents into %s", prefix, (ull)N, (ull)(D - 1),
             out);
    rc = 0;
done:
    shard_writer_free(w);
    free(ids);
    unmap_file(&mi);
    unmap_file(&mb);
    return rc;
}

static int cmd_import(int argc, char **argv) {
    static const struct option opts[] = {{"format", required_argument, NULL, 'f'},
                                         {"output", required_argument, NULL, 'o'},
                                         {"vocab-size", required_argument, NULL, 'V'},
                                         {"level", required_argument, NULL, 'l'},
                                         {"block-bytes", required_argument, NULL, 'b'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *format = NULL, *out = NULL;
    unsigned long vocab = 0;
    long level = 3;
    unsigned long long block = 1u << 20;
    int c;
    char *end;
    while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'f':
            format = optarg;
            break;
        case 'o':
            out = optarg;
            break;
        case 'V':
            vocab = strtoul(optarg, &end, 10);
            if (*end || vocab == 0 || vocab > UINT32_MAX) {
                fprintf(stderr, "longctx shard import: bad --vocab-size '%s'\n", optarg);
                return EXIT_USAGE;
            }
            break;
        case 'l':
            level = strtol(optarg, &end, 10);
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
            break;
        case 'h':
            import_usage(stdout);
            return 0;
        default:
            import_usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (!format || strcmp(format, "megatron") != 0 || !out || optind != argc - 1) {
        fprintf(stderr, "longctx shard import: need --format megatron, --output FILE and one "
                        "PREFIX\n\n");
        import_usage(stderr);
        return EXIT_USAGE;
    }
    return import_run(argv[optind], out, (uint32_t)vocab, (int)level, block);
}

/* ==== pack ====================================================================================*/

static void pack_usage(FILE *f) {
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
            "  --seq-len L    tokens per sequence (default 131072)\n"
            "  --bos ID       prepend ID to every document (default: none)\n"
            "  --eos ID       append ID to every document (default: none)\n"
            "  --level L      zstd level (default 3)\n");
}

/* The next document: 0, 1 at the end, -1 on bad input (logged with file and offset). */
static int next_doc(FILE *in, int u32, uint32_t **ids, uint64_t *cap, uint64_t *n, uint64_t *offset,
                    const char *name) {
    const char *why;
    int st = shard_ids_read(in, u32, ids, cap, n, offset, &why);
    if (st == SHARD_ERR_CORRUPT)
        LOG_ERROR("%s: offset %llu: %s", name, (ull)*offset, why);
    else if (st == SHARD_ERR_NOMEM)
        LOG_ERROR("out of memory");
    return st == SHARD_OK ? 0 : st == SHARD_DONE ? 1 : -1;
}

static int cmd_pack(int argc, char **argv) {
    static const struct option opts[] = {{"output", required_argument, NULL, 'o'},
                                         {"vocab-size", required_argument, NULL, 'V'},
                                         {"seq-len", required_argument, NULL, 'L'},
                                         {"format", required_argument, NULL, 'f'},
                                         {"bos", required_argument, NULL, 'B'},
                                         {"eos", required_argument, NULL, 'E'},
                                         {"level", required_argument, NULL, 'l'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *out = NULL;
    unsigned long long vocab = 0, seq_len = 131072, bos = UINT64_MAX, eos = UINT64_MAX;
    long level = 3;
    int u32 = 0, c;
    char *end = NULL;
    while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        errno = 0;
        switch (c) {
        case 'o':
            out = optarg;
            break;
        case 'V':
            vocab = strtoull(optarg, &end, 10);
            break;
        case 'L':
            seq_len = strtoull(optarg, &end, 10);
            break;
        case 'B':
            bos = strtoull(optarg, &end, 10);
            break;
        case 'E':
            eos = strtoull(optarg, &end, 10);
            break;
        case 'l':
            level = strtol(optarg, &end, 10);
            break;
        case 'f':
            if (!strcmp(optarg, "u32")) {
                u32 = 1;
            } else if (strcmp(optarg, "text") != 0) {
                fprintf(stderr, "longctx shard pack: unknown format '%s'\n", optarg);
                return EXIT_USAGE;
            }
            break;
        case 'h':
            pack_usage(stdout);
            return 0;
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
    if (!out || vocab == 0 || vocab > UINT32_MAX || seq_len == 0 || optind < argc - 1 ||
        (bos != UINT64_MAX && bos >= vocab) || (eos != UINT64_MAX && eos >= vocab)) {
        fprintf(stderr, "longctx shard pack: need --output, --vocab-size (ids, --bos and --eos "
                        "below it), --seq-len > 0 and at most one INPUT\n\n");
        pack_usage(stderr);
        return EXIT_USAGE;
    }
    const char *name = optind < argc ? argv[optind] : "-";
    FILE *in = strcmp(name, "-") ? fopen(name, "rb") : stdin;
    if (!in) {
        LOG_ERROR("%s: cannot open: %s", name, strerror(errno));
        return EXIT_RUNTIME;
    }
    char meta[256];
    snprintf(meta, sizeof meta,
             "{\"source\":\"shard pack\",\"seq_len\":%llu,\"packing\":\"concat\"}", seq_len);
    shard_writer_opts o = shard_writer_opts_default();
    o.vocab_size = (uint32_t)vocab;
    o.level = (int)level;
    o.meta_json = meta;
    shard_writer *w;
    int st = shard_writer_create(out, &o, &w), rc = EXIT_RUNTIME, more;
    uint32_t *ids = NULL, *dbuf = NULL;
    uint64_t cap = 0, dcap = 0, n, byte_off = 0, doc = 0, fill = 0, n_tokens = 0;
    while (st == SHARD_OK && (more = next_doc(in, u32, &ids, &cap, &n, &byte_off, name)) == 0) {
        /* the document as packed: [bos] ids [eos] */
        uint64_t m = n + (bos != UINT64_MAX) + (eos != UINT64_MAX), k = 0;
        if (m > dcap && !(dbuf = realloc(dbuf, (size_t)((dcap = m) * 4)))) {
            st = SHARD_ERR_NOMEM;
            break;
        }
        if (bos != UINT64_MAX)
            dbuf[k++] = (uint32_t)bos;
        memcpy(dbuf + k, ids, n * 4);
        if (eos != UINT64_MAX)
            dbuf[k + n] = (uint32_t)eos;
        k = 0;
        do { /* one piece per sequence the document touches; an empty document gets one too */
            if (fill == seq_len && k < m) {
                st = shard_writer_seq_end(w);
                fill = 0;
            }
            shard_doc d = {fill, doc, k};
            uint64_t take = m - k < seq_len - fill ? m - k : seq_len - fill;
            if (st == SHARD_OK)
                st = shard_writer_seq_doc(w, &d);
            if (st == SHARD_OK)
                st = shard_writer_seq_tokens(w, dbuf + k, take);
            k += take;
            fill += take;
        } while (st == SHARD_OK && k < m);
        n_tokens += m;
        doc++;
    }
    if (st == SHARD_OK && more < 0)
        st = SHARD_ERR_ARG;
    else if (st == SHARD_OK && doc > 0)
        st = shard_writer_seq_end(w);
    if (st == SHARD_OK)
        st = shard_writer_close(w);
    if (st != SHARD_OK) {
        if (more >= 0)
            LOG_ERROR("%s", shard_writer_errmsg(w));
    } else {
        LOG_INFO("packed %llu documents, %llu tokens into %s", (ull)doc, (ull)n_tokens, out);
        rc = 0;
    }
    shard_writer_free(w);
    free(ids);
    free(dbuf);
    if (in != stdin)
        fclose(in);
    return rc;
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

int shard_main(int argc, char **argv) {
    cluster_log_setup("shard", 0, 1, CLUSTER_LOG_INFO);
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
