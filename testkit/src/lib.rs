//! Test support shared by the Confidant test suites. Never linked into a shipped binary.
#![forbid(unsafe_code)]

pub mod model;

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

/// A loopback TCP port that was free a moment ago. Prefer binding port 0 directly where the
/// program under test allows it; this is for programs (like swtpm) that need a number up front.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}
