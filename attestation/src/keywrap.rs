//! Model-key wrapping with HPKE (RFC 9180): mode base, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
//! AES-256-GCM.
//!
//! The verifier wraps a [`ModelKey`] to the enclave's X25519 public key (the `wrap_pk` that the
//! evidence binds); `info` is [`wrap_info`], which binds the wrapped key to one attestation result
//! and key id, so a wrapped key cannot be replayed under another result.
//!
//! [`release`] is the only public way to wrap a model key: it takes a result signed for a
//! key-release appraisal and wraps to the key that appraisal's evidence is bound to. Evidence
//! bound to a session or to a raw value cannot get a key:
//! ```compile_fail
//! use confidant_attestation::keywrap::release;
//! use confidant_attestation::modelkey::ModelKey;
//! use confidant_attestation::policy::RawAppraisal;
//! fn leak(key: &ModelKey, a: &RawAppraisal) {
//!     let _ = release(key, a, "k1", &mut rand::thread_rng());
//! }
//! ```
//! ```compile_fail
//! use confidant_attestation::keywrap::wrap;
//! use confidant_attestation::modelkey::ModelKey;
//! fn leak(key: &ModelKey, pk: &[u8; 32]) {
//!     let _ = wrap(key, pk, b"info", &mut rand::thread_rng());
//! }
//! ```

use hpke::aead::AesGcm256;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem as _, OpModeR, OpModeS, Serializable};
use zeroize::Zeroizing;

use crate::modelkey::{MODEL_KEY_LEN, ModelKey};
use crate::result::SignedResult;

type Kem = X25519HkdfSha256;

/// Domain label at the start of every `info` string.
pub const WRAP_INFO_LABEL: &[u8] = b"confidant/v1 key-wrap";
/// Length of an X25519 public key and of the HPKE encapsulated key.
pub const WRAP_PK_LEN: usize = 32;

/// Why a key could not be wrapped or unwrapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WrapError {
    #[error("invalid recipient public key")]
    BadPublicKey,
    #[error("invalid encapsulated key")]
    BadEncappedKey,
    #[error("wrapped key has the wrong length")]
    BadLength,
    #[error("wrapped key failed authentication (wrong recipient, info or ciphertext)")]
    OpenFailed,
    #[error("encryption failed")]
    SealFailed,
}

/// A model key encrypted to one recipient.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WrappedKey {
    /// HPKE encapsulated key (`enc`), 32 bytes.
    #[serde(with = "serde_bytes")]
    pub enc: Vec<u8>,
    /// AES-256-GCM ciphertext of the 32-byte key plus its 16-byte tag.
    #[serde(with = "serde_bytes")]
    pub ciphertext: Vec<u8>,
}

/// The HPKE `info` for a key release:
/// label ‖ 0x00 ‖ result digest(32) ‖ key id length (u32 BE) ‖ key id.
pub fn wrap_info(result_digest: &[u8; 32], key_id: &str) -> Vec<u8> {
    let id = key_id.as_bytes();
    let mut info = Vec::with_capacity(WRAP_INFO_LABEL.len() + 37 + id.len());
    info.extend_from_slice(WRAP_INFO_LABEL);
    info.push(0);
    info.extend_from_slice(result_digest);
    info.extend_from_slice(&(id.len() as u32).to_be_bytes());
    info.extend_from_slice(id);
    info
}

/// Adapts a `rand` 0.8 RNG (the workspace's) to the `rand_core` 0.9 traits `hpke` 0.13 needs.
struct Rng09<'a, R: ?Sized>(&'a mut R);

impl<R: rand::RngCore + ?Sized> hpke::rand_core::RngCore for Rng09<'_, R> {
    fn next_u32(&mut self) -> u32 {
        self.0.next_u32()
    }
    fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
    fn fill_bytes(&mut self, dst: &mut [u8]) {
        self.0.fill_bytes(dst)
    }
}

impl<R: rand::RngCore + rand::CryptoRng + ?Sized> hpke::rand_core::CryptoRng for Rng09<'_, R> {}

/// An X25519 key-wrapping key pair. The private key is zeroized on drop (x25519-dalek's
/// `zeroize` feature is enabled for this in `attestation/Cargo.toml`).
pub struct WrapKeyPair {
    private: <Kem as hpke::Kem>::PrivateKey,
    public: [u8; WRAP_PK_LEN],
}

impl std::fmt::Debug for WrapKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WrapKeyPair")
            .field("public", &hex::encode(self.public))
            .finish_non_exhaustive()
    }
}

impl WrapKeyPair {
    /// Generates a key pair from `rng`.
    pub fn generate<R: rand::RngCore + rand::CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let (private, public) = Kem::gen_keypair(&mut Rng09(rng));
        let mut pk = [0u8; WRAP_PK_LEN];
        pk.copy_from_slice(&public.to_bytes());
        WrapKeyPair {
            private,
            public: pk,
        }
    }

    /// The public key, as bound into evidence.
    pub fn public_key(&self) -> &[u8; WRAP_PK_LEN] {
        &self.public
    }

    /// Decrypts a wrapped key. `info` must equal what the sender used.
    pub fn unwrap(&self, wrapped: &WrappedKey, info: &[u8]) -> Result<ModelKey, WrapError> {
        let enc = <Kem as hpke::Kem>::EncappedKey::from_bytes(&wrapped.enc)
            .map_err(|_| WrapError::BadEncappedKey)?;
        if wrapped.ciphertext.len() != MODEL_KEY_LEN + 16 {
            return Err(WrapError::BadLength);
        }
        let (ct, tag) = wrapped.ciphertext.split_at(MODEL_KEY_LEN);
        let tag =
            hpke::aead::AeadTag::<AesGcm256>::from_bytes(tag).map_err(|_| WrapError::BadLength)?;
        let mut buf = Zeroizing::new([0u8; MODEL_KEY_LEN]);
        buf.copy_from_slice(ct);
        hpke::single_shot_open_in_place_detached::<AesGcm256, HkdfSha256, Kem>(
            &OpModeR::Base,
            &self.private,
            &enc,
            info,
            &mut buf[..],
            &[],
            &tag,
        )
        .map_err(|_| WrapError::OpenFailed)?;
        Ok(ModelKey::from_bytes(*buf))
    }
}

/// Releases `model_key` for a key-release appraisal: HPKE-wrapped to the `wrap_pk` its evidence is
/// bound to, with `info` = [`wrap_info`] of the result signed for it and `key_id`.
pub fn release<R: rand::RngCore + rand::CryptoRng + ?Sized>(
    model_key: &ModelKey,
    result: &SignedResult<'_>,
    key_id: &str,
    rng: &mut R,
) -> Result<WrappedKey, WrapError> {
    let info = wrap_info(result.digest(), key_id);
    wrap(model_key, result.appraisal().wrap_pk(), &info, rng)
}

/// Encrypts `model_key` to `recipient_pk` with HPKE base mode.
pub(crate) fn wrap<R: rand::RngCore + rand::CryptoRng + ?Sized>(
    model_key: &ModelKey,
    recipient_pk: &[u8; WRAP_PK_LEN],
    info: &[u8],
    rng: &mut R,
) -> Result<WrappedKey, WrapError> {
    let pk = <Kem as hpke::Kem>::PublicKey::from_bytes(recipient_pk)
        .map_err(|_| WrapError::BadPublicKey)?;
    let mut buf = Zeroizing::new(*model_key.expose_secret());
    let (enc, tag) = hpke::single_shot_seal_in_place_detached::<AesGcm256, HkdfSha256, Kem, _>(
        &OpModeS::Base,
        &pk,
        info,
        &mut buf[..],
        &[],
        &mut Rng09(rng),
    )
    .map_err(|_| WrapError::SealFailed)?;
    let mut ciphertext = Vec::with_capacity(MODEL_KEY_LEN + 16);
    ciphertext.extend_from_slice(&buf[..]);
    ciphertext.extend_from_slice(&tag.to_bytes());
    Ok(WrappedKey {
        enc: enc.to_bytes().to_vec(),
        ciphertext,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
