#!/usr/bin/env bash
# bench_tp.sh - tensor parallelism on one machine, side by side in one run (issue 11): the
# 246M random model of bench_infer.sh (F32: hidden 1024, intermediate 2816, 16 layers, 16 heads,
# 4 KV heads, vocab 32000), RUNS times interleaved:
#   tp1     longctx infer, 1 rank x 2 threads
#   tp2     mpirun -np 2 --bind-to core longctx infer --tp 2, 1 thread per rank
#   dllama2 distributed-llama (../shared/tools/peers/distributed-llama), root + 1 worker on
#           loopback, 1 thread each, the same weights (hf_to_dllama.py), F32 buffers
#   dllama1 distributed-llama, 1 process x 2 threads (for reference)
# Same prompt length and generated count for all: distributed-llama takes text, so its prompt
# is the text whose tokenization (its own) has PROMPT tokens or close, and longctx gets the
# first PROMPT ids of the Llama 2 tokenization of a longer text: the same counts, not the same
# ids (random weights: the ids do not change the work). Reports best tok/s and the range,
# longctx's share of decode time in communication, and the issue's ratios.
# usage: bench_tp.sh [WORKDIR=/tmp/longctx-bench-tp]   env: RUNS=3 GEN=128 LONGCTX DLLAMA
set -uo pipefail
W=${1:-/tmp/longctx-bench-tp}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
LONGCTX=${LONGCTX:-$ROOT/build/longctx}
PEER=$(cd "$ROOT/.." && pwd)/shared/tools/peers/distributed-llama
TOK=$(cd "$ROOT/.." && pwd)/shared/assets/tokenizers/llama2/tokenizer.model
RUNS=${RUNS:-3} GEN=${GEN:-128}
PY=/usr/bin/python3
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
mkdir -p "$W"
M=$W/m246
[ -f "$M/model.safetensors" ] || $PY "$ROOT/tests/infer/hf/gen_hf_model.py" "$M" --hidden 1024 \
    --intermediate 2816 --layers 16 --heads 16 --kv-heads 4 --vocab 32000 --max-pos 4096 \
    --seed 11 > /dev/null || exit 1
have_dl=0
if DL=${DLLAMA:-$("$PEER/install.sh" 2> /dev/null)} && [ -x "$DL" ]; then
    [ -f "$W/m246.m" ] || $PY "$PEER/hf_to_dllama.py" "$M" "$W/m246.m" > /dev/null || exit 1
    [ -f "$W/tok.t" ] || $PY "$PEER/spm_to_dllama.py" "$TOK" "$W/tok.t" > /dev/null || exit 1
    have_dl=1
else
    echo "bench_tp: distributed-llama did not build: its side is not measured"
fi
$PY - "$W" <<'PY'
import random, sys
r = random.Random(3)
w = ("the of and to in is was for on that with as by at from it his an were are which this be "
     "or has had first one their its new after who they two her she been other when there all "
     "during into school time may years more most only over city some world would where later up "
     "such used many can state about national out known university united then made").split()
open(sys.argv[1] + "/text.txt", "w").write(" ".join(r.choice(w) for _ in range(1200)))
PY
# distributed-llama's prompt: 910 characters of the text gave 488 of its tokens; longctx: 488 ids
head -c 910 "$W/text.txt" > "$W/dl_prompt.txt"
"$LONGCTX" tokenize --tokenizer "$TOK" --input "$W/text.txt" --add-bos --format text |
    tr ' ' '\n' | head -n 488 | paste -sd, > "$W/ids.csv"
RAW=$W/raw.txt
: > "$RAW"
ours() { # name np threads
    local e=$W/err.$1
    if [ "$2" = 1 ]; then
        "$LONGCTX" infer --model "$M" --prompt-ids "@$W/ids.csv" --generate $((GEN + 1)) --ignore-eos \
            --threads "$3" --timings > /dev/null 2> "$e"
    else
        mpirun -np "$2" --bind-to core --map-by core "$LONGCTX" infer --model "$M" --tp "$2" \
            --prompt-ids "@$W/ids.csv" --generate $((GEN + 1)) --ignore-eos --threads "$3" \
            --timings > /dev/null 2> "$e"
    fi || { echo "bench_tp: $1 failed: $(tail -3 "$e")"; return; }
    $PY - "$1" "$e" >> "$RAW" <<'PY'
import re, sys
t = dict(re.findall(r"(\w+)=([0-9.]+)", open(sys.argv[2]).read().split("timings:")[1]))
print(sys.argv[1], float(t["prefill_tokens"]) / float(t["prefill_s"]),
      float(t["decode_tokens"]) / float(t["decode_s"]),
      float(t["comm_decode_s"]) / float(t["decode_s"]))
PY
}
dllama() { # name processes threads
    local e=$W/err.$1 pid=
    if [ "$2" = 2 ]; then
        "$DL" worker --port 9998 --nthreads "$3" > "$W/worker.log" 2>&1 &
        pid=$!
        sleep 1
    fi
    timeout 600 "$DL" inference --model "$W/m246.m" --tokenizer "$W/tok.t" --buffer-float-type f32 \
        --nthreads "$3" --max-seq-len 1024 --steps $((488 + GEN)) \
        --prompt "$(cat "$W/dl_prompt.txt")" ${pid:+--workers 127.0.0.1:9998} > "$e" 2>&1
    [ -n "$pid" ] && { kill "$pid" 2> /dev/null; wait "$pid" 2> /dev/null; }
    $PY - "$1" "$e" >> "$RAW" <<'PY' || echo "bench_tp: $1: no summary in $e"
import re, sys
s = open(sys.argv[2]).read()
ev = re.search(r"Evaluation.*?nTokens: (\d+).*?tokens/s: ([0-9.]+)", s, re.S)
pr = re.search(r"Prediction.*?nTokens: (\d+).*?tokens/s: ([0-9.]+)", s, re.S)
print(sys.argv[1], ev.group(2), pr.group(2), "nan", "# tokens", ev.group(1), pr.group(1))
PY
}
for r in $(seq "$RUNS"); do
    echo "run $r of $RUNS ($(uptime | sed 's/.*load/load/'))"
    ours tp1 1 2
    ours tp2 2 1
    if [ $have_dl = 1 ]; then
        dllama dllama2 2 1
        dllama dllama1 1 2
    fi
done
$PY - "$RAW" <<'PY'
import sys, collections
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    f = line.split()
    runs[f[0]].append((float(f[1]), float(f[2]), float(f[3])))
print("\n| side | prefill tok/s best (range) | decode tok/s best (range) | decode time in all-reduce |")
print("|---|---|---|---|")
best = {}
for name in ("tp1", "tp2", "dllama2", "dllama1"):
    if name not in runs:
        print("| %s | not measured | not measured | |" % name)
        continue
    v = runs[name]
    p = [x[0] for x in v]; d = [x[1] for x in v]; c = [x[2] for x in v]
    best[name] = (max(p), max(d))
    share = "%.0f%%" % (100 * min(c)) if c[0] == c[0] else "-"
    print("| %s | %.1f (%.1f-%.1f) | %.2f (%.2f-%.2f) | %s |" % (name, max(p), min(p), max(p),
          max(d), min(d), max(d), share))
def ratio(a, b, i):
    return "%.2fx" % (best[a][i] / best[b][i]) if a in best and b in best else "not measured"
print("\nTP 2 / TP 1 (want >= 0.9): prefill %s, decode %s" % (ratio("tp2", "tp1", 0), ratio("tp2", "tp1", 1)))
print("TP 2 / distributed-llama 2 x 1 (want prefill >= 1.5x, decode >= 1.3x): prefill %s, decode %s"
      % (ratio("tp2", "dllama2", 0), ratio("tp2", "dllama2", 1)))
PY
