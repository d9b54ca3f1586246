//! One entry point for evidence verification, dispatching by TEE (one module per TEE behind one
//! shape: `verify(evidence, anchors) -> Verified…`), and the type states that follow it.

use serde::Serialize;

use crate::binding::Binding;
use crate::evidence::Evidence;
use crate::snp::{self, SnpTrustRoots, VerifiedSnpReport};
use crate::tpm::{self, TpmTrustAnchors, VerifiedTpmQuote};

/// Everything verification trusts. There is no default: an empty set verifies nothing.
#[derive(Debug, Clone, Default)]
pub struct TrustAnchors {
    pub snp: SnpTrustRoots,
    pub tpm: TpmTrustAnchors,
}

/// Why evidence failed cryptographic verification.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("SEV-SNP evidence rejected")]
    Snp(#[from] snp::SnpError),
    #[error("TPM quote rejected")]
    Tpm(#[from] tpm::TpmError),
}

/// Why verified evidence is not bound to what the caller expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BindingError {
    #[error(
        "report_data does not equal the expected binding (evidence for another key, nonce or session)"
    )]
    Mismatch,
}

/// Evidence whose signature and endorsement chain checked out. Only [`verify_evidence`] makes one.
#[derive(Debug, Clone)]
pub struct VerifiedEvidence {
    kind: VerifiedKind,
    digest: [u8; 32],
}

/// The per-TEE verified value.
#[derive(Debug, Clone)]
pub enum VerifiedKind {
    SevSnp(VerifiedSnpReport),
    Tpm(VerifiedTpmQuote),
}

/// Verifies evidence cryptographically (signature, endorsement chain, structure). Does not look at
/// the binding or at reference values: see [`VerifiedEvidence::bind`] and the policy module.
pub fn verify_evidence(
    evidence: &Evidence,
    anchors: &TrustAnchors,
) -> Result<VerifiedEvidence, VerifyError> {
    let kind = match evidence {
        Evidence::SevSnp(ev) => VerifiedKind::SevSnp(snp::verify_report(ev, &anchors.snp)?),
        Evidence::Tpm(ev) => VerifiedKind::Tpm(tpm::verify_quote(ev, &anchors.tpm)?),
    };
    Ok(VerifiedEvidence {
        kind,
        digest: evidence_digest(evidence),
    })
}

/// SHA-256 over the canonical CBOR encoding of the evidence, as recorded in results and the audit
/// log.
pub fn evidence_digest(evidence: &Evidence) -> [u8; 32] {
    let bytes = evidence.to_cbor();
    let d = ring::digest::digest(&ring::digest::SHA256, &bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

impl VerifiedEvidence {
    /// The per-TEE verified value.
    pub fn kind(&self) -> &VerifiedKind {
        &self.kind
    }

    /// SHA-256 of the evidence's CBOR encoding.
    pub fn digest(&self) -> &[u8; 32] {
        &self.digest
    }

    /// True when the evidence chained to a development root (simulated attester).
    pub fn is_dev(&self) -> bool {
        match &self.kind {
            VerifiedKind::SevSnp(r) => r.is_dev(),
            VerifiedKind::Tpm(_) => false,
        }
    }

    /// The bytes the evidence carries as its binding (`report_data` or `extraData`).
    pub fn report_data(&self) -> &[u8] {
        match &self.kind {
            VerifiedKind::SevSnp(r) => &r.report().report_data,
            VerifiedKind::Tpm(q) => q.qualifying_data(),
        }
    }

    /// Checks the evidence carries exactly `expected`. The binding is a mandatory parameter: there
    /// is no way to reach [`BoundEvidence`] without it.
    pub fn bind(self, expected: &Binding) -> Result<BoundEvidence, BindingError> {
        let (ok, carried) = match &self.kind {
            VerifiedKind::SevSnp(r) => (
                expected.matches(&r.report().report_data),
                expected.as_bytes().as_slice(),
            ),
            VerifiedKind::Tpm(q) => (
                expected.matches_tpm(q.qualifying_data()),
                expected.tpm_qualifying_data(),
            ),
        };
        if ok {
            let expected = carried.to_vec();
            Ok(BoundEvidence {
                verified: self,
                expected,
                protocol: true,
            })
        } else {
            Err(BindingError::Mismatch)
        }
    }

    /// Checks the evidence carries exactly `expected` as its `report_data` (SNP, 64 bytes) or
    /// `extraData` (TPM, any length the TPM accepted). For offline checks of evidence produced by
    /// other tools (for example a `tpm2_quote -q NONCE`); services use [`VerifiedEvidence::bind`].
    pub fn bind_exact(self, expected: &[u8]) -> Result<BoundEvidence, BindingError> {
        use subtle::ConstantTimeEq;
        let found = self.report_data();
        if found.len() == expected.len() && bool::from(found.ct_eq(expected)) {
            Ok(BoundEvidence {
                verified: self,
                expected: expected.to_vec(),
                protocol: false,
            })
        } else {
            Err(BindingError::Mismatch)
        }
    }

    /// A printable, serialisable summary of the verified claims.
    pub fn claims(&self) -> EvidenceClaims {
        match &self.kind {
            VerifiedKind::SevSnp(r) => EvidenceClaims::SevSnp(r.claims()),
            VerifiedKind::Tpm(q) => EvidenceClaims::Tpm(q.claims()),
        }
    }
}

/// Verified evidence that also carries the expected binding.
#[derive(Debug, Clone)]
pub struct BoundEvidence {
    verified: VerifiedEvidence,
    expected: Vec<u8>,
    /// True when bound by [`VerifiedEvidence::bind`] to a [`Binding`] computed from the protocol's
    /// inputs; false for [`VerifiedEvidence::bind_exact`] (offline checks of foreign evidence).
    protocol: bool,
}

impl BoundEvidence {
    pub fn verified(&self) -> &VerifiedEvidence {
        &self.verified
    }

    /// True only for evidence bound to a protocol [`Binding`] (key release, session). Services
    /// that release keys or issue certificates refuse anything else.
    pub fn is_protocol_binding(&self) -> bool {
        self.protocol
    }

    /// The binding bytes the evidence was checked against.
    pub fn expected_report_data(&self) -> &[u8] {
        &self.expected
    }
}

/// Verified claims as printed by `confidant evidence verify` and carried in results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "tee", rename_all = "kebab-case")]
pub enum EvidenceClaims {
    SevSnp(snp::SnpClaims),
    Tpm(tpm::TpmClaims),
}
