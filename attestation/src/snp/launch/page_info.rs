//! The launch digest: the chain of SHA-384 digests the SEV-SNP firmware extends once per page the
//! hypervisor adds with `SNP_LAUNCH_UPDATE`, and reports as MEASUREMENT.
//!
//! AMD SEV Secure Nested Paging Firmware ABI Specification (pub. 56860), `SNP_LAUNCH_UPDATE`
//! (§8.17 in rev. 1.55) and its `PAGE_INFO` structure (Table 67 in rev. 1.55): for every page the
//! firmware computes `DIGEST_CUR := SHA-384(PAGE_INFO)` where `PAGE_INFO` is
//!
//! | offset | field | here |
//! |---|---|---|
//! | 0x00 | `DIGEST_CUR` (48 bytes) | the digest so far (48 zero bytes at `SNP_LAUNCH_START`) |
//! | 0x30 | `CONTENTS` (48 bytes) | SHA-384 of the page for NORMAL and VMSA pages, zero otherwise |
//! | 0x60 | `LENGTH` (u16) | 0x70, the structure's length |
//! | 0x62 | `PAGE_TYPE` (u8) | [`PageType`] |
//! | 0x63 | `IMI_PAGE` (bit 0) | 0: no page here is added by a migration agent |
//! | 0x64..0x67 | `VMPL3_PERMS`, `VMPL2_PERMS`, `VMPL1_PERMS`, reserved | 0: no permissions granted to lower VMPLs at launch (QEMU/KVM) |
//! | 0x68 | `GPA` (u64) | the page's guest-physical address |
//!
//! All integers little-endian.

use ring::digest::{SHA384, digest};

/// Bytes in a page.
pub const PAGE_SIZE: usize = 4096;
/// Bytes in a SHA-384 digest, and so in the launch digest.
pub const DIGEST_LEN: usize = 48;
const PAGE_INFO_LEN: usize = 0x70;

/// `PAGE_TYPE` of `SNP_LAUNCH_UPDATE` (AMD pub. 56860, "Page Types" of §8.17).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum PageType {
    /// Guest data, measured by content.
    Normal = 0x01,
    /// A vCPU's initial register state, measured by content.
    Vmsa = 0x02,
    /// A page the firmware zeroes; measured by address only.
    Zero = 0x03,
    /// A page whose content is not measured (and not zeroed).
    Unmeasured = 0x04,
    /// The secrets page the firmware fills with the VM's keys.
    Secrets = 0x05,
    /// The CPUID page, checked by the firmware against the hardware.
    Cpuid = 0x06,
}

/// The GPA recorded for a VMSA page. KVM adds VMSA pages with GPA `(u64)-1`; the field keeps its
/// page-aligned bits 47:12 (value as the peer tools virtee/sev and sev-snp-measure use, `gctx.py`).
pub const VMSA_GPA: u64 = 0x0000_FFFF_FFFF_F000;

/// The launch digest being extended, page by page.
#[derive(Debug, Clone)]
pub struct LaunchDigest {
    current: [u8; DIGEST_LEN],
}

impl Default for LaunchDigest {
    fn default() -> Self {
        Self::new()
    }
}

impl LaunchDigest {
    /// The digest at `SNP_LAUNCH_START`: all zero.
    pub fn new() -> Self {
        LaunchDigest {
            current: [0; DIGEST_LEN],
        }
    }

    /// Extends the digest with one `PAGE_INFO`.
    fn extend(&mut self, page_type: PageType, gpa: u64, contents: &[u8; DIGEST_LEN]) {
        let mut info = [0u8; PAGE_INFO_LEN];
        info[0x00..0x30].copy_from_slice(&self.current);
        info[0x30..0x60].copy_from_slice(contents);
        info[0x60..0x62].copy_from_slice(&(PAGE_INFO_LEN as u16).to_le_bytes());
        info[0x62] = page_type as u8;
        // 0x63 IMI_PAGE, 0x64..0x67 VMPL3/2/1 permissions, 0x67 reserved: all zero.
        info[0x68..0x70].copy_from_slice(&gpa.to_le_bytes());
        self.current
            .copy_from_slice(digest(&SHA384, &info).as_ref());
    }

    /// One NORMAL or VMSA page at `gpa`, measured by its content.
    pub fn page(&mut self, page_type: PageType, gpa: u64, page: &[u8; PAGE_SIZE]) {
        let mut contents = [0u8; DIGEST_LEN];
        contents.copy_from_slice(digest(&SHA384, page).as_ref());
        self.extend(page_type, gpa, &contents);
    }

    /// NORMAL pages from `gpa` on, one per `PAGE_SIZE` bytes of `data`. A trailing partial page
    /// is not measured; callers pass whole pages.
    pub fn normal_pages(&mut self, gpa: u64, data: &[u8]) {
        for (i, chunk) in data.chunks_exact(PAGE_SIZE).enumerate() {
            let mut contents = [0u8; DIGEST_LEN];
            contents.copy_from_slice(digest(&SHA384, chunk).as_ref());
            self.extend(PageType::Normal, gpa + (i * PAGE_SIZE) as u64, &contents);
        }
    }

    /// `count` pages of a content-less type (ZERO, UNMEASURED, SECRETS, CPUID) from `gpa` on.
    pub fn contentless_pages(&mut self, page_type: PageType, gpa: u64, count: u64) {
        for i in 0..count {
            self.extend(page_type, gpa + i * PAGE_SIZE as u64, &[0; DIGEST_LEN]);
        }
    }

    /// The digest so far.
    pub fn value(&self) -> [u8; DIGEST_LEN] {
        self.current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The chain from the all-zero start through one ZERO page at 0x800000 is SHA-384 of the
    /// 0x70-byte PAGE_INFO laid out by hand here, field by field.
    #[test]
    fn page_info_layout() {
        let mut ld = LaunchDigest::new();
        ld.contentless_pages(PageType::Zero, 0x80_0000, 1);
        let mut info = vec![0u8; 96];
        info.extend_from_slice(&[0x70, 0x00, 0x03, 0x00, 0, 0, 0, 0]);
        info.extend_from_slice(&[0x00, 0x00, 0x80, 0x00, 0, 0, 0, 0]);
        assert_eq!(info.len(), 0x70);
        assert_eq!(ld.value().as_slice(), digest(&SHA384, &info).as_ref());
    }

    #[test]
    fn content_type_and_address_all_count() {
        let page = [7u8; PAGE_SIZE];
        let run = |t: PageType, gpa: u64, p: &[u8; PAGE_SIZE]| {
            let mut ld = LaunchDigest::new();
            ld.page(t, gpa, p);
            ld.value()
        };
        let base = run(PageType::Normal, 0x1000, &page);
        let mut other = page;
        other[4095] ^= 1;
        assert_ne!(base, run(PageType::Normal, 0x1000, &other));
        assert_ne!(base, run(PageType::Vmsa, 0x1000, &page));
        assert_ne!(base, run(PageType::Normal, 0x2000, &page));
    }
}
