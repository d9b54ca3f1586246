//! A development/test ES256 token issuer. Used by `init` commands and tests; a service never
//! mints tokens.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde::Serialize;

use super::keys::VerifyingKey;
use crate::secrets::Secret;

/// Why an issuer could not be built or could not sign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IssuerError {
    /// The PKCS#8 document is not a P-256 private key.
    #[error("not a P-256 PKCS#8 private key")]
    BadKey,
    /// Key generation or signing failed (system randomness).
    #[error("signing failed")]
    Crypto,
}

/// Claims a minted token carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenClaims {
    /// Issuer.
    pub iss: String,
    /// Subject (the principal).
    pub sub: String,
    /// Audience.
    pub aud: String,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// Not before.
    pub nbf: u64,
    /// Issued at.
    pub iat: u64,
    /// Roles.
    pub roles: Vec<String>,
}

impl TokenClaims {
    /// Claims valid from `now` for `ttl_secs`.
    pub fn new(
        iss: impl Into<String>,
        aud: impl Into<String>,
        sub: impl Into<String>,
        roles: &[&str],
        now: u64,
        ttl_secs: u64,
    ) -> Self {
        Self {
            iss: iss.into(),
            sub: sub.into(),
            aud: aud.into(),
            exp: now.saturating_add(ttl_secs),
            nbf: now,
            iat: now,
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        }
    }
}

/// Mints ES256 tokens with one P-256 key.
pub struct JwtIssuer {
    pair: EcdsaKeyPair,
    pkcs8: Secret,
    kid: Option<String>,
    rng: SystemRandom,
}

impl std::fmt::Debug for JwtIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtIssuer")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl JwtIssuer {
    /// From a PKCS#8 (DER) P-256 private key.
    pub fn from_pkcs8(pkcs8: &[u8], kid: Option<String>) -> Result<Self, IssuerError> {
        let rng = SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &rng)
            .map_err(|_| IssuerError::BadKey)?;
        Ok(Self {
            pair,
            pkcs8: Secret::new(pkcs8.to_vec()),
            kid,
            rng,
        })
    }

    /// A fresh random key.
    pub fn generate(kid: Option<String>) -> Result<Self, IssuerError> {
        let rng = SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| IssuerError::Crypto)?;
        Self::from_pkcs8(doc.as_ref(), kid)
    }

    /// The PKCS#8 private key, for `init` commands to store (see
    /// [`crate::secrets::write_secret_file`]).
    pub fn pkcs8(&self) -> &Secret {
        &self.pkcs8
    }

    /// The matching verification key (same `kid`).
    pub fn verifying_key(&self) -> Result<VerifyingKey, IssuerError> {
        VerifyingKey::from_point(self.kid.clone(), self.pair.public_key().as_ref())
            .ok_or(IssuerError::BadKey)
    }

    /// The public key as a JWK (JSON object), for publishing.
    pub fn public_jwk(&self) -> serde_json::Value {
        let point = self.pair.public_key().as_ref();
        let mut jwk = serde_json::json!({
            "kty": "EC",
            "crv": "P-256",
            "alg": "ES256",
            "use": "sig",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        });
        if let (Some(kid), Some(obj)) = (&self.kid, jwk.as_object_mut()) {
            obj.insert("kid".into(), kid.clone().into());
        }
        jwk
    }

    /// Mints a token for `claims`.
    pub fn mint(&self, claims: &TokenClaims) -> Result<String, IssuerError> {
        let mut header = serde_json::json!({ "alg": "ES256", "typ": "JWT" });
        if let (Some(kid), Some(obj)) = (&self.kid, header.as_object_mut()) {
            obj.insert("kid".into(), kid.clone().into());
        }
        let header = serde_json::to_vec(&header).map_err(|_| IssuerError::Crypto)?;
        let claims = serde_json::to_vec(claims).map_err(|_| IssuerError::Crypto)?;
        let mut token = URL_SAFE_NO_PAD.encode(header);
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(claims));
        let sig = self
            .pair
            .sign(&self.rng, token.as_bytes())
            .map_err(|_| IssuerError::Crypto)?;
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(sig.as_ref()));
        Ok(token)
    }
}
