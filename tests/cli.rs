//! The command-line example: `info` and `logits` on good and bad input
//! (exit codes: 0 success, 1 a file or model error, 2 a usage error).
mod common;
use common::*;
use nanollama::{Context, ContextParams, Error, Inline, KvType, Model};
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
    for (name, t, tied) in [
        ("info-q8_0.gguf", ty::Q8_0, false),
        ("info-bf16-tied.gguf", ty::BF16, true),
    ] {
        let c = TinyConfig {
            tied,
            ..TinyConfig::default()
        };
        let b = tiny_builder(&c, t, 4);
        let p = tmp(name);
        std::fs::write(&p, b.build()).unwrap();
        let o = nanollama(&["info", p.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(0), "{name}: {:?}", o.status);
        assert!(
            o.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        let out = String::from_utf8_lossy(&o.stdout);
        for want in [
            "dim 64  layers 2  heads 4  kv_heads 2",
            "vocab 100",
            "llama.context_length = 64",
            &format!("{} tensors", b.tensors.len()),
        ] {
            assert!(out.contains(want), "{name}: missing {want:?} in\n{out}");
        }
        assert_eq!(out.contains("(tied to token_embd)"), tied, "{out}");
        // Every tensor is listed once, with its type on the same line.
        for spec in &b.tensors {
            let ty_name = nanollama::gguf::GgmlType(spec.ty).name();
            let lines: Vec<&str> = out
                .lines()
                .filter(|l| l.split_whitespace().next() == Some(spec.name.as_str()))
                .collect();
            assert_eq!(lines.len(), 1, "{name}: {} in\n{out}", spec.name);
            assert!(
                lines[0].split_whitespace().nth(1) == Some(ty_name),
                "{name}: {} should be {ty_name}: {}",
                spec.name,
                lines[0]
            );
        }
    }
}

#[test]
fn logits_match_the_library_bit_for_bit() {
    let (p, bytes) = model_file("logits.gguf", ty::F16);
    let tokens = [7u32, 3, 99, 0, 12];
    let mut mm = AlignedBuf::new(Model::size(&bytes).unwrap());
    let m = Model::init(&bytes, mm.as_mut_slice()).unwrap();
    let n_vocab = m.config().n_vocab;
    for (kv, kv_name) in [(KvType::F32, "f32"), (KvType::F16, "f16")] {
        let params = ContextParams {
            n_ctx: 5,
            n_batch: 5,
            kv_type: kv,
            logits_all: true,
            ..ContextParams::default()
        };
        let mut cm = AlignedBuf::new(Context::size(&m, &params).unwrap());
        let mut ctx = Context::init(&m, &params, cm.as_mut_slice()).unwrap();
        ctx.decode(&tokens, &Inline).unwrap();
        let want: Vec<u8> = ctx.logits().iter().flat_map(|v| v.to_le_bytes()).collect();
        for threads in ["1", "2", "3"] {
            let out = tmp(&format!("logits-{kv_name}-{threads}.f32"));
            let _ = std::fs::remove_file(&out);
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
            assert_eq!(
                o.status.code(),
                Some(0),
                "{}",
                String::from_utf8_lossy(&o.stderr)
            );
            let got = std::fs::read(&out).unwrap();
            // n_tokens x n_vocab little-endian f32s, nothing else.
            assert_eq!(got.len(), tokens.len() * n_vocab * 4);
            assert!(
                got == want,
                "kv {kv_name}, {threads} threads: not bit-identical"
            );
        }
    }
    // The default KV type is f32, and one token gives one row.
    let out = tmp("logits-default.f32");
    let o = nanollama(&[
        "logits",
        p.to_str().unwrap(),
        "--tokens",
        "7",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0));
    let params = ContextParams {
        n_ctx: 1,
        n_batch: 1,
        kv_type: KvType::F32,
        logits_all: true,
        ..ContextParams::default()
    };
    let mut cm = AlignedBuf::new(Context::size(&m, &params).unwrap());
    let mut ctx = Context::init(&m, &params, cm.as_mut_slice()).unwrap();
    ctx.decode(&[7], &Inline).unwrap();
    let want: Vec<u8> = ctx.logits().iter().flat_map(|v| v.to_le_bytes()).collect();
    assert!(std::fs::read(&out).unwrap() == want);
}

/// Hostile model files, each with the error the library gives for it.
fn hostile_files(bytes: &[u8]) -> Vec<(&'static str, Vec<u8>, Error)> {
    let base = || tiny_builder(&TinyConfig::default(), ty::F32, 4);
    let mut bad = vec![
        ("empty", vec![], Error::Truncated),
        ("inside-magic", bytes[..2].to_vec(), Error::Truncated),
        (
            "truncated-data",
            bytes[..bytes.len() / 3].to_vec(),
            Error::TensorPastEnd,
        ),
        ("header-only", bytes[..30].to_vec(), Error::CountTooLarge),
    ];
    let mut b = bytes.to_vec();
    b[0] = b'g';
    bad.push(("magic", b, Error::BadMagic));
    let mut b = bytes.to_vec();
    b[4] = 1;
    bad.push(("version-1", b, Error::UnsupportedVersion));
    let mut b = bytes.to_vec();
    b[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    bad.push(("tensor-count", b, Error::CountTooLarge));
    let mut b = bytes.to_vec();
    b[24..32].copy_from_slice(&u64::MAX.to_le_bytes());
    bad.push(("key-length", b, Error::StringPastEnd));
    let mut g = base();
    g.tensors[3].ty = 77;
    bad.push(("tensor-type", g.build(), Error::UnknownType));
    let mut g = base();
    g.tensors[0].dims = vec![1 << 40, 1 << 40];
    bad.push(("dims", g.build(), Error::BadDimensions));
    bad.push((
        "offset",
        base().build_with(|i, o| if i == 5 { o + (1 << 30) } else { o }),
        Error::TensorPastEnd,
    ));
    let mut g = base();
    g.alignment = 48;
    g.kv_u32("general.alignment", 48);
    bad.push(("alignment", g.build(), Error::DataMisaligned));
    let mut g = base();
    g.kv_raw("x.b", vt::BOOL, vec![2]);
    bad.push(("bool-2", g.build(), Error::BadMetadata));
    let mut g = base();
    g.kv_str("general.architecture", "mamba");
    bad.push(("arch", g.build(), Error::UnsupportedArchitecture));
    let mut g = base();
    g.remove_kv("llama.block_count");
    bad.push(("no-block-count", g.build(), Error::MissingKey));
    let mut g = base();
    g.kv_u32("llama.attention.head_count_kv", 3);
    bad.push(("kv-heads", g.build(), Error::BadHyperparameters));
    let mut g = base();
    g.tensors.retain(|t| t.name != "output_norm.weight");
    bad.push(("no-output-norm", g.build(), Error::MissingTensor));
    let mut g = base();
    g.tensors[3].dims.swap(0, 1); // blk.0.attn_k transposed
    bad.push(("shape", g.build(), Error::TensorShape));
    let mut g = base();
    let dup = g.tensors[4].clone();
    g.tensors.push(dup);
    bad.push(("duplicate", g.build(), Error::DuplicateTensor));
    let mut g = base();
    let t = &mut g.tensors[5];
    t.ty = ty::IQ4_NL;
    t.data = vec![0; (t.dims[0] * t.dims[1]) as usize / 32 * 18];
    bad.push(("iq4_nl", g.build(), Error::UnsupportedTensorType));
    bad
}

#[test]
fn bad_files_and_arguments_exit_nonzero_with_a_message() {
    let (good, bytes) = model_file("good.gguf", ty::F32);
    let good = good.to_str().unwrap().to_string();
    let out = tmp("never.f32");
    let out = out.to_str().unwrap();
    for (name, b, want) in hostile_files(&bytes) {
        // The library gives the error that the program should report.
        assert_eq!(
            Model::size(&b).err().or_else(|| {
                let mut mem = AlignedBuf::new(Model::size(&b).unwrap());
                Model::init(&b, mem.as_mut_slice()).err()
            }),
            Some(want),
            "{name}"
        );
        let p = tmp(&format!("bad-{name}.gguf"));
        std::fs::write(&p, &b).unwrap();
        let p = p.to_str().unwrap();
        let _ = std::fs::remove_file(out);
        for args in [
            vec!["info", p],
            vec!["logits", p, "--tokens", "1,2", "--out", out],
        ] {
            let o = nanollama(&args);
            let err = assert_refused(&o, name);
            assert_eq!(o.status.code(), Some(1), "{name}: {err}");
            assert!(
                err.contains(p) && err.contains(want.message()),
                "{name}: {err}"
            );
        }
        assert!(!std::path::Path::new(out).exists(), "{name}: wrote --out");
    }
    // A directory and a missing file are refused by the OS: code 1.
    let dir = tmp("a-directory");
    std::fs::create_dir_all(&dir).unwrap();
    let dir = dir.to_str().unwrap();
    // Bad arguments: code 2 (usage), or 1 when the model refuses them.
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (vec!["info", "/nonexistent/model.gguf"], 1, "No such file"),
        (
            vec![
                "logits",
                "/nonexistent/model.gguf",
                "--tokens",
                "1",
                "--out",
                out,
            ],
            1,
            "No such file",
        ),
        (vec!["info", dir], 1, "directory"),
        (
            vec!["logits", &good, "--tokens", "1,x", "--out", out],
            2,
            "bad --tokens",
        ),
        (
            vec!["logits", &good, "--tokens", "", "--out", out],
            2,
            "bad --tokens",
        ),
        (
            vec!["logits", &good, "--tokens", "1,,2", "--out", out],
            2,
            "bad --tokens",
        ),
        (
            vec!["logits", &good, "--tokens", "-1", "--out", out],
            2,
            "bad --tokens",
        ),
        (
            vec!["logits", &good, "--tokens", "4294967296", "--out", out],
            2,
            "bad --tokens",
        ),
        (
            vec!["logits", &good, "--out", out, "--tokens"],
            2,
            "--tokens needs a value",
        ),
        (
            vec!["logits", &good, "--tokens", "1,100", "--out", out],
            1,
            Error::TokenOutOfRange.message(),
        ),
        (
            vec!["logits", &good, "--tokens", "4294967295", "--out", out],
            1,
            Error::TokenOutOfRange.message(),
        ),
        (
            vec!["logits", &good, "--tokens", "1", "--kv", "q4", "--out", out],
            2,
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
            2,
            "bad --threads",
        ),
        (
            vec![
                "logits",
                &good,
                "--tokens",
                "1",
                "--threads",
                "x",
                "--out",
                out,
            ],
            2,
            "bad --threads",
        ),
        (vec!["logits", &good, "--tokens", "1"], 2, "needs --out"),
        (
            vec!["logits", "--tokens", "1", "--out", out],
            2,
            "needs MODEL",
        ),
        (
            vec!["logits", &good, "--tokens", "1", "--bogus", "--out", out],
            2,
            "unknown option",
        ),
        (vec!["info"], 2, "info takes one MODEL"),
        (vec!["info", &good, &good], 2, "info takes one MODEL"),
        (vec!["frobnicate"], 2, "unknown subcommand"),
        (vec![], 2, "missing subcommand"),
    ];
    for (args, code, msg) in cases {
        let _ = std::fs::remove_file(out);
        let o = nanollama(&args);
        let err = assert_refused(&o, msg);
        assert_eq!(o.status.code(), Some(code), "{args:?}: {err}");
        assert!(err.contains(msg), "{args:?}: {err}");
        assert!(!std::path::Path::new(out).exists(), "{args:?}: wrote --out");
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

/// Bytes that are no UTF-8 become U+FFFD, which Falcon's vocabulary
/// tokenizes as three byte tokens: more tokens than bytes. The command
/// asks again with the size the tokenizer needs (it said "buffer too
/// small" and printed nothing).
#[test]
fn tokenize_more_tokens_than_bytes() {
    let vocab =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/vocab/ggml-vocab-falcon.gguf");
    let text = tmp("invalid-utf8.txt");
    std::fs::write(&text, [0xffu8; 50]).unwrap();
    let o = nanollama(&[
        "tokenize",
        vocab.to_str().unwrap(),
        "--file",
        text.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let n = String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .count();
    assert!(n > 55, "{n} tokens for 50 bytes");
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

/// `chat` on the shipped model (no template of its own: chatml, said on
/// stderr), greedy: one answer line per user line, a speed line per turn on
/// stderr; `/reset` starts over (the same answer again); `/save` in one
/// process and `/load` in another continue with the same answer.
#[test]
fn chat_turns_reset_save_and_load() {
    let run = |input: &str| {
        common::native::with_stdin(
            Command::new(exe()).args(["chat", "--temp", "0", "-n", "12"]),
            input,
        )
    };
    let (out, err) = run("And it came to pass\n/reset\nAnd it came to pass\n");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(!lines[0].is_empty() && lines[0] == lines[1], "{out}");
    assert!(err.contains("no chat template: using chatml"), "{err}");
    assert_eq!(err.matches("[turn ").count(), 2, "{err}");
    assert!(err.contains("[reset]"), "{err}");

    let save = tmp("chat.save");
    let s = save.to_string_lossy();
    let (out, _) = run(&format!("In the beginning\n/save {s}\nand the earth\n"));
    let want = out.lines().nth(1).unwrap().to_string();
    let (out, err) = run(&format!("/load {s}\nand the earth\n"));
    assert!(err.contains("[loaded 2 messages"), "{err}");
    assert_eq!(out.lines().next().unwrap(), want);
    // A damaged file is refused and the conversation goes on from scratch.
    let mut bytes = std::fs::read(&save).unwrap();
    let n = bytes.len();
    bytes.truncate(n - 3);
    std::fs::write(&save, &bytes).unwrap();
    let (out, err) = run(&format!("/load {s}\nand the earth\n"));
    assert!(err.contains("nothing loaded"), "{err}");
    assert_eq!(out.lines().count(), 1);
}

/// `chat --file` reads the turns from a file, as scripts do.
#[test]
fn chat_reads_turns_from_a_file() {
    let f = tmp("turns.txt");
    std::fs::write(&f, "In the beginning\n\nAnd God said\n").unwrap();
    let o = nanollama(&[
        "chat",
        "--temp",
        "0",
        "-n",
        "6",
        "--file",
        &f.to_string_lossy(),
    ]);
    assert!(o.status.success());
    assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 2);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("[turn 2: prompt"), "{err}");
    let o = nanollama(&["chat", "--template", "no-such-template"]);
    assert_refused(&o, "unknown template");
}

/// A context too small for the whole conversation: the oldest turn is
/// dropped (the system prompt kept), the rest decoded again, and the
/// conversation goes on.
#[test]
fn chat_drops_the_oldest_turn_when_the_context_is_full() {
    let f = tmp("long-turns.txt");
    std::fs::write(
        &f,
        "And it came to pass in those days\nthat the people went up\nunto the mountain of the Lord\nand they rested there\n",
    )
    .unwrap();
    let o = nanollama(&[
        "chat",
        "--temp",
        "0",
        "-n",
        "16",
        "--ctx",
        "96",
        "--system",
        "Thou art a scribe.",
        "--file",
        &f.to_string_lossy(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).lines().count(),
        4,
        "{err}"
    );
    assert!(
        err.contains("[context full: dropped the oldest turn"),
        "{err}"
    );
    assert_eq!(err.matches("[turn ").count(), 4, "{err}");
}

/// `json-schema` writes llama.cpp-style GBNF our parser takes, and
/// `generate --json-schema` writes JSON that satisfies the schema, even on
/// the shipped model, which has never seen JSON.
#[test]
fn json_schema_constrains_generation() {
    let schema = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/grammars/npc.schema.json");
    let o = nanollama(&["json-schema", schema.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let g = String::from_utf8(o.stdout).unwrap();
    assert!(
        g.contains("root ::= \"{\" space action-kv \",\" space item-kv"),
        "{g}"
    );
    let mem =
        nanollama::host::AlignedBuf::new(nanollama::grammar::Grammar::size(g.as_bytes()).unwrap());
    let mut mem = mem;
    assert!(nanollama::grammar::Grammar::init(g.as_bytes(), mem.as_mut_slice()).is_ok());

    let small = tmp("npc-small.schema.json");
    std::fs::write(
        &small,
        r#"{"type": "object", "properties": {
            "action": {"enum": ["give", "take", "flee"]},
            "item": {"type": "string", "pattern": "^[a-z]{3,8}$"},
            "count": {"type": "integer"}},
           "required": ["action", "item", "count"]}"#,
    )
    .unwrap();
    for seed in ["1", "2", "3"] {
        let prompt = "And the king said";
        let o = nanollama(&[
            "generate",
            "--prompt",
            prompt,
            "--json-schema",
            small.to_str().unwrap(),
            "-n",
            "120",
            "--seed",
            seed,
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let out = String::from_utf8(o.stdout).unwrap();
        let json = out
            .trim_start()
            .strip_prefix(prompt)
            .unwrap_or_else(|| panic!("{out}"));
        let v: serde_json::Value =
            serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"));
        let action = v["action"].as_str().unwrap();
        assert!(["give", "take", "flee"].contains(&action), "{json}");
        let item = v["item"].as_str().unwrap();
        assert!(
            (3..=8).contains(&item.len()) && item.bytes().all(|b| b.is_ascii_lowercase()),
            "{json}"
        );
        assert!(v["count"].is_i64(), "{json}");
        assert_eq!(v.as_object().unwrap().len(), 3, "{json}");
    }
    // Refused, not approximated.
    let bad = tmp("bad.schema.json");
    std::fs::write(
        &bad,
        r##"{"type": "object", "properties": {"a": {"$ref": "#/x"}}}"##,
    )
    .unwrap();
    let e = assert_refused(&nanollama(&["json-schema", bad.to_str().unwrap()]), "$ref");
    assert!(e.contains("'$ref' is not supported"), "{e}");
}
