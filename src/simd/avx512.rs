//! AVX-512 kernels (F, BW, VL, VBMI, VNNI, with F16C): matrix tiles of `R`
//! weight rows × `C` input rows, over inputs prepared in a "wide" layout
//! that suits 512-bit registers (see [`prepare`]). Every output of a tile is
//! computed in the same order whatever `R` and `C` are, so a batch gives the
//! bits of token-by-token decoding.
//!
//! Integer products use `vpdpbusd` (unsigned × signed bytes summed in fours
//! into i32) and `vpdpwssd`; byte shuffles use `vpermb`/`vpermt2b`.
//!
//! Wide input layouts, per weight type:
//! - Q8_0: records of 256 inputs (eight blocks), two lanes a block (see
//!   [`oct`]): four vectors of quants, 16 i32 lanes `-128 * (sum of the
//!   lane's 16 quants)` (undoing the weights' offset), 16 f32 lanes of the
//!   blocks' scales: 384 bytes; missing blocks at the end are zeros.
//! - Q4_0: records of 256 inputs, one lane a block (see [`pair`]): eight
//!   vectors of 32 bytes of quants, eight i32 `-8 * (sum of the block's
//!   quants)`, eight f32 scales: 320 bytes; missing blocks are zeros.
//! - F16: the inputs rounded to f16; in a batch stored as f32.
//! - Q4_K: per 256, the Q8_K quants with sub-blocks of 32 in the order
//!   0 2 1 3 4 6 5 7 (as a 64-byte load of Q4_K nibbles meets them), the
//!   eight sums of 32 as i16 and the f32 scale: 276 bytes.
//! - Q6_K: the standard Q8_K block (f32 scale, 256 quants, 16 sums of 16).
//! - Q5_K: Q4_K's record; Q3_K, Q2_K: the standard Q8_K block (see
//!   [`kquant`]).
//! - Q4_1, Q5_0, Q5_1, BF16: see `small` (records of four blocks, with
//!   the minimums' sums for Q8_1; bf16 as it is).
#![allow(unsafe_code)]

use super::x86::{f16 as f16c, hsum as hsum8, load128, load256};
use crate::blocks as qb;
use crate::quant::WeightType as W;
use core::arch::x86_64::*;
use half::f16;

/// A block of rows: `w` holds whole weight rows of `wrb` bytes each, `a`
/// one or [`Kernels::c_big`] prepared input rows (prepared for a batch or
/// not, as the last argument says), and `out[c][r]` receives the dot
/// product of row `r` with input `c`. Needs this module's features (and
/// AVX512_BF16 for BF16's `vdpbf16ps` kernel, which [`kernels`] checks).
pub type Block = unsafe fn(&[u8], usize, &[&[u8]], usize, &mut [&mut [f32]], bool);

/// The kernels for one weight type.
pub struct Kernels {
    /// Inputs per call in a batch.
    pub c_big: usize,
    /// Whether `block` also takes 2 to `c_big - 1` inputs at once (else
    /// the rest of a batch goes one input at a time).
    pub fewer: bool,
    pub block: Block,
}

/// The first `len` bytes of each of the first `N` slices. (A loop, not
/// `array::from_fn`: its closure is not inlined into the `target_feature`
/// tiles, and a call per tile cost a tenth of a short row's time.)
#[inline(always)]
fn heads<'a, const N: usize>(s: &[&'a [u8]], len: usize) -> [&'a [u8]; N] {
    let mut out: [&[u8]; N] = [&[]; N];
    for i in 0..N {
        out[i] = &s[i][..len];
    }
    out
}

macro_rules! block_fn {
    ($name:ident, $tile:ident, $tile1:ident, $r:literal, $c:literal $(, $feat:literal)?) => {
        /// One input: row after row (one long stream through memory, which
        /// the hardware prefetcher follows best); several: tiles of `$r`
        /// rows. Each output has the same bits either way.
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi,avx512vnni,avx2,fma,f16c")]
        $(#[target_feature(enable = $feat)])?
        #[allow(clippy::int_plus_one)]
        fn $name(w: &[u8], wrb: usize, a: &[&[u8]], n: usize, out: &mut [&mut [f32]], batch: bool) {
            let nrows = w.len() / wrb;
            let mut o = [0f32; $r * $c];
            if a.len() != $c {
                for c in 0..a.len() {
                    for r in 0..nrows {
                        let (w, a) = (&[&w[r * wrb..(r + 1) * wrb]], &[a[c]]);
                        if batch {
                            $tile::<1, 1>(w, a, n, &mut o[..1]);
                        } else {
                            $tile1::<1, 1>(w, a, n, &mut o[..1]);
                        }
                        out[c][r] = o[0];
                    }
                }
                return;
            }
            let mut r = 0;
            while r < nrows {
                let nr = if r + $r <= nrows { $r } else { 1 };
                let mut ws: [&[u8]; 4] = [&[]; 4];
                for (i, x) in ws.iter_mut().enumerate() {
                    let k = r + i.min(nr - 1);
                    *x = &w[k * wrb..(k + 1) * wrb];
                }
                if nr == $r {
                    $tile::<$r, $c>(&ws[..$r], a, n, &mut o);
                } else {
                    $tile::<1, $c>(&ws[..1], a, n, &mut o[..$c]);
                }
                for i in 0..nr {
                    for (c, out) in out.iter_mut().enumerate() {
                        out[r + i] = o[i * $c + c];
                    }
                }
                r += nr;
            }
        }
    };
}

// Rows × inputs per tile: the K-quants unpack a block into 8 registers
// (quants and scales), so they take one row and more inputs (as Q8_0 does
// below: two rows × eight inputs spilt to the stack; Q4_0's pair tile fits
// two rows in one register instead).
// F16 inputs are f32 in a batch (converted once, not per tile) and f16
// alone (half the bytes to read per row). The second tile is for one input
// outside a batch.

/// `$m!(c)` with the literal `c` equal to `$n` (1 to 8; else nothing): a
/// tile's input count is a const parameter.
macro_rules! by_count {
    ($n:expr, $m:ident) => {
        match $n {
            1 => $m!(1),
            2 => $m!(2),
            3 => $m!(3),
            4 => $m!(4),
            5 => $m!(5),
            6 => $m!(6),
            7 => $m!(7),
            8 => $m!(8),
            _ => {}
        }
    };
}

/// One row at a time against all of `a` (1 to 8 inputs): the eight-block
/// tiles of [`oct`] take one row (the unpacked row is what the inputs
/// share) and any number of inputs.
macro_rules! oct_block {
    ($name:ident, $tile:ident) => {
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi,avx512vnni,avx2,fma,f16c")]
        fn $name(w: &[u8], wrb: usize, a: &[&[u8]], n: usize, out: &mut [&mut [f32]], _: bool) {
            let nrows = w.len() / wrb;
            macro_rules! rows {
                ($c:literal) => {{
                    let mut o = [0f32; $c];
                    for r in 0..nrows {
                        $tile::<1, $c>(&[&w[r * wrb..(r + 1) * wrb]], a, n, &mut o);
                        for (out, v) in out.iter_mut().zip(o) {
                            out[r] = v;
                        }
                    }
                }};
            }
            by_count!(a.len(), rows);
        }
    };
}
oct_block!(block_q8_0, tile_q8_0);

/// Q4_0: rows in pairs (see [`pair`]), the last one of an odd count
/// paired with itself, against all of `a` (1 to 8 inputs).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi,avx512vnni,avx2,fma,f16c")]
fn block_q4_0(w: &[u8], wrb: usize, a: &[&[u8]], n: usize, out: &mut [&mut [f32]], _: bool) {
    let nrows = w.len() / wrb;
    macro_rules! rows {
        ($c:literal) => {{
            let mut o = [0f32; 2 * $c];
            let mut r = 0;
            while r < nrows {
                let r1 = if r + 1 < nrows { r + 1 } else { r };
                let ws = [&w[r * wrb..(r + 1) * wrb], &w[r1 * wrb..(r1 + 1) * wrb]];
                pair::tile_q4_0::<$c>(ws, a, n, &mut o);
                for (c, out) in out.iter_mut().enumerate() {
                    out[r] = o[c];
                    out[r1] = o[$c + c];
                }
                r += 2;
            }
        }};
    }
    by_count!(a.len(), rows);
}
block_fn!(block_f16, tile_f16_wide, tile_f16, 4, 6);
block_fn!(block_q6_k, tile_q6_k, tile_q6_k, 1, 8);

mod kquant;
mod oct;
mod pair;
use kquant::tile_q4_k;
use oct::tile_q8_0;
block_fn!(block_q4_k, tile_q4_k, tile_q4_k, 1, 8);
mod small;
use small::{tile_bf16, tile_bf16_fma, tile_q4_1, tile_q5_0, tile_q5_1};
// Q4_1 and Q5_1 hold minimums too (4 more registers): 4 × 3.
block_fn!(block_q4_1, tile_q4_1, tile_q4_1, 4, 3);
block_fn!(block_q5_0, tile_q5_0, tile_q5_0, 4, 4);
block_fn!(block_q5_1, tile_q5_1, tile_q5_1, 4, 3);
// BF16: two accumulators per output, so 4 × 3 fits the registers. The
// first needs AVX512_BF16 besides (`kernels` asks).
block_fn!(block_bf16, tile_bf16, tile_bf16, 4, 3, "avx512bf16");
block_fn!(block_bf16_fma, tile_bf16_fma, tile_bf16_fma, 4, 3);

/// The wide kernels for weights of type `t`, if there are.
pub fn kernels(t: W) -> Option<Kernels> {
    let (c_big, block): (usize, Block) = match t {
        W::Q4_0 | W::Q8_0 => {
            let block = if t == W::Q4_0 { block_q4_0 } else { block_q8_0 };
            return Some(Kernels {
                c_big: 8,
                fewer: true,
                block,
            });
        }
        W::F16 => (6, block_f16),
        W::Q4_K => (8, block_q4_k),
        W::Q6_K => (8, block_q6_k),
        W::Q5_K => kquant::Q5_K,
        W::Q3_K => kquant::Q3_K,
        W::Q2_K => kquant::Q2_K,
        W::Q4_1 => (3, block_q4_1),
        W::Q5_0 => (4, block_q5_0),
        W::Q5_1 => (3, block_q5_1),
        W::BF16 if super::avx512_bf16() => (3, block_bf16),
        W::BF16 => (3, block_bf16_fma),
        _ => return None,
    };
    Some(Kernels {
        c_big,
        fewer: false,
        block,
    })
}

/// The BF16 kernels of a CPU without AVX512_BF16 (for tests on one with).
#[cfg(test)]
pub fn bf16_fma() -> Kernels {
    Kernels {
        c_big: 3,
        fewer: false,
        block: block_bf16_fma,
    }
}

/// Shuffle tables, built at compile time (building them per call, through
/// closures that are not inlined, cost more than a short row's work).
const Q4K_SCALES: [[u8; 64]; 4] = {
    // Scale words for the four 64-byte products of a Q4_K block: the low
    // nibbles of bytes 0..64 are sub-blocks 0 and 2, the high ones 1 and
    // 3; then 4..7. Even bytes pick the scale byte, odd bytes are zeroed.
    let mut t = [[0u8; 64]; 4];
    let mut v = 0;
    while v < 4 {
        let mut j = 0;
        while j < 64 {
            t[v][j] = (4 * (v / 2) + v % 2 + 2 * (j / 32)) as u8;
            j += 2;
        }
        v += 1;
    }
    t
};
/// 32 little-endian 16-bit words as bytes.
const fn words(f: [u16; 4], per: usize, add: u16) -> [u8; 64] {
    // Word w = f[w / per] + add (a step function of w).
    let mut t = [0u8; 64];
    let mut w = 0;
    while w < 32 {
        let v = f[w / per] + add;
        t[2 * w] = v as u8;
        t[2 * w + 1] = (v >> 8) as u8;
        w += 1;
    }
    t
}
// Q6_K high bits: for the low nibbles' 64 quants, bits 0-1 (first 32) and
// 2-3 (next 32) of qh moved to bits 4-5; for the high nibbles', 4-5 and
// 6-7.
const Q6K_SHL: [u8; 64] = words([4, 4, 2, 2], 8, 0);
const Q6K_SHR: [u8; 64] = words([0, 0, 2, 2], 8, 0);
// Scale word index: word `w` of the product of quarter `v` has sub-block
// 4v + w / 8.
const Q6K_SCALES: [[u8; 64]; 4] = [
    words([0, 1, 2, 3], 8, 0),
    words([0, 1, 2, 3], 8, 4),
    words([0, 1, 2, 3], 8, 8),
    words([0, 1, 2, 3], 8, 12),
];

const Q4_REC: usize = 256;
const Q4K_REC: usize = 276;

/// Bytes of one prepared input row of `n` values for weights of type `t`.
pub fn row_bytes(t: W, n: usize, batch: bool) -> usize {
    match t {
        W::Q4_0 => n.div_ceil(256) * pair::REC,
        W::Q8_0 => n.div_ceil(256) * oct::REC,
        W::F16 if batch => n * 4,
        W::F16 => n * 2,
        W::Q4_K | W::Q5_K => n / 256 * Q4K_REC,
        W::Q4_1 | W::Q5_0 | W::Q5_1 => n.div_ceil(128) * Q4_REC,
        W::BF16 => n * 2,
        _ => n / 256 * qb::Q8_K_BYTES,
    }
}

/// The Q8_0 quants of 32 inputs into `q` and their scale: [`q8_block`],
/// or where an input is NaN the scalar code (which propagates it).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi,avx512vnni,avx2,fma,f16c")]
fn q8_quants(xb: &[f32], q: &mut [u8]) -> f32 {
    match q8_block(xb, q) {
        Some(d) => d,
        None => qb::quantize_block_q8(xb, q).0,
    }
}

/// Q8 quantization of 32 inputs as `blocks::quantize_block_q8` (round half
/// to even, whatever the MXCSR says): quants into `q`, returns the scale,
/// or `None` if an input is NaN (the scalar code then propagates it).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi,avx512vnni,avx2,fma,f16c")]
fn q8_block(xb: &[f32], q: &mut [u8]) -> Option<f32> {
    let (xb, q) = (&xb[..32], &mut q[..32]);
    // SAFETY: 32 readable floats (sliced above).
    let x0 = unsafe { _mm512_loadu_ps(xb.as_ptr()) };
    // SAFETY: as above, the second 16.
    let x1 = unsafe { _mm512_loadu_ps(xb.as_ptr().wrapping_add(16)) };
    if _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(x0, x1) != 0 {
        return None;
    }
    let am = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(x0), _mm512_abs_ps(x1)));
    let id = _mm512_set1_ps(if am != 0.0 { 127.0 / am } else { 0.0 });
    const RN: i32 = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
    let q0 = _mm512_cvt_roundps_epi32::<RN>(_mm512_mul_ps(x0, id));
    let q1 = _mm512_cvt_roundps_epi32::<RN>(_mm512_mul_ps(x1, id));
    let (lo, hi) = (_mm512_set1_epi32(-127), _mm512_set1_epi32(127));
    let q0 = _mm512_cvtepi32_epi8(_mm512_min_epi32(_mm512_max_epi32(q0, lo), hi));
    let q1 = _mm512_cvtepi32_epi8(_mm512_min_epi32(_mm512_max_epi32(q1, lo), hi));
    // SAFETY: 32 writable bytes (sliced above).
    unsafe { _mm_storeu_si128(q.as_mut_ptr().cast(), q0) };
    // SAFETY: as above, the second 16.
    unsafe { _mm_storeu_si128(q.as_mut_ptr().wrapping_add(16).cast(), q1) };
    Some(am / 127.0)
}

/// Q8_K quantization of 256 inputs into `out` (a 292-byte block), as
/// `blocks::quantize_q8_k`; `false` (nothing written) if an input is NaN.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi,avx512vnni,avx2,fma,f16c")]
#[allow(clippy::needless_range_loop)]
fn q8_k_block(xb: &[f32], out: &mut [u8]) -> bool {
    let (xb, out) = (&xb[..256], &mut out[..qb::Q8_K_BYTES]);
    let mut x = [_mm512_setzero_ps(); 16];
    let mut am = _mm512_setzero_ps();
    let mut nan = 0u16;
    for g in 0..16 {
        // SAFETY: 16 readable floats at 16 g < 256 (sliced above).
        x[g] = unsafe { _mm512_loadu_ps(xb.as_ptr().wrapping_add(16 * g)) };
        nan |= _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(x[g], x[g]);
        am = _mm512_max_ps(am, _mm512_abs_ps(x[g]));
    }
    if nan != 0 {
        return false;
    }
    let am = _mm512_reduce_max_ps(am);
    // The signed value of the first element of largest magnitude.
    let mut max = 0f32;
    for g in 0..16 {
        let m = _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(_mm512_abs_ps(x[g]), _mm512_set1_ps(am));
        if m != 0 {
            max = xb[16 * g + m.trailing_zeros() as usize];
            break;
        }
    }
    let iscale = if am == 0.0 { 0.0 } else { -127.0 / max };
    let d = if am == 0.0 { 0.0 } else { 1.0 / iscale };
    out[..4].copy_from_slice(&d.to_le_bytes());
    let is = _mm512_set1_ps(iscale);
    let (lo, hi) = (_mm512_set1_epi32(-128), _mm512_set1_epi32(127));
    const RN: i32 = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
    for g in 0..16 {
        let q = _mm512_cvt_roundps_epi32::<RN>(_mm512_mul_ps(x[g], is));
        let q = _mm512_min_epi32(_mm512_max_epi32(q, lo), hi);
        let b = _mm512_cvtepi32_epi8(q);
        let mut t = [0u8; 16];
        // SAFETY: 16 writable bytes.
        unsafe { _mm_storeu_si128(t.as_mut_ptr().cast(), b) };
        out[4 + 16 * g..20 + 16 * g].copy_from_slice(&t);
        let sum = _mm512_reduce_add_epi32(q) as i16;
        out[260 + 2 * g..262 + 2 * g].copy_from_slice(&sum.to_le_bytes());
    }
    true
}

/// Converts `x` into the wide layout for weights of type `t` (the values
/// of `t.act_type()`'s conversion, rearranged).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi,avx512vnni,avx2,fma,f16c")]
pub fn prepare(t: W, x: &[f32], out: &mut [u8], batch: bool) {
    match t {
        W::Q4_0 => pair::prepare(x, out),
        W::Q8_0 => oct::prepare(x, out),
        W::F16 if !batch => crate::quant::quantize_act(crate::quant::ActType::F16, x, out),
        W::F16 => {
            for (o, v) in out.chunks_exact_mut(4).zip(x) {
                o.copy_from_slice(&f16::from_f32(*v).to_f32().to_le_bytes());
            }
        }
        W::Q4_K | W::Q5_K => {
            let mut blk = [0u8; qb::Q8_K_BYTES];
            for (rec, xb) in out.chunks_exact_mut(Q4K_REC).zip(x.chunks_exact(256)) {
                if !q8_k_block(xb, &mut blk) {
                    qb::quantize_q8_k(xb, &mut blk);
                }
                for (slot, sb) in [0usize, 2, 1, 3, 4, 6, 5, 7].into_iter().enumerate() {
                    rec[32 * slot..32 * slot + 32].copy_from_slice(&blk[4 + 32 * sb..36 + 32 * sb]);
                }
                for j in 0..8 {
                    let g = |i: usize| i16::from_le_bytes([blk[260 + 2 * i], blk[261 + 2 * i]]);
                    let s = g(2 * j) + g(2 * j + 1);
                    rec[256 + 2 * j..258 + 2 * j].copy_from_slice(&s.to_le_bytes());
                }
                rec[272..276].copy_from_slice(&blk[..4]);
            }
        }
        W::Q4_1 | W::Q5_1 => small::prepare_quads(x, out, None),
        W::Q5_0 => small::prepare_quads(x, out, Some(16)),
        W::BF16 => crate::quant::quantize_act(crate::quant::ActType::BF16, x, out),
        _ => {
            for (o, xb) in out
                .chunks_exact_mut(qb::Q8_K_BYTES)
                .zip(x.chunks_exact(256))
            {
                if !q8_k_block(xb, o) {
                    qb::quantize_q8_k(xb, o);
                }
            }
        }
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi,avx512vnni,avx2,fma,f16c")]
fn load512(b: &[u8]) -> __m512i {
    let b = &b[..64];
    // SAFETY: 64 readable bytes (checked above); loadu needs no alignment.
    unsafe { _mm512_loadu_si512(b.as_ptr().cast()) }
}

/// Sum of 16 lanes: the two halves added, then the 8-lane sum of the AVX2
/// kernels (so that F16 results equal theirs bit for bit).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi,avx512vnni,avx2,fma,f16c")]
fn hsum(v: __m512) -> f32 {
    let lo = _mm512_castps512_ps256(v);
    let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
    hsum8(_mm256_add_ps(lo, hi))
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi,avx512vnni,avx2,fma,f16c")]
fn hsum128(v: __m128) -> f32 {
    let s = _mm_add_ps(v, _mm_movehl_ps(v, v));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

/// Asks for the cache line `ahead` bytes past `b[off]` (the same place in
/// the rows of the next tile: weight rows lie one after another, and the
/// hardware prefetcher does not follow four short streams well). A hint:
/// it never faults, wherever it points.
#[inline(always)]
fn prefetch(b: &[u8], off: usize, ahead: usize) {
    let p = b.as_ptr().wrapping_add(off).wrapping_add(ahead);
    // SAFETY: prefetching reads nothing architecturally and cannot fault.
    unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast()) };
}

fn f32_at(b: &[u8], o: usize) -> f32 {
    f32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

fn f16_at(b: &[u8], o: usize) -> f32 {
    f16::from_bits(u16::from_le_bytes([b[o], b[o + 1]])).to_f32()
}

/// F16 weights against f32 inputs (f16-rounded): 16 lanes in one pass, the
/// tail (n mod 16) added after the lane sum, as the AVX2 kernel does.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi,avx512vnni,avx2,fma,f16c")]
#[inline]
fn tile_f16<const R: usize, const C: usize>(w: &[&[u8]], a: &[&[u8]], n: usize, out: &mut [f32]) {
    let w: [&[u8]; R] = heads(w, n * 2);
    let a: [&[u8]; C] = heads(a, n * 2);
    let full = n / 16;
    // Two 8-lane halves per output (the lanes of one 16-lane sum): on
    // Zen 4, 256-bit operations run at full rate and shorten the chains.
    let mut lo = [[_mm256_setzero_ps(); C]; R];
    let mut hi = [[_mm256_setzero_ps(); C]; R];
    // (Inputs in f16: the one-input layout.)
    for i in 0..full {
        if R > 1 && i % 2 == 0 {
            for wr in w {
                prefetch(wr, 32 * i, R * n * 2);
            }
        }
        // (Loops, not array::from_fn: closures do not inherit the target
        // features and would not be inlined.)
        let mut wl = [_mm256_setzero_ps(); R];
        let mut wh = [_mm256_setzero_ps(); R];
        for r in 0..R {
            // SAFETY: i < full and every row has 2n >= 32 * full bytes
            // (sliced above): 32 bytes readable from 32 i.
            let p = unsafe { w[r].as_ptr().add(32 * i) };
            // SAFETY: as above; loadu needs no alignment.
            wl[r] = _mm256_cvtph_ps(unsafe { _mm_loadu_si128(p.cast()) });
            // SAFETY: as above, the second 16 of the 32 bytes.
            wh[r] = _mm256_cvtph_ps(unsafe { _mm_loadu_si128(p.wrapping_add(16).cast()) });
        }
        for c in 0..C {
            // SAFETY: as for the rows: inputs have 2n bytes too.
            let p = unsafe { a[c].as_ptr().add(32 * i) };
            // SAFETY: as above.
            let al = _mm256_cvtph_ps(unsafe { _mm_loadu_si128(p.cast()) });
            // SAFETY: as above.
            let ah = _mm256_cvtph_ps(unsafe { _mm_loadu_si128(p.wrapping_add(16).cast()) });
            for r in 0..R {
                lo[r][c] = _mm256_fmadd_ps(wl[r], al, lo[r][c]);
                hi[r][c] = _mm256_fmadd_ps(wh[r], ah, hi[r][c]);
            }
        }
    }
    for r in 0..R {
        for c in 0..C {
            let mut s = hsum8(_mm256_add_ps(lo[r][c], hi[r][c]));
            for j in 16 * full..n {
                s += f16_at(w[r], 2 * j) * f16_at(a[c], 2 * j);
            }
            out[r * C + c] = s;
        }
    }
}

/// The F16 tile of a batch (inputs in f32): one 16-lane accumulator per
/// output (the same lanes as the two 8-lane halves of the one-input kernel,
/// in half the registers).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi,avx512vnni,avx2,fma,f16c")]
#[inline]
fn tile_f16_wide<const R: usize, const C: usize>(
    w: &[&[u8]],
    a: &[&[u8]],
    n: usize,
    out: &mut [f32],
) {
    let w: [&[u8]; R] = heads(w, n * 2);
    let a: [&[u8]; C] = heads(a, n * 4);
    let full = n / 16;
    let mut acc = [[_mm512_setzero_ps(); C]; R];
    for i in 0..full {
        if i % 2 == 0 {
            for wr in w {
                prefetch(wr, 32 * i, R * n * 2);
            }
        }
        let mut wv = [_mm512_setzero_ps(); R];
        for r in 0..R {
            // SAFETY: i < full and every row has 2n >= 32 * full bytes.
            let v = unsafe { _mm256_loadu_si256(w[r].as_ptr().wrapping_add(32 * i).cast()) };
            wv[r] = _mm512_cvtph_ps(v);
        }
        for c in 0..C {
            // SAFETY: as for the rows: inputs have 4n bytes (f32).
            let av = unsafe { _mm512_loadu_ps(a[c].as_ptr().wrapping_add(64 * i).cast()) };
            for r in 0..R {
                acc[r][c] = _mm512_fmadd_ps(wv[r], av, acc[r][c]);
            }
        }
    }
    for r in 0..R {
        for c in 0..C {
            let mut s = hsum(acc[r][c]);
            for j in 16 * full..n {
                s += f16_at(w[r], 2 * j) * f32_at(a[c], 4 * j);
            }
            out[r * C + c] = s;
        }
    }
}

/// The eight 6-bit scales and eight minimums of a Q4_K/Q5_K block as the
/// bytes of two u64 (see `blocks::scale_min_k4`).
#[inline]
fn k4_scales(sc: &[u8]) -> (u64, u64) {
    let u = |i: usize| u32::from_le_bytes([sc[4 * i], sc[4 * i + 1], sc[4 * i + 2], sc[4 * i + 3]]);
    let (u0, u1, u2) = (u(0), u(1), u(2));
    let (m1, m2, m3) = (0x3f3f_3f3f, 0x0f0f_0f0f, 0x0303_0303);
    let s_lo = u0 & m1;
    let s_hi = (u2 & m2) | (((u0 >> 6) & m3) << 4);
    let m_lo = u1 & m1;
    let m_hi = ((u2 >> 4) & m2) | (((u1 >> 6) & m3) << 4);
    (
        s_lo as u64 | (s_hi as u64) << 32,
        m_lo as u64 | (m_hi as u64) << 32,
    )
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi,avx512vnni,avx2,fma,f16c")]
#[inline]
fn tile_q6_k<const R: usize, const C: usize>(w: &[&[u8]], a: &[&[u8]], n: usize, out: &mut [f32]) {
    let nb = n / 256;
    let w: [&[u8]; R] = heads(w, nb * 210);
    let a: [&[u8]; C] = heads(a, nb * qb::Q8_K_BYTES);
    let m4 = _mm512_set1_epi8(0x0f);
    let m30 = _mm512_set1_epi8(0x30);
    let (shl, shr) = (load512(&Q6K_SHL), load512(&Q6K_SHR));
    let sidx = [
        load512(&Q6K_SCALES[0]),
        load512(&Q6K_SCALES[1]),
        load512(&Q6K_SCALES[2]),
        load512(&Q6K_SCALES[3]),
    ];
    let mut acc = [[_mm512_setzero_ps(); C]; R];
    for b in 0..nb {
        let mut qs = [[_mm512_setzero_si512(); 4]; R];
        let mut sv = [[_mm512_setzero_si512(); 4]; R];
        let mut sc16 = [_mm256_setzero_si256(); R];
        let mut d = [0f32; R];
        for r in 0..R {
            if R > 1 {
                for o in [0, 64, 128, 192] {
                    prefetch(w[r], 210 * b + o, R * nb * 210);
                }
            }
            let wb = &w[r][210 * b..210 * b + 210];
            d[r] = f16c(&wb[208..]);
            sc16[r] = _mm256_cvtepi8_epi16(load128(&wb[192..]));
            let s512 = _mm512_castsi256_si512(sc16[r]);
            for v in 0..4 {
                sv[r][v] = _mm512_permutexvar_epi16(sidx[v], s512);
            }
            for h in 0..2 {
                let ql = load512(&wb[64 * h..]);
                let qh = _mm512_broadcast_i64x4(load256(&wb[128 + 32 * h..]));
                let hl = _mm512_and_si512(_mm512_sllv_epi16(qh, shl), m30);
                let hh = _mm512_and_si512(_mm512_srlv_epi16(qh, shr), m30);
                qs[r][2 * h] = _mm512_or_si512(_mm512_and_si512(ql, m4), hl);
                qs[r][2 * h + 1] =
                    _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m4), hh);
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
                // The offset of 32: -32 * sum(scale * sum of 16).
                let off = _mm256_slli_epi32(_mm256_madd_epi16(sc16[r], bsums), 5);
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
