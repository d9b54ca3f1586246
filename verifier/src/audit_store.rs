//! Durable storage of the audit log behind [`AuditStore`], with a local-file implementation.
//!
//! [`FileAuditStore`] keeps the log in the format `confidant_attestation::audit::log` defines
//! (one canonical JSON entry per line), so `confidant audit verify` reads the file as is. Every
//! append is written and `sync_data`'d before it returns: a verifier reply that mentions an entry
//! is only sent once the entry is on stable storage. Calls block; async callers wrap them in
//! `spawn_blocking`.
//!
//! On open the whole file is re-verified (canonical form, sequence, hash chain) and the Merkle
//! tree rebuilt. A torn final record (no newline, or unparseable — what a crash mid-write
//! leaves) is handled explicitly by [`TornTailPolicy`]; anything wrong before the final record
//! is corruption and the store refuses to open.
//!
//! One process per file: nothing here locks the file against a second writer.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use confidant_attestation::audit::log::MAX_RECORD_LEN;
use confidant_attestation::audit::{
    AuditEntry, AuditEvent, Checkpoint, EntryError, Hash, LogState, ProofError, RecordError,
    encode_record, leaf_hash, records,
};

/// Why an audit-store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AuditStoreError {
    #[error("audit log I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("audit log has a torn final record at offset {at_offset}; refusing to start")]
    TornTail { at_offset: u64 },
    #[error("audit log is corrupt at offset {at_offset} (entry {position}): {error}")]
    Corrupt {
        at_offset: u64,
        position: u64,
        error: RecordError,
    },
    #[error("audit entry is invalid: {0}")]
    InvalidEntry(#[from] EntryError),
    #[error("audit proof: {0}")]
    Proof(#[from] ProofError),
    #[error("audit log is unusable after a failed write; restart to re-verify it")]
    Poisoned,
}

/// Where an appended entry landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub seq: u64,
    /// RFC 9162 leaf hash of the entry's canonical bytes.
    pub leaf_hash: Hash,
}

/// The audit log's storage. Implementations append atomically and durably, in order.
pub trait AuditStore: Send + Sync {
    /// Places `event` at the end of the log and returns once it is durable.
    fn append(&self, event: AuditEvent) -> Result<Appended, AuditStoreError>;
    /// Up to `limit` entries starting at `from`.
    fn read_from(&self, from: u64, limit: usize) -> Result<Vec<AuditEntry>, AuditStoreError>;
    /// Up to `limit` records starting at `from`, as the exact log bytes (JSON Lines).
    fn read_raw(&self, from: u64, limit: usize) -> Result<Vec<u8>, AuditStoreError>;
    /// The unsigned checkpoint of the log as it is now.
    fn checkpoint(&self, time: u64) -> Result<Checkpoint, AuditStoreError>;
    /// Inclusion proof of entry `index` in the tree of `size` entries.
    fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, AuditStoreError>;
    /// Consistency proof between the trees of `old` and `new` entries.
    fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, AuditStoreError>;
    /// Number of entries.
    fn len(&self) -> u64;
    /// Whether the log is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What to do with a torn final record found on open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TornTailPolicy {
    /// Fail with [`AuditStoreError::TornTail`]; an operator inspects the file.
    #[default]
    Refuse,
    /// Copy the torn bytes to `<file>.torn-<offset>`, truncate the log there, and warn.
    MoveAside,
}

/// An append-only local file.
#[derive(Debug)]
pub struct FileAuditStore {
    path: PathBuf,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    file: File,
    state: LogState,
    /// Byte offset of each record.
    offsets: Vec<u64>,
    /// Length of the valid log.
    end: u64,
    poisoned: bool,
}

impl FileAuditStore {
    /// Opens (creating if absent) and fully re-verifies the log at `path`.
    pub fn open(path: impl AsRef<Path>, torn: TornTailPolicy) -> Result<Self, AuditStoreError> {
        let path = path.as_ref().to_path_buf();
        let existed = path.exists();
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)?;
        if !existed {
            sync_parent(&path)?;
        }
        let file_len = file.metadata()?.len();
        let (state, offsets, end) = scan(&file, file_len)?;
        if end < file_len {
            match torn {
                TornTailPolicy::Refuse => {
                    return Err(AuditStoreError::TornTail { at_offset: end });
                }
                TornTailPolicy::MoveAside => {
                    let aside = move_tail_aside(&path, &mut file, end)?;
                    tracing::warn!(
                        log = %path.display(),
                        at_offset = end,
                        bytes = file_len - end,
                        moved_to = %aside.display(),
                        "audit log had a torn final record: moved aside and truncated"
                    );
                }
            }
        }
        Ok(FileAuditStore {
            path,
            inner: Mutex::new(Inner {
                file,
                state,
                offsets,
                end,
                poisoned: false,
            }),
        })
    }

    /// The log file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> Result<MutexGuard<'_, Inner>, AuditStoreError> {
        self.inner.lock().map_err(|_| AuditStoreError::Poisoned)
    }

    /// The bytes of records `[from, from + limit)` and the offset they start at. Re-reads
    /// the file, which was verified on open and is only appended to under the lock.
    fn read_range(&self, from: u64, limit: usize) -> Result<(u64, Vec<u8>), AuditStoreError> {
        let inner = self.lock()?;
        let Some((start, end)) = Self::range(&inner, from, limit) else {
            return Ok((inner.end, Vec::new()));
        };
        let len = usize::try_from(end - start).map_err(|_| ProofError::SizeOutOfRange)?;
        let mut buf = vec![0u8; len];
        inner.file.read_exact_at(&mut buf, start)?;
        Ok((start, buf))
    }

    /// Byte range of records `[from, from + limit)` clipped to the log.
    fn range(inner: &Inner, from: u64, limit: usize) -> Option<(u64, u64)> {
        let from = usize::try_from(from).ok()?;
        let start = *inner.offsets.get(from)?;
        let end = from
            .checked_add(limit)
            .and_then(|i| inner.offsets.get(i).copied())
            .unwrap_or(inner.end);
        Some((start, end))
    }
}

/// Verifies every record; returns the state, record offsets and the end of the last good record.
/// A bad final record leaves `end` short of `file_len`; a bad earlier record is an error.
fn scan(file: &File, file_len: u64) -> Result<(LogState, Vec<u64>, u64), AuditStoreError> {
    let mut reader = BufReader::new(file);
    reader.seek(SeekFrom::Start(0))?;
    let mut state = LogState::new();
    let mut offsets = Vec::new();
    let mut offset = 0u64;
    let mut buf = Vec::with_capacity(1024);
    loop {
        buf.clear();
        let n = (&mut reader)
            .take(MAX_RECORD_LEN as u64)
            .read_until(b'\n', &mut buf)? as u64;
        if n == 0 {
            break;
        }
        let is_last = offset + n >= file_len;
        let result = match buf.strip_suffix(b"\n") {
            Some(record) => state.push_record(record).map(|_| ()),
            // No newline: torn if it is the end of the file, else a record over the size limit.
            None => Err(RecordError::Malformed(EntryError::TooLong)),
        };
        match result {
            Ok(()) => {
                offsets.push(offset);
                offset += n;
            }
            Err(RecordError::Malformed(_)) if is_last => break,
            Err(error) => {
                return Err(AuditStoreError::Corrupt {
                    at_offset: offset,
                    position: state.len(),
                    error,
                });
            }
        }
    }
    Ok((state, offsets, offset))
}

/// Copies `[end, EOF)` to a new `<file>.torn-<end>` file, makes it durable, then truncates.
fn move_tail_aside(path: &Path, file: &mut File, end: u64) -> Result<PathBuf, AuditStoreError> {
    let mut tail = Vec::new();
    file.seek(SeekFrom::Start(end))?;
    file.read_to_end(&mut tail)?;
    let base = format!("{}.torn-{end}", path.display());
    let mut attempt = 0u32;
    let (mut aside, aside_path) = loop {
        let candidate = if attempt == 0 {
            PathBuf::from(&base)
        } else {
            PathBuf::from(format!("{base}.{attempt}"))
        };
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&candidate)
        {
            Ok(f) => break (f, candidate),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 1000 => {
                attempt += 1;
            }
            Err(e) => return Err(e.into()),
        }
    };
    aside.write_all(&tail)?;
    aside.sync_all()?;
    sync_parent(&aside_path)?;
    file.set_len(end)?;
    file.sync_all()?;
    Ok(aside_path)
}

fn sync_parent(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => File::open(dir)?.sync_all(),
        _ => File::open(".")?.sync_all(),
    }
}

impl AuditStore for FileAuditStore {
    fn append(&self, event: AuditEvent) -> Result<Appended, AuditStoreError> {
        let mut inner = self.lock()?;
        if inner.poisoned {
            return Err(AuditStoreError::Poisoned);
        }
        let seq = inner.state.len();
        let entry = event.into_entry(seq, inner.state.head());
        let record = encode_record(&entry)?;
        let leaf = leaf_hash(record.strip_suffix(b"\n").unwrap_or(&record));
        let end = inner.end;
        if let Err(e) = inner.file.write_all(&record) {
            // Nothing was promised yet: cut off any partial write and carry on.
            if inner
                .file
                .set_len(end)
                .and_then(|()| inner.file.sync_data())
                .is_err()
            {
                inner.poisoned = true;
            }
            return Err(e.into());
        }
        if let Err(e) = inner.file.sync_data() {
            // After a failed fsync the kernel may have dropped the dirty pages: do not trust
            // this file handle again (restart re-verifies the file).
            inner.poisoned = true;
            let _ = inner.file.set_len(end);
            return Err(e.into());
        }
        inner.offsets.push(end);
        inner.end = end + record.len() as u64;
        inner.state.push_checked(leaf);
        Ok(Appended {
            seq,
            leaf_hash: leaf,
        })
    }

    fn read_from(&self, from: u64, limit: usize) -> Result<Vec<AuditEntry>, AuditStoreError> {
        let (start, raw) = self.read_range(from, limit)?;
        records(&raw)
            .zip(from..)
            .map(|(span, position)| {
                let record = raw
                    .get(span.offset..span.offset + span.len)
                    .filter(|_| span.complete);
                record
                    .ok_or(EntryError::Json)
                    .and_then(AuditEntry::from_canonical)
                    .map_err(|e| AuditStoreError::Corrupt {
                        at_offset: start + span.offset as u64,
                        position,
                        error: RecordError::Malformed(e),
                    })
            })
            .collect()
    }

    fn read_raw(&self, from: u64, limit: usize) -> Result<Vec<u8>, AuditStoreError> {
        self.read_range(from, limit).map(|(_, raw)| raw)
    }

    fn checkpoint(&self, time: u64) -> Result<Checkpoint, AuditStoreError> {
        let inner = self.lock()?;
        let size = inner.state.len();
        Ok(Checkpoint {
            size,
            root: inner.state.tree().root(size)?,
            time,
        })
    }

    fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, AuditStoreError> {
        Ok(self.lock()?.state.tree().inclusion_proof(index, size)?)
    }

    fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, AuditStoreError> {
        Ok(self.lock()?.state.tree().consistency_proof(old, new)?)
    }

    fn len(&self) -> u64 {
        self.lock().map_or(0, |i| i.state.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use confidant_attestation::audit::{Decision, parse_log, verify_inclusion};

    fn event(i: u64) -> AuditEvent {
        AuditEvent {
            time: 1_700_000_000 + i,
            decision: Decision::Accept,
            reason: None,
            nonce: [i as u8; 32],
            evidence_digest: [1; 32],
            tee: None,
            measurement: None,
            tcb: None,
            policy_id: Some("p".into()),
            policy_version: Some(1),
            model_id: Some("m".into()),
            result_digest: Some([2; 32]),
            key_id: Some("k".into()),
            dev: true,
        }
    }

    fn filled(n: u64) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let s = FileAuditStore::open(&path, TornTailPolicy::Refuse).unwrap();
        for i in 0..n {
            assert_eq!(s.append(event(i)).unwrap().seq, i);
        }
        (dir, path)
    }

    #[test]
    fn append_reopen_read() {
        let (_dir, path) = filled(5);
        let s = FileAuditStore::open(&path, TornTailPolicy::Refuse).unwrap();
        assert_eq!(s.len(), 5);
        let a = s.append(event(5)).unwrap();
        assert_eq!(a.seq, 5);
        let all = s.read_from(0, 100).unwrap();
        assert_eq!(all.len(), 6);
        assert_eq!(all[5].nonce, [5; 32]);
        assert_eq!(s.read_from(4, 1).unwrap()[0].seq, 4);
        assert!(s.read_from(6, 10).unwrap().is_empty());
        // The file is exactly the verifiable log.
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(parse_log(&bytes).unwrap(), all);
        assert_eq!(s.read_raw(0, 100).unwrap(), bytes);
        // Proofs from the store verify against its checkpoint.
        let cp = s.checkpoint(7).unwrap();
        assert_eq!(cp.size, 6);
        let p = s.inclusion_proof(5, 6).unwrap();
        verify_inclusion(&a.leaf_hash, 5, 6, &p, &cp.root).unwrap();
        assert!(s.consistency_proof(2, 6).is_ok());
        assert!(matches!(
            s.inclusion_proof(6, 6),
            Err(AuditStoreError::Proof(_))
        ));
    }

    #[test]
    fn torn_tail_refused_by_default_then_moved_aside() {
        let (dir, path) = filled(3);
        let good_len = std::fs::metadata(&path).unwrap().len();
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"seq":3,"time":17"#).unwrap();
        drop(f);
        assert!(matches!(
            FileAuditStore::open(&path, TornTailPolicy::Refuse),
            Err(AuditStoreError::TornTail { at_offset }) if at_offset == good_len
        ));
        let s = FileAuditStore::open(&path, TornTailPolicy::MoveAside).unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), good_len);
        let aside = dir.path().join(format!("audit.log.torn-{good_len}"));
        assert_eq!(std::fs::read(&aside).unwrap(), br#"{"seq":3,"time":17"#);
        // Appending continues the chain where the valid log ended.
        assert_eq!(s.append(event(3)).unwrap().seq, 3);
        drop(s);
        let s = FileAuditStore::open(&path, TornTailPolicy::Refuse).unwrap();
        assert_eq!(s.len(), 4);
    }

    #[test]
    fn garbage_final_line_is_torn_too() {
        let (dir, path) = filled(2);
        let good_len = std::fs::metadata(&path).unwrap().len();
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"\0\0\0\0\n").unwrap();
        drop(f);
        let s = FileAuditStore::open(&path, TornTailPolicy::MoveAside).unwrap();
        assert_eq!(s.len(), 2);
        assert!(
            dir.path()
                .join(format!("audit.log.torn-{good_len}"))
                .exists()
        );
        // The same offset torn twice does not clobber the first copy.
        drop(s);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"xx").unwrap();
        drop(f);
        FileAuditStore::open(&path, TornTailPolicy::MoveAside).unwrap();
        assert!(
            dir.path()
                .join(format!("audit.log.torn-{good_len}.1"))
                .exists()
        );
    }

    #[test]
    fn mid_file_corruption_refused() {
        let (_dir, path) = filled(4);
        let bytes = std::fs::read(&path).unwrap();
        let second = bytes.iter().position(|&b| b == b'\n').unwrap() + 1;
        // One changed byte inside entry 1 (a hex digit of its nonce).
        let mut bad = bytes.clone();
        let pos = second
            + bad[second..]
                .windows(9)
                .position(|w| w == b"\"nonce\":\"")
                .unwrap()
            + 9;
        bad[pos] = if bad[pos] == b'0' { b'1' } else { b'0' };
        std::fs::write(&path, &bad).unwrap();
        assert!(matches!(
            FileAuditStore::open(&path, TornTailPolicy::MoveAside),
            Err(AuditStoreError::Corrupt {
                position: 2,
                error: RecordError::ChainBreak { seq: 2 },
                ..
            })
        ));
        // Unparseable record before the end.
        let mut bad = bytes.clone();
        bad[second] = b'X';
        std::fs::write(&path, &bad).unwrap();
        assert!(matches!(
            FileAuditStore::open(&path, TornTailPolicy::MoveAside),
            Err(AuditStoreError::Corrupt {
                position: 1,
                error: RecordError::Malformed(_),
                ..
            })
        ));
        // A removed entry.
        let third = second + bytes[second..].iter().position(|&b| b == b'\n').unwrap() + 1;
        let mut bad = bytes[..second].to_vec();
        bad.extend_from_slice(&bytes[third..]);
        std::fs::write(&path, &bad).unwrap();
        assert!(matches!(
            FileAuditStore::open(&path, TornTailPolicy::MoveAside),
            Err(AuditStoreError::Corrupt {
                error: RecordError::SeqGap { missing: 1, .. },
                ..
            })
        ));
        // A complete, well-formed final record that does not chain is tampering, not a torn write.
        let mut bad = bytes.clone();
        let last = bad[..bad.len() - 1]
            .iter()
            .rposition(|&b| b == b'\n')
            .unwrap()
            + 1;
        let pos = last
            + bad[last..]
                .windows(13)
                .position(|w| w == b"\"prev_hash\":\"")
                .unwrap()
            + 13;
        bad[pos] = if bad[pos] == b'0' { b'1' } else { b'0' };
        std::fs::write(&path, &bad).unwrap();
        assert!(matches!(
            FileAuditStore::open(&path, TornTailPolicy::MoveAside),
            Err(AuditStoreError::Corrupt {
                error: RecordError::ChainBreak { seq: 3 },
                ..
            })
        ));
    }

    #[test]
    fn store_is_object_safe_and_shareable() {
        let (_dir, path) = filled(0);
        let s: std::sync::Arc<dyn AuditStore> =
            std::sync::Arc::new(FileAuditStore::open(&path, TornTailPolicy::Refuse).unwrap());
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let s = s.clone();
                std::thread::spawn(move || {
                    for i in 0..10 {
                        s.append(event(t * 100 + i)).unwrap();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(s.len(), 40);
        drop(s);
        let s = FileAuditStore::open(&path, TornTailPolicy::Refuse).unwrap();
        assert_eq!(s.len(), 40);
    }
}
