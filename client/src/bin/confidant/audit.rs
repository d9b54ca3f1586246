//! `confidant audit verify | export`: offline checks of the verifier's audit log, and its export
//! as JSON Lines for a SIEM. The checks themselves are `confidant_attestation::audit`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use confidant_attestation::audit::checkpoint::CHECKPOINT_ORIGIN;
use confidant_attestation::audit::{AuditVerifyError, CheckpointError, export_jsonl, parse_log};
use confidant_wire::admin::{AuditCheckpoint, PublicKeys};
use x509_parser::oid_registry::{OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY};
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;

/// Largest checkpoint or key file read.
const MAX_SMALL_FILE: u64 = 16 << 20;
/// Length of an uncompressed SEC1 P-256 point.
const P256_POINT_LEN: usize = 65;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check a verifier audit log offline: canonical entries, sequence, hash chain, Merkle tree,
    /// and (with --checkpoint and --key) every checkpoint's signature and root.
    ///
    /// Prints a JSON summary and exits 0 when the log is intact. Otherwise prints
    /// `{"valid": false, "check": …, "seq": …}` on stdout, names the failed check and the entry's
    /// sequence number on stderr, and exits 1. Checks: `checkpoint-signature`, `entry-format`,
    /// `sequence` (entry removed), `order` (entries reordered), `hash-chain` (entry changed),
    /// `checkpoint-root` (an entry covered by a signed checkpoint changed, e.g. the last one),
    /// `checkpoint-size` (log shorter than a checkpoint: entries removed from the end),
    /// `torn-tail` (final record incomplete).
    ///
    /// Without a checkpoint only the log's internal consistency is checked: whoever can write the
    /// file can rewrite it consistently. Entries newer than the last checkpoint are not covered by
    /// any signature (reported as `unsigned_entries`).
    Verify(VerifyArgs),
    /// Write the log as JSON Lines for a SIEM: each entry's fields plus `leaf_hash` and
    /// `"source": "confidant-verifier-audit"`. The log's chain is checked first.
    Export(ExportArgs),
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The verifier's audit log (`[audit] log` in its configuration; one JSON entry per line).
    #[arg(long, value_name = "FILE")]
    log: PathBuf,
    /// Signed checkpoints: the verifier's `<log>.checkpoints` file (one or more checkpoints back
    /// to back), a single checkpoint, or the JSON body of `GET /v1/audit/checkpoint`. Repeatable.
    #[arg(long, value_name = "FILE", requires = "key")]
    checkpoint: Vec<PathBuf>,
    /// The checkpoint signing public key (ECDSA P-256), obtained from a source you trust: PEM
    /// `PUBLIC KEY` (SPKI), DER SPKI, the 65-byte uncompressed SEC1 point raw or as hex (the
    /// `audit_checkpoint_key` of `GET /v1/keys`), or that `GET /v1/keys` JSON body itself.
    #[arg(long, value_name = "FILE", requires = "checkpoint")]
    key: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The verifier's audit log.
    #[arg(long, value_name = "FILE")]
    log: PathBuf,
    /// Output file (created or truncated); standard output if absent.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

pub fn run(cmd: AuditCommand) -> Result<()> {
    match cmd {
        AuditCommand::Verify(args) => verify(&args),
        AuditCommand::Export(args) => export(&args),
    }
}

/// One checkpoint and where it came from.
struct CheckpointSource {
    file: PathBuf,
    /// Position within its file, from 0.
    index: usize,
    bytes: Vec<u8>,
}

fn verify(args: &VerifyArgs) -> Result<()> {
    let log = read(&args.log, None)?;
    let mut checkpoints = Vec::new();
    for file in &args.checkpoint {
        let bytes = read(file, Some(MAX_SMALL_FILE))?;
        let found = split_checkpoints(&bytes)
            .with_context(|| format!("{} holds no checkpoint", file.display()))?;
        checkpoints.extend(
            found
                .into_iter()
                .enumerate()
                .map(|(index, bytes)| CheckpointSource {
                    file: file.clone(),
                    index,
                    bytes,
                }),
        );
    }
    let public_key = match &args.key {
        Some(path) => read_public_key(path)?,
        None => Vec::new(),
    };
    let refs: Vec<&[u8]> = checkpoints.iter().map(|c| c.bytes.as_slice()).collect();
    match confidant_attestation::audit::verify_log(&log, &refs, &public_key) {
        Ok(summary) => {
            let signed = largest_size(&checkpoints, &public_key);
            if checkpoints.is_empty() {
                eprintln!(
                    "confidant: warning: no checkpoint given; the log is internally consistent, \
                     but nothing proves it was not rewritten as a whole"
                );
            }
            let out = serde_json::json!({
                "valid": true,
                "log": args.log.display().to_string(),
                "entries": summary.entries,
                "accepted": summary.accepted,
                "refused": summary.refused,
                "root": hex::encode(summary.root),
                "head": hex::encode(summary.head),
                "checkpoints_verified": summary.checkpoints_verified,
                "signed_size": signed,
                "unsigned_entries": summary.entries.saturating_sub(signed),
            });
            println!("{}", serde_json::to_string_pretty(&out)?);
            Ok(())
        }
        Err(e) => {
            let failure = describe(&e, &checkpoints);
            let out = serde_json::json!({
                "valid": false,
                "log": args.log.display().to_string(),
                "check": failure.check,
                "seq": failure.seq,
                "message": failure.message,
            });
            println!("{}", serde_json::to_string_pretty(&out)?);
            bail!(
                "audit log {} failed check `{}`: {}",
                args.log.display(),
                failure.check,
                failure.message
            )
        }
    }
}

/// The largest size among the checkpoints (all verified by now).
fn largest_size(checkpoints: &[CheckpointSource], public_key: &[u8]) -> u64 {
    checkpoints
        .iter()
        .filter_map(|c| {
            confidant_attestation::audit::verify_checkpoint(&c.bytes, public_key)
                .ok()
                .map(|cp| cp.size)
        })
        .max()
        .unwrap_or(0)
}

struct Failure {
    check: &'static str,
    /// The sequence number of the entry at fault, when one can be named.
    seq: Option<u64>,
    message: String,
}

fn describe(e: &AuditVerifyError, checkpoints: &[CheckpointSource]) -> Failure {
    let fail = |check, seq, message: String| Failure {
        check,
        seq,
        message,
    };
    match *e {
        AuditVerifyError::CheckpointInvalid { index, error } => {
            let at = checkpoints.get(index).map_or_else(
                || format!("checkpoint {index}"),
                |c| format!("checkpoint {} in {}", c.index, c.file.display()),
            );
            let check = match error {
                CheckpointError::BadSignature | CheckpointError::BadKey => "checkpoint-signature",
                _ => "checkpoint-format",
            };
            fail(check, None, format!("{at}: {error}"))
        }
        AuditVerifyError::Malformed {
            position,
            at_offset,
            error,
        } => fail(
            "entry-format",
            Some(position),
            format!("entry {position} (byte offset {at_offset}) was changed: {error}"),
        ),
        AuditVerifyError::SeqGap { missing } => fail(
            "sequence",
            Some(missing),
            format!("entry {missing} was removed"),
        ),
        AuditVerifyError::OutOfOrder { at, found } => fail(
            "order",
            Some(at),
            format!("entries were reordered: entry {found} stands where entry {at} belongs"),
        ),
        AuditVerifyError::ChainBreak { seq } => {
            let changed = seq.saturating_sub(1);
            fail(
                "hash-chain",
                Some(changed),
                format!(
                    "entry {changed} was changed: entry {seq}'s prev_hash no longer matches it \
                     (or entry {seq}'s prev_hash itself was changed)"
                ),
            )
        }
        AuditVerifyError::RootMismatch { size } => fail(
            "checkpoint-root",
            None,
            format!(
                "the Merkle root of entries 0..{size} differs from the signed checkpoint of size \
                 {size}: one of those entries was changed (the hash chain alone cannot tell which \
                 when it is the last one)"
            ),
        ),
        AuditVerifyError::TornTail { at_offset } => fail(
            "torn-tail",
            None,
            format!("the final record at byte offset {at_offset} is incomplete (no newline)"),
        ),
        AuditVerifyError::CheckpointBeyondLog { size, log_len } => fail(
            "checkpoint-size",
            Some(log_len),
            format!(
                "a signed checkpoint covers {size} entries but the log holds {log_len}: entry \
                 {log_len} and later ones were removed"
            ),
        ),
    }
}

/// Splits a checkpoint file into checkpoints: each starts at a line equal to the origin line.
/// Also accepts the JSON body of `GET /v1/audit/checkpoint`.
fn split_checkpoints(bytes: &[u8]) -> Option<Vec<Vec<u8>>> {
    if bytes.first() == Some(&b'{') {
        let reply: AuditCheckpoint = serde_json::from_slice(bytes).ok()?;
        return Some(vec![reply.checkpoint.into_bytes()]);
    }
    let origin = format!("{CHECKPOINT_ORIGIN}\n");
    let origin = origin.as_bytes();
    let mut starts = Vec::new();
    let mut line_start = 0;
    while line_start < bytes.len() {
        let rest = bytes.get(line_start..).unwrap_or_default();
        if rest.starts_with(origin) {
            starts.push(line_start);
        }
        match rest.iter().position(|&b| b == b'\n') {
            Some(n) => line_start += n + 1,
            None => break,
        }
    }
    if starts.first() != Some(&0) {
        // Leading bytes that belong to no checkpoint: keep them with the first one, so that
        // verification reports the file as malformed rather than silently skipping them.
        starts.insert(0, 0);
    }
    let out: Vec<Vec<u8>> = starts
        .iter()
        .enumerate()
        .map(|(i, &s)| {
            let end = starts.get(i + 1).copied().unwrap_or(bytes.len());
            bytes.get(s..end).unwrap_or_default().to_vec()
        })
        .filter(|c| !c.is_empty())
        .collect();
    (!out.is_empty()).then_some(out)
}

/// Reads the checkpoint public key in any of the accepted encodings; returns the SEC1 point.
fn read_public_key(path: &Path) -> Result<Vec<u8>> {
    let bytes = read(path, Some(MAX_SMALL_FILE))?;
    let bad = || format!("{} holds no usable P-256 public key", path.display());
    let text = std::str::from_utf8(&bytes).ok().map(str::trim);
    let point = if bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        let der = pem::parse_many(&bytes)
            .with_context(bad)?
            .into_iter()
            .find(|p| p.tag() == "PUBLIC KEY")
            .with_context(|| format!("{}: no PEM `PUBLIC KEY` block", path.display()))?
            .into_contents();
        spki_point(&der).with_context(bad)?
    } else if let Some(json) = text.filter(|t| t.starts_with('{')) {
        let keys: PublicKeys = serde_json::from_str(json).with_context(|| {
            format!(
                "{}: JSON that is not the `GET /v1/keys` document",
                path.display()
            )
        })?;
        hex::decode(keys.audit_checkpoint_key).with_context(bad)?
    } else if let Some(t) =
        text.filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        // Checked before DER: hex text starting "30…" would otherwise look like a SEQUENCE tag.
        hex::decode(t).with_context(bad)?
    } else if bytes.first() == Some(&0x30) {
        spki_point(&bytes).with_context(bad)?
    } else if bytes.len() == P256_POINT_LEN && bytes.first() == Some(&0x04) {
        bytes
    } else {
        bail!(bad());
    };
    if point.len() != P256_POINT_LEN || point.first() != Some(&0x04) {
        bail!(
            "{}: the key must be an uncompressed P-256 point (65 bytes)",
            path.display()
        );
    }
    Ok(point)
}

/// The EC point of a DER SubjectPublicKeyInfo, which must be id-ecPublicKey on P-256.
fn spki_point(der: &[u8]) -> Result<Vec<u8>> {
    let (rest, spki) =
        SubjectPublicKeyInfo::from_der(der).map_err(|_| anyhow::anyhow!("not a DER SPKI"))?;
    if !rest.is_empty() {
        bail!("bytes after the SPKI");
    }
    if spki.algorithm.algorithm != OID_KEY_TYPE_EC_PUBLIC_KEY {
        bail!("not an EC public key");
    }
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok());
    if curve.as_ref() != Some(&OID_EC_P256) {
        bail!("not a P-256 key");
    }
    Ok(spki.subject_public_key.data.to_vec())
}

fn export(args: &ExportArgs) -> Result<()> {
    let log = read(&args.log, None)?;
    // verify_log first: its diagnosis is finer (it tells reordering from removal).
    let entries = confidant_attestation::audit::verify_log(&log, &[], &[])
        .and_then(|_| parse_log(&log))
        .map_err(|e| {
            let failure = describe(&e, &[]);
            anyhow::anyhow!(
                "audit log {} failed check `{}`: {} (nothing exported)",
                args.log.display(),
                failure.check,
                failure.message
            )
        })?;
    let lines = export_jsonl(&entries).context("encoding the export")?;
    match &args.out {
        Some(path) => std::fs::write(path, &lines)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => {
            use std::io::Write;
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(&lines)
                .and_then(|()| stdout.flush())
                .context("writing to standard output")?;
        }
    }
    if args.out.is_some() {
        eprintln!("confidant: exported {} entries", entries.len());
    }
    Ok(())
}

/// Reads a file, refusing ones larger than `limit`.
fn read(path: &Path, limit: Option<u64>) -> Result<Vec<u8>> {
    if let Some(limit) = limit {
        let len = std::fs::metadata(path)
            .with_context(|| format!("cannot read {}", path.display()))?
            .len();
        if len > limit {
            bail!("{} is larger than {limit} bytes", path.display());
        }
    }
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}
