//! The model digest: BLAKE3-256 (plain hash mode) of the plaintext model bundle, as `b3sum` prints
//! it. One type everywhere a model is named by its digest — the sealed header, the binding, the
//! policy, the attestation result, the key store — so a SHA-256 value or any other 32 bytes cannot
//! stand in for it by accident. Computing it is the sealed format's business
//! (`confidant_sealed::model_digest`); this crate only compares and carries it.

/// A BLAKE3-256 digest of a model bundle.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Blake3Digest([u8; 32]);

/// Why text is not a model digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a BLAKE3-256 model digest is 64 hex digits")]
pub struct DigestHexError;

impl Blake3Digest {
    /// The name of the algorithm, as the sealed header and documents write it.
    pub const ALGORITHM: &'static str = "BLAKE3-256";

    /// Wraps 32 bytes that are a BLAKE3-256 output.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Blake3Digest(bytes)
    }

    /// The 32 bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex digits (surrounding whitespace ignored).
    pub fn from_hex(text: &str) -> Result<Self, DigestHexError> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut out).map_err(|_| DigestHexError)?;
        Ok(Blake3Digest(out))
    }
}

impl std::fmt::Debug for Blake3Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Blake3Digest({})", self.to_hex())
    }
}

impl std::fmt::Display for Blake3Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl serde::Serialize for Blake3Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> serde::Deserialize<'de> for Blake3Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Blake3Digest::from_hex(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_refusals() {
        let d = Blake3Digest::from_bytes([0xab; 32]);
        assert_eq!(Blake3Digest::from_hex(&d.to_hex()), Ok(d));
        assert_eq!(Blake3Digest::from_hex(&format!(" {d}\n")), Ok(d));
        for bad in ["", "ab", &"ab".repeat(33), &"zz".repeat(32)] {
            assert_eq!(Blake3Digest::from_hex(bad), Err(DigestHexError), "{bad}");
        }
        let json = serde_json::to_string(&d).unwrap_or_default();
        assert_eq!(json, format!("\"{}\"", "ab".repeat(32)));
        assert_eq!(serde_json::from_str::<Blake3Digest>(&json).ok(), Some(d));
    }
}
