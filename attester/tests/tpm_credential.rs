//! EK certificate and credential activation on a live swtpm manufactured with EK certificates
//! from a CA private to the test: the verifier-side `make_credential` is accepted by the real
//! TPM's `TPM2_ActivateCredential` only for the AK it names, and only unaltered.
#![allow(clippy::unwrap_used, reason = "tests panic on unexpected failures")]

use confidant_attestation::time::UnixTime;
use confidant_attestation::tpm::TpmtPublic;
use confidant_attestation::tpm::credential::{make_credential, object_name, secrets_equal};
use confidant_attestation::tpm::ekcert::{EkCertError, verify_ek_certificate};
use confidant_attester::tpm::{AkAlgorithm, TpmAttester};
use confidant_testkit::swtpm::{Swtpm, manufacture_with_ek_ca};
use rand::RngCore;

/// The test's clock (swtpm_localca's certificates run from their creation to 9999).
fn now() -> UnixTime {
    UnixTime::from_secs(confidant_testkit::now_secs())
}

#[test]
fn ek_certificate_chains_to_its_own_ca_only() {
    let swtpm = Swtpm::start_with_ek_ca().unwrap();
    let ca = swtpm.ek_ca().unwrap().certs_der();
    let mut att = TpmAttester::create(&swtpm.tcti(), AkAlgorithm::EccP256).unwrap();
    let ek = att.ek_certificate().unwrap();

    let verified = verify_ek_certificate(&ek.certificate, &ca, now()).unwrap();
    let ek_public = TpmtPublic::parse(&ek.public).unwrap();
    verified.matches(&ek_public).unwrap();
    // The issuer alone is enough (every listed CA is an anchor); the root alone is not.
    verify_ek_certificate(&ek.certificate, &ca[..1], now()).unwrap();
    assert_eq!(
        verify_ek_certificate(&ek.certificate, &ca[1..], now()),
        Err(EkCertError::UntrustedIssuer)
    );
    // Before the certificates were issued.
    assert_eq!(
        verify_ek_certificate(&ek.certificate, &ca, UnixTime::from_secs(0)),
        Err(EkCertError::Expired("EK certificate"))
    );
    assert_eq!(
        verify_ek_certificate(&ek.certificate, &[], now()),
        Err(EkCertError::NoCa)
    );
    assert!(matches!(
        verify_ek_certificate(&ek.certificate[..ek.certificate.len() - 1], &ca, now()),
        Err(EkCertError::Malformed(_))
    ));

    // Another TPM's CA does not vouch for this EK.
    let other_dir = tempfile::tempdir().unwrap();
    let other = manufacture_with_ek_ca(other_dir.path())
        .unwrap()
        .certs_der();
    assert_eq!(
        verify_ek_certificate(&ek.certificate, &other, now()),
        Err(EkCertError::UntrustedIssuer)
    );

    // Another EK is not the certified key.
    let other_swtpm = Swtpm::start_with_ek_ca().unwrap();
    let mut other_att = TpmAttester::create(&other_swtpm.tcti(), AkAlgorithm::EccP256).unwrap();
    let other_ek = other_att.ek_certificate().unwrap();
    assert_eq!(
        verified.matches(&TpmtPublic::parse(&other_ek.public).unwrap()),
        Err(EkCertError::KeyMismatch)
    );
}

#[test]
fn activation_returns_the_secret_only_for_the_named_ak() {
    let swtpm = Swtpm::start_with_ek_ca().unwrap();
    let mut rng = rand::thread_rng();
    for alg in [AkAlgorithm::EccP256, AkAlgorithm::Rsa2048] {
        let mut att = TpmAttester::create(&swtpm.tcti(), alg).unwrap();
        let mut other_ak = TpmAttester::create(&swtpm.tcti(), alg).unwrap();
        let ek = att.ek_certificate().unwrap();
        let name = object_name(&att.ak_public_tpmt()).unwrap();
        let mut secret = [0u8; 32];
        rng.fill_bytes(&mut secret);

        let cred = make_credential(&ek.public, &name, &secret, &mut rng).unwrap();
        let got = att
            .activate_credential(&cred.credential_blob, &cred.encrypted_secret)
            .unwrap();
        assert!(secrets_equal(&got, &secret), "{alg:?}");

        // The same credential, activated with another AK of the same TPM: the HMAC over the
        // name fails.
        assert!(
            other_ak
                .activate_credential(&cred.credential_blob, &cred.encrypted_secret)
                .is_err()
        );
        // A credential made for another AK's name is refused by this AK.
        let other_name = object_name(&other_ak.ak_public_tpmt()).unwrap();
        let for_other = make_credential(&ek.public, &other_name, &secret, &mut rng).unwrap();
        assert!(
            att.activate_credential(&for_other.credential_blob, &for_other.encrypted_secret)
                .is_err()
        );
        // Any flipped byte in the blob (HMAC, encIdentity) or the encrypted seed is refused.
        for i in [2, 5, cred.credential_blob.len() - 1] {
            let mut blob = cred.credential_blob.clone();
            blob[i] ^= 1;
            assert!(
                att.activate_credential(&blob, &cred.encrypted_secret)
                    .is_err(),
                "blob byte {i}"
            );
        }
        let mut enc = cred.encrypted_secret.clone();
        enc[100] ^= 1;
        assert!(
            att.activate_credential(&cred.credential_blob, &enc)
                .is_err()
        );
        // A bad TPM2B size is refused before the TPM is asked.
        assert!(
            att.activate_credential(&cred.credential_blob[1..], &cred.encrypted_secret)
                .is_err()
        );
        // And the AK still activates a fresh credential afterwards.
        let again = make_credential(&ek.public, &name, &secret, &mut rng).unwrap();
        let got = att
            .activate_credential(&again.credential_blob, &again.encrypted_secret)
            .unwrap();
        assert!(secrets_equal(&got, &secret));
    }
}

#[test]
fn make_credential_refuses_a_non_ek_key() {
    let swtpm = Swtpm::start_with_ek_ca().unwrap();
    let att = TpmAttester::create(&swtpm.tcti(), AkAlgorithm::Rsa2048).unwrap();
    let ak = att.ak_public_tpmt();
    let name = object_name(&ak).unwrap();
    // A signing key is not a restricted decryption key.
    assert!(make_credential(&ak, &name, &[1; 32], &mut rand::thread_rng()).is_err());
}

#[test]
fn manufactured_state_serves_on_a_qemu_chardev_socket() {
    use confidant_testkit::swtpm::SwtpmChardev;
    let dir = tempfile::tempdir().unwrap();
    let ca = manufacture_with_ek_ca(dir.path()).unwrap();
    assert!(ca.issuer_cert_pem.is_file() && ca.root_cert_pem.is_file());
    let socket = dir.path().join("swtpm-sock");
    let chardev = SwtpmChardev::start(&ca.state_dir, &socket).unwrap();
    assert!(std::os::unix::net::UnixStream::connect(chardev.ctrl_socket()).is_ok());
}

#[test]
fn challenge_ak_round_trip_on_the_tpm() {
    use confidant_attestation::tpm::credential::{AkChallengeError, challenge_ak};
    let swtpm = Swtpm::start_with_ek_ca().unwrap();
    let ca = swtpm.ek_ca().unwrap().certs_der();
    let mut rng = rand::thread_rng();
    let mut att = TpmAttester::create(&swtpm.tcti(), AkAlgorithm::EccP256).unwrap();
    let other = TpmAttester::create(&swtpm.tcti(), AkAlgorithm::EccP256).unwrap();
    let ek = att.ek_certificate().unwrap();
    let ak = att.ak_public_tpmt();

    let (cred, pending) =
        challenge_ak(&ek.certificate, &ek.public, &ak, &ca, now(), &mut rng).unwrap();
    assert_eq!(
        pending.ak_fingerprint,
        TpmtPublic::parse(&ak).unwrap().fingerprint()
    );
    let secret = att
        .activate_credential(&cred.credential_blob, &cred.encrypted_secret)
        .unwrap();
    assert!(pending.accept(&ak, &secret).is_some());
    // Another AK presenting the same secret, or the right AK with another secret, is refused.
    assert!(pending.accept(&other.ak_public_tpmt(), &secret).is_none());
    assert!(pending.accept(&ak, &[0; 32]).is_none());
    assert!(pending.accept(&ak, &secret[..31]).is_none());
    // The secret is not printed.
    assert!(!format!("{pending:?}").contains(&hex::encode(&secret[..])));

    // An EK certificate from another CA, or an EK public that is not the certified key.
    let other_dir = tempfile::tempdir().unwrap();
    let other_ca = manufacture_with_ek_ca(other_dir.path())
        .unwrap()
        .certs_der();
    assert!(matches!(
        challenge_ak(&ek.certificate, &ek.public, &ak, &other_ca, now(), &mut rng),
        Err(AkChallengeError::EkCert(EkCertError::UntrustedIssuer))
    ));
    let mut wrong_ek = ek.public.clone();
    let last = wrong_ek.len() - 1;
    wrong_ek[last] ^= 1;
    assert!(matches!(
        challenge_ak(&ek.certificate, &wrong_ek, &ak, &ca, now(), &mut rng),
        Err(AkChallengeError::EkCert(EkCertError::KeyMismatch))
    ));
    // The EK itself is not a signing key, so it cannot be passed off as an AK.
    assert!(matches!(
        challenge_ak(
            &ek.certificate,
            &ek.public,
            &ek.public,
            &ca,
            now(),
            &mut rng
        ),
        Err(AkChallengeError::AkNotRestrictedSigning)
    ));
}
