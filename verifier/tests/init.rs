//! `confidant-verifier init`: it writes everything or nothing, what it writes works together
//! (the policy allows the model, `public-keys.json` is what `GET /v1/keys` serves), and its
//! tokens are addressed to the service that accepts them.
#![allow(
    clippy::unwrap_used,
    reason = "tests (and their support module) panic on failure"
)]

mod support;

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use confidant_attestation::digest::Blake3Digest;
use confidant_attestation::names::SubjectName;
use confidant_attestation::policy::Policy;
use confidant_verifier::config::Config;
use confidant_verifier::init::{
    DEV_AUDIENCE, DEV_ENCLAVE_AUDIENCE, InitError, InitModel, InitOptions, init,
};
use support::TestServer;

const DIGEST: [u8; 32] = [0xd1; 32];
const MEASUREMENT: [u8; 48] = [0x3e; 48];

fn model() -> InitModel {
    InitModel {
        id: "smollm2-135m-instruct".to_owned(),
        digest: Blake3Digest::from_bytes(DIGEST),
        snp_measurements: vec![MEASUREMENT],
        tls_names: vec!["localhost".to_owned(), "127.0.0.1".to_owned()],
    }
}

/// Every entry under `dir`, sorted (to show that nothing was written).
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_missing_dev_pki_is_refused_before_anything_is_written() {
    let parent = tempfile::tempdir().unwrap();
    let state = parent.path().join("state");
    let mut opts = InitOptions::new(&state);
    opts.dev_pki = Some(parent.path().join("dev-pki"));
    let err = init(&opts, confidant_verifier::now_unix()).unwrap_err();
    assert!(matches!(err, InitError::DevPkiMissing(_)), "{err:?}");
    assert!(
        err.to_string().contains("scripts/dev-pki.sh"),
        "the error says how to make it: {err}"
    );
    assert!(
        listing(parent.path()).is_empty(),
        "{:?}",
        listing(parent.path())
    );

    // An existing, empty target stays empty; a directory without the ARK is named as such.
    std::fs::create_dir(&state).unwrap();
    let pki = parent.path().join("not-a-pki");
    std::fs::create_dir(&pki).unwrap();
    opts.dev_pki = Some(pki);
    let err = init(&opts, confidant_verifier::now_unix()).unwrap_err();
    assert!(matches!(err, InitError::DevPki(_, "ark.der")), "{err:?}");
    assert!(listing(&state).is_empty());
    assert_eq!(listing(parent.path()), ["not-a-pki", "state"]);
}

#[test]
fn bad_model_values_are_refused_before_anything_is_written() {
    let parent = tempfile::tempdir().unwrap();
    let state = parent.path().join("state");
    let mut opts = InitOptions::new(&state);
    opts.model = Some(InitModel {
        id: "no spaces".to_owned(),
        ..model()
    });
    let err = init(&opts, confidant_verifier::now_unix()).unwrap_err();
    assert!(matches!(err, InitError::ModelId(_)), "{err:?}");
    opts.model = Some(InitModel {
        snp_measurements: Vec::new(),
        ..model()
    });
    let err = init(&opts, confidant_verifier::now_unix()).unwrap_err();
    assert!(matches!(err, InitError::NoMeasurement), "{err:?}");
    assert!(
        listing(parent.path()).is_empty(),
        "{:?}",
        listing(parent.path())
    );
}

#[test]
fn an_existing_configuration_is_kept_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let opts = InitOptions::new(dir.path());
    init(&opts, confidant_verifier::now_unix()).unwrap();
    let before = std::fs::read(dir.path().join("verifier.toml")).unwrap();
    let err = init(&opts, confidant_verifier::now_unix()).unwrap_err();
    assert!(matches!(err, InitError::Exists(_)), "{err:?}");
    assert_eq!(
        std::fs::read(dir.path().join("verifier.toml")).unwrap(),
        before
    );
    assert!(
        listing(dir.path()).iter().all(|n| !n.starts_with('.')),
        "no staging directory left: {:?}",
        listing(dir.path())
    );
}

/// The JSON payload of a compact JWT (tests only: the signature is checked by the services).
fn payload(token: &str) -> serde_json::Value {
    let part = token.trim().split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_model_the_files_work_together() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = InitOptions::new(dir.path());
    opts.dev_pki = Some(confidant_testkit::dev_pki());
    opts.model = Some(model());
    opts.listen = "127.0.0.1:0".to_owned();
    let out = init(&opts, confidant_verifier::now_unix()).unwrap();
    assert_eq!(out.client, Some(dir.path().join("client.toml")));

    // The policy allows the model with that digest, development evidence included.
    let policy =
        Policy::from_toml(&std::fs::read_to_string(dir.path().join("policy.toml")).unwrap())
            .unwrap();
    assert_eq!(
        policy.model_digest("smollm2-135m-instruct").unwrap(),
        Blake3Digest::from_bytes(DIGEST)
    );
    assert_eq!(
        policy.model("smollm2-135m-instruct").unwrap().tls_names,
        vec![
            SubjectName::parse("localhost").unwrap(),
            SubjectName::parse("127.0.0.1").unwrap()
        ]
    );
    let text = std::fs::read_to_string(dir.path().join("policy.toml")).unwrap();
    assert!(
        text.contains("BLAKE3-256"),
        "the digest is named as what it is"
    );
    assert!(!text.contains("SHA-256 of the plaintext"));

    // The client settings name the files init wrote; the client's policy is the verifier's
    // format with the same reference values.
    let client: toml::Table =
        toml::from_str(&std::fs::read_to_string(dir.path().join("client.toml")).unwrap()).unwrap();
    for key in ["ca", "result_key", "dev_ark", "dev_ask", "policy"] {
        let rel = client[key].as_str().unwrap();
        assert!(dir.path().join(rel).is_file(), "{key} = {rel}");
    }
    let client_policy = Policy::from_toml(
        &std::fs::read_to_string(dir.path().join(client["policy"].as_str().unwrap())).unwrap(),
    )
    .unwrap();
    let verifier_model = policy.model("smollm2-135m-instruct").unwrap();
    assert_eq!(
        client_policy.model("smollm2-135m-instruct").unwrap(),
        verifier_model
    );
    assert_eq!(client_policy.trust(), policy.trust());
    assert!(verifier_model.allow_dev);
    assert_eq!(
        verifier_model.snp.as_ref().unwrap().measurements,
        std::collections::BTreeSet::from([MEASUREMENT])
    );

    // Tokens: the client's is for the enclave, the others for the verifier.
    for (role, aud) in [
        ("admin", DEV_AUDIENCE),
        ("auditor", DEV_AUDIENCE),
        ("enclave", DEV_AUDIENCE),
        ("client", DEV_ENCLAVE_AUDIENCE),
    ] {
        let token = std::fs::read_to_string(dir.path().join(format!("tokens/{role}.jwt"))).unwrap();
        let claims = payload(&token);
        assert_eq!(claims["aud"], aud, "{role}");
        assert_eq!(claims["roles"][0], role);
    }

    // public-keys.json is exactly what the running verifier serves at GET /v1/keys.
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("public-keys.json")).unwrap())
            .unwrap();
    let config = Config::load(&dir.path().join("verifier.toml")).unwrap();
    let server = TestServer::launch(dir, config).await;
    let served = server.client.get("/v1/keys", None).await;
    assert_eq!(served.status, 200);
    assert_eq!(served.json(), written);
    server.stop().await;
}
