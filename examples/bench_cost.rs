//! The cost benchmark of issue 16: the inputs that once cost far more than
//! their size, timed at growing sizes, with the growth factor per step.
//! Bounded cost means about x10 per tenfold (x1.2 more for n log n); a
//! quadratic path shows as x100.
//!
//! ```text
//! cargo run --release --example bench_cost [-- --reps 5 --max 1000000]
//! ```
//!
//! Reads the vocabularies in `tests/data/vocab/` and the hostile ones in
//! `tests/data/hostile/vocab/` (tools/make_flood.py). Medians of `--reps`
//! runs (3 at the largest size).
use nanollama::host::AlignedBuf;
use nanollama::tokenizer::Vocab;
use nanollama::{Sampler, SamplerParams};
use std::time::Instant;

fn read(rel: &str) -> Vec<u8> {
    let p = format!("{}/{rel}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median seconds of `f` over `reps` runs.
fn time(reps: usize, mut f: impl FnMut()) -> f64 {
    median(
        (0..reps)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64()
            })
            .collect(),
    )
}

/// One row per size: the time and its growth over the previous size.
fn report(what: &str, unit: &str, sizes: &[usize], secs: &[f64]) {
    println!("\n{what}");
    println!("| {unit} | time | growth | size step |");
    println!("| ---: | ---: | ---: | ---: |");
    for (i, (&n, &s)) in sizes.iter().zip(secs).enumerate() {
        let (g, step) = if i == 0 {
            ("".to_string(), "".to_string())
        } else {
            (
                format!("x{:.1}", s / secs[i - 1]),
                format!("x{}", n / sizes[i - 1]),
            )
        };
        println!("| {n} | {} | {g} | {step} |", fmt_secs(s));
    }
}

fn fmt_secs(s: f64) -> String {
    if s < 1e-3 {
        format!("{:.1} us", s * 1e6)
    } else if s < 1.0 {
        format!("{:.1} ms", s * 1e3)
    } else {
        format!("{s:.2} s")
    }
}

/// Runs `f` with the vocabulary of `file` loaded.
fn with_vocab<R>(file: &[u8], f: impl FnOnce(&Vocab<'_>) -> R) -> R {
    let mut mem = AlignedBuf::new(Vocab::size(file).expect("vocab size"));
    f(&Vocab::init(file, mem.as_mut_slice()).expect("vocab init"))
}

/// Tokenizes `text` (median time); returns seconds and the token count.
fn tokenize(v: &Vocab<'_>, text: &[u8], special: bool, reps: usize) -> (f64, usize) {
    let n = Vocab::scratch_size(text.len()).unwrap();
    let mut scratch = AlignedBuf::new(n);
    let mut needed = 0;
    let mut run = |out: &mut [u32], needed: &mut usize| {
        v.tokenize(text, false, special, scratch.as_mut_slice(), out, needed)
    };
    // The size asked for first (not timed).
    let _ = run(&mut [], &mut needed);
    let mut out = vec![0u32; needed];
    let mut k = 0;
    let s = time(reps, || {
        k = run(&mut out, &mut needed).expect("tokenize");
    });
    (s, k)
}

/// A SentencePiece vocabulary-only GGUF of `tokens` (types `types`).
fn spm_vocab(tokens: &[&[u8]], types: &[i32]) -> Vec<u8> {
    let mut f = b"GGUF".to_vec();
    let s = |f: &mut Vec<u8>, b: &[u8]| {
        f.extend_from_slice(&(b.len() as u64).to_le_bytes());
        f.extend_from_slice(b);
    };
    let arr = |f: &mut Vec<u8>, key: &[u8], elem: u32, n: usize| {
        s(f, key);
        f.extend_from_slice(&9u32.to_le_bytes());
        f.extend_from_slice(&elem.to_le_bytes());
        f.extend_from_slice(&(n as u64).to_le_bytes());
    };
    f.extend_from_slice(&3u32.to_le_bytes());
    f.extend_from_slice(&0u64.to_le_bytes());
    f.extend_from_slice(&5u64.to_le_bytes());
    for (k, v) in [
        ("general.architecture", "llama"),
        ("tokenizer.ggml.model", "llama"),
    ] {
        s(&mut f, k.as_bytes());
        f.extend_from_slice(&8u32.to_le_bytes());
        s(&mut f, v.as_bytes());
    }
    arr(&mut f, b"tokenizer.ggml.tokens", 8, tokens.len());
    for t in tokens {
        s(&mut f, t);
    }
    arr(&mut f, b"tokenizer.ggml.scores", 6, tokens.len());
    for i in 0..tokens.len() {
        f.extend_from_slice(&(-(i as f32)).to_le_bytes());
    }
    arr(&mut f, b"tokenizer.ggml.token_type", 5, types.len());
    for t in types {
        f.extend_from_slice(&t.to_le_bytes());
    }
    f
}

/// A GGUF of `t` one-row F32 tensors whose names share 54 bytes.
fn many_tensors(t: usize) -> Vec<u8> {
    let s = |f: &mut Vec<u8>, b: &[u8]| {
        f.extend_from_slice(&(b.len() as u64).to_le_bytes());
        f.extend_from_slice(b);
    };
    let mut f = b"GGUF".to_vec();
    f.extend_from_slice(&3u32.to_le_bytes());
    f.extend_from_slice(&(t as u64).to_le_bytes());
    f.extend_from_slice(&1u64.to_le_bytes());
    s(&mut f, b"general.architecture");
    f.extend_from_slice(&8u32.to_le_bytes());
    s(&mut f, b"llama");
    for i in 0..t {
        s(&mut f, format!("{}{i:09}", "x".repeat(54)).as_bytes());
        f.extend_from_slice(&1u32.to_le_bytes());
        f.extend_from_slice(&8u64.to_le_bytes());
        f.extend_from_slice(&0u32.to_le_bytes());
        f.extend_from_slice(&(32 * i as u64).to_le_bytes());
    }
    f.resize(f.len().div_ceil(32) * 32 + 32 * t, 0);
    f
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |name: &str, default: usize| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .map(|v| v.parse().expect("a number"))
            .unwrap_or(default)
    };
    let reps = arg("--reps", 5);
    let max = arg("--max", 1_000_000);
    let sizes: Vec<usize> = [1_000, 10_000, 100_000, 1_000_000]
        .into_iter()
        .filter(|&n| n <= max)
        .collect();
    let reps_at = |_: usize| reps;

    // No tokenizer: what the memory hierarchy alone does to a linear pass
    // over as much state as the BPE of one long word (about 40 bytes per
    // byte: code points, symbols, bucket entries), read and written 8 times.
    let secs: Vec<f64> = sizes
        .iter()
        .map(|&n| {
            let mut state = vec![[0u64; 5]; n];
            time(reps_at(n), || {
                for pass in 0..8u64 {
                    for e in state.iter_mut() {
                        e[0] = e[0].wrapping_add(pass);
                        e[4] = e[4].wrapping_add(e[0]);
                    }
                }
                std::hint::black_box(&mut state);
            })
        })
        .collect();
    report(
        "memory floor: 8 passes over 40 bytes per byte (no tokenizer)",
        "bytes",
        &sizes,
        &secs,
    );

    // One long pre-token.
    for (file, byte, what) in [
        ("llama-bpe", b'a', "LLaMA 3 BPE, `a` x N"),
        (
            "llama-bpe",
            0xff,
            "LLaMA 3 BPE, 0xFF x N (three symbols a byte)",
        ),
        ("llama-spm", b'a', "LLaMA SentencePiece, `a` x N"),
    ] {
        let bytes = read(&format!("tests/data/vocab/ggml-vocab-{file}.gguf"));
        let secs: Vec<f64> = with_vocab(&bytes, |v| {
            sizes
                .iter()
                .map(|&n| tokenize(v, &vec![byte; n], false, reps_at(n)).0)
                .collect()
        });
        report(what, "bytes", &sizes, &secs);
    }

    // 65,536 control tokens that start like the text, special parsing on.
    let flood = read("tests/data/hostile/vocab/flood-special.gguf");
    let secs: Vec<f64> = with_vocab(&flood, |v| {
        sizes
            .iter()
            .map(|&n| tokenize(v, &vec![b'a'; n], true, reps_at(n)).0)
            .collect()
    });
    report(
        "65,536 special tokens starting \"aa\", `a` x N, special on",
        "bytes",
        &sizes,
        &secs,
    );

    // The FNV-1a flood: load time by number of colliding tokens, and a
    // short text tokenized with the whole flood loaded.
    let fnv = read("tests/data/hostile/vocab/flood-fnv.gguf");
    let counts = [1 << 10, 1 << 13, 1 << 16];
    with_vocab(&fnv, |full| {
        let mut secs = Vec::new();
        for &c in &counts {
            let ids = 0..5 + c as u32;
            let toks: Vec<&[u8]> = ids.clone().map(|id| full.token_text(id)).collect();
            let types: Vec<i32> = ids
                .map(|id| match id {
                    0 => 2,
                    1 | 2 => 3,
                    _ => 1,
                })
                .collect();
            let file = spm_vocab(&toks, &types);
            let mut mem = AlignedBuf::new(Vocab::size(&file).expect("size"));
            secs.push(time(reps, || {
                Vocab::init(&file, mem.as_mut_slice()).expect("init");
            }));
        }
        report(
            "FNV-1a flood vocabulary (tokens colliding in the old table), Vocab::init",
            "tokens",
            &counts,
            &secs,
        );
        let text = b"aaaaaaaaa aaaaaaaaaaaaa aaaaaaaaa aaaaaaaaaaa aaaaaaaa";
        let (s, _) = tokenize(full, text, false, reps);
        println!(
            "\nwith the whole flood loaded, {} bytes tokenize in {} (the old table: 26.8 ms)",
            text.len(),
            fmt_secs(s)
        );
    });

    // Gguf::parse of T tensor records with 63-byte names sharing a prefix
    // (names are checked unique: in passes of 256 names, so ~T^2/512
    // hashes; the maximum is 8,192 tensors).
    let counts = [1024usize, 2048, 4096, 8192];
    let secs: Vec<f64> = counts
        .iter()
        .map(|&t| {
            let file = many_tensors(t);
            time(reps, || {
                nanollama::Gguf::parse(&file).expect("parse");
            })
        })
        .collect();
    report(
        "Gguf::parse, T tensors named with a 54-byte common prefix",
        "tensors",
        &counts,
        &secs,
    );

    // Penalties over LLaMA 3's vocabulary, a full window of distinct tokens.
    let n_vocab = 128_256;
    let logits: Vec<f32> = (0..n_vocab).map(|i| (i % 97) as f32 * 0.01).collect();
    let windows = [1024usize, 4096, 16_384, 65_536];
    let secs: Vec<f64> = windows
        .iter()
        .map(|&w| {
            let p = SamplerParams {
                penalty_last_n: w as u32,
                penalty_repeat: 1.1,
                penalty_freq: 0.1,
                ..SamplerParams::default()
            };
            let size = Sampler::size(n_vocab, &p, 0).expect("size");
            let mut mem = AlignedBuf::new(size);
            let mut s = Sampler::init(n_vocab, &p, &[], mem.as_mut_slice()).expect("init");
            for i in 0..w {
                s.accept((i * 7919 % n_vocab) as u32).expect("accept");
            }
            time(reps.max(9), || {
                s.sample(&logits).expect("sample");
            })
        })
        .collect();
    report(
        "one sample() call, 128,256 tokens, penalties over a full window of distinct tokens",
        "window",
        &windows,
        &secs,
    );
}
