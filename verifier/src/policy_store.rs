//! The current appraisal policy (placeholder until `confidant_attestation::policy` lands).

/// A development policy.
pub fn dev_policy_toml(_dev: bool) -> String {
    String::new()
}
