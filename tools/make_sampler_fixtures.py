#!/usr/bin/env python3
"""Sampler fixtures: logits rows, and for each case the candidates that
llama.cpp's samplers (llama_sampler_init_* through llama-cpp-python, applied
to a llama_token_data_array) leave, with their probabilities.

Run:   python3 tools/make_sampler_fixtures.py
Needs: numpy, llama-cpp-python (see tools/README.md for the build flags)

Writes tests/data/sampler/: rows as little-endian f32 (`NAME.f32`), and
cases.txt with one case per block:
    case NAME
    row ROWFILE N_VOCAB
    args ARGS...        (flags of `nanollama sample`, which tests/sampler.rs runs)
    expect ID:P ID:P ... (llama.cpp's survivors, most probable first)
The probabilities are the softmax of the surviving logits (as `--dump`
prints them); a candidate left with probability 0 (a -inf logit) is not listed.
"""
import ctypes
import os

import numpy as np
import llama_cpp as L

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "sampler")

# llama.cpp's defaults, as `nanollama sample` has them without flags.
DEFAULTS = dict(temp=0.8, top_k=40, top_p=0.95, min_p=0.05, typical_p=1.0, last_n=64,
                repeat=1.0, freq=0.0, present=0.0, xtc_p=0.0, xtc_t=0.1, min_keep=0)
DEFAULT_ORDER = ["logit_bias", "penalties", "top_k", "typical", "top_p", "min_p", "xtc", "temperature"]


def build(stage, s, n_vocab, bias):
    if stage == "logit_bias":
        arr = (L.llama_logit_bias * max(1, len(bias)))(*[L.llama_logit_bias(t, b) for t, b in bias])
        return L.llama_sampler_init_logit_bias(n_vocab, len(bias), arr)
    if stage == "penalties":
        return L.llama_sampler_init_penalties(n_vocab, s["last_n"], s["repeat"], s["freq"], s["present"])
    if stage == "top_k":
        return L.llama_sampler_init_top_k(s["top_k"])
    if stage == "typical":
        return L.llama_sampler_init_typical(s["typical_p"], s["min_keep"])
    if stage == "top_p":
        return L.llama_sampler_init_top_p(s["top_p"], s["min_keep"])
    if stage == "min_p":
        return L.llama_sampler_init_min_p(s["min_p"], s["min_keep"])
    if stage == "xtc":
        return L.llama_sampler_init_xtc(s["xtc_p"], s["xtc_t"], s["min_keep"], 1234)
    if stage == "temperature":
        return L.llama_sampler_init_temp(s["temp"])
    raise ValueError(stage)


def llama_survivors(logits, order, s, history, bias):
    n = len(logits)
    data = (L.llama_token_data * n)(*[L.llama_token_data(i, float(v), 0.0) for i, v in enumerate(logits)])
    arr = L.llama_token_data_array(data, n, -1, False)
    for stage in order:
        smpl = build(stage, s, n, bias)
        if stage == "penalties":
            for t in history:
                L.llama_sampler_accept(smpl, t)
        L.llama_sampler_apply(smpl, ctypes.byref(arr))
        L.llama_sampler_free(smpl)
    base = ctypes.addressof(arr.data.contents)
    items = (L.llama_token_data * arr.size).from_address(base)
    ids = np.array([c.id for c in items])
    lg = np.array([c.logit for c in items], dtype=np.float64)
    p = np.exp(lg - lg.max())
    p /= p.sum()
    order_ = np.argsort(-p, kind="stable")
    return [(int(ids[i]), float(p[i])) for i in order_ if p[i] > 0]


def args_for(s, order, history, bias):
    a = ["--temp", s["temp"], "--top-k", s["top_k"], "--top-p", s["top_p"], "--min-p", s["min_p"],
         "--typical-p", s["typical_p"], "--penalty-last-n", s["last_n"], "--repeat-penalty", s["repeat"],
         "--frequency-penalty", s["freq"], "--presence-penalty", s["present"],
         "--xtc-probability", s["xtc_p"], "--xtc-threshold", s["xtc_t"], "--min-keep", s["min_keep"],
         "--order", ",".join(order)]
    if history:
        a += ["--history", ",".join(map(str, history))]
    if bias:
        a += ["--logit-bias", ",".join(f"{t}:{b}" for t, b in bias)]
    return " ".join(str(x) for x in a)


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(7)
    rows = {
        "flat1000": rng.standard_normal(1000).astype(np.float32),
        "peaked1000": (rng.standard_normal(1000) * 3).astype(np.float32),
        "vocab32000": (rng.standard_normal(32000) * 2).astype(np.float32),
    }
    rows["peaked1000"][[5, 17, 99]] = [9.0, 8.5, 8.4]
    for name, r in rows.items():
        r.astype("<f4").tofile(os.path.join(OUT, name + ".f32"))
    hist = [5, 17, 17, 42, 99, 5, 5, 300, 7, 17]
    neutral = dict(DEFAULTS, temp=1.0, top_k=0, top_p=1.0, min_p=0.0)
    cases = []

    def case(name, row, order, s, history=(), bias=()):
        cases.append((name, row, order, s, list(history), list(bias)))

    for row in ["flat1000", "peaked1000", "vocab32000"]:
        case(f"default-{row}", row, DEFAULT_ORDER, dict(DEFAULTS, repeat=1.1), hist)
        case(f"top_k40-{row}", row, ["top_k"], dict(neutral, top_k=40))
        case(f"top_p0.9-{row}", row, ["top_p"], dict(neutral, top_p=0.9))
        case(f"min_p0.05-{row}", row, ["min_p"], dict(neutral, min_p=0.05))
        case(f"typical0.7-{row}", row, ["typical"], dict(neutral, typical_p=0.7))
    r = "peaked1000"
    case("penalties", r, ["penalties"], dict(neutral, repeat=1.3, freq=0.2, present=0.5, last_n=8), hist)
    case("penalties-all-history", r, ["penalties"], dict(neutral, repeat=1.5, last_n=64), hist)
    case("logit_bias", r, ["logit_bias"], neutral, bias=[(5, -20.0), (1, 6.5), (999, 3.0)])
    case("top_k1", r, ["top_k"], dict(neutral, top_k=1))
    case("top_k-over-vocab", r, ["top_k"], dict(neutral, top_k=5000))
    case("top_p0", r, ["top_p"], dict(neutral, top_p=0.0))
    case("top_p0.5-min_keep5", r, ["top_p"], dict(neutral, top_p=0.5, min_keep=5))
    case("min_p0.3", r, ["min_p"], dict(neutral, min_p=0.3))
    case("temp0.7", "flat1000", ["top_k", "temperature"], dict(neutral, top_k=50, temp=0.7))
    case("temp1.5", "flat1000", ["top_k", "temperature"], dict(neutral, top_k=50, temp=1.5))
    case("temp0-greedy", "flat1000", ["temperature"], dict(neutral, temp=0.0))
    case("xtc", r, ["xtc"], dict(neutral, xtc_p=1.0, xtc_t=0.05))
    case("typical-then-top_p", "flat1000", ["typical", "top_p"], dict(neutral, typical_p=0.8, top_p=0.7))
    case("reordered-chain", "vocab32000", ["temperature", "min_p", "top_k", "penalties", "top_p"],
         dict(DEFAULTS, temp=1.3, repeat=1.2, top_k=100), hist)

    lines = ["# made by tools/make_sampler_fixtures.py with llama-cpp-python " + L.__version__]
    for name, row, order, s, history, bias in cases:
        surv = llama_survivors(rows[row], order, s, history, bias)
        lines += [f"case {name}", f"row {row}.f32 {len(rows[row])}", "args " + args_for(s, order, history, bias),
                  "expect " + " ".join(f"{i}:{p:.9g}" for i, p in surv)]
        print(f"{name}: {len(surv)} survivors")
    with open(os.path.join(OUT, "cases.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
