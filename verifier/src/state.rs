//! The verifier's state: everything loaded at start-up, and the operations the routes call.

use std::path::Path;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use confidant_attestation::digest::Blake3Digest;
use confidant_attestation::leafcert::CertificateAuthority;
use confidant_attestation::modelkey::ModelKey;
use confidant_attestation::policy::PolicyError;
use confidant_attestation::result::ResultSigner;
use confidant_service::logsafe::Untrusted;
use confidant_service::ratelimit::{BucketConfig, Limiter, SystemClock};
use confidant_service::secrets::{SecretError, load_secret};
use confidant_service::{ApiError, JwtVerifier, Principal};
use confidant_wire::admin::{
    AuditCheckpoint, AuditEntries, ConsistencyProof, InclusionProof, PolicyVersion,
};
use confidant_wire::attest::{
    AttestRequest, AttestResponse, CredentialRequest, CredentialResponse,
};
use ring::rand::SystemRandom;

use crate::activation::{ActivationStore, CredentialRefusal};
use crate::appraise::{self, Context, Refusal, Settings};
use crate::audit_log::{AuditLog, AuditLogError};
use crate::config::Config;
use crate::keys::{KeyInfo, KeyStore, KeyStoreError, NewKey};
use crate::nonce::{Issued, NonceError, NonceStore};
use crate::policy_store::{PolicyStore, PolicyStoreError};
use crate::{now_unix, now_unix_ms};

/// Why the verifier could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("secret: {0}")]
    Secret(#[from] SecretError),
    #[error("JWT verification keys: {0}")]
    JwtKeys(#[from] confidant_service::jwt::KeyError),
    #[error("CA: {0}")]
    Ca(#[from] confidant_attestation::leafcert::CaError),
    #[error("result signing key: {0}")]
    ResultKey(#[from] confidant_attestation::result::ResultError),
    #[error("key store: {0}")]
    Keys(#[from] KeyStoreError),
    #[error("policy: {0}")]
    Policy(#[from] PolicyStoreError),
    #[error("audit log: {0}")]
    Audit(#[from] AuditLogError),
    #[error("rate limit: {0}")]
    RateLimit(#[from] confidant_service::ratelimit::RateLimitConfigError),
    #[error("TLS: {0}")]
    Tls(#[from] confidant_service::tls::TlsError),
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("server: {0}")]
    Serve(#[from] confidant_service::server::ServeError),
    #[error("server.admin_listen must differ from server.listen ({0})")]
    SameAddress(std::net::SocketAddr),
}

/// The running verifier.
pub struct Verifier {
    jwt: Arc<JwtVerifier>,
    limiter: Limiter,
    nonces: NonceStore,
    /// Credentials issued per outstanding nonce, awaiting their activated secret.
    activations: ActivationStore,
    keys: KeyStore,
    policy: PolicyStore,
    ca: CertificateAuthority,
    signer: ResultSigner,
    audit: AuditLog,
    settings: Settings,
    rng: SystemRandom,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("ca", &self.ca)
            .field("signer", &self.signer)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// Loads secrets, policy, key store and audit log. Blocking (file I/O).
    pub fn open(config: &Config) -> Result<Self, StartError> {
        let rng = SystemRandom::new();
        let jwt_keys = load_secret(&config.auth.verification_keys)?;
        let jwt = JwtVerifier::new(
            config.auth.issuer.clone(),
            config.auth.audience.clone(),
            confidant_service::jwt::parse_keys(jwt_keys.expose(), None)?,
        )?
        .with_leeway(config.auth.leeway_secs);
        let limiter = Limiter::new(
            BucketConfig {
                per_second: config.rate_limit.per_second,
                burst: config.rate_limit.burst,
            },
            config.rate_limit.max_clients,
            Arc::new(SystemClock),
        )?;
        let ca_key = load_secret(&config.ca.key)?;
        let ca = CertificateAuthority::new(
            ca_key.expose(),
            &config.ca.common_name,
            config.ca.not_before,
            config.ca.not_after,
            &rng,
        )?;
        let signer =
            ResultSigner::from_pkcs8(load_secret(&config.results.signing_key)?.expose(), &rng)?;
        let kek = crate::keys::parse_kek(&load_secret(&config.keys.kek)?)?;
        let keys = KeyStore::open(&config.keys.store, &kek)?;
        let policy = PolicyStore::open(
            &config.policy.path,
            config.policy.dev_ark.as_deref(),
            config.policy.dev_ask.as_deref(),
        )?;
        let audit = AuditLog::open(&config.audit, &rng)?;
        Ok(Self {
            jwt: Arc::new(jwt),
            limiter,
            nonces: NonceStore::new(config.challenge.ttl_ms, config.challenge.max_outstanding),
            activations: ActivationStore::new(config.challenge.max_outstanding),
            keys,
            policy,
            ca,
            signer,
            audit,
            settings: Settings {
                result_issuer: config.results.issuer.clone(),
                result_audience: config.results.audience.clone(),
                result_validity_secs: config.results.validity_secs,
                leaf_validity_secs: config.ca.leaf_validity_secs,
            },
            rng,
        })
    }

    pub fn jwt(&self) -> Arc<JwtVerifier> {
        self.jwt.clone()
    }

    /// The per-principal budget of `/v1/challenge` and `/v1/attest`.
    pub fn rate_limit(&self, p: &Principal) -> Result<(), ApiError> {
        self.limiter.try_take(&p.subject, 1).map_err(ApiError::from)
    }

    pub fn issue_challenge(&self) -> Result<Issued, NonceError> {
        self.nonces.issue(&self.rng, now_unix_ms())
    }

    /// The attestation pipeline: decide, log durably, then reply. Blocking.
    pub fn attest(&self, subject: &str, req: AttestRequest) -> Result<AttestResponse, Refusal> {
        let now_ms = now_unix_ms();
        let nonce = self.nonces.consume(&req.nonce, now_ms);
        // The nonce is consumed whatever the outcome: so is its pending activation.
        let activation = self.activations.take(&req.nonce, now_ms);
        let policy = self.policy.current();
        let ctx = Context {
            policy: &policy,
            activation: activation.as_ref(),
            keys: &self.keys,
            ca: &self.ca,
            signer: &self.signer,
            settings: &self.settings,
            rng: &self.rng,
        };
        let outcome = appraise::decide(&ctx, &req, nonce, now_unix());
        let reason = outcome.event.reason.clone();
        let detail = match outcome.reply.as_ref().err() {
            Some(Refusal::Policy(PolicyError::UnknownModel)) => unknown_model_detail(
                &req.model_id,
                self.policy.path(),
                outcome.event.measurement.as_deref(),
            ),
            Some(refusal) => refusal.detail().unwrap_or_default(),
            None => String::new(),
        };
        match self.audit.append(outcome.event) {
            Ok(seq) => {
                match &reason {
                    None => {
                        tracing::info!(audit_seq = seq, subject, model_id = %Untrusted::new(&req.model_id), "attestation accepted")
                    }
                    Some(code) => {
                        tracing::info!(audit_seq = seq, subject, model_id = %Untrusted::new(&req.model_id), reason = %code, detail = %detail, "attestation refused")
                    }
                }
                outcome.reply
            }
            Err(e) => {
                // Not logged, so not answered: the reply (and the wrapped key in it) is dropped.
                Err(Refusal::AuditUnavailable(format!(
                    "audit append failed: {e}"
                )))
            }
        }
    }

    /// `POST /v1/attest/credential`: checks that the nonce is outstanding (without consuming
    /// it), verifies the EK certificate against the policy's EK CAs, makes a credential for the
    /// AK and remembers it under the nonce. Refusals are audit-logged. Blocking (RSA, fsync).
    /// `body_digest` is the SHA-256 of the request body as received (the audit entry's evidence
    /// digest).
    pub fn credential(
        &self,
        subject: &str,
        body_digest: [u8; 32],
        req: &CredentialRequest,
    ) -> Result<CredentialResponse, ApiError> {
        let now_ms = now_unix_ms();
        let policy = self.policy.current();
        let mut nonce = [0u8; 32];
        let nonce_ok = hex::decode_to_slice(req.nonce.trim(), &mut nonce).is_ok();
        let outcome = if nonce_ok {
            self.issue_credential(&policy.policy, nonce, req, now_ms)
        } else {
            Err(CredentialRefusal::Nonce(NonceError::Unknown))
        };
        match outcome {
            Ok(resp) => {
                tracing::info!(subject, nonce = %hex::encode(nonce), "TPM credential issued");
                Ok(resp)
            }
            Err(refusal) if refusal.is_decision() => {
                let event = confidant_attestation::audit::entry::AuditEvent {
                    time: now_ms / 1000,
                    decision: confidant_attestation::audit::entry::Decision::Refuse,
                    reason: Some(refusal.code().to_owned()),
                    nonce,
                    evidence_digest: body_digest,
                    tee: Some(confidant_attestation::audit::entry::Tee::Tpm),
                    measurement: None,
                    tcb: None,
                    policy_id: Some(policy.policy.id().to_owned()),
                    policy_version: Some(policy.policy.version()),
                    model_id: None,
                    result_digest: None,
                    key_id: None,
                    dev: false,
                };
                match self.audit.append(event) {
                    Ok(seq) => {
                        tracing::info!(audit_seq = seq, subject, reason = %refusal.code(), detail = %refusal.detail(), "TPM credential refused");
                        Err(refusal.into())
                    }
                    Err(e) => Err(audit_unavailable(&e)),
                }
            }
            Err(refusal) => Err(refusal.into()),
        }
    }

    fn issue_credential(
        &self,
        policy: &confidant_attestation::policy::Policy,
        nonce: [u8; 32],
        req: &CredentialRequest,
        now_ms: u64,
    ) -> Result<CredentialResponse, CredentialRefusal> {
        let expires_ms = self
            .nonces
            .outstanding(&nonce, now_ms)
            .map_err(CredentialRefusal::Nonce)?;
        let b64 = |field: &'static str, v: &str| {
            STANDARD
                .decode(v.trim())
                .map_err(|_| CredentialRefusal::Malformed(field))
        };
        let ek_cert = b64("ek_cert must be base64", &req.ek_cert)?;
        let ek_public = b64("ek_public must be base64", &req.ek_public)?;
        let ak_public = b64("ak_public must be base64", &req.ak_public)?;
        let (credential, pending) = confidant_attestation::tpm::credential::challenge_ak(
            &ek_cert,
            &ek_public,
            &ak_public,
            policy.trust().tpm_ek_cas(),
            confidant_attestation::time::UnixTime::from_secs(now_ms / 1000),
            &mut rand::rngs::OsRng,
        )
        .map_err(CredentialRefusal::Challenge)?;
        tracing::debug!(
            ak_spki_sha256 = %hex::encode(pending.ak_fingerprint),
            ek_cert_sha256 = %hex::encode(pending.ek_cert_fingerprint),
            "EK certificate verified; credential made for the AK"
        );
        self.activations
            .insert(nonce, pending, expires_ms, now_ms)?;
        Ok(CredentialResponse {
            credential_blob: STANDARD.encode(&credential.credential_blob),
            encrypted_secret: STANDARD.encode(&credential.encrypted_secret),
        })
    }

    /// Pending credential activations (tests and metrics).
    pub fn activations(&self) -> &ActivationStore {
        &self.activations
    }

    pub fn ca_pem(&self) -> String {
        self.ca.cert_pem()
    }

    /// `GET /v1/keys`: the result-signing key as a JWK Set and as a COSE_Key, and the audit
    /// checkpoint key.
    pub fn public_keys(&self) -> crate::public_keys::PublicKeys {
        crate::public_keys::document(self.signer.verifier(), &self.audit.checkpoint_public_key())
    }

    // --- admin ---------------------------------------------------------------------------------

    fn policy_error(e: PolicyStoreError) -> ApiError {
        match e {
            e @ (PolicyStoreError::Io { .. } | PolicyStoreError::DevRoot(_)) => {
                ApiError::internal(e)
            }
            PolicyStoreError::VersionNotIncreased { .. } => ApiError::new(
                axum::http::StatusCode::CONFLICT,
                "policy_version_not_increased",
                "policy version must be higher than the current one",
            ),
            PolicyStoreError::BadMeasurement => {
                ApiError::bad_request("invalid_measurement", "measurement must be 48 or 32 bytes")
            }
            PolicyStoreError::Policy(p) => ApiError::bad_request(p.code(), "the policy is invalid"),
        }
    }

    pub fn replace_policy(&self, subject: &str, text: &str) -> Result<PolicyVersion, ApiError> {
        let active = self
            .policy
            .replace(text.to_owned())
            .map_err(Self::policy_error)?;
        tracing::info!(
            subject,
            policy_id = active.policy.id(),
            version = active.policy.version(),
            "policy replaced"
        );
        Ok(PolicyVersion {
            id: active.policy.id().to_owned(),
            version: active.policy.version(),
        })
    }

    pub fn policy_text(&self) -> String {
        self.policy.current().text.clone()
    }

    pub fn revoke_measurement(&self, subject: &str, m: &[u8]) -> Result<PolicyVersion, ApiError> {
        let active = self
            .policy
            .revoke_measurement(m)
            .map_err(Self::policy_error)?;
        tracing::warn!(subject, measurement = %hex::encode(m), version = active.policy.version(), "measurement revoked");
        Ok(PolicyVersion {
            id: active.policy.id().to_owned(),
            version: active.policy.version(),
        })
    }

    pub fn import_key(
        &self,
        subject: &str,
        key_id: &str,
        model_id: &str,
        model_digest: Blake3Digest,
        key: ModelKey,
    ) -> Result<KeyInfo, ApiError> {
        let info = self
            .keys
            .import(
                NewKey {
                    key_id,
                    model_id,
                    model_digest,
                    key,
                },
                now_unix(),
                &self.rng,
            )
            .map_err(crate::error::key_store_error)?;
        tracing::info!(subject, key_id, model_id, "model key imported");
        Ok(info)
    }

    pub fn rotate_key(
        &self,
        subject: &str,
        old_id: &str,
        new_id: &str,
        model_digest: Option<Blake3Digest>,
        key: ModelKey,
    ) -> Result<KeyInfo, ApiError> {
        let old = self
            .keys
            .list()
            .into_iter()
            .find(|k| k.key_id == old_id)
            .ok_or_else(|| crate::error::key_store_error(KeyStoreError::NotFound))?;
        let digest = match model_digest {
            Some(d) => d,
            None => Blake3Digest::from_hex(&old.model_digest).map_err(ApiError::internal)?,
        };
        let info = self
            .keys
            .rotate(
                old_id,
                NewKey {
                    key_id: new_id,
                    model_id: &old.model_id,
                    model_digest: digest,
                    key,
                },
                now_unix(),
                &self.rng,
            )
            .map_err(crate::error::key_store_error)?;
        tracing::info!(subject, old_id, new_id, "model key rotated");
        Ok(info)
    }

    pub fn revoke_key(&self, subject: &str, key_id: &str) -> Result<KeyInfo, ApiError> {
        let info = self
            .keys
            .revoke(key_id, now_unix())
            .map_err(crate::error::key_store_error)?;
        tracing::warn!(subject, key_id, "model key revoked");
        Ok(info)
    }

    pub fn list_keys(&self) -> Vec<KeyInfo> {
        self.keys.list()
    }

    // --- auditor -------------------------------------------------------------------------------

    pub fn audit_entries(&self, from: u64, limit: u64) -> Result<AuditEntries, ApiError> {
        self.audit
            .entries_reply(from, limit)
            .map_err(ApiError::internal)
    }

    pub fn audit_checkpoint(&self) -> Result<AuditCheckpoint, ApiError> {
        self.audit
            .checkpoint_reply(now_unix())
            .map_err(|e| audit_unavailable(&e))
    }

    pub fn inclusion_proof(
        &self,
        index: u64,
        size: Option<u64>,
    ) -> Result<InclusionProof, ApiError> {
        self.audit.inclusion_reply(index, size).map_err(proof_error)
    }

    pub fn consistency_proof(
        &self,
        from: u64,
        to: Option<u64>,
    ) -> Result<ConsistencyProof, ApiError> {
        self.audit.consistency_reply(from, to).map_err(proof_error)
    }

    /// The audit log (tests and tools).
    pub fn audit(&self) -> &AuditLog {
        &self.audit
    }

    /// The nonce store (tests and metrics).
    pub fn nonces(&self) -> &NonceStore {
        &self.nonces
    }
}

/// 503 for a decision or checkpoint the audit log could not record (a full disk, a failed fsync):
/// nothing that depends on it is answered.
fn audit_unavailable(e: &AuditLogError) -> ApiError {
    tracing::error!(error = %e, "audit log unavailable: request refused");
    ApiError::unavailable(
        "audit_unavailable",
        "the audit log cannot record this now; nothing was released; retry later",
    )
    .with_retry_after(crate::appraise::AUDIT_RETRY_AFTER)
}

fn proof_error(e: AuditLogError) -> ApiError {
    if e.is_range() {
        ApiError::bad_request("invalid_range", "index or size out of range")
    } else {
        ApiError::internal(e)
    }
}

/// The log detail of an `unknown_model` refusal: which policy file lacks which model, and the
/// (verified) measurement the enclave presented, to add with it.
fn unknown_model_detail(model_id: &str, policy: &Path, measurement: Option<&[u8]>) -> String {
    let shown = if crate::keys::valid_model_id(model_id) {
        format!("{model_id:?}")
    } else {
        "(an invalid id)".to_owned()
    };
    let measured = match measurement {
        Some(m) => format!(
            "; the enclave's verified measurement is {} (simulated TEE: `confidant measure sim \
             --binary confidant-enclave` prints it)",
            hex::encode(m)
        ),
        None => String::new(),
    };
    format!(
        "the policy {} has no [models.{shown}] table: add one with the model's digest and its \
         allowed measurements{measured}",
        policy.display()
    )
}
