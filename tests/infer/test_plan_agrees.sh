#!/usr/bin/env bash
# `longctx plan` and what `longctx infer` and `perplexity` allocate, with the same flags: the KV
# cache and activation bytes in plan's JSON equal the sums of infer_state_create's buffers
# (the --timings line's kv_bytes and act_bytes), for the defaults (one infer_opts: an f32 KV
# cache everywhere) and for other chunks, threads, contexts and KV dtypes. stories260K
# (../shared/assets); plan reads the same .bin. Also at TP 2, 4 and 8 under mpirun.
# usage: test_plan_agrees.sh LONGCTX
set -euo pipefail
LONGCTX=$1
HERE=$(cd "$(dirname "$0")" && pwd)
ASSETS=${LONGCTX_ASSETS:-$(cd "$HERE/../../.." && pwd)/shared/assets}
M=$ASSETS/models/stories260K/stories260K.bin
[ -f "$M" ] || { echo "SKIP: $M missing"; exit 0; }
PY=/usr/bin/python3
W=$(mktemp -d "${TMPDIR:-/tmp}/longctx-agree-XXXXXX")
trap 'rm -rf "$W"' EXIT
$PY -c 'print("{\"ids\": [%s]}" % ", ".join(str(1 + i % 500) for i in range(300)))' > "$W/doc.jsonl"
n=0
check() { # what plan-json timings-line
    local want got
    want=$($PY -c 'import json,sys; p=json.loads(sys.argv[1])["per_rank"]; print(p["kv_cache_bytes"], p["activation_bytes"])' "$2")
    got=$(sed -n 's/.* kv_bytes=\([0-9]*\) act_bytes=\([0-9]*\).*/\1 \2/p' <<< "$3")
    [ -n "$got" ] && [ "$want" = "$got" ] || { echo "FAIL $1: plan '$want', allocated '$got'"; exit 1; }
    n=$((n + 1))
}
# ctx, then the run options both commands take
for opts in "64" "64 --prefill-chunk 16 --threads 2" "200 --kv-dtype bf16 --prefill-chunk 100" \
    "3000 --threads 3 --kv-dtype f32" "5000 --prefill-chunk 1024"; do
    ctx=${opts%% *}
    rest=${opts#"$ctx"}
    plan=$("$LONGCTX" plan --model "$M" --ctx "$ctx" $rest)
    "$LONGCTX" infer --model "$M" --prompt-ids 1,2,3 --ctx "$ctx" $rest --timings \
        > /dev/null 2> "$W/infer.err"
    check "infer --ctx $opts" "$plan" "$(grep timings "$W/infer.err")"
    "$LONGCTX" perplexity --model "$M" --input "$W/doc.jsonl" --ctx "$ctx" $rest --timings \
        > /dev/null 2> "$W/ppl.err"
    check "perplexity --ctx $opts" "$plan" "$(grep timings "$W/ppl.err")"
done
# tensor parallelism: plan --tp P against rank 0 of mpirun -np P (TP 4 and 8: one KV head per
# rank, replicated; the gathered logits' buffers)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
for tp in 2 4 8; do
    opts="--ctx 300 --prefill-chunk 64 --threads 1"
    plan=$("$LONGCTX" plan --model "$M" --tp "$tp" $opts)
    mpirun -np "$tp" --oversubscribe "$LONGCTX" infer --model "$M" --prompt-ids 1,2,3 $opts \
        --timings > /dev/null 2> "$W/tp.err"
    check "infer tp $tp" "$plan" "$(grep timings "$W/tp.err")"
    mpirun -np "$tp" --oversubscribe "$LONGCTX" perplexity --model "$M" --input "$W/doc.jsonl" \
        $opts --timings > /dev/null 2> "$W/tp.err"
    check "perplexity tp $tp" "$plan" "$(grep timings "$W/tp.err")"
done
# 2D prefill: plan --tp-grid's f32 weight copies and grid buffers against rank 0's
# (grid_weight_bytes, grid_act_bytes on the --timings line), blocks of 8 and the default 64
check_grid() { # what plan-json timings-line
    local want got
    want=$($PY -c 'import json,sys; g=json.loads(sys.argv[1])["grid"]; print(g["f32_weight_bytes"], g["act_bytes"])' "$2")
    got=$(sed -n 's/.* grid_weight_bytes=\([0-9]*\) grid_act_bytes=\([0-9]*\).*/\1 \2/p' <<< "$3")
    [ -n "$got" ] && [ "$want" = "$got" ] || { echo "FAIL $1: plan '$want', allocated '$got'"; exit 1; }
    n=$((n + 1))
}
for g in "2 1x2 8" "2 2x1 8" "4 2x2 8" "4 2x2 64" "8 2x4 8"; do
    set -- $g
    opts="--ctx 300 --prefill-chunk 100 --threads 1 --tp-grid $2 --grid-block $3"
    plan=$("$LONGCTX" plan --model "$M" $opts)
    mpirun -np "$1" --oversubscribe "$LONGCTX" infer --model "$M" --prompt-ids 1,2,3 $opts \
        --timings > /dev/null 2> "$W/tp.err"
    check "infer grid $2 nb $3" "$plan" "$(grep timings "$W/tp.err")"
    check_grid "infer grid $2 nb $3" "$plan" "$(grep timings "$W/tp.err")"
done
echo "$n passed, 0 failed"
