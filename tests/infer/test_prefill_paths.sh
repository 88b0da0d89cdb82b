#!/usr/bin/env bash
# The ways prefill multiplies by the weights (infer_forward.c LIN_*), on a random BF16 model and
# an F32 model (GQA, head_dim 64), 300-token prompts:
#   own     ik_gemm, f32 activations, on the best set (AVX-512: infer_gemm.c; AVX2:
#           infer_gemm_avx2.c);
#   avx2    the same forced to the AVX2 ik_gemm with LONGCTX_ISA=avx2 (where the best is AVX-512);
#   sgemm   OpenBLAS sgemm in fixed 64-row calls: the scalar set only (LONGCTX_ISA=scalar);
#   bf16    --act-dtype bf16: activations rounded to bf16, vdpbf16ps (AVX512_BF16 only).
# For each: logits at every position against the float64 reference (ref_forward.py) within
# 1e-4 (bf16: 1e-2, and more than 10x the own path's error, so that a bf16 flag that silently
# ran f32, or the reverse, fails); the same bits at --prefill-chunk 512 / 1 thread and 7 / 2
# threads; the timings line naming the mode. The sgemm path keeps those bits only where
# OpenBLAS's kernels give a row the same bits at any position within a call: on its Haswell/Zen
# kernels they do not (hf/sgemm_caveat.py), and if the bits differ there that check prints SKIP
# with the reason instead of failing. Then the refusals (exit 2 with the reason) and plan's extra
# bytes for bf16. Paths this CPU or build cannot run print SKIP.
# usage: test_prefill_paths.sh LONGCTX
set -euo pipefail
LONGCTX=$1
HERE=$(cd "$(dirname "$0")" && pwd)/hf
PY=/usr/bin/python3
$PY -c 'import numpy' 2> /dev/null || { echo "SKIP: /usr/bin/python3 has no numpy"; exit 0; }
W=$(mktemp -d "${TMPDIR:-/tmp}/longctx-paths-XXXXXX")
trap 'rm -rf "$W"' EXIT
$PY "$HERE/gen_hf_model.py" "$W/BF16" --hidden 256 --heads 4 --kv-heads 2 --vocab 1024 \
    --dtype BF16 --seed 31 > /dev/null
$PY "$HERE/gen_hf_model.py" "$W/F32" --hidden 256 --heads 4 --kv-heads 2 --vocab 1024 --seed 32 \
    > /dev/null
$PY -c 'import numpy as np
ids = np.random.default_rng(31).integers(3, 1024, 300); ids[0] = 1
open("'"$W"'/ids.txt", "w").write(",".join(map(str, ids)))'
for m in BF16 F32; do
    $PY "$HERE/ref_forward.py" "$W/$m" --prompt-ids "$(cat "$W/ids.txt")" --out "$W/want-$m.f32"
done
pass=0
ok() { echo "PASS $*"; pass=$((pass + 1)); }
flags=$(grep -m1 '^flags' /proc/cpuinfo || true)
has() { [[ " $flags " == *" $1 "* ]]; }
# forcing a set is only possible where the CPU has it; LONGCTX_ISA from outside is respected
[ -n "${LONGCTX_ISA:-}" ] && echo "note: LONGCTX_ISA=$LONGCTX_ISA from the environment"

declare -A err
# run NAME MODEL ISA ACT TOL: the checks above for one path (ISA "": the best, or LONGCTX_ISA)
run() {
    local name=$1 m=$2 isa=$3 act=$4 tol=$5
    LONGCTX_ISA=$isa "$LONGCTX" infer --model "$W/$m" --prompt-ids @"$W/ids.txt" --act-dtype "$act" \
        --timings --logits-out "$W/a.f32" 2> "$W/a.err" > /dev/null
    grep -q "act=$act " "$W/a.err" || { echo "FAIL $name: timings line: $(cat "$W/a.err")"; exit 1; }
    local got
    got=$(sed -n 's/.* isa=\([a-z0-9]*\) .*/\1/p' "$W/a.err")
    if [ -n "$isa" ] && [ "$got" != "$isa" ]; then
        echo "SKIP $name: LONGCTX_ISA=$isa runs $got here (a build without that set)"
        return
    fi
    LONGCTX_ISA=$isa "$LONGCTX" infer --model "$W/$m" --prompt-ids @"$W/ids.txt" --act-dtype "$act" \
        --prefill-chunk 7 --threads 2 --logits-out "$W/b.f32" > /dev/null
    local same="same bits at chunk 7 / 2 threads"
    if ! cmp -s "$W/a.f32" "$W/b.f32"; then
        local why
        why=$($PY "$HERE/sgemm_caveat.py" "$LONGCTX" "$got")
        [ -n "$why" ] || { echo "FAIL $name: chunk 7 / 2 threads changes the bits"; exit 1; }
        echo "SKIP $name: bits at chunk 7 / 2 threads differ, as expected of $why"
        same="bits at chunk 7 / 2 threads not compared (SKIP above)"
    fi
    local msg
    msg=$($PY "$HERE/compare_logits.py" "$W/a.f32" "$W/want-$m.f32" --vocab 1024 --rel "$tol") ||
        { echo "FAIL $name: $msg"; exit 1; }
    err[$name]=$(echo "$msg" | awk '{print $2}')
    ok "$name ($m weights, isa $got, --act-dtype $act): $msg; $same"
}
isa_default=${LONGCTX_ISA:-}
if has avx2 && has fma && has f16c; then
    run own-bf16 BF16 "$isa_default" f32 1e-4
    run own-f32 F32 "$isa_default" f32 1e-4
else
    echo "SKIP own: no AVX2 here"
fi
if has avx512f && has avx512bw && has avx512vl && has avx2 && has fma && has f16c; then
    run avx2-bf16 BF16 avx2 f32 1e-4
    run avx2-f32 F32 avx2 f32 1e-4
else
    echo "SKIP avx2: the best set here is AVX2 already (own above) or there is none"
fi
run sgemm-bf16 BF16 scalar f32 1e-4
run sgemm-f32 F32 scalar f32 1e-4
if has avx512_bf16 && [ -z "$isa_default" -o "$isa_default" = avx512bf16 ]; then
    run bf16 BF16 "$isa_default" bf16 1e-2
    ref=${err[own-bf16]:-${err[sgemm-bf16]}}
    awk -v a="${err[bf16]}" -v b="$ref" 'BEGIN { exit !(a > 10 * b) }' ||
        { echo "FAIL: bf16 (${err[bf16]}) is not clearly less exact than f32 ($ref)"; exit 1; }
    ok "bf16 error ${err[bf16]} > 10 x the f32 error $ref"
else
    echo "SKIP bf16: no AVX512_BF16 here (or LONGCTX_ISA=$isa_default)"
fi

# refusals
set +e
"$LONGCTX" infer --model "$W/F32" --prompt-ids 1,2,3 --act-dtype bf16 > /dev/null 2> "$W/e1"
rc1=$?
LONGCTX_ISA=avx2 "$LONGCTX" infer --model "$W/BF16" --prompt-ids 1,2,3 --act-dtype bf16 \
    > /dev/null 2> "$W/e2"
rc2=$?
"$LONGCTX" infer --model "$W/BF16" --prompt-ids 1,2,3 --act-dtype bf17 > /dev/null 2> "$W/e3"
rc3=$?
set -e
[ $rc1 = 2 ] && grep -q "needs BF16 weights; .* has f32" "$W/e1" ||
    { echo "FAIL: bf16 on an F32 model: rc $rc1: $(cat "$W/e1")"; exit 1; }
ok "bf16 on an F32 model refused: $(sed 's/.*infer\[0\/1\] //' "$W/e1")"
if has avx2 && grep -q "the kernels run scalar" "$W/e2"; then
    echo "SKIP bf16 with LONGCTX_ISA=avx2: this build has no AVX2 set (-DLONGCTX_SIMD=OFF)"
elif has avx2; then
    [ $rc2 = 2 ] && grep -q "needs a CPU with AVX512_BF16; the kernels run avx2" "$W/e2" ||
        { echo "FAIL: bf16 on avx2: rc $rc2: $(cat "$W/e2")"; exit 1; }
    ok "bf16 with LONGCTX_ISA=avx2 refused: $(sed 's/.*infer\[0\/1\] //' "$W/e2")"
fi
[ $rc3 = 2 ] && grep -q "act-dtype is f32 or bf16" "$W/e3" ||
    { echo "FAIL: --act-dtype bf17: rc $rc3: $(cat "$W/e3")"; exit 1; }
ok "--act-dtype bf17 refused"

# plan: bf16 adds a bf16 copy of the widest product input, for the chunk's rows (rounded to 64)
inter=$($PY -c 'import json; print(json.load(open("'"$W/BF16"'/config.json"))["intermediate_size"])')
plan() {
    "$LONGCTX" plan --model "$W/BF16" --ctx 1024 --prefill-chunk 100 --act-dtype "$1" |
        $PY -c 'import json,sys; print(json.load(sys.stdin)["per_rank"]["activation_bytes"])'
}
a32=$(plan f32) a16=$(plan bf16)
want=$((2 * 128 * (inter > 256 ? inter : 256)))
[ $((a16 - a32)) = $want ] || { echo "FAIL: plan bf16 - f32 = $((a16 - a32)), want $want"; exit 1; }
ok "plan: bf16 adds $want bytes"
echo "$pass passed, 0 failed"
