//! The TCG crypto-agile event log decoder, replay and boot-image appraisal, on a real OVMF + Linux
//! boot log (`tests/data/ovmf-boot/`), cross-checked against `tpm2_eventlog`, plus tampered and
//! random inputs (refused with an error, never a panic).
#![allow(
    clippy::unwrap_used,
    reason = "test support code: a panic is a test failure"
)]

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;

use confidant_attestation::policy::{
    BootImageRef, PolicyError, check_boot_image, match_boot_image,
};
use confidant_attestation::tpm::eventlog::{
    EV_EFI_BOOT_SERVICES_APPLICATION, EV_EVENT_TAG, EV_NO_ACTION, TAG_INITRD, TAG_LOAD_OPTIONS,
    load_options_digest,
};
use confidant_attestation::tpm::{
    BootImageEvents, EventLog, EventLogError, TpmError, replay_event_log,
};

const KERNEL: &str = "85e0afa0ca668da659403e1eb3280ae53a9633fc5c56d100f62a9e0fcf54a5f9";
const CMDLINE_DIGEST: &str = "6791447f65301cd17d9cda83bad8f4aa38f69a3257c2ba8315262e9325c78e6d";
const INITRD: &str = "850a10cd760aabf224b21d9708d41ac8247277989e5e609ad16700baa8945e1c";
const CMDLINE: &str = "console=ttyS0 quiet initrd=initrd";

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/ovmf-boot")
}

fn log_bytes() -> Vec<u8> {
    std::fs::read(data_dir().join("binary_bios_measurements")).unwrap()
}

fn b32(h: &str) -> [u8; 32] {
    hex::decode(h).unwrap().try_into().unwrap()
}

/// PCRs 0-9 as read in the guest.
fn guest_pcrs() -> BTreeMap<u8, [u8; 32]> {
    let text = std::fs::read_to_string(data_dir().join("pcrs-sha256.txt")).unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (name, value) = l.split_once(' ').unwrap();
            let index: u8 = name.trim_start_matches("PCR").parse().unwrap();
            (index, b32(&value.trim().to_ascii_lowercase()))
        })
        .collect()
}

fn reference() -> BootImageRef {
    BootImageRef {
        name: Some("debian-6.1-cloud".into()),
        kernel_authenticode_sha256: b32(KERNEL),
        initrd_sha256: b32(INITRD),
        cmdline: CMDLINE.into(),
    }
}

fn boot() -> BootImageEvents {
    EventLog::parse(&log_bytes()).unwrap().boot_image().unwrap()
}

/// Byte offsets where each record starts (0 = the Spec ID event), found by walking the real log's
/// one-algorithm (SHA-256) layout.
fn record_offsets(log: &[u8]) -> Vec<usize> {
    let u32_at = |o: usize| u32::from_le_bytes(log[o..o + 4].try_into().unwrap()) as usize;
    let mut out = vec![0];
    let mut pos = 32 + u32_at(28);
    while pos < log.len() {
        out.push(pos);
        // pcr, type, count, alg (2), digest (32), size
        pos += 4 + 4 + 4 + 2 + 32;
        pos += 4 + u32_at(pos);
    }
    out
}

fn no_panic<T>(input: &[u8], f: impl FnOnce(&[u8]) -> T) -> T {
    match catch_unwind(AssertUnwindSafe(|| f(input))) {
        Ok(v) => v,
        Err(_) => panic!("EventLog::parse panicked on {}", hex::encode(input)),
    }
}

#[test]
fn real_log_parses() {
    let log = EventLog::parse(&log_bytes()).unwrap();
    let spec = log.spec_id();
    assert_eq!(spec.algorithms, vec![(0x000B, 32)]);
    assert_eq!(spec.spec_version_major, 2);
    assert_eq!(spec.uintn_size, 2);
    assert_eq!(log.events().len(), 24);
    assert_eq!(log.startup_locality(), None);
    for (i, e) in log.events().iter().enumerate() {
        assert_eq!(e.index, i + 1);
        assert!(e.sha256().is_some());
    }
}

#[test]
fn replay_equals_the_guest_pcrs() {
    let log = EventLog::parse(&log_bytes()).unwrap();
    let replayed = log.replay_sha256();
    let guest = guest_pcrs();
    assert_eq!(guest.len(), 10);
    for (pcr, value) in &guest {
        let got = replayed.get(pcr).copied().unwrap_or([0; 32]);
        assert_eq!(hex::encode(got), hex::encode(value), "PCR {pcr}");
    }
    log.replay_matches(&guest).unwrap();
    // PCR 8 has no events and is zero; a quoted never-extended PCR must be zero.
    assert!(!replayed.contains_key(&8));
    let mut with_16 = guest.clone();
    with_16.insert(16, [0; 32]);
    log.replay_matches(&with_16).unwrap();
    with_16.insert(16, [1; 32]);
    assert!(matches!(
        log.replay_matches(&with_16),
        Err(EventLogError::PcrMismatch { pcr: 16, .. })
    ));
}

#[test]
fn boot_image_events_of_the_real_log() {
    let log = EventLog::parse(&log_bytes()).unwrap();
    assert_eq!(log.pcr4_applications(), vec![b32(KERNEL)]);
    let b = boot();
    assert_eq!(b.pcr9.len(), 2);
    let cmd = b.pcr9[0].tagged.as_ref().unwrap();
    assert_eq!(cmd.tag, TAG_LOAD_OPTIONS);
    assert_eq!(cmd.data, b"LOADED_IMAGE::LoadOptions\0");
    assert_eq!(b.pcr9[0].sha256, b32(CMDLINE_DIGEST));
    assert_eq!(load_options_digest(CMDLINE), b32(CMDLINE_DIGEST));
    let initrd = b.pcr9[1].tagged.as_ref().unwrap();
    assert_eq!(initrd.tag, TAG_INITRD);
    assert_eq!(initrd.data, b"Linux initrd\0");
    assert_eq!(b.pcr9[1].sha256, b32(INITRD));
    assert_eq!(b.load_options_sha256(), Some(b32(CMDLINE_DIGEST)));
    assert_eq!(b.initrd_sha256(), Some(b32(INITRD)));
    let claims = serde_json::to_value(b.claims()).unwrap();
    assert_eq!(claims["pcr4_applications"][0], KERNEL);
    assert_eq!(claims["initrd_sha256"], INITRD);
}

/// `tpm2_eventlog` (tpm2-tools, installed by scripts/setup.sh) agrees on the event count and the
/// PCR 4 / PCR 9 digests.
#[test]
fn agrees_with_tpm2_eventlog() {
    let path = data_dir().join("binary_bios_measurements");
    let out = std::process::Command::new("tpm2_eventlog")
        .arg(&path)
        .output()
        .expect("tpm2_eventlog (tpm2-tools; scripts/setup.sh installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let yaml = String::from_utf8(out.stdout).unwrap();

    // Walk the YAML by event: PCRIndex, EventType, and the sha256 digest that follows.
    let mut tools: Vec<(u8, String, Option<String>)> = Vec::new();
    let mut lines = yaml.lines().peekable();
    while let Some(line) = lines.next() {
        let t = line.trim();
        if t.starts_with("- EventNum:") {
            tools.push((0, String::new(), None));
        } else if let (Some(v), Some(last)) = (t.strip_prefix("PCRIndex: "), tools.last_mut()) {
            last.0 = v.parse().unwrap();
        } else if let (Some(v), Some(last)) = (t.strip_prefix("EventType: "), tools.last_mut()) {
            last.1 = v.to_string();
        } else if t == "- AlgorithmId: sha256" {
            let d = lines.next().unwrap().trim();
            let d = d.strip_prefix("Digest: ").unwrap().trim_matches('"');
            if let Some(last) = tools.last_mut() {
                last.2 = Some(d.to_string());
            }
        } else if t == "pcrs:" {
            break;
        }
    }
    let log = EventLog::parse(&log_bytes()).unwrap();
    // tpm2_eventlog counts the Spec ID event too.
    assert_eq!(tools.len(), log.events().len() + 1);
    for (e, (pcr, kind, digest)) in log.events().iter().zip(tools.iter().skip(1)) {
        assert_eq!(e.pcr, *pcr, "event {}", e.index);
        assert_eq!(
            e.sha256().map(hex::encode),
            digest.clone(),
            "event {}",
            e.index
        );
        match e.event_type {
            EV_EFI_BOOT_SERVICES_APPLICATION => {
                assert_eq!(kind, "EV_EFI_BOOT_SERVICES_APPLICATION")
            }
            EV_EVENT_TAG => assert_eq!(kind, "EV_EVENT_TAG"),
            EV_NO_ACTION => assert_eq!(kind, "EV_NO_ACTION"),
            _ => {}
        }
    }
    let tools_pcr4_apps: Vec<String> = tools
        .iter()
        .filter(|(p, k, _)| *p == 4 && k == "EV_EFI_BOOT_SERVICES_APPLICATION")
        .filter_map(|(_, _, d)| d.clone())
        .collect();
    assert_eq!(tools_pcr4_apps, vec![KERNEL.to_string()]);
    let tools_pcr9: Vec<String> = tools
        .iter()
        .filter(|(p, _, _)| *p == 9)
        .filter_map(|(_, _, d)| d.clone())
        .collect();
    assert_eq!(
        tools_pcr9,
        vec![CMDLINE_DIGEST.to_string(), INITRD.to_string()]
    );
}

// --- the verify-path step ---------------------------------------------------------------------

#[test]
fn verify_path_replay_accepts_the_real_log_and_pcrs() {
    let b = replay_event_log(&log_bytes(), &guest_pcrs()).unwrap();
    assert_eq!(b, boot());
}

#[test]
fn flipped_digest_byte_fails_replay_naming_the_pcr() {
    let log = log_bytes();
    let offsets = record_offsets(&log);
    let parsed = EventLog::parse(&log).unwrap();
    // Flip one digest byte in every record in turn: the replay must fail on its PCR.
    for (n, e) in parsed.events().iter().enumerate() {
        let mut bad = log.clone();
        let digest_at = offsets[n + 1] + 4 + 4 + 4 + 2;
        bad[digest_at + 5] ^= 0x01;
        let got = replay_event_log(&bad, &guest_pcrs());
        if e.event_type == EV_NO_ACTION {
            got.unwrap();
            continue;
        }
        match got {
            Err(TpmError::EventLogReplay { pcr, .. }) => assert_eq!(pcr, e.pcr, "event {n}"),
            other => panic!("event {}: {other:?}", e.index),
        }
    }
    // The message names the PCR.
    let mut bad = log.clone();
    bad[offsets[1] + 14] ^= 0x80;
    let msg = replay_event_log(&bad, &guest_pcrs())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("PCR 0"), "{msg}");
}

#[test]
fn removed_event_is_refused() {
    let log = log_bytes();
    let offsets = record_offsets(&log);
    for n in 1..offsets.len() {
        let end = offsets.get(n + 1).copied().unwrap_or(log.len());
        let mut bad = log[..offsets[n]].to_vec();
        bad.extend_from_slice(&log[end..]);
        let parsed = EventLog::parse(&bad).unwrap();
        if parsed.events().len() + 1 == offsets.len() - 1 {
            let original = EventLog::parse(&log).unwrap();
            let removed = &original.events()[n - 1];
            if removed.event_type == EV_NO_ACTION {
                continue;
            }
            assert!(
                matches!(
                    parsed.replay_matches(&guest_pcrs()),
                    Err(EventLogError::PcrMismatch { pcr, .. }) if pcr == removed.pcr
                ),
                "removing event {n} went unnoticed"
            );
        }
    }
}

#[test]
fn truncation_is_refused_naming_the_offset() {
    let log = log_bytes();
    let offsets = record_offsets(&log);
    // Every offset of the first four records, then every cut that is not a record boundary.
    let first_few = offsets[4];
    for cut in 0..log.len() {
        if cut > first_few && cut % 7 != 0 {
            continue;
        }
        let got = EventLog::parse(&log[..cut]);
        if offsets.contains(&cut) && cut > 0 {
            // A cut at a record boundary is a shorter valid log; replay catches it.
            let parsed = got.unwrap();
            assert!(parsed.replay_matches(&guest_pcrs()).is_err(), "cut {cut}");
            continue;
        }
        match got {
            Err(EventLogError::Empty) => assert_eq!(cut, 0),
            Err(EventLogError::Truncated { offset, .. }) => {
                let record = offsets.iter().rev().find(|o| **o <= cut).unwrap();
                assert_eq!(offset, *record, "cut {cut}");
            }
            Err(EventLogError::BadSpecId { .. }) => assert!(cut < offsets[1], "cut {cut}"),
            other => panic!("cut {cut}: {other:?}"),
        }
    }
}

#[test]
fn trailing_bytes_are_refused() {
    let log = log_bytes();
    for extra in 1..60 {
        let mut bad = log.clone();
        bad.extend(std::iter::repeat_n(0u8, extra));
        match EventLog::parse(&bad) {
            Err(EventLogError::Truncated { offset, .. }) => assert_eq!(offset, log.len()),
            Err(EventLogError::DigestCount { offset, .. }) => assert_eq!(offset, log.len()),
            other => panic!("{extra} trailing bytes: {other:?}"),
        }
    }
}

#[test]
fn hostile_sizes_and_counts_are_refused() {
    let log = log_bytes();
    let offsets = record_offsets(&log);
    let rec = offsets[3];
    let set_u32 =
        |v: &mut Vec<u8>, at: usize, x: u32| v[at..at + 4].copy_from_slice(&x.to_le_bytes());

    // Huge eventSize.
    for size in [u32::MAX, 0x0100_0000, 64 * 1024 + 1] {
        let mut bad = log.clone();
        set_u32(&mut bad, rec + 4 + 4 + 4 + 2 + 32, size);
        assert!(
            matches!(EventLog::parse(&bad), Err(EventLogError::EventTooLarge { event: 3, offset, .. }) if offset == rec)
        );
    }
    // eventSize that runs past the end.
    let mut bad = log.clone();
    set_u32(&mut bad, rec + 46, 60_000);
    assert!(matches!(
        EventLog::parse(&bad),
        Err(EventLogError::Truncated { event: 3, .. })
    ));
    // Zero and huge digest counts.
    for count in [0, 2, u32::MAX] {
        let mut bad = log.clone();
        set_u32(&mut bad, rec + 8, count);
        assert!(matches!(
            EventLog::parse(&bad),
            Err(EventLogError::DigestCount {
                event: 3,
                expected: 1,
                ..
            })
        ));
    }
    // An undeclared algorithm.
    let mut bad = log.clone();
    bad[rec + 12] = 0x04;
    assert!(matches!(
        EventLog::parse(&bad),
        Err(EventLogError::UnexpectedAlgorithm { alg: 0x0004, .. })
    ));
    // PCR index out of range.
    let mut bad = log.clone();
    set_u32(&mut bad, rec, 24);
    assert!(matches!(
        EventLog::parse(&bad),
        Err(EventLogError::PcrIndex { pcr: 24, .. })
    ));
    // Spec ID: bad signature, zero algorithms, no SHA-256, wrong SHA-256 size.
    for (at, value) in [(32usize, b'X'), (56, 0), (60, 0x0C), (62, 48)] {
        let mut bad = log.clone();
        bad[at] = value;
        assert!(
            matches!(EventLog::parse(&bad), Err(EventLogError::BadSpecId { .. })),
            "spec id byte {at}"
        );
    }
    // Over the total size cap.
    let huge = vec![0u8; confidant_attestation::tpm::eventlog::MAX_EVENT_LOG + 1];
    assert!(matches!(
        EventLog::parse(&huge),
        Err(EventLogError::TooLarge { .. })
    ));
}

#[test]
fn startup_locality_sets_pcr0_start() {
    // Insert a StartupLocality EV_NO_ACTION event (locality 3) right after the Spec ID event.
    let log = log_bytes();
    let offsets = record_offsets(&log);
    let mut ev = Vec::new();
    ev.extend(0u32.to_le_bytes());
    ev.extend(EV_NO_ACTION.to_le_bytes());
    ev.extend(1u32.to_le_bytes());
    ev.extend(0x000Bu16.to_le_bytes());
    ev.extend([0u8; 32]);
    let data = b"StartupLocality\0\x03";
    ev.extend((data.len() as u32).to_le_bytes());
    ev.extend(data);
    let mut with = log[..offsets[1]].to_vec();
    with.extend(&ev);
    with.extend(&log[offsets[1]..]);
    let parsed = EventLog::parse(&with).unwrap();
    assert_eq!(parsed.startup_locality(), Some(3));
    let pcr0 = parsed.replay_sha256()[&0];
    assert_ne!(pcr0, guest_pcrs()[&0]);
    // The same events from 00..03 by hand.
    let mut v = [0u8; 32];
    v[31] = 3;
    for e in parsed
        .events()
        .iter()
        .filter(|e| e.pcr == 0 && e.event_type != EV_NO_ACTION)
    {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(v);
        h.update(e.sha256().unwrap());
        v = h.finalize().into();
    }
    assert_eq!(pcr0, v);
    // Misplaced (after PCR 0 measurements) is refused.
    let mut late = log[..offsets[4]].to_vec();
    late.extend(&ev);
    late.extend(&log[offsets[4]..]);
    assert!(matches!(
        EventLog::parse(&late),
        Err(EventLogError::BadStartupLocality { event: 4, .. })
    ));
}

#[test]
fn never_panics_on_random_mutations() {
    // splitmix64, fixed seed.
    let mut state: u64 = 0x5EED_0000_E7E7_0001;
    let mut next = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let log = log_bytes();
    let pcrs = guest_pcrs();
    let mut accepted = 0;
    for i in 0..4000 {
        let mut m = log.clone();
        match i % 4 {
            0 => {
                let at = next() as usize % m.len();
                m[at] ^= 1 << (next() % 8);
            }
            1 => {
                for _ in 0..1 + next() % 8 {
                    let at = next() as usize % m.len();
                    m[at] = next() as u8;
                }
            }
            2 => {
                // A random u32 at a random position (sizes and counts).
                let at = next() as usize % (m.len() - 4);
                m[at..at + 4].copy_from_slice(&(next() as u32).to_le_bytes());
            }
            _ => {
                let cut = next() as usize % m.len();
                m.truncate(cut);
                let extra = next() as usize % 64;
                m.extend((0..extra).map(|_| next() as u8));
            }
        }
        no_panic(&m, |m| {
            if let Ok(parsed) = EventLog::parse(m) {
                accepted += 1;
                let _ = parsed.replay_matches(&pcrs);
                let _ = parsed.boot_image();
            }
            let _ = replay_event_log(m, &pcrs);
        });
    }
    // Some flips land in event data or digests, which still parse.
    assert!(accepted > 0);
}

// --- boot-image appraisal (pure, on the real log's facts) -------------------------------------

#[test]
fn boot_image_reference_matches_the_real_log() {
    check_boot_image(&boot(), &reference()).unwrap();
    let r = [reference()];
    let m = match_boot_image(Some(&boot()), &r).unwrap();
    assert_eq!(m.matched().cmdline, CMDLINE);
    assert_eq!(m.matched().kernel_authenticode_sha256, KERNEL);
    assert_eq!(m.matched().initrd_sha256, INITRD);
}

fn refusal(events: &BootImageEvents, reference: &BootImageRef) -> String {
    match check_boot_image(events, reference) {
        Err(PolicyError::BootImageNotAllowed { reason }) => reason,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn boot_image_refusals_name_the_event() {
    let good = reference();
    let events = boot();
    check_boot_image(&events, &good).unwrap(); // positive control

    let r = BootImageRef {
        kernel_authenticode_sha256: [0x12; 32],
        ..good.clone()
    };
    let reason = refusal(&events, &r);
    assert!(
        reason.starts_with(&format!(
            "PCR 4 kernel (EFI application) digest {KERNEL} is not the reference 1212"
        )),
        "{reason}"
    );

    let r = BootImageRef {
        initrd_sha256: [0x34; 32],
        ..good.clone()
    };
    let reason = refusal(&events, &r);
    assert!(
        reason.contains(&format!(
            "PCR 9 initrd (Linux initrd) event digest {INITRD} is not the reference 3434"
        )),
        "{reason}"
    );

    let r = BootImageRef {
        cmdline: "console=ttyS0 quiet".into(),
        ..good.clone()
    };
    let reason = refusal(&events, &r);
    assert!(reason.contains(&format!("PCR 9 command line (LOADED_IMAGE::LoadOptions) event digest {CMDLINE_DIGEST} is not the reference")), "{reason}");

    // Two applications in PCR 4 (a boot loader before the kernel).
    let mut two = events.clone();
    two.pcr4_applications.insert(0, [0xAA; 32]);
    assert!(refusal(&two, &good).contains("PCR 4 has 2 EFI application events"));
    let mut none = events.clone();
    none.pcr4_applications.clear();
    assert!(refusal(&none, &good).contains("PCR 4 has 0 EFI application events"));

    // An extra, a missing, and swapped PCR 9 events.
    let mut extra = events.clone();
    extra.pcr9.push(extra.pcr9[1].clone());
    assert!(refusal(&extra, &good).contains("PCR 9 has 3 events"));
    let mut missing = events.clone();
    missing.pcr9.pop();
    assert!(refusal(&missing, &good).contains("PCR 9 has 1 events"));
    let mut swapped = events.clone();
    swapped.pcr9.swap(0, 1);
    assert!(
        refusal(&swapped, &good)
            .contains("is not the command line (LOADED_IMAGE::LoadOptions) tagged event")
    );
    let mut untagged = events.clone();
    untagged.pcr9[1].tagged = None;
    assert!(refusal(&untagged, &good).contains("is not the initrd (Linux initrd) tagged event"));
}

#[test]
fn boot_image_needs_an_event_log_and_picks_the_matching_entry() {
    let good = reference();
    assert_eq!(
        match_boot_image(None, std::slice::from_ref(&good)),
        Err(PolicyError::NoEventLog)
    );
    let other_kernel = BootImageRef {
        kernel_authenticode_sha256: [1; 32],
        name: Some("other".into()),
        ..good.clone()
    };
    let other_initrd = BootImageRef {
        initrd_sha256: [2; 32],
        name: Some("other-initrd".into()),
        ..good.clone()
    };
    // The matching entry wins wherever it is listed.
    let refs = [other_kernel.clone(), other_initrd.clone(), good.clone()];
    assert_eq!(match_boot_image(Some(&boot()), &refs).unwrap(), &good);
    // None matches: the refusal is that of the entry whose kernel matched.
    let refs = [other_kernel, other_initrd];
    let err = match_boot_image(Some(&boot()), &refs)
        .unwrap_err()
        .to_string();
    assert!(err.contains("PCR 9 initrd"), "{err}");
}

/// The commented `tpm_boot` example in docs/policy.example.toml loads once uncommented, and
/// matches the real log.
#[test]
fn example_policy_tpm_boot_loads_when_uncommented() {
    let text = std::fs::read_to_string(
        confidant_testkit::workspace_root().join("docs/policy.example.toml"),
    )
    .unwrap();
    let start = text.find("# [[models.").unwrap();
    let mut out = text[..start].to_string();
    for line in text[start..].lines() {
        out.push_str(line.strip_prefix("# ").unwrap_or(line));
        out.push('\n');
    }
    let p = confidant_attestation::policy::Policy::from_toml(&out).unwrap();
    let m = p.model("smollm2-135m-instruct").unwrap();
    assert_eq!(m.tpm_boot.len(), 1);
    check_boot_image(&boot(), &m.tpm_boot[0]).unwrap();
}

// --- verify_quote end to end: a quote signed by a software AK over the real PCR values ---------

mod soft_quote {
    use super::*;
    use confidant_attestation::evidence::TpmEvidence;
    use confidant_attestation::tpm::constants::*;
    use confidant_attestation::tpm::public::{KeyScheme, PublicKey};
    use confidant_attestation::tpm::{TpmTrustAnchors, TpmtPublic, VerifiedTpmQuote, verify_quote};
    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
    use serde_bytes::ByteBuf;

    fn tpm2b(out: &mut Vec<u8>, v: &[u8]) {
        out.extend_from_slice(&(v.len() as u16).to_be_bytes());
        out.extend_from_slice(v);
    }

    /// Evidence for PCRs 0-9 with the given log, and anchors trusting its AK.
    pub(super) fn evidence(log: Option<Vec<u8>>) -> (TpmEvidence, TpmTrustAnchors) {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let point = key.public_key().as_ref();
        let public = TpmtPublic {
            name_alg: TPM_ALG_SHA256,
            object_attributes: 0x0005_0072,
            auth_policy: vec![],
            scheme: Some(KeyScheme {
                scheme: TPM_ALG_ECDSA,
                hash: Some(TPM_ALG_SHA256),
            }),
            key: PublicKey::EccP256 {
                x: point[1..33].try_into().unwrap(),
                y: point[33..65].try_into().unwrap(),
            },
        };
        let pcrs = guest_pcrs();
        let concat: Vec<u8> = pcrs.values().flatten().copied().collect();
        let mut q = Vec::new();
        q.extend_from_slice(&TPM_GENERATED_VALUE.to_be_bytes());
        q.extend_from_slice(&TPM_ST_ATTEST_QUOTE.to_be_bytes());
        tpm2b(
            &mut q,
            &[&TPM_ALG_SHA256.to_be_bytes()[..], &[0x5a; 32]].concat(),
        );
        tpm2b(&mut q, &[0x42; 32]);
        q.extend_from_slice(&1234u64.to_be_bytes());
        q.extend_from_slice(&5u32.to_be_bytes());
        q.extend_from_slice(&0u32.to_be_bytes());
        q.push(1);
        q.extend_from_slice(&7u64.to_be_bytes());
        q.extend_from_slice(&1u32.to_be_bytes());
        q.extend_from_slice(&TPM_ALG_SHA256.to_be_bytes());
        q.extend_from_slice(&[3, 0xFF, 0x03, 0x00]); // PCRs 0-9
        tpm2b(
            &mut q,
            ring::digest::digest(&ring::digest::SHA256, &concat).as_ref(),
        );
        let sig = key.sign(&rng, &q).unwrap();
        let sig = sig.as_ref();
        let mut signature = Vec::new();
        signature.extend_from_slice(&TPM_ALG_ECDSA.to_be_bytes());
        signature.extend_from_slice(&TPM_ALG_SHA256.to_be_bytes());
        tpm2b(&mut signature, &sig[..32]);
        tpm2b(&mut signature, &sig[32..]);
        let mut anchors = TpmTrustAnchors::default();
        anchors.enroll_ak_spki_der(&public.spki_der());
        let ev = TpmEvidence {
            quote: q,
            signature,
            ak_public: public.marshal(),
            pcrs: pcrs
                .iter()
                .map(|(i, v)| (*i, ByteBuf::from(v.to_vec())))
                .collect(),
            event_log: log.map(ByteBuf::from),
        };
        (ev, anchors)
    }

    pub(super) fn verify(log: Option<Vec<u8>>) -> Result<VerifiedTpmQuote, TpmError> {
        let (ev, anchors) = evidence(log);
        verify_quote(&ev, &anchors)
    }
}

#[test]
fn verify_quote_replays_the_event_log() {
    // No log: verifies, no boot facts (positive control for the harness).
    let q = soft_quote::verify(None).unwrap();
    assert!(q.boot().is_none());
    assert!(
        serde_json::to_value(q.claims())
            .unwrap()
            .get("boot")
            .is_none(),
        "no boot claims without a log"
    );

    // The real log replays to the quoted PCRs: boot facts kept and serialised.
    let q = soft_quote::verify(Some(log_bytes())).unwrap();
    assert_eq!(q.boot(), Some(&boot()));
    let claims = serde_json::to_value(q.claims()).unwrap();
    assert_eq!(claims["boot"]["pcr4_applications"][0], KERNEL);
    assert_eq!(claims["boot"]["load_options_sha256"], CMDLINE_DIGEST);
    assert_eq!(claims["boot"]["initrd_sha256"], INITRD);

    // A flipped digest byte in the PCR 9 initrd event: refused naming PCR 9.
    let log = log_bytes();
    let offsets = record_offsets(&log);
    let mut bad = log.clone();
    bad[offsets[22] + 14] ^= 1;
    let err = soft_quote::verify(Some(bad)).unwrap_err();
    assert!(
        matches!(err, TpmError::EventLogReplay { pcr: 9, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("quoted PCR 9"), "{err}");

    // A malformed log: refused as such.
    let err = soft_quote::verify(Some(log[..log.len() - 1].to_vec())).unwrap_err();
    assert!(
        matches!(err, TpmError::EventLog(EventLogError::Truncated { .. })),
        "{err:?}"
    );
}
