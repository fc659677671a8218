//! AArch64 Advanced SIMD (NEON) kernels for the inputs' standard converted
//! forms: Q8_0 and Q4_0 weights against Q8_0 inputs, the K-quants against
//! Q8_K inputs, F16 against F16 and F32 against F32. NEON
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

/// Sum of 16 products of signed bytes, as four i32 lanes (see [`dot32`]).
#[target_feature(enable = "neon")]
#[inline]
fn dot16(w: int8x16_t, a: int8x16_t) -> int32x4_t {
    let p = vmull_s8(vget_low_s8(w), vget_low_s8(a));
    vpaddlq_s16(vmlal_high_s8(p, w, a))
}

/// A Q8_K block: the f32 scale, the 256 quants, and the sums of each 16.
fn q8k(a: &[u8]) -> (f32, &[u8], impl Fn(usize) -> i32 + '_) {
    let bsum = move |g: usize| i16::from_le_bytes([a[260 + 2 * g], a[261 + 2 * g]]) as i32;
    (le_f32(a), &a[4..260], bsum)
}

/// Q4_K × Q8_K: per quarter of 64, the low nibbles (sub-block 2c) and the
/// high nibbles (2c + 1) against their 32 activations; each sub-block's
/// four i32 lanes scaled by its 6-bit scale (at most 63 * 32 * 15 * 128 per
/// sub-block, no overflow). The minimums meet the activation sums.
#[target_feature(enable = "neon")]
pub fn dot_q4_k(w: &[u8], a: &[u8], n: usize) -> f32 {
    let nb = n / 256;
    let (w, a) = (&w[..nb * 144], &a[..nb * 292]);
    let m4 = vdupq_n_u8(0x0f);
    let mut sum = 0f32;
    for (wb, ab) in w.chunks_exact(144).zip(a.chunks_exact(292)) {
        let (d, dmin) = (f16(wb), f16(&wb[2..]));
        let sc = &wb[4..16];
        let (da, qa, bsum) = q8k(ab);
        let mut isum = vdupq_n_s32(0);
        let mut mins = 0i32;
        for c in 0..4 {
            let (s0, m0) = crate::blocks::scale_min_k4(sc, 2 * c);
            let (s1, m1) = crate::blocks::scale_min_k4(sc, 2 * c + 1);
            mins += m0 as i32 * (bsum(4 * c) + bsum(4 * c + 1));
            mins += m1 as i32 * (bsum(4 * c + 2) + bsum(4 * c + 3));
            let (q0, q1) = (load_u8(&wb[16 + 32 * c..]), load_u8(&wb[32 + 32 * c..]));
            let lo = |q| vreinterpretq_s8_u8(vandq_u8(q, m4));
            let hi = |q| vreinterpretq_s8_u8(vshrq_n_u8::<4>(q));
            let qa = &qa[64 * c..];
            let p0 = dot32(lo(q0), lo(q1), load_s8(qa), load_s8(&qa[16..]));
            let p1 = dot32(hi(q0), hi(q1), load_s8(&qa[32..]), load_s8(&qa[48..]));
            isum = vmlaq_n_s32(isum, p0, s0 as i32);
            isum = vmlaq_n_s32(isum, p1, s1 as i32);
        }
        sum += da * (d * vaddvq_s32(isum) as f32) - da * (dmin * mins as f32);
    }
    sum
}

/// Q5_K × Q8_K: as Q4_K, each nibble given its fifth bit (bit 2c of
/// qh[l] for the low nibbles of quarter c, bit 2c + 1 for the high), so the
/// quants are 0..=31 (at most 63 * 32 * 31 * 128 per sub-block).
#[target_feature(enable = "neon")]
pub fn dot_q5_k(w: &[u8], a: &[u8], n: usize) -> f32 {
    let nb = n / 256;
    let (w, a) = (&w[..nb * 176], &a[..nb * 292]);
    let (m4, b4) = (vdupq_n_u8(0x0f), vdupq_n_u8(0x10));
    let mut sum = 0f32;
    for (wb, ab) in w.chunks_exact(176).zip(a.chunks_exact(292)) {
        let (d, dmin) = (f16(wb), f16(&wb[2..]));
        let sc = &wb[4..16];
        let qh = [load_u8(&wb[16..]), load_u8(&wb[32..])];
        let (da, qa, bsum) = q8k(ab);
        let mut isum = vdupq_n_s32(0);
        let mut mins = 0i32;
        for c in 0..4 {
            let (s0, m0) = crate::blocks::scale_min_k4(sc, 2 * c);
            let (s1, m1) = crate::blocks::scale_min_k4(sc, 2 * c + 1);
            mins += m0 as i32 * (bsum(4 * c) + bsum(4 * c + 1));
            mins += m1 as i32 * (bsum(4 * c + 2) + bsum(4 * c + 3));
            let (blo, bhi) = (vdupq_n_u8(1 << (2 * c)), vdupq_n_u8(2 << (2 * c)));
            let q = [load_u8(&wb[48 + 32 * c..]), load_u8(&wb[64 + 32 * c..])];
            // The fifth bit as 0x10 where set.
            let fifth = |k: usize, bit| vandq_u8(vtstq_u8(qh[k], bit), b4);
            let lo = |k: usize| vreinterpretq_s8_u8(vorrq_u8(vandq_u8(q[k], m4), fifth(k, blo)));
            let hi = |k: usize| vreinterpretq_s8_u8(vorrq_u8(vshrq_n_u8::<4>(q[k]), fifth(k, bhi)));
            let qa = &qa[64 * c..];
            let p0 = dot32(lo(0), lo(1), load_s8(qa), load_s8(&qa[16..]));
            let p1 = dot32(hi(0), hi(1), load_s8(&qa[32..]), load_s8(&qa[48..]));
            isum = vmlaq_n_s32(isum, p0, s0 as i32);
            isum = vmlaq_n_s32(isum, p1, s1 as i32);
        }
        sum += da * (d * vaddvq_s32(isum) as f32) - da * (dmin * mins as f32);
    }
    sum
}

/// Q2_K × Q8_K: the 2-bit quants (0..=3; weight 128h + 32j + l at shift
/// 2j of byte 32h + l) against their activations per sub-block of 16, each
/// scaled by its low-nibble scale; the high-nibble minimums meet the
/// activation sums.
#[target_feature(enable = "neon")]
pub fn dot_q2_k(w: &[u8], a: &[u8], n: usize) -> f32 {
    let nb = n / 256;
    let (w, a) = (&w[..nb * 84], &a[..nb * 292]);
    let m3 = vdupq_n_u8(0x03);
    let mut sum = 0f32;
    for (wb, ab) in w.chunks_exact(84).zip(a.chunks_exact(292)) {
        let (d, dmin) = (f16(&wb[80..]), f16(&wb[82..]));
        let sc = &wb[..16];
        let (da, qa, bsum) = q8k(ab);
        let mut mins = 0i32;
        for (g, &s) in sc.iter().enumerate() {
            mins += (s >> 4) as i32 * bsum(g);
        }
        let mut isum = vdupq_n_s32(0);
        for h in 0..2 {
            let qs = [load_u8(&wb[16 + 32 * h..]), load_u8(&wb[32 + 32 * h..])];
            for j in 0..4 {
                let shift = vdupq_n_s8(-2 * j as i8);
                for (k, qs) in qs.iter().enumerate() {
                    let q = vreinterpretq_s8_u8(vandq_u8(vshlq_u8(*qs, shift), m3));
                    let sub = 8 * h + 2 * j + k;
                    let p = dot16(q, load_s8(&qa[16 * sub..]));
                    isum = vmlaq_n_s32(isum, p, (sc[sub] & 0x0f) as i32);
                }
            }
        }
        sum += da * (d * vaddvq_s32(isum) as f32) - da * (dmin * mins as f32);
    }
    sum
}

/// The 16 scales of a Q3_K block (6 bits, stored plus 32): low 4 bits in
/// bytes 0..8 then their high nibbles, high 2 bits in bytes 8..12.
fn q3_k_scales(sc: &[u8]) -> [i32; 16] {
    core::array::from_fn(|s| {
        let low = if s < 8 { sc[s] & 0x0f } else { sc[s - 8] >> 4 };
        let high = (sc[8 + s % 4] >> (2 * (s / 4))) & 3;
        (low | high << 4) as i32 - 32
    })
}

/// Q3_K × Q8_K: Q2_K's 2-bit fields, less 4 where the weight's bit in the
/// high mask (bit 4h + j of byte l) is clear, so the quants are -4..=3;
/// each sub-block of 16 scaled by its signed 6-bit scale.
#[target_feature(enable = "neon")]
pub fn dot_q3_k(w: &[u8], a: &[u8], n: usize) -> f32 {
    let nb = n / 256;
    let (w, a) = (&w[..nb * 110], &a[..nb * 292]);
    let (m3, four) = (vdupq_n_u8(0x03), vdupq_n_u8(4));
    let mut sum = 0f32;
    for (wb, ab) in w.chunks_exact(110).zip(a.chunks_exact(292)) {
        let d = f16(&wb[108..]);
        let sc = q3_k_scales(&wb[96..108]);
        let (da, qa, _) = q8k(ab);
        let hm = [load_u8(wb), load_u8(&wb[16..])];
        let mut isum = vdupq_n_s32(0);
        for h in 0..2 {
            let qs = [load_u8(&wb[32 + 32 * h..]), load_u8(&wb[48 + 32 * h..])];
            for j in 0..4 {
                let shift = vdupq_n_s8(-2 * j as i8);
                let bit = vdupq_n_u8(1 << (4 * h + j));
                for k in 0..2 {
                    let two = vandq_u8(vshlq_u8(qs[k], shift), m3);
                    let high = vandq_u8(vtstq_u8(hm[k], bit), four);
                    let q = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(two, high)), vdupq_n_s8(4));
                    let sub = 8 * h + 2 * j + k;
                    let p = dot16(q, load_s8(&qa[16 * sub..]));
                    isum = vmlaq_n_s32(isum, p, sc[sub]);
                }
            }
        }
        sum += da * (d * vaddvq_s32(isum) as f32);
    }
    sum
}

/// Q6_K × Q8_K: the 6-bit quants rebuilt per quarter of 32 from the low
/// nibbles and the 2-bit high parts, centred (-32..=31) so that they
/// multiply as signed bytes; each sub-block of 16 scaled by its i8 scale.
#[target_feature(enable = "neon")]
pub fn dot_q6_k(w: &[u8], a: &[u8], n: usize) -> f32 {
    let nb = n / 256;
    let (w, a) = (&w[..nb * 210], &a[..nb * 292]);
    let (m4, m3, off) = (vdupq_n_u8(0x0f), vdupq_n_u8(0x03), vdupq_n_s8(32));
    let mut sum = 0f32;
    for (wb, ab) in w.chunks_exact(210).zip(a.chunks_exact(292)) {
        let d = f16(&wb[208..]);
        let sc = &wb[192..208];
        let (da, qa, _) = q8k(ab);
        let mut isum = vdupq_n_s32(0);
        for h in 0..2 {
            let ql = &wb[64 * h..];
            let qh = &wb[128 + 32 * h..];
            let qh = [load_u8(qh), load_u8(&qh[16..])];
            for c in 0..4 {
                // Elements 128h + 32c + l: low nibbles of ql[32 (c % 2) + l]
                // (high nibbles for c >= 2), high pair at shift 2c of qh[l].
                let hshift = vdupq_n_s8(-2 * c as i8);
                for (k, qh) in qh.iter().enumerate() {
                    let l = load_u8(&ql[32 * (c % 2) + 16 * k..]);
                    let lo = if c < 2 {
                        vandq_u8(l, m4)
                    } else {
                        vshrq_n_u8::<4>(l)
                    };
                    let hi = vshlq_n_u8::<4>(vandq_u8(vshlq_u8(*qh, hshift), m3));
                    let q = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(lo, hi)), off);
                    let sub = 8 * h + 2 * c + k;
                    let p = dot16(q, load_s8(&qa[16 * sub..]));
                    isum = vmlaq_n_s32(isum, p, sc[sub] as i8 as i32);
                }
            }
        }
        sum += da * (d * vaddvq_s32(isum) as f32);
    }
    sum
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

/// Four halves to f32, exactly (the `fcvtl` instruction needs the unstable
/// f16 vector types): the magnitude bits moved into an f32's places and
/// scaled by 2^112 (exact, subnormals included), exponent 31 (inf, NaN)
/// made 255, the sign put back.
#[target_feature(enable = "neon")]
#[inline]
fn f16x4(h: uint16x4_t) -> float32x4_t {
    let h = vmovl_u16(h);
    let mag = vshlq_n_u32::<13>(vandq_u32(h, vdupq_n_u32(0x7fff)));
    let f = vmulq_f32(
        vreinterpretq_f32_u32(mag),
        vdupq_n_f32(f32::from_bits(0x7780_0000)),
    );
    let exp = vandq_u32(h, vdupq_n_u32(0x7c00));
    let special = vandq_u32(
        vceqq_u32(exp, vdupq_n_u32(0x7c00)),
        vdupq_n_u32(0x7f80_0000),
    );
    let sign = vshlq_n_u32::<16>(vandq_u32(h, vdupq_n_u32(0x8000)));
    let bits = vorrq_u32(vorrq_u32(vreinterpretq_u32_f32(f), special), sign);
    vreinterpretq_f32_u32(bits)
}

/// F16 × F16 (inputs rounded to f16): products and sums in f32 (FMA), 16
/// lanes in four accumulators, the tail of fewer than 16 scalar.
#[target_feature(enable = "neon")]
pub fn dot_f16(w: &[u8], a: &[u8], n: usize) -> f32 {
    let (w, a) = (&w[..n * 2], &a[..n * 2]);
    let mut acc = [vdupq_n_f32(0.0); 4];
    let full = n / 16 * 16;
    for (wc, ac) in w[..full * 2]
        .chunks_exact(32)
        .zip(a[..full * 2].chunks_exact(32))
    {
        for h in 0..2 {
            let x = vreinterpretq_u16_u8(load_u8(&wc[16 * h..]));
            let y = vreinterpretq_u16_u8(load_u8(&ac[16 * h..]));
            let (lo, hi) = (2 * h, 2 * h + 1);
            acc[lo] = vfmaq_f32(acc[lo], f16x4(vget_low_u16(x)), f16x4(vget_low_u16(y)));
            acc[hi] = vfmaq_f32(acc[hi], f16x4(vget_high_u16(x)), f16x4(vget_high_u16(y)));
        }
    }
    let s = vaddq_f32(vaddq_f32(acc[0], acc[1]), vaddq_f32(acc[2], acc[3]));
    let mut sum = vaddvq_f32(s);
    for j in full..n {
        sum += f16(&w[2 * j..]) * f16(&a[2 * j..]);
    }
    sum
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

#[cfg(test)]
mod tests {
    use super::*;

    #[target_feature(enable = "neon")]
    fn convert(b: &[u8]) -> [f32; 4] {
        let v = f16x4(vget_low_u16(vreinterpretq_u16_u8(load_u8(b))));
        [
            vgetq_lane_f32::<0>(v),
            vgetq_lane_f32::<1>(v),
            vgetq_lane_f32::<2>(v),
            vgetq_lane_f32::<3>(v),
        ]
    }

    /// Every half converts to the f32 `half` gives (NaN to a NaN).
    #[test]
    fn f16x4_converts_every_half_exactly() {
        for base in (0..=u16::MAX).step_by(4) {
            let h: [u16; 4] = core::array::from_fn(|k| base + k as u16);
            let mut b = [0u8; 16];
            for (o, v) in b.chunks_exact_mut(2).zip(h) {
                o.copy_from_slice(&v.to_le_bytes());
            }
            // SAFETY: NEON is part of the AArch64 baseline.
            let got = unsafe { convert(&b) };
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
