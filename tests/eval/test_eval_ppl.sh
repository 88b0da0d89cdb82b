#!/usr/bin/env bash
# longctx eval ppl-vs-length end to end on random HF models (tests/infer/hf/gen_hf_model.py):
#   - every item's loss of the last N and its position buckets equal NLLs computed here in
#     float64 from the logits of tests/infer/hf/ref_forward.py (shares no code with the engine)
#     on the item's window, within 1e-4 (model A, every document and length);
#   - each item equals `longctx perplexity --ctx L+1` on the same L+1 ids (the same bits);
#   - results.jsonl and summary.json byte-identical at -np 1 and -np 2 (2 replicas), and at
#     -np 2 --tp 2 and -np 4 (2 replicas of TP 2); TP 1 against TP 2: every field equal but
#     the losses, which agree within 1e-5 relative (the split matrices' sums round otherwise);
#   - .u32, .jsonl and a .shard packed by `longctx shard pack` give the same items;
#   - resumption: a journal cut after k items (and half a line) reruns only the others, to
#     the same files; the plot exists (PNG signature, SVG parses); usage errors exit 2.
# usage: test_eval_ppl.sh LONGCTX
set -euo pipefail
LONGCTX=$1
HERE=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3
$PY -c 'import numpy' 2> /dev/null || { echo "SKIP: /usr/bin/python3 has no numpy"; exit 0; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
W=$(mktemp -d "${TMPDIR:-/tmp}/longctx-evalppl-XXXXXX")
trap 'rm -rf "$W"' EXIT
run() { timeout 300 mpirun --oversubscribe -np "$@"; }
fail() { echo "FAIL: $*"; exit 1; }
for s in 5 6; do
    $PY "$HERE/../infer/hf/gen_hf_model.py" "$W/m$s" --hidden 64 --intermediate 128 --layers 2 \
        --heads 4 --kv-heads 2 --vocab 512 --dtype F32 --max-pos 256 --seed $s > /dev/null
done
$PY - "$W" <<'PY'
import sys, json, numpy as np
w = sys.argv[1]
rng = np.random.default_rng(1)
docs = [rng.integers(0, 512, n) for n in (300, 100, 130, 257)]
with open(w + "/d.u32", "wb") as f:
    for d in docs:
        np.array([len(d)], "<u4").tofile(f)
        d.astype("<u4").tofile(f)
with open(w + "/d.jsonl", "w") as f:
    for d in docs:
        f.write(json.dumps({"ids": [int(x) for x in d]}) + "\n")
PY
"$LONGCTX" shard pack --output "$W/d.shard" --vocab-size 512 --seq-len 96 --format u32 "$W/d.u32" > /dev/null
A=(eval ppl-vs-length --model "$W/m5" --model "$W/m6" --lengths 32,64,128,256 --last 16)

# ---- replicas and TP sizes ----------------------------------------------------------------
run 1 "$LONGCTX" "${A[@]}" --input "$W/d.u32" --output "$W/o1" 2> "$W/log"
grep -q '2 documents of >= 257 tokens (2 shorter), 4 lengths, 2 models: 16 items' "$W/log" ||
    { cat "$W/log"; fail "documents"; }
run 2 "$LONGCTX" "${A[@]}" --input "$W/d.u32" --output "$W/o2" --tp 1 2> "$W/log"
grep -q '2 replicas of tensor-parallel size 1' "$W/log" || { cat "$W/log"; fail "2 replicas"; }
run 2 "$LONGCTX" "${A[@]}" --input "$W/d.u32" --output "$W/t2" --tp 2 2> "$W/log"
run 4 "$LONGCTX" "${A[@]}" --input "$W/d.u32" --output "$W/t4" --tp 2 2> "$W/log"
grep -q '2 replicas of tensor-parallel size 2' "$W/log" || { cat "$W/log"; fail "2x2"; }
for p in "o1 o2" "t2 t4"; do
    set -- $p
    cmp "$W/$1/results.jsonl" "$W/$2/results.jsonl" || fail "$1 $2 results differ"
    cmp "$W/$1/summary.json" "$W/$2/summary.json" || fail "$1 $2 summaries differ"
done
echo "identical files: -np 1 and 2 replicas; TP 2 and 2 replicas x TP 2"

# ---- the other inputs ---------------------------------------------------------------------
run 1 "$LONGCTX" "${A[@]}" --input "$W/d.jsonl" --output "$W/j" 2> "$W/log"
run 2 "$LONGCTX" "${A[@]}" --input "$W/d.shard" --output "$W/s" --tp 1 2> "$W/log"
strip() { sed 's/"input":"[^"]*",//' "$1"; }
for d in j s; do
    cmp <(strip "$W/o1/results.jsonl") <(strip "$W/$d/results.jsonl") || fail "$d: other items"
    cmp "$W/o1/summary.json" "$W/$d/summary.json" || fail "$d: summary differs"
done
echo ".jsonl and .shard (4 documents packed in 96-token sequences, pieces joined) give the .u32 items"

# ---- resumption -----------------------------------------------------------------------------
mkdir "$W/r"
cp "$W/o1/config.json" "$W/r/"
head -n 5 "$W/o1/results.jsonl" > "$W/r/results.jsonl"
sed -n 6p "$W/o1/results.jsonl" | head -c 40 >> "$W/r/results.jsonl"
run 2 "$LONGCTX" "${A[@]}" --input "$W/d.u32" --output "$W/r" --tp 1 2> "$W/log"
grep -q '(5 done before)' "$W/log" || { cat "$W/log"; fail "resume"; }
cmp "$W/o1/results.jsonl" "$W/r/results.jsonl" || fail "resumed results differ"
cmp "$W/o1/summary.json" "$W/r/summary.json" || fail "resumed summary differs"
echo "resumed after 5 items and half a line: the same files"

# ---- the reference and perplexity -------------------------------------------------------------
$PY - "$W" "$HERE/../infer/hf/ref_forward.py" "$LONGCTX" <<'PY'
import sys, json, subprocess, numpy as np, xml.etree.ElementTree as ET
w, ref, lc = sys.argv[1:4]
raw = open(w + "/d.u32", "rb").read()
docs, o = [], 0
while o < len(raw):
    n = int(np.frombuffer(raw, "<u4", 1, o)[0]); o += 4
    docs.append(np.frombuffer(raw, "<u4", n, o).astype(np.int64)); o += 4 * n
long = [d for d in docs if len(d) >= 257]
rows = [json.loads(l) for l in open(w + "/o1/results.jsonl")]
assert [r["item"] for r in rows] == list(range(16))
worst = worst_ppl = 0.0
for r in rows:
    L, N, d = r["length"], r["last"], long[r["document"]]
    assert r["prompt_tokens"] == L and N == 16 and r["window_start"] == 256 - L, r
    assert r["model"].endswith("/m5") == (r["item"] < 8), r
    win = d[256 - L:257]  # L fed, L targets
    # perplexity on the same window, its per-token NLLs
    win.astype("<u4").reshape(1, -1)
    with open(w + "/win.u32", "wb") as f:
        np.array([L + 1], "<u4").tofile(f)
        win.astype("<u4").tofile(f)
    out = subprocess.run([lc, "perplexity", "--model", r["model"], "--input", w + "/win.u32",
                          "--ctx", str(L + 1), "--stride", str(L + 1), "--per-token",
                          w + "/nll.f64"], check=True, capture_output=True, text=True).stdout
    p = np.fromfile(w + "/nll.f64", "<f8")
    assert len(p) == L
    s = 0.0
    for x in p[L - N:]:
        s += float(x)  # in order, as the engine adds them
    worst_ppl = max(worst_ppl, abs(s / N - r["loss_last"]))
    assert s / N == r["loss_last"], (s / N, r["loss_last"])
    if not r["model"].endswith("/m5"):
        continue
    subprocess.run([sys.executable, ref, r["model"], "--prompt-ids", ",".join(map(str, win[:L])),
                    "--out", w + "/ref.f32"], check=True, stdout=subprocess.DEVNULL)
    lg = np.fromfile(w + "/ref.f32", "<f4").reshape(L, 512).astype(np.float64)
    m = lg.max(axis=1)
    nll = m + np.log(np.exp(lg - m[:, None]).sum(axis=1)) - lg[np.arange(L), win[1:]]
    err = abs(nll[L - N:].mean() - r["loss_last"])
    assert err < 1e-4, (r, nll[L - N:].mean())
    worst = max(worst, err, abs(nll.mean() - r["loss_window"]))
    pos = np.arange(1, L + 1)  # the target's position in the window
    for b in r["buckets"]:
        sel = (pos >= b["from"]) & (pos <= b["to"])
        assert sel.sum() == b["tokens"], b
        worst = max(worst, abs(nll[sel].mean() - b["loss"]))
    assert sum(b["tokens"] for b in r["buckets"]) == L
assert worst < 1e-4, worst
s = json.load(open(w + "/o1/summary.json"))
for k, mo in enumerate(s["models"]):
    for l in range(4):
        want = sum(r["loss_last"] for r in rows[8 * k:8 * k + 8] if r["length"] == s["lengths"][l]) / 2
        assert abs(mo["loss_last"][l] - want) < 1e-12 and abs(mo["ppl_last"][l] - np.exp(want)) < 1e-9 * np.exp(want)
# TP 2 against TP 1: all but the losses equal, the losses within 1e-5 relative
t = [json.loads(l) for l in open(w + "/t2/results.jsonl")]
tp = 0.0
for a, b in zip(rows, t):
    num = lambda r: [r["loss_last"], r["ppl_last"], r["loss_window"]] + [x["loss"] for x in r["buckets"]]
    keep = lambda r: {k: v for k, v in r.items() if k not in ("loss_last", "ppl_last", "loss_window", "buckets")}
    assert keep(a) == keep(b) and [x["tokens"] for x in a["buckets"]] == [x["tokens"] for x in b["buckets"]]
    tp = max(tp, max(abs(x - y) / abs(x) for x, y in zip(num(a), num(b))))
assert tp < 1e-5, tp
png = open(w + "/o1/ppl-vs-length.png", "rb").read()
assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000
ET.parse(w + "/o1/ppl-vs-length.svg")
print("16 items: reference (model A, 8 items) worst |loss error| %.2g; perplexity on the same "
      "windows: identical (worst %.2g); TP 2 vs TP 1 worst relative %.2g" % (worst, worst_ppl, tp))
print("loss of the last 16 per length:", [["%.4f" % x for x in m["loss_last"]] for m in s["models"]])
PY

# ---- usage ------------------------------------------------------------------------------------
set +e
"$LONGCTX" eval ppl-vs-length --model "$W/m5" --output "$W/u" 2> "$W/err"
[ $? -eq 2 ] && grep -q -- "--input" "$W/err" || { cat "$W/err"; fail "no input not refused"; }
"$LONGCTX" eval ppl-vs-length --model "$W/m5" --input "$W/d.u32" --output "$W/u" --lengths 8,16 --last 9 2> "$W/err"
[ $? -eq 2 ] && grep -q "shortest length" "$W/err" || { cat "$W/err"; fail "--last > L"; }
"$LONGCTX" eval ppl-vs-length --model "$W/m5" --input "$W/d.u32" --output "$W/u" --lengths 400 --last 9 2> "$W/err"
[ $? -eq 2 ] && grep -q "no document" "$W/err" || { cat "$W/err"; fail "no document long enough"; }
"$LONGCTX" eval ppl-vs-length --model "$W/m5" --input "$W/d.u32" --output "$W/o1" --lengths 32,64 --last 9 2> "$W/err"
[ $? -eq 2 ] && grep -q "another run" "$W/err" || { cat "$W/err"; fail "another run's directory"; }
set -e
echo "6 passed, 0 failed"
