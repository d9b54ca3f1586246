//! Evidence as it travels between programs (DESIGN.md "Evidence"), CBOR-encoded with `ciborium`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Evidence from one TEE. The bytes inside are exactly the bytes the hardware produced; verification
/// always runs over them, never over a re-encoding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "tee", rename_all = "kebab-case")]
pub enum Evidence {
    SevSnp(SnpEvidence),
    Tpm(TpmEvidence),
}

/// An SEV-SNP attestation report and the certificate that signed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnpEvidence {
    /// The raw attestation report (AMD SEV-SNP ABI, table "ATTESTATION_REPORT"), 1184 bytes.
    #[serde(with = "serde_bytes")]
    pub report: Vec<u8>,
    /// The VCEK or VLEK certificate, DER.
    #[serde(with = "serde_bytes")]
    pub signer_cert: Vec<u8>,
    /// Optional intermediate and root (ASK or ASVK, then ARK), DER. When absent, the pinned AMD
    /// certificates are used. A supplied ARK is only accepted if it equals a trusted root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<Vec<serde_bytes::ByteBuf>>,
}

/// A TPM 2.0 quote and what is needed to check it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TpmEvidence {
    /// Marshalled `TPMS_ATTEST` (TPM 2.0 Part 2, 10.12.12), exactly as the TPM signed it.
    #[serde(with = "serde_bytes")]
    pub quote: Vec<u8>,
    /// Marshalled `TPMT_SIGNATURE` (Part 2, 11.3.4).
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
    /// Marshalled `TPMT_PUBLIC` of the attestation key (Part 2, 12.2.4), without the TPM2B size.
    #[serde(with = "serde_bytes")]
    pub ak_public: Vec<u8>,
    /// SHA-256 PCR bank values, by PCR index, for the PCRs the quote selects.
    pub pcrs: BTreeMap<u8, serde_bytes::ByteBuf>,
    /// Optional TCG event log (not yet replayed by the verifier).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_log: Option<serde_bytes::ByteBuf>,
}

/// Largest CBOR evidence accepted (an SNP report with a full chain is ~6 KiB; a TPM quote with an
/// event log can be larger).
pub const MAX_EVIDENCE_CBOR: usize = 256 * 1024;

/// Why evidence bytes could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("evidence is {0} bytes, over the {MAX_EVIDENCE_CBOR}-byte limit")]
    TooLarge(usize),
    #[error("evidence is not valid CBOR of the expected shape: {0}")]
    Malformed(String),
    #[error("trailing bytes after the evidence")]
    Trailing,
}

impl Evidence {
    /// Canonical CBOR encoding.
    pub fn to_cbor(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // Writing into a Vec cannot fail for these plain data types.
        if ciborium::into_writer(self, &mut out).is_err() {
            out.clear();
        }
        out
    }

    /// Decodes untrusted CBOR, bounded in size; never panics.
    pub fn from_cbor(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() > MAX_EVIDENCE_CBOR {
            return Err(DecodeError::TooLarge(bytes.len()));
        }
        let mut reader = bytes;
        let ev: Evidence = ciborium::de::from_reader(&mut reader)
            .map_err(|e| DecodeError::Malformed(short_cbor_error(&e)))?;
        if !reader.is_empty() {
            return Err(DecodeError::Trailing);
        }
        Ok(ev)
    }
}

fn short_cbor_error<T: std::fmt::Debug>(e: &ciborium::de::Error<T>) -> String {
    match e {
        ciborium::de::Error::Io(_) => "truncated".to_string(),
        ciborium::de::Error::Syntax(off) => format!("syntax error at byte {off}"),
        ciborium::de::Error::Semantic(off, msg) => match off {
            Some(o) => format!("{msg} at byte {o}"),
            None => msg.clone(),
        },
        ciborium::de::Error::RecursionLimitExceeded => "nested too deeply".to_string(),
    }
}
