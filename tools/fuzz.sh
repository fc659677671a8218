#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 12: CI's smoke run, under a
# minute in all) from the committed seeds, in a scratch corpus so that seeds/
# stays as committed. Fails on the first crash, leak or timeout (libFuzzer's
# artifact is then in fuzz/artifacts/TARGET/).
# Run:  bash tools/fuzz.sh [SECONDS] [TARGET...]
# Long runs: cd fuzz && cargo +nightly fuzz run -O TARGET corpus/TARGET seeds/TARGET -- -max_total_time=1800
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${1:-12}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(gguf_model tokenizer sampler context chat_template grammar)
# CI runs this before the Miri step, which used to be the first to need nightly.
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --version 0.13.2
cargo +nightly fuzz build -O
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for t in "${targets[@]}"; do
    mkdir -p "$scratch/$t"
    log="$scratch/$t.log"
    if ! cargo +nightly fuzz run -O "$t" "$scratch/$t" "seeds/$t" -- \
        -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
        tail -n 40 "$log"
        echo "fuzz: $t FAILED"
        exit 1
    fi
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$')
    echo "fuzz: $t ok, $runs runs in ${secs}s"
done
