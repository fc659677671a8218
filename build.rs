//! Generates the C header from `src/ffi.rs` (that file only: its constants
//! are the ABI's, the crate's other ones are not) with cbindgen into `OUT_DIR`
//! (never into the source tree, so `cargo publish` verification passes).
//! `tests/header.rs` checks that the committed `include/nanollama.h` equals it.
//!
//! On ELF targets it also gives the shared library its soname,
//! `libnanollama.so.N` with N = `NANOLLAMA_ABI_VERSION` of src/ffi.rs, so
//! programs linked against it load only a library of the same ABI.
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

    // `nanollama_vcvt_f16`: the target's FPU converts f16 to f32 itself
    // (`vcvtb`/`vcvtt.f32.f16`, used by `quant::f16_to_f32`): FPv4-SP
    // (thumbv7em: Cortex-M4F, M7) and FPv5 (thumbv8m.main: Cortex-M33, M35P).
    // By the target's name, because rustc sets no ARM `target_feature` cfg on
    // stable (ARM's features are unstable), nor any for this extension at all;
    // the other hard-float ARM targets (VFPv2, VFPv3-D16) may lack it.
    println!("cargo:rustc-check-cfg=cfg(nanollama_vcvt_f16)");
    let target = env::var("TARGET").unwrap_or_default();
    if (target.starts_with("thumbv7em-") || target.starts_with("thumbv8m.main-"))
        && target.ends_with("eabihf")
    {
        println!("cargo:rustc-cfg=nanollama_vcvt_f16");
    }

    let os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let elf = [
        "linux",
        "android",
        "freebsd",
        "netbsd",
        "openbsd",
        "dragonfly",
        "illumos",
        "solaris",
    ];
    if elf.contains(&os.as_str()) {
        let ffi =
            std::fs::read_to_string(crate_dir.join("src/ffi.rs")).expect("src/ffi.rs is readable");
        let n = abi_version(&ffi);
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libnanollama.so.{n}");
        // The library calls memcpy, memset and abort: say it needs libc, so
        // that `ldd -r` and `-Wl,--no-undefined` builds of hosts are content
        // (the no_std link leaves it out).
        println!("cargo:rustc-cdylib-link-arg=-lc");
    }
}

/// The value of `pub const NANOLLAMA_ABI_VERSION: u32 = N;` in src/ffi.rs.
/// Panics when the line is missing: a shared library without its soname
/// would be worse than a failed build.
fn abi_version(ffi: &str) -> u32 {
    ffi.lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("pub const NANOLLAMA_ABI_VERSION: u32 =")?
                .trim()
                .strip_suffix(';')?
                .trim()
                .parse()
                .ok()
        })
        .expect("src/ffi.rs has `pub const NANOLLAMA_ABI_VERSION: u32 = N;` (the soname's major)")
}
