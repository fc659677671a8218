#!/usr/bin/env python3
"""Greedy decoding of the shipped model by llama.cpp and by nanollama, side
by side: the first N tokens from a prompt must be the same.
Run: python3 tools/compare_greedy.py [MODEL.gguf] [PROMPT] [N]
(builds nothing: run `cargo build --release --example nanollama` first)."""
import os
import subprocess
import sys

import numpy as np
import llama_cpp

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
model = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "models", "kjv-llama.gguf")
prompt = sys.argv[2] if len(sys.argv) > 2 else "And it came to pass"
n = int(sys.argv[3]) if len(sys.argv) > 3 else 200

llm = llama_cpp.Llama(model_path=model, n_ctx=256, n_batch=256, logits_all=True, verbose=False, n_threads=2)
toks = llm.tokenize(prompt.encode(), add_bos=True)
llm.eval(toks)
ref = []
for _ in range(n):
    t = int(np.argmax(llm.scores[llm.n_tokens - 1]))
    ref.append(t)
    if t == llm.token_eos():
        break
    llm.eval([t])
exe = os.path.join(ROOT, "target", "release", "examples", "nanollama")
out = subprocess.run([exe, "generate", model, "--prompt", prompt, "-n", str(n), "--temp", "0", "--ids"],
                     capture_output=True, text=True, check=True)
ours = [int(x) for x in out.stdout.split()]
same = next((i for i, (a, b) in enumerate(zip(ref, ours)) if a != b), min(len(ref), len(ours)))
print(f"prompt tokens: {toks}")
print(f"llama.cpp: {ref}")
print(f"nanollama: {ours}")
print(f"identical for the first {same} of {len(ref)} tokens; llama.cpp text:")
print(llm.detokenize(ref).decode(errors="replace"))
sys.exit(0 if ref == ours else 1)
