//! A real `confidant-verifier` process that can be killed and started again on the same
//! addresses with the same state (what an operator's restart does), optionally through a
//! launcher command (e.g. `unshare` for a private mount namespace).

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::{MODEL_ID, RESULT_AUDIENCE, Service, StackOptions, bins};

/// A verifier's state directory (made by `confidant-verifier init`) and its running process.
#[derive(Debug)]
pub struct VerifierNode {
    pub service: Option<Service>,
    /// The state directory (`verifier.toml`, keys, tokens, audit log).
    pub dir: PathBuf,
    pub addr: SocketAddr,
    pub admin_addr: SocketAddr,
    launcher: Vec<OsString>,
    /// How many times the process was started.
    pub starts: usize,
}

/// Runs `confidant-verifier init` into `dir` with a development policy allowing [`MODEL_ID`]
/// (`digest`) on `measurements`, and applies `opts` to its configuration. Returns the config path.
pub fn init(
    dir: &Path,
    digest: &[u8; 32],
    measurements: &[[u8; 48]],
    opts: &StackOptions,
) -> PathBuf {
    let mut init = Command::new(&bins().verifier);
    init.arg("init")
        .arg(dir)
        .arg("--dev-pki")
        .arg(confidant_testkit::dev_pki())
        .args(["--listen", "127.0.0.1:0", "--model", MODEL_ID, "--digest"])
        .arg(hex::encode(digest));
    for m in measurements {
        init.arg("--measurement").arg(hex::encode(m));
    }
    let out = init.output().unwrap();
    assert!(
        out.status.success(),
        "confidant-verifier init failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config_path = dir.join("verifier.toml");
    let mut config = std::fs::read_to_string(&config_path).unwrap();
    config = config.replacen(
        "[results]\n",
        &format!("[results]\naudience = \"{RESULT_AUDIENCE}\"\n"),
        1,
    );
    if let Some(secs) = opts.result_validity_secs {
        assert!(config.contains("\nvalidity_secs = 3600\n"));
        config = config
            .replace(
                "\nvalidity_secs = 3600\n",
                &format!("\nvalidity_secs = {secs}\n"),
            )
            .replace(
                "leaf_validity_secs = 3600",
                &format!("leaf_validity_secs = {secs}"),
            );
    }
    if let Some(log) = &opts.audit_log {
        config = set_key(
            &config,
            "[audit]",
            "log",
            &format!("{:?}", log.display().to_string()),
        );
    }
    if let Some(rate) = opts.verifier_rate_limit {
        config = set_key(&config, "[rate_limit]", "per_second", &format!("{rate:.1}"));
        config = set_key(
            &config,
            "[rate_limit]",
            "burst",
            &format!("{}", rate as u64),
        );
    }
    std::fs::write(&config_path, config).unwrap();
    config_path
}

/// `key = value` under `[table]` of a TOML text `init` wrote (replaced if present, else added
/// first in the table).
fn set_key(config: &str, table: &str, key: &str, value: &str) -> String {
    let start = config
        .find(&format!("\n{table}\n"))
        .unwrap_or_else(|| panic!("verifier.toml has no {table}"))
        + table.len()
        + 2;
    let end = config[start..]
        .find("\n[")
        .map_or(config.len(), |i| start + i + 1);
    let body: String = config[start..end]
        .lines()
        .filter(|l| !l.starts_with(&format!("{key} =")))
        .map(|l| format!("{l}\n"))
        .collect();
    format!(
        "{}{key} = {value}\n{body}{}",
        &config[..start],
        &config[end..]
    )
}

impl VerifierNode {
    /// Starts the verifier of state directory `dir` (already `init`ed) and waits until both
    /// listeners are up; then pins their addresses in `verifier.toml`, so a restart binds the
    /// same ones. `launcher` is prepended to the command line (empty: run it directly).
    pub fn start(dir: &Path, launcher: Vec<OsString>) -> VerifierNode {
        let (service, addr, admin_addr) = spawn(dir, &launcher);
        let config_path = dir.join("verifier.toml");
        let mut config = std::fs::read_to_string(&config_path).unwrap();
        config = set_key(&config, "[server]", "listen", &format!("\"{addr}\""));
        config = set_key(
            &config,
            "[server]",
            "admin_listen",
            &format!("\"{admin_addr}\""),
        );
        std::fs::write(&config_path, config).unwrap();
        VerifierNode {
            service: Some(service),
            dir: dir.to_path_buf(),
            addr,
            admin_addr,
            launcher,
            starts: 1,
        }
    }

    /// SIGKILLs the process (nothing is flushed or closed) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut s) = self.service.take() {
            s.kill();
        }
    }

    /// Starts the process again on the same addresses and state; waits until it listens.
    pub fn restart(&mut self) {
        self.kill();
        let (service, addr, admin_addr) = spawn(&self.dir, &self.launcher);
        assert_eq!((addr, admin_addr), (self.addr, self.admin_addr));
        self.service = Some(service);
        self.starts += 1;
    }

    /// Starts the process again and waits for it to exit (a start-up refusal); its output.
    pub fn restart_expecting_refusal(&mut self) -> String {
        self.kill();
        let mut cmd = command(&self.dir, &self.launcher);
        let out = cmd.output().unwrap();
        assert!(
            !out.status.success(),
            "the verifier started; expected a refusal"
        );
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// The running process (panics if it is not running).
    pub fn service(&mut self) -> &mut Service {
        self.service.as_mut().expect("verifier running")
    }

    /// A file under the state directory.
    pub fn file(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    /// A development bearer token of `role`.
    pub fn token(&self, role: &str) -> String {
        std::fs::read_to_string(self.file(&format!("tokens/{role}.jwt")))
            .unwrap()
            .trim()
            .to_owned()
    }

    /// The verifier's own TLS certificate (what enclaves and admins pin).
    pub fn tls_pem(&self) -> Vec<u8> {
        std::fs::read(self.file("tls-cert.pem")).unwrap()
    }

    /// `confidant model register` of the sealed model's key (admin API).
    pub fn register_model(&self, key_path: &Path, key_id: &str, digest: &[u8; 32]) {
        let out = Command::new(&bins().cli)
            .args(["model", "register", "--verifier"])
            .arg(format!("https://{}", self.admin_addr))
            .arg("--ca")
            .arg(self.file("tls-cert.pem"))
            .arg("--token-file")
            .arg(self.file("tokens/admin.jwt"))
            .arg("--key-file")
            .arg(key_path)
            .args(["--key-id", key_id, "--model-id", MODEL_ID, "--digest"])
            .arg(hex::encode(digest))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "confidant model register failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn command(dir: &Path, launcher: &[OsString]) -> Command {
    let mut args: Vec<OsString> = launcher.to_vec();
    args.push(bins().verifier.clone().into_os_string());
    args.extend(["serve", "--log-format", "json", "--config"].map(OsString::from));
    args.push(dir.join("verifier.toml").into_os_string());
    let mut cmd = Command::new(&args[0]);
    cmd.args(&args[1..]);
    cmd
}

fn spawn(dir: &Path, launcher: &[OsString]) -> (Service, SocketAddr, SocketAddr) {
    let mut service = Service::spawn("confidant-verifier", command(dir, launcher));
    let addr =
        service.wait_for_logged_addr("confidant-verifier listening", Duration::from_secs(60));
    let admin = service.wait_for_logged_addr(
        "confidant-verifier admin listening",
        Duration::from_secs(60),
    );
    (service, addr, admin)
}

/// A verifier on its own (no enclave), for tests that attest to it directly with
/// [`crate::driver::Driver`]: `init` into `dir` with a policy allowing [`MODEL_ID`] on one
/// simulated launch measurement, started through `launcher`, a fresh random model key registered.
#[derive(Debug)]
pub struct Standalone {
    pub node: VerifierNode,
    pub model_digest: [u8; 32],
    pub measurement: [u8; 48],
}

impl Standalone {
    pub fn start(dir: &Path, opts: &StackOptions) -> Standalone {
        use ring::rand::SecureRandom;
        let rng = ring::rand::SystemRandom::new();
        let mut model_digest = [0u8; 32];
        let mut measurement = [0u8; 48];
        let mut key = [0u8; 32];
        for buf in [&mut model_digest[..], &mut measurement[..], &mut key[..]] {
            rng.fill(buf).unwrap();
        }
        let vdir = dir.join("verifier");
        init(&vdir, &model_digest, &[measurement], opts);
        let node = VerifierNode::start(&vdir, opts.verifier_launcher.clone());
        let key_path = dir.join("model.key");
        std::fs::write(&key_path, key).unwrap();
        std::fs::set_permissions(
            &key_path,
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
        node.register_model(&key_path, crate::KEY_ID, &model_digest);
        Standalone {
            node,
            model_digest,
            measurement,
        }
    }

    /// An attestation driver for this verifier's model and measurement.
    pub fn driver(&self) -> crate::driver::Driver {
        crate::driver::Driver::new(
            self.node.addr,
            self.node.tls_pem(),
            self.node.token("enclave"),
            self.model_digest,
            self.measurement,
        )
    }

    /// The audit log's bytes.
    pub fn audit_log(&self) -> Vec<u8> {
        std::fs::read(self.node.file("audit.log")).unwrap()
    }
}
