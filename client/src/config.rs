//! [`ClientBuilder`]: everything a client trusts, set explicitly. There is no default CA, key or
//! policy; `fresh` is on unless turned off, development evidence is refused unless allowed.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use confidant_attestation::policy::Policy;
use confidant_attestation::result::ResultVerifier;
use confidant_attestation::verify::TrustAnchors;

use crate::appraise::{Appraiser, DEFAULT_RESULT_AUDIENCE};
use crate::client::Client;
use crate::error::{ClientError, ConfigError};
use crate::target::Target;
use crate::tls::TlsSettings;

/// What the client trusts for the enclave's claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Trust the verifier's signed attestation result (checked against the client's policy).
    #[default]
    Passport,
    /// Verify the enclave's session evidence (bound by the client itself to this TLS session, the
    /// certificate's key and the attested model) against the client's own trust anchors and the
    /// client's whole policy, with the verifier's appraisal code. Needs `fresh`.
    Direct,
}

/// A bearer token: zeroized on drop, never printed.
#[derive(Clone)]
pub struct BearerToken(Zeroizing<String>);

impl BearerToken {
    /// Wraps a token.
    pub fn new(token: impl Into<String>) -> Self {
        BearerToken(Zeroizing::new(token.into()))
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken(<redacted>)")
    }
}

/// Default bound on TCP connect + handshake + session attestation.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default bound on one request (and on the silence between two streamed events).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(300);
/// Default number of idle attested connections a [`Client`] keeps.
pub const DEFAULT_MAX_IDLE: usize = 4;

/// Builds a [`Client`].
pub struct ClientBuilder {
    url: String,
    ca: Result<Option<Vec<u8>>, ConfigError>,
    result_key: Option<ResultVerifier>,
    audience: String,
    policy: Option<Policy>,
    mode: Mode,
    fresh: bool,
    token: Option<BearerToken>,
    anchors: TrustAnchors,
    connect_timeout: Duration,
    request_timeout: Duration,
    max_idle: usize,
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("url", &self.url)
            .field("mode", &self.mode)
            .field("fresh", &self.fresh)
            .field("policy", &self.policy)
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

impl ClientBuilder {
    /// A builder for the enclave at `url` (`https://host[:port][/prefix]`).
    pub fn new(url: impl Into<String>) -> Self {
        ClientBuilder {
            url: url.into(),
            ca: Ok(None),
            result_key: None,
            audience: DEFAULT_RESULT_AUDIENCE.to_string(),
            policy: None,
            mode: Mode::Passport,
            fresh: true,
            token: None,
            anchors: TrustAnchors::default(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_idle: DEFAULT_MAX_IDLE,
        }
    }

    /// Pins the verifier CA certificate, PEM (first certificate) or DER.
    pub fn verifier_ca(mut self, pem_or_der: &[u8]) -> Self {
        self.ca = parse_ca(pem_or_der).map(Some);
        self
    }

    /// The verifier's result-signing public key.
    pub fn result_key(mut self, key: ResultVerifier) -> Self {
        self.result_key = Some(key);
        self
    }

    /// The audience the verifier writes into enclave results (default
    /// [`DEFAULT_RESULT_AUDIENCE`]); a result for another audience is refused.
    pub fn result_audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = audience.into();
        self
    }

    /// The client's own policy, in the verifier's format and evaluated by the verifier's code
    /// (`docs/policy.example.toml`): models and their digests, reference values, TCB floors,
    /// revocations, trusted roots, development evidence, chip masks.
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = Some(policy);
        self
    }

    /// `Passport` (default) or `Direct`.
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// Session evidence over the TLS exporter on every connection (default: on).
    pub fn fresh(mut self, fresh: bool) -> Self {
        self.fresh = fresh;
        self
    }

    /// Trust anchors for evidence verification (`fresh` session evidence). Defaults to an empty
    /// set, which verifies nothing: pass the AMD roots and/or trusted TPM keys
    /// ([`Policy::trust_anchors`] builds the ones a policy trusts). In `direct` mode the policy
    /// checks the exact root or key that verified the evidence again.
    pub fn trust_anchors(mut self, anchors: TrustAnchors) -> Self {
        self.anchors = anchors;
        self
    }

    /// Bearer token sent (as `Authorization: Bearer …`) on API requests, never on the attestation
    /// exchange.
    pub fn bearer_token(mut self, token: BearerToken) -> Self {
        self.token = Some(token);
        self
    }

    /// Bound on connecting, the attested handshake and session attestation together.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Bound on one request, and on the silence between two streamed events.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// How many idle attested connections to keep for reuse (0 disables reuse).
    pub fn max_idle_connections(mut self, n: usize) -> Self {
        self.max_idle = n;
        self
    }

    /// Checks the settings and builds the client. Connects lazily.
    pub fn build(self) -> Result<Client, ClientError> {
        Ok(Client::from_config(Arc::new(self.into_config()?)))
    }

    pub(crate) fn into_config(self) -> Result<Config, ConfigError> {
        let target = Target::parse(&self.url)?;
        let ca = self.ca?.ok_or(ConfigError::MissingCa)?;
        let result_key = self.result_key.ok_or(ConfigError::MissingResultKey)?;
        let policy = self.policy.ok_or(ConfigError::EmptyPolicy)?;
        if policy.model_ids().next().is_none() {
            return Err(ConfigError::EmptyPolicy);
        }
        if self.mode == Mode::Direct && !self.fresh {
            return Err(ConfigError::DirectNeedsFresh);
        }
        if let Some(token) = &self.token {
            crate::connection::bearer_header(token.expose()).map_err(|_| ConfigError::BadToken)?;
        }
        let tls = TlsSettings::new(CertificateDer::from(ca))?;
        let appraiser = Appraiser::new(result_key, self.audience, policy, self.mode, self.anchors);
        Ok(Config {
            target,
            tls,
            appraiser: Arc::new(appraiser),
            fresh: self.fresh,
            token: self.token,
            connect_timeout: self.connect_timeout,
            request_timeout: self.request_timeout,
            max_idle: self.max_idle,
        })
    }
}

fn parse_ca(bytes: &[u8]) -> Result<Vec<u8>, ConfigError> {
    if bytes.starts_with(b"-----") || bytes.iter().take(64).all(|b| b.is_ascii()) {
        let cert = CertificateDer::pem_slice_iter(bytes)
            .next()
            .ok_or(ConfigError::BadCa)?
            .map_err(|_| ConfigError::BadCa)?;
        Ok(cert.as_ref().to_vec())
    } else {
        Ok(bytes.to_vec())
    }
}

/// The checked settings every connection of a client shares.
#[derive(Debug)]
pub(crate) struct Config {
    pub(crate) target: Target,
    pub(crate) tls: TlsSettings,
    pub(crate) appraiser: Arc<Appraiser>,
    fresh: bool,
    pub(crate) token: Option<BearerToken>,
    pub(crate) connect_timeout: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) max_idle: usize,
}

/// Proof that this client was configured without `fresh`: the only way to open a connection
/// without session evidence. Constructed nowhere but [`Config::session_requirement`].
#[derive(Debug)]
pub(crate) struct FreshWaived(());

/// Whether a connection needs session evidence before its first request.
#[derive(Debug)]
pub(crate) enum SessionRequirement {
    Required,
    Waived(FreshWaived),
}

impl Config {
    pub(crate) fn session_requirement(&self) -> SessionRequirement {
        if self.fresh {
            SessionRequirement::Required
        } else {
            SessionRequirement::Waived(FreshWaived(()))
        }
    }
}
