/*
 * infer.h - the Llama-family forward pass (single rank for now; tensor parallelism comes with
 * a later issue). Loads llama2.c legacy checkpoints (.bin, float32). HF safetensors loading,
 * RoPE variants, tiled attention and SIMD kernels are still to come (issue 5).
 */
#ifndef LONGCTX_INFER_H
#define LONGCTX_INFER_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    INFER_OK = 0,
    INFER_ERR_IO = -1,
    INFER_ERR_NOMEM = -2,
    INFER_ERR_FORMAT = -3, /* malformed model file */
    INFER_ERR_ARG = -4,
} infer_status;

const char *infer_strerror(int status);

typedef struct {
    int dim;        /* hidden size */
    int hidden_dim; /* MLP size */
    int n_layers;
    int n_heads;
    int n_kv_heads;
    int vocab_size;
    int seq_len; /* the context the model was trained for */
    float rope_theta;
    float rms_eps;
    int shared_classifier;
    int head_dim; /* 0: dim / n_heads */
} infer_config;

typedef struct infer_model infer_model;
typedef struct infer_state infer_state;

/*! infer_model_load() :
 *  Loads a llama2.c legacy checkpoint: 7 int32 (dim, hidden_dim, n_layers, n_heads,
 *  n_kv_heads, vocab_size, seq_len; vocab_size < 0 = separate classifier), then float32
 *  weights (REFERENCE.md section 3). theta 10000, rms eps 1e-5, adjacent-pair RoPE.
 *  @return INFER_OK, INFER_ERR_IO, INFER_ERR_FORMAT (errmsg says what and where),
 *  INFER_ERR_NOMEM. On failure *out holds only the message (or is NULL); free it. */
int infer_model_load(const char *path, infer_model **out);
void infer_model_free(infer_model *m); /* NULL ok */
const char *infer_model_errmsg(const infer_model *m);
const infer_config *infer_model_config(const infer_model *m);

/*! infer_state_create() : KV cache and activations for up to max_ctx positions (m must
 *  outlive it). @return INFER_OK, INFER_ERR_ARG, INFER_ERR_NOMEM. */
int infer_state_create(const infer_model *m, int max_ctx, infer_state **out);
void infer_state_free(infer_state *s); /* NULL ok */

/*! infer_forward() :
 *  Runs token at position pos (positions 0..pos-1 must have run before on s) and returns the
 *  vocab_size logits in *logits, borrowed from s until the next call.
 *  @return INFER_OK or INFER_ERR_ARG (token or pos out of range). */
int infer_forward(infer_state *s, uint32_t token, int pos, const float **logits);

/* ---- memory plan --------------------------------------------------------------------------- */

typedef struct {
    uint64_t n_params;      /* the whole model */
    uint64_t weights_bytes; /* per rank */
    uint64_t kv_bytes;      /* per rank, for ctx positions */
    uint64_t act_bytes;     /* per rank, one prefill chunk */
    uint64_t total_bytes;
} infer_plan;

/*! infer_config_from_json() : the sizes of a HF config.json (Llama, Llama 2/3, Mistral
 *  fields); *weight_bytes from torch_dtype (4 for float32, else 2). @return INFER_OK or
 *  INFER_ERR_FORMAT with err naming the file and field. */
int infer_config_from_json(const char *path, infer_config *c, int *weight_bytes, char *err,
                           size_t err_bytes);
/* Bytes per rank with Megatron-style tensor parallelism over tp ranks: matrices and the
 * vocabulary split, norms replicated, KV heads split (one per rank when tp > KV heads). */
void infer_plan_make(const infer_config *c, uint64_t ctx, int tp, int weight_bytes, int kv_bytes,
                     uint64_t chunk, infer_plan *p);

/* ---- safetensors --------------------------------------------------------------------------- */

enum { INFER_DT_F32 = 0, INFER_DT_BF16 = 1, INFER_DT_F16 = 2 };
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

#endif
