#!/usr/bin/env bash
# Runs the kernel unit tests (simd::, kernels::) built for wasm32-wasip1 with
# simd128 under Node's WASI: the WebAssembly simd128 kernels of
# src/simd/wasm.rs against the scalar reference, and the batched matrix
# product over them. Any further arguments go to the test harness (a
# filter, --nocapture).
#   bash tools/test-wasm-kernels.sh
# Needs node (20 or later) and the wasm32-wasip1 target (added if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v node >/dev/null || { echo "test-wasm-kernels: node is missing" >&2; exit 1; }
rustup target list --installed | grep -qx wasm32-wasip1 || rustup target add wasm32-wasip1 >/dev/null
export CARGO_TARGET_WASM32_WASIP1_RUNNER="node --no-warnings $PWD/tools/wasi-run.mjs"
export RUSTFLAGS="-C target-feature=+simd128"
filters=("$@")
[ ${#filters[@]} -gt 0 ] || filters=(simd:: kernels::)
cargo test --lib --target wasm32-wasip1 --target-dir target/wasm -- "${filters[@]}"
