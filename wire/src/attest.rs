//! The attestation protocol's bodies (one definition, used by both ends).
//!
//! Verifier: [`CHALLENGE`](crate::routes::verifier::CHALLENGE) → [`ChallengeResponse`] (JSON);
//! TPM with credential activation: [`ATTEST_CREDENTIAL`](crate::routes::verifier::ATTEST_CREDENTIAL)
//! takes [`CredentialRequest`] and answers [`CredentialResponse`] (JSON, binary fields base64);
//! [`ATTEST`](crate::routes::verifier::ATTEST) takes [`AttestRequest`] and answers
//! [`AttestResponse`], both CBOR (`application/cbor`).
//! Enclave: [`SESSION_ATTESTATION`](crate::routes::enclave::SESSION_ATTESTATION) takes
//! [`SessionAttestationRequest`] and answers [`SessionAttestationResponse`] (JSON, binary fields
//! base64).

use serde::{Deserialize, Serialize};

use confidant_attestation::digest::Blake3Digest;

/// Content type of CBOR bodies.
pub const CBOR_CONTENT_TYPE: &str = "application/cbor";

/// Largest `POST /v1/attest` body a verifier accepts.
pub const MAX_ATTEST_BODY: usize = 512 * 1024;

/// Largest `POST /v1/attest` reply an enclave accepts (result, leaf and CA certificates, wrapped
/// key: a few kilobytes; the leaf embeds the evidence).
pub const MAX_ATTEST_REPLY: usize = 1024 * 1024;

/// Nesting depth the CBOR bodies are decoded with (the deepest real one is 4).
const CBOR_RECURSION_LIMIT: usize = 16;

/// Why a CBOR body was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CborError {
    #[error("CBOR body of {0} bytes is over the limit")]
    TooLarge(usize),
    #[error("not CBOR of the expected shape")]
    Malformed,
    #[error("trailing bytes after the CBOR body")]
    Trailing,
}

/// Decodes one CBOR item of type `T` filling all of `bytes` (at most `max` bytes, nesting
/// bounded).
fn from_cbor<T: serde::de::DeserializeOwned>(bytes: &[u8], max: usize) -> Result<T, CborError> {
    if bytes.len() > max {
        return Err(CborError::TooLarge(bytes.len()));
    }
    let mut reader = bytes;
    let value = ciborium::de::from_reader_with_recursion_limit(&mut reader, CBOR_RECURSION_LIMIT)
        .map_err(|_| CborError::Malformed)?;
    if !reader.is_empty() {
        return Err(CborError::Trailing);
    }
    Ok(value)
}

fn to_cbor<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing into a Vec cannot fail, and these types serialise without custom errors.
    if ciborium::into_writer(value, &mut out).is_err() {
        out.clear();
    }
    out
}

/// `POST /v1/challenge` reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChallengeResponse {
    /// 32 random bytes, hex.
    pub nonce: String,
    /// Unix seconds after which the nonce is refused.
    pub expires_at: u64,
}

/// `POST /v1/attest` body (CBOR).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttestRequest {
    #[serde(with = "serde_bytes")]
    pub nonce: Vec<u8>,
    /// The evidence, as the canonical CBOR byte string
    /// (`confidant_attestation::evidence::Evidence::to_cbor`). Carried as bytes, never as a nested
    /// structure: the verifier decodes it through the one evidence gate
    /// (`ReceivedEvidence::decode`) and digests these exact bytes.
    #[serde(with = "serde_bytes")]
    pub evidence: Vec<u8>,
    /// DER SubjectPublicKeyInfo of the enclave's TLS key.
    #[serde(with = "serde_bytes")]
    pub tls_spki: Vec<u8>,
    /// X25519 public key the model key is wrapped to.
    #[serde(with = "serde_bytes")]
    pub wrap_pk: Vec<u8>,
    /// Which model the enclave asks the key for.
    pub model_id: String,
    /// Host names and IP addresses the enclave's certificate should name: each must be among the
    /// model's `tls_names` in the verifier's policy, else the request is refused
    /// (`certificate_name_not_allowed`).
    #[serde(default)]
    pub dns_names: Vec<String>,
    #[serde(default)]
    pub ip_addresses: Vec<String>,
    /// The model key to release, by id (the key the enclave's sealed bundle names). `None`: the
    /// model's active key. A key retired by rotation stays releasable by id until revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// TPM only: the secret `TPM2_ActivateCredential` recovered from the credential
    /// `POST /v1/attest/credential` issued for this nonce (proves the AK lives in a TPM whose EK
    /// the policy's EK CAs vouch for). `None`: the AK must be enrolled by fingerprint.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "serde_bytes")]
    pub activation_secret: Option<Vec<u8>>,
}

impl AttestRequest {
    /// Decodes a `POST /v1/attest` body: one CBOR item, nothing after it, at most
    /// [`MAX_ATTEST_BODY`] bytes. The evidence inside is decoded by serde here and checked for
    /// canonical form where it is verified.
    pub fn from_cbor(bytes: &[u8]) -> Result<Self, CborError> {
        from_cbor(bytes, MAX_ATTEST_BODY)
    }

    /// The CBOR body.
    pub fn to_cbor(&self) -> Vec<u8> {
        to_cbor(self)
    }
}

/// `POST /v1/attest/credential` body (JSON, binary fields base64): asks for a credential
/// (`TPM2_MakeCredential`) for the AK, wrapped under the EK the certificate vouches for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialRequest {
    /// An outstanding nonce from `POST /v1/challenge` (32 bytes, hex); not consumed here, the
    /// following `POST /v1/attest` consumes it.
    pub nonce: String,
    /// The TPM's EK certificate, DER, base64 (standard alphabet, padded).
    pub ek_cert: String,
    /// The EK's marshalled `TPMT_PUBLIC`, base64.
    pub ek_public: String,
    /// The AK's marshalled `TPMT_PUBLIC` (the one the quote will present), base64.
    pub ak_public: String,
}

/// `POST /v1/attest/credential` reply (JSON, base64): the input of `TPM2_ActivateCredential`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialResponse {
    /// `TPM2B_ID_OBJECT`, base64.
    pub credential_blob: String,
    /// `TPM2B_ENCRYPTED_SECRET`, base64.
    pub encrypted_secret: String,
}

/// Largest `POST /v1/attest/credential` body a verifier accepts.
pub const MAX_CREDENTIAL_BODY: usize = 64 * 1024;

/// `POST /v1/attest` success reply (CBOR).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttestResponse {
    /// COSE_Sign1 attestation result.
    #[serde(with = "serde_bytes")]
    pub result: Vec<u8>,
    /// Leaf certificate for the enclave TLS key (DER), issued by the verifier CA.
    #[serde(with = "serde_bytes")]
    pub certificate: Vec<u8>,
    /// The verifier CA certificate (DER), for the chain the enclave presents.
    #[serde(with = "serde_bytes")]
    pub ca_certificate: Vec<u8>,
    /// The model key, HPKE-wrapped to `wrap_pk`.
    pub wrapped_key: WrappedKeyWire,
}

impl AttestResponse {
    /// Decodes a `POST /v1/attest` reply: one CBOR item, nothing after it, at most
    /// [`MAX_ATTEST_REPLY`] bytes.
    pub fn from_cbor(bytes: &[u8]) -> Result<Self, CborError> {
        from_cbor(bytes, MAX_ATTEST_REPLY)
    }

    /// The CBOR body.
    pub fn to_cbor(&self) -> Vec<u8> {
        to_cbor(self)
    }
}

/// An HPKE-wrapped model key on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrappedKeyWire {
    pub key_id: String,
    /// HPKE encapsulated key.
    #[serde(with = "serde_bytes")]
    pub enc: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub ciphertext: Vec<u8>,
}

/// `POST /v1/attestation` on the enclave: a client's fresh nonce.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionAttestationRequest {
    /// 32 bytes, hex.
    pub nonce: String,
}

/// `POST /v1/attestation` reply: evidence with purpose `session` over this connection's exporter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionAttestationResponse {
    /// CBOR evidence, base64 (standard alphabet, padded).
    pub evidence: String,
    /// The model digest the binding used (BLAKE3-256, hex).
    pub model_digest: Blake3Digest,
    /// How the enclave confined itself after unsealing (absent when it did not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lockdown: Option<LockdownStatus>,
}

/// How an enclave confined itself once its model was unsealed in memory (no new privileges,
/// Landlock, a seccomp filter; see `confidant-sandbox`), and what its own checks saw. Reported by
/// the enclave's code, which the attestation measured, over the attested channel (in
/// [`SessionAttestationResponse::lockdown`] and `GET /healthz`); it is not part of the hardware
/// evidence. Absent when the enclave runs without lockdown (embedded in another program).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockdownStatus {
    /// Every thread has `no_new_privs` set.
    pub no_new_privs: bool,
    /// The seccomp filter.
    pub seccomp: Confinement,
    /// Landlock.
    pub landlock: Confinement,
    /// The kernel's Landlock ABI version (0: none).
    pub landlock_abi: u32,
    /// Threads of the process at lockdown.
    pub threads: u32,
    /// Threads Landlock confines.
    pub landlock_threads: u32,
    /// Opening a file for writing and creating one both failed after lockdown.
    pub fs_writes_denied: bool,
    /// Reading the sealed model failed with "permission denied" after lockdown.
    pub fs_reads_confined: bool,
    /// Starting a program failed after lockdown.
    pub exec_denied: bool,
}

/// How far one confinement mechanism is in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Confinement {
    /// On every thread, with every requested restriction.
    Enforced,
    /// Not on every thread, or without some restriction (an older kernel).
    Partial,
    /// The kernel does not offer it.
    Unsupported,
    /// The kernel offers it, but applying it failed.
    Failed,
}
