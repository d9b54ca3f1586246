//! Appraisal policy: reference values per model, trust anchors, and the pure functions that turn
//! bound evidence into an [`Appraisal`].
//!
//! - [`Policy::from_toml`] loads and validates a policy (format: `docs/policy.example.toml`).
//!   Unknown fields are rejected, every hex value is length-checked, and a policy with no models
//!   or no trusted roots denies everything.
//! - [`Policy::trust_anchors`] builds the [`TrustAnchors`] verification should use under this
//!   policy.
//! - [`Policy::appraise`] checks verified evidence bound to a protocol binding against the rules
//!   for one model id, including that the binding's model digest is the model's;
//!   [`Policy::appraise_raw`] does the same for evidence bound to a raw value (offline checks),
//!   which yields a [`RawAppraisal`] that neither key release nor issuance accepts.
//! - [`Policy::check_result`] applies the same rules to the claims of a signed attestation result
//!   (a `passport` client).
//!
//! The verifier and the client evaluate the same policy format with these same functions: there is
//! one appraisal engine.
//!
//! Debug guests are always refused and there is no setting to allow them: with `POLICY.DEBUG`
//! set the host can read and write guest memory (SNP_DBG_DECRYPT / SNP_DBG_ENCRYPT), so the
//! model key and prompts would be exposed to exactly the party the CVM exists to exclude, and no
//! measurement or TCB check can compensate.
//!
//! An appraisal is a proof value: not `Clone`, made only here.
//! ```compile_fail
//! use confidant_attestation::binding::KeyRelease;
//! use confidant_attestation::policy::Appraisal;
//! fn keep(a: &Appraisal<KeyRelease>) -> Appraisal<KeyRelease> {
//!     a.clone()
//! }
//! ```

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::binding::{BindingInputs, KeyRelease};
use crate::digest::Blake3Digest;
use crate::names::SubjectName;
use crate::snp::{Product, SnpRoot, SnpTrustRoots, TcbVersion};
use crate::time::Validity;
use crate::tpm::{AkAnchor, TpmTrustAnchors};
use crate::verify::{BoundEvidence, RawBoundEvidence, TrustAnchors, VerifiedEvidence};

mod boot;
mod config;
mod error;
pub(crate) mod facts;
mod passport;
#[cfg(test)]
mod tests;

pub use boot::{BootImageRef, MatchedBootImage, check_boot_image, match_boot_image};
pub use config::{MAX_POLICY_TOML, MAX_TLS_NAMES};
pub use error::PolicyError;
pub use facts::pcr_composite;

use facts::Facts;

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

    /// Whether the EK CA whose DER has this SHA-256 is one of the policy's.
    pub fn trusts_ek_ca(&self, ca_sha256: &[u8; 32]) -> bool {
        self.tpm_ek_ca_certs_der.iter().any(|der| {
            ring::digest::digest(&ring::digest::SHA256, der).as_ref() == ca_sha256.as_slice()
        })
    }
}

/// `[models."<id>"]`: what may run a given model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelPolicy {
    /// The model digest: BLAKE3-256 of the plaintext model bundle (`confidant_sealed::model_digest`).
    pub digest: Blake3Digest,
    /// SEV-SNP rules; `None` when the model lists no SNP measurement (SNP evidence refused).
    pub snp: Option<SnpRules>,
    /// Allowed TPM PCR sets; empty refuses TPM evidence.
    pub tpm_pcr_sets: Vec<PcrSet>,
    /// VM boot images the model accepts (`tpm_boot`); when non-empty, TPM evidence must carry an
    /// event log whose boot matches one of them (in addition to `tpm_pcr_sets`).
    pub tpm_boot: Vec<BootImageRef>,
    /// Whether evidence chaining to the policy's development root is accepted.
    pub allow_dev: bool,
    /// The names an enclave serving this model may have in its certificate (`tls_names`); a
    /// request for any other name is refused. Empty: certificates without names.
    pub tls_names: Vec<SubjectName>,
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
    /// Accept reports whose `CHIP_ID` is all zero (MASK_CHIP_ID, VLEK reports).
    pub allow_masked_chip_id: bool,
    /// Accept reports with `MASK_CHIP_KEY` set.
    pub allow_masked_chip_key: bool,
}

/// One allowed set of SHA-256 PCR values: a quote matches when its selection is exactly these
/// PCRs with exactly these values. Quoting an extra PCR, or fewer, is another state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcrSet(pub BTreeMap<u8, [u8; 32]>);

impl PcrSet {
    /// Whether `quoted` (the quote's whole selection) is exactly this set.
    pub fn matches(&self, quoted: &BTreeMap<u8, [u8; 32]>) -> bool {
        !self.0.is_empty() && self.0 == *quoted
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

    /// The model digest of `model_id`: what a key-release binding for it is computed with.
    pub fn model_digest(&self, model_id: &str) -> Result<Blake3Digest, PolicyError> {
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

    /// Appraises verified evidence bound to a protocol binding against the rules for `model_id`:
    /// first that the binding's model digest is the model's, then every rule. Pure: the same
    /// inputs always give the same answer.
    pub fn appraise<I: BindingInputs>(
        &self,
        bound: BoundEvidence<I>,
        model_id: &str,
    ) -> Result<Appraisal<I>, PolicyError> {
        let model = self.model(model_id)?;
        if bound.inputs().model_digest() != &model.digest {
            return Err(PolicyError::ModelDigestMismatch);
        }
        let appraised = self.evaluate(model_id, model, bound.verified())?;
        Ok(Appraisal { bound, appraised })
    }

    /// Appraises evidence bound to a raw expected value against the rules for `model_id`. The
    /// evidence names no model digest, so none is checked (see
    /// [`RawAppraisal::model_digest_checked`]).
    pub fn appraise_raw(
        &self,
        bound: RawBoundEvidence,
        model_id: &str,
    ) -> Result<RawAppraisal, PolicyError> {
        let model = self.model(model_id)?;
        let appraised = self.evaluate(model_id, model, bound.verified())?;
        Ok(RawAppraisal { bound, appraised })
    }

    fn evaluate(
        &self,
        model_id: &str,
        model: &ModelPolicy,
        verified: &VerifiedEvidence,
    ) -> Result<Appraised, PolicyError> {
        let facts = verified.facts();
        facts::check(self, model, &facts)?;
        let boot_image = match &facts {
            Facts::Tpm(t) if !model.tpm_boot.is_empty() => {
                Some(boot::match_boot_image(t.boot.as_ref(), &model.tpm_boot)?.matched())
            }
            _ => None,
        };
        let (snp_root, tcb, chip_id_masked, chip_key_masked, ak) = match &facts {
            Facts::Snp(f) => (
                Some(f.root),
                Some(f.tcb),
                f.chip_id_masked,
                f.chip_key_masked,
                None,
            ),
            Facts::Tpm(f) => (
                None,
                None,
                false,
                false,
                Some((f.ak_spki_sha256, f.ak_anchor)),
            ),
        };
        Ok(Appraised {
            model_id: model_id.to_string(),
            model_digest: model.digest,
            policy_id: self.id.clone(),
            policy_version: self.version,
            status: Status::Affirming,
            tee: facts.tee(),
            measurement: facts.measurement(),
            tcb,
            snp_root,
            dev: verified.is_dev(),
            chip_id_masked,
            chip_key_masked,
            ak,
            boot_image,
            tls_names: model.tls_names.clone(),
            validity: verified.validity(),
            evidence_digest: *verified.digest(),
        })
    }
}

/// What an appraisal established, whatever the evidence was bound to.
#[derive(Debug)]
pub struct Appraised {
    model_id: String,
    model_digest: Blake3Digest,
    policy_id: String,
    policy_version: u64,
    status: Status,
    tee: TeeKind,
    measurement: Vec<u8>,
    tcb: Option<TcbVersion>,
    snp_root: Option<SnpRoot>,
    dev: bool,
    chip_id_masked: bool,
    chip_key_masked: bool,
    ak: Option<([u8; 32], AkAnchor)>,
    boot_image: Option<MatchedBootImage>,
    tls_names: Vec<SubjectName>,
    validity: Validity,
    evidence_digest: [u8; 32],
}

impl Appraised {
    /// SHA-256 of the evidence bytes as received.
    pub fn evidence_digest(&self) -> &[u8; 32] {
        &self.evidence_digest
    }

    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    /// The policy's digest for the model (for protocol-bound evidence, also the binding's).
    pub fn model_digest(&self) -> &Blake3Digest {
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

    /// SEV-SNP: the root that verified the chain.
    pub fn snp_root(&self) -> Option<SnpRoot> {
        self.snp_root
    }

    /// True when the evidence chained to a development root.
    pub fn is_dev(&self) -> bool {
        self.dev
    }

    /// SEV-SNP: `CHIP_ID` was masked (the policy allowed it).
    pub fn chip_id_masked(&self) -> bool {
        self.chip_id_masked
    }

    /// SEV-SNP: `MASK_CHIP_KEY` was set (the policy allowed it).
    pub fn chip_key_masked(&self) -> bool {
        self.chip_key_masked
    }

    /// TPM: SHA-256 of the attestation key's SubjectPublicKeyInfo.
    pub fn tpm_ak_spki_sha256(&self) -> Option<[u8; 32]> {
        self.ak.map(|(fp, _)| fp)
    }

    /// TPM: the anchor that vouched for the attestation key.
    pub fn tpm_ak_anchor(&self) -> Option<AkAnchor> {
        self.ak.map(|(_, anchor)| anchor)
    }

    /// TPM only: the model's `tpm_boot` image the event log matched (`None` when the model names
    /// no boot image).
    pub fn boot_image(&self) -> Option<&MatchedBootImage> {
        self.boot_image.as_ref()
    }

    /// The names the policy allows in this enclave's certificate.
    pub fn tls_names(&self) -> &[SubjectName] {
        &self.tls_names
    }

    /// When every certificate the evidence's verification relied on is valid.
    pub fn validity(&self) -> Validity {
        self.validity
    }

    /// Refuses any requested certificate name the policy does not allow for this model
    /// ([`PolicyError::NameNotAllowed`] names the first).
    pub fn check_names(&self, requested: &[SubjectName]) -> Result<(), PolicyError> {
        match requested.iter().find(|n| !self.tls_names.contains(n)) {
            Some(name) => Err(PolicyError::NameNotAllowed {
                name: name.to_string(),
            }),
            None => Ok(()),
        }
    }
}

/// Evidence that verified, matched a protocol binding of purpose `I` (which it remembers) and
/// passed the policy for one model, including the binding's model digest. Only
/// [`Policy::appraise`] makes one. Key release and certificate issuance take an
/// `Appraisal<KeyRelease>` and nothing else.
#[derive(Debug)]
pub struct Appraisal<I> {
    bound: BoundEvidence<I>,
    appraised: Appraised,
}

impl<I> std::ops::Deref for Appraisal<I> {
    type Target = Appraised;
    fn deref(&self) -> &Appraised {
        &self.appraised
    }
}

impl<I> Appraisal<I> {
    pub fn bound(&self) -> &BoundEvidence<I> {
        &self.bound
    }

    /// What the evidence is bound to.
    pub fn binding(&self) -> &I {
        self.bound.inputs()
    }

    /// The evidence bytes as received.
    pub fn evidence_bytes(&self) -> &[u8] {
        self.bound.verified().bytes()
    }
}

impl Appraisal<KeyRelease> {
    /// DER SubjectPublicKeyInfo of the TLS key the evidence is bound to: the only key a
    /// certificate may be issued for.
    pub fn tls_spki_der(&self) -> &[u8] {
        &self.binding().tls_spki_der
    }

    /// The X25519 key the evidence is bound to: the only key the model key may be wrapped to.
    pub fn wrap_pk(&self) -> &[u8; 32] {
        &self.binding().wrap_pk
    }
}

/// Evidence that verified, carries a raw expected value (not a protocol binding) and passed the
/// policy for one model. Only [`Policy::appraise_raw`] makes one; what offline checks
/// (`confidant evidence verify --policy`) report. Neither key release nor issuance accepts it.
#[derive(Debug)]
pub struct RawAppraisal {
    bound: RawBoundEvidence,
    appraised: Appraised,
}

impl std::ops::Deref for RawAppraisal {
    type Target = Appraised;
    fn deref(&self) -> &Appraised {
        &self.appraised
    }
}

impl RawAppraisal {
    pub fn bound(&self) -> &RawBoundEvidence {
        &self.bound
    }

    /// Always false: raw-bound evidence names no model digest, so the policy's digest for the
    /// model was not compared with anything.
    pub fn model_digest_checked(&self) -> bool {
        false
    }
}
