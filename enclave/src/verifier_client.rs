//! HTTPS client for the verifier: TLS 1.3 (rustls, ring) trusting only the configured anchor,
//! HTTP/1.1 over hyper, one connection per call (boot and renewal are rare), CBOR for
//! `/v1/attest`. Bodies are size-capped and every call has a deadline.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use confidant_attestation::result::ResultVerifier;
use confidant_service::secrets::Secret;
use confidant_wire::attest::{
    AttestRequest, AttestResponse, CBOR_CONTENT_TYPE, CborError, ChallengeResponse,
    CredentialRequest, CredentialResponse,
};
use confidant_wire::error::ErrorBody;
use confidant_wire::routes::verifier as routes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Largest reply accepted from the verifier.
const MAX_REPLY: usize = 1 << 20;

/// Why a call to the verifier failed.
#[derive(Debug, thiserror::Error)]
pub enum VerifierError {
    /// Network, TLS or timeout: worth retrying.
    #[error("verifier unreachable: {0}")]
    Unreachable(String),
    /// The verifier answered with an error (its stable code, e.g. `measurement_not_allowed`).
    #[error("verifier refused ({status}): {code}")]
    Refused { status: u16, code: String },
    /// The reply did not have the expected shape.
    #[error("verifier reply malformed: {0}")]
    BadReply(&'static str),
    /// Configuration problem (URL, trust anchor, token).
    #[error("verifier client configuration: {0}")]
    Config(String),
}

/// A client for one verifier.
pub struct VerifierClient {
    host: String,
    port: u16,
    server_name: ServerName<'static>,
    connector: TlsConnector,
    token: Secret,
    timeout: Duration,
}

impl std::fmt::Debug for VerifierClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifierClient")
            .field("host", &self.host)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

/// Splits `https://host[:port]` into host and port.
pub(crate) fn parse_url(url: &str) -> Result<(String, u16), VerifierError> {
    let bad = || VerifierError::Config(format!("verifier URL {url:?} is not https://host[:port]"));
    let rest = url.strip_prefix("https://").ok_or_else(bad)?;
    let authority = rest.trim_end_matches('/');
    if authority.is_empty() || authority.contains('/') || authority.contains('@') {
        return Err(bad());
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or_else(bad)?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| bad())?,
            None if after.is_empty() => 443,
            None => return Err(bad()),
        };
        (h.to_owned(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), p.parse().map_err(|_| bad())?),
            None => (authority.to_owned(), 443),
        }
    };
    if host.is_empty() {
        return Err(bad());
    }
    Ok((host, port))
}

impl VerifierClient {
    /// A client for `url` trusting only the certificates in `anchors_pem`.
    pub fn new(
        url: &str,
        anchors_pem: &[u8],
        token: Secret,
        timeout: Duration,
    ) -> Result<Self, VerifierError> {
        let (host, port) = parse_url(url)?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(anchors_pem) {
            let cert = cert.map_err(|_| VerifierError::Config("trust anchor PEM".into()))?;
            roots
                .add(cert)
                .map_err(|e| VerifierError::Config(format!("trust anchor: {e}")))?;
        }
        if roots.is_empty() {
            return Err(VerifierError::Config("no trust anchor certificate".into()));
        }
        let config =
            rustls::ClientConfig::builder_with_provider(confidant_service::tls::provider())
                .with_protocol_versions(&[&rustls::version::TLS13])
                .map_err(|e| VerifierError::Config(e.to_string()))?
                .with_root_certificates(roots)
                .with_no_client_auth();
        let server_name = ServerName::try_from(host.clone())
            .map_err(|_| VerifierError::Config(format!("invalid host {host:?}")))?;
        if std::str::from_utf8(token.expose()).is_err() {
            return Err(VerifierError::Config("token is not text".into()));
        }
        Ok(Self {
            host,
            port,
            server_name,
            connector: TlsConnector::from(Arc::new(config)),
            token,
            timeout,
        })
    }

    /// `POST /v1/challenge`: a fresh single-use nonce.
    pub async fn challenge(&self) -> Result<[u8; 32], VerifierError> {
        let (status, body) = self
            .call(
                Method::POST,
                routes::CHALLENGE,
                Some(("application/json", b"{}".to_vec())),
            )
            .await?;
        let reply: ChallengeResponse = json_reply(status, &body)?;
        let mut nonce = [0u8; 32];
        hex::decode_to_slice(reply.nonce.trim(), &mut nonce)
            .map_err(|_| VerifierError::BadReply("nonce is not 32 bytes of hex"))?;
        Ok(nonce)
    }

    /// `POST /v1/attest/credential` (JSON both ways): a TPM credential for the AK, under the EK.
    pub async fn credential(
        &self,
        req: &CredentialRequest,
    ) -> Result<CredentialResponse, VerifierError> {
        let body =
            serde_json::to_vec(req).map_err(|_| VerifierError::BadReply("request encoding"))?;
        let (status, reply) = self
            .call(
                Method::POST,
                routes::ATTEST_CREDENTIAL,
                Some(("application/json", body)),
            )
            .await?;
        json_reply(status, &reply)
    }

    /// `POST /v1/attest` (CBOR both ways).
    pub async fn attest(&self, req: &AttestRequest) -> Result<AttestResponse, VerifierError> {
        let body = req.to_cbor();
        let (status, reply) = self
            .call(
                Method::POST,
                routes::ATTEST,
                Some((CBOR_CONTENT_TYPE, body)),
            )
            .await?;
        if status != StatusCode::OK {
            return Err(refusal(status, &reply));
        }
        AttestResponse::from_cbor(&reply).map_err(|e| match e {
            CborError::Trailing => VerifierError::BadReply("trailing bytes after the attest reply"),
            CborError::TooLarge(_) | CborError::Malformed => {
                VerifierError::BadReply("attest reply is not the expected CBOR")
            }
        })
    }

    /// `GET /v1/keys`: the key that signs attestation results.
    pub async fn result_verifier(&self) -> Result<ResultVerifier, VerifierError> {
        let (status, body) = self.call(Method::GET, routes::KEYS, None).await?;
        let keys: serde_json::Value = json_reply(status, &body)?;
        let jwk = keys
            .get("keys")
            .and_then(|k| k.as_array())
            .and_then(|k| k.first())
            .ok_or(VerifierError::BadReply("no result key"))?;
        ResultVerifier::from_jwk(&jwk.to_string())
            .map_err(|_| VerifierError::BadReply("result key is not an ES256 JWK"))
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<(&'static str, Vec<u8>)>,
    ) -> Result<(StatusCode, Bytes), VerifierError> {
        tokio::time::timeout(self.timeout, self.call_inner(method, path, body))
            .await
            .map_err(|_| VerifierError::Unreachable("timed out".into()))?
    }

    async fn call_inner(
        &self,
        method: Method,
        path: &str,
        body: Option<(&'static str, Vec<u8>)>,
    ) -> Result<(StatusCode, Bytes), VerifierError> {
        let unreachable = |what: &str, e: &dyn std::fmt::Display| {
            VerifierError::Unreachable(format!("{what}: {e}"))
        };
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| unreachable("connect", &e))?;
        let _ = tcp.set_nodelay(true);
        let tls = self
            .connector
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|e| unreachable("TLS", &e))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| unreachable("HTTP", &e))?;
        let conn_task = tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut auth = hyper::header::HeaderValue::from_bytes(
            &[b"Bearer ".as_slice(), self.token.expose()].concat(),
        )
        .map_err(|_| VerifierError::Config("token is not a valid header value".into()))?;
        auth.set_sensitive(true);
        let host = if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        };
        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, host)
            .header(AUTHORIZATION, auth);
        let payload = match body {
            Some((ct, bytes)) => {
                builder = builder.header(CONTENT_TYPE, ct);
                Bytes::from(bytes)
            }
            None => Bytes::new(),
        };
        let req = builder
            .body(Full::new(payload))
            .map_err(|_| VerifierError::Config("request".into()))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| unreachable("request", &e))?;
        let status = resp.status();
        let body = Limited::new(resp.into_body(), MAX_REPLY)
            .collect()
            .await
            .map_err(|_| VerifierError::BadReply("reply body unreadable or too large"))?
            .to_bytes();
        conn_task.abort();
        Ok((status, body))
    }
}

fn json_reply<T: serde::de::DeserializeOwned>(
    status: StatusCode,
    body: &[u8],
) -> Result<T, VerifierError> {
    if status != StatusCode::OK {
        return Err(refusal(status, body));
    }
    serde_json::from_slice(body)
        .map_err(|_| VerifierError::BadReply("reply is not the expected JSON"))
}

fn refusal(status: StatusCode, body: &[u8]) -> VerifierError {
    let code = serde_json::from_slice::<ErrorBody>(body)
        .map(|e| e.error.code)
        .unwrap_or_else(|_| "unknown".to_owned());
    VerifierError::Refused {
        status: status.as_u16(),
        code,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("https://v.example:8443").unwrap(),
            ("v.example".into(), 8443)
        );
        assert_eq!(
            parse_url("https://v.example/").unwrap(),
            ("v.example".into(), 443)
        );
        assert_eq!(parse_url("https://[::1]:9").unwrap(), ("::1".into(), 9));
        for bad in [
            "http://x",
            "https://",
            "https://x/path",
            "https://u@x",
            "https://x:y",
        ] {
            assert!(
                matches!(parse_url(bad), Err(VerifierError::Config(_))),
                "{bad}"
            );
        }
    }
}
