//! The SEV-SNP attestation report, parsed per the AMD SEV Secure Nested Paging Firmware ABI
//! Specification (AMD pub. 56860), "ATTESTATION_REPORT Structure" (Table 23 in rev. 1.55 and
//! 1.57; rev. 1.58 adds the version-5 fields), and its "GUEST_POLICY" and "TCB_VERSION"
//! structures.
//!
//! Parsing is bounded and never panics: the report must be exactly [`REPORT_LEN`] bytes, of a
//! known version, and every byte the ABI reserves (must be zero) must be zero — including the
//! signature field beyond `r` and `s`, which lies outside the signed region and would otherwise let
//! anyone change the evidence bytes without invalidating the signature.

use serde::Serialize;

use super::tcb::{TcbLayout, TcbVersion};
use super::{Product, SnpError};

/// Field offsets of `ATTESTATION_REPORT` (byte ranges within the report).
pub mod layout {
    use std::ops::Range;

    pub const VERSION: Range<usize> = 0x000..0x004;
    pub const GUEST_SVN: Range<usize> = 0x004..0x008;
    pub const POLICY: Range<usize> = 0x008..0x010;
    pub const FAMILY_ID: Range<usize> = 0x010..0x020;
    pub const IMAGE_ID: Range<usize> = 0x020..0x030;
    pub const VMPL: Range<usize> = 0x030..0x034;
    pub const SIGNATURE_ALGO: Range<usize> = 0x034..0x038;
    pub const CURRENT_TCB: Range<usize> = 0x038..0x040;
    pub const PLATFORM_INFO: Range<usize> = 0x040..0x048;
    /// Bit 0 AUTHOR_KEY_EN, bit 1 MASK_CHIP_KEY, bits 4:2 SIGNING_KEY, bits 31:5 reserved.
    pub const KEY_INFO: Range<usize> = 0x048..0x04C;
    pub const RESERVED_04C: Range<usize> = 0x04C..0x050;
    pub const REPORT_DATA: Range<usize> = 0x050..0x090;
    pub const MEASUREMENT: Range<usize> = 0x090..0x0C0;
    pub const HOST_DATA: Range<usize> = 0x0C0..0x0E0;
    pub const ID_KEY_DIGEST: Range<usize> = 0x0E0..0x110;
    pub const AUTHOR_KEY_DIGEST: Range<usize> = 0x110..0x140;
    pub const REPORT_ID: Range<usize> = 0x140..0x160;
    pub const REPORT_ID_MA: Range<usize> = 0x160..0x180;
    pub const REPORTED_TCB: Range<usize> = 0x180..0x188;
    /// Version 3+: CPUID_FAM_ID, CPUID_MOD_ID, CPUID_STEP (reserved in version 2).
    pub const CPUID: Range<usize> = 0x188..0x18B;
    pub const RESERVED_18B: Range<usize> = 0x18B..0x1A0;
    pub const CHIP_ID: Range<usize> = 0x1A0..0x1E0;
    pub const COMMITTED_TCB: Range<usize> = 0x1E0..0x1E8;
    /// CURRENT_BUILD, CURRENT_MINOR, CURRENT_MAJOR, then one reserved byte.
    pub const CURRENT_VERSION: Range<usize> = 0x1E8..0x1EB;
    pub const RESERVED_1EB: Range<usize> = 0x1EB..0x1EC;
    /// COMMITTED_BUILD, COMMITTED_MINOR, COMMITTED_MAJOR, then one reserved byte.
    pub const COMMITTED_VERSION: Range<usize> = 0x1EC..0x1EF;
    pub const RESERVED_1EF: Range<usize> = 0x1EF..0x1F0;
    pub const LAUNCH_TCB: Range<usize> = 0x1F0..0x1F8;
    /// Version 5+: LAUNCH_MIT_VECTOR and CURRENT_MIT_VECTOR (reserved before).
    pub const LAUNCH_MIT_VECTOR: Range<usize> = 0x1F8..0x200;
    pub const CURRENT_MIT_VECTOR: Range<usize> = 0x200..0x208;
    pub const RESERVED_208: Range<usize> = 0x208..0x2A0;
    /// The signed region: ECDSA P-384 with SHA-384 over these bytes.
    pub const SIGNED: Range<usize> = 0x000..0x2A0;
    /// SIGNATURE (ABI "ECDSA P-384 with SHA-384 Signature" format): R and S, each a 72-byte
    /// little-endian field of which only the low 48 bytes may be non-zero, then reserved bytes.
    pub const SIG_R: Range<usize> = 0x2A0..0x2E8;
    pub const SIG_S: Range<usize> = 0x2E8..0x330;
    pub const SIG_RESERVED: Range<usize> = 0x330..0x4A0;
    /// Bytes of a P-384 scalar.
    pub const P384_SCALAR: usize = 48;
}

/// Length of an `ATTESTATION_REPORT`.
pub const REPORT_LEN: usize = 0x4A0;

/// `SIGNATURE_ALGO` value for ECDSA P-384 with SHA-384 (ABI "Signature Algorithm Encodings").
pub const SIG_ALGO_ECDSA_P384_SHA384: u32 = 1;

/// Report versions this parser knows. Version 4 (emitted by firmware 1.55.31+, not publicly
/// documented) keeps the version-3 layout; version 5 (ABI rev. 1.58) adds the mitigation vectors.
pub const SUPPORTED_VERSIONS: [u32; 4] = [2, 3, 4, 5];

/// `GUEST_POLICY` (ABI "GUEST_POLICY Structure").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct GuestPolicy(pub u64);

impl GuestPolicy {
    const SMT: u64 = 1 << 16;
    const MIGRATE_MA: u64 = 1 << 18;
    const DEBUG: u64 = 1 << 19;
    const SINGLE_SOCKET: u64 = 1 << 20;

    /// Bits 7:0, ABI_MINOR: the minimum firmware ABI minor version the guest requires.
    pub fn abi_minor(&self) -> u8 {
        (self.0 & 0xFF) as u8
    }
    /// Bits 15:8, ABI_MAJOR.
    pub fn abi_major(&self) -> u8 {
        ((self.0 >> 8) & 0xFF) as u8
    }
    /// Bit 16: SMT is allowed.
    pub fn smt(&self) -> bool {
        self.0 & Self::SMT != 0
    }
    /// Bit 18: association with a migration agent is allowed.
    pub fn migrate_ma(&self) -> bool {
        self.0 & Self::MIGRATE_MA != 0
    }
    /// Bit 19: debugging is allowed (the hypervisor can read and write guest memory).
    pub fn debug(&self) -> bool {
        self.0 & Self::DEBUG != 0
    }
    /// Bit 20: the guest may be activated on one socket only.
    pub fn single_socket(&self) -> bool {
        self.0 & Self::SINGLE_SOCKET != 0
    }
}

/// Which key signed the report (`SIGNING_KEY`, bits 4:2 at 0x48).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SigningKey {
    /// Versioned Chip Endorsement Key (encoding 0), endorsed by the ASK.
    Vcek,
    /// Versioned Loaded Endorsement Key (encoding 1), endorsed by the ASVK.
    Vlek,
}

/// CPUID family, model and stepping of the chip (report version 3 and later).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Cpuid {
    pub family: u8,
    pub model: u8,
    pub stepping: u8,
}

impl Cpuid {
    /// The product generation, by CPUID family and model (AMD Processor Programming Reference):
    /// family 19h models 00h–0Fh are Milan, 10h–1Fh and A0h–AFh Genoa (with Bergamo and Siena);
    /// family 1Ah models 00h–1Fh are Turin (with Turin dense). Unknown values yield `None`.
    pub fn product(&self) -> Option<Product> {
        match (self.family, self.model) {
            (0x19, 0x00..=0x0F) => Some(Product::Milan),
            (0x19, 0x10..=0x1F | 0xA0..=0xAF) => Some(Product::Genoa),
            (0x1A, 0x00..=0x1F) => Some(Product::Turin),
            _ => None,
        }
    }

    /// A CPUID that identifies `product` (for simulated reports).
    pub fn for_product(product: Product) -> Self {
        match product {
            Product::Milan => Cpuid {
                family: 0x19,
                model: 0x01,
                stepping: 0x01,
            },
            Product::Genoa => Cpuid {
                family: 0x19,
                model: 0x11,
                stepping: 0x01,
            },
            Product::Turin => Cpuid {
                family: 0x1A,
                model: 0x02,
                stepping: 0x00,
            },
        }
    }
}

/// Firmware version (build, minor, major) as the report carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct FirmwareVersion {
    pub major: u8,
    pub minor: u8,
    pub build: u8,
}

/// A parsed `ATTESTATION_REPORT`. Produced from the received bytes by [`SnpReport::parse`]; it is
/// never re-encoded for verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnpReport {
    pub version: u32,
    pub guest_svn: u32,
    pub policy: GuestPolicy,
    pub family_id: [u8; 16],
    pub image_id: [u8; 16],
    pub vmpl: u32,
    pub signature_algo: u32,
    pub current_tcb: TcbVersion,
    pub platform_info: u64,
    /// AUTHOR_KEY_EN: the ID block was signed by an author key too.
    pub author_key_en: bool,
    /// MASK_CHIP_KEY: the firmware zeroed `chip_id`.
    pub mask_chip_key: bool,
    pub signing_key: SigningKey,
    pub report_data: [u8; 64],
    pub measurement: [u8; 48],
    pub host_data: [u8; 32],
    pub id_key_digest: [u8; 48],
    pub author_key_digest: [u8; 48],
    pub report_id: [u8; 32],
    pub report_id_ma: [u8; 32],
    pub reported_tcb: TcbVersion,
    pub chip_id: [u8; 64],
    pub committed_tcb: TcbVersion,
    pub current_version: FirmwareVersion,
    pub committed_version: FirmwareVersion,
    pub launch_tcb: TcbVersion,
    /// Version 3+.
    pub cpuid: Option<Cpuid>,
    /// Version 5+.
    pub launch_mit_vector: Option<u64>,
    /// Version 5+.
    pub current_mit_vector: Option<u64>,
}

/// Copies a fixed-size field out of `bytes`; out of range is [`SnpError::Truncated`].
pub(crate) fn field<const N: usize>(
    bytes: &[u8],
    range: std::ops::Range<usize>,
) -> Result<[u8; N], SnpError> {
    bytes
        .get(range)
        .and_then(|s| <[u8; N]>::try_from(s).ok())
        .ok_or(SnpError::Truncated { len: bytes.len() })
}

fn u32_at(bytes: &[u8], range: std::ops::Range<usize>) -> Result<u32, SnpError> {
    field::<4>(bytes, range).map(u32::from_le_bytes)
}

fn u64_at(bytes: &[u8], range: std::ops::Range<usize>) -> Result<u64, SnpError> {
    field::<8>(bytes, range).map(u64::from_le_bytes)
}

/// Fails with the offset of the first non-zero byte in `range`.
fn require_zero(bytes: &[u8], range: std::ops::Range<usize>) -> Result<(), SnpError> {
    let start = range.start;
    let slice = bytes
        .get(range)
        .ok_or(SnpError::Truncated { len: bytes.len() })?;
    match slice.iter().position(|b| *b != 0) {
        Some(i) => Err(SnpError::ReservedNonZero { offset: start + i }),
        None => Ok(()),
    }
}

fn tcb_at(
    bytes: &[u8],
    range: std::ops::Range<usize>,
    layout: TcbLayout,
) -> Result<TcbVersion, SnpError> {
    let start = range.start;
    let raw = field::<8>(bytes, range)?;
    TcbVersion::decode(raw, layout).map_err(|i| SnpError::ReservedNonZero { offset: start + i })
}

fn fw_version_at(bytes: &[u8], range: std::ops::Range<usize>) -> Result<FirmwareVersion, SnpError> {
    let [build, minor, major] = field::<3>(bytes, range)?;
    Ok(FirmwareVersion {
        major,
        minor,
        build,
    })
}

impl SnpReport {
    /// Parses and structurally checks a report. Does not verify the signature.
    pub fn parse(bytes: &[u8]) -> Result<Self, SnpError> {
        use layout as l;
        if bytes.len() < REPORT_LEN {
            return Err(SnpError::Truncated { len: bytes.len() });
        }
        if bytes.len() > REPORT_LEN {
            return Err(SnpError::Oversized { len: bytes.len() });
        }
        let version = u32_at(bytes, l::VERSION)?;
        if !SUPPORTED_VERSIONS.contains(&version) {
            return Err(SnpError::UnsupportedVersion(version));
        }
        let signature_algo = u32_at(bytes, l::SIGNATURE_ALGO)?;
        if signature_algo != SIG_ALGO_ECDSA_P384_SHA384 {
            return Err(SnpError::UnsupportedSignatureAlgo(signature_algo));
        }
        Self::check_signature_field(bytes)?;

        // Key info word at 0x48: bits 31:5 reserved.
        let key_info = u32_at(bytes, l::KEY_INFO)?;
        if key_info >> 5 != 0 {
            let first = (key_info >> 5).trailing_zeros() as usize + 5;
            return Err(SnpError::ReservedNonZero {
                offset: l::KEY_INFO.start + first / 8,
            });
        }
        let signing_key = match (key_info >> 2) & 0b111 {
            0 => SigningKey::Vcek,
            1 => SigningKey::Vlek,
            other => return Err(SnpError::UnsupportedSigningKey(other as u8)),
        };
        require_zero(bytes, l::RESERVED_04C)?;

        // CPUID (v3+) decides the TCB layout; version 2 predates Turin, whose firmware emits v3+.
        let cpuid = if version >= 3 {
            let [family, model, stepping] = field::<3>(bytes, l::CPUID)?;
            Some(Cpuid {
                family,
                model,
                stepping,
            })
        } else {
            require_zero(bytes, l::CPUID)?;
            None
        };
        require_zero(bytes, l::RESERVED_18B)?;
        let layout = match cpuid {
            None => TcbLayout::PreTurin,
            Some(c) => match c.product() {
                Some(p) => TcbLayout::for_product(p),
                None => {
                    return Err(SnpError::UnknownCpuid {
                        family: c.family,
                        model: c.model,
                    });
                }
            },
        };

        require_zero(bytes, l::RESERVED_1EB)?;
        require_zero(bytes, l::RESERVED_1EF)?;
        let (launch_mit_vector, current_mit_vector) = if version >= 5 {
            (
                Some(u64_at(bytes, l::LAUNCH_MIT_VECTOR)?),
                Some(u64_at(bytes, l::CURRENT_MIT_VECTOR)?),
            )
        } else {
            require_zero(bytes, l::LAUNCH_MIT_VECTOR)?;
            require_zero(bytes, l::CURRENT_MIT_VECTOR)?;
            (None, None)
        };
        require_zero(bytes, l::RESERVED_208)?;

        Ok(SnpReport {
            version,
            guest_svn: u32_at(bytes, l::GUEST_SVN)?,
            policy: GuestPolicy(u64_at(bytes, l::POLICY)?),
            family_id: field(bytes, l::FAMILY_ID)?,
            image_id: field(bytes, l::IMAGE_ID)?,
            vmpl: u32_at(bytes, l::VMPL)?,
            signature_algo,
            current_tcb: tcb_at(bytes, l::CURRENT_TCB, layout)?,
            platform_info: u64_at(bytes, l::PLATFORM_INFO)?,
            author_key_en: key_info & 1 != 0,
            mask_chip_key: key_info & 2 != 0,
            signing_key,
            report_data: field(bytes, l::REPORT_DATA)?,
            measurement: field(bytes, l::MEASUREMENT)?,
            host_data: field(bytes, l::HOST_DATA)?,
            id_key_digest: field(bytes, l::ID_KEY_DIGEST)?,
            author_key_digest: field(bytes, l::AUTHOR_KEY_DIGEST)?,
            report_id: field(bytes, l::REPORT_ID)?,
            report_id_ma: field(bytes, l::REPORT_ID_MA)?,
            reported_tcb: tcb_at(bytes, l::REPORTED_TCB, layout)?,
            chip_id: field(bytes, l::CHIP_ID)?,
            committed_tcb: tcb_at(bytes, l::COMMITTED_TCB, layout)?,
            current_version: fw_version_at(bytes, l::CURRENT_VERSION)?,
            committed_version: fw_version_at(bytes, l::COMMITTED_VERSION)?,
            launch_tcb: tcb_at(bytes, l::LAUNCH_TCB, layout)?,
            cpuid,
            launch_mit_vector,
            current_mit_vector,
        })
    }

    /// The high 24 bytes of each 72-byte little-endian scalar and the reserved tail must be zero.
    fn check_signature_field(bytes: &[u8]) -> Result<(), SnpError> {
        use layout as l;
        require_zero(bytes, l::SIG_R.start + l::P384_SCALAR..l::SIG_R.end)?;
        require_zero(bytes, l::SIG_S.start + l::P384_SCALAR..l::SIG_S.end)?;
        require_zero(bytes, l::SIG_RESERVED)
    }

    /// The product the report's CPUID names (version 3+), if any.
    pub fn product(&self) -> Option<Product> {
        self.cpuid.and_then(|c| c.product())
    }
}

/// The signature of a report as ring's fixed-width big-endian `r || s` (96 bytes).
pub(crate) fn signature_fixed_be(bytes: &[u8]) -> Result<[u8; 96], SnpError> {
    use layout as l;
    let r: [u8; l::P384_SCALAR] = field(bytes, l::SIG_R.start..l::SIG_R.start + l::P384_SCALAR)?;
    let s: [u8; l::P384_SCALAR] = field(bytes, l::SIG_S.start..l::SIG_S.start + l::P384_SCALAR)?;
    let mut out = [0u8; 96];
    for (dst, src) in out.iter_mut().zip(r.iter().rev().chain(s.iter().rev())) {
        *dst = *src;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blank(version: u32) -> Vec<u8> {
        let mut b = vec![0u8; REPORT_LEN];
        b[0..4].copy_from_slice(&version.to_le_bytes());
        b[0x34..0x38].copy_from_slice(&1u32.to_le_bytes());
        if version >= 3 {
            b[0x188] = 0x19;
            b[0x189] = 0x01;
        }
        b
    }

    #[test]
    fn blank_reports_parse() {
        for v in SUPPORTED_VERSIONS {
            let r = SnpReport::parse(&blank(v)).unwrap();
            assert_eq!(r.version, v);
            assert_eq!(r.cpuid.is_some(), v >= 3);
            assert_eq!(r.launch_mit_vector.is_some(), v >= 5);
        }
    }

    #[test]
    fn signature_is_converted_to_big_endian() {
        let mut b = blank(2);
        for i in 0..48 {
            b[0x2A0 + i] = i as u8;
            b[0x2E8 + i] = 100 + i as u8;
        }
        let sig = signature_fixed_be(&b).unwrap();
        assert_eq!(sig[0], 47);
        assert_eq!(sig[47], 0);
        assert_eq!(sig[48], 147);
        assert_eq!(sig[95], 100);
    }

    #[test]
    fn policy_bits() {
        let p = GuestPolicy(0x3001f | (1 << 19) | (1 << 18) | (1 << 20) | (2 << 8));
        assert!(p.debug() && p.migrate_ma() && p.single_socket() && p.smt());
        assert_eq!((p.abi_major(), p.abi_minor()), (2, 0x1f));
        let p = GuestPolicy(0x30000);
        assert!(!p.debug() && !p.migrate_ma() && !p.single_socket() && p.smt());
    }

    #[test]
    fn cpuid_products() {
        for p in [Product::Milan, Product::Genoa, Product::Turin] {
            assert_eq!(Cpuid::for_product(p).product(), Some(p));
        }
        let unknown = Cpuid {
            family: 0x17,
            model: 0x31,
            stepping: 0,
        };
        assert_eq!(unknown.product(), None);
    }
}
