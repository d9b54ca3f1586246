//! Declared request body types.
//!
//! A browser sends a cross-site `POST` without asking the server first (a "simple request", no
//! CORS preflight) only when its body is declared `text/plain`, `application/x-www-form-urlencoded`
//! or `multipart/form-data`, or not declared at all. A route that accepts only bodies declared as
//! JSON (or CBOR, TOML) therefore never runs for such a request: [`require_json`] answers 415
//! before the handler, its authentication or its rate limits run, and before the body is read.

use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// The JSON media type.
pub const JSON: &str = "application/json";

/// The media type of `headers`' `Content-Type` (parameters dropped, lower case), if one is
/// declared once and readable.
pub fn media_type(headers: &HeaderMap) -> Option<String> {
    let mut values = headers.get_all(header::CONTENT_TYPE).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    let value = value.to_str().ok()?;
    let media = value.split(';').next().unwrap_or("").trim();
    Some(media.to_ascii_lowercase())
}

/// `Ok` when the declared media type is one of `expected`, else 415 `unsupported_media_type`.
pub fn require(headers: &HeaderMap, expected: &[&str]) -> Result<(), ApiError> {
    match media_type(headers) {
        Some(m) if expected.contains(&m.as_str()) => Ok(()),
        _ => Err(unsupported(expected)),
    }
}

/// 415 naming the accepted types.
pub fn unsupported(expected: &[&str]) -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        format!("content type must be {}", expected.join(" or ")),
    )
}

/// Route middleware (`post(handler).route_layer(from_fn(require_json))`): the request must declare
/// `Content-Type: application/json` (parameters such as `charset` allowed), else 415.
pub async fn require_json(req: Request, next: Next) -> Response {
    match require(req.headers(), &[JSON]) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn with(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::CONTENT_TYPE, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn json_with_parameters_is_json() {
        for v in [
            "application/json",
            "Application/JSON",
            "application/json; charset=utf-8",
        ] {
            assert_eq!(require(&with(&[v]), &[JSON]), Ok(()), "{v}");
        }
    }

    #[test]
    fn simple_request_types_and_missing_types_are_refused() {
        for v in [
            "text/plain",
            "text/plain; charset=utf-8",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/jsonx",
            "",
        ] {
            let e = require(&with(&[v]), &[JSON]).unwrap_err();
            assert_eq!(e.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{v}");
            assert_eq!(e.code, "unsupported_media_type");
        }
        assert!(require(&with(&[]), &[JSON]).is_err());
        assert!(require(&with(&[JSON, "text/plain"]), &[JSON]).is_err());
    }
}
