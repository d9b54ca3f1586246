//! Landlock: no writes anywhere, reads beneath the plan's paths only, TCP connections to the
//! plan's ports only, no signals to or abstract UNIX sockets of processes outside the sandbox.
//!
//! Rights are requested up to Landlock ABI 6 in best-effort mode: an older kernel enforces what it
//! knows (ABI 1: files; 3: truncation; 4: TCP; 5: device ioctls; 6: scopes), and the report names
//! the kernel's ABI. Files opened before the lockdown (the TEE device, stdout) keep working: a
//! Landlock domain checks accesses when a file is opened.

use std::path::Path;

use landlock::{
    ABI, Access, AccessFs, AccessNet, LandlockStatus, NetPort, PathBeneath, PathFd, RestrictSelf,
    RestrictSelfAttr, Ruleset, RulesetAttr, RulesetCreated, RulesetCreatedAttr, RulesetError,
    RulesetStatus, Scope,
};

use crate::{Confinement, Plan};

/// The newest ABI whose rights we request (best effort on older kernels).
const REQUESTED_ABI: ABI = ABI::V6;

/// A ruleset ready to be applied.
#[derive(Debug)]
pub struct Prepared {
    ruleset: Option<RulesetCreated>,
}

/// What applying it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub confinement: Confinement,
    /// The kernel's Landlock ABI (0: none).
    pub abi: u32,
    /// Threads confined.
    pub threads: usize,
}

/// Builds the ruleset of `plan`: every file-system right, TCP connect and the scopes handled
/// (so denied unless a rule allows them), read rights beneath each existing path of
/// `plan.read`, connect rights to `plan.connect_tcp`.
pub fn prepare(plan: &Plan) -> Result<Prepared, RulesetError> {
    let mut ruleset = Ruleset::default()
        .handle_access(AccessFs::from_all(REQUESTED_ABI))?
        .handle_access(AccessNet::ConnectTcp)?
        .scope(Scope::from_all(REQUESTED_ABI))?
        .create()?;
    // On kernels with Landlock ABI 8 (thread synchronisation), one call confines every thread.
    // Asked for only there: on older kernels the request itself would mark the ruleset as
    // partially enforced.
    if kernel_abi() >= 8 {
        ruleset = ruleset.all_threads(true)?;
    }
    for path in &plan.read {
        let Some(rule) = read_rule(path) else {
            continue;
        };
        ruleset = ruleset.add_rule(rule)?;
    }
    for port in &plan.connect_tcp {
        ruleset = ruleset.add_rule(NetPort::new(*port, AccessNet::ConnectTcp))?;
    }
    Ok(Prepared {
        ruleset: Some(ruleset),
    })
}

/// The running kernel's Landlock ABI version (0: none). Asks without side effects: no flags, no
/// `no_new_privs`.
pub fn kernel_abi() -> u32 {
    match RestrictSelf::default().no_new_privs(false).apply() {
        Ok(status) => abi_number(&status.landlock),
        Err(_) => 0,
    }
}

fn abi_number(status: &LandlockStatus) -> u32 {
    match status {
        LandlockStatus::Available {
            effective_abi,
            kernel_abi,
        } => kernel_abi.map_or(*effective_abi as u32, |v| u32::try_from(v).unwrap_or(0)),
        _ => 0,
    }
}

/// Read (and map-executable) rights beneath `path`, file rights only for a file; `None` when the
/// path does not exist.
fn read_rule(path: &Path) -> Option<PathBeneath<PathFd>> {
    let is_dir = std::fs::metadata(path).ok()?.is_dir();
    let fd = PathFd::new(path).ok()?;
    let mut access = AccessFs::from_read(REQUESTED_ABI);
    if !is_dir {
        access &= AccessFs::from_file(REQUESTED_ABI);
    }
    Some(PathBeneath::new(fd, access))
}

impl Prepared {
    pub(crate) fn try_clone(&self) -> Option<RulesetCreated> {
        self.ruleset.as_ref().and_then(|r| r.try_clone().ok())
    }

    /// Confines the calling thread (or, with ABI 8, every thread). `threads` is the process's
    /// thread count, `confined_elsewhere` how many other threads were confined already.
    pub fn restrict_self(self, threads: usize, confined_elsewhere: usize) -> Outcome {
        let Some(ruleset) = self.ruleset else {
            return Outcome {
                confinement: Confinement::Failed,
                abi: 0,
                threads: 0,
            };
        };
        let status = match ruleset.restrict_self() {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "Landlock could not be applied");
                return Outcome {
                    confinement: Confinement::Failed,
                    abi: 0,
                    threads: 0,
                };
            }
        };
        let abi = abi_number(&status.landlock);
        let covered = if status.all_threads {
            threads
        } else {
            (1 + confined_elsewhere).min(threads)
        };
        let confinement = match status.ruleset {
            RulesetStatus::NotEnforced => Confinement::Unsupported,
            RulesetStatus::PartiallyEnforced => Confinement::Partial,
            RulesetStatus::FullyEnforced if covered < threads => Confinement::Partial,
            RulesetStatus::FullyEnforced => Confinement::Enforced,
        };
        Outcome {
            confinement,
            abi,
            threads: if confinement == Confinement::Unsupported {
                0
            } else {
                covered
            },
        }
    }
}
