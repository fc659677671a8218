//! The C++ layer, `include/nanollama.hpp`. Builds the release static
//! library as `tests/ffi_c.rs` does (the same directory, so one build serves
//! both), then:
//! - compiles a user of the header with `-std=c++17` and `-std=c++20`, with
//!   exceptions, with `-fno-exceptions` and with `-DNANOLLAMA_NO_EXCEPTIONS`,
//!   under `-Wall -Wextra -Wpedantic -Werror` and stricter warnings a host
//!   may use (conversions, shadowing, old-style casts), and without its
//!   thread pool (`-DNANOLLAMA_NO_THREAD_POOL`);
//! - builds `ffi-tests/cpp/api.cpp` in each of those ways, runs it on the
//!   shipped model (RAII, moves, results, exceptions, caller buffers, thread
//!   pool, states) and holds its greedy text to `examples/generate.c`'s;
//! - builds `examples/generate.cpp` with the command of its first line and
//!   holds its text to `examples/generate.c`'s for the same flags.
//!
//! A missing C or C++ compiler fails the tests (it does not skip them).
//! `NANOLLAMA_SANITIZE=1` adds AddressSanitizer and UBSan to every build.
mod common;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use common::native::{build, exec, root, sanitizer_flags, staticlib};

/// Where this test binary writes models and programs (see `tmp_dir`).
fn tmp() -> PathBuf {
    common::native::tmp_dir("cpp")
}

fn write(name: &str, bytes: &[u8]) -> PathBuf {
    common::native::write_in(&tmp(), name, bytes)
}

/// `$VAR` or `default`, which must run: a missing compiler is a failure
/// with a message, never a skipped test.
fn compiler(var: &str, default: &str, what: &str) -> String {
    let c = std::env::var(var).unwrap_or_else(|_| default.into());
    match Command::new(&c).arg("--version").output() {
        Ok(o) if o.status.success() => c,
        Ok(o) => panic!(
            "the {what} compiler `{c}` does not work ({}): tests/cpp.rs needs one; \
             install g++ (or clang++), or set {var}",
            o.status
        ),
        Err(e) => panic!(
            "no {what} compiler `{c}` ({e}): tests/cpp.rs needs one; \
             install g++ (or clang++), or set {var}"
        ),
    }
}

fn cc() -> String {
    compiler("CC", "cc", "C")
}

fn cxx() -> String {
    compiler("CXX", "c++", "C++")
}

/// The warnings of every C and C++ build here, and for C++ the stricter
/// ones a host may compile with: the header must stay clean under them.
const STRICT: [&str; 4] = ["-Wall", "-Wextra", "-Wpedantic", "-Werror"];
const STRICTER: [&str; 6] = [
    "-Wconversion",
    "-Wsign-conversion",
    "-Wshadow",
    "-Wold-style-cast",
    "-Wcast-qual",
    "-Wnon-virtual-dtor",
];

/// The ways the header is compiled: both standards, with and without the
/// throwing API.
const FLAVOURS: [(&str, &[&str]); 4] = [
    ("cxx17", &["-std=c++17"]),
    ("cxx20", &["-std=c++20"]),
    ("cxx17-noexcept", &["-std=c++17", "-fno-exceptions"]),
    (
        "cxx20-nothrow",
        &["-std=c++20", "-DNANOLLAMA_NO_EXCEPTIONS"],
    ),
];

fn output(exe: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(exe);
    cmd.args(args).current_dir(root());
    exec(cmd)
}

/// Runs a program and requires exit status 0; returns its stdout.
fn run(exe: &Path, args: &[&str]) -> String {
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

/// Builds `examples/FILE` with the command its first line documents
/// (`cc ... examples/NAME.c target/release/libnanollama.a ... -o NAME`, or
/// `c++ ...`), with this test's library, the strict warnings and, if asked,
/// sanitizers.
fn example(file: &str) -> PathBuf {
    let src = format!("examples/{file}");
    let text = std::fs::read_to_string(root().join(&src)).unwrap();
    let first = text.lines().next().unwrap();
    let words: Vec<&str> = first
        .trim_start_matches("/*")
        .trim_end_matches("*/")
        .split_whitespace()
        .collect();
    let (compiler, cpp) = match words.first() {
        Some(&"cc") => (cc(), false),
        Some(&"c++") => (cxx(), true),
        _ => panic!("{src}: {first}"),
    };
    assert!(words.contains(&src.as_str()), "{src}: {first}");
    assert!(
        words.contains(&"target/release/libnanollama.a"),
        "{src}: {first}"
    );
    let o = words.iter().position(|w| *w == "-o").expect("-o NAME");
    let name = *words.get(o + 1).expect("-o NAME");
    let mut cmd = Command::new(compiler);
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
    if cpp {
        cmd.args(STRICTER);
    }
    build(cmd, &tmp().join(name))
}

fn shipped_model() -> String {
    root().join("models/kjv-llama.gguf").display().to_string()
}

const PROMPT: &str = "And it came to pass";

/// Sampling with a temperature and penalties, so that both the random
/// generator and the penalty history matter.
const SAMPLING: [&str; 6] = ["--seed", "5", "--temp", "0.9", "--repeat-penalty", "1.2"];

/// `examples/generate.c` (or another generate) on the shipped model.
fn generate(exe: &Path, prompt: &str, n: usize, threads: usize, flags: &[&str]) -> String {
    let (m, n, t) = (shipped_model(), n.to_string(), threads.to_string());
    let mut a = vec!["-m", &m, "-p", prompt, "-n", &n, "-t", &t];
    a.extend(flags);
    run(exe, &a)
}

fn generate_c() -> &'static Path {
    static EXE: OnceLock<PathBuf> = OnceLock::new();
    EXE.get_or_init(|| example("generate.c"))
}

#[test]
fn header_compiles_in_every_flavour() {
    let src = write(
        "hpp-user.cpp",
        br#"#include "nanollama.hpp"
// Each owner, its params and its result type, instantiated.
int use(const void *gguf, std::size_t len) noexcept {
    nanollama::Result<nanollama::Model> m = nanollama::Model::try_load(gguf, len);
    if (!m) return static_cast<int>(m.error().code());
    nanollama::Result<nanollama::Context> c = nanollama::Context::try_create(*m, nanollama::ContextParams().n_ctx(8));
    nanollama::Result<nanollama::Sampler> s = nanollama::Sampler::try_create(m->n_vocab(), nanollama::SamplerParams::greedy());
    nanollama::Result<nanollama::Vocab> v = nanollama::Vocab::try_load(gguf, len);
    if (!c || !s || !v) return 1;
    nanollama::Result<void> d = c->try_decode(nanollama::token{1});
    nanollama::Result<nanollama::token> t = s->try_sample(*c);
    nanollama::Result<std::string> piece = v->try_token_to_piece(t.value_or(0));
    return d && piece ? 0 : 2;
}
int main() { return use(nullptr, 0) == NANOLLAMA_STATUS_NULL_POINTER ? 0 : 1; }
"#,
    );
    let cxx = cxx();
    // And for a host without threads, nor exceptions.
    let no_threads: (&str, &[&str]) = (
        "no-thread-pool",
        &[
            "-std=c++17",
            "-fno-exceptions",
            "-DNANOLLAMA_NO_THREAD_POOL",
        ],
    );
    for (name, flags) in FLAVOURS.into_iter().chain([no_threads]) {
        let o = Command::new(&cxx)
            .args(flags)
            .args(STRICT)
            .args(STRICTER)
            .arg("-fsyntax-only")
            .arg("-I")
            .arg(root().join("include"))
            .arg(&src)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{name} {flags:?}:\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

#[test]
fn throwing_api_is_gone_without_exceptions() {
    // The switch works: without exceptions, using the throwing API is a
    // compile error (not a call that would abort).
    let src = write(
        "hpp-throws.cpp",
        b"#include \"nanollama.hpp\"\nint main() { nanollama::Model m(nullptr, 0); return m ? 0 : 1; }\n",
    );
    let cxx = cxx();
    for (flags, compiles) in [
        (&["-std=c++17"][..], true),
        (&["-std=c++17", "-fno-exceptions"][..], false),
        (&["-std=c++20", "-DNANOLLAMA_NO_EXCEPTIONS"][..], false),
    ] {
        let o = Command::new(&cxx)
            .args(flags)
            .args(STRICT)
            .arg("-fsyntax-only")
            .arg("-I")
            .arg(root().join("include"))
            .arg(&src)
            .output()
            .unwrap();
        assert_eq!(
            o.status.success(),
            compiles,
            "{flags:?}:\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

#[test]
fn every_cpp_test_is_run() {
    // A new ffi-tests/cpp/*.cpp must get a #[test] here.
    let mut names: Vec<String> = std::fs::read_dir(root().join("ffi-tests/cpp"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".cpp"))
        .collect();
    names.sort();
    assert_eq!(names, ["api.cpp"]);
}

#[test]
fn cpp_api_in_every_flavour_writes_the_c_examples_greedy_text() {
    let c_text = generate(generate_c(), PROMPT, 40, 1, &["--temp", "0"]);
    assert!(c_text.starts_with(" And it came to pass"), "{c_text:?}");
    let cxx = cxx();
    for (name, flags) in FLAVOURS {
        let mut cmd = Command::new(&cxx);
        cmd.args(flags)
            .args(STRICT)
            .args(STRICTER)
            .args(["-O1", "-g"])
            .args(sanitizer_flags())
            .arg("-I")
            .arg(root().join("include"))
            .arg(root().join("ffi-tests/cpp/api.cpp"))
            .arg(staticlib())
            .args(["-lm", "-lpthread"]);
        let exe = build(cmd, &tmp().join(format!("api-{name}")));
        let text = run(&exe, &[&shipped_model(), PROMPT, "40"]);
        assert_eq!(text, c_text, "{name}");
    }
}

#[test]
fn cpp_example_generate_writes_the_c_examples_text() {
    let cpp = example("generate.cpp");
    let c = generate_c();
    // Greedy by default; the C example needs --temp 0.
    let greedy = generate(c, PROMPT, 40, 1, &["--temp", "0"]);
    assert_eq!(generate(&cpp, PROMPT, 40, 1, &[]), greedy);
    assert_eq!(generate(&cpp, PROMPT, 40, 2, &["--temp", "0"]), greedy);
    // Sampled, on any number of threads.
    let sampled = generate(c, PROMPT, 40, 1, &SAMPLING);
    assert_ne!(sampled, greedy);
    for t in [1, 3] {
        assert_eq!(
            generate(&cpp, PROMPT, 40, t, &SAMPLING),
            sampled,
            "{t} threads"
        );
    }
    // An empty prompt starts from BOS; --special reads control-token text.
    assert_eq!(
        generate(&cpp, "", 20, 1, &[]),
        generate(c, "", 20, 1, &["--temp", "0"])
    );
    assert_eq!(
        generate(&cpp, "<s>In the", 20, 1, &["--special"]),
        generate(c, "<s>In the", 20, 1, &["--special", "--temp", "0"])
    );

    // A bad file: exit status 1 and the status on stderr.
    let bad = write(
        "bad-magic.gguf",
        b"NOPE and more bytes than a header has....",
    );
    let o = output(&cpp, &["-m", bad.to_str().unwrap(), "-p", PROMPT]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    let want = format!("error {}", nanollama::ffi::NANOLLAMA_STATUS_GGUF_BAD_MAGIC);
    assert!(err.contains(&want), "{err}");
    assert!(o.stdout.is_empty());
    let o = output(&cpp, &["-m", "no/such/file.gguf"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(output(&cpp, &["--bogus", "x"]).status.code(), Some(2));
}

#[test]
fn readme_cpp_section_runs() {
    // The README's C++ snippet, with a main that reads the shipped model.
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let section = readme
        .split("\n## C++\n")
        .nth(1)
        .expect("README has a C++ section");
    let code = section
        .split("```cpp\n")
        .nth(1)
        .and_then(|s| s.split("```").next())
        .expect("a ```cpp block");
    let main = r#"
#include <fstream>
#include <iterator>
#include <vector>
int main(int argc, char **argv) {
    if (argc != 2) return 2;
    std::ifstream f(argv[1], std::ios::binary);
    std::vector<char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    return generate(nanollama::span<const std::byte>(reinterpret_cast<const std::byte *>(bytes.data()), bytes.size()),
                    "And it came to pass");
}
"#;
    let src = write("readme.cpp", format!("{code}{main}").as_bytes());
    let cxx = cxx();
    for std in ["-std=c++17", "-std=c++20"] {
        let mut cmd = Command::new(&cxx);
        cmd.arg(std)
            .args(STRICT)
            .args(sanitizer_flags())
            .arg("-I")
            .arg(root().join("include"))
            .arg(&src)
            .arg(staticlib())
            .args(["-lm", "-lpthread"]);
        let exe = build(cmd, &tmp().join(format!("readme{}", &std[7..])));
        let out = run(&exe, &[&shipped_model()]);
        assert!(out.starts_with(','), "{std}: {out:?}");
        assert!(out.len() > 60, "{std}: {out:?}");
    }
}

#[test]
fn each_flavour_has_its_own_linker_names() {
    // Result, span and the throwing API differ between flavours, and a
    // function's return type is not in its linker name: the header's
    // inline namespaces must keep one program's C++17 and C++20, throwing
    // and -fno-exceptions translation units from merging inline functions
    // that are not the same.
    let src = write(
        "hpp-odr.cpp",
        b"#include \"nanollama.hpp\"\nbool loads(const void *p, std::size_t n) { return nanollama::Model::try_load(p, n).has_value(); }\n",
    );
    let cxx = cxx();
    let mut seen: Vec<(&str, String)> = Vec::new();
    for (name, flags) in FLAVOURS {
        let obj = tmp().join(format!("hpp-odr-{name}.o"));
        let mut cmd = Command::new(&cxx);
        cmd.args(flags)
            .args(STRICT)
            .arg("-c")
            .arg("-I")
            .arg(root().join("include"))
            .arg(&src);
        build(cmd, &obj);
        let o = Command::new("nm")
            .args(["--defined-only", "-P"])
            .arg(&obj)
            .output()
            .expect("nm (binutils) runs");
        assert!(o.status.success(), "nm {}", obj.display());
        let syms: Vec<String> = String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|s| s.contains("try_load"))
            .map(String::from)
            .collect();
        assert!(!syms.is_empty(), "{name}: no try_load symbol");
        for s in syms {
            if let Some((other, _)) = seen.iter().find(|(_, t)| *t == s) {
                panic!("{name} and {other} both define {s}");
            }
            seen.push((name, s));
        }
    }
}
