//! `service.instance.id`: one identity per host, the same across restarts, so that Prometheus
//! (through the endpoint's `instance` label, or a collector) tells hosts apart. As the semantic
//! conventions suggest for an inherent unique id, it is a UUID v5 of the machine id in their
//! namespace; the machine id itself stays out of the name (`host.id` carries it where wanted).
//! A host without a machine id (some containers) gets a random UUID kept in `state_dir`.

use std::path::Path;

use uuid::Uuid;

use crate::sys::fs::{FileError, write_atomic};

/// The semantic conventions' namespace for `service.instance.id` as a UUID v5.
const NAMESPACE: Uuid = uuid::uuid!("4d63009a-8d0f-11ee-aad7-4c796ed8e320");

/// The file in `state_dir` that keeps a generated id.
pub const FILE: &str = "instance-id";

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error("failed to read a random UUID from {path}: {source}")]
    Random {
        path: String,
        source: std::io::Error,
    },
}

/// The id for a host whose machine id is `machine_id`.
pub fn from_machine_id(machine_id: &str) -> String {
    Uuid::new_v5(&NAMESPACE, machine_id.trim().as_bytes()).to_string()
}

/// The id: from the machine id when there is one, else the one kept in `state_dir` (made
/// from `random_source`, the kernel's `/proc/sys/kernel/random/uuid`, the first time).
pub fn instance_id(
    machine_id: Option<&str>,
    state_dir: &Path,
    random_source: &Path,
) -> Result<String, IdentityError> {
    if let Some(m) = machine_id.filter(|m| !m.trim().is_empty()) {
        return Ok(from_machine_id(m));
    }
    let path = state_dir.join(FILE);
    if let Ok(text) = std::fs::read_to_string(&path)
        && let Ok(id) = Uuid::parse_str(text.trim())
    {
        return Ok(id.to_string());
    }
    // Missing or unreadable as a UUID: a fresh one replaces it.
    let random =
        std::fs::read_to_string(random_source).map_err(|source| IdentityError::Random {
            path: random_source.display().to_string(),
            source,
        })?;
    let id = Uuid::parse_str(random.trim()).map_err(|e| IdentityError::Random {
        path: random_source.display().to_string(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
    })?;
    write_atomic(&path, format!("{id}\n").as_bytes())?;
    Ok(id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_machine_id_gives_the_same_uuid_v5_every_time() {
        // As found on Debian 12: /etc/machine-id is 32 hex digits and a newline.
        let a = from_machine_id("6b1f5a0d8c7e4e2f9a3b1c0d2e4f6a8b\n");
        let b = instance_id(
            Some("6b1f5a0d8c7e4e2f9a3b1c0d2e4f6a8b"),
            Path::new("/nonexistent"),
            Path::new("/nonexistent"),
        )
        .unwrap();
        assert_eq!(a, b);
        let u = Uuid::parse_str(&a).unwrap();
        assert_eq!(u.get_version_num(), 5);
        assert!(!a.contains("6b1f5a0d"), "the machine id leaks into {a}");
        assert_ne!(a, from_machine_id("00000000000000000000000000000001"));
    }

    #[test]
    fn without_a_machine_id_a_random_id_is_kept_in_state_dir() {
        let dir = tempfile::tempdir().unwrap();
        let random = dir.path().join("random");
        std::fs::write(&random, "0b8f6a36-58b4-4f4a-9a43-6c1e7e0f4d21\n").unwrap();
        let state = dir.path().join("state");
        let first = instance_id(None, &state, &random).unwrap();
        assert_eq!(first, "0b8f6a36-58b4-4f4a-9a43-6c1e7e0f4d21");
        // A restart reads it back, whatever the random source says now.
        std::fs::write(&random, "11111111-2222-4333-8444-555555555555\n").unwrap();
        assert_eq!(instance_id(Some(" "), &state, &random).unwrap(), first);
        assert_eq!(
            std::fs::read_to_string(state.join(FILE)).unwrap().trim(),
            first
        );
    }

    #[test]
    fn a_damaged_file_is_replaced_and_a_missing_source_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let random = dir.path().join("random");
        std::fs::write(&random, "11111111-2222-4333-8444-555555555555").unwrap();
        std::fs::write(dir.path().join(FILE), "not a uuid").unwrap();
        assert_eq!(
            instance_id(None, dir.path(), &random).unwrap(),
            "11111111-2222-4333-8444-555555555555"
        );
        let other = tempfile::tempdir().unwrap();
        let e = instance_id(None, other.path(), &other.path().join("none")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("failed to read a random UUID from"),
            "{e}"
        );
    }
}
