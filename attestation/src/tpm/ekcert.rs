//! Endorsement key certificates (TCG EK Credential Profile): an untrusted DER certificate read
//! from the TPM's NV index (`0x01c00002` for the RSA-2048 EK) is accepted only if it is strict DER
//! with its outer signature algorithm equal to the signed one ([`crate::der_strict`]), chains to a
//! CA certificate the policy names (each also strict DER), every certificate on the way is valid
//! at the time the caller passes in (this crate reads no clock), and each issuer is a CA.
//!
//! Every policy CA certificate is a trust anchor; when an anchor's own issuer is also listed, the
//! path continues through it (so listing an intermediate and its root checks both). Signatures are
//! checked with `ring` (through x509-parser's `verify`): RSA PKCS#1 v1.5 and PSS with SHA-256/384/
//! 512, ECDSA P-256/P-384; SHA-1 signatures are refused.

use x509_parser::oid_registry::OID_PKCS1_SHA1WITHRSA;
use x509_parser::prelude::{ASN1Time, FromDer, X509Certificate};
use x509_parser::public_key::PublicKey as X509PublicKey;

use super::public::{PublicKey, TpmtPublic};
use crate::time::UnixTime;

/// Longest path from the EK certificate to an anchor that is followed.
const MAX_DEPTH: usize = 4;
/// Largest certificate accepted (an EK NV index holds a few kilobytes at most).
const MAX_CERT: usize = 16 * 1024;

/// Why an EK certificate was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EkCertError {
    #[error("the {0} is not a well-formed DER X.509 certificate")]
    Malformed(&'static str),
    #[error("no EK CA is configured")]
    NoCa,
    #[error("the EK certificate does not chain to a configured EK CA")]
    UntrustedIssuer,
    #[error("the {0} is not valid at the verification time")]
    Expired(&'static str),
    #[error("the {0} uses a SHA-1 signature")]
    WeakSignature(&'static str),
    #[error("the EK certificate's key is neither RSA nor ECC P-256")]
    UnsupportedKey,
    #[error("the endorsement key does not match the EK certificate's key")]
    KeyMismatch,
}

/// The key an EK certificate certifies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EkKey {
    /// RSA: big-endian modulus (no leading zeros) and exponent.
    Rsa { modulus: Vec<u8>, exponent: u32 },
    /// ECC P-256 point.
    EccP256 { x: [u8; 32], y: [u8; 32] },
}

/// An EK certificate that chained to a policy CA. Only [`verify_ek_certificate`] makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedEkCert {
    key: EkKey,
    fingerprint: [u8; 32],
    anchor_fingerprint: [u8; 32],
}

impl VerifiedEkCert {
    /// The certified endorsement key.
    pub fn key(&self) -> &EkKey {
        &self.key
    }

    /// SHA-256 of the EK certificate's DER.
    pub fn fingerprint(&self) -> [u8; 32] {
        self.fingerprint
    }

    /// SHA-256 of the DER of the policy CA that issued it.
    pub fn anchor_fingerprint(&self) -> [u8; 32] {
        self.anchor_fingerprint
    }

    /// Checks that `ek_public` (a marshalled `TPMT_PUBLIC`) is the certified key.
    pub fn matches(&self, ek_public: &TpmtPublic) -> Result<(), EkCertError> {
        let same = match (&self.key, &ek_public.key) {
            (
                EkKey::Rsa { modulus, exponent },
                PublicKey::Rsa {
                    modulus: m,
                    exponent: e,
                    ..
                },
            ) => strip_zeros(m) == modulus.as_slice() && e == exponent,
            (EkKey::EccP256 { x, y }, PublicKey::EccP256 { x: x2, y: y2 }) => x == x2 && y == y2,
            _ => false,
        };
        if same {
            Ok(())
        } else {
            Err(EkCertError::KeyMismatch)
        }
    }
}

fn strip_zeros(v: &[u8]) -> &[u8] {
    let first = v.iter().position(|b| *b != 0).unwrap_or(v.len());
    v.get(first..).unwrap_or_default()
}

fn parse<'a>(der: &'a [u8], what: &'static str) -> Result<X509Certificate<'a>, EkCertError> {
    if der.len() > MAX_CERT {
        return Err(EkCertError::Malformed(what));
    }
    crate::der_strict::check_certificate(der).map_err(|_| EkCertError::Malformed(what))?;
    match X509Certificate::from_der(der) {
        Ok(([], cert)) => Ok(cert),
        _ => Err(EkCertError::Malformed(what)),
    }
}

fn check_alg(cert: &X509Certificate<'_>, what: &'static str) -> Result<(), EkCertError> {
    let alg = &cert.signature_algorithm.algorithm;
    // ECDSA with SHA-1 has no ring verifier, so it fails the signature check anyway.
    if *alg == OID_PKCS1_SHA1WITHRSA {
        return Err(EkCertError::WeakSignature(what));
    }
    Ok(())
}

/// Verifies `ek_cert_der` against the policy's EK CA certificates `ca_certs_der` at `now`, and
/// returns the certified key.
pub fn verify_ek_certificate(
    ek_cert_der: &[u8],
    ca_certs_der: &[Vec<u8>],
    now: UnixTime,
) -> Result<VerifiedEkCert, EkCertError> {
    if ca_certs_der.is_empty() {
        return Err(EkCertError::NoCa);
    }
    let now = i64::try_from(now.as_secs())
        .ok()
        .and_then(|t| ASN1Time::from_timestamp(t).ok())
        .ok_or(EkCertError::Expired("EK certificate"))?;
    let ek = parse(ek_cert_der, "EK certificate")?;
    check_alg(&ek, "EK certificate")?;
    if !ek.validity().is_valid_at(now) {
        return Err(EkCertError::Expired("EK certificate"));
    }
    let cas = ca_certs_der
        .iter()
        .map(|der| parse(der, "EK CA certificate").map(|c| (der, c)))
        .collect::<Result<Vec<_>, _>>()?;

    // The EK certificate's issuer: a policy CA whose subject matches and whose key verifies it.
    let issuer_of = |cert: &X509Certificate<'_>| {
        cas.iter().position(|(_, ca)| {
            ca.subject().as_raw() == cert.issuer().as_raw()
                && ca.is_ca()
                && cert.verify_signature(Some(ca.public_key())).is_ok()
        })
    };
    let first = issuer_of(&ek).ok_or(EkCertError::UntrustedIssuer)?;
    let mut current = first;
    for _ in 0..MAX_DEPTH {
        let (_, ca) = &cas[current];
        check_alg(ca, "EK CA certificate")?;
        if !ca.validity().is_valid_at(now) {
            return Err(EkCertError::Expired("EK CA certificate"));
        }
        if ca.subject().as_raw() == ca.issuer().as_raw() {
            break; // a self-signed root: the end of the path
        }
        match issuer_of(ca) {
            Some(next) if next != current => current = next,
            // The anchor's issuer is not listed: the listed certificate is the anchor.
            _ => break,
        }
    }

    let key = match ek.public_key().parsed() {
        Ok(X509PublicKey::RSA(rsa)) => {
            let e = strip_zeros(rsa.exponent);
            if e.is_empty() || e.len() > 4 {
                return Err(EkCertError::UnsupportedKey);
            }
            let exponent = e.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b));
            EkKey::Rsa {
                modulus: strip_zeros(rsa.modulus).to_vec(),
                exponent,
            }
        }
        Ok(X509PublicKey::EC(point)) => {
            let data = point.data();
            if data.len() != 65 || data[0] != 0x04 {
                return Err(EkCertError::UnsupportedKey);
            }
            let mut x = [0u8; 32];
            let mut y = [0u8; 32];
            x.copy_from_slice(&data[1..33]);
            y.copy_from_slice(&data[33..65]);
            EkKey::EccP256 { x, y }
        }
        _ => return Err(EkCertError::UnsupportedKey),
    };
    Ok(VerifiedEkCert {
        key,
        fingerprint: super::public::sha256(ek_cert_der),
        anchor_fingerprint: super::public::sha256(cas[first].0),
    })
}
