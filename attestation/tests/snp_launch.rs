//! `snp::launch` on its own: the OVMF layout decoder refuses each malformed layout with its own
//! error (truncated or mis-sized footer table, bad GUIDs, metadata out of bounds, sections out of
//! range or overlapping) and never panics on mutated images; the launch digest refuses inputs
//! QEMU could not launch, and every measured input counts. Agreement with the peer tool is in
//! `snp_launch_peer.rs`.
#![allow(clippy::unwrap_used, reason = "test code: a panic is a test failure")]

use std::panic::{AssertUnwindSafe, catch_unwind};

use confidant_attestation::snp::launch::ovmf::{
    MAX_FIRMWARE_LEN, MAX_SECTIONS, OvmfError, SEV_ES_RESET_BLOCK_GUID, TABLE_FOOTER_GUID,
};
use confidant_attestation::snp::launch::{
    GuestFeatures, KernelHashes, LaunchConfig, LaunchError, MAX_VCPUS, OvmfImage, SectionKind,
    VcpuType, Vmm, launch_digest,
};
use confidant_testkit::ovmf::{
    self as synth, METADATA_FROM_END, SyntheticOvmf, TABLE_END_FROM_END, guid_bytes,
};
use confidant_testkit::rng::Rng;

/// The synthetic image: 16 pages; its footer table (reset block 22 bytes, hash table block 26,
/// metadata offset 22, footer 18) ends 0x20 bytes before the end.
const LEN: usize = 16 * 4096;
const TABLE_END: usize = LEN - TABLE_END_FROM_END;
const TABLE_LEN: usize = 22 + 26 + 22 + 18;
const TABLE_START: usize = TABLE_END - TABLE_LEN;
const FOOTER_LEN_AT: usize = TABLE_END - 18;
const METADATA_AT: usize = LEN - METADATA_FROM_END;

fn config(vcpus: u32, vmm: Vmm, features: u64) -> LaunchConfig {
    LaunchConfig {
        vcpus,
        vmm,
        guest_features: GuestFeatures::new(features).unwrap(),
    }
}

fn qemu(name: &str) -> Vmm {
    Vmm::Qemu {
        vcpu: VcpuType::from_name(name).unwrap(),
    }
}

fn milan(vcpus: u32) -> LaunchConfig {
    config(vcpus, qemu("EPYC-Milan"), 1)
}

fn kernel() -> KernelHashes {
    KernelHashes::new(b"kernel", Some(b"initrd"), Some("console=ttyS0")).unwrap()
}

fn u32s(v: &[u32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The synthetic image built from its spec changed by `f`.
fn spec(f: impl FnOnce(&mut SyntheticOvmf)) -> Vec<u8> {
    let mut s = SyntheticOvmf::amd_sev();
    f(&mut s);
    s.build()
}

/// The synthetic image with its bytes changed by `f`.
fn patched(f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut img = SyntheticOvmf::amd_sev().build();
    f(&mut img);
    img
}

fn put_u16(img: &mut [u8], at: usize, v: u16) {
    img[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

fn put_u32(img: &mut [u8], at: usize, v: u32) {
    img[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

#[test]
fn the_synthetic_image_decodes_to_its_layout() {
    let img = SyntheticOvmf::amd_sev().build();
    assert_eq!(img.len(), LEN);
    let fw = OvmfImage::parse(&img).unwrap();
    assert_eq!(fw.gpa(), (1u64 << 32) - LEN as u64);
    assert_eq!(fw.ap_reset_address(), 0x0080_b004);
    let kinds: Vec<SectionKind> = fw.sections().iter().map(|s| s.kind).collect();
    assert_eq!(
        kinds,
        [
            SectionKind::SnpSecMem,
            SectionKind::SnpSecrets,
            SectionKind::Cpuid,
            SectionKind::SvsmCaa,
            SectionKind::SnpKernelHashes,
            SectionKind::SnpSecMem
        ]
    );
    let area = fw.hash_table_area().unwrap();
    assert_eq!((area.base, area.size), (0x0080_cc00, 0x400));
    assert!(launch_digest(&fw, &milan(2), Some(&kernel())).is_ok());
}

#[test]
fn malformed_layouts_are_refused_each_with_its_own_error() {
    let meta = guid_bytes(synth::SEV_METADATA);
    let reset = guid_bytes(synth::SEV_ES_RESET_BLOCK);
    let cases: Vec<(&str, Vec<u8>, OvmfError)> = vec![
        // Image size.
        ("empty", Vec::new(), OvmfError::NotWholePages { len: 0 }),
        (
            "not whole pages",
            patched(|i| i.truncate(LEN - 1)),
            OvmfError::NotWholePages { len: LEN - 1 },
        ),
        (
            "over the size limit",
            vec![0; MAX_FIRMWARE_LEN + 4096],
            OvmfError::TooLarge {
                len: MAX_FIRMWARE_LEN + 4096,
            },
        ),
        // Footer table.
        (
            "last page cut off",
            patched(|i| i.truncate(LEN - 4096)),
            OvmfError::NoFooterTable,
        ),
        (
            "bad footer GUID",
            patched(|i| i[TABLE_END - 1] ^= 0x80),
            OvmfError::NoFooterTable,
        ),
        (
            "table longer than the image",
            patched(|i| put_u16(i, FOOTER_LEN_AT, 0xffff)),
            OvmfError::FooterTableLength { len: 0xffff },
        ),
        (
            "table shorter than its footer",
            patched(|i| put_u16(i, FOOTER_LEN_AT, 17)),
            OvmfError::FooterTableLength { len: 17 },
        ),
        (
            "table truncated mid-entry",
            patched(|i| put_u16(i, FOOTER_LEN_AT, TABLE_LEN as u16 - 1)),
            OvmfError::FooterEntryLength {
                at: TABLE_START + 22,
                len: Some(22),
            },
        ),
        (
            "table with trailing bytes shorter than an entry",
            patched(|i| put_u16(i, FOOTER_LEN_AT, TABLE_LEN as u16 + 5)),
            OvmfError::FooterEntryLength {
                at: TABLE_START,
                len: None,
            },
        ),
        (
            "entry length below its header",
            patched(|i| put_u16(i, TABLE_START + 70 - 18, 5)),
            OvmfError::FooterEntryLength {
                at: TABLE_START + 70,
                len: Some(5),
            },
        ),
        (
            "entry longer than the table left",
            patched(|i| put_u16(i, TABLE_START + 22 - 18, 23)),
            OvmfError::FooterEntryLength {
                at: TABLE_START + 22,
                len: Some(23),
            },
        ),
        (
            "entry twice",
            spec(|s| s.entries.push((reset, u32s(&[0x0080_b004])))),
            OvmfError::DuplicateEntry {
                guid: SEV_ES_RESET_BLOCK_GUID,
            },
        ),
        (
            "footer GUID inside the table",
            spec(|s| s.entries.push((guid_bytes(synth::TABLE_FOOTER), vec![]))),
            OvmfError::DuplicateEntry {
                guid: TABLE_FOOTER_GUID,
            },
        ),
        // Entries.
        (
            "no SEV-ES reset block",
            spec(|s| {
                s.entries.remove(0);
            }),
            OvmfError::NoResetBlock,
        ),
        (
            "reset block too short",
            spec(|s| s.entries[0].1 = vec![4, 0]),
            OvmfError::EntryTooShort {
                guid: SEV_ES_RESET_BLOCK_GUID,
                len: 2,
            },
        ),
        (
            "reset address zero",
            spec(|s| s.entries[0].1 = u32s(&[0])),
            OvmfError::ResetAddressZero,
        ),
        // Metadata.
        (
            "metadata offset beyond the image",
            spec(|s| s.entries[2] = (meta, u32s(&[LEN as u32 + 1]))),
            OvmfError::MetadataOffset {
                offset: LEN as u32 + 1,
            },
        ),
        (
            "metadata offset zero",
            spec(|s| s.entries[2] = (meta, u32s(&[0]))),
            OvmfError::MetadataOffset { offset: 0 },
        ),
        (
            "metadata running past the image end",
            {
                let mut i = spec(|s| s.entries[2] = (meta, u32s(&[0x20])));
                i[LEN - 0x20..LEN - 0x20 + 4].copy_from_slice(b"ASEV");
                put_u32(&mut i, LEN - 0x20 + 4, 16 + 2 * 12);
                put_u32(&mut i, LEN - 0x20 + 8, 1);
                put_u32(&mut i, LEN - 0x20 + 12, 2);
                i
            },
            OvmfError::MetadataOffset { offset: 0x20 },
        ),
        (
            "bad metadata signature",
            patched(|i| i[METADATA_AT] = b'B'),
            OvmfError::MetadataSignature,
        ),
        (
            "metadata version 2",
            patched(|i| put_u32(i, METADATA_AT + 8, 2)),
            OvmfError::MetadataVersion { version: 2 },
        ),
        (
            "metadata length disagrees with its count",
            patched(|i| put_u32(i, METADATA_AT + 4, 16 + 12 * 5)),
            OvmfError::MetadataLength {
                declared: 76,
                count: 6,
            },
        ),
        (
            "too many sections",
            patched(|i| put_u32(i, METADATA_AT + 12, MAX_SECTIONS + 1)),
            OvmfError::TooManySections {
                count: MAX_SECTIONS + 1,
            },
        ),
        // Sections.
        (
            "unknown section type",
            spec(|s| s.sections[3].2 = 5),
            OvmfError::UnknownSectionType {
                index: 3,
                section_type: 5,
            },
        ),
        (
            "empty section",
            spec(|s| s.sections[0].1 = 0),
            OvmfError::SectionEmpty { index: 0 },
        ),
        (
            "unaligned section address",
            spec(|s| s.sections[1].0 += 0x10),
            OvmfError::SectionNotPageAligned { index: 1 },
        ),
        (
            "unaligned section size",
            spec(|s| s.sections[0].1 = 0x8800),
            OvmfError::SectionNotPageAligned { index: 0 },
        ),
        (
            "section past 4 GiB",
            spec(|s| s.sections[5] = (0xffff_f000, 0x2000, synth::SNP_SEC_MEM)),
            OvmfError::SectionBeyond4GiB { index: 5 },
        ),
        (
            "section over the firmware",
            spec(|s| s.sections[5] = (0xffff_0000, 0x1000, synth::SNP_SEC_MEM)),
            OvmfError::SectionOverlapsFirmware { index: 5 },
        ),
        (
            "two-page secrets section",
            spec(|s| s.sections[1] = (0x0090_0000, 0x2000, synth::SNP_SECRETS)),
            OvmfError::SectionNotOnePage {
                index: 1,
                kind: SectionKind::SnpSecrets,
            },
        ),
        (
            "two-page CPUID section",
            spec(|s| s.sections[2] = (0x0090_0000, 0x2000, synth::CPUID)),
            OvmfError::SectionNotOnePage {
                index: 2,
                kind: SectionKind::Cpuid,
            },
        ),
        (
            "overlapping sections",
            spec(|s| s.sections[0].1 = 0xa000),
            OvmfError::SectionsOverlap {
                first: 0,
                second: 1,
            },
        ),
        (
            "a section inside another",
            spec(|s| s.sections.push((0x0080_1000, 0x1000, synth::SVSM_CAA))),
            OvmfError::SectionsOverlap {
                first: 0,
                second: 6,
            },
        ),
        (
            "two kernel-hashes sections",
            spec(|s| s.sections[3].2 = synth::SNP_KERNEL_HASHES),
            OvmfError::RepeatedKernelHashesSection,
        ),
    ];
    for (name, img, expected) in cases {
        assert_eq!(OvmfImage::parse(&img).err(), Some(expected), "{name}");
    }
}

#[test]
fn launches_qemu_could_not_do_are_refused() {
    let img = SyntheticOvmf::amd_sev().build();
    let fw = OvmfImage::parse(&img).unwrap();
    for vcpus in [0, MAX_VCPUS + 1] {
        assert_eq!(
            launch_digest(&fw, &milan(vcpus), None),
            Err(LaunchError::VcpuCount { vcpus })
        );
    }
    assert!(launch_digest(&fw, &milan(MAX_VCPUS), None).is_ok());

    // Firmware whose hash table area cannot take the table: fine without a kernel (QEMU zeroes
    // the section), refused with one.
    let area = |base: u32, size: u32| spec(|s| s.entries[1].1 = u32s(&[base, size]));
    let section_gpa = 0x0080_c000;
    for (name, img, expected) in [
        (
            "no hash table block",
            spec(|s| {
                s.entries.remove(1);
            }),
            LaunchError::NoHashTableArea,
        ),
        ("base zero", area(0, 0x400), LaunchError::NoHashTableArea),
        (
            "area smaller than the table",
            area(0x0080_cc00, 0x80),
            LaunchError::HashTableArea {
                base: 0x0080_cc00,
                size: 0x80,
                section_gpa,
            },
        ),
        (
            "area outside the section",
            area(0x0080_dc00, 0x400),
            LaunchError::HashTableArea {
                base: 0x0080_dc00,
                size: 0x400,
                section_gpa,
            },
        ),
        (
            "table crossing the page end",
            area(0x0080_cff0, 0x400),
            LaunchError::HashTableArea {
                base: 0x0080_cff0,
                size: 0x400,
                section_gpa,
            },
        ),
        (
            "no kernel-hashes section",
            spec(|s| {
                s.sections.remove(4);
            }),
            LaunchError::NoKernelHashesSection,
        ),
    ] {
        let fw = OvmfImage::parse(&img).unwrap();
        assert!(launch_digest(&fw, &milan(1), None).is_ok(), "{name}");
        assert_eq!(
            launch_digest(&fw, &milan(1), Some(&kernel())),
            Err(expected),
            "{name}"
        );
    }
}

#[test]
fn every_measured_input_changes_the_digest() {
    let img = SyntheticOvmf::amd_sev().build();
    let fw = OvmfImage::parse(&img).unwrap();
    let k = kernel();
    let base = launch_digest(&fw, &milan(2), Some(&k)).unwrap();
    let mut flipped = img.clone();
    flipped[0x1234] ^= 1;
    let fw2 = OvmfImage::parse(&flipped).unwrap();
    let hashes = |kernel: &[u8], initrd: &[u8], append: &str| {
        KernelHashes::new(kernel, Some(initrd), Some(append)).unwrap()
    };
    let variants = [
        launch_digest(&fw2, &milan(2), Some(&k)),
        launch_digest(
            &fw,
            &milan(2),
            Some(&hashes(b"kernes", b"initrd", "console=ttyS0")),
        ),
        launch_digest(
            &fw,
            &milan(2),
            Some(&hashes(b"kernel", b"initrc", "console=ttyS0")),
        ),
        launch_digest(
            &fw,
            &milan(2),
            Some(&hashes(b"kernel", b"initrd", "console=ttyS1")),
        ),
        launch_digest(&fw, &milan(2), None),
        launch_digest(&fw, &milan(3), Some(&k)),
        launch_digest(&fw, &config(2, qemu("EPYC-Genoa"), 1), Some(&k)),
        launch_digest(&fw, &config(2, qemu("EPYC-Milan"), 0x21), Some(&k)),
        launch_digest(&fw, &config(2, Vmm::Ec2, 1), Some(&k)),
        launch_digest(&fw, &config(2, Vmm::Gce, 1), Some(&k)),
    ];
    let mut all = vec![base];
    for v in variants {
        all.push(v.unwrap());
    }
    let distinct: std::collections::BTreeSet<_> = all.iter().collect();
    assert_eq!(distinct.len(), all.len());
}

/// Parses `img` and, when it decodes and its sections are small enough to measure quickly,
/// computes its launch digests with and without a kernel; a panic fails the test with the case.
/// Returns whether it decoded.
fn no_panic(what: &str, img: &[u8]) -> bool {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let Ok(fw) = OvmfImage::parse(img) else {
            return false;
        };
        let pages: u64 = fw.sections().iter().map(|s| s.pages()).sum();
        if pages <= 4096 {
            let _ = launch_digest(&fw, &milan(2), None);
            let _ = launch_digest(&fw, &config(2, Vmm::Gce, 1), Some(&kernel()));
        }
        true
    }));
    match outcome {
        Ok(decoded) => decoded,
        Err(_) => panic!("{what} panicked"),
    }
}

#[test]
fn the_decoder_never_panics_on_mutated_images() {
    let seed = SyntheticOvmf::amd_sev().build();
    let mut rng = Rng(0x0f1e_2d3c);
    let mut decoded = 0;
    let mut total = 0;
    // Every byte of the metadata (header and six descriptors) and of the footer table, each with
    // a random bit flipped, zeroed and set to 0xff; then random multi-byte damage there.
    let layout: Vec<usize> = (METADATA_AT..METADATA_AT + 16 + 6 * 12)
        .chain(TABLE_START..TABLE_END)
        .collect();
    for &at in &layout {
        for op in 0..3 {
            let mut img = seed.clone();
            img[at] = match op {
                0 => img[at] ^ (1 << rng.below(8)),
                1 => 0,
                _ => 0xff,
            };
            total += 1;
            decoded += usize::from(no_panic(&format!("byte {at:#x} op {op}"), &img));
        }
    }
    for n in 0..1000 {
        let mut img = seed.clone();
        for _ in 0..1 + rng.below(6) {
            let at = layout[rng.below(layout.len())];
            img[at] = rng.next_u64() as u8;
        }
        total += 1;
        decoded += usize::from(no_panic(&format!("random case {n}"), &img));
    }
    for pages in 0..=16 {
        total += 1;
        decoded += usize::from(no_panic(&format!("{pages} pages"), &seed[..pages * 4096]));
    }
    // A real image too (Debian's, installed by scripts/setup.sh): decode only.
    let mut debian = std::fs::read("/usr/share/OVMF/OVMF_CODE.fd").unwrap();
    for _ in 0..2000 {
        let at = debian.len() - 1 - rng.below(0x600);
        let bit = 1 << rng.below(8);
        debian[at] ^= bit;
        total += 1;
        let ok = catch_unwind(AssertUnwindSafe(|| OvmfImage::parse(&debian).is_ok()))
            .unwrap_or_else(|_| panic!("Debian image with byte {at:#x} flipped panicked"));
        decoded += usize::from(ok);
        debian[at] ^= bit;
    }
    // Positive control: mutations that hit unused bytes still decode and reach the digest.
    eprintln!("{decoded} of {total} mutated images decoded");
    assert!(
        decoded > total / 10 && decoded < total,
        "{decoded} of {total} decoded"
    );
}
