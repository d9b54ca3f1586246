//! The device attester on a machine without `/dev/sev-guest`, and its certificate-table handling.

use confidant_attestation::snp::{self, SnpError};
use confidant_attester::error::AttesterError;
use confidant_attester::snp_device::{CertTable, DeviceSnp, SEV_GUEST_DEVICE};

#[test]
fn open_fails_cleanly_without_the_device() {
    if std::path::Path::new(SEV_GUEST_DEVICE).exists() {
        eprintln!("{SEV_GUEST_DEVICE} exists: this machine is an SEV-SNP guest, skipping");
        return;
    }
    match DeviceSnp::open() {
        Err(AttesterError::DeviceUnavailable { path, reason }) => {
            assert_eq!(path, std::path::PathBuf::from(SEV_GUEST_DEVICE));
            assert!(!reason.is_empty());
        }
        other => panic!("expected DeviceUnavailable, got {other:?}"),
    }
}

#[test]
fn cert_table_picks_the_certificate_the_report_names() {
    let dir = confidant_testkit::dev_pki();
    let sim = confidant_attester::snp_sim::SimulatedSnp::from_dir(&dir).unwrap();
    let report = sim.attest(&[3; 64], &[4; 48]).unwrap().report;
    let vcek = std::fs::read(dir.join("vcek.der")).unwrap();
    let ask = std::fs::read(dir.join("ask.der")).unwrap();
    let ark = std::fs::read(dir.join("ark.der")).unwrap();

    let full = CertTable {
        vcek: Some(vcek.clone()),
        vlek: Some(b"a vlek".to_vec()),
        ask: Some(ask.clone()),
        ark: Some(ark.clone()),
    };
    let ev = full.evidence(report.clone(), None).unwrap();
    assert_eq!(ev.signer_cert, vcek);
    assert_eq!(
        ev.report, report,
        "the firmware's bytes are passed on unchanged"
    );
    assert_eq!(
        ev.chain.as_ref().map(|c| (c[0].to_vec(), c[1].to_vec())),
        Some((ask, ark))
    );

    // No ARK: no chain (the verifier uses its pinned roots).
    let partial = CertTable {
        ark: None,
        ..full.clone()
    };
    assert_eq!(partial.evidence(report.clone(), None).unwrap().chain, None);

    // No VCEK: the configured fallback, else a typed error.
    let empty = CertTable::default();
    assert_eq!(
        empty
            .evidence(report.clone(), Some(&vcek))
            .unwrap()
            .signer_cert,
        vcek
    );
    assert!(matches!(
        empty.evidence(report.clone(), None),
        Err(AttesterError::MissingEndorsement("VCEK"))
    ));

    // A malformed report from the device is refused before it leaves the guest.
    assert!(matches!(
        full.evidence(report[..100].to_vec(), None),
        Err(AttesterError::SnpStructure(SnpError::Truncated {
            len: 100
        }))
    ));
    assert_eq!(report.len(), snp::REPORT_LEN);
}
