#!/usr/bin/env bash
# 2D (--tp-grid: PSGEMM on a BLACS grid) against 1D tensor-parallel prefill on the 70B slice
# (two layers of Llama-3.1-70B's shapes, BF16, made as in BENCHMARKS.md "Issue 11: the 70B
# slice"): per layer the time and the bytes each rank sends (bench_tp2d), at 1, 2 and 4 ranks
# (4 oversubscribe the 2 cores: their times are not speeds, their bytes are exact), then the
# model (tp2d_model.py) checked against those bytes and extrapolated to 256 ranks.
# OPENBLAS_CORETYPE is left as the machine has it; CORETYPE=X sets it for the 2D runs only (their
# local products are OpenBLAS sgemm; 1D's are longctx's own kernels).
# usage: bench_tp2d.sh MODEL_DIR [CHUNK=128] [OUT=/tmp/longctx-tp2d.txt]
set -euo pipefail
M=$1
CHUNK=${2:-128}
OUT=${3:-/tmp/longctx-tp2d.txt}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
B=${BENCH:-$ROOT/build/tests/bench/bench_tp2d}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
env2d=()
[ -n "${CORETYPE:-}" ] && env2d=(-x OPENBLAS_CORETYPE="$CORETYPE")
: > "$OUT"
run() { # NP GRID_ROWS
    local bind=(--bind-to core)
    [ "$1" -gt 2 ] && bind=(--bind-to none)
    if [ "$2" = 0 ]; then
        mpirun -np "$1" "${bind[@]}" "$B" "$M" "$CHUNK" 2 0 | tee -a "$OUT"
    else
        mpirun -np "$1" "${bind[@]}" "${env2d[@]}" "$B" "$M" "$CHUNK" 2 "$2" 64 | tee -a "$OUT"
    fi
}
echo "# $(date -u +%FT%TZ) $(git -C "$ROOT" rev-parse --short HEAD) load $(cut -d' ' -f1-3 /proc/loadavg) OPENBLAS_CORETYPE for 2D: ${CORETYPE:-unset}"
run 1 0; run 1 1; run 2 0; run 2 1; run 2 2; run 4 0; run 4 2; run 4 1; run 4 4
/usr/bin/python3 "$HERE/tp2d_model.py" --n "$CHUNK" --measured "$OUT" | sed -n '1,/^$/p'
/usr/bin/python3 "$HERE/tp2d_model.py" --n 512
