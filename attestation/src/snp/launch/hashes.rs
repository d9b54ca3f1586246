//! The kernel hashes table QEMU writes for measured direct boot (`-kernel/-initrd/-append` with
//! `kernel-hashes=on`), which OVMF checks the loaded files against.
//!
//! Layout (QEMU `target/i386/sev.c`, `SevHashTable` / `PaddedSevHashTable`; OVMF
//! `OvmfPkg/AmdSev/BlobVerifierLibSevHashes`), all packed, integers little-endian:
//!
//! ```text
//! GUID 9438d606-4f22-4cc9-b479-a793d411fd21 ‖ length u16 (168)
//!   GUID 97d02dd8-bd20-4c94-aa78-e7714d36ab2a ‖ length u16 (50) ‖ SHA-256(cmdline ‖ NUL)
//!   GUID 44baf731-3a2f-4bd7-9af1-41e29169781d ‖ length u16 (50) ‖ SHA-256(initrd, or empty)
//!   GUID 4de79437-abd2-427f-b835-d5b172d2045b ‖ length u16 (50) ‖ SHA-256(kernel file)
//! zero padding to a multiple of 16 bytes (176)
//! ```
//!
//! With no `-append` QEMU hashes the empty command line, i.e. the single NUL byte; with no
//! `-initrd`, zero bytes.

use ring::digest::{SHA256, digest};

use super::ovmf::Guid;

const HEADER_GUID: [u8; 16] = guid(
    0x9438_d606,
    0x4f22,
    0x4cc9,
    [0xb4, 0x79, 0xa7, 0x93, 0xd4, 0x11, 0xfd, 0x21],
);
const CMDLINE_GUID: [u8; 16] = guid(
    0x97d0_2dd8,
    0xbd20,
    0x4c94,
    [0xaa, 0x78, 0xe7, 0x71, 0x4d, 0x36, 0xab, 0x2a],
);
const INITRD_GUID: [u8; 16] = guid(
    0x44ba_f731,
    0x3a2f,
    0x4bd7,
    [0x9a, 0xf1, 0x41, 0xe2, 0x91, 0x69, 0x78, 0x1d],
);
const KERNEL_GUID: [u8; 16] = guid(
    0x4de7_9437,
    0xabd2,
    0x427f,
    [0xb8, 0x35, 0xd5, 0xb1, 0x72, 0xd2, 0x04, 0x5b],
);

const fn guid(d1: u32, d2: u16, d3: u16, d4: [u8; 8]) -> [u8; 16] {
    Guid::new(d1, d2, d3, d4).bytes()
}

const ENTRY_LEN: usize = 16 + 2 + 32;
const TABLE_LEN: usize = 16 + 2 + 3 * ENTRY_LEN;
/// The table as QEMU copies it into the guest: padded to a multiple of 16 bytes.
pub const PADDED_TABLE_LEN: usize = TABLE_LEN.next_multiple_of(16);

/// SHA-256 digests of the kernel, initrd and command line QEMU loads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelHashes {
    kernel: [u8; 32],
    initrd: [u8; 32],
    cmdline: [u8; 32],
}

/// A kernel command line that QEMU could not pass (it is NUL-terminated in the guest).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("kernel command line contains a NUL byte")]
pub struct CmdlineNul;

impl KernelHashes {
    /// The hashes of `-kernel` bytes, `-initrd` bytes (if any) and `-append` text (if any).
    pub fn new(
        kernel: &[u8],
        initrd: Option<&[u8]>,
        cmdline: Option<&str>,
    ) -> Result<Self, CmdlineNul> {
        let cmdline = cmdline.unwrap_or("");
        if cmdline.contains('\0') {
            return Err(CmdlineNul);
        }
        let mut terminated = Vec::with_capacity(cmdline.len() + 1);
        terminated.extend_from_slice(cmdline.as_bytes());
        terminated.push(0);
        Ok(KernelHashes {
            kernel: sha256(kernel),
            initrd: sha256(initrd.unwrap_or_default()),
            cmdline: sha256(&terminated),
        })
    }

    /// The padded table, byte for byte as QEMU writes it.
    pub fn table(&self) -> [u8; PADDED_TABLE_LEN] {
        let mut t = [0u8; PADDED_TABLE_LEN];
        t[..16].copy_from_slice(&HEADER_GUID);
        t[16..18].copy_from_slice(&(TABLE_LEN as u16).to_le_bytes());
        let entries = [
            (CMDLINE_GUID, &self.cmdline),
            (INITRD_GUID, &self.initrd),
            (KERNEL_GUID, &self.kernel),
        ];
        for (i, (guid, hash)) in entries.into_iter().enumerate() {
            let e = &mut t[18 + i * ENTRY_LEN..18 + (i + 1) * ENTRY_LEN];
            e[..16].copy_from_slice(&guid);
            e[16..18].copy_from_slice(&(ENTRY_LEN as u16).to_le_bytes());
            e[18..].copy_from_slice(hash);
        }
        t
    }
}

fn sha256(b: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, b).as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_layout() {
        let h = KernelHashes::new(b"k", None, Some("console=ttyS0")).expect("no NUL");
        let t = h.table();
        assert_eq!((TABLE_LEN, PADDED_TABLE_LEN), (168, 176));
        assert_eq!(&t[16..18], &[168, 0]);
        assert_eq!(
            hex::encode(&t[..16]),
            "06d63894224fc94cb479a793d411fd21",
            "header GUID 9438d606-4f22-4cc9-b479-a793d411fd21, mixed-endian"
        );
        // cmdline entry: its hash is over the text and a NUL.
        assert_eq!(&t[18 + 16..18 + 18], &[50, 0]);
        assert_eq!(&t[18 + 18..18 + 50], &sha256(b"console=ttyS0\0"));
        // initrd entry: hash of nothing.
        assert_eq!(&t[68 + 18..68 + 50], &sha256(b""));
        // kernel entry last, then 8 zero bytes of padding.
        assert_eq!(&t[118 + 18..118 + 50], &sha256(b"k"));
        assert_eq!(&t[168..], &[0u8; 8]);
    }

    #[test]
    fn absent_and_empty_cmdline_agree_and_nul_is_refused() {
        let a = KernelHashes::new(b"k", None, None).expect("ok");
        let b = KernelHashes::new(b"k", Some(b""), Some("")).expect("ok");
        assert_eq!(a, b);
        assert_eq!(KernelHashes::new(b"k", None, Some("a\0b")), Err(CmdlineNul));
    }
}
