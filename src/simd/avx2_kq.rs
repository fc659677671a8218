//! The AVX2 tiles of the K-quants (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K) over
//! inputs prepared as Q8_K blocks: the conversion of an input (vector
//! code, the same bytes as `blocks::quantize_q8_k`) and tiles of several
//! weight rows x 1 to 8 inputs. Every output has the bits of the one-input
//! kernel of its type in `avx2` (`dot_q6_k` and the rest): the integer
//! sums are exact, and the float steps are theirs, in their order.
//!
//! As in `x86`, every function is a safe `#[target_feature]` one; the only
//! unsafe operations are the loads and stores there, from slices checked
//! by indexing.

use super::avx2;
use super::x86::{f16, hsum, load128, load256};
use crate::blocks::{quantize_q8_k, Q8_K_BYTES, QK_K};
use core::arch::x86_64::*;

/// The K-quant kinds with a tile here.
pub const Q2_K: u8 = 0;
pub const Q3_K: u8 = 1;
pub const Q4_K: u8 = 2;
pub const Q5_K: u8 = 3;
pub const Q6_K: u8 = 4;

/// Eight f32 from the start of `x`.
#[target_feature(enable = "avx2,fma,f16c")]
#[allow(unsafe_code)]
fn load_ps(x: &[f32]) -> __m256 {
    let x = &x[..8];
    // SAFETY: 8 readable f32 (checked above).
    unsafe { _mm256_loadu_ps(x.as_ptr()) }
}

/// 32 bytes to the start of `o`.
#[target_feature(enable = "avx2,fma,f16c")]
#[allow(unsafe_code)]
fn store256(o: &mut [u8], v: __m256i) {
    let o = &mut o[..32];
    // SAFETY: 32 writable bytes (checked above).
    unsafe { _mm256_storeu_si256(o.as_mut_ptr().cast(), v) }
}

/// `x` (whole blocks of 256) as Q8_K blocks in `out`, byte for byte what
/// `blocks::quantize_q8_k` writes: per block the value of largest
/// magnitude (the first such) sets `iscale = -127 / max`, each quant is
/// `rint(iscale * x)` (ties to even, as `_mm256_round_ps` rounds), `d` is
/// `1 / iscale`, and the sums of 16 quants follow. A block with an
/// infinite or NaN value goes to the scalar code.
#[target_feature(enable = "avx2,fma,f16c")]
pub fn prepare(x: &[f32], out: &mut [u8]) {
    let abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
    let inf = _mm256_set1_ps(f32::INFINITY);
    let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    let ones8 = _mm256_set1_epi8(1);
    let ones16 = _mm256_set1_epi16(1);
    for (o, xb) in out.chunks_exact_mut(Q8_K_BYTES).zip(x.chunks_exact(QK_K)) {
        let mut am = _mm256_setzero_ps();
        let mut bad = _mm256_setzero_ps();
        for c in xb.chunks_exact(8) {
            let a = _mm256_and_ps(load_ps(c), abs_mask);
            // Not below infinity: infinite or NaN.
            bad = _mm256_or_ps(bad, _mm256_cmp_ps(a, inf, _CMP_NLT_UQ));
            am = _mm256_max_ps(am, a);
        }
        if _mm256_movemask_ps(bad) != 0 {
            quantize_q8_k(xb, o);
            continue;
        }
        let m = _mm_max_ps(_mm256_castps256_ps128(am), _mm256_extractf128_ps(am, 1));
        let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        let m = _mm_max_ss(m, _mm_movehdup_ps(m));
        let amax = _mm_cvtss_f32(m);
        // The first value of that magnitude, with its sign.
        let mut max = 0f32;
        if amax > 0.0 {
            let target = _mm256_set1_ps(amax);
            for c in xb.chunks_exact(8) {
                let a = _mm256_and_ps(load_ps(c), abs_mask);
                let hit = _mm256_movemask_ps(_mm256_cmp_ps(a, target, _CMP_EQ_OQ));
                if hit != 0 {
                    max = c[hit.trailing_zeros() as usize];
                    break;
                }
            }
        }
        let iscale = if amax == 0.0 { 0.0 } else { -127.0 / max };
        let d = if amax == 0.0 { 0.0 } else { 1.0 / iscale };
        o[..4].copy_from_slice(&d.to_le_bytes());
        let vs = _mm256_set1_ps(iscale);
        let (lo, hi) = (_mm256_set1_ps(-128.0), _mm256_set1_ps(127.0));
        let q32 = |c: &[f32]| {
            let v = _mm256_round_ps(
                _mm256_mul_ps(vs, load_ps(c)),
                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC,
            );
            _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(v, lo), hi))
        };
        let mut sums = [0i16; 16];
        for (j, c) in xb.chunks_exact(32).enumerate() {
            let (a, b) = (q32(&c[..8]), q32(&c[8..16]));
            let (e, f) = (q32(&c[16..24]), q32(&c[24..]));
            let q = _mm256_packs_epi16(_mm256_packs_epi32(a, b), _mm256_packs_epi32(e, f));
            let q = _mm256_permutevar8x32_epi32(q, order);
            store256(&mut o[4 + 32 * j..], q);
            // Sums of four quants in i32 lanes; lanes 0..4 are sub-block
            // 2j, 4..8 sub-block 2j + 1.
            let s4 = _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, q), ones16);
            let s8 = _mm256_hadd_epi32(s4, s4);
            let s16 = _mm256_hadd_epi32(s8, s8);
            sums[2 * j] = _mm256_extract_epi32(s16, 0) as i16;
            sums[2 * j + 1] = _mm256_extract_epi32(s16, 4) as i16;
        }
        for (b, s) in o[260..292].chunks_exact_mut(2).zip(sums) {
            b.copy_from_slice(&s.to_le_bytes());
        }
    }
}

/// `out[c][r] = dot(row r of w, input c)` for weights of kind `K`, `w`
/// whole rows of `wrb` bytes (`n` weights each), `a` 1 to 8
/// prepared inputs (`KTiles::MAX_C`) and `out[c]` as long as there are rows.
#[target_feature(enable = "avx2,fma,f16c")]
pub fn block<const K: u8>(w: &[u8], wrb: usize, a: &[&[u8]], n: usize, out: &mut [&mut [f32]]) {
    macro_rules! go {
        ($c:literal) => {{
            let a: [&[u8]; $c] = core::array::from_fn(|k| a[k]);
            match K {
                _ if $c == 1 => rows::<K, $c>(w, wrb, a, n, out),
                Q6_K => q6k_rows::<$c>(w, wrb, a, n, out),
                Q4_K => k45_rows::<false, $c>(w, wrb, a, n, out),
                Q5_K => k45_rows::<true, $c>(w, wrb, a, n, out),
                _ => rows::<K, $c>(w, wrb, a, n, out),
            }
        }};
    }
    match a.len() {
        1 => go!(1),
        2 => go!(2),
        3 => go!(3),
        4 => go!(4),
        5 => go!(5),
        6 => go!(6),
        7 => go!(7),
        8 => go!(8),
        _ => panic!("1 to 8 inputs"),
    }
}

/// Rows one at a time through the one-row kernels of `avx2`, generic over
/// the count of inputs (so the same bits for any count).
#[target_feature(enable = "avx2,fma,f16c")]
fn rows<const K: u8, const C: usize>(
    w: &[u8],
    wrb: usize,
    a: [&[u8]; C],
    n: usize,
    out: &mut [&mut [f32]],
) {
    for (r, row) in w.chunks_exact(wrb).enumerate() {
        let v = match K {
            Q2_K => avx2::dot_q2k::<C>(row, a, n),
            Q3_K => avx2::dot_q3k::<C>(row, a, n),
            Q4_K => avx2::dot_k45::<false, C>(row, a, n),
            Q5_K => avx2::dot_k45::<true, C>(row, a, n),
            _ => avx2::dot_q6k::<C>(row, a, n),
        };
        for (o, v) in out.iter_mut().zip(v) {
            o[r] = v;
        }
    }
}

/// The activation blocks of superblock `i` of `C` Q8_K inputs.
#[inline(always)]
fn q8k_blocks<'a, const C: usize>(a: &[&'a [u8]; C], i: usize) -> [&'a [u8; Q8_K_BYTES]; C] {
    static NONE: [u8; Q8_K_BYTES] = [0; Q8_K_BYTES];
    // (A loop, not `from_fn`: its closure is not always inlined.)
    let mut ab = [&NONE; C];
    for (ab, a) in ab.iter_mut().zip(a) {
        *ab = a[Q8_K_BYTES * i..Q8_K_BYTES * (i + 1)].try_into().unwrap();
    }
    ab
}

/// The first `nb` Q8_K blocks of each of `C` inputs.
#[inline(always)]
fn q8k_rows<const C: usize>(a: [&[u8]; C], nb: usize) -> [&[u8]; C] {
    let mut out: [&[u8]; C] = [&[]; C];
    for (o, a) in out.iter_mut().zip(a) {
        *o = &a[..nb * Q8_K_BYTES];
    }
    out
}

/// Q6_K rows x `C` inputs, the float steps of `avx2::dot_q6k` (so the
/// same bits): per superblock and quarter of 32 weights the 6-bit quants are rebuilt once and meet each input's 32
/// activations (`maddubs`), weighted by the pair of sub-block scales in
/// the i16 -> i32 step, into one i32 accumulator per input kept across
/// the superblock; then per input the offset of 32 against the sums of 16
/// and one float multiply-add.
#[target_feature(enable = "avx2,fma,f16c")]
fn q6k_rows<const C: usize>(w: &[u8], wrb: usize, a: [&[u8]; C], n: usize, out: &mut [&mut [f32]]) {
    const BB: usize = 210;
    let nb = n / QK_K;
    let a = q8k_rows(a, nb);
    let m4 = _mm256_set1_epi8(0x0f);
    let m2 = _mm256_set1_epi8(0x03);
    for (r, row) in w.chunks_exact(wrb).enumerate() {
        let row = &row[..nb * BB];
        let mut acc = [_mm256_setzero_ps(); C];
        for (i, wb) in row.chunks_exact(BB).enumerate() {
            let wb: &[u8; BB] = wb.try_into().unwrap();
            let ab = q8k_blocks(&a, i);
            let sc16 = _mm256_cvtepi8_epi16(load128(&wb[192..]));
            let mut sums = [_mm256_setzero_si256(); C];
            for h in 0..2 {
                let half = if h == 0 {
                    _mm256_permute2x128_si256(sc16, sc16, 0x00)
                } else {
                    _mm256_permute2x128_si256(sc16, sc16, 0x11)
                };
                let qh = load256(&wb[128 + 32 * h..]);
                for c in 0..4 {
                    let ql = load256(&wb[64 * h + 32 * (c & 1)..]);
                    let lo = if c < 2 {
                        _mm256_and_si256(ql, m4)
                    } else {
                        _mm256_and_si256(_mm256_srli_epi16(ql, 4), m4)
                    };
                    let hb = match c {
                        0 => qh,
                        1 => _mm256_srli_epi16(qh, 2),
                        2 => _mm256_srli_epi16(qh, 4),
                        _ => _mm256_srli_epi16(qh, 6),
                    };
                    let q = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(hb, m2), 4));
                    let s = avx2::pair_scales(half, c);
                    for (sum, ab) in sums.iter_mut().zip(&ab) {
                        let p = _mm256_maddubs_epi16(q, load256(&ab[4 + 128 * h + 32 * c..]));
                        *sum = _mm256_add_epi32(*sum, _mm256_madd_epi16(p, s));
                    }
                }
            }
            let d = f16(&wb[208..]);
            for ((acc, sum), ab) in acc.iter_mut().zip(sums).zip(&ab) {
                let da = f32::from_le_bytes([ab[0], ab[1], ab[2], ab[3]]);
                let offset = _mm256_slli_epi32(_mm256_madd_epi16(sc16, load256(&ab[260..])), 5);
                let total = _mm256_sub_epi32(sum, offset);
                *acc = _mm256_fmadd_ps(_mm256_set1_ps(d * da), _mm256_cvtepi32_ps(total), *acc);
            }
        }
        for (o, acc) in out.iter_mut().zip(acc) {
            o[r] = hsum(acc);
        }
    }
}

/// Q4_K (`FIFTH` false) or Q5_K rows x `C` inputs, the float steps of
/// `avx2::dot_k45` (so the same bits): per quarter of 64 weights the low
/// nibbles (sub-block 2c) then the high ones (2c + 1), with Q5_K their
/// fifth bits, made once and met by each input's 32 activations, weighted
/// by the sub-block's scale in the i16 -> i32 step, into one i32
/// accumulator per input kept across the superblock; then per input the
/// minimums against the sums of 16 and two float steps.
#[target_feature(enable = "avx2,fma,f16c")]
fn k45_rows<const FIFTH: bool, const C: usize>(
    w: &[u8],
    wrb: usize,
    a: [&[u8]; C],
    n: usize,
    out: &mut [&mut [f32]],
) {
    let (bb, qs_at) = if FIFTH { (176, 48) } else { (144, 16) };
    let nb = n / QK_K;
    let a = q8k_rows(a, nb);
    let m4 = _mm256_set1_epi8(0x0f);
    let bit = _mm256_set1_epi8(1);
    for (r, row) in w.chunks_exact(wrb).enumerate() {
        let row = &row[..nb * bb];
        let mut acc = [_mm256_setzero_ps(); C];
        for (i, wb) in row.chunks_exact(bb).enumerate() {
            let wb = &wb[..bb];
            let ab = q8k_blocks(&a, i);
            let (d, dmin) = (f16(wb), f16(&wb[2..]));
            let (scales, mins) = avx2::k4_scales_mins(&wb[4..16]);
            let scale = |s: usize| avx2::k4_scale(scales, s);
            let mut hm = if FIFTH {
                load256(&wb[16..])
            } else {
                _mm256_setzero_si256()
            };
            let mut sums = [_mm256_setzero_si256(); C];
            for c in 0..4 {
                let q = load256(&wb[qs_at + 32 * c..]);
                let mut lo = _mm256_and_si256(q, m4);
                if FIFTH {
                    lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(hm, bit), 4));
                }
                let s0 = scale(2 * c);
                for (sum, ab) in sums.iter_mut().zip(&ab) {
                    let p = _mm256_maddubs_epi16(lo, load256(&ab[4 + 64 * c..]));
                    *sum = _mm256_add_epi32(*sum, _mm256_madd_epi16(p, s0));
                }
                let mut hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
                if FIFTH {
                    let h1 = _mm256_and_si256(_mm256_srli_epi16(hm, 1), bit);
                    hi = _mm256_or_si256(hi, _mm256_slli_epi16(h1, 4));
                    hm = _mm256_srli_epi16(hm, 2);
                }
                let s1 = scale(2 * c + 1);
                for (sum, ab) in sums.iter_mut().zip(&ab) {
                    let p = _mm256_maddubs_epi16(hi, load256(&ab[36 + 64 * c..]));
                    *sum = _mm256_add_epi32(*sum, _mm256_madd_epi16(p, s1));
                }
            }
            for ((acc, sum), ab) in acc.iter_mut().zip(sums).zip(&ab) {
                let da = f32::from_le_bytes([ab[0], ab[1], ab[2], ab[3]]);
                let m = _mm256_madd_epi16(mins, load256(&ab[260..]));
                let s = _mm256_fmadd_ps(_mm256_set1_ps(d * da), _mm256_cvtepi32_ps(sum), *acc);
                *acc = _mm256_fnmadd_ps(_mm256_set1_ps(dmin * da), _mm256_cvtepi32_ps(m), s);
            }
        }
        for (o, acc) in out.iter_mut().zip(acc) {
            o[r] = hsum(acc);
        }
    }
}
