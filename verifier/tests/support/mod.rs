//! Test harness: `init` into a temporary directory (with the shared development PKI), start the
//! verifier in-process on 127.0.0.1:0 over real TLS, and talk to it with a real TLS client. The
//! server lives on the test's runtime and stops with it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use confidant_attestation::binding::{Binding, KeyRelease};
use confidant_attestation::digest::Blake3Digest;
use confidant_attestation::evidence::Evidence;
use confidant_attestation::keywrap::WrapKeyPair;
use confidant_attester::snp_sim::SimulatedSnp;
use confidant_testkit::https::{Client, Reply};
use confidant_testkit::policy::{DevSnpPolicy, TcbFloor};
use confidant_verifier::config::Config;
use confidant_verifier::init::{InitOptions, init};
use confidant_verifier::server::Running;
use confidant_verifier::state::Verifier;
use confidant_wire::attest::{AttestRequest, AttestResponse};
use confidant_wire::routes;
use tempfile::TempDir;

pub const MODEL_ID: &str = "test-model";
pub const MODEL_DIGEST: [u8; 32] = [0x5a; 32];
pub const MEASUREMENT: [u8; 48] = [0x11; 48];
pub const KEY_ID: &str = "key-1";
pub const MODEL_KEY: [u8; 32] = [0x42; 32];

pub struct TestServer {
    pub dir: TempDir,
    pub config: Config,
    pub running: Option<Running>,
    pub client: Client,
    tokens: std::collections::HashMap<String, String>,
}

/// Tweaks applied to the generated configuration before start.
pub type Tweak = Box<dyn FnOnce(&mut Config)>;

fn config_path(dir: &Path) -> PathBuf {
    dir.join("verifier.toml")
}

impl TestServer {
    /// `init` (with the development PKI) and start.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = InitOptions::new(dir.path());
        opts.dev_pki = Some(confidant_testkit::dev_pki());
        opts.listen = "127.0.0.1:0".to_owned();
        init(&opts, confidant_verifier::now_unix()).unwrap();
        let mut config = Config::load(&config_path(dir.path())).unwrap();
        tweak(&mut config);
        Self::launch(dir, config).await
    }

    /// Starts again on an existing directory (after a restart, a torn tail, …).
    pub async fn launch(dir: TempDir, config: Config) -> Self {
        let running = confidant_verifier::server::start(config.clone())
            .await
            .unwrap();
        let cert = std::fs::read(dir.path().join("tls-cert.pem")).unwrap();
        let client =
            Client::new(running.handle.local_addr(), &cert).with_admin(running.admin.local_addr());
        let mut tokens = std::collections::HashMap::new();
        for role in ["admin", "auditor", "enclave", "client"] {
            let t = std::fs::read_to_string(dir.path().join(format!("tokens/{role}.jwt"))).unwrap();
            tokens.insert(role.to_owned(), t);
        }
        Self {
            dir,
            config,
            running: Some(running),
            client,
            tokens,
        }
    }

    /// Stops the server and hands back its directory and configuration.
    pub async fn stop(mut self) -> (TempDir, Config) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
        (self.dir, self.config)
    }

    pub fn verifier(&self) -> &Arc<Verifier> {
        &self.running.as_ref().unwrap().verifier
    }

    pub fn token(&self, role: &str) -> &str {
        &self.tokens[role]
    }

    /// A token from the development issuer `init` made, for `audience`, with one role.
    pub fn mint(&self, audience: &str, role: &str) -> String {
        let pkcs8 = std::fs::read(self.path("secrets/jwt-issuer.p8")).unwrap();
        let issuer =
            confidant_service::JwtIssuer::from_pkcs8(&pkcs8, Some("dev-1".to_owned())).unwrap();
        issuer
            .mint(&confidant_service::jwt::TokenClaims::new(
                confidant_verifier::init::DEV_ISSUER,
                audience,
                format!("minted-{role}"),
                &[role],
                confidant_verifier::now_unix(),
                600,
            ))
            .unwrap()
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Replaces the policy through the admin API (asserting success).
    pub async fn put_policy(&self, text: &str) {
        let r = self
            .client
            .put(
                routes::verifier::ADMIN_POLICY,
                Some(self.token("admin")),
                "application/toml",
                text.as_bytes().to_vec(),
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    }

    /// Imports the test model key through the admin API.
    pub async fn import_key(
        &self,
        key_id: &str,
        model_id: &str,
        digest: [u8; 32],
        key: [u8; 32],
    ) -> Reply {
        self.client
            .post_json(
                routes::verifier::ADMIN_KEYS,
                Some(self.token("admin")),
                &serde_json::json!({
                    "key_id": key_id,
                    "key": base64::engine::general_purpose::STANDARD.encode(key),
                    "model_id": model_id,
                    "model_digest": hex::encode(digest),
                }),
            )
            .await
    }

    /// `POST /v1/challenge` as the enclave; returns the nonce.
    pub async fn challenge(&self) -> [u8; 32] {
        let r = self
            .client
            .post_json(
                routes::verifier::CHALLENGE,
                Some(self.token("enclave")),
                &serde_json::json!({}),
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
        let mut n = [0u8; 32];
        hex::decode_to_slice(r.json()["nonce"].as_str().unwrap(), &mut n).unwrap();
        n
    }

    pub async fn attest(&self, req: &AttestRequest) -> Reply {
        let mut body = Vec::new();
        ciborium::into_writer(req, &mut body).unwrap();
        self.client
            .post_cbor(routes::verifier::ATTEST, Some(self.token("enclave")), body)
            .await
    }

    /// The audit log's entries via the auditor API.
    pub async fn audit_entries(&self) -> Vec<serde_json::Value> {
        let r = self
            .client
            .get(
                &format!("{}?from=0", routes::verifier::AUDIT),
                Some(self.token("auditor")),
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
        r.json()["entries"].as_array().unwrap().clone()
    }

    /// The reason code of the newest audit entry.
    pub async fn last_audit_reason(&self) -> Option<String> {
        self.audit_entries()
            .await
            .last()
            .and_then(|e| e["reason"].as_str().map(str::to_owned))
    }
}

pub fn decode_response(r: &Reply) -> AttestResponse {
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    ciborium::from_reader(r.body.as_ref()).unwrap()
}

/// The development SEV-SNP PKI and a simulated attester that ships the chain.
pub fn sim() -> SimulatedSnp {
    let dir = confidant_testkit::dev_pki();
    let ask = std::fs::read(dir.join("ask.der")).unwrap();
    let ark = std::fs::read(dir.join("ark.der")).unwrap();
    SimulatedSnp::from_dir(&dir).unwrap().with_chain(ask, ark)
}

/// An enclave's in-memory identity: TLS key (SPKI) and key-wrapping pair.
pub struct Enclave {
    pub tls_spki: Vec<u8>,
    pub wrap: WrapKeyPair,
}

impl Enclave {
    pub fn new() -> Self {
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        Self {
            tls_spki: rcgen::PublicKeyData::subject_public_key_info(&kp),
            wrap: WrapKeyPair::generate(&mut rand::rngs::OsRng),
        }
    }

    pub fn binding(&self, nonce: &[u8; 32], digest: &[u8; 32]) -> Binding<KeyRelease> {
        Binding::compute(KeyRelease {
            nonce: *nonce,
            tls_spki_der: self.tls_spki.clone(),
            wrap_pk: *self.wrap.public_key(),
            model_digest: Blake3Digest::from_bytes(*digest),
        })
    }

    pub fn request(&self, nonce: [u8; 32], evidence: Evidence, model_id: &str) -> AttestRequest {
        self.request_bytes(nonce, evidence.to_cbor(), model_id)
    }

    /// A request whose evidence is exactly `evidence` (bytes as sent, canonical or not).
    pub fn request_bytes(
        &self,
        nonce: [u8; 32],
        evidence: Vec<u8>,
        model_id: &str,
    ) -> AttestRequest {
        AttestRequest {
            nonce: nonce.to_vec(),
            evidence,
            tls_spki: self.tls_spki.clone(),
            wrap_pk: self.wrap.public_key().to_vec(),
            model_id: model_id.to_owned(),
            dns_names: vec!["localhost".to_owned()],
            ip_addresses: vec!["127.0.0.1".to_owned()],
            key_id: None,
            activation_secret: None,
        }
    }
}

/// The development policy allowing the simulated attester's evidence for [`MODEL_ID`], with
/// the TCB floor at what the simulator reports.
pub fn snp_policy(version: u64) -> DevSnpPolicy {
    let mut p = DevSnpPolicy::new("test", version, MODEL_ID, MODEL_DIGEST, MEASUREMENT);
    p.min_tcb = sim_tcb_floor(&sim());
    p
}

/// A TCB floor at what the simulator reports.
pub fn sim_tcb_floor(sim: &SimulatedSnp) -> TcbFloor {
    let t = sim.reported_tcb();
    TcbFloor::new(t.bootloader, t.tee, t.snp, t.microcode)
}

/// A server with the SNP policy and the test key in place.
pub async fn snp_server() -> TestServer {
    snp_server_with(|_| {}).await
}

pub async fn snp_server_with(tweak: impl FnOnce(&mut Config)) -> TestServer {
    let s = TestServer::start_with(tweak).await;
    s.put_policy(&snp_policy(2).toml()).await;
    let r = s
        .import_key(KEY_ID, MODEL_ID, MODEL_DIGEST, MODEL_KEY)
        .await;
    assert_eq!(r.status, 201, "{:?}", String::from_utf8_lossy(&r.body));
    s
}
