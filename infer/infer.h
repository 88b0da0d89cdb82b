/*
 * infer.h - the Llama-family forward pass, and what the infer, perplexity and plan commands
 * need of it: one set of run options (infer_opts), the memory plan, sampling, perplexity
 * windows and documents, batch prompts. Loading and the state take an MPI communicator (the
 * tensor-parallel ranks); the forward pass runs on one rank until its reductions land. Loads
 * HF model directories (config.json + safetensors, single or sharded; F32, BF16
 * and F16 weights kept in their stored dtype) and llama2.c legacy checkpoints.
 * Tensor parallelism (Megatron 1D): the ranks of the communicator given to the loader and the
 * state each hold a slice of every matrix (q/k/v, gate/up by output rows, o/down by input
 * columns, embedding and classifier by vocabulary); the forward pass all-reduces after the
 * attention and the MLP of every layer, and once for the embedding.
 * RoPE: default/ABF, linear, dynamic NTK, YaRN, llama3, with HF rotate_half or adjacent pairing.
 * Attention is tiled with an online softmax (never T x T); prefill runs in chunks, so activation
 * memory is O(chunk); the KV cache is float32 or bfloat16.
 */
#ifndef LONGCTX_INFER_H
#define LONGCTX_INFER_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    INFER_OK = 0,
    INFER_ERR_IO = -1,
    INFER_ERR_NOMEM = -2,
    INFER_ERR_FORMAT = -3, /* malformed model file */
    INFER_ERR_ARG = -4,
    INFER_ERR_UNSUPPORTED = -5, /* an option this CPU or model cannot run (act_dtype) */
    INFER_ERR_NUMERIC = -6,     /* non-finite logits (NaN or infinite weights or activations) */
} infer_status;
enum { INFER_DONE = 1 }; /* not an error: no more documents */

const char *infer_strerror(int status);

/* dtypes of weights and of the KV cache */
enum { INFER_DT_F32 = 0, INFER_DT_BF16 = 1, INFER_DT_F16 = 2 };

typedef enum {
    INFER_ROPE_DEFAULT = 0, /* also ABF: only rope_theta differs */
    INFER_ROPE_LINEAR,
    INFER_ROPE_DYNAMIC,
    INFER_ROPE_YARN,
    INFER_ROPE_LLAMA3,
} infer_rope_type;

typedef enum {
    INFER_PAIR_HALF = 0,     /* HF checkpoints: (j, j + d/2), "rotate_half" */
    INFER_PAIR_ADJACENT = 1, /* Meta originals, llama2.c, GGUF: (2j, 2j + 1) */
} infer_rope_pairing;

enum { INFER_MAX_MEM_LAYERS = 64 };

typedef struct {
    int dim;        /* hidden size */
    int hidden_dim; /* MLP size */
    int n_layers;
    int n_heads;
    int n_kv_heads;
    int vocab_size;
    int seq_len; /* max_position_embeddings: the context the model was trained for */
    float rope_theta;
    float rms_eps;
    int shared_classifier;
    int head_dim; /* 0: dim / n_heads */
    /* RoPE scaling (config.json "rope_scaling"); REFERENCE.md section 2 */
    int rope_type;    /* infer_rope_type */
    int rope_pairing; /* infer_rope_pairing */
    double rope_factor;
    int rope_orig_max; /* original_max_position_embeddings (llama3, yarn); 0: seq_len */
    double rope_low_freq, rope_high_freq;  /* llama3 */
    double rope_beta_fast, rope_beta_slow; /* yarn */
    double rope_attn_factor;               /* yarn; 0: 0.1 ln(factor) + 1 */
    int64_t bos_id, eos_id;                /* -1: none */
    /* LongLLaMA / Focused Transformer (model_type "longllama", REFERENCE.md 1.3): the layers
     * with a memory of earlier windows' keys and values (bf16), ascending; n_mem_layers 0: a
     * plain Llama. The prompt runs in windows of seq_len tokens but its last last_ctx tokens. */
    int n_mem_layers;
    int mem_layers[INFER_MAX_MEM_LAYERS];
    int last_ctx; /* last_context_length, <= seq_len */
} infer_config;

typedef struct infer_model infer_model;
typedef struct infer_state infer_state;

/*! infer_model_load() :
 *  path is a HF model directory (config.json, model.safetensors or model.safetensors.index.json
 *  with its shards), or a llama2.c legacy checkpoint (.bin: 7 int32 then float32 weights,
 *  REFERENCE.md section 3; theta 10000, rms eps 1e-5, adjacent pairs). Weights stay in their
 *  stored dtype; only the norms are widened to float32.
 *  Collective over comm (its ranks are the tensor-parallel ranks; the model does not keep
 *  comm). Global: the config. Local: this rank's share of the heads, MLP and vocabulary
 *  (infer_internal.h, infer_split) and its slices of the matrices, the embedding's and
 *  lm_head's included (vocabulary rows); the split must pass infer_opts_check. Each rank reads
 *  only its slices from the files: row ranges of q/k/v, gate/up, the embedding and lm_head,
 *  column ranges of o and down (a read per row), the norms whole. One rank (MPI_COMM_SELF)
 *  holds the whole model.
 *  @return INFER_OK, INFER_ERR_IO, INFER_ERR_FORMAT (errmsg: file, offset or tensor, what),
 *  INFER_ERR_ARG (a split the model does not allow), INFER_ERR_NOMEM. A failure on one rank
 *  fails every rank, each with the same message: "rank R of P: " and the lowest failing
 *  rank's cause (one rank: the cause alone). On failure *out holds only the message (or is
 *  NULL); free it. */
int infer_model_load(const char *path, MPI_Comm comm, infer_model **out);
/* How the weights reach memory: INFER_LOAD_RAM (the default of infer_model_load) preads this
 * rank's slices into anonymous memory on transparent huge pages (faster decode: fewer TLB
 * misses); INFER_LOAD_MMAP maps each file read-only and points into it (no copy; pages shared
 * with the page cache, only the pages of this rank's rows touched), copying out the column
 * slices of o and down when they are split. */
enum { INFER_LOAD_RAM = 0, INFER_LOAD_MMAP = 1 };
int infer_model_load_mode(const char *path, int mode, MPI_Comm comm, infer_model **out);
void infer_model_free(infer_model *m); /* NULL ok */
const char *infer_model_errmsg(const infer_model *m);
const infer_config *infer_model_config(const infer_model *m);
int infer_model_weight_dtype(const infer_model *m); /* INFER_DT_* of the matrices */
/*! infer_model_bytes_read() : the tensor bytes this rank read from the model's files (headers
 *  and config.json not counted; INFER_LOAD_MMAP: the bytes its slices span in the mappings,
 *  which the page cache reads as they are touched): its slices of the matrices in their
 *  stored dtype plus the norms. Summed over the ranks: the files' tensor bytes, plus (P - 1)
 *  times the norms, plus the KV heads' rows held by more than one rank when P exceeds them
 *  (llama2.c: its freq_cis table is never read). */
uint64_t infer_model_bytes_read(const infer_model *m);
/*! infer_model_weight_bytes() : the bytes of weights this rank holds: its slices of the
 *  matrices in their stored dtype plus the norms in float32 (what infer_plan_make predicts as
 *  weights_bytes for the rank with the largest shares; under INFER_LOAD_MMAP the row slices
 *  live in the page cache, shared). */
uint64_t infer_model_weight_bytes(const infer_model *m);

/* The default prefill chunk: tokens per step (activation memory is O(chunk)). */
enum { INFER_PREFILL_CHUNK = 512 };

/* The options of a run, shared by `longctx infer`, `perplexity` and `plan` so that the plan a
 * job is sized with is what infer allocates. Defaults from infer_opts_default(). */
typedef struct {
    int max_ctx;       /* positions of the KV cache (default 0: the caller's prompt + output) */
    int kv_dtype;      /* INFER_DT_F32 (default) or INFER_DT_BF16 */
    int prefill_chunk; /* tokens per prefill step (default INFER_PREFILL_CHUNK; 0: the same) */
    int threads;       /* default 1 (0: the same) */
    int act_dtype;     /* INFER_ACT_* (default INFER_ACT_F32) */
    /* 2D tensor parallelism of prefill (--tp-grid PrxPc): grid_rows = Pr > 0 runs the prefill's
     * linear layers as PSGEMM on a Pr x (ranks / Pr) BLACS grid over f32 block-cyclic copies of
     * the weights, with grid_block x grid_block blocks (0: INFER_GRID_BLOCK); decode and the
     * classifier stay 1D. 0 (default): 1D only. */
    int grid_rows;
    int grid_cols; /* Pc: 0, or what the ranks / Pr must be (checked) */
    int grid_block;
    /* 1: no overlap. By default a 1D tensor-parallel prefill chunk runs as two halves from the
     * output projection on, so that the all-reduce of one half runs while the other half
     * computes (MPI_Iallreduce, progressed from the computing thread); on the SIMD kernel sets
     * only (the scalar set's sgemm path pads whole chunks) */
    int no_overlap;
    /* LongLLaMA: each query attends to its mem_topk best-scoring memory entries (the paper's
     * exact kNN memory attention) instead of all of them; 0 (default): dense, as the release */
    int mem_topk;
} infer_opts;
enum { INFER_GRID_BLOCK = 64 };

/*! infer_opts_default() : the one set of defaults: f32 KV cache (what infer and perplexity
 *  always allocated), f32 activations, INFER_PREFILL_CHUNK, one thread, max_ctx 0. */
infer_opts infer_opts_default(void);

/*! infer_opts_check() : what infer_state_create and the memory plan refuse, in one place:
 *  dtypes, max_ctx in [1, INT32_MAX / 2], prefill_chunk in [0, 2^20], threads in [0, 1024], and a
 *  tensor-parallel split over n_ranks ranks that the model allows (n_ranks divides the
 *  attention heads; the KV heads divide among the ranks, or the ranks among the KV heads), and
 *  a grid_rows that divides n_ranks (grid_rows x grid_cols = n_ranks when grid_cols is set),
 *  grid_block in [0, 4096].
 *  @return INFER_OK or INFER_ERR_ARG with err (err_bytes) naming the option, its value and
 *  why. */
int infer_opts_check(const infer_config *c, const infer_opts *o, int n_ranks, char *err,
                     size_t err_bytes);

/*! infer_opts_parse() : one run option of the commands (infer, perplexity, plan, eval) by its
 *  long name without dashes and its value: "kv-dtype" f32|bf16, "act-dtype" f32|bf16,
 *  "prefill-chunk" N (0: the default), "threads" N (0: 1), "tp-grid" PrxPc, "grid-block" NB,
 *  "no-overlap" (value ignored), "mem-topk" K. @return INFER_OK, or INFER_ERR_ARG with err
 *  ("--name value: why", or an unknown name). The one parser, so every command reads them
 *  alike. */
int infer_opts_parse(infer_opts *o, const char *name, const char *value, char *err,
                     size_t err_bytes);

/* What prefill multiplies weight matrices with (infer_opts.act_dtype). Decode always uses f32
 * activations. Both keep prefill bit-identical across chunk sizes and threads; bench_sgemm
 * (BENCHMARKS.md) has the rates and errors. */
enum {
    /* f32 activations, weights widened exactly: ik_gemm on AVX-512, else OpenBLAS sgemm */
    INFER_ACT_F32 = 0,
    /* activations rounded to bf16 for BF16 matrices, as llama.cpp does, multiplied with
     * AVX512_BF16's vdpbf16ps: about 1.9x ik_gemm, ~1e-3 relative error per product (several
     * 1e-3 in the logits). Needs BF16 matrices and AVX512_BF16. */
    INFER_ACT_BF16 = 1,
};
/*! infer_act_check() : @return INFER_OK if act can run for matrices of weight_dtype
 *  (INFER_DT_*) on this CPU, INFER_ERR_UNSUPPORTED if not, INFER_ERR_ARG for an unknown act. */
int infer_act_check(int weight_dtype, int act);
const char *infer_act_name(int act); /* "f32", "bf16" */

/*! infer_state_create() : KV cache, activations and threads (m must outlive it).
 *  Collective over comm, the communicator m was loaded on (the same ranks); the state keeps
 *  a duplicate of it for the forward pass's reductions, and every call on the state below is
 *  collective over it (every rank calls with the same arguments). One rank's failure to
 *  allocate is every rank's.
 *  @return INFER_OK, INFER_ERR_ARG (o: see infer_opts_check; comm not m's ranks),
 *  INFER_ERR_NOMEM, INFER_ERR_UNSUPPORTED (act_dtype). */
int infer_state_create(const infer_model *m, const infer_opts *o, MPI_Comm comm, infer_state **out);
void infer_state_free(infer_state *s); /* NULL ok */
/*! infer_state_bytes() : what infer_state_create allocated (the sum of its buffers' sizes):
 *  the KV cache in *kv_bytes, everything else (activations, decode partials, per-thread
 *  scratch) in *act_bytes; infer_plan_make predicts both exactly. */
void infer_state_bytes(const infer_state *s, uint64_t *kv_bytes, uint64_t *act_bytes);
const infer_model *infer_state_model(const infer_state *s); /* the model s was created on */

/* Communication of the state's forward passes so far (tensor parallelism): collective calls,
 * bytes this rank contributed, and the seconds spent in them (all zero on one rank). */
typedef struct {
    uint64_t calls, bytes;
    double seconds;
    /* 2D prefill (grid_rows > 0): PSGEMM calls and seconds (their communication inside), and
     * the redistributions between the grid and the 1D slices: calls, bytes this rank sent to
     * others, seconds */
    uint64_t grid_gemm_calls, grid_redist_calls, grid_redist_bytes;
    double grid_gemm_seconds, grid_redist_seconds;
} infer_comm_stats;
void infer_state_comm_stats(const infer_state *s, infer_comm_stats *out);
/*! infer_state_grid_bytes() : what 2D prefill holds on this rank besides the 1D state: the f32
 *  block-cyclic copies of the layers' matrices, and one chunk's activations on the grid with the
 *  redistribution buffers (0 and 0 without a grid). */
void infer_state_grid_bytes(const infer_state *s, uint64_t *weight_bytes, uint64_t *act_bytes);

/* Called for each wanted position of infer_prefill with its vocab_size logits (borrowed):
 * whole rows on every rank (gathered from the ranks' vocabulary slices). Under tensor
 * parallelism a nonzero return on any rank stops every rank, with the lowest such rank's
 * value. */
typedef int (*infer_logits_fn)(void *ctx, int pos, const float *logits);

/*! infer_prefill() :
 *  Runs ids[0..n) at positions pos0.. (positions before pos0 must have run on s), in chunks of
 *  prefill_chunk tokens; every position's result is independent of the chunk size and thread
 *  count (bit for bit). For each i with want[i] != 0 (want NULL: the last position only) calls
 *  fn(ctx, pos0 + i, logits) in order; a nonzero return stops the run and is returned.
 *  Dynamic NTK: theta grows with the length pos0 + n of this call and applies to all its
 *  positions (keys cached by earlier calls keep theirs), as HF transformers does.
 *  @return INFER_OK, INFER_ERR_ARG (id or position out of range), fn's value. */
int infer_prefill(infer_state *s, const uint32_t *ids, int n, int pos0, const uint8_t *want,
                  infer_logits_fn fn, void *ctx);

/*! infer_prefill_resume() :
 *  Prefix reuse: positions [0, common) of s hold a prefix of the n-token prompt about to run
 *  (run by infer_prefill from 0, or resumed by this rule, on the same ids; decode after it
 *  writes only later positions). @return the pos0 from which infer_prefill(s, ids + pos0,
 *  n - pos0, pos0, ...) gives every later position the bits it would get from pos0 0, at most
 *  n - 1 (the last position always runs): common itself where the bits do not depend on where
 *  chunks start (infer_prefill's chunk independence: the SIMD products, one or two ranks, whose
 *  sums are one addition, no 2D grid); common rounded down to a multiple of the prefill chunk
 *  where they might (more ranks: Open MPI picks its all-reduce by size; the scalar set's sgemm;
 *  a 2D grid), so that the chunks are those of a run from 0; 0 under dynamic NTK (theta follows
 *  the length of each call and of decode) and for LongLLaMA (its windows restart the memory). */
int infer_prefill_resume(const infer_state *s, int common, int n);

/*! infer_forward() :
 *  One token at position pos (decode: matrix-vector kernels; logits may differ from
 *  infer_prefill's in the last bits). *logits: the whole row (gathered from every rank),
 *  borrowed from s until the next call.
 *  @return INFER_OK or INFER_ERR_ARG (token or pos out of range). */
int infer_forward(infer_state *s, uint32_t token, int pos, const float **logits);

/*! infer_forward_sample() :
 *  infer_forward, then *next as infer_sample draws it from the row, without gathering the row
 *  where that is not needed: temperature 0 is one arg-max reduction (MPI_MAXLOC, 16 bytes),
 *  top_k > 0 gathers each rank's top_k (infer_sample_split); only temperature > 0 with top_k 0
 *  gathers the whole row. Every rank returns the same id. On one rank, exactly infer_forward
 *  then infer_sample. rng is advanced as infer_sample advances it. Sampling scratch grows on
 *  the first call that needs more (top_k x ranks candidates and a slice of probabilities; not
 *  in the memory plan).
 *  @return INFER_OK, INFER_ERR_ARG, INFER_ERR_NUMERIC (non-finite logits on some rank: call
 *  infer_forward for the row), INFER_ERR_NOMEM. */
int infer_forward_sample(infer_state *s, uint32_t token, int pos, float temperature, int top_k,
                         float top_p, uint64_t *rng, uint32_t *next);

/*! infer_state_find_nonfinite() : where non-finite logits came from, after infer_prefill or
 *  infer_forward saw them (infer_logits_find_nonfinite): re-runs the prefill of ids[0..n) (the
 * sequence up to the bad position), checking the residual stream after the embedding and after
 * every layer. *layer, *pos: the first non-finite value's layer (-1 the embedding, l the output of
 *  layer l, n_layers: the residual stayed finite, so the final norm or the classifier) and
 *  position, in the order prefill computes them (chunk by chunk, layer by layer). Overwrites
 *  the KV cache of positions [0, n). Costs one prefill: call it only on failure.
 *  @return INFER_OK or infer_prefill's status. */
int infer_state_find_nonfinite(infer_state *s, const uint32_t *ids, int n, int *layer, int *pos);

/* the SIMD instruction set the kernels run with (LONGCTX_ISA overrides): "avx512", ... */
const char *infer_isa(void);

/* ---- memory plan --------------------------------------------------------------------------- */

typedef struct {
    uint64_t n_params;      /* the whole model */
    uint64_t weights_bytes; /* per rank */
    uint64_t kv_bytes;      /* per rank, for ctx positions (LongLLaMA's memory included) */
    uint64_t mem_bytes;     /* LongLLaMA: the memory layers' bf16 memory, per rank */
    uint64_t act_bytes;     /* per rank, one prefill chunk */
    uint64_t total_bytes;
    int kv_heads_per_rank;
    int kv_replicas; /* ranks holding each KV head: n_ranks / n_kv_heads when that exceeds 1 */
    /* tensor parallelism (0 on one rank): all-reduces per decode token, and the bytes each
     * rank contributes to them per token and per prefill chunk */
    uint64_t allreduce_calls_token, allreduce_bytes_token, allreduce_bytes_chunk;
    /* 2D prefill (o->grid_rows > 0), on rank 0 (the largest local parts), in total_bytes: the
     * f32 block-cyclic copies of the layer matrices (on top of the 1D slices decode uses) and one
     * chunk's activations on the grid with the redistribution buffers; grid_setup_bytes, not in
     * the total: the buffers of the weights' redistribution, held only while the state is made */
    uint64_t grid_weight_bytes, grid_act_bytes, grid_setup_bytes;
} infer_plan;

/*! infer_config_from_json() : the sizes of a HF config.json (Llama, Llama 2/3, Mistral
 *  fields); *weight_bytes from torch_dtype (4 for float32, else 2). @return INFER_OK,
 *  INFER_ERR_FORMAT with err naming the file and field, or INFER_ERR_UNSUPPORTED naming the
 *  key of a well-formed config the engine does not compute (LongLLaMA's memory layers). */
int infer_config_from_json(const char *path, infer_config *c, int *weight_bytes, char *err,
                           size_t err_bytes);
/* The same on a config.json already in memory (name: for messages). Used by the fuzz target. */
int infer_config_parse(const char *text, size_t n, const char *name, infer_config *c,
                       int *weight_bytes, char *err, size_t err_bytes);

/*! infer_config_load() : the config of a model without loading its weights: path is a HF
 *  model directory (its config.json), a config.json, or a llama2.c .bin (its header; the
 *  weights are read to check the file's size). *weight_bytes: bytes per parameter (4 for
 *  float32, else 2). @return INFER_OK, INFER_ERR_IO, INFER_ERR_FORMAT, INFER_ERR_NOMEM, with
 *  err naming the file and field. */
int infer_config_load(const char *path, infer_config *c, int *weight_bytes, char *err,
                      size_t err_bytes);

/*! infer_model_hash() : a model's identity without reading all its weights: xxh3-64 over a HF
 *  directory's config.json bytes and, for each of its *.safetensors files in sorted name order,
 *  the 8-byte length, the JSON header and a sample of the data; or over a llama2.c .bin's
 *  28-byte header, its size (8 bytes, little-endian) and a sample of the rest. The sample of a
 *  data region of D bytes is all of it when D <= 64 KiB, else 16 pieces of 4096 bytes at
 *  offsets i (D - 4096) / 15, i = 0..15. Milliseconds on a 140 GB model; continued pretraining
 *  (every weight changed) changes it, an edit of weights outside the sample does not. path as
 *  infer_config_load takes it. Local. @return INFER_OK, INFER_ERR_IO, INFER_ERR_FORMAT,
 *  INFER_ERR_NOMEM, with err naming the file. */
int infer_model_hash(const char *path, uint64_t *out, char *err, size_t err_bytes);

/*! infer_plan_make() : bytes per rank of a run with options o (infer_opts_check must accept
 *  them, o->max_ctx > 0) on n_ranks tensor-parallel ranks, Megatron style (matrices and the
 *  vocabulary split, norms replicated, KV heads split, one per rank when n_ranks exceeds them),
 *  weight_bytes per parameter. The KV cache and activations are exactly what
 *  infer_state_create allocates with o (infer_state_bytes): the chunk's buffers, the decode
 *  partials, per-thread scratch; the process's own code, libraries and OpenBLAS buffers are
 *  not included. */
void infer_plan_make(const infer_config *c, int weight_bytes, const infer_opts *o, int n_ranks,
                     infer_plan *p);

/* ---- safetensors --------------------------------------------------------------------------- */

#define INFER_MAX_DIMS 8

/* One tensor of a safetensors file: where its bytes are (absolute file offset). */
typedef struct {
    char name[256];
    int dtype; /* INFER_DT_* */
    int n_dims;
    int64_t shape[INFER_MAX_DIMS];
    uint64_t offset; /* from the start of the file */
    uint64_t bytes;
} infer_tensor_info;

typedef struct infer_st infer_st;

/*! infer_st_open() :
 *  Reads and checks the header of a safetensors file (not the data): dtypes (F32, BF16, F16;
 *  others are refused by name), shapes against byte sizes, offsets inside the file, no
 *  overlaps. Each rank can then pread only its slice. @return INFER_OK, INFER_ERR_IO,
 *  INFER_ERR_FORMAT (errmsg: file, offset or tensor, what), INFER_ERR_NOMEM. On failure *out
 *  holds the message (or is NULL); free it either way. */
int infer_st_open(const char *path, infer_st **out);
/* The same on a header already in memory (head: the first n_head bytes of a file of
 * file_bytes bytes). Used by the fuzz target. */
int infer_st_parse(const uint8_t *head, size_t n_head, uint64_t file_bytes, const char *path,
                   infer_st **out);
void infer_st_free(infer_st *s); /* NULL ok */
const char *infer_st_errmsg(const infer_st *s);
size_t infer_st_count(const infer_st *s);
const infer_tensor_info *infer_st_tensor(const infer_st *s, size_t i); /* by offset order */
const infer_tensor_info *infer_st_find(const infer_st *s, const char *name);

/* ---- sampling (infer_sample.c) ------------------------------------------------------------ */

/*! infer_sample_check() : @return INFER_OK if temperature (0 = greedy), top_k (0 = all) and
 *  top_p (in (0, 1]) can sample: finite and in range; else INFER_ERR_ARG and *field (static)
 *  names the first bad one ("temperature", "top_k", "top_p"). */
int infer_sample_check(double temperature, long top_k, double top_p, const char **field);

/*! infer_sample() : the next id from n logits: the arg max at temperature 0, else a draw from
 *  softmax(logits / temperature) restricted to the top_k most likely, then to the smallest set
 *  whose probability reaches top_p. rng is the caller's state (seeded with the seed),
 *  advanced. work: the caller's scratch of infer_sample_work_bytes(n) bytes (nothing is
 *  allocated per token). */
int infer_sample(const float *logits, int n, float temperature, int top_k, float top_p,
                 uint64_t *rng, void *work);
size_t infer_sample_work_bytes(int n);

/*! infer_sample_split() : infer_sample over a row spread over the ranks of comm, this rank
 *  holding logits [off, off + n) of it in lg; collective. temperature 0: the arg max (the
 *  lowest id among equal maxima, as infer_sample). top_k > 0: each rank's top_k by probability
 *  (exp((l - max) / temperature) as infer_sample computes it) gathered and merged, the
 *  normaliser summed over the ranks in rank order, then infer_sample's top_p cut and draw: the
 *  same draw as infer_sample on the whole row except for the normaliser's last bits (the same
 *  on one rank). *next is the same on every rank. work: infer_sample_split_work_bytes(n_most,
 *  top_k, n_ranks) bytes, n_most the longest slice. @return INFER_OK, INFER_ERR_ARG
 *  (temperature > 0 with top_k 0: that needs the whole row), INFER_ERR_NUMERIC (some rank's
 *  logits are not finite). */
int infer_sample_split(const float *lg, int n, int off, MPI_Comm comm, float temperature, int top_k,
                       float top_p, uint64_t *rng, void *work, uint32_t *next);
size_t infer_sample_split_work_bytes(int n_most, int top_k, int n_ranks);

/*! infer_log_prob() : log softmax(lg)[id] in double (log-sum-exp of n float32 logits). */
double infer_log_prob(const float *lg, size_t n, uint32_t id);

/*! infer_logits_find_nonfinite() : @return the index of the first non-finite of n logits, or -1.
 * One pass over the row: callers check every row they use, so NaN weights fail with a position
 *  rather than sample garbage. */
int64_t infer_logits_find_nonfinite(const float *lg, size_t n);

/* ---- documents and JSON lines (infer_ppl.c) ----------------------------------------------- */

/* The tokenizer module's types (tokenizer.h), for the JSON lines reader's text fields. */
struct tokenizer;
struct tok_ctx;
struct tok_json;

typedef struct infer_doc_reader infer_doc_reader;

/*! infer_doc_reader_create() : documents of path by its name: .u32 (longctx token ids: per
 *  document a uint32 count, then the ids), .jsonl (one document per line: "ids" or "text"
 *  through tok, BOS first when tok has one), .shard (a longctx shard, prep's output: each
 *  document's pieces joined across the packed sequences, in order; a piece whose document id
 *  changes or whose offset does not continue the document starts the next one, so an
 *  upsampled copy is a document of its own; the ids as packed, BOS included if prep added
 *  it), else the whole file is one text document. tok
 *  may be NULL (then text fails with a message); it must outlive the reader. @return INFER_OK,
 *  INFER_ERR_IO, INFER_ERR_NOMEM; on failure *out holds the message (or is NULL); free it. */
int infer_doc_reader_create(const char *path, const struct tokenizer *tok, infer_doc_reader **out);
/*! infer_doc_reader_next() : the next document's ids (borrowed until the next call).
 *  @return INFER_OK, INFER_DONE, INFER_ERR_IO, INFER_ERR_FORMAT (errmsg: file, line or
 *  offset, what), INFER_ERR_NOMEM. */
int infer_doc_reader_next(infer_doc_reader *r, const uint32_t **ids, uint64_t *n);
void infer_doc_reader_free(infer_doc_reader *r); /* NULL ok */
const char *infer_doc_reader_errmsg(const infer_doc_reader *r);

/* ---- perplexity (infer_ppl.c) ------------------------------------------------------------- */

enum { INFER_PPL_BUCKETS = 64 };

/* Sums of the negative log-likelihoods, in total and by position in the window: bucket 0 is
 * positions 0-127, bucket b > 0 is [128 * 2^(b-1), 128 * 2^b) (infer_ppl_bucket_range). */
typedef struct {
    double sum[INFER_PPL_BUCKETS];
    uint64_t count[INFER_PPL_BUCKETS];
    double total;
    uint64_t n;       /* tokens scored */
    uint64_t windows; /* prefill calls */
} infer_ppl;

int infer_ppl_bucket(int pos);
void infer_ppl_bucket_range(int bucket, long *from, long *to);

/* Called with the NLL of every scored token, in order; nonzero stops the run. */
typedef int (*infer_nll_fn)(void *ctx, double nll);

/*! infer_ppl_document() : scores ids[0..n) with windows of ctx tokens starting every stride
 *  tokens (HF's sliding-window perplexity): a window scores only the tokens after the previous
 *  window's end, each with all the context the window holds before it. s was created with
 *  max_ctx >= ctx; 1 <= stride <= ctx; want is the caller's buffer of ctx bytes. Adds to *acc;
 *  fn (may be NULL) gets each NLL. @return INFER_OK, INFER_ERR_ARG, INFER_ERR_NUMERIC
 *  (*bad_pos: the position in the document whose logits were not finite), fn's value. */
int infer_ppl_document(infer_state *s, const uint32_t *ids, uint64_t n, int ctx, int stride,
                       uint8_t *want, infer_ppl *acc, infer_nll_fn fn, void *fn_ctx,
                       uint64_t *bad_pos);

/* ---- batch prompts (infer_batch.c) -------------------------------------------------------- */

/* One prompt of `infer --input`, with its sampling options. */
typedef struct {
    uint32_t *ids; /* (n) owned: infer_batch_item_free */
    uint64_t n, cap;
    long max_tokens, top_k;
    double temperature, top_p;
    unsigned long long seed;
} infer_batch_item;

/*! infer_batch_parse() : one line, {"prompt": TEXT} or {"ids": [...]}, with optional
 *  "max_tokens", "temperature", "top_k", "top_p", "seed"; the fields missing keep their value
 *  in *it (the caller fills in the command line's first, ids NULL). line[0, n_line) has no
 *  '\n'; j is a tok_json_create("prompt", ...) extractor (tokenizer.h) for the text. tc (may be
 *  NULL) encodes text, BOS first when add_bos. @return INFER_OK, INFER_ERR_FORMAT (err: the field,
 * its value and why), INFER_ERR_NOMEM. */
int infer_batch_parse(const char *line, size_t n_line, struct tok_json *j, struct tok_ctx *tc,
                      int add_bos, uint64_t vocab, infer_batch_item *it, char *err,
                      size_t err_bytes);
void infer_batch_item_free(infer_batch_item *it); /* frees ids; NULL ok */

#endif
