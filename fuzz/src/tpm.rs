//! TPM 2.0: marshalled structures, quotes, tpm2-tools files, event logs, EK certificates.

use std::collections::BTreeMap;

use confidant_attestation::evidence::{Evidence, TpmEvidence};
use confidant_attestation::tpm::credential::{challenge_ak, object_name};
use confidant_attestation::tpm::tools::{
    parse_pcr_list, parse_pcrs_file, read_quote_files, spki_der_from_pem,
};
use confidant_attestation::tpm::{
    EventLog, TpmTrustAnchors, TpmsAttest, TpmtPublic, TpmtSignature,
};
use confidant_attestation::verify::TrustAnchors;
use rand::SeedableRng;
use serde_bytes::ByteBuf;

use crate::frame::{part, split};

/// One byte string through each structure decoder.
pub fn structures(data: &[u8]) {
    let _ = TpmsAttest::parse_quote(data);
    let _ = TpmtSignature::parse(data);
    let _ = object_name(data);
    let _ = TpmtPublic::parse_tpm2b(data);
    if let Ok(public) = TpmtPublic::parse(data) {
        // A decoded public area re-encodes to one that decodes to the same key.
        let again = TpmtPublic::parse(&public.marshal());
        assert!(
            again.is_ok_and(|a| a.fingerprint() == public.fingerprint()),
            "TPMT_PUBLIC does not survive its own re-encoding"
        );
        let _ = public.spki_der();
    }
}

/// Parts: quote, signature, AK `TPMT_PUBLIC`, PCR values (index byte + 32 bytes, repeated),
/// event log. The AK is enrolled when it parses, so verification reaches the signature, the PCR
/// digest and the event-log replay.
pub fn quote(data: &[u8]) {
    let parts = split(data, 5);
    let ak_public = part(&parts, 2);
    let pcrs: BTreeMap<u8, ByteBuf> = part(&parts, 3)
        .chunks(33)
        .filter_map(|c| Some((*c.first()?, ByteBuf::from(c.get(1..)?))))
        .collect();
    let event_log = parts.get(4).map(|l| ByteBuf::from(*l));
    let evidence = Evidence::Tpm(TpmEvidence {
        quote: part(&parts, 0).to_vec(),
        signature: part(&parts, 1).to_vec(),
        ak_public: ak_public.to_vec(),
        pcrs,
        event_log,
    });
    let mut tpm = TpmTrustAnchors::default();
    let _ = tpm.enroll_ak_public(ak_public);
    let anchors = TrustAnchors {
        tpm,
        ..TrustAnchors::default()
    };
    crate::verify_built(&evidence, &anchors);
}

/// Parts: message, signature, AK file (PEM or binary), PCR values file, PCR list (text).
pub fn tools(data: &[u8]) {
    let parts = split(data, 5);
    let list = String::from_utf8_lossy(part(&parts, 4));
    if let Ok(indices) = parse_pcr_list(&list) {
        let _ = parse_pcrs_file(part(&parts, 3), &indices);
    }
    let _ = parse_pcrs_file(part(&parts, 3), &[0, 1, 7]);
    if let Ok(pem) = std::str::from_utf8(part(&parts, 2)) {
        let _ = spki_der_from_pem(pem);
    }
    let _ = read_quote_files(
        part(&parts, 0),
        part(&parts, 1),
        part(&parts, 2),
        part(&parts, 3),
        &list,
    );
}

/// A `binary_bios_measurements` log: parsed, replayed, its boot events extracted.
pub fn eventlog(data: &[u8]) {
    let Ok(log) = EventLog::parse(data) else {
        return;
    };
    let replayed = log.replay_sha256();
    assert!(
        log.replay_matches(&replayed).is_ok(),
        "an event log does not replay to its own replay"
    );
    let _ = log.startup_locality();
    let _ = log.pcr4_applications();
    let _ = log.pcr9_events();
    if let Ok(boot) = log.boot_image() {
        let _ = boot.claims();
    }
}

/// Parts: EK certificate, EK CA certificate, EK `TPMT_PUBLIC`, AK `TPMT_PUBLIC`. Checked at a
/// fixed time (2026-01-01) so results do not depend on when the fuzzer runs.
pub fn ek_cert(data: &[u8]) {
    const NOW: confidant_attestation::time::UnixTime =
        confidant_attestation::time::UnixTime::from_secs(1_767_225_600);
    let parts = split(data, 4);
    let cas = vec![part(&parts, 1).to_vec()];
    // Only used once every check passed (to make the credential's secret).
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(0);
    let _ = challenge_ak(
        part(&parts, 0),
        part(&parts, 2),
        part(&parts, 3),
        &cas,
        NOW,
        &mut rng,
    );
}
