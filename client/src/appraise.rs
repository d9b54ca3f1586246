//! The attestation checks, as pure functions of bytes and the current time (no I/O): the
//! certificate appraisal run inside the TLS handshake, and the session appraisal run on the reply
//! of `POST /v1/attestation`. Their outputs, [`VerifiedPeer`] and [`VerifiedSession`], can only be
//! made here, and a [`crate::Connection`] can only be made from them.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};

use serde::Serialize;
use subtle::ConstantTimeEq;

use confidant_attestation::binding::{Binding, BindingInput, Purpose};
use confidant_attestation::certext;
use confidant_attestation::evidence::Evidence;
use confidant_attestation::policy::pcr_composite;
use confidant_attestation::result::{ResultClaims, ResultError, ResultVerifier, Status};
use confidant_attestation::snp::TcbVersion;
use confidant_attestation::verify::{
    EvidenceClaims, TrustAnchors, VerifiedEvidence, VerifiedKind, verify_evidence,
};
use confidant_wire::attest::LockdownStatus;

use crate::config::Mode;
use crate::error::{AttestError, EvidenceFault};
use crate::policy::ClientPolicy;

/// Default audience expected in the attestation results of enclave certificates.
pub const DEFAULT_RESULT_AUDIENCE: &str = "confidant-client";

/// Runs the checks with one client's settings.
#[derive(Debug)]
pub(crate) struct Appraiser {
    results: ResultVerifier,
    audience: String,
    policy: ClientPolicy,
    mode: Mode,
    anchors: TrustAnchors,
    /// `direct` mode: certificate evidence this appraiser verified, by its exact bytes.
    evidence_cache: BoundedCache<VerifiedEvidence>,
}

/// Certificate-evidence entries an [`Appraiser`] keeps (an enclave presents the same certificate,
/// hence the same evidence, on every connection until it renews it).
const EVIDENCE_CACHE_ENTRIES: usize = 8;

/// A small cache of values derived from exact byte strings, evicting the oldest entry.
///
/// Sound only for pure functions of the bytes (and of settings fixed for the cache's owner):
/// it holds the outcome of evidence *verification*, which reads no clock and depends only on the
/// evidence and the appraiser's trust anchors. Every check that depends on time, the attestation
/// result or the policy still runs on each connection.
#[derive(Debug)]
struct BoundedCache<V> {
    capacity: usize,
    entries: Mutex<VecDeque<(Vec<u8>, V)>>,
}

impl<V: Clone> BoundedCache<V> {
    fn new(capacity: usize) -> Self {
        BoundedCache {
            capacity,
            entries: Mutex::new(VecDeque::with_capacity(capacity)),
        }
    }

    /// The value stored for exactly `key`.
    fn get(&self, key: &[u8]) -> Option<V> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries
            .iter()
            .find(|(k, _)| k.as_slice() == key)
            .map(|(_, v)| v.clone())
    }

    /// Stores `value` for `key`, evicting the oldest entry when full.
    fn insert(&self, key: &[u8], value: V) {
        if self.capacity == 0 {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.iter().any(|(k, _)| k.as_slice() == key) {
            return;
        }
        while entries.len() >= self.capacity {
            entries.pop_front();
        }
        entries.push_back((key.to_vec(), value));
    }
}

/// A server certificate that passed every check of the client's mode. Only
/// [`Appraiser::appraise_certificate`] makes one.
#[derive(Debug, Clone)]
pub(crate) struct VerifiedPeer {
    cert_der: Vec<u8>,
    spki_der: Vec<u8>,
    spki_sha256: [u8; 32],
    result: ResultClaims,
    /// The launch measurement the enclave was attested with.
    measurement: Vec<u8>,
    model_digest: [u8; 32],
    mode: Mode,
    evidence: Option<EvidenceClaims>,
}

impl VerifiedPeer {
    pub(crate) fn certificate_der(&self) -> &[u8] {
        &self.cert_der
    }
}

/// Session evidence that verified and is bound to this nonce, key, TLS session and model. Only
/// [`Appraiser::appraise_session`] makes one.
#[derive(Debug, Clone)]
pub(crate) struct VerifiedSession {
    nonce: [u8; 32],
    evidence: EvidenceClaims,
    lockdown: Option<LockdownStatus>,
}

/// What the client verified about the enclave of one connection.
#[derive(Debug, Clone, Serialize)]
pub struct AttestationClaims {
    /// `passport` or `direct`.
    pub mode: Mode,
    /// The verifier's signed result (signature, expiry, status and claims checked).
    #[serde(serialize_with = "serialize_result")]
    pub result: ResultClaims,
    /// `direct` mode: the certificate's evidence, verified by the client itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate_evidence: Option<EvidenceClaims>,
    /// `fresh` mode: the session evidence bound to this TLS connection.
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
    model_digest: String,
    tls_spki_sha256: String,
    evidence_digest: String,
    dev: bool,
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
        model_digest: hex::encode(r.model_digest),
        tls_spki_sha256: hex::encode(r.tls_spki_sha256),
        evidence_digest: hex::encode(r.evidence_digest),
        dev: r.dev,
    }
    .serialize(s)
}

impl AttestationClaims {
    pub(crate) fn new(peer: VerifiedPeer, session: Option<VerifiedSession>) -> Self {
        AttestationClaims {
            mode: peer.mode,
            tls_spki_sha256: hex::encode(peer.spki_sha256),
            result: peer.result,
            certificate_evidence: peer.evidence,
            session: session.map(|s| SessionClaims {
                nonce: hex::encode(s.nonce),
                evidence: s.evidence,
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
        policy: ClientPolicy,
        mode: Mode,
        anchors: TrustAnchors,
    ) -> Self {
        Appraiser {
            results,
            audience,
            policy,
            mode,
            anchors,
            evidence_cache: BoundedCache::new(EVIDENCE_CACHE_ENTRIES),
        }
    }

    /// Everything checkable from the certificate (the chain was checked by webpki already).
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
        let claims = verified.claims().clone();
        if claims.status != Status::Affirming {
            return Err(AttestError::ResultStatus(claims.status));
        }
        if !bool::from(claims.tls_spki_sha256.ct_eq(&ext.spki_sha256)) {
            return Err(AttestError::KeyBindingMismatch);
        }
        self.policy.check_dev(claims.dev)?;
        self.policy
            .check_model(&claims.model_id, &claims.model_digest)?;
        self.policy.check_measurement(&claims.measurement)?;
        self.policy.check_tcb(claims.tcb.as_ref())?;

        let evidence = match self.mode {
            Mode::Passport => None,
            Mode::Direct => Some(self.appraise_certificate_evidence(&ext.evidence, &claims)?),
        };
        let spki_der = spki_of(cert_der)?;
        Ok(VerifiedPeer {
            cert_der: cert_der.to_vec(),
            spki_der,
            spki_sha256: ext.spki_sha256,
            measurement: claims.measurement.clone(),
            model_digest: claims.model_digest,
            result: claims,
            mode: self.mode,
            evidence,
        })
    }

    /// `direct` mode: the embedded evidence verifies against the client's own anchors, is the
    /// evidence the result names, and meets the client's own reference values.
    ///
    /// The cryptographic verification (clock-free, a function of the bytes and this appraiser's
    /// anchors only) is done once per distinct evidence and remembered; the checks against the
    /// result and the policy run every time.
    fn appraise_certificate_evidence(
        &self,
        evidence_cbor: &[u8],
        result: &ResultClaims,
    ) -> Result<EvidenceClaims, AttestError> {
        let verified = match self.evidence_cache.get(evidence_cbor) {
            Some(verified) => verified,
            None => {
                let evidence = Evidence::from_cbor(evidence_cbor)
                    .map_err(|e| AttestError::EvidenceInvalid(EvidenceFault::Decode(e)))?;
                let verified = verify_evidence(&evidence, &self.anchors)
                    .map_err(|e| AttestError::EvidenceInvalid(EvidenceFault::Verify(e)))?;
                self.evidence_cache.insert(evidence_cbor, verified.clone());
                verified
            }
        };
        if !bool::from(verified.digest().ct_eq(&result.evidence_digest)) {
            return Err(AttestError::EvidenceMismatch);
        }
        let platform = self.appraise_platform(&verified)?;
        if platform.measurement != result.measurement || verified.is_dev() != result.dev {
            return Err(AttestError::EvidenceMismatch);
        }
        Ok(verified.claims())
    }

    /// Reference-value checks on verified evidence: development root, debug policy, measurement,
    /// TCB floor.
    fn appraise_platform(&self, verified: &VerifiedEvidence) -> Result<Platform, AttestError> {
        self.policy.check_dev(verified.is_dev())?;
        let platform = Platform::of(verified);
        if platform.debug {
            return Err(AttestError::DebugEnabled);
        }
        self.policy.check_measurement(&platform.measurement)?;
        self.policy.check_tcb(platform.tcb.as_ref())?;
        Ok(platform)
    }

    /// `fresh`: the session evidence verifies, is bound to (session, nonce, this key, this
    /// connection's exporter, the attested model), and comes from the attested enclave image.
    pub(crate) fn appraise_session(
        &self,
        peer: &VerifiedPeer,
        nonce: &[u8; 32],
        exporter: &[u8; 32],
        evidence_cbor: &[u8],
        claimed_model_digest: &[u8; 32],
        lockdown: Option<LockdownStatus>,
    ) -> Result<VerifiedSession, AttestError> {
        let evidence = Evidence::from_cbor(evidence_cbor)
            .map_err(|e| AttestError::SessionEvidenceInvalid(EvidenceFault::Decode(e)))?;
        let anchors = self.session_anchors(peer);
        let verified = verify_evidence(&evidence, &anchors)
            .map_err(|e| AttestError::SessionEvidenceInvalid(EvidenceFault::Verify(e)))?;
        if claimed_model_digest != &peer.model_digest {
            return Err(AttestError::SessionBindingMismatch);
        }
        let expected = Binding::compute(&BindingInput {
            purpose: Purpose::Session,
            nonce,
            tls_spki_der: &peer.spki_der,
            channel: exporter,
            model_digest: &peer.model_digest,
        });
        let bound = verified
            .bind(&expected)
            .map_err(|_| AttestError::SessionBindingMismatch)?;
        let platform = self.appraise_platform(bound.verified())?;
        if platform.measurement != peer.measurement {
            return Err(AttestError::SessionEvidenceMismatch);
        }
        Ok(VerifiedSession {
            nonce: *nonce,
            evidence: bound.verified().claims(),
            lockdown,
        })
    }
}

impl Appraiser {
    /// The anchors session evidence is verified against. In `passport` mode a TPM enclave's
    /// session quote must come from exactly the attestation key the verifier's signed result
    /// names (the key it accepted, enrolled or proven through the EK): the TPM keys the client
    /// enrolled itself are not used, so a quote from any other key is refused. In `direct` mode
    /// the client's own anchors decide, as for the certificate evidence.
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

/// The reference-value-relevant facts of verified evidence.
struct Platform {
    measurement: Vec<u8>,
    tcb: Option<TcbVersion>,
    debug: bool,
}

impl Platform {
    fn of(verified: &VerifiedEvidence) -> Self {
        match verified.kind() {
            VerifiedKind::SevSnp(r) => {
                let report = r.report();
                Platform {
                    measurement: report.measurement.to_vec(),
                    tcb: Some(report.reported_tcb),
                    debug: report.policy.debug(),
                }
            }
            VerifiedKind::Tpm(q) => Platform {
                measurement: pcr_composite(q.pcrs()).to_vec(),
                tcb: None,
                debug: false,
            },
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

#[cfg(test)]
mod tests {
    use super::BoundedCache;

    #[test]
    fn cache_answers_only_for_the_exact_bytes() {
        let cache = BoundedCache::new(4);
        cache.insert(b"evidence-a", 1u32);
        assert_eq!(cache.get(b"evidence-a"), Some(1));
        assert_eq!(cache.get(b"evidence-b"), None);
        assert_eq!(cache.get(b"evidence-"), None, "a prefix is another key");
        assert_eq!(
            cache.get(b"evidence-aa"),
            None,
            "an extension is another key"
        );
        assert_eq!(cache.get(b""), None);
    }

    #[test]
    fn cache_stays_bounded_and_evicts_the_oldest() {
        let cache = BoundedCache::new(3);
        for i in 0u32..10 {
            cache.insert(&i.to_be_bytes(), i);
        }
        assert_eq!(
            cache
                .entries
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .len(),
            3
        );
        for i in 0u32..7 {
            assert_eq!(cache.get(&i.to_be_bytes()), None, "{i} was evicted");
        }
        for i in 7u32..10 {
            assert_eq!(cache.get(&i.to_be_bytes()), Some(i));
        }
        // Re-inserting a present key neither duplicates nor evicts.
        cache.insert(&9u32.to_be_bytes(), 99);
        assert_eq!(cache.get(&7u32.to_be_bytes()), Some(7));
        assert_eq!(cache.get(&9u32.to_be_bytes()), Some(9));
    }

    #[test]
    fn zero_capacity_cache_keeps_nothing() {
        let cache = BoundedCache::new(0);
        cache.insert(b"x", 1u8);
        assert_eq!(cache.get(b"x"), None);
    }
}
