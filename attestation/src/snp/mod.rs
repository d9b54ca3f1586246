//! AMD SEV-SNP: the attestation report, its endorsement chain to AMD's pinned roots, and the
//! verified value the rest of the crate consumes.
//!
//! - [`report`]: `ATTESTATION_REPORT` parser (AMD pub. 56860).
//! - [`tcb`]: `TCB_VERSION` and its component-wise floor.
//! - [`certs`]: ARK → ASK/ASVK → VCEK/VLEK checks and the VCEK/VLEK extensions (AMD pub. 57230).
//! - [`roots`]: pinned AMD roots and development roots.
//! - [`verify_report`]: the one entry point, yielding [`VerifiedSnpReport`].
//! - [`launch`]: the expected launch measurement of an OVMF image (reference values).

use serde::Serialize;

use crate::der_strict::DerError;
use crate::time::{UnixTime, Validity};

pub mod certs;
pub mod launch;
pub mod report;
pub mod roots;
pub mod tcb;
mod verify;

pub use certs::{CertRole, VekExtensions, signer_public_key, vek_extensions};
pub use report::{Cpuid, FirmwareVersion, GuestPolicy, REPORT_LEN, SigningKey, SnpReport};
pub use roots::{SnpRoot, SnpTrustRoots};
pub use tcb::{TcbComponent, TcbLayout, TcbVersion};
pub use verify::{SignerEndorsement, verify_report, verify_signer_chain};

/// AMD EPYC generation with SEV-SNP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Product {
    Milan,
    Genoa,
    Turin,
}

impl std::fmt::Display for Product {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Product::Milan => "Milan",
            Product::Genoa => "Genoa",
            Product::Turin => "Turin",
        })
    }
}

/// Why an SEV-SNP report failed verification. One variant per check; messages carry no secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnpError {
    #[error(
        "attestation report is {len} bytes, shorter than the {REPORT_LEN}-byte ATTESTATION_REPORT"
    )]
    Truncated { len: usize },
    #[error(
        "attestation report is {len} bytes, longer than the {REPORT_LEN}-byte ATTESTATION_REPORT"
    )]
    Oversized { len: usize },
    #[error("unsupported attestation report version {0}")]
    UnsupportedVersion(u32),
    #[error("unsupported report signature algorithm {0} (only 1, ECDSA P-384 with SHA-384)")]
    UnsupportedSignatureAlgo(u32),
    #[error("unsupported SIGNING_KEY encoding {0} (only 0, VCEK, and 1, VLEK)")]
    UnsupportedSigningKey(u8),
    #[error("reserved byte at report offset {offset:#x} is not zero")]
    ReservedNonZero { offset: usize },
    #[error("unknown CPUID family {family:#x} model {model:#x} in the report")]
    UnknownCpuid { family: u8, model: u8 },
    #[error("{which} certificate is not valid DER X.509")]
    CertParse { which: CertRole },
    #[error("{which} certificate is not strict DER: {error}")]
    CertEncoding { which: CertRole, error: DerError },
    #[error(
        "{which} certificate is valid from {} to {}, not at {at}",
        validity.not_before,
        validity.not_after
    )]
    CertNotValidAt {
        which: CertRole,
        validity: Validity,
        at: UnixTime,
    },
    #[error("{which} certificate has an unexpected key type or signature algorithm")]
    CertAlgorithm { which: CertRole },
    #[error("{which} certificate is not a CA certificate")]
    NotCa { which: CertRole },
    #[error("signing certificate lacks extension {oid}")]
    ExtensionMissing { oid: &'static str },
    #[error("signing certificate extension {oid} is malformed or repeated")]
    ExtensionMalformed { oid: &'static str },
    #[error("certificate chain has {len} entries, expected 2 (ASK or ASVK, then ARK)")]
    ChainShape { len: usize },
    #[error("{which} certificate signature does not verify")]
    ChainSignature { which: CertRole },
    #[error("the certificate chain does not lead to a trusted ARK")]
    UntrustedRoot,
    #[error(
        "the supplied intermediate certificate is not byte-identical to the pinned ASK or ASVK"
    )]
    UntrustedIntermediate,
    #[error("report or signing certificate is for {report}, the chain is {chain}'s")]
    ProductMismatch { report: Product, chain: Product },
    #[error("product unknown: a development root needs a version 3+ report (CPUID)")]
    ProductUnknown,
    #[error("report says it is signed by a {report:?}, the certificate is the other kind")]
    SignerKindMismatch { report: SigningKey },
    #[error("signing certificate TCB differs from the report's reported_tcb in {component}")]
    TcbMismatch { component: TcbComponent },
    #[error("VCEK hwID does not equal the report's chip_id")]
    ChipIdMismatch,
    #[error("report signature does not verify with the signing certificate")]
    BadSignature,
}

/// A report whose signature, endorsement chain (valid at the verification time) and certificate
/// binding checked out. Only [`verify_report`] makes one; not `Clone`, so it does not outlive the
/// verification it came from.
#[derive(Debug)]
pub struct VerifiedSnpReport {
    // Boxed: the report is ~0.7 KiB and this value travels inside enums.
    report: Box<SnpReport>,
    product: Product,
    signing_key: SigningKey,
    root: SnpRoot,
    validity: Validity,
    chip_id_masked: bool,
}

impl VerifiedSnpReport {
    /// The verified report.
    pub fn report(&self) -> &SnpReport {
        &self.report
    }

    /// The root that verified the report's chain.
    pub fn root(&self) -> SnpRoot {
        self.root
    }

    /// True when the report chained to a development root (simulated attester).
    pub fn is_dev(&self) -> bool {
        self.root.is_dev()
    }

    /// When every certificate of the chain (VCEK/VLEK, ASK/ASVK, ARK) is valid.
    pub fn validity(&self) -> Validity {
        self.validity
    }

    /// `CHIP_ID` is all zero: the platform masks the chip id (MASK_CHIP_ID, or a VLEK report),
    /// so the report does not say which chip produced it.
    pub fn chip_id_masked(&self) -> bool {
        self.chip_id_masked
    }

    /// `MASK_CHIP_KEY` is set in the report's key information.
    pub fn chip_key_masked(&self) -> bool {
        self.report.mask_chip_key
    }

    /// The product generation, from the report's CPUID (v3+) or the AMD root that verified.
    pub fn product(&self) -> Product {
        self.product
    }

    /// VCEK or VLEK.
    pub fn signing_key(&self) -> SigningKey {
        self.signing_key
    }

    /// The claims shown to users and carried in results.
    pub fn claims(&self) -> SnpClaims {
        let r = &self.report;
        SnpClaims {
            product: self.product,
            version: r.version,
            signing_key: self.signing_key,
            measurement: hex::encode(r.measurement),
            report_data: hex::encode(r.report_data),
            chip_id: hex::encode(r.chip_id),
            host_data: hex::encode(r.host_data),
            reported_tcb: r.reported_tcb,
            policy: PolicyClaims {
                raw: format!("{:#018x}", r.policy.0),
                debug: r.policy.debug(),
                migrate_ma: r.policy.migrate_ma(),
                smt: r.policy.smt(),
                single_socket: r.policy.single_socket(),
                abi: format!("{}.{}", r.policy.abi_major(), r.policy.abi_minor()),
            },
            vmpl: r.vmpl,
            guest_svn: r.guest_svn,
            root: self.root,
            chip_id_masked: self.chip_id_masked,
            mask_chip_key: r.mask_chip_key,
            dev: self.is_dev(),
        }
    }
}

/// Verified SEV-SNP claims, as printed by `confidant evidence verify` (byte strings in lowercase
/// hex).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SnpClaims {
    pub product: Product,
    pub version: u32,
    pub signing_key: SigningKey,
    pub measurement: String,
    pub report_data: String,
    pub chip_id: String,
    pub host_data: String,
    pub reported_tcb: TcbVersion,
    pub policy: PolicyClaims,
    pub vmpl: u32,
    pub guest_svn: u32,
    /// The root that verified the chain.
    pub root: SnpRoot,
    /// `CHIP_ID` is all zero (masked).
    pub chip_id_masked: bool,
    /// `MASK_CHIP_KEY` is set.
    pub mask_chip_key: bool,
    pub dev: bool,
}

/// The guest policy, decoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyClaims {
    /// The 64-bit policy as `0x` and 16 hex digits.
    pub raw: String,
    pub debug: bool,
    pub migrate_ma: bool,
    pub smt: bool,
    pub single_socket: bool,
    /// Minimum firmware ABI, `major.minor`.
    pub abi: String,
}

/// The SEV-SNP module behind [`crate::verify::Tee`].
pub(crate) struct SnpTee;

impl crate::verify::Tee for SnpTee {
    type Evidence = crate::evidence::SnpEvidence;
    type Verified = VerifiedSnpReport;

    fn verify(
        evidence: &Self::Evidence,
        anchors: &crate::verify::TrustAnchors,
        now: UnixTime,
    ) -> Result<VerifiedSnpReport, crate::verify::VerifyError> {
        Ok(verify_report(evidence, &anchors.snp, now)?)
    }
}

impl crate::verify::VerifiedTee for VerifiedSnpReport {
    fn report_data(&self) -> &[u8] {
        &self.report.report_data
    }

    fn carries(&self, value: &[u8; 64]) -> bool {
        crate::binding::carried_in_full(value, &self.report.report_data)
    }

    fn validity(&self) -> Validity {
        self.validity
    }

    fn facts(&self) -> crate::policy::facts::Facts {
        let r = &self.report;
        crate::policy::facts::Facts::Snp(crate::policy::facts::SnpFacts {
            root: self.root,
            measurement: r.measurement,
            tcb: r.reported_tcb,
            debug: r.policy.debug(),
            migrate_ma: r.policy.migrate_ma(),
            vmpl: r.vmpl,
            guest_svn: r.guest_svn,
            chip_id_masked: self.chip_id_masked,
            chip_key_masked: r.mask_chip_key,
        })
    }

    fn claims(&self) -> crate::verify::EvidenceClaims {
        crate::verify::EvidenceClaims::SevSnp(VerifiedSnpReport::claims(self))
    }
}
