#!/usr/bin/env bash
# check_gguf.sh - checks tests/bench/hf_to_gguf.py against llama.cpp: random HF Llama models
# (tests/infer/hf/gen_hf_model.py) are converted to GGUF, llama.cpp (node-llama-cpp's prebuilt
# CPU library) computes the logits at every position of a prompt and 8 greedy tokens, and these
# are compared with the float64 reference (tests/infer/hf/ref_forward.py) on the same ids.
#   metric: max over rows of max|llama.cpp - ref| / max|ref| (compare_logits.py)
#   greedy: every token llama.cpp picked is the reference's argmax, or within the tolerance of it
# llama.cpp runs with an F32 KV cache (its default F16 cache alone costs ~1e-3 relative).
# Also: a negative control (q/k left in HF's rotate_half order must fail), and the vocabularies
# written from real tokenizers tokenize llama.cpp's test vectors as expected.
# SKIPs visibly (exit 0) without node-llama-cpp, numpy or the HF generator.
# Environment: LONGCTX_HF_TOOLS (default tests/infer/hf), LONGCTX_PEERS, LONGCTX_ASSETS,
#              KEEP=1 keeps the work folder.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bench=$root/tests/bench
hf=${LONGCTX_HF_TOOLS:-$root/tests/infer/hf}
peers=${LONGCTX_PEERS:-$HOME/.cache/longctx-peers}
assets=${LONGCTX_ASSETS:-$root/../shared/assets}
py=/usr/bin/python3
skip() { echo "SKIP check_gguf: $*"; exit 0; }
[ -f "$hf/gen_hf_model.py" ] && [ -f "$hf/ref_forward.py" ] || skip "no $hf/gen_hf_model.py (set LONGCTX_HF_TOOLS)"
$py -c 'import numpy' 2>/dev/null || skip "no numpy for $py"
command -v node >/dev/null || skip "no node"
[ -d "$peers/node_modules/node-llama-cpp" ] || skip "node-llama-cpp not in $peers (run ../shared/tools/peers/install.sh)"
export NODE_PATH=$peers/node_modules

work=$(mktemp -d /tmp/check_gguf.XXXXXX)
[ "${KEEP:-0}" = 1 ] && echo "work folder: $work" || trap 'rm -rf "$work"' EXIT
pass=0 fail=0
ok() { echo "ok   $*"; pass=$((pass + 1)); }
bad() { echo "FAIL $*"; fail=$((fail + 1)); }

# run NAME GGUF_DTYPE TOL PROMPT_LEN [gen_hf_model options...] [-- hf_to_gguf options...]
# prints the relative error; returns 0 if within TOL and greedy agrees
run() {
  local name=$1 dt=$2 tol=$3 plen=$4
  shift 4
  local gen=() conv=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do gen+=("$1"); shift; done
  [ $# -gt 0 ] && { shift; conv=("$@"); }
  local d=$work/$name gen_n=8
  $py "$hf/gen_hf_model.py" "$d" "${gen[@]}" >/dev/null || { echo "gen failed"; return 2; }
  $py "$bench/hf_to_gguf.py" "$d" "$d.gguf" ${dt:+--dtype $dt} "${conv[@]}" 2>"$d.conv.log" ||
    { cat "$d.conv.log"; return 2; }
  local V prompt ids
  V=$($py -c "import json,sys; print(json.load(open(sys.argv[1]))['vocab_size'])" "$d/config.json")
  prompt=$($py -c "import random,sys; r=random.Random(7); print(','.join(str(r.randrange(1, int(sys.argv[1]))) for _ in range(int(sys.argv[2]))))" "$V" "$plen")
  node "$bench/llamacpp_logits.mjs" "$d.gguf" --prompt-ids "$prompt" --generate $gen_n \
    --out "$d.lc.f32" --ids-out "$d.ids" 2>"$d.lc.log" || { tail -3 "$d.lc.log"; return 2; }
  # reference on prompt + generated tokens except the last (one row per llama.cpp row)
  ids=$(cut -d, -f1-$((plen + gen_n - 1)) "$d.ids")
  $py "$hf/ref_forward.py" "$d" --prompt-ids "$ids" --out "$d.ref.f32" || return 2
  $py - "$d.lc.f32" "$d.ref.f32" "$d.ids" "$V" "$plen" "$tol" <<'EOF'
import sys
import numpy as np
lc, ref, idsf, V, P, tol = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
a = np.fromfile(lc, "<f4").reshape(-1, V).astype(np.float64)
b = np.fromfile(ref, "<f4").reshape(-1, V).astype(np.float64)
ids = [int(x) for x in open(idsf).read().split(",")]
if a.shape != b.shape or not np.isfinite(a).all():
    print("shape %s vs %s or non-finite" % (a.shape, b.shape)); sys.exit(1)
scale = np.abs(b).max(axis=1)
rel = np.abs(a - b).max(axis=1) / scale
g_eq = g_tie = g_bad = 0
for t in range(P - 1, a.shape[0]):
    pick, best = ids[t + 1], int(b[t].argmax())
    if pick == best: g_eq += 1
    elif b[t, best] - b[t, pick] <= tol * scale[t]: g_tie += 1
    else: g_bad += 1
print("rel %.3g (worst row %d of %d; tol %g); greedy %d/%d equal%s%s" % (
    rel.max(), int(rel.argmax()), len(rel), tol, g_eq, g_eq + g_tie + g_bad,
    ", %d near-ties" % g_tie if g_tie else "", ", %d WRONG" % g_bad if g_bad else ""))
sys.exit(0 if rel.max() <= tol and g_bad == 0 else 1)
EOF
}

case_() {
  local name=$1 out
  out=$(run "$@" 2>&1)
  case $? in
    0) ok "$name: $out" ;;
    *) bad "$name: $out" ;;
  esac
}

echo "check_gguf: hf_to_gguf.py vs llama.cpp (node-llama-cpp $(node -p "require('$peers/node_modules/node-llama-cpp/package.json').version" 2>/dev/null)) vs float64 reference"
S="--hidden 128 --intermediate 344 --layers 2 --heads 4"
case_ mha-f32 "" 1e-4 24 $S --seed 1
case_ gqa-headdim-shards-f32 "" 1e-4 24 --hidden 128 --intermediate 344 --layers 3 --heads 8 --kv-heads 2 --head-dim 32 --shards 3 --seed 2
case_ tied-theta500k-f32 "" 1e-4 24 $S --kv-heads 1 --tied --rope-theta 500000 --rms-eps 1e-6 --seed 3
case_ bf16-ckpt-to-f32 F32 1e-4 24 $S --dtype BF16 --seed 4
case_ bf16-ckpt-to-bf16 BF16 3e-2 24 $S --dtype BF16 --seed 4
case_ f16-ckpt-to-f16 "" 5e-3 24 $S --dtype F16 --seed 5
case_ f32-ckpt-to-bf16 BF16 3e-2 24 $S --seed 1
case_ rope-linear "" 1e-4 24 $S --rope-scaling '{"rope_type":"linear","factor":4}' --seed 6
case_ rope-llama3 "" 1e-4 100 --hidden 128 --intermediate 344 --layers 2 --heads 2 --max-pos 512 --rope-theta 500000 \
  --rope-scaling '{"rope_type":"llama3","factor":8,"low_freq_factor":1,"high_freq_factor":4,"original_max_position_embeddings":64}' --seed 7
case_ rope-yarn "" 1e-4 100 --hidden 128 --intermediate 344 --layers 2 --heads 2 --max-pos 256 \
  --rope-scaling '{"rope_type":"yarn","factor":4,"original_max_position_embeddings":64}' --seed 8

# negative control: without un-permuting q and k, llama.cpp must disagree clearly
out=$(run neg-no-unpermute "" 1e-2 24 $S --seed 1 -- --no-unpermute 2>&1)
if [ $? = 1 ]; then ok "negative control (q/k not un-permuted) is rejected: $out"; else bad "negative control passed: $out"; fi

# vocabularies from real tokenizers: llama.cpp's own test vectors through the written vocab
vec=$assets/tokenizer-vectors tok=$assets/tokenizers
if [ -f "$vec/ggml-vocab-llama-spm.gguf.inp" ] && [ -d "$tok/llama2" ]; then
  for t in llama2/tokenizer.model:32000:llama-spm llama2/tokenizer.json:32000:llama-spm llama3/tokenizer.json:128256:llama-bpe; do
    IFS=: read -r f v set <<<"$t"
    [ -f "$tok/$f" ] && [ -f "$vec/ggml-vocab-$set.gguf.inp" ] || { echo "SKIP vocab $f: asset absent"; continue; }
    d=$work/vocab-${f//\//-}
    if $py "$hf/gen_hf_model.py" "$d" --hidden 32 --intermediate 64 --layers 1 --heads 2 --vocab $v --tokenizer "$tok/$f" >/dev/null &&
      $py "$bench/hf_to_gguf.py" "$d" "$d.gguf" 2>/dev/null &&
      out=$(node "$bench/llamacpp_vocab_check.mjs" "$d.gguf" "$vec/ggml-vocab-$set.gguf.inp" "$vec/ggml-vocab-$set.gguf.out" 2>&1); then
      ok "vocab from $f: $(echo "$out" | tail -1)"
    else
      bad "vocab from $f: $out"
    fi
  done
else
  echo "SKIP vocab checks: no tokenizer assets in $assets"
fi

echo "check_gguf: $pass passed, $fail failed"
[ $fail = 0 ]
