//! The key-release flow over real TLS: accepted SNP (simulated) and TPM (swtpm) evidence, and
//! every refusal with its own reason code, each logged.
#![allow(
    clippy::unwrap_used,
    reason = "tests (and their support module) panic on failure"
)]

mod support;

use confidant_attestation::evidence::Evidence;
use confidant_attestation::keywrap::{WrapKeyPair, WrappedKey, wrap_info};
use confidant_attestation::result::ResultVerifier;
use confidant_attestation::snp::report::layout;
use confidant_testkit::https::Reply;
use confidant_wire::routes;
use support::*;

fn sha256(b: &[u8]) -> [u8; 32] {
    ring::digest::digest(&ring::digest::SHA256, b)
        .as_ref()
        .try_into()
        .unwrap()
}

async fn snp_evidence(s: &TestServer, enclave: &Enclave) -> ([u8; 32], Evidence) {
    let nonce = s.challenge().await;
    (nonce, snp_evidence_for(enclave, nonce))
}

fn snp_evidence_for(enclave: &Enclave, nonce: [u8; 32]) -> Evidence {
    let binding = enclave.binding(&nonce, &MODEL_DIGEST);
    Evidence::SevSnp(sim().attest(binding.as_bytes(), &MEASUREMENT).unwrap())
}

/// Re-signs a simulated report after editing it, with the development VCEK (what a malicious
/// or debug-enabled guest on the dev platform could produce).
fn resign(report: &mut [u8]) {
    let dir = confidant_testkit::dev_pki();
    let pk8 = std::fs::read(dir.join("vcek.key.pk8")).unwrap();
    let rng = ring::rand::SystemRandom::new();
    let key = ring::signature::EcdsaKeyPair::from_pkcs8(
        &ring::signature::ECDSA_P384_SHA384_FIXED_SIGNING,
        &pk8,
        &rng,
    )
    .unwrap();
    let sig = key.sign(&rng, &report[layout::SIGNED]).unwrap();
    let (r, s) = sig.as_ref().split_at(layout::P384_SCALAR);
    let le = |be: &[u8]| be.iter().rev().copied().collect::<Vec<u8>>();
    report[layout::SIG_R.start..layout::SIG_R.start + 48].copy_from_slice(&le(r));
    report[layout::SIG_S.start..layout::SIG_S.start + 48].copy_from_slice(&le(s));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snp_accepted_flow_releases_key_only_to_enclave() {
    let s = snp_server().await;
    let enclave = Enclave::new();
    let (nonce, ev) = snp_evidence(&s, &enclave).await;
    let resp = decode_response(&s.attest(&enclave.request(nonce, ev, MODEL_ID)).await);

    // The result verifies under the published key and says what was appraised.
    let keys = s.client.get(routes::verifier::KEYS, None).await.json();
    let jwk = serde_json::to_string(&keys["keys"][0]).unwrap();
    let rv = ResultVerifier::from_jwk(&jwk).unwrap();
    let claims = rv
        .verify(
            &resp.result,
            "confidant-client",
            confidant_verifier::now_unix(),
        )
        .unwrap()
        .into_claims();
    assert!(claims.dev);
    assert_eq!(claims.policy_version, 2);
    assert_eq!(claims.model_id, MODEL_ID);
    assert_eq!(
        claims.model_digest,
        confidant_attestation::digest::Blake3Digest::from_bytes(MODEL_DIGEST)
    );
    assert_eq!(claims.tls_spki_sha256, sha256(&enclave.tls_spki));

    // The leaf certifies the enclave's TLS key and carries result and evidence, the evidence as
    // the exact bytes sent, which the result and the audit log digest.
    let ext = confidant_attestation::certext::parse(&resp.certificate).unwrap();
    assert_eq!(ext.result, resp.result);
    let sent = enclave.request(nonce, snp_evidence_for(&enclave, nonce), MODEL_ID);
    assert_eq!(claims.evidence_digest, sha256(&ext.evidence));
    assert_ne!(
        sent.evidence, ext.evidence,
        "a fresh report differs (sanity)"
    );
    assert_eq!(ext.spki_sha256, sha256(&enclave.tls_spki));
    let ca_pem = s.client.get(routes::verifier::CA, None).await;
    assert_eq!(ca_pem.status, 200);
    assert_eq!(
        pem::parse(&ca_pem.body).unwrap().contents(),
        resp.ca_certificate.as_slice()
    );

    // The key opens with the enclave's private key and the result-bound info only.
    let wrapped = WrappedKey {
        enc: resp.wrapped_key.enc.clone(),
        ciphertext: resp.wrapped_key.ciphertext.clone(),
    };
    let info = wrap_info(&sha256(&resp.result), &resp.wrapped_key.key_id);
    let key = enclave.wrap.unwrap(&wrapped, &info).unwrap();
    assert_eq!(key.expose_secret(), &MODEL_KEY);
    let stranger = WrapKeyPair::generate(&mut rand::rngs::OsRng);
    assert!(stranger.unwrap(&wrapped, &info).is_err());
    let other_info = wrap_info(&[0; 32], &resp.wrapped_key.key_id);
    assert!(enclave.wrap.unwrap(&wrapped, &other_info).is_err());

    // Logged as an accept naming the key, the result and the evidence bytes received.
    let entries = s.audit_entries().await;
    let last = entries.last().unwrap();
    assert_eq!(last["decision"], "accept");
    assert_eq!(last["evidence_digest"], hex::encode(sha256(&ext.evidence)));
    assert_eq!(last["key_id"], KEY_ID);
    assert_eq!(last["result_digest"], hex::encode(sha256(&resp.result)));
    assert_eq!(last["dev"], true);

    // The same nonce again: replay.
    let (_, ev2) = snp_evidence(&s, &enclave).await;
    let r = s.attest(&enclave.request(nonce, ev2, MODEL_ID)).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.code(), "nonce_replayed");
    assert_eq!(
        s.last_audit_reason().await.as_deref(),
        Some("nonce_replayed")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_nonce_is_refused_and_logged() {
    let s = snp_server_with(|c| c.challenge.ttl_ms = 200).await;
    let enclave = Enclave::new();
    let (nonce, ev) = snp_evidence(&s, &enclave).await;
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let r = s.attest(&enclave.request(nonce, ev, MODEL_ID)).await;
    assert_eq!(r.code(), "nonce_expired");
    assert_eq!(
        s.last_audit_reason().await.as_deref(),
        Some("nonce_expired")
    );
}

/// Each refusal, its code, and the same code in the audit log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_has_its_own_code() {
    let s = snp_server().await;
    let enclave = Enclave::new();
    let sim = sim();
    let mut expected = Vec::new();

    async fn check(s: &TestServer, r: Reply, code: &str, expected: &mut Vec<String>) {
        assert_eq!(r.code(), code, "{:?}", r.json());
        assert!(r.status.is_client_error());
        assert_eq!(s.last_audit_reason().await.as_deref(), Some(code));
        expected.push(code.to_owned());
    }

    // Unknown model id.
    let (nonce, ev) = snp_evidence(&s, &enclave).await;
    let r = s.attest(&enclave.request(nonce, ev, "no-such-model")).await;
    let message = r.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(
        message.contains("policy"),
        "says where the model is missing: {message}"
    );
    check(&s, r, "unknown_model", &mut expected).await;

    // Measurement not allowed.
    let nonce = s.challenge().await;
    let b = enclave.binding(&nonce, &MODEL_DIGEST);
    let ev = Evidence::SevSnp(sim.attest(b.as_bytes(), &[0x22; 48]).unwrap());
    let r = s.attest(&enclave.request(nonce, ev, MODEL_ID)).await;
    check(&s, r, "measurement_not_allowed", &mut expected).await;

    // Binding mismatch: evidence for another TLS key.
    let other = Enclave::new();
    let nonce = s.challenge().await;
    let b = other.binding(&nonce, &MODEL_DIGEST);
    let ev = Evidence::SevSnp(sim.attest(b.as_bytes(), &MEASUREMENT).unwrap());
    let r = s.attest(&enclave.request(nonce, ev, MODEL_ID)).await;
    check(&s, r, "binding_mismatch", &mut expected).await;

    // A certificate name the policy does not list for the model: refused with its own reason,
    // though everything else would pass.
    let (nonce, ev) = snp_evidence(&s, &enclave).await;
    let mut req = enclave.request(nonce, ev, MODEL_ID);
    req.dns_names = vec!["localhost".to_owned(), "evil.example".to_owned()];
    let r = s.attest(&req).await;
    check(&s, r, "certificate_name_not_allowed", &mut expected).await;

    // Evidence bytes that decode but are not canonical (an extra field): refused at the gate,
    // and the log records the digest of exactly the bytes received.
    let (nonce, ev) = snp_evidence(&s, &enclave).await;
    let mut value: ciborium::value::Value = ciborium::from_reader(ev.to_cbor().as_slice()).unwrap();
    if let ciborium::value::Value::Map(m) = &mut value {
        m.push(("extra".into(), 1.into()));
    }
    let mut bytes = Vec::new();
    ciborium::into_writer(&value, &mut bytes).unwrap();
    let r = s
        .attest(&enclave.request_bytes(nonce, bytes.clone(), MODEL_ID))
        .await;
    check(&s, r, "evidence_malformed", &mut expected).await;
    let last = s.audit_entries().await.pop().unwrap();
    assert_eq!(last["evidence_digest"], hex::encode(sha256(&bytes)));

    // Tampered evidence: one byte of the signed report flipped.
    let nonce = s.challenge().await;
    let b = enclave.binding(&nonce, &MODEL_DIGEST);
    let mut ev = sim.attest(b.as_bytes(), &MEASUREMENT).unwrap();
    ev.report[layout::MEASUREMENT.start] ^= 1;
    let r = s
        .attest(&enclave.request(nonce, Evidence::SevSnp(ev), MODEL_ID))
        .await;
    check(&s, r, "evidence_bad_signature", &mut expected).await;

    // Debug policy bit (re-signed with the dev VCEK so only the policy check can catch it).
    let nonce = s.challenge().await;
    let b = enclave.binding(&nonce, &MODEL_DIGEST);
    let mut ev = sim.attest(b.as_bytes(), &MEASUREMENT).unwrap();
    ev.report[layout::POLICY.start + 2] |= 1 << 3; // bit 19: DEBUG
    resign(&mut ev.report);
    let r = s
        .attest(&enclave.request(nonce, Evidence::SevSnp(ev), MODEL_ID))
        .await;
    check(&s, r, "debug_enabled", &mut expected).await;

    // TCB below the floor.
    let mut above = snp_policy(3);
    above.min_tcb.snp = above.min_tcb.snp.saturating_add(1);
    s.put_policy(&above.toml()).await;
    let (nonce, ev) = snp_evidence(&s, &enclave).await;
    let r = s.attest(&enclave.request(nonce, ev, MODEL_ID)).await;
    check(&s, r, "tcb_below_floor", &mut expected).await;

    // Revoked measurement: revoke through the admin API, effective at once.
    s.put_policy(&snp_policy(4).toml()).await;
    let r = s
        .client
        .post_json(
            routes::verifier::ADMIN_REVOKE_MEASUREMENT,
            Some(s.token("admin")),
            &serde_json::json!({ "measurement": hex::encode(MEASUREMENT) }),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(r.json()["version"], 5);
    let (nonce, ev) = snp_evidence(&s, &enclave).await;
    let r = s.attest(&enclave.request(nonce, ev, MODEL_ID)).await;
    check(&s, r, "measurement_revoked", &mut expected).await;

    // A policy whose version does not increase is refused and changes nothing.
    let r = s
        .client
        .put(
            routes::verifier::ADMIN_POLICY,
            Some(s.token("admin")),
            "application/toml",
            snp_policy(5).toml().into_bytes(),
        )
        .await;
    assert_eq!(r.code(), "policy_version_not_increased");
    let r = s
        .client
        .put(
            routes::verifier::ADMIN_POLICY,
            Some(s.token("admin")),
            "application/toml",
            b"id = 1".to_vec(),
        )
        .await;
    assert_eq!(r.code(), "policy_parse");

    // Every refusal is in the log, in order, none with a key.
    let entries = s.audit_entries().await;
    let refusals: Vec<String> = entries
        .iter()
        .filter(|e| e["decision"] == "refuse")
        .map(|e| e["reason"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(refusals, expected);
    assert!(entries.iter().all(|e| e["key_id"].is_null()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tpm_accepted_flow_with_enrolled_ak() {
    use confidant_attester::tpm::TpmAttester;
    let s = TestServer::start().await;
    let swtpm = confidant_testkit::swtpm::Swtpm::start().unwrap();
    let tcti = swtpm.tcti();
    let (ak_spki, blob, pcrs) = tokio::task::spawn_blocking({
        let tcti = tcti.clone();
        move || {
            let mut tpm = TpmAttester::connect(&tcti).unwrap();
            tpm.extend_pcr(16, b"confidant test image").unwrap();
            (
                tpm.ak_spki_der().unwrap(),
                tpm.ak_blob().clone(),
                tpm.read_pcrs(&[16]).unwrap(),
            )
        }
    })
    .await
    .unwrap();
    let policy = format!(
        r#"id = "tpm-test"
version = 2
[trust]
tpm_aks_spki_sha256 = ["{ak}"]
[models."{MODEL_ID}"]
digest = "{digest}"
tpm_pcrs = [[{{ pcr = 16, sha256 = "{pcr16}" }}]]
tls_names = ["localhost", "127.0.0.1"]
"#,
        ak = hex::encode(sha256(&ak_spki)),
        digest = hex::encode(MODEL_DIGEST),
        pcr16 = hex::encode(pcrs[&16]),
    );
    s.put_policy(&policy).await;
    assert_eq!(
        s.import_key(KEY_ID, MODEL_ID, MODEL_DIGEST, MODEL_KEY)
            .await
            .status,
        201
    );
    let enclave = Enclave::new();
    let quote = |nonce: [u8; 32], enrolled: bool| {
        let qd = enclave
            .binding(&nonce, &MODEL_DIGEST)
            .tpm_qualifying_data()
            .to_vec();
        let tcti = tcti.clone();
        let blob = blob.clone();
        tokio::task::spawn_blocking(move || {
            let mut tpm = if enrolled {
                TpmAttester::load(&tcti, &blob).unwrap()
            } else {
                TpmAttester::connect(&tcti).unwrap()
            };
            Evidence::Tpm(tpm.quote(&qd, &[16]).unwrap())
        })
    };

    // The enrolled AK: accepted, key released.
    let nonce = s.challenge().await;
    let ev = quote(nonce, true).await.unwrap();
    let resp = decode_response(&s.attest(&enclave.request(nonce, ev, MODEL_ID)).await);
    let wrapped = WrappedKey {
        enc: resp.wrapped_key.enc.clone(),
        ciphertext: resp.wrapped_key.ciphertext.clone(),
    };
    let info = wrap_info(&sha256(&resp.result), &resp.wrapped_key.key_id);
    assert_eq!(
        enclave
            .wrap
            .unwrap(&wrapped, &info)
            .unwrap()
            .expose_secret(),
        &MODEL_KEY
    );
    let last = s.audit_entries().await.pop().unwrap();
    assert_eq!(last["decision"], "accept");
    assert_eq!(last["tee"], "tpm");
    assert_eq!(last["dev"], false);

    // A fresh, unenrolled AK on the same TPM: refused.
    let nonce = s.challenge().await;
    let ev = quote(nonce, false).await.unwrap();
    let r = s.attest(&enclave.request(nonce, ev, MODEL_ID)).await;
    assert_eq!(r.code(), "evidence_untrusted_signer");
    assert_eq!(
        s.last_audit_reason().await.as_deref(),
        Some("evidence_untrusted_signer")
    );
    drop(swtpm);
}
