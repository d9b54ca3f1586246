//! The patch QEMU (7.2, `hw/i386/x86.c` `x86_load_linux`, non-SEV path) applies to a bzImage's
//! setup header when it is given with `-kernel` on a q35 machine. OVMF measures the *patched*
//! image into PCR 4, so the reference Authenticode digest depends on the initrd size and the
//! guest's RAM size.

/// Why QEMU's patch cannot be reproduced for a kernel.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PatchError {
    #[error("not a bzImage: {0}")]
    NotBzImage(&'static str),
    #[error("boot protocol {0:#06x} is older than 2.02 (QEMU would load it differently)")]
    ProtocolTooOld(u16),
    #[error("the kernel must be loaded high (loadflags bit 0)")]
    NotLoadedHigh,
    #[error("initrd of {size} bytes does not fit below {max:#x}")]
    InitrdTooLarge { size: u64, max: u64 },
    #[error(
        "command line contains \"vga=\", which makes QEMU patch the header further; not supported"
    )]
    VgaInCmdline,
}

const CMDLINE_ADDR: u32 = 0x20000;
const REAL_ADDR: u32 = 0x10000;
/// QEMU's `acpi_data_size` for q35 on 7.2.
const ACPI_DATA_SIZE: u64 = 0x28000;
/// q35: all RAM is below 4 GiB when it is smaller than this, else 2 GiB is.
const Q35_LOWMEM: u64 = 0xb000_0000;

/// Refuses command lines that would make QEMU patch more than [`patch_setup_header`] does.
pub fn check_append(append: &str) -> Result<(), PatchError> {
    if append
        .split_ascii_whitespace()
        .any(|w| w.starts_with("vga="))
    {
        return Err(PatchError::VgaInCmdline);
    }
    Ok(())
}

fn rd16(b: &[u8], o: usize) -> Result<u16, PatchError> {
    b.get(o..o + 2)
        .map(|s| u16::from_le_bytes([s[0], s[1]]))
        .ok_or(PatchError::NotBzImage("setup header truncated"))
}

fn rd32(b: &[u8], o: usize) -> Result<u32, PatchError> {
    b.get(o..o + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or(PatchError::NotBzImage("setup header truncated"))
}

/// The kernel image as QEMU hands it to OVMF: `kernel` with its setup header patched for an initrd
/// of `initrd_size` bytes in a q35 guest with `ram_bytes` of memory.
pub fn patch_setup_header(
    kernel: &[u8],
    initrd_size: u64,
    ram_bytes: u64,
) -> Result<Vec<u8>, PatchError> {
    if kernel.len() < 0x240 {
        return Err(PatchError::NotBzImage("shorter than a setup header"));
    }
    if rd32(kernel, 0x202)? != u32::from_le_bytes(*b"HdrS") {
        return Err(PatchError::NotBzImage("no HdrS signature"));
    }
    let protocol = rd16(kernel, 0x206)?;
    if protocol < 0x202 {
        return Err(PatchError::ProtocolTooOld(protocol));
    }
    if kernel[0x211] & 1 == 0 {
        return Err(PatchError::NotLoadedHigh);
    }
    let mut initrd_max = if protocol >= 0x20c && rd16(kernel, 0x236)? & 2 != 0 {
        0xffff_ffff_u64
    } else {
        u64::from(rd32(kernel, 0x22c)?)
    };
    let below_4g = if ram_bytes < Q35_LOWMEM {
        ram_bytes
    } else {
        0x8000_0000
    }
    .min(ram_bytes);
    let limit = below_4g.saturating_sub(ACPI_DATA_SIZE);
    if initrd_max >= limit {
        initrd_max = limit.saturating_sub(1);
    }
    // QEMU refuses `initrd_size >= initrd_max` the same way.
    if initrd_size >= initrd_max || initrd_size > u64::from(u32::MAX) {
        return Err(PatchError::InitrdTooLarge {
            size: initrd_size,
            max: initrd_max,
        });
    }
    let initrd_addr = (initrd_max - initrd_size) & !4095;

    let mut out = kernel.to_vec();
    out[0x228..0x22c].copy_from_slice(&CMDLINE_ADDR.to_le_bytes());
    out[0x210] = 0xb0;
    out[0x211] |= 0x80;
    let heap_end = (CMDLINE_ADDR - REAL_ADDR - 0x200) as u16;
    out[0x224..0x226].copy_from_slice(&heap_end.to_le_bytes());
    // Both fit in u32: initrd_addr <= initrd_max <= 0xffffffff, initrd_size checked above.
    out[0x218..0x21c].copy_from_slice(&(initrd_addr as u32).to_le_bytes());
    out[0x21c..0x220].copy_from_slice(&(initrd_size as u32).to_le_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake(protocol: u16, loadflags: u8) -> Vec<u8> {
        let mut k = vec![0u8; 0x400];
        k[0x202..0x206].copy_from_slice(b"HdrS");
        k[0x206..0x208].copy_from_slice(&protocol.to_le_bytes());
        k[0x211] = loadflags;
        k[0x22c..0x230].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
        k
    }

    #[test]
    fn patches_the_documented_fields() {
        let p = patch_setup_header(&fake(0x20f, 1), 1_984_000, 1 << 30).expect("patch");
        assert_eq!(&p[0x228..0x22c], &0x20000u32.to_le_bytes());
        assert_eq!(p[0x210], 0xb0);
        assert_eq!(p[0x211], 0x81);
        assert_eq!(&p[0x224..0x226], &0xfe00u16.to_le_bytes());
        let max = (1u64 << 30) - 0x28000 - 1;
        let addr = ((max - 1_984_000) & !4095) as u32;
        assert_eq!(&p[0x218..0x21c], &addr.to_le_bytes());
        assert_eq!(&p[0x21c..0x220], &1_984_000u32.to_le_bytes());
    }

    #[test]
    fn refusals() {
        assert!(matches!(
            patch_setup_header(&[0u8; 0x400], 0, 1 << 30),
            Err(PatchError::NotBzImage(_))
        ));
        assert!(matches!(
            patch_setup_header(&[0u8; 16], 0, 1 << 30),
            Err(PatchError::NotBzImage(_))
        ));
        assert_eq!(
            patch_setup_header(&fake(0x201, 1), 0, 1 << 30),
            Err(PatchError::ProtocolTooOld(0x201))
        );
        assert_eq!(
            patch_setup_header(&fake(0x20f, 0), 0, 1 << 30),
            Err(PatchError::NotLoadedHigh)
        );
        assert!(matches!(
            patch_setup_header(&fake(0x20f, 1), 2 << 30, 1 << 30),
            Err(PatchError::InitrdTooLarge { .. })
        ));
        assert_eq!(
            check_append("console=ttyS0 vga=791"),
            Err(PatchError::VgaInCmdline)
        );
        assert!(check_append("console=ttyS0 quiet").is_ok());
    }
}
