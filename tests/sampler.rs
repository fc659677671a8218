//! The sampler against llama.cpp (fixtures from
//! tools/make_sampler_fixtures.py), through `nanollama sample --dump`; its
//! distribution (chi-squared) and determinism through the Rust API.
mod common;
use common::cli_exe;
use nanollama::sampler::Rng;
use nanollama::{Sampler, SamplerParams, Stage};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/sampler")
}

struct Case {
    name: String,
    row: String,
    n_vocab: String,
    args: Vec<String>,
    expect: BTreeMap<u32, f64>,
}

fn cases() -> Vec<Case> {
    let text = std::fs::read_to_string(dir().join("cases.txt")).unwrap();
    let mut out: Vec<Case> = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (key, rest) = line.split_once(' ').unwrap_or((line, ""));
        match key {
            "case" => out.push(Case {
                name: rest.into(),
                row: String::new(),
                n_vocab: String::new(),
                args: Vec::new(),
                expect: BTreeMap::new(),
            }),
            "row" => {
                let (f, n) = rest.split_once(' ').unwrap();
                let c = out.last_mut().unwrap();
                c.row = f.into();
                c.n_vocab = n.into();
            }
            "args" => out.last_mut().unwrap().args = rest.split(' ').map(String::from).collect(),
            "expect" => {
                for item in rest.split(' ').filter(|s| !s.is_empty()) {
                    let (i, p) = item.split_once(':').unwrap();
                    out.last_mut()
                        .unwrap()
                        .expect
                        .insert(i.parse().unwrap(), p.parse().unwrap());
                }
            }
            _ => panic!("bad line {line}"),
        }
    }
    assert!(out.len() >= 25);
    out
}

#[test]
fn survivors_and_probabilities_match_llama_cpp() {
    let mut failures = Vec::new();
    for c in cases() {
        let o = Command::new(cli_exe())
            .args(["sample", "--logits"])
            .arg(dir().join(&c.row))
            .args(["--n-vocab", &c.n_vocab, "--dump"])
            .args(&c.args)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{}: {}",
            c.name,
            String::from_utf8_lossy(&o.stderr)
        );
        let got: BTreeMap<u32, f64> = String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(|l| {
                let (i, p) = l.split_once(' ').unwrap();
                (i.parse().unwrap(), p.parse().unwrap())
            })
            .collect();
        if got.keys().ne(c.expect.keys()) {
            let extra: Vec<_> = got
                .keys()
                .filter(|k| !c.expect.contains_key(k))
                .take(5)
                .collect();
            let missing: Vec<_> = c
                .expect
                .keys()
                .filter(|k| !got.contains_key(k))
                .take(5)
                .collect();
            failures.push(format!(
                "{}: {} survivors vs llama.cpp's {} (extra {extra:?}, missing {missing:?})",
                c.name,
                got.len(),
                c.expect.len()
            ));
            continue;
        }
        let worst = got
            .iter()
            .map(|(k, p)| (p - c.expect[k]).abs())
            .fold(0.0, f64::max);
        if worst > 1e-5 {
            failures.push(format!("{}: probability off by {worst:e}", c.name));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn sampler_mem(n_vocab: usize, p: &SamplerParams) -> nanollama::host::AlignedBuf {
    nanollama::host::AlignedBuf::new(Sampler::size(n_vocab, p, 0).unwrap())
}

#[test]
fn draws_follow_the_distribution() {
    // Ten tokens with known probabilities; 100000 seeded draws; chi-squared
    // with 9 degrees of freedom must stay below 27.88 (p = 0.001).
    let probs = [0.3f64, 0.2, 0.15, 0.1, 0.08, 0.07, 0.05, 0.03, 0.015, 0.005];
    let logits: Vec<f32> = probs.iter().map(|p| p.ln() as f32).collect();
    let p = SamplerParams {
        temp: 1.0,
        top_k: 0,
        top_p: 1.0,
        min_p: 0.0,
        seed: 42,
        ..SamplerParams::default()
    };
    let mut mem = sampler_mem(10, &p);
    let mut s = Sampler::init(10, &p, &[], mem.as_mut_slice()).unwrap();
    let n = 100_000;
    let mut counts = [0u32; 10];
    for _ in 0..n {
        counts[s.sample(&logits).unwrap() as usize] += 1;
    }
    let chi2: f64 = counts
        .iter()
        .zip(probs)
        .map(|(&c, p)| {
            let e = p * n as f64;
            (c as f64 - e).powi(2) / e
        })
        .sum();
    assert!(chi2 < 27.88, "chi2 {chi2}, counts {counts:?}");
    // And it is not degenerate: a wrong distribution fails the same test.
    let skewed: f64 = counts
        .iter()
        .zip([0.1f64; 10])
        .map(|(&c, p)| (c as f64 - p * n as f64).powi(2) / (p * n as f64))
        .sum();
    assert!(skewed > 1000.0);
}

/// 200 tokens from a fixed pseudo-model whose logits depend on the tokens so
/// far, with penalties so that history matters.
fn generate(seed: u64) -> Vec<u32> {
    let n_vocab = 500;
    let p = SamplerParams {
        seed,
        penalty_repeat: 1.2,
        penalty_freq: 0.1,
        ..SamplerParams::default()
    };
    let mut mem = sampler_mem(n_vocab, &p);
    let mut s = Sampler::init(n_vocab, &p, &[], mem.as_mut_slice()).unwrap();
    let mut out = Vec::new();
    let mut r = Rng(99);
    let mut last = 0u64;
    for _ in 0..200 {
        let mut lr = Rng(last.wrapping_mul(31).wrapping_add(r.next_u64() & 0xff));
        let logits: Vec<f32> = (0..n_vocab).map(|_| (lr.next_f64() * 6.0) as f32).collect();
        let t = s.sample(&logits).unwrap();
        s.accept(t).unwrap();
        out.push(t);
        last = t as u64;
    }
    out
}

#[test]
fn same_seed_same_tokens() {
    let a = generate(7);
    assert_eq!(a, generate(7));
    assert_ne!(a, generate(8));
    let distinct: std::collections::BTreeSet<_> = a.iter().collect();
    assert!(distinct.len() > 20, "the draws vary");
}

#[test]
fn edge_cases_are_defined() {
    let n = 8;
    let base = SamplerParams {
        seed: 1,
        ..SamplerParams::default()
    };
    let mut mem = sampler_mem(n, &base);
    // NaN counts as -inf; +inf tokens share everything.
    let mut s = Sampler::init(n, &base, &[], mem.as_mut_slice()).unwrap();
    let nan = [
        f32::NAN,
        1.0,
        f32::NAN,
        0.5,
        f32::NAN,
        f32::NAN,
        f32::NAN,
        f32::NAN,
    ];
    let c: Vec<_> = s.candidates(&nan).unwrap().iter().map(|c| c.id).collect();
    assert!(c.contains(&1) && !c.contains(&0));
    let inf = [0.0, f32::INFINITY, 3.0, f32::INFINITY, 0.0, 0.0, 0.0, 0.0];
    let c = s.candidates(&inf).unwrap();
    assert_eq!(c.len(), 2);
    assert!((c[0].p - 0.5).abs() < 1e-6 && (c[1].p - 0.5).abs() < 1e-6);
    assert_eq!(
        s.sample(&[f32::NAN; 8]),
        Err(nanollama::Error::NoCandidates)
    );
    assert_eq!(
        s.sample(&[f32::NEG_INFINITY; 8]),
        Err(nanollama::Error::NoCandidates)
    );
    assert_eq!(s.sample(&[0.0; 7]), Err(nanollama::Error::InvalidArgument));
    assert_eq!(s.accept(8), Err(nanollama::Error::TokenOutOfRange));
    // Temperature 0 is greedy, top_k above the vocabulary keeps all, top_p 0
    // keeps one.
    let logits = [0.1, 0.9, 0.3, 2.5, -1.0, 2.4, 0.0, 0.2];
    for (p, want_len) in [
        (SamplerParams { temp: 0.0, ..base }, 1),
        (
            SamplerParams {
                top_k: 1000,
                top_p: 1.0,
                min_p: 0.0,
                ..base
            },
            8,
        ),
        (SamplerParams { top_p: 0.0, ..base }, 1),
    ] {
        let mut m = sampler_mem(n, &p);
        let mut s = Sampler::init(n, &p, &[], m.as_mut_slice()).unwrap();
        assert_eq!(s.candidates(&logits).unwrap().len(), want_len, "{p:?}");
        assert_eq!(s.sample(&logits).unwrap() == 3, want_len == 1);
    }
    // An empty chain still draws from the softmax.
    let p = SamplerParams {
        n_stages: 0,
        ..base
    };
    let mut m = sampler_mem(n, &p);
    let mut s = Sampler::init(n, &p, &[], m.as_mut_slice()).unwrap();
    assert_eq!(s.candidates(&logits).unwrap().len(), 8);
    // Bad settings are refused.
    for bad in [
        SamplerParams {
            temp: f32::NAN,
            ..base
        },
        SamplerParams {
            n_stages: 99,
            ..base
        },
        SamplerParams {
            mirostat: 1,
            ..base
        },
    ] {
        assert_eq!(
            Sampler::size(n, &bad, 0),
            Err(nanollama::Error::InvalidArgument)
        );
    }
    let bias = [nanollama::sampler::LogitBias {
        token: 8,
        bias: 1.0,
    }];
    assert!(Sampler::init(n, &base, &bias, mem.as_mut_slice()).is_err());
    let _ = Stage::from_u8(7).unwrap();
}

#[test]
fn mirostat_v2_draws_and_adapts() {
    let p = SamplerParams {
        mirostat: 2,
        mirostat_tau: 3.0,
        seed: 5,
        ..SamplerParams::default()
    };
    let n = 200;
    let logits: Vec<f32> = (0..n).map(|i| -(i as f32) * 0.05).collect();
    let mut mem = sampler_mem(n, &p);
    let mut s = Sampler::init(n, &p, &[], mem.as_mut_slice()).unwrap();
    let toks: Vec<u32> = (0..300).map(|_| s.sample(&logits).unwrap()).collect();
    // Surprise averages near tau: the kept set is small but not one token.
    let distinct: std::collections::BTreeSet<_> = toks.iter().collect();
    assert!(
        distinct.len() > 3 && distinct.len() < 100,
        "{}",
        distinct.len()
    );
}
