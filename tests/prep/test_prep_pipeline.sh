#!/usr/bin/env bash
# longctx prep end to end on a generated SlimPajama-like corpus (tests/prep/data):
#  - byte-identical output directory at mpirun -np 1, 2 and 4 (and with --threads 2);
#  - the independent checker (check_prep_output.py: sentencepiece on the original texts, the
#    manifest and `shard cat --docs`) accepts it: every selected document's tokens appear
#    exactly `copies` times, and nothing else;
#  - budgets are met to within one document per domain, or the domain is exhausted;
#  - exact dedup removes exactly the planted duplicates and keeps planted near-duplicates;
#  - domain shares stay at the recipe's shares while the long-token share rises (fu2024);
#  - bestfit packing (prolong-64k) is rank-independent and passes the checker too.
# usage: test_prep_pipeline.sh LONGCTX MPIEXEC
set -euo pipefail
LONGCTX=$1 MPIEXEC=$2
HERE=$(cd "$(dirname "$0")" && pwd)
ASSETS=${LONGCTX_ASSETS:-$(cd "$HERE/../../.." && pwd)/shared/assets}
TOK=$ASSETS/tokenizers/llama2/tokenizer.model
PY=/usr/bin/python3
[ -f "$TOK" ] || { echo "SKIP: $TOK missing"; exit 0; }
$PY -c 'import sentencepiece, numpy' 2>/dev/null || { echo "SKIP: python3-sentencepiece missing"; exit 0; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
W=$(mktemp -d "${TMPDIR:-/tmp}/longctx-prep-XXXXXX")
trap 'rm -rf "$W"' EXIT
passed=0
ok() { echo "ok: $*"; passed=$((passed + 1)); }

$PY "$HERE/data/gen_slimpajama.py" "$W/sp" --docs 2500 --seed 11 --files-per-domain 2 \
  --dup-fraction 0.02 --near-dup-fraction 0.01 > /dev/null 2>&1
# one file as plain jsonl too, cut into several work units by --unit-bytes
first=$(ls "$W"/sp/train/*/*.jsonl.zst | head -n 1)
zstd -q -d "$first" -o "${first%.zst}" && rm "$first"

run() { # NP OUT extra args...
  local np=$1 out=$2; shift 2
  "$MPIEXEC" -np "$np" --oversubscribe "$LONGCTX" prep --tokenizer "$TOK" --output "$out" \
    --unit-bytes 200000 --shard-tokens 50000 --progress-seconds 60 "$@" "$W/sp/train" 2> "$out.log" ||
    { cat "$out.log"; exit 1; }
}
FU=(--recipe fu2024-per-source --target-tokens 600000 --seq-len 8192,2048)
run 1 "$W/np1" "${FU[@]}"
run 2 "$W/np2" "${FU[@]}"
run 4 "$W/np4" "${FU[@]}" --threads 2
diff -r "$W/np1" "$W/np2" > /dev/null && diff -r "$W/np1" "$W/np4" > /dev/null ||
  { echo "output depends on the rank count"; diff -rq "$W/np1" "$W/np4" | head; exit 1; }
ok "np 1, 2, 4 (threads 2) give byte-identical output"

# --threads 3 on a rank bound to one CPU: the same bytes (the shards compressed on 3 threads),
# and a warning that says how to give the rank its CPUs
taskset -c 0 "$LONGCTX" prep --tokenizer "$TOK" --output "$W/t3" --unit-bytes 200000 \
  --shard-tokens 50000 --progress-seconds 60 "${FU[@]}" --threads 3 "$W/sp/train" 2> "$W/t3.log" ||
  { cat "$W/t3.log"; exit 1; }
diff -r -x '*.log' "$W/np1" "$W/t3" > /dev/null || { echo "--threads 3 changed the output"; exit 1; }
grep -q -- "--threads 3, but a rank may run on only 1 CPU.*--bind-to none" "$W/t3.log" ||
  { echo "no warning for 3 threads on 1 CPU"; cat "$W/t3.log"; exit 1; }
if [ "$(nproc)" -ge 2 ]; then # on two CPUs, two threads: no warning
  taskset -c 0,1 "$LONGCTX" prep --tokenizer "$TOK" --output "$W/t2" --unit-bytes 200000 \
    --shard-tokens 50000 --progress-seconds 60 "${FU[@]}" --threads 2 "$W/sp/train" \
    2> "$W/t2.log" || { cat "$W/t2.log"; exit 1; }
  grep -q "may run on only" "$W/t2.log" && { echo "a warning on 2 CPUs"; exit 1; }
  rm -rf "$W/t2"
fi
ok "--threads 3 on one CPU: the same output, and a warning naming the fix"

# an output folder inside the input folder is not read as input, also on a rerun
for k in 1 2; do
  "$MPIEXEC" -np 2 --oversubscribe "$LONGCTX" prep --tokenizer "$TOK" --output "$W/sp/train/out" \
    --unit-bytes 200000 --shard-tokens 50000 --progress-seconds 60 "${FU[@]}" "$W/sp/train" \
    2> "$W/inside.log" || { cat "$W/inside.log"; exit 1; }
done
diff -r "$W/np1" "$W/sp/train/out" > /dev/null || { echo "output inside the input differs"; exit 1; }
rm -rf "$W/sp/train/out"
ok "an output folder inside the input folder is skipped (twice), same bytes"

"$LONGCTX" shard verify "$W"/np1/L*/part-*.shard > /dev/null
ok "every shard verifies"

$PY "$HERE/data/check_prep_output.py" --corpus-dir "$W/sp/train" --out "$W/np1" \
  --tokenizer "$TOK" --longctx "$LONGCTX" --bos 1 > "$W/check.txt" 2>&1 ||
  { cat "$W/check.txt"; exit 1; }
ok "independent checker (L=8192 and L=2048): $(tail -n 1 "$W/check.txt")"

$PY - "$W/np1" "$W/sp" <<'PY'
import csv, json, os, sys
out, sp = sys.argv[1], sys.argv[2]
st = json.load(open(os.path.join(out, "stats.json")))
man = list(csv.DictReader(open(os.path.join(out, "manifest.tsv")), delimiter="\t"))
t = st["totals"]
assert t["records"] == t["rejected"] + t["duplicates"] + t["selected"] + t["not_selected"], t
# budgets within one document, or the domain is exhausted (shortfall reported)
biggest = {}
for m in man:
    biggest[m["domain"]] = max(biggest.get(m["domain"], 0), int(m["tokens"]) * int(m["copies"]))
for name, d in st["domains"].items():
    b, s = d["budget_tokens"], d["selected_tokens"]
    if d["shortfall_tokens"]:
        assert s < b and d["shortfall_tokens"] == b - s, (name, d)
    else:
        assert b <= s < b + biggest[name], (name, b, s, biggest[name])
print("budgets: within one document or short:", {k: (d["budget_tokens"], d["selected_tokens"]) for k, d in st["domains"].items()})
# dedup: the truth from the texts themselves (every record of every file, hashed here)
import collections, glob, json as js, subprocess
texts = collections.Counter()
first_of = {}
for f in sorted(glob.glob(os.path.join(sp, "train", "*", "*.jsonl*"))):
    raw = subprocess.run(["zstd", "-dc", f], capture_output=True, check=True).stdout if f.endswith(".zst") else open(f, "rb").read()
    for i, line in enumerate(raw.split(b"\n")):
        if line.strip():
            texts[js.loads(line)["text"]] += 1
expected_dups = sum(c - 1 for c in texts.values())
assert t["duplicates"] == expected_dups, (t["duplicates"], expected_dups)
rows = [l.rstrip("\n").split("\t") for l in open(os.path.join(sp, "planted_duplicates.tsv"))]
rows = [r for r in rows if r and not r[0].startswith("orig")]
assert expected_dups >= len(rows)
near = [l.split("\t") for l in open(os.path.join(sp, "planted_near_duplicates.tsv")) if not l.startswith("orig")]
print("dedup: %d duplicates removed = identical texts in the corpus (%d planted copies, %d near-duplicates planted)" % (t["duplicates"], len(rows), len(near)))
PY
ok "budgets, reconciliation and dedup"

# fu2024: shares at the recipe's values where supply allows, long share up in every domain
$PY - "$W/np1/stats.json" <<'PY'
import json, sys
st = json.load(open(sys.argv[1]))
for name, d in st["domains"].items():
    edges = st["bucket_edges"]
    long_b = edges.index(4096)
    def share(h):
        tot = sum(h)
        return sum(h[long_b:]) / tot if tot else 0
    before, after = share(d["hist_tokens_before"]), share(d["hist_tokens_after"])
    assert after >= before - 1e-9, (name, before, after)
    print("%-24s long share %.2f -> %.2f, target share %.4f achieved %.4f" % (name, before, after, d["share_target"], d["share_achieved"]))
PY
ok "fu2024 raises the long-token share in every domain"

PRO=(--recipe prolong-64k --target-tokens 400000 --seq-len 8192)
run 1 "$W/pro1" "${PRO[@]}"
run 2 "$W/pro2" "${PRO[@]}"
diff -r "$W/pro1" "$W/pro2" > /dev/null || { echo "bestfit output depends on the rank count"; exit 1; }
$PY "$HERE/data/check_prep_output.py" --corpus-dir "$W/sp/train" --out "$W/pro1" --short any --unordered \
  --tokenizer "$TOK" --longctx "$LONGCTX" --bos 1 --eos 2 > "$W/checkpro.txt" 2>&1 ||
  { cat "$W/checkpro.txt"; exit 1; }
ok "bestfit (prolong-64k): rank-independent, checker: $(tail -n 1 "$W/checkpro.txt")"

# a .zst file of many frames (lines cut across frames) is cut into work units at its frames:
# the same bytes at 1, 2 and 4 ranks, and the same documents and shards as the file in one frame
mkdir -p "$W/fr"
big=$(ls -S "$W"/sp/train/*/*.jsonl.zst | head -n 1)
cp "$big" "$W/fr/one.jsonl.zst"
FR=(--recipe fu2024-per-source --target-tokens 100000 --seq-len 2048)
runfr() { # NP OUT
  "$MPIEXEC" -np "$1" --oversubscribe "$LONGCTX" prep --tokenizer "$TOK" --output "$2" \
    --unit-bytes 20000 --shard-tokens 50000 --progress-seconds 60 "${FR[@]}" "$W/fr" 2> "$2.log" ||
    { cat "$2.log"; exit 1; }
}
runfr 1 "$W/fr-one"
zstd -q -d -c "$big" > "$W/fr.jsonl"
split -b 7777 -d -a 4 "$W/fr.jsonl" "$W/frpart."
for p in "$W"/frpart.*; do zstd -q -c "$p"; done > "$W/fr/one.jsonl.zst"
n_frames=$(ls "$W"/frpart.* | wc -l)
for np in 1 2 4; do runfr $np "$W/fr$np"; done
units=$(sed -n 's/.* input files\? in \([0-9]*\) work units.*/\1/p' "$W/fr1.log")
[ "${units:-0}" -gt 1 ] || { echo "the file of $n_frames frames was not cut ($units units)"; exit 1; }
diff -r "$W/fr1" "$W/fr2" > /dev/null && diff -r "$W/fr1" "$W/fr4" > /dev/null ||
  { echo "frame units: output depends on the rank count"; diff -rq "$W/fr1" "$W/fr4" | head; exit 1; }
diff "$W/fr-one/manifest.tsv" "$W/fr1/manifest.tsv" > /dev/null &&
  diff -r "$W/fr-one/L2048" "$W/fr1/L2048" > /dev/null ||
  { echo "frame units: other documents or shards than the file in one frame"; exit 1; }
ok "a .zst of $n_frames frames in $units work units: np 1, 2, 4 byte-identical, same manifest and shards as one frame"
echo "$passed passed, 0 failed"
