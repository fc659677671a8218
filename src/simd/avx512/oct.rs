//! Q8_0 in steps of eight blocks, two lanes a block (Q4_0, which took
//! this tile too, now runs two rows at a time: see `pair`).
//!
//! The tiles before this one multiplied a register of weights as it lay in
//! memory (two Q8_0 blocks, eight lanes each), so every `vpdpbusd` of four
//! bytes a lane carried its own conversion, multiply and multiply-add per
//! row and input: four vector operations for one product. Here each lane
//! holds one half of one block: lane `j` of eight blocks is block `j / 2`'s
//! 4-byte words `h, h + 2, h + 4, h + 6` (`h = j % 2`), one word in each of
//! four registers. Four products then sum a lane's 16 quants exactly in
//! i32, and one conversion, multiply and multiply-add serve eight blocks.
//! The weights are rearranged per row with two rounds of `vpermt2d`, work
//! that every input of a tile shares; the inputs are prepared in this
//! layout once.
//!
//! A single input runs the same tile (one row, one input), so decoding
//! alone and in a batch give the same bits.
#![allow(unsafe_code)]

use super::{hsum, load512, prefetch, q8_quants};
use core::arch::x86_64::*;
use half::f16;

/// Bytes of one prepared record: 256 inputs (eight blocks) as four vectors
/// of quants in the lane layout above, 16 i32 lanes `-128 * (sum of the
/// lane's 16 quants)` (undoing the 128 added to make the weights
/// unsigned), and 16 f32 lanes of the blocks' scales (two each).
pub const REC: usize = 384;

/// Prepares `x` (a multiple of 32 values) into records of [`REC`] bytes.
/// Blocks past the end are zeros.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi,avx512vnni,avx2,fma,f16c")]
pub fn prepare(x: &[f32], out: &mut [u8]) {
    for (rec, xr) in out.chunks_exact_mut(REC).zip(x.chunks(256)) {
        rec.fill(0);
        let mut q = [0u8; 32];
        for (b, xb) in xr.chunks_exact(32).enumerate() {
            let d = q8_quants(xb, &mut q);
            for k in 0..4 {
                for h in 0..2 {
                    let (src, dst) = (4 * (2 * k + h), 64 * k + 4 * (2 * b + h));
                    rec[dst..dst + 4].copy_from_slice(&q[src..src + 4]);
                }
            }
            let d = f16::from_f32(d).to_f32().to_le_bytes();
            for h in 0..2 {
                let o = 320 + 4 * (2 * b + h);
                rec[o..o + 4].copy_from_slice(&d);
            }
        }
        let ones = _mm512_set1_epi8(1);
        let mut s = _mm512_setzero_si512();
        for k in 0..4 {
            s = _mm512_dpbusd_epi32(s, ones, load512(&rec[64 * k..]));
        }
        let corr = _mm512_mullo_epi32(s, _mm512_set1_epi32(-128));
        let mut c = [0u8; 64];
        // SAFETY: 64 writable bytes.
        unsafe { _mm512_storeu_si512(c.as_mut_ptr().cast(), corr) };
        rec[256..320].copy_from_slice(&c);
    }
}

/// 16 dword indices as bytes.
pub(super) const fn dwords(f: [u32; 16]) -> [u8; 64] {
    let mut t = [0u8; 64];
    let mut i = 0;
    while i < 16 {
        let b = f[i].to_le_bytes();
        t[4 * i] = b[0];
        t[4 * i + 1] = b[1];
        t[4 * i + 2] = b[2];
        t[4 * i + 3] = b[3];
        i += 1;
    }
    t
}

/// First round for Q8_0: of two registers of two blocks each (eight words
/// a block), words `4s..4s + 4` of the four blocks, four lanes a block.
const fn round1(s: u32) -> [u8; 64] {
    let mut f = [0u32; 16];
    let mut m = 0;
    while m < 16 {
        f[m] = (m as u32 / 4) * 8 + 4 * s + m as u32 % 4;
        m += 1;
    }
    dwords(f)
}

/// Second round: of two registers of four blocks,
/// four words a block, words `2t` and `2t + 1` of the eight blocks.
const fn round2(t: u32) -> [u8; 64] {
    let mut f = [0u32; 16];
    let mut j = 0;
    while j < 16 {
        let b = j as u32 / 2;
        f[j] = (b / 4) * 16 + (b % 4) * 4 + 2 * t + j as u32 % 2;
        j += 1;
    }
    dwords(f)
}

/// Bytes of the f16 scales, word `j` from block `j / 2` of `bytes`-byte
/// blocks, `per` blocks to a 128-byte window (the first 32 bytes; the
/// rest unused).
const fn scale_bytes(bytes: usize, per: usize) -> [u8; 64] {
    let mut t = [0u8; 64];
    let mut p = 0;
    while p < 32 {
        t[p] = (bytes * (p / 4 % per) + p % 2) as u8;
        p += 1;
    }
    t
}

const R1: [[u8; 64]; 2] = [round1(0), round1(1)];
const R2: [[u8; 64]; 2] = [round2(0), round2(1)];
const S8: [u8; 64] = scale_bytes(34, 4);

/// The shuffle tables, in registers for a tile's whole run.
#[derive(Clone, Copy)]
struct Tables {
    r1: [__m512i; 2],
    r2: [__m512i; 2],
    s: __m512i,
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi,avx512vnni,avx2,fma,f16c")]
#[inline]
fn tables() -> Tables {
    Tables {
        r1: [load512(&R1[0]), load512(&R1[1])],
        r2: [load512(&R2[0]), load512(&R2[1])],
        s: load512(&S8),
    }
}

/// The 64 bytes at `p + off` (no alignment needed).
///
/// # Safety
/// They are readable.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi,avx512vnni,avx2,fma,f16c")]
#[inline]
pub(super) unsafe fn ld(p: *const u8, off: usize) -> __m512i {
    // SAFETY: the caller's promise.
    unsafe { _mm512_loadu_si512(p.wrapping_add(off).cast()) }
}

/// Eight Q8_0 blocks at `p` in the lane layout (quants made unsigned), and
/// their scales two lanes each.
///
/// # Safety
/// 272 bytes are readable at `p`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi,avx512vnni,avx2,fma,f16c")]
#[inline]
unsafe fn q8_0_oct(p: *const u8, t: &Tables) -> ([__m512i; 4], __m512) {
    let mut pair = [_mm512_setzero_si512(); 4];
    for (i, v) in pair.iter_mut().enumerate() {
        // SAFETY: bytes 68 i + 2 .. 68 i + 34 of the 272.
        let lo = unsafe { _mm256_loadu_si256(p.wrapping_add(68 * i + 2).cast()) };
        // SAFETY: bytes 68 i + 36 .. 68 i + 68.
        let hi = unsafe { _mm256_loadu_si256(p.wrapping_add(68 * i + 36).cast()) };
        *v = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
    }
    let a = [
        _mm512_permutex2var_epi32(pair[0], t.r1[0], pair[1]),
        _mm512_permutex2var_epi32(pair[0], t.r1[1], pair[1]),
        _mm512_permutex2var_epi32(pair[2], t.r1[0], pair[3]),
        _mm512_permutex2var_epi32(pair[2], t.r1[1], pair[3]),
    ];
    let flip = _mm512_set1_epi8(-128);
    let v = [
        _mm512_xor_si512(_mm512_permutex2var_epi32(a[0], t.r2[0], a[2]), flip),
        _mm512_xor_si512(_mm512_permutex2var_epi32(a[0], t.r2[1], a[2]), flip),
        _mm512_xor_si512(_mm512_permutex2var_epi32(a[1], t.r2[0], a[3]), flip),
        _mm512_xor_si512(_mm512_permutex2var_epi32(a[1], t.r2[1], a[3]), flip),
    ];
    // The scales of blocks 0-3 lie in bytes 0..104, those of 4-7 in
    // 136..240: one two-register byte shuffle each.
    // SAFETY: bytes 0..64 of the 272.
    let w0 = unsafe { ld(p, 0) };
    // SAFETY: bytes 64..128.
    let w1 = unsafe { ld(p, 64) };
    // SAFETY: bytes 136..200.
    let w2 = unsafe { ld(p, 136) };
    // SAFETY: bytes 200..264.
    let w3 = unsafe { ld(p, 200) };
    let s0 = _mm512_permutex2var_epi8(w0, t.s, w1);
    let s1 = _mm512_permutex2var_epi8(w2, t.s, w3);
    let s = _mm512_mask_blend_epi8(0xffff_0000, s0, s1);
    (v, _mm512_cvtph_ps(_mm512_castsi512_si256(s)))
}

/// The Q8_0 tile: `R` rows against `C` prepared inputs, `out[r * C + c]`;
/// missing blocks at the end of a row are zeros.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi,avx512vnni,avx2,fma,f16c")]
#[inline]
pub fn tile_q8_0<const R: usize, const C: usize>(
    w: &[&[u8]],
    a: &[&[u8]],
    n: usize,
    out: &mut [f32],
) {
    const BB: usize = 34;
    let nb = n / 32;
    let octs = nb.div_ceil(8);
    let w: [&[u8]; R] = super::heads(w, nb * BB);
    let a: [&[u8]; C] = super::heads(a, octs * REC);
    let t = tables();
    let mut pad = [[0u8; 8 * BB]; R];
    if !nb.is_multiple_of(8) {
        for r in 0..R {
            pad[r][..(nb % 8) * BB].copy_from_slice(&w[r][nb / 8 * 8 * BB..]);
        }
    }
    let mut acc = [[_mm512_setzero_ps(); C]; R];
    for p in 0..octs {
        let mut q = [[_mm512_setzero_si512(); 4]; R];
        let mut d = [_mm512_setzero_ps(); R];
        for r in 0..R {
            if R > 1 {
                let mut l = 0;
                while l < 8 * BB {
                    prefetch(w[r], 8 * BB * p + l, R * nb * BB);
                    l += 64;
                }
            }
            let src = if p < nb / 8 {
                w[r].as_ptr().wrapping_add(8 * BB * p)
            } else {
                pad[r].as_ptr()
            };
            // SAFETY: eight whole blocks at `src`: p < nb / 8 in the
            // row (sliced to nb blocks above), else the padded copy.
            (q[r], d[r]) = unsafe { q8_0_oct(src, &t) };
        }
        for c in 0..C {
            let rec = a[c].as_ptr().wrapping_add(REC * p);
            // Every load: p < octs, and the inputs hold octs records
            // (sliced above): bytes 0..384 of this one.
            let mut v = [_mm512_setzero_si512(); 6];
            for (k, v) in v.iter_mut().enumerate() {
                // SAFETY: bytes 64 k .. 64 k + 64 of the 384.
                *v = unsafe { ld(rec, 64 * k) };
            }
            let (x, corr, da) = ([v[0], v[1], v[2], v[3]], v[4], _mm512_castsi512_ps(v[5]));
            for r in 0..R {
                let mut dot = corr;
                for k in 0..4 {
                    dot = _mm512_dpbusd_epi32(dot, q[r][k], x[k]);
                }
                let s = _mm512_mul_ps(_mm512_cvtepi32_ps(dot), da);
                acc[r][c] = _mm512_fmadd_ps(d[r], s, acc[r][c]);
            }
        }
    }
    for r in 0..R {
        for c in 0..C {
            out[r * C + c] = hsum(acc[r][c]);
        }
    }
}
