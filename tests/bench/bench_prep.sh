#!/usr/bin/env bash
# prep end to end on >= 1 GB of generated SlimPajama-like jsonl.zst (tests/prep/data), Llama 2
# tokenizer, recipe fu2024-per-source:
#   - the tokenizer's own speed on the same text (longctx tokenize --stats, 1 thread);
#   - prep at mpirun -np 1 and -np 2 (1 thread per rank): wall time, MB/s of text per core,
#     peak RSS of every rank (/usr/bin/time inside mpirun);
# Results go to BENCHMARKS.md.
# usage: bench_prep.sh [DOCS=260000] [WORKDIR=/tmp/longctx-bench-prep] [TARGET=200000000]
set -euo pipefail
DOCS=${1:-260000}
W=${2:-/tmp/longctx-bench-prep}
TARGET=${3:-200000000}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
LONGCTX=${LONGCTX:-$ROOT/build/longctx}
ASSETS=${LONGCTX_ASSETS:-$(cd "$ROOT/.." && pwd)/shared/assets}
TOK=$ASSETS/tokenizers/llama2/tokenizer.model
PY=/usr/bin/python3
MPIEXEC=${MPIEXEC:-mpiexec}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
mkdir -p "$W"
if [ ! -f "$W/sp/corpus.json" ]; then
  $PY "$ROOT/tests/prep/data/gen_slimpajama.py" "$W/sp" --docs "$DOCS" --seed 1 \
    --files-per-domain 8 --jobs 2 >&2
fi
zst_bytes=$(du -cb "$W"/sp/train/*/*.zst | tail -n 1 | cut -f1)
# the tokenizer alone, on the same text (decompressed once, outside the timing)
for f in "$W"/sp/train/*/*.zst; do zstd -dc "$f"; done > "$W/all.jsonl"
jsonl_bytes=$(stat -c %s "$W/all.jsonl")
t0=$($PY -c 'import time; print(time.time())')
tok=$("$LONGCTX" tokenize --tokenizer "$TOK" --jsonl --input "$W/all.jsonl" --format u32 \
        --output /dev/null --stats 2>&1 | tail -n 1)
t1=$($PY -c 'import time; print(time.time())')
rm -f "$W/all.jsonl"
text_bytes=$($PY -c 'import json,sys; print(json.loads(sys.argv[1])["bytes"])' "$tok")
tok_mbs=$($PY -c 'import json,sys; print("%.1f" % json.loads(sys.argv[1])["MB_per_s"])' "$tok")
echo "corpus: $zst_bytes bytes of jsonl.zst, $jsonl_bytes bytes of jsonl, $text_bytes bytes of text"
tok_wall=$($PY -c "print('%.1f' % ($text_bytes / 1e6 / ($t1 - $t0)))")
echo "tokenizer alone (1 thread): $tok_mbs MB/s of text encoding only; $tok_wall MB/s for the whole"
echo "longctx tokenize command (reading jsonl, parsing JSON, writing u32 ids to /dev/null)"
echo
echo "| run | wall s | MB/s of text | MB/s per core | vs tokenizer | peak RSS per rank MiB |"
echo "|---|---|---|---|---|---|"
base=""
for np in 1 2; do
  rm -rf "$W/out$np"
  start=$($PY -c 'import time; print(time.time())')
  "$MPIEXEC" -np "$np" --oversubscribe sh -c '/usr/bin/time -f %M -o "$0.$OMPI_COMM_WORLD_RANK" "$@"' \
    "$W/rss$np" "$LONGCTX" prep --tokenizer "$TOK" --output "$W/out$np" --recipe fu2024-per-source \
    --target-tokens "$TARGET" --threads 1 --progress-seconds 30 "$W/sp/train" 2> "$W/log$np"
  end=$($PY -c 'import time; print(time.time())')
  rss=$(cat "$W"/rss$np.* | sort -n | tail -n 1)
  $PY - "$np" "$start" "$end" "$text_bytes" "$tok_mbs" "$rss" "$base" <<'PY'
import sys
np_, start, end, text, tok, rss, base = sys.argv[1:]
s = float(end) - float(start)
mbs = int(text) / 1e6 / s
print("| mpirun -np %s | %.1f | %.1f | %.1f | %.2fx | %d |%s" % (
    np_, s, mbs, mbs / int(np_), mbs / int(np_) / float(tok), int(rss) // 1024,
    "" if not base else " (%.2fx of -np 1)" % (float(base) / s)))
PY
  [ -n "$base" ] || base=$($PY -c "print(float($end) - float($start))")
done
diff -r "$W/out1" "$W/out2" > /dev/null && echo "outputs of -np 1 and -np 2: byte-identical"
sed -n '/## Domains/,/^"Long"/p' "$W/out1/report.md"
