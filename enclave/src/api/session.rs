//! `POST /v1/attestation {nonce}`: fresh evidence with purpose `session`, bound to the client's
//! nonce, the enclave's TLS key, the model digest and THIS connection's TLS exporter value, so a
//! relay between two TLS sessions cannot reuse it.
//!
//! This route takes no bearer token: a client proves the session *before* it sends any secret,
//! its token included, so a relay never sees one. It is rate-limited per peer address instead,
//! since each call asks the TEE for fresh evidence; and since an attacker may have many
//! addresses, the calls also queue for the TEE behind a small bound and behind the enclave's own
//! attestations (`crate::tee_gate`): beyond it, 503 `tee_busy` at once.

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
use crate::tee_gate::Busy;
use std::time::Duration;

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
    let (tee, gate) = (s.tee.clone(), s.tee_gate.clone());
    let evidence = tokio::task::spawn_blocking(move || {
        let _turn = gate.session()?;
        Ok(tee.evidence(&binding))
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(|busy: Busy| {
        tracing::warn!(reason = %busy, "session attestation refused: TEE busy");
        s.refuse(
            None,
            ApiError::unavailable("tee_busy", "the TEE is busy; retry later")
                .with_retry_after(Duration::from_secs(1)),
        )
    })?
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
