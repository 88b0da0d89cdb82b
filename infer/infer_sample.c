/* infer_sample.c - choosing the next token from a row of logits (greedy, temperature, top-k,
 * top-p), the log-probability of a token, and the check that a row is finite. Moved from
 * infer_main.c; the same draws bit for bit. */
#include "infer.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* the layout of MPI_FLOAT_INT, so that candidates travel as they are */
typedef struct {
    float p;
    int id;
} prob;

static uint64_t rng_next(uint64_t *s) { /* splitmix64 */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static int cmp_prob(const void *a, const void *b) {
    const prob *x = a, *y = b;
    return x->p > y->p ? -1 : x->p < y->p ? 1 : x->id - y->id;
}

static int draw(const prob *work, int keep, double sum, float top_p, uint64_t *rng);

int infer_sample_check(double temperature, long top_k, double top_p, const char **field) {
    *field = !(temperature >= 0 && isfinite(temperature)) ? "temperature"
             : top_k < 0                                  ? "top_k"
             : !(top_p > 0 && top_p <= 1)                 ? "top_p"
                                                          : NULL;
    return *field ? INFER_ERR_ARG : INFER_OK;
}

size_t infer_sample_work_bytes(int n) {
    return (size_t)(n > 0 ? n : 1) * sizeof(prob);
}

int infer_sample(const float *logits, int n, float temperature, int top_k, float top_p,
                 uint64_t *rng, void *work_bytes) {
    prob *work = work_bytes;
    int best = 0;
    for (int i = 1; i < n; i++)
        if (logits[i] > logits[best])
            best = i;
    if (temperature <= 0)
        return best;
    double sum = 0;
    for (int i = 0; i < n; i++) {
        work[i].p = (float)exp((logits[i] - logits[best]) / temperature);
        work[i].id = i;
        sum += work[i].p;
    }
    qsort(work, (size_t)n, sizeof *work, cmp_prob);
    return draw(work, top_k > 0 && top_k < n ? top_k : n, sum, top_p, rng);
}

int infer_sample_split(const float *lg, int n, int off, MPI_Comm comm, float temperature, int top_k,
                       float top_p, uint64_t *rng, void *work_bytes, uint32_t *next) {
    struct {
        double v;
        int i;
    } mine = {-INFINITY, INT_MAX}, best; /* MPI_DOUBLE_INT */
    if (infer_logits_find_nonfinite(lg, (size_t)n) >= 0) {
        mine.v = INFINITY; /* no finite logit is: the reduction says some rank failed */
        mine.i = -1;
    } else if (n > 0) {
        int b = 0;
        for (int i = 1; i < n; i++)
            if (lg[i] > lg[b])
                b = i;
        mine.v = lg[b];
        mine.i = off + b;
    }
    /* ties go to the lowest id, as infer_sample's first maximum */
    MPI_Allreduce(&mine, &best, 1, MPI_DOUBLE_INT, MPI_MAXLOC, comm);
    if (isinf(best.v))
        return INFER_ERR_NUMERIC;
    if (temperature <= 0) {
        *next = (uint32_t)best.i;
        return INFER_OK;
    }
    if (top_k <= 0)
        return INFER_ERR_ARG;
    int P;
    MPI_Comm_size(comm, &P);
    prob *w = work_bytes, *send = w + (n > 0 ? n : 1), *cand = send + top_k;
    double *sums = (double *)(void *)(cand + (size_t)top_k * (size_t)P), sum = 0;
    const float mx = (float)best.v;
    for (int i = 0; i < n; i++) {
        w[i].p = (float)exp((lg[i] - mx) / temperature);
        w[i].id = off + i;
        sum += w[i].p;
    }
    qsort(w, (size_t)n, sizeof *w, cmp_prob);
    for (int i = 0; i < top_k; i++) { /* padding sorts last and is never kept */
        send[i].p = i < n ? w[i].p : -1.0f;
        send[i].id = i < n ? w[i].id : INT_MAX;
    }
    MPI_Allgather(send, top_k, MPI_FLOAT_INT, cand, top_k, MPI_FLOAT_INT, comm);
    MPI_Allgather(&sum, 1, MPI_DOUBLE, sums, 1, MPI_DOUBLE, comm);
    double total = 0;
    for (int r = 0; r < P; r++) /* rank order: the same bits on every rank */
        total += sums[r];
    const size_t nc = (size_t)top_k * (size_t)P;
    qsort(cand, nc, sizeof *cand, cmp_prob);
    int keep = 0;
    while (keep < top_k && cand[keep].p >= 0)
        keep++;
    *next = (uint32_t)draw(cand, keep, total, top_p, rng);
    return INFER_OK;
}

size_t infer_sample_split_work_bytes(int n_most, int top_k, int n_ranks) {
    const size_t k = (size_t)(top_k > 0 ? top_k : 0);
    return (size_t)(n_most > 0 ? n_most : 1) * sizeof(prob) + k * sizeof(prob) +
           k * (size_t)n_ranks * sizeof(prob) + (size_t)n_ranks * sizeof(double) + sizeof(double);
}

/* the top_p cut of the keep most likely of work (sorted, sum: the normaliser of all) and the
 * draw */
static int draw(const prob *work, int keep, double sum, float top_p, uint64_t *rng) {
    double kept = 0;
    for (int i = 0; i < keep; i++) {
        kept += work[i].p / sum;
        if (kept >= top_p) {
            keep = i + 1;
            break;
        }
    }
    double total = 0;
    for (int i = 0; i < keep; i++)
        total += work[i].p;
    double r = (double)(rng_next(rng) >> 11) * 0x1.0p-53 * total;
    for (int i = 0; i < keep; i++) {
        r -= work[i].p;
        if (r <= 0)
            return work[i].id;
    }
    return work[keep - 1].id;
}

double infer_log_prob(const float *lg, size_t n, uint32_t id) {
    double mx = lg[0], se = 0;
    for (size_t i = 1; i < n; i++)
        mx = lg[i] > mx ? lg[i] : mx;
    for (size_t i = 0; i < n; i++)
        se += exp((double)lg[i] - mx);
    return (double)lg[id] - mx - log(se);
}

int64_t infer_logits_find_nonfinite(const float *lg, size_t n) {
    /* the product is NaN when any logit is NaN or infinite: one multiply per logit, and
     * the position of the first only when something is wrong */
    float acc = 0;
    for (size_t i = 0; i < n; i++)
        acc += lg[i] * 0.0f;
    if (acc == 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(lg[i]))
            return (int64_t)i;
    return -1;
}
