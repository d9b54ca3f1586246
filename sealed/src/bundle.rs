//! The plaintext container that holds a model's files before sealing.
//!
//! ```text
//! offset  size  field
//! 0       8     magic "CONFBNDL"
//! 8       4     file count n, u32 big-endian, 0 ..= MAX_FILES
//! 12      ..    n entries: name_len u16 BE (1..=255) ‖ name (UTF-8, no control characters)
//!                          ‖ offset u64 BE ‖ length u64 BE
//! ..      ..    data region: the files' bytes, in entry order, back to back
//! ```
//! The *manifest* is everything before the data region; its SHA-256 is recorded in the sealed
//! header. Offsets are relative to the start of the data region and must be exactly the running
//! sum of the previous lengths, the lengths must add up to the data region, and names must be
//! unique, so every bundle has exactly one encoding.

use std::borrow::Cow;
use std::ops::Range;

/// Magic bytes at the start of a bundle.
pub const BUNDLE_MAGIC: &[u8; 8] = b"CONFBNDL";
/// Maximum number of files in a bundle.
pub const MAX_FILES: u32 = 1024;
/// Maximum length of a file name in bytes.
pub const MAX_NAME_LEN: usize = 255;

/// Why a bundle could not be encoded or parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    #[error("bundle magic is not CONFBNDL")]
    BadMagic,
    #[error("bundle is truncated")]
    Truncated,
    #[error("bundle lists more than {MAX_FILES} files")]
    TooManyFiles,
    #[error("file name {index} is empty, too long, not UTF-8 or has control characters")]
    BadName { index: usize },
    #[error("file name {index} appears twice")]
    DuplicateName { index: usize },
    #[error("file {index} has an offset or length that does not follow the previous file")]
    BadLayout { index: usize },
    #[error("bytes after the last file")]
    TrailingData,
}

/// One manifest entry: a name and where its bytes are in the bundle buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    name: String,
    range: Range<usize>,
}

impl FileEntry {
    /// The file's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file's length in bytes.
    pub fn len(&self) -> usize {
        self.range.len()
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> bool {
        self.range.is_empty()
    }
}

/// A parsed bundle that borrows every file's bytes from the buffer it was parsed from.
#[derive(Debug, Clone)]
pub struct Bundle<'a> {
    bytes: &'a [u8],
    entries: Cow<'a, [FileEntry]>,
    manifest_len: usize,
}

impl<'a> Bundle<'a> {
    /// Parses and validates a bundle.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, BundleError> {
        let (entries, manifest_len) = parse_manifest(bytes)?;
        Ok(Bundle {
            bytes,
            entries: Cow::Owned(entries),
            manifest_len,
        })
    }

    pub(crate) fn from_parts(
        bytes: &'a [u8],
        entries: &'a [FileEntry],
        manifest_len: usize,
    ) -> Self {
        Bundle {
            bytes,
            entries: Cow::Borrowed(entries),
            manifest_len,
        }
    }

    /// The manifest entries, in order.
    pub fn entries(&self) -> &[FileEntry] {
        &self.entries
    }

    /// Every file as (name, bytes), in manifest order.
    pub fn files(&self) -> impl Iterator<Item = (&str, &'a [u8])> + '_ {
        let bytes = self.bytes;
        self.entries.iter().map(move |e| {
            (
                e.name.as_str(),
                bytes.get(e.range.clone()).unwrap_or_default(),
            )
        })
    }

    /// The bytes of the file called `name`.
    pub fn get(&self, name: &str) -> Option<&'a [u8]> {
        let bytes = self.bytes;
        self.entries
            .iter()
            .find(|e| e.name == name)
            .and_then(|e| bytes.get(e.range.clone()))
    }

    /// The encoded manifest (magic, count and entry table).
    pub fn manifest_bytes(&self) -> &'a [u8] {
        self.bytes.get(..self.manifest_len).unwrap_or_default()
    }

    /// SHA-256 of the encoded manifest.
    pub fn manifest_digest(&self) -> [u8; 32] {
        sha256(self.manifest_bytes())
    }
}

/// Encodes files into a bundle. Names must be valid and unique.
pub fn encode_bundle(files: &[(&str, &[u8])]) -> Result<Vec<u8>, BundleError> {
    if files.len() > MAX_FILES as usize {
        return Err(BundleError::TooManyFiles);
    }
    let table: usize = files.iter().map(|(n, _)| 2 + n.len() + 16).sum();
    let data: usize = files.iter().map(|(_, d)| d.len()).sum();
    let mut out = Vec::with_capacity(12 + table + data);
    out.extend_from_slice(BUNDLE_MAGIC);
    out.extend_from_slice(&(files.len() as u32).to_be_bytes());
    let mut offset = 0u64;
    for (index, (name, bytes)) in files.iter().enumerate() {
        if !name_ok(name) {
            return Err(BundleError::BadName { index });
        }
        if files[..index].iter().any(|(n, _)| n == name) {
            return Err(BundleError::DuplicateName { index });
        }
        out.extend_from_slice(&(name.len() as u16).to_be_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&offset.to_be_bytes());
        out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
        offset += bytes.len() as u64;
    }
    for (_, bytes) in files {
        out.extend_from_slice(bytes);
    }
    Ok(out)
}

fn name_ok(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_NAME_LEN && !name.chars().any(char::is_control)
}

pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// A bounds-checked big-endian reader.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, pos: 0 }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let out = self.bytes.get(self.pos..end)?;
        self.pos = end;
        Some(out)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    pub(crate) fn u8(&mut self) -> Option<u8> {
        self.array::<1>().map(|a| a[0])
    }

    pub(crate) fn u16(&mut self) -> Option<u16> {
        self.array().map(u16::from_be_bytes)
    }

    pub(crate) fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_be_bytes)
    }

    pub(crate) fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_be_bytes)
    }
}

/// Validates the whole bundle and returns its entries and the manifest length.
pub(crate) fn parse_manifest(bytes: &[u8]) -> Result<(Vec<FileEntry>, usize), BundleError> {
    let mut r = Reader::new(bytes);
    match r.take(BUNDLE_MAGIC.len()) {
        None => return Err(BundleError::Truncated),
        Some(m) if m != BUNDLE_MAGIC => return Err(BundleError::BadMagic),
        Some(_) => {}
    }
    let count = r.u32().ok_or(BundleError::Truncated)?;
    if count > MAX_FILES {
        return Err(BundleError::TooManyFiles);
    }
    let mut raw = Vec::with_capacity(count as usize);
    let mut expected_offset = 0u64;
    for index in 0..count as usize {
        let name_len = r.u16().ok_or(BundleError::Truncated)? as usize;
        let name = r.take(name_len).ok_or(BundleError::Truncated)?;
        let name = std::str::from_utf8(name).map_err(|_| BundleError::BadName { index })?;
        if !name_ok(name) {
            return Err(BundleError::BadName { index });
        }
        if raw.iter().any(|(n, _, _): &(&str, u64, u64)| *n == name) {
            return Err(BundleError::DuplicateName { index });
        }
        let offset = r.u64().ok_or(BundleError::Truncated)?;
        let len = r.u64().ok_or(BundleError::Truncated)?;
        if offset != expected_offset {
            return Err(BundleError::BadLayout { index });
        }
        expected_offset = offset
            .checked_add(len)
            .ok_or(BundleError::BadLayout { index })?;
        raw.push((name, offset, len));
    }
    let manifest_len = r.pos();
    let data_len = (bytes.len() - manifest_len) as u64;
    if expected_offset > data_len {
        return Err(BundleError::Truncated);
    }
    if expected_offset < data_len {
        return Err(BundleError::TrailingData);
    }
    // Every offset and length is now bounded by the buffer length, so these casts are exact.
    let entries = raw
        .into_iter()
        .map(|(name, offset, len)| {
            let start = manifest_len + offset as usize;
            FileEntry {
                name: name.to_owned(),
                range: start..start + len as usize,
            }
        })
        .collect();
    Ok((entries, manifest_len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_borrows() {
        let enc = encode_bundle(&[
            ("a.gguf", b"weights"),
            ("tokenizer.json", b"{}"),
            ("e", b""),
        ])
        .unwrap();
        let b = Bundle::parse(&enc).unwrap();
        assert_eq!(b.get("a.gguf"), Some(&b"weights"[..]));
        assert_eq!(b.get("e"), Some(&b""[..]));
        assert_eq!(b.get("nope"), None);
        let names: Vec<_> = b.files().map(|(n, _)| n).collect();
        assert_eq!(names, ["a.gguf", "tokenizer.json", "e"]);
        let w = b.get("a.gguf").unwrap();
        assert!(enc.as_ptr_range().contains(&w.as_ptr()));
    }

    #[test]
    fn rejects() {
        assert_eq!(
            encode_bundle(&[("x", b""), ("x", b"")]),
            Err(BundleError::DuplicateName { index: 1 })
        );
        assert_eq!(
            encode_bundle(&[("", b"")]),
            Err(BundleError::BadName { index: 0 })
        );
        let enc = encode_bundle(&[("a", b"12345")]).unwrap();
        assert!(matches!(
            Bundle::parse(&enc[..enc.len() - 1]),
            Err(BundleError::Truncated)
        ));
        let mut longer = enc.clone();
        longer.push(0);
        assert!(matches!(
            Bundle::parse(&longer),
            Err(BundleError::TrailingData)
        ));
        let mut bad = enc.clone();
        bad[0] ^= 1;
        assert!(matches!(Bundle::parse(&bad), Err(BundleError::BadMagic)));
        // Offset of the first file must be 0.
        let mut bad = enc.clone();
        bad[12 + 2 + 1 + 7] = 1;
        assert!(matches!(
            Bundle::parse(&bad),
            Err(BundleError::BadLayout { index: 0 })
        ));
        // Huge length does not overflow.
        let mut bad = enc;
        bad[12 + 2 + 1 + 8..12 + 2 + 1 + 16].copy_from_slice(&u64::MAX.to_be_bytes());
        assert!(Bundle::parse(&bad).is_err());
    }
}
