//! The attestation result: a CWT (RFC 8392) in a tagged COSE_Sign1 (RFC 9052, tag 18), signed
//! ES256 (ECDSA P-256 / SHA-256, COSE alg -7), claims in the spirit of EAR
//! (draft-ietf-rats-ear); the claim keys are listed in [`claims`].
//!
//! Protected header: `alg` (-7) and `kid` (the RFC 7638 thumbprint of the signing key), nothing
//! else; the unprotected header is empty. [`ResultVerifier::verify`] checks, in order: size, COSE
//! structure, headers (alg, no crit, kid), the signature over the received bytes, the claims'
//! shape, then time (`exp`, `iat`/`nbf` with [`MAX_CLOCK_SKEW_SECS`]) and audience. Time is always
//! passed in.

use coset::{
    CborSerializable, CoseSign1, CoseSign1Builder, HeaderBuilder, TaggedCborSerializable, iana,
};
use ring::rand::SecureRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};

pub mod claims;
mod keys;
#[cfg(test)]
mod tests;

pub use crate::policy::{Status, TeeKind};
pub use claims::{PROFILE, ResultClaims};
pub use keys::{Jwk, ResultSigner, ResultVerifier};

use crate::binding::KeyRelease;
use crate::policy::Appraisal;

/// Largest encoded result accepted (a result is a few hundred bytes).
pub const MAX_RESULT_BYTES: usize = 16 * 1024;
/// How far `iat` / `nbf` may lie in the verifier's future.
pub const MAX_CLOCK_SKEW_SECS: u64 = 60;

/// Why a result could not be made or was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResultError {
    #[error("input is {0} bytes, over the limit")]
    TooLarge(usize),
    #[error("not a well-formed attestation result: {0}")]
    Malformed(&'static str),
    #[error("claim {0} is missing")]
    MissingClaim(&'static str),
    #[error("the result is not signed with ES256")]
    UnsupportedAlgorithm,
    #[error("the result is signed by another key")]
    UnknownKey,
    #[error("the result's signature does not verify")]
    BadSignature,
    #[error("the result has expired")]
    Expired,
    #[error("the result is not valid yet (issued in the future)")]
    NotYetValid,
    #[error("the result is for another audience")]
    WrongAudience,
    #[error("invalid key: {0}")]
    InvalidKey(&'static str),
    #[error("claims cannot be signed: {0}")]
    InvalidClaims(&'static str),
    #[error("encoding or signing failed")]
    Encoding,
}

impl ResultError {
    /// Stable reason code (snake_case) for the wire and the audit log.
    pub fn code(&self) -> &'static str {
        match self {
            ResultError::TooLarge(_) => "result_too_large",
            ResultError::Malformed(_) => "result_malformed",
            ResultError::MissingClaim(_) => "result_missing_claim",
            ResultError::UnsupportedAlgorithm => "result_unsupported_algorithm",
            ResultError::UnknownKey => "result_unknown_key",
            ResultError::BadSignature => "result_bad_signature",
            ResultError::Expired => "result_expired",
            ResultError::NotYetValid => "result_not_yet_valid",
            ResultError::WrongAudience => "result_wrong_audience",
            ResultError::InvalidKey(_) => "result_invalid_key",
            ResultError::InvalidClaims(_) => "result_invalid_claims",
            ResultError::Encoding => "result_encoding",
        }
    }
}

/// A result whose signature, shape, time and audience checked out. Only
/// [`ResultVerifier::verify`] makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedResult {
    claims: ResultClaims,
    kid: [u8; 32],
}

impl VerifiedResult {
    pub fn claims(&self) -> &ResultClaims {
        &self.claims
    }

    pub fn into_claims(self) -> ResultClaims {
        self.claims
    }

    /// Id of the key that signed it.
    pub fn kid(&self) -> &[u8; 32] {
        &self.kid
    }
}

/// A result signed for one key-release appraisal, borrowing it: what certificate issuance
/// ([`crate::leafcert::CertificateAuthority::issue`]) and key release
/// ([`crate::keywrap::release`]) take, so the certificate, the result and the wrapped key all
/// describe the same appraisal. Only [`ResultSigner::sign_appraisal`] makes one.
#[derive(Debug)]
pub struct SignedResult<'a> {
    appraisal: &'a Appraisal<KeyRelease>,
    claims: ResultClaims,
    bytes: Vec<u8>,
    digest: [u8; 32],
}

impl<'a> SignedResult<'a> {
    /// The appraisal the result was signed for.
    pub fn appraisal(&self) -> &'a Appraisal<KeyRelease> {
        self.appraisal
    }

    /// The signed claims.
    pub fn claims(&self) -> &ResultClaims {
        &self.claims
    }

    /// The tagged COSE_Sign1 bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// SHA-256 of [`SignedResult::bytes`].
    pub fn digest(&self) -> &[u8; 32] {
        &self.digest
    }
}

impl ResultSigner {
    /// Signs the result of a key-release appraisal: its claims
    /// ([`ResultClaims::from_appraisal`]), valid from `now` for `ttl` seconds.
    pub fn sign_appraisal<'a>(
        &self,
        appraisal: &'a Appraisal<KeyRelease>,
        iss: &str,
        aud: &str,
        now: u64,
        ttl: u64,
        rng: &dyn SecureRandom,
    ) -> Result<SignedResult<'a>, ResultError> {
        let claims = ResultClaims::from_appraisal(appraisal, iss, aud, now, ttl);
        let bytes = self.sign(&claims, rng)?;
        let d = ring::digest::digest(&ring::digest::SHA256, &bytes);
        let mut digest = [0u8; 32];
        digest.copy_from_slice(d.as_ref());
        Ok(SignedResult {
            appraisal,
            claims,
            bytes,
            digest,
        })
    }

    /// Signs `claims` as a tagged COSE_Sign1 CWT. Refuses claims that expire before they are
    /// issued.
    pub fn sign(
        &self,
        claims: &ResultClaims,
        rng: &dyn SecureRandom,
    ) -> Result<Vec<u8>, ResultError> {
        if claims.exp <= claims.iat {
            return Err(ResultError::InvalidClaims("exp is not after iat"));
        }
        let payload = claims
            .to_claims_set()?
            .to_vec()
            .map_err(|_| ResultError::Encoding)?;
        let protected = HeaderBuilder::new()
            .algorithm(iana::Algorithm::ES256)
            .key_id(self.kid().to_vec())
            .build();
        let sign1 = CoseSign1Builder::new()
            .protected(protected)
            .payload(payload)
            .try_create_signature(b"", |tbs| {
                self.key
                    .sign(rng, tbs)
                    .map(|s| s.as_ref().to_vec())
                    .map_err(|_| ResultError::Encoding)
            })?
            .build();
        let out = sign1.to_tagged_vec().map_err(|_| ResultError::Encoding)?;
        if out.len() > MAX_RESULT_BYTES {
            return Err(ResultError::InvalidClaims("result over the size limit"));
        }
        Ok(out)
    }
}

impl ResultVerifier {
    /// Verifies an encoded result for `expected_aud` at `now_unix` (seconds). Never panics.
    pub fn verify(
        &self,
        bytes: &[u8],
        expected_aud: &str,
        now_unix: u64,
    ) -> Result<VerifiedResult, ResultError> {
        if bytes.len() > MAX_RESULT_BYTES {
            return Err(ResultError::TooLarge(bytes.len()));
        }
        let sign1 = CoseSign1::from_tagged_slice(bytes)
            .map_err(|_| ResultError::Malformed("not a tagged COSE_Sign1"))?;

        let h = &sign1.protected.header;
        if h.alg != Some(coset::Algorithm::Assigned(iana::Algorithm::ES256)) {
            return Err(ResultError::UnsupportedAlgorithm);
        }
        if !sign1.unprotected.is_empty() {
            return Err(ResultError::Malformed("unprotected header is not empty"));
        }
        if !h.crit.is_empty()
            || h.content_type.is_some()
            || !h.iv.is_empty()
            || !h.partial_iv.is_empty()
            || !h.counter_signatures.is_empty()
            || !h.rest.is_empty()
        {
            return Err(ResultError::Malformed(
                "unexpected protected header parameter",
            ));
        }
        if h.key_id != self.kid {
            return Err(ResultError::UnknownKey);
        }
        let key = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &self.sec1);
        sign1.verify_signature(b"", |sig, tbs| {
            key.verify(tbs, sig).map_err(|_| ResultError::BadSignature)
        })?;

        let payload = sign1
            .payload
            .ok_or(ResultError::Malformed("detached payload"))?;
        let set = coset::cwt::ClaimsSet::from_slice(&payload)
            .map_err(|_| ResultError::Malformed("payload is not a CWT claims set"))?;
        let (claims, nbf) = ResultClaims::from_claims_set(set)?;

        let horizon = now_unix.saturating_add(MAX_CLOCK_SKEW_SECS);
        if claims.iat > horizon || nbf.is_some_and(|n| n > horizon) {
            return Err(ResultError::NotYetValid);
        }
        if now_unix >= claims.exp {
            return Err(ResultError::Expired);
        }
        if claims.aud != expected_aud {
            return Err(ResultError::WrongAudience);
        }
        Ok(VerifiedResult {
            claims,
            kid: self.kid,
        })
    }
}
