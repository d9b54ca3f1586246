#!/usr/bin/env bash
# Benchmarks: what attestation costs, each figure against a baseline measured in the same run.
#
# Usage: scripts/bench.sh [--quick] [--json] [--only LIST]
#   --quick      shorter measurement windows
#   --json       print one JSON object {figure: {value, unit, baseline, ratio}} on stdout
#                (the human-readable table always goes to stderr)
#   --only LIST  comma-separated figures: verify,unseal,attest,handshake,generate,coldstart
#
# Builds `confidant-bench` in release mode (--locked), fetches/verifies the model bundle (cached by
# digest, see docs/model.md), then runs every figure. See BENCHMARKS.md for method and results.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

usage() {
    echo "usage: scripts/bench.sh [--quick] [--json] [--only verify,unseal,attest,handshake,generate,coldstart]" >&2
    exit 2
}
args=()
while (($#)); do
    case "$1" in
        --quick | --json) args+=("$1") ;;
        --only)
            [[ $# -ge 2 && "$2" =~ ^[a-z,]+$ ]] || usage
            args+=("$1" "$2")
            shift
            ;;
        *) usage ;;
    esac
    shift
done

echo "bench: building (release, --locked)" >&2
cargo build --release --locked -p confidant-bench -p confidant-verifier -p confidant-enclave -p confidant-client --bins >&2
# The end-to-end figures spawn these release binaries (confidant_e2e::Stack).
export CONFIDANT_BIN_DIR="$repo_root/target/release"

echo "bench: model bundle" >&2
bundle="$(CONFIDANT_BIN="$repo_root/target/release/confidant" bash scripts/fetch-model.sh 2>/dev/null | tail -1)"
if [[ ! -f "$bundle/model.gguf" ]]; then
    echo "bench: no model bundle (scripts/fetch-model.sh failed)" >&2
    exit 1
fi

# Figure 5's llama.cpp baseline (scripts/llama-cpp.sh): a full run installs it once (a build of
# several minutes); --quick only uses an existing install. Without it the figure says so.
llama_check=()
[[ " ${args[*]:-} " == *" --quick "* ]] && llama_check=(--check)
if llama_python="$(bash scripts/llama-cpp.sh "${llama_check[@]}" | tail -1)" && [[ -x "$llama_python" ]]; then
    export CONFIDANT_LLAMA_PYTHON="$llama_python"
else
    echo "bench: llama.cpp baseline unavailable (scripts/llama-cpp.sh); figure 5 reports it as missing" >&2
fi

echo "bench: machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
exec target/release/confidant-bench --bundle "$bundle" "${args[@]}"
