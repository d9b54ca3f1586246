//! ES256 verification keys from SPKI (PEM or DER) or JWK / JWK Set files.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rustls::pki_types::SubjectPublicKeyInfoDer;
use rustls::pki_types::pem::PemObject;
use serde::Deserialize;

/// DER prefix of a P-256 `SubjectPublicKeyInfo` (SEQUENCE { SEQUENCE { id-ecPublicKey,
/// prime256v1 }, BIT STRING (0 unused bits) }) followed by the 65-byte uncompressed point.
/// RFC 5480 §2; the whole encoding is fixed-length, so comparing the prefix is exact.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// Length of an uncompressed P-256 point (0x04 ‖ x ‖ y).
const POINT_LEN: usize = 65;

/// Why a verification key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file could not be read.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// PEM without a `PUBLIC KEY` block, or broken base64.
    #[error("PEM does not hold a PUBLIC KEY")]
    Pem,
    /// The SPKI is not an uncompressed P-256 key.
    #[error("not a P-256 SubjectPublicKeyInfo")]
    NotP256,
    /// The JWK is malformed or not an ES256 signing key.
    #[error("JWK is not a P-256 signature key: {0}")]
    Jwk(&'static str),
    /// No keys were configured.
    #[error("no verification keys configured")]
    NoKeys,
    /// Several keys share a `kid`, or several keys are configured and one has no `kid`.
    #[error("with several keys, every key needs a distinct kid")]
    AmbiguousKid,
}

/// One ES256 public key, optionally named by a `kid`.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifyingKey {
    pub(crate) kid: Option<String>,
    pub(crate) point: [u8; POINT_LEN],
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl VerifyingKey {
    /// From a DER `SubjectPublicKeyInfo` holding an uncompressed P-256 point.
    pub fn from_spki_der(kid: Option<String>, der: &[u8]) -> Result<Self, KeyError> {
        let point = der
            .strip_prefix(P256_SPKI_PREFIX.as_slice())
            .ok_or(KeyError::NotP256)?;
        Self::from_point(kid, point).ok_or(KeyError::NotP256)
    }

    /// From a PEM `PUBLIC KEY` block.
    pub fn from_pem(kid: Option<String>, pem: &[u8]) -> Result<Self, KeyError> {
        let der = SubjectPublicKeyInfoDer::from_pem_slice(pem).map_err(|_| KeyError::Pem)?;
        Self::from_spki_der(kid, der.as_ref())
    }

    /// From one JWK object (`kty` EC, `crv` P-256; `alg` if present ES256; `use` if present sig).
    pub fn from_jwk(jwk: &Jwk) -> Result<Self, KeyError> {
        if jwk.kty != "EC" || jwk.crv.as_deref() != Some("P-256") {
            return Err(KeyError::Jwk("kty/crv"));
        }
        if jwk.alg.as_deref().is_some_and(|a| a != "ES256") {
            return Err(KeyError::Jwk("alg"));
        }
        if jwk.use_.as_deref().is_some_and(|u| u != "sig") {
            return Err(KeyError::Jwk("use"));
        }
        if jwk.d.is_some() {
            return Err(KeyError::Jwk("private key material in a public JWK"));
        }
        let coord = |c: &Option<String>| -> Result<Vec<u8>, KeyError> {
            let c = c.as_deref().ok_or(KeyError::Jwk("x/y missing"))?;
            let b = URL_SAFE_NO_PAD
                .decode(c)
                .map_err(|_| KeyError::Jwk("x/y encoding"))?;
            if b.len() != 32 {
                return Err(KeyError::Jwk("x/y length"));
            }
            Ok(b)
        };
        let mut point = vec![0x04];
        point.extend(coord(&jwk.x)?);
        point.extend(coord(&jwk.y)?);
        Self::from_point(jwk.kid.clone(), &point).ok_or(KeyError::Jwk("point"))
    }

    /// The key id, if any.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    pub(crate) fn from_point(kid: Option<String>, point: &[u8]) -> Option<Self> {
        let point: [u8; POINT_LEN] = point.try_into().ok()?;
        (point[0] == 0x04).then_some(Self { kid, point })
    }
}

/// A JSON Web Key (RFC 7517), the fields an ES256 public key uses.
#[derive(Debug, Clone, Deserialize)]
pub struct Jwk {
    /// Key type, must be `EC`.
    pub kty: String,
    /// Curve, must be `P-256`.
    pub crv: Option<String>,
    /// X coordinate, base64url.
    pub x: Option<String>,
    /// Y coordinate, base64url.
    pub y: Option<String>,
    /// Key id.
    pub kid: Option<String>,
    /// Algorithm, ES256 if present.
    pub alg: Option<String>,
    /// Intended use, `sig` if present.
    #[serde(rename = "use")]
    pub use_: Option<String>,
    /// Private scalar: refused (a verifier should never hold it).
    pub d: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
struct JwkSet {
    keys: Vec<Jwk>,
}

/// Parses key material, recognising a JWK Set (`{"keys":[…]}`), a single JWK, a PEM
/// `PUBLIC KEY` or DER SPKI. `kid` names a PEM/DER key (JWKs carry their own).
pub fn parse_keys(bytes: &[u8], kid: Option<String>) -> Result<Vec<VerifyingKey>, KeyError> {
    let trimmed = bytes.trim_ascii_start();
    if trimmed.starts_with(b"{") {
        let value: serde_json::Value =
            serde_json::from_slice(trimmed).map_err(|_| KeyError::Jwk("not JSON"))?;
        if value.get("keys").is_some() {
            let set: JwkSet =
                serde_json::from_value(value).map_err(|_| KeyError::Jwk("JWK Set shape"))?;
            return set.keys.iter().map(VerifyingKey::from_jwk).collect();
        }
        let jwk: Jwk = serde_json::from_value(value).map_err(|_| KeyError::Jwk("JWK shape"))?;
        return Ok(vec![VerifyingKey::from_jwk(&jwk)?]);
    }
    if trimmed.starts_with(b"-----BEGIN") {
        return Ok(vec![VerifyingKey::from_pem(kid, trimmed)?]);
    }
    Ok(vec![VerifyingKey::from_spki_der(kid, bytes)?])
}

/// Reads and parses a key file (see [`parse_keys`]).
pub fn load_keys(path: &Path, kid: Option<String>) -> Result<Vec<VerifyingKey>, KeyError> {
    let bytes = std::fs::read(path).map_err(|source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_keys(&bytes, kid)
}

/// Checks a key set can be selected from unambiguously: non-empty; a single key may lack a
/// `kid`, several keys need distinct ones.
pub(crate) fn check_key_set(keys: &[VerifyingKey]) -> Result<(), KeyError> {
    match keys {
        [] => Err(KeyError::NoKeys),
        [_] => Ok(()),
        many => {
            let mut kids = Vec::with_capacity(many.len());
            for k in many {
                let kid = k.kid.as_deref().ok_or(KeyError::AmbiguousKid)?;
                if kids.contains(&kid) {
                    return Err(KeyError::AmbiguousKid);
                }
                kids.push(kid);
            }
            Ok(())
        }
    }
}
