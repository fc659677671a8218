#!/usr/bin/env python3
"""Parity of the grammar stage with llama.cpp's grammar sampler
(llama-cpp-python's low-level llama_sampler_init_grammar), issue 20.

For each grammar of tests/data/grammars and each vocabulary (SmolLM2-135M-
Instruct, with the model's own logits; LLaMA 3's vocabulary, with seeded
random logits), llama.cpp runs up to STEPS steps of constrained generation:
at each step the grammar sampler is applied to every token, the allowed set
recorded (count and FNV-1a of the ids in order), a token drawn from the
softmax over the allowed ones (seeded), accepted, and fed to the model.
Then `nanollama sample --grammar G --vocab V --tokens IDS` replays the same
tokens and prints its allowed set at every step: the sets must be equal at
every step, and an output that ended (an end-of-generation token drawn)
must leave our grammar able to end.
Run: python3 tools/grammar_parity.py [STEPS]   (default 200; needs
models/SmolLM2-135M-Instruct.Q8_0.gguf from tools/fetch-smollm2.sh and the
release CLI: cargo build --release --example nanollama)"""
import ctypes, math, os, random, subprocess, sys
import numpy as np, llama_cpp as L

STEPS = int(sys.argv[1]) if len(sys.argv) > 1 else 200
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLI = os.path.join(ROOT, "target/release/examples/nanollama")
GDIR = os.path.join(ROOT, "tests/data/grammars")
VOCABS = [("SmolLM2-135M-Instruct", os.path.join(ROOT, "models/SmolLM2-135M-Instruct.Q8_0.gguf"), True),
          ("LLaMA 3 (llama-bpe)", os.path.join(ROOT, "tests/data/vocab/ggml-vocab-llama-bpe.gguf"), False)]
PROMPTS = {"json": "Describe a knight as JSON.", "json_arr": "List three fruits as a JSON array.",
           "list": "Write a shopping list.", "arithmetic": "Write an arithmetic expression.",
           "c": "Write a C function that adds two numbers.", "chess": "Play the first moves of a chess game.",
           "english": "Tell me about the sea.", "japanese": "日本の首都について教えてください。"}

def fnv(ids):
    h = 0xcbf29ce484222325
    for i in ids:
        h = ((h ^ int(i)) * 0x100000001b3) & (2**64 - 1)
    return h

def main():
    L.llama_backend_init()
    failures, total_steps = 0, 0
    for vname, path, use_model in VOCABS:
        mp = L.llama_model_default_params(); mp.vocab_only = not use_model
        model = L.llama_model_load_from_file(path.encode(), mp)
        vocab = L.llama_model_get_vocab(model)
        n = L.llama_vocab_n_tokens(vocab)
        ctx = None
        if use_model:
            cp = L.llama_context_default_params(); cp.n_ctx = 512; cp.n_batch = 512
            cp.n_threads = cp.n_threads_batch = 2
            ctx = L.llama_init_from_model(model, cp)
        arr_t = L.llama_token_data * n
        eog_ids = [i for i in range(n) if L.llama_vocab_is_eog(vocab, i)]
        for gfile in sorted(f for f in os.listdir(GDIR) if f.endswith(".gbnf")):
            name = gfile[:-5]
            gpath = os.path.join(GDIR, gfile)
            g = L.llama_sampler_init_grammar(vocab, open(gpath, "rb").read(), b"root")
            if not g:
                print(f"{vname} {name}: llama.cpp refuses the grammar"); failures += 1; continue
            rng = random.Random(hash((vname, name)) & 0xffff)
            nprng = np.random.default_rng(rng.randrange(2**32))
            if ctx is not None:
                L.llama_memory_clear(L.llama_get_memory(ctx), True)
                msg = f"<|im_start|>user\n{PROMPTS[name]}<|im_end|>\n<|im_start|>assistant\n".encode()
                buf = (L.llama_token * 512)()
                k = L.llama_tokenize(vocab, msg, len(msg), buf, 512, False, True)
                L.llama_decode(ctx, L.llama_batch_get_one(buf, k))
            tokens, counts, hashes, ended = [], [], [], False
            for step in range(STEPS):
                if ctx is not None:
                    lg = np.ctypeslib.as_array(L.llama_get_logits_ith(ctx, -1), shape=(n,)).astype(np.float64)
                else:
                    lg = nprng.normal(0, 2, n)
                work = arr_t(*[L.llama_token_data(i, 0.0, 0.0) for i in range(n)]) if step == 0 else work
                for i in range(n):
                    work[i].id = i; work[i].logit = 0.0
                arr = L.llama_token_data_array(work, n, -1, False)
                L.llama_sampler_apply(g, ctypes.byref(arr))
                logit = np.ctypeslib.as_array(ctypes.cast(work, ctypes.POINTER(ctypes.c_float)), shape=(n * 3,))[1::3]
                ids = np.nonzero(logit == 0.0)[0]
                counts.append(len(ids)); hashes.append(fnv(ids))
                if len(ids) == 0:
                    break
                # End-of-generation: kept back for the first three quarters
                # of the steps, then favoured, so that outputs also complete.
                eog = np.array([L.llama_vocab_is_eog(vocab, int(i)) for i in ids], dtype=bool) if step == 0 or len(ids) < 4096 else None
                if eog is None:
                    eog = np.zeros(len(ids), dtype=bool)
                    for e in eog_ids:
                        eog |= ids == e
                lg = lg.copy()
                lg[ids[eog]] = -1e30 if step < STEPS * 3 // 4 else lg[ids].max() + 5
                z = lg[ids] - lg[ids].max()
                p = np.exp(z); p /= p.sum()
                tok = int(ids[nprng.choice(len(ids), p=p)])
                tokens.append(tok)
                L.llama_sampler_accept(g, tok)
                if L.llama_vocab_is_eog(vocab, tok):
                    ended = True
                    break
                if ctx is not None:
                    one = (L.llama_token * 1)(tok)
                    if L.llama_decode(ctx, L.llama_batch_get_one(one, 1)) != 0:
                        break
            L.llama_sampler_free(g)
            out = subprocess.run([CLI, "sample", "--grammar", gpath, "--vocab", path,
                                  "--tokens", ",".join(map(str, tokens))], capture_output=True, text=True)
            if out.returncode != 0:
                print(f"{vname} {name}: nanollama failed: {out.stderr.strip()}"); failures += 1; continue
            ours = [l.split() for l in out.stdout.splitlines() if l.startswith("step ")]
            can_end = "end: may end" in out.stdout
            bad = [i for i, (c, h) in enumerate(zip(counts, hashes))
                   if i >= len(ours) or int(ours[i][2]) != c or int(ours[i][4], 16) != h]
            total_steps += len(tokens)
            status = "ok" if not bad and (not ended or can_end) else "DIFFERS"
            if status != "ok":
                failures += 1
            print(f"{vname} {name}: {len(tokens)} steps, allowed sets equal at every step: {not bad}"
                  f"{f' (first difference at step {bad[0]}: llama.cpp {counts[bad[0]]}, ours {ours[bad[0]][2] if bad[0] < len(ours) else None})' if bad else ''}"
                  f"; {'ended, our grammar may end: ' + str(can_end) if ended else 'did not end'}: {status}")
        if ctx is not None:
            L.llama_free(ctx)
        L.llama_model_free(model)
    print(f"{total_steps} steps compared; {failures} grammar runs differ")
    sys.exit(1 if failures else 0)

main()
