//! The tamper-evident audit log, as pure code shared by the verifier (which writes it) and the
//! `confidant audit verify` tool (which checks it).
//!
//! - [`entry`]: [`AuditEntry`], its canonical JSON bytes, RFC 9162 leaf and node hashes. Each
//!   entry carries `prev_hash`, the leaf hash of the entry before it (a hash chain).
//! - [`merkle`]: the RFC 9162 Merkle tree, inclusion and consistency proofs and their
//!   verification (§2.1.3.2, §2.1.4.2).
//! - [`checkpoint`]: signed (size, root, time) checkpoints, ECDSA P-256.
//! - [`log`]: one record per line, [`verify_log`] and [`export_jsonl`].
//!
//! The hash chain pinpoints where a log was edited; the Merkle tree lets one result be proven
//! included, and two checkpoints proven consistent, without the whole log. What no signed
//! checkpoint covers yet (the newest entries) can be rewritten by whoever holds the file: sign
//! checkpoints often.

pub mod checkpoint;
pub mod entry;
pub mod log;
pub mod merkle;

pub use checkpoint::{Checkpoint, CheckpointError, CheckpointSigner, verify_checkpoint};
pub use entry::{
    AuditEntry, AuditEvent, Decision, EntryError, Hash, Tee, empty_root, leaf_hash, node_hash,
};
pub use log::{
    AuditVerifyError, LogState, LogSummary, RecordError, RecordSpan, encode_record, export_jsonl,
    parse_log, records, verify_log,
};
pub use merkle::{MerkleTree, ProofError, verify_consistency, verify_inclusion};
