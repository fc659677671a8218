//! Links with `link.x` (the mps2-an386 memory map) and keeps a linker map
//! next to the ELF (`nanollama-cortex-m.map`) for the size figures.
use std::env;
use std::path::PathBuf;

fn main() {
    let dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    println!("cargo:rerun-if-changed=link.x");
    println!("cargo:rerun-if-changed=../../models/kjv-llama.gguf");
    println!("cargo:rustc-link-arg=-T{}", dir.join("link.x").display());
    println!("cargo:rustc-link-arg=--gc-sections");
    // target/<triple>/<profile>/build/<pkg>-<hash>/out -> target/<triple>/<profile>
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    if let Some(profile_dir) = out.ancestors().nth(3) {
        let map = profile_dir.join("nanollama-cortex-m.map");
        println!("cargo:rustc-link-arg=-Map={}", map.display());
    }
}
