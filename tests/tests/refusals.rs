//! Refusals against the real verifier and enclave: a client policy that does not allow the
//! enclave's measurement or model (the enclave's metrics show no prompt arrived), and impostor
//! servers — a certificate from another CA, the real enclave's certificate without its key, a
//! CA-issued certificate for a second enclave with another measurement, and real session evidence
//! replayed on another TLS session.
// Test code: a failed fixture or assertion is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use confidant_client::{AttestError, Client, ClientError, Mode, PolicyError};
use confidant_e2e::impostor::{self, ImpostorServer};
use confidant_e2e::{CAPITAL_PROMPT, MODEL_ID, Stack, StackOptions, https, metric_sum};
use confidant_wire::openai::{ChatMessage, ChatRequest};
use confidant_wire::routes;

/// A launch measurement the verifier's policy allows (for a second enclave) but clients do not.
const OTHER_MEASUREMENT: [u8; 48] = [0x42; 48];

fn prompt() -> ChatRequest {
    ChatRequest::new(MODEL_ID, vec![ChatMessage::user(CAPITAL_PROMPT)]).max_tokens(8)
}

/// Sends a prompt through `client` and returns the refusal.
async fn refusal(client: &Client) -> ClientError {
    match client.chat(prompt()).await {
        Ok(r) => panic!("expected a refusal, got an answer: {:?}", r.text()),
        Err(e) => e,
    }
}

fn attest_error(e: ClientError) -> AttestError {
    match e {
        ClientError::Attestation(a) => a,
        other => panic!("expected an attestation refusal, got {other:?}"),
    }
}

/// What the enclave counted on its prompt-bearing and session routes, and prompt tokens.
async fn prompt_counters(stack: &Stack) -> (f64, f64, f64) {
    let m = stack.metrics().await;
    (
        metric_sum(
            &m,
            "confidant_http_requests_total",
            routes::enclave::CHAT_COMPLETIONS,
        ) + metric_sum(
            &m,
            "confidant_http_requests_total",
            routes::enclave::COMPLETIONS,
        ),
        metric_sum(
            &m,
            "confidant_http_requests_total",
            routes::enclave::SESSION_ATTESTATION,
        ),
        metric_sum(&m, "confidant_prompt_tokens_total", ""),
    )
}

async fn client_policy_refusals(stack: &Stack) {
    let before = prompt_counters(stack).await;
    for mode in [Mode::Passport, Mode::Direct] {
        let other_measurement = stack.policy_with(|p| p.measurements = vec![OTHER_MEASUREMENT]);
        let client = stack.client_for(&stack.enclave_url(), other_measurement, mode, true);
        let e = attest_error(refusal(&client).await);
        assert!(
            matches!(e, AttestError::Policy(PolicyError::MeasurementNotAllowed)),
            "{mode:?}: {e:?}"
        );

        let other_model = stack.policy_with(|p| p.digest = [0x0d; 32]);
        let client = stack.client_for(&stack.enclave_url(), other_model, mode, true);
        let e = attest_error(refusal(&client).await);
        assert!(
            matches!(e, AttestError::Policy(PolicyError::ModelDigestMismatch)),
            "{mode:?}: {e:?}"
        );

        let no_dev = stack.policy_with(|p| p.allow_dev = false);
        let client = stack.client_for(&stack.enclave_url(), no_dev, mode, true);
        let e = attest_error(refusal(&client).await);
        assert!(
            matches!(e, AttestError::Policy(PolicyError::DevEvidenceNotAllowed)),
            "{mode:?}: {e:?}"
        );
    }
    let after = prompt_counters(stack).await;
    assert_eq!(
        before, after,
        "refused clients must not reach the enclave's prompt or session routes"
    );
}

async fn foreign_ca(stack: &Stack) {
    let server = ImpostorServer::start(impostor::foreign_ca_identity(), None).await;
    let client = stack.client_for(&server.url(), stack.policy(), Mode::Passport, true);
    let e = attest_error(refusal(&client).await);
    assert!(matches!(e, AttestError::UntrustedCa), "{e:?}");
    assert_eq!(server.handshakes(), 0, "refused during the handshake");
    assert_eq!(server.other_requests(), 0, "no prompt byte");
}

async fn real_certificate_without_its_key(stack: &Stack) {
    let chain = https::peer_chain(stack.enclave_addr, &stack.ca_pem()).await;
    let server = ImpostorServer::start(impostor::stolen_chain_identity(chain), None).await;
    let client = stack.client_for(&server.url(), stack.policy(), Mode::Passport, true);
    // The certificate appraises fine; the handshake signature cannot be made without its key,
    // so this is a TLS failure, not an attestation decision.
    let e = refusal(&client).await;
    assert!(matches!(e, ClientError::Tls(_)), "{e:?}");
    assert_eq!(server.attestation_requests() + server.other_requests(), 0);
}

async fn ca_issued_certificate_for_another_measurement(stack: &Stack) {
    let identity = impostor::certified_second_enclave(stack, &OTHER_MEASUREMENT).await;
    let server = ImpostorServer::start(identity, None).await;
    for mode in [Mode::Passport, Mode::Direct] {
        let client = stack.client_for(&server.url(), stack.policy(), mode, true);
        let e = attest_error(refusal(&client).await);
        assert!(
            matches!(e, AttestError::Policy(PolicyError::MeasurementNotAllowed)),
            "{mode:?}: {e:?}"
        );
    }
    assert_eq!(server.attestation_requests() + server.other_requests(), 0);
}

/// Real session evidence, captured from the real enclave on one TLS session (nonce A), replayed
/// by a second, CA-certified enclave with an allowed measurement on another session.
async fn replayed_session_evidence(stack: &Stack) {
    let nonce = hex::encode([0x5a; 32]);
    let captured = https::request(
        stack.enclave_addr,
        &stack.ca_pem(),
        "POST",
        routes::enclave::SESSION_ATTESTATION,
        Some(&stack.token("client")),
        Some((
            "application/json",
            serde_json::json!({ "nonce": nonce })
                .to_string()
                .into_bytes(),
        )),
    )
    .await;
    assert_eq!(captured.status, 200, "real session evidence");
    let identity = impostor::certified_second_enclave(stack, &stack.measurement).await;
    let server = ImpostorServer::start(identity, Some(captured.body)).await;

    // Without `fresh` the second enclave passes: its certificate binds only its own key.
    let unfresh = stack.client_for(&server.url(), stack.policy(), Mode::Passport, false);
    unfresh
        .connect()
        .await
        .expect("certificate-level checks pass");

    for mode in [Mode::Passport, Mode::Direct] {
        let client = stack.client_for(&server.url(), stack.policy(), mode, true);
        let e = attest_error(refusal(&client).await);
        assert!(
            matches!(e, AttestError::SessionBindingMismatch),
            "{mode:?}: {e:?}"
        );
    }
    assert_eq!(
        server.attestation_requests(),
        2,
        "one session check per fresh client"
    );
    assert_eq!(server.other_requests(), 0, "no prompt byte");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_before_any_prompt_byte() {
    let stack = tokio::task::block_in_place(|| {
        Stack::start_with(StackOptions {
            extra_measurements: vec![OTHER_MEASUREMENT],
            ..StackOptions::default()
        })
    });
    // First: nothing in this test sends a prompt to the real enclave.
    client_policy_refusals(&stack).await;
    foreign_ca(&stack).await;
    real_certificate_without_its_key(&stack).await;
    ca_issued_certificate_for_another_measurement(&stack).await;
    replayed_session_evidence(&stack).await;
}
