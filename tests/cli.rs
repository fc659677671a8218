//! The command-line example: `info` and `logits` on good and bad input.
mod common;
use common::*;
use nanollama::{Context, ContextParams, Inline, KvType, Model};
use std::path::PathBuf;
use std::process::{Command, Output};

fn exe() -> PathBuf {
    cli_exe()
}

fn tmp(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cli");
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

fn nanollama(args: &[&str]) -> Output {
    Command::new(exe()).args(args).output().unwrap()
}

/// Fails unless the program exited (not by a signal) with a non-zero code
/// and one line on stderr.
fn assert_refused(o: &Output, what: &str) -> String {
    let code = o.status.code();
    assert!(
        code.is_some_and(|c| c != 0),
        "{what}: status {:?}",
        o.status
    );
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(err.starts_with("nanollama: "), "{what}: {err}");
    assert_eq!(err.lines().count(), 1, "{what}: {err}");
    err
}

fn model_file(name: &str, t: u32) -> (PathBuf, Vec<u8>) {
    let bytes = tiny_model(&TinyConfig::default(), t, 4);
    let p = tmp(name);
    std::fs::write(&p, &bytes).unwrap();
    (p, bytes)
}

#[test]
fn info_prints_hyperparameters_and_tensors() {
    let (p, _) = model_file("info.gguf", ty::Q8_0);
    let o = nanollama(&["info", p.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    for want in [
        "blk.1.ffn_down.weight",
        "Q8_0",
        "dim 64  layers 2  heads 4  kv_heads 2",
        "vocab 100",
        "llama.context_length = 64",
    ] {
        assert!(out.contains(want), "missing {want:?} in\n{out}");
    }
}

#[test]
fn logits_match_the_library_bit_for_bit() {
    let (p, bytes) = model_file("logits.gguf", ty::F16);
    let tokens = [7u32, 3, 99, 0, 12];
    let mut mm = AlignedBuf::new(Model::size(&bytes).unwrap());
    let m = Model::init(&bytes, mm.as_mut_slice()).unwrap();
    for (kv, kv_name) in [(KvType::F32, "f32"), (KvType::F16, "f16")] {
        let params = ContextParams {
            n_ctx: 5,
            n_batch: 5,
            kv_type: kv,
            logits_all: true,
        };
        let mut cm = AlignedBuf::new(Context::size(&m, &params).unwrap());
        let mut ctx = Context::init(&m, &params, cm.as_mut_slice()).unwrap();
        ctx.decode(&tokens, &Inline).unwrap();
        let want: Vec<u8> = ctx.logits().iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(want.len(), 5 * 100 * 4);
        for threads in ["1", "2"] {
            let out = tmp(&format!("logits-{kv_name}-{threads}.f32"));
            let o = nanollama(&[
                "logits",
                p.to_str().unwrap(),
                "--tokens",
                "7,3,99,0,12",
                "--threads",
                threads,
                "--kv",
                kv_name,
                "--out",
                out.to_str().unwrap(),
            ]);
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            assert_eq!(
                std::fs::read(&out).unwrap(),
                want,
                "kv {kv_name}, {threads} threads"
            );
        }
    }
}

#[test]
fn bad_files_and_arguments_exit_nonzero_with_a_message() {
    let (good, bytes) = model_file("good.gguf", ty::F32);
    let good = good.to_str().unwrap().to_string();
    let mut bad: Vec<(String, Vec<u8>)> = vec![
        ("empty".into(), vec![]),
        ("truncated".into(), bytes[..bytes.len() / 3].to_vec()),
        ("header-only".into(), bytes[..30].to_vec()),
    ];
    let mut b = bytes.clone();
    b[0] = b'g';
    bad.push(("magic".into(), b));
    let mut b = bytes.clone();
    b[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    bad.push(("count".into(), b));
    let base = || tiny_builder(&TinyConfig::default(), ty::F32, 4);
    let mut g = base();
    g.tensors[3].ty = 77;
    bad.push(("type".into(), g.build()));
    let mut g = base();
    g.kv_u32("llama.attention.head_count_kv", 3);
    bad.push(("kv-heads".into(), g.build()));
    let mut g = base();
    g.tensors.retain(|t| t.name != "output_norm.weight");
    bad.push(("no-output-norm".into(), g.build()));
    let mut g = base();
    g.tensors[0].dims = vec![1 << 40, 1 << 40];
    bad.push(("dims".into(), g.build()));
    bad.push((
        "offset".into(),
        base().build_with(|i, o| if i == 5 { o + (1 << 30) } else { o }),
    ));
    let mut g = base();
    g.kv_str("general.architecture", "mamba");
    bad.push(("arch".into(), g.build()));
    let mut g = base();
    g.alignment = 48;
    g.kv_u32("general.alignment", 48);
    bad.push(("alignment".into(), g.build()));
    for (name, b) in &bad {
        let p = tmp(&format!("bad-{name}.gguf"));
        std::fs::write(&p, b).unwrap();
        let p = p.to_str().unwrap();
        assert_refused(&nanollama(&["info", p]), name);
        let out = tmp("never.f32");
        let o = nanollama(&[
            "logits",
            p,
            "--tokens",
            "1,2",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_refused(&o, name);
    }
    let out = tmp("x.f32");
    let out = out.to_str().unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["info", "/nonexistent/model.gguf"], "No such file"),
        (
            vec!["logits", &good, "--tokens", "1,x", "--out", out],
            "bad --tokens",
        ),
        (
            vec!["logits", &good, "--tokens", "1,100", "--out", out],
            "token id outside the vocabulary",
        ),
        (
            vec!["logits", &good, "--tokens", "1", "--kv", "q4", "--out", out],
            "bad --kv",
        ),
        (
            vec![
                "logits",
                &good,
                "--tokens",
                "1",
                "--threads",
                "0",
                "--out",
                out,
            ],
            "bad --threads",
        ),
        (vec!["logits", &good, "--tokens", "1"], "needs --out"),
        (vec!["frobnicate"], "unknown subcommand"),
        (vec![], "missing subcommand"),
    ];
    for (args, msg) in cases {
        let err = assert_refused(&nanollama(&args), msg);
        assert!(err.contains(msg), "{args:?}: {err}");
    }
}

#[test]
fn tokenize_and_detokenize() {
    let vocab = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/vocab/ggml-vocab-llama-spm.gguf");
    let v = vocab.to_str().unwrap();
    let o = nanollama(&["tokenize", v, "Hello world"]);
    assert!(o.status.success());
    assert_eq!(String::from_utf8_lossy(&o.stdout), "1 15043 3186\n");
    let o = nanollama(&["tokenize", v, "--no-bos", "--", "-x"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let ids: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .map(String::from)
        .collect();
    assert!(!ids.is_empty() && ids[0] != "1");
    let mut args = vec!["detokenize", v];
    args.extend(ids.iter().map(String::as_str));
    let o = nanollama(&args);
    assert_eq!(String::from_utf8_lossy(&o.stdout), " -x");
    let o = nanollama(&["tokenize", v, "--special", "<s>a"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "1 1 263\n");
    assert_refused(&nanollama(&["detokenize", v, "32000"]), "out of range");
    assert_refused(
        &nanollama(&["tokenize", v, "--bogus", "x"]),
        "unknown option",
    );
    assert_refused(&nanollama(&["tokenize", v]), "no text");
}

#[test]
fn generate_streams_text_and_reports_speed() {
    let (p, _) = model_file("gen.gguf", ty::F32);
    // The test model has no vocabulary: generate needs one.
    let o = nanollama(&["generate", p.to_str().unwrap(), "-n", "4"]);
    let err = assert_refused(&o, "no vocabulary");
    assert!(err.contains("tokenizer"), "{err}");
    let model =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/parity/mha-hd64-f32.gguf");
    let run = |seed: &str| {
        let o = nanollama(&[
            "generate",
            model.to_str().unwrap(),
            "-p",
            "<t3>",
            "-n",
            "12",
            "--seed",
            seed,
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(err.contains("generation: 12 tokens"), "{err}");
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let a = run("1");
    // Twelve tokens were drawn; one may be the end token, which is not shown.
    assert!((11..=12).contains(&a.matches("<t").count()), "{a}");
    assert_eq!(a, run("1"));
    assert_ne!(a, run("2"));
}

#[test]
fn generate_with_the_shipped_model() {
    // No model argument: the model in models/ is used.
    let run = || {
        let o = nanollama(&[
            "generate",
            "--prompt",
            "And it came to pass",
            "-n",
            "16",
            "--seed",
            "7",
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(String::from_utf8_lossy(&o.stderr).contains("tok/s"));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let a = run();
    assert!(a.starts_with(" And it came to pass"), "{a}");
    assert!(a.len() > "And it came to pass".len() + 16, "{a}");
    assert_eq!(a, run());
}
