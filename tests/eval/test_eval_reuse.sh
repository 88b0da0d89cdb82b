#!/usr/bin/env bash
# Prefix reuse in `longctx eval` (the default; --no-prefix-reuse prefills every prompt from 0) on
# a random HF model (tests/infer/hf/gen_hf_model.py) with the Llama 2 tokenizer:
#   - needle (depths given out of order, lengths past the 512-token prefill chunk) and passkey:
#     results.jsonl and summary.json byte-identical to --no-prefix-reuse at -np 1, 2 replicas,
#     TP 2, 2 replicas x TP 2 and TP 4 (where reuse starts at a chunk boundary);
#   - reuse did happen: the job's count of prefilled tokens is below the prompt tokens, and at
#     most what the needle positions allow at TP 1 and 2 (each prompt of a length after the
#     needle of the one before, the depths in increasing order), computed here from
#     results.jsonl; with
#     --no-prefix-reuse every prompt token is prefilled.
# usage: test_eval_reuse.sh LONGCTX
set -euo pipefail
LONGCTX=$1
HERE=$(cd "$(dirname "$0")" && pwd)
ASSETS=${LONGCTX_ASSETS:-$(cd "$HERE/../../.." && pwd)/shared/assets}
PY=/usr/bin/python3
T=$ASSETS/tokenizers/llama2/tokenizer.model
[ -f "$T" ] || { echo "SKIP: $T missing"; exit 0; }
$PY -c 'import numpy' 2> /dev/null || { echo "SKIP: /usr/bin/python3 has no numpy"; exit 0; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
W=$(mktemp -d "${TMPDIR:-/tmp}/longctx-reuse-XXXXXX")
trap 'rm -rf "$W"' EXIT
run() { timeout 300 mpirun --oversubscribe -np "$@"; } # run NP CMD...: no hang
fail() { echo "FAIL: $*"; exit 1; }

$PY "$HERE/../infer/hf/gen_hf_model.py" "$W/m" --hidden 64 --intermediate 128 --layers 2 \
    --heads 4 --kv-heads 2 --vocab 32000 --max-pos 512 --seed 7 --tokenizer "$T" > /dev/null
sed -n '1,80p' "$HERE/../../README.md" > "$W/a.txt"
ND=(needle --model "$W/m" --lengths 300,700,1100 --depths 70,0,35,100,50 --haystack "$W/a.txt")
PK=(passkey --model "$W/m" --lengths 300,900 --trials 4 --seed 4)

same() { # same DIR1 DIR2: results and summary byte-identical
    cmp "$1/results.jsonl" "$2/results.jsonl" || fail "$1 and $2: results differ"
    cmp "$1/summary.json" "$2/summary.json" || fail "$1 and $2: summaries differ"
}
counts() { # counts LOG: "prefilled prompt" of the job's last line
    sed -n 's/.*prefilled \([0-9]*\) of \([0-9]*\) prompt tokens.*/\1 \2/p' "$1"
}

for t in needle passkey; do
    if [ $t = needle ]; then A=("${ND[@]}"); else A=("${PK[@]}"); fi
    run 1 "$LONGCTX" eval "${A[@]}" --output "$W/$t-off" --no-prefix-reuse 2> "$W/log"
    read -r pre tot <<< "$(counts "$W/log")"
    [ "$pre" = "$tot" ] || { cat "$W/log"; fail "$t: --no-prefix-reuse prefilled $pre of $tot"; }
    for cfg in "1 1" "2 1" "2 2" "4 2" "4 4"; do
        read -r np tp <<< "$cfg"
        d="$W/$t-np$np-tp$tp"
        run "$np" "$LONGCTX" eval "${A[@]}" --output "$d" --tp "$tp" 2> "$W/log"
        same "$W/$t-off" "$d"
        read -r pre tot <<< "$(counts "$W/log")"
        [ "$pre" -lt "$tot" ] || { cat "$W/log"; fail "$t np $np tp $tp: no reuse ($pre of $tot)"; }
        echo "$t -np $np --tp $tp: same files as --no-prefix-reuse; prefilled $pre of $tot prompt tokens"
        # one replica at TP 1 or 2 (reuse from the prefix's end): the bound from needle_pos
        if [ $t = needle ] && [ "$np" = "$tp" ] && [ "$tp" -le 2 ]; then
            $PY - "$d/results.jsonl" "$pre" <<'PY'
import sys, json, itertools
rows = [json.loads(l) for l in open(sys.argv[1])]
bound = 0
for _, g in itertools.groupby(rows, key=lambda r: r["length"]):
    g = sorted(g, key=lambda r: r["depth"])
    bound += sum(r["prompt_tokens"] - (g[k - 1]["needle_pos"] if k else 0) for k, r in enumerate(g))
pre = int(sys.argv[2])
assert pre <= bound, (pre, bound)
PY
        fi
    done
done
echo "prefix reuse: identical results with and without it at 1, 2 and 4 ranks, TP 1, 2 and 4"
