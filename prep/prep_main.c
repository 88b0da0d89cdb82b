/* prep_main.c - `[mpirun -np N] longctx prep ...`. */
#include "cluster.h"
#include "longctx_cli.h"
#include "prep.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum { EXIT_RUNTIME = 1, EXIT_USAGE = 2 };

static void usage(FILE *f) {
    fprintf(
        f,
        "usage: [mpirun -np N | srun] longctx prep --tokenizer PATH --output DIR [options] "
        "INPUT...\n"
        "\n"
        "Turns raw corpora into packed, checksummed training shards: read -> tokenize -> exact\n"
        "dedup -> length buckets -> mixture selection -> packing -> shards (+ manifest.tsv,\n"
        "stats.json, report.md). The output is byte-identical for any number of ranks and\n"
        "threads. Run the same command again after a kill: finished work is kept (DIR/work),\n"
        "except where an input's bytes changed. One run at a time per DIR (DIR/prep.lock).\n"
        "SIGTERM or SIGUSR1 (Slurm's --signal, a time limit) stops every rank after its work\n"
        "unit of the scan, with exit code 75: run again to resume (jobs/prep.sbatch requeues).\n"
        "\n"
        "INPUT: files or directories (searched recursively, taken in byte order of path):\n"
        "  .jsonl/.json, .jsonl.zst/.gz/.xz/.bz2, tar/tar.gz/tar.zst/zip/7z archives (members:\n"
        "  jsonl or one text document each), any other file = one text document.\n"
        "\n"
        "options (defaults from the recipe unless given):\n"
        "  --tokenizer PATH      tokenizer.json or SentencePiece .model (required)\n"
        "  --output DIR          output folder (required)\n"
        "  --recipe NAME|FILE    fu2024-per-source, llama2-long, prolong-64k, keep (default) or a\n"
        "                        recipe file (below); --show-recipe NAME prints a shipped one\n"
        "  --target-tokens N     total tokens to select (0 = all the weights allow)\n"
        "  --seq-len L[,L...]    sequence length(s); several give the same selection packed at\n"
        "                        each length (a 4K -> 32K curriculum), in DIR/L<len>/\n"
        "  --packing concat|bestfit\n"
        "  --seed S              selection and packing seed\n"
        "  --domain NAME         every document in domain NAME\n"
        "  --domain-json PATH    domain from a JSON path (e.g. meta.redpajama_set_name)\n"
        "  --text-field PATH     JSON path of the text (default text)\n"
        "  --utf8 replace|reject invalid UTF-8: U+FFFD per bad byte (default) or reject\n"
        "  --threads N           tokenizer threads per rank (default 1)\n"
        "  --strict              any rejected record, damaged file or budget shortfall is fatal,\n"
        "                        and so is keeping under 1 in 100 records or selecting none\n"
        "  --unit-bytes N        plain jsonl files are cut into work units of N bytes, "
        "multi-frame\n"
        "                        .zst files at the first frame past every N bytes (268435456)\n"
        "  --shard-tokens N      tokens per output shard file (33554432)\n"
        "  --max-doc-bytes N     longer records are rejected as too_long (67108864)\n"
        "  --pack-memory N       bytes of tokens per rank while shards are written (268435456);\n"
        "                        less memory means more rounds through the spill file in\n"
        "                        DIR/work (the work files are read once either way), the\n"
        "                        same output\n"
        "  --zstd-level L        zstd level of the output shards (3); the shards' bytes depend\n"
        "                        on it, their tokens do not\n"
        "  --progress-seconds S  progress line interval on rank 0 (5)\n"
        "  -v, --verbose         debug logging\n"
        "  --help, --version\n"
        "\n");
    fprintf(
        f,
        "Recipe file (JSON; unknown keys are errors):\n"
        "  {\"name\": \"my-mix\", \"comment\": \"where the numbers come from\",\n"
        "   \"domain\": {\"json\": \"meta.redpajama_set_name\"} | {\"fixed\": \"web\"} |\n"
        "             {\"glob\": [[\"*/books/*\", \"book\"], [\"*\", \"web\"]]},\n"
        "   \"text\": \"text\",\n"
        "   \"target_tokens\": 1000000000,            0 = no budget\n"
        "   \"shares\": \"as_input\" | {\"domain\": share, ...},  normalised; every domain of the\n"
        "             data must be named, and every named domain must occur\n"
        "   \"bucket_edges\": [0, 4096, 8192, ...],   token-length buckets (exact token counts)\n"
        "   \"bucket_weights\": [0.1, 1, ...],        expected copies of a document per bucket:\n"
        "             w = 0.1 keeps it with probability 0.1, w = 2.5 gives 2 or 3 copies\n"
        "   \"bucket_shares\": [0.4, 0.6],            instead of weights: each domain's budget\n"
        "             split over the buckets; documents repeat (whole passes) if needed\n"
        "   \"domain_bucket_weights\": {\"domain\": [...]},  per-domain weights\n"
        "   \"max_copies\": 1,                        the most copies of one document\n"
        "   \"seq_len\": [131072], \"packing\": \"concat\" | \"bestfit\",\n"
        "   \"bestfit_window\": 1024,                  bestfit: windows of this many sequences'\n"
        "             tokens, each packed on its own (a smaller corpus is one window)\n"
        "   \"bos\": true, \"eos\": false, \"dedup\": true, \"seed\": 0, \"utf8\": \"replace\"}\n"
        "Selection: per domain (and bucket, with bucket_shares) documents are taken in the order\n"
        "of a seeded hash of their identity until the budget is met; the last one taken may pass\n"
        "it (so budgets hold to within one document). Shortfalls are reported (fatal with\n"
        "--strict). concat runs documents across sequence boundaries (Fu et al.); bestfit keeps\n"
        "documents whole where they fit and cuts longer ones at L.\n");
    fprintf(f,
            "\nEvery rank writes into DIR: it must be on a file system all ranks see (checked\n"
            "at the start, exit 2 if not). LONGCTX_MPI_CHUNK_BYTES=N (rank 0's environment)\n"
            "cuts every MPI message to at most N bytes (for tests; default %zu).\n",
            (size_t)CLUSTER_CHUNK_BYTES_DEFAULT);
}

static int parse_u64(const char *s, uint64_t *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || end == s || s[0] == '-')
        return -1;
    *out = v;
    return 0;
}

enum { LIST_EMPTY = -1, LIST_BAD = -2 };

/* A comma-separated list of numbers in [lo, hi], at most max of them. Every list option goes
 * through here, so an empty element is refused the same way anywhere ("", ",4096", "1,,2",
 * "4096,"). @return the count, LIST_EMPTY for an empty element, LIST_BAD otherwise. */
static int parse_u64_list(const char *s, uint64_t *out, int max, uint64_t lo, uint64_t hi) {
    int n = 0;
    for (const char *p = s;; p++) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char item[32];
        if (len == 0)
            return LIST_EMPTY;
        if (len >= sizeof item || n == max)
            return LIST_BAD;
        memcpy(item, p, len);
        item[len] = '\0';
        uint64_t v;
        if (parse_u64(item, &v) || v < lo || v > hi)
            return LIST_BAD;
        out[n++] = v;
        if (!comma)
            return n;
        p = comma;
    }
}

/* What the command line says about the recipe, applied once the recipe is loaded. */
typedef struct {
    const char *recipe, *seq, *pack, *domain, *domain_json, *text, *utf8; /* NULL: not given */
    uint64_t target, seed; /* UINT64_MAX: not given */
} recipe_overrides;

/* Parses the options into o and ov and checks the required ones. @return -1 to go on, or the
 * exit code (EXIT_USAGE with why set; 0 after --help, --version, --show-recipe). */
static int parse_args(int argc, char **argv, int rank, int n_ranks, prep_opts *o,
                      recipe_overrides *ov, char *why, size_t why_bytes) {
    static const struct option opts[] = {{"tokenizer", required_argument, NULL, 't'},
                                         {"output", required_argument, NULL, 'o'},
                                         {"recipe", required_argument, NULL, 'r'},
                                         {"target-tokens", required_argument, NULL, 'T'},
                                         {"seq-len", required_argument, NULL, 'L'},
                                         {"packing", required_argument, NULL, 'P'},
                                         {"seed", required_argument, NULL, 's'},
                                         {"domain", required_argument, NULL, 'd'},
                                         {"domain-json", required_argument, NULL, 'D'},
                                         {"text-field", required_argument, NULL, 'F'},
                                         {"utf8", required_argument, NULL, 'U'},
                                         {"threads", required_argument, NULL, 'j'},
                                         {"strict", no_argument, NULL, 'S'},
                                         {"unit-bytes", required_argument, NULL, 'u'},
                                         {"shard-tokens", required_argument, NULL, 'k'},
                                         {"max-doc-bytes", required_argument, NULL, 'm'},
                                         {"pack-memory", required_argument, NULL, 'M'},
                                         {"zstd-level", required_argument, NULL, 'Z'},
                                         {"progress-seconds", required_argument, NULL, 'p'},
                                         {"show-recipe", required_argument, NULL, 'R'},
                                         {"verbose", no_argument, NULL, 'v'},
                                         {"help", no_argument, NULL, 'h'},
                                         {"version", no_argument, NULL, 'V'},
                                         {NULL, 0, NULL, 0}};
    uint64_t v;
    int rc = -1, c;
    optind = 0;
    while (rc < 0 && (c = getopt_long(argc, argv, "t:o:r:j:vh", opts, NULL)) != -1) {
        switch (c) {
        case 't':
            o->tokenizer = optarg;
            break;
        case 'o':
            o->output = optarg;
            break;
        case 'r':
            ov->recipe = optarg;
            break;
        case 'L':
            ov->seq = optarg;
            break;
        case 'P':
            ov->pack = optarg;
            break;
        case 'd':
            ov->domain = optarg;
            break;
        case 'D':
            ov->domain_json = optarg;
            break;
        case 'F':
            ov->text = optarg;
            break;
        case 'U':
            ov->utf8 = optarg;
            break;
        case 'S':
            o->strict = 1;
            break;
        case 'Z': {
            char *end = NULL;
            long lv = strtol(optarg, &end, 10);
            if (!*optarg || *end || lv < -131072 || lv > 22 || lv == 0) {
                snprintf(why, why_bytes,
                         "bad --zstd-level '%s' (1..22, or negative for zstd's fast levels)",
                         optarg);
                rc = EXIT_USAGE;
                break;
            }
            o->zstd_level = (int)lv;
            break;
        }
        case 'v':
            cluster_log_setup("prep", rank, n_ranks, CLUSTER_LOG_DEBUG);
            break;
        case 'T':
        case 's':
        case 'j':
        case 'u':
        case 'k':
        case 'm':
        case 'M':
        case 'p':
            if (parse_u64(optarg, &v)) {
                snprintf(why, why_bytes, "bad number '%s' for --%s", optarg,
                         c == 'T'   ? "target-tokens"
                         : c == 's' ? "seed"
                         : c == 'j' ? "threads"
                         : c == 'u' ? "unit-bytes"
                         : c == 'k' ? "shard-tokens"
                         : c == 'm' ? "max-doc-bytes"
                         : c == 'M' ? "pack-memory"
                                    : "progress-seconds");
                rc = EXIT_USAGE;
                break;
            }
            if (c == 'T')
                ov->target = v;
            else if (c == 's')
                ov->seed = v;
            else if (c == 'j')
                o->threads = v > 0 && v <= 256 ? (int)v : 0;
            else if (c == 'u')
                o->unit_bytes = v;
            else if (c == 'k')
                o->shard_tokens = v;
            else if (c == 'm')
                o->max_doc_bytes = v;
            else if (c == 'M')
                o->pack_bytes = v;
            else
                o->progress_seconds = (double)v;
            break;
        case 'R': {
            const char *text = prep_recipe_builtin(optarg);
            if (rank == 0) {
                if (text)
                    fputs(text, stdout);
                else
                    fprintf(stderr, "longctx prep: no shipped recipe '%s'\n", optarg);
            }
            rc = text ? 0 : EXIT_USAGE;
            break;
        }
        case 'h':
            if (rank == 0)
                usage(stdout);
            rc = 0;
            break;
        case 'V':
            if (rank == 0)
                printf("longctx %s\n", LONGCTX_VERSION);
            rc = 0;
            break;
        default:
            rc = EXIT_USAGE;
        }
    }
    if (rc < 0) {
        if (!o->tokenizer || !o->output)
            snprintf(why, why_bytes, "--tokenizer and --output are required");
        else if (optind >= argc)
            snprintf(why, why_bytes, "no INPUT given");
        else if (o->threads < 1)
            snprintf(why, why_bytes, "--threads must be 1..256");
        else if (o->unit_bytes == 0 || o->shard_tokens == 0 || o->max_doc_bytes == 0)
            snprintf(why, why_bytes,
                     "--unit-bytes, --shard-tokens and --max-doc-bytes must be > 0");
        if (why[0])
            rc = EXIT_USAGE;
    }
    return rc;
}

/* Applies the command line's recipe settings to R. @return -1, or EXIT_USAGE with why set. */
static int apply_overrides(prep_recipe *R, const recipe_overrides *ov, char *why,
                           size_t why_bytes) {
    int rc = -1;
    if (ov->target != UINT64_MAX)
        R->target_tokens = ov->target;
    if (ov->seed != UINT64_MAX)
        R->seed = ov->seed;
    if (ov->seq) {
        uint64_t lens[PREP_MAX_SEQ_LENS];
        int n = parse_u64_list(ov->seq, lens, PREP_MAX_SEQ_LENS, 1, 1u << 30);
        if (n < 0) {
            snprintf(why, why_bytes,
                     "--seq-len %s '%s': wants 1 to %d lengths of 1..2^30 "
                     "like 4096,32768",
                     n == LIST_EMPTY ? "has an empty element in" : "cannot use", ov->seq,
                     PREP_MAX_SEQ_LENS);
            rc = EXIT_USAGE;
        } else {
            R->n_seq_lens = n;
            memcpy(R->seq_lens, lens, (size_t)n * sizeof *lens);
        }
    }
    if (ov->pack) {
        if (!strcmp(ov->pack, "concat"))
            R->packing = PREP_PACK_CONCAT;
        else if (!strcmp(ov->pack, "bestfit"))
            R->packing = PREP_PACK_BESTFIT;
        else {
            snprintf(why, why_bytes, "--packing must be concat or bestfit");
            rc = EXIT_USAGE;
        }
    }
    if (ov->domain) {
        R->domain_src = PREP_DOMAIN_FIXED;
        snprintf(R->domain_fixed, sizeof R->domain_fixed, "%s", ov->domain);
    }
    if (ov->domain_json) {
        R->domain_src = PREP_DOMAIN_JSON;
        snprintf(R->domain_path, sizeof R->domain_path, "%s", ov->domain_json);
    }
    if (ov->text)
        snprintf(R->text_path, sizeof R->text_path, "%s", ov->text);
    if (ov->utf8) {
        if (!strcmp(ov->utf8, "replace") || !strcmp(ov->utf8, "reject"))
            R->utf8_reject = !strcmp(ov->utf8, "reject");
        else {
            snprintf(why, why_bytes, "--utf8 must be replace or reject");
            rc = EXIT_USAGE;
        }
    }
    return rc;
}

/* DIR (made by rank 0 if missing, as prep_run would) must be the same folder on every rank.
 * Collective. @return -1 to go on, EXIT_USAGE when some rank does not see it, EXIT_RUNTIME when
 * rank 0 cannot write it. */
static int check_output_shared(int rank, const char *dir) {
    char err[1024];
    if (rank == 0 && mkdir(dir, 0755) != 0 && errno != EEXIST)
        LOG_DEBUG("%s: %s (the check says more)", dir, strerror(errno));
    int st = cluster_check_shared_dir(MPI_COMM_WORLD, dir, err, sizeof err);
    if (st != CLUSTER_OK && rank == 0)
        LOG_ERROR("%s", err[0] ? err : cluster_strerror(st));
    return st == CLUSTER_OK ? -1 : st == CLUSTER_ERR_NOT_SHARED ? EXIT_USAGE : EXIT_RUNTIME;
}

int prep_main(int argc, char **argv) {
    cluster_malloc_reuse(); /* big arrays freed and allocated stage after stage */
    MPI_Init(&argc, &argv);
    int rank, n_ranks;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &n_ranks);
    cluster_log_setup("prep", rank, n_ranks, CLUSTER_LOG_INFO);
    cluster_signals_install();

    prep_opts o = prep_opts_default();
    recipe_overrides ov = {"keep", NULL, NULL, NULL, NULL, NULL, NULL, UINT64_MAX, UINT64_MAX};
    char why[256] = "", err[1024];
    int rc = parse_args(argc, argv, rank, n_ranks, &o, &ov, why, sizeof why);
    if (rc < 0 && prep_recipe_load(ov.recipe, &o.recipe, err, sizeof err) != PREP_OK) {
        snprintf(why, sizeof why, "%s", err);
        rc = EXIT_USAGE;
    }
    if (rc < 0)
        rc = apply_overrides(&o.recipe, &ov, why, sizeof why);
    size_t chunk = 0; /* collective: every rank gets here with the same rc */
    if (rc < 0 && cluster_chunk_bytes_setup(MPI_COMM_WORLD, &chunk) != CLUSTER_OK) {
        snprintf(why, sizeof why, "%s must be a number of bytes in 1..%zu", CLUSTER_CHUNK_ENV,
                 (size_t)CLUSTER_CHUNK_BYTES_DEFAULT);
        rc = EXIT_USAGE;
    }
    if (rc < 0 && rank == 0 && chunk != CLUSTER_CHUNK_BYTES_DEFAULT)
        LOG_INFO("MPI collectives in pieces of at most %zu bytes (%s)", chunk, CLUSTER_CHUNK_ENV);
    if (rc == EXIT_USAGE && rank == 0) {
        if (why[0])
            fprintf(stderr, "longctx prep: %s\n\n", why);
        fprintf(stderr, "usage: longctx prep --tokenizer PATH --output DIR [options] INPUT... "
                        "(longctx prep --help)\n");
    }
    if (rc < 0) /* every rank writes into DIR: refuse a folder not every rank sees */
        rc = check_output_shared(rank, o.output);
    if (rc < 0) {
        o.inputs = argv + optind;
        o.n_inputs = argc - optind;
        cluster_log_job(MPI_COMM_WORLD);
        int st = prep_run(MPI_COMM_WORLD, &o, err, sizeof err);
        if (st == PREP_ERR_STOPPED && rank == 0)
            LOG_WARN("%s: %s", prep_strerror(st), err);
        else if (st != PREP_OK && rank == 0)
            LOG_ERROR("%s: %s", prep_strerror(st), err);
        rc = st == PREP_OK ? 0 : st == PREP_ERR_STOPPED ? LONGCTX_EXIT_STOPPED : EXIT_RUNTIME;
    }
    MPI_Finalize();
    return rc;
}
