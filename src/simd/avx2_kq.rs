//! The AVX2 tiles of the K-quants (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K) over
//! inputs prepared as Q8_K blocks: the conversion of an input (vector
//! code, the same bytes as `blocks::quantize_q8_k`) and tiles of several
//! weight rows x 1 to 4 inputs. Every output has the bits of the one-input
//! kernel of its type in `avx2` (`dot_q6_k` and the rest): the integer
//! sums are exact, and the float steps are theirs, in their order.
//!
//! As in `x86`, every function is a safe `#[target_feature]` one; the only
//! unsafe operations are the loads and stores there, from slices checked
//! by indexing.

use super::avx2;
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
/// whole rows of `wrb` bytes (`n` weights each), `a` 1 to 4 prepared
/// inputs and `out[c]` as long as there are rows.
#[target_feature(enable = "avx2,fma,f16c")]
pub fn block<const K: u8>(w: &[u8], wrb: usize, a: &[&[u8]], n: usize, out: &mut [&mut [f32]]) {
    match a.len() {
        1 => rows::<K, 1>(w, wrb, [a[0]], n, out),
        2 => rows::<K, 2>(w, wrb, [a[0], a[1]], n, out),
        3 => rows::<K, 3>(w, wrb, [a[0], a[1], a[2]], n, out),
        4 => rows::<K, 4>(w, wrb, [a[0], a[1], a[2], a[3]], n, out),
        _ => panic!("1 to 4 inputs"),
    }
}

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
