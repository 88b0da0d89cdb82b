/* tokenize_main.c - `longctx tokenize` and `longctx detokenize`. */
#include "cluster.h"
#include "longctx_cli.h"
#include "shard.h"
#include "tokenizer.h"

#include <assert.h>
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
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

/* The documents of one batch: each one's bytes in its own buffer. */
typedef struct {
    char **buf;      /* (cap) owned */
    tok_text *texts; /* (cap) texts[i] is buf[i][0, n_bytes) */
    size_t n, cap;
} batch;

static int batch_push(batch *b, char *buf, size_t n) {
    if (b->n == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 1024;
        char **nb = realloc(b->buf, cap * sizeof *nb);
        if (nb)
            b->buf = nb;
        tok_text *nt = nb ? realloc(b->texts, cap * sizeof *nt) : NULL;
        if (!nt)
            return -1;
        b->texts = nt;
        b->cap = cap;
    }
    b->buf[b->n] = buf;
    b->texts[b->n].text = buf;
    b->texts[b->n].n_bytes = n;
    b->n++;
    return 0;
}

static void batch_clear(batch *b) {
    for (size_t i = 0; i < b->n; i++)
        free(b->buf[i]);
    b->n = 0;
}

typedef struct {
    FILE *f;
    tok_json *json; /* --jsonl: the text field of each line; NULL: the input is one document */
    int eof;
    uint64_t line_no, offset;
    int bad; /* a line that is no document ends the input after the documents before it */
    uint64_t bad_line_no, bad_offset;
    char bad_msg[TOK_JSON_ERRMSG_BYTES];
} reader;

/* Reads the next batch of documents (none at the end). Returns 0, -1 out of memory, -2 a read
 * error (errno). */
static int read_batch(reader *r, batch *b) {
    size_t bytes = 0;
    while (!r->eof && bytes < BATCH_BYTES) {
        char *line = NULL;
        size_t cap = 0, n;
        if (r->json) {
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
            tok_json_fields f;
            int st = tok_json_extract(r->json, line, n, &f);
            if (st != TOK_JSON_OK) {
                free(line);
                if (st == TOK_JSON_ERR_NOMEM)
                    return -1;
                r->bad = r->eof = 1;
                r->bad_line_no = r->line_no;
                r->bad_offset = off;
                snprintf(r->bad_msg, sizeof r->bad_msg, "%s", tok_json_errmsg(r->json));
                break;
            }
            assert(f.n_text <= n); /* unescaping never makes a string longer */
            memmove(line, f.text, f.n_text);
            line[f.n_text] = '\0';
            n = f.n_text;
        } else { /* the whole input is one document */
            n = 0;
            for (;;) {
                if (n + 65536 > cap) {
                    size_t nc = cap ? 2 * cap : 1 << 20;
                    char *p = realloc(line, nc);
                    if (!p) {
                        free(line);
                        return -1;
                    }
                    line = p;
                    cap = nc;
                }
                size_t got = fread(line + n, 1, cap - n, r->f);
                n += got;
                if (got == 0)
                    break;
            }
            if (ferror(r->f)) {
                free(line);
                return -2;
            }
            r->eof = 1;
        }
        if (batch_push(b, line, n) != 0) {
            free(line);
            return -1;
        }
        bytes += n;
    }
    if (r->json && ferror(r->f))
        return -2;
    return 0;
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

/* The output in messages: "-" is stdout. */
static const char *out_name(const char *path) {
    return strcmp(path, "-") ? path : "stdout";
}

/* The final flush of out, and its close unless it is stdout (which is flushed and checked
 * here, so that no error is left for exit to drop). 0, or -1 with errno set. */
static int out_finish(FILE *out) {
    int bad = fflush(out) != 0 || ferror(out);
    int saved = errno;
    if (out != stdout && fclose(out) != 0)
        return -1;
    errno = saved;
    return bad ? -1 : 0;
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
    reader r;
    memset(&r, 0, sizeof r);
    tok_pool *pool = NULL;
    int rc = 0;
    st = tok_pool_create(tok, a->threads, &pool);
    if (st != TOK_OK) {
        LOG_ERROR("%d tokenize threads: %s", a->threads, tok_strerror(st));
        rc = EXIT_RUNTIME;
    }
    int jst = rc == 0 && a->jsonl ? tok_json_create(a->field, NULL, 0, &r.json) : TOK_JSON_OK;
    if (jst != TOK_JSON_OK) {
        LOG_ERROR("--text-field '%s': %s", a->field,
                  jst == TOK_JSON_ERR_ARG ? "not a dot path of keys" : tok_json_strerror(jst));
        rc = EXIT_RUNTIME;
    }
    FILE *in = NULL, *out = NULL;
    if (rc == 0) {
        in = strcmp(a->input, "-") ? fopen(a->input, "rb") : stdin;
        out = in && strcmp(a->output, "-") ? fopen(a->output, "wb") : stdout;
        if (!in || !out) {
            LOG_ERROR("%s: cannot open: %s", !in ? a->input : a->output, strerror(errno));
            rc = EXIT_RUNTIME;
        }
    }
    static char obuf[1 << 20];
    if (out)
        setvbuf(out, obuf, _IOFBF, sizeof obuf);
    r.f = in;
    batch b = {NULL, NULL, 0, 0};
    uint64_t n_bytes = 0, n_tokens = 0, n_docs = 0;
    double encode_s = 0;
    while (rc == 0) {
        int rst = read_batch(&r, &b);
        if (rst != 0) {
            LOG_ERROR("%s: %s", a->input, rst == -1 ? "out of memory" : strerror(errno));
            rc = EXIT_RUNTIME;
            break;
        }
        if (b.n == 0 && !r.bad)
            break;
        double t0 = now();
        st = tok_pool_encode(pool, b.texts, b.n, &a->opts);
        encode_s += now() - t0;
        if (st != TOK_OK) {
            LOG_ERROR("%s: %s", a->input, tok_strerror(st));
            rc = EXIT_RUNTIME;
            break;
        }
        for (size_t i = 0; i < b.n && rc == 0; i++) {
            size_t n;
            const uint32_t *ids = tok_pool_ids(pool, i, &n);
            if (write_doc(out, a->u32, ids, n) != 0) {
                LOG_ERROR("%s: write: %s", out_name(a->output), strerror(errno));
                rc = EXIT_RUNTIME;
            }
            n_bytes += b.texts[i].n_bytes;
            n_tokens += n;
        }
        n_docs += b.n;
        batch_clear(&b);
        if (r.bad && rc == 0) {
            LOG_ERROR("%s: line %llu (offset %llu): %s", a->input, (ull)r.bad_line_no,
                      (ull)r.bad_offset, r.bad_msg);
            rc = EXIT_RUNTIME;
        }
    }
    if (out && out_finish(out) != 0 && rc == 0) {
        LOG_ERROR("%s: write: %s", out_name(a->output), strerror(errno));
        rc = EXIT_RUNTIME;
    }
    if (rc == 0 && a->stats)
        fprintf(stderr,
                "{\"tool\":\"longctx\",\"docs\":%llu,\"bytes\":%llu,\"tokens\":%llu,"
                "\"load_s\":%.4f,\"encode_s\":%.4f,\"MB_per_s\":%.3f,\"threads\":%d}\n",
                (ull)n_docs, (ull)n_bytes, (ull)n_tokens, t_load, encode_s,
                encode_s > 0 ? (double)n_bytes / 1e6 / encode_s : 0.0, a->threads);
    batch_clear(&b);
    free(b.buf);
    free(b.texts);
    if (in && in != stdin)
        fclose(in);
    tok_json_free(r.json);
    tok_pool_free(pool);
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
        int wst;
        if (a.jsonl) {
            json_object *o = json_object_new_object();
            json_object_object_add(o, "text", json_object_new_string_len(text, (int)m));
            wst = fprintf(out, "%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
            json_object_put(o);
        } else {
            wst = fwrite(text, 1, m, out) == m ? 0 : -1;
        }
        if (wst < 0) {
            LOG_ERROR("%s: write: %s", out_name(a.output), strerror(errno));
            rc = EXIT_RUNTIME;
            break;
        }
        doc_no++;
    }
    if (out && out_finish(out) != 0 && rc == 0) {
        LOG_ERROR("%s: write: %s", out_name(a.output), strerror(errno));
        rc = EXIT_RUNTIME;
    }
    free(ids);
    if (in && in != stdin)
        fclose(in);
    tok_ctx_free(ctx);
    tokenizer_free(tok);
    return rc;
}
