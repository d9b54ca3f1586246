//! End-to-end harness: the REAL binaries (`confidant-verifier`, `confidant-enclave`, `confidant`)
//! started on loopback ports they pick, wired together the way an operator would.
//!
//! - [`bins`] locates the binaries next to the test executable and builds them once per test
//!   process (`cargo build --bins`; a no-op when `cargo test --workspace` already built them).
//! - [`sealed_model`] seals the real SmolLM2 bundle once per process with `confidant model seal`.
//! - [`Stack`] inits a verifier in a temporary directory with a policy (`init --model`) that
//!   allows exactly this enclave build (its simulated measurement) and the sealed model, starts
//!   the verifier, registers the model key with `confidant model register`, starts the enclave
//!   (sim TEE) and waits until it serves. Every child is killed when its [`Service`] is dropped.
//! - [`https`] is a plain rustls + hyper client (only the verifier CA as root, no Confidant code).
//! - [`impostor`] plays attackers: TLS servers with foreign or stolen certificates, and a second
//!   enclave certified by the real verifier.
#![forbid(unsafe_code)]
// Test harness: a fixture that cannot be built is a failed test, so unwrap/expect are the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod configs;
pub mod driver;
pub mod https;
pub mod impostor;
pub mod verifier;
pub mod vm;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use confidant_attestation::snp::SnpTrustRoots;
use confidant_attestation::verify::TrustAnchors;
use confidant_client::{BearerToken, Client, Mode, Policy, ResultVerifier};
use confidant_testkit::policy::DevSnpPolicy;
use confidant_wire::routes;
use configs::{enclave_toml, policy_toml};
use tempfile::TempDir;

/// Model id the stacks serve.
pub const MODEL_ID: &str = "smollm2-135m-instruct";
/// Key id the model is sealed under.
pub const KEY_ID: &str = "smollm2-e2e-key";
/// Audience the verifier writes into results and the SDK expects (its default).
pub const RESULT_AUDIENCE: &str = "confidant-client";
/// The golden prompt.
pub const CAPITAL_PROMPT: &str = "What is the capital of France?";

/// Paths of the three binaries.
#[derive(Debug, Clone)]
pub struct Bins {
    pub verifier: PathBuf,
    pub enclave: PathBuf,
    pub cli: PathBuf,
}

/// The binaries of the profile this test runs in, built once per process.
///
/// `cargo test -p confidant-e2e` alone does not build other packages' binaries, so the harness
/// runs `cargo build --bins` for the three packages (cargo has released its build lock by the
/// time tests run; when they are fresh this takes about a second). Set
/// `CONFIDANT_E2E_NO_BUILD=1` to use whatever is there, or `CONFIDANT_BIN_DIR=DIR` to use the
/// binaries in `DIR` without building (the benchmark does this with its release build).
pub fn bins() -> &'static Bins {
    static BINS: OnceLock<Bins> = OnceLock::new();
    BINS.get_or_init(|| {
        if let Some(dir) = std::env::var_os("CONFIDANT_BIN_DIR") {
            return Bins::in_dir(Path::new(&dir));
        }
        let exe = std::env::current_exe().expect("test executable path");
        // <target>/<profile>/deps/<test>-<hash>
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("profile directory")
            .to_path_buf();
        let target_dir = profile_dir
            .parent()
            .expect("target directory")
            .to_path_buf();
        let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") | None => "dev".to_owned(),
            Some(other) => other.to_owned(),
        };
        if std::env::var_os("CONFIDANT_E2E_NO_BUILD").is_none() {
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let status = Command::new(cargo)
                .current_dir(confidant_testkit::workspace_root())
                .args([
                    "build",
                    "--locked",
                    "--quiet",
                    "--bins",
                    "--profile",
                    &profile,
                ])
                .arg("--target-dir")
                .arg(&target_dir)
                .args(["-p", "confidant-verifier", "-p", "confidant-enclave"])
                .args(["-p", "confidant-client"])
                .status()
                .expect("running cargo build");
            assert!(status.success(), "cargo build of the binaries failed");
        }
        Bins::in_dir(&profile_dir)
    })
}

impl Bins {
    /// The three binaries in `dir`; panics (a failed fixture) if one is missing.
    pub fn in_dir(dir: &Path) -> Self {
        let bins = Bins {
            verifier: dir.join("confidant-verifier"),
            enclave: dir.join("confidant-enclave"),
            cli: dir.join("confidant"),
        };
        for b in [&bins.verifier, &bins.enclave, &bins.cli] {
            assert!(b.is_file(), "missing binary {}", b.display());
        }
        bins
    }
}

/// The sealed model shared by every stack of this process.
#[derive(Debug)]
pub struct SealedModel {
    pub path: PathBuf,
    pub key_path: PathBuf,
    pub digest: [u8; 32],
}

/// Seals the real bundle once per process (`confidant model seal`).
pub fn sealed_model() -> &'static SealedModel {
    static MODEL: OnceLock<SealedModel> = OnceLock::new();
    MODEL.get_or_init(|| {
        let bins = bins();
        let bundle = confidant_testkit::model::model_bundle_prepared_by(&bins.cli);
        // Kept for the whole process: in the process's scratch directory, not a TempDir that a
        // static would never remove.
        let dir = confidant_testkit::scratch::dir("sealed-model");
        let path = dir.join("model.sealed");
        let key_path = dir.join("model.key");
        let out = Command::new(&bins.cli)
            .args(["model", "seal", "--key-id", KEY_ID, "--in"])
            .arg(&bundle)
            .arg("--out")
            .arg(&path)
            .arg("--key-out")
            .arg(&key_path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "confidant model seal failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let digest = hex_array(json["model_digest"].as_str().unwrap());
        SealedModel {
            path,
            key_path,
            digest,
        }
    })
}

/// The policy a [`Stack`] installs: the development SNP root, [`MODEL_ID`] with `digest`, the
/// enclave build `measurement`.
pub fn dev_policy_toml(digest: &[u8; 32], measurement: &[u8; 48]) -> String {
    policy_toml(digest, measurement, &StackOptions::default())
}

/// AMD roots plus the development root of the simulated TEE.
pub fn dev_trust_anchors() -> TrustAnchors {
    let pki = confidant_testkit::dev_pki();
    let mut snp = SnpTrustRoots::amd();
    snp.add_dev_root(
        &std::fs::read(pki.join("ark.der")).unwrap(),
        &std::fs::read(pki.join("ask.der")).unwrap(),
    )
    .unwrap();
    TrustAnchors {
        snp,
        ..TrustAnchors::default()
    }
}

/// Runs `cmd`, panicking with its output unless it succeeds; its standard output.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Decodes fixed-length hex (tests only).
pub fn hex_array<const N: usize>(s: &str) -> [u8; N] {
    hex::decode(s).unwrap().try_into().unwrap()
}

/// The launch measurement the simulated TEE reports for an enclave executable, computed by the
/// reference-value tool (`confidant measure sim`).
pub fn sim_measurement(enclave: &Path) -> [u8; 48] {
    let out = Command::new(&bins().cli)
        .args(["measure", "sim", "--binary"])
        .arg(enclave)
        .output()
        .unwrap();
    assert!(out.status.success(), "confidant measure sim failed");
    hex_array(String::from_utf8(out.stdout).unwrap().trim())
}

/// A child process whose stdout and stderr lines are collected; killed when dropped.
#[derive(Debug)]
pub struct Service {
    name: &'static str,
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Service {
    /// Spawns `cmd` with piped output.
    pub fn spawn(name: &'static str, mut cmd: Command) -> Service {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {name}: {e}"));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let out = child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>);
        let err = child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>);
        for pipe in [out, err].into_iter().flatten() {
            let lines = Arc::clone(&lines);
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    lines.lock().unwrap().push(line);
                }
            });
        }
        Service { name, child, lines }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Output lines so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// The last lines of output, for failure messages (services never log prompts, keys or
    /// tokens).
    pub fn tail(&self) -> String {
        let lines = self.lines();
        let start = lines.len().saturating_sub(15);
        lines[start..].join("\n")
    }

    /// Waits until some output line yields a value, panicking (with the output's tail) on
    /// timeout or if the process exits first.
    pub fn wait_for<T>(&mut self, timeout: Duration, f: impl Fn(&str) -> Option<T>) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = self.lines.lock().unwrap().iter().find_map(|l| f(l)) {
                return v;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                panic!("{} exited ({status}):\n{}", self.name, self.tail());
            }
            assert!(
                Instant::now() < deadline,
                "{} not ready after {timeout:?}:\n{}",
                self.name,
                self.tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the JSON log line with `message` and returns its `addr` field.
    pub fn wait_for_logged_addr(&mut self, message: &str, timeout: Duration) -> SocketAddr {
        self.wait_for(timeout, |line| {
            let v: serde_json::Value = serde_json::from_str(line).ok()?;
            (v["fields"]["message"] == message)
                .then(|| v["fields"]["addr"].as_str()?.parse().ok())?
        })
    }

    /// Stops the process (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Knobs of a [`Stack`].
#[derive(Debug, Clone, Default)]
pub struct StackOptions {
    /// Lifetime of attestation results and enclave certificates (default: the verifier's 3600 s).
    pub result_validity_secs: Option<u64>,
    /// Further SEV-SNP measurements the verifier's policy allows for the model (second enclaves).
    pub extra_measurements: Vec<[u8; 48]>,
    /// Lifts the enclave's per-principal request and token budgets (`[rate_limit]`) far above
    /// what a benchmark reaches, so that it measures the server rather than its limiter.
    pub unlimited_rate: bool,
    /// Where the verifier keeps its audit log (default: `audit.log` in its state directory).
    pub audit_log: Option<PathBuf>,
    /// The verifier's per-principal rate (requests per second, and as many in a burst).
    pub verifier_rate_limit: Option<f64>,
    /// Prepended to the verifier's command line (e.g. `unshare …`).
    pub verifier_launcher: Vec<std::ffi::OsString>,
    /// Prepended to the enclave's command line (e.g. `faketime …`).
    pub enclave_launcher: Vec<std::ffi::OsString>,
    /// Appended to the enclave's configuration (tables it does not write otherwise).
    pub enclave_toml: String,
}

/// A verifier and an enclave (simulated SEV-SNP) from the real binaries, on loopback.
#[derive(Debug)]
pub struct Stack {
    // Dropped in declaration order: enclave first, then the verifier, then the files.
    pub enclave: Service,
    pub verifier: verifier::VerifierNode,
    pub enclave_addr: SocketAddr,
    pub verifier_addr: SocketAddr,
    /// The enclave build's launch measurement.
    pub measurement: [u8; 48],
    pub model_digest: [u8; 32],
    /// The verifier's result-signing key as a JWK (`GET /v1/keys`).
    pub result_key_jwk: String,
    dir: TempDir,
}

impl Stack {
    /// Starts a stack with default options and waits until the enclave serves.
    pub fn start() -> Stack {
        Stack::start_with(StackOptions::default())
    }

    pub fn start_with(opts: StackOptions) -> Stack {
        let t0 = Instant::now();
        let bins = bins();
        let model = sealed_model();
        eprintln!(
            "[e2e] binaries and sealed model ready after {:?}",
            t0.elapsed()
        );
        let dev_pki = confidant_testkit::dev_pki();
        let measurement = sim_measurement(&bins.enclave);
        let dir = tempfile::tempdir().unwrap();
        let vdir = dir.path().join("verifier");

        // The policy allows exactly this build (and any extra measurements) and the sealed model.
        let mut measurements = vec![measurement];
        measurements.extend(&opts.extra_measurements);
        verifier::init(&vdir, &model.digest, &measurements, &opts);
        let verifier = verifier::VerifierNode::start(&vdir, opts.verifier_launcher.clone());
        let verifier_addr = verifier.addr;
        verifier.register_model(&model.key_path, KEY_ID, &model.digest);

        let enclave_config = dir.path().join("enclave.toml");
        let mut toml = enclave_toml(&model.path, &dev_pki, verifier_addr, &opts);
        toml.push_str(&opts.enclave_toml);
        std::fs::write(&enclave_config, toml).unwrap();
        let mut args = opts.enclave_launcher.clone();
        args.push(bins.enclave.clone().into_os_string());
        let mut cmd = Command::new(&args[0]);
        cmd.args(&args[1..])
            .arg("serve")
            .arg("--config")
            .arg(&enclave_config)
            .args(["--log-format", "json"]);
        let mut enclave = Service::spawn("confidant-enclave", cmd);
        let enclave_addr = enclave.wait_for_logged_addr("serving", Duration::from_secs(180));
        eprintln!(
            "[e2e] enclave serving on {enclave_addr} after {:?}",
            t0.elapsed()
        );

        let ca = verifier.tls_pem();
        let keys = https::blocking_request(
            verifier_addr,
            &ca,
            "GET",
            routes::verifier::KEYS,
            None,
            None,
        );
        assert_eq!(keys.status, 200, "GET /v1/keys");
        let keys: serde_json::Value = serde_json::from_slice(&keys.body).unwrap();
        let result_key_jwk = keys["keys"][0].to_string();

        Stack {
            enclave,
            verifier,
            enclave_addr,
            verifier_addr,
            measurement,
            model_digest: model.digest,
            result_key_jwk,
            dir,
        }
    }

    /// A file under the verifier's state directory.
    pub fn verifier_file(&self, rel: &str) -> PathBuf {
        self.dir.path().join("verifier").join(rel)
    }

    /// Reads a file under the verifier's state directory.
    pub fn read_verifier_file(&self, rel: &str) -> Vec<u8> {
        std::fs::read(self.verifier_file(rel)).unwrap()
    }

    /// The CA that issues enclave certificates (what clients pin).
    pub fn ca_pem(&self) -> Vec<u8> {
        self.read_verifier_file("ca.pem")
    }

    /// The verifier's own TLS certificate (what enclaves and admins pin).
    pub fn verifier_tls_pem(&self) -> Vec<u8> {
        self.read_verifier_file("tls-cert.pem")
    }

    /// A development bearer token of `role` (`client`, `enclave`, `admin`, `auditor`, `metrics`).
    pub fn token(&self, role: &str) -> String {
        let t = self.read_verifier_file(&format!("tokens/{role}.jwt"));
        String::from_utf8(t).unwrap().trim().to_owned()
    }

    /// `https://127.0.0.1:PORT` of the enclave.
    pub fn enclave_url(&self) -> String {
        format!("https://{}", self.enclave_addr)
    }

    /// The client policy that accepts exactly this enclave build and model (the verifier's
    /// policy format; the development root pinned, dev evidence on).
    pub fn policy(&self) -> Policy {
        self.policy_with(|_| {})
    }

    /// [`Stack::policy`], changed by `edit`.
    pub fn policy_with(&self, edit: impl FnOnce(&mut DevSnpPolicy)) -> Policy {
        Policy::from_toml(&self.policy_toml_with(edit)).unwrap()
    }

    /// The TOML of [`Stack::policy_with`].
    pub fn policy_toml_with(&self, edit: impl FnOnce(&mut DevSnpPolicy)) -> String {
        let mut p = DevSnpPolicy::new(
            "e2e-client",
            1,
            MODEL_ID,
            self.model_digest,
            self.measurement,
        );
        edit(&mut p);
        p.toml()
    }

    /// AMD roots plus the development root of the simulated TEE.
    pub fn trust_anchors(&self) -> TrustAnchors {
        dev_trust_anchors()
    }

    /// An SDK client for `url` with `policy`, `mode` and `fresh`.
    pub fn client_for(&self, url: &str, policy: Policy, mode: Mode, fresh: bool) -> Client {
        Client::builder(url)
            .verifier_ca(&self.ca_pem())
            .result_key(ResultVerifier::from_jwk(&self.result_key_jwk).unwrap())
            .policy(policy)
            .mode(mode)
            .fresh(fresh)
            .trust_anchors(self.trust_anchors())
            .bearer_token(BearerToken::new(self.token("client")))
            .connect_timeout(Duration::from_secs(20))
            .request_timeout(Duration::from_secs(120))
            .build()
            .unwrap()
    }

    /// An SDK client for the enclave.
    pub fn client(&self, mode: Mode, fresh: bool) -> Client {
        self.client_for(&self.enclave_url(), self.policy(), mode, fresh)
    }

    /// Writes the client-side files the CLI needs and returns its trust flags.
    pub fn cli_client_args(&self) -> Vec<std::ffi::OsString> {
        let key = self.dir.path().join("result-key.jwk");
        std::fs::write(&key, &self.result_key_jwk).unwrap();
        let policy = self.dir.path().join("client-policy.toml");
        std::fs::write(&policy, self.policy_toml_with(|_| {})).unwrap();
        let pki = confidant_testkit::dev_pki();
        let mut args: Vec<std::ffi::OsString> = Vec::new();
        let mut push = |flag: &str, path: PathBuf| {
            args.push(flag.into());
            args.push(path.into());
        };
        push("--ca", self.verifier_file("ca.pem"));
        push("--result-key", key);
        push("--policy", policy);
        push("--dev-ark", pki.join("ark.der"));
        push("--dev-ask", pki.join("ask.der"));
        push("--token-file", self.verifier_file("tokens/client.jwt"));
        args
    }

    /// The enclave's Prometheus metrics (`GET /metrics`, no token needed).
    pub async fn metrics(&self) -> String {
        let token = self.token("metrics");
        let r = https::request(
            self.enclave_addr,
            &self.ca_pem(),
            "GET",
            routes::enclave::METRICS,
            Some(&token),
            None,
        )
        .await;
        assert_eq!(r.status, 200, "GET /metrics");
        String::from_utf8(r.body).unwrap()
    }

    /// Another enclave process with this stack's configuration (on a port of its own), run
    /// through `launcher` (e.g. `faketime`) with `env`; started, not waited for.
    pub fn spawn_enclave(&self, launcher: &[&str], env: &[(&str, &str)]) -> Service {
        let mut args: Vec<std::ffi::OsString> = launcher.iter().map(Into::into).collect();
        args.push(bins().enclave.clone().into_os_string());
        let mut cmd = Command::new(&args[0]);
        cmd.args(&args[1..])
            .arg("serve")
            .arg("--config")
            .arg(self.dir.path().join("enclave.toml"))
            .args(["--log-format", "json"])
            .envs(env.iter().copied());
        Service::spawn("confidant-enclave", cmd)
    }

    /// Stops the verifier (SIGKILL; the enclave keeps running).
    pub fn stop_verifier(&mut self) {
        self.verifier.kill();
    }

    /// Starts the verifier again, on the same addresses and state.
    pub fn restart_verifier(&mut self) {
        self.verifier.restart();
    }
}

/// Sum of the samples of `metric` whose labels contain `label` (e.g. `route=routes::enclave::CHAT_COMPLETIONS`).
pub fn metric_sum(metrics: &str, metric: &str, label: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(metric)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(|l| l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
