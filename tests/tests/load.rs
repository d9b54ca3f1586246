//! One enclave under load and without its verifier, in one run of the real binaries:
//!
//! 1. The verifier is SIGKILLed once the enclave serves.
//! 2. 64 concurrent streaming chat clients (one principal): every reply is 200, 429 (rate limit)
//!    or 503 (queue full), never another 5xx and never a reset connection; every 200 stream ends
//!    with `data: [DONE]`. At the same time 256 session attestations (`POST /v1/attestation`, no
//!    token) from 64 loopback source addresses, so the per-address rate limit does not stop
//!    them: each is 200 with evidence or 503 `tee_busy`/429, nothing else. The enclave's peak
//!    RSS is printed.
//! 3. The enclave keeps serving with its certificate while its renewal fails (verifier down),
//!    and re-attests once the verifier is back (same address and state).
//! 4. Every key the verifier released during the run has its accepted decision in its audit log
//!    (the enclave's count of accepted attestations equals the log's).
//! 5. Two more enclaves of the same build and configuration whose clocks are 400 days ahead and
//!    behind (libfaketime) fail closed: the verifier releases their keys, but each refuses the
//!    result (expired / issued in the future) and never listens.
// Test code: a failed fixture or assertion is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use confidant_e2e::driver::accepted_results;
use confidant_e2e::https::{HttpError, Reply, try_request, try_request_from};
use confidant_e2e::{MODEL_ID, Stack, StackOptions, metric_sum};
use confidant_wire::routes::enclave::{CHAT_COMPLETIONS, MODELS, SESSION_ATTESTATION};
use futures_util::future::join_all;

const STREAMS: usize = 64;
const SESSION_ADDRESSES: u8 = 64;
const SESSIONS_PER_ADDRESS: usize = 4;
/// Result and certificate lifetime: renewal starts at two thirds of it (40 s).
const VALIDITY_SECS: u64 = 60;

async fn stream_chat(stack: &Stack, token: &str) -> Result<Reply, HttpError> {
    let body = serde_json::json!({
        "model": MODEL_ID,
        "messages": [{"role": "user", "content": "Count to three."}],
        "max_tokens": 8,
        "stream": true,
    });
    try_request(
        stack.enclave_addr,
        &stack.ca_pem(),
        "POST",
        CHAT_COMPLETIONS,
        Some(token),
        Some(("application/json", body.to_string().into_bytes())),
    )
    .await
}

async fn session_attestation(stack: &Stack, from: IpAddr) -> Result<Reply, HttpError> {
    let nonce: [u8; 32] = rand_bytes();
    let body = serde_json::json!({ "nonce": hex::encode(nonce) });
    try_request_from(
        Some(from),
        stack.enclave_addr,
        &stack.ca_pem(),
        "POST",
        SESSION_ATTESTATION,
        None,
        Some(("application/json", body.to_string().into_bytes())),
    )
    .await
}

fn rand_bytes<const N: usize>() -> [u8; N] {
    use ring::rand::SecureRandom;
    let mut b = [0u8; N];
    ring::rand::SystemRandom::new().fill(&mut b).unwrap();
    b
}

/// The error code of a JSON error reply ("" for anything else, such as an event stream).
fn code(r: &Reply) -> String {
    serde_json::from_slice::<serde_json::Value>(&r.body)
        .ok()
        .and_then(|v| v["error"]["code"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Peak resident set size of a process (`VmHWM`), in kB.
fn peak_rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Log lines of `e` saying an attestation failed because of `refusal`.
fn e_lines_matching(e: &confidant_e2e::Service, refusal: &str) -> usize {
    e.lines()
        .iter()
        .filter(|l| l.contains("attestation failed") && l.contains(refusal))
        .count()
}

/// The enclave's attestation attempts with `outcome` (`None`: all of them).
async fn attestations(stack: &Stack, outcome: Option<&str>) -> f64 {
    let label = outcome.map_or("outcome=".to_owned(), |o| format!("outcome=\"{o}\""));
    metric_sum(
        &stack.metrics().await,
        "confidant_attestations_total",
        &label,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn load_and_a_verifier_outage() {
    let mut stack = tokio::task::block_in_place(|| {
        Stack::start_with(StackOptions {
            result_validity_secs: Some(VALIDITY_SECS),
            // Appended to the enclave's `[limits]`: one session request may wait for the TEE.
            enclave_toml: "session_attestation_queue = 1\nsession_attestation_wait_ms = 2000\n"
                .to_owned(),
            ..StackOptions::default()
        })
    });
    let started = Instant::now();
    tokio::task::block_in_place(|| stack.stop_verifier());

    // --- 2. load -----------------------------------------------------------------------------
    let token = stack.token("client");
    let t = Instant::now();
    let (streams, sessions) = tokio::join!(
        join_all((0..STREAMS).map(|_| stream_chat(&stack, &token))),
        join_all(
            (0..usize::from(SESSION_ADDRESSES) * SESSIONS_PER_ADDRESS).map(|i| {
                let host = 2 + (i % usize::from(SESSION_ADDRESSES)) as u8;
                session_attestation(&stack, IpAddr::V4(Ipv4Addr::new(127, 0, 0, host)))
            })
        ),
    );
    let load_time = t.elapsed();
    let mut statuses: BTreeMap<(u16, String), usize> = BTreeMap::new();
    for r in &streams {
        let r = r.as_ref().expect("a stream got no complete reply");
        *statuses.entry((r.status, code(r))).or_default() += 1;
        match r.status {
            200 => {
                let text = String::from_utf8_lossy(&r.body);
                assert!(
                    text.trim_end().ends_with("data: [DONE]"),
                    "stream without its final event: {text}"
                );
            }
            429 | 503 => {}
            s => panic!("stream answered {s}: {}", String::from_utf8_lossy(&r.body)),
        }
    }
    let mut session_statuses: BTreeMap<(u16, String), usize> = BTreeMap::new();
    for r in &sessions {
        let r = r
            .as_ref()
            .expect("a session attestation got no complete reply");
        *session_statuses.entry((r.status, code(r))).or_default() += 1;
        match (r.status, code(r).as_str()) {
            (200, _) => assert!(r.json()["evidence"].is_string()),
            (503, "tee_busy") => assert_eq!(r.retry_after.as_deref(), Some("1")),
            (429, "rate_limited") => {}
            (s, c) => panic!("session attestation answered {s} {c}"),
        }
    }
    let rss = peak_rss_kb(stack.enclave.pid());
    eprintln!(
        "[load] {STREAMS} streams {statuses:?}, {} session attestations {session_statuses:?} \
         in {load_time:?}; enclave peak RSS {} MiB",
        sessions.len(),
        rss / 1024
    );
    assert!(
        statuses.contains_key(&(200, String::new())),
        "no stream was served: {statuses:?}"
    );
    assert!(
        session_statuses.contains_key(&(200, String::new())),
        "no session attestation was served: {session_statuses:?}"
    );

    // --- 3. the outage --------------------------------------------------------------------
    // Renewal starts at 40 s and fails while the verifier is down; the enclave keeps serving.
    let deadline = started + Duration::from_secs(VALIDITY_SECS - 5);
    loop {
        let failed =
            attestations(&stack, None).await - attestations(&stack, Some("accepted")).await;
        if failed > 0.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no renewal attempt before expiry"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let r = try_request(
        stack.enclave_addr,
        &stack.ca_pem(),
        "GET",
        MODELS,
        Some(&token),
        None,
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "not serving while its certificate is valid");
    let accepted_before = attestations(&stack, Some("accepted")).await;

    tokio::task::block_in_place(|| stack.restart_verifier());
    let deadline = Instant::now() + Duration::from_secs(60);
    while attestations(&stack, Some("accepted")).await <= accepted_before {
        assert!(
            Instant::now() < deadline,
            "no re-attestation after the verifier returned"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let client = stack.client(confidant_client::Mode::Passport, true);
    client
        .connect()
        .await
        .expect("attests with the renewed certificate");

    // --- 4. the audit log -----------------------------------------------------------------
    let accepted = attestations(&stack, Some("accepted")).await as usize;
    let log = stack.read_verifier_file("audit.log");
    assert_eq!(
        accepted_results(&log).len(),
        accepted,
        "keys released by the verifier vs accepted decisions in its log"
    );

    // --- 5. a clock far off ---------------------------------------------------------------
    for (offset, refusal) in [
        ("+400d", "the result has expired"),
        ("-400d", "the result is not valid yet"),
    ] {
        let e = stack.spawn_enclave(
            &["faketime", "-f", offset],
            &[("FAKETIME_DONT_FAKE_MONOTONIC", "1")],
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        while e_lines_matching(&e, refusal) < 3 {
            assert!(
                Instant::now() < deadline,
                "{offset}: no three refused attestations:\n{}",
                e.tail()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let log = e.lines().join("\n");
        assert!(!log.contains("\"serving\""), "{offset}: {log}");
        assert!(!log.contains("listening"), "{offset}: {log}");
    }
    eprintln!("[load] whole test {:?}", started.elapsed());
}
