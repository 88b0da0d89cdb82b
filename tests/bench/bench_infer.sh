#!/usr/bin/env bash
# bench_infer.sh - inference speed of longctx beside llama.cpp on the same weights.
# A random HF Llama model (gen_hf_model.py; default ~246M parameters: hidden 1024, intermediate
# 2816, 16 layers, 16 heads, 4 KV heads, vocab 32000) in F32 and BF16 is converted to GGUF
# (hf_to_gguf.py, same dtype). For each dtype and thread count, RUNS times, interleaved:
#   llama.cpp: llamacpp_bench.mjs (node-llama-cpp's prebuilt CPU library; batch = ubatch = P,
#              flash attention on, its default F16 KV cache), and
#   longctx:   longctx infer --model DIR --prompt-ids LIST --generate G --threads N --timings
#              (stderr: "timings: prefill_tokens=P prefill_s=X decode_tokens=G decode_s=Y").
# Same prompt ids for both. Reports best tok/s and the range over the runs, the ratio
# ours/llama.cpp, and decode GB/s = (weight bytes read per token + average KV bytes read per
# decode step) x decode tok/s. llama.cpp's times are its own counters (llama_perf: prompt eval
# and eval time), like ours are the engine's; node-llama-cpp's wall times are in the raw lines.
# The side that is missing (no peers; a longctx without --timings or HF support) is reported
# as not measured.
# usage: bench_infer.sh [WORKDIR=/tmp/longctx-bench-infer]
# env:   PROMPT=512 GEN=128 RUNS=3 THREADS="1 2" DTYPES="F32 BF16"
#        ACTS="f32" (longctx --act-dtype values to run, each its own row: e.g. "f32 bf16";
#        bf16 runs on the BF16 model only)
#        HIDDEN=1024 INTER=2816 LAYERS=16 HEADS=16 KV_HEADS=4 VOCAB=32000
#        LONGCTX=build/longctx  LONGCTX_HF_TOOLS=tests/infer/hf
#        OURS_KV_BYTES=4 (for GB/s when the timings line does not name kv=f32|bf16)
set -uo pipefail
W=${1:-/tmp/longctx-bench-infer}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
LONGCTX=${LONGCTX:-$ROOT/build/longctx}
HF=${LONGCTX_HF_TOOLS:-$ROOT/tests/infer/hf}
PY=/usr/bin/python3
PROMPT=${PROMPT:-512} GEN=${GEN:-128} RUNS=${RUNS:-3}
THREADS=${THREADS:-"1 2"} DTYPES=${DTYPES:-"F32 BF16"} ACTS=${ACTS:-f32}
HIDDEN=${HIDDEN:-1024} INTER=${INTER:-2816} LAYERS=${LAYERS:-16} HEADS=${HEADS:-16}
KV_HEADS=${KV_HEADS:-4} VOCAB=${VOCAB:-32000}
OURS_KV_BYTES=${OURS_KV_BYTES:-4}
LC_KV=F16
mkdir -p "$W"
RAW=$W/raw.txt
: >"$RAW"

[ -f "$HF/gen_hf_model.py" ] || { echo "bench_infer: no $HF/gen_hf_model.py (set LONGCTX_HF_TOOLS)"; exit 1; }

# --- peers ---------------------------------------------------------------------------------
have_lc=0
PEERS_INSTALL=$(cd "$ROOT/.." && pwd)/shared/tools/peers/install.sh
if [ -x "$PEERS_INSTALL" ] && P=$("$PEERS_INSTALL" 2>/dev/null) && [ -d "$P/node_modules/node-llama-cpp" ]; then
  export NODE_PATH=$P/node_modules
  have_lc=1
else
  echo "bench_infer: llama.cpp (node-llama-cpp) not available: its side is not measured"
fi

# --- our engine ----------------------------------------------------------------------------
have_ours=0 OURS_FLAGS=
if [ -x "$LONGCTX" ] && "$LONGCTX" infer --help 2>&1 | grep -q -- '--timings'; then
  have_ours=1
  # random weights may pick EOS: generate every step
  "$LONGCTX" infer --help 2>&1 | grep -q -- '--ignore-eos' && OURS_FLAGS=--ignore-eos
else
  echo "bench_infer: $LONGCTX infer has no --timings yet: our side is not measured"
fi

# --- models --------------------------------------------------------------------------------
GENARGS="--hidden $HIDDEN --intermediate $INTER --layers $LAYERS --heads $HEADS --kv-heads $KV_HEADS --vocab $VOCAB --max-pos 4096 --seed 11"
for dt in $DTYPES; do
  d=$W/model-$dt
  if [ "$(cat "$d/.args" 2>/dev/null)" != "$GENARGS --dtype $dt" ]; then
    rm -rf "$d" "$d.gguf"
    echo "bench_infer: generating $d"
    $PY "$HF/gen_hf_model.py" "$d" $GENARGS --dtype "$dt" || exit 1
    echo "$GENARGS --dtype $dt" >"$d/.args"
  fi
  if [ $have_lc = 1 ] && [ ! -f "$d.gguf" -o "$d/model.safetensors" -nt "$d.gguf" ]; then
    $PY "$HERE/hf_to_gguf.py" "$d" "$d.gguf" --dtype "$dt" || exit 1
  fi
done
IDS=$($PY -c "import random; r=random.Random(5); print(','.join(str(r.randrange(3, $VOCAB)) for _ in range($PROMPT)))")

# --- runs ----------------------------------------------------------------------------------
echo "bench_infer: prompt $PROMPT tokens, decode $GEN steps, $RUNS runs, threads: $THREADS, dtypes: $DTYPES (raw lines: $RAW)"
uptime | sed 's/^/load: /'
for dt in $DTYPES; do
  for t in $THREADS; do
    for r in $(seq "$RUNS"); do
      if [ $have_lc = 1 ]; then
        line=$(node "$HERE/llamacpp_bench.mjs" "$W/model-$dt.gguf" --threads "$t" --prompt-ids "$IDS" \
          --generate "$GEN" --flash on --kv-type $LC_KV 2>"$W/lc.err" | grep '^llamacpp ')
        if [ -n "$line" ]; then echo "dtype=$dt $line" >>"$RAW"; else echo "llama.cpp failed:"; tail -3 "$W/lc.err"; fi
        [ $r = 1 ] && grep '^llamacpp_bench:' "$W/lc.err" | head -1 >>"$W/settings.txt"
      fi
      for act in $ACTS; do
        [ $have_ours = 1 ] || break
        af=
        [ "$act" = f32 ] || af="--act-dtype $act" # f32 is the default: no flag
        [ "$dt" = F32 ] && [ "$act" != f32 ] && continue
        # --generate G+1: the first token comes from the prefill logits, then G decode steps
        # (llama.cpp's side also runs G single-token steps after the prompt)
        if "$LONGCTX" infer --model "$W/model-$dt" --prompt-ids "$IDS" --generate $((GEN + 1)) \
          --threads "$t" --timings $OURS_FLAGS $af >/dev/null 2>"$W/ours.err"; then
          line=$(grep '^timings:' "$W/ours.err" | tail -1)
          line=${line#timings: }
          case " $line" in *" threads="*) ;; *) line="threads=$t $line" ;; esac
          [ -n "$line" ] && echo "dtype=$dt ours $line" >>"$RAW"
        else
          echo "longctx failed (dtype $dt, threads $t, act $act):"; tail -3 "$W/ours.err"
        fi
      done
    done
  done
done
sort -u "$W/settings.txt" 2>/dev/null | sed 's/^/settings: /'
rm -f "$W/settings.txt"
cat "$RAW"

# --- table ---------------------------------------------------------------------------------
$PY - "$RAW" "$W" "$PROMPT" "$GEN" "$OURS_KV_BYTES" "$LC_KV" <<'EOF'
import json, os, sys
raw, W, P, G, ours_kvb, lc_kv = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
rows, kvname = {}, {}
for line in open(raw):
    f = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
    eng = "llama.cpp" if " llamacpp " in line else "longctx"
    if eng == "longctx" and "act" in f:  # the engine names how it multiplied (act=f32|bf16)
        eng = "longctx act=" + f["act"]
    if eng.startswith("longctx") and "kv" in f:
        kvname[(f["dtype"], int(f["threads"]))] = f["kv"]
    if eng == "llama.cpp" and "lc_prefill_s" in f:  # llama.cpp's own counters
        ps, ds, pn, dn = float(f["lc_prefill_s"]), float(f["lc_decode_s"]), int(f["lc_prompt_tokens"]), int(f["lc_eval_runs"])
    else:
        ps, ds, pn, dn = float(f["prefill_s"]), float(f["decode_s"]), int(f["prefill_tokens"]), int(f["decode_tokens"])
    rows.setdefault((f["dtype"], int(f["threads"]), eng), []).append((pn / ps, dn / ds))

def bytes_per_token(dt, kv_bytes):
    c = json.load(open(os.path.join(W, "model-%s" % dt, "config.json")))
    H, I, L, V = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"], c["vocab_size"]
    nh, nkv = c["num_attention_heads"], c["num_key_value_heads"]
    hd = c.get("head_dim") or H // nh
    wb = {"F32": 4, "BF16": 2, "F16": 2}[dt]
    mats = L * (H * nh * hd * 2 + H * nkv * hd * 2 + 3 * H * I) + V * H  # + classifier
    norms = (2 * L + 1) * H * wb  # stored as the checkpoint dtype by us, F32 by llama.cpp: small
    kv = 2 * L * nkv * hd * kv_bytes * (P + (G + 1) / 2)  # keys+values read, average decode step
    return mats * wb + norms, kv

print()
print("| engine | dtype | threads | prefill tok/s (best; range) | decode tok/s (best; range) | decode GB/s | ours/llama.cpp prefill | ours/llama.cpp decode |")
print("|---|---|---|---|---|---|---|---|")
for (dt, t, eng) in sorted(rows, key=lambda k: (k[0] != "F32", k[0], k[1], k[2] != "llama.cpp")):
    v = rows[(dt, t, eng)]
    pb, db = max(x[0] for x in v), max(x[1] for x in v)
    pr = "%.1f; %.1f-%.1f" % (pb, min(x[0] for x in v), pb)
    dr = "%.2f; %.2f-%.2f" % (db, min(x[1] for x in v), db)
    if eng == "llama.cpp":
        kvb = {"F16": 2, "BF16": 2, "F32": 4}.get(lc_kv, 2)
    else:  # the engine names its KV dtype on the timings line (kv=f32|bf16)
        kvb = {"f32": 4, "bf16": 2, "f16": 2}.get(kvname.get((dt, t), ""), ours_kvb)
    w, kv = bytes_per_token(dt, kvb)
    gbs = (w + kv) * db / 1e9
    ratio_p = ratio_d = "-"
    if eng.startswith("longctx") and (dt, t, "llama.cpp") in rows:
        lv = rows[(dt, t, "llama.cpp")]
        ratio_p = "%.2f" % (pb / max(x[0] for x in lv))
        ratio_d = "%.2f" % (db / max(x[1] for x in lv))
    print("| %s | %s | %d | %s | %s | %.1f | %s | %s |" % (eng, dt, t, pr, dr, gbs, ratio_p, ratio_d))
w32, kv32 = bytes_per_token("F32", 2) if os.path.isdir(os.path.join(W, "model-F32")) else (0, 0)
if w32:
    print("\nweights read per decode step (F32): %.1f MB; KV read per step (llama.cpp F16 KV, average): %.1f MB"
          % (w32 / 1e6, kv32 / 1e6))
EOF
