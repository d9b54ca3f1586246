//! Evidence as it travels between programs (DESIGN.md "Evidence"), CBOR-encoded, and the one gate
//! untrusted evidence bytes enter through: [`ReceivedEvidence::decode`].
//!
//! The public types carry no serde implementation, so no other type can embed them and decode them
//! with a derived, lenient decoder (a request body, a certificate extension): whoever holds
//! evidence bytes from outside calls [`ReceivedEvidence::decode`], which bounds the size, decodes,
//! and refuses anything that is not the canonical encoding of what it decoded. The evidence digest
//! is SHA-256 over the bytes as received ([`evidence_digest`]), never over a re-encoding.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::policy::TeeKind;

/// Evidence from one TEE. The bytes inside are exactly the bytes the hardware produced; verification
/// always runs over them, never over a re-encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Evidence {
    SevSnp(SnpEvidence),
    Tpm(TpmEvidence),
}

/// An SEV-SNP attestation report and the certificate that signed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnpEvidence {
    /// The raw attestation report (AMD SEV-SNP ABI, table "ATTESTATION_REPORT"), 1184 bytes.
    pub report: Vec<u8>,
    /// The VCEK or VLEK certificate, DER.
    pub signer_cert: Vec<u8>,
    /// Optional intermediate and root (ASK or ASVK, then ARK), DER. When absent, the pinned AMD
    /// certificates are used. Supplied ones are accepted only if byte-identical to pinned ones.
    pub chain: Option<Vec<serde_bytes::ByteBuf>>,
}

/// A TPM 2.0 quote and what is needed to check it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TpmEvidence {
    /// Marshalled `TPMS_ATTEST` (TPM 2.0 Part 2, 10.12.12), exactly as the TPM signed it.
    pub quote: Vec<u8>,
    /// Marshalled `TPMT_SIGNATURE` (Part 2, 11.3.4).
    pub signature: Vec<u8>,
    /// Marshalled `TPMT_PUBLIC` of the attestation key (Part 2, 12.2.4), without the TPM2B size.
    pub ak_public: Vec<u8>,
    /// SHA-256 PCR bank values, by PCR index, for the PCRs the quote selects.
    pub pcrs: BTreeMap<u8, serde_bytes::ByteBuf>,
    /// Optional TCG event log (`binary_bios_measurements`); when present, verification replays it
    /// against the quoted PCRs (`tpm::eventlog`).
    pub event_log: Option<serde_bytes::ByteBuf>,
}

/// The CBOR shape of [`Evidence`], private to this module: the only serde implementation of
/// evidence, used by [`Evidence::to_cbor`] and [`ReceivedEvidence::decode`] alone.
mod cbor {
    use super::*;

    #[derive(Serialize, Deserialize)]
    #[serde(remote = "Evidence", tag = "tee", rename_all = "kebab-case")]
    pub(super) enum EvidenceDef {
        SevSnp(#[serde(with = "SnpEvidenceDef")] SnpEvidence),
        Tpm(#[serde(with = "TpmEvidenceDef")] TpmEvidence),
    }

    #[derive(Serialize, Deserialize)]
    #[serde(remote = "SnpEvidence")]
    struct SnpEvidenceDef {
        #[serde(with = "serde_bytes")]
        report: Vec<u8>,
        #[serde(with = "serde_bytes")]
        signer_cert: Vec<u8>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        chain: Option<Vec<serde_bytes::ByteBuf>>,
    }

    #[derive(Serialize, Deserialize)]
    #[serde(remote = "TpmEvidence")]
    struct TpmEvidenceDef {
        #[serde(with = "serde_bytes")]
        quote: Vec<u8>,
        #[serde(with = "serde_bytes")]
        signature: Vec<u8>,
        #[serde(with = "serde_bytes")]
        ak_public: Vec<u8>,
        pcrs: BTreeMap<u8, serde_bytes::ByteBuf>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event_log: Option<serde_bytes::ByteBuf>,
    }

    /// Serialises through the private shape.
    pub(super) struct Out<'a>(pub(super) &'a Evidence);

    impl Serialize for Out<'_> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            EvidenceDef::serialize(self.0, s)
        }
    }

    /// Deserialises through the private shape.
    pub(super) struct In(pub(super) Evidence);

    impl<'de> Deserialize<'de> for In {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            EvidenceDef::deserialize(d).map(In)
        }
    }
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
    /// The bytes decode, but are not the canonical encoding of what they decode to (unknown
    /// fields, duplicate map keys, byte strings written as arrays, non-minimal lengths…). Refused
    /// so that one evidence value has exactly one encoding.
    #[error("evidence is not in canonical CBOR form")]
    NonCanonical,
}

impl Evidence {
    /// Canonical CBOR encoding (what producers send).
    pub fn to_cbor(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // Writing into a Vec cannot fail for these plain data types.
        if ciborium::into_writer(&cbor::Out(self), &mut out).is_err() {
            out.clear();
        }
        out
    }

    /// Which TEE produced it.
    pub fn tee(&self) -> TeeKind {
        match self {
            Evidence::SevSnp(_) => TeeKind::SevSnp,
            Evidence::Tpm(_) => TeeKind::Tpm,
        }
    }
}

/// SHA-256 of evidence bytes as received: the evidence digest results and the audit log record.
pub fn evidence_digest(received: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, received);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Evidence as received from outside: the exact bytes, what they canonically decode to, and the
/// SHA-256 of the bytes. Only [`ReceivedEvidence::decode`] makes one, and
/// [`crate::verify::verify_evidence`] takes nothing else.
#[derive(Debug)]
pub struct ReceivedEvidence {
    bytes: Vec<u8>,
    evidence: Evidence,
    digest: [u8; 32],
}

impl ReceivedEvidence {
    /// Decodes untrusted CBOR, bounded in size, canonical form only; never panics.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() > MAX_EVIDENCE_CBOR {
            return Err(DecodeError::TooLarge(bytes.len()));
        }
        let mut reader = bytes;
        let cbor::In(evidence) = ciborium::de::from_reader(&mut reader)
            .map_err(|e| DecodeError::Malformed(short_cbor_error(&e)))?;
        if !reader.is_empty() {
            return Err(DecodeError::Trailing);
        }
        if evidence.to_cbor() != bytes {
            return Err(DecodeError::NonCanonical);
        }
        Ok(ReceivedEvidence {
            bytes: bytes.to_vec(),
            evidence,
            digest: evidence_digest(bytes),
        })
    }

    /// What the bytes decode to.
    pub fn evidence(&self) -> &Evidence {
        &self.evidence
    }

    /// The bytes exactly as received.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// SHA-256 of [`ReceivedEvidence::bytes`].
    pub fn digest(&self) -> &[u8; 32] {
        &self.digest
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

#[cfg(test)]
mod tests {
    use ciborium::value::Value;
    use serde_bytes::ByteBuf;

    use super::*;

    /// The gate, returning the decoded value (what these tests compare).
    fn decode(bytes: &[u8]) -> Result<Evidence, DecodeError> {
        ReceivedEvidence::decode(bytes).map(|r| {
            assert_eq!(r.bytes(), bytes);
            assert_eq!(r.digest(), &evidence_digest(bytes));
            r.evidence
        })
    }

    fn snp(chain: Option<Vec<ByteBuf>>) -> Evidence {
        Evidence::SevSnp(SnpEvidence {
            report: (0..=255u8).cycle().take(1184).collect(),
            signer_cert: vec![0x30, 0x82, 1, 2],
            chain,
        })
    }

    fn tpm(event_log: Option<ByteBuf>) -> Evidence {
        Evidence::Tpm(TpmEvidence {
            quote: vec![0xFF, 0x54, 0x43, 0x47],
            signature: vec![0; 262],
            ak_public: vec![0, 1],
            pcrs: BTreeMap::from([
                (0, ByteBuf::from(vec![0u8; 32])),
                (7, ByteBuf::from(vec![7u8; 32])),
                (23, ByteBuf::from(vec![23u8; 32])),
            ]),
            event_log,
        })
    }

    fn all() -> Vec<Evidence> {
        vec![
            snp(None),
            snp(Some(vec![
                ByteBuf::from(vec![1u8; 10]),
                ByteBuf::from(vec![2u8; 20]),
            ])),
            snp(Some(vec![])),
            tpm(None),
            tpm(Some(ByteBuf::from(vec![9u8; 100]))),
            Evidence::Tpm(TpmEvidence {
                quote: vec![],
                signature: vec![],
                ak_public: vec![],
                pcrs: BTreeMap::new(),
                event_log: None,
            }),
        ]
    }

    fn value(ev: &Evidence) -> Vec<(Value, Value)> {
        let v: Value = ciborium::from_reader(ev.to_cbor().as_slice()).unwrap_or(Value::Null);
        v.into_map().unwrap()
    }

    fn encode(v: Vec<(Value, Value)>) -> Vec<u8> {
        let mut out = Vec::new();
        ciborium::into_writer(&Value::Map(v), &mut out).unwrap();
        out
    }

    #[test]
    fn roundtrip() {
        for ev in all() {
            let bytes = ev.to_cbor();
            assert!(!bytes.is_empty());
            assert_eq!(decode(&bytes).unwrap(), ev);
            assert_eq!(ev.to_cbor(), bytes, "encoding is deterministic");
        }
    }

    #[test]
    fn wire_shape_is_tagged_with_byte_strings() {
        let m = value(&snp(None));
        assert_eq!(
            m[0],
            (Value::Text("tee".into()), Value::Text("sev-snp".into()))
        );
        assert!(
            matches!(&m[1], (Value::Text(k), Value::Bytes(b)) if k == "report" && b.len() == 1184)
        );
        assert!(
            !m.iter().any(|(k, _)| k.as_text() == Some("chain")),
            "absent chain is omitted"
        );
        let m = value(&tpm(None));
        assert_eq!(m[0].1, Value::Text("tpm".into()));
    }

    #[test]
    fn trailing_and_truncated_bytes_are_refused() {
        let mut bytes = tpm(None).to_cbor();
        bytes.push(0);
        assert!(matches!(decode(&bytes), Err(DecodeError::Trailing)));
        bytes.pop();
        for n in 0..bytes.len() {
            assert!(
                matches!(decode(&bytes[..n]), Err(DecodeError::Malformed(_))),
                "{n}"
            );
        }
    }

    #[test]
    fn size_is_bounded() {
        let big = vec![0u8; MAX_EVIDENCE_CBOR + 1];
        assert!(matches!(decode(&big), Err(DecodeError::TooLarge(n)) if n == big.len()));
    }

    #[test]
    fn unknown_tee_and_missing_fields_are_malformed() {
        let mut m = value(&snp(None));
        m[0].1 = Value::Text("sgx".into());
        assert!(matches!(decode(&encode(m)), Err(DecodeError::Malformed(_))));
        let mut m = value(&snp(None));
        m.retain(|(k, _)| k.as_text() != Some("signer_cert"));
        assert!(matches!(decode(&encode(m)), Err(DecodeError::Malformed(_))));
        let mut m = value(&tpm(None));
        m.retain(|(k, _)| k.as_text() != Some("tee"));
        assert!(matches!(decode(&encode(m)), Err(DecodeError::Malformed(_))));
    }

    /// Regression: these decoded before and were silently normalised, so different received
    /// bytes had the same `evidence_digest`.
    #[test]
    fn non_canonical_encodings_are_refused() {
        // An unknown field.
        let mut m = value(&snp(None));
        m.push((Value::Text("extra".into()), Value::Integer(1.into())));
        assert!(matches!(decode(&encode(m)), Err(DecodeError::NonCanonical)));
        // A byte string written as an array of integers.
        let mut m = value(&snp(None));
        m[2].1 = Value::Array(vec![Value::Integer(0x30.into())]);
        assert!(matches!(decode(&encode(m)), Err(DecodeError::NonCanonical)));
        // A duplicate PCR index (last would win).
        let mut m = value(&tpm(None));
        for (k, v) in m.iter_mut() {
            if k.as_text() == Some("pcrs")
                && let Value::Map(p) = v
            {
                p.push((Value::Integer(0.into()), Value::Bytes(vec![1u8; 32])));
            }
        }
        assert!(matches!(decode(&encode(m)), Err(DecodeError::NonCanonical)));
        // An explicit null for an optional field.
        let mut m = value(&snp(None));
        m.push((Value::Text("chain".into()), Value::Null));
        assert!(matches!(decode(&encode(m)), Err(DecodeError::NonCanonical)));
        // Fields in another order.
        let mut m = value(&tpm(None));
        m.swap(1, 2);
        assert!(matches!(decode(&encode(m)), Err(DecodeError::NonCanonical)));
    }

    #[test]
    fn duplicate_fields_are_refused() {
        let mut m = value(&snp(None));
        m.push((Value::Text("report".into()), Value::Bytes(vec![1])));
        assert!(decode(&encode(m)).is_err());
    }

    #[test]
    fn pcr_index_out_of_range_is_malformed() {
        let mut m = value(&tpm(None));
        for (k, v) in m.iter_mut() {
            if k.as_text() == Some("pcrs") {
                *v = Value::Map(vec![(
                    Value::Integer(256.into()),
                    Value::Bytes(vec![0u8; 32]),
                )]);
            }
        }
        assert!(matches!(decode(&encode(m)), Err(DecodeError::Malformed(_))));
    }
}
