//! The real model bundle for tests: fetched and prepared once by `scripts/fetch-model.sh`.
//!
//! The script caches by digest (in `CONFIDANT_MODEL_CACHE`, else the user cache directory) and
//! takes a file lock, so parallel test processes do not race; within a process the result is
//! memoised.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

static BUNDLE: OnceLock<PathBuf> = OnceLock::new();

/// Directory of the prepared model bundle (`model.gguf`, `tokenizer.json`, `config.json`).
///
/// Prepares it with `CONFIDANT_ENCLAVE_BIN` if set, else with `cargo run -p confidant-enclave`.
pub fn model_bundle() -> PathBuf {
    BUNDLE.get_or_init(|| fetch(None)).clone()
}

/// As [`model_bundle`], preparing with the given `confidant-enclave` binary (for the enclave's
/// own tests: `env!("CARGO_BIN_EXE_confidant-enclave")`).
pub fn model_bundle_prepared_by(enclave_bin: &Path) -> PathBuf {
    BUNDLE.get_or_init(|| fetch(Some(enclave_bin))).clone()
}

fn fetch(enclave_bin: Option<&Path>) -> PathBuf {
    let script = crate::workspace_root().join("scripts/fetch-model.sh");
    let mut cmd = Command::new("bash");
    cmd.arg(&script);
    if let Some(bin) = enclave_bin {
        cmd.env("CONFIDANT_ENCLAVE_BIN", bin);
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "{} failed ({}):\n{}",
        script.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let dir = stdout
        .lines()
        .last()
        .map(|l| PathBuf::from(l.trim()))
        .unwrap_or_else(|| panic!("{} printed no bundle path", script.display()));
    assert!(
        dir.join("model.gguf").is_file(),
        "no bundle at {}",
        dir.display()
    );
    dir
}
