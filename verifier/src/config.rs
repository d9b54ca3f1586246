//! The verifier's configuration: one TOML file (see `docs/verifier.example.toml`).
//!
//! Secrets (TLS key, CA key, result-signing key, key-encryption key, JWT verification keys) are
//! named by a [`SecretSource`] (`{ file = "…" }` or `{ env = "…" }`), never written inline.
//! Relative paths are resolved against the directory holding the configuration file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use confidant_service::ServerTimeouts;
use confidant_service::secrets::SecretSource;
use serde::Deserialize;

pub use confidant_service::config::ConfigError;
use confidant_service::config::{ConfigFile, RelativeTo};

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub auth: AuthConfig,
    #[serde(default)]
    pub rate_limit: RateLimitConfig,
    #[serde(default)]
    pub challenge: ChallengeConfig,
    pub ca: CaConfig,
    pub results: ResultsConfig,
    pub keys: KeysConfig,
    pub policy: PolicyConfig,
    pub audit: AuditConfig,
}

/// `[server]`: where and how to listen.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address of the attestation API (enclaves' challenge/attest, the public CA and result
    /// keys), e.g. `0.0.0.0:8443` (port 0 picks a free port).
    pub listen: SocketAddr,
    /// Address of the admin and auditor APIs (`/v1/admin/*`, `/v1/audit*`), served only here and
    /// never on `listen`, so they can stay on a management network or loopback while the
    /// attestation API faces the enclaves. Must differ from `listen` (unless both pick a port).
    pub admin_listen: SocketAddr,
    /// The verifier's own TLS certificate chain, PEM (leaf first). Public.
    pub tls_cert: PathBuf,
    /// The verifier's TLS private key, PEM.
    pub tls_key: SecretSource,
    /// Largest request body accepted on any route, in bytes.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// `[server.timeouts]`: how long a peer may take (handshake, request head and body, idle).
    #[serde(default)]
    pub timeouts: ServerTimeouts,
}

/// `[auth]`: bearer JWTs (ES256) accepted by every authenticated route.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    pub issuer: String,
    pub audience: String,
    /// ES256 verification key(s): PEM SPKI, DER SPKI, a JWK or a JWK Set.
    pub verification_keys: SecretSource,
    #[serde(default = "default_leeway")]
    pub leeway_secs: u64,
}

/// `[rate_limit]`: per-principal token bucket on `/v1/challenge` and `/v1/attest`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    pub per_second: f64,
    pub burst: u64,
    #[serde(default = "default_max_clients")]
    pub max_clients: usize,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            per_second: 2.0,
            burst: 20,
            max_clients: default_max_clients(),
        }
    }
}

/// `[challenge]`: nonces.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChallengeConfig {
    /// Time to live of a nonce, in milliseconds.
    #[serde(default = "default_nonce_ttl_ms")]
    pub ttl_ms: u64,
    /// Most nonces held at once (outstanding plus recently used).
    #[serde(default = "default_max_nonces")]
    pub max_outstanding: usize,
}

impl Default for ChallengeConfig {
    fn default() -> Self {
        Self {
            ttl_ms: default_nonce_ttl_ms(),
            max_outstanding: default_max_nonces(),
        }
    }
}

/// `[ca]`: the certificate authority issuing enclave leaf certificates.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaConfig {
    /// PKCS#8 DER ECDSA P-256 private key.
    pub key: SecretSource,
    pub common_name: String,
    /// Validity of the CA certificate, Unix seconds. Fixed in configuration so the (deterministic)
    /// CA certificate is the same across restarts and clients can pin it.
    pub not_before: u64,
    pub not_after: u64,
    /// Lifetime of an enclave leaf certificate, seconds.
    #[serde(default = "default_leaf_validity")]
    pub leaf_validity_secs: u64,
}

/// `[results]`: signed attestation results.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResultsConfig {
    /// PKCS#8 DER ECDSA P-256 private key (ES256), also used to sign audit checkpoints.
    pub signing_key: SecretSource,
    /// `iss` of results.
    #[serde(default = "default_result_issuer")]
    pub issuer: String,
    /// `aud` of results: who checks them (clients checking an enclave's certificate).
    #[serde(default = "default_result_audience")]
    pub audience: String,
    /// Lifetime of a result, seconds (a leaf certificate never outlives its result).
    #[serde(default = "default_leaf_validity")]
    pub validity_secs: u64,
}

/// `[keys]`: model keys at rest.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysConfig {
    /// Key-encryption key: 32 raw bytes or 64 hex digits.
    pub kek: SecretSource,
    /// The encrypted key store file.
    pub store: PathBuf,
}

/// `[policy]`: the appraisal policy and trust anchors.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Policy TOML. `PUT /v1/admin/policy` replaces it (atomically) after validation.
    pub path: PathBuf,
    /// Development ARK (DER or PEM), from `scripts/dev-pki.sh`. Evidence chaining to it is
    /// accepted only where the policy itself allows development evidence.
    #[serde(default)]
    pub dev_ark: Option<PathBuf>,
    /// Development ASK (DER or PEM).
    #[serde(default)]
    pub dev_ask: Option<PathBuf>,
}

/// `[audit]`: the tamper-evident decision log.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// The append-only log file.
    pub log: PathBuf,
    /// PKCS#8 DER ECDSA P-256 key signing checkpoints (public half in `GET /v1/keys`).
    pub checkpoint_key: SecretSource,
    /// What to do with a torn (incomplete) final record found at start-up: `refuse` (default:
    /// do not start; an operator inspects) or `move_aside` (copy it to `<log>.torn-<offset>`,
    /// truncate, warn, continue).
    #[serde(default)]
    pub torn_tail: TornTail,
}

/// Start-up handling of a torn final audit record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TornTail {
    #[default]
    Refuse,
    MoveAside,
}

fn default_max_body() -> usize {
    confidant_wire::attest::MAX_ATTEST_BODY
}
fn default_leeway() -> u64 {
    60
}
fn default_max_clients() -> usize {
    10_000
}
fn default_nonce_ttl_ms() -> u64 {
    30_000
}
fn default_max_nonces() -> usize {
    10_000
}
fn default_leaf_validity() -> u64 {
    3600
}
fn default_result_issuer() -> String {
    "confidant-verifier".to_owned()
}
/// Results are read by relying parties: the client SDK expects this audience by default.
fn default_result_audience() -> String {
    "confidant-client".to_owned()
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
    /// Parses TOML text; relative paths are resolved against `base`.
    pub fn from_toml(text: &str, base: &Path) -> Result<Self, ConfigError> {
        confidant_service::config::parse(text, base)
    }

    /// Reads and parses a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        confidant_service::config::load(path)
    }

    fn resolve(&mut self, base: &RelativeTo<'_>) {
        base.path(&mut self.server.tls_cert);
        base.secret(&mut self.server.tls_key);
        base.secret(&mut self.auth.verification_keys);
        base.secret(&mut self.ca.key);
        base.secret(&mut self.results.signing_key);
        base.secret(&mut self.keys.kek);
        base.path(&mut self.keys.store);
        base.path(&mut self.policy.path);
        if let Some(p) = self.policy.dev_ark.as_mut() {
            base.path(p);
        }
        if let Some(p) = self.policy.dev_ask.as_mut() {
            base.path(p);
        }
        base.path(&mut self.audit.log);
        base.secret(&mut self.audit.checkpoint_key);
    }

    fn check(&self) -> Result<(), ConfigError> {
        if self.server.max_body_bytes == 0 {
            return Err(ConfigError::Invalid("server.max_body_bytes must be > 0"));
        }
        if self.challenge.ttl_ms == 0 {
            return Err(ConfigError::Invalid("challenge.ttl_ms must be > 0"));
        }
        if self.ca.not_after <= self.ca.not_before {
            return Err(ConfigError::Invalid(
                "ca.not_after must be after ca.not_before",
            ));
        }
        if self.ca.leaf_validity_secs == 0 || self.results.validity_secs == 0 {
            return Err(ConfigError::Invalid("validity periods must be > 0"));
        }
        if self.policy.dev_ark.is_some() != self.policy.dev_ask.is_some() {
            return Err(ConfigError::Invalid(
                "policy.dev_ark and policy.dev_ask go together",
            ));
        }
        if !(self.rate_limit.per_second.is_finite() && self.rate_limit.per_second > 0.0)
            || self.rate_limit.burst == 0
        {
            return Err(ConfigError::Invalid(
                "rate_limit needs per_second > 0 and burst >= 1",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_example_parses() {
        let text = include_str!("../../docs/verifier.example.toml");
        let c = Config::from_toml(text, Path::new("/etc/confidant")).unwrap();
        assert_eq!(c.audit.torn_tail, TornTail::Refuse);
        assert_eq!(
            c.keys.kek,
            SecretSource::File("/etc/confidant/secrets/kek".into())
        );
    }

    #[test]
    fn inline_secrets_are_refused() {
        let text = include_str!("../../docs/verifier.example.toml")
            .replace("kek = { file = \"secrets/kek\" }", "kek = \"00112233\"");
        assert!(matches!(
            Config::from_toml(&text, Path::new(".")),
            Err(ConfigError::Parse { .. })
        ));
    }
}
