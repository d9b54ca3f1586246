//! Real TLS on loopback: exporter per connection, TLS 1.3 only, certificate swap, limits,
//! shutdown.
#![allow(clippy::unwrap_used, reason = "tests panic on unexpected failures")]

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::{Extension, Router};
use common::*;
use confidant_service::{
    CertResolver, ConnectionInfo, ServeOptions, ServerHandle, serve, server_config,
};
use tokio::io::AsyncReadExt;

async fn info(Extension(info): Extension<ConnectionInfo>) -> String {
    format!("{} {}", hex(&info.exporter), info.conn_id)
}

async fn start(
    options: ServeOptions,
) -> (
    ServerHandle,
    Arc<CertResolver>,
    rustls::pki_types::CertificateDer<'static>,
) {
    let (key, der) = self_signed();
    let resolver = Arc::new(CertResolver::new(key));
    let tls = Arc::new(server_config(resolver.clone()).unwrap());
    let app = confidant_service::harden(Router::new().route("/info", get(info)), 1024);
    let handle = serve("127.0.0.1:0".parse().unwrap(), tls, app, options)
        .await
        .unwrap();
    (handle, resolver, der)
}

const TLS13: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];

fn tls13() -> &'static [&'static rustls::SupportedProtocolVersion] {
    TLS13
}

#[tokio::test]
async fn handler_sees_the_exporter_of_its_own_connection() {
    let (server, _, der) = start(ServeOptions::default()).await;
    let config = client_config(pin(&der), tls13());

    let mut seen = Vec::new();
    for _ in 0..2 {
        let tls = connect(server.local_addr(), config.clone()).await.unwrap();
        let expected = hex(&client_exporter(&tls));
        let mut http = Http::new(tls).await;
        let (status, body) = http.get("/info").await;
        assert_eq!(status, 200);
        let body = String::from_utf8(body.to_vec()).unwrap();
        let (exporter, conn_id) = body.split_once(' ').unwrap();
        assert_eq!(exporter, expected);
        // A second request on the same connection sees the same connection.
        let (_, again) = http.get("/info").await;
        assert_eq!(String::from_utf8(again.to_vec()).unwrap(), body);
        seen.push((exporter.to_owned(), conn_id.to_owned()));
    }
    assert_ne!(seen[0], seen[1], "exporter and id are per connection");
    server.shutdown().await;
}

#[tokio::test]
async fn tls12_client_is_refused() {
    let (server, _, der) = start(ServeOptions::default()).await;
    let config = client_config(pin(&der), &[&rustls::version::TLS12]);
    let err = connect(server.local_addr(), config).await.unwrap_err();
    let inner = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>());
    assert_eq!(
        inner,
        Some(&rustls::Error::AlertReceived(
            rustls::AlertDescription::ProtocolVersion
        ))
    );
    server.shutdown().await;
}

#[tokio::test]
async fn swapped_certificate_applies_to_new_connections() {
    let (server, resolver, first) = start(ServeOptions::default()).await;
    let old = connect(server.local_addr(), client_config(pin(&first), tls13()))
        .await
        .unwrap();
    let mut old = Http::new(old).await;

    let (key, second) = self_signed();
    resolver.set(key);

    // The old certificate is no longer presented...
    let pinned_old = pin(&first);
    assert!(
        connect(
            server.local_addr(),
            client_config(pinned_old.clone(), tls13())
        )
        .await
        .is_err()
    );
    assert_eq!(pinned_old.seen.lock().unwrap().as_ref(), Some(&second));
    // ...the new one is, and the established connection keeps working.
    let new = connect(server.local_addr(), client_config(pin(&second), tls13()))
        .await
        .unwrap();
    let (status, _) = Http::new(new).await.get("/info").await;
    assert_eq!(status, 200);
    let (status, _) = old.get("/info").await;
    assert_eq!(status, 200);
    server.shutdown().await;
}

#[tokio::test]
async fn silent_client_is_dropped_after_handshake_timeout() {
    let options = ServeOptions {
        handshake_timeout: Duration::from_millis(200),
        ..ServeOptions::default()
    };
    let (server, _, _) = start(options).await;
    let mut tcp = tokio::net::TcpStream::connect(server.local_addr())
        .await
        .unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf))
        .await
        .expect("server closes the connection")
        .unwrap_or(0);
    assert_eq!(n, 0);
    server.shutdown().await;
}

#[tokio::test]
async fn connection_cap_holds_back_extra_connections() {
    let options = ServeOptions {
        max_connections: 1,
        ..ServeOptions::default()
    };
    let (server, _, der) = start(options).await;
    let config = client_config(pin(&der), tls13());
    let first = connect(server.local_addr(), config.clone()).await.unwrap();

    let second = tokio::time::timeout(
        Duration::from_millis(300),
        connect(server.local_addr(), config.clone()),
    )
    .await;
    assert!(
        second.is_err(),
        "second handshake waits while the cap is reached"
    );

    drop(first);
    let third = tokio::time::timeout(Duration::from_secs(5), connect(server.local_addr(), config))
        .await
        .expect("slot freed")
        .unwrap();
    let (status, _) = Http::new(third).await.get("/info").await;
    assert_eq!(status, 200);
    server.shutdown().await;
}

#[tokio::test]
async fn shutdown_stops_accepting() {
    let (server, _, der) = start(ServeOptions::default()).await;
    let addr = server.local_addr();
    server.shutdown().await;
    assert!(
        connect(addr, client_config(pin(&der), tls13()))
            .await
            .is_err()
    );
}
