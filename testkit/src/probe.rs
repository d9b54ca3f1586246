//! Observing what a program under test did, without the program's own code: its log output
//! captured in memory, the kernel's Landlock ABI asked by another program.

use std::io::Write;
use std::process::Command;
use std::sync::{Arc, Mutex};

/// An in-memory log sink for `tracing_subscriber::fmt().with_writer(move || sink.clone())`:
/// every clone appends to the same buffer, [`LogCapture::text`] reads it all.
#[derive(Debug, Clone, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    /// Everything written so far (panics on a poisoned lock or non-UTF-8 output: tests only).
    pub fn text(&self) -> String {
        let bytes = self.0.lock().expect("log buffer lock").clone();
        String::from_utf8(bytes).expect("log output is UTF-8")
    }
}

impl Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("log buffer lock poisoned"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The running kernel's Landlock ABI version (0: Landlock is off or absent), asked without our
/// code: python3's ctypes calls `landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION)`
/// (system call 444 on x86-64). Panics if python3 is missing (scripts/setup.sh installs it).
pub fn kernel_landlock_abi() -> u32 {
    let out = Command::new("python3")
        .args([
            "-c",
            "import ctypes; r = ctypes.CDLL(None, use_errno=True).syscall(444, None, 0, 1); \
             print(max(r, 0))",
        ])
        .output()
        .expect("python3 (scripts/setup.sh installs it)");
    assert!(out.status.success(), "python3 could not ask the kernel");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("a Landlock ABI number")
}
