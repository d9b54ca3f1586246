//! The client's own policy: which models and launch measurements it accepts, its TCB floor, and
//! whether development (simulated) evidence is acceptable. Data, evaluated by pure functions; an
//! empty allow-list allows nothing.
//!
//! TOML form (for the CLI):
//! ```toml
//! allow_dev = false
//! measurements = ["<96 hex chars: SNP MEASUREMENT>", "<hex: TPM PCR digest>"]
//! [[models]]
//! id = "smollm2-135m-instruct"
//! digest = "<64 hex chars: BLAKE3-256 of the model bundle>"
//! [tcb_floor]
//! bootloader = 3
//! tee = 0
//! snp = 8
//! microcode = 115
//! ```

use serde::{Deserialize, Serialize};

use confidant_attestation::snp::{TcbComponent, TcbVersion};

use crate::error::AttestError;

/// One allowed model: both the id and the digest must match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowedModel {
    pub id: String,
    /// BLAKE3-256 of the plaintext model bundle (the sealed header's model digest).
    #[serde(with = "hex_32")]
    pub digest: [u8; 32],
}

/// Component-wise SEV-SNP TCB minimum (AMD pub. 56860, `TCB_VERSION`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcbFloor {
    #[serde(default)]
    pub bootloader: u8,
    #[serde(default)]
    pub tee: u8,
    #[serde(default)]
    pub snp: u8,
    #[serde(default)]
    pub microcode: u8,
    /// Turin and later only; when set, a TCB without an FMC component is below the floor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fmc: Option<u8>,
}

impl TcbFloor {
    fn as_version(&self) -> TcbVersion {
        TcbVersion {
            bootloader: self.bootloader,
            tee: self.tee,
            snp: self.snp,
            microcode: self.microcode,
            fmc: self.fmc,
        }
    }

    /// Checks `tcb` meets this floor in every component.
    pub fn check(&self, tcb: &TcbVersion) -> Result<(), AttestError> {
        let floor = self.as_version();
        if tcb.meets(&floor) {
            return Ok(());
        }
        let below = |component: TcbComponent, found: u8, floor: u8| AttestError::TcbBelowFloor {
            component: component_name(component),
            found,
            floor,
        };
        Err(if tcb.bootloader < floor.bootloader {
            below(TcbComponent::Bootloader, tcb.bootloader, floor.bootloader)
        } else if tcb.tee < floor.tee {
            below(TcbComponent::Tee, tcb.tee, floor.tee)
        } else if tcb.snp < floor.snp {
            below(TcbComponent::Snp, tcb.snp, floor.snp)
        } else if tcb.microcode < floor.microcode {
            below(TcbComponent::Microcode, tcb.microcode, floor.microcode)
        } else {
            below(
                TcbComponent::Fmc,
                tcb.fmc.unwrap_or(0),
                floor.fmc.unwrap_or(0),
            )
        })
    }
}

fn component_name(c: TcbComponent) -> &'static str {
    match c {
        TcbComponent::Bootloader => "bootloader",
        TcbComponent::Tee => "tee",
        TcbComponent::Snp => "snp",
        TcbComponent::Microcode => "microcode",
        TcbComponent::Fmc => "fmc",
    }
}

/// What a client accepts. [`Default`] accepts nothing (and the builder refuses it).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientPolicy {
    /// Allowed (model id, model digest) pairs.
    #[serde(default)]
    pub models: Vec<AllowedModel>,
    /// Allowed launch measurements: SEV-SNP `MEASUREMENT` (48 bytes) or the TPM quote's PCR
    /// digest, as hex in TOML/JSON.
    #[serde(default, with = "hex_list")]
    pub measurements: Vec<Vec<u8>>,
    /// SEV-SNP TCB floor; `None` accepts any TCB the verifier accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcb_floor: Option<TcbFloor>,
    /// Accept evidence that chains to a development root. Never on by default.
    #[serde(default)]
    pub allow_dev: bool,
}

impl ClientPolicy {
    /// An empty policy (accepts nothing until models and measurements are added).
    pub fn new() -> Self {
        Self::default()
    }

    /// Allows one model (id and digest must both match).
    pub fn allow_model(mut self, id: impl Into<String>, digest: [u8; 32]) -> Self {
        self.models.push(AllowedModel {
            id: id.into(),
            digest,
        });
        self
    }

    /// Allows one launch measurement.
    pub fn allow_measurement(mut self, measurement: impl Into<Vec<u8>>) -> Self {
        self.measurements.push(measurement.into());
        self
    }

    /// Sets the TCB floor.
    pub fn tcb_floor(mut self, floor: TcbFloor) -> Self {
        self.tcb_floor = Some(floor);
        self
    }

    /// Accepts development evidence (simulated SNP). For tests and demos only.
    pub fn allow_dev(mut self, allow: bool) -> Self {
        self.allow_dev = allow;
        self
    }

    /// Parses the TOML form.
    pub fn from_toml(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }

    /// True when the policy would refuse every server.
    pub fn is_empty(&self) -> bool {
        self.models.is_empty() || self.measurements.is_empty()
    }

    /// The model id and digest are an allowed pair.
    pub fn check_model(&self, id: &str, digest: &[u8; 32]) -> Result<(), AttestError> {
        if self
            .models
            .iter()
            .any(|m| m.id == id && &m.digest == digest)
        {
            Ok(())
        } else {
            Err(AttestError::ModelNotAllowed {
                model_id: id.to_string(),
                model_digest: hex::encode(digest),
            })
        }
    }

    /// The measurement is allowed.
    pub fn check_measurement(&self, measurement: &[u8]) -> Result<(), AttestError> {
        if self
            .measurements
            .iter()
            .any(|m| m.as_slice() == measurement)
        {
            Ok(())
        } else {
            Err(AttestError::MeasurementNotAllowed(hex::encode(measurement)))
        }
    }

    /// The TCB meets the floor (if any).
    pub fn check_tcb(&self, tcb: Option<&TcbVersion>) -> Result<(), AttestError> {
        match (&self.tcb_floor, tcb) {
            (None, _) => Ok(()),
            (Some(floor), Some(tcb)) => floor.check(tcb),
            // A floor is set but the platform reports no SNP TCB (e.g. TPM): nothing to compare.
            (Some(_), None) => Ok(()),
        }
    }

    /// Development evidence only if allowed.
    pub fn check_dev(&self, dev: bool) -> Result<(), AttestError> {
        if dev && !self.allow_dev {
            Err(AttestError::DevNotAllowed)
        } else {
            Ok(())
        }
    }
}

mod hex_32 {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(v: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = String::deserialize(d)?;
        hex::decode(s)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| D::Error::custom("expected 64 hex characters"))
    }
}

mod hex_list {
    use serde::{Deserialize, Deserializer, Serializer, de::Error, ser::SerializeSeq};

    pub fn serialize<S: Serializer>(v: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(v.len()))?;
        for m in v {
            seq.serialize_element(&hex::encode(m))?;
        }
        seq.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
        let list = Vec::<String>::deserialize(d)?;
        list.into_iter()
            .map(|s| hex::decode(s).map_err(|_| D::Error::custom("expected hex")))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_policy_refuses_everything() {
        let p = ClientPolicy::new();
        assert!(p.is_empty());
        assert!(matches!(
            p.check_model("m", &[0; 32]),
            Err(AttestError::ModelNotAllowed { .. })
        ));
        assert!(matches!(
            p.check_measurement(&[1; 48]),
            Err(AttestError::MeasurementNotAllowed(_))
        ));
        assert!(matches!(p.check_dev(true), Err(AttestError::DevNotAllowed)));
        assert!(p.check_dev(false).is_ok());
    }

    #[test]
    fn model_needs_id_and_digest() {
        let p = ClientPolicy::new().allow_model("m", [1; 32]);
        assert!(p.check_model("m", &[1; 32]).is_ok());
        assert!(p.check_model("m", &[2; 32]).is_err());
        assert!(p.check_model("n", &[1; 32]).is_err());
    }

    #[test]
    fn tcb_floor_names_the_component() {
        let floor = TcbFloor {
            bootloader: 3,
            tee: 0,
            snp: 8,
            microcode: 115,
            fmc: None,
        };
        let p = ClientPolicy::new().tcb_floor(floor);
        let ok = TcbVersion {
            bootloader: 3,
            tee: 0,
            snp: 8,
            microcode: 115,
            fmc: None,
        };
        assert!(p.check_tcb(Some(&ok)).is_ok());
        let low = TcbVersion { snp: 7, ..ok };
        assert!(matches!(
            p.check_tcb(Some(&low)),
            Err(AttestError::TcbBelowFloor {
                component: "snp",
                found: 7,
                floor: 8
            })
        ));
    }

    #[test]
    fn toml_roundtrip() {
        let text = format!(
            "allow_dev = true\nmeasurements = [\"{}\"]\n[[models]]\nid = \"m\"\ndigest = \"{}\"\n[tcb_floor]\nsnp = 8\n",
            "ab".repeat(48),
            "cd".repeat(32)
        );
        let p = ClientPolicy::from_toml(&text).unwrap();
        assert!(p.allow_dev);
        assert_eq!(p.measurements, vec![vec![0xab; 48]]);
        assert_eq!(p.models[0].digest, [0xcd; 32]);
        assert_eq!(p.tcb_floor.unwrap().snp, 8);
        assert!(ClientPolicy::from_toml("unknown = 1").is_err());
    }
}
