//! The README's hand-run walk-through, executed as the README prints it.
//!
//! Every shell block of README.md preceded by `<!-- hand-run -->` is taken verbatim, in order,
//! and run by one `bash` (with `set -euo pipefail`) in a scratch directory that holds `scripts/`
//! and `docs/` of this checkout, with the real binaries first on `PATH` (the README's build block
//! is the only one not run: the harness builds them). The only change is the four addresses of
//! the first block, replaced by free loopback ports this test picked. So the README cannot drift
//! from the programs: a renamed file, flag or route fails here.
//!
//! Before the README's last block (which stops the services) the script hands over to this test,
//! which checks, against the running services, what the README promises about errors: a client
//! token for the wrong audience is refused with an error that says "audience" (the CLI's and the
//! enclave's 401 body), and an enclave asking for a model the policy does not know logs which
//! policy file to add it to, with its digest and `confidant measure sim` value.
//!
//! Takes about 30-60 s in a debug build (the model is sealed and loaded once, the development
//! PKI made once).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use confidant_e2e::{Service, bins, https};

/// The marker before each block the test runs.
const MARKER: &str = "<!-- hand-run -->";
/// The README's address variables, in its first block.
const ADDRESS_VARIABLES: [&str; 4] = ["VERIFIER", "ADMIN", "ENCLAVE", "PROXY"];
/// Variables the three programs read their settings from (`confidant … --help`).
const CLIENT_SETTINGS: [&str; 14] = [
    "CONFIDANT_CONFIG",
    "CONFIDANT_CA",
    "CONFIDANT_RESULT_KEY",
    "CONFIDANT_POLICY",
    "CONFIDANT_MODE",
    "CONFIDANT_DEV_ARK",
    "CONFIDANT_DEV_ASK",
    "CONFIDANT_TOKEN",
    "CONFIDANT_TOKEN_FILE",
    "CONFIDANT_CONNECT_TIMEOUT",
    "CONFIDANT_PROXY_LISTEN",
    "CONFIDANT_UPSTREAM",
    "CONFIDANT_VERIFIER_CONFIG",
    "CONFIDANT_ENCLAVE_CONFIG",
];
/// Longest the walk-through may take up to the hand-over, and after it.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(600);

/// The shell blocks after a [`MARKER`] line, in order.
fn hand_run_blocks(readme: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut lines = readme.lines();
    while let Some(line) = lines.next() {
        if line.trim() != MARKER {
            continue;
        }
        let fence = lines.next().unwrap_or_default();
        assert_eq!(
            fence.trim(),
            "```sh",
            "{MARKER} must be followed by a ```sh block"
        );
        let mut block = String::new();
        for line in lines.by_ref() {
            if line.trim_start().starts_with("```") {
                break;
            }
            block.push_str(line);
            block.push('\n');
        }
        blocks.push(block);
    }
    blocks
}

/// Free loopback ports, picked by binding port 0 (all held until every one is picked).
fn free_addrs(n: usize) -> Vec<SocketAddr> {
    let held: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    held.iter().map(|l| l.local_addr().unwrap()).collect()
}

/// A `bash` running in its own process group (so are the services it starts in the background);
/// the whole group is stopped on drop.
struct Script {
    child: Child,
}

impl Script {
    fn spawn(dir: &Path, text: &str, path: &str, envs: &[(&str, &Path)]) -> Script {
        use std::os::unix::process::CommandExt;
        std::fs::write(dir.join("hand-run.sh"), text).unwrap();
        let mut cmd = Command::new("bash");
        cmd.arg("hand-run.sh")
            .current_dir(dir)
            .env("PATH", path)
            .env_remove("RUST_BACKTRACE")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.join("hand-run.out")).unwrap())
            .stderr(std::fs::File::create(dir.join("hand-run.err")).unwrap())
            .process_group(0);
        // The programs' settings come from the README's flags and files, not from this process.
        for k in CLIENT_SETTINGS {
            cmd.env_remove(k);
        }
        for (k, v) in envs {
            cmd.env(k, v);
        }
        Script {
            child: cmd.spawn().unwrap(),
        }
    }

    fn signal_group(&self, signal: &str) {
        let _ = Command::new("kill")
            .args([signal, "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        self.signal_group("-TERM");
        std::thread::sleep(Duration::from_millis(300));
        self.signal_group("-KILL");
        let _ = self.child.wait();
    }
}

/// What the walk-through printed and logged, for failure messages.
fn transcript(dir: &Path) -> String {
    let mut out = String::new();
    for name in [
        "hand-run.out",
        "hand-run.err",
        "verifier.log",
        "enclave.log",
        "proxy.log",
    ] {
        let text = std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = &lines[lines.len().saturating_sub(25)..];
        out.push_str(&format!("--- {name} ---\n{}\n", tail.join("\n")));
    }
    out
}

/// Waits for `file` to appear while `script` runs.
fn wait_for_file(script: &mut Script, dir: &Path, file: &Path, deadline: Instant) {
    while !file.exists() {
        if let Some(status) = script.child.try_wait().unwrap() {
            panic!(
                "the README's commands failed ({status}) before the end:\n{}",
                transcript(dir)
            );
        }
        assert!(
            Instant::now() < deadline,
            "the README's commands did not finish in {SCRIPT_TIMEOUT:?}:\n{}",
            transcript(dir)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_readme_hand_run_commands_work_as_printed() {
    let t0 = Instant::now();
    let bins = bins();
    // Warm the model cache the README's `scripts/fetch-model.sh` reads (prepared by this build).
    confidant_testkit::model::model_bundle_prepared_by(&bins.enclave);
    let root = confidant_testkit::workspace_root();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let blocks = hand_run_blocks(&readme);
    assert!(
        blocks.len() >= 7,
        "found only {} hand-run blocks",
        blocks.len()
    );
    for var in ADDRESS_VARIABLES {
        assert!(
            blocks[0].lines().any(|l| l.starts_with(&format!("{var}="))),
            "the first hand-run block sets {var}"
        );
    }
    let (stop, walk) = blocks.split_last().unwrap();
    assert!(
        stop.contains("kill"),
        "the last hand-run block stops the services"
    );

    let dir = tempfile::tempdir().unwrap();
    for sub in ["scripts", "docs"] {
        std::os::unix::fs::symlink(root.join(sub), dir.path().join(sub)).unwrap();
    }
    let addrs = free_addrs(ADDRESS_VARIABLES.len());
    let ready = dir.path().join(".hand-run-ready");
    let checked = dir.path().join(".hand-run-checked");
    let mut script = String::from("set -euo pipefail\n");
    script.push_str(&blocks[0]);
    for (var, addr) in ADDRESS_VARIABLES.iter().zip(&addrs) {
        script.push_str(&format!("{var}={addr}   # picked by the test\n"));
    }
    for block in &walk[1..] {
        script.push_str(block);
    }
    // Hand over to the checks below, then stop as the README does.
    script.push_str(
        ": >\"$HAND_RUN_READY\"\n\
         for _ in $(seq 3000); do [ -e \"$HAND_RUN_CHECKED\" ] && break; sleep 0.1; done\n",
    );
    script.push_str(stop);

    let path = format!(
        "{}:{}",
        bins.cli.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut run = Script::spawn(
        dir.path(),
        &script,
        &path,
        &[
            ("HAND_RUN_READY", &ready),
            ("HAND_RUN_CHECKED", &checked),
            ("CONFIDANT_ENCLAVE_BIN", &bins.enclave),
        ],
    );
    let deadline = Instant::now() + SCRIPT_TIMEOUT;
    wait_for_file(&mut run, dir.path(), &ready, deadline);
    eprintln!("[hand-run] README commands ran in {:?}", t0.elapsed());

    // What they printed: the verified claims, the answer (CLI and proxy), an intact audit log.
    let out = std::fs::read_to_string(dir.path().join("hand-run.out")).unwrap();
    let context = || transcript(dir.path());
    assert!(
        out.contains("\"dev\": true"),
        "attest prints the claims:\n{}",
        context()
    );
    assert!(
        out.matches("Paris").count() >= 2,
        "chat and the proxy answer:\n{}",
        context()
    );
    assert!(
        out.contains("\"valid\": true"),
        "audit verify:\n{}",
        context()
    );
    assert!(
        std::fs::read_to_string(dir.path().join("audit.jsonl"))
            .unwrap()
            .contains("\"decision\":\"accept\""),
        "the export holds the key release:\n{}",
        context()
    );

    let enclave = addrs[ADDRESS_VARIABLES
        .iter()
        .position(|v| *v == "ENCLAVE")
        .unwrap()];
    wrong_audience_is_named(dir.path(), enclave);
    unknown_model_says_what_to_add(dir.path(), enclave);

    std::fs::write(&checked, b"").unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = run.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "stopping failed:\n{}", context());
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        status.success(),
        "the README's commands failed:\n{}",
        context()
    );
    eprintln!("[hand-run] done in {:?}", t0.elapsed());
}

/// The enclave token is for the verifier: the enclave refuses it, and both its 401 body and the
/// CLI's error say "audience".
fn wrong_audience_is_named(dir: &Path, enclave: SocketAddr) {
    let token = std::fs::read_to_string(dir.join("state/tokens/enclave.jwt")).unwrap();
    let ca = std::fs::read(dir.join("state/ca.pem")).unwrap();
    let reply =
        https::blocking_request(enclave, &ca, "GET", "/v1/models", Some(token.trim()), None);
    assert_eq!(reply.status, 401);
    let body = reply.json();
    assert_eq!(body["error"]["code"], "wrong_audience", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("audience"), "{message}");

    let out = Command::new(&bins().cli)
        .current_dir(dir)
        .env_remove("RUST_BACKTRACE")
        .args(["chat", &format!("https://{enclave}"), "hello"])
        .args(["--config", "state/client.toml"])
        .args(["--token-file", "state/tokens/enclave.jwt"])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "a token for the verifier was accepted"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("wrong_audience") && stderr.contains("audience (aud)"),
        "{stderr}"
    );
}

/// An enclave for a model the policy lacks is refused; its log names the policy file, the table
/// to add and this build's measurement, and the verifier's log names its policy file.
fn unknown_model_says_what_to_add(dir: &Path, enclave: SocketAddr) {
    let [listen] = free_addrs(1)[..] else {
        unreachable!()
    };
    let config = std::fs::read_to_string(dir.join("enclave.toml"))
        .unwrap()
        .replace(
            "model_id = \"smollm2-135m-instruct\"",
            "model_id = \"not-in-the-policy\"",
        )
        .replace(&enclave.to_string(), &listen.to_string());
    assert!(config.contains("not-in-the-policy"));
    let path: PathBuf = dir.join("enclave-unknown.toml");
    std::fs::write(&path, config).unwrap();
    let mut cmd = Command::new(&bins().enclave);
    cmd.current_dir(dir)
        .arg("serve")
        .arg("--config")
        .arg(&path)
        .args(["--log-format", "json"]);
    let mut second = Service::spawn("confidant-enclave (unknown model)", cmd);
    let hint = second.wait_for(Duration::from_secs(60), |line| {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        v["fields"]["hint"].as_str().map(str::to_owned)
    });
    second.kill();
    let measurement = Command::new(&bins().cli)
        .args(["measure", "sim", "--binary"])
        .arg(&bins().enclave)
        .output()
        .unwrap();
    let measurement = String::from_utf8(measurement.stdout).unwrap();
    for expected in [
        "policy.toml",
        "[models.\"not-in-the-policy\"]",
        "confidant measure sim",
        measurement.trim(),
    ] {
        assert!(hint.contains(expected), "hint lacks {expected:?}: {hint}");
    }
    let verifier_log = std::fs::read_to_string(dir.join("verifier.log")).unwrap();
    let policy = std::fs::canonicalize(dir.join("state/policy.toml")).unwrap();
    assert!(
        verifier_log.lines().any(|l| l.contains("unknown_model")
            && l.contains("[models.")
            && (l.contains("state/policy.toml") || l.contains(&policy.display().to_string()))),
        "the verifier logs which policy file lacks the model:\n{verifier_log}"
    );
}
