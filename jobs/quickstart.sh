#!/usr/bin/env bash
# The built-in default: `longctx prep` end to end on text every Debian machine ships, in about
# a minute. Three domains, each a jsonl.zst file:
#   manuals  man pages (/usr/share/man)
#   docs     package documentation (/usr/share/doc)
#   code     C headers and Perl/Python sources (/usr/include, /usr/share/perl, /usr/lib/python3)
# A SentencePiece BPE tokenizer is trained on them with Debian's spm_train; then
#   mpirun -np 2 longctx prep  (recipe jobs/quickstart-recipe.json: domain shares, length
#   upsampling, a 4K and a 16K version of the same selection), shard verify, Megatron export.
# Then the inference side, on a small model with RANDOM WEIGHTS (tests/infer/hf/gen_hf_model.py,
# the tokenizer just trained; it has learned nothing, so its scores are those of noise: this
# shows the machinery, not a model), under mpirun -np $NP:
#   longctx eval ppl-vs-length on the first PPL_SEQS documents of the 4K shards just written (read
#     from the shards, documents rebuilt from their pieces): eval/ppl/ (ppl-vs-length.png);
#   longctx eval needle on a short grid (EVAL_LENGTHS x EVAL_DEPTHS) whose haystack is the docs
#     domain's text: eval/needle/{results.jsonl,summary.json,needle.svg,needle.png}.
# Settings (environment overrides):
set -euo pipefail
OUT=${OUT:-out/quickstart}
LONGCTX=${LONGCTX:-build/longctx}
MB_PER_DOMAIN=${MB_PER_DOMAIN:-6}
VOCAB=${VOCAB:-8000}
NP=${NP:-2}
THREADS=${THREADS:-1}
EVAL_LENGTHS=${EVAL_LENGTHS:-1024,2048,4096}
EVAL_DEPTHS=${EVAL_DEPTHS:-0,50,100}
PPL_SEQS=${PPL_SEQS:-4}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1

cd "$(dirname "$0")/.."
mkdir -p "$OUT/corpus"
log() { printf '%s quickstart: %s\n' "$(date +%T)" "$*" >&2; }

if [ ! -f "$OUT/corpus/code.jsonl.zst" ]; then
  log "corpus: ${MB_PER_DOMAIN} MB per domain from /usr/share/man, /usr/share/doc, sources"
  /usr/bin/python3 - "$OUT/corpus" "$MB_PER_DOMAIN" <<'PY'
import gzip, json, os, subprocess, sys
out, mb = sys.argv[1], int(sys.argv[2]) << 20
def files(roots, keep):
    for root in roots:
        for d, subdirs, names in sorted(os.walk(root)):
            subdirs.sort()
            for n in sorted(names):
                p = os.path.join(d, n)
                if os.path.isfile(p) and not os.path.islink(p) and keep(n):
                    yield p
def text(p):
    try:
        raw = gzip.open(p).read() if p.endswith(".gz") else open(p, "rb").read()
    except (OSError, EOFError):
        return None
    if b"\0" in raw:
        return None
    return raw.decode("utf-8", errors="replace")
domains = {
    "manuals": (["/usr/share/man"], lambda n: n.endswith(".gz")),
    "docs": (["/usr/share/doc"], lambda n: n.endswith(".gz") or n.startswith("README") or n.endswith(".txt")),
    "code": (["/usr/include", "/usr/share/perl", "/usr/lib/python3"], lambda n: n.endswith((".h", ".pm", ".py"))),
}
for name, (roots, keep) in domains.items():
    size = 0
    path = os.path.join(out, name + ".jsonl")
    with open(path, "w", encoding="utf-8") as f:
        for p in files(roots, keep):
            t = text(p)
            if not t:
                continue
            t = t[:200000]  # keep one file from filling a domain
            f.write(json.dumps({"text": t, "source": p}, ensure_ascii=False) + "\n")
            size += len(t)
            if size >= mb:
                break
    subprocess.run(["zstd", "-q", "-f", "--rm", path], check=True)
PY
fi

if [ ! -f "$OUT/spm.model" ]; then
  log "training a ${VOCAB}-piece SentencePiece BPE tokenizer (spm_train)"
  for d in manuals docs code; do zstd -dc "$OUT/corpus/$d.jsonl.zst"; done | /usr/bin/python3 -c '
import json, sys
for line in sys.stdin:
    t = json.loads(line)["text"]
    for i in range(0, len(t), 4000):
        print(t[i:i + 4000].replace("\n", " "))' > "$OUT/train.txt"
  spm_train --input="$OUT/train.txt" --model_prefix="$OUT/spm" --vocab_size="$VOCAB" \
    --model_type=bpe --byte_fallback=true --input_sentence_size=200000 \
    --shuffle_input_sentence=true --minloglevel=2 >/dev/null 2>&1
  rm -f "$OUT/train.txt"
fi

log "longctx prep with mpirun -np $NP"
mpirun -np "$NP" --oversubscribe "$LONGCTX" prep --tokenizer "$OUT/spm.model" \
  --output "$OUT/prep" --recipe jobs/quickstart-recipe.json --threads "$THREADS" \
  --progress-seconds 2 "$OUT/corpus"
"$LONGCTX" shard verify "$OUT"/prep/L*/part-*.shard
"$LONGCTX" shard info "$OUT"/prep/L4096/part-00000.shard | head -8

log "Megatron export of the 16K sequences (mpirun -np $NP)"
mpirun -np "$NP" --oversubscribe "$LONGCTX" shard export --format megatron \
  --output "$OUT/megatron-16k" "$OUT"/prep/L16384/part-*.shard
sed -n '1,/^## Lengths/p' "$OUT/prep/report.md" | head -30
log "done: $OUT/prep (shards, manifest.tsv, stats.json, report.md) and $OUT/megatron-16k.{bin,idx}"

# ---- the inference side -------------------------------------------------------------------------
EV=$OUT/eval
mkdir -p "$EV"
if [ ! -f "$EV/model/config.json" ]; then
  log "a small Llama model with RANDOM WEIGHTS (hidden 64, 2 layers, vocab $VOCAB, 4096 positions)"
  /usr/bin/python3 tests/infer/hf/gen_hf_model.py "$EV/model" --hidden 64 --intermediate 176 \
    --layers 2 --heads 4 --kv-heads 2 --vocab "$VOCAB" --max-pos 4096 --seed 1 > /dev/null
  cp "$OUT/spm.model" "$EV/model/tokenizer.model"
fi
log "loss against context length of the random-weights model on the documents of the 4K shards (mpirun -np $NP)"
mpirun -np "$NP" --oversubscribe "$LONGCTX" eval ppl-vs-length --model "$EV/model" \
  --input "$OUT"/prep/L4096/part-00000.shard --output "$EV/ppl" --lengths 256,512,1024,2048 \
  --last 128 --docs "$PPL_SEQS" --threads "$THREADS"
/usr/bin/python3 - "$EV/ppl/summary.json" "$VOCAB" <<'PY'
import json, math, sys
s = json.load(open(sys.argv[1]))
m = s["models"][0]
print("ppl-vs-length (random weights: no better than chance, ln(vocab) = %.2f): %d documents, "
      "loss of the last %d tokens at %s: %s nats"
      % (math.log(int(sys.argv[2])), s["documents"], s["last"],
         "/".join(map(str, s["lengths"])), " / ".join("%.3f" % v for v in m["loss_last"])))
PY
log "needle in a haystack, lengths $EVAL_LENGTHS x depths $EVAL_DEPTHS, on the random-weights model (mpirun -np $NP)"
zstd -dc "$OUT/corpus/docs.jsonl.zst" | /usr/bin/python3 -c '
import json, sys
n = 0
with open(sys.argv[1], "w", encoding="utf-8") as f:
    for line in sys.stdin:  # to the end: zstd must not die of a broken pipe (pipefail)
        if n <= 100000:
            t = json.loads(line)["text"]
            f.write(t + "\n")
            n += len(t)' "$EV/haystack.txt"
mpirun -np "$NP" --oversubscribe "$LONGCTX" eval needle --model "$EV/model" --output "$EV/needle" \
  --lengths "$EVAL_LENGTHS" --depths "$EVAL_DEPTHS" --haystack "$EV/haystack.txt" \
  --threads "$THREADS"
/usr/bin/python3 - "$EV/needle/summary.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
print("needle (random weights: it cannot find the needle, so recall stays near 0): %d cells, "
      "recall mean %.3f (a perfect answer scores 11/12), substring mean %.3f"
      % (s["items"], s["recall_mean"], s["substring_mean"]))
PY
log "done: $EV (RANDOM-WEIGHTS model; ppl/ and needle/: results.jsonl, summary.json, the .svg/.png plots)"
