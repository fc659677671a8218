//! Context semantics: batches, positions, truncate/reset, shared models,
//! threads, KV types, head layouts, tied output, sizes.
//!
//! Wherever the library's arithmetic for one output does not depend on how
//! the work was cut (batch split, thread count, other contexts), the tests
//! assert bit-identical logits, the strongest thing that holds; only the KV
//! cache type changes the numbers, and that is compared with tolerances
//! against an independent f64 forward pass written here.
mod common;
use common::*;
use nanollama::host::ThreadPool;
use nanollama::{Context, ContextParams, Inline, KvType, Model, Parallel};
use std::collections::HashMap;

const TOKENS: [u32; 12] = [5, 17, 99, 0, 42, 42, 7, 63, 12, 88, 3, 50];

fn params(kv: KvType, all: bool) -> ContextParams {
    ContextParams {
        n_ctx: 32,
        n_batch: 16,
        kv_type: kv,
        logits_all: all,
        ..ContextParams::default()
    }
}

/// Decodes `batches` in turn on a fresh context; returns the logits of each
/// decode, concatenated.
fn run_all(
    model: &Model<'_>,
    p: ContextParams,
    batches: &[&[u32]],
    par: &dyn Parallel,
) -> Vec<f32> {
    let mut mem = AlignedBuf::new(Context::size(model, &p).unwrap());
    let mut ctx = Context::init(model, &p, mem.as_mut_slice()).unwrap();
    let mut out = Vec::new();
    for b in batches {
        ctx.decode(b, par).unwrap();
        out.extend_from_slice(ctx.logits());
    }
    out
}

/// Like [`run_all`], but only the logits of the last decode.
fn run(model: &Model<'_>, p: ContextParams, batches: &[&[u32]], par: &dyn Parallel) -> Vec<f32> {
    let mut mem = AlignedBuf::new(Context::size(model, &p).unwrap());
    let mut ctx = Context::init(model, &p, mem.as_mut_slice()).unwrap();
    for b in batches {
        ctx.decode(b, par).unwrap();
    }
    ctx.logits().to_vec()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max)
}

// ---------------------------------------------------------------------------
// An independent reference: the LLaMA forward pass in f64, token by token,
// straight from the F32 tensors the test wrote (llama.cpp's conventions for
// GGUF llama weights: adjacent-pair RoPE, query head h reads KV head
// h / (n_heads / n_kv_heads), SwiGLU, RMSNorm with eps inside the root).

fn f32_tensors(b: &GgufBuilder) -> HashMap<String, Vec<f64>> {
    b.tensors
        .iter()
        .map(|t| {
            assert_eq!(t.ty, ty::F32, "the reference reads F32 tensors only");
            let v = t
                .data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)
                .collect();
            (t.name.clone(), v)
        })
        .collect()
}

/// `w` (rows x cols, row-major) times `x`.
fn matvec(w: &[f64], x: &[f64]) -> Vec<f64> {
    w.chunks_exact(x.len())
        .map(|r| r.iter().zip(x).map(|(a, b)| a * b).sum())
        .collect()
}

fn rmsnorm(x: &[f64], w: &[f64], eps: f64) -> Vec<f64> {
    let ms = x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64;
    let s = 1.0 / (ms + eps).sqrt();
    x.iter().zip(w).map(|(v, w)| v * s * w).collect()
}

fn rope(v: &mut [f64], hd: usize, pos: usize, base: f64) {
    for head in v.chunks_exact_mut(hd) {
        for i in 0..hd / 2 {
            let theta = pos as f64 * base.powf(-2.0 * i as f64 / hd as f64);
            let (c, s) = (theta.cos(), theta.sin());
            let (a, b) = (head[2 * i], head[2 * i + 1]);
            head[2 * i] = a * c - b * s;
            head[2 * i + 1] = a * s + b * c;
        }
    }
}

/// Logits of every position of `tokens`, in f64.
fn reference_logits(b: &GgufBuilder, c: &TinyConfig, tokens: &[u32]) -> Vec<Vec<f64>> {
    let w = f32_tensors(b);
    let (dim, hd) = (c.dim, c.dim / c.n_heads);
    let group = c.n_heads / c.n_kv_heads;
    let eps = c.eps as f64;
    let mut keys = vec![Vec::<Vec<f64>>::new(); c.n_layers];
    let mut vals = vec![Vec::<Vec<f64>>::new(); c.n_layers];
    let embd = &w["token_embd.weight"];
    let out_w = w.get("output.weight").unwrap_or(embd);
    let mut logits = Vec::new();
    for (pos, &tok) in tokens.iter().enumerate() {
        let t = tok as usize;
        let mut x = embd[t * dim..(t + 1) * dim].to_vec();
        for l in 0..c.n_layers {
            let g = |n: &str| &w[&format!("blk.{l}.{n}.weight")];
            let xb = rmsnorm(&x, g("attn_norm"), eps);
            let mut q = matvec(g("attn_q"), &xb);
            let mut k = matvec(g("attn_k"), &xb);
            let v = matvec(g("attn_v"), &xb);
            rope(&mut q, hd, pos, c.rope_base as f64);
            rope(&mut k, hd, pos, c.rope_base as f64);
            keys[l].push(k);
            vals[l].push(v);
            let mut att = vec![0f64; c.n_heads * hd];
            for h in 0..c.n_heads {
                let kvh = h / group;
                let qh = &q[h * hd..(h + 1) * hd];
                let scores: Vec<f64> = keys[l]
                    .iter()
                    .map(|k| {
                        let kh = &k[kvh * hd..(kvh + 1) * hd];
                        qh.iter().zip(kh).map(|(a, b)| a * b).sum::<f64>() / (hd as f64).sqrt()
                    })
                    .collect();
                let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                let sum: f64 = e.iter().sum();
                for (p, v) in e.iter().zip(&vals[l]) {
                    for d in 0..hd {
                        att[h * hd + d] += p / sum * v[kvh * hd + d];
                    }
                }
            }
            for (x, o) in x.iter_mut().zip(matvec(g("attn_output"), &att)) {
                *x += o;
            }
            let xb = rmsnorm(&x, g("ffn_norm"), eps);
            let gate = matvec(g("ffn_gate"), &xb);
            let up = matvec(g("ffn_up"), &xb);
            let hb: Vec<f64> = gate
                .iter()
                .zip(&up)
                .map(|(g, u)| g / (1.0 + (-g).exp()) * u)
                .collect();
            for (x, o) in x.iter_mut().zip(matvec(g("ffn_down"), &hb)) {
                *x += o;
            }
        }
        let xn = rmsnorm(&x, &w["output_norm.weight"], eps);
        logits.push(matvec(out_w, &xn));
    }
    logits
}

/// Largest |library - reference| over all rows.
fn error_vs_reference(lib: &[f32], reference: &[Vec<f64>]) -> f64 {
    let flat: Vec<f64> = reference.iter().flatten().cloned().collect();
    assert_eq!(lib.len(), flat.len());
    lib.iter()
        .zip(&flat)
        .map(|(a, b)| (*a as f64 - b).abs())
        .fold(0.0, f64::max)
}

// ---------------------------------------------------------------------------
// Batches and logits

#[test]
fn all_logits_rows_match_last_token_logits() {
    for kv in [KvType::F32, KvType::F16] {
        let mut f = Fixture::tiny(&TinyConfig::default(), ty::F32, 11);
        let m = f.model();
        let all = run(&m, params(kv, true), &[&TOKENS], &Inline);
        assert_eq!(all.len(), TOKENS.len() * 100);
        for i in 1..=TOKENS.len() {
            let last = run(&m, params(kv, false), &[&TOKENS[..i]], &Inline);
            assert_eq!(last.len(), 100);
            let row = &all[(i - 1) * 100..i * 100];
            assert_eq!(bits(&last), bits(row), "{kv:?} row {i}");
        }
    }
}

#[test]
fn last_logits_is_the_last_row() {
    let mut f = Fixture::tiny(&TinyConfig::default(), ty::F16, 11);
    let m = f.model();
    for all in [false, true] {
        let p = params(KvType::F16, all);
        let mut mem = AlignedBuf::new(Context::size(&m, &p).unwrap());
        let mut ctx = Context::init(&m, &p, mem.as_mut_slice()).unwrap();
        assert!(ctx.logits().is_empty() && ctx.last_logits().is_empty());
        ctx.decode(&TOKENS[..5], &Inline).unwrap();
        assert_eq!(ctx.logits().len(), if all { 500 } else { 100 });
        let l = ctx.logits();
        assert_eq!(bits(ctx.last_logits()), bits(&l[l.len() - 100..]));
    }
}

#[test]
fn batch_splits_give_bit_identical_logits() {
    // Each output element is computed by the same arithmetic whatever the
    // batch, so the logits are bit-identical, not merely within 1e-4.
    let splits: [&[usize]; 3] = [&[12], &[5, 1, 6], &[1; 12]];
    for kv in [KvType::F32, KvType::F16] {
        for t in [ty::F32, ty::F16, ty::BF16, ty::Q8_0] {
            let mut f = Fixture::tiny(&TinyConfig::default(), t, 11);
            let m = f.model();
            let mut last = Vec::new();
            let mut rows = Vec::new();
            for split in splits {
                let mut batches = Vec::new();
                let mut at = 0;
                for &n in split {
                    batches.push(&TOKENS[at..at + n]);
                    at += n;
                }
                if t == ty::F32 {
                    last.push(bits(&run(&m, params(kv, false), &batches, &Inline)));
                }
                // With every row kept, the rows of all decodes together are
                // the rows of the one-batch decode.
                rows.push(bits(&run_all(&m, params(kv, true), &batches, &Inline)));
            }
            for i in 1..splits.len() {
                assert_eq!(rows[0], rows[i], "{kv:?} type {t} split {:?}", splits[i]);
                if t == ty::F32 {
                    assert_eq!(last[0], last[i], "{kv:?} split {:?}", splits[i]);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Truncate and reset

#[test]
fn truncate_then_redecode_gives_the_same_logits() {
    for kv in [KvType::F32, KvType::F16] {
        for all in [false, true] {
            let mut f = Fixture::tiny(&TinyConfig::default(), ty::F16, 11);
            let m = f.model();
            let p = params(kv, all);
            let mut mem = AlignedBuf::new(Context::size(&m, &p).unwrap());
            let mut ctx = Context::init(&m, &p, mem.as_mut_slice()).unwrap();
            assert_eq!(ctx.pos(), 0);
            assert!(ctx.logits().is_empty());
            ctx.decode(&TOKENS[..5], &Inline).unwrap();
            ctx.decode(&TOKENS[5..8], &Inline).unwrap();
            let first = bits(ctx.logits());
            ctx.decode(&TOKENS[8..], &Inline).unwrap();
            let end = bits(ctx.logits());
            assert_eq!(ctx.pos(), 12);
            ctx.truncate(5).unwrap();
            assert_eq!(ctx.pos(), 5);
            assert!(ctx.logits().is_empty() && ctx.last_logits().is_empty());
            ctx.decode(&TOKENS[5..8], &Inline).unwrap();
            assert_eq!(bits(ctx.logits()), first, "{kv:?} all={all}");
            ctx.decode(&TOKENS[8..], &Inline).unwrap();
            assert_eq!(bits(ctx.logits()), end, "{kv:?} all={all}");
            // A different continuation after truncation equals a fresh run of it.
            ctx.truncate(3).unwrap();
            ctx.decode(&[1, 2, 3], &Inline).unwrap();
            let fresh = run(&m, p, &[&TOKENS[..3], &[1, 2, 3]], &Inline);
            assert_eq!(bits(ctx.logits()), bits(&fresh));
            // Truncating to the current position is allowed and keeps the cache.
            ctx.truncate(6).unwrap();
            assert_eq!(ctx.pos(), 6);
            assert!(ctx.logits().is_empty());
            ctx.decode(&[4], &Inline).unwrap();
            let fresh = run(&m, p, &[&TOKENS[..3], &[1, 2, 3], &[4]], &Inline);
            assert_eq!(bits(ctx.logits()), bits(&fresh));
        }
    }
}

#[test]
fn reset_equals_a_fresh_context() {
    let mut f = Fixture::tiny(&TinyConfig::default(), ty::Q8_0, 11);
    let m = f.model();
    let p = params(KvType::F16, true);
    let fresh = run(&m, p, &[&TOKENS[..7]], &Inline);
    let mut mem = AlignedBuf::new(Context::size(&m, &p).unwrap());
    let mut ctx = Context::init(&m, &p, mem.as_mut_slice()).unwrap();
    // Fill most of the context with something else first.
    for chunk in [&[9u32; 16][..], &[77; 14]] {
        ctx.decode(chunk, &Inline).unwrap();
    }
    ctx.reset();
    assert_eq!(ctx.pos(), 0);
    assert!(ctx.logits().is_empty());
    ctx.decode(&TOKENS[..7], &Inline).unwrap();
    assert_eq!(bits(ctx.logits()), bits(&fresh));
    // And the whole context is usable again.
    ctx.reset();
    ctx.decode(&[1; 16], &Inline).unwrap();
    ctx.decode(&[2; 16], &Inline).unwrap();
    assert_eq!(ctx.pos(), 32);
}

// ---------------------------------------------------------------------------
// Sharing and threads

#[test]
fn interleaved_contexts_on_one_model_do_not_interfere() {
    let mut f = Fixture::tiny(&TinyConfig::default(), ty::F32, 11);
    let m = f.model();
    let p = params(KvType::F32, false);
    let a_alone = run(&m, p, &[&TOKENS[..6], &TOKENS[6..]], &Inline);
    let b_alone = run(&m, p, &[&[1, 2, 3], &[4, 5]], &Inline);
    let (mut ma, mut mb) = (
        AlignedBuf::new(Context::size(&m, &p).unwrap()),
        AlignedBuf::new(Context::size(&m, &p).unwrap()),
    );
    let mut a = Context::init(&m, &p, ma.as_mut_slice()).unwrap();
    let mut b = Context::init(&m, &p, mb.as_mut_slice()).unwrap();
    a.decode(&TOKENS[..6], &Inline).unwrap();
    b.decode(&[1, 2, 3], &Inline).unwrap();
    a.decode(&TOKENS[6..], &Inline).unwrap();
    b.decode(&[4, 5], &Inline).unwrap();
    assert_eq!(bits(a.logits()), bits(&a_alone));
    assert_eq!(bits(b.logits()), bits(&b_alone));
}

/// Four sequences that differ.
fn four_sequences() -> Vec<Vec<u32>> {
    (0..4u32)
        .map(|i| TOKENS.iter().map(|t| (t + i * 13) % 100).collect())
        .collect()
}

#[test]
fn contexts_share_a_model_across_threads() {
    let mut f = Fixture::tiny(&TinyConfig::default(), ty::BF16, 11);
    let m = f.model();
    let p = params(KvType::F16, true);
    let seqs = four_sequences();
    let sequential: Vec<Vec<f32>> = seqs.iter().map(|s| run(&m, p, &[s], &Inline)).collect();
    let parallel: Vec<Vec<f32>> = std::thread::scope(|sc| {
        let hs: Vec<_> = seqs
            .iter()
            .map(|s| sc.spawn(|| run_all(&m, p, &[&s[..5], &s[5..]], &Inline)))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (a, b) in sequential.iter().zip(&parallel) {
        assert_eq!(bits(a), bits(b));
    }
    assert_ne!(bits(&sequential[0]), bits(&sequential[1]));
}

#[test]
fn one_thread_pool_shared_by_several_threads() {
    // Regression test for host::ThreadPool taking one run at a time
    // (b2b67ca): before it, concurrent `run` calls from two threads mixed
    // their tasks and could hang.
    let c = TinyConfig {
        ffn: 256,
        ..TinyConfig::default()
    };
    let mut f = Fixture::tiny(&c, ty::F16, 11);
    let m = f.model();
    let p = params(KvType::F32, false);
    let seqs = four_sequences();
    let want: Vec<Vec<f32>> = seqs.iter().map(|s| run(&m, p, &[s], &Inline)).collect();
    let pool = ThreadPool::new(2);
    for _ in 0..2 {
        let got: Vec<Vec<f32>> = std::thread::scope(|sc| {
            let hs: Vec<_> = seqs
                .iter()
                .map(|s| {
                    let (m, pool) = (&m, &pool);
                    sc.spawn(move || run(m, p, &[&s[..4], &s[4..]], pool))
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (a, b) in want.iter().zip(&got) {
            assert_eq!(bits(a), bits(b));
        }
    }
}

#[test]
fn thread_count_changes_no_bit() {
    // Sizes chosen so that 2, 3 and 4 threads cut the feed-forward and
    // output matrices into different numbers of tasks.
    let c = TinyConfig {
        ffn: 192,
        vocab: 300,
        ..TinyConfig::default()
    };
    let pools: Vec<ThreadPool> = (1..=4).map(ThreadPool::new).collect();
    for t in [ty::F32, ty::F16, ty::BF16, ty::Q8_0] {
        let mut f = Fixture::tiny(&c, t, 11);
        let m = f.model();
        // The KV type only changes the attention, which is split by heads
        // whatever the weights: both KV types for one weight type suffice.
        let kvs: &[KvType] = if t == ty::Q8_0 {
            &[KvType::F32, KvType::F16]
        } else {
            &[KvType::F32]
        };
        for &kv in kvs {
            let p = params(kv, true);
            let batches: [&[u32]; 2] = [&TOKENS[..7], &TOKENS[7..]];
            let want = bits(&run_all(&m, p, &batches, &Inline));
            for pool in &pools {
                let got = bits(&run_all(&m, p, &batches, pool));
                assert_eq!(got, want, "type {t}, {kv:?}, {} threads", pool.threads());
            }
        }
    }
}

// ---------------------------------------------------------------------------
// KV types, head layouts, tied output

#[test]
fn f32_kv_is_exact_and_f16_kv_is_close() {
    for c in [
        TinyConfig::default(),
        TinyConfig {
            n_kv_heads: 1,
            tied: true,
            ..TinyConfig::default()
        },
    ] {
        let b = tiny_builder(&c, ty::F32, 5);
        let reference = reference_logits(&b, &c, &TOKENS);
        let mut f = Fixture::new(b.build());
        let m = f.model();
        let l32 = run(&m, params(KvType::F32, true), &[&TOKENS], &Inline);
        let l16 = run(&m, params(KvType::F16, true), &[&TOKENS], &Inline);
        let (e32, e16) = (
            error_vs_reference(&l32, &reference),
            error_vs_reference(&l16, &reference),
        );
        let between = max_abs_diff(&l32, &l16);
        eprintln!("max error vs f64: F32 KV {e32:e}, F16 KV {e16:e}; |F32 - F16| {between:e}");
        assert!(e32 < 1e-4, "F32 KV vs f64 reference: {e32}");
        assert!(e16 < 1e-2, "F16 KV vs f64 reference: {e16}");
        assert!(between > 0.0 && between < 1e-2, "|F32 - F16| = {between}");
        assert!(
            e32 * 10.0 < e16,
            "F32 KV should be the more exact: {e32} vs {e16}"
        );
    }
}

#[test]
fn mha_gqa_and_mqa_match_the_reference() {
    for (heads, kv) in [(4, 4), (4, 2), (4, 1), (8, 2), (8, 8), (2, 1)] {
        let c = TinyConfig {
            n_heads: heads,
            n_kv_heads: kv,
            ..TinyConfig::default()
        };
        let b = tiny_builder(&c, ty::F32, 9);
        let reference = reference_logits(&b, &c, &TOKENS);
        let mut f = Fixture::new(b.build());
        let m = f.model();
        assert_eq!((m.config().n_heads, m.config().n_kv_heads), (heads, kv));
        let l = run(&m, params(KvType::F32, true), &[&TOKENS], &Inline);
        let e = error_vs_reference(&l, &reference);
        assert!(e < 1e-4, "{heads} heads, {kv} kv heads: {e}");
    }
}

/// The same model with every KV head repeated for each query head that reads
/// it: multi-head attention that must compute exactly what the grouped model
/// does.
fn expand_to_mha(b: &GgufBuilder, c: &TinyConfig) -> GgufBuilder {
    let hd = c.dim / c.n_heads;
    let group = c.n_heads / c.n_kv_heads;
    let row = c.dim * 4; // F32 bytes of one row
    let mut out = b.clone();
    out.kv_u32("llama.attention.head_count_kv", c.n_heads as u32);
    for t in out.tensors.iter_mut() {
        if t.name.ends_with("attn_k.weight") || t.name.ends_with("attn_v.weight") {
            let mut data = Vec::new();
            for h in 0..c.n_heads {
                let kvh = h / group;
                data.extend_from_slice(&t.data[kvh * hd * row..(kvh + 1) * hd * row]);
            }
            t.data = data;
            t.dims = vec![c.dim as u64, (c.n_heads * hd) as u64];
        }
    }
    out
}

#[test]
fn grouped_heads_equal_repeated_heads_bit_for_bit() {
    for kv_heads in [2, 1] {
        let c = TinyConfig {
            n_kv_heads: kv_heads,
            ..TinyConfig::default()
        };
        let gqa = tiny_builder(&c, ty::F32, 13);
        let mha = expand_to_mha(&gqa, &c);
        let mut outs = Vec::new();
        for b in [gqa, mha] {
            let mut f = Fixture::new(b.build());
            let m = f.model();
            outs.push(bits(&run(
                &m,
                params(KvType::F16, true),
                &[&TOKENS],
                &Inline,
            )));
        }
        assert_eq!(outs[0], outs[1], "{kv_heads} kv heads");
    }
}

#[test]
fn tied_output_equals_a_copy_of_the_embedding() {
    let c = TinyConfig {
        tied: true,
        ..TinyConfig::default()
    };
    for t in [ty::F32, ty::F16, ty::Q8_0] {
        let tied = tiny_builder(&c, t, 3);
        assert!(tied.tensors.iter().all(|t| t.name != "output.weight"));
        let mut untied = tied.clone();
        let embd = tied
            .tensors
            .iter()
            .find(|t| t.name == "token_embd.weight")
            .unwrap()
            .clone();
        untied.tensor("output.weight", &embd.dims, embd.ty, embd.data.clone());
        let mut outs = Vec::new();
        for (b, is_tied) in [(tied, true), (untied, false)] {
            let mut f = Fixture::new(b.build());
            let m = f.model();
            assert_eq!(m.info().tied_output, is_tied);
            outs.push(bits(&run(
                &m,
                params(KvType::F32, true),
                &[&TOKENS],
                &Inline,
            )));
        }
        assert_eq!(outs[0], outs[1], "type {t}");
    }
}

// ---------------------------------------------------------------------------
// Sizes

#[test]
fn context_sizes() {
    let mut f = Fixture::tiny(&TinyConfig::default(), ty::F32, 11);
    let m = f.model();
    let size = |n_ctx, n_batch, kv_type, logits_all| {
        let p = ContextParams {
            n_ctx,
            n_batch,
            kv_type,
            logits_all,
            ..ContextParams::default()
        };
        Context::size(&m, &p).unwrap()
    };
    use KvType::{F16, F32};
    assert!(size(64, 8, F32, false) > size(32, 8, F32, false));
    assert!(size(32, 16, F32, false) > size(32, 8, F32, false));
    assert!(size(32, 8, F16, false) < size(32, 8, F32, false));
    assert!(size(32, 8, F32, true) > size(32, 8, F32, false));
    // 32 more positions: KV cache 2 (k, v) x 2 layers x 32 x kv_dim 32 x 4
    // bytes, and attention scores 4 heads x 32 x 4 bytes.
    assert_eq!(
        size(64, 8, F32, false) - size(32, 8, F32, false),
        2 * 2 * 32 * 32 * 4 + 4 * 32 * 4
    );
    // The same in f16 saves half of the cache part.
    assert_eq!(
        size(64, 8, F16, false) - size(32, 8, F16, false),
        2 * 2 * 32 * 32 * 2 + 4 * 32 * 4
    );
    // n_batch is capped at n_ctx.
    assert_eq!(size(8, 16, F32, true), size(8, 8, F32, true));
    // n_ctx 0 is the model's context length (64); n_batch 0 is min(512, n_ctx).
    assert_eq!(size(0, 0, F16, false), size(64, 64, F16, false));
    assert_eq!(size(0, 8, F32, true), size(64, 8, F32, true));
    let p = ContextParams::default();
    let mut mem = AlignedBuf::new(Context::size(&m, &p).unwrap());
    let mut ctx = Context::init(&m, &p, mem.as_mut_slice()).unwrap();
    assert_eq!(
        (ctx.n_ctx(), ctx.n_batch(), ctx.kv_type()),
        (64, 64, KvType::F16)
    );
    // ... and holds exactly that many positions.
    ctx.decode(&[1; 64], &Inline).unwrap();
    assert_eq!(ctx.pos(), 64);
    assert_eq!(
        ctx.decode(&[1], &Inline),
        Err(nanollama::Error::ContextFull)
    );
}
