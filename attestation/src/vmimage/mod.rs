//! The measured-boot VM image (QEMU + OVMF + swtpm, `-kernel/-initrd/-append`): reference values
//! computed before boot, and a reproducible initramfs writer. Pure: callers pass bytes.
//!
//! - [`authenticode`]: the PE/COFF Authenticode SHA-256 OVMF measures into PCR 4.
//! - [`qemu`]: the setup-header patch QEMU applies to the kernel before OVMF measures it.
//! - [`pcr`]: expected PCR 4 and PCR 9 and their event digests.
//! - [`cpio`]: a deterministic cpio "newc" writer.

pub mod authenticode;
pub mod cpio;
pub mod pcr;
pub mod qemu;
