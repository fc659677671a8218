#!/usr/bin/env python3
"""Trains the small LLaMA model that ships in models/: a SentencePiece BPE
vocabulary and a LLaMA-architecture transformer on the King James Bible
(public domain; Debian's bible-kjv package prints it), written as GGUF
(F16 by default, or Q8_0; tokenizer.ggml.model = llama) that llama.cpp loads
too.

Run:   apt-get install bible-kjv && pip install torch sentencepiece gguf numpy
       python3 tools/train_model.py [--steps N] [--type f16|q8_0]
Framework: PyTorch on the CPU (2 threads). Seeds and the learning-rate
schedule are fixed by the step count (not by the clock), so a run is
repeatable; the script prints the validation loss and how long it took, and
keeps the float weights in /tmp/kjv-train/model.pt (--from-checkpoint writes
the GGUF again from them without training).

F16 is the default because the greedy text must match llama.cpp's token for
token: llama.cpp quantizes matrix-product inputs to Q8_0 for Q8_0 weights
with its own SIMD rounding, and a last-bit difference upstream can move an
input across a rounding boundary (a step of 1/127 of its block's maximum),
which moves near-tied logits by up to ~0.05. With F16 weights the same
effect is a step of 2^-11 of one value, too small to reorder the greedy
choices of 200 tokens (tools/compare_greedy.py).
"""
import argparse
import math
import os
import re
import subprocess
import time

import numpy as np
import sentencepiece as spm
import torch
import torch.nn as nn
import torch.nn.functional as F
import gguf

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "models", "kjv-llama.gguf")
WORK = "/tmp/kjv-train"

DIM, LAYERS, HEADS, KV_HEADS, FFN, VOCAB, CTX = 192, 4, 6, 2, 512, 2048, 256
EPS, ROPE_BASE = 1e-5, 10000.0
STEPS = 1500


def corpus():
    raw = subprocess.run(["bible", "Genesis 1:1-Revelation 22:21"], capture_output=True, text=True, check=True).stdout
    verses = []
    for line in raw.splitlines():
        m = re.match(r"^\s*\d+\s+(.*\S)\s*$", line)
        if m:
            verses.append(m.group(1))
    return verses


def rope_tables(T, hd):
    inv = ROPE_BASE ** (-torch.arange(0, hd, 2, dtype=torch.float64) / hd)
    ang = torch.arange(T, dtype=torch.float64)[:, None] * inv[None, :]
    return torch.cos(ang).float(), torch.sin(ang).float()


def rope(x, cos, sin):
    # Adjacent pairs (2i, 2i+1), as llama.cpp rotates GGUF llama weights.
    x0, x1 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1).flatten(-2)


class RMSNorm(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.w = nn.Parameter(torch.ones(d))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS) * self.w


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        hd = DIM // HEADS
        self.attn_norm, self.ffn_norm = RMSNorm(DIM), RMSNorm(DIM)
        self.q = nn.Linear(DIM, HEADS * hd, bias=False)
        self.k = nn.Linear(DIM, KV_HEADS * hd, bias=False)
        self.v = nn.Linear(DIM, KV_HEADS * hd, bias=False)
        self.o = nn.Linear(HEADS * hd, DIM, bias=False)
        self.gate = nn.Linear(DIM, FFN, bias=False)
        self.up = nn.Linear(DIM, FFN, bias=False)
        self.down = nn.Linear(FFN, DIM, bias=False)

    def forward(self, x, cos, sin):
        B, T, _ = x.shape
        hd = DIM // HEADS
        h = self.attn_norm(x)
        q = rope(self.q(h).view(B, T, HEADS, hd), cos[:T, None], sin[:T, None]).transpose(1, 2)
        k = rope(self.k(h).view(B, T, KV_HEADS, hd), cos[:T, None], sin[:T, None]).transpose(1, 2)
        v = self.v(h).view(B, T, KV_HEADS, hd).transpose(1, 2)
        k = k.repeat_interleave(HEADS // KV_HEADS, dim=1)
        v = v.repeat_interleave(HEADS // KV_HEADS, dim=1)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.o(a.transpose(1, 2).reshape(B, T, HEADS * hd))
        h = self.ffn_norm(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.embd = nn.Embedding(VOCAB, DIM)
        self.blocks = nn.ModuleList([Block() for _ in range(LAYERS)])
        self.norm = RMSNorm(DIM)
        self.out = nn.Linear(DIM, VOCAB, bias=False)
        cos, sin = rope_tables(CTX, DIM // HEADS)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        for p in self.parameters():
            if p.dim() == 2:
                nn.init.normal_(p, std=0.02)

    def forward(self, idx):
        x = self.embd(idx)
        for b in self.blocks:
            x = b(x, self.cos, self.sin)
        return self.out(self.norm(x))


def write_gguf(model, sp, path, wtype):
    w = gguf.GGUFWriter(path, "llama")
    w.add_name("kjv-llama")
    w.add_uint32("llama.embedding_length", DIM)
    w.add_uint32("llama.block_count", LAYERS)
    w.add_uint32("llama.feed_forward_length", FFN)
    w.add_uint32("llama.attention.head_count", HEADS)
    w.add_uint32("llama.attention.head_count_kv", KV_HEADS)
    w.add_float32("llama.attention.layer_norm_rms_epsilon", EPS)
    w.add_float32("llama.rope.freq_base", ROPE_BASE)
    w.add_uint32("llama.rope.dimension_count", DIM // HEADS)
    w.add_uint32("llama.context_length", CTX)
    w.add_uint32("llama.vocab_size", VOCAB)
    w.add_tokenizer_model("llama")
    toks, scores, types = [], [], []
    for i in range(sp.get_piece_size()):
        toks.append(sp.id_to_piece(i).encode())
        scores.append(sp.get_score(i))
        types.append(2 if sp.is_unknown(i) else 3 if sp.is_control(i) else 6 if sp.is_byte(i) else 1)
    w.add_token_list(toks)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(sp.bos_id())
    w.add_eos_token_id(sp.eos_id())
    w.add_unk_token_id(sp.unk_id())
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    sd = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}

    def q8(name, a):
        if wtype == "f16":
            w.add_tensor(name, a.astype(np.float16))
        else:
            w.add_tensor(name, gguf.quants.quantize(a, gguf.GGMLQuantizationType.Q8_0),
                         raw_dtype=gguf.GGMLQuantizationType.Q8_0)

    q8("token_embd.weight", sd["embd.weight"])
    for i in range(LAYERS):
        p = f"blocks.{i}."
        w.add_tensor(f"blk.{i}.attn_norm.weight", sd[p + "attn_norm.w"])
        q8(f"blk.{i}.attn_q.weight", sd[p + "q.weight"])
        q8(f"blk.{i}.attn_k.weight", sd[p + "k.weight"])
        q8(f"blk.{i}.attn_v.weight", sd[p + "v.weight"])
        q8(f"blk.{i}.attn_output.weight", sd[p + "o.weight"])
        w.add_tensor(f"blk.{i}.ffn_norm.weight", sd[p + "ffn_norm.w"])
        q8(f"blk.{i}.ffn_gate.weight", sd[p + "gate.weight"])
        q8(f"blk.{i}.ffn_up.weight", sd[p + "up.weight"])
        q8(f"blk.{i}.ffn_down.weight", sd[p + "down.weight"])
    w.add_tensor("output_norm.weight", sd["norm.w"])
    q8("output.weight", sd["out.weight"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=STEPS, help="optimizer steps")
    ap.add_argument("--type", choices=["f16", "q8_0"], default="f16", help="matrix weight type")
    ap.add_argument("--from-checkpoint", action="store_true",
                    help="write the GGUF from /tmp/kjv-train/model.pt without training")
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(2)
    os.makedirs(WORK, exist_ok=True)
    t_start = time.time()
    verses = corpus()
    n_val = len(verses) // 20
    train_text, val_text = "\n".join(verses[:-n_val]), "\n".join(verses[-n_val:])
    with open(os.path.join(WORK, "train.txt"), "w") as f:
        f.write(train_text)
    spm.SentencePieceTrainer.train(
        input=os.path.join(WORK, "train.txt"), model_prefix=os.path.join(WORK, "sp"), vocab_size=VOCAB,
        model_type="bpe", byte_fallback=True, character_coverage=1.0, normalization_rule_name="identity",
        remove_extra_whitespaces=False, split_digits=True, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        num_threads=2, minloglevel=2, max_sentence_length=1 << 16)
    sp = spm.SentencePieceProcessor(model_file=os.path.join(WORK, "sp.model"))

    def encode(text):
        ids = []
        for line in text.split("\n"):
            ids += [sp.bos_id()] + sp.encode(line)
        return torch.tensor(ids, dtype=torch.long)

    train, val = encode(train_text), encode(val_text)
    print(f"corpus: {len(verses)} verses, {len(train)} train / {len(val)} validation tokens", flush=True)
    model = Model()
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {n_params / 1e6:.2f} M parameters", flush=True)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, betas=(0.9, 0.95), weight_decay=0.1)
    B, T = 32, CTX
    g = torch.Generator().manual_seed(1)

    def batch(data):
        ix = torch.randint(0, len(data) - T - 1, (B,), generator=g)
        return torch.stack([data[i:i + T] for i in ix]), torch.stack([data[i + 1:i + T + 1] for i in ix])

    def val_loss():
        model.eval()
        with torch.no_grad():
            losses = []
            for i in range(0, len(val) - T - 1, T * 8)[:40]:
                x = torch.stack([val[j:j + T] for j in range(i, min(i + 8 * T, len(val) - T - 1), T)])
                y = torch.stack([val[j + 1:j + T + 1] for j in range(i, min(i + 8 * T, len(val) - T - 1), T)])
                losses.append(F.cross_entropy(model(x).view(-1, VOCAB), y.view(-1)).item())
        model.train()
        return sum(losses) / len(losses)

    ckpt = os.path.join(WORK, "model.pt")
    if args.from_checkpoint:
        model.load_state_dict(torch.load(ckpt))
        vl = val_loss()
        write_gguf(model, sp, OUT, args.type)
        print(f"validation loss {vl:.3f}; wrote {OUT} ({os.path.getsize(OUT)} bytes)")
        return
    t0 = time.time()
    total = args.steps
    best = None
    for step in range(total):
        lr = 2e-3 * min(1.0, (step + 1) / 50) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, step / total))))
        for pg in opt.param_groups:
            pg["lr"] = lr
        x, y = batch(train)
        loss = F.cross_entropy(model(x).view(-1, VOCAB), y.view(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 50 == 0:
            print(f"step {step} loss {loss.item():.3f} lr {lr:.2e} ({time.time() - t0:.0f} s)", flush=True)
        if (step + 1) % 100 == 0 or step + 1 == total:
            # Early stopping: the corpus is small (600k tokens) and a long run
            # memorizes it, so keep the weights of the best validation loss.
            vl = val_loss()
            print(f"step {step + 1} validation loss {vl:.3f}", flush=True)
            if best is None or vl < best[0]:
                best = (vl, step + 1, {k: v.clone() for k, v in model.state_dict().items()})
    step = total
    vl, best_step, state = best
    model.load_state_dict(state)
    print(f"best validation loss {vl:.3f} at step {best_step}", flush=True)
    torch.save(model.state_dict(), ckpt)
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    write_gguf(model, sp, OUT, args.type)
    took = time.time() - t_start
    print(f"done: {step} steps of {B}x{T} tokens, validation loss {vl:.3f} (perplexity {math.exp(vl):.1f}), "
          f"{took / 60:.1f} min in all; wrote {OUT} ({os.path.getsize(OUT)} bytes)", flush=True)


if __name__ == "__main__":
    main()
