#!/usr/bin/env python3
"""nanollama against llama.cpp, same file, same threads, same machine.

Run:   cargo build --release --example nanollama && tools/bench-vs-llama.cpp
           [--shapes stories110M,tinyllama-1.1B] [--types F16,Q8_0,Q4_0,Q4_K_M]
           [--threads 1,2] [--reps 3] [--dir /tmp/nanollama-bench]
Needs numpy, gguf and llama-cpp-python (see tools/README.md for its build).

Makes the benchmark models once (seeded random weights written with `gguf`
as F16, the other types by llama.cpp's own quantizer), then for each model and
thread count runs llama.cpp (through llama-cpp-python's C API: llama_decode,
no Python per token beyond the call) and `nanollama bench` alternately,
`--reps` times each, and prints the medians and their ratio as a Markdown
table. Both measure as llama-bench does: pp = a 128-token prompt in one batch
into an empty context; tg = 64 tokens decoded one by one into an empty
context. Also prints the machine's read bandwidth per thread count (a numpy
probe summing a 1 GiB array split over that many threads; numpy releases the
GIL while it sums) and, per row, the bandwidth floor of tg: the bytes of
weights read per token divided into the bandwidth at that thread count, with
both engines' tg as a share of it. An engine at share S cannot be beaten by
more than 1/S without reading fewer bytes.

The main columns run `nanollama bench` on the file mapped with mmap, as
llama.cpp maps it (4 KiB pages of the page cache). The last columns run it
with `--hugepages`: the file read into memory advised to 2 MiB pages (a
host's choice the library allows: it reads whatever bytes it is given).
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

import numpy as np
import gguf

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
# name: dim, layers, heads, kv heads, ffn, vocab
SHAPES = {
    "stories110M": (768, 12, 12, 12, 2048, 32000),
    "tinyllama-1.1B": (2048, 22, 32, 4, 5632, 32000),
}
FTYPES = {"Q8_0": 7, "Q4_0": 2, "Q4_K_M": 15}


def write_f16(path, shape, seed=0):
    dim, L, H, KV, ffn, V = shape
    hd = dim // H
    rng = np.random.default_rng(seed)
    w = gguf.GGUFWriter(path, "llama")
    w.add_name("bench")
    w.add_uint32("general.file_type", 1)
    for k, v in [("context_length", 2048), ("embedding_length", dim), ("block_count", L),
                 ("feed_forward_length", ffn), ("attention.head_count", H),
                 ("attention.head_count_kv", KV), ("rope.dimension_count", hd)]:
        w.add_uint32(f"llama.{k}", v)
    w.add_float32("llama.attention.layer_norm_rms_epsilon", 1e-5)
    w.add_float32("llama.rope.freq_base", 10000.0)
    toks = [b"<unk>", b"<s>", b"</s>", b"<0x0A>"] + [f"<t{i}>".encode() for i in range(4, V)]
    w.add_tokenizer_model("llama")
    w.add_token_list(toks)
    w.add_token_scores([0.0] * 4 + [-float(i) for i in range(4, V)])
    w.add_token_types([2, 3, 3, 6] + [1] * (V - 4))
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)

    def mat(rows, cols):
        return (rng.standard_normal((rows, cols), dtype=np.float32) / np.sqrt(cols)).astype(np.float16)

    w.add_tensor("token_embd.weight", mat(V, dim))
    for l in range(L):
        p = f"blk.{l}."
        w.add_tensor(p + "attn_norm.weight", np.ones(dim, dtype=np.float32))
        w.add_tensor(p + "attn_q.weight", mat(H * hd, dim))
        w.add_tensor(p + "attn_k.weight", mat(KV * hd, dim))
        w.add_tensor(p + "attn_v.weight", mat(KV * hd, dim))
        w.add_tensor(p + "attn_output.weight", mat(dim, H * hd))
        w.add_tensor(p + "ffn_norm.weight", np.ones(dim, dtype=np.float32))
        w.add_tensor(p + "ffn_gate.weight", mat(ffn, dim))
        w.add_tensor(p + "ffn_up.weight", mat(ffn, dim))
        w.add_tensor(p + "ffn_down.weight", mat(dim, ffn))
    w.add_tensor("output_norm.weight", np.ones(dim, dtype=np.float32))
    w.add_tensor("output.weight", mat(V, dim))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def make_model(d, shape_name, t):
    import llama_cpp

    path = os.path.join(d, f"{shape_name}-{t.lower()}.gguf")
    if os.path.exists(path):
        return path
    f16 = os.path.join(d, f"{shape_name}-f16.gguf")
    if not os.path.exists(f16):
        write_f16(f16 + ".tmp", SHAPES[shape_name])
        os.rename(f16 + ".tmp", f16)
    if t == "F16":
        return f16
    p = llama_cpp.llama_model_quantize_default_params()
    p.ftype = FTYPES[t]
    p.nthread = 2
    assert llama_cpp.llama_model_quantize(f16.encode(), (path + ".tmp").encode(), p) == 0
    os.rename(path + ".tmp", path)
    return path


def weight_bytes(path):
    r = gguf.GGUFReader(path)
    # token_embd is read one row per token, not whole.
    return sum(int(t.n_bytes) for t in r.tensors if t.name != "token_embd.weight")


def bandwidth(threads):
    import threading
    a = np.ones(1 << 27, dtype=np.float64)  # 1 GiB
    a.sum()
    parts = np.array_split(a, threads)
    best = 0.0
    for _ in range(7):
        start = threading.Barrier(threads + 1)

        def work(part):
            start.wait()
            part.sum()

        ts = [threading.Thread(target=work, args=(p,)) for p in parts]
        for t in ts:
            t.start()
        t = time.perf_counter()
        start.wait()
        for x in ts:
            x.join()
        best = max(best, a.nbytes / (time.perf_counter() - t))
    return best


@__import__("llama_cpp").llama_log_callback
def _quiet(level, text, user_data):
    pass


class Llama:
    def __init__(self, path, threads):
        import llama_cpp as L
        L.llama_log_set(_quiet, None)
        self.L = L
        mp = L.llama_model_default_params()
        self.model = L.llama_model_load_from_file(path.encode(), mp)
        cp = L.llama_context_default_params()
        cp.n_ctx, cp.n_batch, cp.n_ubatch = 256, 128, 128
        cp.n_threads = cp.n_threads_batch = threads
        self.ctx = L.llama_init_from_model(self.model, cp)
        self.batch = L.llama_batch_init(128, 0, 1)
        self.tokens = list(np.random.default_rng(42).integers(4, 32000, 128))

    def decode(self, toks, pos0):
        b = self.batch
        for i, t in enumerate(toks):
            b.token[i], b.pos[i], b.n_seq_id[i], b.seq_id[i][0] = int(t), pos0 + i, 1, 0
            b.logits[i] = i == len(toks) - 1
        b.n_tokens = len(toks)
        assert self.L.llama_decode(self.ctx, b) == 0

    def clear(self):
        self.L.llama_memory_clear(self.L.llama_get_memory(self.ctx), True)

    def pp(self, n=128):
        self.clear()
        t = time.perf_counter()
        self.decode(self.tokens[:n], 0)
        self.L.llama_synchronize(self.ctx)
        return n / (time.perf_counter() - t)

    def tg(self, n=64):
        self.clear()
        t = time.perf_counter()
        for i in range(n):
            self.decode([self.tokens[i]], i)
        self.L.llama_synchronize(self.ctx)
        return n / (time.perf_counter() - t)

    def close(self):
        self.L.llama_batch_free(self.batch)
        self.L.llama_free(self.ctx)
        self.L.llama_model_free(self.model)


def ours(path, threads, huge=False):
    exe = os.path.join(ROOT, "target", "release", "examples", "nanollama")
    out = subprocess.run([exe, "bench", path, "--pp", "128", "--tg", "64", "--threads", str(threads),
                          "--reps", "1"] + (["--hugepages"] if huge else []),
                         capture_output=True, text=True, check=True).stdout
    vals = dict(line.split(": ") for line in out.strip().splitlines())
    return float(vals["pp128"].split()[0]), float(vals["tg64"].split()[0])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", default="stories110M,tinyllama-1.1B")
    ap.add_argument("--types", default="F16,Q8_0,Q4_0,Q4_K_M")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--dir", default="/tmp/nanollama-bench")
    a = ap.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    threads = list(map(int, a.threads.split(",")))
    bw = {th: bandwidth(th) for th in threads}
    for th in threads:
        print(f"read bandwidth (numpy sum, {th} thread{'s' if th > 1 else ''}): {bw[th] / 1e9:.1f} GB/s", flush=True)
    print("| model | type | threads | llama.cpp pp128 | nanollama pp128 | ratio | llama.cpp tg64 | nanollama tg64 "
          "| ratio | tg floor (weights/bandwidth) | llama.cpp tg / floor | nanollama tg / floor "
          "| nanollama, 2 MiB pages: pp128 | ratio | tg64 | ratio | tg / floor |")
    print("|" + " --- |" * 17, flush=True)
    for s in a.shapes.split(","):
        for t in a.types.split(","):
            path = make_model(a.dir, s, t)
            for th in threads:
                floor = bw[th] / weight_bytes(path)
                lpp, ltg, opp, otg, hpp, htg = [], [], [], [], [], []
                ll = Llama(path, th)
                ll.pp(16)  # warm-up
                for _ in range(a.reps):
                    lpp.append(ll.pp())
                    ltg.append(ll.tg())
                    p, g = ours(path, th)
                    opp.append(p)
                    otg.append(g)
                    p, g = ours(path, th, huge=True)
                    hpp.append(p)
                    htg.append(g)
                ll.close()
                m = statistics.median
                print(f"| {s} | {t} | {th} | {m(lpp):.1f} | {m(opp):.1f} | {m(opp) / m(lpp):.2f} | {m(ltg):.2f} "
                      f"| {m(otg):.2f} | {m(otg) / m(ltg):.2f} | {floor:.1f} | {m(ltg) / floor:.0%} | {m(otg) / floor:.0%} "
                      f"| {m(hpp):.1f} | {m(hpp) / m(lpp):.2f} | {m(htg):.2f} | {m(htg) / m(ltg):.2f} "
                      f"| {m(htg) / floor:.0%} |", flush=True)


if __name__ == "__main__":
    main()
