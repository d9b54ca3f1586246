//! Signed checkpoints: the log's size and root at a time, signed by the verifier.
//!
//! Encoding (UTF-8 text, every line ends in `\n`, integers in decimal without leading zeros,
//! hex in lowercase):
//!
//! ```text
//! confidant/v1 audit-checkpoint
//! <size>
//! <root: 64 hex digits>
//! <time: unix seconds>
//!
//! sig <128 hex digits: ECDSA P-256 / SHA-256 signature, r ‖ s fixed-width>
//! ```
//! The signature covers the first four lines exactly as received (the *body*, including its final
//! newline). The public key is the 65-byte uncompressed SEC1 point.

use ring::rand::SecureRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair,
    UnparsedPublicKey,
};

use super::entry::Hash;

/// First line of every checkpoint.
pub const CHECKPOINT_ORIGIN: &str = "confidant/v1 audit-checkpoint";
/// Longest accepted encoded checkpoint.
pub const MAX_CHECKPOINT_LEN: usize = 512;

/// A log size and root at a point in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    pub size: u64,
    pub root: Hash,
    /// Unix seconds when the checkpoint was made.
    pub time: u64,
}

/// Why a checkpoint could not be made or verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint is malformed")]
    Malformed,
    #[error("checkpoint signature is invalid")]
    BadSignature,
    #[error("checkpoint signing key is invalid")]
    BadKey,
    #[error("checkpoint signing failed")]
    SigningFailed,
}

impl Checkpoint {
    /// The signed body (four lines).
    pub fn body(&self) -> String {
        format!(
            "{CHECKPOINT_ORIGIN}\n{}\n{}\n{}\n",
            self.size,
            hex::encode(self.root),
            self.time
        )
    }
}

/// Signs checkpoints with an ECDSA P-256 key.
pub struct CheckpointSigner {
    key: EcdsaKeyPair,
}

impl std::fmt::Debug for CheckpointSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointSigner")
            .field("public_key", &hex::encode(self.public_key()))
            .finish_non_exhaustive()
    }
}

impl CheckpointSigner {
    /// Loads a PKCS#8 (RFC 5958) P-256 private key.
    pub fn from_pkcs8(pkcs8: &[u8], rng: &dyn SecureRandom) -> Result<Self, CheckpointError> {
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, rng)
            .map(|key| CheckpointSigner { key })
            .map_err(|_| CheckpointError::BadKey)
    }

    /// Generates a new PKCS#8 P-256 private key (for setup and tests).
    pub fn generate_pkcs8(rng: &dyn SecureRandom) -> Result<Vec<u8>, CheckpointError> {
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, rng)
            .map(|d| d.as_ref().to_vec())
            .map_err(|_| CheckpointError::BadKey)
    }

    /// The uncompressed SEC1 public key that [`verify_checkpoint`] takes.
    pub fn public_key(&self) -> &[u8] {
        self.key.public_key().as_ref()
    }

    /// Signs and encodes a checkpoint.
    pub fn sign(
        &self,
        checkpoint: &Checkpoint,
        rng: &dyn SecureRandom,
    ) -> Result<Vec<u8>, CheckpointError> {
        let body = checkpoint.body();
        let sig = self
            .key
            .sign(rng, body.as_bytes())
            .map_err(|_| CheckpointError::SigningFailed)?;
        Ok(format!("{body}\nsig {}\n", hex::encode(sig.as_ref())).into_bytes())
    }
}

/// Verifies a checkpoint's signature over the received body and returns its contents.
pub fn verify_checkpoint(bytes: &[u8], public_key: &[u8]) -> Result<Checkpoint, CheckpointError> {
    if bytes.len() > MAX_CHECKPOINT_LEN {
        return Err(CheckpointError::Malformed);
    }
    let text = std::str::from_utf8(bytes).map_err(|_| CheckpointError::Malformed)?;
    let mut lines = text.split_inclusive('\n');
    let mut body_len = 0;
    let mut field = || -> Result<&str, CheckpointError> {
        let line = lines.next().ok_or(CheckpointError::Malformed)?;
        body_len += line.len();
        line.strip_suffix('\n').ok_or(CheckpointError::Malformed)
    };
    let origin = field()?;
    let size = field()?;
    let root = field()?;
    let time = field()?;
    let blank = field()?;
    let sig_line = field()?;
    if origin != CHECKPOINT_ORIGIN || !blank.is_empty() || body_len != text.len() {
        return Err(CheckpointError::Malformed);
    }
    let sig_hex = sig_line
        .strip_prefix("sig ")
        .ok_or(CheckpointError::Malformed)?;
    let sig = decode_hex::<64>(sig_hex)?;
    let signed_len = text.len() - blank.len() - 1 - sig_line.len() - 1;
    let body = bytes.get(..signed_len).ok_or(CheckpointError::Malformed)?;
    let checkpoint = Checkpoint {
        size: decimal(size)?,
        root: decode_hex::<32>(root)?,
        time: decimal(time)?,
    };
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, public_key)
        .verify(body, &sig)
        .map_err(|_| CheckpointError::BadSignature)?;
    Ok(checkpoint)
}

fn decimal(s: &str) -> Result<u64, CheckpointError> {
    let canonical =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    if !canonical {
        return Err(CheckpointError::Malformed);
    }
    s.parse().map_err(|_| CheckpointError::Malformed)
}

fn decode_hex<const N: usize>(s: &str) -> Result<[u8; N], CheckpointError> {
    if s.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(CheckpointError::Malformed);
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(s, &mut out).map_err(|_| CheckpointError::Malformed)?;
    Ok(out)
}
