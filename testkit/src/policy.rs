//! The development verifier policy, written once for every test suite: a policy (the format of
//! `docs/policy.example.toml`) that trusts the development SEV-SNP root of [`crate::dev_pki`] (the
//! simulated attester's) and allows one model on the given launch measurements.

/// SHA-256 (hex) of the development ARK (`ark.der` of [`crate::dev_pki`]): the policy's
/// `dev_root_ark_sha256`.
pub fn dev_ark_sha256() -> String {
    let der = std::fs::read(crate::dev_pki().join("ark.der")).expect("development ARK");
    hex::encode(ring::digest::digest(&ring::digest::SHA256, &der))
}

/// A TCB floor, component by component (`min_tcb`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcbFloor {
    pub bootloader: u8,
    pub tee: u8,
    pub snp: u8,
    pub microcode: u8,
}

impl TcbFloor {
    pub const fn new(bootloader: u8, tee: u8, snp: u8, microcode: u8) -> Self {
        Self {
            bootloader,
            tee,
            snp,
            microcode,
        }
    }
}

/// A policy allowing model `model_id` (with `digest`) on the SEV-SNP `measurements`, trusting the
/// development root (and `amd_products`, none unless set), with `allow_dev = true` unless changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevSnpPolicy {
    pub id: String,
    pub version: u64,
    pub model_id: String,
    pub digest: [u8; 32],
    pub measurements: Vec<[u8; 48]>,
    pub min_tcb: TcbFloor,
    /// AMD products whose pinned roots are trusted besides the development root.
    pub amd_products: Vec<String>,
    /// Whether development evidence is accepted for the model (`allow_dev`; true unless changed).
    pub allow_dev: bool,
    /// The names an enclave may have in its certificate (`tls_names`): where test enclaves
    /// listen, `localhost` and `127.0.0.1`, unless changed.
    pub tls_names: Vec<String>,
}

impl DevSnpPolicy {
    /// One model on one measurement, TCB floor zero, no AMD products.
    pub fn new(
        id: &str,
        version: u64,
        model_id: &str,
        digest: [u8; 32],
        measurement: [u8; 48],
    ) -> Self {
        Self {
            id: id.to_owned(),
            version,
            model_id: model_id.to_owned(),
            digest,
            measurements: vec![measurement],
            min_tcb: TcbFloor::default(),
            amd_products: Vec::new(),
            allow_dev: true,
            tls_names: vec!["localhost".to_owned(), "127.0.0.1".to_owned()],
        }
    }

    /// The policy as TOML.
    pub fn toml(&self) -> String {
        let list = |items: Vec<String>| {
            items
                .iter()
                .map(|s| format!("\"{s}\""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let t = self.min_tcb;
        format!(
            r#"id = "{id}"
version = {version}

[trust]
amd_products = [{products}]
dev_root_ark_sha256 = "{ark}"

[models."{model}"]
digest = "{digest}"
snp_measurements = [{measurements}]
min_tcb = {{ bootloader = {}, tee = {}, snp = {}, microcode = {} }}
allow_dev = {allow_dev}
tls_names = [{names}]
"#,
            t.bootloader,
            t.tee,
            t.snp,
            t.microcode,
            id = self.id,
            version = self.version,
            products = list(self.amd_products.clone()),
            ark = dev_ark_sha256(),
            model = self.model_id,
            digest = hex::encode(self.digest),
            measurements = list(self.measurements.iter().map(hex::encode).collect()),
            allow_dev = self.allow_dev,
            names = list(self.tls_names.clone()),
        )
    }
}
