//! TLS 1.3 server configuration with a certificate that can be replaced at run time, and the
//! per-connection exporter value (RFC 8446 §7.5) that session attestation binds to.

use std::sync::{Arc, RwLock};

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, ServerConnection};
use rustls::sign::CertifiedKey;

/// Exporter label for session attestation (DESIGN.md "Binding").
pub const EXPORTER_LABEL: &[u8] = b"EXPORTER-confidant-session";

/// Length of the exporter value.
pub const EXPORTER_LEN: usize = 32;

/// TLS setup errors.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate chain or key could not be parsed or do not match.
    #[error("certificate or key: {0}")]
    Certificate(#[source] rustls::Error),
    /// PEM input held no certificate or no private key.
    #[error("PEM input holds no {0}")]
    Pem(&'static str),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(#[source] rustls::Error),
}

/// The crypto provider every Confidant TLS config uses (ring), passed explicitly.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificate the server presents, swappable while serving: connections that start after
/// [`CertResolver::set`] get the new certificate, established ones keep theirs.
#[derive(Debug)]
pub struct CertResolver {
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertResolver {
    /// Starts with `initial`.
    pub fn new(initial: CertifiedKey) -> Self {
        Self {
            current: RwLock::new(Arc::new(initial)),
        }
    }

    /// Replaces the certificate for new handshakes.
    pub fn set(&self, key: CertifiedKey) {
        let mut slot = self.current.write().unwrap_or_else(|e| e.into_inner());
        *slot = Arc::new(key);
    }

    /// The current certificate.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// A certified key from a DER chain (leaf first) and a DER private key, checked to match.
pub fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<CertifiedKey, TlsError> {
    CertifiedKey::from_der(chain, key, &provider()).map_err(TlsError::Certificate)
}

/// A certified key from PEM text: every `CERTIFICATE` block (leaf first) and the first private
/// key block (PKCS#8, SEC1 or PKCS#1).
pub fn certified_key_from_pem(chain_pem: &[u8], key_pem: &[u8]) -> Result<CertifiedKey, TlsError> {
    let chain = CertificateDer::pem_slice_iter(chain_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| TlsError::Pem("certificate"))?;
    if chain.is_empty() {
        return Err(TlsError::Pem("certificate"));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|_| TlsError::Pem("private key"))?;
    certified_key(chain, key)
}

/// A TLS 1.3-only server config presenting `resolver`'s certificate, ALPN `h2` and `http/1.1`,
/// no client authentication (callers authenticate with bearer tokens).
pub fn server_config(resolver: Arc<CertResolver>) -> Result<ServerConfig, TlsError> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(TlsError::Config)?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// The session's exporter value: label [`EXPORTER_LABEL`], no context, 32 bytes.
pub fn exporter(conn: &ServerConnection) -> Result<[u8; EXPORTER_LEN], rustls::Error> {
    conn.export_keying_material([0u8; EXPORTER_LEN], EXPORTER_LABEL, None)
}
