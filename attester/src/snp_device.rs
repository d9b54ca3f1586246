//! SEV-SNP evidence from the guest device `/dev/sev-guest` (Linux `sev-guest` driver), through the
//! `sev` crate's `SNP_GET_EXT_REPORT`: the report plus the host-provided certificate table (VCEK or
//! VLEK, and usually ASK and ARK).
//!
//! The report bytes are passed on exactly as the firmware returned them. They are parsed once here
//! only to pick the certificate the report names (VCEK or VLEK) and to fail early on a device that
//! returns something the verifier would refuse.

use std::path::PathBuf;
#[cfg(target_os = "linux")]
use std::sync::Mutex;

use confidant_attestation::evidence::SnpEvidence;
use confidant_attestation::snp::{SigningKey, SnpReport};

use crate::error::AttesterError;

/// The SEV-SNP guest device.
pub const SEV_GUEST_DEVICE: &str = "/dev/sev-guest";

/// Certificates from the host's extended-report certificate table, DER.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertTable {
    pub vcek: Option<Vec<u8>>,
    pub vlek: Option<Vec<u8>>,
    pub ask: Option<Vec<u8>>,
    pub ark: Option<Vec<u8>>,
}

impl CertTable {
    /// Assembles the evidence for `report`: the certificate of the kind the report names, and the
    /// `[ASK, ARK]` chain when the host supplied both (otherwise the verifier uses its pinned
    /// roots). `fallback` is used when the host supplied no signer certificate.
    pub fn evidence(
        &self,
        report: Vec<u8>,
        fallback: Option<&[u8]>,
    ) -> Result<SnpEvidence, AttesterError> {
        let parsed = SnpReport::parse(&report)?;
        let (signer, name) = match parsed.signing_key {
            SigningKey::Vcek => (self.vcek.as_deref(), "VCEK"),
            SigningKey::Vlek => (self.vlek.as_deref(), "VLEK"),
        };
        let signer_cert = signer
            .or(fallback)
            .ok_or(AttesterError::MissingEndorsement(name))?
            .to_vec();
        let chain = match (&self.ask, &self.ark) {
            (Some(ask), Some(ark)) => Some(vec![
                serde_bytes::ByteBuf::from(ask.clone()),
                serde_bytes::ByteBuf::from(ark.clone()),
            ]),
            _ => None,
        };
        Ok(SnpEvidence {
            report,
            signer_cert,
            chain,
        })
    }
}

/// An open `/dev/sev-guest`.
#[derive(Debug)]
pub struct DeviceSnp {
    #[cfg(target_os = "linux")]
    fw: Mutex<sev::firmware::guest::Firmware>,
    vmpl: u32,
    fallback_signer: Option<Vec<u8>>,
}

impl DeviceSnp {
    /// Opens the guest device. Fails with [`AttesterError::DeviceUnavailable`] outside an SEV-SNP
    /// guest (or without permission).
    pub fn open() -> Result<Self, AttesterError> {
        #[cfg(target_os = "linux")]
        {
            let fw = sev::firmware::guest::Firmware::open().map_err(|e| {
                AttesterError::DeviceUnavailable {
                    path: PathBuf::from(SEV_GUEST_DEVICE),
                    reason: e.to_string(),
                }
            })?;
            Ok(DeviceSnp {
                fw: Mutex::new(fw),
                vmpl: 0,
                fallback_signer: None,
            })
        }
        #[cfg(not(target_os = "linux"))]
        {
            Err(AttesterError::DeviceUnavailable {
                path: PathBuf::from(SEV_GUEST_DEVICE),
                reason: "SEV-SNP guests are supported on Linux only".to_string(),
            })
        }
    }

    /// The VMPL to request the report at (0 by default; must be at least the guest's own VMPL).
    pub fn with_vmpl(mut self, vmpl: u32) -> Self {
        self.vmpl = vmpl;
        self
    }

    /// A VCEK/VLEK (DER) to use when the host supplies no certificate table (for example one
    /// fetched from AMD KDS at deployment).
    pub fn with_signer_cert(mut self, der: Vec<u8>) -> Self {
        self.fallback_signer = Some(der);
        self
    }

    /// Requests an extended report carrying `report_data`.
    #[cfg(target_os = "linux")]
    pub fn attest(&self, report_data: &[u8; 64]) -> Result<SnpEvidence, AttesterError> {
        use sev::firmware::host::CertType;

        let (report, certs) = {
            let mut fw = self.fw.lock().map_err(|_| AttesterError::SnpFirmware {
                op: "SNP_GET_EXT_REPORT",
                reason: "device handle poisoned by an earlier panic".to_string(),
            })?;
            fw.get_ext_report(None, Some(*report_data), Some(self.vmpl))
                .map_err(|e| AttesterError::SnpFirmware {
                    op: "SNP_GET_EXT_REPORT",
                    reason: e.to_string(),
                })?
        };
        let mut table = CertTable::default();
        for entry in certs.unwrap_or_default() {
            let slot = match entry.cert_type {
                CertType::VCEK => &mut table.vcek,
                CertType::VLEK => &mut table.vlek,
                CertType::ASK => &mut table.ask,
                CertType::ARK => &mut table.ark,
                _ => continue,
            };
            *slot = Some(entry.data);
        }
        table.evidence(report, self.fallback_signer.as_deref())
    }

    /// Requests an extended report carrying `report_data`.
    #[cfg(not(target_os = "linux"))]
    pub fn attest(&self, _report_data: &[u8; 64]) -> Result<SnpEvidence, AttesterError> {
        Err(AttesterError::DeviceUnavailable {
            path: PathBuf::from(SEV_GUEST_DEVICE),
            reason: "SEV-SNP guests are supported on Linux only".to_string(),
        })
    }
}
