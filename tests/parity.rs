//! Parity with llama.cpp and with a float64 evaluation of the same weights.
//!
//! Fixtures in tests/data/parity/ are made by `python3 tools/make_fixtures.py`
//! (seeded random GGUF models written with the `gguf` package; float64
//! reference logits from an independent numpy forward pass over the
//! dequantized weights; llama.cpp's logits through llama-cpp-python with an
//! F32 and an F16 KV cache). For every model and KV type:
//! - with f32 matrix-product inputs (`f32_activations`), our mean KL
//!   divergence to the float64 softmax is no more than llama.cpp's own (same
//!   KV type) plus 1e-6;
//! - with inputs converted as llama.cpp converts them (the default), our
//!   logits are closer to llama.cpp's than the f32 ones: at most half their
//!   KL divergence from llama.cpp's softmax (unless both are below 1e-9,
//!   as for F32 weights, where the two modes compute the same);
//! - in both modes our argmax equals the float64 argmax at every position
//!   where its two largest logits differ by more than 1e-3 of the largest.
//!
//! `cargo test --test parity -- --nocapture` prints the figures.
mod common;
use nanollama::host::{AlignedBuf, ThreadPool};
use nanollama::{Context, ContextParams, Inline, KvType, Model, Parallel};
use std::path::PathBuf;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/parity")
}

struct Case {
    name: String,
    n_vocab: usize,
    tokens: Vec<u32>,
}

fn cases() -> Vec<Case> {
    let text = std::fs::read_to_string(dir().join("manifest.txt"))
        .expect("tests/data/parity/manifest.txt (run tools/make_fixtures.py)");
    let cases: Vec<Case> = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(f.len(), 3, "manifest line: {l}");
            Case {
                name: f[0].to_string(),
                n_vocab: f[1].parse().unwrap(),
                tokens: f[2].split(',').map(|t| t.parse().unwrap()).collect(),
            }
        })
        .collect();
    assert!(cases.len() >= 4, "too few parity fixtures");
    cases
}

fn read_f64(path: PathBuf) -> Vec<f64> {
    let b = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    b.chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn read_f32(path: PathBuf) -> Vec<f64> {
    let b = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)
        .collect()
}

fn log_softmax(x: &[f64]) -> Vec<f64> {
    let m = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let lse = m + x.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
    x.iter().map(|v| v - lse).collect()
}

/// Mean over positions of KL(P_ref || P_test).
fn mean_kl(reference: &[f64], test: &[f64], n_vocab: usize) -> f64 {
    let rows = reference.len() / n_vocab;
    let mut total = 0.0;
    for (r, t) in reference.chunks(n_vocab).zip(test.chunks(n_vocab)) {
        let (lr, lt) = (log_softmax(r), log_softmax(t));
        total += lr
            .iter()
            .zip(&lt)
            .map(|(a, b)| a.exp() * (a - b))
            .sum::<f64>();
    }
    total / rows as f64
}

fn argmax(x: &[f64]) -> usize {
    (0..x.len()).fold(0, |b, i| if x[i] > x[b] { i } else { b })
}

fn our_logits(
    bytes: &[u8],
    tokens: &[u32],
    kv: KvType,
    f32_activations: bool,
    par: &dyn Parallel,
) -> Vec<f32> {
    let mut mm = AlignedBuf::new(Model::size(bytes).unwrap());
    let model = Model::init(bytes, mm.as_mut_slice()).unwrap();
    let p = ContextParams {
        n_ctx: tokens.len() as u32,
        n_batch: tokens.len() as u32,
        kv_type: kv,
        logits_all: true,
        f32_activations,
    };
    let mut cm = AlignedBuf::new(Context::size(&model, &p).unwrap());
    let mut ctx = Context::init(&model, &p, cm.as_mut_slice()).unwrap();
    ctx.decode(tokens, par).unwrap();
    ctx.logits().to_vec()
}

#[test]
fn parity_with_llama_cpp_and_float64() {
    common::kernels_from_env();
    let pool = ThreadPool::new(2);
    let mut failures = Vec::new();
    println!(
        "{:<28} {:>3} {:>4} {:>12} {:>12} {:>8} {:>12} {:>12} {:>12}",
        "model",
        "kv",
        "pos",
        "KL ours",
        "KL llama",
        "argmax",
        "KL as-llama",
        "to-llama",
        "exact-to-ll"
    );
    for case in cases() {
        let bytes = std::fs::read(dir().join(format!("{}.gguf", case.name))).unwrap();
        let reference = read_f64(dir().join(format!("{}.ref.f64", case.name)));
        let n = case.tokens.len();
        assert!(n >= 16, "{}: fewer than 16 positions", case.name);
        assert_eq!(reference.len(), n * case.n_vocab, "{}", case.name);
        for (kv, tag) in [(KvType::F32, "f32"), (KvType::F16, "f16")] {
            let llama = read_f32(dir().join(format!("{}.llama-kv{tag}.f32", case.name)));
            assert_eq!(llama.len(), reference.len());
            let ours32 = our_logits(&bytes, &case.tokens, kv, true, &Inline);
            // The thread pool must not change a single bit.
            let pooled = our_logits(&bytes, &case.tokens, kv, true, &pool);
            let as_llama: Vec<f64> = our_logits(&bytes, &case.tokens, kv, false, &pool)
                .iter()
                .map(|&v| v as f64)
                .collect();
            assert!(
                ours32
                    .iter()
                    .zip(&pooled)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "{}: logits differ with 2 threads",
                case.name
            );
            let ours: Vec<f64> = ours32.iter().map(|&v| v as f64).collect();
            let kl_ours = mean_kl(&reference, &ours, case.n_vocab);
            let kl_llama = mean_kl(&reference, &llama, case.n_vocab);
            let mut checked = 0;
            for (p, ((r, o), a)) in reference
                .chunks(case.n_vocab)
                .zip(ours.chunks(case.n_vocab))
                .zip(as_llama.chunks(case.n_vocab))
                .enumerate()
            {
                let mut sorted = r.to_vec();
                sorted.sort_by(|a, b| b.partial_cmp(a).unwrap());
                if sorted[0] - sorted[1] > 1e-3 * sorted[0].abs() {
                    checked += 1;
                    if argmax(r) != argmax(o) || argmax(r) != argmax(a) {
                        failures.push(format!("{} kv {tag}: argmax differs at {p}", case.name));
                    }
                }
            }
            let kl_as_llama = mean_kl(&reference, &as_llama, case.n_vocab);
            let to_llama = mean_kl(&llama, &as_llama, case.n_vocab);
            let exact_to_llama = mean_kl(&llama, &ours, case.n_vocab);
            println!(
                "{:<28} {:>3} {:>4} {:>12.3e} {:>12.3e} {:>5}/{:<2} {:>12.3e} {:>12.3e} {:>12.3e}",
                case.name,
                tag,
                n,
                kl_ours,
                kl_llama,
                checked,
                n,
                kl_as_llama,
                to_llama,
                exact_to_llama
            );
            // Written so that a NaN KL fails too.
            let closer = to_llama <= 0.5 * exact_to_llama || exact_to_llama.max(to_llama) < 1e-9;
            if !closer {
                failures.push(format!(
                    "{} kv {tag}: llama.cpp-style inputs are not closer to llama.cpp \
                     ({to_llama:e} vs {exact_to_llama:e})",
                    case.name
                ));
            }
            let within = kl_ours <= kl_llama + 1e-6;
            if !within {
                failures.push(format!(
                    "{} kv {tag}: KL {kl_ours:e} > llama.cpp's {kl_llama:e} + 1e-6",
                    case.name
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
