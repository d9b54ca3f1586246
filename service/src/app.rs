//! The layers every Confidant router gets, in one call.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::{from_fn, map_response};

use crate::error::{json_errors, not_found};
use crate::telemetry::request_id;

/// Finishes a service router: JSON 404 for unknown routes, JSON bodies for every error response
/// (including axum's rejections), a request body cap of `max_body_bytes` (413 beyond it) and
/// request ids with a logging span. Apply after `with_state`, before [`crate::server::serve`].
pub fn harden(router: Router, max_body_bytes: usize) -> Router {
    router
        .fallback(not_found)
        .layer(map_response(json_errors))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(from_fn(request_id))
}
