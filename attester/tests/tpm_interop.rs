//! Interop with tpm2-tools: `tpm2_checkquote` accepts a quote made by our attester, written out in
//! the tools' formats by `confidant_attestation::tpm::tools`.
#![allow(clippy::unwrap_used, reason = "tests panic on unexpected failures")]

use std::process::Command;

use confidant_attestation::tpm::tools;
use confidant_attester::tpm::{AkAlgorithm, TpmAttester};
use confidant_testkit::swtpm::Swtpm;

fn checkquote(alg: AkAlgorithm) {
    let swtpm = Swtpm::start().unwrap();
    let mut att = TpmAttester::create(&swtpm.tcti(), alg).unwrap();
    att.extend_pcr(10, b"interop").unwrap();
    let nonce = [0x5c; 32];
    let ev = att.quote(&nonce, &[0, 1, 10, 16]).unwrap();
    let files = tools::write_quote_files(&ev).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    std::fs::write(p("ak.pem"), &files.ak_pem).unwrap();
    std::fs::write(p("msg"), &files.message).unwrap();
    std::fs::write(p("sig"), &files.signature).unwrap();
    std::fs::write(p("pcrs"), &files.pcrs).unwrap();
    let run = |nonce_hex: &str, pcrs: &str| {
        Command::new("tpm2_checkquote")
            .env("TPM2TOOLS_TCTI", swtpm.tcti())
            .arg("-u")
            .arg(p("ak.pem"))
            .arg("-m")
            .arg(p("msg"))
            .arg("-s")
            .arg(p("sig"))
            .arg("-f")
            .arg(p(pcrs))
            .args(["-g", "sha256", "-q", nonce_hex])
            .output()
            .unwrap()
    };
    let out = run(&hex::encode(nonce), "pcrs");
    assert!(
        out.status.success(),
        "tpm2_checkquote refused our quote: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The peer tool refuses what we refuse: another nonce, another PCR value.
    assert!(!run(&hex::encode([0x5d; 32]), "pcrs").status.success());
    let mut pcrs = ev.pcrs.clone();
    pcrs.insert(10, serde_bytes::ByteBuf::from(vec![0; 32]));
    let mut ev_bad = ev.clone();
    ev_bad.pcrs = pcrs;
    std::fs::write(
        p("pcrs-bad"),
        tools::write_quote_files(&ev_bad).unwrap().pcrs,
    )
    .unwrap();
    assert!(!run(&hex::encode(nonce), "pcrs-bad").status.success());
}

#[test]
fn tpm2_checkquote_accepts_our_ecc_quote() {
    checkquote(AkAlgorithm::EccP256);
}

#[test]
fn tpm2_checkquote_accepts_our_rsa_quote() {
    checkquote(AkAlgorithm::Rsa2048);
}
