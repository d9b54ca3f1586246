//! The log file encoding and its offline verification.
//!
//! A log is a sequence of records, one per line: the canonical JSON of an [`AuditEntry`]
//! followed by `\n` (JSON Lines, so SIEMs and `jq` read it as is). No checksum per record is
//! needed: a changed byte either breaks the JSON/canonical form, or changes the entry's leaf hash,
//! which the next entry's `prev_hash` and every later checkpoint root commit to. A final record
//! without its newline is a torn write.

use super::checkpoint::{CheckpointError, verify_checkpoint};
use super::entry::{AuditEntry, Decision, EntryError, Hash, MAX_ENTRY_LEN, leaf_hash};
use super::merkle::MerkleTree;

/// Why a record cannot be appended to a log in [`LogState`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("record is malformed: {0}")]
    Malformed(EntryError),
    #[error("entry {missing} is missing (next entry has seq {found})")]
    SeqGap { missing: u64, found: u64 },
    #[error("entry at position {at} has seq {found}")]
    OutOfOrder { at: u64, found: u64 },
    #[error("entry {seq} does not chain to the previous entry")]
    ChainBreak { seq: u64 },
}

/// The running state of a log: its Merkle tree and the hash the next entry must chain to.
#[derive(Debug, Clone, Default)]
pub struct LogState {
    tree: MerkleTree,
}

impl LogState {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of entries.
    pub fn len(&self) -> u64 {
        self.tree.len()
    }

    /// Whether the log is empty.
    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }

    /// The `prev_hash` the next entry must carry: the last leaf hash, or zero.
    pub fn head(&self) -> Hash {
        match self.tree.len() {
            0 => [0; 32],
            n => self.tree.leaf(n - 1).unwrap_or_default(),
        }
    }

    /// The Merkle tree of the entries so far.
    pub fn tree(&self) -> &MerkleTree {
        &self.tree
    }

    /// Checks that `entry` is the valid next entry (seq and chain), without appending it.
    pub fn check_next(&self, entry: &AuditEntry) -> Result<(), RecordError> {
        let expected = self.len();
        if entry.seq > expected {
            return Err(RecordError::SeqGap {
                missing: expected,
                found: entry.seq,
            });
        }
        if entry.seq < expected {
            return Err(RecordError::OutOfOrder {
                at: expected,
                found: entry.seq,
            });
        }
        if entry.prev_hash != self.head() {
            return Err(RecordError::ChainBreak { seq: entry.seq });
        }
        Ok(())
    }

    /// Parses one record (without its newline), checks it follows, appends it, and returns the
    /// entry with its leaf hash.
    pub fn push_record(&mut self, record: &[u8]) -> Result<(AuditEntry, Hash), RecordError> {
        let entry = AuditEntry::from_canonical(record).map_err(RecordError::Malformed)?;
        self.check_next(&entry)?;
        let leaf = leaf_hash(record);
        self.tree.push(leaf);
        Ok((entry, leaf))
    }

    /// Appends a record already checked with [`LogState::check_next`], by its leaf hash.
    pub fn push_checked(&mut self, leaf: Hash) {
        self.tree.push(leaf);
    }
}

/// Encodes one record: canonical entry bytes and `\n`.
pub fn encode_record(entry: &AuditEntry) -> Result<Vec<u8>, EntryError> {
    let mut out = entry.to_canonical()?;
    out.push(b'\n');
    Ok(out)
}

/// One record's place in a log buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordSpan {
    /// Offset of the record's first byte.
    pub offset: usize,
    /// Length without the newline.
    pub len: usize,
    /// Whether the record ends in `\n`; only the final record can lack it.
    pub complete: bool,
}

/// Splits a log buffer into records (lines). Never fails; interpretation is up to the caller.
pub fn records(log: &[u8]) -> impl Iterator<Item = RecordSpan> + '_ {
    let mut offset = 0;
    std::iter::from_fn(move || {
        let rest = log.get(offset..).filter(|r| !r.is_empty())?;
        let span = match rest.iter().position(|&b| b == b'\n') {
            Some(len) => RecordSpan {
                offset,
                len,
                complete: true,
            },
            None => RecordSpan {
                offset,
                len: rest.len(),
                complete: false,
            },
        };
        offset += span.len + usize::from(span.complete);
        Some(span)
    })
}

/// The first problem [`verify_log`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuditVerifyError {
    #[error("checkpoint {index} is invalid: {error}")]
    CheckpointInvalid {
        index: usize,
        error: CheckpointError,
    },
    #[error("record at position {position} (offset {at_offset}) is malformed: {error}")]
    Malformed {
        position: u64,
        at_offset: u64,
        error: EntryError,
    },
    #[error("entry {missing} was removed")]
    SeqGap { missing: u64 },
    #[error("entries out of order at position {at} (found seq {found})")]
    OutOfOrder { at: u64, found: u64 },
    #[error("hash chain breaks at entry {seq}: it or the entry before it was changed")]
    ChainBreak { seq: u64 },
    #[error("log root at size {size} differs from the signed checkpoint")]
    RootMismatch { size: u64 },
    #[error("final record at offset {at_offset} is torn (no newline)")]
    TornTail { at_offset: u64 },
    #[error("checkpoint of size {size} is beyond the log ({log_len} entries)")]
    CheckpointBeyondLog { size: u64, log_len: u64 },
}

/// What a verified log holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSummary {
    pub entries: u64,
    /// Merkle root of the whole log.
    pub root: Hash,
    /// Leaf hash of the last entry (zero for an empty log).
    pub head: Hash,
    pub checkpoints_verified: usize,
    pub accepted: u64,
    pub refused: u64,
}

/// Verifies a whole log against signed checkpoints: every checkpoint signature, then every
/// record in order (canonical form, sequence, hash chain, and the Merkle root at each checkpoint
/// size). Reports the first problem by position.
pub fn verify_log(
    log: &[u8],
    checkpoints: &[&[u8]],
    public_key: &[u8],
) -> Result<LogSummary, AuditVerifyError> {
    let mut cps = checkpoints
        .iter()
        .enumerate()
        .map(|(index, bytes)| {
            verify_checkpoint(bytes, public_key)
                .map_err(|error| AuditVerifyError::CheckpointInvalid { index, error })
        })
        .collect::<Result<Vec<_>, _>>()?;
    cps.sort_by_key(|c| c.size);
    let mut pending = cps.iter().peekable();
    let mut state = LogState::new();
    let check_roots = |state: &LogState,
                       pending: &mut std::iter::Peekable<std::slice::Iter<'_, _>>|
     -> Result<(), AuditVerifyError> {
        while let Some(cp) = pending.next_if(|c: &&super::Checkpoint| c.size == state.len()) {
            if state.tree().root(cp.size).ok() != Some(cp.root) {
                return Err(AuditVerifyError::RootMismatch { size: cp.size });
            }
        }
        Ok(())
    };
    check_roots(&state, &mut pending)?;
    let (mut accepted, mut refused) = (0, 0);
    for span in records(log) {
        let position = state.len();
        let at_offset = span.offset as u64;
        if !span.complete {
            return Err(AuditVerifyError::TornTail { at_offset });
        }
        let record = log
            .get(span.offset..span.offset + span.len)
            .unwrap_or_default();
        match state.push_record(record) {
            Ok((entry, _)) => match entry.decision {
                Decision::Accept => accepted += 1,
                Decision::Refuse => refused += 1,
            },
            Err(RecordError::Malformed(error)) => {
                return Err(AuditVerifyError::Malformed {
                    position,
                    at_offset,
                    error,
                });
            }
            Err(RecordError::SeqGap { missing, found }) => {
                // A later record carrying the missing seq means reordering, not removal.
                let later = log.get(span.offset + span.len..).unwrap_or_default();
                return Err(if contains_seq(later, missing) {
                    AuditVerifyError::OutOfOrder { at: missing, found }
                } else {
                    AuditVerifyError::SeqGap { missing }
                });
            }
            Err(RecordError::OutOfOrder { at, found }) => {
                return Err(AuditVerifyError::OutOfOrder { at, found });
            }
            Err(RecordError::ChainBreak { seq }) => {
                return Err(AuditVerifyError::ChainBreak { seq });
            }
        }
        check_roots(&state, &mut pending)?;
    }
    if let Some(cp) = pending.next() {
        return Err(AuditVerifyError::CheckpointBeyondLog {
            size: cp.size,
            log_len: state.len(),
        });
    }
    Ok(LogSummary {
        entries: state.len(),
        root: state.tree().root(state.len()).unwrap_or_default(),
        head: state.head(),
        checkpoints_verified: cps.len(),
        accepted,
        refused,
    })
}

fn contains_seq(log: &[u8], seq: u64) -> bool {
    records(log).any(|span| {
        log.get(span.offset..span.offset + span.len)
            .and_then(|r| serde_json::from_slice::<SeqOnly>(r).ok())
            .is_some_and(|s| s.seq == seq)
    })
}

#[derive(serde::Deserialize)]
struct SeqOnly {
    seq: u64,
}

/// Parses and chain-checks a whole log (no checkpoints), returning its entries.
pub fn parse_log(log: &[u8]) -> Result<Vec<AuditEntry>, AuditVerifyError> {
    let mut state = LogState::new();
    let mut out = Vec::new();
    for span in records(log) {
        let at_offset = span.offset as u64;
        if !span.complete {
            return Err(AuditVerifyError::TornTail { at_offset });
        }
        let record = log
            .get(span.offset..span.offset + span.len)
            .unwrap_or_default();
        let position = state.len();
        let (entry, _) = state.push_record(record).map_err(|e| match e {
            RecordError::Malformed(error) => AuditVerifyError::Malformed {
                position,
                at_offset,
                error,
            },
            RecordError::SeqGap { missing, .. } => AuditVerifyError::SeqGap { missing },
            RecordError::OutOfOrder { at, found } => AuditVerifyError::OutOfOrder { at, found },
            RecordError::ChainBreak { seq } => AuditVerifyError::ChainBreak { seq },
        })?;
        out.push(entry);
    }
    Ok(out)
}

#[derive(serde::Serialize)]
struct ExportRecord<'a> {
    #[serde(flatten)]
    entry: &'a AuditEntry,
    /// RFC 9162 leaf hash of the entry, for matching inclusion proofs.
    leaf_hash: String,
    /// Constant, so SIEM pipelines can route on it.
    source: &'static str,
}

/// Exports entries as JSON Lines for SIEMs: each entry's fields plus `leaf_hash` and
/// `"source": "confidant-verifier-audit"`. Not canonical; not for verification.
pub fn export_jsonl(entries: &[AuditEntry]) -> Result<Vec<u8>, EntryError> {
    let mut out = Vec::new();
    for entry in entries {
        let canonical = entry.to_canonical()?;
        let rec = ExportRecord {
            entry,
            leaf_hash: hex::encode(leaf_hash(&canonical)),
            source: "confidant-verifier-audit",
        };
        serde_json::to_writer(&mut out, &rec).map_err(|_| EntryError::Json)?;
        out.push(b'\n');
    }
    Ok(out)
}

/// Longest record a reader should buffer (entry plus newline).
pub const MAX_RECORD_LEN: usize = MAX_ENTRY_LEN + 1;
