//! Errors of the evidence producers (one enum for the crate; each producer adds its variants).

/// Why evidence could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum AttesterError {
    /// The TCTI string could not be parsed (for example `swtpm:host=127.0.0.1,port=2321`).
    #[error("invalid TCTI configuration {0:?}")]
    InvalidTcti(String),
    /// A TPM command failed.
    #[error("TPM command {op} failed: {source}")]
    Tpm {
        op: &'static str,
        #[source]
        source: tss_esapi::Error,
    },
    /// A PCR index outside 0..=23 (the PCRs every PC-client TPM implements).
    #[error("PCR index {0} is not supported")]
    InvalidPcr(u8),
    /// Qualifying data longer than a `TPM2B_DATA` can carry.
    #[error("qualifying data is {0} bytes, over the 64-byte limit")]
    QualifyingDataTooLong(usize),
    /// The TPM returned something the verifier's parser rejects (never expected from a real TPM).
    #[error("the TPM returned an unexpected structure: {0}")]
    UnexpectedTpmOutput(#[from] confidant_attestation::tpm::TpmError),
    /// The PCRs kept changing between reading and quoting them.
    #[error("PCR values changed while quoting; gave up after {0} attempts")]
    PcrsUnstable(u32),
    /// The SEV-SNP guest device cannot be opened (not an SEV-SNP guest, no driver, no permission).
    #[error("SEV-SNP guest device {path} unavailable: {reason}")]
    DeviceUnavailable {
        path: std::path::PathBuf,
        reason: String,
    },
    /// The SEV-SNP firmware refused a request (the message is the firmware/driver status).
    #[error("SEV-SNP firmware request {op} failed: {reason}")]
    SnpFirmware { op: &'static str, reason: String },
    /// Neither the host's certificate table nor the configuration supplied the VCEK/VLEK.
    #[error("no {0} certificate: the host supplied none and none was configured")]
    MissingEndorsement(&'static str),
    /// The SEV-SNP report or a certificate does not parse as the verifier expects.
    #[error("SEV-SNP structure rejected: {0}")]
    SnpStructure(#[from] confidant_attestation::snp::SnpError),
    /// A development PKI file could not be read.
    #[error("reading {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The simulated attester's private key is not a PKCS#8 ECDSA P-384 key.
    #[error("the development VCEK key is not a valid PKCS#8 P-384 key")]
    InvalidKey,
    /// The private key does not belong to the development VCEK.
    #[error("the development VCEK key does not match the VCEK certificate")]
    KeyMismatch,
    /// The development VCEK is unusable for the simulator (product, hwID).
    #[error("the development VCEK is unsupported: {0}")]
    UnsupportedDevVcek(&'static str),
    /// Signing or random generation failed.
    #[error("cryptographic operation failed: {0}")]
    Crypto(&'static str),
}
