//! The 32-weight block types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) on AVX2, FMA
//! and F16C against inputs prepared in a layout of their own: tiles of 8
//! weight rows x 1 to 4 or 8 inputs, the integer work of every block done for 4
//! rows per vector and the float work (one convert, one multiply-add) for
//! 8 rows per vector. A prompt and a single token go through the same
//! tiles.
//!
//! Weights stay where they are (the caller's GGUF bytes): each block of 4
//! rows is interleaved in registers, 8 bytes (8 weights) of each row per
//! 64-bit lane, so that a chunk `k` of 8 inputs broadcast to all lanes
//! (`vpbroadcastq` from memory, a plain load) meets chunk `k` of 4 rows in
//! one `maddubs`. Nibble quants (0..=15, with the fifth bit 0..=31) are
//! multiplied as unsigned bytes; the four `maddubs` of a block are summed
//! in i16 (each lane at most 4 * 2 * 31 * 127 = 31496 in magnitude, below
//! the i16 limit), one `madd` makes i32 pairs per row, and one `hadd` of
//! two groups of 4 rows gives one i32 lane per row: the exact integer dot
//! product `sumi` of the block. Q4_0 and Q5_0 subtract their offset (8,
//! 16) times the sum of the block's input quants (precomputed). Q8_0's
//! signed quants meet the inputs as `|q|` times `sign(a, q)` (exact: a pair
//! sum of two 128 * 127 products does not overflow i16), one `madd` per
//! chunk.
//!
//! Each output (row r, input c) is then, per block i in order, starting
//! from 0: `acc = fma(d_w * d_a, sumi, acc)`, and for Q4_1/Q5_1 then
//! `acc = fma(m_w, s_a, acc)` (`d_w * d_a`, two f16 values, is exact in
//! f32). [`dot`] computes exactly this from the standard Q8_0/Q8_1 input
//! blocks, so every output has the same bits whatever the tile shape, the
//! grouping of rows and inputs, the batch split or the number of threads.
//!
//! Prepared input layout: per block of 32, 40 bytes: the 32 quants, `d`
//! (the f16 scale, widened to f32), then for Q4_0/Q5_0 the offset times
//! the sum of the quants (i32), for Q4_1/Q5_1 `s` (the f16 `d * sum(q)`
//! of Q8_1, as f32), for Q8_0 zero. The values are exactly llama.cpp's
//! (and `quant::quantize_act`'s) Q8_0/Q8_1 quantization.

use super::x86::{f16, load256};
use core::arch::x86_64::*;

pub const Q4_0: u8 = 0;
pub const Q4_1: u8 = 1;
pub const Q5_0: u8 = 2;
pub const Q5_1: u8 = 3;
pub const Q8_0: u8 = 4;

/// Bytes of one prepared input block.
const ABB: usize = 40;

/// Bytes of a weight block of kind `k`.
const fn wbb(k: u8) -> usize {
    match k {
        Q4_0 => 18,
        Q4_1 => 20,
        Q5_0 => 22,
        Q5_1 => 24,
        _ => 34,
    }
}

/// Whether kind `k` has a minimum (and meets Q8_1 inputs).
const fn has_min(k: u8) -> bool {
    matches!(k, Q4_1 | Q5_1)
}

/// The offset of kind `k`'s unsigned quants (0 for Q8_0: signed).
const fn offset(k: u8) -> i32 {
    match k {
        Q4_0 => 8,
        Q5_0 => 16,
        _ => 0,
    }
}

/// Where the nibbles (Q8_0: the bytes) and the fifth bits of a block lie.
const fn qs_at(k: u8) -> usize {
    match k {
        Q4_0 | Q8_0 => 2,
        Q4_1 => 4,
        Q5_0 => 6,
        _ => 8,
    }
}
const fn qh_at(k: u8) -> usize {
    if k == Q5_0 {
        2
    } else {
        4
    }
}
const fn fifth(k: u8) -> bool {
    matches!(k, Q5_0 | Q5_1)
}

/// Bytes of one prepared input of `n` values.
pub fn row_bytes(n: usize) -> usize {
    n / 32 * ABB
}

/// Writes input `x` (a multiple of 32 values) into `out`
/// ([`row_bytes`]) in the layout above, for weights of kind `K`: per block
/// `blocks::quantize_block_q8`'s quants, scale and sum (vectorized, the
/// same operations: `max|x|`, `id = 127 / max`, `rint(x * id)` clamped to
/// ±127, `d = max / 127`; a block with a NaN goes through the scalar code).
#[target_feature(enable = "avx2,fma,f16c")]
#[allow(unsafe_code)]
pub fn prepare<const K: u8>(x: &[f32], out: &mut [u8]) {
    use half::f16 as F16;
    let abs = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
    for (o, xb) in out.chunks_exact_mut(ABB).zip(x.chunks_exact(32)) {
        let v: [__m256; 4] = core::array::from_fn(|k| {
            let c = &xb[8 * k..8 * k + 8];
            // SAFETY: 8 readable floats (the slice above); no alignment
            // needed.
            unsafe { _mm256_loadu_ps(c.as_ptr()) }
        });
        let nan = v.iter().fold(_mm256_setzero_ps(), |m, &v| {
            _mm256_or_ps(m, _mm256_cmp_ps::<_CMP_UNORD_Q>(v, v))
        });
        let (d, sum) = if _mm256_movemask_ps(nan) != 0 {
            crate::blocks::quantize_block_q8(xb, &mut o[..32])
        } else {
            let a = v.map(|v| _mm256_and_ps(v, abs));
            let m = _mm256_max_ps(_mm256_max_ps(a[0], a[1]), _mm256_max_ps(a[2], a[3]));
            let m = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
            let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
            let am = _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
            let id = _mm256_set1_ps(if am != 0.0 { 127.0 / am } else { 0.0 });
            let (lo, hi) = (_mm256_set1_epi32(-127), _mm256_set1_epi32(127));
            let q = v.map(|v| {
                let r = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
                    _mm256_mul_ps(v, id),
                );
                _mm256_min_epi32(_mm256_max_epi32(_mm256_cvtps_epi32(r), lo), hi)
            });
            let s = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
            let b = _mm256_packs_epi16(
                _mm256_packs_epi32(q[0], q[1]),
                _mm256_packs_epi32(q[2], q[3]),
            );
            let b = _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
            let oq = &mut o[..32];
            // SAFETY: 32 writable bytes (the slice above).
            unsafe { _mm256_storeu_si256(oq.as_mut_ptr().cast(), b) };
            (am / 127.0, hsum_i32(s))
        };
        o[32..36].copy_from_slice(&F16::from_f32(d).to_f32().to_le_bytes());
        let extra = if has_min(K) {
            F16::from_f32(d * sum as f32).to_f32().to_le_bytes()
        } else {
            (offset(K) * sum).to_le_bytes()
        };
        o[36..40].copy_from_slice(&extra);
    }
}

/// The little-endian u16 at `p`.
///
/// # Safety
/// `p` is valid for reads of 2 bytes.
#[inline(always)]
#[allow(unsafe_code)]
unsafe fn u16_at(p: *const u8) -> u64 {
    // SAFETY: the caller's bound.
    u16::from_le(unsafe { p.cast::<u16>().read_unaligned() }) as u64
}

/// The little-endian u32 at `p`.
///
/// # Safety
/// `p` is valid for reads of 4 bytes.
#[inline(always)]
#[allow(unsafe_code)]
unsafe fn u32_at(p: *const u8) -> u32 {
    // SAFETY: the caller's bound.
    u32::from_le(unsafe { p.cast::<u32>().read_unaligned() })
}

/// Rows of the output lanes: lane `l` of a tile's vectors is row
/// `LANE_ROW[l]` (the order `hadd` of two groups of 4 leaves them in).
const LANE_ROW: [usize; 8] = [0, 1, 4, 5, 2, 3, 6, 7];

/// The four chunk vectors of a block of 4 rows (`p[r]` at the block of
/// row r): vector k holds weights 8k..8k + 8 of rows 0, 1 | 2, 3, one row
/// per 64-bit lane, as unsigned bytes (Q8_0: signed).
///
/// # Safety
/// Each `p[r]` is valid for reads of a block of kind `K`.
#[target_feature(enable = "avx2,fma,f16c")]
#[allow(unsafe_code)]
unsafe fn chunks<const K: u8>(p: [*const u8; 4]) -> [__m256i; 4] {
    // Bytes o..o + 16 of the quants of rows `lo` | `hi` (one per 128-bit
    // lane).
    let two = |lo: usize, hi: usize, o: usize| {
        let q = |r: usize| p[r].wrapping_add(qs_at(K) + o).cast::<__m128i>();
        // SAFETY: bytes qs_at + o .. + 16 lie inside each block (the
        // caller's bound: o is 0, or 16 for Q8_0's 32 quant bytes).
        unsafe { _mm256_loadu2_m128i(q(hi), q(lo)) }
    };
    if K == Q8_0 {
        let (a, b, c, d) = (two(0, 2, 0), two(1, 3, 0), two(0, 2, 16), two(1, 3, 16));
        return [
            _mm256_unpacklo_epi64(a, b),
            _mm256_unpackhi_epi64(a, b),
            _mm256_unpacklo_epi64(c, d),
            _mm256_unpackhi_epi64(c, d),
        ];
    }
    let (a, b) = (two(0, 2, 0), two(1, 3, 0));
    // Bytes 0..8 and 8..16 of the nibbles of each row: weights 0..8
    // (low nibbles) and 16..24 (high), 8..16 and 24..32.
    let (v0, v1) = (_mm256_unpacklo_epi64(a, b), _mm256_unpackhi_epi64(a, b));
    let m4 = _mm256_set1_epi8(0x0f);
    let mut ch = [
        _mm256_and_si256(v0, m4),
        _mm256_and_si256(v1, m4),
        _mm256_and_si256(_mm256_srli_epi16(v0, 4), m4),
        _mm256_and_si256(_mm256_srli_epi16(v1, 4), m4),
    ];
    if fifth(K) {
        // SAFETY: the 4 bytes of fifth bits of each block (the caller's
        // bound).
        let h = |r: usize| unsafe { u32_at(p[r].wrapping_add(qh_at(K))) as i32 };
        let qh = _mm_setr_epi32(h(0), h(1), h(2), h(3));
        let qh = _mm256_broadcastsi128_si256(qh);
        let bit = _mm256_set1_epi64x(0x8040_2010_0804_0201u64 as i64);
        let b5 = _mm256_set1_epi8(0x10);
        let rep = 0x0101_0101_0101_0101u64 as i64;
        for (k, c) in ch.iter_mut().enumerate() {
            // Byte k of row r's fifth bits to every byte of its lane.
            let k = k as i64;
            let idx = _mm256_set_epi64x(rep * (12 + k), rep * (8 + k), rep * (4 + k), rep * k);
            let spread = _mm256_shuffle_epi8(qh, idx);
            let set = _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
            *c = _mm256_or_si256(*c, _mm256_and_si256(set, b5));
        }
    }
    ch
}

/// The i32 pairs of a block's dot products for 4 rows (`ch`, from
/// [`chunks`]) with one input block (chunks `av`): lanes 2r and 2r + 1
/// sum to row r's.
#[target_feature(enable = "avx2,fma,f16c")]
fn pairs<const K: u8>(ch: &[__m256i; 4], av: &[__m256i; 4]) -> __m256i {
    let ones = _mm256_set1_epi16(1);
    if K == Q8_0 {
        let p = |k: usize| {
            let u = _mm256_maddubs_epi16(_mm256_sign_epi8(ch[k], ch[k]), {
                _mm256_sign_epi8(av[k], ch[k])
            });
            _mm256_madd_epi16(u, ones)
        };
        _mm256_add_epi32(_mm256_add_epi32(p(0), p(1)), _mm256_add_epi32(p(2), p(3)))
    } else {
        let p = |k: usize| _mm256_maddubs_epi16(ch[k], av[k]);
        // At most 31496 in magnitude per lane (see the module's notes).
        let s = _mm256_add_epi16(_mm256_add_epi16(p(0), p(1)), _mm256_add_epi16(p(2), p(3)));
        _mm256_madd_epi16(s, ones)
    }
}

/// `out[c][l] = dot(row LANE_ROW[l] of w, input c)` for 8 rows of `nb`
/// blocks and C prepared inputs.
#[target_feature(enable = "avx2,fma,f16c")]
#[allow(unsafe_code)]
fn tile<const K: u8, const C: usize>(
    w: [&[u8]; 8],
    a: [&[u8]; C],
    nb: usize,
    pf: &[u8],
) -> [__m256; C] {
    let bb = wbb(K);
    assert!(w.iter().all(|w| w.len() >= nb * bb) && a.iter().all(|a| a.len() >= nb * ABB));
    let wp = w.map(|w| w.as_ptr());
    let ap = a.map(|a| a.as_ptr());
    let mut acc = [_mm256_setzero_ps(); C];
    for i in 0..nb {
        let p: [*const u8; 8] = core::array::from_fn(|r| wp[r].wrapping_add(i * bb));
        // Software prefetch of the rows to come (`pf`, 8 blocks per step):
        // eight rows read side by side are more streams than the hardware
        // prefetchers follow well.
        let mut j = 8 * bb * i;
        while j < (8 * bb * (i + 1)).min(pf.len()) {
            // (A byte of `pf`: j < pf.len(); a prefetch reads nothing
            // architecturally.)
            _mm_prefetch::<_MM_HINT_T0>(pf.as_ptr().wrapping_add(j).cast());
            j += 64;
        }
        // SAFETY: i < nb, and every row has nb blocks (asserted above).
        let c0 = unsafe { chunks::<K>([p[0], p[1], p[2], p[3]]) };
        // SAFETY: as above.
        let c1 = unsafe { chunks::<K>([p[4], p[5], p[6], p[7]]) };
        // The scales (and minimums) of the 8 rows in lane order, as f16
        // gathered in general registers.
        let gather = |o: usize| {
            // SAFETY: bytes o..o + 2 of each block (o is 0 or 2).
            let h = |k: usize| unsafe { u16_at(p[LANE_ROW[k]].wrapping_add(o)) };
            let lo = h(0) | h(1) << 16 | h(2) << 32 | h(3) << 48;
            let hi = h(4) | h(5) << 16 | h(6) << 32 | h(7) << 48;
            _mm256_cvtph_ps(_mm_set_epi64x(hi as i64, lo as i64))
        };
        let dw = gather(0);
        let mw = if has_min(K) {
            gather(2)
        } else {
            _mm256_setzero_ps()
        };
        for (acc, &ap) in acc.iter_mut().zip(&ap) {
            let ab = ap.wrapping_add(i * ABB);
            let av: [__m256i; 4] = core::array::from_fn(|k| {
                // SAFETY: bytes 8k..8k + 8 of input block i (asserted
                // above); no alignment needed.
                let v = unsafe { _mm_loadl_epi64(ab.wrapping_add(8 * k).cast()) };
                _mm256_broadcastq_epi64(v)
            });
            // SAFETY: bytes 32..36 of input block i (asserted above), read
            // unaligned.
            let da = unsafe { ab.wrapping_add(32).cast::<f32>().read_unaligned() };
            let da = _mm256_set1_ps(da);
            // SAFETY: bytes 36..40, as above.
            let extra = unsafe { ab.wrapping_add(36).cast::<i32>().read_unaligned() };
            let extra = _mm256_set1_epi32(extra);
            let mut h = _mm256_hadd_epi32(pairs::<K>(&c0, &av), pairs::<K>(&c1, &av));
            if offset(K) != 0 {
                h = _mm256_sub_epi32(h, extra);
            }
            let s = _mm256_mul_ps(dw, da);
            *acc = _mm256_fmadd_ps(s, _mm256_cvtepi32_ps(h), *acc);
            if has_min(K) {
                *acc = _mm256_fmadd_ps(mw, _mm256_castsi256_ps(extra), *acc);
            }
        }
    }
    acc
}

/// Rows `w` (whole rows of `wrb` bytes, `n` weights each) against the C
/// inputs `a`, 8 rows at a time (the last group padded with copies of the
/// last row, their results dropped): `out[c][r] = dot(row r, input c)`.
#[target_feature(enable = "avx2,fma,f16c")]
#[allow(unsafe_code)]
fn rows<const K: u8, const C: usize>(
    w: &[u8],
    wrb: usize,
    a: [&[u8]; C],
    n: usize,
    out: &mut [&mut [f32]],
) {
    let nr = w.len() / wrb;
    let nb = n / 32;
    let mut r = 0;
    while r < nr {
        let rw: [&[u8]; 8] = core::array::from_fn(|k| {
            let row = (r + k).min(nr - 1);
            &w[row * wrb..(row + 1) * wrb]
        });
        // One token streams its rows from memory: prefetch two groups
        // ahead (a batch reads them from cache, but for the first input).
        let pf = if C == 1 {
            let at = ((r + 16) * wrb).min(w.len());
            &w[at..((r + 24) * wrb).min(w.len())]
        } else {
            &[]
        };
        let v = tile::<K, C>(rw, a, nb, pf);
        for (o, v) in out.iter_mut().zip(v) {
            let mut lanes = [0f32; 8];
            // SAFETY: 8 writable floats.
            unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), v) };
            for (l, &row) in LANE_ROW.iter().enumerate() {
                if r + row < nr {
                    o[r + row] = lanes[l];
                }
            }
        }
        r += 8;
    }
}

/// `out[c][r] = dot(row r of w, input c)` for 1 to 4 or 8 prepared inputs `a`
/// (`out[c]` as long as there are rows).
#[target_feature(enable = "avx2,fma,f16c")]
pub fn block<const K: u8>(w: &[u8], wrb: usize, a: &[&[u8]], n: usize, out: &mut [&mut [f32]]) {
    assert!(wrb >= n / 32 * wbb(K) && out.len() == a.len());
    match *a {
        [a0, a1, a2, a3, a4, a5, a6, a7] => {
            rows::<K, 8>(w, wrb, [a0, a1, a2, a3, a4, a5, a6, a7], n, out)
        }
        [a0, a1, a2, a3] => rows::<K, 4>(w, wrb, [a0, a1, a2, a3], n, out),
        [a0, a1, a2] => rows::<K, 3>(w, wrb, [a0, a1, a2], n, out),
        [a0, a1] => rows::<K, 2>(w, wrb, [a0, a1], n, out),
        [a0] => rows::<K, 1>(w, wrb, [a0], n, out),
        _ => panic!("1 to 4 or 8 inputs"),
    }
}

/// [`prepare`] for kind `k`.
#[target_feature(enable = "avx2,fma,f16c")]
pub fn prepare_of(k: u8, x: &[f32], out: &mut [u8]) {
    match k {
        Q4_0 => prepare::<Q4_0>(x, out),
        Q4_1 => prepare::<Q4_1>(x, out),
        Q5_0 => prepare::<Q5_0>(x, out),
        Q5_1 => prepare::<Q5_1>(x, out),
        _ => prepare::<Q8_0>(x, out),
    }
}

/// [`block`] for kind `k`.
#[target_feature(enable = "avx2,fma,f16c")]
pub fn block_of(k: u8, w: &[u8], wrb: usize, a: &[&[u8]], n: usize, out: &mut [&mut [f32]]) {
    match k {
        Q4_0 => block::<Q4_0>(w, wrb, a, n, out),
        Q4_1 => block::<Q4_1>(w, wrb, a, n, out),
        Q5_0 => block::<Q5_0>(w, wrb, a, n, out),
        Q5_1 => block::<Q5_1>(w, wrb, a, n, out),
        _ => block::<Q8_0>(w, wrb, a, n, out),
    }
}

/// One row against one input in the standard form (`quant::quantize_act`:
/// Q8_0 blocks, Q8_1 for Q4_1/Q5_1), with exactly the float operations of
/// the tiles (see the module's notes): the same bits.
#[target_feature(enable = "avx2,fma,f16c")]
pub fn dot<const K: u8>(w: &[u8], a: &[u8], n: usize) -> f32 {
    let (bb, abb) = (wbb(K), if has_min(K) { 36 } else { 34 });
    let nb = n / 32;
    let (w, a) = (&w[..nb * bb], &a[..nb * abb]);
    let ones = _mm256_set1_epi16(1);
    let mut acc = _mm_setzero_ps();
    for (wb, ab) in w.chunks_exact(bb).zip(a.chunks_exact(abb)) {
        let aq = load256(&ab[abb - 32..]);
        let sumi = if K == Q8_0 {
            let q = load256(&wb[2..]);
            let u = _mm256_maddubs_epi16(_mm256_sign_epi8(q, q), _mm256_sign_epi8(aq, q));
            hsum_i32(_mm256_madd_epi16(u, ones))
        } else {
            let mut q = [0u8; 32];
            let qs = &wb[qs_at(K)..qs_at(K) + 16];
            let qh = if fifth(K) {
                let h = &wb[qh_at(K)..qh_at(K) + 4];
                u32::from_le_bytes([h[0], h[1], h[2], h[3]])
            } else {
                0
            };
            for j in 0..16 {
                q[j] = (qs[j] & 0x0f) | (((qh >> j) & 1) << 4) as u8;
                q[j + 16] = (qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4) as u8;
            }
            let u = _mm256_maddubs_epi16(load256(&q), aq);
            let dot = hsum_i32(_mm256_madd_epi16(u, ones));
            let sa = hsum_i32(_mm256_madd_epi16(
                _mm256_maddubs_epi16(_mm256_set1_epi8(1), aq),
                ones,
            ));
            dot - offset(K) * sa
        };
        let s = f16(wb) * f16(ab);
        acc = _mm_fmadd_ss(_mm_set_ss(s), _mm_set_ss(sumi as f32), acc);
        if has_min(K) {
            acc = _mm_fmadd_ss(_mm_set_ss(f16(&wb[2..])), _mm_set_ss(f16(&ab[2..])), acc);
        }
    }
    _mm_cvtss_f32(acc)
}

/// The sum of the 8 i32 lanes of `v` (wrapping, exact here).
#[target_feature(enable = "avx2,fma,f16c")]
fn hsum_i32(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
    _mm_cvtsi128_si32(s)
}
