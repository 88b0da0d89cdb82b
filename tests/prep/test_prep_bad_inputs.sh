#!/usr/bin/env bash
# prep on the bad-input corpus (tests/prep/data/gen_bad_inputs.py: malformed JSON, missing
# field and domain, invalid UTF-8, empty text, NUL bytes, binary junk, truncated .zst/.gz/.tar,
# empty files, a 300 MB line): nothing crashes or stops, every record is counted per file and
# reason exactly as the generator's expected.json says (under both UTF-8 policies), the totals
# reconcile, the result does not depend on the rank count, and --strict stops at the first
# reject naming file and offset.
# usage: test_prep_bad_inputs.sh LONGCTX MPIEXEC
set -euo pipefail
LONGCTX=$1 MPIEXEC=$2
HERE=$(cd "$(dirname "$0")" && pwd)
ASSETS=${LONGCTX_ASSETS:-$(cd "$HERE/../../.." && pwd)/shared/assets}
TOK=$ASSETS/tokenizers/llama2/tokenizer.model
PY=/usr/bin/python3
[ -f "$TOK" ] || { echo "SKIP: $TOK missing"; exit 0; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
W=$(mktemp -d "${TMPDIR:-/tmp}/longctx-bad-XXXXXX")
trap 'rm -rf "$W"' EXIT
$PY "$HERE/data/gen_bad_inputs.py" "$W/bad" --huge > /dev/null
mkdir "$W/json" && mv "$W"/bad/* "$W/json/" && mv "$W/json/txt" "$W/bad/txt"
mv "$W/json/expected.json" "$W/expected.json"
passed=0
run() { # NP OUT UTF8 INPUT extra...
  local np=$1 out=$2 utf8=$3 input=$4; shift 4
  "$MPIEXEC" -np "$np" --oversubscribe "$LONGCTX" prep --tokenizer "$TOK" --output "$out" \
    --recipe keep --seq-len 1024 --utf8 "$utf8" --max-doc-bytes 1048576 --progress-seconds 60 \
    "$@" "$input" 2> "$out.log" || { cat "$out.log"; exit 1; }
}
for policy in reject replace; do
  run 1 "$W/$policy.np1" $policy "$W/json" --domain-json meta.redpajama_set_name
  run 2 "$W/$policy.np2" $policy "$W/json" --domain-json meta.redpajama_set_name
  diff -r "$W/$policy.np1" "$W/$policy.np2" > /dev/null || { echo "depends on rank count"; exit 1; }
  run 1 "$W/$policy.txt" $policy "$W/bad/txt" --domain text
  $PY - "$W/expected.json" "$policy" "$W/$policy.np1/stats.json" "$W/$policy.txt/stats.json" <<'PY'
import json, os, sys
exp = json.load(open(sys.argv[1]))["files"]
policy = sys.argv[2] + "_policy"
bad = 0
n_files = 0
for stats_path in sys.argv[3:]:
    st = json.load(open(stats_path))
    t = st["totals"]
    assert t["records"] == t["rejected"] + t["duplicates"] + t["selected"] + t["not_selected"], t
    for f in st["files"]:
        name = os.path.relpath(f["path"], os.path.dirname(os.path.dirname(f["path"])))
        key = name.split("/", 1)[1] if name.startswith("json/") else name
        key = key if key in exp else os.path.basename(f["path"])
        if key not in exp:
            print("no expectation for", f["path"]); bad += 1; continue
        e = exp[key][policy]
        got = {r: f["rejects"].get(r, 0) for r in e["rejects"]}
        want = {r: v for r, v in e["rejects"].items()}
        if f["records"] != e["records"] or got != want:
            print("%s: records %d rejects %s; expected records %d rejects %s" % (key, f["records"], got, e["records"], want))
            bad += 1
        n_files += 1
print("%s: %d files, every count as expected" % (policy, n_files) if not bad else "%d files differ" % bad)
sys.exit(1 if bad else 0)
PY
  passed=$((passed + 1))
done
# --strict: the first reject stops the run, naming file and offset
if "$MPIEXEC" -np 2 --oversubscribe "$LONGCTX" prep --tokenizer "$TOK" --output "$W/strict" \
     --recipe keep --strict --domain-json meta.redpajama_set_name "$W/json" 2> "$W/strict.log"; then
  echo "--strict accepted bad input"; exit 1
fi
grep -Eq "json/[a-z_.]+.*offset [0-9]+: rejected|json/[a-z_.]+.*(truncated|offset)" "$W/strict.log" ||
  { cat "$W/strict.log"; exit 1; }
echo "strict: $(grep -m1 -o 'json/[^ ]*.*' "$W/strict.log" | cut -c1-120)"
passed=$((passed + 1))
echo "$passed passed, 0 failed"
