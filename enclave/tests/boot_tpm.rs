//! Boot against a live verifier (in-process, real TLS) with `tee = "tpm"` on a private swtpm:
//! key release only for an enrolled attestation key quoting allowed PCR values; session
//! attestation yields TPM evidence bound to the client's TLS exporter.
#![allow(clippy::unwrap_used, reason = "test helpers outside #[test] functions")]

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use confidant_attestation::binding::{Binding, Session};
use confidant_attestation::evidence::{Evidence, ReceivedEvidence};
use confidant_attestation::tpm::{TpmError, TpmtPublic};
use confidant_attestation::verify::{TrustAnchors, VerifiedKind, VerifyError, verify_evidence};
use confidant_attester::tpm::TpmAttester;
use confidant_enclave::config::{Config, TeeConfig};
use confidant_enclave::supervisor::{Enclave, Phase};
use confidant_testkit::https::{Client, send_on};
use confidant_testkit::swtpm::Swtpm;
use confidant_wire::routes;
use hyper::{Method, StatusCode};
use serde_json::json;
use support::*;

/// The SHA-256 PCRs the enclave quotes (0 and 7 as on a real platform, 16 as the test's "image").
const PCRS: [u8; 3] = [0, 7, 16];
/// What the test measures into PCR 16 before boot.
const IMAGE: &[u8] = b"confidant enclave test image";

/// What the test learned from the TPM before the enclave starts.
struct Prepared {
    /// SHA-256 of the pre-created AK's SPKI (what the policy enrolls).
    ak_fp: [u8; 32],
    /// The quoted PCRs' values after measuring [`IMAGE`].
    pcrs: BTreeMap<u8, [u8; 32]>,
}

/// On the swtpm: measures [`IMAGE`] into PCR 16, creates an AK, reads the PCRs, and (if
/// `ak_dir` is given) stores the AK where the enclave loads it from. If `extend_after` is given,
/// PCR 16 is extended with it after the values were read (so they no longer hold at boot).
/// The connection is closed (and the AK flushed) before returning: the enclave needs the TPM.
async fn prepare_tpm(tcti: &str, ak_dir: Option<&Path>, extend_after: Option<&[u8]>) -> Prepared {
    let tcti = tcti.to_owned();
    let ak_dir = ak_dir.map(Path::to_path_buf);
    let extend_after = extend_after.map(<[u8]>::to_vec);
    tokio::task::spawn_blocking(move || {
        let mut tpm = TpmAttester::connect(&tcti).unwrap();
        tpm.extend_pcr(16, IMAGE).unwrap();
        let ak_fp = sha256(&tpm.ak_spki_der().unwrap());
        let pcrs = tpm.read_pcrs(&PCRS).unwrap();
        if let Some(dir) = ak_dir {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("ak.pub"), &tpm.ak_blob().public).unwrap();
            std::fs::write(dir.join("ak.priv"), &tpm.ak_blob().private).unwrap();
        }
        if let Some(data) = extend_after {
            tpm.extend_pcr(16, &data).unwrap();
        }
        Prepared { ak_fp, pcrs }
    })
    .await
    .unwrap()
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, bytes);
    d.as_ref().try_into().unwrap()
}

/// The test enclave configuration with its `[tee]` table replaced by a TPM one (parsed from TOML).
fn tpm_config(v: &TestVerifier, tcti: &str, ak_dir: &Path) -> Config {
    let mut cfg = enclave_config(v, &sealed_model().path, &verifier_url(v), "");
    cfg.tee = toml::from_str(&format!(
        "kind = \"tpm\"\ntcti = \"{tcti}\"\npcrs = {PCRS:?}\nak_dir = \"{}\"\n",
        ak_dir.display()
    ))
    .unwrap();
    assert!(matches!(cfg.tee, TeeConfig::Tpm { .. }));
    cfg
}

/// A fresh directory for the enclave's AK blobs.
fn ak_dir(tmp: &tempfile::TempDir) -> PathBuf {
    tmp.path().join("tpm-ak")
}

/// Enrolled AK, allowed PCRs: the key is released, the API serves over TLS trusted through the
/// verifier's CA, and session attestation returns TPM evidence bound to the client's exporter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrolled_ak_and_allowed_pcrs_serve() {
    let swtpm = Swtpm::start().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let ak_dir = ak_dir(&tmp);
    let prepared = prepare_tpm(&swtpm.tcti(), Some(&ak_dir), None).await;

    let v = TestVerifier::start().await;
    v.allow_tpm(&prepared.ak_fp, &prepared.pcrs);
    v.import_key();
    let e = Enclave::start(tpm_config(&v, &swtpm.tcti(), &ak_dir))
        .await
        .unwrap();
    let addr = wait_serving(&e).await;
    assert_eq!(e.metrics().unseal_count(), 1);
    let log = v.audit_log();
    let last = log.last().unwrap();
    assert!(last["reason"].is_null(), "{log:?}");
    assert_eq!(last["decision"], "accept");
    assert_eq!(last["tee"], "tpm");
    assert_eq!(last["dev"], false);

    let c = Client::new(addr, &v.ca_pem());
    let token = v.client_token("alice", &["client"]);
    let t = Some(token.as_str());

    let r = c.get(routes::enclave::MODELS, t).await;
    assert_eq!(r.status, StatusCode::OK);
    let j = r.json();
    assert_eq!(j["data"][0]["id"], MODEL_ID);
    assert_eq!(j["data"][0]["digest"], sealed_model().digest.to_hex());

    let chat = json!({
        "model": MODEL_ID,
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
        "max_tokens": 6,
        "temperature": 0,
    });
    let r = c
        .post_json(routes::enclave::CHAT_COMPLETIONS, t, &chat)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let j = r.json();
    assert_eq!(j["object"], "chat.completion");
    assert!(
        !j["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .is_empty()
    );
    let k = j["usage"]["completion_tokens"].as_u64().unwrap();
    assert!((1..=6).contains(&k), "{k}");

    // Session attestation (no bearer token): TPM evidence bound to THIS connection's exporter.
    let tls = c.tls().await.unwrap();
    let exporter: [u8; 32] = tls
        .get_ref()
        .1
        .export_keying_material([0u8; 32], b"EXPORTER-confidant-session", None)
        .unwrap();
    let leaf = tls.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    let nonce = [9u8; 32];
    let r = send_on(
        tls,
        Method::POST,
        routes::enclave::SESSION_ATTESTATION,
        None,
        Some((
            "application/json",
            serde_json::to_vec(&json!({"nonce": hex::encode(nonce)})).unwrap(),
        )),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let j = r.json();
    assert_eq!(j["model_digest"], sealed_model().digest.to_hex());
    let cbor = base64::engine::general_purpose::STANDARD
        .decode(j["evidence"].as_str().unwrap())
        .unwrap();
    let evidence = ReceivedEvidence::decode(&cbor).unwrap();
    let Evidence::Tpm(tpm_ev) = evidence.evidence() else {
        panic!("expected TPM evidence, got {evidence:?}");
    };
    assert_eq!(
        TpmtPublic::parse(&tpm_ev.ak_public).unwrap().fingerprint(),
        prepared.ak_fp,
        "the enclave quotes with the AK it loaded from ak_dir"
    );

    // Unenrolled, the quote does not verify; enrolled, it does, with the policy's PCR values.
    assert!(matches!(
        verify_evidence(
            ReceivedEvidence::decode(&cbor).unwrap(),
            &TrustAnchors::default(),
            now()
        ),
        Err(VerifyError::Tpm(TpmError::UntrustedAk))
    ));
    let mut anchors = TrustAnchors::default();
    anchors.tpm.enroll_ak_spki_sha256(prepared.ak_fp);
    let verify = |cbor: &[u8]| {
        verify_evidence(ReceivedEvidence::decode(cbor).unwrap(), &anchors, now()).unwrap()
    };
    let verified = verify(&cbor);
    let VerifiedKind::Tpm(quote) = verified.kind() else {
        panic!("not a TPM quote");
    };
    assert_eq!(quote.pcrs(), &prepared.pcrs);
    assert_eq!(quote.ak_fingerprint(), prepared.ak_fp);

    let spki = {
        use x509_parser::prelude::FromDer;
        let (_, cert) = x509_parser::certificate::X509Certificate::from_der(&leaf).unwrap();
        cert.public_key().raw.to_vec()
    };
    let binding = |channel: &[u8; 32]| {
        Binding::compute(Session {
            nonce,
            tls_spki_der: spki.clone(),
            exporter: *channel,
            model_digest: sealed_model().digest,
        })
    };
    assert!(
        verify(&cbor).bind(binding(&[0u8; 32])).is_err(),
        "another session's exporter"
    );
    verify(&cbor).bind(binding(&exporter)).unwrap();

    e.shutdown().await.unwrap();
    drop(swtpm);
}

/// The policy's PCR values no longer hold at boot (PCR 16 extended after they were read): the
/// verifier refuses with `pcrs_not_allowed`, the enclave never serves and never unseals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pcrs_not_allowed_never_serves_nor_unseals() {
    let swtpm = Swtpm::start().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let ak_dir = ak_dir(&tmp);
    let prepared = prepare_tpm(&swtpm.tcti(), Some(&ak_dir), Some(b"something else")).await;

    let v = TestVerifier::start().await;
    v.allow_tpm(&prepared.ak_fp, &prepared.pcrs);
    v.import_key();
    let e = Enclave::start(tpm_config(&v, &swtpm.tcti(), &ak_dir))
        .await
        .unwrap();
    eventually("three attempts", Duration::from_secs(30), || {
        e.attempts() >= 3
    })
    .await;
    assert_eq!(e.phase(), Phase::Attesting);
    assert_eq!(e.last_failure(), Some("verifier_refused"));
    assert_eq!(e.local_addr(), None, "nothing listens before key release");
    assert_eq!(e.metrics().unseal_count(), 0, "never read the sealed body");
    let log = v.audit_log();
    assert!(!log.is_empty());
    for entry in &log {
        assert_eq!(entry["decision"], "refuse", "{entry}");
        assert_eq!(entry["reason"], "pcrs_not_allowed", "{entry}");
        assert_eq!(entry["tee"], "tpm", "{entry}");
        assert!(entry["key_id"].is_null(), "{entry}");
    }
    e.shutdown().await.unwrap();
    drop(swtpm);
}

/// The policy enrolls another AK (made on the same TPM but not given to the enclave, which so
/// creates its own on first start): refused, never served, never unsealed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unenrolled_ak_is_refused() {
    let swtpm = Swtpm::start().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let ak_dir = ak_dir(&tmp);
    let prepared = prepare_tpm(&swtpm.tcti(), None, None).await;

    let v = TestVerifier::start().await;
    v.allow_tpm(&prepared.ak_fp, &prepared.pcrs);
    v.import_key();
    let e = Enclave::start(tpm_config(&v, &swtpm.tcti(), &ak_dir))
        .await
        .unwrap();
    eventually("three attempts", Duration::from_secs(30), || {
        e.attempts() >= 3
    })
    .await;
    assert_eq!(e.phase(), Phase::Attesting);
    assert_eq!(e.last_failure(), Some("verifier_refused"));
    assert_eq!(e.local_addr(), None);
    assert_eq!(e.metrics().unseal_count(), 0);
    // The enclave kept the AK it created, and it is not the enrolled one.
    let own = TpmtPublic::parse(&std::fs::read(ak_dir.join("ak.pub")).unwrap()).unwrap();
    assert!(ak_dir.join("ak.priv").is_file());
    assert_ne!(own.fingerprint(), prepared.ak_fp);
    let log = v.audit_log();
    assert!(!log.is_empty());
    for entry in &log {
        assert_eq!(entry["decision"], "refuse", "{entry}");
        // An AK the policy does not list is never enrolled, so its quote does not verify.
        assert_eq!(entry["reason"], "evidence_untrusted_signer", "{entry}");
        assert!(entry["key_id"].is_null(), "{entry}");
    }
    e.shutdown().await.unwrap();
    drop(swtpm);
}

/// `[tee]` for TPM with `ak_trust = "ek"` (the AK is trusted through credential activation).
fn tpm_ek_config(v: &TestVerifier, tcti: &str, ak_dir: &Path) -> Config {
    let mut cfg = enclave_config(v, &sealed_model().path, &verifier_url(v), "");
    cfg.tee = toml::from_str(&format!(
        "kind = \"tpm\"\ntcti = \"{tcti}\"\npcrs = {PCRS:?}\nak_dir = \"{}\"\nak_trust = \"ek\"\n",
        ak_dir.display()
    ))
    .unwrap();
    cfg
}

/// A policy enrolling no AK but trusting the EK CA `ca` (inline PEM), for the quoted PCRs.
fn allow_tpm_ek(
    v: &TestVerifier,
    ca: &confidant_testkit::swtpm::EkCa,
    pcrs: &BTreeMap<u8, [u8; 32]>,
) {
    let cas: Vec<String> = [&ca.issuer_cert_pem, &ca.root_cert_pem]
        .iter()
        .map(|p| format!("'''\n{}'''", std::fs::read_to_string(p).unwrap()))
        .collect();
    let set: Vec<String> = pcrs
        .iter()
        .map(|(i, value)| format!("{{ pcr = {i}, sha256 = \"{}\" }}", hex::encode(value)))
        .collect();
    let policy = format!(
        r#"id = "enclave-tpm-ek-test"
version = 100
[trust]
tpm_aks_spki_sha256 = []
tpm_ek_ca_certs = [{cas}]
[models."{MODEL_ID}"]
digest = "{digest}"
tpm_pcrs = [[{set}]]
tls_names = ["localhost", "127.0.0.1"]
"#,
        cas = cas.join(", "),
        digest = sealed_model().digest.to_hex(),
        set = set.join(", "),
    );
    v.verifier().replace_policy("test-admin", &policy).unwrap();
}

/// `ak_trust = "ek"`, a fresh AK (none enrolled), the policy trusting the swtpm's EK CA: the
/// credential round trip proves the AK, the key is released and the enclave serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ek_activated_ak_serves() {
    let swtpm = Swtpm::start_with_ek_ca().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let ak_dir = ak_dir(&tmp);
    let prepared = prepare_tpm(&swtpm.tcti(), None, None).await;

    let v = TestVerifier::start().await;
    allow_tpm_ek(&v, swtpm.ek_ca().unwrap(), &prepared.pcrs);
    v.import_key();
    let e = Enclave::start(tpm_ek_config(&v, &swtpm.tcti(), &ak_dir))
        .await
        .unwrap();
    let addr = wait_serving(&e).await;
    assert_eq!(e.metrics().unseal_count(), 1);
    let log = v.audit_log();
    let last = log.last().unwrap();
    assert_eq!(last["decision"], "accept", "{log:?}");
    assert_eq!(last["tee"], "tpm");
    // The AK the enclave created is not in the policy: it was trusted through the EK.
    let own = TpmtPublic::parse(&std::fs::read(ak_dir.join("ak.pub")).unwrap()).unwrap();
    assert_ne!(own.fingerprint(), prepared.ak_fp);
    assert!(v.verifier().activations().is_empty());

    let c = Client::new(addr, &v.ca_pem());
    let token = v.client_token("alice", &["client"]);
    let r = c.get(routes::enclave::MODELS, Some(token.as_str())).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["data"][0]["id"], MODEL_ID);
    e.shutdown().await.unwrap();
    drop(swtpm);
}

/// `ak_trust = "ek"` but the policy trusts another TPM's EK CA: the credential is refused
/// (`ek_cert_untrusted`, logged), nothing is released, served or unsealed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ek_cert_from_untrusted_ca_never_serves() {
    let swtpm = Swtpm::start_with_ek_ca().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let ak_dir = ak_dir(&tmp);
    let prepared = prepare_tpm(&swtpm.tcti(), None, None).await;
    let other_dir = tempfile::tempdir().unwrap();
    let other = confidant_testkit::swtpm::manufacture_with_ek_ca(other_dir.path()).unwrap();

    let v = TestVerifier::start().await;
    allow_tpm_ek(&v, &other, &prepared.pcrs);
    v.import_key();
    let e = Enclave::start(tpm_ek_config(&v, &swtpm.tcti(), &ak_dir))
        .await
        .unwrap();
    eventually("three attempts", Duration::from_secs(30), || {
        e.attempts() >= 3
    })
    .await;
    assert_eq!(e.phase(), Phase::Attesting);
    assert_eq!(e.last_failure(), Some("verifier_refused"));
    assert_eq!(e.local_addr(), None);
    assert_eq!(e.metrics().unseal_count(), 0);
    let log = v.audit_log();
    assert!(!log.is_empty());
    for entry in &log {
        assert_eq!(entry["decision"], "refuse", "{entry}");
        assert_eq!(entry["reason"], "ek_cert_untrusted", "{entry}");
        assert_eq!(entry["tee"], "tpm", "{entry}");
        assert!(entry["key_id"].is_null(), "{entry}");
    }
    e.shutdown().await.unwrap();
    drop(swtpm);
}
