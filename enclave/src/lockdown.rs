//! Once the model is unsealed in memory the enclave reads no file and runs no program again, so
//! it gives both up (`confidant-sandbox`): no new privileges, no file-system writes, reads only
//! of what name resolution, the C library and the TEE still need (never the sealed model, the
//! configuration or its secrets), TCP connections only to the verifier's port (and DNS), no
//! `execve`, and a seccomp filter over the kernel's larger surfaces. Each mechanism is used where
//! the kernel offers it; what took effect is logged and reported ([`LockdownStatus`] in
//! `/healthz` and session attestation).
//!
//! The binary calls [`lock_down`] between [`Enclave::boot`](crate::supervisor::Enclave::boot)
//! and [`Enclave::serve`](crate::supervisor::Enclave::serve), on its main thread, after the boot
//! runtime's threads have ended: the threads that exist then are the main thread and the TEE's
//! worker (confined through [`Tee::on_worker_thread`](crate::tee::Tee::on_worker_thread)), and
//! every thread started later (the serving runtime, the engine's pool) inherits the confinement.

use confidant_sandbox::Plan;
use confidant_wire::attest::{Confinement, LockdownStatus};

use crate::config::{Config, TeeConfig};
use crate::supervisor::Booted;

/// DNS over TCP (answers too large for UDP), for a verifier named by host name.
const DNS_PORT: u16 = 53;

/// What the enclave still needs after unsealing.
pub fn plan(config: &Config) -> Plan {
    let mut read = Vec::new();
    if let TeeConfig::Tpm {
        event_log: Some(log),
        ..
    } = &config.tee
    {
        // Read anew for every quote (renewals, session evidence).
        read.push(log.clone());
    }
    let mut connect_tcp = vec![DNS_PORT];
    if let Ok((_, port)) = crate::verifier_client::parse_url(&config.verifier.url) {
        connect_tcp.push(port);
    }
    Plan {
        read,
        connect_tcp,
        probe_write_dir: config.sealed_model.parent().map(|p| p.to_path_buf()),
        probe_unreadable: Some(config.sealed_model.clone()),
    }
    .with_system_reads()
}

/// Confines the process (see the module documentation) and reports what took effect.
pub fn lock_down(booted: &Booted) -> LockdownStatus {
    let lockdown = match confidant_sandbox::prepare(plan(booted.config())) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "lockdown could not be prepared; running unconfined");
            return LockdownStatus {
                no_new_privs: false,
                seccomp: Confinement::Failed,
                landlock: Confinement::Failed,
                landlock_abi: 0,
                threads: 0,
                landlock_threads: 0,
                fs_writes_denied: false,
                fs_reads_confined: false,
                exec_denied: false,
            };
        }
    };
    let confiner = lockdown.thread_confiner();
    let confined_worker = booted
        .tee()
        .on_worker_thread(move || confiner.confine_current_thread())
        .map_or(0, usize::from);
    let status = to_wire(&lockdown.apply(confined_worker));
    let complete = status.no_new_privs
        && status.seccomp == Confinement::Enforced
        && status.landlock == Confinement::Enforced
        && status.fs_writes_denied
        && status.fs_reads_confined
        && status.exec_denied;
    macro_rules! report {
        ($level:ident, $msg:literal) => {
            tracing::$level!(
                no_new_privs = status.no_new_privs,
                seccomp = ?status.seccomp,
                landlock = ?status.landlock,
                landlock_abi = status.landlock_abi,
                threads = status.threads,
                landlock_threads = status.landlock_threads,
                fs_writes_denied = status.fs_writes_denied,
                fs_reads_confined = status.fs_reads_confined,
                exec_denied = status.exec_denied,
                $msg
            )
        };
    }
    if complete {
        report!(info, "locked down");
    } else {
        report!(warn, "locked down partially (what the kernel offers)");
    }
    status
}

fn to_wire(r: &confidant_sandbox::Report) -> LockdownStatus {
    let c = |c: confidant_sandbox::Confinement| match c {
        confidant_sandbox::Confinement::Enforced => Confinement::Enforced,
        confidant_sandbox::Confinement::Partial => Confinement::Partial,
        confidant_sandbox::Confinement::Unsupported => Confinement::Unsupported,
        confidant_sandbox::Confinement::Failed => Confinement::Failed,
    };
    LockdownStatus {
        no_new_privs: r.no_new_privs,
        seccomp: c(r.seccomp),
        landlock: c(r.landlock),
        landlock_abi: r.landlock_abi,
        threads: u32::try_from(r.threads).unwrap_or(u32::MAX),
        landlock_threads: u32::try_from(r.landlock_threads).unwrap_or(u32::MAX),
        fs_writes_denied: r.fs_writes_denied,
        fs_reads_confined: r.fs_reads_confined,
        exec_denied: r.exec_denied,
    }
}
