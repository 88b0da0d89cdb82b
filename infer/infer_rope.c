/* infer_rope.c - RoPE inverse frequencies for each scaling type, in double precision, from the
 * formulas of HF transformers' modeling_rope_utils (REFERENCE.md section 2). */
#include "infer_internal.h"

#include <math.h>

static const double PI = 3.14159265358979323846;

/* YaRN: the dimension index at which a frequency turns num_rot times over the original
 * context */
static double yarn_dim(double num_rot, int dim, double base, double orig) {
    return dim * log(orig / (num_rot * 2 * PI)) / (2 * log(base));
}

void infer_rope_freqs(const infer_config *c, int rot_dim, int64_t seq_len, double *inv_freq,
                      double *score_mult) {
    const int half = rot_dim / 2;
    double base = c->rope_theta, s = c->rope_factor > 0 ? c->rope_factor : 1.0;
    const double orig = c->rope_orig_max > 0 ? c->rope_orig_max : c->seq_len;
    *score_mult = 1.0;
    if (c->rope_type == INFER_ROPE_DYNAMIC && c->seq_len > 0 && seq_len > c->seq_len)
        base *= pow(s * (double)seq_len / c->seq_len - (s - 1), (double)rot_dim / (rot_dim - 2));
    for (int j = 0; j < half; j++)
        inv_freq[j] = 1.0 / pow(base, (double)(2 * j) / rot_dim);
    switch (c->rope_type) {
    case INFER_ROPE_LINEAR:
        for (int j = 0; j < half; j++)
            inv_freq[j] /= s;
        break;
    case INFER_ROPE_LLAMA3: {
        const double lo = c->rope_low_freq, hi = c->rope_high_freq;
        const double lo_wl = orig / lo, hi_wl = orig / hi;
        for (int j = 0; j < half; j++) {
            double w = inv_freq[j], wl = 2 * PI / w;
            if (wl > lo_wl) {
                inv_freq[j] = w / s;
            } else if (wl >= hi_wl) { /* between the two: a smooth mix */
                double sm = (orig / wl - lo) / (hi - lo);
                inv_freq[j] = (1 - sm) * w / s + sm * w;
            }
        }
        break;
    }
    case INFER_ROPE_YARN: {
        double lo = floor(yarn_dim(c->rope_beta_fast, rot_dim, base, orig));
        double hi = ceil(yarn_dim(c->rope_beta_slow, rot_dim, base, orig));
        lo = lo < 0 ? 0 : lo;
        hi = hi > rot_dim - 1 ? rot_dim - 1 : hi;
        if (lo == hi)
            hi += 0.001;
        for (int j = 0; j < half; j++) {
            double ramp = (j - lo) / (hi - lo);
            ramp = ramp < 0 ? 0 : ramp > 1 ? 1 : ramp;
            double extra = 1 - ramp; /* weight of the unscaled frequency */
            inv_freq[j] = inv_freq[j] / s * (1 - extra) + inv_freq[j] * extra;
        }
        double af = c->rope_attn_factor > 0 ? c->rope_attn_factor : s > 1 ? 0.1 * log(s) + 1 : 1;
        *score_mult = af * af; /* cos and sin are scaled by af, in q and in k */
        break;
    }
    default:
        break;
    }
}
