//! Vector `exp` for softmax and SwiGLU: the polynomial of Arm's optimized
//! routines (`expf`: at most 1.45 + 0.5 ulp from the true value; above
//! 88.38 the result is infinite, below -103.97 zero), in the two forms
//! llama.cpp's CPU backend computes it, so that its softmax and SiLU values
//! and ours round alike:
//! - AVX-512: the polynomial including its constant term, scaled by
//!   `vscalefps` (`2^n` exactly, one rounding for subnormal results);
//! - AVX2: the polynomial without it, `k + k * p` with `k = 2^n` built in the
//!   exponent bits, and two scale factors where `2^n` alone would overflow.
//!
//! `n = round(x * log2 e)`, `b = x - n ln 2` (ln 2 in two parts), and `exp x
//! = 2^n (1 + p(b))` with `p` of degree 5. Lanes are independent: a value
//! does not depend on its neighbours, the batch or the thread.
#![allow(unsafe_code)]

use core::arch::x86_64::*;

const SHIFT: u32 = 0x4b40_0000; // 0x1.8p23: adding it rounds to an integer
const LOG2E: u32 = 0x3fb8_aa3b; // 0x1.715476p+0
const LN2_HI: u32 = 0x3f31_7200; // 0x1.62e4p-1
const LN2_LO: u32 = 0x35bf_be8e; // 0x1.7f7d1cp-20
const C0: u32 = 0x3f7f_fff6; // 0x1.ffffecp-1
const C1: u32 = 0x3eff_fedb; // 0x1.fffdb6p-2
const C2: u32 = 0x3e2a_af33; // 0x1.555e66p-3
const C3: u32 = 0x3d2b_9f17; // 0x1.573e2ep-5
const C4: u32 = 0x3c07_2010; // 0x1.0e4020p-7

#[inline(always)]
fn c(bits: u32) -> f32 {
    f32::from_bits(bits)
}

/// `exp` of 16 lanes (AVX-512 form).
#[target_feature(enable = "avx512f,avx2,fma")]
#[inline]
fn exp16(x: __m512) -> __m512 {
    let r = _mm512_set1_ps(c(SHIFT));
    let z = _mm512_fmadd_ps(x, _mm512_set1_ps(c(LOG2E)), r);
    let n = _mm512_sub_ps(z, r);
    let b = _mm512_fnmadd_ps(
        n,
        _mm512_set1_ps(c(LN2_LO)),
        _mm512_fnmadd_ps(n, _mm512_set1_ps(c(LN2_HI)), x),
    );
    let big = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(_mm512_abs_ps(n), _mm512_set1_ps(192.0));
    let u = _mm512_mul_ps(b, b);
    let hi = _mm512_fmadd_ps(
        _mm512_fmadd_ps(_mm512_set1_ps(c(C4)), b, _mm512_set1_ps(c(C3))),
        u,
        _mm512_fmadd_ps(_mm512_set1_ps(c(C2)), b, _mm512_set1_ps(c(C1))),
    );
    let j = _mm512_fmadd_ps(
        hi,
        u,
        _mm512_fmadd_ps(_mm512_set1_ps(c(C0)), b, _mm512_set1_ps(1.0)),
    );
    let res = _mm512_scalef_ps(j, n);
    if big == 0 {
        return res;
    }
    // |n| > 192: infinity above, zero below.
    let neg = _mm512_cmp_ps_mask::<_CMP_LE_OQ>(n, _mm512_setzero_ps());
    let alt = _mm512_mask_blend_ps(neg, _mm512_set1_ps(f32::INFINITY), _mm512_setzero_ps());
    _mm512_mask_blend_ps(big, res, alt)
}

/// `exp` of 8 lanes (AVX2 form).
#[target_feature(enable = "avx2,fma")]
#[inline]
fn exp8(x: __m256) -> __m256 {
    let r = _mm256_set1_ps(c(SHIFT));
    let z = _mm256_fmadd_ps(x, _mm256_set1_ps(c(LOG2E)), r);
    let n = _mm256_sub_ps(z, r);
    let b = _mm256_fnmadd_ps(
        n,
        _mm256_set1_ps(c(LN2_LO)),
        _mm256_fnmadd_ps(n, _mm256_set1_ps(c(LN2_HI)), x),
    );
    // 2^n in the exponent bits (z's low bits hold n).
    let e = _mm256_slli_epi32::<23>(_mm256_castps_si256(z));
    let k = _mm256_castsi256_ps(_mm256_add_epi32(e, _mm256_set1_epi32(0x3f80_0000)));
    let abs_n = _mm256_andnot_ps(_mm256_set1_ps(-0.0), n);
    let over = _mm256_cmp_ps::<_CMP_GT_OQ>(abs_n, _mm256_set1_ps(126.0));
    let u = _mm256_mul_ps(b, b);
    let hi = _mm256_fmadd_ps(
        _mm256_fmadd_ps(_mm256_set1_ps(c(C4)), b, _mm256_set1_ps(c(C3))),
        u,
        _mm256_fmadd_ps(_mm256_set1_ps(c(C2)), b, _mm256_set1_ps(c(C1))),
    );
    let j = _mm256_fmadd_ps(hi, u, _mm256_mul_ps(_mm256_set1_ps(c(C0)), b));
    if _mm256_movemask_ps(over) == 0 {
        return _mm256_fmadd_ps(j, k, k);
    }
    // |n| > 126: 2^n as s1 * s2 (each representable); |n| > 192: s1 * s1
    // (infinity or zero).
    let g = _mm256_and_si256(
        _mm256_castps_si256(_mm256_cmp_ps::<_CMP_LE_OQ>(n, _mm256_setzero_ps())),
        _mm256_set1_epi32(0x8200_0000u32 as i32),
    );
    let s1 = _mm256_castsi256_ps(_mm256_add_epi32(g, _mm256_set1_epi32(0x7f00_0000)));
    let s2 = _mm256_castsi256_ps(_mm256_sub_epi32(e, g));
    let huge = _mm256_cmp_ps::<_CMP_GT_OQ>(abs_n, _mm256_set1_ps(192.0));
    let scaled = _mm256_mul_ps(_mm256_fmadd_ps(s2, j, s2), s1);
    let plain = _mm256_fmadd_ps(k, j, k);
    let mid = _mm256_blendv_ps(plain, scaled, over);
    _mm256_blendv_ps(mid, _mm256_mul_ps(s1, s1), huge)
}

/// `x[i] = exp(x[i] - max)`, returning the sum of the values (f64 of each
/// vector's lane sum, then the tail's, as llama.cpp's softmax sums).
/// The tail (under one vector) uses `libm::expf`.
#[target_feature(enable = "avx512f,avx2,fma")]
pub fn exp_sub_avx512(x: &mut [f32], max: f32) -> f64 {
    let mut sum = 0f64;
    let m = _mm512_set1_ps(max);
    let mut chunks = x.chunks_exact_mut(16);
    for ch in &mut chunks {
        // SAFETY: 16 floats in the chunk; loadu/storeu need no alignment.
        let v = exp16(_mm512_sub_ps(unsafe { _mm512_loadu_ps(ch.as_ptr()) }, m));
        // SAFETY: as above.
        unsafe { _mm512_storeu_ps(ch.as_mut_ptr(), v) };
        sum += _mm512_reduce_add_ps(v) as f64;
    }
    for v in chunks.into_remainder() {
        *v = libm::expf(*v - max);
        sum += *v as f64;
    }
    sum
}

/// [`exp_sub_avx512`] with 8 lanes.
#[target_feature(enable = "avx2,fma")]
pub fn exp_sub_avx2(x: &mut [f32], max: f32) -> f64 {
    let mut sum = 0f64;
    let m = _mm256_set1_ps(max);
    let mut chunks = x.chunks_exact_mut(8);
    for ch in &mut chunks {
        // SAFETY: 8 floats in the chunk; loadu/storeu need no alignment.
        let v = exp8(_mm256_sub_ps(unsafe { _mm256_loadu_ps(ch.as_ptr()) }, m));
        // SAFETY: as above.
        unsafe { _mm256_storeu_ps(ch.as_mut_ptr(), v) };
        let s = _mm_add_ps(_mm256_extractf128_ps::<1>(v), _mm256_castps256_ps128(v));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_movehdup_ps(s));
        sum += _mm_cvtss_f32(s) as f64;
    }
    for v in chunks.into_remainder() {
        *v = libm::expf(*v - max);
        sum += *v as f64;
    }
    sum
}

/// `g[i] = g[i] / (1 + exp(-g[i])) * u[i]` (SiLU of the gate times up).
#[target_feature(enable = "avx512f,avx2,fma")]
pub fn swiglu_avx512(g: &mut [f32], u: &[f32]) {
    let u = &u[..g.len()];
    let mut gc = g.chunks_exact_mut(16);
    let mut uc = u.chunks_exact(16);
    for (gv, uv) in (&mut gc).zip(&mut uc) {
        // SAFETY: 16 floats in each chunk.
        let x = unsafe { _mm512_loadu_ps(gv.as_ptr()) };
        // SAFETY: as above.
        let up = unsafe { _mm512_loadu_ps(uv.as_ptr()) };
        let e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), x));
        let s = _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0), e));
        let y = _mm512_mul_ps(s, up);
        // SAFETY: as above.
        unsafe { _mm512_storeu_ps(gv.as_mut_ptr(), y) };
    }
    // The tail through the same lanes (zero-padded), so that an element's
    // bits do not depend on where a slice ends: a batch's rows of an
    // odd-sized FFN would otherwise meet the scalar `expf` in one batch and
    // the vector one in another.
    let (gr, ur) = (gc.into_remainder(), uc.remainder());
    if !gr.is_empty() {
        let (mut gt, mut ut) = ([0f32; 16], [0f32; 16]);
        gt[..gr.len()].copy_from_slice(gr);
        ut[..ur.len()].copy_from_slice(ur);
        swiglu_avx512(&mut gt, &ut);
        gr.copy_from_slice(&gt[..gr.len()]);
    }
}

/// [`swiglu_avx512`] with 8 lanes.
#[target_feature(enable = "avx2,fma")]
pub fn swiglu_avx2(g: &mut [f32], u: &[f32]) {
    let u = &u[..g.len()];
    let mut gc = g.chunks_exact_mut(8);
    let mut uc = u.chunks_exact(8);
    for (gv, uv) in (&mut gc).zip(&mut uc) {
        // SAFETY: 8 floats in each chunk.
        let x = unsafe { _mm256_loadu_ps(gv.as_ptr()) };
        // SAFETY: as above.
        let up = unsafe { _mm256_loadu_ps(uv.as_ptr()) };
        let e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), x));
        let s = _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0), e));
        let y = _mm256_mul_ps(s, up);
        // SAFETY: as above.
        unsafe { _mm256_storeu_ps(gv.as_mut_ptr(), y) };
    }
    // The tail through the same lanes, as in `swiglu_avx512`.
    let (gr, ur) = (gc.into_remainder(), uc.remainder());
    if !gr.is_empty() {
        let (mut gt, mut ut) = ([0f32; 8], [0f32; 8]);
        gt[..gr.len()].copy_from_slice(gr);
        ut[..ur.len()].copy_from_slice(ur);
        swiglu_avx2(&mut gt, &ut);
        gr.copy_from_slice(&gt[..gr.len()]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ulps(a: f32, b: f32) -> u32 {
        if a == b {
            return 0;
        }
        (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs() as u32
    }

    /// `exp` in place with form 0 (AVX-512, when the level has it) or 1.
    fn run(form: usize, y: &mut [f32]) {
        if form == 0 {
            // SAFETY: form 0 runs only at the AVX-512 level (checked by the caller).
            unsafe { exp_sub_avx512(y, 0.0) };
        } else {
            // SAFETY: the caller checked for AVX2 at least.
            unsafe { exp_sub_avx2(y, 0.0) };
        }
    }

    /// Both forms stay within 2 ulp of libm's expf from -103 to 88 (as
    /// the routine promises), give infinity and zero beyond, and keep NaN.
    #[test]
    fn vector_exp_is_within_two_ulp_and_saturates() {
        let has512 = super::super::level() == super::super::Level::Avx512;
        if !matches!(
            super::super::level(),
            super::super::Level::Avx2 | super::super::Level::Avx512
        ) {
            std::println!("no AVX2 here: vector exp not checked");
            return;
        }
        let mut worst = [0u32; 2];
        let mut xs: std::vec::Vec<f32> = (0..200_000)
            .map(|i| -103.0 + 191.0 * i as f32 / 200_000.0)
            .collect();
        xs.extend([0.0, -0.0, 1e-30, -1e-30, 88.3, -87.0, -100.0]);
        while !xs.len().is_multiple_of(16) {
            xs.push(0.5);
        }
        for (form, w) in worst.iter_mut().enumerate() {
            if form == 0 && !has512 {
                continue;
            }
            let mut y = xs.clone();
            run(form, &mut y);
            for (&x, &v) in xs.iter().zip(&y) {
                let want = libm::expf(x);
                // Subnormal results: compare absolutely.
                let e = if want < f32::MIN_POSITIVE {
                    ((v - want).abs() / f32::from_bits(1)) as u32
                } else {
                    ulps(v, want)
                };
                assert!(e <= 2, "form {form}: exp({x}) = {v}, libm {want}");
                *w = (*w).max(e);
            }
        }
        let ext = [
            100.0f32,
            1000.0,
            -200.0,
            -1000.0,
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            0.0,
        ];
        for form in 0..2 {
            if form == 0 && !has512 {
                continue;
            }
            let mut y = [0f32; 16];
            y[..8].copy_from_slice(&ext);
            y[8..].copy_from_slice(&ext);
            run(form, &mut y);
            assert_eq!(y[0], f32::INFINITY);
            assert_eq!(y[1], f32::INFINITY);
            assert_eq!(y[2], 0.0);
            assert_eq!(y[3], 0.0);
            assert!(y[4].is_nan());
            assert_eq!(y[5], f32::INFINITY);
            assert_eq!(y[6], 0.0);
            assert_eq!(y[7], 1.0);
        }
        std::println!(
            "vector exp: worst {} ulp (AVX-512), {} ulp (AVX2)",
            worst[0],
            worst[1]
        );
    }
}
