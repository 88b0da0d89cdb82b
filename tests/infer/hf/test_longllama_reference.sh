#!/usr/bin/env bash
# ref_longllama.py checked on its own (no engine): its selftest (bf16 rounding by hand, one
# softmax over [local ; memory] by hand, top-k, a bf16 KV cache), and against ref_forward.py
# (HF Llama) on a LongLLaMA-layout model: in the first window the two must agree (1e-6:
# LongLLaMA's fp32 inv_freq), after it they must differ (> 1e-2: memory layers see earlier windows).
# usage: test_longllama_reference.sh
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3
$PY -c 'import numpy' 2> /dev/null || { echo "SKIP: /usr/bin/python3 has no numpy"; exit 0; }
W=$(mktemp -d "${TMPDIR:-/tmp}/longctx-llref-XXXXXX")
trap 'rm -rf "$W"' EXIT
$PY "$HERE/ref_longllama.py" --selftest
$PY "$HERE/gen_hf_model.py" "$W/m" --hidden 200 --intermediate 344 --heads 2 --vocab 512 \
    --max-pos 32 --mem-layers 1 --last-context 16 --seed 3
mkdir "$W/plain" && cp "$W/m/model.safetensors" "$W/plain/"
$PY - "$W/m/config.json" > "$W/plain/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
for k in ("mem_layers", "last_context_length", "mem_dtype", "mem_positionals",
          "mem_attention_grouping", "torch_attention", "gradient_checkpoint_every_ith"):
    c.pop(k)
c["model_type"] = "llama"
print(json.dumps(c))
PY
ids=$($PY -c 'import numpy as np; print(",".join(map(str, np.random.default_rng(9).integers(3, 512, 100))))')
$PY "$HERE/ref_longllama.py" "$W/m" --prompt-ids "$ids" --out "$W/ll.f32"
$PY "$HERE/ref_forward.py" "$W/plain" --prompt-ids "$ids" --out "$W/plain.f32"
rows=$(seq -s, 0 31)
$PY "$HERE/compare_logits.py" "$W/ll.f32" "$W/plain.f32" --vocab 512 --rel 1e-6 --rows "$rows"
if $PY "$HERE/compare_logits.py" "$W/ll.f32" "$W/plain.f32" --vocab 512 --rel 1e-2 --rows 32,50,99; then
    echo "FAIL: after the first window LongLLaMA equals a plain Llama"; exit 1
fi
echo "ref_longllama: first window = Llama (head_dim 100), later windows differ"
