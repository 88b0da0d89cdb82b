/* fuzz_safetensors.c - libFuzzer target: arbitrary bytes as a safetensors file. The header
 * parser must return a status, and every tensor it accepts must lie inside the file. */
#include "infer.h"

#include <stdint.h>
#include <stddef.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    infer_st *s;
    if (infer_st_parse(data, size, size, "fuzz", &s) == INFER_OK) {
        for (size_t i = 0; i < infer_st_count(s); i++) {
            const infer_tensor_info *t = infer_st_tensor(s, i);
            if (t->offset > size || t->bytes > size - t->offset)
                __builtin_trap();
        }
    }
    infer_st_free(s);
    return 0;
}
