//! The audit log: records, whole logs, signed checkpoints.

use confidant_attestation::audit::{
    AuditEntry, LogState, encode_record, parse_log, records, verify_checkpoint, verify_log,
};

use crate::frame::{part, split};

/// A log buffer: split into records, each decoded alone and chained in a [`LogState`], and the
/// whole buffer through `parse_log`. A record the decoder accepts re-encodes to itself (records
/// are canonical JSON).
pub fn log(data: &[u8]) {
    let mut state = LogState::new();
    for span in records(data) {
        let Some(record) = data.get(span.offset..span.offset + span.len) else {
            panic!("records() returned a span outside the buffer");
        };
        if let Ok(entry) = AuditEntry::from_canonical(record) {
            let encoded = encode_record(&entry);
            assert!(
                encoded.is_ok_and(|e| e.strip_suffix(b"\n") == Some(record)),
                "an accepted audit record is not canonical"
            );
        }
        let _ = state.push_record(record);
    }
    if let Ok(entries) = parse_log(data) {
        assert_eq!(entries.len() as u64, records(data).count() as u64);
    }
}

/// Parts: checkpoint, public key (SEC1), log, further checkpoints.
pub fn checkpoint(data: &[u8]) {
    let parts = split(data, 5);
    let key = part(&parts, 1);
    let _ = verify_checkpoint(part(&parts, 0), key);
    let mut checkpoints = vec![part(&parts, 0)];
    checkpoints.extend(parts.iter().skip(3).copied());
    let _ = verify_log(part(&parts, 2), &checkpoints, key);
}
