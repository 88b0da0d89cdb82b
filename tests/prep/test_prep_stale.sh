#!/usr/bin/env bash
# Resume after an input changed in place (same size, same mtime): the units whose bytes changed
# are tokenized again, the old shards are not resumed, and DIR is byte-identical to a fresh run
# on the edited inputs. Edits: a letter of a plain jsonl line that starts in one work unit and
# ends in the next (the unit it starts in must be redone), and a byte of a middle frame of a
# multi-frame .zst (every unit of that file is redone). Then the edits are undone, some units are
# "lost" as if a run was killed, and the rerun must equal the first run again; so must a rerun
# after a meta was damaged.
# usage: test_prep_stale.sh LONGCTX MPIEXEC
set -euo pipefail
LONGCTX=$1 MPIEXEC=$2
HERE=$(cd "$(dirname "$0")" && pwd)
ASSETS=${LONGCTX_ASSETS:-$(cd "$HERE/../../.." && pwd)/shared/assets}
TOK=$ASSETS/tokenizers/llama2/tokenizer.model
PY=/usr/bin/python3
[ -f "$TOK" ] || { echo "SKIP: $TOK missing"; exit 0; }
command -v zstd > /dev/null || { echo "SKIP: no zstd command"; exit 0; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
W=$(mktemp -d "${TMPDIR:-/tmp}/longctx-stale-XXXXXX")
trap 'rm -rf "$W"' EXIT
UNIT=20000
$PY "$HERE/data/gen_slimpajama.py" "$W/gen" --docs 1200 --seed 3 --files-per-domain 1 --chunks 1 \
  --frame-mb 0.02 > /dev/null 2>&1
mkdir "$W/in"
zstd -q -d "$W/gen/train/chunk1/example_train_0.jsonl.zst" -o "$W/in/a.jsonl"
cp "$W/gen/train/chunk1/example_train_1.jsonl.zst" "$W/in/b.jsonl.zst"
cp -a "$W/in" "$W/orig"
prep() { # OUT
  "$MPIEXEC" -np 2 --oversubscribe "$LONGCTX" prep --tokenizer "$TOK" --output "$1" --recipe keep \
    --domain-json meta.redpajama_set_name --seq-len 512,128 --shard-tokens 20000 \
    --unit-bytes $UNIT --progress-seconds 60 "$W/in" 2> "$1.log" || { cat "$1.log"; exit 1; }
}
prep "$W/out"
cp -a "$W/out" "$W/first"
# the edits: same size, then the old mtime back
$PY - "$W/in/a.jsonl" "$W/in/b.jsonl.zst" $UNIT <<'PY'
import sys
a, b, unit = sys.argv[1], sys.argv[2], int(sys.argv[3])
data = bytearray(open(a, "rb").read())
for cut in range(unit, len(data), unit):   # a line that starts before the cut, ends after it
    start = data.rfind(b"\n", 0, cut - 1) + 1
    end = data.find(b"\n", cut)
    p = next((i for i in range(cut + 1, end - 20) if chr(data[i]).isalpha()), None)
    if start < cut - 1 and p is not None:
        data[p] = ord("Q") if data[p] != ord("Q") else ord("R")
        print("a.jsonl: byte %d of the line at %d..%d (unit cut at %d)" % (p, start, end, cut))
        break
else:
    sys.exit("no line crosses a cut")
open(a, "wb").write(data)
z = bytearray(open(b, "rb").read())
z[len(z) // 2] ^= 0x20
open(b, "wb").write(z)
PY
touch -r "$W/orig/a.jsonl" "$W/in/a.jsonl"
touch -r "$W/orig/b.jsonl.zst" "$W/in/b.jsonl.zst"
cmp -s "$W/orig/a.jsonl" "$W/in/a.jsonl" && { echo "the edit did nothing"; exit 1; }
prep "$W/out"
grep -q "is tokenized again" "$W/out.log" || { echo "no unit was redone:"; cat "$W/out.log"; exit 1; }
grep "tokenized again\|resume:" "$W/out.log" | sed 's/^[^ ]* /  /' | cut -c1-150 || true
prep "$W/fresh"
if ! diff -r "$W/fresh" "$W/out" > /dev/null; then
  diff -rq "$W/fresh" "$W/out" | head; echo "FAIL: resumed on edited inputs != fresh run"; exit 1
fi
echo "ok: edited in place (same size and mtime): resumed = fresh run, byte-identical"
# undo the edits; a run "killed" in the scan: some metas and the shards gone
cp -a "$W/orig/." "$W/in/"
rm -rf "$W/out"/L* "$W/out"/manifest.tsv
ls "$W/out/work"/*.meta | tail -n 3 | xargs rm -f
prep "$W/out"
if ! diff -r "$W/first" "$W/out" > /dev/null; then
  diff -rq "$W/first" "$W/out" | head; echo "FAIL: edits undone + resumed != first run"; exit 1
fi
echo "ok: edits undone after a partial run: resumed = first run, byte-identical"
# a meta that does not read back (damaged, or from an older version): redone, shards too
printf 'LCTXUMET damaged' > "$W/out/work/unit-000002.meta"
prep "$W/out"
grep -q "unit 2 is tokenized again: .*damaged" "$W/out.log" || { cat "$W/out.log"; exit 1; }
diff -r "$W/first" "$W/out" > /dev/null || { echo "FAIL: after a damaged meta != first run"; exit 1; }
echo "ok: a damaged meta: the unit and the shards are made again, byte-identical"
echo "3 passed, 0 failed"
