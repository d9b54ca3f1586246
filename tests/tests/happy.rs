//! The happy path through the real binaries: the SDK in all three modes, the `confidant proxy`
//! with a plain HTTP client, and a standard HTTPS client that trusts only the verifier CA; and the
//! enclave's lockdown once its model is unsealed: it keeps serving and renewing under the
//! confinement, and what it reports (log, `/healthz`, session attestation) is compared with what
//! the kernel says about every one of its threads (`/proc/PID/task/*/status`) and with the
//! kernel's Landlock ABI asked independently (python3's ctypes).
// Test code: a failed fixture or assertion is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::process::Command;
use std::time::{Duration, Instant};

use confidant_client::Mode;
use confidant_e2e::{CAPITAL_PROMPT, MODEL_ID, Service, Stack, StackOptions, bins, https};
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
    assert_eq!(
        claims.result.model_digest.as_bytes(),
        &stack.model_digest,
        "{what}"
    );
    assert!(claims.is_dev(), "{what}: simulated evidence must say so");
    assert_eq!(claims.session.is_some(), fresh, "{what}: session evidence");
    assert_eq!(
        claims
            .session
            .as_ref()
            .and_then(|s| s.appraisal.as_ref())
            .is_some(),
        mode == Mode::Direct,
        "{what}: direct mode appraises the session evidence with the client's policy"
    );
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

/// `NoNewPrivs` and `Seccomp` of every thread of `pid`.
fn thread_states(pid: u32) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let task = task.unwrap();
        let Ok(status) = std::fs::read_to_string(task.path().join("status")) else {
            continue; // the thread ended meanwhile
        };
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .unwrap_or("?")
                .trim()
                .to_owned()
        };
        out.push((
            task.file_name().to_string_lossy().into_owned(),
            field("NoNewPrivs"),
            field("Seccomp"),
        ));
    }
    out
}

fn message_index(lines: &[String], message: &str) -> Vec<usize> {
    lines
        .iter()
        .enumerate()
        .filter(|(_, l)| {
            serde_json::from_str::<serde_json::Value>(l)
                .is_ok_and(|v| v["fields"]["message"] == message)
        })
        .map(|(i, _)| i)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enclave_locks_itself_down_after_unsealing_and_keeps_serving() {
    // Short results: the enclave must renew (TEE evidence, a TCP connection to the verifier)
    // while locked down.
    let stack = tokio::task::block_in_place(|| {
        Stack::start_with(StackOptions {
            result_validity_secs: Some(15),
            ..StackOptions::default()
        })
    });

    // 1. The log says what took effect, between unsealing and serving.
    let lines = stack.enclave.lines();
    let unsealed = message_index(&lines, "model key released, model unsealed in memory");
    let locked = message_index(&lines, "locked down");
    let serving = message_index(&lines, "serving");
    assert_eq!(locked.len(), 1, "{}", stack.enclave.tail());
    assert!(unsealed[0] < locked[0] && locked[0] < serving[0]);
    let log: serde_json::Value = serde_json::from_str(&lines[locked[0]]).unwrap();

    // 2. /healthz reports the same, and it matches the kernel.
    let ca = stack.ca_pem();
    let health = https::request(stack.enclave_addr, &ca, "GET", "/healthz", None, None).await;
    assert_eq!(health.status, 200);
    let lockdown = health.json()["lockdown"].clone();
    eprintln!("[lockdown] {lockdown}");
    let abi = confidant_testkit::probe::kernel_landlock_abi();
    assert_eq!(
        lockdown["landlock_abi"], abi,
        "Landlock ABI vs the kernel's"
    );
    assert_eq!(log["fields"]["landlock_abi"], abi);
    assert_eq!(lockdown["no_new_privs"], true);
    assert_eq!(lockdown["seccomp"], "enforced");
    assert_eq!(lockdown["fs_writes_denied"], true, "a write still worked");
    assert_eq!(lockdown["exec_denied"], true, "a program still started");
    if abi > 0 {
        assert_eq!(lockdown["landlock"], "enforced", "{lockdown}");
        assert_eq!(lockdown["landlock_threads"], lockdown["threads"]);
        assert_eq!(
            lockdown["fs_reads_confined"], true,
            "the sealed model is still readable"
        );
    } else {
        assert_eq!(lockdown["landlock"], "unsupported");
    }

    // 3. The kernel agrees for every thread, including those started after the lockdown.
    let states = thread_states(stack.enclave.pid());
    assert!(states.len() > 2, "{states:?}");
    for (tid, nnp, seccomp) in &states {
        assert_eq!(nnp, "1", "thread {tid} can gain privileges");
        assert_eq!(seccomp, "2", "thread {tid} has no seccomp filter");
    }

    // 4. It serves, and session attestation carries the same report.
    let question = capital_question();
    let client = stack.client(Mode::Passport, true);
    let mut conn = client.connect().await.unwrap();
    let session = conn.claims().session.clone().unwrap();
    assert_eq!(
        serde_json::to_value(session.lockdown.unwrap()).unwrap(),
        lockdown
    );
    let reply = conn.chat(question.clone()).await.unwrap();
    assert!(reply.text().unwrap_or_default().contains("Paris"));

    // 5. It renews its attestation under the lockdown, and serves on.
    let accepted = "attestation accepted: key released, certificate issued";
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let lines = stack.enclave.lines();
        if message_index(&lines, accepted)
            .iter()
            .any(|i| *i > locked[0])
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no renewal after the lockdown:\n{}",
            stack.enclave.tail()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let client = stack.client(Mode::Passport, true);
    let reply = client.chat(question).await.unwrap();
    assert!(reply.text().unwrap_or_default().contains("Paris"));
    assert!(
        !stack.enclave.tail().contains("\"level\":\"ERROR\""),
        "{}",
        stack.enclave.tail()
    );
}
