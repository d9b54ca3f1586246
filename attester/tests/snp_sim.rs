//! The simulated SEV-SNP attester: its evidence passes the real verifier with the development root
//! trusted (and says `dev`), and is refused with AMD's roots alone.
#![allow(clippy::unwrap_used, reason = "test helpers outside #[test] functions")]

use confidant_attestation::evidence::{Evidence, ReceivedEvidence};
use confidant_attestation::snp::{self, Product, SnpError, SnpTrustRoots};
use confidant_attestation::time::UnixTime;
use confidant_attestation::verify::{TrustAnchors, VerifyError, verify_evidence};
use confidant_attester::error::AttesterError;
use confidant_attester::snp_sim::{SIM_POLICY, SimulatedSnp};

fn now() -> UnixTime {
    UnixTime::from_secs(confidant_testkit::now_secs())
}

fn dev_roots(dir: &std::path::Path) -> SnpTrustRoots {
    let mut roots = SnpTrustRoots::amd();
    roots
        .add_dev_root(
            &std::fs::read(dir.join("ark.der")).unwrap(),
            &std::fs::read(dir.join("ask.der")).unwrap(),
        )
        .unwrap();
    roots
}

#[test]
fn simulated_evidence_verifies_against_the_dev_root_only() {
    let dir = confidant_testkit::dev_pki();
    let sim = SimulatedSnp::from_dir(&dir).unwrap();
    let report_data = [0x5a; 64];
    let measurement = [0xa5; 48];
    let ev = sim.attest(&report_data, &measurement).unwrap();
    assert_eq!(ev.report.len(), snp::REPORT_LEN);
    assert_eq!(ev.chain.as_ref().map(Vec::len), Some(2));

    let roots = dev_roots(&dir);
    let v = snp::verify_report(&ev, &roots, now()).unwrap();
    assert!(v.is_dev());
    assert_eq!(v.product(), Product::Milan);
    let r = v.report();
    assert_eq!(r.version, 3);
    assert_eq!(r.report_data, report_data);
    assert_eq!(r.measurement, measurement);
    assert_eq!(r.vmpl, 0);
    assert_eq!(r.policy, SIM_POLICY);
    assert!(!r.policy.debug());
    assert!(!r.policy.migrate_ma());
    assert_eq!(r.reported_tcb, sim.reported_tcb());
    assert_eq!(&r.chip_id, sim.chip_id());
    assert!(v.claims().dev);

    // Without a chain the dev root is found by the pinned set too.
    let mut bare = ev.clone();
    bare.chain = None;
    assert!(snp::verify_report(&bare, &roots, now()).unwrap().is_dev());

    // AMD's roots alone refuse it.
    assert_eq!(
        snp::verify_report(&ev, &SnpTrustRoots::amd(), now()).err(),
        Some(SnpError::UntrustedRoot)
    );
    assert_eq!(
        snp::verify_report(&bare, &SnpTrustRoots::amd(), now()).err(),
        Some(SnpError::UntrustedRoot)
    );

    // Through the crate's single entry point as well.
    let cbor = Evidence::SevSnp(ev.clone()).to_cbor();
    let received = || ReceivedEvidence::decode(&cbor).unwrap();
    let anchors = TrustAnchors {
        snp: roots,
        ..TrustAnchors::default()
    };
    assert!(
        verify_evidence(received(), &anchors, now())
            .unwrap()
            .is_dev()
    );
    assert!(matches!(
        verify_evidence(received(), &TrustAnchors::default(), now()),
        Err(VerifyError::Snp(SnpError::UntrustedRoot))
    ));
}

#[test]
fn every_simulated_report_is_fresh_and_tamper_evident() {
    let dir = confidant_testkit::dev_pki();
    let sim = SimulatedSnp::from_dir(&dir).unwrap();
    let roots = dev_roots(&dir);
    let a = sim.attest(&[1; 64], &[2; 48]).unwrap();
    let b = sim.attest(&[1; 64], &[2; 48]).unwrap();
    assert_ne!(a.report, b.report, "report_id and the ECDSA nonce differ");
    let mut bad = a.clone();
    bad.report[0x50] ^= 1; // report_data
    assert_eq!(
        snp::verify_report(&bad, &roots, now()).err(),
        Some(SnpError::BadSignature)
    );
}

#[test]
fn from_files_without_chain_and_bad_inputs() {
    let dir = confidant_testkit::dev_pki();
    let sim = SimulatedSnp::from_files(&dir.join("vcek.der"), &dir.join("vcek.key.pk8")).unwrap();
    let ev = sim.attest(&[0; 64], &[0; 48]).unwrap();
    assert_eq!(ev.chain, None);
    assert!(
        snp::verify_report(&ev, &dev_roots(&dir), now())
            .unwrap()
            .is_dev()
    );

    let missing = dir.join("no-such-file");
    assert!(matches!(
        SimulatedSnp::from_files(&missing, &dir.join("vcek.key.pk8")),
        Err(AttesterError::Io { .. })
    ));
    let vcek = std::fs::read(dir.join("vcek.der")).unwrap();
    assert!(matches!(
        SimulatedSnp::from_der(vcek.clone(), b"not a key"),
        Err(AttesterError::InvalidKey)
    ));
    // Another P-384 key than the VCEK's.
    let rng = ring::rand::SystemRandom::new();
    let other = ring::signature::EcdsaKeyPair::generate_pkcs8(
        &ring::signature::ECDSA_P384_SHA384_FIXED_SIGNING,
        &rng,
    )
    .unwrap();
    assert!(matches!(
        SimulatedSnp::from_der(vcek, other.as_ref()),
        Err(AttesterError::KeyMismatch)
    ));
    let key = std::fs::read(dir.join("vcek.key.pk8")).unwrap();
    // Not DER at all: refused by the strict DER check, before any X.509 parsing.
    let junk = SimulatedSnp::from_der(b"junk".to_vec(), &key);
    assert!(
        matches!(
            junk,
            Err(AttesterError::SnpStructure(SnpError::CertEncoding { .. }))
        ),
        "{:?}",
        junk.err()
    );
}
