#!/usr/bin/env bash
# 64-bit-count collectives in tiny pieces: the same small prep at mpirun -np 2 and 4 with
# LONGCTX_MPI_CHUNK_BYTES=5 (every broadcast, gather, all-to-all and reduction of prep cut into
# messages of at most 5 bytes, the point-to-point path of cluster_big.c) gives shards and
# manifest byte-identical to the run with the default chunk size. A bad value is a usage error.
# usage: test_prep_chunks.sh LONGCTX MPIEXEC
set -euo pipefail
LONGCTX=$1 MPIEXEC=$2
HERE=$(cd "$(dirname "$0")" && pwd)
ASSETS=${LONGCTX_ASSETS:-$(cd "$HERE/../../.." && pwd)/shared/assets}
TOK=$ASSETS/tokenizers/llama2/tokenizer.model
PY=/usr/bin/python3
[ -f "$TOK" ] || { echo "SKIP: $TOK missing"; exit 0; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
unset LONGCTX_MPI_CHUNK_BYTES
W=$(mktemp -d "${TMPDIR:-/tmp}/longctx-chunks-XXXXXX")
trap 'rm -rf "$W"' EXIT
# duplicates, so that dedup sends copies back (its second all-to-all)
$PY "$HERE/data/gen_slimpajama.py" "$W/sp" --docs 300 --seed 7 --files-per-domain 1 \
  --dup-fraction 0.05 > /dev/null 2>&1
run() { # NP OUT [env...]
  local np=$1 out=$2; shift 2
  env "$@" "$MPIEXEC" -np "$np" --oversubscribe "$LONGCTX" prep --tokenizer "$TOK" \
    --output "$out" --recipe keep --domain-json meta.redpajama_set_name --seq-len 512,128 \
    --packing bestfit --shard-tokens 20000 --progress-seconds 60 "$W/sp/train" 2> "$out.log" ||
    { cat "$out.log"; exit 1; }
}
same() { # A B: every shard and the manifest, then the whole folder
  local a=$1 b=$2 n=0
  for f in "$a"/manifest.tsv "$a"/L*/*; do
    cmp "$f" "$b/${f#"$a"/}" || { echo "FAIL: $b/${f#"$a"/} differs from $f"; exit 1; }
    n=$((n + 1))
  done
  [ "$n" -gt 3 ] || { echo "FAIL: only $n files in $a"; exit 1; }
  diff -r "$a" "$b" > /dev/null || { echo "FAIL: $a and $b differ"; diff -rq "$a" "$b"; exit 1; }
}
run 2 "$W/ref"
for np in 2 4; do
  run $np "$W/c$np" LONGCTX_MPI_CHUNK_BYTES=5
  grep -q "in pieces of at most 5 bytes" "$W/c$np.log" ||
    { echo "FAIL: the chunk size was not taken"; cat "$W/c$np.log"; exit 1; }
  same "$W/ref" "$W/c$np"
  echo "ok: np $np, 5-byte chunks: byte-identical to the default"
done
run 4 "$W/d4"
same "$W/ref" "$W/d4"
echo "ok: np 4, default chunks: byte-identical"
rc=0
LONGCTX_MPI_CHUNK_BYTES=0 "$MPIEXEC" -np 2 --oversubscribe "$LONGCTX" prep --tokenizer "$TOK" \
  --output "$W/bad" "$W/sp/train" 2> "$W/bad.log" || rc=$?
[ "$rc" = 2 ] && grep -q "LONGCTX_MPI_CHUNK_BYTES must be" "$W/bad.log" ||
  { echo "FAIL: LONGCTX_MPI_CHUNK_BYTES=0 gave exit $rc"; cat "$W/bad.log"; exit 1; }
echo "ok: LONGCTX_MPI_CHUNK_BYTES=0 is a usage error"
