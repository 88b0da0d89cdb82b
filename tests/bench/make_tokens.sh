#!/usr/bin/env bash
# Real token data for the shard benchmark: text Debian ships (package documentation and
# manual pages, many languages), tokenized by SentencePiece (Debian's spm_encode) with the
# Llama 2 tokenizer. Writes one line of ids per document.
# usage: make_tokens.sh OUT.txt [MBYTES]
set -euo pipefail
OUT=$1
MBYTES=${2:-64}
ASSETS=${LONGCTX_ASSETS:-$(cd "$(dirname "$0")/../../.." && pwd)/shared/assets}
MODEL=$ASSETS/tokenizers/llama2/tokenizer.model
command -v spm_encode >/dev/null || { echo "SKIP: spm_encode missing (apt-get install sentencepiece)"; exit 0; }
[ -f "$MODEL" ] || { echo "SKIP: $MODEL missing"; exit 0; }
{ find /usr/share/doc /usr/share/man -type f -name '*.gz' 2>/dev/null | sort | xargs zcat -f 2>/dev/null || true; } \
  | tr -d '\000' | head -c $((MBYTES << 20)) | spm_encode --model="$MODEL" --output_format=id > "$OUT" || true
echo "$(wc -l < "$OUT") lines of ids in $OUT"
