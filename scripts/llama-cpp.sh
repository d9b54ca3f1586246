#!/usr/bin/env bash
# Installs the llama.cpp baseline of figure 5: `llama-cpp-python` (pinned) from PyPI into a venv in
# the model cache, building llama.cpp from source for this CPU (no BLAS, no GPU): every x86 SIMD
# extension llama.cpp has kernels for and /proc/cpuinfo lists (AVX2, FMA, F16C, AVX-VNNI,
# AVX-512 and its VNNI/VBMI/BF16 parts) is switched on, AMX is not. (`GGML_NATIVE` would enable
# AMX wherever the CPU advertises it, and on VMs that advertise AMX without granting the tile
# state llama.cpp dies with SIGILL on its first tile load.) The venv's name carries a hash of
# the build flags, so a machine with different extensions gets its own build.
#
# Usage: scripts/llama-cpp.sh [--check] [CACHE_DIR]
#   --check    install nothing: exit 0 and print the venv's python if it is installed, else exit 1
#   CACHE_DIR  as scripts/fetch-model.sh: $CONFIDANT_MODEL_CACHE, else $XDG_CACHE_HOME/confidant,
#              else ~/.cache/confidant.
#
# Idempotent: a completed install is marked and reused; the build (several minutes on 2 cores)
# runs only once per version. The last stdout line is the venv's python. Progress goes to stderr.
# Needs python3 (with venv) and a C/C++ compiler; cmake and ninja come from PyPI as build
# dependencies.
set -euo pipefail

VERSION="0.3.36"

# llama.cpp's build switches for the SIMD extensions this CPU has.
cpu_flags=" $(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | cut -d: -f2) "
has() { [[ "$cpu_flags" == *" $1 "* ]]; }
simd=(-DGGML_NATIVE=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF)
for pair in avx:AVX avx2:AVX2 fma:FMA f16c:F16C bmi2:BMI2 avx_vnni:AVX_VNNI avx512f:AVX512 \
    avx512vbmi:AVX512_VBMI avx512_vnni:AVX512_VNNI avx512_bf16:AVX512_BF16; do
    if has "${pair%%:*}"; then
        simd+=("-DGGML_${pair#*:}=ON")
    else
        simd+=("-DGGML_${pair#*:}=OFF")
    fi
done
cmake_args="${simd[*]} -DGGML_BLAS=OFF -DGGML_CUDA=OFF -DGGML_VULKAN=OFF -DGGML_METAL=OFF -DGGML_OPENMP=ON -DLLAMA_CURL=OFF"
flags_id="$(printf '%s' "$cmake_args" | sha256sum | cut -c1-8)"

log() { printf 'llama-cpp: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

check=0
if [[ "${1:-}" == "--check" ]]; then
    check=1
    shift
fi

cache="${1:-${CONFIDANT_MODEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/confidant}}"
mkdir -p "$cache"
cache="$(cd "$cache" && pwd)"
dir="$cache/llama-cpp-python-$VERSION-$flags_id"
py="$dir/venv/bin/python"

if [[ -f "$dir/.complete" ]] && "$py" -c 'import llama_cpp' 2>/dev/null; then
    log "installed: llama-cpp-python $VERSION"
    echo "$py"
    exit 0
fi
if [[ "$check" == 1 ]]; then
    log "not installed (run scripts/llama-cpp.sh)"
    exit 1
fi

command -v python3 >/dev/null 2>&1 || die "python3 is missing"
command -v cc >/dev/null 2>&1 || die "no C compiler (apt-get install build-essential)"
command -v c++ >/dev/null 2>&1 || die "no C++ compiler (apt-get install build-essential)"

# One install at a time per cache.
exec 9>"$cache/.llama-cpp.lock"
flock 9
if [[ -f "$dir/.complete" ]] && "$py" -c 'import llama_cpp' 2>/dev/null; then
    echo "$py"
    exit 0
fi

rm -rf "$dir"
mkdir -p "$dir"
log "creating venv in $dir"
python3 -m venv "$dir/venv" >&2 || die "python3 -m venv failed (apt-get install python3-venv)"
log "building llama-cpp-python==$VERSION from source (${simd[*]}; no BLAS/GPU; several minutes)"
CMAKE_ARGS="$cmake_args" \
    FORCE_CMAKE=1 \
    CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
    "$py" -m pip install --quiet --disable-pip-version-check --no-cache-dir --no-binary=llama-cpp-python \
    "llama-cpp-python==$VERSION" >&2 || die "pip install llama-cpp-python==$VERSION failed"
"$py" -c 'import llama_cpp' || die "llama_cpp does not import"
touch "$dir/.complete"
log "installed: llama-cpp-python $VERSION"
echo "$py"
