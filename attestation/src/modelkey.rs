//! The 256-bit symmetric key a model is sealed with: shared by the sealed format
//! (`confidant_sealed`) and the key release ([`crate::keywrap`] wraps it to an enclave).

use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Length of a [`ModelKey`] in bytes (AES-256).
pub const MODEL_KEY_LEN: usize = 32;

/// An AES-256-GCM model key. Zeroized on drop, compared in constant time, never printed.
///
/// Deliberately not `Clone`: a key lives in one place. Persist it through [`ModelKey::expose_secret`].
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct ModelKey {
    bytes: [u8; MODEL_KEY_LEN],
}

impl ModelKey {
    /// Draws a fresh key from `rng`.
    pub fn generate<R: rand::RngCore + rand::CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut key = ModelKey {
            bytes: [0; MODEL_KEY_LEN],
        };
        rng.fill_bytes(&mut key.bytes);
        key
    }

    /// Takes ownership of raw key bytes. The caller should zeroize its own copy, if any.
    pub fn from_bytes(bytes: [u8; MODEL_KEY_LEN]) -> Self {
        ModelKey { bytes }
    }

    /// The raw key, for encrypting it to storage or to an enclave. Handle with care.
    pub fn expose_secret(&self) -> &[u8; MODEL_KEY_LEN] {
        &self.bytes
    }
}

impl PartialEq for ModelKey {
    fn eq(&self, other: &Self) -> bool {
        self.bytes.ct_eq(&other.bytes).into()
    }
}

impl Eq for ModelKey {}

impl std::fmt::Debug for ModelKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ModelKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_does_not_leak() {
        let key = ModelKey::from_bytes([0xab; 32]);
        let shown = format!("{key:?}");
        assert!(!shown.contains("ab"));
        assert!(!shown.contains("171"));
    }

    #[test]
    fn equality() {
        let mut rng = rand::thread_rng();
        let a = ModelKey::generate(&mut rng);
        let b = ModelKey::generate(&mut rng);
        assert_ne!(a, b);
        assert_eq!(a, ModelKey::from_bytes(*a.expose_secret()));
    }
}
