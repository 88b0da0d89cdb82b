/* infer_internal.h - the model's weights as the forward pass sees them. */
#ifndef LONGCTX_INFER_INTERNAL_H
#define LONGCTX_INFER_INTERNAL_H

#include "infer.h"

struct infer_model {
    infer_config cfg;
    float *data;      /* everything below points into it */
    float *emb;       /* (vocab, dim) */
    float *rms_att;   /* (layers, dim) */
    float *wq;        /* (layers, dim, dim): [out][in] */
    float *wk;        /* (layers, kv_dim, dim) */
    float *wv;        /* (layers, kv_dim, dim) */
    float *wo;        /* (layers, dim, dim) */
    float *rms_ffn;   /* (layers, dim) */
    float *w1;        /* (layers, hidden, dim) */
    float *w2;        /* (layers, dim, hidden) */
    float *w3;        /* (layers, hidden, dim) */
    float *rms_final; /* (dim) */
    float *wcls;      /* (vocab, dim), the embedding when shared */
    char errmsg[512];
};

#endif
