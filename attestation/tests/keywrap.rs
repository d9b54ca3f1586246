//! HPKE model-key wrapping.
#![allow(clippy::unwrap_used, reason = "test helpers outside #[test] functions")]

use confidant_attestation::keywrap::{WrapError, WrapKeyPair, WrappedKey, wrap, wrap_info};
use confidant_attestation::modelkey::ModelKey;

fn setup() -> (WrapKeyPair, ModelKey, Vec<u8>, WrappedKey) {
    let mut rng = rand::thread_rng();
    let kp = WrapKeyPair::generate(&mut rng);
    let mk = ModelKey::generate(&mut rng);
    let info = wrap_info(&[3; 32], "key-1");
    let w = wrap(&mk, kp.public_key(), &info, &mut rng).unwrap();
    (kp, mk, info, w)
}

#[test]
fn opens_with_right_key() {
    let (kp, mk, info, w) = setup();
    assert_eq!(w.enc.len(), 32);
    assert_eq!(w.ciphertext.len(), 48);
    assert_eq!(kp.unwrap(&w, &info).unwrap(), mk);
}

#[test]
fn other_private_key_fails() {
    let (_, _, info, w) = setup();
    let other = WrapKeyPair::generate(&mut rand::thread_rng());
    assert_eq!(other.unwrap(&w, &info).unwrap_err(), WrapError::OpenFailed);
}

#[test]
fn info_mismatch_fails() {
    let (kp, _, _, w) = setup();
    for info in [
        wrap_info(&[4; 32], "key-1"),
        wrap_info(&[3; 32], "key-2"),
        Vec::new(),
    ] {
        assert_eq!(kp.unwrap(&w, &info).unwrap_err(), WrapError::OpenFailed);
    }
}

#[test]
fn tampering_fails() {
    let (kp, _, info, w) = setup();
    for i in 0..w.ciphertext.len() {
        let mut bad = w.clone();
        bad.ciphertext[i] ^= 0x80;
        assert_eq!(kp.unwrap(&bad, &info).unwrap_err(), WrapError::OpenFailed);
    }
    let mut bad = w.clone();
    bad.enc[5] ^= 1;
    assert_eq!(kp.unwrap(&bad, &info).unwrap_err(), WrapError::OpenFailed);
    let mut bad = w.clone();
    bad.ciphertext.pop();
    assert_eq!(kp.unwrap(&bad, &info).unwrap_err(), WrapError::BadLength);
    let mut bad = w;
    bad.enc.pop();
    assert_eq!(
        kp.unwrap(&bad, &info).unwrap_err(),
        WrapError::BadEncappedKey
    );
}

#[test]
fn info_is_domain_separated_and_injective() {
    let a = wrap_info(&[0; 32], "ab");
    assert!(a.starts_with(b"confidant/v1 key-wrap\0"));
    assert_ne!(wrap_info(&[0; 32], "a"), wrap_info(&[0; 32], "ab"));
}

#[test]
fn debug_does_not_print_private_key() {
    let kp = WrapKeyPair::generate(&mut rand::thread_rng());
    let s = format!("{kp:?}");
    assert!(s.contains(&hex::encode(kp.public_key())));
}
