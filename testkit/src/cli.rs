//! Running a command-line binary under test and checking its outcome (the `confidant` CLI's tests
//! share these).

use std::path::Path;
use std::process::{Command, Output};

/// A binary under test, e.g. `Cli::new(env!("CARGO_BIN_EXE_confidant"))`.
#[derive(Debug, Clone, Copy)]
pub struct Cli(&'static str);

impl Cli {
    pub const fn new(bin: &'static str) -> Self {
        Self(bin)
    }

    /// A command for the binary, without the `CONFIDANT_TOKEN` / `CONFIDANT_CONFIG` the
    /// environment may hold (tests pass what they mean explicitly).
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(self.0);
        cmd.env_remove("CONFIDANT_TOKEN")
            .env_remove("CONFIDANT_CONFIG");
        cmd
    }

    /// Runs the binary with `args` to completion.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command()
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.0))
    }
}

/// The standard error, as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts success and parses the standard output as JSON.
pub fn ok_json(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "expected success: {}", stderr(out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Asserts a non-zero exit whose standard error contains `needle` (a check's name, a message).
pub fn fails_with(out: &Output, needle: &str) {
    assert!(
        !out.status.success(),
        "expected failure ({needle}), got: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = stderr(out);
    assert!(err.contains(needle), "stderr lacks {needle:?}: {err}");
}

/// A path as a command-line argument.
pub fn arg(path: &Path) -> &str {
    path.to_str()
        .unwrap_or_else(|| panic!("{} is not UTF-8", path.display()))
}
