#!/usr/bin/env bash
# longctx plan against numbers that are not ours: the published parameter counts of
# Llama-2-70B (68,976,648,192) and Llama-3.1-70B (70,553,706,496), and REFERENCE.md section 2's
# KV cache of a 70B GQA model: 320 KiB per token in bf16 = 40 GiB at 131072 tokens; split 8
# ways 5 GiB, and with 16 ranks (more than the 8 KV heads) still 5 GiB (heads replicated).
# usage: test_plan.sh LONGCTX
set -euo pipefail
LONGCTX=$1
W=$(mktemp -d "${TMPDIR:-/tmp}/longctx-plan-XXXXXX")
trap 'rm -rf "$W"' EXIT
cat > "$W/l2.json" <<'J'
{"hidden_size": 8192, "intermediate_size": 28672, "num_hidden_layers": 80, "num_attention_heads": 64,
 "num_key_value_heads": 8, "vocab_size": 32000, "rope_theta": 10000.0, "torch_dtype": "float16",
 "tie_word_embeddings": false, "max_position_embeddings": 4096}
J
cat > "$W/l3.json" <<'J'
{"hidden_size": 8192, "intermediate_size": 28672, "num_hidden_layers": 80, "num_attention_heads": 64,
 "num_key_value_heads": 8, "vocab_size": 128256, "rope_theta": 500000.0, "torch_dtype": "bfloat16",
 "tie_word_embeddings": false, "max_position_embeddings": 131072}
J
get() { /usr/bin/python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(eval(sys.argv[2], {}, d))' "$1" "$2"; }
n=0
p=$("$LONGCTX" plan --config "$W/l2.json" --ctx 4096)
[ "$(get "$p" params)" = 68976648192 ] || { echo "llama2-70b params: $p"; exit 1; }; n=$((n + 1))
p=$("$LONGCTX" plan --config "$W/l3.json" --ctx 131072 --kv-dtype bf16)
[ "$(get "$p" params)" = 70553706496 ] || { echo "llama3.1-70b params: $p"; exit 1; }; n=$((n + 1))
[ "$(get "$p" "per_rank['kv_cache_bytes']")" = $((40 << 30)) ] || { echo "KV: $p"; exit 1; }; n=$((n + 1))
# bf16 weights, and the 161 norm vectors (2 per layer + final) widened to float32 in memory
[ "$(get "$p" "per_rank['weights_bytes']")" = $((70553706496 * 2 + 161 * 8192 * 2)) ] || { echo "weights: $p"; exit 1; }; n=$((n + 1))
p=$("$LONGCTX" plan --config "$W/l3.json" --ctx 131072 --tp 8 --kv-dtype bf16)
[ "$(get "$p" "per_rank['kv_cache_bytes']")" = $((5 << 30)) ] || { echo "KV tp8: $p"; exit 1; }; n=$((n + 1))
p=$("$LONGCTX" plan --config "$W/l3.json" --ctx 131072 --tp 16 --kv-dtype f32)
[ "$(get "$p" "per_rank['kv_cache_bytes']")" = $((10 << 30)) ] || { echo "KV tp16 f32: $p"; exit 1; }; n=$((n + 1))
# the default KV cache is infer's: f32, twice the bf16 one
p=$("$LONGCTX" plan --config "$W/l3.json" --ctx 131072)
[ "$(get "$p" "per_rank['kv_cache_bytes']")" = $((80 << 30)) ] || { echo "KV default f32: $p"; exit 1; }; n=$((n + 1))
echo '{"hidden_size": 8}' > "$W/bad.json"
if "$LONGCTX" plan --config "$W/bad.json" --ctx 8 2> "$W/err"; then exit 1; fi
grep -q "intermediate_size" "$W/err" || { cat "$W/err"; exit 1; }; n=$((n + 1))
echo "$n passed, 0 failed"
