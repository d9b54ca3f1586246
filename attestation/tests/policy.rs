//! Policy against real evidence: the documented example policy, a real Milan report (virtee)
//! from verification through appraisal, protocol-bound development evidence through appraisal,
//! a signed result, a certificate and a released key, and trust anchors with a development root.
#![allow(
    clippy::unwrap_used,
    reason = "test support code: a panic is a test failure"
)]

mod snp_common;

use ring::rand::SystemRandom;

use confidant_attestation::binding::{Binding, KeyRelease, Session};
use confidant_attestation::digest::Blake3Digest;
use confidant_attestation::evidence::{Evidence, ReceivedEvidence, SnpEvidence};
use confidant_attestation::keywrap::{WrapKeyPair, release, wrap_info};
use confidant_attestation::leafcert::{CaError, CertificateAuthority};
use confidant_attestation::modelkey::ModelKey;
use confidant_attestation::names::SubjectName;
use confidant_attestation::policy::{Policy, PolicyError, Status, TeeKind};
use confidant_attestation::result::ResultSigner;
use confidant_attestation::snp::{Product, SnpRoot, SnpTrustRoots, TcbComponent, TcbVersion};
use confidant_attestation::time::UnixTime;
use confidant_attestation::verify::{RawBoundEvidence, TrustAnchors, verify_evidence};
use snp_common::*;

const MILAN_MEASUREMENT: &str = "7a1e5c266c0108dbc9bb94fa926951320940915d0aafb42464bd88b579ea158d3e1a0dc39b2c60bd95b9c480cd81841f";
const DIGEST: &str = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";
/// 2025-06-01: inside the virtee Milan VCEK's validity.
const JUNE_2025: UnixTime = UnixTime::from_secs(1_748_736_000);

fn example_text() -> String {
    std::fs::read_to_string(confidant_testkit::workspace_root().join("docs/policy.example.toml"))
        .unwrap()
}

fn digest() -> Blake3Digest {
    Blake3Digest::from_hex(DIGEST).unwrap()
}

#[test]
fn example_policy_parses() {
    let p = Policy::from_toml(&example_text()).unwrap();
    assert_eq!((p.id(), p.version()), ("example-prod", 1));
    assert_eq!(
        p.trust().amd_products,
        vec![Product::Milan, Product::Genoa, Product::Turin]
    );
    assert_eq!(p.trust().dev_root_ark_sha256, None);
    assert_eq!(p.trust().tpm_aks_spki_sha256.len(), 1);
    assert_eq!(p.revoked_measurements().len(), 1);
    let m = p.model("smollm2-135m-instruct").unwrap();
    let snp = m.snp.as_ref().unwrap();
    assert_eq!(snp.measurements.len(), 1);
    assert_eq!(
        snp.min_tcb,
        TcbVersion {
            bootloader: 3,
            tee: 0,
            snp: 8,
            microcode: 115,
            fmc: None
        }
    );
    assert!(!m.allow_dev && !snp.allow_migration_agent);
    assert!(!snp.allow_masked_chip_id && !snp.allow_masked_chip_key);
    assert_eq!(m.tpm_pcr_sets.len(), 1);
    assert_eq!(m.digest, digest());
    assert!(!m.tls_names.is_empty());
    // Every documented field is a real one: uncommenting the dev root pin still parses.
    let with_dev = example_text().replace(
        "# dev_root_ark_sha256 = \"<64 hex digits>\"",
        &format!("dev_root_ark_sha256 = \"{DIGEST}\""),
    );
    assert!(
        Policy::from_toml(&with_dev)
            .unwrap()
            .trust()
            .dev_root_ark_sha256
            .is_some()
    );
}

fn milan_policy(model_extra: &str, trust: &str) -> Policy {
    Policy::from_toml(&format!(
        r#"
id = "real"
version = 3
[trust]
{trust}
[models.m]
digest = "{DIGEST}"
snp_measurements = ["{MILAN_MEASUREMENT}"]
{model_extra}
"#
    ))
    .unwrap()
}

const FLOOR: &str = "min_tcb = { bootloader = 3, tee = 0, snp = 8, microcode = 115 }";

/// The virtee Milan report, verified against AMD's pinned Milan root and checked against its own
/// report_data: a raw expected value, as `confidant evidence verify --nonce` does. Real reports
/// carry bindings someone else computed, so a protocol binding cannot be made for them.
fn raw_milan(anchors: &TrustAnchors) -> RawBoundEvidence {
    let ev = Evidence::SevSnp(SnpEvidence {
        report: confidant_testkit::read_testdata("snp/virtee-milan/report.bin"),
        signer_cert: confidant_testkit::read_testdata("snp/virtee-milan/vcek.der"),
        chain: None,
    });
    let received = ReceivedEvidence::decode(&ev.to_cbor()).unwrap();
    let verified = verify_evidence(received, anchors, JUNE_2025).unwrap();
    let rd = verified.report_data().to_vec();
    verified.bind_exact(&rd).unwrap()
}

#[test]
fn real_milan_report_is_affirmed() {
    let policy = milan_policy(FLOOR, "amd_products = [\"milan\"]");
    let anchors = policy.trust_anchors(None, None).unwrap();
    let appraisal = policy.appraise_raw(raw_milan(&anchors), "m").unwrap();
    assert_eq!(appraisal.status(), Status::Affirming);
    assert_eq!(appraisal.tee(), TeeKind::SevSnp);
    assert_eq!(hex::encode(appraisal.measurement()), MILAN_MEASUREMENT);
    assert_eq!(
        appraisal.tcb(),
        Some(&TcbVersion {
            bootloader: 3,
            tee: 0,
            snp: 8,
            microcode: 115,
            fmc: None
        })
    );
    assert_eq!(appraisal.snp_root(), Some(SnpRoot::Amd(Product::Milan)));
    assert_eq!(
        (appraisal.policy_id(), appraisal.policy_version()),
        ("real", 3)
    );
    assert!(!appraisal.is_dev());
    assert!(!appraisal.model_digest_checked());
}

#[test]
fn real_milan_report_refusals_name_the_rule() {
    let anchors = TrustAnchors {
        snp: SnpTrustRoots::amd(),
        ..TrustAnchors::default()
    };
    let cases: Vec<(Policy, &str, PolicyError)> = vec![
        (
            milan_policy(FLOOR, "amd_products = [\"genoa\"]"),
            "m",
            PolicyError::ProductNotTrusted(Product::Milan),
        ),
        (
            milan_policy(FLOOR, "amd_products = [\"milan\"]"),
            "other",
            PolicyError::UnknownModel,
        ),
        (
            milan_policy(
                "min_tcb = { bootloader = 3, tee = 0, snp = 8, microcode = 116 }",
                "amd_products = [\"milan\"]",
            ),
            "m",
            PolicyError::TcbBelowFloor {
                component: TcbComponent::Microcode,
            },
        ),
        (
            milan_policy(
                &format!("{FLOOR}\nmin_guest_svn = 1"),
                "amd_products = [\"milan\"]",
            ),
            "m",
            PolicyError::GuestSvnTooLow { found: 0, min: 1 },
        ),
        (
            milan_policy(
                &format!("{FLOOR}\nallowed_vmpl = [1, 2]"),
                "amd_products = [\"milan\"]",
            ),
            "m",
            PolicyError::VmplNotAllowed(0),
        ),
        (
            Policy::from_toml(&format!(
                "id = \"r\"\nversion = 1\nrevoked_measurements = [\"{MILAN_MEASUREMENT}\"]\n\
                 [trust]\namd_products = [\"milan\"]\n[models.m]\ndigest = \"{DIGEST}\"\n\
                 snp_measurements = [\"{MILAN_MEASUREMENT}\"]\n{FLOOR}\n"
            ))
            .unwrap(),
            "m",
            PolicyError::MeasurementRevoked,
        ),
    ];
    for (policy, model, want) in cases {
        let got = policy.appraise_raw(raw_milan(&anchors), model).unwrap_err();
        assert_eq!(got, want);
    }
}

/// A policy for the development PKI's reports (measurement 0x42…, the template's).
fn dev_policy(pki: &DevPki, extra: &str) -> Policy {
    let pin = hex::encode(ring::digest::digest(&ring::digest::SHA256, &pki.ark));
    Policy::from_toml(&format!(
        r#"
id = "dev"
version = 1
[trust]
dev_root_ark_sha256 = "{pin}"
[models.m]
digest = "{DIGEST}"
snp_measurements = ["{}"]
min_tcb = {{ bootloader = 0, tee = 0, snp = 0, microcode = 0 }}
allow_dev = true
tls_names = ["localhost", "127.0.0.1"]
{extra}
"#,
        "42".repeat(48)
    ))
    .unwrap()
}

/// Development evidence whose report_data carries `report_data`, verified now against the dev
/// root.
fn dev_verified(
    pki: &DevPki,
    anchors: &TrustAnchors,
    report_data: &[u8; 64],
) -> confidant_attestation::verify::VerifiedEvidence {
    use confidant_attestation::snp::report::layout as l;
    let mut report = dev_report_template(pki);
    report[l::REPORT_DATA].copy_from_slice(report_data);
    dev_sign(pki, &mut report);
    let ev = Evidence::SevSnp(dev_evidence(pki, report));
    let at = signer_time(match &ev {
        Evidence::SevSnp(s) => s,
        Evidence::Tpm(_) => unreachable!(),
    });
    verify_evidence(
        ReceivedEvidence::decode(&ev.to_cbor()).unwrap(),
        anchors,
        at,
    )
    .unwrap()
}

fn key_release(model_digest: Blake3Digest, wrap_pk: [u8; 32]) -> KeyRelease {
    use rcgen::PublicKeyData;
    let tls = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    KeyRelease {
        nonce: [7; 32],
        tls_spki_der: tls.subject_public_key_info(),
        wrap_pk,
        model_digest,
    }
}

/// Regression: appraisal trusted its caller to have computed the binding with the policy's model
/// digest; bound evidence now remembers the digest, and appraisal compares it.
#[test]
fn appraisal_checks_the_bound_model_digest_itself() {
    let pki = dev_pki();
    let policy = dev_policy(&pki, "");
    let anchors = policy
        .trust_anchors(Some(&pki.ark), Some(&pki.ask))
        .unwrap();
    let other = Blake3Digest::from_bytes([0x0d; 32]);
    for (model_digest, want) in [
        (digest(), None),
        (other, Some(PolicyError::ModelDigestMismatch)),
    ] {
        let binding = Binding::compute(key_release(model_digest, [2; 32]));
        let verified = dev_verified(&pki, &anchors, binding.as_bytes());
        let bound = verified.bind(binding).unwrap();
        assert_eq!(bound.inputs().model_digest, model_digest);
        let got = policy.appraise(bound, "m").err();
        assert_eq!(got, want);
    }
    // The same for session evidence.
    let binding = Binding::compute(Session {
        nonce: [1; 32],
        tls_spki_der: b"spki".to_vec(),
        exporter: [3; 32],
        model_digest: other,
    });
    let bound = dev_verified(&pki, &anchors, binding.as_bytes())
        .bind(binding)
        .unwrap();
    assert_eq!(
        policy.appraise(bound, "m").err(),
        Some(PolicyError::ModelDigestMismatch)
    );
}

#[test]
fn evidence_binds_only_to_the_binding_it_carries() {
    let pki = dev_pki();
    let policy = dev_policy(&pki, "");
    let anchors = policy
        .trust_anchors(Some(&pki.ark), Some(&pki.ask))
        .unwrap();
    let carried = Binding::compute(key_release(digest(), [2; 32]));
    let verified = dev_verified(&pki, &anchors, carried.as_bytes());
    // The same inputs as session evidence: another purpose, another value.
    let inputs = carried.inputs();
    let as_session = Binding::compute(Session {
        nonce: inputs.nonce,
        tls_spki_der: inputs.tls_spki_der.clone(),
        exporter: inputs.wrap_pk,
        model_digest: inputs.model_digest,
    });
    assert!(verified.bind(as_session).is_err());
}

/// From a key-release appraisal to a result, a certificate and a wrapped key, all taken from the
/// appraisal: the certificate's key and evidence, the names the policy allows, the wrapping key.
#[test]
fn issuance_and_key_release_take_everything_from_the_appraisal() {
    let pki = dev_pki();
    let policy = dev_policy(&pki, "");
    let anchors = policy
        .trust_anchors(Some(&pki.ark), Some(&pki.ask))
        .unwrap();
    let wrap = WrapKeyPair::generate(&mut rand::thread_rng());
    let binding = Binding::compute(key_release(digest(), *wrap.public_key()));
    let spki = binding.inputs().tls_spki_der.clone();
    let verified = dev_verified(&pki, &anchors, binding.as_bytes());
    let evidence_bytes = verified.bytes().to_vec();
    let appraisal = policy
        .appraise(verified.bind(binding).unwrap(), "m")
        .unwrap();
    assert!(appraisal.is_dev());
    assert_eq!(appraisal.tls_spki_der(), spki.as_slice());

    let rng = SystemRandom::new();
    let signer =
        ResultSigner::from_pkcs8(&ResultSigner::generate_pkcs8(&rng).unwrap(), &rng).unwrap();
    let now = 1_800_000_000;
    let result = signer
        .sign_appraisal(&appraisal, "verifier", "client", now, 600, &rng)
        .unwrap();
    let claims = signer
        .verifier()
        .verify(result.bytes(), "client", now)
        .unwrap()
        .into_claims();
    assert_eq!(claims.model_digest, digest());
    assert_eq!(&claims.evidence_digest, appraisal.evidence_digest());
    assert!(claims.dev);

    let ca_key = CertificateAuthority::generate_key(&rng).unwrap();
    let ca = CertificateAuthority::new(&ca_key, "test CA", now - 60, now + 86_400, &rng).unwrap();
    let names = [
        SubjectName::parse("localhost").unwrap(),
        SubjectName::parse("127.0.0.1").unwrap(),
    ];
    // Asked to outlive the result: the certificate ends with it.
    let leaf = ca
        .issue(&result, &names, now - 60, now + 86_400, &rng)
        .unwrap();
    let ext = confidant_attestation::certext::parse(&leaf).unwrap();
    assert_eq!(ext.result, result.bytes());
    assert_eq!(ext.evidence, evidence_bytes);
    use x509_parser::prelude::FromDer;
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(&leaf).unwrap();
    assert_eq!(cert.public_key().raw, spki.as_slice());
    assert_eq!(
        cert.validity().not_after.timestamp(),
        i64::try_from(claims.exp).unwrap()
    );
    confidant_attestation::der_strict::check_certificate(&leaf).unwrap();

    // A name the policy does not list is refused.
    let other = [SubjectName::parse("evil.example").unwrap()];
    assert_eq!(
        ca.issue(&result, &other, now, now + 60, &rng).err(),
        Some(CaError::NameNotAllowed {
            name: "evil.example".into()
        })
    );
    assert_eq!(
        appraisal.check_names(&other),
        Err(PolicyError::NameNotAllowed {
            name: "evil.example".into()
        })
    );

    // The model key goes to the wrapping key the evidence is bound to, under this result.
    let key = ModelKey::from_bytes([9; 32]);
    let wrapped = release(&key, &result, "k1", &mut rand::thread_rng()).unwrap();
    let info = wrap_info(result.digest(), "k1");
    assert_eq!(wrap.unwrap(&wrapped, &info).unwrap(), key);
    let stranger = WrapKeyPair::generate(&mut rand::thread_rng());
    assert!(stranger.unwrap(&wrapped, &info).is_err());
}

/// Regression: the policy checked only that *a* development root was pinned, so evidence from any
/// development root the verifier's anchors happened to hold passed. Now the verified report names
/// its root and the policy compares it with its pin.
#[test]
fn evidence_from_another_development_root_is_refused() {
    let pki = dev_pki();
    let other = other_dev_pki();
    let policy = dev_policy(&pki, "");
    // Anchors that trust both development roots (built elsewhere than from this policy).
    let mut roots = SnpTrustRoots::empty();
    roots.add_dev_root(&pki.ark, &pki.ask).unwrap();
    roots.add_dev_root(&other.ark, &other.ask).unwrap();
    let anchors = TrustAnchors {
        snp: roots,
        ..TrustAnchors::default()
    };
    for (which, want) in [(&pki, None), (&other, Some(PolicyError::DevRootNotTrusted))] {
        let binding = Binding::compute(key_release(digest(), [2; 32]));
        let verified = dev_verified(which, &anchors, binding.as_bytes());
        let bound = verified.bind(binding).unwrap();
        assert_eq!(policy.appraise(bound, "m").err(), want);
    }
}

#[test]
fn masked_chip_ids_need_the_policys_consent_and_results_say_so() {
    use confidant_attestation::snp::report::layout as l;
    let pki = dev_pki();
    let anchors = dev_policy(&pki, "")
        .trust_anchors(Some(&pki.ark), Some(&pki.ask))
        .unwrap();
    let binding = Binding::compute(key_release(digest(), [2; 32]));
    let mut report = dev_report_template(&pki);
    report[l::REPORT_DATA].copy_from_slice(binding.as_bytes());
    report[l::CHIP_ID].fill(0);
    dev_sign(&pki, &mut report);
    let ev = dev_evidence(&pki, report);
    let at = signer_time(&ev);
    let cbor = Evidence::SevSnp(ev).to_cbor();
    let bound = |b: Binding<KeyRelease>| {
        verify_evidence(ReceivedEvidence::decode(&cbor).unwrap(), &anchors, at)
            .unwrap()
            .bind(b)
            .unwrap()
    };
    let refusing = dev_policy(&pki, "");
    assert_eq!(
        refusing.appraise(bound(binding), "m").err(),
        Some(PolicyError::ChipIdMasked)
    );
    let allowing = dev_policy(&pki, "allow_masked_chip_id = true");
    let binding = Binding::compute(key_release(digest(), [2; 32]));
    // Same inputs, fresh TLS key: recompute the report for this binding.
    let mut report = dev_report_template(&pki);
    report[l::REPORT_DATA].copy_from_slice(binding.as_bytes());
    report[l::CHIP_ID].fill(0);
    dev_sign(&pki, &mut report);
    let ev = Evidence::SevSnp(dev_evidence(&pki, report));
    let verified = verify_evidence(
        ReceivedEvidence::decode(&ev.to_cbor()).unwrap(),
        &anchors,
        at,
    )
    .unwrap();
    let appraisal = allowing
        .appraise(verified.bind(binding).unwrap(), "m")
        .unwrap();
    assert!(appraisal.chip_id_masked());
    let rng = SystemRandom::new();
    let signer =
        ResultSigner::from_pkcs8(&ResultSigner::generate_pkcs8(&rng).unwrap(), &rng).unwrap();
    let result = signer
        .sign_appraisal(&appraisal, "v", "c", 1_800_000_000, 60, &rng)
        .unwrap();
    assert!(result.claims().mask_chip_id && !result.claims().mask_chip_key);
}

#[test]
fn trust_anchors_accept_only_the_pinned_dev_root() {
    let pki = confidant_testkit::dev_pki();
    let ark = std::fs::read(pki.join("ark.der")).unwrap();
    let ask = std::fs::read(pki.join("ask.der")).unwrap();
    let pin = hex::encode(ring::digest::digest(&ring::digest::SHA256, &ark));
    let policy = milan_policy(
        &format!("{FLOOR}\nallow_dev = true"),
        &format!("amd_products = [\"milan\"]\ndev_root_ark_sha256 = \"{pin}\""),
    );
    let anchors = policy.trust_anchors(Some(&ark), Some(&ask)).unwrap();
    assert_eq!(anchors.snp.dev_root_count(), 1);
    assert_eq!(anchors.snp.amd_products(), vec![Product::Milan]);
    // The ASK in the ARK's place: its hash is not the pin.
    assert_eq!(
        policy.trust_anchors(Some(&ask), Some(&ask)).err(),
        Some(PolicyError::DevRootMismatch)
    );
    assert_eq!(
        policy.trust_anchors(Some(&ark), None).err(),
        Some(PolicyError::DevRootMissing)
    );
}
