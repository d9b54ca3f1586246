#!/usr/bin/env bash
# Lays out what deploy/compose.yaml mounts into the verifier and enclave containers (simulated
# TEE): configuration (read-only, /etc/confidant), secrets (read-only files, /run/secrets), the
# verifier's state (read-write, /var/lib/confidant) and the enclave's data (the sealed model,
# read-only, /var/lib/confidant). The secrets come from a fresh `confidant-verifier init`; the
# configuration files are init's, with container paths. The images themselves hold none of it.
#
# Usage: scripts/deploy-state.sh OUT --dev-pki DIR --model-id ID [--policy FILE]
#          [--verifier-listen ADDR] [--admin-listen ADDR] [--enclave-listen ADDR]
#          [--verifier-url URL] [--verifier-bin PATH]
# Writes:
#   OUT/verifier/{config,secrets,state}   OUT/enclave/{config,secrets,data}
#   OUT/tokens/{admin,auditor,client,metrics}.jwt   (for you, not mounted)
#   OUT/issuer/jwt-issuer.p8                      (mints tokens; not mounted)
# Defaults: verifier 0.0.0.0:8443 (admin API 0.0.0.0:8444, published on the host's loopback
# only by compose.yaml), enclave 0.0.0.0:8443, verifier URL https://verifier:8443 (the compose
# service name). The enclave asks for a certificate naming `enclave`, `localhost` and 127.0.0.1: a
# --policy FILE must list them in the model's `tls_names`. Put the sealed model at
# OUT/enclave/data/model.sealed. Run as root, the secrets
# and state are handed to uid 10001 (the images' user); otherwise chown them yourself.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[deploy-state] %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

[ $# -ge 1 ] || die "usage: scripts/deploy-state.sh OUT --dev-pki DIR --model-id ID [...]"
out="$1"; shift
dev_pki="" model_id="" policy=""
verifier_listen="0.0.0.0:8443" admin_listen="0.0.0.0:8444" enclave_listen="0.0.0.0:8443"
verifier_url="https://verifier:8443" verifier_bin="${CONFIDANT_VERIFIER_BIN:-}"
while [ $# -gt 0 ]; do
  case "$1" in
    --dev-pki) dev_pki="$2"; shift 2 ;;
    --model-id) model_id="$2"; shift 2 ;;
    --policy) policy="$2"; shift 2 ;;
    --verifier-listen) verifier_listen="$2"; shift 2 ;;
    --admin-listen) admin_listen="$2"; shift 2 ;;
    --enclave-listen) enclave_listen="$2"; shift 2 ;;
    --verifier-url) verifier_url="$2"; shift 2 ;;
    --verifier-bin) verifier_bin="$2"; shift 2 ;;
    *) die "unknown argument $1" ;;
  esac
done
[ -n "$dev_pki" ] && [ -d "$dev_pki" ] || die "--dev-pki DIR (scripts/dev-pki.sh DIR makes one)"
[ -n "$model_id" ] || die "--model-id ID"
if [ -z "$verifier_bin" ]; then
  verifier_bin="$(command -v confidant-verifier || echo target/release/confidant-verifier)"
fi
[ -x "$verifier_bin" ] || die "no confidant-verifier at $verifier_bin (--verifier-bin)"

rm -rf "$out"
mkdir -p "$out"
init="$out/.init"
"$verifier_bin" init "$init" --dev-pki "$dev_pki" --listen "$verifier_listen" \
  --admin-listen "$admin_listen" --tls-name verifier --tls-name enclave >/dev/null

v="$out/verifier" e="$out/enclave"
mkdir -p "$v/config/dev-pki" "$v/secrets" "$v/state" "$e/config/dev-pki" "$e/secrets" "$e/data" \
         "$out/tokens" "$out/issuer"

# --- verifier -------------------------------------------------------------------------------
cp "$init/tls-cert.pem" "$init/ca.pem" "$v/config/"
cp "$dev_pki/ark.der" "$dev_pki/ask.der" "$v/config/dev-pki/"
for s in tls-key.pem ca-key.p8 result-key.p8 kek checkpoint-key.p8 jwt-verify.jwk; do
  cp "$init/secrets/$s" "$v/secrets/$s"
done
cp "${policy:-$init/policy.toml}" "$v/state/policy.toml"
# init's configuration with container paths; clients read results as audience confidant-client.
sed -e 's|^tls_cert = .*|tls_cert = "/etc/confidant/tls-cert.pem"|' \
    -e 's|{ file = "secrets/\([^"]*\)" }|{ file = "/run/secrets/\1" }|' \
    -e 's|^store = .*|store = "/var/lib/confidant/keys.json"|' \
    -e 's|^path = .*|path = "/var/lib/confidant/policy.toml"|' \
    -e 's|^log = .*|log = "/var/lib/confidant/audit.log"|' \
    -e 's|^dev_ark = .*|dev_ark = "/etc/confidant/dev-pki/ark.der"|' \
    -e 's|^dev_ask = .*|dev_ask = "/etc/confidant/dev-pki/ask.der"|' \
    -e 's|^\[results\]$|[results]\naudience = "confidant-client"|' \
    "$init/verifier.toml" >"$v/config/verifier.toml"
if grep -q '"secrets/' "$v/config/verifier.toml"; then
  die "a secret in verifier.toml is not under /run/secrets"
fi

# --- enclave --------------------------------------------------------------------------------
cp "$init/tls-cert.pem" "$e/config/verifier-tls-cert.pem"
# The simulated TEE's development PKI, its VCEK signing key included (development only).
cp "$dev_pki/ark.der" "$dev_pki/ask.der" "$dev_pki/vcek.der" "$dev_pki/vcek.key.pk8" \
   "$e/config/dev-pki/"
cp "$init/tokens/enclave.jwt" "$e/secrets/enclave.jwt"
cp "$init/secrets/jwt-verify.jwk" "$e/secrets/jwt-verify.jwk"
cat >"$e/config/enclave.toml" <<EOF
# confidant-enclave in a container (simulated SEV-SNP), written by scripts/deploy-state.sh.
model_id = "$model_id"
sealed_model = "/var/lib/confidant/model.sealed"

[verifier]
url = "$verifier_url"
tls_ca = "/etc/confidant/verifier-tls-cert.pem"
token = { file = "/run/secrets/enclave.jwt" }
result_audience = "confidant-client"

[tee]
kind = "sim"
dev_pki = "/etc/confidant/dev-pki"

[server]
listen = "$enclave_listen"
dns_names = ["enclave", "localhost"]
ip_addresses = ["127.0.0.1"]

[auth]
# The development tokens \`confidant-verifier init\` minted (tokens/client.jwt has role client).
issuer = "confidant-dev-issuer"
audience = "confidant-enclave"
verification_keys = { file = "/run/secrets/jwt-verify.jwk" }
EOF

# --- for the operator -----------------------------------------------------------------------
for r in admin auditor client metrics; do cp "$init/tokens/$r.jwt" "$out/tokens/"; done
cp "$init/secrets/jwt-issuer.p8" "$out/issuer/"
rm -rf "$init"

# Configuration readable, secrets and state the images' user's alone.
find "$v/config" "$e/config" -type d -exec chmod 0755 {} +
find "$v/config" "$e/config" -type f -exec chmod 0644 {} +
chmod 0700 "$v/secrets" "$e/secrets" "$v/state" "$out/tokens" "$out/issuer"
chmod 0600 "$v"/secrets/* "$e"/secrets/* "$v/state/policy.toml" "$e/config/dev-pki/vcek.key.pk8" \
           "$out"/tokens/* "$out/issuer/jwt-issuer.p8"
chmod 0755 "$e/data"
if [ "$(id -u)" -eq 0 ]; then
  chown -R 10001:10001 "$v/secrets" "$e/secrets" "$v/state" "$e/config/dev-pki/vcek.key.pk8"
else
  say "not root: chown -R 10001:10001 $v/secrets $e/secrets $v/state $e/config/dev-pki/vcek.key.pk8"
fi
say "ok: $out (put the sealed model at $e/data/model.sealed)"
