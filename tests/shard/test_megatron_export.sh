#!/usr/bin/env bash
# Megatron export and import, checked by an independent numpy reader (megatron_check.py):
#  - shards of vocab 32000 (uint16) and 128256 (int32) exported under mpirun -np 1, 2, 4 give
#    byte-identical .bin/.idx, and they hold exactly the generator's sequences;
#  - a numpy-written dataset with empty sequences and empty documents survives import then
#    export byte for byte, for both dtypes.
# usage: test_megatron_export.sh LONGCTX GEN_SHARDS MPIEXEC
set -euo pipefail
LONGCTX=$1 GEN=$2 MPIEXEC=$3
PY=/usr/bin/python3
HERE=$(cd "$(dirname "$0")" && pwd)
if ! $PY -c 'import numpy' 2>/dev/null; then
  echo "SKIP: /usr/bin/python3 has no numpy (apt-get install python3-numpy)"; exit 0
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
W=$(mktemp -d "${TMPDIR:-/tmp}/longctx-megatron-XXXXXX")
trap 'rm -rf "$W"' EXIT
passed=0

for vocab in 32000 128256; do
  dtype=$([ $vocab -lt 65500 ] && echo 8 || echo 4)
  d=$W/v$vocab; mkdir -p "$d"
  "$GEN" "$d" $vocab 6 $vocab
  for np in 1 2 4; do
    "$MPIEXEC" -np $np --oversubscribe "$LONGCTX" shard export --format megatron \
      --output "$d/np$np" "$d"/part-*.shard
  done
  $PY "$HERE/megatron_check.py" check "$d/np1" "$d/expected.u32" $dtype
  for np in 2 4; do
    cmp "$d/np1.bin" "$d/np$np.bin"; cmp "$d/np1.idx" "$d/np$np.idx"
  done
  # the shards' own cat agrees with the generator too
  "$LONGCTX" shard cat --format u32 "$d"/part-*.shard | cmp - "$d/expected.u32"
  passed=$((passed + 1))
done

for dtype in 8 4; do
  d=$W/import$dtype; mkdir -p "$d"
  $PY "$HERE/megatron_check.py" write "$d/orig" $dtype 7
  "$LONGCTX" shard import --format megatron --output "$d/orig.shard" "$d/orig"
  "$LONGCTX" shard verify "$d/orig.shard"
  for np in 1 2; do
    "$MPIEXEC" -np $np --oversubscribe "$LONGCTX" shard export --format megatron \
      --output "$d/back$np" "$d/orig.shard"
    cmp "$d/orig.bin" "$d/back$np.bin"; cmp "$d/orig.idx" "$d/back$np.idx"
  done
  passed=$((passed + 1))
done

# damaged input: export fails on every rank count with the file named, and no rank hangs
d=$W/v32000
cp "$d/part-002.shard" "$W/bad.shard"
printf '\x55' | dd of="$W/bad.shard" bs=1 seek=200 conv=notrunc status=none
for np in 1 2 4; do
  if "$MPIEXEC" -np $np --oversubscribe "$LONGCTX" shard export --format megatron \
       --output "$W/bad$np" "$d/part-000.shard" "$W/bad.shard" 2> "$W/err$np"; then
    echo "export of a damaged shard succeeded at -np $np"; exit 1
  fi
  grep -q "bad.shard" "$W/err$np" || { cat "$W/err$np"; exit 1; }
done
passed=$((passed + 1))
echo "$passed passed, 0 failed"
