/* test_tok_json.c - the JSON text-field extractor (tok_json_*): each status with its detail,
 * dot paths, borrowed strings, and the fast path against json-c alone on the same lines. */
#include "check.h"
#include "tokenizer.h"

#include <string.h>

typedef struct {
    const char *line;
    int status;
    const char *text;   /* expected text (OK) or a substring of the detail */
    const char *domain; /* expected domain (OK), NULL if none */
} json_case;

static const json_case cases[] = {
    {"{\"text\":\"hi\",\"meta\":{\"src\":\"web\"}}", TOK_JSON_OK, "hi", "web"},
    {"{\"meta\":{\"src\":\"a\\u00e9\\n\"},\"text\":\"x\\ty\"}", TOK_JSON_OK, "x\ty", "a\xc3\xa9\n"},
    {" {\"text\":\"\",\"meta\":{\"src\":\"\"}}\r", TOK_JSON_OK, "", ""},
    {"{\"text\":\"hi\",}", TOK_JSON_ERR_SYNTAX, "column", NULL},
    {"{\"text\":\"hi\"", TOK_JSON_ERR_SYNTAX, "unexpected end of line", NULL},
    {"[1,2]", TOK_JSON_ERR_NOT_OBJECT, "not a JSON object but a array", NULL},
    {"{\"text\":\"a\tb\",\"meta\":{\"src\":\"w\"}}", TOK_JSON_ERR_NOT_STRICT, "raw control", NULL},
    {"{\"text\":\"a\",\"n\":NaN,\"meta\":{\"src\":\"w\"}}", TOK_JSON_ERR_NOT_STRICT,
     "a literal other than", NULL},
    {"{\"txt\":\"a\",\"meta\":{\"src\":\"w\"}}", TOK_JSON_ERR_NO_TEXT, "(absent)", NULL},
    {"{\"text\":7,\"meta\":{\"src\":\"w\"}}", TOK_JSON_ERR_NO_TEXT, "(int)", NULL},
    {"{\"text\":\"a\",\"meta\":{}}", TOK_JSON_ERR_NO_DOMAIN, "(absent)", NULL},
    {"{\"text\":\"a\",\"meta\":\"w\"}", TOK_JSON_ERR_NO_DOMAIN, "(absent)", NULL},
};

static void run_cases(unsigned flags) {
    tok_json *j = NULL;
    CHECK_EQ_INT(tok_json_create("text", "meta.src", flags, &j), TOK_JSON_OK);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const json_case *c = &cases[i];
        tok_json_fields f;
        int st = tok_json_extract(j, c->line, strlen(c->line), &f);
        CHECK_EQ_INT(st, c->status);
        if (st == TOK_JSON_OK) {
            CHECK(f.n_text == strlen(c->text) && memcmp(f.text, c->text, f.n_text) == 0);
            CHECK(f.text[f.n_text] == '\0');
            CHECK(f.domain && f.n_domain == strlen(c->domain) &&
                  memcmp(f.domain, c->domain, f.n_domain) == 0);
            CHECK_EQ_INT(tok_json_errmsg(j)[0], '\0');
        } else {
            CHECK(f.text == NULL && f.domain == NULL);
            CHECK(strstr(tok_json_errmsg(j), c->text) != NULL);
        }
    }
    /* a raw NUL is never JSON; \u0000 is a string holding a NUL */
    tok_json_fields f;
    CHECK_EQ_INT(tok_json_extract(j, "{\"text\":\"a\0\"}", 13, &f), TOK_JSON_ERR_SYNTAX);
    CHECK(strcmp(tok_json_errmsg(j), "NUL byte at column 10") == 0);
    const char *z = "{\"text\":\"a\\u0000b\",\"meta\":{\"src\":\"w\"}}";
    CHECK_EQ_INT(tok_json_extract(j, z, strlen(z), &f), TOK_JSON_OK);
    CHECK(f.n_text == 3 && memcmp(f.text, "a\0b", 3) == 0);
    tok_json_free(j);
}

int main(void) {
    run_cases(0);
    run_cases(TOK_JSON_JSONC_ONLY);

    /* no domain path: domain stays NULL */
    tok_json *j = NULL;
    tok_json_fields f;
    CHECK_EQ_INT(tok_json_create("a.b", NULL, 0, &j), TOK_JSON_OK);
    const char *l = "{\"a\":{\"b\":\"deep\"},\"b\":\"top\"}";
    CHECK_EQ_INT(tok_json_extract(j, l, strlen(l), &f), TOK_JSON_OK);
    CHECK(f.n_text == 4 && memcmp(f.text, "deep", 4) == 0 && f.domain == NULL);
    tok_json_free(j);

    /* malformed paths */
    const char *bad[] = {"", ".", "a.", ".a", "a..b", "a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        j = (tok_json *)(void *)&f; /* any non-NULL value: create must reset it to NULL */
        CHECK_EQ_INT(tok_json_create(bad[i], NULL, 0, &j), TOK_JSON_ERR_ARG);
        CHECK(j == NULL);
    }
    CHECK_EQ_INT(tok_json_create("text", "a..b", 0, &j), TOK_JSON_ERR_ARG);
    tok_json_free(NULL);
    CHECK(strcmp(tok_json_strerror(TOK_JSON_ERR_NO_TEXT), "no string at the text path") == 0);
    CHECK(tok_json_is_blank(" \t\r\n", 4) && tok_json_is_blank("", 0) &&
          !tok_json_is_blank(" x", 2));
    return check_exit("test_tok_json");
}
