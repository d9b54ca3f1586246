//! `TCB_VERSION` (AMD SEV-SNP Firmware ABI Specification, pub. 56860, "TCB_VERSION Structure"):
//! the security patch levels of the firmware components, packed into 8 bytes whose layout depends
//! on the processor generation.

use serde::Serialize;

use super::Product;

/// Byte layout of a packed `TCB_VERSION`.
///
/// - Milan and Genoa: byte 0 BOOT_LOADER, 1 TEE, 2..=5 reserved, 6 SNP, 7 MICROCODE.
/// - Turin and later: byte 0 FMC, 1 BOOT_LOADER, 2 TEE, 3 SNP, 4..=6 reserved, 7 MICROCODE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcbLayout {
    PreTurin,
    Turin,
}

impl TcbLayout {
    /// The layout the given product's firmware uses.
    pub fn for_product(product: Product) -> Self {
        match product {
            Product::Milan | Product::Genoa => TcbLayout::PreTurin,
            Product::Turin => TcbLayout::Turin,
        }
    }

    /// Byte indices (within the 8-byte value) that the layout reserves (must be zero).
    fn reserved(self) -> std::ops::Range<usize> {
        match self {
            TcbLayout::PreTurin => 2..6,
            TcbLayout::Turin => 4..7,
        }
    }
}

/// One component of a TCB version, named for error reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TcbComponent {
    Bootloader,
    Tee,
    Snp,
    Microcode,
    Fmc,
}

impl std::fmt::Display for TcbComponent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TcbComponent::Bootloader => "bootloader",
            TcbComponent::Tee => "tee",
            TcbComponent::Snp => "snp",
            TcbComponent::Microcode => "microcode",
            TcbComponent::Fmc => "fmc",
        })
    }
}

/// A decoded TCB version. `fmc` (firmware microcontroller SVN) exists on Turin and later only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct TcbVersion {
    pub bootloader: u8,
    pub tee: u8,
    pub snp: u8,
    pub microcode: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fmc: Option<u8>,
}

impl TcbVersion {
    /// Decodes a packed TCB version. Returns the index (0..8) of the first non-zero reserved byte
    /// as the error.
    pub fn decode(raw: [u8; 8], layout: TcbLayout) -> Result<Self, usize> {
        if let Some(i) = layout
            .reserved()
            .find(|&i| raw.get(i).is_some_and(|b| *b != 0))
        {
            return Err(i);
        }
        let [b0, b1, b2, b3, _, _, b6, b7] = raw;
        Ok(match layout {
            TcbLayout::PreTurin => TcbVersion {
                bootloader: b0,
                tee: b1,
                snp: b6,
                microcode: b7,
                fmc: None,
            },
            TcbLayout::Turin => TcbVersion {
                fmc: Some(b0),
                bootloader: b1,
                tee: b2,
                snp: b3,
                microcode: b7,
            },
        })
    }

    /// Packs this TCB version in `layout` (the inverse of [`TcbVersion::decode`]; a missing `fmc`
    /// encodes as 0 in the Turin layout, a present one is dropped in the pre-Turin layout).
    pub fn encode(&self, layout: TcbLayout) -> [u8; 8] {
        match layout {
            TcbLayout::PreTurin => [
                self.bootloader,
                self.tee,
                0,
                0,
                0,
                0,
                self.snp,
                self.microcode,
            ],
            TcbLayout::Turin => [
                self.fmc.unwrap_or(0),
                self.bootloader,
                self.tee,
                self.snp,
                0,
                0,
                0,
                self.microcode,
            ],
        }
    }

    /// Component-wise floor: true when every component is at least the floor's (see
    /// [`TcbVersion::first_below`]).
    pub fn meets(&self, floor: &TcbVersion) -> bool {
        self.first_below(floor).is_none()
    }

    /// The first component (bootloader, tee, snp, microcode, fmc) in which `self` is below
    /// `floor`: the one TCB comparison every check uses. A floor `fmc` requires this version to
    /// have an `fmc` at least as high; a floor without `fmc` ignores it.
    pub fn first_below(&self, floor: &TcbVersion) -> Option<TcbComponent> {
        if self.bootloader < floor.bootloader {
            Some(TcbComponent::Bootloader)
        } else if self.tee < floor.tee {
            Some(TcbComponent::Tee)
        } else if self.snp < floor.snp {
            Some(TcbComponent::Snp)
        } else if self.microcode < floor.microcode {
            Some(TcbComponent::Microcode)
        } else if floor.fmc.is_some_and(|f| self.fmc.is_none_or(|v| v < f)) {
            Some(TcbComponent::Fmc)
        } else {
            None
        }
    }

    /// The first component where `self` differs from `other`, if any.
    pub fn first_difference(&self, other: &TcbVersion) -> Option<TcbComponent> {
        if self.bootloader != other.bootloader {
            Some(TcbComponent::Bootloader)
        } else if self.tee != other.tee {
            Some(TcbComponent::Tee)
        } else if self.snp != other.snp {
            Some(TcbComponent::Snp)
        } else if self.microcode != other.microcode {
            Some(TcbComponent::Microcode)
        } else if self.fmc != other.fmc {
            Some(TcbComponent::Fmc)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcb(bl: u8, tee: u8, snp: u8, ucode: u8, fmc: Option<u8>) -> TcbVersion {
        TcbVersion {
            bootloader: bl,
            tee,
            snp,
            microcode: ucode,
            fmc,
        }
    }

    #[test]
    fn decodes_pre_turin_layout() {
        // Reported TCB of the virtee Milan report: 03 00 00 00 00 00 08 73.
        let raw = [3, 0, 0, 0, 0, 0, 8, 0x73];
        let t = TcbVersion::decode(raw, TcbLayout::PreTurin).unwrap();
        assert_eq!(t, tcb(3, 0, 8, 115, None));
        assert_eq!(t.encode(TcbLayout::PreTurin), raw);
    }

    #[test]
    fn decodes_turin_layout() {
        let raw = [1, 2, 3, 4, 0, 0, 0, 5];
        let t = TcbVersion::decode(raw, TcbLayout::Turin).unwrap();
        assert_eq!(t, tcb(2, 3, 4, 5, Some(1)));
        assert_eq!(t.encode(TcbLayout::Turin), raw);
    }

    #[test]
    fn reserved_bytes_must_be_zero() {
        for i in 2..6 {
            let mut raw = [0u8; 8];
            raw[i] = 1;
            assert_eq!(TcbVersion::decode(raw, TcbLayout::PreTurin), Err(i));
        }
        for i in 4..7 {
            let mut raw = [0u8; 8];
            raw[i] = 1;
            assert_eq!(TcbVersion::decode(raw, TcbLayout::Turin), Err(i));
        }
    }

    #[test]
    fn meets_is_component_wise() {
        let floor = tcb(3, 0, 8, 115, None);
        assert!(tcb(3, 0, 8, 115, None).meets(&floor));
        assert!(tcb(4, 1, 9, 200, Some(0)).meets(&floor));
        assert!(!tcb(2, 9, 9, 255, None).meets(&floor), "bootloader below");
        assert!(!tcb(9, 9, 7, 255, None).meets(&floor), "snp below");
        assert!(!tcb(9, 9, 9, 114, None).meets(&floor), "microcode below");
        let floor_fmc = tcb(0, 0, 0, 0, Some(2));
        assert!(!tcb(9, 9, 9, 9, None).meets(&floor_fmc), "fmc required");
        assert!(!tcb(9, 9, 9, 9, Some(1)).meets(&floor_fmc));
        assert!(tcb(0, 0, 0, 0, Some(2)).meets(&floor_fmc));
        assert_eq!(
            tcb(9, 9, 7, 255, None).first_below(&floor),
            Some(TcbComponent::Snp)
        );
        assert_eq!(
            tcb(9, 9, 9, 9, Some(1)).first_below(&floor_fmc),
            Some(TcbComponent::Fmc)
        );
        assert_eq!(tcb(3, 0, 8, 115, None).first_below(&floor), None);
    }
}
