#!/usr/bin/env bash
# Runs a program from a root file system gathered by scripts/deploy-rootfs.sh the way its
# container would run (deploy/compose.yaml), without Docker: in a private mount namespace, the
# rootfs mounted read-only, /proc and a minimal /dev, the configuration and the secrets mounted
# read-only at /etc/confidant and /run/secrets, an optional state directory (read-write) and
# data directory (read-only) at /var/lib/confidant, then chroot and the unprivileged user
# 10001:10001. The host's network is shared (the services listen on loopback in tests). Needs
# root (mount namespaces, chroot); uses `sudo -n` otherwise.
#
# Usage: scripts/rootfs-run.sh ROOTFS --config DIR --secrets DIR [--state DIR | --data DIR]
#                              -- PROGRAM [ARG...]
set -euo pipefail

usage() { sed -n '2,12p' "$0" >&2; exit 2; }

[ $# -ge 1 ] || usage
root="$(cd "$1" && pwd)"; shift
config="" secrets="" state="" data=""
while [ $# -gt 0 ]; do
  case "$1" in
    --config) config="$(cd "$2" && pwd)"; shift 2 ;;
    --secrets) secrets="$(cd "$2" && pwd)"; shift 2 ;;
    --state) state="$(cd "$2" && pwd)"; shift 2 ;;
    --data) data="$(cd "$2" && pwd)"; shift 2 ;;
    --) shift; break ;;
    *) usage ;;
  esac
done
[ -n "$config" ] && [ -n "$secrets" ] && [ $# -ge 1 ] || usage

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo -n"; fi

# Everything below runs in its own mount namespace: the mounts vanish with the program.
exec $SUDO unshare --mount --propagation private -- /bin/sh -eu -c '
  root=$1 config=$2 secrets=$3 state=$4 data=$5; shift 5
  ro_bind() { mount --bind "$1" "$2"; mount -o remount,bind,ro "$2"; }
  ro_bind "$root" "$root"                       # read-only root file system
  mount -t proc -o nosuid,nodev,noexec proc "$root/proc"
  mount -t tmpfs -o nosuid,noexec,mode=0755,size=64k tmpfs "$root/dev"
  for d in null zero urandom random; do
    : >"$root/dev/$d"
    mount --bind "/dev/$d" "$root/dev/$d"
  done
  mount -t tmpfs -o nosuid,nodev,noexec,mode=1777,size=16m tmpfs "$root/tmp"
  ro_bind "$config" "$root/etc/confidant"
  ro_bind "$secrets" "$root/run/secrets"
  if [ -n "$state" ]; then mount --bind "$state" "$root/var/lib/confidant"; fi
  if [ -n "$data" ]; then ro_bind "$data" "$root/var/lib/confidant"; fi
  exec chroot --userspec=10001:10001 "$root" "$@"
' rootfs-run "$root" "$config" "$secrets" "$state" "$data" "$@"
