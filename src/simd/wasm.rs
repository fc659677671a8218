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

/// Four halves (the low 16 bits of each u32 lane) to f32, exactly: the
/// magnitude bits moved into an f32's places and scaled by 2^112 (exact,
/// subnormals included: WebAssembly keeps subnormals), exponent 31 (inf,
/// NaN) made 255, the sign put back. As the NEON kernels' `f16x4`.
#[inline]
fn f16x4(h: v128) -> v128 {
    let mag = u32x4_shl(v128_and(h, u32x4_splat(0x7fff)), 13);
    let f = f32x4_mul(mag, f32x4_splat(f32::from_bits(0x7780_0000)));
    let exp = v128_and(h, u32x4_splat(0x7c00));
    let special = v128_and(u32x4_eq(exp, u32x4_splat(0x7c00)), u32x4_splat(0x7f80_0000));
    let sign = u32x4_shl(v128_and(h, u32x4_splat(0x8000)), 16);
    v128_or(v128_or(f, special), sign)
}

/// Sum of the reference's eight lanes (`lo` lanes 0-3, `hi` 4-7), in its
/// order: from 0, lane 0 first.
#[inline]
fn sum8(lo: v128, hi: v128) -> f32 {
    let mut s = 0f32;
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
        let pl = f32x4_mul(
            f16x4(u32x4_extend_low_u16x8(x)),
            f16x4(u32x4_extend_low_u16x8(y)),
        );
        let ph = f32x4_mul(
            f16x4(u32x4_extend_high_u16x8(x)),
            f16x4(u32x4_extend_high_u16x8(y)),
        );
        lo = f32x4_add(lo, pl);
        hi = f32x4_add(hi, ph);
    }
    let mut tail = 0f32;
    for j in full..n {
        tail += f16(&w[2 * j..]) * f16(&a[2 * j..]);
    }
    sum8(lo, hi) + tail
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

    /// Every half converts to the f32 `half` gives (NaN to a NaN).
    #[test]
    fn f16x4_converts_every_half_exactly() {
        for base in (0..=u16::MAX).step_by(4) {
            let h: [u32; 4] = core::array::from_fn(|k| (base + k as u16) as u32);
            let v = f16x4(u32x4(h[0], h[1], h[2], h[3]));
            let got = [
                f32x4_extract_lane::<0>(v),
                f32x4_extract_lane::<1>(v),
                f32x4_extract_lane::<2>(v),
                f32x4_extract_lane::<3>(v),
            ];
            for (g, &h) in got.iter().zip(&h) {
                let want = half::f16::from_bits(h as u16).to_f32();
                if want.is_nan() {
                    assert!(g.is_nan(), "{h:#06x}");
                } else {
                    assert_eq!(g.to_bits(), want.to_bits(), "{h:#06x}");
                }
            }
        }
    }

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn f(&mut self) -> f32 {
            (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        }
    }

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

    /// Claims `.0` threads (rows split over several tasks) and runs the
    /// tasks last first.
    struct Backwards(usize);
    // SAFETY: runs every task exactly once before returning.
    unsafe impl Parallel for Backwards {
        fn threads(&self) -> usize {
            self.0
        }
        fn run(&self, n_tasks: usize, task: &(dyn Fn(usize) + Sync)) {
            for i in (0..n_tasks).rev() {
                task(i);
            }
        }
    }

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
