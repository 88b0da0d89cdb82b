/* test_tp_split.c - the tensor-parallel seams at 1, 2 and 4 ranks (stories260K: 8 heads, 4 KV
 * heads, MLP 172, vocabulary 512): each rank's local counts are ggml's slices (the last MLP
 * share short at 4 ranks is 43 = 172 / 4 exactly; at 2, 86), the KV heads of its query heads,
 * and its weight slices equal the same rows or columns of the whole model loaded on
 * MPI_COMM_SELF (row slices point into it, column slices of wo and w2 are copies; the
 * embedding and the tied classifier are one vocabulary slice). A state is created on the
 * model's ranks and refused on others, and a split the heads do not allow is refused at load.
 * test_tp_forward runs the forward pass. */
#include "check.h"
#include "infer_internal.h"

#include <mpi.h>
#include <stdio.h>
#include <string.h>

/* 1 if rows [r0, r0 + n) x cols [c0, c0 + nc) of whole (cols wide) equal slice (nc wide) */
static int same_block(infer_mat whole, int cols, infer_mat slice, int r0, int n, int c0, int nc) {
    const float *a = whole.p, *b = slice.p; /* llama2.c: float32 */
    for (int r = 0; r < n; r++)
        if (memcmp(a + (size_t)(r0 + r) * (size_t)cols + (size_t)c0, b + (size_t)r * (size_t)nc,
                   (size_t)nc * sizeof(float)))
            return 0;
    return 1;
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, n_ranks;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &n_ranks);
    char path[4096];
    snprintf(path, sizeof path, "%s/models/stories260K/stories260K.bin", check_assets_dir());
    FILE *f = fopen(path, "rb");
    if (!f) {
        MPI_Finalize();
        SKIP("asset missing: %s", path);
    }
    fclose(f);
    infer_model *whole = NULL, *m = NULL;
    CHECK_EQ_INT(infer_model_load(path, MPI_COMM_SELF, &whole), INFER_OK);
    CHECK_EQ_INT(infer_model_load(path, MPI_COMM_WORLD, &m), INFER_OK);
    if (!whole || !m || whole->errmsg[0] || m->errmsg[0]) {
        infer_model_free(whole);
        infer_model_free(m);
        MPI_Finalize();
        return check_exit("test_tp_split");
    }
    const infer_split *t = &m->tp;
    const int P = n_ranks, hd = m->head_dim, D = m->cfg.dim, H = m->cfg.hidden_dim;
    CHECK_EQ_INT(t->rank, rank);
    CHECK_EQ_INT(t->n_ranks, P);
    CHECK_EQ_INT(t->n_heads, 8 / P);
    CHECK_EQ_INT(t->head0, rank * (8 / P));
    CHECK_EQ_INT(t->n_kv_heads, 4 / P > 0 ? 4 / P : 1);
    CHECK_EQ_INT(t->kv_head0, 4 >= P ? rank * (4 / P) : rank / (P / 4));
    const int hs = (172 + P - 1) / P, vs = (512 + P - 1) / P;
    CHECK_EQ_INT(t->hidden0, rank * hs);
    CHECK_EQ_INT(t->hidden_dim, (rank * hs + hs < 172 ? rank * hs + hs : 172) - rank * hs);
    CHECK_EQ_INT(t->vocab0, rank * vs);
    CHECK_EQ_INT(t->vocab, vs);
    /* the slices: the same numbers as the whole model's */
    for (int l = 0; l < m->cfg.n_layers; l++) {
        const infer_layer *a = &whole->layers[l], *b = &m->layers[l];
        CHECK(same_block(a->wq, D, b->wq, t->head0 * hd, t->n_heads * hd, 0, D));
        CHECK(same_block(a->wk, D, b->wk, t->kv_head0 * hd, t->n_kv_heads * hd, 0, D));
        CHECK(same_block(a->wv, D, b->wv, t->kv_head0 * hd, t->n_kv_heads * hd, 0, D));
        CHECK(same_block(a->w1, D, b->w1, t->hidden0, t->hidden_dim, 0, D));
        CHECK(same_block(a->w3, D, b->w3, t->hidden0, t->hidden_dim, 0, D));
        CHECK(same_block(a->wo, 8 * hd, b->wo, 0, D, t->head0 * hd, t->n_heads * hd));
        CHECK(same_block(a->w2, H, b->w2, 0, D, t->hidden0, t->hidden_dim));
    }
    CHECK(same_block(whole->wcls, D, m->wcls, t->vocab0, t->vocab, 0, D));
    CHECK(same_block(whole->emb, D, m->emb, t->vocab0, t->vocab, 0, D)); /* by vocabulary too */
    CHECK(m->wcls.p == m->emb.p);                                        /* tied: one slice */
    infer_opts o = infer_opts_default();
    o.max_ctx = 16;
    infer_state *s = NULL;
    CHECK_EQ_INT(infer_state_create(m, &o, MPI_COMM_WORLD, &s), INFER_OK);
    infer_state_free(s);
    /* a communicator of other ranks than the model's is refused */
    if (P > 1) {
        CHECK_EQ_INT(infer_state_create(m, &o, MPI_COMM_SELF, &s), INFER_ERR_ARG);
        infer_state_free(s);
    }
    infer_model_free(m);
    /* 3 ranks do not divide 8 heads: refused at load, by every rank, with the reason */
    if (P == 4) {
        MPI_Comm three;
        MPI_Comm_split(MPI_COMM_WORLD, rank < 3, rank, &three);
        if (rank < 3) {
            CHECK_EQ_INT(infer_model_load(path, three, &m), INFER_ERR_ARG);
            CHECK(m && strstr(infer_model_errmsg(m), "attention heads"));
            infer_model_free(m);
        }
        MPI_Comm_free(&three);
    }
    infer_model_free(whole);
    MPI_Finalize();
    return check_exit("test_tp_split");
}
