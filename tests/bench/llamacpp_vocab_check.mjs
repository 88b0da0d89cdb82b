// Tokenizes llama.cpp's tokenizer test vectors with the vocabulary of a GGUF file (vocabOnly)
// and compares with the expected ids: checks the vocabulary part of hf_to_gguf.py.
// usage: node llamacpp_vocab_check.mjs MODEL.gguf CASES.inp CASES.out   (exit 1 on a mismatch)
// .inp: cases each followed by "\n__ggml_vocab_test__\n"; .out: one line of " id id ..." per case.
import fs from 'fs';
import os from 'os';
import path from 'path';
import { createRequire } from 'module';

const peers = process.env.NODE_PATH ||
  path.join(process.env.LONGCTX_PEERS || path.join(os.homedir(), '.cache/longctx-peers'), 'node_modules');
const require = createRequire(path.resolve(peers) + '/');
const { getLlama, LlamaLogLevel } = await import(require.resolve('node-llama-cpp'));
const [gguf, inp, out] = process.argv.slice(2);
const llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error });
const model = await llama.loadModel({ modelPath: gguf, vocabOnly: true });
const cases = fs.readFileSync(inp, 'utf8').split('\n__ggml_vocab_test__\n');
cases.pop();
const want = fs.readFileSync(out, 'utf8').split('\n');
let ok = 0;
cases.forEach((c, i) => {
  const got = Array.from(model.tokenize(c, false)).map(x => ' ' + x).join('');
  if (got === want[i]) ok++;
  else console.log('  differs: ' + JSON.stringify(c).slice(0, 60) + ' got' + got.slice(0, 60) + ' want' + want[i].slice(0, 60));
});
console.log(`${ok}/${cases.length} cases equal`);
process.exit(ok === cases.length ? 0 : 1);
