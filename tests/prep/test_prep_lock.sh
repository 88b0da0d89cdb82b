#!/usr/bin/env bash
# Two prep runs into one --output: the second is refused (exit 1) with a message naming the
# holder (pid, host, start time from DIR/prep.lock), and the first one's output is untouched:
# byte-identical to a run alone, with no lock file left behind. The first run is stopped
# (SIGSTOP) while it holds the lock, so the overlap does not depend on timing. A lock file left
# by a killed run (not locked) is taken over.
# usage: test_prep_lock.sh LONGCTX MPIEXEC
set -euo pipefail
LONGCTX=$1 MPIEXEC=$2
HERE=$(cd "$(dirname "$0")" && pwd)
ASSETS=${LONGCTX_ASSETS:-$(cd "$HERE/../../.." && pwd)/shared/assets}
TOK=$ASSETS/tokenizers/llama2/tokenizer.model
PY=/usr/bin/python3
[ -f "$TOK" ] || { echo "SKIP: $TOK missing"; exit 0; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
W=$(mktemp -d "${TMPDIR:-/tmp}/longctx-lock-XXXXXX")
holder=
trap '[ -n "$holder" ] && kill -CONT "$holder" 2> /dev/null; rm -rf "$W"' EXIT
$PY "$HERE/data/gen_slimpajama.py" "$W/sp" --docs 3000 --seed 4 --files-per-domain 1 > /dev/null 2>&1
ARGS=(prep --tokenizer "$TOK" --recipe keep --domain-json meta.redpajama_set_name --seq-len 1024
      --shard-tokens 100000 --progress-seconds 60)
"$MPIEXEC" -np 2 --oversubscribe "$LONGCTX" "${ARGS[@]}" --output "$W/alone" "$W/sp/train" \
  2> "$W/alone.log" || { cat "$W/alone.log"; exit 1; }
[ -e "$W/alone/prep.lock" ] && { echo "FAIL: the lock file is left behind"; exit 1; }
"$MPIEXEC" -np 2 --oversubscribe "$LONGCTX" "${ARGS[@]}" --output "$W/out" "$W/sp/train" \
  2> "$W/first.log" &
first=$!
for _ in $(seq 1 600); do # until the first run holds the lock and said so
  grep -q '^started ' "$W/out/prep.lock" 2> /dev/null && break
  sleep 0.05
done
holder=$(sed -n 's/^pid //p' "$W/out/prep.lock" 2> /dev/null || true)
[ -n "$holder" ] || { echo "FAIL: no pid in $W/out/prep.lock"; cat "$W/first.log"; exit 1; }
kill -STOP "$holder"
rc=0
"$MPIEXEC" -np 2 --oversubscribe "$LONGCTX" "${ARGS[@]}" --output "$W/out" "$W/sp/train" \
  2> "$W/second.log" || rc=$?
kill -CONT "$holder"
holder=
wait "$first" || { echo "FAIL: the first run failed"; cat "$W/first.log"; exit 1; }
[ "$rc" = 1 ] || { echo "FAIL: the second run exited $rc, want 1"; cat "$W/second.log"; exit 1; }
grep -Eq "in use by another prep run \(pid [0-9]+, host [^,]+, started [0-9T:Z-]+\)" \
  "$W/second.log" || { echo "FAIL: the refusal does not name the holder"; cat "$W/second.log"; exit 1; }
echo "ok: $(grep -o 'is in use.*started [^)]*)' "$W/second.log")"
diff -r "$W/alone" "$W/out" > /dev/null || { diff -rq "$W/alone" "$W/out" | head; echo "FAIL: output differs"; exit 1; }
echo "ok: the first run's output is byte-identical to a run alone"
printf 'pid 1\nhost gone\nstarted 2000-01-01T00:00:00Z\n' > "$W/out/prep.lock" # left by a SIGKILL
"$MPIEXEC" -np 2 --oversubscribe "$LONGCTX" "${ARGS[@]}" --output "$W/out" "$W/sp/train" \
  2> "$W/third.log" || { echo "FAIL: a stale lock file was not taken over"; cat "$W/third.log"; exit 1; }
diff -r "$W/alone" "$W/out" > /dev/null || { echo "FAIL: output differs after the takeover"; exit 1; }
echo "ok: a stale lock file is taken over and removed"
echo "3 passed, 0 failed"
