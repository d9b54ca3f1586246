//! `confidant evidence verify`, the real binary: every real SEV-SNP report in the shared test data
//! verifies and prints its PROVENANCE.md fields, tampered copies fail naming the check, and a live
//! tpm2-tools quote from a private swtpm verifies (and fails with a wrong nonce or a flipped bit).

// Helpers outside #[test] functions unwrap too: a failed fixture is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use confidant_testkit::cli::{Cli, arg, fails_with, ok_json, stderr};
use confidant_testkit::swtpm::Swtpm;
use confidant_testkit::testdata;

const CLI: Cli = Cli::new(env!("CARGO_BIN_EXE_confidant"));

/// When every real report's certificate chain is valid: the real reports are checked as of this
/// time (`--at`), not the machine's clock, under which certificates expire.
const AT: &str = "2025-06-01T00:00:00Z";

/// One real report and the fields PROVENANCE.md lists for it.
struct Report {
    name: &'static str,
    /// Signing certificate file in `snp/<name>/`.
    cert: &'static str,
    product: &'static str,
    version: u64,
    vmpl: u64,
    /// (bootloader, tee, snp, microcode)
    tcb: [u64; 4],
    measurement: &'static str,
    report_data: &'static str,
    chip_id: &'static str,
    signing_key: &'static str,
}

const REPORTS: [Report; 5] = [
    Report {
        name: "virtee-milan",
        cert: "vcek.der",
        product: "milan",
        version: 2,
        vmpl: 0,
        tcb: [3, 0, 8, 115],
        measurement: "7a1e5c266c0108dbc9bb94fa926951320940915d0aafb42464bd88b579ea158d3e1a0dc39b2c60bd95b9c480cd81841f",
        report_data: "d447b55d197491bfe15cf298f9de9986b7a7c4be2468b4f6e2d53b71d7c645810b0f2cdfca0040433be063fc1a8293f0f3f8dae7b79fecb3d1cd82bd6a93ebfd",
        chip_id: "d49554ec717f4e5b0fe6b143bcf0405bd7ae304727edf46603f2a76aef6a3abc15d7af38db757039029f0efacfd08e244324884738c72b082e2f87a44d541eb6",
        signing_key: "vcek",
    },
    Report {
        name: "trustee-milan",
        cert: "vcek.der",
        product: "milan",
        version: 2,
        vmpl: 0,
        tcb: [3, 0, 8, 115],
        measurement: "a1f3930413247bb38cfc171579ea3c12d5fe4901f0c792f63fd75d98f1ef827c23500644e0e692e6be917f9050d3d38c",
        report_data: "ec6c52d7533cc2c4f45be7849cf112ab82b2009fe7bd43e71ed08c14400ad7e20000000000000000000000000000000000000000000000000000000000000000",
        chip_id: "c38427a30d4c7af9d96f7a15b97269825a64cb76a2352ffd5d18115d89ad473f8e8c0bcd9a5d9286612bad4aadfb4426205a3b9e4fea82301135a170e477524e",
        signing_key: "vcek",
    },
    Report {
        name: "trustee-vlek",
        cert: "vlek.der",
        product: "milan",
        version: 3,
        vmpl: 1,
        tcb: [4, 0, 24, 217],
        measurement: "8922ebbdd00ec2c541f36a6e7a82a8773a7accb451ed67bc94e740dbe92c93c4e8c9af857f5ceeb5a493df2a570d7bf0",
        report_data: "819770b7e6ea6df8dd8fd4dd146b073c0bf4f3ce5b0977ecac486e3a05ed1bd54e2a7ac1f5d1ca02e7d7d5ef9f73b8574fd9359e3a480d741a4478e8a7bc27ca",
        chip_id: "00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        signing_key: "vlek",
    },
    Report {
        name: "azure-milan",
        cert: "vcek-and-chain.pem",
        product: "milan",
        version: 2,
        vmpl: 0,
        tcb: [3, 0, 8, 115],
        measurement: "9ac48fcac8a2d88aeeff8d427ad4f2be0e3917c748a18bdf52cc317e7fe20308b459d5ef1a12e0c22944eb386d17c315",
        report_data: "b3fbad6514c83caeb0380882145e49f794229ef37c421b91fc47ff93556bafac0000000000000000000000000000000000000000000000000000000000000000",
        chip_id: "19752a447db501a32ade46428a46e92639bd3515dbb45e2e67bbcb0934ffcf1f3e3c004ccb4a99c9fa7e4ffb09da6b324ac58acedaf679f24ba7db5f838c6cca",
        signing_key: "vcek",
    },
    Report {
        name: "azure-genoa",
        cert: "vcek.pem",
        product: "genoa",
        version: 3,
        vmpl: 0,
        tcb: [10, 0, 23, 84],
        measurement: "f57dc09a507c6ecd82369bffb600f0003792f4d99bc26e985ec0c266fc34faf3706faf814c9e61065768a6ff917c89ae",
        report_data: "b581f12e29a2d7d64e5e0b738d563879a78b51c644d0fa0cce02b48699f6bf5f0000000000000000000000000000000000000000000000000000000000000000",
        chip_id: "0506ffba875e939c2729d20c74eb72b4c5ba6bf7ea1faaa640141f12c6d64782fb487f68ce69dcd021e914cc0d9244327bc121f0242d6470903ad1d4aaea4ad1",
        signing_key: "vcek",
    },
];

fn report_path(r: &Report) -> PathBuf {
    testdata().join("snp").join(r.name).join("report.bin")
}

fn cert_path(r: &Report) -> PathBuf {
    testdata().join("snp").join(r.name).join(r.cert)
}

/// PEM blocks of one of AMD's `<product>_ask_ark_asvk.pem` files, in file order (ASK, ARK, ASVK).
fn amd_blocks(product: &str) -> Vec<pem::Pem> {
    let path = testdata().join(format!("amd/{product}_ask_ark_asvk.pem"));
    let blocks = pem::parse_many(std::fs::read(path).unwrap()).unwrap();
    assert_eq!(blocks.len(), 3);
    blocks
}

/// A two-certificate chain file (signer's issuer, then ARK) for `r`, written into `dir`: VCEKs
/// chain through the ASK, VLEKs through the ASVK.
fn two_cert_chain(r: &Report, dir: &Path) -> PathBuf {
    let blocks = amd_blocks(r.product);
    let (issuer, ark) = match r.signing_key {
        "vlek" => (&blocks[2], &blocks[1]),
        _ => (&blocks[0], &blocks[1]),
    };
    let path = dir.join(format!("{}-chain.pem", r.name));
    std::fs::write(&path, pem::encode_many(&[issuer.clone(), ark.clone()])).unwrap();
    path
}

fn check_claims(r: &Report, out: &Output) {
    let v = ok_json(out);
    assert_eq!(v["verified"], true, "{}", r.name);
    let c = &v["claims"];
    assert_eq!(c["tee"], "sev-snp", "{}", r.name);
    assert_eq!(c["measurement"], r.measurement, "{}", r.name);
    assert_eq!(c["report_data"], r.report_data, "{}", r.name);
    assert_eq!(c["chip_id"], r.chip_id, "{}", r.name);
    assert_eq!(c["product"], r.product, "{}", r.name);
    assert_eq!(c["version"], r.version, "{}", r.name);
    assert_eq!(c["vmpl"], r.vmpl, "{}", r.name);
    assert_eq!(c["signing_key"], r.signing_key, "{}", r.name);
    assert_eq!(c["dev"], false, "{}", r.name);
    let tcb = &c["reported_tcb"];
    let got = [
        tcb["bootloader"].as_u64().unwrap(),
        tcb["tee"].as_u64().unwrap(),
        tcb["snp"].as_u64().unwrap(),
        tcb["microcode"].as_u64().unwrap(),
    ];
    assert_eq!(got, r.tcb, "{}", r.name);
}

#[test]
fn every_real_report_verifies_with_pinned_roots() {
    for r in &REPORTS {
        let out = CLI.run(&[
            "evidence",
            "verify",
            "--at",
            AT,
            "--snp-report",
            arg(&report_path(r)),
            "--vcek",
            arg(&cert_path(r)),
        ]);
        check_claims(r, &out);
    }
}

#[test]
fn every_real_report_verifies_with_a_supplied_chain() {
    let dir = tempfile::tempdir().unwrap();
    for r in &REPORTS {
        let chain = two_cert_chain(r, dir.path());
        let out = CLI.run(&[
            "evidence",
            "verify",
            "--at",
            AT,
            "--snp-report",
            arg(&report_path(r)),
            "--vcek",
            arg(&cert_path(r)),
            "--chain",
            arg(&chain),
        ]);
        check_claims(r, &out);
    }
    // AMD's own three-certificate files (ASK, ARK, ASVK), as PROVENANCE.md names them.
    for r in &REPORTS {
        let shipped = testdata().join(format!("amd/{}_ask_ark_asvk.pem", r.product));
        let out = CLI.run(&[
            "evidence",
            "verify",
            "--at",
            AT,
            "--snp-report",
            arg(&report_path(r)),
            "--vcek",
            arg(&cert_path(r)),
            "--chain",
            arg(&shipped),
        ]);
        check_claims(r, &out);
    }
    // The chain file exactly as virtee ships it (ASK, ARK).
    let r = &REPORTS[0];
    let shipped = testdata().join("snp/virtee-milan/cert_chain.pem");
    let out = CLI.run(&[
        "evidence",
        "verify",
        "--at",
        AT,
        "--snp-report",
        arg(&report_path(r)),
        "--vcek",
        arg(&cert_path(r)),
        "--chain",
        arg(&shipped),
    ]);
    check_claims(r, &out);
}

#[test]
fn report_data_must_match_nonce_when_given() {
    let r = &REPORTS[0];
    let args = |nonce: &str| {
        CLI.run(&[
            "evidence",
            "verify",
            "--at",
            AT,
            "--snp-report",
            arg(&report_path(r)),
            "--vcek",
            arg(&cert_path(r)),
            "--nonce",
            nonce,
        ])
    };
    check_claims(r, &args(r.report_data));
    let mut wrong = r.report_data.to_owned();
    wrong.replace_range(0..2, "00");
    fails_with(&args(&wrong), "binding");
}

/// Certificate validity is checked at `--at`: the VLEK report verifies as of June 2025 and is
/// refused as of 2026 and 1990 (its VLEK is outside its validity period), naming the check; the
/// appraisal output says when it verified.
#[test]
fn validity_is_checked_at_the_time_given() {
    let r = &REPORTS[2];
    assert_eq!(r.signing_key, "vlek");
    let at = |when: &str| {
        CLI.run(&[
            "evidence",
            "verify",
            "--at",
            when,
            "--snp-report",
            arg(&report_path(r)),
            "--vcek",
            arg(&cert_path(r)),
        ])
    };
    let ok = at(AT);
    check_claims(r, &ok);
    assert_eq!(ok_json(&ok)["at"], 1_748_736_000u64);
    assert_eq!(ok_json(&at("1748736000"))["at"], 1_748_736_000u64);
    for when in ["2026-01-01T00:00:00Z", "631152000"] {
        fails_with(&at(when), "certificate is valid from");
    }
    let bad = at("June 2025");
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("--at"), "{}", stderr(&bad));
}

/// Flips one bit of `r`'s report at `offset` and runs the verifier on the copy.
fn verify_flipped(r: &Report, dir: &Path, offset: usize) -> Output {
    let mut bytes = std::fs::read(report_path(r)).unwrap();
    bytes[offset] ^= 0x01;
    let path = dir.join(format!("{}-{offset:#x}.bin", r.name));
    std::fs::write(&path, bytes).unwrap();
    CLI.run(&[
        "evidence",
        "verify",
        "--at",
        AT,
        "--snp-report",
        arg(&path),
        "--vcek",
        arg(&cert_path(r)),
    ])
}

#[test]
fn flipped_bits_in_signed_region_and_signature_fail() {
    let dir = tempfile::tempdir().unwrap();
    // family_id (0x10), report_data (0x50), measurement (0x90), host_data (0xC0), r (0x2A0),
    // s (0x2E8).
    for r in &REPORTS {
        for offset in [0x10, 0x50, 0x90, 0xC0, 0x2A0, 0x2E8] {
            let out = verify_flipped(r, dir.path(), offset);
            fails_with(&out, "signature does not verify");
        }
        // chip_id (0x1A0): the VCEK's hwID check may come first; either check refuses it.
        let out = verify_flipped(r, dir.path(), 0x1A0);
        assert!(!out.status.success(), "{}", r.name);
        let err = stderr(&out);
        assert!(
            err.contains("chip_id") || err.contains("signature does not verify"),
            "{}: {err}",
            r.name
        );
    }
    // Reserved (must-be-zero) bytes of the signature field are checked, not ignored.
    let out = verify_flipped(&REPORTS[0], dir.path(), 0x2E7);
    fails_with(&out, "reserved byte");
}

#[test]
fn another_chips_vcek_fails() {
    // virtee-milan's report with trustee-milan's VCEK (same product, different chip).
    let out = CLI.run(&[
        "evidence",
        "verify",
        "--at",
        AT,
        "--snp-report",
        arg(&report_path(&REPORTS[0])),
        "--vcek",
        arg(&cert_path(&REPORTS[1])),
    ]);
    fails_with(&out, "chip_id");
    // azure-milan's report with virtee-milan's VCEK.
    let out = CLI.run(&[
        "evidence",
        "verify",
        "--at",
        AT,
        "--snp-report",
        arg(&report_path(&REPORTS[3])),
        "--vcek",
        arg(&cert_path(&REPORTS[0])),
    ]);
    fails_with(&out, "chip_id");
}

#[test]
fn another_products_chain_fails() {
    let dir = tempfile::tempdir().unwrap();
    for (report, product) in [
        (&REPORTS[0], "genoa"),
        (&REPORTS[0], "turin"),
        (&REPORTS[4], "milan"),
    ] {
        let path = dir.path().join(format!("{}-{product}.pem", report.name));
        let mut pems = Vec::new();
        for file in ["ask", "ark"] {
            let f = testdata().join(format!("amd/{product}_{file}.pem"));
            pems.push(pem::parse(std::fs::read(f).unwrap()).unwrap());
        }
        std::fs::write(&path, pem::encode_many(&pems)).unwrap();
        let out = CLI.run(&[
            "evidence",
            "verify",
            "--at",
            AT,
            "--snp-report",
            arg(&report_path(report)),
            "--vcek",
            arg(&cert_path(report)),
            "--chain",
            arg(&path),
        ]);
        fails_with(&out, "the chain is");
    }
    // Genoa's three-certificate file under a Milan report.
    let out = CLI.run(&[
        "evidence",
        "verify",
        "--at",
        AT,
        "--snp-report",
        arg(&report_path(&REPORTS[1])),
        "--vcek",
        arg(&cert_path(&REPORTS[1])),
        "--chain",
        arg(&testdata().join("amd/genoa_ask_ark_asvk.pem")),
    ]);
    fails_with(&out, "the chain is");
}

// --- TPM: a live quote by tpm2-tools -----------------------------------------------------------

/// Runs one tpm2-tools command against `tpm`, then flushes transient objects and sessions (swtpm
/// has no resource manager).
fn tpm2(tpm: &Swtpm, dir: &Path, args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .current_dir(dir)
        .env("TPM2TOOLS_TCTI", tpm.tcti())
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    for flag in ["-t", "-s"] {
        let _ = Command::new("tpm2_flushcontext")
            .arg(flag)
            .env("TPM2TOOLS_TCTI", tpm.tcti())
            .output();
    }
}

#[test]
fn live_tpm2_tools_quote_verifies_and_tampering_fails() {
    let tpm = Swtpm::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let nonce: [u8; 32] = rand::random();
    let nonce_hex = hex::encode(nonce);
    let list = "sha256:0,1,7";
    tpm2(
        &tpm,
        d,
        &["tpm2_createek", "-c", "ek.ctx", "-G", "rsa", "-u", "ek.pub"],
    );
    tpm2(
        &tpm,
        d,
        &[
            "tpm2_createak",
            "-C",
            "ek.ctx",
            "-c",
            "ak.ctx",
            "-G",
            "ecc",
            "-s",
            "ecdsa",
            "-g",
            "sha256",
            "-u",
            "ak.pem",
            "-f",
            "pem",
            "-n",
            "ak.name",
        ],
    );
    let extend = format!("7:sha256={}", "5a".repeat(32));
    tpm2(&tpm, d, &["tpm2_pcrextend", &extend]);
    tpm2(
        &tpm,
        d,
        &[
            "tpm2_quote",
            "-c",
            "ak.ctx",
            "-l",
            list,
            "-q",
            &nonce_hex,
            "-m",
            "quote.msg",
            "-s",
            "quote.sig",
            "-o",
            "quote.pcrs",
            "-g",
            "sha256",
        ],
    );
    let verify = |message: &Path, nonce: &str| {
        CLI.run(&[
            "evidence",
            "verify",
            "--tpm-message",
            arg(message),
            "--tpm-signature",
            arg(&d.join("quote.sig")),
            "--tpm-ak",
            arg(&d.join("ak.pem")),
            "--tpm-pcrs",
            arg(&d.join("quote.pcrs")),
            "--tpm-pcr-list",
            list,
            "--nonce",
            nonce,
        ])
    };
    let v = ok_json(&verify(&d.join("quote.msg"), &nonce_hex));
    assert_eq!(v["verified"], true);
    assert_eq!(v["claims"]["tee"], "tpm");

    // A nonce other than the quote's qualifying data.
    let mut wrong = nonce;
    wrong[0] ^= 1;
    fails_with(
        &verify(&d.join("quote.msg"), &hex::encode(wrong)),
        "binding",
    );

    // One flipped bit in the signed TPMS_ATTEST.
    let mut msg = std::fs::read(d.join("quote.msg")).unwrap();
    let last = msg.len() - 1;
    msg[last] ^= 0x01;
    let tampered = d.join("tampered.msg");
    std::fs::write(&tampered, msg).unwrap();
    let out = verify(&tampered, &nonce_hex);
    fails_with(&out, "quote signature does not verify");
}
