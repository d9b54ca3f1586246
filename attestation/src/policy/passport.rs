//! The rules applied to a signed attestation result's claims: what a `passport` client checks
//! against its own policy, with the same rule functions the evidence appraisal uses.
//!
//! A result carries the model, its digest, the measurement (SEV-SNP `MEASUREMENT` or TPM PCR
//! composite), the reported TCB, the development flag and the chip masks; the rules on those run
//! here exactly as on evidence. What a result does not carry (VMPL, guest SVN, migration agent,
//! debug, the exact root, boot images) the verifier checked against its own policy: a passport
//! client trusts it for those. A `direct` client appraises session evidence instead.

use super::facts::{dev_rule, mask_rule, measurement_rule, snp_rules, tcb_rule};
use super::{Policy, PolicyError, TeeKind, pcr_composite};
use crate::result::ResultClaims;
use crate::snp::TcbComponent;

impl Policy {
    /// Checks a verified result's claims against the rules for the model it names.
    pub fn check_result(&self, claims: &ResultClaims) -> Result<(), PolicyError> {
        let model = self.model(&claims.model_id)?;
        if claims.model_digest != model.digest {
            return Err(PolicyError::ModelDigestMismatch);
        }
        match claims.tee {
            TeeKind::SevSnp => {
                let rules = snp_rules(model)?;
                if claims.dev {
                    dev_rule(self, model)?;
                }
                mask_rule(rules, claims.mask_chip_id, claims.mask_chip_key)?;
                let measurement = <[u8; 48]>::try_from(claims.measurement.as_slice())
                    .map_err(|_| PolicyError::MeasurementNotAllowed)?;
                measurement_rule(
                    self,
                    &measurement,
                    rules.measurements.contains(&measurement),
                )?;
                let tcb = claims.tcb.as_ref().ok_or(PolicyError::TcbBelowFloor {
                    component: TcbComponent::Bootloader,
                })?;
                tcb_rule(tcb, &rules.min_tcb)
            }
            TeeKind::Tpm => {
                if model.tpm_pcr_sets.is_empty() {
                    return Err(PolicyError::UntrustedTee { tee: TeeKind::Tpm });
                }
                if claims.dev {
                    dev_rule(self, model)?;
                }
                // Allowed sets match a quote's whole selection, so the composite of an accepted
                // quote is the composite of one allowed set.
                let allowed = model
                    .tpm_pcr_sets
                    .iter()
                    .any(|set| pcr_composite(&set.0).as_slice() == claims.measurement.as_slice());
                measurement_rule(self, &claims.measurement, allowed)
            }
        }
    }
}
