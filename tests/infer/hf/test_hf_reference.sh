#!/usr/bin/env bash
# Validates the independent reference used by test_hf_models.sh (no engine involved):
#  1. ref_forward.py --selftest: RoPE inverse frequencies of every rope_scaling type against
#     values worked out by hand, rotate_half pairing, blocked attention, safetensors dtypes.
#  2. The real trained stories260K (llama2.c, adjacent-pair RoPE) converted to HF layout by
#     llama2c_to_hf.py (q/k rows permuted to rotate_half order), single file and 3 shards:
#     ref_forward.py's logits against reference_logits.f32 within 1e-4 relative; and the same
#     conversion without the permutation must fail (the check is sensitive to the pairing).
#  3. gen_hf_model.py: BF16 weights are the round-to-nearest of the F32 ones of the same seed,
#     head_dim appears in config.json only when it differs from hidden/heads.
# usage: test_hf_reference.sh
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ASSETS=${LONGCTX_ASSETS:-$(cd "$HERE/../../../.." && pwd)/shared/assets}
PY=/usr/bin/python3
if ! $PY -c 'import numpy' 2> /dev/null; then
    echo "SKIP: $PY lacks numpy"
    exit 0
fi
W=$(mktemp -d "${TMPDIR:-/tmp}/longctx-hfref-XXXXXX")
trap 'rm -rf "$W"' EXIT
n=0

$PY "$HERE/ref_forward.py" --selftest > "$W/selftest" || { cat "$W/selftest"; exit 1; }
tail -n 1 "$W/selftest"
n=$((n + 1))

D=$ASSETS/models/stories260K
if [ -f "$D/reference.json" ]; then
    ids=$($PY -c 'import json,sys; print(",".join(map(str, json.load(open(sys.argv[1]))["input_ids"])))' "$D/reference.json")
    for shards in 1 3; do
        $PY "$HERE/llama2c_to_hf.py" "$D/stories260K.bin" "$W/s$shards" --shards $shards
        $PY "$HERE/ref_forward.py" "$W/s$shards" --prompt-ids "$ids" --out "$W/s$shards.f32"
        echo "stories260K ($shards file(s)): $($PY "$HERE/compare_logits.py" "$W/s$shards.f32" "$D/reference_logits.f32" --vocab 512 --rel 1e-4)"
        n=$((n + 1))
    done
    # negative control: the adjacent-pair weights read with rotate_half pairing must not match
    sed -e 's/permute_rows(wq\[i\], nh)/wq[i]/' -e 's/permute_rows(wk\[i\], nkv)/wk[i]/' \
        "$HERE/llama2c_to_hf.py" > "$W/noperm.py"
    cp "$HERE/gen_hf_model.py" "$W/"
    $PY "$W/noperm.py" "$D/stories260K.bin" "$W/np"
    $PY "$HERE/ref_forward.py" "$W/np" --prompt-ids "$ids" --out "$W/np.f32"
    if msg=$($PY "$HERE/compare_logits.py" "$W/np.f32" "$D/reference_logits.f32" --vocab 512 --rel 1e-4); then
        echo "unpermuted q/k matched the reference: $msg"; exit 1
    fi
    echo "stories260K without the q/k permutation: $msg (must fail: it does)"
    n=$((n + 1))
else
    echo "SKIP: $D missing (stories260K check)"
fi

$PY "$HERE/gen_hf_model.py" "$W/g32" --hidden 128 --heads 4 --kv-heads 2 --head-dim 64 --vocab 512 --seed 5
$PY "$HERE/gen_hf_model.py" "$W/g16" --hidden 128 --heads 4 --kv-heads 2 --head-dim 64 --vocab 512 --seed 5 --dtype BF16 --shards 2
$PY "$HERE/gen_hf_model.py" "$W/g8" --hidden 128 --heads 4 --vocab 512 --seed 5
$PY - "$W" "$HERE" <<'PY'
import json, sys, numpy as np
W, here = sys.argv[1], sys.argv[2]
sys.path.insert(0, here)
from ref_forward import Weights
a, b = Weights(W + "/g32"), Weights(W + "/g16")
assert sorted(a.where) == sorted(b.where) and "lm_head.weight" in a
worst = 0.0
for n in a.where:
    x, y = a.get(n), b.get(n)
    bits = y.astype(np.float32).view(np.uint32)
    assert (bits & 0xFFFF == 0).all(), n
    ulp = 2.0 ** (np.floor(np.log2(np.maximum(np.abs(y), 1e-30))) - 7)
    assert (np.abs(x - y) <= ulp / 2).all(), n  # nearest bf16
    worst = max(worst, float((np.abs(x - y) / np.abs(x)).max()))
c = json.load(open(W + "/g16/config.json"))
assert c["head_dim"] == 64 and c["torch_dtype"] == "bfloat16" and c["num_key_value_heads"] == 2
assert "head_dim" not in json.load(open(W + "/g8/config.json"))
idx = json.load(open(W + "/g16/model.safetensors.index.json"))
assert len(set(idx["weight_map"].values())) == 2
print("gen_hf_model: BF16 = nearest of F32 (worst rel %.2g), 2 shards, head_dim field ok" % worst)
PY
n=$((n + 1))
echo "$n passed, 0 failed"
