//! The `zfs_arc_max` module parameter under `<sys_root>/module/zfs/parameters/`, and the boot
//! value kept in the state dir so that an agent restarted after a crash still restores the value
//! the host had, not the one the agent left.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::sys::fs::{FileError, ReadError, read_bounded, write_atomic};

/// Below the sys root.
pub const PARAM: &str = "module/zfs/parameters/zfs_arc_max";
/// In the state dir.
pub const STATE_NAME: &str = "zfs-arc.json";
/// A parameter is one number; a state file a few hundred bytes.
const CAP: u64 = 4096;

#[derive(Debug, thiserror::Error)]
pub enum ParamError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("{} holds {text:?}, not a number of bytes", path.display())]
    Parse { path: PathBuf, text: String },
    #[error("failed to write {value} to {}: {source}", path.display())]
    Write {
        path: PathBuf,
        value: u64,
        source: std::io::Error,
    },
    #[error("wrote {wrote} to {} but it reads back {read}", path.display())]
    NotTaken {
        path: PathBuf,
        wrote: u64,
        read: u64,
    },
    #[error("{} is missing: no ZFS module loaded", path.display())]
    Missing { path: PathBuf },
    #[error(transparent)]
    State(#[from] FileError),
}

/// The parameter file.
#[derive(Debug, Clone)]
pub struct Param {
    pub path: PathBuf,
}

impl Param {
    pub fn new(sys_root: &Path) -> Param {
        Param {
            path: sys_root.join(PARAM),
        }
    }

    /// The value now; 0 means OpenZFS's default.
    pub fn read(&self) -> Result<u64, ParamError> {
        // sysfs reports a size of 4096 for every attribute: the cap allows it.
        let bytes = read_bounded(&self.path, CAP)?.ok_or_else(|| ParamError::Missing {
            path: self.path.clone(),
        })?;
        let text = String::from_utf8_lossy(&bytes);
        text.trim().parse().map_err(|_| ParamError::Parse {
            path: self.path.clone(),
            text: text.trim().to_owned(),
        })
    }

    /// Writes `value` and reads it back: OpenZFS rejects a value out of its range with EINVAL
    /// (2.2 and later) or keeps the old limit silently (earlier), so the read-back is the check.
    pub fn write(&self, value: u64) -> Result<(), ParamError> {
        // Not write_atomic: sysfs has no rename; a parameter is written in place.
        std::fs::write(&self.path, format!("{value}\n")).map_err(|source| ParamError::Write {
            path: self.path.clone(),
            value,
            source,
        })?;
        let read = self.read()?;
        if read != value {
            return Err(ParamError::NotTaken {
                path: self.path.clone(),
                wrote: value,
                read,
            });
        }
        Ok(())
    }
}

/// What the state dir remembers across a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Remembered {
    /// The parameter as the agent found it (0: OpenZFS's default).
    pub boot_param: u64,
    /// The ARC's c_max then (the limit in force, also when the parameter is 0).
    pub boot_c_max: u64,
    /// The value the agent wrote last, while one of its values is in force.
    pub set: Option<u64>,
}

/// The state file.
#[derive(Debug, Clone)]
pub struct StateFile {
    pub path: PathBuf,
}

impl StateFile {
    pub fn new(state_dir: &Path) -> StateFile {
        StateFile {
            path: state_dir.join(STATE_NAME),
        }
    }

    /// `Ok(None)` when absent; a file that does not parse counts as absent (logged by the
    /// caller through the error).
    pub fn load(&self) -> Result<Option<Remembered>, ParamError> {
        let Some(bytes) = read_bounded(&self.path, CAP)? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|_| ParamError::Parse {
                path: self.path.clone(),
                text: String::from_utf8_lossy(&bytes).chars().take(80).collect(),
            })
    }

    pub fn save(&self, r: &Remembered) -> Result<(), ParamError> {
        let mut text = serde_json::to_string(r).unwrap_or_default();
        text.push('\n');
        Ok(write_atomic(&self.path, text.as_bytes())?)
    }

    pub fn remove(&self) -> Result<(), ParamError> {
        match std::fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(FileError::new("remove", &self.path, e).into()),
        }
    }
}

/// The boot value to keep at start: the remembered one when the parameter still holds what the
/// agent wrote (it died with its value in force), else what is there now (a first start, a
/// reboot reset the parameter, or an operator wrote their own).
pub fn boot_at_start(remembered: Option<Remembered>, param: u64, c_max: u64) -> Remembered {
    match remembered {
        Some(r) if r.set == Some(param) => r,
        _ => Remembered {
            boot_param: param,
            boot_c_max: c_max,
            set: None,
        },
    }
}
