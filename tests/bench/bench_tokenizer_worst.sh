#!/usr/bin/env bash
# Throughput on the inputs that make tokenizers quadratic (tests/tokenizer/test_tokenizer_worst.c
# checks their correctness): 10 MB without whitespace, a 10 MB run of one letter, 1 MB of
# digits, 1 MB of random bytes; longctx with both tokenizers, and HF tokenizers on 1 MB
# versions of the first two (120 s limit) for comparison.
# usage: bench_tokenizer_worst.sh [WORKDIR=/tmp/longctx-bench-worst]
set -euo pipefail
W=${1:-/tmp/longctx-bench-worst}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
LONGCTX=${LONGCTX:-$ROOT/build/longctx}
ASSETS=${LONGCTX_ASSETS:-$(cd "$ROOT/.." && pwd)/shared/assets}
PEERS_DIR=$(cd "$ROOT/.." && pwd)/shared/tools/peers
mkdir -p "$W"
/usr/bin/python3 - "$W" <<'PY'
import json, random, sys
w = sys.argv[1]
r = random.Random(7)
alpha = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ.,;:-_/()"
texts = {
    "no-whitespace": "".join(r.choice(alpha) for _ in range(10 << 20)),
    "one-letter": "a" * (10 << 20),
    "digits": "".join(r.choice("0123456789") for _ in range(1 << 20)),
}
for k, t in texts.items():
    open(f"{w}/{k}.txt", "w").write(t)
    with open(f"{w}/{k}.1mb.jsonl", "w") as f:
        f.write(json.dumps({"text": t[:1 << 20]}) + "\n")
open(f"{w}/random-bytes.txt", "wb").write(bytes(r.randrange(256) for _ in range(1 << 20)))
PY
echo "| input | tokenizer | tool | MB/s |"
echo "|---|---|---|---|"
for f in no-whitespace one-letter digits random-bytes; do
  for t in llama3/tokenizer.json llama2/tokenizer.model; do
    js=$("$LONGCTX" tokenize --tokenizer "$ASSETS/tokenizers/$t" --input "$W/$f.txt" \
          --format u32 --output /dev/null --stats 2>&1 >/dev/null | tail -n 1)
    mbs=$(/usr/bin/python3 -c 'import json,sys; print("%.1f" % json.loads(sys.argv[1])["MB_per_s"])' "$js")
    echo "| $f ($(stat -c %s "$W/$f.txt") bytes) | ${t%%/*} | longctx | $mbs |"
  done
done
P=$("$PEERS_DIR/install.sh" 2>/dev/null || true)
if [ -n "$P" ]; then
  for f in no-whitespace one-letter; do
    js=$(NODE_PATH=$P/node_modules timeout 120 node "$PEERS_DIR/hf_encode.js" \
          "$ASSETS/tokenizers/llama3/tokenizer.json" "$W/$f.1mb.jsonl" /dev/null 2>&1 | tail -n 1) || js=""
    mbs=$(/usr/bin/python3 -c 'import json,sys; print("%.2f" % json.loads(sys.argv[1])["MB_per_s"])' "$js" 2>/dev/null || echo "> 120 s")
    echo "| $f (1 MiB) | llama3 | HF tokenizers | $mbs |"
  done
fi
