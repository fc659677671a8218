#!/usr/bin/env bash
# Builds the library for the browser and Node: wasm32-unknown-unknown (no
# Emscripten, no WASI), release, with the simd128 kernels, and copies the
# module to OUT (default examples/web/nanollama.wasm, where the page loads
# it; a build output, not committed).
#   bash tools/build-wasm.sh [OUT]
# Its own target directory (target/wasm): no wait on the lock of a cargo
# command running in target/ (tests/wasm.rs calls this from `cargo test`).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-examples/web/nanollama.wasm}
rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown \
    || rustup target add wasm32-unknown-unknown >/dev/null
# Only these flags: a caller's RUSTFLAGS (a sanitizer, say) are not for wasm.
unset CARGO_ENCODED_RUSTFLAGS
export RUSTFLAGS="-C target-feature=+simd128"
cargo build --quiet --release --lib --target wasm32-unknown-unknown --target-dir target/wasm
mkdir -p "$(dirname "$out")"
cp target/wasm/wasm32-unknown-unknown/release/nanollama.wasm "$out"
echo "build-wasm: $out, $(stat -c %s "$out") bytes" >&2
