// Generates greedily with the WebAssembly build through examples/web/nanollama.js,
// in Node (20 or later), and prints the text as the CLI's `generate` does
// (the prompt as the model read it, then the generated text):
//   node tools/wasm-generate.mjs NANOLLAMA.wasm MODEL.gguf PROMPT [N_PREDICT]
// First checks that the module imports nothing but `env.abort` (exit 3
// otherwise). Speed, token counts and memory pages go to stderr.
import { readFile } from 'node:fs/promises';
import { load } from '../examples/web/nanollama.js';

const [wasmPath, modelPath, prompt, n = '64'] = process.argv.slice(2);
if (!wasmPath || !modelPath || prompt === undefined) {
    console.error('usage: node tools/wasm-generate.mjs NANOLLAMA.wasm MODEL.gguf PROMPT [N_PREDICT]');
    process.exit(2);
}
const module = await WebAssembly.compile(await readFile(wasmPath));
const imports = WebAssembly.Module.imports(module).map((i) => `${i.module}.${i.name}:${i.kind}`);
console.error(`imports: ${imports.join(' ')}`);
if (imports.length !== 1 || imports[0] !== 'env.abort:function') {
    console.error('wasm-generate: the module must import only env.abort');
    process.exit(3);
}
const nl = await load(module);
const t0 = performance.now();
await nl.loadModel(await readFile(modelPath));
const loadMs = performance.now() - t0;
const stats = {};
for await (const piece of nl.generate(prompt, { nPredict: Number(n), stats })) {
    process.stdout.write(piece);
}
process.stdout.write('\n');
const tps = (stats.generated / stats.generateMs) * 1000;
console.error(
    `load: ${loadMs.toFixed(1)} ms; prompt: ${stats.promptTokens} tokens, ` +
        `${((stats.promptTokens / stats.promptMs) * 1000).toFixed(1)} tok/s; ` +
        `generation: ${stats.generated} tokens, ${tps.toFixed(1)} tok/s ` +
        `(${((stats.generated / stats.computeMs) * 1000).toFixed(1)} tok/s in the library); ` +
        `memory: ${stats.pages} pages (${(stats.pages / 16).toFixed(1)} MiB)`,
);
