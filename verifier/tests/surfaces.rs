//! The surfaces a reviewer probes first: the admin and auditor APIs live on their own listener,
//! and no route that takes a JSON body runs for a body declared as anything else (so no
//! cross-site "simple request" reaches a handler).
#![allow(
    clippy::unwrap_used,
    reason = "tests (and their support module) panic on failure"
)]

mod support;

use confidant_testkit::https::Client;
use hyper::Method;
use support::*;

/// Admin routes and auditor routes, as (method, path).
const ADMIN_ROUTES: [(&str, &str); 6] = [
    ("GET", "/v1/admin/policy"),
    ("GET", "/v1/admin/keys"),
    ("GET", "/v1/audit?from=0"),
    ("GET", "/v1/audit/checkpoint"),
    ("GET", "/v1/audit/proof/inclusion?index=0"),
    ("GET", "/v1/audit/proof/consistency?from=0"),
];

fn direct(s: &TestServer, admin: bool) -> Client {
    let running = s.running.as_ref().unwrap();
    let addr = if admin {
        running.admin.local_addr()
    } else {
        running.handle.local_addr()
    };
    Client::new(addr, &std::fs::read(s.path("tls-cert.pem")).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_and_auditor_apis_listen_only_on_their_own_address() {
    let s = TestServer::start().await;
    let running = s.running.as_ref().unwrap();
    assert_ne!(running.admin.local_addr(), running.handle.local_addr());
    // `init` puts the admin API on loopback.
    assert!(s.config.server.admin_listen.ip().is_loopback());
    let (api, admin) = (direct(&s, false), direct(&s, true));
    for (method, path) in ADMIN_ROUTES {
        let role = if path.starts_with("/v1/audit") {
            "auditor"
        } else {
            "admin"
        };
        let m = Method::from_bytes(method.as_bytes()).unwrap();
        let r = api
            .request(m.clone(), path, Some(s.token(role)), None)
            .await;
        assert_eq!(r.status, 404, "{path} on the attestation listener");
        assert_eq!(r.code(), "not_found");
        let r = admin.request(m, path, Some(s.token(role)), None).await;
        // Served (proofs over the empty log are refused as out of range, not unknown).
        assert_ne!(r.status, 404, "{path} on the admin listener");
        assert!(
            r.status.is_success() || path.contains("/proof/"),
            "{path}: {}",
            r.status
        );
    }
    // The attestation API is not on the admin listener.
    for path in ["/v1/ca", "/v1/keys"] {
        assert_eq!(api.get(path, None).await.status, 200, "{path}");
        assert_eq!(admin.get(path, None).await.status, 404, "{path} on admin");
    }
    let r = admin
        .request_raw(
            Method::POST,
            "/v1/challenge",
            Some(s.token("enclave")),
            None,
            Vec::new(),
        )
        .await;
    assert_eq!(r.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_listener_must_be_a_different_address() {
    let s = TestServer::start().await;
    let (_dir, mut config) = s.stop().await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    drop(taken);
    config.server.listen = addr;
    config.server.admin_listen = addr;
    let err = confidant_verifier::server::start(config).await.unwrap_err();
    assert!(
        matches!(err, confidant_verifier::state::StartError::SameAddress(a) if a == addr),
        "{err}"
    );
}

#[test]
fn init_writes_the_admin_address() {
    use confidant_verifier::init::{InitOptions, admin_listen};
    let mut opts = InitOptions::new("unused");
    opts.listen = "0.0.0.0:8443".into();
    assert_eq!(admin_listen(&opts).unwrap(), "127.0.0.1:8444");
    opts.listen = "127.0.0.1:0".into();
    assert_eq!(admin_listen(&opts).unwrap(), "127.0.0.1:0");
    opts.admin_listen = Some("10.0.0.5:9443".into());
    assert_eq!(admin_listen(&opts).unwrap(), "10.0.0.5:9443");
    opts.admin_listen = None;
    opts.listen = "nonsense".into();
    assert!(admin_listen(&opts).is_err());
}

/// Content types a browser may send cross-site without a preflight, plus none at all.
const SIMPLE: [Option<&str>; 5] = [
    None,
    Some("text/plain"),
    Some("text/plain;charset=UTF-8"),
    Some("application/x-www-form-urlencoded"),
    Some("multipart/form-data; boundary=x"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_routes_refuse_bodies_not_declared_as_json() {
    let s = TestServer::start().await;
    let c = &s.client;
    let import = serde_json::json!({
        "key_id": "k-415",
        "key": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [7u8; 32]),
        "model_id": MODEL_ID,
        "model_digest": hex::encode(MODEL_DIGEST),
    });
    let routes: [(&str, &str, serde_json::Value); 4] = [
        ("/v1/admin/keys", "admin", import.clone()),
        (
            "/v1/admin/measurements/revoke",
            "admin",
            serde_json::json!({ "measurement": hex::encode(MEASUREMENT) }),
        ),
        (
            "/v1/admin/keys/k-415/rotate",
            "admin",
            serde_json::json!({ "new_key_id": "k-416", "key": import["key"] }),
        ),
        (
            "/v1/attest/credential",
            "enclave",
            serde_json::json!({ "nonce": "00" }),
        ),
    ];
    let entries_before = s.audit_entries().await.len();
    for (path, role, body) in &routes {
        for ct in SIMPLE {
            let r = c
                .request_raw(
                    Method::POST,
                    path,
                    Some(s.token(role)),
                    ct,
                    serde_json::to_vec(body).unwrap(),
                )
                .await;
            assert_eq!(r.status, 415, "{path} with {ct:?}");
            assert_eq!(r.code(), "unsupported_media_type", "{path} with {ct:?}");
        }
    }
    // Nothing ran: no key imported, nothing revoked or audited.
    assert!(s.verifier().list_keys().is_empty());
    assert_eq!(s.audit_entries().await.len(), entries_before);
    // Positive control: the same import declared as JSON runs.
    let r = c
        .post_json("/v1/admin/keys", Some(s.token("admin")), &import)
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);

    // The TOML and CBOR routes take only their own types.
    for ct in SIMPLE.into_iter().flatten() {
        let r = c
            .put(
                "/v1/admin/policy",
                Some(s.token("admin")),
                ct,
                b"x".to_vec(),
            )
            .await;
        assert_eq!(r.status, 415, "policy with {ct}");
        let r = c
            .request_raw(
                Method::POST,
                "/v1/attest",
                Some(s.token("enclave")),
                Some(ct),
                b"x".to_vec(),
            )
            .await;
        assert_eq!(r.status, 415, "attest with {ct}");
    }
}
