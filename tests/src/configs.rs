//! The configuration files a [`crate::Stack`] writes: the verifier's policy and the enclave's
//! configuration, as an operator would write them.

use std::net::SocketAddr;
use std::path::Path;

use crate::{MODEL_ID, RESULT_AUDIENCE, StackOptions};

pub(crate) fn policy_toml(
    dev_pki: &Path,
    digest: &[u8; 32],
    measurement: &[u8; 48],
    opts: &StackOptions,
) -> String {
    let ark = std::fs::read(dev_pki.join("ark.der")).unwrap();
    let ark_sha = hex::encode(ring::digest::digest(&ring::digest::SHA256, &ark));
    let measurements = std::iter::once(measurement)
        .chain(&opts.extra_measurements)
        .map(|m| format!("\"{}\"", hex::encode(m)))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"id = "e2e"
version = 1
revoked_measurements = []

[trust]
amd_products = ["milan", "genoa", "turin"]
tpm_aks_spki_sha256 = []
dev_root_ark_sha256 = "{ark_sha}"

[models."{MODEL_ID}"]
digest = "{digest}"
snp_measurements = [{measurements}]
min_tcb = {{ bootloader = 0, tee = 0, snp = 0, microcode = 0 }}
allow_dev = true
"#,
        digest = hex::encode(digest),
    )
}

pub(crate) fn enclave_toml(
    sealed: &Path,
    dev_pki: &Path,
    verifier: SocketAddr,
    opts: &StackOptions,
) -> String {
    let rate_limit = if opts.unlimited_rate {
        "\n[rate_limit]\nrequests = { per_second = 1e9, burst = 1000000000 }\n\
         tokens = { per_second = 1e9, burst = 1000000000 }\n"
    } else {
        ""
    };
    format!(
        r#"model_id = "{MODEL_ID}"
sealed_model = "{sealed}"

[verifier]
url = "https://{verifier}"
tls_ca = "verifier/tls-cert.pem"
token = {{ file = "verifier/tokens/enclave.jwt" }}
result_audience = "{RESULT_AUDIENCE}"
timeout_secs = 5

[tee]
kind = "sim"
dev_pki = "{pki}"

[server]
listen = "127.0.0.1:0"
dns_names = ["localhost"]
ip_addresses = ["127.0.0.1"]

[auth]
issuer = "confidant-dev-issuer"
audience = "confidant-enclave"
verification_keys = {{ file = "verifier/secrets/jwt-verify.jwk" }}

[boot]
retry_initial_ms = 100
retry_max_ms = 1000

# Four generations at once (the benchmark's concurrent streams).
[limits]
max_concurrent = 4
{rate_limit}"#,
        sealed = sealed.display(),
        pki = dev_pki.display(),
    )
}
