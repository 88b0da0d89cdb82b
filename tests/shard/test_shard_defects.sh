#!/usr/bin/env bash
# Regression tests of `longctx shard` defects (issue 10), one case per ctest entry:
#   atomic      a failed export keeps an earlier good PREFIX.bin/.idx and leaves no file behind
#   inode       --output whose .idx or .bin is one of the inputs (any path, hard link) is refused
#   prefix      --output that is empty, ends in '/' or names a directory is refused
#   import_np   import under mpirun -np 2 is refused once, by rank 0, with a clear message
#   stdout_full every subcommand that prints fails (exit 1) when stdout is /dev/full
#   full_disk   an export onto a full file system (a small tmpfs; root) fails naming the file and
#               the cause, keeps the earlier export and leaves no temporary file
# usage: test_shard_defects.sh CASE LONGCTX GEN_SHARDS MPIEXEC
set -euo pipefail
CASE=$1 LONGCTX=$2 GEN=$3 MPIEXEC=$4
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
W=$(mktemp -d "${TMPDIR:-/tmp}/longctx-defects-XXXXXX")
trap 'rm -rf "$W"' EXIT
fail() { echo "FAIL ($CASE): $*"; exit 1; }
export_np() { # NP OUTPUT FILE...
  local np=$1 out=$2
  shift 2
  "$MPIEXEC" -np "$np" --oversubscribe "$LONGCTX" shard export --format megatron --output "$out" "$@"
}
"$GEN" "$W" 32000 3 32000 > /dev/null
S=("$W"/part-*.shard)

case $CASE in
atomic)
  # a bit flip in the middle of the largest shard: in a block, found only while writing
  cp "$(ls -S "${S[@]}" | head -1)" "$W/bad.shard"
  printf '\x55' | dd of="$W/bad.shard" bs=1 seek=$(($(stat -c %s "$W/bad.shard") / 2)) \
    conv=notrunc status=none
  for np in 1 2; do
    export_np $np "$W/ex" "${S[0]}" 2> /dev/null
    cp "$W/ex.bin" "$W/good.bin"; cp "$W/ex.idx" "$W/good.idx"
    if export_np $np "$W/ex" "${S[0]}" "$W/bad.shard" "${S[0]}" 2> "$W/err"; then
      fail "export of a damaged shard succeeded at -np $np"
    fi
    grep -q bad.shard "$W/err" || { cat "$W/err"; fail "the damaged file is not named"; }
    cmp "$W/good.bin" "$W/ex.bin" || fail "-np $np: the failed export replaced ex.bin"
    cmp "$W/good.idx" "$W/ex.idx" || fail "-np $np: the failed export replaced ex.idx"
    left=$(find "$W" -maxdepth 1 -name 'ex.*' ! -name ex.bin ! -name ex.idx)
    [ -z "$left" ] || fail "-np $np: files left behind: $left"
    # a failure with no earlier export leaves nothing under the final names either
    if export_np $np "$W/fresh" "$W/bad.shard" 2> /dev/null; then fail "export succeeded"; fi
    left=$(find "$W" -maxdepth 1 -name 'fresh.*')
    [ -z "$left" ] || fail "-np $np: files left behind: $left"
  done
  ;;
full_disk)
  [ "$(id -u)" = 0 ] || { echo "SKIP: mounting a tmpfs needs root"; exit 0; }
  export_np 1 "$W/small" "${S[0]}" 2> /dev/null
  export_np 1 "$W/big" "${S[@]}" 2> /dev/null
  pages() { echo $((($(stat -c %s "$1") + 4095) / 4096)); }
  size=$((($(pages "$W/small.bin") + $(pages "$W/small.idx") + 16) * 4096))
  big=$(($(stat -c %s "$W/big.bin") + $(stat -c %s "$W/big.idx")))
  [ "$big" -gt "$size" ] || fail "test data too small: an export of $big bytes fits $size"
  mkdir "$W/mnt"
  mount -t tmpfs -o size=$size tmpfs "$W/mnt" 2> /dev/null || { echo "SKIP: cannot mount a tmpfs"; exit 0; }
  trap 'umount "$W/mnt" 2> /dev/null; rm -rf "$W"' EXIT
  for np in 1 2; do
    export_np $np "$W/mnt/ex" "${S[0]}" 2> /dev/null || fail "-np $np: the small export does not fit"
    cp "$W/mnt/ex.bin" "$W/good.bin"; cp "$W/mnt/ex.idx" "$W/good.idx"
    if export_np $np "$W/mnt/ex" "${S[@]}" 2> "$W/err"; then fail "-np $np: export onto a full disk succeeded"; fi
    grep -q "mnt/ex" "$W/err" && grep -q -i "no space" "$W/err" ||
      { cat "$W/err"; fail "-np $np: the message names neither the file nor the cause"; }
    cmp "$W/good.bin" "$W/mnt/ex.bin" || fail "-np $np: the failed export replaced ex.bin"
    cmp "$W/good.idx" "$W/mnt/ex.idx" || fail "-np $np: the failed export replaced ex.idx"
    left=$(find "$W/mnt" -name 'ex.*' ! -name ex.bin ! -name ex.idx)
    [ -z "$left" ] || fail "-np $np: files left behind: $left"
    echo "-np $np: $(grep -i -m1 'no space' "$W/err")"
    rm -f "$W"/mnt/ex.*
  done
  ;;
inode)
  cp "${S[0]}" "$W/keep.shard"
  ln "${S[0]}" "$W/victim.idx"        # a hard link: another name, same inode
  if export_np 1 "$W/victim" "${S[@]}" 2> "$W/err"; then fail "export over a hard-linked input"; fi
  cmp "$W/keep.shard" "${S[0]}" || fail "the input was destroyed (hard link)"
  grep -q "is one of the inputs" "$W/err" || { cat "$W/err"; fail "no clear message"; }
  mkdir "$W/sub"
  for np in 1 2; do   # the .bin spelled through another path
    cp "${S[0]}" "$W/x.bin"; cp "$W/x.bin" "$W/keep.bin"
    if export_np $np "$W/sub/../x" "$W/x.bin" 2> "$W/err"; then fail "export over its input"; fi
    cmp "$W/keep.bin" "$W/x.bin" || fail "-np $np: the input was destroyed (.bin)"
    grep -q "is one of the inputs" "$W/err" || { cat "$W/err"; fail "no clear message"; }
  done
  ;;
prefix)
  mkdir "$W/ex"
  for out in "$W/ex/" "$W/ex" "" "$W/new/"; do
    rc=0
    export_np 2 "$out" "${S[@]}" 2> "$W/err" || rc=$?
    [ $rc -eq 2 ] || fail "--output '$out': exit $rc, want 2 (usage)"
    n=$(grep -c "^longctx shard export: --output PREFIX" "$W/err" || true)
    [ "$n" -eq 1 ] || { cat "$W/err"; fail "--output '$out': no clear message, once"; }
  done
  [ -z "$(ls -A "$W/ex")" ] || fail "files written into ex/: $(ls -A "$W/ex")"
  [ ! -e "$W/new" ] || fail "new/ was created"
  ;;
import_np)
  export_np 1 "$W/m" "${S[@]}" 2> /dev/null
  rc=0
  "$MPIEXEC" -np 2 --oversubscribe "$LONGCTX" shard import --format megatron \
    --output "$W/m.shard" "$W/m" 2> "$W/err" || rc=$?
  [ $rc -ne 0 ] || fail "import under mpirun -np 2 succeeded"
  [ "$(grep -c "one process" "$W/err")" -eq 1 ] || { cat "$W/err"; fail "message not printed once"; }
  [ ! -e "$W/m.shard" ] || fail "a shard was written"
  # one rank is fine, under mpirun or not
  "$MPIEXEC" -np 1 "$LONGCTX" shard import --format megatron --output "$W/m1.shard" "$W/m" 2> /dev/null
  "$LONGCTX" shard import --format megatron --output "$W/m2.shard" "$W/m" 2> /dev/null
  cmp "$W/m1.shard" "$W/m2.shard"
  ;;
stdout_full)
  [ -w /dev/full ] || { echo "SKIP: no /dev/full"; exit 0; }
  printf '1 2 3\n' > "$W/docs.txt"
  cmds=("shard --help" "shard info ${S[0]}" "shard verify ${S[0]}" "shard cat ${S[0]}"
        "shard cat --format u32 ${S[0]}" "shard info --help" "shard verify --help"
        "shard cat --help" "shard export --help" "shard import --help" "shard pack --help")
  for c in "${cmds[@]}"; do
    rc=0
    # shellcheck disable=SC2086
    "$LONGCTX" $c > /dev/full 2> "$W/err" || rc=$?
    [ $rc -eq 1 ] || fail "'longctx $c > /dev/full' exits $rc, want 1"
  done
  ;;
*)
  fail "unknown case" ;;
esac
echo "$CASE: passed"
