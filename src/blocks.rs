//! The quantized block formats beyond Q8_0, as GGUF stores them (packed,
//! little-endian), with scalar reference kernels: dequantization of a block,
//! and dot products with activations quantized the way llama.cpp pairs them
//! (Q8_0 for Q4_0 and Q5_0, Q8_1 for Q4_1 and Q5_1, Q8_K for the K-quants).
//!
//! Blocks of 32 weights (`d`, `m` f16; `qs` 16 bytes of nibbles: byte `j`
//! holds weight `j` in its low and weight `j + 16` in its high nibble; `qh`
//! a u32 whose bit `i` is weight `i`'s fifth bit):
//! - `Q4_0` (18 bytes: d, qs): `d * (q - 8)`
//! - `Q4_1` (20 bytes: d, m, qs): `d * q + m`
//! - `Q5_0` (22 bytes: d, qh, qs): `d * (q - 16)`
//! - `Q5_1` (24 bytes: d, m, qh, qs): `d * q + m`
//!
//! K-quants: super-blocks of 256 weights in sub-blocks of 16 or 32, each
//! with an integer scale (and for some a minimum) relative to the f16
//! super-block scales `d` and `dmin`. Every format is decoded here into the
//! same form, `Decoded`: 256 small integer quants, a scale and a minimum
//! per sub-block, so that weight `i` is `d * scale[s] * q[i] - dmin *
//! min[s]` with `s = i / sub`. One dequantizer and one dot product then serve
//! all five:
//! - `Q2_K` (84 bytes: 16 scale bytes (low nibble scale, high nibble min),
//!   64 bytes of 2-bit quants, d, dmin); sub-blocks of 16.
//! - `Q3_K` (110 bytes: 32 bytes of high bits, 64 bytes of 2-bit quants, 12
//!   bytes of 6-bit scales (stored minus 32), d); q in -4..=3; sub 16.
//! - `Q4_K` (144 bytes: d, dmin, 12 bytes of 6-bit scales and mins, 128
//!   bytes of nibbles); sub-blocks of 32.
//! - `Q5_K` (176 bytes: as Q4_K plus 32 bytes of fifth bits); sub 32.
//! - `Q6_K` (210 bytes: 128 bytes of low nibbles, 64 bytes of high 2-bit
//!   pairs, 16 signed 8-bit scales, d); q in -32..=31; sub 16.
//!
//! The 2-bit quants of Q2_K/Q3_K: in each half (128 weights) of the block,
//! byte `l` of the half's 32 bytes holds, at bit shift `2j`, weight
//! `32j + l`. Q4_K/Q5_K: in each quarter (64 weights), byte `l` of its 32
//! bytes holds weight `l` (low nibble) and `32 + l` (high nibble).
//!
//! Activations: `Q8_1` (36 bytes per 32: d f16, s f16 = d * sum(q), q i8) and
//! `Q8_K` (292 bytes per 256: d f32, q i8 ×256, sums of each 16 q as i16).

use half::f16;

/// Weights per block of Q4_0, Q4_1, Q5_0, Q5_1, and activations per Q8_1 block.
pub const QK: usize = 32;
pub const Q4_0_BYTES: usize = 18;
pub const Q4_1_BYTES: usize = 20;
pub const Q5_0_BYTES: usize = 22;
pub const Q5_1_BYTES: usize = 24;
/// Weights per K-quant super-block.
pub const QK_K: usize = 256;
pub const Q2_K_BYTES: usize = 84;
pub const Q3_K_BYTES: usize = 110;
pub const Q4_K_BYTES: usize = 144;
pub const Q5_K_BYTES: usize = 176;
pub const Q6_K_BYTES: usize = 210;
pub const Q8_1_BYTES: usize = 36;
pub const Q8_K_BYTES: usize = 292;
const Q8_0_BYTES: usize = 34;

#[inline(always)]
fn f16_at(b: &[u8], at: usize) -> f32 {
    crate::quant::f16_to_f32(u16::from_le_bytes([b[at], b[at + 1]]))
}

#[inline(always)]
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// A block of 32 decoded: integer quants `q` (with Q4_0/Q5_0's offset
/// already subtracted), `d` and the minimum `m` (0 for Q4_0/Q5_0): weight
/// `i` is `d * q[i] + m`.
struct Small {
    q: [i8; QK],
    d: f32,
    m: f32,
}

fn decode_small(b: &[u8], min: bool, fifth: bool) -> Small {
    let d = f16_at(b, 0);
    let (m, mut at) = if min { (f16_at(b, 2), 4) } else { (0.0, 2) };
    let qh = if fifth {
        at += 4;
        u32_at(b, at - 4)
    } else {
        0
    };
    // Without a minimum the quants are centred: 4 bits - 8, 5 bits - 16.
    let offset = match (min, fifth) {
        (true, _) => 0,
        (false, false) => 8,
        (false, true) => 16,
    };
    let mut q = [0i8; QK];
    for j in 0..QK / 2 {
        let byte = b[at + j];
        let hi0 = ((qh >> j) & 1) << 4;
        let hi1 = ((qh >> (j + 16)) & 1) << 4;
        q[j] = ((byte & 0x0f) as u32 | hi0) as i8 - offset;
        q[j + 16] = ((byte >> 4) as u32 | hi1) as i8 - offset;
    }
    Small { q, d, m }
}

fn dequant_small(b: &[u8], out: &mut [f32], min: bool, fifth: bool) {
    let s = decode_small(b, min, fifth);
    for (o, &q) in out.iter_mut().zip(&s.q) {
        // No `+ 0.0` without a minimum: it would turn -0.0 into +0.0.
        *o = if min {
            s.d * q as f32 + s.m
        } else {
            s.d * q as f32
        };
    }
}

pub fn dequant_q4_0(b: &[u8], out: &mut [f32]) {
    dequant_small(b, out, false, false)
}
pub fn dequant_q4_1(b: &[u8], out: &mut [f32]) {
    dequant_small(b, out, true, false)
}
pub fn dequant_q5_0(b: &[u8], out: &mut [f32]) {
    dequant_small(b, out, false, true)
}
pub fn dequant_q5_1(b: &[u8], out: &mut [f32]) {
    dequant_small(b, out, true, true)
}

/// Integer dot product of 32 quants with the 32 i8 of a Q8_0/Q8_1 block.
#[inline(always)]
fn sumi(q: &[i8; QK], a: &[u8]) -> i32 {
    q.iter()
        .zip(a)
        .map(|(&w, &x)| w as i32 * x as i8 as i32)
        .sum()
}

/// Blocks of 32 against Q8_0 (`min` false) or Q8_1 (`min` true) blocks:
/// per block `d_w * d_a * sumi`, plus `m_w * s_a` with Q8_1.
fn dot_small(w: &[u8], a: &[u8], n: usize, wb: usize, min: bool, fifth: bool) -> f32 {
    let ab = if min { Q8_1_BYTES } else { Q8_0_BYTES };
    let nb = n / QK;
    let mut sum = 0f32;
    for (wb, ab) in w[..nb * wb]
        .chunks_exact(wb)
        .zip(a[..nb * ab].chunks_exact(ab))
    {
        let s = decode_small(wb, min, fifth);
        let da = f16_at(ab, 0);
        if min {
            sum += s.d * da * sumi(&s.q, &ab[4..]) as f32 + s.m * f16_at(ab, 2);
        } else {
            sum += sumi(&s.q, &ab[2..]) as f32 * (s.d * da);
        }
    }
    sum
}

pub fn dot_q4_0_q8_0(w: &[u8], a: &[u8], n: usize) -> f32 {
    dot_small(w, a, n, Q4_0_BYTES, false, false)
}
pub fn dot_q4_1_q8_1(w: &[u8], a: &[u8], n: usize) -> f32 {
    dot_small(w, a, n, Q4_1_BYTES, true, false)
}
pub fn dot_q5_0_q8_0(w: &[u8], a: &[u8], n: usize) -> f32 {
    dot_small(w, a, n, Q5_0_BYTES, false, true)
}
pub fn dot_q5_1_q8_1(w: &[u8], a: &[u8], n: usize) -> f32 {
    dot_small(w, a, n, Q5_1_BYTES, true, true)
}

/// A K-quant super-block decoded (see the module documentation).
struct Decoded {
    q: [i8; QK_K],
    scale: [i16; 16],
    min: [i16; 16],
    /// Weights per sub-block: 16 or 32.
    sub: usize,
    d: f32,
    dmin: f32,
}

impl Decoded {
    fn new(sub: usize, d: f32, dmin: f32) -> Self {
        Decoded {
            q: [0; QK_K],
            scale: [0; 16],
            min: [0; 16],
            sub,
            d,
            dmin,
        }
    }
}

/// The 2-bit fields of Q2_K and Q3_K: weight `128h + 32j + l` sits at shift
/// `2j` of byte `32h + l`.
fn two_bit(qs: &[u8], e: usize) -> u8 {
    let (h, j, l) = (e / 128, (e % 128) / 32, e % 32);
    (qs[32 * h + l] >> (2 * j)) & 3
}

fn decode_q2_k(b: &[u8]) -> Decoded {
    let mut k = Decoded::new(16, f16_at(b, 80), f16_at(b, 82));
    for (s, &byte) in b[..16].iter().enumerate() {
        k.scale[s] = (byte & 0x0f) as i16;
        k.min[s] = (byte >> 4) as i16;
    }
    let qs = &b[16..80];
    for e in 0..QK_K {
        k.q[e] = two_bit(qs, e) as i8;
    }
    k
}

fn decode_q3_k(b: &[u8]) -> Decoded {
    let (hmask, qs, sc) = (&b[0..32], &b[32..96], &b[96..108]);
    let mut k = Decoded::new(16, f16_at(b, 108), 0.0);
    for (s, scale) in k.scale.iter_mut().enumerate() {
        // Low 4 bits: bytes 0..8, then their high nibbles; high 2 bits: the
        // 2-bit fields of bytes 8..12, four scales per shift.
        let low = if s < 8 { sc[s] & 0x0f } else { sc[s - 8] >> 4 };
        let high = (sc[8 + s % 4] >> (2 * (s / 4))) & 3;
        *scale = (low | high << 4) as i16 - 32;
    }
    for e in 0..QK_K {
        // The high bit of weight 128h + 32j + l is bit 4h + j of byte l.
        let (h, j, l) = (e / 128, (e % 128) / 32, e % 32);
        let set = hmask[l] >> (4 * h + j) & 1 == 1;
        k.q[e] = two_bit(qs, e) as i8 - if set { 0 } else { 4 };
    }
    k
}

/// The 6-bit scale and minimum of sub-block `s` of Q4_K/Q5_K: sub-blocks
/// 0..4 in the low 6 bits of bytes 0..4 and 4..8; 4..8 in the nibbles of
/// bytes 8..12 with their top two bits in the top bits of bytes 0..8.
pub(crate) fn scale_min_k4(sc: &[u8], s: usize) -> (i16, i16) {
    if s < 4 {
        ((sc[s] & 63) as i16, (sc[s + 4] & 63) as i16)
    } else {
        let scale = (sc[s + 4] & 0x0f) | (sc[s - 4] >> 6) << 4;
        let min = (sc[s + 4] >> 4) | (sc[s] >> 6) << 4;
        (scale as i16, min as i16)
    }
}

fn decode_q4_q5_k(b: &[u8], fifth: bool) -> Decoded {
    let mut k = Decoded::new(32, f16_at(b, 0), f16_at(b, 2));
    let sc = &b[4..16];
    for s in 0..8 {
        (k.scale[s], k.min[s]) = scale_min_k4(sc, s);
    }
    let (qh, qs) = if fifth {
        (&b[16..48], &b[48..176])
    } else {
        (&b[0..0], &b[16..144])
    };
    for e in 0..QK_K {
        // Quarter c: byte l of its 32 holds weights 64c + l and 64c + 32 + l;
        // their fifth bits are bits 2c and 2c + 1 of qh[l].
        let (c, half, l) = (e / 64, (e % 64) / 32, e % 32);
        let byte = qs[32 * c + l];
        let mut q = if half == 0 { byte & 0x0f } else { byte >> 4 };
        if fifth {
            q |= ((qh[l] >> (2 * c + half)) & 1) << 4;
        }
        k.q[e] = q as i8;
    }
    k
}

fn decode_q6_k(b: &[u8]) -> Decoded {
    let (ql, qh, sc) = (&b[0..128], &b[128..192], &b[192..208]);
    let mut k = Decoded::new(16, f16_at(b, 208), 0.0);
    for (scale, &byte) in k.scale.iter_mut().zip(sc) {
        *scale = byte as i8 as i16;
    }
    for e in 0..QK_K {
        // Half h, quarter c of it, position l: low nibble from ql[64h + l
        // (+32 for c odd)] (high nibble for c >= 2), high pair at shift 2c of
        // qh[32h + l].
        let (h, c, l) = (e / 128, (e % 128) / 32, e % 32);
        let lo = ql[64 * h + l + 32 * (c % 2)];
        let lo = if c < 2 { lo & 0x0f } else { lo >> 4 };
        let hi = (qh[32 * h + l] >> (2 * c)) & 3;
        k.q[e] = (lo | hi << 4) as i8 - 32;
    }
    k
}

fn dequant_k(k: &Decoded, out: &mut [f32]) {
    for (e, o) in out.iter_mut().enumerate().take(QK_K) {
        let s = e / k.sub;
        *o = k.d * k.scale[s] as f32 * k.q[e] as f32 - k.dmin * k.min[s] as f32;
    }
}

pub fn dequant_q2_k(b: &[u8], out: &mut [f32]) {
    dequant_k(&decode_q2_k(b), out)
}
pub fn dequant_q3_k(b: &[u8], out: &mut [f32]) {
    dequant_k(&decode_q3_k(b), out)
}
pub fn dequant_q4_k(b: &[u8], out: &mut [f32]) {
    dequant_k(&decode_q4_q5_k(b, false), out)
}
pub fn dequant_q5_k(b: &[u8], out: &mut [f32]) {
    dequant_k(&decode_q4_q5_k(b, true), out)
}
pub fn dequant_q6_k(b: &[u8], out: &mut [f32]) {
    dequant_k(&decode_q6_k(b), out)
}

/// Sum over super-blocks of `d_a * (d * sum_s scale[s] * <q, qa>_s - dmin *
/// sum_s min[s] * sum(qa)_s)`, the integer parts exact.
fn dot_k(w: &[u8], a: &[u8], n: usize, wb: usize, decode: fn(&[u8]) -> Decoded) -> f32 {
    let nb = n / QK_K;
    let mut sum = 0f32;
    for (wb, ab) in w[..nb * wb]
        .chunks_exact(wb)
        .zip(a[..nb * Q8_K_BYTES].chunks_exact(Q8_K_BYTES))
    {
        let k = decode(wb);
        let da = f32::from_le_bytes([ab[0], ab[1], ab[2], ab[3]]);
        let qa = &ab[4..4 + QK_K];
        let bsum = |g: usize| i16::from_le_bytes([ab[260 + 2 * g], ab[261 + 2 * g]]) as i32;
        let (mut scaled, mut mins) = (0i32, 0i32);
        for s in 0..QK_K / k.sub {
            let r = s * k.sub..(s + 1) * k.sub;
            let p: i32 = k.q[r.clone()]
                .iter()
                .zip(&qa[r])
                .map(|(&w, &x)| w as i32 * x as i8 as i32)
                .sum();
            scaled += k.scale[s] as i32 * p;
            if k.dmin != 0.0 || k.min[s] != 0 {
                let groups = k.sub / 16;
                let qsum: i32 = (0..groups).map(|g| bsum(s * groups + g)).sum();
                mins += k.min[s] as i32 * qsum;
            }
        }
        sum += da * (k.d * scaled as f32) - da * (k.dmin * mins as f32);
    }
    sum
}

pub fn dot_q2_k_q8_k(w: &[u8], a: &[u8], n: usize) -> f32 {
    dot_k(w, a, n, Q2_K_BYTES, decode_q2_k)
}
pub fn dot_q3_k_q8_k(w: &[u8], a: &[u8], n: usize) -> f32 {
    dot_k(w, a, n, Q3_K_BYTES, decode_q3_k)
}
pub fn dot_q4_k_q8_k(w: &[u8], a: &[u8], n: usize) -> f32 {
    dot_k(w, a, n, Q4_K_BYTES, |b| decode_q4_q5_k(b, false))
}
pub fn dot_q5_k_q8_k(w: &[u8], a: &[u8], n: usize) -> f32 {
    dot_k(w, a, n, Q5_K_BYTES, |b| decode_q4_q5_k(b, true))
}
pub fn dot_q6_k_q8_k(w: &[u8], a: &[u8], n: usize) -> f32 {
    dot_k(w, a, n, Q6_K_BYTES, decode_q6_k)
}

/// Largest `|x|` of a block, NaN if any element is NaN (so that a NaN input
/// gives a NaN product rather than vanishing into a finite quant).
fn amax(x: &[f32]) -> f32 {
    x.iter().fold(0f32, |m, v| {
        if v.is_nan() || m.is_nan() {
            f32::NAN
        } else {
            m.max(v.abs())
        }
    })
}

/// Quantizes one block of 32 inputs as llama.cpp's x86 and Arm kernels do
/// for Q8_0 and Q8_1: `q = round_half_even(x * 127 / max|x|)` into `q` (32
/// bytes). Returns the unrounded scale `d = max|x| / 127` (NaN if an input
/// is NaN) and the sum of the quants.
pub(crate) fn quantize_block_q8(xb: &[f32], q: &mut [u8]) -> (f32, i32) {
    let am = amax(xb);
    let id = if am != 0.0 { 127.0 / am } else { 0.0 };
    let mut sum = 0i32;
    for (q, v) in q.iter_mut().zip(xb) {
        let qi = libm::rintf(v * id).clamp(-127.0, 127.0) as i8;
        sum += qi as i32;
        *q = qi as u8;
    }
    (am / 127.0, sum)
}

/// Q8_1 blocks of `x` (length a multiple of 32): `quantize_block_q8`'s
/// quants, `d` as f16, and `s = d * sum(q)` (with the unrounded `d`) as f16.
pub fn quantize_q8_1(x: &[f32], out: &mut [u8]) {
    for (o, xb) in out.chunks_exact_mut(Q8_1_BYTES).zip(x.chunks_exact(QK)) {
        let (d, sum) = quantize_block_q8(xb, &mut o[4..]);
        o[..2].copy_from_slice(&f16::from_f32(d).to_bits().to_le_bytes());
        o[2..4].copy_from_slice(&f16::from_f32(d * sum as f32).to_bits().to_le_bytes());
    }
}

/// Q8_K blocks of `x` (length a multiple of 256), as llama.cpp's reference:
/// the element of largest magnitude `v` sets `iscale = -127 / v`, `q =
/// min(127, round_half_even(iscale * x))` (so that element becomes -127),
/// `d = 1 / iscale` as f32; all-zero blocks get `d = 0`. Also the sums of
/// each 16 quants.
pub fn quantize_q8_k(x: &[f32], out: &mut [u8]) {
    for (o, xb) in out.chunks_exact_mut(Q8_K_BYTES).zip(x.chunks_exact(QK_K)) {
        let (mut max, mut am) = (0f32, 0f32);
        for &v in xb {
            if v.abs() > am {
                am = v.abs();
                max = v;
            }
        }
        let nan = amax(xb).is_nan();
        let iscale = if am == 0.0 { 0.0 } else { -127.0 / max };
        let d = if nan {
            f32::NAN
        } else if am == 0.0 {
            0.0
        } else {
            1.0 / iscale
        };
        o[..4].copy_from_slice(&d.to_le_bytes());
        for g in 0..QK_K / 16 {
            let mut sum = 0i32;
            for i in g * 16..(g + 1) * 16 {
                let qi = libm::rintf(iscale * xb[i]).clamp(-128.0, 127.0) as i8;
                o[4 + i] = qi as u8;
                sum += qi as i32;
            }
            o[260 + 2 * g..262 + 2 * g].copy_from_slice(&(sum as i16).to_le_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seeded uniform bytes and floats.
    use crate::testutil::Rng;

    type Deq = fn(&[u8], &mut [f32]);
    const TYPES: [(&str, usize, usize, Deq); 9] = [
        ("q4_0", QK, Q4_0_BYTES, dequant_q4_0),
        ("q4_1", QK, Q4_1_BYTES, dequant_q4_1),
        ("q5_0", QK, Q5_0_BYTES, dequant_q5_0),
        ("q5_1", QK, Q5_1_BYTES, dequant_q5_1),
        ("q2_k", QK_K, Q2_K_BYTES, dequant_q2_k),
        ("q3_k", QK_K, Q3_K_BYTES, dequant_q3_k),
        ("q4_k", QK_K, Q4_K_BYTES, dequant_q4_k),
        ("q5_k", QK_K, Q5_K_BYTES, dequant_q5_k),
        ("q6_k", QK_K, Q6_K_BYTES, dequant_q6_k),
    ];

    fn fixture(name: &str) -> (&'static [u8], &'static [u8]) {
        macro_rules! pair {
            ($n:literal) => {
                (
                    &include_bytes!(concat!("../tests/data/blocks/", $n, ".blocks"))[..],
                    &include_bytes!(concat!("../tests/data/blocks/", $n, ".f32"))[..],
                )
            };
        }
        match name {
            "q4_0" => pair!("q4_0"),
            "q4_1" => pair!("q4_1"),
            "q5_0" => pair!("q5_0"),
            "q5_1" => pair!("q5_1"),
            "q2_k" => pair!("q2_k"),
            "q3_k" => pair!("q3_k"),
            "q4_k" => pair!("q4_k"),
            "q5_k" => pair!("q5_k"),
            _ => pair!("q6_k"),
        }
    }

    /// Blocks (random bits, varied scales, a zero and a negative scale)
    /// dequantized by the `gguf` Python package (tools/make_block_fixtures.py):
    /// ours must agree bit for bit.
    #[test]
    fn dequantize_matches_gguf_py() {
        for (name, bl, bb, deq) in TYPES {
            let (blocks, want) = fixture(name);
            assert_eq!(blocks.len() % bb, 0, "{name}");
            let n_blocks = blocks.len() / bb;
            assert!(n_blocks >= 8, "{name}");
            assert_eq!(want.len(), n_blocks * bl * 4, "{name}");
            let mut out = [0f32; QK_K];
            for (i, b) in blocks.chunks_exact(bb).enumerate() {
                deq(b, &mut out[..bl]);
                for (j, o) in out[..bl].iter().enumerate() {
                    let k = (i * bl + j) * 4;
                    let w = f32::from_le_bytes([want[k], want[k + 1], want[k + 2], want[k + 3]]);
                    assert_eq!(
                        o.to_bits(),
                        w.to_bits(),
                        "{name} block {i} weight {j}: {o} vs {w}"
                    );
                }
            }
        }
    }

    fn deq_q8(a: &[u8], kind: &str) -> [f32; QK_K] {
        let mut out = [0f32; QK_K];
        match kind {
            "q8_0" => {
                for (b, o) in a.chunks_exact(Q8_0_BYTES).zip(out.chunks_exact_mut(QK)) {
                    for (o, &q) in o.iter_mut().zip(&b[2..]) {
                        *o = f16_at(b, 0) * q as i8 as f32;
                    }
                }
            }
            "q8_1" => {
                for (b, o) in a.chunks_exact(Q8_1_BYTES).zip(out.chunks_exact_mut(QK)) {
                    for (o, &q) in o.iter_mut().zip(&b[4..]) {
                        *o = f16_at(b, 0) * q as i8 as f32;
                    }
                }
            }
            _ => {
                let d = f32::from_le_bytes([a[0], a[1], a[2], a[3]]);
                for (o, &q) in out.iter_mut().zip(&a[4..260]) {
                    *o = d * q as i8 as f32;
                }
            }
        }
        out
    }

    fn quantize_q8_0(x: &[f32], out: &mut [u8]) {
        crate::quant::quantize_act(crate::quant::ActType::Q8_0, x, out);
    }

    type Dot = fn(&[u8], &[u8], usize) -> f32;

    /// Every dot product equals the float64 dot product of the dequantized
    /// weights with the dequantized activation blocks, over 1, 2 and 3
    /// blocks; the Q8_1 minimum term uses the block's stored sum `s`, so it
    /// is compared with that.
    #[test]
    fn dots_match_dequantized_float64() {
        let dots: [(&str, &str, Dot); 9] = [
            ("q4_0", "q8_0", dot_q4_0_q8_0),
            ("q4_1", "q8_1", dot_q4_1_q8_1),
            ("q5_0", "q8_0", dot_q5_0_q8_0),
            ("q5_1", "q8_1", dot_q5_1_q8_1),
            ("q2_k", "q8_k", dot_q2_k_q8_k),
            ("q3_k", "q8_k", dot_q3_k_q8_k),
            ("q4_k", "q8_k", dot_q4_k_q8_k),
            ("q5_k", "q8_k", dot_q5_k_q8_k),
            ("q6_k", "q8_k", dot_q6_k_q8_k),
        ];
        let mut rng = Rng(0x1234_5678_9abc_def1);
        for (ti, (name, kind, dot)) in dots.into_iter().enumerate() {
            let (_, bl, bb, deq) = TYPES[ti];
            let (blocks, _) = fixture(name);
            let ab = match kind {
                "q8_0" => Q8_0_BYTES,
                "q8_1" => Q8_1_BYTES,
                _ => Q8_K_BYTES,
            };
            for n_blocks in 1..=3 {
                // Under Miri (for undefined behaviour, not the arithmetic,
                // which runs natively) one start: all of them took 3 min.
                let starts = if cfg!(miri) { 1 } else { usize::MAX };
                for start in (0..blocks.len() / bb - n_blocks).take(starts) {
                    let w = &blocks[start * bb..(start + n_blocks) * bb];
                    let n = n_blocks * bl;
                    let x: [f32; 3 * QK_K] = core::array::from_fn(|_| rng.f() * 3.0);
                    let mut a = [0u8; 3 * Q8_K_BYTES];
                    match kind {
                        "q8_0" => quantize_q8_0(&x[..n], &mut a),
                        "q8_1" => quantize_q8_1(&x[..n], &mut a),
                        _ => quantize_q8_k(&x[..n], &mut a),
                    }
                    let (mut want, mut mag) = (0f64, 0f64);
                    let mut wf = [0f32; QK_K];
                    for b in 0..n_blocks {
                        deq(&w[b * bb..(b + 1) * bb], &mut wf[..bl]);
                        let xa = deq_q8(&a[b * ab..(b + 1) * ab], kind);
                        for i in 0..bl {
                            let p = wf[i] as f64 * xa[i] as f64;
                            want += p;
                            mag += p.abs();
                        }
                        if kind == "q8_1" {
                            // llama.cpp's minimum term: m * s, s stored.
                            let blk = &a[b * ab..(b + 1) * ab];
                            let sumq: i32 = blk[4..].iter().map(|&q| q as i8 as i32).sum();
                            let m = f16_at(&w[b * bb..], 2) as f64;
                            let exact = f16_at(blk, 0) as f64 * sumq as f64;
                            want += m * (f16_at(blk, 2) as f64 - exact);
                            mag += (m * exact).abs();
                        }
                    }
                    let got = dot(w, &a, n) as f64;
                    assert!(
                        (got - want).abs() <= 1e-5 * mag + 1e-6,
                        "{name} x {kind}, {n_blocks} blocks from {start}: {got} vs {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn q8_1_and_q8_k_quantization() {
        // Max |x| = 127: scale 1 and the quants are x rounded (half to even).
        let mut x = [0f32; QK_K];
        x[0] = 127.0;
        x[1] = 2.5;
        x[2] = -3.5;
        x[17] = 100.4;
        let mut a = [0u8; Q8_1_BYTES];
        quantize_q8_1(&x[..QK], &mut a);
        assert_eq!(f16_at(&a, 0), 1.0);
        let q: Vec<i8> = a[4..].iter().map(|&b| b as i8).collect();
        assert_eq!((q[0], q[1], q[2], q[17]), (127, 2, -4, 100));
        assert_eq!(f16_at(&a, 2), (127 + 2 - 4 + 100) as f32);
        // Q8_K: the largest-magnitude element maps to -127.
        let mut k = [0u8; Q8_K_BYTES];
        quantize_q8_k(&x, &mut k);
        let d = f32::from_le_bytes([k[0], k[1], k[2], k[3]]);
        assert_eq!(d, -1.0);
        assert_eq!(k[4] as i8, -127);
        assert_eq!(k[5] as i8, -2);
        assert_eq!(k[6] as i8, 4);
        let bsum0 = i16::from_le_bytes([k[260], k[261]]);
        assert_eq!(bsum0, -127 - 2 + 4);
        let bsum1 = i16::from_le_bytes([k[262], k[263]]);
        assert_eq!(bsum1, -100);
        // Zeros: d = 0, quants 0, no NaN.
        quantize_q8_k(&[0.0; QK_K], &mut k);
        assert!(k.iter().all(|&b| b == 0));
        quantize_q8_1(&[0.0; QK], &mut a);
        assert!(a.iter().all(|&b| b == 0));
        // Round trip within half a step; NaN makes the scale NaN.
        let mut rng = Rng(77);
        let y: [f32; QK_K] = core::array::from_fn(|_| rng.f() * 5.0);
        quantize_q8_k(&y, &mut k);
        let back = deq_q8(&k, "q8_k");
        let d = f32::from_le_bytes([k[0], k[1], k[2], k[3]]).abs();
        for (b, v) in back.iter().zip(&y) {
            assert!((b - v).abs() <= d / 2.0 * 1.0001, "{b} {v}");
        }
        let mut sums = [0i32; 16];
        for (i, &q) in k[4..260].iter().enumerate() {
            sums[i / 16] += q as i8 as i32;
        }
        for (g, s) in sums.iter().enumerate() {
            assert_eq!(
                i16::from_le_bytes([k[260 + 2 * g], k[261 + 2 * g]]) as i32,
                *s
            );
        }
        let mut z = y;
        z[9] = f32::NAN;
        quantize_q8_k(&z, &mut k);
        assert!(f32::from_le_bytes([k[0], k[1], k[2], k[3]]).is_nan());
        quantize_q8_1(&z[..QK], &mut a);
        assert!(f16_at(&a, 0).is_nan());
    }
}
