//! [`ResultClaims`] and their CWT (RFC 8392) claim keys.
//!
//! | claim | key | CBOR type |
//! |---|---|---|
//! | iss | 1 (RFC 8392) | tstr |
//! | aud | 3 (RFC 8392) | tstr |
//! | exp | 4 (RFC 8392) | uint, seconds since the Unix epoch |
//! | nbf | 5 (RFC 8392) | uint; never emitted, checked if present |
//! | iat | 6 (RFC 8392) | uint |
//! | nonce | 10 (`Nonce`, RFC 9200 / EAT `eat_nonce`) | bstr .size 32, optional |
//! | eat_profile | 265 (EAT, RFC 9711) | tstr, always [`PROFILE`] |
//! | status | -70000 (private) | uint: EAR trust tier, 2 affirming / 32 warning / 96 contraindicated |
//! | tee | -70001 (private) | tstr: `"sev-snp"` or `"tpm"` |
//! | measurement | -70002 (private) | bstr: SNP MEASUREMENT (48) or TPM PCR composite (32) |
//! | tcb | -70003 (private) | map {1: bootloader, 2: tee, 3: snp, 4: microcode, ? 5: fmc}, SNP only |
//! | policy_id | -70004 (private) | tstr |
//! | policy_version | -70005 (private) | uint |
//! | model_id | -70006 (private) | tstr |
//! | model_digest | -70007 (private) | bstr .size 32 |
//! | tls_spki_sha256 | -70008 (private) | bstr .size 32 |
//! | evidence_digest | -70009 (private) | bstr .size 32 |
//! | dev | -70010 (private) | bool |
//! | tpm_ak_spki_sha256 | -70011 (private) | bstr .size 32, TPM only: the attestation key the verifier accepted |
//! | mask_chip_id | -70012 (private) | `true`, SEV-SNP only, present only when the report's `CHIP_ID` is masked (all zero) and the policy allowed it |
//! | mask_chip_key | -70013 (private) | `true`, SEV-SNP only, present only when the report has `MASK_CHIP_KEY` set and the policy allowed it |
//!
//! Private keys sit below -65536 (the CWT registry's private-use range), so they never collide
//! with registered claims. The profile claim versions the whole set: decoding rejects any other
//! profile and any claim not listed here.

use coset::cbor::value::Value;
use coset::cwt::{ClaimName, ClaimsSet, Timestamp};
use coset::iana;

use super::ResultError;
use crate::binding::KeyRelease;
use crate::digest::Blake3Digest;
use crate::policy::{Appraisal, Status, TeeKind};
use crate::snp::TcbVersion;

/// `eat_profile` of every Confidant attestation result.
pub const PROFILE: &str = "urn:confidant:attestation-result:v1";

/// Private claim keys (see the module table).
pub mod keys {
    pub const STATUS: i64 = -70000;
    pub const TEE: i64 = -70001;
    pub const MEASUREMENT: i64 = -70002;
    pub const TCB: i64 = -70003;
    pub const POLICY_ID: i64 = -70004;
    pub const POLICY_VERSION: i64 = -70005;
    pub const MODEL_ID: i64 = -70006;
    pub const MODEL_DIGEST: i64 = -70007;
    pub const TLS_SPKI_SHA256: i64 = -70008;
    pub const EVIDENCE_DIGEST: i64 = -70009;
    pub const DEV: i64 = -70010;
    pub const TPM_AK_SPKI_SHA256: i64 = -70011;
    pub const MASK_CHIP_ID: i64 = -70012;
    pub const MASK_CHIP_KEY: i64 = -70013;
}

/// The claims of an attestation result, typed. `iat`/`exp` are seconds since the Unix epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultClaims {
    pub iss: String,
    pub aud: String,
    pub iat: u64,
    pub exp: u64,
    pub status: Status,
    pub tee: TeeKind,
    pub measurement: Vec<u8>,
    pub tcb: Option<TcbVersion>,
    pub policy_id: String,
    pub policy_version: u64,
    pub model_id: String,
    pub model_digest: Blake3Digest,
    pub tls_spki_sha256: [u8; 32],
    pub evidence_digest: [u8; 32],
    pub dev: bool,
    pub nonce: Option<[u8; 32]>,
    /// TPM only: SHA-256 of the DER SubjectPublicKeyInfo of the attestation key whose quote the
    /// verifier accepted (enrolled, or proven by credential activation against a trusted EK). A
    /// relying party checks session evidence from this enclave against exactly this key.
    pub tpm_ak_spki_sha256: Option<[u8; 32]>,
    /// SEV-SNP: the report's `CHIP_ID` was masked (all zero) and the policy allowed it.
    pub mask_chip_id: bool,
    /// SEV-SNP: the report had `MASK_CHIP_KEY` set and the policy allowed it.
    pub mask_chip_key: bool,
}

impl ResultClaims {
    /// The claims for a key-release appraisal: valid from `now` for `ttl` seconds, naming the TLS
    /// key the evidence was bound to. `nonce` starts as `None`; set it for results answering a
    /// client nonce.
    pub fn from_appraisal(
        appraisal: &Appraisal<KeyRelease>,
        iss: &str,
        aud: &str,
        now: u64,
        ttl: u64,
    ) -> Self {
        let spki = ring::digest::digest(&ring::digest::SHA256, appraisal.tls_spki_der());
        let mut tls_spki_sha256 = [0u8; 32];
        tls_spki_sha256.copy_from_slice(spki.as_ref());
        ResultClaims {
            iss: iss.to_string(),
            aud: aud.to_string(),
            iat: now,
            exp: now.saturating_add(ttl),
            status: appraisal.status(),
            tee: appraisal.tee(),
            measurement: appraisal.measurement().to_vec(),
            tcb: appraisal.tcb().copied(),
            policy_id: appraisal.policy_id().to_string(),
            policy_version: appraisal.policy_version(),
            model_id: appraisal.model_id().to_string(),
            model_digest: *appraisal.model_digest(),
            tls_spki_sha256,
            evidence_digest: *appraisal.evidence_digest(),
            dev: appraisal.is_dev(),
            nonce: None,
            tpm_ak_spki_sha256: appraisal.tpm_ak_spki_sha256(),
            mask_chip_id: appraisal.chip_id_masked(),
            mask_chip_key: appraisal.chip_key_masked(),
        }
    }

    pub(crate) fn to_claims_set(&self) -> Result<ClaimsSet, ResultError> {
        let time = |t: u64| {
            i64::try_from(t)
                .map(Timestamp::WholeSeconds)
                .map_err(|_| ResultError::InvalidClaims("timestamp out of range"))
        };
        let mut rest: Vec<(ClaimName, Value)> = Vec::new();
        if let Some(n) = self.nonce {
            rest.push((
                assigned(iana::CwtClaimName::Nonce),
                Value::Bytes(n.to_vec()),
            ));
        }
        rest.push((
            assigned(iana::CwtClaimName::EatProfile),
            Value::Text(PROFILE.to_string()),
        ));
        let private = [
            (keys::STATUS, Value::from(u64::from(self.status.tier()))),
            (keys::TEE, Value::Text(self.tee.as_str().to_string())),
            (keys::MEASUREMENT, Value::Bytes(self.measurement.clone())),
        ];
        rest.extend(
            private
                .into_iter()
                .map(|(k, v)| (ClaimName::PrivateUse(k), v)),
        );
        if let Some(t) = &self.tcb {
            rest.push((ClaimName::PrivateUse(keys::TCB), tcb_to_value(t)));
        }
        let private = [
            (keys::POLICY_ID, Value::Text(self.policy_id.clone())),
            (keys::POLICY_VERSION, Value::from(self.policy_version)),
            (keys::MODEL_ID, Value::Text(self.model_id.clone())),
            (
                keys::MODEL_DIGEST,
                Value::Bytes(self.model_digest.as_bytes().to_vec()),
            ),
            (
                keys::TLS_SPKI_SHA256,
                Value::Bytes(self.tls_spki_sha256.to_vec()),
            ),
            (
                keys::EVIDENCE_DIGEST,
                Value::Bytes(self.evidence_digest.to_vec()),
            ),
            (keys::DEV, Value::Bool(self.dev)),
        ];
        let ak = self
            .tpm_ak_spki_sha256
            .map(|fp| (keys::TPM_AK_SPKI_SHA256, Value::Bytes(fp.to_vec())));
        let masks = [
            (self.mask_chip_id, keys::MASK_CHIP_ID),
            (self.mask_chip_key, keys::MASK_CHIP_KEY),
        ]
        .into_iter()
        .filter(|(set, _)| *set)
        .map(|(_, k)| (k, Value::Bool(true)));
        rest.extend(
            private
                .into_iter()
                .chain(ak)
                .chain(masks)
                .map(|(k, v)| (ClaimName::PrivateUse(k), v)),
        );
        Ok(ClaimsSet {
            issuer: Some(self.iss.clone()),
            subject: None,
            audience: Some(self.aud.clone()),
            expiration_time: Some(time(self.exp)?),
            not_before: None,
            issued_at: Some(time(self.iat)?),
            cwt_id: None,
            rest,
        })
    }

    /// Decodes a claims set strictly: every required claim present, nothing unknown, exact sizes.
    /// Returns the claims and the optional `nbf`.
    pub(crate) fn from_claims_set(set: ClaimsSet) -> Result<(Self, Option<u64>), ResultError> {
        let m = ResultError::Malformed;
        if set.subject.is_some() || set.cwt_id.is_some() {
            return Err(m("unexpected registered claim"));
        }
        let nbf = set.not_before.map(time_value).transpose()?;
        let mut d = Decoded::default();
        for (name, value) in set.rest {
            match name {
                ClaimName::Assigned(iana::CwtClaimName::Nonce) => {
                    set_once(&mut d.nonce, bytes_n::<32>(value)?)?
                }
                ClaimName::Assigned(iana::CwtClaimName::EatProfile) => {
                    set_once(&mut d.profile, text(value)?)?
                }
                ClaimName::PrivateUse(keys::STATUS) => {
                    let tier = uint(value)?;
                    let s = Status::from_tier(tier).ok_or(m("unknown status"))?;
                    set_once(&mut d.status, s)?
                }
                ClaimName::PrivateUse(keys::TEE) => {
                    let tee = TeeKind::from_label(&text(value)?).ok_or(m("unknown tee"))?;
                    set_once(&mut d.tee, tee)?
                }
                ClaimName::PrivateUse(keys::MEASUREMENT) => {
                    set_once(&mut d.measurement, bytes(value)?)?
                }
                ClaimName::PrivateUse(keys::TCB) => set_once(&mut d.tcb, tcb_from_value(value)?)?,
                ClaimName::PrivateUse(keys::POLICY_ID) => set_once(&mut d.policy_id, text(value)?)?,
                ClaimName::PrivateUse(keys::POLICY_VERSION) => {
                    set_once(&mut d.policy_version, uint(value)?)?
                }
                ClaimName::PrivateUse(keys::MODEL_ID) => set_once(&mut d.model_id, text(value)?)?,
                ClaimName::PrivateUse(keys::MODEL_DIGEST) => set_once(
                    &mut d.model_digest,
                    Blake3Digest::from_bytes(bytes_n::<32>(value)?),
                )?,
                ClaimName::PrivateUse(keys::TLS_SPKI_SHA256) => {
                    set_once(&mut d.tls_spki_sha256, bytes_n::<32>(value)?)?
                }
                ClaimName::PrivateUse(keys::EVIDENCE_DIGEST) => {
                    set_once(&mut d.evidence_digest, bytes_n::<32>(value)?)?
                }
                ClaimName::PrivateUse(keys::TPM_AK_SPKI_SHA256) => {
                    set_once(&mut d.tpm_ak_spki_sha256, bytes_n::<32>(value)?)?
                }
                ClaimName::PrivateUse(keys::DEV) => match value {
                    Value::Bool(b) => set_once(&mut d.dev, b)?,
                    _ => return Err(m("dev is not a bool")),
                },
                ClaimName::PrivateUse(keys::MASK_CHIP_ID) => {
                    set_once(&mut d.mask_chip_id, only_true(value)?)?
                }
                ClaimName::PrivateUse(keys::MASK_CHIP_KEY) => {
                    set_once(&mut d.mask_chip_key, only_true(value)?)?
                }
                _ => return Err(m("unknown claim")),
            }
        }
        if d.profile.as_deref() != Some(PROFILE) {
            return Err(m("missing or unknown eat_profile"));
        }
        let claims = ResultClaims {
            iss: req(set.issuer, "iss")?,
            aud: req(set.audience, "aud")?,
            iat: time_value(req(set.issued_at, "iat")?)?,
            exp: time_value(req(set.expiration_time, "exp")?)?,
            status: req(d.status, "status")?,
            tee: req(d.tee, "tee")?,
            measurement: req(d.measurement, "measurement")?,
            tcb: d.tcb,
            policy_id: req(d.policy_id, "policy_id")?,
            policy_version: req(d.policy_version, "policy_version")?,
            model_id: req(d.model_id, "model_id")?,
            model_digest: req(d.model_digest, "model_digest")?,
            tls_spki_sha256: req(d.tls_spki_sha256, "tls_spki_sha256")?,
            evidence_digest: req(d.evidence_digest, "evidence_digest")?,
            dev: req(d.dev, "dev")?,
            nonce: d.nonce,
            tpm_ak_spki_sha256: d.tpm_ak_spki_sha256,
            mask_chip_id: d.mask_chip_id.is_some(),
            mask_chip_key: d.mask_chip_key.is_some(),
        };
        if claims.tpm_ak_spki_sha256.is_some() != (claims.tee == TeeKind::Tpm) {
            return Err(m("tpm_ak_spki_sha256 is present exactly for TPM results"));
        }
        if (claims.mask_chip_id || claims.mask_chip_key) && claims.tee != TeeKind::SevSnp {
            return Err(m("chip masks are SEV-SNP claims"));
        }
        Ok((claims, nbf))
    }
}

fn req<T>(o: Option<T>, what: &'static str) -> Result<T, ResultError> {
    o.ok_or(ResultError::MissingClaim(what))
}

#[derive(Default)]
struct Decoded {
    nonce: Option<[u8; 32]>,
    tpm_ak_spki_sha256: Option<[u8; 32]>,
    profile: Option<String>,
    status: Option<Status>,
    tee: Option<TeeKind>,
    measurement: Option<Vec<u8>>,
    tcb: Option<TcbVersion>,
    policy_id: Option<String>,
    policy_version: Option<u64>,
    model_id: Option<String>,
    model_digest: Option<Blake3Digest>,
    tls_spki_sha256: Option<[u8; 32]>,
    evidence_digest: Option<[u8; 32]>,
    dev: Option<bool>,
    mask_chip_id: Option<()>,
    mask_chip_key: Option<()>,
}

/// A flag claim: present means `true`; an explicit `false` is refused (one encoding per value).
fn only_true(v: Value) -> Result<(), ResultError> {
    match v {
        Value::Bool(true) => Ok(()),
        _ => Err(ResultError::Malformed(
            "a mask claim is present only as true",
        )),
    }
}

fn assigned(name: iana::CwtClaimName) -> ClaimName {
    ClaimName::Assigned(name)
}

/// coset already refuses duplicate claim keys; this keeps the decoder correct on its own.
fn set_once<T>(slot: &mut Option<T>, v: T) -> Result<(), ResultError> {
    if slot.is_some() {
        return Err(ResultError::Malformed("duplicate claim"));
    }
    *slot = Some(v);
    Ok(())
}

fn time_value(t: Timestamp) -> Result<u64, ResultError> {
    match t {
        Timestamp::WholeSeconds(s) => {
            u64::try_from(s).map_err(|_| ResultError::Malformed("negative timestamp"))
        }
        Timestamp::FractionalSeconds(_) => Err(ResultError::Malformed("fractional timestamp")),
    }
}

fn uint(v: Value) -> Result<u64, ResultError> {
    match v {
        Value::Integer(i) => u64::try_from(i).map_err(|_| ResultError::Malformed("integer range")),
        _ => Err(ResultError::Malformed("expected an unsigned integer")),
    }
}

fn text(v: Value) -> Result<String, ResultError> {
    match v {
        Value::Text(t) => Ok(t),
        _ => Err(ResultError::Malformed("expected a text string")),
    }
}

fn bytes(v: Value) -> Result<Vec<u8>, ResultError> {
    match v {
        Value::Bytes(b) => Ok(b),
        _ => Err(ResultError::Malformed("expected a byte string")),
    }
}

fn bytes_n<const N: usize>(v: Value) -> Result<[u8; N], ResultError> {
    bytes(v)?
        .try_into()
        .map_err(|_| ResultError::Malformed("byte string of the wrong length"))
}

fn tcb_to_value(t: &TcbVersion) -> Value {
    let mut m = vec![
        (Value::from(1u8), Value::from(t.bootloader)),
        (Value::from(2u8), Value::from(t.tee)),
        (Value::from(3u8), Value::from(t.snp)),
        (Value::from(4u8), Value::from(t.microcode)),
    ];
    if let Some(f) = t.fmc {
        m.push((Value::from(5u8), Value::from(f)));
    }
    Value::Map(m)
}

fn tcb_from_value(v: Value) -> Result<TcbVersion, ResultError> {
    let Value::Map(entries) = v else {
        return Err(ResultError::Malformed("tcb is not a map"));
    };
    let mut c: [Option<u8>; 5] = [None; 5];
    for (k, v) in entries {
        let k = uint(k)?;
        let v =
            u8::try_from(uint(v)?).map_err(|_| ResultError::Malformed("tcb component range"))?;
        let slot = usize::try_from(k)
            .ok()
            .and_then(|k| k.checked_sub(1))
            .and_then(|i| c.get_mut(i))
            .ok_or(ResultError::Malformed("unknown tcb component"))?;
        set_once(slot, v)?;
    }
    let [Some(bootloader), Some(tee), Some(snp), Some(microcode), fmc] = c else {
        return Err(ResultError::Malformed("tcb component missing"));
    };
    Ok(TcbVersion {
        bootloader,
        tee,
        snp,
        microcode,
        fmc,
    })
}
