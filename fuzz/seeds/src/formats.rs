//! Seeds our own encoders write: evidence, attestation results, RA-TLS certificates, sealed
//! models, audit logs and checkpoints, wire bodies, policies.

use confidant_attestation::audit::{
    AuditEvent, Checkpoint, CheckpointSigner, Decision, LogState, encode_record, leaf_hash,
};
use confidant_attestation::binding::{Binding, KeyRelease};
use confidant_attestation::digest::Blake3Digest;
use confidant_attestation::evidence::{Evidence, ReceivedEvidence, SnpEvidence};
use confidant_attestation::leafcert::CertificateAuthority;
use confidant_attestation::modelkey::ModelKey;
use confidant_attestation::names::SubjectName;
use confidant_attestation::policy::Policy;
use confidant_attestation::result::{ResultClaims, ResultSigner, Status, TeeKind};
use confidant_attestation::snp::SnpTrustRoots;
use confidant_attestation::time::UnixTime;
use confidant_attestation::verify::{TrustAnchors, verify_evidence};
use confidant_attester::snp_sim::SimulatedSnp;
use confidant_fuzz::frame::join;
use confidant_sealed::{encode_bundle, seal_with_chunk_size};
use confidant_testkit::policy::DevSnpPolicy;
use confidant_testkit::read_testdata;
use confidant_wire::attest::{AttestRequest, AttestResponse, WrappedKeyWire};
use ring::rand::SystemRandom;
use serde_bytes::ByteBuf;

use crate::{Seed, SeedError, ctx};

fn snp_evidence(dir: &str, with_chain: bool) -> Evidence {
    let chain = with_chain.then(|| {
        let pem = read_testdata(&format!("snp/{dir}/cert_chain.pem"));
        pem::parse_many(&pem)
            .unwrap_or_default()
            .into_iter()
            .map(|p| ByteBuf::from(p.into_contents()))
            .collect()
    });
    Evidence::SevSnp(SnpEvidence {
        report: read_testdata(&format!("snp/{dir}/report.bin")),
        signer_cert: read_testdata(&format!("snp/{dir}/vcek.der")),
        chain,
    })
}

/// SEV-SNP evidence from the real reports, TPM evidence from swtpm quotes (with an event log).
fn all_evidence() -> Result<Vec<(String, Evidence)>, SeedError> {
    let mut out = vec![
        (
            "snp-virtee-milan".to_owned(),
            snp_evidence("virtee-milan", false),
        ),
        (
            "snp-virtee-milan-chain".to_owned(),
            snp_evidence("virtee-milan", true),
        ),
        (
            "snp-trustee-milan".to_owned(),
            snp_evidence("trustee-milan", false),
        ),
    ];
    for (alg, q) in &crate::tpm::sample()?.quotes {
        out.push((format!("tpm-{alg}"), Evidence::Tpm(q.clone())));
        let mut with_log = q.clone();
        with_log.event_log = Some(ByteBuf::from(vec![0u8; 8]));
        out.push((format!("tpm-{alg}-log"), Evidence::Tpm(with_log)));
    }
    Ok(out)
}

pub fn evidence() -> Result<Vec<Seed>, SeedError> {
    Ok(all_evidence()?
        .into_iter()
        .map(|(name, ev)| (name, ev.to_cbor()))
        .collect())
}

fn claims(tee: TeeKind) -> ResultClaims {
    ResultClaims {
        iss: "confidant-verifier".into(),
        aud: "confidant-client".into(),
        iat: 1_767_225_000,
        exp: 1_767_229_200,
        status: Status::Affirming,
        tee,
        measurement: vec![0xab; 48],
        tcb: None,
        policy_id: "policy".into(),
        policy_version: 3,
        model_id: "smollm2-135m-instruct".into(),
        model_digest: Blake3Digest::from_bytes([2; 32]),
        tls_spki_sha256: [3; 32],
        evidence_digest: [4; 32],
        dev: true,
        nonce: Some([5; 32]),
        tpm_ak_spki_sha256: (tee == TeeKind::Tpm).then_some([6; 32]),
        mask_chip_id: false,
        mask_chip_key: false,
    }
}

/// A fresh result signer (a key made for this run, never stored).
fn signer(rng: &SystemRandom) -> Result<ResultSigner, SeedError> {
    let pkcs8 = ResultSigner::generate_pkcs8(rng).map_err(ctx("result key"))?;
    ResultSigner::from_pkcs8(&pkcs8, rng).map_err(ctx("result key"))
}

/// `[COSE_Key, result, audience]` and `[JWK, result, audience]`, for SNP and TPM claims.
pub fn results() -> Result<Vec<Seed>, SeedError> {
    let rng = SystemRandom::new();
    let signer = signer(&rng)?;
    let v = signer.verifier();
    let cose_key = v.cose_key().map_err(ctx("COSE_Key"))?;
    let jwk = serde_json::to_vec(&v.jwk()).map_err(ctx("JWK"))?;
    let mut out = Vec::new();
    for (name, tee) in [("snp", TeeKind::SevSnp), ("tpm", TeeKind::Tpm)] {
        let token = signer.sign(&claims(tee), &rng).map_err(ctx("signing"))?;
        out.push((
            format!("{name}-cose-key"),
            join(&[&cose_key, &token, b"confidant-client"]),
        ));
        out.push((
            format!("{name}-jwk"),
            join(&[&jwk, &token, b"confidant-client"]),
        ));
    }
    Ok(out)
}

/// A leaf certificate as the verifier's CA issues it (result and evidence extensions), the CA's
/// own certificate, and a real VCEK. The leaf comes out of the real pipeline (simulated SEV-SNP
/// evidence bound to a key release → verified → appraised under a development policy → signed →
/// issued), since the CA issues only for a signed key-release appraisal.
pub fn certificates() -> Result<Vec<Seed>, SeedError> {
    const MEASUREMENT: [u8; 48] = [0xab; 48];
    const MODEL_ID: &str = "smollm2-135m-instruct";
    let rng = SystemRandom::new();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(ctx("the clock"))?
        .as_secs();
    let ca_key = CertificateAuthority::generate_key(&rng).map_err(ctx("CA key"))?;
    let ca = CertificateAuthority::new(&ca_key, "fuzz seed CA", 0, 4_102_444_800, &rng)
        .map_err(ctx("CA"))?;
    let (_, ca_cert) =
        x509_parser::parse_x509_certificate(ca.cert_der()).map_err(ctx("parsing the CA"))?;
    let spki = ca_cert.tbs_certificate.subject_pki.raw.to_vec();

    let pki = confidant_testkit::dev_pki();
    let sim = SimulatedSnp::from_dir(&pki).map_err(ctx("simulated SEV-SNP"))?;
    let digest = Blake3Digest::from_bytes([2; 32]);
    let release = Binding::compute(KeyRelease {
        nonce: [1; 32],
        tls_spki_der: spki,
        wrap_pk: [3; 32],
        model_digest: digest,
    });
    let evidence = Evidence::SevSnp(
        sim.attest(release.as_bytes(), &MEASUREMENT)
            .map_err(ctx("simulated evidence"))?,
    );
    let mut roots = SnpTrustRoots::empty();
    roots
        .add_dev_root(
            &read_file(&pki.join("ark.der"))?,
            &read_file(&pki.join("ask.der"))?,
        )
        .map_err(ctx("development root"))?;
    let anchors = TrustAnchors {
        snp: roots,
        ..TrustAnchors::default()
    };
    let received = ReceivedEvidence::decode(&evidence.to_cbor()).map_err(ctx("decoding"))?;
    let bound = verify_evidence(received, &anchors, UnixTime::from_secs(now))
        .map_err(ctx("verifying"))?
        .bind(release)
        .map_err(ctx("binding"))?;
    let policy = DevSnpPolicy::new("fuzz-seed", 1, MODEL_ID, *digest.as_bytes(), MEASUREMENT);
    let appraisal = Policy::from_toml(&policy.toml())
        .map_err(ctx("policy"))?
        .appraise(bound, MODEL_ID)
        .map_err(ctx("appraisal"))?;
    let signer = signer(&rng)?;
    let result = signer
        .sign_appraisal(
            &appraisal,
            "confidant-verifier",
            "confidant-client",
            now,
            3600,
            &rng,
        )
        .map_err(ctx("signing"))?;
    let names = [
        SubjectName::parse("localhost").map_err(ctx("name"))?,
        SubjectName::parse("127.0.0.1").map_err(ctx("name"))?,
    ];
    let leaf = ca
        .issue(&result, &names, now - 60, now + 3600, &rng)
        .map_err(ctx("issuing a leaf"))?;
    Ok(vec![
        ("leaf".to_owned(), leaf),
        ("ca".to_owned(), ca.cert_der().to_vec()),
        (
            "vcek".to_owned(),
            read_testdata("snp/virtee-milan/vcek.der"),
        ),
    ])
}

fn read_file(path: &std::path::Path) -> Result<Vec<u8>, SeedError> {
    std::fs::read(path).map_err(ctx("reading the development PKI"))
}

/// Small bundles sealed under the fuzzing key (one and several chunks), and a bundle alone.
pub fn sealed_models() -> Result<Vec<Seed>, SeedError> {
    let bundle = encode_bundle(&[
        ("config.json", b"{\"vocab_size\": 8}".as_slice()),
        ("tokenizer.json", b"{}".as_slice()),
        ("model.gguf", b"GGUF\x03\x00\x00\x00".as_slice()),
    ])
    .map_err(ctx("bundle"))?;
    let key = ModelKey::from_bytes(confidant_fuzz::SEALED_MODEL_FUZZ_KEY);
    let mut rng = rand::thread_rng();
    let mut out = vec![("bundle".to_owned(), bundle.clone())];
    for chunk in [64u32, 4096] {
        let sealed =
            seal_with_chunk_size(&bundle, &key, "k", chunk, &mut rng).map_err(ctx("sealing"))?;
        out.push((format!("sealed-chunk-{chunk}"), sealed));
    }
    Ok(out)
}

fn event(i: u8, decision: Decision) -> AuditEvent {
    let accept = decision == Decision::Accept;
    AuditEvent {
        time: 1_767_225_000 + u64::from(i),
        decision,
        reason: (!accept).then(|| "policy_measurement".to_owned()),
        nonce: [i; 32],
        evidence_digest: [1; 32],
        tee: Some(confidant_attestation::audit::Tee::SevSnp),
        measurement: Some(vec![0xab; 48]),
        tcb: Some(0x1700_0000_0000_0003),
        policy_id: Some("policy".into()),
        policy_version: Some(3),
        model_id: Some("smollm2-135m-instruct".into()),
        result_digest: accept.then_some([2; 32]),
        key_id: accept.then(|| "key-1".to_owned()),
        dev: true,
    }
}

/// A chained log of a few entries and its state.
fn audit_log() -> Result<(Vec<u8>, LogState), SeedError> {
    let mut state = LogState::new();
    let mut log = Vec::new();
    for (i, d) in [Decision::Accept, Decision::Refuse, Decision::Accept]
        .into_iter()
        .enumerate()
    {
        let entry = event(i as u8, d).into_entry(state.len(), state.head());
        let record = encode_record(&entry).map_err(ctx("audit record"))?;
        state.push_checked(leaf_hash(record.strip_suffix(b"\n").unwrap_or(&record)));
        log.extend_from_slice(&record);
    }
    Ok((log, state))
}

/// A whole log, its first record, and a log whose final record is torn.
pub fn audit_logs() -> Result<Vec<Seed>, SeedError> {
    let (log, _) = audit_log()?;
    let first = log
        .iter()
        .position(|&b| b == b'\n')
        .map_or(log.clone(), |n| log[..=n].to_vec());
    let torn = log[..log.len() - 10].to_vec();
    Ok(vec![
        ("log".to_owned(), log),
        ("first-record".to_owned(), first),
        ("torn-tail".to_owned(), torn),
    ])
}

/// `[checkpoint, key, log, older checkpoint]` signed with a key made for this run.
pub fn checkpoints() -> Result<Vec<Seed>, SeedError> {
    let rng = SystemRandom::new();
    let pkcs8 = CheckpointSigner::generate_pkcs8(&rng).map_err(ctx("checkpoint key"))?;
    let cp_signer = CheckpointSigner::from_pkcs8(&pkcs8, &rng).map_err(ctx("checkpoint key"))?;
    let (log, state) = audit_log()?;
    let sign = |size: u64| -> Result<Vec<u8>, SeedError> {
        let root = state.tree().root(size).map_err(ctx("tree root"))?;
        cp_signer
            .sign(
                &Checkpoint {
                    size,
                    root,
                    time: 1_767_225_100 + size,
                },
                &rng,
            )
            .map_err(ctx("signing a checkpoint"))
    };
    let latest = sign(state.len())?;
    let older = sign(1)?;
    let key = cp_signer.public_key().to_vec();
    Ok(vec![
        ("checkpoint".to_owned(), join(&[&latest, &key])),
        (
            "checkpoint-log".to_owned(),
            join(&[&latest, &key, &log, &older]),
        ),
    ])
}

/// `POST /v1/attest` requests carrying each evidence, and a reply.
pub fn wire_cbor() -> Result<Vec<Seed>, SeedError> {
    let mut out = Vec::new();
    for (name, evidence) in all_evidence()? {
        let req = AttestRequest {
            nonce: vec![7; 32],
            evidence: evidence.to_cbor(),
            tls_spki: vec![0x30; 91],
            wrap_pk: vec![9; 32],
            model_id: "smollm2-135m-instruct".into(),
            dns_names: vec!["localhost".into()],
            ip_addresses: vec!["127.0.0.1".into()],
            key_id: Some("key-1".into()),
            activation_secret: name.starts_with("tpm").then(|| vec![1; 32]),
        };
        out.push((format!("request-{name}"), req.to_cbor()));
    }
    let certs = certificates()?;
    let reply = AttestResponse {
        result: results()?.first().map(|s| s.1.clone()).unwrap_or_default(),
        certificate: certs[0].1.clone(),
        ca_certificate: certs[1].1.clone(),
        wrapped_key: WrappedKeyWire {
            key_id: "key-1".into(),
            enc: vec![3; 32],
            ciphertext: vec![4; 48],
        },
    };
    out.push(("reply".to_owned(), reply.to_cbor()));
    Ok(out)
}

/// One JSON body per `wire_json` selector (first byte), as each end sends it.
pub fn wire_json() -> Vec<Seed> {
    let bodies: [(&str, &str); 12] = [
        (
            "chat-request",
            r#"{"model":"smollm2-135m-instruct","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"What is the capital of France?","name":"u"}],"max_tokens":16,"temperature":0.7,"top_p":0.9,"seed":1,"stop":["\n"],"stream":true,"stream_options":{"include_usage":true},"n":1,"user":"alice"}"#,
        ),
        (
            "completion-request",
            r#"{"model":"smollm2-135m-instruct","prompt":"Once upon","max_tokens":8,"stop":"\n","stream":false}"#,
        ),
        (
            "session-attestation-request",
            r#"{"nonce":"0000000000000000000000000000000000000000000000000000000000000000"}"#,
        ),
        (
            "credential-request",
            r#"{"nonce":"00","ek_cert":"MIIB","ek_public":"AAE=","ak_public":"AAE="}"#,
        ),
        (
            "challenge-response",
            r#"{"nonce":"ab","expires_at":1767225600}"#,
        ),
        (
            "credential-response",
            r#"{"credential_blob":"AAE=","encrypted_secret":"AAE="}"#,
        ),
        (
            "session-attestation-response",
            r#"{"evidence":"oQ==","model_digest":"00","lockdown":{"no_new_privs":true,"seccomp":"enforced","landlock":"partial","landlock_abi":6,"threads":4,"landlock_threads":4,"fs_writes_denied":true,"fs_reads_confined":true,"exec_denied":true}}"#,
        ),
        (
            "chat-response",
            r#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Paris."},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}"#,
        ),
        (
            "chat-chunk",
            r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"Par"},"finish_reason":null}]}"#,
        ),
        (
            "completion-response",
            r#"{"id":"cmpl-1","object":"text_completion","created":1,"model":"m","choices":[{"index":0,"text":" a time","finish_reason":"length"}],"usage":{"prompt_tokens":2,"completion_tokens":2,"total_tokens":4}}"#,
        ),
        (
            "model-list",
            r#"{"object":"list","data":[{"id":"m","object":"model","created":1,"owned_by":"confidant","digest":"00"}]}"#,
        ),
        (
            "error-body",
            r#"{"error":{"code":"rate_limited","message":"slow down"}}"#,
        ),
    ];
    bodies
        .iter()
        .enumerate()
        .map(|(i, (name, json))| {
            let mut b = vec![i as u8];
            b.extend_from_slice(json.as_bytes());
            ((*name).to_owned(), b)
        })
        .collect()
}

/// The example policy and a development policy.
pub fn policies() -> Result<Vec<Seed>, SeedError> {
    let example =
        std::fs::read(confidant_testkit::workspace_root().join("docs/policy.example.toml"))
            .map_err(ctx("docs/policy.example.toml"))?;
    let dev = confidant_testkit::policy::DevSnpPolicy::new("dev", 1, "m", [1; 32], [2; 48]);
    Ok(vec![
        ("example".to_owned(), example),
        ("dev".to_owned(), dev.toml().into_bytes()),
    ])
}
