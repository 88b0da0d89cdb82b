#!/usr/bin/env bash
# Regression tests of issue 10's infer defects, on stories260K (../shared/assets): a text prompt
# without a tokenizer (1), batch --output onto --input (4), plan on more than one MPI rank (6), plan
# --tp that infer would refuse (7), non-finite weights and options (8), writes to a full disk
# (9), messages that name the field (11), id lists and zero scored tokens (12). Each check says
# which defect it covers; exit codes: 1 runtime failure, 2 usage error, never a signal.
# usage: test_infer_defects.sh LONGCTX MPIEXEC
set -uo pipefail
LONGCTX=$1
MPIEXEC=${2:-mpirun}
HERE=$(cd "$(dirname "$0")" && pwd)
ASSETS=${LONGCTX_ASSETS:-$(cd "$HERE/../../.." && pwd)/shared/assets}
D=$ASSETS/models/stories260K
M=$D/stories260K.bin
[ -f "$M" ] || { echo "SKIP: $D missing"; exit 0; }
PY=/usr/bin/python3
W=$(mktemp -d "${TMPDIR:-/tmp}/longctx-defects-XXXXXX")
trap 'rm -rf "$W"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
pass=0
fail=0
# expect NAME RC PATTERN -- COMMAND...: the command exits RC and its stderr matches PATTERN
expect() {
    local name=$1 want=$2 pat=$3
    shift 4
    "$@" > "$W/out" 2> "$W/err"
    local rc=$?
    if [ "$rc" -eq "$want" ] && grep -Eq -- "$pat" "$W/err"; then
        pass=$((pass + 1))
    else
        echo "FAIL $name: exit $rc (want $want), stderr:"
        sed 's/^/    /' "$W/err" | head -5
        fail=$((fail + 1))
    fi
}
ok() { # ok NAME CONDITION-COMMAND...
    local name=$1
    shift
    if "$@"; then pass=$((pass + 1)); else echo "FAIL $name"; fail=$((fail + 1)); fi
}

# 1: a text prompt on a model without a tokenizer is a usage error, a missing file a runtime one
expect d1-prompt 2 "tokenizer" -- "$LONGCTX" infer --model "$M" --prompt hello
expect d1-prompt-file 1 "$W/missing.txt" -- "$LONGCTX" infer --model "$M" --prompt-file "$W/missing.txt"

# 4: batch --output onto --input (same path, another path, a hard link) is refused, input kept
printf '{"ids": [1], "max_tokens": 2}\n' > "$W/in.jsonl"
cp "$W/in.jsonl" "$W/in.orig"
ln "$W/in.jsonl" "$W/link.jsonl"
expect d4-same 2 "same file" -- "$LONGCTX" infer --model "$M" --input "$W/in.jsonl" --output "$W/in.jsonl"
expect d4-path 2 "same file" -- "$LONGCTX" infer --model "$M" --input "$W/in.jsonl" --output "$W/../$(basename "$W")/in.jsonl"
expect d4-link 2 "same file" -- "$LONGCTX" infer --model "$M" --input "$W/in.jsonl" --output "$W/link.jsonl"
ok d4-kept cmp -s "$W/in.jsonl" "$W/in.orig"

# 6: plan on more than one rank is refused by every rank with exit 2, the message printed once;
# infer and perplexity split the model over the ranks (issue 11) and print once
expect d6-plan 2 "one MPI rank" -- "$MPIEXEC" -np 2 --oversubscribe "$LONGCTX" plan --model "$M" --ctx 8
ok d6-plan-once [ "$(grep -c "one MPI rank" "$W/err")" -eq 1 ]
ok d6-infer "$MPIEXEC" -np 2 --oversubscribe "$LONGCTX" infer --model "$M" --prompt-ids 1 --generate 3 > "$W/out"
ok d6-infer-once [ "$(wc -l < "$W/out")" -eq 1 ]
expect d6-infer-3 2 "heads" -- "$MPIEXEC" -np 3 --oversubscribe "$LONGCTX" infer --model "$M" --prompt-ids 1
ok d6-infer-3-once [ "$(grep -c "heads" "$W/err")" -eq 1 ]
expect d6-perplexity 1 "no token was scored" -- "$MPIEXEC" -np 2 --oversubscribe "$LONGCTX" perplexity --model "$M" --input "$W/in.jsonl"
ok d6-perplexity-once [ "$(grep -c "no token was scored" "$W/err")" -eq 1 ]

# 7: plan refuses a --tp that does not divide the attention heads (stories260K has 8)
expect d7-tp3 2 "heads" -- "$LONGCTX" plan --model "$M" --ctx 8 --tp 3
ok d7-tp2 "$LONGCTX" plan --model "$M" --ctx 8 --tp 2 > /dev/null

# 8: non-finite options are refused; NaN weights fail with the position
for v in nan inf -inf; do
    expect "d8-temp-$v" 2 "temperature" -- "$LONGCTX" infer --model "$M" --prompt-ids 1 --temperature $v
done
expect d8-top-p-nan 2 "top-p" -- "$LONGCTX" infer --model "$M" --prompt-ids 1 --top-p nan
printf '{"ids": [1], "temperature": NaN}\n' > "$W/nan.jsonl"
expect d8-batch-temp 1 "line 1.*temperature" -- "$LONGCTX" infer --model "$M" --input "$W/nan.jsonl" --output "$W/o.jsonl"
printf '{"ids": [1], "top_p": 1e999}\n' > "$W/inf.jsonl"
expect d8-batch-top-p 1 "line 1.*top_p" -- "$LONGCTX" infer --model "$M" --input "$W/inf.jsonl" --output "$W/o.jsonl"
cp "$M" "$W/nan.bin"
# the embedding row of token 5 (dim 64, after the 28-byte header) becomes NaN
printf '\x00\x00\xc0\x7f' | dd of="$W/nan.bin" bs=1 seek=$((28 + 4 * 64 * 5)) conv=notrunc 2> /dev/null
# (the classifier is the embedding, so logit 5 is NaN from position 0 on, where the hidden state
# is still finite; infer computes only the last prompt row, 2, after the NaN embedding at 1)
expect d8-nan-infer 1 "non-finite logits at position 2.*the embedding of position 1" -- "$LONGCTX" infer --model "$W/nan.bin" --prompt-ids 1,5,7 --generate 2
printf '{"ids": [1, 5, 7, 9]}\n' > "$W/doc.jsonl"
expect d8-nan-ppl 1 "non-finite logits at position 0.*hidden states are finite: the final norm or the classifier" -- "$LONGCTX" perplexity --model "$W/nan.bin" --input "$W/doc.jsonl"
ok d8-no-nan-json bash -c "! grep -q nan '$W/out'"
# a NaN in layer 2's gate (w1): the message names the layer (llama2.c layout: dim 64, hidden
# 172, 5 layers, kv dim 32, vocab 512; w1 follows emb, rms_att, wq, wk, wv, wo, rms_ffn)
cp "$M" "$W/nan2.bin"
off=$((28 + 4 * (512 * 64 + 5 * 64 + 5 * 64 * 64 + 2 * 5 * 64 * 32 + 5 * 64 * 64 + 5 * 64 + 2 * 64 * 172 + 7)))
printf '\x00\x00\xc0\x7f' | dd of="$W/nan2.bin" bs=1 seek=$off conv=notrunc 2> /dev/null
expect d8-nan-layer 1 "position 0 .*the output of layer 2 at position 0" -- "$LONGCTX" infer --model "$W/nan2.bin" --prompt-ids 1 --generate 2

# 9: a full stdout or output file is a runtime failure
run_full() { "$LONGCTX" "$@" > /dev/full; }
printf '{"ids": [1, 5, 7, 9, 11]}\n' > "$W/ok.jsonl"
expect d9-infer-full 1 "stdout" -- run_full infer --model "$M" --prompt-ids 1 --generate 3
expect d9-ppl-full 1 "stdout" -- run_full perplexity --model "$M" --input "$W/ok.jsonl"
expect d9-plan-full 1 "stdout" -- run_full plan --model "$M" --ctx 8
expect d9-logits-out 1 "/dev/full" -- "$LONGCTX" infer --model "$M" --prompt-ids 1,5 --logits-out /dev/full
expect d9-per-token 1 "/dev/full" -- "$LONGCTX" perplexity --model "$M" --input "$W/ok.jsonl" --per-token /dev/full

# 11: messages name the file, the field and the value
mkdir -p "$W/cfg"
base='"hidden_size": 64, "intermediate_size": 172, "num_attention_heads": 8, "num_key_value_heads": 4'
echo "{$base, \"num_hidden_layers\": 1000000000, \"vocab_size\": 512}" > "$W/cfg/layers.json"
expect d11-layers 1 "layers.json: num_hidden_layers 1000000000" -- "$LONGCTX" plan --config "$W/cfg/layers.json" --ctx 8
echo "{$base, \"num_hidden_layers\": 5, \"vocab_size\": 0}" > "$W/cfg/vocab.json"
expect d11-vocab 1 "vocab.json: vocab_size 0" -- "$LONGCTX" plan --config "$W/cfg/vocab.json" --ctx 8
: > "$W/cfg/empty.json"
expect d11-empty 1 "empty.json: .*empty" -- "$LONGCTX" plan --config "$W/cfg/empty.json" --ctx 8
ok d11-empty-no-tokener bash -c "! grep -q json_tokener '$W/err'"

# 12: empty list elements are refused anywhere, with the same message; @missing is exit 1;
# zero scored tokens fail with a message
for l in "1,2," "1,,2" ",1" ""; do
    expect "d12-ids-'$l'" 2 "prompt-ids wants ids like 1,2,3" -- "$LONGCTX" infer --model "$M" --prompt-ids "$l"
done
expect d12-positions 2 "logits-positions wants" -- "$LONGCTX" infer --model "$M" --prompt-ids 1,2 --logits-out "$W/l.f32" --logits-positions 0,
expect d12-at-missing 1 "$W/missing.ids" -- "$LONGCTX" infer --model "$M" --prompt-ids "@$W/missing.ids"
printf '1 5\n7\n' > "$W/ok.ids"
ok d12-at-file "$LONGCTX" infer --model "$M" --prompt-ids "@$W/ok.ids" > /dev/null 2>&1
printf '{"ids": [1]}\n' > "$W/short.jsonl"
expect d12-zero-scored 1 "no token" -- "$LONGCTX" perplexity --model "$M" --input "$W/short.jsonl"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
