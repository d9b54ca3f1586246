//! A minimal HTTPS client for the tests: real TLS 1.3 (rustls, ring) trusting the verifier's
//! development certificate, HTTP/1.1 over hyper, one connection per request. Like an operator's
//! tooling, it sends admin and auditor requests (`/v1/admin*`, `/v1/audit*`) to the admin
//! listener when it knows one ([`Client::with_admin`]), everything else to the attestation API.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::TlsConnector;

#[derive(Clone)]
pub struct Client {
    addr: SocketAddr,
    admin_addr: Option<SocketAddr>,
    connector: TlsConnector,
}

#[derive(Debug)]
pub struct Response {
    pub status: StatusCode,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

impl Response {
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
}

impl Client {
    pub fn new(addr: SocketAddr, server_cert_pem: &[u8]) -> Self {
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(server_cert_pem) {
            roots.add(c.unwrap()).unwrap();
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        Self {
            addr,
            admin_addr: None,
            connector: TlsConnector::from(Arc::new(config)),
        }
    }

    /// Sends admin and auditor requests to `admin_addr`.
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

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Response {
        let tcp = tokio::net::TcpStream::connect(self.addr_for(path))
            .await
            .unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let tls = self.connector.connect(name, tcp).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .unwrap();
        tokio::spawn(conn);
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost");
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let req = req.body(Full::new(Bytes::from(body))).unwrap();
        let resp = sender.send_request(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        Response {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        self.request(Method::GET, path, token, None, Vec::new())
            .await
    }

    pub async fn post_json(
        &self,
        path: &str,
        token: Option<&str>,
        body: &serde_json::Value,
    ) -> Response {
        self.request(
            Method::POST,
            path,
            token,
            Some("application/json"),
            serde_json::to_vec(body).unwrap(),
        )
        .await
    }

    pub async fn post_cbor(&self, path: &str, token: Option<&str>, body: Vec<u8>) -> Response {
        self.request(Method::POST, path, token, Some("application/cbor"), body)
            .await
    }

    pub async fn put(&self, path: &str, token: Option<&str>, ct: &str, body: Vec<u8>) -> Response {
        self.request(Method::PUT, path, token, Some(ct), body).await
    }
}
