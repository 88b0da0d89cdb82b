#!/usr/bin/env bash
# longctx eval: the model's identity in config.json and the checks before a run, on random HF
# models (tests/infer/hf/gen_hf_model.py):
#   - config.json records "model_hash", the xxh3-64 of the model's config.json, tensor
#     headers and a sample of the weights (recomputed here with python's xxhash when it is
#     installed); ppl-vs-length one per --model;
#   - two models that differ only in their weights hash differently (the weights' sample);
#   - a rerun with the same model under another path resumes (the path is logged), a model
#     whose header differs is refused (exit 2) naming the model and both hashes;
#   - --mem-limit: a run whose plan of a rank (the numbers of `longctx plan` for the longest
#     prompt and the run's --tp, --kv-dtype, --prefill-chunk) exceeds it is refused (exit 2)
#     with the numbers, a run at it goes; without it the plan's bytes are logged once;
#   - ppl-vs-length with a model whose weights give NaN: its items are recorded with an error
#     naming the position, out of the means (the summary counts them), and the job goes on;
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
# the two differ only in their weights (seeds 5 and 6): the weights' sample tells them apart
assert h[0] != h[1], h
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
        d_ = raw[8 + n:]
        if len(d_) <= 16 * 4096:
            b += d_
        else:
            for i in range(16):
                o = i * (len(d_) - 4096) // 15
                b += d_[o:o + 4096]
    assert xxhash.xxh3_64_hexdigest(b) == x, (m, x)
print("model_hash: xxh3-64 of config, headers and weights' sample, as python's xxhash")
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
# ---- ppl-vs-length: non-finite logits are an item's error, not the job's ----------------------
cp -r "$W/m5" "$W/nan"
$PY - "$W/nan/model.safetensors" <<'PY'
import json, struct, sys, numpy as np
path = sys.argv[1]
raw = bytearray(open(path, "rb").read())
n = struct.unpack_from("<Q", raw, 0)[0]
t = json.loads(raw[8:8 + n])["model.norm.weight"]  # the final norm: every logit NaN
a, b = t["data_offsets"]
raw[8 + n + a:8 + n + b] = np.full((b - a) // 4, np.nan, np.float32).tobytes()
open(path, "wb").write(raw)
PY
run 2 "$LONGCTX" "${P[@]}" --model "$W/m5" --model "$W/nan" --output "$W/nan_out" --tp 1 \
    2> "$W/log" || { cat "$W/log"; fail "the NaN model's job failed"; }
grep -q "non-finite logits at document position .*recorded with the error" "$W/log" ||
    { cat "$W/log"; fail "no warning for the NaN items"; }
$PY - "$W" <<'PY' || fail "NaN items"
import sys, json, math
w = sys.argv[1]
rows = [json.loads(l) for l in open(w + "/nan_out/results.jsonl")]
ref = [json.loads(l) for l in open(w + "/o/results.jsonl")]  # m5 and m6, no NaN
assert len(rows) == 12, len(rows)  # 2 models x 2 documents x 3 lengths
for r in rows[:6]:  # m5: as in the run without the NaN model (the same lines but the path)
    assert "error" not in r and r["loss_last"] == ref[r["item"]]["loss_last"], r
for r in rows[6:]:
    assert "loss_last" not in r, r
    # the window's first position is the first whose logits are NaN
    assert r["error"] == "non-finite logits at document position %d" % r["window_start"], r
s = json.load(open(w + "/nan_out/summary.json"))
assert s["items"] == 12 and s["items_error"] == 6, s
ok, bad = s["models"]
assert ok["errors"] == [0, 0, 0] and bad["errors"] == [2, 2, 2], s
assert all(math.isfinite(x) for x in ok["loss_last"]) and bad["loss_last"] == [None] * 3, s
ref_s = json.load(open(w + "/o/summary.json"))
assert ok["loss_last"] == ref_s["models"][0]["loss_last"], (ok, ref_s)
PY
[ -s "$W/nan_out/ppl-vs-length.png" ] || fail "no plot"
echo "ppl-vs-length: a NaN model's 6 items recorded with the position, out of the means; the job goes on"

# ---- --mem-limit: the plan of a rank (longctx plan's numbers) against the limit -------------------
plan_total() { # plan_total MODEL CTX TP [OPTS...]: longctx plan's total bytes per rank
    local m=$1 c=$2 t=$3
    shift 3
    "$LONGCTX" plan --model "$m" --ctx "$c" --tp "$t" "$@" |
        $PY -c 'import json,sys; print(json.load(sys.stdin)["per_rank"]["total_bytes"])'
}
# ppl-vs-length's longest window: max(L) + 1 = 129 positions
t1=$(plan_total "$W/m5" 129 1)
t2bf=$(plan_total "$W/m5" 129 2 --kv-dtype bf16 --prefill-chunk 64)
"$LONGCTX" "${P[@]}" --model "$W/m5" --output "$W/ml0" 2> "$W/log" || { cat "$W/log"; fail "no limit"; }
[ "$(grep -c "the plan of a rank: $t1 bytes" "$W/log")" -eq 1 ] ||
    { cat "$W/log"; fail "the plan ($t1 bytes) is not logged once"; }
expect2 "needs $t1 bytes .*more than --mem-limit 1024 bytes" \
    "$LONGCTX" "${P[@]}" --model "$W/m5" --output "$W/ml1" --mem-limit 1K
[ ! -e "$W/ml1/results.jsonl" ] || fail "a refused run wrote results"
expect2 "needs $t2bf bytes .*more than --mem-limit $((t2bf - 1)) bytes" \
    run 2 "$LONGCTX" "${P[@]}" --model "$W/m5" --output "$W/ml2" --tp 2 --kv-dtype bf16 \
    --prefill-chunk 64 --mem-limit $((t2bf - 1))
run 2 "$LONGCTX" "${P[@]}" --model "$W/m5" --output "$W/ml3" --tp 2 --kv-dtype bf16 \
    --prefill-chunk 64 --mem-limit "$t2bf" 2> "$W/log" || { cat "$W/log"; fail "a run at its limit"; }
grep -q "the plan of a rank: $t2bf bytes.*within --mem-limit" "$W/log" || { cat "$W/log"; fail "within"; }
"$LONGCTX" "${P[@]}" --model "$W/m5" --output "$W/ml4" --mem-limit 1G > /dev/null 2>&1 || fail "1G"
expect2 "is not a size in bytes" "$LONGCTX" "${P[@]}" --model "$W/m5" --output "$W/x" --mem-limit 12Q
expect2 "is not a size in bytes" "$LONGCTX" "${P[@]}" --model "$W/m5" --output "$W/x" --mem-limit -5
echo "--mem-limit: refused (exit 2) above longctx plan's $t1 / $t2bf bytes, accepted at it; logged once without"

# passkey (as needle and ruler): one "model_hash", the path may change
T=$HERE/../../../shared/assets/tokenizers/llama2/tokenizer.model
[ -f "$T" ] || { echo "SKIP (passkey part): $T missing"; exit 0; }
$PY "$HERE/../infer/hf/gen_hf_model.py" "$W/k" --hidden 64 --intermediate 128 --layers 2 \
    --heads 4 --kv-heads 2 --vocab 32000 --max-pos 512 --seed 5 --tokenizer "$T" > /dev/null
K=(eval passkey --lengths 100,200 --trials 2)
"$LONGCTX" "${K[@]}" --model "$W/k" --output "$W/p" > /dev/null 2> "$W/log" || { cat "$W/log"; fail "passkey"; }
grep -Eq '"model_hash": *"[0-9a-f]{16}"' "$W/p/config.json" || { cat "$W/p/config.json"; fail "passkey model_hash"; }
# passkey's longest prompt: max(L) + the 50 answer tokens eval reserves = 250 positions
tk=$(plan_total "$W/k" 250 1)
expect2 "needs $tk bytes .*more than --mem-limit $((tk - 1)) bytes" \
    "$LONGCTX" "${K[@]}" --model "$W/k" --output "$W/pm" --mem-limit $((tk - 1))
grep -q "the plan of a rank: $tk bytes" "$W/log" || { cat "$W/log"; fail "passkey: no plan logged"; }
mv "$W/k" "$W/k2"
"$LONGCTX" "${K[@]}" --model "$W/k2" --output "$W/p" > /dev/null 2> "$W/log" || { cat "$W/log"; fail "passkey, moved model"; }
grep -q "the same model (hash" "$W/log" || { cat "$W/log"; fail "passkey: the other path is not logged"; }
echo "model hash: recorded per model; another path accepted and logged, another header refused"
