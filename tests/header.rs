//! The committed C header must equal what build.rs generates from src/ffi.rs.
//! `UPDATE_HEADER=1 cargo test --test header` rewrites it.
use std::path::Path;

#[test]
fn committed_header_is_current() {
    let generated = std::fs::read_to_string(env!("NANOLLAMA_GENERATED_HEADER"))
        .expect("build.rs generated the header (see cargo warnings from cbindgen)");
    let committed_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("include/nanollama.h");
    if std::env::var_os("UPDATE_HEADER").is_some() {
        std::fs::write(&committed_path, &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&committed_path).unwrap_or_default();
    assert!(
        committed == generated,
        "include/nanollama.h is stale: run `UPDATE_HEADER=1 cargo test --test header` and commit it"
    );
}

/// Every function the header declares is one of ours (`nanollama_` and
/// exported through `NANOLLAMA_API`): cbindgen also picks up `extern "C"`
/// declarations of libc functions used by std-only host code, which would
/// clash with the system headers.
#[test]
fn header_declares_only_our_functions() {
    let h = std::fs::read_to_string(env!("NANOLLAMA_GENERATED_HEADER")).unwrap();
    let mut n = 0;
    for line in h.lines() {
        let l = line.trim_start();
        assert!(
            !l.starts_with("extern ") || l.starts_with("extern \"C\" {"),
            "foreign declaration: {line}"
        );
        if let Some(rest) = l.strip_prefix("NANOLLAMA_API") {
            let rest = rest.trim();
            // Either the whole declaration or the return type follows; the
            // name is the first `nanollama_*` word followed by `(` on the
            // line or the next.
            if !rest.is_empty() {
                assert!(rest.contains("nanollama_"), "{line}");
            }
            n += 1;
        }
    }
    assert!(n >= 30, "only {n} declarations found");
}
