#!/usr/bin/env python3
"""Real constrained generation for the grammar benchmark: SmolLM2-135M-Instruct
asked for JSON, sampled by llama.cpp under grammars/json.gbnf (seeds 1-4),
written to tests/data/grammars/bench.json as documents separated by lines
holding only `---` (json.gbnf puts no raw newline inside a string). Both
benchmarks replay each document's tokens in another vocabulary (LLaMA 3's)
from the grammar's start, so their grammar states are those of real outputs.
Run: python3 tools/make_grammar_bench_text.py [MODEL.gguf]"""
import sys, llama_cpp as L
model = sys.argv[1] if len(sys.argv) > 1 else "models/SmolLM2-135M-Instruct.Q8_0.gguf"
llm = L.Llama(model, n_ctx=2048, seed=1, verbose=False)
grammar = L.LlamaGrammar.from_file("tests/data/grammars/json.gbnf", verbose=False)
prompts = [
    "Describe ten characters of a fantasy game as one JSON object: for each, its name, class, "
    "level, hit points, a short biography, and its inventory as a list of items with names, "
    "weights and prices.",
    "Give the weather forecast for five cities for the next three days as JSON, with "
    "temperatures, wind speed and a one-sentence summary per day.",
    "Write a JSON object describing a small online shop: its products with ids, names, "
    "prices, stock and tags, and three customer orders.",
    "As JSON, list the planets of the solar system with their mass, radius, number of moons "
    "and a fun fact about each.",
]
docs = []
for seed, prompt in enumerate(prompts, 1):
    out = llm.create_chat_completion([{"role": "user", "content": prompt}], grammar=grammar,
                                     max_tokens=1500, temperature=0.8, repeat_penalty=1.3, seed=seed)
    docs.append(out["choices"][0]["message"]["content"])
    print(f"document {seed}: {len(docs[-1])} chars, {out['usage']['completion_tokens']} tokens, "
          f"finish: {out['choices'][0]['finish_reason']}")
open("tests/data/grammars/bench.json", "w").write("\n---\n".join(docs) + "\n")
