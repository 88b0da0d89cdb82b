#!/usr/bin/env bash
# jobs/infer.sbatch, eval.sbatch and export.sbatch on a real single-node Slurm
# (slurm_cluster.sh, started here and stopped on exit), on a random HF model (gen_hf_model.py)
# with the real Llama 2 tokenizer. Each against a reference made by mpirun:
#  1. infer batch at 2 ranks (TP 2): results.jsonl byte-identical; SIGKILL of a rank mid-run:
#     the job FAILS in bounded time, no results.jsonl is left; the same sbatch again: identical
#  2. eval passkey at 2 ranks: identical results.jsonl and summary.json; requeue mid-run
#     (suspend, SIGUSR1 to the batch shell, resume): the ranks stop after their round (exit 75),
#     the job requeues itself and the requeued run does only the items left: identical;
#     SIGKILL of a rank mid-run: FAILED; the same sbatch again resumes: identical
#  3. a chain prep -> export -> eval with --dependency=afterok: all COMPLETED, the Megatron
#     files byte-identical to `mpirun longctx shard export` of the reference prep output, and a
#     failed prep leaves its dependants never run (DependencyNeverSatisfied, then cancelled)
# usage: test_slurm_jobs.sh LONGCTX
set -euo pipefail
LONGCTX=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
ASSETS=${LONGCTX_ASSETS:-$(cd "$ROOT/.." && pwd)/shared/assets}
TOK=$ASSETS/tokenizers/llama2/tokenizer.model
PY=/usr/bin/python3
[ -f "$TOK" ] || { echo "SKIP: $TOK missing"; exit 0; }
$PY -c 'import numpy' 2> /dev/null || { echo "SKIP: /usr/bin/python3 has no numpy"; exit 0; }
# shellcheck source=slurm_cluster.sh
. "$HERE/slurm_cluster.sh"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
MPIEXEC=${MPIEXEC:-mpiexec}
W=$(mktemp -d "${TMPDIR:-/tmp}/longctx-slurm-jobs-XXXXXX")
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
mpi() { timeout 300 "$MPIEXEC" --oversubscribe -np "$@"; }
sub() { # SCRIPT NTASKS [sbatch options...] -- VAR=VALUE...: prints the job id
  local script=$1 n=$2 opts=()
  shift 2
  while [ "$1" != -- ]; do opts+=("$1"); shift; done
  shift # the settings go through the environment (sbatch --export would split at commas)
  (cd "$W" && env LONGCTX="$LONGCTX" "$@" sbatch --parsable -N 1 --ntasks-per-node="$n" \
    --cpus-per-task=1 --time=10 --export=ALL "${opts[@]}" "$ROOT/jobs/$script")
}
wait_ok() { # JOB WHAT
  local s
  s=$(slurm_wait "$1" 300) || fail "$2: job $1 did not end: $s"
  [ "$s" = COMPLETED ] || fail "$2: job $1 ended $s"
}
lines() { [ -f "$1" ] && wc -l < "$1" || echo 0; }
# waits until FILE has a line, then suspends JOB; fails unless fewer than N lines are there
suspend_mid() {
  local job=$1 file=$2 n=$3 i k
  for i in $(seq 1 1200); do
    [ "$(lines "$file")" -ge 1 ] && break
    sleep 0.025
  done
  scontrol suspend "$job" || fail "scontrol suspend $job"
  k=$(lines "$file")
  [ "$k" -ge 1 ] && [ "$k" -lt "$n" ] || fail "job $job: $k of $n lines at the stop"
  echo "$k"
}
kill_rank() { # JOB PATTERN: SIGKILL of one longctx process whose command line has PATTERN
  local p
  for p in $(pgrep -x longctx); do
    if tr '\0' ' ' < "/proc/$p/cmdline" 2> /dev/null | grep -q -- "$2"; then
      kill -9 "$p"
      return 0
    fi
  done
  fail "no rank of job $1 found"
}
batch_shell() { pgrep -f "job0*$1/slurm_script" | head -n 1; }

$PY "$ROOT/tests/infer/hf/gen_hf_model.py" "$W/m" --hidden 128 --intermediate 256 --layers 2 \
  --heads 4 --kv-heads 2 --vocab 32000 --max-pos 1024 --seed 7 --tokenizer "$TOK" > /dev/null

# ---- 1. infer batch --------------------------------------------------------------------------
N_PROMPTS=48
$PY - "$W/prompts.jsonl" "$N_PROMPTS" << 'PY'
import json, sys
with open(sys.argv[1], "w") as f:
    for i in range(int(sys.argv[2])):
        f.write(json.dumps({"ids": [1] + [100 + (7 * i + j) % 900 for j in range(20 + i)],
                            "max_tokens": 160, "temperature": 0.7 if i % 3 else 0, "seed": i}) + "\n")
PY
mpi 2 "$LONGCTX" infer --model "$W/m" --input "$W/prompts.jsonl" --output "$W/ref-infer.jsonl" \
  --tp 2 --ctx 400 2> "$W/ref-infer.log" || { cat "$W/ref-infer.log"; exit 1; }
[ "$(lines "$W/ref-infer.jsonl")" = $N_PROMPTS ] || fail "the reference has not $N_PROMPTS lines"
IE=(MODEL="$W/m" INPUT="$W/prompts.jsonl" TP=2 CTX=400)
job=$(sub infer.sbatch 2 -- "${IE[@]}" OUTPUT="$W/i1.jsonl")
log=$W/longctx-infer-$job.log
wait_ok "$job" "infer"
cmp "$W/ref-infer.jsonl" "$W/i1.jsonl" || fail "infer.sbatch: results differ from mpirun's"
job=$(sub infer.sbatch 2 -- "${IE[@]}" OUTPUT="$W/i2.jsonl")
log=$W/longctx-infer-$job.log
k=$(suspend_mid "$job" "$W/i2.jsonl.tmp" $N_PROMPTS)
kill_rank "$job" "--output $W/i2.jsonl "
scontrol resume "$job"
s=$(slurm_wait "$job" 120) || fail "infer with a killed rank did not end: $s"
[ "$s" = FAILED ] || fail "infer with a killed rank: job ended $s"
[ -e "$W/i2.jsonl" ] && fail "a killed infer job left $W/i2.jsonl"
grep -q "killed by signal 9" "$log" || fail "no 'killed' line in $log"
job=$(sub infer.sbatch 2 -- "${IE[@]}" OUTPUT="$W/i2.jsonl")
log=$W/longctx-infer-$job.log
wait_ok "$job" "infer rerun"
cmp "$W/ref-infer.jsonl" "$W/i2.jsonl" || fail "infer rerun: results differ"
ok "infer.sbatch: mpirun's bytes; a rank killed after $k of $N_PROMPTS results: FAILED, no output; rerun: the same bytes"

# ---- 2. eval passkey -------------------------------------------------------------------------
EV=(passkey --model "$W/m" --lengths 100,300,700 --trials 12 --seed 3)
N_ITEMS=36
mpi 2 "$LONGCTX" eval "${EV[@]}" --output "$W/ref-eval" 2> "$W/ref-eval.log" ||
  { cat "$W/ref-eval.log"; exit 1; }
same_eval() {
  cmp "$W/ref-eval/results.jsonl" "$1/results.jsonl" && cmp "$W/ref-eval/summary.json" "$1/summary.json"
}
EE=(MODEL="$W/m" TASK=passkey LENGTHS=100,300,700 EVAL_ARGS="--trials 12 --seed 3")
job=$(sub eval.sbatch 2 -- "${EE[@]}" OUTPUT="$W/e1")
log=$W/longctx-eval-$job.log
wait_ok "$job" "eval"
same_eval "$W/e1" || fail "eval.sbatch: results differ from mpirun's"
# requeue
job=$(sub eval.sbatch 2 -- "${EE[@]}" OUTPUT="$W/e2")
log=$W/longctx-eval-$job.log
k=$(suspend_mid "$job" "$W/e2/results.jsonl" $N_ITEMS)
sh=$(batch_shell "$job")
[ -n "$sh" ] || fail "no batch shell for job $job"
kill -USR1 "$sh"
scontrol resume "$job"
wait_ok "$job" "eval requeued"
grep -q "requeueing" "$log" && grep -q "started (restart 1)" "$log" || fail "no requeue in $log"
grep -q "exit code 75" "$log" || fail "the eval ranks did not exit 75"
same_eval "$W/e2" || fail "eval requeued: results differ"
ok "eval.sbatch: mpirun's bytes; SIGUSR1 after $k of $N_ITEMS items: stopped, requeued, resumed, the same bytes"
# kill a rank
job=$(sub eval.sbatch 2 -- "${EE[@]}" OUTPUT="$W/e3")
log=$W/longctx-eval-$job.log
k=$(suspend_mid "$job" "$W/e3/results.jsonl" $N_ITEMS)
kill_rank "$job" "--output $W/e3 "
scontrol resume "$job"
s=$(slurm_wait "$job" 120) || fail "eval with a killed rank did not end: $s"
[ "$s" = FAILED ] || fail "eval with a killed rank: job ended $s"
grep -q "killed by signal 9" "$log" || fail "no 'killed' line in $log"
job=$(sub eval.sbatch 2 -- "${EE[@]}" OUTPUT="$W/e3")
log=$W/longctx-eval-$job.log
wait_ok "$job" "eval rerun"
same_eval "$W/e3" || fail "eval killed + rerun: results differ"
ok "eval.sbatch: a rank killed after $k items: FAILED; rerun resumed to the same bytes"

# ---- 3. prep -> export -> eval ---------------------------------------------------------------
$PY "$ROOT/tests/prep/data/gen_slimpajama.py" "$W/sp" --docs 600 --seed 9 --files-per-domain 1 \
  > /dev/null 2>&1
PA="--shard-tokens 100000 --domain-json meta.redpajama_set_name"
mpi 2 "$LONGCTX" prep --tokenizer "$TOK" --output "$W/ref-prep" --recipe keep --seq-len 2048 \
  $PA "$W/sp/train" 2> "$W/ref-prep.log" || { cat "$W/ref-prep.log"; exit 1; }
mkdir -p "$W/ref-mg"
mpi 2 "$LONGCTX" shard export --format megatron --output "$W/ref-mg/corpus" \
  "$W"/ref-prep/L2048/*.shard 2> "$W/ref-mg.log" || { cat "$W/ref-mg.log"; exit 1; }
PE=(INPUT="$W/sp/train" TOKENIZER="$TOK" RECIPE=keep TARGET_TOKENS=0 SEQ_LEN=2048 PREP_ARGS="$PA")
p=$(sub prep.sbatch 2 -- "${PE[@]}" OUTPUT="$W/c-prep")
x=$(sub export.sbatch 2 --dependency=afterok:"$p" -- SHARDS="$W/c-prep/L2048" PREFIX="$W/c-mg/corpus")
e=$(sub eval.sbatch 2 --dependency=afterok:"$x" -- "${EE[@]}" OUTPUT="$W/c-eval")
log=$W/longctx-eval-$e.log
wait_ok "$e" "the chain's eval"
[ "$(slurm_state "$p")" = COMPLETED ] && [ "$(slurm_state "$x")" = COMPLETED ] ||
  fail "chain: prep $(slurm_state "$p"), export $(slurm_state "$x")"
cmp "$W/ref-mg/corpus.bin" "$W/c-mg/corpus.bin" && cmp "$W/ref-mg/corpus.idx" "$W/c-mg/corpus.idx" ||
  fail "chain: the Megatron files differ from mpirun's"
same_eval "$W/c-eval" || fail "chain: eval results differ"
# a failing first job: its dependants never run
p=$(sub prep.sbatch 2 -- "${PE[@]}" OUTPUT="$W/c-bad" TOKENIZER="$W/no-such-tokenizer.model")
x=$(sub export.sbatch 2 --dependency=afterok:"$p" --kill-on-invalid-dep=yes -- \
  SHARDS="$W/c-bad/L2048" PREFIX="$W/c-bad-mg/corpus")
log=$W/longctx-prep-$p.log
s=$(slurm_wait "$p" 120) || fail "the failing prep did not end"
[ "$s" = FAILED ] || fail "a prep with a missing tokenizer ended $s"
s=$(slurm_wait "$x" 60) || fail "the export after a failed prep is still $(slurm_state "$x")"
[ "$s" = CANCELLED ] || fail "the export after a failed prep ended $s"
[ -e "$W/c-bad-mg" ] && fail "the export after a failed prep ran"
ok "chain prep -> export -> eval (afterok): mpirun's bytes at each step; a failed prep cancels the export"

echo "test_slurm_jobs: $passed passed"
