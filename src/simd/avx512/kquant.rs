//! Wide tiles of the K-quants beyond Q4_K and Q6_K.
//!
//! Input layouts (see the parent module):
//! - Q5_K: Q4_K's record (sub-blocks of 32 in the order 0 2 1 3 4 6 5 7,
//!   the eight sums of 32, the f32 scale): the weights have Q4_K's nibbles
//!   and scales, plus a fifth bit per weight.
//!
//! In every tile a 64-byte register holds 64 weights in the order of the
//! input's 64 quants it meets, unsigned; `vpmaddubsw` makes pairs (at most
//! 31 * 128 * 2 = 7936 for Q5_K: no saturation) and
//! `vpdpwssd` weighs each pair by its sub-block's scale into i32 lanes: the
//! integer sums are exact, as the scalar reference's.

use super::{
    f16c, heads, hsum, hsum128, k4_scales, load128, load256, load512, prefetch, Block, Q4K_REC,
    Q4K_SCALES,
};
use crate::blocks as qb;
use core::arch::x86_64::*;

block_fn!(block_q5_k, tile_q5_k, tile_q5_k, 1, 8);

/// Inputs per call in a batch and the block function, per type.
pub(super) const Q5_K: (usize, Block) = (8, block_q5_k);

/// Byte masks of the fifth bits of Q5_K: register `v` of a block holds
/// sub-blocks `s` (bytes 0..32) and `s + 2` (32..64), `s = 4 (v / 2) + v %
/// 2`, whose fifth bits are bits `s` and `s + 2` of qh (byte `l` of qh for
/// weight `l` of each sub-block).
const Q5K_HBITS: [[u8; 64]; 4] = {
    let mut t = [[0u8; 64]; 4];
    let mut v = 0;
    while v < 4 {
        let s = 4 * (v / 2) + v % 2;
        let mut j = 0;
        while j < 64 {
            t[v][j] = 1 << (s + 2 * (j / 32));
            j += 1;
        }
        v += 1;
    }
    t
};

/// Q5_K against Q4_K's record: Q4_K's tile with the fifth bit added (16
/// where the bit of qh is set).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi,avx512vnni,avx2,fma,f16c")]
#[inline]
fn tile_q5_k<const R: usize, const C: usize>(w: &[&[u8]], a: &[&[u8]], n: usize, out: &mut [f32]) {
    const BB: usize = qb::Q5_K_BYTES;
    let nb = n / 256;
    let w: [&[u8]; R] = heads(w, nb * BB);
    let a: [&[u8]; C] = heads(a, nb * Q4K_REC);
    let m4 = _mm512_set1_epi8(0x0f);
    let sixteen = _mm512_set1_epi8(16);
    let sidx = [
        load512(&Q4K_SCALES[0]),
        load512(&Q4K_SCALES[1]),
        load512(&Q4K_SCALES[2]),
        load512(&Q4K_SCALES[3]),
    ];
    let hbit = [
        load512(&Q5K_HBITS[0]),
        load512(&Q5K_HBITS[1]),
        load512(&Q5K_HBITS[2]),
        load512(&Q5K_HBITS[3]),
    ];
    let even = 0x5555_5555_5555_5555u64;
    let mut acc = [[_mm512_setzero_ps(); C]; R];
    let mut accm = [[_mm_setzero_ps(); C]; R];
    for b in 0..nb {
        let mut qs = [[_mm512_setzero_si512(); 4]; R];
        let mut sv = [[_mm512_setzero_si512(); 4]; R];
        let mut mins = [_mm_setzero_si128(); R];
        let mut dd = [(0f32, 0f32); R];
        for r in 0..R {
            if R > 1 {
                for o in [0, 64, 128] {
                    prefetch(w[r], BB * b + o, R * nb * BB);
                }
            }
            let wb = &w[r][BB * b..BB * b + BB];
            dd[r] = (f16c(wb), f16c(&wb[2..]));
            let (s, m) = k4_scales(&wb[4..16]);
            let sb = _mm512_set1_epi64(s as i64);
            for v in 0..4 {
                sv[r][v] = _mm512_maskz_permutexvar_epi8(even, sidx[v], sb);
            }
            mins[r] = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(m as i64));
            let qh = _mm512_broadcast_i64x4(load256(&wb[16..]));
            for h in 0..2 {
                let q = load512(&wb[48 + 64 * h..]);
                let lo = _mm512_and_si512(q, m4);
                let hi = _mm512_and_si512(_mm512_srli_epi16(q, 4), m4);
                for (v, x) in [(2 * h, lo), (2 * h + 1, hi)] {
                    let k = _mm512_test_epi8_mask(qh, hbit[v]);
                    qs[r][v] = _mm512_mask_add_epi8(x, k, x, sixteen);
                }
            }
        }
        for c in 0..C {
            let rec = &a[c][Q4K_REC * b..Q4K_REC * (b + 1)];
            let da = f32::from_le_bytes([rec[272], rec[273], rec[274], rec[275]]);
            let mut av = [_mm512_setzero_si512(); 4];
            for v in 0..4 {
                av[v] = load512(&rec[64 * v..]);
            }
            let sums = load128(&rec[256..]);
            for r in 0..R {
                let mut isum = _mm512_setzero_si512();
                for v in 0..4 {
                    let p = _mm512_maddubs_epi16(qs[r][v], av[v]);
                    isum = _mm512_dpwssd_epi32(isum, p, sv[r][v]);
                }
                let f = _mm512_cvtepi32_ps(isum);
                acc[r][c] = _mm512_fmadd_ps(_mm512_set1_ps(dd[r].0 * da), f, acc[r][c]);
                let mm = _mm_cvtepi32_ps(_mm_madd_epi16(mins[r], sums));
                accm[r][c] = _mm_fmadd_ps(_mm_set1_ps(dd[r].1 * da), mm, accm[r][c]);
            }
        }
    }
    for r in 0..R {
        for c in 0..C {
            out[r * C + c] = hsum(acc[r][c]) - hsum128(accm[r][c]);
        }
    }
}
