//! Secret bytes and where they come from.
//!
//! A secret is named in configuration by its *source* (`{ file = "path" }` or `{ env = "NAME" }`),
//! never written inline. Secret files must not be readable by group or others: loading one that
//! is refuses with [`SecretError::InsecurePermissions`] rather than warning, because a warning in a
//! log nobody reads leaves the key exposed, while a refusal is fixed with one `chmod 600`.

use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Largest secret file accepted (keys and tokens are small; this bounds a mistaken path).
pub const MAX_SECRET_LEN: u64 = 1 << 20;

/// Secret bytes: zeroized on drop, compared in constant time, never printed.
#[derive(Clone)]
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    /// Wraps bytes (the caller's copy should itself be zeroized).
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The secret bytes.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl ConstantTimeEq for Secret {
    fn ct_eq(&self, other: &Self) -> subtle::Choice {
        self.0.as_slice().ct_eq(other.0.as_slice())
    }
}

/// Constant time in the contents (lengths may differ observably).
impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        bool::from(self.ct_eq(other))
    }
}

impl Eq for Secret {}

/// Where a secret comes from, as written in TOML: `key = { file = "/run/keys/x" }` or
/// `key = { env = "CONFIDANT_X" }`. There is deliberately no inline variant.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum SecretSource {
    /// A file (mode 0600 or stricter on Unix).
    File(PathBuf),
    /// An environment variable. Its value stays in the process environment (removing it needs
    /// `unsafe` in Rust 2024), so prefer files for long-lived keys.
    Env(String),
}

/// Why a secret could not be loaded or written. Paths and variable names are included (they are
/// configuration, not secrets); contents never are.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The file could not be opened, read or written.
    #[error("secret file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is readable or writable by group or others.
    #[error(
        "secret file {path} has mode {mode:o}; it must not be accessible to group or others (chmod 600)"
    )]
    InsecurePermissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file is not a regular file.
    #[error("secret file {0} is not a regular file")]
    NotAFile(PathBuf),
    /// The file is larger than [`MAX_SECRET_LEN`].
    #[error("secret file {0} is too large")]
    TooLarge(PathBuf),
    /// The environment variable is unset.
    #[error("environment variable {0} is not set")]
    EnvMissing(String),
    /// The environment variable is not valid Unicode.
    #[error("environment variable {0} is not valid unicode")]
    EnvNotUnicode(String),
    /// The source is empty.
    #[error("secret from {0} is empty")]
    Empty(String),
}

/// Loads a secret from its source. Files are checked for permissions on the open handle (no
/// check-then-open race). Contents are taken as-is (no trimming); empty secrets are refused.
pub fn load_secret(source: &SecretSource) -> Result<Secret, SecretError> {
    let secret = match source {
        SecretSource::File(path) => read_file(path)?,
        SecretSource::Env(name) => match std::env::var(name) {
            Ok(v) => Secret::new(v.into_bytes()),
            Err(std::env::VarError::NotPresent) => {
                return Err(SecretError::EnvMissing(name.clone()));
            }
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(SecretError::EnvNotUnicode(name.clone()));
            }
        },
    };
    if secret.is_empty() {
        let what = match source {
            SecretSource::File(p) => p.display().to_string(),
            SecretSource::Env(n) => format!("${n}"),
        };
        return Err(SecretError::Empty(what));
    }
    Ok(secret)
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SecretError + '_ {
    move |source| SecretError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn read_file(path: &Path) -> Result<Secret, SecretError> {
    let file = std::fs::File::open(path).map_err(io_err(path))?;
    let meta = file.metadata().map_err(io_err(path))?;
    if !meta.is_file() {
        return Err(SecretError::NotAFile(path.to_path_buf()));
    }
    check_mode(path, &meta)?;
    if meta.len() > MAX_SECRET_LEN {
        return Err(SecretError::TooLarge(path.to_path_buf()));
    }
    // Capacity fixed up front so the buffer does not reallocate (which would leave unzeroized
    // copies behind); one spare byte detects a file that grew since `metadata`.
    let expected = meta.len();
    let mut buf = Zeroizing::new(Vec::with_capacity(expected as usize + 1));
    file.take(expected + 1)
        .read_to_end(&mut buf)
        .map_err(io_err(path))?;
    if buf.len() as u64 != expected {
        return Err(SecretError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other("file changed while being read"),
        });
    }
    Ok(Secret(buf))
}

#[cfg(unix)]
fn check_mode(path: &Path, meta: &std::fs::Metadata) -> Result<(), SecretError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(SecretError::InsecurePermissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_mode(_path: &Path, _meta: &std::fs::Metadata) -> Result<(), SecretError> {
    Ok(())
}

/// Writes `bytes` to `path` atomically with mode 0600: a fresh temporary file in the same
/// directory (created 0600, never wider), fsync'd, renamed over `path`, then the directory
/// fsync'd. A crash leaves either the old file or the new one, never a partial secret.
pub fn write_secret_file(path: &Path, bytes: &[u8]) -> Result<(), SecretError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| SecretError::NotAFile(path.to_path_buf()))?;
    let mut suffix = [0u8; 8];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut suffix).map_err(
        |_| SecretError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other("system random unavailable"),
        },
    )?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp-{:016x}", u64::from_le_bytes(suffix)));
    let tmp = dir.join(tmp_name);

    let result = (|| {
        let mut f = create_private(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        sync_dir(&dir)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io_err(path))
}

#[cfg(unix)]
fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> std::io::Result<()> {
    Ok(())
}
