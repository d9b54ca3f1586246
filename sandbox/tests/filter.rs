//! The seccomp program, run by a classic-BPF interpreter written here from the kernel's
//! definition (`Documentation/networking/filter.rst`, `struct seccomp_data` in
//! `include/uapi/linux/seccomp.h`), on the system calls it must refuse and the ones it must let
//! through. The interpreter refuses any instruction it does not know, so a program it accepts is
//! one it understood.
#![cfg(target_arch = "x86_64")]
#![allow(clippy::unwrap_used, reason = "test code")]

use confidant_sandbox::syscalls::{DENIED, RET_EPERM, X32_SYSCALL_BIT, program};
use seccompiler::sock_filter;

const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const AUDIT_ARCH_I386: u32 = 0x4000_0003;
const RET_ALLOW: u32 = 0x7fff_0000;
const RET_KILL_PROCESS: u32 = 0x8000_0000;

/// `struct seccomp_data` as the filter sees it (little endian).
fn seccomp_data(arch: u32, nr: u32, args: [u64; 6]) -> Vec<u8> {
    let mut d = Vec::with_capacity(64);
    d.extend_from_slice(&nr.to_le_bytes());
    d.extend_from_slice(&arch.to_le_bytes());
    d.extend_from_slice(&0u64.to_le_bytes()); // instruction_pointer
    for a in args {
        d.extend_from_slice(&a.to_le_bytes());
    }
    d
}

/// Runs a classic-BPF program over `data`; panics on an unknown instruction, a jump or load out of
/// range, or falling off the end (all of which the kernel's verifier would refuse).
fn run(program: &[sock_filter], data: &[u8]) -> u32 {
    let mut a: u32 = 0;
    let mut pc = 0usize;
    loop {
        let ins = &program[pc];
        let k = ins.k;
        pc += 1;
        match ins.code {
            0x20 => {
                // LD | W | ABS
                let off = k as usize;
                a = u32::from_le_bytes(data[off..off + 4].try_into().unwrap());
            }
            0x54 => a &= k,           // ALU | AND | K
            0x05 => pc += k as usize, // JMP | JA
            0x15 | 0x25 | 0x35 | 0x45 => {
                let taken = match ins.code {
                    0x15 => a == k,
                    0x25 => a > k,
                    0x35 => a >= k,
                    _ => a & k != 0,
                };
                pc += usize::from(if taken { ins.jt } else { ins.jf });
            }
            0x06 => return k, // RET | K
            other => panic!("instruction {other:#x} not understood"),
        }
        assert!(pc < program.len(), "ran off the end of the program");
    }
}

fn verdict(nr: i64, args: [u64; 6]) -> u32 {
    let p = program().unwrap().unwrap();
    run(&p, &seccomp_data(AUDIT_ARCH_X86_64, nr as u32, args))
}

#[test]
fn every_denied_call_fails_with_eperm() {
    for nr in DENIED {
        assert_eq!(verdict(*nr, [0; 6]), RET_EPERM, "syscall {nr}");
    }
}

#[test]
fn what_a_service_needs_is_allowed() {
    for nr in [
        libc::SYS_read,
        libc::SYS_write,
        libc::SYS_close,
        libc::SYS_mmap,
        libc::SYS_mprotect,
        libc::SYS_madvise,
        libc::SYS_futex,
        libc::SYS_epoll_wait,
        libc::SYS_socket,
        libc::SYS_connect,
        libc::SYS_accept4,
        libc::SYS_sendto,
        libc::SYS_recvfrom,
        libc::SYS_clone3,
        libc::SYS_getrandom,
        libc::SYS_ioctl,
        libc::SYS_statx,
        libc::SYS_exit_group,
    ] {
        assert_eq!(verdict(nr, [0; 6]), RET_ALLOW, "syscall {nr}");
    }
}

#[test]
fn opening_for_reading_is_allowed_for_writing_refused() {
    let read_flags = [
        libc::O_RDONLY,
        libc::O_RDONLY | libc::O_CLOEXEC,
        libc::O_RDONLY | libc::O_CLOEXEC | libc::O_DIRECTORY | libc::O_NOFOLLOW,
        libc::O_PATH | libc::O_CLOEXEC,
    ];
    let write_flags = [
        libc::O_WRONLY,
        libc::O_RDWR,
        libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC,
        libc::O_RDONLY | libc::O_CREAT,
        libc::O_RDONLY | libc::O_TRUNC,
        libc::O_WRONLY | libc::O_APPEND,
        libc::O_TMPFILE | libc::O_RDWR,
        libc::O_TMPFILE,
    ];
    for flags in read_flags {
        let f = flags as u32 as u64;
        assert_eq!(
            verdict(libc::SYS_openat, [0, 0, f, 0, 0, 0]),
            RET_ALLOW,
            "openat {flags:#o}"
        );
        assert_eq!(
            verdict(libc::SYS_open, [0, f, 0, 0, 0, 0]),
            RET_ALLOW,
            "open {flags:#o}"
        );
        // Bits above the 32-bit flags argument do not matter to the kernel, nor to the filter.
        let high = f | (0xdead_beef << 32);
        assert_eq!(verdict(libc::SYS_openat, [0, 0, high, 0, 0, 0]), RET_ALLOW);
    }
    for flags in write_flags {
        let f = flags as u32 as u64;
        assert_eq!(
            verdict(libc::SYS_openat, [0, 0, f, 0, 0, 0]),
            RET_EPERM,
            "openat {flags:#o}"
        );
        assert_eq!(
            verdict(libc::SYS_open, [0, f, 0, 0, 0, 0]),
            RET_EPERM,
            "open {flags:#o}"
        );
    }
    // The flags of `open` are its second argument, of `openat` its third.
    let w = libc::O_WRONLY as u64;
    assert_eq!(verdict(libc::SYS_openat, [0, w, 0, 0, 0, 0]), RET_ALLOW);
    assert_eq!(verdict(libc::SYS_open, [0, 0, w, 0, 0, 0]), RET_ALLOW);
}

#[test]
fn x32_numbers_and_foreign_abis_are_refused() {
    let p = program().unwrap().unwrap();
    for nr in [libc::SYS_read as u32, libc::SYS_execve as u32, 0] {
        // x32 shares x86-64's audit architecture: refused by number.
        assert_eq!(
            run(
                &p,
                &seccomp_data(AUDIT_ARCH_X86_64, nr | X32_SYSCALL_BIT, [0; 6])
            ),
            RET_EPERM
        );
        // 32-bit `int 0x80`: another architecture, the process is killed.
        assert_eq!(
            run(&p, &seccomp_data(AUDIT_ARCH_I386, nr, [0; 6])),
            RET_KILL_PROCESS
        );
    }
}
