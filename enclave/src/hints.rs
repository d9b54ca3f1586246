//! What to do about a verifier refusal, for whoever reads the enclave's log. The refusals a new
//! deployment meets first (the policy does not know the model or this build, the key was never
//! registered, the development root is not trusted) each get the fix, with the values to put
//! where: this enclave's model id and digest, its key id, and under the simulated TEE its launch
//! measurement. Only public values appear (ids, digests, measurements).

use crate::boot::BootError;
use crate::verifier_client::VerifierError;

/// What the enclave knows about itself.
#[derive(Debug, Clone)]
pub struct Subject<'a> {
    pub model_id: &'a str,
    pub model_digest: &'a confidant_attestation::digest::Blake3Digest,
    pub key_id: &'a str,
    /// `sim`, `snp` or `tpm`.
    pub tee: &'static str,
    /// The simulated TEE's launch measurement (SHA-384 of this executable).
    pub sim_measurement: Option<&'a [u8; 48]>,
}

/// Where the verifier's policy lives, for the messages below.
const POLICY_FILE: &str = "the verifier's policy file (its configuration's [policy] path; \
                           `confidant-verifier init DIR` writes DIR/policy.toml)";
/// How the verifier picks up a changed policy.
const RELOAD: &str = "then restart the verifier (or PUT the new policy, version increased, to \
                      /v1/admin/policy)";

/// The fix for `error`, if it is a refusal with a known remedy.
pub fn for_error(error: &BootError, s: &Subject<'_>) -> Option<String> {
    match error {
        BootError::Verifier(VerifierError::Refused { code, .. }) => for_refusal(code, s),
        _ => None,
    }
}

/// The fix for the verifier's refusal `code`.
pub fn for_refusal(code: &str, s: &Subject<'_>) -> Option<String> {
    let id = s.model_id;
    let digest = s.model_digest.to_hex();
    let measurement = measurement_entry(s);
    match code {
        "unknown_model" => Some(format!(
            "the verifier's policy has no model {id:?}: add to {POLICY_FILE} the table \
             [models.{id:?}] with digest = \"{digest}\" (BLAKE3-256, from the sealed model's \
             header), {measurement}; {RELOAD}"
        )),
        "measurement_not_allowed" | "untrusted_tee" => Some(format!(
            "the verifier's policy does not allow this enclave's measurement for {id:?}: in \
             {POLICY_FILE}, table [models.{id:?}], set {measurement}; {RELOAD}"
        )),
        "dev_evidence_not_allowed" => Some(format!(
            "this enclave runs on development (simulated) evidence: set allow_dev = true in \
             [models.{id:?}] of {POLICY_FILE} (development only); {RELOAD}"
        )),
        "evidence_untrusted_signer" if s.tee == "sim" => Some(
            "the verifier does not trust this enclave's development root: give it the same \
             scripts/dev-pki.sh directory as this enclave's [tee] dev_pki (`confidant-verifier \
             init DIR --dev-pki DEV_PKI`, or [policy] dev_ark/dev_ask and the policy's \
             trust.dev_root_ark_sha256)"
                .to_owned(),
        ),
        "no_key_for_model" | "key_not_found" => Some(format!(
            "the verifier holds no key {key:?} for model {id:?}: register the key `confidant \
             model seal` wrote: `confidant model register --verifier URL --ca VERIFIER_TLS_CERT \
             --token-file ADMIN_TOKEN --key-file KEY_FILE --key-id {key} --model-id {id} \
             --digest {digest}`",
            key = s.key_id
        )),
        "key_model_digest_mismatch" => Some(format!(
            "the key registered for {id:?} belongs to another model digest: register this \
             sealed model's key (digest {digest}) under key id {:?}",
            s.key_id
        )),
        _ => None,
    }
}

/// The reference value the policy needs for this enclave, as a policy line.
fn measurement_entry(s: &Subject<'_>) -> String {
    match (s.tee, s.sim_measurement) {
        ("sim", Some(m)) => format!(
            "snp_measurements = [\"{}\"] (this build's simulated measurement, as `confidant \
             measure sim --binary {}` prints it), min_tcb = {{ bootloader = 0, tee = 0, snp = 0, \
             microcode = 0 }} and allow_dev = true",
            hex::encode(m),
            current_exe()
        ),
        ("tpm", _) => "tpm_pcrs (the PCR values of this VM's measured boot, see \
                       `confidant vm measure`)"
            .to_owned(),
        _ => "snp_measurements = [\"<the launch measurement of this VM image>\"] and a min_tcb \
              floor"
            .to_owned(),
    }
}

fn current_exe() -> String {
    std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "$(command -v confidant-enclave)".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use confidant_attestation::digest::Blake3Digest;

    fn subject<'a>(m: &'a [u8; 48], d: &'a Blake3Digest) -> Subject<'a> {
        Subject {
            model_id: "smollm2-135m-instruct",
            model_digest: d,
            key_id: "smollm2-v1",
            tee: "sim",
            sim_measurement: Some(m),
        }
    }

    #[test]
    fn unknown_model_names_the_policy_file_and_the_values_to_add() {
        let (m, d) = ([0xab; 48], Blake3Digest::from_bytes([0xcd; 32]));
        let hint = for_refusal("unknown_model", &subject(&m, &d)).unwrap();
        assert!(hint.contains("policy.toml"), "{hint}");
        assert!(
            hint.contains("[models.\"smollm2-135m-instruct\"]"),
            "{hint}"
        );
        assert!(hint.contains(&d.to_hex()), "{hint}");
        assert!(hint.contains(&hex::encode(m)), "{hint}");
        assert!(hint.contains("confidant measure sim --binary"), "{hint}");
        assert!(hint.contains("allow_dev = true"), "{hint}");
    }

    #[test]
    fn only_known_refusals_get_a_hint() {
        let (m, d) = ([1; 48], Blake3Digest::from_bytes([2; 32]));
        assert!(for_refusal("nonce_expired", &subject(&m, &d)).is_none());
        let hint = for_refusal("no_key_for_model", &subject(&m, &d)).unwrap();
        assert!(hint.contains("confidant model register"), "{hint}");
        assert!(hint.contains("--key-id smollm2-v1"), "{hint}");
        let snp = Subject {
            tee: "snp",
            sim_measurement: None,
            ..subject(&m, &d)
        };
        let hint = for_refusal("measurement_not_allowed", &snp).unwrap();
        assert!(hint.contains("launch measurement"), "{hint}");
        assert!(for_refusal("evidence_untrusted_signer", &snp).is_none());
    }
}
