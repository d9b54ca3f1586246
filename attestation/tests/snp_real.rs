//! The five real SEV-SNP reports of the shared test data verify and yield the values PROVENANCE.md
//! lists; corruptions of them fail with the check's own error variant.

mod snp_common;

use confidant_attestation::evidence::SnpEvidence;
use confidant_attestation::snp::{
    self, CertRole, Product, SigningKey, SnpError, SnpTrustRoots, TcbVersion,
};
use confidant_testkit::read_testdata;
use snp_common::*;

#[test]
fn every_real_report_verifies_with_the_expected_fields() {
    let roots = SnpTrustRoots::amd();
    for exp in &REAL {
        let mut ev = real(exp.name);
        for with_chain in [true, false] {
            if !with_chain {
                ev.chain = None;
            }
            let v = verify(&ev, &roots).unwrap_or_else(|e| panic!("{}: {e:?}", exp.name));
            let r = v.report();
            assert_eq!(v.product(), exp.product, "{}", exp.name);
            assert!(!v.is_dev());
            assert_eq!(r.version, exp.version, "{}", exp.name);
            let kind = if exp.vlek {
                SigningKey::Vlek
            } else {
                SigningKey::Vcek
            };
            assert_eq!(v.signing_key(), kind);
            assert_eq!(r.signing_key, kind);
            assert_eq!(r.vmpl, exp.vmpl, "{}", exp.name);
            assert_eq!(r.policy.0, exp.policy, "{}", exp.name);
            assert!(!r.policy.debug());
            assert_eq!(r.guest_svn, exp.guest_svn, "{}", exp.name);
            let (bl, tee, s, uc) = exp.tcb;
            assert_eq!(
                r.reported_tcb,
                TcbVersion {
                    bootloader: bl,
                    tee,
                    snp: s,
                    microcode: uc,
                    fmc: None
                },
                "{}",
                exp.name
            );
            assert_eq!(hex::encode(r.measurement), exp.measurement, "{}", exp.name);
            assert_eq!(hex::encode(r.report_data), exp.report_data, "{}", exp.name);
            assert_eq!(hex::encode(r.chip_id), exp.chip_id, "{}", exp.name);
            assert_eq!(r.cpuid.is_some(), exp.version >= 3);

            let c = v.claims();
            assert_eq!(c.measurement, exp.measurement);
            assert_eq!(c.report_data, exp.report_data);
            assert_eq!(c.chip_id, exp.chip_id);
            assert_eq!(c.product, exp.product);
            assert_eq!(c.vmpl, exp.vmpl);
            assert!(!c.dev);
        }
    }
}

#[test]
fn azure_reports_are_the_hcl_report_slice() {
    for name in ["azure-milan", "azure-genoa"] {
        let hcl = read_testdata(&format!("snp/{name}/hcl-report.bin"));
        let report = read_testdata(&format!("snp/{name}/report.bin"));
        assert_eq!(&hcl[0x20..0x4C0], report.as_slice(), "{name}");
    }
}

#[test]
fn claims_json_shape() {
    let v = verify(&real("azure-genoa"), &SnpTrustRoots::amd()).unwrap();
    let json = serde_json::to_value(v.claims()).unwrap();
    assert_eq!(json["product"], "genoa");
    assert_eq!(json["signing_key"], "vcek");
    assert_eq!(json["version"], 3);
    assert_eq!(json["reported_tcb"]["bootloader"], 10);
    assert_eq!(json["reported_tcb"]["microcode"], 84);
    assert!(json["reported_tcb"].get("fmc").is_none());
    assert_eq!(json["policy"]["raw"], "0x000000000003001f");
    assert_eq!(json["policy"]["debug"], false);
    assert_eq!(json["policy"]["smt"], true);
    assert_eq!(json["policy"]["abi"], "0.31");
    assert_eq!(json["guest_svn"], 65547);
    assert_eq!(json["dev"], false);
    assert_eq!(json["host_data"].as_str().unwrap().len(), 64);
}

#[test]
fn empty_roots_trust_nothing() {
    for exp in &REAL {
        let mut ev = real(exp.name);
        assert_eq!(
            verify(&ev, &SnpTrustRoots::empty()).err(),
            Some(SnpError::UntrustedRoot)
        );
        ev.chain = None;
        assert_eq!(
            verify(&ev, &SnpTrustRoots::default()).err(),
            Some(SnpError::UntrustedRoot)
        );
    }
}

#[test]
fn only_restricts_products() {
    let milan_only = SnpTrustRoots::amd().only(&[Product::Milan]);
    assert!(verify(&real("virtee-milan"), &milan_only).is_ok());
    let mut genoa = real("azure-genoa");
    assert_eq!(
        verify(&genoa, &milan_only).err(),
        Some(SnpError::UntrustedRoot)
    );
    genoa.chain = None;
    assert_eq!(
        verify(&genoa, &milan_only).err(),
        Some(SnpError::UntrustedRoot)
    );
}

/// Fields whose bytes are checked only by the signature (every other signed byte has a structural
/// or binding check that fires first; those are tested one by one below).
fn signature_only_fields() -> Vec<std::ops::Range<usize>> {
    use snp::report::layout as l;
    vec![
        l::GUEST_SVN,
        l::POLICY,
        l::FAMILY_ID,
        l::IMAGE_ID,
        l::VMPL,
        l::PLATFORM_INFO,
        l::REPORT_DATA,
        l::MEASUREMENT,
        l::HOST_DATA,
        l::ID_KEY_DIGEST,
        l::AUTHOR_KEY_DIGEST,
        l::REPORT_ID,
        l::REPORT_ID_MA,
        l::CURRENT_VERSION,
        l::COMMITTED_VERSION,
    ]
}

#[test]
fn a_flipped_bit_anywhere_in_the_free_fields_or_r_s_is_a_bad_signature() {
    use snp::report::layout as l;
    let roots = SnpTrustRoots::amd();
    for exp in &REAL {
        let ev = real(exp.name);
        let mut positions: Vec<usize> = signature_only_fields()
            .into_iter()
            .flat_map(|r| r.step_by(3))
            .collect();
        // TCB components of current/committed/launch TCB (byte 0, 1, 6, 7 of each).
        for r in [l::CURRENT_TCB, l::COMMITTED_TCB, l::LAUNCH_TCB] {
            positions.extend([r.start, r.start + 1, r.start + 6, r.start + 7]);
        }
        // r and s (low 48 bytes of each).
        positions.extend((l::SIG_R.start..l::SIG_R.start + 48).step_by(5));
        positions.extend((l::SIG_S.start..l::SIG_S.start + 48).step_by(5));
        for (n, pos) in positions.into_iter().enumerate() {
            let mut bad = ev.clone();
            bad.report[pos] ^= 1 << (n % 8);
            assert_eq!(
                verify(&bad, &roots).err(),
                Some(SnpError::BadSignature),
                "{} byte {pos:#x}",
                exp.name
            );
        }
    }
}

#[test]
fn flipped_bits_in_checked_fields_fail_their_own_check() {
    use snp::report::layout as l;
    let roots = SnpTrustRoots::amd();
    let ev = real("virtee-milan");
    let flip = |pos: usize, mask: u8| {
        let mut bad = ev.clone();
        bad.report[pos] ^= mask;
        verify(&bad, &roots).err()
    };
    // Version 2 -> 3 reads the (zero) CPUID as an unknown product.
    assert_eq!(
        flip(0, 1),
        Some(SnpError::UnknownCpuid {
            family: 0,
            model: 0
        })
    );
    assert_eq!(flip(0, 2), Some(SnpError::UnsupportedVersion(0)));
    assert_eq!(
        flip(3, 0x80),
        Some(SnpError::UnsupportedVersion(0x8000_0002))
    );
    assert_eq!(
        flip(l::SIGNATURE_ALGO.start, 1),
        Some(SnpError::UnsupportedSignatureAlgo(0))
    );
    assert_eq!(
        flip(l::SIGNATURE_ALGO.start + 2, 1),
        Some(SnpError::UnsupportedSignatureAlgo(0x1_0001))
    );
    // SIGNING_KEY = 1 (VLEK) on a VCEK-signed report.
    assert_eq!(
        flip(l::KEY_INFO.start, 1 << 2),
        Some(SnpError::SignerKindMismatch {
            report: SigningKey::Vlek
        })
    );
    assert_eq!(
        flip(l::KEY_INFO.start, 1 << 3),
        Some(SnpError::UnsupportedSigningKey(2))
    );
    // AUTHOR_KEY_EN is signed only.
    assert_eq!(flip(l::KEY_INFO.start, 1), Some(SnpError::BadSignature));
    // MASK_CHIP_KEY is signed: flipping it breaks the signature.
    assert_eq!(flip(l::KEY_INFO.start, 2), Some(SnpError::BadSignature));
    for (pos, component) in [
        (l::REPORTED_TCB.start, snp::TcbComponent::Bootloader),
        (l::REPORTED_TCB.start + 1, snp::TcbComponent::Tee),
        (l::REPORTED_TCB.start + 6, snp::TcbComponent::Snp),
        (l::REPORTED_TCB.start + 7, snp::TcbComponent::Microcode),
    ] {
        assert_eq!(flip(pos, 0x10), Some(SnpError::TcbMismatch { component }));
    }
    for pos in l::CHIP_ID.step_by(7) {
        assert_eq!(flip(pos, 0x04), Some(SnpError::ChipIdMismatch));
    }
}

#[test]
fn reserved_bytes_must_be_zero() {
    use snp::report::layout as l;
    let roots = SnpTrustRoots::amd();
    let v2 = real("virtee-milan");
    let v3 = real("azure-genoa");
    let mut cases: Vec<(&SnpEvidence, usize)> = vec![];
    for ev in [&v2, &v3] {
        let mut offsets: Vec<usize> = vec![l::KEY_INFO.start, l::KEY_INFO.end - 1];
        offsets.extend(l::RESERVED_04C);
        offsets.extend(l::RESERVED_18B.step_by(4));
        offsets.extend(l::RESERVED_1EB);
        offsets.extend(l::RESERVED_1EF);
        offsets.extend(l::LAUNCH_MIT_VECTOR.step_by(3));
        offsets.extend(l::CURRENT_MIT_VECTOR.step_by(3));
        offsets.extend(l::RESERVED_208.step_by(9));
        // Reserved bytes 2..=5 of every pre-Turin TCB_VERSION.
        for t in [
            l::CURRENT_TCB,
            l::REPORTED_TCB,
            l::COMMITTED_TCB,
            l::LAUNCH_TCB,
        ] {
            offsets.extend(t.start + 2..t.start + 6);
        }
        // The signature field beyond r and s.
        offsets.extend((l::SIG_R.start + 48..l::SIG_R.end).step_by(5));
        offsets.extend((l::SIG_S.start + 48..l::SIG_S.end).step_by(5));
        offsets.extend(l::SIG_RESERVED.step_by(11));
        cases.extend(offsets.into_iter().map(|o| (ev, o)));
    }
    // Version 2 has no CPUID.
    cases.extend(l::CPUID.map(|o| (&v2, o)));
    for (ev, offset) in cases {
        let mut bad = ev.clone();
        bad.report[offset] |= 0x80;
        assert_eq!(
            verify(&bad, &roots).err(),
            Some(SnpError::ReservedNonZero { offset }),
            "offset {offset:#x}"
        );
    }
}

#[test]
fn versions_outside_the_known_set_are_refused() {
    let roots = SnpTrustRoots::amd();
    let ev = real("azure-genoa");
    for (v, expected) in [
        (0u32, Err(SnpError::UnsupportedVersion(0))),
        (1, Err(SnpError::UnsupportedVersion(1))),
        // Version 2 has no CPUID: the Genoa CPUID bytes are then reserved bytes.
        (2, Err(SnpError::ReservedNonZero { offset: 0x188 })),
        (3, Ok(())),
        // Known layouts, so parsing succeeds and the signature (which covers VERSION) fails.
        (4, Err(SnpError::BadSignature)),
        (5, Err(SnpError::BadSignature)),
        (6, Err(SnpError::UnsupportedVersion(6))),
        (u32::MAX, Err(SnpError::UnsupportedVersion(u32::MAX))),
    ] {
        let mut bad = ev.clone();
        bad.report[0..4].copy_from_slice(&v.to_le_bytes());
        assert_eq!(verify(&bad, &roots).map(|_| ()), expected, "version {v}");
    }
}

#[test]
fn wrong_lengths_and_random_bytes_are_clean_errors() {
    let roots = SnpTrustRoots::amd();
    let ev = real("virtee-milan");
    for len in (0..snp::REPORT_LEN)
        .step_by(37)
        .chain([snp::REPORT_LEN - 1])
    {
        let mut bad = ev.clone();
        bad.report.truncate(len);
        assert_eq!(
            verify(&bad, &roots).err(),
            Some(SnpError::Truncated { len })
        );
    }
    let mut long = ev.clone();
    long.report.push(0);
    assert_eq!(
        verify(&long, &roots).err(),
        Some(SnpError::Oversized {
            len: snp::REPORT_LEN + 1
        })
    );
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    for i in 0..300 {
        let mut bad = ev.clone();
        bad.report = rng.bytes(snp::REPORT_LEN);
        if i % 3 == 0 {
            // A plausible header so parsing goes deeper.
            bad.report[0..4].copy_from_slice(&[2, 0, 0, 0]);
            bad.report[0x34..0x38].copy_from_slice(&[1, 0, 0, 0]);
        }
        assert!(verify(&bad, &roots).is_err());
        let mut bad = ev.clone();
        let n = (rng.next_u64() % 2000) as usize;
        bad.signer_cert = rng.bytes(n);
        assert!(matches!(
            verify(&bad, &roots).err(),
            Some(SnpError::CertEncoding {
                which: CertRole::Signer,
                ..
            })
        ));
    }
    // Truncated and padded certificates.
    for cut in [0, 1, 10, 100, ev.signer_cert.len() - 1] {
        let mut bad = ev.clone();
        bad.signer_cert.truncate(cut);
        assert!(matches!(
            verify(&bad, &roots).err(),
            Some(SnpError::CertEncoding {
                which: CertRole::Signer,
                ..
            })
        ));
    }
    let mut bad = ev.clone();
    bad.signer_cert.push(0);
    assert_eq!(
        verify(&bad, &roots).err(),
        Some(SnpError::CertEncoding {
            which: CertRole::Signer,
            error: confidant_attestation::der_strict::DerError::Trailing(1)
        })
    );
}

#[test]
fn vek_extension_encodings() {
    let legacy =
        snp::vek_extensions(&read_testdata("snp/trustee-milan/vcek-invalid-legacy.der")).unwrap();
    assert_eq!(
        legacy.tcb,
        TcbVersion {
            bootloader: 3,
            tee: 0,
            snp: 10,
            microcode: 0xA9,
            fmc: None
        }
    );
    let counting: Vec<u8> = (0u8..64).collect();
    assert_eq!(legacy.hw_id.as_deref(), Some(counting.as_slice()));

    let new =
        snp::vek_extensions(&read_testdata("snp/trustee-milan/vcek-invalid-new.der")).unwrap();
    assert_eq!(
        new.tcb,
        TcbVersion {
            bootloader: 0,
            tee: 0,
            snp: 0,
            microcode: 0x1E,
            fmc: None
        }
    );
    assert_eq!(new.hw_id.as_deref(), Some(counting.as_slice()));

    let vlek = snp::vek_extensions(&read_testdata("snp/trustee-vlek/vlek.der")).unwrap();
    assert_eq!(vlek.hw_id, None);
    assert_eq!(vlek.tcb.microcode, 217);

    let turin = snp::vek_extensions(&read_testdata("snp/virtee-turin-certs/vcek.der")).unwrap();
    assert_eq!(turin.tcb.fmc, Some(0));
    assert_eq!(turin.hw_id.map(|h| h.len()), Some(8));
}
