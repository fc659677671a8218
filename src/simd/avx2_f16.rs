//! F16 and BF16 weights on AVX2 + FMA + F16C against inputs prepared as
//! f32: tiles of R weight rows x C inputs, one vector accumulator per
//! output, each weight chunk converted once per row and used for all C
//! inputs, each input chunk loaded once and used for all R rows. A prompt
//! (pp) and a single token (tg) go through the same tiles, in shapes that
//! suit their count of inputs.
//!
//! The inputs hold exactly the values the scalar reference multiplies
//! (`W::F16.act_type()` and `W::BF16.act_type()`: rounded to f16 or bf16,
//! then widened, which is exact), so the products are the same. Each output
//! is summed in the order of the one-input kernels `x86::dot_f16` and
//! `avx2::dot_bf16`: two 8-lane partial sums over chunks of 16 values (F16:
//! values 0..8 and 8..16 of each chunk; BF16: the even and the odd values),
//! added, reduced by `hsum`, then the tail of `n % 16` one value at a time.
//! To keep one accumulator per output in the 16 registers, a tile makes two
//! passes over its rows, one per partial sum (the second from cache), so
//! its results are bit-identical to those kernels', whatever the tile
//! shape, the grouping of rows and inputs or the number of threads.
//!
//! Prepared input layout (f32, `4 * n` bytes): F16 in element order; BF16
//! per chunk of 16 the 8 even values then the 8 odd ones (the order the
//! shift and mask unpack the weights in), the tail in element order.

use super::x86::hsum;
use core::arch::x86_64::*;

/// F16 weights (kind `K`).
pub const F16: u8 = 0;
/// BF16 weights (kind `K`).
pub const BF16: u8 = 1;

/// Eight f32 at the start of `b`.
#[target_feature(enable = "avx2,fma,f16c")]
#[allow(unsafe_code)]
fn load_ps(b: &[u8]) -> __m256 {
    let b = &b[..32];
    // SAFETY: 32 readable bytes (checked above); loadu has no alignment need.
    unsafe { _mm256_loadu_ps(b.as_ptr().cast()) }
}

#[target_feature(enable = "avx2,fma,f16c")]
#[allow(unsafe_code)]
fn store_ps(b: &mut [u8], v: __m256) {
    let b = &mut b[..32];
    // SAFETY: 32 writable bytes (checked above); storeu has no alignment need.
    unsafe { _mm256_storeu_ps(b.as_mut_ptr().cast(), v) }
}

/// f32 to bf16 bits and back, rounding to nearest even (NaN stays NaN): the
/// scalar conversion of `quant`.
#[inline(always)]
fn bf16_round(v: f32) -> f32 {
    let u = v.to_bits();
    let b = if v.is_nan() {
        (u >> 16) | 0x40
    } else {
        (u + (0x7fff + ((u >> 16) & 1))) >> 16
    };
    f32::from_bits(b << 16)
}

/// The bf16 rounding of eight lanes, as [`bf16_round`].
#[target_feature(enable = "avx2,fma,f16c")]
fn bf16_round8(v: __m256) -> __m256 {
    let u = _mm256_castps_si256(v);
    let one = _mm256_set1_epi32(1);
    let bias = _mm256_add_epi32(
        _mm256_set1_epi32(0x7fff),
        _mm256_and_si256(_mm256_srli_epi32(u, 16), one),
    );
    let high = _mm256_set1_epi32(0xffff_0000u32 as i32);
    let rounded = _mm256_and_si256(_mm256_add_epi32(u, bias), high);
    let quiet = _mm256_and_si256(_mm256_or_si256(u, _mm256_set1_epi32(0x40_0000)), high);
    let nan = _mm256_cmp_ps::<_CMP_UNORD_Q>(v, v);
    _mm256_blendv_ps(
        _mm256_castsi256_ps(rounded),
        _mm256_castsi256_ps(quiet),
        nan,
    )
}

/// Writes input `x` (`n` values) into `out` (`4 * n` bytes) in the layout
/// of kind `K`: rounded as the scalar conversion to f16 (nearest even, as
/// `half` does) or bf16, widened to f32.
#[target_feature(enable = "avx2,fma,f16c")]
pub fn prepare<const K: u8>(x: &[f32], out: &mut [u8]) {
    let n = x.len();
    let out = &mut out[..4 * n];
    let full = n / 16 * 16;
    let xb: &[u8] = bytemuck::cast_slice(x);
    for (xc, oc) in xb[..4 * full]
        .chunks_exact(64)
        .zip(out[..4 * full].chunks_exact_mut(64))
    {
        let (a, b) = (load_ps(xc), load_ps(&xc[32..]));
        let (lo, hi) = if K == F16 {
            let r = |v| _mm256_cvtph_ps(_mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(v));
            (r(a), r(b))
        } else {
            let (a, b) = (bf16_round8(a), bf16_round8(b));
            // Lanes a0 a2 b0 b2 | a4 a6 b4 b6, then 64-bit pairs 0 2 1 3.
            let even = _mm256_shuffle_ps::<0b10_00_10_00>(a, b);
            let odd = _mm256_shuffle_ps::<0b11_01_11_01>(a, b);
            let fix =
                |v| _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(v)));
            (fix(even), fix(odd))
        };
        store_ps(oc, lo);
        store_ps(&mut oc[32..], hi);
    }
    for (o, &v) in out[4 * full..].chunks_exact_mut(4).zip(&x[full..]) {
        let r = if K == F16 {
            _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(
                _mm_set_ss(v),
            )))
        } else {
            bf16_round(v)
        };
        o.copy_from_slice(&r.to_le_bytes());
    }
}

/// Weights `16 i .. 16 i + 16` of a row at `w` (2 bytes each) as the f32
/// lanes that meet input floats `16 i + 8 h ..` (see the layout above).
///
/// # Safety
/// `w` is valid for reads of `32 i + 32` bytes.
#[target_feature(enable = "avx2,fma,f16c")]
#[allow(unsafe_code)]
unsafe fn weights<const K: u8, const H: usize>(w: *const u8, i: usize) -> __m256 {
    if K == F16 {
        // SAFETY: bytes 32 i + 16 H .. + 16 lie inside (the caller's bound).
        _mm256_cvtph_ps(unsafe { _mm_loadu_si128(w.wrapping_add(32 * i + 16 * H).cast()) })
    } else {
        // SAFETY: bytes 32 i .. 32 i + 32 lie inside (the caller's bound).
        let v = unsafe { _mm256_loadu_si256(w.wrapping_add(32 * i).cast()) };
        let v = if H == 0 {
            _mm256_slli_epi32(v, 16)
        } else {
            _mm256_and_si256(v, _mm256_set1_epi32(0xffff_0000u32 as i32))
        };
        _mm256_castsi256_ps(v)
    }
}

/// Partial sums `H0..H1` (0 and 1, or just one of them) of a tile over
/// chunks `0..nc` of 16 values: raw pointers, so that the loop has no
/// bounds checks (14 compares and branches per 12 FMAs with indexing).
#[target_feature(enable = "avx2,fma,f16c")]
#[allow(unsafe_code)]
fn pass<const K: u8, const H0: usize, const H1: usize, const R: usize, const C: usize>(
    w: &[&[u8]; R],
    x: &[&[u8]; C],
    nc: usize,
) -> [[[__m256; C]; R]; 2] {
    assert!(w.iter().all(|w| w.len() >= 32 * nc) && x.iter().all(|x| x.len() >= 64 * nc));
    let wp = w.map(|w| w.as_ptr());
    let xp = x.map(|x| x.as_ptr());
    let mut acc = [[[_mm256_setzero_ps(); C]; R]; 2];
    for i in 0..nc {
        macro_rules! half {
            ($h:expr) => {{
                const H: usize = $h;
                let wv: [__m256; R] = core::array::from_fn(|r| {
                    // SAFETY: i < nc, and every row has 32 nc bytes
                    // (asserted above).
                    unsafe { weights::<K, H>(wp[r], i) }
                });
                for (c, &x) in xp.iter().enumerate() {
                    // SAFETY: bytes 64 i + 32 H .. + 32 of an input of 64 nc
                    // bytes (asserted above), i < nc.
                    let xv = unsafe { _mm256_loadu_ps(x.wrapping_add(64 * i + 32 * H).cast()) };
                    for (acc, wv) in acc[H].iter_mut().zip(wv) {
                        acc[c] = _mm256_fmadd_ps(wv, xv, acc[c]);
                    }
                }
            }};
        }
        if H0 == 0 {
            half!(0);
        }
        if H1 == 1 {
            half!(1);
        }
    }
    acc
}

/// `out[r][c] = dot(row r, input c)` for R rows of `n` weights and C
/// prepared inputs.
#[target_feature(enable = "avx2,fma,f16c")]
fn tile<const K: u8, const R: usize, const C: usize>(
    w: [&[u8]; R],
    x: [&[u8]; C],
    n: usize,
) -> [[f32; C]; R] {
    let w = w.map(|w| &w[..2 * n]);
    let x = x.map(|x| &x[..4 * n]);
    let full = n / 16 * 16;
    let nc = full / 16;
    let (p0, p1) = if 2 * R * C <= 12 {
        // Both partial sums fit in registers: one pass.
        let [p0, p1] = pass::<K, 0, 1, R, C>(&w, &x, nc);
        (p0, p1)
    } else {
        // Two passes, the first one's sums kept in memory (held in
        // registers, they would push an accumulator of the second pass to
        // the stack, a store and a load on its chain every step).
        let p0 = core::hint::black_box(pass::<K, 0, 0, R, C>(&w, &x, nc)[0]);
        (p0, pass::<K, 1, 1, R, C>(&w, &x, nc)[1])
    };
    let mut out = [[0f32; C]; R];
    for r in 0..R {
        for c in 0..C {
            let mut sum = hsum(_mm256_add_ps(p0[r][c], p1[r][c]));
            for j in full..n {
                let wj = if K == F16 {
                    super::x86::f16(&w[r][2 * j..])
                } else {
                    f32::from_bits(
                        (u16::from_le_bytes([w[r][2 * j], w[r][2 * j + 1]]) as u32) << 16,
                    )
                };
                let xj = &x[c][4 * j..];
                sum += wj * f32::from_le_bytes([xj[0], xj[1], xj[2], xj[3]]);
            }
            out[r][c] = sum;
        }
    }
    out
}

/// Rows `w` (whole rows of `wrb` bytes, `n` weights each) against the
/// C inputs `a`, `R` rows at a time, then one row at a time:
/// `out[c][r] = dot(row r, input c)`.
#[target_feature(enable = "avx2,fma,f16c")]
fn rows<const K: u8, const R: usize, const C: usize>(
    w: &[u8],
    wrb: usize,
    a: [&[u8]; C],
    n: usize,
    out: &mut [&mut [f32]],
) {
    let nr = w.len() / wrb;
    let mut r = 0;
    while r + R <= nr {
        let rw: [&[u8]; R] = core::array::from_fn(|k| &w[(r + k) * wrb..(r + k + 1) * wrb]);
        let v = tile::<K, R, C>(rw, a, n);
        for (k, v) in v.iter().enumerate() {
            for (o, &v) in out.iter_mut().zip(v) {
                o[r + k] = v;
            }
        }
        r += R;
    }
    while r < nr {
        let v = tile::<K, 1, C>([&w[r * wrb..(r + 1) * wrb]], a, n);
        for (o, &v) in out.iter_mut().zip(&v[0]) {
            o[r] = v;
        }
        r += 1;
    }
}

/// `out[c][r] = dot(row r of w, input c)` for 1 to 4 prepared inputs `a`
/// (`out[c]` as long as there are rows): 3 rows x 4 inputs (12
/// accumulators, 3 converted weight vectors, one input vector), 3 x 3,
/// 3 x 2, and one row at a time for one token: rows side by side read
/// several streams at once, and without prefetching that was slower here
/// (stories110M F16 tg64 on one thread: 4 x 1 tiles 18-22 tok/s, 1 x 1
/// 23-28).
#[target_feature(enable = "avx2,fma,f16c")]
pub fn block<const K: u8>(w: &[u8], wrb: usize, a: &[&[u8]], n: usize, out: &mut [&mut [f32]]) {
    assert!(wrb >= 2 * n && out.len() == a.len());
    match *a {
        [a0, a1, a2, a3] => rows::<K, 3, 4>(w, wrb, [a0, a1, a2, a3], n, out),
        [a0, a1, a2] => rows::<K, 3, 3>(w, wrb, [a0, a1, a2], n, out),
        [a0, a1] => rows::<K, 3, 2>(w, wrb, [a0, a1], n, out),
        [a0] => rows::<K, 1, 1>(w, wrb, [a0], n, out),
        _ => panic!("1 to 4 inputs"),
    }
}
