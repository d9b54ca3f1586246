//! `confidant measure …`: compute reference values, for whoever maintains the policies.
//!
//! - `confidant measure sim --binary PATH`: the launch measurement the simulated SEV-SNP attester
//!   reports for that `confidant-enclave` build (SHA-384 of the executable file, as
//!   `enclave/src/tee.rs` computes it), as 96 hex digits.
//! - `confidant measure snp --ovmf FILE --vcpus N …`: the SEV-SNP launch measurement of a VM
//!   launched with that OVMF image (and, for measured direct boot, kernel, initrd and command
//!   line), as 96 hex digits; `--policy` prints it as a `snp_measurements` fragment
//!   (docs/snp-measure.md).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use confidant_attestation::snp::launch::{
    self, GuestFeatures, KernelHashes, LaunchConfig, OvmfImage, VcpuType, Vmm, ovmf,
};
use serde::Serialize;

#[derive(Debug, Subcommand)]
pub enum MeasureCommand {
    /// Launch measurement of a `confidant-enclave` executable under the simulated SEV-SNP TEE.
    Sim(SimArgs),
    /// SEV-SNP launch measurement of a VM from its OVMF image (and kernel, initrd, command line).
    Snp(SnpArgs),
}

#[derive(Debug, Args)]
pub struct SimArgs {
    /// The `confidant-enclave` executable the enclave will run.
    #[arg(long, value_name = "PATH")]
    binary: PathBuf,
}

#[derive(Debug, Args)]
pub struct SnpArgs {
    /// The OVMF image the VMM loads (QEMU `-bios FILE`).
    #[arg(long, value_name = "FILE")]
    ovmf: PathBuf,
    /// Number of vCPUs.
    #[arg(long, value_name = "N")]
    vcpus: u32,
    /// vCPU model as QEMU's `-cpu` names it (EPYC-v4, EPYC-Milan, EPYC-Genoa, ...). Required for
    /// qemu; refused for ec2 and gce, whose vCPUs do not start with the model's signature.
    #[arg(long, value_name = "NAME")]
    vcpu_type: Option<String>,
    /// The hypervisor that launches the VM.
    #[arg(long, value_enum, default_value_t = VmmType::Qemu)]
    vmm_type: VmmType,
    /// SEV_FEATURES of the vCPUs, hex (bit 0, SNPActive, is required; KVM hosts that enable
    /// DebugSwap launch with 0x21).
    #[arg(long, value_name = "HEX", default_value = "0x1")]
    guest_features: String,
    /// Kernel for measured direct boot (QEMU `-kernel` with `kernel-hashes=on`); the firmware
    /// must have the SNP kernel-hashes section.
    #[arg(long, value_name = "FILE")]
    kernel: Option<PathBuf>,
    /// Initrd (QEMU `-initrd`).
    #[arg(long, value_name = "FILE", requires = "kernel")]
    initrd: Option<PathBuf>,
    /// Kernel command line (QEMU `-append`).
    #[arg(long, value_name = "STR", requires = "kernel")]
    append: Option<String>,
    /// Print a `snp_measurements` fragment for a model of the verifier policy.
    #[arg(long)]
    policy: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum VmmType {
    Qemu,
    Ec2,
    Gce,
}

pub fn run(cmd: MeasureCommand) -> Result<()> {
    match cmd {
        MeasureCommand::Sim(args) => {
            println!("{}", hex::encode(sim_measurement(&args.binary)?));
            Ok(())
        }
        MeasureCommand::Snp(args) => snp(args),
    }
}

/// SHA-384 of the file: what the simulated attester puts in the report's MEASUREMENT field.
fn sim_measurement(binary: &Path) -> Result<[u8; 48]> {
    let bytes = std::fs::read(binary).with_context(|| format!("reading {}", binary.display()))?;
    let digest = ring::digest::digest(&ring::digest::SHA384, &bytes);
    let mut out = [0u8; 48];
    out.copy_from_slice(digest.as_ref());
    Ok(out)
}

fn snp(a: SnpArgs) -> Result<()> {
    let vmm = match (a.vmm_type, a.vcpu_type.as_deref()) {
        (VmmType::Qemu, Some(name)) => Vmm::Qemu {
            vcpu: VcpuType::from_name(name).with_context(|| {
                format!("unknown --vcpu-type {name:?}; known: {}", vcpu_names())
            })?,
        },
        (VmmType::Qemu, None) => bail!(
            "--vcpu-type is required with --vmm-type qemu (QEMU starts each vCPU with the \
             model's CPUID signature in EDX); known: {}",
            vcpu_names()
        ),
        (VmmType::Ec2 | VmmType::Gce, Some(_)) => bail!(
            "--vcpu-type does not apply to --vmm-type ec2 or gce (their vCPUs start with EDX \
             0x600 whatever the model); omit it"
        ),
        (VmmType::Ec2, None) => Vmm::Ec2,
        (VmmType::Gce, None) => Vmm::Gce,
    };
    let guest_features = GuestFeatures::new(parse_hex_u64(&a.guest_features)?)?;
    let config = LaunchConfig {
        vcpus: a.vcpus,
        vmm,
        guest_features,
    };

    let firmware = read_bounded(&a.ovmf, ovmf::MAX_FIRMWARE_LEN)?;
    let image =
        OvmfImage::parse(&firmware).with_context(|| format!("firmware {}", a.ovmf.display()))?;
    if image.sections().is_empty() {
        // Debian's OVMF_CODE_4M.fd, for one: the digest is still what such a launch measures.
        eprintln!(
            "confidant: warning: {} declares no SEV metadata (no SNP secrets or CPUID page): it \
             is probably not built to run as an SEV-SNP guest",
            a.ovmf.display()
        );
    }
    let boot = match &a.kernel {
        None => None,
        Some(k) => Some(KernelBoot::read(
            k,
            a.initrd.as_deref(),
            a.append.as_deref(),
        )?),
    };
    let digest = launch::launch_digest(&image, &config, boot.as_ref().map(|b| &b.hashes))?;
    let hex_digest = hex::encode(digest);

    if !a.policy {
        println!("{hex_digest}");
        return Ok(());
    }
    println!(
        "# confidant measure snp: OVMF sha256 {}, {} vCPU(s), {}, guest features {:#x}",
        sha256_hex(&firmware),
        a.vcpus,
        vmm,
        guest_features.bits()
    );
    match &boot {
        Some(b) => println!(
            "# kernel sha256 {}, initrd {}, append {:?}",
            b.kernel_sha256,
            b.initrd_sha256.as_deref().unwrap_or("none"),
            a.append.as_deref().unwrap_or("")
        ),
        None => println!("# no kernel hashes (firmware boots from disk or its own kernel)"),
    }
    println!("# Put under [models.\"<model id>\"] of the verifier policy, next to its min_tcb:");
    #[derive(Serialize)]
    struct Fragment {
        snp_measurements: Vec<String>,
    }
    print!(
        "{}",
        toml::to_string(&Fragment {
            snp_measurements: vec![hex_digest],
        })?
    );
    Ok(())
}

/// The measured direct-boot inputs, hashed.
struct KernelBoot {
    hashes: KernelHashes,
    kernel_sha256: String,
    initrd_sha256: Option<String>,
}

impl KernelBoot {
    fn read(kernel: &Path, initrd: Option<&Path>, append: Option<&str>) -> Result<Self> {
        let k = std::fs::read(kernel).with_context(|| format!("reading {}", kernel.display()))?;
        let i = initrd
            .map(|p| std::fs::read(p).with_context(|| format!("reading {}", p.display())))
            .transpose()?;
        Ok(KernelBoot {
            hashes: KernelHashes::new(&k, i.as_deref(), append)?,
            kernel_sha256: sha256_hex(&k),
            initrd_sha256: i.as_deref().map(sha256_hex),
        })
    }
}

fn vcpu_names() -> String {
    VcpuType::all()
        .iter()
        .map(|t| t.name())
        .collect::<Vec<_>>()
        .join(", ")
}

fn parse_hex_u64(s: &str) -> Result<u64> {
    let digits = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    u64::from_str_radix(digits, 16).with_context(|| format!("--guest-features {s:?} is not hex"))
}

/// Reads at most `max` bytes of `path`, refusing a larger file before reading it.
fn read_bounded(path: &Path, max: usize) -> Result<Vec<u8>> {
    use std::io::Read;
    let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut bytes = Vec::new();
    f.take(max as u64 + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {}", path.display()))?;
    if bytes.len() > max {
        bail!("{} is larger than {max} bytes", path.display());
    }
    Ok(bytes)
}

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, b))
}
