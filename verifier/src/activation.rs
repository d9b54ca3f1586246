//! TPM credential activation (`POST /v1/attest/credential`): AK trust through the EK.
//!
//! An enclave whose AK is not enrolled in the policy by fingerprint may prove that its AK lives
//! in a TPM whose EK certificate chains to one of the policy's `trust.tpm_ek_ca_certs`: it sends
//! the EK certificate, the EK's and the AK's `TPMT_PUBLIC` with an outstanding challenge nonce;
//! the verifier answers a credential (`TPM2_MakeCredential` in software) for a fresh secret,
//! bound to the AK's Name, and remembers it under the nonce. The `POST /v1/attest` that consumes
//! the nonce must carry the secret `TPM2_ActivateCredential` recovered; then, and only for that
//! appraisal, the AK is trusted (see [`crate::appraise::decide`]).
//!
//! Pending activations live in a bounded in-memory map keyed by nonce; an entry is dropped when
//! its nonce is consumed (whatever the outcome) or has expired.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::http::StatusCode;
use confidant_attestation::tpm::credential::{
    AkChallengeError, CredentialError, PendingActivation,
};
use confidant_attestation::tpm::ekcert::EkCertError;
use confidant_service::ApiError;

use crate::nonce::{NONCE_LEN, NonceError};

/// Why a credential was not issued. Each variant has one stable code (wire and audit log).
#[derive(Debug)]
pub enum CredentialRefusal {
    /// The nonce is not outstanding (never issued, consumed, or expired).
    Nonce(NonceError),
    /// A request field is malformed.
    Malformed(&'static str),
    /// The EK certificate, EK or AK was refused.
    Challenge(AkChallengeError),
    /// A credential was already issued for this nonce.
    AlreadyIssued,
    /// Too many pending activations; retry shortly.
    Busy,
    /// Logging or encryption failed.
    Internal(String),
}

impl CredentialRefusal {
    /// The stable reason code.
    pub fn code(&self) -> &'static str {
        use AkChallengeError as A;
        match self {
            CredentialRefusal::Nonce(NonceError::Replayed) => "nonce_replayed",
            CredentialRefusal::Nonce(NonceError::Expired) => "nonce_expired",
            CredentialRefusal::Nonce(_) => "nonce_unknown",
            CredentialRefusal::Malformed(_) => "malformed_request",
            CredentialRefusal::Challenge(A::EkCert(EkCertError::KeyMismatch)) => "ek_key_mismatch",
            CredentialRefusal::Challenge(A::EkCert(EkCertError::Malformed(_))) => {
                "ek_cert_malformed"
            }
            CredentialRefusal::Challenge(A::EkCert(_)) => "ek_cert_untrusted",
            CredentialRefusal::Challenge(
                A::Ek(_)
                | A::Credential(
                    CredentialError::UnsupportedEk | CredentialError::UnsupportedEkParameters,
                ),
            ) => "ek_unsupported",
            CredentialRefusal::Challenge(A::Ak(_) | A::AkNotRestrictedSigning) => "ak_unsupported",
            CredentialRefusal::Challenge(A::Credential(_)) | CredentialRefusal::Internal(_) => {
                "internal_error"
            }
            CredentialRefusal::AlreadyIssued => "credential_already_issued",
            CredentialRefusal::Busy => "too_many_activations",
        }
    }

    /// What failed, for the verifier's own log (public values only).
    pub fn detail(&self) -> String {
        match self {
            CredentialRefusal::Challenge(e) => e.to_string(),
            CredentialRefusal::Nonce(e) => e.to_string(),
            CredentialRefusal::Malformed(m) => (*m).to_owned(),
            CredentialRefusal::Internal(d) => d.clone(),
            CredentialRefusal::AlreadyIssued => "a credential was already issued".to_owned(),
            CredentialRefusal::Busy => "pending activation store full".to_owned(),
        }
    }

    /// Whether the refusal is worth an audit entry (a decision about a TPM, not overload).
    pub fn is_decision(&self) -> bool {
        !matches!(
            self,
            CredentialRefusal::Busy | CredentialRefusal::Internal(_)
        )
    }
}

impl From<CredentialRefusal> for ApiError {
    fn from(r: CredentialRefusal) -> Self {
        let code = r.code();
        match r {
            CredentialRefusal::Malformed(m) => ApiError::bad_request(code, m),
            CredentialRefusal::Nonce(_) => ApiError::new(
                StatusCode::FORBIDDEN,
                code,
                "the nonce is unknown, used or expired; request a new challenge",
            ),
            CredentialRefusal::AlreadyIssued => ApiError::new(
                StatusCode::CONFLICT,
                code,
                "a credential was already issued for this nonce",
            ),
            CredentialRefusal::Busy => {
                ApiError::unavailable(code, "too many pending activations; retry shortly")
            }
            CredentialRefusal::Challenge(AkChallengeError::Credential(
                CredentialError::Encrypt
                | CredentialError::BadSecretLength
                | CredentialError::Tpm(_),
            ))
            | CredentialRefusal::Internal(_) => ApiError::internal(r.detail()),
            CredentialRefusal::Challenge(_) => ApiError::new(
                StatusCode::FORBIDDEN,
                code,
                "the TPM's endorsement or attestation key was refused",
            ),
        }
    }
}

/// Pending activations by nonce, bounded.
#[derive(Debug)]
pub struct ActivationStore {
    capacity: usize,
    entries: Mutex<HashMap<[u8; NONCE_LEN], (PendingActivation, u64)>>,
}

impl ActivationStore {
    /// A store holding at most `capacity` pending activations.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Remembers `pending` for `nonce` until `expires_ms` (the nonce's expiry). One credential
    /// per nonce.
    pub fn insert(
        &self,
        nonce: [u8; NONCE_LEN],
        pending: PendingActivation,
        expires_ms: u64,
        now_ms: u64,
    ) -> Result<(), CredentialRefusal> {
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, (_, exp)| *exp > now_ms);
        if map.contains_key(&nonce) {
            return Err(CredentialRefusal::AlreadyIssued);
        }
        if map.len() >= self.capacity {
            return Err(CredentialRefusal::Busy);
        }
        map.insert(nonce, (pending, expires_ms));
        Ok(())
    }

    /// Removes and returns the pending activation for `nonce` (called when the nonce is
    /// consumed, whatever the outcome), if it has not expired.
    pub fn take(&self, nonce: &[u8], now_ms: u64) -> Option<PendingActivation> {
        let nonce: [u8; NONCE_LEN] = nonce.try_into().ok()?;
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let (pending, exp) = map.remove(&nonce)?;
        (exp > now_ms).then_some(pending)
    }

    /// Number of pending activations (tests and metrics).
    pub fn len(&self) -> usize {
        self.entries.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// True when none is pending.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
