//! `[trust] tpm_ek_ca_certs`: inline PEM certificates, parsed to DER at load; bad PEM refused.
#![allow(
    clippy::unwrap_used,
    reason = "test support code: a panic is a test failure"
)]

use confidant_attestation::policy::{Policy, PolicyError};

fn policy(entries: &str) -> Result<Policy, PolicyError> {
    Policy::from_toml(&format!(
        "id = \"p\"\nversion = 1\n[trust]\ntpm_ek_ca_certs = [{entries}]\n"
    ))
}

fn cert_pem() -> (Vec<u8>, String) {
    let der = confidant_testkit::read_testdata("snp/virtee-milan/vcek.der");
    let pem = pem::encode(&pem::Pem::new("CERTIFICATE", der.clone()));
    (der, pem)
}

#[test]
fn ek_ca_certs_parse_to_der() {
    let (der, pem) = cert_pem();
    let p = policy(&format!("'''\n{pem}'''")).unwrap();
    assert_eq!(p.trust().tpm_ek_cas(), std::slice::from_ref(&der));
    // Several blocks in one entry, and duplicates, give each certificate once.
    let p = policy(&format!("'''\n{pem}{pem}''', '''{pem}'''")).unwrap();
    assert_eq!(p.trust().tpm_ek_cas(), &[der]);
    // None listed: none trusted.
    assert!(policy("").unwrap().trust().tpm_ek_cas().is_empty());
}

#[test]
fn bad_ek_ca_pem_is_refused() {
    let (der, pem) = cert_pem();
    let invalid = |r: Result<Policy, PolicyError>| match r {
        Err(PolicyError::Invalid { field, .. }) => assert_eq!(field, "trust.tpm_ek_ca_certs"),
        other => panic!("{other:?}"),
    };
    invalid(policy("\"not pem\""));
    invalid(policy("\"\""));
    let key = pem::encode(&pem::Pem::new("PRIVATE KEY", der.clone()));
    invalid(policy(&format!("'''\n{key}'''")));
    let garbage = pem::encode(&pem::Pem::new("CERTIFICATE", vec![0x30, 0x03, 1, 2, 3]));
    invalid(policy(&format!("'''\n{garbage}'''")));
    // A truncated PEM block.
    invalid(policy(&format!("'''\n{}'''", &pem[..pem.len() - 30])));
    let e = policy("\"x\"").unwrap_err();
    assert_eq!(e.code(), "policy_invalid");
    assert!(e.to_string().contains("tpm_ek_ca_certs"), "{e}");
}
