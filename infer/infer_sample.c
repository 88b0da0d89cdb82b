/* infer_sample.c - choosing the next token from a row of logits (greedy, temperature, top-k,
 * top-p), the log-probability of a token, and the check that a row is finite. Moved from
 * infer_main.c; the same draws bit for bit. */
#include "infer.h"

#include <math.h>
#include <stdlib.h>

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
    int keep = top_k > 0 && top_k < n ? top_k : n;
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
