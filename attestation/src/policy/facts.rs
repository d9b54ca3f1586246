//! The facts appraisal looks at, taken from verified evidence in ONE place ([`AppraisalInput::from_verified`],
//! the only code that reads SEV-SNP / TPM accessors), and the rules over them ([`check`]), a pure
//! function of (policy, model, facts) so every rule is unit-tested on facts directly.

use std::collections::BTreeMap;

use super::{ModelPolicy, Policy, PolicyError, TeeKind};
use crate::snp::{Product, TcbComponent, TcbVersion};
use crate::tpm::BootImageEvents;
use crate::verify::{VerifiedEvidence, VerifiedKind};

/// What the rules look at, independent of how the TEE encodes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AppraisalInput {
    pub tee: TeeKind,
    /// SEV-SNP `MEASUREMENT` (48 bytes), or for TPM the PCR composite (see [`pcr_composite`]).
    pub measurement: Vec<u8>,
    /// SEV-SNP only: the AMD product (for AMD-rooted evidence) and `REPORTED_TCB`.
    pub product: Option<Product>,
    pub tcb: Option<TcbVersion>,
    pub debug: bool,
    pub migrate_ma: bool,
    pub vmpl: u32,
    pub guest_svn: u32,
    /// TPM only: the quoted SHA-256 PCRs and the attestation key's SPKI fingerprint.
    pub pcrs: BTreeMap<u8, [u8; 32]>,
    pub ak_spki_sha256: Option<[u8; 32]>,
    /// TPM only: boot-image facts of the replayed event log, if the evidence carried one.
    pub boot: Option<BootImageEvents>,
    /// Evidence chained to a development root.
    pub dev: bool,
}

impl AppraisalInput {
    /// The seam with the per-TEE modules: the only function that reads their verified values.
    pub(crate) fn from_verified(ev: &VerifiedEvidence) -> Self {
        match ev.kind() {
            VerifiedKind::SevSnp(v) => {
                let r = v.report();
                AppraisalInput {
                    tee: TeeKind::SevSnp,
                    measurement: r.measurement.to_vec(),
                    product: Some(v.product()),
                    tcb: Some(r.reported_tcb),
                    debug: r.policy.debug(),
                    migrate_ma: r.policy.migrate_ma(),
                    vmpl: r.vmpl,
                    guest_svn: r.guest_svn,
                    pcrs: BTreeMap::new(),
                    ak_spki_sha256: None,
                    boot: None,
                    dev: v.is_dev(),
                }
            }
            VerifiedKind::Tpm(q) => AppraisalInput {
                tee: TeeKind::Tpm,
                measurement: pcr_composite(q.pcrs()).to_vec(),
                product: None,
                tcb: None,
                debug: false,
                migrate_ma: false,
                vmpl: 0,
                guest_svn: 0,
                pcrs: q.pcrs().clone(),
                ak_spki_sha256: Some(q.ak_fingerprint()),
                boot: q.boot().cloned(),
                dev: false,
            },
        }
    }
}

/// The TPM "measurement" carried in results and matched by `revoked_measurements`:
/// SHA-256 over `index (1 byte) || value (32 bytes)` for every quoted SHA-256 PCR, by ascending
/// index.
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

/// The first component in which `tcb` is below `floor` (bootloader, tee, snp, microcode, fmc).
/// A floor with `fmc` requires the TCB to carry one.
pub(crate) fn tcb_below(tcb: &TcbVersion, floor: &TcbVersion) -> Option<TcbComponent> {
    if tcb.bootloader < floor.bootloader {
        Some(TcbComponent::Bootloader)
    } else if tcb.tee < floor.tee {
        Some(TcbComponent::Tee)
    } else if tcb.snp < floor.snp {
        Some(TcbComponent::Snp)
    } else if tcb.microcode < floor.microcode {
        Some(TcbComponent::Microcode)
    } else if floor.fmc.is_some_and(|f| tcb.fmc.is_none_or(|v| v < f)) {
        Some(TcbComponent::Fmc)
    } else {
        None
    }
}

/// Every rule, in a fixed order (so a refusal always names the same first failed check). Pure.
pub(crate) fn check(
    policy: &Policy,
    model: &ModelPolicy,
    f: &AppraisalInput,
) -> Result<(), PolicyError> {
    match f.tee {
        TeeKind::SevSnp => check_snp(policy, model, f),
        TeeKind::Tpm => check_tpm(policy, model, f),
    }
}

fn check_snp(policy: &Policy, model: &ModelPolicy, f: &AppraisalInput) -> Result<(), PolicyError> {
    let rules = model.snp.as_ref().ok_or(PolicyError::UntrustedTee {
        tee: TeeKind::SevSnp,
    })?;
    if f.dev {
        // Development evidence needs both the model's consent and a pinned development root in
        // this policy (anchors built elsewhere do not count).
        if !model.allow_dev || policy.trust.dev_root_ark_sha256.is_none() {
            return Err(PolicyError::DevEvidenceNotAllowed);
        }
    } else {
        match f.product {
            Some(p) if policy.trust.amd_products.contains(&p) => {}
            Some(p) => return Err(PolicyError::ProductNotTrusted(p)),
            None => {
                return Err(PolicyError::UntrustedTee {
                    tee: TeeKind::SevSnp,
                });
            }
        }
    }
    if f.debug {
        return Err(PolicyError::DebugEnabled);
    }
    if policy.revoked_measurements.contains(&f.measurement) {
        return Err(PolicyError::MeasurementRevoked);
    }
    let allowed = <[u8; 48]>::try_from(f.measurement.as_slice())
        .is_ok_and(|m| rules.measurements.contains(&m));
    if !allowed {
        return Err(PolicyError::MeasurementNotAllowed);
    }
    let tcb = f.tcb.as_ref().ok_or(PolicyError::TcbBelowFloor {
        component: TcbComponent::Bootloader,
    })?;
    if let Some(component) = tcb_below(tcb, &rules.min_tcb) {
        return Err(PolicyError::TcbBelowFloor { component });
    }
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

fn check_tpm(policy: &Policy, model: &ModelPolicy, f: &AppraisalInput) -> Result<(), PolicyError> {
    if model.tpm_pcr_sets.is_empty() {
        return Err(PolicyError::UntrustedTee { tee: TeeKind::Tpm });
    }
    if f.dev && !model.allow_dev {
        return Err(PolicyError::DevEvidenceNotAllowed);
    }
    // The policy's AK list is enforced here too, whatever anchors verification was given.
    let ak_ok = f
        .ak_spki_sha256
        .is_some_and(|fp| policy.trust.tpm_aks_spki_sha256.contains(&fp));
    if !ak_ok {
        return Err(PolicyError::AkNotAllowed);
    }
    if policy.revoked_measurements.contains(&f.measurement) {
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
