//! Simulated SEV-SNP attester for development without hardware.
//!
//! Builds real-format version-3 `ATTESTATION_REPORT`s (AMD pub. 56860, "ATTESTATION_REPORT
//! Structure") and signs them with a development VCEK key (`scripts/dev-pki.sh`), exactly as the
//! AMD Secure Processor would: ECDSA P-384 / SHA-384 over bytes 0x000..0x2A0, `r` and `s`
//! little-endian in 72-byte fields. The report's `reported_tcb` and `chip_id` are taken from the
//! development VCEK's extensions, so they match by construction. The result passes the same
//! verification as hardware evidence and is accepted only where the development root is trusted,
//! and then marked `dev`.

use std::path::Path;

use confidant_attestation::evidence::SnpEvidence;
use confidant_attestation::snp::report::{SIG_ALGO_ECDSA_P384_SHA384, layout};
use confidant_attestation::snp::{
    self, Cpuid, FirmwareVersion, GuestPolicy, Product, REPORT_LEN, TcbLayout, TcbVersion,
};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use zeroize::Zeroizing;

use crate::error::AttesterError;

/// Guest policy of simulated reports: ABI 0.0, SMT allowed, reserved bit 17 set, no migration
/// agent, debug off.
pub const SIM_POLICY: GuestPolicy = GuestPolicy(0x3_0000);
/// Firmware version written into simulated reports (current and committed).
pub const SIM_FIRMWARE: FirmwareVersion = FirmwareVersion {
    major: 1,
    minor: 55,
    build: 0,
};

/// A development SEV-SNP attester holding the development VCEK's private key.
#[derive(Debug)]
pub struct SimulatedSnp {
    key: EcdsaKeyPair,
    vcek: Vec<u8>,
    chain: Option<(Vec<u8>, Vec<u8>)>,
    product: Product,
    tcb: TcbVersion,
    chip_id: [u8; 64],
    rng: SystemRandom,
}

fn read(path: &Path) -> Result<Vec<u8>, AttesterError> {
    std::fs::read(path).map_err(|source| AttesterError::Io {
        path: path.to_path_buf(),
        source,
    })
}

impl SimulatedSnp {
    /// From a development VCEK (DER) and its PKCS#8 private key (DER). The evidence carries no
    /// chain until [`SimulatedSnp::with_chain`] is called.
    pub fn from_der(vcek_der: Vec<u8>, vcek_pkcs8: &[u8]) -> Result<Self, AttesterError> {
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, vcek_pkcs8, &rng)
            .map_err(|_| AttesterError::InvalidKey)?;
        if snp::signer_public_key(&vcek_der)? != key.public_key().as_ref() {
            return Err(AttesterError::KeyMismatch);
        }
        let ext = snp::vek_extensions(&vcek_der)?;
        // The simulator's own development certificate names its product; the verifier never
        // reads this name (it uses the report's CPUID), it only decides what CPUID to write.
        let product = match ext.product_name.as_deref() {
            Some(n) if n.starts_with("Milan") => Product::Milan,
            Some(n) if n.starts_with("Genoa") => Product::Genoa,
            _ => {
                return Err(AttesterError::UnsupportedDevVcek(
                    "productName not Milan or Genoa",
                ));
            }
        };
        let chip_id: [u8; 64] = ext
            .hw_id
            .as_deref()
            .and_then(|h| h.try_into().ok())
            .ok_or(AttesterError::UnsupportedDevVcek("hwID is not 64 bytes"))?;
        if ext.tcb.fmc.is_some() {
            return Err(AttesterError::UnsupportedDevVcek(
                "fmcSPL on a pre-Turin VCEK",
            ));
        }
        Ok(SimulatedSnp {
            key,
            vcek: vcek_der,
            chain: None,
            product,
            tcb: ext.tcb,
            chip_id,
            rng,
        })
    }

    /// From files: the development VCEK (DER) and its PKCS#8 DER key.
    pub fn from_files(vcek_der: &Path, vcek_pkcs8: &Path) -> Result<Self, AttesterError> {
        let key = Zeroizing::new(read(vcek_pkcs8)?);
        Self::from_der(read(vcek_der)?, &key)
    }

    /// From a directory written by `scripts/dev-pki.sh` (`vcek.der`, `vcek.key.pk8`, `ask.der`,
    /// `ark.der`); the evidence carries the chain `[ask, ark]`.
    pub fn from_dir(dir: &Path) -> Result<Self, AttesterError> {
        let sim = Self::from_files(&dir.join("vcek.der"), &dir.join("vcek.key.pk8"))?;
        Ok(sim.with_chain(read(&dir.join("ask.der"))?, read(&dir.join("ark.der"))?))
    }

    /// Attaches the development ASK and ARK (DER) to every evidence.
    pub fn with_chain(mut self, ask_der: Vec<u8>, ark_der: Vec<u8>) -> Self {
        self.chain = Some((ask_der, ark_der));
        self
    }

    /// The product whose CPUID simulated reports carry.
    pub fn product(&self) -> Product {
        self.product
    }

    /// The TCB simulated reports carry (from the development VCEK).
    pub fn reported_tcb(&self) -> TcbVersion {
        self.tcb
    }

    /// The chip id simulated reports carry (the development VCEK's hwID).
    pub fn chip_id(&self) -> &[u8; 64] {
        &self.chip_id
    }

    /// The development VCEK, DER.
    pub fn vcek_der(&self) -> &[u8] {
        &self.vcek
    }

    /// Produces evidence for `report_data`, as a guest with launch digest `measurement` at VMPL 0.
    pub fn attest(
        &self,
        report_data: &[u8; 64],
        measurement: &[u8; 48],
    ) -> Result<SnpEvidence, AttesterError> {
        let report = self.sign(self.unsigned_report(report_data, measurement)?)?;
        tracing::warn!(
            product = %self.product,
            "SIMULATED SEV-SNP evidence (development root): not hardware-backed"
        );
        Ok(SnpEvidence {
            report,
            signer_cert: self.vcek.clone(),
            chain: self.chain.as_ref().map(|(ask, ark)| {
                vec![
                    serde_bytes::ByteBuf::from(ask.clone()),
                    serde_bytes::ByteBuf::from(ark.clone()),
                ]
            }),
        })
    }

    fn unsigned_report(
        &self,
        report_data: &[u8; 64],
        measurement: &[u8; 48],
    ) -> Result<Vec<u8>, AttesterError> {
        let mut r = ReportWriter(vec![0u8; REPORT_LEN]);
        let tcb = self.tcb.encode(TcbLayout::for_product(self.product));
        let cpuid = Cpuid::for_product(self.product);
        let mut report_id = [0u8; 32];
        self.rng
            .fill(&mut report_id)
            .map_err(|_| AttesterError::Crypto("random report id"))?;
        let fw = [SIM_FIRMWARE.build, SIM_FIRMWARE.minor, SIM_FIRMWARE.major];

        r.put(layout::VERSION, &3u32.to_le_bytes());
        r.put(layout::POLICY, &SIM_POLICY.0.to_le_bytes());
        r.put(layout::VMPL, &0u32.to_le_bytes());
        r.put(
            layout::SIGNATURE_ALGO,
            &SIG_ALGO_ECDSA_P384_SHA384.to_le_bytes(),
        );
        r.put(layout::CURRENT_TCB, &tcb);
        // PLATFORM_INFO bit 0: SMT enabled.
        r.put(layout::PLATFORM_INFO, &1u64.to_le_bytes());
        // KEY_INFO: SIGNING_KEY = 0 (VCEK), chip key not masked, no author key.
        r.put(layout::REPORT_DATA, report_data);
        r.put(layout::MEASUREMENT, measurement);
        r.put(layout::REPORT_ID, &report_id);
        r.put(layout::REPORTED_TCB, &tcb);
        r.put(layout::CPUID, &[cpuid.family, cpuid.model, cpuid.stepping]);
        r.put(layout::CHIP_ID, &self.chip_id);
        r.put(layout::COMMITTED_TCB, &tcb);
        r.put(layout::CURRENT_VERSION, &fw);
        r.put(layout::COMMITTED_VERSION, &fw);
        r.put(layout::LAUNCH_TCB, &tcb);
        r.finish()
    }

    /// Signs bytes 0x000..0x2A0 and writes `r` and `s` little-endian at 0x2A0 and 0x2E8.
    fn sign(&self, report: Vec<u8>) -> Result<Vec<u8>, AttesterError> {
        let signed = report
            .get(layout::SIGNED)
            .ok_or(AttesterError::Crypto("report layout"))?;
        let sig = self
            .key
            .sign(&self.rng, signed)
            .map_err(|_| AttesterError::Crypto("ECDSA P-384 signing"))?;
        let (r_be, s_be) = sig.as_ref().split_at(layout::P384_SCALAR);
        let le = |be: &[u8]| be.iter().rev().copied().collect::<Vec<u8>>();
        let mut w = ReportWriter(report);
        w.put(
            layout::SIG_R.start..layout::SIG_R.start + layout::P384_SCALAR,
            &le(r_be),
        );
        w.put(
            layout::SIG_S.start..layout::SIG_S.start + layout::P384_SCALAR,
            &le(s_be),
        );
        w.finish()
    }
}

/// Writes fields into a report buffer, remembering whether any write was out of range (which
/// would be a bug in the layout constants, reported as an error rather than a panic).
struct ReportWriter(Vec<u8>);

impl ReportWriter {
    fn put(&mut self, range: std::ops::Range<usize>, value: &[u8]) {
        match self.0.get_mut(range) {
            Some(dst) if dst.len() == value.len() => dst.copy_from_slice(value),
            _ => self.0.clear(),
        }
    }

    fn finish(self) -> Result<Vec<u8>, AttesterError> {
        if self.0.len() == REPORT_LEN {
            Ok(self.0)
        } else {
            Err(AttesterError::Crypto("report layout"))
        }
    }
}
