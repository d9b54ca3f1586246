//! The enclave configuration a [`crate::Stack`] writes, as an operator would (the verifier's
//! policy comes from `confidant-verifier init --model`).

use std::net::SocketAddr;
use std::path::Path;

use confidant_testkit::policy::DevSnpPolicy;

use crate::{MODEL_ID, RESULT_AUDIENCE, StackOptions};

pub(crate) fn policy_toml(
    digest: &[u8; 32],
    measurement: &[u8; 48],
    opts: &StackOptions,
) -> String {
    let mut p = DevSnpPolicy::new("e2e", 1, MODEL_ID, *digest, *measurement);
    p.measurements.extend(&opts.extra_measurements);
    p.amd_products = ["milan", "genoa", "turin"].map(str::to_owned).to_vec();
    p.toml()
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
