#!/usr/bin/env bash
# longctx infer's batch mode and text prompts. stories260K (../shared/assets): a jsonl of id
# prompts gives the reference's 32 greedy ids from BOS and log-probs equal to log-softmax of the
# reference's float64 logits (1e-4); a random HF model with the Llama 2 tokenizer beside it:
# --prompt text is encoded as `longctx tokenize --add-bos` encodes it, batch {"prompt": ...}
# agrees with --prompt, text is printed; bad lines are refused naming file and line.
# usage: test_infer_batch.sh LONGCTX
set -euo pipefail
LONGCTX=$1
HERE=$(cd "$(dirname "$0")" && pwd)
ASSETS=${LONGCTX_ASSETS:-$(cd "$HERE/../../.." && pwd)/shared/assets}
PY=/usr/bin/python3
D=$ASSETS/models/stories260K
[ -f "$D/reference.json" ] || { echo "SKIP: $D missing"; exit 0; }
$PY -c 'import numpy' 2> /dev/null || { echo "SKIP: /usr/bin/python3 has no numpy"; exit 0; }
W=$(mktemp -d "${TMPDIR:-/tmp}/longctx-batch-XXXXXX")
trap 'rm -rf "$W"' EXIT
n=0
printf '{"ids": [1], "max_tokens": 32}\n\n{"ids": [1, 461], "max_tokens": 3, "temperature": 0.8, "seed": 5}\n' > "$W/in.jsonl"
"$LONGCTX" infer --model "$D/stories260K.bin" --input "$W/in.jsonl" --output "$W/out.jsonl" 2> /dev/null
$PY - "$W/out.jsonl" "$D" <<'PY'
import sys, json, numpy as np
out = [json.loads(l) for l in open(sys.argv[1])]
ref = json.load(open(sys.argv[2] + "/reference.json"))
lg = np.fromfile(sys.argv[2] + "/reference_logits.f32", "<f4").reshape(-1, 512).astype(np.float64)
want = ref["greedy_from_bos"]["ids"]
assert len(out) == 2 and out[0]["index"] == 0 and out[1]["index"] == 1, out
assert out[0]["ids"] == want, (out[0]["ids"], want)
assert out[0]["finish_reason"] == "length" and out[0]["prompt_tokens"] == 1
ids = ref["input_ids"]
m = lg.max(axis=1, keepdims=True)
ls = lg - m - np.log(np.exp(lg - m).sum(axis=1, keepdims=True))
wl = [ls[k, ids[k + 1]] for k in range(32)]
err = np.abs(np.array(out[0]["logprobs"]) - wl).max()
assert err < 1e-4, err
assert len(out[1]["ids"]) == 3 and len(out[1]["logprobs"]) == 3
print("batch: 32 greedy ids, log-probs within %.2g of the reference" % err)
PY
n=$((n + 1))
# a random HF model with a real tokenizer
T=$ASSETS/tokenizers/llama2/tokenizer.model
if [ -f "$T" ]; then
    $PY "$HERE/hf/gen_hf_model.py" "$W/m" --hidden 64 --intermediate 128 --layers 1 --heads 2 \
        --kv-heads 1 --vocab 32000 --dtype BF16 --seed 3 --tokenizer "$T" > /dev/null
    printf 'The quick brown fox' > "$W/p.txt"
    "$LONGCTX" infer --model "$W/m" --prompt-file "$W/p.txt" --generate 4 --logits-out "$W/l.f32" > "$W/g.txt"
    rows=$(($(stat -c %s "$W/l.f32") / 4 / 32000))
    want=$("$LONGCTX" tokenize --tokenizer "$T" --input "$W/p.txt" --add-bos | wc -w)
    [ "$rows" -eq $((want + 3)) ] || { echo "rows $rows, want $want + 3"; exit 1; }
    [ "$(wc -l < "$W/g.txt")" -eq 2 ] || { cat "$W/g.txt"; exit 1; }
    printf '{"prompt": "The quick brown fox", "max_tokens": 4}\n' > "$W/t.jsonl"
    "$LONGCTX" infer --model "$W/m" --input "$W/t.jsonl" --output "$W/t.out" 2> /dev/null
    $PY - "$W/t.out" "$W/g.txt" "$want" <<'PY'
import sys, json
r = json.loads(open(sys.argv[1]).read())
ids = open(sys.argv[2]).readline().split()
assert r["ids"] == [int(x) for x in ids], (r["ids"], ids)
assert r["prompt_tokens"] == int(sys.argv[3]) and "text" in r, r
PY
    echo "text prompt: $want tokens as longctx tokenize --add-bos, batch agrees, text printed"
    n=$((n + 1))
    # the text goes through the tokenizer module's JSON extractor (as prep's and tokenize's):
    # escapes are unescaped, and a line that is not strict RFC 8259 JSON is refused by column
    printf '{"prompt": "The quick\\u0020brown \\"fox\\"", "max_tokens": 1}\n' > "$W/e.jsonl"
    printf 'The quick brown "fox"' > "$W/e.txt"
    "$LONGCTX" infer --model "$W/m" --input "$W/e.jsonl" --output "$W/e.out" 2> /dev/null
    want_e=$("$LONGCTX" tokenize --tokenizer "$T" --input "$W/e.txt" --add-bos | wc -w)
    grep -q "\"prompt_tokens\":$want_e," "$W/e.out" || { cat "$W/e.out"; exit 1; }
    printf '{"prompt": "The quick brown fox", "max_tokens": 1,}\n' > "$W/s.jsonl"
    if "$LONGCTX" infer --model "$W/m" --input "$W/s.jsonl" --output "$W/s.out" 2> "$W/s.err" ||
        ! grep -q "s.jsonl: line 1: .*column" "$W/s.err"; then
        cat "$W/s.err"; exit 1
    fi
    echo "batch text: escapes unescaped ($want_e tokens), a non-strict line refused: $(tail -n 1 "$W/s.err")"
    n=$((n + 1))
else
    echo "SKIP: $T missing"
fi
printf '{"ids": [1]}\n{"prompt": 5}\n' > "$W/bad.jsonl"
set +e
"$LONGCTX" infer --model "$D/stories260K.bin" --input "$W/bad.jsonl" --output "$W/o" 2> "$W/err"; rc=$?
set -e
[ $rc -ne 0 ] && grep -q "bad.jsonl: line 2" "$W/err" || { cat "$W/err"; exit 1; }
n=$((n + 1))
echo "$n passed, 0 failed"
