//! The C side. Builds the shipped no_std static library once (release, in
//! its own target directory), then:
//! - compiles each `ffi-tests/*.c` with `-std=c11 -Wall -Wextra -Wpedantic
//!   -Werror -Iinclude`, links it with the library and runs it on model files
//!   written here: a tiny model per weight type and hostile files named
//!   `bad-NN-what.gguf` for the status NN they must produce;
//! - builds `examples/argmax.c` with the command in its first comment and
//!   checks its output against the Rust API;
//! - compiles `include/nanollama.h` as C and as C++, and links it from C++;
//! - checks that the library references no allocator and starts no thread,
//!   with a scan that is shown to catch code that does.
//!
//! `NANOLLAMA_SANITIZE=1` adds AddressSanitizer and UBSan to every C and C++
//! build (into a separate directory, so both flavours can run at once).
mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use common::native::{build, exec, root, sanitizer_flags, staticlib};

/// Where this test binary writes models and programs (see `tmp_dir`).
fn tmp() -> PathBuf {
    common::native::tmp_dir("ffi")
}

fn write(name: &str, bytes: &[u8]) -> PathBuf {
    common::native::write_in(&tmp(), name, bytes)
}

fn cc() -> String {
    std::env::var("CC").unwrap_or_else(|_| "cc".into())
}

fn cxx() -> String {
    std::env::var("CXX").unwrap_or_else(|_| "c++".into())
}

const STRICT: [&str; 4] = ["-Wall", "-Wextra", "-Wpedantic", "-Werror"];

/// Compiles and links `ffi-tests/NAME.c` with the static library.
fn test_program(name: &str) -> PathBuf {
    let mut cmd = Command::new(cc());
    cmd.arg("-std=c11")
        .args(STRICT)
        .args(["-O1", "-g"])
        .args(sanitizer_flags())
        .arg("-I")
        .arg(root().join("include"))
        .arg("-I")
        .arg(root().join("ffi-tests"))
        .arg(root().join("ffi-tests").join(format!("{name}.c")))
        .arg(staticlib())
        .args(["-lm", "-lpthread"]);
    build(cmd, &tmp().join(name))
}

fn output(exe: &Path, args: &[PathBuf]) -> Output {
    let mut cmd = Command::new(exe);
    cmd.args(args);
    exec(cmd)
}

/// Runs a program and requires exit status 0; returns its stdout.
fn run(exe: &Path, args: &[PathBuf]) -> String {
    let o = output(exe, args);
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(
        o.status.success(),
        "{} {args:?} failed ({}):\n--- stdout\n{out}--- stderr\n{err}",
        exe.display(),
        o.status
    );
    out.into_owned()
}

/// The tiny model (tests/common TinyConfig defaults, seed 5) in every weight
/// type, as `(ggml type id, path)`; the path is `tiny-TT-name.gguf`.
fn models() -> &'static [(u32, PathBuf)] {
    static M: OnceLock<Vec<(u32, PathBuf)>> = OnceLock::new();
    M.get_or_init(|| {
        [
            (ty::F32, "f32"),
            (ty::F16, "f16"),
            (ty::Q8_0, "q8_0"),
            (ty::BF16, "bf16"),
        ]
        .iter()
        .map(|&(t, name)| {
            let bytes = tiny_model(&TinyConfig::default(), t, 5);
            (t, write(&format!("tiny-{t:02}-{name}.gguf"), &bytes))
        })
        .collect()
    })
}

fn model(t: u32) -> PathBuf {
    models().iter().find(|m| m.0 == t).unwrap().1.clone()
}

/// Hostile files, each named `bad-NN-what.gguf` with NN the status it must
/// produce through the C ABI; at least two for each file-level status.
fn hostile_files() -> &'static [PathBuf] {
    static FILES: OnceLock<Vec<PathBuf>> = OnceLock::new();
    FILES.get_or_init(|| {
        let base = || tiny_builder(&TinyConfig::default(), ty::F32, 5);
        let good = base().build();
        let tensor = |g: &GgufBuilder, name: &str| -> usize {
            g.tensors.iter().position(|t| t.name == name).unwrap()
        };
        let mut files = Vec::new();
        let mut add = |code: u32, what: &str, bytes: Vec<u8>| {
            files.push(write(&format!("bad-{code:02}-{what}.gguf"), &bytes));
        };
        // 5 GGUF_TRUNCATED
        add(5, "empty", Vec::new());
        add(5, "truncated-counts", good[..20].to_vec());
        // 6 GGUF_BAD_MAGIC
        let mut b = good.clone();
        b[..4].copy_from_slice(b"GGML");
        add(6, "magic", b);
        add(6, "zeros", vec![0; 64]);
        // 7 GGUF_UNSUPPORTED_VERSION
        for v in [1u32, 4] {
            let mut g = base();
            g.version = v;
            add(7, &format!("version-{v}"), g.build());
        }
        // 8 GGUF_COUNT_TOO_LARGE
        let mut b = good.clone();
        b[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        add(8, "tensor-count", b);
        let mut b = good.clone();
        b[16..24].copy_from_slice(&(1u64 << 40).to_le_bytes());
        add(8, "kv-count", b);
        // 9 GGUF_STRING_PAST_END
        let mut b = good.clone();
        b[24..32].copy_from_slice(&(1u64 << 60).to_le_bytes());
        add(9, "key-length", b);
        let mut g = base();
        g.kv_raw("x.s", vt::STRING, (1u64 << 40).to_le_bytes().to_vec());
        add(9, "value-length", g.build());
        // 10 GGUF_TENSOR_PAST_END
        add(
            10,
            "tensor-offset",
            base().build_with(|i, off| if i == 3 { off + (1 << 24) } else { off }),
        );
        let mut g = base();
        let last = g.tensors.len() - 1;
        g.tensors[last].dims[1] *= 1000;
        add(10, "tensor-size", g.build());
        // 11 GGUF_BAD_DIMENSIONS
        let mut g = base();
        g.tensors[2].dims = vec![1 << 40, 1 << 40];
        add(11, "dims-overflow", g.build());
        let mut g = base();
        g.tensors[0].dims = vec![0, 64];
        add(11, "zero-dim", g.build());
        // 12 GGUF_DATA_MISALIGNED
        add(
            12,
            "misaligned-offset",
            base().build_with(|i, off| if i == 2 { off + 8 } else { off }),
        );
        let mut g = base();
        g.kv_u32("general.alignment", 3);
        add(12, "alignment-3", g.build());
        // 13 GGUF_UNKNOWN_TYPE
        let mut g = base();
        g.tensors[1].ty = 99;
        add(13, "tensor-type", g.build());
        let mut g = base();
        g.kv_raw("x.y", 13, vec![0; 8]);
        add(13, "value-type", g.build());
        // 14 GGUF_BAD_METADATA
        let mut g = base();
        let mut p = vt::ARRAY.to_le_bytes().to_vec();
        p.extend_from_slice(&0u64.to_le_bytes());
        g.kv_raw("x.nested", vt::ARRAY, p);
        add(14, "nested-array", g.build());
        let mut g = base();
        g.kv_raw("llama.block_count", vt::STRING, gguf_string(b"2"));
        add(14, "block-count-string", g.build());
        // 15 UNSUPPORTED_ARCHITECTURE
        let mut g = base();
        g.kv_str("general.architecture", "gpt2");
        add(15, "architecture", g.build());
        let mut g = base();
        g.remove_kv("general.architecture");
        add(15, "no-architecture", g.build());
        // 16 UNSUPPORTED_TENSOR_TYPE
        let mut g = base();
        let i = tensor(&g, "blk.0.attn_q.weight");
        g.tensors[i].ty = ty::IQ4_NL;
        g.tensors[i].data = vec![0; 64 * 64 / 32 * 18];
        add(16, "iq4_nl-weight", g.build());
        let mut g = base();
        let i = tensor(&g, "blk.1.ffn_norm.weight");
        g.tensors[i].ty = ty::F16;
        let half = g.tensors[i].data.len() / 2;
        g.tensors[i].data.truncate(half);
        add(16, "f16-norm", g.build());
        // 17 MISSING_KEY
        let mut g = base();
        g.remove_kv("llama.block_count");
        add(17, "no-block-count", g.build());
        let mut g = base();
        g.remove_kv("llama.context_length");
        add(17, "no-context-length", g.build());
        // 18 BAD_HYPERPARAMETERS
        let mut g = base();
        g.kv_u32("llama.attention.head_count", 3);
        add(18, "heads-do-not-divide", g.build());
        let mut g = base();
        g.kv_f32("llama.attention.layer_norm_rms_epsilon", f32::NAN);
        add(18, "eps-nan", g.build());
        // 19 MISSING_TENSOR
        let mut g = base();
        g.tensors.retain(|t| t.name != "blk.1.ffn_up.weight");
        add(19, "missing-ffn-up", g.build());
        let mut g = base();
        g.tensors.retain(|t| t.name != "output_norm.weight");
        add(19, "missing-output-norm", g.build());
        // 20 TENSOR_SHAPE
        let mut g = base();
        let i = tensor(&g, "blk.0.attn_k.weight");
        g.tensors[i].dims.swap(0, 1);
        add(20, "k-transposed", g.build());
        let mut g = base();
        let i = tensor(&g, "blk.0.ffn_up.weight");
        let d = g.tensors[i].dims.clone();
        g.tensors[i].dims = vec![d[0], d[1] / 2, 2];
        add(20, "ffn-up-3d", g.build());
        // 21 DUPLICATE_TENSOR
        let mut g = base();
        let dup = g.tensors[4].clone();
        g.tensors.push(dup);
        add(21, "duplicate", g.build());
        let mut g = base();
        let dup = g.tensors[0].clone();
        g.tensors.insert(1, dup);
        add(21, "duplicate-embedding", g.build());
        // 29 GGUF_TENSOR_OVERLAP
        add(
            29,
            "same-offset",
            base().build_with(|i, off| if i == 3 { 0 } else { off }),
        );
        let n = base().tensors.len();
        add(
            29,
            "last-over-previous",
            base().build_with(|i, off| if i == n - 1 { off - 32 } else { off }),
        );
        let f32s = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        // 30 UNSUPPORTED_ROPE_SCALING
        let mut g = base();
        g.kv_str("llama.rope.scaling.type", "longrope");
        add(30, "longrope", g.build());
        let mut g = base();
        let mut factors = vec![1.0f32; 8]; // head_dim 16: 8 pairs
        factors[5] = 0.0;
        g.tensor("rope_freqs.weight", &[8], ty::F32, f32s(&factors));
        add(30, "rope-freqs-zero", g.build());
        // 31 UNSUPPORTED_EXPERTS
        let mut g = base();
        g.kv_u32("llama.expert_count", 8);
        add(31, "expert-count", g.build());
        let mut g = base();
        g.tensor(
            "blk.1.ffn_gate_inp.weight",
            &[64, 8],
            ty::F32,
            vec![0; 64 * 8 * 4],
        );
        add(31, "router-tensor", g.build());
        // 32 UNSUPPORTED_SOFTCAP
        let mut g = base();
        g.kv_f32("llama.attn_logit_softcapping", 50.0);
        add(32, "attn-softcap", g.build());
        let mut g = base();
        g.kv_f32("llama.final_logit_softcapping", 30.0);
        add(32, "final-softcap", g.build());
        // 33 UNEXPECTED_TENSOR
        let mut g = base();
        g.tensor("blk.0.attn_q_norm.weight", &[16], ty::F32, f32s(&[1.0; 16]));
        add(33, "q-norm", g.build());
        let mut g = base();
        g.tensor("output.bias", &[100], ty::F32, f32s(&[0.0; 100]));
        add(33, "output-bias-in-llama", g.build());
        // 34 UNSUPPORTED_HYPERPARAMETER
        let mut g = base();
        g.kv_u32("llama.attention.sliding_window", 16);
        add(34, "sliding-window", g.build());
        let mut g = base();
        g.kv_f32("llama.logit_scale", 2.0);
        add(34, "logit-scale", g.build());
        files
    })
}

#[test]
fn c_model_api() {
    let exe = test_program("model");
    let mut args = vec![model(ty::F32)];
    args.extend(models().iter().map(|m| m.1.clone()));
    args.extend(hostile_files().iter().cloned());
    let out = run(&exe, &args);
    let want = format!(
        "{} typed models loaded, {} hostile files refused",
        models().len(),
        hostile_files().len()
    );
    assert!(out.contains(&want), "{out}");
    // Every file-level status (GGUF_TRUNCATED to DUPLICATE_TENSOR, and
    // GGUF_TENSOR_OVERLAP to UNEXPECTED_TENSOR) has a hostile file.
    for code in (5..=21).chain(29..=34) {
        let tag = format!("bad-{code:02}-");
        assert!(
            hostile_files().iter().any(|p| p
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&tag)),
            "no hostile file for status {code}"
        );
    }
}

/// The struct-size rule of the ABI: older structs refused, later ones
/// accepted with their new fields zero, outputs filled only as far as the
/// caller's size, nothing written past it.
#[test]
fn c_abi_struct_sizes() {
    let out = run(&test_program("abi"), &[model(ty::F32)]);
    assert!(out.contains("abi: ok"), "{out}");
}

#[test]
fn c_context_api() {
    let exe = test_program("context");
    for (_, path) in models() {
        let out = run(&exe, std::slice::from_ref(path));
        assert!(out.contains("context: ok"), "{out}");
    }
}

#[test]
fn c_decode_many() {
    let exe = test_program("many");
    for (_, path) in models() {
        let out = run(&exe, std::slice::from_ref(path));
        assert!(out.contains("many: ok"), "{out}");
    }
}

#[test]
fn c_host_thread_pool() {
    let args = [model(ty::Q8_0), model(ty::F16)];
    let out = run(&test_program("parallel"), &args);
    assert!(out.contains("3 threads"), "{out}");
    assert!(out.contains("parallel: ok, 2 models"), "{out}");
}

#[test]
fn c_sampler_api() {
    let out = run(&test_program("sampler"), &[]);
    assert!(out.contains("sampler: ok"), "{out}");
}

#[test]
fn c_grammar_api() {
    let vocab = root().join("tests/data/vocab/ggml-vocab-llama-bpe.gguf");
    let out = run(&test_program("grammar"), &[vocab]);
    assert!(out.contains("grammar: ok"), "{out}");
}

#[test]
fn c_vocab_api() {
    let vocab = root().join("tests/data/vocab");
    let args = [
        vocab.join("ggml-vocab-llama-spm.gguf"),
        vocab.join("ggml-vocab-llama-bpe.gguf"),
    ];
    let out = run(&test_program("vocab"), &args);
    assert!(out.contains("vocab: ok"), "{out}");
}

#[test]
fn c_chat_api() {
    let vocab = root().join("tests/data/vocab");
    let args = [
        vocab.join("ggml-vocab-qwen2.gguf"),
        vocab.join("ggml-vocab-llama-spm.gguf"),
    ];
    let out = run(&test_program("chat"), &args);
    assert!(out.contains("chat: ok"), "{out}");
}

#[test]
fn every_ffi_test_is_run() {
    // A new ffi-tests/*.c must get a #[test] above.
    let mut names: Vec<String> = std::fs::read_dir(root().join("ffi-tests"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".c"))
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "abi.c",
            "chat.c",
            "context.c",
            "grammar.c",
            "many.c",
            "model.c",
            "parallel.c",
            "sampler.c",
            "vocab.c"
        ]
    );
}

/// Builds `examples/NAME.c` with the command its first line documents
/// (`cc ... examples/NAME.c target/release/libnanollama.a ... -o NAME`),
/// with this test's library, the strict warnings and, if asked, sanitizers.
fn example(name: &str) -> PathBuf {
    let src = format!("examples/{name}.c");
    let text = std::fs::read_to_string(root().join(&src)).unwrap();
    let first = text.lines().next().unwrap();
    let words: Vec<&str> = first
        .trim_start_matches("/*")
        .trim_end_matches("*/")
        .split_whitespace()
        .collect();
    assert_eq!(words.first(), Some(&"cc"), "{src}: {first}");
    assert!(words.contains(&src.as_str()), "{src}: {first}");
    assert!(
        words.contains(&"target/release/libnanollama.a"),
        "{src}: {first}"
    );
    let o = words.iter().position(|w| *w == "-o").expect("-o NAME");
    assert_eq!(words.get(o + 1), Some(&name), "{src}: {first}");
    let mut cmd = Command::new(cc());
    cmd.current_dir(root());
    for (i, w) in words.iter().enumerate().skip(1) {
        match *w {
            "target/release/libnanollama.a" => {
                cmd.arg(staticlib());
            }
            "-o" => {}
            _ if i == o + 1 => {}
            w => {
                cmd.arg(w);
            }
        }
    }
    cmd.args(STRICT).args(sanitizer_flags());
    build(cmd, &tmp().join(name))
}

#[test]
fn c_example_argmax_matches_rust() {
    use nanollama::{Context, ContextParams, Error, Inline, KvType, Model};
    let exe = example("argmax");
    let path = model(ty::BF16);
    let bytes = std::fs::read(&path).unwrap();
    let tokens = [3u32, 14, 15, 92, 65, 0, 99];
    let mut args = vec![path.clone()];
    args.extend(tokens.iter().map(|t| PathBuf::from(t.to_string())));
    let out = run(&exe, &args);

    // The same through the Rust API: the example's params are the defaults
    // (KV F16) with n_ctx = n_batch = the number of tokens, every logit kept.
    let mut mm = AlignedBuf::new(Model::size(&bytes).unwrap());
    let model = Model::init(&bytes, mm.as_mut_slice()).unwrap();
    let n_vocab = model.config().n_vocab;
    let p = ContextParams {
        n_ctx: tokens.len() as u32,
        n_batch: tokens.len() as u32,
        kv_type: KvType::F16,
        logits_all: true,
        ..ContextParams::default()
    };
    let mut cm = AlignedBuf::new(Context::size(&model, &p).unwrap());
    let mut ctx = Context::init(&model, &p, cm.as_mut_slice()).unwrap();
    ctx.decode(&tokens, &Inline).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), tokens.len(), "{out}");
    for (i, (line, row)) in lines.iter().zip(ctx.logits().chunks(n_vocab)).enumerate() {
        // "POS TOKEN -> ARGMAX (logit VALUE)"
        let w: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(w.len(), 6, "{line:?}");
        assert_eq!(w[0], i.to_string(), "{line:?}");
        assert_eq!(w[1], tokens[i].to_string(), "{line:?}");
        assert_eq!(w[2], "->", "{line:?}");
        let best: usize = w[3].parse().unwrap();
        assert!(best < n_vocab, "{line:?}");
        let want = (0..n_vocab).fold(0, |b, v| if row[v] > row[b] { v } else { b });
        assert_eq!(best, want, "{line:?}");
        let logit: f32 = w[5].trim_end_matches(')').parse().unwrap();
        assert!(
            (logit - row[want]).abs() <= 1e-4,
            "{line:?} vs {}",
            row[want]
        );
    }

    // Errors: the status message on stderr and exit status 1; usage is 2.
    // (Like most C programs it exits without freeing on error: no leak
    // report for those runs.)
    let failing = |args: &[PathBuf]| {
        let asan = std::env::var("ASAN_OPTIONS").unwrap_or_default();
        let mut cmd = Command::new(&exe);
        cmd.args(args)
            .env("ASAN_OPTIONS", format!("{asan}:detect_leaks=0"));
        exec(cmd)
    };
    let bad = |args: &[PathBuf], want: &str| {
        let o = failing(args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(o.stdout.is_empty(), "{args:?}");
        assert!(err.contains(want), "{args:?}: {err:?} lacks {want:?}");
    };
    let magic = hostile_files()
        .iter()
        .find(|p| p.ends_with("bad-06-magic.gguf"))
        .unwrap();
    bad(&[magic.clone(), "1".into()], Error::BadMagic.message());
    bad(
        &[path.clone(), "1".into(), "100".into()],
        Error::TokenOutOfRange.message(),
    );
    bad(
        &[path.clone(), "-1".into()],
        Error::TokenOutOfRange.message(),
    );
    bad(&[path.clone(), "7x".into()], "not a token id");
    bad(
        &[tmp().join("no-such-file.gguf"), "1".into()],
        "cannot read",
    );
    assert_eq!(failing(&[path]).status.code(), Some(2));
}

/// A translation unit that includes the header twice (the include guard),
/// uses every type and calls a few functions.
const HEADER_USER: &str = r#"#include "nanollama.h"
#include "nanollama.h"
typedef struct {
    nanollama_status status;
    nanollama_kv_type kv;
    nanollama_stage stage;
    nanollama_tokenize_flags flags;
    nanollama_model_info model_info;
    nanollama_context_params context_params;
    nanollama_sampler_params sampler_params;
    nanollama_logit_bias bias;
    nanollama_vocab_info vocab_info;
    nanollama_detokenizer detokenizer;
    const nanollama_model *model;
    nanollama_context *context;
    nanollama_sampler *sampler;
    const nanollama_vocab *vocab;
    nanollama_task_fn task;
    nanollama_parallel_for_fn parallel_for;
} all_types;
int touch(all_types *t);
int touch(all_types *t) {
    nanollama_context_params_default(&t->context_params, sizeof t->context_params);
    nanollama_sampler_params_default(&t->sampler_params, sizeof t->sampler_params);
    nanollama_detokenizer_init(&t->detokenizer);
    return (int)sizeof *t + (nanollama_status_str(NANOLLAMA_STATUS_OK) != 0);
}
"#;

fn syntax_check(compiler: &str, args: &[&str], src_name: &str, text: &str) {
    let src = write(src_name, text.as_bytes());
    let o = Command::new(compiler)
        .args(args)
        .args(STRICT)
        .arg("-fsyntax-only")
        .arg("-I")
        .arg(root().join("include"))
        .arg(&src)
        .output()
        .unwrap_or_else(|e| panic!("{compiler} does not run: {e}"));
    assert!(
        o.status.success(),
        "{compiler} {args:?}:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn header_compiles_as_c() {
    for std in ["-std=c99", "-std=c11", "-std=c17"] {
        let args = [
            std,
            "-Wstrict-prototypes",
            "-Wmissing-prototypes",
            "-x",
            "c",
        ];
        syntax_check(&cc(), &args, "header-user.c", HEADER_USER);
    }
}

#[test]
fn header_compiles_as_cpp() {
    for std in ["-std=c++11", "-std=c++17"] {
        syntax_check(&cxx(), &[std, "-x", "c++"], "header-user.cpp", HEADER_USER);
    }
}

#[test]
fn header_links_from_cpp() {
    // -fsyntax-only cannot see a missing extern "C": link and call.
    let src = write(
        "cpp-caller.cpp",
        br#"#include "nanollama.h"
#include <cstdio>
#include <cstring>
int main() {
    nanollama_context_params p;
    nanollama_context_params_default(&p, sizeof p);
    size_t need = 1;
    const nanollama_model *m = nullptr;
    if (p.n_threads != 1 || p.parallel_for != nullptr) return 1;
    if (nanollama_model_size(nullptr, 0, &need) != NANOLLAMA_STATUS_NULL_POINTER) return 2;
    if (nanollama_model_get_info(m, nullptr, sizeof(nanollama_model_info)) != NANOLLAMA_STATUS_NULL_POINTER) return 3;
    if (std::strcmp(nanollama_status_str(999), "unknown status") != 0) return 4;
    std::printf("c++: %s\n", nanollama_status_str(NANOLLAMA_STATUS_OK));
    return 0;
}
"#,
    );
    let mut cmd = Command::new(cxx());
    cmd.arg("-std=c++17")
        .args(STRICT)
        .args(sanitizer_flags())
        .arg("-I")
        .arg(root().join("include"))
        .arg(&src)
        .arg(staticlib())
        .arg("-lm");
    let exe = build(cmd, &tmp().join("cpp-caller"));
    assert!(run(&exe, &[]).starts_with("c++: "));
}

/// One entry of an ELF symbol table.
#[derive(Debug)]
struct Sym {
    name: String,
    defined: bool,
    global: bool,
}

/// Every symbol of every ELF member of an archive (or of one object file).
/// `readelf` rather than `nm`: GNU nm reads rustc's objects as "no symbols"
/// when its LLVM plugin is older than rustc's, so an `nm -u` scan would pass
/// without looking at anything.
fn elf_symbols(path: &Path) -> Vec<Sym> {
    let o = Command::new("readelf")
        .arg("-sW")
        .arg(path)
        .output()
        .expect("readelf runs");
    assert!(
        o.status.success(),
        "readelf {}:\n{}",
        path.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    let mut syms = Vec::new();
    for line in String::from_utf8_lossy(&o.stdout).lines() {
        // Num: Value Size Type Bind Vis Ndx Name
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 8 || !f[0].ends_with(':') || f[0] == "Num:" {
            continue;
        }
        // Strip symbol versions (memcpy@GLIBC_2.14).
        let name = f[7].split('@').next().unwrap().to_string();
        syms.push(Sym {
            name,
            defined: f[6] != "UND",
            global: f[4] == "GLOBAL" || f[4] == "WEAK",
        });
    }
    syms
}

/// The C names of the host's allocator: a reference to any of them, defined
/// or not, means the library allocates (or frees) memory.
const C_ALLOCATOR: [&str; 20] = [
    "malloc",
    "calloc",
    "realloc",
    "free",
    "posix_memalign",
    "aligned_alloc",
    "memalign",
    "valloc",
    "pvalloc",
    "reallocarray",
    "_Znwm", // operator new(size_t)
    "_Znam", // operator new[](size_t)
    "_ZdlPv",
    "_ZdaPv",
    "_ZdlPvm",
    "_ZdaPvm",
    "mmap",
    "munmap",
    "sbrk",
    "brk",
];

/// Rust's global allocator: `__rust_alloc`, `__rust_dealloc`,
/// `__rust_realloc`, `__rust_alloc_zeroed`, `__rust_alloc_error_handler`,
/// the `__rust_no_alloc_shim_is_unstable` marker every user of `alloc`
/// references, and the default (`__rdl_*`) and `#[global_allocator]`
/// (`__rg_*`) implementations. Matched as prefixes of the symbol's name.
const RUST_ALLOCATOR: [&str; 6] = [
    "__rust_alloc",
    "__rust_dealloc",
    "__rust_realloc",
    "__rust_no_alloc_shim",
    "__rdl_",
    "__rg_",
];

/// Ways to start a thread.
const THREADS: [&str; 5] = ["pthread_create", "thrd_create", "clone", "clone3", "fork"];

/// The symbol without an LTO suffix (`name.llvm.123`).
fn base_name(sym: &str) -> &str {
    sym.split(".llvm.").next().unwrap()
}

/// Components of a legacy-mangled path: `_ZN4core3ptr8drop17h...E`.
fn legacy_path(sym: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let Some(mut rest) = sym.strip_prefix("_ZN") else {
        return out;
    };
    loop {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let Ok(n) = rest[..digits].parse::<usize>() else {
            return out;
        };
        let Some(ident) = rest.get(digits..digits + n) else {
            return out;
        };
        out.push(ident);
        rest = &rest[digits + n..];
    }
}

/// Whether a symbol is Rust's item `prefix*`: the plain name, a
/// legacy-mangled path with such a component, or a v0-mangled path (`_R...`)
/// whose last identifier starts with it. Since Rust 1.8x the allocator shims
/// are v0-mangled, e.g. `_RNvCsfLfy6EI15iL_7___rustc12___rust_alloc`: an
/// exact match on `__rust_alloc` alone would miss them.
fn is_rust_item(sym: &str, prefix: &str) -> bool {
    let sym = base_name(sym);
    if sym.starts_with(prefix) {
        return true;
    }
    if sym.starts_with("_ZN") {
        return legacy_path(sym).iter().any(|c| c.starts_with(prefix));
    }
    if !sym.starts_with("_R") {
        return false;
    }
    // v0: the last identifier is `<decimal length>[_]<ident>` at the end,
    // with the `_` when the identifier starts with `_` or a digit.
    sym.match_indices(prefix).any(|(at, _)| {
        let ident = &sym[at..];
        let mut head = &sym[..at];
        if ident.starts_with(|c: char| c == '_' || c.is_ascii_digit()) {
            match head.strip_suffix('_') {
                Some(h) => head = h,
                None => return false,
            }
        }
        head.strip_suffix(ident.len().to_string().as_str())
            .is_some_and(|h| !h.ends_with(|c: char| c.is_ascii_digit()))
    })
}

/// Whether a symbol is the C function `name` (C names are never mangled;
/// a Rust item that happens to be called `clone` or `free` is not it).
fn is_c_function(sym: &str, name: &str) -> bool {
    base_name(sym) == name
}

/// Whether a symbol belongs to Rust's `alloc` crate (`Vec`, `Box`,
/// `handle_alloc_error`, ...): legacy `_ZN5alloc...`, or v0 with the crate
/// root `C5alloc` or `Cs<base-62 disambiguator>_5alloc` (and not
/// `core::alloc`, `...4core5alloc...`).
fn in_alloc_crate(sym: &str) -> bool {
    if sym.starts_with("_ZN") {
        return legacy_path(sym).first() == Some(&"alloc");
    }
    if !sym.starts_with("_R") {
        return false;
    }
    sym.match_indices("5alloc").any(|(at, _)| {
        let head = &sym[..at];
        if head.ends_with('C') {
            return true;
        }
        let Some(h) = head.strip_suffix('_') else {
            return false;
        };
        h.rfind("Cs")
            .is_some_and(|cs| h[cs + 2..].bytes().all(|b| b.is_ascii_alphanumeric()))
    })
}

/// Everything in `syms` that allocates or starts a thread, as messages.
fn forbidden(syms: &[Sym]) -> Vec<String> {
    let mut bad = Vec::new();
    for s in syms {
        let how = if s.defined { "defines" } else { "references" };
        if let Some(n) = C_ALLOCATOR.iter().find(|n| is_c_function(&s.name, n)) {
            bad.push(format!("{how} {} (allocator {n})", s.name));
        }
        if let Some(n) = RUST_ALLOCATOR.iter().find(|n| is_rust_item(&s.name, n)) {
            bad.push(format!("{how} {} (Rust allocator {n}*)", s.name));
        }
        if in_alloc_crate(&s.name) {
            bad.push(format!("{how} {} (the alloc crate)", s.name));
        }
        if let Some(n) = THREADS.iter().find(|n| is_c_function(&s.name, n)) {
            bad.push(format!("{how} {} (starts threads: {n})", s.name));
        }
    }
    bad
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore = "reads ELF symbol tables")]
fn static_library_references_no_allocator() {
    let syms = elf_symbols(staticlib());
    // The scan read real symbol tables: the API is defined, and undefined
    // symbols (memcpy, abort, ...) were seen.
    let undefined = syms.iter().filter(|s| !s.defined).count();
    assert!(undefined > 10, "{undefined} undefined symbols");
    for api in [
        "nanollama_model_init",
        "nanollama_context_decode",
        "nanollama_status_str",
    ] {
        assert!(
            syms.iter().any(|s| s.name == api && s.defined && s.global),
            "{api} not defined"
        );
    }
    let bad = forbidden(&syms);
    assert!(bad.is_empty(), "the library:\n{}", bad.join("\n"));
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore = "reads ELF symbol tables")]
fn static_library_needs_only_memory_functions_and_abort() {
    // What the archive leaves for the host to supply: symbols no member
    // defines. A new entry here is a new host dependency; add it to ALLOWED
    // only if the library may really depend on it on every target.
    const ALLOWED: &[&str] = &[
        "abort", "memcpy", "memmove", "memset", "memcmp", "bcmp", "strlen", "memchr",
        // libm, should a kernel ever use the C one.
        "fma", "fmaf", "sqrt", "sqrtf", "exp", "expf", "log", "logf", "pow", "powf", "sin", "sinf",
        "cos", "cosf", "tanh", "tanhf", "floor", "floorf", "ceil", "ceilf", "round", "roundf",
        "trunc", "truncf", "fmod", "fmodf", "exp2", "exp2f", "log2", "log2f",
    ];
    let syms = elf_symbols(staticlib());
    let defined: std::collections::HashSet<&str> = syms
        .iter()
        .filter(|s| s.defined && s.global)
        .map(|s| s.name.as_str())
        .collect();
    let mut needs: Vec<&str> = syms
        .iter()
        .filter(|s| !s.defined && !defined.contains(s.name.as_str()))
        .map(|s| s.name.as_str())
        .collect();
    needs.sort_unstable();
    needs.dedup();
    assert!(needs.contains(&"memcpy"), "{needs:?}");
    let extra: Vec<&&str> = needs.iter().filter(|n| !ALLOWED.contains(n)).collect();
    assert!(
        extra.is_empty(),
        "the library needs {extra:?} from the host"
    );
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore = "reads ELF symbol tables")]
fn allocator_scan_catches_allocating_code() {
    let dir = tmp();
    // C code that allocates, archived like the library.
    let src = write(
        "probe-malloc.c",
        b"#include <stdlib.h>\nvoid *probe(size_t n) { void *p = malloc(n); free(p); return p; }\n",
    );
    let mut c = Command::new(cc());
    c.args(["-c", "-O1"]).arg(&src);
    let obj = build(c, &dir.join("probe-malloc.o"));
    let archive = dir.join("libprobe-malloc.a");
    let _ = std::fs::remove_file(&archive);
    let st = Command::new("ar")
        .arg("rcs")
        .arg(&archive)
        .arg(&obj)
        .status()
        .expect("ar runs");
    assert!(st.success());
    let bad = forbidden(&elf_symbols(&archive));
    assert!(bad.iter().any(|b| b.contains("malloc")), "{bad:?}");
    assert!(
        bad.iter().any(|b| b.contains("(allocator free)")),
        "{bad:?}"
    );

    // no_std Rust code that allocates through `alloc`, compiled by the same
    // rustc as the library: its allocator calls are mangled symbols.
    let src = write(
        "probe_alloc.rs",
        b"#![no_std]\nextern crate alloc;\n\
          #[no_mangle]\npub extern \"C\" fn probe(n: usize) -> usize {\n\
          let v = alloc::vec![1u8; n];\nlet l = v.len();\ncore::mem::forget(v);\nl\n}\n",
    );
    let rustc = Path::new(env!("CARGO")).with_file_name("rustc");
    let rustc = if rustc.is_file() {
        rustc
    } else {
        PathBuf::from("rustc")
    };
    let mut r = Command::new(rustc);
    r.args([
        "--edition",
        "2021",
        "--crate-type",
        "lib",
        "--emit",
        "obj",
        "-C",
        "opt-level=1",
        "-C",
        "panic=abort",
    ])
    .arg(&src);
    let obj = build(r, &dir.join("probe_alloc.o"));
    let syms = elf_symbols(&obj);
    let bad = forbidden(&syms);
    assert!(
        bad.iter()
            .any(|b| b.contains("Rust allocator __rust_alloc")),
        "{bad:?}\n{syms:#?}"
    );

    // The matchers themselves, on names as compilers write them.
    let rust = |s: &str| RUST_ALLOCATOR.iter().any(|n| is_rust_item(s, n));
    assert!(rust("_RNvCsfLfy6EI15iL_7___rustc12___rust_alloc"));
    assert!(rust("_RNvCsfLfy6EI15iL_7___rustc19___rust_alloc_zeroed"));
    assert!(rust(
        "_RNvCsfLfy6EI15iL_7___rustc35___rust_no_alloc_shim_is_unstable_v2"
    ));
    assert!(rust(
        "_RNvCsfLfy6EI15iL_7___rustc14___rust_dealloc.llvm.123"
    ));
    assert!(rust("__rust_realloc"));
    assert!(rust("__rdl_alloc"));
    assert!(rust("_ZN7__rustc12__rust_alloc17h0123456789abcdefE"));
    assert!(!rust("_RNvNtCs1_4core5alloc6layout"));
    assert!(!rust("_RNvCsfLfy6EI15iL_7___rustc17rust_begin_unwind"));
    assert!(is_c_function("malloc", "malloc"));
    assert!(is_c_function(
        "free@GLIBC_2.2.5".split('@').next().unwrap(),
        "free"
    ));
    assert!(!is_c_function("my_malloc", "malloc"));
    assert!(!is_c_function(
        "_ZN4core5clone5Clone5clone17h0123456789abcdefE",
        "clone"
    ));
    assert!(in_alloc_crate(
        "_RNvNtCslNYArtu3iFV_5alloc7raw_vec12handle_error"
    ));
    assert!(in_alloc_crate("_RNvNtC5alloc7raw_vec12handle_error"));
    assert!(in_alloc_crate(
        "_ZN5alloc7raw_vec11finish_grow17h0123456789abcdefE"
    ));
    assert!(!in_alloc_crate(
        "_RNvXs0_NtNtCsgEmfK2I1SDS_4core5alloc6layoutNtB5_11LayoutErrorNtNtB9_3fmt7Display3fmt"
    ));
    assert!(!in_alloc_crate(
        "_ZN4core5alloc6layout6Layout5array17h0123456789abcdefE"
    ));
}

/// The model that ships in the repository.
fn shipped_model() -> PathBuf {
    root().join("models/kjv-llama.gguf")
}

fn args(words: &[&str]) -> Vec<PathBuf> {
    words.iter().map(PathBuf::from).collect()
}

/// Sampling with a temperature and penalties, so that both the random
/// generator and the penalty history matter.
const SAMPLING: [&str; 6] = ["--seed", "5", "--temp", "0.9", "--repeat-penalty", "1.2"];

fn generate_c(prompt: &str, n: usize, threads: usize, sampling: &[&str]) -> String {
    let exe = example("generate");
    let m = shipped_model();
    let (n, t) = (n.to_string(), threads.to_string());
    let mut a = args(&["-m", m.to_str().unwrap(), "-p", prompt, "-n", &n, "-t", &t]);
    a.extend(args(sampling));
    run(&exe, &a)
}

#[test]
fn c_example_generate_matches_the_cli_with_any_thread_count() {
    let one = generate_c("And it came to pass", 40, 1, &SAMPLING);
    assert!(one.starts_with(" And it came to pass"), "{one:?}");
    assert!(one.len() > 100, "{one:?}");
    for t in [2, 3] {
        assert_eq!(
            generate_c("And it came to pass", 40, t, &SAMPLING),
            one,
            "{t} threads"
        );
    }
    // The Rust example program, same flags: same text.
    let m = shipped_model();
    let mut cli = vec![
        "generate",
        m.to_str().unwrap(),
        "-p",
        "And it came to pass",
        "-n",
        "40",
    ];
    cli.extend(SAMPLING);
    let o = Command::new(cli_exe()).args(&cli).output().unwrap();
    assert!(o.status.success());
    assert_eq!(String::from_utf8_lossy(&o.stdout), one);
    // Another seed writes another text (the flags reach the sampler).
    let mut other = SAMPLING;
    other[1] = "6";
    assert_ne!(generate_c("And it came to pass", 40, 1, &other), one);
}

#[test]
fn c_example_npc_action_replies_are_actions_the_host_parses() {
    let exe = example("npc_action");
    let m = shipped_model();
    let a = args(&["-m", m.to_str().unwrap(), "--seed", "5", "--temp", "0.9"]);
    let out = run(&exe, &a);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    let actions = ["give", "take", "attack", "flee", "wait"];
    let items = ["sword", "shield", "bread", "gold", "nothing"];
    for (l, name) in lines.iter().zip(["Guard", "Merchant", "Thief"]) {
        // "Name: action=A item=I {"action": "A", "item": "I"}"
        let rest = l
            .strip_prefix(&format!("{name}: action="))
            .unwrap_or_else(|| panic!("{out}"));
        let (action, rest) = rest.split_once(" item=").unwrap();
        let (item, json) = rest.split_once(' ').unwrap();
        assert!(actions.contains(&action) && items.contains(&item), "{l}");
        assert_eq!(
            json,
            format!("{{\"action\": \"{action}\", \"item\": \"{item}\"}}"),
            "{l}"
        );
    }
}

#[test]
fn c_example_characters_each_write_what_they_would_alone() {
    let exe = example("characters");
    let m = shipped_model();
    let mut a = args(&["-m", m.to_str().unwrap(), "-n", "24"]);
    a.extend(args(&SAMPLING));
    let out = run(&exe, &a);
    let lines: Vec<&str> = out.lines().collect();
    // Each character's line is "Name: text", the text possibly running over
    // several lines (a BOS starts a new verse): split on the names.
    let names = ["Prophet", "King", "Scribe", "Shepherd"];
    let prompts = [
        "Thus saith the LORD",
        "And the king said",
        "In the beginning",
        "The LORD is my shepherd",
    ];
    let mut texts = vec![String::new(); 4];
    let mut cur = None;
    for l in &lines {
        if let Some(i) = names.iter().position(|n| l.starts_with(&format!("{n}:"))) {
            cur = Some(i);
            texts[i] = l[names[i].len() + 1..].to_string();
        } else {
            let i = cur.expect("text before the first name");
            texts[i].push('\n');
            texts[i].push_str(l);
        }
    }
    for (i, text) in texts.iter().enumerate() {
        let seed = (5 + i).to_string();
        let mut s = SAMPLING;
        s[1] = &seed;
        let alone = generate_c(prompts[i], 24, 1, &s);
        assert_eq!(format!("{text}\n"), alone, "{}", names[i]);
    }
    assert!(texts.iter().all(|t| t.len() > 40), "{texts:?}");
}

#[test]
fn c_example_save_restore_continues_in_a_fresh_process() {
    let exe = example("save_restore");
    let m = shipped_model();
    let m = m.to_str().unwrap();
    let sav = tmp().join(format!("game-{}.sav", std::process::id()));
    let sav_s = sav.to_str().unwrap();
    let mut a = args(&[
        "-m",
        m,
        "save",
        sav_s,
        "-p",
        "And it came to pass",
        "-n",
        "20",
    ]);
    a.extend(args(&SAMPLING));
    let first = run(&exe, &a);
    let mut b = args(&["-m", m, "resume", sav_s, "-n", "25"]);
    b.extend(args(&SAMPLING));
    let second = run(&exe, &b);
    let whole = generate_c("And it came to pass", 45, 1, &SAMPLING);
    assert_eq!(format!("{first}{second}"), whole);
    // Resuming again gives the same text: loading does not consume the file.
    assert_eq!(run(&exe, &b), second);

    // Refusals, each with its status message and exit status 1.
    let refused = |model: &str, file: &Path, want: &str| {
        let asan = std::env::var("ASAN_OPTIONS").unwrap_or_default();
        let mut cmd = Command::new(&exe);
        cmd.args(["-m", model, "resume"])
            .arg(file)
            .args(["-n", "5"])
            .args(SAMPLING)
            .env("ASAN_OPTIONS", format!("{asan}:detect_leaks=0"));
        let o = exec(cmd);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(err.contains(want), "{err:?} lacks {want:?}");
    };
    let bytes = std::fs::read(&sav).unwrap();
    // A byte of the context state's KV rows flipped.
    let mut bad = bytes.clone();
    bad[8 + 8 + 100] ^= 0x20;
    let bad_path = write(&format!("bad-{}.sav", std::process::id()), &bad);
    refused(m, &bad_path, nanollama::Error::StateCorrupt.message());
    // The same file under another model: the shipped one with its last
    // weight changed, as a fine-tune of the same shape would be.
    let mut tuned = std::fs::read(shipped_model()).unwrap();
    *tuned.last_mut().unwrap() ^= 0x01;
    let tuned = write(&format!("tuned-{}.gguf", std::process::id()), &tuned);
    refused(
        tuned.to_str().unwrap(),
        &sav,
        nanollama::Error::StateMismatch.message(),
    );
    std::fs::remove_file(&tuned).ok();
    // A sampler with a shorter penalty window cannot hold the history.
    let mut cmd = Command::new(&exe);
    let asan = std::env::var("ASAN_OPTIONS").unwrap_or_default();
    cmd.args(["-m", m, "resume", sav_s, "-n", "5", "--penalty-last-n", "4"])
        .env("ASAN_OPTIONS", format!("{asan}:detect_leaks=0"));
    let o = exec(cmd);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("nanollama_sampler_state_load"));
    std::fs::remove_file(&sav).ok();
}

/// The C quick start in README.md compiles without a warning and, given a
/// main that reads the shipped model, writes text.
#[test]
fn readme_quick_start_runs() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let start = readme
        .find("## C quick start")
        .expect("quick start section");
    let block = &readme[start..];
    let code_start = block.find("```c\n").unwrap() + 5;
    let code = &block[code_start..code_start + block[code_start..].find("```").unwrap()];
    assert!(
        code.lines().count() <= 40,
        "the quick start grew past 40 lines"
    );
    let main = r#"
int main(int argc, char **argv) {
    (void)argc;
    FILE *f = fopen(argv[1], "rb");
    if (!f) return 2;
    static uint8_t buf[8 << 20];
    size_t len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    const int32_t prompt[] = {1, 282, 361, 429, 295, 536}; /* <s> And it came to pass */
    return generate(buf, len, prompt, 6);
}
"#;
    let src = write("quick_start.c", format!("{code}{main}").as_bytes());
    let mut cmd = Command::new(cc());
    cmd.arg("-std=c11")
        .args(STRICT)
        .args(["-O1"])
        .args(sanitizer_flags())
        .arg("-I")
        .arg(root().join("include"))
        .arg(&src)
        .arg(staticlib())
        .args(["-lm", "-lpthread"]);
    let exe = build(cmd, &tmp().join("quick_start"));
    let asan = std::env::var("ASAN_OPTIONS").unwrap_or_default();
    let mut run_cmd = Command::new(&exe);
    // The snippet leaves its memory to the host ("free when done").
    run_cmd
        .arg(shipped_model())
        .env("ASAN_OPTIONS", format!("{asan}:detect_leaks=0"));
    let o = exec(run_cmd);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.split_whitespace().count() >= 10, "{text:?}");
}

/// Runs the chat example with `input` on stdin.
fn chat_c(model: &Path, flags: &[&str], input: &str) -> (String, String) {
    common::native::with_stdin(
        Command::new(example("chat"))
            .arg("-m")
            .arg(model)
            .args(flags),
        input,
    )
}

/// examples/chat.c, the chat loop over the C API: the same answers as
/// `nanollama chat` turn by turn (sampling and penalties included, any
/// thread count), and on SmolLM2-135M-Instruct llama.cpp's greedy answers
/// of tests/data/smollm2/chat-Q4_1.txt.
#[test]
fn c_example_chat_matches_the_cli() {
    let m = shipped_model();
    let turns = "And it came to pass\nIn the beginning\nand the earth was\n";
    let mut flags = vec!["-n", "16"];
    flags.extend(SAMPLING);
    let (one, err) = chat_c(&m, &flags, turns);
    assert_eq!(one.lines().count(), 3, "{one}");
    assert_eq!(err.matches("[turn ").count(), 3, "{err}");
    let mut two_flags = flags.clone();
    two_flags.extend(["-t", "2"]);
    assert_eq!(chat_c(&m, &two_flags, turns).0, one);
    let mut cli_args = vec!["chat", m.to_str().unwrap()];
    cli_args.extend(&flags);
    let (cli, _) = common::native::with_stdin(Command::new(cli_exe()).args(&cli_args), turns);
    assert_eq!(cli, one, "nanollama chat");

    let smol = root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    if !smol.exists() {
        let msg = "NOT RUN: the SmolLM2 half of c_example_chat_matches_the_cli (models/SmolLM2-135M-Instruct.Q4_1.gguf is missing; tools/fetch-smollm2.sh)";
        if std::env::var_os("CI").is_some() {
            panic!("{msg}");
        }
        eprintln!("\n*** {msg} ***\n");
        return;
    }
    let fx = std::fs::read_to_string(root().join("tests/data/smollm2/chat-Q4_1.txt")).unwrap();
    let fx: Vec<&str> = fx.lines().collect();
    let user = |k: usize| -> String { serde_json::from_str(fx[1 + 5 * k]).unwrap() };
    let answer = |k: usize| -> String { serde_json::from_str(fx[5 + 5 * k]).unwrap() };
    let input: String = (0..3).map(|k| user(k) + "\n").collect();
    let system = "You are a helpful AI assistant named SmolLM, trained by Hugging Face";
    let (out, err) = chat_c(
        &smol,
        &["--system", system, "--temp", "0", "-n", "96"],
        &input,
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    for (k, line) in lines.iter().enumerate() {
        assert_eq!(*line, answer(k), "turn {k}; {err}");
    }
}
