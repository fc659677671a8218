#!/usr/bin/env bash
# Code size of the library with every C API function linked, on the three
# kinds of target it is built for: Cortex-M4F (thumbv7em-none-eabihf),
# x86-64 (the kernels for every level: scalar, AVX2, AVX-512) and wasm32
# with simd128. For the native targets: the release static library linked
# with --gc-sections and every `nanollama_*` function of the header kept,
# stripped; the figure is .text + .rodata. On Cortex-M every symbol must
# resolve (the no_std library brings all it needs, memcpy included: a
# firmware that uses the whole API links); on x86-64 the C library's
# functions are left unresolved (the program brings them). For wasm32: the
# module (which links itself) as tools/build-wasm.sh writes it, and after
# `wasm-opt -Oz` where binaryen is installed.
#   bash tools/code-size.sh [TARGET]    (TARGET: thumbv7em-none-eabihf,
#                                        x86_64 or wasm32; default all three)
set -euo pipefail
cd "$(dirname "$0")/.."
only=${1:-}
lld=$(find "$(rustc --print sysroot)" -name rust-lld -type f | head -n 1)
syms=$(grep -o 'nanollama_[a-z_]*(' include/nanollama.h | tr -d '(' | sort -u)
undef=()
for s in $syms; do undef+=("--undefined=$s"); done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

native() { # target, library path, extra link flags
    "$lld" -flavor gnu --gc-sections --strip-all -e nanollama_context_decode "${undef[@]}" \
        "${@:3}" "$2" -o "$tmp/$1.elf"
    read -r text rodata < <(size -A "$tmp/$1.elf" | awk '/^\.text/{t=$2} /^\.rodata/{r=$2} END{print t, r}')
    printf '%-24s .text %8d  .rodata %7d  total %8d bytes (all %d C API functions linked)\n' \
        "$1" "$text" "$rodata" $((text + rodata)) "$(echo "$syms" | wc -l)"
}

if [ -z "$only" ] || [ "$only" = thumbv7em-none-eabihf ]; then
    cargo build --quiet --release --target thumbv7em-none-eabihf --lib 2>&1 |
        grep -v "dropping unsupported crate type" || true
    native thumbv7em-none-eabihf target/thumbv7em-none-eabihf/release/libnanollama.a
fi
if [ -z "$only" ] || [ "$only" = x86_64 ]; then
    cargo build --quiet --release --lib
    native x86_64 target/release/libnanollama.a --unresolved-symbols=ignore-all
fi
if [ -z "$only" ] || [ "$only" = wasm32 ]; then
    bash tools/build-wasm.sh "$tmp/nanollama.wasm" 2>/dev/null
    raw=$(stat -c %s "$tmp/nanollama.wasm")
    if command -v wasm-opt >/dev/null; then
        wasm-opt -Oz "$tmp/nanollama.wasm" -o "$tmp/oz.wasm"
        printf '%-24s module %8d bytes, after wasm-opt -Oz %8d bytes\n' "wasm32 +simd128" "$raw" "$(stat -c %s "$tmp/oz.wasm")"
    else
        printf '%-24s module %8d bytes (no wasm-opt: apt-get install binaryen)\n' "wasm32 +simd128" "$raw"
    fi
fi
