#!/usr/bin/env bash
# The library's unit tests under Miri (nightly): undefined behaviour, out of
# bounds or misaligned access, use of uninitialized memory, data races.
# Miri runs no cpuid, so the kernels are the scalar reference ones (the SIMD
# kernels run under AddressSanitizer in the fuzz targets instead; Miri also
# lacks the F16C intrinsics the AVX2 kernels use).
# Run:  bash tools/miri.sh     (~3-4 min on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
if ! cargo +nightly miri --version >/dev/null 2>&1; then
    rustup component add miri rust-src --toolchain nightly
fi
cargo +nightly miri setup >/dev/null
cargo +nightly miri test --lib
