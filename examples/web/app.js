// The page: loads nanollama.wasm (tools/build-wasm.sh puts it here) and the
// shipped model, then streams greedy text for the prompt into #output.
// `?model=URL` loads another GGUF file. body[data-state] says where it is
// (loading, ready, running, done, error): tools/web-driver.mjs waits on it.
// By hand, from the repository's root:
//   bash tools/build-wasm.sh && python3 -m http.server 8000
// then open http://localhost:8000/examples/web/ (bash tools/web-test.sh does
// this in headless Chromium).
import { load } from './nanollama.js';

const $ = (id) => document.getElementById(id);
const modelUrl = new URLSearchParams(location.search).get('model') ?? '../../models/kjv-llama.gguf';
let nl;

function state(s, text) {
    document.body.dataset.state = s;
    if (text !== undefined) $('status').textContent = text;
}

async function init() {
    const t0 = performance.now();
    nl = await load(fetch('nanollama.wasm'));
    const info = await nl.loadModel(fetch(modelUrl));
    nl.createContext();
    nl.createSampler({ temp: 0 });
    const ms = performance.now() - t0;
    state(
        'ready',
        `Loaded in ${ms.toFixed(0)} ms: ${(info.nParams / 1e6).toFixed(1)}M parameters, ` +
            `${info.nLayers} layers, context ${nl.nCtx}; memory ${nl.pages} pages ` +
            `(${(nl.pages / 16).toFixed(1)} MiB).`,
    );
    $('generate').disabled = false;
}

async function generate(ev) {
    ev.preventDefault();
    $('generate').disabled = true;
    state('running', 'Generating…');
    // One text node, appended to: no re-parse of the whole text per piece.
    const out = document.createTextNode('');
    $('output').replaceChildren(out);
    const stats = {};
    try {
        for await (const piece of nl.generate($('prompt').value, { nPredict: Number($('n').value), stats })) {
            out.appendData(piece);
            if (stats.generated) {
                const s = (performance.now() - stats.t1) / 1000;
                $('speed').textContent = `${stats.generated} tokens`;
                if (s > 0) $('speed').textContent += `, ${(stats.generated / s).toFixed(1)} tokens/s`;
            } else {
                stats.t1 = performance.now();
            }
        }
        const tps = (stats.generated / stats.generateMs) * 1000;
        $('speed').textContent =
            `prompt: ${stats.promptTokens} tokens, ${((stats.promptTokens / stats.promptMs) * 1000).toFixed(1)} tokens/s; ` +
            `generation: ${stats.generated} tokens, ${tps.toFixed(1)} tokens/s ` +
            `(${((stats.generated / stats.computeMs) * 1000).toFixed(1)} in the library); memory ${stats.pages} pages`;
        state('done', 'Done.');
    } catch (e) {
        state('error', `Error: ${e.message}`);
        throw e;
    } finally {
        $('generate').disabled = false;
    }
}

$('form').addEventListener('submit', generate);
init().catch((e) => {
    state('error', `Error: ${e.message}`);
    throw e;
});
