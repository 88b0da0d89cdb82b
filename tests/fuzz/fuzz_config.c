/* fuzz_config.c - libFuzzer target: arbitrary bytes as a HF config.json. The parser must return
 * a status; a config it accepts must have the invariants the engine relies on (positive sizes,
 * kv heads dividing heads, an even head_dim, a known RoPE type), and its memory plan must be
 * computable without overflow traps (UBSan). */
#include "infer.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    infer_config c;
    int wb;
    char err[512];
    if (infer_config_parse((const char *)data, size, "fuzz", &c, &wb, err, sizeof err) != INFER_OK)
        return 0;
    if (c.dim <= 0 || c.hidden_dim <= 0 || c.n_layers <= 0 || c.n_heads <= 0 || c.n_kv_heads <= 0 ||
        c.n_heads % c.n_kv_heads || c.head_dim <= 0 || c.head_dim % 2 || c.vocab_size <= 0 ||
        c.rope_type < INFER_ROPE_DEFAULT || c.rope_type > INFER_ROPE_LLAMA3 || (wb != 2 && wb != 4))
        __builtin_trap();
    infer_plan p;
    infer_opts o = infer_opts_default();
    o.max_ctx = 131072;
    o.kv_dtype = INFER_DT_BF16;
    o.threads = 2;
    o.act_dtype = INFER_ACT_BF16;
    (void)infer_opts_check(&c, &o, 8, err, sizeof err);
    infer_plan_make(&c, wb, &o, 8, &p); /* computable even where infer would refuse the split */
    return 0;
}
