/* eval.c - prompts of the passkey and needle tasks, built in tokens, and their scores. */
#include "eval.h"

#include "tokenizer.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

struct eval_ctx {
    const tokenizer *tok;
    tok_ctx *tc;
    uint32_t bos;
    uint8_t *period; /* (vocab) 1 for a period token */
    uint32_t vocab;
    /* passkey pieces */
    uint32_t *task, *nl, *question, *fill_head, *fill_rep;
    size_t n_task, n_nl, n_question, n_fill_head, n_fill_rep;
    /* needle pieces */
    uint32_t *head, *needle, *tail;
    size_t n_head, n_needle, n_tail;
    char err[512];
};

struct eval_haystack {
    uint32_t *ids; /* (n) */
    size_t n;
    uint64_t hash;
};

const char *eval_strerror(int status) {
    switch (status) {
    case EVAL_OK:
        return "ok";
    case EVAL_ERR_IO:
        return "I/O error";
    case EVAL_ERR_NOMEM:
        return "out of memory";
    case EVAL_ERR_ARG:
        return "invalid argument";
    case EVAL_ERR_TOKEN:
        return "the tokenizer cannot build the prompt";
    case EVAL_ERR_FORMAT:
        return "bad haystack text";
    default:
        return "unknown status";
    }
}

static int fail(eval_ctx *c, int status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof c->err, fmt, ap);
    va_end(ap);
    return status;
}

const char *eval_ctx_errmsg(const eval_ctx *c) {
    return c ? c->err : "";
}

uint64_t eval_seed_mix(uint64_t seed, uint64_t a, uint64_t b) {
    uint64_t x = seed;
    const uint64_t parts[2] = {a, b};
    for (int i = 0; i < 3; i++) { /* splitmix64 over seed, a, b in turn */
        x += 0x9e3779b97f4a7c15ull + (i ? parts[i - 1] * 0xd1b54a32d192ed03ull : 0);
        uint64_t z = x;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        x = z ^ (z >> 31);
    }
    return x;
}

/* ==== pieces ==================================================================================*/

int eval_ctx_piece(eval_ctx *c, const char *ctx, const char *s, size_t n, uint32_t **ids,
                   size_t *n_ids) {
    *ids = NULL;
    *n_ids = 0;
    const tok_encode_opts eo = tok_encode_opts_default(); /* no BOS, specials as text */
    const size_t n_ctx = strlen(ctx);
    const uint32_t *got;
    size_t n_got, n_pre = 0;
    uint32_t *pre = NULL;
    if (n_ctx) {
        if (tokenizer_encode(c->tc, ctx, n_ctx, &eo, &got, &n_got) != TOK_OK)
            return fail(c, EVAL_ERR_NOMEM, "out of memory tokenizing");
        if (!(pre = malloc((n_got ? n_got : 1) * sizeof *pre)))
            return fail(c, EVAL_ERR_NOMEM, "out of memory tokenizing");
        memcpy(pre, got, n_got * sizeof *pre);
        n_pre = n_got;
    }
    char *text = malloc(n_ctx + n + 1);
    if (!text) {
        free(pre);
        return fail(c, EVAL_ERR_NOMEM, "out of memory for %zu bytes of text", n_ctx + n);
    }
    memcpy(text, ctx, n_ctx);
    memcpy(text + n_ctx, s, n);
    int st = tokenizer_encode(c->tc, text, n_ctx + n, &eo, &got, &n_got);
    free(text);
    if (st != TOK_OK) {
        free(pre);
        return fail(c, EVAL_ERR_NOMEM, "out of memory tokenizing %zu bytes", n_ctx + n);
    }
    if (n_got < n_pre || (n_pre && memcmp(got, pre, n_pre * sizeof *pre))) {
        free(pre);
        return fail(c, EVAL_ERR_TOKEN, "'%.40s' does not tokenize the same before '%.40s'", ctx, s);
    }
    free(pre);
    *n_ids = n_got - n_pre;
    if (!(*ids = malloc((*n_ids ? *n_ids : 1) * sizeof **ids)))
        return fail(c, EVAL_ERR_NOMEM, "out of memory for %zu ids", *n_ids);
    memcpy(*ids, got + n_pre, *n_ids * sizeof **ids);
    return EVAL_OK;
}

static int piece(eval_ctx *c, const char *ctx, const char *s, uint32_t **ids, size_t *n) {
    return eval_ctx_piece(c, ctx, s, strlen(s), ids, n);
}

int eval_is_period(const eval_ctx *c, uint32_t id) {
    return id < c->vocab && c->period[id];
}

int eval_ctx_decode(eval_ctx *c, const uint32_t *ids, size_t n, const char **text, size_t *n_text) {
    const int st = tokenizer_decode(c->tc, ids, n, text, n_text);
    return st == TOK_OK ? EVAL_OK : st == TOK_ERR_ARG ? EVAL_ERR_ARG : EVAL_ERR_NOMEM;
}

/* The filler stream: F repeated with single spaces, after "\n". Its first copy starts without a
 * space, the others with one; the stream is head + rep + rep + ... when the tokens do not cross
 * the copies' boundaries, which is checked on three copies. */
static int filler_make(eval_ctx *c) {
    static const char F[] = EVAL_PASSKEY_FILLER;
    char three[3 * sizeof F + 2];
    snprintf(three, sizeof three, "%s %s %s", F, F, F);
    uint32_t *all = NULL;
    size_t n_all;
    int st = piece(c, "\n", F, &c->fill_head, &c->n_fill_head);
    if (st == EVAL_OK)
        st = piece(c, F, " " EVAL_PASSKEY_FILLER, &c->fill_rep, &c->n_fill_rep);
    if (st == EVAL_OK)
        st = piece(c, "\n", three, &all, &n_all);
    if (st == EVAL_OK &&
        (c->n_fill_rep == 0 || n_all != c->n_fill_head + 2 * c->n_fill_rep ||
         memcmp(all, c->fill_head, c->n_fill_head * sizeof *all) ||
         memcmp(all + c->n_fill_head, c->fill_rep, c->n_fill_rep * sizeof *all) ||
         memcmp(all + c->n_fill_head + c->n_fill_rep, c->fill_rep, c->n_fill_rep * sizeof *all)))
        st = fail(c, EVAL_ERR_TOKEN, "the passkey filler does not repeat in tokens");
    free(all);
    return st;
}

static uint32_t filler_at(const eval_ctx *c, size_t j) {
    return j < c->n_fill_head ? c->fill_head[j] : c->fill_rep[(j - c->n_fill_head) % c->n_fill_rep];
}

int eval_ctx_create(const tokenizer *t, eval_ctx **out) {
    eval_ctx *c = *out = calloc(1, sizeof *c);
    if (!c)
        return EVAL_ERR_NOMEM;
    c->tok = t;
    if (tokenizer_bos_id(t) < 0)
        return fail(c, EVAL_ERR_TOKEN, "the tokenizer has no BOS token");
    c->bos = (uint32_t)tokenizer_bos_id(t);
    c->vocab = tokenizer_vocab_size(t);
    if (tok_ctx_create(t, &c->tc) != TOK_OK || !(c->period = calloc(c->vocab, 1)))
        return fail(c, EVAL_ERR_NOMEM, "out of memory");
    /* Fu's period ids are Llama 2's "." and "▁."; the same by their pieces, for any vocabulary
     * (a byte-level piece of " ." is its raw bytes) */
    for (uint32_t id = 0; id < c->vocab; id++) {
        size_t nb;
        const char *p = tokenizer_token(t, id, &nb);
        c->period[id] = p && ((nb == 1 && p[0] == '.') || (nb == 2 && !memcmp(p, " .", 2)) ||
                              (nb == 4 && !memcmp(p, "\xe2\x96\x81.", 4)));
    }
    int st = piece(c, "", EVAL_PASSKEY_TASK, &c->task, &c->n_task);
    if (st == EVAL_OK)
        st = piece(c, ".", "\n", &c->nl, &c->n_nl);
    if (st == EVAL_OK)
        st = piece(c, "\n", EVAL_PASSKEY_QUESTION, &c->question, &c->n_question);
    if (st == EVAL_OK)
        st = filler_make(c);
    if (st == EVAL_OK)
        st = piece(c, "", EVAL_NEEDLE_HEAD, &c->head, &c->n_head);
    if (st == EVAL_OK)
        st = piece(c, ".", EVAL_NEEDLE, &c->needle, &c->n_needle);
    if (st == EVAL_OK)
        st = piece(c, ".", EVAL_NEEDLE_TAIL EVAL_NEEDLE_QUESTION "\nAnswer:", &c->tail, &c->n_tail);
    return st;
}

void eval_ctx_free(eval_ctx *c) {
    if (!c)
        return;
    tok_ctx_free(c->tc);
    free(c->period);
    free(c->task);
    free(c->nl);
    free(c->question);
    free(c->fill_head);
    free(c->fill_rep);
    free(c->head);
    free(c->needle);
    free(c->tail);
    free(c);
}

void eval_prompt_free(eval_prompt *p) {
    if (!p)
        return;
    free(p->ids);
    memset(p, 0, sizeof *p);
}

static uint32_t *put(uint32_t *at, const uint32_t *ids, size_t n) {
    memcpy(at, ids, n * sizeof *ids);
    return at + n;
}

/* ==== passkey =================================================================================*/

int eval_passkey_make(eval_ctx *c, size_t length, uint64_t seed, uint64_t trial, eval_prompt *p) {
    memset(p, 0, sizeof *p);
    const uint64_t r = eval_seed_mix(seed, length, trial);
    const unsigned key = 1 + (unsigned)(r % EVAL_PASSKEY_MAX_KEY);
    char line[160];
    snprintf(line, sizeof line, "The pass key is %u. Remember it. %u is the pass key.", key, key);
    uint32_t *kl;
    size_t n_kl;
    int st = piece(c, "\n", line, &kl, &n_kl);
    if (st != EVAL_OK)
        return st;
    const size_t fixed = 1 + c->n_task + 4 * c->n_nl + n_kl + c->n_question;
    if (length < fixed) {
        free(kl);
        return fail(c, EVAL_ERR_ARG, "passkey length %zu is shorter than its %zu fixed tokens",
                    length, fixed);
    }
    const size_t n_fill = length - fixed;
    /* Landmark: prefix = random 0..n, suffix = n - prefix; a second draw, independent of the
     * key's */
    const size_t a = (size_t)(eval_seed_mix(r, 1, 0) % ((uint64_t)n_fill + 1)), b = n_fill - a;
    if (!(p->ids = malloc(length * sizeof *p->ids))) {
        free(kl);
        return fail(c, EVAL_ERR_NOMEM, "out of memory for %zu ids", length);
    }
    uint32_t *at = p->ids;
    *at++ = c->bos;
    at = put(at, c->task, c->n_task);
    at = put(at, c->nl, c->n_nl);
    for (size_t j = 0; j < a; j++)
        *at++ = filler_at(c, j);
    at = put(at, c->nl, c->n_nl);
    p->needle_pos = (size_t)(at - p->ids);
    at = put(at, kl, n_kl);
    at = put(at, c->nl, c->n_nl);
    for (size_t j = 0; j < b; j++)
        *at++ = filler_at(c, j);
    at = put(at, c->nl, c->n_nl);
    at = put(at, c->question, c->n_question);
    free(kl);
    p->n_ids = (size_t)(at - p->ids);
    p->needle_tokens = n_kl;
    p->n_filler = n_fill;
    p->depth = n_fill ? 100.0 * (double)a / (double)n_fill : 0.0;
    p->n_new = EVAL_PASSKEY_NEW;
    snprintf(p->expected, sizeof p->expected, "%u", key);
    return p->n_ids == length ? EVAL_OK : fail(c, EVAL_ERR_ARG, "internal: length");
}

/* s without its leading zeros (a lone "0" stays) */
static const char *no_zeros(const char *s, size_t *n) {
    while (*n > 1 && *s == '0') {
        s++;
        (*n)--;
    }
    return s;
}

int eval_passkey_score(const char *answer, size_t n, const char *expected) {
    size_t i = 0;
    while (i < n && !(answer[i] >= '0' && answer[i] <= '9'))
        i++;
    size_t j = i;
    while (j < n && answer[j] >= '0' && answer[j] <= '9')
        j++;
    size_t n_got = j - i, n_exp = strlen(expected);
    if (n_got == 0 || n_exp == 0)
        return 0;
    const char *g = no_zeros(answer + i, &n_got), *e = no_zeros(expected, &n_exp);
    return n_got == n_exp && !memcmp(g, e, n_got);
}

/* ==== needle ==================================================================================*/

static int path_cmp(const void *x, const void *y) {
    return strcmp(*(const char *const *)x, *(const char *const *)y);
}

static int read_all(eval_ctx *c, const char *path, char **buf, size_t *n, size_t *cap) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return fail(c, EVAL_ERR_IO, "%s: %s", path, strerror(errno));
    const size_t start = *n;
    for (;;) {
        if (*cap - *n < 65536) {
            size_t nc = *cap ? 2 * *cap : 1 << 20;
            char *q = realloc(*buf, nc);
            if (!q) {
                fclose(f);
                return fail(c, EVAL_ERR_NOMEM, "%s: out of memory", path);
            }
            *buf = q;
            *cap = nc;
        }
        const size_t got = fread(*buf + *n, 1, *cap - *n - 1, f);
        *n += got;
        if (got == 0)
            break;
    }
    const int bad = ferror(f);
    fclose(f);
    if (bad)
        return fail(c, EVAL_ERR_IO, "%s: read error", path);
    const unsigned char *u = (const unsigned char *)*buf;
    for (size_t at = start; at < *n;) {
        uint32_t cp;
        const size_t k = tok_utf8_next(u + at, *n - at, &cp);
        if (cp == TOK_INVALID_CP)
            return fail(c, EVAL_ERR_FORMAT, "%s: offset %zu: invalid UTF-8", path, at - start);
        at += k;
    }
    return EVAL_OK;
}

int eval_haystack_load(eval_ctx *c, const char *const *paths, size_t n_paths, eval_haystack **out) {
    *out = NULL;
    if (n_paths == 0)
        return fail(c, EVAL_ERR_ARG, "no haystack files");
    const char **sorted = malloc(n_paths * sizeof *sorted);
    char *text = NULL;
    size_t n = 1, cap = 0; /* text[0] is the space that the first word takes after "<book>" */
    int st = sorted ? EVAL_OK : fail(c, EVAL_ERR_NOMEM, "out of memory");
    if (st == EVAL_OK) {
        memcpy(sorted, paths, n_paths * sizeof *sorted);
        qsort(sorted, n_paths, sizeof *sorted, path_cmp);
        if (!(text = malloc(cap = 1 << 20)))
            st = fail(c, EVAL_ERR_NOMEM, "out of memory");
        else
            text[0] = ' ';
    }
    for (size_t i = 0; st == EVAL_OK && i < n_paths; i++)
        st = read_all(c, sorted[i], &text, &n, &cap);
    if (st == EVAL_OK && n == 1)
        st = fail(c, EVAL_ERR_FORMAT, "%s: the haystack files hold no text", sorted[0]);
    eval_haystack *h = NULL;
    if (st == EVAL_OK && !(h = calloc(1, sizeof *h)))
        st = fail(c, EVAL_ERR_NOMEM, "out of memory");
    if (st == EVAL_OK)
        st = eval_ctx_piece(c, "<book>", text, n, &h->ids, &h->n);
    if (st == EVAL_OK && h->n == 0)
        st = fail(c, EVAL_ERR_FORMAT, "%s: the haystack has no tokens", sorted[0]);
    if (st == EVAL_OK)
        h->hash = XXH3_64bits(h->ids, h->n * sizeof *h->ids);
    free(text);
    free(sorted);
    if (st != EVAL_OK)
        eval_haystack_free(h);
    else
        *out = h;
    return st;
}

void eval_haystack_free(eval_haystack *h) {
    if (!h)
        return;
    free(h->ids);
    free(h);
}

size_t eval_haystack_tokens(const eval_haystack *h) {
    return h->n;
}

uint64_t eval_haystack_hash(const eval_haystack *h) {
    return h->hash;
}

int eval_needle_make(eval_ctx *c, const eval_haystack *h, size_t length, double depth_percent,
                     eval_prompt *p) {
    memset(p, 0, sizeof *p);
    if (!(depth_percent >= 0.0 && depth_percent <= 100.0))
        return fail(c, EVAL_ERR_ARG, "needle depth %g is not in 0..100", depth_percent);
    const size_t fixed = 1 + c->n_head + c->n_needle + c->n_tail;
    if (length < fixed)
        return fail(c, EVAL_ERR_ARG, "needle length %zu is shorter than its %zu fixed tokens",
                    length, fixed);
    const size_t n_h = length - fixed;
    size_t ins = depth_percent >= 100.0 ? n_h : (size_t)floor((double)n_h * depth_percent / 100.0);
    if (ins > n_h)
        ins = n_h;
    if (depth_percent < 100.0)
        while (ins > 0 && !eval_is_period(c, h->ids[(ins - 1) % h->n]))
            ins--;
    if (!(p->ids = malloc(length * sizeof *p->ids)))
        return fail(c, EVAL_ERR_NOMEM, "out of memory for %zu ids", length);
    uint32_t *at = p->ids;
    *at++ = c->bos;
    at = put(at, c->head, c->n_head);
    for (size_t j = 0; j < ins; j++)
        *at++ = h->ids[j % h->n];
    p->needle_pos = (size_t)(at - p->ids);
    at = put(at, c->needle, c->n_needle);
    for (size_t j = ins; j < n_h; j++)
        *at++ = h->ids[j % h->n];
    at = put(at, c->tail, c->n_tail);
    p->n_ids = (size_t)(at - p->ids);
    p->needle_tokens = c->n_needle;
    p->n_filler = n_h;
    p->depth = n_h ? 100.0 * (double)ins / (double)n_h : 0.0;
    p->n_new = EVAL_NEEDLE_NEW;
    snprintf(p->expected, sizeof p->expected, "%s", EVAL_NEEDLE_ANSWER);
    return p->n_ids == length ? EVAL_OK : fail(c, EVAL_ERR_ARG, "internal: length");
}

/* ==== needle scores ===========================================================================*/

static int is_space(char ch) {
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\v' || ch == '\f';
}

static char lower(char ch) {
    return ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
}

double eval_needle_recall(const char *answer, size_t n) {
    static const char *const expected[] = {"eat",     "a",    "sandwich", "and", "sit",   "in",
                                           "dolores", "park", "on",       "a",   "sunny", "day."};
    enum { N_EXP = sizeof expected / sizeof expected[0] };
    int seen[N_EXP] = {0};
    for (size_t i = 0; i < n;) {
        while (i < n && is_space(answer[i]))
            i++;
        size_t j = i;
        while (j < n && !is_space(answer[j]))
            j++;
        for (int e = 0; j > i && e < N_EXP; e++) {
            const size_t ne = strlen(expected[e]);
            size_t k = 0;
            while (k < ne && i + k < j && lower(answer[i + k]) == expected[e][k])
                k++;
            if (k == ne && i + k == j)
                seen[e] = 1;
        }
        i = j;
    }
    /* the intersection of two sets: a word counts once, so "a" (twice in expected) is one */
    int hits = 0;
    for (int e = 0; e < N_EXP; e++) {
        int first = 1;
        for (int f = 0; f < e; f++)
            first &= strcmp(expected[f], expected[e]) != 0;
        hits += seen[e] && first;
    }
    return (double)hits / N_EXP;
}

int eval_needle_substring(const char *answer, size_t n) {
    static const char want[] = "eat a sandwich and sit in dolores park on a sunny day";
    /* a match of want at each start, a space of want taking a run of whitespace */
    for (size_t i = 0; i < n; i++) {
        size_t j = i, k = 0;
        while (want[k] && j < n) {
            if (want[k] == ' ') {
                if (!is_space(answer[j]))
                    break;
                while (j < n && is_space(answer[j]))
                    j++;
            } else if (lower(answer[j]) == want[k]) {
                j++;
            } else {
                break;
            }
            k++;
        }
        if (!want[k])
            return 1;
    }
    return 0;
}
