#!/usr/bin/env bash
# End-to-end long prefill, one binary against another, runs interleaved (BENCHMARKS.md).
# The model and prompt of test_long_prefill.sh: a random HF model (hidden 256, intermediate 688,
# 4 layers, 4 heads, 2 KV heads, head_dim 64, vocab 2048, theta 500000, seed 11) and T random
# ids (seed 5), prefilled with --prefill-chunk 512 --threads 1 --timings; prints prefill_s.
# usage: bench_prefill.sh BASE_LONGCTX NEW_LONGCTX [T] [runs] [kv_dtype]   defaults 16384 3 f32
set -euo pipefail
BASE=$1
NEW=$2
T=${3:-16384}
RUNS=${4:-3}
KV=${5:-f32}
HERE=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3
W=$(mktemp -d "${TMPDIR:-/tmp}/longctx-bench-prefill-XXXXXX")
trap 'rm -rf "$W"' EXIT
$PY "$HERE/../infer/hf/gen_hf_model.py" "$W/m" --hidden 256 --intermediate 688 --layers 4 \
    --heads 4 --kv-heads 2 --vocab 2048 --max-pos 131072 --rope-theta 500000 --seed 11 > /dev/null
$PY - "$T" "$W/ids.txt" <<'PY'
import sys, numpy as np
ids = np.random.default_rng(5).integers(3, 2048, int(sys.argv[1]))
ids[0] = 1
open(sys.argv[2], "w").write(" ".join(map(str, ids)))
PY
echo "T=$T kv=$KV chunk=512 threads=1 $(date -u +%FT%H:%MZ)"
for i in $(seq "$RUNS"); do
    for which in base new; do
        bin=$BASE
        [ "$which" = new ] && bin=$NEW
        t=$("$bin" infer --model "$W/m" --prompt-ids "@$W/ids.txt" --prefill-chunk 512 \
            --threads 1 --kv-dtype "$KV" --timings 2>&1 > /dev/null | grep -o 'prefill_s=[0-9.]*')
        echo "run $i $which $t load $(cut -d' ' -f1 /proc/loadavg)"
    done
done
