#!/usr/bin/env bash
# longctx eval ruler end to end under mpirun, on a random HF model (weights from
# tests/infer/hf/gen_hf_model.py) with the real Llama 2 tokenizer: random weights score 0, which
# is fine: this checks the machinery.
#   - results.jsonl and summary.json byte-identical at -np 1, -np 2 (2 replicas, or TP 2) and
#     -np 4 (2 replicas of TP 2);
#   - every line has prompt_tokens == its length, needle_pos inside the prompt (niah, vt; none
#     for fwe), the expected answers of its task; the table has a row per task, printed too;
#   - resumption: a journal cut after k items (and half a line) reruns only the others, to the
#     same files; a kill -9 of the whole job mid-run, then a rerun, gives the same files;
#   - the plot exists (PNG signature, SVG parses as XML); usage errors exit 2 with a message.
# usage: test_eval_ruler_job.sh LONGCTX
set -euo pipefail
LONGCTX=$1
HERE=$(cd "$(dirname "$0")" && pwd)
ASSETS=${LONGCTX_ASSETS:-$(cd "$HERE/../../.." && pwd)/shared/assets}
PY=/usr/bin/python3
T=$ASSETS/tokenizers/llama2/tokenizer.model
[ -f "$T" ] || { echo "SKIP: $T missing"; exit 0; }
$PY -c 'import numpy' 2> /dev/null || { echo "SKIP: /usr/bin/python3 has no numpy"; exit 0; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
W=$(mktemp -d "${TMPDIR:-/tmp}/longctx-ruler-XXXXXX")
trap 'rm -rf "$W"' EXIT
run() { timeout 300 mpirun --oversubscribe -np "$@"; } # run NP CMD...: no hang
fail() { echo "FAIL: $*"; exit 1; }

$PY "$HERE/../infer/hf/gen_hf_model.py" "$W/m" --hidden 64 --intermediate 128 --layers 2 \
    --heads 4 --kv-heads 2 --vocab 32000 --max-pos 1024 --seed 5 --tokenizer "$T" > /dev/null
RU=(ruler --model "$W/m" --lengths 520,700 --trials 2 --seed 11)

same() { # same DIR1 DIR2: results and summary byte-identical
    cmp "$1/results.jsonl" "$2/results.jsonl" || fail "$1 and $2: results differ"
    cmp "$1/summary.json" "$2/summary.json" || fail "$1 and $2: summaries differ"
}

# ---- replicas and TP sizes ----------------------------------------------------------------
run 1 "$LONGCTX" eval "${RU[@]}" --output "$W/r1" > "$W/table" 2> "$W/log"
run 2 "$LONGCTX" eval "${RU[@]}" --output "$W/r2r" --tp 1 > /dev/null 2> "$W/log"
grep -q '2 replicas of tensor-parallel size 1' "$W/log" || { cat "$W/log"; fail "2 replicas"; }
run 2 "$LONGCTX" eval "${RU[@]}" --output "$W/r2t" --tp 2 > /dev/null 2> "$W/log"
grep -q '1 replica of tensor-parallel size 2' "$W/log" || { cat "$W/log"; fail "TP 2"; }
run 4 "$LONGCTX" eval "${RU[@]}" --output "$W/r4" --tp 2 > /dev/null 2> "$W/log"
grep -q '2 replicas of tensor-parallel size 2' "$W/log" || { cat "$W/log"; fail "2x2"; }
for d in r2r r2t r4; do same "$W/r1" "$W/$d"; done
echo "ruler: identical results at -np 1, 2 replicas, TP 2, 2 replicas x TP 2"

# ---- the lines, the table and the files -------------------------------------------------------
$PY - "$W/r1" "$W/table" <<'PY'
import sys, json, re, xml.etree.ElementTree as ET
d, table = sys.argv[1], open(sys.argv[2]).read().splitlines()
tasks = ["niah_single", "niah_single_uuid", "niah_multikey", "niah_multikey_uuid", "vt", "fwe"]
new = {"vt": 30, "fwe": 50}
rows = [json.loads(l) for l in open(d + "/results.jsonl")]
assert [r["item"] for r in rows] == list(range(24)), [r["item"] for r in rows]
uuid = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
for i, r in enumerate(rows):
    # tasks outer, lengths, trials inner
    assert r["task"] == tasks[i // 4] and r["length"] == (520, 700)[i // 2 % 2] and r["trial"] == i % 2, r
    assert r["prompt_tokens"] == r["length"], r
    assert len(r["answer_ids"]) <= new.get(r["task"], 128)
    assert 0 <= r["score"] <= 1 and r["score_part"] in (0, 1) and "answer" in r
    t, e = r["task"], r["expected"]
    if t == "fwe":
        assert "needle_pos" not in r and len(e) == 3 and all(re.fullmatch("[a-z]{6}", w) for w in e)
    else:
        assert 0 < r["needle_pos"] < r["length"] - r["needle_tokens"], r
        assert 0 <= r["depth"] <= 100
    if t == "vt":
        assert len(e) == 5 and all(re.fullmatch("[A-Z]{5}", v) for v in e) and re.fullmatch(r"\d{5}", r["query"])
    if t.startswith("niah"):
        assert len(e) == 1
        assert uuid.match(e[0]) if t.endswith("uuid") else re.fullmatch(r"[1-9]\d{6}", e[0]), r
        assert uuid.match(r["query"]) if t == "niah_multikey_uuid" else "-" in r["query"]
    # the score is RULER's string_match_all of the answer as recorded
    want = sum(x.lower() in r["answer"].lower() for x in e) / len(e)
    assert abs(r["score"] - want) < 1e-12, r
# the items differ across trials and lengths (seeded per item)
assert len(set(json.dumps(r["expected"]) for r in rows)) == 24
s = json.load(open(d + "/summary.json"))
assert s["items"] == 24 and s["lengths"] == [520, 700] and list(s["score"]) == tasks
for t in tasks:
    got = [sum(r["score"] for r in rows if r["task"] == t and r["length"] == L) / 2 * 100 for L in (520, 700)]
    assert all(abs(a - b) < 1e-9 for a, b in zip(s["score"][t], got)), (t, s["score"][t], got)
    line = [l for l in table if l.split()[0] == t]
    assert len(line) == 1 and len(line[0].split()) == 3, table
assert len(s["average"]) == 2 and table[0].split()[-2:] == ["520", "700"], table
png = open(d + "/ruler.png", "rb").read()
assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000
ET.parse(d + "/ruler.svg")
print("lines: prompt_tokens = length, needle_pos inside the prompt, scores = string_match_all; "
      "table and plots written")
PY

# ---- resumption -------------------------------------------------------------------------------
mkdir "$W/c"
cp "$W/r1/config.json" "$W/c/"
head -n 7 "$W/r1/results.jsonl" > "$W/c/results.jsonl"
sed -n 8p "$W/r1/results.jsonl" | head -c 40 >> "$W/c/results.jsonl" # a line cut by a kill
run 2 "$LONGCTX" eval "${RU[@]}" --output "$W/c" --tp 1 > /dev/null 2> "$W/log"
grep -q '7 done before, 17 to run' "$W/log" || { cat "$W/log"; fail "resume counts"; }
same "$W/r1" "$W/c"
run 1 "$LONGCTX" eval "${RU[@]}" --output "$W/c" > /dev/null 2> "$W/log"
grep -q '24 done before, 0 to run' "$W/log" || { cat "$W/log"; fail "rerun of a finished run"; }
same "$W/r1" "$W/c"
echo "resume: a cut journal reruns only the 17 items left, to the same files"

# a real kill -9 of every process of the job, mid-run
KL=(ruler --model "$W/m" --lengths 400 --tasks niah_single,vt --trials 30 --seed 3)
run 2 "$LONGCTX" eval "${KL[@]}" --output "$W/k_ref" --tp 1 > /dev/null 2>&1
timeout 300 mpirun --oversubscribe -np 2 "$LONGCTX" eval "${KL[@]}" --output "$W/k" \
    --tp 1 > /dev/null 2>&1 &
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
[ "$before" -lt 60 ] || fail "the job ended before the kill ($before lines)"
run 2 "$LONGCTX" eval "${KL[@]}" --output "$W/k" --tp 1 > /dev/null 2> "$W/log"
grep -q " $before done before" "$W/log" || { cat "$W/log"; fail "$before lines before the rerun"; }
same "$W/k_ref" "$W/k"
echo "kill -9 after $before of 60 lines, rerun: $(grep -o '[0-9]* done before, [0-9]* to run' "$W/log"); same files as an uninterrupted run"

# ---- usage errors -----------------------------------------------------------------------------
expect2() { # expect2 PATTERN CMD...: exit 2 and the pattern on stderr
    local pat=$1 rc=0
    shift
    "$@" > /dev/null 2> "$W/err" || rc=$?
    [ "$rc" -eq 2 ] || { cat "$W/err"; fail "exit $rc, want 2: $*"; }
    grep -q -- "$pat" "$W/err" || { cat "$W/err"; fail "no '$pat' in the message"; }
}
expect2 "'niah' is not a task" "$LONGCTX" eval "${RU[@]}" --output "$W/x" --tasks vt,niah
expect2 "'vt' is given twice" "$LONGCTX" eval "${RU[@]}" --output "$W/x" --tasks vt,vt
expect2 "is shorter than" "$LONGCTX" eval ruler --model "$W/m" --output "$W/x" --lengths 100
expect2 "must divide" run 2 "$LONGCTX" eval "${RU[@]}" --output "$W/x" --tp 3
expect2 "another run's configuration" "$LONGCTX" eval "${RU[@]}" --output "$W/r1" --seed 12
expect2 "not an integer" "$LONGCTX" eval "${RU[@]}" --output "$W/x" --lengths 500,x
"$LONGCTX" eval ruler --help | grep -q -- '--tasks T,...' || fail "--help"
"$LONGCTX" eval --help | grep -q -- 'ruler' || fail "eval --help names ruler"
echo "usage errors: exit 2 with their reason"

# non-finite logits (a NaN final norm): each item is recorded with its error and score 0, and the
# job goes on
cp -r "$W/m" "$W/nan"
$PY - "$W/nan/model.safetensors" <<'PY'
import json, struct, sys, numpy as np
path = sys.argv[1]
raw = bytearray(open(path, "rb").read())
n = struct.unpack_from("<Q", raw, 0)[0]
t = json.loads(raw[8:8 + n])["model.norm.weight"]
assert t["dtype"] == "F32", t["dtype"]
a, b = t["data_offsets"]
raw[8 + n + a:8 + n + b] = np.full((b - a) // 4, np.nan, np.float32).tobytes()
open(path, "wb").write(raw)
PY
run 2 "$LONGCTX" eval ruler --model "$W/nan" --lengths 520 --trials 1 --tasks niah_single,vt \
    --output "$W/nan_out" > /dev/null 2> "$W/nan.err" || { cat "$W/nan.err"; fail "the NaN model's job failed"; }
$PY - "$W/nan_out/results.jsonl" <<'PY' || fail "NaN items"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
assert len(lines) == 2, len(lines)
for o in lines:
    assert o["error"] == "non-finite logits in the prefill" and o["score"] == 0, o
    assert o["score_part"] == 0 and o["answer"] == "", o
PY
echo "non-finite logits: 2 items recorded with their error and score 0"
