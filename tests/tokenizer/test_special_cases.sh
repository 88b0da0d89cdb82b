#!/usr/bin/env bash
# special_cases.jsonl (192 hand-written cases: whitespace runs, digits, contractions, every
# script, emoji, controls, special-token text, "▁", "<0x41>") against goldens made by peers
# (golden/gen_golden.sh says how; none comes from longctx):
#   llama3 --parse-special  = HF tokenizers       (special text becomes special ids)
#   llama3 default          = llama.cpp           (special text is text)
#   llama2 .model           = sentencepiece
#   llama2 tokenizer.json   = sentencepiece       (without --parse-special, HF's <s> rule is off)
# usage: test_special_cases.sh LONGCTX
set -euo pipefail
LONGCTX=$1
HERE=$(cd "$(dirname "$0")" && pwd)
ASSETS=${LONGCTX_ASSETS:-$(cd "$HERE/../../.." && pwd)/shared/assets}
G=$HERE/golden
T3=$ASSETS/tokenizers/llama3/tokenizer.json
T2=$ASSETS/tokenizers/llama2/tokenizer.model
T2J=$ASSETS/tokenizers/llama2/tokenizer.json
for f in "$T3" "$T2" "$T2J"; do [ -f "$f" ] || { echo "SKIP: $f missing"; exit 0; }; done
W=$(mktemp -d "${TMPDIR:-/tmp}/longctx-special-XXXXXX")
trap 'rm -rf "$W"' EXIT
n=0
check() { # NAME GOLDEN ARGS...
  local name=$1 golden=$2; shift 2
  "$LONGCTX" tokenize --jsonl --format u32 --input "$HERE/special_cases.jsonl" --output "$W/out.u32" "$@"
  if ! cmp -s "$W/out.u32" "$golden"; then
    /usr/bin/python3 "$HERE/compare_u32.py" "$W/out.u32" "$golden" "$HERE/special_cases.jsonl" || true
    echo "$name: differs from $golden"; exit 1
  fi
  echo "$name: 192 of 192 cases exact"; n=$((n + 1))
}
check "llama3 --parse-special vs HF" "$G/special_cases.llama3.hf.u32" --tokenizer "$T3" --parse-special
check "llama3 vs llama.cpp" "$G/special_cases.llama3.llamacpp.u32" --tokenizer "$T3"
check "llama2 .model vs sentencepiece" "$G/special_cases.llama2.spm.u32" --tokenizer "$T2"
check "llama2 tokenizer.json vs sentencepiece" "$G/special_cases.llama2.spm.u32" --tokenizer "$T2J"
check "llama3 --threads 4 vs HF" "$G/special_cases.llama3.hf.u32" --tokenizer "$T3" --parse-special --threads 4
# detokenize gives the text back (byte-level: every case; the tests above pin the ids)
"$LONGCTX" tokenize --jsonl --input "$HERE/special_cases.jsonl" --tokenizer "$T3" --output "$W/ids.txt"
"$LONGCTX" detokenize --jsonl --tokenizer "$T3" --input "$W/ids.txt" --output "$W/back.jsonl"
/usr/bin/python3 - "$HERE/special_cases.jsonl" "$W/back.jsonl" <<'PY'
import json, sys
a = [json.loads(l)["text"] for l in open(sys.argv[1], encoding="utf-8") if l.strip()]
b = [json.loads(l)["text"] for l in open(sys.argv[2], encoding="utf-8")]
assert a == b, [i for i, (x, y) in enumerate(zip(a, b)) if x != y][:5]
PY
echo "llama3 detokenize: 192 of 192 round trips"; n=$((n + 1))
echo "$n passed, 0 failed"
