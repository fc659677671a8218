#!/usr/bin/env python3
"""nanollama against llama.cpp, same file, same threads, same machine.

Run:   cargo build --release --example nanollama && tools/bench-vs-llama.cpp
           [--shapes stories110M,tinyllama-1.1B] [--types F16,BF16,Q8_0,...]
           [--threads 1,2] [--reps 3] [--avx2] [--no-real] [--hugepages]
           [--dir /tmp/nanollama-bench] [--parallel 1,4,8,16 [--par-pp 32] [--par-tg 32]]
Needs numpy, gguf and llama-cpp-python (see tools/README.md for its build);
--avx2 also needs the AVX2-only llama.cpp of tools/setup-llama-avx2.sh.

Makes the benchmark models once (seeded random weights written with `gguf`
as F16, every other type by llama.cpp's own quantizer), then for each model
and thread count runs llama.cpp and `nanollama bench` alternately, `--reps`
times each, and prints the medians and their ratio as a Markdown table.
llama.cpp runs in a child process of this script (`--llama-worker`: its C API
through llama-cpp-python, llama_decode, no Python per token beyond the call),
so that the AVX2 rows can run the other build's interpreter. Both measure as
llama-bench does: pp = a 128-token prompt in one batch into an empty
context; tg = 64 tokens decoded one by one into an empty context.

The real model, models/SmolLM2-135M-Instruct.Q4_1.gguf (tools/fetch-smollm2.sh),
is a row of its own unless --no-real.

With --avx2 every row is run twice: as above, and with nanollama capped at
its AVX2 kernels (NANOLLAMA_KERNELS=avx2) against the llama.cpp built without
AVX-512 (.venv-llama-avx2).

What bounds each figure, measured at the start of the run:
- tg: the read bandwidth per thread count (a numpy probe summing a 1 GiB
  array split over that many threads; numpy releases the GIL while it sums)
  over the bytes of weights one token reads: the floor. An engine at share S
  of it cannot be beaten by more than 1/S without reading fewer bytes.
- pp: the arithmetic peak per thread count (tools/peak-probe.c: int8
  multiply-adds of vpdpbusd, or of maddubs+madd on AVX2, and f32 FMAs), times
  the multiply-adds of a token (the matrices' weights, the output included;
  attention's own products are left out, a few per cent at 128 tokens). The
  int8 peak applies to the quantized types, the f32 peak to F16, and to
  BF16 the vdpbf16ps peak where the CPU has AVX512_BF16 (else f32).

On a CPU without AVX-512 only the AVX2 rows run (as with --avx2, against the
AVX2-only llama.cpp, which then also quantizes the models).
A row where nanollama ran a scalar kernel for some matrix (it says so on its
`scalar kernels:` line) is marked "scalar: TYPES".

--parallel N1,N2,... measures, instead of pp128/tg64, the aggregate
generation rate of N conversations at once, for each N: each conversation
gets its own seeded random prompt of --par-pp tokens (ids 4..32000), decoded
first and not timed; then --par-tg steps, each appending one seeded random
token to every conversation, with logits for all N; rate = N*T / seconds of
the T steps. One warm-up run first. llama.cpp does it its own way (as
llama-batched-bench): one context with n_seq_max = N, n_ctx = N*(P+T) rounded
up to 256, each prompt its own llama_batch with seq_id i, each step one
llama_batch of N tokens with seq_ids 0..N-1 (`--llama-parallel-worker`); the
other context parameters are llama.cpp's defaults, which in 0.3.36 were:
kv_unified = false (one KV stream per sequence; llama.cpp pads n_ctx per
sequence up to 256, so n_ctx becomes 256*N here), flash_attn = auto
(resolved to enabled on CPU), K/V cache f16, n_ubatch 512. nanollama runs
`nanollama bench PATH --parallel N --pp P --tg T`. Not with --avx2 or
--hugepages.

--hugepages adds columns with nanollama reading the file from memory advised
to 2 MiB pages (a host's choice the library allows).
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
# llama_ftype of each type llama.cpp's quantizer writes.
FTYPES = {"BF16": 32, "Q8_0": 7, "Q4_0": 2, "Q4_1": 3, "Q5_0": 8, "Q5_1": 9, "Q2_K": 10,
          "Q3_K_M": 12, "Q4_K_M": 15, "Q5_K_M": 17, "Q6_K": 18}
ALL_TYPES = "F16," + ",".join(FTYPES)
REAL = ("SmolLM2-135M-Instruct", "Q4_1", os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf"))
AVX2_PYTHON = os.path.join(ROOT, ".venv-llama-avx2", "bin", "python")


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
    path = os.path.join(d, f"{shape_name}-{t.lower()}.gguf")
    if os.path.exists(path):
        return path
    f16 = os.path.join(d, f"{shape_name}-f16.gguf")
    if not os.path.exists(f16):
        write_f16(f16 + ".tmp", SHAPES[shape_name])
        os.rename(f16 + ".tmp", f16)
    if t == "F16":
        return f16
    # In a child process of the interpreter whose llama.cpp runs on this CPU
    # (an AVX-512 build dies with SIGILL without AVX-512).
    py = sys.executable if has_avx512() else AVX2_PYTHON
    r = subprocess.run([py, os.path.abspath(__file__), "--quantize-worker", f16, path + ".tmp",
                        str(FTYPES[t])], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"quantizing {path} failed:\n{r.stdout[-2000:]}{r.stderr[-2000:]}")
    os.rename(path + ".tmp", path)
    return path


def quantize_worker(src, dst, ftype):
    import llama_cpp

    p = llama_cpp.llama_model_quantize_default_params()
    p.ftype = ftype
    p.nthread = 2
    assert llama_cpp.llama_model_quantize(src.encode(), dst.encode(), p) == 0


def has_avx512():
    """Whether the CPU has what nanollama's AVX-512 kernels need (F, BW,
    VL, VBMI, VNNI): without it only the AVX2 rows can run."""
    with open("/proc/cpuinfo") as f:
        flags = next((l.split(":", 1)[1].split() for l in f if l.startswith("flags")), [])
    return all(x in flags for x in ("avx512f", "avx512bw", "avx512vl", "avx512vbmi", "avx512_vnni"))


def weight_bytes(path):
    """Bytes of weights one token reads, and the multiply-adds of its matrix
    products (token_embd is read one row per token, unless it is also the
    output)."""
    r = gguf.GGUFReader(path)
    tied = not any(t.name == "output.weight" for t in r.tensors)
    nbytes = macs = 0
    for t in r.tensors:
        if t.name == "token_embd.weight" and not tied:
            continue
        nbytes += int(t.n_bytes)
        if len(t.shape) == 2:
            macs += int(t.n_elements)
    return nbytes, macs


def peaks():
    """{(kind, threads): multiply-adds per second} from tools/peak-probe.c."""
    exe = os.path.join("/tmp", "nanollama-peak-probe")
    subprocess.run(["gcc", "-O2", "-pthread", os.path.join(ROOT, "tools", "peak-probe.c"), "-o", exe],
                   check=True)
    out = {}
    for line in subprocess.run([exe], capture_output=True, text=True, check=True).stdout.splitlines():
        kind, th, g = line.split()
        out[(kind, int(th))] = float(g) * 1e9
    return out


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


class Llama:
    def __init__(self, path, threads):
        import llama_cpp as L

        @L.llama_log_callback
        def quiet(level, text, user_data):
            pass
        self.quiet = quiet
        L.llama_log_set(quiet, None)
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


def llama_worker(path, threads, reps):
    """Child process: one llama.cpp context, a warm-up, then `reps` pp and tg
    runs; prints them as two lines of numbers."""
    ll = Llama(path, threads)
    ll.pp(16)
    pp, tg = [], []
    for _ in range(reps):
        pp.append(ll.pp())
        tg.append(ll.tg())
    ll.close()
    print("pp", *pp)
    print("tg", *tg)


def llama_parallel_worker(path, threads, n, p, t, reps=1):
    """Child process: N conversations in one llama.cpp context (see the module
    docstring); a warm-up, then `reps` timed runs; prints `par RATE...` and a
    `ctx ...` line with the context llama.cpp made."""
    import llama_cpp as L

    logs = []

    @L.llama_log_callback
    def keep(level, text, user_data):
        logs.append(text.decode(errors="replace"))
    L.llama_log_set(keep, None)
    model = L.llama_model_load_from_file(path.encode(), L.llama_model_default_params())
    assert model, path
    cp = L.llama_context_default_params()
    cp.n_seq_max = n
    cp.n_ctx = -(-n * (p + t) // 256) * 256
    cp.n_batch = max(cp.n_batch, p, n)
    cp.n_ubatch = max(cp.n_ubatch, p, n)
    cp.n_threads = cp.n_threads_batch = threads
    ctx = L.llama_init_from_model(model, cp)
    assert ctx
    text = "".join(logs)
    fa = "enabled" if "Flash Attention enabled" in text else "disabled" if "Flash Attention disabled" in text \
        or "flash_attn            = disabled" in text else "?"
    batch = L.llama_batch_init(max(p, n), 0, 1)
    rng = np.random.default_rng(42)
    prompts = rng.integers(4, 32000, (n, p))
    steps = rng.integers(4, 32000, (t, n))

    def decode(toks, poss, seqs, logits):
        for i, (tok, pos, sq, lg) in enumerate(zip(toks, poss, seqs, logits)):
            batch.token[i], batch.pos[i], batch.n_seq_id[i], batch.seq_id[i][0] = int(tok), pos, 1, sq
            batch.logits[i] = lg
        batch.n_tokens = len(toks)
        r = L.llama_decode(ctx, batch)
        assert r == 0, f"llama_decode returned {r}"

    def run():
        L.llama_memory_clear(L.llama_get_memory(ctx), True)
        for i in range(n):
            decode(prompts[i], range(p), [i] * p, [False] * (p - 1) + [True])
        L.llama_synchronize(ctx)
        t0 = time.perf_counter()
        for s in range(t):
            decode(steps[s], [p + s] * n, range(n), [True] * n)
        L.llama_synchronize(ctx)
        return n * t / (time.perf_counter() - t0)

    run()
    rates = [run() for _ in range(reps)]
    print("par", *rates)
    print(f"ctx n_seq_max={L.llama_n_seq_max(ctx)} n_ctx={L.llama_n_ctx(ctx)} n_ctx_seq={L.llama_n_ctx_seq(ctx)} "
          f"n_batch={L.llama_n_batch(ctx)} n_ubatch={L.llama_n_ubatch(ctx)} kv_unified={cp.kv_unified} "
          f"flash_attn={L.llama_flash_attn_type_name(cp.flash_attn_type).decode()}->{fa}")
    L.llama_batch_free(batch)
    L.llama_free(ctx)
    L.llama_model_free(model)


def llama_parallel(path, threads, n, p, t):
    py = sys.executable if has_avx512() else AVX2_PYTHON
    r = subprocess.run([py, os.path.abspath(__file__), "--llama-parallel-worker", path, str(threads), str(n),
                        str(p), str(t)], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"llama.cpp parallel worker failed ({path}, N={n}):\n{r.stdout[-2000:]}{r.stderr[-2000:]}")
    lines = dict(l.split(" ", 1) for l in r.stdout.strip().splitlines())
    return float(lines["par"].split()[0]), lines["ctx"]


def ours_parallel(path, threads, n, p, t):
    """nanollama's aggregate rate of N conversations, and its scalar types."""
    import re
    exe = os.path.join(ROOT, "target", "release", "examples", "nanollama")
    if not os.path.exists(exe):
        sys.exit(f"{exe} is missing: cargo build --release --example nanollama")
    cmd = [exe, "bench", path, "--parallel", str(n), "--pp", str(p), "--tg", str(t), "--threads", str(threads),
           "--reps", "1"]
    env = dict(os.environ)
    env.pop("NANOLLAMA_KERNELS", None)
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    want = re.compile(rf"^tg{t} parallel {n}: ([0-9.eE+-]+) tok/s\s*$", re.M)
    got = want.search(r.stdout)
    if r.returncode != 0 or not got:
        sys.exit(f"`{' '.join(cmd)}` did not give a line `tg{t} parallel {n}: RATE tok/s` "
                 f"(exit code {r.returncode}); does this nanollama bench support --parallel yet?\n"
                 f"stdout:\n{r.stdout[-1500:]}\nstderr:\n{r.stderr[-1500:]}")
    sc = re.search(r"^scalar kernels: (.*)$", r.stdout, re.M)
    return float(got.group(1)), sc.group(1).strip() if sc else "none"


def parallel_table(models, threads, ns, a):
    cols = ["model", "type", "threads", "N", "llama.cpp tok/s", "nanollama tok/s", "ratio (nanollama/llama.cpp)",
            "nanollama N / N=1", "llama.cpp N / N=1"]
    print("| " + " | ".join(cols) + " |")
    print("|" + " --- |" * len(cols), flush=True)
    m = statistics.median
    ctxs, notes = {}, []
    for s, t, path in models:
        for th in threads:
            base = {}
            for n in ns:
                lr, orr = [], []
                for _ in range(a.reps):
                    o, scalar = ours_parallel(path, th, n, a.par_pp, a.par_tg)
                    orr.append(o)
                    l, ctx = llama_parallel(path, th, n, a.par_pp, a.par_tg)
                    lr.append(l)
                    ctxs.setdefault(n, ctx)
                if scalar != "none":
                    notes.append(f"{s} {t} {th} threads N={n}: nanollama ran scalar kernels for {scalar}")
                lm, om = m(lr), m(orr)
                if n == 1:
                    base = {"l": lm, "o": om}
                rel = (lambda k, v: f"{v / base[k]:.2f}" if base else "n/a")
                row = [s, t, th, n, f"{lm:.2f}", f"{om:.2f}", f"{om / lm:.2f}", rel("o", om), rel("l", lm)]
                print("| " + " | ".join(map(str, row)) + " |", flush=True)
    print()
    for n, ctx in sorted(ctxs.items()):
        print(f"llama.cpp context at N={n}: {ctx}")
    for x in notes:
        print(x)


def llama(path, threads, avx2):
    py = AVX2_PYTHON if avx2 else sys.executable
    out = subprocess.run([py, os.path.abspath(__file__), "--llama-worker", path, str(threads)],
                         capture_output=True, text=True, check=True).stdout
    vals = {l.split()[0]: list(map(float, l.split()[1:])) for l in out.strip().splitlines()}
    return vals["pp"][0], vals["tg"][0]


def ours(path, threads, avx2=False, huge=False):
    """nanollama's pp128 and tg64, and the weight types it ran scalar."""
    exe = os.path.join(ROOT, "target", "release", "examples", "nanollama")
    env = dict(os.environ)
    env.pop("NANOLLAMA_KERNELS", None)
    if avx2:
        env["NANOLLAMA_KERNELS"] = "avx2"
    out = subprocess.run([exe, "bench", path, "--pp", "128", "--tg", "64", "--threads", str(threads),
                          "--reps", "1"] + (["--hugepages"] if huge else []),
                         capture_output=True, text=True, check=True, env=env).stdout
    vals = dict(line.split(": ", 1) for line in out.strip().splitlines())
    scalar = vals.get("scalar kernels", "none").strip()
    return float(vals["pp128"].split()[0]), float(vals["tg64"].split()[0]), scalar


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--llama-worker":
        llama_worker(sys.argv[2], int(sys.argv[3]), 1)
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--llama-parallel-worker":
        llama_parallel_worker(sys.argv[2], *map(int, sys.argv[3:]))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--quantize-worker":
        quantize_worker(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", default="stories110M,tinyllama-1.1B")
    ap.add_argument("--types", default=ALL_TYPES)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--avx2", action="store_true")
    ap.add_argument("--no-real", action="store_true")
    ap.add_argument("--hugepages", action="store_true")
    ap.add_argument("--dir", default="/tmp/nanollama-bench")
    ap.add_argument("--parallel", help="e.g. 1,4,8,16: aggregate rate of N conversations instead of pp/tg")
    ap.add_argument("--par-pp", type=int, default=32, help="prompt tokens per conversation (--parallel)")
    ap.add_argument("--par-tg", type=int, default=32, help="generation steps (--parallel)")
    a = ap.parse_args()
    if a.parallel and (a.avx2 or a.hugepages):
        sys.exit("--parallel does not run with --avx2 or --hugepages")
    avx512 = has_avx512()
    if not avx512:
        print("this CPU has no AVX-512 (F, BW, VL, VBMI, VNNI): AVX2 rows only, against the AVX2 llama.cpp",
              flush=True)
    if (a.avx2 or not avx512) and not os.path.exists(AVX2_PYTHON):
        sys.exit(f"the AVX2 rows need {AVX2_PYTHON}: run bash tools/setup-llama-avx2.sh")
    isas = (["AVX-512"] if avx512 else []) + (["AVX2"] if a.avx2 or not avx512 else [])
    os.makedirs(a.dir, exist_ok=True)
    threads = list(map(int, a.threads.split(",")))
    bw = {th: bandwidth(th) for th in threads}
    pk = peaks()
    for th in threads:
        have = ", ".join(f"{k} {v / 1e9:.0f}" for (k, t), v in sorted(pk.items()) if t == th)
        print(f"{th} thread{'s' if th > 1 else ''}: read bandwidth (numpy sum) {bw[th] / 1e9:.1f} GB/s; "
              f"peak (tools/peak-probe.c) {have} GMAC/s", flush=True)
    models = []
    if not a.no_real:
        if not os.path.exists(REAL[2]):
            sys.exit(f"{REAL[2]} is missing: run bash tools/fetch-smollm2.sh (or pass --no-real)")
        models.append(REAL)
    for s in a.shapes.split(","):
        for t in a.types.split(","):
            models.append((s, t, make_model(a.dir, s, t)))
    if a.parallel:
        parallel_table(models, threads, sorted(map(int, a.parallel.split(","))), a)
        return
    cols = ["model", "type", "ISA", "threads", "llama.cpp pp128", "nanollama pp128", "pp ratio",
            "llama.cpp pp / peak", "nanollama pp / peak", "llama.cpp tg64", "nanollama tg64", "tg ratio",
            "tg floor", "llama.cpp tg / floor", "nanollama tg / floor", "note"]
    if a.hugepages:
        cols += ["2 MiB pages: pp128", "ratio", "tg64", "ratio"]
    print("| " + " | ".join(cols) + " |")
    print("|" + " --- |" * len(cols), flush=True)
    m = statistics.median
    for s, t, path in models:
        nbytes, macs = weight_bytes(path)
        for isa in isas:
            avx2 = isa == "AVX2"
            for th in threads:
                floor = bw[th] / nbytes
                kind = ("f32-" if t in ("F16", "BF16") else "int8-") + ("avx2" if avx2 else "avx512")
                if t == "BF16" and not avx2 and ("bf16-avx512", th) in pk:
                    kind = "bf16-avx512"
                peak = pk[(kind, th)] / macs
                lpp, ltg, opp, otg, hpp, htg = [], [], [], [], [], []
                scalar = "none"
                for _ in range(a.reps):
                    p, g = llama(path, th, avx2)
                    lpp.append(p)
                    ltg.append(g)
                    p, g, scalar = ours(path, th, avx2)
                    opp.append(p)
                    otg.append(g)
                    if a.hugepages:
                        p, g, _ = ours(path, th, avx2, huge=True)
                        hpp.append(p)
                        htg.append(g)
                note = "" if scalar == "none" else f"scalar: {scalar}"
                row = [s, t, isa, th, f"{m(lpp):.1f}", f"{m(opp):.1f}", f"{m(opp) / m(lpp):.2f}",
                       f"{m(lpp) / peak:.0%}", f"{m(opp) / peak:.0%}", f"{m(ltg):.2f}", f"{m(otg):.2f}",
                       f"{m(otg) / m(ltg):.2f}", f"{floor:.1f}", f"{m(ltg) / floor:.0%}",
                       f"{m(otg) / floor:.0%}", note]
                if a.hugepages:
                    row += [f"{m(hpp):.1f}", f"{m(hpp) / m(lpp):.2f}", f"{m(htg):.2f}", f"{m(htg) / m(ltg):.2f}"]
                print("| " + " | ".join(map(str, row)) + " |", flush=True)


if __name__ == "__main__":
    main()
