#!/usr/bin/env bash
# Dynamic NTK while generating. The documented choice (= HF transformers with a KV cache): the
# prompt's T tokens all use theta'(T); each generated token at position p uses theta'(p + 1)
# for its query and key; keys already cached keep theirs. A random model with
# max_position_embeddings 32, a 40-token prompt, 16 greedy tokens: every --logits-out row
# (prompt and generated) against ref_forward.py --decode-from 40 within 1e-4; and, so that the
# test can fail, the last row against the other choice (every key re-rotated with the newest
# theta'(55): the reference without --decode-from, last position) must differ by more than 1e-3.
# usage: test_dynamic_decode.sh LONGCTX
set -euo pipefail
LONGCTX=$1
HERE=$(cd "$(dirname "$0")" && pwd)/hf
PY=/usr/bin/python3
$PY -c 'import numpy' 2> /dev/null || { echo "SKIP: /usr/bin/python3 has no numpy"; exit 0; }
W=$(mktemp -d "${TMPDIR:-/tmp}/longctx-dyn-XXXXXX")
trap 'rm -rf "$W"' EXIT
$PY "$HERE/gen_hf_model.py" "$W/m" --hidden 128 --intermediate 344 --heads 4 --kv-heads 2 \
    --vocab 512 --max-pos 32 --rope-scaling '{"rope_type":"dynamic","factor":4.0}' --seed 21 > /dev/null
ids=$($PY -c 'import numpy as np; print(",".join(map(str, np.random.default_rng(9).integers(3, 512, 40))))')
gen=$("$LONGCTX" infer --model "$W/m" --prompt-ids "$ids" --generate 16 --ignore-eos --logits-out "$W/got.f32")
all="$ids,$(echo "$gen" | tr ' ' ',' | cut -d, -f1-15)"
$PY "$HERE/ref_forward.py" "$W/m" --prompt-ids "$all" --decode-from 40 --out "$W/want.f32"
$PY "$HERE/ref_forward.py" "$W/m" --prompt-ids "$all" --positions last --out "$W/static.f32"
$PY "$HERE/compare_logits.py" "$W/got.f32" "$W/want.f32" --vocab 512 --rel 1e-4
if $PY "$HERE/compare_logits.py" "$W/got.f32" "$W/static.f32" --vocab 512 --rel 1e-3 --rows 54; then
    echo "FAIL: the generated rows do not depend on the cached-key semantics"; exit 1
fi
echo "dynamic NTK decode: 55 rows match HF's cache semantics; re-rotating cached keys differs"
echo "2 passed, 0 failed"
