//! Logging setup and the request-id middleware.
//!
//! Request spans carry method, path (never the query string; a long or odd path only by length
//! and digest, see [`crate::logsafe`]), status and latency; never bodies or headers, so bearer
//! tokens and prompts stay out of logs.

use std::time::Instant;

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;
use tracing_subscriber::EnvFilter;

use crate::logsafe::Untrusted;

/// The request-id header, read (when well-formed) and always set on the response.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Longest client-supplied request id kept; longer or odd ones are replaced.
const MAX_REQUEST_ID_LEN: usize = 64;

/// The request's id, in request extensions for handlers that want it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

/// Logging could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("tracing subscriber already installed")]
pub struct TelemetryError;

/// Installs the global subscriber: JSON lines when `json`, human-readable otherwise; filter
/// from `RUST_LOG`, `info` when unset or invalid.
pub fn init_tracing(json: bool) -> Result<(), TelemetryError> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let result = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    result.map_err(|_| TelemetryError)
}

/// Middleware (`axum::middleware::from_fn(request_id)`): assigns a request id (keeps the
/// client's `x-request-id` if it is short and plain, else generates one), runs the request in a
/// span carrying it, logs one line on completion and echoes the id in the response.
pub async fn request_id(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(&REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_plain_id(v))
        .map(str::to_owned)
        .unwrap_or_else(new_request_id);
    req.extensions_mut().insert(RequestId(id.clone()));
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %req.method(),
        path = %Untrusted::path(req.uri().path()),
        status = tracing::field::Empty,
        latency_ms = tracing::field::Empty,
    );
    let start = Instant::now();
    let mut resp = next.run(req).instrument(span.clone()).await;
    span.record("status", resp.status().as_u16());
    span.record("latency_ms", start.elapsed().as_millis() as u64);
    span.in_scope(|| tracing::info!("request completed"));
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    resp
}

fn is_plain_id(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= MAX_REQUEST_ID_LEN
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A fresh random request id (32 hex digits).
pub fn new_request_id() -> String {
    let mut bytes = [0u8; 16];
    // On the (theoretical) failure of the system RNG the id is all zeros: ids are for log
    // correlation, not security.
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
