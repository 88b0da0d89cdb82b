#!/usr/bin/env bash
# Regenerates the tokenizer goldens for special_cases.jsonl with the peers (never with longctx):
#   golden/special_cases.llama3.hf.u32   HF tokenizers (Rust, @anush008/tokenizers 0.6.0 via node)
#                                        with llama3/tokenizer.json, no special tokens added
#   golden/special_cases.llama2.spm.u32  SentencePiece (Debian python3-sentencepiece) with
#                                        llama2/tokenizer.model, no BOS/EOS
#   golden/special_cases.llama3.llamacpp.u32  llama.cpp (node-llama-cpp) with a vocabulary GGUF
#                                        made from llama3/tokenizer.json (special text stays text)
# Format: longctx u32 (per document a uint32 count, then the uint32 ids, little-endian).
# Then cross-checks, without failing, the other Llama 2 peers against SentencePiece: HF with
# llama2/tokenizer.json (expected to differ exactly on the cases with a literal <s>, </s> or
# <unk>, which HF turns into control tokens) and llama.cpp with ggml-vocab-llama-spm.gguf
# (expected identical).
# usage: gen_golden.sh [OUTDIR=golden next to this script]
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${1:-$HERE/golden}
SHARED=$(cd "$HERE/../../.." && pwd)/shared
ASSETS=${LONGCTX_ASSETS:-$SHARED/assets}
TOOLS=$SHARED/tools/peers
CASES=$HERE/special_cases.jsonl
PY=/usr/bin/python3

for f in "$ASSETS/tokenizers/llama3/tokenizer.json" "$ASSETS/tokenizers/llama2/tokenizer.model" "$TOOLS/install.sh"; do
  [ -f "$f" ] || { echo "SKIP: $f missing"; exit 0; }
done
P=$("$TOOLS/install.sh")
mkdir -p "$OUT"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

NODE_PATH=$P/node_modules node "$TOOLS/hf_encode.js" "$ASSETS/tokenizers/llama3/tokenizer.json" "$CASES" \
  "$OUT/special_cases.llama3.hf.u32"
"$PY" "$TOOLS/spm_encode.py" "$ASSETS/tokenizers/llama2/tokenizer.model" "$CASES" "$OUT/special_cases.llama2.spm.u32"
# llama.cpp on Llama 3 (a vocabulary GGUF made from tokenizer.json): special-token text stays text
"$PY" "$HERE/../bench/make_llama3_gguf.py" "$ASSETS/tokenizers/llama3/tokenizer.json" "$tmp/llama3.gguf"
NODE_PATH=$P/node_modules node "$TOOLS/llamacpp_encode.mjs" "$tmp/llama3.gguf" "$CASES" \
  "$OUT/special_cases.llama3.llamacpp.u32" 2>&1 | grep -v '^\[node-llama-cpp\]' >&2 || true
sha256sum "$OUT"/special_cases.*.u32

# cross-checks (informational)
NODE_PATH=$P/node_modules node "$TOOLS/hf_encode.js" "$ASSETS/tokenizers/llama2/tokenizer.json" "$CASES" \
  "$tmp/llama2.hf.u32"
echo "== SentencePiece vs HF tokenizers (llama2):"
"$PY" "$HERE/compare_u32.py" "$OUT/special_cases.llama2.spm.u32" "$tmp/llama2.hf.u32" "$CASES" --show 50 \
  | grep -E '^(documents|differing)|text:' || true
GGUF=$ASSETS/tokenizer-vectors/ggml-vocab-llama-spm.gguf
if [ -f "$GGUF" ]; then
  NODE_PATH=$P/node_modules node "$TOOLS/llamacpp_encode.mjs" "$GGUF" "$CASES" "$tmp/llama2.llamacpp.u32" 2>&1 \
    | grep -v '^\[node-llama-cpp\]' >&2 || true
  echo "== SentencePiece vs llama.cpp (llama2):"
  "$PY" "$HERE/compare_u32.py" "$OUT/special_cases.llama2.spm.u32" "$tmp/llama2.llamacpp.u32" "$CASES" --show 50 \
    | grep -E '^(documents|differing)|text:' || true
fi
