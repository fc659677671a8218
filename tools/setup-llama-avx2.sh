#!/usr/bin/env bash
# Builds llama-cpp-python 0.3.36 without AVX-512 into its own venv,
# .venv-llama-avx2/ (ignored by git), for `tools/bench-vs-llama.cpp --avx2`:
# the AVX2 rows then compare nanollama capped at AVX2 with a llama.cpp that
# has only AVX2 too. About 15-30 minutes on 2 cores; nothing happens if the
# venv already imports llama_cpp.
# Run: bash tools/setup-llama-avx2.sh
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv-llama-avx2
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import llama_cpp" 2>/dev/null; then
    echo "setup-llama-avx2: $venv already has llama_cpp"
    exit 0
fi
python3 -m venv "$venv"
CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
 -DGGML_AVX512=OFF -DGGML_AVX512_VBMI=OFF -DGGML_AVX512_VNNI=OFF -DGGML_AVX512_BF16=OFF \
 -DGGML_AVX_VNNI=OFF -DGGML_BMI2=ON -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF" \
    "$venv/bin/python" -m pip install --quiet --no-cache-dir llama-cpp-python==0.3.36 gguf numpy
"$venv/bin/python" -c "import llama_cpp; print('setup-llama-avx2:', llama_cpp.__version__)"
