//! A plain HTTPS test client for the services: real TLS 1.3 (rustls, ring) trusting only the
//! given CA and checking the name `localhost`, HTTP/1.1 over hyper, one connection per request.
//! No Confidant code: what a tool that knows nothing of attestation sees.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Longest a request or its reply may take (a generation on a slow CI machine included).
const TIMEOUT: Duration = Duration::from_secs(120);

/// A reply, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): status {} body {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The stable error code of a JSON error body.
    pub fn code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("no error code in {:?}", self.json()))
            .to_owned()
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// The client. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    addr: SocketAddr,
    admin_addr: Option<SocketAddr>,
    connector: TlsConnector,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("addr", &self.addr).finish()
    }
}

impl Client {
    /// Trusts only the PEM certificate(s) in `ca_pem`.
    pub fn new(addr: SocketAddr, ca_pem: &[u8]) -> Self {
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(ca_pem) {
            roots
                .add(c.expect("PEM certificate"))
                .expect("root certificate");
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
        Self {
            addr,
            admin_addr: None,
            connector: TlsConnector::from(Arc::new(config)),
        }
    }

    /// Accepts any certificate (to reach a server whose certificate expired). Tests only.
    pub fn insecure(addr: SocketAddr) -> Self {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("TLS 1.3")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
            .with_no_client_auth();
        Self {
            addr,
            admin_addr: None,
            connector: TlsConnector::from(Arc::new(config)),
        }
    }

    /// Sends admin and auditor requests (`/v1/admin*`, `/v1/audit*`) to `admin_addr`, the
    /// verifier's admin listener, like an operator's tooling; everything else to `addr`.
    pub fn with_admin(mut self, admin_addr: SocketAddr) -> Self {
        self.admin_addr = Some(admin_addr);
        self
    }

    fn addr_for(&self, path: &str) -> SocketAddr {
        match self.admin_addr {
            Some(a) if path.starts_with("/v1/admin") || path.starts_with("/v1/audit") => a,
            _ => self.addr,
        }
    }

    /// A new TLS connection to the main address.
    pub async fn tls(&self) -> std::io::Result<TlsStream<TcpStream>> {
        self.tls_to(self.addr).await
    }

    async fn tls_to(&self, addr: SocketAddr) -> std::io::Result<TlsStream<TcpStream>> {
        let tcp = TcpStream::connect(addr).await?;
        self.connector
            .connect(ServerName::try_from("localhost").expect("name"), tcp)
            .await
    }

    /// The leaf certificate the server presents now.
    pub async fn peer_leaf(&self) -> Vec<u8> {
        let tls = self.tls().await.expect("TLS handshake");
        tls.get_ref()
            .1
            .peer_certificates()
            .expect("peer certificates")[0]
            .to_vec()
    }

    /// One request on a new connection; `body` is (content type, bytes).
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<(&str, Vec<u8>)>,
    ) -> Reply {
        let tls = self
            .tls_to(self.addr_for(path))
            .await
            .expect("TLS handshake");
        send_on(tls, method, path, token, body).await
    }

    /// One request with a body whose `Content-Type` the caller chooses, or omits (`None`): what a
    /// browser's cross-site "simple request" or a careless tool sends.
    pub async fn request_raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Reply {
        let mut req = http_request(method, path, token, None);
        if let Some(ct) = content_type {
            req.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                ct.parse().expect("content type"),
            );
        }
        *req.body_mut() = Full::new(Bytes::from(body));
        let tls = self
            .tls_to(self.addr_for(path))
            .await
            .expect("TLS handshake");
        send_request_on(tls, req).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.request(Method::GET, path, token, None).await
    }

    pub async fn post_json(
        &self,
        path: &str,
        token: Option<&str>,
        body: &serde_json::Value,
    ) -> Reply {
        let body = serde_json::to_vec(body).expect("JSON");
        self.request(Method::POST, path, token, Some(("application/json", body)))
            .await
    }

    pub async fn post_cbor(&self, path: &str, token: Option<&str>, body: Vec<u8>) -> Reply {
        self.request(Method::POST, path, token, Some(("application/cbor", body)))
            .await
    }

    pub async fn put(&self, path: &str, token: Option<&str>, ct: &str, body: Vec<u8>) -> Reply {
        self.request(Method::PUT, path, token, Some((ct, body)))
            .await
    }
}

/// A request for `localhost`; `body` is (content type, bytes).
pub fn http_request(
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<(&str, Vec<u8>)>,
) -> Request<Full<Bytes>> {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, "localhost");
    if let Some(t) = token {
        req = req.header(hyper::header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let body = match body {
        Some((ct, bytes)) => {
            req = req.header(hyper::header::CONTENT_TYPE, ct);
            bytes
        }
        None => Vec::new(),
    };
    req.body(Full::new(Bytes::from(body))).expect("request")
}

/// One request on an established connection; `body` is (content type, bytes).
pub async fn send_on(
    tls: TlsStream<TcpStream>,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<(&str, Vec<u8>)>,
) -> Reply {
    send_request_on(tls, http_request(method, path, token, body)).await
}

/// A prepared request (headers as the test wants them) on an established connection.
pub async fn send_request_on(tls: TlsStream<TcpStream>, req: Request<Full<Bytes>>) -> Reply {
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .expect("HTTP/1.1 handshake");
    tokio::spawn(conn);
    let resp = tokio::time::timeout(TIMEOUT, sender.send_request(req))
        .await
        .expect("reply within the timeout")
        .expect("reply");
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = tokio::time::timeout(TIMEOUT, resp.into_body().collect())
        .await
        .expect("body within the timeout")
        .expect("body")
        .to_bytes();
    Reply {
        status,
        headers,
        body,
    }
}

#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
