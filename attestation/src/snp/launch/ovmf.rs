//! Decoder of an OVMF firmware image's launch layout: the GUIDed footer table at the end of the
//! firmware volume and the SEV metadata it points to. The image is untrusted input: every length
//! and offset is checked before use, nothing here panics, and each refusal is its own
//! [`OvmfError`].
//!
//! Sources (tianocore/edk2, `OvmfPkg/ResetVector/`):
//! - `Ia16/ResetVectorVtf0.asm`: the footer table. It ends 0x20 bytes before the end of the image
//!   (the last 0x20 bytes hold the reset vector). Its last entry is the footer itself. Every entry
//!   is `data ‖ length (u16) ‖ GUID`, where `length` counts all three, so the table is walked
//!   backwards from the footer, whose `length` is that of the whole table. Entries used here:
//!   the SEV-ES reset block (AP reset address: IP in bits 15:0, CS base in bits 31:16), the SEV
//!   hash table block (base and size of the kernel hashes table, both u32) and the SEV metadata
//!   offset (u32, counted back from the end of the image).
//! - `X64/OvmfSevMetadata.asm`: the metadata, `"ASEV" ‖ length ‖ version (1) ‖ count` (u32s),
//!   then `count` section descriptors `gpa ‖ size ‖ type` (u32s). Types: 1 SNP_SEC_MEM,
//!   2 SNP_SECRETS, 3 CPUID, 4 SVSM_CAA, 0x10 SNP_KERNEL_HASHES.
//!
//! QEMU (`hw/i386/pc_sysfw_ovmf.c`, `target/i386/sev.c`) maps the image so that it ends at 4 GiB
//! and reads the same structures; the checks here refuse what QEMU or the SNP firmware would
//! refuse, and what would make the expected measurement ambiguous (overlapping sections, a
//! SECRETS or CPUID section of more than one page, a repeated table entry).

use std::fmt;

use super::page_info::PAGE_SIZE;

/// The largest firmware image accepted (QEMU's OVMF builds are 2–4 MiB; this bounds the work).
pub const MAX_FIRMWARE_LEN: usize = 32 << 20;
/// The most SEV metadata sections accepted (OVMF declares five or six).
pub const MAX_SECTIONS: u32 = 64;

const FOUR_GIB: u64 = 1 << 32;
/// Bytes after the end of the footer table: the reset vector area.
const TABLE_END_FROM_IMAGE_END: usize = 0x20;
/// `length (u16) ‖ GUID`, the part of a table entry after its data.
const ENTRY_TRAILER_LEN: usize = 2 + 16;
const METADATA_HEADER_LEN: usize = 16;
const SECTION_DESC_LEN: usize = 12;

/// An EFI GUID as stored in firmware (`Data1`–`Data3` little-endian, `Data4` as bytes).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Guid([u8; 16]);

impl Guid {
    pub(crate) const fn new(d1: u32, d2: u16, d3: u16, d4: [u8; 8]) -> Guid {
        let a = d1.to_le_bytes();
        let b = d2.to_le_bytes();
        let c = d3.to_le_bytes();
        Guid([
            a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d4[0], d4[1], d4[2], d4[3], d4[4],
            d4[5], d4[6], d4[7],
        ])
    }

    /// The 16 bytes as stored.
    pub const fn bytes(&self) -> [u8; 16] {
        self.0
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        write!(
            f,
            "{:08x}-{:04x}-{:04x}-{:02x}{:02x}-",
            u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            u16::from_le_bytes([b[4], b[5]]),
            u16::from_le_bytes([b[6], b[7]]),
            b[8],
            b[9]
        )?;
        b[10..].iter().try_for_each(|x| write!(f, "{x:02x}"))
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// 96b582de-1fb2-45f7-baea-a366c55a082d: the footer of the GUIDed table.
pub const TABLE_FOOTER_GUID: Guid = Guid::new(
    0x96b5_82de,
    0x1fb2,
    0x45f7,
    [0xba, 0xea, 0xa3, 0x66, 0xc5, 0x5a, 0x08, 0x2d],
);
/// 00f771de-1a7e-4fcb-890e-68c77e2fb44e: the SEV-ES AP reset block.
pub const SEV_ES_RESET_BLOCK_GUID: Guid = Guid::new(
    0x00f7_71de,
    0x1a7e,
    0x4fcb,
    [0x89, 0x0e, 0x68, 0xc7, 0x7e, 0x2f, 0xb4, 0x4e],
);
/// 7255371f-3a3b-4b04-927b-1da6efa8d454: where the kernel hashes table goes.
pub const SEV_HASH_TABLE_BLOCK_GUID: Guid = Guid::new(
    0x7255_371f,
    0x3a3b,
    0x4b04,
    [0x92, 0x7b, 0x1d, 0xa6, 0xef, 0xa8, 0xd4, 0x54],
);
/// dc886566-984a-4798-a75e-5585a7bf67cc: the offset of the SEV metadata.
pub const SEV_METADATA_GUID: Guid = Guid::new(
    0xdc88_6566,
    0x984a,
    0x4798,
    [0xa7, 0x5e, 0x55, 0x85, 0xa7, 0xbf, 0x67, 0xcc],
);

/// What a SEV metadata section holds, and so how the VMM adds its pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SectionKind {
    /// Memory OVMF's SEC phase uses before it can validate pages itself (type 1).
    SnpSecMem,
    /// The SNP secrets page (type 2).
    SnpSecrets,
    /// The CPUID page (type 3).
    Cpuid,
    /// The SVSM calling area (type 4).
    SvsmCaa,
    /// The page holding the kernel/initrd/cmdline hashes table (type 0x10).
    SnpKernelHashes,
}

impl SectionKind {
    fn from_u32(v: u32) -> Option<SectionKind> {
        Some(match v {
            1 => SectionKind::SnpSecMem,
            2 => SectionKind::SnpSecrets,
            3 => SectionKind::Cpuid,
            4 => SectionKind::SvsmCaa,
            0x10 => SectionKind::SnpKernelHashes,
            _ => return None,
        })
    }
}

/// One SEV metadata section: page-aligned, non-empty, below the firmware.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Section {
    pub gpa: u32,
    pub size: u32,
    pub kind: SectionKind,
}

impl Section {
    /// Pages in the section.
    pub fn pages(&self) -> u64 {
        u64::from(self.size) / PAGE_SIZE as u64
    }

    fn end(&self) -> u64 {
        u64::from(self.gpa) + u64::from(self.size)
    }
}

/// The area the firmware reserves for the kernel hashes table (SEV hash table block). Checked
/// against the kernel-hashes section only when a kernel is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashTableArea {
    pub base: u32,
    pub size: u32,
}

/// A decoded OVMF image: its bytes and the launch layout they declare.
#[derive(Debug, Clone)]
pub struct OvmfImage<'a> {
    bytes: &'a [u8],
    ap_reset_address: u32,
    hash_table: Option<HashTableArea>,
    sections: Vec<Section>,
}

impl<'a> OvmfImage<'a> {
    /// Decodes the footer table and SEV metadata of `bytes`, an OVMF image as QEMU maps it (the
    /// file given to `-bios` or as the code pflash).
    pub fn parse(bytes: &'a [u8]) -> Result<Self, OvmfError> {
        let len = bytes.len();
        if len > MAX_FIRMWARE_LEN {
            return Err(OvmfError::TooLarge { len });
        }
        if len == 0 || !len.is_multiple_of(PAGE_SIZE) {
            return Err(OvmfError::NotWholePages { len });
        }
        let entries = footer_entries(bytes)?;
        let find = |guid: Guid| entries.iter().find(|(g, _)| *g == guid).map(|(_, d)| *d);

        let reset = find(SEV_ES_RESET_BLOCK_GUID).ok_or(OvmfError::NoResetBlock)?;
        let ap_reset_address = le_u32(reset, 0).ok_or(OvmfError::EntryTooShort {
            guid: SEV_ES_RESET_BLOCK_GUID,
            len: reset.len(),
        })?;
        if ap_reset_address == 0 {
            return Err(OvmfError::ResetAddressZero);
        }

        let hash_table = match find(SEV_HASH_TABLE_BLOCK_GUID) {
            None => None,
            Some(d) => {
                let (base, size) =
                    le_u32(d, 0)
                        .zip(le_u32(d, 4))
                        .ok_or(OvmfError::EntryTooShort {
                            guid: SEV_HASH_TABLE_BLOCK_GUID,
                            len: d.len(),
                        })?;
                // Base 0 is how OVMF builds without the table say so (QEMU treats it as absent).
                (base != 0).then_some(HashTableArea { base, size })
            }
        };

        let sections = match find(SEV_METADATA_GUID) {
            None => Vec::new(),
            Some(d) => {
                let offset = le_u32(d, 0).ok_or(OvmfError::EntryTooShort {
                    guid: SEV_METADATA_GUID,
                    len: d.len(),
                })?;
                let sections = metadata_sections(bytes, offset)?;
                check_sections(&sections, len)?;
                sections
            }
        };

        Ok(OvmfImage {
            bytes,
            ap_reset_address,
            hash_table,
            sections,
        })
    }

    /// The image bytes.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Guest-physical address of the image's first byte (it ends at 4 GiB).
    pub fn gpa(&self) -> u64 {
        FOUR_GIB - self.bytes.len() as u64
    }

    /// Where application processors start (SEV-ES reset block): CS base in bits 31:16, IP in
    /// bits 15:0.
    pub fn ap_reset_address(&self) -> u32 {
        self.ap_reset_address
    }

    /// The SEV metadata sections, in the order the firmware lists them (empty without metadata).
    pub fn sections(&self) -> &[Section] {
        &self.sections
    }

    /// The firmware's kernel hashes table area, if it declares one.
    pub fn hash_table_area(&self) -> Option<HashTableArea> {
        self.hash_table
    }

    /// The SNP_KERNEL_HASHES section, if the firmware has one (at most one; checked).
    pub fn kernel_hashes_section(&self) -> Option<Section> {
        self.sections
            .iter()
            .copied()
            .find(|s| s.kind == SectionKind::SnpKernelHashes)
    }
}

/// The footer table's entries as `(GUID, data)`, from the footer backwards (footer excluded).
fn footer_entries(bytes: &[u8]) -> Result<Vec<(Guid, &[u8])>, OvmfError> {
    let table_end = bytes
        .len()
        .checked_sub(TABLE_END_FROM_IMAGE_END)
        .filter(|&e| e >= ENTRY_TRAILER_LEN)
        .ok_or(OvmfError::NoFooterTable)?;
    let (footer_len, footer_guid) = entry_trailer(&bytes[..table_end]);
    if footer_guid != TABLE_FOOTER_GUID {
        return Err(OvmfError::NoFooterTable);
    }
    let table_len = usize::from(footer_len);
    if table_len < ENTRY_TRAILER_LEN || table_len > table_end {
        return Err(OvmfError::FooterTableLength { len: footer_len });
    }
    let table_start = table_end - table_len;
    let mut rest = &bytes[table_start..table_end - ENTRY_TRAILER_LEN];
    let mut entries: Vec<(Guid, &[u8])> = Vec::new();
    while !rest.is_empty() {
        let at = table_start + rest.len();
        if rest.len() < ENTRY_TRAILER_LEN {
            return Err(OvmfError::FooterEntryLength { at, len: None });
        }
        let (entry_len, guid) = entry_trailer(rest);
        let n = usize::from(entry_len);
        if n < ENTRY_TRAILER_LEN || n > rest.len() {
            return Err(OvmfError::FooterEntryLength {
                at,
                len: Some(entry_len),
            });
        }
        if entries.iter().any(|(g, _)| *g == guid) || guid == TABLE_FOOTER_GUID {
            return Err(OvmfError::DuplicateEntry { guid });
        }
        let start = rest.len() - n;
        entries.push((guid, &rest[start..rest.len() - ENTRY_TRAILER_LEN]));
        rest = &rest[..start];
    }
    Ok(entries)
}

/// `(length, GUID)` of the entry ending at the end of `b` (`b.len() >= ENTRY_TRAILER_LEN`).
fn entry_trailer(b: &[u8]) -> (u16, Guid) {
    let t = &b[b.len() - ENTRY_TRAILER_LEN..];
    let mut g = [0u8; 16];
    g.copy_from_slice(&t[2..]);
    (u16::from_le_bytes([t[0], t[1]]), Guid(g))
}

fn metadata_sections(bytes: &[u8], offset: u32) -> Result<Vec<Section>, OvmfError> {
    let start = bytes
        .len()
        .checked_sub(offset as usize)
        .filter(|s| s + METADATA_HEADER_LEN <= bytes.len())
        .ok_or(OvmfError::MetadataOffset { offset })?;
    let m = &bytes[start..];
    if m[..4] != *b"ASEV" {
        return Err(OvmfError::MetadataSignature);
    }
    let header = |i| le_u32(m, i).ok_or(OvmfError::MetadataOffset { offset });
    let (declared, version, count) = (header(4)?, header(8)?, header(12)?);
    if version != 1 {
        return Err(OvmfError::MetadataVersion { version });
    }
    if count > MAX_SECTIONS {
        return Err(OvmfError::TooManySections { count });
    }
    let expected = METADATA_HEADER_LEN + SECTION_DESC_LEN * count as usize;
    if declared as usize != expected {
        return Err(OvmfError::MetadataLength { declared, count });
    }
    if expected > m.len() {
        return Err(OvmfError::MetadataOffset { offset });
    }
    m[METADATA_HEADER_LEN..expected]
        .chunks_exact(SECTION_DESC_LEN)
        .enumerate()
        .map(|(index, d)| {
            let word = |i| le_u32(d, i).ok_or(OvmfError::MetadataOffset { offset });
            let (gpa, size, kind) = (word(0)?, word(4)?, word(8)?);
            let kind = SectionKind::from_u32(kind).ok_or(OvmfError::UnknownSectionType {
                index,
                section_type: kind,
            })?;
            Ok(Section { gpa, size, kind })
        })
        .collect()
}

fn check_sections(sections: &[Section], image_len: usize) -> Result<(), OvmfError> {
    let firmware_start = FOUR_GIB - image_len as u64;
    for (index, s) in sections.iter().enumerate() {
        if s.size == 0 {
            return Err(OvmfError::SectionEmpty { index });
        }
        if !(s.gpa as usize).is_multiple_of(PAGE_SIZE)
            || !(s.size as usize).is_multiple_of(PAGE_SIZE)
        {
            return Err(OvmfError::SectionNotPageAligned { index });
        }
        if s.end() > FOUR_GIB {
            return Err(OvmfError::SectionBeyond4GiB { index });
        }
        if s.end() > firmware_start {
            return Err(OvmfError::SectionOverlapsFirmware { index });
        }
        if matches!(s.kind, SectionKind::SnpSecrets | SectionKind::Cpuid) && s.pages() != 1 {
            return Err(OvmfError::SectionNotOnePage {
                index,
                kind: s.kind,
            });
        }
        for (other, o) in sections[..index].iter().enumerate() {
            if u64::from(s.gpa) < o.end() && u64::from(o.gpa) < s.end() {
                return Err(OvmfError::SectionsOverlap {
                    first: other,
                    second: index,
                });
            }
            if s.kind == SectionKind::SnpKernelHashes && o.kind == SectionKind::SnpKernelHashes {
                return Err(OvmfError::RepeatedKernelHashesSection);
            }
        }
    }
    Ok(())
}

fn le_u32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

/// Why an OVMF image's launch layout was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OvmfError {
    #[error("firmware image is {len} bytes, larger than the {MAX_FIRMWARE_LEN} accepted")]
    TooLarge { len: usize },
    #[error("firmware image is {len} bytes, not a non-zero number of 4096-byte pages")]
    NotWholePages { len: usize },
    #[error(
        "no OVMF footer table (GUID 96b582de-1fb2-45f7-baea-a366c55a082d) 0x20 bytes before the \
         end of the image: not an OVMF code image"
    )]
    NoFooterTable,
    #[error("OVMF footer table declares {len} bytes, outside the image or below one entry")]
    FooterTableLength { len: u16 },
    #[error(
        "OVMF footer table entry ending at image offset {at:#x} has a bad length ({len:?}): \
         shorter than its header or longer than the table left"
    )]
    FooterEntryLength { at: usize, len: Option<u16> },
    #[error("OVMF footer table has entry {guid} twice")]
    DuplicateEntry { guid: Guid },
    #[error("OVMF footer table entry {guid} has {len} data bytes, fewer than its fields")]
    EntryTooShort { guid: Guid, len: usize },
    #[error(
        "firmware has no SEV-ES reset block (GUID 00f771de-1a7e-4fcb-890e-68c77e2fb44e): it \
         cannot start SEV-ES/SNP vCPUs"
    )]
    NoResetBlock,
    #[error("firmware's SEV-ES reset block gives reset address 0")]
    ResetAddressZero,
    #[error("SEV metadata offset {offset:#x} puts the metadata outside the image")]
    MetadataOffset { offset: u32 },
    #[error("SEV metadata does not start with \"ASEV\"")]
    MetadataSignature,
    #[error("unsupported SEV metadata version {version} (only 1)")]
    MetadataVersion { version: u32 },
    #[error("SEV metadata lists {count} sections, more than the {MAX_SECTIONS} accepted")]
    TooManySections { count: u32 },
    #[error("SEV metadata length {declared} does not match its {count} sections")]
    MetadataLength { declared: u32, count: u32 },
    #[error("SEV metadata section {index} has unknown type {section_type:#x}")]
    UnknownSectionType { index: usize, section_type: u32 },
    #[error("SEV metadata section {index} is empty")]
    SectionEmpty { index: usize },
    #[error("SEV metadata section {index} is not page-aligned in address and size")]
    SectionNotPageAligned { index: usize },
    #[error("SEV metadata section {index} extends past 4 GiB")]
    SectionBeyond4GiB { index: usize },
    #[error("SEV metadata section {index} overlaps the firmware image below 4 GiB")]
    SectionOverlapsFirmware { index: usize },
    #[error("SEV metadata {kind:?} section {index} is not exactly one page")]
    SectionNotOnePage { index: usize, kind: SectionKind },
    #[error("SEV metadata sections {first} and {second} overlap")]
    SectionsOverlap { first: usize, second: usize },
    #[error("SEV metadata has more than one SNP_KERNEL_HASHES section")]
    RepeatedKernelHashesSection,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids_print_in_canonical_form() {
        assert_eq!(
            TABLE_FOOTER_GUID.to_string(),
            "96b582de-1fb2-45f7-baea-a366c55a082d"
        );
        assert_eq!(
            SEV_METADATA_GUID.bytes()[..4],
            [0x66, 0x65, 0x88, 0xdc],
            "Data1 is little-endian in firmware"
        );
    }
}
