//! X.509 extensions of an attested TLS certificate (the enclave's leaf, issued by the verifier CA).
//!
//! OID arc: `2.25.177667134935865086629939755811731137659` — a UUID-derived OID (ITU-T X.667,
//! UUID 85a9720e-4be6-4e3e-9878-79ed714be47b), so no registration is needed and no collision is
//! plausible. Under it:
//!
//! | OID | content (DER OCTET STRING of) |
//! |---|---|
//! | `<arc>.1` | the attestation result: a CWT in COSE_Sign1 ([`crate::result`]) |
//! | `<arc>.2` | the raw evidence, CBOR ([`crate::evidence::Evidence`]) |
//!
//! Both are non-critical, so TLS stacks that know nothing of attestation still accept the
//! certificate on its chain alone (the "floor of assurance" in DESIGN.md).

use x509_parser::der_parser::asn1_rs::FromDer;
use x509_parser::prelude::*;

/// The arc, as dotted text.
pub const ARC: &str = "2.25.177667134935865086629939755811731137659";
/// The UUID arc under 2.25.
pub const ARC_UUID: u128 = 177_667_134_935_865_086_629_939_755_811_731_137_659;
/// Attestation result extension, as arc components.
pub const RESULT_OID: &[u128] = &[2, 25, ARC_UUID, 1];
/// Evidence extension, as arc components.
pub const EVIDENCE_OID: &[u128] = &[2, 25, ARC_UUID, 2];
/// Dotted form of [`RESULT_OID`].
pub const RESULT_OID_STR: &str = "2.25.177667134935865086629939755811731137659.1";
/// Dotted form of [`EVIDENCE_OID`].
pub const EVIDENCE_OID_STR: &str = "2.25.177667134935865086629939755811731137659.2";

/// Largest extension payload accepted when parsing (a result is < 1 KiB; evidence with a chain
/// is well under 16 KiB).
pub const MAX_EXTENSION_LEN: usize = 64 * 1024;

/// Why the attestation extensions could not be read from a certificate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertExtError {
    #[error("certificate is not valid DER X.509")]
    BadCertificate,
    #[error("certificate has no attestation result extension")]
    MissingResult,
    #[error("certificate has no evidence extension")]
    MissingEvidence,
    #[error("attestation extension appears more than once")]
    Duplicate,
    #[error("attestation extension is malformed")]
    Malformed,
    #[error("attestation extension is over {MAX_EXTENSION_LEN} bytes")]
    TooLarge,
}

/// The attestation payloads carried by a certificate, plus the SHA-256 of its SPKI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestationExtensions {
    /// COSE_Sign1 bytes of the attestation result.
    pub result: Vec<u8>,
    /// CBOR evidence bytes.
    pub evidence: Vec<u8>,
    /// SHA-256 of the certificate's DER SubjectPublicKeyInfo.
    pub spki_sha256: [u8; 32],
}

/// DER encoding of an OCTET STRING holding `payload`, the extension value format used here.
pub fn encode_extension_value(payload: &[u8]) -> Vec<u8> {
    crate::der_writer::octet_string(payload)
}

/// Reads the attestation extensions from a DER certificate.
pub fn parse(cert_der: &[u8]) -> Result<AttestationExtensions, CertExtError> {
    let (rest, cert) =
        X509Certificate::from_der(cert_der).map_err(|_| CertExtError::BadCertificate)?;
    if !rest.is_empty() {
        return Err(CertExtError::BadCertificate);
    }
    let mut result = None;
    let mut evidence = None;
    // Compare encoded OID bytes: x509-parser cannot print arcs over 64 bits in dotted form.
    let result_oid = crate::der_writer::oid(RESULT_OID);
    let evidence_oid = crate::der_writer::oid(EVIDENCE_OID);
    let content = |tlv: &[u8]| tlv.get(2..).map(<[u8]>::to_vec).unwrap_or_default();
    let (result_oid, evidence_oid) = (content(&result_oid), content(&evidence_oid));
    for ext in cert.extensions() {
        let oid = ext.oid.as_bytes();
        let slot = if oid == result_oid.as_slice() {
            &mut result
        } else if oid == evidence_oid.as_slice() {
            &mut evidence
        } else {
            continue;
        };
        if slot.is_some() {
            return Err(CertExtError::Duplicate);
        }
        *slot = Some(decode_extension_value(ext.value)?);
    }
    let spki = cert.tbs_certificate.subject_pki.raw;
    let digest = ring::digest::digest(&ring::digest::SHA256, spki);
    let mut spki_sha256 = [0u8; 32];
    spki_sha256.copy_from_slice(digest.as_ref());
    Ok(AttestationExtensions {
        result: result.ok_or(CertExtError::MissingResult)?,
        evidence: evidence.ok_or(CertExtError::MissingEvidence)?,
        spki_sha256,
    })
}

fn decode_extension_value(value: &[u8]) -> Result<Vec<u8>, CertExtError> {
    if value.len() > MAX_EXTENSION_LEN + 8 {
        return Err(CertExtError::TooLarge);
    }
    let (rest, octets) = x509_parser::der_parser::asn1_rs::OctetString::from_der(value)
        .map_err(|_| CertExtError::Malformed)?;
    if !rest.is_empty() {
        return Err(CertExtError::Malformed);
    }
    let bytes = octets.as_cow().to_vec();
    if bytes.len() > MAX_EXTENSION_LEN {
        return Err(CertExtError::TooLarge);
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate with the given extensions, built with the crate's DER writer.
    fn cert_with(exts: Vec<(&[u128], Vec<u8>)>) -> Vec<u8> {
        use crate::der_writer as der;
        use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
        let rng = ring::rand::SystemRandom::new();
        let pk8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let key =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pk8.as_ref(), &rng).unwrap();
        let alg = der::seq(&[&der::oid(&[1, 2, 840, 10045, 4, 3, 2])]);
        let name = der::seq(&[&der::set(&[&der::seq(&[
            &der::oid(&[2, 5, 4, 3]),
            &der::utf8("t"),
        ])])]);
        let spki = der::seq(&[
            &der::seq(&[
                &der::oid(&[1, 2, 840, 10045, 2, 1]),
                &der::oid(&[1, 2, 840, 10045, 3, 1, 7]),
            ]),
            &der::bit_string(key.public_key().as_ref()),
        ]);
        let ext_list: Vec<Vec<u8>> = exts
            .iter()
            .map(|(oid, payload)| {
                der::seq(&[
                    &der::oid(oid),
                    &der::octet_string(&encode_extension_value(payload)),
                ])
            })
            .collect();
        let ext_refs: Vec<&[u8]> = ext_list.iter().map(Vec::as_slice).collect();
        let tbs = der::seq(&[
            &der::explicit(0, &der::uint(&[2])),
            &der::uint(&[1]),
            &alg,
            &name,
            &der::seq(&[&der::time(0), &der::time(100)]),
            &name,
            &spki,
            &der::explicit(3, &der::seq(&ext_refs)),
        ]);
        let sig = key.sign(&rng, &tbs).unwrap();
        der::seq(&[&tbs, &alg, &der::bit_string(sig.as_ref())])
    }

    #[test]
    fn roundtrip_small_and_large_payloads() {
        for len in [0usize, 1, 127, 128, 255, 256, 5000, 70000 - 6000] {
            let result = vec![0xA5; len];
            let evidence = vec![0x5A; len / 2 + 1];
            let der = cert_with(vec![
                (RESULT_OID, result.clone()),
                (EVIDENCE_OID, evidence.clone()),
            ]);
            let parsed = parse(&der).unwrap();
            assert_eq!(parsed.result, result);
            assert_eq!(parsed.evidence, evidence);
        }
    }

    #[test]
    fn missing_and_duplicate_extensions_are_refused() {
        let der = cert_with(vec![(EVIDENCE_OID, vec![1])]);
        assert_eq!(parse(&der), Err(CertExtError::MissingResult));
        let der = cert_with(vec![(RESULT_OID, vec![1])]);
        assert_eq!(parse(&der), Err(CertExtError::MissingEvidence));
        let der = cert_with(vec![
            (RESULT_OID, vec![1]),
            (RESULT_OID, vec![2]),
            (EVIDENCE_OID, vec![3]),
        ]);
        assert_eq!(parse(&der), Err(CertExtError::Duplicate));
    }

    #[test]
    fn oversized_and_garbage_are_refused() {
        let der = cert_with(vec![
            (RESULT_OID, vec![0; MAX_EXTENSION_LEN + 1]),
            (EVIDENCE_OID, vec![1]),
        ]);
        assert_eq!(parse(&der), Err(CertExtError::TooLarge));
        assert_eq!(parse(b"not a cert"), Err(CertExtError::BadCertificate));
        let mut der = cert_with(vec![(RESULT_OID, vec![1]), (EVIDENCE_OID, vec![2])]);
        der.push(0);
        assert_eq!(parse(&der), Err(CertExtError::BadCertificate));
    }

    #[test]
    fn oid_constants_agree() {
        let dotted = |c: &[u128]| c.iter().map(u128::to_string).collect::<Vec<_>>().join(".");
        assert_eq!(dotted(RESULT_OID), RESULT_OID_STR);
        assert_eq!(dotted(EVIDENCE_OID), EVIDENCE_OID_STR);
        assert!(RESULT_OID_STR.starts_with(ARC));
    }
}
