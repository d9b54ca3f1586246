//! The verifier's certificate authority: a self-signed ECDSA P-256 CA certificate, and short-lived
//! leaf certificates for attested enclave TLS keys carrying the attestation extensions
//! ([`crate::certext`]). Written with our own DER writer because the extension OIDs are UUID arcs
//! (over 64 bits) that common certificate builders cannot encode.

use std::net::IpAddr;

use ring::rand::SecureRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use zeroize::Zeroizing;

use crate::certext::{EVIDENCE_OID, RESULT_OID};
use crate::der_writer as der;

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

/// What a leaf certificate says.
#[derive(Debug, Clone)]
pub struct LeafRequest<'a> {
    /// DER SubjectPublicKeyInfo of the enclave's TLS key.
    pub spki_der: &'a [u8],
    pub dns_names: &'a [String],
    pub ip_addresses: &'a [IpAddr],
    pub not_before: u64,
    pub not_after: u64,
    /// COSE_Sign1 attestation result.
    pub result: &'a [u8],
    /// CBOR evidence.
    pub evidence: &'a [u8],
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

    /// Issues a leaf certificate for an attested enclave key.
    pub fn issue_leaf(
        &self,
        req: &LeafRequest<'_>,
        rng: &dyn SecureRandom,
    ) -> Result<Vec<u8>, CaError> {
        if req.not_after <= req.not_before {
            return Err(CaError::BadValidity);
        }
        if x509_parser::x509::SubjectPublicKeyInfo::from_der(req.spki_der).is_err() {
            return Err(CaError::BadSpki);
        }
        let mut serial = [0u8; 16];
        rng.fill(&mut serial).map_err(|_| CaError::Rng)?;
        serial[0] &= 0x7f;
        let mut san = Vec::new();
        for d in req.dns_names {
            san.extend(der::implicit_primitive(2, d.as_bytes()));
        }
        for ip in req.ip_addresses {
            match ip {
                IpAddr::V4(v4) => san.extend(der::implicit_primitive(7, &v4.octets())),
                IpAddr::V6(v6) => san.extend(der::implicit_primitive(7, &v6.octets())),
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
            extension(RESULT_OID, false, &der::octet_string(req.result)),
            extension(EVIDENCE_OID, false, &der::octet_string(req.evidence)),
        ];
        if !san.is_empty() {
            extensions.push(extension(SUBJECT_ALT_NAME, false, &der::tlv(0x30, &san)));
        }
        let tbs = tbs(
            &serial,
            &self.subject_der,
            &name("confidant-enclave"),
            req.not_before,
            req.not_after,
            req.spki_der,
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

    fn ca() -> CertificateAuthority {
        let rng = SystemRandom::new();
        let key = CertificateAuthority::generate_key(&rng).unwrap();
        CertificateAuthority::new(&key, "Confidant test CA", NOW - 60, NOW + 86_400, &rng).unwrap()
    }

    fn leaf_spki() -> Vec<u8> {
        use rcgen::PublicKeyData;
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        kp.subject_public_key_info()
    }

    #[test]
    fn ca_certificate_parses_and_self_verifies() {
        let ca = ca();
        let (_, cert) = X509Certificate::from_der(ca.cert_der()).unwrap();
        assert!(cert.is_ca());
        cert.verify_signature(None).unwrap();
        assert!(ca.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
    }

    #[test]
    fn leaf_carries_extensions_and_chains_to_ca() {
        let ca = ca();
        let spki = leaf_spki();
        let rng = SystemRandom::new();
        let der_leaf = ca
            .issue_leaf(
                &LeafRequest {
                    spki_der: &spki,
                    dns_names: &["localhost".to_string()],
                    ip_addresses: &["127.0.0.1".parse().unwrap()],
                    not_before: NOW,
                    not_after: NOW + 3600,
                    result: b"result-bytes",
                    evidence: &[7u8; 3000],
                },
                &rng,
            )
            .unwrap();
        let (_, leaf) = X509Certificate::from_der(&der_leaf).unwrap();
        let (_, ca_cert) = X509Certificate::from_der(ca.cert_der()).unwrap();
        leaf.verify_signature(Some(ca_cert.public_key())).unwrap();
        assert_eq!(leaf.public_key().raw, spki.as_slice());
        let exts = crate::certext::parse(&der_leaf).unwrap();
        assert_eq!(exts.result, b"result-bytes");
        assert_eq!(exts.evidence, vec![7u8; 3000]);
        let san = leaf.subject_alternative_name().unwrap().unwrap();
        assert_eq!(san.value.general_names.len(), 2);
        assert!(!leaf.is_ca());
    }

    #[test]
    fn bad_inputs_are_refused() {
        let ca = ca();
        let rng = SystemRandom::new();
        let mut req = LeafRequest {
            spki_der: b"junk",
            dns_names: &[],
            ip_addresses: &[],
            not_before: NOW,
            not_after: NOW + 1,
            result: b"",
            evidence: b"",
        };
        assert_eq!(ca.issue_leaf(&req, &rng), Err(CaError::BadSpki));
        let spki = leaf_spki();
        req.spki_der = &spki;
        req.not_after = NOW;
        assert_eq!(ca.issue_leaf(&req, &rng), Err(CaError::BadValidity));
        assert_eq!(
            CertificateAuthority::new(b"not a key", "x", 0, 1, &rng).err(),
            Some(CaError::BadKey)
        );
    }
}
