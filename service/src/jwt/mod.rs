//! Bearer JWT verification, ES256 only (RFC 7519 / RFC 7515 compact serialisation, RFC 7518
//! §3.4 ECDSA P-256 SHA-256 with the fixed 64-byte `r ‖ s` signature).
//!
//! Order of checks: size → shape → header (`alg` must be `ES256`, `crit` refused) → key by `kid`
//! → signature over the received `header.payload` bytes → claims (`iss`, `aud`, `exp`, `nbf`,
//! `iat`, `sub`). Nothing from the payload is trusted before the signature verifies. Tokens are
//! never logged.

mod issuer;
mod keys;

use axum::http::HeaderValue;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
use serde::Deserialize;

pub use issuer::{IssuerError, JwtIssuer, TokenClaims};
pub use keys::{Jwk, KeyError, VerifyingKey, load_keys, parse_keys};

use crate::auth::Principal;

/// Longest token accepted, in bytes.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// Default clock-skew allowance for `exp`, `nbf` and `iat`, in seconds.
pub const DEFAULT_LEEWAY_SECS: u64 = 60;

/// Why a bearer token was refused. Every variant maps to HTTP 401.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization: Bearer` header.
    #[error("missing bearer token")]
    Missing,
    /// Not a well-formed compact JWS, too large, or a required claim is absent or mistyped.
    #[error("malformed token")]
    Malformed,
    /// `alg` is not `ES256` (this refuses `none`, HS*, RS*, …).
    #[error("algorithm not allowed")]
    BadAlgorithm,
    /// The signature does not verify under the selected key.
    #[error("bad signature")]
    BadSignature,
    /// `exp` has passed.
    #[error("token expired")]
    Expired,
    /// `nbf` (or `iat`) is in the future.
    #[error("token not yet valid")]
    NotYetValid,
    /// `iss` is not ours.
    #[error("wrong issuer")]
    WrongIssuer,
    /// `aud` does not name us.
    #[error("wrong audience")]
    WrongAudience,
    /// `kid` names no configured key, or is absent while several keys are configured.
    #[error("unknown key")]
    UnknownKey,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
    crit: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct Claims {
    iss: Option<String>,
    sub: Option<String>,
    aud: Option<Audience>,
    exp: Option<u64>,
    nbf: Option<u64>,
    iat: Option<u64>,
    #[serde(default)]
    roles: Vec<String>,
}

/// Verifies ES256 bearer tokens for one issuer and one audience.
#[derive(Debug, Clone)]
pub struct JwtVerifier {
    issuer: String,
    audience: String,
    leeway: u64,
    keys: Vec<VerifyingKey>,
}

impl JwtVerifier {
    /// A verifier accepting tokens from `issuer` for `audience`, signed by one of `keys`
    /// (a single key may lack a `kid`; several need distinct ones).
    pub fn new(
        issuer: impl Into<String>,
        audience: impl Into<String>,
        keys: Vec<VerifyingKey>,
    ) -> Result<Self, KeyError> {
        keys::check_key_set(&keys)?;
        Ok(Self {
            issuer: issuer.into(),
            audience: audience.into(),
            leeway: DEFAULT_LEEWAY_SECS,
            keys,
        })
    }

    /// The audience tokens must name.
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// The issuer tokens must come from.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Sets the clock-skew allowance in seconds.
    pub fn with_leeway(mut self, secs: u64) -> Self {
        self.leeway = secs;
        self
    }

    /// Verifies the value of an `Authorization` header (`Bearer <token>`, scheme
    /// case-insensitive).
    pub fn verify_header(
        &self,
        authorization: Option<&HeaderValue>,
        now_unix: u64,
    ) -> Result<Principal, AuthError> {
        let value = authorization.ok_or(AuthError::Missing)?;
        let value = value.to_str().map_err(|_| AuthError::Malformed)?;
        let (scheme, token) = value.split_once(' ').ok_or(AuthError::Missing)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(AuthError::Missing);
        }
        self.verify(token.trim(), now_unix)
    }

    /// Verifies a compact JWS token at time `now_unix` (seconds since the Unix epoch).
    pub fn verify(&self, token: &str, now_unix: u64) -> Result<Principal, AuthError> {
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        if token.len() > MAX_TOKEN_LEN {
            return Err(AuthError::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(h64), Some(p64), Some(s64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::Malformed);
        };

        let header: Header = decode_json(h64)?;
        if header.alg != "ES256" {
            return Err(AuthError::BadAlgorithm);
        }
        if header.crit.is_some() {
            return Err(AuthError::Malformed);
        }
        let key = self.select_key(header.kid.as_deref())?;

        let sig = URL_SAFE_NO_PAD
            .decode(s64)
            .map_err(|_| AuthError::Malformed)?;
        // Signing input is the received bytes, not a re-encoding.
        let signing_input = &token[..h64.len() + 1 + p64.len()];
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &key.point)
            .verify(signing_input.as_bytes(), &sig)
            .map_err(|_| AuthError::BadSignature)?;

        let claims: Claims = decode_json(p64)?;
        self.check_claims(claims, now_unix)
    }

    fn select_key(&self, kid: Option<&str>) -> Result<&VerifyingKey, AuthError> {
        match (kid, self.keys.as_slice()) {
            (None, [only]) => Ok(only),
            (None, _) => Err(AuthError::UnknownKey),
            (Some(kid), keys) => keys
                .iter()
                .find(|k| k.kid.as_deref() == Some(kid))
                .ok_or(AuthError::UnknownKey),
        }
    }

    fn check_claims(&self, c: Claims, now: u64) -> Result<Principal, AuthError> {
        if c.iss.as_deref() != Some(self.issuer.as_str()) {
            return Err(AuthError::WrongIssuer);
        }
        let aud_ok = match &c.aud {
            Some(Audience::One(a)) => *a == self.audience,
            Some(Audience::Many(v)) => v.contains(&self.audience),
            None => false,
        };
        if !aud_ok {
            return Err(AuthError::WrongAudience);
        }
        let exp = c.exp.ok_or(AuthError::Malformed)?;
        if now >= exp.saturating_add(self.leeway) {
            return Err(AuthError::Expired);
        }
        let horizon = now.saturating_add(self.leeway);
        if c.nbf.is_some_and(|nbf| nbf > horizon) || c.iat.is_some_and(|iat| iat > horizon) {
            return Err(AuthError::NotYetValid);
        }
        // The subject names the caller in logs, rate limits and the audit log: it must be short,
        // printable ASCII without spaces or quotes (e-mail addresses, UUIDs and IdP ids such as
        // `auth0|5f1c` pass), so that it can be logged verbatim.
        let subject = c
            .sub
            .filter(|s| crate::logsafe::is_log_safe(s, crate::logsafe::MAX_LOGGED_LEN))
            .ok_or(AuthError::Malformed)?;
        Ok(Principal {
            subject,
            roles: c.roles,
        })
    }
}

fn decode_json<T: serde::de::DeserializeOwned>(part: &str) -> Result<T, AuthError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| AuthError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| AuthError::Malformed)
}
