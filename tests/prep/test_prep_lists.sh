#!/usr/bin/env bash
# List options of prep refuse an empty element anywhere, a trailing comma included, with the
# same usage error (exit 2) as "1,,2": --seq-len on the command line and every list of a recipe
# file (json-c's default parser takes [4096,] as [4096]). Good lists still run.
# usage: test_prep_lists.sh LONGCTX
set -euo pipefail
LONGCTX=$1
HERE=$(cd "$(dirname "$0")" && pwd)
ASSETS=${LONGCTX_ASSETS:-$(cd "$HERE/../../.." && pwd)/shared/assets}
TOK=$ASSETS/tokenizers/llama2/tokenizer.model
[ -f "$TOK" ] || { echo "SKIP: $TOK missing"; exit 0; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
W=$(mktemp -d "${TMPDIR:-/tmp}/longctx-lists-XXXXXX")
trap 'rm -rf "$W"' EXIT
printf '{"text": "hello world"}\n{"text": "a second document"}\n' > "$W/in.jsonl"
failed=0 passed=0
prep() { # expected-exit args...
  local want=$1; shift
  local rc=0
  "$LONGCTX" prep --tokenizer "$TOK" --output "$W/out" --progress-seconds 60 "$@" "$W/in.jsonl" \
    > /dev/null 2> "$W/log" || rc=$?
  rm -rf "$W/out"
  if [ "$rc" != "$want" ]; then
    echo "FAIL: prep $* exited $rc, want $want"; sed 's/^/  /' "$W/log" | head -3
    failed=$((failed + 1))
  else
    passed=$((passed + 1))
  fi
}
for bad in "4096," "1,,2" ",4096" "" "," "4096,,"; do
  prep 2 --seq-len "$bad"
  grep -q "empty element" "$W/log" || { echo "FAIL: --seq-len '$bad': no 'empty element' message"; failed=$((failed + 1)); }
done
prep 0 --seq-len 64,32
prep 0 --seq-len 64
for key in '"seq_len": [64,]' '"bucket_edges": [0, 64,]' '"bucket_weights": [1, 1, 1, 1, 1, 1, 1,]' \
           '"domain": {"glob": [["*", "web"],]}' '"seq_len": [64,,32]'; do
  printf '{"name": "lists", %s}\n' "$key" > "$W/recipe.json"
  prep 2 --recipe "$W/recipe.json"
done
printf '{"name": "lists", "seq_len": [64, 32], "bucket_edges": [0, 64]}\n' > "$W/recipe.json"
prep 0 --recipe "$W/recipe.json"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
