//! A service confines itself once it no longer needs what it needed to start.
//!
//! [`prepare`] builds the confinement from a [`Plan`] (what stays readable, which TCP ports may be
//! connected to); [`Lockdown::apply`] then, on the calling thread:
//!
//! 1. **Landlock** ([`filesystem`]): no file-system writes at all, reads only beneath the plan's
//!    paths, TCP connections only to the plan's ports (ABI 4+), no signals to and no abstract
//!    UNIX sockets of processes outside the sandbox (ABI 6+). Landlock confines the calling
//!    thread and the threads it creates later; on kernels with Landlock ABI 8 it is applied to
//!    every thread at once, otherwise long-lived threads the caller owns are confined with
//!    [`Lockdown::thread_confiner`] and the report says how many threads were covered.
//! 2. **No new privileges** (`prctl(PR_SET_NO_NEW_PRIVS)`) and a **seccomp filter**
//!    ([`syscalls`]) on every thread of the process (`SECCOMP_FILTER_FLAG_TSYNC`, which also gives
//!    every thread no-new-privileges): no `execve`, no file creation, removal, renaming or
//!    permission change, no opening for writing, no mounts, namespaces, modules, `ptrace`, BPF,
//!    keyrings or `io_uring`. Denied calls fail with `EPERM`; nothing is killed for trying.
//! 3. **Checks** ([`probe`]): every thread's `NoNewPrivs` and `Seccomp` state from
//!    `/proc/self/task/*/status`, and real attempts that must fail: opening `/dev/null` and
//!    creating a file for writing, reading a file the service read before (its sealed model),
//!    running a program.
//!
//! Each mechanism is used where the kernel offers it (detected at run time) and the [`Report`]
//! says what is in force; nothing is claimed that a check did not see.
#![forbid(unsafe_code)]

pub mod filesystem;
pub mod probe;
pub mod syscalls;

use std::path::PathBuf;

/// What the confined service still needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Files and directories that stay readable (directories: everything beneath them; shared
    /// libraries beneath them may also be mapped executable).
    pub read: Vec<PathBuf>,
    /// TCP ports outgoing connections may reach (Landlock ABI 4+; others are refused).
    pub connect_tcp: Vec<u16>,
    /// A directory the service could write to before lockdown: the probe tries to create a file
    /// there (and removes it if that unexpectedly works).
    pub probe_write_dir: Option<PathBuf>,
    /// A file the service could read before lockdown (e.g. its sealed model): the probe tries to
    /// read it.
    pub probe_unreadable: Option<PathBuf>,
}

impl Plan {
    /// Adds what any Linux service reads at run time: name resolution (`/etc/hosts`,
    /// `resolv.conf`, `nsswitch.conf`, …, and the NSS modules in the library directories), time
    /// zones, its own `/proc/self`, CPU and cgroup limits (thread counts), `/dev/null` and
    /// `/dev/urandom`. Paths that do not exist are skipped at [`prepare`].
    pub fn with_system_reads(mut self) -> Self {
        let system = [
            "/etc/hosts",
            "/etc/resolv.conf",
            "/etc/nsswitch.conf",
            "/etc/host.conf",
            "/etc/gai.conf",
            "/etc/services",
            "/etc/localtime",
            "/etc/ld.so.cache",
            "/lib",
            "/lib64",
            "/usr/lib",
            "/usr/lib64",
            "/proc/self",
            "/proc/cpuinfo",
            "/proc/meminfo",
            "/sys/devices/system/cpu",
            "/sys/fs/cgroup",
            "/sys/kernel/mm/transparent_hugepage",
            "/dev/null",
            "/dev/urandom",
        ];
        self.read.extend(system.iter().map(PathBuf::from));
        self
    }
}

/// How far one mechanism is in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confinement {
    /// In force on every thread, with every requested restriction.
    Enforced,
    /// In force, but not on every thread or without some requested restriction (an older kernel
    /// ABI): the report's other fields say which.
    Partial,
    /// The kernel does not offer it.
    Unsupported,
    /// The kernel offers it but applying it failed (logged).
    Failed,
}

/// What [`Lockdown::apply`] put in force and what its checks saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Every thread has `NoNewPrivs: 1`.
    pub no_new_privs: bool,
    /// The seccomp filter (every thread has `Seccomp: 2`).
    pub seccomp: Confinement,
    /// Landlock.
    pub landlock: Confinement,
    /// The kernel's Landlock ABI version (0: none).
    pub landlock_abi: u32,
    /// Threads of the process when the lockdown was applied.
    pub threads: usize,
    /// Threads Landlock confines (all of them when `landlock` is `Enforced`).
    pub landlock_threads: usize,
    /// Opening for writing and creating a file both failed.
    pub fs_writes_denied: bool,
    /// Reading [`Plan::probe_unreadable`] failed with "permission denied".
    pub fs_reads_confined: bool,
    /// Running a program failed.
    pub exec_denied: bool,
}

/// Why the confinement could not even be prepared (a bug in the plan, not a missing kernel
/// feature: those are reported, not errors).
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error("Landlock ruleset: {0}")]
    Landlock(#[from] landlock::RulesetError),
    #[error("seccomp filter: {0}")]
    Seccomp(String),
}

/// A prepared confinement (see the crate documentation).
#[derive(Debug)]
pub struct Lockdown {
    plan: Plan,
    landlock: filesystem::Prepared,
    filter: Option<seccompiler::BpfProgram>,
}

/// Prepares the confinement of `plan` (opens the paths that stay readable, compiles the filter).
pub fn prepare(plan: Plan) -> Result<Lockdown, PrepareError> {
    let landlock = filesystem::prepare(&plan)?;
    let filter = syscalls::program().map_err(|e| PrepareError::Seccomp(e.to_string()))?;
    Ok(Lockdown {
        plan,
        landlock,
        filter,
    })
}

impl Lockdown {
    /// A confiner for one long-lived thread that already exists (Landlock confines only the
    /// thread that applies it and the threads it creates later): run
    /// [`ThreadConfiner::confine_current_thread`] on that thread before [`Lockdown::apply`].
    pub fn thread_confiner(&self) -> ThreadConfiner {
        ThreadConfiner(self.landlock.try_clone())
    }

    /// Applies the confinement to the calling thread (Landlock), every thread (no new
    /// privileges, seccomp), runs the checks and returns what they saw. `confined_elsewhere` is
    /// how many other threads a [`ThreadConfiner`] confined successfully.
    pub fn apply(self, confined_elsewhere: usize) -> Report {
        let threads = probe::thread_ids().len();
        let landlock = self.landlock.restrict_self(threads, confined_elsewhere);
        let seccomp = match &self.filter {
            None => Confinement::Unsupported,
            Some(program) => match seccompiler::apply_filter_all_threads(program) {
                Ok(()) => Confinement::Enforced,
                Err(e) => {
                    tracing::error!(error = %e, "seccomp filter could not be applied");
                    Confinement::Failed
                }
            },
        };
        let states = probe::thread_states();
        let seccomp = match seccomp {
            Confinement::Enforced if !states.iter().all(|s| s.seccomp_filter) => {
                Confinement::Partial
            }
            other => other,
        };
        Report {
            no_new_privs: !states.is_empty() && states.iter().all(|s| s.no_new_privs),
            seccomp,
            landlock: landlock.confinement,
            landlock_abi: landlock.abi,
            threads,
            landlock_threads: landlock.threads,
            fs_writes_denied: probe::writes_denied(self.plan.probe_write_dir.as_deref()),
            fs_reads_confined: self
                .plan
                .probe_unreadable
                .as_deref()
                .is_some_and(probe::read_denied),
            exec_denied: probe::exec_denied(),
        }
    }
}

/// Confines the thread that calls [`ThreadConfiner::confine_current_thread`] (see
/// [`Lockdown::thread_confiner`]).
#[derive(Debug)]
pub struct ThreadConfiner(Option<landlock::RulesetCreated>);

impl ThreadConfiner {
    /// Applies the Landlock ruleset (and no-new-privileges) to the calling thread. True when
    /// Landlock now confines it.
    pub fn confine_current_thread(self) -> bool {
        let Some(ruleset) = self.0 else {
            return false;
        };
        match ruleset.restrict_self() {
            Ok(status) => status.ruleset != landlock::RulesetStatus::NotEnforced,
            Err(e) => {
                tracing::error!(error = %e, "Landlock could not confine a worker thread");
                false
            }
        }
    }
}
