//! The TPM attester on a live swtpm (one private swtpm per test), checked by the verifier.
#![allow(clippy::unwrap_used, reason = "tests panic on unexpected failures")]

use confidant_attestation::binding::{Binding, KeyRelease};
use confidant_attestation::digest::Blake3Digest;
use confidant_attestation::evidence::{Evidence, ReceivedEvidence, TpmEvidence};
use confidant_attestation::time::UnixTime;
use confidant_attestation::tpm::{TpmError, TpmTrustAnchors, verify_quote};
use confidant_attestation::verify::{
    BindingError, TrustAnchors, VerifiedEvidence, VerifyError, verify_evidence,
};
use confidant_attester::error::AttesterError;
use confidant_attester::tpm::{AkAlgorithm, TpmAttester};
use confidant_testkit::swtpm::Swtpm;
use serde_bytes::ByteBuf;

const PCRS: &[u8] = &[0, 7, 14, 16];

fn binding(nonce: u8) -> Binding<KeyRelease> {
    Binding::compute(KeyRelease {
        nonce: [nonce; 32],
        tls_spki_der: b"spki".to_vec(),
        wrap_pk: [2; 32],
        model_digest: Blake3Digest::from_bytes([3; 32]),
    })
}

/// Verifies a quote as the verifier would: encoded, decoded through the one gate, verified now.
fn verify(ev: &TpmEvidence, anchors: &TrustAnchors) -> Result<VerifiedEvidence, VerifyError> {
    let received = ReceivedEvidence::decode(&Evidence::Tpm(ev.clone()).to_cbor()).unwrap();
    verify_evidence(
        received,
        anchors,
        UnixTime::from_secs(confidant_testkit::now_secs()),
    )
}

fn anchors_for(att: &TpmAttester) -> TrustAnchors {
    let mut tpm = TpmTrustAnchors::default();
    tpm.enroll_ak_spki_der(&att.ak_spki_der().unwrap());
    TrustAnchors {
        tpm,
        ..Default::default()
    }
}

fn tpm_err(ev: &TpmEvidence, anchors: &TrustAnchors) -> TpmError {
    match verify(ev, anchors) {
        Err(VerifyError::Tpm(e)) => e,
        other => panic!("expected a TPM error, got {other:?}"),
    }
}

fn quote_and_tamper(alg: AkAlgorithm) {
    let swtpm = Swtpm::start().unwrap();
    let mut att = TpmAttester::create(&swtpm.tcti(), alg).unwrap();
    att.extend_pcr(16, b"confidant test measurement").unwrap();
    let anchors = anchors_for(&att);
    let b = binding(1);

    let ev = att.quote(b.tpm_qualifying_data(), PCRS).unwrap();
    assert_eq!(ev.pcrs.len(), PCRS.len());
    assert_eq!(ev.ak_public, att.ak_public_tpmt());

    // Verifies and binds.
    let verified = verify(&ev, &anchors).unwrap();
    assert_eq!(verified.report_data(), b.tpm_qualifying_data());
    let pcr16 = att.read_pcrs(&[16]).unwrap()[&16];
    match verified.kind() {
        confidant_attestation::verify::VerifiedKind::Tpm(q) => {
            assert_eq!(q.pcrs()[&16], pcr16);
            assert_ne!(pcr16, [0u8; 32]);
        }
        other => panic!("{other:?}"),
    }
    verified.bind(binding(1)).unwrap();
    // Evidence for another nonce does not bind.
    assert_eq!(
        verify(&ev, &anchors).unwrap().bind(binding(2)).err(),
        Some(BindingError::Mismatch)
    );

    // A flipped bit in the quote (in extraData).
    let mut bad = ev.clone();
    bad.quote[40] ^= 0x01;
    assert_eq!(tpm_err(&bad, &anchors), TpmError::BadSignature);
    // A flipped bit in the magic.
    let mut bad = ev.clone();
    bad.quote[3] ^= 0x01;
    assert!(matches!(tpm_err(&bad, &anchors), TpmError::BadMagic(_)));
    // A flipped bit in the signature.
    let mut bad = ev.clone();
    let i = bad.signature.len() - 5;
    bad.signature[i] ^= 0x10;
    assert_eq!(tpm_err(&bad, &anchors), TpmError::BadSignature);
    // A different PCR value reported.
    let mut bad = ev.clone();
    bad.pcrs.insert(7, ByteBuf::from(vec![0xee; 32]));
    assert_eq!(tpm_err(&bad, &anchors), TpmError::PcrDigestMismatch);
    // A PCR missing, a PCR extra.
    let mut bad = ev.clone();
    bad.pcrs.remove(&14);
    assert_eq!(tpm_err(&bad, &anchors), TpmError::PcrSelectionMismatch);
    let mut bad = ev.clone();
    bad.pcrs.insert(1, ByteBuf::from(vec![0; 32]));
    assert_eq!(tpm_err(&bad, &anchors), TpmError::PcrSelectionMismatch);
    // AK not enrolled.
    assert_eq!(
        tpm_err(&ev, &TrustAnchors::default()),
        TpmError::UntrustedAk
    );
    // Another AK on the same TPM, enrolled, does not vouch for this one's quotes.
    let other = TpmAttester::create(&swtpm.tcti(), alg);
    if let Ok(other) = other {
        assert_eq!(tpm_err(&ev, &anchors_for(&other)), TpmError::UntrustedAk);
    }

    // A quote with different qualifying data verifies but does not bind.
    let ev2 = att.quote(binding(3).tpm_qualifying_data(), PCRS).unwrap();
    let verified = verify(&ev2, &anchors).unwrap();
    assert_eq!(
        verified.bind(binding(1)).err(),
        Some(BindingError::Mismatch)
    );

    // Extending a PCR after the quote: the old evidence still verifies (it is what was quoted),
    // a fresh quote reports the new value.
    att.extend_pcr(16, b"more").unwrap();
    verify_quote(&ev, &anchors.tpm).unwrap();
    let ev3 = att.quote(b.tpm_qualifying_data(), PCRS).unwrap();
    assert_ne!(ev3.pcrs[&16], ev.pcrs[&16]);
    verify_quote(&ev3, &anchors.tpm).unwrap();
}

#[test]
fn ecc_p256_quote_verifies_and_every_tamper_fails() {
    quote_and_tamper(AkAlgorithm::EccP256);
}

#[test]
fn rsa_2048_quote_verifies_and_every_tamper_fails() {
    quote_and_tamper(AkAlgorithm::Rsa2048);
}

#[test]
fn ak_reloads_from_its_blob_and_bad_inputs_are_refused() {
    let swtpm = Swtpm::start().unwrap();
    let att = TpmAttester::connect(&swtpm.tcti()).unwrap();
    let blob = att.ak_blob().clone();
    let spki = att.ak_spki_der().unwrap();
    drop(att);
    let mut again = TpmAttester::load(&swtpm.tcti(), &blob).unwrap();
    assert_eq!(again.ak_spki_der().unwrap(), spki);
    let mut anchors = TpmTrustAnchors::default();
    anchors.enroll_ak_public(&blob.public).unwrap();
    let ev = again.quote(&[7; 32], &[0]).unwrap();
    verify_quote(&ev, &anchors).unwrap();

    assert!(matches!(
        again.quote(&[0; 65], &[0]),
        Err(AttesterError::QualifyingDataTooLong(65))
    ));
    assert!(matches!(
        again.quote(&[0; 32], &[24]),
        Err(AttesterError::InvalidPcr(24))
    ));
    assert!(matches!(
        again.extend_pcr(200, b"x"),
        Err(AttesterError::InvalidPcr(200))
    ));
    assert!(matches!(
        TpmAttester::connect("nonsense:"),
        Err(AttesterError::InvalidTcti(_))
    ));
}
