//! `confidant vm build | measure` end to end, with /bin/true as a tiny enclave (still exercises ldd).
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

use confidant_attestation::vmimage::pcr::measure_boot;
use confidant_testkit::cli::Cli;

const CLI: Cli = Cli::new(env!("CARGO_BIN_EXE_confidant"));

fn confidant(args: &[&str], cwd: &Path) -> Output {
    CLI.command().args(args).current_dir(cwd).output().unwrap()
}

/// The kernel and busybox `vm build` needs; scripts/setup.sh installs what they need.
fn require_kernel() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/vm-kernel.sh");
    let out = Command::new("bash").arg(script).output().unwrap();
    assert!(
        out.status.success(),
        "vm-kernel.sh failed (run scripts/setup.sh): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        Path::new("/bin/busybox").exists(),
        "busybox-static missing (run scripts/setup.sh)"
    );
}

#[test]
fn build_is_reproducible_and_measure_matches_the_pure_computation() {
    require_kernel();
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("e.toml"), "x = 1\n").unwrap();
    std::fs::write(d.path().join("extra"), "hello\n").unwrap();
    for out in ["o1", "o2"] {
        let o = confidant(
            &[
                "vm",
                "build",
                "--out",
                out,
                "--enclave",
                "/bin/true",
                "--config",
                "e.toml",
                "--include",
                "extra=/etc/extra",
                "--memory-mib",
                "1024",
            ],
            d.path(),
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let i1 = std::fs::read(d.path().join("o1/initrd.cpio")).unwrap();
    let i2 = std::fs::read(d.path().join("o2/initrd.cpio")).unwrap();
    assert_eq!(i1, i2, "same inputs must give a byte-identical initrd");
    assert_eq!(
        std::fs::read(d.path().join("o1/manifest.json")).unwrap(),
        std::fs::read(d.path().join("o2/manifest.json")).unwrap()
    );
    let manifest = std::fs::read_to_string(d.path().join("o1/manifest.json")).unwrap();
    assert!(
        !manifest.contains(d.path().to_str().unwrap()),
        "host paths leaked"
    );

    let o = confidant(&["vm", "measure", "o1", "--json"], d.path());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let kernel = std::fs::read(d.path().join("o1/vmlinuz")).unwrap();
    let m = measure_boot(&kernel, &i1, "console=ttyS0 quiet", 1024 << 20).unwrap();
    assert_eq!(v["pcr4"], hex::encode(m.pcr4));
    assert_eq!(v["pcr9"], hex::encode(m.pcr9));
    assert_eq!(
        v["kernel_authenticode_sha256"],
        hex::encode(m.kernel_authenticode)
    );
    assert_eq!(v["initrd_sha256"], hex::encode(m.initrd_digest));
    assert_eq!(v["cmdline"], "console=ttyS0 quiet initrd=initrd");

    let o = confidant(
        &["vm", "measure", "o1", "--policy", "--model-id", "m"],
        d.path(),
    );
    assert!(o.status.success());
    let frag = String::from_utf8(o.stdout).unwrap();
    let t: toml::Value = toml::from_str(&frag).unwrap();
    let boot = &t["models"]["m"]["tpm_boot"][0];
    assert_eq!(
        boot["cmdline"].as_str(),
        Some("console=ttyS0 quiet initrd=initrd")
    );
    assert_eq!(
        boot["kernel_authenticode_sha256"].as_str(),
        Some(hex::encode(m.kernel_authenticode).as_str())
    );
    assert!(frag.contains(&hex::encode(m.pcr4)));

    // The image's init and files are in place.
    let list = Command::new("cpio")
        .args(["-t", "--quiet", "-F", "o1/initrd.cpio"])
        .current_dir(d.path())
        .output();
    if let Ok(list) = list {
        let names = String::from_utf8(list.stdout).unwrap();
        for want in [
            "init",
            "bin/busybox",
            "usr/bin/confidant-enclave",
            "etc/confidant/enclave.toml",
            "etc/extra",
            "etc/nsswitch.conf",
        ] {
            assert!(names.lines().any(|l| l == want), "{want} missing");
        }
        assert!(names.contains("virtio_net.ko"));
        assert!(names.contains("libtss2-tcti-device.so"));
    }

    // Tampering and bad manifests are refused clearly.
    std::fs::write(d.path().join("o2/manifest.json"), "{}").unwrap();
    let o = confidant(&["vm", "measure", "o2"], d.path());
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("bad manifest"));
    std::fs::write(d.path().join("o1/initrd.cpio"), b"x").unwrap();
    let o = confidant(&["vm", "measure", "o1"], d.path());
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("does not match"));
}

#[test]
fn missing_kernel_and_vga_are_refused() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("e.toml"), "x = 1\n").unwrap();
    std::fs::create_dir(d.path().join("mods")).unwrap();
    let o = confidant(
        &[
            "vm",
            "build",
            "--out",
            "o",
            "--enclave",
            "/bin/true",
            "--config",
            "e.toml",
            "--kernel",
            "nope",
            "--modules",
            "mods",
        ],
        d.path(),
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("kernel") && err.contains("nope"), "{err}");
    let o = confidant(
        &[
            "vm",
            "build",
            "--out",
            "o",
            "--enclave",
            "/bin/true",
            "--config",
            "e.toml",
            "--append",
            "vga=791",
            "--kernel",
            "nope",
            "--modules",
            "mods",
        ],
        d.path(),
    );
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("vga="));
}
