#!/usr/bin/env bash
# Bit-exactness on a corpus built from what Debian ships (make_corpus.sh), against the peers:
#   Llama 3 tokenizer.json, --parse-special   vs HF tokenizers (which parses special text)
#   Llama 2 tokenizer.model                   vs sentencepiece
#   Llama 2 tokenizer.json, --parse-special   vs HF tokenizers
# and the same ids with --threads 3 as with one thread. Zero differing documents allowed.
# CI runs a slice (MBYTES=4); the full check uses 64 (see BENCHMARKS.md / the closing notes).
# A missing peer or asset prints SKIP for that comparison.
# usage: test_corpus_compare.sh LONGCTX [MBYTES=4]
set -euo pipefail
LONGCTX=$1
MBYTES=${2:-4}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
ASSETS=${LONGCTX_ASSETS:-$(cd "$ROOT/.." && pwd)/shared/assets}
PEERS_DIR=$(cd "$ROOT/.." && pwd)/shared/tools/peers
PY=/usr/bin/python3
T3=$ASSETS/tokenizers/llama3/tokenizer.json
T2=$ASSETS/tokenizers/llama2/tokenizer.model
T2J=$ASSETS/tokenizers/llama2/tokenizer.json
for f in "$T3" "$T2" "$T2J"; do
  [ -f "$f" ] || { echo "SKIP: $f missing"; exit 0; }
done
W=$(mktemp -d "${TMPDIR:-/tmp}/longctx-tokcmp-XXXXXX")
trap 'rm -rf "$W"' EXIT
"$HERE/make_corpus.sh" "$W/corpus.jsonl" "$MBYTES" 1 2> "$W/corpus.log" || { cat "$W/corpus.log"; exit 1; }
C=$W/corpus.jsonl
echo "corpus: $(wc -l < "$C") documents, $(wc -c < "$C") bytes"

passed=0 skipped=0
ours() { "$LONGCTX" tokenize --jsonl --format u32 --input "$C" "$@"; }
same() { # NAME OURS PEER
  if "$PY" "$HERE/compare_u32.py" "$2" "$3" "$C" > "$W/cmp.txt"; then
    echo "$1: $(grep '^differing' "$W/cmp.txt")"; passed=$((passed + 1))
  else
    cat "$W/cmp.txt"; echo "$1: DIFFERS"; exit 1
  fi
}

ours --tokenizer "$T3" --parse-special --output "$W/l3s.u32"
ours --tokenizer "$T3" --parse-special --threads 3 --output "$W/l3s_t3.u32"
cmp "$W/l3s.u32" "$W/l3s_t3.u32" && passed=$((passed + 1))
ours --tokenizer "$T2" --output "$W/l2.u32"
ours --tokenizer "$T2" --threads 3 --output "$W/l2_t3.u32"
cmp "$W/l2.u32" "$W/l2_t3.u32" && passed=$((passed + 1))
ours --tokenizer "$T2J" --parse-special --output "$W/l2js.u32"

if /usr/bin/python3 -c 'import sentencepiece, numpy' 2>/dev/null; then
  "$PY" "$PEERS_DIR/spm_encode.py" "$T2" "$C" "$W/l2.spm.u32" 2>/dev/null
  same "llama2 .model vs sentencepiece" "$W/l2.u32" "$W/l2.spm.u32"
else
  echo "SKIP: python3-sentencepiece missing: no sentencepiece comparison"; skipped=$((skipped + 1))
fi
P=$(LONGCTX_PEERS=${LONGCTX_PEERS:-} "$PEERS_DIR/install.sh" 2>/dev/null || true)
if [ -n "$P" ] && [ -d "$P/node_modules/@anush008" ]; then
  NODE_PATH=$P/node_modules node "$PEERS_DIR/hf_encode.js" "$T3" "$C" "$W/l3.hf.u32" 2>/dev/null
  same "llama3 tokenizer.json vs HF tokenizers" "$W/l3s.u32" "$W/l3.hf.u32"
  NODE_PATH=$P/node_modules node "$PEERS_DIR/hf_encode.js" "$T2J" "$C" "$W/l2.hf.u32" 2>/dev/null
  same "llama2 tokenizer.json vs HF tokenizers" "$W/l2js.u32" "$W/l2.hf.u32"
else
  echo "SKIP: HF tokenizers (node peers) not installed: no HF comparison"; skipped=$((skipped + 2))
fi
echo "$passed passed, 0 failed, $skipped skipped"
