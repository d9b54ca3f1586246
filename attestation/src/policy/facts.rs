//! The facts appraisal looks at, as each TEE module reports them
//! ([`crate::verify::VerifiedTee::facts`]: the one seam between the per-TEE modules and the rules),
//! and the rules over them: pure functions of (policy, model, facts), unit-tested on facts
//! directly. The same functions serve the verifier, a client in `direct` mode, and — on the claims
//! a signed result carries — a client in `passport` mode ([`super::passport`]).

use std::collections::BTreeMap;

use super::{ModelPolicy, Policy, PolicyError, SnpRules, TeeKind};
use crate::snp::{SnpRoot, TcbVersion};
use crate::tpm::{AkAnchor, BootImageEvents};

/// What the rules look at, per TEE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Facts {
    Snp(SnpFacts),
    Tpm(TpmFacts),
}

/// SEV-SNP facts of a verified report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SnpFacts {
    /// The root that verified the chain.
    pub root: SnpRoot,
    pub measurement: [u8; 48],
    /// `REPORTED_TCB`.
    pub tcb: TcbVersion,
    pub debug: bool,
    pub migrate_ma: bool,
    pub vmpl: u32,
    pub guest_svn: u32,
    /// `CHIP_ID` is all zero.
    pub chip_id_masked: bool,
    /// `MASK_CHIP_KEY` is set.
    pub chip_key_masked: bool,
}

/// TPM facts of a verified quote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TpmFacts {
    /// The quoted SHA-256 PCRs: exactly the quote's selection.
    pub pcrs: BTreeMap<u8, [u8; 32]>,
    pub ak_spki_sha256: [u8; 32],
    /// The anchor that vouched for the attestation key.
    pub ak_anchor: AkAnchor,
    /// Boot-image facts of the replayed event log, if the evidence carried one.
    pub boot: Option<BootImageEvents>,
}

impl Facts {
    pub(crate) fn tee(&self) -> TeeKind {
        match self {
            Facts::Snp(_) => TeeKind::SevSnp,
            Facts::Tpm(_) => TeeKind::Tpm,
        }
    }

    /// SEV-SNP `MEASUREMENT`, or the TPM PCR composite.
    pub(crate) fn measurement(&self) -> Vec<u8> {
        match self {
            Facts::Snp(f) => f.measurement.to_vec(),
            Facts::Tpm(f) => pcr_composite(&f.pcrs).to_vec(),
        }
    }
}

/// The TPM "measurement" carried in results and matched by `revoked_measurements`:
/// SHA-256 over `index (1 byte) || value (32 bytes)` for every quoted SHA-256 PCR, by ascending
/// index. Allowed PCR sets match a quote's selection exactly, so an accepted quote has exactly one
/// composite per allowed set.
pub fn pcr_composite(pcrs: &BTreeMap<u8, [u8; 32]>) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for (i, v) in pcrs {
        ctx.update(&[*i]);
        ctx.update(v);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// Every rule, in a fixed order (so a refusal always names the same first failed check). Pure.
pub(crate) fn check(
    policy: &Policy,
    model: &ModelPolicy,
    facts: &Facts,
) -> Result<(), PolicyError> {
    match facts {
        Facts::Snp(f) => check_snp(policy, model, f),
        Facts::Tpm(f) => check_tpm(policy, model, f),
    }
}

/// The model's SEV-SNP rules, or the refusal for a model that allows no SEV-SNP evidence.
pub(super) fn snp_rules(model: &ModelPolicy) -> Result<&SnpRules, PolicyError> {
    model.snp.as_ref().ok_or(PolicyError::UntrustedTee {
        tee: TeeKind::SevSnp,
    })
}

/// The root that verified SEV-SNP evidence must be one this policy trusts: an AMD root of a listed
/// product, or exactly the development root it pins, and then only for a model that allows
/// development evidence.
pub(super) fn root_rule(
    policy: &Policy,
    model: &ModelPolicy,
    root: &SnpRoot,
) -> Result<(), PolicyError> {
    match root {
        SnpRoot::Amd(p) if policy.trust.amd_products.contains(p) => Ok(()),
        SnpRoot::Amd(p) => Err(PolicyError::ProductNotTrusted(*p)),
        SnpRoot::Dev { ark_sha256 } => {
            dev_rule(policy, model)?;
            if policy.trust.dev_root_ark_sha256 == Some(*ark_sha256) {
                Ok(())
            } else {
                Err(PolicyError::DevRootNotTrusted)
            }
        }
    }
}

/// Development evidence needs the model's consent and a development root pinned by this policy.
pub(super) fn dev_rule(policy: &Policy, model: &ModelPolicy) -> Result<(), PolicyError> {
    if !model.allow_dev {
        return Err(PolicyError::DevEvidenceNotAllowed);
    }
    if policy.trust.dev_root_ark_sha256.is_none() {
        return Err(PolicyError::DevRootNotTrusted);
    }
    Ok(())
}

/// Reports whose chip key or chip id is masked say less about where they came from: refused
/// unless the model allows it.
pub(super) fn mask_rule(
    rules: &SnpRules,
    chip_id_masked: bool,
    chip_key_masked: bool,
) -> Result<(), PolicyError> {
    if chip_key_masked && !rules.allow_masked_chip_key {
        return Err(PolicyError::ChipKeyMasked);
    }
    if chip_id_masked && !rules.allow_masked_chip_id {
        return Err(PolicyError::ChipIdMasked);
    }
    Ok(())
}

/// Revocation wins over the allow-list.
pub(super) fn measurement_rule(
    policy: &Policy,
    measurement: &[u8],
    allowed: bool,
) -> Result<(), PolicyError> {
    if policy.revoked_measurements.contains(measurement) {
        return Err(PolicyError::MeasurementRevoked);
    }
    if !allowed {
        return Err(PolicyError::MeasurementNotAllowed);
    }
    Ok(())
}

/// Component-wise floor.
pub(super) fn tcb_rule(tcb: &TcbVersion, floor: &TcbVersion) -> Result<(), PolicyError> {
    match tcb.first_below(floor) {
        Some(component) => Err(PolicyError::TcbBelowFloor { component }),
        None => Ok(()),
    }
}

fn check_snp(policy: &Policy, model: &ModelPolicy, f: &SnpFacts) -> Result<(), PolicyError> {
    let rules = snp_rules(model)?;
    root_rule(policy, model, &f.root)?;
    if f.debug {
        return Err(PolicyError::DebugEnabled);
    }
    mask_rule(rules, f.chip_id_masked, f.chip_key_masked)?;
    measurement_rule(
        policy,
        &f.measurement,
        rules.measurements.contains(&f.measurement),
    )?;
    tcb_rule(&f.tcb, &rules.min_tcb)?;
    if !rules.allowed_vmpl.contains(&f.vmpl) {
        return Err(PolicyError::VmplNotAllowed(f.vmpl));
    }
    if f.migrate_ma && !rules.allow_migration_agent {
        return Err(PolicyError::MigrationAgentNotAllowed);
    }
    if f.guest_svn < rules.min_guest_svn {
        return Err(PolicyError::GuestSvnTooLow {
            found: f.guest_svn,
            min: rules.min_guest_svn,
        });
    }
    Ok(())
}

fn check_tpm(policy: &Policy, model: &ModelPolicy, f: &TpmFacts) -> Result<(), PolicyError> {
    if model.tpm_pcr_sets.is_empty() {
        return Err(PolicyError::UntrustedTee { tee: TeeKind::Tpm });
    }
    // The anchor that vouched for the AK must be one this policy trusts, whatever anchors
    // verification was given.
    match f.ak_anchor {
        AkAnchor::Enrolled => {
            if !policy.trust.tpm_aks_spki_sha256.contains(&f.ak_spki_sha256) {
                return Err(PolicyError::AkNotAllowed);
            }
        }
        AkAnchor::EkCa { ca_sha256 } => {
            if !policy.trust.trusts_ek_ca(&ca_sha256) {
                return Err(PolicyError::EkCaNotTrusted);
            }
        }
    }
    let composite = pcr_composite(&f.pcrs);
    if policy.revoked_measurements.contains(composite.as_slice()) {
        return Err(PolicyError::MeasurementRevoked);
    }
    // The boot-image check runs first: for a changed image it names the event that differs,
    // where the PCR-set check below could only say that a PCR value is not allowed.
    if !model.tpm_boot.is_empty() {
        super::boot::match_boot_image(f.boot.as_ref(), &model.tpm_boot)?;
    }
    if !model.tpm_pcr_sets.iter().any(|set| set.matches(&f.pcrs)) {
        return Err(PolicyError::PcrsNotAllowed);
    }
    Ok(())
}
