//! The C side: builds the shipped no_std static library in release, compiles
//! each `ffi-tests/*.c` and `examples/argmax.c` against `include/nanollama.h`
//! with `-std=c11 -Wall -Wextra -Wpedantic -Werror`, runs them, compiles the
//! header as C++, and checks that the library references no allocator.
//! `NANOLLAMA_SANITIZE=1` adds AddressSanitizer and UBSan to the C builds.
mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn tmp() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ffi");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The release static library, built once per test binary.
fn staticlib() -> &'static Path {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ffi-lib");
        let st = Command::new(env!("CARGO"))
            .args(["build", "--release", "--lib", "--target-dir"])
            .arg(&dir)
            .current_dir(root())
            .status()
            .expect("cargo runs");
        assert!(st.success(), "release build of the library failed");
        dir.join("release/libnanollama.a")
    })
}

fn sanitize() -> bool {
    std::env::var("NANOLLAMA_SANITIZE").is_ok_and(|v| v == "1")
}

/// Compiles C sources into an executable linked with the static library.
fn compile(sources: &[PathBuf], out: &Path) {
    let mut cmd = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()));
    cmd.args([
        "-std=c11",
        "-Wall",
        "-Wextra",
        "-Wpedantic",
        "-Werror",
        "-O1",
        "-g",
    ])
    .arg("-I")
    .arg(root().join("include"))
    .arg("-I")
    .arg(root().join("ffi-tests"));
    if sanitize() {
        cmd.args([
            "-fsanitize=address,undefined",
            "-fno-omit-frame-pointer",
            "-fno-sanitize-recover=all",
        ]);
    }
    cmd.args(sources)
        .arg(staticlib())
        .args(["-lm", "-lpthread", "-o"])
        .arg(out);
    let o = cmd.output().expect("cc runs");
    assert!(
        o.status.success(),
        "compiling {sources:?} failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Runs a program and requires exit status 0; returns its stdout.
fn run(exe: &Path, args: &[PathBuf]) -> String {
    let o = Command::new(exe)
        .args(args)
        .output()
        .expect("test program runs");
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(
        o.status.success(),
        "{} failed ({:?}):\n{out}\n{err}",
        exe.display(),
        o.status
    );
    out.into_owned()
}

fn write(name: &str, bytes: &[u8]) -> PathBuf {
    let p = tmp().join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn valid_model() -> PathBuf {
    write(
        "tiny-f32.gguf",
        &tiny_model(&TinyConfig::default(), ty::F32, 5),
    )
}

/// Hostile files, each named `bad-NN-what.gguf` with NN the status it must
/// produce through the C ABI.
fn hostile_files() -> Vec<PathBuf> {
    let base = || tiny_builder(&TinyConfig::default(), ty::F32, 5);
    let good = base().build();
    let mut files = Vec::new();
    let mut add = |code: u32, what: &str, bytes: Vec<u8>| {
        files.push(write(&format!("bad-{code:02}-{what}.gguf"), &bytes));
    };
    add(5, "truncated-counts", good[..20].to_vec());
    let mut b = good.clone();
    b[..4].copy_from_slice(b"GGML");
    add(6, "magic", b);
    let mut g = base();
    g.version = 1;
    add(7, "version", g.build());
    let mut b = good.clone();
    b[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    add(8, "tensor-count", b);
    let mut b = good.clone();
    b[24..32].copy_from_slice(&(1u64 << 60).to_le_bytes());
    add(9, "key-length", b);
    add(
        10,
        "tensor-offset",
        base().build_with(|i, off| if i == 3 { off + (1 << 24) } else { off }),
    );
    let mut g = base();
    g.tensors[2].dims = vec![1 << 40, 1 << 40];
    add(11, "dims-overflow", g.build());
    add(
        12,
        "misaligned-offset",
        base().build_with(|i, off| if i == 2 { off + 8 } else { off }),
    );
    let mut g = base();
    g.tensors[1].ty = 99;
    add(13, "tensor-type", g.build());
    let mut g = base();
    let mut p = vt::ARRAY.to_le_bytes().to_vec();
    p.extend_from_slice(&0u64.to_le_bytes());
    g.kv_raw("x.nested", vt::ARRAY, p);
    add(14, "nested-array", g.build());
    let mut g = base();
    g.kv_str("general.architecture", "gpt2");
    add(15, "architecture", g.build());
    let mut g = base();
    let t = g
        .tensors
        .iter_mut()
        .find(|t| t.name == "blk.0.attn_q.weight")
        .unwrap();
    t.ty = ty::Q4_0;
    t.data = vec![0; 64 * 64 / 32 * 18];
    add(16, "q4_0-weight", g.build());
    let mut g = base();
    g.remove_kv("llama.block_count");
    add(17, "no-block-count", g.build());
    let mut g = base();
    g.kv_u32("llama.attention.head_count", 3);
    add(18, "heads-do-not-divide", g.build());
    let mut g = base();
    g.tensors.retain(|t| t.name != "blk.1.ffn_up.weight");
    add(19, "missing-ffn-up", g.build());
    let mut g = base();
    let t = g
        .tensors
        .iter_mut()
        .find(|t| t.name == "blk.0.attn_k.weight")
        .unwrap();
    t.dims.swap(0, 1);
    add(20, "k-transposed", g.build());
    let mut g = base();
    let dup = g.tensors[4].clone();
    g.tensors.push(dup);
    add(21, "duplicate", g.build());
    files
}

fn test_program(name: &str) -> PathBuf {
    let exe = tmp().join(name);
    compile(&[root().join("ffi-tests").join(format!("{name}.c"))], &exe);
    exe
}

#[test]
fn c_model_api() {
    let exe = test_program("model");
    let mut args = vec![valid_model()];
    let bad = hostile_files();
    assert!(bad.len() >= 17);
    args.extend(bad);
    let out = run(&exe, &args);
    assert!(out.contains("17 hostile files refused"), "{out}");
}

#[test]
fn c_context_api() {
    let out = run(&test_program("context"), &[valid_model()]);
    assert!(out.contains("context: ok"));
}

#[test]
fn c_host_thread_pool() {
    let path = write(
        "tiny-q8_0.gguf",
        &tiny_model(&TinyConfig::default(), ty::Q8_0, 9),
    );
    let out = run(&test_program("parallel"), &[path]);
    assert!(out.contains("3 threads"), "{out}");
}

#[test]
fn c_sampler_api() {
    let out = run(&test_program("sampler"), &[]);
    assert!(out.contains("sampler: ok"), "{out}");
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
        ["context.c", "model.c", "parallel.c", "sampler.c", "vocab.c"]
    );
}

#[test]
fn c_example_argmax_matches_rust() {
    use nanollama::{Context, ContextParams, Inline, KvType, Model};
    let exe = tmp().join("argmax");
    compile(&[root().join("examples/argmax.c")], &exe);
    let bytes = tiny_model(&TinyConfig::default(), ty::BF16, 21);
    let path = write("tiny-bf16.gguf", &bytes);
    let tokens = [3u32, 14, 15, 92, 65];
    let mut args = vec![path];
    args.extend(tokens.iter().map(|t| PathBuf::from(t.to_string())));
    let out = run(&exe, &args);

    let mut mm = AlignedBuf::new(Model::size(&bytes).unwrap());
    let model = Model::init(&bytes, mm.as_mut_slice()).unwrap();
    let p = ContextParams {
        n_ctx: 5,
        n_batch: 5,
        kv_type: KvType::F16,
        logits_all: true,
    };
    let mut cm = AlignedBuf::new(Context::size(&model, &p).unwrap());
    let mut ctx = Context::init(&model, &p, cm.as_mut_slice()).unwrap();
    ctx.decode(&tokens, &Inline).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), tokens.len(), "{out}");
    for (i, (line, row)) in lines.iter().zip(ctx.logits().chunks(100)).enumerate() {
        let best = (0..100).fold(0, |b, v| if row[v] > row[b] { v } else { b });
        let want = format!("{i} {} -> {best} ", tokens[i]);
        assert!(line.starts_with(&want), "{line:?} vs {want:?}");
    }
}

#[test]
fn header_compiles_as_c_and_cpp() {
    for (compiler, std) in [("cc", "-std=c11"), ("c++", "-std=c++17")] {
        let lang = if compiler == "cc" { "c" } else { "c++" };
        let src = tmp().join(format!(
            "header-only.{}",
            if lang == "c" { "c" } else { "cpp" }
        ));
        std::fs::write(
            &src,
            "#include \"nanollama.h\"\nint main(void) { return NANOLLAMA_STATUS_OK; }\n",
        )
        .unwrap();
        let o = Command::new(compiler)
            .args([
                std,
                "-Wall",
                "-Wextra",
                "-Wpedantic",
                "-Werror",
                "-fsyntax-only",
                "-I",
            ])
            .arg(root().join("include"))
            .arg(&src)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{compiler}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

#[test]
fn static_library_references_no_allocator() {
    const ALLOCATORS: [&str; 10] = [
        "malloc",
        "calloc",
        "realloc",
        "free",
        "posix_memalign",
        "aligned_alloc",
        "__rust_alloc",
        "__rust_dealloc",
        "__rust_realloc",
        "__rust_alloc_zeroed",
    ];
    // readelf reads every member's ELF symbol table (GNU nm may stumble on
    // the embedded LLVM bitcode of a newer rustc).
    let o = Command::new("readelf")
        .arg("-sW")
        .arg(staticlib())
        .output()
        .expect("readelf runs");
    assert!(o.status.success());
    let text = String::from_utf8_lossy(&o.stdout);
    let mut undefined = 0;
    let mut exported = Vec::new();
    for line in text.lines() {
        // Num: Value Size Type Bind Vis Ndx Name
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 8 || !f[0].ends_with(':') {
            continue;
        }
        let (ndx, name) = (f[6], f[7]);
        if ndx == "UND" {
            undefined += 1;
        }
        assert!(
            !ALLOCATORS.contains(&name),
            "the library references {name}: {line}"
        );
        if name.starts_with("nanollama_") && f[4] == "GLOBAL" && ndx != "UND" {
            exported.push(name.to_string());
        }
    }
    // The scan read real symbol tables: the API is there, and undefined
    // symbols (memcpy, abort, ...) were seen and passed.
    assert!(undefined > 10, "{undefined} undefined symbols");
    assert!(
        exported.iter().any(|n| n == "nanollama_context_decode"),
        "{exported:?}"
    );
}
