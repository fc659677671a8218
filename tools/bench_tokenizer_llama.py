#!/usr/bin/env python3
"""llama.cpp's tokenizer on a text file, to set beside
`nanollama tokenize VOCAB --time --file TEXT`.
Run: python3 tools/bench_tokenizer_llama.py VOCAB.gguf TEXT [REPS]"""
import sys
import time

import llama_cpp

vocab, path = sys.argv[1], sys.argv[2]
reps = int(sys.argv[3]) if len(sys.argv) > 3 else 3
llm = llama_cpp.Llama(model_path=vocab, vocab_only=True, verbose=False)
text = open(path, "rb").read()
times = []
for _ in range(reps):
    t = time.perf_counter()
    ids = llm.tokenize(text, add_bos=True, special=False)
    times.append(time.perf_counter() - t)
times.sort()
print(f"llama.cpp: {len(text)} bytes -> {len(ids)} tokens, median {times[len(times) // 2] * 1e3:.1f} ms")
