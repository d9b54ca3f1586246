//! `TPMT_PUBLIC` (TPM 2.0 Part 2, §12.2.4) for RSA and ECC P-256 signing keys, and the DER
//! `SubjectPublicKeyInfo` (RFC 5280 §4.1.2.7; RFC 3279 §2.3.1, RFC 5480 §2) that identifies an
//! attestation key in [`super::TpmTrustAnchors`].

use super::TpmError;
use super::constants::*;
use super::marshal::{Reader, bounded};

/// `TPM2B_PUBLIC_KEY_RSA` holds at most `MAX_RSA_KEY_BYTES` (Part 2 §11.2.4.5); 4096-bit keys.
pub const MAX_RSA_KEY_BYTES: usize = 512;
/// `TPM2B_ECC_PARAMETER` holds at most `MAX_ECC_KEY_BYTES` (Part 2 §11.2.5.1).
pub const MAX_ECC_KEY_BYTES: usize = 128;

/// A key's signing scheme from `TPMT_RSA_SCHEME` (§11.2.4.2) or `TPMT_ECC_SCHEME` (§11.2.5.6).
/// A restricted signing key may only sign with this scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyScheme {
    /// `TPM_ALG_ID` of the scheme (for example `TPM_ALG_ECDSA`).
    pub scheme: u16,
    /// The scheme's `hashAlg`, when the scheme has one.
    pub hash: Option<u16>,
}

/// The public part of an asymmetric key, from `TPMU_PUBLIC_PARMS` (§12.2.3.7) and
/// `TPMU_PUBLIC_ID` (§12.2.3.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// `TPMS_RSA_PARMS` (§12.2.3.5) and `TPM2B_PUBLIC_KEY_RSA`.
    Rsa {
        /// `keyBits`: 2048, 3072 or 4096.
        key_bits: u16,
        /// The effective public exponent (`exponent` 0 means 65537).
        exponent: u32,
        /// Big-endian modulus, exactly `key_bits / 8` bytes.
        modulus: Vec<u8>,
    },
    /// `TPMS_ECC_PARMS` (§12.2.3.6) with `curveID` `TPM_ECC_NIST_P256`, and `TPMS_ECC_POINT`
    /// (§11.2.5.2), coordinates left-padded to 32 bytes.
    EccP256 { x: [u8; 32], y: [u8; 32] },
}

/// `TPMT_PUBLIC` (Part 2 §12.2.4, Table 218) of an RSA or ECC P-256 key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TpmtPublic {
    /// `nameAlg` (`TPMI_ALG_HASH`).
    pub name_alg: u16,
    /// `objectAttributes` (`TPMA_OBJECT`, §8.3).
    pub object_attributes: u32,
    /// `authPolicy` (`TPM2B_DIGEST`).
    pub auth_policy: Vec<u8>,
    /// The key's scheme; `None` for `TPM_ALG_NULL`.
    pub scheme: Option<KeyScheme>,
    pub key: PublicKey,
}

impl TpmtPublic {
    /// Parses a marshalled `TPMT_PUBLIC` exactly (no trailing bytes).
    pub fn parse(bytes: &[u8]) -> Result<Self, TpmError> {
        bounded(bytes, MAX_STRUCTURE, "TPMT_PUBLIC")?;
        let mut r = Reader::new(bytes);
        let public = Self::read(&mut r)?;
        r.finish("TPMT_PUBLIC")?;
        Ok(public)
    }

    /// Parses a marshalled `TPM2B_PUBLIC` (§12.2.5): a 16-bit size, then exactly a `TPMT_PUBLIC`.
    pub fn parse_tpm2b(bytes: &[u8]) -> Result<Self, TpmError> {
        let inner = Self::tpm2b_contents(bytes)?;
        Self::parse(inner)
    }

    /// The `TPMT_PUBLIC` bytes inside a `TPM2B_PUBLIC`.
    pub fn tpm2b_contents(bytes: &[u8]) -> Result<&[u8], TpmError> {
        bounded(bytes, MAX_STRUCTURE + 2, "TPM2B_PUBLIC")?;
        let mut r = Reader::new(bytes);
        let inner = r.tpm2b(MAX_STRUCTURE, "TPM2B_PUBLIC")?;
        r.finish("TPM2B_PUBLIC")?;
        Ok(inner)
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, TpmError> {
        let alg = r.u16("TPMT_PUBLIC.type")?;
        let name_alg = r.u16("TPMT_PUBLIC.nameAlg")?;
        let object_attributes = r.u32("TPMT_PUBLIC.objectAttributes")?;
        let auth_policy = r.tpm2b(MAX_DIGEST, "TPMT_PUBLIC.authPolicy")?.to_vec();
        let (scheme, key) = match alg {
            TPM_ALG_RSA => read_rsa(r)?,
            TPM_ALG_ECC => read_ecc(r)?,
            other => {
                return Err(TpmError::UnsupportedAlgorithm {
                    what: "TPMT_PUBLIC.type",
                    alg: other,
                });
            }
        };
        Ok(TpmtPublic {
            name_alg,
            object_attributes,
            auth_policy,
            scheme,
            key,
        })
    }

    /// True for a restricted signing key that cannot leave its TPM (`sign`, `restricted`,
    /// `fixedTPM` set; `decrypt` clear): the TPM signs only structures it generated itself with
    /// such a key, so a quote signed by it was made by TPM2_Quote (Part 1 §25.2.1).
    pub fn is_restricted_signing(&self) -> bool {
        let a = self.object_attributes;
        a & TPMA_OBJECT_SIGN_ENCRYPT != 0
            && a & TPMA_OBJECT_RESTRICTED != 0
            && a & TPMA_OBJECT_FIXED_TPM != 0
            && a & TPMA_OBJECT_DECRYPT == 0
    }

    /// DER `SubjectPublicKeyInfo` of the key, encoded as OpenSSL (and so `tpm2_createak -f pem`)
    /// encodes it.
    pub fn spki_der(&self) -> Vec<u8> {
        match &self.key {
            PublicKey::Rsa {
                exponent, modulus, ..
            } => {
                let rsa_key = tlv(
                    0x30,
                    &[der_uint(modulus), der_uint(&exponent.to_be_bytes())].concat(),
                );
                let alg = tlv(
                    0x30,
                    &[tlv(0x06, OID_RSA_ENCRYPTION), vec![0x05, 0x00]].concat(),
                );
                spki(&alg, &rsa_key)
            }
            PublicKey::EccP256 { x, y } => {
                let alg = tlv(
                    0x30,
                    &[tlv(0x06, OID_EC_PUBLIC_KEY), tlv(0x06, OID_PRIME256V1)].concat(),
                );
                spki(&alg, &[&[0x04], &x[..], &y[..]].concat())
            }
        }
    }

    /// Marshals the key as a `TPMT_PUBLIC` with NULL symmetric and KDF schemes (the form of every
    /// signing key). Used to describe a key known only by its SPKI, and by tests; verification
    /// never re-encodes a received key.
    pub fn marshal(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let alg = match self.key {
            PublicKey::Rsa { .. } => TPM_ALG_RSA,
            PublicKey::EccP256 { .. } => TPM_ALG_ECC,
        };
        out.extend_from_slice(&alg.to_be_bytes());
        out.extend_from_slice(&self.name_alg.to_be_bytes());
        out.extend_from_slice(&self.object_attributes.to_be_bytes());
        put_tpm2b(&mut out, &self.auth_policy);
        out.extend_from_slice(&TPM_ALG_NULL.to_be_bytes()); // TPMT_SYM_DEF_OBJECT
        match self.scheme {
            None => out.extend_from_slice(&TPM_ALG_NULL.to_be_bytes()),
            Some(s) => {
                out.extend_from_slice(&s.scheme.to_be_bytes());
                if let Some(h) = s.hash {
                    out.extend_from_slice(&h.to_be_bytes());
                }
                if s.scheme == TPM_ALG_ECDAA {
                    out.extend_from_slice(&0u16.to_be_bytes());
                }
            }
        }
        match &self.key {
            PublicKey::Rsa {
                key_bits,
                exponent,
                modulus,
            } => {
                out.extend_from_slice(&key_bits.to_be_bytes());
                let e = if *exponent == 65537 { 0 } else { *exponent };
                out.extend_from_slice(&e.to_be_bytes());
                put_tpm2b(&mut out, modulus);
            }
            PublicKey::EccP256 { x, y } => {
                out.extend_from_slice(&TPM_ECC_NIST_P256.to_be_bytes());
                out.extend_from_slice(&TPM_ALG_NULL.to_be_bytes()); // TPMT_KDF_SCHEME
                put_tpm2b(&mut out, x);
                put_tpm2b(&mut out, y);
            }
        }
        out
    }

    /// SHA-256 of [`Self::spki_der`]: how an attestation key is identified.
    pub fn fingerprint(&self) -> [u8; 32] {
        spki_fingerprint(&self.spki_der())
    }
}

fn put_tpm2b(out: &mut Vec<u8>, v: &[u8]) {
    // Callers pass keys and digests of at most 512 bytes.
    let len = u16::try_from(v.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(v);
}

/// SHA-256 of a DER `SubjectPublicKeyInfo`.
pub fn spki_fingerprint(der: &[u8]) -> [u8; 32] {
    sha256(der)
}

pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// `TPMT_SYM_DEF_OBJECT` (§11.1.7): an algorithm, and key bits and mode unless it is NULL.
fn read_sym_def_object(r: &mut Reader<'_>) -> Result<(), TpmError> {
    let alg = r.u16("TPMT_SYM_DEF_OBJECT.algorithm")?;
    if alg != TPM_ALG_NULL {
        r.u16("TPMT_SYM_DEF_OBJECT.keyBits")?;
        r.u16("TPMT_SYM_DEF_OBJECT.mode")?;
    }
    Ok(())
}

/// `TPMS_RSA_PARMS` (§12.2.3.5) then `TPM2B_PUBLIC_KEY_RSA` (§11.2.4.5).
fn read_rsa(r: &mut Reader<'_>) -> Result<(Option<KeyScheme>, PublicKey), TpmError> {
    read_sym_def_object(r)?;
    // TPMT_RSA_SCHEME (§11.2.4.2): signing and OAEP schemes carry a hashAlg; RSAES and NULL none.
    let scheme_alg = r.u16("TPMT_RSA_SCHEME.scheme")?;
    let scheme = match scheme_alg {
        TPM_ALG_NULL => None,
        TPM_ALG_RSAES => Some(KeyScheme {
            scheme: scheme_alg,
            hash: None,
        }),
        TPM_ALG_RSASSA | TPM_ALG_RSAPSS | TPM_ALG_OAEP => Some(KeyScheme {
            scheme: scheme_alg,
            hash: Some(r.u16("TPMT_RSA_SCHEME.details.hashAlg")?),
        }),
        other => {
            return Err(TpmError::UnsupportedAlgorithm {
                what: "TPMT_RSA_SCHEME.scheme",
                alg: other,
            });
        }
    };
    let key_bits = r.u16("TPMS_RSA_PARMS.keyBits")?;
    if !matches!(key_bits, 2048 | 3072 | 4096) {
        return Err(TpmError::UnsupportedAlgorithm {
            what: "RSA key size",
            alg: key_bits,
        });
    }
    let exponent = match r.u32("TPMS_RSA_PARMS.exponent")? {
        0 => 65537,
        e => e,
    };
    if exponent < 3 || exponent % 2 == 0 {
        return Err(TpmError::Malformed {
            what: "TPMS_RSA_PARMS.exponent",
        });
    }
    let modulus = r.tpm2b(MAX_RSA_KEY_BYTES, "TPMU_PUBLIC_ID.rsa")?;
    if modulus.len() != usize::from(key_bits / 8) || modulus.first().is_none_or(|b| *b == 0) {
        return Err(TpmError::Malformed {
            what: "TPMU_PUBLIC_ID.rsa",
        });
    }
    Ok((
        scheme,
        PublicKey::Rsa {
            key_bits,
            exponent,
            modulus: modulus.to_vec(),
        },
    ))
}

/// `TPMS_ECC_PARMS` (§12.2.3.6) then `TPMS_ECC_POINT` (§11.2.5.2).
fn read_ecc(r: &mut Reader<'_>) -> Result<(Option<KeyScheme>, PublicKey), TpmError> {
    read_sym_def_object(r)?;
    // TPMT_ECC_SCHEME (§11.2.5.6): every non-NULL scheme has a hashAlg; ECDAA adds a count.
    let scheme_alg = r.u16("TPMT_ECC_SCHEME.scheme")?;
    let scheme = match scheme_alg {
        TPM_ALG_NULL => None,
        TPM_ALG_ECDSA | TPM_ALG_ECDH | TPM_ALG_SM2 | TPM_ALG_ECSCHNORR | TPM_ALG_ECMQV => {
            Some(KeyScheme {
                scheme: scheme_alg,
                hash: Some(r.u16("TPMT_ECC_SCHEME.details.hashAlg")?),
            })
        }
        TPM_ALG_ECDAA => {
            let hash = r.u16("TPMT_ECC_SCHEME.details.hashAlg")?;
            r.u16("TPMS_SCHEME_ECDAA.count")?;
            Some(KeyScheme {
                scheme: scheme_alg,
                hash: Some(hash),
            })
        }
        other => {
            return Err(TpmError::UnsupportedAlgorithm {
                what: "TPMT_ECC_SCHEME.scheme",
                alg: other,
            });
        }
    };
    let curve = r.u16("TPMS_ECC_PARMS.curveID")?;
    if curve != TPM_ECC_NIST_P256 {
        return Err(TpmError::UnsupportedAlgorithm {
            what: "ECC curve",
            alg: curve,
        });
    }
    // TPMT_KDF_SCHEME (§11.2.3.3): NULL, or a scheme with a hashAlg.
    if r.u16("TPMT_KDF_SCHEME.scheme")? != TPM_ALG_NULL {
        r.u16("TPMT_KDF_SCHEME.details.hashAlg")?;
    }
    let x = fixed_32(
        r.tpm2b(MAX_ECC_KEY_BYTES, "TPMS_ECC_POINT.x")?,
        "TPMS_ECC_POINT.x",
    )?;
    let y = fixed_32(
        r.tpm2b(MAX_ECC_KEY_BYTES, "TPMS_ECC_POINT.y")?,
        "TPMS_ECC_POINT.y",
    )?;
    Ok((scheme, PublicKey::EccP256 { x, y }))
}

/// Left-pads a big-endian P-256 field element to 32 bytes; longer values must only carry leading
/// zeros.
pub(crate) fn fixed_32(v: &[u8], what: &'static str) -> Result<[u8; 32], TpmError> {
    let first = v.iter().position(|b| *b != 0).unwrap_or(v.len());
    let v = v.get(first..).unwrap_or_default();
    if v.len() > 32 {
        return Err(TpmError::Malformed { what });
    }
    let mut out = [0u8; 32];
    out[32 - v.len()..].copy_from_slice(v);
    Ok(out)
}

const OID_RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_PRIME256V1: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

fn spki(alg: &[u8], key: &[u8]) -> Vec<u8> {
    let bit_string = tlv(0x03, &[&[0u8][..], key].concat());
    tlv(0x30, &[alg, &bit_string[..]].concat())
}

/// DER INTEGER of an unsigned big-endian value (minimal, with a 0 byte if the top bit is set).
fn der_uint(v: &[u8]) -> Vec<u8> {
    let first = v
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(v.len().saturating_sub(1));
    let v = v.get(first..).unwrap_or_default();
    let mut body = Vec::with_capacity(v.len() + 1);
    if v.first().is_none_or(|b| b & 0x80 != 0) {
        body.push(0);
    }
    body.extend_from_slice(v);
    tlv(0x02, &body)
}

/// DER tag-length-value with a definite length.
fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = body.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes
            .iter()
            .position(|b| *b != 0)
            .unwrap_or(bytes.len() - 1);
        let n = bytes.len() - skip;
        out.push(0x80 | n as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_helpers() {
        assert_eq!(
            der_uint(&[0x01, 0x00, 0x01]),
            vec![0x02, 0x03, 0x01, 0x00, 0x01]
        );
        assert_eq!(der_uint(&[0x00, 0x00, 0x80]), vec![0x02, 0x02, 0x00, 0x80]);
        assert_eq!(der_uint(&[0x00]), vec![0x02, 0x01, 0x00]);
        assert_eq!(tlv(0x04, &[0u8; 300])[..4], [0x04, 0x82, 0x01, 0x2c]);
    }

    #[test]
    fn fixed_32_pads_and_rejects_long_values() {
        assert_eq!(fixed_32(&[1], "t").unwrap()[31], 1);
        let mut long = vec![0u8; 33];
        long[32] = 7;
        assert_eq!(fixed_32(&long, "t").unwrap()[31], 7);
        assert!(matches!(
            fixed_32(&[1u8; 33], "t"),
            Err(TpmError::Malformed { .. })
        ));
    }
}
