//! Files made by llama.cpp's quantizer (tests/data/parity/): batch splits,
//! and damaged block scales.
//!
//! A quantized weight with a NaN or infinite block scale, in files made by
//! llama.cpp's quantizer: nanollama loads it (it does not scan gigabytes of
//! weights at load), nothing panics or reads out of bounds, and the damage
//! shows where it belongs: a bad scale in a layer makes every logit NaN and
//! the sampler reports NO_CANDIDATES; a NaN scale in one row of the output
//! matrix makes that token's logit NaN, and the sampler never draws it; an
//! infinite one makes it infinite (or NaN where infinities of both signs
//! meet), and a +inf logit takes every draw, by the sampler's documented
//! rule for +inf: the damage stays in that token.
mod common;
use common::AlignedBuf;
use nanollama::{
    Context, ContextParams, Error, Gguf, Inline, Model, Sampler, SamplerParams, WeightType,
};
use std::path::Path;

/// Byte offset of the f16 `d` in a block of each quantized type.
fn d_offset(t: WeightType) -> usize {
    match t {
        WeightType::Q2_K => 80,
        WeightType::Q3_K => 108,
        WeightType::Q6_K => 208,
        _ => 0,
    }
}

/// The file with the f16 `d` of block `block` of `tensor` set to `bits`.
fn patched(file: &str, tensor: &str, block: usize, bits: u16) -> (Vec<u8>, WeightType) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/parity")
        .join(file);
    let mut bytes = std::fs::read(path).unwrap();
    let g = Gguf::parse(&bytes).unwrap();
    let t = g.tensor(tensor).unwrap();
    let ty = WeightType::from_ggml(t.ty).unwrap();
    assert_ne!(ty.block_len(), 1, "{tensor} is not quantized");
    let at = t.offset + block * ty.block_bytes() + d_offset(ty);
    bytes[at..at + 2].copy_from_slice(&bits.to_le_bytes());
    (bytes, ty)
}

/// Logits of the last of a few tokens, in both input modes.
fn logits(bytes: &[u8], f32_activations: bool) -> Vec<f32> {
    let mut mm = AlignedBuf::new(Model::size(bytes).unwrap());
    let model = Model::init(bytes, mm.as_mut_slice()).unwrap();
    let p = ContextParams {
        n_ctx: 8,
        f32_activations,
        ..ContextParams::default()
    };
    let mut cm = AlignedBuf::new(Context::size(&model, &p).unwrap());
    let mut ctx = Context::init(&model, &p, cm.as_mut_slice()).unwrap();
    ctx.decode(&[1, 5, 9, 200], &Inline).unwrap();
    ctx.last_logits().to_vec()
}

fn sample(logits: &[f32]) -> Result<u32, Error> {
    let p = SamplerParams {
        temp: 1.0,
        top_k: 0,
        ..SamplerParams::default()
    };
    let mut m = AlignedBuf::new(Sampler::size(logits.len(), &p, 0).unwrap());
    let mut s = Sampler::init(logits.len(), &p, &[], m.as_mut_slice()).unwrap();
    s.sample(logits)
}

const NAN: u16 = 0x7e00;
const INF: u16 = 0x7c00;
const NEG_INF: u16 = 0xfc00;

#[test]
fn bad_scale_in_a_layer_makes_every_logit_nan() {
    common::kernels_from_env();
    for (file, tensor) in [
        ("gqa4-q4_k_m.gguf", "blk.0.attn_q.weight"),
        ("gqa2-q5_0.gguf", "blk.0.ffn_down.weight"),
        ("gqa2-q2_k.gguf", "blk.0.ffn_gate.weight"),
        ("mqa-q4_1.gguf", "blk.0.attn_v.weight"),
    ] {
        for bits in [NAN, INF, NEG_INF] {
            let (bytes, ty) = patched(file, tensor, 0, bits);
            for exact in [false, true] {
                let l = logits(&bytes, exact);
                assert!(
                    l.iter().all(|v| v.is_nan()),
                    "{file} {tensor} ({ty:?}) d={bits:#x} exact={exact}: {:?}",
                    &l[..4]
                );
                assert_eq!(sample(&l), Err(Error::NoCandidates));
            }
        }
    }
}

#[test]
fn bad_scale_in_an_output_row_spoils_only_that_token() {
    common::kernels_from_env();
    let file = "gqa2-q6_k.gguf";
    let clean = logits(
        &std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/data/parity")
                .join(file),
        )
        .unwrap(),
        false,
    );
    assert!(clean.iter().all(|v| v.is_finite()));
    // Row 7 of a 256-wide output matrix is block 7 for every type here.
    let row = 7;
    let mut seen = Vec::new();
    for bits in [NAN, INF, NEG_INF] {
        let (bytes, ty) = patched(file, "output.weight", row, bits);
        for exact in [false, true] {
            let l = logits(&bytes, exact);
            for (i, v) in l.iter().enumerate() {
                if i == row {
                    assert!(!v.is_finite(), "{ty:?}: token {row} = {v}");
                } else {
                    assert!(v.is_finite(), "{ty:?}: token {i} = {v}");
                }
            }
            let v = l[row];
            seen.push(v);
            for seed in 0..50 {
                let p = SamplerParams {
                    seed,
                    temp: 2.0,
                    top_k: 0,
                    ..SamplerParams::default()
                };
                let mut m = AlignedBuf::new(Sampler::size(l.len(), &p, 0).unwrap());
                let mut s = Sampler::init(l.len(), &p, &[], m.as_mut_slice()).unwrap();
                let t = s.sample(&l).unwrap() as usize;
                if v == f32::INFINITY {
                    assert_eq!(t, row, "seed {seed}");
                } else {
                    assert_ne!(t, row, "seed {seed} ({v})");
                }
            }
        }
    }
    // The NaN scale gave a NaN logit; an infinite one gives +inf or -inf
    // where a kernel scales whole-block integer sums (the scalar and AVX2
    // Q6_K kernels), NaN where it scales partial sums lane by lane or
    // dequantizes first (inf times a zero quant: AVX-512, f32 inputs).
    assert!(seen[0].is_nan() && seen[1].is_nan());
    assert!(seen[2..].iter().all(|v| !v.is_finite()), "{seen:?}");
}

/// On the llama.cpp-quantized files (fast kernels where the CPU has them),
/// a prompt fed in one batch, in uneven batches, or token by token gives
/// bit-identical last logits: every output is one dot product whatever the
/// batch (the four-token kernels equal the one-token ones bit for bit).
#[test]
fn batch_splits_give_identical_logits_on_quantized_files() {
    common::kernels_from_env();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/parity");
    let tokens: Vec<u32> = (0..13).map(|i| (i * 37 + 5) % 256).collect();
    for file in [
        "gqa4-q4_0.gguf",
        "gqa4-q4_k_m.gguf",
        "gqa2-llq8_0.gguf",
        "mqa-q4_1.gguf",
        "gqa2-q2_k.gguf",
        "mqa-q3_k_m.gguf",
        "mha-q5_k_m.gguf",
        "gqa2-q6_k.gguf",
        "gqa2-q5_0.gguf",
        "mha-q5_1.gguf",
    ] {
        let bytes = std::fs::read(dir.join(file)).unwrap();
        let mut mm = AlignedBuf::new(Model::size(&bytes).unwrap());
        let model = Model::init(&bytes, mm.as_mut_slice()).unwrap();
        let p = ContextParams {
            n_ctx: 16,
            ..ContextParams::default()
        };
        let run = |cuts: &[usize]| {
            let mut cm = AlignedBuf::new(Context::size(&model, &p).unwrap());
            let mut ctx = Context::init(&model, &p, cm.as_mut_slice()).unwrap();
            let mut at = 0;
            for &c in cuts.iter().chain([tokens.len()].iter()) {
                if c > at {
                    ctx.decode(&tokens[at..c], &Inline).unwrap();
                    at = c;
                }
            }
            ctx.last_logits()
                .iter()
                .map(|v| v.to_bits())
                .collect::<Vec<_>>()
        };
        let whole = run(&[]);
        assert_eq!(run(&[5, 6, 11]), whole, "{file}");
        assert_eq!(run(&(1..13).collect::<Vec<_>>()), whole, "{file}");
    }
}
