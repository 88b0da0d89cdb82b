/* tok_load_spm.c - SentencePiece .model files (a protobuf ModelProto), BPE type.
 *
 * Fields read (sentencepiece_model.proto): ModelProto.pieces = 1 {piece = 1, score = 2,
 * type = 3}, trainer_spec = 2 {model_type = 3, treat_whitespace_as_suffix = 24,
 * byte_fallback = 35, unk_id = 40, bos_id = 41, eos_id = 42}, normalizer_spec = 3 {name = 1,
 * precompiled_charsmap = 2, add_dummy_prefix = 3, remove_extra_whitespaces = 4,
 * escape_whitespaces = 5}. Everything else is skipped by wire type. */
#include "tok_internal.h"

#include <stdlib.h>

/* ---- protobuf wire format ------------------------------------------------------------------ */

typedef struct {
    const uint8_t *p, *end, *base;
} pb;

static int pb_varint(pb *b, uint64_t *v) {
    uint64_t x = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (b->p >= b->end)
            return -1;
        uint8_t c = *b->p++;
        x |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) {
            *v = x;
            return 0;
        }
    }
    return -1;
}

/* Reads the next field: number, wire type, and for LEN its bytes, for I32 the raw value. */
static int pb_field(pb *b, uint32_t *field, uint32_t *wire, uint64_t *val, pb *sub) {
    uint64_t key;
    if (pb_varint(b, &key) != 0 || (key >> 3) == 0 || (key >> 3) > UINT32_MAX)
        return -1;
    *field = (uint32_t)(key >> 3);
    *wire = (uint32_t)(key & 7);
    switch (*wire) {
    case 0:
        return pb_varint(b, val);
    case 1:
        if (b->end - b->p < 8)
            return -1;
        memcpy(val, b->p, 8);
        b->p += 8;
        return 0;
    case 2:
        if (pb_varint(b, val) != 0 || *val > (uint64_t)(b->end - b->p))
            return -1;
        sub->p = b->p;
        sub->end = b->p + *val;
        sub->base = b->base;
        b->p += *val;
        return 0;
    case 5: {
        if (b->end - b->p < 4)
            return -1;
        uint32_t v;
        memcpy(&v, b->p, 4);
        *val = v;
        b->p += 4;
        return 0;
    }
    default:
        return -1;
    }
}

typedef struct {
    const char *piece;
    uint32_t n;
    float score;
    uint32_t type;
} spm_piece;

typedef struct {
    int model_type, byte_fallback, ws_suffix;
    int64_t unk_id, bos_id, eos_id;
    const char *norm_name;
    uint32_t norm_name_n;
    const uint8_t *charsmap;
    uint64_t charsmap_n;
    int add_dummy_prefix, remove_extra_ws, escape_ws;
} spm_spec;

#define BAD(what)                                                                                  \
    TOK_FAIL(t, TOK_ERR_FORMAT, "%s: offset %lld: malformed protobuf (%s)", path,                  \
             (long long)(b.p - b.base), what)

static int parse_piece(tokenizer *t, const char *path, pb b, spm_piece *out) {
    out->piece = "";
    out->n = 0;
    out->score = 0;
    out->type = TOK_TYPE_NORMAL;
    while (b.p < b.end) {
        uint32_t f, w;
        uint64_t v;
        pb sub;
        if (pb_field(&b, &f, &w, &v, &sub) != 0)
            BAD("piece");
        if (f == 1 && w == 2) {
            out->piece = (const char *)sub.p;
            out->n = (uint32_t)v;
        } else if (f == 2 && w == 5) {
            uint32_t bits = (uint32_t)v;
            memcpy(&out->score, &bits, 4);
        } else if (f == 3 && w == 0) {
            out->type = (uint32_t)v;
        }
    }
    if (out->type < TOK_TYPE_NORMAL || out->type > TOK_TYPE_BYTE)
        TOK_FAIL(t, TOK_ERR_FORMAT, "%s: piece '%.*s' has type %u", path, (int)out->n, out->piece,
                 out->type);
    return TOK_OK;
}

static int parse_trainer(tokenizer *t, const char *path, pb b, spm_spec *s) {
    while (b.p < b.end) {
        uint32_t f, w;
        uint64_t v;
        pb sub;
        if (pb_field(&b, &f, &w, &v, &sub) != 0)
            BAD("trainer_spec");
        if (w != 0)
            continue;
        if (f == 3)
            s->model_type = (int)v;
        else if (f == 24)
            s->ws_suffix = v != 0;
        else if (f == 35)
            s->byte_fallback = v != 0;
        else if (f == 40)
            s->unk_id = (int32_t)v;
        else if (f == 41)
            s->bos_id = (int32_t)v;
        else if (f == 42)
            s->eos_id = (int32_t)v;
    }
    return TOK_OK;
}

static int parse_normalizer(tokenizer *t, const char *path, pb b, spm_spec *s) {
    while (b.p < b.end) {
        uint32_t f, w;
        uint64_t v;
        pb sub;
        if (pb_field(&b, &f, &w, &v, &sub) != 0)
            BAD("normalizer_spec");
        if (f == 1 && w == 2) {
            s->norm_name = (const char *)sub.p;
            s->norm_name_n = (uint32_t)v;
        } else if (f == 2 && w == 2) {
            s->charsmap = sub.p;
            s->charsmap_n = v;
        } else if (f == 3 && w == 0) {
            s->add_dummy_prefix = v != 0;
        } else if (f == 4 && w == 0) {
            s->remove_extra_ws = v != 0;
        } else if (f == 5 && w == 0) {
            s->escape_ws = v != 0;
        } else if (f == 6 && w == 2 && v > 0) {
            TOK_FAIL(t, TOK_ERR_UNSUPP,
                     "%s: normalization_rule_tsv is not supported (use a "
                     "precompiled charsmap)",
                     path);
        }
    }
    return TOK_OK;
}

/* ---- the precompiled normaliser: <u32 trie bytes><darts-clone double array><strings> ------- */

static int load_charsmap(tokenizer *t, const char *path, const uint8_t *p, uint64_t n) {
    uint32_t trie_bytes;
    if (n <= 4)
        TOK_FAIL(t, TOK_ERR_FORMAT, "%s: precompiled_charsmap of %llu bytes", path,
                 (unsigned long long)n);
    memcpy(&trie_bytes, p, 4);
    if (trie_bytes >= n - 4 || trie_bytes % 4 != 0 || trie_bytes == 0)
        TOK_FAIL(t, TOK_ERR_FORMAT, "%s: precompiled_charsmap trie of %u bytes in a blob of %llu",
                 path, trie_bytes, (unsigned long long)n);
    t->charsmap = malloc(n + 1); /* aligned copy; +1 NUL ends the last string */
    if (!t->charsmap)
        TOK_FAIL(t, TOK_ERR_NOMEM, "out of memory");
    memcpy(t->charsmap, p, n);
    t->charsmap[n] = 0;
    t->charsmap_bytes = n;
    t->trie = (const uint32_t *)(const void *)(t->charsmap + 4);
    t->trie_units = trie_bytes / 4;
    t->norm_blob = (const char *)t->charsmap + 4 + trie_bytes;
    t->norm_bytes = (uint32_t)(n - 4 - trie_bytes);
    return TOK_OK;
}

/* ---- load ---------------------------------------------------------------------------------- */

static int cmp_score_desc(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x > y ? -1 : x < y ? 1 : 0;
}

/* Pass 1: counts the pieces and their bytes, reads the trainer and normalizer specs. */
static int spm_specs(tokenizer *t, const char *path, pb b, spm_spec *s, uint64_t *n_pieces,
                     uint64_t *blob) {
    int seen_trainer = 0;
    *n_pieces = 0;
    *blob = 0;
    while (b.p < b.end) {
        uint32_t f, w;
        uint64_t v;
        pb sub;
        if (pb_field(&b, &f, &w, &v, &sub) != 0)
            BAD("not a SentencePiece model or tokenizer.json");
        if (f == 1 && w == 2) {
            (*n_pieces)++;
            *blob += v;
        } else if (f == 2 && w == 2) {
            int st = parse_trainer(t, path, sub, s);
            if (st != TOK_OK)
                return st;
            seen_trainer = 1;
        } else if (f == 3 && w == 2) {
            int st = parse_normalizer(t, path, sub, s);
            if (st != TOK_OK)
                return st;
        }
    }
    if (!seen_trainer || *n_pieces == 0 || *n_pieces >= (1u << 24))
        TOK_FAIL(t, TOK_ERR_FORMAT,
                 "%s: no trainer_spec or no pieces (%llu): not a "
                 "SentencePiece model",
                 path, (unsigned long long)*n_pieces);
    if (s->model_type != 2)
        TOK_FAIL(t, TOK_ERR_UNSUPP, "%s: SentencePiece model type %d; longctx supports BPE (2)",
                 path, s->model_type);
    if (s->ws_suffix)
        TOK_FAIL(t, TOK_ERR_UNSUPP, "%s: treat_whitespace_as_suffix is not supported", path);
    return TOK_OK;
}

/* Pass 2: the pieces into t's vocabulary (allocated for n_pieces) and pieces[]. */
static int spm_pieces(tokenizer *t, const char *path, pb b, uint64_t n_pieces, spm_piece *pieces) {
    int st = TOK_OK;
    uint64_t k = 0, off = 0;
    while (st == TOK_OK && b.p < b.end) {
        uint32_t f, w;
        uint64_t v;
        pb sub;
        pb_field(&b, &f, &w, &v, &sub); /* checked in pass 1 */
        if (f != 1 || w != 2)
            continue;
        st = parse_piece(t, path, sub, &pieces[k]);
        if (st != TOK_OK)
            break;
        spm_piece *p = &pieces[k];
        t->tok_off[k] = (uint32_t)off;
        memcpy(t->tok_blob + off, p->piece, p->n);
        off += p->n;
        t->tok_type[k] = (uint8_t)p->type;
        if (p->type == TOK_TYPE_BYTE) {
            int byte = tok_byte_piece(p->piece, p->n);
            if (byte < 0) {
                tok_set_err(t, "%s: byte piece %llu is '%.*s'", path, (unsigned long long)k,
                            (int)p->n, p->piece);
                st = TOK_ERR_FORMAT;
            } else {
                t->byte_id[byte] = (uint32_t)k;
            }
        }
        if (p->type == TOK_TYPE_UNUSED || p->type == TOK_TYPE_USER) {
            tok_set_err(t, "%s: piece %llu '%.*s' is %s; not supported yet", path,
                        (unsigned long long)k, (int)p->n, p->piece,
                        p->type == TOK_TYPE_UNUSED ? "UNUSED" : "USER_DEFINED");
            st = TOK_ERR_UNSUPP;
        }
        if (p->type == TOK_TYPE_UNKNOWN)
            t->unk_id = (int64_t)k;
        k++;
    }
    t->tok_off[n_pieces] = (uint32_t)off;
    if (st == TOK_OK && t->byte_fallback)
        for (int c = 0; c < 256; c++)
            if (t->byte_id[c] == TOK_NONE)
                TOK_FAIL(t, TOK_ERR_FORMAT, "%s: byte_fallback without a <0x%02X> piece", path, c);
    return st;
}

/* The merges: every split of a normal piece into two pieces; the rank orders by score (higher
 * first) and equal scores share a rank, so that ties go to the leftmost pair as in
 * sentencepiece's agenda. Characters of pieces must be pieces themselves, so an unknown
 * character never takes part in a merge. scores (n_pieces) is scratch. */
static int spm_merges(tokenizer *t, const char *path, const spm_piece *pieces, uint64_t n_pieces,
                      float *scores) {
    for (uint64_t i = 0; i < n_pieces; i++)
        scores[i] = pieces[i].score;
    qsort(scores, n_pieces, sizeof *scores, cmp_score_desc);
    int st = tok_merges_alloc(t, n_pieces * 4);
    for (uint64_t i = 0; st == TOK_OK && i < n_pieces; i++) {
        const spm_piece *p = &pieces[i];
        if (p->type != TOK_TYPE_NORMAL)
            continue;
        /* dense rank of the score */
        uint64_t lo = 0, hi = n_pieces;
        while (lo < hi) {
            uint64_t mid = (lo + hi) / 2;
            if (scores[mid] > p->score)
                lo = mid + 1;
            else
                hi = mid;
        }
        uint32_t rank = (uint32_t)lo;
        for (uint32_t cut = 0; cut < p->n;) {
            uint32_t cp;
            size_t cl = tok_utf8_next((const unsigned char *)p->piece + cut, p->n - cut, &cp);
            if (cp == TOK_INVALID_CP)
                TOK_FAIL(t, TOK_ERR_FORMAT, "%s: piece %llu is not valid UTF-8", path,
                         (unsigned long long)i);
            if (tok_strmap_get(&t->vocab, p->piece + cut, cl, tok_vocab_key, t) == TOK_NONE)
                TOK_FAIL(t, TOK_ERR_UNSUPP,
                         "%s: piece %llu '%.*s' holds a character that is not a piece; not "
                         "supported",
                         path, (unsigned long long)i, (int)p->n, p->piece);
            cut += (uint32_t)cl;
            if (cut >= p->n)
                break;
            uint32_t a = tok_strmap_get(&t->vocab, p->piece, cut, tok_vocab_key, t);
            uint32_t c = tok_strmap_get(&t->vocab, p->piece + cut, p->n - cut, tok_vocab_key, t);
            if (a != TOK_NONE && c != TOK_NONE)
                tok_merges_put(t, a, c, rank, (uint32_t)i);
        }
    }
    return st;
}

int tok_load_spm(tokenizer *t, const char *path, const uint8_t *data, size_t n) {
    pb b = {data, data + n, data};
    spm_spec s = {0, 0, 0, 0, 1, 2, NULL, 0, NULL, 0, 1, 1, 1};
    s.model_type = 1; /* UNIGRAM is the proto's default */
    uint64_t n_pieces, blob;
    int st = spm_specs(t, path, b, &s, &n_pieces, &blob);
    if (st != TOK_OK)
        return st;
    t->kind = TOK_KIND_SPM;
    t->byte_fallback = s.byte_fallback;
    t->fuse_unk = 1; /* sentencepiece merges a run of unknown pieces into one */
    t->add_dummy_prefix = s.add_dummy_prefix;
    t->escape_spaces = s.escape_ws;
    t->remove_extra_ws = s.remove_extra_ws;
    if (s.charsmap_n > 0 && (st = load_charsmap(t, path, s.charsmap, s.charsmap_n)) != TOK_OK)
        return st;
    spm_piece *pieces = malloc(n_pieces * sizeof *pieces);
    float *scores = malloc(n_pieces * sizeof *scores);
    st = tok_vocab_alloc(t, (uint32_t)n_pieces, blob);
    if (!pieces || !scores || st != TOK_OK) {
        free(pieces);
        free(scores);
        TOK_FAIL(t, TOK_ERR_NOMEM, "out of memory");
    }
    st = spm_pieces(t, path, b, n_pieces, pieces);
    if (st == TOK_OK)
        st = tok_vocab_index(t, 1u << TOK_TYPE_NORMAL);
    t->bos_id = s.bos_id >= 0 && s.bos_id < (int64_t)n_pieces ? s.bos_id : -1;
    t->eos_id = s.eos_id >= 0 && s.eos_id < (int64_t)n_pieces ? s.eos_id : -1;
    if (st == TOK_OK)
        st = spm_merges(t, path, pieces, n_pieces, scores);
    free(pieces);
    free(scores);
    return st;
}
