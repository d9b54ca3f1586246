//! A private software TPM per test: `swtpm socket --tpm2` on loopback ports, its state in a
//! temporary directory, killed when the guard drops.
//!
//! swtpm needs its port numbers up front (the control channel on the command port + 1, where the
//! swtpm TCTI looks for it), so [`Swtpm::start`] picks free ports and retries with
//! new ones if swtpm could not bind them (another test took them in between). Readiness is swtpm's
//! pid file (written only once both sockets are bound) plus an accepted connection, so a port held
//! by someone else's swtpm is never mistaken for ours.

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
}

impl std::fmt::Display for SwtpmError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SwtpmError::Spawn(e) => write!(f, "cannot run swtpm (install the swtpm package): {e}"),
            SwtpmError::TempDir(e) => write!(f, "cannot create a state directory: {e}"),
            SwtpmError::NotReady(log) => write!(f, "swtpm did not start: {log}"),
        }
    }
}

impl std::error::Error for SwtpmError {}

impl Swtpm {
    /// Starts a fresh TPM 2.0 (manufactured, `TPM2_Startup(CLEAR)` done).
    pub fn start() -> Result<Self, SwtpmError> {
        let mut last = String::new();
        for _ in 0..ATTEMPTS {
            let dir = tempfile::tempdir().map_err(SwtpmError::TempDir)?;
            // The swtpm TCTI (libtss2-tcti-swtpm) expects the control channel on port + 1.
            let Some((port, ctrl_port)) = free_port_pair() else {
                continue;
            };
            let log = dir.path().join("swtpm.log");
            let pid_file = dir.path().join("swtpm.pid");
            let child = Command::new("swtpm")
                .arg("socket")
                .arg("--tpm2")
                .arg("--server")
                .arg(format!("type=tcp,port={port},bindaddr=127.0.0.1"))
                .arg("--ctrl")
                .arg(format!("type=tcp,port={ctrl_port},bindaddr=127.0.0.1"))
                .arg("--tpmstate")
                .arg(format!("dir={}", dir.path().display()))
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
            let mut swtpm = Swtpm {
                child,
                port,
                ctrl_port,
                dir,
            };
            match swtpm.wait_ready(&pid_file) {
                Ok(()) => return Ok(swtpm),
                Err(why) => last = why,
            }
            // Dropping `swtpm` kills it; try other ports.
        }
        Err(SwtpmError::NotReady(last))
    }

    fn wait_ready(&mut self, pid_file: &Path) -> Result<(), String> {
        let deadline = Instant::now() + STARTUP;
        let our_pid = self.child.id().to_string();
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = self.child.stderr.take() {
                    use std::io::Read;
                    let _ = e.read_to_string(&mut err);
                }
                return Err(format!("exited with {status}: {}", err.trim()));
            }
            let pid_ok = std::fs::read_to_string(pid_file)
                .map(|s| s.trim() == our_pid)
                .unwrap_or(false);
            if pid_ok && self.accepts(self.ctrl_port) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err("timed out".to_string())
    }

    fn accepts(&self, port: u16) -> bool {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
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
        self.dir.path().to_path_buf()
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
