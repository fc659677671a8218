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

/// Found by fuzzing (fuzz/fuzz_targets/sampler.rs): infinities and NaN made
/// by the chain itself, not by the input, follow the input's rules.
#[test]
fn infinities_made_inside_the_chain_are_defined() {
    let n = 8;
    let logits = [0.1, 0.9, 0.3, 2.5, -1.0, 2.5, 0.0, f32::NAN];
    // A tiny temperature turns the two largest logits into +inf: they share
    // all the probability (before: NaN probabilities).
    let p = SamplerParams {
        temp: 5e-39,
        top_k: 0,
        top_p: 1.0,
        min_p: 0.0,
        seed: 3,
        ..SamplerParams::default()
    };
    let mut m = sampler_mem(n, &p);
    let mut s = Sampler::init(n, &p, &[], m.as_mut_slice()).unwrap();
    let c = s.candidates(&logits).unwrap().to_vec();
    assert_eq!(c.len(), 2, "{c:?}");
    assert!(c.iter().all(|c| (c.id == 3 || c.id == 5) && c.p == 0.5));
    for _ in 0..20 {
        assert!(matches!(s.sample(&logits), Ok(3 | 5)));
    }
    // Penalties leave an impossible (NaN) token impossible, even a negative
    // or zero repetition penalty; and when they make every survivor
    // impossible there is nothing to draw, and the call changes nothing.
    for rep in [-1.0, 0.0] {
        let p = SamplerParams {
            penalty_repeat: rep,
            penalty_freq: 0.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            seed: 9,
            ..SamplerParams::default()
        };
        let mut m = sampler_mem(n, &p);
        let mut s = Sampler::init(n, &p, &[], m.as_mut_slice()).unwrap();
        s.accept(7).unwrap();
        let c = s.candidates(&logits).unwrap();
        assert!(
            c.iter().all(|c| c.id != 7 && c.p.is_finite()),
            "{rep}: {c:?}"
        );
    }
    let p = SamplerParams {
        penalty_freq: f32::MAX,
        xtc_probability: 1.0,
        xtc_threshold: 0.0,
        seed: 5,
        ..SamplerParams::default()
    };
    let mut m = sampler_mem(n, &p);
    let mut s = Sampler::init(n, &p, &[], m.as_mut_slice()).unwrap();
    let mut m2 = sampler_mem(n, &p);
    let mut twin = Sampler::init(n, &p, &[], m2.as_mut_slice()).unwrap();
    for t in [1, 3] {
        s.accept(t).unwrap();
        twin.accept(t).unwrap();
    }
    // Only tokens 1 and 3 are possible, and the penalty takes both away.
    let nan = f32::NAN;
    let only = [f32::NEG_INFINITY, 1.0, nan, 2.0, nan, nan, nan, nan];
    assert_eq!(s.sample(&only), Err(nanollama::Error::NoCandidates));
    assert_eq!(
        s.candidates(&only).err(),
        Some(nanollama::Error::NoCandidates)
    );
    // Same draws afterwards as a twin that never saw the failed calls.
    for _ in 0..10 {
        assert_eq!(s.sample(&logits), twin.sample(&logits));
    }
}

/// Found by fuzzing: mirostat's mu overflowed with extreme (finite) tau and
/// eta, and the state the sampler then saved was refused on load.
#[test]
fn mirostat_state_with_extreme_settings_round_trips() {
    let n = 8;
    let logits = [0.1, 0.9, 0.3, 2.5, -1.0, 2.4, 0.0, 0.2];
    for (tau, eta) in [(f32::MAX, 1.0), (1.0, f32::MAX), (-f32::MAX, f32::MAX)] {
        let p = SamplerParams {
            mirostat: 2,
            mirostat_tau: tau,
            mirostat_eta: eta,
            ..SamplerParams::default()
        };
        let mut m = sampler_mem(n, &p);
        let mut s = Sampler::init(n, &p, &[], m.as_mut_slice()).unwrap();
        for _ in 0..4 {
            s.sample(&logits).unwrap();
            let mut state = vec![0u8; s.state_size()];
            s.save_state(&mut state).unwrap();
            let mut m2 = sampler_mem(n, &p);
            let mut t = Sampler::init(n, &p, &[], m2.as_mut_slice()).unwrap();
            t.load_state(&state).unwrap();
            assert_eq!(t.sample(&logits), s.sample(&logits));
        }
    }
}

/// Found by fuzzing: a logit bias after a sorting stage (a custom order)
/// left the candidates unsorted, so the probabilities' cut-off dropped some.
#[test]
fn a_logit_bias_after_a_sort_sorts_again() {
    let n = 8;
    let logits = [0.1, 0.9, 0.3, 2.5, -1.0, 2.5, 0.0, f32::NAN];
    // The biased token moves from first to last; every candidate survives.
    let mut order = [Stage::Temperature; 16];
    order[..3].copy_from_slice(&[Stage::TopK, Stage::LogitBias, Stage::TopP]);
    let p = SamplerParams {
        top_k: 4,
        top_p: 0.0,
        min_keep: 4,
        order,
        n_stages: 3,
        ..SamplerParams::default()
    };
    let bias = [nanollama::sampler::LogitBias {
        token: 3,
        bias: -10.0,
    }];
    let mut m = nanollama::host::AlignedBuf::new(Sampler::size(n, &p, 1).unwrap());
    let mut s = Sampler::init(n, &p, &bias, m.as_mut_slice()).unwrap();
    let c = s.candidates(&logits).unwrap();
    let ids: Vec<u32> = c.iter().map(|c| c.id).collect();
    assert_eq!(ids, [5, 1, 2, 3], "{c:?}");
    assert!((c.iter().map(|c| c.p).sum::<f32>() - 1.0).abs() < 1e-6);
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
