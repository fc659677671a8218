#!/usr/bin/env python3
"""Greedy decoding of the shipped model by llama.cpp and by nanollama, side
by side: the first N tokens from each prompt must be the same.
Run: cargo build --release --example nanollama && python3 tools/compare_greedy.py [--write] [MODEL.gguf] [N]
Both sides use their defaults: llama.cpp through llama-cpp-python (F16 KV
cache, no flash attention, 2 threads); nanollama through `nanollama generate
--temp 0 --ids`. --write stores llama.cpp's tokens in
tests/data/greedy/<prompt>.ids (one line: the prompt's ids, one line: the
generated ids), which tests/shipped.rs replays through the library."""
import os
import re
import subprocess
import sys

import numpy as np
import llama_cpp

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
PROMPTS = ["And it came to pass", "In the beginning", "The LORD is my shepherd", "Blessed are the poor"]
args = [a for a in sys.argv[1:] if a != "--write"]
write = "--write" in sys.argv
model = args[0] if args else os.path.join(ROOT, "models", "kjv-llama.gguf")
n = int(args[1]) if len(args) > 1 else 200

llm = llama_cpp.Llama(model_path=model, n_ctx=256, n_batch=256, logits_all=True, verbose=False, n_threads=2)
exe = os.path.join(ROOT, "target", "release", "examples", "nanollama")
ok = True
for prompt in PROMPTS:
    llm.reset()
    toks = llm.tokenize(prompt.encode(), add_bos=True)
    llm.eval(toks)
    ref = []
    for _ in range(n):
        t = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        ref.append(t)
        if t == llm.token_eos() or llm.n_tokens >= 256:
            break
        llm.eval([t])
    out = subprocess.run([exe, "generate", model, "--prompt", prompt, "-n", str(n), "--temp", "0", "--ids"],
                         capture_output=True, text=True, check=True)
    ours = [int(x) for x in out.stdout.split()]
    same = next((i for i, (a, b) in enumerate(zip(ref, ours)) if a != b), min(len(ref), len(ours)))
    ok &= ref == ours
    print(f"prompt {prompt!r} {toks}: identical for the first {same} of {len(ref)} tokens")
    if ref != ours:
        print(f"  llama.cpp: {ref}\n  nanollama: {ours}")
    print("  " + llm.detokenize(ref).decode(errors="replace").replace("\n", "\n  "))
    if write:
        d = os.path.join(ROOT, "tests", "data", "greedy")
        os.makedirs(d, exist_ok=True)
        name = re.sub(r"[^a-z0-9]+", "-", prompt.lower()).strip("-")
        with open(os.path.join(d, name + ".ids"), "w") as f:
            f.write(prompt + "\n" + " ".join(map(str, toks)) + "\n" + " ".join(map(str, ref)) + "\n")
sys.exit(0 if ok else 1)
