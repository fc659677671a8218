#!/usr/bin/env python3
"""llama.cpp's grammar sampler (llama_sampler_init_grammar) on the steps that
`nanollama sample --grammar G --vocab V --text T --bench N` times: T's
documents (split at lines of `---`) tokenized by llama.cpp without BOS,
replayed from the grammar's start; at each step every token of the
vocabulary is a candidate (logit 0) and only llama_sampler_apply is timed
(the array is refilled outside the clock), then the token is accepted.
Run: python3 tools/bench_grammar_llama.py GRAMMAR.gbnf VOCAB.gguf TEXT [STEPS]"""
import ctypes, sys, time, llama_cpp as L
gpath, vpath, tpath = sys.argv[1:4]
steps = int(sys.argv[4]) if len(sys.argv) > 4 else 500
L.llama_backend_init()
mp = L.llama_model_default_params(); mp.vocab_only = True
model = L.llama_model_load_from_file(vpath.encode(), mp)
vocab = L.llama_model_get_vocab(model)
n = L.llama_vocab_n_tokens(vocab)
gtext = open(gpath, "rb").read()
tmpl = (L.llama_token_data * n)(*[L.llama_token_data(i, 0.0, 0.0) for i in range(n)])
work = (L.llama_token_data * n)()
text = open(tpath, encoding="utf-8").read()
times, h = [], 0xcbf29ce484222325
for doc in text.split("\n---\n"):
    doc = doc[:-1] if doc.endswith("\n") else doc
    b = doc.encode()
    buf = (L.llama_token * (len(b) + 8))()
    k = L.llama_tokenize(vocab, b, len(b), buf, len(buf), False, False)
    g = L.llama_sampler_init_grammar(vocab, gtext, b"root")
    for tok in buf[:k]:
        if len(times) == steps: break
        ctypes.memmove(work, tmpl, ctypes.sizeof(tmpl))
        arr = L.llama_token_data_array(work, n, -1, False)
        t = time.perf_counter(); L.llama_sampler_apply(g, ctypes.byref(arr)); times.append((time.perf_counter() - t) * 1e6)
        if work[tok].logit != 0.0: sys.exit(f"step {len(times)}: llama.cpp's grammar refuses token {tok}")
        L.llama_sampler_accept(g, tok)
        h = ((h ^ tok) * 0x100000001b3) & (2**64 - 1)
    L.llama_sampler_free(g)
    if len(times) == steps: break
s = sorted(times)
print(f"llama.cpp grammar sampler: {len(s)} steps over {n} candidates (token ids fnv {h:016x}): "
      f"median {s[len(s)//2]:.1f} us, mean {sum(s)/len(s):.1f} us, p90 {s[len(s)*9//10]:.1f} us, max {s[-1]:.1f} us; first step {times[0]:.1f} us")
