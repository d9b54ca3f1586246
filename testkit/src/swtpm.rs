//! A private software TPM per test: `swtpm socket --tpm2` on loopback ports, its state in a
//! temporary directory, killed when the guard drops.
//!
//! swtpm needs its port numbers up front (the control channel on the command port + 1, where the
//! swtpm TCTI looks for it), so [`Swtpm::start`] picks free ports and retries with
//! new ones if swtpm could not bind them (another test took them in between). Readiness is swtpm's
//! pid file (written only once both sockets are bound) plus an accepted connection, so a port held
//! by someone else's swtpm is never mistaken for ours.
//!
//! [`Swtpm::start_with_ek_ca`] (or [`manufacture_with_ek_ca`] plus [`SwtpmChardev`] for QEMU)
//! gives a TPM with EK certificates signed by a CA private to the test.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How many port pairs to try before giving up.
const ATTEMPTS: usize = 8;
/// How long one swtpm gets to come up.
const STARTUP: Duration = Duration::from_secs(10);

/// Two consecutive loopback ports that were free a moment ago.
fn free_port_pair() -> Option<(u16, u16)> {
    for _ in 0..32 {
        let first = TcpListener::bind("127.0.0.1:0").ok()?;
        let port = first.local_addr().ok()?.port();
        let next = port.checked_add(1)?;
        if TcpListener::bind(("127.0.0.1", next)).is_ok() {
            return Some((port, next));
        }
    }
    None
}

/// A running swtpm. Dropping it kills the process and removes its state.
#[derive(Debug)]
pub struct Swtpm {
    child: Child,
    port: u16,
    ctrl_port: u16,
    dir: tempfile::TempDir,
    state: PathBuf,
    ek_ca: Option<EkCa>,
}

/// Why swtpm could not be started.
#[derive(Debug)]
pub enum SwtpmError {
    /// The `swtpm` binary could not be run (is the `swtpm` package installed?).
    Spawn(std::io::Error),
    /// A temporary directory could not be created.
    TempDir(std::io::Error),
    /// swtpm never became ready; holds its last stderr.
    NotReady(String),
    /// `swtpm_setup` (manufacturing with EK certificates) failed; holds its output.
    Setup(String),
}

impl std::fmt::Display for SwtpmError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SwtpmError::Spawn(e) => write!(f, "cannot run swtpm (install the swtpm package): {e}"),
            SwtpmError::TempDir(e) => write!(f, "cannot create a state directory: {e}"),
            SwtpmError::NotReady(log) => write!(f, "swtpm did not start: {log}"),
            SwtpmError::Setup(log) => write!(f, "swtpm_setup failed: {log}"),
        }
    }
}

impl std::error::Error for SwtpmError {}

impl Swtpm {
    /// Starts a fresh TPM 2.0 (manufactured, `TPM2_Startup(CLEAR)` done).
    pub fn start() -> Result<Self, SwtpmError> {
        let dir = tempfile::tempdir().map_err(SwtpmError::TempDir)?;
        let state = dir.path().to_path_buf();
        Self::start_in(dir, state, None)
    }

    /// Starts a TPM 2.0 manufactured by `swtpm_setup` with an RSA-2048 and an ECC EK, their EK
    /// certificates (NV indices `0x01c00002` and `0x01c00016`) and a platform certificate, signed
    /// by a private `swtpm_localca` CA that lives in this TPM's temporary directory (see
    /// [`manufacture_with_ek_ca`]). [`Self::ek_ca`] names the CA's certificates.
    pub fn start_with_ek_ca() -> Result<Self, SwtpmError> {
        let dir = tempfile::tempdir().map_err(SwtpmError::TempDir)?;
        let ca = manufacture_with_ek_ca(dir.path())?;
        let state = ca.state_dir.clone();
        Self::start_in(dir, state, Some(ca))
    }

    fn start_in(
        dir: tempfile::TempDir,
        state: PathBuf,
        ek_ca: Option<EkCa>,
    ) -> Result<Self, SwtpmError> {
        let mut last = String::new();
        for _ in 0..ATTEMPTS {
            // The swtpm TCTI (libtss2-tcti-swtpm) expects the control channel on port + 1.
            let Some((port, ctrl_port)) = free_port_pair() else {
                continue;
            };
            let log = dir.path().join("swtpm.log");
            let pid_file = dir.path().join("swtpm.pid");
            let _ = std::fs::remove_file(&pid_file);
            let mut child = Command::new("swtpm")
                .arg("socket")
                .arg("--tpm2")
                .arg("--server")
                .arg(format!("type=tcp,port={port},bindaddr=127.0.0.1"))
                .arg("--ctrl")
                .arg(format!("type=tcp,port={ctrl_port},bindaddr=127.0.0.1"))
                .arg("--tpmstate")
                .arg(format!("dir={}", state.display()))
                .arg("--pid")
                .arg(format!("file={}", pid_file.display()))
                .arg("--log")
                .arg(format!("file={}", log.display()))
                .arg("--flags")
                .arg("not-need-init,startup-clear")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .map_err(SwtpmError::Spawn)?;
            match wait_ready(&mut child, &pid_file, || tcp_accepts(ctrl_port)) {
                Ok(()) => {
                    return Ok(Swtpm {
                        child,
                        port,
                        ctrl_port,
                        dir,
                        state,
                        ek_ca,
                    });
                }
                Err(why) => last = why,
            }
            // Another process took the ports: stop this one and try others.
            let _ = child.kill();
            let _ = child.wait();
        }
        Err(SwtpmError::NotReady(last))
    }

    /// The TCTI string for tss-esapi and tpm2-tools (`TPM2TOOLS_TCTI`).
    pub fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }

    /// The TPM command port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The swtpm control-channel port.
    pub fn ctrl_port(&self) -> u16 {
        self.ctrl_port
    }

    /// The TPM's state directory.
    pub fn state_dir(&self) -> PathBuf {
        self.state.clone()
    }

    /// The EK CA of a TPM made by [`Self::start_with_ek_ca`].
    pub fn ek_ca(&self) -> Option<&EkCa> {
        self.ek_ca.as_ref()
    }

    /// The temporary directory holding the state, logs and (if any) the EK CA.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// A TPM state manufactured by [`manufacture_with_ek_ca`] and the private CA that signed its EK
/// certificates.
#[derive(Debug, Clone)]
pub struct EkCa {
    /// The TPM state directory (`swtpm socket --tpmstate dir=…`).
    pub state_dir: PathBuf,
    /// The CA directory (`swtpm_localca`'s `statedir`).
    pub ca_dir: PathBuf,
    /// The intermediate CA that signs the EK and platform certificates (`issuercert.pem`).
    pub issuer_cert_pem: PathBuf,
    /// The self-signed root that signs the issuer (`swtpm-localca-rootca-cert.pem`).
    pub root_cert_pem: PathBuf,
}

impl EkCa {
    /// The CA certificates as DER, issuer first then root (what a policy lists as EK CAs).
    pub fn certs_der(&self) -> Vec<Vec<u8>> {
        [&self.issuer_cert_pem, &self.root_cert_pem]
            .iter()
            .map(|p| {
                let pem = std::fs::read_to_string(p)
                    .unwrap_or_else(|e| panic!("reading {}: {e}", p.display()));
                pem_to_der(&pem)
            })
            .collect()
    }
}

/// Decodes the first PEM block of `pem` (tests only; panics on malformed input).
fn pem_to_der(pem: &str) -> Vec<u8> {
    let body: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    base64_decode(&body)
}

fn base64_decode(s: &str) -> Vec<u8> {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes().filter(|c| !c.is_ascii_whitespace() && *c != b'=') {
        let v = T
            .iter()
            .position(|t| *t == c)
            .unwrap_or_else(|| panic!("bad base64 byte {c:#04x}"));
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

/// Manufactures a TPM 2.0 state in `<dir>/state` with `swtpm_setup --tpm2 --create-ek-cert
/// --create-platform-cert`, its certificates signed by a private `swtpm_localca` CA in
/// `<dir>/ca` (created on first use, reused by later calls with the same `dir`). Uses its own
/// `swtpm_setup.conf`, `swtpm-localca.conf` and `swtpm-localca.options` in `dir`, so nothing
/// under `/etc` or `/var/lib` is touched.
///
/// The state can then be served by any swtpm front end: [`Swtpm`] (TCP, for the tss-esapi
/// `swtpm:` TCTI) or `swtpm socket --tpm2 --tpmstate dir=<dir>/state --ctrl
/// type=unixio,path=<socket>` for QEMU's `-chardev socket,id=chrtpm,path=<socket>` (see
/// [`SwtpmChardev`]).
pub fn manufacture_with_ek_ca(dir: &Path) -> Result<EkCa, SwtpmError> {
    let state_dir = dir.join("state");
    let ca_dir = dir.join("ca");
    for d in [&state_dir, &ca_dir] {
        std::fs::create_dir_all(d).map_err(SwtpmError::TempDir)?;
    }
    let setup_conf = dir.join("swtpm_setup.conf");
    let localca_conf = dir.join("swtpm-localca.conf");
    let localca_options = dir.join("swtpm-localca.options");
    let write = |path: &Path, text: String| std::fs::write(path, text).map_err(SwtpmError::TempDir);
    write(
        &setup_conf,
        format!(
            "create_certs_tool = /usr/bin/swtpm_localca\n\
             create_certs_tool_config = {}\n\
             create_certs_tool_options = {}\n\
             active_pcr_banks = sha256\n",
            localca_conf.display(),
            localca_options.display()
        ),
    )?;
    write(
        &localca_conf,
        format!(
            "statedir = {ca}\nsigningkey = {ca}/signkey.pem\nissuercert = {ca}/issuercert.pem\n\
             certserial = {ca}/certserial\n",
            ca = ca_dir.display()
        ),
    )?;
    write(
        &localca_options,
        "--platform-manufacturer Confidant\n--platform-version 2.1\n--platform-model test\n"
            .to_string(),
    )?;
    let out = Command::new("swtpm_setup")
        .arg("--tpm2")
        .arg("--tpmstate")
        .arg(&state_dir)
        .arg("--create-ek-cert")
        .arg("--create-platform-cert")
        .arg("--overwrite")
        .arg("--config")
        .arg(&setup_conf)
        .stdin(Stdio::null())
        .output()
        .map_err(SwtpmError::Spawn)?;
    let ca = EkCa {
        state_dir,
        issuer_cert_pem: ca_dir.join("issuercert.pem"),
        root_cert_pem: ca_dir.join("swtpm-localca-rootca-cert.pem"),
        ca_dir,
    };
    if !out.status.success() || !ca.issuer_cert_pem.is_file() || !ca.root_cert_pem.is_file() {
        return Err(SwtpmError::Setup(format!(
            "{}: {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(ca)
}

/// swtpm serving a state directory on a Unix control socket, as QEMU's TPM chardev expects
/// (`-chardev socket,id=chrtpm,path=<ctrl_socket> -tpmdev emulator,id=tpm0,chardev=chrtpm`).
/// No `TPM2_Startup` is done: the guest firmware does it. Killed when dropped.
#[derive(Debug)]
pub struct SwtpmChardev {
    child: Child,
    ctrl_socket: PathBuf,
}

impl SwtpmChardev {
    /// Serves `state_dir` (for example [`EkCa::state_dir`]) on `ctrl_socket`; logs and the pid
    /// file go beside the socket.
    pub fn start(state_dir: &Path, ctrl_socket: &Path) -> Result<Self, SwtpmError> {
        let base = ctrl_socket.parent().unwrap_or(Path::new("."));
        let pid_file = base.join("swtpm-chardev.pid");
        let log = base.join("swtpm-chardev.log");
        let _ = std::fs::remove_file(&pid_file);
        let _ = std::fs::remove_file(ctrl_socket);
        let mut child = Command::new("swtpm")
            .arg("socket")
            .arg("--tpm2")
            .arg("--tpmstate")
            .arg(format!("dir={}", state_dir.display()))
            .arg("--ctrl")
            .arg(format!("type=unixio,path={}", ctrl_socket.display()))
            .arg("--pid")
            .arg(format!("file={}", pid_file.display()))
            .arg("--log")
            .arg(format!("file={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(SwtpmError::Spawn)?;
        match wait_ready(&mut child, &pid_file, || ctrl_socket.exists()) {
            Ok(()) => Ok(SwtpmChardev {
                child,
                ctrl_socket: ctrl_socket.to_path_buf(),
            }),
            Err(why) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(SwtpmError::NotReady(why))
            }
        }
    }

    /// The control socket QEMU's chardev connects to.
    pub fn ctrl_socket(&self) -> &Path {
        &self.ctrl_socket
    }
}

impl Drop for SwtpmChardev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until `child` wrote its pid to `pid_file` (swtpm does so once its sockets are bound) and
/// `accepts()` connects.
fn wait_ready(
    child: &mut Child,
    pid_file: &Path,
    accepts: impl Fn() -> bool,
) -> Result<(), String> {
    let deadline = Instant::now() + STARTUP;
    let our_pid = child.id().to_string();
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                use std::io::Read;
                let _ = e.read_to_string(&mut err);
            }
            return Err(format!("exited with {status}: {}", err.trim()));
        }
        let pid_ok = std::fs::read_to_string(pid_file)
            .map(|s| s.trim() == our_pid)
            .unwrap_or(false);
        if pid_ok && accepts() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err("timed out".to_string())
}

fn tcp_accepts(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
