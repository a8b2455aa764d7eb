//! Noticing that the config changed: the file's parent directory is watched (editors save by
//! writing a temporary file and renaming it over the original, which a watch on the file itself
//! would lose), and SIGHUP asks for a reload explicitly. Debouncing and the actual reload live in
//! the runtime, which keeps the last good config when a new one is bad.
//!
//! A config reached through a symlink is watched at both ends: the link's directory (for the
//! link itself and, with a relative link such as Kubernetes' `..data/hostwarden.toml`, for its
//! first component, which a ConfigMap update swaps) and the target's directory (for edits to
//! the target). The targets are resolved once, at start.

use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;

/// Why a reload was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadSource {
    FileChanged,
    Signal,
}

/// Sent to the runtime when a reload may be due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReloadEvent {
    pub source: ReloadSource,
}

/// Starts watching `file`'s directory; events that concern `file` are sent on `tx`. The returned
/// watcher must be kept alive for as long as watching should go on.
pub fn watch_config(
    file: &Path,
    tx: mpsc::Sender<ReloadEvent>,
) -> Result<notify::RecommendedWatcher, notify::Error> {
    let targets = watch_targets(file);
    let dirs: Vec<PathBuf> = {
        let mut d: Vec<PathBuf> = targets.iter().map(|(dir, _)| dir.clone()).collect();
        d.sort();
        d.dedup();
        d
    };
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        let Ok(event) = res else { return };
        if matches!(event.kind, EventKind::Access(_)) {
            return;
        }
        let ours = event.paths.iter().any(|p| {
            targets
                .iter()
                .any(|(dir, name)| p.parent() == Some(dir) && p.file_name() == Some(name))
        });
        if ours {
            // A full channel already holds a pending reload: dropping this one loses nothing.
            match tx.try_send(ReloadEvent {
                source: ReloadSource::FileChanged,
            }) {
                Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => {}
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
    })?;
    for dir in &dirs {
        watcher.watch(dir, RecursiveMode::NonRecursive)?;
    }
    Ok(watcher)
}

/// The (directory, name) pairs whose change may change what `file` reads.
fn watch_targets(file: &Path) -> Vec<(PathBuf, OsString)> {
    let split = |p: &Path| -> Option<(PathBuf, OsString)> {
        let dir = p.parent().filter(|d| !d.as_os_str().is_empty())?;
        Some((dir.to_path_buf(), p.file_name()?.to_os_string()))
    };
    let file: PathBuf = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
    let mut out: Vec<(PathBuf, OsString)> = split(&file).into_iter().collect();
    if let (Ok(link), Some((dir, _))) = (std::fs::read_link(&file), split(&file))
        && link.is_relative()
        && let Some(Component::Normal(first)) = link.components().next()
    {
        out.push((dir, first.to_os_string()));
    }
    if let Ok(real) = std::fs::canonicalize(&file)
        && real != file
        && let Some(pair) = split(&real)
    {
        out.push(pair);
    }
    out.dedup();
    out
}
