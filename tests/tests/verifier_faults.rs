//! The verifier under faults, on its own (attestations straight from a simulated enclave): a
//! SIGKILL in the middle of a burst of attestations, and a full disk under its audit log. In both
//! the promise is the same: no key is released without its decision in the audit log, and the log
//! verifies afterwards.
// Test code: a failed fixture or assertion is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use confidant_e2e::driver::{Outcome, accepted_results};
use confidant_e2e::verifier::Standalone;
use confidant_e2e::{StackOptions, bins};

/// `confidant audit verify --log LOG`: its JSON report (asserting it succeeded).
fn audit_verify(log: &Path) -> serde_json::Value {
    let out = Command::new(&bins().cli)
        .args(["audit", "verify", "--log"])
        .arg(log)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "audit verify {}: {}{}",
        log.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["valid"], true, "{v}");
    v
}

fn released(outcomes: &[Outcome]) -> Vec<String> {
    outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Released { result_digest } => Some(hex::encode(result_digest)),
            _ => None,
        })
        .collect()
}

/// Every key release the driver saw has its accepted decision in the log.
fn assert_all_logged(released: &[String], log: &[u8]) {
    let logged: HashSet<String> = accepted_results(log).into_iter().collect();
    for r in released {
        assert!(
            logged.contains(r),
            "released result {r} is not in the audit log"
        );
    }
}

/// 16 attesters in a loop; the verifier is SIGKILLed once 24 keys were released. Every release
/// any attester saw is in the log. The kill itself ends a `write(2)` whole, so the torn final
/// record a power cut mid-append leaves is then made by hand (half of one more record, never
/// acknowledged): the restart refuses and says so (`torn_tail = "refuse"`, the default), and with
/// `torn_tail = "move_aside"` starts, keeping the torn bytes aside; the log verifies with
/// `confidant audit verify` and the verifier releases keys again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_during_an_attestation_burst_loses_no_decision() {
    let dir = tempfile::tempdir().unwrap();
    let mut v = tokio::task::block_in_place(|| {
        Standalone::start(
            dir.path(),
            &StackOptions {
                verifier_rate_limit: Some(10_000.0),
                ..StackOptions::default()
            },
        )
    });
    let driver = v.driver();
    let outcomes = Arc::new(std::sync::Mutex::new(Vec::new()));
    let accepted = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (driver, outcomes, accepted, stop) = (
            driver.clone(),
            outcomes.clone(),
            accepted.clone(),
            stop.clone(),
        );
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Acquire) {
                let o = driver.attest().await;
                if matches!(o, Outcome::Released { .. }) {
                    accepted.fetch_add(1, Ordering::AcqRel);
                }
                let gone = matches!(o, Outcome::NoReply(_));
                outcomes.lock().unwrap().push(o);
                if gone {
                    break;
                }
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while accepted.load(Ordering::Acquire) < 24 {
        assert!(Instant::now() < deadline, "burst made too little progress");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::task::block_in_place(|| v.node.kill());
    stop.store(true, Ordering::Release);
    for t in tasks {
        t.await.unwrap();
    }
    let outcomes = outcomes.lock().unwrap().clone();
    let released = released(&outcomes);
    let cut_off = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::NoReply(_)))
        .count();
    eprintln!(
        "[faults] {} attestations, {} keys released, {cut_off} cut off by the kill",
        outcomes.len(),
        released.len()
    );
    for o in &outcomes {
        assert!(
            matches!(o, Outcome::Released { .. } | Outcome::NoReply(_)),
            "{o:?}"
        );
    }
    let log_path = v.node.file("audit.log");
    let log = std::fs::read(&log_path).unwrap();
    assert_all_logged(&released, &log);

    // What a power cut in the middle of one more append leaves: a record without its end.
    let last = log[..log.len() - 1]
        .rsplit(|&b| b == b'\n')
        .next()
        .unwrap()
        .to_vec();
    let mut torn = log.clone();
    torn.extend_from_slice(&last[..last.len() / 2]);
    std::fs::write(&log_path, &torn).unwrap();
    let refusal = tokio::task::block_in_place(|| v.node.restart_expecting_refusal());
    assert!(
        refusal.contains(&format!("torn final record at offset {}", log.len())),
        "{refusal}"
    );

    let config = v.node.file("verifier.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("torn_tail = \"refuse\""));
    std::fs::write(
        &config,
        text.replace("torn_tail = \"refuse\"", "torn_tail = \"move_aside\""),
    )
    .unwrap();
    tokio::task::block_in_place(|| v.node.restart());
    tokio::task::block_in_place(|| {
        v.node.service().wait_for(Duration::from_secs(10), |l| {
            l.contains("audit log had a torn final record")
                .then_some(())
        })
    });
    let aside = PathBuf::from(format!("{}.torn-{}", log_path.display(), log.len()));
    assert_eq!(std::fs::read(&aside).unwrap(), &last[..last.len() / 2]);
    assert_eq!(std::fs::read(&log_path).unwrap(), log);
    let report = audit_verify(&log_path);
    assert!(report["accepted"].as_u64().unwrap() >= released.len() as u64);

    let after = v.driver().attest().await;
    let Outcome::Released { result_digest } = after else {
        panic!("no release after the restart: {after:?}");
    };
    assert_all_logged(
        &[hex::encode(result_digest)],
        &std::fs::read(&log_path).unwrap(),
    );
    audit_verify(&log_path);
}

/// The audit log on a 256 KiB tmpfs in the verifier's own mount namespace (`unshare`), which the
/// test fills through `/proc/PID/root`. While it is full every attestation is answered 503
/// `audit_unavailable` with `Retry-After` and no key; nothing half-written stays in the log; once
/// space returns the same process releases keys again, each logged, and the log verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_under_the_audit_log_releases_nothing_until_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    let fs_dir = dir.path().join("auditfs");
    std::fs::create_dir(&fs_dir).unwrap();
    let launcher: Vec<OsString> = [
        "unshare",
        "--user",
        "--map-root-user",
        "--mount",
        "sh",
        "-c",
        "mount -t tmpfs -o size=256k confidant-audit \"$0\" && exec \"$@\"",
    ]
    .iter()
    .map(OsString::from)
    .chain([fs_dir.clone().into_os_string()])
    .collect();
    let v = tokio::task::block_in_place(|| {
        Standalone::start(
            dir.path(),
            &StackOptions {
                verifier_rate_limit: Some(10_000.0),
                audit_log: Some(fs_dir.join("audit.log")),
                verifier_launcher: launcher,
                ..StackOptions::default()
            },
        )
    });
    let pid = v.node.service.as_ref().unwrap().pid();
    // The tmpfs as the verifier sees it (outside its namespace `fs_dir` is an empty directory).
    let inside = PathBuf::from(format!("/proc/{pid}/root{}", fs_dir.display()));
    let log_path = inside.join("audit.log");
    let driver = v.driver();

    let mut released_ok = Vec::new();
    for _ in 0..3 {
        match driver.attest().await {
            Outcome::Released { result_digest } => released_ok.push(hex::encode(result_digest)),
            o => panic!("before the disk filled: {o:?}"),
        }
    }
    // Outside its namespace the directory is empty: the log is on the tmpfs.
    assert!(!std::fs::read_dir(&fs_dir).unwrap().any(|_| true));

    // Fill the file system.
    let filler = inside.join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 4096];
        let err = loop {
            if let Err(e) = f.write_all(&chunk) {
                break e;
            }
        };
        assert_eq!(err.raw_os_error(), Some(28), "{err}"); // ENOSPC
        // Byte by byte into the last partial page.
        while f.write(&[0]).is_ok_and(|n| n == 1) {}
    }
    // The log's own last page may still hold a record or two (each logged); then the first
    // decision that cannot be written is refused, and so is every one after it.
    let mut first_refusal = None;
    for i in 0..8 {
        match driver.attest().await {
            Outcome::Released { result_digest } => released_ok.push(hex::encode(result_digest)),
            o => {
                assert_eq!(o, unavailable(), "attestation {i} on a full disk");
                first_refusal = Some(i);
                break;
            }
        }
    }
    assert!(first_refusal.is_some(), "8 keys released on a full disk");
    let before = std::fs::read(&log_path).unwrap();
    for _ in 0..3 {
        assert_eq!(driver.attest().await, unavailable());
    }
    // The refused decisions left nothing behind: the log is as it was, and verifies.
    assert_eq!(std::fs::read(&log_path).unwrap(), before);
    let copy = dir.path().join("audit-copy.log");
    std::fs::write(&copy, &before).unwrap();
    audit_verify(&copy);
    assert_all_logged(&released_ok, &before);

    // A checkpoint cannot be recorded either (`<log>.checkpoints`): 503 too, not a 500.
    let reply = confidant_e2e::https::request(
        v.node.admin_addr,
        &v.node.tls_pem(),
        "GET",
        confidant_wire::routes::verifier::AUDIT_CHECKPOINT,
        Some(&v.node.token("auditor")),
        None,
    )
    .await;
    assert_eq!(
        reply.status,
        503,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(reply.json()["error"]["code"], "audit_unavailable");
    assert_eq!(reply.retry_after.as_deref(), Some("2"));

    std::fs::remove_file(&filler).unwrap();
    for _ in 0..3 {
        match driver.attest().await {
            Outcome::Released { result_digest } => released_ok.push(hex::encode(result_digest)),
            o => panic!("after space returned: {o:?}"),
        }
    }
    let log = std::fs::read(&log_path).unwrap();
    assert_all_logged(&released_ok, &log);
    std::fs::write(&copy, &log).unwrap();
    let report = audit_verify(&copy);
    // Only the releases are in the log: a decision that could not be written was not answered.
    assert_eq!(report["entries"], released_ok.len(), "{report}");
    assert_eq!(report["accepted"], released_ok.len(), "{report}");
}

fn unavailable() -> Outcome {
    Outcome::Refused {
        status: 503,
        code: "audit_unavailable".into(),
    }
}
