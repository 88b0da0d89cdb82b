#!/usr/bin/env bash
# The pictures of README.md's "Evaluate a long-context model", regenerated: docs/img/*.png.
# About 15 s on 2 cores (40 s when it runs quickstart.sh first). It is a job like quickstart.sh
# (whose model it reuses), not a benchmark, so it lives in jobs/ and not in tests/bench/.
#
# 1. eval-ppl-vs-length-stories260K.png: a REAL trained model, karpathy's stories260K
#    (llama2.c format, TinyStories, seq_len 512, vocab 512; ../shared/assets). Its tokenizer is
#    not available, so the documents are the model's own samples, in token ids: stories drawn
#    with `longctx infer` (temperature 1, one seed each, from BOS, at most 511 new tokens, so
#    every story is sampled inside the 512 positions the model was trained on), each cut at its
#    first BOS/EOS and joined as llama2.c's TinyStories stream is (BOS before each story), until
#    a document holds MAX_LEN + 1 tokens. Then `eval ppl-vs-length` on them: the loss of the
#    same last LAST tokens seen with L tokens of context. (Not one long sample per document:
#    its tokens past 512 would be drawn by the extrapolating model itself, and the full-length
#    window would score them with exactly the context they were drawn with.) The legacy .bin
#    format has no RoPE scaling override, so there is one curve.
# 2. eval-{passkey,needle,ruler}-random-weights.png: quickstart.sh's RANDOM-WEIGHTS model (hidden
#    64, 2 layers, vocab 8000, 4096 positions, tests/infer/hf/gen_hf_model.py --seed 1) with the
#    SentencePiece tokenizer quickstart trains on Debian's text; built by running
#    jobs/quickstart.sh if $QS/eval/model is missing; needle's haystack is quickstart's docs
#    text. ruler runs on its twin with Meta's Llama 2 tokenizer (vocab 32000; see below). They
#    have learned nothing: these show the plots' format, not a model's ability.
set -euo pipefail
OUT=${OUT:-out/readme_pictures}
QS=${QS:-out/quickstart}
LONGCTX=${LONGCTX:-build/longctx}
ASSETS=${LONGCTX_ASSETS:-../shared/assets}
IMG=${IMG:-docs/img}
NP=${NP:-2}
DOCS=${DOCS:-16}
LAST=${LAST:-64}
LENGTHS=${LENGTHS:-64,128,256,512,1024,2048}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1

cd "$(dirname "$0")/.."
ROOT=$(pwd)
case $LONGCTX in /*) ;; *) LONGCTX=$ROOT/$LONGCTX ;; esac
MPI="mpirun -np $NP --oversubscribe"
log() { printf '%s readme_pictures: %s\n' "$(date +%T)" "$*" >&2; }
mkdir -p "$OUT" "$IMG"

# ---- 1. stories260K: loss against context length on its own samples ---------------------------
BIN=$ASSETS/models/stories260K/stories260K.bin
MAX_LEN=${LENGTHS##*,}
S=$OUT/stories260K
rm -rf "$S" && mkdir -p "$S"
log "sampling stories from $BIN (temperature 1, seeds 0..399, <= 511 new tokens each)"
/usr/bin/python3 -c '
import json, sys
with open(sys.argv[1], "w") as f:
    for seed in range(400):
        f.write(json.dumps({"ids": [1], "max_tokens": 511, "temperature": 1, "seed": seed}) + "\n")
' "$S/prompts.jsonl"
$MPI "$LONGCTX" infer --model "$BIN" --tp 1 --input "$S/prompts.jsonl" --output "$S/samples.jsonl"
/usr/bin/python3 - "$S/samples.jsonl" "$S/docs.jsonl" "$DOCS" "$MAX_LEN" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
n_docs, need = int(sys.argv[3]), int(sys.argv[4]) + 1
docs, doc, used = [], [], 0
for r in sorted(rows, key=lambda r: r["index"]):
    ids = r["ids"]
    cut = next((i for i, x in enumerate(ids) if x in (1, 2)), len(ids))  # the story's end
    doc += [1] + ids[:cut]
    used += 1
    if len(doc) >= need:
        docs.append(doc)
        doc = []
        if len(docs) == n_docs:
            break
if len(docs) < n_docs:
    sys.exit("readme_pictures: %d stories make only %d documents of %d tokens" % (len(rows), len(docs), need))
with open(sys.argv[2], "w") as f:
    for d in docs:
        f.write(json.dumps({"ids": d}) + "\n")
print("%d documents of %d-%d tokens from %d stories" % (len(docs), min(map(len, docs)),
      max(map(len, docs)), used), file=sys.stderr)
PY
# the plot's legend is the --model argument as given: run in $S on a link named after the model
ln -s "$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")" "$S/stories260K.bin"
log "eval ppl-vs-length, lengths $LENGTHS, the last $LAST tokens of $DOCS documents (mpirun -np $NP)"
(cd "$S" && $MPI "$LONGCTX" eval ppl-vs-length --model stories260K.bin --input docs.jsonl \
  --output ppl --lengths "$LENGTHS" --last "$LAST" --docs "$DOCS" --tp 1)
cp "$S/ppl/ppl-vs-length.png" "$IMG/eval-ppl-vs-length-stories260K.png"

# ---- 2. passkey, needle, ruler: the format of the plots, on random weights ---------------------
if [ ! -f "$QS/eval/model/config.json" ]; then
  log "no $QS/eval/model: running jobs/quickstart.sh (about 20 s)"
  OUT=$QS LONGCTX=$LONGCTX NP=$NP jobs/quickstart.sh
fi
RND=$QS/eval/model
R=$OUT/random-weights
rm -rf "$R" && mkdir -p "$R"
log "passkey, needle and ruler on the random-weights model $RND (mpirun -np $NP)"
$MPI "$LONGCTX" eval passkey --model "$RND" --output "$R/passkey" \
  --lengths 512,1024,2048,4096 --trials 5 --seed 0 --tp 1
$MPI "$LONGCTX" eval needle --model "$RND" --output "$R/needle" --haystack "$QS/eval/haystack.txt" \
  --lengths 512,1024,2048,3072,4096 --depths 0,25,50,75,100 --tp 1
# ruler needs "\n" in tokens, and quickstart's tokenizer has none (spm_train's default
# normaliser turns newlines into spaces; eval ruler refuses it by name): its twin, the same
# generator and shapes but vocab 32000 and Meta's Llama 2 tokenizer (as tests/eval do)
RND2=$R/model-llama2-tokenizer
/usr/bin/python3 tests/infer/hf/gen_hf_model.py "$RND2" --hidden 64 --intermediate 176 \
  --layers 2 --heads 4 --kv-heads 2 --vocab 32000 --max-pos 4096 --seed 1 \
  --tokenizer "$ASSETS/tokenizers/llama2/tokenizer.model" > /dev/null
$MPI "$LONGCTX" eval ruler --model "$RND2" --output "$R/ruler" \
  --lengths 1024,2048,4096 --trials 2 --seed 0 --tp 1
for t in passkey needle ruler; do
  cp "$R/$t/$t.png" "$IMG/eval-$t-random-weights.png"
done
ls -l "$IMG"/eval-*.png >&2
log "done: $IMG (the runs in $OUT)"
