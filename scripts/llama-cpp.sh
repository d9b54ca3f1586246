#!/usr/bin/env bash
# Installs the llama.cpp baseline of figure 5: `llama-cpp-python` (pinned) from PyPI into a venv in
# the model cache, building llama.cpp from source for this CPU (GGML_NATIVE, no BLAS, no GPU).
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
dir="$cache/llama-cpp-python-$VERSION"
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
log "building llama-cpp-python==$VERSION from source (native CPU, no BLAS/GPU; several minutes)"
CMAKE_ARGS="-DGGML_NATIVE=ON -DGGML_BLAS=OFF -DGGML_CUDA=OFF -DGGML_VULKAN=OFF -DGGML_METAL=OFF -DGGML_OPENMP=ON -DLLAMA_CURL=OFF" \
    FORCE_CMAKE=1 \
    CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
    "$py" -m pip install --quiet --disable-pip-version-check --no-cache-dir --no-binary=llama-cpp-python \
    "llama-cpp-python==$VERSION" >&2 || die "pip install llama-cpp-python==$VERSION failed"
"$py" -c 'import llama_cpp' || die "llama_cpp does not import"
touch "$dir/.complete"
log "installed: llama-cpp-python $VERSION"
echo "$py"
