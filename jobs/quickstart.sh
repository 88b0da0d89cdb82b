#!/usr/bin/env bash
# The small built-in default: real text that every Debian machine ships, made into packed,
# checksummed shards and a Megatron dataset, in about a minute.
#   1. corpus: package documentation (/usr/share/doc) as plain text, one document per file
#   2. tokenizer: a SentencePiece BPE model trained on it with Debian's spm_train
#   3. tokenize it with longctx (the same ids as spm_encode, checked below), pack into
#      sequences (longctx shard pack), verify, inspect, export to Megatron under MPI (2 ranks)
# Settings (environment overrides):
set -euo pipefail
OUT=${OUT:-out/quickstart}
LONGCTX=${LONGCTX:-build/longctx}
CORPUS_MB=${CORPUS_MB:-8}
VOCAB=${VOCAB:-8000}
SEQ_LEN=${SEQ_LEN:-8192}
NP=${NP:-2}
DOC_KB=${DOC_KB:-64}
THREADS=${THREADS:-2}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1

cd "$(dirname "$0")/.."
mkdir -p "$OUT"
log() { printf '%s quickstart: %s\n' "$(date +%T)" "$*" >&2; }

log "corpus: ${CORPUS_MB} MB of /usr/share/doc text, one document per file (first ${DOC_KB} KB)"
find /usr/share/doc -type f \( -name '*.gz' -o -name 'README*' -o -name '*.txt' \) 2>/dev/null \
  | sort | while read -r f; do zcat -f "$f" 2>/dev/null | head -c $((DOC_KB << 10)) \
      | tr -d '\000' | tr '\n' ' ' ; echo; done \
  | head -c $((CORPUS_MB << 20)) > "$OUT/corpus.txt" || true
log "$(wc -l < "$OUT/corpus.txt") documents, $(wc -c < "$OUT/corpus.txt") bytes"

if [ ! -f "$OUT/spm.model" ]; then
  log "training a ${VOCAB}-piece SentencePiece BPE tokenizer (spm_train)"
  fold -w 4000 "$OUT/corpus.txt" > "$OUT/train.txt"   # spm_train skips very long lines
  spm_train --input="$OUT/train.txt" --model_prefix="$OUT/spm" --vocab_size="$VOCAB" \
    --model_type=bpe --byte_fallback=true --input_sentence_size=200000 \
    --shuffle_input_sentence=true --max_sentence_length=100000 --minloglevel=2 >/dev/null 2>&1
fi
log "tokenizing with longctx ($THREADS threads)"
# one JSON document per line; bytes that are not UTF-8 become U+FFFD here, and the same clean
# text goes to spm_encode for the comparison
/usr/bin/python3 -c '
import json, sys
with open(sys.argv[2], "w", encoding="utf-8") as js, open(sys.argv[3], "w", encoding="utf-8") as tx:
    for line in open(sys.argv[1], encoding="utf-8", errors="replace", newline="\n"):
        line = line.rstrip("\n")
        js.write(json.dumps({"text": line}, ensure_ascii=False) + "\n")
        tx.write(line + "\n")' "$OUT/corpus.txt" "$OUT/corpus.jsonl" "$OUT/corpus.clean.txt"
"$LONGCTX" tokenize --tokenizer "$OUT/spm.model" --jsonl --input "$OUT/corpus.jsonl" \
  --output "$OUT/ids.txt" --threads "$THREADS" --stats
if command -v spm_encode >/dev/null; then
  spm_encode --model="$OUT/spm.model" --output_format=id < "$OUT/corpus.clean.txt" > "$OUT/ids.spm.txt"
  cmp -s "$OUT/ids.txt" "$OUT/ids.spm.txt" && log "ids identical to sentencepiece's spm_encode" ||
    { log "ids DIFFER from spm_encode"; exit 1; }
fi

log "packing into ${SEQ_LEN}-token sequences (BOS id 1 per document)"
"$LONGCTX" shard pack --output "$OUT/corpus.shard" --vocab-size "$VOCAB" --seq-len "$SEQ_LEN" \
  --bos 1 "$OUT/ids.txt"
"$LONGCTX" shard verify "$OUT/corpus.shard"
"$LONGCTX" shard info "$OUT/corpus.shard"

log "exporting to Megatron with mpirun -np $NP"
mpirun -np "$NP" --oversubscribe "$LONGCTX" shard export --format megatron \
  --output "$OUT/megatron" "$OUT/corpus.shard"
ls -l "$OUT"/megatron.bin "$OUT"/megatron.idx
log "done: shards and Megatron files in $OUT"
