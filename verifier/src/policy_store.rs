//! The policy in force, its trust anchors, and its replacement.
//!
//! A new policy (from `PUT /v1/admin/policy` or a measurement revocation) takes effect only
//! after it parsed and validated, its version is higher than the current one, its trust anchors
//! could be built, and it was written to disk (atomically). Appraisals in flight keep the policy
//! they started with; the next one sees the new one.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use confidant_attestation::policy::{Policy, PolicyError};
use confidant_attestation::verify::TrustAnchors;
use confidant_service::secrets::write_secret_file;

/// Why a policy could not be loaded or replaced.
#[derive(Debug, thiserror::Error)]
pub enum PolicyStoreError {
    #[error("policy: {0}")]
    Policy(#[from] PolicyError),
    #[error("policy version {new} is not above the current version {current}")]
    VersionNotIncreased { current: u64, new: u64 },
    #[error("{path}: {detail}")]
    Io { path: PathBuf, detail: String },
    #[error("development root file {0} is neither DER nor a PEM certificate")]
    DevRoot(PathBuf),
    #[error("measurement must be 48 bytes (SEV-SNP) or 32 bytes (TPM PCR composite)")]
    BadMeasurement,
}

impl PolicyStoreError {
    /// Stable code for the wire.
    pub fn code(&self) -> &'static str {
        match self {
            PolicyStoreError::Policy(e) => e.code(),
            PolicyStoreError::VersionNotIncreased { .. } => "policy_version_not_increased",
            PolicyStoreError::BadMeasurement => "invalid_measurement",
            PolicyStoreError::Io { .. } | PolicyStoreError::DevRoot(_) => "internal",
        }
    }
}

/// A policy with its source text and the trust anchors it implies.
#[derive(Debug)]
pub struct ActivePolicy {
    pub policy: Policy,
    pub text: String,
    pub anchors: TrustAnchors,
}

/// The policy store.
#[derive(Debug)]
pub struct PolicyStore {
    path: PathBuf,
    dev_root: Option<(Vec<u8>, Vec<u8>)>,
    current: RwLock<Arc<ActivePolicy>>,
    /// Serialises replacements (read-modify-write of the version).
    writer: Mutex<()>,
}

pub(crate) fn read_der(path: &Path) -> Result<Vec<u8>, PolicyStoreError> {
    let bytes = std::fs::read(path).map_err(|e| PolicyStoreError::Io {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })?;
    if bytes.starts_with(b"-----BEGIN") {
        let p = pem::parse(&bytes).map_err(|_| PolicyStoreError::DevRoot(path.to_path_buf()))?;
        if p.tag() != "CERTIFICATE" {
            return Err(PolicyStoreError::DevRoot(path.to_path_buf()));
        }
        return Ok(p.into_contents());
    }
    Ok(bytes)
}

impl PolicyStore {
    /// The policy file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Loads the policy file and, if configured, the development ARK/ASK.
    pub fn open(
        path: &Path,
        dev_ark: Option<&Path>,
        dev_ask: Option<&Path>,
    ) -> Result<Self, PolicyStoreError> {
        let dev_root = match (dev_ark, dev_ask) {
            (Some(ark), Some(ask)) => Some((read_der(ark)?, read_der(ask)?)),
            _ => None,
        };
        let text = std::fs::read_to_string(path).map_err(|e| PolicyStoreError::Io {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
        let active = Self::activate(&dev_root, text)?;
        Ok(Self {
            path: path.to_path_buf(),
            dev_root,
            current: RwLock::new(Arc::new(active)),
            writer: Mutex::new(()),
        })
    }

    fn activate(
        dev_root: &Option<(Vec<u8>, Vec<u8>)>,
        text: String,
    ) -> Result<ActivePolicy, PolicyStoreError> {
        let policy = Policy::from_toml(&text)?;
        let (ark, ask) = match dev_root {
            Some((ark, ask)) if policy.trust().dev_root_ark_sha256.is_some() => {
                (Some(ark.as_slice()), Some(ask.as_slice()))
            }
            _ => (None, None),
        };
        let anchors = policy.trust_anchors(ark, ask)?;
        Ok(ActivePolicy {
            policy,
            text,
            anchors,
        })
    }

    /// The policy in force.
    pub fn current(&self) -> Arc<ActivePolicy> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Validates and installs `text`. Blocking (fsync).
    pub fn replace(&self, text: String) -> Result<Arc<ActivePolicy>, PolicyStoreError> {
        let _guard = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let next = Self::activate(&self.dev_root, text)?;
        let current = self.current().policy.version();
        if next.policy.version() <= current {
            return Err(PolicyStoreError::VersionNotIncreased {
                current,
                new: next.policy.version(),
            });
        }
        write_secret_file(&self.path, next.text.as_bytes()).map_err(|e| PolicyStoreError::Io {
            path: self.path.clone(),
            detail: e.to_string(),
        })?;
        let next = Arc::new(next);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = next.clone();
        Ok(next)
    }

    /// Adds `measurement` to the policy's `revoked_measurements` and installs the result as the
    /// next version, at once. Blocking (fsync).
    pub fn revoke_measurement(
        &self,
        measurement: &[u8],
    ) -> Result<Arc<ActivePolicy>, PolicyStoreError> {
        if measurement.len() != 48 && measurement.len() != 32 {
            return Err(PolicyStoreError::BadMeasurement);
        }
        let text = {
            let _guard = self.writer.lock().unwrap_or_else(|e| e.into_inner());
            let current = self.current();
            let mut table: toml::Table = toml::from_str(&current.text)
                .map_err(|e| PolicyError::Parse(e.message().to_owned()))?;
            let hex_m = hex::encode(measurement);
            let list = table
                .entry("revoked_measurements")
                .or_insert_with(|| toml::Value::Array(Vec::new()));
            if let toml::Value::Array(items) = list
                && !items.iter().any(|v| v.as_str() == Some(hex_m.as_str()))
            {
                items.push(toml::Value::String(hex_m));
            }
            let next_version = current.policy.version().saturating_add(1);
            table.insert(
                "version".to_owned(),
                toml::Value::Integer(i64::try_from(next_version).unwrap_or(i64::MAX)),
            );
            let header = "# Rewritten by confidant-verifier after a measurement revocation.\n";
            format!(
                "{header}{}",
                toml::to_string(&table).map_err(|e| PolicyError::Parse(e.to_string()))?
            )
        };
        self.replace(text)
    }
}
