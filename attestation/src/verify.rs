//! One entry point for evidence verification, and the type states that follow it:
//!
//! ```text
//! ReceivedEvidence ──verify_evidence(anchors, now)──▶ VerifiedEvidence
//!     ──bind(Binding<I>)──▶ BoundEvidence<I> ──Policy::appraise──▶ Appraisal<I>   (I: KeyRelease | Session)
//!     ──bind_exact(raw)───▶ RawBoundEvidence ──Policy::appraise_raw──▶ RawAppraisal
//! ```
//!
//! Each arrow is the only constructor of the next type, none of them is `Clone`, and the purpose of
//! a binding is in the type: key release and certificate issuance take only an
//! `Appraisal<KeyRelease>`, so evidence checked against a raw expected value, or bound to a TLS
//! session, cannot obtain a key or a certificate.
//!
//! One module per TEE ([`crate::snp`], [`crate::tpm`]) sits behind the [`Tee`] trait; the
//! functions here pick the module by a `match` on the evidence type. Adding a TEE means a module
//! implementing [`Tee`] and [`VerifiedTee`], an [`Evidence`] variant, a [`VerifiedKind`] variant
//! and one arm per `match` in this file.
//!
//! Proof values cannot be copied to outlive their verification, nor made outside it:
//! ```compile_fail
//! use confidant_attestation::verify::VerifiedEvidence;
//! fn keep(v: &VerifiedEvidence) -> VerifiedEvidence {
//!     v.clone()
//! }
//! ```
//! ```compile_fail
//! use confidant_attestation::binding::KeyRelease;
//! use confidant_attestation::verify::BoundEvidence;
//! fn keep(b: &BoundEvidence<KeyRelease>) -> BoundEvidence<KeyRelease> {
//!     b.clone()
//! }
//! ```
//! ```compile_fail
//! use confidant_attestation::verify::{VerifiedEvidence, VerifiedKind};
//! fn forge(kind: VerifiedKind) -> VerifiedEvidence {
//!     VerifiedEvidence { kind }
//! }
//! ```
//! and raw-bound evidence is not protocol-bound evidence:
//! ```compile_fail
//! use confidant_attestation::binding::KeyRelease;
//! use confidant_attestation::verify::{BoundEvidence, RawBoundEvidence};
//! fn launder(raw: RawBoundEvidence) -> BoundEvidence<KeyRelease> {
//!     raw
//! }
//! ```

use serde::Serialize;

use crate::binding::{Binding, BindingInputs};
use crate::evidence::{Evidence, ReceivedEvidence};
use crate::policy::TeeKind;
use crate::policy::facts::Facts;
use crate::snp::{self, SnpTrustRoots, VerifiedSnpReport};
use crate::time::{UnixTime, Validity};
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

/// One TEE's verification: its evidence, the anchors it uses, and the verified value it yields.
pub(crate) trait Tee {
    type Evidence;
    type Verified: VerifiedTee;
    /// Checks signatures and endorsements at `now`; never looks at the binding or the policy.
    fn verify(
        evidence: &Self::Evidence,
        anchors: &TrustAnchors,
        now: UnixTime,
    ) -> Result<Self::Verified, VerifyError>;
}

/// What the core reads from any TEE's verified value (and nothing else).
pub(crate) trait VerifiedTee {
    /// The bytes the evidence carries as its binding (`report_data`, `extraData`).
    fn report_data(&self) -> &[u8];
    /// Whether the evidence carries the 64-byte binding `value`, in this TEE's way (constant time).
    fn carries(&self, value: &[u8; 64]) -> bool;
    /// When every certificate the verification relied on is valid.
    fn validity(&self) -> Validity;
    /// What the policy rules look at.
    fn facts(&self) -> Facts;
    /// A printable summary.
    fn claims(&self) -> EvidenceClaims;
}

/// Evidence whose signature and endorsement chain checked out at the verification time. Only
/// [`verify_evidence`] makes one. It keeps the bytes it was decoded from.
#[derive(Debug)]
pub struct VerifiedEvidence {
    kind: VerifiedKind,
    received: ReceivedEvidence,
}

/// The per-TEE verified value.
#[derive(Debug)]
pub enum VerifiedKind {
    SevSnp(VerifiedSnpReport),
    Tpm(VerifiedTpmQuote),
}

impl VerifiedKind {
    fn tee(&self) -> &dyn VerifiedTee {
        match self {
            VerifiedKind::SevSnp(r) => r,
            VerifiedKind::Tpm(q) => q,
        }
    }
}

/// Verifies received evidence cryptographically (signature, endorsement chain and its validity at
/// `now`, structure). Does not look at the binding or at reference values: see
/// [`VerifiedEvidence::bind`] and the policy module.
pub fn verify_evidence(
    received: ReceivedEvidence,
    anchors: &TrustAnchors,
    now: UnixTime,
) -> Result<VerifiedEvidence, VerifyError> {
    let kind = match received.evidence() {
        Evidence::SevSnp(ev) => VerifiedKind::SevSnp(snp::SnpTee::verify(ev, anchors, now)?),
        Evidence::Tpm(ev) => VerifiedKind::Tpm(tpm::TpmTee::verify(ev, anchors, now)?),
    };
    Ok(VerifiedEvidence { kind, received })
}

impl VerifiedEvidence {
    /// The per-TEE verified value.
    pub fn kind(&self) -> &VerifiedKind {
        &self.kind
    }

    /// Which TEE produced it.
    pub fn tee(&self) -> TeeKind {
        self.received.evidence().tee()
    }

    /// SHA-256 of the evidence bytes as received.
    pub fn digest(&self) -> &[u8; 32] {
        self.received.digest()
    }

    /// The evidence bytes as received.
    pub fn bytes(&self) -> &[u8] {
        self.received.bytes()
    }

    /// True when the evidence chained to a development root (simulated attester).
    pub fn is_dev(&self) -> bool {
        match &self.kind {
            VerifiedKind::SevSnp(r) => r.is_dev(),
            VerifiedKind::Tpm(_) => false,
        }
    }

    /// When every certificate the verification relied on is valid.
    pub fn validity(&self) -> Validity {
        self.kind.tee().validity()
    }

    /// The bytes the evidence carries as its binding (`report_data` or `extraData`).
    pub fn report_data(&self) -> &[u8] {
        self.kind.tee().report_data()
    }

    pub(crate) fn facts(&self) -> Facts {
        self.kind.tee().facts()
    }

    /// SEV-SNP `MEASUREMENT`, or the TPM PCR composite ([`crate::policy::pcr_composite`]): what
    /// results carry as the measurement.
    pub fn measurement(&self) -> Vec<u8> {
        self.facts().measurement()
    }

    /// SEV-SNP: the guest policy allows debugging (the host can read guest memory). False for
    /// TPM evidence.
    pub fn debug_allowed(&self) -> bool {
        matches!(self.facts(), Facts::Snp(f) if f.debug)
    }

    /// Checks the evidence carries exactly `expected`. The binding is a mandatory parameter and
    /// is computed from its inputs: there is no way to reach [`BoundEvidence`] without them, and
    /// the bound evidence keeps them.
    pub fn bind<I: BindingInputs>(
        self,
        expected: Binding<I>,
    ) -> Result<BoundEvidence<I>, BindingError> {
        if self.kind.tee().carries(expected.as_bytes()) {
            Ok(BoundEvidence {
                verified: self,
                inputs: expected.into_inputs(),
            })
        } else {
            Err(BindingError::Mismatch)
        }
    }

    /// Checks the evidence carries exactly `expected` as its `report_data` (SNP, 64 bytes) or
    /// `extraData` (TPM, any length the TPM accepted). For offline checks of evidence produced by
    /// other tools (for example a `tpm2_quote -q NONCE`): the result is a [`RawBoundEvidence`],
    /// which neither key release nor certificate issuance accepts.
    pub fn bind_exact(self, expected: &[u8]) -> Result<RawBoundEvidence, BindingError> {
        use subtle::ConstantTimeEq;
        let found = self.report_data();
        if found.len() == expected.len() && bool::from(found.ct_eq(expected)) {
            Ok(RawBoundEvidence {
                verified: self,
                expected: expected.to_vec(),
            })
        } else {
            Err(BindingError::Mismatch)
        }
    }

    /// A printable, serialisable summary of the verified claims.
    pub fn claims(&self) -> EvidenceClaims {
        self.kind.tee().claims()
    }
}

/// Verified evidence bound to a protocol binding of purpose `I` ([`crate::binding::KeyRelease`] or
/// [`crate::binding::Session`]), remembering the inputs it was bound to. Only
/// [`VerifiedEvidence::bind`] makes one.
#[derive(Debug)]
pub struct BoundEvidence<I> {
    verified: VerifiedEvidence,
    inputs: I,
}

impl<I> BoundEvidence<I> {
    pub fn verified(&self) -> &VerifiedEvidence {
        &self.verified
    }

    /// What the evidence is bound to: nonce, TLS key, wrapping key or exporter, model digest.
    pub fn inputs(&self) -> &I {
        &self.inputs
    }
}

/// Verified evidence that carries a raw expected value (`confidant evidence verify --nonce`),
/// not a protocol binding. Only [`VerifiedEvidence::bind_exact`] makes one.
#[derive(Debug)]
pub struct RawBoundEvidence {
    verified: VerifiedEvidence,
    expected: Vec<u8>,
}

impl RawBoundEvidence {
    pub fn verified(&self) -> &VerifiedEvidence {
        &self.verified
    }

    /// The bytes the evidence was checked against.
    pub fn expected(&self) -> &[u8] {
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
