//! The seccomp filter: a deny-list of what a locked-down service never does.
//!
//! Calls on the list fail with `EPERM`; everything else is allowed. A deny-list, not an
//! allow-list: the services run an async runtime, TLS, an inference engine and the C library's
//! name resolution, whose exact set of system calls changes with every dependency and kernel, and
//! an allow-list that misses one kills the service at an unpredictable moment. What matters after
//! lockdown is that no code in the process can change the file system, run a program, gain
//! privileges or reach into the kernel's larger attack surfaces, and that is what is denied:
//!
//! - running programs: `execve`, `execveat`;
//! - writing the file system: `open`/`openat` with `O_WRONLY`, `O_RDWR`, `O_CREAT`, `O_TRUNC` or
//!   `O_TMPFILE`; `creat`, `openat2` (its flags are out of the filter's reach), `truncate`,
//!   `mknod*`, `mkdir*`, `rmdir`, `unlink*`, `rename*`, `link*`, `symlink*`, `chmod*`, `chown*`,
//!   `utime*`, `*xattr` writes;
//! - privileges and identity: `set*uid`, `set*gid`, `setgroups`, `capset`, `personality`;
//! - other processes and namespaces: `ptrace`, `process_vm_readv/writev`, `pidfd_getfd`,
//!   `unshare`, `setns`, mounts (`mount`, `umount2`, `pivot_root`, `chroot`, the new mount API);
//! - kernel surfaces a service has no use for: modules, `kexec_*`, `bpf`, `perf_event_open`,
//!   `userfaultfd`, `io_uring_*` (whose operations bypass seccomp), keyrings, `acct`,
//!   `quotactl`, `swapon/off`, `reboot`, clock and host-name setting, `iopl`/`ioperm`, `syslog`,
//!   handle-based opens.
//!
//! x86-64 only (the architecture the services are built for). The filter kills a caller that
//! enters through another system-call ABI (32-bit `int 0x80`), and refuses the x32 ABI's
//! numbers (bit 30 set), which share x86-64's audit architecture and would otherwise slip past a
//! deny-list keyed on x86-64 numbers.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, sock_filter,
};

/// The x32 ABI's system-call number bit.
pub const X32_SYSCALL_BIT: u32 = 0x4000_0000;
/// `SECCOMP_RET_ERRNO | EPERM`.
pub const RET_EPERM: u32 = 0x0005_0000 | libc::EPERM as u32;
/// `__O_TMPFILE` (without `O_DIRECTORY`).
const O_TMPFILE_BIT: u64 = 0o20_000_000;

/// `open`-family flags that write or create.
pub const WRITE_FLAGS: [u64; 5] = [
    libc::O_WRONLY as u64,
    libc::O_RDWR as u64,
    libc::O_CREAT as u64,
    libc::O_TRUNC as u64,
    O_TMPFILE_BIT,
];

/// System calls denied outright (x86-64 numbers).
#[cfg(target_arch = "x86_64")]
pub const DENIED: &[i64] = &[
    // running programs
    libc::SYS_execve,
    libc::SYS_execveat,
    // writing the file system
    libc::SYS_creat,
    libc::SYS_openat2,
    libc::SYS_truncate,
    libc::SYS_mknod,
    libc::SYS_mknodat,
    libc::SYS_mkdir,
    libc::SYS_mkdirat,
    libc::SYS_rmdir,
    libc::SYS_unlink,
    libc::SYS_unlinkat,
    libc::SYS_rename,
    libc::SYS_renameat,
    libc::SYS_renameat2,
    libc::SYS_link,
    libc::SYS_linkat,
    libc::SYS_symlink,
    libc::SYS_symlinkat,
    libc::SYS_chmod,
    libc::SYS_fchmod,
    libc::SYS_fchmodat,
    libc::SYS_fchmodat2,
    libc::SYS_chown,
    libc::SYS_fchown,
    libc::SYS_lchown,
    libc::SYS_fchownat,
    libc::SYS_utime,
    libc::SYS_utimes,
    libc::SYS_utimensat,
    libc::SYS_futimesat,
    libc::SYS_setxattr,
    libc::SYS_lsetxattr,
    libc::SYS_fsetxattr,
    libc::SYS_removexattr,
    libc::SYS_lremovexattr,
    libc::SYS_fremovexattr,
    // privileges and identity
    libc::SYS_setuid,
    libc::SYS_setgid,
    libc::SYS_setreuid,
    libc::SYS_setregid,
    libc::SYS_setresuid,
    libc::SYS_setresgid,
    libc::SYS_setfsuid,
    libc::SYS_setfsgid,
    libc::SYS_setgroups,
    libc::SYS_capset,
    libc::SYS_personality,
    // other processes, namespaces, mounts
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_pidfd_getfd,
    libc::SYS_unshare,
    libc::SYS_setns,
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_chroot,
    libc::SYS_fsopen,
    libc::SYS_fsconfig,
    libc::SYS_fsmount,
    libc::SYS_fspick,
    libc::SYS_move_mount,
    libc::SYS_open_tree,
    libc::SYS_mount_setattr,
    // kernel surfaces
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_userfaultfd,
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_acct,
    libc::SYS_quotactl,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_reboot,
    libc::SYS_settimeofday,
    libc::SYS_clock_settime,
    libc::SYS_clock_adjtime,
    libc::SYS_adjtimex,
    libc::SYS_sethostname,
    libc::SYS_setdomainname,
    libc::SYS_iopl,
    libc::SYS_ioperm,
    libc::SYS_syslog,
    libc::SYS_open_by_handle_at,
    libc::SYS_name_to_handle_at,
];

/// `open`-family calls and the index of their flags argument (denied when writing).
#[cfg(target_arch = "x86_64")]
pub const OPEN_CALLS: [(i64, u8); 2] = [(libc::SYS_open, 1), (libc::SYS_openat, 2)];

/// The filter for this architecture, or `None` where none is defined (reported as
/// unsupported).
#[cfg(target_arch = "x86_64")]
pub fn program() -> Result<Option<BpfProgram>, seccompiler::BackendError> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for nr in DENIED {
        rules.insert(*nr, Vec::new());
    }
    for (nr, flags_arg) in OPEN_CALLS {
        let mut any_write_flag = Vec::new();
        for flag in WRITE_FLAGS {
            any_write_flag.push(SeccompRule::new(vec![SeccompCondition::new(
                flags_arg,
                SeccompCmpArgLen::Dword,
                SeccompCmpOp::MaskedEq(flag),
                flag,
            )?])?);
        }
        rules.insert(nr, any_write_flag);
    }
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        seccompiler::TargetArch::x86_64,
    )?;
    let compiled = BpfProgram::try_from(filter)?;
    // x32 guard first: `A = nr; if A >= X32_SYSCALL_BIT return EPERM`. The compiled filter that
    // follows reloads what it needs (architecture first) and jumps only forward within itself.
    let mut program = vec![
        sock_filter {
            code: 0x20, // BPF_LD | BPF_W | BPF_ABS
            jt: 0,
            jf: 0,
            k: 0, // seccomp_data.nr
        },
        sock_filter {
            code: 0x35, // BPF_JMP | BPF_JGE | BPF_K
            jt: 0,
            jf: 1,
            k: X32_SYSCALL_BIT,
        },
        sock_filter {
            code: 0x06, // BPF_RET | BPF_K
            jt: 0,
            jf: 0,
            k: RET_EPERM,
        },
    ];
    program.extend(compiled);
    Ok(Some(program))
}

/// No filter is defined for other architectures.
#[cfg(not(target_arch = "x86_64"))]
pub fn program() -> Result<Option<BpfProgram>, seccompiler::BackendError> {
    Ok(None)
}
