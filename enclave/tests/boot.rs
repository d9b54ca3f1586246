//! Boot against a live verifier (in-process, real TLS) with the simulated SEV-SNP attester and
//! the real sealed SmolLM2 bundle; then the OpenAI-compatible API over the attested TLS.
#![allow(clippy::unwrap_used, reason = "test helpers outside #[test] functions")]

mod support;

use std::time::Duration;

use base64::Engine;
use confidant_attestation::binding::{Binding, Session};
use confidant_attestation::evidence::ReceivedEvidence;
use confidant_attestation::policy::Policy;
use confidant_attestation::verify::verify_evidence;
use confidant_enclave::boot::BootError;
use confidant_enclave::supervisor::{Enclave, Phase};
use confidant_sealed::SealError;
use confidant_testkit::https::{Client, send_on};
use confidant_wire::routes;
use hyper::{Method, StatusCode};
use serde_json::json;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_verifier_serves_nothing() {
    let v = TestVerifier::start().await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let cfg = enclave_config(
        &v,
        &sealed_model().path,
        &format!("https://127.0.0.1:{closed}"),
        "",
    );
    let e = Enclave::start(cfg).await.unwrap();
    eventually("three attempts", Duration::from_secs(30), || {
        e.attempts() >= 3
    })
    .await;
    assert_eq!(e.phase(), Phase::Attesting);
    assert_eq!(e.last_failure(), Some("verifier_unreachable"));
    assert_eq!(e.local_addr(), None, "nothing listens before key release");
    assert_eq!(e.metrics().unseal_count(), 0);
    e.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn measurement_not_allowed_never_serves_nor_unseals() {
    let v = TestVerifier::start().await;
    v.allow(&[0x11; 48]);
    v.import_key();
    let cfg = enclave_config(&v, &sealed_model().path, &verifier_url(&v), "");
    let e = Enclave::start(cfg).await.unwrap();
    eventually("three attempts", Duration::from_secs(30), || {
        e.attempts() >= 3
    })
    .await;
    assert_eq!(e.phase(), Phase::Attesting);
    assert_eq!(e.last_failure(), Some("verifier_refused"));
    assert_eq!(e.local_addr(), None);
    assert_eq!(e.metrics().unseal_count(), 0, "never read the sealed body");
    let reasons = v.audit_reasons();
    assert!(!reasons.is_empty());
    assert!(
        reasons
            .iter()
            .all(|r| r.as_deref() == Some("measurement_not_allowed")),
        "{reasons:?}"
    );
    e.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_sealed_file_is_refused() {
    let v = TestVerifier::start().await;
    v.allow(&this_measurement());
    v.import_key();
    let tmp = tempfile::tempdir().unwrap();
    let tampered = tampered_copy(tmp.path());
    let cfg = enclave_config(&v, &tampered, &verifier_url(&v), "");
    let e = Enclave::start(cfg).await.unwrap();
    eventually("boot ends", Duration::from_secs(60), || e.is_finished()).await;
    assert_eq!(e.phase(), Phase::Failed);
    assert_eq!(e.local_addr(), None);
    let err = e.wait().await.unwrap_err();
    assert!(
        matches!(err, BootError::Sealed(SealError::ChunkAuthFailed { .. })),
        "{err:?}"
    );
    // The key was released (the verifier cannot tell), but nothing was served.
    assert_eq!(v.audit_reasons(), vec![None]);
}

/// Serves only after key release; then chat, completions, streaming, models, session
/// attestation, health and metrics over TLS verified against the verifier's CA.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_only_after_key_release_and_speaks_openai() {
    let v = TestVerifier::start().await;
    let cfg = enclave_config(&v, &sealed_model().path, &verifier_url(&v), "");
    let e = Enclave::start(cfg).await.unwrap();

    // The dev policy allows no model: refused, retried, nothing served, nothing unsealed.
    eventually("two refusals", Duration::from_secs(30), || {
        e.attempts() >= 2
    })
    .await;
    assert_eq!(e.phase(), Phase::Attesting);
    assert_eq!(e.last_failure(), Some("verifier_refused"));
    assert_eq!(e.local_addr(), None);
    assert_eq!(e.metrics().unseal_count(), 0);
    assert_eq!(e.boot_timings(), None, "no boot timings before serving");

    v.allow(&this_measurement());
    v.import_key();
    let addr = wait_serving(&e).await;
    assert_eq!(e.metrics().unseal_count(), 1);
    // Boot phase timings: every phase measured, together no more than start → serving.
    let boot = e.boot_timings().expect("boot timings once serving");
    let phases: Duration = boot.phases().iter().map(|(_, d)| *d).sum();
    assert!(phases <= boot.total, "{boot:?}");
    for (phase, d) in [
        ("attestation", boot.attestation),
        ("unseal", boot.unseal),
        ("model_load", boot.model_load),
    ] {
        assert!(d > Duration::ZERO, "{phase} not measured: {boot:?}");
    }
    assert_eq!(v.audit_reasons().last(), Some(&None));

    let c = Client::new(addr, &v.ca_pem());
    let token = v.client_token("alice", &["client"]);
    let t = Some(token.as_str());

    // Chat, greedy: the golden answer.
    let question = "What is the capital of France?";
    let chat = json!({
        "model": MODEL_ID,
        "messages": [{"role": "user", "content": question}],
        "max_tokens": 24,
        "temperature": 0,
    });
    let r = c
        .post_json(routes::enclave::CHAT_COMPLETIONS, t, &chat)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let j = r.json();
    assert_eq!(j["object"], "chat.completion");
    assert_eq!(j["model"], MODEL_ID);
    let answer = j["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(answer.contains("Paris"), "{answer:?}");
    assert_eq!(j["choices"][0]["message"]["role"], "assistant");
    let u = &j["usage"];
    let (p, k) = (
        u["prompt_tokens"].as_u64().unwrap(),
        u["completion_tokens"].as_u64().unwrap(),
    );
    assert!(p > 5 && k > 0);
    assert_eq!(u["total_tokens"].as_u64().unwrap(), p + k);

    // The same request streamed: same text, OpenAI chunk format, ends with [DONE].
    let mut streamed = chat.clone();
    streamed["stream"] = json!(true);
    let r = c
        .post_json(routes::enclave::CHAT_COMPLETIONS, t, &streamed)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["content-type"], "text/event-stream");
    let events = sse_events(&r.text());
    assert_eq!(events.last().unwrap(), "[DONE]");
    let chunks: Vec<serde_json::Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert_eq!(chunks[0]["object"], "chat.completion.chunk");
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, answer);
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], "stop");
    assert_eq!(last["usage"]["completion_tokens"].as_u64(), Some(k));
    assert!(chunks.iter().all(|c| c["id"] == chunks[0]["id"]));

    // Completions, plain and streamed with OpenAI's separate usage chunk.
    let comp = json!({"model": MODEL_ID, "prompt": "The capital of France is", "max_tokens": 8, "temperature": 0});
    let r = c.post_json(routes::enclave::COMPLETIONS, t, &comp).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let j = r.json();
    assert_eq!(j["object"], "text_completion");
    let completion = j["choices"][0]["text"].as_str().unwrap().to_owned();
    assert!(!completion.is_empty());
    assert_eq!(j["usage"]["completion_tokens"].as_u64(), Some(8));
    assert_eq!(j["choices"][0]["finish_reason"], "length");
    let mut comp_stream = comp.clone();
    comp_stream["stream"] = json!(true);
    comp_stream["stream_options"] = json!({"include_usage": true});
    let r = c
        .post_json(routes::enclave::COMPLETIONS, t, &comp_stream)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let events = sse_events(&r.text());
    assert_eq!(events.last().unwrap(), "[DONE]");
    let chunks: Vec<serde_json::Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let usage_chunk = chunks.last().unwrap();
    assert_eq!(usage_chunk["choices"].as_array().unwrap().len(), 0);
    assert_eq!(usage_chunk["usage"]["completion_tokens"].as_u64(), Some(8));
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["text"].as_str())
        .collect();
    assert_eq!(text, completion);

    // Deterministic sampling with a fixed seed.
    let seeded = json!({
        "model": MODEL_ID,
        "messages": [{"role": "user", "content": "Tell me a short story."}],
        "max_tokens": 16, "temperature": 0.9, "top_p": 0.95, "seed": 1234,
    });
    let a = c
        .post_json(routes::enclave::CHAT_COMPLETIONS, t, &seeded)
        .await
        .json();
    let b = c
        .post_json(routes::enclave::CHAT_COMPLETIONS, t, &seeded)
        .await
        .json();
    assert_eq!(
        a["choices"][0]["message"]["content"],
        b["choices"][0]["message"]["content"]
    );

    // Models: id and the attested digest.
    let r = c.get(routes::enclave::MODELS, t).await;
    assert_eq!(r.status, StatusCode::OK);
    let j = r.json();
    assert_eq!(j["data"][0]["id"], MODEL_ID);
    assert_eq!(j["data"][0]["digest"], sealed_model().digest.to_hex());

    // Session attestation: evidence bound to THIS connection's exporter.
    let tls = c.tls().await.unwrap();
    let exporter: [u8; 32] = tls
        .get_ref()
        .1
        .export_keying_material([0u8; 32], b"EXPORTER-confidant-session", None)
        .unwrap();
    let leaf = tls.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    let nonce = [7u8; 32];
    let r = send_on(
        tls,
        Method::POST,
        routes::enclave::SESSION_ATTESTATION,
        t,
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
    let ext = confidant_attestation::certext::parse(&leaf).unwrap();
    let spki = {
        use x509_parser::prelude::FromDer;
        let (_, cert) = x509_parser::certificate::X509Certificate::from_der(&leaf).unwrap();
        cert.public_key().raw.to_vec()
    };
    assert_eq!(
        ring::digest::digest(&ring::digest::SHA256, &spki).as_ref(),
        ext.spki_sha256
    );
    let binding = |channel: &[u8; 32]| {
        Binding::compute(Session {
            nonce,
            tls_spki_der: spki.clone(),
            exporter: *channel,
            model_digest: sealed_model().digest,
        })
    };
    let ark = std::fs::read(confidant_testkit::dev_pki().join("ark.der")).unwrap();
    let ask = std::fs::read(confidant_testkit::dev_pki().join("ask.der")).unwrap();
    let ark_sha = hex::encode(ring::digest::digest(&ring::digest::SHA256, &ark));
    let anchors = Policy::from_toml(&format!(
        "id = \"t\"\nversion = 1\n[trust]\ndev_root_ark_sha256 = \"{ark_sha}\"\n"
    ))
    .unwrap()
    .trust_anchors(Some(&ark), Some(&ask))
    .unwrap();
    let verify = |cbor: &[u8]| {
        verify_evidence(ReceivedEvidence::decode(cbor).unwrap(), &anchors, now()).unwrap()
    };
    assert!(
        verify(&cbor).bind(binding(&[0u8; 32])).is_err(),
        "another session's exporter"
    );
    verify(&cbor).bind(binding(&exporter)).unwrap();

    // Health (no auth, no counts) and metrics (their own role: a client may not read them).
    let r = c.get(routes::enclave::HEALTHZ, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["status"], "serving");
    assert_eq!(
        c.get(routes::enclave::METRICS, None).await.status,
        StatusCode::UNAUTHORIZED
    );
    let client = v.client_token("alice", &["client"]);
    assert_eq!(
        c.get(routes::enclave::METRICS, Some(&client)).await.status,
        StatusCode::FORBIDDEN
    );
    let scraper = v.client_token("prometheus", &["metrics"]);
    let r = c.get(routes::enclave::METRICS, Some(&scraper)).await;
    assert_eq!(r.status, StatusCode::OK);
    let m = r.text();
    assert!(
        m.contains("confidant_http_requests_total{route=\"/v1/chat/completions\",status=\"200\"}")
    );
    assert!(m.contains("confidant_completion_tokens_total"));
    assert!(m.contains("confidant_serving 1"));
    let gauge = |line: &str| -> f64 { line.rsplit(' ').next().unwrap().parse().unwrap() };
    let phase_lines: Vec<&str> = m
        .lines()
        .filter(|l| l.starts_with("confidant_boot_phase_seconds{phase="))
        .collect();
    let labels: Vec<&str> = phase_lines
        .iter()
        .map(|l| l.split('"').nth(1).unwrap())
        .collect();
    assert_eq!(
        labels,
        ["prepare", "attestation", "unseal", "model_load", "listen"]
    );
    let total = gauge(
        m.lines()
            .find(|l| l.starts_with("confidant_boot_seconds "))
            .expect("confidant_boot_seconds"),
    );
    let sum: f64 = phase_lines.iter().map(|l| gauge(l)).sum();
    // Printed with 6 decimals: allow their rounding, nothing more.
    assert!(sum <= total + 5e-6, "phases {sum} s > total {total} s");
    assert!(!m.contains("France") && !m.contains("Paris") && !m.contains("alice"));

    e.shutdown().await.unwrap();
}

/// Renews before the certificate expires; when the verifier is gone and the certificate lapses,
/// the API answers 503 (and TLS clients refuse the expired certificate anyway).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renews_and_stops_serving_when_it_cannot() {
    let mut v = TestVerifier::start_with(|c| c.ca.leaf_validity_secs = 9).await;
    v.allow(&this_measurement());
    v.import_key();
    let cfg = enclave_config(&v, &sealed_model().path, &verifier_url(&v), "");
    let e = Enclave::start(cfg).await.unwrap();
    let addr = wait_serving(&e).await;
    // A fresh client each time: a resumed TLS session would not show the new certificate.
    let ca = v.ca_pem();
    let fresh = || Client::new(addr, &ca);
    let first = fresh().peer_leaf().await;
    let accepted_before = e.metrics().render();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "no renewed certificate served"
        );
        if let Ok(tls) = fresh().tls().await {
            let leaf = tls.get_ref().1.peer_certificates().unwrap()[0].to_vec();
            if leaf != first {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_ne!(e.metrics().render(), accepted_before);
    assert_eq!(e.phase(), Phase::Serving);

    v.stop().await;
    eventually("lapsed", Duration::from_secs(20), || {
        e.phase() == Phase::Lapsed
    })
    .await;
    let insecure = Client::insecure(addr);
    let r = insecure
        .get(
            routes::enclave::MODELS,
            Some(&v.client_token("alice", &["client"])),
        )
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.code(), "not_attested");
    let r = insecure.get(routes::enclave::HEALTHZ, None).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        fresh().tls().await.is_err(),
        "the expired certificate is refused by verifying clients"
    );
    e.shutdown().await.unwrap();
}
