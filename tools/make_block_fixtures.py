#!/usr/bin/env python3
"""Fixtures for the block kernels in src/blocks.rs: blocks of every quantized
type beyond Q8_0, and their weights as the `gguf` Python package dequantizes
them (an implementation independent of ours and of llama.cpp's C).

Run:   python3 tools/make_block_fixtures.py      (needs numpy, gguf)
Writes tests/data/blocks/<type>.blocks (raw blocks) and <type>.f32 (the
dequantized weights, little-endian f32). Blocks are seeded random bytes (any
bit pattern of the quant fields is a valid block) with the f16 scale fields
set to finite values of varied magnitude; block 0 has zero scales, block 1
negative ones."""
import os

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "blocks")
# type: (bytes per block, offsets of its f16 scale fields)
TYPES = {
    Q.Q4_0: (18, [0]), Q.Q4_1: (20, [0, 2]), Q.Q5_0: (22, [0]), Q.Q5_1: (24, [0, 2]),
    Q.Q2_K: (84, [80, 82]), Q.Q3_K: (110, [108]), Q.Q4_K: (144, [0, 2]),
    Q.Q5_K: (176, [0, 2]), Q.Q6_K: (210, [208]),
}
N_BLOCKS = 10


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(7)
    for t, (bb, scales) in TYPES.items():
        blocks = rng.integers(0, 256, size=(N_BLOCKS, bb), dtype=np.uint8)
        for i in range(N_BLOCKS):
            for k, off in enumerate(scales):
                v = 0.0 if i == 0 else (-1.0 if i == 1 else 1.0) * 10.0 ** rng.uniform(-4, 1)
                blocks[i, off:off + 2] = np.frombuffer(np.float16(v).tobytes(), dtype=np.uint8)
        w = gguf.quants.dequantize(blocks, t).astype("<f4").reshape(-1)
        assert np.all(np.isfinite(w))
        name = t.name.lower()
        blocks.tofile(os.path.join(OUT, name + ".blocks"))
        w.tofile(os.path.join(OUT, name + ".f32"))
        print(f"{name}: {N_BLOCKS} blocks, {w.size} weights")


if __name__ == "__main__":
    main()
