//! Q4_0 two weight rows at a time, one block a lane.
//!
//! The eight-block tile of `oct` (half a block a lane) still read a whole
//! input record, 384 bytes for 256 multiply-adds, for every weight row: at
//! eight inputs the records of a long row (5,632 values: 67 KB) no longer
//! fit the L1 cache, and the tile ran at a third of the rate its
//! instructions allow, waiting for the L2. Here a register holds two rows:
//! its low 256 bits eight blocks of the first, its high 256 bits the same
//! eight blocks of the second, one block a lane. Eight `vpdpbusd` sum a
//! block's 32 quants exactly in i32, so one conversion, multiply and FMA
//! serve 16 blocks, and each input record (the inputs' quants broadcast to
//! both halves) is read once for two rows: 320 bytes for 512
//! multiply-adds.
//!
//! The halves compute the same operations, so a row's bits do not depend
//! on which half it lands in or which row it is paired with; one input
//! runs the same tile, so decoding alone and in a batch give the same bits.
#![allow(unsafe_code)]

use super::oct::{dwords, ld};
use super::{prefetch, q8_quants};
use crate::simd::x86::hsum as hsum8;
use core::arch::x86_64::*;
use half::f16;

/// Bytes of one prepared record of 256 inputs (eight blocks): eight
/// vectors of 32 bytes, vector `k` holding quants `4k..4k + 4` of block `b`
/// in its dword `b` (the order in which a Q4_0 block's low then high
/// nibbles meet them); eight i32 `-8 * (sum of block b's quants)` (undoing
/// the nibbles' offset); eight f32 block scales (f16-rounded).
pub const REC: usize = 320;

/// Prepares `x` (a multiple of 32 values) into records of [`REC`] bytes.
/// Blocks past the end are zeros.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi,avx512vnni,avx2,fma,f16c")]
pub fn prepare(x: &[f32], out: &mut [u8]) {
    for (rec, xr) in out.chunks_exact_mut(REC).zip(x.chunks(256)) {
        rec.fill(0);
        let mut q = [0u8; 32];
        for (b, xb) in xr.chunks_exact(32).enumerate() {
            let d = q8_quants(xb, &mut q);
            for k in 0..8 {
                rec[32 * k + 4 * b..32 * k + 4 * b + 4].copy_from_slice(&q[4 * k..4 * k + 4]);
            }
            let sum: i32 = q.iter().map(|&v| i32::from(v as i8)).sum();
            rec[256 + 4 * b..260 + 4 * b].copy_from_slice(&(-8 * sum).to_le_bytes());
            let d = f16::from_f32(d).to_f32();
            rec[288 + 4 * b..292 + 4 * b].copy_from_slice(&d.to_le_bytes());
        }
    }
}

/// Of two registers of four blocks (a block's four dwords to a 128-bit
/// lane), dword `2h` of the eight blocks in lanes 0-7 and dword `2h + 1`
/// in lanes 8-15.
const fn gather(h: u32) -> [u8; 64] {
    let mut f = [0u32; 16];
    let mut j = 0;
    while j < 16 {
        let b = j as u32 % 8;
        f[j] = (b / 4) * 16 + (b % 4) * 4 + 2 * h + j as u32 / 8;
        j += 1;
    }
    dwords(f)
}

/// The bytes of eight f16 scales of 18-byte blocks within a 128-byte
/// window, word `b` for block `b`, in bytes 0..16 and again in 16..32.
const fn scales() -> [u8; 64] {
    let mut t = [0u8; 64];
    let mut p = 0;
    while p < 32 {
        t[p] = (18 * (p % 16 / 2) + p % 2) as u8;
        p += 1;
    }
    t
}

const GATHER: [[u8; 64]; 2] = [gather(0), gather(1)];
const SCALES: [u8; 64] = scales();

/// The shuffle tables, in registers for a tile's whole run.
#[derive(Clone, Copy)]
struct Tables {
    g: [__m512i; 2],
    s: __m512i,
}

/// The 32 bytes at `p + off` in both halves of a register.
///
/// # Safety
/// They are readable.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi,avx512vnni,avx2,fma,f16c")]
#[inline]
unsafe fn ld2(p: *const u8, off: usize) -> __m512i {
    // SAFETY: the caller's promise.
    let v = unsafe { _mm256_loadu_si256(p.wrapping_add(off).cast()) };
    _mm512_broadcast_i64x4(v)
}

/// The quants of eight Q4_0 blocks at `p`, four blocks a register, one
/// block's 16 bytes a 128-bit lane.
///
/// # Safety
/// 144 bytes are readable at `p`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi,avx512vnni,avx2,fma,f16c")]
#[inline]
unsafe fn quads(p: *const u8) -> [__m512i; 2] {
    let mut quad = [_mm512_setzero_si512(); 2];
    for (g, q) in quad.iter_mut().enumerate() {
        let at = |i: usize| p.wrapping_add(18 * (4 * g + i) + 2);
        // SAFETY: 16 bytes at 18 b + 2 for blocks b < 8: within the 144.
        let v = _mm512_castsi128_si512(unsafe { _mm_loadu_si128(at(0).cast()) });
        // SAFETY: as above.
        let v = _mm512_inserti32x4(v, unsafe { _mm_loadu_si128(at(1).cast()) }, 1);
        // SAFETY: as above.
        let v = _mm512_inserti32x4(v, unsafe { _mm_loadu_si128(at(2).cast()) }, 2);
        // SAFETY: as above.
        *q = _mm512_inserti32x4(v, unsafe { _mm_loadu_si128(at(3).cast()) }, 3);
    }
    quad
}

/// Eight Q4_0 blocks of two rows at `p0` and `p1` in the lane layout
/// (nibbles, unsigned; vector `k` holds dword `k % 4`'s low nibbles for
/// `k < 4`, its high nibbles after), and their scales.
///
/// # Safety
/// 144 bytes are readable at `p0` and at `p1`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi,avx512vnni,avx2,fma,f16c")]
#[inline]
unsafe fn unpack(p0: *const u8, p1: *const u8, t: &Tables) -> ([__m512i; 8], __m512) {
    // SAFETY: the caller's promise (144 bytes at p0).
    let a = unsafe { quads(p0) };
    // SAFETY: the same at p1.
    let b = unsafe { quads(p1) };
    let a0 = _mm512_permutex2var_epi32(a[0], t.g[0], a[1]);
    let a1 = _mm512_permutex2var_epi32(a[0], t.g[1], a[1]);
    let b0 = _mm512_permutex2var_epi32(b[0], t.g[0], b[1]);
    let b1 = _mm512_permutex2var_epi32(b[0], t.g[1], b[1]);
    // Low 256 bits of each from the first row, high from the second.
    let w = [
        _mm512_shuffle_i64x2::<0x44>(a0, b0),
        _mm512_shuffle_i64x2::<0xee>(a0, b0),
        _mm512_shuffle_i64x2::<0x44>(a1, b1),
        _mm512_shuffle_i64x2::<0xee>(a1, b1),
    ];
    let m = _mm512_set1_epi8(0x0f);
    let mut q = [_mm512_setzero_si512(); 8];
    for k in 0..4 {
        q[k] = _mm512_and_si512(w[k], m);
        q[k + 4] = _mm512_and_si512(_mm512_srli_epi16(w[k], 4), m);
    }
    // The scales at 18 b (b < 8) lie in bytes 0..128 of each 144.
    let mut v = [_mm512_setzero_si512(); 4];
    for (i, v) in v.iter_mut().enumerate() {
        let p = if i < 2 { p0 } else { p1 };
        // SAFETY: bytes 0..64 or 64..128 of the 144 at p.
        *v = unsafe { ld(p, 64 * (i % 2)) };
    }
    let s0 = _mm512_permutex2var_epi8(v[0], t.s, v[1]);
    let s1 = _mm512_permutex2var_epi8(v[2], t.s, v[3]);
    let s = _mm512_mask_blend_epi8(0xffff_0000, s0, s1);
    (q, _mm512_cvtph_ps(_mm512_castsi512_si256(s)))
}

/// Rows `w[0]` and `w[1]` (Q4_0, `n` values) against `C` inputs prepared by
/// [`prepare`]: `out[c]` for the first row, `out[C + c]` for the second.
/// Missing blocks at the end of a row are zeros.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi,avx512vnni,avx2,fma,f16c")]
#[inline]
pub fn tile_q4_0<const C: usize>(w: [&[u8]; 2], a: &[&[u8]], n: usize, out: &mut [f32]) {
    const BB: usize = 18;
    let nb = n / 32;
    let octs = nb.div_ceil(8);
    let w = [&w[0][..nb * BB], &w[1][..nb * BB]];
    let a: [&[u8]; C] = super::heads(a, octs * REC);
    let out = &mut out[..2 * C];
    let t = Tables {
        g: [super::load512(&GATHER[0]), super::load512(&GATHER[1])],
        s: super::load512(&SCALES),
    };
    let mut pad = [[0u8; 8 * BB]; 2];
    if !nb.is_multiple_of(8) {
        for r in 0..2 {
            pad[r][..(nb % 8) * BB].copy_from_slice(&w[r][nb / 8 * 8 * BB..]);
        }
    }
    let mut acc = [_mm512_setzero_ps(); C];
    for p in 0..octs {
        let mut src = [pad[0].as_ptr(), pad[1].as_ptr()];
        for r in 0..2 {
            // The same place in the next pair of rows (rows lie one after
            // another).
            for l in [0, 64, 128] {
                prefetch(w[r], 8 * BB * p + l, 2 * nb * BB);
            }
            if p < nb / 8 {
                src[r] = w[r].as_ptr().wrapping_add(8 * BB * p);
            }
        }
        // SAFETY: eight whole blocks at each `src`: p < nb / 8 in the row
        // (sliced to nb blocks above), else the padded copy.
        let (q, d) = unsafe { unpack(src[0], src[1], &t) };
        // Every load below: p < octs, and the inputs hold octs records
        // (sliced above): bytes 0..320 of record p.
        let mut rec = [a[0].as_ptr(); C];
        let mut dot = [_mm512_setzero_si512(); C];
        for c in 0..C {
            rec[c] = a[c].as_ptr().wrapping_add(REC * p);
            // SAFETY: bytes 256..288 of the 320.
            dot[c] = unsafe { ld2(rec[c], 256) };
        }
        if C <= 2 {
            // Two chains an input (the sum is exact in i32: same bits).
            let mut odd = [_mm512_setzero_si512(); C];
            for k in 0..4 {
                for c in 0..C {
                    // SAFETY: bytes 64 k .. 64 k + 32 of the 320.
                    let x0 = unsafe { ld2(rec[c], 64 * k) };
                    // SAFETY: bytes 64 k + 32 .. 64 k + 64.
                    let x1 = unsafe { ld2(rec[c], 64 * k + 32) };
                    dot[c] = _mm512_dpbusd_epi32(dot[c], q[2 * k], x0);
                    odd[c] = _mm512_dpbusd_epi32(odd[c], q[2 * k + 1], x1);
                }
            }
            for c in 0..C {
                dot[c] = _mm512_add_epi32(dot[c], odd[c]);
            }
        } else {
            // The inputs' chains interleaved, so that C independent
            // products issue together.
            for (k, &qk) in q.iter().enumerate() {
                for c in 0..C {
                    // SAFETY: bytes 32 k .. 32 k + 32 of the 320.
                    let x = unsafe { ld2(rec[c], 32 * k) };
                    dot[c] = _mm512_dpbusd_epi32(dot[c], qk, x);
                }
            }
        }
        for c in 0..C {
            // SAFETY: bytes 288..320 of the 320.
            let da = _mm512_castsi512_ps(unsafe { ld2(rec[c], 288) });
            let s = _mm512_mul_ps(_mm512_cvtepi32_ps(dot[c]), da);
            acc[c] = _mm512_fmadd_ps(d, s, acc[c]);
        }
    }
    for c in 0..C {
        let lo = _mm512_castps512_ps256(acc[c]);
        let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc[c]), 1));
        out[c] = hsum8(lo);
        out[C + c] = hsum8(hi);
    }
}
