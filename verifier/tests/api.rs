//! Authentication, roles, rate limits, key administration and the audit log over real TLS.
#![allow(
    clippy::unwrap_used,
    reason = "tests (and their support module) panic on failure"
)]

mod support;

use confidant_attestation::audit::{verify_checkpoint, verify_inclusion, verify_log};
use confidant_attestation::evidence::Evidence;
use confidant_verifier::init::DEV_AUDIENCE;
use confidant_wire::routes;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_roles() {
    let s = TestServer::start().await;
    let c = &s.client;
    let admin_routes = [routes::verifier::ADMIN_KEYS, routes::verifier::ADMIN_POLICY];
    let auditor_routes = [
        &format!("{}?from=0", routes::verifier::AUDIT),
        routes::verifier::AUDIT_CHECKPOINT,
    ];
    for path in admin_routes.iter().chain(auditor_routes.iter()) {
        let r = c.get(path, None).await;
        assert_eq!(r.status, 401, "{path}");
        assert_eq!(r.code(), "missing_token");
        let r = c.get(path, Some("not.a.token")).await;
        assert_eq!(r.status, 401, "{path}");
        assert_eq!(r.code(), "invalid_token");
    }
    // A token signed by another issuer key.
    let other = confidant_service::JwtIssuer::generate(Some("dev-1".into())).unwrap();
    let forged = other
        .mint(&confidant_service::jwt::TokenClaims::new(
            confidant_verifier::init::DEV_ISSUER,
            confidant_verifier::init::DEV_AUDIENCE,
            "mallory",
            &["admin"],
            confidant_verifier::now_unix(),
            600,
        ))
        .unwrap();
    assert_eq!(
        c.get(routes::verifier::ADMIN_KEYS, Some(&forged))
            .await
            .status,
        401
    );

    // The development client token is addressed to the enclave: the verifier refuses it and
    // says why.
    let r = c.get("/v1/admin/keys", Some(s.token("client"))).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.code(), "wrong_audience");
    let message = r.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(
        message.contains("audience") && message.contains(DEV_AUDIENCE),
        "{message}"
    );
    let client = s.mint(DEV_AUDIENCE, "client");
    let token = |role: &str| match role {
        "client" => client.clone(),
        other => s.token(other).to_owned(),
    };

    for path in admin_routes {
        for role in ["auditor", "enclave", "client"] {
            let r = c.get(path, Some(&token(role))).await;
            assert_eq!(r.status, 403, "{path} as {role}");
            assert_eq!(r.code(), "forbidden");
        }
        assert_eq!(c.get(path, Some(s.token("admin"))).await.status, 200);
    }
    for path in auditor_routes {
        for role in ["admin", "enclave", "client"] {
            assert_eq!(
                c.get(path, Some(&token(role))).await.status,
                403,
                "{path} as {role}"
            );
        }
        assert_eq!(c.get(path, Some(s.token("auditor"))).await.status, 200);
    }
    // Challenge and attest: enclaves only.
    for role in ["admin", "auditor", "client"] {
        let r = c
            .post_json(
                routes::verifier::CHALLENGE,
                Some(&token(role)),
                &serde_json::json!({}),
            )
            .await;
        assert_eq!(r.status, 403);
        let r = c
            .post_cbor(routes::verifier::ATTEST, Some(&token(role)), vec![0xa0])
            .await;
        assert_eq!(r.status, 403);
    }
    assert_eq!(
        c.post_json(routes::verifier::CHALLENGE, None, &serde_json::json!({}))
            .await
            .status,
        401
    );
    // Public pins need no token.
    assert_eq!(c.get(routes::verifier::CA, None).await.status, 200);
    assert_eq!(c.get(routes::verifier::KEYS, None).await.status, 200);
    // Unknown route and malformed attest body: JSON errors with codes.
    assert_eq!(c.get("/v1/nope", None).await.code(), "not_found");
    // A wrong method says which one the route takes (the checkpoint is a GET).
    let r = c
        .post_json(
            "/v1/audit/checkpoint",
            Some(s.token("auditor")),
            &serde_json::json!({}),
        )
        .await;
    assert_eq!(r.status, 405);
    assert_eq!(r.code(), "method_not_allowed");
    let allow = r.headers["allow"].to_str().unwrap();
    assert!(allow.contains("GET"), "{allow}");
    let r = c
        .post_cbor(
            routes::verifier::ATTEST,
            Some(s.token("enclave")),
            b"\xff\xff".to_vec(),
        )
        .await;
    assert_eq!(r.code(), "malformed_request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn challenge_rate_limit_answers_429_with_retry_after() {
    let s = TestServer::start_with(|c| {
        c.rate_limit.per_second = 0.01;
        c.rate_limit.burst = 3;
    })
    .await;
    for _ in 0..3 {
        s.challenge().await;
    }
    let r = s
        .client
        .post_json(
            routes::verifier::CHALLENGE,
            Some(s.token("enclave")),
            &serde_json::json!({}),
        )
        .await;
    assert_eq!(r.status, 429);
    assert_eq!(r.code(), "rate_limited");
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_admin_import_rotate_revoke() {
    let s = snp_server().await;
    let admin = Some(s.token("admin"));
    // Duplicate id and bad key length.
    assert_eq!(
        s.import_key(KEY_ID, "other", MODEL_DIGEST, [1; 32])
            .await
            .code(),
        "key_exists"
    );
    let r = s
        .client
        .post_json(
            routes::verifier::ADMIN_KEYS,
            admin,
            &serde_json::json!({"key_id": "k9", "key": "AAAA", "model_id": "m", "model_digest": hex::encode([0u8; 32])}),
        )
        .await;
    assert_eq!(r.code(), "invalid_key");
    // Rotate: new key active, old key retired but still releasable by id.
    let r = s
        .client
        .post_json(
            &routes::verifier::admin_key_rotate(KEY_ID),
            admin,
            &serde_json::json!({"new_key_id": "key-2", "key": base64_key([7; 32])}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.json());
    let enclave = Enclave::new();
    let attest = |key_id: Option<&str>| {
        let key_id = key_id.map(str::to_owned);
        let s = &s;
        let enclave = &enclave;
        async move {
            let nonce = s.challenge().await;
            let b = enclave.binding(&nonce, &MODEL_DIGEST);
            let ev = Evidence::SevSnp(sim().attest(b.as_bytes(), &MEASUREMENT).unwrap());
            let mut req = enclave.request(nonce, ev, MODEL_ID);
            req.key_id = key_id;
            s.attest(&req).await
        }
    };
    let resp = decode_response(&attest(None).await);
    assert_eq!(resp.wrapped_key.key_id, "key-2");
    let resp = decode_response(&attest(Some(KEY_ID)).await);
    assert_eq!(resp.wrapped_key.key_id, KEY_ID);
    // Revoke the old key: no longer released, reason logged.
    let r = s
        .client
        .request(
            hyper::Method::POST,
            &routes::verifier::admin_key_revoke(KEY_ID),
            admin,
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"], "revoked");
    let r = attest(Some(KEY_ID)).await;
    assert_eq!(r.code(), "key_revoked");
    assert_eq!(s.last_audit_reason().await.as_deref(), Some("key_revoked"));
    // The store on disk holds no plaintext key.
    let raw = std::fs::read(s.path("keys.json")).unwrap();
    assert!(!raw.windows(32).any(|w| w == [7u8; 32] || w == MODEL_KEY));
}

fn base64_key(k: [u8; 32]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(k)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_log_verifies_and_torn_tail_is_handled() {
    let s = snp_server().await;
    let enclave = Enclave::new();
    // One accept, one refusal.
    let nonce = s.challenge().await;
    let b = enclave.binding(&nonce, &MODEL_DIGEST);
    let ev = Evidence::SevSnp(sim().attest(b.as_bytes(), &MEASUREMENT).unwrap());
    decode_response(
        &s.attest(&enclave.request(nonce, ev.clone(), MODEL_ID))
            .await,
    );
    let r = s.attest(&enclave.request(nonce, ev, MODEL_ID)).await;
    assert_eq!(r.code(), "nonce_replayed");

    // Signed checkpoint, inclusion and consistency proofs.
    let auditor = Some(s.token("auditor"));
    let cp = s
        .client
        .get(routes::verifier::AUDIT_CHECKPOINT, auditor)
        .await
        .json();
    let pk = hex::decode(cp["public_key"].as_str().unwrap()).unwrap();
    let keys = s.client.get(routes::verifier::KEYS, None).await.json();
    assert_eq!(keys["audit_checkpoint_key"], cp["public_key"]);
    let checkpoint = verify_checkpoint(cp["checkpoint"].as_str().unwrap().as_bytes(), &pk).unwrap();
    assert_eq!(checkpoint.size, 2);
    let log = std::fs::read(s.path("audit.log")).unwrap();
    let lines: Vec<&[u8]> = log
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let proof = s
        .client
        .get(
            &format!("{}?index=0&size=2", routes::verifier::AUDIT_PROOF_INCLUSION),
            auditor,
        )
        .await
        .json();
    let hashes: Vec<[u8; 32]> = proof["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            hex::decode(h.as_str().unwrap())
                .unwrap()
                .try_into()
                .unwrap()
        })
        .collect();
    let leaf = confidant_attestation::audit::leaf_hash(lines[0]);
    verify_inclusion(&leaf, 0, 2, &hashes, &checkpoint.root).unwrap();
    let r = s
        .client
        .get(
            &format!("{}?from=1&to=2", routes::verifier::AUDIT_PROOF_CONSISTENCY),
            auditor,
        )
        .await;
    assert_eq!(r.status, 200);
    let r = s
        .client
        .get(
            &format!("{}?index=5&size=2", routes::verifier::AUDIT_PROOF_INCLUSION),
            auditor,
        )
        .await;
    assert_eq!(r.code(), "invalid_range");

    // The file verifies offline against the checkpoint the verifier recorded.
    let cps = std::fs::read(s.path("audit.log.checkpoints")).unwrap();
    let summary = verify_log(&log, &[cps.as_slice()], &pk).unwrap();
    assert_eq!((summary.accepted, summary.refused), (1, 1));

    // A torn tail: refused at start-up by default, moved aside when configured.
    let (dir, mut config) = s.stop().await;
    let path = dir.path().join("audit.log");
    let mut torn = log.clone();
    torn.extend_from_slice(br#"{"seq":2,"time":1"#);
    std::fs::write(&path, &torn).unwrap();
    assert!(
        confidant_verifier::server::start(config.clone())
            .await
            .is_err()
    );
    config.audit.torn_tail = confidant_verifier::config::TornTail::MoveAside;
    let s = TestServer::launch(dir, config).await;
    assert_eq!(s.audit_entries().await.len(), 2);
    assert_eq!(std::fs::read(s.path("audit.log")).unwrap(), log);
}
