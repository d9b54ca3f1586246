//! `TPMS_ATTEST` for quotes (TPM 2.0 Part 2, §10.12.12), with `TPMS_CLOCK_INFO` (§10.11.1),
//! `TPMS_QUOTE_INFO` (§10.12.4) and `TPML_PCR_SELECTION` / `TPMS_PCR_SELECTION` (§10.9.7, §10.6.2).

use std::collections::BTreeSet;

use super::TpmError;
use super::constants::{
    MAX_DIGEST, MAX_NAME, MAX_PCR_BANKS, MAX_SIZEOF_SELECT, MAX_STRUCTURE, TPM_GENERATED_VALUE,
    TPM_ST_ATTEST_QUOTE,
};
use super::marshal::{Reader, bounded};

/// `TPMS_CLOCK_INFO` (Part 2 §10.11.1, Table 120).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct TpmsClockInfo {
    /// Milliseconds the TPM has been powered since its last `TPM2_Clear`.
    pub clock: u64,
    /// `TPM_Init` events since the last `TPM2_Clear`.
    pub reset_count: u32,
    /// `TPM2_Shutdown(STATE)`/`TPM2_Startup(STATE)` pairs since the last reset.
    pub restart_count: u32,
    /// `TPMI_YES_NO`: no clock value was lost since it was last reported.
    pub safe: bool,
}

/// `TPMS_PCR_SELECTION` (Part 2 §10.6.2, Table 94): one bank and a bitmap of PCR indices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TpmsPcrSelection {
    /// `TPMI_ALG_HASH` of the bank.
    pub hash: u16,
    /// PCR indices set in `pcrSelect`, in ascending order (the order the TPM hashes them).
    pub pcrs: BTreeSet<u8>,
}

/// `TPMS_QUOTE_INFO` (Part 2 §10.12.4, Table 126).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TpmsQuoteInfo {
    /// `TPML_PCR_SELECTION` (§10.9.7), in the order the TPM listed the banks.
    pub pcr_select: Vec<TpmsPcrSelection>,
    /// `TPM2B_DIGEST`: hash of the selected PCR values, by the signing scheme's hash.
    pub pcr_digest: Vec<u8>,
}

/// `TPMS_ATTEST` (Part 2 §10.12.12, Table 132) whose `type` is `TPM_ST_ATTEST_QUOTE`, so the
/// `TPMU_ATTEST` union (§10.12.11) holds a [`TpmsQuoteInfo`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TpmsAttest {
    /// `TPM2B_NAME qualifiedSigner`: qualified name of the signing key.
    pub qualified_signer: Vec<u8>,
    /// `TPM2B_DATA extraData`: the caller's qualifying data (the Confidant binding).
    pub extra_data: Vec<u8>,
    pub clock_info: TpmsClockInfo,
    /// Vendor-specific firmware version.
    pub firmware_version: u64,
    pub quote: TpmsQuoteInfo,
}

impl TpmsAttest {
    /// Parses a marshalled quote exactly: magic and type checked, every byte consumed.
    pub fn parse_quote(bytes: &[u8]) -> Result<Self, TpmError> {
        bounded(bytes, MAX_STRUCTURE, "TPMS_ATTEST")?;
        let mut r = Reader::new(bytes);
        let magic = r.u32("TPMS_ATTEST.magic")?;
        if magic != TPM_GENERATED_VALUE {
            return Err(TpmError::BadMagic(magic));
        }
        let st = r.u16("TPMS_ATTEST.type")?;
        if st != TPM_ST_ATTEST_QUOTE {
            return Err(TpmError::NotAQuote(st));
        }
        let qualified_signer = r.tpm2b(MAX_NAME, "TPMS_ATTEST.qualifiedSigner")?.to_vec();
        let extra_data = r.tpm2b(MAX_DIGEST, "TPMS_ATTEST.extraData")?.to_vec();
        let clock_info = parse_clock_info(&mut r)?;
        let firmware_version = r.u64("TPMS_ATTEST.firmwareVersion")?;
        let pcr_select = parse_pcr_selection_list(&mut r)?;
        let pcr_digest = r.tpm2b(MAX_DIGEST, "TPMS_QUOTE_INFO.pcrDigest")?.to_vec();
        r.finish("TPMS_ATTEST")?;
        Ok(TpmsAttest {
            qualified_signer,
            extra_data,
            clock_info,
            firmware_version,
            quote: TpmsQuoteInfo {
                pcr_select,
                pcr_digest,
            },
        })
    }
}

fn parse_clock_info(r: &mut Reader<'_>) -> Result<TpmsClockInfo, TpmError> {
    let clock = r.u64("TPMS_CLOCK_INFO.clock")?;
    let reset_count = r.u32("TPMS_CLOCK_INFO.resetCount")?;
    let restart_count = r.u32("TPMS_CLOCK_INFO.restartCount")?;
    let safe = match r.u8("TPMS_CLOCK_INFO.safe")? {
        0 => false,
        1 => true,
        _ => {
            return Err(TpmError::Malformed {
                what: "TPMS_CLOCK_INFO.safe",
            });
        }
    };
    Ok(TpmsClockInfo {
        clock,
        reset_count,
        restart_count,
        safe,
    })
}

/// `TPML_PCR_SELECTION` (Part 2 §10.9.7): `count`, then `count` × `TPMS_PCR_SELECTION`.
pub(crate) fn parse_pcr_selection_list(
    r: &mut Reader<'_>,
) -> Result<Vec<TpmsPcrSelection>, TpmError> {
    let count = r.u32("TPML_PCR_SELECTION.count")?;
    if count > MAX_PCR_BANKS {
        return Err(TpmError::Malformed {
            what: "TPML_PCR_SELECTION.count",
        });
    }
    let mut out = Vec::new();
    for _ in 0..count {
        let hash = r.u16("TPMS_PCR_SELECTION.hash")?;
        let size = r.u8("TPMS_PCR_SELECTION.sizeofSelect")?;
        if size > MAX_SIZEOF_SELECT {
            return Err(TpmError::Malformed {
                what: "TPMS_PCR_SELECTION.sizeofSelect",
            });
        }
        let bitmap = r.bytes(usize::from(size), "TPMS_PCR_SELECTION.pcrSelect")?;
        out.push(TpmsPcrSelection {
            hash,
            pcrs: bitmap_to_pcrs(bitmap),
        });
    }
    Ok(out)
}

/// PCR `n` is selected by bit `n % 8` of byte `n / 8` (Part 2 §10.6.2).
pub(crate) fn bitmap_to_pcrs(bitmap: &[u8]) -> BTreeSet<u8> {
    let mut set = BTreeSet::new();
    for (byte_index, byte) in bitmap.iter().enumerate() {
        for bit in 0..8u8 {
            if byte & (1 << bit) != 0 {
                // byte_index < MAX_SIZEOF_SELECT (32), so the index fits a u8.
                if let Ok(i) = u8::try_from(byte_index * 8 + usize::from(bit)) {
                    set.insert(i);
                }
            }
        }
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitmap_order() {
        let set = bitmap_to_pcrs(&[0b1000_0001, 0, 0b0000_0001]);
        assert_eq!(set.into_iter().collect::<Vec<_>>(), vec![0, 7, 16]);
        let all = bitmap_to_pcrs(&[0xff; 32]);
        assert_eq!(all.len(), 256);
    }
}
