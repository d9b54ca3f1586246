//! Scratch directories for fixtures that live as long as the test process.
//!
//! A fixture kept in a `static` (a sealed model, a gathered image) is never dropped, so a
//! `TempDir` inside it is never removed: every test process used to leave a 150 MB sealed model
//! in the system's temporary directory. Instead, such fixtures go under
//! `<workspace>/target/test-scratch/<pid>/`, and each new process first removes the directories
//! of processes that no longer run. Leftovers are thus bounded by the processes alive at once,
//! and `cargo clean` removes them all.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// This process's scratch directory (created once, empty at first use).
pub fn process_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = crate::workspace_root().join("target").join("test-scratch");
        std::fs::create_dir_all(&root)
            .unwrap_or_else(|e| panic!("creating {}: {e}", root.display()));
        reap(&root);
        let dir = root.join(std::process::id().to_string());
        // A directory left by an earlier process with the same id is stale.
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        dir
    })
}

/// A new directory inside [`process_dir`], removed when the process's successors reap it (or
/// earlier by the caller).
pub fn dir(prefix: &str) -> PathBuf {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(process_dir())
        .unwrap_or_else(|e| panic!("scratch directory: {e}"))
        .keep()
}

/// Removes the directories of processes that are not running (Linux: no `/proc/<pid>`).
fn reap(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !Path::new("/proc").join(pid.to_string()).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_processes_dirs_are_reaped_and_live_ones_kept() {
        let root = tempfile::tempdir().unwrap();
        // pid_max is at most 2^22 on Linux, so this pid never runs.
        let dead = root.path().join("4294967");
        let live = root.path().join(std::process::id().to_string());
        let other = root.path().join("not-a-pid");
        for d in [&dead, &live, &other] {
            std::fs::create_dir_all(d).unwrap();
        }
        reap(root.path());
        assert!(!dead.exists());
        assert!(live.exists());
        assert!(other.exists());
    }
}
