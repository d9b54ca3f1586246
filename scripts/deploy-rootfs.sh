#!/usr/bin/env bash
# Gathers the root file systems of the verifier and enclave images (deploy/Dockerfile.*, built
# FROM scratch): each program's binary, the shared libraries it loads (ldd; for the enclave also
# the TPM TCTI modules libtss2 opens at run time), the dynamic loader, /etc/passwd and /etc/group
# with the unprivileged user the images run as (uid/gid 10001), nsswitch.conf, and the empty
# mount points (/etc/confidant, /run/secrets, /var/lib/confidant, /proc, /dev, /tmp). Nothing
# else: no shell, no package manager, no configuration and no secrets (mounted at run time, see
# deploy/compose.yaml).
#
# Usage: scripts/deploy-rootfs.sh [--bin-dir DIR] [OUT]
#   --bin-dir DIR  take confidant-verifier and confidant-enclave from DIR (default: build them
#                  with `cargo build --release --locked` and use target/release)
#   OUT            output directory (default: deploy/build); writes OUT/verifier/rootfs,
#                  OUT/enclave/rootfs, and beside each a MANIFEST (sha256 of every file) and a
#                  copy of its Dockerfile (deploy/Dockerfile.verifier, deploy/Dockerfile.enclave).
# Re-running replaces the output. Then: `docker build deploy/build/verifier` (or
# `docker compose -f deploy/compose.yaml build`) where a daemon runs;
# `scripts/rootfs-run.sh` runs a gathered rootfs without one.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[deploy-rootfs] %s\n' "$*" >&2; }

bin_dir=""
out="deploy/build"
while [ $# -gt 0 ]; do
  case "$1" in
    --bin-dir) bin_dir="$2"; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) out="$1"; shift ;;
  esac
done

if [ -z "$bin_dir" ]; then
  say "building release binaries"
  cargo build --release --locked -p confidant-verifier -p confidant-enclave >&2
  bin_dir="target/release"
fi

# The user the images run as (not root; the same number in compose.yaml and the Dockerfiles).
APP_UID=10001

copy_file() { # SRC ROOTFS: copies SRC (symlinks resolved) to the same path inside ROOTFS
  local src="$1" root="$2"
  mkdir -p "$root$(dirname "$src")"
  cp -L "$src" "$root$src"
}

copy_with_libs() { # FILE ROOTFS: FILE and every shared library it loads, at their own paths
  local file="$1" root="$2" lib
  for lib in $(ldd "$file" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'); do
    copy_file "$lib" "$root"
  done
}

gather() { # NAME BINARY [EXTRA_LIB...]
  local name="$1" binary="$2"; shift 2
  local dir="$out/$name" root="$out/$name/rootfs"
  [ -x "$binary" ] || { say "no executable $binary"; exit 1; }
  rm -rf "$dir"
  mkdir -p "$root/usr/local/bin"
  cp "deploy/Dockerfile.$name" "$dir/Dockerfile"
  cp "$binary" "$root/usr/local/bin/"
  chmod 0755 "$root/usr/local/bin/$(basename "$binary")"
  copy_with_libs "$binary" "$root"
  local extra
  for extra in "$@"; do
    copy_file "$extra" "$root"
    copy_with_libs "$extra" "$root"
  done
  mkdir -p "$root/etc" "$root/etc/confidant" "$root/run/secrets" "$root/var/lib/confidant" \
           "$root/proc" "$root/dev" "$root/tmp"
  chmod 1777 "$root/tmp"
  cat >"$root/etc/passwd" <<EOF
confidant:x:$APP_UID:$APP_UID:Confidant service:/nonexistent:/nonexistent
nobody:x:65534:65534:nobody:/nonexistent:/nonexistent
EOF
  cat >"$root/etc/group" <<EOF
confidant:x:$APP_UID:
nogroup:x:65534:
EOF
  printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$root/etc/nsswitch.conf"
  # Files read-only for everyone but their owner (root at build time): the service user owns
  # nothing in the image.
  find "$root" -type d -not -path "$root/tmp" -exec chmod 0755 {} +
  find "$root" -type f -not -perm -u+x -exec chmod 0644 {} +
  (cd "$root" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) >"$dir/MANIFEST"
  say "$name: $(wc -l <"$dir/MANIFEST") files, $(du -sh "$root" | cut -f1) in $root"
}

# libtss2 loads its TPM transport (TCTI) by name at run time: device, swtpm, mssim.
tctis=()
for t in device swtpm mssim; do
  # awk reads all of ldconfig's output (an early `exit` would end ldconfig with SIGPIPE, which
  # pipefail turns into a silent failure of this script).
  p="$(ldconfig -p | awk -v n="libtss2-tcti-$t.so.0" '$1 == n && !found {print $NF; found = 1}')"
  [ -n "$p" ] || { say "libtss2-tcti-$t.so.0 not found (scripts/setup.sh installs libtss2)"; exit 1; }
  tctis+=("$p")
done

gather verifier "$bin_dir/confidant-verifier"
gather enclave "$bin_dir/confidant-enclave" "${tctis[@]}"
say "ok: $out/verifier/rootfs, $out/enclave/rootfs"
