//! `confidant_sealed`: the sealed model format, a [`bundle`] of files encrypted under a
//! [`ModelKey`] (defined in the verification core, which wraps it to enclaves).
//!
//! ```text
//! header (all integers big-endian)
//!   8   magic "CONFSEAL"
//!   2   version (2)
//!   1   key id length k, 1 ..= 64
//!   k   key id (UTF-8, no control characters)
//!   4   chunk size c, MIN_CHUNK_SIZE ..= MAX_CHUNK_SIZE
//!   7   nonce prefix (random per file)
//!   8   plaintext length L, ≤ MAX_PLAINTEXT_LEN
//!   32  model digest: BLAKE3-256 of the plaintext bundle (what evidence binds; see [`digest`])
//!   32  SHA-256 of the bundle manifest
//! body
//!   n = max(1, ceil(L / c)) chunks; chunk i = AES-256-GCM(plaintext[i*c ..][..c]) ‖ tag(16)
//!   nonce_i = prefix(7) ‖ i as u32 BE ‖ (1 if i == n-1 else 0)
//!   aad_i   = SHA-256(header bytes)
//! ```
//! This is the STREAM construction (Hoang, Reyhanitabar, Rogaway, Vizár 2015): the counter stops
//! reordering and swapping, the last-chunk flag stops truncation at a chunk boundary, and the
//! header digest in every chunk's AAD authenticates the header. The file length is fully
//! determined by the header, so truncation and appended bytes are reported before any decryption.
//!
//! Version 1 had the same layout with SHA-256 as the model digest; it is refused
//! ([`SealError::UnsupportedVersion`]). BLAKE3 replaced it because SHA-256 (about 1.4 GB/s per
//! core even with SHA-NI) capped unsealing at a fraction of AES-GCM's speed; see [`digest`].
//!
//! [`unseal`] (sealed bytes in memory) and [`unseal_from_reader`] (a file, read once, never held
//! whole) allocate the plaintext buffer once, put each ciphertext chunk in its final place and
//! decrypt it there: there is never a second copy of the model, and the buffer is zeroized on
//! drop. Decryption and the model digest run in the same pass over each chunk, on up to
//! [`default_threads`] threads (see `open.rs`); the digest is then checked against the header
//! before the plaintext is returned.
#![forbid(unsafe_code)]

pub mod bundle;
pub mod digest;
mod open;
mod plainbuf;

use std::io::Read;

use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};

use confidant_attestation::digest::Blake3Digest;
use confidant_attestation::modelkey::ModelKey;

use plainbuf::PlainBuf;

pub use bundle::{Bundle, BundleError, FileEntry, encode_bundle};
pub use digest::{MODEL_DIGEST_ALG, model_digest};

use bundle::{Reader, sha256};

/// Magic bytes at the start of a sealed model.
pub const SEAL_MAGIC: &[u8; 8] = b"CONFSEAL";
/// The only format version this code writes and reads (2: BLAKE3 model digest).
pub const SEAL_VERSION: u16 = 2;
/// Maximum key id length in bytes.
pub const MAX_KEY_ID_LEN: usize = 64;
/// Default chunk size: 1 MiB.
pub const DEFAULT_CHUNK_SIZE: u32 = 1 << 20;
/// Smallest accepted chunk size.
pub const MIN_CHUNK_SIZE: u32 = 64;
/// Largest accepted chunk size: 64 MiB.
pub const MAX_CHUNK_SIZE: u32 = 64 << 20;
/// Largest accepted plaintext: 256 GiB (also bounded by the 2^32 chunk counter).
pub const MAX_PLAINTEXT_LEN: u64 = 256 << 30;
/// AES-GCM tag length.
pub const TAG_LEN: usize = 16;
/// Nonce prefix length.
pub const NONCE_PREFIX_LEN: usize = 7;
/// Most threads one unsealing uses.
pub const MAX_THREADS: usize = 8;

/// Threads [`unseal`] and [`unseal_from_reader`] use: the available parallelism, at most
/// [`MAX_THREADS`].
pub fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(std::num::NonZeroUsize::get)
        .unwrap_or(1)
        .min(MAX_THREADS)
}

/// The header field a [`SealError::HeaderMalformed`] refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderField {
    KeyId,
    ChunkSize,
    PlaintextLength,
}

/// Why a model could not be sealed or unsealed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("not a sealed model (bad magic)")]
    BadMagic,
    #[error("unsupported sealed model version {0}")]
    UnsupportedVersion(u16),
    #[error("sealed model header field {0:?} is malformed")]
    HeaderMalformed(HeaderField),
    #[error("sealed model is truncated")]
    Truncated,
    #[error("bytes after the last chunk")]
    TrailingData,
    #[error("chunk {index} failed authentication (wrong key, or the file was modified)")]
    ChunkAuthFailed { index: u64 },
    #[error("plaintext digest differs from the header")]
    DigestMismatch,
    #[error("manifest digest differs from the header")]
    ManifestMismatch,
    #[error("sealed model is too large")]
    TooLarge,
    #[error("sealed with a different key id")]
    WrongKeyId,
    #[error("invalid key id")]
    InvalidKeyId,
    #[error("invalid bundle: {0}")]
    Bundle(#[from] BundleError),
    #[error("encryption failed")]
    Crypto,
    #[error("reading the sealed model failed: {0}")]
    Io(std::io::ErrorKind),
}

/// The parsed header of a sealed model, readable without the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedHeader {
    pub version: u16,
    pub key_id: String,
    pub chunk_size: u32,
    pub nonce_prefix: [u8; NONCE_PREFIX_LEN],
    pub plaintext_len: u64,
    /// The model digest: BLAKE3-256 of the plaintext bundle ([`model_digest`]).
    pub model_digest: Blake3Digest,
    pub manifest_digest: [u8; 32],
    encoded_len: usize,
    header_digest: [u8; 32],
}

impl SealedHeader {
    /// Parses the header at the start of `bytes` (which may hold the whole file or only a
    /// prefix). Checks structure only: authenticity is established by [`unseal`].
    pub fn parse(bytes: &[u8]) -> Result<Self, SealError> {
        let mut r = Reader::new(bytes);
        let magic = r.take(SEAL_MAGIC.len()).ok_or(SealError::Truncated)?;
        if magic != SEAL_MAGIC {
            return Err(SealError::BadMagic);
        }
        let version = r.u16().ok_or(SealError::Truncated)?;
        if version != SEAL_VERSION {
            return Err(SealError::UnsupportedVersion(version));
        }
        let key_id_len = r.u8().ok_or(SealError::Truncated)? as usize;
        let key_id = r.take(key_id_len).ok_or(SealError::Truncated)?;
        let key_id = std::str::from_utf8(key_id)
            .ok()
            .filter(|k| key_id_ok(k))
            .ok_or(SealError::HeaderMalformed(HeaderField::KeyId))?;
        let chunk_size = r.u32().ok_or(SealError::Truncated)?;
        if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&chunk_size) {
            return Err(SealError::HeaderMalformed(HeaderField::ChunkSize));
        }
        let nonce_prefix = r.array().ok_or(SealError::Truncated)?;
        let plaintext_len = r.u64().ok_or(SealError::Truncated)?;
        if plaintext_len > MAX_PLAINTEXT_LEN || chunk_count(plaintext_len, chunk_size) > 1 << 32 {
            return Err(SealError::TooLarge);
        }
        let model_digest = Blake3Digest::from_bytes(r.array().ok_or(SealError::Truncated)?);
        let manifest_digest = r.array().ok_or(SealError::Truncated)?;
        let encoded_len = r.pos();
        let header_digest = sha256(bytes.get(..encoded_len).ok_or(SealError::Truncated)?);
        Ok(SealedHeader {
            version,
            key_id: key_id.to_owned(),
            chunk_size,
            nonce_prefix,
            plaintext_len,
            model_digest,
            manifest_digest,
            encoded_len,
            header_digest,
        })
    }

    /// Length of the encoded header in bytes.
    pub fn encoded_len(&self) -> usize {
        self.encoded_len
    }

    /// Number of chunks in the body.
    pub fn chunk_count(&self) -> u64 {
        chunk_count(self.plaintext_len, self.chunk_size)
    }

    /// Total length of a well-formed sealed file with this header.
    pub fn sealed_len(&self) -> u64 {
        self.encoded_len as u64 + self.plaintext_len + self.chunk_count() * TAG_LEN as u64
    }

    /// Fails with [`SealError::WrongKeyId`] unless the file was sealed under `expected`.
    pub fn expect_key_id(&self, expected: &str) -> Result<(), SealError> {
        if self.key_id == expected {
            Ok(())
        } else {
            Err(SealError::WrongKeyId)
        }
    }

    fn encode(
        key_id: &str,
        chunk_size: u32,
        nonce_prefix: &[u8; NONCE_PREFIX_LEN],
        plaintext_len: u64,
        model_digest: &Blake3Digest,
        manifest_digest: &[u8; 32],
    ) -> Vec<u8> {
        let mut out = Vec::with_capacity(94 + key_id.len());
        out.extend_from_slice(SEAL_MAGIC);
        out.extend_from_slice(&SEAL_VERSION.to_be_bytes());
        out.push(key_id.len() as u8);
        out.extend_from_slice(key_id.as_bytes());
        out.extend_from_slice(&chunk_size.to_be_bytes());
        out.extend_from_slice(nonce_prefix);
        out.extend_from_slice(&plaintext_len.to_be_bytes());
        out.extend_from_slice(model_digest.as_bytes());
        out.extend_from_slice(manifest_digest);
        out
    }
}

fn key_id_ok(key_id: &str) -> bool {
    !key_id.is_empty() && key_id.len() <= MAX_KEY_ID_LEN && !key_id.chars().any(char::is_control)
}

fn chunk_count(plaintext_len: u64, chunk_size: u32) -> u64 {
    plaintext_len.div_ceil(u64::from(chunk_size)).max(1)
}

fn chunk_nonce(
    prefix: &[u8; NONCE_PREFIX_LEN],
    index: u64,
    last: bool,
) -> Result<Nonce, SealError> {
    let counter = u32::try_from(index).map_err(|_| SealError::TooLarge)?;
    let mut n = [0u8; aead::NONCE_LEN];
    n[..NONCE_PREFIX_LEN].copy_from_slice(prefix);
    n[NONCE_PREFIX_LEN..NONCE_PREFIX_LEN + 4].copy_from_slice(&counter.to_be_bytes());
    n[aead::NONCE_LEN - 1] = u8::from(last);
    Ok(Nonce::assume_unique_for_key(n))
}

fn aead_key(key: &ModelKey) -> Result<LessSafeKey, SealError> {
    UnboundKey::new(&aead::AES_256_GCM, key.expose_secret())
        .map(LessSafeKey::new)
        .map_err(|_| SealError::Crypto)
}

/// Seals a bundle (see [`encode_bundle`]) with the default 1 MiB chunk size.
pub fn seal<R: rand::RngCore + rand::CryptoRng + ?Sized>(
    bundle_plaintext: &[u8],
    key: &ModelKey,
    key_id: &str,
    rng: &mut R,
) -> Result<Vec<u8>, SealError> {
    seal_with_chunk_size(bundle_plaintext, key, key_id, DEFAULT_CHUNK_SIZE, rng)
}

/// Seals a bundle with an explicit chunk size.
pub fn seal_with_chunk_size<R: rand::RngCore + rand::CryptoRng + ?Sized>(
    bundle_plaintext: &[u8],
    key: &ModelKey,
    key_id: &str,
    chunk_size: u32,
    rng: &mut R,
) -> Result<Vec<u8>, SealError> {
    let manifest_digest = Bundle::parse(bundle_plaintext)?.manifest_digest();
    let mut prefix = [0u8; NONCE_PREFIX_LEN];
    rng.fill_bytes(&mut prefix);
    seal_raw(
        bundle_plaintext,
        key,
        key_id,
        chunk_size,
        &prefix,
        &manifest_digest,
        None,
    )
}

/// Seals arbitrary bytes. `digest_override` exists only so tests can write a wrong digest.
fn seal_raw(
    plaintext: &[u8],
    key: &ModelKey,
    key_id: &str,
    chunk_size: u32,
    prefix: &[u8; NONCE_PREFIX_LEN],
    manifest_digest: &[u8; 32],
    digest_override: Option<Blake3Digest>,
) -> Result<Vec<u8>, SealError> {
    if !key_id_ok(key_id) {
        return Err(SealError::InvalidKeyId);
    }
    if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&chunk_size) {
        return Err(SealError::HeaderMalformed(HeaderField::ChunkSize));
    }
    let len = plaintext.len() as u64;
    let chunks = chunk_count(len, chunk_size);
    if len > MAX_PLAINTEXT_LEN || chunks > 1 << 32 {
        return Err(SealError::TooLarge);
    }
    let digest = digest_override.unwrap_or_else(|| model_digest(plaintext));
    let mut out = SealedHeader::encode(key_id, chunk_size, prefix, len, &digest, manifest_digest);
    let aad = sha256(&out);
    out.reserve_exact(plaintext.len() + chunks as usize * TAG_LEN);
    let key = aead_key(key)?;
    let mut pieces = plaintext.chunks(chunk_size as usize);
    for index in 0..chunks {
        let piece = pieces.next().unwrap_or_default();
        let start = out.len();
        out.extend_from_slice(piece);
        let nonce = chunk_nonce(prefix, index, index + 1 == chunks)?;
        let tag = key
            .seal_in_place_separate_tag(nonce, Aad::from(&aad), &mut out[start..])
            .map_err(|_| SealError::Crypto)?;
        out.extend_from_slice(tag.as_ref());
    }
    Ok(out)
}

/// A decrypted, verified model. The plaintext is zeroized when this is dropped.
pub struct UnsealedModel {
    header: SealedHeader,
    plaintext: PlainBuf,
    entries: Vec<FileEntry>,
    manifest_len: usize,
}

impl std::fmt::Debug for UnsealedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnsealedModel")
            .field("header", &self.header)
            .field("files", &self.entries)
            .finish_non_exhaustive()
    }
}

impl UnsealedModel {
    /// The authenticated header.
    pub fn header(&self) -> &SealedHeader {
        &self.header
    }

    /// The model digest (BLAKE3-256 of the plaintext), checked against the header.
    pub fn digest(&self) -> &Blake3Digest {
        &self.header.model_digest
    }

    /// The whole plaintext bundle.
    pub fn plaintext(&self) -> &[u8] {
        &self.plaintext
    }

    /// The files, borrowed from the plaintext buffer.
    pub fn bundle(&self) -> Bundle<'_> {
        Bundle::from_parts(&self.plaintext, &self.entries, self.manifest_len)
    }
}

/// Authenticates and decrypts a sealed model held in memory into one zeroize-on-drop buffer,
/// checks the model digest and the bundle manifest against the header. Uses
/// [`default_threads`] threads.
pub fn unseal(sealed: &[u8], key: &ModelKey) -> Result<UnsealedModel, SealError> {
    unseal_with_threads(sealed, key, default_threads())
}

/// [`unseal`] on at most `threads` threads (1: on the calling thread only).
pub fn unseal_with_threads(
    sealed: &[u8],
    key: &ModelKey,
    threads: usize,
) -> Result<UnsealedModel, SealError> {
    let (header, plaintext) = unseal_raw(sealed, key, threads)?;
    finish(header, plaintext)
}

/// Like [`unseal`], reading the sealed model from `reader` once, front to back, without ever
/// holding the ciphertext: each chunk is read straight into its place in the plaintext buffer.
/// Peak memory is the plaintext plus a few tags.
///
/// `sealed_len` is the input's total length (for a file, its metadata length). It is checked
/// against the header before anything is allocated, so a truncated or extended file is
/// reported ([`SealError::Truncated`], [`SealError::TrailingData`]) before any decryption, as
/// with [`unseal`]; if the reader then yields fewer or more bytes (the file changed while being
/// read), the same errors are reported instead of authentication failures.
pub fn unseal_from_reader<R: Read>(
    reader: R,
    sealed_len: u64,
    key: &ModelKey,
) -> Result<UnsealedModel, SealError> {
    unseal_from_reader_with_threads(reader, sealed_len, key, default_threads())
}

/// [`unseal_from_reader`] with at most `threads` decrypting threads besides the reading one
/// (1: everything on the calling thread).
pub fn unseal_from_reader_with_threads<R: Read>(
    mut reader: R,
    sealed_len: u64,
    key: &ModelKey,
    threads: usize,
) -> Result<UnsealedModel, SealError> {
    let header = read_header(&mut reader)?;
    check_len(&header, sealed_len)?;
    let aes = aead_key(key)?;
    let plan = open::Plan::new(&header, digest::HASH_BLOCK)?;
    let mut plaintext = alloc_plaintext(plan.len)?;
    let cvs = {
        let ctx = open::Ctx::new(&aes, &header, plan);
        open::open_reader(&ctx, reader, &mut plaintext, threads)?
    };
    check_digest(&header, &plan, &plaintext, &cvs)?;
    finish(header, plaintext)
}

/// Reads and parses just the header from the start of `reader`.
fn read_header<R: Read>(reader: &mut R) -> Result<SealedHeader, SealError> {
    // magic ‖ version ‖ key id length, then the rest, whose length the key id length gives.
    const FIXED: usize = 8 + 2 + 1;
    let mut head = vec![0u8; FIXED];
    let n = open::read_full(reader, &mut head)?;
    head.truncate(n);
    match SealedHeader::parse(&head) {
        // Every header is longer than FIXED; parse reports a bad magic or version first.
        Err(SealError::Truncated) if n == FIXED => {}
        Err(e) => return Err(e),
        Ok(_) => return Err(SealError::Truncated),
    }
    let key_id_len = head.last().copied().unwrap_or_default() as usize;
    let rest = key_id_len + 4 + NONCE_PREFIX_LEN + 8 + 32 + 32;
    head.resize(FIXED + rest, 0);
    let n = open::read_full(reader, head.get_mut(FIXED..).unwrap_or_default())?;
    head.truncate(FIXED + n);
    SealedHeader::parse(&head)
}

fn check_len(header: &SealedHeader, actual: u64) -> Result<(), SealError> {
    let expected = header.sealed_len();
    if actual < expected {
        return Err(SealError::Truncated);
    }
    if actual > expected {
        return Err(SealError::TrailingData);
    }
    Ok(())
}

/// The zeroed, zeroize-on-drop plaintext buffer, allocated once at its final size. Refuses
/// (instead of aborting) a length that cannot be mapped.
fn alloc_plaintext(len: usize) -> Result<PlainBuf, SealError> {
    PlainBuf::new(len).map_err(|_| SealError::TooLarge)
}

fn check_digest(
    header: &SealedHeader,
    plan: &open::Plan,
    plaintext: &[u8],
    cvs: &[blake3::hazmat::ChainingValue],
) -> Result<(), SealError> {
    let actual = if plan.tree {
        digest::root(cvs, digest::HASH_BLOCK, plaintext.len() as u64)
    } else {
        *blake3::hash(plaintext).as_bytes()
    };
    if actual != *header.model_digest.as_bytes() {
        return Err(SealError::DigestMismatch);
    }
    Ok(())
}

fn finish(header: SealedHeader, plaintext: PlainBuf) -> Result<UnsealedModel, SealError> {
    let (entries, manifest_len) = bundle::parse_manifest(&plaintext)?;
    let manifest = plaintext.get(..manifest_len).ok_or(SealError::Crypto)?;
    if sha256(manifest) != header.manifest_digest {
        return Err(SealError::ManifestMismatch);
    }
    Ok(UnsealedModel {
        header,
        plaintext,
        entries,
        manifest_len,
    })
}

fn unseal_raw(
    sealed: &[u8],
    key: &ModelKey,
    threads: usize,
) -> Result<(SealedHeader, PlainBuf), SealError> {
    let header = SealedHeader::parse(sealed)?;
    check_len(&header, sealed.len() as u64)?;
    let aes = aead_key(key)?;
    let plan = open::Plan::new(&header, digest::HASH_BLOCK)?;
    // The plaintext is shorter than `sealed`, which is already in memory: this allocation is
    // bounded by the input and by MAX_PLAINTEXT_LEN.
    let mut plaintext = alloc_plaintext(plan.len)?;
    let body = sealed
        .get(header.encoded_len..)
        .ok_or(SealError::Truncated)?;
    let cvs = {
        let ctx = open::Ctx::new(&aes, &header, plan);
        open::open_body(&ctx, body, &mut plaintext, threads)?
    };
    check_digest(&header, &plan, &plaintext, &cvs)?;
    Ok((header, plaintext))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> ModelKey {
        ModelKey::from_bytes([7; 32])
    }

    fn raw(plaintext: &[u8], chunk: u32) -> Vec<u8> {
        seal_raw(plaintext, &key(), "k1", chunk, &[1; 7], &[0; 32], None).unwrap()
    }

    #[test]
    fn raw_roundtrip_sizes() {
        for len in [0usize, 1, 63, 64, 65, 128, 129, 1000] {
            let pt: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let sealed = raw(&pt, 64);
            let h = SealedHeader::parse(&sealed).unwrap();
            assert_eq!(h.sealed_len(), sealed.len() as u64);
            let (_, out) = unseal_raw(&sealed, &key(), 2).unwrap();
            assert_eq!(&out[..], &pt[..]);
            // Not bundles: the reader path gets through decryption and the digest, then stops
            // at the bundle manifest (a bad magic, or too short to hold one).
            let err = unseal_from_reader(&sealed[..], sealed.len() as u64, &key()).unwrap_err();
            assert!(matches!(err, SealError::Bundle(_)), "len {len}: {err:?}");
        }
    }

    #[test]
    fn empty_plaintext_is_one_empty_chunk() {
        let sealed = raw(b"", 64);
        let h = SealedHeader::parse(&sealed).unwrap();
        assert_eq!(h.chunk_count(), 1);
        assert_eq!(sealed.len(), h.encoded_len() + TAG_LEN);
        assert_eq!(h.model_digest.as_bytes(), blake3::hash(b"").as_bytes());
        let len = sealed.len() as u64;
        for threads in [1, 2] {
            let (_, out) = unseal_raw(&sealed, &key(), threads).unwrap();
            assert!(out.is_empty());
            assert_eq!(
                unseal_from_reader_with_threads(&sealed[..], len, &key(), threads).unwrap_err(),
                SealError::Bundle(BundleError::Truncated)
            );
            // Without its tag, or with the tag altered.
            let cut = &sealed[..sealed.len() - 1];
            assert_eq!(
                unseal_from_reader_with_threads(cut, len, &key(), threads).unwrap_err(),
                SealError::Truncated
            );
            let mut bad = sealed.clone();
            bad[h.encoded_len()] ^= 1;
            assert_eq!(
                unseal_raw(&bad, &key(), threads).unwrap_err(),
                SealError::ChunkAuthFailed { index: 0 }
            );
            assert_eq!(
                unseal_from_reader_with_threads(&bad[..], len, &key(), threads).unwrap_err(),
                SealError::ChunkAuthFailed { index: 0 }
            );
        }
    }

    #[test]
    fn digest_mismatch() {
        let sealed = seal_raw(
            b"hello",
            &key(),
            "k1",
            64,
            &[1; 7],
            &[0; 32],
            Some(Blake3Digest::from_bytes([9; 32])),
        )
        .unwrap();
        assert_eq!(
            unseal_raw(&sealed, &key(), 2).unwrap_err(),
            SealError::DigestMismatch
        );
    }

    #[test]
    fn manifest_mismatch() {
        let pt = encode_bundle(&[("a", b"x")]).unwrap();
        let sealed = seal_raw(&pt, &key(), "k1", 64, &[1; 7], &[0; 32], None).unwrap();
        assert_eq!(
            unseal(&sealed, &key()).unwrap_err(),
            SealError::ManifestMismatch
        );
    }

    #[test]
    fn nonce_layout() {
        let n = chunk_nonce(&[0xaa; 7], 0x0102_0304, true).unwrap();
        assert_eq!(
            n.as_ref(),
            &[0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 1, 2, 3, 4, 1]
        );
    }
}
