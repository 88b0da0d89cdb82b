#!/usr/bin/env bash
# Needle grid throughput (BENCHMARKS.md, "Issue 12: needle grid throughput"): the same cells of
# `longctx eval needle` run three ways, each timed by wall clock from launch to exit (MPI start,
# model load and every item included):
#   job, reuse       one `longctx eval needle` job (the model loaded once, prefix reuse on)
#   job, no reuse    the same with --no-prefix-reuse (every prompt prefilled from 0)
#   per cell         one `longctx infer --prompt-ids @FILE --generate 50` process per cell, the
#                    prompts written by needle_prompts from the eval library's generator
# and checks that all three give every cell the same greedy answer ids. Items/s = cells / s.
# Model: random weights (gen_hf_model.py: hidden 256, intermediate 688, LAYERS layers, 8 heads,
# 4 KV heads, vocab 32000, seed 3) with the Llama 2 tokenizer; haystack README.md and
# BENCHMARKS.md; --threads 1; -np NP (replicas of TP 1 for the jobs; the per-cell processes run
# one at a time at -np 1).
# usage: bench_needle.sh LONGCTX NEEDLE_PROMPTS [LENGTHS [DEPTHS [NP [LAYERS [RUNS]]]]]
#        defaults 1024,2048,3072,4096  0,25,50,75,100  1  2  2
set -euo pipefail
LONGCTX=$1
PROMPTS=$2
LENGTHS=${3:-1024,2048,3072,4096}
DEPTHS=${4:-0,25,50,75,100}
NP=${5:-1}
LAYERS=${6:-2}
RUNS=${7:-2}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
ASSETS=${LONGCTX_ASSETS:-$(cd "$ROOT/.." && pwd)/shared/assets}
T=$ASSETS/tokenizers/llama2/tokenizer.model
[ -f "$T" ] || { echo "SKIP: $T missing"; exit 0; }
PY=/usr/bin/python3
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
W=$(mktemp -d "${TMPDIR:-/tmp}/longctx-bench-needle-XXXXXX")
trap 'rm -rf "$W"' EXIT
max=$(tr , '\n' <<< "$LENGTHS" | sort -n | tail -1)
$PY "$HERE/../infer/hf/gen_hf_model.py" "$W/m" --hidden 256 --intermediate 688 --layers "$LAYERS" \
    --heads 8 --kv-heads 4 --vocab 32000 --max-pos "$max" --seed 3 --tokenizer "$T" > /dev/null
HAY=(--haystack "$ROOT/README.md" --haystack "$ROOT/BENCHMARKS.md")
A=(needle --model "$W/m" --lengths "$LENGTHS" --depths "$DEPTHS" "${HAY[@]}" --threads 1)
now() { date +%s.%N; }
"$PROMPTS" "$T" "$W" "$LENGTHS" "$DEPTHS" "$ROOT/README.md" "$ROOT/BENCHMARKS.md"
n=$(wc -l < "$W/items.tsv")
echo "needle grid: lengths $LENGTHS x depths $DEPTHS = $n cells; $LAYERS layers; -np $NP; $(date -u +%FT%H:%MZ)"

# RUNS rounds, the three ways interleaved in each; the best time of each way counts (the machine is
# shared: the best is the least disturbed)
: > "$W/times"
for r in $(seq "$RUNS"); do
    rm -rf "$W/reuse" "$W/off"
    t0=$(now)
    mpirun --oversubscribe -np "$NP" "$LONGCTX" eval "${A[@]}" --output "$W/reuse" --tp 1 \
        2> "$W/log.reuse"
    t1=$(now)
    mpirun --oversubscribe -np "$NP" "$LONGCTX" eval "${A[@]}" --output "$W/off" --tp 1 \
        --no-prefix-reuse 2> "$W/log.off"
    t2=$(now)
    for i in $(seq 0 $((n - 1))); do
        mpirun --oversubscribe -np 1 "$LONGCTX" infer --model "$W/m" --prompt-ids "@$W/item$i.ids" \
            --generate 50 --threads 1 2> /dev/null | head -n 1 > "$W/gen$i.txt"
    done
    t3=$(now)
    echo "$t0 $t1 $t2 $t3" >> "$W/times"
done
cmp "$W/reuse/results.jsonl" "$W/off/results.jsonl" || { echo "FAIL: reuse changed the results"; exit 1; }
$PY - "$W" "$n" <<'PY'
import sys, json
w, n = sys.argv[1], int(sys.argv[2])
rows = [json.loads(l) for l in open(w + "/reuse/results.jsonl")]
assert len(rows) == n
for r in rows:
    ids = [int(x) for x in open("%s/gen%d.txt" % (w, r["item"])).read().split()]
    assert ids == r["answer_ids"], (r["item"], ids[:5], r["answer_ids"][:5])
print("the same greedy answer ids for every cell: job with reuse, job without, one process per cell")
PY
for k in reuse off; do
    sed -n 's/.*items in \([0-9.]*\) s.*prefilled \([0-9]*\) of \([0-9]*\) prompt.*/  last run, in the job'"'"'s loop (\1 s): prefilled \2 of \3 prompt tokens/p' "$W/log.$k" > "$W/note.$k"
done
$PY - "$n" "$W/times" "$(cat "$W/note.reuse")" "$(cat "$W/note.off")" <<'PY'
import sys
n = int(sys.argv[1])
rounds = [[float(x) for x in l.split()] for l in open(sys.argv[2])]
secs = [[r[k + 1] - r[k] for r in rounds] for k in range(3)]
names = ("job, prefix reuse", "job, --no-prefix-reuse", "one infer process per cell")
notes = (sys.argv[3], sys.argv[4], "")
best = [min(s) for s in secs]
for k in range(3):
    print("%-28s %7.2f s  %6.3f items/s  %5.2fx per cell   (runs: %s)%s" % (names[k], best[k],
          n / best[k], best[2] / best[k], " ".join("%.2f" % x for x in secs[k]),
          "\n" + notes[k] if notes[k] else ""))
PY
