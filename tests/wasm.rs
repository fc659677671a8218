//! The WebAssembly build (wasm32-unknown-unknown with simd128, built by
//! tools/build-wasm.sh) run by Node through examples/web/nanollama.js, the
//! JS host the web page uses: its greedy text for the shipped model must be
//! the native CLI's (`nanollama generate --temp 0`) for the same prompt, at
//! the CPU's kernels and at the scalar ones (the simd128 kernels do the scalar
//! reference's arithmetic, so those two are the same bits by design); and
//! the module must import nothing but `env.abort` and export every function
//! of the header. The web page in headless Chromium must write the same
//! text.
//!
//! Without node (20 or later), the wasm32-unknown-unknown target (or, for
//! the page, Chromium) the tests
//! print "NOT RUN: ..." and pass, unless NANOLLAMA_REQUIRE_WASM=1 (CI sets
//! it): then they fail.
mod common;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const PROMPT: &str = "And it came to pass";
const N_PREDICT: usize = 64;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The built module, or why there is none (a missing tool: see the module
/// doc). A failed build panics.
fn wasm() -> Result<&'static Path, String> {
    static WASM: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    WASM.get_or_init(|| {
        let v = Command::new("node")
            .arg("--version")
            .output()
            .map_err(|e| format!("node is missing ({e})"))?;
        let v = String::from_utf8_lossy(&v.stdout).trim().to_string();
        let major: u32 = v
            .trim_start_matches('v')
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or(0);
        if major < 20 {
            return Err(format!("node {v} is too old (20 or later: node:wasi, fetch, Response)"));
        }
        let sysroot = Command::new("rustc")
            .args(["--print", "sysroot"])
            .output()
            .map_err(|e| format!("rustc is missing ({e})"))?;
        let sysroot = String::from_utf8_lossy(&sysroot.stdout).trim().to_string();
        if !Path::new(&sysroot)
            .join("lib/rustlib/wasm32-unknown-unknown/lib")
            .is_dir()
        {
            return Err(
                "the wasm32-unknown-unknown target is not installed (rustup target add wasm32-unknown-unknown)"
                    .into(),
            );
        }
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("nanollama.wasm");
        let st = Command::new("bash")
            .arg(root().join("tools/build-wasm.sh"))
            .arg(&out)
            .status()
            .expect("bash");
        assert!(st.success(), "tools/build-wasm.sh failed");
        Ok(out)
    })
    .as_deref()
    .map_err(Clone::clone)
}

/// The module, or None after saying loudly why the test does not run
/// (a failure instead under NANOLLAMA_REQUIRE_WASM=1).
fn wasm_or_not_run(test: &str) -> Option<&'static Path> {
    match wasm() {
        Ok(p) => Some(p),
        Err(why) => {
            not_run(test, &why);
            None
        }
    }
}

/// Says loudly that `test` does not run, and why (a failure instead under
/// NANOLLAMA_REQUIRE_WASM=1).
fn not_run(test: &str, why: &str) {
    // Past the harness's capture of eprintln!: shown even when the test passes.
    let _ = writeln!(std::io::stderr(), "NOT RUN: tests/wasm.rs {test}: {why}");
    assert!(
        std::env::var("NANOLLAMA_REQUIRE_WASM").as_deref() != Ok("1"),
        "NANOLLAMA_REQUIRE_WASM=1, and {why}"
    );
}

#[test]
fn node_writes_the_native_greedy_text() {
    let Some(wasm) = wasm_or_not_run("node_writes_the_native_greedy_text") else {
        return;
    };
    let model_path = root().join("models/kjv-llama.gguf");
    let out = Command::new("node")
        .arg(root().join("tools/wasm-generate.mjs"))
        .arg(wasm)
        .arg(&model_path)
        .arg(PROMPT)
        .arg(N_PREDICT.to_string())
        .output()
        .expect("node");
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprint!("{stderr}");
    assert!(out.status.success(), "node tools/wasm-generate.mjs failed");
    let wasm_text = String::from_utf8(out.stdout).unwrap();

    let native = common::greedy_text(PROMPT, N_PREDICT, None);
    let scalar = common::greedy_text(PROMPT, N_PREDICT, Some("scalar"));
    assert!(native.len() > PROMPT.len() + 100, "{native:?}");
    assert_eq!(wasm_text, scalar, "wasm against the native scalar kernels");
    assert_eq!(wasm_text, native, "wasm against the native fastest kernels");
    eprintln!(
        "wasm text = native text (fastest and scalar kernels), {N_PREDICT} tokens:\n{wasm_text}"
    );
}

/// The imports (only `env.abort`, the panic handler's) and the exports
/// (every function of include/nanollama.h, and the memory) of the module.
#[test]
fn module_imports_only_env_abort_and_exports_the_header() {
    let Some(wasm) = wasm_or_not_run("module_imports_only_env_abort_and_exports_the_header") else {
        return;
    };
    let script = "const m = new WebAssembly.Module(require('fs').readFileSync(process.argv[1]));\
        const f = (l) => l.map((i) => (i.module ? i.module + '.' : '') + i.name + ':' + i.kind).join('\\n');\
        console.log(f(WebAssembly.Module.imports(m)) + '\\n--\\n' + f(WebAssembly.Module.exports(m)));";
    let out = Command::new("node")
        .args(["-e", script])
        .arg(wasm)
        .output()
        .expect("node");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let (imports, exports) = text.split_once("\n--\n").unwrap();
    assert_eq!(imports, "env.abort:function", "imports");
    let exports: Vec<&str> = exports.lines().collect();
    assert!(exports.contains(&"memory:memory"), "{exports:?}");
    let header = std::fs::read_to_string(root().join("include/nanollama.h")).unwrap();
    let mut functions = std::collections::BTreeSet::new();
    for (i, _) in header.match_indices("nanollama_") {
        let rest = &header[i..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let is_call = rest[name.len()..].starts_with('(');
        // Not a function pointer type (`(*nanollama_task_fn)(...)`).
        if is_call && !header[..i].ends_with("(*") {
            let want = format!("{name}:function");
            assert!(exports.contains(&want.as_str()), "{name} is not exported");
            functions.insert(name);
        }
    }
    let n = functions.len();
    assert!(n >= 50, "found only {n} functions in the header");
    eprintln!("imports: {imports}; all {n} functions of the header exported");
}

/// The web page (examples/web/) in headless Chromium, driven by
/// tools/web-test.sh (which builds its own copy of the module, serves the
/// repository on localhost and types the prompt): the text it reads back
/// from the page is the native greedy text. Without Chromium: NOT RUN (a
/// failure under NANOLLAMA_REQUIRE_WASM=1).
#[test]
fn chromium_page_writes_the_native_greedy_text() {
    const TEST: &str = "chromium_page_writes_the_native_greedy_text";
    if wasm_or_not_run(TEST).is_none() {
        return;
    }
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).is_file() {
        not_run(
            TEST,
            &format!("no browser at {chromium} (Debian: apt-get install chromium)"),
        );
        return;
    }
    let out = Command::new("bash")
        .arg(root().join("tools/web-test.sh"))
        .arg(PROMPT)
        .env("N_PREDICT", N_PREDICT.to_string())
        .env("CHROMIUM", &chromium)
        .output()
        .expect("bash");
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprint!("{stderr}");
    assert!(out.status.success(), "tools/web-test.sh failed");
    let page = String::from_utf8(out.stdout).unwrap();

    let native = common::greedy_text(PROMPT, N_PREDICT, None);
    assert!(native.len() > PROMPT.len() + 100, "{native:?}");
    assert_eq!(page, native, "the page's text against the native text");
    eprintln!("page text = native text, {N_PREDICT} tokens:\n{page}");
}
