use coset::cbor::value::Value;
use coset::{CoseSign1, CoseSign1Builder, Header, HeaderBuilder, TaggedCborSerializable};
use ring::rand::SystemRandom;

use super::claims::keys;
use super::*;
use crate::snp::TcbVersion;

const NOW: u64 = 1_750_000_000;
const AUD: &str = "confidant-client";

fn signer() -> ResultSigner {
    ResultSigner::from_pkcs8(
        &ResultSigner::generate_pkcs8(&SystemRandom::new()).unwrap(),
        &SystemRandom::new(),
    )
    .unwrap()
}

fn claims() -> ResultClaims {
    ResultClaims {
        iss: "https://verifier.example".to_string(),
        aud: AUD.to_string(),
        iat: NOW,
        exp: NOW + 600,
        status: Status::Affirming,
        tee: TeeKind::SevSnp,
        measurement: vec![0xAB; 48],
        tcb: Some(TcbVersion {
            bootloader: 3,
            tee: 0,
            snp: 8,
            microcode: 115,
            fmc: None,
        }),
        policy_id: "prod".to_string(),
        policy_version: 7,
        model_id: "smollm2-135m-instruct".to_string(),
        model_digest: crate::digest::Blake3Digest::from_bytes([1; 32]),
        tls_spki_sha256: [2; 32],
        evidence_digest: [3; 32],
        dev: false,
        nonce: Some([4; 32]),
        tpm_ak_spki_sha256: None,
        mask_chip_id: false,
        mask_chip_key: false,
    }
}

/// Signs an arbitrary protected header and payload with `s`'s key (for forged-shape tests).
fn sign_raw(s: &ResultSigner, protected: Header, payload: Vec<u8>) -> Vec<u8> {
    CoseSign1Builder::new()
        .protected(protected)
        .payload(payload)
        .create_signature(b"", |tbs| {
            s.key
                .sign(&SystemRandom::new(), tbs)
                .unwrap()
                .as_ref()
                .to_vec()
        })
        .build()
        .to_tagged_vec()
        .unwrap()
}

fn es256_header(s: &ResultSigner) -> Header {
    HeaderBuilder::new()
        .algorithm(iana::Algorithm::ES256)
        .key_id(s.kid().to_vec())
        .build()
}

fn payload_of(c: &ResultClaims) -> Vec<u8> {
    c.to_claims_set().unwrap().to_vec().unwrap()
}

#[test]
fn roundtrip() {
    let s = signer();
    for c in [
        claims(),
        ResultClaims {
            tcb: Some(TcbVersion {
                fmc: Some(1),
                ..claims().tcb.unwrap()
            }),
            ..claims()
        },
        ResultClaims {
            mask_chip_id: true,
            mask_chip_key: true,
            ..claims()
        },
        ResultClaims {
            mask_chip_key: true,
            ..claims()
        },
        ResultClaims {
            tee: TeeKind::Tpm,
            tcb: None,
            nonce: None,
            dev: true,
            measurement: vec![9; 32],
            status: Status::Warning,
            tpm_ak_spki_sha256: Some([5; 32]),
            ..claims()
        },
    ] {
        let bytes = s.sign(&c, &SystemRandom::new()).unwrap();
        let v = s.verifier().verify(&bytes, AUD, NOW).unwrap();
        assert_eq!(v.claims(), &c);
        assert_eq!(v.kid(), s.kid());
    }
}

#[test]
fn flipped_signature_bit_is_refused() {
    let s = signer();
    let bytes = s.sign(&claims(), &SystemRandom::new()).unwrap();
    let mut sign1 = CoseSign1::from_tagged_slice(&bytes).unwrap();
    sign1.signature[10] ^= 0x01;
    let forged = sign1.to_tagged_vec().unwrap();
    assert_eq!(
        s.verifier().verify(&forged, AUD, NOW),
        Err(ResultError::BadSignature)
    );
    // The last byte of the encoding is the signature's last byte.
    let mut forged = bytes.clone();
    *forged.last_mut().unwrap() ^= 0x80;
    assert_eq!(
        s.verifier().verify(&forged, AUD, NOW),
        Err(ResultError::BadSignature)
    );
}

#[test]
fn wrong_key_is_refused() {
    let (a, b) = (signer(), signer());
    let bytes = a.sign(&claims(), &SystemRandom::new()).unwrap();
    assert_eq!(
        b.verifier().verify(&bytes, AUD, NOW),
        Err(ResultError::UnknownKey)
    );
    // Even claiming b's kid, a's signature does not verify under b's key.
    let forged = sign_raw(&a, es256_header(&b), payload_of(&claims()));
    assert_eq!(
        b.verifier().verify(&forged, AUD, NOW),
        Err(ResultError::BadSignature)
    );
}

#[test]
fn time_is_checked() {
    let s = signer();
    let bytes = s.sign(&claims(), &SystemRandom::new()).unwrap();
    let v = s.verifier();
    assert_eq!(v.verify(&bytes, AUD, NOW + 600), Err(ResultError::Expired));
    assert_eq!(v.verify(&bytes, AUD, u64::MAX), Err(ResultError::Expired));
    v.verify(&bytes, AUD, NOW + 599).unwrap();
    v.verify(&bytes, AUD, NOW - MAX_CLOCK_SKEW_SECS).unwrap();
    assert_eq!(
        v.verify(&bytes, AUD, NOW - MAX_CLOCK_SKEW_SECS - 1),
        Err(ResultError::NotYetValid)
    );
    // nbf in the future.
    let mut set = claims().to_claims_set().unwrap();
    set.not_before = Some(coset::cwt::Timestamp::WholeSeconds((NOW + 3600) as i64));
    let forged = sign_raw(&s, es256_header(&s), set.to_vec().unwrap());
    assert_eq!(v.verify(&forged, AUD, NOW), Err(ResultError::NotYetValid));
    // Claims that expire before they start cannot be signed.
    let c = ResultClaims {
        exp: NOW,
        ..claims()
    };
    assert!(matches!(
        s.sign(&c, &SystemRandom::new()),
        Err(ResultError::InvalidClaims(_))
    ));
}

#[test]
fn wrong_audience_is_refused() {
    let s = signer();
    let bytes = s.sign(&claims(), &SystemRandom::new()).unwrap();
    assert_eq!(
        s.verifier().verify(&bytes, "someone-else", NOW),
        Err(ResultError::WrongAudience)
    );
    assert_eq!(
        s.verifier().verify(&bytes, "", NOW),
        Err(ResultError::WrongAudience)
    );
}

#[test]
fn other_or_missing_algorithms_are_refused() {
    let s = signer();
    let payload = payload_of(&claims());
    for alg in [
        Some(iana::Algorithm::ES384),
        Some(iana::Algorithm::EdDSA),
        Some(iana::Algorithm::HMAC_256_256),
        None,
    ] {
        let mut h = HeaderBuilder::new().key_id(s.kid().to_vec());
        if let Some(a) = alg {
            h = h.algorithm(a);
        }
        let forged = sign_raw(&s, h.build(), payload.clone());
        assert_eq!(
            s.verifier().verify(&forged, AUD, NOW),
            Err(ResultError::UnsupportedAlgorithm),
            "{alg:?}"
        );
    }
    // alg in the unprotected header does not count.
    let mut sign1 =
        CoseSign1::from_tagged_slice(&s.sign(&claims(), &SystemRandom::new()).unwrap()).unwrap();
    sign1.unprotected.alg = Some(coset::Algorithm::Assigned(iana::Algorithm::ES256));
    assert_eq!(
        s.verifier()
            .verify(&sign1.to_tagged_vec().unwrap(), AUD, NOW),
        Err(ResultError::Malformed("unprotected header is not empty"))
    );
    // A critical header we do not understand.
    let h = HeaderBuilder::new()
        .algorithm(iana::Algorithm::ES256)
        .key_id(s.kid().to_vec())
        .add_critical(iana::HeaderParameter::Iv)
        .build();
    assert!(matches!(
        s.verifier().verify(&sign_raw(&s, h, payload), AUD, NOW),
        Err(ResultError::Malformed(_))
    ));
}

#[test]
fn truncations_are_refused_without_panicking() {
    let s = signer();
    let bytes = s.sign(&claims(), &SystemRandom::new()).unwrap();
    for n in 0..bytes.len() {
        let r = s.verifier().verify(&bytes[..n], AUD, NOW);
        assert!(
            matches!(r, Err(ResultError::Malformed(_))),
            "prefix {n}: {r:?}"
        );
    }
    let mut long = bytes.clone();
    long.push(0);
    assert!(matches!(
        s.verifier().verify(&long, AUD, NOW),
        Err(ResultError::Malformed(_))
    ));
    let big = vec![0u8; MAX_RESULT_BYTES + 1];
    assert_eq!(
        s.verifier().verify(&big, AUD, NOW),
        Err(ResultError::TooLarge(MAX_RESULT_BYTES + 1))
    );
    // Untagged COSE_Sign1 is not the format.
    let untagged = CoseSign1::from_tagged_slice(&bytes)
        .unwrap()
        .to_vec()
        .unwrap();
    assert!(matches!(
        s.verifier().verify(&untagged, AUD, NOW),
        Err(ResultError::Malformed(_))
    ));
}

#[test]
fn claims_tampered_after_signing_are_refused() {
    let s = signer();
    let bytes = s.sign(&claims(), &SystemRandom::new()).unwrap();
    let mut tampers: Vec<ResultClaims> = Vec::new();
    tampers.push(ResultClaims {
        model_id: "other".into(),
        ..claims()
    });
    tampers.push(ResultClaims {
        dev: true,
        ..claims()
    });
    tampers.push(ResultClaims {
        exp: NOW + 1_000_000,
        ..claims()
    });
    tampers.push(ResultClaims {
        measurement: vec![0; 48],
        ..claims()
    });
    tampers.push(ResultClaims {
        status: Status::Warning,
        ..claims()
    });
    for t in tampers {
        let mut sign1 = CoseSign1::from_tagged_slice(&bytes).unwrap();
        sign1.payload = Some(payload_of(&t));
        assert_eq!(
            s.verifier()
                .verify(&sign1.to_tagged_vec().unwrap(), AUD, NOW),
            Err(ResultError::BadSignature)
        );
    }
}

#[test]
fn signed_but_malformed_claims_are_refused() {
    let s = signer();
    let v = s.verifier();
    let set_with = |f: &dyn Fn(&mut coset::cwt::ClaimsSet)| {
        let mut set = claims().to_claims_set().unwrap();
        f(&mut set);
        sign_raw(&s, es256_header(&s), set.to_vec().unwrap())
    };
    let unknown = set_with(&|set| {
        set.rest
            .push((coset::cwt::ClaimName::PrivateUse(-70099), Value::Bool(true)))
    });
    assert_eq!(
        v.verify(&unknown, AUD, NOW),
        Err(ResultError::Malformed("unknown claim"))
    );
    let no_model = set_with(&|set| {
        set.rest
            .retain(|(k, _)| *k != coset::cwt::ClaimName::PrivateUse(keys::MODEL_ID))
    });
    assert_eq!(
        v.verify(&no_model, AUD, NOW),
        Err(ResultError::MissingClaim("model_id"))
    );
    let short_digest = set_with(&|set| {
        for (k, val) in set.rest.iter_mut() {
            if *k == coset::cwt::ClaimName::PrivateUse(keys::MODEL_DIGEST) {
                *val = Value::Bytes(vec![0; 31]);
            }
        }
    });
    assert!(matches!(
        v.verify(&short_digest, AUD, NOW),
        Err(ResultError::Malformed(_))
    ));
    let no_profile = set_with(&|set| {
        set.rest
            .retain(|(k, _)| *k != coset::cwt::ClaimName::Assigned(iana::CwtClaimName::EatProfile))
    });
    assert!(matches!(
        v.verify(&no_profile, AUD, NOW),
        Err(ResultError::Malformed(_))
    ));
    let bad_status = set_with(&|set| {
        for (k, val) in set.rest.iter_mut() {
            if *k == coset::cwt::ClaimName::PrivateUse(keys::STATUS) {
                *val = Value::from(3u8);
            }
        }
    });
    assert_eq!(
        v.verify(&bad_status, AUD, NOW),
        Err(ResultError::Malformed("unknown status"))
    );
    let frac =
        set_with(&|set| set.expiration_time = Some(coset::cwt::Timestamp::FractionalSeconds(1e10)));
    assert!(matches!(
        v.verify(&frac, AUD, NOW),
        Err(ResultError::Malformed(_))
    ));
}

#[test]
fn public_key_exports_roundtrip() {
    let s = signer();
    let v = s.verifier();
    let cose = v.cose_key().unwrap();
    assert_eq!(&ResultVerifier::from_cose_key(&cose).unwrap(), v);
    let jwk = serde_json::to_string(&v.jwk()).unwrap();
    assert_eq!(&ResultVerifier::from_jwk(&jwk).unwrap(), v);
    assert_eq!(&ResultVerifier::from_public_key(v.public_key()).unwrap(), v);
    // The JWK kid is the RFC 7638 thumbprint, computed independently here.
    let j = v.jwk();
    let canonical = format!(
        r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
        j.x, j.y
    );
    let d = ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes());
    assert_eq!(d.as_ref(), v.kid());

    let other = signer();
    let mut wrong_kid = v.jwk();
    wrong_kid.kid = other.verifier().jwk().kid;
    assert!(matches!(
        ResultVerifier::from_jwk(&serde_json::to_string(&wrong_kid).unwrap()),
        Err(ResultError::InvalidKey(_))
    ));
    assert!(ResultVerifier::from_cose_key(&cose[..cose.len() - 1]).is_err());
    assert!(ResultVerifier::from_public_key(&v.public_key()[1..]).is_err());
    assert!(ResultSigner::from_pkcs8(b"not a key", &SystemRandom::new()).is_err());
}

#[test]
fn error_codes_are_distinct() {
    let all = [
        ResultError::TooLarge(0),
        ResultError::Malformed(""),
        ResultError::MissingClaim(""),
        ResultError::UnsupportedAlgorithm,
        ResultError::UnknownKey,
        ResultError::BadSignature,
        ResultError::Expired,
        ResultError::NotYetValid,
        ResultError::WrongAudience,
        ResultError::InvalidKey(""),
        ResultError::InvalidClaims(""),
        ResultError::Encoding,
    ];
    let codes: std::collections::BTreeSet<_> = all.iter().map(ResultError::code).collect();
    assert_eq!(codes.len(), all.len());
}

#[test]
fn the_tpm_attestation_key_claim_is_present_exactly_for_tpm_results() {
    let s = signer();
    let tpm = ResultClaims {
        tee: TeeKind::Tpm,
        tcb: None,
        measurement: vec![9; 32],
        tpm_ak_spki_sha256: Some([5; 32]),
        ..claims()
    };
    let v = s
        .verifier()
        .verify(&s.sign(&tpm, &SystemRandom::new()).unwrap(), AUD, NOW)
        .unwrap();
    assert_eq!(v.claims().tpm_ak_spki_sha256, Some([5; 32]));
    // A TPM result without the key, and an SNP result with one, are malformed.
    for bad in [
        ResultClaims {
            tpm_ak_spki_sha256: None,
            ..tpm.clone()
        },
        ResultClaims {
            tpm_ak_spki_sha256: Some([5; 32]),
            ..claims()
        },
    ] {
        let forged = sign_raw(&s, es256_header(&s), payload_of(&bad));
        assert!(matches!(
            s.verifier().verify(&forged, AUD, NOW),
            Err(ResultError::Malformed(_))
        ));
    }
}

#[test]
fn chip_masks_are_flags_of_snp_results_only() {
    let s = signer();
    // Absent means false; present must be `true`, and only on an SNP result.
    let tpm_masked = ResultClaims {
        tee: TeeKind::Tpm,
        tcb: None,
        measurement: vec![9; 32],
        tpm_ak_spki_sha256: Some([5; 32]),
        mask_chip_id: true,
        ..claims()
    };
    let forged = sign_raw(&s, es256_header(&s), payload_of(&tpm_masked));
    assert!(matches!(
        s.verifier().verify(&forged, AUD, NOW),
        Err(ResultError::Malformed(_))
    ));
    let mut set = claims().to_claims_set().unwrap();
    set.rest.push((
        coset::cwt::ClaimName::PrivateUse(super::claims::keys::MASK_CHIP_ID),
        coset::cbor::value::Value::Bool(false),
    ));
    let forged = sign_raw(&s, es256_header(&s), set.to_vec().unwrap());
    assert!(matches!(
        s.verifier().verify(&forged, AUD, NOW),
        Err(ResultError::Malformed(_))
    ));
}
