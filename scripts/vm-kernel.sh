#!/usr/bin/env bash
# Fetches the Debian cloud kernel for the measured VM (docs/vm.md), idempotently, and prints
#   line 1: the vmlinuz path
#   line 2: the modules dir (…/lib/modules/<version>)
#   line 3: the package version (e.g. linux-image-6.1.0-57-cloud-amd64=6.1.192-3)
# The concrete package is resolved from the linux-image-cloud-amd64 metapackage (its version drifts).
# Cache: $CONFIDANT_VM_CACHE, else <repo>/target/vm-cache.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${CONFIDANT_VM_CACHE:-$here/target/vm-cache}"
mkdir -p "$cache"
pkg="$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ && !found {print $2; found = 1}')"
if [ -z "$pkg" ]; then
  echo "vm-kernel: cannot resolve linux-image-cloud-amd64 (apt-get update?)" >&2
  exit 1
fi
kver="${pkg#linux-image-}"
dir="$cache/$pkg"
# Concurrent callers (tests run in parallel) wait for one download instead of racing on $dir.
exec 9>"$cache/.lock"
flock 9
if [ ! -f "$dir/.done" ]; then
  tmp="$(mktemp -d "$cache/.dl.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && apt-get download -qq "$pkg" >&2)
  deb="$(ls "$tmp"/*.deb)"
  mkdir -p "$tmp/x"
  dpkg-deb -x "$deb" "$tmp/x"
  dpkg-deb -f "$deb" Version > "$tmp/x/.version"
  rm -rf "$dir"
  mv "$tmp/x" "$dir"
  touch "$dir/.done"
  rm -rf "$tmp"
  trap - EXIT
fi
flock -u 9
vmlinuz="$dir/boot/vmlinuz-$kver"
mods="$dir/lib/modules/$kver"
[ -f "$vmlinuz" ] || { echo "vm-kernel: $vmlinuz missing" >&2; exit 1; }
[ -d "$mods" ] || mods="$dir/usr/lib/modules/$kver"
echo "$vmlinuz"
echo "$mods"
echo "$pkg=$(cat "$dir/.version")"
