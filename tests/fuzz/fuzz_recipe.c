/* fuzz_recipe.c - libFuzzer target: arbitrary bytes as a prep recipe file (JSON). The loader
 * must return a status and an error message; a recipe it accepts must be one prep can run:
 * at least one sequence length, each > 0, domain weights finite and >= 0, length buckets in
 * increasing order. */
#include "fuzz_file.h"
#include "prep.h"

#include <math.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[256], err[1024];
    if (fuzz_file_write("recipe", ".json", data, size, path, sizeof path) != 0)
        return 0;
    static prep_recipe r; /* about 100 KB */
    memset(&r, 0, sizeof r);
    err[0] = '\0';
    int st = prep_recipe_load(path, &r, err, sizeof err);
    unlink(path);
    if (st != PREP_OK) {
        if (!err[0])
            __builtin_trap(); /* a refusal says why */
        return 0;
    }
    if (r.n_seq_lens < 1 || r.n_seq_lens > PREP_MAX_SEQ_LENS || r.n_edges < 0 ||
        r.n_edges > PREP_MAX_BUCKETS || r.n_domains < 0 || r.n_domains > PREP_MAX_DOMAINS)
        __builtin_trap();
    for (int i = 0; i < r.n_seq_lens; i++)
        if (r.seq_lens[i] == 0)
            __builtin_trap();
    for (int b = 0; b < r.n_edges; b++)
        if ((b > 0 && r.edges[b] <= r.edges[b - 1]) || !isfinite(r.weights[b]) || r.weights[b] < 0)
            __builtin_trap();
    for (int d = 0; d < r.n_domains; d++)
        if (!isfinite(r.domains[d].share) || r.domains[d].share < 0)
            __builtin_trap();
    return 0;
}
