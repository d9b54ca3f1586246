//! vCPU models and their CPUID signature, which QEMU/KVM put in EDX at reset and so in the VMSA.
//!
//! The family/model/stepping of each model are QEMU's (`builtin_x86_defs` in
//! `target/i386/cpu.c`; versioned names such as `EPYC-Milan-v2` keep their base model's values).
//! The signature packs them as `CPUID Fn0000_0001_EAX` does (AMD CPUID Specification, pub. 25481,
//! "Family, Model, Stepping Identifiers"): stepping in bits 3:0, the low model nibble in 7:4, the
//! base family in 11:8, the high model nibble in 19:16 and the extended family in 27:20, where a
//! family above 0xF is written as base 0xF plus extended `family - 0xF`.

/// A QEMU vCPU model known to run SEV-SNP guests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VcpuType {
    name: &'static str,
    family: u16,
    model: u8,
    stepping: u8,
}

const fn t(name: &'static str, family: u16, model: u8, stepping: u8) -> VcpuType {
    VcpuType {
        name,
        family,
        model,
        stepping,
    }
}

/// Every known model, in QEMU's order (its `-cpu help` names).
const TYPES: &[VcpuType] = &[
    t("EPYC", 23, 1, 2),
    t("EPYC-v1", 23, 1, 2),
    t("EPYC-v2", 23, 1, 2),
    t("EPYC-IBPB", 23, 1, 2),
    t("EPYC-v3", 23, 1, 2),
    t("EPYC-v4", 23, 1, 2),
    t("EPYC-Rome", 23, 49, 0),
    t("EPYC-Rome-v1", 23, 49, 0),
    t("EPYC-Rome-v2", 23, 49, 0),
    t("EPYC-Rome-v3", 23, 49, 0),
    t("EPYC-Milan", 25, 1, 1),
    t("EPYC-Milan-v1", 25, 1, 1),
    t("EPYC-Milan-v2", 25, 1, 1),
    t("EPYC-Genoa", 25, 17, 0),
    t("EPYC-Genoa-v1", 25, 17, 0),
    t("EPYC-Turin", 26, 0, 0),
];

impl VcpuType {
    /// The model called `name` (exact, case-sensitive, as QEMU's `-cpu` takes it).
    pub fn from_name(name: &str) -> Option<VcpuType> {
        TYPES.iter().copied().find(|t| t.name == name)
    }

    /// Every known model.
    pub fn all() -> &'static [VcpuType] {
        TYPES
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// `CPUID Fn0000_0001_EAX` of this model.
    pub fn signature(&self) -> u32 {
        let (base_family, ext_family) = if self.family > 0xF {
            (0xF, u32::from(self.family - 0xF) & 0xFF)
        } else {
            (u32::from(self.family), 0)
        };
        let model = u32::from(self.model);
        (ext_family << 20)
            | ((model >> 4) & 0xF) << 16
            | (base_family << 8)
            | (model & 0xF) << 4
            | (u32::from(self.stepping) & 0xF)
    }
}

impl std::fmt::Display for VcpuType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Signatures as the processors report them (Naples 0x00800F12, Rome 0x00830F10, Milan
    /// 0x00A00F11, Genoa 0x00A10F10, Turin 0x00B00F00).
    #[test]
    fn signatures_match_the_processors() {
        for (name, sig) in [
            ("EPYC-v4", 0x0080_0F12),
            ("EPYC-Rome", 0x0083_0F10),
            ("EPYC-Milan", 0x00A0_0F11),
            ("EPYC-Genoa", 0x00A1_0F10),
            ("EPYC-Turin", 0x00B0_0F00),
        ] {
            assert_eq!(
                VcpuType::from_name(name).map(|t| t.signature()),
                Some(sig),
                "{name}"
            );
        }
    }

    #[test]
    fn unknown_and_differently_cased_names_are_refused() {
        assert_eq!(VcpuType::from_name("epyc-milan"), None);
        assert_eq!(VcpuType::from_name("EPYC-Milan-v9"), None);
        assert_eq!(VcpuType::from_name(""), None);
    }
}
