//! The `POST /v1/attest` pipeline, as one function from a request to a decision.
//!
//! nonce unused and unexpired → evidence bytes decode through the one gate
//! (`ReceivedEvidence::decode`) → evidence verifies at the verifier's time (`verify_evidence`,
//! anchors from the policy) → binding matches (`Binding<KeyRelease>` computed from the nonce, the
//! TLS key, `wrap_pk` and the policy's model digest) → `Policy::appraise` for the model id (which
//! checks the bound model digest itself) → the requested certificate names are among the
//! model's `tls_names` → result signed for the appraisal → leaf certificate issued and model key
//! HPKE-wrapped, both from that signed result (key, evidence, names, wrapping key all taken from
//! the appraisal).
//!
//! [`decide`] returns the audit event together with the reply; the caller appends the event
//! durably and only then sends the reply (see [`crate::state::Verifier::attest`]). Every refusal
//! carries one stable [`Refusal::code`], used both on the wire and in the audit log. Blocking
//! (verification and signing): run it on the blocking pool.

use axum::http::StatusCode;
use confidant_attestation::audit::entry::{AuditEvent, Decision, Tee};
use confidant_attestation::binding::{Binding, KeyRelease};
use confidant_attestation::evidence::{
    DecodeError, Evidence, ReceivedEvidence, TpmEvidence, evidence_digest,
};
use confidant_attestation::keywrap::{WRAP_PK_LEN, WrapError};
use confidant_attestation::leafcert::{CaError, CertificateAuthority};
use confidant_attestation::names::SubjectName;
use confidant_attestation::policy::{Appraisal, PolicyError};
use confidant_attestation::result::ResultSigner;
use confidant_attestation::snp::{SnpError, TcbLayout};
use confidant_attestation::time::UnixTime;
use confidant_attestation::tpm::TpmError;
use confidant_attestation::tpm::credential::PendingActivation;
use confidant_attestation::verify::{
    TrustAnchors, VerifiedEvidence, VerifiedKind, VerifyError, verify_evidence,
};
use confidant_service::ApiError;
use confidant_wire::attest::{AttestRequest, AttestResponse, WrappedKeyWire};
use ring::rand::SystemRandom;

use crate::keys::{KeyStore, KeyStoreError};
use crate::nonce::NonceError;
use crate::policy_store::ActivePolicy;

/// Most names a leaf certificate may carry.
pub const MAX_LEAF_NAMES: usize = confidant_attestation::policy::MAX_TLS_NAMES;

/// Why an attestation was refused. Each variant has one stable code.
#[derive(Debug)]
pub enum Refusal {
    /// The nonce was never issued, already used, or expired.
    Nonce(NonceError),
    /// A request field is malformed (wrong length, bad name).
    Malformed(&'static str),
    /// The evidence bytes are not canonical CBOR evidence.
    EvidenceEncoding(DecodeError),
    /// The evidence failed cryptographic verification.
    Evidence(VerifyError),
    /// The evidence is not bound to this nonce, TLS key, wrapping key and model.
    Binding,
    /// TPM: the AK is not enrolled, credential activation is in play (the policy trusts EK CAs,
    /// or the request carries an activation secret), and no credential issued for this nonce
    /// was activated for this AK.
    AkNotActivated,
    /// The policy refused the evidence for this model.
    Policy(PolicyError),
    /// No releasable key for the model.
    Key(KeyStoreError),
    /// The verifier failed after deciding to accept (signing, issuing, wrapping).
    Internal(String),
    /// The decision could not be written to the audit log (e.g. its disk is full), so nothing
    /// was released: the reply is withheld until a decision can be recorded.
    AuditUnavailable(String),
}

impl Refusal {
    /// The stable reason code, on the wire and in the audit log.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Nonce(NonceError::Replayed) => "nonce_replayed",
            Refusal::Nonce(NonceError::Expired) => "nonce_expired",
            Refusal::Nonce(_) => "nonce_unknown",
            Refusal::Malformed(_) => "malformed_request",
            Refusal::EvidenceEncoding(_) => "evidence_malformed",
            Refusal::Evidence(e) => evidence_code(e),
            Refusal::Binding => "binding_mismatch",
            Refusal::AkNotActivated => "ak_not_activated",
            Refusal::Policy(e) => e.code(),
            Refusal::Key(KeyStoreError::DigestMismatch) => "key_model_digest_mismatch",
            Refusal::Key(KeyStoreError::Revoked) => "key_revoked",
            Refusal::Key(KeyStoreError::NotFound) => "key_not_found",
            Refusal::Key(KeyStoreError::NoKeyForModel) => "no_key_for_model",
            Refusal::Key(_) | Refusal::Internal(_) => "internal_error",
            Refusal::AuditUnavailable(_) => "audit_unavailable",
        }
    }

    /// What exactly failed, for the verifier's own log (never sent to the caller): the policy's
    /// or the verification's own words, which name the check and the reference value or event
    /// that differs (e.g. "PCR 9 initrd … event digest … is not the reference …"). Evidence and
    /// policy errors carry only public values (digests, indices), never secrets.
    pub fn detail(&self) -> Option<String> {
        match self {
            Refusal::Policy(e) => Some(e.to_string()),
            Refusal::Evidence(e) => Some(error_chain(e)),
            Refusal::EvidenceEncoding(e) => Some(e.to_string()),
            _ => None,
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Refusal::Malformed(_) => StatusCode::BAD_REQUEST,
            Refusal::Key(KeyStoreError::NotFound | KeyStoreError::NoKeyForModel) => {
                StatusCode::NOT_FOUND
            }
            Refusal::Key(KeyStoreError::DigestMismatch | KeyStoreError::Revoked) => {
                StatusCode::FORBIDDEN
            }
            Refusal::Key(_) | Refusal::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Refusal::AuditUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::FORBIDDEN,
        }
    }

    fn message(&self) -> &'static str {
        match self {
            Refusal::Nonce(_) => "the nonce is unknown, used or expired; request a new challenge",
            Refusal::Malformed(what) => what,
            Refusal::EvidenceEncoding(_) => "the evidence is not canonical CBOR evidence",
            Refusal::Evidence(_) => "the evidence failed verification",
            Refusal::Binding => "the evidence is not bound to this request",
            Refusal::AkNotActivated => {
                "the TPM attestation key is neither enrolled nor proven by credential activation"
            }
            Refusal::Policy(PolicyError::UnknownModel) => {
                "the verifier's policy has no entry for this model id: add the model (its digest \
                 and the enclave's launch measurement) to the verifier's policy"
            }
            Refusal::Policy(PolicyError::NameNotAllowed { .. }) => {
                "a requested certificate name is not among the model's tls_names in the \
                 verifier's policy"
            }
            Refusal::Policy(_) => "the policy refused the evidence",
            Refusal::Key(_) => "no model key can be released",
            Refusal::Internal(_) => "internal error",
            Refusal::AuditUnavailable(_) => {
                "the decision could not be recorded in the audit log, so nothing was released; \
                 retry later"
            }
        }
    }
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        match &r {
            Refusal::Internal(detail) => {
                tracing::error!(detail = %detail, "attestation failed internally");
            }
            Refusal::AuditUnavailable(detail) => {
                tracing::error!(
                    detail = %detail,
                    "audit log unavailable: decision not recorded, reply withheld (nothing released)"
                );
            }
            _ => {}
        }
        let error = ApiError::new(r.status(), r.code(), r.message());
        match r {
            Refusal::AuditUnavailable(_) => error.with_retry_after(AUDIT_RETRY_AFTER),
            _ => error,
        }
    }
}

/// `Retry-After` of a reply withheld because the audit log could not record its decision.
pub const AUDIT_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(2);

/// An error and its sources, joined ("TPM quote rejected: the event log does not replay …").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Stable codes for verification failures: the check that failed, coarsely.
fn evidence_code(e: &VerifyError) -> &'static str {
    match e {
        VerifyError::Snp(s) => match s {
            SnpError::BadSignature => "evidence_bad_signature",
            SnpError::UntrustedRoot
            | SnpError::UntrustedIntermediate
            | SnpError::ChainSignature { .. }
            | SnpError::ChainShape { .. }
            | SnpError::NotCa { .. }
            | SnpError::CertParse { .. }
            | SnpError::CertEncoding { .. }
            | SnpError::CertNotValidAt { .. }
            | SnpError::CertAlgorithm { .. }
            | SnpError::ProductMismatch { .. }
            | SnpError::ProductUnknown => "evidence_untrusted_signer",
            SnpError::TcbMismatch { .. }
            | SnpError::ChipIdMismatch
            | SnpError::SignerKindMismatch { .. }
            | SnpError::ExtensionMissing { .. }
            | SnpError::ExtensionMalformed { .. } => "evidence_signer_mismatch",
            _ => "evidence_malformed",
        },
        VerifyError::Tpm(t) => match t {
            TpmError::BadSignature => "evidence_bad_signature",
            TpmError::UntrustedAk | TpmError::AkNotRestrictedSigning { .. } => {
                "evidence_untrusted_signer"
            }
            TpmError::PcrDigestMismatch
            | TpmError::PcrSelectionMismatch
            | TpmError::EventLogReplay { .. }
            | TpmError::SchemeMismatch { .. } => "evidence_inconsistent",
            _ => "evidence_malformed",
        },
    }
}

/// Fixed settings of the pipeline.
#[derive(Debug, Clone)]
pub struct Settings {
    pub result_issuer: String,
    pub result_audience: String,
    pub result_validity_secs: u64,
    pub leaf_validity_secs: u64,
}

/// What the pipeline needs.
#[derive(Debug)]
pub struct Context<'a> {
    pub policy: &'a ActivePolicy,
    pub keys: &'a KeyStore,
    pub ca: &'a CertificateAuthority,
    pub signer: &'a ResultSigner,
    pub settings: &'a Settings,
    pub rng: &'a SystemRandom,
    /// The credential issued for this request's nonce (`POST /v1/attest/credential`), if any.
    pub activation: Option<&'a PendingActivation>,
}

/// A decision: the event to log, and the reply to send once it is logged.
#[derive(Debug)]
pub struct Outcome {
    pub event: AuditEvent,
    pub reply: Result<AttestResponse, Refusal>,
}

/// What the log records of evidence, as far as it got: the digest of the evidence bytes as
/// received (whether or not they decode).
fn base_event(req: &AttestRequest, nonce: [u8; 32], now: u64) -> AuditEvent {
    AuditEvent {
        time: now,
        decision: Decision::Refuse,
        reason: None,
        nonce,
        evidence_digest: evidence_digest(&req.evidence),
        tee: None,
        measurement: None,
        tcb: None,
        policy_id: None,
        policy_version: None,
        model_id: Some(req.model_id.clone()).filter(|m| crate::keys::valid_model_id(m)),
        result_digest: None,
        key_id: None,
        dev: false,
    }
}

/// Records what verified evidence shows (measurement, raw TCB, dev flag).
fn record_verified(event: &mut AuditEvent, v: &VerifiedEvidence) {
    event.dev = v.is_dev();
    match v.kind() {
        VerifiedKind::SevSnp(r) => {
            event.measurement = Some(r.report().measurement.to_vec());
            let raw = r
                .report()
                .reported_tcb
                .encode(TcbLayout::for_product(r.product()));
            event.tcb = Some(u64::from_le_bytes(raw));
        }
        VerifiedKind::Tpm(q) => {
            event.measurement =
                Some(confidant_attestation::policy::pcr_composite(q.pcrs()).to_vec());
        }
    }
}

fn refuse(mut event: AuditEvent, refusal: Refusal) -> Outcome {
    event.decision = Decision::Refuse;
    event.reason = Some(refusal.code().to_owned());
    event.result_digest = None;
    event.key_id = None;
    Outcome {
        event,
        reply: Err(refusal),
    }
}

/// The certificate names a request asks for, parsed (not yet checked against the policy).
fn requested_names(req: &AttestRequest) -> Result<Vec<SubjectName>, Refusal> {
    if req.dns_names.len() + req.ip_addresses.len() > MAX_LEAF_NAMES {
        return Err(Refusal::Malformed("invalid certificate names"));
    }
    let dns = req.dns_names.iter().map(|n| match SubjectName::parse(n) {
        Ok(name @ SubjectName::Dns(_)) => Ok(name),
        _ => Err(Refusal::Malformed("invalid certificate names")),
    });
    let ips = req
        .ip_addresses
        .iter()
        .map(|n| match SubjectName::parse(n) {
            Ok(name @ SubjectName::Ip(_)) => Ok(name),
            _ => Err(Refusal::Malformed("invalid IP address")),
        });
    dns.chain(ips).collect()
}

/// Runs the pipeline. `nonce` is the outcome of consuming the request's nonce (done by the
/// caller, before anything else); `now` is Unix seconds.
pub fn decide(
    ctx: &Context<'_>,
    req: &AttestRequest,
    nonce: Result<[u8; 32], NonceError>,
    now: u64,
) -> Outcome {
    let logged_nonce: [u8; 32] = req.nonce.as_slice().try_into().unwrap_or([0; 32]);
    let mut event = base_event(req, logged_nonce, now);

    // 1. Nonce.
    let nonce = match nonce {
        Ok(n) => n,
        Err(e) => return refuse(event, Refusal::Nonce(e)),
    };

    // Request shape (cheap checks before any cryptography).
    let Ok(wrap_pk) = <[u8; WRAP_PK_LEN]>::try_from(req.wrap_pk.as_slice()) else {
        return refuse(event, Refusal::Malformed("wrap_pk must be 32 bytes"));
    };
    if req.tls_spki.is_empty() || req.tls_spki.len() > 4096 {
        return refuse(
            event,
            Refusal::Malformed("tls_spki is not a SubjectPublicKeyInfo"),
        );
    }
    let names = match requested_names(req) {
        Ok(names) => names,
        Err(refusal) => return refuse(event, refusal),
    };
    if req
        .key_id
        .as_deref()
        .is_some_and(|k| !crate::keys::valid_key_id(k))
    {
        return refuse(event, Refusal::Malformed("invalid key id"));
    }

    // 2. Evidence: the bytes through the one gate, then verification at the verifier's time.
    let received = match ReceivedEvidence::decode(&req.evidence) {
        Ok(r) => r,
        Err(e) => return refuse(event, Refusal::EvidenceEncoding(e)),
    };
    event.tee = Some(match received.evidence() {
        Evidence::SevSnp(_) => Tee::SevSnp,
        Evidence::Tpm(_) => Tee::Tpm,
    });
    let policy = &ctx.policy.policy;
    event.policy_id = Some(policy.id().to_owned());
    event.policy_version = Some(policy.version());
    let anchors = match tpm_ak_trust(ctx, received.evidence(), req) {
        Ok(Some(anchors)) => anchors,
        Ok(None) => ctx.policy.anchors.clone(),
        Err(refusal) => return refuse(event, refusal),
    };
    let verified = match verify_evidence(received, &anchors, UnixTime::from_secs(now)) {
        Ok(v) => v,
        Err(e) => return refuse(event, Refusal::Evidence(e)),
    };
    record_verified(&mut event, &verified);

    // 3. Binding, computed from its inputs; the model digest is the policy's (unknown model:
    // refused here).
    let model_digest = match policy.model_digest(&req.model_id) {
        Ok(d) => d,
        Err(e) => return refuse(event, Refusal::Policy(e)),
    };
    let binding = Binding::compute(KeyRelease {
        nonce,
        tls_spki_der: req.tls_spki.clone(),
        wrap_pk,
        model_digest,
    });
    let bound = match verified.bind(binding) {
        Ok(b) => b,
        Err(_) => return refuse(event, Refusal::Binding),
    };

    // 4. Policy: the rules, then the certificate names the policy allows this model.
    let appraisal = match policy.appraise(bound, &req.model_id) {
        Ok(a) => a,
        Err(e) => return refuse(event, Refusal::Policy(e)),
    };
    if let Err(e) = appraisal.check_names(&names) {
        tracing::warn!(
            model_id = %appraisal.model_id(),
            detail = %e,
            "certificate name refused"
        );
        return refuse(event, Refusal::Policy(e));
    }
    if appraisal.is_dev() {
        tracing::warn!(
            model_id = %appraisal.model_id(),
            "DEVELOPMENT evidence accepted: the enclave ran on a simulated attester, not real hardware"
        );
    }

    // 5. Result, certificate, key: all from the appraisal.
    match release(ctx, req, &appraisal, &names, now) {
        Ok((resp, result_digest, key_id)) => {
            event.decision = Decision::Accept;
            event.reason = None;
            event.result_digest = Some(result_digest);
            event.key_id = Some(key_id);
            Outcome {
                event,
                reply: Ok(resp),
            }
        }
        Err(refusal) => refuse(event, refusal),
    }
}

/// TPM AK trust through credential activation. `Ok(None)`: not TPM evidence, or the AK is
/// enrolled by fingerprint, or activation is not in play (no EK CA in the policy and no secret
/// sent): verification goes on with the policy's anchors (an unknown AK fails it). `Ok(Some(..))`:
/// the credential issued for this nonce was activated for exactly this AK; the anchors, for this
/// verification only, trust its exact `TPMT_PUBLIC` as vouched for by the EK CA the activation
/// went through, and the appraisal checks that CA against the policy.
fn tpm_ak_trust(
    ctx: &Context<'_>,
    evidence: &Evidence,
    req: &AttestRequest,
) -> Result<Option<TrustAnchors>, Refusal> {
    let Evidence::Tpm(TpmEvidence { ak_public, .. }) = evidence else {
        return Ok(None);
    };
    let policy = &ctx.policy.policy;
    let Ok(public) = confidant_attestation::tpm::TpmtPublic::parse(ak_public) else {
        return Ok(None); // verification reports the malformed key
    };
    let fingerprint = public.fingerprint();
    if policy.trust().tpm_aks_spki_sha256.contains(&fingerprint) {
        return Ok(None);
    }
    let in_play = !policy.trust().tpm_ek_cas().is_empty()
        || req.activation_secret.is_some()
        || ctx.activation.is_some();
    if !in_play {
        return Ok(None);
    }
    let activated = match (ctx.activation, req.activation_secret.as_deref()) {
        (Some(pending), Some(secret)) => pending.accept(ak_public, secret),
        _ => None,
    };
    let Some(activated) = activated else {
        return Err(Refusal::AkNotActivated);
    };
    let mut anchors = ctx.policy.anchors.clone();
    anchors.tpm.add_activated(&activated);
    if let Some(pending) = ctx.activation {
        tracing::info!(
            ak_spki_sha256 = %hex::encode(fingerprint),
            ek_cert_sha256 = %hex::encode(pending.ek_cert_fingerprint),
            ek_ca_sha256 = %hex::encode(activated.ek_ca_sha256()),
            "TPM attestation key trusted through credential activation"
        );
    }
    Ok(Some(anchors))
}

/// Everything after a successful appraisal: the key store opens the key for the appraisal, the
/// result is signed for it, and the certificate and the wrapped key are made from that signed
/// result. Only an `Appraisal<KeyRelease>` gets here (the type of every step).
fn release(
    ctx: &Context<'_>,
    req: &AttestRequest,
    appraisal: &Appraisal<KeyRelease>,
    names: &[SubjectName],
    now: u64,
) -> Result<(AttestResponse, [u8; 32], String), Refusal> {
    let internal =
        |what: &str, e: &dyn std::fmt::Display| Refusal::Internal(format!("{what}: {e}"));
    let (key_info, model_key) = ctx
        .keys
        .release(appraisal, req.key_id.as_deref())
        .map_err(Refusal::Key)?;

    let result = ctx
        .signer
        .sign_appraisal(
            appraisal,
            &ctx.settings.result_issuer,
            &ctx.settings.result_audience,
            now,
            ctx.settings.result_validity_secs,
            ctx.rng,
        )
        .map_err(|e| internal("signing result", &e))?;

    let certificate = ctx
        .ca
        .issue(
            &result,
            names,
            now.saturating_sub(60),
            now.saturating_add(ctx.settings.leaf_validity_secs),
            ctx.rng,
        )
        .map_err(|e| match e {
            CaError::BadSpki => Refusal::Malformed("tls_spki is not a SubjectPublicKeyInfo"),
            CaError::NameNotAllowed { name } => {
                Refusal::Policy(PolicyError::NameNotAllowed { name })
            }
            other => internal("issuing certificate", &other),
        })?;

    let wrapped = confidant_attestation::keywrap::release(
        &model_key,
        &result,
        &key_info.key_id,
        &mut rand::rngs::OsRng,
    )
    .map_err(|e| match e {
        WrapError::BadPublicKey => Refusal::Malformed("wrap_pk is not an X25519 public key"),
        other => internal("wrapping key", &other),
    })?;
    drop(model_key);

    Ok((
        AttestResponse {
            result: result.bytes().to_vec(),
            certificate,
            ca_certificate: ctx.ca.cert_der().to_vec(),
            wrapped_key: WrappedKeyWire {
                key_id: key_info.key_id.clone(),
                enc: wrapped.enc,
                ciphertext: wrapped.ciphertext,
            },
        },
        *result.digest(),
        key_info.key_id,
    ))
}
