#!/usr/bin/env bash
# Success on nothing: when every record is rejected (a typo in --domain-json or --text-field),
# fewer than 1 in 100 records are kept, the inputs hold no records, or no document is selected,
# prep warns, naming the top reject reason and its count; with --strict it exits 1. A run that
# keeps a few percent says nothing of the kind.
# usage: test_prep_empty.sh LONGCTX
set -euo pipefail
LONGCTX=$1
HERE=$(cd "$(dirname "$0")" && pwd)
ASSETS=${LONGCTX_ASSETS:-$(cd "$HERE/../../.." && pwd)/shared/assets}
TOK=$ASSETS/tokenizers/llama2/tokenizer.model
PY=/usr/bin/python3
[ -f "$TOK" ] || { echo "SKIP: $TOK missing"; exit 0; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
W=$(mktemp -d "${TMPDIR:-/tmp}/longctx-empty-XXXXXX")
trap 'rm -rf "$W"' EXIT
mkdir "$W/all" "$W/few" "$W/some" "$W/none"
$PY - "$W" <<'PY'
import json, sys
w = sys.argv[1]
def write(path, n, n_good):
    with open(path, "w") as f:
        for i in range(n):
            meta = {"set": "web"} if i < n_good else {"other": "web"}
            f.write(json.dumps({"text": "document number %d says hello" % i, "meta": meta}) + "\n")
write(w + "/all/a.jsonl", 300, 300)
write(w + "/few/a.jsonl", 300, 2)    # 2 of 300 kept: under 1 in 100
write(w + "/some/a.jsonl", 300, 9)   # 3 in 100: no warning
open(w + "/none/a.jsonl", "w").close()
PY
printf '{"name": "zero", "bucket_edges": [0], "bucket_weights": [0]}\n' > "$W/zero.json"
failed=0 passed=0
check() { # want-exit regex-or-"-" input args...
  local want=$1 re=$2 input=$3; shift 3
  local rc=0
  "$LONGCTX" prep --tokenizer "$TOK" --output "$W/out" --seq-len 64 --progress-seconds 60 "$@" \
    "$W/$input" > /dev/null 2> "$W/log" || rc=$?
  rm -rf "$W/out"
  local ok=1
  [ "$rc" = "$want" ] || ok=0
  if [ "$re" = - ]; then
    grep -Eq "kept|no records|no document selected" "$W/log" && ok=0
  else
    grep -Eq "$re" "$W/log" || ok=0
  fi
  if [ $ok = 1 ]; then
    passed=$((passed + 1))
  else
    echo "FAIL: prep $* $input: exit $rc (want $want), log should match: $re"
    sed 's/^/  /' "$W/log" | tail -3; failed=$((failed + 1))
  fi
}
check 0 " W .*nothing kept: 0 of 300 records.*domain: 300 records" all --domain-json meta.typo
check 0 " W .*nothing kept: 0 of 300 records.*field: 300 records" all --domain-json meta.set --text-field txt
check 0 " W .*almost nothing kept: 2 of 300 records.*domain: 298 records" few --domain-json meta.set
check 0 - some --domain-json meta.set
check 0 - all --domain-json meta.set
check 0 " W .*no records" none --domain-json meta.set
check 1 " E .*no records.*--strict" none --domain-json meta.set --strict
check 0 " W .*no document selected" all --domain-json meta.set --recipe "$W/zero.json"
check 1 " E .*no document selected.*--strict" all --domain-json meta.set --recipe "$W/zero.json" --strict
check 1 " E .*rejected" all --domain-json meta.typo --strict
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
