//! Slow and idle peers cannot hold a connection: a request head or body trickled, or a connection
//! left open with nothing in flight (HTTP/1 keep-alive, HTTP/2), is closed at its deadline; a
//! request that arrives in time is served (positive control), and a long response keeps its
//! connection open past the idle limit.
#![allow(clippy::unwrap_used, reason = "tests panic on unexpected failures")]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::routing::{get, post};
use common::*;
use confidant_service::{CertResolver, ServeOptions, ServerHandle, serve, server_config};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const LIMIT: Duration = Duration::from_millis(600);
/// How long a test waits for the server to act on a limit before failing (a liveness bound,
/// generous for a loaded machine, not a measurement).
const PATIENCE: Duration = Duration::from_secs(20);

async fn echo(body: Bytes) -> String {
    format!("{} bytes", body.len())
}

async fn slow() -> String {
    tokio::time::sleep(LIMIT * 3).await;
    "done".into()
}

async fn start() -> (ServerHandle, rustls::pki_types::CertificateDer<'static>) {
    let (key, der) = self_signed();
    let tls = Arc::new(server_config(Arc::new(CertResolver::new(key))).unwrap());
    let app = confidant_service::harden(
        Router::new()
            .route("/echo", post(echo))
            .route("/slow", get(slow)),
        1024,
    );
    let options = ServeOptions {
        handshake_timeout: LIMIT,
        header_read_timeout: LIMIT,
        body_read_timeout: LIMIT,
        idle_timeout: LIMIT,
        ..ServeOptions::default()
    };
    let handle = serve("127.0.0.1:0".parse().unwrap(), tls, app, options)
        .await
        .unwrap();
    (handle, der)
}

fn config(der: &rustls::pki_types::CertificateDer<'static>, alpn: &[u8]) -> rustls::ClientConfig {
    let mut c = (*client_config(pin(der), &[&rustls::version::TLS13])).clone();
    c.alpn_protocols = vec![alpn.to_vec()];
    c
}

/// Reads until the server closes the connection; what it sent before.
async fn until_closed<R: AsyncReadExt + Unpin>(r: &mut R) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let read = tokio::time::timeout(PATIENCE, r.read(&mut buf))
            .await
            .expect("the server closes the connection");
        match read {
            Ok(0) | Err(_) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn a_request_in_time_is_served() {
    let (server, der) = start().await;
    let tls = connect(server.local_addr(), Arc::new(config(&der, b"http/1.1")))
        .await
        .unwrap();
    let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = hyper::Request::post("/echo")
        .header("host", "localhost")
        .body(Full::new(Bytes::from_static(b"hello")))
        .unwrap();
    let resp = tx.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"5 bytes");
    server.shutdown().await;
}

#[tokio::test]
async fn a_trickled_request_head_is_cut_off() {
    let (server, der) = start().await;
    let mut tls = connect(server.local_addr(), Arc::new(config(&der, b"http/1.1")))
        .await
        .unwrap();
    tls.write_all(b"POST /echo HTTP/1.1\r\nhost: localhost\r\n")
        .await
        .unwrap();
    tls.flush().await.unwrap();
    // Never finishes the head: the server must give up on its own.
    let got = until_closed(&mut tls).await;
    assert!(
        !String::from_utf8_lossy(&got).contains("200"),
        "a partial head was served"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_trickled_body_times_out() {
    let (server, der) = start().await;
    let mut tls = connect(server.local_addr(), Arc::new(config(&der, b"http/1.1")))
        .await
        .unwrap();
    tls.write_all(
        b"POST /echo HTTP/1.1\r\nhost: localhost\r\ncontent-type: text/plain\r\ncontent-length: 100\r\n\r\n0123456789",
    )
    .await
    .unwrap();
    tls.flush().await.unwrap();
    let started = Instant::now();
    let got = String::from_utf8_lossy(&until_closed(&mut tls).await).into_owned();
    // Refused (not served), and the connection closed, instead of waiting for 90 more bytes.
    assert!(got.starts_with("HTTP/1.1 4"), "{got}");
    assert!(!got.contains("bytes\""), "{got}");
    assert!(started.elapsed() < PATIENCE);
    server.shutdown().await;
}

#[tokio::test]
async fn an_idle_http1_connection_is_closed() {
    let (server, der) = start().await;
    let mut tls = connect(server.local_addr(), Arc::new(config(&der, b"http/1.1")))
        .await
        .unwrap();
    // One request, then keep-alive with nothing more.
    tls.write_all(b"GET /missing HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .unwrap();
    let got = String::from_utf8_lossy(&until_closed(&mut tls).await).into_owned();
    assert!(got.starts_with("HTTP/1.1 404"), "{got}");
    server.shutdown().await;
}

#[tokio::test]
async fn an_idle_http2_connection_is_closed_but_a_long_response_is_not() {
    let (server, der) = start().await;
    let tls = connect(server.local_addr(), Arc::new(config(&der, b"h2")))
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut tx, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    let conn = tokio::spawn(conn);
    // A response that takes three idle periods: the connection is busy, not idle.
    let req = hyper::Request::get("https://localhost/slow")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = tx.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"done");
    // Then nothing: the server ends the connection.
    tokio::time::timeout(PATIENCE, conn)
        .await
        .expect("the server closes an idle HTTP/2 connection")
        .unwrap()
        .unwrap();
    server.shutdown().await;
}

#[tokio::test]
async fn an_http2_body_that_never_ends_times_out() {
    let (server, der) = start().await;
    let tls = connect(server.local_addr(), Arc::new(config(&der, b"h2")))
        .await
        .unwrap();
    let (mut tx, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    // A body stream that sends one frame and then nothing, without ending.
    let (mut body_tx, body) = http_body_util_stream();
    body_tx.send(Bytes::from_static(b"01234")).await;
    let req = hyper::Request::post("https://localhost/echo")
        .header("content-type", "text/plain")
        .body(body)
        .unwrap();
    let resp = tokio::time::timeout(PATIENCE, tx.send_request(req))
        .await
        .expect("the server answers a stalled body")
        .unwrap();
    assert!(resp.status().is_client_error(), "{}", resp.status());
    drop(body_tx);
    server.shutdown().await;
}

/// A request body fed from a channel (a client that sends part of a body and stalls).
fn http_body_util_stream() -> (BodySender, ChannelBody) {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    (BodySender(tx), ChannelBody(rx))
}

struct BodySender(tokio::sync::mpsc::Sender<Bytes>);

impl BodySender {
    async fn send(&mut self, b: Bytes) {
        self.0.send(b).await.unwrap();
    }
}

/// Frames from a channel; ends when the sender is dropped.
struct ChannelBody(tokio::sync::mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|b| b.map(|b| Ok(hyper::body::Frame::data(b))))
    }
}
