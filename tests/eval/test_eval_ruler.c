/* test_eval_ruler.c - RULER's probes on the real Llama 2 tokenizer, and RULER's string-match
 * scores.
 *
 * What is checked against facts nobody here wrote: the prompts decode to RULER's templates
 * (REFERENCE.md 1.4) line by line, the ids are what Llama 2's tokenizer gives for that text,
 * the keys and values sit at the token positions stated, each length is exact; the top 3 of
 * fwe is recounted from the decoded text; the scores are RULER's formulas worked by hand
 * (string_match_all: sum(r.lower() in pred.lower()) / len(refs); string_match_part: any), the
 * Unicode cases checked against Python's str.lower(). */
#include "check.h"
#include "eval.h"
#include "tokenizer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { BOS = 1 };

static const char NOISE[] = EVAL_PASSKEY_FILLER;

static char *decode(eval_ruler *r, const uint32_t *ids, size_t n) {
    const char *t = NULL;
    size_t nt = 0;
    if (n == 0 || eval_ruler_decode(r, ids, n, &t, &nt) != EVAL_OK)
        return strdup("");
    return strndup(t, nt);
}

static int is_digits(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return n > 0;
}

static int is_uuid4(const char *s) {
    if (strlen(s) != 36)
        return 0;
    for (int i = 0; i < 36; i++) {
        const int dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !strchr("0123456789abcdef", s[i]))
            return 0;
    }
    return s[14] == '4' && strchr("89ab", s[19]) != NULL;
}

/* the whole prompt retokenized: the ids are Llama 2's for the decoded text (BOS first) */
static int same_as_encode(tokenizer *t, eval_ruler *r, const eval_ruler_prompt *p) {
    char *text = decode(r, p->ids + 1, p->n_ids - 1);
    tok_ctx *tc = NULL;
    const tok_encode_opts eo = tok_encode_opts_default();
    const uint32_t *ids;
    size_t n;
    int ok = tok_ctx_create(t, &tc) == TOK_OK &&
             tokenizer_encode(tc, text, strlen(text), &eo, &ids, &n) == TOK_OK &&
             n == p->n_ids - 1 && !memcmp(ids, p->ids + 1, n * sizeof *ids);
    tok_ctx_free(tc);
    free(text);
    return ok;
}

/* the lines of text between the template's head and tail: returns their number and checks
 * that each is the noise sentence or a special line (check_special), the first possibly a
 * suffix of the noise (the top-up) */
typedef struct {
    int n_special;
    int noise_before_first; /* noise lines before the first special line */
    int noise_before[8];    /* before each special line */
    char special[8][160];
} lines_seen;

static void split_lines(const char *ctx, size_t n, const char *special_prefix, lines_seen *s,
                        int *n_noise) {
    memset(s, 0, sizeof *s);
    *n_noise = 0;
    size_t at = 0;
    int first = 1;
    while (at < n) {
        const char *nl = memchr(ctx + at, '\n', n - at);
        const size_t len = nl ? (size_t)(nl - ctx - at) : n - at;
        const char *l = ctx + at;
        if (len == strlen(NOISE) && !memcmp(l, NOISE, len)) {
            ++*n_noise;
            if (s->n_special == 0)
                s->noise_before_first++;
        } else if (len >= strlen(special_prefix) &&
                   !memcmp(l, special_prefix, strlen(special_prefix))) {
            CHECK(s->n_special < 8 && len < 160);
            if (s->n_special < 8 && len < 160) {
                memcpy(s->special[s->n_special], l, len);
                s->noise_before[s->n_special] = *n_noise;
            }
            s->n_special++;
        } else {
            /* only the top-up, before every whole line: a suffix of the noise */
            CHECK(first && len < strlen(NOISE) + 1 && !memcmp(l, NOISE + strlen(NOISE) - len, len));
        }
        first = 0;
        at += len + 1;
    }
}

static void test_niah(tokenizer *t, eval_ruler *r) {
    int n_items = 0, n_retok = 0;
    double dmin = 100, dmax = 0;
    for (int task = EVAL_RULER_NIAH_SINGLE; task <= EVAL_RULER_NIAH_MULTIKEY_UUID; task++) {
        /* from just above the template's length (keys and values vary it by a few tokens)
         * through each remainder of the noise line, to long prompts */
        size_t base = 40;
        eval_ruler_prompt q;
        while (eval_ruler_make(r, task, base, 3, 0, &q) != EVAL_OK && base < 1000)
            base++;
        CHECK(base < 1000);
        eval_ruler_prompt_free(&q);
        const size_t lengths[] = {base + 30, base + 31, base + 32, base + 33, base + 40,
                                  base + 57, 1000,      4096,      16384};
        for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++)
            for (int trial = 0; trial < 4; trial++) {
                const size_t L = lengths[li];
                eval_ruler_prompt p;
                const int st = eval_ruler_make(r, task, L, 3, (uint64_t)trial, &p);
                CHECK_EQ_INT(st, EVAL_OK);
                if (st != EVAL_OK) {
                    fprintf(stderr, "%s %zu: %s\n", eval_ruler_task_name(task), L,
                            eval_ruler_errmsg(r));
                    continue;
                }
                n_items++;
                const int uuid_v =
                    task == EVAL_RULER_NIAH_SINGLE_UUID || task == EVAL_RULER_NIAH_MULTIKEY_UUID;
                const int multi =
                    task == EVAL_RULER_NIAH_MULTIKEY || task == EVAL_RULER_NIAH_MULTIKEY_UUID;
                const char *type = uuid_v ? "uuids" : "numbers";
                CHECK_EQ_U64(p.n_ids, L);
                CHECK_EQ_INT(p.ids[0], BOS);
                for (size_t i = 1; i < p.n_ids; i++)
                    CHECK(p.ids[i] != BOS);
                CHECK_EQ_INT(p.n_new, 128);
                CHECK_EQ_INT(p.n_refs, 1);
                if (uuid_v)
                    CHECK(is_uuid4(p.refs[0]));
                else
                    CHECK(strlen(p.refs[0]) == 7 && is_digits(p.refs[0], 7) && p.refs[0][0] != '0');
                if (task == EVAL_RULER_NIAH_MULTIKEY_UUID)
                    CHECK(is_uuid4(p.query));
                else
                    CHECK(strchr(p.query, '-') && !strchr(p.query, ' '));
                /* the queried needle at needle_pos: its tokens decode to its line */
                char want[256];
                snprintf(want, sizeof want, "One of the special magic %s for %s is: %s.", type,
                         p.query, p.refs[0]);
                char *nd = decode(r, p.ids + p.needle_pos, p.needle_tokens);
                CHECK(!strcmp(nd, want));
                free(nd);
                /* and the text before it ends with a newline */
                char *before = decode(r, p.ids + 1, (size_t)p.needle_pos - 1);
                CHECK(strlen(before) > 0 && before[strlen(before) - 1] == '\n');
                free(before);
                /* the whole text is RULER's template */
                char *text = decode(r, p.ids + 1, p.n_ids - 1);
                char head[256], tail[320];
                snprintf(head, sizeof head,
                         "Some special magic %s are hidden within the following text. Make sure "
                         "to memorize it. I will quiz you about the %s afterwards.\n",
                         type, type);
                snprintf(tail, sizeof tail,
                         "\nWhat are all the special magic %s for %s mentioned in the provided "
                         "text? The special magic %s for %s mentioned in the provided text are",
                         type, p.query, type, p.query);
                const size_t n_text = strlen(text), n_head = strlen(head), n_tail = strlen(tail);
                CHECK(n_text > n_head + n_tail && !strncmp(text, head, n_head) &&
                      !strcmp(text + n_text - n_tail, tail));
                if (n_text > n_head + n_tail) {
                    lines_seen s;
                    int n_noise;
                    char pre[64];
                    snprintf(pre, sizeof pre, "One of the special magic %s for ", type);
                    split_lines(text + n_head, n_text - n_head - n_tail, pre, &s, &n_noise);
                    CHECK_EQ_INT(s.n_special, multi ? 4 : 1);
                    CHECK_EQ_U64((size_t)n_noise, p.n_units);
                    /* one line holds the query; the keys are distinct */
                    int with_query = 0;
                    for (int j = 0; j < s.n_special && j < 8; j++) {
                        if (!strcmp(s.special[j], want)) /* the depth of the queried line */
                            CHECK(fabs(p.depth - (n_noise ? 100.0 * s.noise_before[j] / n_noise
                                                          : 0.0)) < 1e-12);
                        with_query += !strcmp(s.special[j], want);
                        const char *k1 = s.special[j] + strlen(pre);
                        for (int i = 0; i < j; i++) {
                            const char *k0 = s.special[i] + strlen(pre);
                            CHECK(strncmp(k0, k1, strcspn(k1, " ")) != 0);
                        }
                    }
                    CHECK_EQ_INT(with_query, 1);
                }
                dmin = fmin(dmin, p.depth);
                dmax = fmax(dmax, p.depth);
                free(text);
                n_retok += same_as_encode(t, r, &p);
                eval_ruler_prompt_free(&p);
            }
    }
    CHECK(dmin < 10 && dmax > 90); /* the depths spread over the haystack */
    /* the ids are the tokenizer's own for the text (the pieces join without a seam) */
    CHECK_EQ_INT(n_retok, n_items);
    fprintf(stderr, "niah: %d prompts exact, %d retokenize to the same ids, depths %.1f..%.1f\n",
            n_items, n_retok, dmin, dmax);
    /* every length is exact or too short for the template (whose length varies a little
     * with the key and value drawn for that length) */
    int n_exact = 0;
    for (size_t L = 40; L < 300; L++) {
        eval_ruler_prompt p;
        const int st = eval_ruler_make(r, EVAL_RULER_NIAH_SINGLE, L, 9, 0, &p);
        if (st == EVAL_OK)
            n_exact += p.n_ids == L;
        else
            CHECK(st == EVAL_ERR_ARG && L < 100);
        eval_ruler_prompt_free(&p);
    }
    CHECK(n_exact >= 200);
}

static void test_vt(tokenizer *t, eval_ruler *r) {
    const size_t lengths[] = {200, 201, 256, 1000, 4096};
    for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++)
        for (int trial = 0; trial < 4; trial++) {
            const size_t L = lengths[li];
            eval_ruler_prompt p;
            const int st = eval_ruler_make(r, EVAL_RULER_VT, L, 5, (uint64_t)trial, &p);
            CHECK_EQ_INT(st, EVAL_OK);
            if (st != EVAL_OK) {
                fprintf(stderr, "vt %zu: %s\n", L, eval_ruler_errmsg(r));
                continue;
            }
            CHECK_EQ_U64(p.n_ids, L);
            CHECK_EQ_INT(p.n_refs, 5);
            CHECK_EQ_INT(p.n_new, 30);
            CHECK(strlen(p.query) == 5 && is_digits(p.query, 5));
            char want[64];
            snprintf(want, sizeof want, "VAR %s = %s", p.refs[0], p.query);
            char *nd = decode(r, p.ids + p.needle_pos, p.needle_tokens);
            CHECK(!strcmp(nd, want));
            free(nd);
            char *text = decode(r, p.ids + 1, p.n_ids - 1);
            const char head[] = "Memorize and track the chain(s) of variable assignment hidden "
                                "in the following text.\n\n";
            char tail[320];
            snprintf(tail, sizeof tail,
                     "\nQuestion: Find all variables that are assigned the value %s in the text "
                     "above. Answer: According to the chain(s) of variable assignment in the text "
                     "above, 5 variables are assigned the value %s, they are: ",
                     p.query, p.query);
            const size_t n_text = strlen(text), n_head = strlen(head), n_tail = strlen(tail);
            CHECK(n_text > n_head + n_tail && !strncmp(text, head, n_head) &&
                  !strcmp(text + n_text - n_tail, tail));
            if (n_text > n_head + n_tail) {
                lines_seen s;
                int n_noise;
                split_lines(text + n_head, n_text - n_head - n_tail, "VAR ", &s, &n_noise);
                CHECK_EQ_INT(s.n_special, 5);
                CHECK_EQ_U64((size_t)n_noise, p.n_units);
                /* the chain in order: VAR A = 12345, VAR B = VAR A, ... */
                for (int j = 0; j < 5 && j < s.n_special; j++) {
                    char line[64];
                    CHECK(strlen(p.refs[j]) == 5);
                    for (int i = 0; i < 5; i++)
                        CHECK(p.refs[j][i] >= 'A' && p.refs[j][i] <= 'Z');
                    if (j == 0)
                        snprintf(line, sizeof line, "VAR %s = %s", p.refs[0], p.query);
                    else
                        snprintf(line, sizeof line, "VAR %s = VAR %s", p.refs[j], p.refs[j - 1]);
                    CHECK(!strcmp(s.special[j], line));
                }
                CHECK(fabs(p.depth - (n_noise ? 100.0 * s.noise_before_first / n_noise : 0)) <
                      1e-12);
            }
            free(text);
            CHECK(same_as_encode(t, r, &p));
            eval_ruler_prompt_free(&p);
        }
}

static int str_cmp(const void *x, const void *y) {
    return strcmp(*(char *const *)x, *(char *const *)y);
}

static void test_fwe(tokenizer *t, eval_ruler *r) {
    const size_t lengths[] = {800, 801, 802, 803, 1000, 2048, 4096, 8192};
    for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++)
        for (int trial = 0; trial < 3; trial++) {
            const size_t L = lengths[li];
            eval_ruler_prompt p;
            const int st = eval_ruler_make(r, EVAL_RULER_FWE, L, 5, (uint64_t)trial, &p);
            CHECK_EQ_INT(st, EVAL_OK);
            if (st != EVAL_OK) {
                fprintf(stderr, "fwe %zu: %s\n", L, eval_ruler_errmsg(r));
                continue;
            }
            CHECK_EQ_U64(p.n_ids, L);
            CHECK_EQ_INT(p.n_refs, 3);
            CHECK_EQ_INT(p.n_new, 50);
            CHECK(p.needle_pos == -1);
            char *text = decode(r, p.ids + 1, p.n_ids - 1);
            const char head[] = "Read the following coded text and track the frequency of each "
                                "coded word. Find the three most frequently appeared coded words.";
            const char tail[] =
                "\nQuestion: Do not provide any explanation. Please ignore the dots '....'. What "
                "are the three most frequently appeared words in the above coded text? Answer: "
                "According to the coded text above, the three most frequently appeared words are:";
            const size_t n_text = strlen(text), n_head = strlen(head), n_tail = strlen(tail);
            CHECK(n_text > n_head + n_tail && !strncmp(text, head, n_head) &&
                  !strcmp(text + n_text - n_tail, tail));
            if (n_text <= n_head + n_tail) {
                free(text);
                continue;
            }
            /* recount: words of 6 letters (and dots, cut dots of the top-up), sorted */
            text[n_text - n_tail] = '\0';
            char **w = malloc(n_text * sizeof *w);
            size_t n_w = 0, n_dots = 0;
            for (char *tok = strtok(text + n_head, " "); tok; tok = strtok(NULL, " ")) {
                if (strspn(tok, ".") == strlen(tok)) {
                    n_dots++;
                    continue;
                }
                CHECK(strlen(tok) == 6 && strspn(tok, "abcdefghijklmnopqrstuvwxyz") == 6);
                w[n_w++] = tok;
            }
            CHECK_EQ_U64(n_w + n_dots >= p.n_units, 1);
            qsort(w, n_w, sizeof *w, str_cmp);
            /* the counts of the distinct words, the top 4 */
            size_t top[4] = {0};
            const char *top_w[4] = {0};
            for (size_t i = 0; i < n_w;) {
                size_t j = i;
                while (j < n_w && !strcmp(w[j], w[i]))
                    j++;
                size_t cnt = j - i;
                const char *word = w[i];
                for (int k = 0; k < 4; k++)
                    if (cnt > top[k]) {
                        const size_t tc = top[k];
                        const char *tw = top_w[k];
                        top[k] = cnt;
                        top_w[k] = word;
                        cnt = tc;
                        word = tw;
                    }
                i = j;
            }
            CHECK(top[2] > top[3]); /* a unique top 3 */
            CHECK(n_dots > top[0]); /* the noise word is the most frequent */
            for (int k = 0; k < 3; k++) {
                int found = 0;
                for (int j = 0; j < 3; j++)
                    found += top_w[k] && !strcmp(top_w[k], p.refs[j]);
                CHECK_EQ_INT(found, 1);
            }
            free(w);
            free(text);
            CHECK(same_as_encode(t, r, &p));
            eval_ruler_prompt_free(&p);
        }
    /* short lengths: exact, or refused when the top 3 would not be unique */
    int n_short = 0;
    for (size_t L = 60; L < 400; L++) {
        eval_ruler_prompt p;
        const int st = eval_ruler_make(r, EVAL_RULER_FWE, L, 1, 0, &p);
        if (st == EVAL_OK) {
            CHECK_EQ_U64(p.n_ids, L);
        } else {
            CHECK(st == EVAL_ERR_ARG && strstr(eval_ruler_errmsg(r), "too short") && L < 250);
            n_short++;
        }
        eval_ruler_prompt_free(&p);
    }
    CHECK(n_short > 0);
}

static void test_seeds(eval_ruler *r) {
    /* an item depends only on (seed, task, length, trial), not on what ran before */
    for (int task = 0; task < EVAL_RULER_N_TASKS; task++) {
        eval_ruler_prompt a, b, c, d;
        CHECK_EQ_INT(eval_ruler_make(r, task, 1500, 42, 7, &a), EVAL_OK);
        CHECK_EQ_INT(eval_ruler_make(r, (task + 1) % EVAL_RULER_N_TASKS, 1500, 42, 7, &c), EVAL_OK);
        eval_ruler_prompt_free(&c);
        CHECK_EQ_INT(eval_ruler_make(r, task, 1500, 42, 7, &b), EVAL_OK);
        CHECK(a.n_ids == b.n_ids && !memcmp(a.ids, b.ids, a.n_ids * sizeof *a.ids));
        CHECK(a.needle_pos == b.needle_pos && !strcmp(a.refs[0], b.refs[0]));
        CHECK_EQ_INT(eval_ruler_make(r, task, 1500, 42, 8, &c), EVAL_OK); /* another trial */
        CHECK_EQ_INT(eval_ruler_make(r, task, 1500, 43, 7, &d), EVAL_OK); /* another seed */
        CHECK(strcmp(a.refs[0], c.refs[0]) && strcmp(a.refs[0], d.refs[0]));
        eval_ruler_prompt_free(&a);
        eval_ruler_prompt_free(&b);
        eval_ruler_prompt_free(&c);
        eval_ruler_prompt_free(&d);
    }
    eval_ruler_prompt p;
    CHECK_EQ_INT(eval_ruler_make(r, EVAL_RULER_N_TASKS, 1000, 0, 0, &p), EVAL_ERR_ARG);
    CHECK_EQ_INT(eval_ruler_make(r, EVAL_RULER_NIAH_MULTIKEY, 50, 0, 0, &p), EVAL_ERR_ARG);
    CHECK(strstr(eval_ruler_errmsg(r), "shorter") != NULL);
    CHECK(p.ids == NULL);
}

static void test_names(void) {
    for (int task = 0; task < EVAL_RULER_N_TASKS; task++)
        CHECK_EQ_INT(eval_ruler_task_parse(eval_ruler_task_name(task)), task);
    CHECK_EQ_INT(eval_ruler_task_parse("niah"), -1);
    CHECK(eval_ruler_task_name(-1) == NULL && eval_ruler_task_name(EVAL_RULER_N_TASKS) == NULL);
    CHECK(!strcmp(eval_ruler_task_name(EVAL_RULER_VT), "vt"));
}

#define ALL(pred, ...)                                                                             \
    eval_ruler_match_all(pred, strlen(pred), (const char *const[]){__VA_ARGS__},                   \
                         (int)(sizeof((const char *const[]){__VA_ARGS__}) / sizeof(char *)))
#define PART(pred, ...)                                                                            \
    eval_ruler_match_part(pred, strlen(pred), (const char *const[]){__VA_ARGS__},                  \
                          (int)(sizeof((const char *const[]){__VA_ARGS__}) / sizeof(char *)))

static void test_scores(void) {
    /* the value with trailing text (RULER scores the whole prediction) */
    CHECK(ALL(" 1234567.", "1234567") == 1.0);
    CHECK(ALL(" 1234567 and the special magic numbers for x are 7654321. More text", "1234567") ==
          1.0);
    CHECK(ALL("123456", "1234567") == 0.0);   /* a prefix of the value is not it */
    CHECK(ALL("12345678", "1234567") == 1.0); /* a substring match, as RULER's */
    CHECK(ALL("", "1234567") == 0.0);
    CHECK_EQ_INT(PART("", "1234567"), 0);
    /* partial: 3 of vt's 5 names: all 3/5, part 1 */
    const char *vt = " ABCDE, FGHIJ, KLMNO and more";
    CHECK(fabs(ALL(vt, "ABCDE", "FGHIJ", "KLMNO", "PQRST", "UVWXY") - 0.6) < 1e-15);
    CHECK_EQ_INT(PART(vt, "ABCDE", "FGHIJ", "KLMNO", "PQRST", "UVWXY"), 1);
    CHECK(ALL(vt, "PQRST", "UVWXY") == 0.0);
    CHECK_EQ_INT(PART(vt, "PQRST", "UVWXY"), 0);
    /* case, either side */
    CHECK(ALL(" abcde fghij", "ABCDE", "FGHIJ") == 1.0);
    CHECK(ALL(" 1B9D6BCD-BBFD-4B2D-9B5D-AB8DFBBD4BED", "1b9d6bcd-bbfd-4b2d-9b5d-ab8dfbbd4bed") ==
          1.0);
    CHECK(ALL("wordone, WORDTWO", "wordone", "wordtwo", "wordthree") == 2.0 / 3.0);
    /* a repeated ref counts each time (RULER's list, not a set) */
    CHECK(ALL("aaa", "aaa", "aaa", "bbb") == 2.0 / 3.0);
    /* Unicode: Python's 'k' in '\u212a'.lower() is True (KELVIN SIGN), 'ss' in 'ß' False */
    CHECK(ALL("\xe2\x84\xaa", "k") == 1.0);
    CHECK(ALL("\xc3\x9f", "ss") == 0.0);
    CHECK(ALL("\xc3\x89T\xc3\x89", "\xc3\xa9t\xc3\xa9") == 1.0); /* ÉTÉ in été */
    /* bytes that are not UTF-8 do not stop the search */
    CHECK(ALL("\xff\xfe 7654321", "7654321") == 1.0);
    /* no refs: 0 (RULER divides by len(refs); we do not divide by zero) */
    CHECK(eval_ruler_match_all("x", 1, NULL, 0) == 0.0);
    CHECK_EQ_INT(eval_ruler_match_part("x", 1, NULL, 0), 0);
    /* n bounds the prediction */
    const char *const ref[] = {"1234567"};
    CHECK(eval_ruler_match_all("1234567", 6, ref, 1) == 0.0);
}

int main(void) {
    test_names();
    test_scores();
    const char *assets =
        getenv("LONGCTX_ASSETS") ? getenv("LONGCTX_ASSETS") : LONGCTX_ASSETS_DEFAULT;
    char path[1024];
    snprintf(path, sizeof path, "%s/tokenizers/llama2/tokenizer.model", assets);
    FILE *f = fopen(path, "rb");
    if (!f)
        SKIP("%s not found (the prompt tests need the Llama 2 tokenizer)", path);
    fclose(f);
    tokenizer *t = NULL;
    CHECK_EQ_INT(tokenizer_load(path, &t), TOK_OK);
    eval_ruler *r = NULL;
    const int st = eval_ruler_create(t, &r);
    CHECK_EQ_INT(st, EVAL_OK);
    if (st != EVAL_OK) {
        fprintf(stderr, "%s\n", eval_ruler_errmsg(r));
        eval_ruler_free(r);
        tokenizer_free(t);
        return check_exit("test_eval_ruler");
    }
    test_niah(t, r);
    test_vt(t, r);
    test_fwe(t, r);
    test_seeds(r);
    eval_ruler_free(r);
    tokenizer_free(t);
    return check_exit("test_eval_ruler");
}
