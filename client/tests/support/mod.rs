//! Test world for the SDK: a verifier CA, a result signer, the simulated SNP attester on the dev
//! PKI, and an in-test enclave stand-in ([`server::TestServer`]) built from them. Each knob in
//! [`Knobs`] turns one honest ingredient into the corresponding attack.
#![allow(dead_code)]
// Test scaffolding: a failure to build a fixture is a test failure.
#![allow(clippy::unwrap_used)]

pub mod forge;
pub mod server;

use std::sync::Arc;

use base64::Engine;
use rcgen::PublicKeyData;
use ring::rand::SystemRandom;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use zeroize::Zeroizing;

use confidant_attestation::binding::{Binding, KeyRelease, Session};
use confidant_attestation::digest::Blake3Digest;
use confidant_attestation::evidence::{Evidence, ReceivedEvidence};
use confidant_attestation::leafcert::CertificateAuthority;
use confidant_attestation::names::SubjectName;
use confidant_attestation::policy::Policy;
use confidant_attestation::result::{ResultSigner, Status};
use confidant_attestation::snp::SnpTrustRoots;
use confidant_attestation::time::UnixTime;
use confidant_attestation::verify::{TrustAnchors, verify_evidence};
use confidant_attester::snp_sim::SimulatedSnp;
use confidant_client::{Client, ClientBuilder, DEFAULT_RESULT_AUDIENCE, Mode};
use confidant_testkit::policy::DevSnpPolicy;
use confidant_wire::attest::SessionAttestationResponse;

pub use server::TestServer;

pub const MODEL_ID: &str = "test-model";
pub const MODEL_DIGEST: Blake3Digest = Blake3Digest::from_bytes([0x4d; 32]);
pub const MEASUREMENT: [u8; 48] = [0x6d; 48];

pub fn now() -> u64 {
    confidant_testkit::now_secs()
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
    /// A status other than `Affirming` makes the verifier lie (its policy engine only affirms).
    pub status: Status,
    /// The model the verifier appraised the enclave for (its own policy allows it).
    pub model_id: String,
    /// The enclave's launch measurement (the verifier's own policy allows it).
    pub measurement: [u8; 48],
    /// The result says the report had `MASK_CHIP_KEY` set (a verifier whose policy allowed it).
    pub result_chip_key_masked: bool,
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
            result_chip_key_masked: false,
            session: SessionMode::Honest,
        }
    }
}

/// The pinned material a client uses, and the means to build servers.
pub struct World {
    pub ca: CertificateAuthority,
    /// The CA's key, for certificates only a lying verifier would issue ([`forge`]).
    ca_key: Zeroizing<Vec<u8>>,
    pub signer: ResultSigner,
    pub snp: Arc<SimulatedSnp>,
    pub dev_anchors: TrustAnchors,
}

fn ca(name: &str) -> (CertificateAuthority, Zeroizing<Vec<u8>>) {
    let rng = SystemRandom::new();
    let key = CertificateAuthority::generate_key(&rng).unwrap();
    let t = now();
    let ca = CertificateAuthority::new(&key, name, t - 3600, t + 86_400, &rng).unwrap();
    (ca, key)
}

/// The development policy for the test model on `measurements` (dev evidence allowed: the
/// simulator is dev), changed by `edit`.
pub fn dev_policy(measurements: &[[u8; 48]], edit: impl FnOnce(&mut DevSnpPolicy)) -> Policy {
    Policy::from_toml(&dev_policy_toml(measurements, edit)).unwrap()
}

/// The TOML of [`dev_policy`].
pub fn dev_policy_toml(measurements: &[[u8; 48]], edit: impl FnOnce(&mut DevSnpPolicy)) -> String {
    let mut p = DevSnpPolicy::new(
        "test-policy",
        1,
        MODEL_ID,
        *MODEL_DIGEST.as_bytes(),
        measurements[0],
    );
    p.measurements = measurements.to_vec();
    edit(&mut p);
    p.toml()
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
        let (ca, ca_key) = ca("Confidant test verifier CA");
        World {
            ca,
            ca_key,
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

    /// The client policy that accepts the honest server: the development policy for the test
    /// model on [`MEASUREMENT`].
    pub fn policy(&self) -> Policy {
        self.policy_with(|_| {})
    }

    /// The TOML of [`World::policy`].
    pub fn policy_toml(&self) -> String {
        dev_policy_toml(&[MEASUREMENT], |_| {})
    }

    /// The client policy, changed by `edit`.
    pub fn policy_with(&self, edit: impl FnOnce(&mut DevSnpPolicy)) -> Policy {
        dev_policy(&[MEASUREMENT], edit)
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

    /// Starts an enclave stand-in shaped by `knobs`. Its certificate comes from the real
    /// pipeline — simulated key-release evidence, verified, bound, appraised by the verifier's
    /// policy (which allows the knobs' model and measurement), signed and issued — unless a knob
    /// asks for something the pipeline cannot produce (a non-affirming status, a result naming
    /// another key, a foreign CA): then a lying CA forges it ([`forge`]).
    pub async fn server(&self, knobs: Knobs) -> TestServer {
        let rng = SystemRandom::new();
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let spki = key.subject_public_key_info();

        // Key-release evidence, as the enclave would have sent the verifier, and its appraisal.
        let release = Binding::compute(KeyRelease {
            nonce: [1; 32],
            tls_spki_der: spki.clone(),
            wrap_pk: [2; 32],
            model_digest: MODEL_DIGEST,
        });
        let evidence = Evidence::SevSnp(
            self.snp
                .attest(release.as_bytes(), &knobs.measurement)
                .unwrap(),
        );
        let t = now();
        let received = ReceivedEvidence::decode(&evidence.to_cbor()).unwrap();
        let verified =
            verify_evidence(received, &self.dev_anchors, UnixTime::from_secs(t)).unwrap();
        let bound = verified.bind(release).unwrap();
        let mut verifier_policy = DevSnpPolicy::new(
            "test-policy",
            1,
            &knobs.model_id,
            *MODEL_DIGEST.as_bytes(),
            knobs.measurement,
        );
        verifier_policy.tls_names = vec!["localhost".into(), "127.0.0.1".into()];
        let appraisal = Policy::from_toml(&verifier_policy.toml())
            .unwrap()
            .appraise(bound, &knobs.model_id)
            .unwrap();
        let iat = t.saturating_add_signed(knobs.result_ttl.min(0) - 60);
        let exp = t.saturating_add_signed(knobs.result_ttl);
        let signed = self
            .signer
            .sign_appraisal(
                &appraisal,
                "confidant-test-verifier",
                DEFAULT_RESULT_AUDIENCE,
                iat,
                exp - iat,
                &rng,
            )
            .unwrap();
        let names = [
            SubjectName::Dns("localhost".into()),
            SubjectName::Ip("127.0.0.1".parse().unwrap()),
        ];
        // An expired result comes in a certificate that is still valid (issuance would end the
        // certificate with the result), so the client's own expiry check is what refuses it.
        let lies = knobs.foreign_ca
            || knobs.result_for_other_key
            || knobs.status != Status::Affirming
            || knobs.result_chip_key_masked
            || knobs.result_ttl < 0;
        let (leaf, issuer_der) = if lies {
            let mut claims = signed.claims().clone();
            claims.status = knobs.status;
            claims.mask_chip_key = knobs.result_chip_key_masked;
            if knobs.result_for_other_key {
                claims.tls_spki_sha256 = sha256(b"another key");
            }
            let result = self.signer.sign(&claims, &rng).unwrap();
            let foreign;
            let (ca, ca_key) = if knobs.foreign_ca {
                foreign = ca("Impostor CA");
                (&foreign.0, &foreign.1)
            } else {
                (&self.ca, &self.ca_key)
            };
            let leaf = forge::leaf(
                ca.cert_der(),
                ca_key,
                &spki,
                t - 60,
                t + 3600,
                &result,
                appraisal.evidence_bytes(),
            );
            (leaf, ca.cert_der().to_vec())
        } else {
            let leaf = self.ca.issue(&signed, &names, iat, exp, &rng).unwrap();
            (leaf, self.ca.cert_der().to_vec())
        };

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
            let binding = Binding::compute(Session {
                nonce: *nonce,
                tls_spki_der: session_spki.clone(),
                exporter: *exporter,
                model_digest: MODEL_DIGEST,
            });
            let ev = Evidence::SevSnp(snp.attest(binding.as_bytes(), &session_measurement).ok()?);
            Some(SessionAttestationResponse {
                evidence: base64::engine::general_purpose::STANDARD.encode(ev.to_cbor()),
                model_digest: MODEL_DIGEST,
                lockdown: None,
            })
        });
        TestServer::start(server::ServerSpec {
            chain: vec![CertificateDer::from(leaf), CertificateDer::from(issuer_der)],
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
