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
# tensor parallelism: per-rank weights, KV heads, replicas and all-reduce volume against an
# independent computation from the shapes (Megatron: every matrix and the two vocabulary
# matrices split into ceil(n / P) shares, the 161 norms replicated in float32)
HERE=$(cd "$(dirname "$0")" && pwd)
for cfg in llama-3.1-70b llama-2-70b; do
    C=$HERE/../../infer/configs/$cfg.json
    out=$("$LONGCTX" plan --config "$C" --ctx 131072 --kv-dtype bf16 --tp 1,2,4,8,16 --ranks 32)
    /usr/bin/python3 - "$C" "$out" <<'PY' || exit 1
import json, sys
c = json.load(open(sys.argv[1]))
d, I, L = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"]
H, KV, V = c["num_attention_heads"], c["num_key_value_heads"], c["vocab_size"]
hd = d // H
ceil = lambda n, p: -(-n // p)
for line in sys.argv[2].splitlines():
    p = json.loads(line)
    P = p["tp"]
    kvh = ceil(KV, P) if P <= KV else 1
    per_layer = d * ceil(H * hd, P) * 2 + 2 * d * kvh * hd + 3 * d * ceil(I, P)
    weights = 2 * (L * per_layer + 2 * ceil(V, P) * d) + 4 * (2 * L + 1) * d
    kv = 2 * L * kvh * hd * 131072 * 2
    want = {"weights": weights, "kv": kv, "heads": kvh, "repl": max(1, P // KV),
            "replicas": 32 // P, "ar": (2 * L + 1) * d * 4 if P > 1 else 0}
    got = {"weights": p["per_rank"]["weights_bytes"], "kv": p["per_rank"]["kv_cache_bytes"],
           "heads": p["per_rank"]["kv_heads"], "repl": p["per_rank"]["kv_heads_replicated"],
           "replicas": p["replicas"], "ar": p["allreduce"]["bytes_per_token"]}
    assert got == want, (sys.argv[1], P, got, want)
print("tp plans of %s: 5 sizes as computed from the shapes" % sys.argv[1].split("/")[-1])
PY
    n=$((n + 1))
done
# the published counts from the shipped configs
p=$("$LONGCTX" plan --config "$HERE/../../infer/configs/llama-3.1-70b.json" --ctx 8)
[ "$(get "$p" params)" = 70553706496 ] || { echo "configs/llama-3.1-70b: $p"; exit 1; }; n=$((n + 1))
p=$("$LONGCTX" plan --config "$HERE/../../infer/configs/llama-2-70b.json" --ctx 8)
[ "$(get "$p" params)" = 68976648192 ] || { echo "configs/llama-2-70b: $p"; exit 1; }; n=$((n + 1))
# refusals: a size that does not divide the heads, a world that is not a multiple of it
if "$LONGCTX" plan --config "$W/l3.json" --ctx 8 --tp 4,6 2> "$W/err"; then exit 1; fi
grep -q "heads" "$W/err" || { cat "$W/err"; exit 1; }; n=$((n + 1))
if "$LONGCTX" plan --config "$W/l3.json" --ctx 8 --tp 8 --ranks 12 2> "$W/err"; then exit 1; fi
grep -q "not a multiple" "$W/err" || { cat "$W/err"; exit 1; }; n=$((n + 1))
"$LONGCTX" plan --config "$W/l3.json" --ctx 131072 --kv-dtype bf16 --tp 8,16 --table | grep -q "each on 2 ranks" ||
    { echo "table: no replicated KV line"; exit 1; }; n=$((n + 1))
echo "$n passed, 0 failed"
