//! The policy file as written (TOML, every table `deny_unknown_fields`) and its validation into the
//! typed [`Policy`]. See `docs/policy.example.toml` for the documented format.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use super::{BootImageRef, ModelPolicy, PcrSet, Policy, PolicyError, SnpRules, Trust};
use crate::digest::Blake3Digest;
use crate::names::SubjectName;
use crate::snp::{Product, TcbVersion};

/// Largest policy file accepted.
pub const MAX_POLICY_TOML: usize = 1024 * 1024;
/// Most names a model's `tls_names` may list (and a certificate may carry).
pub const MAX_TLS_NAMES: usize = 16;
/// Highest PCR index of a TPM 2.0 PC-client platform (PCRs 0..=23).
const MAX_PCR: u8 = 23;
/// Longest policy id and model id.
const MAX_ID_LEN: usize = 128;
/// Longest `tpm_boot` command line (Linux's x86 COMMAND_LINE_SIZE is 2048) and name.
const MAX_CMDLINE_LEN: usize = 4096;
const MAX_BOOT_NAME_LEN: usize = 128;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    id: String,
    version: u64,
    #[serde(default)]
    trust: RawTrust,
    #[serde(default)]
    revoked_measurements: Vec<String>,
    #[serde(default)]
    models: BTreeMap<String, RawModel>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTrust {
    #[serde(default)]
    amd_products: Vec<RawProduct>,
    #[serde(default)]
    dev_root_ark_sha256: Option<String>,
    #[serde(default)]
    tpm_aks_spki_sha256: Vec<String>,
    /// Inline PEM certificates of the CAs whose EK certificates are trusted (credential
    /// activation).
    #[serde(default)]
    tpm_ek_ca_certs: Vec<String>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum RawProduct {
    Milan,
    Genoa,
    Turin,
}

impl From<RawProduct> for Product {
    fn from(p: RawProduct) -> Self {
        match p {
            RawProduct::Milan => Product::Milan,
            RawProduct::Genoa => Product::Genoa,
            RawProduct::Turin => Product::Turin,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModel {
    digest: String,
    #[serde(default)]
    snp_measurements: Vec<String>,
    #[serde(default)]
    tpm_pcrs: Vec<Vec<RawPcr>>,
    #[serde(default)]
    tpm_boot: Vec<RawBoot>,
    #[serde(default)]
    min_tcb: Option<RawTcb>,
    #[serde(default)]
    min_guest_svn: u32,
    #[serde(default)]
    allowed_vmpl: Option<Vec<u32>>,
    #[serde(default)]
    allow_migration_agent: bool,
    #[serde(default)]
    allow_masked_chip_id: bool,
    #[serde(default)]
    allow_masked_chip_key: bool,
    #[serde(default)]
    allow_dev: bool,
    #[serde(default)]
    tls_names: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPcr {
    pcr: u8,
    sha256: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBoot {
    #[serde(default)]
    name: Option<String>,
    kernel_authenticode_sha256: String,
    initrd_sha256: String,
    cmdline: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTcb {
    bootloader: u8,
    tee: u8,
    snp: u8,
    microcode: u8,
    #[serde(default)]
    fmc: Option<u8>,
}

/// Parses and validates a policy. Pure: no I/O.
pub(super) fn parse(text: &str) -> Result<Policy, PolicyError> {
    if text.len() > MAX_POLICY_TOML {
        return Err(PolicyError::TooLarge(text.len()));
    }
    let raw: RawPolicy =
        toml::from_str(text).map_err(|e| PolicyError::Parse(e.message().to_string()))?;
    validate(raw)
}

fn validate(raw: RawPolicy) -> Result<Policy, PolicyError> {
    check_id("id", &raw.id)?;

    let mut amd_products = Vec::new();
    for p in raw.trust.amd_products.iter().copied().map(Product::from) {
        if amd_products.contains(&p) {
            return Err(PolicyError::invalid(
                "trust.amd_products",
                "lists a product twice",
            ));
        }
        amd_products.push(p);
    }
    let dev_root_ark_sha256 = raw
        .trust
        .dev_root_ark_sha256
        .as_deref()
        .map(|h| hex_array::<32>("trust.dev_root_ark_sha256", h))
        .transpose()?;
    let tpm_aks_spki_sha256 = raw
        .trust
        .tpm_aks_spki_sha256
        .iter()
        .map(|h| hex_array::<32>("trust.tpm_aks_spki_sha256", h))
        .collect::<Result<BTreeSet<_>, _>>()?;
    let tpm_ek_ca_certs_der = ek_ca_certs(&raw.trust.tpm_ek_ca_certs)?;

    let revoked_measurements = raw
        .revoked_measurements
        .iter()
        .map(|h| {
            let bytes = hex_vec("revoked_measurements", h)?;
            if bytes.len() == 48 || bytes.len() == 32 {
                Ok(bytes)
            } else {
                Err(PolicyError::invalid(
                    "revoked_measurements",
                    "must be 48 bytes (SEV-SNP) or 32 bytes (TPM PCR composite) of hex",
                ))
            }
        })
        .collect::<Result<BTreeSet<_>, _>>()?;

    let mut models = BTreeMap::new();
    for (id, m) in raw.models {
        check_id("models", &id)?;
        let model = validate_model(&id, m)?;
        models.insert(id, model);
    }

    Ok(Policy {
        id: raw.id,
        version: raw.version,
        trust: Trust {
            amd_products,
            dev_root_ark_sha256,
            tpm_aks_spki_sha256,
            tpm_ek_ca_certs_der,
        },
        revoked_measurements,
        models,
    })
}

fn validate_model(id: &str, m: RawModel) -> Result<ModelPolicy, PolicyError> {
    let field = |name: &str| format!("models.\"{id}\".{name}");
    let digest = Blake3Digest::from_bytes(hex_array::<32>(&field("digest"), &m.digest)?);

    let snp_rules_set = m.min_tcb.is_some()
        || m.allowed_vmpl.is_some()
        || m.min_guest_svn != 0
        || m.allow_migration_agent
        || m.allow_masked_chip_id
        || m.allow_masked_chip_key;
    let snp = if m.snp_measurements.is_empty() {
        if snp_rules_set {
            // Rules without measurements are a half-written policy: refuse to load it.
            return Err(PolicyError::invalid(
                field("snp_measurements"),
                "SEV-SNP rules are set but no measurement is allowed",
            ));
        }
        None
    } else {
        let measurements = m
            .snp_measurements
            .iter()
            .map(|h| hex_array::<48>(&field("snp_measurements"), h))
            .collect::<Result<BTreeSet<_>, _>>()?;
        // A missing floor would silently accept any firmware: make it mandatory.
        let t = m.min_tcb.ok_or_else(|| {
            PolicyError::invalid(field("min_tcb"), "is required when snp_measurements is set")
        })?;
        let allowed_vmpl: BTreeSet<u32> = match m.allowed_vmpl {
            None => BTreeSet::from([0]),
            Some(v) => v.into_iter().collect(),
        };
        if allowed_vmpl.is_empty() || allowed_vmpl.iter().any(|v| *v > 3) {
            return Err(PolicyError::invalid(
                field("allowed_vmpl"),
                "must list one or more VMPLs in 0..=3",
            ));
        }
        Some(SnpRules {
            measurements,
            min_tcb: TcbVersion {
                bootloader: t.bootloader,
                tee: t.tee,
                snp: t.snp,
                microcode: t.microcode,
                fmc: t.fmc,
            },
            min_guest_svn: m.min_guest_svn,
            allowed_vmpl,
            allow_migration_agent: m.allow_migration_agent,
            allow_masked_chip_id: m.allow_masked_chip_id,
            allow_masked_chip_key: m.allow_masked_chip_key,
        })
    };

    let mut tpm_pcr_sets = Vec::new();
    for set in m.tpm_pcrs {
        if set.is_empty() {
            return Err(PolicyError::invalid(
                field("tpm_pcrs"),
                "an empty PCR set would allow any quote",
            ));
        }
        let mut pcrs = BTreeMap::new();
        for p in set {
            if p.pcr > MAX_PCR {
                return Err(PolicyError::invalid(
                    field("tpm_pcrs"),
                    "PCR index above 23",
                ));
            }
            let value = hex_array::<32>(&field("tpm_pcrs"), &p.sha256)?;
            if pcrs.insert(p.pcr, value).is_some() {
                return Err(PolicyError::invalid(
                    field("tpm_pcrs"),
                    "a PCR appears twice in one set",
                ));
            }
        }
        tpm_pcr_sets.push(PcrSet(pcrs));
    }

    if !m.tpm_boot.is_empty() && tpm_pcr_sets.is_empty() {
        // Boot images without PCR sets would never be reached: a half-written policy.
        return Err(PolicyError::invalid(
            field("tpm_boot"),
            "boot images are listed but no tpm_pcrs set allows TPM evidence",
        ));
    }
    let mut tpm_boot = Vec::new();
    for b in m.tpm_boot {
        if b.cmdline.len() > MAX_CMDLINE_LEN || b.cmdline.contains('\0') {
            return Err(PolicyError::invalid(
                field("tpm_boot.cmdline"),
                "must be at most 4096 bytes without NUL",
            ));
        }
        if b.name
            .as_ref()
            .is_some_and(|n| n.is_empty() || n.len() > MAX_BOOT_NAME_LEN)
        {
            return Err(PolicyError::invalid(
                field("tpm_boot.name"),
                "must be 1..=128 bytes",
            ));
        }
        let image = BootImageRef {
            name: b.name,
            kernel_authenticode_sha256: hex_array::<32>(
                &field("tpm_boot.kernel_authenticode_sha256"),
                &b.kernel_authenticode_sha256,
            )?,
            initrd_sha256: hex_array::<32>(&field("tpm_boot.initrd_sha256"), &b.initrd_sha256)?,
            cmdline: b.cmdline,
        };
        if tpm_boot.contains(&image) {
            return Err(PolicyError::invalid(
                field("tpm_boot"),
                "lists the same boot image twice",
            ));
        }
        tpm_boot.push(image);
    }

    let tls_names = tls_names(&field("tls_names"), &m.tls_names)?;

    Ok(ModelPolicy {
        digest,
        snp,
        tpm_pcr_sets,
        tpm_boot,
        allow_dev: m.allow_dev,
        tls_names,
    })
}

/// `tls_names`: IP addresses or DNS host names, each once, at most [`MAX_TLS_NAMES`].
fn tls_names(field: &str, names: &[String]) -> Result<Vec<SubjectName>, PolicyError> {
    if names.len() > MAX_TLS_NAMES {
        return Err(PolicyError::invalid(field, "lists more than 16 names"));
    }
    let mut out: Vec<SubjectName> = Vec::with_capacity(names.len());
    for text in names {
        let name = SubjectName::parse(text).map_err(|_| {
            PolicyError::invalid(
                field,
                "holds a name that is neither an IP address nor a DNS host name (no wildcards)",
            )
        })?;
        if out.contains(&name) {
            return Err(PolicyError::invalid(field, "lists a name twice"));
        }
        out.push(name);
    }
    Ok(out)
}

/// `trust.tpm_ek_ca_certs`: each entry is PEM text holding one or more `CERTIFICATE` blocks,
/// each a well-formed DER X.509 certificate.
fn ek_ca_certs(entries: &[String]) -> Result<Vec<Vec<u8>>, PolicyError> {
    const FIELD: &str = "trust.tpm_ek_ca_certs";
    let mut out: Vec<Vec<u8>> = Vec::new();
    for entry in entries {
        let blocks = pem::parse_many(entry.as_bytes())
            .map_err(|_| PolicyError::invalid(FIELD, "is not PEM text"))?;
        if blocks.is_empty() {
            return Err(PolicyError::invalid(
                FIELD,
                "an entry holds no PEM CERTIFICATE block",
            ));
        }
        for block in blocks {
            if block.tag() != "CERTIFICATE" {
                return Err(PolicyError::invalid(
                    FIELD,
                    "holds a PEM block that is not a CERTIFICATE",
                ));
            }
            let der = block.into_contents();
            if x509_parser::parse_x509_certificate(&der).is_err() {
                return Err(PolicyError::invalid(
                    FIELD,
                    "holds a certificate that is not well-formed DER X.509",
                ));
            }
            if !out.contains(&der) {
                out.push(der);
            }
        }
    }
    Ok(out)
}

fn check_id(field: &str, id: &str) -> Result<(), PolicyError> {
    let ok = !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'/'));
    if ok {
        Ok(())
    } else {
        Err(PolicyError::invalid(
            field,
            "ids are 1..=128 characters of A-Z a-z 0-9 - _ . : /",
        ))
    }
}

fn hex_vec(field: &str, h: &str) -> Result<Vec<u8>, PolicyError> {
    hex::decode(h).map_err(|_| PolicyError::invalid(field, "is not hex"))
}

fn hex_array<const N: usize>(field: &str, h: &str) -> Result<[u8; N], PolicyError> {
    let reason = match N {
        32 => "must be 32 bytes (64 hex digits)",
        48 => "must be 48 bytes (96 hex digits)",
        _ => "has the wrong length",
    };
    hex_vec(field, h)?
        .try_into()
        .map_err(|_| PolicyError::invalid(field, reason))
}
