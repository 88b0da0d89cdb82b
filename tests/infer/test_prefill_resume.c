/* test_prefill_resume.c - prefix reuse (infer_prefill_resume) on stories260K split over
 * MPI_COMM_WORLD, chunks of CHUNK = 7 so that many chunk boundaries move:
 *  - prompt A runs from 0, then decodes a few tokens (writing positions past A's end); prompt
 *    B, equal to A on [0, P) and different after, runs from pos0 = infer_prefill_resume(s, P,
 *    n) only: every position from pos0 on, and the greedy ids decoded after it, have the bits
 *    of B run from 0 on a fresh state, for P at, before and after chunk boundaries, 0 and n;
 *  - pos0 is P itself (capped at n - 1) on one or two ranks with the SIMD products
 *    (infer_prefill's chunk independence, which this checks: P not a multiple of the chunk),
 *    and P rounded down to the chunk on more ranks or the scalar set;
 *  - the same with equal prompts (P = n: only the last position runs).
 * usage: test_prefill_resume [MODEL] */
#include "check.h"
#include "infer.h"
#include "infer_kernels.h"

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { NP = 45, NG = 6, CHUNK = 7 };

typedef struct {
    float *rows; /* (NP, V) */
    size_t V;
} rows_sink;

static int keep_row(void *ctx, int pos, const float *lg) {
    rows_sink *k = ctx;
    memcpy(k->rows + (size_t)pos * k->V, lg, k->V * sizeof(float));
    return 0;
}

/* ids[pos0, NP) from pos0 with every position's row into out, then NG greedy ids into gen */
static int run(infer_state *s, const uint32_t *ids, int pos0, float *out, size_t V, uint32_t *gen) {
    uint8_t want[NP];
    memset(want, 1, sizeof want);
    rows_sink k = {out, V};
    int st = infer_prefill(s, ids + pos0, NP - pos0, pos0, want, keep_row, &k);
    uint32_t next = 0;
    const float *last = out + (size_t)(NP - 1) * V;
    for (size_t i = 1; i < V; i++)
        next = last[i] > last[next] ? (uint32_t)i : next;
    uint64_t rng = 0;
    for (int g = 0; st == INFER_OK && g < NG; g++) {
        gen[g] = next;
        st = infer_forward_sample(s, next, NP + g, 0.0f, 0, 1.0f, &rng, &next);
    }
    return st;
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, P;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &P);
    char path[4096];
    if (argc > 1)
        snprintf(path, sizeof path, "%s", argv[1]);
    else
        snprintf(path, sizeof path, "%s/models/stories260K/stories260K.bin", check_assets_dir());
    FILE *f = fopen(path, "rb");
    if (!f) {
        MPI_Finalize();
        SKIP("asset missing: %s", path);
    }
    fclose(f);
    infer_model *m = NULL;
    CHECK_EQ_INT(infer_model_load(path, MPI_COMM_WORLD, &m), INFER_OK);
    infer_opts o = infer_opts_default();
    o.max_ctx = NP + NG + 1;
    o.prefill_chunk = CHUNK;
    infer_state *s = NULL, *fresh = NULL;
    if (m) {
        CHECK_EQ_INT(infer_state_create(m, &o, MPI_COMM_WORLD, &s), INFER_OK);
        CHECK_EQ_INT(infer_state_create(m, &o, MPI_COMM_WORLD, &fresh), INFER_OK);
    }
    if (!s || !fresh) {
        infer_state_free(s);
        infer_state_free(fresh);
        infer_model_free(m);
        MPI_Finalize();
        return check_exit("test_prefill_resume");
    }
    const infer_config *c = infer_model_config(m);
    const size_t V = (size_t)c->vocab_size;
    uint32_t a[NP], b[NP], ga[NG], gb[NG], gr[NG];
    uint64_t rng = 777;
    for (int i = 0; i < NP; i++) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        a[i] = (uint32_t)((rng >> 33) % V);
    }
    a[0] = (uint32_t)c->bos_id;
    float *ra = malloc(NP * V * sizeof(float)), *rb = malloc(NP * V * sizeof(float)),
          *ref = malloc(NP * V * sizeof(float));
    CHECK(ra && rb && ref);
    /* every resumed run is compared with B from 0; the counts are printed */
    static const int commons[] = {0, 1, 6, 7, 8, 13, 14, 20, 30, 44, 45};
    int exact = 0, aligned = 0;
    for (size_t t = 0; ra && rb && ref && t < sizeof commons / sizeof *commons; t++) {
        const int common = commons[t];
        memcpy(b, a, sizeof b);
        for (int i = common; i < NP; i++) /* differs from A from position common on */
            b[i] = (a[i] + 1 + (uint32_t)i) % (uint32_t)V;
        CHECK_EQ_INT(run(fresh, b, 0, ref, V, gr), INFER_OK);
        CHECK_EQ_INT(run(s, a, 0, ra, V, ga), INFER_OK); /* A, then decode past its end */
        const int pos0 = infer_prefill_resume(s, common, NP);
        const int capped = common < NP - 1 ? common : NP - 1;
        if (P <= 2 && ik_isa_current() >= IK_AVX2) {
            CHECK_EQ_INT(pos0, capped);
        } else {
            CHECK_EQ_INT(pos0, capped / CHUNK * CHUNK);
        }
        exact += pos0 == capped;
        aligned += pos0 % CHUNK == 0;
        memset(rb, 0, NP * V * sizeof(float));
        CHECK_EQ_INT(run(s, b, pos0, rb, V, gb), INFER_OK);
        const size_t off = (size_t)pos0 * V, len = (NP - (size_t)pos0) * V * sizeof(float);
        const int same = !memcmp(rb + off, ref + off, len) && !memcmp(gb, gr, sizeof gb);
        if (!same && rank == 0)
            fprintf(stderr, "common %d, pos0 %d: the resumed run's bits differ from a run from 0\n",
                    common, pos0);
        CHECK(same);
    }
    if (rank == 0)
        printf("tp %d: %zu prompts resumed from a shared prefix: %d from the prefix's end, %d at "
               "a chunk boundary; every position's logits and %d greedy ids bit-identical to a "
               "run from 0\n",
               P, sizeof commons / sizeof *commons, exact, aligned, NG);
    free(ra);
    free(rb);
    free(ref);
    infer_state_free(s);
    infer_state_free(fresh);
    infer_model_free(m);
    MPI_Finalize();
    return check_exit("test_prefill_resume");
}
