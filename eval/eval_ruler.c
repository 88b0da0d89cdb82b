/* eval_ruler.c - RULER's synthetic probes (niah single and multikey, variable tracking,
 * frequent-words extraction) built in tokens to exact lengths, and RULER's string-match
 * scores. The formats are in eval.h. */
#include "eval.h"

#include "tokenizer.h"

#include <assert.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

struct eval_ruler {
    eval_ctx *ec;
    uint32_t bos;
    uint32_t *noise, *sep, *dots; /* noise after "\n"; "\n" after "."; " ...." after a word */
    size_t n_noise, n_sep, n_dots;
    char err[512];
};

static const char *const task_names[EVAL_RULER_N_TASKS] = {
    "niah_single", "niah_single_uuid", "niah_multikey", "niah_multikey_uuid", "vt", "fwe",
};

const char *eval_ruler_task_name(int task) {
    return task >= 0 && task < EVAL_RULER_N_TASKS ? task_names[task] : NULL;
}

int eval_ruler_task_parse(const char *name) {
    for (int t = 0; t < EVAL_RULER_N_TASKS; t++)
        if (!strcmp(name, task_names[t]))
            return t;
    return -1;
}

static int fail(eval_ruler *r, int status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err, sizeof r->err, fmt, ap);
    va_end(ap);
    return status;
}

const char *eval_ruler_errmsg(const eval_ruler *r) {
    return r ? r->err : "";
}

/* the ids of s after the text ctx (eval_ctx_piece), its message copied on failure */
static int piece(eval_ruler *r, const char *ctx, const char *s, uint32_t **ids, size_t *n) {
    const int st = eval_ctx_piece(r->ec, ctx, s, strlen(s), ids, n);
    if (st != EVAL_OK)
        return fail(r, st, "%s", eval_ctx_errmsg(r->ec));
    return EVAL_OK;
}

int eval_ruler_decode(eval_ruler *r, const uint32_t *ids, size_t n, const char **text,
                      size_t *n_text) {
    return eval_ctx_decode(r->ec, ids, n, text, n_text);
}

int eval_ruler_create(const tokenizer *t, eval_ruler **out) {
    eval_ruler *r = *out = calloc(1, sizeof *r);
    if (!r)
        return EVAL_ERR_NOMEM;
    int st = eval_ctx_create(t, &r->ec);
    if (st != EVAL_OK)
        return fail(r, st, "%s", eval_ctx_errmsg(r->ec));
    r->bos = (uint32_t)tokenizer_bos_id(t);
    st = piece(r, "\n", EVAL_PASSKEY_FILLER, &r->noise, &r->n_noise);
    if (st == EVAL_OK)
        st = piece(r, ".", "\n", &r->sep, &r->n_sep);
    if (st == EVAL_OK)
        st = piece(r, "a", " ....", &r->dots, &r->n_dots);
    /* the dots must repeat in tokens: the top-up of fwe is a cut of " .... .... ..." */
    uint32_t *three = NULL;
    size_t n3 = 0;
    if (st == EVAL_OK)
        st = piece(r, "a", " .... .... ....", &three, &n3);
    if (st == EVAL_OK && (r->n_dots == 0 || n3 != 3 * r->n_dots ||
                          memcmp(three, r->dots, r->n_dots * sizeof *three) ||
                          memcmp(three + r->n_dots, r->dots, r->n_dots * sizeof *three) ||
                          memcmp(three + 2 * r->n_dots, r->dots, r->n_dots * sizeof *three)))
        st = fail(r, EVAL_ERR_TOKEN, "fwe's noise word ' ....' does not repeat in tokens");
    if (st == EVAL_OK && (r->n_noise == 0 || r->n_sep == 0))
        st = fail(r, EVAL_ERR_TOKEN, "the noise sentence or the newline has no tokens");
    free(three);
    return st;
}

void eval_ruler_free(eval_ruler *r) {
    if (!r)
        return;
    eval_ctx_free(r->ec);
    free(r->noise);
    free(r->sep);
    free(r->dots);
    free(r);
}

void eval_ruler_prompt_free(eval_ruler_prompt *p) {
    if (!p)
        return;
    free(p->ids);
    memset(p, 0, sizeof *p);
}

/* ==== random choices ==========================================================================*/

typedef struct {
    uint64_t s;
} rng;

static uint64_t rng_next(rng *g) { /* splitmix64 */
    uint64_t z = (g->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rng_below(rng *g, uint64_t n) { /* 0..n-1; the modulo bias is < n / 2^64 */
    return n ? rng_next(g) % n : 0;
}

static void uuid4(rng *g, char out[37]) {
    static const char hex[] = "0123456789abcdef";
    const uint64_t a = rng_next(g);
    const uint64_t b = rng_next(g);
    uint8_t x[16];
    for (int i = 0; i < 8; i++) {
        x[i] = (uint8_t)(a >> (8 * i));
        x[8 + i] = (uint8_t)(b >> (8 * i));
    }
    x[6] = (uint8_t)((x[6] & 0x0f) | 0x40); /* version 4 */
    x[8] = (uint8_t)((x[8] & 0x3f) | 0x80); /* variant 10 */
    char *o = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *o++ = '-';
        *o++ = hex[x[i] >> 4];
        *o++ = hex[x[i] & 15];
    }
    *o = '\0';
}

/* RULER's word keys are wonderwords' "adjective-noun"; these lists stand in for its */
static const char *const adjectives[] = {
    "abundant", "ancient", "bitter",  "brave",   "bright",   "calm",    "clever", "curious",
    "damp",     "eager",   "elegant", "fancy",   "fearless", "fragile", "gentle", "gigantic",
    "glossy",   "grumpy",  "hollow",  "humble",  "icy",      "jolly",   "lively", "lucky",
    "mellow",   "modern",  "narrow",  "nervous", "noisy",    "orange",  "polite", "proud",
    "quiet",    "rapid",   "rustic",  "shiny",   "silent",   "sleepy",  "smooth", "sour",
    "steady",   "sturdy",  "tender",  "tidy",    "vivid",    "wary",    "wicked", "zealous",
};
static const char *const nouns[] = {
    "anchor", "apple",   "badge",   "basket", "beacon",  "bicycle", "blanket", "bottle",
    "bridge", "candle",  "canyon",  "castle", "cherry",  "compass", "cottage", "crystal",
    "desert", "dolphin", "engine",  "falcon", "feather", "forest",  "garden",  "glacier",
    "harbor", "helmet",  "island",  "jacket", "kettle",  "ladder",  "lantern", "meadow",
    "mirror", "needle",  "orchard", "parrot", "pebble",  "pillow",  "planet",  "river",
    "saddle", "shadow",  "spider",  "swamp",  "teapot",  "thunder", "tunnel",  "violin",
};
enum { N_ADJ = sizeof adjectives / sizeof adjectives[0], N_NOUN = sizeof nouns / sizeof nouns[0] };

/* key j of k distinct ones: word keys drawn without repeats */
static void draw_keys(rng *g, int uuid, int k, char keys[][40]) {
    for (int j = 0; j < k; j++) {
        int again;
        do {
            if (uuid) {
                uuid4(g, keys[j]);
            } else { /* two statements: the order of a call's arguments is unspecified */
                const uint64_t adj = rng_below(g, N_ADJ);
                const uint64_t noun = rng_below(g, N_NOUN);
                snprintf(keys[j], 40, "%s-%s", adjectives[adj], nouns[noun]);
            }
            again = 0;
            for (int i = 0; i < j; i++)
                again |= !strcmp(keys[i], keys[j]);
        } while (again);
    }
}

/* k distinct slots of 0..m-1 (k <= m), increasing */
static void draw_slots(rng *g, size_t m, int k, size_t *slot) {
    for (int j = 0; j < k; j++) {
        int again;
        do {
            slot[j] = (size_t)rng_below(g, m);
            again = 0;
            for (int i = 0; i < j; i++)
                again |= slot[i] == slot[j];
        } while (again);
    }
    for (int j = 1; j < k; j++) /* insertion sort */
        for (int i = j; i > 0 && slot[i - 1] > slot[i]; i--) {
            const size_t t = slot[i];
            slot[i] = slot[i - 1];
            slot[i - 1] = t;
        }
}

/* the item's random source: (seed, task) then (length, trial) */
static rng item_rng(uint64_t seed, int task, size_t length, uint64_t trial) {
    rng g = {eval_seed_mix(eval_seed_mix(seed, 0x52554c4552ull /* "RULER" */, (uint64_t)task),
                           length, trial)};
    return g;
}

/* ==== the search ==============================================================================*/

typedef size_t (*cost_fn)(const void *ctx, size_t n);

/* the largest n in 0..hi with cost(n) <= budget (cost non-decreasing), or SIZE_MAX if not even
 * cost(0) fits */
static size_t search(cost_fn cost, const void *ctx, size_t hi, size_t budget) {
    if (cost(ctx, 0) > budget)
        return SIZE_MAX;
    size_t lo = 0; /* cost(lo) fits */
    while (lo < hi) {
        const size_t mid = lo + (hi - lo + 1) / 2;
        if (cost(ctx, mid) <= budget)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

static uint32_t *put(uint32_t *at, const uint32_t *ids, size_t n) {
    memcpy(at, ids, n * sizeof *ids);
    return at + n;
}

/* ==== line tasks: niah and vt =================================================================*/

typedef struct {
    uint32_t *ids, *sep; /* the line after "\n", and the "\n" after it */
    size_t n, n_sep;
} line;

typedef struct {
    size_t fixed;   /* BOS, head, tail and the special lines with their newlines */
    size_t per_one; /* a noise line and its newline */
} line_cost;

static size_t line_cost_of(const void *ctx, size_t n) {
    const line_cost *c = ctx;
    return c->fixed + n * c->per_one;
}

/* BOS, head, the top-up (the last r tokens of a noise line and its "\n"), then n_noise noise
 * lines and the k special lines at the slots drawn from g (in the order given), each line with
 * its "\n", then tail. */
static int lines_build(eval_ruler *r, rng *g, size_t length, const uint32_t *head, size_t n_head,
                       const uint32_t *tail, size_t n_tail, const line *sp, int k, int queried,
                       eval_ruler_prompt *p) {
    line_cost c = {1 + n_head + n_tail, r->n_noise + r->n_sep};
    for (int j = 0; j < k; j++)
        c.fixed += sp[j].n + sp[j].n_sep;
    const size_t n_noise = search(line_cost_of, &c, length / c.per_one + 1, length);
    if (n_noise == SIZE_MAX)
        return fail(r, EVAL_ERR_ARG,
                    "length %zu is shorter than the %zu tokens of the template "
                    "and its lines",
                    length, c.fixed);
    const size_t top = length - line_cost_of(&c, n_noise);
    assert(top < c.per_one);
    size_t slot[EVAL_RULER_MAX_REFS + EVAL_RULER_MULTIKEYS];
    assert(k <= (int)(sizeof slot / sizeof slot[0]));
    draw_slots(g, n_noise + (size_t)k, k, slot);
    if (!(p->ids = malloc(length * sizeof *p->ids)))
        return fail(r, EVAL_ERR_NOMEM, "out of memory for %zu ids", length);
    uint32_t *at = p->ids;
    *at++ = r->bos;
    at = put(at, head, n_head);
    for (size_t j = c.per_one - top; j < c.per_one; j++)
        *at++ = j < r->n_noise ? r->noise[j] : r->sep[j - r->n_noise];
    size_t noise_before = 0;
    for (size_t u = 0, j = 0; u < n_noise + (size_t)k; u++) {
        if (j < (size_t)k && slot[j] == u) {
            if ((int)j == queried) {
                p->needle_pos = (long)(at - p->ids);
                p->needle_tokens = sp[j].n;
                p->depth = n_noise ? 100.0 * (double)noise_before / (double)n_noise : 0.0;
            }
            at = put(at, sp[j].ids, sp[j].n);
            at = put(at, sp[j].sep, sp[j].n_sep);
            j++;
        } else {
            at = put(at, r->noise, r->n_noise);
            at = put(at, r->sep, r->n_sep);
            noise_before++;
        }
    }
    at = put(at, tail, n_tail);
    p->n_ids = (size_t)(at - p->ids);
    p->n_units = n_noise;
    return p->n_ids == length ? EVAL_OK : fail(r, EVAL_ERR_ARG, "internal: length");
}

static int niah_make(eval_ruler *r, int task, size_t length, rng *g, eval_ruler_prompt *p) {
    const int multi = task == EVAL_RULER_NIAH_MULTIKEY || task == EVAL_RULER_NIAH_MULTIKEY_UUID;
    const int uuid_v = task == EVAL_RULER_NIAH_SINGLE_UUID || task == EVAL_RULER_NIAH_MULTIKEY_UUID;
    const int uuid_k = task == EVAL_RULER_NIAH_MULTIKEY_UUID;
    const int k = multi ? EVAL_RULER_MULTIKEYS : 1;
    const char *type = uuid_v ? "uuids" : "numbers";
    char keys[EVAL_RULER_MULTIKEYS][40], vals[EVAL_RULER_MULTIKEYS][40];
    draw_keys(g, uuid_k, k, keys);
    for (int j = 0; j < k; j++) {
        if (uuid_v)
            uuid4(g, vals[j]);
        else /* RULER: random.randint(10**6, 10**7 - 1) */
            snprintf(vals[j], 40, "%u", 1000000u + (unsigned)rng_below(g, 9000000));
    }
    const int q = (int)rng_below(g, (uint64_t)k); /* the queried key */
    /* the lines' order in the text: a shuffle of the keys */
    int order[EVAL_RULER_MULTIKEYS];
    for (int j = 0; j < k; j++)
        order[j] = j;
    for (int j = k - 1; j > 0; j--) {
        const int i = (int)rng_below(g, (uint64_t)j + 1), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    char text[512];
    line sp[EVAL_RULER_MULTIKEYS] = {{0}};
    uint32_t *head = NULL, *tail = NULL;
    size_t n_head = 0, n_tail = 0;
    int st = EVAL_OK, queried = 0;
    for (int j = 0; st == EVAL_OK && j < k; j++) {
        const int key = order[j];
        if (key == q)
            queried = j;
        snprintf(text, sizeof text, "One of the special magic %s for %s is: %s.", type, keys[key],
                 vals[key]);
        st = piece(r, "\n", text, &sp[j].ids, &sp[j].n);
        if (st == EVAL_OK)
            st = piece(r, text, "\n", &sp[j].sep, &sp[j].n_sep);
    }
    snprintf(text, sizeof text,
             "Some special magic %s are hidden within the following text. Make sure to memorize "
             "it. I will quiz you about the %s afterwards.\n",
             type, type);
    if (st == EVAL_OK)
        st = piece(r, "", text, &head, &n_head);
    snprintf(text, sizeof text,
             "What are all the special magic %s for %s mentioned in the provided text? The "
             "special magic %s for %s mentioned in the provided text are",
             type, keys[q], type, keys[q]);
    if (st == EVAL_OK)
        st = piece(r, "\n", text, &tail, &n_tail);
    if (st == EVAL_OK)
        st = lines_build(r, g, length, head, n_head, tail, n_tail, sp, k, queried, p);
    if (st == EVAL_OK) {
        snprintf(p->query, sizeof p->query, "%s", keys[q]);
        p->n_refs = 1;
        snprintf(p->refs[0], sizeof p->refs[0], "%s", vals[q]);
        p->n_new = EVAL_RULER_NIAH_NEW;
    }
    for (int j = 0; j < k; j++) {
        free(sp[j].ids);
        free(sp[j].sep);
    }
    free(head);
    free(tail);
    return st;
}

static int vt_make(eval_ruler *r, size_t length, rng *g, eval_ruler_prompt *p) {
    enum { K = EVAL_RULER_VT_HOPS + 1 };
    char names[K][40], text[512];
    for (int j = 0; j < K; j++) { /* distinct names of 5 upper-case letters */
        int again;
        do {
            for (int i = 0; i < 5; i++)
                names[j][i] = (char)('A' + rng_below(g, 26));
            names[j][5] = '\0';
            again = 0;
            for (int i = 0; i < j; i++)
                again |= !strcmp(names[i], names[j]);
        } while (again);
    }
    const unsigned value = 10000u + (unsigned)rng_below(g, 90000); /* randint(10000, 99999) */
    line sp[K] = {{0}};
    uint32_t *head = NULL, *tail = NULL;
    size_t n_head = 0, n_tail = 0;
    int st = EVAL_OK;
    for (int j = 0; st == EVAL_OK && j < K; j++) {
        if (j == 0)
            snprintf(text, sizeof text, "VAR %s = %u", names[0], value);
        else
            snprintf(text, sizeof text, "VAR %s = VAR %s", names[j], names[j - 1]);
        st = piece(r, "\n", text, &sp[j].ids, &sp[j].n);
        if (st == EVAL_OK)
            st = piece(r, text, "\n", &sp[j].sep, &sp[j].n_sep);
    }
    if (st == EVAL_OK)
        st = piece(r, "",
                   "Memorize and track the chain(s) of variable assignment hidden in the "
                   "following text.\n\n",
                   &head, &n_head);
    snprintf(text, sizeof text,
             "Question: Find all variables that are assigned the value %u in the text above. "
             "Answer: According to the chain(s) of variable assignment in the text above, %d "
             "variables are assigned the value %u, they are: ",
             value, K, value);
    if (st == EVAL_OK)
        st = piece(r, "\n", text, &tail, &n_tail);
    if (st == EVAL_OK)
        st = lines_build(r, g, length, head, n_head, tail, n_tail, sp, K, 0, p);
    if (st == EVAL_OK) {
        snprintf(p->query, sizeof p->query, "%u", value);
        p->n_refs = K;
        for (int j = 0; j < K; j++)
            snprintf(p->refs[j], sizeof p->refs[j], "%s", names[j]);
        p->n_new = EVAL_RULER_VT_NEW;
    }
    for (int j = 0; j < K; j++) {
        free(sp[j].ids);
        free(sp[j].sep);
    }
    free(head);
    free(tail);
    return st;
}

/* ==== frequent words ==========================================================================*/

typedef struct {
    size_t fixed;
    const size_t *n_tok; /* (V) tokens of rank r + 1's word */
} fwe_cost;

static size_t fwe_count(size_t N, size_t rank) { /* round(N / rank^2 / zeta(2)), half to even */
    const double zeta2 = 1.6449340668482264;     /* pi^2 / 6 */
    return (size_t)nearbyint((double)N / ((double)rank * (double)rank) / zeta2);
}

static size_t fwe_cost_of(const void *ctx, size_t N) {
    const fwe_cost *c = ctx;
    size_t total = c->fixed;
    for (size_t r = 0; r < EVAL_RULER_FWE_VOCAB; r++)
        total += fwe_count(N, r + 1) * c->n_tok[r];
    return total;
}

static int word_cmp(const void *x, const void *y) {
    return memcmp(x, y, 7);
}

static int fwe_make(eval_ruler *r, size_t length, rng *g, eval_ruler_prompt *p) {
    enum { V = EVAL_RULER_FWE_VOCAB };
    char(*vocab)[7] = malloc(V * sizeof *vocab);
    uint32_t **ids = calloc(V, sizeof *ids);
    size_t *n_tok = calloc(V, sizeof *n_tok), *words = NULL;
    uint32_t *head = NULL, *tail = NULL;
    size_t n_head = 0, n_tail = 0;
    int st = vocab && ids && n_tok ? EVAL_OK : fail(r, EVAL_ERR_NOMEM, "out of memory");
    /* RULER: V distinct random 6-letter words, sorted, shuffled; rank 1 is the noise "...." */
    for (size_t n = 0; st == EVAL_OK && n < V;) {
        for (size_t w = n; w < V; w++) {
            for (int i = 0; i < 6; i++)
                vocab[w][i] = (char)('a' + rng_below(g, 26));
            vocab[w][6] = '\0';
        }
        qsort(vocab, V, sizeof *vocab, word_cmp);
        n = 1;
        for (size_t w = 1; w < V; w++)
            if (memcmp(vocab[w], vocab[n - 1], 7))
                memcpy(vocab[n++], vocab[w], 7);
    }
    for (size_t w = V - 1; st == EVAL_OK && w > 0; w--) {
        const size_t i = (size_t)rng_below(g, w + 1);
        char t[7];
        memcpy(t, vocab[i], 7);
        memcpy(vocab[i], vocab[w], 7);
        memcpy(vocab[w], t, 7);
    }
    for (size_t w = 1; st == EVAL_OK && w < V; w++) {
        char s[8] = " ";
        memcpy(s + 1, vocab[w], 7);
        st = piece(r, "a", s, &ids[w], &n_tok[w]);
    }
    if (st == EVAL_OK) {
        n_tok[0] = r->n_dots;
        st = piece(r, "",
                   "Read the following coded text and track the frequency of each coded word. "
                   "Find the three most frequently appeared coded words.",
                   &head, &n_head);
    }
    if (st == EVAL_OK)
        st = piece(r, "a",
                   "\nQuestion: Do not provide any explanation. Please ignore the dots '....'. "
                   "What are the three most frequently appeared words in the above coded text? "
                   "Answer: According to the coded text above, the three most frequently appeared "
                   "words are:",
                   &tail, &n_tail);
    const fwe_cost c = {1 + n_head + n_tail, n_tok};
    size_t N = 0;
    if (st == EVAL_OK) {
        N = search(fwe_cost_of, &c, 2 * length + 2, length);
        if (N == SIZE_MAX || fwe_count(N, 4) <= fwe_count(N, 5))
            st = fail(r, EVAL_ERR_ARG,
                      "fwe length %zu is too short for a unique top 3 (the template takes %zu "
                      "tokens)",
                      length, c.fixed);
    }
    size_t n_words = 0;
    for (size_t w = 0; st == EVAL_OK && w < V; w++)
        n_words += fwe_count(N, w + 1);
    if (st == EVAL_OK && !(words = malloc((n_words ? n_words : 1) * sizeof *words)))
        st = fail(r, EVAL_ERR_NOMEM, "out of memory for %zu words", n_words);
    if (st == EVAL_OK) {
        size_t k = 0;
        for (size_t w = 0; w < V; w++)
            for (size_t j = fwe_count(N, w + 1); j > 0; j--)
                words[k++] = w;
        for (size_t w = n_words; w > 1; w--) { /* Fisher-Yates */
            const size_t i = (size_t)rng_below(g, w), t = words[i];
            words[i] = words[w - 1];
            words[w - 1] = t;
        }
        if (!(p->ids = malloc(length * sizeof *p->ids)))
            st = fail(r, EVAL_ERR_NOMEM, "out of memory for %zu ids", length);
    }
    if (st == EVAL_OK) {
        const size_t top = length - fwe_cost_of(&c, N);
        uint32_t *at = p->ids;
        *at++ = r->bos;
        at = put(at, head, n_head);
        for (size_t j = 0; j < top; j++) /* the top-up: more of the noise word, cut */
            *at++ = r->dots[j % r->n_dots];
        for (size_t k = 0; k < n_words; k++)
            at = words[k] ? put(at, ids[words[k]], n_tok[words[k]]) : put(at, r->dots, r->n_dots);
        at = put(at, tail, n_tail);
        p->n_ids = (size_t)(at - p->ids);
        p->needle_pos = -1;
        p->depth = -1;
        p->n_units = n_words;
        p->n_refs = 3;
        for (int j = 0; j < 3; j++)
            memcpy(p->refs[j], vocab[1 + j], 7);
        p->n_new = EVAL_RULER_FWE_NEW;
        if (p->n_ids != length)
            st = fail(r, EVAL_ERR_ARG, "internal: length");
    }
    for (size_t w = 0; ids && w < V; w++)
        free(ids[w]);
    free(ids);
    free(n_tok);
    free(vocab);
    free(words);
    free(head);
    free(tail);
    return st;
}

int eval_ruler_make(eval_ruler *r, int task, size_t length, uint64_t seed, uint64_t trial,
                    eval_ruler_prompt *p) {
    memset(p, 0, sizeof *p);
    if (!eval_ruler_task_name(task))
        return fail(r, EVAL_ERR_ARG, "unknown RULER task %d", task);
    rng g = item_rng(seed, task, length, trial);
    int st;
    if (task == EVAL_RULER_VT)
        st = vt_make(r, length, &g, p);
    else if (task == EVAL_RULER_FWE)
        st = fwe_make(r, length, &g, p);
    else
        st = niah_make(r, task, length, &g, p);
    if (st != EVAL_OK)
        eval_ruler_prompt_free(p);
    return st;
}

/* ==== scores ==================================================================================*/

/* s[0, n) lower-cased code point by code point into a malloc'd buffer (*n_out bytes) */
static char *lower_utf8(const char *s, size_t n, size_t *n_out) {
    char *o = malloc(4 * n + 1);
    if (!o)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        utf8proc_int32_t cp;
        const utf8proc_ssize_t len =
            utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &cp);
        if (len <= 0) { /* not UTF-8: the byte as itself */
            o[k++] = s[i++];
            continue;
        }
        k += (size_t)utf8proc_encode_char(utf8proc_tolower(cp), (utf8proc_uint8_t *)o + k);
        i += (size_t)len;
    }
    o[k] = '\0';
    *n_out = k;
    return o;
}

static int contains(const char *h, size_t n_h, const char *needle, size_t n_needle) {
    for (size_t i = 0; n_needle <= n_h && i <= n_h - n_needle; i++)
        if (!memcmp(h + i, needle, n_needle))
            return 1;
    return 0;
}

/* the number of refs in pred, or -1 out of memory */
static int n_found(const char *pred, size_t n, const char *const *refs, int n_refs) {
    size_t n_low;
    char *low = lower_utf8(pred, n, &n_low);
    if (!low)
        return -1;
    int found = 0;
    for (int j = 0; j < n_refs; j++) {
        size_t n_ref;
        char *ref = lower_utf8(refs[j], strlen(refs[j]), &n_ref);
        if (!ref) {
            found = -1;
            break;
        }
        found += contains(low, n_low, ref, n_ref); /* "" is in every string, as Python's in */
        free(ref);
    }
    free(low);
    return found;
}

double eval_ruler_match_all(const char *pred, size_t n, const char *const *refs, int n_refs) {
    if (n_refs <= 0)
        return 0.0;
    const int f = n_found(pred, n, refs, n_refs);
    return f < 0 ? NAN : (double)f / (double)n_refs;
}

int eval_ruler_match_part(const char *pred, size_t n, const char *const *refs, int n_refs) {
    for (int j = 0; j < n_refs; j++) /* one at a time: any */
        if (n_found(pred, n, refs + j, 1) > 0)
            return 1;
    return 0;
}
