#!/usr/bin/env python3
"""llama.cpp's default sampler chain on the same 128256 logits that
`nanollama sample --bench` times. Run: python3 tools/bench_sampler_llama.py LOGITS.f32
Only llama_sampler_apply is timed (the array is refilled outside the clock)."""
import ctypes, sys, time, numpy as np, llama_cpp as L
lg = np.fromfile(sys.argv[1], dtype='<f4'); n = len(lg)
tmpl = (L.llama_token_data * n)(*[L.llama_token_data(i, float(v), 0.0) for i, v in enumerate(lg)])
work = (L.llama_token_data * n)()
chain = L.llama_sampler_chain_init(L.llama_sampler_chain_default_params())
pen = L.llama_sampler_init_penalties(n, 64, 1.1, 0.0, 0.0)
for t in [1,2,3,4,5,6,7,8]: L.llama_sampler_accept(pen, t)
for s in [pen, L.llama_sampler_init_top_k(40), L.llama_sampler_init_typical(1.0, 0), L.llama_sampler_init_top_p(0.95, 0),
          L.llama_sampler_init_min_p(0.05, 0), L.llama_sampler_init_xtc(0.0, 0.1, 0, 1), L.llama_sampler_init_temp(0.8), L.llama_sampler_init_dist(1)]:
    L.llama_sampler_chain_add(chain, s)
ts = []
for _ in range(300):
    ctypes.memmove(work, tmpl, ctypes.sizeof(tmpl))
    arr = L.llama_token_data_array(work, n, -1, False)
    t = time.perf_counter(); L.llama_sampler_apply(chain, ctypes.byref(arr)); ts.append((time.perf_counter() - t) * 1e6)
ts.sort(); print(f"llama.cpp default chain, n_vocab {n}: median {ts[len(ts)//2]:.1f} us, min {ts[0]:.1f} us")
