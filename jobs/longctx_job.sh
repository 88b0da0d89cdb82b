# longctx_job.sh - sourced by jobs/*.sbatch: the launcher, clean stops and requeue.
#
#   longctx_run ARGS...   runs `$LAUNCH $LONGCTX ARGS...` in the background, so that the batch
#                         shell itself gets Slurm's warning signal (#SBATCH --signal=B:USR1@T)
#                         or the SIGTERM of a time limit or scancel, and passes it on to the
#                         ranks (through the launcher: srun and mpirun forward it). longctx
#                         stops every rank at its next clean point and exits 75 (finished work
#                         kept). Then, if the job was not cancelled and REQUEUE=1 (default), the
#                         job requeues itself (scontrol requeue) and the requeued run resumes
#                         where this one stopped; the final output is byte-identical to an
#                         uninterrupted run. Returns the command's exit code.
#
# Settings (environment, or sbatch --export): LONGCTX (default: longctx on PATH), LAUNCH
# (default `srun --mpi=pmix --kill-on-bad-exit=1` inside a Slurm job, `mpirun` outside; e.g. LAUNCH="mpirun -np 8"),
# REQUEUE (1 or 0).

LONGCTX=${LONGCTX:-longctx}
if [ -z "${LAUNCH:-}" ]; then
  if [ -n "${SLURM_JOB_ID:-}" ]; then LAUNCH="srun --mpi=pmix --kill-on-bad-exit=1"; else LAUNCH=mpirun; fi
fi
REQUEUE=${REQUEUE:-1}
LONGCTX_STOPPED=75

longctx_log() { echo "$(date '+%F %T') ${SLURM_JOB_ID:+job $SLURM_JOB_ID }$*" >&2; }

longctx_run() {
  local pid rc=0 sig=
  # shellcheck disable=SC2086 # LAUNCH is words: "srun --mpi=pmix", "mpirun -np 8"
  $LAUNCH "$LONGCTX" "$@" &
  pid=$!
  trap 'sig=USR1; kill -USR1 "$pid" 2> /dev/null' USR1
  trap 'sig=TERM; kill -USR1 "$pid" 2> /dev/null' TERM
  longctx_log "started (restart ${SLURM_RESTART_COUNT:-0}): $LAUNCH $LONGCTX $*"
  # wait returns early (> 128) when a trap runs: wait again until the launcher is gone
  while :; do
    rc=0
    wait "$pid" || rc=$?
    kill -0 "$pid" 2> /dev/null || break
  done
  trap - USR1 TERM
  if [ "$rc" = "$LONGCTX_STOPPED" ]; then
    longctx_log "stopped cleanly${sig:+ on SIG$sig}; finished work is kept"
    if [ "$sig" != TERM ] && [ "$REQUEUE" = 1 ] && [ -n "${SLURM_JOB_ID:-}" ]; then
      longctx_log "requeueing: the requeued run resumes"
      scontrol requeue "$SLURM_JOB_ID" && exit 0
      longctx_log "scontrol requeue failed: submit the same script again to resume"
    else
      longctx_log "submit the same script again to resume"
    fi
  elif [ "$rc" -gt 128 ]; then
    longctx_log "failed with exit code $rc: a rank was killed by signal $((rc - 128))" \
      "$([ $((rc - 128)) = 9 ] && echo "(SIGKILL: out of memory, or killed)")" \
      "- finished work is kept: submit the same script again to resume"
  elif [ "$rc" != 0 ]; then
    longctx_log "failed with exit code $rc (the error is above); after a fix, submitting the" \
      "same script again resumes"
  else
    longctx_log "finished"
  fi
  return "$rc"
}
