//! The VMSA page of each vCPU at launch: the initial register state, measured by content.
//!
//! Layout: AMD64 Architecture Programmer's Manual Vol. 2 (pub. 24593), Appendix B, Table B-4
//! "VMSA Layout, State Save Area for SEV-ES" (Linux `struct sev_es_save_area`). A segment
//! register is `selector u16 ‖ attrib u16 ‖ limit u32 ‖ base u64`, its attributes in the VMCB's
//! compressed form. Every field not set below is zero.
//!
//! Values: the x86 reset state (APM Vol. 2 §14.1.3, "Processor Initialization State": CS selector
//! 0xF000, real mode, DR6 0xFFFF0FF0, DR7 0x400, RFLAGS 0x2, XCR0 1, PAT 0x0007040600070406, EDX
//! the CPUID signature) as KVM sets it (it also sets EFER.SVME and CR4.MCE: EFER 0x1000, CR4 0x40,
//! CR0 0x10) and QEMU syncs it (MXCSR 0x1F80, x87 FCW 0x37F). The bootstrap processor starts at
//! the reset vector 0xFFFFFFF0, application processors at the firmware's SEV-ES reset address.
//! AWS EC2 and Google GCE lay the same page out differently; their values are those the peer tool
//! sev-snp-measure 0.0.13 records for them (`vmsa.py`): EDX 0x600 (KVM's reset EDX when no CPUID
//! is set, Linux `kvm_vcpu_reset`), no FPU defaults, other segment attributes on EC2, and GCE's own
//! PAT.

use super::cpu::VcpuType;
use super::page_info::PAGE_SIZE;

/// The architectural reset vector, where the bootstrap processor starts.
pub const RESET_VECTOR: u32 = 0xFFFF_FFF0;

/// The hypervisor that lays out the VMSA pages and adds the firmware's pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vmm {
    /// QEMU/KVM, with `-cpu` naming the vCPU model (its signature goes into EDX).
    Qemu { vcpu: VcpuType },
    /// AWS EC2 (Nitro).
    Ec2,
    /// Google Compute Engine.
    Gce,
}

impl std::fmt::Display for Vmm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Vmm::Qemu { vcpu } => write!(f, "qemu (-cpu {vcpu})"),
            Vmm::Ec2 => f.write_str("ec2"),
            Vmm::Gce => f.write_str("gce"),
        }
    }
}

/// The VMSA's SEV_FEATURES (APM Vol. 2 §15.35.3, "SEV_FEATURES"): bit 0 SNPActive (required for
/// an SNP guest), bit 5 DebugSwap (set by KVM when the host enables it), ... The guest can read
/// the value back from `SEV_STATUS` MSR bits 63:2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestFeatures(u64);

/// SEV_FEATURES without SNPActive: the SNP firmware refuses such a VMSA for an SNP guest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("guest features {0:#x} lack bit 0 (SNPActive), which every SEV-SNP vCPU has")]
pub struct NotSnpActive(pub u64);

impl GuestFeatures {
    pub const SNP_ACTIVE: u64 = 1;

    pub fn new(bits: u64) -> Result<Self, NotSnpActive> {
        if bits & Self::SNP_ACTIVE == 0 {
            return Err(NotSnpActive(bits));
        }
        Ok(GuestFeatures(bits))
    }

    pub fn bits(&self) -> u64 {
        self.0
    }
}

impl Default for GuestFeatures {
    /// SNPActive alone.
    fn default() -> Self {
        GuestFeatures(Self::SNP_ACTIVE)
    }
}

/// Byte offsets in the VMSA (APM Vol. 2 Table B-4).
mod offset {
    pub const ES: usize = 0x000;
    pub const CS: usize = 0x010;
    pub const SS: usize = 0x020;
    pub const DS: usize = 0x030;
    pub const FS: usize = 0x040;
    pub const GS: usize = 0x050;
    pub const GDTR: usize = 0x060;
    pub const LDTR: usize = 0x070;
    pub const IDTR: usize = 0x080;
    pub const TR: usize = 0x090;
    pub const EFER: usize = 0x0D0;
    pub const CR4: usize = 0x148;
    pub const CR0: usize = 0x158;
    pub const DR7: usize = 0x160;
    pub const DR6: usize = 0x168;
    pub const RFLAGS: usize = 0x170;
    pub const RIP: usize = 0x178;
    pub const G_PAT: usize = 0x268;
    pub const RDX: usize = 0x310;
    pub const SEV_FEATURES: usize = 0x3B0;
    pub const XCR0: usize = 0x3E8;
    pub const MXCSR: usize = 0x408;
    pub const X87_FCW: usize = 0x410;
}

/// Segment attributes (VMCB form): present, DPL 0, S; type in the low nibble.
const DATA_RW_ACCESSED: u16 = 0x93;
const DATA_RW: u16 = 0x92;
const CODE_RX_ACCESSED: u16 = 0x9B;
const CODE_RX: u16 = 0x9A;
const LDT: u16 = 0x82;
const TSS_BUSY_32: u16 = 0x8B;
const TSS_BUSY_16: u16 = 0x83;

const PAT_RESET: u64 = 0x0007_0406_0007_0406;
const PAT_GCE: u64 = 0x0007_0106;
/// KVM's reset EDX when no CPUID leaf 1 is configured.
const EDX_NO_CPUID: u64 = 0x600;

/// The VMSA page of a vCPU starting at `eip` (the reset vector for the BSP, the firmware's SEV-ES
/// reset address for APs).
pub fn vmsa_page(vmm: Vmm, eip: u32, features: GuestFeatures) -> Box<[u8; PAGE_SIZE]> {
    let mut p = Box::new([0u8; PAGE_SIZE]);
    let (cs_attr, ss_attr, tr_attr, rdx, mxcsr, fcw, pat) = match vmm {
        Vmm::Qemu { vcpu } => (
            CODE_RX_ACCESSED,
            DATA_RW_ACCESSED,
            TSS_BUSY_32,
            u64::from(vcpu.signature()),
            0x1F80,
            0x37F,
            PAT_RESET,
        ),
        Vmm::Ec2 => (
            if eip == RESET_VECTOR {
                CODE_RX
            } else {
                CODE_RX_ACCESSED
            },
            DATA_RW,
            TSS_BUSY_16,
            EDX_NO_CPUID,
            0,
            0,
            PAT_RESET,
        ),
        Vmm::Gce => (
            CODE_RX_ACCESSED,
            DATA_RW_ACCESSED,
            TSS_BUSY_32,
            EDX_NO_CPUID,
            0,
            0,
            PAT_GCE,
        ),
    };
    let seg = |p: &mut [u8; PAGE_SIZE], at: usize, selector: u16, attrib: u16, base: u64| {
        p[at..at + 2].copy_from_slice(&selector.to_le_bytes());
        p[at + 2..at + 4].copy_from_slice(&attrib.to_le_bytes());
        p[at + 4..at + 8].copy_from_slice(&0xFFFFu32.to_le_bytes());
        p[at + 8..at + 16].copy_from_slice(&base.to_le_bytes());
    };
    for at in [offset::ES, offset::DS, offset::FS, offset::GS] {
        seg(&mut p, at, 0, DATA_RW_ACCESSED, 0);
    }
    seg(
        &mut p,
        offset::CS,
        0xF000,
        cs_attr,
        u64::from(eip & 0xFFFF_0000),
    );
    seg(&mut p, offset::SS, 0, ss_attr, 0);
    seg(&mut p, offset::GDTR, 0, 0, 0);
    seg(&mut p, offset::IDTR, 0, 0, 0);
    seg(&mut p, offset::LDTR, 0, LDT, 0);
    seg(&mut p, offset::TR, 0, tr_attr, 0);

    let mut u64_at = |at: usize, v: u64| p[at..at + 8].copy_from_slice(&v.to_le_bytes());
    u64_at(offset::EFER, 0x1000);
    u64_at(offset::CR4, 0x40);
    u64_at(offset::CR0, 0x10);
    u64_at(offset::DR7, 0x400);
    u64_at(offset::DR6, 0xFFFF_0FF0);
    u64_at(offset::RFLAGS, 0x2);
    u64_at(offset::RIP, u64::from(eip & 0xFFFF));
    u64_at(offset::G_PAT, pat);
    u64_at(offset::RDX, rdx);
    u64_at(offset::SEV_FEATURES, features.bits());
    u64_at(offset::XCR0, 0x1);
    p[offset::MXCSR..offset::MXCSR + 4].copy_from_slice(&(mxcsr as u32).to_le_bytes());
    p[offset::X87_FCW..offset::X87_FCW + 2].copy_from_slice(&(fcw as u16).to_le_bytes());
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u64_at(p: &[u8; PAGE_SIZE], at: usize) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&p[at..at + 8]);
        u64::from_le_bytes(b)
    }

    #[test]
    fn qemu_bsp_and_ap_registers() {
        let milan = VcpuType::from_name("EPYC-Milan").expect("known");
        let qemu = Vmm::Qemu { vcpu: milan };
        let f = GuestFeatures::new(0x21).expect("SNPActive");
        let bsp = vmsa_page(qemu, RESET_VECTOR, f);
        assert_eq!(&bsp[offset::CS..offset::CS + 4], &[0x00, 0xF0, 0x9B, 0x00]);
        assert_eq!(u64_at(&bsp, offset::CS + 8), 0xFFFF_0000);
        assert_eq!(u64_at(&bsp, offset::RIP), 0xFFF0);
        assert_eq!(u64_at(&bsp, offset::RDX), 0x00A0_0F11);
        assert_eq!(u64_at(&bsp, offset::SEV_FEATURES), 0x21);
        let ap = vmsa_page(qemu, 0x0080_B004, f);
        assert_eq!(u64_at(&ap, offset::CS + 8), 0x0080_0000);
        assert_eq!(u64_at(&ap, offset::RIP), 0xB004);
    }

    #[test]
    fn vmms_differ() {
        let v = VcpuType::from_name("EPYC-v4").expect("known");
        let f = GuestFeatures::default();
        let q = vmsa_page(Vmm::Qemu { vcpu: v }, RESET_VECTOR, f);
        let e = vmsa_page(Vmm::Ec2, RESET_VECTOR, f);
        let g = vmsa_page(Vmm::Gce, RESET_VECTOR, f);
        assert_ne!(q, e);
        assert_ne!(q, g);
        assert_ne!(e, g);
        assert_eq!(u64_at(&e, offset::RDX), 0x600);
        assert_eq!(e[offset::CS + 2], 0x9A);
        assert_eq!(vmsa_page(Vmm::Ec2, 0x0080_B004, f)[offset::CS + 2], 0x9B);
        assert_eq!(u64_at(&g, offset::G_PAT), 0x0007_0106);
    }

    #[test]
    fn guest_features_need_snp_active() {
        assert_eq!(GuestFeatures::new(0x20), Err(NotSnpActive(0x20)));
        assert_eq!(GuestFeatures::default().bits(), 1);
    }
}
