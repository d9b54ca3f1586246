//! The enclave's in-memory key pairs (DESIGN.md "Boot and key release", step 1).
//!
//! - [`TlsIdentity`]: ECDSA P-256, generated at start, never written anywhere. The verifier
//!   certifies its public key after attestation; the PKCS#8 bytes are zeroized on drop.
//! - The X25519 key-wrapping pair is [`confidant_attestation::keywrap::WrapKeyPair`] (zeroized on
//!   drop); a fresh one is made for every attestation, so a released key can only ever be
//!   unwrapped by the attempt that asked for it.

use rcgen::PublicKeyData;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use zeroize::Zeroizing;

/// Key generation failed (system randomness).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("TLS key generation failed")]
pub struct KeyGenError;

/// The TLS key pair clients see, certified by the verifier.
pub struct TlsIdentity {
    pkcs8: Zeroizing<Vec<u8>>,
    spki_der: Vec<u8>,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIdentity")
            .field("spki_sha256", &hex::encode(self.spki_sha256()))
            .finish_non_exhaustive()
    }
}

impl TlsIdentity {
    /// A fresh ECDSA P-256 key.
    pub fn generate() -> Result<Self, KeyGenError> {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|_| KeyGenError)?;
        Ok(Self {
            pkcs8: Zeroizing::new(pair.serialize_der()),
            spki_der: pair.subject_public_key_info(),
        })
    }

    /// DER SubjectPublicKeyInfo (what the binding hashes and the certificate names).
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// SHA-256 of the SPKI.
    pub fn spki_sha256(&self) -> [u8; 32] {
        sha256(&self.spki_der)
    }

    /// The private key for rustls (a copy that rustls turns into its signing key).
    pub(crate) fn private_key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.pkcs8.to_vec()))
    }
}

pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_keys_differ_and_debug_hides_the_key() {
        let a = TlsIdentity::generate().unwrap();
        let b = TlsIdentity::generate().unwrap();
        assert_ne!(a.spki_der(), b.spki_der());
        let shown = format!("{a:?}");
        assert!(!shown.contains(&hex::encode(&a.pkcs8[..])));
    }
}
