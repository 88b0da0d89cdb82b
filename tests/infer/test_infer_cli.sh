#!/usr/bin/env bash
# `longctx infer` on stories260K against the float64 reference (reference.json and
# reference_logits.f32 in ../shared/assets): --logits-out rows within 1e-4 relative, the 32
# greedy ids from BOS exactly, usage errors exit 2 and a bad model exits 1 with its name.
# usage: test_infer_cli.sh LONGCTX
set -euo pipefail
LONGCTX=$1
HERE=$(cd "$(dirname "$0")" && pwd)
ASSETS=${LONGCTX_ASSETS:-$(cd "$HERE/../../.." && pwd)/shared/assets}
D=$ASSETS/models/stories260K
[ -f "$D/reference.json" ] || { echo "SKIP: $D missing"; exit 0; }
PY=/usr/bin/python3
W=$(mktemp -d "${TMPDIR:-/tmp}/longctx-infer-XXXXXX")
trap 'rm -rf "$W"' EXIT
ids=$($PY -c 'import json,sys; print(",".join(map(str, json.load(open(sys.argv[1]))["input_ids"])))' "$D/reference.json")
"$LONGCTX" infer --model "$D/stories260K.bin" --prompt-ids "$ids" --logits-out "$W/logits.f32"
$PY - "$W/logits.f32" "$D/reference_logits.f32" <<'PY'
import sys, numpy as np
got = np.fromfile(sys.argv[1], "<f4").reshape(-1, 512).astype(np.float64)
want = np.fromfile(sys.argv[2], "<f4").reshape(-1, 512).astype(np.float64)
assert got.shape == want.shape, (got.shape, want.shape)
rel = (np.abs(got - want).max(axis=1) / np.abs(want).max(axis=1)).max()
assert rel < 1e-4, rel
print("logits-out: 33 rows, worst relative error %.3g" % rel)
PY
greedy=$("$LONGCTX" infer --model "$D/stories260K.bin" --prompt-ids 1 --generate 32)
want=$($PY -c 'import json,sys; print(" ".join(map(str, json.load(open(sys.argv[1]))["greedy_from_bos"]["ids"])))' "$D/reference.json")
[ "$greedy" = "$want" ] || { echo "greedy: $greedy"; echo "want:   $want"; exit 1; }
echo "greedy: 32 of 32 ids"
set +e
"$LONGCTX" infer --model "$D/stories260K.bin" 2> /dev/null; [ $? -eq 2 ] || { echo "usage error not 2"; exit 1; }
head -c 1000 "$D/stories260K.bin" > "$W/cut.bin"
"$LONGCTX" infer --model "$W/cut.bin" --prompt-ids 1 2> "$W/err"; rc=$?
set -e
[ $rc -eq 1 ] && grep -q "cut.bin" "$W/err" || { cat "$W/err"; exit 1; }
echo "errors: usage exit 2, truncated model exit 1 naming the file"
echo "3 passed, 0 failed"
