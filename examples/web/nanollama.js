// nanollama in JavaScript: the library's C API, built for wasm32-unknown-unknown
// (tools/build-wasm.sh), driven from JS as a C host drives it. An ES module
// for the browser and for Node (20 or later); no dependencies.
//
// The module imports only `env.abort` (the library's panic handler: a bug,
// never a bad input) and allocates nothing. This host grows the module's
// memory and hands the library offsets into it for every object, exactly as
// a C host hands it pointers: a bump allocator of 64-byte-aligned offsets
// above `__heap_base`. The model is fetched into that memory once and read in
// place. There is no `parallel_for` (NULL): the library runs every task on
// the calling thread, the one thread a page has.
//
//   import { load } from './nanollama.js';
//   const nl = await load(fetch('nanollama.wasm'));
//   await nl.loadModel(await fetch('kjv-llama.gguf'));
//   for await (const piece of nl.generate('And it came to pass', { nPredict: 64 })) ...

const OK = 0;
const BUFFER_TOO_SMALL = 3;
const ALIGN = 64;
const PAGE = 65536;

// Struct sizes and field offsets on wasm32 (pointers and size_t are 4
// bytes), from include/nanollama.h. The library checks each size it is
// given (BAD_STRUCT_SIZE) and writes its own into `size`.
const CONTEXT_PARAMS = { bytes: 32, n_ctx: 4, n_batch: 8 };
const SAMPLER_PARAMS = { bytes: 104, temp: 4, seed: 8, top_k: 16 };
const MODEL_INFO = { bytes: 96, n_vocab: 4, dim: 8, n_layers: 12, n_ctx_train: 32, n_params: 72 };
const VOCAB_INFO = { bytes: 44, n_vocab: 4, bos: 8, eos: 12 };
const DETOKENIZER_BYTES = 16;
const TOKENIZE_ADD_SPECIAL = 4;
const TOKENIZE_PARSE_SPECIAL = 2;

/** The library failed a call: `status` is its `nanollama_status`. */
export class NanollamaError extends Error {
    constructor(call, status, text) {
        super(`${call}: ${text} (status ${status})`);
        this.call = call;
        this.status = status;
    }
}

/** Lets the event loop run (a page repaints, a stream flushes) between tokens. */
function yieldToLoop() {
    if (typeof setImmediate === 'function') return new Promise((r) => setImmediate(r));
    return new Promise((r) => {
        const ch = new MessageChannel();
        ch.port1.onmessage = () => {
            ch.port1.close();
            r();
        };
        ch.port2.postMessage(0);
    });
}

async function toModule(src) {
    src = await src;
    if (src instanceof WebAssembly.Module) return src;
    if (typeof Response !== 'undefined' && src instanceof Response) {
        if (!src.ok) throw new Error(`nanollama: fetching the module: HTTP ${src.status}`);
        // Streaming compilation needs the application/wasm type; else compile the bytes.
        if (WebAssembly.compileStreaming && src.headers.get('content-type') === 'application/wasm') {
            return WebAssembly.compileStreaming(src);
        }
        return WebAssembly.compile(await src.arrayBuffer());
    }
    return WebAssembly.compile(src);
}

/**
 * Instantiates the library. `wasm`: a Response (or a promise of one, e.g.
 * `fetch(url)`), the module's bytes, or a compiled WebAssembly.Module.
 */
export async function load(wasm) {
    const module = await toModule(wasm);
    const imports = {
        env: {
            abort() {
                throw new Error('nanollama: abort (a panic inside the library: a bug)');
            },
        },
    };
    const instance = await WebAssembly.instantiate(module, imports);
    return new Nanollama(instance);
}

/** One library instance: its memory, one model, one context, one sampler. */
export class Nanollama {
    constructor(instance) {
        this.instance = instance;
        this.x = instance.exports;
        this.memory = this.x.memory;
        this.top = alignUp(this.x.__heap_base.value, ALIGN);
        // Out-parameters of every call, and small structs, live here.
        this.out = this.alloc(256);
        this.detok = this.alloc(DETOKENIZER_BYTES);
        this.piece = this.alloc(512);
        this.decoder = new TextDecoder('utf-8');
        this.encoder = new TextEncoder();
        this.model = 0;
    }

    // ---- memory ---------------------------------------------------------

    /** Offset of `bytes` fresh bytes aligned to `align`, growing the memory as needed. */
    alloc(bytes, align = ALIGN) {
        const at = alignUp(this.top, align);
        const end = at + bytes;
        const have = this.memory.buffer.byteLength;
        if (end > have) this.memory.grow(Math.ceil((end - have) / PAGE));
        this.top = end;
        return at;
    }

    /** Pages (64 KiB) of memory the module has now. */
    get pages() {
        return this.memory.buffer.byteLength / PAGE;
    }

    // Views are made afresh: growing the memory detaches the old ones.
    get u8() {
        return new Uint8Array(this.memory.buffer);
    }
    get dv() {
        return new DataView(this.memory.buffer);
    }
    u32(at) {
        return this.dv.getUint32(at, true);
    }

    check(call, status) {
        if (status !== OK) {
            const p = this.x.nanollama_status_str(status);
            const u8 = this.u8;
            let end = p;
            while (u8[end] !== 0) end++;
            throw new NanollamaError(call, status, this.decoder.decode(u8.subarray(p, end)));
        }
    }

    /** Calls `nanollama_<name>` and throws on a status other than OK. */
    call(name, ...args) {
        this.check(name, this.x['nanollama_' + name](...args));
    }

    // ---- the model --------------------------------------------------------

    /**
     * Puts the GGUF file into the module's memory (once: the weights are read
     * there in place) and loads the model and its vocabulary. `src`: a
     * Response (streamed straight into the memory when it says its length),
     * a Uint8Array or an ArrayBuffer.
     */
    async loadModel(src) {
        src = await src;
        let at, len;
        if (typeof Response !== 'undefined' && src instanceof Response) {
            if (!src.ok) throw new Error(`nanollama: fetching the model: HTTP ${src.status}`);
            const n = Number(src.headers.get('content-length'));
            if (n > 0 && src.body) {
                at = this.alloc(n);
                len = 0;
                const reader = src.body.getReader();
                for (;;) {
                    const { done, value } = await reader.read();
                    if (done) break;
                    if (len + value.length > n) throw new Error('nanollama: the model is longer than its Content-Length');
                    this.u8.set(value, at + len);
                    len += value.length;
                }
                if (len !== n) throw new Error('nanollama: the model is shorter than its Content-Length');
            } else {
                src = new Uint8Array(await src.arrayBuffer());
            }
        }
        if (at === undefined) {
            const bytes = src instanceof Uint8Array ? src : new Uint8Array(src);
            len = bytes.length;
            at = this.alloc(len);
            this.u8.set(bytes, at);
        }
        this.gguf = at;
        this.ggufLen = len;
        const out = this.out;
        this.call('model_size', at, len, out);
        const modelMem = this.alloc(this.u32(out));
        this.call('model_init', at, len, modelMem, this.u32(out), out);
        this.model = this.u32(out);
        this.call('vocab_size', at, len, out);
        const vocabMem = this.alloc(this.u32(out));
        this.call('vocab_init', at, len, vocabMem, this.u32(out), out);
        this.vocab = this.u32(out);

        const mi = this.alloc(MODEL_INFO.bytes, 8);
        this.call('model_get_info', this.model, mi, MODEL_INFO.bytes);
        const dv = this.dv;
        this.info = {
            nVocab: dv.getUint32(mi + MODEL_INFO.n_vocab, true),
            dim: dv.getUint32(mi + MODEL_INFO.dim, true),
            nLayers: dv.getUint32(mi + MODEL_INFO.n_layers, true),
            nCtxTrain: dv.getUint32(mi + MODEL_INFO.n_ctx_train, true),
            nParams: Number(dv.getBigUint64(mi + MODEL_INFO.n_params, true)),
        };
        const vi = this.alloc(VOCAB_INFO.bytes, 8);
        this.call('vocab_get_info', this.vocab, vi, VOCAB_INFO.bytes);
        this.bos = this.dv.getInt32(vi + VOCAB_INFO.bos, true);
        return this.info;
    }

    /**
     * The conversation's context (KV cache and activations): `nCtx` positions
     * (0: the model's training length), at most `nBatch` tokens a decode (0:
     * min(512, nCtx)). No parallel_for: every task runs inline.
     */
    createContext({ nCtx = 0, nBatch = 0 } = {}) {
        const p = this.alloc(CONTEXT_PARAMS.bytes, 8);
        this.call('context_params_default', p, CONTEXT_PARAMS.bytes);
        const dv = this.dv;
        dv.setUint32(p + CONTEXT_PARAMS.n_ctx, nCtx, true);
        dv.setUint32(p + CONTEXT_PARAMS.n_batch, nBatch, true);
        this.call('context_size', this.model, p, this.out);
        const n = this.u32(this.out);
        this.call('context_init', this.model, p, this.alloc(n), n, this.out);
        this.ctx = this.u32(this.out);
        // n_ctx and n_batch as the context chose them (context_info: size, n_ctx, n_batch, ...).
        const ci = this.alloc(24, 8);
        this.call('context_get_info', this.ctx, ci, 24);
        this.nCtx = this.u32(ci + 4);
        this.nBatch = this.u32(ci + 8);
        return this.ctx;
    }

    /** The sampler: `temp` 0 (the default here) is greedy. */
    createSampler({ temp = 0, seed = 42, topK } = {}) {
        const p = this.alloc(SAMPLER_PARAMS.bytes, 8);
        this.call('sampler_params_default', p, SAMPLER_PARAMS.bytes);
        const dv = this.dv;
        dv.setFloat32(p + SAMPLER_PARAMS.temp, temp, true);
        dv.setBigUint64(p + SAMPLER_PARAMS.seed, BigInt(seed), true);
        if (topK !== undefined) dv.setInt32(p + SAMPLER_PARAMS.top_k, topK, true);
        const nVocab = this.info.nVocab;
        this.call('sampler_size', nVocab, p, this.out);
        const n = this.u32(this.out);
        this.call('sampler_init', nVocab, p, this.alloc(n), n, this.out);
        this.sampler = this.u32(this.out);
        return this.sampler;
    }

    // ---- text -------------------------------------------------------------

    /**
     * Token ids of `text`, with BOS/EOS as the file asks for them (as
     * llama.cpp's `add_special`). Its scratch is given back afterwards.
     */
    tokenize(text, { addSpecial = true, parseSpecial = false } = {}) {
        const mark = this.top;
        try {
            const bytes = this.encoder.encode(text);
            const t = this.alloc(bytes.length + 1);
            this.u8.set(bytes, t);
            const scratchLen = this.x.nanollama_tokenize_scratch_size(bytes.length);
            const scratch = this.alloc(scratchLen);
            const flags = (addSpecial ? TOKENIZE_ADD_SPECIAL : 0) | (parseSpecial ? TOKENIZE_PARSE_SPECIAL : 0);
            let cap = bytes.length + 8;
            for (;;) {
                const ids = this.alloc(4 * cap, 4);
                const s = this.x.nanollama_tokenize(this.vocab, t, bytes.length, flags, scratch, scratchLen, ids, cap, this.out);
                const n = this.u32(this.out);
                if (s === BUFFER_TOO_SMALL && n > cap) {
                    cap = n;
                    continue;
                }
                this.check('tokenize', s);
                return Array.from(new Int32Array(this.memory.buffer, ids, n));
            }
        } finally {
            this.top = mark;
        }
    }

    /** Starts the streaming detokenizer afresh. */
    resetText() {
        this.x.nanollama_detokenizer_init(this.detok);
    }

    /** The text `token` completes (UTF-8 held back until a character is whole). */
    pushText(token) {
        this.call('detokenizer_push', this.detok, this.vocab, token, this.piece, 512, this.out);
        return this.bytesText(this.u32(this.out));
    }

    /** The bytes the detokenizer still holds, as text. */
    flushText() {
        this.call('detokenizer_flush', this.detok, this.piece, 512, this.out);
        return this.bytesText(this.u32(this.out));
    }

    bytesText(n) {
        return this.decoder.decode(this.u8.slice(this.piece, this.piece + n));
    }

    isEog(token) {
        this.call('vocab_is_eog', this.vocab, token, this.out);
        return this.u8[this.out] !== 0;
    }

    // ---- decoding ---------------------------------------------------------

    /** Appends `tokens` to the context (in batches of at most nBatch) and computes logits. */
    decode(tokens) {
        const mark = this.top;
        try {
            const ids = this.alloc(4 * tokens.length, 4);
            new Int32Array(this.memory.buffer, ids, tokens.length).set(tokens);
            for (let i = 0; i < tokens.length; i += this.nBatch) {
                const n = Math.min(this.nBatch, tokens.length - i);
                this.call('context_decode', this.ctx, ids + 4 * i, n);
            }
        } finally {
            this.top = mark;
        }
    }

    /** Positions the context holds. */
    pos() {
        this.call('context_pos', this.ctx, this.out);
        return this.u32(this.out);
    }

    /** Draws a token from the last logits and accepts it. */
    sample() {
        this.call('context_logits', this.ctx, this.out, this.out + 4);
        const logits = this.u32(this.out);
        this.call('sampler_sample', this.sampler, logits, this.info.nVocab, this.out + 8);
        const tok = this.dv.getInt32(this.out + 8, true);
        this.call('sampler_accept', this.sampler, tok);
        return tok;
    }

    /**
     * Generates after `prompt`, as the CLI's `generate` does: the prompt in
     * one decode (BOS/EOS as the file asks), then up to `nPredict` tokens,
     * stopping at an end-of-generation token or a full context; a BOS
     * generated (a new verse, in the shipped model) is shown as a line break.
     * Yields text pieces: first the prompt as the model read it (`echo`),
     * then each generated piece. Starts from an empty context and sampler
     * (made on first use: greedy). `stats` (an object) receives the counts
     * and times, in milliseconds. Every `yieldMs` milliseconds the event
     * loop runs (a page repaints the text so far); not after every token,
     * which would cost more than the token on a small model.
     */
    async *generate(prompt, { nPredict = 64, echo = true, stats = {}, yieldMs = 15 } = {}) {
        if (!this.model) throw new Error('nanollama: loadModel first');
        if (!this.ctx) this.createContext();
        if (!this.sampler) this.createSampler();
        this.call('context_reset', this.ctx);
        this.call('sampler_reset', this.sampler);
        this.resetText();
        const now = () => globalThis.performance.now();
        let toks = this.tokenize(prompt);
        if (toks.length === 0) toks = [this.bos];
        if (toks.length >= this.nCtx) throw new Error(`nanollama: the prompt (${toks.length} tokens) does not fit the context (${this.nCtx})`);
        if (echo) {
            let text = '';
            for (const t of toks) text += this.pushText(t);
            if (text) yield text;
        }
        const t0 = now();
        this.decode(toks);
        for (const t of toks) this.call('sampler_accept', this.sampler, t);
        Object.assign(stats, { promptTokens: toks.length, promptMs: now() - t0, generated: 0, computeMs: 0 });
        const t1 = now();
        let yielded = t1;
        while (stats.generated < nPredict && this.pos() < this.nCtx) {
            const c0 = now();
            const t = this.sample();
            stats.generated++;
            if (this.isEog(t)) {
                stats.computeMs += now() - c0;
                break;
            }
            const piece = t === this.bos ? '\n' : this.pushText(t);
            const full = this.pos() === this.nCtx;
            if (!full) this.decode([t]);
            stats.computeMs += now() - c0;
            if (piece) yield piece;
            if (full) break;
            if (now() - yielded >= yieldMs) {
                await yieldToLoop();
                yielded = now();
            }
        }
        const rest = this.flushText();
        stats.generateMs = now() - t1;
        stats.pages = this.pages;
        if (rest) yield rest;
    }
}

function alignUp(n, a) {
    return Math.ceil(n / a) * a;
}
