#!/usr/bin/env bash
# Decode over a cache longer than one attention segment (2048 keys): with 1 KV head and 5
# threads the keys are split over threads and merged in order; with 1 thread they run in turn.
# A 4500-token prompt and 6 greedy tokens: --logits-out identical bit for bit between
# --threads 1 and --threads 5 (bf16 KV cache too), and every row within 1e-4 of the float64
# reference (ref_forward.py, the prompt plus the generated ids teacher-forced).
# usage: test_decode_threads.sh LONGCTX
set -euo pipefail
LONGCTX=$1
HERE=$(cd "$(dirname "$0")" && pwd)/hf
. "$HERE/../../sanitized.sh"
N=4500 # prompt tokens: more than one 2048-key segment, so that decode splits the keys
if sanitized "$LONGCTX"; then
    N=2600
    echo "sanitizer build: a $N-token prompt instead of 4500 (the release build runs 4500)"
fi
PY=/usr/bin/python3
$PY -c 'import numpy' 2> /dev/null || { echo "SKIP: /usr/bin/python3 has no numpy"; exit 0; }
W=$(mktemp -d "${TMPDIR:-/tmp}/longctx-dec-XXXXXX")
trap 'rm -rf "$W"' EXIT
$PY "$HERE/gen_hf_model.py" "$W/m" --hidden 128 --intermediate 344 --heads 2 --kv-heads 1 \
    --vocab 512 --max-pos 8192 --rope-theta 500000 --seed 23 > /dev/null
$PY -c 'import numpy as np; print(",".join(map(str, np.random.default_rng(4).integers(3, 512, '$N'))))' > "$W/ids.txt"
for kv in f32 bf16; do
    for t in 1 5; do
        "$LONGCTX" infer --model "$W/m" --prompt-ids "@$W/ids.txt" --generate 6 --ignore-eos \
            --threads $t --kv-dtype $kv --logits-out "$W/$kv.$t.f32" \
            --logits-positions $((N - 1)) > "$W/gen.$kv.$t"
    done
    cmp "$W/$kv.1.f32" "$W/$kv.5.f32" || { echo "FAIL: $kv decode differs between 1 and 5 threads"; exit 1; }
    cmp "$W/gen.$kv.1" "$W/gen.$kv.5"
done
echo "decode: same bits with 1 and 5 threads (f32 and bf16 caches)"
all="$(cat "$W/ids.txt"),$(tr ' ' ',' < "$W/gen.f32.1" | cut -d, -f1-5)"
$PY "$HERE/ref_forward.py" "$W/m" --prompt-ids "$all" --positions $(seq -s, $((N - 1)) $((N + 4))) \
    --out "$W/ref.f32"
$PY "$HERE/compare_logits.py" "$W/f32.1.f32" "$W/ref.f32" --vocab 512 --rel 1e-4
echo "2 passed, 0 failed"
