//! `simd::force_scalar` and `simd::limit`. Alone in this binary: the level
//! is global to the process, and a test that changes it while others ask
//! for the kernels of the level in use (`simd::wide`, `simd::qtiles`, the
//! matrix products) makes them meet another level than the one they
//! checked for.
use nanollama::simd::{self, Level};
use nanollama::WeightType as W;

#[test]
fn levels_can_be_capped_and_restored() {
    let top = simd::level();
    let q8 = (W::Q8_0, [0u8; 34], [0u8; 34]);
    simd::force_scalar(true);
    assert_eq!(simd::level(), Level::Scalar);
    assert_eq!(simd::dot_act(q8.0, &q8.1, &q8.2, 32), None);
    assert!(simd::wide(W::Q4_K).is_none() && simd::ktiles(W::Q4_K).is_none());
    assert!(simd::qtiles(W::Q8_0).is_none() && simd::tiles(W::F16).is_none());
    simd::force_scalar(false);
    assert_eq!(simd::level(), top);
    if top != Level::Avx512 {
        eprintln!("NOTE: no AVX-512 on this CPU ({top:?}): the cap to AVX2 not checked");
        return;
    }
    // AVX-512 capped to AVX2: no wide tiles, the AVX2 ones (the K-quant
    // tiles exist at the AVX2 level alone) and one-row kernels instead.
    assert!(simd::wide(W::Q4_K).is_some() && simd::ktiles(W::Q4_K).is_none());
    simd::limit(Level::Avx2);
    assert_eq!(simd::level(), Level::Avx2);
    assert!(simd::wide(W::Q4_K).is_none() && simd::ktiles(W::Q4_K).is_some());
    assert!(simd::qtiles(W::Q8_0).is_some() && simd::tiles(W::F16).is_some());
    assert_eq!(simd::dot_act(q8.0, &q8.1, &q8.2, 32), Some(0.0));
    // A cap above what the CPU has gives what it has.
    simd::limit(Level::Neon);
    assert_eq!(simd::level(), Level::Avx512);
}
