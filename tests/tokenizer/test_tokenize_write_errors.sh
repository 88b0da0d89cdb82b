#!/usr/bin/env bash
# tokenize and detokenize on a full disk (/dev/full), to stdout and to --output, in every
# format: exit 1 with a message naming the output and the system's reason, never a silent or
# empty failure. usage: test_tokenize_write_errors.sh LONGCTX
set -euo pipefail
LONGCTX=$1
HERE=$(cd "$(dirname "$0")" && pwd)
ASSETS=${LONGCTX_ASSETS:-$(cd "$HERE/../../.." && pwd)/shared/assets}
TOK=$ASSETS/tokenizers/llama3/tokenizer.json
[ -f "$TOK" ] || { echo "SKIP: $TOK missing"; exit 0; }
[ -w /dev/full ] || { echo "SKIP: no /dev/full"; exit 0; }
W=$(mktemp -d "${TMPDIR:-/tmp}/longctx-full-XXXXXX")
trap 'rm -rf "$W"' EXIT
REASON=$(/usr/bin/python3 -c 'import errno, os; print(os.strerror(errno.ENOSPC))')
printf '{"text":"hello world"}\n{"text":"two documents"}\n' > "$W/in.jsonl"
"$LONGCTX" tokenize --tokenizer "$TOK" --jsonl --input "$W/in.jsonl" --output "$W/ids.txt"
"$LONGCTX" tokenize --tokenizer "$TOK" --jsonl --input "$W/in.jsonl" --format u32 --output "$W/ids.u32"
n=0
expect_fail() { # NAME OUTPUT-NAME COMMAND... (stdout of COMMAND goes to /dev/full)
  local name=$1 what=$2 rc=0; shift 2
  "$@" > /dev/full 2> "$W/err" || rc=$?
  if [ "$rc" != 1 ]; then echo "$name: exit $rc, want 1"; cat "$W/err"; exit 1; fi
  if ! grep -q -- "$what: .*$REASON" "$W/err"; then
    echo "$name: the message does not name '$what' and '$REASON':"; cat "$W/err"; exit 1
  fi
  echo "ok: $name"; n=$((n + 1))
}
T=(--tokenizer "$TOK")
expect_fail "tokenize > /dev/full" stdout "$LONGCTX" tokenize "${T[@]}" --jsonl --input "$W/in.jsonl"
expect_fail "tokenize u32 > /dev/full" stdout "$LONGCTX" tokenize "${T[@]}" --input "$W/in.jsonl" --format u32
expect_fail "tokenize --output /dev/full" /dev/full "$LONGCTX" tokenize "${T[@]}" --input "$W/in.jsonl" --output /dev/full
expect_fail "detokenize > /dev/full" stdout "$LONGCTX" detokenize "${T[@]}" --input "$W/ids.txt"
expect_fail "detokenize --jsonl > /dev/full" stdout "$LONGCTX" detokenize "${T[@]}" --jsonl --input "$W/ids.txt"
expect_fail "detokenize u32 > /dev/full" stdout "$LONGCTX" detokenize "${T[@]}" --format u32 --input "$W/ids.u32"
expect_fail "detokenize --output /dev/full" /dev/full "$LONGCTX" detokenize "${T[@]}" --input "$W/ids.txt" --output /dev/full
# and a normal run still exits 0 with the same bytes
"$LONGCTX" detokenize "${T[@]}" --jsonl --input "$W/ids.txt" --output "$W/back.jsonl"
/usr/bin/python3 -c 'import json,sys; assert [json.loads(l)["text"] for l in open(sys.argv[1])] == ["hello world", "two documents"]' "$W/back.jsonl"
echo "$n passed, 0 failed"
