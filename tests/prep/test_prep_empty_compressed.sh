#!/usr/bin/env bash
# A compressed input of 0 bytes (.jsonl.zst, .jsonl.gz, .tar.gz, ...) is truncated, as zstd -t,
# gzip -t and tar -tzf say, not an empty file: prep counts it as one "truncated" reject, and
# --strict fails naming it. A plain .jsonl of 0 bytes stays an empty file.
# usage: test_prep_empty_compressed.sh LONGCTX MPIEXEC
set -euo pipefail
LONGCTX=$1 MPIEXEC=$2
HERE=$(cd "$(dirname "$0")" && pwd)
ASSETS=${LONGCTX_ASSETS:-$(cd "$HERE/../../.." && pwd)/shared/assets}
TOK=$ASSETS/tokenizers/llama2/tokenizer.model
[ -f "$TOK" ] || { echo "SKIP: $TOK missing"; exit 0; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
W=$(mktemp -d "${TMPDIR:-/tmp}/longctx-empty-XXXXXX")
trap 'rm -rf "$W"' EXIT
prep() { "$MPIEXEC" -np 1 "$LONGCTX" prep --tokenizer "$TOK" --progress-seconds 60 "$@"; }
for name in e.jsonl.zst e.jsonl.gz e.tar.gz e.tar.zst e.tgz; do
  rm -rf "$W/in" "$W/out" "$W/out-strict"
  mkdir -p "$W/in"
  printf '{"text":"one document of a few words"}\n' > "$W/in/a.jsonl"
  : > "$W/in/$name"
  : > "$W/in/plain-empty.jsonl"
  prep --output "$W/out" "$W/in" > "$W/log" 2>&1 || { cat "$W/log"; echo "$name: prep failed"; exit 1; }
  grep -q '"truncated": 1' "$W/out/stats.json" ||
    { echo "$name: not counted as one truncated file"; grep -n truncated "$W/out/stats.json"; exit 1; }
  if prep --strict --output "$W/out-strict" "$W/in" > "$W/log" 2>&1; then
    echo "$name: --strict accepted a 0-byte compressed file"; exit 1
  fi
  grep -q "$name: offset 0: 0 bytes, truncated" "$W/log" || { cat "$W/log"; echo "$name: no message"; exit 1; }
  echo "ok: $name of 0 bytes is truncated (--strict fails)"
done
# the plain empty file alone passes --strict
rm -rf "$W/in/"e.* "$W/out-strict"
prep --strict --output "$W/out-strict" "$W/in" > "$W/log" 2>&1 || { cat "$W/log"; echo "plain empty .jsonl failed --strict"; exit 1; }
echo "ok: a plain .jsonl of 0 bytes is empty (--strict passes)"
