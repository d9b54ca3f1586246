//! TPM 2.0 quotes: pure verification of `TPM2_Quote` output (TPM 2.0 Library, Part 2: Structures).
//!
//! [`verify_quote`] takes the marshalled `TPMS_ATTEST`, `TPMT_SIGNATURE` and the attestation key's
//! `TPMT_PUBLIC` exactly as the TPM produced them, plus the SHA-256 PCR values they claim to cover,
//! and returns a [`VerifiedTpmQuote`] only if
//!
//! 1. the quote parses exactly (magic `TPM_GENERATED_VALUE`, type `TPM_ST_ATTEST_QUOTE`, no
//!    trailing bytes), and so do the signature and the key;
//! 2. the attestation key is one the caller enrolled in [`TpmTrustAnchors`] (the key carried in
//!    the evidence is never trusted by itself) and is a restricted, fixedTPM signing key;
//! 3. the signature (RSASSA or RSAPSS with RSA 2048–4096, or ECDSA P-256; SHA-256) verifies over
//!    the received quote bytes;
//! 4. the quote's PCR selection (SHA-256 bank only) is exactly the set of PCRs supplied, and
//!    `pcrDigest` equals SHA-256 of their values in selection order.
//!
//! Whether the quote's `extraData` equals the expected binding is checked by
//! [`crate::verify::VerifiedEvidence::bind`]; PCR reference values by the policy module.
//! [`tools`] reads and writes the files tpm2-tools uses.
//!
//! When the evidence carries a TCG event log, [`verify_quote`] also parses it ([`eventlog`]) and
//! requires its SHA-256 replay to equal every quoted PCR; the boot-image facts it records are then
//! kept on [`VerifiedTpmQuote::boot`].

use std::collections::BTreeMap;

use serde::Serialize;

pub mod attest;
pub mod constants;
pub mod credential;
pub mod ekcert;
pub mod eventlog;
mod marshal;
pub mod public;
pub mod signature;
pub mod tools;
mod verify;

pub use attest::{TpmsAttest, TpmsClockInfo};
pub use eventlog::{BootImageClaims, BootImageEvents, EventLog, EventLogError};
pub use public::TpmtPublic;
pub use signature::TpmtSignature;
pub use verify::{replay_event_log, verify_quote};

/// Why a TPM quote (or one of its parts) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TpmError {
    #[error("{what} is truncated")]
    Truncated { what: &'static str },
    #[error("{count} trailing bytes after {what}")]
    TrailingBytes { what: &'static str, count: usize },
    #[error("{what} is {len} bytes, over the limit")]
    TooLarge { what: &'static str, len: usize },
    #[error("{what} is malformed")]
    Malformed { what: &'static str },
    #[error("TPMS_ATTEST.magic is {0:#010x}, not TPM_GENERATED_VALUE")]
    BadMagic(u32),
    #[error("TPMS_ATTEST.type is {0:#06x}, not TPM_ST_ATTEST_QUOTE")]
    NotAQuote(u16),
    #[error("unsupported {what}: algorithm {alg:#06x}")]
    UnsupportedAlgorithm { what: &'static str, alg: u16 },
    #[error("the attestation key is not enrolled")]
    UntrustedAk,
    #[error(
        "the attestation key is not a restricted fixedTPM signing key (objectAttributes {attributes:#010x})"
    )]
    AkNotRestrictedSigning { attributes: u32 },
    #[error("signature scheme {signature:#06x} does not match the key's {key:#06x}")]
    SchemeMismatch { key: u16, signature: u16 },
    #[error("the quote signature does not verify with the attestation key")]
    BadSignature,
    #[error("the quote selects other PCRs than the ones supplied")]
    PcrSelectionMismatch,
    #[error("PCR {index} value is {len} bytes, not a SHA-256 digest")]
    PcrValueLength { index: u8, len: usize },
    #[error("pcrDigest does not equal the hash of the supplied PCR values")]
    PcrDigestMismatch,
    #[error("the PEM block is not a PUBLIC KEY holding a DER SubjectPublicKeyInfo")]
    BadPublicKeyPem,
    #[error("the event log is malformed: {0}")]
    EventLog(EventLogError),
    #[error("the event log does not replay to quoted PCR {pcr}: {detail}")]
    EventLogReplay { pcr: u8, detail: EventLogError },
}

/// Why an attestation key is trusted: the anchor that vouched for it. Recorded on the verified
/// quote, so the policy checks that very anchor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case", tag = "by")]
pub enum AkAnchor {
    /// Enrolled by the SHA-256 of its DER SubjectPublicKeyInfo (a policy's `tpm_aks_spki_sha256`,
    /// a PEM or `TPMT_PUBLIC` given to [`TpmTrustAnchors`]).
    Enrolled,
    /// Proven by credential activation to live in a TPM whose EK certificate chains to the EK CA
    /// with this SHA-256 of its DER ([`credential::ActivatedAk`]).
    EkCa {
        #[serde(serialize_with = "crate::audit::entry::hex32::serialize")]
        ca_sha256: [u8; 32],
    },
}

/// One trusted attestation key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TrustedAk {
    /// SHA-256 of the pinned `TPMT_PUBLIC`, when enrolled that way.
    pinned_public: Option<[u8; 32]>,
    anchor: AkAnchor,
}

/// Attestation keys the verifier trusts, identified by SHA-256 of their DER SubjectPublicKeyInfo.
/// The default trusts nothing.
///
/// A key enrolled by its SPKI (PEM or DER) is trusted with whatever `TPMT_PUBLIC` the evidence
/// presents for it, so the enroller vouches that it is a restricted TPM key (for example because
/// `tpm2_createak` made it). A key enrolled by its `TPMT_PUBLIC`, or proven by credential
/// activation, pins those exact bytes, attributes included.
#[derive(Debug, Clone, Default)]
pub struct TpmTrustAnchors {
    aks: BTreeMap<[u8; 32], TrustedAk>,
}

impl TpmTrustAnchors {
    fn enroll(&mut self, fingerprint: [u8; 32], pinned_public: Option<[u8; 32]>) {
        self.aks.insert(
            fingerprint,
            TrustedAk {
                pinned_public,
                anchor: AkAnchor::Enrolled,
            },
        );
    }

    /// Enrolls an AK by its DER `SubjectPublicKeyInfo` bytes.
    pub fn enroll_ak_spki_der(&mut self, der: &[u8]) -> [u8; 32] {
        let fp = public::spki_fingerprint(der);
        self.enroll(fp, None);
        fp
    }

    /// Enrolls an AK by the SHA-256 of its DER `SubjectPublicKeyInfo` (how policies list AKs).
    /// The evidence must then carry an AK whose SPKI hashes to this value.
    pub fn enroll_ak_spki_sha256(&mut self, fingerprint: [u8; 32]) {
        self.enroll(fingerprint, None);
    }

    /// Enrolls an AK from a `PUBLIC KEY` PEM block (as `tpm2_createak -f pem` writes it).
    pub fn enroll_ak_pem(&mut self, pem: &str) -> Result<[u8; 32], TpmError> {
        let der = tools::spki_der_from_pem(pem)?;
        Ok(self.enroll_ak_spki_der(&der))
    }

    /// Enrolls an AK from its marshalled `TPMT_PUBLIC`, pinning those exact bytes.
    pub fn enroll_ak_public(&mut self, tpmt_public: &[u8]) -> Result<[u8; 32], TpmError> {
        let public = TpmtPublic::parse(tpmt_public)?;
        let fp = public.fingerprint();
        self.enroll(fp, Some(public::sha256(tpmt_public)));
        Ok(fp)
    }

    /// Trusts the AK that credential activation proved, pinned to its exact `TPMT_PUBLIC`, as
    /// vouched for by the EK CA the activation went through.
    pub fn add_activated(&mut self, ak: &credential::ActivatedAk) {
        self.aks.insert(
            ak.ak_fingerprint(),
            TrustedAk {
                pinned_public: Some(ak.tpmt_public_sha256()),
                anchor: AkAnchor::EkCa {
                    ca_sha256: ak.ek_ca_sha256(),
                },
            },
        );
    }

    /// True when no key is enrolled.
    pub fn is_empty(&self) -> bool {
        self.aks.is_empty()
    }

    /// Fingerprints of the enrolled keys.
    pub fn fingerprints(&self) -> impl Iterator<Item = &[u8; 32]> {
        self.aks.keys()
    }

    /// Whether `public` (whose marshalled form is `tpmt_public`) is trusted, and by what.
    pub(crate) fn trusts(
        &self,
        public: &TpmtPublic,
        tpmt_public: &[u8],
    ) -> Option<([u8; 32], AkAnchor)> {
        let fp = public.fingerprint();
        let ak = self.aks.get(&fp)?;
        match ak.pinned_public {
            Some(pinned) if pinned != public::sha256(tpmt_public) => None,
            _ => Some((fp, ak.anchor)),
        }
    }
}

/// A quote whose structure, key, signature and PCR digest checked out. Only [`verify_quote`] makes
/// one; not `Clone`, so it does not outlive the verification it came from.
#[derive(Debug, PartialEq, Eq)]
pub struct VerifiedTpmQuote {
    qualifying_data: Vec<u8>,
    pcrs: BTreeMap<u8, [u8; 32]>,
    ak_fingerprint: [u8; 32],
    ak_anchor: AkAnchor,
    clock_info: TpmsClockInfo,
    firmware_version: u64,
    /// Boot-image facts from the evidence's event log, present only when the evidence carried a
    /// log and its replay matched every quoted PCR.
    boot: Option<BootImageEvents>,
}

impl VerifiedTpmQuote {
    /// `extraData`: the qualifying data the quote was asked for (the binding).
    pub fn qualifying_data(&self) -> &[u8] {
        &self.qualifying_data
    }

    /// The quoted SHA-256 PCR values, by index.
    pub fn pcrs(&self) -> &BTreeMap<u8, [u8; 32]> {
        &self.pcrs
    }

    /// SHA-256 of the attestation key's DER SubjectPublicKeyInfo.
    pub fn ak_fingerprint(&self) -> [u8; 32] {
        self.ak_fingerprint
    }

    /// The anchor that vouched for the attestation key.
    pub fn ak_anchor(&self) -> AkAnchor {
        self.ak_anchor
    }

    /// `TPMS_CLOCK_INFO` at the time of the quote.
    pub fn clock_info(&self) -> &TpmsClockInfo {
        &self.clock_info
    }

    /// `firmwareVersion` (vendor-specific).
    pub fn firmware_version(&self) -> u64 {
        self.firmware_version
    }

    /// Boot-image facts from the replayed event log (`None` when the evidence carried no log).
    pub fn boot(&self) -> Option<&BootImageEvents> {
        self.boot.as_ref()
    }

    /// Printable, serialisable claims.
    pub fn claims(&self) -> TpmClaims {
        TpmClaims {
            pcrs: self
                .pcrs
                .iter()
                .map(|(i, v)| (*i, hex::encode(v)))
                .collect(),
            qualifying_data: hex::encode(&self.qualifying_data),
            ak_fingerprint: hex::encode(self.ak_fingerprint),
            ak_anchor: self.ak_anchor,
            firmware_version: self.firmware_version,
            clock: self.clock_info.clock,
            reset_count: self.clock_info.reset_count,
            restart_count: self.clock_info.restart_count,
            safe: self.clock_info.safe,
            boot: self.boot.as_ref().map(BootImageEvents::claims),
        }
    }
}

/// Verified TPM claims, as printed and carried in results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TpmClaims {
    /// SHA-256 PCR values, hex, by index.
    pub pcrs: BTreeMap<u8, String>,
    /// `extraData`, hex.
    pub qualifying_data: String,
    /// SHA-256 of the AK's DER SubjectPublicKeyInfo, hex.
    pub ak_fingerprint: String,
    /// Why the AK is trusted.
    pub ak_anchor: AkAnchor,
    pub firmware_version: u64,
    pub clock: u64,
    pub reset_count: u32,
    pub restart_count: u32,
    pub safe: bool,
    /// Boot-image facts from the replayed event log, when the evidence carried one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub boot: Option<BootImageClaims>,
}

/// The TPM module behind [`crate::verify::Tee`].
pub(crate) struct TpmTee;

impl crate::verify::Tee for TpmTee {
    type Evidence = crate::evidence::TpmEvidence;
    type Verified = VerifiedTpmQuote;

    /// A quote carries no certificate, so it does not depend on the time.
    fn verify(
        evidence: &Self::Evidence,
        anchors: &crate::verify::TrustAnchors,
        _now: crate::time::UnixTime,
    ) -> Result<VerifiedTpmQuote, crate::verify::VerifyError> {
        Ok(verify_quote(evidence, &anchors.tpm)?)
    }
}

impl crate::verify::VerifiedTee for VerifiedTpmQuote {
    fn report_data(&self) -> &[u8] {
        &self.qualifying_data
    }

    fn carries(&self, value: &[u8; 64]) -> bool {
        crate::binding::carried_as_prefix(value, &self.qualifying_data)
    }

    fn validity(&self) -> crate::time::Validity {
        crate::time::Validity::ALWAYS
    }

    fn facts(&self) -> crate::policy::facts::Facts {
        crate::policy::facts::Facts::Tpm(crate::policy::facts::TpmFacts {
            pcrs: self.pcrs.clone(),
            ak_spki_sha256: self.ak_fingerprint,
            ak_anchor: self.ak_anchor,
            boot: self.boot.clone(),
        })
    }

    fn claims(&self) -> crate::verify::EvidenceClaims {
        crate::verify::EvidenceClaims::Tpm(VerifiedTpmQuote::claims(self))
    }
}
