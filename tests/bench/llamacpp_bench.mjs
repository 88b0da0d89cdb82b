// Prefill and decode speed of llama.cpp (node-llama-cpp's prebuilt CPU library) on a GGUF model.
// usage: NODE_PATH=<peers>/node_modules node llamacpp_bench.mjs MODEL.gguf [--threads N]
//          [--prompt-tokens P] [--generate G] [--repeat R] [--flash on|off|auto]
//          [--kv-type F16|F32|BF16|Q8_0] [--seed S | --prompt-ids LIST]
// Per repeat, one parseable line on stdout:
//   llamacpp threads=N prefill_tokens=P prefill_s=… prefill_tok_s=… decode_tokens=G decode_s=…
//   decode_tok_s=… flash=… kv=… batch=P
// - prompt: --prompt-ids, or P pseudo-random ids in [3, vocab) (seeded); evaluated as ONE batch (batch = ubatch
//   = P), logits for the last position only; prefill_s is the wall time of that call, the first
//   greedy token included.
// - decode: G steps, each evaluating the previous token alone and picking the next one
//   (greedy); decode_s is their wall time (node-llama-cpp's JS scheduling included).
// - llama.cpp's own counters (llama_perf_context: prompt eval / eval time) are printed as
//   lc_prefill_s and lc_decode_s on the same line when available, so the JS overhead shows.
// - A warm-up evaluation (8 tokens) runs first so that the mmapped weights are in memory.
// Settings are echoed on stderr (threads actually used, flash attention, KV type, CPU backend).
import fs from 'fs';
import os from 'os';
import path from 'path';
import { createRequire } from 'module';

const peers = process.env.NODE_PATH ||
  path.join(process.env.LONGCTX_PEERS || path.join(os.homedir(), '.cache/longctx-peers'), 'node_modules');
const require = createRequire(path.resolve(peers) + '/');
const { getLlama, LlamaLogLevel } = await import(require.resolve('node-llama-cpp'));
const nlcVersion = JSON.parse(fs.readFileSync(path.join(peers, 'node-llama-cpp/package.json'), 'utf8')).version;

const o = { threads: 1, prompt: 512, generate: 128, repeat: 1, flash: 'on', kv: 'F16', seed: 1 };
const pos = [];
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  const next = () => {
    if (i + 1 >= argv.length) usage();
    return argv[++i];
  };
  if (a === '--threads') o.threads = Number(next());
  else if (a === '--prompt-tokens') o.prompt = Number(next());
  else if (a === '--generate') o.generate = Number(next());
  else if (a === '--repeat') o.repeat = Number(next());
  else if (a === '--flash') o.flash = next();
  else if (a === '--kv-type') o.kv = next();
  else if (a === '--seed') o.seed = Number(next());
  else if (a === '--prompt-ids') {
    o.ids = next().split(',').filter(x => x.trim()).map(Number);
    o.prompt = o.ids.length;
  }
  else if (a.startsWith('--')) usage();
  else pos.push(a);
}
function usage() {
  console.error('usage: llamacpp_bench.mjs MODEL.gguf [--threads N] [--prompt-tokens P] [--generate G] ' +
    '[--repeat R] [--flash on|off|auto] [--kv-type F16|F32|BF16|Q8_0] [--seed S | --prompt-ids LIST]');
  process.exit(2);
}
if (pos.length !== 1 || !(o.threads >= 1) || !(o.prompt >= 1) || !(o.generate >= 1) ||
    !['on', 'off', 'auto'].includes(o.flash)) usage();

// llama.cpp's perf counters arrive through the logger
let perf = [];
let backend = '?';
const llama = await getLlama({
  gpu: false, build: 'never', maxThreads: o.threads, logLevel: LlamaLogLevel.debug,
  logger: (level, msg) => {
    const b = msg.match(/loaded CPU backend from .*libggml-cpu-([\w-]+)\.so/);
    if (b) backend = b[1];
    if (/prompt eval time|\beval time|load time/.test(msg)) perf.push(msg);
    else if (level === 'error' || level === 'fatal') process.stderr.write(msg + '\n');
  },
});
const model = await llama.loadModel({ modelPath: pos[0], gpuLayers: 0 });
llama.logLevel = LlamaLogLevel.info; // debug only while loading (names the CPU backend)
const md = model.fileInfo.metadata;
const V = Number(md?.llama?.vocab_size ?? md?.tokenizer?.ggml?.tokens?.length ?? 0);
if (!V) {
  console.error('llamacpp_bench: vocabulary size not found in the GGUF metadata');
  process.exit(1);
}
const flash = o.flash === 'auto' ? 'auto' : o.flash === 'on';
const ctx = await model.createContext({
  contextSize: o.prompt + o.generate + 16, batchSize: o.prompt, sequences: 1, threads: o.threads,
  flashAttention: flash, performanceTracking: true,
  experimentalKvCacheKeyType: o.kv, experimentalKvCacheValueType: o.kv,
});
const seq = ctx.getSequence();

let state = o.seed >>> 0;
function rnd() { // xorshift32
  state ^= state << 13; state >>>= 0; state ^= state >>> 17; state ^= state << 5; state >>>= 0;
  return state;
}
if (o.ids) {
  if (o.ids.some(t => !(t >= 0 && t < V))) {
    console.error('llamacpp_bench: --prompt-ids out of range for vocab ' + V);
    process.exit(1);
  }
}
const prompt = o.ids || Array.from({ length: o.prompt }, () => 3 + (rnd() % (V - 3)));
const gen = { generateNext: { token: true, options: { temperature: 0 } } };

async function llamaPerf() {
  perf = [];
  await ctx.printTimings();
  await new Promise(r => setTimeout(r, 10));
  const get = re => {
    for (const m of perf) {
      const x = m.match(re);
      if (x) return { ms: Number(x[1]), n: Number(x[2]) };
    }
    return null;
  };
  return {
    prompt: get(/prompt eval time\s*=\s*([\d.]+) ms\s*\/\s*(\d+) tokens/),
    eval: get(/(?<!prompt )eval time\s*=\s*([\d.]+) ms\s*\/\s*(\d+) runs/),
  };
}

// warm-up: page the weights in, build the graphs once
await seq.controlledEvaluate(prompt.slice(0, Math.min(8, o.prompt)).map((t, i, a) => i === a.length - 1 ? [t, gen] : t));
await seq.clearHistory();
console.error(`llamacpp_bench: ${path.basename(pos[0])} vocab=${V} threads=${o.threads} (context reports ${ctx.currentThreads}) ` +
  `flash_attention=${ctx.flashAttention} (model supports: ${model.flashAttentionSupported}) kv=${o.kv} batch=ubatch=${o.prompt} ` +
  `cpu_backend=${backend} cpu_math_cores=${llama.cpuMathCores} node-llama-cpp=${nlcVersion}`);

for (let r = 0; r < o.repeat; r++) {
  await seq.clearHistory();
  await llamaPerf(); // resets nothing, but drains old messages
  const t0 = process.hrtime.bigint();
  const input = prompt.map((t, i) => i === prompt.length - 1 ? [t, gen] : t);
  const res = await seq.controlledEvaluate(input);
  let tok = res[prompt.length - 1].next.token;
  const t1 = process.hrtime.bigint();
  for (let g = 0; g < o.generate; g++) {
    const out = await seq.controlledEvaluate([[tok, gen]]);
    tok = out[0].next.token;
  }
  const t2 = process.hrtime.bigint();
  const ps = Number(t1 - t0) / 1e9, ds = Number(t2 - t1) / 1e9;
  const lp = await llamaPerf();
  let extra = '';
  // llama.cpp resets its counters when the sequence is cleared: these are this repeat's
  if (lp.prompt && lp.eval) {
    extra = ` lc_prompt_tokens=${lp.prompt.n} lc_prefill_s=${(lp.prompt.ms / 1e3).toFixed(4)}` +
      ` lc_eval_runs=${lp.eval.n} lc_decode_s=${(lp.eval.ms / 1e3).toFixed(4)}`;
  }
  if (process.env.LLAMACPP_BENCH_DEBUG) console.error(perf.join(''));
  console.log(`llamacpp threads=${o.threads} prefill_tokens=${o.prompt} prefill_s=${ps.toFixed(4)} ` +
    `prefill_tok_s=${(o.prompt / ps).toFixed(2)} decode_tokens=${o.generate} decode_s=${ds.toFixed(4)} ` +
    `decode_tok_s=${(o.generate / ds).toFixed(2)} flash=${ctx.flashAttention} kv=${o.kv} batch=${o.prompt}${extra}`);
}
await ctx.dispose();
await model.dispose();
