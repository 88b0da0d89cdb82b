#!/usr/bin/env bash
# A long prefill split over 2 tensor-parallel ranks against one rank (issue 11): a random GQA
# model (hidden 256, 4 layers, 4 heads, 2 KV heads, head_dim 64, theta 500000, F32) and a prompt
# of T random ids (default 131072), run as
#   TP 1: longctx infer, 1 rank x THREADS threads        TP 2: mpirun -np 2 --tp 2, 1 thread each
# Checks: the logits at sampled positions of TP 2 equal TP 1's within 1e-5 relative
# (compare_logits.py); each rank's peak RSS (--timings: peak_rss_max / _min over the ranks) is
# within 10% of `longctx plan --tp 2` for the same run plus the process baseline (the larger
# RSS of the 2 ranks of `mpirun -np 2 longctx infer --help`: code, libraries, MPI_Init).
# Prints the times. Not a ctest (minutes at T = 131072): results in BENCHMARKS.md.
# usage: bench_tp_long.sh [T=131072] [WORKDIR]
set -euo pipefail
T=${1:-131072}
W=${2:-/tmp/longctx-tp-long}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
LONGCTX=${LONGCTX:-$ROOT/build/longctx}
THREADS=${THREADS:-2}
PY=/usr/bin/python3
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
mkdir -p "$W"
[ -d "$W/m" ] || $PY "$ROOT/tests/infer/hf/gen_hf_model.py" "$W/m" --hidden 256 --intermediate 688 \
    --layers 4 --heads 4 --kv-heads 2 --vocab 2048 --max-pos 131072 --rope-theta 500000 --seed 11 > /dev/null
$PY - "$T" "$W" <<'PY'
import sys, numpy as np
T, w = int(sys.argv[1]), sys.argv[2]
ids = np.random.default_rng(5).integers(3, 2048, T)
ids[0] = 1
open(w + "/ids.txt", "w").write(" ".join(map(str, ids)))
pos = sorted({0, 1, 127, 128, 2047, 4096, T // 4, T // 2, 3 * T // 4, T - 2, T - 1} & set(range(T)))
open(w + "/pos.txt", "w").write(",".join(map(str, pos)))
PY
pos=$(cat "$W/pos.txt")
timing() { grep -o " $1=[0-9.]*" "$2" | cut -d= -f2; }
run() { # NP TP THREADS OUT IDS
    mpirun -np "$1" --bind-to core "$LONGCTX" infer --model "$W/m" --prompt-ids "@$5" --tp "$2" \
        --threads "$3" --prefill-chunk 512 --logits-out "$W/$4.f32" --logits-positions "$6" \
        --timings > /dev/null 2> "$W/err.$4" || { cat "$W/err.$4"; exit 1; }
}
# the baseline: code, libraries and MPI_Init of one rank of 2, nothing allocated
mpirun -np 2 sh -c '/usr/bin/time -f %M -o "$0.$OMPI_COMM_WORLD_RANK" "$1" infer --help > /dev/null' \
    "$W/rss.base" "$LONGCTX"
run 1 1 "$THREADS" tp1 "$W/ids.txt" "$pos"
run 2 2 1 tp2 "$W/ids.txt" "$pos"
$PY "$ROOT/tests/infer/hf/compare_logits.py" "$W/tp2.f32" "$W/tp1.f32" --vocab 2048 --rel 1e-5
plan() { "$LONGCTX" plan --model "$W/m" --ctx "$1" --kv-dtype f32 --prefill-chunk 512 --threads 1 --tp 2 |
    $PY -c 'import json,sys; print(json.load(sys.stdin)["per_rank"]["total_bytes"])'; }
p_run=$(plan "$T")
base=$(($(sort -n "$W"/rss.base.* | tail -1) * 1024))
hi=$(timing peak_rss_max "$W/err.tp2") lo=$(timing peak_rss_min "$W/err.tp2")
for f in tp1 tp2; do
    echo "$f: prefill $(timing prefill_s "$W/err.$f") s for $T tokens, all-reduce $(timing comm_prefill_s "$W/err.$f") s"
done
$PY - "$hi" "$lo" "$base" "$p_run" <<'PY'
import sys
hi, lo, b, plan = map(int, sys.argv[1:])
for name, rss in (("max", hi), ("min", lo)):
    d = (rss - b - plan) / plan
    print("TP 2 peak RSS per rank (%s) %.1f MiB = baseline %.1f + %.1f; plan %.1f MiB: %+.1f%%"
          % (name, rss / 2**20, b / 2**20, (rss - b) / 2**20, plan / 2**20, 100 * d))
    assert abs(d) <= 0.10, d
PY
