//! `TPMT_SIGNATURE` (TPM 2.0 Part 2, §11.3.4) for RSASSA, RSAPSS and ECDSA, and its check
//! against an attestation key with `ring`.

use ring::signature::{self as sig, RsaPublicKeyComponents, UnparsedPublicKey};

use super::TpmError;
use super::constants::*;
use super::marshal::{Reader, bounded};
use super::public::{MAX_ECC_KEY_BYTES, MAX_RSA_KEY_BYTES, PublicKey, TpmtPublic, fixed_32};

/// `TPMT_SIGNATURE` (§11.3.4, Table 196) with the `TPMU_SIGNATURE` arms (§11.3.3) a quote
/// verifier accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TpmtSignature {
    /// `TPMS_SIGNATURE_RSA` (§11.3.1) with `sigAlg` `TPM_ALG_RSASSA` (PKCS#1 v1.5).
    RsaSsa { hash: u16, sig: Vec<u8> },
    /// `TPMS_SIGNATURE_RSA` with `sigAlg` `TPM_ALG_RSAPSS`.
    RsaPss { hash: u16, sig: Vec<u8> },
    /// `TPMS_SIGNATURE_ECC` (§11.3.2) with `sigAlg` `TPM_ALG_ECDSA`; `r` and `s` as the TPM
    /// marshalled them (`TPM2B_ECC_PARAMETER`).
    EcDsa { hash: u16, r: Vec<u8>, s: Vec<u8> },
}

impl TpmtSignature {
    /// Parses a marshalled `TPMT_SIGNATURE` exactly (no trailing bytes).
    pub fn parse(bytes: &[u8]) -> Result<Self, TpmError> {
        bounded(bytes, MAX_STRUCTURE, "TPMT_SIGNATURE")?;
        let mut r = Reader::new(bytes);
        let sig_alg = r.u16("TPMT_SIGNATURE.sigAlg")?;
        let out = match sig_alg {
            TPM_ALG_RSASSA | TPM_ALG_RSAPSS => {
                let hash = r.u16("TPMS_SIGNATURE_RSA.hash")?;
                let sig = r
                    .tpm2b(MAX_RSA_KEY_BYTES, "TPMS_SIGNATURE_RSA.sig")?
                    .to_vec();
                if sig_alg == TPM_ALG_RSASSA {
                    TpmtSignature::RsaSsa { hash, sig }
                } else {
                    TpmtSignature::RsaPss { hash, sig }
                }
            }
            TPM_ALG_ECDSA => {
                let hash = r.u16("TPMS_SIGNATURE_ECC.hash")?;
                let r_ = r
                    .tpm2b(MAX_ECC_KEY_BYTES, "TPMS_SIGNATURE_ECC.signatureR")?
                    .to_vec();
                let s = r
                    .tpm2b(MAX_ECC_KEY_BYTES, "TPMS_SIGNATURE_ECC.signatureS")?
                    .to_vec();
                TpmtSignature::EcDsa { hash, r: r_, s }
            }
            other => {
                return Err(TpmError::UnsupportedAlgorithm {
                    what: "TPMT_SIGNATURE.sigAlg",
                    alg: other,
                });
            }
        };
        r.finish("TPMT_SIGNATURE")?;
        Ok(out)
    }

    /// `sigAlg`.
    pub fn scheme(&self) -> u16 {
        match self {
            TpmtSignature::RsaSsa { .. } => TPM_ALG_RSASSA,
            TpmtSignature::RsaPss { .. } => TPM_ALG_RSAPSS,
            TpmtSignature::EcDsa { .. } => TPM_ALG_ECDSA,
        }
    }

    /// The signature's `hash` algorithm.
    pub fn hash(&self) -> u16 {
        match self {
            TpmtSignature::RsaSsa { hash, .. }
            | TpmtSignature::RsaPss { hash, .. }
            | TpmtSignature::EcDsa { hash, .. } => *hash,
        }
    }

    /// Checks this signature over `message` (the bytes received, never a re-encoding) with
    /// `key`. The hash must be SHA-256, and the scheme must be the key's own when the key names one
    /// (a restricted key signs only with its scheme, Part 1 §25.2.1).
    pub fn verify(&self, key: &TpmtPublic, message: &[u8]) -> Result<(), TpmError> {
        if self.hash() != TPM_ALG_SHA256 {
            return Err(TpmError::UnsupportedAlgorithm {
                what: "signature hash",
                alg: self.hash(),
            });
        }
        if let Some(s) = key.scheme
            && (s.scheme != self.scheme() || s.hash != Some(self.hash()))
        {
            return Err(TpmError::SchemeMismatch {
                key: s.scheme,
                signature: self.scheme(),
            });
        }
        let ok = match (&key.key, self) {
            (
                PublicKey::Rsa {
                    exponent, modulus, ..
                },
                TpmtSignature::RsaSsa { sig: s, .. },
            ) => rsa_components(modulus, exponent)
                .verify(&sig::RSA_PKCS1_2048_8192_SHA256, message, s)
                .is_ok(),
            (
                PublicKey::Rsa {
                    exponent, modulus, ..
                },
                TpmtSignature::RsaPss { sig: s, .. },
            ) => rsa_components(modulus, exponent)
                .verify(&sig::RSA_PSS_2048_8192_SHA256, message, s)
                .is_ok(),
            (PublicKey::EccP256 { x, y }, TpmtSignature::EcDsa { r, s, .. }) => {
                let (Ok(r), Ok(s)) = (fixed_32(r, "ECDSA r"), fixed_32(s, "ECDSA s")) else {
                    return Err(TpmError::BadSignature);
                };
                let point = [&[0x04u8][..], &x[..], &y[..]].concat();
                let fixed = [r, s].concat();
                UnparsedPublicKey::new(&sig::ECDSA_P256_SHA256_FIXED, point)
                    .verify(message, &fixed)
                    .is_ok()
            }
            _ => {
                return Err(TpmError::SchemeMismatch {
                    key: match key.key {
                        PublicKey::Rsa { .. } => TPM_ALG_RSA,
                        PublicKey::EccP256 { .. } => TPM_ALG_ECC,
                    },
                    signature: self.scheme(),
                });
            }
        };
        if ok {
            Ok(())
        } else {
            Err(TpmError::BadSignature)
        }
    }
}

fn rsa_components(modulus: &[u8], exponent: &u32) -> RsaPublicKeyComponents<Vec<u8>> {
    let e = exponent.to_be_bytes();
    let first = e.iter().position(|b| *b != 0).unwrap_or(3);
    RsaPublicKeyComponents {
        n: modulus.to_vec(),
        e: e.get(first..).unwrap_or_default().to_vec(),
    }
}
