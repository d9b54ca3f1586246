//! The expected SEV-SNP launch measurement of a VM, computed from its firmware image (and, for
//! measured direct boot, its kernel, initrd and command line) — the value an attestation report's
//! MEASUREMENT must equal, so that a policy's `snp_measurements` can be recomputed by anyone.
//!
//! The hypervisor builds the guest with `SNP_LAUNCH_UPDATE` calls, in this order (QEMU
//! `target/i386/sev.c`; AWS EC2 and GCE as noted):
//!
//! 1. the firmware image, NORMAL pages, ending at 4 GiB;
//! 2. each SEV metadata section the firmware declares, in its order: SNP_SEC_MEM as ZERO pages
//!    (GCE: UNMEASURED), SNP_SECRETS as the SECRETS page, CPUID as the CPUID page (EC2: after all
//!    other sections), SVSM_CAA as ZERO pages, SNP_KERNEL_HASHES as NORMAL pages holding the
//!    kernel hashes table at the table's offset within the page (or ZERO pages without a kernel);
//! 3. one VMSA page per vCPU: the bootstrap processor's, then each application processor's.
//!
//! Modules: [`ovmf`] decodes the firmware's layout (untrusted bytes), [`page_info`] is the digest
//! chain, [`vmsa`] the register pages, [`hashes`] the kernel hashes table, [`cpu`] the vCPU models.
//! The CLI is `confidant measure snp` (docs/snp-measure.md); the peer tool sev-snp-measure checks
//! it in `attestation/tests/snp_launch_peer.rs`.

pub mod cpu;
pub mod hashes;
pub mod ovmf;
pub mod page_info;
pub mod vmsa;

pub use cpu::VcpuType;
pub use hashes::{CmdlineNul, KernelHashes};
pub use ovmf::{OvmfError, OvmfImage, SectionKind};
pub use vmsa::{GuestFeatures, NotSnpActive, Vmm};

use hashes::PADDED_TABLE_LEN;
use page_info::{DIGEST_LEN, LaunchDigest, PAGE_SIZE, PageType, VMSA_GPA};

/// The most vCPUs accepted (KVM's `KVM_MAX_VCPUS` is at most 4096 on x86).
pub const MAX_VCPUS: u32 = 4096;

/// How the VM is launched, besides its firmware and kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaunchConfig {
    /// Number of vCPUs (each adds a VMSA page).
    pub vcpus: u32,
    pub vmm: Vmm,
    pub guest_features: GuestFeatures,
}

/// Why a launch measurement cannot be computed for otherwise well-formed inputs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LaunchError {
    #[error("{vcpus} vCPUs: must be 1 to {MAX_VCPUS}")]
    VcpuCount { vcpus: u32 },
    #[error(
        "a kernel was given but the firmware has no SNP_KERNEL_HASHES section, so QEMU cannot \
         measure the kernel, initrd and command line (use an AmdSev OVMF build, or boot without \
         --kernel)"
    )]
    NoKernelHashesSection,
    #[error(
        "a kernel was given but the firmware declares no SEV hash table area (GUID \
         7255371f-3a3b-4b04-927b-1da6efa8d454)"
    )]
    NoHashTableArea,
    #[error(
        "the firmware's hash table area ({base:#x}, {size} bytes) does not hold the \
         {PADDED_TABLE_LEN}-byte table inside the first page of its SNP_KERNEL_HASHES section at \
         {section_gpa:#x}"
    )]
    HashTableArea {
        base: u32,
        size: u32,
        section_gpa: u32,
    },
}

/// The launch measurement (MEASUREMENT of the attestation report) of `firmware` launched as
/// `config` says, with the kernel hashes table filled from `kernel` (QEMU `kernel-hashes=on`,
/// `-kernel/-initrd/-append`) or left zero (`None`).
pub fn launch_digest(
    firmware: &OvmfImage<'_>,
    config: &LaunchConfig,
    kernel: Option<&KernelHashes>,
) -> Result<[u8; DIGEST_LEN], LaunchError> {
    if config.vcpus == 0 || config.vcpus > MAX_VCPUS {
        return Err(LaunchError::VcpuCount {
            vcpus: config.vcpus,
        });
    }
    let hashes_page = match kernel {
        None => None,
        Some(k) => Some(kernel_hashes_pages(firmware, k)?),
    };

    let mut ld = LaunchDigest::new();
    ld.normal_pages(firmware.gpa(), firmware.bytes());

    let cpuid_last = config.vmm == Vmm::Ec2;
    for s in firmware.sections() {
        let gpa = u64::from(s.gpa);
        match s.kind {
            SectionKind::SnpSecMem if config.vmm == Vmm::Gce => {
                ld.contentless_pages(PageType::Unmeasured, gpa, s.pages())
            }
            SectionKind::SnpSecMem | SectionKind::SvsmCaa => {
                ld.contentless_pages(PageType::Zero, gpa, s.pages())
            }
            SectionKind::SnpSecrets => ld.contentless_pages(PageType::Secrets, gpa, 1),
            SectionKind::Cpuid if cpuid_last => {}
            SectionKind::Cpuid => ld.contentless_pages(PageType::Cpuid, gpa, 1),
            SectionKind::SnpKernelHashes => match &hashes_page {
                Some(pages) => ld.normal_pages(gpa, pages),
                None => ld.contentless_pages(PageType::Zero, gpa, s.pages()),
            },
        }
    }
    if cpuid_last {
        for s in firmware.sections() {
            if s.kind == SectionKind::Cpuid {
                ld.contentless_pages(PageType::Cpuid, u64::from(s.gpa), 1);
            }
        }
    }

    let bsp = vmsa::vmsa_page(config.vmm, vmsa::RESET_VECTOR, config.guest_features);
    ld.page(PageType::Vmsa, VMSA_GPA, &bsp);
    if config.vcpus > 1 {
        let ap = vmsa::vmsa_page(
            config.vmm,
            firmware.ap_reset_address(),
            config.guest_features,
        );
        for _ in 1..config.vcpus {
            ld.page(PageType::Vmsa, VMSA_GPA, &ap);
        }
    }
    Ok(ld.value())
}

/// The SNP_KERNEL_HASHES section's content: zero, with the table at the offset of the firmware's
/// hash table area within its page (QEMU `snp_launch_update_kernel_hashes`).
fn kernel_hashes_pages(
    firmware: &OvmfImage<'_>,
    kernel: &KernelHashes,
) -> Result<Vec<u8>, LaunchError> {
    let section = firmware
        .kernel_hashes_section()
        .ok_or(LaunchError::NoKernelHashesSection)?;
    let area = firmware
        .hash_table_area()
        .ok_or(LaunchError::NoHashTableArea)?;
    let offset = (area.base as usize) % PAGE_SIZE;
    let fits = area.size as usize >= PADDED_TABLE_LEN
        && u64::from(area.base) - offset as u64 == u64::from(section.gpa)
        && offset + PADDED_TABLE_LEN <= PAGE_SIZE;
    if !fits {
        return Err(LaunchError::HashTableArea {
            base: area.base,
            size: area.size,
            section_gpa: section.gpa,
        });
    }
    let mut pages = vec![0u8; section.size as usize];
    pages[offset..offset + PADDED_TABLE_LEN].copy_from_slice(&kernel.table());
    Ok(pages)
}
