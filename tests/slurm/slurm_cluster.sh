#!/usr/bin/env bash
# A real single-node Slurm for the tests, from Debian 12's slurm-wlm and munge (setup.sh
# installs them). Source it, then:
#   slurm_up DIR      writes DIR/slurm.conf, starts munged, slurmctld and slurmd as root, each
#                     with its own socket, spool, state, pid and log file under DIR, and waits
#                     until the node is idle; exports SLURM_CONF
#   slurm_down        stops what slurm_up started, by the PIDs it recorded (call it from a trap)
#   slurm_wait JOB S  waits at most S seconds for JOB to end; prints its final JobState
#   slurm_state JOB   prints JOB's JobState now
# The node says it has SLURM_TEST_CPUS CPUs (default 8, config_overrides), so jobs of 4 and 8
# ranks run on a 2-core machine, oversubscribed as mpirun --oversubscribe would.
# When slurm-wlm is not installed, slurm_up prints a SKIP line and returns 77.

SLURM_TEST_DIR=
SLURM_TEST_PIDS=()

slurm_log_tail() {
  local f
  for f in "$SLURM_TEST_DIR"/{munged,slurmctld,slurmd}.log; do
    [ -f "$f" ] && { echo "--- $f"; tail -n 20 "$f"; }
  done
  return 0
}

slurm_up() {
  local d=$1 host cpus=${SLURM_TEST_CPUS:-8} mem port0
  for b in munged slurmctld slurmd sbatch srun scontrol sinfo; do
    command -v "$b" > /dev/null || { echo "SKIP: $b missing (apt-get install slurm-wlm munge)"; return 77; }
  done
  mkdir -p "$d"/{state,spool,munge}
  SLURM_TEST_DIR=$(cd "$d" && pwd)
  d=$SLURM_TEST_DIR
  host=$(hostname -s)
  mem=$(awk '/MemTotal/ {printf "%d", $2 / 1024 / 2}' /proc/meminfo)
  # ports of our own: another Slurm (or a test left running) on the defaults does not matter
  port0=$((20000 + (RANDOM % 20000)))
  # munged refuses root unless --force; its key must belong to the user running it
  cp /etc/munge/munge.key "$d/munge/munge.key" 2> /dev/null ||
    dd if=/dev/urandom of="$d/munge/munge.key" bs=1024 count=1 2> /dev/null
  chmod 700 "$d/munge"
  chmod 400 "$d/munge/munge.key"
  munged --force --socket="$d/munge/munge.sock" --key-file="$d/munge/munge.key" \
    --pid-file="$d/munge/munged.pid" --log-file="$d/munged.log" --seed-file="$d/munge/seed" ||
    { echo "munged did not start"; slurm_log_tail; return 1; }
  SLURM_TEST_PIDS+=("$(cat "$d/munge/munged.pid")")
  cat > "$d/slurm.conf" << EOF
ClusterName=longctx-test
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$port0
SlurmdPort=$((port0 + 1))
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$d/munge/munge.sock,cred_expire=10
StateSaveLocation=$d/state
SlurmdSpoolDir=$d/spool
SlurmctldPidFile=$d/slurmctld.pid
SlurmdPidFile=$d/slurmd.pid
SlurmctldLogFile=$d/slurmctld.log
SlurmdLogFile=$d/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
MpiDefault=none
ReturnToService=2
JobRequeue=1
KillWait=10
MinJobAge=600
SchedulerParameters=defer_batch
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=test Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
EOF
  export SLURM_CONF=$d/slurm.conf
  slurmctld -f "$SLURM_CONF" || { echo "slurmctld did not start"; slurm_log_tail; return 1; }
  local i
  for i in $(seq 1 100); do [ -s "$d/slurmctld.pid" ] && break; sleep 0.1; done
  SLURM_TEST_PIDS+=("$(cat "$d/slurmctld.pid")")
  slurmd -f "$SLURM_CONF" || { echo "slurmd did not start"; slurm_log_tail; return 1; }
  for i in $(seq 1 100); do [ -s "$d/slurmd.pid" ] && break; sleep 0.1; done
  SLURM_TEST_PIDS+=("$(cat "$d/slurmd.pid")")
  for i in $(seq 1 300); do
    case $(sinfo -h -o %T 2> /dev/null) in idle*) return 0 ;; esac
    sleep 0.1
  done
  echo "the Slurm node did not come up: $(sinfo 2>&1)"
  slurm_log_tail
  return 1
}

slurm_down() { # safe under set -e, and when nothing was started
  local p i
  # jobs first (their ranks are children of slurmd's slurmstepd)
  [ -n "${SLURM_CONF:-}" ] && { scancel --quiet --full --signal=KILL --user=root 2> /dev/null || true; }
  for ((i = ${#SLURM_TEST_PIDS[@]} - 1; i >= 0; i--)); do # slurmd, slurmctld, munged
    p=${SLURM_TEST_PIDS[i]}
    [ -n "$p" ] && { kill "$p" 2> /dev/null || true; }
  done
  for ((i = ${#SLURM_TEST_PIDS[@]} - 1; i >= 0; i--)); do
    p=${SLURM_TEST_PIDS[i]}
    for _ in $(seq 1 50); do kill -0 "$p" 2> /dev/null || break; sleep 0.1; done
    kill -9 "$p" 2> /dev/null || true
  done
  SLURM_TEST_PIDS=()
  return 0
}

slurm_state() {
  scontrol show job "$1" 2> /dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p' | head -n 1
}

slurm_wait() {
  local job=$1 limit=$2 s i
  for ((i = 0; i < limit * 5; i++)); do
    s=$(slurm_state "$job")
    case $s in COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY | BOOT_FAIL | DEADLINE)
      echo "$s"
      return 0
      ;;
    esac
    sleep 0.2
  done
  echo "TIMEOUT_WAITING($s)"
  return 1
}
