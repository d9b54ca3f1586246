//! Confidant client SDK: talk to a confidential-inference enclave only after attesting it.
//!
//! Every connection is checked before the first request byte is written:
//!
//! 1. **During the TLS 1.3 handshake** (every mode), a custom rustls certificate verifier checks the
//!    chain to the pinned verifier CA, the verifier's signed attestation result (signature, expiry,
//!    status), its claims against the client's own [`ClientPolicy`] (model id and digest, launch
//!    measurement, TCB floor, development evidence), and that the result names the certificate's
//!    key. The handshake signature proves the server holds that key.
//! 2. **[`Mode::Direct`]** additionally verifies the raw evidence embedded in the certificate
//!    against the client's own trust anchors and reference values, and that it is the evidence the
//!    result was issued for. The cryptographic verification of a given evidence (clock-free, a
//!    function of its bytes and the client's anchors) is done once per client and remembered in a
//!    small bounded cache keyed by the exact bytes; the result, expiry, policy and
//!    evidence-to-result checks run on every connection.
//! 3. **`fresh`** (the default, on top of either mode): after the handshake, `POST /v1/attestation`
//!    with a random nonce returns evidence bound to this TLS session's exporter, which the client
//!    computes itself; a relay or a replay from another session cannot match.
//!
//! Any refusal is an [`AttestError`] naming the check. Requests can only be sent on a
//! [`Connection`], which only exists once all checks passed (it is built from the verified
//! values the checks return, never from a flag). The bearer token is sent on API requests only,
//! never on the session attestation exchange. TLS session resumption is off, so every connection
//! is appraised in full; a [`Client`] keeps a few attested connections for reuse while their
//! result is unexpired.
//!
//! [`blocking::Client`] wraps the async client for synchronous code.
//!
//! ```no_run
//! use confidant_wire::openai::{ChatMessage, ChatRequest};
//! use confidant_client::{Client, ClientPolicy, Mode, ResultVerifier, amd_trust_anchors};
//!
//! # async fn demo(ca_pem: &[u8], result_key: ResultVerifier, measurement: Vec<u8>, digest: [u8; 32])
//! # -> Result<(), confidant_client::ClientError> {
//! let policy = ClientPolicy::new()
//!     .allow_model("smollm2-135m-instruct", digest)
//!     .allow_measurement(measurement);
//! let client = Client::builder("https://enclave.example:8443")
//!     .verifier_ca(ca_pem)
//!     .result_key(result_key)
//!     .policy(policy)
//!     .mode(Mode::Passport)
//!     .trust_anchors(amd_trust_anchors())
//!     .build()?;
//!
//! // Attest explicitly and look at what was verified...
//! let conn = client.connect().await?;
//! println!("{}", conn.claims().result.model_id);
//!
//! // ...or just ask: the client attests (once per pooled connection) before sending.
//! let reply = client
//!     .chat(ChatRequest::new("smollm2-135m-instruct", vec![ChatMessage::user("Hello")]))
//!     .await?;
//! println!("{}", reply.text().unwrap_or_default());
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod appraise;
pub mod blocking;
mod client;
mod config;
mod connection;
mod error;
pub mod policy;
mod session;
pub mod sse;
mod target;
mod tls;

pub use appraise::{AttestationClaims, DEFAULT_RESULT_AUDIENCE, SessionClaims};
pub use client::{Client, PooledBody};
pub use config::{
    BearerToken, ClientBuilder, DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_IDLE, DEFAULT_REQUEST_TIMEOUT,
    Mode,
};
pub use connection::{Connection, Delta, DeltaStream, MAX_RESPONSE_BYTES};
pub use error::{AttestError, ClientError, ConfigError, EvidenceFault, SessionFault};
pub use policy::{AllowedModel, ClientPolicy, TcbFloor};

pub use confidant_attestation::result::{ResultClaims, ResultVerifier};
pub use confidant_attestation::verify::TrustAnchors;

/// Trust anchors with AMD's pinned production roots (Milan, Genoa, Turin) and no TPM keys: what
/// `direct` mode and `fresh` evidence verify SEV-SNP hardware evidence against.
pub fn amd_trust_anchors() -> TrustAnchors {
    TrustAnchors {
        snp: confidant_attestation::snp::SnpTrustRoots::amd(),
        ..TrustAnchors::default()
    }
}
