//! The result-signing key (ECDSA P-256) and its public forms: SEC1 point, COSE_Key (RFC 9052
//! section 7, RFC 9053 section 7.1) and JWK (RFC 7517/7518), for `GET /v1/keys`.
//!
//! The key id is the RFC 7638 JWK thumbprint (SHA-256 over `{"crv","kty","x","y"}`), as raw
//! 32 bytes in COSE (`kid`, header 4 and COSE_Key label 2) and base64url in the JWK `kid`. Both
//! ends recompute it from the key, so a key and its id cannot drift apart.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use coset::cbor::value::Value;
use coset::{CborSerializable, CoseKey, CoseKeyBuilder, KeyType, Label, iana};
use ring::rand::SecureRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde::{Deserialize, Serialize};

use super::ResultError;

/// Length of an uncompressed SEC1 P-256 point (`0x04 || x || y`).
const SEC1_LEN: usize = 65;
/// Largest COSE_Key or JWK accepted.
const MAX_KEY_BYTES: usize = 1024;

/// A public result-signing key as a JWK (RFC 7517), typed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Jwk {
    /// Always `"EC"`.
    pub kty: String,
    /// Always `"P-256"`.
    pub crv: String,
    /// base64url x coordinate (32 bytes).
    pub x: String,
    /// base64url y coordinate (32 bytes).
    pub y: String,
    /// Always `"ES256"`.
    pub alg: String,
    /// `"sig"`.
    #[serde(rename = "use")]
    pub use_: String,
    /// base64url RFC 7638 thumbprint.
    pub kid: String,
}

/// The public half: checks results. Cheap to clone.
#[derive(Clone, PartialEq, Eq)]
pub struct ResultVerifier {
    pub(super) sec1: [u8; SEC1_LEN],
    pub(super) kid: [u8; 32],
}

impl std::fmt::Debug for ResultVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ResultVerifier(kid {})", hex::encode(self.kid))
    }
}

impl ResultVerifier {
    /// From an uncompressed SEC1 P-256 point (65 bytes, `0x04 || x || y`).
    pub fn from_public_key(sec1: &[u8]) -> Result<Self, ResultError> {
        let sec1: [u8; SEC1_LEN] = sec1
            .try_into()
            .map_err(|_| ResultError::InvalidKey("not a 65-byte uncompressed P-256 point"))?;
        if sec1[0] != 0x04 {
            return Err(ResultError::InvalidKey("not an uncompressed point"));
        }
        let (x, y) = split_xy(&sec1);
        Ok(ResultVerifier {
            kid: thumbprint(x, y),
            sec1,
        })
    }

    /// From a CBOR COSE_Key: kty EC2, crv P-256, 32-byte x and y; `alg`, if present, ES256;
    /// `kid`, if present, the thumbprint.
    pub fn from_cose_key(bytes: &[u8]) -> Result<Self, ResultError> {
        if bytes.len() > MAX_KEY_BYTES {
            return Err(ResultError::TooLarge(bytes.len()));
        }
        let key =
            CoseKey::from_slice(bytes).map_err(|_| ResultError::InvalidKey("not a COSE_Key"))?;
        if key.kty != KeyType::Assigned(iana::KeyType::EC2) {
            return Err(ResultError::InvalidKey("kty is not EC2"));
        }
        if key
            .alg
            .as_ref()
            .is_some_and(|a| *a != coset::Algorithm::Assigned(iana::Algorithm::ES256))
        {
            return Err(ResultError::InvalidKey("alg is not ES256"));
        }
        let param = |label: iana::Ec2KeyParameter| {
            let mut found = key
                .params
                .iter()
                .filter(|(l, _)| *l == Label::Int(label as i64))
                .map(|(_, v)| v);
            match (found.next(), found.next()) {
                (Some(v), None) => Ok(v),
                _ => Err(ResultError::InvalidKey("EC2 parameter missing or repeated")),
            }
        };
        if *param(iana::Ec2KeyParameter::Crv)? != Value::from(iana::EllipticCurve::P_256 as i64) {
            return Err(ResultError::InvalidKey("crv is not P-256"));
        }
        let coord = |label| match param(label)? {
            Value::Bytes(b) if b.len() == 32 => Ok(b.as_slice()),
            _ => Err(ResultError::InvalidKey("coordinate is not 32 bytes")),
        };
        let sec1 = sec1_from_xy(
            coord(iana::Ec2KeyParameter::X)?,
            coord(iana::Ec2KeyParameter::Y)?,
        );
        let v = Self::from_public_key(&sec1)?;
        if !key.key_id.is_empty() && key.key_id != v.kid {
            return Err(ResultError::InvalidKey("kid is not the key's thumbprint"));
        }
        Ok(v)
    }

    /// From a JWK as JSON (the form [`ResultVerifier::jwk`] writes).
    pub fn from_jwk(json: &str) -> Result<Self, ResultError> {
        if json.len() > MAX_KEY_BYTES {
            return Err(ResultError::TooLarge(json.len()));
        }
        let jwk: Jwk =
            serde_json::from_str(json).map_err(|_| ResultError::InvalidKey("not a JWK"))?;
        if jwk.kty != "EC" || jwk.crv != "P-256" || jwk.alg != "ES256" || jwk.use_ != "sig" {
            return Err(ResultError::InvalidKey(
                "JWK is not an ES256 P-256 signing key",
            ));
        }
        let decode = |s: &str| -> Result<Vec<u8>, ResultError> {
            let b = URL_SAFE_NO_PAD
                .decode(s)
                .map_err(|_| ResultError::InvalidKey("JWK field is not base64url"))?;
            Ok(b)
        };
        let (x, y) = (decode(&jwk.x)?, decode(&jwk.y)?);
        if x.len() != 32 || y.len() != 32 {
            return Err(ResultError::InvalidKey("coordinate is not 32 bytes"));
        }
        let v = Self::from_public_key(&sec1_from_xy(&x, &y))?;
        if decode(&jwk.kid)? != v.kid {
            return Err(ResultError::InvalidKey("kid is not the key's thumbprint"));
        }
        Ok(v)
    }

    /// The key id (RFC 7638 thumbprint).
    pub fn kid(&self) -> &[u8; 32] {
        &self.kid
    }

    /// The uncompressed SEC1 point.
    pub fn public_key(&self) -> &[u8] {
        &self.sec1
    }

    /// The public key as a CBOR COSE_Key (kty EC2, crv P-256, alg ES256, kid, key_ops verify).
    pub fn cose_key(&self) -> Result<Vec<u8>, ResultError> {
        let (x, y) = split_xy(&self.sec1);
        CoseKeyBuilder::new_ec2_pub_key(iana::EllipticCurve::P_256, x.to_vec(), y.to_vec())
            .algorithm(iana::Algorithm::ES256)
            .key_id(self.kid.to_vec())
            .add_key_op(iana::KeyOperation::Verify)
            .build()
            .to_vec()
            .map_err(|_| ResultError::Encoding)
    }

    /// The public key as a JWK.
    pub fn jwk(&self) -> Jwk {
        let (x, y) = split_xy(&self.sec1);
        Jwk {
            kty: "EC".to_string(),
            crv: "P-256".to_string(),
            x: URL_SAFE_NO_PAD.encode(x),
            y: URL_SAFE_NO_PAD.encode(y),
            alg: "ES256".to_string(),
            use_: "sig".to_string(),
            kid: URL_SAFE_NO_PAD.encode(self.kid),
        }
    }
}

/// The private half: signs results. Holds a `ring` key pair; the randomness for each signature
/// is passed in by the caller ([`ResultSigner::sign`](super::ResultSigner::sign)).
pub struct ResultSigner {
    pub(super) key: EcdsaKeyPair,
    pub(super) public: ResultVerifier,
}

impl std::fmt::Debug for ResultSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ResultSigner(kid {})", hex::encode(self.public.kid))
    }
}

impl ResultSigner {
    /// From a PKCS#8 v1/v2 DER ECDSA P-256 private key.
    pub fn from_pkcs8(pkcs8: &[u8], rng: &dyn SecureRandom) -> Result<Self, ResultError> {
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, rng)
            .map_err(|_| ResultError::InvalidKey("not a PKCS#8 P-256 private key"))?;
        let public = ResultVerifier::from_public_key(key.public_key().as_ref())?;
        Ok(ResultSigner { key, public })
    }

    /// Generates a new P-256 key as PKCS#8 DER (for provisioning and tests).
    pub fn generate_pkcs8(rng: &dyn SecureRandom) -> Result<Vec<u8>, ResultError> {
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, rng)
            .map(|d| d.as_ref().to_vec())
            .map_err(|_| ResultError::Encoding)
    }

    /// The matching verifier (also the source of the COSE_Key and JWK exports).
    pub fn verifier(&self) -> &ResultVerifier {
        &self.public
    }

    /// The key id (RFC 7638 thumbprint).
    pub fn kid(&self) -> &[u8; 32] {
        &self.public.kid
    }
}

fn split_xy(sec1: &[u8; SEC1_LEN]) -> (&[u8], &[u8]) {
    let (x, y) = sec1[1..].split_at(32);
    (x, y)
}

fn sec1_from_xy(x: &[u8], y: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(SEC1_LEN);
    v.push(0x04);
    v.extend_from_slice(x);
    v.extend_from_slice(y);
    v
}

/// RFC 7638 thumbprint of an EC P-256 key: SHA-256 of the members `crv`, `kty`, `x`, `y` in
/// lexicographic order, no whitespace.
fn thumbprint(x: &[u8], y: &[u8]) -> [u8; 32] {
    let json = format!(
        r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
        URL_SAFE_NO_PAD.encode(x),
        URL_SAFE_NO_PAD.encode(y)
    );
    let d = ring::digest::digest(&ring::digest::SHA256, json.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}
