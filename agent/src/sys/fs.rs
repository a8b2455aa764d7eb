//! Files written atomically: a temporary file beside the target is written, fsynced and renamed
//! over it, then the directory is fsynced, so a reader (systemd's reload, the next start) sees
//! the old file or the new one, never half of one, even if the agent dies in between. The one
//! writer behind the rule state, the outbox and the tuner's drop-in.
//!
//! Modes are set exactly, whatever the umask: the agent's own state (rule state, outbox,
//! journal) is 0600 in a 0700 directory, since alert history is nobody else's business; the
//! drop-in systemd reads is 0644 in a 0755 directory, as unit files are.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Modes of a file and of the directories created for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Modes {
    pub file: u32,
    pub dir: u32,
}

/// The agent's own state: readable by the agent's user only.
pub(crate) const PRIVATE: Modes = Modes {
    file: 0o600,
    dir: 0o700,
};

/// Files other programs read (a systemd drop-in).
pub(crate) const PUBLIC: Modes = Modes {
    file: 0o644,
    dir: 0o755,
};

/// What failed, on which path.
#[derive(Debug, thiserror::Error)]
#[error("failed to {action} {}: {source}", path.display())]
pub struct FileError {
    pub action: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

impl FileError {
    pub(crate) fn new(action: &'static str, path: &Path, source: std::io::Error) -> Self {
        FileError {
            action,
            path: path.to_owned(),
            source,
        }
    }
}

/// Why a state file was not read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("failed to read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("refused {}: not a regular file", path.display())]
    NotRegular { path: PathBuf },
    #[error("refused {}: {size} bytes, over the {cap}-byte limit", path.display())]
    TooLarge { path: PathBuf, size: u64, cap: u64 },
}

/// Reads a whole state file of at most `cap` bytes; `Ok(None)` when it does not exist. The
/// file is opened without blocking (a FIFO would wait for a writer) and must be a regular
/// file: a symlink to /dev/zero or a device would otherwise be an endless read. The read
/// itself is capped too, in case the file grows while it is read.
pub(crate) fn read_bounded(path: &Path, cap: u64) -> Result<Option<Vec<u8>>, ReadError> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| ReadError::Io {
        path: path.to_owned(),
        source,
    };
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(ReadError::NotRegular {
            path: path.to_owned(),
        });
    }
    if meta.len() > cap {
        return Err(ReadError::TooLarge {
            path: path.to_owned(),
            size: meta.len(),
            cap,
        });
    }
    let mut bytes = Vec::new();
    file.take(cap + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > cap {
        return Err(ReadError::TooLarge {
            path: path.to_owned(),
            size: bytes.len() as u64,
            cap,
        });
    }
    Ok(Some(bytes))
}

/// Moves a refused state file aside (`<name>.refused`, replacing an older one) so the agent can
/// start fresh without destroying what an operator may want to inspect; returns the new path.
/// A symlink is moved itself, never its target.
pub(crate) fn set_aside(path: &Path) -> Result<PathBuf, FileError> {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".refused");
    let aside = path.with_file_name(name);
    fs::rename(path, &aside).map_err(|e| FileError::new("move aside", path, e))?;
    Ok(aside)
}

/// Creates `dir` and its missing ancestors with mode `mode` exactly (the umask neither widens
/// nor narrows it); directories that exist keep their mode. Returns whether it created `dir`.
pub(crate) fn create_dir_all_with(dir: &Path, mode: u32) -> Result<bool, FileError> {
    if dir.is_dir() {
        return Ok(false);
    }
    let missing: Vec<&Path> = dir.ancestors().take_while(|a| !a.exists()).collect();
    fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)
        .map_err(|e| FileError::new("create", dir, e))?;
    for d in missing {
        fs::set_permissions(d, fs::Permissions::from_mode(mode))
            .map_err(|e| FileError::new("set the mode of", d, e))?;
    }
    Ok(true)
}

/// Writes `bytes` to `path` atomically with the `PRIVATE` modes.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), FileError> {
    write_atomic_with(path, bytes, PRIVATE)
}

/// Writes `bytes` to `path` atomically, creating its directory (and fsyncing the parent of a
/// directory it created) first, with `modes`. A temporary file left by a failure is removed,
/// best effort.
pub(crate) fn write_atomic_with(path: &Path, bytes: &[u8], modes: Modes) -> Result<(), FileError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    if create_dir_all_with(dir, modes.dir)?
        && let Some(parent) = dir.parent()
    {
        fsync_dir(parent)?;
    }
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(path.file_name().unwrap_or_default());
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let result = write_then_rename(&tmp, path, bytes, modes.file).and_then(|()| fsync_dir(dir));
    if result.is_err()
        && let Err(e) = fs::remove_file(&tmp)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        // A leftover temporary file is harmless but untidy.
        tracing::debug!(path = %tmp.display(), error = %e, "Temporary file not removed.");
    }
    result
}

fn write_then_rename(tmp: &Path, path: &Path, bytes: &[u8], mode: u32) -> Result<(), FileError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(tmp)
        .map_err(|e| FileError::new("create", tmp, e))?;
    // The umask may have narrowed the mode (and a leftover temporary kept its old one).
    file.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(|e| FileError::new("set the mode of", tmp, e))?;
    file.write_all(bytes)
        .map_err(|e| FileError::new("write", tmp, e))?;
    file.sync_all()
        .map_err(|e| FileError::new("fsync", tmp, e))?;
    drop(file);
    fs::rename(tmp, path).map_err(|e| FileError::new("rename into place", path, e))
}

/// Makes a rename or removal in `dir` durable.
pub(crate) fn fsync_dir(dir: &Path) -> Result<(), FileError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| FileError::new("fsync directory", dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("x.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("x.json")]);
    }

    #[test]
    fn a_failure_names_the_action_and_the_path() {
        let dir = tempfile::tempdir().unwrap();
        // The target is a directory: the rename over it fails.
        let path = dir.path().join("taken");
        fs::create_dir(&path).unwrap();
        fs::write(path.join("inside"), b"x").unwrap();
        let e = write_atomic(&path, b"new").unwrap_err();
        assert_eq!(e.action, "rename into place");
        assert!(e.to_string().contains("taken"), "{e}");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
