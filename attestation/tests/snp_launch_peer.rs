//! `snp::launch` against a peer nobody here wrote: sev-snp-measure 0.0.13 (virtee, from PyPI,
//! pinned by hash; `scripts/py-tools.sh`). Both compute the SEV-SNP launch digest of the same
//! inputs and must agree byte for byte: on Debian's `ovmf` firmware files across vCPU counts,
//! vCPU models, guest features and VMMs, and on a synthetic AmdSev-style image with the
//! kernel-hashes section across kernel/initrd/append combinations. Every case differs from every
//! other in some measured input, so all digests must also be distinct (a tool printing a
//! constant would fail), and one-byte changes of firmware, kernel, initrd and command line each
//! change the digest — in both tools.
#![allow(clippy::unwrap_used, reason = "test code: a panic is a test failure")]

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use confidant_attestation::snp::launch::{
    GuestFeatures, KernelHashes, LaunchConfig, LaunchError, OvmfImage, VcpuType, Vmm, launch_digest,
};
use confidant_testkit::ovmf::SyntheticOvmf;
use serde_json::json;

/// Debian's `ovmf` package (installed by scripts/setup.sh): every distinct x86_64 code image.
const DEBIAN_OVMF: &[&str] = &[
    "/usr/share/OVMF/OVMF_CODE.fd",
    "/usr/share/OVMF/OVMF_CODE.secboot.fd",
    "/usr/share/OVMF/OVMF_CODE_4M.fd",
    "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd",
    "/usr/share/ovmf/OVMF.fd",
];

const VCPU_TYPES: &[&str] = &[
    "EPYC-v4",
    "EPYC-Rome",
    "EPYC-Milan",
    "EPYC-Genoa",
    "EPYC-Turin",
];

#[derive(Debug, Clone)]
struct Case {
    ovmf: PathBuf,
    vcpus: u32,
    /// `Some` for QEMU; `None` with `vmm` ec2 or gce.
    vcpu_type: Option<&'static str>,
    /// The peer's VMM name: QEMU, ec2, gce.
    vmm: &'static str,
    features: u64,
    kernel: Option<PathBuf>,
    initrd: Option<PathBuf>,
    append: Option<String>,
}

impl Case {
    fn qemu(ovmf: &Path, vcpus: u32, vcpu_type: &'static str, features: u64) -> Case {
        Case {
            ovmf: ovmf.to_path_buf(),
            vcpus,
            vcpu_type: Some(vcpu_type),
            vmm: "QEMU",
            features,
            kernel: None,
            initrd: None,
            append: None,
        }
    }

    fn cloud(ovmf: &Path, vcpus: u32, vmm: &'static str) -> Case {
        Case {
            vcpu_type: None,
            vmm,
            ..Case::qemu(ovmf, vcpus, "EPYC", 1)
        }
    }

    fn with_kernel(mut self, kernel: &Path, initrd: Option<&Path>, append: Option<&str>) -> Case {
        self.kernel = Some(kernel.to_path_buf());
        self.initrd = initrd.map(Path::to_path_buf);
        self.append = append.map(str::to_owned);
        self
    }

    /// Our digest, in hex, or our error.
    fn ours(&self) -> Result<String, LaunchError> {
        let bytes = std::fs::read(&self.ovmf).unwrap();
        let image = OvmfImage::parse(&bytes).unwrap();
        let vmm = match self.vmm {
            "QEMU" => Vmm::Qemu {
                vcpu: VcpuType::from_name(self.vcpu_type.unwrap()).unwrap(),
            },
            "ec2" => Vmm::Ec2,
            "gce" => Vmm::Gce,
            other => panic!("vmm {other}"),
        };
        let config = LaunchConfig {
            vcpus: self.vcpus,
            vmm,
            guest_features: GuestFeatures::new(self.features).unwrap(),
        };
        let hashes = self.kernel.as_ref().map(|k| {
            let initrd = self.initrd.as_ref().map(|p| std::fs::read(p).unwrap());
            KernelHashes::new(
                &std::fs::read(k).unwrap(),
                initrd.as_deref(),
                self.append.as_deref(),
            )
            .unwrap()
        });
        launch_digest(&image, &config, hashes.as_ref()).map(hex::encode)
    }

    fn to_json(&self) -> serde_json::Value {
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        json!({
            "ovmf": self.ovmf.display().to_string(),
            "vcpus": self.vcpus,
            "vcpu_type": self.vcpu_type,
            "vmm": self.vmm,
            "guest_features": self.features,
            "kernel": path(&self.kernel),
            "initrd": path(&self.initrd),
            "append": self.append,
        })
    }
}

/// sev-snp-measure's output for each case, in one Python process (`snp_launch_peer.py`).
fn peer(cases: &[Case]) -> Vec<String> {
    peer_start(cases).finish(cases.len())
}

/// The peer computing `cases` in the background.
struct Peer {
    child: std::process::Child,
    writer: std::thread::JoinHandle<()>,
}

impl Peer {
    fn finish(self, expected: usize) -> Vec<String> {
        let out = self.child.wait_with_output().unwrap();
        self.writer.join().unwrap();
        assert!(
            out.status.success(),
            "peer driver failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let lines: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect();
        assert_eq!(lines.len(), expected, "one peer answer per case");
        lines
    }
}

fn peer_start(cases: &[Case]) -> Peer {
    let driver = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snp_launch_peer.py");
    let mut child = Command::new(confidant_testkit::pytools::python())
        .arg(&driver)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = String::new();
    for c in cases {
        input.push_str(&c.to_json().to_string());
        input.push('\n');
    }
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()).unwrap());
    Peer { child, writer }
}

/// Both tools agree on every case and every digest is distinct; returns the digests.
fn agree(cases: &[Case]) -> Vec<String> {
    // The peer works in its own process while we compute ours.
    let running = peer_start(cases);
    let ours: Vec<Result<String, LaunchError>> = cases.iter().map(Case::ours).collect();
    let theirs = running.finish(cases.len());
    let ours: Vec<String> = cases
        .iter()
        .zip(ours)
        .zip(&theirs)
        .map(|((case, mine), theirs)| {
            let mine = mine
                .unwrap_or_else(|e| panic!("{case:?}: we refused ({e}), the peer said {theirs}"));
            assert_eq!(&mine, theirs, "digests differ for {case:?}");
            mine
        })
        .collect();
    let distinct: BTreeSet<&String> = ours.iter().collect();
    assert_eq!(
        distinct.len(),
        cases.len(),
        "different launches must not share a digest"
    );
    ours
}

fn debian_firmware() -> Vec<PathBuf> {
    DEBIAN_OVMF
        .iter()
        .map(|p| {
            let p = PathBuf::from(p);
            assert!(
                p.is_file(),
                "{} missing: scripts/setup.sh installs Debian's ovmf",
                p.display()
            );
            p
        })
        .collect()
}

#[test]
fn debian_ovmf_digests_equal_sev_snp_measure_across_vcpus_models_features_and_vmms() {
    let mut cases = Vec::new();
    for fw in debian_firmware() {
        for vcpus in [1, 2, 3, 16] {
            for ty in VCPU_TYPES {
                for features in [0x1, 0x21] {
                    cases.push(Case::qemu(&fw, vcpus, ty, features));
                }
            }
        }
        for vcpus in [1, 4] {
            for vmm in ["ec2", "gce"] {
                cases.push(Case::cloud(&fw, vcpus, vmm));
            }
        }
    }
    assert_eq!(cases.len(), 5 * (4 * 5 * 2 + 4));
    agree(&cases);
}

/// The synthetic AmdSev-style image, a kernel, an initrd, in `dir`.
fn synthetic_inputs(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let fw = dir.join("OVMF.amdsev.fd");
    std::fs::write(&fw, SyntheticOvmf::amd_sev().build()).unwrap();
    let kernel = dir.join("vmlinuz");
    std::fs::write(
        &kernel,
        (0..300_000u32)
            .map(|i| (i * 7 % 251) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let initrd = dir.join("initrd.img");
    std::fs::write(
        &initrd,
        (0..200_000u32)
            .map(|i| (i * 13 % 253) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    (fw, kernel, initrd)
}

#[test]
fn kernel_hashes_digests_equal_sev_snp_measure() {
    let dir = tempfile::tempdir().unwrap();
    let (fw, kernel, initrd) = synthetic_inputs(dir.path());
    let mut cases = Vec::new();
    for vcpus in [1, 4] {
        let bases = [
            Case::qemu(&fw, vcpus, "EPYC-Milan", 1),
            Case::qemu(&fw, vcpus, "EPYC-Genoa", 0x21),
            Case::cloud(&fw, vcpus, "ec2"),
            Case::cloud(&fw, vcpus, "gce"),
        ];
        for base in bases {
            cases.push(base.clone());
            cases.push(base.clone().with_kernel(&kernel, None, None));
            cases.push(base.clone().with_kernel(&kernel, Some(&initrd), None));
            cases.push(
                base.clone()
                    .with_kernel(&kernel, None, Some("console=ttyS0")),
            );
            cases.push(base.with_kernel(&kernel, Some(&initrd), Some("console=ttyS0 quiet")));
        }
    }
    agree(&cases);
}

#[test]
fn one_byte_changes_to_firmware_kernel_initrd_or_append_change_the_digest_in_both_tools() {
    let dir = tempfile::tempdir().unwrap();
    let (fw, kernel, initrd) = synthetic_inputs(dir.path());
    let flip = |src: &Path, name: &str, at: usize| -> PathBuf {
        let mut b = std::fs::read(src).unwrap();
        b[at] ^= 0x01;
        let p = dir.path().join(name);
        std::fs::write(&p, b).unwrap();
        p
    };
    let fw2 = flip(&fw, "OVMF.flipped.fd", 0x1234);
    let kernel2 = flip(&kernel, "vmlinuz.flipped", 299_999);
    let initrd2 = flip(&initrd, "initrd.flipped", 0);
    let append = "console=ttyS0 quiet";
    let base = |fw: &Path, k: &Path, i: &Path, a: &str| {
        Case::qemu(fw, 2, "EPYC-Milan", 1).with_kernel(k, Some(i), Some(a))
    };
    // agree() also requires all five digests to be distinct.
    agree(&[
        base(&fw, &kernel, &initrd, append),
        base(&fw2, &kernel, &initrd, append),
        base(&fw, &kernel2, &initrd, append),
        base(&fw, &kernel, &initrd2, append),
        base(&fw, &kernel, &initrd, "console=ttyS0 quieT"),
    ]);
}

#[test]
fn a_kernel_with_firmware_lacking_the_kernel_hashes_section_is_refused_by_both_tools() {
    let dir = tempfile::tempdir().unwrap();
    let (_, kernel, _) = synthetic_inputs(dir.path());
    let fw = PathBuf::from(DEBIAN_OVMF[0]);
    let case = Case::qemu(&fw, 2, "EPYC-Milan", 1).with_kernel(&kernel, None, None);
    assert_eq!(case.ours(), Err(LaunchError::NoKernelHashesSection));
    let theirs = peer(std::slice::from_ref(&case));
    assert!(theirs[0].starts_with("error:"), "peer said {}", theirs[0]);
}
