#!/usr/bin/env bash
# jobs/prep.sbatch on a real single-node Slurm (slurm_cluster.sh: Debian's slurm-wlm + munge,
# started here and stopped on exit, even on failure). Against a reference made by mpirun -np 2:
#  1. the job at 1, 2 and 4 ranks (srun --mpi=pmix): byte-identical output
#  2. requeue: the job suspended mid-scan (scontrol suspend), SIGUSR1 to its batch shell (what
#     #SBATCH --signal=B:USR1@T does), resumed: the ranks stop after their unit (exit 75), the
#     script requeues the job, and the requeued run (Restarts=1) resumes: identical output
#  3. scancel mid-scan (SIGTERM): the job ends CANCELLED without requeueing; the same sbatch
#     again resumes: identical output
#  4. SIGKILL of one rank mid-scan: the job ends FAILED with the error in its log, in bounded
#     time (no rank left waiting); the same sbatch again: identical output
# The corpus is plain jsonl cut into many small work units, so "mid-scan" is certain: the
# test checks that units were left to do when it stopped the job.
# usage: test_slurm_prep.sh LONGCTX
set -euo pipefail
LONGCTX=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
ASSETS=${LONGCTX_ASSETS:-$(cd "$ROOT/.." && pwd)/shared/assets}
TOK=$ASSETS/tokenizers/llama2/tokenizer.model
[ -f "$TOK" ] || { echo "SKIP: $TOK missing"; exit 0; }
# shellcheck source=slurm_cluster.sh
. "$HERE/slurm_cluster.sh"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
MPIEXEC=${MPIEXEC:-mpiexec}
W=$(mktemp -d "${TMPDIR:-/tmp}/longctx-slurm-prep-XXXXXX")
trap 'slurm_down; [ "${KEEP:-0}" = 1 ] || rm -rf "$W"' EXIT
rc=0
slurm_up "$W/slurm" || rc=$?
[ $rc = 77 ] && exit 0
[ $rc = 0 ] || exit 1
passed=0
ok() { echo "ok: $*"; passed=$((passed + 1)); }
fail() {
  echo "FAIL: $*"
  [ -n "${log:-}" ] && [ -f "$log" ] && { echo "--- $log"; tail -n 30 "$log"; }
  slurm_log_tail
  exit 1
}

/usr/bin/python3 "$ROOT/tests/prep/data/gen_slimpajama.py" "$W/sp" --docs 4000 --seed 5 \
  --files-per-domain 1 > /dev/null 2>&1
for f in "$W"/sp/train/*/*.jsonl.zst; do zstd -q -d --rm "$f"; done
ARGS="--unit-bytes 16000 --shard-tokens 100000 --domain-json meta.redpajama_set_name"
"$MPIEXEC" -np 2 --oversubscribe "$LONGCTX" prep --tokenizer "$TOK" --output "$W/ref" \
  --recipe fu2024-per-source --target-tokens 0 --seq-len 4096 $ARGS "$W/sp/train" \
  2> "$W/ref.log" || { cat "$W/ref.log"; exit 1; }
n_units=$(sed -n 's/.* in \([0-9]*\) work units.*/\1/p' "$W/ref.log")
[ "${n_units:-0}" -ge 100 ] || fail "only ${n_units:-0} work units: too few to stop mid-scan"

submit() { # OUT NTASKS [sbatch options...]: prints the job id
  local out=$1 n=$2
  shift 2
  (cd "$W" && sbatch --parsable -N 1 --ntasks-per-node="$n" --cpus-per-task=1 --time=10 "$@" \
    --export=ALL,LONGCTX="$LONGCTX",INPUT="$W/sp/train",OUTPUT="$out",TOKENIZER="$TOK",RECIPE=fu2024-per-source,TARGET_TOKENS=0,SEQ_LEN=4096,PREP_ARGS="$ARGS" \
    "$ROOT/jobs/prep.sbatch")
}
same() { diff -r -x work -x prep.lock "$W/ref" "$1" > /dev/null; }
restarts() { scontrol show job "$1" | sed -n 's/.*Restarts=\([0-9]*\).*/\1/p'; }
units_done() { ls "$1/work" 2> /dev/null | grep -c '\.meta$' || true; }
# waits until OUT has a finished unit, then suspends the job: prints how many were done
stop_mid_scan() {
  local job=$1 out=$2 i
  for i in $(seq 1 600); do
    [ "$(units_done "$out")" -ge 1 ] && break
    [ "$(slurm_state "$job")" = COMPLETED ] && break
    sleep 0.05
  done
  scontrol suspend "$job" || fail "scontrol suspend $job"
  local n
  n=$(units_done "$out")
  [ "$n" -ge 1 ] && [ "$n" -lt "$n_units" ] || fail "job $job: $n of $n_units units done at the stop"
  echo "$n"
}
batch_shell() { pgrep -f "job0*$1/slurm_script" | head -n 1; }

# 1. 1, 2, 4 ranks
for n in 1 2 4; do
  job=$(submit "$W/out$n" "$n")
  log=$W/longctx-prep-$job.log
  s=$(slurm_wait "$job" 240) || fail "job $job ($n ranks) did not end: $s"
  [ "$s" = COMPLETED ] || fail "job $job ($n ranks) ended $s"
  same "$W/out$n" || fail "$n ranks: the output differs from mpirun -np 2's"
  grep -q "job $job finished" "$log" || fail "no 'finished' line in $log"
  rm -rf "$W/out$n"
done
ok "prep.sbatch at 1, 2 and 4 ranks: the same bytes as mpirun -np 2"

# 2. requeue on SIGUSR1
job=$(submit "$W/rq" 2)
log=$W/longctx-prep-$job.log
n=$(stop_mid_scan "$job" "$W/rq")
sh=$(batch_shell "$job")
[ -n "$sh" ] || fail "no batch shell for job $job"
kill -USR1 "$sh"
scontrol resume "$job"
s=$(slurm_wait "$job" 300) || fail "requeued job $job did not end: $s"
[ "$s" = COMPLETED ] || fail "requeued job $job ended $s"
[ "$(restarts "$job")" -ge 1 ] || fail "job $job was not requeued"
grep -q "stopped cleanly on SIGUSR1" "$log" && grep -q "requeueing" "$log" &&
  grep -q "started (restart 1)" "$log" || fail "the requeue is not in $log"
grep -q "exit code 75" "$log" || fail "the ranks did not exit 75"
same "$W/rq" || fail "requeued: the output differs"
ok "SIGUSR1 after $n of $n_units units: stopped, requeued, resumed, the same bytes"

# 3. scancel, then submit again
job=$(submit "$W/cx" 2)
log=$W/longctx-prep-$job.log
n=$(stop_mid_scan "$job" "$W/cx")
scontrol resume "$job"
scancel "$job"
s=$(slurm_wait "$job" 120) || fail "cancelled job $job did not end: $s"
[ "$s" = CANCELLED ] || fail "cancelled job $job ended $s"
[ "$(restarts "$job")" = 0 ] || fail "a cancelled job requeued itself"
m=$(units_done "$W/cx")
[ "$m" -lt "$n_units" ] || fail "the cancelled job finished its scan"
job=$(submit "$W/cx" 2)
log=$W/longctx-prep-$job.log
s=$(slurm_wait "$job" 240) || fail "job $job did not end: $s"
[ "$s" = COMPLETED ] || fail "resubmitted job $job ended $s"
same "$W/cx" || fail "cancelled + resubmitted: the output differs"
ok "scancel after $n units ($m kept), resubmitted: the same bytes"

# 4. SIGKILL of one rank
job=$(submit "$W/kl" 4)
log=$W/longctx-prep-$job.log
n=$(stop_mid_scan "$job" "$W/kl")
victim=
for p in $(pgrep -x longctx); do
  tr '\0' ' ' < "/proc/$p/cmdline" 2> /dev/null | grep -q -- "--output $W/kl " && victim=$p && break
done
[ -n "$victim" ] || fail "no rank of job $job found"
kill -9 "$victim"
scontrol resume "$job"
s=$(slurm_wait "$job" 120) || fail "job $job with a killed rank did not end: $s"
[ "$s" = FAILED ] || fail "job $job with a killed rank ended $s"
grep -q "failed with exit code" "$log" || fail "no failure line in $log"
job=$(submit "$W/kl" 4)
log=$W/longctx-prep-$job.log
s=$(slurm_wait "$job" 240) || fail "job $job did not end: $s"
[ "$s" = COMPLETED ] || fail "rerun job $job ended $s"
same "$W/kl" || fail "killed + rerun: the output differs"
ok "SIGKILL of a rank after $n units: the job failed, the rerun gave the same bytes"

echo "test_slurm_prep: $passed passed"
