//! Interop: a quote made by tpm2-tools (`tpm2_createek`, `tpm2_createak -f pem`, `tpm2_quote`) on a
//! private swtpm verifies with `tools` and `verify_quote`, and binds.
#![allow(clippy::unwrap_used, reason = "tests panic on unexpected failures")]

use std::path::Path;
use std::process::Command;

use confidant_attestation::binding::{Binding, Session};
use confidant_attestation::digest::Blake3Digest;
use confidant_attestation::evidence::{Evidence, ReceivedEvidence};
use confidant_attestation::time::UnixTime;
use confidant_attestation::tpm::{TpmError, TpmTrustAnchors, tools, verify_quote};
use confidant_attestation::verify::{BindingError, TrustAnchors, verify_evidence};
use confidant_testkit::swtpm::Swtpm;

fn tool(swtpm: &Swtpm, dir: &Path, args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .current_dir(dir)
        .env("TPM2TOOLS_TCTI", swtpm.tcti())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // swtpm has no resource manager: free the transient objects and sessions each tool left.
    for flag in ["-t", "-s"] {
        let _ = Command::new("tpm2_flushcontext")
            .arg(flag)
            .env("TPM2TOOLS_TCTI", swtpm.tcti())
            .output();
    }
}

fn session(nonce: [u8; 32]) -> Session {
    Session {
        nonce,
        tls_spki_der: b"spki".to_vec(),
        exporter: [8; 32],
        model_digest: Blake3Digest::from_bytes([7; 32]),
    }
}

fn binding() -> Binding<Session> {
    Binding::compute(session([9; 32]))
}

fn tools_quote(ak_alg: &[&str]) {
    let swtpm = Swtpm::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let b = binding();
    let q = hex::encode(b.tpm_qualifying_data());
    tool(
        &swtpm,
        d,
        &["tpm2_createek", "-c", "ek.ctx", "-G", "rsa", "-u", "ek.pub"],
    );
    let mut createak = vec!["tpm2_createak", "-C", "ek.ctx", "-c", "ak.ctx"];
    createak.extend_from_slice(ak_alg);
    createak.extend_from_slice(&["-u", "ak.pem", "-f", "pem", "-n", "ak.name"]);
    tool(&swtpm, d, &createak);
    tool(
        &swtpm,
        d,
        &[
            "tpm2_readpublic",
            "-c",
            "ak.ctx",
            "-o",
            "ak.tss",
            "-f",
            "tss",
        ],
    );
    let extend = format!("16:sha256={}", "ab".repeat(32));
    tool(&swtpm, d, &["tpm2_pcrextend", &extend]);
    let list = "sha256:0,1,2,16";
    tool(
        &swtpm,
        d,
        &[
            "tpm2_quote",
            "-c",
            "ak.ctx",
            "-l",
            list,
            "-q",
            &q,
            "-m",
            "msg",
            "-s",
            "sig",
            "-o",
            "pcrs",
            "-g",
            "sha256",
        ],
    );
    tool(
        &swtpm,
        d,
        &[
            "tpm2_quote",
            "-c",
            "ak.ctx",
            "-l",
            list,
            "-q",
            &q,
            "-m",
            "msg2",
            "-s",
            "sig2",
            "-o",
            "pcrs2",
            "-g",
            "sha256",
            "-F",
            "values",
        ],
    );
    let read = |n: &str| std::fs::read(d.join(n)).unwrap();

    // PEM AK, serialized PCRs (the defaults).
    let t = tools::read_quote_files(
        &read("msg"),
        &read("sig"),
        &read("ak.pem"),
        &read("pcrs"),
        list,
    )
    .unwrap();
    let mut anchors = TrustAnchors::default();
    let pem = String::from_utf8(read("ak.pem")).unwrap();
    let fp = anchors.tpm.enroll_ak_pem(&pem).unwrap();
    assert_eq!(
        fp,
        confidant_attestation::tpm::public::spki_fingerprint(&t.ak_spki_der)
    );
    let cbor = Evidence::Tpm(t.evidence.clone()).to_cbor();
    let verified = || {
        let received = ReceivedEvidence::decode(&cbor).unwrap();
        verify_evidence(received, &anchors, UnixTime::from_secs(0)).unwrap()
    };
    verified().bind(b).unwrap();
    assert_eq!(
        verified().bind(Binding::compute(session([0; 32]))).err(),
        Some(BindingError::Mismatch)
    );

    // TPM2B_PUBLIC AK (tpm2_readpublic -f tss), raw PCR values (-F values); the AK enrolled by
    // its TPMT_PUBLIC is the same key.
    let t2 = tools::read_quote_files(
        &read("msg2"),
        &read("sig2"),
        &read("ak.tss"),
        &read("pcrs2"),
        list,
    )
    .unwrap();
    assert_eq!(t2.ak_spki_der, t.ak_spki_der);
    let mut pinned = TpmTrustAnchors::default();
    pinned.enroll_ak_public(&t2.evidence.ak_public).unwrap();
    let v = verify_quote(&t2.evidence, &pinned).unwrap();
    assert_eq!(v.pcrs().len(), 4);
    verify_quote(&t2.evidence, &anchors.tpm).unwrap();

    // Tampering with the tools' files.
    let mut bad = t.evidence.clone();
    bad.quote[45] ^= 1;
    assert_eq!(
        verify_quote(&bad, &anchors.tpm),
        Err(TpmError::BadSignature)
    );
    let mut bad = t.evidence.clone();
    bad.pcrs.insert(2, serde_bytes::ByteBuf::from(vec![1; 32]));
    assert_eq!(
        verify_quote(&bad, &anchors.tpm),
        Err(TpmError::PcrDigestMismatch)
    );
    assert!(
        tools::read_quote_files(
            &read("msg"),
            &read("sig"),
            &read("ak.pem"),
            &read("pcrs"),
            "sha256:0,1,2"
        )
        .is_err()
    );
}

#[test]
fn tpm2_tools_ecc_quote_verifies() {
    tools_quote(&["-G", "ecc", "-g", "sha256", "-s", "ecdsa"]);
}

#[test]
fn tpm2_tools_rsa_quote_verifies() {
    tools_quote(&["-G", "rsa", "-g", "sha256", "-s", "rsassa"]);
}
