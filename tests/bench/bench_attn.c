/* bench_attn.c - prefill attention of one task, as infer_forward.c's attn_segment runs it: the
 * last 32 query positions of a `keys`-token prompt, times `group` query heads sharing one KV
 * head, attend causally over all `keys` cached keys in 128-key tiles (one segment; the merge of
 * 2048-key segments is left out, it is per segment, not per key). One thread.
 *
 *   sgemm   the code of main before the kernels: per tile, OpenBLAS sgemm S = Q K^T in calls of
 *           32 rows, the row-wise softmax (infer_max, infer_exp_sum, ik_scale), acc += P V by
 *           sgemm; rows padded to 32, full 128-key tiles (kept here only for the comparison);
 *           main's cache layout (ctx, kv_dim), the task's head one of two per position
 *   kernels ik_attn_qk, infer_attn_softmax, ik_attn_pv per tile (attn_segment_prefill), on main's
 *           layout ("interleaved") and on infer's head-major one ((kv head, ctx, hd): dense)
 *   qk, pv  one of those kernels alone over the same tiles (head-major)
 *
 * GFLOP/s counts 4 hd FLOP per (query row, key it attends): 2 hd for its score, 2 hd for its
 * share of P V; qk and pv count their 2 hd. Padding rows, masked keys and the softmax are not
 * counted. The cache is f32 or bf16 (bf16 tiles are widened first, as attn_segment does).
 *
 * usage: bench_attn [keys] [hd] [group] [reps]     defaults 32768 64 2 5
 * Each number is the best of `reps` runs; the median follows in brackets. Prints markdown. */
#include "infer.h"
#include "infer_internal.h"
#include "infer_kernels.h"

#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_REPS 64

static volatile float g_sink;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t rng_state = 42;

static float frand(void) { /* [-1, 1), xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (float)(uint32_t)((rng_state * 0x2545f4914f6cdd1dull) >> 32) / 2147483648.0f - 1.0f;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void *xalloc(size_t bytes) {
    void *p = aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (!p) {
        fprintf(stderr, "out of memory (%zu bytes)\n", bytes);
        exit(1);
    }
    memset(p, 0, (bytes + 63) / 64 * 64);
    return p;
}

typedef enum { RUN_SGEMM, RUN_KERNELS, RUN_QK, RUN_PV } run_kind;

typedef struct {
    int keys, hd, G, R, RS, ldkv, bf16;
    const void *kc, *vc; /* (keys, ldkv) f32 or bf16; the task's head is the first */
    float *q;            /* (32, hd) rows for sgemm */
    float *qt;           /* (hd, RS) */
    float *s;            /* (32 * G padded, 128) or (128, RS) */
    float *kt, *vt;      /* (128, hd) widened tiles */
    float *acc;          /* (R padded, hd) */
    float *ml;           /* (R, 2) */
    float *m, *l, *c;    /* (RS) */
    int *nk;             /* (RS) */
    int *pos;            /* (R) position of each row */
} task;

enum { TILE = 128, ROWS = 32 }; /* BK, and the sgemm row count RM of main */

static void tile_ptrs(const task *a, int t0, int nt, const float **k, const float **v, size_t *ld) {
    if (!a->bf16) {
        *k = (const float *)a->kc + (size_t)t0 * (size_t)a->ldkv;
        *v = (const float *)a->vc + (size_t)t0 * (size_t)a->ldkv;
        *ld = (size_t)a->ldkv;
        return;
    }
    for (int t = 0; t < nt; t++) {
        const uint16_t *kr = (const uint16_t *)a->kc + (size_t)(t0 + t) * (size_t)a->ldkv;
        const uint16_t *vr = (const uint16_t *)a->vc + (size_t)(t0 + t) * (size_t)a->ldkv;
        ik_to_f32(a->kt + (size_t)t * (size_t)a->hd, kr, INFER_DT_BF16, (size_t)a->hd);
        ik_to_f32(a->vt + (size_t)t * (size_t)a->hd, vr, INFER_DT_BF16, (size_t)a->hd);
    }
    *k = a->kt;
    *v = a->vt;
    *ld = (size_t)a->hd;
}

/* main's attn_segment, prefill branch */
static void run_sgemm(task *a) {
    const int hd = a->hd, R = a->R, RP = (R + ROWS - 1) / ROWS * ROWS;
    for (int r = 0; r < R; r++) {
        a->ml[2 * r] = -INFINITY;
        a->ml[2 * r + 1] = 0;
    }
    memset(a->acc, 0, (size_t)RP * (size_t)hd * sizeof(float));
    for (int t0 = 0; t0 < a->keys; t0 += TILE) {
        const float *k, *v;
        size_t ld;
        tile_ptrs(a, t0, TILE, &k, &v, &ld);
        for (int r = 0; r < RP; r += ROWS)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, ROWS, TILE, hd, 1.0f,
                        a->q + (size_t)r * (size_t)hd, hd, k, (int)ld, 0.0f,
                        a->s + (size_t)r * TILE, TILE);
        for (int r = 0; r < R; r++) {
            float *sr = a->s + (size_t)r * TILE;
            const int in_tile = a->keys - t0 < TILE ? a->keys - t0 : TILE;
            int valid = a->pos[r] - t0 + 1;
            valid = valid < 0 ? 0 : valid > in_tile ? in_tile : valid;
            float mx = infer_max(sr, valid);
            memset(sr + valid, 0, (size_t)(TILE - valid) * sizeof(float));
            if (valid == 0)
                continue;
            float m_old = a->ml[2 * r], m_new = mx > m_old ? mx : m_old;
            float sum = infer_exp_sum(sr, valid, m_new);
            if (m_new != m_old && m_old != -INFINITY) {
                float c = infer_exp(m_old - m_new);
                ik_scale(a->acc + (size_t)r * (size_t)hd, c, (size_t)hd);
                a->ml[2 * r + 1] *= c;
            }
            a->ml[2 * r] = m_new;
            a->ml[2 * r + 1] += sum;
        }
        for (int r = R; r < RP; r++)
            memset(a->s + (size_t)r * TILE, 0, TILE * sizeof(float));
        for (int r = 0; r < RP; r += ROWS)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, ROWS, hd, TILE, 1.0f,
                        a->s + (size_t)r * TILE, TILE, v, (int)ld, 1.0f,
                        a->acc + (size_t)r * (size_t)hd, hd);
    }
}

/* attn_segment_prefill, or one of its kernels alone */
static void run_kernels(task *a, run_kind kind) {
    const int hd = a->hd, R = a->R;
    const size_t RS = (size_t)a->RS;
    for (size_t r = 0; r < RS; r++) {
        a->m[r] = -INFINITY;
        a->l[r] = 0;
        a->c[r] = 1;
        a->nk[r] = 0;
    }
    memset(a->acc, 0, (size_t)R * (size_t)hd * sizeof(float));
    for (int t0 = 0; t0 < a->keys; t0 += TILE) {
        const int in_tile = a->keys - t0 < TILE ? a->keys - t0 : TILE;
        int nt = 0;
        for (int r = 0; r < R; r++) {
            int valid = a->pos[r] - t0 + 1;
            valid = valid < 0 ? 0 : valid > in_tile ? in_tile : valid;
            a->nk[r] = valid;
            nt = valid > nt ? valid : nt;
        }
        const float *k, *v;
        size_t ld;
        tile_ptrs(a, t0, nt, &k, &v, &ld);
        if (kind != RUN_PV)
            ik_attn_qk(a->s, a->qt, RS, k, ld, nt, R, hd);
        if (kind == RUN_KERNELS)
            infer_attn_softmax(a->s, RS, nt, a->nk, a->m, a->l, a->c, R);
        if (kind != RUN_QK)
            ik_attn_pv(a->acc, (size_t)hd, a->c, a->s, RS, v, ld, a->nk, R, hd);
    }
}

static void run(task *a, run_kind kind) {
    if (kind == RUN_SGEMM)
        run_sgemm(a);
    else
        run_kernels(a, kind);
    g_sink = a->acc[0];
}

/* best and median GFLOP/s of reps runs */
static void measure(task *a, run_kind kind, int reps, double flop, double *best, double *med) {
    double t[MAX_REPS];
    run(a, kind); /* warm */
    for (int i = 0; i < reps; i++) {
        double t0 = now();
        run(a, kind);
        t[i] = now() - t0;
    }
    qsort(t, (size_t)reps, sizeof *t, cmp_double);
    *best = flop / t[0] * 1e-9;
    *med = flop / t[reps / 2] * 1e-9;
}

int main(int argc, char **argv) {
    const int keys = argc > 1 ? atoi(argv[1]) : 32768, hd = argc > 2 ? atoi(argv[2]) : 64;
    const int G = argc > 3 ? atoi(argv[3]) : 2;
    int reps = argc > 4 ? atoi(argv[4]) : 5;
    if (keys < 32 || hd < 1 || hd > 1024 || G < 1 || G > 64 || reps < 1) {
        fprintf(stderr, "usage: bench_attn [keys >= 32] [hd] [group] [reps]\n");
        return 2;
    }
    reps = reps > MAX_REPS ? MAX_REPS : reps;
    openblas_set_num_threads(1);
    task a = {.keys = keys, .hd = hd, .G = G, .R = ROWS * G};
    a.RS = (a.R + IK_LANES - 1) / IK_LANES * IK_LANES;
    const int RP = (a.R + ROWS - 1) / ROWS * ROWS;
    /* [0]: main's layout, two heads per position; [1]: head-major, one head's keys dense */
    float *kf[2], *vf[2];
    uint16_t *kb[2], *vb[2];
    ik_init(NULL);
    for (int lay = 0; lay < 2; lay++) {
        const size_t n = (size_t)keys * (size_t)hd * (lay ? 1 : 2);
        kf[lay] = xalloc(n * 4);
        vf[lay] = xalloc(n * 4);
        kb[lay] = xalloc(n * 2);
        vb[lay] = xalloc(n * 2);
        rng_state = 42; /* the same values in both layouts */
        for (size_t i = 0; i < (size_t)keys * (size_t)hd; i++) {
            const size_t at = lay ? i : i / (size_t)hd * 2 * (size_t)hd + i % (size_t)hd;
            kf[lay][at] = frand();
            vf[lay][at] = frand();
        }
        ik_f32_to_bf16(kb[lay], kf[lay], n);
        ik_f32_to_bf16(vb[lay], vf[lay], n);
    }
    a.q = xalloc((size_t)RP * (size_t)hd * 4);
    a.qt = xalloc((size_t)hd * (size_t)a.RS * 4);
    a.s = xalloc((size_t)(RP > a.RS ? RP : a.RS) * TILE * 4);
    a.kt = xalloc((size_t)TILE * (size_t)hd * 4);
    a.vt = xalloc((size_t)TILE * (size_t)hd * 4);
    a.acc = xalloc((size_t)RP * (size_t)hd * 4);
    a.ml = xalloc((size_t)a.R * 2 * 4);
    a.m = xalloc((size_t)a.RS * 4);
    a.l = xalloc((size_t)a.RS * 4);
    a.c = xalloc((size_t)a.RS * 4);
    a.nk = xalloc((size_t)a.RS * sizeof(int));
    a.pos = xalloc((size_t)a.R * sizeof(int));
    const float scale = 1.0f / sqrtf((float)hd);
    double attended = 0;
    for (int r = 0; r < a.R; r++) {
        a.pos[r] = keys - ROWS + r / G;
        attended += a.pos[r] + 1;
        for (int d = 0; d < hd; d++) {
            float x = frand() * 2 * scale;
            a.q[(size_t)r * (size_t)hd + (size_t)d] = x;
            a.qt[(size_t)d * (size_t)a.RS + (size_t)r] = x;
        }
    }
    printf("keys %d, hd %d, group %d (%d query rows), best of %d [median], GFLOP/s, 1 thread\n\n",
           keys, hd, G, a.R, reps);
    printf("| isa | cache | sgemm (main) | kernels, interleaved | kernels, head-major | qk alone | "
           "pv alone |\n|---|---|---|---|---|---|---|\n");
    static const char *const isas[] = {"scalar", "avx2", "avx512", "avx512bf16"};
    for (int isa = 0; isa < 4; isa++) {
        if (ik_init(isas[isa]) < 0)
            continue;
        for (int bf = 0; bf < 2; bf++) {
            a.bf16 = bf;
            /* columns: sgemm and kernels on main's layout, then kernels, qk, pv head-major */
            static const run_kind kinds[] = {RUN_SGEMM, RUN_KERNELS, RUN_KERNELS, RUN_QK, RUN_PV};
            double b[5], m[5];
            for (int col = 0; col < 5; col++) {
                const int lay = col >= 2;
                a.ldkv = lay ? hd : 2 * hd;
                a.kc = bf ? (const void *)kb[lay] : (const void *)kf[lay];
                a.vc = bf ? (const void *)vb[lay] : (const void *)vf[lay];
                const double flop = (kinds[col] >= RUN_QK ? 2.0 : 4.0) * hd * attended;
                measure(&a, kinds[col], isa == 0 ? 1 : reps, flop, &b[col], &m[col]);
            }
            printf("| %s | %s |", isas[isa], bf ? "bf16" : "f32");
            for (int col = 0; col < 5; col++)
                printf(" %.1f [%.1f] |", b[col], m[col]);
            printf("\n");
            fflush(stdout);
        }
    }
    for (int lay = 0; lay < 2; lay++) {
        free(kf[lay]);
        free(vf[lay]);
        free(kb[lay]);
        free(vb[lay]);
    }
    free(a.q);
    free(a.qt);
    free(a.s);
    free(a.kt);
    free(a.vt);
    free(a.acc);
    free(a.ml);
    free(a.m);
    free(a.l);
    free(a.c);
    free(a.nk);
    free(a.pos);
    return 0;
}
