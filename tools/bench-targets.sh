#!/usr/bin/env bash
# Generation speed of the shipped model on one thread in the three hosts the
# README's table compares: the native CLI (the CPU's fastest kernels), the
# wasm module in Node, and the web page in headless Chromium. Same prompt,
# same token count, greedy; RUNS runs each (default 3), the median printed
# with every run's figure.
#   bash tools/bench-targets.sh [PROMPT]      (N_PREDICT: tokens, default 200)
set -euo pipefail
cd "$(dirname "$0")/.."
prompt=${1:-"And it came to pass"}
n=${N_PREDICT:-200}
runs=${RUNS:-3}
cargo build --quiet --release --example nanollama
bash tools/build-wasm.sh examples/web/nanollama.wasm 2>/dev/null

median() { # figures on stdin, one a line
    sort -g | awk '{v[NR] = $1} END {printf "%s", v[int((NR + 1) / 2)]}'
}
report() { # label, figures
    printf '%-28s median %8s tok/s   runs: %s\n' "$1" "$(tr ' ' '\n' <<<"$2" | grep . | median)" "$2"
}

native=""
for _ in $(seq "$runs"); do
    v=$(target/release/examples/nanollama generate --threads 1 --temp 0 -n "$n" --prompt "$prompt" 2>&1 >/dev/null |
        sed -n 's/.*generation: [0-9]* tokens, \([0-9.]*\) tok\/s.*/\1/p')
    native="$native $v"
done
report "native (one thread)" "$native"

node=""
for _ in $(seq "$runs"); do
    v=$(node tools/wasm-generate.mjs examples/web/nanollama.wasm models/kjv-llama.gguf "$prompt" "$n" 2>&1 >/dev/null |
        sed -n 's/.*generation: [0-9]* tokens, \([0-9.]*\) tok\/s.*/\1/p')
    node="$node $v"
done
report "wasm in Node" "$node"

# One browser, RUNS + 1 clicks of Generate; the first (the engine warming
# up) is left out.
page=$(WEB_RUNS=$((runs + 1)) N_PREDICT=$n bash tools/web-test.sh "$prompt" 2>&1 >/dev/null |
    sed -n 's/^page: .*generation: [0-9]* tokens, \([0-9.]*\) tokens\/s.*/\1/p' | tail -n +2 | tr '\n' ' ')
report "wasm in Chromium (the page)" "$page"
