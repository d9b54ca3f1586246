//! `fresh` mode: session evidence over this connection's TLS exporter.
//!
//! After the handshake and before any request, the client sends `POST /v1/attestation` with 32
//! random bytes; the enclave answers evidence whose binding is
//! `Binding(Session, nonce, SHA-256(SPKI), exporter, model_digest)`. The exporter is computed on
//! this side from this connection, so evidence produced for any other TLS session (a relay, a
//! replay) cannot match. No bearer token is sent on this request: nothing secret leaves the client
//! before every check has passed.

use base64::Engine;
use bytes::Bytes;
use http::header::{CONTENT_TYPE, HOST};
use http::{Method, Request};
use http_body_util::Full;
use hyper::client::conn::http1::SendRequest;
use ring::rand::SecureRandom;

use confidant_wire::attest::{SessionAttestationRequest, SessionAttestationResponse};
use confidant_wire::routes;

use crate::appraise::{SessionReply, VerifiedPeer, VerifiedSession};
use crate::config::Config;
use crate::connection::read_limited;
use crate::error::{AttestError, ClientError, SessionFault};

/// Largest reply accepted.
pub const MAX_SESSION_REPLY: usize = 512 * 1024;

fn fault(f: SessionFault) -> ClientError {
    ClientError::Attestation(AttestError::SessionAttestation(f))
}

/// Runs the exchange and appraises the reply.
pub(crate) async fn attest(
    sender: &mut SendRequest<Full<Bytes>>,
    config: &Config,
    peer: &VerifiedPeer,
    exporter: &[u8; 32],
) -> Result<VerifiedSession, ClientError> {
    let mut nonce = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| fault(SessionFault::Rng))?;
    let body = serde_json::to_vec(&SessionAttestationRequest {
        nonce: hex::encode(nonce),
    })
    .map_err(ClientError::Decode)?;
    let request = Request::builder()
        .method(Method::POST)
        .uri(config.target.path(routes::enclave::SESSION_ATTESTATION))
        .header(HOST, config.target.authority.as_str())
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .map_err(|_| fault(SessionFault::Malformed))?;
    sender
        .ready()
        .await
        .map_err(|e| fault(SessionFault::Transport(e)))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| fault(SessionFault::Transport(e)))?;
    if !response.status().is_success() {
        return Err(fault(SessionFault::Status(response.status().as_u16())));
    }
    let bytes = match read_limited(response.into_body(), MAX_SESSION_REPLY).await {
        Ok(b) => b,
        Err(ClientError::Http(e)) => return Err(fault(SessionFault::Transport(e))),
        Err(_) => return Err(fault(SessionFault::TooLarge(MAX_SESSION_REPLY))),
    };
    let reply: SessionAttestationResponse =
        serde_json::from_slice(&bytes).map_err(|_| fault(SessionFault::Malformed))?;
    let evidence = base64::engine::general_purpose::STANDARD
        .decode(reply.evidence.as_bytes())
        .map_err(|_| fault(SessionFault::Malformed))?;
    Ok(config.appraiser.appraise_session(
        peer,
        &nonce,
        exporter,
        SessionReply {
            evidence,
            model_digest: reply.model_digest,
            lockdown: reply.lockdown,
        },
        crate::client::now_unix(),
    )?)
}
