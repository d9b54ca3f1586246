//! `docs/operations.md` works as written: its ` ```sh ` blocks run, in order, in one bash with
//! `set -euo pipefail`, against a real verifier (the binary, `init`'s configuration, the
//! development PKI) and a small sealed bundle; for its ` ```console ` blocks (systemd, Docker), the
//! programs, scripts and `confidant` subcommands and flags they name must exist.
// Test code: a failed fixture or assertion is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use confidant_e2e::{Service, bins, run_ok};

fn doc() -> String {
    std::fs::read_to_string(confidant_testkit::workspace_root().join("docs/operations.md")).unwrap()
}

/// The fenced blocks of `lang`, in order.
fn blocks(text: &str, lang: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let trimmed = line.trim_start();
        match &mut current {
            None if trimmed == format!("```{lang}") => current = Some(String::new()),
            Some(block) if trimmed == "```" => {
                out.push(std::mem::take(block));
                current = None;
            }
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {}
        }
    }
    assert!(current.is_none(), "unterminated ```{lang} block");
    out
}

fn small_bundle(dir: &Path) -> PathBuf {
    let bundle = dir.join("bundle");
    std::fs::create_dir(&bundle).unwrap();
    let weights: Vec<u8> = (0..6000u32).map(|i| (i * 31 % 251) as u8).collect();
    std::fs::write(bundle.join("model.gguf"), weights).unwrap();
    std::fs::write(bundle.join("tokenizer.json"), br#"{"model":{"vocab":{}}}"#).unwrap();
    std::fs::write(bundle.join("config.json"), br#"{"hidden_size":64}"#).unwrap();
    bundle
}

#[test]
fn operations_commands_run_as_written() {
    let bins = bins();
    let tmp = tempfile::tempdir().unwrap();
    let conf = tmp.path().join("verifier");
    let work = tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let dev_pki = confidant_testkit::dev_pki();
    run_ok(
        Command::new(&bins.verifier)
            .arg("init")
            .arg(&conf)
            .arg("--dev-pki")
            .arg(&dev_pki)
            .args(["--listen", "127.0.0.1:0"]),
    );
    let mut cmd = Command::new(&bins.verifier);
    cmd.args(["serve", "--config"])
        .arg(conf.join("verifier.toml"))
        .args(["--log-format", "json"]);
    let mut verifier = Service::spawn("confidant-verifier", cmd);
    let api =
        verifier.wait_for_logged_addr("confidant-verifier listening", Duration::from_secs(30));
    let admin =
        verifier.wait_for_logged_addr("confidant-verifier admin listening", Duration::from_secs(5));

    // The model the examples manage: a small bundle, sealed under smollm2-v1.
    let bundle = small_bundle(tmp.path());
    let sealed: serde_json::Value = serde_json::from_str(&run_ok(
        Command::new(&bins.cli)
            .args(["model", "seal", "--key-id", "smollm2-v1", "--in"])
            .arg(&bundle)
            .arg("--out")
            .arg(work.join("model.sealed")),
    ))
    .unwrap();
    let digest = sealed["model_digest"].as_str().unwrap().to_owned();
    // Three enclave "builds": the simulated TEE measures the executable's bytes.
    let builds: Vec<PathBuf> = ["1.3", "1.4", "1.5"]
        .iter()
        .map(|v| {
            let p = tmp.path().join(format!("confidant-enclave-{v}"));
            std::fs::write(&p, format!("enclave build {v}")).unwrap();
            p
        })
        .collect();
    let ark = std::fs::read(dev_pki.join("ark.der")).unwrap();
    let ark_sha = hex::encode(ring::digest::digest(&ring::digest::SHA256, &ark));

    // Setup between the conventions (helpers) and the first operation: the policy allows build
    // 1.4 and the model; its key is registered.
    let setup = r#"
policy 2 "\"$(confidant measure sim --binary "$OLD_ENCLAVE_BIN")\"" '{ bootloader = 0, tee = 0, snp = 0, microcode = 0 }' "" > setup-policy.toml
put_policy setup-policy.toml
confidant model register --verifier "$ADMIN" --ca "$CONF/tls-cert.pem" --token-file "$ADMIN_TOKEN" \
  --key-file model.sealed.key --key-id smollm2-v1 --model-id "$MODEL_ID" --digest "$MODEL_DIGEST"
"#;
    let sh = blocks(&doc(), "sh");
    let helpers = sh
        .iter()
        .position(|b| b.contains("put_policy()"))
        .expect("the conventions define put_policy");
    // Each block announces itself on stderr (not `set -x`, which would print the tokens).
    let mut script = String::from("set -euo pipefail\n");
    for (i, block) in sh.iter().enumerate() {
        let first = block.lines().next().unwrap_or_default().replace('\'', "");
        script.push_str(&format!("echo '[operations.md block {i}] {first}' >&2\n"));
        script.push_str(block);
        if i == helpers {
            script.push_str(setup);
        }
    }
    let bin_dir = bins.cli.parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(&work)
        .env("PATH", path)
        .env("CONF", &conf)
        .env("STATE", &conf)
        .env("API", format!("https://{api}"))
        .env("ADMIN", format!("https://{admin}"))
        .env("ADMIN_TOKEN", conf.join("tokens/admin.jwt"))
        .env("AUDITOR_TOKEN", conf.join("tokens/auditor.jwt"))
        .env("MODEL_ID", "smollm2-135m-instruct")
        .env("MODEL_DIGEST", &digest)
        .env("BUNDLE", &bundle)
        .env("BAD_ENCLAVE_BIN", &builds[0])
        .env("OLD_ENCLAVE_BIN", &builds[1])
        .env("NEW_ENCLAVE_BIN", &builds[2])
        .env("DEV_ARK_SHA256", &ark_sha)
        .output()
        .unwrap();
    let trace = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "docs/operations.md failed:\n{}\n{trace}\nverifier:\n{}",
        String::from_utf8_lossy(&out.stdout),
        verifier.tail()
    );

    // What the walkthrough did, seen from the verifier.
    let v = verifier_state(&conf);
    assert!(v.contains("\"smollm2-v2\""), "rotated key: {v}");
    let policy = std::fs::read_to_string(conf.join("policy.toml")).unwrap();
    let measure = |p: &Path| {
        run_ok(
            Command::new(&bins.cli)
                .args(["measure", "sim", "--binary"])
                .arg(p),
        )
    };
    let (bad, old, new) = (
        measure(&builds[0]),
        measure(&builds[1]),
        measure(&builds[2]),
    );
    assert!(
        policy.contains(&format!("snp_measurements = [\"{}\"]", new.trim())),
        "{policy}"
    );
    assert!(
        policy.contains(bad.trim()) && policy.contains(old.trim()),
        "both revoked: {policy}"
    );
    assert!(policy.contains("snp = 22"), "TCB floor raised: {policy}");
    assert!(work.join("audit.jsonl").is_file());
    assert!(
        !work.join("model-v2.sealed.key").exists(),
        "the new key file was shredded"
    );
    verifier.kill();
}

fn verifier_state(conf: &Path) -> String {
    std::fs::read_to_string(conf.join("keys.json")).unwrap()
}

/// Every program a `console` block runs exists: scripts in the repository, the `confidant`
/// programs with their subcommands and flags, other tools on this machine.
#[test]
fn operations_console_commands_exist() {
    let root = confidant_testkit::workspace_root();
    let bins = bins();
    let mut checked = 0;
    for block in blocks(&doc(), "console") {
        // Join continuation lines.
        let text = block.replace("\\\n", " ");
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let words: Vec<&str> = line.split_whitespace().collect();
            let (program, args) = (words[0], &words[1..]);
            match program {
                "export" => {}
                "bash" => {
                    assert!(root.join(args[0]).is_file(), "no script {}", args[0]);
                }
                "confidant" | "confidant-verifier" | "confidant-enclave" => {
                    let bin = match program {
                        "confidant" => &bins.cli,
                        "confidant-verifier" => &bins.verifier,
                        _ => &bins.enclave,
                    };
                    let sub: Vec<&str> = args
                        .iter()
                        .take_while(|a| !a.starts_with('-') && !a.contains('/'))
                        .copied()
                        .collect();
                    let help = run_ok(Command::new(bin).args(&sub).arg("--help"));
                    for flag in args.iter().filter(|a| a.starts_with("--")) {
                        let flag = flag.split('=').next().unwrap();
                        assert!(help.contains(flag), "{program} {sub:?} has no {flag}");
                    }
                }
                other => {
                    let found = Command::new("sh")
                        .args(["-c", &format!("command -v {other}")])
                        .status()
                        .unwrap()
                        .success();
                    assert!(found, "{other} (in `{line}`) is not installed");
                }
            }
            checked += 1;
        }
    }
    assert!(checked > 10, "only {checked} console commands found");
}
