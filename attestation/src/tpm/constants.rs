//! TPM 2.0 constants used by quote verification (TPM 2.0 Library, Part 2: Structures, rev 1.59).

/// `TPM_GENERATED_VALUE` (Part 2 §6.2, Table 7): prefix of every structure the TPM signs itself.
pub const TPM_GENERATED_VALUE: u32 = 0xff54_4347;

/// `TPM_ST_ATTEST_QUOTE` (Part 2 §6.9, Table 19): TPMS_ATTEST produced by TPM2_Quote.
pub const TPM_ST_ATTEST_QUOTE: u16 = 0x8018;

// `TPM_ALG_ID` (Part 2 §6.3, Table 9).
pub const TPM_ALG_RSA: u16 = 0x0001;
pub const TPM_ALG_SHA1: u16 = 0x0004;
pub const TPM_ALG_HMAC: u16 = 0x0005;
pub const TPM_ALG_SHA256: u16 = 0x000B;
pub const TPM_ALG_SHA384: u16 = 0x000C;
pub const TPM_ALG_SHA512: u16 = 0x000D;
pub const TPM_ALG_NULL: u16 = 0x0010;
pub const TPM_ALG_RSASSA: u16 = 0x0014;
pub const TPM_ALG_RSAES: u16 = 0x0015;
pub const TPM_ALG_RSAPSS: u16 = 0x0016;
pub const TPM_ALG_OAEP: u16 = 0x0017;
pub const TPM_ALG_ECDSA: u16 = 0x0018;
pub const TPM_ALG_ECDH: u16 = 0x0019;
pub const TPM_ALG_ECDAA: u16 = 0x001A;
pub const TPM_ALG_SM2: u16 = 0x001B;
pub const TPM_ALG_ECSCHNORR: u16 = 0x001C;
pub const TPM_ALG_ECMQV: u16 = 0x001D;
pub const TPM_ALG_ECC: u16 = 0x0023;

/// `TPM_ECC_NIST_P256` (Part 2 §6.4, Table 10).
pub const TPM_ECC_NIST_P256: u16 = 0x0003;

// `TPMA_OBJECT` bits (Part 2 §8.3.2, Table 31).
pub const TPMA_OBJECT_FIXED_TPM: u32 = 1 << 1;
pub const TPMA_OBJECT_RESTRICTED: u32 = 1 << 16;
pub const TPMA_OBJECT_DECRYPT: u32 = 1 << 17;
pub const TPMA_OBJECT_SIGN_ENCRYPT: u32 = 1 << 18;

/// Size of the largest digest (`TPMU_HA`, Part 2 §10.3.1) a TPM implements; bounds TPM2B_DIGEST
/// and TPM2B_DATA.
pub const MAX_DIGEST: usize = 64;
/// `TPM2B_NAME` holds a `TPMU_NAME` (Part 2 §10.5.3): a handle or a `TPMT_HA`.
pub const MAX_NAME: usize = 2 + MAX_DIGEST;
/// `HASH_COUNT` upper bound for `TPML_PCR_SELECTION.count` (Part 2 §10.9.7).
pub const MAX_PCR_BANKS: u32 = 16;
/// Largest `sizeofSelect` whose PCR indices still fit a `u8` (32 bytes = 256 PCRs).
pub const MAX_SIZEOF_SELECT: u8 = 32;
/// Largest marshalled structure accepted (a TPM's `MAX_RESPONSE_SIZE` is 4096 bytes).
pub const MAX_STRUCTURE: usize = 4096;

/// Printable name of a `TPM_ALG_ID`, for errors and claims.
pub fn alg_name(alg: u16) -> &'static str {
    match alg {
        TPM_ALG_RSA => "rsa",
        TPM_ALG_SHA1 => "sha1",
        TPM_ALG_HMAC => "hmac",
        TPM_ALG_SHA256 => "sha256",
        TPM_ALG_SHA384 => "sha384",
        TPM_ALG_SHA512 => "sha512",
        TPM_ALG_NULL => "null",
        TPM_ALG_RSASSA => "rsassa",
        TPM_ALG_RSAES => "rsaes",
        TPM_ALG_RSAPSS => "rsapss",
        TPM_ALG_OAEP => "oaep",
        TPM_ALG_ECDSA => "ecdsa",
        TPM_ALG_ECDH => "ecdh",
        TPM_ALG_ECDAA => "ecdaa",
        TPM_ALG_SM2 => "sm2",
        TPM_ALG_ECSCHNORR => "ecschnorr",
        TPM_ALG_ECMQV => "ecmqv",
        TPM_ALG_ECC => "ecc",
        _ => "unknown",
    }
}
