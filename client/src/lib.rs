//! Confidant client SDK: talk to a confidential-inference enclave only after attesting it.
//!
//! Every connection is checked before the first request byte is written:
//!
//! 1. **During the TLS 1.3 handshake** (every mode), a custom rustls certificate verifier checks the
//!    chain to the pinned verifier CA, the verifier's signed attestation result (signature, expiry,
//!    status), that the result names the certificate's key, and the result's claims against the
//!    client's own [`Policy`] — the verifier's policy format, checked by the verifier's code
//!    ([`Policy::check_result`]: model id and digest, measurement and revocations, TCB floor,
//!    development evidence, chip masks). The handshake signature proves the server holds that key.
//! 2. **`fresh`** (the default; required by [`Mode::Direct`]): after the handshake,
//!    `POST /v1/attestation` with a random nonce returns evidence bound to (nonce, the
//!    certificate's key, this TLS session's exporter, the attested model's digest), a binding the
//!    client computes itself; a relay or a replay from another session cannot match. The evidence
//!    is verified at the client's clock against its trust anchors.
//!    - [`Mode::Passport`]: the session evidence must show the platform the result names (same
//!      measurement, same development flag) and not a debuggable guest; the remaining reference
//!      values are the verifier's word, signed in the result.
//!    - [`Mode::Direct`]: the session evidence passes the client's whole policy with
//!      [`Policy::appraise`], the very function the verifier runs (measurements, TCB floors, VMPL,
//!      guest SVN, migration agent, debug, revocations, the exact root or TPM key, PCR sets, chip
//!      masks). The key binding is the client's own check: `direct` never trusts the verifier for
//!      it, which is why it cannot be combined with `fresh(false)`
//!      ([`ConfigError::DirectNeedsFresh`]).
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
//! use confidant_client::{Client, Mode, Policy, ResultVerifier, amd_trust_anchors};
//!
//! # async fn demo(ca_pem: &[u8], result_key: ResultVerifier, policy_toml: &str)
//! # -> Result<(), Box<dyn std::error::Error>> {
//! // The verifier's policy format (docs/policy.example.toml).
//! let policy = Policy::from_toml(policy_toml)?;
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

pub use confidant_attestation::policy::{Policy, PolicyError};
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
