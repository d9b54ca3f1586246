//! Endorsement chain and certificate-binding checks: wrong products, wrong signer kinds, foreign
//! and self-made chains, supplied chain certificates that are not byte-identical to the pinned
//! ones, validity periods at the caller's time, development roots by identity, masked chip ids
//! and keys, and the Turin chain.
#![allow(clippy::unwrap_used, reason = "test helpers outside #[test] functions")]

mod snp_common;

use confidant_attestation::der_strict::DerError;
use confidant_attestation::snp::{
    self, CertRole, Product, SigningKey, SnpError, SnpRoot, SnpTrustRoots, TcbComponent,
};
use confidant_attestation::time::UnixTime;
use confidant_testkit::read_testdata;
use serde_bytes::ByteBuf;
use snp_common::*;

fn err(ev: &confidant_attestation::evidence::SnpEvidence, roots: &SnpTrustRoots) -> SnpError {
    verify(ev, roots).unwrap_err()
}

#[test]
fn a_report_with_another_chips_vcek_is_refused() {
    let roots = SnpTrustRoots::amd();
    // Same product and TCB, another chip: the hwID does not match chip_id.
    let mut ev = real("virtee-milan");
    ev.signer_cert = real("trustee-milan").signer_cert;
    assert_eq!(err(&ev, &roots), SnpError::ChipIdMismatch);
    ev.chain = None;
    assert_eq!(err(&ev, &roots), SnpError::ChipIdMismatch);

    // A Genoa report with a Milan VCEK.
    let mut ev = real("azure-genoa");
    ev.signer_cert = real("azure-milan").signer_cert;
    ev.chain = None;
    assert_eq!(
        err(&ev, &roots),
        SnpError::ProductMismatch {
            report: Product::Genoa,
            chain: Product::Milan
        }
    );

    // A VLEK report with a VCEK (chain and pins).
    let mut ev = real("trustee-vlek");
    ev.signer_cert = real("trustee-milan").signer_cert;
    assert_eq!(
        err(&ev, &roots),
        SnpError::SignerKindMismatch {
            report: SigningKey::Vlek
        }
    );
    ev.chain = None;
    assert_eq!(
        err(&ev, &roots),
        SnpError::SignerKindMismatch {
            report: SigningKey::Vlek
        }
    );
}

#[test]
fn a_chain_of_another_product_is_refused() {
    let roots = SnpTrustRoots::amd();
    let cases = [
        ("virtee-milan", "genoa", Product::Milan, Product::Genoa),
        ("virtee-milan", "turin", Product::Milan, Product::Turin),
        ("trustee-milan", "genoa", Product::Milan, Product::Genoa),
        ("azure-milan", "turin", Product::Milan, Product::Turin),
        ("azure-genoa", "milan", Product::Genoa, Product::Milan),
        ("azure-genoa", "turin", Product::Genoa, Product::Turin),
        ("trustee-vlek", "genoa", Product::Milan, Product::Genoa),
    ];
    for (name, other, report, chain) in cases {
        let mut ev = real(name);
        ev.chain = Some(amd_chain(other, name == "trustee-vlek"));
        assert_eq!(
            err(&ev, &roots),
            SnpError::ProductMismatch { report, chain },
            "{name} with the {other} chain"
        );
    }
}

#[test]
fn the_chain_kind_must_match_the_reports_signing_key() {
    let roots = SnpTrustRoots::amd();
    // VLEK report, [ASK, ARK].
    let mut ev = real("trustee-vlek");
    ev.chain = Some(amd_chain("milan", false));
    assert_eq!(
        err(&ev, &roots),
        SnpError::SignerKindMismatch {
            report: SigningKey::Vlek
        }
    );
    // VCEK report, [ASVK, ARK].
    let mut ev = real("trustee-milan");
    ev.chain = Some(amd_chain("milan", true));
    assert_eq!(
        err(&ev, &roots),
        SnpError::SignerKindMismatch {
            report: SigningKey::Vcek
        }
    );
}

#[test]
fn a_self_made_chain_is_untrusted() {
    let pki = dev_pki();
    let roots = SnpTrustRoots::amd();
    // Real report and VCEK, self-made ASK and ARK.
    let mut ev = real("virtee-milan");
    ev.chain = Some(chain(&[pki.ask.clone(), pki.ark.clone()]));
    assert_eq!(err(&ev, &roots), SnpError::UntrustedRoot);
    // A self-made VCEK chain with a report it signed, against AMD roots only.
    let mut report = dev_report_template(&pki);
    dev_sign(&pki, &mut report);
    let mut ev = dev_evidence(&pki, report);
    assert_eq!(err(&ev, &roots), SnpError::UntrustedRoot);
    ev.chain = None;
    assert_eq!(err(&ev, &roots), SnpError::UntrustedRoot);
    // A self-made "ASK" under the real AMD ARK.
    let mut ev = real("virtee-milan");
    let amd = amd_chain("milan", false);
    ev.chain = Some(vec![ByteBuf::from(pki.ask.clone()), amd[1].clone()]);
    assert_eq!(err(&ev, &roots), SnpError::UntrustedIntermediate);
}

/// The length of a DER TLV's header and its content length.
fn header(der: &[u8]) -> (usize, usize) {
    match der[1] {
        l if l < 0x80 => (2, usize::from(l)),
        0x81 => (3, usize::from(der[2])),
        0x82 => (4, usize::from(der[2]) << 8 | usize::from(der[3])),
        _ => panic!("unexpected length form"),
    }
}

/// `der` with its outer SEQUENCE length written with one more (zero) length byte than needed:
/// BER, the same certificate to a lenient parser, and the signature over the TBS still verifies.
pub fn ber_outer_length(der: &[u8]) -> Vec<u8> {
    let (hl, len) = header(der);
    let n = hl - 2 + 1;
    let mut out = vec![der[0], 0x80 | (n as u8 + 1), 0];
    out.extend_from_slice(&len.to_be_bytes()[8 - n..]);
    out.extend_from_slice(&der[hl..]);
    out
}

/// Regression: a supplied ASK was accepted when it carried the pinned key and the ARK's
/// signature, so byte strings other than the pinned certificate (re-encoded, re-issued) passed
/// and gave the same report another evidence digest.
#[test]
fn supplied_chain_certificates_must_be_byte_identical_to_the_pinned_ones() {
    let roots = SnpTrustRoots::amd();
    let ev = real("virtee-milan");
    verify(&ev, &roots).unwrap(); // positive control
    let good = ev.chain.clone().unwrap();
    let mut bad = ev.clone();
    bad.chain = Some(vec![
        ByteBuf::from(ber_outer_length(&good[0])),
        good[1].clone(),
    ]);
    assert_eq!(err(&bad, &roots), SnpError::UntrustedIntermediate);
    let mut bad = ev.clone();
    bad.chain = Some(vec![
        good[0].clone(),
        ByteBuf::from(ber_outer_length(&good[1])),
    ]);
    assert_eq!(err(&bad, &roots), SnpError::UntrustedRoot);
    // The VLEK path: the pinned ASVK, re-encoded.
    let ev = real("trustee-vlek");
    verify(&ev, &roots).unwrap();
    let good = ev.chain.clone().unwrap();
    let mut bad = ev.clone();
    bad.chain = Some(vec![
        ByteBuf::from(ber_outer_length(&good[0])),
        good[1].clone(),
    ]);
    assert_eq!(err(&bad, &roots), SnpError::UntrustedIntermediate);
}

/// The signing certificate in BER form is refused as not strict DER, though its signature and
/// every field are the original's.
#[test]
fn a_ber_encoded_signing_certificate_is_refused() {
    let roots = SnpTrustRoots::amd();
    let mut ev = real("virtee-milan");
    ev.signer_cert = ber_outer_length(&ev.signer_cert);
    assert_eq!(
        err(&ev, &roots),
        SnpError::CertEncoding {
            which: CertRole::Signer,
            error: DerError::NonMinimalLength(0)
        }
    );
}

#[test]
fn certificates_are_checked_at_the_time_the_caller_passes() {
    let roots = SnpTrustRoots::amd();
    // virtee-milan's VCEK: 2023-04-03T19:23:43Z to 2030-04-03T19:23:43Z.
    let ev = real("virtee-milan");
    let not_before = 1_680_549_823;
    let not_after = 1_901_474_623;
    for ok in [not_before, not_before + 1, not_after] {
        snp::verify_report(&ev, &roots, UnixTime::from_secs(ok)).unwrap();
    }
    for (at, _) in [(not_before - 1, "before"), (not_after + 1, "after")] {
        assert!(
            matches!(
                snp::verify_report(&ev, &roots, UnixTime::from_secs(at)),
                Err(SnpError::CertNotValidAt {
                    which: CertRole::Signer,
                    ..
                })
            ),
            "{at}"
        );
    }
    // trustee-vlek's VLEK expired on 2025-12-10: valid in June 2025, refused in 2026.
    let vlek = real("trustee-vlek");
    snp::verify_report(&vlek, &roots, UnixTime::from_secs(1_748_736_000)).unwrap();
    let err_2026 = snp::verify_report(&vlek, &roots, UnixTime::from_secs(1_767_225_600));
    assert!(
        matches!(
            err_2026,
            Err(SnpError::CertNotValidAt {
                which: CertRole::Signer,
                ..
            })
        ),
        "{err_2026:?}"
    );
    // The pinned ARK and ASK are checked too: before the Milan ARK existed (2020-10-22), a VCEK
    // made valid then would still be refused — here the signer's own start comes first.
    assert!(matches!(
        snp::verify_report(&ev, &roots, UnixTime::from_secs(1_600_000_000)),
        Err(SnpError::CertNotValidAt { .. })
    ));
}

#[test]
fn supplied_chains_are_checked() {
    let roots = SnpTrustRoots::amd();
    let ev = real("virtee-milan");
    let good = ev.chain.clone().unwrap();

    for len in [0usize, 1, 3] {
        let mut bad = ev.clone();
        bad.chain = Some(good.iter().cycle().take(len).cloned().collect());
        assert_eq!(err(&bad, &roots), SnpError::ChainShape { len });
    }

    // The ARK in place of the ASK: signed by the ARK, but it is not an ASK or ASVK.
    let mut bad = ev.clone();
    bad.chain = Some(vec![good[1].clone(), good[1].clone()]);
    assert_eq!(err(&bad, &roots), SnpError::UntrustedIntermediate);

    // The ASK with a flipped bit in its signature: not the pinned ASK.
    let mut ask = good[0].to_vec();
    let last = ask.len() - 1;
    ask[last] ^= 1;
    let mut bad = ev.clone();
    bad.chain = Some(vec![ByteBuf::from(ask), good[1].clone()]);
    assert_eq!(err(&bad, &roots), SnpError::UntrustedIntermediate);

    // A modified ARK is not the trusted ARK.
    let mut ark = good[1].to_vec();
    let last = ark.len() - 1;
    ark[last] ^= 1;
    let mut bad = ev.clone();
    bad.chain = Some(vec![good[0].clone(), ByteBuf::from(ark)]);
    assert_eq!(err(&bad, &roots), SnpError::UntrustedRoot);

    // Garbage intermediate under the trusted ARK.
    let mut bad = ev.clone();
    bad.chain = Some(vec![
        ByteBuf::from(vec![0x30, 0x03, 0x02, 0x01, 0x00]),
        good[1].clone(),
    ]);
    assert_eq!(err(&bad, &roots), SnpError::UntrustedIntermediate);

    // The VCEK with a flipped bit in its signature.
    let mut bad = ev.clone();
    let last = bad.signer_cert.len() - 1;
    bad.signer_cert[last] ^= 1;
    assert_eq!(
        err(&bad, &roots),
        SnpError::ChainSignature {
            which: CertRole::Signer
        }
    );
    bad.chain = None;
    assert_eq!(err(&bad, &roots), SnpError::UntrustedRoot);
}

#[test]
fn the_turin_chain_verifies_to_the_pinned_turin_ark() {
    let roots = SnpTrustRoots::amd();
    let vcek = read_testdata("snp/virtee-turin-certs/vcek.der");
    let supplied = chain(&pem_certs("snp/virtee-turin-certs/cert_chain.pem"));
    // The Turin VCEK: 2024-11-06 to 2031-11-06.
    let at = UnixTime::from_secs(1_748_736_000);
    for c in [Some(supplied.as_slice()), None] {
        let e = snp::verify_signer_chain(&vcek, c, SigningKey::Vcek, &roots, at).unwrap();
        assert_eq!(e.root, SnpRoot::Amd(Product::Turin));
        assert_eq!(e.product(), Some(Product::Turin));
        assert!(!e.is_dev());
    }
    // Not with the Milan roots alone.
    let milan = SnpTrustRoots::amd().only(&[Product::Milan]);
    assert_eq!(
        snp::verify_signer_chain(&vcek, None, SigningKey::Vcek, &milan, at).err(),
        Some(SnpError::UntrustedRoot)
    );
    assert_eq!(
        snp::verify_signer_chain(&vcek, Some(&supplied), SigningKey::Vcek, &milan, at).err(),
        Some(SnpError::UntrustedRoot)
    );
    // Not before it was issued.
    assert!(matches!(
        snp::verify_signer_chain(
            &vcek,
            None,
            SigningKey::Vcek,
            &roots,
            UnixTime::from_secs(0)
        ),
        Err(SnpError::CertNotValidAt {
            which: CertRole::Signer,
            ..
        })
    ));
    // And not as a VLEK.
    assert_eq!(
        snp::verify_signer_chain(&vcek, None, SigningKey::Vlek, &roots, at).err(),
        Some(SnpError::SignerKindMismatch {
            report: SigningKey::Vlek
        })
    );
}

#[test]
fn every_amd_signer_chain_verifies_alone() {
    let roots = SnpTrustRoots::amd();
    for exp in &REAL {
        let ev = real(exp.name);
        let kind = if exp.vlek {
            SigningKey::Vlek
        } else {
            SigningKey::Vcek
        };
        let e = snp::verify_signer_chain(
            &ev.signer_cert,
            ev.chain.as_deref(),
            kind,
            &roots,
            signer_time(&ev),
        )
        .unwrap();
        assert_eq!(e.root, SnpRoot::Amd(exp.product), "{}", exp.name);
    }
}

#[test]
fn dev_root_reports_verify_as_dev_only_when_trusted() {
    let pki = dev_pki();
    let mut report = dev_report_template(&pki);
    dev_sign(&pki, &mut report);
    let ev = dev_evidence(&pki, report);
    let v = verify(&ev, &amd_and_dev(&pki)).unwrap();
    assert!(v.is_dev());
    assert!(v.claims().dev);
    assert_eq!(v.product(), Product::Milan);
    // The verified report names which development root: the SHA-256 of its ARK.
    let ark_sha256: [u8; 32] = ring::digest::digest(&ring::digest::SHA256, &pki.ark)
        .as_ref()
        .try_into()
        .unwrap();
    assert_eq!(v.root(), SnpRoot::Dev { ark_sha256 });
    let mut no_chain = ev.clone();
    no_chain.chain = None;
    assert!(verify(&no_chain, &amd_and_dev(&pki)).unwrap().is_dev());
    assert_eq!(
        verify(&ev, &SnpTrustRoots::amd()).err(),
        Some(SnpError::UntrustedRoot)
    );
    // Adding the same root twice is harmless.
    let mut roots = amd_and_dev(&pki);
    roots.add_dev_root(&pki.ark, &pki.ask).unwrap();
    assert_eq!(roots.dev_root_count(), 1);
}

#[test]
fn add_dev_root_checks_the_pair() {
    let pki = dev_pki();
    let mut roots = SnpTrustRoots::empty();
    // Swapped: the ASK is not self-signed.
    assert_eq!(
        roots.add_dev_root(&pki.ask, &pki.ark).err(),
        Some(SnpError::ChainSignature {
            which: CertRole::Root
        })
    );
    // An ASK from another root.
    let amd = pem_certs("amd/milan_ask_ark_asvk.pem");
    assert_eq!(
        roots.add_dev_root(&pki.ark, &amd[0]).err(),
        Some(SnpError::ChainSignature {
            which: CertRole::Intermediate
        })
    );
    assert!(matches!(
        roots.add_dev_root(b"junk", &pki.ask),
        Err(SnpError::CertEncoding {
            which: CertRole::Root,
            ..
        })
    ));
    assert!(roots.is_empty());
}

/// Reports signed by the dev VCEK, each with one field changed: the signature is valid, so the
/// refusal comes from the binding and structure checks alone.
#[test]
fn validly_signed_mutations_fail_their_own_check() {
    use snp::report::layout as l;
    let pki = dev_pki();
    let roots = amd_and_dev(&pki);
    let template = dev_report_template(&pki);
    type Mutation = fn(&mut Vec<u8>);
    let table: Vec<(&str, Mutation, SnpError)> = vec![
        (
            "bootloader",
            |b| b[l::REPORTED_TCB.start] ^= 1,
            SnpError::TcbMismatch {
                component: TcbComponent::Bootloader,
            },
        ),
        (
            "tee",
            |b| b[l::REPORTED_TCB.start + 1] ^= 1,
            SnpError::TcbMismatch {
                component: TcbComponent::Tee,
            },
        ),
        (
            "snp",
            |b| b[l::REPORTED_TCB.start + 6] ^= 1,
            SnpError::TcbMismatch {
                component: TcbComponent::Snp,
            },
        ),
        (
            "microcode",
            |b| b[l::REPORTED_TCB.start + 7] ^= 1,
            SnpError::TcbMismatch {
                component: TcbComponent::Microcode,
            },
        ),
        (
            "chip id",
            |b| b[l::CHIP_ID.start + 9] ^= 1,
            SnpError::ChipIdMismatch,
        ),
        (
            "reserved",
            |b| b[l::RESERVED_208.start + 1] = 1,
            SnpError::ReservedNonZero {
                offset: l::RESERVED_208.start + 1,
            },
        ),
        (
            "signature algorithm",
            |b| b[l::SIGNATURE_ALGO.start] = 2,
            SnpError::UnsupportedSignatureAlgo(2),
        ),
        (
            "signing key VLEK",
            |b| b[l::KEY_INFO.start] = 1 << 2,
            SnpError::SignerKindMismatch {
                report: SigningKey::Vlek,
            },
        ),
        (
            "signing key none",
            |b| b[l::KEY_INFO.start] = 7 << 2,
            SnpError::UnsupportedSigningKey(7),
        ),
        (
            "version 2 has no product for a dev root",
            |b| {
                b[l::VERSION.start] = 2;
                b[l::CPUID].fill(0);
            },
            SnpError::ProductUnknown,
        ),
        (
            "unknown CPUID",
            |b| b[l::CPUID.start] = 0x17,
            SnpError::UnknownCpuid {
                family: 0x17,
                model: 0x01,
            },
        ),
        (
            "Turin CPUID on a Milan-TCB VCEK",
            |b| b[l::CPUID].copy_from_slice(&[0x1A, 0x02, 0x00]),
            // The Turin TCB layout moves the reserved bytes onto the Milan SNP SVN.
            SnpError::ReservedNonZero {
                offset: l::CURRENT_TCB.start + 6,
            },
        ),
    ];
    for (name, mutate, expected) in table {
        let mut report = template.clone();
        mutate(&mut report);
        dev_sign(&pki, &mut report);
        let ev = dev_evidence(&pki, report);
        assert_eq!(verify(&ev, &roots).err(), Some(expected), "{name}");
    }

    // A zero chip id verifies (the chip-unique VCEK signature still binds it) and is recorded as
    // masked, for the policy to decide; so is MASK_CHIP_KEY. Neither is hidden from the policy.
    let mut report = template.clone();
    report[l::CHIP_ID].fill(0);
    dev_sign(&pki, &mut report);
    let v = verify(&dev_evidence(&pki, report), &roots).unwrap();
    assert!(v.chip_id_masked() && !v.chip_key_masked());
    assert!(v.claims().chip_id_masked);
    let mut report = template.clone();
    report[l::KEY_INFO.start] = 2;
    dev_sign(&pki, &mut report);
    let v = verify(&dev_evidence(&pki, report), &roots).unwrap();
    assert!(v.chip_key_masked() && !v.chip_id_masked());
    assert!(v.claims().mask_chip_key);

    // Version 5 with mitigation vectors, and Genoa's CPUID, verify.
    let mut report = template.clone();
    report[l::VERSION.start] = 5;
    report[l::LAUNCH_MIT_VECTOR.start] = 3;
    report[l::CPUID].copy_from_slice(&[0x19, 0x11, 0x01]);
    dev_sign(&pki, &mut report);
    let v = verify(&dev_evidence(&pki, report), &roots).unwrap();
    assert_eq!(v.report().launch_mit_vector, Some(3));
    assert_eq!(v.product(), Product::Genoa);
}
