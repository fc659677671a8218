//! More AVX2 + FMA + F16C kernels (for CPUs without AVX-512): Q2_K, Q3_K,
//! Q4_K, Q5_K and Q6_K against Q8_K blocks, BF16 against bf16 inputs; and
//! four-input forms of them (each weight block loaded and unpacked once).
//! The 32-weight block types are in `avx2_q8`. As in `x86`, every kernel
//! is a safe `#[target_feature]` function; the only unsafe operations are
//! the loads there, from slices checked by indexing.
//!
//! The one-row and four-row kernels are one generic body over the number
//! of inputs `R`, so every input sees exactly the same operations in the
//! same order: the four results are bit-identical to four one-row calls.
//!
//! Integer parts are exact: `maddubs` multiplies unsigned weight quants
//! (at most 63 here) by signed activation bytes, so no pair sum reaches the
//! i16 limit; Q3_K's quants (-4..=3) are taken as `q + 4` (0..=7) and the
//! offset of 4 meets the activation sums of 16.

use super::x86::{f16, hsum, load128, load256};
use core::arch::x86_64::*;

/// A bf16 at the start of `b` as f32.
#[inline(always)]
fn bf16(b: &[u8]) -> f32 {
    f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16)
}

/// BF16 × bf16 over `R` input rows, 16 values per step: a bf16 is the top
/// half of an f32, so the even elements are the 32-bit lanes shifted left
/// by 16 and the odd ones the lanes with their low half cleared (no
/// shuffles); one accumulator each. The tail of `n % 16` is scalar.
#[target_feature(enable = "avx2,fma,f16c")]
fn dot_bf16_rows<const R: usize>(w: &[u8], a: [&[u8]; R], n: usize) -> [f32; R] {
    let w = &w[..n * 2];
    let a = a.map(|a| &a[..n * 2]);
    let high = _mm256_set1_epi32(0xffff_0000u32 as i32);
    let even = |v: __m256i| _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
    let odd = |v: __m256i| _mm256_castsi256_ps(_mm256_and_si256(v, high));
    let mut acc = [[_mm256_setzero_ps(); 2]; R];
    let full = n / 16 * 16;
    for (i, wc) in w[..full * 2].chunks_exact(32).enumerate() {
        let wv = load256(wc);
        let (we, wo) = (even(wv), odd(wv));
        for (acc, a) in acc.iter_mut().zip(a) {
            let av = load256(&a[32 * i..32 * i + 32]);
            acc[0] = _mm256_fmadd_ps(we, even(av), acc[0]);
            acc[1] = _mm256_fmadd_ps(wo, odd(av), acc[1]);
        }
    }
    let mut out = [0f32; R];
    for ((o, acc), a) in out.iter_mut().zip(acc).zip(a) {
        let mut sum = hsum(_mm256_add_ps(acc[0], acc[1]));
        for j in full..n {
            sum += bf16(&w[2 * j..]) * bf16(&a[2 * j..]);
        }
        *o = sum;
    }
    out
}

#[target_feature(enable = "avx2,fma,f16c")]
pub fn dot_bf16(w: &[u8], a: &[u8], n: usize) -> f32 {
    dot_bf16_rows::<1>(w, [a], n)[0]
}

#[target_feature(enable = "avx2,fma,f16c")]
pub fn dot4_bf16(w: &[u8], a: [&[u8]; 4], n: usize) -> [f32; 4] {
    dot_bf16_rows::<4>(w, a, n)
}

/// The scale vector for sub-blocks `2j` and `2j + 1` of a half: `half`
/// holds eight i16 scales in both 128-bit lanes; lanes 0-7 of the result
/// get scale `2j`, lanes 8-15 scale `2j + 1` (the i16 products of 32
/// weights from `maddubs` are laid out so).
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn pair_scales(half: __m256i, j: usize) -> __m256i {
    let lo = (((4 * j + 1) << 8) | (4 * j)) as i16;
    let hi = (((4 * j + 3) << 8) | (4 * j + 2)) as i16;
    _mm256_shuffle_epi8(
        half,
        _mm256_set_m128i(_mm_set1_epi16(hi), _mm_set1_epi16(lo)),
    )
}

/// The two halves (sub-blocks 0..8, 8..16) of 16 i16 scales, each in both
/// 128-bit lanes.
#[target_feature(enable = "avx2,fma,f16c")]
fn halves(sc16: __m256i) -> [__m256i; 2] {
    [
        _mm256_permute2x128_si256(sc16, sc16, 0x00),
        _mm256_permute2x128_si256(sc16, sc16, 0x11),
    ]
}

/// The scale of a Q8_K activation block (then 256 quants, 16 sums of 16).
#[inline(always)]
fn q8k_d(ab: &[u8]) -> f32 {
    f32::from_le_bytes([ab[0], ab[1], ab[2], ab[3]])
}

/// The first `nb` blocks of `R` Q8_K rows.
#[inline(always)]
fn q8k_rows<const R: usize>(a: [&[u8]; R], nb: usize) -> [&[u8]; R] {
    // (A loop, not `map`: `map` is not always inlined.)
    let mut out: [&[u8]; R] = [&[]; R];
    for (o, a) in out.iter_mut().zip(a) {
        *o = &a[..nb * 292];
    }
    out
}

/// The sum of the lanes of each of `R` accumulators (`hsum`).
#[target_feature(enable = "avx2,fma,f16c")]
fn hsums<const R: usize>(acc: [__m256; R]) -> [f32; R] {
    let mut out = [0f32; R];
    for (o, v) in out.iter_mut().zip(acc) {
        *o = hsum(v);
    }
    out
}

/// The activation blocks of block `i` of `R` Q8_K rows.
#[inline(always)]
fn q8k_blocks<const R: usize>(a: [&[u8]; R], i: usize) -> [&[u8]; R] {
    // (A loop, not `map`: `map` is not always inlined.)
    let mut ab: [&[u8]; R] = [&[]; R];
    for (ab, a) in ab.iter_mut().zip(a) {
        *ab = &a[292 * i..292 * (i + 1)];
    }
    ab
}

/// Sum over the 16 sub-blocks of 16 of `scale[s] * <q, qa>_s` for each of
/// `R` activation blocks, `q` the 2-bit fields of `qs` (64 bytes: in each
/// half `h`, byte `l` holds weight `128h + 32j + l` at shift `2j`) plus
/// what `high()` gives, called once per step `(h, j)` in order (bits
/// already above the two). Each step's quants and scales are made once for
/// all `R` blocks.
#[target_feature(enable = "avx2,fma,f16c")]
fn sum_2bit<const R: usize>(
    qs: &[u8],
    ab: [&[u8]; R],
    sc16: __m256i,
    mut high: impl FnMut() -> __m256i,
) -> [__m256i; R] {
    let m3 = _mm256_set1_epi8(3);
    let halves = halves(sc16);
    let mut sums = [_mm256_setzero_si256(); R];
    for (h, half) in halves.into_iter().enumerate() {
        let mut q = load256(&qs[32 * h..]);
        for j in 0..4 {
            let qj = _mm256_or_si256(_mm256_and_si256(q, m3), high());
            q = _mm256_srli_epi16(q, 2);
            let s = pair_scales(half, j);
            for (sum, ab) in sums.iter_mut().zip(ab) {
                let p = _mm256_maddubs_epi16(qj, load256(&ab[4 + 128 * h + 32 * j..]));
                *sum = _mm256_add_epi32(*sum, _mm256_madd_epi16(p, s));
            }
        }
    }
    sums
}

/// Q2_K × Q8_K over `R` activation rows: the 2-bit quants (0..=3) against
/// their 32 activations per shift, each product pair weighted by its
/// sub-block's 4-bit scale in the i16 → i32 step; the 4-bit minimums meet
/// the activation sums of 16 in one `madd`. One float accumulator per row:
/// per block `+ d * d_a * sums`, then `- dmin * d_a * mins`.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn dot_q2k<const R: usize>(w: &[u8], a: [&[u8]; R], n: usize) -> [f32; R] {
    let nb = n / 256;
    let w = &w[..nb * 84];
    let a = q8k_rows(a, nb);
    let m4 = _mm_set1_epi8(0x0f);
    let mut acc = [_mm256_setzero_ps(); R];
    for (i, wb) in w.chunks_exact(84).enumerate() {
        let (d, dmin) = (f16(&wb[80..]), f16(&wb[82..]));
        let ab = q8k_blocks(a, i);
        let sc = load128(wb);
        let scales = _mm256_cvtepu8_epi16(_mm_and_si128(sc, m4));
        let mins = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sc, 4), m4));
        let sums = sum_2bit(&wb[16..], ab, scales, || _mm256_setzero_si256());
        for ((acc, sums), ab) in acc.iter_mut().zip(sums).zip(ab) {
            let da = q8k_d(ab);
            let m = _mm256_madd_epi16(mins, load256(&ab[260..]));
            let s = _mm256_fmadd_ps(_mm256_set1_ps(d * da), _mm256_cvtepi32_ps(sums), *acc);
            *acc = _mm256_fnmadd_ps(_mm256_set1_ps(dmin * da), _mm256_cvtepi32_ps(m), s);
        }
    }
    hsums(acc)
}

#[target_feature(enable = "avx2,fma,f16c")]
pub fn dot_q2_k(w: &[u8], a: &[u8], n: usize) -> f32 {
    dot_q2k::<1>(w, [a], n)[0]
}

#[target_feature(enable = "avx2,fma,f16c")]
pub fn dot4_q2_k(w: &[u8], a: [&[u8]; 4], n: usize) -> [f32; 4] {
    dot_q2k::<4>(w, a, n)
}

/// Q3_K's 16 scales (6 bits, stored plus 32): the low nibbles in bytes
/// 0..8 (scales 0..8, then their high nibbles 8..16), the top two bits in
/// the 2-bit fields of bytes 8..12, four scales per shift. Unpacked four
/// at a time in 32-bit words, then made signed.
fn q3k_scales(sc: &[u8]) -> [u8; 16] {
    let word =
        |k: usize| u32::from_le_bytes([sc[4 * k], sc[4 * k + 1], sc[4 * k + 2], sc[4 * k + 3]]);
    let (a0, a1, top) = (word(0), word(1), word(2));
    let (lo4, lo2) = (0x0f0f_0f0fu32, 0x0303_0303u32);
    let words = [
        (a0 & lo4) | (top & lo2) << 4,
        (a1 & lo4) | (top >> 2 & lo2) << 4,
        (a0 >> 4 & lo4) | (top >> 4 & lo2) << 4,
        (a1 >> 4 & lo4) | (top >> 6 & lo2) << 4,
    ];
    let mut out = [0u8; 16];
    for (o, w) in out.chunks_exact_mut(4).zip(words) {
        o.copy_from_slice(&w.to_le_bytes());
    }
    out
}

/// Q3_K × Q8_K over `R` activation rows: each quant taken as `q + 4` (its
/// two low bits, and 4 where the high bit is set), multiplied as unsigned
/// and scaled per sub-block of 16 in the i16 → i32 step; `4 * scale` meets
/// the activation sums. One float multiply-add per block and row.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn dot_q3k<const R: usize>(w: &[u8], a: [&[u8]; R], n: usize) -> [f32; R] {
    let nb = n / 256;
    let w = &w[..nb * 110];
    let a = q8k_rows(a, nb);
    let bit = _mm256_set1_epi8(1);
    let mut acc = [_mm256_setzero_ps(); R];
    for (i, wb) in w.chunks_exact(110).enumerate() {
        let d = f16(&wb[108..]);
        let ab = q8k_blocks(a, i);
        let sc = q3k_scales(&wb[96..108]);
        let scales = _mm256_cvtepi8_epi16(_mm_sub_epi8(load128(&sc), _mm_set1_epi8(32)));
        // The high bit of weight 128h + 32j + l is bit 4h + j of byte l:
        // one shift per step, in the order the steps come.
        let mut hm = load256(wb);
        let high = || {
            let v = _mm256_slli_epi16(_mm256_and_si256(hm, bit), 2);
            hm = _mm256_srli_epi16(hm, 1);
            v
        };
        let sums = sum_2bit(&wb[32..96], ab, scales, high);
        for ((acc, sums), ab) in acc.iter_mut().zip(sums).zip(ab) {
            let da = q8k_d(ab);
            let offset = _mm256_slli_epi32(_mm256_madd_epi16(scales, load256(&ab[260..])), 2);
            let total = _mm256_sub_epi32(sums, offset);
            *acc = _mm256_fmadd_ps(_mm256_set1_ps(d * da), _mm256_cvtepi32_ps(total), *acc);
        }
    }
    hsums(acc)
}

#[target_feature(enable = "avx2,fma,f16c")]
pub fn dot_q3_k(w: &[u8], a: &[u8], n: usize) -> f32 {
    dot_q3k::<1>(w, [a], n)[0]
}

#[target_feature(enable = "avx2,fma,f16c")]
pub fn dot4_q3_k(w: &[u8], a: [&[u8]; 4], n: usize) -> [f32; 4] {
    dot_q3k::<4>(w, a, n)
}

/// The eight 6-bit scales and eight minimums of a Q4_K/Q5_K block (12
/// bytes, see `blocks::scale_min_k4`), unpacked four at a time in 32-bit
/// words, as vectors: the scales as eight i16 in both 128-bit lanes (for
/// [`k4_scale`]), and each minimum twice over in i16 lanes (minimum k in
/// lanes 2k and 2k + 1, to meet the activation sums of 16).
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn k4_scales_mins(sc: &[u8]) -> (__m256i, __m256i) {
    let word =
        |k: usize| u32::from_le_bytes([sc[4 * k], sc[4 * k + 1], sc[4 * k + 2], sc[4 * k + 3]]);
    let (w0, w1, w2) = (word(0), word(1), word(2));
    let (m6, m4, m2) = (0x3f3f_3f3fu32, 0x0f0f_0f0fu32, 0x0303_0303u32);
    let scales_hi = (w2 & m4) | ((w0 >> 6) & m2) << 4;
    let mins_hi = ((w2 >> 4) & m4) | ((w1 >> 6) & m2) << 4;
    let join = |lo: u32, hi: u32| (hi as u64) << 32 | lo as u64;
    let (scales, mins) = (join(w0 & m6, scales_hi), join(w1 & m6, mins_hi));
    // Byte k of the minimums to i16 lanes 2k and 2k + 1.
    let twice = _mm_set_epi64x(0x0707_0606_0505_0404, 0x0303_0202_0101_0000);
    let mins = _mm_shuffle_epi8(_mm_cvtsi64_si128(mins as i64), twice);
    let scales = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(scales as i64));
    (
        _mm256_broadcastsi128_si256(scales),
        _mm256_cvtepu8_epi16(mins),
    )
}

/// Scale `s` of [`k4_scales_mins`]'s scales in every i16 lane (bytes 2s
/// and 2s + 1).
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn k4_scale(scales: __m256i, s: usize) -> __m256i {
    let pair = (((2 * s + 1) << 8) | (2 * s)) as i16;
    _mm256_shuffle_epi8(scales, _mm256_set1_epi16(pair))
}

/// Q4_K (`FIFTH` false) or Q5_K × Q8_K over `R` activation rows: per
/// quarter of 64, the low nibbles (sub-block 2c) and high nibbles (2c + 1),
/// with Q5_K their fifth bits (bits 2c and 2c + 1 of `qh`), against their
/// 32 activations, each product pair weighted by its sub-block's 6-bit
/// scale (broadcast by a byte shuffle) in the i16 → i32 step; each minimum,
/// twice over in i16 lanes, meets the activation sums of 16 of its
/// sub-block in one `madd`. One float accumulator per row: per block
/// `+ d * d_a * sums`, then `- dmin * d_a * mins`.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn dot_k45<const FIFTH: bool, const R: usize>(
    w: &[u8],
    a: [&[u8]; R],
    n: usize,
) -> [f32; R] {
    let (bb, qs_at) = if FIFTH { (176, 48) } else { (144, 16) };
    let nb = n / 256;
    let w = &w[..nb * bb];
    let a = q8k_rows(a, nb);
    let m4 = _mm256_set1_epi8(0x0f);
    let bit = _mm256_set1_epi8(1);
    let mut acc = [_mm256_setzero_ps(); R];
    for (i, wb) in w.chunks_exact(bb).enumerate() {
        let (d, dmin) = (f16(wb), f16(&wb[2..]));
        let ab = q8k_blocks(a, i);
        let (scales, mins) = k4_scales_mins(&wb[4..16]);
        let scale = |s: usize| k4_scale(scales, s);
        let mut hm = if FIFTH {
            load256(&wb[16..])
        } else {
            _mm256_setzero_si256()
        };
        let mut sums = [_mm256_setzero_si256(); R];
        for c in 0..4 {
            let q = load256(&wb[qs_at + 32 * c..]);
            let mut lo = _mm256_and_si256(q, m4);
            let mut hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
            if FIFTH {
                let h0 = _mm256_slli_epi16(_mm256_and_si256(hm, bit), 4);
                let h1 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hm, 1), bit), 4);
                hm = _mm256_srli_epi16(hm, 2);
                lo = _mm256_or_si256(lo, h0);
                hi = _mm256_or_si256(hi, h1);
            }
            let (s0, s1) = (scale(2 * c), scale(2 * c + 1));
            for (sum, ab) in sums.iter_mut().zip(ab) {
                let p0 = _mm256_maddubs_epi16(lo, load256(&ab[4 + 64 * c..]));
                let p1 = _mm256_maddubs_epi16(hi, load256(&ab[36 + 64 * c..]));
                let p = _mm256_add_epi32(_mm256_madd_epi16(p0, s0), _mm256_madd_epi16(p1, s1));
                *sum = _mm256_add_epi32(*sum, p);
            }
        }
        for ((acc, sums), ab) in acc.iter_mut().zip(sums).zip(ab) {
            let da = q8k_d(ab);
            let m = _mm256_madd_epi16(mins, load256(&ab[260..]));
            let s = _mm256_fmadd_ps(_mm256_set1_ps(d * da), _mm256_cvtepi32_ps(sums), *acc);
            *acc = _mm256_fnmadd_ps(_mm256_set1_ps(dmin * da), _mm256_cvtepi32_ps(m), s);
        }
    }
    hsums(acc)
}

#[target_feature(enable = "avx2,fma,f16c")]
pub fn dot_q4_k(w: &[u8], a: &[u8], n: usize) -> f32 {
    dot_k45::<false, 1>(w, [a], n)[0]
}

#[target_feature(enable = "avx2,fma,f16c")]
pub fn dot4_q4_k(w: &[u8], a: [&[u8]; 4], n: usize) -> [f32; 4] {
    dot_k45::<false, 4>(w, a, n)
}

#[target_feature(enable = "avx2,fma,f16c")]
pub fn dot_q5_k(w: &[u8], a: &[u8], n: usize) -> f32 {
    dot_k45::<true, 1>(w, [a], n)[0]
}

#[target_feature(enable = "avx2,fma,f16c")]
pub fn dot4_q5_k(w: &[u8], a: [&[u8]; 4], n: usize) -> [f32; 4] {
    dot_k45::<true, 4>(w, a, n)
}

/// Q6_K × Q8_K over `R` activation rows: the 6-bit quants (0..=63) rebuilt
/// per quarter from the low nibbles and the 2-bit high parts, multiplied
/// as unsigned, scaled per sub-block of 16 in the i16 → i32 step; the
/// offset of 32 meets the activation sums of 16 in one `madd`. One float
/// multiply-add per block and row.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn dot_q6k<const R: usize>(w: &[u8], a: [&[u8]; R], n: usize) -> [f32; R] {
    let nb = n / 256;
    let w = &w[..nb * 210];
    let a = q8k_rows(a, nb);
    let m4 = _mm256_set1_epi8(0x0f);
    let m2 = _mm256_set1_epi8(0x03);
    let mut acc = [_mm256_setzero_ps(); R];
    for (i, wb) in w.chunks_exact(210).enumerate() {
        let d = f16(&wb[208..]);
        let ab = q8k_blocks(a, i);
        let sc16 = _mm256_cvtepi8_epi16(load128(&wb[192..]));
        let halves = halves(sc16);
        let mut sums = [_mm256_setzero_si256(); R];
        for (h, half) in halves.into_iter().enumerate() {
            let ql0 = load256(&wb[64 * h..]);
            let ql1 = load256(&wb[64 * h + 32..]);
            let qh = load256(&wb[128 + 32 * h..]);
            let high = |v: __m256i| _mm256_slli_epi16(_mm256_and_si256(v, m2), 4);
            let quarters = [
                _mm256_or_si256(_mm256_and_si256(ql0, m4), high(qh)),
                _mm256_or_si256(_mm256_and_si256(ql1, m4), high(_mm256_srli_epi16(qh, 2))),
                _mm256_or_si256(
                    _mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4),
                    high(_mm256_srli_epi16(qh, 4)),
                ),
                _mm256_or_si256(
                    _mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                    high(_mm256_srli_epi16(qh, 6)),
                ),
            ];
            for (c, q) in quarters.into_iter().enumerate() {
                // Quarter c holds weights 128h + 32c.., sub-blocks 8h + 2c
                // and 8h + 2c + 1.
                let s = pair_scales(half, c);
                for (sum, ab) in sums.iter_mut().zip(ab) {
                    let p = _mm256_maddubs_epi16(q, load256(&ab[4 + 128 * h + 32 * c..]));
                    *sum = _mm256_add_epi32(*sum, _mm256_madd_epi16(p, s));
                }
            }
        }
        for ((acc, sums), ab) in acc.iter_mut().zip(sums).zip(ab) {
            let da = q8k_d(ab);
            let offset = _mm256_slli_epi32(_mm256_madd_epi16(sc16, load256(&ab[260..])), 5);
            let total = _mm256_sub_epi32(sums, offset);
            *acc = _mm256_fmadd_ps(_mm256_set1_ps(d * da), _mm256_cvtepi32_ps(total), *acc);
        }
    }
    hsums(acc)
}

#[target_feature(enable = "avx2,fma,f16c")]
pub fn dot_q6_k(w: &[u8], a: &[u8], n: usize) -> f32 {
    dot_q6k::<1>(w, [a], n)[0]
}

#[target_feature(enable = "avx2,fma,f16c")]
pub fn dot4_q6_k(w: &[u8], a: [&[u8]; 4], n: usize) -> [f32; 4] {
    dot_q6k::<4>(w, a, n)
}
