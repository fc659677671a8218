//! Wide tiles of the K-quants beyond Q4_K and Q6_K: Q5_K, Q3_K, Q2_K.
//!
//! Input layouts (see the parent module):
//! - Q5_K: Q4_K's record (sub-blocks of 32 in the order 0 2 1 3 4 6 5 7,
//!   the eight sums of 32, the f32 scale): the weights have Q4_K's nibbles
//!   and scales, plus a fifth bit per weight.
//! - Q3_K, Q2_K: the standard Q8_K block, as Q6_K (sub-blocks of 16 in
//!   order; the sums of 16 serve Q2_K's minimums and Q3_K's offset).
//!
//! In every tile a 64-byte register holds 64 weights in the order of the
//! input's 64 quants it meets, unsigned; `vpmaddubsw` makes pairs (at most
//! 31 * 128 * 2 = 7936 for Q5_K, 7 * 128 * 2 for Q3_K: no saturation) and
//! `vpdpwssd` weighs each pair by its sub-block's scale into i32 lanes: the
//! integer sums are exact, as the scalar reference's.

use super::{
    f16c, heads, hsum, hsum128, hsum8, k4_scales, load128, load256, load512, prefetch, words,
    Block, Q4K_REC, Q4K_SCALES, Q6K_SCALES,
};
use crate::blocks as qb;
use core::arch::x86_64::*;

block_fn!(block_q5_k, tile_q5_k, tile_q5_k, 1, 8);
block_fn!(block_q3_k, tile_q3_k, tile_q3_k, 1, 8);
block_fn!(block_q2_k, tile_q2_k, tile_q2_k, 1, 8);

/// Inputs per call in a batch and the block function, per type.
pub(super) const Q5_K: (usize, Block) = (8, block_q5_k);
pub(super) const Q3_K: (usize, Block) = (8, block_q3_k);
pub(super) const Q2_K: (usize, Block) = (8, block_q2_k);

/// Byte masks of the fifth bits of Q5_K: register `v` of a block holds
/// sub-blocks `s` (bytes 0..32) and `s + 2` (32..64), `s = 4 (v / 2) + v %
/// 2`, whose fifth bits are bits `s` and `s + 2` of qh (byte `l` of qh for
/// weight `l` of each sub-block).
const Q5K_HBITS: [[u8; 64]; 4] = {
    let mut t = [[0u8; 64]; 4];
    let mut v = 0;
    while v < 4 {
        let s = 4 * (v / 2) + v % 2;
        let mut j = 0;
        while j < 64 {
            t[v][j] = 1 << (s + 2 * (j / 32));
            j += 1;
        }
        v += 1;
    }
    t
};

/// Byte masks of the high bits of Q3_K: register `v` holds the weights
/// `64v..64v + 64`, whose high bits are bits `2v` (first 32) and `2v + 1`
/// of hmask.
const Q3K_HBITS: [[u8; 64]; 4] = {
    let mut t = [[0u8; 64]; 4];
    let mut v = 0;
    while v < 4 {
        let mut j = 0;
        while j < 64 {
            t[v][j] = 1 << (2 * v + j / 32);
            j += 1;
        }
        v += 1;
    }
    t
};

/// Word shifts of the 2-bit fields of Q2_K/Q3_K: with a half's 32 bytes in
/// both halves of a register, the even register of the half takes fields 0
/// and 1 (shifts 0, 2), the odd one fields 2 and 3 (4, 6).
const K2_SHR: [[u8; 64]; 2] = [words([0, 2, 0, 0], 16, 0), words([4, 6, 0, 0], 16, 0)];

/// Q4_K against its record.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi,avx512vnni,avx2,fma,f16c")]
#[inline]
pub(super) fn tile_q4_k<const R: usize, const C: usize>(
    w: &[&[u8]],
    a: &[&[u8]],
    n: usize,
    out: &mut [f32],
) {
    tile_k4::<R, C, false>(w, a, n, out)
}

/// Q5_K against Q4_K's record.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi,avx512vnni,avx2,fma,f16c")]
#[inline]
fn tile_q5_k<const R: usize, const C: usize>(w: &[&[u8]], a: &[&[u8]], n: usize, out: &mut [f32]) {
    tile_k4::<R, C, true>(w, a, n, out)
}

/// Q4_K, and with `FIFTH` Q5_K (the same nibbles and scales, after 32
/// bytes of fifth bits: 16 added where the bit of qh is set). Per 256
/// weights: the low nibbles of bytes 0..64 of the quants are sub-blocks 0
/// and 2, the high ones 1 and 3; then 4..7. Each 6-bit scale weighs its
/// pairs in the i16 -> i32 step; the minimums meet the record's sums of 32.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi,avx512vnni,avx2,fma,f16c")]
#[inline]
fn tile_k4<const R: usize, const C: usize, const FIFTH: bool>(
    w: &[&[u8]],
    a: &[&[u8]],
    n: usize,
    out: &mut [f32],
) {
    let bb = if FIFTH {
        qb::Q5_K_BYTES
    } else {
        qb::Q4_K_BYTES
    };
    // Where the nibbles start.
    let qs0 = if FIFTH { 48 } else { 16 };
    let nb = n / 256;
    let w: [&[u8]; R] = heads(w, nb * bb);
    let a: [&[u8]; C] = heads(a, nb * Q4K_REC);
    let m4 = _mm512_set1_epi8(0x0f);
    let sixteen = _mm512_set1_epi8(16);
    let sidx = [
        load512(&Q4K_SCALES[0]),
        load512(&Q4K_SCALES[1]),
        load512(&Q4K_SCALES[2]),
        load512(&Q4K_SCALES[3]),
    ];
    let hbit = [
        load512(&Q5K_HBITS[0]),
        load512(&Q5K_HBITS[1]),
        load512(&Q5K_HBITS[2]),
        load512(&Q5K_HBITS[3]),
    ];
    let even = 0x5555_5555_5555_5555u64;
    let mut acc = [[_mm512_setzero_ps(); C]; R];
    let mut accm = [[_mm_setzero_ps(); C]; R];
    for b in 0..nb {
        let mut qs = [[_mm512_setzero_si512(); 4]; R];
        let mut sv = [[_mm512_setzero_si512(); 4]; R];
        let mut mins = [_mm_setzero_si128(); R];
        let mut dd = [(0f32, 0f32); R];
        for r in 0..R {
            if R > 1 {
                for o in [0, 64, 128] {
                    prefetch(w[r], bb * b + o, R * nb * bb);
                }
            }
            let wb = &w[r][bb * b..bb * b + bb];
            dd[r] = (f16c(wb), f16c(&wb[2..]));
            let (s, m) = k4_scales(&wb[4..16]);
            let sb = _mm512_set1_epi64(s as i64);
            for v in 0..4 {
                sv[r][v] = _mm512_maskz_permutexvar_epi8(even, sidx[v], sb);
            }
            mins[r] = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(m as i64));
            for h in 0..2 {
                let q = load512(&wb[qs0 + 64 * h..]);
                let lo = _mm512_and_si512(q, m4);
                let hi = _mm512_and_si512(_mm512_srli_epi16(q, 4), m4);
                if FIFTH {
                    let qh = _mm512_broadcast_i64x4(load256(&wb[16..]));
                    // (Not a loop over (v, x) pairs: it was not unrolled,
                    // and went through the stack.)
                    let kl = _mm512_test_epi8_mask(qh, hbit[2 * h]);
                    let kh = _mm512_test_epi8_mask(qh, hbit[2 * h + 1]);
                    qs[r][2 * h] = _mm512_mask_add_epi8(lo, kl, lo, sixteen);
                    qs[r][2 * h + 1] = _mm512_mask_add_epi8(hi, kh, hi, sixteen);
                } else {
                    qs[r][2 * h] = lo;
                    qs[r][2 * h + 1] = hi;
                }
            }
        }
        for c in 0..C {
            let rec = &a[c][Q4K_REC * b..Q4K_REC * (b + 1)];
            let da = f32::from_le_bytes([rec[272], rec[273], rec[274], rec[275]]);
            let mut av = [_mm512_setzero_si512(); 4];
            for v in 0..4 {
                av[v] = load512(&rec[64 * v..]);
            }
            let sums = load128(&rec[256..]);
            for r in 0..R {
                let mut isum = _mm512_setzero_si512();
                for v in 0..4 {
                    let p = _mm512_maddubs_epi16(qs[r][v], av[v]);
                    isum = _mm512_dpwssd_epi32(isum, p, sv[r][v]);
                }
                let f = _mm512_cvtepi32_ps(isum);
                acc[r][c] = _mm512_fmadd_ps(_mm512_set1_ps(dd[r].0 * da), f, acc[r][c]);
                let mm = _mm_cvtepi32_ps(_mm_madd_epi16(mins[r], sums));
                accm[r][c] = _mm_fmadd_ps(_mm_set1_ps(dd[r].1 * da), mm, accm[r][c]);
            }
        }
    }
    for r in 0..R {
        for c in 0..C {
            out[r * C + c] = hsum(acc[r][c]) - hsum128(accm[r][c]);
        }
    }
}

/// The 16 six-bit scales of a Q3_K block (12 bytes; see
/// `blocks::decode_q3_k`), still offset by 32, as the bytes of two u64.
#[inline]
fn k3_scales(sc: &[u8]) -> (u64, u64) {
    let u = |i: usize| u32::from_le_bytes([sc[4 * i], sc[4 * i + 1], sc[4 * i + 2], sc[4 * i + 3]]);
    let (a0, a1, t) = (u(0), u(1), u(2));
    let (m2, m4) = (0x0303_0303, 0x0f0f_0f0f);
    let s0 = (a0 & m4) | ((t & m2) << 4);
    let s1 = (a1 & m4) | (((t >> 2) & m2) << 4);
    let s2 = ((a0 >> 4) & m4) | (((t >> 4) & m2) << 4);
    let s3 = ((a1 >> 4) & m4) | (((t >> 6) & m2) << 4);
    (s0 as u64 | (s1 as u64) << 32, s2 as u64 | (s3 as u64) << 32)
}

/// Q3_K: the quants made unsigned (q + 4, in 0..=7: the 2-bit field plus 4
/// where the high bit is set), the offset taken off as `-4 * sum(scale *
/// sum of 16)`, as Q6_K's tile does with its 32.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi,avx512vnni,avx2,fma,f16c")]
#[inline]
fn tile_q3_k<const R: usize, const C: usize>(w: &[&[u8]], a: &[&[u8]], n: usize, out: &mut [f32]) {
    const BB: usize = qb::Q3_K_BYTES;
    let nb = n / 256;
    let w: [&[u8]; R] = heads(w, nb * BB);
    let a: [&[u8]; C] = heads(a, nb * qb::Q8_K_BYTES);
    let m3 = _mm512_set1_epi8(3);
    let four = _mm512_set1_epi8(4);
    let shr = [load512(&K2_SHR[0]), load512(&K2_SHR[1])];
    let sidx = [
        load512(&Q6K_SCALES[0]),
        load512(&Q6K_SCALES[1]),
        load512(&Q6K_SCALES[2]),
        load512(&Q6K_SCALES[3]),
    ];
    let hbit = [
        load512(&Q3K_HBITS[0]),
        load512(&Q3K_HBITS[1]),
        load512(&Q3K_HBITS[2]),
        load512(&Q3K_HBITS[3]),
    ];
    let mut acc = [[_mm512_setzero_ps(); C]; R];
    for b in 0..nb {
        let mut qs = [[_mm512_setzero_si512(); 4]; R];
        let mut sv = [[_mm512_setzero_si512(); 4]; R];
        let mut sc16 = [_mm256_setzero_si256(); R];
        let mut d = [0f32; R];
        for r in 0..R {
            if R > 1 {
                prefetch(w[r], BB * b, R * nb * BB);
                prefetch(w[r], BB * b + 64, R * nb * BB);
            }
            let wb = &w[r][BB * b..BB * b + BB];
            d[r] = f16c(&wb[108..]);
            let (lo, hi) = k3_scales(&wb[96..108]);
            let s8 = _mm_sub_epi8(_mm_set_epi64x(hi as i64, lo as i64), _mm_set1_epi8(32));
            sc16[r] = _mm256_cvtepi8_epi16(s8);
            let s512 = _mm512_castsi256_si512(sc16[r]);
            for v in 0..4 {
                sv[r][v] = _mm512_permutexvar_epi16(sidx[v], s512);
            }
            let hm = _mm512_broadcast_i64x4(load256(wb));
            for h in 0..2 {
                let q = _mm512_broadcast_i64x4(load256(&wb[32 + 32 * h..]));
                // (Written out: a loop over the two was not unrolled.)
                let x0 = _mm512_and_si512(_mm512_srlv_epi16(q, shr[0]), m3);
                let x1 = _mm512_and_si512(_mm512_srlv_epi16(q, shr[1]), m3);
                let k0 = _mm512_test_epi8_mask(hm, hbit[2 * h]);
                let k1 = _mm512_test_epi8_mask(hm, hbit[2 * h + 1]);
                qs[r][2 * h] = _mm512_mask_add_epi8(x0, k0, x0, four);
                qs[r][2 * h + 1] = _mm512_mask_add_epi8(x1, k1, x1, four);
            }
        }
        for c in 0..C {
            let ab = &a[c][qb::Q8_K_BYTES * b..qb::Q8_K_BYTES * (b + 1)];
            let da = f32::from_le_bytes([ab[0], ab[1], ab[2], ab[3]]);
            let mut av = [_mm512_setzero_si512(); 4];
            for v in 0..4 {
                av[v] = load512(&ab[4 + 64 * v..]);
            }
            let bsums = load256(&ab[260..]);
            for r in 0..R {
                // The offset of 4: -4 * sum(scale * sum of 16).
                let off = _mm256_slli_epi32(_mm256_madd_epi16(sc16[r], bsums), 2);
                let mut isum =
                    _mm512_zextsi256_si512(_mm256_sub_epi32(_mm256_setzero_si256(), off));
                for v in 0..4 {
                    let p = _mm512_maddubs_epi16(qs[r][v], av[v]);
                    isum = _mm512_dpwssd_epi32(isum, p, sv[r][v]);
                }
                let f = _mm512_cvtepi32_ps(isum);
                acc[r][c] = _mm512_fmadd_ps(_mm512_set1_ps(d[r] * da), f, acc[r][c]);
            }
        }
    }
    for r in 0..R {
        for c in 0..C {
            out[r * C + c] = hsum(acc[r][c]);
        }
    }
}

/// Q2_K: quants 0..=3 as they are, 4-bit scales per sub-block of 16, and
/// the minimums' term `dmin * sum(min * sum of 16)` apart (as Q4_K's).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi,avx512vnni,avx2,fma,f16c")]
#[inline]
fn tile_q2_k<const R: usize, const C: usize>(w: &[&[u8]], a: &[&[u8]], n: usize, out: &mut [f32]) {
    const BB: usize = qb::Q2_K_BYTES;
    let nb = n / 256;
    let w: [&[u8]; R] = heads(w, nb * BB);
    let a: [&[u8]; C] = heads(a, nb * qb::Q8_K_BYTES);
    let m3 = _mm512_set1_epi8(3);
    let m4 = _mm_set1_epi8(0x0f);
    let shr = [load512(&K2_SHR[0]), load512(&K2_SHR[1])];
    let sidx = [
        load512(&Q6K_SCALES[0]),
        load512(&Q6K_SCALES[1]),
        load512(&Q6K_SCALES[2]),
        load512(&Q6K_SCALES[3]),
    ];
    let mut acc = [[_mm512_setzero_ps(); C]; R];
    let mut accm = [[_mm256_setzero_ps(); C]; R];
    for b in 0..nb {
        let mut qs = [[_mm512_setzero_si512(); 4]; R];
        let mut sv = [[_mm512_setzero_si512(); 4]; R];
        let mut mins = [_mm256_setzero_si256(); R];
        let mut dd = [(0f32, 0f32); R];
        for r in 0..R {
            if R > 1 {
                prefetch(w[r], BB * b, R * nb * BB);
                prefetch(w[r], BB * b + 64, R * nb * BB);
            }
            let wb = &w[r][BB * b..BB * b + BB];
            dd[r] = (f16c(&wb[80..]), f16c(&wb[82..]));
            let s8 = load128(wb);
            let sc16 = _mm256_cvtepu8_epi16(_mm_and_si128(s8, m4));
            mins[r] = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(s8, 4), m4));
            let s512 = _mm512_castsi256_si512(sc16);
            for v in 0..4 {
                sv[r][v] = _mm512_permutexvar_epi16(sidx[v], s512);
            }
            for h in 0..2 {
                let q = _mm512_broadcast_i64x4(load256(&wb[16 + 32 * h..]));
                qs[r][2 * h] = _mm512_and_si512(_mm512_srlv_epi16(q, shr[0]), m3);
                qs[r][2 * h + 1] = _mm512_and_si512(_mm512_srlv_epi16(q, shr[1]), m3);
            }
        }
        for c in 0..C {
            let ab = &a[c][qb::Q8_K_BYTES * b..qb::Q8_K_BYTES * (b + 1)];
            let da = f32::from_le_bytes([ab[0], ab[1], ab[2], ab[3]]);
            let mut av = [_mm512_setzero_si512(); 4];
            for v in 0..4 {
                av[v] = load512(&ab[4 + 64 * v..]);
            }
            let bsums = load256(&ab[260..]);
            for r in 0..R {
                let mut isum = _mm512_setzero_si512();
                for v in 0..4 {
                    let p = _mm512_maddubs_epi16(qs[r][v], av[v]);
                    isum = _mm512_dpwssd_epi32(isum, p, sv[r][v]);
                }
                let f = _mm512_cvtepi32_ps(isum);
                acc[r][c] = _mm512_fmadd_ps(_mm512_set1_ps(dd[r].0 * da), f, acc[r][c]);
                let mm = _mm256_cvtepi32_ps(_mm256_madd_epi16(mins[r], bsums));
                accm[r][c] = _mm256_fmadd_ps(_mm256_set1_ps(dd[r].1 * da), mm, accm[r][c]);
            }
        }
    }
    for r in 0..R {
        for c in 0..C {
            out[r * C + c] = hsum(acc[r][c]) - hsum8(accm[r][c]);
        }
    }
}
