#!/usr/bin/env bash
# longctx eval: the model's identity in config.json and the checks before a run, on random HF
# models (tests/infer/hf/gen_hf_model.py):
#   - config.json records "model_hash", the xxh3-64 of the model's config.json and tensor
#     headers (recomputed here with python's xxhash when it is installed); ppl-vs-length one
#     per --model;
#   - two models that differ only in their weights hash the same (documented: headers, not
#     weights);
#   - a rerun with the same model under another path resumes (the path is logged), a model
#     whose header differs is refused (exit 2) naming the model and both hashes;
# usage: test_eval_model.sh LONGCTX
set -euo pipefail
LONGCTX=$1
HERE=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3
$PY -c 'import numpy' 2> /dev/null || { echo "SKIP: /usr/bin/python3 has no numpy"; exit 0; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
W=$(mktemp -d "${TMPDIR:-/tmp}/longctx-evalmodel-XXXXXX")
trap 'rm -rf "$W"' EXIT
run() { timeout 300 mpirun --oversubscribe -np "$@"; }
fail() { echo "FAIL: $*"; exit 1; }
expect2() { # expect2 PATTERN CMD...: exit 2 and the pattern on stderr
    local pat=$1 rc=0
    shift
    "$@" > /dev/null 2> "$W/err" || rc=$?
    [ "$rc" -eq 2 ] || { cat "$W/err"; fail "exit $rc, want 2: $*"; }
    grep -q -- "$pat" "$W/err" || { cat "$W/err"; fail "no '$pat' in the message"; }
}
for s in 5 6; do
    $PY "$HERE/../infer/hf/gen_hf_model.py" "$W/m$s" --hidden 64 --intermediate 128 --layers 2 \
        --heads 4 --kv-heads 2 --vocab 512 --dtype F32 --max-pos 256 --seed $s > /dev/null
done
$PY - "$W" <<'PY'
import sys, numpy as np
rng = np.random.default_rng(1)
with open(sys.argv[1] + "/d.u32", "wb") as f:
    for n in (140, 150):
        np.array([n], "<u4").tofile(f)
        rng.integers(0, 512, n).astype("<u4").tofile(f)
PY
P=(eval ppl-vs-length --input "$W/d.u32" --lengths 32,64,128 --last 16)

# ---- model_hash -------------------------------------------------------------------------------
"$LONGCTX" "${P[@]}" --model "$W/m5" --model "$W/m6" --output "$W/o" 2> "$W/log" ||
    { cat "$W/log"; fail "ppl-vs-length"; }
$PY - "$W" <<'PY' || fail "model_hash"
import sys, json, struct, os
w = sys.argv[1]
c = json.load(open(w + "/o/config.json"))
assert [os.path.basename(m) for m in c["models"]] == ["m5", "m6"], c
h = c["model_hash"]
assert len(h) == 2 and all(len(x) == 16 and int(x, 16) >= 0 for x in h), h
# the two differ only in their weights (seeds 5 and 6): headers, not weights, so one hash
assert h[0] == h[1], h
try:
    import xxhash
except ImportError:
    print("python has no xxhash: the hashes' values are checked in tests/infer/test_model_hash")
    sys.exit(0)
for m, x in zip(("m5", "m6"), h):
    d = w + "/" + m
    b = open(d + "/config.json", "rb").read()
    for f in sorted(f for f in os.listdir(d) if f.endswith(".safetensors")):
        raw = open(d + "/" + f, "rb").read()
        n = struct.unpack_from("<Q", raw)[0]
        b += raw[:8 + n]
    assert xxhash.xxh3_64_hexdigest(b) == x, (m, x)
print("model_hash: xxh3-64 of config and headers, as python's xxhash")
PY

# ---- the same model elsewhere: accepted; another model: refused --------------------------------
cp -r "$W/m6" "$W/m6copy"
"$LONGCTX" "${P[@]}" --model "$W/m5" --model "$W/m6copy" --output "$W/o" 2> "$W/log" ||
    { cat "$W/log"; fail "the same model under another path was refused"; }
grep -q "the same model (hash" "$W/log" || { cat "$W/log"; fail "the other path is not logged"; }
$PY - "$W/m6copy/model.safetensors" <<'PY'
import sys, struct
p = sys.argv[1]
raw = bytearray(open(p, "rb").read())
n = struct.unpack_from("<Q", raw)[0]
i = raw.index(b'"dtype"', 8, 8 + n)
raw[i + 1:i + 6] = b"DTYPE"  # one header byte changed: another model, the same weights
open(p, "wb").write(raw)
PY
h6=$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["model_hash"][1])' "$W/o/config.json")
expect2 "model $W/m6copy has hash [0-9a-f]\{16\}, the model of the run there ($W/m6) had $h6" \
    "$LONGCTX" "${P[@]}" --model "$W/m5" --model "$W/m6copy" --output "$W/o"
# passkey (as needle and ruler): one "model_hash", the path may change
T=$HERE/../../../shared/assets/tokenizers/llama2/tokenizer.model
[ -f "$T" ] || { echo "SKIP (passkey part): $T missing"; exit 0; }
$PY "$HERE/../infer/hf/gen_hf_model.py" "$W/k" --hidden 64 --intermediate 128 --layers 2 \
    --heads 4 --kv-heads 2 --vocab 32000 --max-pos 512 --seed 5 --tokenizer "$T" > /dev/null
K=(eval passkey --lengths 100,200 --trials 2)
"$LONGCTX" "${K[@]}" --model "$W/k" --output "$W/p" > /dev/null 2> "$W/log" || { cat "$W/log"; fail "passkey"; }
grep -Eq '"model_hash": *"[0-9a-f]{16}"' "$W/p/config.json" || { cat "$W/p/config.json"; fail "passkey model_hash"; }
mv "$W/k" "$W/k2"
"$LONGCTX" "${K[@]}" --model "$W/k2" --output "$W/p" > /dev/null 2> "$W/log" || { cat "$W/log"; fail "passkey, moved model"; }
grep -q "the same model (hash" "$W/log" || { cat "$W/log"; fail "passkey: the other path is not logged"; }
echo "model hash: recorded per model; another path accepted and logged, another header refused"
