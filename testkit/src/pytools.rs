//! Python peer tools (sev-snp-measure), installed once by `scripts/py-tools.sh` into a cached venv
//! pinned by hash. The script is idempotent and takes a file lock, so parallel test processes do
//! not race; within a process the result is memoised. `scripts/test.sh` runs it before the tests,
//! so tests reach no network.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// The venv's python interpreter, with `sevsnpmeasure` importable and the `sev-snp-measure`
/// script beside it.
pub fn python() -> PathBuf {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| {
        let script = crate::workspace_root().join("scripts/py-tools.sh");
        let out = Command::new("bash")
            .arg(&script)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        assert!(
            out.status.success(),
            "{} failed ({}; scripts/setup.sh installs python3-venv):\n{}",
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let py = stdout
            .lines()
            .last()
            .map(|l| PathBuf::from(l.trim()))
            .unwrap_or_else(|| panic!("{} printed no interpreter", script.display()));
        assert!(py.is_file(), "no interpreter at {}", py.display());
        py
    })
    .clone()
}

/// The `sev-snp-measure` command-line tool of the venv.
pub fn sev_snp_measure() -> PathBuf {
    python().with_file_name("sev-snp-measure")
}
