//! A measured VM from real parts: QEMU (`q35`, TCG: there is no KVM here), Debian's OVMF with a
//! fresh copy of its VARS template, and a swtpm vTPM, booting an image made by `confidant vm
//! build` with `-kernel/-initrd/-append`.
//!
//! The network is QEMU's user-mode stack with `restrict=on`: the guest reaches nothing but two
//! forwards, both bound to loopback on the host:
//! - in: host `127.0.0.1:PORT` → guest `:8443` (the enclave's attested TLS);
//! - out: guest `10.0.2.100:443` → a `socat` per connection to the host verifier on
//!   `127.0.0.1:PORT` (`guestfwd … cmd:`; the `tcp:` form would carry only one connection).
//!
//! The serial console is the process's stdout, collected like any [`Service`]'s output.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::Service;

/// OVMF firmware as Debian's `ovmf` package installs it.
pub const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
/// The VARS template each VM gets a fresh copy of.
pub const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";
/// The address the guest reaches the verifier at (QEMU guestfwd; never leaves the QEMU process).
pub const GUEST_VERIFIER_ADDR: &str = "10.0.2.100";
/// The guest port the verifier is forwarded to.
pub const GUEST_VERIFIER_PORT: u16 = 443;
/// The enclave's listen port inside the guest.
pub const GUEST_ENCLAVE_PORT: u16 = 8443;

/// How to boot one VM.
#[derive(Debug, Clone)]
pub struct VmSpec {
    /// Output directory of `confidant vm build` (`vmlinuz`, `initrd.cpio`).
    pub image: PathBuf,
    /// The kernel command line given to `-append` (OVMF adds ` initrd=initrd`).
    pub append: String,
    /// Guest memory, MiB (the measured kernel depends on it: see docs/vm.md).
    pub memory_mib: u32,
    /// swtpm's control socket (`swtpm socket --ctrl type=unixio,path=…`).
    pub tpm_socket: PathBuf,
    /// The host verifier's loopback port.
    pub verifier_port: u16,
}

/// A running VM; QEMU is killed when it drops.
#[derive(Debug)]
pub struct Vm {
    pub console: Service,
    /// Host address of the guest enclave's TLS port.
    pub enclave_addr: SocketAddr,
    _vars: tempfile::TempDir,
}

/// Whether this machine can run the VM tests (qemu, OVMF, socat present; setup.sh installs them).
pub fn missing_tools() -> Vec<&'static str> {
    let mut missing = Vec::new();
    for (what, ok) in [
        ("qemu-system-x86_64", which("qemu-system-x86_64")),
        ("socat", which("socat")),
        (
            "OVMF",
            Path::new(OVMF_CODE).is_file() && Path::new(OVMF_VARS).is_file(),
        ),
    ] {
        if !ok {
            missing.push(what);
        }
    }
    missing
}

fn which(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd} >/dev/null 2>&1")])
        .status()
        .is_ok_and(|s| s.success())
}

impl Vm {
    /// Boots `spec` and returns once QEMU runs (not once the guest is up: see [`Vm::wait_serving`]).
    pub fn boot(spec: &VmSpec) -> Vm {
        let missing = missing_tools();
        assert!(
            missing.is_empty(),
            "missing {missing:?}: run scripts/setup.sh"
        );
        let vars = tempfile::tempdir().unwrap();
        let vars_file = vars.path().join("OVMF_VARS.fd");
        std::fs::copy(OVMF_VARS, &vars_file).unwrap();
        let host_port = confidant_testkit::free_port();
        let enclave_addr = SocketAddr::from(([127, 0, 0, 1], host_port));
        let netdev = format!(
            "user,id=n0,restrict=on,\
             hostfwd=tcp:127.0.0.1:{host_port}-:{GUEST_ENCLAVE_PORT},\
             guestfwd=tcp:{GUEST_VERIFIER_ADDR}:{GUEST_VERIFIER_PORT}-cmd:socat - TCP:127.0.0.1:{}",
            spec.verifier_port
        );
        let mut cmd = Command::new("qemu-system-x86_64");
        cmd.args(["-machine", "q35", "-cpu", "max", "-smp", "1"])
            .arg("-m")
            .arg(spec.memory_mib.to_string())
            .args(["-nodefaults", "-display", "none", "-serial", "stdio"])
            .args(["-monitor", "none", "-no-reboot"])
            .arg("-drive")
            .arg(format!(
                "if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}"
            ))
            .arg("-drive")
            .arg(format!(
                "if=pflash,format=raw,unit=1,file={}",
                vars_file.display()
            ))
            .arg("-chardev")
            .arg(format!(
                "socket,id=chrtpm,path={}",
                spec.tpm_socket.display()
            ))
            .args(["-tpmdev", "emulator,id=tpm0,chardev=chrtpm"])
            .args(["-device", "tpm-crb,tpmdev=tpm0"])
            .arg("-kernel")
            .arg(spec.image.join("vmlinuz"))
            .arg("-initrd")
            .arg(spec.image.join("initrd.cpio"))
            .arg("-append")
            .arg(&spec.append)
            .arg("-netdev")
            .arg(netdev)
            .args(["-device", "virtio-net-pci,netdev=n0,romfile="]);
        let console = Service::spawn("qemu", cmd);
        Vm {
            console,
            enclave_addr,
            _vars: vars,
        }
    }

    /// Waits until the guest enclave logs that it serves.
    pub fn wait_serving(&mut self, timeout: Duration) {
        self.console.wait_for(timeout, |line| {
            let v: serde_json::Value = serde_json::from_str(line.trim()).ok()?;
            (v["fields"]["message"] == "serving").then_some(())
        });
    }

    /// Waits for a console line containing `needle`.
    pub fn wait_for_line(&mut self, needle: &str, timeout: Duration) -> String {
        self.console.wait_for(timeout, |line| {
            line.contains(needle).then(|| line.to_owned())
        })
    }
}
