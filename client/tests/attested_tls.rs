//! The SDK against an in-test attested server: every mode works against an honest enclave, and
//! every impostor is refused with the variant naming the failed check, before any prompt byte
//! reaches the server.
// Helpers outside #[test] functions unwrap too: a failed fixture is a failed test.
#![allow(clippy::unwrap_used)]

mod support;

use futures_util::StreamExt;

use confidant_attestation::result::Status;
use confidant_attestation::snp::TcbComponent;
use confidant_client::{
    AttestError, ClientError, ConfigError, Mode, PolicyError, TrustAnchors, blocking,
};
use confidant_testkit::policy::TcbFloor;
use confidant_wire::openai::{ChatMessage, ChatRequest, CompletionRequest};

use support::{Knobs, MEASUREMENT, MODEL_DIGEST, MODEL_ID, SessionMode, World, dev_policy};

fn hello() -> ChatRequest {
    ChatRequest::new(MODEL_ID, vec![ChatMessage::user("hello there")]).max_tokens(8)
}

fn refusal(e: ClientError) -> AttestError {
    match e {
        ClientError::Attestation(a) => a,
        other => panic!("expected an attestation refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn passport_fresh_happy_path_reuses_the_attested_connection() {
    let world = World::new();
    let server = world.server(Knobs::default()).await;
    let client = world.client(&server, Mode::Passport, true);

    let reply = client.chat(hello()).await.unwrap();
    assert_eq!(reply.text(), Some("echo: hello there"));
    let again = client.chat(hello()).await.unwrap();
    assert_eq!(again.text(), Some("echo: hello there"));
    let completion = client
        .complete(CompletionRequest::new(MODEL_ID, "once upon"))
        .await
        .unwrap();
    assert_eq!(completion.text(), Some("once upon ..."));

    assert_eq!(
        server.handshakes(),
        1,
        "one pooled connection serves every call"
    );
    assert_eq!(
        server.attestation_requests(),
        1,
        "fresh evidence once per connection"
    );
    assert_eq!(server.inference_requests(), 3);
}

#[tokio::test]
async fn connection_exposes_the_verified_claims() {
    let world = World::new();
    let server = world.server(Knobs::default()).await;
    let client = world.client(&server, Mode::Passport, true);
    let conn = client.connect().await.unwrap();
    let claims = conn.claims();
    assert_eq!(claims.mode, Mode::Passport);
    assert_eq!(claims.result.model_id, MODEL_ID);
    assert_eq!(claims.result.model_digest, MODEL_DIGEST);
    assert_eq!(claims.result.measurement, MEASUREMENT.to_vec());
    assert_eq!(claims.result.status, Status::Affirming);
    assert!(claims.is_dev());
    assert!(
        claims.session.is_some(),
        "fresh mode carries session evidence"
    );
    assert!(
        claims.session.as_ref().unwrap().appraisal.is_none(),
        "passport mode trusts the result for what the session evidence does not repeat"
    );
    let json = serde_json::to_value(claims).unwrap();
    assert_eq!(json["result"]["model_id"], MODEL_ID);
    assert_eq!(json["result"]["model_digest"], MODEL_DIGEST.to_hex());
}

#[tokio::test]
async fn passport_without_fresh_skips_session_evidence() {
    let world = World::new();
    let server = world.server(Knobs::default()).await;
    let client = world.client(&server, Mode::Passport, false);
    let conn = client.connect().await.unwrap();
    assert!(conn.claims().session.is_none());
    assert_eq!(
        client.chat(hello()).await.unwrap().text(),
        Some("echo: hello there")
    );
    assert_eq!(server.attestation_requests(), 0);
}

#[tokio::test]
async fn direct_appraises_the_session_evidence_with_the_client_policy() {
    let world = World::new();
    let server = world.server(Knobs::default()).await;
    let client = world.client(&server, Mode::Direct, true);
    let mut conn = client.connect().await.unwrap();
    assert_eq!(conn.claims().mode, Mode::Direct);
    let session = conn.claims().session.as_ref().unwrap();
    let appraisal = session.appraisal.as_ref().unwrap();
    assert_eq!(appraisal.policy_id, "test-policy");
    assert_eq!(appraisal.model_id, MODEL_ID);
    assert_eq!(appraisal.model_digest, MODEL_DIGEST);
    assert_eq!(appraisal.measurement, hex::encode(MEASUREMENT));
    assert!(appraisal.dev);
    assert!(!appraisal.chip_id_masked && !appraisal.chip_key_masked);
    let reply = conn.chat(hello()).await.unwrap();
    assert_eq!(reply.text(), Some("echo: hello there"));

    // Every connection is appraised: a second one carries its own appraisal.
    let second = client.connect().await.unwrap();
    assert!(
        second
            .claims()
            .session
            .as_ref()
            .unwrap()
            .appraisal
            .is_some()
    );
    assert_eq!(server.attestation_requests(), 2);
}

#[tokio::test]
async fn chat_stream_yields_the_deltas_in_order() {
    let world = World::new();
    let server = world.server(Knobs::default()).await;
    let client = world.client(&server, Mode::Passport, true);
    let mut stream = client.chat_stream(hello()).await.unwrap();
    let mut text = String::new();
    let mut finished = false;
    while let Some(delta) = stream.next().await {
        let delta = delta.unwrap();
        text.push_str(&delta.content);
        finished |= delta.finish_reason.is_some();
    }
    assert_eq!(text, "echo: hello there");
    assert!(finished);
    drop(stream);
    // The cleanly finished stream handed its connection back to the pool.
    client.chat(hello()).await.unwrap();
    assert_eq!(server.handshakes(), 1);
}

#[test]
fn blocking_client_works_outside_a_runtime() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let world = World::new();
    let server = rt.block_on(world.server(Knobs::default()));
    let client = blocking::Client::new(world.builder(&server)).unwrap();
    assert_eq!(client.attest().unwrap().result.model_id, MODEL_ID);
    assert_eq!(
        client.chat(hello()).unwrap().text(),
        Some("echo: hello there")
    );
    let mut streamed = String::new();
    client
        .chat_stream(hello(), |d| streamed.push_str(&d.content))
        .unwrap();
    assert_eq!(streamed, "echo: hello there");
}

/// Connects with `client_for` against a server shaped by `knobs`, expects a refusal, and checks
/// the server received no prompt byte.
async fn refused(
    knobs: Knobs,
    client_for: impl FnOnce(&World, &support::TestServer) -> confidant_client::Client,
) -> AttestError {
    let world = World::new();
    let server = world.server(knobs).await;
    let client = client_for(&world, &server);
    let err = client.chat(hello()).await.unwrap_err();
    assert_eq!(
        server.inference_requests(),
        0,
        "no request reached the chat route"
    );
    assert_eq!(
        server.inference_bytes(),
        0,
        "no prompt byte reached the server"
    );
    refusal(err)
}

fn plain(mode: Mode) -> impl FnOnce(&World, &support::TestServer) -> confidant_client::Client {
    move |w, s| w.client(s, mode, true)
}

#[tokio::test]
async fn certificate_from_another_ca_is_refused() {
    for mode in [Mode::Passport, Mode::Direct] {
        let knobs = Knobs {
            foreign_ca: true,
            ..Knobs::default()
        };
        let err = refused(knobs, plain(mode)).await;
        assert!(matches!(err, AttestError::UntrustedCa), "{mode:?}: {err:?}");
    }
}

#[tokio::test]
async fn valid_certificate_for_another_key_is_refused() {
    let knobs = Knobs {
        result_for_other_key: true,
        ..Knobs::default()
    };
    let err = refused(knobs, plain(Mode::Passport)).await;
    assert!(matches!(err, AttestError::KeyBindingMismatch), "{err:?}");
}

#[tokio::test]
async fn expired_result_is_refused() {
    let knobs = Knobs {
        result_ttl: -5,
        ..Knobs::default()
    };
    let err = refused(knobs, plain(Mode::Passport)).await;
    assert!(matches!(err, AttestError::ResultExpired), "{err:?}");
}

#[tokio::test]
async fn non_affirming_result_is_refused() {
    let knobs = Knobs {
        status: Status::Warning,
        ..Knobs::default()
    };
    let err = refused(knobs, plain(Mode::Passport)).await;
    assert!(
        matches!(err, AttestError::ResultStatus(Status::Warning)),
        "{err:?}"
    );
}

#[tokio::test]
async fn result_signed_by_another_key_is_refused() {
    let err = refused(Knobs::default(), |w, s| {
        let other = confidant_attestation::result::ResultSigner::from_pkcs8(
            &confidant_attestation::result::ResultSigner::generate_pkcs8(
                &ring::rand::SystemRandom::new(),
            )
            .unwrap(),
            &ring::rand::SystemRandom::new(),
        )
        .unwrap();
        w.builder(s)
            .result_key(other.verifier().clone())
            .build()
            .unwrap()
    })
    .await;
    assert!(matches!(err, AttestError::ResultSignature(_)), "{err:?}");
}

#[tokio::test]
async fn model_not_allowed_is_refused_before_any_prompt_byte() {
    let knobs = Knobs {
        model_id: "some-other-model".into(),
        ..Knobs::default()
    };
    for mode in [Mode::Passport, Mode::Direct] {
        let err = refused(knobs.clone(), plain(mode)).await;
        assert!(
            matches!(err, AttestError::Policy(PolicyError::UnknownModel)),
            "{mode:?}: {err:?}"
        );
    }
}

#[tokio::test]
async fn measurement_not_allowed_is_refused_before_any_prompt_byte() {
    let knobs = Knobs {
        measurement: [0x01; 48],
        ..Knobs::default()
    };
    for mode in [Mode::Passport, Mode::Direct] {
        let err = refused(knobs.clone(), plain(mode)).await;
        assert!(
            matches!(err, AttestError::Policy(PolicyError::MeasurementNotAllowed)),
            "{mode:?}: {err:?}"
        );
    }
}

#[tokio::test]
async fn tcb_below_the_floor_is_refused() {
    for mode in [Mode::Passport, Mode::Direct] {
        let err = refused(Knobs::default(), move |w, s| {
            w.builder(s)
                .mode(mode)
                .policy(w.policy_with(|p| p.min_tcb = TcbFloor::new(0, 0, 0, 255)))
                .build()
                .unwrap()
        })
        .await;
        assert!(
            matches!(
                err,
                AttestError::Policy(PolicyError::TcbBelowFloor {
                    component: TcbComponent::Microcode
                })
            ),
            "{mode:?}: {err:?}"
        );
    }
}

#[tokio::test]
async fn dev_evidence_is_refused_unless_allowed() {
    for mode in [Mode::Passport, Mode::Direct] {
        let err = refused(Knobs::default(), move |w, s| {
            w.builder(s)
                .mode(mode)
                .policy(w.policy_with(|p| p.allow_dev = false))
                .build()
                .unwrap()
        })
        .await;
        assert!(
            matches!(err, AttestError::Policy(PolicyError::DevEvidenceNotAllowed)),
            "{mode:?}: {err:?}"
        );
    }
}

#[tokio::test]
async fn masked_chip_key_in_the_result_is_refused_unless_the_policy_allows_it() {
    let knobs = Knobs {
        result_chip_key_masked: true,
        ..Knobs::default()
    };
    let err = refused(knobs, plain(Mode::Passport)).await;
    assert!(
        matches!(err, AttestError::Policy(PolicyError::ChipKeyMasked)),
        "{err:?}"
    );
}

#[tokio::test]
async fn direct_mode_checks_the_exact_development_root_itself() {
    // The client's policy pins another development root than the one that signed the evidence.
    // The result only says "dev", which the policy accepts, so passport mode trusts the verifier
    // here; direct mode checks the root of the session evidence and refuses.
    let other_pin = |w: &World| {
        let toml = w.policy_toml().replace(
            &confidant_testkit::policy::dev_ark_sha256(),
            &"ab".repeat(32),
        );
        confidant_client::Policy::from_toml(&toml).unwrap()
    };
    let world = World::new();
    let server = world.server(Knobs::default()).await;
    world
        .builder(&server)
        .policy(other_pin(&world))
        .build()
        .unwrap()
        .connect()
        .await
        .unwrap();
    let err = refused(Knobs::default(), move |w, s| {
        w.builder(s)
            .mode(Mode::Direct)
            .policy(other_pin(w))
            .build()
            .unwrap()
    })
    .await;
    assert!(
        matches!(
            err,
            AttestError::SessionPolicy(PolicyError::DevRootNotTrusted)
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn direct_mode_requires_session_evidence() {
    // `direct` never takes the key binding from the verifier: without session evidence the client
    // would have nothing of its own to check it on.
    let world = World::new();
    let server = world.server(Knobs::default()).await;
    let built = world
        .builder(&server)
        .mode(Mode::Direct)
        .fresh(false)
        .build();
    assert!(
        matches!(
            built,
            Err(ClientError::Config(ConfigError::DirectNeedsFresh))
        ),
        "{built:?}"
    );
}

#[tokio::test]
async fn direct_mode_refuses_evidence_from_untrusted_roots() {
    let err = refused(Knobs::default(), |w, s| {
        w.builder(s)
            .mode(Mode::Direct)
            .trust_anchors(TrustAnchors::default())
            .build()
            .unwrap()
    })
    .await;
    assert!(
        matches!(err, AttestError::SessionEvidenceInvalid(_)),
        "{err:?}"
    );
}

#[tokio::test]
async fn fresh_refuses_session_evidence_replayed_from_another_session() {
    for mode in [Mode::Passport, Mode::Direct] {
        let knobs = Knobs {
            session: SessionMode::OtherSession,
            ..Knobs::default()
        };
        let err = refused(knobs, plain(mode)).await;
        assert!(
            matches!(err, AttestError::SessionBindingMismatch),
            "{mode:?}: {err:?}"
        );
    }
}

#[tokio::test]
async fn fresh_refuses_session_evidence_for_another_nonce() {
    let knobs = Knobs {
        session: SessionMode::OtherNonce,
        ..Knobs::default()
    };
    let err = refused(knobs, plain(Mode::Passport)).await;
    assert!(
        matches!(err, AttestError::SessionBindingMismatch),
        "{err:?}"
    );
}

#[tokio::test]
async fn fresh_refuses_session_evidence_from_another_image() {
    let knobs = Knobs {
        session: SessionMode::OtherMeasurement,
        ..Knobs::default()
    };
    // Passport: not the image the result names.
    let err = refused(knobs.clone(), plain(Mode::Passport)).await;
    assert!(
        matches!(err, AttestError::SessionEvidenceMismatch),
        "{err:?}"
    );
    // Direct: not in the policy, refused on its own merits.
    let err = refused(knobs.clone(), plain(Mode::Direct)).await;
    assert!(
        matches!(
            err,
            AttestError::SessionPolicy(PolicyError::MeasurementNotAllowed)
        ),
        "{err:?}"
    );
    // In the policy, but not the image the certificate attested: refused as a mismatch.
    for mode in [Mode::Passport, Mode::Direct] {
        let err = refused(knobs.clone(), move |w, s| {
            w.builder(s)
                .mode(mode)
                .policy(dev_policy(&[MEASUREMENT, [0x99; 48]], |_| {}))
                .build()
                .unwrap()
        })
        .await;
        assert!(
            matches!(err, AttestError::SessionEvidenceMismatch),
            "{mode:?}: {err:?}"
        );
    }
}

#[tokio::test]
async fn fresh_refuses_a_server_that_will_not_attest_the_session() {
    let knobs = Knobs {
        session: SessionMode::Unavailable,
        ..Knobs::default()
    };
    let err = refused(knobs, plain(Mode::Passport)).await;
    assert!(matches!(err, AttestError::SessionAttestation(_)), "{err:?}");
}

#[tokio::test]
async fn fresh_without_session_anchors_refuses() {
    let err = refused(Knobs::default(), |w, s| {
        w.builder(s)
            .trust_anchors(TrustAnchors::default())
            .build()
            .unwrap()
    })
    .await;
    assert!(
        matches!(err, AttestError::SessionEvidenceInvalid(_)),
        "{err:?}"
    );
}

#[tokio::test]
async fn builder_refuses_incomplete_settings() {
    let world = World::new();
    let server = world.server(Knobs::default()).await;
    let no_ca = confidant_client::Client::builder(server.url())
        .result_key(world.signer.verifier().clone())
        .policy(world.policy())
        .build();
    assert!(matches!(
        no_ca,
        Err(ClientError::Config(
            confidant_client::ConfigError::MissingCa
        ))
    ));
    let no_policy = confidant_client::Client::builder(server.url())
        .verifier_ca(world.ca.cert_der())
        .result_key(world.signer.verifier().clone())
        .build();
    assert!(matches!(
        no_policy,
        Err(ClientError::Config(ConfigError::EmptyPolicy))
    ));
    let http = world.builder(&server).build().map(|_| ()).and_then(|_| {
        confidant_client::Client::builder(format!("http://127.0.0.1:{}", server.addr.port()))
            .verifier_ca(world.ca.cert_der())
            .result_key(world.signer.verifier().clone())
            .policy(world.policy())
            .build()
            .map(|_| ())
    });
    assert!(matches!(
        http,
        Err(ClientError::Config(confidant_client::ConfigError::BadUrl))
    ));
}
