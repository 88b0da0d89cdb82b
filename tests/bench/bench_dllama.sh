#!/usr/bin/env bash
# bench_dllama.sh - distributed-llama alone on the 246M random model of bench_infer.sh (F32:
# hidden 1024, intermediate 2816, 16 layers, 16 heads, 4 KV heads, vocab 32000; the same
# generator and flags as bench_infer.sh and bench_tp.sh), converted with hf_to_dllama.py, and the
# Llama 2 tokenizer (spm_to_dllama.py). RUNS times, interleaved:
#   1x1  one process, 1 thread
#   1x2  one process, 2 threads
#   2x1  root + 1 worker on loopback (127.0.0.1:PORT), 1 thread each
# Its own counters: "Evaluation" (prefill) and "Prediction" (decode) tokens/s. The prompt is the
# same text as bench_tp.sh's (910 characters of a word salad); the script also counts its Llama 2
# tokens with longctx tokenize (+ BOS) beside distributed-llama's nTokens, so that the counts
# can be checked to be the same prompt. Shares WORKDIR with bench_tp.sh (model and .m reused).
# usage: bench_dllama.sh [WORKDIR=/tmp/longctx-bench-tp]   env: RUNS=3 GEN=128 PORT=9997 DLLAMA
set -uo pipefail
W=${1:-/tmp/longctx-bench-tp}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
LONGCTX=${LONGCTX:-$ROOT/build/longctx}
PEER=$(cd "$ROOT/.." && pwd)/shared/tools/peers/distributed-llama
TOK=$(cd "$ROOT/.." && pwd)/shared/assets/tokenizers/llama2/tokenizer.model
RUNS=${RUNS:-3} GEN=${GEN:-128} PORT=${PORT:-9997}
PY=/usr/bin/python3
mkdir -p "$W"
DL=${DLLAMA:-$("$PEER/install.sh")} && [ -x "$DL" ] || {
    echo "bench_dllama: distributed-llama did not build: not measured"
    exit 1
}
M=$W/m246
[ -f "$M/model.safetensors" ] || $PY "$ROOT/tests/infer/hf/gen_hf_model.py" "$M" --hidden 1024 \
    --intermediate 2816 --layers 16 --heads 16 --kv-heads 4 --vocab 32000 --max-pos 4096 \
    --seed 11 > /dev/null || exit 1
[ -f "$W/m246.m" ] || $PY "$PEER/hf_to_dllama.py" "$M" "$W/m246.m" > /dev/null || exit 1
[ -f "$W/tok.t" ] || $PY "$PEER/spm_to_dllama.py" "$TOK" "$W/tok.t" > /dev/null || exit 1
# the text of bench_tp.sh (same seed and words), cut at 910 characters
$PY - "$W/dl_text.txt" <<'PY'
import random, sys
r = random.Random(3)
w = ("the of and to in is was for on that with as by at from it his an were are which this be "
     "or has had first one their its new after who they two her she been other when there all "
     "during into school time may years more most only over city some world would where later up "
     "such used many can state about national out known university united then made").split()
open(sys.argv[1], "w").write(" ".join(r.choice(w) for _ in range(1200)))
PY
PROMPT_TEXT=$(head -c 910 "$W/dl_text.txt")
NOURS=
[ -x "$LONGCTX" ] && NOURS=$(printf '%s' "$PROMPT_TEXT" |
    "$LONGCTX" tokenize --tokenizer "$TOK" --add-bos --format text | wc -w)
RAW=$W/dllama_raw.txt
: > "$RAW"
run() { # name processes threads
    local e=$W/dllama_err.$1 pid=
    if [ "$2" = 2 ]; then
        "$DL" worker --port "$PORT" --nthreads "$3" > "$W/dllama_worker.log" 2>&1 &
        pid=$!
        sleep 1
    fi
    # --steps counts the prompt: its tokens (found on the first run) + GEN
    timeout 600 "$DL" inference --model "$W/m246.m" --tokenizer "$W/tok.t" --buffer-float-type f32 \
        --nthreads "$3" --max-seq-len 1024 --steps $((${NDL:-488} + GEN)) --prompt "$PROMPT_TEXT" \
        ${pid:+--workers 127.0.0.1:$PORT} > "$e" 2>&1
    [ -n "$pid" ] && { kill "$pid" 2> /dev/null; wait "$pid" 2> /dev/null; }
    $PY - "$1" "$e" "$(cut -d' ' -f1-3 /proc/loadavg)" >> "$RAW" <<'PY' || echo "bench_dllama: $1: no summary in $e"
import re, sys
s = open(sys.argv[2]).read()
ev = re.search(r"Evaluation.*?nTokens: (\d+).*?tokens/s: ([0-9.]+)", s, re.S)
pr = re.search(r"Prediction.*?nTokens: (\d+).*?tokens/s: ([0-9.]+)", s, re.S)
print(sys.argv[1], ev.group(2), pr.group(2), ev.group(1), pr.group(1), "load", sys.argv[3])
PY
    [ -z "${NDL:-}" ] && NDL=$(awk 'NR==1 {print $4}' "$RAW")
}
echo "bench_dllama: $DL, prompt of $(printf '%s' "$PROMPT_TEXT" | wc -c) characters," \
    "Llama 2 tokens by longctx tokenize (+BOS): ${NOURS:-not counted}; $RUNS runs, $GEN generated"
for r in $(seq "$RUNS"); do
    echo "run $r of $RUNS ($(uptime | sed 's/.*load/load/'))"
    run 1x1 1 1
    run 1x2 1 2
    run 2x1 2 1
done
cat "$RAW"
$PY - "$RAW" <<'PY'
import sys, collections
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    f = line.split()
    runs[f[0]].append((float(f[1]), float(f[2]), f[3], f[4]))
print("\n| distributed-llama | prompt / generated tokens | prefill tok/s best (range) | decode tok/s best (range) |")
print("|---|---|---|---|")
for name in ("1x1", "1x2", "2x1"):
    if name not in runs:
        print("| %s | | not measured | not measured |" % name)
        continue
    v = runs[name]
    p = [x[0] for x in v]; d = [x[1] for x in v]
    print("| %s | %s / %s | %.1f (%.1f-%.1f) | %.2f (%.2f-%.2f) |" % (name, v[0][2], v[0][3],
          max(p), min(p), max(p), max(d), min(d), max(d)))
PY
