//! Certificates only a lying (or compromised) verifier would issue: a leaf for any key, carrying
//! any result and evidence bytes, signed with the CA's key. The library's issuer cannot make them
//! (it issues only from a signed key-release appraisal), so the client's checks against such a
//! verifier are tested with these.
// Test scaffolding: a failure to build a fixture is a test failure.
#![allow(clippy::unwrap_used)]

use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair};
use x509_parser::prelude::{FromDer, X509Certificate};

use confidant_attestation::certext::{EVIDENCE_OID, RESULT_OID};
use confidant_attestation::der_writer as der;

/// ecdsa-with-SHA256 (RFC 5758 §3.2).
const ECDSA_WITH_SHA256: &[u128] = &[1, 2, 840, 10045, 4, 3, 2];
const BASIC_CONSTRAINTS: &[u128] = &[2, 5, 29, 19];
const KEY_USAGE: &[u128] = &[2, 5, 29, 15];
const EXT_KEY_USAGE: &[u128] = &[2, 5, 29, 37];
const SUBJECT_ALT_NAME: &[u128] = &[2, 5, 29, 17];
const SERVER_AUTH: &[u128] = &[1, 3, 6, 1, 5, 5, 7, 3, 1];
const COMMON_NAME: &[u128] = &[2, 5, 4, 3];

fn extension(oid: &[u128], critical: bool, value: &[u8]) -> Vec<u8> {
    let oid = der::oid(oid);
    let value = der::octet_string(value);
    if critical {
        der::seq(&[&oid, &der::boolean(true), &value])
    } else {
        der::seq(&[&oid, &value])
    }
}

/// A leaf for `spki_der` (names `localhost` and `127.0.0.1`) issued by the CA whose certificate is
/// `ca_der` and PKCS#8 key `ca_pkcs8`, carrying `result` and `evidence` in the attestation
/// extensions.
pub fn leaf(
    ca_der: &[u8],
    ca_pkcs8: &[u8],
    spki_der: &[u8],
    not_before: u64,
    not_after: u64,
    result: &[u8],
    evidence: &[u8],
) -> Vec<u8> {
    let rng = SystemRandom::new();
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, ca_pkcs8, &rng).unwrap();
    let (_, ca) = X509Certificate::from_der(ca_der).unwrap();
    let issuer = ca.tbs_certificate.subject.as_raw();
    let subject = der::seq(&[&der::set(&[&der::seq(&[
        &der::oid(COMMON_NAME),
        &der::utf8("forged-enclave"),
    ])])]);
    let alg = der::seq(&[&der::oid(ECDSA_WITH_SHA256)]);
    let mut san = der::implicit_primitive(2, b"localhost");
    san.extend(der::implicit_primitive(7, &[127, 0, 0, 1]));
    let extensions = [
        extension(BASIC_CONSTRAINTS, true, &der::seq(&[])),
        extension(KEY_USAGE, true, &der::tlv(0x03, &[7, 0x80])),
        extension(EXT_KEY_USAGE, false, &der::seq(&[&der::oid(SERVER_AUTH)])),
        extension(SUBJECT_ALT_NAME, false, &der::tlv(0x30, &san)),
        extension(RESULT_OID, false, &der::octet_string(result)),
        extension(EVIDENCE_OID, false, &der::octet_string(evidence)),
    ];
    let ext_refs: Vec<&[u8]> = extensions.iter().map(Vec::as_slice).collect();
    let tbs = der::seq(&[
        &der::explicit(0, &der::uint(&[2])),
        &der::uint(&not_before.to_be_bytes()),
        &alg,
        issuer,
        &der::seq(&[&der::time(not_before), &der::time(not_after)]),
        &subject,
        spki_der,
        &der::explicit(3, &der::seq(&ext_refs)),
    ]);
    let sig = key.sign(&rng, &tbs).unwrap();
    der::seq(&[&tbs, &alg, &der::bit_string(sig.as_ref())])
}
