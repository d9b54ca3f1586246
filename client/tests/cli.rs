//! The `confidant` binary's client commands against the in-test attested server: `attest` prints
//! the verified claims or fails, and `proxy` forwards plain-HTTP OpenAI requests only to an
//! attested upstream.

// Helpers outside #[test] functions unwrap too: a failed fixture is a failed test.
#![allow(clippy::unwrap_used)]

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

use confidant_testkit::cli::Cli;
use confidant_wire::openai::{ChatMessage, ChatRequest, ChatResponse};
use confidant_wire::routes;

use support::{Knobs, MODEL_ID, World};

const CLI: Cli = Cli::new(env!("CARGO_BIN_EXE_confidant"));

/// Writes the client settings for `world` (CA, result key, policy) into `dir`; returns the flags.
fn client_flags(world: &World, policy_toml: &str, dir: &Path) -> Vec<String> {
    let write = |name: &str, bytes: &[u8]| -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let ca = write("ca.pem", world.ca.cert_pem().as_bytes());
    let key = write(
        "result-key.jwk",
        serde_json::to_string(&world.signer.verifier().jwk())
            .unwrap()
            .as_bytes(),
    );
    let policy = write("policy.toml", policy_toml.as_bytes());
    let pki = confidant_testkit::dev_pki();
    let mut flags = Vec::new();
    for (flag, path) in [
        ("--ca", ca),
        ("--result-key", key),
        ("--policy", policy),
        ("--dev-ark", pki.join("ark.der")),
        ("--dev-ask", pki.join("ask.der")),
    ] {
        flags.push(flag.to_string());
        flags.push(path.display().to_string());
    }
    flags
}

/// `confidant attest URL FLAGS…`, off the runtime's threads.
async fn attest(url: String, flags: Vec<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        CLI.command()
            .arg("attest")
            .arg(url)
            .args(flags)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn attest_prints_verified_claims_or_fails() {
    let world = World::new();
    let server = world.server(Knobs::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let flags = client_flags(&world, &world.policy_toml(), dir.path());
    let out = attest(server.url(), flags).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let claims: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(claims["result"]["model_id"], MODEL_ID);
    assert_eq!(claims["mode"], "passport");
    assert!(claims["session"].is_object());

    // A policy that does not allow the measurement: non-zero exit, no prompt sent.
    let strict = support::dev_policy_toml(&[[0u8; 48]], |_| {});
    let flags = client_flags(&world, &strict, dir.path());
    let out = attest(server.url(), flags).await;
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "no claims printed on refusal");
    // The refusal names the check once (not once per error layer) and says what to change.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.matches("does not meet the client policy").count(),
        1,
        "{stderr}"
    );
    assert!(stderr.contains("hint:"), "{stderr}");
}

/// `--mode direct` appraises the session evidence with the client's policy (and says so); it
/// refuses to run without session evidence.
#[tokio::test]
async fn attest_direct_appraises_the_session_and_needs_it() {
    let world = World::new();
    let server = world.server(Knobs::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut flags = client_flags(&world, &world.policy_toml(), dir.path());
    flags.extend(["--mode".to_string(), "direct".to_string()]);
    let out = attest(server.url(), flags.clone()).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let claims: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(claims["mode"], "direct");
    assert_eq!(claims["session"]["appraisal"]["model_id"], MODEL_ID);
    assert_eq!(claims["session"]["appraisal"]["policy_id"], "test-policy");

    flags.push("--no-fresh".to_string());
    let out = attest(server.url(), flags).await;
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("direct mode needs session evidence"),
        "{stderr}"
    );
}

/// `--result-key` takes the verifier's `GET /v1/keys` document (what `init` writes as
/// `public-keys.json`) as well as a bare JWK, but not a set it would have to choose from.
#[tokio::test]
async fn result_key_from_the_keys_document() {
    let world = World::new();
    let server = world.server(Knobs::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut flags = client_flags(&world, &world.policy_toml(), dir.path());
    let jwk = world.signer.verifier().jwk();
    let document = serde_json::json!({
        "keys": [jwk],
        "cose_keys": [],
        "audit_checkpoint_key": "04",
    });
    let keys = dir.path().join("public-keys.json");
    std::fs::write(&keys, document.to_string()).unwrap();
    let at = flags.iter().position(|f| f == "--result-key").unwrap();
    flags[at + 1] = keys.display().to_string();
    let out = attest(server.url(), flags.clone()).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let two = serde_json::json!({ "keys": [jwk.clone(), jwk] });
    std::fs::write(&keys, two.to_string()).unwrap();
    let out = attest(server.url(), flags).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("holds 2 keys"), "{stderr}");
}

#[tokio::test]
async fn chat_streams_the_answer_after_attesting() {
    let world = World::new();
    let server = world.server(Knobs::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let flags = client_flags(&world, &world.policy_toml(), dir.path());
    let url = server.url();
    let out = tokio::task::spawn_blocking(move || {
        CLI.command()
            .args(["chat", &url, "hi there"])
            .args(flags)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "echo: hi there\n");
    assert_eq!(server.attestation_requests(), 1);
}

/// A running `confidant proxy`; killed on drop.
struct Proxy {
    child: Child,
    addr: String,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_proxy(upstream: &str, flags: Vec<String>) -> Proxy {
    let mut child = CLI
        .command()
        .args(["proxy", "--listen", "127.0.0.1:0", "--upstream", upstream])
        .args(flags)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix("listening on http://") {
                let addr = rest.split('/').next().unwrap_or_default().to_string();
                let _ = tx.send(addr);
            }
        }
    });
    let addr = rx.recv_timeout(Duration::from_secs(30)).unwrap();
    Proxy { child, addr }
}

/// An in-test server with `knobs` and a `confidant proxy` in front of it, trusting the world's
/// verifier CA and policy.
async fn attested_proxy(
    knobs: Knobs,
) -> (World, support::server::TestServer, Proxy, tempfile::TempDir) {
    let world = World::new();
    let server = world.server(knobs).await;
    let dir = tempfile::tempdir().unwrap();
    let flags = client_flags(&world, &world.policy_toml(), dir.path());
    let url = server.url();
    let proxy = tokio::task::spawn_blocking(move || start_proxy(&url, flags))
        .await
        .unwrap();
    (world, server, proxy, dir)
}

/// Plain HTTP/1.1 POST of a chat request to the proxy.
async fn post_chat(addr: &str) -> (u16, Bytes) {
    post_chat_with(addr, false).await
}

async fn post_chat_with(addr: &str, stream: bool) -> (u16, Bytes) {
    post_chat_headers(addr, stream, &[("host", addr)]).await
}

/// POST of a chat request with exactly these extra headers (besides content type and token).
async fn post_chat_headers(addr: &str, stream: bool, headers: &[(&str, &str)]) -> (u16, Bytes) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut request = ChatRequest::new(MODEL_ID, vec![ChatMessage::user("via the proxy")]);
    request.stream = Some(stream);
    let body = serde_json::to_vec(&request).unwrap();
    let mut req = http::Request::post(routes::enclave::CHAT_COMPLETIONS)
        .header("content-type", "application/json")
        .header("authorization", "Bearer sk-anything");
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let req = req.body(Full::new(Bytes::from(body))).unwrap();
    let res = sender.send_request(req).await.unwrap();
    let status = res.status().as_u16();
    (status, res.into_body().collect().await.unwrap().to_bytes())
}

#[tokio::test]
async fn proxy_forwards_to_an_attested_upstream() {
    let (_world, server, proxy, _dir) = attested_proxy(Knobs::default()).await;
    let (status, body) = post_chat(&proxy.addr).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let reply: ChatResponse = serde_json::from_slice(&body).unwrap();
    assert_eq!(reply.text(), Some("echo: via the proxy"));
    // Server-sent events pass through unchanged.
    let (status, body) = post_chat_with(&proxy.addr, true).await;
    assert_eq!(status, 200);
    let text = String::from_utf8_lossy(&body);
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    assert_eq!(server.inference_requests(), 2);
    assert_eq!(
        server.handshakes(),
        1,
        "the attested upstream connection is reused"
    );
}

/// The proxy lends the user's token: requests not addressed to its own loopback address (DNS
/// rebinding) and requests a browser makes for another site are refused before anything is
/// forwarded; a same-origin browser request and a plain program request pass.
#[tokio::test]
async fn proxy_answers_only_its_own_host_and_origin() {
    let (_world, server, proxy, _dir) = attested_proxy(Knobs::default()).await;
    let addr = proxy.addr.as_str();
    let port = addr.rsplit(':').next().unwrap();
    let localhost = format!("localhost:{port}");
    let rebound = format!("evil.example:{port}");
    let own_origin = format!("http://{addr}");
    let other_port = format!("http://127.0.0.1:{}", port.parse::<u16>().unwrap() ^ 1);
    let refused: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![("host", &rebound)], "host_not_allowed"),
        (vec![("host", "127.0.0.1")], "host_not_allowed"),
        (vec![], "host_not_allowed"),
        (
            vec![("host", addr), ("origin", "http://evil.example")],
            "cross_origin_refused",
        ),
        (
            vec![("host", addr), ("origin", "null")],
            "cross_origin_refused",
        ),
        (
            vec![("host", addr), ("origin", &other_port)],
            "cross_origin_refused",
        ),
        (
            vec![("host", addr), ("sec-fetch-site", "cross-site")],
            "cross_origin_refused",
        ),
        (
            vec![("host", addr), ("sec-fetch-site", "same-site")],
            "cross_origin_refused",
        ),
    ];
    for (headers, code) in &refused {
        let (status, body) = post_chat_headers(addr, false, headers).await;
        assert_eq!(
            status,
            403,
            "{headers:?}: {}",
            String::from_utf8_lossy(&body)
        );
        let error: confidant_wire::error::ErrorBody = serde_json::from_slice(&body).unwrap();
        assert_eq!(error.error.code, *code, "{headers:?}");
    }
    assert_eq!(
        server.inference_requests(),
        0,
        "nothing refused was forwarded"
    );

    let allowed: Vec<Vec<(&str, &str)>> = vec![
        vec![("host", addr)],
        vec![("host", &localhost)],
        vec![
            ("host", addr),
            ("origin", &own_origin),
            ("sec-fetch-site", "same-origin"),
        ],
    ];
    for headers in &allowed {
        let (status, body) = post_chat_headers(addr, false, headers).await;
        assert_eq!(
            status,
            200,
            "{headers:?}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    assert_eq!(server.inference_requests(), allowed.len());
}

#[test]
fn proxy_help_says_it_lends_the_token_and_refuses_other_origins() {
    let out = CLI.run(&["proxy", "--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in ["YOUR token", "Host", "Origin", "Sec-Fetch-Site", "loopback"] {
        assert!(help.contains(needle), "help lacks {needle:?}:\n{help}");
    }
}

#[tokio::test]
async fn proxy_refuses_to_forward_to_an_impostor() {
    let world = World::new();
    let impostor = world
        .server(Knobs {
            foreign_ca: true,
            ..Knobs::default()
        })
        .await;
    let dir = tempfile::tempdir().unwrap();
    let flags = client_flags(&world, &world.policy_toml(), dir.path());
    let url = impostor.url();
    let proxy = tokio::task::spawn_blocking(move || start_proxy(&url, flags))
        .await
        .unwrap();
    let (status, body) = post_chat(&proxy.addr).await;
    assert_eq!(status, 502);
    let error: confidant_wire::error::ErrorBody = serde_json::from_slice(&body).unwrap();
    assert_eq!(error.error.code, "attestation_failed");
    assert_eq!(impostor.inference_bytes(), 0, "nothing was forwarded");
}

#[test]
fn proxy_refuses_a_non_loopback_listen_address() {
    let out = CLI
        .command()
        .args([
            "proxy",
            "--listen",
            "0.0.0.0:0",
            "--upstream",
            "https://127.0.0.1:1",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
}
