#!/usr/bin/env python3
"""SmolLM2-135M-Instruct, a real model, against llama.cpp and a float64
evaluation.

  python3 tools/smollm2.py requantize TYPE     models/...Q4_1.gguf -> models/...TYPE.gguf
                                               (llama.cpp's quantizer, allow_requantize)
  python3 tools/smollm2.py fixtures [TYPE...]  writes tests/data/smollm2/ (see below)
  python3 tools/smollm2.py greedy [TYPE...]    greedy tokens of llama.cpp and of `nanollama generate`
  python3 tools/smollm2.py llama-batch [TYPE...] llama.cpp's greedy text against itself at other
                                               thread counts and prompt batch sizes
  python3 tools/smollm2.py chat [TYPE...]       tests/data/smollm2/chat-TYPE.txt: a system prompt and three
                                               user turns, each answered by llama.cpp greedily from
                                               the whole conversation rendered by its chat template
  python3 tools/smollm2.py compare [TYPE...]   mean KL to float64, llama.cpp and nanollama
                                               (`nanollama logits`, release build) side by side

The models come from tools/fetch-smollm2.sh. TYPE is one of Q4_1 (the file as
published), Q8_0, Q4_K_M, Q5_K_M; none: all four.

Fixtures, per TYPE (tests/smollm2.rs replays them through the library):
  TYPE.txt   the model file's SHA-256, then per prompt: the prompt text (JSON),
             llama.cpp's ids for it (tokenized with special tokens, BOS as the
             file asks), llama.cpp's greedy continuation (up to N_GEN tokens,
             ending at an end-of-generation token if one comes), the gap
             between llama.cpp's two largest logits at each of those steps, and
             llama.cpp's mean KL to float64 over the prompt's positions
             (full vocabulary, and coarsened as below)
  TYPE.ref   per prompt and position: the TOP_K most likely tokens of the
             float64 evaluation, as TOP_K x (u32 id, f64 log-probability), LE
The coarsened KL of a position is the KL of the two distributions over the
TOP_K tokens plus one bin for all the others (a lower bound of the full KL,
and a divergence in its own right): the test computes ours the same way.

llama.cpp runs with its defaults for a context (F16 KV cache, no flash
attention), each prompt in one batch from position 0, 2 threads.
"""
import hashlib
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
MODELS = os.path.join(ROOT, "models")
OUT = os.path.join(ROOT, "tests", "data", "smollm2")
NAME = "SmolLM2-135M-Instruct"
TYPES = ["Q4_1", "Q8_0", "Q4_K_M", "Q5_K_M"]
FTYPES = {"Q8_0": 7, "Q4_K_M": 15, "Q5_K_M": 17, "Q6_K": 18, "Q4_0": 2, "Q5_0": 8}
N_GEN = 64
TOP_K = 256
N_CTX = 512
SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
USER = [
    "What is the capital of France?",
    "Write a haiku about the sea.",
    "Explain in two sentences why the sky is blue.",
    "List three fruits that are red.",
]


def chat(user):
    return (f"<|im_start|>system\n{SYSTEM}<|im_end|>\n"
            f"<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n")


def path_of(t):
    return os.path.join(MODELS, f"{NAME}.{t}.gguf")


def sha256(p):
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def requantize(t):
    import llama_cpp

    src, dst = path_of("Q4_1"), path_of(t)
    p = llama_cpp.llama_model_quantize_default_params()
    p.ftype = FTYPES[t]
    p.nthread = 2
    p.allow_requantize = True
    tmp = dst + ".tmp"
    rc = llama_cpp.llama_model_quantize(src.encode(), tmp.encode(), p)
    assert rc == 0, f"llama_model_quantize {t} failed ({rc})"
    os.replace(tmp, dst)


# ---------------------------------------------------------------- float64

def load_f64(path):
    import gguf

    r = gguf.GGUFReader(path)
    out, types = {}, {}
    for t in r.tensors:
        a = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float64)
        shape = tuple(int(d) for d in reversed(t.shape.tolist()))
        out[t.name] = a.reshape(shape)
        types[t.name] = t.tensor_type.name
    f = r.fields

    def val(k):
        return f[k].contents()
    hp = dict(dim=val("llama.embedding_length"), L=val("llama.block_count"),
              H=val("llama.attention.head_count"), KV=val("llama.attention.head_count_kv"),
              eps=val("llama.attention.layer_norm_rms_epsilon"), base=val("llama.rope.freq_base"))
    return out, types, hp


def reference(W, hp, tokens):
    """The LLaMA forward pass in float64: tools/make_rope_fixtures.py's, with
    this file's hyper-parameters (plain RoPE, adjacent pairs)."""
    from make_rope_fixtures import reference as forward

    dim, H = hp["dim"], hp["H"]
    V, ffn = W["token_embd.weight"].shape[0], W["blk.0.ffn_up.weight"].shape[0]
    tied = "output.weight" not in W
    spec = (NAME, "llama", dim, hp["L"], H, hp["KV"], dim // H, ffn, V, tied, hp["base"], hp["eps"],
            None, {})
    return forward(W, spec, tokens)


def log_softmax(z):
    z = np.asarray(z, np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def kl_full(ref, test):
    lr, lt = log_softmax(ref), log_softmax(test)
    return np.sum(np.exp(lr) * (lr - lt), axis=-1)


def kl_coarse(top_ids, top_lp, test):
    """KL over the top tokens of the reference plus one bin for the rest."""
    lt = log_softmax(test)
    p = np.exp(top_lp)
    q_top = np.exp(np.take_along_axis(lt, top_ids, axis=-1))
    p_rest = np.clip(1.0 - p.sum(axis=-1), 0.0, None)
    q_rest = np.clip(1.0 - q_top.sum(axis=-1), 1e-300, None)
    k = np.sum(p * (top_lp - np.log(q_top)), axis=-1)
    return k + np.where(p_rest > 0, p_rest * (np.log(np.where(p_rest > 0, p_rest, 1)) - np.log(q_rest)), 0.0)


# ---------------------------------------------------------------- llama.cpp

def llama(path):
    import llama_cpp

    return llama_cpp.Llama(model_path=path, n_ctx=N_CTX, n_batch=N_CTX, n_ubatch=N_CTX,
                           logits_all=True, n_threads=2, n_threads_batch=2,
                           flash_attn=False, seed=1, verbose=False)


def llama_run(llm, text):
    """Prompt ids, logits of every prompt position, greedy continuation."""
    import llama_cpp

    vocab = llama_cpp.llama_model_get_vocab(llm._model.model)
    llm.reset()
    toks = llm.tokenize(text.encode(), add_bos=True, special=True)  # add_bos: as the file asks
    llm.eval(toks)
    logits = np.array(llm.scores[: len(toks)], dtype=np.float32)
    gen, gaps = [], []
    for _ in range(N_GEN):
        row = np.asarray(llm.scores[llm.n_tokens - 1], dtype=np.float32)
        t = int(np.argmax(row))
        top2 = np.sort(row)[-2:]
        gen.append(t)
        gaps.append(float(top2[1] - top2[0]))
        if llama_cpp.llama_vocab_is_eog(vocab, t):
            break
        llm.eval([t])
    return toks, logits, gen, gaps


def nanollama_logits(path, toks):
    exe = os.path.join(ROOT, "target", "release", "examples", "nanollama")
    with tempfile.NamedTemporaryFile(suffix=".f32") as f:
        subprocess.run([exe, "logits", path, "--tokens", ",".join(map(str, toks)), "--kv", "f16",
                        "--threads", "2", "--out", f.name], check=True)
        return np.fromfile(f.name, dtype="<f4").reshape(len(toks), -1)


def nanollama_greedy(path, text):
    exe = os.path.join(ROOT, "target", "release", "examples", "nanollama")
    out = subprocess.run([exe, "generate", path, "--special", "--temp", "0", "--ids", "-n", str(N_GEN),
                          "--threads", "2", "--prompt", text], capture_output=True, text=True, check=True)
    return [int(x) for x in out.stdout.split()]


def greedy(types):
    """Greedy tokens of both engines, the first step where they part, and
    llama.cpp's top-2 logit gap there and before."""
    for t in types:
        llm = llama(path_of(t))
        for u in USER:
            _, _, gen, gaps = llama_run(llm, chat(u))
            ours = nanollama_greedy(path_of(t), chat(u))
            k = next((i for i, (a, b) in enumerate(zip(gen, ours)) if a != b), min(len(gen), len(ours)))
            at = f"gap there {gaps[k]:.3f}" if k < len(gaps) else "all equal"
            print(f"{t} {u!r}: llama.cpp {len(gen)} tokens, nanollama {len(ours)}; identical for {k}; "
                  f"{at}; least gap before {min(gaps[:k], default=float('nan')):.3f}")
        llm.close()


def llama_batch(types):
    """llama.cpp against itself: greedy text with the prompt in one batch of
    512 and 2 threads, against 1 thread, and the prompt fed in batches of 8
    and of 1 token (llama.cpp's matrix kernels for a batch and for one token
    round differently)."""
    import llama_cpp

    def run(path, text, threads, nb):
        llm = llama_cpp.Llama(model_path=path, n_ctx=N_CTX, n_batch=nb, n_ubatch=nb, n_threads=threads,
                              n_threads_batch=threads, logits_all=True, flash_attn=False, verbose=False)
        vocab = llama_cpp.llama_model_get_vocab(llm._model.model)
        llm.eval(llm.tokenize(text.encode(), add_bos=True, special=True))
        gen = []
        for _ in range(N_GEN):
            t = int(np.argmax(llm.scores[llm.n_tokens - 1]))
            gen.append(t)
            if llama_cpp.llama_vocab_is_eog(vocab, t):
                break
            llm.eval([t])
        llm.close()
        return gen
    for t in types:
        for u in USER:
            base = run(path_of(t), chat(u), 2, N_CTX)
            for th, nb in [(1, N_CTX), (2, 8), (2, 1)]:
                g = run(path_of(t), chat(u), th, nb)
                k = next((i for i, (a, b) in enumerate(zip(base, g)) if a != b), min(len(base), len(g)))
                print(f"{t} {u!r}: {th} thread(s), n_batch {nb}: identical to 2 threads, n_batch {N_CTX} "
                      f"for {k} of {len(base)}")


def fixtures(types):
    import importlib.metadata as md

    os.makedirs(OUT, exist_ok=True)
    for t in types:
        path = path_of(t)
        W, wtypes, hp = load_f64(path)
        llm = llama(path)
        lines = [f"# {NAME}.{t}.gguf, made by tools/smollm2.py fixtures with llama-cpp-python "
                 f"{md.version('llama_cpp_python')}, gguf {md.version('gguf')}, numpy {np.__version__}",
                 sha256(path)]
        refs = []
        for u in USER:
            text = chat(u)
            toks, lg, gen, gaps = llama_run(llm, text)
            ref = reference(W, hp, toks)
            lp = log_softmax(ref)
            ids = np.argsort(-lp, axis=-1)[:, :TOP_K]
            top = np.take_along_axis(lp, ids, axis=-1)
            rec = np.zeros(ids.shape, dtype=[("id", "<u4"), ("lp", "<f8")])
            rec["id"], rec["lp"] = ids, top
            refs.append(rec.tobytes())
            full = float(np.mean(kl_full(ref, lg)))
            coarse = float(np.mean(kl_coarse(ids, top, lg)))
            argmax = float(np.mean(np.argmax(lg, axis=-1) == np.argmax(ref, axis=-1)))
            lines += [json.dumps(text), " ".join(map(str, toks)), " ".join(map(str, gen)),
                      " ".join(f"{g:.4f}" for g in gaps),
                      f"{full:.6e} {coarse:.6e} {argmax:.4f}"]
            print(f"{t} {u!r}: {len(toks)} prompt tokens, greedy {len(gen)}: "
                  f"{llm.detokenize(gen).decode(errors='replace')!r}; llama.cpp KL {full:.4e} "
                  f"(coarse {coarse:.4e}), top-1 {argmax:.3f}")
        llm.close()
        with open(os.path.join(OUT, f"{t}.txt"), "w") as f:
            f.write("\n".join(lines) + "\n")
        with open(os.path.join(OUT, f"{t}.ref"), "wb") as f:
            f.write(b"".join(refs))


def compare(types):
    for t in types:
        path = path_of(t)
        W, wtypes, hp = load_f64(path)
        llm = llama(path)
        rows = []
        for u in USER:
            toks, lg, _, _ = llama_run(llm, chat(u))
            ref = reference(W, hp, toks)
            ours = nanollama_logits(path, toks)
            rows.append((kl_full(ref, lg), kl_full(ref, ours),
                         np.argmax(lg, -1) == np.argmax(ref, -1), np.argmax(ours, -1) == np.argmax(ref, -1)))
        llm.close()
        kl_l = np.concatenate([r[0] for r in rows])
        kl_o = np.concatenate([r[1] for r in rows])
        t1_l = np.concatenate([r[2] for r in rows])
        t1_o = np.concatenate([r[3] for r in rows])
        counts = {}
        for v in wtypes.values():
            counts[v] = counts.get(v, 0) + 1
        print(f"{t} ({counts}): mean KL llama.cpp {kl_l.mean():.4e} nanollama {kl_o.mean():.4e} "
              f"(ratio {kl_o.mean() / kl_l.mean():.3f}); max {kl_l.max():.3e} / {kl_o.max():.3e}; "
              f"top-1 {t1_l.mean():.3f} / {t1_o.mean():.3f}")



# Turns the model answers to the end (<|im_end|>), with short answers (few
# near ties, where either engine's rounding decides the token).
CHAT_TURNS = [
    "Hi!",
    "What is 2+2?",
    "What is 3+3?",
]
CHAT_GEN = 96


def render(llm, msgs, add_ass):
    """The conversation as llama.cpp's llama_chat_apply_template renders it
    with the model's own template string."""
    import ctypes
    import llama_cpp

    tmpl = llm.metadata["tokenizer.chat_template"].encode()
    keep = [(m["role"].encode(), m["content"].encode()) for m in msgs]
    arr = (llama_cpp.llama_chat_message * len(keep))(*[llama_cpp.llama_chat_message(r, c) for r, c in keep])
    n = llama_cpp.llama_chat_apply_template(tmpl, arr, len(keep), add_ass, None, 0)
    buf = ctypes.create_string_buffer(n + 1)
    n2 = llama_cpp.llama_chat_apply_template(tmpl, arr, len(keep), add_ass, buf, n + 1)
    assert n2 == n, (n, n2)
    return buf.raw[:n].decode()


def chat(qtype="Q4_1"):
    """Each turn: the whole conversation so far (llama.cpp's own answers in
    it) rendered with the assistant's header, tokenized with special tokens,
    decoded from position 0, and answered greedily until an
    end-of-generation token or CHAT_GEN tokens. The answer's text (the
    tokens' pieces, the end token left out) is the assistant's message of
    the next turn's conversation."""
    import llama_cpp

    path = os.path.join(MODELS, f"{NAME}.{qtype}.gguf")
    llm = llama(path)
    vocab = llama_cpp.llama_model_get_vocab(llm._model.model)
    msgs = [{"role": "system", "content": SYSTEM}]
    lines = [sha256(path)]
    for user in CHAT_TURNS:
        msgs.append({"role": "user", "content": user})
        prompt = render(llm, msgs, True)
        llm.reset()
        toks = llm.tokenize(prompt.encode(), add_bos=True, special=True)
        llm.eval(toks)
        gen = []
        for _ in range(CHAT_GEN):
            t = int(np.argmax(np.asarray(llm.scores[llm.n_tokens - 1], dtype=np.float32)))
            gen.append(t)
            if llama_cpp.llama_vocab_is_eog(vocab, t):
                break
            llm.eval([t])
        text = llm.detokenize([t for t in gen if not llama_cpp.llama_vocab_is_eog(vocab, t)]).decode()
        msgs.append({"role": "assistant", "content": text})
        lines += [json.dumps(user), json.dumps(prompt), " ".join(map(str, toks)),
                  " ".join(map(str, gen)), json.dumps(text)]
        print(f"turn: {len(toks)} prompt tokens, {len(gen)} generated: {text!r}")
    with open(os.path.join(OUT, f"chat-{qtype}.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")

def main():
    args = sys.argv[1:]
    if not args:
        sys.exit(__doc__)
    cmd, types = args[0], args[1:] or TYPES
    if cmd == "requantize":
        for t in types:
            requantize(t)
    elif cmd == "fixtures":
        fixtures(types)
    elif cmd == "llama-batch":
        llama_batch(types)
    elif cmd == "greedy":
        greedy(types)
    elif cmd == "compare":
        compare(types)
    elif cmd == "chat":
        # The K-quant files meet a near tie in the first answer (llama.cpp
        # itself turns the other way there when fed in batches): no exact
        # three-turn reference.
        for t in args[1:] or ["Q4_1", "Q8_0"]:
            chat(t)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
