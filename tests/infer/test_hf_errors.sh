#!/usr/bin/env bash
# Broken HF model directories give exit 1 and a message naming the file and what is wrong,
# never a crash: no config.json, no weights, an index naming a missing shard or a path outside
# the directory, a missing tensor, a tensor of the wrong shape, a truncated safetensors file, an
# unsupported dtype (I8), an unsupported rope_scaling type and hidden_act, LongLLaMA keys in a
# Llama config and LongLLaMA values the engine does not compute ("not supported by this CPU or
# model": INFER_ERR_UNSUPPORTED, the file is well-formed).
# usage: test_hf_errors.sh LONGCTX
set -uo pipefail
LONGCTX=$1
HERE=$(cd "$(dirname "$0")" && pwd)/hf
PY=/usr/bin/python3
$PY -c 'import numpy' 2> /dev/null || { echo "SKIP: /usr/bin/python3 has no numpy"; exit 0; }
W=$(mktemp -d "${TMPDIR:-/tmp}/longctx-hferr-XXXXXX")
trap 'rm -rf "$W"' EXIT
gen() { $PY "$HERE/gen_hf_model.py" "$W/$1" --hidden 64 --intermediate 128 --layers 2 --heads 2 \
    --kv-heads 1 --vocab 256 --seed 1 "${@:2}" > /dev/null; }
pass=0 fail=0
expect() { # name dir pattern
    "$LONGCTX" infer --model "$W/$2" --prompt-ids 1,2,3 > /dev/null 2> "$W/$1.err"
    rc=$?
    if [ $rc -eq 1 ] && grep -qE "$3" "$W/$1.err"; then
        pass=$((pass + 1)); echo "ok   $1: $(tail -n 1 "$W/$1.err" | cut -c1-170)"
    else
        fail=$((fail + 1)); echo "FAIL $1 (exit $rc, want 1 and /$3/):"; cat "$W/$1.err"
    fi
}
gen ok
"$LONGCTX" infer --model "$W/ok" --prompt-ids 1,2,3 > /dev/null || { echo "FAIL: the good model"; exit 1; }
cp -r "$W/ok" "$W/noconf" && rm "$W/noconf/config.json"
expect noconf noconf "noconf/config.json"
cp -r "$W/ok" "$W/noweights" && rm "$W/noweights/model.safetensors"
expect noweights noweights "noweights: neither model.safetensors"
gen sh --shards 2
cp -r "$W/sh" "$W/lostshard" && rm "$W/lostshard/model-00002-of-00002.safetensors"
expect lostshard lostshard "model-00002-of-00002.safetensors"
cp -r "$W/sh" "$W/escape" && sed -i 's/model-00002-of-00002.safetensors/..\/x.safetensors/' "$W/escape/model.safetensors.index.json"
expect escape escape "not in the directory"
# rewrite the header of model.safetensors: rename, reshape, retype a tensor
edit() { # dir python-expression-on-header
    $PY - "$W/$1/model.safetensors" "$2" <<'PY'
import sys, json, struct
p, expr = sys.argv[1], sys.argv[2]
b = open(p, "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
exec(expr)
hb = json.dumps(h).encode()
hb += b" " * ((8 - len(hb) % 8) % 8)
open(p, "wb").write(struct.pack("<Q", len(hb)) + hb + b[8 + n:])
PY
}
cp -r "$W/ok" "$W/missing" && edit missing 'h["model.layers.1.mlp.up_proj.bogus"] = h.pop("model.layers.1.mlp.up_proj.weight")'
expect missing missing "model.layers.1.mlp.up_proj.weight is in none"
cp -r "$W/ok" "$W/shape" && edit shape 't = h["model.layers.0.self_attn.q_proj.weight"]; t["shape"] = [t["shape"][1], t["shape"][0]] if t["shape"][0] != t["shape"][1] else [t["shape"][0] // 2, t["shape"][1] * 2]'
expect shape shape "q_proj.weight has shape"
# a trailing dimension of 1 is still a different shape, and the message shows it (issue 10)
cp -r "$W/ok" "$W/shape3" && edit shape3 't = h["model.layers.0.self_attn.q_proj.weight"]; t["shape"] = t["shape"] + [1]'
expect shape3 shape3 "q_proj.weight has shape \[64, 64, 1\]"
cp -r "$W/ok" "$W/dtype" && edit dtype 't = h["model.norm.weight"]; t["dtype"] = "I8"; t["shape"] = [t["shape"][0] * 4]'
expect dtype dtype "I8"
cp -r "$W/ok" "$W/trunc" && truncate -s -100 "$W/trunc/model.safetensors"
expect trunc trunc "trunc/model.safetensors"
cp -r "$W/ok" "$W/rope" && sed -i 's/"rope_scaling": null/"rope_scaling": {"rope_type": "longrope", "factor": 2.0}/' "$W/rope/config.json"
expect rope rope "longrope"
cp -r "$W/ok" "$W/act" && sed -i 's/"hidden_act": "silu"/"hidden_act": "gelu"/' "$W/act/config.json"
expect act act "gelu"
# LongLLaMA: its memory-layer keys outside model_type "longllama" are refused by name, and so is
# every longllama value the engine does not compute (issue 12)
gen longllama --kv-heads 2 --mem-layers 1 --max-pos 64 --last-context 32
"$LONGCTX" infer --model "$W/longllama" --prompt-ids 1,2,3 > /dev/null || { echo "FAIL: the good LongLLaMA model"; exit 1; }
for key in mem_layers last_context_length mem_attention_grouping mem_dtype mem_positionals \
        torch_attention gradient_checkpoint_every_ith; do
    mkdir -p "$W/key_$key" && cp "$W/ok/model.safetensors" "$W/key_$key/"
    $PY - "$W/longllama/config.json" "$W/ok/config.json" "$key" > "$W/key_$key/config.json" <<'PY'
import json, sys
ll, c = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
c[sys.argv[3]] = ll[sys.argv[3]]
print(json.dumps(c, indent=2))
PY
    expect "key_$key" "key_$key" "not supported by this CPU or model: .*key_$key/config.json: \"$key\""
done
llbad() { # name python-statement-on-config-c pattern
    mkdir -p "$W/$1" && cp "$W/longllama/model.safetensors" "$W/$1/"
    $PY - "$W/longllama/config.json" "$2" > "$W/$1/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); exec(sys.argv[2]); print(json.dumps(c))
PY
    expect "$1" "$1" "$3"
}
llbad ll_memdtype 'c["mem_dtype"] = "float16"' 'mem_dtype "float16"'
llbad ll_positionals 'c["mem_positionals"] = False' 'mem_positionals false'
llbad ll_rope 'c["rope_scaling"] = {"rope_type": "linear", "factor": 2.0}' 'rope_scaling is not null'
llbad ll_last 'c["last_context_length"] = 65' 'last_context_length'
llbad ll_layer 'c["mem_layers"] = [2]' 'mem_layers\[0\]'
llbad ll_nolayers 'del c["mem_layers"]' 'no "mem_layers"'
llbad ll_emptylayers 'c["mem_layers"] = []' '"mem_layers" is empty'
# --mem-topk means nothing without memory layers: refused, not ignored
if "$LONGCTX" infer --model "$W/ok" --prompt-ids 1,2,3 --mem-topk 4 > /dev/null 2> "$W/topk.err" ||
    ! grep -q "no LongLLaMA memory layers" "$W/topk.err"; then
    echo "FAIL: --mem-topk on a plain Llama: $(cat "$W/topk.err")"; fail=$((fail + 1))
else
    pass=$((pass + 1))
fi
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
