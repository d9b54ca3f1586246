//! Authentication, request caps, rate limits, overload and client disconnects, over TLS against
//! a booted enclave (live verifier, real model).
#![allow(clippy::unwrap_used, reason = "test helpers outside #[test] functions")]

mod support;

use std::time::Duration;

use confidant_enclave::supervisor::Enclave;
use confidant_testkit::https::{Client, http_request, send_request_on};
use confidant_wire::routes;
use http_body_util::BodyExt;
use hyper::{Method, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::json;
use support::*;

const LIMITS: &str = r#"
[limits]
max_body_bytes = 4096
max_prompt_tokens = 48
max_tokens = 64
default_max_tokens = 16
max_concurrent = 1
max_queue = 0
queue_timeout_ms = 1000

[rate_limit]
requests = { per_second = 0.01, burst = 12 }
tokens = { per_second = 0.01, burst = 100 }
"#;

fn chat(content: &str, max_tokens: u32) -> serde_json::Value {
    json!({
        "model": MODEL_ID,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": max_tokens,
        "temperature": 0,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_caps_rate_limits_overload_and_disconnect() {
    let v = TestVerifier::start().await;
    v.allow(&this_measurement());
    v.import_key();
    let cfg = enclave_config(&v, &sealed_model().path, &verifier_url(&v), LIMITS);
    let e = Enclave::start(cfg).await.unwrap();
    let addr = wait_serving(&e).await;
    let c = Client::new(addr, &v.ca_pem());
    let path = routes::enclave::CHAT_COMPLETIONS;

    // 401: no token, garbage, the verifier's audience; 403: no client role.
    let r = c.post_json(path, None, &chat("hi", 4)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.code(), "missing_token");
    assert_eq!(r.headers["www-authenticate"], "Bearer");
    let r = c.post_json(path, Some("not.a.token"), &chat("hi", 4)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.code(), "invalid_token");
    // A genuine token for another service: refused, and the refusal says why (audience).
    let other_aud = v.token_for("confidant-verifier", "bob", &["client"]);
    let r = c.post_json(path, Some(&other_aud), &chat("hi", 4)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.code(), "wrong_audience");
    let message = r.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(message.contains("audience"), "{message}");
    assert!(
        message.contains(AUDIENCE),
        "names the expected audience: {message}"
    );
    let admin = v.client_token("carol", &["admin"]);
    let r = c.post_json(path, Some(&admin), &chat("hi", 4)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Session attestation needs no token (clients send none before the session is proven).
    let r = c
        .post_json(
            routes::enclave::SESSION_ATTESTATION,
            None,
            &json!({"nonce": hex::encode([1u8; 32])}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = c.get(routes::enclave::MODELS, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    // 415 for every JSON route when the body is not declared as JSON (what a browser sends
    // cross-site without a preflight), before authentication, rate limits or evidence.
    let rejected_before = e.metrics().render();
    for route in [
        path,
        routes::enclave::COMPLETIONS,
        routes::enclave::SESSION_ATTESTATION,
    ] {
        for ct in [
            None,
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            Some("multipart/form-data; boundary=x"),
        ] {
            let body = serde_json::to_vec(&json!({"nonce": hex::encode([2u8; 32])})).unwrap();
            let mut req = http_request(Method::POST, route, None, Some(("application/json", body)));
            req.headers_mut().remove(hyper::header::CONTENT_TYPE);
            if let Some(ct) = ct {
                req.headers_mut()
                    .insert(hyper::header::CONTENT_TYPE, ct.parse().unwrap());
            }
            let r = send_request_on(c.tls().await.unwrap(), req).await;
            assert_eq!(
                r.status,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "{route} {ct:?}"
            );
            assert_eq!(r.code(), "unsupported_media_type");
        }
    }
    assert_eq!(
        e.metrics()
            .render()
            .matches("unsupported_media_type")
            .count(),
        rejected_before.matches("unsupported_media_type").count(),
        "refused before any handler ran"
    );

    // 400s with clear messages, 404 for another model, 413 over the body cap.
    let alice = v.client_token("alice", &["client"]);
    let a = Some(alice.as_str());
    let r = c.post_json(path, a, &chat("hi", 65)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.code(), "max_tokens_too_large");
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("64")
    );
    let long = "word ".repeat(100);
    let r = c.post_json(path, a, &chat(&long, 4)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.code(), "prompt_too_long");
    let r = c
        .request(
            Method::POST,
            path,
            a,
            Some(("application/json", b"{\"model\": ".to_vec())),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.code(), "invalid_body");
    let mut other = chat("hi", 4);
    other["model"] = json!("gpt-4");
    let r = c.post_json(path, a, &other).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.code(), "model_not_found");
    let mut two = chat("hi", 4);
    two["n"] = json!(2);
    let r = c.post_json(path, a, &two).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = c.post_json(path, a, &chat(&"x".repeat(5000), 4)).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    let r = c
        .post_json(
            routes::enclave::SESSION_ATTESTATION,
            a,
            &json!({"nonce": "abcd"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.code(), "invalid_nonce");

    // 429 on the request budget (12 per principal), with Retry-After.
    let dave = v.client_token("dave", &["client"]);
    for _ in 0..12 {
        let r = c
            .request(
                Method::POST,
                path,
                Some(&dave),
                Some(("application/json", b"[]".to_vec())),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
    }
    let r = c.post_json(path, Some(&dave), &chat("hi", 4)).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.code(), "rate_limited");
    assert!(
        r.headers["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );

    // Session attestation takes no token, so it is limited per peer address: this peer already
    // used one call above; the rest of its 12 go through, then 429.
    let mut codes = Vec::new();
    for _ in 0..12 {
        let r = c
            .post_json(
                routes::enclave::SESSION_ATTESTATION,
                None,
                &json!({"nonce": hex::encode([2u8; 32])}),
            )
            .await;
        codes.push(r.status);
    }
    assert!(
        codes[..10].iter().all(|s| *s == StatusCode::OK),
        "{codes:?}"
    );
    assert_eq!(codes[11], StatusCode::TOO_MANY_REQUESTS);

    // A long stream holds the only slot (queue length 0) and 64 of erin's 100 tokens.
    let erin = v.client_token("erin", &["client"]);
    let mut stream_req = chat("Write a long poem about the sea.", 64);
    stream_req["stream"] = json!(true);
    let tls = c.tls().await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    let conn_task = tokio::spawn(conn);
    let resp = sender
        .send_request(http_request(
            Method::POST,
            path,
            Some(&erin),
            Some(("application/json", serde_json::to_vec(&stream_req).unwrap())),
        ))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    let first = body.frame().await.unwrap().unwrap();
    assert!(first.data_ref().unwrap().starts_with(b"data: "));

    // 429 on the token budget (64 reserved, 64 more asked), 503 on the full queue.
    let r = c.post_json(path, Some(&erin), &chat("hi", 64)).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers.contains_key("retry-after"));
    let r = c.post_json(path, a, &chat("hi", 4)).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.code(), "overloaded");

    // The client goes away: generation is cancelled and the slot freed.
    drop(body);
    drop(sender);
    conn_task.abort();
    let metrics = e.metrics();
    eventually("cancelled generation", Duration::from_secs(30), || {
        metrics.generations_finished("cancelled") == 1
    })
    .await;
    let r = c.post_json(path, a, &chat("Say hi.", 4)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());

    let scraper = v.client_token("prometheus", &["metrics"]);
    let m = c.get(routes::enclave::METRICS, Some(&scraper)).await.text();
    for code in ["rate_limited", "overloaded", "prompt_too_long", "forbidden"] {
        assert!(
            m.contains(&format!("confidant_rejections_total{{code=\"{code}\"}}")),
            "{code}"
        );
    }
    e.shutdown().await.unwrap();
}
