//! AVX-512 tiles for Q4_1, Q5_0, Q5_1 (blocks of 32) and BF16.
//!
//! The blocks of 32 are read four at a time (as the Q4_0 tile did before
//! it went to eight blocks, two lanes each: see `oct`): the 16
//! bytes of quants of each block go to one 128-bit lane, so the low nibbles
//! (quants 0..16 of each block) and the high nibbles (16..32) each fill a
//! register. The quants stay unsigned (0..15, or 0..31 with the fifth bit
//! from `qh` added under a mask) and meet the signed input quants in
//! `vpdpbusd`.
//!
//! Wide input layouts (records of 128 inputs, four blocks, 256 bytes; missing blocks at the end are zeros):
//! - Q5_0 (inputs as Q8_0): bytes 0..64 the first 16 quants of each block,
//!   64..128 the last 16, 128..192 16 i32 lanes `-16 * (sum of the 8
//!   quants the lane meets)` (the offset of 16 of the weights), 192..256 16
//!   f32 lanes of the f16-rounded scales (4 each).
//! - Q4_1, Q5_1 (inputs as Q8_1): the quants and scales as Q5_0's; bytes
//!   128..192 hold the blocks' `s = d * sum(q)` (f16-rounded) as f32 in lane
//!   4k for block k and zero in the other lanes, so that one FMA with the
//!   weights' minimums (4 lanes each) adds `m * s` once per block.
//! - BF16: the inputs rounded to bf16 (`quant::quantize_act`), batch or
//!   not: `vdpbf16ps` takes them as they are (and without AVX512_BF16 a
//!   shift or a mask makes f32 of them).
#![allow(unsafe_code)]

use super::{heads, hsum, load512, prefetch, q8_quants, Q4_REC};
use crate::blocks as qb;
use core::arch::x86_64::*;
use half::f16;

/// Indices for `vpermt2b` over the 64 bytes at `p` and the last 64 of a
/// group of four `bb`-byte blocks (at `p + 4 bb - 64`): word `w` (of 16) is
/// the f16 at byte `off` of block `w / 4`.
const fn quad_words(bb: usize, off: usize) -> [u8; 64] {
    let mut t = [0u8; 64];
    let mut j = 0;
    while j < 32 {
        let o = off + bb * (j / 8) + j % 2;
        t[j] = if o < 64 { o } else { 64 + o - (4 * bb - 64) } as u8;
        j += 1;
    }
    t
}

/// Four blocks at `p` of `BB` bytes, quants at `QO`, `qh` at `QH` (0: no
/// fifth bit), the scale at 0 and with `MIN` the minimum at 2: the low and
/// high nibbles (with fifth bits), the scales and the minimums (zeros
/// without `MIN`), four lanes per block.
///
/// # Safety
/// `4 * BB` bytes are readable at `p`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi,avx512vnni,avx2,fma,f16c")]
#[inline]
unsafe fn quad<const BB: usize, const QO: usize, const QH: usize, const MIN: bool>(
    p: *const u8,
    id: __m512i,
    im: __m512i,
) -> (__m512i, __m512i, __m512, __m512) {
    // SAFETY: bytes QO..QO + 16 of block 0, within the 4 BB.
    let q = _mm512_castsi128_si512(unsafe { _mm_loadu_si128(p.wrapping_add(QO).cast()) });
    // SAFETY: as above, block 1.
    let v = unsafe { _mm_loadu_si128(p.wrapping_add(QO + BB).cast()) };
    let q = _mm512_inserti32x4(q, v, 1);
    // SAFETY: as above, block 2.
    let v = unsafe { _mm_loadu_si128(p.wrapping_add(QO + 2 * BB).cast()) };
    let q = _mm512_inserti32x4(q, v, 2);
    // SAFETY: as above, block 3 (its quants end the group).
    let v = unsafe { _mm_loadu_si128(p.wrapping_add(QO + 3 * BB).cast()) };
    let q = _mm512_inserti32x4(q, v, 3);
    let m4 = _mm512_set1_epi8(0x0f);
    let mut lo = _mm512_and_si512(q, m4);
    let mut hi = _mm512_and_si512(_mm512_srli_epi16(q, 4), m4);
    if QH != 0 {
        // Bit j of block k's qh is the fifth bit of quant j: byte 16k + j
        // of `lo` for j < 16, of `hi` for the rest.
        let mut ml = 0u64;
        let mut mh = 0u64;
        for k in 0..4 {
            // SAFETY: bytes QH..QH + 4 of block k (QH + 4 <= QO < BB).
            let h = unsafe { p.wrapping_add(QH + BB * k).cast::<u32>().read_unaligned() } as u64;
            ml |= (h & 0xffff) << (16 * k);
            mh |= (h >> 16) << (16 * k);
        }
        let b5 = _mm512_set1_epi8(0x10);
        lo = _mm512_mask_add_epi8(lo, ml, lo, b5);
        hi = _mm512_mask_add_epi8(hi, mh, hi, b5);
    }
    // SAFETY: bytes 0..64 (4 BB >= 80).
    let a = unsafe { _mm512_loadu_si512(p.cast()) };
    // SAFETY: the last 64 bytes of the 4 BB.
    let b = unsafe { _mm512_loadu_si512(p.wrapping_add(4 * BB - 64).cast()) };
    let d = _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutex2var_epi8(a, id, b)));
    let m = if MIN {
        _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutex2var_epi8(a, im, b)))
    } else {
        _mm512_setzero_ps()
    };
    (lo, hi, d, m)
}

/// The tile of a type of blocks of 32 (see [`quad`] for the parameters):
/// per group of four blocks and output, `d * (dot + corr) * da` lane by
/// lane, and with `MIN` then `m * s`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi,avx512vnni,avx2,fma,f16c")]
#[inline]
fn tile_small<
    const R: usize,
    const C: usize,
    const BB: usize,
    const QO: usize,
    const QH: usize,
    const MIN: bool,
>(
    w: &[&[u8]],
    a: &[&[u8]],
    n: usize,
    out: &mut [f32],
) {
    let nb = n / 32;
    let quads = nb.div_ceil(4);
    let w: [&[u8]; R] = heads(w, nb * BB);
    let a: [&[u8]; C] = heads(a, quads * Q4_REC);
    let id = load512(&const { quad_words(BB, 0) });
    let im = load512(&const { quad_words(BB, 2) });
    // Missing blocks at the end: zeros (scale and minimum 0), as the
    // inputs there.
    let mut pad = [[[0u8; BB]; 4]; R];
    if !nb.is_multiple_of(4) {
        for r in 0..R {
            let tail = &w[r][nb / 4 * 4 * BB..];
            for (k, blk) in tail.chunks_exact(BB).enumerate() {
                pad[r][k].copy_from_slice(blk);
            }
        }
    }
    let mut acc = [[_mm512_setzero_ps(); C]; R];
    for p in 0..quads {
        let mut lo = [_mm512_setzero_si512(); R];
        let mut hi = [_mm512_setzero_si512(); R];
        let mut d = [_mm512_setzero_ps(); R];
        let mut m = [_mm512_setzero_ps(); R];
        for r in 0..R {
            if R > 1 {
                prefetch(w[r], 4 * BB * p, R * nb * BB);
                prefetch(w[r], 4 * BB * p + 4 * BB - 1, R * nb * BB);
            }
            let src = if p < nb / 4 {
                w[r].as_ptr().wrapping_add(4 * BB * p)
            } else {
                pad[r].as_ptr().cast::<u8>()
            };
            // SAFETY: four whole blocks at `src`: p < nb / 4 in the row
            // (sliced to nb blocks above), else the padded copy.
            (lo[r], hi[r], d[r], m[r]) = unsafe { quad::<BB, QO, QH, MIN>(src, id, im) };
        }
        for c in 0..C {
            let rec = a[c].as_ptr().wrapping_add(Q4_REC * p);
            // SAFETY: p < quads, and inputs hold quads records of 256
            // bytes: bytes 0..64 of this one.
            let alo = unsafe { _mm512_loadu_si512(rec.cast()) };
            // SAFETY: as above, bytes 64..128.
            let ahi = unsafe { _mm512_loadu_si512(rec.wrapping_add(64).cast()) };
            // SAFETY: as above, bytes 128..192 (i32 corrections or f32 sums).
            let x = unsafe { _mm512_loadu_si512(rec.wrapping_add(128).cast()) };
            // SAFETY: as above, bytes 192..256.
            let da = unsafe { _mm512_loadu_ps(rec.wrapping_add(192).cast()) };
            for r in 0..R {
                let init = if MIN { _mm512_setzero_si512() } else { x };
                let dot = _mm512_dpbusd_epi32(init, lo[r], alo);
                let dot = _mm512_dpbusd_epi32(dot, hi[r], ahi);
                let t = _mm512_mul_ps(_mm512_cvtepi32_ps(dot), da);
                acc[r][c] = _mm512_fmadd_ps(d[r], t, acc[r][c]);
                if MIN {
                    acc[r][c] = _mm512_fmadd_ps(m[r], _mm512_castsi512_ps(x), acc[r][c]);
                }
            }
        }
    }
    for r in 0..R {
        for c in 0..C {
            out[r * C + c] = hsum(acc[r][c]);
        }
    }
}

// Block layouts (see `blocks`): Q4_1 d, m, 16 quant bytes (20); Q5_0 d,
// qh, quants (22); Q5_1 d, m, qh, quants (24).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi,avx512vnni,avx2,fma,f16c")]
#[inline]
pub(super) fn tile_q4_1<const R: usize, const C: usize>(
    w: &[&[u8]],
    a: &[&[u8]],
    n: usize,
    out: &mut [f32],
) {
    tile_small::<R, C, { qb::Q4_1_BYTES }, 4, 0, true>(w, a, n, out)
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi,avx512vnni,avx2,fma,f16c")]
#[inline]
pub(super) fn tile_q5_0<const R: usize, const C: usize>(
    w: &[&[u8]],
    a: &[&[u8]],
    n: usize,
    out: &mut [f32],
) {
    tile_small::<R, C, { qb::Q5_0_BYTES }, 6, 2, false>(w, a, n, out)
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi,avx512vnni,avx2,fma,f16c")]
#[inline]
pub(super) fn tile_q5_1<const R: usize, const C: usize>(
    w: &[&[u8]],
    a: &[&[u8]],
    n: usize,
    out: &mut [f32],
) {
    tile_small::<R, C, { qb::Q5_1_BYTES }, 8, 4, true>(w, a, n, out)
}

/// Quantizes `x` into records of four blocks (see the module
/// documentation): Q8_1 (`corr` `None`: the `s` lanes) or Q8_0 with the
/// correction `-corr * (sum of quants)` per lane.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi,avx512vnni,avx2,fma,f16c")]
pub(super) fn prepare_quads(x: &[f32], out: &mut [u8], corr: Option<i32>) {
    for (rec, xr) in out.chunks_exact_mut(Q4_REC).zip(x.chunks(128)) {
        rec.fill(0);
        let mut q = [0u8; 32];
        for (k, xb) in xr.chunks_exact(32).enumerate() {
            let d = q8_quants(xb, &mut q);
            rec[16 * k..16 * k + 16].copy_from_slice(&q[..16]);
            rec[64 + 16 * k..80 + 16 * k].copy_from_slice(&q[16..]);
            let dr = f16::from_f32(d).to_f32().to_le_bytes();
            for j in 0..4 {
                let o = 192 + 4 * (4 * k + j);
                rec[o..o + 4].copy_from_slice(&dr);
            }
            if corr.is_none() {
                // As `blocks::quantize_q8_1`: the unrounded d times the sum.
                let sum: i32 = q.iter().map(|&v| v as i8 as i32).sum();
                let s = f16::from_f32(d * sum as f32).to_f32();
                rec[128 + 16 * k..132 + 16 * k].copy_from_slice(&s.to_le_bytes());
            }
        }
        if let Some(k) = corr {
            // -k * (sums of the four low and four high quants per lane).
            let ones = _mm512_set1_epi8(1);
            let s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), ones, load512(rec));
            let s = _mm512_dpbusd_epi32(s, ones, load512(&rec[64..]));
            let c = _mm512_mullo_epi32(s, _mm512_set1_epi32(-k));
            let mut b = [0u8; 64];
            // SAFETY: 64 writable bytes.
            unsafe { _mm512_storeu_si512(b.as_mut_ptr().cast(), c) };
            rec[128..192].copy_from_slice(&b);
        }
    }
}

/// `acc + w · a` over pairs of bf16 (lane i: elements 2i and 2i + 1) by
/// `vdpbf16ps`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
#[inline]
fn step_dp(acc: __m512, w: __m512i, a: __m512i) -> __m512 {
    // SAFETY: both are 512-bit vectors of plain bits, every pattern valid.
    let w = unsafe { core::mem::transmute::<__m512i, __m512bh>(w) };
    // SAFETY: as above.
    let a = unsafe { core::mem::transmute::<__m512i, __m512bh>(a) };
    _mm512_dpbf16_ps(acc, w, a)
}

/// The same pairs without AVX512_BF16: a bf16 is the top half of an f32,
/// so the even elements are the words shifted up and the odd ones the words
/// masked; two FMAs (the products are exact in f32). Not the bits of
/// `vdpbf16ps`, which flushes denormals: a CPU uses one or the other.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,fma")]
#[inline]
fn step_fma(acc: __m512, w: __m512i, a: __m512i) -> __m512 {
    let hi = _mm512_set1_epi32(0xffff_0000u32 as i32);
    // (No closures: they would not inherit the target features.)
    let (we, ae) = (_mm512_slli_epi32(w, 16), _mm512_slli_epi32(a, 16));
    let (wo, ao) = (_mm512_and_si512(w, hi), _mm512_and_si512(a, hi));
    let acc = _mm512_fmadd_ps(_mm512_castsi512_ps(we), _mm512_castsi512_ps(ae), acc);
    _mm512_fmadd_ps(_mm512_castsi512_ps(wo), _mm512_castsi512_ps(ao), acc)
}

/// The BF16 tiles: 32 values at a time by `$step`, into two accumulators
/// per output (even and odd chunks: two chains for one input), the tail
/// (n mod 32) zero-padded as a last chunk.
macro_rules! bf16_tile {
    ($name:ident, $step:ident $(, $feat:literal)?) => {
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi,avx512vnni,avx2,fma,f16c")]
        $(#[target_feature(enable = $feat)])?
        #[inline]
        pub(super) fn $name<const R: usize, const C: usize>(
            w: &[&[u8]],
            a: &[&[u8]],
            n: usize,
            out: &mut [f32],
        ) {
            let w: [&[u8]; R] = heads(w, n * 2);
            let a: [&[u8]; C] = heads(a, n * 2);
            let full = n / 32;
            let mut acc = [[[_mm512_setzero_ps(); C]; R]; 2];
            for i in 0..full {
                let h = i % 2;
                if R > 1 && h == 0 {
                    for wr in w {
                        prefetch(wr, 64 * i, R * n * 2);
                        prefetch(wr, 64 * i + 64, R * n * 2);
                    }
                }
                let mut wv = [_mm512_setzero_si512(); R];
                for r in 0..R {
                    // SAFETY: i < full and every row has 2n >= 64 * full
                    // bytes (sliced above): 64 bytes readable at 64 i.
                    wv[r] = unsafe { _mm512_loadu_si512(w[r].as_ptr().wrapping_add(64 * i).cast()) };
                }
                for c in 0..C {
                    // SAFETY: as for the rows: inputs have 2n bytes too.
                    let av = unsafe { _mm512_loadu_si512(a[c].as_ptr().wrapping_add(64 * i).cast()) };
                    for r in 0..R {
                        acc[h][r][c] = $step(acc[h][r][c], wv[r], av);
                    }
                }
            }
            let tail = 2 * (n - 32 * full);
            if tail > 0 {
                let h = full % 2;
                let mut wp = [_mm512_setzero_si512(); R];
                for r in 0..R {
                    let mut b = [0u8; 64];
                    b[..tail].copy_from_slice(&w[r][64 * full..]);
                    wp[r] = load512(&b);
                }
                for c in 0..C {
                    let mut b = [0u8; 64];
                    b[..tail].copy_from_slice(&a[c][64 * full..]);
                    let av = load512(&b);
                    for r in 0..R {
                        acc[h][r][c] = $step(acc[h][r][c], wp[r], av);
                    }
                }
            }
            for r in 0..R {
                for c in 0..C {
                    out[r * C + c] = hsum(_mm512_add_ps(acc[0][r][c], acc[1][r][c]));
                }
            }
        }
    };
}

bf16_tile!(tile_bf16, step_dp, "avx512bf16");
bf16_tile!(tile_bf16_fma, step_fma);
