//! `POST /v1/attestation {nonce}`: fresh evidence with purpose `session`, bound to the client's
//! nonce, the enclave's TLS key, the model digest and THIS connection's TLS exporter value, so a
//! relay between two TLS sessions cannot reuse it.
//!
//! This route takes no bearer token: a client proves the session *before* it sends any secret,
//! its token included, so a relay never sees one. It is rate-limited per peer address instead,
//! since each call asks the TEE for fresh evidence.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use confidant_attestation::binding::{Binding, Session};
use confidant_service::{ApiError, ConnectionInfo};
use confidant_wire::attest::{SessionAttestationRequest, SessionAttestationResponse};

use super::AppState;

pub(super) async fn attestation(
    State(AppState(s)): State<AppState>,
    conn: Option<Extension<ConnectionInfo>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<axum::Json<SessionAttestationResponse>, ApiError> {
    let Some(Extension(conn)) = conn else {
        return Err(ApiError::internal("no TLS connection information"));
    };
    // A key no JWT subject can take (NUL prefix), so peers and principals never share a bucket.
    let peer_key = format!("\0peer:{}", conn.peer.ip());
    if let Err(e) = s.rate.requests.try_take(&peer_key, 1) {
        return Err(s.refuse(None, e.into()));
    }
    let body = body.map_err(|_| {
        s.refuse(
            None,
            ApiError::bad_request("invalid_body", "request body could not be read"),
        )
    })?;
    let req: SessionAttestationRequest = serde_json::from_slice(&body).map_err(|_| {
        s.refuse(
            None,
            ApiError::bad_request("invalid_body", "expected {\"nonce\": \"<64 hex digits>\"}"),
        )
    })?;
    let mut nonce = [0u8; 32];
    hex::decode_to_slice(req.nonce.trim(), &mut nonce).map_err(|_| {
        s.refuse(
            None,
            ApiError::bad_request("invalid_nonce", "nonce must be 32 bytes as 64 hex digits"),
        )
    })?;
    let digest = s.model.digest;
    let binding = Binding::compute(Session {
        nonce,
        tls_spki_der: s.tls_spki.to_vec(),
        exporter: conn.exporter,
        model_digest: digest,
    });
    let tee = s.tee.clone();
    let evidence = tokio::task::spawn_blocking(move || tee.evidence(&binding))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| {
            tracing::error!(error = %e, "session evidence failed");
            ApiError::unavailable("evidence_unavailable", "evidence could not be produced")
        })?;
    tracing::info!(conn_id = conn.conn_id, "session evidence issued");
    Ok(axum::Json(SessionAttestationResponse {
        evidence: STANDARD.encode(evidence.to_cbor()),
        model_digest: digest,
        lockdown: s.lockdown.clone(),
    }))
}
