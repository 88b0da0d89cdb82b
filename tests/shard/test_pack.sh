#!/usr/bin/env bash
# `longctx shard pack` against an independent model of concat packing (pack_check.py), for
# several sequence lengths, with and without BOS, from text and from u32 input.
# usage: test_pack.sh LONGCTX
set -euo pipefail
LONGCTX=$1
PY=/usr/bin/python3
HERE=$(cd "$(dirname "$0")" && pwd)
W=$(mktemp -d "${TMPDIR:-/tmp}/longctx-pack-XXXXXX")
trap 'rm -rf "$W"' EXIT
$PY "$HERE/pack_check.py" gen "$W/docs.txt" 5
n=0
for L in 1 7 1000 131072; do
  for bos in -1 1; do
    args=(); [ $bos -ge 0 ] && args=(--bos $bos)
    "$LONGCTX" shard pack --output "$W/p.shard" --vocab-size 32000 --seq-len $L "${args[@]}" "$W/docs.txt" 2>/dev/null
    "$LONGCTX" shard verify "$W/p.shard" >/dev/null
    "$LONGCTX" shard cat --docs "$W/p.shard" > "$W/cat.txt"
    $PY "$HERE/pack_check.py" check "$W/docs.txt" $L $bos "$W/cat.txt"
    n=$((n + 1))
  done
done
# u32 input gives the same shard as text input
"$LONGCTX" shard pack --output "$W/t.shard" --vocab-size 32000 --seq-len 333 "$W/docs.txt" 2>/dev/null
$PY -c '
import struct, sys
out = open(sys.argv[2], "wb")
for line in open(sys.argv[1]):
    ids = [int(x) for x in line.split()]
    out.write(struct.pack("<%dI" % (len(ids) + 1), len(ids), *ids))' "$W/docs.txt" "$W/docs.u32"
"$LONGCTX" shard pack --format u32 --output "$W/u.shard" --vocab-size 32000 --seq-len 333 - < "$W/docs.u32" 2>/dev/null
cmp "$W/t.shard" "$W/u.shard"; n=$((n + 1))
# bad input is refused with the file and offset
printf '1 2 x\n' > "$W/bad.txt"
if "$LONGCTX" shard pack --output "$W/b.shard" --vocab-size 10 "$W/bad.txt" 2> "$W/err"; then exit 1; fi
grep -q "bad.txt: offset 4" "$W/err" || { cat "$W/err"; exit 1; }
[ ! -e "$W/b.shard" ] || { echo "a shard was left after a failure"; exit 1; }
printf '1 2 50\n' > "$W/big.txt"
if "$LONGCTX" shard pack --output "$W/b.shard" --vocab-size 10 "$W/big.txt" 2> "$W/err"; then exit 1; fi
grep -q "id 50 >= vocab_size 10" "$W/err" || { cat "$W/err"; exit 1; }
n=$((n + 2))
echo "$n passed, 0 failed"
