// llama.cpp's logits for a prompt of token ids, through node-llama-cpp's prebuilt CPU library.
// usage: NODE_PATH=<peers>/node_modules node llamacpp_logits.mjs MODEL.gguf --prompt-ids 1,2,3
//          --out LOGITS.f32 [--generate G] [--threads N] [--ids-out IDS.txt]
// Evaluates the prompt in one batch asking for the logits after every token, then G greedy steps
// (argmax of llama.cpp's own logits, fed back one at a time). Writes float32 little-endian rows
// of vocab logits, one per evaluated position (prompt + generated tokens except the last), and
// the full id sequence (prompt + generated) to --ids-out as comma-separated ids.
// The logits are llama.cpp's raw output (node-llama-cpp's `logits: true`, no sampling applied).
import fs from 'fs';
import os from 'os';
import path from 'path';
import { createRequire } from 'module';

// node-llama-cpp from NODE_PATH, else the peers folder ($LONGCTX_PEERS or ~/.cache/longctx-peers)
const peers = process.env.NODE_PATH ||
  path.join(process.env.LONGCTX_PEERS || path.join(os.homedir(), '.cache/longctx-peers'), 'node_modules');
const require = createRequire(path.resolve(peers) + '/');
const { getLlama, LlamaLogLevel } = await import(require.resolve('node-llama-cpp'));

function args(argv) {
  const o = { generate: 0, threads: 1, kv: 'F32' };
  const pos = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--prompt-ids') o.prompt = argv[++i].split(',').filter(s => s.trim()).map(Number);
    else if (a === '--out') o.out = argv[++i];
    else if (a === '--ids-out') o.idsOut = argv[++i];
    else if (a === '--generate') o.generate = Number(argv[++i]);
    else if (a === '--threads') o.threads = Number(argv[++i]);
    else if (a === '--kv-type') o.kv = argv[++i];
    else pos.push(a);
  }
  if (pos.length !== 1 || !o.prompt || !o.out) {
    console.error('usage: llamacpp_logits.mjs MODEL.gguf --prompt-ids LIST --out F [--generate G] [--threads N] [--ids-out F]');
    process.exit(2);
  }
  o.model = pos[0];
  return o;
}

const o = args(process.argv.slice(2));
const llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error });
const model = await llama.loadModel({ modelPath: o.model, gpuLayers: 0 });
const total = o.prompt.length + o.generate;
const ctx = await model.createContext({
  contextSize: Math.max(256, total + 16), batchSize: Math.max(o.prompt.length, 1),
  threads: o.threads, sequences: 1, flashAttention: false,
  experimentalKvCacheKeyType: o.kv, experimentalKvCacheValueType: o.kv,
});
const seq = ctx.getSequence();

let V = 0;
function row(map) {
  if (!V) {
    for (const k of map.keys()) V = Math.max(V, k + 1);
  }
  const r = new Float32Array(V);
  r.fill(NaN);
  for (const [k, v] of map) r[k] = v;
  return r;
}

const rows = [];
const ids = o.prompt.slice();
const want = { generateNext: { logits: true } };
let res = await seq.controlledEvaluate(o.prompt.map(t => [t, want]));
for (let i = 0; i < o.prompt.length; i++) rows.push(row(res[i].next.logits));
for (let g = 0; g < o.generate; g++) {
  const last = rows[rows.length - 1];
  let best = 0;
  for (let k = 1; k < last.length; k++) if (last[k] > last[best]) best = k;
  ids.push(best);
  if (g === o.generate - 1) break;
  res = await seq.controlledEvaluate([[best, want]]);
  rows.push(row(res[0].next.logits));
}
// the vocab is the model's: check that every row is full
for (const r of rows) {
  if (r.length !== V || r.some(x => Number.isNaN(x))) {
    console.error('llamacpp_logits: a logits row is incomplete');
    process.exit(1);
  }
}
const buf = Buffer.alloc(rows.length * V * 4);
rows.forEach((r, i) => Buffer.from(r.buffer).copy(buf, i * V * 4));
fs.writeFileSync(o.out, buf);
if (o.idsOut) fs.writeFileSync(o.idsOut, ids.join(',') + '\n');
console.error(JSON.stringify({ peer: 'llama.cpp', rows: rows.length, vocab: V, ids: ids.length }));
await ctx.dispose();
await model.dispose();
