//! Why a policy could not be loaded, or why evidence failed appraisal. One variant per rule; each
//! has a stable snake_case [`PolicyError::code`] for the wire and the audit log.

use crate::snp::{Product, SnpError, TcbComponent};

use super::TeeKind;

/// Why a policy did not load, or why bound evidence was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    // --- loading ---------------------------------------------------------------------------
    #[error("policy is {0} bytes, over the {max}-byte limit", max = super::MAX_POLICY_TOML)]
    TooLarge(usize),
    #[error("policy is not valid TOML of the expected shape: {0}")]
    Parse(String),
    #[error("policy field `{field}` is invalid: {reason}")]
    Invalid { field: String, reason: &'static str },

    // --- trust anchors ---------------------------------------------------------------------
    #[error("a development root was supplied but the policy pins none")]
    DevRootNotPinned,
    #[error("the policy pins a development root but none was supplied")]
    DevRootMissing,
    #[error("the development ARK's SHA-256 does not equal the policy's pin")]
    DevRootMismatch,
    #[error("the development root is not a valid ARK/ASK pair: {0}")]
    DevRootInvalid(SnpError),

    // --- appraisal -------------------------------------------------------------------------
    #[error("the policy has no entry for this model id")]
    UnknownModel,
    #[error("the evidence is bound to another model digest than the policy's for this model")]
    ModelDigestMismatch,
    #[error("the policy trusts no {tee} evidence for this model")]
    UntrustedTee { tee: TeeKind },
    #[error("the policy does not trust AMD {0} roots")]
    ProductNotTrusted(Product),
    #[error("evidence chained to a development root, which this model does not allow")]
    DevEvidenceNotAllowed,
    #[error("evidence chained to a development root other than the one the policy pins")]
    DevRootNotTrusted,
    #[error("the guest policy allows debugging (the host can read guest memory)")]
    DebugEnabled,
    #[error("the report's chip id is masked (all zero), which this model does not allow")]
    ChipIdMasked,
    #[error(
        "the report says the chip key is masked (MASK_CHIP_KEY), which this model does not allow"
    )]
    ChipKeyMasked,
    #[error("the measurement is revoked")]
    MeasurementRevoked,
    #[error("the measurement is not among the model's reference values")]
    MeasurementNotAllowed,
    #[error("reported TCB is below the policy's floor in {component}")]
    TcbBelowFloor { component: TcbComponent },
    #[error("VMPL {0} is not allowed")]
    VmplNotAllowed(u32),
    #[error("the guest policy allows a migration agent, which this model does not allow")]
    MigrationAgentNotAllowed,
    #[error("guest SVN {found} is below the minimum {min}")]
    GuestSvnTooLow { found: u32, min: u32 },
    #[error("the quoted PCR values match none of the model's allowed PCR sets")]
    PcrsNotAllowed,
    #[error("the TPM attestation key is not listed in the policy")]
    AkNotAllowed,
    #[error("the TPM attestation key was proven through an EK CA the policy does not list")]
    EkCaNotTrusted,
    #[error("the model names VM boot images but the TPM evidence carries no event log")]
    NoEventLog,
    #[error("the VM boot image is not one the model allows: {reason}")]
    BootImageNotAllowed { reason: String },
    #[error("the certificate name {name} is not among the model's tls_names")]
    NameNotAllowed { name: String },
}

impl PolicyError {
    /// Stable reason code (snake_case) for the wire and the audit log. Never reuse or rename one.
    pub fn code(&self) -> &'static str {
        match self {
            PolicyError::TooLarge(_) => "policy_too_large",
            PolicyError::Parse(_) => "policy_parse",
            PolicyError::Invalid { .. } => "policy_invalid",
            PolicyError::DevRootNotPinned => "dev_root_not_pinned",
            PolicyError::DevRootMissing => "dev_root_missing",
            PolicyError::DevRootMismatch => "dev_root_mismatch",
            PolicyError::DevRootInvalid(_) => "dev_root_invalid",
            PolicyError::UnknownModel => "unknown_model",
            PolicyError::ModelDigestMismatch => "model_digest_mismatch",
            PolicyError::UntrustedTee { .. } => "untrusted_tee",
            PolicyError::ProductNotTrusted(_) => "product_not_trusted",
            PolicyError::DevEvidenceNotAllowed => "dev_evidence_not_allowed",
            PolicyError::DevRootNotTrusted => "dev_root_not_trusted",
            PolicyError::DebugEnabled => "debug_enabled",
            PolicyError::ChipIdMasked => "chip_id_masked",
            PolicyError::ChipKeyMasked => "chip_key_masked",
            PolicyError::MeasurementRevoked => "measurement_revoked",
            PolicyError::MeasurementNotAllowed => "measurement_not_allowed",
            PolicyError::TcbBelowFloor { .. } => "tcb_below_floor",
            PolicyError::VmplNotAllowed(_) => "vmpl_not_allowed",
            PolicyError::MigrationAgentNotAllowed => "migration_agent_not_allowed",
            PolicyError::GuestSvnTooLow { .. } => "guest_svn_too_low",
            PolicyError::PcrsNotAllowed => "pcrs_not_allowed",
            PolicyError::AkNotAllowed => "ak_not_allowed",
            PolicyError::EkCaNotTrusted => "ek_ca_not_trusted",
            PolicyError::NoEventLog => "no_event_log",
            PolicyError::BootImageNotAllowed { .. } => "boot_image_not_allowed",
            PolicyError::NameNotAllowed { .. } => "certificate_name_not_allowed",
        }
    }

    pub(crate) fn invalid(field: impl Into<String>, reason: &'static str) -> Self {
        PolicyError::Invalid {
            field: field.into(),
            reason,
        }
    }
}
