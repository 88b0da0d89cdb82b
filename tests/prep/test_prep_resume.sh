#!/usr/bin/env bash
# Kill and resume: prep at mpirun -np 2 gets SIGKILL on one rank at a random moment (seeded),
# the same command runs again, and the output directory must be byte-identical to an
# uninterrupted run. Repeated ROUNDS times at different moments.
# usage: test_prep_resume.sh LONGCTX MPIEXEC [ROUNDS=3] [SEED=1]
set -euo pipefail
LONGCTX=$1 MPIEXEC=$2 ROUNDS=${3:-3} SEED=${4:-1}
HERE=$(cd "$(dirname "$0")" && pwd)
ASSETS=${LONGCTX_ASSETS:-$(cd "$HERE/../../.." && pwd)/shared/assets}
TOK=$ASSETS/tokenizers/llama2/tokenizer.model
PY=/usr/bin/python3
[ -f "$TOK" ] || { echo "SKIP: $TOK missing"; exit 0; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
W=$(mktemp -d "${TMPDIR:-/tmp}/longctx-resume-XXXXXX")
trap 'rm -rf "$W"' EXIT
$PY "$HERE/data/gen_slimpajama.py" "$W/sp" --docs 6000 --seed 5 --files-per-domain 3 > /dev/null 2>&1
ARGS=(prep --tokenizer "$TOK" --recipe fu2024-per-source --target-tokens 2000000
      --seq-len 4096,1024 --shard-tokens 100000 --progress-seconds 60)
"$MPIEXEC" -np 2 --oversubscribe "$LONGCTX" "${ARGS[@]}" --output "$W/ref" "$W/sp/train" 2> "$W/ref.log"
start=$(date +%s.%N)
"$MPIEXEC" -np 2 --oversubscribe "$LONGCTX" "${ARGS[@]}" --output "$W/time" "$W/sp/train" 2> /dev/null
full=$($PY -c "import time; print(time.time() - $start)")
echo "an uninterrupted run takes ${full} s"
passed=0
for round in $(seq 1 "$ROUNDS"); do
  out=$W/run$round
  delay=$($PY -c "import random; r = random.Random($SEED * 100 + $round); print('%.2f' % (r.uniform(0.05, 0.9) * $full))")
  "$MPIEXEC" -np 2 --oversubscribe "$LONGCTX" "${ARGS[@]}" --output "$out" "$W/sp/train" \
    > /dev/null 2>&1 &
  mpirun_pid=$!
  sleep "$delay"
  # SIGKILL one rank (the highest pid among longctx children of this mpirun)
  victim=$(pgrep -f "longctx prep.*--output $out" | sort -n | tail -n 1 || true)
  [ -n "$victim" ] && kill -9 "$victim" 2> /dev/null || true
  wait "$mpirun_pid" 2> /dev/null || true
  killed_units=$(ls "$out/work" 2> /dev/null | grep -c '\.meta$' || true)
  "$MPIEXEC" -np 2 --oversubscribe "$LONGCTX" "${ARGS[@]}" --output "$out" "$W/sp/train" \
    2> "$out.log" || { cat "$out.log"; exit 1; }
  if ! diff -r "$W/ref" "$out" > /dev/null; then
    diff -rq "$W/ref" "$out" | head; echo "round $round (kill at ${delay}s) differs"; exit 1
  fi
  echo "ok: round $round: killed a rank at ${delay} s (${killed_units} units done), resumed: byte-identical"
  passed=$((passed + 1))
done
echo "$passed passed, 0 failed"
