//! Attackers: TLS servers that are not the attested enclave but try to pass for it.
//!
//! - [`foreign_ca_identity`]: a certificate for 127.0.0.1 from a CA the client does not pin.
//! - [`stolen_chain_identity`]: the real enclave's certificate chain with a key that is not its
//!   key (a relay that copied the certificate but cannot sign with its key).
//! - [`certified_second_enclave`]: a second "enclave" that really attests to the real verifier
//!   (simulated SEV-SNP evidence with any measurement) and gets a CA-issued certificate and
//!   result for its own key.
//!
//! [`ImpostorServer`] serves one of these identities, answers `POST /v1/attestation` with a
//! fixed (e.g. replayed) body, and counts every request that reaches another route.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use confidant_attestation::binding::{Binding, KeyRelease};
use confidant_attestation::evidence::Evidence;
use confidant_attester::snp_sim::SimulatedSnp;
use confidant_wire::attest::{AttestRequest, AttestResponse, CBOR_CONTENT_TYPE, ChallengeResponse};
use confidant_wire::routes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, PKCS_ECDSA_P256_SHA256};
use ring::rand::SecureRandom;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::{KEY_ID, MODEL_ID, Stack};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A chain with the given key (no check that they belong together: that is the point).
fn certified(chain: Vec<CertificateDer<'static>>, key: &KeyPair) -> CertifiedKey {
    let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let signer = provider()
        .key_provider
        .load_private_key(der)
        .expect("signing key");
    CertifiedKey::new(chain, signer)
}

fn new_key() -> KeyPair {
    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key pair")
}

/// A leaf for `localhost`/127.0.0.1 issued by a freshly made CA.
pub fn foreign_ca_identity() -> CertifiedKey {
    let ca_key = new_key();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
    let issuer = Issuer::new(ca_params, &ca_key);
    let leaf_key = new_key();
    let leaf = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .expect("leaf params")
        .signed_by(&leaf_key, &issuer)
        .expect("leaf certificate");
    certified(vec![leaf.der().clone(), ca_cert.der().clone()], &leaf_key)
}

/// The given (real) chain with a key that is not its key.
pub fn stolen_chain_identity(chain: Vec<CertificateDer<'static>>) -> CertifiedKey {
    certified(chain, &new_key())
}

/// A second enclave: attests to the stack's verifier with simulated SEV-SNP evidence claiming
/// `measurement`, for its own TLS key, and returns that key with the certificate the verifier
/// issued (the model key it releases is ignored).
pub async fn certified_second_enclave(stack: &Stack, measurement: &[u8; 48]) -> CertifiedKey {
    let tls_key = new_key();
    let spki = rcgen::PublicKeyData::subject_public_key_info(&tls_key);
    let verifier_pem = stack.verifier_tls_pem();
    let token = stack.token("enclave");
    let challenge = crate::https::request(
        stack.verifier_addr,
        &verifier_pem,
        "POST",
        routes::verifier::CHALLENGE,
        Some(&token),
        None,
    )
    .await;
    assert_eq!(challenge.status, 200, "POST /v1/challenge");
    let challenge: ChallengeResponse = serde_json::from_slice(&challenge.body).expect("challenge");
    let nonce: [u8; 32] = crate::hex_array(&challenge.nonce);
    let mut wrap_pk = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut wrap_pk)
        .expect("randomness");
    let binding = Binding::compute(KeyRelease {
        nonce,
        tls_spki_der: spki.clone(),
        wrap_pk,
        model_digest: confidant_attestation::digest::Blake3Digest::from_bytes(stack.model_digest),
    });
    let evidence = sim_evidence(&confidant_testkit::dev_pki(), &binding, measurement).to_cbor();
    let request = AttestRequest {
        nonce: nonce.to_vec(),
        evidence,
        tls_spki: spki,
        wrap_pk: wrap_pk.to_vec(),
        model_id: MODEL_ID.to_owned(),
        dns_names: vec!["localhost".to_owned()],
        ip_addresses: vec!["127.0.0.1".to_owned()],
        key_id: Some(KEY_ID.to_owned()),
        activation_secret: None,
    };
    let mut body = Vec::new();
    ciborium::into_writer(&request, &mut body).expect("CBOR");
    let reply = crate::https::request(
        stack.verifier_addr,
        &verifier_pem,
        "POST",
        routes::verifier::ATTEST,
        Some(&token),
        Some((CBOR_CONTENT_TYPE, body)),
    )
    .await;
    assert_eq!(
        reply.status,
        200,
        "POST /v1/attest refused the second enclave: {}",
        String::from_utf8_lossy(&reply.body)
    );
    let issued: AttestResponse = ciborium::from_reader(&reply.body[..]).expect("attest reply");
    certified(
        vec![
            CertificateDer::from(issued.certificate),
            CertificateDer::from(issued.ca_certificate),
        ],
        &tls_key,
    )
}

fn sim_evidence(dev_pki: &Path, binding: &Binding<KeyRelease>, measurement: &[u8; 48]) -> Evidence {
    let sim = SimulatedSnp::from_dir(dev_pki).expect("simulated attester");
    Evidence::SevSnp(
        sim.attest(binding.as_bytes(), measurement)
            .expect("evidence"),
    )
}

#[derive(Debug)]
struct Fixed(Arc<CertifiedKey>);

impl ResolvesServerCert for Fixed {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }
}

/// What reached the impostor.
#[derive(Debug, Default)]
pub struct Hits {
    pub handshakes: AtomicUsize,
    pub attestation: AtomicUsize,
    /// Requests on any other route (a prompt would be one of these).
    pub other: AtomicUsize,
}

/// A TLS server presenting `identity`; stops when dropped.
#[derive(Debug)]
pub struct ImpostorServer {
    pub addr: SocketAddr,
    pub hits: Arc<Hits>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ImpostorServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ImpostorServer {
    /// Serves `identity` on 127.0.0.1:0. `POST /v1/attestation` answers `session_reply` (JSON)
    /// verbatim, or 503 when `None`.
    pub async fn start(identity: CertifiedKey, session_reply: Option<Vec<u8>>) -> ImpostorServer {
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("TLS 1.3")
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(Fixed(Arc::new(identity))));
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let hits = Arc::new(Hits::default());
        let reply = Arc::new(session_reply);
        let task_hits = Arc::clone(&hits);
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, hits, reply) =
                    (acceptor.clone(), Arc::clone(&task_hits), Arc::clone(&reply));
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    hits.handshakes.fetch_add(1, Ordering::SeqCst);
                    let service = hyper::service::service_fn(move |req| {
                        let (hits, reply) = (Arc::clone(&hits), Arc::clone(&reply));
                        async move { Ok::<_, Infallible>(route(req, &hits, &reply).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        ImpostorServer { addr, hits, task }
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    pub fn handshakes(&self) -> usize {
        self.hits.handshakes.load(Ordering::SeqCst)
    }

    pub fn attestation_requests(&self) -> usize {
        self.hits.attestation.load(Ordering::SeqCst)
    }

    /// Requests that reached anything but `/v1/attestation`.
    pub fn other_requests(&self) -> usize {
        self.hits.other.load(Ordering::SeqCst)
    }
}

async fn route(
    req: hyper::Request<hyper::body::Incoming>,
    hits: &Hits,
    reply: &Option<Vec<u8>>,
) -> hyper::Response<Full<Bytes>> {
    let is_attestation = req.uri().path() == routes::enclave::SESSION_ATTESTATION;
    let _ = req.into_body().collect().await;
    let (status, body) = if !is_attestation {
        hits.other.fetch_add(1, Ordering::SeqCst);
        (
            500,
            br#"{"error":{"code":"impostor","message":"impostor"}}"#.to_vec(),
        )
    } else {
        hits.attestation.fetch_add(1, Ordering::SeqCst);
        match reply {
            Some(body) => (200, body.clone()),
            None => (
                503,
                br#"{"error":{"code":"unavailable","message":"no"}}"#.to_vec(),
            ),
        }
    };
    hyper::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .expect("response")
}
