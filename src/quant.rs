//! Weight types the model computes with, their block layouts, and the scalar
//! reference kernels (row dequantization and dot product against f32).
//!
//! Rows are read straight from the GGUF bytes with little-endian loads, so
//! weights need no alignment and no copy. The scalar kernels are the oracle
//! that faster kernels are tested against.
//!
//! Block layouts (as GGUF stores them):
//! - `F32`: 4-byte IEEE floats. `F16`: 2-byte IEEE halves. `BF16`: the top 16
//!   bits of an f32.
//! - `Q8_0`: blocks of 32 weights, 34 bytes: an f16 scale `d`, then 32 `i8`
//!   quants `q`; weight = `d * q`.
//! - Q4_0, Q4_1, Q5_0, Q5_1 (blocks of 32) and the K-quants Q2_K, Q3_K,
//!   Q4_K, Q5_K, Q6_K (blocks of 256): layouts and kernels in
//!   [`crate::blocks`].

use crate::blocks as qb;
use crate::gguf::GgmlType;
use half::f16;

/// A weight type the model can compute with. Open to more types: each new one
/// adds a variant, a layout above, and arms in [`dequantize_row`] and [`dot`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
#[allow(non_camel_case_types)] // ggml's names
pub enum WeightType {
    F32 = 0,
    F16 = 1,
    Q4_0 = 2,
    Q4_1 = 3,
    Q5_0 = 6,
    Q5_1 = 7,
    Q8_0 = 8,
    Q2_K = 10,
    Q3_K = 11,
    Q4_K = 12,
    Q5_K = 13,
    Q6_K = 14,
    BF16 = 30,
}

/// Dequantizes one block into its weights.
type BlockDequant = fn(&[u8], &mut [f32]);

/// Weights per Q8_0 block.
pub const QK8_0: usize = 32;
/// Bytes per Q8_0 block.
pub const Q8_0_BYTES: usize = 34;

impl WeightType {
    /// The supported type for a ggml type id, if any.
    pub fn from_ggml(t: GgmlType) -> Option<Self> {
        Some(match t {
            GgmlType::F32 => Self::F32,
            GgmlType::F16 => Self::F16,
            GgmlType::Q4_0 => Self::Q4_0,
            GgmlType::Q4_1 => Self::Q4_1,
            GgmlType::Q5_0 => Self::Q5_0,
            GgmlType::Q5_1 => Self::Q5_1,
            GgmlType::Q8_0 => Self::Q8_0,
            GgmlType::Q2_K => Self::Q2_K,
            GgmlType::Q3_K => Self::Q3_K,
            GgmlType::Q4_K => Self::Q4_K,
            GgmlType::Q5_K => Self::Q5_K,
            GgmlType::Q6_K => Self::Q6_K,
            GgmlType::BF16 => Self::BF16,
            _ => return None,
        })
    }
    /// The ggml type id.
    pub fn ggml(self) -> GgmlType {
        GgmlType(self as u32)
    }
    /// Weights per block.
    pub fn block_len(self) -> usize {
        match self {
            Self::F32 | Self::F16 | Self::BF16 => 1,
            Self::Q4_0 | Self::Q4_1 | Self::Q5_0 | Self::Q5_1 | Self::Q8_0 => QK8_0,
            Self::Q2_K | Self::Q3_K | Self::Q4_K | Self::Q5_K | Self::Q6_K => qb::QK_K,
        }
    }
    /// Bytes per block.
    pub fn block_bytes(self) -> usize {
        match self {
            Self::F32 => 4,
            Self::F16 | Self::BF16 => 2,
            Self::Q4_0 => qb::Q4_0_BYTES,
            Self::Q4_1 => qb::Q4_1_BYTES,
            Self::Q5_0 => qb::Q5_0_BYTES,
            Self::Q5_1 => qb::Q5_1_BYTES,
            Self::Q8_0 => Q8_0_BYTES,
            Self::Q2_K => qb::Q2_K_BYTES,
            Self::Q3_K => qb::Q3_K_BYTES,
            Self::Q4_K => qb::Q4_K_BYTES,
            Self::Q5_K => qb::Q5_K_BYTES,
            Self::Q6_K => qb::Q6_K_BYTES,
        }
    }
    /// The block dequantizer of a block type (`None` for F32, F16, BF16).
    fn block_dequant(self) -> Option<BlockDequant> {
        Some(match self {
            Self::F32 | Self::F16 | Self::BF16 => return None,
            Self::Q8_0 => dequant_q8_0,
            Self::Q4_0 => qb::dequant_q4_0,
            Self::Q4_1 => qb::dequant_q4_1,
            Self::Q5_0 => qb::dequant_q5_0,
            Self::Q5_1 => qb::dequant_q5_1,
            Self::Q2_K => qb::dequant_q2_k,
            Self::Q3_K => qb::dequant_q3_k,
            Self::Q4_K => qb::dequant_q4_k,
            Self::Q5_K => qb::dequant_q5_k,
            Self::Q6_K => qb::dequant_q6_k,
        })
    }
    /// Bytes of a row of `n` weights (`n` a multiple of [`Self::block_len`]).
    pub fn row_bytes(self, n: usize) -> Option<usize> {
        if !n.is_multiple_of(self.block_len()) {
            return None;
        }
        (n / self.block_len()).checked_mul(self.block_bytes())
    }
}

/// A little-endian f32 at the start of `b`.
#[inline(always)]
pub(crate) fn le_f32(b: &[u8]) -> f32 {
    f32::from_le_bytes([b[0], b[1], b[2], b[3]])
}
#[inline(always)]
fn le_f16(b: &[u8]) -> f32 {
    f16_to_f32(u16::from_le_bytes([b[0], b[1]]))
}

/// An f16 (its bits) as f32, exactly: [`f16x2_to_f32`]'s low half.
#[inline(always)]
pub(crate) fn f16_to_f32(h: u16) -> f32 {
    f16x2_to_f32(h as u32)[0]
}

/// The two f16 of `w` (its low half first) as f32, exactly. Where the FPU
/// converts halves (`nanollama_vcvt_f16`, see build.rs: the Cortex-M4F and
/// its kind) `vcvtb` and `vcvtt.f32.f16`, else the `half` crate's bit
/// manipulation (some 30 instructions a half on a Cortex-M4). Same bits
/// either way, NaNs included (quietened, payload kept), given the reset
/// FPSCR's IEEE halves (AHP 0) and no default-NaN mode (DN 0).
#[inline(always)]
pub(crate) fn f16x2_to_f32(w: u32) -> [f32; 2] {
    #[cfg(nanollama_vcvt_f16)]
    {
        let (lo, hi): (u32, u32);
        // SAFETY: FPU instructions on registers only (no memory, stack or
        // flags), which the target has (build.rs sets the cfg only there);
        // s0 and s1 are declared clobbered. Through core registers because
        // rustc (to 1.97 at least) takes `sreg` operands only with `vfp2`,
        // which a single-precision FPU lacks.
        #[allow(unsafe_code)]
        unsafe {
            core::arch::asm!(
                "vmov s1, {w}",
                "vcvtb.f32.f16 s0, s1",
                "vcvtt.f32.f16 s1, s1",
                "vmov {lo}, {hi}, s0, s1",
                w = in(reg) w,
                lo = lateout(reg) lo,
                hi = lateout(reg) hi,
                out("s0") _,
                out("s1") _,
                options(pure, nomem, nostack, preserves_flags)
            );
        }
        [f32::from_bits(lo), f32::from_bits(hi)]
    }
    #[cfg(not(nanollama_vcvt_f16))]
    {
        [
            f16::from_bits(w as u16).to_f32(),
            f16::from_bits((w >> 16) as u16).to_f32(),
        ]
    }
}

#[inline(always)]
fn le_bf16(b: &[u8]) -> f32 {
    f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16)
}

/// Writes the `out.len()` weights stored in `row` as f32. `row` must hold
/// exactly that many weights of type `t` (callers slice it from validated
/// shapes); a shorter row leaves the tail of `out` untouched.
pub fn dequantize_row(t: WeightType, row: &[u8], out: &mut [f32]) {
    match t {
        WeightType::F32 => {
            for (o, b) in out.iter_mut().zip(row.chunks_exact(4)) {
                *o = le_f32(b);
            }
        }
        WeightType::F16 => {
            for (o, b) in out.iter_mut().zip(row.chunks_exact(2)) {
                *o = le_f16(b);
            }
        }
        WeightType::BF16 => {
            for (o, b) in out.iter_mut().zip(row.chunks_exact(2)) {
                *o = le_bf16(b);
            }
        }
        _ => {
            let Some(deq) = t.block_dequant() else { return };
            for (o, blk) in out
                .chunks_exact_mut(t.block_len())
                .zip(row.chunks_exact(t.block_bytes()))
            {
                deq(blk, o);
            }
        }
    }
}

fn dequant_q8_0(blk: &[u8], out: &mut [f32]) {
    let d = le_f16(blk);
    for (o, &q) in out.iter_mut().zip(&blk[2..]) {
        *o = d * (q as i8) as f32;
    }
}

/// Lanes of independent partial sums: a fixed summation order (so results do
/// not depend on threads or batch) that the compiler can still vectorize.
const LANES: usize = 8;

#[inline(always)]
fn lanes_dot(x: &[f32], n: usize, w: impl Fn(usize) -> f32) -> f32 {
    lanes_dot2(n, |i| w(i) * x[i])
}

/// Dot product of one stored row with `x` (f32 activations), the row holding
/// `x.len()` weights of type `t`. Scalar reference implementation.
pub fn dot(t: WeightType, row: &[u8], x: &[f32]) -> f32 {
    let n = x.len();
    if t == WeightType::F32 {
        if let Some(v) = crate::simd::dot_act(t, row, bytemuck::cast_slice(x), n) {
            return v;
        }
    }
    match t {
        WeightType::F32 => {
            let row = &row[..n * 4];
            lanes_dot(x, n, |i| le_f32(&row[i * 4..]))
        }
        WeightType::F16 => {
            let row = &row[..n * 2];
            lanes_dot(x, n, |i| le_f16(&row[i * 2..]))
        }
        WeightType::BF16 => {
            let row = &row[..n * 2];
            lanes_dot(x, n, |i| le_bf16(&row[i * 2..]))
        }
        WeightType::Q8_0 => {
            let nb = n / QK8_0;
            let row = &row[..nb * Q8_0_BYTES];
            let mut sum = 0f32;
            for (blk, xb) in row.chunks_exact(Q8_0_BYTES).zip(x.chunks_exact(QK8_0)) {
                let d = le_f16(blk);
                let q = &blk[2..];
                let s = lanes_dot(xb, QK8_0, |i| (q[i] as i8) as f32);
                sum += d * s;
            }
            sum
        }
        _ => {
            // Each block dequantized on the stack, then an f32 dot product.
            let Some(deq) = t.block_dequant() else {
                return 0.0;
            };
            let (bl, bb) = (t.block_len(), t.block_bytes());
            let mut w = [0f32; qb::QK_K];
            let mut sum = 0f32;
            for (blk, xb) in row[..n / bl * bb].chunks_exact(bb).zip(x.chunks_exact(bl)) {
                deq(blk, &mut w[..bl]);
                sum += lanes_dot(xb, bl, |i| w[i]);
            }
            sum
        }
    }
}

/// The form a matrix product's f32 inputs take before they meet the weights
/// of a given type, as llama.cpp does it (its "vec_dot_type"): F16 and BF16
/// weights meet inputs rounded to their own type, Q8_0 weights meet inputs
/// quantized to Q8_0 blocks (an integer dot product per block). F32 weights
/// meet the f32 inputs as they are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(non_camel_case_types)] // ggml's names
pub enum ActType {
    F32,
    F16,
    BF16,
    Q8_0,
    /// Q8_0 with each block's `d * sum(q)` (for Q4_1 and Q5_1).
    Q8_1,
    /// Blocks of 256 with an f32 scale and sums of 16 (for the K-quants).
    Q8_K,
}

/// Bytes per input element reserved for converted inputs: the most of any
/// [`ActType`] but `F32` (2), or of the AVX-512 kernels' wider layouts (f32
/// for F16 weights, about 3 for Q8_0 and Q4_0; see `simd`).
pub const ACT_MAX_BYTES: usize = 4;

impl WeightType {
    /// The form inputs take to meet weights of this type.
    pub fn act_type(self) -> ActType {
        match self {
            Self::F32 => ActType::F32,
            Self::F16 => ActType::F16,
            Self::BF16 => ActType::BF16,
            Self::Q8_0 | Self::Q4_0 | Self::Q5_0 => ActType::Q8_0,
            Self::Q4_1 | Self::Q5_1 => ActType::Q8_1,
            Self::Q2_K | Self::Q3_K | Self::Q4_K | Self::Q5_K | Self::Q6_K => ActType::Q8_K,
        }
    }
}

impl ActType {
    /// Bytes of `n` converted inputs (`n` a multiple of the block length of
    /// the weights that ask for this form).
    pub fn row_bytes(self, n: usize) -> usize {
        match self {
            Self::F32 => n * 4,
            Self::F16 | Self::BF16 => n * 2,
            Self::Q8_0 => n / QK8_0 * Q8_0_BYTES,
            Self::Q8_1 => n / qb::QK * qb::Q8_1_BYTES,
            Self::Q8_K => n / qb::QK_K * qb::Q8_K_BYTES,
        }
    }
}

/// f32 to bf16 bits, rounding to nearest even (NaN stays NaN).
#[inline(always)]
fn bf16_bits(v: f32) -> u16 {
    let u = v.to_bits();
    if v.is_nan() {
        return ((u >> 16) | 0x40) as u16;
    }
    ((u + (0x7fff + ((u >> 16) & 1))) >> 16) as u16
}

/// Writes `x` in the form `t` into `out` (at least `t.row_bytes(x.len())`
/// bytes). Q8_0: per block of 32, `d = max|x| / 127` stored as f16 and
/// `q = round_half_even(x * 127 / max|x|)` (`blocks::quantize_block_q8`),
/// the rounding llama.cpp's x86 and Arm kernels use; a NaN input makes the
/// block's scale NaN, so the product is NaN, not garbage.
pub fn quantize_act(t: ActType, x: &[f32], out: &mut [u8]) {
    match t {
        ActType::F32 => {
            for (o, v) in out.chunks_exact_mut(4).zip(x) {
                o.copy_from_slice(&v.to_le_bytes());
            }
        }
        ActType::F16 => {
            for (o, v) in out.chunks_exact_mut(2).zip(x) {
                o.copy_from_slice(&f16::from_f32(*v).to_bits().to_le_bytes());
            }
        }
        ActType::BF16 => {
            for (o, v) in out.chunks_exact_mut(2).zip(x) {
                o.copy_from_slice(&bf16_bits(*v).to_le_bytes());
            }
        }
        ActType::Q8_0 => {
            for (o, xb) in out.chunks_exact_mut(Q8_0_BYTES).zip(x.chunks_exact(QK8_0)) {
                let (d, _) = qb::quantize_block_q8(xb, &mut o[2..]);
                o[..2].copy_from_slice(&f16::from_f32(d).to_bits().to_le_bytes());
            }
        }
        ActType::Q8_1 => qb::quantize_q8_1(x, out),
        ActType::Q8_K => qb::quantize_q8_k(x, out),
    }
}

/// Dot product of one stored row of `n` weights of type `t` with `n` inputs
/// already in the form `t.act_type()` (see [`quantize_act`]). Scalar
/// reference implementation.
pub fn dot_act(t: WeightType, row: &[u8], xa: &[u8], n: usize) -> f32 {
    if let Some(v) = crate::simd::dot_act(t, row, xa, n) {
        return v;
    }
    dot_act_scalar(t, row, xa, n)
}

/// The scalar reference of [`dot_act`].
pub fn dot_act_scalar(t: WeightType, row: &[u8], xa: &[u8], n: usize) -> f32 {
    match t {
        WeightType::F32 => {
            let (row, xa) = (&row[..n * 4], &xa[..n * 4]);
            lanes_dot2(n, |i| le_f32(&row[i * 4..]) * le_f32(&xa[i * 4..]))
        }
        WeightType::F16 => dot_f16(&row[..n * 2], &xa[..n * 2]),
        WeightType::BF16 => {
            let (row, xa) = (&row[..n * 2], &xa[..n * 2]);
            lanes_dot2(n, |i| le_bf16(&row[i * 2..]) * le_bf16(&xa[i * 2..]))
        }
        WeightType::Q8_0 => {
            let nb = n / QK8_0;
            let (row, xa) = (&row[..nb * Q8_0_BYTES], &xa[..nb * Q8_0_BYTES]);
            let mut sum = 0f32;
            for (w, x) in row
                .chunks_exact(Q8_0_BYTES)
                .zip(xa.chunks_exact(Q8_0_BYTES))
            {
                let sumi: i32 = w[2..]
                    .iter()
                    .zip(&x[2..])
                    .map(|(&a, &b)| (a as i8 as i32) * (b as i8 as i32))
                    .sum();
                sum += sumi as f32 * (le_f16(w) * le_f16(x));
            }
            sum
        }
        WeightType::Q4_0 => qb::dot_q4_0_q8_0(row, xa, n),
        WeightType::Q4_1 => qb::dot_q4_1_q8_1(row, xa, n),
        WeightType::Q5_0 => qb::dot_q5_0_q8_0(row, xa, n),
        WeightType::Q5_1 => qb::dot_q5_1_q8_1(row, xa, n),
        WeightType::Q2_K => qb::dot_q2_k_q8_k(row, xa, n),
        WeightType::Q3_K => qb::dot_q3_k_q8_k(row, xa, n),
        WeightType::Q4_K => qb::dot_q4_k_q8_k(row, xa, n),
        WeightType::Q5_K => qb::dot_q5_k_q8_k(row, xa, n),
        WeightType::Q6_K => qb::dot_q6_k_q8_k(row, xa, n),
    }
}

/// Sum of `n` products in the lane order of [`lanes_dot`].
#[inline(always)]
fn lanes_dot2(n: usize, prod: impl Fn(usize) -> f32) -> f32 {
    let mut acc = [0f32; LANES];
    let full = n / LANES * LANES;
    let mut i = 0;
    while i < full {
        for (l, a) in acc.iter_mut().enumerate() {
            *a += prod(i + l);
        }
        i += LANES;
    }
    let mut tail = 0f32;
    for j in full..n {
        tail += prod(j);
    }
    let mut s = 0f32;
    for a in acc {
        s += a;
    }
    s + tail
}

/// The F16 dot product of [`dot_act_scalar`] (`w` and `x` f16, as many of
/// each): [`lanes_dot2`]'s products and order of sums, the halves
/// converted two at a time.
fn dot_f16(w: &[u8], x: &[u8]) -> f32 {
    let (wc, wt) = w.as_chunks::<{ 2 * LANES }>();
    let (xc, xt) = x.as_chunks::<{ 2 * LANES }>();
    let mut acc = [0f32; LANES];
    for (w, x) in wc.iter().zip(xc) {
        for l in (0..LANES).step_by(2) {
            let le = |b: &[u8; 2 * LANES]| {
                f16x2_to_f32(u32::from_le_bytes([
                    b[2 * l],
                    b[2 * l + 1],
                    b[2 * l + 2],
                    b[2 * l + 3],
                ]))
            };
            let ([w0, w1], [x0, x1]) = (le(w), le(x));
            acc[l] += w0 * x0;
            acc[l + 1] += w1 * x1;
        }
    }
    let mut tail = 0f32;
    for (w, x) in wt.chunks_exact(2).zip(xt.chunks_exact(2)) {
        tail += le_f16(w) * le_f16(x);
    }
    let mut s = 0f32;
    for a in acc {
        s += a;
    }
    s + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q8_block(d: f32, qs: &[i8; 32]) -> [u8; 34] {
        let mut b = [0u8; 34];
        b[..2].copy_from_slice(&f16::from_f32(d).to_bits().to_le_bytes());
        for (o, &q) in b[2..].iter_mut().zip(qs) {
            *o = q as u8;
        }
        b
    }

    #[test]
    fn dequantize_each_type() {
        let vals = [1.5f32, -2.25, 0.0, 3.0e-3];
        let mut bytes = [0u8; 16];
        for (b, v) in bytes.chunks_exact_mut(4).zip(vals) {
            b.copy_from_slice(&v.to_le_bytes());
        }
        let mut out = [0f32; 4];
        dequantize_row(WeightType::F32, &bytes, &mut out);
        assert_eq!(out, vals);

        let mut h = [0u8; 8];
        for (b, v) in h.chunks_exact_mut(2).zip(vals) {
            b.copy_from_slice(&f16::from_f32(v).to_bits().to_le_bytes());
        }
        dequantize_row(WeightType::F16, &h, &mut out);
        for (o, v) in out.iter().zip(vals) {
            assert_eq!(*o, f16::from_f32(v).to_f32());
        }

        let mut bf = [0u8; 8];
        for (b, v) in bf.chunks_exact_mut(2).zip(vals) {
            b.copy_from_slice(&((v.to_bits() >> 16) as u16).to_le_bytes());
        }
        dequantize_row(WeightType::BF16, &bf, &mut out);
        for (o, v) in out.iter().zip(vals) {
            assert_eq!(o.to_bits(), v.to_bits() & 0xffff_0000);
        }

        let mut qs = [0i8; 32];
        for (i, q) in qs.iter_mut().enumerate() {
            *q = (i as i8 - 16) * 7;
        }
        let blk = q8_block(0.5, &qs);
        let mut o32 = [0f32; 32];
        dequantize_row(WeightType::Q8_0, &blk, &mut o32);
        for i in 0..32 {
            assert_eq!(o32[i], 0.5 * qs[i] as f32);
        }
    }

    #[test]
    fn dot_matches_dequantize_then_f32() {
        // 3 blocks of Q8_0 and odd lengths for the float types.
        let mut row = [0u8; 3 * 34];
        let mut state = 12345u32;
        let mut rnd = || {
            state = state.wrapping_mul(1664525).wrapping_add(1013904223);
            (state >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        };
        for b in 0..3 {
            let mut qs = [0i8; 32];
            for q in qs.iter_mut() {
                *q = (rnd() * 250.0) as i8;
            }
            row[b * 34..b * 34 + 34].copy_from_slice(&q8_block(0.01 + b as f32, &qs));
        }
        let mut x = [0f32; 96];
        for v in x.iter_mut() {
            *v = rnd();
        }
        let mut w = [0f32; 96];
        dequantize_row(WeightType::Q8_0, &row, &mut w);
        let want: f64 = w.iter().zip(&x).map(|(a, b)| *a as f64 * *b as f64).sum();
        let got = dot(WeightType::Q8_0, &row, &x) as f64;
        assert!(
            (got - want).abs() <= 1e-5 * want.abs().max(1.0),
            "{got} {want}"
        );

        for n in [0usize, 1, 7, 8, 9, 33, 67] {
            let mut fb = [0u8; 67 * 4];
            for i in 0..n {
                fb[i * 4..i * 4 + 4].copy_from_slice(&rnd().to_le_bytes());
            }
            let mut wf = [0f32; 67];
            dequantize_row(WeightType::F32, &fb[..n * 4], &mut wf[..n]);
            let want: f64 = (0..n).map(|i| wf[i] as f64 * x[i] as f64).sum();
            let got = dot(WeightType::F32, &fb, &x[..n]) as f64;
            assert!((got - want).abs() <= 1e-5, "n={n} {got} {want}");
        }
    }

    #[test]
    fn q8_0_inputs_round_half_to_even_and_dot_exactly() {
        // amax 127 makes the scale 1: the quants are the inputs rounded,
        // halves to even (2.5 -> 2, 3.5 -> 4, -2.5 -> -2).
        let mut x = [0f32; 32];
        x[0] = 127.0;
        x[1] = 2.5;
        x[2] = 3.5;
        x[3] = -2.5;
        x[4] = -126.4;
        x[5] = 0.49;
        let mut a = [0u8; 34];
        quantize_act(ActType::Q8_0, &x, &mut a);
        assert_eq!(le_f16(&a), 1.0);
        let q: Vec<i8> = a[2..8].iter().map(|&b| b as i8).collect();
        assert_eq!(q, [127, 2, 4, -2, -126, 0]);
        // All zeros: scale 0, quants 0.
        quantize_act(ActType::Q8_0, &[0.0; 32], &mut a);
        assert!(a.iter().all(|&b| b == 0));

        // dot_act equals the integer dot product times both scales.
        let mut state = 99u32;
        let mut rnd = || {
            state = state.wrapping_mul(1664525).wrapping_add(1013904223);
            (state >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        };
        let mut w = [0u8; 2 * 34];
        for b in 0..2 {
            let mut qs = [0i8; 32];
            for q in qs.iter_mut() {
                *q = (rnd() * 254.0) as i8;
            }
            w[b * 34..b * 34 + 34].copy_from_slice(&q8_block(0.25 + b as f32, &qs));
        }
        let xs: Vec<f32> = (0..64).map(|_| rnd() * 3.0).collect();
        let mut xa = [0u8; 2 * 34];
        quantize_act(ActType::Q8_0, &xs, &mut xa);
        let mut want = 0f64;
        for b in 0..2 {
            let (wb, xb) = (&w[b * 34..b * 34 + 34], &xa[b * 34..b * 34 + 34]);
            let sumi: i64 = (0..32)
                .map(|i| wb[2 + i] as i8 as i64 * xb[2 + i] as i8 as i64)
                .sum();
            want += sumi as f64 * le_f16(wb) as f64 * le_f16(xb) as f64;
        }
        let got = dot_act(WeightType::Q8_0, &w, &xa, 64) as f64;
        assert!(
            (got - want).abs() <= 1e-6 * want.abs().max(1.0),
            "{got} {want}"
        );
        // And it approximates the f32 dot within the quantization error.
        let exact = dot(WeightType::Q8_0, &w, &xs) as f64;
        assert!(
            (got - exact).abs() < 0.02 * exact.abs().max(1.0),
            "{got} {exact}"
        );
    }

    #[test]
    fn f16_and_bf16_inputs_are_rounded_to_nearest_even() {
        let x = [1.0f32 + 1.0 / 2048.0, 1.0 + 3.0 / 2048.0, -65504.0, 1e-8];
        let mut a = [0u8; 8];
        quantize_act(ActType::F16, &x, &mut a);
        let back: Vec<f32> = a.chunks_exact(2).map(le_f16).collect();
        assert_eq!(back, [1.0, 1.0 + 2.0 / 1024.0, -65504.0, 0.0]);
        let y = [1.0f32 + 1.0 / 256.0, 1.0 + 3.0 / 256.0, f32::NAN, -0.0];
        quantize_act(ActType::BF16, &y, &mut a);
        let back: Vec<f32> = a.chunks_exact(2).map(le_bf16).collect();
        assert_eq!(back[..2], [1.0, 1.0 + 2.0 / 128.0]);
        assert!(back[2].is_nan());
        assert_eq!(back[3].to_bits(), (-0.0f32).to_bits());
        // dot_act on converted inputs equals dot on the rounded values.
        let w: Vec<u8> = [0.5f32, -2.0, 0.0, 4.0]
            .iter()
            .flat_map(|v| f16::from_f32(*v).to_bits().to_le_bytes())
            .collect();
        quantize_act(ActType::F16, &x, &mut a);
        let rounded: Vec<f32> = a.chunks_exact(2).map(le_f16).collect();
        assert_eq!(
            dot_act(WeightType::F16, &w, &a, 4),
            dot(WeightType::F16, &w, &rounded)
        );
    }
}
