//! Boot-time attestation and model release (DESIGN.md "Boot and key release").
//!
//! The steps are types, so none can be skipped:
//!
//! 1. [`attest`] — challenge → evidence (`key-release`, bound to the TLS key, a fresh X25519
//!    wrapping key and the sealed header's model digest) → `POST /v1/attest` → the result's
//!    signature, audience, expiry and claims (model id and digest, TLS key hash) checked → the
//!    certificate checked to carry that result and our key. Only this yields an [`Attestation`].
//! 2. [`release_model`] takes an [`Attestation`]: unwraps the model key (HPKE, info bound to this
//!    result), decrypts the sealed file into one zeroizing buffer (never to disk), checks the
//!    plaintext digest against the attested one, drops the key. Only this yields a
//!    [`ReleasedModel`].
//! 3. [`load_engine`] takes a [`ReleasedModel`] (and drops it, zeroizing the plaintext): the
//!    engine can only be built from weights that came through a successful attestation.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use confidant_attestation::binding::{Binding, KeyRelease};
use confidant_attestation::digest::Blake3Digest;
use confidant_attestation::keywrap::{WrapError, WrapKeyPair, WrappedKey, wrap_info};
use confidant_attestation::result::{ResultError, ResultVerifier, Status, VerifiedResult};
use confidant_sealed::{SealError, SealedHeader, UnsealedModel, unseal_from_reader};
use confidant_wire::attest::{AttestRequest, CredentialRequest};
use rustls::pki_types::CertificateDer;
use rustls::sign::CertifiedKey;

use crate::config::{Config, LimitsConfig};
use crate::keys::{TlsIdentity, sha256};
use crate::tee::{Tee, TeeError};
use crate::tee_gate::TeeGate;
use crate::verifier_client::{VerifierClient, VerifierError};
use confidant_engine::bundle::{CONFIG_FILE, TOKENIZER_FILE, WEIGHTS_FILE};
use confidant_engine::{Engine, EngineLimits, ModelError};

/// Longest sealed-model header read before attestation.
const HEADER_PREFIX: u64 = 4096;

/// Why boot (or a renewal) failed. [`BootError::is_fatal`] tells the supervisor whether retrying
/// can help.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error("verifier: {0}")]
    Verifier(#[from] VerifierError),
    #[error("evidence: {0}")]
    Tee(#[from] TeeError),
    #[error("attestation result refused: {0}")]
    Result(#[from] ResultError),
    #[error("attestation result does not match this enclave: {0}")]
    ClaimMismatch(&'static str),
    #[error("certificate from the verifier refused: {0}")]
    Certificate(&'static str),
    #[error("model key could not be unwrapped: {0}")]
    Unwrap(#[from] WrapError),
    #[error("sealed model refused: {0}")]
    Sealed(#[from] SealError),
    #[error("unsealed model digest differs from the attested digest")]
    DigestMismatch,
    #[error("model bundle lacks {0}")]
    BundleFile(&'static str),
    #[error("model could not be loaded: {0}")]
    Model(#[from] ModelError),
    #[error("sealed model file {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("blocking task failed: {0}")]
    Task(String),
}

impl BootError {
    /// Errors that retrying the same boot cannot fix (the sealed file, the key or the bundle
    /// itself is bad). Everything else — verifier down or refusing, evidence failures — is
    /// retried with backoff.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            BootError::Unwrap(_)
                | BootError::Sealed(_)
                | BootError::DigestMismatch
                | BootError::BundleFile(_)
                | BootError::Model(_)
                | BootError::Io { .. }
        )
    }

    /// Stable short label for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            BootError::Verifier(VerifierError::Unreachable(_)) => "verifier_unreachable",
            BootError::Verifier(VerifierError::Refused { .. }) => "verifier_refused",
            BootError::Verifier(_) => "verifier_error",
            BootError::Tee(_) => "evidence",
            BootError::Result(_) | BootError::ClaimMismatch(_) => "result",
            BootError::Certificate(_) => "certificate",
            BootError::Unwrap(_) => "unwrap",
            BootError::Sealed(_) | BootError::DigestMismatch => "sealed_model",
            BootError::BundleFile(_) | BootError::Model(_) => "model",
            BootError::Io { .. } => "io",
            BootError::Task(_) => "task",
        }
    }
}

/// Seconds since the Unix epoch.
pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Reads and parses the sealed model's header (structure only; authenticity comes from the
/// verifier's result and from unsealing). The body is not read.
pub fn read_sealed_header(path: &std::path::Path) -> Result<SealedHeader, BootError> {
    use std::io::Read;
    let io = |source| BootError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut prefix = Vec::new();
    file.take(HEADER_PREFIX)
        .read_to_end(&mut prefix)
        .map_err(io)?;
    Ok(SealedHeader::parse(&prefix)?)
}

/// Everything an attestation attempt needs.
pub struct Attestor {
    pub(crate) config: Arc<Config>,
    pub(crate) tee: Arc<Tee>,
    pub(crate) gate: Arc<TeeGate>,
    pub(crate) verifier: VerifierClient,
    pub(crate) tls: Arc<TlsIdentity>,
    pub(crate) header: SealedHeader,
}

impl std::fmt::Debug for Attestor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attestor")
            .field("tee", &self.tee.name())
            .field("key_id", &self.header.key_id)
            .finish_non_exhaustive()
    }
}

/// Proof of one accepted key-release attestation. Only [`attest`] makes one.
pub struct Attestation {
    result: VerifiedResult,
    result_digest: [u8; 32],
    certified: CertifiedKey,
    /// Unix seconds when the reply arrived, and the certificate's `notAfter`.
    received_at: u64,
    not_after: u64,
    key_id: String,
    wrapped: WrappedKey,
    wrap: WrapKeyPair,
}

impl std::fmt::Debug for Attestation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attestation")
            .field("model_id", &self.result.claims().model_id)
            .field("not_after", &self.not_after)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl Attestation {
    /// The verified result.
    pub fn result(&self) -> &VerifiedResult {
        &self.result
    }

    /// The certificate (and key) to serve with.
    pub fn certified_key(&self) -> CertifiedKey {
        self.certified.clone()
    }

    /// When the certificate was received and when it expires (Unix seconds).
    pub fn validity(&self) -> (u64, u64) {
        (self.received_at, self.not_after)
    }

    /// The attested model digest.
    pub fn model_digest(&self) -> Blake3Digest {
        self.result.claims().model_digest
    }
}

/// One attestation round trip (see the module documentation).
pub async fn attest(a: &Attestor) -> Result<Attestation, BootError> {
    let nonce = a.verifier.challenge().await?;
    let wrap = WrapKeyPair::generate(&mut rand::rngs::OsRng);
    let binding = Binding::compute(KeyRelease {
        nonce,
        tls_spki_der: a.tls.spki_der().to_vec(),
        wrap_pk: *wrap.public_key(),
        model_digest: a.header.model_digest,
    });
    let activation_secret = activate_ak(a, &nonce).await?;
    let (tee, gate) = (a.tee.clone(), a.gate.clone());
    let evidence = tokio::task::spawn_blocking(move || {
        let _turn = gate.enclave();
        tee.evidence(&binding)
    })
    .await
    .map_err(|e| BootError::Task(e.to_string()))??;
    let mut request = AttestRequest {
        nonce: nonce.to_vec(),
        evidence: evidence.to_cbor(),
        tls_spki: a.tls.spki_der().to_vec(),
        wrap_pk: wrap.public_key().to_vec(),
        model_id: a.config.model_id.clone(),
        dns_names: a.config.server.dns_names.clone(),
        ip_addresses: a
            .config
            .server
            .ip_addresses
            .iter()
            .map(ToString::to_string)
            .collect(),
        key_id: Some(a.header.key_id.clone()),
        activation_secret: activation_secret.as_ref().map(|s| s.to_vec()),
    };
    let reply = a.verifier.attest(&request).await;
    if let Some(secret) = request.activation_secret.as_mut() {
        zeroize::Zeroize::zeroize(secret);
    }
    let reply = reply?;
    let result_key = a.verifier.result_verifier().await?;
    let now = now_unix();
    check_reply(a, &result_key, reply, wrap, now)
}

/// TPM with `ak_trust = "ek"`: credential activation for this nonce (`POST
/// /v1/attest/credential`, then `TPM2_ActivateCredential`); the recovered secret goes with the
/// attestation. `None` when the AK is to be trusted by enrolment.
async fn activate_ak(
    a: &Attestor,
    nonce: &[u8; 32],
) -> Result<Option<zeroize::Zeroizing<Vec<u8>>>, BootError> {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    let task = |e: tokio::task::JoinError| BootError::Task(e.to_string());
    let tee = a.tee.clone();
    let Some(material) = tokio::task::spawn_blocking(move || tee.ek_activation())
        .await
        .map_err(task)??
    else {
        return Ok(None);
    };
    let credential = a
        .verifier
        .credential(&CredentialRequest {
            nonce: hex::encode(nonce),
            ek_cert: STANDARD.encode(&material.ek_cert),
            ek_public: STANDARD.encode(&material.ek_public),
            ak_public: STANDARD.encode(&material.ak_public),
        })
        .await?;
    let bad = || {
        BootError::Verifier(crate::verifier_client::VerifierError::BadReply(
            "credential is not base64",
        ))
    };
    let blob = STANDARD
        .decode(credential.credential_blob.trim())
        .map_err(|_| bad())?;
    let secret = STANDARD
        .decode(credential.encrypted_secret.trim())
        .map_err(|_| bad())?;
    let tee = a.tee.clone();
    let recovered = tokio::task::spawn_blocking(move || tee.activate_credential(blob, secret))
        .await
        .map_err(task)??;
    tracing::debug!("TPM credential activated");
    Ok(Some(recovered))
}

fn check_reply(
    a: &Attestor,
    result_key: &ResultVerifier,
    reply: confidant_wire::attest::AttestResponse,
    wrap: WrapKeyPair,
    now: u64,
) -> Result<Attestation, BootError> {
    let result = result_key.verify(&reply.result, &a.config.verifier.result_audience, now)?;
    let claims = result.claims();
    if claims.model_id != a.config.model_id {
        return Err(BootError::ClaimMismatch("model_id"));
    }
    if claims.model_digest != a.header.model_digest {
        return Err(BootError::ClaimMismatch("model_digest"));
    }
    if claims.tls_spki_sha256 != a.tls.spki_sha256() {
        return Err(BootError::ClaimMismatch("tls_spki_sha256"));
    }
    if claims.status == Status::Contraindicated {
        return Err(BootError::ClaimMismatch("status"));
    }
    if claims.dev {
        tracing::warn!("attestation result is marked DEV: evidence came from a simulated TEE");
    }
    if reply.wrapped_key.key_id != a.header.key_id {
        return Err(BootError::ClaimMismatch("key_id"));
    }

    let ext = confidant_attestation::certext::parse(&reply.certificate)
        .map_err(|_| BootError::Certificate("no attestation extensions"))?;
    if ext.result != reply.result {
        return Err(BootError::Certificate("carries another attestation result"));
    }
    if ext.spki_sha256 != a.tls.spki_sha256() {
        return Err(BootError::Certificate("names another key"));
    }
    let not_after = certificate_not_after(&reply.certificate)?;
    if not_after <= now {
        return Err(BootError::Certificate("already expired"));
    }
    let chain = vec![
        CertificateDer::from(reply.certificate),
        CertificateDer::from(reply.ca_certificate),
    ];
    // Also checks that the certificate's key is our private key.
    let certified = confidant_service::tls::certified_key(chain, a.tls.private_key_der())
        .map_err(|_| BootError::Certificate("does not match the enclave's TLS key"))?;

    Ok(Attestation {
        result_digest: sha256(&reply.result),
        result,
        certified,
        received_at: now,
        not_after,
        key_id: reply.wrapped_key.key_id,
        wrapped: WrappedKey {
            enc: reply.wrapped_key.enc,
            ciphertext: reply.wrapped_key.ciphertext,
        },
        wrap,
    })
}

fn certificate_not_after(der: &[u8]) -> Result<u64, BootError> {
    use x509_parser::prelude::FromDer;
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(der)
        .map_err(|_| BootError::Certificate("unparsable"))?;
    u64::try_from(cert.validity().not_after.timestamp())
        .map_err(|_| BootError::Certificate("validity before 1970"))
}

/// A model decrypted under a released key and checked against the attested digest. Only
/// [`release_model`] makes one; the plaintext is zeroized when it is dropped.
pub struct ReleasedModel {
    unsealed: UnsealedModel,
    model_id: String,
}

impl std::fmt::Debug for ReleasedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReleasedModel")
            .field("model_id", &self.model_id)
            .field("digest", &self.unsealed.digest().to_hex())
            .finish_non_exhaustive()
    }
}

impl ReleasedModel {
    /// The verified model digest.
    pub fn digest(&self) -> Blake3Digest {
        *self.unsealed.digest()
    }
}

/// Unwraps the model key and unseals the model into memory. Blocking (reads and decrypts the
/// whole file). Consumes the attestation's wrapping key.
pub fn release_model(
    attestation: Attestation,
    sealed_path: &std::path::Path,
) -> Result<(ReleasedModel, AttestationSummary), BootError> {
    let Attestation {
        result,
        result_digest,
        certified,
        received_at,
        not_after,
        key_id,
        wrapped,
        wrap,
    } = attestation;
    let info = wrap_info(&result_digest, &key_id);
    let key = wrap.unwrap(&wrapped, &info)?;
    drop(wrap);
    // Streamed: each ciphertext chunk is read straight into its place in the zeroizing
    // plaintext buffer and decrypted there, so the whole ciphertext is never in memory (peak ≈
    // the model's size). The length is checked against the header before anything is allocated.
    let io = |source| BootError::Io {
        path: sealed_path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(sealed_path).map_err(io)?;
    let sealed_len = file.metadata().map_err(io)?.len();
    let unsealed = unseal_from_reader(file, sealed_len, &key)?;
    drop(key);
    unsealed.header().expect_key_id(&key_id)?;
    if *unsealed.digest() != result.claims().model_digest {
        return Err(BootError::DigestMismatch);
    }
    let summary = AttestationSummary {
        certified,
        received_at,
        not_after,
        model_digest: result.claims().model_digest,
        dev: result.claims().dev,
    };
    Ok((
        ReleasedModel {
            unsealed,
            model_id: result.into_claims().model_id,
        },
        summary,
    ))
}

/// What serving needs from the attestation that released the model.
pub struct AttestationSummary {
    pub certified: CertifiedKey,
    pub received_at: u64,
    pub not_after: u64,
    pub model_digest: Blake3Digest,
    pub dev: bool,
}

impl std::fmt::Debug for AttestationSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttestationSummary")
            .field("not_after", &self.not_after)
            .field("model_digest", &self.model_digest.to_hex())
            .finish_non_exhaustive()
    }
}

/// The loaded model and what the API reports about it.
#[derive(Debug)]
pub struct ServingModel {
    pub engine: Engine,
    pub model_id: String,
    pub digest: Blake3Digest,
}

/// Builds the engine from a released model (blocking), then drops (zeroizes) the plaintext.
pub fn load_engine(model: ReleasedModel, limits: &LimitsConfig) -> Result<ServingModel, BootError> {
    let bundle = model.unsealed.bundle();
    let file = |name: &'static str| bundle.get(name).ok_or(BootError::BundleFile(name));
    let engine = Engine::load(
        file(WEIGHTS_FILE)?,
        file(TOKENIZER_FILE)?,
        file(CONFIG_FILE)?,
    )?
    .with_limits(EngineLimits {
        max_prompt_tokens: limits.max_prompt_tokens,
        max_tokens: limits.max_tokens,
    });
    let digest = model.digest();
    let model_id = model.model_id.clone();
    drop(model);
    Ok(ServingModel {
        engine,
        model_id,
        digest,
    })
}
