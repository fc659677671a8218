//! Fast kernels, chosen once at run time. On x86-64 the CPU is asked
//! (`cpuid`, and `xgetbv` for the OS's AVX state) whether it has AVX2, FMA
//! and F16C; without std there is no `is_x86_feature_detected!`, so this is
//! done by hand. AArch64 always has NEON; a WebAssembly module built with
//! `-C target-feature=+simd128` has simd128 (chosen at build time: an
//! engine without it refuses the module). Everything else runs the scalar
//! reference kernels of `quant`, which the fast ones are tested against.
//!
//! [`force_scalar`] switches the fast kernels off (tests, and hosts that
//! want the reference arithmetic).

use core::sync::atomic::{AtomicU8, Ordering};

/// 0: not probed yet; 1: scalar; 2: AVX2 + FMA + F16C; 3: also AVX-512
/// F, BW, VL, VBMI and VNNI.
static LEVEL: AtomicU8 = AtomicU8::new(0);
const SCALAR: u8 = 1;
const AVX2: u8 = 2;
const AVX512: u8 = 3;
const NEON: u8 = 4;
const SIMD128: u8 = 5;

/// Which kernels run (each level includes the ones below).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Scalar,
    Avx2,
    Avx512,
    /// AArch64's Advanced SIMD (always present there).
    Neon,
    /// WebAssembly's 128-bit SIMD, in a module built with
    /// `-C target-feature=+simd128` (then every engine that runs it has it).
    Simd128,
}

/// Whether the x86-64 AVX2 kernels (and the ones built on them) run.
#[inline]
fn x86_fast() -> bool {
    matches!(level(), Level::Avx2 | Level::Avx512)
}

fn probe() -> u8 {
    // Miri runs no cpuid (nor the F16C conversions the AVX2 kernels use):
    // under Miri the scalar kernels run.
    #[cfg(all(miri, target_arch = "x86_64"))]
    {
        SCALAR
    }
    #[cfg(all(not(miri), target_arch = "x86_64"))]
    {
        use core::arch::x86_64::__cpuid_count;
        let leaf0 = __cpuid_count(0, 0);
        if leaf0.eax < 7 {
            return SCALAR;
        }
        let (l1, l7) = (__cpuid_count(1, 0), __cpuid_count(7, 0));
        let fma = l1.ecx & (1 << 12) != 0;
        let osxsave = l1.ecx & (1 << 27) != 0;
        let avx = l1.ecx & (1 << 28) != 0;
        let f16c = l1.ecx & (1 << 29) != 0;
        let avx2 = l7.ebx & (1 << 5) != 0;
        if !(fma && osxsave && avx && f16c && avx2) {
            return SCALAR;
        }
        // The OS saves the YMM registers (XCR0 bits 1 and 2).
        // SAFETY: xgetbv is available when OSXSAVE is set (checked).
        #[allow(unsafe_code)]
        let xcr0 = unsafe { xgetbv0() };
        if xcr0 & 6 != 6 {
            return SCALAR;
        }
        // AVX-512 F (ebx 16), BW (30), VL (31), VBMI (ecx 1), VNNI (ecx 11),
        // and the OS saves the opmask and ZMM state (XCR0 bits 5-7).
        let f = l7.ebx & (1 << 16) != 0;
        let bw = l7.ebx & (1 << 30) != 0;
        let vl = l7.ebx & (1 << 31) != 0;
        let vbmi = l7.ecx & (1 << 1) != 0;
        let vnni = l7.ecx & (1 << 11) != 0;
        if f && bw && vl && vbmi && vnni && xcr0 & 0xe0 == 0xe0 {
            return AVX512;
        }
        AVX2
    }
    #[cfg(target_arch = "aarch64")]
    {
        NEON
    }
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        SIMD128
    }
    #[cfg(not(any(
        target_arch = "x86_64",
        target_arch = "aarch64",
        all(target_arch = "wasm32", target_feature = "simd128")
    )))]
    {
        SCALAR
    }
}

/// Whether the CPU has AVX512_BF16 (`vdpbf16ps`; cpuid leaf 7 subleaf 1,
/// eax bit 5), which the AVX-512 BF16 tile needs besides the AVX-512 level
/// (without it BF16 gets a tile of shifts and FMAs). Asked once.
#[cfg(target_arch = "x86_64")]
fn avx512_bf16() -> bool {
    static BF16: AtomicU8 = AtomicU8::new(0);
    let mut v = BF16.load(Ordering::Relaxed);
    if v == 0 {
        #[cfg(miri)]
        let has = false;
        #[cfg(not(miri))]
        let has = {
            use core::arch::x86_64::__cpuid_count;
            __cpuid_count(0, 0).eax >= 7
                && __cpuid_count(7, 0).eax >= 1
                && __cpuid_count(7, 1).eax & (1 << 5) != 0
        };
        v = if has { 2 } else { 1 };
        BF16.store(v, Ordering::Relaxed);
    }
    v == 2
}

#[cfg(all(target_arch = "x86_64", not(miri)))]
#[target_feature(enable = "xsave")]
#[allow(unsafe_code)]
fn xgetbv0() -> u64 {
    // SAFETY: reading XCR0 has no side effect; xsave is enabled here.
    unsafe { core::arch::x86_64::_xgetbv(0) }
}

/// The kernels in use (probing the CPU on first call).
#[inline]
pub fn level() -> Level {
    let mut l = LEVEL.load(Ordering::Relaxed);
    if l == 0 {
        l = probe();
        // A concurrent `force_scalar` wins over the probe.
        let _ = LEVEL.compare_exchange(0, l, Ordering::Relaxed, Ordering::Relaxed);
        l = LEVEL.load(Ordering::Relaxed);
    }
    match l {
        NEON => Level::Neon,
        SIMD128 => Level::Simd128,
        AVX512 => Level::Avx512,
        AVX2 => Level::Avx2,
        _ => Level::Scalar,
    }
}

/// Use the scalar reference kernels from now on (`true`), or whatever the
/// CPU supports (`false`). Meant for tests and benchmarks; changing it while
/// another thread decodes gives that decode a mix of both (each result is
/// still correct to rounding).
pub fn force_scalar(scalar: bool) {
    limit(if scalar { Level::Scalar } else { Level::Neon });
}

/// Use at most the kernels of level `max` (and at most what the CPU has)
/// from now on; see [`force_scalar`].
pub fn limit(max: Level) {
    let max = match max {
        Level::Scalar => SCALAR,
        Level::Avx2 => AVX2,
        Level::Avx512 => AVX512,
        Level::Neon => NEON,
        Level::Simd128 => SIMD128,
    };
    let p = probe();
    // NEON and simd128 are all or nothing; the x86 levels nest.
    let l = if (p == NEON || p == SIMD128) && max != SCALAR {
        p
    } else {
        p.min(max)
    };
    LEVEL.store(l, Ordering::Relaxed);
}

/// A fast dot-product kernel: needs the CPU features of its level.
type Kernel = unsafe fn(&[u8], &[u8], usize) -> f32;

/// The AVX2 kernel for weights of type `t`, if there is one.
fn avx2_kernel(t: crate::quant::WeightType) -> Option<Kernel> {
    #[cfg(target_arch = "x86_64")]
    {
        use crate::quant::WeightType as W;
        Some(match t {
            W::Q8_0 => avx2_q8::dot::<{ avx2_q8::Q8_0 }>,
            W::Q4_0 => avx2_q8::dot::<{ avx2_q8::Q4_0 }>,
            W::F16 => x86::dot_f16,
            W::F32 => x86::dot_f32,
            W::Q4_K => avx2::dot_q4_k,
            W::Q6_K => avx2::dot_q6_k,
            W::Q4_1 => avx2_q8::dot::<{ avx2_q8::Q4_1 }>,
            W::Q5_0 => avx2_q8::dot::<{ avx2_q8::Q5_0 }>,
            W::Q5_1 => avx2_q8::dot::<{ avx2_q8::Q5_1 }>,
            W::Q2_K => avx2::dot_q2_k,
            W::Q3_K => avx2::dot_q3_k,
            W::Q5_K => avx2::dot_q5_k,
            W::BF16 => avx2::dot_bf16,
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = t;
        None
    }
}

/// A kernel for four activation rows at once (each weight block loaded and
/// unpacked once); every result is bit-identical to the one-row kernel's.
type Kernel4 = unsafe fn(&[u8], [&[u8]; 4], usize) -> [f32; 4];

fn avx2_kernel4(t: crate::quant::WeightType) -> Option<Kernel4> {
    #[cfg(target_arch = "x86_64")]
    {
        use crate::quant::WeightType as W;
        Some(match t {
            W::F16 => x86::dot4_f16,
            W::BF16 => avx2::dot4_bf16,
            W::Q2_K => avx2::dot4_q2_k,
            W::Q3_K => avx2::dot4_q3_k,
            W::Q4_K => avx2::dot4_q4_k,
            W::Q5_K => avx2::dot4_q5_k,
            W::Q6_K => avx2::dot4_q6_k,
            _ => return None,
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = t;
        None
    }
}

/// Whether [`dot_act4`] has a kernel for weights of type `t` now.
#[inline]
pub fn has_four_row(t: crate::quant::WeightType) -> bool {
    x86_fast() && avx2_kernel4(t).is_some()
}

/// Four dot products of one weight row with four converted activation
/// rows, when a fast kernel exists; bit-identical to four [`dot_act`] calls.
#[inline]
#[allow(unsafe_code)]
pub fn dot_act4(
    t: crate::quant::WeightType,
    row: &[u8],
    xa: [&[u8]; 4],
    n: usize,
) -> Option<[f32; 4]> {
    if !x86_fast() {
        return None;
    }
    let f = avx2_kernel4(t)?;
    // SAFETY: as in `dot_act`.
    Some(unsafe { f(row, xa, n) })
}

/// Attention scores over an f16 key cache: `out[t] = dot(key t, q) *
/// scale`, key t being `k[t * stride..][..q.len()]`, summed in the F16
/// matrix kernel's 16-lane order (llama.cpp's); one dispatch for a whole row
/// of keys. False (nothing done) without fast kernels.
#[inline]
#[allow(unsafe_code)]
pub fn scores_f16(k: &[u16], stride: usize, q: &[u16], scale: f32, out: &mut [f32]) -> bool {
    let n = q.len();
    let fits = out.is_empty() || (out.len() - 1) * stride + n <= k.len();
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    if fits && level() == Level::Simd128 {
        // The scalar loop's order and bits (see `wasm::scores_f16`).
        wasm::scores_f16(k, stride, q, scale, out);
        return true;
    }
    if !x86_fast() || !fits {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: AVX2, FMA and F16C are present (level checked); every key
        // lies inside `k` (checked above, and sliced again inside).
        unsafe { x86::scores_f16(k, stride, q, scale, out) };
        true
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = scale;
        false
    }
}

/// The attention output over an f16 value cache: `o += r(p[t]) * value t`
/// for every t, value t being `v[t * stride..][..o.len()]` and `r` rounding
/// to f16 and back when `round` (llama.cpp's f16 probabilities); the same
/// bits as `o += p * v` per element (a multiply and an add, each rounded).
/// False (nothing done) without fast kernels.
#[inline]
#[allow(unsafe_code)]
pub fn mix_f16(o: &mut [f32], p: &[f32], v: &[u16], stride: usize, round: bool) -> bool {
    let fits = p.is_empty() || (p.len() - 1) * stride + o.len() <= v.len();
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    if fits && level() == Level::Simd128 {
        wasm::mix_f16(o, p, v, stride, round);
        return true;
    }
    if !x86_fast() || !fits {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: as for `scores_f16`.
        unsafe { x86::mix_f16(o, p, v, stride, round) };
        true
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = round;
        false
    }
}

/// `Some(dot)` when a fast kernel exists for weights of type `t` meeting
/// inputs in their converted form (see `quant::dot_act`).
#[inline]
#[allow(unsafe_code)]
pub fn dot_act(t: crate::quant::WeightType, row: &[u8], xa: &[u8], n: usize) -> Option<f32> {
    let f = fast_kernel(t)?;
    // SAFETY: the kernel of the level in use, whose features the probe
    // found (AVX2 kernels need AVX2, FMA and F16C; NEON is always there).
    Some(unsafe { f(row, xa, n) })
}

/// Whether matrix products with weights of type `t` run a fast kernel at
/// the level in use (else the scalar reference): for benchmarks and tools
/// that want to say which path a file takes.
pub fn has_fast_kernel(t: crate::quant::WeightType) -> bool {
    wide(t).is_some() || fast_kernel(t).is_some()
}

/// The one-row kernel of the level in use for weights of type `t`.
fn fast_kernel(t: crate::quant::WeightType) -> Option<Kernel> {
    match level() {
        Level::Avx2 | Level::Avx512 => avx2_kernel(t),
        Level::Neon => neon_kernel(t),
        Level::Simd128 => wasm_kernel(t),
        Level::Scalar => None,
    }
}

/// The NEON kernel for weights of type `t`, if there is one.
fn neon_kernel(t: crate::quant::WeightType) -> Option<Kernel> {
    #[cfg(target_arch = "aarch64")]
    {
        use crate::quant::WeightType as W;
        Some(match t {
            W::Q8_0 => neon::dot_q8_0,
            W::Q4_0 => neon::dot_q4_0,
            W::F32 => neon::dot_f32,
            W::Q4_K => neon::dot_q4_k,
            W::Q6_K => neon::dot_q6_k,
            W::F16 => neon::dot_f16,
            W::Q5_K => neon::dot_q5_k,
            W::Q3_K => neon::dot_q3_k,
            W::Q2_K => neon::dot_q2_k,
            _ => return None,
        })
    }
    #[cfg(not(target_arch = "aarch64"))]
    {
        let _ = t;
        None
    }
}

/// The WebAssembly simd128 kernel for weights of type `t`, if there is one.
fn wasm_kernel(t: crate::quant::WeightType) -> Option<Kernel> {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        use crate::quant::WeightType as W;
        Some(match t {
            W::F16 => wasm::dot_f16,
            W::F32 => wasm::dot_f32,
            W::Q8_0 => wasm::dot_q8_0,
            W::Q4_0 => wasm::dot_q4_0,
            _ => return None,
        })
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    {
        let _ = t;
        None
    }
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod wasm;

#[cfg(target_arch = "x86_64")]
mod vexp;

/// `x[i] = exp(x[i] - max)` with the vector `exp` of the level in use
/// (see `vexp`: llama.cpp's polynomial, within 2 ulp of `expf`), returning
/// the sum of the values; `None` (nothing done) without fast kernels.
#[inline]
#[allow(unsafe_code)]
pub fn exp_sub(x: &mut [f32], max: f32) -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    {
        match level() {
            // SAFETY: each form runs only at a level whose features it needs.
            Level::Avx512 => return Some(unsafe { vexp::exp_sub_avx512(x, max) }),
            // SAFETY: as above.
            Level::Avx2 => return Some(unsafe { vexp::exp_sub_avx2(x, max) }),
            _ => {}
        }
    }
    let _ = (x, max);
    None
}

/// `g[i] = silu(g[i]) * u[i]` with the vector `exp` of the level in use;
/// false (nothing done) without fast kernels.
#[inline]
#[allow(unsafe_code)]
pub fn swiglu(g: &mut [f32], u: &[f32]) -> bool {
    if u.len() < g.len() {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    {
        match level() {
            Level::Avx512 => {
                // SAFETY: as in `exp_sub`.
                unsafe { vexp::swiglu_avx512(g, u) };
                return true;
            }
            Level::Avx2 => {
                // SAFETY: as in `exp_sub`.
                unsafe { vexp::swiglu_avx2(g, u) };
                return true;
            }
            _ => {}
        }
    }
    false
}

#[cfg(target_arch = "aarch64")]
mod neon;

#[cfg(target_arch = "x86_64")]
mod avx512;

#[cfg(target_arch = "x86_64")]
mod avx2;

#[cfg(target_arch = "x86_64")]
mod avx2_f16;

#[cfg(target_arch = "x86_64")]
mod avx2_q8;

/// The AVX2 tiles of the 32-weight block types (Q4_0, Q4_1, Q5_0, Q5_1,
/// Q8_0) over inputs prepared in their own layout (`avx2_q8`: llama.cpp's
/// Q8_0/Q8_1 values): 8 rows x 1 to 4 or 8 inputs per call, each result
/// bit-identical to the one-input kernel [`dot_act`] uses for these types
/// at the AVX2 level. A value exists only where the CPU has AVX2, FMA and
/// F16C.
#[derive(Clone, Copy)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub struct QTiles {
    k: u8,
}

/// The AVX2 tiles for weights of type `t`, if the fast x86 kernels are in
/// use and `t` is one of the 32-weight block types.
pub fn qtiles(t: crate::quant::WeightType) -> Option<QTiles> {
    #[cfg(target_arch = "x86_64")]
    {
        use crate::quant::WeightType as W;
        if !x86_fast() {
            return None;
        }
        let k = match t {
            W::Q4_0 => avx2_q8::Q4_0,
            W::Q4_1 => avx2_q8::Q4_1,
            W::Q5_0 => avx2_q8::Q5_0,
            W::Q5_1 => avx2_q8::Q5_1,
            W::Q8_0 => avx2_q8::Q8_0,
            _ => return None,
        };
        Some(QTiles { k })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = t;
        None
    }
}

impl QTiles {
    /// Bytes of one prepared input of `n` values.
    pub fn row_bytes(&self, n: usize) -> usize {
        #[cfg(target_arch = "x86_64")]
        {
            avx2_q8::row_bytes(n)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            n
        }
    }

    /// Prepares input `x` into `out` ([`Self::row_bytes`]).
    #[allow(unsafe_code)]
    pub fn prepare(&self, x: &[f32], out: &mut [u8]) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `block`.
        unsafe {
            avx2_q8::prepare_of(self.k, x, out)
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (x, out);
    }

    /// `out[c][r] = dot(row r of w, input c)`, `w` whole rows of `wrb`
    /// bytes (`n` weights each), `a` 1 to 4 or 8 prepared inputs (`out[c]` as
    /// long as there are rows). The same bits whatever the grouping.
    #[allow(unsafe_code)]
    pub fn block(&self, w: &[u8], wrb: usize, a: &[&[u8]], n: usize, out: &mut [&mut [f32]]) {
        assert!(out.iter().all(|o| o.len() * wrb == w.len()));
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `QTiles` exists only where the CPU has AVX2, FMA and F16C.
        unsafe {
            avx2_q8::block_of(self.k, w, wrb, a, n, out)
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (w, wrb, a, n, out);
    }
}

/// The AVX2 tiles of F16 and BF16 weights over inputs prepared as f32
/// (`avx2_f16`): several rows x up to four inputs per call, each result
/// bit-identical to the one-input kernels `x86::dot_f16` and
/// `avx2::dot_bf16` (on the inputs rounded to f16 or bf16). A value exists
/// only where the CPU has AVX2, FMA and F16C, or (F16 only, `wasm`'s
/// tiles, with the scalar reference's bits) at the simd128 level.
#[derive(Clone, Copy)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub struct Tiles {
    bf16: bool,
}

/// The AVX2 F16/BF16 tiles for weights of type `t`, if the fast kernels
/// are in use and `t` is F16 or BF16; at the simd128 level, the F16 tiles
/// of `wasm` (the same promises, and the scalar reference's bits).
pub fn tiles(t: crate::quant::WeightType) -> Option<Tiles> {
    use crate::quant::WeightType as W;
    if cfg!(all(target_arch = "wasm32", target_feature = "simd128")) && level() == Level::Simd128 {
        return (t == W::F16).then_some(Tiles { bf16: false });
    }
    if !cfg!(target_arch = "x86_64") || !x86_fast() {
        return None;
    }
    match t {
        W::F16 => Some(Tiles { bf16: false }),
        W::BF16 => Some(Tiles { bf16: true }),
        _ => None,
    }
}

impl Tiles {
    /// Bytes of one prepared input of `n` values.
    pub fn row_bytes(&self, n: usize) -> usize {
        4 * n
    }

    /// Prepares input `x` into `out` ([`Self::row_bytes`]): the values the
    /// scalar reference multiplies (rounded to f16 or bf16), as f32.
    #[allow(unsafe_code)]
    pub fn prepare(&self, x: &[f32], out: &mut [u8]) {
        #[cfg(target_arch = "x86_64")]
        if self.bf16 {
            // SAFETY: `Tiles` exists only where the CPU has AVX2, FMA and
            // F16C.
            unsafe { avx2_f16::prepare::<{ avx2_f16::BF16 }>(x, out) }
        } else {
            // SAFETY: as above.
            unsafe { avx2_f16::prepare::<{ avx2_f16::F16 }>(x, out) }
        }
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        wasm::prepare_f16(x, out);
        #[cfg(not(any(
            target_arch = "x86_64",
            all(target_arch = "wasm32", target_feature = "simd128")
        )))]
        let _ = (x, out);
    }

    /// `out[c][r] = dot(row r of w, input c)`, `w` whole rows of `wrb`
    /// bytes (`n` weights each), `a` 1 to 4 prepared inputs (`out[c]` as
    /// long as there are rows). The same bits whatever the grouping.
    #[allow(unsafe_code)]
    pub fn block(&self, w: &[u8], wrb: usize, a: &[&[u8]], n: usize, out: &mut [&mut [f32]]) {
        assert!(out.iter().all(|o| o.len() * wrb == w.len()));
        #[cfg(target_arch = "x86_64")]
        if self.bf16 {
            // SAFETY: as in `prepare`.
            unsafe { avx2_f16::block::<{ avx2_f16::BF16 }>(w, wrb, a, n, out) }
        } else {
            // SAFETY: as in `prepare`.
            unsafe { avx2_f16::block::<{ avx2_f16::F16 }>(w, wrb, a, n, out) }
        }
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        wasm::block_f16(w, wrb, a, n, out);
        #[cfg(not(any(
            target_arch = "x86_64",
            all(target_arch = "wasm32", target_feature = "simd128")
        )))]
        let _ = (w, wrb, a, n, out);
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2_kq;

/// The AVX2 tiles of the K-quants over inputs prepared as Q8_K blocks
/// (`avx2_kq`): several rows x 1 to 8 inputs per call, each result
/// bit-identical to the one-input kernel (`dot_act`). A value exists only
/// at the AVX2 level (AVX2, FMA and F16C present, no AVX-512 in use).
#[derive(Clone, Copy)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub struct KTiles {
    kind: u8,
}

/// The AVX2 K-quant tiles for weights of type `t`, if the AVX2 level is in
/// use and `t` is a K-quant.
pub fn ktiles(t: crate::quant::WeightType) -> Option<KTiles> {
    if !cfg!(target_arch = "x86_64") || level() != Level::Avx2 {
        return None;
    }
    #[cfg(target_arch = "x86_64")]
    {
        use crate::quant::WeightType as W;
        use avx2_kq as k;
        let kind = match t {
            W::Q2_K => k::Q2_K,
            W::Q3_K => k::Q3_K,
            W::Q4_K => k::Q4_K,
            W::Q5_K => k::Q5_K,
            W::Q6_K => k::Q6_K,
            _ => return None,
        };
        Some(KTiles { kind })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = t;
        None
    }
}

impl KTiles {
    /// Bytes of one prepared input of `n` values (Q8_K blocks).
    pub fn row_bytes(&self, n: usize) -> usize {
        crate::quant::ActType::Q8_K.row_bytes(n)
    }

    /// Prepares input `x` into `out` ([`Self::row_bytes`]): the bytes of
    /// `quant::quantize_act` to Q8_K.
    #[allow(unsafe_code)]
    pub fn prepare(&self, x: &[f32], out: &mut [u8]) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `KTiles` exists only where the CPU has AVX2, FMA and F16C.
        unsafe {
            avx2_kq::prepare(x, out)
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (x, out);
    }

    /// The most inputs of one [`Self::block`].
    pub const MAX_C: usize = 8;

    /// `out[c][r] = dot(row r of w, input c)`, `w` whole rows of `wrb`
    /// bytes (`n` weights each), `a` 1 to [`Self::MAX_C`] prepared inputs
    /// (`out[c]` as long as there are rows). The same bits whatever the
    /// grouping.
    #[allow(unsafe_code)]
    pub fn block(&self, w: &[u8], wrb: usize, a: &[&[u8]], n: usize, out: &mut [&mut [f32]]) {
        assert!((1..=Self::MAX_C).contains(&a.len()) && out.len() == a.len());
        assert!(out.iter().all(|o| o.len() * wrb == w.len()));
        #[cfg(target_arch = "x86_64")]
        {
            use avx2_kq as k;
            let f = match self.kind {
                k::Q2_K => k::block::<{ k::Q2_K }>,
                k::Q3_K => k::block::<{ k::Q3_K }>,
                k::Q4_K => k::block::<{ k::Q4_K }>,
                k::Q5_K => k::block::<{ k::Q5_K }>,
                _ => k::block::<{ k::Q6_K }>,
            };
            // SAFETY: as in `prepare`.
            unsafe { f(w, wrb, a, n, out) }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (w, wrb, a, n, out);
    }
}

/// The AVX-512 matrix tiles for one weight type, with their input layout.
/// Exists only when the AVX-512 level is in use.
pub struct Wide {
    #[cfg(target_arch = "x86_64")]
    t: crate::quant::WeightType,
    #[cfg(target_arch = "x86_64")]
    k: avx512::Kernels,
    /// Elsewhere there are none: no value of this type exists.
    #[cfg(not(target_arch = "x86_64"))]
    never: core::convert::Infallible,
}

#[cfg(not(target_arch = "x86_64"))]
impl Wide {
    pub fn row_bytes(&self, _: usize, _: bool) -> usize {
        match self.never {}
    }
    pub fn prepare(&self, _: &[f32], _: &mut [u8], _: bool) {
        match self.never {}
    }
    pub fn c_big(&self) -> usize {
        match self.never {}
    }
    pub fn fewer(&self) -> bool {
        match self.never {}
    }
    pub fn block(&self, _: &[u8], _: usize, _: &[&[u8]], _: usize, _: &mut [&mut [f32]], _: bool) {
        match self.never {}
    }
}

/// The AVX-512 tiles for weights of type `t`, if the level is in use and
/// there are.
pub fn wide(t: crate::quant::WeightType) -> Option<Wide> {
    #[cfg(target_arch = "x86_64")]
    {
        if level() != Level::Avx512 {
            return None;
        }
        Some(Wide {
            t,
            k: avx512::kernels(t)?,
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = t;
        None
    }
}

#[cfg(target_arch = "x86_64")]
impl Wide {
    /// Bytes of one prepared input row of `n` values, in a batch (more
    /// than one input) or not.
    pub fn row_bytes(&self, n: usize, batch: bool) -> usize {
        avx512::row_bytes(self.t, n, batch)
    }

    /// Prepares one input row (`out` of [`Self::row_bytes`]).
    pub fn prepare(&self, x: &[f32], out: &mut [u8], batch: bool) {
        // SAFETY: `Wide` exists only at the AVX-512 level, whose features
        // `prepare` needs.
        #[allow(unsafe_code)]
        unsafe {
            avx512::prepare(self.t, x, out, batch)
        }
    }

    /// Inputs per call of [`Self::block`] in a batch (else one).
    pub fn c_big(&self) -> usize {
        self.k.c_big
    }

    /// Whether [`Self::block`] also takes fewer than [`Self::c_big`]
    /// inputs at once (else it takes one or `c_big`).
    pub fn fewer(&self) -> bool {
        self.k.fewer
    }

    /// `out[c][r] = dot(row r of w, input c)`, with `w` whole rows of `wrb`
    /// bytes, and `a` holding one or [`Self::c_big`] prepared inputs of `n`
    /// values (or any number up to it, where [`Self::fewer`]; `out[c]` as
    /// long as there are rows). The same bits whatever the grouping of rows
    /// and inputs.
    pub fn block(
        &self,
        w: &[u8],
        wrb: usize,
        a: &[&[u8]],
        n: usize,
        out: &mut [&mut [f32]],
        batch: bool,
    ) {
        let c = self.k.c_big;
        assert!(a.len() == 1 || a.len() == c || (self.k.fewer && a.len() < c && !a.is_empty()));
        assert!(out.len() == a.len() && out.iter().all(|o| o.len() * wrb == w.len()));
        // SAFETY: `Wide` exists only at the AVX-512 level, whose features
        // the kernels need (BF16's `vdpbf16ps` one only with AVX512_BF16).
        #[allow(unsafe_code)]
        unsafe {
            (self.k.block)(w, wrb, a, n, out, batch)
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod x86 {
    //! AVX2 + FMA + F16C kernels. They are safe `#[target_feature]`
    //! functions: calling one is only allowed where the features are known
    //! present (`super::dot_act` checks). The only unsafe operations are the
    //! unaligned loads, each from a slice whose length was checked by
    //! indexing just before.
    use crate::quant::le_f32;
    use core::arch::x86_64::*;

    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) fn load256(b: &[u8]) -> __m256i {
        let b = &b[..32];
        // SAFETY: 32 readable bytes (checked above); loadu has no alignment need.
        unsafe { _mm256_loadu_si256(b.as_ptr().cast()) }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) fn load128(b: &[u8]) -> __m128i {
        let b = &b[..16];
        // SAFETY: 16 readable bytes (checked above).
        unsafe { _mm_loadu_si128(b.as_ptr().cast()) }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    fn load_f32x8(b: &[u8]) -> __m256 {
        let b = &b[..32];
        // SAFETY: 32 readable bytes (checked above).
        unsafe { _mm256_loadu_ps(b.as_ptr().cast()) }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) fn hsum(v: __m256) -> f32 {
        let lo = _mm256_castps256_ps128(v);
        let hi = _mm256_extractf128_ps(v, 1);
        let s = _mm_add_ps(lo, hi);
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_movehdup_ps(s));
        _mm_cvtss_f32(s)
    }

    /// An f16 scale read from bytes, converted by F16C (the software
    /// conversion costs more than the block's integer work).
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) fn f16(b: &[u8]) -> f32 {
        let bits = u16::from_le_bytes([b[0], b[1]]);
        _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub fn scores_f16(k: &[u16], stride: usize, q: &[u16], scale: f32, out: &mut [f32]) {
        let n = q.len();
        let q: &[u8] = bytemuck::cast_slice(q);
        for (t, s) in out.iter_mut().enumerate() {
            let kt: &[u8] = bytemuck::cast_slice(&k[t * stride..][..n]);
            *s = dot_f16(kt, q, n) * scale;
        }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub fn mix_f16(o: &mut [f32], p: &[f32], v: &[u16], stride: usize, round: bool) {
        let n = o.len();
        for (t, &pt) in p.iter().enumerate() {
            // Round to nearest even, as `half` does.
            let pt = if round {
                _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtps_ph::<0>(_mm_set_ss(pt))))
            } else {
                pt
            };
            axpy_f16(o, pt, bytemuck::cast_slice(&v[t * stride..][..n]));
        }
    }

    /// 16 lanes in one pass over the row (two 8-lane accumulators side by
    /// side), summed as a 512-bit reduction would: the order llama.cpp's
    /// F16 matrix product uses on AVX-512 machines, so that the f16-rounded
    /// inputs downstream round the same way as often as possible.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub fn dot_f16(w: &[u8], a: &[u8], n: usize) -> f32 {
        let (w, a) = (&w[..n * 2], &a[..n * 2]);
        let (mut lo, mut hi) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let full = n / 16 * 16;
        for (wc, ac) in w[..full * 2]
            .chunks_exact(32)
            .zip(a[..full * 2].chunks_exact(32))
        {
            lo = _mm256_fmadd_ps(
                _mm256_cvtph_ps(load128(wc)),
                _mm256_cvtph_ps(load128(ac)),
                lo,
            );
            hi = _mm256_fmadd_ps(
                _mm256_cvtph_ps(load128(&wc[16..])),
                _mm256_cvtph_ps(load128(&ac[16..])),
                hi,
            );
        }
        let mut sum = hsum(_mm256_add_ps(lo, hi));
        for j in full..n {
            sum += f16(&w[2 * j..]) * f16(&a[2 * j..]);
        }
        sum
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub fn dot4_f16(w: &[u8], a: [&[u8]; 4], n: usize) -> [f32; 4] {
        let w = &w[..n * 2];
        let a = a.map(|a| &a[..n * 2]);
        let mut lo = [_mm256_setzero_ps(); 4];
        let mut hi = [_mm256_setzero_ps(); 4];
        let full = n / 16 * 16;
        for (i, wc) in w[..full * 2].chunks_exact(32).enumerate() {
            let wl = _mm256_cvtph_ps(load128(wc));
            let wh = _mm256_cvtph_ps(load128(&wc[16..]));
            for k in 0..4 {
                let ac = &a[k][32 * i..32 * i + 32];
                lo[k] = _mm256_fmadd_ps(wl, _mm256_cvtph_ps(load128(ac)), lo[k]);
                hi[k] = _mm256_fmadd_ps(wh, _mm256_cvtph_ps(load128(&ac[16..])), hi[k]);
            }
        }
        let mut out = [0f32; 4];
        for k in 0..4 {
            let mut sum = hsum(_mm256_add_ps(lo[k], hi[k]));
            for j in full..n {
                sum += f16(&w[2 * j..]) * f16(&a[k][2 * j..]);
            }
            out[k] = sum;
        }
        out
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub fn axpy_f16(o: &mut [f32], p: f32, v: &[u8]) {
        let n = o.len();
        let full = n / 8 * 8;
        let pv = _mm256_set1_ps(p);
        for (oc, vc) in o[..full]
            .chunks_exact_mut(8)
            .zip(v[..full * 2].chunks_exact(16))
        {
            let ob = &mut oc[..8];
            // SAFETY: 8 readable floats (the chunk).
            let cur = unsafe { _mm256_loadu_ps(ob.as_ptr()) };
            let x = _mm256_cvtph_ps(load128(vc));
            // Multiply then add (two roundings), as the scalar `o += p * x`.
            let r = _mm256_add_ps(cur, _mm256_mul_ps(pv, x));
            // SAFETY: 8 writable floats (the chunk).
            unsafe { _mm256_storeu_ps(ob.as_mut_ptr(), r) };
        }
        for j in full..n {
            o[j] += p * f16(&v[2 * j..]);
        }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub fn dot_f32(w: &[u8], a: &[u8], n: usize) -> f32 {
        let (w, a) = (&w[..n * 4], &a[..n * 4]);
        let mut acc = [_mm256_setzero_ps(); 4];
        let full = n / 32 * 32;
        for (wc, ac) in w[..full * 4]
            .chunks_exact(128)
            .zip(a[..full * 4].chunks_exact(128))
        {
            for (k, acc) in acc.iter_mut().enumerate() {
                let x = load_f32x8(&wc[32 * k..]);
                let y = load_f32x8(&ac[32 * k..]);
                *acc = _mm256_fmadd_ps(x, y, *acc);
            }
        }
        let s = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
        let mut sum = hsum(s);
        for j in full..n {
            sum += le_f32(&w[4 * j..]) * le_f32(&a[4 * j..]);
        }
        sum
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::{dot_act_scalar, quantize_act, WeightType as W};

    use crate::testutil::Rng;

    /// Rows of each type with a fast kernel, of odd lengths, at unaligned
    /// offsets: the fast kernel equals the scalar reference to rounding.
    #[test]
    fn fast_kernels_match_the_scalar_reference() {
        if probe() == SCALAR {
            // Nothing to compare on this CPU; say so rather than pass silently.
            std::println!("no fast kernels on this CPU: scalar only");
            return;
        }
        let mut rng = Rng(99);
        let mut checked = 0;
        for t in [
            W::Q8_0,
            W::Q4_0,
            W::F16,
            W::F32,
            W::Q4_K,
            W::Q6_K,
            W::Q4_1,
            W::Q5_0,
            W::Q5_1,
            W::Q2_K,
            W::Q3_K,
            W::Q5_K,
            W::BF16,
        ] {
            for n_blocks in [1usize, 2, 3, 5, 7, 33] {
                let n = n_blocks * t.block_len().max(32) + if t.block_len() == 1 { 5 } else { 0 };
                // Weights: quantize random values into the type's blocks.
                let x: std::vec::Vec<f32> = (0..n).map(|_| rng.f() * 2.0).collect();
                let wv: std::vec::Vec<f32> = (0..n).map(|_| rng.f()).collect();
                let at = t.act_type();
                let wbytes = match t {
                    W::Q4_0
                    | W::Q4_K
                    | W::Q6_K
                    | W::Q4_1
                    | W::Q5_0
                    | W::Q5_1
                    | W::Q2_K
                    | W::Q3_K
                    | W::Q5_K => {
                        // Random quant bits, finite scales (d, and m or
                        // dmin where there is one) at their offsets.
                        let bb = t.block_bytes();
                        let mut b = std::vec![0u8; n / t.block_len() * bb];
                        for v in b.iter_mut() {
                            *v = (rng.f().abs() * 255.0) as u8;
                        }
                        let offs: &[usize] = match t {
                            W::Q6_K => &[208],
                            W::Q3_K => &[108],
                            W::Q2_K => &[80, 82],
                            W::Q4_K | W::Q5_K | W::Q4_1 | W::Q5_1 => &[0, 2],
                            _ => &[0],
                        };
                        for blk in b.chunks_exact_mut(bb) {
                            for &o in offs {
                                let d = half::f16::from_f32(0.01 + rng.f().abs());
                                blk[o..o + 2].copy_from_slice(&d.to_bits().to_le_bytes());
                            }
                        }
                        b
                    }
                    _ => {
                        let mut b = std::vec![0u8; at.row_bytes(n)];
                        quantize_act(at, &wv, &mut b);
                        b
                    }
                };
                let mut xa = std::vec![0u8; at.row_bytes(n)];
                quantize_act(at, &x, &mut xa);
                for off in 0..3 {
                    let mut wbuf = std::vec![0u8; wbytes.len() + off];
                    wbuf[off..].copy_from_slice(&wbytes);
                    let mut abuf = std::vec![0u8; xa.len() + off];
                    abuf[off..].copy_from_slice(&xa);
                    let Some(k) = (match probe() {
                        NEON => neon_kernel(t),
                        SIMD128 => wasm_kernel(t),
                        _ => avx2_kernel(t),
                    }) else {
                        continue;
                    };
                    // SAFETY: the probe found the kernel's features.
                    #[allow(unsafe_code)]
                    let fast = unsafe { k(&wbuf[off..], &abuf[off..], n) };
                    let slow = dot_act_scalar(t, &wbuf[off..], &abuf[off..], n);
                    let tol = 1e-5 * (n as f32).sqrt() * slow.abs().max(1.0);
                    assert!(
                        (fast - slow).abs() <= tol,
                        "{t:?} n={n} off={off}: {fast} vs {slow}"
                    );
                    checked += 1;
                }
            }
        }
        let kinds = match probe() {
            NEON => 9,
            SIMD128 => 4,
            _ => 13,
        };
        assert_eq!(checked, kinds * 6 * 3);
    }

    /// Runs `block` (a tile over whole rows of `wrb` bytes) on `c` inputs
    /// for each `c` of `cs`, inputs `2..2 + c` of `inputs` (wrapping, so
    /// that groups start anywhere), the `nr` rows split at each of `cuts`
    /// into two calls (an empty one included), and asserts every output has
    /// the bits of `one` (by input and row). Returns the outputs checked.
    #[cfg(target_arch = "x86_64")]
    #[allow(clippy::too_many_arguments, clippy::type_complexity)]
    fn assert_groupings(
        what: &str,
        w: &[u8],
        wrb: usize,
        nr: usize,
        inputs: &[&[u8]],
        one: &[std::vec::Vec<u32>],
        cs: &[usize],
        cuts: &[usize],
        block: &dyn Fn(&[u8], &[&[u8]], &mut [&mut [f32]]),
    ) -> usize {
        let mut checked = 0;
        for &c in cs {
            for &cut in cuts {
                let cut = cut.min(nr);
                let mut out = std::vec![std::vec![0f32; nr]; c];
                let a: std::vec::Vec<&[u8]> =
                    (0..c).map(|k| inputs[(2 + k) % inputs.len()]).collect();
                for (r0, r1) in [(0, cut), (cut, nr)] {
                    let mut o: std::vec::Vec<&mut [f32]> =
                        out.iter_mut().map(|o| &mut o[r0..r1]).collect();
                    block(&w[r0 * wrb..r1 * wrb], &a, &mut o);
                }
                for (k, o) in out.iter().enumerate() {
                    for r in 0..nr {
                        assert_eq!(
                            o[r].to_bits(),
                            one[(2 + k) % one.len()][r],
                            "{what} c={c} cut={cut} input {k} row {r}"
                        );
                        checked += 1;
                    }
                }
            }
        }
        checked
    }

    /// The one-input kernel `k1` on rows `0..nr` of `w` (`wrb` bytes each)
    /// against each of `acts`, each result within `rel` (scaled by the
    /// square root of `n`) of the scalar reference: the bits, by input and
    /// row, that every tile shape must give.
    #[cfg(target_arch = "x86_64")]
    #[allow(clippy::too_many_arguments)]
    fn one_input_bits(
        t: W,
        k1: super::Kernel,
        w: &[u8],
        wrb: usize,
        nr: usize,
        acts: &[&[u8]],
        n: usize,
        rel: f32,
    ) -> std::vec::Vec<std::vec::Vec<u32>> {
        acts.iter()
            .map(|a| {
                (0..nr)
                    .map(|r| {
                        let row = &w[r * wrb..(r + 1) * wrb];
                        // SAFETY: the callers' probe found AVX2, FMA and F16C.
                        #[allow(unsafe_code)]
                        let v = unsafe { k1(row, a, n) };
                        let slow = dot_act_scalar(t, row, a, n);
                        let tol = rel * (n as f32).sqrt() * slow.abs().max(1.0);
                        let near = v == slow || (v - slow).abs() <= tol;
                        assert!(near, "{t:?} n={n}: {v} vs {slow}");
                        v.to_bits()
                    })
                    .collect()
            })
            .collect()
    }

    /// The four-row kernels give exactly the one-row kernel's bits.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn four_row_kernels_equal_one_row_kernels() {
        if !matches!(probe(), AVX2 | AVX512) {
            std::println!("no x86 kernels on this CPU: nothing to compare");
            return;
        }
        let mut rng = Rng(5);
        let mut checked = 0;
        // (The 32-weight block types have no four-row kernel: see
        // `qtiles_equal_one_input_kernels_and_the_scalar_reference`.)
        for t in [W::F16, W::BF16, W::Q2_K, W::Q3_K, W::Q4_K, W::Q5_K, W::Q6_K] {
            let at = t.act_type();
            let k1 = avx2_kernel(t).unwrap();
            let k4 = avx2_kernel4(t).unwrap();
            for n_blocks in [1usize, 2, 3, 7, 33] {
                let n = n_blocks * t.block_len().max(32) + if t.block_len() == 1 { 5 } else { 0 };
                let w = random_rows(&mut rng, t, n, 1);
                let rows: std::vec::Vec<std::vec::Vec<u8>> = (0..4)
                    .map(|_| {
                        let x: std::vec::Vec<f32> = (0..n).map(|_| rng.f() * 3.0).collect();
                        let mut xa = std::vec![0u8; at.row_bytes(n)];
                        quantize_act(at, &x, &mut xa);
                        xa
                    })
                    .collect();
                for off in 0..3 {
                    // Unaligned copies of the weights and of each input.
                    let shift = |b: &[u8]| {
                        let mut v = std::vec![0u8; b.len() + off];
                        v[off..].copy_from_slice(b);
                        v
                    };
                    let wbuf = shift(&w);
                    let abuf: std::vec::Vec<std::vec::Vec<u8>> =
                        rows.iter().map(|r| shift(r)).collect();
                    let a: [&[u8]; 4] = core::array::from_fn(|k| &abuf[k][off..]);
                    #[allow(unsafe_code)]
                    // SAFETY: the probe found AVX2, FMA and F16C.
                    let four = unsafe { k4(&wbuf[off..], a, n) };
                    for (k, a) in a.iter().enumerate() {
                        #[allow(unsafe_code)]
                        // SAFETY: as above.
                        let one = unsafe { k1(&wbuf[off..], a, n) };
                        assert_eq!(four[k].to_bits(), one.to_bits(), "{t:?} n={n} row {k}");
                        checked += 1;
                    }
                }
            }
        }
        assert_eq!(checked, 7 * 5 * 3 * 4);
    }

    /// The K-quant tiles of `t` at the AVX2 level (whatever level is in
    /// use), if `t` is a K-quant.
    #[cfg(target_arch = "x86_64")]
    fn ktiles_of(t: W) -> Option<KTiles> {
        let kind = match t {
            W::Q2_K => avx2_kq::Q2_K,
            W::Q3_K => avx2_kq::Q3_K,
            W::Q4_K => avx2_kq::Q4_K,
            W::Q5_K => avx2_kq::Q5_K,
            W::Q6_K => avx2_kq::Q6_K,
            _ => return None,
        };
        Some(KTiles { kind })
    }

    /// Not a check: the AVX2 kernels' speed on weights in cache, best of
    /// many trials (`cargo test --release --lib kernel_speed -- --ignored
    /// --nocapture`), in multiply-adds per second, one input at a time
    /// and four at a time.
    #[cfg(target_arch = "x86_64")]
    #[test]
    #[ignore]
    fn kernel_speed() {
        if !matches!(probe(), AVX2 | AVX512) {
            return;
        }
        let mut rng = Rng(3);
        let (n, nrows) = (2048, 64);
        for t in [W::Q2_K, W::Q3_K, W::Q4_K, W::Q5_K, W::Q6_K, W::F16, W::BF16] {
            let at = t.act_type();
            let w = random_rows(&mut rng, t, n, nrows);
            let wrb = w.len() / nrows;
            let xa: std::vec::Vec<std::vec::Vec<u8>> = (0..4)
                .map(|_| {
                    let x: std::vec::Vec<f32> = (0..n).map(|_| rng.f()).collect();
                    let mut xa = std::vec![0u8; at.row_bytes(n)];
                    quantize_act(at, &x, &mut xa);
                    xa
                })
                .collect();
            let a: [&[u8]; 4] = core::array::from_fn(|k| &xa[k][..]);
            let (k1, k4) = (avx2_kernel(t).unwrap(), avx2_kernel4(t).unwrap());
            let best = |f: &dyn Fn() -> f32| {
                let mut best = f64::MAX;
                let mut sink = 0f32;
                for _ in 0..300 {
                    let t0 = std::time::Instant::now();
                    sink += f();
                    best = best.min(t0.elapsed().as_secs_f64());
                }
                std::hint::black_box(sink);
                (4 * n * nrows) as f64 / best / 1e9
            };
            #[allow(unsafe_code)]
            let one = best(&|| {
                let mut s = 0f32;
                for r in w.chunks_exact(wrb) {
                    for a in a {
                        // SAFETY: the probe found AVX2, FMA and F16C.
                        s += unsafe { k1(r, a, n) };
                    }
                }
                s
            });
            #[allow(unsafe_code)]
            let four = best(&|| {
                let mut s = 0f32;
                for r in w.chunks_exact(wrb) {
                    // SAFETY: as above.
                    s += unsafe { k4(r, a, n) }.iter().sum::<f32>();
                }
                s
            });
            let tile = ktiles_of(t).map(|k| {
                let xa8: std::vec::Vec<&[u8]> = (0..8).map(|i| &xa[i % 4][..]).collect();
                let out = std::cell::RefCell::new(std::vec![std::vec![0f32; nrows]; 8]);
                let g = best(&|| {
                    let mut out = out.borrow_mut();
                    let mut o: std::vec::Vec<&mut [f32]> =
                        out.iter_mut().map(|o| &mut o[..]).collect();
                    k.block(&w, wrb, &xa8, n, &mut o);
                    o[0][0]
                });
                // Eight inputs per pass, not four.
                2.0 * g
            });
            match tile {
                Some(g) => std::println!(
                    "{t:?}: one {one:.1} GMAC/s, four {four:.1} GMAC/s, tile of 8 {g:.1} GMAC/s"
                ),
                None => std::println!("{t:?}: one {one:.1} GMAC/s, four {four:.1} GMAC/s"),
            }
        }
    }

    /// Not a check: the AVX2 tiles of the 32-weight block types on weights
    /// in cache, best of many trials (`cargo test --release --lib
    /// qtile_speed -- --ignored --nocapture`), one, four and eight inputs at a time.
    #[cfg(target_arch = "x86_64")]
    #[test]
    #[ignore]
    fn qtile_speed() {
        if !matches!(probe(), AVX2 | AVX512) {
            return;
        }
        let mut rng = Rng(3);
        let (n, nrows) = (2048, 64);
        for t in [W::Q8_0, W::Q4_0, W::Q4_1, W::Q5_0, W::Q5_1] {
            let k = qtiles(t).unwrap();
            let w = random_rows(&mut rng, t, n, nrows);
            let wrb = w.len() / nrows;
            let xa: std::vec::Vec<std::vec::Vec<u8>> = (0..8)
                .map(|_| {
                    let x: std::vec::Vec<f32> = (0..n).map(|_| rng.f()).collect();
                    let mut xa = std::vec![0u8; k.row_bytes(n)];
                    k.prepare(&x, &mut xa);
                    xa
                })
                .collect();
            let best = |c: usize| {
                let a: std::vec::Vec<&[u8]> = xa[..c].iter().map(|a| &a[..]).collect();
                let mut out = std::vec![std::vec![0f32; nrows]; c];
                let mut best = f64::MAX;
                for _ in 0..300 {
                    let t0 = std::time::Instant::now();
                    for _ in 0..8 / c {
                        let mut o: std::vec::Vec<&mut [f32]> =
                            out.iter_mut().map(|o| &mut o[..]).collect();
                        k.block(&w, wrb, &a, n, &mut o);
                    }
                    best = best.min(t0.elapsed().as_secs_f64());
                    std::hint::black_box(&out);
                }
                (8 / c * c * n * nrows) as f64 / best / 1e9
            };
            let (one, four, eight) = (best(1), best(4), best(8));
            std::println!("{t:?}: one {one:.1}, four {four:.1}, eight {eight:.1} GMAC/s");
        }
    }

    /// The AVX2 tiles of the 32-weight block types (`avx2_q8`): the
    /// prepared inputs hold exactly the scalar conversion's quants, scales
    /// and sums, and every output of every tile shape (1 to 4 or 8 inputs, any
    /// grouping of rows, row counts that leave a partial group of 8) has
    /// exactly the bits of the one-input kernel (the one `dot_act` runs for
    /// these types) and is within tolerance of the scalar reference; odd
    /// block counts, rows and inputs at odd offsets, random quant bytes
    /// (Q8_0's -128 included).
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn qtiles_equal_one_input_kernels_and_the_scalar_reference() {
        if !matches!(probe(), AVX2 | AVX512) {
            std::println!("no x86 kernels on this CPU: nothing to compare");
            return;
        }
        let mut rng = Rng(13);
        let mut checked = 0;
        for t in [W::Q4_0, W::Q4_1, W::Q5_0, W::Q5_1, W::Q8_0] {
            let tiles = qtiles(t).unwrap();
            let k1 = avx2_kernel(t).unwrap();
            let at = t.act_type();
            let q81 = at == crate::quant::ActType::Q8_1;
            let abb = if q81 { 36 } else { 34 };
            for n in [32usize, 64, 96, 224, 576, 1056] {
                for nr in [1usize, 7, 8, 19] {
                    let wr = random_rows(&mut rng, t, n, nr);
                    let mut wbuf = std::vec![0u8; wr.len() + 1];
                    wbuf[1..].copy_from_slice(&wr);
                    let w = &wbuf[1..];
                    let wrb = t.row_bytes(n).unwrap();
                    let mut xs: std::vec::Vec<std::vec::Vec<f32>> = (0..10)
                        .map(|_| (0..n).map(|_| rng.f() * 3.0).collect())
                        .collect();
                    // A block of zeros, and one with a single large value.
                    xs[0][..32].fill(0.0);
                    xs[1][n - 1] = 1000.0;
                    let acts: std::vec::Vec<std::vec::Vec<u8>> = xs
                        .iter()
                        .map(|x| {
                            let mut a = std::vec![0u8; at.row_bytes(n) + 1];
                            quantize_act(at, x, &mut a[1..]);
                            a
                        })
                        .collect();
                    let prepared: std::vec::Vec<std::vec::Vec<u8>> = xs
                        .iter()
                        .map(|x| {
                            let mut p = std::vec![0u8; tiles.row_bytes(n) + 1];
                            tiles.prepare(x, &mut p[1..]);
                            p
                        })
                        .collect();
                    for (a, p) in acts.iter().zip(&prepared) {
                        for (sb, pb) in a[1..].chunks_exact(abb).zip(p[1..].chunks_exact(40)) {
                            let f16_at = |o: usize| {
                                half::f16::from_bits(u16::from_le_bytes([sb[o], sb[o + 1]]))
                                    .to_f32()
                            };
                            assert_eq!(&sb[abb - 32..], &pb[..32], "{t:?} quants");
                            assert_eq!(f16_at(0).to_le_bytes(), pb[32..36], "{t:?} d");
                            let extra = if q81 {
                                f16_at(2).to_le_bytes()
                            } else {
                                let s: i32 = sb[2..].iter().map(|&q| q as i8 as i32).sum();
                                let off = match t {
                                    W::Q4_0 => 8,
                                    W::Q5_0 => 16,
                                    _ => 0,
                                };
                                (off * s).to_le_bytes()
                            };
                            assert_eq!(extra, pb[36..40], "{t:?} sums");
                        }
                    }
                    let one = one_input_bits(
                        t,
                        k1,
                        w,
                        wrb,
                        nr,
                        &acts.iter().map(|a| &a[1..]).collect::<std::vec::Vec<_>>(),
                        n,
                        1e-5,
                    );
                    let inputs: std::vec::Vec<&[u8]> = prepared.iter().map(|p| &p[1..]).collect();
                    checked += assert_groupings(
                        &std::format!("{t:?} n={n} nr={nr}"),
                        w,
                        wrb,
                        nr,
                        &inputs,
                        &one,
                        &[1, 2, 3, 4, 8],
                        &[0, 3, 8, 11],
                        &|w, a, o| tiles.block(w, wrb, a, n, o),
                    );
                }
            }
        }
        assert_eq!(checked, 5 * 6 * (1 + 7 + 8 + 19) * 4 * 18);
    }

    /// The AVX2 F16/BF16 tiles (`avx2_f16`): the prepared inputs are the
    /// scalar conversion's values (BF16 in its even/odd order), and every
    /// output of every tile shape (1 to 4 inputs, any grouping of rows)
    /// has exactly the bits of the one-input kernel `dot_f16`/`dot_bf16`
    /// and is within tolerance of the scalar reference; lengths with and
    /// without a tail of `n % 16`, rows at odd offsets.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn tiles_equal_one_input_kernels_and_the_scalar_reference() {
        if !matches!(probe(), AVX2 | AVX512) {
            std::println!("no x86 kernels on this CPU: nothing to compare");
            return;
        }
        let mut rng = Rng(11);
        let mut checked = 0;
        for (t, bf16) in [(W::F16, false), (W::BF16, true)] {
            let tiles = Tiles { bf16 };
            let k1 = avx2_kernel(t).unwrap();
            let at = t.act_type();
            for n in [5usize, 16, 21, 32, 77, 96, 576, 2053] {
                let nr = 11;
                // Rows at an odd offset, so that no load is aligned.
                let wr = random_rows(&mut rng, t, n, nr);
                let mut wbuf = std::vec![0u8; wr.len() + 1];
                wbuf[1..].copy_from_slice(&wr);
                let w = &wbuf[1..];
                let wrb = 2 * n;
                let mut xs: std::vec::Vec<std::vec::Vec<f32>> = (0..6)
                    .map(|_| (0..n).map(|_| rng.f() * 3.0).collect())
                    .collect();
                // Values that round in interesting ways (ties, subnormals in
                // f16, overflow to infinity in f16).
                xs[0][0] = 1.0 + 1.0 / 2048.0;
                xs[1][n - 1] = 3.0e-6;
                xs[2][n / 2] = 70000.0;
                let acts: std::vec::Vec<std::vec::Vec<u8>> = xs
                    .iter()
                    .map(|x| {
                        let mut a = std::vec![0u8; at.row_bytes(n)];
                        quantize_act(at, x, &mut a);
                        a
                    })
                    .collect();
                let prepared: std::vec::Vec<std::vec::Vec<u8>> = xs
                    .iter()
                    .map(|x| {
                        let mut p = std::vec![0u8; tiles.row_bytes(n) + 1];
                        tiles.prepare(x, &mut p[1..]);
                        p
                    })
                    .collect();
                for (a, p) in acts.iter().zip(&prepared) {
                    for j in 0..n {
                        let bits = u16::from_le_bytes([a[2 * j], a[2 * j + 1]]);
                        let v = if bf16 {
                            f32::from_bits((bits as u32) << 16)
                        } else {
                            half::f16::from_bits(bits).to_f32()
                        };
                        // BF16: per chunk of 16, the even values then the odd.
                        let at = if bf16 && j < n / 16 * 16 {
                            j / 16 * 16 + (j % 16) / 2 + 8 * (j % 2)
                        } else {
                            j
                        };
                        let got = &p[1 + 4 * at..][..4];
                        assert_eq!(got, v.to_le_bytes(), "{t:?} n={n} j={j}");
                    }
                }
                let one = one_input_bits(
                    t,
                    k1,
                    w,
                    wrb,
                    nr,
                    &acts.iter().map(|a| &a[..]).collect::<std::vec::Vec<_>>(),
                    n,
                    1e-5,
                );
                let inputs: std::vec::Vec<&[u8]> = prepared.iter().map(|p| &p[1..]).collect();
                checked += assert_groupings(
                    &std::format!("{t:?} n={n}"),
                    w,
                    wrb,
                    nr,
                    &inputs,
                    &one,
                    &[1, 2, 3, 4],
                    &[0, 1, 5],
                    &|w, a, o| tiles.block(w, wrb, a, n, o),
                );
            }
        }
        assert_eq!(checked, 2 * 8 * 3 * 11 * 10);
    }

    /// The AVX2 K-quant tiles (`avx2_kq`): the prepared inputs are the
    /// bytes of `quantize_act` (values with ties, zeros, infinities and
    /// NaN included), and every output of every tile shape (1 to 8 inputs,
    /// any grouping of rows) has exactly the bits of the one-input kernel,
    /// within tolerance of the scalar reference; rows and inputs at odd
    /// offsets.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn k_tiles_equal_one_input_kernels_and_the_scalar_reference() {
        if !matches!(probe(), AVX2 | AVX512) {
            std::println!("no x86 kernels on this CPU: nothing to compare");
            return;
        }
        let mut rng = Rng(17);
        let mut checked = 0;
        for t in [W::Q2_K, W::Q3_K, W::Q4_K, W::Q5_K, W::Q6_K] {
            let tiles = ktiles_of(t).unwrap();
            let k1 = avx2_kernel(t).unwrap();
            let at = t.act_type();
            for nb in [1usize, 2, 3, 8, 11] {
                let n = nb * 256;
                let nr = 9;
                let wr = random_rows(&mut rng, t, n, nr);
                let mut wbuf = std::vec![0u8; wr.len() + 1];
                wbuf[1..].copy_from_slice(&wr);
                let w = &wbuf[1..];
                let wrb = wr.len() / nr;
                let mut xs: std::vec::Vec<std::vec::Vec<f32>> = (0..6)
                    .map(|_| (0..n).map(|_| rng.f() * 3.0).collect())
                    .collect();
                // Ties of the rounding, a block of zeros, equal magnitudes
                // of both signs (the first sets the scale).
                for (j, v) in xs[0].iter_mut().enumerate() {
                    *v = (j % 255) as f32 - 127.0 + 0.5 * (j % 2) as f32;
                }
                xs[1][..256].fill(0.0);
                xs[2][3] = -5.0;
                xs[2][200] = 5.0;
                let acts: std::vec::Vec<std::vec::Vec<u8>> = xs
                    .iter()
                    .map(|x| {
                        let mut a = std::vec![0u8; at.row_bytes(n)];
                        quantize_act(at, x, &mut a);
                        a
                    })
                    .collect();
                for (x, a) in xs.iter().zip(&acts) {
                    let mut p = std::vec![0u8; tiles.row_bytes(n) + 1];
                    tiles.prepare(x, &mut p[1..]);
                    assert_eq!(&p[1..], &a[..], "{t:?} n={n}");
                }
                // Huge values, infinities and NaN: the same bytes too.
                for bad in [3.0e38, f32::INFINITY, f32::NEG_INFINITY, f32::NAN] {
                    let mut x = xs[4].clone();
                    x[n - 2] = bad;
                    let mut a = std::vec![0u8; at.row_bytes(n)];
                    quantize_act(at, &x, &mut a);
                    let mut p = std::vec![0u8; tiles.row_bytes(n)];
                    tiles.prepare(&x, &mut p);
                    assert_eq!(p, a, "{t:?} n={n} {bad}");
                }
                let prepared: std::vec::Vec<std::vec::Vec<u8>> = acts
                    .iter()
                    .map(|a| {
                        let mut p = std::vec![0u8; a.len() + 1];
                        p[1..].copy_from_slice(a);
                        p
                    })
                    .collect();
                let one = one_input_bits(
                    t,
                    k1,
                    w,
                    wrb,
                    nr,
                    &acts.iter().map(|a| &a[..]).collect::<std::vec::Vec<_>>(),
                    n,
                    1e-4,
                );
                let inputs: std::vec::Vec<&[u8]> = prepared.iter().map(|p| &p[1..]).collect();
                let cs: std::vec::Vec<usize> = (1..=KTiles::MAX_C).collect();
                checked += assert_groupings(
                    &std::format!("{t:?} n={n}"),
                    w,
                    wrb,
                    nr,
                    &inputs,
                    &one,
                    &cs,
                    &[0, 1, 2, 5],
                    &|w, a, o| tiles.block(w, wrb, a, n, o),
                );
            }
        }
        assert_eq!(checked, 5 * 5 * 4 * 9 * 36);
    }

    #[cfg(target_arch = "x86_64")]
    /// Random weight rows of type `t` (`rows` of `n`), as stored.
    fn random_rows(rng: &mut Rng, t: W, n: usize, rows: usize) -> std::vec::Vec<u8> {
        let bb = t.block_bytes();
        let nb = n / t.block_len();
        let mut b = std::vec![0u8; rows * nb * bb];
        if t == W::F16 {
            for c in b.chunks_exact_mut(2) {
                c.copy_from_slice(&half::f16::from_f32(rng.f()).to_bits().to_le_bytes());
            }
            return b;
        }
        if t == W::BF16 {
            for c in b.chunks_exact_mut(2) {
                c.copy_from_slice(&((rng.f().to_bits() >> 16) as u16).to_le_bytes());
            }
            return b;
        }
        for v in b.iter_mut() {
            *v = (rng.f().abs() * 255.0) as u8;
        }
        let offs: &[usize] = match t {
            W::Q6_K => &[208],
            W::Q4_K | W::Q5_K | W::Q4_1 | W::Q5_1 => &[0, 2],
            W::Q2_K => &[80, 82],
            W::Q3_K => &[108],
            _ => &[0],
        };
        for blk in b.chunks_exact_mut(bb) {
            for &o in offs {
                let d = half::f16::from_f32(0.01 + rng.f().abs() * 0.1);
                blk[o..o + 2].copy_from_slice(&d.to_bits().to_le_bytes());
            }
        }
        b
    }

    /// The AVX-512 kernels: each result equals the scalar reference to
    /// rounding (lengths with odd block counts and tails), and a batch of
    /// rows and inputs gives exactly the bits of one row and one input at a
    /// time; F16 gives the AVX2 kernel's bits.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn wide_kernels_match_the_scalar_reference_and_themselves() {
        if probe() != AVX512 {
            std::println!("no AVX-512 on this CPU: not compared");
            return;
        }
        let mut rng = Rng(7);
        let mut checked = 0;
        let types = [W::Q4_0, W::Q8_0, W::F16, W::Q4_K, W::Q6_K];
        let kquant = [W::Q5_K, W::Q3_K, W::Q2_K];
        let small = [W::Q4_1, W::Q5_0, W::Q5_1, W::BF16];
        let mut cases: std::vec::Vec<(W, Wide)> = types
            .into_iter()
            .chain(kquant)
            .chain(small)
            .map(|t| (t, wide(t).unwrap()))
            .collect();
        // BF16 without AVX512_BF16 (the kernel above if it is absent).
        let k = avx512::bf16_fma();
        cases.push((W::BF16, Wide { t: W::BF16, k }));
        for (t, wide) in cases {
            let lens: &[usize] = match t {
                W::Q4_K | W::Q6_K => &[256, 512, 768, 2816],
                W::Q5_K | W::Q3_K | W::Q2_K => &[256, 512, 768, 1536, 2816],
                W::F16 => &[16, 21, 32, 77, 2048, 2053],
                W::BF16 => &[16, 21, 32, 77, 576, 2048, 2053],
                W::Q4_1 | W::Q5_0 | W::Q5_1 => &[32, 64, 96, 160, 576, 1536, 2048, 5632],
                _ => &[32, 64, 96, 160, 2048, 5632],
            };
            for &n in lens {
                let rows = 7;
                let w = random_rows(&mut rng, t, n, rows);
                let wrb = w.len() / rows;
                let cb = wide.c_big();
                let xs: std::vec::Vec<std::vec::Vec<f32>> = (0..cb)
                    .map(|_| (0..n).map(|_| rng.f() * 2.0).collect())
                    .collect();
                let prep = |batch: bool| -> std::vec::Vec<std::vec::Vec<u8>> {
                    xs.iter()
                        .map(|x| {
                            let mut p = std::vec![0u8; wide.row_bytes(n, batch)];
                            wide.prepare(x, &mut p, batch);
                            p
                        })
                        .collect()
                };
                let (prepared, single) = (prep(true), prep(false));
                if matches!(t, W::Q6_K | W::Q3_K | W::Q2_K | W::BF16) {
                    // Q6_K, Q3_K, Q2_K inputs are standard Q8_K blocks, BF16
                    // ones the bf16 values: exactly the scalar conversion.
                    for (x, rec) in xs.iter().zip(&prepared) {
                        let mut std_q = std::vec![0u8; rec.len()];
                        quantize_act(t.act_type(), x, &mut std_q);
                        assert_eq!(&std_q, rec);
                    }
                }
                if matches!(t, W::Q4_0 | W::Q8_0 | W::Q5_0 | W::Q4_1 | W::Q5_1) {
                    // The records hold exactly the scalar Q8_0 (Q8_1) quants
                    // and scales (f16-rounded; and Q8_1's sums), with
                    // NaN-free inputs here.
                    let q81 = t.act_type() == crate::quant::ActType::Q8_1;
                    let bb = if q81 { 36 } else { 34 };
                    for (x, rec) in xs.iter().zip(&prepared) {
                        let mut std_q = std::vec![0u8; t.act_type().row_bytes(n)];
                        quantize_act(t.act_type(), x, &mut std_q);
                        for (i, blk) in std_q.chunks_exact(bb).enumerate() {
                            let f16_at = |o: usize| {
                                half::f16::from_bits(u16::from_le_bytes([blk[o], blk[o + 1]]))
                            };
                            let d = f16_at(0);
                            if q81 {
                                let r = &rec[256 * (i / 4) + 128 + 16 * (i % 4)..];
                                assert_eq!(f16_at(2).to_f32().to_le_bytes(), r[..4]);
                                assert_eq!(r[4..16], [0; 12]);
                            }
                            let blk = &blk[bb - 34..];
                            let (q, o) = if t == W::Q4_0 {
                                // Eight blocks a record, one lane a block.
                                let (r, b) = (&rec[320 * (i / 8)..], i % 8);
                                let mut q = std::vec![0u8; 32];
                                for (w, qw) in q.chunks_exact_mut(4).enumerate() {
                                    let o = 32 * w + 4 * b;
                                    qw.copy_from_slice(&r[o..o + 4]);
                                }
                                let sum: i32 = q.iter().map(|&v| i32::from(v as i8)).sum();
                                assert_eq!(r[256 + 4 * b..260 + 4 * b], (-8 * sum).to_le_bytes());
                                (q, &r[288 + 4 * b..])
                            } else if t == W::Q8_0 {
                                // Eight blocks a record, two lanes a block.
                                let (r, b) = (&rec[384 * (i / 8)..], i % 8);
                                let mut q = std::vec![0u8; 32];
                                for (w, qw) in q.chunks_exact_mut(4).enumerate() {
                                    let o = 64 * (w / 2) + 4 * (2 * b + w % 2);
                                    qw.copy_from_slice(&r[o..o + 4]);
                                }
                                assert_eq!(
                                    r[320 + 8 * b..324 + 8 * b],
                                    r[324 + 8 * b..328 + 8 * b]
                                );
                                (q, &r[320 + 8 * b..])
                            } else {
                                let (r, k) = (&rec[256 * (i / 4)..], i % 4);
                                let q = [&r[16 * k..16 * k + 16], &r[64 + 16 * k..80 + 16 * k]];
                                (q.concat(), &r[192 + 16 * k..])
                            };
                            assert_eq!(&blk[2..], &q[..]);
                            assert_eq!(d.to_f32().to_le_bytes(), o[..4]);
                        }
                    }
                }
                let at = t.act_type();
                let mut batch: std::vec::Vec<std::vec::Vec<f32>> =
                    std::vec![std::vec![0f32; rows]; cb];
                {
                    let a: std::vec::Vec<&[u8]> = prepared.iter().map(|p| &p[..]).collect();
                    let mut o: std::vec::Vec<&mut [f32]> =
                        batch.iter_mut().map(|b| &mut b[..]).collect();
                    wide.block(&w, wrb, &a, n, &mut o, true);
                }
                for (c, x) in xs.iter().enumerate() {
                    let mut one = std::vec![0f32; rows];
                    wide.block(&w, wrb, &[&single[c]], n, &mut [&mut one], false);
                    // A batch's left-over input (one, batch layout).
                    let mut left = std::vec![0f32; rows];
                    wide.block(&w, wrb, &[&prepared[c]], n, &mut [&mut left], true);
                    let mut xa = std::vec![0u8; at.row_bytes(n)];
                    quantize_act(at, x, &mut xa);
                    for r in 0..rows {
                        let row = &w[r * wrb..(r + 1) * wrb];
                        assert_eq!(
                            one[r].to_bits(),
                            batch[c][r].to_bits(),
                            "{t:?} n={n} r={r} c={c}"
                        );
                        assert_eq!(one[r].to_bits(), left[r].to_bits(), "{t:?} n={n} r={r}");
                        let slow = dot_act_scalar(t, row, &xa, n);
                        let tol = 2e-5 * (n as f32).sqrt() * slow.abs().max(1.0);
                        assert!(
                            (one[r] - slow).abs() <= tol,
                            "{t:?} n={n}: {} vs {slow}",
                            one[r]
                        );
                        if t == W::F16 {
                            let k = avx2_kernel(t).unwrap();
                            // SAFETY: the probe found AVX-512, so AVX2 too.
                            #[allow(unsafe_code)]
                            let v = unsafe { k(row, &xa, n) };
                            assert_eq!(v.to_bits(), one[r].to_bits());
                        }
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 500, "{checked}");
    }

    // (`force_scalar` and `limit` are tested in tests/levels.rs, a process
    // of their own: the level is global, and the tests here that ask for
    // `wide`, `qtiles` or `matmul` would meet the forced level.)
}
