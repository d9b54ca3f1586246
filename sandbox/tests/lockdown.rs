//! The lockdown applied for real, in a child process (it cannot be undone): this test re-runs
//! its own executable as the child, which confines itself with a plan and then checks from
//! several threads what still works (reading the allowed directory, connecting to the allowed
//! port) and what no longer does (writing anywhere, reading the secret directory, connecting to
//! another port, running a program). The parent compares the Landlock ABI the child reports
//! with the kernel's, asked independently (python3's ctypes, `landlock_create_ruleset`).
//!
//! No test harness (`harness = false`): the child must start with one thread, so that every
//! thread it has at lockdown is one it confined.
#![allow(clippy::unwrap_used, reason = "test code")]

use std::io::{ErrorKind, Read};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;

use confidant_sandbox::{Confinement, Plan};

const CHILD: &str = "CONFIDANT_SANDBOX_TEST_CHILD";

fn main() {
    if let Ok(args) = std::env::var(CHILD) {
        child(&args);
    } else {
        parent();
    }
}

fn parent() {
    let dir = tempfile::tempdir().unwrap();
    let allowed = dir.path().join("allowed");
    let secret = dir.path().join("secret");
    std::fs::create_dir(&allowed).unwrap();
    std::fs::create_dir(&secret).unwrap();
    std::fs::write(allowed.join("a.txt"), b"public").unwrap();
    std::fs::write(secret.join("s.txt"), b"sealed model").unwrap();
    let open_port = TcpListener::bind("127.0.0.1:0").unwrap();
    let other_port = TcpListener::bind("127.0.0.1:0").unwrap();
    let args = format!(
        "{}|{}|{}|{}",
        allowed.display(),
        secret.display(),
        open_port.local_addr().unwrap().port(),
        other_port.local_addr().unwrap().port()
    );
    let out = Command::new(std::env::current_exe().unwrap())
        .env(CHILD, args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "child failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    let abi: u32 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("landlock_abi="))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        abi,
        confidant_testkit::probe::kernel_landlock_abi(),
        "reported ABI vs the kernel's"
    );
    // Nothing the child tried to write exists.
    assert!(!allowed.join("new.txt").exists());
    assert_eq!(std::fs::read_dir(&secret).unwrap().count(), 1);
    println!("lockdown: ok (Landlock ABI {abi})\n{stdout}");
}

/// Runs `job` on `thread` (a worker that exists since before the lockdown) and waits.
type Job = Box<dyn FnOnce() + Send>;

fn child(args: &str) {
    let parts: Vec<&str> = args.split('|').collect();
    let allowed = PathBuf::from(parts[0]);
    let secret = PathBuf::from(parts[1]);
    let open_port: u16 = parts[2].parse().unwrap();
    let other_port: u16 = parts[3].parse().unwrap();

    // A long-lived worker thread, started before the lockdown like a TPM thread.
    let (jobs, rx) = mpsc::channel::<Job>();
    let worker = std::thread::spawn(move || {
        while let Ok(job) = rx.recv() {
            job();
        }
    });
    let on_worker = |job: Job| {
        let (done, wait) = mpsc::channel();
        jobs.send(Box::new(move || {
            job();
            done.send(()).unwrap();
        }))
        .unwrap();
        wait.recv().unwrap();
    };

    // Before: everything works.
    assert!(std::fs::read(secret.join("s.txt")).is_ok());

    let plan = Plan {
        read: vec![allowed.clone()],
        connect_tcp: vec![open_port],
        probe_write_dir: Some(secret.clone()),
        probe_unreadable: Some(secret.join("s.txt")),
    }
    .with_system_reads();
    let lockdown = confidant_sandbox::prepare(plan).unwrap();
    let confiner = lockdown.thread_confiner();
    let (tx, confined) = mpsc::channel();
    on_worker(Box::new(move || {
        tx.send(confiner.confine_current_thread()).unwrap();
    }));
    let confined_worker = usize::from(confined.recv().unwrap());
    let report = lockdown.apply(confined_worker);
    println!("landlock_abi={}", report.landlock_abi);
    println!("report={report:?}");

    assert_eq!(report.threads, 2, "main and the worker");
    assert!(report.no_new_privs);
    assert_eq!(report.seccomp, Confinement::Enforced);
    assert!(report.fs_writes_denied);
    assert!(report.exec_denied);
    if report.landlock_abi == 0 {
        assert_eq!(report.landlock, Confinement::Unsupported);
        println!("Landlock unsupported by this kernel: file-system reads are not confined");
    } else {
        assert_eq!(report.landlock, Confinement::Enforced, "{report:?}");
        assert_eq!(report.landlock_threads, 2);
        assert!(report.fs_reads_confined);
    }

    // Checks that must hold on every thread: this one, the worker and one created now.
    let landlock = report.landlock_abi > 0;
    let check = move |who: &str| {
        checks(who, &allowed, &secret, landlock, open_port, other_port);
    };
    check("main");
    let c = check.clone();
    on_worker(Box::new(move || c("worker")));
    std::thread::spawn(move || check("new thread"))
        .join()
        .unwrap();
    drop(jobs);
    worker.join().unwrap();
    println!("all checks passed");
}

fn checks(
    who: &str,
    allowed: &Path,
    secret: &Path,
    landlock: bool,
    open_port: u16,
    other_port: u16,
) {
    // Reading the allowed directory still works.
    let mut s = String::new();
    std::fs::File::open(allowed.join("a.txt"))
        .unwrap_or_else(|e| panic!("{who}: reading the allowed file: {e}"))
        .read_to_string(&mut s)
        .unwrap();
    assert_eq!(s, "public");
    // No writes: not in the allowed directory, not in the secret one, not /dev/null.
    for path in [allowed.join("new.txt"), secret.join("new.txt")] {
        let e = std::fs::write(&path, b"x").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{who}: {path:?}");
    }
    assert!(
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/null")
            .is_err()
    );
    assert!(
        std::fs::remove_file(allowed.join("a.txt")).is_err(),
        "{who}"
    );
    assert!(
        std::fs::rename(allowed.join("a.txt"), allowed.join("b.txt")).is_err(),
        "{who}"
    );
    // No programs.
    assert!(Command::new("/bin/true").status().is_err(), "{who}: exec");
    if landlock {
        // The secret directory is out of reach.
        let e = std::fs::read(secret.join("s.txt")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{who}");
        // TCP: the allowed port only (Landlock ABI 4+).
        TcpStream::connect(("127.0.0.1", open_port))
            .unwrap_or_else(|e| panic!("{who}: allowed port: {e}"));
        let e = TcpStream::connect(("127.0.0.1", other_port)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{who}: other port");
    }
}
