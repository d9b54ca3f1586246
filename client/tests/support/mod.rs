//! Test world for the SDK: a verifier CA, a result signer, the simulated SNP attester on the dev
//! PKI, and an in-test enclave stand-in ([`server::TestServer`]) built from them. Each knob in
//! [`Knobs`] turns one honest ingredient into the corresponding attack.
#![allow(dead_code)]
// Test scaffolding: a failure to build a fixture is a test failure.
#![allow(clippy::unwrap_used)]

pub mod server;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use rcgen::PublicKeyData;
use ring::rand::SystemRandom;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use confidant_attestation::binding::{Binding, BindingInput, Purpose};
use confidant_attestation::evidence::Evidence;
use confidant_attestation::leafcert::{CertificateAuthority, LeafRequest};
use confidant_attestation::result::{ResultClaims, ResultSigner, Status, TeeKind};
use confidant_attestation::snp::SnpTrustRoots;
use confidant_attestation::verify::{TrustAnchors, evidence_digest};
use confidant_attester::snp_sim::SimulatedSnp;
use confidant_client::{Client, ClientBuilder, ClientPolicy, DEFAULT_RESULT_AUDIENCE, Mode};
use confidant_wire::attest::SessionAttestationResponse;

pub use server::TestServer;

pub const MODEL_ID: &str = "test-model";
pub const MODEL_DIGEST: [u8; 32] = [0x4d; 32];
pub const MEASUREMENT: [u8; 48] = [0x6d; 48];

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// How `POST /v1/attestation` answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionMode {
    /// Evidence over the client's nonce and this connection's exporter.
    Honest,
    /// Evidence computed for another TLS session (another exporter): a replay or a relay.
    OtherSession,
    /// Evidence for another nonce.
    OtherNonce,
    /// Evidence from an enclave with another launch measurement.
    OtherMeasurement,
    /// Refuse to attest.
    Unavailable,
}

/// One dial per attack.
#[derive(Debug, Clone)]
pub struct Knobs {
    /// Issue the leaf from a CA the client does not pin.
    pub foreign_ca: bool,
    /// The result names another TLS key than the certificate's.
    pub result_for_other_key: bool,
    /// `exp` of the result, relative to now (negative: expired).
    pub result_ttl: i64,
    pub status: Status,
    pub model_id: String,
    pub measurement: [u8; 48],
    /// Embed evidence other than the one the result names (direct mode).
    pub swap_certificate_evidence: bool,
    pub session: SessionMode,
}

impl Default for Knobs {
    fn default() -> Self {
        Knobs {
            foreign_ca: false,
            result_for_other_key: false,
            result_ttl: 600,
            status: Status::Affirming,
            model_id: MODEL_ID.to_string(),
            measurement: MEASUREMENT,
            swap_certificate_evidence: false,
            session: SessionMode::Honest,
        }
    }
}

/// The pinned material a client uses, and the means to build servers.
pub struct World {
    pub ca: CertificateAuthority,
    pub signer: ResultSigner,
    pub snp: Arc<SimulatedSnp>,
    pub dev_anchors: TrustAnchors,
}

fn ca(name: &str) -> CertificateAuthority {
    let rng = SystemRandom::new();
    let key = CertificateAuthority::generate_key(&rng).unwrap();
    let t = now();
    CertificateAuthority::new(&key, name, t - 3600, t + 86_400, &rng).unwrap()
}

impl World {
    pub fn new() -> Self {
        let dir = confidant_testkit::dev_pki();
        let snp = SimulatedSnp::from_dir(&dir).unwrap();
        let mut roots = SnpTrustRoots::empty();
        roots
            .add_dev_root(
                &std::fs::read(dir.join("ark.der")).unwrap(),
                &std::fs::read(dir.join("ask.der")).unwrap(),
            )
            .unwrap();
        World {
            ca: ca("Confidant test verifier CA"),
            signer: ResultSigner::from_pkcs8(
                &ResultSigner::generate_pkcs8(&SystemRandom::new()).unwrap(),
                &SystemRandom::new(),
            )
            .unwrap(),
            snp: Arc::new(snp),
            dev_anchors: TrustAnchors {
                snp: roots,
                ..TrustAnchors::default()
            },
        }
    }

    /// The policy that accepts the honest server (dev evidence allowed: the simulator is dev).
    pub fn policy(&self) -> ClientPolicy {
        ClientPolicy::new()
            .allow_model(MODEL_ID, MODEL_DIGEST)
            .allow_measurement(MEASUREMENT.to_vec())
            .allow_dev(true)
    }

    /// A builder pinning this world's CA and key, with its dev anchors and default policy.
    pub fn builder(&self, server: &TestServer) -> ClientBuilder {
        Client::builder(server.url())
            .verifier_ca(self.ca.cert_pem().as_bytes())
            .result_key(self.signer.verifier().clone())
            .trust_anchors(self.dev_anchors.clone())
            .policy(self.policy())
    }

    pub fn client(&self, server: &TestServer, mode: Mode, fresh: bool) -> Client {
        self.builder(server)
            .mode(mode)
            .fresh(fresh)
            .build()
            .unwrap()
    }

    fn evidence(&self, binding: &Binding, measurement: &[u8; 48]) -> Evidence {
        Evidence::SevSnp(self.snp.attest(binding.as_bytes(), measurement).unwrap())
    }

    /// Starts an enclave stand-in shaped by `knobs`.
    pub async fn server(&self, knobs: Knobs) -> TestServer {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let spki = key.subject_public_key_info();
        let spki_sha256 = sha256(&spki);

        // Key-release evidence, as the enclave would have sent the verifier.
        let release = Binding::compute(&BindingInput {
            purpose: Purpose::KeyRelease,
            nonce: &[1; 32],
            tls_spki_der: &spki,
            channel: &[2; 32],
            model_digest: &MODEL_DIGEST,
        });
        let evidence = self.evidence(&release, &knobs.measurement);
        let t = now();
        let claims = ResultClaims {
            iss: "confidant-test-verifier".into(),
            aud: DEFAULT_RESULT_AUDIENCE.into(),
            iat: t.saturating_add_signed(knobs.result_ttl.min(0) - 60),
            exp: t.saturating_add_signed(knobs.result_ttl),
            status: knobs.status,
            tee: TeeKind::SevSnp,
            measurement: knobs.measurement.to_vec(),
            tcb: Some(self.snp.reported_tcb()),
            policy_id: "test-policy".into(),
            policy_version: 1,
            model_id: knobs.model_id.clone(),
            model_digest: MODEL_DIGEST,
            tls_spki_sha256: if knobs.result_for_other_key {
                sha256(b"another key")
            } else {
                spki_sha256
            },
            evidence_digest: evidence_digest(&evidence),
            dev: true,
            nonce: None,
            tpm_ak_spki_sha256: None,
        };
        let result = self.signer.sign(&claims, &SystemRandom::new()).unwrap();
        let embedded = if knobs.swap_certificate_evidence {
            self.evidence(&release, &knobs.measurement)
        } else {
            evidence
        };
        let foreign;
        let issuer = if knobs.foreign_ca {
            foreign = ca("Impostor CA");
            &foreign
        } else {
            &self.ca
        };
        let leaf = issuer
            .issue_leaf(
                &LeafRequest {
                    spki_der: &spki,
                    dns_names: &["localhost".to_string()],
                    ip_addresses: &["127.0.0.1".parse().unwrap()],
                    not_before: t - 60,
                    not_after: t + 3600,
                    result: &result,
                    evidence: &embedded.to_cbor(),
                },
                &SystemRandom::new(),
            )
            .unwrap();

        let snp = Arc::clone(&self.snp);
        let mode = knobs.session;
        let session_measurement = if mode == SessionMode::OtherMeasurement {
            [0x99; 48]
        } else {
            knobs.measurement
        };
        let session_spki = spki.clone();
        let session: server::SessionFn = Arc::new(move |nonce, exporter| {
            let other_nonce = [0xAA; 32];
            let other_exporter = [0xBB; 32];
            let (nonce, exporter) = match mode {
                SessionMode::Unavailable => return None,
                SessionMode::OtherSession => (nonce, &other_exporter),
                SessionMode::OtherNonce => (&other_nonce, exporter),
                SessionMode::Honest | SessionMode::OtherMeasurement => (nonce, exporter),
            };
            let binding = Binding::compute(&BindingInput {
                purpose: Purpose::Session,
                nonce,
                tls_spki_der: &session_spki,
                channel: exporter,
                model_digest: &MODEL_DIGEST,
            });
            let ev = Evidence::SevSnp(snp.attest(binding.as_bytes(), &session_measurement).ok()?);
            Some(SessionAttestationResponse {
                evidence: base64::engine::general_purpose::STANDARD.encode(ev.to_cbor()),
                model_digest: hex::encode(MODEL_DIGEST),
                lockdown: None,
            })
        });
        TestServer::start(server::ServerSpec {
            chain: vec![
                CertificateDer::from(leaf),
                CertificateDer::from(issuer.cert_der().to_vec()),
            ],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            session,
        })
        .await
    }
}

pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}
