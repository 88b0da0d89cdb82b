#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan+UBSan, in build-fuzz/) and runs each for SECONDS,
# from its committed seed corpus (tests/fuzz/corpus/<target>, copied: the seeds stay as they
# are). PARALLEL targets run at once (default: one). One markdown row per target on stdout
# (RELIABILITY.md). A crash stops it: the sanitizer's report, and the input is kept in
# FINDINGS/ (add it to the target's corpus with the fix).
#   CI (tests/run_tests.sh):   tests/fuzz/run_fuzz.sh 20
#   the long runs:             PARALLEL=2 tests/fuzz/run_fuzz.sh 600    (10 CPU-minutes each)
# usage: [PARALLEL=P] [TARGETS="..."] [FINDINGS=DIR] run_fuzz.sh [SECONDS=600]
set -euo pipefail
SECONDS_EACH=${1:-600}
cd "$(dirname "$0")/../.."
TARGETS=${TARGETS:-fuzz_shard_read fuzz_tokenize fuzz_safetensors fuzz_config fuzz_prep_json fuzz_recipe fuzz_megatron_idx fuzz_tokenizer_file}
PARALLEL=${PARALLEL:-1}
FINDINGS=${FINDINGS:-$PWD/build-fuzz/findings}
cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DFUZZ=ON -DSANITIZE=address,undefined \
  -DBUILD_TESTING=ON > /dev/null
# shellcheck disable=SC2086 # a list of targets
cmake --build build-fuzz -j "$(nproc)" --target $TARGETS > /dev/null
mkdir -p "$FINDINGS"
W=$(mktemp -d "${TMPDIR:-/tmp}/longctx-fuzz-XXXXXX")
trap 'rm -rf "$W"' EXIT
one() { # TARGET: runs it, leaves W/TARGET.log and W/TARGET.rc
  local t=$1 rc=0
  mkdir -p "$W/$t"
  cp tests/fuzz/corpus/"$t"/* "$W/$t"/
  ./build-fuzz/tests/fuzz/"$t" -max_total_time="$SECONDS_EACH" -max_len=8192 \
    -artifact_prefix="$FINDINGS/$t-" "$W/$t" > "$W/$t.log" 2>&1 || rc=$?
  echo "$rc" > "$W/$t.rc"
}
running=0
for t in $TARGETS; do
  one "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$PARALLEL" ]; then wait -n || true; running=$((running - 1)); fi
done
wait
echo "| target | seconds | runs | corpus entries at the end | seeds | result |"
echo "|---|---|---|---|---|---|"
fail=0
for t in $TARGETS; do
  rc=$(cat "$W/$t.rc")
  runs=$(grep -o 'Done [0-9]* runs' "$W/$t.log" | grep -o '[0-9]*' || echo "-")
  n_seeds=$(find tests/fuzz/corpus/"$t" -type f | wc -l)
  n_corpus=$(find "$W/$t" -type f | wc -l)
  if [ "$rc" = 0 ]; then res="held"; else res="FAILED (rc $rc; input in $FINDINGS)"; fail=1; fi
  echo "| $t | $SECONDS_EACH | $runs | $n_corpus | $n_seeds | $res |"
done
if [ $fail = 1 ]; then
  for t in $TARGETS; do
    [ "$(cat "$W/$t.rc")" = 0 ] || { echo "---- $t"; tail -n 40 "$W/$t.log"; }
  done
  exit 1
fi
