//! Synthetic OVMF images carrying the launch layout SEV-SNP measurement reads: the GUIDed footer
//! table at the end of the image and the "ASEV" SEV metadata it points to (edk2
//! `OvmfPkg/ResetVector/Ia16/ResetVectorVtf0.asm`, `X64/OvmfSevMetadata.asm`). Debian's OVMF
//! builds lack the SNP kernel-hashes section of the AmdSev build; these images have it, so tests
//! can measure direct kernel boot. Written from the format description, independently of
//! `confidant_attestation::snp::launch` (GUIDs are encoded from their text here).

/// GUID of the footer table.
pub const TABLE_FOOTER: &str = "96b582de-1fb2-45f7-baea-a366c55a082d";
/// GUID of the SEV-ES reset block (AP reset address).
pub const SEV_ES_RESET_BLOCK: &str = "00f771de-1a7e-4fcb-890e-68c77e2fb44e";
/// GUID of the SEV hash table block (kernel hashes table base and size).
pub const SEV_HASH_TABLE_BLOCK: &str = "7255371f-3a3b-4b04-927b-1da6efa8d454";
/// GUID of the SEV metadata offset entry.
pub const SEV_METADATA: &str = "dc886566-984a-4798-a75e-5585a7bf67cc";

/// Section types of the SEV metadata.
pub const SNP_SEC_MEM: u32 = 1;
pub const SNP_SECRETS: u32 = 2;
pub const CPUID: u32 = 3;
pub const SVSM_CAA: u32 = 4;
pub const SNP_KERNEL_HASHES: u32 = 0x10;

/// Where [`SyntheticOvmf::build`] puts the SEV metadata: this many bytes before the image's end.
pub const METADATA_FROM_END: usize = 0x800;
/// The footer table ends this many bytes before the image's end.
pub const TABLE_END_FROM_END: usize = 0x20;

/// The GUID's bytes as firmware stores them (first three fields little-endian).
pub fn guid_bytes(text: &str) -> [u8; 16] {
    let hex: String = text.chars().filter(|c| *c != '-').collect();
    assert_eq!(hex.len(), 32, "GUID {text}");
    let b: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex GUID"))
        .collect();
    let mut out = [0u8; 16];
    out[..4].copy_from_slice(&[b[3], b[2], b[1], b[0]]);
    out[4..6].copy_from_slice(&[b[5], b[4]]);
    out[6..8].copy_from_slice(&[b[7], b[6]]);
    out[8..].copy_from_slice(&b[8..]);
    out
}

/// An image to build. [`SyntheticOvmf::amd_sev`] is the usual starting point; tests change
/// fields to make the malformed variants.
#[derive(Debug, Clone)]
pub struct SyntheticOvmf {
    /// Image size in 4 KiB pages.
    pub pages: usize,
    /// Seed of the pseudo-random image content.
    pub seed: u64,
    /// Footer table entries `(GUID bytes, data)`, first to last (the footer follows the last).
    pub entries: Vec<([u8; 16], Vec<u8>)>,
    /// SEV metadata `(gpa, size, type)` sections, written at [`METADATA_FROM_END`] when the
    /// entries point there.
    pub sections: Vec<(u32, u32, u32)>,
}

impl SyntheticOvmf {
    /// A 64 KiB image laid out like OVMF's AmdSev build: SEV-ES reset block, SEV hash table
    /// block (0x80cc00, 0x400 bytes: inside the kernel-hashes page) and SEV metadata with
    /// SNP_SEC_MEM, SNP_SECRETS, CPUID, SVSM_CAA, SNP_KERNEL_HASHES and another SNP_SEC_MEM.
    pub fn amd_sev() -> Self {
        let u32s = |v: &[u32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        SyntheticOvmf {
            pages: 16,
            seed: 0x5eed,
            entries: vec![
                (guid_bytes(SEV_ES_RESET_BLOCK), u32s(&[0x0080_b004])),
                (
                    guid_bytes(SEV_HASH_TABLE_BLOCK),
                    u32s(&[0x0080_cc00, 0x400]),
                ),
                (guid_bytes(SEV_METADATA), u32s(&[METADATA_FROM_END as u32])),
            ],
            sections: vec![
                (0x0080_0000, 0x9000, SNP_SEC_MEM),
                (0x0080_9000, 0x1000, SNP_SECRETS),
                (0x0080_a000, 0x1000, CPUID),
                (0x0080_b000, 0x1000, SVSM_CAA),
                (0x0080_c000, 0x1000, SNP_KERNEL_HASHES),
                (0x0080_d000, 0x13000, SNP_SEC_MEM),
            ],
        }
    }

    /// The image bytes.
    pub fn build(&self) -> Vec<u8> {
        let len = self.pages * 4096;
        let mut img = crate::rng::Rng(self.seed).bytes(len);
        // SEV metadata: "ASEV", length, version 1, count, then the descriptors.
        let m = len - METADATA_FROM_END;
        let mut meta = b"ASEV".to_vec();
        for v in [
            16 + 12 * self.sections.len() as u32,
            1,
            self.sections.len() as u32,
        ] {
            meta.extend_from_slice(&v.to_le_bytes());
        }
        for (gpa, size, kind) in &self.sections {
            for v in [gpa, size, kind] {
                meta.extend_from_slice(&v.to_le_bytes());
            }
        }
        img[m..m + meta.len()].copy_from_slice(&meta);
        // Footer table: each entry is data ‖ length u16 ‖ GUID; the footer's length is the table's.
        let mut table = Vec::new();
        for (guid, data) in &self.entries {
            table.extend_from_slice(data);
            table.extend_from_slice(&((data.len() + 18) as u16).to_le_bytes());
            table.extend_from_slice(guid);
        }
        table.extend_from_slice(&((table.len() + 18) as u16).to_le_bytes());
        table.extend_from_slice(&guid_bytes(TABLE_FOOTER));
        let end = len - TABLE_END_FROM_END;
        img[end - table.len()..end].copy_from_slice(&table);
        img
    }
}
