//! Test harness: the real SmolLM2 bundle sealed once per test process, a live verifier
//! in-process on 127.0.0.1:0 (real TLS, real policy, real key store), an enclave configured
//! against it with the simulated SEV-SNP attester, and a TLS client that trusts only the
//! verifier's CA (so every request also checks the certificate the enclave was issued).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use confidant_attestation::modelkey::ModelKey;
use confidant_attester::snp_sim::SimulatedSnp;
use confidant_enclave::config::Config;
use confidant_enclave::supervisor::{Enclave, Phase};
use confidant_sealed::{SealedHeader, encode_bundle, seal};
use confidant_service::jwt::{JwtIssuer, TokenClaims};
use confidant_testkit::policy::{DevSnpPolicy, TcbFloor};
use confidant_verifier::init::{DEV_ISSUER, InitOptions, init};
use confidant_verifier::server::Running;
use tempfile::TempDir;

pub const MODEL_ID: &str = "smollm2-test";
pub const KEY_ID: &str = "smollm2-key-1";
pub const AUDIENCE: &str = "confidant-enclave";

/// The sealed bundle shared by every test of this process.
pub struct SealedModel {
    pub path: PathBuf,
    pub key: [u8; 32],
    pub digest: confidant_attestation::digest::Blake3Digest,
}

pub fn sealed_model() -> &'static SealedModel {
    static SEALED: OnceLock<SealedModel> = OnceLock::new();
    SEALED.get_or_init(|| {
        let dir = confidant_testkit::model::model_bundle();
        let read = |n: &str| std::fs::read(dir.join(n)).unwrap();
        let (w, t, c) = (
            read("model.gguf"),
            read("tokenizer.json"),
            read("config.json"),
        );
        let plaintext = encode_bundle(&[
            ("model.gguf", &w[..]),
            ("tokenizer.json", &t[..]),
            ("config.json", &c[..]),
        ])
        .unwrap();
        drop((w, t, c));
        let mut key = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut key);
        let sealed = seal(
            &plaintext,
            &ModelKey::from_bytes(key),
            KEY_ID,
            &mut rand::rngs::OsRng,
        )
        .unwrap();
        drop(plaintext);
        let digest = SealedHeader::parse(&sealed).unwrap().model_digest;
        // Kept for the whole process (a static's TempDir would never be removed).
        let path = confidant_testkit::scratch::dir("sealed-model").join("model.sealed");
        std::fs::write(&path, &sealed).unwrap();
        SealedModel { path, key, digest }
    })
}

/// A copy of the sealed model with one body byte flipped.
pub fn tampered_copy(dir: &Path) -> PathBuf {
    let model = sealed_model();
    let mut bytes = std::fs::read(&model.path).unwrap();
    let header_len = SealedHeader::parse(&bytes).unwrap().encoded_len();
    let i = header_len + (bytes.len() - header_len) / 2;
    bytes[i] ^= 0x01;
    let path = dir.join("tampered.sealed");
    std::fs::write(&path, bytes).unwrap();
    path
}

/// The launch measurement the simulated attester reports for this (test) executable.
pub fn this_measurement() -> [u8; 48] {
    confidant_enclave::tee::executable_measurement().unwrap()
}

/// A live verifier.
pub struct TestVerifier {
    pub dir: TempDir,
    pub running: Option<Running>,
    pub addr: SocketAddr,
    policy_version: std::sync::atomic::AtomicU64,
}

impl TestVerifier {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut confidant_verifier::config::Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = InitOptions::new(dir.path());
        opts.dev_pki = Some(confidant_testkit::dev_pki());
        opts.listen = "127.0.0.1:0".to_owned();
        init(&opts, confidant_verifier::now_unix()).unwrap();
        let mut config =
            confidant_verifier::config::Config::load(&dir.path().join("verifier.toml")).unwrap();
        tweak(&mut config);
        let running = confidant_verifier::server::start(config).await.unwrap();
        let addr = running.handle.local_addr();
        Self {
            dir,
            running: Some(running),
            addr,
            policy_version: std::sync::atomic::AtomicU64::new(1),
        }
    }

    pub fn verifier(&self) -> &Arc<confidant_verifier::state::Verifier> {
        &self.running.as_ref().unwrap().verifier
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Installs a policy allowing `measurement` to run the test model.
    pub fn allow(&self, measurement: &[u8; 48]) {
        let v = self
            .policy_version
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1;
        let sim = SimulatedSnp::from_dir(&confidant_testkit::dev_pki()).unwrap();
        let t = sim.reported_tcb();
        let mut policy = DevSnpPolicy::new(
            "enclave-test",
            v,
            MODEL_ID,
            *sealed_model().digest.as_bytes(),
            *measurement,
        );
        policy.min_tcb = TcbFloor::new(t.bootloader, t.tee, t.snp, t.microcode);
        self.verifier()
            .replace_policy("test-admin", &policy.toml())
            .unwrap();
    }

    /// Installs a policy allowing TPM evidence for the test model: quotes signed by the AK whose
    /// SPKI hashes to `ak_spki_sha256`, with the SHA-256 PCR values `pcrs`.
    pub fn allow_tpm(
        &self,
        ak_spki_sha256: &[u8; 32],
        pcrs: &std::collections::BTreeMap<u8, [u8; 32]>,
    ) {
        let v = self
            .policy_version
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1;
        let set: Vec<String> = pcrs
            .iter()
            .map(|(i, value)| format!("{{ pcr = {i}, sha256 = \"{}\" }}", hex::encode(value)))
            .collect();
        let policy = format!(
            r#"id = "enclave-tpm-test"
version = {v}
[trust]
tpm_aks_spki_sha256 = ["{ak}"]
[models."{MODEL_ID}"]
digest = "{digest}"
tpm_pcrs = [[{set}]]
tls_names = ["localhost", "127.0.0.1"]
"#,
            ak = hex::encode(ak_spki_sha256),
            digest = sealed_model().digest.to_hex(),
            set = set.join(", "),
        );
        self.verifier()
            .replace_policy("test-admin", &policy)
            .unwrap();
    }

    /// Audit entries (JSON objects), oldest first.
    pub fn audit_log(&self) -> Vec<serde_json::Value> {
        let v = self.verifier().audit_entries(0, 1000).unwrap();
        v.entries
            .iter()
            .map(|e| serde_json::to_value(e).unwrap())
            .collect()
    }

    /// Imports the test model key.
    pub fn import_key(&self) {
        self.verifier()
            .import_key(
                "test-admin",
                KEY_ID,
                MODEL_ID,
                sealed_model().digest,
                ModelKey::from_bytes(sealed_model().key),
            )
            .unwrap();
    }

    /// Reason codes of the audit log, oldest first (`None` for accepted).
    pub fn audit_reasons(&self) -> Vec<Option<String>> {
        let v = self.verifier().audit_entries(0, 1000).unwrap();
        v.entries.into_iter().map(|e| e.reason).collect()
    }

    pub async fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
    }

    /// An ES256 token from the development issuer for the enclave's audience.
    pub fn client_token(&self, sub: &str, roles: &[&str]) -> String {
        self.token_for(AUDIENCE, sub, roles)
    }

    pub fn token_for(&self, aud: &str, sub: &str, roles: &[&str]) -> String {
        let pk8 = std::fs::read(self.path("secrets/jwt-issuer.p8")).unwrap();
        let issuer = JwtIssuer::from_pkcs8(&pk8, Some("dev-1".to_owned())).unwrap();
        let now = confidant_verifier::now_unix();
        issuer
            .mint(&TokenClaims::new(DEV_ISSUER, aud, sub, roles, now, 3600))
            .unwrap()
    }

    /// The CA that issues enclave certificates (what clients trust).
    pub fn ca_pem(&self) -> Vec<u8> {
        std::fs::read(self.path("ca.pem")).unwrap()
    }
}

/// Enclave configuration against `v` (TOML, so the parser is exercised); `extra` is appended
/// verbatim (tables such as `[limits]`).
pub fn enclave_config(v: &TestVerifier, sealed: &Path, verifier_url: &str, extra: &str) -> Config {
    let dir = v.dir.path();
    let text = format!(
        r#"model_id = "{MODEL_ID}"
sealed_model = "{sealed}"

[verifier]
url = "{verifier_url}"
tls_ca = "tls-cert.pem"
token = {{ file = "tokens/enclave.jwt" }}
timeout_secs = 5

[tee]
kind = "sim"
dev_pki = "{pki}"

[server]
listen = "127.0.0.1:0"
dns_names = ["localhost"]
ip_addresses = ["127.0.0.1"]

[auth]
issuer = "{DEV_ISSUER}"
audience = "{AUDIENCE}"
verification_keys = {{ file = "secrets/jwt-verify.jwk" }}

{extra}
"#,
        sealed = sealed.display(),
        pki = confidant_testkit::dev_pki().display(),
    );
    let text = if extra.contains("[boot]") {
        text
    } else {
        format!("{text}\n[boot]\nretry_initial_ms = 100\nretry_max_ms = 400\n")
    };
    Config::from_toml(&text, dir).unwrap()
}

pub fn verifier_url(v: &TestVerifier) -> String {
    format!("https://127.0.0.1:{}", v.addr.port())
}

/// Polls until `f` holds (panics after `timeout`).
pub async fn eventually(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn wait_serving(e: &Enclave) -> SocketAddr {
    let deadline = Instant::now() + Duration::from_secs(180);
    while e.phase() != Phase::Serving {
        assert!(
            !matches!(e.phase(), Phase::Failed | Phase::Stopped),
            "enclave ended: {:?}",
            e.phase()
        );
        assert!(
            Instant::now() < deadline,
            "timed out waiting for the enclave to serve (phase {:?}, last failure {:?})",
            e.phase(),
            e.last_failure()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    e.local_addr().unwrap()
}

/// The `data:` payloads of an SSE body.
pub fn sse_events(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            e.strip_prefix("data: ")
                .unwrap_or_else(|| panic!("not an SSE data event: {e:?}"))
                .to_owned()
        })
        .collect()
}

/// Now, for verification (certificate validity periods are checked at the time passed in).
pub fn now() -> confidant_attestation::time::UnixTime {
    confidant_attestation::time::UnixTime::from_secs(confidant_testkit::now_secs())
}
