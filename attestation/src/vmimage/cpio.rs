//! A reproducible cpio "newc" (SVR4, no CRC) writer for initramfs images: entries sorted by path,
//! mtime 0, uid/gid 0, inodes numbered 1.. in output order, modes given by the caller, `TRAILER!!!`,
//! 4-byte alignment of names and data. Nothing of the host (times, owners, inodes) gets in.

use std::collections::BTreeMap;

/// Why an archive cannot be written.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CpioError {
    #[error("invalid path {0:?}: must be relative, without empty, '.' or '..' components")]
    BadPath(String),
    #[error("duplicate entry {0:?}")]
    Duplicate(String),
    #[error("entry {0:?} is larger than 4 GiB")]
    TooLarge(String),
    #[error("mode {mode:#o} of {path:?} has bits outside 0o7777")]
    BadMode { path: String, mode: u32 },
}

/// What an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    Dir,
    File(Vec<u8>),
    Symlink(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    kind: EntryKind,
    mode: u32,
}

/// An initramfs being assembled. Parent directories are added (mode 0755) when missing.
#[derive(Debug, Default, Clone)]
pub struct CpioBuilder {
    entries: BTreeMap<String, Entry>,
}

fn normalize(path: &str) -> Result<String, CpioError> {
    let p = path.trim_start_matches('/');
    if p.is_empty() || p.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
        return Err(CpioError::BadPath(path.to_owned()));
    }
    Ok(p.to_owned())
}

impl CpioBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    fn insert(&mut self, path: &str, kind: EntryKind, mode: u32) -> Result<(), CpioError> {
        let p = normalize(path)?;
        if mode & !0o7777 != 0 {
            return Err(CpioError::BadMode { path: p, mode });
        }
        if let EntryKind::File(d) = &kind
            && u32::try_from(d.len()).is_err()
        {
            return Err(CpioError::TooLarge(p));
        }
        let mut parent = p.as_str();
        while let Some((dir, _)) = parent.rsplit_once('/') {
            match self.entries.get(dir) {
                Some(Entry {
                    kind: EntryKind::Dir,
                    ..
                }) => {}
                Some(_) => return Err(CpioError::Duplicate(dir.to_owned())),
                None => {
                    self.entries.insert(
                        dir.to_owned(),
                        Entry {
                            kind: EntryKind::Dir,
                            mode: 0o755,
                        },
                    );
                }
            }
            parent = dir;
        }
        match self.entries.get(&p) {
            // An explicit directory may restate an implicit one.
            Some(Entry {
                kind: EntryKind::Dir,
                ..
            }) if kind == EntryKind::Dir => {}
            Some(_) => return Err(CpioError::Duplicate(p)),
            None => {}
        }
        self.entries.insert(p, Entry { kind, mode });
        Ok(())
    }

    /// A directory with permission bits `mode`.
    pub fn dir(&mut self, path: &str, mode: u32) -> Result<(), CpioError> {
        self.insert(path, EntryKind::Dir, mode)
    }

    /// A regular file with permission bits `mode`.
    pub fn file(&mut self, path: &str, data: Vec<u8>, mode: u32) -> Result<(), CpioError> {
        self.insert(path, EntryKind::File(data), mode)
    }

    /// A symbolic link to `target`.
    pub fn symlink(&mut self, path: &str, target: &str) -> Result<(), CpioError> {
        self.insert(path, EntryKind::Symlink(target.to_owned()), 0o777)
    }

    /// Whether `path` is already present.
    pub fn contains(&self, path: &str) -> bool {
        normalize(path).is_ok_and(|p| self.entries.contains_key(&p))
    }

    /// The archive bytes.
    pub fn finish(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (ino, (path, e)) in (1u32..).zip(&self.entries) {
            let (ftype, nlink, data): (u32, u32, &[u8]) = match &e.kind {
                EntryKind::Dir => (0o040000, 2, &[]),
                EntryKind::File(d) => (0o100000, 1, d),
                EntryKind::Symlink(t) => (0o120000, 1, t.as_bytes()),
            };
            write_entry(&mut out, ino, ftype | e.mode, nlink, path, data);
        }
        write_entry(&mut out, 0, 0, 1, "TRAILER!!!", &[]);
        out
    }
}

fn pad4(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

fn write_entry(out: &mut Vec<u8>, ino: u32, mode: u32, nlink: u32, name: &str, data: &[u8]) {
    // Lengths were checked on insertion (files) or are small (names, link targets).
    let namesize = name.len() as u32 + 1;
    let filesize = data.len() as u32;
    let fields = [ino, mode, 0, 0, nlink, 0, filesize, 0, 0, 0, 0, namesize, 0];
    out.extend_from_slice(b"070701");
    for f in fields {
        out.extend_from_slice(format!("{f:08X}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
    out.extend_from_slice(data);
    pad4(out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_and_determinism() {
        let mut a = CpioBuilder::new();
        a.file("/b/x", b"hello".to_vec(), 0o644).expect("file");
        a.symlink("/a", "b/x").expect("link");
        let mut b = CpioBuilder::new();
        b.symlink("a", "b/x").expect("link");
        b.file("b/x", b"hello".to_vec(), 0o644).expect("file");
        assert_eq!(a.finish(), b.finish());
        let out = a.finish();
        assert_eq!(&out[..6], b"070701");
        assert!(out.len().is_multiple_of(4));
        assert!(out.windows(10).any(|w| w == b"TRAILER!!!"));
    }

    #[test]
    fn refusals() {
        let mut a = CpioBuilder::new();
        assert!(matches!(
            a.file("../x", vec![], 0o644),
            Err(CpioError::BadPath(_))
        ));
        assert!(matches!(
            a.file("", vec![], 0o644),
            Err(CpioError::BadPath(_))
        ));
        assert!(matches!(
            a.file("x", vec![], 0o100644),
            Err(CpioError::BadMode { .. })
        ));
        a.file("x", vec![], 0o644).expect("x");
        assert!(matches!(
            a.file("x", vec![], 0o644),
            Err(CpioError::Duplicate(_))
        ));
        assert!(matches!(
            a.file("x/y", vec![], 0o644),
            Err(CpioError::Duplicate(_))
        ));
    }
}
