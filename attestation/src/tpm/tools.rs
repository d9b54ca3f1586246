//! The files tpm2-tools 5.x reads and writes, for `confidant evidence verify --tpm-*` and for
//! interoperating with `tpm2_quote` / `tpm2_checkquote`:
//!
//! | file | tool | format |
//! |---|---|---|
//! | message | `tpm2_quote -m` | marshalled `TPMS_ATTEST` (big-endian) |
//! | signature | `tpm2_quote -s` (default `-f tss`) | marshalled `TPMT_SIGNATURE` |
//! | AK | `tpm2_createak -u … -f pem` | `PUBLIC KEY` PEM (SPKI); or `-f tss`: `TPM2B_PUBLIC` |
//! | PCRs | `tpm2_quote -o` (default `-F serialized`) | host (little-endian) C structs, below |
//! | PCRs | `tpm2_quote -o -F values` | the selected digests, concatenated |
//!
//! The serialized PCR file is `TPML_PCR_SELECTION` as the C struct (u32 `count`, then 16 slots of
//! `TPMS_PCR_SELECTION` {u16 `hash`, u8 `sizeofSelect`, u8 `pcrSelect[4]`, 1 pad byte}), a u32
//! number of `TPML_DIGEST`s, then each `TPML_DIGEST` as the C struct (u32 `count`, 8 slots of
//! `TPM2B_DIGEST` {u16 `size`, 64-byte buffer}); values in selection order, 8 per `TPML_DIGEST`.
//! This layout was read off files written by tpm2-tools 5.4 (see `attestation/tests/tpm_tools.rs`).

use std::collections::{BTreeMap, BTreeSet};

use super::TpmError;
use super::attest::bitmap_to_pcrs;
use super::constants::*;
use super::public::{KeyScheme, PublicKey, TpmtPublic};
use super::signature::TpmtSignature;
use crate::evidence::TpmEvidence;

/// `TPMS_PCR_SELECTION` slots in the C struct (`TPM2_NUM_PCR_BANKS`).
const SEL_SLOTS: usize = 16;
/// Bytes of one `TPMS_PCR_SELECTION` slot (7 bytes of fields, 1 of padding).
const SEL_SLOT_LEN: usize = 8;
/// `TPM2_PCR_SELECT_MAX`: bitmap bytes in the C struct, so PCR indices are below 32.
const PCR_SELECT_MAX: usize = 4;
/// `TPM2B_DIGEST` slots in a `TPML_DIGEST` C struct.
const DIGEST_SLOTS: usize = 8;
/// Bytes of one `TPM2B_DIGEST` C struct.
const DIGEST_SLOT_LEN: usize = 2 + 64;
/// Bytes of one `TPML_DIGEST` C struct.
const TPML_DIGEST_LEN: usize = 4 + DIGEST_SLOTS * DIGEST_SLOT_LEN;
/// Bytes of the `TPML_PCR_SELECTION` C struct.
const TPML_SEL_LEN: usize = 4 + SEL_SLOTS * SEL_SLOT_LEN;
/// Number of PCRs a tpm2-tools PCR file can hold.
const MAX_TOOLS_PCRS: usize = PCR_SELECT_MAX * 8;

/// Attributes `tpm2_createak` gives an AK: fixedTPM, fixedParent, sensitiveDataOrigin,
/// userWithAuth, restricted, sign (TPMA_OBJECT, Part 2 §8.3.2).
pub const CREATEAK_ATTRIBUTES: u32 = 0x0005_0072;

/// Why tpm2-tools files could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToolsError {
    #[error(transparent)]
    Tpm(#[from] TpmError),
    #[error("PCR list is not of the form sha256:0,1,2")]
    BadPcrList,
    #[error("PCR file is neither tpm2-tools' serialized form nor raw values for the PCR list: {0}")]
    BadPcrFile(&'static str),
    #[error("PCR file selects other PCRs than the PCR list")]
    PcrFileSelectionMismatch,
    #[error("PCR index {0} cannot be written in tpm2-tools' PCR file (indices below 32)")]
    PcrIndexTooLarge(u8),
}

/// Evidence read from tpm2-tools files, and the attestation key the files named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolsEvidence {
    pub evidence: TpmEvidence,
    /// DER SubjectPublicKeyInfo of the AK file, for [`super::TpmTrustAnchors::enroll_ak_spki_der`].
    pub ak_spki_der: Vec<u8>,
}

/// Reads a quote from the files `tpm2_quote` writes. `ak` is a `PUBLIC KEY` PEM, a `TPM2B_PUBLIC`
/// or a `TPMT_PUBLIC`; `pcr_list` is the `-l` argument (SHA-256 bank only).
///
/// When the AK is only a PEM, its `TPMT_PUBLIC` is unknown: the evidence then carries the template
/// `tpm2_createak` uses ([`CREATEAK_ATTRIBUTES`], the signature's scheme). That is exactly the
/// claim a verifier makes by enrolling the key by its SPKI (that it is a restricted TPM AK); it
/// adds no trust of its own.
pub fn read_quote_files(
    message: &[u8],
    signature: &[u8],
    ak: &[u8],
    pcrs_file: &[u8],
    pcr_list: &str,
) -> Result<ToolsEvidence, ToolsError> {
    let indices = parse_pcr_list(pcr_list)?;
    let pcrs = parse_pcrs_file(pcrs_file, &indices)?;
    let (ak_public, ak_spki_der) = match std::str::from_utf8(ak)
        .ok()
        .filter(|s| s.trim_start().starts_with("-----BEGIN"))
    {
        Some(pem) => {
            let der = spki_der_from_pem(pem)?;
            let scheme = TpmtSignature::parse(signature)?;
            let public = ak_public_from_spki(&der, &scheme)?;
            (public, der)
        }
        None => {
            let tpmt = match TpmtPublic::tpm2b_contents(ak) {
                Ok(inner) if TpmtPublic::parse(inner).is_ok() => inner.to_vec(),
                _ => ak.to_vec(),
            };
            let parsed = TpmtPublic::parse(&tpmt)?;
            (tpmt, parsed.spki_der())
        }
    };
    Ok(ToolsEvidence {
        evidence: TpmEvidence {
            quote: message.to_vec(),
            signature: signature.to_vec(),
            ak_public,
            pcrs: pcrs
                .into_iter()
                .map(|(i, v)| (i, serde_bytes::ByteBuf::from(v.to_vec())))
                .collect(),
            event_log: None,
        },
        ak_spki_der,
    })
}

/// The DER SubjectPublicKeyInfo in a `PUBLIC KEY` PEM block (checked to be one, with nothing
/// after it).
pub fn spki_der_from_pem(pem: &str) -> Result<Vec<u8>, TpmError> {
    let block = pem::parse(pem).map_err(|_| TpmError::BadPublicKeyPem)?;
    if block.tag() != "PUBLIC KEY" {
        return Err(TpmError::BadPublicKeyPem);
    }
    use x509_parser::prelude::FromDer;
    match x509_parser::x509::SubjectPublicKeyInfo::from_der(block.contents()) {
        Ok(([], _)) => Ok(block.contents().to_vec()),
        _ => Err(TpmError::BadPublicKeyPem),
    }
}

/// A `TPMT_PUBLIC` describing an AK known only by its SPKI: `tpm2_createak`'s template, with the
/// scheme and hash of `signature`. The result re-encodes to exactly `spki_der`.
pub fn ak_public_from_spki(
    spki_der: &[u8],
    signature: &TpmtSignature,
) -> Result<Vec<u8>, TpmError> {
    use x509_parser::prelude::FromDer;
    use x509_parser::public_key::PublicKey as X509Key;
    let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(spki_der)
        .map_err(|_| TpmError::BadPublicKeyPem)?;
    let parsed = spki.parsed().map_err(|_| TpmError::BadPublicKeyPem)?;
    let key = match parsed {
        X509Key::RSA(rsa) => {
            let modulus = strip_zeros(rsa.modulus).to_vec();
            let e = strip_zeros(rsa.exponent);
            if e.len() > 4 {
                return Err(TpmError::BadPublicKeyPem);
            }
            let exponent = e.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b));
            let key_bits =
                u16::try_from(modulus.len() * 8).map_err(|_| TpmError::BadPublicKeyPem)?;
            PublicKey::Rsa {
                key_bits,
                exponent,
                modulus,
            }
        }
        X509Key::EC(point) => {
            let data = point.data();
            if data.len() != 65 || data.first() != Some(&0x04) {
                return Err(TpmError::BadPublicKeyPem);
            }
            let mut x = [0u8; 32];
            let mut y = [0u8; 32];
            x.copy_from_slice(data.get(1..33).ok_or(TpmError::BadPublicKeyPem)?);
            y.copy_from_slice(data.get(33..65).ok_or(TpmError::BadPublicKeyPem)?);
            PublicKey::EccP256 { x, y }
        }
        _ => return Err(TpmError::BadPublicKeyPem),
    };
    let public = TpmtPublic {
        name_alg: TPM_ALG_SHA256,
        object_attributes: CREATEAK_ATTRIBUTES,
        auth_policy: Vec::new(),
        scheme: Some(KeyScheme {
            scheme: signature.scheme(),
            hash: Some(signature.hash()),
        }),
        key,
    };
    let bytes = public.marshal();
    // The key must round-trip (same curve, canonical encoding), or enrolment by SPKI would not
    // recognise it.
    if TpmtPublic::parse(&bytes)?.spki_der() != spki_der {
        return Err(TpmError::BadPublicKeyPem);
    }
    Ok(bytes)
}

fn strip_zeros(v: &[u8]) -> &[u8] {
    let first = v.iter().position(|b| *b != 0).unwrap_or(v.len());
    v.get(first..).unwrap_or_default()
}

/// Parses a `-l` PCR list: `sha256:0,1,2` (SHA-256 bank only; any order, no duplicates).
/// Returns the indices in ascending order.
pub fn parse_pcr_list(list: &str) -> Result<Vec<u8>, ToolsError> {
    let rest = list
        .trim()
        .strip_prefix("sha256:")
        .ok_or(ToolsError::BadPcrList)?;
    let mut set = BTreeSet::new();
    for item in rest.split(',') {
        let i: u8 = item.trim().parse().map_err(|_| ToolsError::BadPcrList)?;
        if !set.insert(i) {
            return Err(ToolsError::BadPcrList);
        }
    }
    Ok(set.into_iter().collect())
}

/// Reads the PCR file `tpm2_quote -o` wrote for `indices` (ascending), in the default serialized
/// form or as raw values (`-F values`).
pub fn parse_pcrs_file(bytes: &[u8], indices: &[u8]) -> Result<BTreeMap<u8, [u8; 32]>, ToolsError> {
    if bytes.len() == indices.len() * 32 {
        return Ok(indices
            .iter()
            .zip(bytes.chunks_exact(32))
            .filter_map(|(i, v)| Some((*i, <[u8; 32]>::try_from(v).ok()?)))
            .collect());
    }
    parse_serialized(bytes, indices)
}

struct Le<'a>(&'a [u8]);

impl<'a> Le<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ToolsError> {
        if n > self.0.len() {
            return Err(ToolsError::BadPcrFile("truncated"));
        }
        let (h, t) = self.0.split_at(n);
        self.0 = t;
        Ok(h)
    }
    fn u16(&mut self) -> Result<u16, ToolsError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, ToolsError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}

fn parse_serialized(bytes: &[u8], indices: &[u8]) -> Result<BTreeMap<u8, [u8; 32]>, ToolsError> {
    if bytes.len() > TPML_SEL_LEN + 4 + MAX_TOOLS_PCRS * TPML_DIGEST_LEN {
        return Err(ToolsError::BadPcrFile("too large"));
    }
    let mut r = Le(bytes);
    // TPML_PCR_SELECTION.
    let count = r.u32()? as usize;
    if count > SEL_SLOTS {
        return Err(ToolsError::BadPcrFile("selection count"));
    }
    let mut selected = Vec::new();
    for slot in 0..SEL_SLOTS {
        let hash = r.u16()?;
        let size = usize::from(r.take(1)?[0]);
        let bitmap = r.take(PCR_SELECT_MAX)?;
        r.take(1)?;
        if slot >= count {
            continue;
        }
        if size > PCR_SELECT_MAX {
            return Err(ToolsError::BadPcrFile("sizeofSelect"));
        }
        let pcrs = bitmap_to_pcrs(bitmap.get(..size).unwrap_or_default());
        if pcrs.is_empty() {
            continue;
        }
        if hash != TPM_ALG_SHA256 {
            return Err(TpmError::UnsupportedAlgorithm {
                what: "PCR bank",
                alg: hash,
            }
            .into());
        }
        selected.extend(pcrs);
    }
    if selected.as_slice() != indices {
        return Err(ToolsError::PcrFileSelectionMismatch);
    }
    // The digests, 8 per TPML_DIGEST.
    let lists = r.u32()? as usize;
    if lists != selected.len().div_ceil(DIGEST_SLOTS) {
        return Err(ToolsError::BadPcrFile("digest list count"));
    }
    let mut values = Vec::with_capacity(selected.len());
    for _ in 0..lists {
        let n = r.u32()? as usize;
        if n > DIGEST_SLOTS {
            return Err(ToolsError::BadPcrFile("digest count"));
        }
        for slot in 0..DIGEST_SLOTS {
            let size = usize::from(r.u16()?);
            let buf = r.take(64)?;
            if slot >= n {
                continue;
            }
            let v: [u8; 32] = buf
                .get(..size)
                .and_then(|v| v.try_into().ok())
                .ok_or(ToolsError::BadPcrFile("digest size"))?;
            values.push(v);
        }
    }
    if !r.0.is_empty() {
        return Err(ToolsError::BadPcrFile("trailing bytes"));
    }
    if values.len() != selected.len() {
        return Err(ToolsError::BadPcrFile("digest count"));
    }
    Ok(selected.into_iter().zip(values).collect())
}

/// Writes SHA-256 PCR values as `tpm2_quote -o` does by default (serialized), for
/// `tpm2_checkquote -f`.
pub fn write_pcrs_file(pcrs: &BTreeMap<u8, [u8; 32]>) -> Result<Vec<u8>, ToolsError> {
    let mut bitmap = [0u8; PCR_SELECT_MAX];
    for i in pcrs.keys() {
        let byte = bitmap
            .get_mut(usize::from(*i / 8))
            .ok_or(ToolsError::PcrIndexTooLarge(*i))?;
        *byte |= 1 << (i % 8);
    }
    let mut out = Vec::new();
    out.extend_from_slice(&1u32.to_le_bytes());
    for slot in 0..SEL_SLOTS {
        if slot == 0 {
            out.extend_from_slice(&TPM_ALG_SHA256.to_le_bytes());
            out.push(3);
            out.extend_from_slice(&bitmap);
        } else {
            out.extend_from_slice(&[0u8; 7]);
        }
        out.push(0);
    }
    let values: Vec<&[u8; 32]> = pcrs.values().collect();
    let chunks: Vec<&[&[u8; 32]]> = values.chunks(DIGEST_SLOTS).collect();
    out.extend_from_slice(&(chunks.len() as u32).to_le_bytes());
    for chunk in chunks {
        out.extend_from_slice(&(chunk.len() as u32).to_le_bytes());
        for slot in 0..DIGEST_SLOTS {
            let mut buf = [0u8; 64];
            let size: u16 = match chunk.get(slot) {
                Some(v) => {
                    buf[..32].copy_from_slice(&v[..]);
                    32
                }
                None => 0,
            };
            out.extend_from_slice(&size.to_le_bytes());
            out.extend_from_slice(&buf);
        }
    }
    Ok(out)
}

/// Files for `tpm2_checkquote -u ak.pem -m msg -s sig -f pcrs -g sha256 -q <qualifying data>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolsFiles {
    /// `-m`: the `TPMS_ATTEST` bytes, unchanged.
    pub message: Vec<u8>,
    /// `-s`: the `TPMT_SIGNATURE` bytes, unchanged.
    pub signature: Vec<u8>,
    /// `-u`: the AK as a `PUBLIC KEY` PEM.
    pub ak_pem: String,
    /// `-f`: the PCR values, serialized.
    pub pcrs: Vec<u8>,
}

/// Writes evidence out in tpm2-tools' formats.
pub fn write_quote_files(ev: &TpmEvidence) -> Result<ToolsFiles, ToolsError> {
    let ak = TpmtPublic::parse(&ev.ak_public)?;
    let mut pcrs = BTreeMap::new();
    for (i, v) in &ev.pcrs {
        let v: [u8; 32] = v
            .as_slice()
            .try_into()
            .map_err(|_| TpmError::PcrValueLength {
                index: *i,
                len: v.len(),
            })?;
        pcrs.insert(*i, v);
    }
    let pem = pem::Pem::new("PUBLIC KEY", ak.spki_der());
    Ok(ToolsFiles {
        message: ev.quote.clone(),
        signature: ev.signature.clone(),
        ak_pem: pem::encode_config(
            &pem,
            pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
        ),
        pcrs: write_pcrs_file(&pcrs)?,
    })
}
