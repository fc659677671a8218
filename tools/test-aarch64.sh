#!/usr/bin/env bash
# Runs the library's tests for aarch64 (the NEON kernels) under qemu-user:
#   bash tools/test-aarch64.sh
# Needs Debian's qemu-user and gcc-aarch64-linux-gnu (installed if missing
# and apt-get is usable); fails rather than skips when they are not there.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v qemu-aarch64 >/dev/null || ! command -v aarch64-linux-gnu-gcc >/dev/null; then
    apt-get install -y qemu-user gcc-aarch64-linux-gnu libc6-dev-arm64-cross >/dev/null
fi
rustup target add aarch64-unknown-linux-gnu >/dev/null
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu"
# Left out: the tests that start another aarch64 executable themselves (the
# CLI, a child test process), which the host cannot run without binfmt, and
# the C tests (host compiler).
cargo test --release --no-fail-fast --target aarch64-unknown-linux-gnu \
    --lib --test parity --test shipped --test quantized_files --test context \
    --test state --test bad_input --test sampler --test tokenizer -- \
    --skip keys_past_4_gib --skip survivors_and_probabilities_match_llama_cpp
