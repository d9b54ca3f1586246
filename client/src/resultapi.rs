//! TEMPORARY shim until `confidant_attestation::result` lands.
#![allow(dead_code, missing_docs)]
use serde::Serialize;
use confidant_attestation::snp::TcbVersion;

pub const AUDIENCE_ENCLAVE: &str = "confidant-enclave";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Status { Affirming, Warning, Contraindicated }

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResultClaims {
    pub status: Status,
    pub measurement: Vec<u8>,
    pub tcb: Option<TcbVersion>,
    pub model_id: String,
    pub model_digest: [u8; 32],
    pub tls_spki_sha256: [u8; 32],
    pub evidence_digest: [u8; 32],
    pub dev: bool,
    pub iat: u64,
    pub exp: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ResultError {
    #[error("expired")]
    Expired { exp: u64, now: u64 },
    #[error("nyv")]
    NotYetValid { iat: u64, now: u64 },
    #[error("sig")]
    Signature,
}

#[derive(Debug, Clone)]
pub struct ResultVerifier;
#[derive(Debug, Clone)]
pub struct VerifiedResult(ResultClaims);
impl VerifiedResult { pub fn claims(&self) -> &ResultClaims { &self.0 } }
impl ResultVerifier {
    pub fn verify(&self, _b: &[u8], _aud: &str, _now: u64) -> Result<VerifiedResult, ResultError> { Err(ResultError::Signature) }
}
