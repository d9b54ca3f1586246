//! Appraisal policy: reference values per model, trust anchors, and the pure function that turns
//! [`BoundEvidence`] into an [`Appraisal`].
//!
//! - [`Policy::from_toml`] loads and validates a policy (format: `docs/policy.example.toml`).
//!   Unknown fields are rejected, every hex value is length-checked, and a policy with no models
//!   or no trusted roots denies everything.
//! - [`Policy::trust_anchors`] builds the [`TrustAnchors`] verification should use under this
//!   policy.
//! - [`Policy::appraise`] checks verified, bound evidence against the rules for one model id.
//!
//! Debug guests are always refused and there is no setting to allow them: with `POLICY.DEBUG`
//! set the host can read and write guest memory (SNP_DBG_DECRYPT / SNP_DBG_ENCRYPT), so the
//! model key and prompts would be exposed to exactly the party the CVM exists to exclude, and no
//! measurement or TCB check can compensate.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::snp::{Product, SnpTrustRoots, TcbVersion};
use crate::tpm::TpmTrustAnchors;
use crate::verify::{BoundEvidence, TrustAnchors};

mod boot;
mod config;
mod error;
mod facts;
#[cfg(test)]
mod tests;

pub use boot::{BootImageRef, MatchedBootImage, check_boot_image, match_boot_image};
pub use config::MAX_POLICY_TOML;
pub use error::PolicyError;
pub use facts::pcr_composite;

use facts::AppraisalInput;

/// Which TEE produced the evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum TeeKind {
    #[serde(rename = "sev-snp")]
    SevSnp,
    #[serde(rename = "tpm")]
    Tpm,
}

impl TeeKind {
    /// The label used in results and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            TeeKind::SevSnp => "sev-snp",
            TeeKind::Tpm => "tpm",
        }
    }

    /// Inverse of [`TeeKind::as_str`].
    pub fn from_label(label: &str) -> Option<Self> {
        match label {
            "sev-snp" => Some(TeeKind::SevSnp),
            "tpm" => Some(TeeKind::Tpm),
            _ => None,
        }
    }
}

impl std::fmt::Display for TeeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Appraisal status, with the trust-tier values of EAR (draft-ietf-rats-ear, `ear.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Every check passed.
    Affirming,
    /// Passed, with reservations a relying party may weigh.
    Warning,
    /// Known bad.
    Contraindicated,
}

impl Status {
    /// The EAR trust-tier integer: affirming 2, warning 32, contraindicated 96.
    pub fn tier(self) -> u8 {
        match self {
            Status::Affirming => 2,
            Status::Warning => 32,
            Status::Contraindicated => 96,
        }
    }

    /// Inverse of [`Status::tier`].
    pub fn from_tier(tier: u64) -> Option<Self> {
        match tier {
            2 => Some(Status::Affirming),
            32 => Some(Status::Warning),
            96 => Some(Status::Contraindicated),
            _ => None,
        }
    }
}

/// A validated policy. Only [`Policy::from_toml`] makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    id: String,
    version: u64,
    trust: Trust,
    revoked_measurements: BTreeSet<Vec<u8>>,
    models: BTreeMap<String, ModelPolicy>,
}

/// `[trust]`: which roots and keys the policy trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trust {
    /// AMD products whose pinned production roots are trusted.
    pub amd_products: Vec<Product>,
    /// SHA-256 of the development ARK's DER, if development evidence may verify at all.
    pub dev_root_ark_sha256: Option<[u8; 32]>,
    /// SHA-256 of the DER SubjectPublicKeyInfo of each trusted TPM attestation key.
    pub tpm_aks_spki_sha256: BTreeSet<[u8; 32]>,
    /// DER of each CA whose EK certificates are trusted (`tpm_ek_ca_certs`): an AK proven by
    /// credential activation to live in a TPM with such an EK is trusted for that appraisal.
    pub tpm_ek_ca_certs_der: Vec<Vec<u8>>,
}

impl Trust {
    /// The trusted EK CA certificates (DER), for [`crate::tpm::credential::challenge_ak`].
    pub fn tpm_ek_cas(&self) -> &[Vec<u8>] {
        &self.tpm_ek_ca_certs_der
    }
}

/// `[models."<id>"]`: what may run a given model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelPolicy {
    /// The model digest: BLAKE3-256 of the plaintext model bundle (`confidant_sealed::model_digest`).
    pub digest: [u8; 32],
    /// SEV-SNP rules; `None` when the model lists no SNP measurement (SNP evidence refused).
    pub snp: Option<SnpRules>,
    /// Allowed TPM PCR sets; empty refuses TPM evidence.
    pub tpm_pcr_sets: Vec<PcrSet>,
    /// VM boot images the model accepts (`tpm_boot`); when non-empty, TPM evidence must carry an
    /// event log whose boot matches one of them (in addition to `tpm_pcr_sets`).
    pub tpm_boot: Vec<BootImageRef>,
    /// Whether evidence chaining to the policy's development root is accepted.
    pub allow_dev: bool,
}

/// SEV-SNP rules of one model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnpRules {
    pub measurements: BTreeSet<[u8; 48]>,
    /// Component-wise floor on `REPORTED_TCB`.
    pub min_tcb: TcbVersion,
    pub min_guest_svn: u32,
    pub allowed_vmpl: BTreeSet<u32>,
    pub allow_migration_agent: bool,
}

/// One allowed set of SHA-256 PCR values. A quote matches when every PCR of the set is quoted
/// with exactly that value (PCRs the set does not name are not constrained).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcrSet(pub BTreeMap<u8, [u8; 32]>);

impl PcrSet {
    /// Whether `quoted` satisfies this set.
    pub fn matches(&self, quoted: &BTreeMap<u8, [u8; 32]>) -> bool {
        !self.0.is_empty() && self.0.iter().all(|(i, v)| quoted.get(i) == Some(v))
    }
}

impl Policy {
    /// Loads and validates a policy (size-bounded, unknown fields rejected, hex lengths checked).
    pub fn from_toml(text: &str) -> Result<Policy, PolicyError> {
        config::parse(text)
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn trust(&self) -> &Trust {
        &self.trust
    }

    /// This policy with one more trusted TPM AK (by SPKI SHA-256): what the verifier appraises
    /// with after credential activation proved that AK lives in a TPM with a trusted EK. Only
    /// for that one appraisal; the stored policy is unchanged.
    pub fn with_activated_ak(&self, ak_spki_sha256: [u8; 32]) -> Policy {
        let mut p = self.clone();
        p.trust.tpm_aks_spki_sha256.insert(ak_spki_sha256);
        p
    }

    pub fn revoked_measurements(&self) -> &BTreeSet<Vec<u8>> {
        &self.revoked_measurements
    }

    /// The rules for one model id.
    pub fn model(&self, model_id: &str) -> Result<&ModelPolicy, PolicyError> {
        self.models.get(model_id).ok_or(PolicyError::UnknownModel)
    }

    /// The model ids the policy knows.
    pub fn model_ids(&self) -> impl Iterator<Item = &str> {
        self.models.keys().map(String::as_str)
    }

    /// The model digest the expected [`crate::binding::Binding`] must be computed with for `model_id`. Appraisal
    /// cannot see inside the binding hash, so callers must take the digest from here.
    pub fn model_digest(&self, model_id: &str) -> Result<[u8; 32], PolicyError> {
        Ok(self.model(model_id)?.digest)
    }

    /// The trust anchors verification should use under this policy: AMD's pinned roots for the
    /// listed products, plus the development root if the policy pins one (`dev_ark_der` must hash
    /// to the pin; `dev_ask_der` is the ASK it signed).
    /// TPM attestation keys are those the policy lists by SPKI SHA-256 (appraisal checks the
    /// list again).
    pub fn trust_anchors(
        &self,
        dev_ark_der: Option<&[u8]>,
        dev_ask_der: Option<&[u8]>,
    ) -> Result<TrustAnchors, PolicyError> {
        let mut snp = if self.trust.amd_products.is_empty() {
            SnpTrustRoots::empty()
        } else {
            SnpTrustRoots::amd().only(&self.trust.amd_products)
        };
        match (self.trust.dev_root_ark_sha256, dev_ark_der, dev_ask_der) {
            (None, None, None) => {}
            (None, _, _) => return Err(PolicyError::DevRootNotPinned),
            (Some(_), None, _) | (Some(_), _, None) => return Err(PolicyError::DevRootMissing),
            (Some(pin), Some(ark), Some(ask)) => {
                let found = ring::digest::digest(&ring::digest::SHA256, ark);
                if found.as_ref() != pin.as_slice() {
                    return Err(PolicyError::DevRootMismatch);
                }
                snp.add_dev_root(ark, ask)
                    .map_err(PolicyError::DevRootInvalid)?;
            }
        }
        let mut tpm = TpmTrustAnchors::default();
        for fp in &self.trust.tpm_aks_spki_sha256 {
            tpm.enroll_ak_spki_sha256(*fp);
        }
        Ok(TrustAnchors { snp, tpm })
    }

    /// Appraises verified, bound evidence against the rules for `model_id`. Pure: the same
    /// inputs always give the same answer.
    pub fn appraise(&self, bound: BoundEvidence, model_id: &str) -> Result<Appraisal, PolicyError> {
        let model = self.model(model_id)?;
        let facts = AppraisalInput::from_verified(bound.verified());
        facts::check(self, model, &facts)?;
        let boot_image = match facts.tee {
            TeeKind::Tpm if !model.tpm_boot.is_empty() => {
                Some(boot::match_boot_image(facts.boot.as_ref(), &model.tpm_boot)?.matched())
            }
            _ => None,
        };
        Ok(Appraisal {
            model_id: model_id.to_string(),
            model_digest: model.digest,
            policy_id: self.id.clone(),
            policy_version: self.version,
            status: Status::Affirming,
            tee: facts.tee,
            measurement: facts.measurement,
            tcb: facts.tcb,
            dev: facts.dev,
            boot_image,
            bound,
        })
    }
}

/// Evidence that verified, matched its binding and passed the policy for one model. Only
/// [`Policy::appraise`] makes one; key release, certificate issuance and results take this.
#[derive(Debug, Clone)]
pub struct Appraisal {
    bound: BoundEvidence,
    model_id: String,
    model_digest: [u8; 32],
    policy_id: String,
    policy_version: u64,
    status: Status,
    tee: TeeKind,
    measurement: Vec<u8>,
    tcb: Option<TcbVersion>,
    dev: bool,
    boot_image: Option<MatchedBootImage>,
}

impl Appraisal {
    pub fn bound(&self) -> &BoundEvidence {
        &self.bound
    }

    /// SHA-256 of the evidence's CBOR encoding.
    pub fn evidence_digest(&self) -> &[u8; 32] {
        self.bound.verified().digest()
    }

    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    pub fn model_digest(&self) -> &[u8; 32] {
        &self.model_digest
    }

    pub fn policy_id(&self) -> &str {
        &self.policy_id
    }

    pub fn policy_version(&self) -> u64 {
        self.policy_version
    }

    pub fn status(&self) -> Status {
        self.status
    }

    pub fn tee(&self) -> TeeKind {
        self.tee
    }

    /// SEV-SNP `MEASUREMENT`, or the TPM PCR composite ([`pcr_composite`]).
    pub fn measurement(&self) -> &[u8] {
        &self.measurement
    }

    /// SEV-SNP `REPORTED_TCB`; `None` for TPM.
    pub fn tcb(&self) -> Option<&TcbVersion> {
        self.tcb.as_ref()
    }

    /// True when the evidence chained to a development root.
    pub fn is_dev(&self) -> bool {
        self.dev
    }

    /// TPM only: the model's `tpm_boot` image the event log matched (`None` when the model names
    /// no boot image).
    pub fn boot_image(&self) -> Option<&MatchedBootImage> {
        self.boot_image.as_ref()
    }
}
