#!/usr/bin/env python3
"""Parity fixtures for RoPE as the file says and for the qwen2 architecture:
seeded random GGUF models with `rope_freqs` factors, linear and YaRN scaling,
the optional LLaMA biases, and a `qwen2` model with Q/K/V biases (written
here in F32 and quantized by llama.cpp), each with float64 reference logits
and llama.cpp's logits, written to tests/data/rope/.

Run:   python3 tools/make_rope_fixtures.py
Needs: pip install numpy gguf llama-cpp-python (see tools/README.md)

Everything in tests/data/rope/ is regenerated; all seeds are fixed.

Every model has a 512-position context, and its N_TOKENS = 512 seeded random
tokens are evaluated in one batch from position 0, so that the scaled models
run far past their `rope.scaling.original_context_length` (128). To keep the
files small only the logits of the rows in ROWS are stored:
  NAME.gguf                 the model
  NAME.ref.f64              float64 logits, len(ROWS) x n_vocab, little-endian,
                            from the numpy forward pass below over the
                            dequantized weights read back from NAME.gguf
  NAME.llama-kvf32.f32      llama.cpp's logits of those rows, F32 KV cache
  NAME.llama-kvf16.f32      the same with an F16 KV cache
and `manifest.txt`: a header line `# rows ROW,ROW,...`, then
`NAME N_VOCAB TOKENS` per model. tests/rope_parity.rs checks that nanollama
is at least as close to the float64 logits as llama.cpp.

llama.cpp is run with its YaRN parameters "from the model" (-1; the Python
wrapper's own defaults of 1, 32 and 1 would override the file's).

The float64 reference is written from ggml's definition of RoPE (ops.cpp,
rope_yarn): for pair i of the rotated dimensions (n_rot of them),
  theta_extrap = pos * base^(-2i/n_rot) / freq_factor[i]
  theta_interp = freq_scale * theta_extrap          (freq_scale = 1/factor)
  with YaRN (ext_factor != 0):
    ramp  = (1 - clamp((i - low) / max(0.001, high - low), 0, 1)) * ext_factor
    theta = theta_interp * (1 - ramp) + theta_extrap * ramp
    mscale = attn_factor * (1 + 0.1 ln(factor)) if factor > 1, else attn_factor
    (ggml multiplies by 1 + 0.1 ln(1 / freq_scale), and llama.cpp's context
    divides that back out of the factor it passes for factor <= 1)
  else theta = theta_interp, mscale = attn_factor
  (attn_factor is rope.scaling.attn_factor, default 1, in every mode; a
  missing rope.scaling.type with a factor means linear, `none` ignores the
  factor)
  (low, high) = floor/ceil of n_rot ln(n_orig / (beta * 2 pi)) / (2 ln base)
  for beta_fast and beta_slow, clamped to [0, n_rot - 1];
  x' = (x0 cos - x1 sin, x0 sin + x1 cos) * mscale, with (x0, x1) the
  adjacent dimensions (2i, 2i+1) for llama and (i, i + n_rot/2) for qwen2
  (NEOX).
"""
import glob
import importlib.metadata as md
import os
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import (  # noqa: E402
    FTYPES, ident, kl, load_f64, per_tensor, quantize, to_f16)

OUT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                    "..", "tests", "data", "rope"))
N_CTX = 512
N_TOKENS = 512
N_ORIG = 128
ROWS = sorted(set(range(0, 4)) | set(range(15, N_TOKENS, 16)) | {N_TOKENS - 2})

# LLaMA 3.1's rope_freqs rule (factor 8, low 1, high 4, original context
# 8192) on a head of 32 dimensions with base 500000 and the original context
# scaled down to N_ORIG, so that the three regions (1, smooth, factor) all
# occur.
def llama3_freqs(hd, base, factor=8.0, low=1.0, high=4.0, orig=N_ORIG):
    out = []
    for i in range(hd // 2):
        freq = base ** (-2.0 * i / hd)
        wavelen = 2 * np.pi / freq
        if wavelen < orig / high:
            out.append(1.0)
        elif wavelen > orig / low:
            out.append(factor)
        else:
            smooth = (orig / wavelen - low) / (high - low)
            out.append(1.0 / ((1 - smooth) / factor + smooth))
    return np.array(out, dtype=np.float32)


LLAMA_BIASES = ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"]

# name, arch, dim, layers, heads, kv heads, head_dim, ffn, vocab, tied, base,
# eps, type, extras: rope (dict of metadata after `{arch}.rope.scaling.`),
# freqs (rope_freqs factors), biases (block tensor kinds with a .bias),
# output_bias (qwen2's optional output.bias).
MODELS = [
    ("llama-rope-freqs-f32", "llama", 64, 1, 2, 1, 32, 128, 256, False, 500000.0, 1e-5, Q.F32,
     dict(freqs=True)),
    ("llama-rope-linear-f32", "llama", 64, 1, 2, 2, 32, 128, 256, False, 10000.0, 1e-5, Q.F32,
     dict(rope={"type": "linear", "factor": 4.0, "original_context_length": N_ORIG})),
    ("llama-rope-yarn-f32", "llama", 64, 1, 2, 1, 32, 128, 256, True, 10000.0, 1e-6, Q.F32,
     dict(rope={"type": "yarn", "factor": 4.0, "original_context_length": N_ORIG})),
    ("llama-biases-f16", "llama", 64, 2, 2, 1, 32, 128, 256, False, 10000.0, 1e-5, Q.F16,
     dict(biases=LLAMA_BIASES)),
    ("qwen2-f32", "qwen2", 64, 2, 2, 1, 32, 64, 256, True, 1000000.0, 1e-6, Q.F32,
     dict(biases=["attn_q", "attn_k", "attn_v"])),
    ("qwen2-yarn-f32", "qwen2", 64, 1, 2, 1, 32, 128, 256, False, 1000000.0, 1e-6, Q.F32,
     dict(biases=["attn_q", "attn_k", "attn_v"], output_bias=True,
          rope={"type": "yarn", "factor": 4.0, "original_context_length": N_ORIG,
                "attn_factor": 0.9})),
    ("qwen2-llq8_0", "qwen2", 128, 1, 4, 2, 32, 128, 256, True, 1000000.0, 1e-6, "Q8_0",
     dict(biases=["attn_q", "attn_k", "attn_v"])),
    ("qwen2-q4_k_m", "qwen2", 256, 1, 4, 2, 64, 256, 256, False, 1000000.0, 1e-6, "Q4_K_M",
     dict(biases=["attn_q", "attn_k", "attn_v"])),
]


def rope_params(spec):
    """(freq_scale, ext_factor, attn_factor, beta_fast, beta_slow, n_orig):
    llama.cpp's defaults, and the file's keys where it has them."""
    ex = spec[13]
    r = ex.get("rope", {})
    kind = r.get("type", "linear")  # llama.cpp's default when only a factor is given
    factor = float(np.float32(r.get("factor", 0.0)))  # as the file stores it
    fs = 1.0 if (kind == "none" or factor == 0.0) else 1.0 / factor
    ext = r.get("yarn_ext_factor", 1.0 if kind == "yarn" else 0.0)
    attn = float(np.float32(r.get("attn_factor", 1.0)))
    return (fs, ext, attn, r.get("yarn_beta_fast", 32.0), r.get("yarn_beta_slow", 1.0),
            r.get("original_context_length", N_CTX))


def write_model(path, spec, seed):
    name, arch, dim, L, H, KV, hd, ffn, V, tied, base, eps, t, ex = spec
    if isinstance(t, str):  # llama.cpp quantizes an F32 model
        import llama_cpp
        src = path + ".f32.tmp"
        write_model(src, spec[:12] + (Q.F32, ex), seed)
        p = llama_cpp.llama_model_quantize_default_params()
        p.ftype = FTYPES[t]
        p.nthread = 2
        rc = llama_cpp.llama_model_quantize(src.encode(), path.encode(), p)
        assert rc == 0, f"llama_model_quantize {t} failed ({rc})"
        os.remove(src)
        return
    rng = np.random.default_rng(seed)
    w = gguf.GGUFWriter(path, arch)
    w.add_name(name)
    w.add_uint32("general.file_type", {Q.F32: 0, Q.F16: 1}[t])
    k = lambda s: f"{arch}.{s}"  # noqa: E731
    w.add_uint32(k("context_length"), N_CTX)
    w.add_uint32(k("embedding_length"), dim)
    w.add_uint32(k("block_count"), L)
    w.add_uint32(k("feed_forward_length"), ffn)
    w.add_uint32(k("attention.head_count"), H)
    w.add_uint32(k("attention.head_count_kv"), KV)
    w.add_float32(k("attention.layer_norm_rms_epsilon"), eps)
    w.add_float32(k("rope.freq_base"), base)
    w.add_uint32(k("rope.dimension_count"), hd)
    if hd * H != dim:
        w.add_uint32(k("attention.key_length"), hd)
        w.add_uint32(k("attention.value_length"), hd)
    for key, v in ex.get("rope", {}).items():
        key = k("rope.scaling." + key)
        if isinstance(v, str):
            w.add_string(key, v)
        elif isinstance(v, int):
            w.add_uint32(key, v)
        else:
            w.add_float32(key, v)
    toks = [b"<unk>", b"<s>", b"</s>", b"<0x0A>"] + [f"<t{i}>".encode() for i in range(4, V)]
    w.add_tokenizer_model("llama")
    w.add_token_list(toks)
    w.add_token_scores([0.0] * 4 + [-float(i) for i in range(4, V)])
    w.add_token_types([2, 3, 3, 6] + [1] * (V - 4))
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)

    def add(tname, a):
        if a.dtype == np.uint8:
            w.add_tensor(tname, a, raw_dtype=t)
        else:
            w.add_tensor(tname, a)

    def mat(rows, cols, scale):
        return quantize(rng.standard_normal((rows, cols)) * scale, t)

    def norm():
        return (1.0 + 0.1 * rng.standard_normal(dim)).astype(np.float32)

    def bias(n, scale):  # biases are F32 (1-D), as converters write them
        return (scale * rng.standard_normal(n)).astype(np.float32)

    biases = ex.get("biases", [])
    rows_of = {"attn_q": H * hd, "attn_k": KV * hd, "attn_v": KV * hd, "attn_output": dim,
               "ffn_gate": ffn, "ffn_up": ffn, "ffn_down": dim}
    add("token_embd.weight", mat(V, dim, 2.0 / np.sqrt(dim) if tied else 1.0))
    if ex.get("freqs"):
        add("rope_freqs.weight", llama3_freqs(hd, base))
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
        for b in biases:
            # Q/K biases as large as Qwen2's (they set the attention pattern).
            add(p + b + ".bias", bias(rows_of[b], 0.5 if b in ("attn_q", "attn_k") else 0.2))
    add("output_norm.weight", norm())
    if not tied:
        add("output.weight", mat(V, dim, 2.0 / np.sqrt(dim)))
    if ex.get("output_bias"):
        add("output.bias", bias(V, 0.5))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def corr_dims(n_rot, n_orig, base, beta_fast, beta_slow):
    def dim(beta):
        return n_rot * np.log(n_orig / (beta * 2 * np.pi)) / (2 * np.log(base))
    return max(0.0, np.floor(dim(beta_fast))), min(n_rot - 1.0, np.ceil(dim(beta_slow)))


def rope_tables(spec, W, n):
    """cos and sin (n, 1, n_rot/2), each times mscale."""
    hd, base = spec[6], spec[10]
    fs, ext, attn, bf, bs, n_orig = rope_params(spec)
    i = np.arange(hd // 2, dtype=np.float64)
    ff = W["rope_freqs.weight"].reshape(-1) if "rope_freqs.weight" in W else np.ones(hd // 2)
    pos = np.arange(n, dtype=np.float64)[:, None]
    extrap = pos * base ** (-2.0 * i / hd) / ff
    theta = fs * extrap
    mscale = attn  # rope.scaling.attn_factor, in every mode
    if ext != 0.0:
        low, high = corr_dims(hd, n_orig, base, bf, bs)
        ramp = (1 - np.clip((i - low) / max(0.001, high - low), 0, 1)) * ext
        theta = theta * (1 - ramp) + extrap * ramp
        factor = 1 / fs
        mscale = attn * (1 + 0.1 * np.log(factor) if factor > 1 else 1.0)
    return (np.cos(theta) * mscale)[:, None, :], (np.sin(theta) * mscale)[:, None, :]


def reference(W, spec, tokens, act=None, kv=ident):
    """The forward pass in float64: the LLaMA block with optional biases after
    each projection (llama.cpp's llm_build_ffn / build_qkv order: bias added
    to the product), RoPE as rope_tables says, adjacent pairs for llama,
    NEOX halves for qwen2. act / kv emulate llama.cpp's roundings (see
    make_fixtures.py)."""
    name, arch, dim, L, H, KV, hd, ffn, V, tied, base, eps, t, ex = spec
    n = len(tokens)

    def rms(x, w):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w

    def mm(x, wname):
        y = act(x, wname) if act else x @ W[wname].T
        b = wname[: -len(".weight")] + ".bias"
        return y + W[b].reshape(-1) if b in W else y

    cos, sin = rope_tables(spec, W, n)

    def rope(x):  # x: (n, heads, hd)
        y = x.copy()
        if arch == "qwen2":
            x0, x1 = x[..., : hd // 2], x[..., hd // 2:]
            y[..., : hd // 2] = x0 * cos - x1 * sin
            y[..., hd // 2:] = x0 * sin + x1 * cos
        else:
            x0, x1 = x[..., 0::2], x[..., 1::2]
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
    return mm(x, "token_embd.weight" if "output.weight" not in W else "output.weight")


def llama_logits(path, tokens, kv_type):
    import llama_cpp

    llm = llama_cpp.Llama(
        model_path=path, n_ctx=N_CTX, n_batch=N_CTX, n_ubatch=N_CTX, logits_all=True,
        n_threads=2, n_threads_batch=2, type_k=kv_type, type_v=kv_type,
        flash_attn=False, seed=1, verbose=False,
        yarn_ext_factor=-1.0, yarn_attn_factor=-1.0, yarn_beta_fast=-1.0, yarn_beta_slow=-1.0,
    )
    llm.eval(tokens)
    assert llm.n_tokens == len(tokens)
    out = np.array(llm.scores[: len(tokens)], dtype=np.float32)
    llm.close()
    return out


def kl_rows(ref, test):
    def logsm(z):
        z = z - z.max(axis=1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    lr, lt = logsm(np.asarray(ref, np.float64)), logsm(np.asarray(test, np.float64))
    return np.sum(np.exp(lr) * (lr - lt), axis=1)


def main():
    v_llama = md.version("llama_cpp_python")
    v_gguf = md.version("gguf")
    os.makedirs(OUT, exist_ok=True)
    for f in glob.glob(os.path.join(OUT, "*")):
        os.remove(f)
    lines = [
        f"# rows {','.join(map(str, ROWS))}",
        "# NAME N_VOCAB TOKENS (all evaluated in one batch from position 0; the files hold the "
        f"logits of the rows above). Made by tools/make_rope_fixtures.py with llama-cpp-python "
        f"{v_llama}, gguf {v_gguf}, numpy {np.__version__}.",
    ]
    table, bad = [], []
    for i, spec in enumerate(MODELS):
        name, arch, dim, L, H, KV, hd, ffn, V, tied, base, eps, t, ex = spec
        path = os.path.join(OUT, name + ".gguf")
        write_model(path, spec, seed=3000 + i)
        W = load_f64(path)
        rng = np.random.default_rng(4000 + i)
        tokens = [int(x) for x in rng.integers(0, V, N_TOKENS)]
        ref = reference(W, spec, tokens)[ROWS]
        ref.astype("<f8").tofile(os.path.join(OUT, name + ".ref.f64"))
        top2 = np.sort(ref, axis=1)[:, -2:]
        # Where the float64 argmax is clear enough that llama.cpp's must equal
        # it (quantization moves logits by a few tenths).
        clear = (top2[:, 1] - top2[:, 0]) > (0.5 if isinstance(t, str) else 0.05)
        row = {}
        for tag, kvt in (("f32", 0), ("f16", 1)):
            ll = llama_logits(path, tokens, kvt)[ROWS]
            assert ll.shape == (len(ROWS), V) and np.all(np.isfinite(ll))
            ll.astype("<f4").tofile(os.path.join(OUT, f"{name}.llama-kv{tag}.f32"))
            emu = reference(W, spec, tokens, act=per_tensor(W),
                            kv=to_f16 if tag == "f16" else ident)[ROWS]
            per = kl_rows(ref, ll)
            agree = int((ll.argmax(1) == ref.argmax(1))[clear].all())
            row[tag] = (float(per.mean()), float(per.max()), float(kl_rows(emu, ll).mean()))
            exact = t == Q.F32 and tag == "f32"
            if not agree or row[tag][0] > (1e-8 if exact else 1e-2):
                bad.append(f"{name} kv{tag}: {row[tag]} argmax agree {agree}")
        types = sorted({W["types"][n].name for n in W["types"] if not n.endswith(".bias")
                        and "norm" not in n and n != "rope_freqs.weight"})
        table.append((spec, row, types))
        lines.append(f"{name} {V} {','.join(map(str, tokens))}")
        print(f"{name}: KL(f64||llama) kvf32 {row['f32'][0]:.3e} (max {row['f32'][1]:.1e}) "
              f"kvf16 {row['f16'][0]:.3e} (max {row['f16'][1]:.1e}); "
              f"KL(emulated||llama) {row['f32'][2]:.1e} {row['f16'][2]:.1e}; "
              f"logit std {ref.std(axis=1).mean():.2f}", flush=True)
    if bad:
        sys.exit("llama.cpp disagrees with the reference:\n" + "\n".join(bad))
    with open(os.path.join(OUT, "manifest.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(OUT, "README.md"), "w") as f:
        f.write(f"""# RoPE and qwen2 parity fixtures

Regenerate (deletes and rewrites everything here): `python3 tools/make_rope_fixtures.py`.
Made with llama-cpp-python {v_llama}, gguf {v_gguf}, numpy {np.__version__}; checked by
`tests/rope_parity.rs`. Seeded random weights (as in tests/data/parity; biases
N(0, 0.5^2) on Q and K, N(0, 0.2^2) elsewhere, F32).

Context {N_CTX}; {N_TOKENS} seeded random tokens in one batch from position 0;
the logits files hold rows {ROWS[0]}..{ROWS[-1]} of `manifest.txt`'s `# rows`
line ({len(ROWS)} rows), `NAME.ref.f64` float64, `NAME.llama-kvf32.f32` /
`NAME.llama-kvf16.f32` llama.cpp's (F32 / F16 KV cache). See the script's
docstring for the RoPE definition the reference uses.

| model | arch | dim | layers | heads | kv heads | head_dim | ffn | tied | rope base | RoPE | biases | types |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
""")
        for spec, row, types in table:
            name, arch, dim, L, H, KV, hd, ffn, V, tied, base, eps, t, ex = spec
            rope = ", ".join(f"{k} {v}" for k, v in ex.get("rope", {}).items()) or "plain"
            if ex.get("freqs"):
                rope += " + rope_freqs (LLaMA 3.1 rule, factor 8)"
            f.write(f"| {name} | {arch} | {dim} | {L} | {H} | {KV} | {hd} | {ffn} | "
                    f"{'yes' if tied else 'no'} | {base:g} | {rope} | "
                    f"{', '.join(ex.get('biases', []) + (['output'] if ex.get('output_bias') else [])) or '-'} | "
                    f"{t if isinstance(t, str) else t.name}: "
                    f"{', '.join(types)} |\n")
        f.write("""
## llama.cpp against float64

Mean (and largest per-row) KL(softmax(float64) || softmax(llama.cpp)) over the
stored rows; "emulated": against a float64 pass with llama.cpp's roundings
(see tests/data/parity/README.md).

| model | KL, KV F32 | max | KL, KV F16 | max | emulated F32 | emulated F16 |
| --- | --- | --- | --- | --- | --- | --- |
""")
        for spec, row, _ in table:
            a, b = row["f32"], row["f16"]
            f.write(f"| {spec[0]} | {a[0]:.3e} | {a[1]:.1e} | {b[0]:.3e} | {b[1]:.1e} "
                    f"| {a[2]:.1e} | {b[2]:.1e} |\n")
    total = sum(os.path.getsize(p) for p in glob.glob(os.path.join(OUT, "*")))
    print(f"wrote {len(MODELS)} models to {OUT}, {total} bytes")


if __name__ == "__main__":
    main()
