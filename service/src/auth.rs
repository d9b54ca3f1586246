//! Who is calling: the [`Principal`] a verified bearer token names, the [`RequireAuth`]
//! extractor producing it, and role checks.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{FromRef, FromRequestParts};
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use crate::error::ApiError;
use crate::jwt::{AuthError, JwtVerifier};

/// An authenticated caller: the token's `sub` and `roles`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The `sub` claim: 1–128 bytes of printable ASCII without spaces, quotes or backslashes
    /// (tokens with any other subject are refused), so it is safe to log.
    pub subject: String,
    /// The `roles` claim.
    pub roles: Vec<String>,
}

impl Principal {
    /// True when the principal holds `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

/// The principal lacks a required role (HTTP 403).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("forbidden")]
pub struct Forbidden;

/// Succeeds when `principal` holds `role`.
pub fn require_role(principal: &Principal, role: &str) -> Result<(), Forbidden> {
    if principal.has_role(role) {
        Ok(())
    } else {
        Err(Forbidden)
    }
}

impl From<Forbidden> for ApiError {
    fn from(_: Forbidden) -> Self {
        ApiError::forbidden()
    }
}

/// Every refusal is 401. The codes a caller can act on are told apart: `missing_token`,
/// `token_expired` (log in or refresh), and `wrong_audience` / `wrong_issuer` (a token minted
/// for another service or by another issuer). Those two are decided only after the signature
/// verified, so they tell nothing to someone without a genuine token. Every other reason is
/// `invalid_token`; the exact reason is logged at debug.
impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Missing => ApiError::unauthorized("missing_token"),
            AuthError::Expired => ApiError::unauthorized("token_expired"),
            AuthError::WrongAudience => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "wrong_audience",
                "the token's audience (aud) does not name this service",
            ),
            AuthError::WrongIssuer => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "wrong_issuer",
                "the token's issuer (iss) is not the one this service trusts",
            ),
            _ => ApiError::unauthorized("invalid_token"),
        }
    }
}

/// The 401 for `e`, naming the expected audience or issuer where the token was genuine but meant
/// for another service (both are configuration, not secrets).
pub fn refusal(e: AuthError, verifier: &JwtVerifier) -> ApiError {
    let mut err = ApiError::from(e);
    match e {
        AuthError::WrongAudience => {
            err.message = format!(
                "the token's audience (aud) does not name this service: it accepts tokens for \
                 audience {:?}",
                verifier.audience()
            );
        }
        AuthError::WrongIssuer => {
            err.message = format!(
                "the token's issuer (iss) is not the one this service trusts: {:?}",
                verifier.issuer()
            );
        }
        _ => {}
    }
    err
}

/// Extractor: verifies the `Authorization: Bearer` token against the state's
/// `Arc<JwtVerifier>` (via `FromRef`) at the current wall-clock time, and yields the principal
/// (also inserted into request extensions). Rejects with a JSON 401.
#[derive(Debug, Clone)]
pub struct RequireAuth(pub Principal);

impl<S> FromRequestParts<S> for RequireAuth
where
    S: Send + Sync,
    Arc<JwtVerifier>: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let verifier = Arc::<JwtVerifier>::from_ref(state);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        match verifier.verify_header(parts.headers.get(AUTHORIZATION), now) {
            Ok(principal) => {
                parts.extensions.insert(principal.clone());
                Ok(Self(principal))
            }
            Err(reason) => {
                tracing::debug!(?reason, "bearer token refused");
                Err(refusal(reason, &verifier))
            }
        }
    }
}
