/* test_eval.c - passkey and needle prompts on the real Llama 2 tokenizer, and the scores.
 *
 * What is checked against facts nobody here wrote: Llama 2's ids (BOS 1, "<0x0A>" 13, the
 * period ids 29889 and 869 of Fu's code, REFERENCE.md 1.4), the peers' strings and formats,
 * and the scores' formulas worked by hand (a perfect needle answer scores 11/12). */
#include "check.h"
#include "eval.h"
#include "tokenizer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { BOS = 1, NL = 13 };

static const char *decode(eval_ctx *c, const uint32_t *ids, size_t n) {
    const char *t = NULL;
    size_t nt;
    if (eval_ctx_decode(c, ids, n, &t, &nt) != EVAL_OK)
        return "";
    return t;
}

static int count_id(const eval_prompt *p, uint32_t id, size_t *pos, size_t max_pos) {
    int k = 0;
    for (size_t i = 0; i < p->n_ids; i++)
        if (p->ids[i] == id) {
            if ((size_t)k < max_pos)
                pos[k] = i;
            k++;
        }
    return k;
}

/* the text a filler part must be a prefix of: the filler repeated with single spaces */
static int filler_prefix(const char *s, size_t n) {
    static const char F[] = EVAL_PASSKEY_FILLER " ";
    for (size_t i = 0; i < n; i++)
        if (s[i] != F[i % (sizeof F - 1)])
            return 0;
    return 1;
}

static void test_passkey(eval_ctx *c) {
    const size_t lengths[] = {80, 100, 257, 1000, 4096};
    double depth_min = 100, depth_max = 0;
    for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++)
        for (int trial = 0; trial < 12; trial++) {
            eval_prompt p;
            const size_t L = lengths[li];
            CHECK_EQ_INT(eval_passkey_make(c, L, 7, (uint64_t)trial, &p), EVAL_OK);
            CHECK_EQ_U64(p.n_ids, L);
            CHECK_EQ_INT(p.ids[0], BOS);
            size_t one;
            CHECK_EQ_INT(count_id(&p, BOS, &one, 1), 1);
            /* the five parts are joined by "\n": exactly four newline tokens */
            size_t nl[4];
            CHECK_EQ_INT(count_id(&p, NL, nl, 4), 4);
            const size_t a = nl[1] - nl[0] - 1, b = nl[3] - nl[2] - 1;
            CHECK_EQ_U64(p.needle_pos, nl[1] + 1);
            CHECK_EQ_U64(p.needle_pos + p.needle_tokens, nl[2]);
            CHECK_EQ_U64(a + b, p.n_filler);
            CHECK(fabs(p.depth - (a + b ? 100.0 * (double)a / (double)(a + b) : 0.0)) < 1e-12);
            depth_min = fmin(depth_min, p.depth);
            depth_max = fmax(depth_max, p.depth);
            const long key = atol(p.expected);
            CHECK(key >= 1 && key <= EVAL_PASSKEY_MAX_KEY);
            char line[160];
            snprintf(line, sizeof line, "The pass key is %ld. Remember it. %ld is the pass key.",
                     key, key);
            CHECK(!strcmp(decode(c, p.ids + p.needle_pos, p.needle_tokens), line));
            /* the whole prompt decodes to the Landmark text: task, prefix, key, suffix, question */
            const char *text = decode(c, p.ids + 1, p.n_ids - 1);
            const char *t1 = strchr(text, '\n'), *t2 = t1 ? strchr(t1 + 1, '\n') : NULL;
            const char *t3 = t2 ? strchr(t2 + 1, '\n') : NULL, *t4 = t3 ? strchr(t3 + 1, '\n') : 0;
            CHECK(t4 != NULL);
            if (!t4)
                continue;
            CHECK(!strncmp(text, EVAL_PASSKEY_TASK, (size_t)(t1 - text)) &&
                  t1 - text == (long)strlen(EVAL_PASSKEY_TASK));
            CHECK(filler_prefix(t1 + 1, (size_t)(t2 - t1 - 1)));
            CHECK(!strncmp(t2 + 1, line, strlen(line)) && t3 - t2 - 1 == (long)strlen(line));
            CHECK(filler_prefix(t3 + 1, (size_t)(t4 - t3 - 1)));
            CHECK(!strcmp(t4 + 1, EVAL_PASSKEY_QUESTION));
            /* seeds reproduce; another seed or trial gives another prompt */
            eval_prompt q;
            CHECK_EQ_INT(eval_passkey_make(c, L, 7, (uint64_t)trial, &q), EVAL_OK);
            CHECK(q.n_ids == p.n_ids && !memcmp(q.ids, p.ids, p.n_ids * sizeof *p.ids));
            eval_prompt_free(&q);
            CHECK_EQ_INT(eval_passkey_make(c, L, 8, (uint64_t)trial, &q), EVAL_OK);
            CHECK(strcmp(q.expected, p.expected) || q.needle_pos != p.needle_pos);
            eval_prompt_free(&q);
            eval_prompt_free(&p);
        }
    CHECK(depth_min < 20 && depth_max > 80); /* the depth is drawn over the whole filler */
    eval_prompt p;
    CHECK_EQ_INT(eval_passkey_make(c, 30, 7, 0, &p), EVAL_ERR_ARG);
    CHECK(strstr(eval_ctx_errmsg(c), "30") != NULL);
}

static const char *write_file(const char *dir, const char *name, const char *text, size_t n) {
    static char paths[4][512];
    static int k;
    char *path = paths[k++ % 4];
    snprintf(path, 512, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(text, 1, n, f) != n || fclose(f) != 0)
        return NULL;
    return path;
}

static const char A[] = "Alpha one went to the market. It bought three apples, and a pear.\n"
                        "Then it came home; the sun had set. Nobody saw it go.";
static const char B[] = " Beta is second. It reads after alpha, whatever the order given.";

static void test_needle(eval_ctx *c, const char *dir) {
    const char *pb = write_file(dir, "b.txt", B, strlen(B));
    const char *pa = write_file(dir, "a.txt", A, strlen(A));
    CHECK(pa && pb);
    const char *paths[] = {pb, pa}; /* given unsorted: read sorted */
    eval_haystack *h = NULL;
    CHECK_EQ_INT(eval_haystack_load(c, paths, 2, &h), EVAL_OK);
    if (!h)
        return;
    /* one copy of the haystack is A then B, tokenized without BOS */
    char ab[sizeof A + sizeof B + 1]; /* a copy's first token carries the space */
    snprintf(ab, sizeof ab, " %s%s", A, B);
    const size_t n_copy = eval_haystack_tokens(h);
    CHECK(n_copy > 20 && n_copy < 100);
    const char head[] = "<|im_start|> This is a very long story book: <book> ";
    const char tail[] = " </book>.\n Based on the content of the book, Question: What is the best "
                        "thing to do in San Francisco?\nAnswer:";
    const size_t lengths[] = {160, 300, 1000, 2048};
    const double depths[] = {0, 11, 22, 50, 89, 100};
    size_t n_mid = 0;
    for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++)
        for (size_t di = 0; di < sizeof depths / sizeof depths[0]; di++) {
            const size_t L = lengths[li];
            const double d = depths[di];
            eval_prompt p;
            CHECK_EQ_INT(eval_needle_make(c, h, L, d, &p), EVAL_OK);
            CHECK_EQ_U64(p.n_ids, L);
            size_t one;
            CHECK_EQ_INT(count_id(&p, BOS, &one, 1), 1);
            CHECK_EQ_INT(p.ids[0], BOS);
            CHECK(!strcmp(decode(c, p.ids + p.needle_pos, p.needle_tokens), EVAL_NEEDLE));
            /* where the haystack starts and ends in the prompt, found from the text */
            const char *text = decode(c, p.ids + 1, p.n_ids - 1);
            /* at depth 0 the needle's newline follows "<book>" (Fu's text has a space there) */
            CHECK(!strncmp(text, head, strlen(head) - (d == 0)));
            const size_t n_text = strlen(text);
            CHECK(n_text > strlen(tail) && !strcmp(text + n_text - strlen(tail), tail));
            size_t h0 = 1;
            while (h0 < L && strlen(decode(c, p.ids + 1, h0)) < strlen(head) - 1)
                h0++;
            h0++; /* the first haystack token, after "<book>" */
            const size_t n_h = p.n_filler, ins = p.needle_pos - h0;
            /* after the haystack, the template's tail alone */
            const size_t t0 = h0 + n_h + p.needle_tokens;
            CHECK(t0 < L);
            const char *tl = decode(c, p.ids + t0, L - t0);
            CHECK(!strcmp(tl, tail) || !strcmp(tl, tail + 1));
            const size_t target = (size_t)floor((double)n_h * d / 100.0);
            if (d == 0)
                CHECK_EQ_U64(ins, 0);
            else if (d == 100)
                CHECK_EQ_U64(ins, n_h);
            else {
                CHECK(ins <= target);
                /* the token before the needle is a period (29889 or 869), none between it and
                 * the target */
                if (ins > 0) {
                    const uint32_t before = p.ids[p.needle_pos - 1];
                    CHECK(before == 29889 || before == 869);
                    n_mid++;
                }
                for (size_t k = ins; k < target; k++) {
                    const uint32_t t = p.ids[p.needle_pos + p.needle_tokens + (k - ins)];
                    CHECK(t != 29889 && t != 869);
                }
            }
            CHECK(fabs(p.depth - 100.0 * (double)ins / (double)n_h) < 1e-12);
            /* the haystack's text is A B A B ... (a cut after the last period is whole text) */
            if (ins > 0) {
                const char *hay = decode(c, p.ids + h0, ins);
                const size_t n_hay = strlen(hay), n_ab = strlen(ab);
                int same = 1;
                for (size_t i = 0; i < n_hay && same; i++)
                    same = hay[i] == ab[(i + 1) % n_ab];
                CHECK(same);
            }
            eval_prompt_free(&p);
        }
    CHECK(n_mid > 5);
    eval_prompt p;
    CHECK_EQ_INT(eval_needle_make(c, h, 10, 50, &p), EVAL_ERR_ARG);
    CHECK_EQ_INT(eval_needle_make(c, h, 1000, 101, &p), EVAL_ERR_ARG);
    CHECK_EQ_INT(eval_needle_make(c, h, 1000, -1, &p), EVAL_ERR_ARG);
    eval_haystack_free(h);

    /* bad files: named, with the offset */
    const char bad[] = "good text \xff then";
    const char *pbad = write_file(dir, "bad.txt", bad, sizeof bad - 1);
    CHECK_EQ_INT(eval_haystack_load(c, &pbad, 1, &h), EVAL_ERR_FORMAT);
    CHECK(strstr(eval_ctx_errmsg(c), "bad.txt: offset 10") != NULL);
    const char *missing = "/nonexistent/haystack.txt";
    CHECK_EQ_INT(eval_haystack_load(c, &missing, 1, &h), EVAL_ERR_IO);
    CHECK(strstr(eval_ctx_errmsg(c), missing) != NULL);
    const char *empty = write_file(dir, "empty.txt", "", 0);
    CHECK_EQ_INT(eval_haystack_load(c, &empty, 1, &h), EVAL_ERR_FORMAT);
}

static void test_scores(void) {
    /* passkey: the first integer of the answer (Landmark), as Python's int() reads it */
    CHECK_EQ_INT(eval_passkey_score("12345", 5, "12345"), 1);
    const char *s = " 12345. Remember it. 12345 is the pass key.";
    CHECK_EQ_INT(eval_passkey_score(s, strlen(s), "12345"), 1); /* trailing text */
    s = "The pass key is 12345";
    CHECK_EQ_INT(eval_passkey_score(s, strlen(s), "12345"), 1);
    CHECK_EQ_INT(eval_passkey_score("1234", 4, "12345"), 0);
    CHECK_EQ_INT(eval_passkey_score("123456", 6, "12345"), 0);
    CHECK_EQ_INT(eval_passkey_score("012345", 6, "12345"), 1);
    CHECK_EQ_INT(eval_passkey_score("12 345", 6, "12345"), 0);
    CHECK_EQ_INT(eval_passkey_score("7 12345", 7, "12345"), 0);
    CHECK_EQ_INT(eval_passkey_score("", 0, "12345"), 0);
    CHECK_EQ_INT(eval_passkey_score("no digits", 9, "12345"), 0);
    CHECK_EQ_INT(eval_passkey_score("123456", 5, "12345"), 1); /* n bounds the answer */

    /* needle recall: |set(answer.lower().split()) & set(expected)| / 12 */
    const char *perfect = EVAL_NEEDLE_ANSWER;
    CHECK(eval_needle_recall(perfect, strlen(perfect)) == 11.0 / 12.0);
    s = "The best thing to do in San Francisco is eat a sandwich and sit in Dolores Park on a "
        "sunny day. It is great";
    CHECK(eval_needle_recall(s, strlen(s)) == 11.0 / 12.0);
    s = "Eat a SANDWICH";
    CHECK(eval_needle_recall(s, strlen(s)) == 3.0 / 12.0);
    s = "sunny day";
    CHECK(eval_needle_recall(s, strlen(s)) == 1.0 / 12.0); /* "day" is not "day." */
    s = "\tDAY.\n\na a a";
    CHECK(eval_needle_recall(s, strlen(s)) == 2.0 / 12.0);
    CHECK(eval_needle_recall("", 0) == 0.0);
    s = "parking dolores-park";
    CHECK(eval_needle_recall(s, strlen(s)) == 0.0);

    /* substring: the phrase, any case, any whitespace runs, anything around it */
    CHECK_EQ_INT(eval_needle_substring(perfect, strlen(perfect)), 1);
    s = "Answer: Eat a  sandwich\nand sit in Dolores Park on a sunny day! Then more text.";
    CHECK_EQ_INT(eval_needle_substring(s, strlen(s)), 1);
    s = "eat a sandwich and sit in dolores park on a sunny";
    CHECK_EQ_INT(eval_needle_substring(s, strlen(s)), 0);
    s = "eat a sandwich andsit in dolores park on a sunny day";
    CHECK_EQ_INT(eval_needle_substring(s, strlen(s)), 0);
    s = "eat eat a sandwich and sit in dolores park on a sunny day";
    CHECK_EQ_INT(eval_needle_substring(s, strlen(s)), 1);
    CHECK_EQ_INT(eval_needle_substring("", 0), 0);
}

int main(int argc, char **argv) {
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
    eval_ctx *c = NULL;
    const int st = eval_ctx_create(t, &c);
    CHECK_EQ_INT(st, EVAL_OK);
    if (st != EVAL_OK) {
        fprintf(stderr, "%s\n", eval_ctx_errmsg(c));
        return check_exit("test_eval");
    }
    /* Fu's period ids are what eval finds by their pieces */
    CHECK(eval_is_period(c, 29889) && eval_is_period(c, 869));
    int n_periods = 0;
    for (uint32_t id = 0; id < tokenizer_vocab_size(t); id++)
        n_periods += eval_is_period(c, id);
    CHECK_EQ_INT(n_periods, 2);
    test_passkey(c);
    test_needle(c, argc > 1 ? argv[1] : ".");
    eval_ctx_free(c);
    tokenizer_free(t);
    return check_exit("test_eval");
}
