#!/usr/bin/env bash
# Tokenizer speed beside the peers, one thread, in one run on one machine (they are noisy):
# Llama 3 (longctx, HF tokenizers, llama.cpp) and Llama 2 (longctx, sentencepiece, HF,
# llama.cpp), on documents of 16 KiB cut from the test corpus (tests/tokenizer/make_corpus.sh).
# Reports encode-only MB/s and tokens/s as each tool prints them, load time, peak RSS of the
# whole process (/usr/bin/time), and checks that every output is identical to longctx's.
# Then longctx with --threads 2. Prints a markdown table; results go to BENCHMARKS.md.
# usage: bench_tokenizer.sh [MBYTES=64] [WORKDIR=/tmp/longctx-bench-tok]
set -euo pipefail
MBYTES=${1:-64}
W=${2:-/tmp/longctx-bench-tok}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
LONGCTX=${LONGCTX:-$ROOT/build/longctx}
ASSETS=${LONGCTX_ASSETS:-$(cd "$ROOT/.." && pwd)/shared/assets}
PEERS_DIR=$(cd "$ROOT/.." && pwd)/shared/tools/peers
PY=/usr/bin/python3
T3=$ASSETS/tokenizers/llama3/tokenizer.json
T2=$ASSETS/tokenizers/llama2/tokenizer.model
T2J=$ASSETS/tokenizers/llama2/tokenizer.json
G2=$ASSETS/tokenizer-vectors/ggml-vocab-llama-spm.gguf
mkdir -p "$W"
P=$("$PEERS_DIR/install.sh")

# corpus: the test corpus cut into 16 KiB documents (at character boundaries)
if [ ! -f "$W/corpus16k.jsonl" ]; then
  "$ROOT/tests/tokenizer/make_corpus.sh" "$W/corpus.jsonl" "$MBYTES" 1 2>/dev/null
  "$PY" - "$W/corpus.jsonl" "$W/corpus16k.jsonl" <<'EOF'
import json, sys
out = open(sys.argv[2], "w", encoding="utf-8")
buf = ""
for line in open(sys.argv[1], encoding="utf-8"):
    buf += json.loads(line)["text"]
    while len(buf.encode()) >= 16384:
        b = buf.encode()[:16384].decode("utf-8", errors="ignore")
        out.write(json.dumps({"text": b}, ensure_ascii=False) + "\n")
        buf = buf[len(b):]
EOF
fi
"$PY" "$HERE/make_llama3_gguf.py" "$T3" "$W/llama3-vocab.gguf"
C=$W/corpus16k.jsonl
echo "corpus: $(wc -l < "$C") documents, $(wc -c < "$C") bytes of jsonl" >&2

# run NAME REF_U32 CMD...: times CMD (peak RSS), keeps its JSON line, compares its output
rows=()
run() {
  local name=$1 out=$2; shift 2
  /usr/bin/time -f '%M' -o "$W/rss" "$@" 2> "$W/err" >/dev/null || { cat "$W/err" >&2; return 1; }
  local js rss same="-"
  js=$(grep -E '^\{' "$W/err" | tail -n 1)
  rss=$(tail -n 1 "$W/rss")
  [ -n "${REF:-}" ] && { cmp -s "$out" "$REF" && same=yes || same=NO; }
  rows+=("$("$PY" -c '
import json, sys
j = json.loads(sys.argv[2]); rss = int(sys.argv[3]) / 1024
tps = j["tokens"] / j["encode_s"] / 1e6
load = j.get("load_s")
print("| %s | %.2f | %.2f | %s | %.0f | %s |" % (sys.argv[1], j["MB_per_s"], tps,
      "%.3f" % load if load is not None else "-", rss, sys.argv[4]))' "$name" "$js" "$rss" "$same")")
}
ours=("$LONGCTX" tokenize --jsonl --format u32 --stats)
node_peer=(env "NODE_PATH=$P/node_modules" node)

echo "| tool | MB/s | Mtok/s | load s | peak RSS MiB | same ids as longctx |"
echo "|---|---|---|---|---|---|"
# Llama 3. HF parses special-token text by default: longctx with --parse-special matches it;
# llama.cpp and longctx's default treat it as text.
REF= run "longctx llama3 (1 thread, --parse-special)" "$W/l3s.u32" "${ours[@]}" --tokenizer "$T3" --parse-special --input "$C" --output "$W/l3s.u32"
REF= run "longctx llama3 (1 thread)" "$W/l3.u32" "${ours[@]}" --tokenizer "$T3" --input "$C" --output "$W/l3.u32"
REF= run "longctx llama3 (2 threads)" "$W/l3t2.u32" "${ours[@]}" --tokenizer "$T3" --threads 2 --input "$C" --output "$W/l3t2.u32"
REF=$W/l3s.u32 run "HF tokenizers llama3" "$W/l3.hf.u32" "${node_peer[@]}" "$PEERS_DIR/hf_encode.js" "$T3" "$C" "$W/l3.hf.u32"
REF=$W/l3.u32 run "llama.cpp llama3" "$W/l3.cpp.u32" "${node_peer[@]}" "$PEERS_DIR/llamacpp_encode.mjs" "$W/llama3-vocab.gguf" "$C" "$W/l3.cpp.u32"
# Llama 2
REF= run "longctx llama2 .model (1 thread)" "$W/l2.u32" "${ours[@]}" --tokenizer "$T2" --input "$C" --output "$W/l2.u32"
REF= run "longctx llama2 .model (2 threads)" "$W/l2t2.u32" "${ours[@]}" --tokenizer "$T2" --threads 2 --input "$C" --output "$W/l2t2.u32"
REF= run "longctx llama2 tokenizer.json (1 thread, --parse-special)" "$W/l2j.u32" "${ours[@]}" --tokenizer "$T2J" --parse-special --input "$C" --output "$W/l2j.u32"
REF=$W/l2.u32 run "sentencepiece llama2" "$W/l2.spm.u32" "$PY" "$PEERS_DIR/spm_encode.py" "$T2" "$C" "$W/l2.spm.u32"
REF=$W/l2j.u32 run "HF tokenizers llama2" "$W/l2.hf.u32" "${node_peer[@]}" "$PEERS_DIR/hf_encode.js" "$T2J" "$C" "$W/l2.hf.u32"
REF=$W/l2.u32 run "llama.cpp llama2" "$W/l2.cpp.u32" "${node_peer[@]}" "$PEERS_DIR/llamacpp_encode.mjs" "$G2" "$C" "$W/l2.cpp.u32"
cmp -s "$W/l3.u32" "$W/l3t2.u32" && cmp -s "$W/l2.u32" "$W/l2t2.u32" || { echo "threads change the output" >&2; exit 1; }
printf '%s\n' "${rows[@]}"
