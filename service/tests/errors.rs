//! Every error response is JSON `{"error":{"code","message"}}` without internals.
#![allow(clippy::unwrap_used, reason = "tests panic on unexpected failures")]

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::routing::{get, post};
use axum::{Json, Router};
use confidant_service::{ApiError, harden};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

#[derive(serde::Deserialize)]
struct Input {
    #[allow(dead_code)]
    name: String,
}

async fn echo(Json(_): Json<Input>) -> &'static str {
    "ok"
}

async fn boom() -> Result<(), ApiError> {
    Err(ApiError::internal("db password=hunter2 at /etc/secret"))
}

fn app() -> Router {
    harden(
        Router::new()
            .route("/echo", post(echo))
            .route("/boom", get(boom)),
        64,
    )
}

async fn call(req: Request<Body>) -> (StatusCode, Value, axum::http::HeaderMap) {
    let resp = app().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let json: Value = serde_json::from_slice(&bytes).expect("error body is JSON");
    (status, json, headers)
}

fn post_json(body: &str) -> Request<Body> {
    Request::post("/echo")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap()
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap()
}

#[tokio::test]
async fn malformed_json_is_400() {
    let (status, body, headers) = call(post_json("{not json")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(code(&body), "bad_request");
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    assert!(headers.contains_key("x-request-id"));
}

#[tokio::test]
async fn schema_mismatch_is_422() {
    let (status, body, _) = call(post_json(r#"{"other":1}"#)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(code(&body), "invalid_body");
}

#[tokio::test]
async fn oversized_body_is_413() {
    let big = format!(r#"{{"name":"{}"}}"#, "x".repeat(1000));
    let (status, body, _) = call(post_json(&big)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(code(&body), "payload_too_large");
}

#[tokio::test]
async fn wrong_content_type_is_415() {
    let req = Request::post("/echo")
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from(r#"{"name":"a"}"#))
        .unwrap();
    let (status, body, _) = call(req).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(code(&body), "unsupported_media_type");
}

#[tokio::test]
async fn unknown_route_is_json_404_and_wrong_method_405() {
    let (status, body, _) = call(Request::get("/nope").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(code(&body), "not_found");
    let (status, body, headers) = call(Request::get("/echo").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(code(&body), "method_not_allowed");
    // The reply says which method the route takes.
    assert_eq!(headers[header::ALLOW], "POST");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("Allow"), "{message}");
}

#[tokio::test]
async fn internal_error_hides_detail() {
    let (status, body, _) = call(Request::get("/boom").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(code(&body), "internal");
    assert!(!body.to_string().contains("hunter2"));
}

#[tokio::test]
async fn client_request_id_is_echoed_when_plain() {
    let req = Request::get("/nope")
        .header("x-request-id", "abc-123")
        .body(Body::empty())
        .unwrap();
    let (_, _, headers) = call(req).await;
    assert_eq!(headers["x-request-id"], "abc-123");
    let req = Request::get("/nope")
        .header("x-request-id", "bad id\twith junk")
        .body(Body::empty())
        .unwrap();
    let (_, _, headers) = call(req).await;
    assert_ne!(headers["x-request-id"], "bad id\twith junk");
}
