#!/usr/bin/env bash
# The enclave as a measured VM, end to end, on this machine (docs/vm.md):
#   verifier (host, loopback) ← guestfwd ← QEMU q35 + OVMF + swtpm vTPM ← hostfwd ← confidant chat
# 1. a verifier whose policy trusts only a private EK CA and the image's PCR 4 / PCR 9 (computed
#    by `confidant vm measure` before the VM ever boots);
# 2. `confidant vm build`: Debian's cloud kernel + a reproducible initramfs (enclave, config,
#    sealed model, busybox init);
# 3. swtpm manufactured with EK certificates from that CA; QEMU boots the image (TCG: slow);
# 4. the enclave attests from inside (event log + quote, credential activation), unseals, serves;
# 5. `confidant attest` and `confidant chat` over attested TLS from the host.
# Everything listens on 127.0.0.1 only; the guest's network is QEMU's restricted user-mode stack.
# CONFIDANT_DEMO_KEEP=1 keeps the state directory.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"

say() { printf '[vm-demo] %s\n' "$*" >&2; }

bash scripts/setup.sh
say "building the release binaries (the first build takes several minutes)"
cargo build --release --locked --bins -p confidant-verifier -p confidant-enclave -p confidant-client
bin="$root/target/release"
bundle="$(CONFIDANT_BIN="$bin/confidant" bash scripts/fetch-model.sh | tail -1)"

state="$(mktemp -d /tmp/confidant-vm-demo.XXXXXX)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "${CONFIDANT_DEMO_KEEP:-}" = 1 ]; then say "state kept in $state"; else rm -rf "$state"; fi
}
trap cleanup EXIT INT TERM

model_id="smollm2-135m-instruct"
memory_mib=2048
append="console=ttyS0 quiet"
guest_verifier="10.0.2.100"

say "verifier state, sealed model"
"$bin/confidant-verifier" init "$state/verifier" --listen 127.0.0.1:0 --tls-name "$guest_verifier" >/dev/null
seal_json="$("$bin/confidant" model seal --in "$bundle" --out "$state/model.sealed" --key-id vm-demo-key --key-out "$state/model.key")"
digest="$(printf '%s' "$seal_json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["model_digest"])')"

say "swtpm with EK certificates from a CA private to this run"
mkdir -p "$state/tpm" "$state/ca"
cat > "$state/swtpm-localca.conf" <<EOF
statedir = $state/ca
signingkey = $state/ca/signkey.pem
issuercert = $state/ca/issuercert.pem
certserial = $state/ca/certserial
EOF
cat > "$state/swtpm-localca.options" <<EOF
--platform-manufacturer Confidant
--platform-version 1
--platform-model vm-demo
EOF
cat > "$state/swtpm_setup.conf" <<EOF
create_certs_tool = /usr/bin/swtpm_localca
create_certs_tool_config = $state/swtpm-localca.conf
create_certs_tool_options = $state/swtpm-localca.options
EOF
swtpm_setup --tpm2 --tpmstate "$state/tpm" --create-ek-cert --create-platform-cert \
  --overwrite --config "$state/swtpm_setup.conf" >"$state/swtpm_setup.log" 2>&1 \
  || { cat "$state/swtpm_setup.log" >&2; exit 1; }
ek_cas="$(python3 - "$state/ca" <<'EOF'
import json, pathlib, sys
d = pathlib.Path(sys.argv[1])
pems = [p.read_text() for p in sorted(d.glob("*.pem")) if "CERTIFICATE" in p.read_text()]
print(", ".join(json.dumps(p) for p in pems))
EOF
)"

say "image: confidant vm build"
cat > "$state/guest-enclave.toml" <<EOF
model_id = "$model_id"
sealed_model = "/var/lib/confidant/model.sealed"

[verifier]
url = "https://$guest_verifier:443"
tls_ca = "/etc/confidant/verifier-tls.pem"
token = { file = "/etc/confidant/enclave.jwt" }
result_audience = "confidant-client"
timeout_secs = 60

[tee]
kind = "tpm"
tcti = "device:/dev/tpmrm0"
pcrs = [4, 9]
ak_dir = "/tmp/confidant-ak"
ak_trust = "ek"
event_log = "/sys/kernel/security/tpm0/binary_bios_measurements"

[server]
listen = "0.0.0.0:8443"
dns_names = ["localhost"]
ip_addresses = ["127.0.0.1"]

[auth]
issuer = "confidant-dev-issuer"
audience = "confidant-enclave"
verification_keys = { file = "/etc/confidant/jwt-verify.jwk" }

[boot]
retry_initial_ms = 1000
retry_max_ms = 4000
EOF
strip -o "$state/confidant-enclave" "$bin/confidant-enclave"
"$bin/confidant" vm build --out "$state/image" --enclave "$state/confidant-enclave" \
  --config "$state/guest-enclave.toml" --sealed-model "$state/model.sealed" \
  --include "$state/verifier/tls-cert.pem=/etc/confidant/verifier-tls.pem" \
  --include "$state/verifier/tokens/enclave.jwt=/etc/confidant/enclave.jwt" \
  --include "$state/verifier/secrets/jwt-verify.jwk=/etc/confidant/jwt-verify.jwk" \
  --append "$append" --memory-mib "$memory_mib" >/dev/null
"$bin/confidant" vm measure "$state/image"

say "policy: the EK CA, the model, and the image's reference values (before boot)"
fragment="$("$bin/confidant" vm measure "$state/image" --policy --model-id "$model_id")"
pcr_json="$("$bin/confidant" vm measure "$state/image" --json)"
measurement="$(printf '%s' "$pcr_json" | python3 -c '
import hashlib, json, sys
m = json.load(sys.stdin)
h = hashlib.sha256()
for i in (4, 9):
    h.update(bytes([i]) + bytes.fromhex(m["pcr%d" % i]))
print(h.hexdigest())')"
cat > "$state/verifier/policy.toml" <<EOF
id = "vm-demo"
version = 1
revoked_measurements = []

[trust]
amd_products = ["milan", "genoa", "turin"]
tpm_aks_spki_sha256 = []
tpm_ek_ca_certs = [$ek_cas]

[models."$model_id"]
digest = "$digest"
snp_measurements = []

$fragment
EOF

say "verifier"
"$bin/confidant-verifier" serve --config "$state/verifier/verifier.toml" --log-format json \
  >"$state/verifier.log" 2>&1 &
pids+=($!)
vaddr=""
for _ in $(seq 1 100); do
  vaddr="$(grep -o '"message":"confidant-verifier listening","addr":"[^"]*"' "$state/verifier.log" | sed 's/.*"addr":"//; s/"$//' || true)"
  [ -n "$vaddr" ] && break
  sleep 0.1
done
[ -n "$vaddr" ] || { tail "$state/verifier.log" >&2; exit 1; }
vport="${vaddr##*:}"
admin_addr="$(grep -o '"message":"confidant-verifier admin listening","addr":"[^"]*"' "$state/verifier.log" | sed 's/.*"addr":"//; s/"$//' || true)"
[ -n "$admin_addr" ] || { tail "$state/verifier.log" >&2; exit 1; }
"$bin/confidant" model register --verifier "https://$admin_addr" --ca "$state/verifier/tls-cert.pem" \
  --token-file "$state/verifier/tokens/admin.jwt" --key-file "$state/model.key" \
  --key-id vm-demo-key --model-id "$model_id" --digest "$digest" >/dev/null

say "booting the VM (QEMU TCG, OVMF, swtpm): about a minute to attest, more to unseal"
swtpm socket --tpm2 --tpmstate "dir=$state/tpm" --ctrl "type=unixio,path=$state/tpm.sock" \
  --log "file=$state/swtpm.log" &
pids+=($!)
for _ in $(seq 1 50); do [ -S "$state/tpm.sock" ] && break; sleep 0.1; done
cp /usr/share/OVMF/OVMF_VARS_4M.fd "$state/OVMF_VARS.fd"
hport="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
qemu-system-x86_64 -machine q35 -cpu max -smp 1 -m "$memory_mib" -nodefaults -display none \
  -serial "file:$state/console.log" -monitor none -no-reboot \
  -drive "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd" \
  -drive "if=pflash,format=raw,unit=1,file=$state/OVMF_VARS.fd" \
  -chardev "socket,id=chrtpm,path=$state/tpm.sock" -tpmdev emulator,id=tpm0,chardev=chrtpm \
  -device tpm-crb,tpmdev=tpm0 \
  -kernel "$state/image/vmlinuz" -initrd "$state/image/initrd.cpio" -append "$append" \
  -netdev "user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:$hport-:8443,guestfwd=tcp:$guest_verifier:443-cmd:socat - TCP:127.0.0.1:$vport" \
  -device virtio-net-pci,netdev=n0,romfile= &
pids+=($!)
for _ in $(seq 1 600); do
  grep -q '"message":"serving"' "$state/console.log" 2>/dev/null && break
  sleep 1
done
grep -q '"message":"serving"' "$state/console.log" || { say "the VM did not serve:"; tail -20 "$state/console.log" >&2; exit 1; }
say "the guest enclave serves on 127.0.0.1:$hport"

curl -s --cacert "$state/verifier/tls-cert.pem" "https://$vaddr/v1/keys" \
  | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["keys"][0]))' >"$state/result-key.jwk"
printf 'measurements = ["%s"]\n[[models]]\nid = "%s"\ndigest = "%s"\n' "$measurement" "$model_id" "$digest" \
  >"$state/client-policy.toml"
client_args=(--ca "$state/verifier/ca.pem" --result-key "$state/result-key.jwk"
  --policy "$state/client-policy.toml" --token-file "$state/verifier/tokens/client.jwt")
"$bin/confidant" attest "https://127.0.0.1:$hport" "${client_args[@]}"
say "a short greedy completion (inference under TCG is slow: tens of seconds per token)"
"$bin/confidant" chat "https://127.0.0.1:$hport" "What is the capital of France?" \
  --temperature 0 --max-tokens 4 "${client_args[@]}"
