#!/usr/bin/env bash
# `longctx infer` on HF Llama-layout models with random weights against the float64 numpy
# reference (ref_forward.py, written from HF transformers' Llama semantics; validated on the real
# stories260K checkpoint by test_hf_reference.sh). For each case: gen_hf_model.py writes the
# model into a temp dir, the engine runs
#   longctx infer --model DIR --prompt-ids LIST --logits-out OUT [extra]
# ref_forward.py computes the same logits, compare_logits.py checks
#   max over rows of max|got - want| / max|want| of the row  <=  tol
# (1e-4; 1e-2 with a bf16 KV cache). BF16 and F16 weights are widened exactly, so they too are
# held to 1e-4 (the issue asks 1e-2); the lossy --act-dtype bf16 is tested in
# test_prefill_paths.sh.
# usage: test_hf_models.sh LONGCTX
# env: HF_CASES=REGEX runs only the cases whose name matches (bash ERE);
#      HF_KEEP=1 keeps the work directory (model, ids, got/want logits, stderr per case);
#      HF_INFER_ARGS="..." is appended to every infer command (e.g. --kv-dtype f32 should the
#      engine's default KV cache become bf16: a bf16 cache measures ~3e-3 here, above 1e-4).
set -uo pipefail
LONGCTX=$1
HERE=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3
if ! $PY -c 'import numpy' 2> /dev/null; then
    echo "SKIP: $PY lacks numpy (the reference forward pass needs it)"
    exit 0
fi
W=$(mktemp -d "${TMPDIR:-/tmp}/longctx-hf-XXXXXX")
if [ "${HF_KEEP:-0}" = 1 ]; then echo "work directory: $W"; else trap 'rm -rf "$W"' EXIT; fi

# name | gen_hf_model.py options | prompt tokens | compared positions | extra infer options | tol
# Sizes: hidden 128-256, 2 layers, vocab 512-2048. hd = hidden/heads unless --head-dim.
# dynamic with T > max_pos: --ctx is set to 2T on purpose - the documented semantics make
# theta' depend on the prompt length T only, never on the cache capacity.
CASES=(
"mha_hd64_f32_1tok   |--hidden 256 --heads 4 --vocab 1024 --seed 1                                  |1    |all|                 |1e-4"
"mha_hd64_f32        |--hidden 256 --heads 4 --vocab 1024 --seed 2                                  |7    |all|                 |1e-4"
"gqa_hd64_f32_tied   |--hidden 256 --heads 4 --kv-heads 2 --tied --rms-eps 1e-6 --seed 3            |40   |all|                 |1e-4"
"gqa_hd128_f32_2shard|--hidden 256 --heads 2 --kv-heads 1 --vocab 2048 --shards 2 --seed 4          |64   |all|                 |1e-4"
"mha_hd128_bf16_3shard|--hidden 256 --heads 2 --vocab 512 --dtype BF16 --shards 3 --seed 5          |33   |all|                 |1e-4"
"gqa_hd64_bf16_tied  |--hidden 256 --heads 4 --kv-heads 1 --dtype BF16 --tied --seed 6             |50   |all|                 |1e-4"
"gqa_hd64_f16        |--hidden 256 --heads 4 --kv-heads 2 --vocab 1000 --dtype F16 --seed 7         |20   |all|                 |1e-4"
"gqa_headdim64_ne_hid|--hidden 128 --intermediate 344 --heads 4 --kv-heads 2 --head-dim 64 --seed 8 |30   |all|                 |1e-4"
"rope_abf_500k       |--hidden 256 --heads 4 --kv-heads 2 --rope-theta 500000 --seed 9              |300  |all|                 |1e-4"
"rope_linear4        |--hidden 256 --heads 4 --kv-heads 2 --rope-scaling {\"rope_type\":\"linear\",\"factor\":4.0} --seed 10|150|all| |1e-4"
"rope_dynamic4_over  |--hidden 256 --heads 4 --kv-heads 2 --max-pos 64 --rope-scaling {\"rope_type\":\"dynamic\",\"factor\":4.0} --seed 11|200|all|--ctx 400|1e-4"
"rope_dynamic4_under |--hidden 256 --heads 4 --kv-heads 2 --max-pos 512 --rope-scaling {\"rope_type\":\"dynamic\",\"factor\":4.0} --seed 12|100|all| |1e-4"
"rope_yarn4          |--hidden 256 --heads 4 --kv-heads 2 --max-pos 1024 --rope-scaling {\"rope_type\":\"yarn\",\"factor\":4.0,\"original_max_position_embeddings\":256} --seed 13|400|all| |1e-4"
"rope_llama3_8       |--hidden 256 --heads 4 --kv-heads 2 --rope-theta 500000 --max-pos 512 --rope-scaling {\"rope_type\":\"llama3\",\"factor\":8.0,\"low_freq_factor\":1.0,\"high_freq_factor\":4.0,\"original_max_position_embeddings\":64} --seed 14|300|all| |1e-4"
"mmap_load_bf16      |--hidden 256 --heads 4 --kv-heads 2 --dtype BF16 --shards 2 --seed 20        |40   |all|--load mmap        |1e-4"
"kv_bf16             |--hidden 256 --heads 4 --kv-heads 2 --seed 15                                 |100  |all|--kv-dtype bf16    |1e-2"
"prefill_chunk7      |--hidden 256 --heads 4 --kv-heads 2 --seed 16                                 |50   |all|--prefill-chunk 7  |1e-4"
"chunk7_dynamic_over |--hidden 256 --heads 4 --kv-heads 2 --max-pos 32 --rope-scaling {\"rope_type\":\"dynamic\",\"factor\":4.0} --seed 17|61|all|--prefill-chunk 7 --ctx 122|1e-4"
"long4k_yarn4        |--hidden 128 --intermediate 344 --heads 2 --kv-heads 1 --vocab 512 --max-pos 4096 --rope-scaling {\"rope_type\":\"yarn\",\"factor\":4.0,\"original_max_position_embeddings\":1024} --seed 18|4096|all| |1e-4"
"long16k_llama3      |--hidden 128 --intermediate 344 --heads 2 --kv-heads 1 --vocab 512 --rope-theta 500000 --max-pos 16384 --rope-scaling {\"rope_type\":\"llama3\",\"factor\":8.0,\"low_freq_factor\":1.0,\"high_freq_factor\":4.0,\"original_max_position_embeddings\":2048} --seed 19|16384|0,1,100,2047,2048,4095,8191,12000,16382,16383| |1e-4"
)

trim() { local s=$1; s=${s#"${s%%[![:space:]]*}"}; s=${s%"${s##*[![:space:]]}"}; printf '%s' "$s"; }

. "$HERE/../../sanitized.sh"
pass=0 fail=0
for line in "${CASES[@]}"; do
    IFS='|' read -r name gen T pos extra tol <<< "$line"
    name=$(trim "$name"); T=$(trim "$T"); pos=$(trim "$pos"); tol=$(trim "$tol")
    extra=$(trim "$extra")
    if [ -n "${HF_CASES:-}" ] && ! [[ $name =~ $HF_CASES ]]; then continue; fi
    if [ "$T" -gt 4096 ] && sanitized "$LONGCTX"; then
        echo "SKIP $name: $T tokens in a sanitizer build (about 150 s; the release build runs it)"
        continue
    fi
    D=$W/$name
    mkdir -p "$D"
    # shellcheck disable=SC2086  # gen options are words (the JSON has no spaces)
    if ! $PY "$HERE/gen_hf_model.py" "$D/model" $gen 2> "$D/gen.err"; then
        echo "FAIL $name: gen_hf_model.py: $(tail -n 3 "$D/gen.err")"; fail=$((fail + 1)); continue
    fi
    vocab=$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["vocab_size"])' "$D/model/config.json")
    seed=${gen##*--seed }; seed=${seed%% *}
    $PY - "$T" "$vocab" "$seed" "$D" <<'PY'
import sys, numpy as np
T, V, seed, d = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
ids = np.random.default_rng(1000 + seed).integers(3, V, T)
ids[0] = 1  # BOS
ids.astype("<u4").tofile(d + "/ids.u32")
open(d + "/ids.txt", "w").write(",".join(map(str, ids.tolist())))
PY
    t0=$(date +%s.%N)
    # shellcheck disable=SC2086
    "$LONGCTX" infer --model "$D/model" --prompt-ids "$(cat "$D/ids.txt")" \
        --logits-out "$D/got.f32" $extra ${HF_INFER_ARGS:-} > "$D/infer.out" 2> "$D/infer.err"
    rc=$?
    t1=$(date +%s.%N)
    if [ $rc -ne 0 ]; then
        echo "FAIL $name: longctx infer exit $rc; stderr tail:"
        tail -n 5 "$D/infer.err" | sed 's/^/    /'
        fail=$((fail + 1)); continue
    fi
    if ! $PY "$HERE/ref_forward.py" "$D/model" --ids-file "$D/ids.u32" --out "$D/want.f32" \
            --positions "$pos" 2> "$D/ref.err"; then
        echo "FAIL $name: ref_forward.py: $(tail -n 3 "$D/ref.err")"; fail=$((fail + 1)); continue
    fi
    rows=()
    [ "$pos" != all ] && rows=(--rows "$pos")
    msg=$($PY "$HERE/compare_logits.py" "$D/got.f32" "$D/want.f32" --vocab "$vocab" --rel "$tol" "${rows[@]}")
    rc=$?
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
    if [ $rc -eq 0 ]; then
        echo "PASS $name ($T tokens${extra:+, $extra}): $msg; engine ${secs}s"; pass=$((pass + 1))
    else
        echo "FAIL $name ($T tokens${extra:+, $extra}): $msg"; fail=$((fail + 1))
    fi
    [ "${HF_KEEP:-0}" = 1 ] || rm -rf "$D"
done
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
