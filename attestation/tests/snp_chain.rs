//! Endorsement chain and certificate-binding checks: wrong products, wrong signer kinds, foreign
//! and self-made chains, development roots, and the Turin chain.
#![allow(clippy::unwrap_used, reason = "test helpers outside #[test] functions")]

mod snp_common;

use confidant_attestation::snp::{
    self, CertRole, Product, SigningKey, SnpError, SnpTrustRoots, TcbComponent,
};
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
    assert_eq!(
        err(&ev, &roots),
        SnpError::ChainSignature {
            which: CertRole::Intermediate
        }
    );
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

    // The ASK with a flipped bit in its signature.
    let mut ask = good[0].to_vec();
    let last = ask.len() - 1;
    ask[last] ^= 1;
    let mut bad = ev.clone();
    bad.chain = Some(vec![ByteBuf::from(ask), good[1].clone()]);
    assert_eq!(
        err(&bad, &roots),
        SnpError::ChainSignature {
            which: CertRole::Intermediate
        }
    );

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
    assert_eq!(
        err(&bad, &roots),
        SnpError::CertParse {
            which: CertRole::Intermediate
        }
    );

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
    for c in [Some(supplied.as_slice()), None] {
        let e = snp::verify_signer_chain(&vcek, c, SigningKey::Vcek, &roots).unwrap();
        assert_eq!(e.product, Some(Product::Turin));
        assert!(!e.dev);
    }
    // Not with the Milan roots alone.
    let milan = SnpTrustRoots::amd().only(&[Product::Milan]);
    assert_eq!(
        snp::verify_signer_chain(&vcek, None, SigningKey::Vcek, &milan).err(),
        Some(SnpError::UntrustedRoot)
    );
    assert_eq!(
        snp::verify_signer_chain(&vcek, Some(&supplied), SigningKey::Vcek, &milan).err(),
        Some(SnpError::UntrustedRoot)
    );
    // And not as a VLEK.
    assert_eq!(
        snp::verify_signer_chain(&vcek, None, SigningKey::Vlek, &roots).err(),
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
        let e =
            snp::verify_signer_chain(&ev.signer_cert, ev.chain.as_deref(), kind, &roots).unwrap();
        assert_eq!(e.product, Some(exp.product), "{}", exp.name);
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
    assert_eq!(
        roots.add_dev_root(b"junk", &pki.ask).err(),
        Some(SnpError::CertParse {
            which: CertRole::Root
        })
    );
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
        (
            "masked chip id but chip id present",
            |b| b[l::KEY_INFO.start] = 2,
            SnpError::ChipIdMismatch,
        ),
    ];
    for (name, mutate, expected) in table {
        let mut report = template.clone();
        mutate(&mut report);
        dev_sign(&pki, &mut report);
        let ev = dev_evidence(&pki, report);
        assert_eq!(verify(&ev, &roots).err(), Some(expected), "{name}");
    }

    // A masked chip id that is zero verifies (the chip-unique VCEK signature still binds it).
    let mut report = template.clone();
    report[l::KEY_INFO.start] = 2;
    report[l::CHIP_ID].fill(0);
    dev_sign(&pki, &mut report);
    assert!(verify(&dev_evidence(&pki, report), &roots).is_ok());

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
