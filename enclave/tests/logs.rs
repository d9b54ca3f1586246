//! Captures every log line of a whole run (verifier and enclave in this process, TRACE level)
//! and checks that no prompt or completion text, model key or bearer token appears in it, nor a
//! hostile value a caller chose (path, token subject) verbatim.
#![allow(clippy::unwrap_used, reason = "test helpers outside #[test] functions")]

mod support;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use confidant_enclave::supervisor::Enclave;
use confidant_testkit::https::Client;
use confidant_wire::routes;
use hyper::StatusCode;
use serde_json::json;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_of_a_whole_run_hold_no_prompts_keys_or_tokens() {
    let buffer = confidant_testkit::probe::LogCapture::default();
    let writer = buffer.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let v = TestVerifier::start().await;
    v.allow(&this_measurement());
    v.import_key();
    let cfg = enclave_config(&v, &sealed_model().path, &verifier_url(&v), "");
    let e = Enclave::start(cfg).await.unwrap();
    let addr = wait_serving(&e).await;
    let c = Client::new(addr, &v.ca_pem());
    let token = v.client_token("log-user", &["client"]);
    let t = Some(token.as_str());

    let secret_prompt = "Zebrafish-7731 is my passport number; what is the capital of France?";
    let chat = json!({
        "model": MODEL_ID,
        "messages": [{"role": "user", "content": secret_prompt}],
        "max_tokens": 16, "temperature": 0,
    });
    let r = c
        .post_json(routes::enclave::CHAT_COMPLETIONS, t, &chat)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let completion = r.json()["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut streamed = chat.clone();
    streamed["stream"] = json!(true);
    assert_eq!(
        c.post_json(routes::enclave::CHAT_COMPLETIONS, t, &streamed)
            .await
            .status,
        StatusCode::OK
    );
    let secret_completion_prompt = "Quokka-4410 whispered the vault code";
    let r = c
        .post_json(
            routes::enclave::COMPLETIONS,
            t,
            &json!({"model": MODEL_ID, "prompt": secret_completion_prompt, "max_tokens": 8}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    // Rejected requests log too: an oversized one and a malformed one.
    let r = c
        .post_json(
            routes::enclave::CHAT_COMPLETIONS,
            t,
            &json!({"model": MODEL_ID, "messages": [{"role": "user", "content": format!("Narwhal-9 {}", "x ".repeat(3000))}], "max_tokens": 4}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = c
        .request(
            hyper::Method::POST,
            routes::enclave::COMPLETIONS,
            t,
            Some(("application/json", b"{\"prompt\": \"Ocelot-55\"".to_vec())),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // Hostile values a caller chooses: a path with an encoded forged line, a validly signed
    // token whose subject is a forged line. Neither may reach the logs verbatim.
    let hostile_path = format!("/v1/Hostile7731%0a%7b%22level%22{}", "y".repeat(600));
    assert_eq!(c.get(&hostile_path, t).await.status, StatusCode::NOT_FOUND);
    let hostile_sub = v.client_token("Hostile7731\n{\"level\":\"WARN\"}", &["client"]);
    let r = c
        .post_json(routes::enclave::CHAT_COMPLETIONS, Some(&hostile_sub), &chat)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    e.shutdown().await.unwrap();

    let logs = buffer.text();
    assert!(logs.contains("generation finished"), "logging works");
    assert!(logs.contains("log-user"), "principals are logged");
    let key = sealed_model().key;
    let enclave_token = std::fs::read_to_string(v.path("tokens/enclave.jwt")).unwrap();
    let forbidden: Vec<(&str, String)> = vec![
        ("chat prompt", "Zebrafish-7731".to_owned()),
        ("completion prompt", "Quokka-4410".to_owned()),
        ("oversized prompt", "Narwhal-9".to_owned()),
        ("malformed body", "Ocelot-55".to_owned()),
        ("model key hex", hex::encode(key)),
        ("model key HEX", hex::encode_upper(key)),
        ("model key base64", STANDARD.encode(key)),
        ("model key base64url", URL_SAFE_NO_PAD.encode(key)),
        ("model key bytes", format!("{:?}", key)),
        ("client token", token.clone()),
        (
            "client token signature",
            token.rsplit('.').next().unwrap().to_owned(),
        ),
        ("enclave token", enclave_token.trim().to_owned()),
        ("hostile path or subject", "Hostile7731".to_owned()),
    ];
    for (what, needle) in &forbidden {
        assert!(!logs.contains(needle.as_str()), "{what} found in the logs");
    }
    let completion = completion.trim();
    if completion.len() >= 12 {
        assert!(
            !logs.contains(completion),
            "completion text found in the logs"
        );
    }
}
