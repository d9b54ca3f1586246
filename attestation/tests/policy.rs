//! Policy against real evidence: the documented example policy, a real Milan report (virtee) from
//! verification through appraisal to a signed result, and trust anchors with a development root.
#![allow(
    clippy::unwrap_used,
    reason = "test support code: a panic is a test failure"
)]

use ring::rand::SystemRandom;

use confidant_attestation::binding::Binding;
use confidant_attestation::evidence::{Evidence, SnpEvidence};
use confidant_attestation::policy::{Policy, PolicyError, Status, TeeKind};
use confidant_attestation::result::{ResultClaims, ResultSigner};
use confidant_attestation::snp::{Product, SnpTrustRoots, TcbComponent, TcbVersion};
use confidant_attestation::verify::{BoundEvidence, TrustAnchors, verify_evidence};

const MILAN_MEASUREMENT: &str = "7a1e5c266c0108dbc9bb94fa926951320940915d0aafb42464bd88b579ea158d3e1a0dc39b2c60bd95b9c480cd81841f";
const DIGEST: &str = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";

fn example_text() -> String {
    std::fs::read_to_string(confidant_testkit::workspace_root().join("docs/policy.example.toml"))
        .unwrap()
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
    assert_eq!(m.tpm_pcr_sets.len(), 1);
    assert_eq!(hex::encode(m.digest), DIGEST);
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

/// The virtee Milan report, verified against AMD's pinned Milan root and bound to its own
/// report_data (this test stands in for the caller that computed that binding).
fn bound_milan(anchors: &TrustAnchors) -> BoundEvidence {
    let ev = Evidence::SevSnp(SnpEvidence {
        report: confidant_testkit::read_testdata("snp/virtee-milan/report.bin"),
        signer_cert: confidant_testkit::read_testdata("snp/virtee-milan/vcek.der"),
        chain: None,
    });
    let verified = verify_evidence(&ev, anchors).unwrap();
    let mut rd = [0u8; 64];
    rd.copy_from_slice(verified.report_data());
    verified.bind(&Binding::from_bytes(rd)).unwrap()
}

#[test]
fn real_milan_report_is_affirmed_and_signed() {
    let policy = milan_policy(FLOOR, "amd_products = [\"milan\"]");
    let anchors = policy.trust_anchors(None, None).unwrap();
    let appraisal = policy.appraise(bound_milan(&anchors), "m").unwrap();
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
    assert_eq!(
        (appraisal.policy_id(), appraisal.policy_version()),
        ("real", 3)
    );
    assert!(!appraisal.is_dev());

    let signer = ResultSigner::from_pkcs8(
        &ResultSigner::generate_pkcs8(&SystemRandom::new()).unwrap(),
        &SystemRandom::new(),
    )
    .unwrap();
    let claims =
        ResultClaims::from_appraisal(&appraisal, "verifier", "enclave", 1000, 300, [7; 32]);
    let token = signer.sign(&claims, &SystemRandom::new()).unwrap();
    let verified = signer.verifier().verify(&token, "enclave", 1100).unwrap();
    assert_eq!(verified.claims(), &claims);
    assert_eq!(verified.claims().exp, 1300);
    assert_eq!(
        &verified.claims().evidence_digest,
        appraisal.evidence_digest()
    );
    assert_eq!(hex::encode(verified.claims().model_digest), DIGEST);
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
        let got = policy.appraise(bound_milan(&anchors), model).unwrap_err();
        assert_eq!(got, want);
    }
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
