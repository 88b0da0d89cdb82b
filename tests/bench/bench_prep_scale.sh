#!/usr/bin/env bash
# prep at scale on short documents (issue 13): SIZES million synthetic documents of about 19
# Llama 2 tokens each (tests/bench/gen_short_docs.py: six random words and a counter, four
# domains in meta.redpajama_set_name), everything selected, bestfit at 8192:
#   longctx prep --tokenizer llama2/tokenizer.model --domain-json meta.redpajama_set_name --unit-bytes 16777216 --shard-tokens 4194304
#       --seq-len 8192 --packing bestfit
# at -np NPS (1 thread per rank; EXTRA adds prep options, MPIARGS mpiexec's). Per run: the
# time of each stage from prep's log (scan = read and tokenize; select; the manifest; pack =
# plan + shards; stats + report), the peak RSS of every rank (/usr/bin/time inside mpirun), and whether the output is byte-identical to the -np 1 run.
# One markdown row per run on stdout, for BENCHMARKS.md.
# usage: bench_prep_scale.sh [SIZES="1 4 16"] [NPS="1 2 4"] [WORKDIR=/tmp/longctx-bench-scale]
set -euo pipefail
SIZES=${1:-1 4 16}
NPS=${2:-1 2 4}
W=${3:-/tmp/longctx-bench-scale}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
LONGCTX=${LONGCTX:-$ROOT/build/longctx}
ASSETS=${LONGCTX_ASSETS:-$(cd "$ROOT/.." && pwd)/shared/assets}
TOK=$ASSETS/tokenizers/llama2/tokenizer.model
MPIEXEC=${MPIEXEC:-mpiexec}
MPIARGS=${MPIARGS:-} # e.g. "--bind-to none" with EXTRA="... --threads 2"
EXTRA=${EXTRA:---unit-bytes 16777216 --shard-tokens 4194304}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
[ -f "$TOK" ] || { echo "SKIP: $TOK missing"; exit 0; }
mkdir -p "$W"
echo "| documents | ranks | scan s | select s | manifest s | pack s | stats+report s | total s | peak RSS per rank (MB) | bytes/doc/rank | same as -np 1 |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
for m in $SIZES; do
  n=$((m * 1000000))
  corpus=$W/corpus-${m}M
  [ -f "$corpus/.done" ] || { rm -rf "$corpus"; /usr/bin/python3 "$HERE/gen_short_docs.py" "$corpus" "$n"; touch "$corpus/.done"; }
  for np in $NPS; do
    out=$W/out-${m}M-np$np
    rm -rf "$out" "$out.rss"
    # the previous run's output (15 GB at 64M) is otherwise still being written back during this one
    sync
    # each rank's peak RSS appended to its own line of $out.rss (on stderr the ranks' lines interleave)
    # shellcheck disable=SC2086
    "$MPIEXEC" -np "$np" --oversubscribe $MPIARGS /usr/bin/time -a -o "$out.rss" -f "rss_kb %M" "$LONGCTX" prep \
      --tokenizer "$TOK" --output "$out" --domain-json meta.redpajama_set_name --seq-len 8192 \
      --packing bestfit --progress-seconds 600 $EXTRA "$corpus" 2> "$out.log" ||
      { tail -n 20 "$out.log"; exit 1; }
    t() { sed -n "s/.* $1 in \([0-9.]*\) s.*/\1/p" "$out.log" | head -n 1; }
    scan=$(t "read and tokenized") sel=$(t "selected") man=$(t "manifest written")
    pack=$(t "packed and written") all=$(t "done")
    rss=$(grep -o 'rss_kb [0-9]*' "$out.rss" | cut -d' ' -f2 | sort -n | awk '{a[NR]=$1} END {printf "%.0f", a[NR] / 1024}')
    rss_all=$(grep -o 'rss_kb [0-9]*' "$out.rss" | cut -d' ' -f2 | sort -n | awk '{printf "%s%.0f", (NR > 1 ? " " : ""), $1 / 1024}')
    same=-
    if [ "$np" != 1 ] && [ -d "$W/out-${m}M-np1" ]; then
      if diff -r -x work -x prep.lock -x '*.log' "$W/out-${m}M-np1" "$out" > /dev/null; then same=yes; else same=NO; fi
    fi
    per_doc=$(awk -v r="$rss" -v n="$n" -v p="$np" 'BEGIN {printf "%.0f", r * 1048576 / (n / p)}')
    awk -v m="$m" -v np="$np" -v a="$scan" -v b="$sel" -v mm="$man" -v c="$pack" -v d="$all" -v rss="$rss_all" -v pd="$per_doc" -v same="$same" \
      'BEGIN {printf "| %dM | %d | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %s | %s | %s |\n", m, np, a, b - a, mm - b, c - mm, d - c, d, rss, pd, same}'
    [ "$np" = 1 ] || rm -rf "$out"
  done
  rm -rf "$W/out-${m}M-np1"
done
