//! The LLaMA forward pass over a batch of tokens: embedding, then per block
//! RMSNorm → attention (RoPE, grouped-query heads over the KV cache) →
//! residual → RMSNorm → SwiGLU feed-forward → residual, then the final norm
//! and the output projection. The qwen2 variant is the same block with
//! biases and NEOX RoPE: each projection adds its bias when the file has
//! one, and RoPE follows `Model::rope`.
//!
//! Activations are row-major `n_tok × width` matrices, so each weight row is
//! read once per batch. The forward pass cannot fail: the context validates
//! tokens, positions and sizes before calling it.

use crate::context::Seqs;
use crate::kernels::{matmul, matmul_many, rmsnorm, rope, rope_table, softmax, swiglu};
use crate::model::{slot, Config, Model};
use crate::parallel::{for_rows, DisjointMut, Parallel};
use crate::quant::{dequantize_row, f16_to_f32};
use half::f16;

/// The KV cache of a context: per layer, `n_ctx` rows of `kv_dim` keys (and
/// values), in f32 or in f16 bits.
pub enum KvCache<'a> {
    F32 { k: &'a mut [f32], v: &'a mut [f32] },
    F16 { k: &'a mut [u16], v: &'a mut [u16] },
}

/// Activation buffers of one forward pass, each sized for its most rows (a
/// context's `n_batch`, or a [`crate::context::Batch`]'s `max_tokens`; see
/// `context`). Empty (the default) while a context lends them to a pass.
#[derive(Default)]
pub struct Scratch<'a> {
    /// Residual stream, `rows × dim`.
    pub x: &'a mut [f32],
    /// Normed input, then attention output: `rows × max(dim, q_dim)`.
    pub xb: &'a mut [f32],
    /// Output of a projection before it is added back: `rows × dim`.
    pub xb2: &'a mut [f32],
    /// Queries, `rows × q_dim`.
    pub q: &'a mut [f32],
    /// New keys and values, `rows × kv_dim` each.
    pub k: &'a mut [f32],
    pub v: &'a mut [f32],
    /// Feed-forward hidden, `rows × ffn_dim` each.
    pub hb: &'a mut [f32],
    pub hb2: &'a mut [f32],
    /// RoPE `(cos, sin)` pairs, `rows × rope_dim`.
    pub rope: &'a mut [f32],
    /// Logits, `n_outputs × n_vocab`.
    pub logits: &'a mut [f32],
    /// Matrix-product inputs converted to the weights' input form (see
    /// `quant::ActType`); empty when inputs stay f32.
    pub act: &'a mut [u8],
}

/// The conversion scratch, if inputs are converted.
fn act(a: &mut [u8]) -> Option<&mut [u8]> {
    if a.is_empty() {
        None
    } else {
        Some(a)
    }
}

/// Runs one pass over the weights for every sequence of `seqs`: sequence
/// `i` appends its `step.n` tokens (the next ones of `tokens`, in order) at
/// its position, its keys and values are stored in its own cache, and its
/// attention runs over that cache alone. The matrix products take all the
/// rows at once. Writes the logits the sequences ask for into `s.logits`,
/// sequence by sequence (every row of one that keeps all logits, else its
/// last).
///
/// Every row's arithmetic is the same whatever the other rows are (the
/// kernels give one row the same bits in any batch, and attention and the
/// norms are per row), so a sequence's logits do not depend on its company.
pub fn forward(
    model: &Model<'_>,
    s: &mut Scratch<'_>,
    seqs: &mut Seqs<'_, '_>,
    tokens: &[u32],
    par: &dyn Parallel,
) {
    let c = model.config();
    let n = tokens.len();
    let (dim, q_dim, kv_dim) = (c.dim, c.q_dim(), c.kv_dim());

    // Token embeddings.
    let embd = model.token_embd();
    for (b, &tok) in tokens.iter().enumerate() {
        dequantize_row(
            embd.ty,
            embd.row(tok as usize),
            &mut s.x[b * dim..(b + 1) * dim],
        );
    }
    // Each sequence's rows, and the rotation angles of each row's position
    // (shared by every layer).
    let rp = model.rope();
    let mut row = 0;
    for i in 0..seqs.len() {
        let seq = seqs.get_mut(i);
        seq.step.row0 = row;
        for j in 0..seq.step.n {
            let cs = &mut s.rope[(row + j) * c.rope_dim..(row + j + 1) * c.rope_dim];
            rope_table(cs, seq.pos + j, &rp);
        }
        row += seq.step.n;
    }
    debug_assert_eq!(row, n);

    for l in 0..c.n_layers {
        let w = |k| model.layer_matrix(l, k);
        // Attention: x += Wo · attn(rmsnorm(x)).
        norm_rows(par, s.xb, s.x, n, dim, w(slot::ATTN_NORM).data, c.rms_eps);
        let (wq, wk, wv) = (w(slot::ATTN_Q), w(slot::ATTN_K), w(slot::ATTN_V));
        let outs: &mut [&mut [f32]] = &mut [&mut *s.q, &mut *s.k, &mut *s.v];
        matmul_many(par, &[&wq, &wk, &wv], s.xb, n, outs, act(s.act));
        add_bias(&mut s.q[..n * q_dim], model.layer_bias(l, slot::ATTN_Q));
        add_bias(&mut s.k[..n * kv_dim], model.layer_bias(l, slot::ATTN_K));
        add_bias(&mut s.v[..n * kv_dim], model.layer_bias(l, slot::ATTN_V));
        for b in 0..n {
            let cs = &s.rope[b * c.rope_dim..(b + 1) * c.rope_dim];
            rope(
                &mut s.q[b * q_dim..(b + 1) * q_dim],
                c.head_dim,
                cs,
                rp.neox,
            );
            rope(
                &mut s.k[b * kv_dim..(b + 1) * kv_dim],
                c.head_dim,
                cs,
                rp.neox,
            );
        }
        for i in 0..seqs.len() {
            let seq = seqs.get_mut(i);
            let rows = seq.step.row0 * kv_dim..(seq.step.row0 + seq.step.n) * kv_dim;
            let (k, v) = (&s.k[rows.clone()], &s.v[rows]);
            store_kv(&mut seq.kv, l, seq.n_ctx, kv_dim, seq.pos, k, v);
        }
        let round = !s.act.is_empty();
        attention(c, seqs, l, s.q, s.xb, n, round, par);
        matmul(par, &w(slot::ATTN_OUTPUT), s.xb, n, s.xb2, act(s.act));
        add_bias(
            &mut s.xb2[..n * dim],
            model.layer_bias(l, slot::ATTN_OUTPUT),
        );
        add(&mut s.x[..n * dim], &s.xb2[..n * dim]);

        // Feed-forward: x += Wdown · (silu(Wgate · h) * (Wup · h)), h = rmsnorm(x).
        norm_rows(par, s.xb, s.x, n, dim, w(slot::FFN_NORM).data, c.rms_eps);
        let (wg, wu) = (w(slot::FFN_GATE), w(slot::FFN_UP));
        let outs: &mut [&mut [f32]] = &mut [&mut *s.hb, &mut *s.hb2];
        matmul_many(par, &[&wg, &wu], s.xb, n, outs, act(s.act));
        add_bias(
            &mut s.hb[..n * c.ffn_dim],
            model.layer_bias(l, slot::FFN_GATE),
        );
        add_bias(
            &mut s.hb2[..n * c.ffn_dim],
            model.layer_bias(l, slot::FFN_UP),
        );
        par_swiglu(par, &mut s.hb[..n * c.ffn_dim], &s.hb2[..n * c.ffn_dim]);
        matmul(par, &w(slot::FFN_DOWN), s.hb, n, s.xb2, act(s.act));
        add_bias(&mut s.xb2[..n * dim], model.layer_bias(l, slot::FFN_DOWN));
        add(&mut s.x[..n * dim], &s.xb2[..n * dim]);
    }

    // Final norm and output projection, for the rows that want logits.
    let norm = model.output_norm();
    let mut n_out = 0;
    for i in 0..seqs.len() {
        let seq = seqs.get(i);
        let end = seq.step.row0 + seq.step.n;
        let first = if seq.logits_all {
            seq.step.row0
        } else {
            end - 1
        };
        for b in first..end {
            let o = &mut s.xb[n_out * dim..(n_out + 1) * dim];
            rmsnorm(o, &s.x[b * dim..(b + 1) * dim], norm, c.rms_eps);
            n_out += 1;
        }
    }
    matmul(par, &model.output(), s.xb, n_out, s.logits, act(s.act));
    add_bias(&mut s.logits[..n_out * c.n_vocab], model.output_bias());
}

/// Adds `bias` (little-endian f32, one row's width) to every row of `x`
/// (llama.cpp adds a projection's bias to its product, before anything
/// else touches it); nothing without a bias. Not inlined: eight calls per
/// block would each carry a copy (code size on small devices).
#[inline(never)]
fn add_bias(x: &mut [f32], bias: Option<&[u8]>) {
    let Some(bias) = bias else {
        return;
    };
    let width = bias.len() / 4;
    if width == 0 {
        return;
    }
    for row in x.chunks_exact_mut(width) {
        for (v, b) in row.iter_mut().zip(bias.chunks_exact(4)) {
            *v += f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        }
    }
}

/// RMSNorm of each of the `n` rows of `x` (`dim` wide) into `out`; a batch
/// in tasks of whole rows.
fn norm_rows(
    par: &dyn Parallel,
    out: &mut [f32],
    x: &[f32],
    n: usize,
    dim: usize,
    w: &[u8],
    eps: f32,
) {
    for_rows(par, &mut out[..n * dim], dim, 1, 8, &|b0, o| {
        for (o, x) in o.chunks_exact_mut(dim).zip(x[b0 * dim..].chunks_exact(dim)) {
            rmsnorm(o, x, w, eps);
        }
    });
}

/// `swiglu` over `g` in tasks of whole elements (the same bits: each
/// element's arithmetic is its own).
fn par_swiglu(par: &dyn Parallel, g: &mut [f32], u: &[f32]) {
    for_rows(par, g, 1, 64, 2048, &|i0, g| {
        swiglu(g, &u[i0..i0 + g.len()])
    });
}

fn add(x: &mut [f32], y: &[f32]) {
    for (a, b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

/// Writes the new keys and values of layer `l` (`k` and `v`, whole rows)
/// at positions `pos0..`.
fn store_kv(
    kv: &mut KvCache<'_>,
    l: usize,
    n_ctx: usize,
    kv_dim: usize,
    pos0: usize,
    k: &[f32],
    v: &[f32],
) {
    let start = (l * n_ctx + pos0) * kv_dim;
    let range = start..start + k.len();
    match kv {
        KvCache::F32 { k: kc, v: vc } => {
            kc[range.clone()].copy_from_slice(k);
            vc[range].copy_from_slice(v);
        }
        KvCache::F16 { k: kc, v: vc } => {
            for (d, s) in kc[range.clone()].iter_mut().zip(k) {
                *d = f16::from_f32(*s).to_bits();
            }
            for (d, s) in vc[range].iter_mut().zip(v) {
                *d = f16::from_f32(*s).to_bits();
            }
        }
    }
}

/// Causal attention of each sequence's queries over its own cache of layer
/// `l`, one task per sequence and query head, writing `out` (`n × q_dim`,
/// the sequences' rows in order). With `round` and an F16 cache, queries
/// and attention weights are rounded to f16 before they meet the f16 keys
/// and values, as in llama.cpp's matrix products.
#[allow(clippy::too_many_arguments)]
fn attention(
    c: &Config,
    seqs: &Seqs<'_, '_>,
    l: usize,
    q: &[f32],
    out: &mut [f32],
    n: usize,
    round: bool,
    par: &dyn Parallel,
) {
    let (hd, q_dim, kv_dim) = (c.head_dim, c.q_dim(), c.kv_dim());
    let group = c.n_heads / c.n_kv_heads;
    let scale = 1.0 / libm::sqrtf(hd as f32);
    let out = DisjointMut::new(&mut out[..n * q_dim]);
    par.run(seqs.len() * c.n_heads, &|t| {
        let (seq, h) = (seqs.get(t / c.n_heads), t % c.n_heads);
        let (n_ctx, kv) = (seq.n_ctx, &seq.kv);
        let layer = l * n_ctx * kv_dim..(l + 1) * n_ctx * kv_dim;
        let kvh = h / group;
        // SAFETY: task t alone uses row h of its sequence's score matrix
        // (the sequences are distinct, see `Seqs`).
        #[allow(unsafe_code)]
        let scores = unsafe { seq.att.range(h * n_ctx..(h + 1) * n_ctx) };
        for j in 0..seq.step.n {
            let (pos, b) = (seq.pos + j, seq.step.row0 + j);
            let qh = &q[b * q_dim + h * hd..b * q_dim + (h + 1) * hd];
            let sc = &mut scores[..pos + 1];
            // SAFETY: task t alone writes head h's slice of its sequence's
            // output rows.
            #[allow(unsafe_code)]
            let o = unsafe { out.range(b * q_dim + h * hd..b * q_dim + (h + 1) * hd) };
            o.fill(0.0);
            match kv {
                KvCache::F32 { k, v } => {
                    let (k, v) = (&k[layer.clone()], &v[layer.clone()]);
                    for (t, s) in sc.iter_mut().enumerate() {
                        let kt = &k[t * kv_dim + kvh * hd..][..hd];
                        *s = dot_f32(qh, kt) * scale;
                    }
                    softmax(sc);
                    for (t, &p) in sc.iter().enumerate() {
                        let vt = &v[t * kv_dim + kvh * hd..][..hd];
                        for (o, &x) in o.iter_mut().zip(vt) {
                            *o += p * x;
                        }
                    }
                }
                KvCache::F16 { k, v } => {
                    let (k, v) = (&k[layer.clone()], &v[layer.clone()]);
                    let r = |x: f32| {
                        if round {
                            f16::from_f32(x).to_f32()
                        } else {
                            x
                        }
                    };
                    // The query rounded to f16 once (llama.cpp's form), for
                    // the fast f16 dot product.
                    let mut q16 = [0u16; 256];
                    let fast = round && hd <= q16.len();
                    if fast {
                        for (d, &a) in q16.iter_mut().zip(qh) {
                            *d = f16::from_f32(a).to_bits();
                        }
                    }
                    // The fast kernels take a whole row of keys or values
                    // per call; the scalar loops below are their reference
                    // (the mix has the same bits; the scores sum in the F16
                    // matrix kernel's 16-lane order, as llama.cpp does).
                    let (kh, vh) = (&k[kvh * hd..], &v[kvh * hd..]);
                    if !(fast && crate::simd::scores_f16(kh, kv_dim, &q16[..hd], scale, sc)) {
                        for (t, s) in sc.iter_mut().enumerate() {
                            let kt = &kh[t * kv_dim..][..hd];
                            let mut acc = 0f32;
                            if fast {
                                // q16 holds r(qh) (the same bits, without
                                // rounding the query again for every key).
                                for (&a, &b) in q16.iter().zip(kt) {
                                    acc += f16_to_f32(a) * f16_to_f32(b);
                                }
                            } else {
                                for (a, &b) in qh.iter().zip(kt) {
                                    acc += r(*a) * f16_to_f32(b);
                                }
                            }
                            *s = acc * scale;
                        }
                    }
                    softmax(sc);
                    if crate::simd::mix_f16(o, sc, vh, kv_dim, round) {
                        continue;
                    }
                    for (t, &p) in sc.iter().enumerate() {
                        let p = r(p);
                        let vt = &vh[t * kv_dim..][..hd];
                        for (o, &x) in o.iter_mut().zip(vt) {
                            *o += p * f16_to_f32(x);
                        }
                    }
                }
            }
        }
    });
}

fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let n = a.len() / 8 * 8;
    for (ca, cb) in a[..n].chunks_exact(8).zip(b[..n].chunks_exact(8)) {
        for i in 0..8 {
            acc[i] += ca[i] * cb[i];
        }
    }
    let mut s = 0f32;
    for (x, y) in a[n..].iter().zip(&b[n..]) {
        s += x * y;
    }
    acc.iter().sum::<f32>() + s
}
