//! AK trust through the EK (`POST /v1/attest/credential`, then `POST /v1/attest` with the
//! activated secret) against a live swtpm manufactured with an EK certificate from a CA private
//! to the test; every refusal with its own reason, audit-logged.
#![allow(
    clippy::unwrap_used,
    reason = "tests (and their support module) panic on failure"
)]

mod support;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use confidant_attestation::evidence::Evidence;
use confidant_attester::tpm::{AkBlob, TpmAttester};
use confidant_testkit::swtpm::{Swtpm, manufacture_with_ek_ca};
use confidant_wire::attest::{CredentialRequest, CredentialResponse};
use confidant_wire::routes;
use support::*;

fn pem_entries(ca: &confidant_testkit::swtpm::EkCa) -> String {
    [&ca.issuer_cert_pem, &ca.root_cert_pem]
        .iter()
        .map(|p| format!("'''\n{}'''", std::fs::read_to_string(p).unwrap()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn policy(version: u64, ek_cas: &str, pcr16: &[u8; 32]) -> String {
    format!(
        r#"id = "tpm-ek-test"
version = {version}
[trust]
tpm_aks_spki_sha256 = []
tpm_ek_ca_certs = [{ek_cas}]
[models."{MODEL_ID}"]
digest = "{digest}"
tpm_pcrs = [[{{ pcr = 16, sha256 = "{pcr16}" }}]]
tls_names = ["localhost", "127.0.0.1"]
"#,
        digest = hex::encode(MODEL_DIGEST),
        pcr16 = hex::encode(pcr16),
    )
}

async fn post_credential(
    s: &TestServer,
    nonce: &[u8; 32],
    ek_cert: &[u8],
    ek_public: &[u8],
    ak_public: &[u8],
) -> confidant_testkit::https::Reply {
    let req = CredentialRequest {
        nonce: hex::encode(nonce),
        ek_cert: STANDARD.encode(ek_cert),
        ek_public: STANDARD.encode(ek_public),
        ak_public: STANDARD.encode(ak_public),
    };
    s.client
        .post_json(
            routes::verifier::ATTEST_CREDENTIAL,
            Some(s.token("enclave")),
            &serde_json::to_value(&req).unwrap(),
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tpm_ak_trusted_through_ek_credential_activation() {
    let s = TestServer::start().await;
    let swtpm = Swtpm::start_with_ek_ca().unwrap();
    let tcti = swtpm.tcti();
    let (blob, ek, pcrs) = tokio::task::spawn_blocking({
        let tcti = tcti.clone();
        move || {
            let mut tpm = TpmAttester::connect(&tcti).unwrap();
            tpm.extend_pcr(16, b"confidant test image").unwrap();
            (
                tpm.ak_blob().clone(),
                tpm.ek_certificate().unwrap(),
                tpm.read_pcrs(&[16]).unwrap(),
            )
        }
    })
    .await
    .unwrap();
    let ak_public = blob.public.clone();
    s.put_policy(&policy(2, &pem_entries(swtpm.ek_ca().unwrap()), &pcrs[&16]))
        .await;
    assert_eq!(
        s.import_key(KEY_ID, MODEL_ID, MODEL_DIGEST, MODEL_KEY)
            .await
            .status,
        201
    );
    let enclave = Enclave::new();
    // Quote with the AK (and, given a credential, activate it first) on the swtpm.
    let run = |nonce: [u8; 32], blob: AkBlob, cred: Option<CredentialResponse>| {
        let qd = enclave
            .binding(&nonce, &MODEL_DIGEST)
            .tpm_qualifying_data()
            .to_vec();
        let tcti = tcti.clone();
        tokio::task::spawn_blocking(move || {
            let mut tpm = TpmAttester::load(&tcti, &blob).unwrap();
            let secret = cred.map(|c| {
                tpm.activate_credential(
                    &STANDARD.decode(c.credential_blob).unwrap(),
                    &STANDARD.decode(c.encrypted_secret).unwrap(),
                )
                .unwrap()
                .to_vec()
            });
            (Evidence::Tpm(tpm.quote(&qd, &[16]).unwrap()), secret)
        })
    };

    // Not enrolled, not activated: refused with its own reason, logged.
    let nonce = s.challenge().await;
    let (ev, _) = run(nonce, blob.clone(), None).await.unwrap();
    let r = s.attest(&enclave.request(nonce, ev, MODEL_ID)).await;
    assert_eq!(r.code(), "ak_not_activated");
    assert_eq!(
        s.last_audit_reason().await.as_deref(),
        Some("ak_not_activated")
    );

    // A credential needs an outstanding nonce: unknown, and consumed, nonces are refused.
    let r = post_credential(&s, &[7u8; 32], &ek.certificate, &ek.public, &ak_public).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.code(), "nonce_unknown");
    let r = post_credential(&s, &nonce, &ek.certificate, &ek.public, &ak_public).await;
    assert_eq!(r.code(), "nonce_replayed");

    // Activated, but the secret sent is not the one recovered: refused.
    let nonce = s.challenge().await;
    let r = post_credential(&s, &nonce, &ek.certificate, &ek.public, &ak_public).await;
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    let cred: CredentialResponse = serde_json::from_value(r.json()).unwrap();
    // One credential per nonce.
    let again = post_credential(&s, &nonce, &ek.certificate, &ek.public, &ak_public).await;
    assert_eq!(again.code(), "credential_already_issued");
    let (ev, secret) = run(nonce, blob.clone(), Some(cred)).await.unwrap();
    let mut wrong = secret.unwrap();
    wrong[0] ^= 1;
    let mut req = enclave.request(nonce, ev, MODEL_ID);
    req.activation_secret = Some(wrong);
    assert_eq!(s.attest(&req).await.code(), "ak_not_activated");
    assert!(s.verifier().activations().is_empty(), "dropped on consume");

    // The full round trip: the key is released to the unenrolled but activated AK.
    let nonce = s.challenge().await;
    let r = post_credential(&s, &nonce, &ek.certificate, &ek.public, &ak_public).await;
    let cred: CredentialResponse = serde_json::from_value(r.json()).unwrap();
    let (ev, secret) = run(nonce, blob.clone(), Some(cred)).await.unwrap();
    let mut req = enclave.request(nonce, ev, MODEL_ID);
    req.activation_secret = secret;
    let resp = decode_response(&s.attest(&req).await);
    assert_eq!(resp.wrapped_key.key_id, KEY_ID);
    let last = s.audit_entries().await.pop().unwrap();
    assert_eq!(last["decision"], "accept");
    assert_eq!(last["tee"], "tpm");

    // The secret is single-use: a replayed attest with it fails on the nonce.
    assert_eq!(s.attest(&req).await.code(), "nonce_replayed");

    // The activation went through this TPM's EK CA; if the policy in force no longer lists that
    // CA by the time the quote arrives, the appraisal refuses: the verified quote names the CA
    // that vouched for its AK, and the policy checks that very CA.
    let other_dir = tempfile::tempdir().unwrap();
    let other = manufacture_with_ek_ca(other_dir.path()).unwrap();
    let nonce = s.challenge().await;
    let r = post_credential(&s, &nonce, &ek.certificate, &ek.public, &ak_public).await;
    let cred: CredentialResponse = serde_json::from_value(r.json()).unwrap();
    let (ev, secret) = run(nonce, blob.clone(), Some(cred)).await.unwrap();
    s.put_policy(&policy(3, &pem_entries(&other), &pcrs[&16]))
        .await;
    let mut req = enclave.request(nonce, ev, MODEL_ID);
    req.activation_secret = secret;
    let r = s.attest(&req).await;
    assert_eq!(r.code(), "ek_ca_not_trusted");
    assert_eq!(
        s.last_audit_reason().await.as_deref(),
        Some("ek_ca_not_trusted")
    );

    // A policy trusting another TPM's EK CA: the EK certificate is refused, logged.
    let nonce = s.challenge().await;
    let r = post_credential(&s, &nonce, &ek.certificate, &ek.public, &ak_public).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.code(), "ek_cert_untrusted");
    assert_eq!(
        s.last_audit_reason().await.as_deref(),
        Some("ek_cert_untrusted")
    );
    drop(swtpm);
}
