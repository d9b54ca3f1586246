//! Rules on facts (one mutation per case, asserting the variant), the same rules on result claims
//! (passport), and policy loading.

use std::collections::BTreeMap;

use super::facts::{Facts, SnpFacts, TpmFacts, check};
use super::*;
use crate::result::ResultClaims;
use crate::snp::TcbComponent;

const M1: &str = "111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111";
const M2: &str = "222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222";
const DIGEST: &str = "3333333333333333333333333333333333333333333333333333333333333333";
const AK: &str = "4444444444444444444444444444444444444444444444444444444444444444";
const PCR0: &str = "5555555555555555555555555555555555555555555555555555555555555555";
const PCR7: &str = "6666666666666666666666666666666666666666666666666666666666666666";
const DEV_PIN: &str = "7777777777777777777777777777777777777777777777777777777777777777";

fn policy_text() -> String {
    format!(
        r#"
id = "test"
version = 7
revoked_measurements = ["{M2}"]

[trust]
amd_products = ["milan", "genoa"]
dev_root_ark_sha256 = "{DEV_PIN}"
tpm_aks_spki_sha256 = ["{AK}"]

[models."m"]
digest = "{DIGEST}"
snp_measurements = ["{M1}", "{M2}"]
min_tcb = {{ bootloader = 3, tee = 0, snp = 8, microcode = 115 }}
min_guest_svn = 2
allowed_vmpl = [0]
allow_dev = true
tpm_pcrs = [[{{ pcr = 0, sha256 = "{PCR0}" }}, {{ pcr = 7, sha256 = "{PCR7}" }}]]
tls_names = ["localhost", "127.0.0.1"]

[models."strict"]
digest = "{DIGEST}"
snp_measurements = ["{M1}"]
min_tcb = {{ bootloader = 0, tee = 0, snp = 0, microcode = 0, fmc = 1 }}

[models."masked"]
digest = "{DIGEST}"
snp_measurements = ["{M1}"]
min_tcb = {{ bootloader = 0, tee = 0, snp = 0, microcode = 0 }}
allow_masked_chip_id = true
allow_masked_chip_key = true
"#
    )
}

fn policy() -> Policy {
    Policy::from_toml(&policy_text()).unwrap()
}

fn tcb(bootloader: u8, tee: u8, snp: u8, microcode: u8) -> TcbVersion {
    TcbVersion {
        bootloader,
        tee,
        snp,
        microcode,
        fmc: None,
    }
}

fn b<const N: usize>(h: &str) -> [u8; N] {
    hex::decode(h).unwrap().try_into().unwrap()
}

fn snp() -> SnpFacts {
    SnpFacts {
        root: SnpRoot::Amd(Product::Milan),
        measurement: b::<48>(M1),
        tcb: tcb(3, 0, 8, 115),
        debug: false,
        migrate_ma: false,
        vmpl: 0,
        guest_svn: 2,
        chip_id_masked: false,
        chip_key_masked: false,
    }
}

fn tpm() -> TpmFacts {
    TpmFacts {
        pcrs: BTreeMap::from([(0, b::<32>(PCR0)), (7, b::<32>(PCR7))]),
        ak_spki_sha256: b::<32>(AK),
        ak_anchor: AkAnchor::Enrolled,
        boot: None,
    }
}

fn run(model: &str, f: &Facts) -> Result<(), PolicyError> {
    let p = policy();
    let m = p.model(model)?.clone();
    check(&p, &m, f)
}

fn run_snp(model: &str, f: SnpFacts) -> Result<(), PolicyError> {
    run(model, &Facts::Snp(f))
}

fn run_tpm(model: &str, f: TpmFacts) -> Result<(), PolicyError> {
    run(model, &Facts::Tpm(f))
}

#[test]
fn baseline_facts_pass() {
    run_snp("m", snp()).unwrap();
    run_tpm("m", tpm()).unwrap();
}

#[test]
fn each_snp_rule_refuses_with_its_variant() {
    type Mutation = fn(&mut SnpFacts);
    let cases: Vec<(&str, Mutation, PolicyError)> = vec![
        ("debug", |f| f.debug = true, PolicyError::DebugEnabled),
        (
            "revoked",
            |f| f.measurement = b::<48>(M2),
            PolicyError::MeasurementRevoked,
        ),
        (
            "unknown measurement",
            |f| f.measurement[0] ^= 1,
            PolicyError::MeasurementNotAllowed,
        ),
        (
            "chip id masked",
            |f| f.chip_id_masked = true,
            PolicyError::ChipIdMasked,
        ),
        (
            "chip key masked",
            |f| f.chip_key_masked = true,
            PolicyError::ChipKeyMasked,
        ),
        (
            "bootloader",
            |f| f.tcb = tcb(2, 9, 9, 255),
            PolicyError::TcbBelowFloor {
                component: TcbComponent::Bootloader,
            },
        ),
        (
            "snp",
            |f| f.tcb = tcb(3, 0, 7, 255),
            PolicyError::TcbBelowFloor {
                component: TcbComponent::Snp,
            },
        ),
        (
            "microcode",
            |f| f.tcb = tcb(3, 0, 8, 114),
            PolicyError::TcbBelowFloor {
                component: TcbComponent::Microcode,
            },
        ),
        ("vmpl", |f| f.vmpl = 1, PolicyError::VmplNotAllowed(1)),
        (
            "migration agent",
            |f| f.migrate_ma = true,
            PolicyError::MigrationAgentNotAllowed,
        ),
        (
            "svn",
            |f| f.guest_svn = 1,
            PolicyError::GuestSvnTooLow { found: 1, min: 2 },
        ),
        (
            "product",
            |f| f.root = SnpRoot::Amd(Product::Turin),
            PolicyError::ProductNotTrusted(Product::Turin),
        ),
        (
            "another development root",
            |f| {
                f.root = SnpRoot::Dev {
                    ark_sha256: [0x78; 32],
                }
            },
            PolicyError::DevRootNotTrusted,
        ),
    ];
    for (name, mutate, want) in cases {
        let mut f = snp();
        mutate(&mut f);
        assert_eq!(run_snp("m", f), Err(want.clone()), "{name}");
        assert!(!want.code().is_empty());
    }
}

#[test]
fn masked_chip_id_and_key_pass_only_where_allowed() {
    let masked = SnpFacts {
        chip_id_masked: true,
        chip_key_masked: true,
        ..snp()
    };
    run_snp("masked", masked.clone()).unwrap();
    assert_eq!(run_snp("m", masked), Err(PolicyError::ChipKeyMasked));
}

#[test]
fn tcb_above_floor_in_other_components_does_not_compensate() {
    let mut f = snp();
    f.tcb = tcb(255, 255, 7, 255);
    assert_eq!(
        run_snp("m", f),
        Err(PolicyError::TcbBelowFloor {
            component: TcbComponent::Snp
        })
    );
}

#[test]
fn first_below_agrees_with_meets() {
    let floors = [
        tcb(3, 0, 8, 115),
        TcbVersion {
            fmc: Some(2),
            ..tcb(0, 0, 0, 0)
        },
    ];
    for floor in floors {
        for v in [0u8, 1, 2, 3, 8, 115, 200] {
            for fmc in [None, Some(1), Some(2)] {
                let t = TcbVersion {
                    fmc,
                    ..tcb(v, v / 2, v, v)
                };
                assert_eq!(
                    t.first_below(&floor).is_none(),
                    t.meets(&floor),
                    "{t:?} vs {floor:?}"
                );
            }
        }
    }
}

#[test]
fn fmc_floor_requires_fmc() {
    let mut f = snp();
    assert_eq!(
        run_snp("strict", f.clone()),
        Err(PolicyError::TcbBelowFloor {
            component: TcbComponent::Fmc
        })
    );
    f.tcb = TcbVersion {
        fmc: Some(1),
        ..tcb(0, 0, 0, 0)
    };
    run_snp("strict", f).unwrap();
}

#[test]
fn revocation_wins_over_the_allow_list() {
    // M2 is both allowed for "m" and revoked.
    let mut f = snp();
    f.measurement = b::<48>(M2);
    assert_eq!(run_snp("m", f), Err(PolicyError::MeasurementRevoked));
}

#[test]
fn debug_is_refused_even_when_everything_else_passes() {
    let mut f = snp();
    f.debug = true;
    f.root = SnpRoot::Dev {
        ark_sha256: b::<32>(DEV_PIN),
    };
    assert_eq!(run_snp("m", f), Err(PolicyError::DebugEnabled));
}

#[test]
fn dev_evidence_needs_model_consent_and_exactly_the_pinned_root() {
    let pinned = SnpFacts {
        root: SnpRoot::Dev {
            ark_sha256: b::<32>(DEV_PIN),
        },
        ..snp()
    };
    run_snp("m", pinned.clone()).unwrap();
    assert_eq!(
        run_snp("strict", pinned.clone()),
        Err(PolicyError::DevEvidenceNotAllowed)
    );
    // Another development root than the pinned one: whatever anchors verification was given.
    let other = SnpFacts {
        root: SnpRoot::Dev {
            ark_sha256: [0x78; 32],
        },
        ..snp()
    };
    assert_eq!(run_snp("m", other), Err(PolicyError::DevRootNotTrusted));

    let text = policy_text().replace(&format!("dev_root_ark_sha256 = \"{DEV_PIN}\"\n"), "");
    let p = Policy::from_toml(&text).unwrap();
    let m = p.model("m").unwrap().clone();
    assert_eq!(
        check(&p, &m, &Facts::Snp(pinned)),
        Err(PolicyError::DevRootNotTrusted)
    );
}

#[test]
fn each_tpm_rule_refuses_with_its_variant() {
    let mut f = tpm();
    f.pcrs.insert(7, [0u8; 32]);
    assert_eq!(run_tpm("m", f), Err(PolicyError::PcrsNotAllowed));

    let mut f = tpm();
    f.pcrs.remove(&7);
    assert_eq!(run_tpm("m", f), Err(PolicyError::PcrsNotAllowed));

    let mut f = tpm();
    f.ak_spki_sha256 = [0u8; 32];
    assert_eq!(run_tpm("m", f), Err(PolicyError::AkNotAllowed));

    let mut f = tpm();
    f.ak_anchor = AkAnchor::EkCa {
        ca_sha256: [0x11; 32],
    };
    assert_eq!(run_tpm("m", f), Err(PolicyError::EkCaNotTrusted));

    assert_eq!(
        run_tpm("strict", tpm()),
        Err(PolicyError::UntrustedTee { tee: TeeKind::Tpm })
    );

    let text = policy_text().replace(
        "revoked_measurements = [",
        &format!(
            "revoked_measurements = [\"{}\", ",
            hex::encode(pcr_composite(&tpm().pcrs))
        ),
    );
    let p = Policy::from_toml(&text).unwrap();
    let m = p.model("m").unwrap().clone();
    assert_eq!(
        check(&p, &m, &Facts::Tpm(tpm())),
        Err(PolicyError::MeasurementRevoked)
    );
}

/// Regression: allowed PCR sets matched any quote that contained them, so an attester could quote
/// extra PCRs (whose values nobody constrained) and still pass; and the extra PCR changed the PCR
/// composite, so a revoked state quoted with one more PCR no longer matched its revocation.
#[test]
fn an_allowed_pcr_set_matches_only_the_exact_selection() {
    run_tpm("m", tpm()).unwrap(); // positive control
    let mut extra = tpm();
    extra.pcrs.insert(9, [9u8; 32]);
    assert_eq!(
        run_tpm("m", extra.clone()),
        Err(PolicyError::PcrsNotAllowed)
    );

    // Revoke the allowed state: quoting it with an extra PCR does not get around the revocation.
    let text = policy_text().replace(
        "revoked_measurements = [",
        &format!(
            "revoked_measurements = [\"{}\", ",
            hex::encode(pcr_composite(&tpm().pcrs))
        ),
    );
    let p = Policy::from_toml(&text).unwrap();
    let m = p.model("m").unwrap().clone();
    assert_eq!(
        check(&p, &m, &Facts::Tpm(tpm())),
        Err(PolicyError::MeasurementRevoked)
    );
    assert!(check(&p, &m, &Facts::Tpm(extra)).is_err());
}

#[test]
fn an_ek_ca_anchor_passes_only_for_a_ca_the_policy_lists() {
    let ca_der = b"not parsed here".to_vec();
    let ca_sha256 = b::<32>(&hex::encode(ring::digest::digest(
        &ring::digest::SHA256,
        &ca_der,
    )));
    let mut p = policy();
    p.trust.tpm_ek_ca_certs_der.push(ca_der);
    let m = p.model("m").unwrap().clone();
    let mut f = tpm();
    f.ak_spki_sha256 = [0x99; 32]; // not enrolled: the EK CA vouches for it
    f.ak_anchor = AkAnchor::EkCa { ca_sha256 };
    check(&p, &m, &Facts::Tpm(f.clone())).unwrap();
    f.ak_anchor = AkAnchor::EkCa {
        ca_sha256: [0x12; 32],
    };
    assert_eq!(
        check(&p, &m, &Facts::Tpm(f)),
        Err(PolicyError::EkCaNotTrusted)
    );
}

#[test]
fn snp_evidence_for_a_tpm_only_model_is_untrusted() {
    let text = format!(
        "id = \"t\"\nversion = 1\n[models.x]\ndigest = \"{DIGEST}\"\ntpm_pcrs = [[{{ pcr = 0, sha256 = \"{PCR0}\" }}]]\n"
    );
    let p = Policy::from_toml(&text).unwrap();
    let m = p.model("x").unwrap().clone();
    assert_eq!(
        check(&p, &m, &Facts::Snp(snp())),
        Err(PolicyError::UntrustedTee {
            tee: TeeKind::SevSnp
        })
    );
}

#[test]
fn empty_policy_denies_everything() {
    let p = Policy::from_toml("id = \"empty\"\nversion = 0\n").unwrap();
    assert_eq!(p.model("m").err(), Some(PolicyError::UnknownModel));
    assert_eq!(p.model_ids().count(), 0);
    let anchors = p.trust_anchors(None, None).unwrap();
    assert!(anchors.snp.is_empty());
    assert!(anchors.tpm.is_empty());

    // A model with no reference values refuses both TEEs.
    let text = format!("id = \"e\"\nversion = 0\n[models.m]\ndigest = \"{DIGEST}\"\n");
    let p = Policy::from_toml(&text).unwrap();
    let m = p.model("m").unwrap().clone();
    assert_eq!(
        check(&p, &m, &Facts::Snp(snp())),
        Err(PolicyError::UntrustedTee {
            tee: TeeKind::SevSnp
        })
    );
    assert_eq!(
        check(&p, &m, &Facts::Tpm(tpm())),
        Err(PolicyError::UntrustedTee { tee: TeeKind::Tpm })
    );
}

#[test]
fn loading_rejects_bad_policies() {
    let base = policy_text();
    let cases: Vec<(String, &str)> = vec![
        (
            base.replace("version = 7", "version = 7\nextra = 1"),
            "policy_parse",
        ),
        (
            base.replace("allow_dev = true", "allow_dev = true\nallow_debug = true"),
            "policy_parse",
        ),
        (
            base.replace(
                "amd_products = [\"milan\", \"genoa\"]",
                "amd_products = [\"naples\"]",
            ),
            "policy_parse",
        ),
        (
            base.replace(
                "amd_products = [\"milan\", \"genoa\"]",
                "amd_products = [\"milan\", \"milan\"]",
            ),
            "policy_invalid",
        ),
        (
            base.replace(
                &format!("digest = \"{DIGEST}\"\nsnp_measurements = [\"{M1}\", "),
                &format!("digest = \"{DIGEST}00\"\nsnp_measurements = [\"{M1}\", "),
            ),
            "policy_invalid",
        ),
        (
            base.replace(
                &format!("[\"{M1}\", \"{M2}\"]"),
                &format!("[\"{}\"]", &M1[..94]),
            ),
            "policy_invalid",
        ),
        (
            base.replace(&format!("[\"{M1}\", \"{M2}\"]"), "[\"zz\"]"),
            "policy_invalid",
        ),
        (
            base.replace(
                "min_tcb = { bootloader = 3, tee = 0, snp = 8, microcode = 115 }\n",
                "",
            ),
            "policy_invalid",
        ),
        (
            base.replace(
                "min_tcb = { bootloader = 3, tee = 0, snp = 8, microcode = 115 }",
                "min_tcb = { bootloader = 3, tee = 0, snp = 8 }",
            ),
            "policy_parse",
        ),
        (
            base.replace(
                "min_tcb = { bootloader = 3, tee = 0, snp = 8, microcode = 115 }",
                "min_tcb = { bootloader = 300, tee = 0, snp = 8, microcode = 1 }",
            ),
            "policy_parse",
        ),
        (
            base.replace("allowed_vmpl = [0]", "allowed_vmpl = []"),
            "policy_invalid",
        ),
        (
            base.replace("allowed_vmpl = [0]", "allowed_vmpl = [4]"),
            "policy_invalid",
        ),
        (base.replace("pcr = 7", "pcr = 24"), "policy_invalid"),
        (base.replace("pcr = 7", "pcr = 0"), "policy_invalid"),
        (
            base.replace("tpm_pcrs = [[", "tpm_pcrs = [[], ["),
            "policy_invalid",
        ),
        (
            base.replace(&format!("[\"{M2}\"]"), "[\"00\"]"),
            "policy_invalid",
        ),
        (
            base.replace(&format!("[\"{AK}\"]"), "[\"00\"]"),
            "policy_invalid",
        ),
        (base.replace("id = \"test\"", "id = \"\""), "policy_invalid"),
        (
            base.replace("id = \"test\"", "id = \"a b\""),
            "policy_invalid",
        ),
        (
            base.replace("[models.\"m\"]", "[models.\"\"]"),
            "policy_invalid",
        ),
        (base.replace("id = \"test\"\n", ""), "policy_parse"),
        (
            base.replace("\"127.0.0.1\"]", "\"*.example\"]"),
            "policy_invalid",
        ),
        (
            base.replace("\"127.0.0.1\"]", "\"localhost\"]"),
            "policy_invalid",
        ),
        (
            base.replace("allow_masked_chip_id = true", "allow_masked_chip_id = 1"),
            "policy_parse",
        ),
        (
            format!(
                "id = \"x\"\nversion = 1\n[models.m]\ndigest = \"{DIGEST}\"\nallow_masked_chip_id = true\n"
            ),
            "policy_invalid",
        ),
        (
            format!(
                "id = \"x\"\nversion = 1\n[models.m]\ndigest = \"{DIGEST}\"\nmin_guest_svn = 3\n"
            ),
            "policy_invalid",
        ),
        ("not toml [".to_string(), "policy_parse"),
    ];
    for (i, (text, code)) in cases.iter().enumerate() {
        assert_ne!(text, &base, "case {i} did not change the policy");
        let err = Policy::from_toml(text).unwrap_err();
        assert_eq!(err.code(), *code, "case {i}: {err}");
    }
    let big = "#".repeat(MAX_POLICY_TOML + 1);
    assert_eq!(
        Policy::from_toml(&big),
        Err(PolicyError::TooLarge(MAX_POLICY_TOML + 1))
    );
}

#[test]
fn loaded_values_are_typed() {
    let p = policy();
    assert_eq!((p.id(), p.version()), ("test", 7));
    assert_eq!(p.trust().amd_products, vec![Product::Milan, Product::Genoa]);
    let m = p.model("m").unwrap();
    let snp = m.snp.as_ref().unwrap();
    assert_eq!(snp.min_tcb, tcb(3, 0, 8, 115));
    assert_eq!(snp.allowed_vmpl, std::collections::BTreeSet::from([0]));
    assert_eq!(m.tpm_pcr_sets.len(), 1);
    assert_eq!(
        p.model_digest("m").unwrap(),
        crate::digest::Blake3Digest::from_bytes(b::<32>(DIGEST))
    );
    assert_eq!(
        m.tls_names,
        vec![
            SubjectName::Dns("localhost".into()),
            SubjectName::Ip("127.0.0.1".parse().unwrap())
        ]
    );
    let masked = p.model("masked").unwrap().snp.as_ref().unwrap();
    assert!(masked.allow_masked_chip_id && masked.allow_masked_chip_key);
    assert!(!snp.allow_masked_chip_id && !snp.allow_masked_chip_key);
    // allowed_vmpl defaults to [0].
    let s = p.model("strict").unwrap().snp.as_ref().unwrap();
    assert_eq!(s.allowed_vmpl, std::collections::BTreeSet::from([0]));
    assert!(!s.allow_migration_agent);
}

#[test]
fn trust_anchors_follow_the_policy() {
    let p = policy();
    assert_eq!(
        p.trust_anchors(None, None).err(),
        Some(PolicyError::DevRootMissing)
    );
    assert_eq!(
        p.trust_anchors(Some(b"ark"), Some(b"ask")).err(),
        Some(PolicyError::DevRootMismatch)
    );
    let no_dev = policy_text().replace(&format!("dev_root_ark_sha256 = \"{DEV_PIN}\"\n"), "");
    let p = Policy::from_toml(&no_dev).unwrap();
    let anchors = p.trust_anchors(None, None).unwrap();
    assert_eq!(
        anchors.snp.amd_products(),
        vec![Product::Milan, Product::Genoa]
    );
    assert_eq!(anchors.snp.dev_root_count(), 0);
    assert_eq!(
        p.trust_anchors(Some(b"ark"), Some(b"ask")).err(),
        Some(PolicyError::DevRootNotPinned)
    );

    // A pin that matches garbage bytes still fails: the pair must be a real ARK/ASK.
    let pin = hex::encode(ring::digest::digest(&ring::digest::SHA256, b"ark"));
    let p = Policy::from_toml(&policy_text().replace(DEV_PIN, &pin)).unwrap();
    assert!(matches!(
        p.trust_anchors(Some(b"ark"), Some(b"ask")),
        Err(PolicyError::DevRootInvalid(_))
    ));
}

#[test]
fn error_codes_are_distinct_snake_case() {
    let all = [
        PolicyError::TooLarge(0),
        PolicyError::Parse(String::new()),
        PolicyError::invalid("f", "r"),
        PolicyError::DevRootNotPinned,
        PolicyError::DevRootMissing,
        PolicyError::DevRootMismatch,
        PolicyError::DevRootInvalid(crate::snp::SnpError::BadSignature),
        PolicyError::UnknownModel,
        PolicyError::ModelDigestMismatch,
        PolicyError::UntrustedTee { tee: TeeKind::Tpm },
        PolicyError::ProductNotTrusted(Product::Milan),
        PolicyError::DevEvidenceNotAllowed,
        PolicyError::DevRootNotTrusted,
        PolicyError::DebugEnabled,
        PolicyError::ChipIdMasked,
        PolicyError::ChipKeyMasked,
        PolicyError::MeasurementRevoked,
        PolicyError::MeasurementNotAllowed,
        PolicyError::TcbBelowFloor {
            component: TcbComponent::Tee,
        },
        PolicyError::VmplNotAllowed(1),
        PolicyError::MigrationAgentNotAllowed,
        PolicyError::GuestSvnTooLow { found: 0, min: 1 },
        PolicyError::PcrsNotAllowed,
        PolicyError::AkNotAllowed,
        PolicyError::EkCaNotTrusted,
        PolicyError::NoEventLog,
        PolicyError::BootImageNotAllowed {
            reason: String::new(),
        },
        PolicyError::NameNotAllowed {
            name: String::new(),
        },
    ];
    let codes: std::collections::BTreeSet<_> = all.iter().map(PolicyError::code).collect();
    assert_eq!(codes.len(), all.len());
    assert!(
        codes
            .iter()
            .all(|c| c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
    );
}

// --- tpm_boot: VM boot images, on the real OVMF + Linux log ---------------------------------------

const REAL_LOG: &[u8] = include_bytes!("../../tests/data/ovmf-boot/binary_bios_measurements");
const REAL_PCR4: &str = "9fae912cf62e8a2fcf1a008ab72220e8c014a4fe2ffe382cecf6fdc76a70001f";
const REAL_PCR9: &str = "9b2bcdfcf8a2fe251511572728e26fa176e3bc06281841fb5030a5abe2add579";
const KERNEL: &str = "85e0afa0ca668da659403e1eb3280ae53a9633fc5c56d100f62a9e0fcf54a5f9";
const INITRD: &str = "850a10cd760aabf224b21d9708d41ac8247277989e5e609ad16700baa8945e1c";
const CMDLINE: &str = "console=ttyS0 quiet initrd=initrd";

fn boot_policy_text() -> String {
    format!(
        r#"
id = "boot"
version = 1

[trust]
tpm_aks_spki_sha256 = ["{AK}"]

[models."vm"]
digest = "{DIGEST}"
tpm_pcrs = [[{{ pcr = 4, sha256 = "{REAL_PCR4}" }}, {{ pcr = 9, sha256 = "{REAL_PCR9}" }}]]

[[models."vm".tpm_boot]]
name = "other"
kernel_authenticode_sha256 = "{DIGEST}"
initrd_sha256 = "{INITRD}"
cmdline = "{CMDLINE}"

[[models."vm".tpm_boot]]
name = "debian-6.1-cloud"
kernel_authenticode_sha256 = "{KERNEL}"
initrd_sha256 = "{INITRD}"
cmdline = "{CMDLINE}"

[models."pcrs-only"]
digest = "{DIGEST}"
tpm_pcrs = [[{{ pcr = 4, sha256 = "{REAL_PCR4}" }}]]
"#
    )
}

fn real_boot() -> crate::tpm::BootImageEvents {
    crate::tpm::EventLog::parse(REAL_LOG)
        .unwrap()
        .boot_image()
        .unwrap()
}

fn boot_facts() -> TpmFacts {
    TpmFacts {
        pcrs: BTreeMap::from([(4, b::<32>(REAL_PCR4)), (9, b::<32>(REAL_PCR9))]),
        boot: Some(real_boot()),
        ..tpm()
    }
}

fn run_boot(model: &str, f: &TpmFacts) -> Result<(), PolicyError> {
    let p = Policy::from_toml(&boot_policy_text()).unwrap();
    let m = p.model(model)?.clone();
    check(&p, &m, &Facts::Tpm(f.clone()))
}

#[test]
fn tpm_boot_loads_typed() {
    let p = Policy::from_toml(&boot_policy_text()).unwrap();
    let m = p.model("vm").unwrap();
    assert_eq!(m.tpm_boot.len(), 2);
    let img = &m.tpm_boot[1];
    assert_eq!(img.name.as_deref(), Some("debian-6.1-cloud"));
    assert_eq!(img.kernel_authenticode_sha256, b::<32>(KERNEL));
    assert_eq!(img.initrd_sha256, b::<32>(INITRD));
    assert_eq!(img.cmdline, CMDLINE);
    assert_eq!(
        hex::encode(img.load_options_sha256()),
        "6791447f65301cd17d9cda83bad8f4aa38f69a3257c2ba8315262e9325c78e6d"
    );
    assert!(p.model("pcrs-only").unwrap().tpm_boot.is_empty());
}

#[test]
fn tpm_boot_loading_rejects_bad_entries() {
    let base = boot_policy_text();
    let bad = [
        base.replacen(
            &format!("initrd_sha256 = \"{INITRD}\""),
            "initrd_sha256 = \"abcd\"",
            1,
        ),
        base.replacen(
            &format!("kernel_authenticode_sha256 = \"{KERNEL}\""),
            "kernel_authenticode_sha256 = \"zz\"",
            1,
        ),
        base.replacen("name = \"other\"", "name = \"other\"\nextra = 1", 1),
        base.replacen(&format!("cmdline = \"{CMDLINE}\""), "cmdline = \"a\\u0000b\"", 1),
        base.replacen("name = \"other\"", "name = \"\"", 1),
        // The same image twice.
        base.replacen(
            "name = \"other\"",
            "name = \"debian-6.1-cloud\"",
            1,
        )
        .replacen(
            &format!("kernel_authenticode_sha256 = \"{DIGEST}\""),
            &format!("kernel_authenticode_sha256 = \"{KERNEL}\""),
            1,
        ),
        // Boot images but no PCR set.
        base.replacen(
            &format!(
                "tpm_pcrs = [[{{ pcr = 4, sha256 = \"{REAL_PCR4}\" }}, {{ pcr = 9, sha256 = \"{REAL_PCR9}\" }}]]\n"
            ),
            "",
            1,
        ),
        // A required field missing.
        base.replacen(&format!("cmdline = \"{CMDLINE}\"\n"), "", 1),
    ];
    for (i, text) in bad.iter().enumerate() {
        assert_ne!(text, &base, "case {i} did not change the policy");
        assert!(
            matches!(
                Policy::from_toml(text),
                Err(PolicyError::Invalid { .. } | PolicyError::Parse(_))
            ),
            "case {i} loaded"
        );
    }
}

#[test]
fn tpm_boot_accepts_the_real_boot() {
    run_boot("vm", &boot_facts()).unwrap();
    // A model without tpm_boot does not look at the log.
    run_boot(
        "pcrs-only",
        &TpmFacts {
            pcrs: BTreeMap::from([(4, b::<32>(REAL_PCR4))]),
            boot: None,
            ..boot_facts()
        },
    )
    .unwrap();
}

#[test]
fn tpm_boot_refuses_evidence_without_an_event_log() {
    run_boot("vm", &boot_facts()).unwrap(); // positive control
    let f = TpmFacts {
        boot: None,
        ..boot_facts()
    };
    assert_eq!(run_boot("vm", &f), Err(PolicyError::NoEventLog));
    assert_eq!(PolicyError::NoEventLog.code(), "no_event_log");
}

#[test]
fn tpm_boot_refuses_another_image_naming_the_event() {
    run_boot("vm", &boot_facts()).unwrap(); // positive control
    let mut f = boot_facts();
    f.boot.as_mut().unwrap().pcr9[1].sha256 = [0x12; 32];
    let err = run_boot("vm", &f).unwrap_err();
    assert_eq!(err.code(), "boot_image_not_allowed");
    let msg = err.to_string();
    assert!(
        msg.contains(
            "PCR 9 initrd (Linux initrd) event digest 1212121212121212121212121212121212121212121212121212121212121212 is not the reference 850a10cd"
        ),
        "{msg}"
    );

    let mut f = boot_facts();
    f.boot.as_mut().unwrap().pcr4_applications = vec![[0x34; 32]];
    let msg = run_boot("vm", &f).unwrap_err().to_string();
    assert!(
        msg.contains("PCR 4 kernel (EFI application) digest 3434"),
        "{msg}"
    );

    let mut f = boot_facts();
    f.boot.as_mut().unwrap().pcr9[0].sha256 = [0x56; 32];
    let msg = run_boot("vm", &f).unwrap_err().to_string();
    assert!(msg.contains("PCR 9 command line"), "{msg}");
}

#[test]
fn tpm_boot_does_not_replace_the_pcr_sets() {
    run_boot("vm", &boot_facts()).unwrap(); // positive control
    // A matching boot image with PCRs outside every allowed set is still refused.
    let mut f = boot_facts();
    f.pcrs.insert(9, [0; 32]);
    assert_eq!(run_boot("vm", &f), Err(PolicyError::PcrsNotAllowed));
}

// --- passport: the same rules on a signed result's claims -------------------------------------------

fn claims() -> ResultClaims {
    ResultClaims {
        iss: "v".into(),
        aud: "c".into(),
        iat: 1,
        exp: 2,
        status: Status::Affirming,
        tee: TeeKind::SevSnp,
        measurement: hex::decode(M1).unwrap(),
        tcb: Some(tcb(3, 0, 8, 115)),
        policy_id: "test".into(),
        policy_version: 7,
        model_id: "m".into(),
        model_digest: crate::digest::Blake3Digest::from_bytes(b::<32>(DIGEST)),
        tls_spki_sha256: [0; 32],
        evidence_digest: [0; 32],
        dev: false,
        nonce: None,
        tpm_ak_spki_sha256: None,
        mask_chip_id: false,
        mask_chip_key: false,
    }
}

#[test]
fn result_claims_are_checked_by_the_same_rules() {
    let p = policy();
    p.check_result(&claims()).unwrap(); // positive control
    type Mutation = fn(&mut ResultClaims);
    let cases: Vec<(Mutation, PolicyError)> = vec![
        (|c| c.model_id = "other".into(), PolicyError::UnknownModel),
        (
            |c| c.model_digest = crate::digest::Blake3Digest::from_bytes([0; 32]),
            PolicyError::ModelDigestMismatch,
        ),
        (
            |c| c.measurement = hex::decode(M2).unwrap(),
            PolicyError::MeasurementRevoked,
        ),
        (
            |c| c.measurement[0] ^= 1,
            PolicyError::MeasurementNotAllowed,
        ),
        (
            |c| c.tcb = Some(tcb(3, 0, 7, 115)),
            PolicyError::TcbBelowFloor {
                component: TcbComponent::Snp,
            },
        ),
        (|c| c.mask_chip_id = true, PolicyError::ChipIdMasked),
        (|c| c.mask_chip_key = true, PolicyError::ChipKeyMasked),
    ];
    for (mutate, want) in cases {
        let mut c = claims();
        mutate(&mut c);
        assert_eq!(p.check_result(&c), Err(want));
    }
    // Development results need the model's consent and a pinned development root.
    let mut dev = claims();
    dev.dev = true;
    p.check_result(&dev).unwrap();
    dev.model_id = "strict".into();
    assert_eq!(
        p.check_result(&dev),
        Err(PolicyError::DevEvidenceNotAllowed)
    );
}

#[test]
fn a_tpm_result_must_be_the_composite_of_an_allowed_set() {
    let p = policy();
    let mut c = claims();
    c.tee = TeeKind::Tpm;
    c.tcb = None;
    c.measurement = pcr_composite(&tpm().pcrs).to_vec();
    p.check_result(&c).unwrap();
    let mut extra = tpm().pcrs;
    extra.insert(9, [9; 32]);
    c.measurement = pcr_composite(&extra).to_vec();
    assert_eq!(p.check_result(&c), Err(PolicyError::MeasurementNotAllowed));
}
