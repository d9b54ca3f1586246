//! A standard HTTPS client: rustls with only the given PEM certificate(s) as roots, hyper HTTP/1.1,
//! no Confidant code. It is what a tool that knows nothing of attestation gets: the floor of
//! assurance a verifier-issued certificate gives.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// A response.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
    /// `Retry-After`, if the reply had one.
    pub retry_after: Option<String>,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

/// rustls client configuration trusting only `roots_pem`.
pub fn tls_config(roots_pem: &[u8]) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(roots_pem) {
        roots.add(cert.expect("PEM certificate")).expect("root");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

/// A TLS connection to `addr` (name: its IP address) trusting only `roots_pem`.
pub async fn connect(addr: SocketAddr, roots_pem: &[u8]) -> std::io::Result<TlsStream<TcpStream>> {
    connect_from(None, addr, roots_pem).await
}

/// [`connect`] from the local address `from` (e.g. `127.0.0.7`: any of loopback's addresses),
/// or the one the system picks.
pub async fn connect_from(
    from: Option<std::net::IpAddr>,
    addr: SocketAddr,
    roots_pem: &[u8],
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = match from {
        None => TcpStream::connect(addr).await?,
        Some(ip) => {
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.bind(SocketAddr::new(ip, 0))?;
            socket.connect(addr).await?
        }
    };
    TlsConnector::from(Arc::new(tls_config(roots_pem)))
        .connect(ServerName::IpAddress(addr.ip().into()), tcp)
        .await
}

/// The certificate chain `addr` presents (after a normal, verified handshake).
pub async fn peer_chain(addr: SocketAddr, roots_pem: &[u8]) -> Vec<CertificateDer<'static>> {
    let tls = connect(addr, roots_pem).await.expect("TLS handshake");
    tls.get_ref()
        .1
        .peer_certificates()
        .expect("peer certificates")
        .iter()
        .map(|c| c.clone().into_owned())
        .collect()
}

/// One request on a fresh connection. `body` is (content type, bytes).
pub async fn request(
    addr: SocketAddr,
    roots_pem: &[u8],
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<(&str, Vec<u8>)>,
) -> Reply {
    try_request(addr, roots_pem, method, path, bearer, body)
        .await
        .unwrap_or_else(|e| panic!("{method} {path} to {addr}: {e}"))
}

/// [`request`], with a failure to connect or a broken connection as an error.
pub async fn try_request(
    addr: SocketAddr,
    roots_pem: &[u8],
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<(&str, Vec<u8>)>,
) -> Result<Reply, HttpError> {
    try_request_from(None, addr, roots_pem, method, path, bearer, body).await
}

/// [`try_request`] from the local address `from` (see [`connect_from`]).
pub async fn try_request_from(
    from: Option<std::net::IpAddr>,
    addr: SocketAddr,
    roots_pem: &[u8],
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<(&str, Vec<u8>)>,
) -> Result<Reply, HttpError> {
    let tls = connect_from(from, addr, roots_pem).await?;
    try_request_on(tls, addr, method, path, bearer, body).await
}

/// Why a request got no complete reply.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
}

/// One request on an established connection.
pub async fn request_on(
    tls: TlsStream<TcpStream>,
    addr: SocketAddr,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<(&str, Vec<u8>)>,
) -> Reply {
    try_request_on(tls, addr, method, path, bearer, body)
        .await
        .unwrap_or_else(|e| panic!("{method} {path} to {addr}: {e}"))
}

async fn try_request_on(
    tls: TlsStream<TcpStream>,
    addr: SocketAddr,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<(&str, Vec<u8>)>,
) -> Result<Reply, HttpError> {
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
    let driver = tokio::spawn(conn);
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    if let Some(token) = bearer {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    let bytes = match body {
        Some((content_type, bytes)) => {
            req = req.header("content-type", content_type);
            bytes
        }
        None => Vec::new(),
    };
    let req = req.body(Full::new(Bytes::from(bytes))).expect("request");
    let resp = sender.send_request(req).await?;
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get(hyper::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = resp.into_body().collect().await?.to_bytes().to_vec();
    driver.abort();
    Ok(Reply {
        status,
        body,
        retry_after,
    })
}

/// [`request`] from synchronous code (its own runtime on its own thread).
pub fn blocking_request(
    addr: SocketAddr,
    roots_pem: &[u8],
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<(&str, Vec<u8>)>,
) -> Reply {
    let (roots, method, path) = (roots_pem.to_vec(), method.to_owned(), path.to_owned());
    let bearer = bearer.map(str::to_owned);
    let body = body.map(|(t, b)| (t.to_owned(), b));
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(request(
            addr,
            &roots,
            &method,
            &path,
            bearer.as_deref(),
            body.as_ref().map(|(t, b)| (t.as_str(), b.clone())),
        ))
    })
    .join()
    .expect("request thread")
}
