/* tok_json.c - the one JSON text-field extractor of longctx (tokenizer.h, "JSON lines"): the
 * strings at a text path (and a domain path) of one line of strict RFC 8259 JSON. A single-pass
 * fast path decides the lines it is sure of; every other line goes through json-c (strict) and
 * the checks json-c lacks (json_not_strict), so results and messages are json-c's. */
#include "tokenizer.h"

#include <json-c/json.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_DEPTH 64 /* nesting json-c accepts in a line */

struct tok_json {
    char *keys;                              /* text and domain path, split at '.' in place */
    const char *text_key[TOK_JSON_MAX_KEYS]; /* (n_text_keys) */
    int n_text_keys;
    const char *domain_key[TOK_JSON_MAX_KEYS]; /* (n_domain_keys); 0: no domain path */
    int n_domain_keys;
    int json_c_only; /* every line through json-c (tests compare the fast path with it) */
    json_tokener *tok;
    json_object *obj; /* the last line json-c parsed: its strings are borrowed by the caller */
    char *jtext;      /* (jtext_cap + 1) the text string unescaped by the fast path */
    size_t jtext_cap, jtext_n;
    char *jdom; /* (jdom_cap + 1) the domain string unescaped by the fast path */
    size_t jdom_cap, jdom_n;
    char errmsg[TOK_JSON_ERRMSG_BYTES];
};

static int set_err(tok_json *x, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int set_err(tok_json *x, int status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->errmsg, sizeof x->errmsg, fmt, ap);
    va_end(ap);
    return status;
}

static int grow(char **buf, size_t *cap, size_t need) {
    if (*buf && need <= *cap)
        return 0;
    char *p = realloc(*buf, need + 1);
    if (!p)
        return -1;
    *buf = p;
    *cap = need;
    return 0;
}

/* ---- json-c and the checks it lacks ------------------------------------------------------- */

/* The value at a dot path, or NULL. */
static json_object *json_at(json_object *o, const char *const *keys, int n_keys) {
    for (int i = 0; i < n_keys; i++) {
        json_object *next;
        if (!json_object_is_type(o, json_type_object) ||
            !json_object_object_get_ex(o, keys[i], &next))
            return NULL;
        o = next;
    }
    return o;
}

/* What json-c accepts but RFC 8259 does not: raw control characters in strings, NaN and
 * Infinity, numbers with leading zeros. NULL if the line has none of them. */
static const char *json_not_strict(const char *s, size_t n, size_t *col) {
    int in_str = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        *col = i;
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = 0;
            else if (c < 0x20)
                return "a raw control character in a string";
            continue;
        }
        if (c == '"') {
            in_str = 1;
        } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
            size_t j = i;
            while (j < n && ((s[j] >= 'a' && s[j] <= 'z') || (s[j] >= 'A' && s[j] <= 'Z')))
                j++;
            if (!((j - i == 4 && (!memcmp(s + i, "true", 4) || !memcmp(s + i, "null", 4))) ||
                  (j - i == 5 && !memcmp(s + i, "false", 5))))
                return "a literal other than true, false or null";
            i = j - 1;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            size_t j = c == '-' ? i + 1 : i;
            if (j < n && s[j] == '0' && j + 1 < n && s[j + 1] >= '0' && s[j + 1] <= '9')
                return "a number with a leading zero";
            if (c == '-' && (j >= n || s[j] < '0' || s[j] > '9'))
                return "a '-' that starts no number";
            while (j < n && ((s[j] >= '0' && s[j] <= '9') || s[j] == '.' || s[j] == 'e' ||
                             s[j] == 'E' || s[j] == '+' || s[j] == '-'))
                j++;
            i = j - 1;
        }
    }
    return NULL;
}

/* ---- the fast path ---------------------------------------------------------------------- */

/* json-c builds a tree of every line (each string copied twice, a hash table per object) only
 * for the caller to take one or two strings out of it, and json_not_strict() reads the line again.
 * On 1 GB of SlimPajama-like jsonl that cost about 2 s of one core, with the tokenizer at about
 * 19 s. The fast path reads a line once: it checks the RFC 8259 grammar and copies the text
 * (and domain) strings out, unescaped, as it goes.
 *
 * It only decides lines it is sure of: a line of strict RFC 8259 JSON, an object, with a string
 * at the text path (and at the domain path), all of which json-c (strict) accepts and reads as
 * the fast path does. Anything else returns 0 and the line goes through json-c as before, so
 * rejects and their details are unchanged:
 *   - any JSON error, whitespace other than space, tab and CR;
 *   - nesting deeper than JF_MAX_DEPTH (json-c's own limit is JSON_DEPTH);
 *   - numbers with an exponent or longer than JF_MAX_NUMBER bytes (json-c refuses out-of-range
 *     numbers in strict mode; these cannot be out of range);
 *   - \u0000 and surrogate escapes (\uD800-\uDFFF) in any string (json-c turns lone
 *     surrogates into U+FFFD and may cut keys at a NUL);
 *   - a key with an escape, or a key of the path seen twice, in an object on the path (which
 *     of two equal keys json-c returns is its business);
 *   - no string at the text or the domain path.
 * tests/prep/test_prep_read.c reads generated and mutated lines both ways and compares every
 * record. */

#define JF_MAX_DEPTH  32
#define JF_MAX_NUMBER 32 /* bytes */

typedef struct {
    const char *p, *end;        /* the unread rest of the line */
    const char *const *keys[2]; /* [0] text path, [1] domain path */
    int n_keys[2];              /* 0: no such path */
    char *out[2];               /* where each path's string is unescaped to */
    size_t n_out[2];
    int found[2];
} jfast;

static void jf_ws(jfast *j) {
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\r'))
        j->p++;
}

static int jf_hex4(const char *p, uint32_t *cp) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned char c = (unsigned char)p[i];
        uint32_t d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return 0;
        v = v << 4 | d;
    }
    *cp = v;
    return 1;
}

/* The bytes of w (8 bytes of the line, little-endian) that end a plain run in a string: '"',
 * '\\', or below 0x20, as the high bit of each. Bits above the lowest one may be false alarms
 * (borrows); the lowest one is a real such byte. */
static uint64_t jf_special(uint64_t w) {
    const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
    uint64_t q = w ^ (ones * '"'), b = w ^ (ones * '\\');
    return (((q - ones) & ~q) | ((b - ones) & ~b) | ((w - ones * 0x20) & ~w)) & high;
}

/* A string from just after its opening quote; copied unescaped to out (NULL: only checked), its
 * length in *n_out. *has_escape tells whether it held any escape. 0: hand the line to json-c. */
static int jf_string(jfast *j, char *out, size_t *n_out, int *has_escape) {
    const char *p = j->p, *end = j->end;
    char *o = out;
    *has_escape = 0;
    for (;;) {
        while (end - p >= 8) {
            uint64_t w;
            memcpy(&w, p, 8);
            uint64_t m = jf_special(w);
            size_t k = m ? (size_t)__builtin_ctzll(m) / 8 : 8;
            if (o) {
                memcpy(o, p, k);
                o += k;
            }
            p += k;
            if (m)
                break;
        }
        if (p == end)
            return 0;
        unsigned char c = (unsigned char)*p;
        if (c == '"')
            break;
        if (c < 0x20)
            return 0; /* a raw control character: json-c decides (json_not_strict rejects) */
        if (c != '\\') {
            if (o)
                *o++ = (char)c;
            p++;
            continue;
        }
        *has_escape = 1;
        if (end - p < 2)
            return 0;
        char e = p[1], x;
        switch (e) {
        case '"':
        case '\\':
        case '/':
            x = e;
            break;
        case 'b':
            x = '\b';
            break;
        case 'f':
            x = '\f';
            break;
        case 'n':
            x = '\n';
            break;
        case 'r':
            x = '\r';
            break;
        case 't':
            x = '\t';
            break;
        case 'u': {
            uint32_t cp;
            if (end - p < 6 || !jf_hex4(p + 2, &cp) || cp == 0 || (cp >= 0xD800 && cp <= 0xDFFF))
                return 0;
            if (o) {
                if (cp < 0x80) {
                    *o++ = (char)cp;
                } else if (cp < 0x800) {
                    *o++ = (char)(0xC0 | cp >> 6);
                    *o++ = (char)(0x80 | (cp & 0x3F));
                } else {
                    *o++ = (char)(0xE0 | cp >> 12);
                    *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
                    *o++ = (char)(0x80 | (cp & 0x3F));
                }
            }
            p += 6;
            continue;
        }
        default:
            return 0;
        }
        if (o)
            *o++ = x;
        p += 2;
    }
    j->p = p + 1;
    if (o) {
        *o = '\0';
        *n_out = (size_t)(o - out);
    }
    return 1;
}

/* A number: -?(0|[1-9][0-9]*)(.[0-9]+)?, no exponent, at most JF_MAX_NUMBER bytes. */
static int jf_number(jfast *j) {
    const char *p = j->p, *end = j->end;
    if (p < end && *p == '-')
        p++;
    if (p == end || *p < '0' || *p > '9')
        return 0;
    if (*p == '0')
        p++;
    else
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    if (p < end && *p == '.') {
        p++;
        if (p == end || *p < '0' || *p > '9')
            return 0;
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    }
    if ((p < end && (*p == 'e' || *p == 'E')) || p - j->p > JF_MAX_NUMBER)
        return 0;
    j->p = p;
    return 1;
}

static int jf_value(jfast *j, int depth, unsigned active, unsigned target);

/* An object from just after its '{'. Its keys are compared with key [depth] of the paths in
 * active. */
static int jf_object(jfast *j, int depth, unsigned active) {
    unsigned seen = 0;
    jf_ws(j);
    if (j->p < j->end && *j->p == '}') {
        j->p++;
        return 1;
    }
    for (;;) {
        if (j->p == j->end || *j->p != '"')
            return 0;
        j->p++;
        const char *key = j->p;
        int esc;
        if (!jf_string(j, NULL, NULL, &esc))
            return 0;
        size_t n_key = (size_t)(j->p - 1 - key);
        unsigned sub = 0, target = 0;
        if (active && esc)
            return 0;
        for (int k = 0; k < 2; k++) {
            if (!(active >> k & 1u) || strlen(j->keys[k][depth]) != n_key ||
                memcmp(j->keys[k][depth], key, n_key) != 0)
                continue;
            if (seen >> k & 1u)
                return 0; /* a key of the path twice */
            seen |= 1u << k;
            if (depth + 1 == j->n_keys[k])
                target |= 1u << k;
            else
                sub |= 1u << k;
        }
        jf_ws(j);
        if (j->p == j->end || *j->p != ':')
            return 0;
        j->p++;
        jf_ws(j);
        if (!jf_value(j, depth + 1, sub, target))
            return 0;
        jf_ws(j);
        if (j->p == j->end)
            return 0;
        char c = *j->p++;
        if (c == '}')
            return 1;
        if (c != ',')
            return 0;
        jf_ws(j);
    }
}

/* A value at nesting depth; active: paths whose keys matched so far (it must be an object to
 * go on); target: paths that end at this value (it must be a string). */
static int jf_value(jfast *j, int depth, unsigned active, unsigned target) {
    if (j->p == j->end || depth > JF_MAX_DEPTH)
        return 0;
    char c = *j->p;
    if (target && c != '"')
        return 0;
    switch (c) {
    case '{':
        j->p++;
        return jf_object(j, depth, active);
    case '[':
        j->p++;
        jf_ws(j);
        if (j->p < j->end && *j->p == ']') {
            j->p++;
            return 1;
        }
        for (;;) {
            if (!jf_value(j, depth + 1, 0, 0))
                return 0;
            jf_ws(j);
            if (j->p == j->end)
                return 0;
            c = *j->p++;
            if (c == ']')
                return 1;
            if (c != ',')
                return 0;
            jf_ws(j);
        }
    case '"': {
        j->p++;
        int k = target & 1u ? 0 : 1, esc;
        if (!jf_string(j, target ? j->out[k] : NULL, &j->n_out[k], &esc))
            return 0;
        if (target == 3u) { /* the same path for text and domain */
            memcpy(j->out[1], j->out[0], j->n_out[0] + 1);
            j->n_out[1] = j->n_out[0];
        }
        j->found[0] |= (int)(target & 1u);
        j->found[1] |= (int)(target >> 1 & 1u);
        return 1;
    }
    case 't':
        if (j->end - j->p < 4 || memcmp(j->p, "true", 4) != 0)
            return 0;
        j->p += 4;
        return 1;
    case 'f':
        if (j->end - j->p < 5 || memcmp(j->p, "false", 5) != 0)
            return 0;
        j->p += 5;
        return 1;
    case 'n':
        if (j->end - j->p < 4 || memcmp(j->p, "null", 4) != 0)
            return 0;
        j->p += 4;
        return 1;
    default:
        return jf_number(j);
    }
}

/* The fast path: 1 with the text (and domain) strings of line[0, n), unescaped into x->jtext
 * (and x->jdom), 0 when json-c must decide, -1 out of memory. */
static int json_fast(tok_json *x, const char *line, size_t n) {
    if (grow(&x->jtext, &x->jtext_cap, n) != 0 ||
        (x->n_domain_keys > 0 && grow(&x->jdom, &x->jdom_cap, n) != 0))
        return -1;
    jfast j;
    memset(&j, 0, sizeof j);
    j.p = line;
    j.end = line + n;
    j.keys[0] = x->text_key;
    j.n_keys[0] = x->n_text_keys;
    j.keys[1] = x->domain_key;
    j.n_keys[1] = x->n_domain_keys;
    j.out[0] = x->jtext;
    j.out[1] = x->jdom;
    jf_ws(&j);
    if (j.p == j.end || *j.p != '{')
        return 0;
    if (!jf_value(&j, 0, x->n_domain_keys > 0 ? 3u : 1u, 0))
        return 0;
    jf_ws(&j);
    if (j.p != j.end || !j.found[0] || (x->n_domain_keys > 0 && !j.found[1]))
        return 0;
    x->jtext_n = j.n_out[0];
    x->jdom_n = j.n_out[1];
    return 1;
}

/* ---- the handle ------------------------------------------------------------------------- */

/* Splits a dot path (copied into dst) into keys. Returns the number of keys, -1 if malformed. */
static int split_path(char *dst, const char **keys) {
    int n = 0;
    for (char *p = dst;;) {
        char *dot = strchr(p, '.');
        if (dot)
            *dot = '\0';
        if (*p == '\0' || n == TOK_JSON_MAX_KEYS)
            return -1;
        keys[n++] = p;
        if (!dot)
            return n;
        p = dot + 1;
    }
}

const char *tok_json_strerror(int status) {
    switch (status) {
    case TOK_JSON_OK:
        return "ok";
    case TOK_JSON_ERR_NOMEM:
        return "out of memory";
    case TOK_JSON_ERR_ARG:
        return "invalid argument";
    case TOK_JSON_ERR_SYNTAX:
        return "not JSON";
    case TOK_JSON_ERR_NOT_OBJECT:
        return "not a JSON object";
    case TOK_JSON_ERR_NOT_STRICT:
        return "not strict RFC 8259 JSON";
    case TOK_JSON_ERR_NO_TEXT:
        return "no string at the text path";
    case TOK_JSON_ERR_NO_DOMAIN:
        return "no string at the domain path";
    default:
        return "unknown status";
    }
}

int tok_json_create(const char *text_path, const char *domain_path, unsigned flags,
                    tok_json **out) {
    if (!out)
        return TOK_JSON_ERR_ARG;
    *out = NULL;
    const char *tp = text_path ? text_path : "";
    const char *dp = domain_path ? domain_path : "";
    size_t n_tp = strlen(tp), n_dp = strlen(dp);
    tok_json *x = calloc(1, sizeof *x);
    if (!x || !(x->keys = malloc(n_tp + n_dp + 2))) {
        free(x);
        return TOK_JSON_ERR_NOMEM;
    }
    memcpy(x->keys, tp, n_tp + 1);
    memcpy(x->keys + n_tp + 1, dp, n_dp + 1);
    x->n_text_keys = split_path(x->keys, x->text_key);
    x->n_domain_keys = n_dp ? split_path(x->keys + n_tp + 1, x->domain_key) : 0;
    x->json_c_only = (flags & TOK_JSON_JSONC_ONLY) != 0;
    int status = TOK_JSON_OK;
    if (x->n_text_keys < 0 || x->n_domain_keys < 0)
        status = TOK_JSON_ERR_ARG;
    else if (!(x->tok = json_tokener_new_ex(JSON_DEPTH)))
        status = TOK_JSON_ERR_NOMEM;
    if (status != TOK_JSON_OK) {
        tok_json_free(x);
        return status;
    }
    json_tokener_set_flags(x->tok, JSON_TOKENER_STRICT);
    *out = x;
    return TOK_JSON_OK;
}

int tok_json_extract(tok_json *x, const char *line, size_t n, tok_json_fields *out) {
    memset(out, 0, sizeof *out);
    x->errmsg[0] = '\0';
    json_object_put(x->obj);
    x->obj = NULL;
    if (n > INT_MAX) /* json-c takes an int length */
        return set_err(x, TOK_JSON_ERR_ARG, "a line of %zu bytes (at most %d)", n, INT_MAX);
    const char *nul = memchr(line, 0, n);
    if (nul) /* raw NUL is never JSON (a NUL in a string is written \u0000) */
        return set_err(x, TOK_JSON_ERR_SYNTAX, "NUL byte at column %zu", (size_t)(nul - line));
    if (!x->json_c_only) {
        int fast = json_fast(x, line, n);
        if (fast < 0)
            return set_err(x, TOK_JSON_ERR_NOMEM, "out of memory for a line of %zu bytes", n);
        if (fast > 0) {
            out->text = x->jtext;
            out->n_text = x->jtext_n;
            if (x->n_domain_keys > 0) {
                out->domain = x->jdom;
                out->n_domain = x->jdom_n;
            }
            return TOK_JSON_OK;
        }
    }
    json_tokener_reset(x->tok);
    x->obj = json_tokener_parse_ex(x->tok, line, (int)n);
    if (!x->obj) {
        enum json_tokener_error e = json_tokener_get_error(x->tok);
        size_t col = json_tokener_get_parse_end(x->tok);
        /* json_tokener_reset keeps a pending high surrogate ("\ud83d" at the end of a line):
         * the next line's first \u escape would get a U+FFFD in front. A new tokener after a
         * failed line keeps lines independent. */
        json_tokener_free(x->tok);
        if (!(x->tok = json_tokener_new_ex(JSON_DEPTH)))
            return set_err(x, TOK_JSON_ERR_NOMEM, "out of memory for a line of %zu bytes", n);
        json_tokener_set_flags(x->tok, JSON_TOKENER_STRICT);
        return set_err(x, TOK_JSON_ERR_SYNTAX, "%s at column %zu",
                       e == json_tokener_continue ? "unexpected end of line"
                                                  : json_tokener_error_desc(e),
                       col);
    }
    if (!json_object_is_type(x->obj, json_type_object))
        return set_err(x, TOK_JSON_ERR_NOT_OBJECT, "not a JSON object but a %s",
                       json_type_to_name(json_object_get_type(x->obj)));
    size_t col;
    const char *why = json_not_strict(line, n, &col);
    if (why)
        return set_err(x, TOK_JSON_ERR_NOT_STRICT, "%s at column %zu", why, col + 1);
    json_object *text = json_at(x->obj, x->text_key, x->n_text_keys);
    if (!text || !json_object_is_type(text, json_type_string))
        return set_err(x, TOK_JSON_ERR_NO_TEXT, "no string at the text path (%s)",
                       text ? json_type_to_name(json_object_get_type(text)) : "absent");
    if (x->n_domain_keys > 0) {
        json_object *d = json_at(x->obj, x->domain_key, x->n_domain_keys);
        if (!d || !json_object_is_type(d, json_type_string))
            return set_err(x, TOK_JSON_ERR_NO_DOMAIN, "no string at the domain path (%s)",
                           d ? json_type_to_name(json_object_get_type(d)) : "absent");
        out->domain = json_object_get_string(d);
        out->n_domain = (size_t)json_object_get_string_len(d);
    }
    out->text = json_object_get_string(text);
    out->n_text = (size_t)json_object_get_string_len(text);
    return TOK_JSON_OK;
}

const char *tok_json_errmsg(const tok_json *x) {
    return x ? x->errmsg : "out of memory";
}

int tok_json_is_blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
            return 0;
    return 1;
}

void tok_json_free(tok_json *x) {
    if (!x)
        return;
    json_object_put(x->obj);
    if (x->tok)
        json_tokener_free(x->tok);
    free(x->keys);
    free(x->jtext);
    free(x->jdom);
    free(x);
}
