//! One audit-log entry and its canonical encoding.
//!
//! The canonical bytes of an entry are its compact JSON (`serde_json`, fields in declaration
//! order, lowercase hex, absent values as `null`). A line read back is accepted only if it
//! re-encodes to exactly the same bytes, so every entry has one encoding, and hashes are always
//! computed over the bytes read, never over a re-encoding.

use serde::{Deserialize, Serialize};

/// A 32-byte hash.
pub type Hash = [u8; 32];

/// Longest accepted canonical entry, in bytes.
pub const MAX_ENTRY_LEN: usize = 16 * 1024;
/// Longest accepted identifier or reason code.
pub const MAX_TEXT_LEN: usize = 128;
/// Longest accepted measurement (SNP: 48 bytes; TPM PCR digest: up to 64).
pub const MAX_MEASUREMENT_LEN: usize = 64;

/// The verifier's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Decision {
    Accept,
    Refuse,
}

/// The kind of TEE that produced the evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tee {
    SevSnp,
    Tpm,
}

/// What the verifier decided about one attestation, before it is placed in the log. Holds
/// digests and claims only: never prompts, keys or raw evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// Unix time of the decision, seconds.
    pub time: u64,
    pub decision: Decision,
    /// Stable reason code; required for refusals.
    pub reason: Option<String>,
    /// The challenge nonce the evidence answered.
    pub nonce: [u8; 32],
    /// SHA-256 of the evidence bytes as received.
    pub evidence_digest: Hash,
    pub tee: Option<Tee>,
    pub measurement: Option<Vec<u8>>,
    /// SEV-SNP `TCB_VERSION` as the raw 64-bit value; none for TPM.
    pub tcb: Option<u64>,
    pub policy_id: Option<String>,
    pub policy_version: Option<u64>,
    pub model_id: Option<String>,
    /// SHA-256 of the signed attestation result, when one was issued.
    pub result_digest: Option<Hash>,
    /// Id of the model key released, if any.
    pub key_id: Option<String>,
    /// Evidence chained to a development root.
    pub dev: bool,
}

/// One log entry: an [`AuditEvent`] placed at `seq`, chained to the previous entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditEntry {
    /// Position in the log, from 0; equals the Merkle leaf index.
    pub seq: u64,
    pub time: u64,
    /// [`leaf_hash`] of the previous entry's canonical bytes; zero for entry 0.
    #[serde(with = "hex32")]
    pub prev_hash: Hash,
    pub decision: Decision,
    pub reason: Option<String>,
    #[serde(with = "hex32")]
    pub nonce: [u8; 32],
    #[serde(with = "hex32")]
    pub evidence_digest: Hash,
    pub tee: Option<Tee>,
    #[serde(with = "hex_opt")]
    pub measurement: Option<Vec<u8>>,
    pub tcb: Option<u64>,
    pub policy_id: Option<String>,
    pub policy_version: Option<u64>,
    pub model_id: Option<String>,
    #[serde(with = "hex32_opt")]
    pub result_digest: Option<Hash>,
    pub key_id: Option<String>,
    pub dev: bool,
}

/// Why an entry is not valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    #[error("entry is not valid JSON for an audit entry")]
    Json,
    #[error("entry is not in canonical form")]
    NotCanonical,
    #[error("entry is too long")]
    TooLong,
    #[error("a text field is empty, too long or has control characters")]
    BadText,
    #[error("measurement is too long")]
    BadMeasurement,
    #[error("a refusal must carry a reason code")]
    MissingReason,
}

impl AuditEvent {
    /// Places the event at `seq` after the entry whose leaf hash is `prev_hash`.
    pub fn into_entry(self, seq: u64, prev_hash: Hash) -> AuditEntry {
        AuditEntry {
            seq,
            time: self.time,
            prev_hash,
            decision: self.decision,
            reason: self.reason,
            nonce: self.nonce,
            evidence_digest: self.evidence_digest,
            tee: self.tee,
            measurement: self.measurement,
            tcb: self.tcb,
            policy_id: self.policy_id,
            policy_version: self.policy_version,
            model_id: self.model_id,
            result_digest: self.result_digest,
            key_id: self.key_id,
            dev: self.dev,
        }
    }
}

impl AuditEntry {
    /// Checks field bounds and the decision rules.
    pub fn validate(&self) -> Result<(), EntryError> {
        let texts = [&self.reason, &self.policy_id, &self.model_id, &self.key_id];
        if texts.into_iter().flatten().any(|t| !text_ok(t)) {
            return Err(EntryError::BadText);
        }
        if self
            .measurement
            .as_ref()
            .is_some_and(|m| m.len() > MAX_MEASUREMENT_LEN)
        {
            return Err(EntryError::BadMeasurement);
        }
        if self.decision == Decision::Refuse && self.reason.is_none() {
            return Err(EntryError::MissingReason);
        }
        Ok(())
    }

    /// The canonical bytes (no trailing newline). Validates first.
    pub fn to_canonical(&self) -> Result<Vec<u8>, EntryError> {
        self.validate()?;
        let bytes = serde_json::to_vec(self).map_err(|_| EntryError::Json)?;
        if bytes.len() > MAX_ENTRY_LEN {
            return Err(EntryError::TooLong);
        }
        Ok(bytes)
    }

    /// Parses canonical bytes, rejecting anything that does not re-encode identically.
    pub fn from_canonical(bytes: &[u8]) -> Result<Self, EntryError> {
        if bytes.len() > MAX_ENTRY_LEN {
            return Err(EntryError::TooLong);
        }
        let entry: AuditEntry = serde_json::from_slice(bytes).map_err(|_| EntryError::Json)?;
        if entry.to_canonical()? != bytes {
            return Err(EntryError::NotCanonical);
        }
        Ok(entry)
    }
}

fn text_ok(t: &str) -> bool {
    !t.is_empty() && t.len() <= MAX_TEXT_LEN && !t.chars().any(char::is_control)
}

/// RFC 9162 §2.1.1 leaf hash: `SHA-256(0x00 ‖ canonical entry bytes)`.
pub fn leaf_hash(canonical: &[u8]) -> Hash {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(&[0x00]);
    ctx.update(canonical);
    to_hash(ctx.finish())
}

/// RFC 9162 §2.1.1 interior node hash: `SHA-256(0x01 ‖ left ‖ right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(&[0x01]);
    ctx.update(left);
    ctx.update(right);
    to_hash(ctx.finish())
}

/// The root of the empty tree: `SHA-256("")`.
pub fn empty_root() -> Hash {
    to_hash(ring::digest::digest(&ring::digest::SHA256, b""))
}

fn to_hash(d: ring::digest::Digest) -> Hash {
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

pub(crate) mod hex32 {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(v: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = <&str>::deserialize(d)?;
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(D::Error::custom)?;
        Ok(out)
    }
}

mod hex32_opt {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(v: &Option<[u8; 32]>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_str(&hex::encode(v)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<[u8; 32]>, D::Error> {
        let Some(s) = Option::<&str>::deserialize(d)? else {
            return Ok(None);
        };
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(D::Error::custom)?;
        Ok(Some(out))
    }
}

mod hex_opt {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_str(&hex::encode(v)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        let Some(s) = Option::<&str>::deserialize(d)? else {
            return Ok(None);
        };
        if s.len() > 2 * super::MAX_MEASUREMENT_LEN {
            return Err(D::Error::custom("measurement too long"));
        }
        hex::decode(s).map(Some).map_err(D::Error::custom)
    }
}
