//! The verifier's side of the audit log: decisions appended through an [`AuditStore`] (durable
//! before the reply), signed checkpoints, proofs, and reading entries back.
//!
//! Every checkpoint served is also appended to `<log>.checkpoints`, so an auditor can later check
//! the log against all of them (`confidant audit verify`). Start-up re-verifies the whole log;
//! a torn final record is handled by `[audit] torn_tail` (see [`crate::audit_store`]).

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use confidant_attestation::audit::{AuditEntry, AuditEvent, CheckpointSigner};
use confidant_service::secrets::load_secret;
use confidant_wire::admin::{AuditCheckpoint, AuditEntries, ConsistencyProof, InclusionProof};
use ring::rand::SystemRandom;

use crate::audit_store::{AuditStore, AuditStoreError, FileAuditStore, TornTailPolicy};
use crate::config::{AuditConfig, TornTail};

/// Why the audit log failed.
#[derive(Debug, thiserror::Error)]
pub enum AuditLogError {
    #[error("audit log {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("audit store: {0}")]
    Store(#[from] AuditStoreError),
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] confidant_attestation::audit::CheckpointError),
    #[error("checkpoint key: {0}")]
    Secret(#[from] confidant_service::secrets::SecretError),
}

impl AuditLogError {
    /// True when the error is an out-of-range proof request (a client error).
    pub fn is_range(&self) -> bool {
        matches!(self, AuditLogError::Store(AuditStoreError::Proof(_)))
    }
}

/// The open audit log.
pub struct AuditLog {
    store: Box<dyn AuditStore>,
    checkpoints_path: PathBuf,
    signer: CheckpointSigner,
    rng: SystemRandom,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("checkpoints_path", &self.checkpoints_path)
            .finish_non_exhaustive()
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> AuditLogError + '_ {
    move |source| AuditLogError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl AuditLog {
    /// Opens (or creates) the file log, re-verifying every entry. Blocking.
    pub fn open(config: &AuditConfig, rng: &SystemRandom) -> Result<Self, AuditLogError> {
        let policy = match config.torn_tail {
            TornTail::Refuse => TornTailPolicy::Refuse,
            TornTail::MoveAside => TornTailPolicy::MoveAside,
        };
        let store = FileAuditStore::open(&config.log, policy)?;
        let mut checkpoints_path = config.log.clone().into_os_string();
        checkpoints_path.push(".checkpoints");
        Self::with_store(
            Box::new(store),
            PathBuf::from(checkpoints_path),
            config,
            rng,
        )
    }

    /// Uses any [`AuditStore`] (for example a shared database behind several replicas).
    pub fn with_store(
        store: Box<dyn AuditStore>,
        checkpoints_path: PathBuf,
        config: &AuditConfig,
        rng: &SystemRandom,
    ) -> Result<Self, AuditLogError> {
        let key = load_secret(&config.checkpoint_key)?;
        let signer = CheckpointSigner::from_pkcs8(key.expose(), rng)?;
        tracing::info!(entries = store.len(), "audit log opened");
        Ok(Self {
            store,
            checkpoints_path,
            signer,
            rng: rng.clone(),
        })
    }

    /// Appends one decision; returns its sequence number once it is durable. Blocking.
    pub fn append(&self, event: AuditEvent) -> Result<u64, AuditLogError> {
        Ok(self.store.append(event)?.seq)
    }

    /// Number of entries.
    pub fn len(&self) -> u64 {
        self.store.len()
    }

    /// True when the log has no entries.
    pub fn is_empty(&self) -> bool {
        self.store.is_empty()
    }

    /// Entries `from..from+limit`.
    pub fn entries(&self, from: u64, limit: u64) -> Result<Vec<AuditEntry>, AuditLogError> {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        Ok(self.store.read_from(from, limit)?)
    }

    /// `GET /v1/audit` body.
    pub fn entries_reply(&self, from: u64, limit: u64) -> Result<AuditEntries, AuditLogError> {
        let entries = self.entries(from, limit)?;
        Ok(AuditEntries {
            from,
            size: self.len(),
            entries,
        })
    }

    /// The checkpoint signing public key (uncompressed SEC1).
    pub fn checkpoint_public_key(&self) -> Vec<u8> {
        self.signer.public_key().to_vec()
    }

    /// Signs a checkpoint of the log as it is now, records it in `<log>.checkpoints`, and
    /// returns its encoding. Blocking.
    pub fn checkpoint(&self, now: u64) -> Result<Vec<u8>, AuditLogError> {
        let cp = self.store.checkpoint(now)?;
        let signed = self.signer.sign(&cp, &self.rng)?;
        let path = &self.checkpoints_path;
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io(path))?;
        f.write_all(&signed).map_err(io(path))?;
        f.sync_data().map_err(io(path))?;
        Ok(signed)
    }

    /// `GET /v1/audit/checkpoint` body.
    pub fn checkpoint_reply(&self, now: u64) -> Result<AuditCheckpoint, AuditLogError> {
        let signed = self.checkpoint(now)?;
        Ok(AuditCheckpoint {
            checkpoint: String::from_utf8_lossy(&signed).into_owned(),
            public_key: hex::encode(self.signer.public_key()),
        })
    }

    /// Inclusion proof of entry `index` in the tree of `size` entries (default: now).
    pub fn inclusion_reply(
        &self,
        index: u64,
        size: Option<u64>,
    ) -> Result<InclusionProof, AuditLogError> {
        let size = size.unwrap_or_else(|| self.store.len());
        let proof = self.store.inclusion_proof(index, size)?;
        Ok(InclusionProof {
            index,
            size,
            proof: proof.iter().map(hex::encode).collect(),
        })
    }

    /// Consistency proof between sizes `from` and `to` (default: now).
    pub fn consistency_reply(
        &self,
        from: u64,
        to: Option<u64>,
    ) -> Result<ConsistencyProof, AuditLogError> {
        let to = to.unwrap_or_else(|| self.store.len());
        let proof = self.store.consistency_proof(from, to)?;
        Ok(ConsistencyProof {
            from,
            to,
            proof: proof.iter().map(hex::encode).collect(),
        })
    }
}
