#!/usr/bin/env bash
# Code size of the library on a small device: builds the no_std static library
# for Cortex-M4F (thumbv7em-none-eabihf) and links every C API function into
# one image with --gc-sections, so the figure is what a firmware that uses the
# whole API would carry. Run: bash tools/thumb-size.sh
set -euo pipefail
cd "$(dirname "$0")/.."
target=thumbv7em-none-eabihf
cargo build --quiet --release --target "$target" --lib 2>&1 | grep -v "dropping unsupported crate type" || true
lld=$(find "$(rustc --print sysroot)" -name rust-lld -type f | head -n 1)
syms=$(grep -o 'nanollama_[a-z_]*(' include/nanollama.h | tr -d '(' | sort -u)
undef=()
for s in $syms; do undef+=("--undefined=$s"); done
out=$(mktemp -d)/nanollama-api.elf
"$lld" -flavor gnu --gc-sections --strip-debug -e nanollama_context_decode "${undef[@]}" \
    "target/$target/release/libnanollama.a" -o "$out"
read -r text rodata < <(size -A "$out" | awk '/^\.text/{t=$2} /^\.rodata/{r=$2} END{print t, r}')
echo "thumbv7em-none-eabihf, all $(echo "$syms" | wc -l) C API functions linked: .text ${text} bytes, .rodata ${rodata} bytes"
