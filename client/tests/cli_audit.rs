//! `confidant audit verify | export`, the real binary, on a log written through
//! `confidant_attestation::audit` with signed checkpoints: an intact log passes; a changed, removed
//! or reordered entry fails naming the check and the entry's sequence number.

// Helpers outside #[test] functions unwrap too: a failed fixture is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Output;

use confidant_attestation::audit::{
    AuditEvent, Checkpoint, CheckpointSigner, Decision, LogState, Tee, encode_record,
};
use confidant_testkit::cli::{Cli, arg, stderr};
use ring::rand::SystemRandom;

const CLI: Cli = Cli::new(env!("CARGO_BIN_EXE_confidant"));

const ENTRIES: u64 = 8;

fn event(i: u64) -> AuditEvent {
    let accept = i % 3 != 2;
    AuditEvent {
        time: 1_700_000_000 + i,
        decision: if accept {
            Decision::Accept
        } else {
            Decision::Refuse
        },
        reason: (!accept).then(|| "measurement_not_allowed".to_owned()),
        nonce: [i as u8; 32],
        evidence_digest: [0xa0 | i as u8; 32],
        tee: Some(if i.is_multiple_of(2) {
            Tee::SevSnp
        } else {
            Tee::Tpm
        }),
        measurement: Some(vec![0x11; 48]),
        tcb: Some(0x7300_0000_0000_0803),
        policy_id: Some("default".to_owned()),
        policy_version: Some(3),
        model_id: Some("smollm2-135m".to_owned()),
        result_digest: accept.then_some([0xbb; 32]),
        key_id: accept.then(|| "smollm2/v1".to_owned()),
        dev: false,
    }
}

/// A log of [`ENTRIES`] entries, its checkpoints after 5 and 8 entries (back to back in one file,
/// as the verifier's `<log>.checkpoints`), and the signer's public key.
struct Fixture {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    log: PathBuf,
    /// Each record with its newline.
    records: Vec<Vec<u8>>,
    checkpoints: PathBuf,
    /// The public key as PEM SPKI.
    key_pem: PathBuf,
    signer: CheckpointSigner,
}

fn checkpoint_at(state: &LogState, signer: &CheckpointSigner, time: u64) -> Vec<u8> {
    let cp = Checkpoint {
        size: state.len(),
        root: state.tree().root(state.len()).unwrap(),
        time,
    };
    signer.sign(&cp, &SystemRandom::new()).unwrap()
}

fn spki_pem(point: &[u8]) -> String {
    // SubjectPublicKeyInfo { id-ecPublicKey, prime256v1 } header for a 65-byte point.
    let mut der = hex::decode("3059301306072a8648ce3d020106082a8648ce3d030107034200").unwrap();
    der.extend_from_slice(point);
    pem::encode(&pem::Pem::new("PUBLIC KEY", der))
}

fn fixture() -> Fixture {
    let rng = SystemRandom::new();
    let signer =
        CheckpointSigner::from_pkcs8(&CheckpointSigner::generate_pkcs8(&rng).unwrap(), &rng)
            .unwrap();
    let mut state = LogState::new();
    let mut records = Vec::new();
    let mut checkpoints = Vec::new();
    for i in 0..ENTRIES {
        let entry = event(i).into_entry(i, state.head());
        let record = encode_record(&entry).unwrap();
        state.push_record(&record[..record.len() - 1]).unwrap();
        records.push(record);
        if state.len() == 5 || state.len() == ENTRIES {
            checkpoints.extend(checkpoint_at(&state, &signer, 1_700_000_100 + i));
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let log = path.join("audit.log");
    std::fs::write(&log, records.concat()).unwrap();
    let cps = path.join("audit.log.checkpoints");
    std::fs::write(&cps, checkpoints).unwrap();
    let key_pem = path.join("checkpoint-key.pem");
    std::fs::write(&key_pem, spki_pem(signer.public_key())).unwrap();
    Fixture {
        _dir: dir,
        dir: path,
        log,
        records,
        checkpoints: cps,
        key_pem,
        signer,
    }
}

impl Fixture {
    /// Writes a variant of the log built from `records`.
    fn write_log(&self, name: &str, records: &[Vec<u8>]) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, records.concat()).unwrap();
        path
    }

    fn verify(&self, log: &Path, with_checkpoints: bool) -> Output {
        let mut args = vec!["audit", "verify", "--log", arg(log)];
        if with_checkpoints {
            args.extend_from_slice(&[
                "--checkpoint",
                arg(&self.checkpoints),
                "--key",
                arg(&self.key_pem),
            ]);
        }
        CLI.run(&args)
    }
}

/// Asserts a non-zero exit whose stdout JSON names `check` and `seq`, and whose stderr names the
/// check and `entry <seq>`.
fn fails(out: &Output, check: &str, seq: Option<u64>) {
    assert!(!out.status.success(), "expected failure ({check})");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["valid"], false);
    assert_eq!(v["check"], check, "{v}");
    assert_eq!(v["seq"].as_u64(), seq, "{v}");
    let err = stderr(out);
    assert!(err.contains(&format!("`{check}`")), "stderr: {err}");
    if let Some(seq) = seq {
        assert!(err.contains(&format!("entry {seq}")), "stderr: {err}");
    }
}

#[test]
fn intact_log_verifies_with_and_without_checkpoints() {
    let f = fixture();
    let out = f.verify(&f.log, true);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["valid"], true);
    assert_eq!(v["entries"], ENTRIES);
    assert_eq!(v["checkpoints_verified"], 2);
    assert_eq!(v["signed_size"], ENTRIES);
    assert_eq!(v["unsigned_entries"], 0);
    assert_eq!(v["refused"], 2);
    assert_eq!(v["accepted"], ENTRIES - 2);

    // The key also as the hex SEC1 point (`GET /v1/keys` → `audit_checkpoint_key`) and as that
    // JSON document (here without a result key).
    let hex_key = f.dir.join("key.hex");
    std::fs::write(
        &hex_key,
        format!("{}\n", hex::encode(f.signer.public_key())),
    )
    .unwrap();
    let json_key = f.dir.join("keys.json");
    let body = confidant_wire::admin::PublicKeys {
        keys: Vec::new(),
        cose_keys: Vec::new(),
        audit_checkpoint_key: hex::encode(f.signer.public_key()),
    };
    std::fs::write(&json_key, serde_json::to_string(&body).unwrap()).unwrap();
    for key in [&hex_key, &json_key] {
        let out = CLI.run(&[
            "audit",
            "verify",
            "--log",
            arg(&f.log),
            "--checkpoint",
            arg(&f.checkpoints),
            "--key",
            arg(key),
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
    }

    // Without checkpoints: passes, with a warning that nothing is signed.
    let out = f.verify(&f.log, false);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["checkpoints_verified"], 0);
    assert_eq!(v["unsigned_entries"], ENTRIES);
    assert!(stderr(&out).contains("warning"));

    // --checkpoint without --key is a usage error.
    let out = CLI.run(&[
        "audit",
        "verify",
        "--log",
        arg(&f.log),
        "--checkpoint",
        arg(&f.checkpoints),
    ]);
    assert!(!out.status.success());
}

/// Changes one hex digit of `field` in a record, keeping it canonical JSON.
fn change_hex_digit(record: &[u8], field: &str) -> Vec<u8> {
    let text = String::from_utf8(record.to_vec()).unwrap();
    let at = text.find(&format!("\"{field}\":\"")).unwrap() + field.len() + 4;
    let mut bytes = record.to_vec();
    bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
    bytes
}

#[test]
fn one_changed_byte_is_reported_with_its_seq() {
    let f = fixture();
    for with_checkpoints in [false, true] {
        // A still-canonical change (one hex digit of the evidence digest) breaks the chain.
        let mut records = f.records.clone();
        records[3] = change_hex_digit(&records[3], "evidence_digest");
        let log = f.write_log("changed.log", &records);
        fails(&f.verify(&log, with_checkpoints), "hash-chain", Some(3));

        // A change that breaks the canonical form is reported at the entry itself.
        let mut records = f.records.clone();
        let at = records[4].iter().position(|&b| b == b'"').unwrap() + 1;
        records[4][at] = b'S';
        let log = f.write_log("malformed.log", &records);
        fails(&f.verify(&log, with_checkpoints), "entry-format", Some(4));
    }

    // The last entry has no successor to break: only a signed checkpoint catches its change.
    let mut records = f.records.clone();
    let last = records.len() - 1;
    records[last] = change_hex_digit(&records[last], "nonce");
    let log = f.write_log("last-changed.log", &records);
    fails(&f.verify(&log, true), "checkpoint-root", None);
    assert!(f.verify(&log, false).status.success());
}

#[test]
fn removed_entry_is_reported_with_its_seq() {
    let f = fixture();
    let mut records = f.records.clone();
    records.remove(5);
    let log = f.write_log("removed.log", &records);
    for with_checkpoints in [false, true] {
        let out = f.verify(&log, with_checkpoints);
        fails(&out, "sequence", Some(5));
        assert!(stderr(&out).contains("entry 5 was removed"));
    }

    // Entries cut from the end: only a checkpoint beyond the log notices.
    let log = f.write_log("cut.log", &f.records[..6]);
    fails(&f.verify(&log, true), "checkpoint-size", Some(6));
}

#[test]
fn reordered_entries_are_reported_with_their_seq() {
    let f = fixture();
    let mut records = f.records.clone();
    records.swap(2, 3);
    let log = f.write_log("reordered.log", &records);
    for with_checkpoints in [false, true] {
        let out = f.verify(&log, with_checkpoints);
        fails(&out, "order", Some(2));
        assert!(stderr(&out).contains("entry 3 stands where entry 2 belongs"));
    }
}

#[test]
fn bad_checkpoints_fail() {
    let f = fixture();
    // Signed by another key.
    let rng = SystemRandom::new();
    let other =
        CheckpointSigner::from_pkcs8(&CheckpointSigner::generate_pkcs8(&rng).unwrap(), &rng)
            .unwrap();
    let other_key = f.dir.join("other.pem");
    std::fs::write(&other_key, spki_pem(other.public_key())).unwrap();
    let out = CLI.run(&[
        "audit",
        "verify",
        "--log",
        arg(&f.log),
        "--checkpoint",
        arg(&f.checkpoints),
        "--key",
        arg(&other_key),
    ]);
    fails(&out, "checkpoint-signature", None);

    // A checkpoint with a flipped digit in its root.
    let mut cps = std::fs::read(&f.checkpoints).unwrap();
    let root_line = cps.iter().position(|&b| b == b'\n').unwrap() + 1;
    let root_at = root_line + cps[root_line..].iter().position(|&b| b == b'\n').unwrap() + 1;
    cps[root_at] = if cps[root_at] == b'0' { b'1' } else { b'0' };
    let bad = f.dir.join("bad.checkpoints");
    std::fs::write(&bad, cps).unwrap();
    let out = CLI.run(&[
        "audit",
        "verify",
        "--log",
        arg(&f.log),
        "--checkpoint",
        arg(&bad),
        "--key",
        arg(&f.key_pem),
    ]);
    fails(&out, "checkpoint-signature", None);

    // A torn final record.
    let mut records = f.records.clone();
    let last = records.len() - 1;
    records[last].pop();
    let log = f.write_log("torn.log", &records);
    fails(&f.verify(&log, false), "torn-tail", None);
}

#[test]
fn export_writes_json_lines() {
    let f = fixture();
    let out_path = f.dir.join("siem.jsonl");
    let out = CLI.run(&[
        "audit",
        "export",
        "--log",
        arg(&f.log),
        "--out",
        arg(&out_path),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(&out_path).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len() as u64, ENTRIES);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["seq"], i as u64);
        assert_eq!(line["source"], "confidant-verifier-audit");
        assert_eq!(line["leaf_hash"].as_str().unwrap().len(), 64);
    }
    assert_eq!(lines[2]["decision"], "refuse");
    assert_eq!(lines[2]["reason"], "measurement_not_allowed");

    // To standard output, the same lines.
    let out = CLI.run(&["audit", "export", "--log", arg(&f.log)]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap(), text);

    // A broken log is not exported.
    let mut records = f.records.clone();
    records.swap(4, 5);
    let log = f.write_log("reordered.log", &records);
    let out = CLI.run(&["audit", "export", "--log", arg(&log)]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    assert!(stderr(&out).contains("`order`"));
}
