#!/usr/bin/env bash
# The bare-metal program of examples/cortex-m under QEMU: builds it for
# thumbv7em-none-eabihf with PROMPT linked in, runs it on mps2-an386
# (Cortex-M4F) with semihosting and -icount shift=0 (one instruction per
# nanosecond of virtual time, which the program reads through a timer), and
# prints on stdout what it writes: the prompt as the model reads it, then
# NANOLLAMA_N_GEN (default 32) greedy tokens, byte for byte what
#   nanollama generate --temp 0 -n N --prompt PROMPT
# writes for the shipped model. On stderr: the image's sizes, instructions
# per token, each buffer's size and the stack's high-water mark.
# Run: bash tools/cortex-m.sh [PROMPT]
# Exit status: the program's (0; 1 with a message; 3 on a fault), 124 on timeout
# (NANOLLAMA_QEMU_TIMEOUT seconds, default 120: a run takes 15-30 s, and
# a panic in the library spins rather than exits), 127 when a tool is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
prompt=${1-And it came to pass}
n_gen=${NANOLLAMA_N_GEN:-32}
target=thumbv7em-none-eabihf
crate=examples/cortex-m

if ! command -v qemu-system-arm >/dev/null; then
    echo "cortex-m.sh: qemu-system-arm not found (Debian: apt-get install qemu-system-arm)" >&2
    exit 127
fi
if [ ! -d "$(rustc --print sysroot)/lib/rustlib/$target/lib" ]; then
    echo "cortex-m.sh: the $target target is not installed (rustup target add $target)" >&2
    exit 127
fi

# The crate's own target directory, whatever the caller's CARGO_TARGET_DIR;
# the link arguments come from its build.rs, so RUSTFLAGS is not needed
# (and a host one, a sanitizer's say, must not reach this build).
export CARGO_TARGET_DIR="$PWD/$crate/target"
unset RUSTFLAGS CARGO_ENCODED_RUSTFLAGS
if ! log=$(cd "$crate" && NANOLLAMA_PROMPT="$prompt" NANOLLAMA_N_GEN="$n_gen" \
    cargo build --quiet --release --target "$target" 2>&1); then
    echo "$log" >&2
    exit 1
fi
# The library's cdylib crate type has no meaning on this target: not news.
echo "$log" | grep -v -e "dropping unsupported crate type" -e "(lib) generated 1 warning" \
    -e '^$' >&2 || true
elf="$CARGO_TARGET_DIR/$target/release/nanollama-cortex-m"

if command -v size >/dev/null; then
    size -A "$elf" | awk '
        { s[$1] = $2 }
        END {
            flash = s[".vectors"] + s[".text"] + s[".rodata"] + s[".ARM.exidx"] + s[".data"]
            ram = s[".stack"] + s[".data"] + s[".bss"]
            printf "cortex-m.sh: flash (SSRAM1) %d bytes: .vectors %d, .text %d, .rodata %d, .ARM.exidx %d, .data %d\n",
                flash, s[".vectors"], s[".text"], s[".rodata"], s[".ARM.exidx"], s[".data"]
            printf "cortex-m.sh: model (PSRAM, read-only) %d bytes\n", s[".model"]
            printf "cortex-m.sh: RAM (SSRAM2/3) %d bytes: .stack %d, .data %d, .bss %d\n",
                ram, s[".stack"], s[".data"], s[".bss"]
        }' >&2
fi

start=$(date +%s%N)
status=0
timeout "${NANOLLAMA_QEMU_TIMEOUT:-120}" qemu-system-arm -M mps2-an386 -nographic \
    -monitor none -serial none -icount shift=0 \
    -semihosting-config enable=on,target=native -kernel "$elf" || status=$?
ms=$((($(date +%s%N) - start) / 1000000))
if [ "$status" = 124 ]; then
    echo "cortex-m.sh: QEMU timed out" >&2
fi
printf "cortex-m.sh: QEMU ran %d.%03d s, exit status %d\n" $((ms / 1000)) $((ms % 1000)) "$status" >&2
exit "$status"
