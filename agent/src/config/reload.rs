//! Noticing that the config changed: the file's parent directory is watched (editors save by
//! writing a temporary file and renaming it over the original, which a watch on the file itself
//! would lose), and SIGHUP asks for a reload explicitly. Debouncing and the actual reload live in
//! the runtime, which keeps the last good config when a new one is bad.

use std::path::{Path, PathBuf};

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
    let file: PathBuf = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
    let dir = file
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let name = file.file_name().map(|n| n.to_os_string());
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        let Ok(event) = res else { return };
        if matches!(event.kind, EventKind::Access(_)) {
            return;
        }
        let ours = event
            .paths
            .iter()
            .any(|p| p.file_name().map(|n| n.to_os_string()) == name);
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
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    Ok(watcher)
}
