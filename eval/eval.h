/*
 * eval.h - long-context evaluation tasks: prompt generation and scoring (no MPI; the job that
 * hands the items to replicas is eval_main.c). REFERENCE.md section 1.4 has the peers' formats.
 *
 * Prompts are built in tokens, not in characters, so that a prompt has exactly the length asked
 * for: each fixed piece of text (task line, key line, question, template) is tokenized once as
 * it appears in its context (eval_ctx_piece), and the filler or haystack is a token stream cut
 * at token boundaries. The ids are what the model is fed; decoding them gives the peers' text
 * (a cut may split a word of the filler, as Landmark's character cut does).
 *
 *   passkey (Landmark / LongLLaMA): BOS, task, "\n", filler[0, a), "\n", key line, "\n",
 *           filler[0, b), "\n", question; a drawn uniformly in 0..a+b from the seed, the key
 *           1..50000 from the seed. Score: the first integer of the answer equals the key.
 *   needle  (Fu et al.): BOS, "<|im_start|> This is a very long story book: <book>", haystack
 *           tokens with the needle inserted at depth d% (moved back to just after a period),
 *           " </book>.\n Based on the content of the book, Question: {question}\nAnswer:".
 *           Scores: Fu's word recall (11/12 for a perfect answer) and a substring score.
 *           One difference from Fu's text: at depth 0 the needle's "\n" follows "<book>" with
 *           no space (Fu's template puts " " before the context); elsewhere the haystack's
 *           first token carries that space.
 */
#ifndef LONGCTX_EVAL_H
#define LONGCTX_EVAL_H

#include <stddef.h>
#include <stdint.h>

struct tokenizer;

typedef enum {
    EVAL_OK = 0,
    EVAL_ERR_IO = -1,
    EVAL_ERR_NOMEM = -2,
    EVAL_ERR_ARG = -3,    /* a length too short for the template, a depth out of 0..100 */
    EVAL_ERR_TOKEN = -4,  /* the tokenizer cannot build the prompt (a piece not stable) */
    EVAL_ERR_FORMAT = -5, /* a haystack file that is not UTF-8 text, or empty */
} eval_status;

const char *eval_strerror(int status); /* static string, never NULL */

/* the peers' strings (REFERENCE.md 1.4) */
#define EVAL_PASSKEY_TASK                                                                          \
    "There is an important info hidden inside a lot of irrelevant text. Find it and memorize "     \
    "them. I will quiz you about the important information there."
#define EVAL_PASSKEY_FILLER                                                                        \
    "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
#define EVAL_PASSKEY_QUESTION "What is the pass key? The pass key is"
#define EVAL_PASSKEY_MAX_KEY  50000
#define EVAL_PASSKEY_NEW      10 /* Landmark: 10 new tokens, the first integer counts */

#define EVAL_NEEDLE                                                                                \
    "\nThe best thing to do in San Francisco is eat a sandwich and sit in Dolores Park on a "      \
    "sunny "                                                                                       \
    "day.\n"
#define EVAL_NEEDLE_QUESTION "What is the best thing to do in San Francisco?"
#define EVAL_NEEDLE_ANSWER   "eat a sandwich and sit in dolores park on a sunny day."
#define EVAL_NEEDLE_HEAD     "<|im_start|> This is a very long story book: <book>"
#define EVAL_NEEDLE_TAIL     " </book>.\n Based on the content of the book, Question: "
#define EVAL_NEEDLE_NEW      50 /* Fu: greedy, 50 new tokens */

typedef enum { EVAL_TASK_PASSKEY = 0, EVAL_TASK_NEEDLE = 1 } eval_task;

/* ---- the tokenizer side ------------------------------------------------------------------- */

typedef struct eval_ctx eval_ctx;

/*! eval_ctx_create() :
 *  Pieces and period ids for t (which must outlive it; it needs a BOS id). Not thread-safe:
 *  one per thread. @return EVAL_OK, EVAL_ERR_NOMEM, EVAL_ERR_TOKEN (no BOS, or a fixed piece
 *  that does not tokenize the same in context); on failure *out holds the message or is NULL;
 *  free it either way. */
int eval_ctx_create(const struct tokenizer *t, eval_ctx **out);
void eval_ctx_free(eval_ctx *c);                /* NULL ok */
const char *eval_ctx_errmsg(const eval_ctx *c); /* "" if none; valid until the next call */

/*! eval_ctx_piece() :
 *  The ids of text s[0, n) as they come after the text ctx: encode(ctx + s) without BOS, less
 *  encode(ctx), which must be its prefix (else EVAL_ERR_TOKEN). *ids (n_ids) malloc'd: the
 *  caller frees it. ctx "" gives encode(s). */
int eval_ctx_piece(eval_ctx *c, const char *ctx, const char *s, size_t n, uint32_t **ids,
                   size_t *n_ids);

/*! eval_is_period() : 1 if id is a period token: its piece is "." alone, or the tokenizer's
 *  space marker and "." (Llama 2: 29889 and 869, Fu's set). */
int eval_is_period(const eval_ctx *c, uint32_t id);

/*! eval_ctx_decode() : ids to text (tokenizer_decode); *text borrowed from c until the next
 *  call. @return EVAL_OK, EVAL_ERR_ARG (an id out of range), EVAL_ERR_NOMEM. */
int eval_ctx_decode(eval_ctx *c, const uint32_t *ids, size_t n, const char **text, size_t *n_text);

/* ---- prompts ------------------------------------------------------------------------------ */

typedef struct {
    uint32_t *ids; /* (n_ids) the prompt, BOS first; owned: eval_prompt_free */
    size_t n_ids;
    size_t needle_pos;    /* index in ids where the key line or the needle starts */
    size_t needle_tokens; /* its length in tokens */
    size_t n_filler;      /* filler / haystack tokens in the prompt (not the needle) */
    double depth;         /* percent of the filler before the needle: 100 * a / n_filler */
    char expected[96];    /* passkey: the key in decimal; needle: EVAL_NEEDLE_ANSWER */
    int n_new;            /* tokens to generate (EVAL_PASSKEY_NEW, EVAL_NEEDLE_NEW) */
} eval_prompt;

void eval_prompt_free(eval_prompt *p); /* frees ids, zeroes p; NULL ok */

/*! eval_passkey_make() :
 *  The passkey prompt of exactly length tokens for (seed, length, trial): the key and the
 *  filler before it (a, of a + b filler tokens) drawn from a hash of the three, so that an
 *  item does not depend on which items ran before it. @return EVAL_OK, EVAL_ERR_ARG (length
 *  shorter than the fixed pieces), EVAL_ERR_NOMEM, EVAL_ERR_TOKEN. */
int eval_passkey_make(eval_ctx *c, size_t length, uint64_t seed, uint64_t trial, eval_prompt *p);

/*! eval_passkey_score() : 1 if the first integer (a run of ASCII digits) of answer[0, n)
 *  equals expected's value (leading zeros allowed, as Python's int()), else 0. */
int eval_passkey_score(const char *answer, size_t n, const char *expected);

/* A haystack: the text of files sorted by path, concatenated, tokenized once without BOS (as it
 * comes after "<book>": its first token carries the space). */
typedef struct eval_haystack eval_haystack;

/*! eval_haystack_load() :
 *  Reads paths[0, n_paths) in byte order of their names (the caller's order does not matter).
 *  @return EVAL_OK, EVAL_ERR_IO (errmsg of c: the file and why), EVAL_ERR_FORMAT (invalid
 *  UTF-8: file and offset; no text at all), EVAL_ERR_NOMEM. */
int eval_haystack_load(eval_ctx *c, const char *const *paths, size_t n_paths, eval_haystack **out);
void eval_haystack_free(eval_haystack *h);           /* NULL ok */
size_t eval_haystack_tokens(const eval_haystack *h); /* tokens of one copy */
uint64_t eval_haystack_hash(const eval_haystack *h); /* xxh3 of its ids: names the haystack */

/*! eval_needle_make() :
 *  Fu's needle prompt of exactly length tokens at depth_percent (0..100): n_filler haystack
 *  tokens (the stream repeated as often as needed), the needle inserted at
 *  floor(n_filler * depth / 100) moved back until the token before it is a period (or the
 *  start); depth 100 appends it. @return EVAL_OK, EVAL_ERR_ARG, EVAL_ERR_NOMEM. */
int eval_needle_make(eval_ctx *c, const eval_haystack *h, size_t length, double depth_percent,
                     eval_prompt *p);

/*! eval_needle_recall() : Fu's score, |set(answer.lower().split()) & set(expected)| /
 *  len(expected) with expected = EVAL_NEEDLE_ANSWER's 12 words (11 distinct): a perfect answer
 *  scores 11/12. Lower case and whitespace are ASCII's. */
double eval_needle_recall(const char *answer, size_t n);

/*! eval_needle_substring() : 1 if the answer, lower-cased with whitespace runs as one space,
 *  holds "eat a sandwich and sit in dolores park on a sunny day" (EVAL_NEEDLE_ANSWER without
 *  its period), else 0. */
int eval_needle_substring(const char *answer, size_t n);

/* ---- the grid of items -------------------------------------------------------------------- */

/* Item i of a task's grid: lengths outer, trials or depths inner. */
typedef struct {
    size_t length;
    int trial;    /* passkey: 0..n_trials-1; needle: -1 */
    double depth; /* needle: the depth asked for; passkey: -1 */
} eval_item;

/*! eval_seed_mix() : the splitmix64 hash of (seed, a, b), the items' random source. */
uint64_t eval_seed_mix(uint64_t seed, uint64_t a, uint64_t b);

/* ---- perplexity against context length (eval_ppl.c) --------------------------------------- */

/* ppl-vs-length: for a document of at least end + 1 tokens and a context length L <= end, the
 * window feeds the model ids[end - L, end) at positions 0..L-1 and scores each next token,
 * ids[end - L + 1 .. end]; the last N targets, ids[end - N + 1 .. end], are the same tokens at
 * every L, so a curve over L shows what more context buys them. The window is exactly `longctx
 * perplexity --ctx L+1` on ids[end - L, end] (infer_ppl_document, the same code). end is the
 * largest length: every length scores the same documents. */

struct infer_state;

enum { EVAL_PPL_BUCKETS = 64 }; /* infer.h's INFER_PPL_BUCKETS */

typedef struct {
    double last_sum;              /* NLL (nats) summed over the last N targets */
    uint64_t last_n;              /* N */
    double total;                 /* over all L targets of the window */
    uint64_t n;                   /* L */
    double sum[EVAL_PPL_BUCKETS]; /* by the target's position in the window (infer_ppl_bucket) */
    uint64_t count[EVAL_PPL_BUCKETS];
} eval_ppl_result;

/*! eval_ppl_window() :
 *  Scores the window of length tokens ending at end (above) on s (created with max_ctx >
 *  length), the last `last` targets summed apart. want: the caller's buffer of length + 1
 *  bytes. Collective over s's ranks. @return EVAL_OK, EVAL_ERR_ARG (last or length out of 1..
 *  end, last > length), EVAL_ERR_FORMAT (non-finite logits: *bad_pos is the document position
 *  whose logits were not finite, the one before its target), EVAL_ERR_IO (any other failure of the
 * forward pass). */
int eval_ppl_window(struct infer_state *s, const uint32_t *ids, uint64_t end, int length, int last,
                    uint8_t *want, eval_ppl_result *out, uint64_t *bad_pos);

/* The documents of a run: those of the input files, in order, of at least `need` tokens,
 * each kept cut to its first need ids. */
typedef struct {
    uint32_t *ids;   /* (need) owned */
    uint64_t tokens; /* the document's length before the cut */
    size_t file;     /* index into the paths given */
    uint64_t index;  /* the document's number in its file, from 0 */
} eval_ppl_doc;

typedef struct {
    eval_ppl_doc *docs; /* (n) */
    size_t n;
    uint64_t need;
    uint64_t n_short; /* documents read but shorter than need */
    uint64_t hash;    /* xxh3 of the kept ids and their origins: names the set */
    char errmsg[640];
} eval_ppl_docs;

/*! eval_ppl_docs_load() :
 *  Reads paths[0, n_paths) through infer_doc_reader (.u32, .jsonl, .shard, text; tok may be
 *  NULL when no input is text), keeping the documents of >= need tokens, at most max_docs of
 *  them (0: all); every id must be below vocab (else EVAL_ERR_FORMAT naming the file,
 *  document and position). @return EVAL_OK, EVAL_ERR_IO, EVAL_ERR_FORMAT, EVAL_ERR_NOMEM,
 *  with d->errmsg; free d either way. */
int eval_ppl_docs_load(const char *const *paths, size_t n_paths, const struct tokenizer *tok,
                       uint64_t need, size_t max_docs, uint64_t vocab, eval_ppl_docs *d);
void eval_ppl_docs_free(eval_ppl_docs *d); /* frees and zeroes d */

/* ---- RULER (eval_ruler.c) ------------------------------------------------------------------
 *
 * NVIDIA RULER's synthetic probes that need no external data (REFERENCE.md 1.4), built in
 * tokens like the tasks above; the prompt (answer prefix included) has exactly length tokens
 * (RULER instead fits prompt + tokens to generate into the length):
 *
 *   niah_*  BOS, "Some special magic {T} are hidden within the following text. Make sure to
 *           memorize it. I will quiz you about the {T} afterwards.\n", the context, "\nWhat are
 *           all the special magic {T} for {query} mentioned in the provided text? The special
 *           magic {T} for {query} mentioned in the provided text are" with T "numbers" or
 *           "uuids". The context: the noise sentence (EVAL_PASSKEY_FILLER, RULER's noise
 *           haystack) repeated, lines joined by "\n", with the needle lines "One of the special
 *           magic {T} for {key} is: {value}." at seeded lines; keys are adjective-noun words
 *           (RULER's wonderwords keys, from a fixed list) or uuid4s, values 7-digit numbers or
 *           uuid4s. single: one needle; multikey: 4 needles of distinct keys, one queried.
 *   vt      BOS, "Memorize and track the chain(s) of variable assignment hidden in the following
 *           text.\n\n", noise lines with the chain "VAR X0 = 12345", "VAR X1 = VAR X0", ...
 *           (4 hops, names of 5 upper-case letters, a 5-digit value) at seeded lines in order,
 *           "\nQuestion: Find all variables that are assigned the value {v} in the text above.
 *           Answer: According to the chain(s) of variable assignment in the text above, 5
 *           variables are assigned the value {v}, they are: ". No in-context example (RULER
 *           prepends one).
 *   fwe     BOS, "Read the following coded text and track the frequency of each coded word.
 *           Find the three most frequently appeared coded words.", the words joined by " ",
 *           "\nQuestion: Do not provide any explanation. Please ignore the dots '....'. What are
 *           the three most frequently appeared words in the above coded text? Answer: According
 *           to the coded text above, the three most frequently appeared words are:". 2000
 *           random 6-letter words, rank r appearing round(N / r^2 / zeta(2)) times (Zipf,
 *           alpha 2), rank 1 being the noise word "....", shuffled; the answer is ranks 2..4.
 *
 * Exact lengths: the haystack size (noise lines, or N words) is the largest whose prompt fits,
 * found by binary search on the token count; the tokens left over (fewer than one more unit)
 * are the noise stream continued and cut at a token boundary (niah, vt: "\n" and the noise
 * sentence; fwe: " ...."). Scores: RULER's string_match_all (the fraction of the expected
 * answers that are substrings of the prediction) and string_match_part (1 if any is), both
 * case-insensitive (Unicode simple lower case, utf8proc); RULER's tables show them x 100.
 */

typedef enum {
    EVAL_RULER_NIAH_SINGLE = 0,    /* word key, 7-digit number */
    EVAL_RULER_NIAH_SINGLE_UUID,   /* word key, uuid value */
    EVAL_RULER_NIAH_MULTIKEY,      /* 4 word keys (1 queried), numbers */
    EVAL_RULER_NIAH_MULTIKEY_UUID, /* 4 uuid keys (1 queried), uuid values */
    EVAL_RULER_VT,                 /* variable tracking, 1 chain of 4 hops */
    EVAL_RULER_FWE,                /* frequent-words extraction */
    EVAL_RULER_N_TASKS
} eval_ruler_task;

#define EVAL_RULER_NIAH_NEW  128 /* RULER's tokens to generate */
#define EVAL_RULER_VT_NEW    30
#define EVAL_RULER_FWE_NEW   50
#define EVAL_RULER_MAX_REFS  5
#define EVAL_RULER_MULTIKEYS 4
#define EVAL_RULER_VT_HOPS   4
#define EVAL_RULER_FWE_VOCAB 2000

/*! eval_ruler_task_name() : "niah_single", "niah_single_uuid", "niah_multikey",
 *  "niah_multikey_uuid", "vt", "fwe"; NULL out of range. eval_ruler_task_parse() : the task of
 *  a name, or -1. */
const char *eval_ruler_task_name(int task);
int eval_ruler_task_parse(const char *name);

typedef struct {
    uint32_t *ids; /* (n_ids) the prompt, BOS first; owned: eval_ruler_prompt_free */
    size_t n_ids;
    long needle_pos;      /* niah: where the queried needle line starts; vt: the first chain
                             line; fwe: -1 */
    size_t needle_tokens; /* its length in tokens (0 for fwe) */
    size_t n_units;       /* niah, vt: noise lines; fwe: words (noise dots included) */
    double depth;         /* niah, vt: percent of the noise lines before needle_pos; fwe: -1 */
    int n_new;            /* tokens to generate */
    char query[40];       /* niah: the queried key; vt: the value; fwe: "" */
    int n_refs;           /* the expected answers */
    char refs[EVAL_RULER_MAX_REFS][40];
} eval_ruler_prompt;

void eval_ruler_prompt_free(eval_ruler_prompt *p); /* frees ids, zeroes p; NULL ok */

typedef struct eval_ruler eval_ruler;

/*! eval_ruler_create() :
 *  The templates' pieces for t (which must outlive it; it needs a BOS id). Not thread-safe:
 *  one per thread. @return EVAL_OK, EVAL_ERR_NOMEM, EVAL_ERR_TOKEN; on failure *out holds the
 *  message or is NULL; free it either way. */
int eval_ruler_create(const struct tokenizer *t, eval_ruler **out);
void eval_ruler_free(eval_ruler *r);                /* NULL ok */
const char *eval_ruler_errmsg(const eval_ruler *r); /* "" if none; valid until the next call */

/*! eval_ruler_make() :
 *  Task task's prompt of exactly length tokens for (seed, length, trial): every random choice
 *  (keys, values, lines, words, order) from a hash of (seed, task, length, trial), so that an
 *  item does not depend on which ran before it. @return EVAL_OK, EVAL_ERR_ARG (an unknown
 *  task; a length too short for the template and its needles), EVAL_ERR_NOMEM,
 *  EVAL_ERR_TOKEN. */
int eval_ruler_make(eval_ruler *r, int task, size_t length, uint64_t seed, uint64_t trial,
                    eval_ruler_prompt *p);

/*! eval_ruler_decode() : ids to text; *text borrowed from r until the next call. Statuses as
 *  eval_ctx_decode. */
int eval_ruler_decode(eval_ruler *r, const uint32_t *ids, size_t n, const char **text,
                      size_t *n_text);

/*! eval_ruler_match_all() : RULER's string_match_all for one prediction: the fraction of
 *  refs[0, n_refs) that occur in pred[0, n) ignoring case (0 if n_refs is 0).
 *  eval_ruler_match_part() : string_match_part: 1 if any does, else 0. Lower case is
 *  utf8proc's per code point; bytes that are not UTF-8 compare as themselves. */
double eval_ruler_match_all(const char *pred, size_t n, const char *const *refs, int n_refs);
int eval_ruler_match_part(const char *pred, size_t n, const char *const *refs, int n_refs);

#endif
