#!/usr/bin/env bash
# Tensor parallelism on HF-layout test models (gen_hf_model.py, random weights): test_tp_forward
# loads each whole on one rank and split over the mpirun ranks, and holds the split logits of
# every prefill and decode position within 1e-5 relative of one rank's, the greedy and top-5 ids
# equal, the same bits on every rank and run to run. Models: GQA with uneven MLP and vocabulary
# slices, MHA, BF16 and F16 weights, tied embeddings, two shards, and every RoPE type; at TP 2, 4
# and 8 (TP 4 and 8 replicate the 2 KV heads of the GQA models); and the 2D prefill (PSGEMM on a
# BLACS grid, blocks of 16) on the grids 1x2, 2x1 and 2x2 (np:rows in GRIDS).
# usage: test_tp_models.sh TEST_TP_FORWARD [NPS="2 4 8" [GRIDS="2:1 2:2 4:2"]]
set -uo pipefail
BIN=$1
NPS=${2:-"2 4 8"}
GRIDS=${3-"2:1 2:2 4:2"}
HERE=$(cd "$(dirname "$0")" && pwd)/hf
PY=/usr/bin/python3
$PY -c 'import numpy' 2> /dev/null || { echo "SKIP: /usr/bin/python3 has no numpy"; exit 0; }
W=$(mktemp -d "${TMPDIR:-/tmp}/longctx-tpm-XXXXXX")
trap 'rm -rf "$W"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
# name | gen_hf_model.py options (8 query heads: TP 8 divides them)
CASES=(
"gqa_uneven |--hidden 256 --intermediate 700 --heads 8 --kv-heads 2 --vocab 1003 --seed 41"
"mha        |--hidden 256 --intermediate 688 --heads 8 --kv-heads 8 --vocab 1024 --seed 42"
"bf16_tied  |--hidden 256 --heads 8 --kv-heads 4 --dtype BF16 --tied --seed 43"
"f16_shards |--hidden 256 --heads 8 --kv-heads 2 --dtype F16 --shards 2 --seed 44"
"hd_wide    |--hidden 256 --heads 8 --kv-heads 2 --head-dim 64 --seed 45"
"linear4    |--hidden 256 --heads 8 --kv-heads 2 --rope-scaling {\"rope_type\":\"linear\",\"factor\":4.0} --seed 46"
"dynamic4   |--hidden 256 --heads 8 --kv-heads 2 --max-pos 32 --rope-scaling {\"rope_type\":\"dynamic\",\"factor\":4.0} --seed 47"
"yarn4      |--hidden 256 --heads 8 --kv-heads 2 --max-pos 1024 --rope-scaling {\"rope_type\":\"yarn\",\"factor\":4.0,\"original_max_position_embeddings\":256} --seed 48"
"llama3_8   |--hidden 256 --heads 8 --kv-heads 2 --rope-theta 500000 --max-pos 512 --rope-scaling {\"rope_type\":\"llama3\",\"factor\":8.0,\"low_freq_factor\":1.0,\"high_freq_factor\":4.0,\"original_max_position_embeddings\":64} --seed 49"
)
fail=0 runs=0
for c in "${CASES[@]}"; do
    name=$(echo "${c%%|*}" | tr -d ' ')
    gen=${c#*|}
    D=$W/$name
    # shellcheck disable=SC2086
    if ! $PY "$HERE/gen_hf_model.py" "$D" $gen > /dev/null 2> "$W/gen.err"; then
        echo "FAIL $name: gen_hf_model.py: $(tail -n 3 "$W/gen.err")"; fail=$((fail + 1)); continue
    fi
    for run in $NPS $GRIDS; do
        np=${run%%:*} grid=""
        [ "$run" != "$np" ] && grid="f32 - ${run#*:} 16"
        runs=$((runs + 1))
        # shellcheck disable=SC2086
        if out=$(mpirun -np "$np" --oversubscribe "$BIN" "$D" $grid 2>&1) && echo "$out" | grep -q "0 failed"; then
            echo "ok   $name $(echo "$out" | grep -m1 'worst relative')"
        else
            echo "FAIL $name tp $np ${grid:+grid rows ${run#*:}}:"; echo "$out" | grep -v "checks passed, 0" | head -20
            fail=$((fail + 1))
        fi
    done
done
echo "test_tp_models: $runs runs, $fail failed"
[ "$fail" -eq 0 ] && [ "$runs" -gt 0 ]
