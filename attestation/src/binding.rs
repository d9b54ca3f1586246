//! The binding that evidence carries in `report_data` (SNP) or `extraData` (TPM).
//!
//! ```text
//! binding = SHA-512( "confidant/v1" || 0x00 || purpose || 0x00 || nonce(32)
//!                    || SHA-256(tls_spki_der) || channel(32) || model_digest(32) )
//! ```
//! `channel` is the enclave's X25519 key-wrapping public key for [`Purpose::KeyRelease`], and the
//! 32-byte TLS exporter value (label [`SESSION_EXPORTER_LABEL`], no context) for
//! [`Purpose::Session`]. The purpose string is the role label: only an enclave attests, and only in
//! these two ways, so evidence cannot be reflected from one use into the other.

use ring::digest;
use subtle::ConstantTimeEq;

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

/// The inputs of a binding, all mandatory.
#[derive(Debug, Clone, Copy)]
pub struct BindingInput<'a> {
    pub purpose: Purpose,
    pub nonce: &'a [u8; 32],
    /// DER `SubjectPublicKeyInfo` of the enclave's TLS key.
    pub tls_spki_der: &'a [u8],
    /// X25519 wrapping public key (key release) or TLS exporter value (session).
    pub channel: &'a [u8; 32],
    /// The model digest: BLAKE3-256 of the plaintext model bundle (`confidant_sealed::model_digest`).
    pub model_digest: &'a [u8; 32],
}

/// A computed 64-byte binding value.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Binding([u8; 64]);

impl std::fmt::Debug for Binding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Binding({})", hex::encode(self.0))
    }
}

impl Binding {
    /// Computes the binding from its inputs.
    pub fn compute(input: &BindingInput<'_>) -> Self {
        let spki_hash = digest::digest(&digest::SHA256, input.tls_spki_der);
        let mut ctx = digest::Context::new(&digest::SHA512);
        ctx.update(DOMAIN);
        ctx.update(&[0]);
        ctx.update(input.purpose.label());
        ctx.update(&[0]);
        ctx.update(input.nonce);
        ctx.update(spki_hash.as_ref());
        ctx.update(input.channel);
        ctx.update(input.model_digest);
        let mut out = [0u8; 64];
        out.copy_from_slice(ctx.finish().as_ref());
        Binding(out)
    }

    /// Wraps a raw 64-byte value (for example an expected `report_data` from a policy file).
    pub fn from_bytes(bytes: [u8; 64]) -> Self {
        Binding(bytes)
    }

    /// The full 64 bytes, as SEV-SNP `report_data` carries them.
    pub fn as_bytes(&self) -> &[u8; 64] {
        &self.0
    }

    /// The prefix a TPM quote carries as `extraData`.
    pub fn tpm_qualifying_data(&self) -> &[u8] {
        &self.0[..TPM_BINDING_LEN]
    }

    /// Constant-time comparison against bytes found in evidence.
    pub fn matches(&self, found: &[u8]) -> bool {
        found.len() == 64 && bool::from(self.0.ct_eq(found))
    }

    /// Constant-time comparison of a TPM quote's `extraData`; the length must be exactly
    /// [`TPM_BINDING_LEN`] (no padding, no truncation beyond the documented prefix).
    pub fn matches_tpm(&self, found: &[u8]) -> bool {
        found.len() == TPM_BINDING_LEN && bool::from(self.tpm_qualifying_data().ct_eq(found))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(purpose: Purpose) -> ([u8; 32], Vec<u8>, [u8; 32], [u8; 32], Purpose) {
        ([1u8; 32], b"spki".to_vec(), [2u8; 32], [3u8; 32], purpose)
    }

    fn compute(v: &([u8; 32], Vec<u8>, [u8; 32], [u8; 32], Purpose)) -> Binding {
        Binding::compute(&BindingInput {
            purpose: v.4,
            nonce: &v.0,
            tls_spki_der: &v.1,
            channel: &v.2,
            model_digest: &v.3,
        })
    }

    /// Test vector computed independently:
    /// `python3 -c "import hashlib;print(hashlib.sha512(b'confidant/v1\0key-release\0'+b'\x01'*32+hashlib.sha256(b'spki').digest()+b'\x02'*32+b'\x03'*32).hexdigest())"`
    #[test]
    fn key_release_vector() {
        let b = compute(&input(Purpose::KeyRelease));
        assert_eq!(hex::encode(b.as_bytes()), KEY_RELEASE_VECTOR);
    }

    #[test]
    fn session_vector() {
        let b = compute(&input(Purpose::Session));
        assert_eq!(hex::encode(b.as_bytes()), SESSION_VECTOR);
    }

    #[test]
    fn every_input_changes_the_binding() {
        let base = input(Purpose::KeyRelease);
        let b0 = compute(&base);
        let mut v = base.clone();
        v.0[31] ^= 1;
        assert_ne!(compute(&v), b0, "nonce");
        let mut v = base.clone();
        v.1.push(0);
        assert_ne!(compute(&v), b0, "spki");
        let mut v = base.clone();
        v.2[0] ^= 1;
        assert_ne!(compute(&v), b0, "channel");
        let mut v = base.clone();
        v.3[5] ^= 1;
        assert_ne!(compute(&v), b0, "model digest");
        let mut v = base.clone();
        v.4 = Purpose::Session;
        assert_ne!(compute(&v), b0, "purpose");
    }

    #[test]
    fn matching_is_exact() {
        let b = compute(&input(Purpose::Session));
        assert!(b.matches(b.as_bytes()));
        let mut other = *b.as_bytes();
        other[63] ^= 0x80;
        assert!(!b.matches(&other));
        assert!(!b.matches(&b.as_bytes()[..63]));
        assert!(b.matches_tpm(&b.as_bytes()[..32]));
        assert!(!b.matches_tpm(&b.as_bytes()[..31]));
        assert!(
            !b.matches_tpm(b.as_bytes()),
            "a full 64-byte extraData is not the documented form"
        );
    }

    const KEY_RELEASE_VECTOR: &str = "3b89ed9848e4e607d826acc0257e7a123e050c7a70db1f39ff2e08a3e0038e65aa9b356a684521c678cabc82feacdc3c1d9682ecdb950a7f5fb111ef70d357f9";
    const SESSION_VECTOR: &str = "9e8294c30943bd460976835d390d13a14f6bacfa33f29ae42ce4b3b150bf5b12d3524a3f2cd664d9f210d1665fc2e8898512117b94a909cfe416f3a0c2bfbbd3";
}
