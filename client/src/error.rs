//! Errors, one enum per layer: [`AttestError`] names the attestation check that refused a server,
//! [`ClientError`] wraps it with configuration, transport and API failures.

use confidant_attestation::certext::CertExtError;
use confidant_attestation::policy::PolicyError;
use confidant_attestation::result::{ResultError, Status};
use confidant_attestation::verify::VerifyError;

/// The attestation check that refused the server. Every variant is raised before the first
/// request byte is written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AttestError {
    /// The certificate does not chain to the pinned verifier CA.
    #[error("certificate does not chain to the pinned verifier CA")]
    UntrustedCa,
    /// The certificate chains to the CA but is unusable (expired, wrong name, wrong usage).
    #[error("certificate rejected: {0:?}")]
    Certificate(rustls::CertificateError),
    /// The certificate carries no (or malformed) attestation extensions.
    #[error("certificate lacks valid attestation extensions: {0}")]
    MissingExtension(#[source] CertExtError),
    /// The attestation result is not a valid signature by the pinned result-signing key.
    #[error("attestation result signature or encoding invalid: {0}")]
    ResultSignature(#[source] ResultError),
    /// The attestation result has expired (or is not yet valid).
    #[error("attestation result expired or not yet valid")]
    ResultExpired,
    /// The verifier did not affirm the enclave.
    #[error("attestation result status is {0:?}, not affirming")]
    ResultStatus(Status),
    /// The result's claims do not meet the client's policy (the same rules the verifier applies;
    /// the variant names the rule: model, model digest, measurement, revocation, TCB floor,
    /// development evidence, masked chip id or key).
    #[error("the attestation result does not meet the client policy: {0}")]
    Policy(#[source] PolicyError),
    /// The result names another TLS key than the one in the certificate.
    #[error("attestation result names another TLS key than the certificate's")]
    KeyBindingMismatch,
    /// `fresh`: the server did not answer `POST /v1/attestation` correctly.
    #[error("session attestation failed: {0}")]
    SessionAttestation(#[source] SessionFault),
    /// `fresh`: the session evidence does not verify against the client's trust anchors.
    #[error("session evidence does not verify: {0}")]
    SessionEvidenceInvalid(#[source] EvidenceFault),
    /// `fresh`: the session evidence is not bound to this nonce, key, TLS session and model
    /// (replayed from another session, or relayed).
    #[error("session evidence is not bound to this TLS session")]
    SessionBindingMismatch,
    /// The session evidence does not meet the client's policy (`direct`: every rule of the
    /// client's policy; `passport`: a debuggable guest).
    #[error("session evidence does not meet the client policy: {0}")]
    SessionPolicy(#[source] PolicyError),
    /// `fresh`: the session evidence comes from another platform or image than the attested one.
    #[error("session evidence does not match the attested enclave")]
    SessionEvidenceMismatch,
    /// The TLS handshake finished without the attestation verifier having approved the peer.
    #[error("handshake completed without an attested peer")]
    NotAttested,
}

/// Why evidence bytes did not verify.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EvidenceFault {
    #[error("not decodable: {0}")]
    Decode(#[from] confidant_attestation::evidence::DecodeError),
    #[error(transparent)]
    Verify(#[from] VerifyError),
}

/// What went wrong talking to `POST /v1/attestation`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionFault {
    #[error("server answered HTTP {0}")]
    Status(u16),
    #[error("reply is not a valid session attestation body")]
    Malformed,
    #[error("transport: {0}")]
    Transport(#[source] hyper::Error),
    #[error("reply over {0} bytes")]
    TooLarge(usize),
    #[error("no randomness for the nonce")]
    Rng,
}

/// A bad [`crate::ClientBuilder`] setting.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("no verifier CA certificate configured")]
    MissingCa,
    #[error("verifier CA certificate is not valid PEM or DER X.509")]
    BadCa,
    #[error("no result-signing key configured")]
    MissingResultKey,
    #[error("result-signing key is invalid: {0}")]
    BadResultKey(#[source] ResultError),
    #[error("URL must be https://host[:port][/prefix]")]
    BadUrl,
    #[error("TLS configuration failed: {0}")]
    Tls(#[source] rustls::Error),
    #[error("no policy, or the policy allows no model, so it would refuse every server")]
    EmptyPolicy,
    #[error(
        "direct mode needs session evidence (fresh): the client checks the key binding only there"
    )]
    DirectNeedsFresh,
    #[error("bearer token is not a valid header value")]
    BadToken,
    #[error("cannot start the blocking client's runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

/// Everything a client call can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server was refused by an attestation check; nothing was sent.
    #[error("attestation refused: {0}")]
    Attestation(#[from] AttestError),
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("cannot connect: {0}")]
    Connect(#[source] std::io::Error),
    /// A TLS failure that is not an attestation decision (protocol error, bad signature).
    #[error("TLS handshake failed: {0}")]
    Tls(#[source] std::io::Error),
    #[error("timed out during {0}")]
    Timeout(&'static str),
    /// The (pooled) connection was closed before anything was sent on it.
    #[error("connection closed before the request was sent")]
    ConnectionClosed,
    #[error("HTTP transport: {0}")]
    Http(#[source] hyper::Error),
    /// The server answered with an error status (and, where present, the JSON error body, whose
    /// message is shown: it says what to fix, e.g. a token for the wrong audience).
    #[error(
        "server answered HTTP {status}{}{}",
        code.as_ref().map(|c| format!(" ({c})")).unwrap_or_default(),
        message.as_deref().map(printable).map(|m| format!(": {m}")).unwrap_or_default()
    )]
    Api {
        status: u16,
        code: Option<String>,
        message: Option<String>,
    },
    /// The reply did not parse as the expected OpenAI type.
    #[error("unexpected reply body: {0}")]
    Decode(#[source] serde_json::Error),
    #[error("reply over {0} bytes")]
    TooLarge(usize),
    /// The stream ended without `data: [DONE]`, or sent data after it.
    #[error("event stream ended abnormally")]
    Truncated,
    #[error("event stream: {0}")]
    Stream(#[from] crate::sse::SseError),
}

/// A server's message as one line of printable text (it is shown on terminals), at most 300
/// characters.
fn printable(message: &str) -> String {
    message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(300)
        .collect()
}

impl ClientError {
    /// The attestation check that failed, if this is an attestation refusal.
    pub fn attestation(&self) -> Option<&AttestError> {
        match self {
            ClientError::Attestation(e) => Some(e),
            _ => None,
        }
    }
}
