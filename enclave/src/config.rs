//! The enclave's configuration: one TOML file (documented in `docs/enclave.example.toml`).
//!
//! Secrets (the enclave's bearer token for the verifier, the client JWT verification keys) are
//! named by a [`SecretSource`], never written inline. Relative paths are resolved against the
//! directory holding the configuration file. Every table refuses unknown fields.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use confidant_service::ServerTimeouts;
use confidant_service::ratelimit::{BucketConfig, RateLimitConfig};
use confidant_service::secrets::SecretSource;
use serde::Deserialize;

pub use confidant_service::config::ConfigError;
use confidant_service::config::{ConfigFile, RelativeTo};

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The model id the verifier's policy and key store know the model by; also the id the API
    /// reports in `GET /v1/models`.
    pub model_id: String,
    /// The sealed model file (`confidant model seal`). Read only after key release.
    pub sealed_model: PathBuf,
    pub verifier: VerifierConfig,
    pub tee: TeeConfig,
    pub server: ServerConfig,
    pub auth: AuthConfig,
    #[serde(default)]
    pub limits: LimitsConfig,
    #[serde(default = "default_rate_limit")]
    pub rate_limit: RateLimitConfig,
    #[serde(default)]
    pub boot: BootConfig,
}

/// How to reach the verifier.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifierConfig {
    /// Base URL, `https://host:port` (no path).
    pub url: String,
    /// PEM file with the certificate(s) that anchor the verifier's TLS certificate (for a
    /// development verifier: its self-signed `tls-cert.pem`). Nothing else is trusted.
    pub tls_ca: PathBuf,
    /// The enclave's bearer token (role `enclave`).
    pub token: SecretSource,
    /// Audience the verifier writes into attestation results for enclaves.
    #[serde(default = "default_result_audience")]
    pub result_audience: String,
    /// Per-request timeout towards the verifier, seconds.
    #[serde(default = "default_verifier_timeout")]
    pub timeout_secs: u64,
}

/// Which TEE produces evidence.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum TeeConfig {
    /// Simulated SEV-SNP (development only; the verifier must trust the development root and the
    /// model must allow dev evidence). The launch measurement is the SHA-384 of the running
    /// executable, so a policy that does not list this build refuses it.
    Sim {
        /// Output directory of `scripts/dev-pki.sh` (`vcek.der`, `vcek.key.pk8`, `ask.der`,
        /// `ark.der`).
        dev_pki: PathBuf,
    },
    /// SEV-SNP hardware through `/dev/sev-guest`.
    Snp {
        /// VMPL to request reports at.
        #[serde(default)]
        vmpl: u32,
        /// VCEK/VLEK (DER) to use when the host supplies no certificate table.
        #[serde(default)]
        signer_cert: Option<PathBuf>,
    },
    /// TPM 2.0 quote (device or swtpm).
    Tpm {
        /// TCTI, e.g. `device:/dev/tpmrm0` or `swtpm:host=127.0.0.1,port=2321`.
        tcti: String,
        /// SHA-256 PCRs to quote.
        pcrs: Vec<u8>,
        /// Directory holding the attestation key blobs (`ak.pub`, `ak.priv`); created with a
        /// fresh AK on first start, so the AK the verifier's policy enrolled stays the same.
        ak_dir: PathBuf,
        /// The TCG event log to carry in the evidence, read anew for every quote (in a measured
        /// VM: `/sys/kernel/security/tpm0/binary_bios_measurements`). The verifier replays it
        /// against the quoted PCRs and appraises the boot events it records.
        #[serde(default)]
        event_log: Option<PathBuf>,
        /// How the verifier comes to trust the AK: `"enrolled"` (its fingerprint is listed in the
        /// policy) or `"ek"` (credential activation: the verifier wraps a secret to the TPM's
        /// EK, vouched for by the EK certificate, and only this AK in that TPM can recover it).
        #[serde(default)]
        ak_trust: AkTrust,
    },
}

/// `[tee] ak_trust` for `kind = "tpm"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AkTrust {
    /// The policy enrolls the AK by SPKI fingerprint (`trust.tpm_aks_spki_sha256`).
    #[default]
    Enrolled,
    /// Credential activation against the TPM's EK certificate (`trust.tpm_ek_ca_certs`), for
    /// every attestation; a fresh AK per boot works. Needs an EK certificate in the TPM's NV.
    Ek,
}

/// The HTTPS listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// DNS names the certificate (issued by the verifier) names.
    #[serde(default)]
    pub dns_names: Vec<String>,
    /// IP addresses the certificate names.
    #[serde(default)]
    pub ip_addresses: Vec<IpAddr>,
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// `[server.timeouts]`: how long a peer may take (handshake, request head and body, idle).
    #[serde(default)]
    pub timeouts: ServerTimeouts,
}

/// Client bearer tokens.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    pub issuer: String,
    pub audience: String,
    /// JWK, JWK Set or PEM public key(s).
    pub verification_keys: SecretSource,
    #[serde(default = "default_leeway")]
    pub leeway_secs: u64,
    /// Role needed for inference and session attestation.
    #[serde(default = "default_client_role")]
    pub client_role: String,
    /// Role needed for `GET /metrics` (the operator's scraper; never given to clients).
    #[serde(default = "default_metrics_role")]
    pub metrics_role: String,
}

/// Request caps and the generation queue.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Request body cap (413 beyond it).
    pub max_body_bytes: usize,
    /// Prompt tokens per request (400 beyond it).
    pub max_prompt_tokens: usize,
    /// Largest `max_tokens` a request may ask for (400 beyond it).
    pub max_tokens: usize,
    /// `max_tokens` when a request gives none (capped by `max_tokens`).
    pub default_max_tokens: usize,
    /// Generations running at once.
    pub max_concurrent: usize,
    /// Requests waiting for a generation slot; beyond it 503.
    pub max_queue: usize,
    /// Longest wait for a slot before 503.
    pub queue_timeout_ms: u64,
    /// Session attestations (`POST /v1/attestation`) that may wait for the TEE; beyond it 503
    /// `tee_busy` at once. The enclave's own attestations go before all of them.
    pub session_attestation_queue: usize,
    /// Longest wait of a session attestation for the TEE before 503 `tee_busy`.
    pub session_attestation_wait_ms: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 256 * 1024,
            max_prompt_tokens: 1536,
            max_tokens: 512,
            default_max_tokens: 256,
            max_concurrent: 2,
            max_queue: 16,
            queue_timeout_ms: 30_000,
            session_attestation_queue: 4,
            session_attestation_wait_ms: 5_000,
        }
    }
}

/// Boot and renewal timing.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BootConfig {
    /// First retry delay after a failed attestation.
    pub retry_initial_ms: u64,
    /// Largest retry delay (exponential backoff with jitter up to this).
    pub retry_max_ms: u64,
    /// Fraction of the certificate's lifetime after which it is renewed, in (0, 1).
    pub renew_at: f64,
}

impl Default for BootConfig {
    fn default() -> Self {
        Self {
            retry_initial_ms: 500,
            retry_max_ms: 30_000,
            renew_at: 2.0 / 3.0,
        }
    }
}

impl BootConfig {
    pub fn retry_initial(&self) -> Duration {
        Duration::from_millis(self.retry_initial_ms.max(1))
    }

    pub fn retry_max(&self) -> Duration {
        Duration::from_millis(self.retry_max_ms.max(self.retry_initial_ms).max(1))
    }
}

/// The audience the verifier puts in results: they are written for relying parties (clients),
/// and the enclave checks its own result as one.
fn default_result_audience() -> String {
    "confidant-client".to_owned()
}
fn default_verifier_timeout() -> u64 {
    10
}
fn default_max_connections() -> usize {
    1024
}
fn default_leeway() -> u64 {
    60
}
fn default_metrics_role() -> String {
    "metrics".to_owned()
}

fn default_client_role() -> String {
    "client".to_owned()
}
fn default_rate_limit() -> RateLimitConfig {
    RateLimitConfig {
        requests: BucketConfig {
            per_second: 2.0,
            burst: 30,
        },
        tokens: BucketConfig {
            per_second: 100.0,
            burst: 4096,
        },
        max_keys: 10_000,
    }
}

impl ConfigFile for Config {
    fn resolve_paths(&mut self, base: &RelativeTo<'_>) {
        self.resolve(base);
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.check()
    }
}

impl Config {
    /// Parses TOML; relative paths are taken relative to `base`.
    pub fn from_toml(text: &str, base: &Path) -> Result<Self, ConfigError> {
        confidant_service::config::parse(text, base)
    }

    /// Reads and parses a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        confidant_service::config::load(path)
    }

    fn resolve(&mut self, base: &RelativeTo<'_>) {
        base.path(&mut self.sealed_model);
        base.path(&mut self.verifier.tls_ca);
        base.secret(&mut self.verifier.token);
        base.secret(&mut self.auth.verification_keys);
        match &mut self.tee {
            TeeConfig::Sim { dev_pki } => base.path(dev_pki),
            TeeConfig::Snp { signer_cert, .. } => {
                if let Some(p) = signer_cert {
                    base.path(p);
                }
            }
            TeeConfig::Tpm {
                ak_dir, event_log, ..
            } => {
                base.path(ak_dir);
                if let Some(p) = event_log {
                    base.path(p);
                }
            }
        }
    }

    fn check(&self) -> Result<(), ConfigError> {
        let l = &self.limits;
        if self.model_id.is_empty() {
            return Err(ConfigError::Invalid("model_id is empty"));
        }
        if !self.verifier.url.starts_with("https://") {
            return Err(ConfigError::Invalid("verifier.url must be https://"));
        }
        if l.max_concurrent == 0 {
            return Err(ConfigError::Invalid(
                "limits.max_concurrent must be at least 1",
            ));
        }
        if l.max_tokens == 0 || l.default_max_tokens == 0 || l.max_prompt_tokens == 0 {
            return Err(ConfigError::Invalid("token limits must be at least 1"));
        }
        if l.max_body_bytes < 1024 {
            return Err(ConfigError::Invalid(
                "limits.max_body_bytes must be at least 1024",
            ));
        }
        let renew = self.boot.renew_at;
        if !(renew.is_finite() && renew > 0.0 && renew < 1.0) {
            return Err(ConfigError::Invalid("boot.renew_at must be in (0, 1)"));
        }
        if self.server.dns_names.is_empty() && self.server.ip_addresses.is_empty() {
            return Err(ConfigError::Invalid(
                "server needs at least one of dns_names or ip_addresses for its certificate",
            ));
        }
        if let TeeConfig::Tpm { pcrs, .. } = &self.tee
            && (pcrs.is_empty() || pcrs.iter().any(|&p| p > 23))
        {
            return Err(ConfigError::Invalid("tee.pcrs must list PCRs 0..=23"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../docs/enclave.example.toml");

    #[test]
    fn example_parses() {
        let c = Config::from_toml(EXAMPLE, Path::new("/etc/confidant")).unwrap();
        assert_eq!(c.model_id, "smollm2-135m-instruct");
        assert!(c.sealed_model.is_absolute());
        assert!(matches!(c.tee, TeeConfig::Sim { .. }));
    }

    #[test]
    fn unknown_fields_are_refused() {
        let bad = EXAMPLE.replace("[limits]", "[limits]\nmax_tokenz = 3");
        assert!(matches!(
            Config::from_toml(&bad, Path::new("/")),
            Err(ConfigError::Parse { .. })
        ));
        let bad = EXAMPLE.replace("kind = \"sim\"", "kind = \"sim\"\ncolour = 1");
        assert!(matches!(
            Config::from_toml(&bad, Path::new("/")),
            Err(ConfigError::Parse { .. })
        ));
    }

    #[test]
    fn plain_http_verifier_is_refused() {
        let bad = EXAMPLE.replace("https://", "http://");
        assert!(matches!(
            Config::from_toml(&bad, Path::new("/")),
            Err(ConfigError::Invalid(_))
        ));
    }
}
