//! Small numeric kernels of the forward pass: the batched matrix product
//! (split into host tasks), RMSNorm, rotary embedding, softmax, SiLU.

use crate::model::Matrix;
use crate::parallel::{for_rows, split, DisjointMut, Parallel};
use crate::quant;

/// Rows of a matrix product handed to one task at the least: below this the
/// cost of a task outweighs its work.
const MIN_ROWS_PER_TASK: usize = 16;

/// The most inputs a kernel tile takes at once.
const MAX_C: usize = 12;

/// `out[b][r] = dot(w.row(r), x[b])` for each of the `n_tok` rows of `x`
/// (`n_tok × w.cols`), writing `out` (`n_tok × w.rows`). With `act`, the
/// inputs are first converted to the weights' [`quant::ActType`] in that
/// scratch (as llama.cpp computes); without, they meet the weights as f32.
/// Split by weight rows so that each weight row is read once per batch; every
/// output element is one scalar dot product, so the result does not depend on
/// the split.
pub fn matmul(
    par: &dyn Parallel,
    w: &Matrix<'_>,
    x: &[f32],
    n_tok: usize,
    out: &mut [f32],
    act: Option<&mut [u8]>,
) {
    let (rows, cols) = (w.rows, w.cols);
    let x = &x[..n_tok * cols];
    let mut act = act;
    if let Some(buf) = act.as_deref_mut() {
        if wide_matmul(par, &[w], x, n_tok, &mut [out], buf)
            || avx2_tiles(par, &[w], x, n_tok, &mut [out], buf)
        {
            return;
        }
    }
    let at = w.ty.act_type();
    let act = match act {
        Some(buf) if at != quant::ActType::F32 => {
            let rb = at.row_bytes(cols);
            let buf = &mut buf[..n_tok * rb];
            for (o, xb) in buf.chunks_exact_mut(rb).zip(x.chunks_exact(cols)) {
                quant::quantize_act(at, xb, o);
            }
            Some((&*buf, rb))
        }
        _ => None,
    };
    let out = &mut out[..n_tok * rows];
    let (n_tasks, per) = split(par, rows, MIN_ROWS_PER_TASK, MIN_ROWS_PER_TASK);
    let shared = DisjointMut::new(out);
    // Rows in tiles of about 16 KB of weights: a tile stays in cache while
    // every token of the batch passes over it.
    let tile = (16 * 1024 / w.row_bytes.max(1)).clamp(1, 64);
    par.run(n_tasks, &|t| {
        let r0 = t * per;
        let r1 = (r0 + per).min(rows);
        let mut t0 = r0;
        while t0 < r1 {
            let t1 = (t0 + tile).min(r1);
            let mut b = 0;
            // Four tokens at a time where a four-row kernel exists: each
            // weight block is loaded once for all four (same bits as one by
            // one).
            if let Some((a, rb)) = act {
                while b + 4 <= n_tok && crate::simd::has_four_row(w.ty) {
                    let xa: [&[u8]; 4] =
                        core::array::from_fn(|k| &a[(b + k) * rb..(b + k + 1) * rb]);
                    // SAFETY: task t alone owns rows r0..r1 of every token's
                    // output row; these four views are of different tokens'
                    // rows, disjoint, and dropped before the next are taken.
                    #[allow(unsafe_code)]
                    let mut o: [&mut [f32]; 4] = core::array::from_fn(|k| unsafe {
                        shared.range((b + k) * rows + t0..(b + k) * rows + t1)
                    });
                    for (i, r) in (t0..t1).enumerate() {
                        let row = w.row(r);
                        // (Scalar if the fast kernels were switched off since.)
                        let v = crate::simd::dot_act4(w.ty, row, xa, cols).unwrap_or_else(|| {
                            core::array::from_fn(|k| quant::dot_act(w.ty, row, xa[k], cols))
                        });
                        for (o, v) in o.iter_mut().zip(v) {
                            o[i] = v;
                        }
                    }
                    b += 4;
                }
            }
            for b in b..n_tok {
                // SAFETY: task t alone owns rows r0..r1 of every token's
                // output row; the ranges of different tasks and tokens are
                // disjoint, and this view is dropped before the next is taken.
                #[allow(unsafe_code)]
                let o = unsafe { shared.range(b * rows + t0..b * rows + t1) };
                match act {
                    Some((a, rb)) => {
                        let xa = &a[b * rb..(b + 1) * rb];
                        for (r, o) in (t0..t1).zip(o.iter_mut()) {
                            *o = quant::dot_act(w.ty, w.row(r), xa, cols);
                        }
                    }
                    None => {
                        let xb = &x[b * cols..(b + 1) * cols];
                        for (r, o) in (t0..t1).zip(o.iter_mut()) {
                            *o = quant::dot(w.ty, w.row(r), xb);
                        }
                    }
                }
            }
            t0 = t1;
        }
    });
}

/// Several matrix products of the same input (`outs[i] = ws[i] · x`, as
/// [`matmul`] computes each): with the AVX-512 kernels and matrices of one
/// type, the input is converted once and all rows run in one round of
/// tasks (one wait for the host's threads instead of one per matrix).
pub fn matmul_many(
    par: &dyn Parallel,
    ws: &[&Matrix<'_>],
    x: &[f32],
    n_tok: usize,
    outs: &mut [&mut [f32]],
    act: Option<&mut [u8]>,
) {
    let mut act = act;
    if let Some(buf) = act.as_deref_mut() {
        if wide_matmul(par, ws, x, n_tok, outs, buf) || avx2_tiles(par, ws, x, n_tok, outs, buf) {
            return;
        }
    }
    for (w, out) in ws.iter().zip(outs.iter_mut()) {
        matmul(par, w, x, n_tok, out, act.as_deref_mut());
    }
}

/// The AVX-512 path of [`matmul_many`]; false (nothing done) where it does
/// not apply (another level, mixed types, too small a scratch).
fn wide_matmul(
    par: &dyn Parallel,
    ws: &[&Matrix<'_>],
    x: &[f32],
    n_tok: usize,
    outs: &mut [&mut [f32]],
    buf: &mut [u8],
) -> bool {
    let Some(w0) = ws.first() else {
        return true;
    };
    if ws.iter().any(|w| w.ty != w0.ty || w.cols != w0.cols) || ws.len() > 4 {
        return false;
    }
    let Some(wide) = crate::simd::wide(w0.ty) else {
        return false;
    };
    let batch = n_tok > 1;
    let (cb, fewer) = (wide.c_big(), wide.fewer());
    let plan = TilePlan {
        rb: wide.row_bytes(w0.cols, batch),
        prepare: &|x, o| wide.prepare(x, o, batch),
        block: &|_, w, wrb, a, n, o| wide.block(w, wrb, a, n, o, batch),
        inputs: &|left| match left {
            l if l >= cb => cb,
            l if fewer => l,
            _ => 1,
        },
        tile_rows: |rb| (64 * 1024 / rb.max(1)).clamp(4, 256),
    };
    tiled_matmul(par, ws, x, n_tok, outs, buf, &plan)
}

/// How [`tiled_matmul`] drives one family of tiles (AVX-512 or AVX2).
struct TilePlan<'k> {
    /// Bytes of one prepared input row.
    rb: usize,
    /// Prepares one input row (`rb` bytes).
    prepare: &'k (dyn Fn(&[f32], &mut [u8]) + Sync),
    /// `block(m, w, wrb, a, n, out)`: rows `w` of matrix `m` against the
    /// prepared inputs `a` (as `Tiles::block` and its kin).
    #[allow(clippy::type_complexity)]
    block: &'k (dyn Fn(usize, &[u8], usize, &[&[u8]], usize, &mut [&mut [f32]]) + Sync),
    /// Inputs per call when `left` remain (at most [`MAX_C`]).
    inputs: &'k (dyn Fn(usize) -> usize + Sync),
    /// Rows per cache tile of a batch, for rows of `row_bytes`.
    tile_rows: fn(usize) -> usize,
}

/// The AVX2 tiles (F16/BF16 [`crate::simd::Tiles`], the 32-weight block
/// types [`crate::simd::QTiles`], the K-quants [`crate::simd::KTiles`])
/// for up to four matrices of one width meeting the same input; false
/// (nothing done) where they do not apply (another type or level, mixed
/// families, too small a scratch).
fn avx2_tiles(
    par: &dyn Parallel,
    ws: &[&Matrix<'_>],
    x: &[f32],
    n_tok: usize,
    outs: &mut [&mut [f32]],
    buf: &mut [u8],
) -> bool {
    let Some(w0) = ws.first() else {
        return true;
    };
    if ws.len() > 4 || ws.iter().any(|w| w.cols != w0.cols) {
        return false;
    }
    let cols = w0.cols;
    let same_type = ws.iter().all(|w| w.ty == w0.ty);
    if let Some(k) = crate::simd::tiles(w0.ty).filter(|_| same_type) {
        let plan = TilePlan {
            rb: k.row_bytes(cols),
            prepare: &|x, o| k.prepare(x, o),
            block: &|_, w, wrb, a, n, o| k.block(w, wrb, a, n, o),
            inputs: &|left| left.min(4),
            // A multiple of the tiles' 3 rows (and 4 for the 4 x 2 tile).
            tile_rows: |rb| (16 * 1024 / rb.max(1) / 12 * 12).clamp(12, 96),
        };
        return tiled_matmul(par, ws, x, n_tok, outs, buf, &plan);
    }
    if let Some(k) = crate::simd::qtiles(w0.ty).filter(|_| same_type) {
        let plan = TilePlan {
            rb: k.row_bytes(cols),
            prepare: &|x, o| k.prepare(x, o),
            block: &|_, w, wrb, a, n, o| k.block(w, wrb, a, n, o),
            inputs: &|left| if left >= 8 { 8 } else { left.min(4) },
            tile_rows: |rb| (16 * 1024 / rb.max(1) / 8 * 8).clamp(8, 128),
        };
        return tiled_matmul(par, ws, x, n_tok, outs, buf, &plan);
    }
    // K-quants: any mix of types shares one input layout (Q8_K).
    let mut ks = [None; 4];
    for (k, w) in ks.iter_mut().zip(ws) {
        *k = crate::simd::ktiles(w.ty);
        if k.is_none() {
            return false;
        }
    }
    let Some(k0) = ks[0] else {
        return false;
    };
    let plan = TilePlan {
        rb: k0.row_bytes(cols),
        prepare: &|x, o| k0.prepare(x, o),
        block: &|m, w, wrb, a, n, o| {
            if let Some(k) = ks[m] {
                k.block(w, wrb, a, n, o);
            }
        },
        inputs: &|left| left.min(crate::simd::KTiles::MAX_C),
        tile_rows: |rb| (16 * 1024 / rb.max(1)).clamp(4, 64),
    };
    tiled_matmul(par, ws, x, n_tok, outs, buf, &plan)
}

/// Runs `plan`'s tiles: the inputs prepared once for all the matrices (in
/// tasks of whole tokens for a batch), then every matrix's rows in one
/// round of tasks. One input: each task's rows in one pass (one stream
/// through memory); a batch: rows in tiles that stay in cache while the
/// inputs pass. Every output has the same bits whatever the batch, the
/// grouping and the number of threads (the tiles promise it).
#[allow(clippy::too_many_arguments)]
fn tiled_matmul(
    par: &dyn Parallel,
    ws: &[&Matrix<'_>],
    x: &[f32],
    n_tok: usize,
    outs: &mut [&mut [f32]],
    buf: &mut [u8],
    plan: &TilePlan<'_>,
) -> bool {
    let (cols, rb) = (ws[0].cols, plan.rb);
    if rb * n_tok > buf.len() {
        return false;
    }
    let x = &x[..n_tok * cols];
    let buf = &mut buf[..n_tok * rb];
    if n_tok < 4 {
        for (o, xb) in buf.chunks_exact_mut(rb).zip(x.chunks_exact(cols)) {
            (plan.prepare)(xb, o);
        }
    } else {
        for_rows(par, buf, rb, 1, 2, &|b0, o| {
            for (o, xb) in o
                .chunks_exact_mut(rb)
                .zip(x[b0 * cols..].chunks_exact(cols))
            {
                (plan.prepare)(xb, o);
            }
        });
    }
    let buf = &*buf;
    // Tasks of each matrix, numbered one after another.
    let mut tasks = [(0usize, 0usize); 4];
    let mut total = 0;
    for (p, w) in tasks.iter_mut().zip(ws) {
        *p = split(par, w.rows, MIN_ROWS_PER_TASK, MIN_ROWS_PER_TASK);
        total += p.0;
    }
    let shared: [DisjointMut<'_, f32>; 4] = {
        let mut it = outs.iter_mut();
        core::array::from_fn(|i| match it.next() {
            Some(o) if i < ws.len() => DisjointMut::new(&mut o[..n_tok * ws[i].rows]),
            _ => DisjointMut::new(&mut []),
        })
    };
    par.run(total, &|t| {
        let (mut t, mut m) = (t, 0);
        while t >= tasks[m].0 {
            t -= tasks[m].0;
            m += 1;
        }
        let (w, per, shared) = (ws[m], tasks[m].1, &shared[m]);
        let rows = w.rows;
        let r0 = t * per;
        let r1 = (r0 + per).min(rows);
        let tile = if n_tok == 1 {
            r1 - r0
        } else {
            (plan.tile_rows)(w.row_bytes)
        };
        let mut t0 = r0;
        while t0 < r1 {
            let t1 = (t0 + tile).min(r1);
            let wb = &w.data[t0 * w.row_bytes..t1 * w.row_bytes];
            let mut b = 0;
            while b < n_tok {
                let c = (plan.inputs)(n_tok - b).clamp(1, MAX_C);
                #[allow(unsafe_code)]
                // SAFETY: task t alone owns rows r0..r1 of every token's
                // output row of matrix m, and the views are dropped before
                // the next are taken.
                let (a, mut o) =
                    unsafe { token_views::<MAX_C>(buf, rb, shared, b, c, n_tok, rows, t0..t1) };
                (plan.block)(m, wb, w.row_bytes, &a[..c], cols, &mut o[..c]);
                b += c;
            }
            t0 = t1;
        }
    });
    true
}

/// The prepared inputs `b..b + N` of a batch (`rb` bytes each in `buf`; past
/// the last token, the last again) and the views of rows `r` of the output
/// rows (`rows` wide) of the first `c` of them (empty for the rest).
///
/// # Safety
/// No other view of rows `r` of tokens `b..b + c` in `shared` may be alive
/// while these are: the caller's task owns those rows and drops the views
/// before taking the next.
#[allow(unsafe_code, clippy::too_many_arguments, clippy::mut_from_ref)]
unsafe fn token_views<'a, const N: usize>(
    buf: &'a [u8],
    rb: usize,
    shared: &'a DisjointMut<'_, f32>,
    b: usize,
    c: usize,
    n_tok: usize,
    rows: usize,
    r: core::ops::Range<usize>,
) -> ([&'a [u8]; N], [&'a mut [f32]; N]) {
    let a = core::array::from_fn(|k| &buf[(b + k).min(n_tok - 1) * rb..][..rb]);
    let o = core::array::from_fn(|k| {
        let tok = b + k;
        let range = if k < c {
            tok * rows + r.start..tok * rows + r.end
        } else {
            0..0
        };
        // SAFETY: these views are of different tokens' rows, disjoint, and
        // no other view of them is alive (the caller's promise); the unused
        // slots are empty.
        unsafe { shared.range(range) }
    });
    (a, o)
}

/// `out = x / sqrt(mean(x²) + eps) * w`, with `w` as little-endian f32 bytes.
/// The sum of squares is accumulated in f64.
pub fn rmsnorm(out: &mut [f32], x: &[f32], w: &[u8], eps: f32) {
    let n = x.len();
    // As llama.cpp: squares in f32, summed in f64, the mean and the scale
    // in f32.
    let ss: f64 = x.iter().map(|&v| (v * v) as f64).sum();
    let mean = (ss / n as f64) as f32;
    let scale = 1.0 / libm::sqrtf(mean + eps);
    for ((o, &v), wb) in out.iter_mut().zip(x).zip(w.chunks_exact(4)) {
        *o = v * scale * f32::from_le_bytes([wb[0], wb[1], wb[2], wb[3]]);
    }
}

/// How positions become rotation angles: ggml's RoPE with its YaRN and
/// frequency-factor extensions (ops.cpp `rope_yarn`), computed in f64.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RopeParams<'a> {
    /// Dimensions rotated per head (even).
    pub n_rot: usize,
    /// `theta_i = pos * base^(-2i / n_rot)` before the factors below.
    pub base: f64,
    /// Angles are multiplied by it (`1 / rope.scaling.factor`).
    pub freq_scale: f64,
    /// YaRN's mix of extrapolated angles (0: none, plain or linear).
    pub ext_factor: f64,
    /// YaRN's correction dimensions: the ramp runs from pair `corr[0]`
    /// (extrapolated) to pair `corr[1]` (interpolated).
    pub corr: [f64; 2],
    /// cos and sin are multiplied by it (the attention-magnitude factor).
    pub mscale: f64,
    /// Dimension `i` pairs with `i + n_rot / 2` (NEOX), not `2i` with `2i + 1`.
    pub neox: bool,
    /// Per-pair divisors of the angle (`rope_freqs`), little-endian f32;
    /// empty means all 1.
    pub factors: &'a [u8],
}

impl RopeParams<'_> {
    /// Plain RoPE of `n_rot` dimensions with base `base`, adjacent pairs.
    pub fn plain(n_rot: usize, base: f32) -> RopeParams<'static> {
        RopeParams {
            n_rot,
            base: base as f64,
            freq_scale: 1.0,
            ext_factor: 0.0,
            corr: [0.0, 0.0],
            mscale: 1.0,
            neox: false,
            factors: &[],
        }
    }
}

/// Fills `cs` (`n_rot / 2` pairs of `(cos, sin)`) for position `pos`: for
/// pair `i`, `e = pos * base^(-2i / n_rot) / factor_i` (extrapolated) and
/// `f = freq_scale * e` (interpolated); with YaRN the angle is
/// `f * (1 - r) + e * r`, `r = (1 - clamp((i - lo) / max(0.001, hi - lo), 0, 1)) * ext`,
/// else `f`; cos and sin are then multiplied by `mscale`. In f64, rounded
/// once to f32 (for plain RoPE each step but the power is exact).
pub fn rope_table(cs: &mut [f32], pos: usize, p: &RopeParams<'_>) {
    let half = p.n_rot / 2;
    let [lo, hi] = p.corr;
    let mut factors = p.factors.chunks_exact(4);
    for (i, pair) in cs.chunks_exact_mut(2).take(half).enumerate() {
        let freq = libm::pow(p.base, -2.0 * i as f64 / p.n_rot as f64);
        let ff = factors
            .next()
            .map_or(1.0, |b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64);
        let extrap = pos as f64 * freq / ff;
        let interp = p.freq_scale * extrap;
        let theta = if p.ext_factor != 0.0 {
            let y = (i as f64 - lo) / (hi - lo).max(0.001);
            let ramp = (1.0 - y.clamp(0.0, 1.0)) * p.ext_factor;
            interp * (1.0 - ramp) + extrap * ramp
        } else {
            interp
        };
        pair[0] = (libm::cos(theta) * p.mscale) as f32;
        pair[1] = (libm::sin(theta) * p.mscale) as f32;
    }
}

/// Rotates each `head_dim`-wide head in `v` by the angles of `cs`
/// (`n_rot / 2` pairs): adjacent pairs `(2i, 2i+1)` (llama.cpp's
/// LLAMA_ROPE_TYPE_NORM, GGUF llama weights), or with `neox` the halves
/// `(i, i + n_rot/2)` (LLAMA_ROPE_TYPE_NEOX, qwen2); dimensions past `n_rot`
/// are left as they are.
#[inline(never)]
pub fn rope(v: &mut [f32], head_dim: usize, cs: &[f32], neox: bool) {
    let half = cs.len() / 2;
    for head in v.chunks_exact_mut(head_dim) {
        if neox {
            let (a, b) = head[..2 * half].split_at_mut(half);
            for ((x0, x1), c) in a.iter_mut().zip(b.iter_mut()).zip(cs.chunks_exact(2)) {
                let (v0, v1) = (*x0, *x1);
                *x0 = v0 * c[0] - v1 * c[1];
                *x1 = v0 * c[1] + v1 * c[0];
            }
        } else {
            for (p, c) in head.chunks_exact_mut(2).zip(cs.chunks_exact(2)) {
                let (x0, x1) = (p[0], p[1]);
                p[0] = x0 * c[0] - x1 * c[1];
                p[1] = x0 * c[1] + x1 * c[0];
            }
        }
    }
}

/// In-place softmax.
pub fn softmax(x: &mut [f32]) {
    let max = x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    if let Some(sum) = crate::simd::exp_sub(x, max) {
        // As llama.cpp: the sum in f64, its inverse rounded to f32.
        let inv = (1.0 / sum) as f32;
        for v in x.iter_mut() {
            *v *= inv;
        }
        return;
    }
    let mut sum = 0f32;
    for v in x.iter_mut() {
        *v = libm::expf(*v - max);
        sum += *v;
    }
    let inv = 1.0 / sum;
    for v in x.iter_mut() {
        *v *= inv;
    }
}

/// `gate = silu(gate) * up`, with `silu(g) = g / (1 + e^-g)`.
pub fn swiglu(gate: &mut [f32], up: &[f32]) {
    if crate::simd::swiglu(gate, up) {
        return;
    }
    for (g, &u) in gate.iter_mut().zip(up) {
        *g = *g / (1.0 + libm::expf(-*g)) * u;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::WeightType;
    use std::vec::Vec;

    /// Not a check: the speed of [`matmul`] on one thread for the K-quant
    /// types, in the shapes of a stories110M prompt of 128 tokens
    /// (`cargo test --release --lib matmul_speed -- --ignored --nocapture`),
    /// the inputs' conversion included; GMAC/s, median of several trials.
    #[test]
    #[ignore]
    fn matmul_speed() {
        use crate::quant::WeightType as W;
        let mut seed = 7u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let n_tok = 128;
        for t in [W::Q2_K, W::Q3_K, W::Q4_K, W::Q5_K, W::Q6_K] {
            let mut line = std::format!("{t:?}:");
            for (rows, cols) in [(768, 768), (2048, 768), (768, 2048)] {
                let rb = t.row_bytes(cols).unwrap();
                let mut data: Vec<u8> = (0..rows * rb).map(|_| next() as u8).collect();
                // Sane f16 scales: d (and dmin) of every block 2^-10.
                let bb = t.block_bytes();
                let at: &[usize] = match t {
                    W::Q2_K => &[80, 82],
                    W::Q3_K => &[108],
                    W::Q4_K | W::Q5_K => &[0, 2],
                    _ => &[208],
                };
                for b in data.chunks_exact_mut(bb) {
                    for &o in at {
                        b[o..o + 2].copy_from_slice(&0x1400u16.to_le_bytes());
                    }
                }
                let w = Matrix {
                    ty: t,
                    data: &data,
                    rows,
                    cols,
                    row_bytes: rb,
                };
                let x: Vec<f32> = (0..n_tok * cols)
                    .map(|_| (next() >> 40) as f32 / (1u64 << 24) as f32 - 0.5)
                    .collect();
                let mut out = std::vec![0f32; n_tok * rows];
                let mut act = std::vec![0u8; n_tok * cols * 4];
                let mut times: Vec<f64> = (0..9)
                    .map(|_| {
                        let t0 = std::time::Instant::now();
                        let par = &crate::parallel::Inline;
                        matmul(par, &w, &x, n_tok, &mut out, Some(&mut act));
                        t0.elapsed().as_secs_f64()
                    })
                    .collect();
                times.sort_by(f64::total_cmp);
                let gmac = (rows * cols * n_tok) as f64 / times[4] / 1e9;
                line += &std::format!(" {rows}x{cols} {gmac:.1}");
            }
            std::println!("{line} GMAC/s");
        }
    }

    #[test]
    fn rope_rotates_pairs() {
        let mut cs = [0f32; 4];
        rope_table(&mut cs, 1, &RopeParams::plain(4, 10000.0));
        let mut v = [1.0f32, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 1.0];
        rope(&mut v, 4, &cs, false);
        // Pair 0 of each head turns by 1 radian, pair 1 by 1/100 radian.
        assert!((v[0] - 1f32.cos()).abs() < 1e-6 && (v[1] - 1f32.sin()).abs() < 1e-6);
        assert!((v[2] - 0.01f32.cos()).abs() < 1e-6 && (v[3] - 0.01f32.sin()).abs() < 1e-6);
        assert!((v[4] + 1f32.sin()).abs() < 1e-6 && (v[5] - 1f32.cos()).abs() < 1e-6);
    }

    #[test]
    fn neox_rope_rotates_halves() {
        let mut cs = [0f32; 4];
        rope_table(&mut cs, 1, &RopeParams::plain(4, 10000.0));
        // Dimension 0 pairs with 2, 1 with 3; past n_rot nothing moves.
        let mut v = [1.0f32, 1.0, 0.0, 0.0, 7.0, 0.0, 0.0, 1.0, 0.0, 7.0];
        rope(&mut v[..5], 5, &cs, true);
        rope(&mut v[5..], 5, &cs, true);
        assert!((v[0] - 1f32.cos()).abs() < 1e-6 && (v[2] - 1f32.sin()).abs() < 1e-6);
        assert!((v[1] - 0.01f32.cos()).abs() < 1e-6 && (v[3] - 0.01f32.sin()).abs() < 1e-6);
        assert_eq!(v[4], 7.0);
        assert!((v[5] + 1f32.sin()).abs() < 1e-6 && (v[7] - 1f32.cos()).abs() < 1e-6);
        assert_eq!(v[9], 7.0);
    }

    #[test]
    fn scaled_rope_angles() {
        let mut plain = [0f32; 8];
        let mut cs = [0f32; 8];
        let p = RopeParams::plain(8, 10000.0);
        rope_table(&mut plain, 3, &p);
        // Linear: every angle divided by the factor.
        let lin = RopeParams {
            freq_scale: 0.25,
            ..p
        };
        rope_table(&mut cs, 12, &lin);
        for (a, b) in plain.iter().zip(&cs) {
            assert!((a - b).abs() < 1e-6);
        }
        // Factors: pair i's angle divided by factor i.
        let f: Vec<u8> = [1.0f32, 2.0, 4.0, 8.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let ff = RopeParams { factors: &f, ..p };
        rope_table(&mut cs, 8, &ff);
        for i in 0..4 {
            let theta = 8.0 / (1u32 << i) as f64 * 10000f64.powf(-2.0 * i as f64 / 8.0);
            assert!((cs[2 * i] as f64 - theta.cos()).abs() < 1e-6);
        }
        // YaRN: pairs below corr[0] extrapolate (plain angle), pairs past
        // corr[1] interpolate (linear), all scaled by mscale.
        let yarn = RopeParams {
            freq_scale: 0.25,
            ext_factor: 1.0,
            corr: [1.0, 2.0],
            mscale: 2.0,
            ..p
        };
        rope_table(&mut cs, 12, &yarn);
        let mut ext = [0f32; 8];
        rope_table(&mut ext, 12, &p);
        assert!((cs[0] - 2.0 * ext[0]).abs() < 1e-6 && (cs[1] - 2.0 * ext[1]).abs() < 1e-6);
        assert!((cs[6] - 2.0 * plain[6]).abs() < 1e-6 && (cs[7] - 2.0 * plain[7]).abs() < 1e-6);
    }

    #[test]
    fn rmsnorm_unit_rms() {
        let x = [3.0f32, -4.0];
        let w: Vec<u8> = [1.0f32, 2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut o = [0f32; 2];
        rmsnorm(&mut o, &x, &w, 0.0);
        let rms = (12.5f32).sqrt();
        assert!((o[0] - 3.0 / rms).abs() < 1e-6 && (o[1] + 8.0 / rms).abs() < 1e-6);
    }

    #[test]
    fn softmax_sums_to_one_and_handles_large() {
        let mut x = [1000.0f32, 999.0, -1e30];
        softmax(&mut x);
        assert!((x.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(x[0] > x[1] && x[2] == 0.0);
    }

    use crate::testutil::Backwards;

    /// `rows` random rows of `cols` weights of type `t` as stored, with
    /// finite block scales.
    fn random_matrix(
        next: &mut dyn FnMut() -> u64,
        t: WeightType,
        rows: usize,
        cols: usize,
    ) -> Vec<u8> {
        use WeightType as W;
        let rb = t.row_bytes(cols).unwrap();
        let small = |v: u64| (v >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
        match t {
            W::F16 => (0..rows * cols)
                .flat_map(|_| half::f16::from_f32(small(next())).to_bits().to_le_bytes())
                .collect(),
            W::BF16 => (0..rows * cols)
                .flat_map(|_| ((small(next()).to_bits() >> 16) as u16).to_le_bytes())
                .collect(),
            _ => {
                let mut data: Vec<u8> = (0..rows * rb).map(|_| next() as u8).collect();
                let at: &[usize] = match t {
                    W::Q2_K => &[80, 82],
                    W::Q3_K => &[108],
                    W::Q6_K => &[208],
                    W::Q4_K | W::Q5_K | W::Q4_1 | W::Q5_1 => &[0, 2],
                    _ => &[0],
                };
                for b in data.chunks_exact_mut(t.block_bytes()) {
                    for &o in at {
                        let d = half::f16::from_f32(0.01 + small(next()).abs() * 0.1);
                        b[o..o + 2].copy_from_slice(&d.to_bits().to_le_bytes());
                    }
                }
                data
            }
        }
    }

    /// The tiled matrix products through [`tiled_matmul`]: the AVX-512
    /// [`wide_matmul`] (at the AVX-512 level, every type it has tiles for)
    /// and the AVX2 [`avx2_tiles`] (wherever the x86 kernels run: the
    /// K-quants only at the AVX2 level). Both must take the work (they
    /// return true), and every output of 1 to 13 tokens, three matrices at
    /// once, tasks split for 1 and 7 threads and run in any order, has the
    /// bits of the same path on one token alone, and is within rounding of
    /// the scalar reference. Row counts leave partial tiles; lengths leave
    /// partial groups of blocks (and a tail for F16 and BF16). Says so on
    /// stderr when the CPU lacks a path and it is not compared.
    #[test]
    fn tiled_matmuls_give_one_token_bits_and_the_scalar_values() {
        use crate::simd::{level, Level};
        use WeightType as W;
        #[allow(clippy::type_complexity)]
        type Path =
            fn(&dyn Parallel, &[&Matrix<'_>], &[f32], usize, &mut [&mut [f32]], &mut [u8]) -> bool;
        let lv = level();
        let mut paths: Vec<(&str, Path)> = Vec::new();
        if lv == Level::Avx512 {
            paths.push(("AVX-512 wide_matmul", wide_matmul));
        } else {
            std::eprintln!(
                "NOTE: no AVX-512 kernels on this CPU ({lv:?}): wide_matmul not compared"
            );
        }
        if matches!(lv, Level::Avx2 | Level::Avx512) {
            paths.push(("AVX2 avx2_tiles", avx2_tiles));
        } else {
            std::eprintln!("NOTE: no AVX2 kernels on this CPU ({lv:?}): avx2_tiles not compared");
        }
        let mut seed = 11u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let types = [
            W::Q4_0,
            W::Q4_1,
            W::Q5_0,
            W::Q5_1,
            W::Q8_0,
            W::F16,
            W::BF16,
            W::Q2_K,
            W::Q3_K,
            W::Q4_K,
            W::Q5_K,
            W::Q6_K,
        ];
        let max_tok = 13;
        let mut checked = 0;
        for (name, path) in &paths {
            for t in types {
                let kquant = t.block_len() == 256;
                if *name == "AVX2 avx2_tiles" && kquant && lv != Level::Avx2 {
                    continue;
                }
                // 11 blocks of 32: an odd pair and a partial quad.
                let cols = match t.block_len() {
                    256 => 768,
                    32 => 352,
                    _ => 357,
                };
                let shapes = [37usize, 16, 70];
                let data: Vec<Vec<u8>> = shapes
                    .iter()
                    .map(|&r| random_matrix(&mut next, t, r, cols))
                    .collect();
                let ms: Vec<Matrix<'_>> = shapes
                    .iter()
                    .zip(&data)
                    .map(|(&rows, d)| Matrix {
                        ty: t,
                        data: d,
                        rows,
                        cols,
                        row_bytes: t.row_bytes(cols).unwrap(),
                    })
                    .collect();
                let ws: Vec<&Matrix<'_>> = ms.iter().collect();
                let x: Vec<f32> = (0..max_tok * cols)
                    .map(|_| ((next() >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 4.0)
                    .collect();
                let mut buf = std::vec![0u8; 4 * cols * max_tok + 64];
                // Each token alone, on one thread: the bits to meet.
                let one: Vec<Vec<Vec<f32>>> = (0..max_tok)
                    .map(|b| {
                        let mut outs: Vec<Vec<f32>> =
                            shapes.iter().map(|&r| std::vec![0f32; r]).collect();
                        let mut o: Vec<&mut [f32]> = outs.iter_mut().map(|o| &mut o[..]).collect();
                        let xb = &x[b * cols..(b + 1) * cols];
                        assert!(
                            path(&crate::parallel::Inline, &ws, xb, 1, &mut o, &mut buf),
                            "{name} {t:?} took no work"
                        );
                        outs
                    })
                    .collect();
                let at = t.act_type();
                for (b, o) in one.iter().enumerate() {
                    let mut xa = std::vec![0u8; at.row_bytes(cols)];
                    quant::quantize_act(at, &x[b * cols..(b + 1) * cols], &mut xa);
                    for (m, w) in ms.iter().enumerate() {
                        for (r, &v) in o[m].iter().enumerate() {
                            let slow = quant::dot_act_scalar(t, w.row(r), &xa, cols);
                            let tol = 1e-4 * (cols as f32).sqrt() * slow.abs().max(1.0);
                            assert!(
                                (v - slow).abs() <= tol,
                                "{name} {t:?} token {b} matrix {m} row {r}: {v} vs {slow}"
                            );
                        }
                    }
                }
                if *name == "AVX-512 wide_matmul" {
                    // The public entry points take this path at this level.
                    let n_tok = 5;
                    let mut out = std::vec![0f32; n_tok * shapes[2]];
                    matmul(
                        &Backwards(7),
                        ws[2],
                        &x[..n_tok * cols],
                        n_tok,
                        &mut out,
                        Some(&mut buf),
                    );
                    let mut outs: Vec<Vec<f32>> =
                        shapes.iter().map(|&r| std::vec![0f32; r * n_tok]).collect();
                    let mut o: Vec<&mut [f32]> = outs.iter_mut().map(|o| &mut o[..]).collect();
                    matmul_many(
                        &Backwards(7),
                        &ws,
                        &x[..n_tok * cols],
                        n_tok,
                        &mut o,
                        Some(&mut buf),
                    );
                    for b in 0..n_tok {
                        for r in 0..shapes[2] {
                            let want = one[b][2][r].to_bits();
                            assert_eq!(out[b * shapes[2] + r].to_bits(), want, "matmul {t:?}");
                            assert_eq!(
                                outs[2][b * shapes[2] + r].to_bits(),
                                want,
                                "matmul_many {t:?}"
                            );
                        }
                    }
                }
                for n_tok in 1..=max_tok {
                    for par in [&Backwards(1) as &dyn Parallel, &Backwards(7)] {
                        let mut outs: Vec<Vec<f32>> = shapes
                            .iter()
                            .map(|&r| std::vec![f32::NAN; r * n_tok])
                            .collect();
                        let mut o: Vec<&mut [f32]> = outs.iter_mut().map(|o| &mut o[..]).collect();
                        assert!(path(par, &ws, &x[..n_tok * cols], n_tok, &mut o, &mut buf));
                        for (m, out) in outs.iter().enumerate() {
                            for (b, ob) in out.chunks_exact(shapes[m]).enumerate() {
                                for (r, v) in ob.iter().enumerate() {
                                    assert_eq!(
                                        v.to_bits(),
                                        one[b][m][r].to_bits(),
                                        "{name} {t:?} n_tok={n_tok} threads={} token {b} matrix {m} row {r}",
                                        par.threads()
                                    );
                                    checked += 1;
                                }
                            }
                        }
                    }
                }
            }
        }
        std::eprintln!(
            "tiled matmuls: {checked} outputs compared ({:?})",
            paths.iter().map(|p| p.0).collect::<Vec<_>>()
        );
        if !paths.is_empty() {
            assert!(checked > 0);
        }
    }
}
