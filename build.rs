//! Generates the C header from `src/ffi.rs` (that file only: its constants
//! are the ABI's, the crate's other ones are not) with cbindgen into `OUT_DIR`
//! (never into the source tree, so `cargo publish` verification passes).
//! `tests/header.rs` checks that the committed `include/nanollama.h` equals it.
use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    let crate_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("nanollama.h");
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("cbindgen.toml is readable and valid");
    match cbindgen::Builder::new()
        .with_src(crate_dir.join("src/ffi.rs"))
        .with_config(config)
        .generate()
    {
        Ok(b) => {
            b.write_to_file(&out);
        }
        // A syntax error in src is reported by rustc with a better message.
        Err(e) => println!("cargo:warning=cbindgen: {e}"),
    }
    println!(
        "cargo:rustc-env=NANOLLAMA_GENERATED_HEADER={}",
        out.display()
    );
}
