//! For the tests that build C and C++ programs against the library
//! (`tests/ffi_c.rs`, `tests/cpp.rs`): where they write, and the release
//! static library they link, built once per test binary in one shared
//! directory.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `NANOLLAMA_SANITIZE=1`: every C and C++ build gets ASan and UBSan.
pub fn sanitize() -> bool {
    std::env::var("NANOLLAMA_SANITIZE").is_ok_and(|v| v == "1")
}

/// `CARGO_TARGET_TMPDIR/<dir>/<plain|asan>`: one directory per test file
/// and flavour, so that a sanitized and a plain run do not overwrite each
/// other.
pub fn tmp_dir(dir: &str) -> PathBuf {
    let flavour = if sanitize() { "asan" } else { "plain" };
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(dir)
        .join(flavour);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A fresh temporary name next to `p`, renamed over it when complete, so
/// that a program reading `p` (another test, another run) never sees it
/// half-written, and a running executable is never overwritten in place.
pub fn staging(p: &Path) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let name = p.file_name().unwrap().to_string_lossy();
    p.with_file_name(format!(".{name}.{}.{n}", std::process::id()))
}

/// Writes `dir/name` through a staging name.
pub fn write_in(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    let t = staging(&p);
    std::fs::write(&t, bytes).unwrap();
    std::fs::rename(&t, &p).unwrap();
    p
}

/// The release static library, built once per test binary.
pub fn staticlib() -> &'static Path {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ffi-lib");
        let o = Command::new(env!("CARGO"))
            .args(["build", "--release", "--lib", "--target-dir"])
            .arg(&dir)
            .current_dir(root())
            .output()
            .expect("cargo runs");
        assert!(
            o.status.success(),
            "release build of the library failed:\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
        let lib = dir.join("release/libnanollama.a");
        assert!(lib.is_file(), "{} missing", lib.display());
        lib
    })
}

/// Runs a command with its output captured, killing it after a generous
/// deadline (a deadlocked thread pool must fail the test, not hang it).
pub fn exec(mut cmd: Command) -> Output {
    use std::io::Read;
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?} does not run: {e}"));
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + Duration::from_secs(300);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{cmd:?} timed out:\n--- stdout\n{}--- stderr\n{}",
                String::from_utf8_lossy(&out.join().unwrap()),
                String::from_utf8_lossy(&err.join().unwrap())
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// Runs `cmd` with `input` on its stdin; its stdout and stderr, after
/// asserting it succeeded.
pub fn with_stdin(cmd: &mut Command, input: &str) -> (String, String) {
    use std::io::Write;
    use std::process::Stdio;
    let mut c = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?} does not run: {e}"));
    c.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let o = c.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{cmd:?}: {err}");
    (String::from_utf8(o.stdout).unwrap(), err)
}

/// The compiler flags of a sanitized build (none otherwise).
pub fn sanitizer_flags() -> &'static [&'static str] {
    if sanitize() {
        &[
            "-fsanitize=address,undefined",
            "-fno-omit-frame-pointer",
            "-fno-sanitize-recover=all",
        ]
    } else {
        &[]
    }
}

/// Runs a compiler command whose last arguments are `-o out` (added here,
/// through a staging name) and requires success.
pub fn build(mut cmd: Command, out: &Path) -> PathBuf {
    let t = staging(out);
    let o = cmd.arg("-o").arg(&t).output().expect("the compiler runs");
    assert!(
        o.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    std::fs::rename(&t, out).unwrap();
    out.to_path_buf()
}
