/* tokenize_main.c - `longctx tokenize` and `longctx detokenize`. */
#include "cluster.h"
#include "longctx_cli.h"
#include "shard.h"
#include "tokenizer.h"

#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { EXIT_RUNTIME = 1, EXIT_USAGE = 2 };
typedef unsigned long long ull;

#define BATCH_BYTES (16u << 20) /* text per batch: bounds memory for any input size */
#define MAX_THREADS 256

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ==== input: documents in batches ============================================================*/

typedef struct {
    char *line; /* jsonl: the raw line; else the whole text */
    size_t n;
    uint64_t index; /* document number */
    uint64_t line_no;
    uint64_t offset; /* byte offset of the line in the input */
} doc;

typedef struct {
    FILE *f;
    const char *name;
    int jsonl;
    int eof;
    uint64_t line_no, offset, n_docs;
    char *buf;
    size_t buf_cap;
} reader;

/* Reads the next batch of documents (at least one unless at the end). Returns the count. */
static int read_batch(reader *r, doc **docs, size_t *docs_cap, size_t *n_docs) {
    *n_docs = 0;
    size_t bytes = 0;
    while (!r->eof && bytes < BATCH_BYTES) {
        char *line = NULL;
        size_t cap = 0, n;
        if (r->jsonl) {
            ssize_t got = getline(&line, &cap, r->f);
            if (got < 0) {
                free(line);
                r->eof = 1;
                break;
            }
            n = (size_t)got;
            r->line_no++;
            uint64_t off = r->offset;
            r->offset += n;
            while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
                n--;
            if (tok_json_is_blank(line, n)) { /* blank lines are skipped, as prep does */
                free(line);
                continue;
            }
            if (*n_docs == *docs_cap) {
                size_t nc = *docs_cap ? 2 * *docs_cap : 1024;
                doc *d = realloc(*docs, nc * sizeof *d);
                if (!d) {
                    free(line);
                    return -1;
                }
                *docs = d;
                *docs_cap = nc;
            }
            doc *d = &(*docs)[(*n_docs)++];
            d->line = line;
            d->n = n;
            d->index = r->n_docs++;
            d->line_no = r->line_no;
            d->offset = off;
            bytes += n;
        } else { /* the whole input is one document */
            size_t len = 0;
            for (;;) {
                if (len + 65536 > cap) {
                    size_t nc = cap ? 2 * cap : 1 << 20;
                    char *p = realloc(line, nc);
                    if (!p) {
                        free(line);
                        return -1;
                    }
                    line = p;
                    cap = nc;
                }
                size_t got = fread(line + len, 1, cap - len, r->f);
                len += got;
                if (got == 0)
                    break;
            }
            if (ferror(r->f)) {
                free(line);
                return -2;
            }
            r->eof = 1;
            if (*docs_cap == 0) {
                *docs = malloc(sizeof **docs);
                if (!*docs) {
                    free(line);
                    return -1;
                }
                *docs_cap = 1;
            }
            doc *d = &(*docs)[(*n_docs)++];
            d->line = line;
            d->n = len;
            d->index = r->n_docs++;
            d->line_no = 1;
            d->offset = 0;
        }
    }
    if (r->jsonl && ferror(r->f))
        return -2;
    return 0;
}

/* ==== workers ================================================================================*/

typedef struct {
    const tokenizer *tok;
    tok_ctx *ctx;
    const tok_encode_opts *opts;
    tok_json *json; /* --jsonl: this thread's extractor of the text field */
    doc *docs;
    size_t d0, d1;
    uint32_t *ids; /* (ids_cap) ids of docs d0..d1, back to back */
    size_t n_ids, ids_cap;
    uint64_t *doc_end; /* (d1 - d0) end of each document in ids */
    size_t doc_end_cap;
    uint64_t n_bytes;
    double encode_s;
    int err;        /* 0, or 1 bad input, -1 out of memory */
    size_t err_doc; /* the first bad document */
    char err_msg[256];
} worker;

static void *work(void *arg) {
    worker *w = arg;
    w->n_ids = 0;
    w->n_bytes = 0;
    w->encode_s = 0;
    w->err = 0;
    size_t nd = w->d1 - w->d0;
    if (nd > w->doc_end_cap) {
        free(w->doc_end);
        w->doc_end = malloc(nd * sizeof *w->doc_end);
        w->doc_end_cap = w->doc_end ? nd : 0;
        if (!w->doc_end) {
            w->err = -1;
            return NULL;
        }
    }
    for (size_t i = w->d0; i < w->d1; i++) {
        doc *d = &w->docs[i];
        const char *text = d->line;
        size_t n = d->n;
        if (w->json) {
            tok_json_fields f;
            int jst = tok_json_extract(w->json, d->line, d->n, &f);
            if (jst != TOK_JSON_OK) {
                w->err = jst == TOK_JSON_ERR_NOMEM ? -1 : 1;
                w->err_doc = i;
                snprintf(w->err_msg, sizeof w->err_msg, "%s", tok_json_errmsg(w->json));
                break;
            }
            text = f.text;
            n = f.n_text;
        }
        const uint32_t *ids;
        size_t n_ids;
        double t0 = now();
        int st = tokenizer_encode(w->ctx, text, n, w->opts, &ids, &n_ids);
        w->encode_s += now() - t0;
        w->n_bytes += n;
        if (st == TOK_OK && w->n_ids + n_ids > w->ids_cap) {
            size_t nc = w->ids_cap ? w->ids_cap : 1 << 16;
            while (nc < w->n_ids + n_ids)
                nc *= 2;
            uint32_t *p = realloc(w->ids, nc * 4);
            if (p) {
                w->ids = p;
                w->ids_cap = nc;
            } else {
                st = TOK_ERR_NOMEM;
            }
        }
        if (st != TOK_OK) {
            w->err = -1;
            w->err_doc = i;
            snprintf(w->err_msg, sizeof w->err_msg, "%s", tok_strerror(st));
            break;
        }
        if (n_ids) /* w->ids may still be NULL */
            memcpy(w->ids + w->n_ids, ids, n_ids * 4);
        w->n_ids += n_ids;
        w->doc_end[i - w->d0] = w->n_ids;
    }
    return NULL;
}

/* ==== tokenize ===============================================================================*/

static void tokenize_usage(FILE *f) {
    fprintf(f,
            "usage: longctx tokenize --tokenizer PATH [--input FILE|-] [--jsonl [--text-field "
            "PATH]]\n"
            "                        [--output FILE|-] [--format text|u32] [--add-bos] "
            "[--add-eos]\n"
            "                        [--parse-special] [--threads N] [--stats]\n\n"
            "Encodes text with a Llama 2 / Llama 3 style tokenizer (tokenizer.json or a\n"
            "SentencePiece .model), bit-exact with HF tokenizers and sentencepiece.\n"
            "  --tokenizer PATH   tokenizer.json or tokenizer.model (required)\n"
            "  --input FILE       input (default - = stdin)\n"
            "  --jsonl            every line is a JSON object (strict RFC 8259, as prep reads\n"
            "                     it) whose text field is one document; blank lines are\n"
            "                     skipped; without it the whole input is one document\n"
            "  --text-field PATH  dot-separated path of the text string (default text;\n"
            "                     meta.body: the key body of the object at meta)\n"
            "  --output FILE      output (default - = stdout)\n"
            "  --format text|u32  text: one line per document, ids separated by spaces\n"
            "                     (default); u32: per document a uint32 count then the uint32\n"
            "                     ids, little-endian\n"
            "  --add-bos, --add-eos  add the BOS / EOS token to every document (default: no)\n"
            "  --parse-special    special tokens written in the text (<s>, <|eot_id|>) become\n"
            "                     their ids (default: they are ordinary text)\n"
            "  --threads N        encoding threads (default 1); output stays in input order\n"
            "  --stats            print bytes, tokens, documents and encode seconds on stderr\n"
            "Invalid UTF-8: byte-level tokenizers encode the bytes as bytes; SentencePiece-style\n"
            "ones see U+FFFD for each invalid byte, as sentencepiece does.\n");
}

typedef struct {
    const char *tokenizer, *input, *output, *field;
    int jsonl, u32, threads, stats;
    tok_encode_opts opts;
} tokenize_args;

static int write_doc(FILE *out, int u32, const uint32_t *ids, size_t n) {
    if (u32) {
        uint32_t cnt = (uint32_t)n;
        if (fwrite(&cnt, 4, 1, out) != 1 || fwrite(ids, 4, n, out) != n)
            return -1;
        return 0;
    }
    char buf[16];
    for (size_t k = 0; k < n; k++) {
        int m = snprintf(buf, sizeof buf, k ? " %u" : "%u", ids[k]);
        if (fwrite(buf, 1, (size_t)m, out) != (size_t)m)
            return -1;
    }
    return putc('\n', out) == EOF ? -1 : 0;
}

static int tokenize_run(const tokenize_args *a) {
    double t_load = now();
    tokenizer *tok;
    int st = tokenizer_load(a->tokenizer, &tok);
    if (st != TOK_OK) {
        LOG_ERROR("%s: %s", tok_strerror(st), tokenizer_errmsg(tok));
        tokenizer_free(tok);
        return EXIT_RUNTIME;
    }
    t_load = now() - t_load;
    FILE *in = strcmp(a->input, "-") ? fopen(a->input, "rb") : stdin;
    FILE *out = strcmp(a->output, "-") ? fopen(a->output, "wb") : stdout;
    if (!in || !out) {
        LOG_ERROR("%s: cannot open: %s", !in ? a->input : a->output, strerror(errno));
        if (in && in != stdin)
            fclose(in);
        tokenizer_free(tok);
        return EXIT_RUNTIME;
    }
    static char obuf[1 << 20];
    setvbuf(out, obuf, _IOFBF, sizeof obuf);
    int nt = a->threads;
    worker *w = calloc((size_t)nt, sizeof *w);
    pthread_t *th = calloc((size_t)nt, sizeof *th);
    int rc = w && th ? 0 : EXIT_RUNTIME;
    for (int k = 0; rc == 0 && k < nt; k++) {
        w[k].tok = tok;
        w[k].opts = &a->opts;
        if (tok_ctx_create(tok, &w[k].ctx) != TOK_OK)
            rc = EXIT_RUNTIME;
        int jst = a->jsonl ? tok_json_create(a->field, NULL, 0, &w[k].json) : TOK_JSON_OK;
        if (jst != TOK_JSON_OK) {
            LOG_ERROR("--text-field '%s': %s", a->field,
                      jst == TOK_JSON_ERR_ARG ? "not a dot path of keys" : tok_json_strerror(jst));
            rc = EXIT_RUNTIME;
        }
    }
    reader r = {in, a->input, a->jsonl, 0, 0, 0, 0, NULL, 0};
    doc *docs = NULL;
    size_t docs_cap = 0, n_docs;
    uint64_t n_bytes = 0, n_tokens = 0, n_total_docs = 0;
    double encode_s = 0;
    while (rc == 0) {
        int rst = read_batch(&r, &docs, &docs_cap, &n_docs);
        if (rst != 0) {
            LOG_ERROR("%s: %s", a->input, rst == -1 ? "out of memory" : strerror(errno));
            rc = EXIT_RUNTIME;
            break;
        }
        if (n_docs == 0)
            break;
        /* contiguous ranges of about equal bytes, so output order is simply thread order */
        uint64_t total = 0, acc = 0;
        for (size_t i = 0; i < n_docs; i++)
            total += docs[i].n;
        size_t d = 0;
        for (int k = 0; k < nt; k++) {
            w[k].docs = docs;
            w[k].d0 = d;
            uint64_t goal = total * (uint64_t)(k + 1) / (uint64_t)nt;
            while (d < n_docs && (acc < goal || k == nt - 1)) {
                acc += docs[d].n;
                d++;
            }
            w[k].d1 = d;
        }
        for (int k = 1; k < nt; k++)
            pthread_create(&th[k], NULL, work, &w[k]);
        work(&w[0]);
        for (int k = 1; k < nt; k++)
            pthread_join(th[k], NULL);
        double batch_s = 0;
        for (int k = 0; k < nt && rc == 0; k++) {
            if (w[k].encode_s > batch_s)
                batch_s = w[k].encode_s;
            if (w[k].err) {
                const doc *bad = &docs[w[k].err_doc];
                LOG_ERROR("%s: line %llu (offset %llu): %s", a->input, (ull)bad->line_no,
                          (ull)bad->offset, w[k].err_msg);
                rc = EXIT_RUNTIME;
                break;
            }
            uint64_t prev = 0;
            for (size_t i = w[k].d0; i < w[k].d1; i++) {
                uint64_t end = w[k].doc_end[i - w[k].d0];
                if (write_doc(out, a->u32, w[k].ids ? w[k].ids + prev : NULL, end - prev) != 0) {
                    LOG_ERROR("%s: write: %s", a->output, strerror(errno));
                    rc = EXIT_RUNTIME;
                    break;
                }
                prev = end;
            }
            n_bytes += w[k].n_bytes;
            n_tokens += w[k].n_ids;
        }
        encode_s += batch_s;
        n_total_docs += n_docs;
        for (size_t i = 0; i < n_docs; i++)
            free(docs[i].line);
    }
    if (fflush(out) != 0 && rc == 0) {
        LOG_ERROR("%s: write: %s", a->output, strerror(errno));
        rc = EXIT_RUNTIME;
    }
    if (rc == 0 && a->stats)
        fprintf(stderr,
                "{\"tool\":\"longctx\",\"docs\":%llu,\"bytes\":%llu,\"tokens\":%llu,"
                "\"load_s\":%.4f,\"encode_s\":%.4f,\"MB_per_s\":%.3f,\"threads\":%d}\n",
                (ull)n_total_docs, (ull)n_bytes, (ull)n_tokens, t_load, encode_s,
                encode_s > 0 ? (double)n_bytes / 1e6 / encode_s : 0.0, nt);
    for (int k = 0; w && k < nt; k++) {
        tok_ctx_free(w[k].ctx);
        tok_json_free(w[k].json);
        free(w[k].ids);
        free(w[k].doc_end);
    }
    free(w);
    free(th);
    free(docs);
    if (in != stdin)
        fclose(in);
    if (out != stdout && fclose(out) != 0 && rc == 0) {
        LOG_ERROR("%s: close: %s", a->output, strerror(errno));
        rc = EXIT_RUNTIME;
    }
    tokenizer_free(tok);
    return rc;
}

static int parse_common(int argc, char **argv, int detok, tokenize_args *a) {
    static const struct option opts[] = {{"tokenizer", required_argument, NULL, 't'},
                                         {"input", required_argument, NULL, 'i'},
                                         {"output", required_argument, NULL, 'o'},
                                         {"jsonl", no_argument, NULL, 'j'},
                                         {"text-field", required_argument, NULL, 'F'},
                                         {"format", required_argument, NULL, 'f'},
                                         {"add-bos", no_argument, NULL, 'B'},
                                         {"add-eos", no_argument, NULL, 'E'},
                                         {"parse-special", no_argument, NULL, 'P'},
                                         {"threads", required_argument, NULL, 'T'},
                                         {"stats", no_argument, NULL, 'S'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    memset(a, 0, sizeof *a);
    a->input = "-";
    a->output = "-";
    a->field = "text";
    a->threads = 1;
    int c;
    char *end;
    while ((c = getopt_long(argc, argv, "t:i:o:h", opts, NULL)) != -1) {
        switch (c) {
        case 't':
            a->tokenizer = optarg;
            break;
        case 'i':
            a->input = optarg;
            break;
        case 'o':
            a->output = optarg;
            break;
        case 'j':
            a->jsonl = 1;
            break;
        case 'F':
            a->field = optarg;
            break;
        case 'f':
            if (!strcmp(optarg, "u32"))
                a->u32 = 1;
            else if (strcmp(optarg, "text") != 0) {
                fprintf(stderr, "unknown --format '%s' (text or u32)\n", optarg);
                return EXIT_USAGE;
            }
            break;
        case 'B':
            a->opts.add_bos = 1;
            break;
        case 'E':
            a->opts.add_eos = 1;
            break;
        case 'P':
            a->opts.parse_special = 1;
            break;
        case 'T':
            a->threads = (int)strtol(optarg, &end, 10);
            if (*end || a->threads < 1 || a->threads > MAX_THREADS) {
                fprintf(stderr, "--threads must be 1..%d\n", MAX_THREADS);
                return EXIT_USAGE;
            }
            break;
        case 'S':
            a->stats = 1;
            break;
        case 'h':
            return -1;
        default:
            return EXIT_USAGE;
        }
    }
    if (!a->tokenizer || optind != argc) {
        fprintf(stderr, "longctx %s: --tokenizer PATH is required; no positional arguments\n",
                detok ? "detokenize" : "tokenize");
        return EXIT_USAGE;
    }
    return 0;
}

int tokenize_main(int argc, char **argv) {
    cluster_log_setup("tokenize", 0, 1, CLUSTER_LOG_INFO);
    tokenize_args a;
    optind = 0;
    int rc = parse_common(argc, argv, 0, &a);
    if (rc == -1) {
        tokenize_usage(stdout);
        return 0;
    }
    if (rc) {
        tokenize_usage(stderr);
        return rc;
    }
    return tokenize_run(&a);
}

/* ==== detokenize =============================================================================*/

static void detokenize_usage(FILE *f) {
    fprintf(f, "usage: longctx detokenize --tokenizer PATH [--input FILE|-] [--output FILE|-]\n"
               "                          [--format text|u32] [--jsonl]\n\n"
               "Decodes ids (the output of 'longctx tokenize') back to text.\n"
               "  --format text|u32  input format (default text: one line of ids per document)\n"
               "  --jsonl            write one {\"text\": ...} line per document; default: the\n"
               "                     decoded bytes of every document back to back, so that\n"
               "                     tokenize then detokenize gives back a single document\n");
}

int detokenize_main(int argc, char **argv) {
    cluster_log_setup("detokenize", 0, 1, CLUSTER_LOG_INFO);
    tokenize_args a;
    optind = 0;
    int rc = parse_common(argc, argv, 1, &a);
    if (rc == -1) {
        detokenize_usage(stdout);
        return 0;
    }
    if (rc) {
        detokenize_usage(stderr);
        return rc;
    }
    tokenizer *tok;
    tok_ctx *ctx = NULL;
    int st = tokenizer_load(a.tokenizer, &tok);
    if (st == TOK_OK)
        st = tok_ctx_create(tok, &ctx);
    if (st != TOK_OK) {
        LOG_ERROR("%s: %s", tok_strerror(st), tokenizer_errmsg(tok));
        tokenizer_free(tok);
        return EXIT_RUNTIME;
    }
    FILE *in = strcmp(a.input, "-") ? fopen(a.input, "rb") : stdin;
    FILE *out = strcmp(a.output, "-") ? fopen(a.output, "wb") : stdout;
    if (!in || !out) {
        LOG_ERROR("%s: cannot open: %s", !in ? a.input : a.output, strerror(errno));
        rc = EXIT_RUNTIME;
    }
    uint32_t *ids = NULL;
    uint64_t cap = 0, n, off = 0, doc_no = 0;
    while (rc == 0) {
        const char *why;
        int r = shard_ids_read(in, a.u32, &ids, &cap, &n, &off, &why);
        if (r == SHARD_DONE)
            break;
        if (r != SHARD_OK) {
            LOG_ERROR("%s: document %llu at offset %llu: %s", a.input, (ull)doc_no, (ull)off,
                      why ? why : shard_strerror(r));
            rc = EXIT_RUNTIME;
            break;
        }
        const char *text;
        size_t m;
        st = tokenizer_decode(ctx, ids, n, &text, &m);
        if (st != TOK_OK) {
            LOG_ERROR("%s: document %llu: %s (vocabulary of %u)", a.input, (ull)doc_no,
                      st == TOK_ERR_ARG ? "id out of range" : tok_strerror(st),
                      tokenizer_vocab_size(tok));
            rc = EXIT_RUNTIME;
            break;
        }
        if (a.jsonl) {
            json_object *o = json_object_new_object();
            json_object_object_add(o, "text", json_object_new_string_len(text, (int)m));
            fprintf(out, "%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
            json_object_put(o);
        } else {
            fwrite(text, 1, m, out);
        }
        doc_no++;
    }
    if (out && fflush(out) != 0 && rc == 0)
        rc = EXIT_RUNTIME;
    free(ids);
    if (in && in != stdin)
        fclose(in);
    if (out && out != stdout)
        fclose(out);
    tok_ctx_free(ctx);
    tokenizer_free(tok);
    return rc;
}
