//! The binding that evidence carries in `report_data` (SNP) or `extraData` (TPM).
//!
//! ```text
//! binding = SHA-512( "confidant/v1" || 0x00 || purpose || 0x00 || nonce(32)
//!                    || SHA-256(tls_spki_der) || channel(32) || model_digest(32) )
//! ```
//! `channel` is the enclave's X25519 key-wrapping public key for [`KeyRelease`], and the 32-byte
//! TLS exporter value (label [`SESSION_EXPORTER_LABEL`], no context) for [`Session`]. The purpose
//! string is the role label: only an enclave attests, and only in these two ways, so evidence
//! cannot be reflected from one use into the other.
//!
//! A [`Binding`] is made only by [`Binding::compute`] from its inputs, and keeps them: verified
//! evidence bound to it ([`crate::verify::BoundEvidence`]) then knows the TLS key, the wrapping key
//! or exporter and the model digest it is bound to, and the purpose is in its type. There is no
//! constructor from raw bytes:
//!
//! ```compile_fail
//! use confidant_attestation::binding::{Binding, KeyRelease};
//! let forged: Binding<KeyRelease> = Binding::from_bytes([0u8; 64]);
//! ```
//! ```compile_fail
//! use confidant_attestation::binding::{Binding, Session};
//! fn forge(inputs: Session) -> Binding<Session> {
//!     Binding { inputs, value: [0u8; 64] }
//! }
//! ```
//! and no purpose besides the two (the input trait is sealed):
//! ```compile_fail
//! use confidant_attestation::binding::{BindingInputs, Purpose};
//! #[derive(Debug)]
//! struct Mine;
//! impl BindingInputs for Mine {
//!     const PURPOSE: Purpose = Purpose::Session;
//!     fn nonce(&self) -> &[u8; 32] { &[0; 32] }
//!     fn tls_spki_der(&self) -> &[u8] { &[] }
//!     fn channel(&self) -> &[u8; 32] { &[0; 32] }
//!     fn model_digest(&self) -> &confidant_attestation::digest::Blake3Digest { unimplemented!() }
//! }
//! ```
//! What compiles is computing it:
//! ```
//! use confidant_attestation::binding::{Binding, KeyRelease};
//! use confidant_attestation::digest::Blake3Digest;
//! let binding = Binding::compute(KeyRelease {
//!     nonce: [1; 32],
//!     tls_spki_der: b"spki".to_vec(),
//!     wrap_pk: [2; 32],
//!     model_digest: Blake3Digest::from_bytes([3; 32]),
//! });
//! assert_eq!(binding.inputs().wrap_pk, [2; 32]);
//! ```

use ring::digest;
use subtle::ConstantTimeEq;

use crate::digest::Blake3Digest;

/// Domain-separation prefix of every binding.
pub const DOMAIN: &[u8] = b"confidant/v1";
/// TLS exporter label (RFC 8446 section 7.5) for session evidence.
pub const SESSION_EXPORTER_LABEL: &[u8] = b"EXPORTER-confidant-session";
/// Number of binding bytes a TPM quote carries in `extraData`: the first 32 bytes of the SHA-512
/// value. Every TPM 2.0 accepts 32 bytes of qualifying data (TPM2B_DATA is sized by the largest
/// digest the TPM implements, and all implement SHA-256), so the binding is portable.
pub const TPM_BINDING_LEN: usize = 32;

/// What the evidence is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Purpose {
    /// Enclave → verifier, to obtain the model key and a certificate.
    KeyRelease,
    /// Enclave → client, bound to one TLS session through the exporter.
    Session,
}

impl Purpose {
    /// The label hashed into the binding.
    pub fn label(self) -> &'static [u8] {
        match self {
            Purpose::KeyRelease => b"key-release",
            Purpose::Session => b"session",
        }
    }
}

/// The inputs of a key-release binding: evidence an enclave sends the verifier to obtain its model
/// key (wrapped to `wrap_pk`) and a certificate for `tls_spki_der`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRelease {
    /// The verifier's challenge.
    pub nonce: [u8; 32],
    /// DER `SubjectPublicKeyInfo` of the enclave's TLS key.
    pub tls_spki_der: Vec<u8>,
    /// The enclave's X25519 key-wrapping public key.
    pub wrap_pk: [u8; 32],
    /// The model the key is asked for.
    pub model_digest: Blake3Digest,
}

/// The inputs of a session binding: evidence an enclave gives a client for one TLS connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The client's nonce.
    pub nonce: [u8; 32],
    /// DER `SubjectPublicKeyInfo` of the enclave's TLS key (the certificate's).
    pub tls_spki_der: Vec<u8>,
    /// This connection's exporter value ([`SESSION_EXPORTER_LABEL`], 32 bytes, no context).
    pub exporter: [u8; 32],
    /// The model the enclave serves.
    pub model_digest: Blake3Digest,
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::KeyRelease {}
    impl Sealed for super::Session {}
}

/// The inputs of a protocol binding: [`KeyRelease`] or [`Session`], and nothing else (sealed).
pub trait BindingInputs: sealed::Sealed + std::fmt::Debug {
    /// The role label hashed into the binding.
    const PURPOSE: Purpose;
    /// The challenger's nonce.
    fn nonce(&self) -> &[u8; 32];
    /// DER `SubjectPublicKeyInfo` of the enclave's TLS key.
    fn tls_spki_der(&self) -> &[u8];
    /// The wrapping key (key release) or the exporter value (session).
    fn channel(&self) -> &[u8; 32];
    /// The model digest.
    fn model_digest(&self) -> &Blake3Digest;
}

impl BindingInputs for KeyRelease {
    const PURPOSE: Purpose = Purpose::KeyRelease;
    fn nonce(&self) -> &[u8; 32] {
        &self.nonce
    }
    fn tls_spki_der(&self) -> &[u8] {
        &self.tls_spki_der
    }
    fn channel(&self) -> &[u8; 32] {
        &self.wrap_pk
    }
    fn model_digest(&self) -> &Blake3Digest {
        &self.model_digest
    }
}

impl BindingInputs for Session {
    const PURPOSE: Purpose = Purpose::Session;
    fn nonce(&self) -> &[u8; 32] {
        &self.nonce
    }
    fn tls_spki_der(&self) -> &[u8] {
        &self.tls_spki_der
    }
    fn channel(&self) -> &[u8; 32] {
        &self.exporter
    }
    fn model_digest(&self) -> &Blake3Digest {
        &self.model_digest
    }
}

/// A binding value and the inputs it was computed from. Only [`Binding::compute`] makes one.
pub struct Binding<I> {
    inputs: I,
    value: [u8; 64],
}

impl<I> std::fmt::Debug for Binding<I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Binding({})", hex::encode(self.value))
    }
}

impl<I: BindingInputs> Binding<I> {
    /// Computes the binding from its inputs.
    pub fn compute(inputs: I) -> Self {
        let spki_hash = digest::digest(&digest::SHA256, inputs.tls_spki_der());
        let mut ctx = digest::Context::new(&digest::SHA512);
        ctx.update(DOMAIN);
        ctx.update(&[0]);
        ctx.update(I::PURPOSE.label());
        ctx.update(&[0]);
        ctx.update(inputs.nonce());
        ctx.update(spki_hash.as_ref());
        ctx.update(inputs.channel());
        ctx.update(inputs.model_digest().as_bytes());
        let mut value = [0u8; 64];
        value.copy_from_slice(ctx.finish().as_ref());
        Binding { inputs, value }
    }
}

impl<I> Binding<I> {
    /// What the binding was computed from.
    pub fn inputs(&self) -> &I {
        &self.inputs
    }

    pub(crate) fn into_inputs(self) -> I {
        self.inputs
    }

    /// The full 64 bytes, as SEV-SNP `report_data` carries them.
    pub fn as_bytes(&self) -> &[u8; 64] {
        &self.value
    }

    /// The prefix a TPM quote carries as `extraData`.
    pub fn tpm_qualifying_data(&self) -> &[u8] {
        &self.value[..TPM_BINDING_LEN]
    }
}

/// Constant-time: `found` is exactly the 64-byte `value` (SEV-SNP `report_data`).
pub(crate) fn carried_in_full(value: &[u8; 64], found: &[u8]) -> bool {
    found.len() == 64 && bool::from(value.ct_eq(found))
}

/// Constant-time: `found` is exactly the [`TPM_BINDING_LEN`]-byte prefix of `value` (a TPM quote's
/// `extraData`: no padding, no truncation beyond the documented prefix).
pub(crate) fn carried_as_prefix(value: &[u8; 64], found: &[u8]) -> bool {
    found.len() == TPM_BINDING_LEN && bool::from(value[..TPM_BINDING_LEN].ct_eq(found))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_release() -> KeyRelease {
        KeyRelease {
            nonce: [1u8; 32],
            tls_spki_der: b"spki".to_vec(),
            wrap_pk: [2u8; 32],
            model_digest: Blake3Digest::from_bytes([3u8; 32]),
        }
    }

    fn session() -> Session {
        Session {
            nonce: [1u8; 32],
            tls_spki_der: b"spki".to_vec(),
            exporter: [2u8; 32],
            model_digest: Blake3Digest::from_bytes([3u8; 32]),
        }
    }

    /// Test vector computed independently:
    /// `python3 -c "import hashlib;print(hashlib.sha512(b'confidant/v1\0key-release\0'+b'\x01'*32+hashlib.sha256(b'spki').digest()+b'\x02'*32+b'\x03'*32).hexdigest())"`
    #[test]
    fn key_release_vector() {
        let b = Binding::compute(key_release());
        assert_eq!(hex::encode(b.as_bytes()), KEY_RELEASE_VECTOR);
    }

    #[test]
    fn session_vector() {
        let b = Binding::compute(session());
        assert_eq!(hex::encode(b.as_bytes()), SESSION_VECTOR);
    }

    #[test]
    fn every_input_changes_the_binding() {
        let b0 = *Binding::compute(key_release()).as_bytes();
        let changed = |f: &dyn Fn(&mut KeyRelease)| {
            let mut i = key_release();
            f(&mut i);
            *Binding::compute(i).as_bytes()
        };
        assert_ne!(changed(&|i| i.nonce[31] ^= 1), b0, "nonce");
        assert_ne!(changed(&|i| i.tls_spki_der.push(0)), b0, "spki");
        assert_ne!(changed(&|i| i.wrap_pk[0] ^= 1), b0, "channel");
        assert_ne!(
            changed(&|i| i.model_digest = Blake3Digest::from_bytes([4; 32])),
            b0,
            "model digest"
        );
        assert_ne!(*Binding::compute(session()).as_bytes(), b0, "purpose");
    }

    #[test]
    fn the_binding_keeps_its_inputs() {
        let b = Binding::compute(session());
        assert_eq!(b.inputs(), &session());
        assert_eq!(b.into_inputs(), session());
    }

    #[test]
    fn matching_is_exact() {
        let b = *Binding::compute(session()).as_bytes();
        assert!(carried_in_full(&b, &b));
        let mut other = b;
        other[63] ^= 0x80;
        assert!(!carried_in_full(&b, &other));
        assert!(!carried_in_full(&b, &b[..63]));
        assert!(carried_as_prefix(&b, &b[..32]));
        assert!(!carried_as_prefix(&b, &b[..31]));
        assert!(
            !carried_as_prefix(&b, &b),
            "a full 64-byte extraData is not the documented form"
        );
    }

    const KEY_RELEASE_VECTOR: &str = "3b89ed9848e4e607d826acc0257e7a123e050c7a70db1f39ff2e08a3e0038e65aa9b356a684521c678cabc82feacdc3c1d9682ecdb950a7f5fb111ef70d357f9";
    const SESSION_VECTOR: &str = "9e8294c30943bd460976835d390d13a14f6bacfa33f29ae42ce4b3b150bf5b12d3524a3f2cd664d9f210d1665fc2e8898512117b94a909cfe416f3a0c2bfbbd3";
}
