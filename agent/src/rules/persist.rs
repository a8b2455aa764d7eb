//! Files in the state directory, written atomically: a temporary file beside the target is
//! written, fsynced and renamed over it, then the directory is fsynced, so a crash leaves the
//! old file or the new one, never half of one.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::{DeserializeOwned, DeserializeSeed};

use crate::sys::fs::{ReadError, read_bounded, set_aside, write_atomic};

/// Largest state file read back. Rule state is a few hundred bytes per series and the outbox a
/// few hundred per event (10,000 by default), so real files stay far below; 64 MiB bounds what
/// a corrupt or planted file costs (a 200 MB rules.json cost 204 MB of RSS).
pub const MAX_STATE_FILE: u64 = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("failed to read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Too large, not a regular file, or not parseable: moved aside (or not, with why).
    #[error("{reason}; {aside}")]
    Refused { reason: String, aside: String },
    #[error("failed to parse {path}: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("failed to write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("failed to encode {path}: {source}")]
    Encode {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// Reads a JSON file of at most [`MAX_STATE_FILE`] bytes; Ok(None) when it does not exist. A
/// file refused for its size or kind, or that does not parse, is moved aside (the caller starts
/// fresh, and the next save would otherwise overwrite it).
pub fn load<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, StateError> {
    load_seed(path, std::marker::PhantomData::<T>)
}

/// [`load`] through a seed, which may bound what it keeps while it reads (the outbox).
pub fn load_seed<T, S>(path: &Path, seed: S) -> Result<Option<T>, StateError>
where
    S: for<'de> DeserializeSeed<'de, Value = T>,
{
    let bytes = match read_bounded(path, MAX_STATE_FILE) {
        Ok(Some(b)) => b,
        Ok(None) => return Ok(None),
        Err(ReadError::Io { path, source }) => return Err(StateError::Read { path, source }),
        Err(e) => return Err(refuse(path, e.to_string())),
    };
    let mut de = serde_json::Deserializer::from_slice(&bytes);
    let parsed = seed.deserialize(&mut de).and_then(|v| de.end().map(|()| v));
    parsed.map(Some).map_err(|source| {
        refuse(
            path,
            StateError::Parse {
                path: path.to_owned(),
                source,
            }
            .to_string(),
        )
    })
}

fn refuse(path: &Path, reason: String) -> StateError {
    let aside = match set_aside(path) {
        Ok(aside) => format!("kept as {} for inspection", aside.display()),
        Err(e) => format!("not moved aside: {e}"),
    };
    StateError::Refused { reason, aside }
}

/// Writes `value` as JSON to `path` atomically, creating the directory if needed.
pub fn save<T: Serialize>(path: &Path, value: &T) -> Result<(), StateError> {
    let bytes = serde_json::to_vec(value).map_err(|source| StateError::Encode {
        path: path.to_owned(),
        source,
    })?;
    write_atomic(path, &bytes).map_err(|e| StateError::Write {
        path: path.to_owned(),
        source: e.source,
    })
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    #[test]
    fn round_trip_and_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("x.json");
        assert_eq!(load::<Vec<u32>>(&path).unwrap(), None);
        save(&path, &vec![1u32, 2, 3]).unwrap();
        assert_eq!(load::<Vec<u32>>(&path).unwrap(), Some(vec![1, 2, 3]));
        save(&path, &vec![4u32]).unwrap();
        assert_eq!(load::<Vec<u32>>(&path).unwrap(), Some(vec![4]));
        let leftovers: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers.len(), 1, "{leftovers:?}");
    }

    /// Loads `path`, expecting a refusal whose text holds `why`, and the file kept aside.
    fn refused(path: &Path, why: &str) {
        let e = load::<Vec<u32>>(path).unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, StateError::Refused { .. }), "{text}");
        assert!(text.contains(why), "{text}");
        let aside = path.with_file_name("x.json.refused");
        assert!(
            text.contains(&format!("kept as {}", aside.display())),
            "{text}"
        );
        assert!(
            fs::symlink_metadata(&aside).is_ok(),
            "nothing at {}",
            aside.display()
        );
        assert!(
            fs::symlink_metadata(path).is_err(),
            "{} still there",
            path.display()
        );
    }

    #[test]
    fn corrupt_file_is_refused_and_kept_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.json");
        fs::write(&path, b"{not json").unwrap();
        refused(&path, "failed to parse");
    }

    #[test]
    fn a_file_over_the_cap_is_refused_without_reading_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.json");
        // Sparse: 64 MiB and one byte without writing them.
        let f = fs::File::create(&path).unwrap();
        f.set_len(MAX_STATE_FILE + 1).unwrap();
        refused(&path, "over the 67108864-byte limit");
    }

    #[test]
    fn a_symlink_to_dev_zero_is_refused_and_the_device_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.json");
        std::os::unix::fs::symlink("/dev/zero", &path).unwrap();
        refused(&path, "not a regular file");
        // The link was moved, not its target.
        assert!(Path::new("/dev/zero").exists());
    }

    #[test]
    fn a_fifo_is_refused_without_waiting_for_a_writer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.json");
        let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo(3) on a NUL-terminated path in our own temporary directory.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        refused(&path, "not a regular file");
    }
}
