//! Mapping of the verifier's errors to the wire: HTTP status and a stable code. Messages never
//! carry internals; details go to the log.

use axum::http::StatusCode;
use confidant_service::ApiError;

use crate::keys::KeyStoreError;
use crate::nonce::NonceError;

/// Admin key operations.
pub fn key_store_error(e: KeyStoreError) -> ApiError {
    use KeyStoreError as K;
    match e {
        K::BadKeyId => ApiError::bad_request("invalid_key_id", "invalid key id"),
        K::BadModelId => ApiError::bad_request("invalid_model_id", "invalid model id"),
        K::BadKeyLength => ApiError::bad_request("invalid_key", "model key must be 32 bytes"),
        K::Exists => ApiError::new(StatusCode::CONFLICT, "key_exists", "key id already exists"),
        K::NotFound => ApiError::new(StatusCode::NOT_FOUND, "key_not_found", "no such key"),
        K::Revoked => ApiError::new(StatusCode::CONFLICT, "key_revoked", "key is revoked"),
        K::NotActive => ApiError::new(
            StatusCode::CONFLICT,
            "key_not_active",
            "only the active key of a model can be rotated",
        ),
        K::ModelHasActiveKey => ApiError::new(
            StatusCode::CONFLICT,
            "model_has_active_key",
            "the model already has an active key; rotate it",
        ),
        K::NoKeyForModel => ApiError::new(
            StatusCode::NOT_FOUND,
            "no_key_for_model",
            "no releasable key for this model",
        ),
        K::DigestMismatch => ApiError::new(
            StatusCode::CONFLICT,
            "model_digest_mismatch",
            "model digest differs from the key's",
        ),
        other @ (K::BadKek | K::Storage { .. } | K::Decrypt(_) | K::Rng) => {
            ApiError::internal(other)
        }
    }
}

/// `POST /v1/challenge` failures.
pub fn challenge_error(e: NonceError) -> ApiError {
    match e {
        NonceError::StoreFull => ApiError::unavailable(
            "too_many_challenges",
            "too many outstanding challenges; retry shortly",
        ),
        other => ApiError::internal(other),
    }
}
