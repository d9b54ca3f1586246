#!/usr/bin/env bash
# Installs the Python peer tools the tests compare our outputs with, pinned by version and hash,
# into a cached virtual environment:
#   - sev-snp-measure 0.0.13 (virtee; computes SEV-SNP launch digests from an OVMF image), the peer
#     of `confidant measure snp` (docs/snp-measure.md).
#
# Usage: scripts/py-tools.sh [CACHE_DIR]
#   CACHE_DIR defaults to $CONFIDANT_TOOLS_CACHE, else $XDG_CACHE_HOME/confidant, else
#   ~/.cache/confidant (the model cache of scripts/fetch-model.sh).
#
# Idempotent: the venv is keyed by the pinned requirements and reused once complete; reruns only
# check it, with no network. The last stdout line is the venv's python interpreter (run the tool as
# `PYTHON -m sevsnpmeasure.cli ...` or through PYTHON's `sev-snp-measure` script beside it).
# Progress goes to stderr.
#
# Why --no-deps: sev-snp-measure declares `cryptography` for its ID-block signing command only; the
# launch-digest code it is used for here (guest, gctx, ovmf, vmsa, sev_hashes) imports nothing but
# the standard library, and leaving the native wheel out keeps the pin independent of the Python
# version and platform.
set -euo pipefail

REQ_LINE='sev-snp-measure==0.0.13 --hash=sha256:feda1aebe69dcbf38e9c636ed1d082bb7dc741fc6969f197d39faddb72b2762d'

log() { printf 'py-tools: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

cache="${1:-${CONFIDANT_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/confidant}}"
mkdir -p "$cache"
cache="$(cd "$cache" && pwd)"

key="$(printf '%s\n' "$REQ_LINE" | sha256sum | cut -c1-16)"
venv="$cache/py-tools-$key"

# One installer at a time per cache (parallel test processes call this script).
exec 9>"$cache/.py-tools.lock"
flock 9

if [[ -f "$venv/.complete" ]] && "$venv/bin/python" -c 'import sevsnpmeasure.guest' 2>/dev/null; then
    log "cached: $venv"
else
    log "creating $venv (sev-snp-measure from PyPI, hash-pinned)"
    # A venv records its own path, so it is built in place (not renamed); .complete marks success.
    rm -rf "$venv"
    python3 -m venv "$venv" || die "python3 -m venv failed (scripts/setup.sh installs python3-venv)"
    printf '%s\n' "$REQ_LINE" >"$venv/requirements.txt"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
        --only-binary=:all: --require-hashes -r "$venv/requirements.txt" >&2 \
        || die "pip install of the pinned sev-snp-measure failed"
    "$venv/bin/python" -c 'import sevsnpmeasure.guest' || die "sevsnpmeasure does not import"
    touch "$venv/.complete"
    log "installed"
fi

echo "$venv/bin/python"
