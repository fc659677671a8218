//! WebAssembly `simd128` kernels for the inputs' standard converted forms:
//! F16 against F16, F32 against F32, Q8_0 and Q4_0 weights against Q8_0
//! inputs. Built only when the module is compiled with
//! `-C target-feature=+simd128` (a WebAssembly engine either has the
//! instructions or refuses the whole module, so there is nothing to detect
//! at run time); the other types run the scalar reference.
//!
//! Each kernel does the scalar reference's arithmetic in the reference's
//! order (`quant::dot_act_scalar`, `blocks::dot_small`): the F16 and F32
//! products go to the same eight lanes (two `f32x4`, a multiply and an add,
//! no fused multiply-add: simd128 has none) summed in the same order at the
//! end, and the block types' integer sums are exact, scaled per block as
//! the reference does. So the results are the reference's bits (NaN
//! payloads aside), whatever the batch or its split, and a module built
//! with simd128 writes the same text as one built without.
//!
//! Loads are the only unsafe operations, each from a slice whose length
//! was checked by indexing just before.
#![allow(unsafe_code)]

use crate::quant::le_f32;
use core::arch::wasm32::*;

fn f16(b: &[u8]) -> f32 {
    half::f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32()
}

#[inline]
fn load(b: &[u8]) -> v128 {
    let b = &b[..16];
    // SAFETY: 16 readable bytes (checked above); `v128_load` needs no
    // alignment.
    unsafe { v128_load(b.as_ptr().cast()) }
}

/// 16 bytes of `b` from `at`, without a bounds check (in the inner loop of
/// [`block_f16`], where the check is not elided).
///
/// # Safety
/// `at + 16 <= b.len()`.
#[inline]
unsafe fn load_at(b: &[u8], at: usize) -> v128 {
    // SAFETY: bytes at..at + 16 of `b` are readable (the caller's promise);
    // `v128_load` needs no alignment.
    unsafe { v128_load(b.as_ptr().wrapping_add(at).cast()) }
}

/// Four halves (the high 16 bits of each u32 lane, the low bits zero) to
/// f32, exactly: an arithmetic shift right by 3 and a mask put the sign in
/// place and the magnitude bits in an f32's places, a multiply by 2^112
/// scales them (exact, subnormals included: WebAssembly keeps subnormals),
/// and exponent 31 (inf, NaN) is made 255. Eight operations for four
/// values.
#[inline]
fn f16x4(w: v128) -> v128 {
    let v = v128_and(i32x4_shr(w, 3), u32x4_splat(0x8fff_e000));
    let f = f32x4_mul(v, f32x4_splat(f32::from_bits(0x7780_0000)));
    let mag = v128_and(w, u32x4_splat(0x7fff_0000));
    let special = v128_and(
        u32x4_ge(mag, u32x4_splat(0x7c00_0000)),
        u32x4_splat(0x7f80_0000),
    );
    v128_or(f, special)
}

/// Eight halves as f32, exactly: the low four and the high four (each
/// moved to the high half of a u32 lane by an interleave with zero). When
/// none of the eight has exponent 31 (inf, NaN; weights never do) the
/// fix-up for it is skipped: four operations for four values.
#[inline]
fn f16x8(x: v128) -> (v128, v128) {
    let zero = u16x8_splat(0);
    let lo = i16x8_shuffle::<0, 8, 1, 9, 2, 10, 3, 11>(zero, x);
    let hi = i16x8_shuffle::<4, 12, 5, 13, 6, 14, 7, 15>(zero, x);
    let exp31 = u16x8_ge(v128_and(x, u16x8_splat(0x7fff)), u16x8_splat(0x7c00));
    if v128_any_true(exp31) {
        return (f16x4(lo), f16x4(hi));
    }
    let finite = |w| {
        let v = v128_and(i32x4_shr(w, 3), u32x4_splat(0x8fff_e000));
        f32x4_mul(v, f32x4_splat(f32::from_bits(0x7780_0000)))
    };
    (finite(lo), finite(hi))
}

/// Sum of the reference's eight lanes (`lo` lanes 0-3, `hi` 4-7), in its
/// order: from 0, lane 0 first.
#[inline]
fn sum8(lo: v128, hi: v128) -> f32 {
    add8(0.0, lo, hi)
}

/// `s` plus the eight lanes of `lo` then `hi`, one at a time in lane order
/// (a scalar loop's running sum).
#[inline]
fn add8(mut s: f32, lo: v128, hi: v128) -> f32 {
    s += f32x4_extract_lane::<0>(lo);
    s += f32x4_extract_lane::<1>(lo);
    s += f32x4_extract_lane::<2>(lo);
    s += f32x4_extract_lane::<3>(lo);
    s += f32x4_extract_lane::<0>(hi);
    s += f32x4_extract_lane::<1>(hi);
    s += f32x4_extract_lane::<2>(hi);
    s + f32x4_extract_lane::<3>(hi)
}

/// F16 × F16 (inputs rounded to f16): eight weights a step, products and
/// sums in f32 in the reference's lanes, the tail of fewer than eight
/// scalar.
pub fn dot_f16(w: &[u8], a: &[u8], n: usize) -> f32 {
    let (w, a) = (&w[..n * 2], &a[..n * 2]);
    let full = n / 8 * 8;
    let (mut lo, mut hi) = (f32x4_splat(0.0), f32x4_splat(0.0));
    for (wc, ac) in w[..full * 2]
        .chunks_exact(16)
        .zip(a[..full * 2].chunks_exact(16))
    {
        let (x, y) = (load(wc), load(ac));
        let ((xl, xh), (yl, yh)) = (f16x8(x), f16x8(y));
        let (pl, ph) = (f32x4_mul(xl, yl), f32x4_mul(xh, yh));
        lo = f32x4_add(lo, pl);
        hi = f32x4_add(hi, ph);
    }
    let mut tail = 0f32;
    for j in full..n {
        tail += f16(&w[2 * j..]) * f16(&a[2 * j..]);
    }
    sum8(lo, hi) + tail
}

/// Input `x` for [`block_f16`]: each value rounded to f16 as the scalar
/// conversion does (`half`, nearest even), widened to f32 (4 bytes each).
pub fn prepare_f16(x: &[f32], out: &mut [u8]) {
    for (o, &v) in out[..4 * x.len()].chunks_exact_mut(4).zip(x) {
        o.copy_from_slice(&half::f16::from_f32(v).to_f32().to_le_bytes());
    }
}

/// F16 rows (`wrb` bytes each, `n` weights) × 1 to 4 inputs prepared by
/// [`prepare_f16`]: `out[c][r]` = row r · input c, each group of eight
/// weights converted once for all the inputs. Every output has the bits of
/// [`dot_f16`] on that row and input (the same products in the same lanes
/// and order), so the grouping changes nothing.
pub fn block_f16(w: &[u8], wrb: usize, a: &[&[u8]], n: usize, out: &mut [&mut [f32]]) {
    let mut c0 = 0;
    while c0 < a.len() {
        let (a, out) = (&a[c0..], &mut out[c0..]);
        c0 += match a.len() {
            1 => block_c::<1>(w, wrb, a, n, out),
            2 => block_c::<2>(w, wrb, a, n, out),
            3 => block_c::<3>(w, wrb, a, n, out),
            _ => block_c::<4>(w, wrb, a, n, out),
        };
    }
}

/// [`block_f16`] for the first `C` inputs; returns `C`.
fn block_c<const C: usize>(
    w: &[u8],
    wrb: usize,
    a: &[&[u8]],
    n: usize,
    out: &mut [&mut [f32]],
) -> usize {
    let a: [&[u8]; C] = core::array::from_fn(|c| &a[c][..4 * n]);
    let full = n / 8 * 8;
    for (r, row) in w.chunks_exact(wrb).enumerate() {
        let row = &row[..2 * n];
        let (mut lo, mut hi) = ([f32x4_splat(0.0); C], [f32x4_splat(0.0); C]);
        for (g, wc) in row[..2 * full].chunks_exact(16).enumerate() {
            let x = load(wc);
            let (wl, wh) = f16x8(x);
            for c in 0..C {
                // SAFETY: `a[c]` is 4n bytes (sliced above) and
                // 32g + 32 <= 4 * full <= 4n.
                let al = unsafe { load_at(a[c], 32 * g) };
                // SAFETY: as above.
                let ah = unsafe { load_at(a[c], 32 * g + 16) };
                lo[c] = f32x4_add(lo[c], f32x4_mul(wl, al));
                hi[c] = f32x4_add(hi[c], f32x4_mul(wh, ah));
            }
        }
        for c in 0..C {
            let mut tail = 0f32;
            for j in full..n {
                tail += f16(&row[2 * j..]) * le_f32(&a[c][4 * j..]);
            }
            out[c][r] = sum8(lo[c], hi[c]) + tail;
        }
    }
    C
}

/// Attention scores over an f16 key cache (see `simd::scores_f16`): key t
/// is `k[t * stride..][..q.len()]`. The products of eight halves at a time,
/// summed one after another as the scalar loop of `block::attention` sums
/// them (its bits).
pub fn scores_f16(k: &[u16], stride: usize, q: &[u16], scale: f32, out: &mut [f32]) {
    let n = q.len();
    let q: &[u8] = bytemuck::cast_slice(q);
    let full = n / 8 * 8;
    for (t, s) in out.iter_mut().enumerate() {
        let kt: &[u8] = bytemuck::cast_slice(&k[t * stride..][..n]);
        let mut acc = 0f32;
        for (qc, kc) in q[..2 * full]
            .chunks_exact(16)
            .zip(kt[..2 * full].chunks_exact(16))
        {
            let (x, y) = (load(qc), load(kc));
            let ((xl, xh), (yl, yh)) = (f16x8(x), f16x8(y));
            let (pl, ph) = (f32x4_mul(xl, yl), f32x4_mul(xh, yh));
            acc = add8(acc, pl, ph);
        }
        for j in full..n {
            acc += f16(&q[2 * j..]) * f16(&kt[2 * j..]);
        }
        *s = acc * scale;
    }
}

/// The attention output over an f16 value cache (see `simd::mix_f16`):
/// `o += r(p[t]) * value t`, a multiply and an add per element, each
/// rounded, as the scalar loop does (its bits).
pub fn mix_f16(o: &mut [f32], p: &[f32], v: &[u16], stride: usize, round: bool) {
    let n = o.len();
    let full = n / 4 * 4;
    for (t, &pt) in p.iter().enumerate() {
        let pt = if round {
            half::f16::from_f32(pt).to_f32()
        } else {
            pt
        };
        let vt: &[u8] = bytemuck::cast_slice(&v[t * stride..][..n]);
        let ps = f32x4_splat(pt);
        for (oc, vc) in o[..full]
            .chunks_exact_mut(4)
            .zip(vt[..2 * full].chunks_exact(8))
        {
            // SAFETY: 8 readable bytes (a chunk of 8); no alignment needed.
            let h = unsafe { v128_load64_zero(vc.as_ptr().cast()) };
            let x = f16x8(h).0;
            let sum = f32x4_add(load(bytemuck::cast_slice(&*oc)), f32x4_mul(ps, x));
            // SAFETY: `oc` is 4 f32, 16 writable bytes; no alignment needed.
            unsafe { v128_store(oc.as_mut_ptr().cast(), sum) };
        }
        for j in full..n {
            o[j] += pt * f16(&vt[2 * j..]);
        }
    }
}

/// F32 × F32, in the reference's eight lanes.
pub fn dot_f32(w: &[u8], a: &[u8], n: usize) -> f32 {
    let (w, a) = (&w[..n * 4], &a[..n * 4]);
    let full = n / 8 * 8;
    let (mut lo, mut hi) = (f32x4_splat(0.0), f32x4_splat(0.0));
    for (wc, ac) in w[..full * 4]
        .chunks_exact(32)
        .zip(a[..full * 4].chunks_exact(32))
    {
        lo = f32x4_add(lo, f32x4_mul(load(wc), load(ac)));
        hi = f32x4_add(hi, f32x4_mul(load(&wc[16..]), load(&ac[16..])));
    }
    let mut tail = 0f32;
    for j in full..n {
        tail += le_f32(&w[4 * j..]) * le_f32(&a[4 * j..]);
    }
    sum8(lo, hi) + tail
}

/// Sum of 32 products of signed bytes (exact: widened to i16, pairs summed
/// to i32 by `i32x4_dot_i16x8`, at most 32 * 128 * 128).
#[inline]
fn dot32(w0: v128, w1: v128, a0: v128, a1: v128) -> i32 {
    let d = |w, a| {
        let lo = i32x4_dot_i16x8(i16x8_extend_low_i8x16(w), i16x8_extend_low_i8x16(a));
        let hi = i32x4_dot_i16x8(i16x8_extend_high_i8x16(w), i16x8_extend_high_i8x16(a));
        i32x4_add(lo, hi)
    };
    let s = i32x4_add(d(w0, a0), d(w1, a1));
    i32x4_extract_lane::<0>(s)
        + i32x4_extract_lane::<1>(s)
        + i32x4_extract_lane::<2>(s)
        + i32x4_extract_lane::<3>(s)
}

/// Q8_0 × Q8_0: per block the exact integer sum, times `d_w * d_a`, summed
/// block after block (the reference's order).
pub fn dot_q8_0(w: &[u8], a: &[u8], n: usize) -> f32 {
    let nb = n / 32;
    let (w, a) = (&w[..nb * 34], &a[..nb * 34]);
    let mut sum = 0f32;
    for (wb, ab) in w.chunks_exact(34).zip(a.chunks_exact(34)) {
        let s = dot32(
            load(&wb[2..]),
            load(&wb[18..]),
            load(&ab[2..]),
            load(&ab[18..]),
        );
        sum += s as f32 * (f16(wb) * f16(ab));
    }
    sum
}

/// Q4_0 × Q8_0: the low nibbles are weights 0-15 of a block, the high ones
/// 16-31, each less 8; then as Q8_0.
pub fn dot_q4_0(w: &[u8], a: &[u8], n: usize) -> f32 {
    let nb = n / 32;
    let (w, a) = (&w[..nb * 18], &a[..nb * 34]);
    let (m4, eight) = (u8x16_splat(0x0f), i8x16_splat(8));
    let mut sum = 0f32;
    for (wb, ab) in w.chunks_exact(18).zip(a.chunks_exact(34)) {
        let q = load(&wb[2..]);
        let lo = i8x16_sub(v128_and(q, m4), eight);
        let hi = i8x16_sub(u8x16_shr(q, 4), eight);
        let s = dot32(lo, hi, load(&ab[2..]), load(&ab[18..]));
        sum += s as f32 * (f16(wb) * f16(ab));
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::matmul;
    use crate::model::Matrix;
    use crate::parallel::Parallel;
    use crate::quant::{dot_act_scalar, quantize_act, WeightType as W};
    use std::vec::Vec;

    /// Every half converts to the f32 `half` gives (NaN to a NaN), in
    /// groups of eight without inf or NaN (the short path) and with one
    /// (the full path for all eight).
    #[test]
    fn f16x8_converts_every_half_exactly() {
        for base in (0..=u16::MAX).step_by(8) {
            for nan_last in [false, true] {
                let mut h: [u16; 8] = core::array::from_fn(|k| base + k as u16);
                if nan_last {
                    h[7] = 0x7e00;
                }
                let (lo, hi) = f16x8(u16x8(h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]));
                let got = [
                    f32x4_extract_lane::<0>(lo),
                    f32x4_extract_lane::<1>(lo),
                    f32x4_extract_lane::<2>(lo),
                    f32x4_extract_lane::<3>(lo),
                    f32x4_extract_lane::<0>(hi),
                    f32x4_extract_lane::<1>(hi),
                    f32x4_extract_lane::<2>(hi),
                    f32x4_extract_lane::<3>(hi),
                ];
                for (g, &h) in got.iter().zip(&h) {
                    let want = half::f16::from_bits(h).to_f32();
                    if want.is_nan() {
                        assert!(g.is_nan(), "{h:#06x}");
                    } else {
                        assert_eq!(g.to_bits(), want.to_bits(), "{h:#06x}");
                    }
                }
            }
        }
    }

    use crate::testutil::Rng;

    /// `rows` rows of `n` weights of type `t`: random quant bits with
    /// finite scales, or quantized random values for the float types.
    fn random_rows(rng: &mut Rng, t: W, n: usize, rows: usize) -> Vec<u8> {
        match t {
            W::Q8_0 | W::Q4_0 => {
                let mut b: Vec<u8> = (0..rows * t.row_bytes(n).unwrap())
                    .map(|_| rng.next() as u8)
                    .collect();
                for blk in b.chunks_exact_mut(t.block_bytes()) {
                    let d = half::f16::from_f32(0.01 + rng.f().abs());
                    blk[..2].copy_from_slice(&d.to_bits().to_le_bytes());
                }
                b
            }
            _ => {
                let v: Vec<f32> = (0..rows * n).map(|_| rng.f()).collect();
                let at = t.act_type();
                let mut b = std::vec![0u8; rows * at.row_bytes(n)];
                for (o, x) in b.chunks_exact_mut(at.row_bytes(n)).zip(v.chunks_exact(n)) {
                    quantize_act(at, x, o);
                }
                b
            }
        }
    }

    const TYPES: [(W, super::super::Kernel); 4] = [
        (W::F16, dot_f16),
        (W::F32, dot_f32),
        (W::Q8_0, dot_q8_0),
        (W::Q4_0, dot_q4_0),
    ];

    /// Each kernel on rows of odd lengths (partial groups of eight and a
    /// tail for the float types), at unaligned offsets, against converted
    /// inputs with a large range: the scalar reference's bits.
    #[test]
    fn kernels_give_the_scalar_reference_bits() {
        let mut rng = Rng(7);
        let mut checked = 0;
        for (t, k) in TYPES {
            for n_blocks in [1usize, 2, 3, 5, 7, 33] {
                let n = n_blocks * 32 + if t.block_len() == 1 { 5 } else { 0 };
                let w = random_rows(&mut rng, t, n, 1);
                let x: Vec<f32> = (0..n).map(|_| rng.f() * 8.0).collect();
                let at = t.act_type();
                let mut xa = std::vec![0u8; at.row_bytes(n)];
                quantize_act(at, &x, &mut xa);
                for off in 0..3 {
                    let mut wbuf = std::vec![0u8; w.len() + off];
                    wbuf[off..].copy_from_slice(&w);
                    let mut abuf = std::vec![0u8; xa.len() + off];
                    abuf[off..].copy_from_slice(&xa);
                    // SAFETY: simd128 is on (this module is built only then).
                    let fast = unsafe { k(&wbuf[off..], &abuf[off..], n) };
                    let slow = dot_act_scalar(t, &wbuf[off..], &abuf[off..], n);
                    assert_eq!(fast.to_bits(), slow.to_bits(), "{t:?} n={n} off={off}");
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, TYPES.len() * 6 * 3);
    }

    /// The F16 tiles of 1 to 4 inputs, every grouping: the bits of
    /// [`dot_f16`] (so of the scalar reference) per row and input.
    #[test]
    fn f16_tiles_give_the_one_input_bits() {
        let mut rng = Rng(5);
        for n in [8usize, 357, 64] {
            let rows = 5;
            let w = random_rows(&mut rng, W::F16, n, rows);
            let xs: Vec<Vec<f32>> = (0..4)
                .map(|_| (0..n).map(|_| rng.f() * 8.0).collect())
                .collect();
            let prepared: Vec<Vec<u8>> = xs
                .iter()
                .map(|x| {
                    let mut o = std::vec![0u8; 4 * n];
                    prepare_f16(x, &mut o);
                    o
                })
                .collect();
            let halves: Vec<Vec<u8>> = xs
                .iter()
                .map(|x| {
                    let mut o = std::vec![0u8; 2 * n];
                    quantize_act(W::F16.act_type(), x, &mut o);
                    o
                })
                .collect();
            for c in 1..=4 {
                let a: Vec<&[u8]> = prepared[..c].iter().map(|p| &p[..]).collect();
                let mut outs = std::vec![std::vec![f32::NAN; rows]; c];
                let mut o: Vec<&mut [f32]> = outs.iter_mut().map(|o| &mut o[..]).collect();
                block_f16(&w, 2 * n, &a, n, &mut o);
                for (k, out) in outs.iter().enumerate() {
                    for (r, v) in out.iter().enumerate() {
                        let row = &w[2 * n * r..2 * n * (r + 1)];
                        let want = dot_act_scalar(W::F16, row, &halves[k], n);
                        assert_eq!(v.to_bits(), want.to_bits(), "n={n} c={c} input {k} row {r}");
                    }
                }
            }
        }
    }

    /// The attention kernels against the scalar loops of
    /// `block::attention` (F16 cache, rounded query and probabilities):
    /// the same bits.
    #[test]
    fn attention_kernels_give_the_scalar_bits() {
        use half::f16 as H;
        let mut rng = Rng(9);
        for hd in [64usize, 37, 8] {
            let (stride, n_pos) = (3 * hd + 5, 11);
            let k: Vec<u16> = (0..n_pos * stride + hd)
                .map(|_| H::from_f32(rng.f()).to_bits())
                .collect();
            let q: Vec<f32> = (0..hd).map(|_| rng.f() * 3.0).collect();
            let q16: Vec<u16> = q.iter().map(|&v| H::from_f32(v).to_bits()).collect();
            let scale = 0.125;
            let mut fast = std::vec![0f32; n_pos];
            scores_f16(&k, stride, &q16, scale, &mut fast);
            for (t, s) in fast.iter().enumerate() {
                let mut acc = 0f32;
                for (a, &b) in q.iter().zip(&k[t * stride..][..hd]) {
                    acc += H::from_f32(*a).to_f32() * H::from_bits(b).to_f32();
                }
                assert_eq!(s.to_bits(), (acc * scale).to_bits(), "scores hd={hd} t={t}");
            }
            let p: Vec<f32> = (0..n_pos).map(|_| rng.f().abs()).collect();
            for round in [false, true] {
                let mut o = std::vec![0f32; hd];
                mix_f16(&mut o, &p, &k, stride, round);
                let mut want = std::vec![0f32; hd];
                for (t, &pt) in p.iter().enumerate() {
                    let pt = if round { H::from_f32(pt).to_f32() } else { pt };
                    for (o, &x) in want.iter_mut().zip(&k[t * stride..][..hd]) {
                        *o += pt * H::from_bits(x).to_f32();
                    }
                }
                assert_eq!(bits(&o), bits(&want), "mix hd={hd} round={round}");
            }
        }
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    use crate::testutil::Backwards;

    /// The matrix product at this level (the simd128 kernels) of 1 to 13
    /// tokens, tasks split for 1 and 7 threads, run in any order: every
    /// output has the bits of the scalar reference on that token alone.
    #[test]
    fn batched_products_give_the_scalar_bits_of_each_token() {
        assert_eq!(super::super::level(), super::super::Level::Simd128);
        let mut rng = Rng(3);
        let mut checked = 0;
        for (t, _) in TYPES {
            let (rows, cols) = (37, if t.block_len() == 1 { 357 } else { 352 });
            let data = random_rows(&mut rng, t, cols, rows);
            let w = Matrix {
                ty: t,
                data: &data,
                rows,
                cols,
                row_bytes: t.row_bytes(cols).unwrap(),
            };
            let max_tok = 13;
            let x: Vec<f32> = (0..max_tok * cols).map(|_| rng.f() * 4.0).collect();
            let at = t.act_type();
            let want: Vec<Vec<u32>> = (0..max_tok)
                .map(|b| {
                    let mut xa = std::vec![0u8; at.row_bytes(cols)];
                    quantize_act(at, &x[b * cols..(b + 1) * cols], &mut xa);
                    (0..rows)
                        .map(|r| dot_act_scalar(t, w.row(r), &xa, cols).to_bits())
                        .collect()
                })
                .collect();
            let mut act = std::vec![0u8; 4 * cols * max_tok];
            for n_tok in 1..=max_tok {
                for par in [&Backwards(1) as &dyn Parallel, &Backwards(7)] {
                    let mut out = std::vec![f32::NAN; n_tok * rows];
                    matmul(par, &w, &x[..n_tok * cols], n_tok, &mut out, Some(&mut act));
                    for (b, ob) in out.chunks_exact(rows).enumerate() {
                        for (r, v) in ob.iter().enumerate() {
                            assert_eq!(
                                v.to_bits(),
                                want[b][r],
                                "{t:?} n_tok={n_tok} threads={} token {b} row {r}",
                                par.threads()
                            );
                            checked += 1;
                        }
                    }
                }
            }
        }
        std::eprintln!("simd128 matmul: {checked} outputs compared");
    }
}
