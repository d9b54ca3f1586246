//! The happy path through the real binaries: the SDK in all three modes, the `confidant proxy`
//! with a plain HTTP client, and a standard HTTPS client that trusts only the verifier CA.
// Test code: a failed fixture or assertion is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::process::Command;
use std::time::Duration;

use confidant_client::Mode;
use confidant_e2e::{CAPITAL_PROMPT, MODEL_ID, Service, Stack, bins, https};
use confidant_wire::openai::{ChatMessage, ChatRequest};
use confidant_wire::routes;

fn capital_question() -> ChatRequest {
    ChatRequest::new(MODEL_ID, vec![ChatMessage::user(CAPITAL_PROMPT)])
        .temperature(0.0)
        .max_tokens(24)
}

async fn sdk_mode(stack: &Stack, mode: Mode, fresh: bool) {
    let what = format!("{mode:?}, fresh = {fresh}");
    let client = stack.client(mode, fresh);
    let mut conn = client
        .connect()
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let claims = conn.claims().clone();
    assert_eq!(
        claims.result.measurement,
        stack.measurement.to_vec(),
        "{what}"
    );
    assert_eq!(claims.result.model_id, MODEL_ID, "{what}");
    assert_eq!(claims.result.model_digest, stack.model_digest, "{what}");
    assert!(claims.is_dev(), "{what}: simulated evidence must say so");
    assert_eq!(claims.session.is_some(), fresh, "{what}: session evidence");
    let reply = conn.chat(capital_question()).await.unwrap();
    let text = reply.text().unwrap_or_default().to_owned();
    assert!(text.contains("Paris"), "{what}: answer was {text:?}");
    // The pooled path (attests its own connection) gives the same answer.
    let again = client.chat(capital_question()).await.unwrap();
    assert_eq!(
        again.text(),
        Some(text.as_str()),
        "{what}: greedy is deterministic"
    );
}

/// `confidant proxy` on 127.0.0.1:0, then a raw HTTP/1.1 request over a TcpStream.
fn through_proxy(stack: &Stack) {
    let mut cmd = Command::new(&bins().cli);
    cmd.args(["proxy", "--listen", "127.0.0.1:0", "--upstream"])
        .arg(stack.enclave_url())
        .args(stack.cli_client_args());
    let mut proxy = Service::spawn("confidant proxy", cmd);
    let addr: std::net::SocketAddr = proxy.wait_for(Duration::from_secs(60), |line| {
        line.strip_prefix("listening on http://")?
            .split('/')
            .next()?
            .parse()
            .ok()
    });
    let body = serde_json::json!({
        "model": MODEL_ID,
        "messages": [{"role": "user", "content": CAPITAL_PROMPT}],
        "max_tokens": 24,
        "temperature": 0.0,
    })
    .to_string();
    let mut tcp = std::net::TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    write!(
        tcp,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = String::new();
    tcp.read_to_string(&mut raw).unwrap();
    assert!(raw.starts_with("HTTP/1.1 200"), "proxy reply: {raw}");
    let (_, body) = raw.split_once("\r\n\r\n").unwrap();
    assert!(body.contains("Paris"), "proxy reply body: {body}");
    assert!(body.contains("chat.completion"), "OpenAI shape: {body}");
}

/// rustls with only the verifier CA as root, no Confidant code: the floor of assurance.
async fn standard_https_client(stack: &Stack) {
    let ca = stack.ca_pem();
    let health = https::request(
        stack.enclave_addr,
        &ca,
        "GET",
        routes::enclave::HEALTHZ,
        None,
        None,
    )
    .await;
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["status"], "serving");
    let token = stack.token("client");
    let models = https::request(
        stack.enclave_addr,
        &ca,
        "GET",
        routes::enclave::MODELS,
        Some(&token),
        None,
    )
    .await;
    assert_eq!(models.status, 200);
    let models = models.json();
    assert_eq!(models["data"][0]["id"], MODEL_ID);
    assert_eq!(models["data"][0]["digest"], hex::encode(stack.model_digest));
    let anonymous = https::request(
        stack.enclave_addr,
        &ca,
        "GET",
        routes::enclave::MODELS,
        None,
        None,
    )
    .await;
    assert_eq!(anonymous.status, 401, "inference routes need a token");
    // The verifier's own TLS certificate is not the CA that issues enclave certificates.
    let wrong_root = stack.verifier_tls_pem();
    assert!(
        https::connect(stack.enclave_addr, &wrong_root)
            .await
            .is_err(),
        "only the verifier CA anchors the enclave's certificate"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn happy_path_sdk_modes_proxy_and_plain_https() {
    let stack = Stack::start();
    sdk_mode(&stack, Mode::Passport, true).await;
    sdk_mode(&stack, Mode::Passport, false).await;
    sdk_mode(&stack, Mode::Direct, true).await;
    tokio::task::block_in_place(|| through_proxy(&stack));
    standard_https_client(&stack).await;
}
