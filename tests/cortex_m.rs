//! The bare-metal Cortex-M4F program (examples/cortex-m, run by
//! tools/cortex-m.sh under qemu-system-arm's mps2-an386) writes, for the
//! shipped model, exactly what the host CLI writes for the same prompt and
//! token count with greedy sampling: the prompt as read, then the text.
//! The device runs the scalar kernels, the host its fastest ones.
//!
//! Without qemu-system-arm or the thumbv7em-none-eabihf target the test says
//! "NOT RUN" on stderr and passes, unless NANOLLAMA_REQUIRE_QEMU=1 (as in
//! CI): then it fails.
mod common;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "thumbv7em-none-eabihf";

/// Prompts and token counts: the README's prompt at 32 tokens, and one of
/// 14 tokens at 4, which the device decodes in batches of 8 (the host in
/// one), rebuilt with it linked in.
const CASES: [(&str, usize); 2] = [
    ("And it came to pass", 32),
    ("And God said, Let there be light: and there was light", 4),
];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Why the Cortex-M program cannot run here, if it cannot.
fn missing() -> Option<String> {
    let qemu = Command::new("qemu-system-arm").arg("--version").output();
    if !qemu.is_ok_and(|o| o.status.success()) {
        return Some("qemu-system-arm is not installed (apt-get install qemu-system-arm)".into());
    }
    let sysroot = Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let has_target =
        sysroot.is_some_and(|s| s.join("lib/rustlib").join(TARGET).join("lib").is_dir());
    if !has_target {
        return Some(format!(
            "the {TARGET} target is not installed (rustup target add {TARGET})"
        ));
    }
    None
}

#[test]
fn cortex_m_greedy_text_equals_the_host_text() {
    if let Some(why) = missing() {
        if std::env::var("NANOLLAMA_REQUIRE_QEMU").as_deref() == Ok("1") {
            panic!("tests/cortex_m.rs: {why}, and NANOLLAMA_REQUIRE_QEMU=1 requires the run");
        }
        // Past the harness's capture of eprintln!: shown even when the test passes.
        let _ = writeln!(
            std::io::stderr(),
            "NOT RUN: tests/cortex_m.rs: {why}: the Cortex-M program was not checked"
        );
        return;
    }
    for (prompt, n) in CASES {
        let host = common::greedy_text(prompt, n, None);
        let n = n.to_string();
        let t = std::time::Instant::now();
        let device = Command::new("bash")
            .arg(root().join("tools/cortex-m.sh"))
            .arg(prompt)
            .env("NANOLLAMA_N_GEN", &n)
            .output()
            .unwrap();
        let log = String::from_utf8_lossy(&device.stderr);
        eprintln!(
            "tests/cortex_m.rs: {prompt:?}, {n} tokens: {:.1} s\n{log}",
            t.elapsed().as_secs_f64()
        );
        assert!(
            device.status.success(),
            "tools/cortex-m.sh {prompt:?}: {:?}",
            device.status
        );
        assert_eq!(
            String::from_utf8_lossy(&device.stdout),
            host,
            "{prompt:?}, {n} tokens: Cortex-M text (left) differs from the host's"
        );
        // A text, not a failure that printed nothing.
        assert!(device.stdout.len() > prompt.len() + 8, "{prompt:?}");
    }
}
