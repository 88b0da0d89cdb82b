#!/usr/bin/env bash
# DIR must be a folder every rank sees. mpirun's MPMD form gives rank 1 another --output than
# rank 0 (as a node-local disk would look): `longctx prep` and `longctx shard export` refuse
# with exit 2 and a message naming rank 1 and its host, before any work, and leave no marker.
# With the same folder on both ranks the run goes through.
# usage: test_prep_shared.sh LONGCTX MPIEXEC
set -euo pipefail
LONGCTX=$1 MPIEXEC=$2
HERE=$(cd "$(dirname "$0")" && pwd)
ASSETS=${LONGCTX_ASSETS:-$(cd "$HERE/../../.." && pwd)/shared/assets}
TOK=$ASSETS/tokenizers/llama2/tokenizer.model
PY=/usr/bin/python3
[ -f "$TOK" ] || { echo "SKIP: $TOK missing"; exit 0; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
W=$(mktemp -d "${TMPDIR:-/tmp}/longctx-shared-XXXXXX")
trap 'rm -rf "$W"' EXIT
$PY "$HERE/data/gen_slimpajama.py" "$W/sp" --docs 200 --seed 9 --files-per-domain 1 > /dev/null 2>&1
P=(prep --tokenizer "$TOK" --recipe keep --domain-json meta.redpajama_set_name --seq-len 256
   --shard-tokens 20000 --progress-seconds 60)
mkdir "$W/b"
rc=0
"$MPIEXEC" -np 1 "$LONGCTX" "${P[@]}" --output "$W/a" "$W/sp/train" : \
  -np 1 "$LONGCTX" "${P[@]}" --output "$W/b" "$W/sp/train" 2> "$W/split.log" || rc=$?
[ "$rc" = 2 ] || { echo "FAIL: prep with two folders gave exit $rc"; cat "$W/split.log"; exit 1; }
grep -q "rank 1 on $(hostname)" "$W/split.log" && grep -q "shared file system" "$W/split.log" ||
  { echo "FAIL: no message naming rank 1"; cat "$W/split.log"; exit 1; }
[ -z "$(ls -A "$W/a" "$W/b" | grep -v '^/\|^$' || true)" ] ||
  { echo "FAIL: something was left in the folders:"; ls -la "$W/a" "$W/b"; exit 1; }
echo "ok: prep refuses an output folder rank 1 does not see (exit 2), leaving nothing"

"$MPIEXEC" -np 2 --oversubscribe "$LONGCTX" "${P[@]}" --output "$W/a" "$W/sp/train" \
  2> "$W/same.log" || { cat "$W/same.log"; exit 1; }
ls "$W"/a/L256/*.shard > /dev/null && ! ls -A "$W/a" | grep -q '^\.longctx-shared' ||
  { echo "FAIL: no shards, or a marker left"; ls -la "$W/a"; exit 1; }
echo "ok: the same folder on both ranks: prep runs"

mkdir "$W/x" "$W/y"
rc=0
"$MPIEXEC" -np 1 "$LONGCTX" shard export --format megatron --output "$W/x/data" "$W"/a/L256/*.shard : \
  -np 1 "$LONGCTX" shard export --format megatron --output "$W/y/data" "$W"/a/L256/*.shard \
  2> "$W/export.log" || rc=$?
[ "$rc" = 2 ] && grep -q "rank 1 on" "$W/export.log" ||
  { echo "FAIL: export with two folders gave exit $rc"; cat "$W/export.log"; exit 1; }
[ -z "$(ls -A "$W/x" "$W/y" | grep -v '^/\|^$' || true)" ] ||
  { echo "FAIL: export left files"; ls -la "$W/x" "$W/y"; exit 1; }
"$MPIEXEC" -np 2 --oversubscribe "$LONGCTX" shard export --format megatron --output "$W/x/data" \
  "$W"/a/L256/*.shard 2> "$W/export2.log" || { cat "$W/export2.log"; exit 1; }
[ -s "$W/x/data.bin" ] && [ -s "$W/x/data.idx" ] || { echo "FAIL: no export"; exit 1; }
echo "ok: shard export refuses two folders (exit 2) and runs with one"
