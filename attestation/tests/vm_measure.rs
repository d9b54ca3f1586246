//! `vmimage` against real peers: pesign (Authenticode), GNU cpio (the initramfs writer), and the
//! values recorded from a real QEMU + OVMF + swtpm boot (tests/data/ovmf-boot).
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use confidant_attestation::vmimage::authenticode::authenticode_sha256;
use confidant_attestation::vmimage::cpio::CpioBuilder;
use confidant_attestation::vmimage::pcr::{cmdline_event_digest, measure_boot, stub_cmdline};
use confidant_attestation::vmimage::qemu::{PatchError, patch_setup_header};

/// The kernel of the recorded boot.
const RECORDED_KERNEL: &str = "vmlinuz-6.1.0-57-cloud-amd64";

/// scripts/vm-kernel.sh's vmlinuz (the test command's setup installs what the script needs).
fn kernel() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/vm-kernel.sh");
    let out = Command::new("bash").arg(script).output().unwrap();
    assert!(
        out.status.success(),
        "vm-kernel.sh failed (run scripts/setup.sh): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = String::from_utf8(out.stdout).unwrap();
    let k = PathBuf::from(s.lines().next().unwrap());
    assert!(
        k.is_file(),
        "vm-kernel.sh printed {}, not a file",
        k.display()
    );
    k
}

/// pesign's Authenticode digest of a PE file (pesign is installed by scripts/setup.sh).
fn pesign_digest(path: &Path) -> String {
    let out = Command::new("pesign")
        .arg("-i")
        .arg(path)
        .arg("-h")
        .output()
        .expect("pesign (scripts/setup.sh installs it)");
    assert!(
        out.status.success(),
        "pesign: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = String::from_utf8(out.stdout).unwrap();
    // "hash: 65c8…" (pesign 0.112 prints the digest after "hash:"; older ones print it bare).
    s.split_whitespace().last().unwrap().to_ascii_lowercase()
}

#[test]
fn authenticode_matches_pesign_on_the_real_kernel_and_the_patched_one() {
    let k = kernel();
    let bytes = std::fs::read(&k).unwrap();
    let ours = hex::encode(authenticode_sha256(&bytes).unwrap());
    assert_eq!(ours, pesign_digest(&k), "unpatched {}", k.display());
    let patched = patch_setup_header(&bytes, 1_984_000, 1 << 30).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pp = dir.path().join("patched");
    std::fs::write(&pp, &patched).unwrap();
    let ours_p = hex::encode(authenticode_sha256(&patched).unwrap());
    assert_eq!(ours_p, pesign_digest(&pp), "patched");
    assert_ne!(ours, ours_p);
    if k.file_name().and_then(|n| n.to_str()) == Some(RECORDED_KERNEL) {
        println!("recorded kernel {RECORDED_KERNEL}: checking the measured digest");
        assert_eq!(
            ours_p,
            "85e0afa0ca668da659403e1eb3280ae53a9633fc5c56d100f62a9e0fcf54a5f9"
        );
        assert!(ours.starts_with("65c89335"), "{ours}");
    } else {
        println!(
            "metapackage moved on to {}: checked pesign agreement and structure only",
            k.display()
        );
    }
}

#[test]
fn recorded_boot_pcrs_are_reproduced() {
    assert_eq!(
        hex::encode(cmdline_event_digest(&stub_cmdline("console=ttyS0 quiet"))),
        "6791447f65301cd17d9cda83bad8f4aa38f69a3257c2ba8315262e9325c78e6d"
    );
    let k = kernel();
    if k.file_name().and_then(|n| n.to_str()) != Some(RECORDED_KERNEL) {
        println!("metapackage moved on: PCR 4 of the recorded boot not checked");
        return;
    }
    let bytes = std::fs::read(&k).unwrap();
    // Not the recorded initrd (not stored), but one of its size: PCR 4 depends only on the size.
    let initrd = vec![0u8; 1_984_000];
    let m = measure_boot(&bytes, &initrd, "console=ttyS0 quiet", 1 << 30).unwrap();
    assert_eq!(
        hex::encode_upper(m.pcr4),
        "9FAE912CF62E8A2FCF1A008AB72220E8C014A4FE2FFE382CECF6FDC76A70001F"
    );
    assert_eq!(m.cmdline, "console=ttyS0 quiet initrd=initrd");
    // PCR 9 recorded: the recorded initrd's digest with this cmdline.
    let recorded_initrd: [u8; 32] =
        hex::decode("850a10cd760aabf224b21d9708d41ac8247277989e5e609ad16700baa8945e1c")
            .unwrap()
            .try_into()
            .unwrap();
    assert_eq!(
        hex::encode_upper(confidant_attestation::vmimage::pcr::pcr9_from_digests(
            &m.cmdline_digest,
            &recorded_initrd
        )),
        "9B2BCDFCF8A2FE251511572728E26FA176E3BC06281841FB5030A5ABE2ADD579"
    );
}

#[test]
fn refuses_non_kernels_and_vga() {
    assert!(matches!(
        patch_setup_header(b"not a kernel", 0, 1 << 30),
        Err(PatchError::NotBzImage(_))
    ));
    let k = kernel();
    let bytes = std::fs::read(&k).unwrap();
    assert!(measure_boot(&bytes, b"x", "console=ttyS0 vga=791", 1 << 30).is_err());
    assert!(matches!(
        patch_setup_header(&bytes, 1 << 30, 1 << 30),
        Err(PatchError::InitrdTooLarge { .. })
    ));
}

fn sample() -> CpioBuilder {
    let mut b = CpioBuilder::new();
    b.file("init", b"#!/bin/sh\necho hi\n".to_vec(), 0o755)
        .unwrap();
    b.file("etc/hosts", b"127.0.0.1 localhost\n".to_vec(), 0o644)
        .unwrap();
    b.dir("tmp", 0o1777).unwrap();
    b.symlink("bin/sh", "busybox").unwrap();
    b.file("bin/busybox", vec![0x7f, b'E', b'L', b'F', 1, 2, 3], 0o755)
        .unwrap();
    b
}

#[test]
fn cpio_is_deterministic_and_gnu_cpio_reads_it() {
    let a = sample().finish();
    assert_eq!(a, sample().finish());
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("initrd.cpio");
    std::fs::write(&archive, &a).unwrap();
    let list = Command::new("cpio")
        .args(["-t", "--quiet", "-F"])
        .arg(&archive)
        .output()
        .expect("GNU cpio (scripts/setup.sh installs it)");
    assert!(list.status.success());
    let names: Vec<String> = String::from_utf8(list.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        names,
        [
            "bin",
            "bin/busybox",
            "bin/sh",
            "etc",
            "etc/hosts",
            "init",
            "tmp"
        ]
    );
    let x = dir.path().join("x");
    std::fs::create_dir(&x).unwrap();
    let st = Command::new("cpio")
        .args(["-idm", "--quiet", "--no-absolute-filenames", "-F"])
        .arg(&archive)
        .current_dir(&x)
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(
        std::fs::read(x.join("init")).unwrap(),
        b"#!/bin/sh\necho hi\n"
    );
    assert_eq!(
        std::fs::read_link(x.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let m = std::fs::metadata(x.join("init")).unwrap();
    assert_eq!(m.permissions().mode() & 0o7777, 0o755);
    assert_eq!(m.mtime(), 0);
    let t = std::fs::metadata(x.join("tmp")).unwrap();
    assert_eq!(t.permissions().mode() & 0o7777, 0o1777);
}
