//! `confidant vm build | measure`: a reproducible measured-boot image for QEMU + OVMF + swtpm
//! (`-kernel DIR/vmlinuz -initrd DIR/initrd.cpio -append TEXT -m N`) and its PCR 4 / PCR 9
//! reference values, computed before boot (docs/vm.md).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use confidant_attestation::vmimage::cpio::CpioBuilder;
use confidant_attestation::vmimage::pcr::{BootMeasurements, measure_boot};
use serde::{Deserialize, Serialize};

#[derive(Debug, Subcommand)]
pub enum VmCommand {
    /// Build DIR/vmlinuz, DIR/initrd.cpio and DIR/manifest.json.
    Build(BuildArgs),
    /// Print the reference values (PCR 4, PCR 9, event digests) of a built image.
    Measure(MeasureArgs),
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// The enclave executable (installed as /usr/bin/confidant-enclave).
    #[arg(long, value_name = "BIN")]
    enclave: PathBuf,
    /// The enclave configuration (installed as /etc/confidant/enclave.toml).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Extra files: SRC on the host, DEST absolute in the image (mode 0600 when SRC is readable by
    /// its owner only, as secrets must be; 0644 otherwise).
    #[arg(long, value_name = "SRC=DEST")]
    include: Vec<String>,
    /// A sealed model (installed as /var/lib/confidant/model.sealed).
    #[arg(long, value_name = "FILE")]
    sealed_model: Option<PathBuf>,
    #[arg(long, value_name = "TEXT", default_value = "console=ttyS0 quiet")]
    append: String,
    #[arg(long, value_name = "N", default_value_t = 2048)]
    memory_mib: u64,
    /// The kernel (default: scripts/vm-kernel.sh's Debian cloud kernel).
    #[arg(long, value_name = "VMLINUZ", requires = "modules")]
    kernel: Option<PathBuf>,
    /// The kernel's modules dir (lib/modules/<version>).
    #[arg(long, value_name = "DIR", requires = "kernel")]
    modules: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct MeasureArgs {
    dir: PathBuf,
    /// Print a policy TOML fragment for the model given by --model-id.
    #[arg(long, requires = "model_id")]
    policy: bool,
    #[arg(long, value_name = "ID")]
    model_id: Option<String>,
    #[arg(long, conflicts_with = "policy")]
    json: bool,
}

/// DIR/manifest.json: every input by name and SHA-256 (no host paths), and the measured values.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    format: u32,
    kernel: Input,
    kernel_package: Option<String>,
    append: String,
    memory_mib: u64,
    initrd: Input,
    inputs: Vec<Input>,
    measured: Measured,
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct Input {
    name: String,
    sha256: String,
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct Measured {
    kernel_authenticode_sha256: String,
    cmdline: String,
    cmdline_event_sha256: String,
    initrd_sha256: String,
    pcr4: String,
    pcr9: String,
}

impl From<&BootMeasurements> for Measured {
    fn from(m: &BootMeasurements) -> Self {
        Measured {
            kernel_authenticode_sha256: hex::encode(m.kernel_authenticode),
            cmdline: m.cmdline.clone(),
            cmdline_event_sha256: hex::encode(m.cmdline_digest),
            initrd_sha256: hex::encode(m.initrd_digest),
            pcr4: hex::encode(m.pcr4),
            pcr9: hex::encode(m.pcr9),
        }
    }
}

/// In load order: each module after the ones its `depends=` names.
const MODULES: &[&str] = &[
    "virtio_ring",
    "virtio",
    "virtio_pci_modern_dev",
    "virtio_pci_legacy_dev",
    "virtio_pci",
    "failover",
    "net_failover",
    "virtio_net",
];

pub fn run(cmd: VmCommand) -> Result<()> {
    match cmd {
        VmCommand::Build(a) => build(a),
        VmCommand::Measure(a) => measure(a),
    }
}

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, b))
}

fn read(p: &Path) -> Result<Vec<u8>> {
    std::fs::read(p).with_context(|| format!("reading {}", p.display()))
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// (vmlinuz, modules dir, package) from scripts/vm-kernel.sh.
fn default_kernel() -> Result<(PathBuf, PathBuf, Option<String>)> {
    let script = std::env::var_os("CONFIDANT_VM_KERNEL_SCRIPT")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/vm-kernel.sh"));
    let out = Command::new("bash")
        .arg(&script)
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !out.status.success() {
        bail!(
            "{} failed (pass --kernel and --modules instead): {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let s = String::from_utf8(out.stdout).context("vm-kernel.sh output")?;
    let mut l = s.lines();
    match (l.next(), l.next()) {
        (Some(k), Some(m)) => Ok((k.into(), m.into(), l.next().map(str::to_owned))),
        _ => bail!("{} printed no kernel path", script.display()),
    }
}

/// The absolute paths `ldd` prints for `bin` (its libraries and the ELF interpreter).
fn ldd(bin: &Path) -> Result<Vec<PathBuf>> {
    let out = Command::new("ldd")
        .arg(bin)
        .output()
        .context("running ldd")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        // Static executables: "not a dynamic executable".
        return Ok(Vec::new());
    }
    let mut v = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.contains("not found") {
            bail!("ldd {}: {line}", bin.display());
        }
        let path = match line.split_once("=>") {
            Some((_, r)) => r.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            v.push(PathBuf::from(p));
        }
    }
    Ok(v)
}

fn add_host_file(b: &mut CpioBuilder, host: &Path, dest: &str, mode: u32) -> Result<()> {
    if b.contains(dest) {
        return Ok(());
    }
    b.file(dest, read(host)?, mode)
        .with_context(|| format!("adding {dest}"))
}

fn find_module(dir: &Path, name: &str) -> Result<Option<PathBuf>> {
    let want = format!("{name}.ko");
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&d)
            .with_context(|| format!("reading {}", d.display()))?
            .collect::<std::io::Result<_>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let ft = e.file_type()?;
            if ft.is_dir() {
                stack.push(e.path());
            } else if e.file_name().to_string_lossy() == want {
                return Ok(Some(e.path()));
            }
        }
    }
    Ok(None)
}

fn init_script(module_paths: &[String]) -> String {
    let mut s = String::from(
        "#!/bin/busybox sh\n\
         # confidant measured VM init (generated by `confidant vm build`).\n\
         export PATH=/bin:/usr/bin\n\
         /bin/busybox --install -s /bin\n\
         mount -t proc proc /proc\n\
         mount -t sysfs sysfs /sys\n\
         mount -t devtmpfs devtmpfs /dev\n\
         mount -t securityfs securityfs /sys/kernel/security\n\
         mount -t tmpfs tmpfs /tmp\n",
    );
    for m in module_paths {
        s.push_str(&format!("insmod /{m}\n"));
    }
    s.push_str(
        "ip link set lo up\n\
         ip addr add 10.0.2.15/24 dev eth0\n\
         ip link set eth0 up\n\
         ip route add default via 10.0.2.2\n\
         for w in $(cat /proc/cmdline); do\n\
         \x20 case \"$w\" in RUST_LOG=*) export \"$w\" ;; esac\n\
         done\n\
         pcr() { tr A-F a-f < /sys/class/tpm/tpm0/pcr-sha256/$1; }\n\
         echo \"confidant-vm: pcr4=$(pcr 4) pcr9=$(pcr 9)\"\n\
         echo 'confidant-vm: starting enclave'\n\
         /usr/bin/confidant-enclave serve --config /etc/confidant/enclave.toml\n\
         echo \"confidant-vm: enclave exited with status $?\"\n\
         poweroff -f\n",
    );
    s
}

fn build(a: BuildArgs) -> Result<()> {
    confidant_attestation::vmimage::qemu::check_append(&a.append)?;
    let (kernel, modules, package) = match (a.kernel, a.modules) {
        (Some(k), Some(m)) => (k, m, None),
        _ => default_kernel()?,
    };
    let kernel_bytes = read(&kernel).context("kernel")?;
    let kver = file_name(&modules);
    let mut b = CpioBuilder::new();
    let mut inputs = Vec::new();
    let mut record = |name: String, data: &[u8]| {
        inputs.push(Input {
            name,
            sha256: sha256_hex(data),
        })
    };

    for d in [
        "proc",
        "sys",
        "dev",
        "tmp",
        "etc/confidant",
        "var/lib/confidant",
    ] {
        b.dir(d, 0o755)?;
    }
    let busybox = Path::new("/bin/busybox");
    let bb = read(busybox).context("busybox (Debian busybox-static)")?;
    record("busybox".into(), &bb);
    b.file("bin/busybox", bb, 0o755)?;
    b.symlink("bin/sh", "busybox")?;

    let enclave = read(&a.enclave).context("enclave binary")?;
    record("confidant-enclave".into(), &enclave);
    b.file("usr/bin/confidant-enclave", enclave, 0o755)?;
    let mut libs = ldd(&a.enclave)?;
    let mut tcti: Vec<PathBuf> = std::fs::read_dir("/usr/lib/x86_64-linux-gnu")
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| file_name(p).starts_with("libtss2-tcti-device.so"))
                .collect()
        })
        .unwrap_or_default();
    tcti.sort();
    for t in &tcti {
        if let Ok(target) = std::fs::read_link(t) {
            let dest = t.to_string_lossy().into_owned();
            if !b.contains(&dest) {
                b.symlink(&dest, &target.to_string_lossy())?;
            }
        } else {
            libs.extend(ldd(t)?);
            libs.push(t.clone());
        }
    }
    libs.sort();
    libs.dedup();
    for l in &libs {
        let data = read(l)?;
        record(file_name(l), &data);
        let dest = l.to_string_lossy().into_owned();
        if !b.contains(&dest) {
            b.file(&dest, data, 0o755)?;
        }
    }

    let mut module_paths = Vec::new();
    for m in MODULES {
        let Some(p) = find_module(&modules.join("kernel"), m)? else {
            bail!("kernel module {m}.ko not found under {}", modules.display());
        };
        let rel = p
            .strip_prefix(&modules)
            .context("module path")?
            .to_string_lossy()
            .into_owned();
        let dest = format!("lib/modules/{kver}/{rel}");
        add_host_file(&mut b, &p, &dest, 0o644)?;
        module_paths.push(dest);
    }

    let config = read(&a.config).context("enclave config")?;
    record("enclave.toml".into(), &config);
    b.file("etc/confidant/enclave.toml", config, 0o644)?;
    if let Some(m) = &a.sealed_model {
        let data = read(m).context("sealed model")?;
        record("model.sealed".into(), &data);
        b.file("var/lib/confidant/model.sealed", data, 0o644)?;
    }
    for inc in &a.include {
        let Some((src, dest)) = inc.split_once('=') else {
            bail!("--include {inc:?}: expected SRC=DEST");
        };
        if !dest.starts_with('/') {
            bail!("--include {inc:?}: DEST must be absolute");
        }
        let data = read(Path::new(src))?;
        // Secrets (tokens, keys) stay 0600: the enclave refuses group- or world-readable ones.
        let mode = {
            use std::os::unix::fs::PermissionsExt;
            let perm = std::fs::metadata(src)
                .with_context(|| format!("--include {inc}"))?
                .permissions()
                .mode();
            if perm & 0o077 == 0 { 0o600 } else { 0o644 }
        };
        record(dest.to_owned(), &data);
        b.file(dest, data, mode)
            .with_context(|| format!("--include {inc}"))?;
    }
    b.file("etc/nsswitch.conf", b"hosts: files\n".to_vec(), 0o644)?;
    b.file(
        "etc/hosts",
        b"127.0.0.1 localhost\n10.0.2.2 host\n".to_vec(),
        0o644,
    )?;
    b.file("init", init_script(&module_paths).into_bytes(), 0o755)?;
    let initrd = b.finish();

    let ram = a.memory_mib.checked_mul(1 << 20).context("--memory-mib")?;
    let m = measure_boot(&kernel_bytes, &initrd, &a.append, ram)?;
    inputs.sort_by(|x, y| x.name.cmp(&y.name));
    let manifest = Manifest {
        format: 1,
        kernel: Input {
            name: file_name(&kernel),
            sha256: sha256_hex(&kernel_bytes),
        },
        kernel_package: package,
        append: a.append,
        memory_mib: a.memory_mib,
        initrd: Input {
            name: "initrd.cpio".into(),
            sha256: sha256_hex(&initrd),
        },
        inputs,
        measured: Measured::from(&m),
    };
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    std::fs::write(a.out.join("vmlinuz"), &kernel_bytes)?;
    std::fs::write(a.out.join("initrd.cpio"), &initrd)?;
    let mut json = serde_json::to_string_pretty(&manifest)?;
    json.push('\n');
    std::fs::write(a.out.join("manifest.json"), json)?;
    println!(
        "wrote {} (initrd {} bytes); boot with -m {} -append {:?}",
        a.out.display(),
        initrd.len(),
        a.memory_mib,
        manifest.append
    );
    Ok(())
}

fn measure(a: MeasureArgs) -> Result<()> {
    let mpath = a.dir.join("manifest.json");
    let manifest: Manifest = serde_json::from_slice(&read(&mpath)?)
        .with_context(|| format!("bad manifest {}", mpath.display()))?;
    let kernel = read(&a.dir.join("vmlinuz"))?;
    let initrd = read(&a.dir.join("initrd.cpio"))?;
    if sha256_hex(&kernel) != manifest.kernel.sha256 {
        bail!("vmlinuz does not match manifest.json");
    }
    if sha256_hex(&initrd) != manifest.initrd.sha256 {
        bail!("initrd.cpio does not match manifest.json");
    }
    let ram = manifest
        .memory_mib
        .checked_mul(1 << 20)
        .context("memory_mib")?;
    let m = Measured::from(&measure_boot(&kernel, &initrd, &manifest.append, ram)?);
    if m != manifest.measured {
        bail!("manifest.json's measured values differ from the recomputed ones");
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&m)?);
    } else if a.policy {
        let id = a.model_id.context("--policy needs --model-id")?;
        print!("{}", policy_fragment(&id, &manifest, &m));
    } else {
        println!(
            "kernel_authenticode_sha256 {}  (as QEMU loads it, -m {})",
            m.kernel_authenticode_sha256, manifest.memory_mib
        );
        println!("cmdline {:?}", m.cmdline);
        println!("cmdline_event_sha256 {}", m.cmdline_event_sha256);
        println!("initrd_sha256 {}", m.initrd_sha256);
        println!("pcr4 {}", m.pcr4);
        println!("pcr9 {}", m.pcr9);
    }
    Ok(())
}

fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

fn policy_fragment(id: &str, manifest: &Manifest, m: &Measured) -> String {
    let key = toml_str(id);
    format!(
        "# confidant vm measure: kernel {kernel} ({pkg}), -m {mem}\n\
         # Append under [models.{key}]. PCR 4 and 9 of this image (add the firmware PCRs 0-3,5-7,\n\
         # recorded once for your OVMF build, to the set if the enclave quotes them):\n\
         tpm_pcrs = [[{{ pcr = 4, sha256 = \"{p4}\" }}, {{ pcr = 9, sha256 = \"{p9}\" }}]]\n\
         [[models.{key}.tpm_boot]]\n\
         name = {name}\n\
         kernel_authenticode_sha256 = \"{ka}\"\n\
         initrd_sha256 = \"{ir}\"\n\
         cmdline = {cmd}\n",
        kernel = manifest.kernel.name,
        pkg = manifest
            .kernel_package
            .as_deref()
            .unwrap_or("unknown package"),
        mem = manifest.memory_mib,
        name = toml_str(&format!(
            "{}-{}",
            manifest.kernel.name,
            &m.initrd_sha256[..12]
        )),
        ka = m.kernel_authenticode_sha256,
        ir = m.initrd_sha256,
        cmd = toml_str(&m.cmdline),
        p4 = m.pcr4,
        p9 = m.pcr9,
    )
}
