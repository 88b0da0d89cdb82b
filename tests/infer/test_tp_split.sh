#!/usr/bin/env bash
# test_tp_split at NP ranks on stories260K and on HF-layout models made here (gen_hf_model.py):
# an F32 GQA model with uneven MLP and vocabulary slices, and a BF16 tied model in three shards
# (model.safetensors.index.json); then the failures: per-rank copies of the sharded model (a
# directory of symlinks for each rank) in which the last rank's lacks a shard, or has one
# truncated, and the last rank's address space capped (test_tp_split.c says what is checked).
# usage: test_tp_split.sh MPIEXEC NP TEST_TP_SPLIT
set -uo pipefail
MPIEXEC=$1 NP=$2 BIN=$3
HERE=$(cd "$(dirname "$0")" && pwd)/hf
PY=/usr/bin/python3
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
if ! $PY -c 'import numpy' 2> /dev/null; then
    echo "SKIP HF models: /usr/bin/python3 has no numpy (stories260K only)"
    exec "$MPIEXEC" -np "$NP" --oversubscribe "$BIN"
fi
W=$(mktemp -d "${TMPDIR:-/tmp}/longctx-tpsplit-XXXXXX")
trap 'rm -rf "$W"' EXIT
gen() { $PY "$HERE/gen_hf_model.py" "$W/$1" --layers 2 "${@:2}" > /dev/null || exit 1; }
# 8 heads: every TP up to 8 divides them; MLP 700 and vocabulary 1003 leave the last slice short
gen f32 --hidden 128 --intermediate 700 --heads 8 --kv-heads 2 --vocab 1003 --seed 51
gen bf16 --hidden 128 --intermediate 344 --heads 8 --kv-heads 4 --vocab 517 --dtype BF16 --tied \
    --shards 3 --seed 52
for kind in missing trunc; do
    for ((r = 0; r < NP; r++)); do
        mkdir -p "$W/$kind/r$r"
        ln -s "$W"/bf16/* "$W/$kind/r$r/"
    done
done
last=$((NP - 1))
rm "$W/missing/r$last/model-00002-of-00003.safetensors"
rm "$W/trunc/r$last/model-00003-of-00003.safetensors"
cp "$W/bf16/model-00003-of-00003.safetensors" "$W/trunc/r$last/"
truncate -s -1000 "$W/trunc/r$last/model-00003-of-00003.safetensors"
"$MPIEXEC" -np "$NP" --oversubscribe "$BIN" - "hf:F32:$W/f32" "hf:BF16:$W/bf16" \
    "missing:$W/missing" "trunc:$W/trunc" "nomem:$W/f32"
