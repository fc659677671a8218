#!/usr/bin/env python3
"""Parity fixtures: seeded random LLaMA GGUF models, float64 reference logits
and llama.cpp's logits, written to tests/data/parity/.

Run:   python3 tools/make_fixtures.py
Needs: pip install numpy gguf llama-cpp-python
       (llama-cpp-python built from source without AMX and without AVX-VNNI:
       see the CMAKE_ARGS in tools/README.md)

Everything is regenerated from scratch (the old NAME.* files, manifest.txt and
README.md in tests/data/parity/ are deleted first); all seeds are fixed, so a
rerun with the same package versions gives the same bytes.

For every model the script writes
  NAME.gguf                 the model (seeded random weights)
  NAME.ref.f64              float64 logits, n_tokens x n_vocab, little-endian,
                            from the numpy forward pass below over the
                            dequantized weights read back from NAME.gguf
  NAME.llama-kvf32.f32      llama.cpp's logits with an F32 KV cache
  NAME.llama-kvf16.f32      llama.cpp's logits with an F16 KV cache
                            (both float32, n_tokens x n_vocab, little-endian,
                            every position, all tokens in one batch from 0)
and one line `NAME N_VOCAB TOKENS` in manifest.txt. tests/parity.rs checks
that nanollama is at least as close to the float64 logits as llama.cpp.

Checks (the script stops if one fails): llama.cpp's argmax equals the float64
one at every position; with F32 weights and an F32 KV cache llama.cpp's KL to
float64 is below 1e-9 (only float32 arithmetic differs); otherwise below 1e-2.
And, as a check of the quantized files and of the reference, the float64 pass
is run again with llama.cpp's own roundings emulated (the input of every weight
matmul rounded to the weight type's vec_dot type: F16 for F16 weights, BF16 for
BF16, Q8_0 blocks for Q8_0; with an F16 KV cache also Q, K, V and the softmax
probabilities rounded to F16): llama.cpp's KL to that must be no larger than
to plain float64. It is usually far smaller (down to ~1e-14); what is left
comes from single roundings that land on the other side of a rounding
boundary because llama.cpp's float32 input differs from float64 in the last
bits (one flipped element of a K row moves every later position).

Token sequences are drawn so that every float64 argmax is clear (top-2 gap of
at least MIN_GAP where a redraw can get it; see make_tokens).
"""
import glob
import importlib.metadata as md
import os
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q

OUT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                    "..", "tests", "data", "parity"))
N_TOKENS = 24
MIN_GAP = 0.25  # least top-2 gap of the float64 logits at any position (if it can)
N_CTX = 64  # llama.context_length in every file, and llama.cpp's n_ctx

# name, dim, layers, heads, kv heads, head_dim, ffn, vocab, tied, rope base,
# rms eps, weight type. "kl" in a name: head_dim is not dim / heads, so the
# file carries llama.attention.key_length / value_length (keeps files small).
MODELS = [
    ("mha-hd64-f32",           128, 2, 2, 2,  64, 128, 256, False,  10000.0, 1e-5, Q.F32),
    ("mqa-hd128-kl-tied-f32",  128, 1, 2, 1, 128, 128, 256, True,  500000.0, 1e-6, Q.F32),
    ("gqa4-hd64-kl-f16",        64, 2, 8, 2,  64, 128, 256, False,  10000.0, 1e-6, Q.F16),
    ("mqa-hd128-tied-f16",     256, 1, 2, 1, 128, 128, 256, True,  500000.0, 1e-5, Q.F16),
    ("mha-hd128-kl-bf16",      128, 2, 2, 2, 128, 128, 256, False, 500000.0, 1e-6, Q.BF16),
    ("gqa4-hd32-tied-bf16",    256, 1, 8, 2,  32, 128, 256, True,   10000.0, 1e-5, Q.BF16),
    ("mqa-hd64-q8_0",          256, 2, 4, 1,  64, 256, 384, False,  10000.0, 1e-5, Q.Q8_0),
    ("gqa4-hd128-kl-q8_0",     128, 1, 8, 2, 128, 256, 256, False, 500000.0, 1e-6, Q.Q8_0),
    ("mha-hd64-tied-q8_0",     256, 1, 4, 4,  64, 128, 320, True,   10000.0, 1e-6, Q.Q8_0),
    # Files quantized by llama.cpp's own quantizer (llama_model_quantize) from
    # a seeded random F32 model, one per file type people download: the type
    # is a llama.cpp ftype name, and the quantizer picks the tensor types
    # (Q4_K_M mixes Q4_K and Q6_K, a "Q4_0" file has a Q6_K output, tensors
    # whose rows are not whole 256-blocks fall back to other types).
    ("gqa4-q4_0",              256, 1, 8, 2,  32, 256, 256, False,  10000.0, 1e-5, "Q4_0"),
    ("mqa-q4_1",               256, 1, 4, 1,  64, 256, 256, False,  10000.0, 1e-5, "Q4_1"),
    ("gqa2-q5_0",              256, 1, 4, 2,  64, 256, 256, True,   10000.0, 1e-6, "Q5_0"),
    ("mha-q5_1",               256, 1, 4, 4,  64, 256, 256, False, 500000.0, 1e-5, "Q5_1"),
    ("gqa2-q2_k",              256, 1, 4, 2,  64, 256, 256, False,  10000.0, 1e-5, "Q2_K"),
    ("mqa-q3_k_m",             256, 1, 4, 1,  64, 256, 256, False,  10000.0, 1e-5, "Q3_K_M"),
    ("gqa4-q4_k_m",            256, 1, 8, 2,  32, 256, 256, False,  10000.0, 1e-6, "Q4_K_M"),
    ("mha-q5_k_m",             256, 1, 2, 2, 128, 256, 256, True,  500000.0, 1e-5, "Q5_K_M"),
    ("gqa2-q6_k",              256, 1, 4, 2,  64, 256, 256, False,  10000.0, 1e-5, "Q6_K"),
    ("gqa2-llq8_0",            256, 1, 4, 2,  64, 256, 256, False,  10000.0, 1e-5, "Q8_0"),
]


def layout(H, KV):
    return "MHA" if H == KV else ("MQA" if KV == 1 else f"GQA {H // KV}:1")


def quantize(a, t):
    a = np.asarray(a, dtype=np.float32)
    if t == Q.F32:
        return a
    if t == Q.F16:
        return a.astype(np.float16)
    return gguf.quants.quantize(a, t)  # raw bytes (uint8) for BF16 and Q8_0


FTYPES = {"Q4_0": 2, "Q4_1": 3, "Q8_0": 7, "Q5_0": 8, "Q5_1": 9, "Q2_K": 10, "Q3_K_M": 12,
          "Q4_K_M": 15, "Q5_K_M": 17, "Q6_K": 18}


def quantize_with_llama_cpp(src, dst, ftype):
    import llama_cpp

    p = llama_cpp.llama_model_quantize_default_params()
    p.ftype = FTYPES[ftype]
    p.nthread = 2
    rc = llama_cpp.llama_model_quantize(src.encode(), dst.encode(), p)
    assert rc == 0, f"llama_model_quantize {ftype} failed ({rc})"


def write_model(path, spec, seed):
    name, dim, L, H, KV, hd, ffn, V, tied, base, eps, t = spec
    if isinstance(t, str):  # llama.cpp quantizes an F32 model
        src = path + ".f32.tmp"
        write_model(src, spec[:-1] + (Q.F32,), seed)
        quantize_with_llama_cpp(src, path, t)
        os.remove(src)
        return
    rng = np.random.default_rng(seed)
    w = gguf.GGUFWriter(path, "llama")  # general.architecture = llama
    w.add_name(name)
    w.add_uint32("general.file_type", {Q.F32: 0, Q.F16: 1, Q.Q8_0: 7, Q.BF16: 32}[t])
    w.add_uint32("llama.context_length", N_CTX)
    w.add_uint32("llama.embedding_length", dim)
    w.add_uint32("llama.block_count", L)
    w.add_uint32("llama.feed_forward_length", ffn)
    w.add_uint32("llama.attention.head_count", H)
    w.add_uint32("llama.attention.head_count_kv", KV)
    w.add_float32("llama.attention.layer_norm_rms_epsilon", eps)
    w.add_float32("llama.rope.freq_base", base)
    w.add_uint32("llama.rope.dimension_count", hd)
    if hd * H != dim:
        w.add_uint32("llama.attention.key_length", hd)
        w.add_uint32("llama.attention.value_length", hd)
    # llama.cpp will not load a model without a vocabulary; a SentencePiece
    # ("llama") one with <unk>, <s>, </s>, the byte piece <0x0A> (without it
    # llama.cpp warns that it has no newline token) and plain pieces is enough.
    toks = [b"<unk>", b"<s>", b"</s>", b"<0x0A>"] + [f"<t{i}>".encode() for i in range(4, V)]
    w.add_tokenizer_model("llama")
    w.add_token_list(toks)
    w.add_token_scores([0.0] * 4 + [-float(i) for i in range(4, V)])
    w.add_token_types([2, 3, 3, 6] + [1] * (V - 4))  # unknown, control x2, byte, normal
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)

    def add(tname, a):
        if a.dtype == np.uint8:
            w.add_tensor(tname, a, raw_dtype=t)
        else:
            w.add_tensor(tname, a)

    def mat(rows, cols, scale):  # numpy (rows, cols) = GGUF ne (cols, rows)
        return quantize(rng.standard_normal((rows, cols)) * scale, t)

    def norm():  # 1-D norm weights are always F32
        return (1.0 + 0.1 * rng.standard_normal(dim)).astype(np.float32)

    # A tied table is also the output matrix: keep its logits moderate.
    add("token_embd.weight", mat(V, dim, 2.0 / np.sqrt(dim) if tied else 1.0))
    for l in range(L):
        p = f"blk.{l}."
        add(p + "attn_norm.weight", norm())
        add(p + "attn_q.weight", mat(H * hd, dim, 1.2 / np.sqrt(dim)))
        add(p + "attn_k.weight", mat(KV * hd, dim, 1.2 / np.sqrt(dim)))
        add(p + "attn_v.weight", mat(KV * hd, dim, 1.0 / np.sqrt(dim)))
        add(p + "attn_output.weight", mat(dim, H * hd, 1.0 / np.sqrt(H * hd)))
        add(p + "ffn_norm.weight", norm())
        add(p + "ffn_gate.weight", mat(ffn, dim, 1.0 / np.sqrt(dim)))
        add(p + "ffn_up.weight", mat(ffn, dim, 1.0 / np.sqrt(dim)))
        add(p + "ffn_down.weight", mat(dim, ffn, 1.0 / np.sqrt(ffn)))
    add("output_norm.weight", norm())
    if not tied:
        add("output.weight", mat(V, dim, 2.0 / np.sqrt(dim)))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def load_f64(path):
    """Every tensor of the file, dequantized to float64, numpy (rows, cols),
    and every tensor's type."""
    r = gguf.GGUFReader(path)
    out, types, mins = {}, {}, {}
    for t in r.tensors:
        a = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float64)
        shape = tuple(int(d) for d in reversed(t.shape.tolist()))
        out[t.name] = a.reshape(shape)
        types[t.name] = Q(int(t.tensor_type))
        if types[t.name] in (Q.Q4_1, Q.Q5_1):  # keep each block's minimum m
            bs = 20 if types[t.name] == Q.Q4_1 else 24
            raw = np.ascontiguousarray(np.asarray(t.data, dtype=np.uint8)).reshape(-1, bs)
            mins[t.name] = raw[:, 2:4].copy().view(np.float16).astype(np.float64).reshape(shape[0], -1)
    out["types"] = types
    out["mins"] = mins
    return out


def ident(x):
    return x


def to_f16(x):
    return x.astype(np.float32).astype(np.float16).astype(np.float64)


def q8_k(x):
    """llama.cpp's Q8_K activation rounding (blocks of 256: the element of
    largest magnitude maps to -127 (sic: iscale = -127 / max keeps its sign),
    d = 1 / iscale stored as f32)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    b = x.reshape(-1, 256)
    idx = np.abs(b).argmax(axis=1)
    mx = b[np.arange(len(b)), idx][:, None]
    safe = np.where(mx == 0, np.float32(1), mx)
    iscale = np.where(mx == 0, np.float32(0), np.float32(-127.0) / safe).astype(np.float32)
    q = np.minimum(np.rint(iscale * b), 127)
    d = np.where(iscale == 0, np.float32(0), np.float32(1) / np.where(iscale == 0, 1, iscale))
    return (q * d.astype(np.float32)).astype(np.float64).reshape(x.shape)


def rounder(t):
    """llama.cpp's rounding of a matmul input for weights of type t: the
    input takes the weights' vec_dot type (F16, BF16, Q8_0 blocks for
    Q8_0/Q4_0/Q5_0, Q8_1 (the same rounding as Q8_0) for Q4_1/Q5_1, Q8_K for
    the K-quants)."""
    if t == Q.F32:
        return ident
    if t == Q.F16:
        return to_f16
    if t in (Q.Q2_K, Q.Q3_K, Q.Q4_K, Q.Q5_K, Q.Q6_K):
        return q8_k
    vt = Q.Q8_0 if t in (Q.Q8_0, Q.Q4_0, Q.Q5_0, Q.Q4_1, Q.Q5_1) else t

    def r(x):
        x32 = np.ascontiguousarray(x, dtype=np.float32)
        return gguf.quants.dequantize(gguf.quants.quantize(x32, vt), vt).astype(np.float64)
    return r


def q8_1_parts(x):
    """llama.cpp's Q8_1 blocks of x (x86 rounding, as Q8_0's): the rounded
    values d16 * q, the stored sums s = f16(d32 * sum(q)) (d32 = max|x| / 127
    before its own rounding to f16), and d16 * sum(q)."""
    x32 = np.ascontiguousarray(x, dtype=np.float32)
    b = x32.reshape(*x32.shape[:-1], -1, 32)
    amax = np.abs(b).max(axis=-1)
    d32 = (amax / np.float32(127)).astype(np.float32)
    iscale = np.where(amax != 0, np.float32(127) / np.where(amax != 0, amax, 1), 0).astype(np.float32)
    q = np.rint(b * iscale[..., None])
    d16 = d32.astype(np.float16).astype(np.float64)
    sq = q.sum(axis=-1)
    s = (d32 * sq.astype(np.float32)).astype(np.float32).astype(np.float16).astype(np.float64)
    return (q * d16[..., None]).reshape(x.shape), s, d16 * sq


def per_tensor(W):
    """Each weight matmul with llama.cpp's rounding of its input for the
    weight's own type. Q4_1 and Q5_1 weights w = d * q + m meet Q8_1 blocks,
    whose minimum term uses the block's stored sum s instead of the sum of
    its rounded values."""
    def product(x, wname):
        t = W["types"][wname]
        if t in (Q.Q4_1, Q.Q5_1):
            xr, s, dsq = q8_1_parts(x)
            return xr @ W[wname].T + (s - dsq) @ W["mins"][wname].T
        return rounder(t)(x) @ W[wname].T
    return product


def reference(W, spec, tokens, act=None, kv=ident):
    """The LLaMA forward pass in float64 (llama.cpp's rope convention for GGUF
    llama weights, LLAMA_ROPE_TYPE_NORM: within each head, adjacent pairs
    (2i, 2i+1) rotate by pos * base^(-2i/head_dim)).

    act (None: plain products) and kv (identity) for the reference; per_tensor(W)
    and to_f16 emulate llama.cpp's roundings (weight-matmul inputs, F16 KV
    cache)."""
    name, dim, L, H, KV, hd, ffn, V, tied, base, eps, t = spec
    n = len(tokens)

    def rms(x, w):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w

    def mm(x, wname):  # x @ W^T, W numpy (n_out, n_in)
        return act(x, wname) if act else x @ W[wname].T

    pos = np.arange(n, dtype=np.float64)
    freqs = base ** (-np.arange(0, hd, 2, dtype=np.float64) / hd)
    ang = pos[:, None] * freqs[None, :]
    cos, sin = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]

    def rope(x):  # x: (n, heads, hd)
        x0, x1 = x[..., 0::2], x[..., 1::2]
        y = np.empty_like(x)
        y[..., 0::2] = x0 * cos - x1 * sin
        y[..., 1::2] = x0 * sin + x1 * cos
        return y

    x = W["token_embd.weight"][tokens]
    mask = np.triu(np.full((n, n), -np.inf), 1)
    g = H // KV
    for l in range(L):
        p = f"blk.{l}."
        h = rms(x, W[p + "attn_norm.weight"])
        q = kv(rope(mm(h, p + "attn_q.weight").reshape(n, H, hd)))
        k = kv(rope(mm(h, p + "attn_k.weight").reshape(n, KV, hd)))
        v = kv(mm(h, p + "attn_v.weight").reshape(n, KV, hd))
        out = np.empty((n, H, hd))
        for hh in range(H):
            j = hh // g
            s = q[:, hh, :] @ k[:, j, :].T / np.sqrt(hd) + mask
            s = np.exp(s - s.max(axis=1, keepdims=True))
            s /= s.sum(axis=1, keepdims=True)
            out[:, hh, :] = kv(s) @ v[:, j, :]
        x = x + mm(out.reshape(n, H * hd), p + "attn_output.weight")
        h = rms(x, W[p + "ffn_norm.weight"])
        gt = mm(h, p + "ffn_gate.weight")
        up = mm(h, p + "ffn_up.weight")
        x = x + mm(gt / (1.0 + np.exp(-gt)) * up, p + "ffn_down.weight")
    x = rms(x, W["output_norm.weight"])
    return mm(x, "token_embd.weight" if tied else "output.weight")


def llama_logits(path, tokens, kv_type):
    import llama_cpp

    llm = llama_cpp.Llama(
        model_path=path, n_ctx=N_CTX, n_batch=N_CTX, n_ubatch=N_CTX, logits_all=True,
        n_threads=2, n_threads_batch=2, type_k=kv_type, type_v=kv_type,
        flash_attn=False, seed=1, verbose=False,
    )
    assert llm.n_vocab() == len(llm.scores[0])
    llm.eval(tokens)  # one batch (n_batch >= n_tokens), positions 0..n-1
    assert llm.n_tokens == len(tokens)
    out = np.array(llm.scores[: len(tokens)], dtype=np.float32)
    llm.close()
    return out


def kl(ref, test):
    """Mean over positions of KL(softmax(ref) || softmax(test))."""
    def logsm(z):
        z = z - z.max(axis=1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    lr, lt = logsm(np.asarray(ref, np.float64)), logsm(np.asarray(test, np.float64))
    return float(np.mean(np.sum(np.exp(lr) * (lr - lt), axis=1)))


def make_tokens(i, spec, W):
    """A seeded random sequence in [0, n_vocab) with repeats (position 7
    repeats position 3, 12 repeats 11, 20 repeats 3), drawn so that every
    position's float64 argmax is clear: a draw whose top-2 logit gap is below
    MIN_GAP is redrawn (for a repeat position: another earlier token), up to
    32 times, keeping the best."""
    V = spec[7]
    rng = np.random.default_rng(2000 + i)
    repeat = {7: 3, 12: 11, 20: 3}
    tokens = []
    for p in range(N_TOKENS):
        if p in repeat:
            earlier = [tokens[repeat[p]]] + [int(t) for t in rng.permutation(tokens)]
            cands = list(dict.fromkeys(earlier))[:32]
        else:
            cands = [int(t) for t in rng.integers(0, V, 32)]
        best = (-1.0, None)
        for c in cands:
            row = reference(W, spec, tokens + [c])[p]
            top2 = np.sort(row)[-2:]
            best = max(best, (float(top2[1] - top2[0]), c), key=lambda b: b[0])
            if best[0] >= MIN_GAP:
                break
        tokens.append(best[1])
    return tokens


def main():
    import llama_cpp

    v_llama = md.version("llama_cpp_python")
    v_gguf = md.version("gguf")
    os.makedirs(OUT, exist_ok=True)
    for f in (glob.glob(os.path.join(OUT, "*.gguf")) + glob.glob(os.path.join(OUT, "*.f64"))
              + glob.glob(os.path.join(OUT, "*.f32"))
              + [os.path.join(OUT, "manifest.txt"), os.path.join(OUT, "README.md")]):
        if os.path.exists(f):
            os.remove(f)

    lines = [
        "# NAME N_VOCAB TOKENS (comma-separated ids, evaluated in one batch from position 0). "
        f"Made by tools/make_fixtures.py with llama-cpp-python {v_llama}, gguf {v_gguf}, "
        f"numpy {np.__version__}: NAME.gguf seeded random weights, NAME.ref.f64 float64 logits "
        "(n_tokens x n_vocab, LE), NAME.llama-kvf32.f32 / NAME.llama-kvf16.f32 llama.cpp logits "
        "with F32 / F16 KV cache (float32, n_tokens x n_vocab, LE). See README.md here.",
    ]
    table = []
    bad = []
    for i, spec in enumerate(MODELS):
        name, dim, L, H, KV, hd, ffn, V, tied, base, eps, t = spec
        assert H % KV == 0 and dim % 32 == 0 and ffn % 32 == 0 and hd % 32 == 0
        assert isinstance(t, str) or t in (Q.F32, Q.F16, Q.BF16, Q.Q8_0)
        path = os.path.join(OUT, name + ".gguf")
        write_model(path, spec, seed=1000 + i)
        W = load_f64(path)
        tokens = make_tokens(i, spec, W)
        ref = reference(W, spec, tokens)
        ref.astype("<f8").tofile(os.path.join(OUT, name + ".ref.f64"))
        top2 = np.sort(ref, axis=1)[:, -2:]
        margin = float(np.min(top2[:, 1] - top2[:, 0]))
        row = {"margin": margin, "std": float(ref.std(axis=1).mean())}
        counts = {}
        for wt in W["types"].values():
            if wt != Q.F32 or t == Q.F32:  # norms are always F32
                counts[wt.name] = counts.get(wt.name, 0) + 1
        row["types"] = (t if isinstance(t, str) else t.name) + (
            " (" + ", ".join(f"{k} x{v}" for k, v in sorted(counts.items())) + ")"
            if isinstance(t, str) else "")
        for tag, kvt in (("f32", 0), ("f16", 1)):
            ll = llama_logits(path, tokens, kvt)
            assert ll.shape == (N_TOKENS, V) and np.all(np.isfinite(ll))
            ll.astype("<f4").tofile(os.path.join(OUT, f"{name}.llama-kv{tag}.f32"))
            emu = reference(W, spec, tokens, act=per_tensor(W), kv=to_f16 if tag == "f16" else ident)
            agree = int((ll.argmax(1) == ref.argmax(1)).sum())
            row[tag] = (kl(ref, ll), agree, kl(emu, ll))
            exact = t == Q.F32 and tag == "f32"  # no rounding but float32's
            if (agree != N_TOKENS or row[tag][0] > (1e-9 if exact else 1e-2)
                    or row[tag][2] > max(1e-9, row[tag][0])):
                bad.append(f"{name} kv{tag}: {row[tag]}")
        table.append((spec, row))
        lines.append(f"{name} {V} {','.join(map(str, tokens))}")
        print(f"{name}: KL(f64||llama) kvf32 {row['f32'][0]:.3e} kvf16 {row['f16'][0]:.3e}; "
              f"argmax {row['f32'][1]}/{N_TOKENS} {row['f16'][1]}/{N_TOKENS}; "
              f"KL(emulated||llama) {row['f32'][2]:.1e} {row['f16'][2]:.1e}; "
              f"min top-2 gap {margin:.3f}, logit std {row['std']:.2f}", flush=True)
    if bad:
        sys.exit("llama.cpp disagrees with the reference:\n" + "\n".join(bad))

    with open(os.path.join(OUT, "manifest.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    size = lambda n: os.path.getsize(os.path.join(OUT, n))  # noqa: E731
    with open(os.path.join(OUT, "README.md"), "w") as f:
        f.write(f"""# Parity fixtures

Regenerate (deletes and rewrites everything here): `python3 tools/make_fixtures.py`
(needs `pip install numpy gguf llama-cpp-python`; see tools/README.md for how
llama-cpp-python is built). Made with llama-cpp-python {v_llama}, gguf {v_gguf},
numpy {np.__version__}; checked by `tests/parity.rs`. Seeded random weights, so
they carry no licence beyond the project's.

Per model `NAME`:

- `NAME.gguf`: `general.architecture = llama`, seeded random weights (embeddings
  N(0,1), or N(0, 4/dim) when tied; matrices N(0, ~1/fan_in); norm weights
  1 + 0.1 N(0,1)). 1-D norm tensors are F32, every 2-D tensor (token_embd and
  output included) is in the model's type. A SentencePiece-style vocabulary
  (`tokenizer.ggml.model = llama`, `<unk>`, `<s>`, `</s>`, `<tN>`) is there
  only because llama.cpp will not load a model without one.
- `NAME.ref.f64`: float64 logits, n_tokens x n_vocab, little-endian, from an
  independent numpy forward pass over the dequantized weights of the file
  (rope: adjacent pairs (2i, 2i+1) of each head rotated by
  pos * base^(-2i/head_dim), llama.cpp's LLAMA_ROPE_TYPE_NORM).
- `NAME.llama-kvf32.f32`, `NAME.llama-kvf16.f32`: llama.cpp's logits (float32,
  n_tokens x n_vocab, little-endian) with an F32 and an F16 KV cache, all
  {N_TOKENS} tokens in one batch from position 0, 2 threads, no flash attention.
- `manifest.txt`: `NAME N_VOCAB TOKENS` per model.

"kl" in a name: head_dim != dim / heads, so the file has
`llama.attention.key_length` / `value_length`.

| model | layout | dim | layers | heads | kv heads | head_dim | ffn | vocab | tied | rope base | rms eps | type (tensors per type) | gguf bytes |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
""")
        for spec, row in table:
            name, dim, L, H, KV, hd, ffn, V, tied, base, eps, t = spec
            f.write(f"| {name} | {layout(H, KV)} | {dim} | {L} | {H} | {KV} | {hd} | {ffn} | {V} "
                    f"| {'yes' if tied else 'no'} | {base:g} | {eps:g} | {row['types']} | {size(name + '.gguf')} |\n")
        f.write("""
## llama.cpp against float64

KL is the mean over positions of KL(softmax(float64) || softmax(llama.cpp)).
"emulated" is the same against a float64 pass that applies llama.cpp's own
roundings (every weight-matmul input rounded to F16 / BF16 / Q8_0 blocks for
F16 / BF16 / Q8_0 weights; with the F16 cache also Q, K, V and the softmax
probabilities rounded to F16). It is far below the plain KL, down to float32
noise (~1e-13) where no rounding flips: so llama.cpp's distance from float64
comes from those roundings, and the files and the reference agree. What is
left is single roundings that fall the other way because llama.cpp's float32
value differs from float64 in the last bits (checked with llama.cpp's eval
callback: one flipped F16 element of one K row moves every later position).
An implementation with exactly llama.cpp's roundings can therefore still land
a little above or below llama.cpp's KL (by up to ~1e-5 for Q8_0 weights).
Argmax: positions where llama.cpp's argmax equals the float64 one. Gap: the
least top-2 gap of the float64 logits over the positions.

| model | KL, KV F32 | KL, KV F16 | argmax F32 / F16 | emulated KL, KV F32 | emulated KL, KV F16 | min top-2 gap (f64) |
| --- | --- | --- | --- | --- | --- | --- |
""")
        for spec, row in table:
            a, b = row["f32"], row["f16"]
            f.write(f"| {spec[0]} | {a[0]:.3e} | {b[0]:.3e} | {a[1]}/{N_TOKENS} / {b[1]}/{N_TOKENS} "
                    f"| {a[2]:.1e} | {b[2]:.1e} | {row['margin']:.3f} |\n")
    total = sum(os.path.getsize(p) for p in glob.glob(os.path.join(OUT, "*")))
    print(f"wrote {len(MODELS)} models to {OUT}, {total} bytes")


if __name__ == "__main__":
    main()
