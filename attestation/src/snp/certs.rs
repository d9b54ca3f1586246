//! X.509 handling for the AMD endorsement chain: ARK → ASK → VCEK, or ARK → ASVK → VLEK.
//!
//! AMD signs every certificate in the chain with RSASSA-PSS, SHA-384, MGF1-SHA-384, salt 48
//! (VCEK Certificate and KDS Interface Specification, AMD pub. 57230, chapter 2, and the VLEK
//! specification, pub. 58369). The VCEK/VLEK carries the TCB it was derived for, and a VCEK its
//! chip's hardware ID, as extensions under AMD's arc 1.3.6.1.4.1.3704.1 (pub. 57230 table
//! "VCEK Certificate Extensions").
//!
//! Certificates are first checked to be strict DER with the outer signature algorithm equal to the
//! signed one ([`crate::der_strict`]), then parsed with `x509-parser`; signatures are checked with
//! `ring` over the exact TBS bytes received.

use ring::signature::{self, UnparsedPublicKey};
use x509_parser::asn1_rs::Tag;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::signature_algorithm::RsaSsaPssParams;
use x509_parser::x509::AlgorithmIdentifier;

use super::SnpError;
use super::tcb::{TcbComponent, TcbVersion};

/// DER contents (no tag or length) of the object identifiers used here.
pub(crate) mod oid {
    /// rsaEncryption, 1.2.840.113549.1.1.1.
    pub const RSA_ENCRYPTION: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01];
    /// id-RSASSA-PSS, 1.2.840.113549.1.1.10 (RFC 4055).
    pub const RSASSA_PSS: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0A];
    /// id-mgf1, 1.2.840.113549.1.1.8.
    pub const MGF1: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x08];
    /// id-sha384, 2.16.840.1.101.3.4.2.2.
    pub const SHA384: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02];
    /// id-ecPublicKey, 1.2.840.10045.2.1.
    pub const EC_PUBLIC_KEY: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01];
    /// secp384r1, 1.3.132.0.34.
    pub const SECP384R1: &[u8] = &[0x2B, 0x81, 0x04, 0x00, 0x22];

    /// 1.3.6.1.4.1.3704.1.2, productName (IA5String).
    pub const PRODUCT_NAME: &[u8] = &[0x2B, 0x06, 0x01, 0x04, 0x01, 0x9C, 0x78, 0x01, 0x02];
    /// 1.3.6.1.4.1.3704.1.3.1, blSPL.
    pub const BL_SPL: &[u8] = &[0x2B, 0x06, 0x01, 0x04, 0x01, 0x9C, 0x78, 0x01, 0x03, 0x01];
    /// 1.3.6.1.4.1.3704.1.3.2, teeSPL.
    pub const TEE_SPL: &[u8] = &[0x2B, 0x06, 0x01, 0x04, 0x01, 0x9C, 0x78, 0x01, 0x03, 0x02];
    /// 1.3.6.1.4.1.3704.1.3.3, snpSPL.
    pub const SNP_SPL: &[u8] = &[0x2B, 0x06, 0x01, 0x04, 0x01, 0x9C, 0x78, 0x01, 0x03, 0x03];
    /// 1.3.6.1.4.1.3704.1.3.8, ucodeSPL.
    pub const UCODE_SPL: &[u8] = &[0x2B, 0x06, 0x01, 0x04, 0x01, 0x9C, 0x78, 0x01, 0x03, 0x08];
    /// 1.3.6.1.4.1.3704.1.3.9, fmcSPL (Turin and later).
    pub const FMC_SPL: &[u8] = &[0x2B, 0x06, 0x01, 0x04, 0x01, 0x9C, 0x78, 0x01, 0x03, 0x09];
    /// 1.3.6.1.4.1.3704.1.4, hwID (VCEK only).
    pub const HW_ID: &[u8] = &[0x2B, 0x06, 0x01, 0x04, 0x01, 0x9C, 0x78, 0x01, 0x04];
}

/// Dotted names of the extensions, for error reports.
pub mod ext_name {
    pub const BL_SPL: &str = "1.3.6.1.4.1.3704.1.3.1";
    pub const TEE_SPL: &str = "1.3.6.1.4.1.3704.1.3.2";
    pub const SNP_SPL: &str = "1.3.6.1.4.1.3704.1.3.3";
    pub const UCODE_SPL: &str = "1.3.6.1.4.1.3704.1.3.8";
    pub const FMC_SPL: &str = "1.3.6.1.4.1.3704.1.3.9";
    pub const HW_ID: &str = "1.3.6.1.4.1.3704.1.4";
}

/// The position of a certificate in the chain, for error reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CertRole {
    /// The VCEK or VLEK that signed the report.
    Signer,
    /// The ASK (VCEK signer) or ASVK (VLEK signer).
    Intermediate,
    /// The ARK.
    Root,
}

impl std::fmt::Display for CertRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CertRole::Signer => "VCEK/VLEK",
            CertRole::Intermediate => "ASK/ASVK",
            CertRole::Root => "ARK",
        })
    }
}

/// Parses one certificate: strict DER only ([`crate::der_strict::check_certificate`]), nothing
/// after it.
pub(crate) fn parse(der: &[u8], which: CertRole) -> Result<X509Certificate<'_>, SnpError> {
    crate::der_strict::check_certificate(der)
        .map_err(|error| SnpError::CertEncoding { which, error })?;
    match X509Certificate::from_der(der) {
        Ok(([], cert)) => Ok(cert),
        _ => Err(SnpError::CertParse { which }),
    }
}

fn oid_param_is(alg: &AlgorithmIdentifier<'_>, expected: &[u8]) -> bool {
    alg.parameters
        .as_ref()
        .is_some_and(|p| p.header.tag() == Tag::Oid && p.data == expected)
}

/// Checks that `cert` says it is signed with RSASSA-PSS / SHA-384 / MGF1-SHA-384 / salt 48 /
/// trailer 1 (the only parameters `ring`'s `RSA_PSS_2048_8192_SHA384` verifies). [`parse`] has
/// already required the outer `signatureAlgorithm` to be byte-identical to the TBS `signature`
/// field (RFC 5280 4.1.1.2).
fn check_pss_sha384(cert: &X509Certificate<'_>, which: CertRole) -> Result<(), SnpError> {
    let bad = SnpError::CertAlgorithm { which };
    let outer = &cert.signature_algorithm;
    if outer.algorithm.as_bytes() != oid::RSASSA_PSS {
        return Err(bad);
    }
    let params = outer
        .parameters
        .as_ref()
        .and_then(|p| RsaSsaPssParams::try_from(p).ok())
        .ok_or(SnpError::CertAlgorithm { which })?;
    let hash_ok = params.hash_algorithm_oid().as_bytes() == oid::SHA384;
    let mgf_ok = params
        .mask_gen_algorithm()
        .is_ok_and(|m| m.mgf.as_bytes() == oid::MGF1 && m.hash.as_bytes() == oid::SHA384);
    if hash_ok && mgf_ok && params.salt_length() == 48 && params.trailer_field() == 1 {
        Ok(())
    } else {
        Err(bad)
    }
}

/// The RSA public key (PKCS#1 `RSAPublicKey` DER, as `ring` takes it) of an issuer certificate.
pub(crate) fn rsa_public_key<'a>(
    cert: &'a X509Certificate<'_>,
    which: CertRole,
) -> Result<&'a [u8], SnpError> {
    let spki = cert.public_key();
    let alg = spki.algorithm.algorithm.as_bytes();
    if alg != oid::RSA_ENCRYPTION && alg != oid::RSASSA_PSS {
        return Err(SnpError::CertAlgorithm { which });
    }
    if spki.subject_public_key.unused_bits != 0 {
        return Err(SnpError::CertAlgorithm { which });
    }
    Ok(spki.subject_public_key.data.as_ref())
}

/// The uncompressed P-384 point of a VCEK/VLEK.
pub(crate) fn p384_public_key<'a>(cert: &'a X509Certificate<'_>) -> Result<&'a [u8], SnpError> {
    let spki = cert.public_key();
    let bad = SnpError::CertAlgorithm {
        which: CertRole::Signer,
    };
    if spki.algorithm.algorithm.as_bytes() != oid::EC_PUBLIC_KEY
        || !oid_param_is(&spki.algorithm, oid::SECP384R1)
        || spki.subject_public_key.unused_bits != 0
    {
        return Err(bad);
    }
    let point: &[u8] = spki.subject_public_key.data.as_ref();
    // SEC 1 uncompressed point: 0x04 || X (48) || Y (48).
    if point.len() != 97 || point.first() != Some(&0x04) {
        return Err(bad);
    }
    Ok(point)
}

/// Verifies that `cert` was signed by the RSA key `issuer_key` with RSA-PSS SHA-384 over its
/// received TBS bytes.
pub(crate) fn verify_signed_by(
    cert: &X509Certificate<'_>,
    issuer_key: &[u8],
    which: CertRole,
) -> Result<(), SnpError> {
    check_pss_sha384(cert, which)?;
    if cert.signature_value.unused_bits != 0 {
        return Err(SnpError::ChainSignature { which });
    }
    UnparsedPublicKey::new(&signature::RSA_PSS_2048_8192_SHA384, issuer_key)
        .verify(
            cert.tbs_certificate.as_ref(),
            cert.signature_value.data.as_ref(),
        )
        .map_err(|_| SnpError::ChainSignature { which })
}

/// Requires a critical-or-not `basicConstraints` with `cA = TRUE`.
pub(crate) fn require_ca(cert: &X509Certificate<'_>, which: CertRole) -> Result<(), SnpError> {
    match cert.basic_constraints() {
        Ok(Some(bc)) if bc.value.ca => Ok(()),
        _ => Err(SnpError::NotCa { which }),
    }
}

/// The AMD extensions of a VCEK or VLEK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VekExtensions {
    /// The TCB the key was derived for (`fmc` present only when the certificate carries fmcSPL).
    pub tcb: TcbVersion,
    /// hwID (VCEK only): 64 bytes (Milan, Genoa) or 8 bytes (Turin).
    pub hw_id: Option<Vec<u8>>,
    /// productName, informational only: verification never decides anything by a name.
    pub product_name: Option<String>,
}

fn unique_extension<'a>(
    cert: &'a X509Certificate<'_>,
    oid_bytes: &[u8],
    name: &'static str,
) -> Result<Option<&'a [u8]>, SnpError> {
    let mut found = cert
        .extensions()
        .iter()
        .filter(|e| e.oid.as_bytes() == oid_bytes);
    let first = found.next().map(|e| e.value);
    if found.next().is_some() {
        return Err(SnpError::ExtensionMalformed { oid: name });
    }
    Ok(first)
}

/// Decodes an SPL extension value. AMD has encoded it as a DER INTEGER (`02 01 xx`, or
/// `02 02 00 xx` when `xx >= 0x80`); older certificates wrote `02 01 xx` even for `xx >= 0x80`,
/// which is accepted as the unsigned byte it was meant to be.
fn decode_spl(value: &[u8], name: &'static str) -> Result<u8, SnpError> {
    match value {
        [0x02, 0x01, v] => Ok(*v),
        [0x02, 0x02, 0x00, v] if *v >= 0x80 => Ok(*v),
        _ => Err(SnpError::ExtensionMalformed { oid: name }),
    }
}

/// Decodes hwID: the raw bytes (as AMD's KDS issues it), or the same wrapped in a DER OCTET STRING
/// (the newer encoding). Lengths other than 8 or 64 bytes are malformed.
fn decode_hw_id(value: &[u8]) -> Result<Vec<u8>, SnpError> {
    let raw = match value {
        v if v.len() == 64 || v.len() == 8 => v,
        [0x04, len, rest @ ..]
            if usize::from(*len) == rest.len() && matches!(rest.len(), 8 | 64) =>
        {
            rest
        }
        _ => {
            return Err(SnpError::ExtensionMalformed {
                oid: ext_name::HW_ID,
            });
        }
    };
    Ok(raw.to_vec())
}

fn spl(
    cert: &X509Certificate<'_>,
    oid_bytes: &[u8],
    name: &'static str,
) -> Result<Option<u8>, SnpError> {
    unique_extension(cert, oid_bytes, name)?
        .map(|v| decode_spl(v, name))
        .transpose()
}

fn required_spl(
    cert: &X509Certificate<'_>,
    oid_bytes: &[u8],
    name: &'static str,
) -> Result<u8, SnpError> {
    spl(cert, oid_bytes, name)?.ok_or(SnpError::ExtensionMissing { oid: name })
}

/// Reads the AMD extensions of a parsed VCEK/VLEK.
pub(crate) fn extensions_of(cert: &X509Certificate<'_>) -> Result<VekExtensions, SnpError> {
    let tcb = TcbVersion {
        bootloader: required_spl(cert, oid::BL_SPL, ext_name::BL_SPL)?,
        tee: required_spl(cert, oid::TEE_SPL, ext_name::TEE_SPL)?,
        snp: required_spl(cert, oid::SNP_SPL, ext_name::SNP_SPL)?,
        microcode: required_spl(cert, oid::UCODE_SPL, ext_name::UCODE_SPL)?,
        fmc: spl(cert, oid::FMC_SPL, ext_name::FMC_SPL)?,
    };
    let hw_id = unique_extension(cert, oid::HW_ID, ext_name::HW_ID)?
        .map(decode_hw_id)
        .transpose()?;
    let product_name = unique_extension(cert, oid::PRODUCT_NAME, "1.3.6.1.4.1.3704.1.2")
        .ok()
        .flatten()
        .and_then(|v| match v {
            [0x16, len, rest @ ..] if usize::from(*len) == rest.len() => {
                std::str::from_utf8(rest).ok().map(str::to_owned)
            }
            _ => None,
        });
    Ok(VekExtensions {
        tcb,
        hw_id,
        product_name,
    })
}

/// Reads the AMD extensions of a DER VCEK/VLEK (no signature or chain check).
pub fn vek_extensions(der: &[u8]) -> Result<VekExtensions, SnpError> {
    let cert = parse(der, CertRole::Signer)?;
    extensions_of(&cert)
}

/// The uncompressed P-384 public key (SEC 1, 97 bytes) of a DER VCEK/VLEK.
pub fn signer_public_key(der: &[u8]) -> Result<Vec<u8>, SnpError> {
    let cert = parse(der, CertRole::Signer)?;
    p384_public_key(&cert).map(<[u8]>::to_vec)
}

/// The name of the extension that carries one TCB component.
pub fn tcb_extension_name(component: TcbComponent) -> &'static str {
    match component {
        TcbComponent::Bootloader => ext_name::BL_SPL,
        TcbComponent::Tee => ext_name::TEE_SPL,
        TcbComponent::Snp => ext_name::SNP_SPL,
        TcbComponent::Microcode => ext_name::UCODE_SPL,
        TcbComponent::Fmc => ext_name::FMC_SPL,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::asn1_rs::Oid;

    #[test]
    fn oid_constants_match_their_dotted_names() {
        let table: &[(&[u8], &[u64])] = &[
            (oid::RSA_ENCRYPTION, &[1, 2, 840, 113549, 1, 1, 1]),
            (oid::RSASSA_PSS, &[1, 2, 840, 113549, 1, 1, 10]),
            (oid::MGF1, &[1, 2, 840, 113549, 1, 1, 8]),
            (oid::SHA384, &[2, 16, 840, 1, 101, 3, 4, 2, 2]),
            (oid::EC_PUBLIC_KEY, &[1, 2, 840, 10045, 2, 1]),
            (oid::SECP384R1, &[1, 3, 132, 0, 34]),
            (oid::PRODUCT_NAME, &[1, 3, 6, 1, 4, 1, 3704, 1, 2]),
            (oid::BL_SPL, &[1, 3, 6, 1, 4, 1, 3704, 1, 3, 1]),
            (oid::TEE_SPL, &[1, 3, 6, 1, 4, 1, 3704, 1, 3, 2]),
            (oid::SNP_SPL, &[1, 3, 6, 1, 4, 1, 3704, 1, 3, 3]),
            (oid::UCODE_SPL, &[1, 3, 6, 1, 4, 1, 3704, 1, 3, 8]),
            (oid::FMC_SPL, &[1, 3, 6, 1, 4, 1, 3704, 1, 3, 9]),
            (oid::HW_ID, &[1, 3, 6, 1, 4, 1, 3704, 1, 4]),
        ];
        for (bytes, arcs) in table {
            let o = Oid::from(arcs).unwrap();
            assert_eq!(o.as_bytes(), *bytes, "{arcs:?}");
        }
        let named = [
            (oid::BL_SPL, ext_name::BL_SPL),
            (oid::TEE_SPL, ext_name::TEE_SPL),
            (oid::SNP_SPL, ext_name::SNP_SPL),
            (oid::UCODE_SPL, ext_name::UCODE_SPL),
            (oid::FMC_SPL, ext_name::FMC_SPL),
            (oid::HW_ID, ext_name::HW_ID),
        ];
        for (bytes, name) in named {
            assert_eq!(Oid::new(bytes.into()).to_id_string(), name);
        }
    }

    #[test]
    fn spl_encodings() {
        assert_eq!(decode_spl(&[2, 1, 3], "x"), Ok(3));
        assert_eq!(decode_spl(&[2, 2, 0, 0xA9], "x"), Ok(0xA9));
        assert_eq!(decode_spl(&[2, 1, 0xA9], "x"), Ok(0xA9));
        for bad in [
            &[][..],
            &[2, 2, 0, 5],
            &[2, 2, 1, 0],
            &[4, 1, 3],
            &[2, 1],
            &[2, 1, 3, 0],
        ] {
            assert!(
                matches!(
                    decode_spl(bad, "x"),
                    Err(SnpError::ExtensionMalformed { .. })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn hw_id_encodings() {
        let raw = [7u8; 64];
        assert_eq!(decode_hw_id(&raw).unwrap(), raw.to_vec());
        let mut wrapped = vec![0x04, 0x40];
        wrapped.extend_from_slice(&raw);
        assert_eq!(decode_hw_id(&wrapped).unwrap(), raw.to_vec());
        assert_eq!(decode_hw_id(&[1u8; 8]).unwrap(), vec![1u8; 8]);
        for bad in [vec![], vec![0u8; 63], vec![0x04, 0x41, 0], vec![0u8; 65]] {
            assert!(matches!(
                decode_hw_id(&bad),
                Err(SnpError::ExtensionMalformed { .. })
            ));
        }
    }
}
