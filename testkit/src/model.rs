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
/// Prepares it with `CONFIDANT_BIN` (a `confidant` CLI) if set, else with
/// `cargo run -p confidant-client --bin confidant` (`confidant model prepare`).
pub fn model_bundle() -> PathBuf {
    BUNDLE.get_or_init(|| fetch(None)).clone()
}

/// As [`model_bundle`], preparing with the given `confidant` CLI binary (for tests that have it
/// built: `env!("CARGO_BIN_EXE_confidant")`, the end-to-end harness's binaries).
pub fn model_bundle_prepared_by(confidant_bin: &Path) -> PathBuf {
    BUNDLE.get_or_init(|| fetch(Some(confidant_bin))).clone()
}

/// The verified GGUF the bundle was prepared from (SmolLM2-135M-Instruct, Q4_1, as shipped).
///
/// `scripts/fetch-model.sh` keeps it beside the bundle: `bundle-<gguf digest prefix>-…` and
/// `gguf-<gguf digest prefix>/SmolLM2-135M-Instruct.Q4_1.gguf` in the same cache directory.
pub fn shipped_gguf() -> PathBuf {
    let bundle = model_bundle();
    let name = bundle
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_else(|| panic!("bundle path {} has no name", bundle.display()));
    let prefix = name
        .strip_prefix("bundle-")
        .and_then(|rest| rest.split('-').next())
        .unwrap_or_else(|| panic!("bundle directory {name} is not bundle-<digest>-…"));
    let gguf = bundle
        .with_file_name(format!("gguf-{prefix}"))
        .join("SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(gguf.is_file(), "no GGUF at {}", gguf.display());
    gguf
}

fn fetch(confidant_bin: Option<&Path>) -> PathBuf {
    let script = crate::workspace_root().join("scripts/fetch-model.sh");
    let mut cmd = Command::new("bash");
    cmd.arg(&script);
    if let Some(bin) = confidant_bin {
        cmd.env("CONFIDANT_BIN", bin);
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
