//! The verifier's certificate authority: a self-signed ECDSA P-256 CA certificate, and short-lived
//! leaf certificates for attested enclave TLS keys carrying the attestation extensions
//! ([`crate::certext`]). Written with our own DER writer because the extension OIDs are UUID arcs
//! (over 64 bits) that common certificate builders cannot encode.
//!
//! A leaf is issued only by [`CertificateAuthority::issue`], from a result signed for a
//! key-release appraisal ([`SignedResult`]): the key, the evidence and the allowed names all come
//! from that appraisal, none from loose arguments. Evidence bound to a session or to a raw value
//! cannot get there:
//! ```compile_fail
//! use confidant_attestation::binding::Session;
//! use confidant_attestation::policy::Appraisal;
//! use confidant_attestation::result::ResultSigner;
//! fn sign(s: &ResultSigner, a: &Appraisal<Session>, rng: &dyn ring::rand::SecureRandom) {
//!     let _ = s.sign_appraisal(a, "iss", "aud", 0, 60, rng);
//! }
//! ```
//! ```compile_fail
//! use confidant_attestation::leafcert::CertificateAuthority;
//! use confidant_attestation::policy::RawAppraisal;
//! fn issue(ca: &CertificateAuthority, a: &RawAppraisal, rng: &dyn ring::rand::SecureRandom) {
//!     let _ = ca.issue(a, &[], 0, 60, rng);
//! }
//! ```
//! What compiles is the key-release path:
//! ```no_run
//! use confidant_attestation::binding::KeyRelease;
//! use confidant_attestation::leafcert::{CaError, CertificateAuthority};
//! use confidant_attestation::names::SubjectName;
//! use confidant_attestation::policy::Appraisal;
//! use confidant_attestation::result::ResultSigner;
//! fn issue(
//!     ca: &CertificateAuthority,
//!     signer: &ResultSigner,
//!     a: &Appraisal<KeyRelease>,
//!     names: &[SubjectName],
//!     rng: &dyn ring::rand::SecureRandom,
//! ) -> Option<Vec<u8>> {
//!     let result = signer.sign_appraisal(a, "iss", "aud", 0, 60, rng).ok()?;
//!     ca.issue(&result, names, 0, 60, rng).ok()
//! }
//! ```

use std::net::IpAddr;

use ring::rand::SecureRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use zeroize::Zeroizing;

use crate::certext::{EVIDENCE_OID, RESULT_OID};
use crate::der_writer as der;
use crate::names::SubjectName;
use crate::policy::MAX_TLS_NAMES;
use crate::result::SignedResult;

const ECDSA_WITH_SHA256: &[u128] = &[1, 2, 840, 10045, 4, 3, 2];
const ID_EC_PUBLIC_KEY: &[u128] = &[1, 2, 840, 10045, 2, 1];
const PRIME256V1: &[u128] = &[1, 2, 840, 10045, 3, 1, 7];
const CN: &[u128] = &[2, 5, 4, 3];
const ORG: &[u128] = &[2, 5, 4, 10];
const BASIC_CONSTRAINTS: &[u128] = &[2, 5, 29, 19];
const KEY_USAGE: &[u128] = &[2, 5, 29, 15];
const EXT_KEY_USAGE: &[u128] = &[2, 5, 29, 37];
const SUBJECT_ALT_NAME: &[u128] = &[2, 5, 29, 17];
const SUBJECT_KEY_ID: &[u128] = &[2, 5, 29, 14];
const AUTHORITY_KEY_ID: &[u128] = &[2, 5, 29, 35];
const SERVER_AUTH: &[u128] = &[1, 3, 6, 1, 5, 5, 7, 3, 1];

/// Why a certificate could not be issued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaError {
    #[error("CA private key is not a valid PKCS#8 ECDSA P-256 key")]
    BadKey,
    #[error("random number generator failed")]
    Rng,
    #[error("signing failed")]
    Signing,
    #[error("subject public key info is not valid DER")]
    BadSpki,
    #[error("validity period is empty")]
    BadValidity,
    #[error("the certificate name {name} is not among the appraised model's tls_names")]
    NameNotAllowed { name: String },
    #[error("more than {MAX_TLS_NAMES} certificate names")]
    TooManyNames,
}

/// A certificate authority holding its signing key (PKCS#8 bytes are zeroized on drop).
pub struct CertificateAuthority {
    key: EcdsaKeyPair,
    cert_der: Vec<u8>,
    subject_der: Vec<u8>,
    key_id: [u8; 20],
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("key_id", &hex::encode(self.key_id))
            .finish_non_exhaustive()
    }
}

impl CertificateAuthority {
    /// Generates a fresh CA key (PKCS#8) and returns it; the caller stores it as a secret.
    pub fn generate_key(rng: &dyn SecureRandom) -> Result<Zeroizing<Vec<u8>>, CaError> {
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, rng)
            .map_err(|_| CaError::Rng)?;
        Ok(Zeroizing::new(doc.as_ref().to_vec()))
    }

    /// Loads the CA from its key and issues its self-signed certificate, valid for the given
    /// period. The certificate is deterministic for a given key, name and period.
    pub fn new(
        pkcs8: &[u8],
        common_name: &str,
        not_before: u64,
        not_after: u64,
        rng: &dyn SecureRandom,
    ) -> Result<Self, CaError> {
        if not_after <= not_before {
            return Err(CaError::BadValidity);
        }
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8, rng)
            .map_err(|_| CaError::BadKey)?;
        let key_id = key_identifier(key.public_key().as_ref());
        let subject_der = name(common_name);
        let spki = p256_spki(key.public_key().as_ref());
        let extensions = [
            extension(BASIC_CONSTRAINTS, true, &der::seq(&[&der::boolean(true)])),
            // keyCertSign (bit 5) | cRLSign (bit 6): 0b0000_0110 with 1 unused bit
            extension(KEY_USAGE, true, &der::tlv(0x03, &[1, 0x06])),
            extension(SUBJECT_KEY_ID, false, &der::octet_string(&key_id)),
        ];
        let serial = serial_from(&key_id, not_before);
        let tbs = tbs(
            &serial,
            &subject_der,
            &subject_der,
            not_before,
            not_after,
            &spki,
            &extensions,
        );
        let cert_der = sign(&key, &tbs, rng)?;
        Ok(CertificateAuthority {
            key,
            cert_der,
            subject_der,
            key_id,
        })
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> String {
        pem::encode(&pem::Pem::new("CERTIFICATE", self.cert_der.clone()))
    }

    /// Issues a leaf certificate for the TLS key a key-release appraisal is bound to, carrying
    /// the result signed for it and the evidence bytes as received, for `names` (each must be one
    /// of the model's `tls_names`), valid from `not_before` to `not_after` but never past the
    /// result's expiry.
    pub fn issue(
        &self,
        result: &SignedResult<'_>,
        names: &[SubjectName],
        not_before: u64,
        not_after: u64,
        rng: &dyn SecureRandom,
    ) -> Result<Vec<u8>, CaError> {
        let appraisal = result.appraisal();
        if names.len() > MAX_TLS_NAMES {
            return Err(CaError::TooManyNames);
        }
        if let Some(name) = names.iter().find(|n| !appraisal.tls_names().contains(n)) {
            return Err(CaError::NameNotAllowed {
                name: name.to_string(),
            });
        }
        let not_after = not_after.min(result.claims().exp);
        if not_after <= not_before {
            return Err(CaError::BadValidity);
        }
        let spki_der = appraisal.tls_spki_der();
        if x509_parser::x509::SubjectPublicKeyInfo::from_der(spki_der).is_err() {
            return Err(CaError::BadSpki);
        }
        let mut serial = [0u8; 16];
        rng.fill(&mut serial).map_err(|_| CaError::Rng)?;
        serial[0] &= 0x7f;
        let mut san = Vec::new();
        for name in names {
            match name {
                SubjectName::Dns(d) => san.extend(der::implicit_primitive(2, d.as_bytes())),
                SubjectName::Ip(IpAddr::V4(v4)) => {
                    san.extend(der::implicit_primitive(7, &v4.octets()))
                }
                SubjectName::Ip(IpAddr::V6(v6)) => {
                    san.extend(der::implicit_primitive(7, &v6.octets()))
                }
            }
        }
        let mut extensions = vec![
            extension(BASIC_CONSTRAINTS, true, &der::seq(&[])),
            // digitalSignature (bit 0): 0b1000_0000 with 7 unused bits
            extension(KEY_USAGE, true, &der::tlv(0x03, &[7, 0x80])),
            extension(EXT_KEY_USAGE, false, &der::seq(&[&der::oid(SERVER_AUTH)])),
            extension(
                AUTHORITY_KEY_ID,
                false,
                &der::seq(&[&der::implicit_primitive(0, &self.key_id)]),
            ),
            extension(RESULT_OID, false, &der::octet_string(result.bytes())),
            extension(
                EVIDENCE_OID,
                false,
                &der::octet_string(appraisal.evidence_bytes()),
            ),
        ];
        if !san.is_empty() {
            extensions.push(extension(SUBJECT_ALT_NAME, false, &der::tlv(0x30, &san)));
        }
        let tbs = tbs(
            &serial,
            &self.subject_der,
            &name("confidant-enclave"),
            not_before,
            not_after,
            spki_der,
            &extensions,
        );
        sign(&self.key, &tbs, rng)
    }
}

use x509_parser::prelude::FromDer;

fn name(common_name: &str) -> Vec<u8> {
    let cn = der::set(&[&der::seq(&[&der::oid(CN), &der::utf8(common_name)])]);
    let o = der::set(&[&der::seq(&[&der::oid(ORG), &der::utf8("Confidant")])]);
    der::seq(&[&o, &cn])
}

fn p256_spki(public_point: &[u8]) -> Vec<u8> {
    der::seq(&[
        &der::seq(&[&der::oid(ID_EC_PUBLIC_KEY), &der::oid(PRIME256V1)]),
        &der::bit_string(public_point),
    ])
}

fn key_identifier(public_point: &[u8]) -> [u8; 20] {
    let d = ring::digest::digest(&ring::digest::SHA256, public_point);
    let mut out = [0u8; 20];
    out.copy_from_slice(&d.as_ref()[..20]);
    out
}

fn serial_from(key_id: &[u8; 20], not_before: u64) -> Vec<u8> {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(key_id);
    ctx.update(&not_before.to_be_bytes());
    let mut s = ctx.finish().as_ref()[..16].to_vec();
    s[0] &= 0x7f;
    s
}

fn extension(oid: &[u128], critical: bool, value: &[u8]) -> Vec<u8> {
    if critical {
        der::seq(&[
            &der::oid(oid),
            &der::boolean(true),
            &der::octet_string(value),
        ])
    } else {
        der::seq(&[&der::oid(oid), &der::octet_string(value)])
    }
}

fn tbs(
    serial: &[u8],
    issuer: &[u8],
    subject: &[u8],
    not_before: u64,
    not_after: u64,
    spki: &[u8],
    extensions: &[Vec<u8>],
) -> Vec<u8> {
    let exts: Vec<&[u8]> = extensions.iter().map(Vec::as_slice).collect();
    der::seq(&[
        &der::explicit(0, &der::uint(&[2])),
        &der::uint(serial),
        &der::seq(&[&der::oid(ECDSA_WITH_SHA256)]),
        issuer,
        &der::seq(&[&der::time(not_before), &der::time(not_after)]),
        subject,
        spki,
        &der::explicit(3, &der::seq(&exts)),
    ])
}

fn sign(key: &EcdsaKeyPair, tbs: &[u8], rng: &dyn SecureRandom) -> Result<Vec<u8>, CaError> {
    let sig = key.sign(rng, tbs).map_err(|_| CaError::Signing)?;
    Ok(der::seq(&[
        tbs,
        &der::seq(&[&der::oid(ECDSA_WITH_SHA256)]),
        &der::bit_string(sig.as_ref()),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use x509_parser::prelude::*;

    const NOW: u64 = 1_795_448_964;

    #[test]
    fn ca_certificate_parses_and_self_verifies() {
        let rng = SystemRandom::new();
        let key = CertificateAuthority::generate_key(&rng).unwrap();
        let ca = CertificateAuthority::new(&key, "Confidant test CA", NOW - 60, NOW + 86_400, &rng)
            .unwrap();
        let (_, cert) = X509Certificate::from_der(ca.cert_der()).unwrap();
        assert!(cert.is_ca());
        cert.verify_signature(None).unwrap();
        assert!(ca.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
        crate::der_strict::check_certificate(ca.cert_der()).unwrap();
    }

    #[test]
    fn bad_inputs_are_refused() {
        let rng = SystemRandom::new();
        assert_eq!(
            CertificateAuthority::new(b"not a key", "x", 0, 1, &rng).err(),
            Some(CaError::BadKey)
        );
        let key = CertificateAuthority::generate_key(&rng).unwrap();
        assert_eq!(
            CertificateAuthority::new(&key, "x", 5, 5, &rng).err(),
            Some(CaError::BadValidity)
        );
    }
}
