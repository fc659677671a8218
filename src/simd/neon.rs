//! AArch64 Advanced SIMD (NEON) kernels for the inputs' standard converted
//! forms: Q8_0 and Q4_0 weights against Q8_0 inputs, F32 against F32. NEON
//! is part of the AArch64 baseline, so these need no detection; the
//! `dotprod` extension is not assumed (products widen through `smull`).
//! Loads are the only unsafe operations, each from a slice whose length
//! was checked by indexing just before.
#![allow(unsafe_code)]

use crate::quant::le_f32;
use core::arch::aarch64::*;

fn f16(b: &[u8]) -> f32 {
    half::f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32()
}

#[target_feature(enable = "neon")]
fn load_s8(b: &[u8]) -> int8x16_t {
    let b = &b[..16];
    // SAFETY: 16 readable bytes (checked above); no alignment needed.
    unsafe { vld1q_s8(b.as_ptr().cast()) }
}

#[target_feature(enable = "neon")]
fn load_u8(b: &[u8]) -> uint8x16_t {
    let b = &b[..16];
    // SAFETY: 16 readable bytes (checked above).
    unsafe { vld1q_u8(b.as_ptr()) }
}

#[target_feature(enable = "neon")]
fn load_f32(b: &[u8]) -> float32x4_t {
    let b = &b[..16];
    // SAFETY: 16 readable bytes (checked above); vld1q_f32 needs no
    // alignment beyond the byte's.
    unsafe { vld1q_f32(b.as_ptr().cast()) }
}

/// Sum of 32 products of signed bytes, as four i32 lanes (each i16 lane
/// holds two products: at most 2 * 127 * 128, no overflow).
#[target_feature(enable = "neon")]
#[inline]
fn dot32(w0: int8x16_t, w1: int8x16_t, a0: int8x16_t, a1: int8x16_t) -> int32x4_t {
    let p0 = vmull_s8(vget_low_s8(w0), vget_low_s8(a0));
    let p0 = vmlal_high_s8(p0, w0, a0);
    let p1 = vmull_s8(vget_low_s8(w1), vget_low_s8(a1));
    let p1 = vmlal_high_s8(p1, w1, a1);
    vpadalq_s16(vpaddlq_s16(p0), p1)
}

#[target_feature(enable = "neon")]
pub fn dot_q8_0(w: &[u8], a: &[u8], n: usize) -> f32 {
    let nb = n / 32;
    let (w, a) = (&w[..nb * 34], &a[..nb * 34]);
    let mut acc = [vdupq_n_f32(0.0); 2];
    for (i, (wb, ab)) in w.chunks_exact(34).zip(a.chunks_exact(34)).enumerate() {
        let d = f16(wb) * f16(ab);
        let s = dot32(
            load_s8(&wb[2..]),
            load_s8(&wb[18..]),
            load_s8(&ab[2..]),
            load_s8(&ab[18..]),
        );
        acc[i & 1] = vfmaq_n_f32(acc[i & 1], vcvtq_f32_s32(s), d);
    }
    vaddvq_f32(vaddq_f32(acc[0], acc[1]))
}

#[target_feature(enable = "neon")]
pub fn dot_q4_0(w: &[u8], a: &[u8], n: usize) -> f32 {
    let nb = n / 32;
    let (w, a) = (&w[..nb * 18], &a[..nb * 34]);
    let mut acc = [vdupq_n_f32(0.0); 2];
    let m4 = vdupq_n_u8(0x0f);
    let eight = vdupq_n_s8(8);
    for (i, (wb, ab)) in w.chunks_exact(18).zip(a.chunks_exact(34)).enumerate() {
        let d = f16(wb) * f16(ab);
        let q = load_u8(&wb[2..]);
        let lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(q, m4)), eight);
        let hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8::<4>(q)), eight);
        let s = dot32(lo, hi, load_s8(&ab[2..]), load_s8(&ab[18..]));
        acc[i & 1] = vfmaq_n_f32(acc[i & 1], vcvtq_f32_s32(s), d);
    }
    vaddvq_f32(vaddq_f32(acc[0], acc[1]))
}

#[target_feature(enable = "neon")]
pub fn dot_f32(w: &[u8], a: &[u8], n: usize) -> f32 {
    let (w, a) = (&w[..n * 4], &a[..n * 4]);
    let mut acc = [vdupq_n_f32(0.0); 4];
    let full = n / 16 * 16;
    for (wc, ac) in w[..full * 4]
        .chunks_exact(64)
        .zip(a[..full * 4].chunks_exact(64))
    {
        for (k, acc) in acc.iter_mut().enumerate() {
            *acc = vfmaq_f32(*acc, load_f32(&wc[16 * k..]), load_f32(&ac[16 * k..]));
        }
    }
    let s = vaddq_f32(vaddq_f32(acc[0], acc[1]), vaddq_f32(acc[2], acc[3]));
    let mut sum = vaddvq_f32(s);
    for j in full..n {
        sum += le_f32(&w[4 * j..]) * le_f32(&a[4 * j..]);
    }
    sum
}
