//! Expected PCR 4 and PCR 9 of a QEMU + OVMF `-kernel/-initrd/-append` boot, and the individual
//! event digests (what `tpm2_eventlog` shows), computed from the image before it boots.
//!
//! - PCR 4 (OVMF): `EV_EFI_BOOT_SERVICES_APPLICATION` = Authenticode of the kernel *as QEMU
//!   patched it* ([`super::qemu`]), `EV_EFI_ACTION` "Calling EFI Application from Boot Option",
//!   `EV_SEPARATOR` (four zero bytes).
//! - PCR 9 (the kernel's EFI stub): `EV_EVENT_TAG` load options = SHA-256 of the UTF-16LE command
//!   line with its NUL, as OVMF passes it (`"<append> initrd=initrd"`); then the initrd's SHA-256.

use sha2::{Digest, Sha256};

use super::authenticode::{AuthenticodeError, authenticode_sha256};
use super::qemu::{PatchError, check_append, patch_setup_header};

/// The `EV_EFI_ACTION` OVMF logs before starting the kernel.
pub const BOOT_OPTION_ACTION: &[u8] = b"Calling EFI Application from Boot Option";

/// Why reference values cannot be computed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MeasureError {
    #[error(transparent)]
    Patch(#[from] PatchError),
    #[error("kernel: {0}")]
    Authenticode(#[from] AuthenticodeError),
}

/// Every reference value of one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootMeasurements {
    /// Authenticode SHA-256 of the kernel as QEMU loads it (PCR 4's first event).
    pub kernel_authenticode: [u8; 32],
    /// The command line as the EFI stub sees it.
    pub cmdline: String,
    /// PCR 9's load-options event digest.
    pub cmdline_digest: [u8; 32],
    /// PCR 9's initrd event digest (SHA-256 of the initrd file).
    pub initrd_digest: [u8; 32],
    pub pcr4: [u8; 32],
    pub pcr9: [u8; 32],
}

/// `PCR := SHA-256(PCR || digest)`.
pub fn extend(pcr: [u8; 32], digest: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(pcr);
    h.update(digest);
    h.finalize().into()
}

fn sha256(b: &[u8]) -> [u8; 32] {
    Sha256::digest(b).into()
}

/// The command line OVMF passes to the kernel for `-append TEXT` with an initrd.
pub fn stub_cmdline(append: &str) -> String {
    if append.is_empty() {
        "initrd=initrd".to_owned()
    } else {
        format!("{append} initrd=initrd")
    }
}

/// The EFI stub's load-options event digest: SHA-256 of UTF-16LE(`cmdline` + NUL).
pub fn cmdline_event_digest(cmdline: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    for u in cmdline.encode_utf16().chain(std::iter::once(0)) {
        h.update(u.to_le_bytes());
    }
    h.finalize().into()
}

/// PCR 4 from the kernel's (patched) Authenticode digest.
pub fn pcr4_from_authenticode(authenticode: &[u8; 32]) -> [u8; 32] {
    let p = extend([0; 32], authenticode);
    let p = extend(p, &sha256(BOOT_OPTION_ACTION));
    extend(p, &sha256(&[0; 4]))
}

/// PCR 9 from the two EFI-stub event digests.
pub fn pcr9_from_digests(cmdline_digest: &[u8; 32], initrd_digest: &[u8; 32]) -> [u8; 32] {
    extend(extend([0; 32], cmdline_digest), initrd_digest)
}

/// All reference values for booting `kernel` (the unpatched file) with `initrd`, `-append append`
/// and `-m` of `ram_bytes`.
pub fn measure_boot(
    kernel: &[u8],
    initrd: &[u8],
    append: &str,
    ram_bytes: u64,
) -> Result<BootMeasurements, MeasureError> {
    check_append(append)?;
    let patched = patch_setup_header(kernel, initrd.len() as u64, ram_bytes)?;
    let kernel_authenticode = authenticode_sha256(&patched)?;
    let cmdline = stub_cmdline(append);
    let cmdline_digest = cmdline_event_digest(&cmdline);
    let initrd_digest = sha256(initrd);
    Ok(BootMeasurements {
        kernel_authenticode,
        pcr4: pcr4_from_authenticode(&kernel_authenticode),
        pcr9: pcr9_from_digests(&cmdline_digest, &initrd_digest),
        cmdline,
        cmdline_digest,
        initrd_digest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> [u8; 32] {
        let mut o = [0; 32];
        hex::decode_to_slice(s, &mut o).expect("hex");
        o
    }

    #[test]
    fn recorded_boot_values() {
        let c = cmdline_event_digest(&stub_cmdline("console=ttyS0 quiet"));
        assert_eq!(
            c,
            h("6791447f65301cd17d9cda83bad8f4aa38f69a3257c2ba8315262e9325c78e6d")
        );
        let i = h("850a10cd760aabf224b21d9708d41ac8247277989e5e609ad16700baa8945e1c");
        assert_eq!(
            pcr9_from_digests(&c, &i),
            h("9B2BCDFCF8A2FE251511572728E26FA176E3BC06281841FB5030A5ABE2ADD579")
        );
        assert_eq!(
            pcr4_from_authenticode(&h(
                "85e0afa0ca668da659403e1eb3280ae53a9633fc5c56d100f62a9e0fcf54a5f9"
            )),
            h("9FAE912CF62E8A2FCF1A008AB72220E8C014A4FE2FFE382CECF6FDC76A70001F")
        );
    }
}
