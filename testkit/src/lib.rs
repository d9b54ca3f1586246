//! Test support shared by the Confidant test suites. Never linked into a shipped binary.
#![forbid(unsafe_code)]

pub mod cli;
pub mod https;
pub mod model;
pub mod ovmf;
pub mod policy;
pub mod probe;
pub mod pytools;
pub mod rng;
pub mod scratch;

use std::net::TcpListener;
use std::path::PathBuf;

/// The workspace root (the directory holding the top-level `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The shared attestation test data (real AMD reports and certificates, a real vTPM quote).
///
/// It lives beside the repository (`../shared/testdata/attestation`), is read in place and never
/// copied into the repository. `CONFIDANT_TESTDATA` overrides the location.
pub fn testdata() -> PathBuf {
    if let Ok(dir) = std::env::var("CONFIDANT_TESTDATA") {
        return PathBuf::from(dir);
    }
    workspace_root().join("../shared/testdata/attestation")
}

/// Reads one test data file, panicking with a clear message if it is missing (tests only).
pub fn read_testdata(rel: &str) -> Vec<u8> {
    let path = testdata().join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("test data {} unreadable: {e}", path.display()))
}

/// The machine's clock in Unix seconds: what tests pass as "now" to verification, which reads no
/// clock itself (`confidant_attestation::time::UnixTime::from_secs(now_secs())`).
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs()
}

/// A loopback TCP port that was free a moment ago. Prefer binding port 0 directly where the
/// program under test allows it; this is for programs (like swtpm) that need a number up front.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

/// A development SEV-SNP PKI (`ark.der`, `ask.der`, `vcek.der`, `vcek.key.pk8`, and the CA keys
/// `ark.key.pem`, `ask.key.pem`), generated once by `scripts/dev-pki.sh` into
/// `<workspace>/target/test-dev-pki` and shared by every test and test process.
///
/// Parallel callers do not race: each process generates into its own temporary directory and
/// renames it into place; a loser of the rename uses the winner's directory. Panics (tests only) if
/// the `openssl` CLI is missing or the script fails.
pub fn dev_pki() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| generated_dev_pki("test-dev-pki"))
        .clone()
}

/// A second, unrelated development PKI (`<workspace>/target/test-dev-pki-other`, made like
/// [`dev_pki`]): evidence from a development root other than the one a policy pins.
pub fn other_dev_pki() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| generated_dev_pki("test-dev-pki-other"))
        .clone()
}

fn generated_dev_pki(name: &str) -> PathBuf {
    let target = workspace_root().join("target");
    let dir = target.join(name);
    let complete = |d: &std::path::Path| {
        ["ark.der", "ask.der", "vcek.der", "vcek.key.pk8"]
            .iter()
            .all(|f| d.join(f).is_file())
    };
    if complete(&dir) {
        return dir;
    }
    std::fs::create_dir_all(&target).expect("create target directory");
    let tmp = tempfile::Builder::new()
        .prefix(&format!("{name}.tmp"))
        .tempdir_in(&target)
        .expect("temporary directory for the dev PKI");
    let script = workspace_root().join("scripts/dev-pki.sh");
    let status = std::process::Command::new("bash")
        .arg(&script)
        .arg(tmp.path())
        .status()
        .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
    assert!(status.success(), "{} failed: {status}", script.display());
    let staged = tmp.keep();
    // Atomic on one filesystem; fails if another process already put its directory in place.
    if std::fs::rename(&staged, &dir).is_err() {
        let _ = std::fs::remove_dir_all(&staged);
    }
    assert!(complete(&dir), "dev PKI incomplete in {}", dir.display());
    dir
}

pub mod swtpm;
