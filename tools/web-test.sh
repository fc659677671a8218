#!/usr/bin/env bash
# The web page (examples/web/) in headless Chromium: builds the wasm module
# (tools/build-wasm.sh), serves the repository on a free localhost port
# (python3 -m http.server; the page loads models/kjv-llama.gguf), has
# tools/web-driver.mjs type PROMPT, click Generate and read the text back,
# and prints that text (the speed line on stderr).
#   bash tools/web-test.sh [--check] [PROMPT]
# --check: also build the CLI (cargo build --release --example nanollama)
# and fail unless the page's text is the CLI's greedy text for the same
# prompt and token count. N_PREDICT: tokens to generate (default 64).
# CHROMIUM: the browser (default /usr/bin/chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
check=0
if [ "${1:-}" = "--check" ]; then check=1; shift; fi
prompt=${1:-"And it came to pass"}
n=${N_PREDICT:-64}
chromium=${CHROMIUM:-/usr/bin/chromium}
command -v node >/dev/null || { echo "web-test: node is missing" >&2; exit 1; }
[ -x "$chromium" ] || { echo "web-test: no browser at $chromium (Debian: apt-get install chromium)" >&2; exit 1; }

bash tools/build-wasm.sh examples/web/nanollama.wasm

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log=$(mktemp)
out=$(mktemp)
python3 -m http.server --bind 127.0.0.1 --directory . "$port" >"$log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; rm -f "$log" "$out"' EXIT
for _ in $(seq 100); do
    python3 -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$port/examples/web/index.html')" 2>/dev/null && break
    sleep 0.1
done

node tools/web-driver.mjs "http://127.0.0.1:$port/examples/web/index.html" "$prompt" "$n" >"$out"
cat "$out"

if [ "$check" = 1 ]; then
    cargo build --quiet --release --example nanollama
    native=$(mktemp)
    target/release/examples/nanollama generate --temp 0 -n "$n" --prompt "$prompt" >"$native" 2>/dev/null
    if cmp -s "$native" "$out"; then
        echo "web-test: the page's text is the native greedy text ($n tokens)" >&2
        rm -f "$native"
    else
        echo "web-test: the page's text differs from the native greedy text:" >&2
        diff "$native" "$out" >&2 || true
        rm -f "$native"
        exit 1
    fi
fi
