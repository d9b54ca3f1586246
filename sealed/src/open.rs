//! Decrypting the body of a sealed model on several threads, from memory or from a reader, into
//! one preallocated plaintext buffer, hashing each block for the model digest right after it is
//! decrypted (while it is still in cache).
//!
//! The plaintext is cut into *segments*: runs of whole chunks whose length is a multiple of both
//! the chunk size and [`HASH_BLOCK`](super::digest::HASH_BLOCK) (for the default 1 MiB chunks, one
//! chunk per segment). Each segment is decrypted and hashed by one thread, as a unit; segments go
//! to whichever thread is free. The reader path reads each segment's ciphertext straight into
//! its final place in the plaintext buffer and the tags into a small vector, on the calling
//! thread, while the workers decrypt the segments already read.
//!
//! Errors are deterministic whatever the scheduling: reading errors (truncation, trailing bytes,
//! I/O) win over authentication failures, and among those the lowest failing chunk index is
//! reported.

use std::io::Read;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

use blake3::hazmat::ChainingValue;
use ring::aead::{Aad, LessSafeKey, Tag};

use super::digest::block_cv;
use super::{SealError, SealedHeader, TAG_LEN, chunk_nonce};

/// How the plaintext is cut into segments, chunks and hash blocks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    /// Plaintext length.
    pub len: usize,
    chunk: usize,
    chunks: u64,
    /// Segment length: a multiple of `chunk` and `block` (the last segment may be shorter).
    seg: usize,
    /// Number of segments (at least 1: an empty plaintext still has one empty chunk).
    pub segs: usize,
    block: usize,
    /// Whether workers compute per-block chaining values (`len > block`); otherwise the digest
    /// is a single BLAKE3 call over the (at most one block of) plaintext.
    pub tree: bool,
}

impl Plan {
    pub fn new(header: &SealedHeader, block: usize) -> Result<Plan, SealError> {
        let len = usize::try_from(header.plaintext_len).map_err(|_| SealError::TooLarge)?;
        let chunk = header.chunk_size as usize;
        let lcm = lcm(chunk as u128, block as u128);
        let seg = usize::try_from(lcm.min(len.max(1) as u128)).map_err(|_| SealError::TooLarge)?;
        Ok(Plan {
            len,
            chunk,
            chunks: header.chunk_count(),
            seg,
            segs: len.div_ceil(seg).max(1),
            block,
            tree: len > block,
        })
    }

    /// Plaintext offset of segment `s`.
    fn seg_start(&self, s: usize) -> usize {
        s * self.seg
    }

    /// Number of chunks in a segment of `seg_len` bytes.
    fn seg_chunks(&self, seg_len: usize) -> usize {
        if self.len == 0 {
            1
        } else {
            seg_len.div_ceil(self.chunk)
        }
    }

    /// Splits `out` (the whole plaintext buffer) into its segments, in order.
    fn segments<'a>(&self, out: &'a mut [u8]) -> impl Iterator<Item = (usize, &'a mut [u8])> {
        let seg = self.seg;
        let segs = self.segs;
        let mut rest = out;
        (0..segs).map(move |s| {
            let take = seg.min(rest.len());
            let (head, tail) = std::mem::take(&mut rest).split_at_mut(take);
            rest = tail;
            (s, head)
        })
    }
}

fn lcm(a: u128, b: u128) -> u128 {
    fn gcd(mut a: u128, mut b: u128) -> u128 {
        while b != 0 {
            (a, b) = (b, a % b);
        }
        a
    }
    a / gcd(a, b).max(1) * b
}

/// What every worker shares.
pub(crate) struct Ctx<'a> {
    pub key: &'a LessSafeKey,
    pub header: &'a SealedHeader,
    pub plan: Plan,
    /// Lowest chunk index that failed authentication so far (`u64::MAX`: none).
    fail: AtomicU64,
}

impl<'a> Ctx<'a> {
    pub fn new(key: &'a LessSafeKey, header: &'a SealedHeader, plan: Plan) -> Self {
        Ctx {
            key,
            header,
            plan,
            fail: AtomicU64::new(u64::MAX),
        }
    }
}

/// Where a segment's ciphertext comes from.
enum Src<'a> {
    /// The whole sealed body (after the header), `ct ‖ tag` per chunk: copied into place here.
    Body(&'a [u8]),
    /// Ciphertext already in place; these are the segment's tags.
    Tags(Vec<[u8; TAG_LEN]>),
}

/// The chaining values of one segment's blocks, or `None` if a chunk failed (recorded in
/// `ctx.fail`) or was skipped because an earlier chunk had already failed.
type SegOut = Option<Vec<ChainingValue>>;

fn open_segment(
    ctx: &Ctx<'_>,
    s: usize,
    out: &mut [u8],
    src: &Src<'_>,
) -> Result<SegOut, SealError> {
    let plan = &ctx.plan;
    let base = plan.seg_start(s);
    let first = (base / plan.chunk) as u64;
    let aad = ctx.header.header_digest;
    let seg_len = out.len();
    let mut cvs = Vec::new();
    let mut hashed = 0usize;
    for j in 0..plan.seg_chunks(seg_len) {
        let index = first + j as u64;
        if ctx.fail.load(Ordering::Relaxed) < index {
            return Ok(None);
        }
        let start = j * plan.chunk;
        let end = seg_len.min(start + plan.chunk);
        let piece = out.get_mut(start..end).ok_or(SealError::Truncated)?;
        let tag: [u8; TAG_LEN] = match src {
            Src::Body(body) => {
                let off = usize::try_from(index)
                    .ok()
                    .and_then(|i| i.checked_mul(plan.chunk + TAG_LEN))
                    .ok_or(SealError::TooLarge)?;
                let ct = body
                    .get(off..off + piece.len())
                    .ok_or(SealError::Truncated)?;
                piece.copy_from_slice(ct);
                let t = off + piece.len();
                body.get(t..t + TAG_LEN)
                    .and_then(|t| t.try_into().ok())
                    .ok_or(SealError::Truncated)?
            }
            Src::Tags(tags) => *tags.get(j).ok_or(SealError::Truncated)?,
        };
        let nonce = chunk_nonce(&ctx.header.nonce_prefix, index, index + 1 == plan.chunks)?;
        if ctx
            .key
            .open_in_place_separate_tag(nonce, Aad::from(&aad), Tag::from(tag), piece, 0..)
            .is_err()
        {
            ctx.fail.fetch_min(index, Ordering::Relaxed);
            return Ok(None);
        }
        if plan.tree {
            // Hash every block this chunk completed (blocks never straddle segments).
            while hashed < end && (hashed + plan.block <= end || end == seg_len) {
                let b_end = end.min(hashed + plan.block);
                let block = out.get(hashed..b_end).ok_or(SealError::Truncated)?;
                cvs.push(block_cv(block, (base + hashed) as u64));
                hashed = b_end;
            }
        }
    }
    Ok(Some(cvs))
}

/// Combines per-segment results (any order) into the blocks' chaining values, in order.
fn collect(
    ctx: &Ctx<'_>,
    mut parts: Vec<(usize, SegOut)>,
) -> Result<Vec<ChainingValue>, SealError> {
    let fail = ctx.fail.load(Ordering::Relaxed);
    if fail != u64::MAX {
        return Err(SealError::ChunkAuthFailed { index: fail });
    }
    parts.sort_unstable_by_key(|(s, _)| *s);
    let mut cvs = Vec::new();
    for (_, part) in parts {
        // No failure was recorded, so every segment finished.
        cvs.extend(part.ok_or(SealError::Crypto)?);
    }
    Ok(cvs)
}

fn join_all<T>(
    handles: Vec<std::thread::ScopedJoinHandle<'_, Result<Vec<T>, SealError>>>,
    mut acc: Vec<T>,
) -> Result<Vec<T>, SealError> {
    let mut err = None;
    for h in handles {
        match h.join() {
            Ok(Ok(part)) => acc.extend(part),
            Ok(Err(e)) => err = err.or(Some(e)),
            // Workers index only through checked accessors; propagate if one panicked anyway.
            Err(p) => std::panic::resume_unwind(p),
        }
    }
    err.map_or(Ok(acc), Err)
}

/// Decrypts `body` (the sealed file after its header, length already checked) into `out`.
pub(crate) fn open_body(
    ctx: &Ctx<'_>,
    body: &[u8],
    out: &mut [u8],
    threads: usize,
) -> Result<Vec<ChainingValue>, SealError> {
    let threads = threads.clamp(1, ctx.plan.segs);
    let src = Src::Body(body);
    let queue = Mutex::new(ctx.plan.segments(out));
    let work = || -> Result<Vec<(usize, SegOut)>, SealError> {
        let mut done = Vec::new();
        loop {
            let next = queue.lock().unwrap_or_else(|p| p.into_inner()).next();
            let Some((s, seg)) = next else {
                return Ok(done);
            };
            done.push((s, open_segment(ctx, s, seg, &src)?));
        }
    };
    let parts = if threads == 1 {
        work()?
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> = (1..threads).map(|_| scope.spawn(work)).collect();
            let mine = work();
            let all = join_all(handles, Vec::new());
            let mut mine = mine?;
            mine.extend(all?);
            Ok::<_, SealError>(mine)
        })?
    };
    collect(ctx, parts)
}

/// Reads exactly `buf.len()` bytes; a short read is [`SealError::Truncated`].
pub(crate) fn read_exact<R: Read>(reader: &mut R, buf: &mut [u8]) -> Result<(), SealError> {
    if read_full(reader, buf)? < buf.len() {
        return Err(SealError::Truncated);
    }
    Ok(())
}

/// Reads until `buf` is full or the input ends; returns how many bytes were read.
pub(crate) fn read_full<R: Read>(reader: &mut R, buf: &mut [u8]) -> Result<usize, SealError> {
    let mut n = 0;
    while n < buf.len() {
        let rest = buf.get_mut(n..).unwrap_or_default();
        match reader.read(rest) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(SealError::Io(e.kind())),
        }
    }
    Ok(n)
}

/// Reads one segment's chunks: ciphertext into `seg`, tags returned.
fn read_segment<R: Read>(
    plan: &Plan,
    reader: &mut R,
    seg: &mut [u8],
) -> Result<Vec<[u8; TAG_LEN]>, SealError> {
    let n = plan.seg_chunks(seg.len());
    let mut tags = Vec::with_capacity(n);
    let mut pieces = seg.chunks_mut(plan.chunk);
    for _ in 0..n {
        read_exact(reader, pieces.next().unwrap_or_default())?;
        let mut tag = [0u8; TAG_LEN];
        read_exact(reader, &mut tag)?;
        tags.push(tag);
    }
    Ok(tags)
}

/// Reads the body from `reader` (positioned just after the header) into `out` while `threads`
/// workers decrypt and hash the segments already read; then checks the input ends there.
pub(crate) fn open_reader<R: Read>(
    ctx: &Ctx<'_>,
    mut reader: R,
    out: &mut [u8],
    threads: usize,
) -> Result<Vec<ChainingValue>, SealError> {
    let plan = ctx.plan;
    let threads = threads.clamp(1, plan.segs);
    let parts = if threads == 1 {
        let mut parts = Vec::with_capacity(plan.segs);
        let mut read_err = None;
        for (s, seg) in plan.segments(out) {
            match read_segment(&plan, &mut reader, seg) {
                Ok(tags) => parts.push((s, open_segment(ctx, s, seg, &Src::Tags(tags))?)),
                Err(e) => {
                    read_err = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = read_err {
            return Err(e);
        }
        parts
    } else {
        // A few segments of read-ahead: enough to keep the workers busy, few enough that what
        // was read is still in cache when it is decrypted.
        let (tx, rx) = mpsc::sync_channel::<(usize, &mut [u8], Vec<[u8; TAG_LEN]>)>(threads * 2);
        let rx = Mutex::new(rx);
        std::thread::scope(|scope| {
            let work = || -> Result<Vec<(usize, SegOut)>, SealError> {
                let mut done = Vec::new();
                loop {
                    let next = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
                    let Ok((s, seg, tags)) = next else {
                        return Ok(done);
                    };
                    done.push((s, open_segment(ctx, s, seg, &Src::Tags(tags))?));
                }
            };
            let handles: Vec<_> = (0..threads).map(|_| scope.spawn(work)).collect();
            let mut read_err = None;
            for (s, seg) in plan.segments(out) {
                match read_segment(&plan, &mut reader, seg) {
                    Ok(tags) => {
                        if tx.send((s, seg, tags)).is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        read_err = Some(e);
                        break;
                    }
                }
            }
            drop(tx);
            let parts = join_all(handles, Vec::new());
            match read_err {
                Some(e) => Err(e),
                None => parts,
            }
        })?
    };
    let mut probe = [0u8; 1];
    if read_full(&mut reader, &mut probe)? != 0 {
        return Err(SealError::TrailingData);
    }
    collect(ctx, parts)
}
