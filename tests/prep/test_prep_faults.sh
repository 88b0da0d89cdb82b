#!/usr/bin/env bash
# prep under faults, against an uninterrupted reference at -np 2:
#   full disk: --output on a small tmpfs (root), once full during the scan's work files and once
#     during the output shards: exit 1, the message names a file under the output and says "No
#     space left on device"; no *.tmp file is left, and every *.shard present passes `longctx
#     shard verify` (nothing half-written under a final name). The tmpfs then grown (remount)
#     and the same command run again: byte-identical to the reference.
#   a damaged work file between runs (one byte of a finished unit's work shard flipped, another
#     unit's shard cut short): the rerun detects both, says so, redoes those units, and the
#     output is byte-identical to the reference.
# usage: test_prep_faults.sh LONGCTX MPIEXEC
set -euo pipefail
LONGCTX=$1 MPIEXEC=$2
HERE=$(cd "$(dirname "$0")" && pwd)
ASSETS=${LONGCTX_ASSETS:-$(cd "$HERE/../../.." && pwd)/shared/assets}
TOK=$ASSETS/tokenizers/llama2/tokenizer.model
PY=/usr/bin/python3
[ -f "$TOK" ] || { echo "SKIP: $TOK missing"; exit 0; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
W=$(mktemp -d "${TMPDIR:-/tmp}/longctx-faults-XXXXXX")
trap 'umount "$W/mnt" 2> /dev/null; rm -rf "$W"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
$PY "$HERE/data/gen_slimpajama.py" "$W/sp" --docs 3000 --seed 8 --files-per-domain 2 > /dev/null 2>&1
ARGS=(--tokenizer "$TOK" --recipe fu2024-per-source --target-tokens 0 --seq-len 4096
      --shard-tokens 40000 --domain-json meta.redpajama_set_name --progress-seconds 60)
prep() { # OUT [more args]
  local out=$1
  shift
  "$MPIEXEC" -np 2 --oversubscribe "$LONGCTX" prep "${ARGS[@]}" --output "$out" "$@" "$W/sp/train"
}
same() { diff -r -x work -x prep.lock "$W/ref" "$1" > /dev/null; }
prep "$W/ref" 2> "$W/ref.log" || { cat "$W/ref.log"; exit 1; }
kb() { du -sk "$1" | cut -f1; }
work_kb=$(kb "$W/ref/work")
all_kb=$(kb "$W/ref")

# ---- full disk -------------------------------------------------------------------------------
if [ "$(id -u)" != 0 ]; then
  echo "SKIP: full disk (mounting a tmpfs needs root)"
else
  mkdir "$W/mnt"
  if ! mount -t tmpfs -o size=$((work_kb / 2))k tmpfs "$W/mnt" 2> /dev/null; then
    echo "SKIP: full disk (cannot mount a tmpfs)"
  else
    # half the work files fit; then all of them but not the shards
    for size_kb in $((work_kb / 2)) $(((work_kb + all_kb) / 2)); do
      rm -rf "$W/mnt/out"
      mount -o remount,size=${size_kb}k "$W/mnt" || fail "remount at ${size_kb} KiB"
      if prep "$W/mnt/out" 2> "$W/full.log"; then fail "prep onto a full ${size_kb} KiB disk succeeded"; fi
      grep -q "E prep.*$W/mnt/out/.*No space left on device" "$W/full.log" ||
        { cat "$W/full.log"; fail "${size_kb} KiB: the error names no file under the output, or not the cause"; }
      left=$(find "$W/mnt/out" -name '*.tmp')
      [ -z "$left" ] || fail "${size_kb} KiB: left behind: $left"
      n_ok=0
      while IFS= read -r s; do
        "$LONGCTX" shard verify "$s" > /dev/null 2>&1 || fail "${size_kb} KiB: $s is left and does not verify"
        n_ok=$((n_ok + 1))
      done < <(find "$W/mnt/out" -name '*.shard')
      echo "full at ${size_kb} KiB: $(grep -m1 -o 'E prep.*' "$W/full.log" | cut -c1-160); $n_ok shards left, all verify"
      mount -o remount,size=$((all_kb * 3))k "$W/mnt" || fail "remount at $((all_kb * 3)) KiB"
      prep "$W/mnt/out" 2> "$W/rerun.log" || { cat "$W/rerun.log"; fail "rerun after the full disk"; }
      same "$W/mnt/out" || fail "after a full disk at ${size_kb} KiB, the rerun differs from the reference"
    done
    echo "ok: a full disk during the scan and during the shards: a clear error, nothing half-written, the rerun identical"
  fi
fi

# ---- damaged work files ----------------------------------------------------------------------
cp -r "$W/ref" "$W/dmg"
mapfile -t ws < <(find "$W/dmg/work" -name '*.shard' | sort)
[ "${#ws[@]}" -ge 2 ] || fail "fewer than 2 work shards"
a=${ws[0]} b=${ws[${#ws[@]} - 1]}
n=$(stat -c %s "$a")
printf '\x5a' | dd of="$a" bs=1 seek=$((n / 2)) conv=notrunc 2> /dev/null
truncate -s $(($(stat -c %s "$b") - 100)) "$b"
prep "$W/dmg" 2> "$W/dmg.log" || { cat "$W/dmg.log"; fail "the rerun over damaged work files failed"; }
grep -q "$(basename "$a")" "$W/dmg.log" && grep -q "$(basename "$b")" "$W/dmg.log" ||
  { cat "$W/dmg.log"; fail "the rerun does not name the damaged work files"; }
same "$W/dmg" || fail "after damaged work files, the rerun differs from the reference"
echo "ok: a flipped byte and a cut work file: named, redone, the output identical"
