#!/usr/bin/env python3
"""Hostile vocabularies for the cost tests of issue 16, as GGUF files:

  flood-fnv.gguf      65,536 distinct 10-byte tokens whose FNV-1a hashes
                      agree in their low 20 bits (the old token table's hash:
                      each one landed in one slot), SentencePiece
  flood-special.gguf  65,536 control tokens that all start with "aa" (the old
                      special-token cut scanned every one at every position)

Run: python3 tools/make_flood.py tests/data/hostile/vocab   (needs numpy and gguf)
The files are committed there: tests/bounded.rs and examples/bench_cost.rs
read them, so cargo test needs no Python.
"""
import os
import random
import sys

import gguf

P, MASK = 0x01000193, (1 << 20) - 1
ALPHA = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def fnv_flood(n=1 << 16):
    inv = pow(P, -1, 1 << 32)
    rng = random.Random(16)
    by_state = {}
    for _ in range(1 << 21):
        p = bytes(rng.choice(ALPHA) for _ in range(7))
        h = 0x811C9DC5
        for b in p:
            h = ((h ^ b) * P) & 0xFFFFFFFF
        by_state[h & MASK] = p
    target, out = 0x55555 & MASK, []
    for a in ALPHA:
        for b in ALPHA:
            for c in ALPHA:
                h = target
                for x in (c, b, a):
                    h = ((h * inv) ^ x) & MASK
                p = by_state.get(h)
                if p is not None:
                    out.append(p + bytes([a, b, c]))
                    if len(out) == n:
                        return out
    raise SystemExit("not enough strings")


def write(path, tokens, types):
    w = gguf.GGUFWriter(path, "llama")
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores([-float(i) for i in range(len(tokens))])
    w.add_token_types(types)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.close()


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "."
    os.makedirs(out, exist_ok=True)
    base = [b"<unk>", b"<s>", b"</s>", b"a", b"\xe2\x96\x81a"]
    flood = fnv_flood()
    write(os.path.join(out, "flood-fnv.gguf"), base + flood, [2, 3, 3, 1, 1] + [1] * len(flood))
    special = [b"aa" + f"{i:05d}".encode() for i in range(1 << 16)]
    write(os.path.join(out, "flood-special.gguf"), base + special, [2, 3, 3, 1, 1] + [3] * len(special))
    print(f"wrote {out}/flood-fnv.gguf, {out}/flood-special.gguf")


if __name__ == "__main__":
    main()
