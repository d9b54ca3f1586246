//! All or nothing: `init` writes into a fresh staging directory next to its target and moves the
//! result into place only once every file was written. A failure (or a crash) before that leaves
//! the target as it was; the staging directory is removed on error.

use std::path::{Path, PathBuf};

use ring::rand::{SecureRandom, SystemRandom};

use super::{InitError, io};

/// A staging directory for `target`, removed on drop unless committed.
#[derive(Debug)]
pub(super) struct Staging {
    dir: PathBuf,
    target: PathBuf,
    committed: bool,
}

impl Staging {
    /// Creates `<parent of target>/.<name>.init-<random>` (creating the parent if needed), so
    /// that the final renames stay within one file system.
    pub(super) fn new(target: &Path) -> Result<Self, InitError> {
        let parent = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&parent).map_err(io(&parent))?;
        let name = target
            .file_name()
            .ok_or_else(|| InitError::BadDir(target.to_path_buf()))?;
        let mut suffix = [0u8; 8];
        SystemRandom::new()
            .fill(&mut suffix)
            .map_err(|_| InitError::Crypto("system random unavailable".into()))?;
        let mut staged = std::ffi::OsString::from(".");
        staged.push(name);
        staged.push(format!(".init-{}", hex::encode(suffix)));
        let dir = parent.join(staged);
        std::fs::create_dir(&dir).map_err(io(&dir))?;
        Ok(Staging {
            dir,
            target: target.to_path_buf(),
            committed: false,
        })
    }

    /// Where to write.
    pub(super) fn path(&self) -> &Path {
        &self.dir
    }

    /// Moves the staged files into the target: one rename when the target does not exist or is
    /// an empty directory, else file by file (replacing files of the same name, keeping others).
    pub(super) fn commit(mut self) -> Result<(), InitError> {
        let empty_target = match std::fs::read_dir(&self.target) {
            Ok(mut entries) => entries.next().is_none(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
            Err(e) => return Err(io(&self.target)(e)),
        };
        if empty_target {
            std::fs::rename(&self.dir, &self.target).map_err(io(&self.target))?;
        } else {
            move_into(&self.dir, &self.target)?;
            std::fs::remove_dir_all(&self.dir).map_err(io(&self.dir))?;
        }
        self.committed = true;
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Renames every file under `from` to the same place under `to`, creating directories (with
/// the staged directory's permissions) as needed.
fn move_into(from: &Path, to: &Path) -> Result<(), InitError> {
    for entry in std::fs::read_dir(from).map_err(io(from))? {
        let entry = entry.map_err(io(from))?;
        let src = entry.path();
        let dst = to.join(entry.file_name());
        if entry.file_type().map_err(io(&src))?.is_dir() {
            if !dst.is_dir() {
                std::fs::create_dir(&dst).map_err(io(&dst))?;
            }
            let perms = std::fs::metadata(&src).map_err(io(&src))?.permissions();
            std::fs::set_permissions(&dst, perms).map_err(io(&dst))?;
            move_into(&src, &dst)?;
        } else {
            std::fs::rename(&src, &dst).map_err(io(&dst))?;
        }
    }
    Ok(())
}
