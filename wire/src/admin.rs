//! The verifier's admin, auditor and key-document replies, typed for both ends: the verifier
//! serializes these, `confidant` deserializes them (unknown fields refused).

use serde::{Deserialize, Serialize};

use confidant_attestation::audit::AuditEntry;
use confidant_attestation::result::Jwk;

/// `PUT /v1/admin/policy` and `POST /v1/admin/measurements/revoke`: the policy now in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyVersion {
    pub id: String,
    pub version: u64,
}

/// `GET /v1/audit?from=N&limit=M`: entries `from..`, and the log's size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditEntries {
    pub from: u64,
    pub size: u64,
    pub entries: Vec<AuditEntry>,
}

/// `GET /v1/audit/checkpoint`: a signed checkpoint of the log as it is now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditCheckpoint {
    /// The signed checkpoint, in its text encoding.
    pub checkpoint: String,
    /// The checkpoint key: the uncompressed SEC1 P-256 point, hex.
    pub public_key: String,
}

/// `GET /v1/audit/proof/inclusion?index=I[&size=N]`: the hashes proving entry `index` is in the
/// tree of `size` entries (RFC 9162 §2.1.3), hex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InclusionProof {
    pub index: u64,
    pub size: u64,
    pub proof: Vec<String>,
}

/// `GET /v1/audit/proof/consistency?from=M[&to=N]`: the hashes proving the tree of `to` entries
/// extends the tree of `from` entries (RFC 9162 §2.1.4), hex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyProof {
    pub from: u64,
    pub to: u64,
    pub proof: Vec<String>,
}

/// Where a model key is in its life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyStatus {
    /// Released by default for its model.
    Active,
    /// Superseded by rotation; released only when asked for by id.
    Retired,
    /// Never released again; its ciphertext is erased.
    Revoked,
}

/// What is known about a model key, without its material: the reply of the admin key routes
/// (import, rotate, revoke) and an element of the key list. (Unknown fields are tolerated: the
/// verifier's key store flattens it into its records.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInfo {
    pub key_id: String,
    pub model_id: String,
    /// BLAKE3-256 of the plaintext model bundle (the sealed header's model digest), hex.
    pub model_digest: String,
    pub status: KeyStatus,
    /// Unix seconds.
    pub created_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<u64>,
}

/// `GET /v1/keys` (and the `public-keys.json` that `confidant-verifier init` writes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicKeys {
    /// The result-signing key as a JWK Set (one key).
    pub keys: Vec<Jwk>,
    /// The same key as a base64 CBOR COSE_Key.
    pub cose_keys: Vec<String>,
    /// The audit checkpoint key: the uncompressed SEC1 P-256 point, hex.
    pub audit_checkpoint_key: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_round_trip_and_refuse_unknown_fields() {
        let cp = AuditCheckpoint {
            checkpoint: "origin\n1\nAAAA\n".into(),
            public_key: "04ab".into(),
        };
        let text = serde_json::to_string(&cp).unwrap();
        assert_eq!(serde_json::from_str::<AuditCheckpoint>(&text).unwrap(), cp);
        assert!(
            serde_json::from_str::<AuditCheckpoint>(
                r#"{"checkpoint": "x", "public_key": "04", "extra": 1}"#
            )
            .is_err()
        );
        let v = PolicyVersion {
            id: "p".into(),
            version: 3,
        };
        assert_eq!(
            serde_json::to_value(&v).unwrap(),
            serde_json::json!({"id": "p", "version": 3})
        );
        assert!(serde_json::from_str::<PublicKeys>(r#"{"keys": []}"#).is_err());
    }
}
