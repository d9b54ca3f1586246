//! `confidant measure snp` end to end: its output equals that of the peer tool's own command line
//! (`sev-snp-measure` 0.0.13, pinned by hash, `scripts/py-tools.sh`) for Debian's OVMF and for a
//! synthetic AmdSev-style image with measured direct boot; `--policy` prints a fragment the
//! verifier's policy loader accepts with that measurement; bad inputs get a clear error and a
//! non-zero exit. (The wider agreement matrix is `attestation/tests/snp_launch_peer.rs`.)
#![allow(clippy::unwrap_used, reason = "test code: a panic is a test failure")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use confidant_attestation::policy::Policy;
use confidant_testkit::ovmf::SyntheticOvmf;

const DEBIAN_OVMF: &str = "/usr/share/OVMF/OVMF_CODE.fd";
const DEBIAN_OVMF_4M: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";

fn confidant(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_confidant"))
        .args(["measure", "snp"])
        .args(args)
        .output()
        .unwrap()
}

fn peer(args: &[&str]) -> Output {
    Command::new(confidant_testkit::pytools::sev_snp_measure())
        .args(["--mode", "snp"])
        .args(args)
        .output()
        .unwrap()
}

fn stdout_line(o: &Output, who: &str) -> String {
    assert!(
        o.status.success(),
        "{who} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let s = String::from_utf8(o.stdout.clone()).unwrap();
    let line = s.trim().to_owned();
    assert_eq!(line.len(), 96, "{who} printed {s:?}");
    line
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Our arguments and the peer's for the same launch (the peer names the VMMs QEMU, ec2, gce).
fn both(common: &[&str], vmm: &str, vcpu_type: Option<&str>) -> (String, String) {
    let mut ours: Vec<&str> = common.to_vec();
    let mut theirs: Vec<&str> = common.to_vec();
    ours.extend(["--vmm-type", vmm]);
    theirs.extend([
        "--vmm-type",
        match vmm {
            "qemu" => "QEMU",
            other => other,
        },
    ]);
    if let Some(t) = vcpu_type {
        ours.extend(["--vcpu-type", t]);
        theirs.extend(["--vcpu-type", t]);
    }
    (
        stdout_line(&confidant(&ours), "confidant measure snp"),
        stdout_line(&peer(&theirs), "sev-snp-measure"),
    )
}

fn synthetic(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let fw = dir.join("OVMF.amdsev.fd");
    std::fs::write(&fw, SyntheticOvmf::amd_sev().build()).unwrap();
    let kernel = dir.join("vmlinuz");
    std::fs::write(&kernel, b"not really a kernel, but hashed all the same").unwrap();
    let initrd = dir.join("initrd.img");
    std::fs::write(&initrd, vec![0x5a; 10_000]).unwrap();
    (fw, kernel, initrd)
}

#[test]
fn the_command_prints_what_sev_snp_measure_prints() {
    let dir = tempfile::tempdir().unwrap();
    let (fw, kernel, initrd) = synthetic(dir.path());
    let (fw, kernel, initrd) = (
        fw.to_str().unwrap(),
        kernel.to_str().unwrap(),
        initrd.to_str().unwrap(),
    );
    let mut seen = Vec::new();
    for (common, vmm, ty) in [
        (
            vec!["--ovmf", DEBIAN_OVMF, "--vcpus", "4"],
            "qemu",
            Some("EPYC-Genoa"),
        ),
        (
            vec![
                "--ovmf",
                DEBIAN_OVMF,
                "--vcpus",
                "2",
                "--guest-features",
                "0x21",
            ],
            "qemu",
            Some("EPYC-Milan"),
        ),
        (vec!["--ovmf", DEBIAN_OVMF, "--vcpus", "2"], "ec2", None),
        (vec!["--ovmf", DEBIAN_OVMF, "--vcpus", "2"], "gce", None),
        (
            vec![
                "--ovmf",
                fw,
                "--vcpus",
                "2",
                "--kernel",
                kernel,
                "--initrd",
                initrd,
                "--append",
                "console=ttyS0 root=/dev/vda",
            ],
            "qemu",
            Some("EPYC-v4"),
        ),
        (
            vec!["--ovmf", fw, "--vcpus", "1", "--kernel", kernel],
            "gce",
            None,
        ),
    ] {
        let (ours, theirs) = both(&common, vmm, ty);
        assert_eq!(ours, theirs, "{common:?} {vmm} {ty:?}");
        seen.push(ours);
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 6, "each launch has its own digest");
}

#[test]
fn policy_prints_a_fragment_the_policy_loader_accepts() {
    let args = [
        "--ovmf",
        DEBIAN_OVMF,
        "--vcpus",
        "2",
        "--vcpu-type",
        "EPYC-Milan",
    ];
    let digest = stdout_line(&confidant(&args), "confidant measure snp");
    let mut with_policy = args.to_vec();
    with_policy.push("--policy");
    let o = confidant(&with_policy);
    assert!(o.status.success(), "{}", stderr(&o));
    let fragment = String::from_utf8(o.stdout).unwrap();
    assert!(fragment.contains("EPYC-Milan"), "{fragment}");
    let policy = format!(
        "id = \"t\"\nversion = 1\n[trust]\namd_products = [\"milan\"]\n\
         [models.\"m\"]\ndigest = \"{}\"\n{fragment}\
         min_tcb = {{ bootloader = 3, tee = 0, snp = 8, microcode = 115 }}\n",
        "00".repeat(32)
    );
    let p = Policy::from_toml(&policy).unwrap_or_else(|e| panic!("{e}:\n{policy}"));
    let snp = p.model("m").unwrap().snp.as_ref().unwrap();
    let expected: [u8; 48] = hex::decode(&digest).unwrap().try_into().unwrap();
    assert_eq!(snp.measurements.iter().collect::<Vec<_>>(), [&expected]);
}

#[test]
fn bad_inputs_get_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let (_, kernel, _) = synthetic(dir.path());
    let kernel = kernel.to_str().unwrap();
    let mut broken = std::fs::read(DEBIAN_OVMF).unwrap();
    let n = broken.len();
    broken[n - 0x21] ^= 0xff; // the footer GUID's last byte
    let broken_path = dir.path().join("broken.fd");
    std::fs::write(&broken_path, broken).unwrap();
    let broken = broken_path.to_str().unwrap();
    let fw = ["--ovmf", DEBIAN_OVMF, "--vcpus", "2"];
    let with = |extra: &[&'static str]| -> Vec<&str> {
        let mut v = fw.to_vec();
        v.extend_from_slice(extra);
        v
    };
    for (args, says) in [
        (
            {
                let mut v = with(&["--vcpu-type", "EPYC-v4", "--kernel"]);
                v.push(kernel);
                v
            },
            "SNP_KERNEL_HASHES",
        ),
        (with(&[]), "--vcpu-type is required"),
        (with(&["--vcpu-type", "EPYC-Nope"]), "unknown --vcpu-type"),
        (
            with(&["--vcpu-type", "EPYC-v4", "--vmm-type", "ec2"]),
            "does not apply",
        ),
        (
            with(&["--vcpu-type", "EPYC-v4", "--guest-features", "0x20"]),
            "SNPActive",
        ),
        (
            with(&["--vcpu-type", "EPYC-v4", "--guest-features", "zz"]),
            "not hex",
        ),
        (
            vec![
                "--ovmf",
                DEBIAN_OVMF,
                "--vcpus",
                "0",
                "--vcpu-type",
                "EPYC-v4",
            ],
            "must be 1 to",
        ),
        (
            vec!["--ovmf", broken, "--vcpus", "1", "--vcpu-type", "EPYC-v4"],
            "no OVMF footer table",
        ),
        (
            vec![
                "--ovmf",
                "/nonexistent/OVMF.fd",
                "--vcpus",
                "1",
                "--vcpu-type",
                "EPYC-v4",
            ],
            "opening /nonexistent/OVMF.fd",
        ),
    ] {
        let o = confidant(&args);
        assert!(!o.status.success(), "{args:?} succeeded");
        assert!(o.stdout.is_empty(), "{args:?} printed a digest");
        assert!(stderr(&o).contains(says), "{args:?}: {}", stderr(&o));
    }
    // An initrd without a kernel is a usage error.
    let o = confidant(&with(&[
        "--vcpu-type",
        "EPYC-v4",
        "--initrd",
        "/etc/hostname",
    ]));
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--kernel"), "{}", stderr(&o));
}

#[test]
fn firmware_without_sev_metadata_is_measured_with_a_warning() {
    let args = [
        "--ovmf",
        DEBIAN_OVMF_4M,
        "--vcpus",
        "1",
        "--vcpu-type",
        "EPYC-v4",
    ];
    let o = confidant(&args);
    let ours = stdout_line(&o, "confidant measure snp");
    assert!(
        stderr(&o).contains("declares no SEV metadata"),
        "{}",
        stderr(&o)
    );
    let mut theirs = args.to_vec();
    theirs.extend(["--vmm-type", "QEMU"]);
    assert_eq!(ours, stdout_line(&peer(&theirs), "sev-snp-measure"));
    // Debian's 2 MiB build has the metadata: no warning.
    let o = confidant(&[
        "--ovmf",
        DEBIAN_OVMF,
        "--vcpus",
        "1",
        "--vcpu-type",
        "EPYC-v4",
    ]);
    stdout_line(&o, "confidant measure snp");
    assert!(!stderr(&o).contains("warning"), "{}", stderr(&o));
}
