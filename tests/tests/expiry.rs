//! An expired attestation result is refused: a verifier issuing 6-second results, an enclave that
//! can no longer renew (the verifier is stopped), and a client connecting after its certificate
//! and result lapsed. The enclave still presents its (expired) certificate and holds its key, so
//! only the expiry checks stand between the client and it.
// Test code: a failed fixture or assertion is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use confidant_client::{AttestError, ClientError, Mode};
use confidant_e2e::{Stack, StackOptions};
use rustls::CertificateError;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_result_is_refused() {
    let mut stack = tokio::task::block_in_place(|| {
        Stack::start_with(StackOptions {
            result_validity_secs: Some(6),
            ..StackOptions::default()
        })
    });
    let client = stack.client(Mode::Passport, true);
    client
        .connect()
        .await
        .expect("attests while the result is fresh");

    stack.stop_verifier();
    // The last certificate the enclave obtained expires within the validity period.
    let deadline = Instant::now() + Duration::from_secs(20);
    let refusal = loop {
        let client = stack.client(Mode::Passport, true);
        match client.connect().await {
            Ok(_) => {
                assert!(Instant::now() < deadline, "still accepted after expiry");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => break e,
        }
    };
    // The X.509 validity and the result's `exp` end together; the chain check runs first.
    assert!(
        matches!(
            refusal,
            ClientError::Attestation(
                AttestError::ResultExpired
                    | AttestError::Certificate(
                        CertificateError::Expired | CertificateError::ExpiredContext { .. }
                    )
            )
        ),
        "{refusal:?}"
    );
}
