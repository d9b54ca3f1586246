//! The attestation checks, as pure functions of bytes and the time passed in (no I/O): the
//! certificate appraisal run inside the TLS handshake, and the session appraisal run on the reply
//! of `POST /v1/attestation`. Their outputs, [`VerifiedPeer`] and [`VerifiedSession`], can only be
//! made here, and a [`crate::Connection`] can only be made from them.
//!
//! There is no second appraisal engine here: the client's policy is a
//! [`confidant_attestation::policy::Policy`] (the verifier's format), results are checked with
//! [`Policy::check_result`] and, in `direct` mode, session evidence with [`Policy::appraise`] —
//! the very code the verifier runs.

use serde::Serialize;
use subtle::ConstantTimeEq;

use confidant_attestation::binding::{Binding, Session};
use confidant_attestation::certext;
use confidant_attestation::digest::Blake3Digest;
use confidant_attestation::evidence::ReceivedEvidence;
use confidant_attestation::policy::{Policy, PolicyError};
use confidant_attestation::result::{ResultClaims, ResultError, ResultVerifier, Status};
use confidant_attestation::snp::{SnpRoot, TcbVersion};
use confidant_attestation::time::UnixTime;
use confidant_attestation::verify::{EvidenceClaims, TrustAnchors, verify_evidence};
use confidant_wire::attest::LockdownStatus;

use crate::config::Mode;
use crate::error::{AttestError, EvidenceFault};

/// Default audience expected in the attestation results of enclave certificates.
pub const DEFAULT_RESULT_AUDIENCE: &str = "confidant-client";

/// Runs the checks with one client's settings.
#[derive(Debug)]
pub(crate) struct Appraiser {
    results: ResultVerifier,
    audience: String,
    policy: Policy,
    mode: Mode,
    anchors: TrustAnchors,
}

/// A server certificate that passed every check of the client's mode. Only
/// [`Appraiser::appraise_certificate`] makes one.
#[derive(Debug)]
pub(crate) struct VerifiedPeer {
    cert_der: Vec<u8>,
    spki_der: Vec<u8>,
    spki_sha256: [u8; 32],
    result: ResultClaims,
    mode: Mode,
}

impl VerifiedPeer {
    pub(crate) fn certificate_der(&self) -> &[u8] {
        &self.cert_der
    }
}

/// Session evidence that verified and is bound to this nonce, key, TLS session and model, and
/// (`direct`) passed the client's own policy. Only [`Appraiser::appraise_session`] makes one.
#[derive(Debug)]
pub(crate) struct VerifiedSession {
    nonce: [u8; 32],
    evidence: EvidenceClaims,
    lockdown: Option<LockdownStatus>,
    appraisal: Option<SessionAppraisal>,
}

/// The enclave's answer to `POST /v1/attestation`, decoded from its JSON.
#[derive(Debug)]
pub(crate) struct SessionReply {
    /// The evidence bytes, as received.
    pub(crate) evidence: Vec<u8>,
    /// The model digest the enclave says it bound.
    pub(crate) model_digest: Blake3Digest,
    pub(crate) lockdown: Option<LockdownStatus>,
}

/// What the client's own policy established from a connection's session evidence (`direct`).
#[derive(Debug, Clone, Serialize)]
pub struct SessionAppraisal {
    /// The client policy's id and version.
    pub policy_id: String,
    pub policy_version: u64,
    pub model_id: String,
    /// The model digest the evidence is bound to (and the policy lists), hex.
    pub model_digest: Blake3Digest,
    /// SEV-SNP `MEASUREMENT` or the TPM PCR composite, hex.
    pub measurement: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcb: Option<TcbVersion>,
    /// SEV-SNP: the root that verified the chain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snp_root: Option<SnpRoot>,
    pub dev: bool,
    /// SEV-SNP: the chip id was masked (the policy allowed it).
    pub chip_id_masked: bool,
    /// SEV-SNP: `MASK_CHIP_KEY` was set (the policy allowed it).
    pub chip_key_masked: bool,
}

/// What the client verified about the enclave of one connection.
#[derive(Debug, Clone, Serialize)]
pub struct AttestationClaims {
    /// `passport` or `direct`.
    pub mode: Mode,
    /// The verifier's signed result (signature, expiry, status, and its claims against the
    /// client's policy, checked).
    #[serde(serialize_with = "serialize_result")]
    pub result: ResultClaims,
    /// The session evidence bound to this TLS connection (`fresh`; always in `direct` mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<SessionClaims>,
    /// SHA-256 of the enclave's TLS SubjectPublicKeyInfo, hex.
    pub tls_spki_sha256: String,
}

/// The fresh session evidence of a connection.
#[derive(Debug, Clone, Serialize)]
pub struct SessionClaims {
    /// The client's nonce, hex.
    pub nonce: String,
    pub evidence: EvidenceClaims,
    /// `direct` mode: the client policy's appraisal of this evidence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub appraisal: Option<SessionAppraisal>,
    /// How the enclave says it confined itself after unsealing. Reported by the enclave's own
    /// (measured) code over this attested connection; not part of the hardware evidence, and not
    /// checked against the client's policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lockdown: Option<LockdownStatus>,
}

/// Printable form of [`ResultClaims`] (byte strings as lowercase hex).
#[derive(Serialize)]
struct ResultView<'a> {
    iss: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
    status: Status,
    tee: &'static str,
    measurement: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    tcb: Option<TcbVersion>,
    policy_id: &'a str,
    policy_version: u64,
    model_id: &'a str,
    model_digest: Blake3Digest,
    tls_spki_sha256: String,
    evidence_digest: String,
    dev: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    mask_chip_id: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    mask_chip_key: bool,
}

fn serialize_result<S: serde::Serializer>(r: &ResultClaims, s: S) -> Result<S::Ok, S::Error> {
    ResultView {
        iss: &r.iss,
        aud: &r.aud,
        iat: r.iat,
        exp: r.exp,
        status: r.status,
        tee: r.tee.as_str(),
        measurement: hex::encode(&r.measurement),
        tcb: r.tcb,
        policy_id: &r.policy_id,
        policy_version: r.policy_version,
        model_id: &r.model_id,
        model_digest: r.model_digest,
        tls_spki_sha256: hex::encode(r.tls_spki_sha256),
        evidence_digest: hex::encode(r.evidence_digest),
        dev: r.dev,
        mask_chip_id: r.mask_chip_id,
        mask_chip_key: r.mask_chip_key,
    }
    .serialize(s)
}

impl AttestationClaims {
    pub(crate) fn new(peer: VerifiedPeer, session: Option<VerifiedSession>) -> Self {
        AttestationClaims {
            mode: peer.mode,
            tls_spki_sha256: hex::encode(peer.spki_sha256),
            result: peer.result,
            session: session.map(|s| SessionClaims {
                nonce: hex::encode(s.nonce),
                evidence: s.evidence,
                appraisal: s.appraisal,
                lockdown: s.lockdown,
            }),
        }
    }

    /// True while the attestation result is unexpired.
    pub fn valid_at(&self, now_unix: u64) -> bool {
        now_unix < self.result.exp
    }

    /// True when the enclave runs on development (simulated) evidence.
    pub fn is_dev(&self) -> bool {
        self.result.dev
    }
}

impl Appraiser {
    pub(crate) fn new(
        results: ResultVerifier,
        audience: String,
        policy: Policy,
        mode: Mode,
        anchors: TrustAnchors,
    ) -> Self {
        Appraiser {
            results,
            audience,
            policy,
            mode,
            anchors,
        }
    }

    /// Everything checkable from the certificate (the chain was checked by webpki already): the
    /// result's signature, expiry and status, that it names this certificate's key, and its
    /// claims against the client's policy (the same rules the verifier applied to the evidence,
    /// on what the result carries).
    pub(crate) fn appraise_certificate(
        &self,
        cert_der: &[u8],
        now: u64,
    ) -> Result<VerifiedPeer, AttestError> {
        let ext = certext::parse(cert_der).map_err(AttestError::MissingExtension)?;
        let verified = self
            .results
            .verify(&ext.result, &self.audience, now)
            .map_err(result_error)?;
        let claims = verified.into_claims();
        if claims.status != Status::Affirming {
            return Err(AttestError::ResultStatus(claims.status));
        }
        if !bool::from(claims.tls_spki_sha256.ct_eq(&ext.spki_sha256)) {
            return Err(AttestError::KeyBindingMismatch);
        }
        self.policy
            .check_result(&claims)
            .map_err(AttestError::Policy)?;
        Ok(VerifiedPeer {
            cert_der: cert_der.to_vec(),
            spki_der: spki_of(cert_der)?,
            spki_sha256: ext.spki_sha256,
            result: claims,
            mode: self.mode,
        })
    }

    /// Session evidence: it decodes through the one evidence gate, verifies at `now`, is bound to
    /// (session, nonce, this certificate's key, this connection's exporter, the attested model) —
    /// a binding the client computes itself — and then:
    /// - `passport`: shows the platform the verifier's result names (same measurement, same
    ///   development flag) and not a debuggable guest;
    /// - `direct`: passes the client's own policy for the attested model with
    ///   [`Policy::appraise`], and shows the measurement the result names.
    pub(crate) fn appraise_session(
        &self,
        peer: &VerifiedPeer,
        nonce: &[u8; 32],
        exporter: &[u8; 32],
        reply: SessionReply,
        now: u64,
    ) -> Result<VerifiedSession, AttestError> {
        let SessionReply {
            evidence: evidence_cbor,
            model_digest: claimed_model_digest,
            lockdown,
        } = reply;
        let received = ReceivedEvidence::decode(&evidence_cbor)
            .map_err(|e| AttestError::SessionEvidenceInvalid(EvidenceFault::Decode(e)))?;
        let anchors = self.session_anchors(peer);
        let verified = verify_evidence(received, &anchors, UnixTime::from_secs(now))
            .map_err(|e| AttestError::SessionEvidenceInvalid(EvidenceFault::Verify(e)))?;
        if claimed_model_digest != peer.result.model_digest {
            return Err(AttestError::SessionBindingMismatch);
        }
        let expected = Binding::compute(Session {
            nonce: *nonce,
            tls_spki_der: peer.spki_der.clone(),
            exporter: *exporter,
            model_digest: peer.result.model_digest,
        });
        let bound = verified
            .bind(expected)
            .map_err(|_| AttestError::SessionBindingMismatch)?;
        let evidence = bound.verified().claims();
        let same_platform = |measurement: &[u8], dev: bool| {
            measurement == peer.result.measurement.as_slice() && dev == peer.result.dev
        };
        let appraisal = match peer.mode {
            Mode::Passport => {
                let v = bound.verified();
                if v.debug_allowed() {
                    return Err(AttestError::SessionPolicy(PolicyError::DebugEnabled));
                }
                if !same_platform(&v.measurement(), v.is_dev()) {
                    return Err(AttestError::SessionEvidenceMismatch);
                }
                None
            }
            Mode::Direct => {
                let a = self
                    .policy
                    .appraise(bound, &peer.result.model_id)
                    .map_err(AttestError::SessionPolicy)?;
                if !same_platform(a.measurement(), a.is_dev()) {
                    return Err(AttestError::SessionEvidenceMismatch);
                }
                Some(SessionAppraisal {
                    policy_id: a.policy_id().to_string(),
                    policy_version: a.policy_version(),
                    model_id: a.model_id().to_string(),
                    model_digest: *a.model_digest(),
                    measurement: hex::encode(a.measurement()),
                    tcb: a.tcb().copied(),
                    snp_root: a.snp_root(),
                    dev: a.is_dev(),
                    chip_id_masked: a.chip_id_masked(),
                    chip_key_masked: a.chip_key_masked(),
                })
            }
        };
        Ok(VerifiedSession {
            nonce: *nonce,
            evidence,
            lockdown,
            appraisal,
        })
    }

    /// The anchors session evidence is verified against. In `passport` mode a TPM enclave's
    /// session quote must come from exactly the attestation key the verifier's signed result
    /// names (the key it accepted, enrolled or proven through the EK): the TPM keys the client's
    /// policy lists are not used, so a quote from any other key is refused. In `direct` mode the
    /// client's own anchors (from its policy) decide, and its policy checks the key again.
    fn session_anchors(&self, peer: &VerifiedPeer) -> std::borrow::Cow<'_, TrustAnchors> {
        match (peer.mode, peer.result.tpm_ak_spki_sha256) {
            (Mode::Passport, Some(ak)) => {
                let mut tpm = confidant_attestation::tpm::TpmTrustAnchors::default();
                tpm.enroll_ak_spki_sha256(ak);
                std::borrow::Cow::Owned(TrustAnchors {
                    snp: self.anchors.snp.clone(),
                    tpm,
                })
            }
            _ => std::borrow::Cow::Borrowed(&self.anchors),
        }
    }
}

fn result_error(e: ResultError) -> AttestError {
    match e {
        ResultError::Expired | ResultError::NotYetValid => AttestError::ResultExpired,
        other => AttestError::ResultSignature(other),
    }
}

/// The DER SubjectPublicKeyInfo of a certificate.
fn spki_of(cert_der: &[u8]) -> Result<Vec<u8>, AttestError> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let (_, cert) = X509Certificate::from_der(cert_der)
        .map_err(|_| AttestError::MissingExtension(certext::CertExtError::BadCertificate))?;
    Ok(cert.tbs_certificate.subject_pki.raw.to_vec())
}
