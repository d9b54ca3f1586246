//! Deployment artefacts, checked as far as this machine allows (no Docker daemon, no systemd as
//! init):
//!
//! - the systemd units, rated by `systemd-analyze security --offline=true` (2.0 or lower; a bare
//!   unit, the positive control, rates far higher);
//! - the compose file, as `docker-compose config` (the Debian package, which needs no daemon)
//!   normalises it: every service non-root, read-only root file system, no capabilities, no new
//!   privileges, secrets as files under /run/secrets, configuration read-only; the Dockerfiles
//!   `FROM scratch` with a non-root `USER`, copying only the gathered rootfs;
//! - the image contents `scripts/deploy-rootfs.sh` gathers (no key material in them), run the
//!   way compose would run them (`scripts/rootfs-run.sh`: read-only root, configuration and
//!   secrets mounted read-only, uid 10001, chroot) with the state `scripts/deploy-state.sh` lays
//!   out: the verifier starts, takes the model key, the enclave attests, locks down and answers.
// Test code: a failed fixture or assertion is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use confidant_client::{BearerToken, Client, Mode, Policy, ResultVerifier};
use confidant_e2e::{
    CAPITAL_PROMPT, KEY_ID, MODEL_ID, Service, bins, dev_trust_anchors, https, run_ok,
    sealed_model, sim_measurement,
};
use confidant_testkit::policy::DevSnpPolicy;
use confidant_wire::openai::{ChatMessage, ChatRequest};

/// The user the images run as.
const APP_UID: &str = "10001";

fn repo() -> PathBuf {
    confidant_testkit::workspace_root()
}

/// `systemd-analyze security --offline=true UNIT`: its overall exposure and exit status at the
/// threshold 2.0.
fn exposure(unit: &Path) -> (f64, bool) {
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--threshold=20", "--no-pager"])
        .arg(unit)
        .output()
        .expect("systemd-analyze (scripts/setup.sh installs systemd)");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let level = text
        .lines()
        .find_map(|l| l.split("Overall exposure level for ").nth(1))
        .and_then(|rest| rest.split(": ").nth(1))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{text}"));
    (level, out.status.success())
}

#[test]
fn systemd_units_are_hardened() {
    let dir = repo().join("deploy/systemd");
    for unit in ["confidant-verifier.service", "confidant-enclave.service"] {
        let path = dir.join(unit);
        let (level, ok) = exposure(&path);
        eprintln!("[deploy] {unit}: exposure {level}");
        assert!(level <= 2.0 && ok, "{unit}: exposure {level} > 2.0");
        let text = std::fs::read_to_string(&path).unwrap();
        for option in [
            "ProtectSystem=strict",
            "NoNewPrivileges=yes",
            "PrivateTmp=yes",
            "CapabilityBoundingSet=\n",
            "SystemCallFilter=@system-service",
            "MemoryDenyWriteExecute=yes",
            "DynamicUser=yes",
        ] {
            assert!(text.contains(option), "{unit} lacks {option:?}");
        }
    }
    // The enclave confines itself after unsealing: its unit must let it.
    let enclave = std::fs::read_to_string(dir.join("confidant-enclave.service")).unwrap();
    let allowed: Vec<&str> = enclave
        .lines()
        .filter_map(|l| l.strip_prefix("SystemCallFilter="))
        .filter(|l| !l.starts_with('~'))
        .flat_map(str::split_whitespace)
        .collect();
    for call in [
        "seccomp",
        "landlock_create_ruleset",
        "landlock_add_rule",
        "landlock_restrict_self",
    ] {
        assert!(
            allowed.contains(&call),
            "the enclave unit filters out {call}"
        );
    }
    // Positive control: the tool rates an unhardened unit as exposed.
    let tmp = tempfile::tempdir().unwrap();
    let bare = tmp.path().join("bare.service");
    std::fs::write(&bare, "[Service]\nExecStart=/usr/bin/true\n").unwrap();
    let (level, ok) = exposure(&bare);
    assert!(level > 5.0 && !ok, "bare unit rated {level}");
}

/// What `scripts/deploy-rootfs.sh` gathers from this build's binaries, once per process.
fn gathered() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = confidant_testkit::scratch::dir("gathered");
        let bin_dir = bins().verifier.parent().unwrap().to_path_buf();
        run_ok(
            Command::new("bash")
                .arg(repo().join("scripts/deploy-rootfs.sh"))
                .arg("--bin-dir")
                .arg(&bin_dir)
                .arg(&dir),
        );
        dir
    })
}

#[test]
fn compose_and_images_run_unprivileged_without_secrets() {
    let build = gathered();
    // Nothing in the images but executables, shared libraries and three files of /etc: no
    // configuration, no keys, no tokens.
    for service in ["verifier", "enclave"] {
        let root = build.join(service).join("rootfs");
        let etc = ["etc/passwd", "etc/group", "etc/nsswitch.conf"];
        for entry in walk(&root) {
            let rel = entry
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if etc.contains(&rel.as_str()) {
                continue;
            }
            let bytes = std::fs::read(&entry).unwrap();
            assert!(
                bytes.starts_with(b"\x7fELF")
                    && (rel.starts_with("usr/local/bin/")
                        || rel.starts_with("lib/")
                        || rel.starts_with("lib64/")
                        || rel.starts_with("usr/lib/")),
                "unexpected file in the {service} image: {rel}"
            );
        }
        let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap();
        assert!(!passwd.contains(":0:"), "root in the image's passwd");
        assert!(passwd.contains(&format!(":{APP_UID}:{APP_UID}:")));
        // The Dockerfile the script placed: scratch, non-root, only the gathered tree.
        let dockerfile = std::fs::read_to_string(build.join(service).join("Dockerfile")).unwrap();
        let instructions: Vec<&str> = dockerfile
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .collect();
        assert_eq!(instructions[0], "FROM scratch", "{service}");
        assert!(instructions.contains(&"COPY rootfs/ /"), "{service}");
        assert!(
            instructions.contains(&format!("USER {APP_UID}:{APP_UID}").as_str()),
            "{service}"
        );
        for i in &instructions {
            let keyword = i.split_whitespace().next().unwrap();
            assert!(
                ["FROM", "COPY", "USER", "EXPOSE", "ENTRYPOINT", "CMD"].contains(&keyword),
                "{service}: unexpected instruction {i:?}"
            );
            if keyword == "COPY" {
                assert_eq!(*i, "COPY rootfs/ /", "{service}");
            }
        }
    }

    // The compose file, as docker-compose (no daemon needed) normalises it, read as JSON.
    let state = tempfile::tempdir().unwrap();
    let yaml = run_ok(
        Command::new("docker-compose")
            .arg("-f")
            .arg(repo().join("deploy/compose.yaml"))
            .arg("config")
            .env("CONFIDANT_DEPLOY_BUILD", build)
            .env("CONFIDANT_DEPLOY_STATE", state.path()),
    );
    let json = run_ok(
        Command::new("python3")
            .args([
                "-c",
                "import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)",
            ])
            .stdin(write_stdin(&yaml)),
    );
    let compose: serde_json::Value = serde_json::from_str(&json).unwrap();
    let services = compose["services"].as_object().unwrap();
    assert_eq!(services.len(), 2);
    for (name, s) in services {
        let user = s["user"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: no user"));
        let uid = user.split(':').next().unwrap();
        assert!(
            uid != "0" && uid != "root" && !uid.is_empty(),
            "{name} runs as {user}"
        );
        assert_eq!(s["read_only"], true, "{name}: writable root file system");
        assert_eq!(s["cap_drop"], serde_json::json!(["ALL"]), "{name}");
        assert!(
            s["security_opt"]
                .as_array()
                .unwrap()
                .iter()
                .any(|o| o == "no-new-privileges:true"),
            "{name}"
        );
        assert!(
            s.get("privileged").is_none() && s.get("environment").is_none(),
            "{name}"
        );
        let secrets = s["secrets"].as_array().unwrap();
        assert!(!secrets.is_empty(), "{name}: no secrets mounted");
        for secret in secrets {
            let source = secret["source"].as_str().unwrap();
            let file = compose["secrets"][source]["file"].as_str().unwrap();
            assert!(
                file.starts_with(state.path().to_str().unwrap()),
                "{name}: secret {source} is not a file of the state directory"
            );
            assert!(!secret["target"].as_str().unwrap().contains('/'), "{name}");
        }
        for volume in s["volumes"].as_array().unwrap() {
            let v = volume.as_str().unwrap();
            let (host, rest) = v.split_once(':').unwrap();
            assert!(
                !host.contains("/secrets"),
                "{name}: secrets mounted as a volume: {v}"
            );
            if rest.starts_with("/etc/confidant") {
                assert!(rest.ends_with(":ro"), "{name}: configuration writable: {v}");
            }
        }
    }
    assert!(
        services["enclave"]["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v.as_str().unwrap().ends_with(":ro")),
        "the enclave writes nothing"
    );
}

fn write_stdin(text: &str) -> std::process::Stdio {
    let mut file = tempfile::tempfile().unwrap();
    std::io::Write::write_all(&mut file, text.as_bytes()).unwrap();
    std::io::Seek::rewind(&mut file).unwrap();
    std::process::Stdio::from(file)
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// `/proc/PID/status` fields.
fn status_field(pid: u32, field: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':').map(str::trim))
        .unwrap()
        .to_owned()
}

fn rootfs_service(name: &'static str, service: &str, dirs: &[(&str, &Path)]) -> Service {
    let program = format!("/usr/local/bin/confidant-{service}");
    let mut cmd = Command::new("bash");
    cmd.arg(repo().join("scripts/rootfs-run.sh"))
        .arg(gathered().join(service).join("rootfs"));
    for (flag, dir) in dirs {
        cmd.arg(flag).arg(dir);
    }
    cmd.args(["--", &program, "serve", "--config"])
        .arg(format!("/etc/confidant/{service}.toml"))
        .args(["--log-format", "json"]);
    Service::spawn(name, cmd)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gathered_images_serve_as_an_unprivileged_user_on_read_only_roots() {
    let bins = bins();
    let model = sealed_model();
    let state = tempfile::tempdir().unwrap();
    let policy = state.path().join("policy.toml");
    // The names deploy-state.sh's enclave asks for in its certificate: the policy must list them.
    let mut dev = DevSnpPolicy::new(
        "deploy",
        1,
        MODEL_ID,
        model.digest,
        sim_measurement(&bins.enclave),
    );
    dev.tls_names = ["enclave", "localhost", "127.0.0.1"]
        .map(str::to_owned)
        .to_vec();
    std::fs::write(&policy, dev.toml()).unwrap();
    // The enclave needs the verifier's address up front.
    let port = confidant_testkit::free_port();
    let out = state.path().join("deploy");
    run_ok(
        Command::new("bash")
            .arg(repo().join("scripts/deploy-state.sh"))
            .arg(&out)
            .arg("--dev-pki")
            .arg(confidant_testkit::dev_pki())
            .args(["--model-id", MODEL_ID, "--policy"])
            .arg(&policy)
            .args(["--verifier-listen", &format!("127.0.0.1:{port}")])
            .args([
                "--admin-listen",
                "127.0.0.1:0",
                "--enclave-listen",
                "127.0.0.1:0",
            ])
            .args(["--verifier-url", &format!("https://127.0.0.1:{port}")])
            .arg("--verifier-bin")
            .arg(&bins.verifier),
    );
    std::fs::copy(&model.path, out.join("enclave/data/model.sealed")).unwrap();
    let v = out.join("verifier");
    let e = out.join("enclave");

    let mut verifier = tokio::task::block_in_place(|| {
        let mut s = rootfs_service(
            "verifier (rootfs)",
            "verifier",
            &[
                ("--config", &v.join("config")),
                ("--secrets", &v.join("secrets")),
                ("--state", &v.join("state")),
            ],
        );
        s.wait_for_logged_addr("confidant-verifier listening", Duration::from_secs(30));
        s
    });
    let admin =
        verifier.wait_for_logged_addr("confidant-verifier admin listening", Duration::from_secs(5));
    assert_eq!(
        status_field(verifier.pid(), "Uid")
            .split_whitespace()
            .next(),
        Some(APP_UID)
    );
    run_ok(
        Command::new(&bins.cli)
            .args(["model", "register", "--verifier"])
            .arg(format!("https://{admin}"))
            .arg("--ca")
            .arg(v.join("config/tls-cert.pem"))
            .arg("--token-file")
            .arg(out.join("tokens/admin.jwt"))
            .arg("--key-file")
            .arg(&model.key_path)
            .args(["--key-id", KEY_ID, "--model-id", MODEL_ID, "--digest"])
            .arg(hex::encode(model.digest)),
    );
    // The verifier wrote only its state directory.
    assert!(v.join("state/keys.json").is_file());
    assert!(v.join("state/audit.log").is_file());

    let mut enclave = tokio::task::block_in_place(|| {
        rootfs_service(
            "enclave (rootfs)",
            "enclave",
            &[
                ("--config", &e.join("config")),
                ("--secrets", &e.join("secrets")),
                ("--data", &e.join("data")),
            ],
        )
    });
    let addr = tokio::task::block_in_place(|| {
        enclave.wait_for_logged_addr("serving", Duration::from_secs(180))
    });
    let pid = enclave.pid();
    assert_eq!(
        status_field(pid, "Uid").split_whitespace().next(),
        Some(APP_UID)
    );
    assert_eq!(status_field(pid, "NoNewPrivs"), "1");
    assert_eq!(status_field(pid, "Seccomp"), "2");

    let ca = std::fs::read(v.join("config/ca.pem")).unwrap();
    let health = https::request(addr, &ca, "GET", "/healthz", None, None).await;
    assert_eq!(health.status, 200);
    let lockdown = health.json()["lockdown"].clone();
    assert_eq!(lockdown["seccomp"], "enforced", "{lockdown}");
    assert_eq!(lockdown["fs_writes_denied"], true, "{lockdown}");

    // A client that trusts this deployment's verifier answers the golden question.
    let keys = https::request(
        format!("127.0.0.1:{port}").parse().unwrap(),
        &std::fs::read(v.join("config/tls-cert.pem")).unwrap(),
        "GET",
        "/v1/keys",
        None,
        None,
    )
    .await;
    let jwk = keys.json()["keys"][0].to_string();
    let token = std::fs::read_to_string(out.join("tokens/client.jwt")).unwrap();
    let client = Client::builder(format!("https://{addr}"))
        .verifier_ca(&ca)
        .result_key(ResultVerifier::from_jwk(&jwk).unwrap())
        // The client checks the result against the deployment's own policy.
        .policy(Policy::from_toml(&dev.toml()).unwrap())
        .mode(Mode::Passport)
        .trust_anchors(dev_trust_anchors())
        .bearer_token(BearerToken::new(token.trim()))
        .connect_timeout(Duration::from_secs(20))
        .request_timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    let reply = client
        .chat(
            ChatRequest::new(MODEL_ID, vec![ChatMessage::user(CAPITAL_PROMPT)])
                .temperature(0.0)
                .max_tokens(24),
        )
        .await
        .unwrap();
    assert!(reply.text().unwrap_or_default().contains("Paris"));
    enclave.kill();
    verifier.kill();
}
