#!/usr/bin/env bash
# Supply-chain checks with cargo-deny (advisories, licences, bans, sources; rules and every
# exception's reason in deny.toml), offline.
#
# Installs cargo-deny (pinned, `cargo install --locked`) into a cache once, and reads the RustSec
# advisory database from a snapshot instead of fetching it: $CONFIDANT_ADVISORY_DB, else
# ../shared/advisory-db beside the repository (the snapshot's README says which commit). cargo-deny
# wants its database as a git repository under a directory name derived from the database URL, so
# the snapshot is copied there and committed once (fixed dates: reproducible); the copy is redone
# only when the snapshot changes.
#
# Usage: scripts/deny.sh [cargo-deny check arguments, e.g. `advisories`]
# Cache: $CONFIDANT_TOOL_CACHE, else $XDG_CACHE_HOME/confidant, else ~/.cache/confidant.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[deny] %s\n' "$*" >&2; }

CARGO_DENY_VERSION=0.20.2
# The directory name cargo-deny 0.20 derives from the default database URL
# (https://github.com/rustsec/advisory-db).
DB_DIR_NAME=advisory-db-3157b0e258782691

cache="${CONFIDANT_TOOL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/confidant}"
mkdir -p "$cache"
cache="$(cd "$cache" && pwd)"
# One installer / database copy at a time per cache.
exec 8>"$cache/.deny.lock"
flock 8

# --- cargo-deny, pinned ---------------------------------------------------------------------------
root="$cache/tools/cargo-deny-$CARGO_DENY_VERSION"
deny="$root/bin/cargo-deny"
if [ -x "$deny" ] && [ "$("$deny" --version 2>/dev/null)" = "cargo-deny $CARGO_DENY_VERSION" ]; then
  say "cargo-deny $CARGO_DENY_VERSION cached"
else
  say "installing cargo-deny $CARGO_DENY_VERSION (cargo install --locked; a few minutes, once)"
  cargo install --quiet --locked --force --root "$root" cargo-deny --version "$CARGO_DENY_VERSION"
fi

# --- advisory database from the snapshot ----------------------------------------------------------
snapshot="${CONFIDANT_ADVISORY_DB:-../shared/advisory-db}"
if [ ! -d "$snapshot/crates" ]; then
  say "no advisory database snapshot at $snapshot (set CONFIDANT_ADVISORY_DB)"
  exit 1
fi
snapshot="$(cd "$snapshot" && pwd)"
stamp="$( (cd "$snapshot" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) | sha256sum | cut -c1-16)"
dbs="$cache/advisory-dbs-$stamp"
if [ -f "$dbs/$DB_DIR_NAME/.confidant-ready" ]; then
  say "advisory database snapshot $stamp ready"
else
  say "preparing the advisory database snapshot $stamp"
  rm -rf "$dbs"
  tmp="$(mktemp -d "$cache/.advisory-db.XXXXXX")"
  cp -R "$snapshot/." "$tmp/"
  (
    cd "$tmp"
    export GIT_AUTHOR_NAME=snapshot GIT_AUTHOR_EMAIL=snapshot@localhost
    export GIT_COMMITTER_NAME=snapshot GIT_COMMITTER_EMAIL=snapshot@localhost
    # The snapshot's date (README): cargo-deny reads the database's date from HEAD.
    export GIT_AUTHOR_DATE="2026-08-21T00:00:00Z" GIT_COMMITTER_DATE="2026-08-21T00:00:00Z"
    git init -q -b main .
    git add -A
    git -c commit.gpgsign=false commit -q -m "RustSec advisory database snapshot"
  )
  touch "$tmp/.confidant-ready"
  mkdir -p "$dbs"
  mv "$tmp" "$dbs/$DB_DIR_NAME"
  # Older copies of other snapshots are no longer needed.
  for old in "$cache"/advisory-dbs-*; do
    [ "$old" = "$dbs" ] || rm -rf "$old"
  done
fi
flock -u 8

# deny.toml reads the database directory from this variable (`[advisories] db-path`).
export CONFIDANT_DENY_DB_PATH="$dbs"
say "cargo deny --offline check $*"
"$deny" --offline --locked check --hide-inclusion-graph "$@"

# Positive control: without deny.toml's exceptions the snapshot must report the advisories they
# excuse, so an empty or unreadable database cannot pass the check above unnoticed.
if [ $# -eq 0 ]; then
  control="$(mktemp -d)"
  trap 'rm -rf "$control"' EXIT
  cat >"$control/deny.toml" <<'TOML'
[graph]
targets = ["x86_64-unknown-linux-gnu"]
[advisories]
db-path = "${CONFIDANT_DENY_DB_PATH}"
unmaintained = "all"
TOML
  if "$deny" --offline --locked --format json --config "$control/deny.toml" check \
      --hide-inclusion-graph advisories >"$control/out" 2>&1; then
    say "positive control failed: with no exceptions the advisory check passed (database empty?)"
    exit 1
  fi
  for id in $(sed -n 's/.*id = "\(RUSTSEC-[0-9-]*\)".*/\1/p' deny.toml); do
    if ! grep -q "$id" "$control/out"; then
      say "positive control failed: $id (excused in deny.toml) is not reported by the snapshot"
      exit 1
    fi
  done
  say "positive control: the snapshot reports every advisory deny.toml excuses"
fi
