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
