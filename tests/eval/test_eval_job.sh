#!/usr/bin/env bash
# longctx eval passkey and needle end to end under mpirun, on a random HF model (weights from
# tests/infer/hf/gen_hf_model.py) with the real Llama 2 tokenizer: random weights score 0, which
# is fine: this checks the machinery.
#   - results.jsonl and summary.json byte-identical at -np 1, -np 2 (2 replicas, or TP 2) and
#     -np 4 (2 replicas of TP 2), for both tasks;
#   - every line has prompt_tokens == its length and needle_pos where the eval library put it;
#   - resumption: a journal cut after k items (and half a line) reruns only the others, to the
#     same files; a real kill -9 of the whole job mid-run, then a rerun, gives the same files as
#     an uninterrupted run;
#   - the plots exist (PNG signature, SVG parses as XML); usage errors exit 2 with a message.
# usage: test_eval_job.sh LONGCTX
set -euo pipefail
LONGCTX=$1
HERE=$(cd "$(dirname "$0")" && pwd)
ASSETS=${LONGCTX_ASSETS:-$(cd "$HERE/../../.." && pwd)/shared/assets}
PY=/usr/bin/python3
T=$ASSETS/tokenizers/llama2/tokenizer.model
[ -f "$T" ] || { echo "SKIP: $T missing"; exit 0; }
$PY -c 'import numpy' 2> /dev/null || { echo "SKIP: /usr/bin/python3 has no numpy"; exit 0; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
W=$(mktemp -d "${TMPDIR:-/tmp}/longctx-eval-XXXXXX")
trap 'rm -rf "$W"' EXIT
run() { timeout 300 mpirun --oversubscribe -np "$@"; } # run NP CMD...: no hang
fail() { echo "FAIL: $*"; exit 1; }

$PY "$HERE/../infer/hf/gen_hf_model.py" "$W/m" --hidden 64 --intermediate 128 --layers 2 \
    --heads 4 --kv-heads 2 --vocab 32000 --max-pos 512 --seed 5 --tokenizer "$T" > /dev/null
PK=(passkey --model "$W/m" --lengths 100,300,700 --trials 3 --seed 11)
printf 'First file. It has two sentences.\n' > "$W/b.txt"
sed -n '1,60p' "$HERE/../../README.md" > "$W/a.txt"
ND=(needle --model "$W/m" --lengths 200,450,800 --depths 0,30,70,100 --haystack "$W/b.txt"
    --haystack "$W/a.txt")

same() { # same DIR1 DIR2: results and summary byte-identical
    cmp "$1/results.jsonl" "$2/results.jsonl" || fail "$1 and $2: results differ"
    cmp "$1/summary.json" "$2/summary.json" || fail "$1 and $2: summaries differ"
}

# ---- replicas and TP sizes ----------------------------------------------------------------
run 1 "$LONGCTX" eval "${PK[@]}" --output "$W/p1" 2> "$W/log"
run 2 "$LONGCTX" eval "${PK[@]}" --output "$W/p2r" --tp 1 2> "$W/log"
grep -q '2 replicas of tensor-parallel size 1' "$W/log" || { cat "$W/log"; fail "2 replicas"; }
run 2 "$LONGCTX" eval "${PK[@]}" --output "$W/p2t" --tp 2 2> "$W/log"
run 4 "$LONGCTX" eval "${PK[@]}" --output "$W/p4" --tp 2 2> "$W/log"
grep -q '2 replicas of tensor-parallel size 2' "$W/log" || { cat "$W/log"; fail "2x2"; }
for d in p2r p2t p4; do same "$W/p1" "$W/$d"; done
echo "passkey: identical results at -np 1, 2 replicas, TP 2, 2 replicas x TP 2"
run 1 "$LONGCTX" eval "${ND[@]}" --output "$W/n1" 2> "$W/log"
run 2 "$LONGCTX" eval "${ND[@]}" --output "$W/n2r" --tp 1 2> "$W/log"
run 2 "$LONGCTX" eval "${ND[@]}" --output "$W/n2t" --tp 2 2> "$W/log"
for d in n2r n2t; do same "$W/n1" "$W/$d"; done
echo "needle: identical results at -np 1, 2 replicas, TP 2"

# ---- the lines and the files ----------------------------------------------------------------
$PY - "$W/p1" "$W/n1" <<'PY'
import sys, json, xml.etree.ElementTree as ET
for d, task, n in ((sys.argv[1], "passkey", 9), (sys.argv[2], "needle", 12)):
    rows = [json.loads(l) for l in open(d + "/results.jsonl")]
    assert [r["item"] for r in rows] == list(range(n)), [r["item"] for r in rows]
    for r in rows:
        assert r["task"] == task and r["prompt_tokens"] == r["length"], r
        assert 0 < r["needle_pos"] < r["length"] - r["needle_tokens"] + 1, r
        assert "answer" in r and "score" in r and len(r["answer_ids"]) <= (10 if task == "passkey" else 50)
        if task == "passkey":
            assert r["score"] == 0 and 1 <= int(r["expected"]) <= 50000 and "trial" in r
        else:
            assert 0 <= r["score"] <= 11 / 12 and r["substring"] in (0, 1) and "depth" in r
            if r["depth"] == 0:
                assert r["needle_pos"] < 20, r  # right after BOS and the template's head
    keys = [(r["length"], r.get("trial", r["depth"])) for r in rows]
    assert len(set(keys)) == n
    s = json.load(open(d + "/summary.json"))
    assert s["items"] == n
    if task == "needle":
        assert abs(s["recall_ceiling"] - 11 / 12) < 1e-15 and len(s["recall"]) == 4
    else:
        assert s["accuracy"] == [0.0, 0.0, 0.0]
    png = open(d + "/" + task + ".png", "rb").read()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000
    ET.parse(d + "/" + task + ".svg")
# the passkey keys differ across trials (seeded per item)
rows = [json.loads(l) for l in open(sys.argv[1] + "/results.jsonl")]
assert len(set(r["expected"] for r in rows)) >= 8
print("lines: prompt_tokens = length, needle_pos inside the prompt; plots written")
PY

# ---- resumption -------------------------------------------------------------------------------
mkdir "$W/r"
cp "$W/n1/config.json" "$W/r/"
head -n 5 "$W/n1/results.jsonl" > "$W/r/results.jsonl"
sed -n 6p "$W/n1/results.jsonl" | head -c 40 >> "$W/r/results.jsonl" # a line cut by a kill
run 2 "$LONGCTX" eval "${ND[@]}" --output "$W/r" --tp 1 2> "$W/log"
grep -q '5 done before, 7 to run' "$W/log" || { cat "$W/log"; fail "resume counts"; }
same "$W/n1" "$W/r"
run 1 "$LONGCTX" eval "${ND[@]}" --output "$W/r" 2> "$W/log"
grep -q '12 done before, 0 to run' "$W/log" || { cat "$W/log"; fail "rerun of a finished run"; }
same "$W/n1" "$W/r"
echo "resume: a cut journal reruns only the 7 items left, to the same files"

# a real kill -9 of every process of the job, mid-run
KL=(passkey --model "$W/m" --lengths 1500,2000 --trials 40 --seed 3)
run 2 "$LONGCTX" eval "${KL[@]}" --output "$W/k_ref" --tp 1 2> /dev/null
timeout 300 mpirun --oversubscribe -np 2 "$LONGCTX" eval "${KL[@]}" --output "$W/k" \
    --tp 1 2> /dev/null &
pid=$!
for _ in $(seq 1 3000); do
    [ -f "$W/k/results.jsonl" ] && [ "$(wc -l < "$W/k/results.jsonl")" -ge 4 ] && break
    sleep 0.01
done
tree() { local c; for c in $(pgrep -P "$1"); do echo "$c"; tree "$c"; done; } # descendants
kill -9 $(tree "$pid") "$pid" 2> /dev/null || true # the ranks, mpirun, timeout: at once
wait "$pid" 2> /dev/null || true
sleep 0.5
before=$(wc -l < "$W/k/results.jsonl")
[ "$before" -lt 80 ] || fail "the job ended before the kill ($before lines)"
run 2 "$LONGCTX" eval "${KL[@]}" --output "$W/k" --tp 1 2> "$W/log"
grep -Eq ' [1-9][0-9]* done before' "$W/log" || { cat "$W/log"; fail "nothing was kept"; }
same "$W/k_ref" "$W/k"
grep -q " $before done before" "$W/log" || { cat "$W/log"; fail "$before lines before the rerun"; }
echo "kill -9 after $before of 80 lines, rerun: $(grep -o '[0-9]* done before, [0-9]* to run' "$W/log"); same files as an uninterrupted run"

# ---- non-finite logits: the item is recorded with its error and score 0, the job goes on -----
cp -r "$W/m" "$W/nan"
$PY - "$W/nan/model.safetensors" <<'PY'
import json, struct, sys, numpy as np
path = sys.argv[1]
raw = bytearray(open(path, "rb").read())
n = struct.unpack_from("<Q", raw, 0)[0]
h = json.loads(raw[8:8 + n])
t = h["model.norm.weight"]  # the final norm: every logit NaN, at every position
assert t["dtype"] == "F32", t["dtype"]
a, b = t["data_offsets"]
raw[8 + n + a:8 + n + b] = np.full((b - a) // 4, np.nan, np.float32).tobytes()
open(path, "wb").write(raw)
PY
run 2 "$LONGCTX" eval passkey --model "$W/nan" --lengths 100,300 --trials 2 --seed 11 \
    --output "$W/nan_out" > /dev/null 2> "$W/nan.err" || { cat "$W/nan.err"; fail "the NaN model's job failed"; }
$PY - "$W/nan_out/results.jsonl" <<'PY' || fail "NaN items"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
assert len(lines) == 4, len(lines)
for o in lines:
    assert o["error"] == "non-finite logits in the prefill" and o["score"] == 0 and o["answer"] == "", o
PY
grep -q "recorded with score 0" "$W/nan.err" || fail "no warning for the NaN items"
echo "non-finite logits: 4 items recorded with their error and score 0"

# ---- usage errors -----------------------------------------------------------------------------
expect2() { # expect2 PATTERN CMD...: exit 2 and the pattern on stderr
    local pat=$1 rc=0
    shift
    "$@" > /dev/null 2> "$W/err" || rc=$?
    [ "$rc" -eq 2 ] || { cat "$W/err"; fail "exit $rc, want 2: $*"; }
    grep -q -- "$pat" "$W/err" || { cat "$W/err"; fail "no '$pat' in the message"; }
}
expect2 "the first argument is the task" "$LONGCTX" eval bogus --model "$W/m" --output "$W/x"
expect2 "give the haystack" "$LONGCTX" eval needle --model "$W/m" --output "$W/x"
expect2 "must divide" run 2 "$LONGCTX" eval "${PK[@]}" --output "$W/x" --tp 3
expect2 "another run's configuration" "$LONGCTX" eval "${PK[@]}" --output "$W/p1" --seed 12
expect2 "not a number in \[0, 100\]" "$LONGCTX" eval "${ND[@]}" --output "$W/x" --depths 0,101
# infer's run options: a bf16 KV cache runs (and is recorded: a rerun with f32 is refused)
"$LONGCTX" eval "${PK[@]}" --output "$W/bf16" --kv-dtype bf16 --prefill-chunk 64 > /dev/null 2>&1 ||
    fail "--kv-dtype bf16"
grep -q '"kv_dtype":"bf16"' "$W/bf16/config.json" || grep -q '"kv_dtype": *"bf16"' "$W/bf16/config.json" ||
    fail "config.json has no kv_dtype bf16"
expect2 "another run's configuration" "$LONGCTX" eval "${PK[@]}" --output "$W/bf16" --prefill-chunk 64
expect2 "is f32 or bf16, not 'f16'" "$LONGCTX" eval "${PK[@]}" --output "$W/x" --kv-dtype f16
mkdir -p "$W/stale" && echo '{"item": 0}' > "$W/stale/results.jsonl"
expect2 "results of another run" "$LONGCTX" eval "${PK[@]}" --output "$W/stale"
"$LONGCTX" eval --help | grep -q -- '--haystack FILE' || fail "--help"
echo "usage errors: exit 2 with their reason"
