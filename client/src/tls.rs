//! Attested TLS: a rustls server-certificate verifier that runs every attestation check inside the
//! handshake, and the handshake that hands its typed verdict back to the caller.
//!
//! rustls only lets a verifier return `rustls::Error`, so each connection gets its own verifier
//! holding a one-shot slot: the verifier stores its typed outcome there ([`VerifiedPeer`] or the
//! [`AttestError`] naming the failed check) and reports a generic refusal to rustls; the caller
//! reads the slot once the handshake has finished or failed.
//!
//! Session resumption is disabled: a resumed TLS 1.3 session skips certificate verification, and
//! every connection must be appraised on its own.

use std::sync::{Arc, Mutex, PoisonError};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use zeroize::Zeroizing;

use confidant_attestation::binding::SESSION_EXPORTER_LABEL;

use crate::appraise::{Appraiser, VerifiedPeer};
use crate::error::{AttestError, ClientError, ConfigError};
use crate::target::Target;

type Slot = Mutex<Option<Result<VerifiedPeer, AttestError>>>;

/// The per-connection verifier.
#[derive(Debug)]
struct AttestingVerifier {
    webpki: Arc<WebPkiServerVerifier>,
    appraiser: Arc<Appraiser>,
    slot: Arc<Slot>,
}

impl AttestingVerifier {
    fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<VerifiedPeer, AttestError> {
        self.webpki
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
            .map_err(chain_error)?;
        self.appraiser
            .appraise_certificate(end_entity.as_ref(), now.as_secs())
    }
}

/// Maps a webpki refusal to the check it names.
fn chain_error(e: rustls::Error) -> AttestError {
    match e {
        rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer | CertificateError::BadSignature,
        ) => AttestError::UntrustedCa,
        rustls::Error::InvalidCertificate(c) => AttestError::Certificate(c),
        _ => AttestError::Certificate(CertificateError::BadEncoding),
    }
}

impl ServerCertVerifier for AttestingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let outcome = self.check(end_entity, intermediates, server_name, ocsp_response, now);
        let verdict = match &outcome {
            Ok(_) => Ok(ServerCertVerified::assertion()),
            Err(e) => {
                tracing::warn!(check = %e, "server refused by attestation");
                Err(rustls::Error::InvalidCertificate(
                    CertificateError::ApplicationVerificationFailure,
                ))
            }
        };
        *self.slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(outcome);
        verdict
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // The configuration offers TLS 1.3 only; reaching this is a protocol violation.
        Err(rustls::Error::General("TLS 1.2 is not offered".into()))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // Proves the server holds the private key of the appraised certificate.
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// The pieces of TLS configuration shared by every connection of a client.
#[derive(Debug)]
pub(crate) struct TlsSettings {
    provider: Arc<CryptoProvider>,
    webpki: Arc<WebPkiServerVerifier>,
}

impl TlsSettings {
    /// Builds the chain verifier with the pinned verifier CA as its only root.
    pub(crate) fn new(ca_der: CertificateDer<'static>) -> Result<Self, ConfigError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca_der).map_err(|_| ConfigError::BadCa)?;
        let webpki =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                .build()
                .map_err(|_| ConfigError::BadCa)?;
        Ok(TlsSettings { provider, webpki })
    }
}

/// A finished handshake with an appraised peer.
#[derive(Debug)]
pub(crate) struct AttestedTls {
    pub(crate) stream: TlsStream<TcpStream>,
    pub(crate) peer: VerifiedPeer,
    /// `EXPORTER-confidant-session`, 32 bytes, no context, computed on this side.
    pub(crate) exporter: Zeroizing<[u8; 32]>,
}

/// Connects over TCP and runs the attested handshake.
pub(crate) async fn handshake(
    settings: &TlsSettings,
    appraiser: &Arc<Appraiser>,
    target: &Target,
) -> Result<AttestedTls, ClientError> {
    let slot: Arc<Slot> = Arc::new(Mutex::new(None));
    let verifier = Arc::new(AttestingVerifier {
        webpki: Arc::clone(&settings.webpki),
        appraiser: Arc::clone(appraiser),
        slot: Arc::clone(&slot),
    });
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::clone(&settings.provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| ClientError::Config(ConfigError::Tls(e)))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.resumption = rustls::client::Resumption::disabled();
    config.enable_early_data = false;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];

    let tcp = TcpStream::connect((target.host.as_str(), target.port))
        .await
        .map_err(ClientError::Connect)?;
    // Small requests should not wait for Nagle.
    tcp.set_nodelay(true).map_err(ClientError::Connect)?;
    let connected = TlsConnector::from(Arc::new(config))
        .connect(target.server_name.clone(), tcp)
        .await;
    let verdict = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
    let stream = match connected {
        Ok(stream) => stream,
        Err(io) => {
            return Err(match verdict {
                Some(Err(refusal)) => ClientError::Attestation(refusal),
                _ => ClientError::Tls(io),
            });
        }
    };
    let peer = match verdict {
        Some(Ok(peer)) => peer,
        Some(Err(refusal)) => return Err(ClientError::Attestation(refusal)),
        None => return Err(ClientError::Attestation(AttestError::NotAttested)),
    };
    let (_, conn) = stream.get_ref();
    // The certificate the handshake authenticated must be the one that was appraised.
    let presented = conn.peer_certificates().and_then(|c| c.first());
    if presented.map(|c| c.as_ref()) != Some(peer.certificate_der()) {
        return Err(ClientError::Attestation(AttestError::NotAttested));
    }
    let mut exporter = Zeroizing::new([0u8; 32]);
    conn.export_keying_material(exporter.as_mut_slice(), SESSION_EXPORTER_LABEL, None)
        .map_err(|e| ClientError::Tls(std::io::Error::other(e)))?;
    Ok(AttestedTls {
        stream,
        peer,
        exporter,
    })
}
