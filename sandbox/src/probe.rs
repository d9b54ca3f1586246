//! Checks that the lockdown took effect: per-thread kernel state from `/proc/self/task`, and real
//! attempts that must now fail.

use std::io::ErrorKind;
use std::path::Path;

/// One thread's state as the kernel reports it (`/proc/self/task/TID/status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThreadState {
    pub tid: u32,
    /// `NoNewPrivs: 1`.
    pub no_new_privs: bool,
    /// `Seccomp: 2` (filter mode).
    pub seccomp_filter: bool,
}

/// The process's thread ids.
pub fn thread_ids() -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// Every thread's state (threads that exit meanwhile are skipped).
pub fn thread_states() -> Vec<ThreadState> {
    thread_ids()
        .into_iter()
        .filter_map(|tid| {
            let status = std::fs::read_to_string(format!("/proc/self/task/{tid}/status")).ok()?;
            Some(parse_status(tid, &status))
        })
        .collect()
}

/// Reads `NoNewPrivs` and `Seccomp` from a `status` file's text.
pub fn parse_status(tid: u32, status: &str) -> ThreadState {
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .map(str::trim)
    };
    ThreadState {
        tid,
        no_new_privs: field("NoNewPrivs") == Some("1"),
        seccomp_filter: field("Seccomp") == Some("2"),
    }
}

/// Opening `/dev/null` for writing (allowed to everyone by file permissions, so only the
/// lockdown can refuse it) and creating a file in `dir` both fail.
pub fn writes_denied(dir: Option<&Path>) -> bool {
    let null = std::fs::OpenOptions::new().write(true).open("/dev/null");
    let null_denied = null.is_err();
    let create_denied = match dir {
        None => true,
        Some(dir) => {
            let path = dir.join(format!(".confidant-lockdown-probe-{}", std::process::id()));
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(_) => {
                    let _ = std::fs::remove_file(&path);
                    false
                }
                Err(_) => true,
            }
        }
    };
    null_denied && create_denied
}

/// Reading `path` fails with "permission denied" (not merely "not found").
pub fn read_denied(path: &Path) -> bool {
    matches!(
        std::fs::File::open(path),
        Err(e) if e.kind() == ErrorKind::PermissionDenied
    )
}

/// Starting a program fails. The program is this executable asked for its help text, so should
/// the lockdown not hold, the attempt is harmless.
pub fn exec_denied() -> bool {
    std::process::Command::new("/proc/self/exe")
        .arg("--help")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_err()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_fields() {
        let s = "Name:\tx\nNoNewPrivs:\t1\nSeccomp:\t2\nSeccomp_filters:\t1\n";
        assert_eq!(
            parse_status(7, s),
            ThreadState {
                tid: 7,
                no_new_privs: true,
                seccomp_filter: true
            }
        );
        let s = "NoNewPrivs:\t0\nSeccomp:\t0\n";
        let t = parse_status(1, s);
        assert!(!t.no_new_privs && !t.seccomp_filter);
        // `Seccomp_filters` must not be mistaken for `Seccomp`.
        let t = parse_status(1, "Seccomp_filters:\t2\n");
        assert!(!t.seccomp_filter);
    }
}
