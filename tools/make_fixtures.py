#!/usr/bin/env python3
"""Parity fixtures: seeded random LLaMA GGUF models, float64 reference logits
and llama.cpp's logits, written to tests/data/parity/.

Run:   python3 tools/make_fixtures.py
Needs: pip install numpy gguf llama-cpp-python   (llama-cpp-python built with
       CMAKE_ARGS as in the README of tools/, AMX off: see tools/README.md)

For every model the script writes
  NAME.gguf                 the model (seeded random weights)
  NAME.ref.f64              float64 logits, n_tokens x n_vocab, little-endian,
                            from the numpy forward pass below over the
                            dequantized weights read back from NAME.gguf
  NAME.llama-kvf32.f32      llama.cpp's logits with an F32 KV cache
  NAME.llama-kvf16.f32      llama.cpp's logits with an F16 KV cache
and one line `NAME N_VOCAB TOKENS` in manifest.txt. tests/parity.rs checks
that nanollama is at least as close to the float64 logits as llama.cpp.
"""
import os
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "parity")
N_TOKENS = 20

# name, dim, layers, heads, kv heads, head_dim, ffn, vocab, tied, rope base,
# eps, type. A head_dim other than dim/heads is written as
# llama.attention.key_length/value_length (keeps the files small).
MODELS = [
    ("mha-hd64-f32", 128, 2, 2, 2, 64, 256, 384, False, 10000.0, 1e-5, Q.F32),
    ("gqa4-hd32-f32", 256, 1, 8, 2, 32, 256, 256, False, 500000.0, 1e-5, Q.F32),
    ("gqa4-hd64-kl-f16", 128, 2, 8, 2, 64, 256, 256, False, 10000.0, 1e-6, Q.F16),
    ("mqa-hd128-tied-f16", 256, 2, 2, 1, 128, 384, 320, True, 10000.0, 1e-5, Q.F16),
    ("mha-hd128-bf16", 256, 2, 2, 2, 128, 256, 320, False, 500000.0, 1e-6, Q.BF16),
    ("gqa4-hd32-tied-bf16", 256, 1, 8, 2, 32, 256, 256, True, 10000.0, 1e-5, Q.BF16),
    ("mqa-hd64-q8_0", 256, 2, 4, 1, 64, 512, 384, False, 10000.0, 1e-5, Q.Q8_0),
    ("gqa4-hd128-kl-q8_0", 256, 1, 8, 2, 128, 256, 256, False, 500000.0, 1e-6, Q.Q8_0),
    ("mha-hd64-tied-q8_0", 256, 2, 4, 4, 64, 384, 320, True, 10000.0, 1e-6, Q.Q8_0),
]


def quantize(a, t):
    if t == Q.F32:
        return a.astype(np.float32)
    if t == Q.F16:
        return a.astype(np.float16)
    return gguf.quants.quantize(a.astype(np.float32), t)


def write_model(path, spec, seed):
    name, dim, L, H, KV, hd, ffn, V, tied, base, eps, t = spec
    rng = np.random.default_rng(seed)
    w = gguf.GGUFWriter(path, "llama")
    w.add_uint32("llama.embedding_length", dim)
    w.add_uint32("llama.block_count", L)
    w.add_uint32("llama.feed_forward_length", ffn)
    w.add_uint32("llama.attention.head_count", H)
    w.add_uint32("llama.attention.head_count_kv", KV)
    w.add_float32("llama.attention.layer_norm_rms_epsilon", eps)
    w.add_float32("llama.rope.freq_base", base)
    w.add_uint32("llama.rope.dimension_count", hd)
    if hd != dim // H:
        w.add_uint32("llama.attention.key_length", hd)
        w.add_uint32("llama.attention.value_length", hd)
    w.add_uint32("llama.context_length", 64)
    # llama.cpp will not load a model without a vocabulary.
    w.add_tokenizer_model("llama")
    w.add_token_list([f"<t{i}>".encode() for i in range(V)])
    w.add_token_scores([0.0] * V)
    w.add_token_types([1] * V)

    def mat(rows, cols, scale):
        return quantize(rng.standard_normal((rows, cols)) * scale, t)

    def norm():
        return (1.0 + 0.1 * rng.standard_normal(dim)).astype(np.float32)

    def add(name, a):
        # gguf.quants.quantize returns BF16 and Q8_0 data as raw bytes.
        if a.dtype == np.uint8:
            w.add_tensor(name, a, raw_dtype=t)
        else:
            w.add_tensor(name, a)

    # A tied table is also the output matrix: keep its logits moderate.
    add("token_embd.weight", mat(V, dim, 2.0 / np.sqrt(dim) if tied else 1.0))
    for l in range(L):
        add(f"blk.{l}.attn_norm.weight", norm())
        add(f"blk.{l}.attn_q.weight", mat(H * hd, dim, 1.2 / np.sqrt(dim)))
        add(f"blk.{l}.attn_k.weight", mat(KV * hd, dim, 1.2 / np.sqrt(dim)))
        add(f"blk.{l}.attn_v.weight", mat(KV * hd, dim, 1.0 / np.sqrt(dim)))
        add(f"blk.{l}.attn_output.weight", mat(dim, H * hd, 1.0 / np.sqrt(H * hd)))
        add(f"blk.{l}.ffn_norm.weight", norm())
        add(f"blk.{l}.ffn_gate.weight", mat(ffn, dim, 1.0 / np.sqrt(dim)))
        add(f"blk.{l}.ffn_up.weight", mat(ffn, dim, 1.0 / np.sqrt(dim)))
        add(f"blk.{l}.ffn_down.weight", mat(dim, ffn, 1.0 / np.sqrt(ffn)))
    add("output_norm.weight", norm())
    if not tied:
        add("output.weight", mat(V, dim, 2.0 / np.sqrt(dim)))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def load_f64(path):
    """Every tensor of the file, dequantized to float64, numpy (rows, cols)."""
    r = gguf.GGUFReader(path)
    out = {}
    for t in r.tensors:
        a = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float64)
        shape = tuple(int(d) for d in reversed(t.shape.tolist()))
        out[t.name] = a.reshape(shape)
    return out


def reference(W, spec, tokens):
    """The LLaMA forward pass in float64 (llama.cpp's rope convention for GGUF
    llama weights: adjacent pairs (2i, 2i+1) rotate by pos * base^(-2i/hd))."""
    name, dim, L, H, KV, hd, ffn, V, tied, base, eps, t = spec
    n = len(tokens)

    def rms(x, w):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w

    pos = np.arange(n, dtype=np.float64)
    freqs = base ** (-np.arange(0, hd, 2, dtype=np.float64) / hd)
    ang = pos[:, None] * freqs[None, :]
    cos, sin = np.cos(ang), np.sin(ang)

    def rope(x):  # x: (n, heads, hd)
        x0, x1 = x[..., 0::2], x[..., 1::2]
        c, s = cos[:, None, :], sin[:, None, :]
        y = np.empty_like(x)
        y[..., 0::2] = x0 * c - x1 * s
        y[..., 1::2] = x0 * s + x1 * c
        return y

    x = W["token_embd.weight"][tokens]
    mask = np.triu(np.full((n, n), -np.inf), 1)
    for l in range(L):
        p = f"blk.{l}."
        h = rms(x, W[p + "attn_norm.weight"])
        q = rope((h @ W[p + "attn_q.weight"].T).reshape(n, H, hd))
        k = rope((h @ W[p + "attn_k.weight"].T).reshape(n, KV, hd))
        v = (h @ W[p + "attn_v.weight"].T).reshape(n, KV, hd)
        g = H // KV
        out = np.empty((n, H, hd))
        for hh in range(H):
            kv = hh // g
            s = q[:, hh, :] @ k[:, kv, :].T / np.sqrt(hd) + mask
            s = np.exp(s - s.max(axis=1, keepdims=True))
            s /= s.sum(axis=1, keepdims=True)
            out[:, hh, :] = s @ v[:, kv, :]
        x = x + out.reshape(n, H * hd) @ W[p + "attn_output.weight"].T
        h = rms(x, W[p + "ffn_norm.weight"])
        gt = h @ W[p + "ffn_gate.weight"].T
        up = h @ W[p + "ffn_up.weight"].T
        x = x + (gt / (1 + np.exp(-gt)) * up) @ W[p + "ffn_down.weight"].T
    x = rms(x, W["output_norm.weight"])
    out_w = W["token_embd.weight"] if tied else W["output.weight"]
    return x @ out_w.T


def llama_logits(path, tokens, kv_type):
    import llama_cpp

    llm = llama_cpp.Llama(
        model_path=path, n_ctx=64, n_batch=64, n_ubatch=64, logits_all=True,
        n_threads=2, type_k=kv_type, type_v=kv_type, verbose=False,
    )
    llm.eval(tokens)
    out = np.array(llm.scores[: len(tokens)], dtype=np.float32)
    llm.close()
    return out


def kl(ref, test):
    def logsm(z):
        z = z - z.max(axis=1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    lr, lt = logsm(ref), logsm(test.astype(np.float64))
    return float(np.mean(np.sum(np.exp(lr) * (lr - lt), axis=1)))


def main():
    import llama_cpp

    os.makedirs(OUT, exist_ok=True)
    lines = [
        "# NAME N_VOCAB TOKENS -- made by tools/make_fixtures.py with gguf "
        f"{getattr(gguf, '__version__', '?')} and llama-cpp-python {llama_cpp.__version__}; "
        "see README.md here",
    ]
    table = []
    for i, spec in enumerate(MODELS):
        name, V = spec[0], spec[7]
        path = os.path.join(OUT, name + ".gguf")
        write_model(path, spec, seed=1000 + i)
        rng = np.random.default_rng(2000 + i)
        tokens = [int(t) for t in rng.integers(0, V, N_TOKENS)]
        tokens[7] = tokens[3]  # a repeated token
        ref = reference(load_f64(path), spec, tokens)
        ref.astype("<f8").tofile(os.path.join(OUT, name + ".ref.f64"))
        row = [name]
        for tag, kvt in (("f32", 0), ("f16", 1)):
            ll = llama_logits(path, tokens, kvt)
            ll.astype("<f4").tofile(os.path.join(OUT, f"{name}.llama-kv{tag}.f32"))
            agree = int((ll.argmax(1) == ref.argmax(1)).sum())
            row += [kl(ref, ll), agree]
        table.append((spec, row))
        lines.append(f"{name} {V} {','.join(map(str, tokens))}")
        print(f"{name}: KL llama kvf32 {row[1]:.3e} (argmax {row[2]}/{N_TOKENS}), "
              f"kvf16 {row[3]:.3e} (argmax {row[4]}/{N_TOKENS})", flush=True)
    with open(os.path.join(OUT, "manifest.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(OUT, "README.md"), "w") as f:
        f.write("# Parity fixtures\n\nMade by `python3 tools/make_fixtures.py` "
                f"(gguf, numpy, llama-cpp-python {llama_cpp.__version__}); checked by "
                "`tests/parity.rs`. Seeded random weights, so they carry no licence "
                "beyond the project's.\n\n"
                "| model | dim | layers | heads | kv heads | head_dim | ffn | vocab | tied | rope base | eps | type "
                "| llama.cpp KL (KV f32) | llama.cpp KL (KV f16) |\n"
                "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
        for spec, row in table:
            name, dim, L, H, KV, hd, ffn, V, tied, base, eps, t = spec
            f.write(f"| {name} | {dim} | {L} | {H} | {KV} | {hd} | {ffn} | {V} | {'yes' if tied else 'no'} "
                    f"| {base:g} | {eps:g} | {t.name} | {row[1]:.3e} | {row[3]:.3e} |\n")
        f.write(f"\n{N_TOKENS} positions per model, all in one batch from position 0. KL is the mean over "
                "positions of KL(softmax(float64) || softmax(llama.cpp)).\n")


if __name__ == "__main__":
    sys.exit(main())
