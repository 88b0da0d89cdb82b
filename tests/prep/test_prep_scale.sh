#!/usr/bin/env bash
# prep planned across the ranks (prep/prep_pack.c): on a corpus of short documents
# (tests/bench/gen_short_docs.py, the scale benchmark's corpus, small) cut into many work units:
#   - concat and bestfit with small windows (bestfit_window 3: many windows, planned on
#     different ranks) give the same bytes at -np 1, 2, 3, 4, with --threads 2, and with
#     --pack-memory from the default down to one sequence per round;
#   - the independent checker (tests/prep/data/check_prep_output.py) accepts both outputs;
#   - a bestfit window at least as large as the selection is the global best fit: the same
#     bytes as bestfit_window 1024 on a selection under 1024 sequences.
# usage: test_prep_scale.sh LONGCTX MPIEXEC
set -euo pipefail
LONGCTX=$1 MPIEXEC=$2
HERE=$(cd "$(dirname "$0")" && pwd)
ASSETS=${LONGCTX_ASSETS:-$(cd "$HERE/../../.." && pwd)/shared/assets}
TOK=$ASSETS/tokenizers/llama2/tokenizer.model
PY=/usr/bin/python3
[ -f "$TOK" ] || { echo "SKIP: $TOK missing"; exit 0; }
$PY -c 'import sentencepiece' 2>/dev/null || { echo "SKIP: python3-sentencepiece missing"; exit 0; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
W=$(mktemp -d "${TMPDIR:-/tmp}/longctx-scale-XXXXXX")
trap 'rm -rf "$W"' EXIT
$PY "$HERE/../bench/gen_short_docs.py" "$W/c" 60000 --per-file 20000
"$LONGCTX" prep --show-recipe keep | $PY -c '
import json, sys
r = json.load(sys.stdin)
r.update(name="keep-w3", packing="bestfit", bestfit_window=3)
json.dump(r, open(sys.argv[1], "w"))' "$W/w3.json"
run() { # NP OUT ARGS...
  local np=$1 out=$2
  shift 2
  "$MPIEXEC" -np "$np" --oversubscribe "$LONGCTX" prep --tokenizer "$TOK" --output "$out" \
    --domain-json meta.redpajama_set_name --unit-bytes 400000 --shard-tokens 20000 \
    --progress-seconds 60 "$@" "$W/c" 2> "$out.log" || { cat "$out.log"; exit 1; }
}
same() { diff -r -x work -x prep.lock "$1" "$2" > /dev/null || { diff -rq -x work "$1" "$2" | head; echo "FAIL: $3"; exit 1; }; }
for pack in concat w3; do
  if [ $pack = concat ]; then A=(--seq-len 2048 --packing concat); else A=(--recipe "$W/w3.json" --seq-len 2048); fi
  run 1 "$W/$pack-1" "${A[@]}"
  grep -q "sequences in [0-9]* shards" "$W/$pack-1.log" || { cat "$W/$pack-1.log"; exit 1; }
  for np in 2 3 4; do run $np "$W/$pack-$np" "${A[@]}"; same "$W/$pack-1" "$W/$pack-$np" "$pack at -np $np"; done
  run 2 "$W/$pack-t2" "${A[@]}" --threads 2
  same "$W/$pack-1" "$W/$pack-t2" "$pack with --threads 2"
  run 3 "$W/$pack-m" "${A[@]}" --pack-memory 1
  grep -q "rounds of 1 sequences per rank" "$W/$pack-m.log" || { cat "$W/$pack-m.log"; exit 1; }
  same "$W/$pack-1" "$W/$pack-m" "$pack with one sequence per round"
  ! ls "$W/$pack-m"/work/spill-* > /dev/null 2>&1 || { echo "FAIL: a spill file was left"; exit 1; }
  echo "ok: $pack: the same bytes at -np 1, 2, 3, 4, --threads 2 and --pack-memory 1"
done
$PY "$HERE/data/check_prep_output.py" --corpus-dir "$W/c" --out "$W/concat-1" --tokenizer "$TOK" \
  --longctx "$LONGCTX" --bos 1 --domain-path meta.redpajama_set_name > "$W/check1" 2>&1 || { cat "$W/check1"; exit 1; }
$PY "$HERE/data/check_prep_output.py" --corpus-dir "$W/c" --out "$W/w3-1" --tokenizer "$TOK" \
  --longctx "$LONGCTX" --bos 1 --short any --unordered --domain-path meta.redpajama_set_name > "$W/check2" 2>&1 ||
  { cat "$W/check2"; exit 1; }
echo "ok: checker: concat $(tail -n 1 "$W/check1"), bestfit windows $(tail -n 1 "$W/check2")"
# windows: many with bestfit_window 3, one window (the global best fit) with a window past the
# selection: the two differ, and one window of 1024 = one window of 100000 sequences
n3=$(sed -n 's/.*L2048: \([0-9]*\) sequences.*/\1/p' "$W/w3-1.log")
"$LONGCTX" prep --show-recipe keep | $PY -c '
import json, sys
for w in (1024, 100000):
    r = json.load(sys.stdin) if w == 1024 else r
    r.update(name="keep-w", packing="bestfit", bestfit_window=w)
    json.dump(r, open(sys.argv[1] + "/w%d.json" % w, "w"))' "$W"
run 2 "$W/w1024" --recipe "$W/w1024.json" --seq-len 2048
run 2 "$W/w100000" --recipe "$W/w100000.json" --seq-len 2048
# --zstd-level: other shard bytes, the same sequences
run 2 "$W/z1" --seq-len 2048 --packing concat --zstd-level 1
for f in "$W"/concat-1/L2048/*.shard; do "$LONGCTX" shard cat --docs "$f"; done > "$W/z3.txt"
for f in "$W"/z1/L2048/*.shard; do "$LONGCTX" shard cat --docs "$f"; done > "$W/z1.txt"
cmp -s "$W/z3.txt" "$W/z1.txt" || { echo "FAIL: --zstd-level 1 changed the sequences"; exit 1; }
! cmp -s "$W/concat-1/L2048/part-00000.shard" "$W/z1/L2048/part-00000.shard" ||
  { echo "FAIL: --zstd-level 1 wrote level 3's bytes"; exit 1; }
echo "ok: --zstd-level 1: other shard bytes, the same sequences and documents"
n1=$(sed -n 's/.*L2048: \([0-9]*\) sequences.*/\1/p' "$W/w1024.log")
[ "$n1" -lt 1024 ] || { echo "FAIL: the selection is $n1 sequences, not under one window"; exit 1; }
diff -r -x work -x prep.lock -x recipe.txt -x '*.shard' "$W/w1024" "$W/w100000" > /dev/null || { echo "FAIL: manifests differ"; exit 1; }
for f in "$W"/w1024/L2048/*.shard; do "$LONGCTX" shard cat --docs "$f"; done > "$W/a.txt"
for f in "$W"/w100000/L2048/*.shard; do "$LONGCTX" shard cat --docs "$f"; done > "$W/b.txt"
cmp -s "$W/a.txt" "$W/b.txt" || { echo "FAIL: one window of 1024 differs from one of 100000"; exit 1; }
[ "$n3" -gt "$n1" ] || { echo "FAIL: windows of 3 sequences ($n3) pack no worse than one window ($n1)?"; exit 1; }
echo "ok: one window: $n1 sequences, the same with any larger window; windows of 3: $n3 sequences"
