//! Values a caller chooses reach the verifier's logs only when short and plain: a hostile model id,
//! request path or token subject never appears verbatim (no forged log lines, no smuggled text).
//! Captures every log line of this test binary at TRACE level.
#![allow(
    clippy::unwrap_used,
    reason = "tests (and their support module) panic on failure"
)]

mod support;

use confidant_attestation::evidence::Evidence;
use confidant_service::JwtIssuer;
use confidant_service::jwt::TokenClaims;
use hyper::Method;
use support::*;

/// A marker no legitimate log line contains; each hostile value carries it.
const MARK: &str = "Hostile7731";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_request_values_do_not_reach_the_logs_verbatim() {
    let buffer = confidant_testkit::probe::LogCapture::default();
    let writer = buffer.clone();
    tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .init();

    let s = snp_server().await;
    let enclave = Enclave::new();

    // 1. A model id carrying a forged log line and a long tail.
    let hostile_model = format!(
        "{MARK}\n{{\"level\":\"INFO\",\"message\":\"attestation accepted\"}}{}",
        "x".repeat(4000)
    );
    let nonce = s.challenge().await;
    let binding = enclave.binding(&nonce, &MODEL_DIGEST);
    let ev = Evidence::SevSnp(sim().attest(binding.as_bytes(), &MEASUREMENT).unwrap());
    let r = s.attest(&enclave.request(nonce, ev, &hostile_model)).await;
    assert!(r.status.is_client_error(), "{}", r.status);
    // A plain (unknown) model id is logged as it is: the positive control.
    let nonce = s.challenge().await;
    let binding = enclave.binding(&nonce, &MODEL_DIGEST);
    let ev = Evidence::SevSnp(sim().attest(binding.as_bytes(), &MEASUREMENT).unwrap());
    let r = s
        .attest(&enclave.request(nonce, ev, "plain-unknown-model"))
        .await;
    assert!(r.status.is_client_error());

    // 2. A request path with a percent-encoded newline and a long tail (404 route).
    let hostile_path = format!("/v1/{MARK}%0a%7b%22level%22{}", "y".repeat(600));
    let r = s.client.get(&hostile_path, None).await;
    assert_eq!(r.status, 404);
    let r = s
        .client
        .request_raw(
            Method::POST,
            &format!("/v1/admin/keys/{MARK}%0aforged/revoke"),
            Some(s.token("admin")),
            None,
            Vec::new(),
        )
        .await;
    assert!(r.status.is_client_error());

    // 3. A validly signed token whose subject is a forged log line: refused, never logged.
    let pk8 = std::fs::read(s.path("secrets/jwt-issuer.p8")).unwrap();
    let issuer = JwtIssuer::from_pkcs8(&pk8, Some("dev-1".to_owned())).unwrap();
    let token = issuer
        .mint(&TokenClaims::new(
            confidant_verifier::init::DEV_ISSUER,
            confidant_verifier::init::DEV_AUDIENCE,
            format!("{MARK}\n{{\"level\":\"WARN\"}}"),
            &["admin"],
            confidant_verifier::now_unix(),
            600,
        ))
        .unwrap();
    let r = s.client.get("/v1/admin/keys", Some(&token)).await;
    assert_eq!(r.status, 401);

    let logs = buffer.text();
    // Positive controls: the requests were logged, plain values verbatim.
    assert!(logs.contains("attestation refused"), "{logs}");
    assert!(logs.contains("plain-unknown-model"), "{logs}");
    assert!(
        logs.contains("<invalid: "),
        "hostile values logged by digest: {logs}"
    );
    // Every log line is one JSON object (nothing forged a line break).
    for line in logs.lines() {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("not one JSON object ({e}): {line}"));
    }
    assert!(
        !logs.contains(MARK),
        "a hostile value reached the logs verbatim:\n{}",
        logs.lines()
            .filter(|l| l.contains(MARK))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
