//! HTTP routes. Handlers are thin: authenticate, check the role, rate-limit, decode, hand the
//! work to [`crate::state::Verifier`] (blocking work on the blocking pool), encode.
//!
//! | route | who |
//! |---|---|
//! | `POST /v1/challenge`, `POST /v1/attest/credential`, `POST /v1/attest` | role `enclave` (rate-limited per token subject) |
//! | `GET /v1/ca`, `GET /v1/keys` | anyone (what clients pin) |
//! | `/v1/admin/*` | role `admin` (admin listener only) |
//! | `/v1/audit*` | role `auditor` (admin listener only) |
//!
//! The first three rows are the attestation API ([`attestation_router`], `server.listen`); the
//! admin and auditor APIs ([`admin_router`]) are served only on `server.admin_listen`.
//!
//! Routes that take a JSON body refuse any other declared type with 415 before anything else runs
//! (`POST /v1/attest` takes only CBOR, `PUT /v1/admin/policy` only TOML), so no cross-site "simple
//! request" reaches a handler.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRef, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::from_fn;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use confidant_attestation::digest::Blake3Digest;
use confidant_service::content_type::require_json;
use confidant_service::{ApiError, JwtVerifier, Principal, RequireAuth, require_role};
use confidant_wire::admin::{
    AuditCheckpoint, AuditEntries, ConsistencyProof, InclusionProof, PolicyVersion,
};
use confidant_wire::attest::{
    AttestRequest, CBOR_CONTENT_TYPE, CborError, ChallengeResponse, CredentialRequest,
    CredentialResponse,
};
use confidant_wire::routes::verifier as routes;
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::state::Verifier;

/// Role that may ask for challenges and key release.
pub const ROLE_ENCLAVE: &str = "enclave";
/// Role for policy and key administration.
pub const ROLE_ADMIN: &str = "admin";
/// Role that may read the audit log.
pub const ROLE_AUDITOR: &str = "auditor";

/// Most audit entries returned by one `GET /v1/audit`.
pub const MAX_AUDIT_PAGE: u64 = 1000;

/// The router's state.
#[derive(Debug, Clone)]
pub struct AppState(pub Arc<Verifier>);

impl FromRef<AppState> for Arc<JwtVerifier> {
    fn from_ref(state: &AppState) -> Self {
        state.0.jwt()
    }
}

/// The attestation API (served on `server.listen`): enclaves' challenge, credential and attest
/// routes, and the public CA and result keys. Hardened (JSON errors, body cap, request ids).
pub fn attestation_router(verifier: Arc<Verifier>, max_body_bytes: usize) -> Router {
    let app = Router::new()
        .route(routes::CHALLENGE, post(challenge))
        .route(routes::ATTEST, post(attest))
        .route(
            routes::ATTEST_CREDENTIAL,
            post(attest_credential).route_layer(from_fn(require_json)),
        )
        .route(routes::CA, get(ca))
        .route(routes::KEYS, get(keys))
        .with_state(AppState(verifier));
    confidant_service::harden(app, max_body_bytes)
}

/// The admin and auditor APIs (served on `server.admin_listen` only): policy, measurement
/// revocation, model keys, the audit log and its proofs. Hardened like the attestation API.
pub fn admin_router(verifier: Arc<Verifier>, max_body_bytes: usize) -> Router {
    let app = Router::new()
        .route(routes::ADMIN_POLICY, put(put_policy).get(get_policy))
        .route(
            routes::ADMIN_REVOKE_MEASUREMENT,
            post(revoke_measurement).route_layer(from_fn(require_json)),
        )
        .route(
            routes::ADMIN_KEYS,
            post(import_key)
                .route_layer(from_fn(require_json))
                .get(list_keys),
        )
        .route(
            routes::ADMIN_KEY_ROTATE,
            post(rotate_key).route_layer(from_fn(require_json)),
        )
        .route(routes::ADMIN_KEY_REVOKE, post(revoke_key))
        .route(routes::AUDIT, get(audit_entries))
        .route(routes::AUDIT_CHECKPOINT, get(audit_checkpoint))
        .route(routes::AUDIT_PROOF_INCLUSION, get(inclusion_proof))
        .route(routes::AUDIT_PROOF_CONSISTENCY, get(consistency_proof))
        .with_state(AppState(verifier));
    confidant_service::harden(app, max_body_bytes)
}

fn role(p: &Principal, role: &str) -> Result<(), ApiError> {
    require_role(p, role).map_err(ApiError::from)
}

/// Runs blocking work (fsync, signing, verification) off the async workers.
async fn blocking<T, F>(f: F) -> Result<T, ApiError>
where
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ApiError::internal)?
}

fn cbor_response(status: StatusCode, bytes: Vec<u8>) -> Response {
    let mut resp = (status, bytes).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(CBOR_CONTENT_TYPE),
    );
    resp
}

fn require_content_type(headers: &HeaderMap, expected: &[&str]) -> Result<(), ApiError> {
    confidant_service::content_type::require(headers, expected)
}

fn json_body<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<T, ApiError> {
    require_content_type(headers, &[confidant_service::content_type::JSON])?;
    serde_json::from_slice(body).map_err(|_| {
        ApiError::bad_request("invalid_body", "request body does not match the schema")
    })
}

// --- enclave ---------------------------------------------------------------------------------

async fn challenge(
    State(AppState(v)): State<AppState>,
    RequireAuth(p): RequireAuth,
) -> Result<axum::Json<ChallengeResponse>, ApiError> {
    role(&p, ROLE_ENCLAVE)?;
    v.rate_limit(&p)?;
    let issued = v.issue_challenge().map_err(crate::error::challenge_error)?;
    Ok(axum::Json(ChallengeResponse {
        nonce: hex::encode(issued.nonce),
        expires_at: issued.expires_ms.div_ceil(1000),
    }))
}

async fn attest(
    State(AppState(v)): State<AppState>,
    RequireAuth(p): RequireAuth,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    role(&p, ROLE_ENCLAVE)?;
    v.rate_limit(&p)?;
    require_content_type(&headers, &[CBOR_CONTENT_TYPE])?;
    let req = decode_attest_request(&body)?;
    let subject = p.subject.clone();
    let reply = blocking(move || Ok(v.attest(&subject, req))).await?;
    match reply {
        Ok(resp) => Ok(cbor_response(StatusCode::OK, resp.to_cbor())),
        Err(refusal) => Err(refusal.into()),
    }
}

/// `POST /v1/attest/credential` (JSON): a TPM credential for the AK, under the EK the policy's
/// EK CAs vouch for, remembered under the (still outstanding) nonce.
async fn attest_credential(
    State(AppState(v)): State<AppState>,
    RequireAuth(p): RequireAuth,
    headers: HeaderMap,
    body: Bytes,
) -> Result<axum::Json<CredentialResponse>, ApiError> {
    role(&p, ROLE_ENCLAVE)?;
    v.rate_limit(&p)?;
    if body.len() > confidant_wire::attest::MAX_CREDENTIAL_BODY {
        return Err(ApiError::payload_too_large());
    }
    let req: CredentialRequest = json_body(&headers, &body)?;
    let digest = ring::digest::digest(&ring::digest::SHA256, &body);
    let mut body_digest = [0u8; 32];
    body_digest.copy_from_slice(digest.as_ref());
    let subject = p.subject.clone();
    blocking(move || v.credential(&subject, body_digest, &req))
        .await
        .map(axum::Json)
}

fn decode_attest_request(body: &[u8]) -> Result<AttestRequest, ApiError> {
    AttestRequest::from_cbor(body).map_err(|e| match e {
        CborError::TooLarge(_) => ApiError::payload_too_large(),
        CborError::Malformed | CborError::Trailing => ApiError::bad_request(
            "malformed_request",
            "attestation request is not valid CBOR of the expected shape",
        ),
    })
}

// --- public ----------------------------------------------------------------------------------

async fn ca(State(AppState(v)): State<AppState>) -> Response {
    let mut resp = v.ca_pem().into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-pem-file"),
    );
    resp
}

async fn keys(State(AppState(v)): State<AppState>) -> axum::Json<crate::public_keys::PublicKeys> {
    axum::Json(v.public_keys())
}

// --- admin -----------------------------------------------------------------------------------

async fn put_policy(
    State(AppState(v)): State<AppState>,
    RequireAuth(p): RequireAuth,
    headers: HeaderMap,
    body: Bytes,
) -> Result<axum::Json<PolicyVersion>, ApiError> {
    role(&p, ROLE_ADMIN)?;
    require_content_type(&headers, &["application/toml"])?;
    let text = String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::bad_request("policy_parse", "policy is not UTF-8"))?;
    let subject = p.subject.clone();
    blocking(move || v.replace_policy(&subject, &text))
        .await
        .map(axum::Json)
}

async fn get_policy(
    State(AppState(v)): State<AppState>,
    RequireAuth(p): RequireAuth,
) -> Result<Response, ApiError> {
    role(&p, ROLE_ADMIN)?;
    let mut resp = v.policy_text().into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/toml"),
    );
    Ok(resp)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeMeasurement {
    /// Hex measurement (SNP: 48 bytes).
    measurement: String,
}

async fn revoke_measurement(
    State(AppState(v)): State<AppState>,
    RequireAuth(p): RequireAuth,
    headers: HeaderMap,
    body: Bytes,
) -> Result<axum::Json<PolicyVersion>, ApiError> {
    role(&p, ROLE_ADMIN)?;
    let req: RevokeMeasurement = json_body(&headers, &body)?;
    let m = hex::decode(req.measurement.trim())
        .map_err(|_| ApiError::bad_request("invalid_measurement", "measurement must be hex"))?;
    let subject = p.subject.clone();
    blocking(move || v.revoke_measurement(&subject, &m))
        .await
        .map(axum::Json)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportKey {
    key_id: String,
    /// The 32-byte model key, base64.
    key: SecretString,
    model_id: String,
    /// BLAKE3-256 of the plaintext model bundle (the sealed header's model digest), hex.
    model_digest: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateKey {
    new_key_id: String,
    key: SecretString,
    /// Defaults to the rotated key's digest.
    #[serde(default)]
    model_digest: Option<String>,
}

/// A string zeroized on drop (base64 key material in request bodies).
struct SecretString(Zeroizing<String>);

impl<'de> Deserialize<'de> for SecretString {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|s| SecretString(Zeroizing::new(s)))
    }
}

fn decode_model_key(b64: &str) -> Result<confidant_attestation::modelkey::ModelKey, ApiError> {
    let bad = || ApiError::bad_request("invalid_key", "model key must be 32 bytes, base64");
    let bytes = Zeroizing::new(STANDARD.decode(b64.trim()).map_err(|_| bad())?);
    let mut arr = Zeroizing::new([0u8; 32]);
    if bytes.len() != 32 {
        return Err(bad());
    }
    arr.copy_from_slice(&bytes);
    Ok(confidant_attestation::modelkey::ModelKey::from_bytes(*arr))
}

fn decode_digest(hex_digest: &str) -> Result<Blake3Digest, ApiError> {
    Blake3Digest::from_hex(hex_digest).map_err(|_| {
        ApiError::bad_request("invalid_model_digest", "model digest must be 64 hex digits")
    })
}

async fn import_key(
    State(AppState(v)): State<AppState>,
    RequireAuth(p): RequireAuth,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, axum::Json<crate::keys::KeyInfo>), ApiError> {
    role(&p, ROLE_ADMIN)?;
    let req: ImportKey = json_body(&headers, &body)?;
    let key = decode_model_key(&req.key.0)?;
    let digest = decode_digest(&req.model_digest)?;
    let subject = p.subject.clone();
    let info =
        blocking(move || v.import_key(&subject, &req.key_id, &req.model_id, digest, key)).await?;
    Ok((StatusCode::CREATED, axum::Json(info)))
}

async fn rotate_key(
    State(AppState(v)): State<AppState>,
    RequireAuth(p): RequireAuth,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, axum::Json<crate::keys::KeyInfo>), ApiError> {
    role(&p, ROLE_ADMIN)?;
    let req: RotateKey = json_body(&headers, &body)?;
    let key = decode_model_key(&req.key.0)?;
    let digest = req.model_digest.as_deref().map(decode_digest).transpose()?;
    let subject = p.subject.clone();
    let info = blocking(move || v.rotate_key(&subject, &id, &req.new_key_id, digest, key)).await?;
    Ok((StatusCode::CREATED, axum::Json(info)))
}

async fn revoke_key(
    State(AppState(v)): State<AppState>,
    RequireAuth(p): RequireAuth,
    Path(id): Path<String>,
) -> Result<axum::Json<crate::keys::KeyInfo>, ApiError> {
    role(&p, ROLE_ADMIN)?;
    let subject = p.subject.clone();
    blocking(move || v.revoke_key(&subject, &id))
        .await
        .map(axum::Json)
}

async fn list_keys(
    State(AppState(v)): State<AppState>,
    RequireAuth(p): RequireAuth,
) -> Result<axum::Json<Vec<crate::keys::KeyInfo>>, ApiError> {
    role(&p, ROLE_ADMIN)?;
    Ok(axum::Json(v.list_keys()))
}

// --- auditor ---------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
struct AuditQuery {
    #[serde(default)]
    from: u64,
    #[serde(default)]
    limit: Option<u64>,
}

async fn audit_entries(
    State(AppState(v)): State<AppState>,
    RequireAuth(p): RequireAuth,
    Query(q): Query<AuditQuery>,
) -> Result<axum::Json<AuditEntries>, ApiError> {
    role(&p, ROLE_AUDITOR)?;
    let limit = q.limit.unwrap_or(MAX_AUDIT_PAGE).clamp(1, MAX_AUDIT_PAGE);
    blocking(move || v.audit_entries(q.from, limit))
        .await
        .map(axum::Json)
}

async fn audit_checkpoint(
    State(AppState(v)): State<AppState>,
    RequireAuth(p): RequireAuth,
) -> Result<axum::Json<AuditCheckpoint>, ApiError> {
    role(&p, ROLE_AUDITOR)?;
    blocking(move || v.audit_checkpoint()).await.map(axum::Json)
}

#[derive(Debug, Deserialize)]
struct InclusionQuery {
    index: u64,
    size: Option<u64>,
}

async fn inclusion_proof(
    State(AppState(v)): State<AppState>,
    RequireAuth(p): RequireAuth,
    Query(q): Query<InclusionQuery>,
) -> Result<axum::Json<InclusionProof>, ApiError> {
    role(&p, ROLE_AUDITOR)?;
    blocking(move || v.inclusion_proof(q.index, q.size))
        .await
        .map(axum::Json)
}

#[derive(Debug, Deserialize)]
struct ConsistencyQuery {
    from: u64,
    to: Option<u64>,
}

async fn consistency_proof(
    State(AppState(v)): State<AppState>,
    RequireAuth(p): RequireAuth,
    Query(q): Query<ConsistencyQuery>,
) -> Result<axum::Json<ConsistencyProof>, ApiError> {
    role(&p, ROLE_AUDITOR)?;
    blocking(move || v.consistency_proof(q.from, q.to))
        .await
        .map(axum::Json)
}
