#!/usr/bin/env bash
# --act-dtype: how prefill multiplies activations by BF16 weights (infer.h INFER_ACT_*).
# A random BF16 model (GQA, head_dim 64), a 300-token prompt:
#  - each mode's logits at every position against the float64 reference (ref_forward.py):
#    f32 and bf16x2 (the default on an AVX512_BF16 CPU) within 1e-4, bf16 within 1e-2; and, so
#    that the test can fail, bf16 must be further from the reference than bf16x2 (it rounds the
#    activations: ~1e-3 per product) - a bf16x2 that silently ran bf16 is caught;
#  - each mode bit-identical at --prefill-chunk 512 / 1 thread and --prefill-chunk 7 / 2 threads;
#  - the timings line names the mode that ran (auto resolves to bf16x2 or f32);
#  - refusals, exit 2 with the reason: bf16 on an F32 model; bf16x2 where the kernels are forced
#    to avx512 (LONGCTX_ISA), where auto falls back to f32;
#  - plan: bf16x2 adds 2 x 2 bytes x (chunk rows x widest product input) to the activations.
# Without AVX512_BF16 the bf16x2/bf16 parts print SKIP and the refusal is checked instead.
# usage: test_act_dtype.sh LONGCTX
set -euo pipefail
LONGCTX=$1
HERE=$(cd "$(dirname "$0")" && pwd)/hf
PY=/usr/bin/python3
$PY -c 'import numpy' 2> /dev/null || { echo "SKIP: /usr/bin/python3 has no numpy"; exit 0; }
W=$(mktemp -d "${TMPDIR:-/tmp}/longctx-act-XXXXXX")
trap 'rm -rf "$W"' EXIT
$PY "$HERE/gen_hf_model.py" "$W/m" --hidden 256 --heads 4 --kv-heads 2 --vocab 1024 --dtype BF16 \
    --seed 31 > /dev/null
$PY "$HERE/gen_hf_model.py" "$W/f" --hidden 128 --heads 2 --vocab 512 --seed 32 > /dev/null
$PY -c 'import numpy as np
ids = np.random.default_rng(31).integers(3, 1024, 300); ids[0] = 1
open("'"$W"'/ids.txt", "w").write(",".join(map(str, ids)))'
$PY "$HERE/ref_forward.py" "$W/m" --prompt-ids "$(cat "$W/ids.txt")" --out "$W/want.f32"
pass=0
ok() { echo "PASS $*"; pass=$((pass + 1)); }

has_bf16=0
if grep -qw avx512_bf16 /proc/cpuinfo && [ -z "${LONGCTX_ISA:-}" -o "${LONGCTX_ISA:-}" = avx512bf16 ]; then
    has_bf16=1
fi
modes="f32 bf16x2 bf16"
if [ $has_bf16 = 0 ]; then
    echo "SKIP bf16x2, bf16: no AVX512_BF16 here (or LONGCTX_ISA=${LONGCTX_ISA:-})"
    modes=f32
fi
declare -A err
for act in $modes; do
    "$LONGCTX" infer --model "$W/m" --prompt-ids @"$W/ids.txt" --act-dtype $act --timings \
        --logits-out "$W/a.f32" 2> "$W/a.err"
    grep -q "act=$act " "$W/a.err" || { echo "FAIL $act: timings line: $(cat "$W/a.err")"; exit 1; }
    "$LONGCTX" infer --model "$W/m" --prompt-ids @"$W/ids.txt" --act-dtype $act --prefill-chunk 7 \
        --threads 2 --logits-out "$W/b.f32"
    cmp -s "$W/a.f32" "$W/b.f32" || { echo "FAIL $act: chunk 7 / 2 threads changes the bits"; exit 1; }
    tol=1e-4
    [ $act = bf16 ] && tol=1e-2
    msg=$($PY "$HERE/compare_logits.py" "$W/a.f32" "$W/want.f32" --vocab 1024 --rel $tol) ||
        { echo "FAIL $act: $msg"; exit 1; }
    err[$act]=$(echo "$msg" | awk '{print $2}')
    ok "$act: $msg; same bits at chunk 7 / 2 threads"
done
if [ $has_bf16 = 1 ]; then
    awk -v a="${err[bf16]}" -v b="${err[bf16x2]}" 'BEGIN { exit !(a > 10 * b) }' ||
        { echo "FAIL: bf16 (${err[bf16]}) is not clearly less exact than bf16x2 (${err[bf16x2]})"; exit 1; }
    ok "bf16 error ${err[bf16]} > 10 x bf16x2 error ${err[bf16x2]}"
    "$LONGCTX" infer --model "$W/m" --prompt-ids 1,2,3 --timings 2> "$W/c.err" > /dev/null
    grep -q "act=bf16x2 " "$W/c.err" || { echo "FAIL: auto is not bf16x2: $(cat "$W/c.err")"; exit 1; }
    ok "auto runs bf16x2 on this CPU"
fi

# refusals
set +e
"$LONGCTX" infer --model "$W/f" --prompt-ids 1,2,3 --act-dtype bf16 > /dev/null 2> "$W/e1"
rc1=$?
LONGCTX_ISA=avx512 "$LONGCTX" infer --model "$W/m" --prompt-ids 1,2,3 --act-dtype bf16x2 \
    > /dev/null 2> "$W/e2"
rc2=$?
LONGCTX_ISA=avx512 "$LONGCTX" infer --model "$W/m" --prompt-ids 1,2,3 --timings > /dev/null \
    2> "$W/e3"
rc3=$?
"$LONGCTX" infer --model "$W/m" --prompt-ids 1,2,3 --act-dtype bf17 > /dev/null 2> "$W/e4"
rc4=$?
set -e
[ $rc1 = 2 ] && grep -q "needs BF16 weights; .* has f32" "$W/e1" ||
    { echo "FAIL: bf16 on an F32 model: rc $rc1: $(cat "$W/e1")"; exit 1; }
ok "bf16 on an F32 model: $(cat "$W/e1")"
if grep -qw avx512f /proc/cpuinfo; then
    [ $rc2 = 2 ] && grep -q "needs a CPU with AVX512_BF16; the kernels run avx512" "$W/e2" ||
        { echo "FAIL: bf16x2 on avx512: rc $rc2: $(cat "$W/e2")"; exit 1; }
    ok "bf16x2 with LONGCTX_ISA=avx512: $(cat "$W/e2")"
    [ $rc3 = 0 ] && grep -q "act=f32 " "$W/e3" ||
        { echo "FAIL: auto on avx512: rc $rc3: $(cat "$W/e3")"; exit 1; }
    ok "auto with LONGCTX_ISA=avx512 runs f32"
else
    echo "SKIP the avx512 refusal: no AVX-512 here"
fi
[ $rc4 = 2 ] && grep -q "act-dtype is auto, f32, bf16x2 or bf16" "$W/e4" ||
    { echo "FAIL: --act-dtype bf17: rc $rc4: $(cat "$W/e4")"; exit 1; }
ok "--act-dtype bf17 refused"

# plan: the bf16 copies of the widest product input
inter=$($PY -c 'import json; print(json.load(open("'"$W/m"'/config.json"))["intermediate_size"])')
a32=$("$LONGCTX" plan --model "$W/m" --ctx 1024 --prefill-chunk 100 --act-dtype f32 |
    $PY -c 'import json,sys; print(json.load(sys.stdin)["per_rank"]["activation_bytes"])')
ax2=$("$LONGCTX" plan --model "$W/m" --ctx 1024 --prefill-chunk 100 --act-dtype bf16x2 |
    $PY -c 'import json,sys; print(json.load(sys.stdin)["per_rank"]["activation_bytes"])')
if [ $has_bf16 = 1 ]; then
    # rows: the chunk rounded up to 64; widest input: max(hidden 256, intermediate, q_dim 256)
    want=$((2 * 2 * 128 * (inter > 256 ? inter : 256)))
    [ $((ax2 - a32)) = $want ] || { echo "FAIL: plan bf16x2 - f32 = $((ax2 - a32)), want $want"; exit 1; }
    ok "plan: bf16x2 adds $want bytes"
else
    [ "$ax2" = "$a32" ] || { echo "FAIL: plan counts bf16x2 on a CPU that cannot run it"; exit 1; }
    ok "plan: bf16x2 adds nothing where it cannot run"
fi
echo "$pass passed, 0 failed"
